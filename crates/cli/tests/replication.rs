//! Replicated partitions across three brokers: acks=all production through the loss of a
//! partition leader, with every acknowledged record kept once, and identical logs on every
//! replica afterwards; too few in-sync replicas refuse acks=all writes; a reassignment moves
//! a partition and its data to another broker; a leader cut off from the cluster cannot
//! commit, and what it alone took is gone when it returns; a consumer-protocol group
//! outlives its coordinator without a rebalance.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use krust_testkit::cli::{create_topic_with, describe_topic, quorum_status};
use krust_testkit::{wait_for, Cluster};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_krust");

const WAIT: Duration = Duration::from_secs(40);
const SETTINGS: [&str; 4] = [
    "broker.session.timeout.ms=3000",
    "broker.heartbeat.interval.ms=500",
    "replica.lag.time.max.ms=4000",
    "leader.imbalance.check.interval.seconds=2",
];

/// Sends one record to partition 0 of `topic`, waiting at most `secs` for its delivery.
async fn send_p0(
    p: &FutureProducer,
    topic: &str,
    value: &str,
    secs: u64,
) -> rdkafka::producer::future_producer::OwnedDeliveryResult {
    p.send(
        FutureRecord::<(), _>::to(topic).payload(value).partition(0),
        Duration::from_secs(secs),
    )
    .await
}

fn create_replicated(bootstrap: &str, topic: &str, partitions: &str, min_isr: &str) {
    let min_isr = format!("min.insync.replicas={min_isr}");
    create_topic_with(
        BIN,
        bootstrap,
        topic,
        &[
            "--partitions",
            partitions,
            "--replication-factor",
            "3",
            "--config",
            &min_isr,
        ],
    );
    krust_testkit::cli::wait_topic_served(BIN, bootstrap, topic);
}

/// Partition → (leader, isr).
fn describe(bootstrap: &str, topic: &str) -> Option<BTreeMap<i32, (i32, Vec<i32>)>> {
    describe_topic(BIN, bootstrap, topic)
        .map(|d| d.into_iter().map(|(p, r)| (p, (r.leader, r.isr))).collect())
}

/// Waits until every broker's copy of `topic`-0 holds the same bytes (node 1 left out
/// when it is a controller only).
fn wait_identical_logs(c: &Cluster, topic: &str, skip_controller: bool) {
    let dirs: Vec<_> = c
        .nodes
        .iter()
        .filter(|n| !(skip_controller && n.node_id == 1))
        .map(|n| n.partition_dir(topic, 0))
        .collect();
    wait_for("identical replica logs", WAIT, || {
        let logs: Vec<Vec<u8>> = dirs.iter().map(|d| log_bytes(d)).collect();
        (!logs[0].is_empty() && logs.iter().all(|l| *l == logs[0])).then_some(())
    });
}

/// Every `.log` segment of a partition directory, in order, concatenated.
fn log_bytes(dir: &Path) -> Vec<u8> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "100")
        .create()
        .expect("producer")
}

/// A consumer of partition `p` of `topic` from its start, by assignment.
fn reader(bootstrap: &str, topic: &str, p: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replication-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Beginning)
        .expect("assign");
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Reads every record of partition `p` from the start, as (offset, value).
fn read_all(bootstrap: &str, topic: &str, p: i32, expected: usize) -> Vec<(i64, String)> {
    let consumer = reader(bootstrap, topic, p);
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while out.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            out.push((m.offset(), v));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_all_production_survives_killing_the_partition_leader() {
    let mut c = Cluster::start(BIN, 3, &SETTINGS);
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "orders", "1", "2");
    let initial = wait_for("orders fully in sync", WAIT, || {
        describe(&bootstrap, "orders").filter(|d| d[&0].0 > 0 && d[&0].1.len() == 3)
    });
    let leader = initial[&0].0;

    let p = producer(&bootstrap);
    let total = 3000usize;
    let mut pending = Vec::new();
    let mut killed = false;
    for i in 0..total {
        let value = format!("record-{i:05}");
        let rec = FutureRecord::<(), _>::to("orders")
            .payload(&value)
            .partition(0);
        pending.push((
            value.clone(),
            p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"),
        ));
        if i == total / 3 {
            // Let some of the first third be acknowledged, then kill the leader.
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.node(leader).kill9();
            killed = true;
        }
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(killed);
    let mut acked = Vec::new();
    for (value, f) in pending {
        if let Ok(Ok(_)) = f.await {
            acked.push(value);
        }
    }
    assert!(
        acked.len() > total / 2,
        "most records should be acknowledged ({} of {total})",
        acked.len()
    );

    // A new leader from the ISR, in a later epoch; the old one comes back and catches up.
    let after = wait_for("a new leader", WAIT, || {
        describe(&bootstrap, "orders").filter(|d| d[&0].0 > 0 && d[&0].0 != leader)
    });
    assert!(after[&0].1.len() >= 2, "{after:?}");
    c.node(leader).restart_nowait();
    c.node(leader).wait_ready();
    wait_for("all three in sync again", WAIT, || {
        describe(&bootstrap, "orders").filter(|d| d[&0].1.len() == 3)
    });

    // Every acknowledged record is there exactly once.
    let records = read_all(&bootstrap, "orders", 0, acked.len());
    let mut seen = BTreeMap::new();
    for (offset, value) in &records {
        assert!(
            seen.insert(value.clone(), *offset).is_none(),
            "{value} stored twice"
        );
    }
    let missing: Vec<&String> = acked.iter().filter(|v| !seen.contains_key(*v)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");

    // The three replicas hold the same batches at the same offsets.
    wait_identical_logs(&c, "orders", false);

    // The preferred replica (the first one, the original leader) gets leadership back.
    wait_for("the preferred leader back", WAIT, || {
        describe(&bootstrap, "orders").filter(|d| d[&0].0 == leader)
    });
}

/// Followers' fetches wait at the leader up to `replica.fetch.wait.max.ms` (30 s here); a
/// partition created meanwhile is fetched at once, not when the waiting fetch returns, so
/// its first acks=all write is acknowledged long before that.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_partition_is_replicated_without_waiting_for_a_parked_fetch() {
    let c = Cluster::start(
        BIN,
        3,
        &[
            "replica.fetch.wait.max.ms=30000",
            "replica.lag.time.max.ms=60000",
        ],
    );
    let bootstrap = c.bootstrap();
    // One partition led by each broker: every broker's fetchers then wait on all leaders.
    create_replicated(&bootstrap, "first", "3", "3");
    wait_for("first fully in sync", WAIT, || {
        describe(&bootstrap, "first")
            .filter(|d| d.values().all(|(l, isr)| *l > 0 && isr.len() == 3))
    });
    let p = producer(&bootstrap);
    for i in 0..3 {
        p.send(
            FutureRecord::<(), _>::to("first").payload("a").partition(i),
            Duration::from_secs(20),
        )
        .await
        .expect("acks=all write to first");
    }
    create_replicated(&bootstrap, "second", "1", "3");
    let started = Instant::now();
    send_p0(&p, "second", "b", 20)
        .await
        .expect("acks=all write to the new topic");
    // Without the fetchers' switch it would wait for their 30 s fetches.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the first acks=all write to a new topic took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn too_few_in_sync_replicas_refuse_acks_all() {
    // A separate controller, so that the quorum outlives the brokers.
    let mut c = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &SETTINGS,
    );
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "strict", "1", "2");
    let d = wait_for("strict fully in sync", WAIT, || {
        describe(&bootstrap, "strict").filter(|d| d[&0].0 > 0 && d[&0].1.len() == 3)
    });
    let leader = d[&0].0;
    let others: Vec<i32> = (2..=4).filter(|id| *id != leader).collect();
    for id in &others {
        c.node(*id).kill9();
    }
    let alone = c.node(leader).bootstrap();
    wait_for("the ISR down to the leader", WAIT, || {
        describe(&alone, "strict").filter(|d| d[&0].1 == vec![leader])
    });
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &alone)
        .set("acks", "all")
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let r = send_p0(&p, "strict", "x", 5).await;
    let err = r
        .expect_err("acks=all must fail with one in-sync replica")
        .0;
    assert!(format!("{err:?}").contains("NotEnoughReplicas"), "{err:?}");
    // acks=1 still works on the leader.
    let p1: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &alone)
        .set("acks", "1")
        .create()
        .expect("producer");
    send_p0(&p1, "strict", "y", 10)
        .await
        .expect("acks=1 accepted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_follower_leaves_the_isr_and_rejoins_after_resuming() {
    let mut c = Cluster::start(BIN, 3, &SETTINGS);
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "lagging", "1", "1");
    let d = wait_for("lagging fully in sync", WAIT, || {
        describe(&bootstrap, "lagging").filter(|d| d[&0].0 > 0 && d[&0].1.len() == 3)
    });
    let leader = d[&0].0;
    // Pause a follower that is not the active controller, so the quorum carries on.
    let controller = status_leader(&c.controller_bootstrap());
    let follower = (1..=3)
        .find(|id| *id != leader && *id != controller)
        .expect("a plain follower");
    let leader_addr = c.node(leader).bootstrap();
    c.node(follower).pause();
    let p = producer(&leader_addr);
    for i in 0..20 {
        send_p0(&p, "lagging", &format!("r{i}"), 10)
            .await
            .expect("acks=all with the paused follower out of the ISR");
    }
    wait_for("the paused follower out of the ISR", WAIT, || {
        describe(&leader_addr, "lagging").filter(|d| !d[&0].1.contains(&follower))
    });
    c.node(follower).resume();
    wait_for("the follower back in the ISR", WAIT, || {
        describe(&leader_addr, "lagging").filter(|d| d[&0].1.contains(&follower))
    });
}

/// The leader of the metadata quorum.
fn status_leader(controllers: &str) -> i32 {
    wait_for("a quorum leader", WAIT, || {
        quorum_status(BIN, "--bootstrap-controller", controllers)
            .and_then(|s| s["LeaderId"].parse::<i32>().ok())
            .filter(|id| *id > 0)
    })
}

/// The active controller, which also leads partitions, stops answering (paused): the
/// other brokers' heartbeats, stuck waiting on it, go to the newly elected controller
/// instead, so that it fences only the paused broker, and the partitions it led move to
/// live brokers within seconds (not once those heartbeats time out, after every broker
/// was fenced for missing them).
#[test]
fn a_stalled_active_controller_is_the_only_broker_fenced() {
    let mut c = Cluster::start(BIN, 3, &SETTINGS);
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "steady", "3", "2");
    wait_for("steady fully in sync", WAIT, || {
        describe(&bootstrap, "steady")
            .filter(|d| d.values().all(|(l, isr)| *l > 0 && isr.len() == 3))
    });
    let controller = status_leader(&c.controller_bootstrap());
    let survivors = (1..=3)
        .filter(|id| *id != controller)
        .map(|id| c.node(id).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    c.node(controller).pause();
    let paused_at = Instant::now();
    wait_for("every partition led by a live broker", WAIT, || {
        describe(&survivors, "steady")
            .filter(|d| d.values().all(|(l, _)| *l > 0 && *l != controller))
    });
    // An election (about 2 s) and the paused broker's session (3 s): well under the
    // 30 s a heartbeat waits for an answer.
    assert!(
        paused_at.elapsed() < Duration::from_secs(20),
        "partitions were leaderless for {:?}",
        paused_at.elapsed()
    );
    c.node(controller).resume();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_leaders_unreplicated_tail_is_truncated_when_it_returns() {
    // A separate controller keeps the quorum out of the way of the brokers' fates.
    let mut c = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &SETTINGS,
    );
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "diverge", "1", "1");
    let d = wait_for("diverge fully in sync", WAIT, || {
        describe(&bootstrap, "diverge").filter(|d| d[&0].0 > 0 && d[&0].1.len() == 3)
    });
    let leader = d[&0].0;
    let followers: Vec<i32> = (2..=4).filter(|id| *id != leader).collect();
    let leader_addr = c.node(leader).bootstrap();
    let p = producer(&leader_addr);
    send_p0(&p, "diverge", "committed", 10)
        .await
        .expect("first record");

    // The followers freeze; the leader takes acks=1 writes only it has, then dies.
    for f in &followers {
        c.node(*f).pause();
    }
    let p1: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &leader_addr)
        .set("acks", "1")
        .create()
        .expect("producer");
    for i in 0..5 {
        send_p0(&p1, "diverge", &format!("lost-{i}"), 10)
            .await
            .expect("acks=1 on the leader alone");
    }
    c.node(leader).kill9();
    for f in &followers {
        c.node(*f).resume();
    }
    let others = followers
        .iter()
        .map(|f| c.node(*f).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let d = wait_for("a new leader from the ISR", WAIT, || {
        describe(&others, "diverge").filter(|d| d[&0].0 > 0 && d[&0].0 != leader)
    });
    let new_leader = d[&0].0;
    let p = producer(&c.node(new_leader).bootstrap());
    send_p0(&p, "diverge", "after", 20)
        .await
        .expect("acks=all on the new leader");

    // The old leader returns: its tail goes, and its log becomes the new leader's.
    c.node(leader).restart_nowait();
    c.node(leader).wait_ready();
    wait_identical_logs(&c, "diverge", true);
    // A frozen follower may still take in the response to the fetch it had parked at the
    // leader (the first acks=1 batch) when it resumes; nothing after that can reach it.
    let values: Vec<String> = read_all(&bootstrap, "diverge", 0, 3)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        values.first().map(String::as_str),
        Some("committed"),
        "{values:?}"
    );
    assert_eq!(
        values.last().map(String::as_str),
        Some("after"),
        "{values:?}"
    );
    assert!(!values.iter().any(|v| v == "lost-4"), "{values:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reassignment_moves_a_partition_to_another_broker_with_its_data() {
    let mut c = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &SETTINGS,
    );
    let bootstrap = c.bootstrap();
    create_topic_with(
        BIN,
        &bootstrap,
        "moving",
        &["--partitions", "1", "--replication-factor", "2"],
    );
    let before = wait_for("moving placed", WAIT, || {
        describe_topic(BIN, &bootstrap, "moving")
            .filter(|d| d[&0].leader > 0 && d[&0].isr.len() == 2)
    });
    let old = before[&0].replicas.clone();
    let spare = (2..=4)
        .find(|b| !old.contains(b))
        .expect("a broker without it");
    let p = producer(&bootstrap);
    for i in 0..100 {
        send_p0(&p, "moving", &format!("m{i}"), 10)
            .await
            .expect("produce");
    }

    // Move it off its first replica (its leader) to the spare broker.
    let target = vec![spare, old[1]];
    let dir = tempfile::tempdir().expect("tmp");
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        format!(
            r#"{{"version":1,"partitions":[{{"topic":"moving","partition":0,"replicas":[{},{}]}}]}}"#,
            target[0], target[1]
        ),
    )
    .expect("write plan");
    let plan = plan.to_str().expect("utf8");
    let o = krust_testkit::cli::run(
        BIN,
        &[
            "reassign-partitions",
            "--bootstrap-server",
            &bootstrap,
            "--reassignment-json-file",
            plan,
            "--execute",
        ],
    );
    let out = krust_testkit::cli::stdout(&o);
    assert!(
        o.status.success(),
        "{out}{}",
        krust_testkit::cli::stderr(&o)
    );
    assert!(
        out.contains("Current partition replica assignment"),
        "{out}"
    );
    assert!(
        out.contains("Successfully started partition reassignments for moving-0"),
        "{out}"
    );
    wait_for("the reassignment to complete", WAIT, || {
        let o = krust_testkit::cli::run(
            BIN,
            &[
                "reassign-partitions",
                "--bootstrap-server",
                &bootstrap,
                "--reassignment-json-file",
                plan,
                "--verify",
            ],
        );
        krust_testkit::cli::stdout(&o)
            .contains("Reassignment of partition moving-0 is completed.")
            .then_some(())
    });
    let after = describe_topic(BIN, &bootstrap, "moving").expect("describe");
    assert_eq!(after[&0].replicas, target);
    assert!(target.contains(&after[&0].leader), "{after:?}");
    let o = krust_testkit::cli::run(
        BIN,
        &[
            "reassign-partitions",
            "--bootstrap-server",
            &bootstrap,
            "--list",
        ],
    );
    assert!(
        krust_testkit::cli::stdout(&o).contains("No partition reassignments found."),
        "{}",
        krust_testkit::cli::stdout(&o)
    );

    // The data moved with it, and the old replica's log is gone.
    let records = read_all(&bootstrap, "moving", 0, 100);
    assert_eq!(records.len(), 100);
    assert_eq!(records[99].1, "m99");
    let old_dir = c.node(old[0]).partition_dir("moving", 0);
    wait_for("the removed replica's log deleted", WAIT, || {
        (!old_dir.exists()).then_some(())
    });
}

/// An acks=all Produce waiting for a follower does not hold back the next Produce requests
/// on the same connection: they are appended (and replicated) at once; a request of
/// another kind waits its turn; every answer leaves in request order, even after the
/// client has half-closed the connection.
#[test]
fn produce_requests_behind_a_waiting_acks_all_one_are_appended_at_once_and_answered_in_order() {
    use std::io::{Read, Write};

    use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ProduceResponse};
    use kafka_protocol::protocol::Decodable;

    // A paused follower stays in the ISR (and its broker unfenced) for the whole test.
    let mut c = Cluster::start(
        BIN,
        3,
        &[
            "broker.session.timeout.ms=60000",
            "broker.heartbeat.interval.ms=500",
            "replica.lag.time.max.ms=60000",
        ],
    );
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "pipelined", "1", "2");
    let d = wait_for("pipelined fully in sync", WAIT, || {
        describe(&bootstrap, "pipelined").filter(|d| d[&0].0 > 0 && d[&0].1.len() == 3)
    });
    let leader = d[&0].0;
    let controller = status_leader(&c.controller_bootstrap());
    let paused = (1..=3)
        .find(|id| *id != leader && *id != controller)
        .expect("a plain follower");
    let other = (1..=3)
        .find(|id| *id != leader && *id != paused)
        .expect("the other follower");
    let other_dir = c.node(other).partition_dir("pipelined", 0);
    c.node(paused).pause();

    let addr = c.node(leader).client_addr();
    let connect = || {
        let s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s
    };
    let produce = |s: &mut std::net::TcpStream, corr: i32, acks: i16, value: &str| {
        let req = produce_p0("pipelined", value, acks, 60_000);
        s.write_all(&common::frame(ApiKey::Produce, 8, corr, &req))
            .expect("send");
    };
    // One connection: acks=all, acks=all, acks=1, then a request of another kind.
    let mut s = connect();
    produce(&mut s, 1, -1, "first-of-three");
    produce(&mut s, 2, -1, "second-of-three");
    produce(&mut s, 3, 1, "third-of-three");
    let versions = ApiVersionsRequest::default();
    s.write_all(&common::frame(ApiKey::ApiVersions, 0, 4, &versions))
        .expect("send");
    // Another: acks=all, acks=1, then the client half-closes it.
    let mut h = connect();
    produce(&mut h, 1, -1, "fourth-half-closed");
    produce(&mut h, 2, 1, "fifth-half-closed");
    h.shutdown(std::net::Shutdown::Write).expect("half-close");
    // The acks=all ones wait for the paused follower; every batch reached the other one.
    let values = [
        "first-of-three",
        "second-of-three",
        "third-of-three",
        "fourth-half-closed",
        "fifth-half-closed",
    ];
    wait_for("every batch on the other follower", WAIT, || {
        let log = log_bytes(&other_dir);
        let has = |v: &[u8]| log.windows(v.len()).any(|w| w == v);
        values.iter().all(|v| has(v.as_bytes())).then_some(())
    });
    c.node(paused).resume();
    // Correlation id and, for a Produce (ids up to `produces`), its base offset, of each
    // of `n` responses in turn.
    let answers = |s: &mut std::net::TcpStream, n: i32, produces: i32| -> Vec<(i32, i64)> {
        (0..n)
            .map(|_| {
                let mut size = [0u8; 4];
                s.read_exact(&mut size).expect("response size");
                let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                s.read_exact(&mut body).expect("response body");
                let corr = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                if corr > produces {
                    return (corr, -1);
                }
                let resp = ProduceResponse::decode(&mut bytes::Bytes::from(body).split_off(4), 8)
                    .expect("decode");
                let p = &resp.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0, "request {corr}: {:?}", p.error_message);
                (corr, p.base_offset)
            })
            .collect()
    };
    let first = answers(&mut s, 4, 3);
    let corrs: Vec<i32> = first.iter().map(|a| a.0).collect();
    assert_eq!(corrs, [1, 2, 3, 4], "responses out of request order");
    // Appended in request order (the other connection's records may come in between).
    assert!(
        first[0].1 < first[1].1 && first[1].1 < first[2].1,
        "{first:?}"
    );
    let second = answers(&mut h, 2, 2);
    assert_eq!(second.iter().map(|a| a.0).collect::<Vec<_>>(), [1, 2]);
    assert!(second[0].1 < second[1].1, "{second:?}");
}

/// A Produce request of one record to partition 0 of `topic`.
fn produce_p0(
    topic: &str,
    value: &str,
    acks: i16,
    timeout_ms: i32,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(common::batch(&[value]).freeze()))])])
}

/// Sends one acks=all record to partition 0 of `topic` on `node` itself, and returns the
/// partition's error code. A client library would not do: it asks any broker it knows for
/// metadata, and could send the record to the partition's leader elsewhere.
fn produce_p0_on(node: &krust_testkit::Node, topic: &str, value: &str, timeout_ms: i32) -> i16 {
    use std::io::Write;

    use kafka_protocol::messages::{ApiKey, ProduceResponse};
    use kafka_protocol::protocol::Decodable;
    let mut s = std::net::TcpStream::connect(node.client_addr()).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let req = produce_p0(topic, value, -1, timeout_ms);
    s.write_all(&common::frame(ApiKey::Produce, 8, 1, &req))
        .expect("send");
    let resp = ProduceResponse::decode(&mut common::read_response(&mut s, 0), 8).expect("decode");
    resp.responses[0].partition_responses[0].error_code
}

/// Kills a child process when dropped (a failed test leaves nothing running).
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// As Kafka's producer does, `producer-perf-test` sends batches again after a retriable
/// error or a lost connection, to the partition's new leader, and with idempotence (on by
/// default under acks=all) the broker writes each one once and in order: killing the
/// leader mid-run, the run completes and the log holds every record exactly once, in the
/// order sent.
#[test]
fn producer_perf_test_rides_out_losing_the_partition_leader() {
    let mut c = Cluster::start(BIN, 3, &SETTINGS);
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "perf-failover", "1", "2");
    let d = wait_for("perf-failover fully in sync", WAIT, || {
        describe(&bootstrap, "perf-failover").filter(|d| d[&0].0 > 0 && d[&0].1.len() == 3)
    });
    let leader = d[&0].0;
    let servers = format!("bootstrap.servers={bootstrap}");
    let tool = std::process::Command::new(BIN)
        .args([
            "producer-perf-test",
            "--topic",
            "perf-failover",
            "--num-records",
            "40000",
            "--payload-monotonic",
            "--throughput",
            "5000",
            "--producer-props",
            &servers,
            "acks=all",
            "request.timeout.ms=3000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start producer-perf-test");
    let mut tool = KillOnDrop(Some(tool));
    wait_for("records written before the kill", WAIT, || {
        krust_testkit::cli::total_records(BIN, &bootstrap, "perf-failover").filter(|n| *n > 0)
    });
    c.node(leader).pause();
    let out = tool
        .0
        .take()
        .expect("running")
        .wait_with_output()
        .expect("wait for producer-perf-test");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "producer-perf-test failed: {stderr}\n{stdout}"
    );
    assert!(stdout.contains("40000 records sent"), "{stdout}");
    let others = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| c.node(id).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let held = krust_testkit::cli::total_records(BIN, &others, "perf-failover").expect("offsets");
    assert_eq!(held, 40000, "records in the log");
    let values: Vec<String> = read_all(&others, "perf-failover", 0, 40000)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let sent: Vec<String> = (0..40000).map(|i: i32| i.to_string()).collect();
    if values != sent {
        let first = values.iter().zip(&sent).position(|(a, b)| a != b);
        panic!(
            "{} records read; the first out of place is at offset {first:?}",
            values.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_isolated_partition_leader_cannot_commit_and_its_writes_vanish_on_return() {
    let mut c = Cluster::start_isolatable_brokers(BIN, 3, &SETTINGS);
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "split", "1", "2");
    let d = wait_for("split fully in sync", WAIT, || {
        describe(&bootstrap, "split").filter(|d| d[&0].0 > 0 && d[&0].1.len() == 3)
    });
    let leader = d[&0].0;
    send_p0(&producer(&bootstrap), "split", "before", 10)
        .await
        .expect("acks=all before the split");

    // Cut the leader off from the controller and the other brokers; clients still reach it.
    c.isolate(leader, true);
    let majority = (2..=4)
        .filter(|id| *id != leader)
        .map(|id| c.node(id).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    wait_for("a new leader on the majority side", WAIT, || {
        describe(&majority, "split").filter(|d| d[&0].0 > 0 && d[&0].0 != leader)
    });
    // The old leader, which has not heard of it, cannot get acks=all writes acknowledged.
    let refused = produce_p0_on(c.node(leader), "split", "minority", 3000);
    assert_ne!(refused, 0, "the minority side acknowledged a write");
    send_p0(&producer(&majority), "split", "majority", 20)
        .await
        .expect("acks=all on the majority side");

    // Heal: the old leader follows the new one and drops what it alone had.
    c.isolate(leader, false);
    wait_identical_logs(&c, "split", true);
    let values: Vec<String> = read_all(&bootstrap, "split", 0, 2)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["before", "majority"]);
}

#[test]
fn committed_group_offsets_survive_losing_the_coordinator() {
    let mut settings = SETTINGS.to_vec();
    settings.extend([
        "offsets.topic.replication.factor=3",
        "offsets.topic.num.partitions=1",
    ]);
    let mut c = Cluster::start(BIN, 3, &settings);
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "work", "1", "2");
    let records: Vec<String> = (0..10).map(|i| format!("job-{i}")).collect();
    krust_testkit::cli::console_produce(
        BIN,
        &bootstrap,
        "work",
        &records,
        &["--producer-property", "acks=all"],
    );
    let read = krust_testkit::cli::run(
        BIN,
        &[
            "console-consumer",
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "work",
            "--group",
            "workers",
            "--from-beginning",
            "--max-messages",
            "10",
        ],
    );
    assert!(
        read.status.success(),
        "{}",
        krust_testkit::cli::stderr(&read)
    );

    // The coordinator is the leader of the (single) offsets partition: kill it.
    let (_, survivors) = kill_the_group_coordinator(&mut c, &bootstrap);

    // A new coordinator on another broker knows the committed offset.
    let described = wait_for("the group's offsets from the new coordinator", WAIT, || {
        let o = krust_testkit::cli::run(
            BIN,
            &[
                "consumer-groups",
                "--bootstrap-server",
                &survivors,
                "--describe",
                "--group",
                "workers",
            ],
        );
        let out = krust_testkit::cli::stdout(&o);
        out.lines()
            .find(|l| l.starts_with("workers "))
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
    });
    assert_eq!(described[1], "work", "{described:?}");
    assert_eq!(described[3], "10", "current offset: {described:?}");
}

/// Kills the leader of the (single) `__consumer_offsets` partition, once all three
/// replicas are in sync: the groups' coordinator. Its id, and the other nodes' bootstrap.
fn kill_the_group_coordinator(c: &mut Cluster, bootstrap: &str) -> (i32, String) {
    let offsets = wait_for("the offsets topic in sync", WAIT, || {
        describe_topic(BIN, bootstrap, "__consumer_offsets")
            .filter(|d| d.get(&0).is_some_and(|p| p.leader > 0 && p.isr.len() == 3))
    });
    let coordinator = offsets[&0].leader;
    c.node(coordinator).kill9();
    let survivors = (1..=3)
        .filter(|id| *id != coordinator)
        .map(|id| c.node(id).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    (coordinator, survivors)
}

/// Every record of `topic`-0 below its high watermark, as (offset, value), read through
/// `addr`.
fn read_to_end(addr: &str, topic: &str) -> Vec<(i64, String)> {
    let consumer = reader(addr, topic, 0);
    let Ok((_, high)) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, String)> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while out.last().is_none_or(|(o, _)| o + 1 < high) && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            out.push((m.offset(), v));
        }
    }
    out
}

/// A compacted partition on three brokers: each replica compacts its own log; a follower
/// that was down while the leader compacted catches up across the leader's gaps; after the
/// leader dies, the new leader serves each key's last value at its offset.
#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_partition_is_replicated_across_its_gaps() {
    let mut settings = SETTINGS.to_vec();
    settings.push("log.cleaner.backoff.ms=100");
    let mut c = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &settings,
    );
    let bootstrap = c.bootstrap();
    create_topic_with(
        BIN,
        &bootstrap,
        "kv",
        &[
            "--partitions",
            "1",
            "--replication-factor",
            "3",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.bytes=1048576",
            "--config",
            "min.cleanable.dirty.ratio=0.01",
        ],
    );
    krust_testkit::cli::wait_topic_served(BIN, &bootstrap, "kv");
    let d = wait_for("kv fully in sync", WAIT, || {
        describe(&bootstrap, "kv").filter(|d| d[&0].0 > 0 && d[&0].1.len() == 3)
    });
    let leader = d[&0].0;
    let away = (2..=4).find(|id| *id != leader).expect("a follower");
    assert!(c.node(away).stop(), "clean stop");

    // 12 000 records over 30 keys, then 6 000 of keys of their own so the others leave the
    // active segment: record i's value is `v{i}-` and some padding.
    let p = producer(&c.node(leader).bootstrap());
    let key = |i: usize| {
        if i < 12_000 {
            format!("key-{}", i % 30)
        } else {
            format!("filler-{i}")
        }
    };
    let value = |i: usize| format!("v{i}-{}", "y".repeat(200));
    let mut pending = Vec::new();
    for i in 0..18_000 {
        let (k, v) = (key(i), value(i));
        let rec = FutureRecord::to("kv").key(&k).payload(&v).partition(0);
        pending.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
    }
    let mut last: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for (i, f) in pending.into_iter().enumerate() {
        let delivered = f
            .await
            .expect("delivery report")
            .unwrap_or_else(|(e, _)| panic!("produce: {e:?}"));
        last.insert(key(i), (delivered.offset, value(i)));
    }
    let keyed = |got: &[(i64, String)]| {
        got.iter()
            .filter(|(_, v)| {
                v[1..v.find('-').unwrap_or(1)]
                    .parse::<usize>()
                    .is_ok_and(|i| i < 12_000)
            })
            .count()
    };
    wait_for("the leader to compact", WAIT, || {
        let got = read_to_end(&c.node(leader).bootstrap(), "kv");
        (keyed(&got) == 30).then_some(())
    });

    // The follower returns and copies the compacted log, gaps and all; then the leader dies.
    c.node(away).restart();
    wait_for("kv fully in sync again", WAIT, || {
        describe(&bootstrap, "kv").filter(|d| d[&0].1.len() == 3)
    });
    c.node(leader).kill9();
    let others = (2..=4)
        .filter(|id| *id != leader)
        .map(|id| c.node(id).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    wait_for("a new leader", WAIT, || {
        describe(&others, "kv").filter(|d| d[&0].0 > 0 && d[&0].0 != leader)
    });
    // The new leader may be the returned follower: each key's last value is there, at its
    // offset, once its own cleaner has run.
    let got = wait_for("every key once on the new leader", WAIT, || {
        let got = read_to_end(&others, "kv");
        (keyed(&got) == 30).then_some(got)
    });
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    let by_offset: BTreeMap<i64, &str> = got.iter().map(|(o, v)| (*o, v.as_str())).collect();
    for (k, (offset, v)) in &last {
        assert_eq!(by_offset.get(offset).copied(), Some(v.as_str()), "{k}");
    }
}

/// Transactions on three brokers: the coordinator writes markers to partitions led by the
/// other brokers, and when it dies mid-transaction the new coordinator (another replica of
/// `__transaction_state`) commits it: read_committed consumers see every committed record
/// once and no aborted one.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_outlives_its_coordinator() {
    use rdkafka::producer::Producer;
    let mut settings = SETTINGS.to_vec();
    settings.extend([
        "transaction.state.log.replication.factor=3",
        "transaction.state.log.num.partitions=1",
        "transaction.state.log.min.isr=2",
    ]);
    let mut c = Cluster::start(BIN, 3, &settings);
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "txr", "3", "2");
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "rtx")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "2")
        .create()
        .expect("producer");
    let t = Duration::from_secs(60);
    p.init_transactions(t).expect("init");
    let send = |v: String, part: i32| {
        let p = p.clone();
        async move {
            p.send(
                FutureRecord::<(), _>::to("txr").payload(&v).partition(part),
                Duration::from_secs(60),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("send {v}: {e:?}"));
        }
    };
    p.begin_transaction().expect("begin");
    for i in 0..9 {
        send(format!("c-{i}"), i % 3).await;
    }
    p.commit_transaction(t).expect("commit");
    p.begin_transaction().expect("begin");
    for i in 0..3 {
        send(format!("a-{i}"), i % 3).await;
    }
    p.abort_transaction(t).expect("abort");

    // A transaction open on every partition when its coordinator dies.
    let coordinator = wait_for("the transaction state in sync", WAIT, || {
        describe_topic(BIN, &bootstrap, "__transaction_state")
            .filter(|d| d.get(&0).is_some_and(|p| p.leader > 0 && p.isr.len() == 3))
    })[&0]
        .leader;
    p.begin_transaction().expect("begin");
    for i in 0..3 {
        send(format!("late-{i}"), i % 3).await;
    }
    c.node(coordinator).kill9();
    p.commit_transaction(t)
        .expect("committed through the new coordinator");
    let survivors = (1..=3)
        .filter(|id| *id != coordinator)
        .map(|id| c.node(id).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let mut got = Vec::new();
    for part in 0..3 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &survivors)
            .set("group.id", "txr-check")
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("txr", part, Offset::Beginning)
            .expect("assign");
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + WAIT;
        let mut mine = 0;
        while mine < 4 && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                mine += 1;
            }
        }
    }
    got.sort();
    let mut want: Vec<String> = (0..9)
        .map(|i| format!("c-{i}"))
        .chain((0..3).map(|i| format!("late-{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// A consumer-protocol group whose coordinator dies: the group's records are replicated
/// with `__consumer_offsets`, so the new coordinator on another broker knows its members,
/// epochs and assignments. The members carry on without a rebalance and read what comes
/// next.
#[test]
fn a_consumer_protocol_group_outlives_its_coordinator() {
    use rdkafka::consumer::{CommitMode, ConsumerContext, Rebalance};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Counting(AtomicUsize);
    impl rdkafka::ClientContext for Counting {}
    impl ConsumerContext for Counting {
        fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
            if !matches!(r, Rebalance::Error(_)) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    let mut settings = SETTINGS.to_vec();
    settings.extend([
        "offsets.topic.replication.factor=3",
        "offsets.topic.num.partitions=1",
        "group.consumer.min.heartbeat.interval.ms=500",
        "group.consumer.heartbeat.interval.ms=500",
    ]);
    let mut c = Cluster::start(BIN, 3, &settings);
    let bootstrap = c.bootstrap();
    create_replicated(&bootstrap, "tasks", "2", "1");
    let first: Vec<String> = (0..100).map(|i| format!("task-{i}")).collect();
    krust_testkit::cli::console_produce(BIN, &bootstrap, "tasks", &first, &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicUsize::new(0));
    let mut members = Vec::new();
    for name in ["m1", "m2"] {
        let consumer: BaseConsumer<Counting> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "taskers")
            .set("group.protocol", "consumer")
            .set("client.id", name)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(Counting::default())
            .expect("consumer");
        consumer.subscribe(&["tasks"]).expect("subscribe");
        let (stop, read) = (stop.clone(), read.clone());
        let assigned = Arc::new(AtomicUsize::new(0));
        let rebalances = Arc::new(AtomicUsize::new(0));
        let (a, r) = (assigned.clone(), rebalances.clone());
        let handle = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    read.fetch_add(1, Ordering::SeqCst);
                    let _ = consumer.commit_message(&m, CommitMode::Sync);
                }
                if let Ok(tpl) = consumer.assignment() {
                    a.store(tpl.count(), Ordering::SeqCst);
                }
                r.store(
                    consumer.context().0.load(Ordering::SeqCst),
                    Ordering::SeqCst,
                );
            }
        });
        members.push((assigned, rebalances, handle));
    }
    wait_for(
        "one partition each and the first records read",
        WAIT,
        || {
            (members
                .iter()
                .all(|(a, _, _)| a.load(Ordering::SeqCst) == 1)
                && read.load(Ordering::SeqCst) >= 100)
                .then_some(())
        },
    );
    let rebalances: Vec<usize> = members
        .iter()
        .map(|(_, r, _)| r.load(Ordering::SeqCst))
        .collect();

    let (coordinator, survivors) = kill_the_group_coordinator(&mut c, &bootstrap);
    wait_for("the topic led by the survivors", WAIT, || {
        describe_topic(BIN, &survivors, "tasks")
            .filter(|d| d.len() == 2 && d.values().all(|p| p.leader > 0 && p.leader != coordinator))
    });
    let next: Vec<String> = (100..200).map(|i| format!("task-{i}")).collect();
    krust_testkit::cli::console_produce(BIN, &survivors, "tasks", &next, &[]);
    wait_for("the next records read", WAIT, || {
        (read.load(Ordering::SeqCst) >= 200).then_some(())
    });
    let after: Vec<usize> = members
        .iter()
        .map(|(_, r, _)| r.load(Ordering::SeqCst))
        .collect();
    assert_eq!(after, rebalances, "no rebalance when the coordinator moved");
    stop.store(true, Ordering::Relaxed);
    for (_, _, h) in members {
        h.join().expect("member");
    }
}
