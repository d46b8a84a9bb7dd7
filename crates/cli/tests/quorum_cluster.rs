//! Clusters of several krust processes on real sockets: a three-voter metadata quorum that
//! elects a leader, replaces it when it is killed and takes it back as a follower; brokers
//! that follow the quorum as observers, register, and are fenced when they stop
//! heartbeating; a quorum that stops committing without a majority and resumes with one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use krust_testkit::cli::{create_topic_with, describe_topic, quorum_status, total_records};
use krust_testkit::{wait_for, Cluster};

const BIN: &str = env!("CARGO_BIN_EXE_krust");
const WAIT: Duration = Duration::from_secs(30);
/// Short sessions so that fencing happens within a test's patience.
const FAST_SESSIONS: [&str; 2] = [
    "broker.session.timeout.ms=3000",
    "broker.heartbeat.interval.ms=500",
];

fn status(flag: &str, addrs: &str) -> Option<BTreeMap<String, String>> {
    quorum_status(BIN, flag, addrs)
}

fn num(s: &BTreeMap<String, String>, key: &str) -> i64 {
    s[key].parse().expect("a number")
}

/// Partition → leader (-1 for none).
fn leaders(bootstrap: &str, topic: &str) -> Option<BTreeMap<i32, i32>> {
    describe_topic(BIN, bootstrap, topic)
        .map(|d| d.into_iter().map(|(p, r)| (p, r.leader)).collect())
}

fn create_topic(bootstrap: &str, topic: &str, partitions: &str) {
    create_topic_with(BIN, bootstrap, topic, &["--partitions", partitions]);
}

fn produce(bootstrap: &str, topic: &str, n: usize) {
    let records: Vec<String> = (0..n).map(|i| format!("record-{i}")).collect();
    krust_testkit::cli::console_produce(BIN, bootstrap, topic, &records, &[]);
}

#[test]
fn three_voters_elect_replace_a_killed_leader_and_take_it_back() {
    let mut c = Cluster::start(BIN, 3, &FAST_SESSIONS);
    let controllers = c.controller_bootstrap();

    // One leader, three voters, seen alike through a controller and through a broker.
    let s = wait_for("a quorum leader", WAIT, || {
        status("--bootstrap-controller", &controllers).filter(|s| num(s, "LeaderId") > 0)
    });
    let leader = num(&s, "LeaderId") as i32;
    let epoch = num(&s, "LeaderEpoch");
    for id in 1..=3 {
        let port = c.node(id).controller_port;
        assert!(
            s["CurrentVoters"].contains(&format!(
                "{{\"id\": {id}, \"endpoints\": [\"CONTROLLER://127.0.0.1:{port}\"]}}"
            )),
            "{s:?}"
        );
    }
    assert_eq!(s["CurrentObservers"], "[]");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let via_broker = wait_for("status through a follower's broker port", WAIT, || {
        status("--bootstrap-server", &c.node(follower).bootstrap())
    });
    assert_eq!(num(&via_broker, "LeaderId") as i32, leader);

    // A topic created through a follower is placed on all three brokers.
    create_topic(&c.node(follower).bootstrap(), "orders", "3");
    let bootstrap = c.bootstrap();
    let placed = wait_for("orders placed on every broker", WAIT, || {
        leaders(&bootstrap, "orders").filter(|l| l.len() == 3 && l.values().all(|b| *b > 0))
    });
    assert_eq!(
        placed.values().copied().collect::<BTreeSet<i32>>(),
        BTreeSet::from([1, 2, 3])
    );
    krust_testkit::cli::wait_topic_served(BIN, &bootstrap, "orders");
    produce(&bootstrap, "orders", 30);
    wait_for("30 records stored", WAIT, || {
        total_records(BIN, &bootstrap, "orders").filter(|n| *n == 30)
    });

    // Kill the leader: the other two elect a new one in a later epoch.
    c.node(leader).kill9();
    let rest: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let survivors = rest
        .iter()
        .map(|id| c.node(*id).controller_bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let s = wait_for("a new leader", WAIT, || {
        status("--bootstrap-controller", &survivors).filter(|s| {
            let l = num(s, "LeaderId") as i32;
            l > 0 && l != leader && num(s, "LeaderEpoch") > epoch
        })
    });
    let new_leader = num(&s, "LeaderId") as i32;
    let hw = num(&s, "HighWatermark");

    // Metadata changes keep working; the dead broker is fenced and its partition has
    // no leader until it returns.
    let alive = c.node(rest[0]).bootstrap();
    create_topic(&alive, "after-failover", "2");
    let dead_partition = *placed
        .iter()
        .find(|(_, b)| **b == leader)
        .expect("a partition on the killed broker")
        .0;
    wait_for("the killed broker fenced", WAIT, || {
        leaders(&alive, "orders").filter(|l| l[&dead_partition] == -1)
    });

    // The old leader restarts and rejoins as a follower; nothing committed is lost.
    c.node(leader).restart_nowait();
    c.node(leader).wait_ready();
    let s = wait_for("the old leader caught up as a follower", WAIT, || {
        status("--bootstrap-controller", &controllers)
            .filter(|s| num(s, "LeaderId") as i32 == new_leader && num(s, "MaxFollowerLag") == 0)
    });
    assert!(num(&s, "HighWatermark") >= hw);
    wait_for("the restarted broker unfenced", WAIT, || {
        leaders(&bootstrap, "orders").filter(|l| l[&dead_partition] == leader)
    });
    wait_for("every record back", WAIT, || {
        total_records(BIN, &bootstrap, "orders").filter(|n| *n == 30)
    });
    assert!(leaders(&c.node(leader).bootstrap(), "after-failover").is_some());
}

#[test]
fn brokers_are_observers_and_a_silent_broker_is_fenced() {
    let roles = ["controller", "controller", "controller", "broker", "broker"];
    let mut c = Cluster::start_with_roles(BIN, &roles, &FAST_SESSIONS);
    let controllers = c.controller_bootstrap();
    let s = wait_for("both brokers observing", WAIT, || {
        status("--bootstrap-controller", &controllers).filter(|s| {
            s["CurrentObservers"].contains("\"id\": 4")
                && s["CurrentObservers"].contains("\"id\": 5")
        })
    });
    assert!(!s["CurrentVoters"].contains("\"id\": 4"), "{s:?}");

    // Topics go to the brokers only, created through one of them.
    let b4 = c.node(4).bootstrap();
    create_topic(&b4, "events", "4");
    let placed = wait_for("events placed", WAIT, || {
        leaders(&b4, "events").filter(|l| l.len() == 4 && l.values().all(|b| *b > 0))
    });
    assert_eq!(
        placed.values().copied().collect::<BTreeSet<i32>>(),
        BTreeSet::from([4, 5])
    );
    krust_testkit::cli::wait_topic_served(BIN, &c.bootstrap(), "events");
    produce(&c.bootstrap(), "events", 20);
    wait_for("20 records stored", WAIT, || {
        total_records(BIN, &c.bootstrap(), "events").filter(|n| *n == 20)
    });

    // Broker 5 stops: after its session times out its partitions have no leader.
    c.node(5).kill9();
    wait_for("broker 5 fenced", WAIT, || {
        leaders(&b4, "events").filter(|l| l.values().filter(|b| **b == -1).count() == 2)
    });
    // A new topic now goes to broker 4 only.
    create_topic(&b4, "later", "2");
    let later = wait_for("later placed", WAIT, || {
        leaders(&b4, "later").filter(|l| l.len() == 2 && l.values().all(|b| *b > 0))
    });
    assert!(later.values().all(|b| *b == 4), "{later:?}");
    c.node(5).restart_nowait();
    c.node(5).wait_ready();
    wait_for("broker 5 back", WAIT, || {
        leaders(&b4, "events").filter(|l| l.values().all(|b| *b > 0))
    });
}

#[test]
fn without_a_majority_nothing_commits_and_the_quorum_resumes_with_one() {
    let mut c = Cluster::start(BIN, 3, &[]);
    let controllers = c.controller_bootstrap();
    let s = wait_for("a quorum leader", WAIT, || {
        status("--bootstrap-controller", &controllers).filter(|s| num(s, "LeaderId") > 0)
    });
    let hw = num(&s, "HighWatermark");
    create_topic(&c.bootstrap(), "before", "1");

    // Two of three gone: no node may act as leader of a quorum it cannot reach.
    c.node(2).kill9();
    c.node(3).kill9();
    let only = c.node(1).controller_bootstrap();
    wait_for("no leader without a majority", WAIT, || {
        status("--bootstrap-controller", &only)
            .is_none()
            .then_some(())
    });

    // One comes back: a leader again, everything committed before is still there.
    c.node(2).restart_nowait();
    let pair = format!("{only},{}", c.node(2).controller_bootstrap());
    // (A new leader knows its high watermark once its first entry of the epoch commits.)
    wait_for(
        "a leader with a majority and everything committed before",
        WAIT,
        || {
            status("--bootstrap-controller", &pair)
                .filter(|s| num(s, "LeaderId") > 0 && num(s, "HighWatermark") >= hw)
        },
    );
    c.node(2).wait_ready();
    let b1 = c.node(1).bootstrap();
    wait_for("the topic from before", WAIT, || leaders(&b1, "before"));
    create_topic(&b1, "after", "1");
}

#[test]
fn an_isolated_leader_steps_down_and_rejoins_when_the_network_heals() {
    let mut c = Cluster::start_partitionable(BIN, 3, &FAST_SESSIONS);
    let controllers = c.controller_bootstrap();
    let s = wait_for("a quorum leader", WAIT, || {
        status("--bootstrap-controller", &controllers).filter(|s| num(s, "LeaderId") > 0)
    });
    let leader = num(&s, "LeaderId") as i32;
    let epoch = num(&s, "LeaderEpoch");
    let rest: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let majority = rest
        .iter()
        .map(|id| c.node(*id).controller_bootstrap())
        .collect::<Vec<_>>()
        .join(",");

    // Cut the leader off: the majority elects another leader in a later epoch, and the
    // old one stops claiming leadership (check quorum) instead of serving as a second one.
    c.isolate(leader, true);
    let s = wait_for("a new leader on the majority side", WAIT, || {
        status("--bootstrap-controller", &majority).filter(|s| {
            let l = num(s, "LeaderId") as i32;
            l > 0 && l != leader && num(s, "LeaderEpoch") > epoch
        })
    });
    let new_leader = num(&s, "LeaderId") as i32;
    let isolated = c.node(leader).controller_bootstrap();
    wait_for("the isolated node to step down", WAIT, || {
        status("--bootstrap-controller", &isolated)
            .is_none_or(|s| num(&s, "LeaderId") as i32 != leader)
            .then_some(())
    });
    create_topic(&c.node(rest[0]).bootstrap(), "majority-side", "1");

    // Heal: the old leader follows the new one and learns what was decided without it.
    c.isolate(leader, false);
    wait_for("the old leader caught up as a follower", WAIT, || {
        status("--bootstrap-controller", &controllers)
            .filter(|s| num(s, "LeaderId") as i32 == new_leader && num(s, "MaxFollowerLag") == 0)
    });
    let old = c.node(leader).bootstrap();
    wait_for("the topic visible on the old leader", WAIT, || {
        leaders(&old, "majority-side")
    });
}
