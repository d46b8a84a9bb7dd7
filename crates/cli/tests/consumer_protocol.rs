//! Kafka's consumer group protocol (KIP-848) with librdkafka members
//! (`group.protocol=consumer`): the coordinator assigns, members hand partitions over
//! one heartbeat at a time, regular expressions follow new topics, and committed offsets
//! carry over to classic members once the group is empty.

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Buf;
use common::*;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureRecord, Producer};

const WAIT: Duration = Duration::from_secs(60);
/// Quick heartbeats and sessions for tests.
const FAST: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.consumer.min.heartbeat.interval.ms=500",
    "group.consumer.heartbeat.interval.ms=500",
    "group.consumer.min.session.timeout.ms=6000",
    "group.consumer.session.timeout.ms=6000",
];

/// A librdkafka member of a consumer-protocol group, polled on its own thread; it commits
/// each record it reads.
struct Member {
    name: String,
    assigned: Arc<Mutex<BTreeSet<(String, i32)>>>,
    read: Arc<AtomicUsize>,
    poller: Background,
}

impl Member {
    fn start(node: &Node, group: &str, subscription: &[&str], name: &str) -> Member {
        Member::speaking("consumer", node, group, subscription, name)
    }

    /// A member speaking `protocol`: "consumer" or "classic" (JoinGroup and SyncGroup, with
    /// librdkafka's assignors).
    fn speaking(
        protocol: &str,
        node: &Node,
        group: &str,
        subscription: &[&str],
        name: &str,
    ) -> Member {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", node.bootstrap())
            .set("group.id", group)
            .set("group.protocol", protocol)
            .set("client.id", name)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("consumer");
        consumer.subscribe(subscription).expect("subscribe");
        let assigned: Arc<Mutex<BTreeSet<(String, i32)>>> = Arc::default();
        let read = Arc::new(AtomicUsize::new(0));
        let (a, r) = (assigned.clone(), read.clone());
        // Stopping drops the consumer, which closes it: it leaves the group.
        let poller = Background::spawn(move || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                r.fetch_add(1, Ordering::SeqCst);
                let _ = consumer.commit_message(&m, CommitMode::Async);
            }
            if let Ok(tpl) = consumer.assignment() {
                *a.lock().expect("lock") = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
            }
        });
        Member {
            name: name.to_string(),
            assigned,
            read,
            poller,
        }
    }

    fn partitions(&self) -> BTreeSet<(String, i32)> {
        self.assigned.lock().expect("lock").clone()
    }

    fn close(self) {
        self.poller.stop();
    }
}

/// Waits until the members own `total` distinct partitions between them, in shares of
/// `sizes` (sorted).
fn wait_shared(members: &[&Member], total: usize, sizes: &[usize]) {
    wait_for("the partitions to be shared", WAIT, || {
        let sets: Vec<BTreeSet<(String, i32)>> = members.iter().map(|m| m.partitions()).collect();
        let union: BTreeSet<&(String, i32)> = sets.iter().flatten().collect();
        let owned: usize = sets.iter().map(BTreeSet::len).sum();
        let mut got: Vec<usize> = sets.iter().map(BTreeSet::len).collect();
        got.sort_unstable();
        (union.len() == total && owned == total && got == sizes).then_some(())
    });
    for m in members {
        assert!(
            !m.partitions().is_empty() || sizes.contains(&0),
            "{}",
            m.name
        );
    }
}

fn produce(node: &Node, topic: &str, partitions: i32, n: usize) {
    let p = producer(node, "1", "none");
    for i in 0..n {
        let v = format!("{topic}-{i}");
        let rec = FutureRecord::<(), _>::to(topic)
            .payload(&v)
            .partition(i as i32 % partitions);
        p.send_result(rec).map_err(|(e, _)| e).expect("enqueue");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// The sum of the group's committed offsets on `partitions` partitions of `topic`.
fn committed_sum(node: &Node, group: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut want = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        want.add_partition(topic, p);
    }
    let got = c.committed_offsets(want, WAIT).expect("committed offsets");
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

/// ConsumerGroupDescribe v1 of `group`, sent to the group's coordinator (the only node).
fn describe(node: &Node, group: &str) -> ConsumerGroupDescribeResponse {
    let mut s = TcpStream::connect(node.bootstrap()).expect("connect");
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let key = ApiKey::ConsumerGroupDescribe;
    std::io::Write::write_all(&mut s, &frame(key, 1, 7, &req)).expect("send");
    let mut body = read_response(&mut s, key.response_header_version(1));
    let resp = ConsumerGroupDescribeResponse::decode(&mut body, 1).expect("response");
    assert!(!body.has_remaining());
    resp
}

/// `krust consumer-groups` against the node.
fn consumer_groups(node: &Node, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["consumer-groups", "--bootstrap-server", &node.bootstrap()])
        .args(args)
        .output()
        .expect("krust consumer-groups")
}

/// ListGroups v5 of the only node.
fn list_groups(node: &Node) -> ListGroupsResponse {
    let mut s = TcpStream::connect(node.bootstrap()).expect("connect");
    let key = ApiKey::ListGroups;
    let req = ListGroupsRequest::default();
    std::io::Write::write_all(&mut s, &frame(key, 5, 8, &req)).expect("send");
    let mut body = read_response(&mut s, key.response_header_version(5));
    ListGroupsResponse::decode(&mut body, 5).expect("response")
}

#[tokio::test(flavor = "multi_thread")]
async fn members_share_partitions_and_hand_them_over() {
    let node = start(FAST);
    create_topic(&node, "ledger", 6, &[]).await;
    produce(&node, "ledger", 6, 600);

    let a = Member::start(&node, "books", &["ledger"], "a");
    wait_shared(&[&a], 6, &[6]);
    let b = Member::start(&node, "books", &["ledger"], "b");
    let c = Member::start(&node, "books", &["ledger"], "c");
    wait_shared(&[&a, &b, &c], 6, &[2, 2, 2]);

    // The members' last acknowledgements may still be on their way.
    let d = wait_for("the group to be stable", WAIT, || {
        let d = describe(&node, "books");
        (d.groups[0].group_state.as_str() == "Stable").then_some(d)
    });
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0, "{g:?}");
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 3);
    for m in &g.members {
        assert_eq!(m.member_epoch, g.assignment_epoch, "{m:?}");
        assert_eq!(m.member_type, 1);
        let names: Vec<&str> = m
            .assignment
            .topic_partitions
            .iter()
            .map(|t| t.topic_name.as_str())
            .collect();
        assert_eq!(names, ["ledger"]);
    }
    let listed = list_groups(&node);
    let g = listed
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "books")
        .expect("listed");
    assert_eq!(
        (
            g.group_type.as_str(),
            g.protocol_type.as_str(),
            g.group_state.as_str()
        ),
        ("consumer", "consumer", "Stable")
    );

    // Kafka's tool shows the new protocol's epochs and targets.
    let tool = |args: &[&str]| {
        let o = consumer_groups(&node, args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = tool(&["--list", "--type"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["books", "Consumer"]),
        "{out}"
    );
    let out = tool(&["--describe", "--group", "books", "--state", "--verbose"]);
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("books"))
        .expect("state row")
        .split_whitespace()
        .collect();
    let epoch = d.groups[0].group_epoch.to_string();
    assert_eq!(
        row[3..],
        ["uniform", "Stable", &epoch, &epoch, "3"],
        "{out}"
    );
    // The offsets view names each partition's member.
    let out = tool(&["--describe", "--group", "books"]);
    let owners: BTreeSet<&str> = out
        .lines()
        .filter(|l| l.starts_with("books "))
        .filter_map(|l| l.split_whitespace().nth(6))
        .collect();
    assert_eq!(owners.len(), 3, "three members own the partitions: {out}");
    assert!(!owners.contains("-"), "{out}");
    let out = tool(&["--describe", "--group", "books", "--members", "--verbose"]);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("books")).collect();
    assert_eq!(rows.len(), 3, "{out}");
    for r in rows {
        let cols: Vec<&str> = r.split_whitespace().collect();
        // #PARTITIONS, CURRENT-EPOCH, CURRENT-ASSIGNMENT, TARGET-EPOCH, TARGET-ASSIGNMENT
        assert_eq!(cols[4], "2", "{out}");
        assert_eq!(
            (cols[5], cols[7]),
            (epoch.as_str(), epoch.as_str()),
            "{out}"
        );
        assert!(
            cols[6].starts_with("ledger:") && cols[6] == cols[8],
            "{out}"
        );
    }

    // A clean leave: the other two take its partitions.
    c.close();
    wait_shared(&[&a, &b], 6, &[3, 3]);
    wait_for("all 600 records committed", WAIT, || {
        (committed_sum(&node, "books", "ledger", 6) == 600).then_some(())
    });
    let read = a.read.load(Ordering::SeqCst) + b.read.load(Ordering::SeqCst);
    assert!(read >= 400, "the two left read the rest: {read}");

    // A classic member joins the group: the coordinator gives it its share too.
    let classic = Member::speaking("classic", &node, "books", &["ledger"], "old");
    wait_shared(&[&a, &b, &classic], 6, &[2, 2, 2]);
    let d = describe(&node, "books");
    let types: BTreeSet<i8> = d.groups[0].members.iter().map(|m| m.member_type).collect();
    assert_eq!(types, BTreeSet::from([0, 1]), "{d:?}");

    // When the last consumer-protocol member leaves, the group is classic again; the
    // group's offsets serve its member: nothing is read again.
    a.close();
    b.close();
    wait_shared(&[&classic], 6, &[6]);
    wait_for("a classic group", WAIT, || {
        let g = list_groups(&node)
            .groups
            .into_iter()
            .find(|g| g.group_id.as_str() == "books")?;
        (g.group_type.as_str() == "classic").then_some(())
    });
    produce(&node, "ledger", 6, 6);
    wait_for("the six new records", WAIT, || {
        (classic.read.load(Ordering::SeqCst) == 6).then_some(())
    });
    wait_for("all 606 records committed", WAIT, || {
        (committed_sum(&node, "books", "ledger", 6) == 606).then_some(())
    });
    assert_eq!(
        classic.read.load(Ordering::SeqCst),
        6,
        "only the new records"
    );
}

/// A classic group whose members move to the consumer protocol one at a time, as in a
/// rolling upgrade: the first consumer-protocol member turns it into a consumer group, the
/// classic members keep their partitions until the coordinator moves them, and the group
/// reads every record once.
#[tokio::test(flavor = "multi_thread")]
async fn a_classic_group_upgrades_as_its_members_do() {
    let node = start(FAST);
    create_topic(&node, "orders", 4, &[]).await;
    produce(&node, "orders", 4, 400);
    let x = Member::speaking("classic", &node, "shop", &["orders"], "x");
    let y = Member::speaking("classic", &node, "shop", &["orders"], "y");
    wait_shared(&[&x, &y], 4, &[2, 2]);
    wait_for("a classic group", WAIT, || {
        let g = list_groups(&node)
            .groups
            .into_iter()
            .find(|g| g.group_id.as_str() == "shop")?;
        (g.group_type.as_str() == "classic").then_some(())
    });
    let z = Member::start(&node, "shop", &["orders"], "z");
    wait_shared(&[&x, &y, &z], 4, &[1, 1, 2]);
    let g = list_groups(&node)
        .groups
        .into_iter()
        .find(|g| g.group_id.as_str() == "shop")
        .expect("listed");
    assert_eq!(g.group_type.as_str(), "consumer");
    // The classic members leave one by one; the consumer-protocol member ends with all.
    x.close();
    wait_shared(&[&y, &z], 4, &[2, 2]);
    y.close();
    wait_shared(&[&z], 4, &[4]);
    wait_for("all 400 records committed", WAIT, || {
        (committed_sum(&node, "shop", "orders", 4) == 400).then_some(())
    });
    let d = describe(&node, "shop");
    assert_eq!(d.groups[0].members.len(), 1, "{d:?}");
    assert_eq!(d.groups[0].members[0].member_type, 1);
    z.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_regular_expression_follows_new_topics() {
    let node = start(FAST);
    create_topic(&node, "audit-eu", 2, &[]).await;
    create_topic(&node, "billing", 1, &[]).await;
    let m = Member::start(&node, "auditors", &["^audit-.*"], "m");
    wait_for("the audit-eu partitions", WAIT, || {
        (m.partitions()
            == BTreeSet::from([("audit-eu".to_string(), 0), ("audit-eu".to_string(), 1)]))
        .then_some(())
    });
    create_topic(&node, "audit-us", 1, &[]).await;
    wait_for("audit-us too", WAIT, || {
        (m.partitions().len() == 3 && m.partitions().contains(&("audit-us".to_string(), 0)))
            .then_some(())
    });
    produce(&node, "audit-us", 1, 5);
    wait_for("the records of the new topic", WAIT, || {
        (m.read.load(Ordering::SeqCst) == 5).then_some(())
    });
    let d = describe(&node, "auditors");
    assert_eq!(
        d.groups[0].members[0]
            .subscribed_topic_regex
            .as_ref()
            .map(|r| r.to_string()),
        Some("(^audit-.*)".to_string())
    );
}

/// The group's membership is written to `__consumer_offsets`: a coordinator killed and
/// restarted knows its members, their epochs and assignments, and they carry on without
/// a rebalance.
#[tokio::test(flavor = "multi_thread")]
async fn members_carry_on_across_a_coordinator_restart() {
    let mut node = start(FAST);
    create_topic(&node, "journal", 4, &[]).await;
    produce(&node, "journal", 4, 400);
    let a = Member::start(&node, "scribes", &["journal"], "a");
    let b = Member::start(&node, "scribes", &["journal"], "b");
    wait_shared(&[&a, &b], 4, &[2, 2]);
    wait_for("the first 400 records committed", WAIT, || {
        (committed_sum(&node, "scribes", "journal", 4) == 400).then_some(())
    });
    let before = wait_for("the group to be stable", WAIT, || {
        let d = describe(&node, "scribes");
        (d.groups[0].group_state.as_str() == "Stable").then_some(d)
    });

    node.kill9();
    node.restart();
    produce(&node, "journal", 4, 400);
    wait_for("all 800 records committed", WAIT, || {
        (committed_sum(&node, "scribes", "journal", 4) == 800).then_some(())
    });
    wait_shared(&[&a, &b], 4, &[2, 2]);
    let d = wait_for("the group to be stable again", WAIT, || {
        let d = describe(&node, "scribes");
        (d.groups[0].group_state.as_str() == "Stable").then_some(d)
    });
    assert_eq!(d.groups[0].members.len(), 2);
    let epochs = |d: &ConsumerGroupDescribeResponse| {
        let g = &d.groups[0];
        let mut members: Vec<(String, i32)> = g
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.member_epoch))
            .collect();
        members.sort();
        (g.group_epoch, members)
    };
    assert_eq!(
        epochs(&d),
        epochs(&before),
        "no rebalance across the restart"
    );
    let read = a.read.load(Ordering::SeqCst) + b.read.load(Ordering::SeqCst);
    assert!(read >= 800, "every record read at least once: {read}");

    // Kafka's tool: an active group is neither reset nor deleted; once its members have
    // left it is both.
    let tool = |args: &[&str]| consumer_groups(&node, args);
    let reset = [
        "--reset-offsets",
        "--group",
        "scribes",
        "--topic",
        "journal",
        "--to-earliest",
        "--execute",
    ];
    assert_eq!(
        tool(&["--delete", "--group", "scribes"]).status.code(),
        Some(1)
    );
    assert_eq!(tool(&reset).status.code(), Some(1));
    a.close();
    b.close();
    wait_for("the group to empty", WAIT, || {
        (describe(&node, "scribes").groups[0].group_state.as_str() == "Empty").then_some(())
    });
    let o = tool(&reset);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(committed_sum(&node, "scribes", "journal", 4), 0);
    let o = tool(&["--delete", "--group", "scribes"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(describe(&node, "scribes").groups[0].error_code, 69, "gone");
}

/// A group's own `consumer.heartbeat.interval.ms` and `consumer.session.timeout.ms`
/// (ConfigResource GROUP), set with Kafka's tool, checked against the broker's bounds, and
/// handed to the group's members.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_has_its_own_heartbeat_interval() {
    use kafka_protocol::messages::{
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, FindCoordinatorRequest,
        TopicName,
    };
    let node = start(FAST);
    create_topic(&node, "pulse", 1, &[]).await;
    let configs = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(["configs", "--bootstrap-server", &node.bootstrap()])
            .args(["--entity-type", "groups", "--entity-name", "beats"])
            .args(args)
            .output()
            .expect("krust configs")
    };
    let o = configs(&[
        "--alter",
        "--add-config",
        "consumer.heartbeat.interval.ms=1500",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = configs(&["--describe"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("consumer.heartbeat.interval.ms=1500 sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:consumer.heartbeat.interval.ms=1500, STATIC_BROKER_CONFIG:group.consumer.heartbeat.interval.ms=500, DEFAULT_CONFIG:group.consumer.heartbeat.interval.ms=5000}"),
        "{out}"
    );
    for (bad, why) in [
        (
            "consumer.session.timeout.ms=100",
            "must be greater than or equal to",
        ),
        (
            "consumer.heartbeat.interval.ms=9000",
            "must be greater than consumer.heartbeat",
        ),
        ("consumer.rebalance.delay.ms=1", "Unknown group config name"),
        ("consumer.session.timeout.ms=0", "Value must be at least 1"),
    ] {
        let o = configs(&["--alter", "--add-config", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why), "{bad}: {err}");
    }

    // The same group twice in one request: each would be checked without the other.
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    let resource = |key: &'static str, value: &'static str| {
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(StrBytes::from_static_str("beats"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str(key))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str(value)))])
    };
    let twice = IncrementalAlterConfigsRequest::default().with_resources(vec![
        resource("consumer.session.timeout.ms", "6000"),
        resource("consumer.heartbeat.interval.ms", "5000"),
    ]);
    let key = ApiKey::IncrementalAlterConfigs;
    let mut s = TcpStream::connect(node.bootstrap()).expect("connect");
    std::io::Write::write_all(&mut s, &frame(key, 1, 9, &twice)).expect("send");
    let mut body = read_response(&mut s, key.response_header_version(1));
    let r = IncrementalAlterConfigsResponse::decode(&mut body, 1).expect("response");
    let codes: Vec<i16> = r.responses.iter().map(|x| x.error_code).collect();
    assert_eq!(codes, [42, 42], "{r:?}");
    // Topics too, as Kafka refuses any resource named twice.
    let topic = |key: &'static str, value: &'static str| {
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("pulse"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str(key))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str(value)))])
    };
    let twice = IncrementalAlterConfigsRequest::default().with_resources(vec![
        topic("retention.ms", "60000"),
        topic("segment.ms", "60000"),
    ]);
    std::io::Write::write_all(&mut s, &frame(key, 1, 10, &twice)).expect("send");
    let mut body = read_response(&mut s, key.response_header_version(1));
    let r = IncrementalAlterConfigsResponse::decode(&mut body, 1).expect("response");
    let codes: Vec<i16> = r.responses.iter().map(|x| x.error_code).collect();
    assert_eq!(codes, [42, 42], "{r:?}");

    // A member of the group is told the group's interval.
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("beats"));
    std::io::Write::write_all(&mut s, &frame(ApiKey::FindCoordinator, 3, 1, &find)).expect("send");
    read_response(&mut s, ApiKey::FindCoordinator.response_header_version(3));
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("beats")))
        .with_member_id(StrBytes::from_static_str("m-1"))
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("pulse"))]))
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("")))
        .with_topic_partitions(Some(vec![]));
    let key = ApiKey::ConsumerGroupHeartbeat;
    let resp = wait_for("a joined member", WAIT, || {
        std::io::Write::write_all(&mut s, &frame(key, 1, 2, &join)).expect("send");
        let mut body = read_response(&mut s, key.response_header_version(1));
        let r = ConsumerGroupHeartbeatResponse::decode(&mut body, 1).expect("response");
        (r.error_code == 0).then_some(r)
    });
    assert_eq!(resp.heartbeat_interval_ms, 1500);
    assert_eq!(resp.member_epoch, 1);
}
