//! Consumer groups with real clients: librdkafka members joining, leaving and crashing,
//! a kafka-python member in the same group, static membership, and committed offsets
//! across a broker kill.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);
/// Group settings that keep tests quick: no initial delay.
const FAST_GROUPS: &[&str] = &["group.initial.rebalance.delay.ms=0"];

#[derive(Default)]
struct Counting {
    rebalances: AtomicUsize,
}

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if matches!(r, Rebalance::Assign(_)) {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A librdkafka group member polled on its own thread.
struct Member {
    name: String,
    assigned: Arc<Mutex<BTreeSet<i32>>>,
    context: Arc<AtomicUsize>,
    poller: Background,
}

impl Member {
    fn start(
        node: &Node,
        group: &str,
        topic: &str,
        name: &str,
        instance_id: Option<&str>,
    ) -> Member {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", node.bootstrap())
            .set("group.id", group)
            .set("client.id", name)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range");
        if let Some(id) = instance_id {
            cfg.set("group.instance.id", id);
        }
        let consumer: BaseConsumer<Counting> = cfg
            .create_with_context(Counting::default())
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let assigned: Arc<Mutex<BTreeSet<i32>>> = Arc::default();
        let rebalances = Arc::new(AtomicUsize::new(0));
        let (a, r) = (assigned.clone(), rebalances.clone());
        // Stopping drops the consumer, which closes it: a dynamic member leaves the group.
        let poller = Background::spawn(move || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                // Process, then commit the next offset to read, as applications do.
                let _ = consumer.commit_message(&m, CommitMode::Async);
            }
            if let Ok(tpl) = consumer.assignment() {
                *a.lock().expect("lock") = tpl.elements().iter().map(|e| e.partition()).collect();
            }
            r.store(
                consumer.context().rebalances.load(Ordering::SeqCst),
                Ordering::SeqCst,
            );
        });
        Member {
            name: name.to_string(),
            assigned,
            context: rebalances,
            poller,
        }
    }

    fn partitions(&self) -> BTreeSet<i32> {
        self.assigned.lock().expect("lock").clone()
    }

    fn rebalances(&self) -> usize {
        self.context.load(Ordering::SeqCst)
    }

    fn close(self) {
        self.poller.stop();
    }
}

/// Waits until the members' assignments are disjoint, cover `0..partitions`, and have
/// the sizes in `sizes` (sorted).
fn wait_balanced(members: &[&Member], partitions: i32, sizes: &[usize]) {
    wait_assigned(members, partitions, partitions as usize, sizes)
}

/// Like [`wait_balanced`] when other (non-librdkafka) members hold the rest: these members
/// own `owned` distinct partitions of `partitions`.
fn wait_assigned(members: &[&Member], partitions: i32, owned: usize, sizes: &[usize]) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| m.partitions()).collect();
        let mut union = BTreeSet::new();
        let mut total = 0;
        for s in &sets {
            total += s.len();
            union.extend(s.iter().copied());
        }
        let mut got: Vec<usize> = sets.iter().map(BTreeSet::len).collect();
        got.sort_unstable();
        let in_range = union.iter().all(|p| (0..partitions).contains(p));
        if total == owned && union.len() == owned && in_range && got == sizes {
            return;
        }
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert!(
            std::time::Instant::now() < deadline,
            "no balanced assignment {sizes:?} of {partitions} partitions: members {names:?} own {sets:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kafka_python_member(node: &Node, group: &str, topic: &str) -> Child {
    let python = krust_testkit::python::python();
    let script = r#"
import sys, time
from kafka import KafkaConsumer
c = KafkaConsumer(sys.argv[2], bootstrap_servers=sys.argv[1], group_id=sys.argv[3],
                  client_id="kp-member", session_timeout_ms=6000, heartbeat_interval_ms=500,
                  enable_auto_commit=False, auto_offset_reset="earliest",
                  partition_assignment_strategy=[__import__("kafka").coordinator.assignors.range.RangePartitionAssignor])
while True:
    c.poll(timeout_ms=100)
    print("ASSIGNED", sorted(tp.partition for tp in c.assignment()), flush=True)
    time.sleep(0.1)
"#;
    Command::new(python)
        .args(["-c", script, &node.bootstrap(), topic, group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kafka-python member")
}

/// Committed offsets of `group` on `partitions` partitions of `topic` (-1 when none).
fn committed(node: &Node, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut want = TopicPartitionList::new();
    for p in 0..partitions {
        want.add_partition(topic, p);
    }
    let got = c.committed_offsets(want, WAIT).expect("committed offsets");
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

/// Checks that no committed offset went backwards since `before`, and returns the new ones.
fn committed_never_decrease(node: &Node, before: &[i64]) -> Vec<i64> {
    let now = committed(node, "billing", "billing-events", 6);
    for (p, (b, n)) in before.iter().zip(&now).enumerate() {
        assert!(
            n >= b,
            "partition {p}: committed offset went back from {b} to {n}"
        );
    }
    now
}

#[tokio::test(flavor = "multi_thread")]
async fn members_join_leave_crash_and_the_partitions_follow() {
    let node = start(FAST_GROUPS);
    create_topic(&node, "billing-events", 6, &[]).await;
    let p = producer(&node, "1", "none");
    for i in 0..600 {
        let v = format!("bill-{i}");
        let rec = FutureRecord::<(), _>::to("billing-events")
            .payload(&v)
            .partition(i % 6);
        p.send_result(rec).map_err(|(e, _)| e).expect("enqueue");
    }
    use rdkafka::producer::Producer;
    p.flush(Duration::from_secs(30)).expect("flush");
    let mut offsets = vec![-1; 6];

    let a = Member::start(&node, "billing", "billing-events", "a", None);
    let b = Member::start(&node, "billing", "billing-events", "b", None);
    let c = Member::start(&node, "billing", "billing-events", "c", None);
    wait_balanced(&[&a, &b, &c], 6, &[2, 2, 2]);
    offsets = committed_never_decrease(&node, &offsets);

    // A clean leave: the other two take its partitions.
    c.close();
    wait_balanced(&[&a, &b], 6, &[3, 3]);
    offsets = committed_never_decrease(&node, &offsets);

    // A kafka-python member joins the same group...
    let mut py = kafka_python_member(&node, "billing", "billing-events");
    wait_assigned(&[&a, &b], 6, 4, &[2, 2]);
    // ...and crashes: after its session times out the librdkafka members own everything.
    py.kill().expect("kill python member");
    let _ = py.wait();
    wait_balanced(&[&a, &b], 6, &[3, 3]);
    offsets = committed_never_decrease(&node, &offsets);

    // A new member joins and the group rebalances again.
    let d = Member::start(&node, "billing", "billing-events", "d", None);
    wait_balanced(&[&a, &b, &d], 6, &[2, 2, 2]);
    // Everything gets consumed and committed in the end.
    wait_for("all 600 records committed", WAIT, || {
        let now = committed(&node, "billing", "billing-events", 6);
        (now.iter().sum::<i64>() == 600).then_some(())
    });
    committed_never_decrease(&node, &offsets);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_member_rejoins_without_a_rebalance() {
    let node = start(FAST_GROUPS);
    create_topic(&node, "static-events", 4, &[]).await;
    let a = Member::start(&node, "static", "static-events", "a", None);
    let s1 = Member::start(&node, "static", "static-events", "s", Some("instance-1"));
    wait_balanced(&[&a, &s1], 4, &[2, 2]);
    let before = s1.partitions();
    let rebalances = a.rebalances();
    // A static member closing does not leave the group; its replacement with the same
    // instance id takes over its assignment without a rebalance.
    s1.close();
    let s2 = Member::start(&node, "static", "static-events", "s", Some("instance-1"));
    wait_for("the static member's assignment back", WAIT, || {
        (s2.partitions() == before).then_some(())
    });
    assert_eq!(
        a.rebalances(),
        rebalances,
        "the other member saw no rebalance"
    );
    wait_balanced(&[&a, &s2], 4, &[2, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_offsets_survive_a_broker_kill() {
    let mut node = start(FAST_GROUPS);
    create_topic(&node, "ledger", 2, &[]).await;
    let p = producer(&node, "all", "none");
    for i in 0..100 {
        let v = format!("v{i}");
        p.send(
            FutureRecord::<(), _>::to("ledger")
                .payload(&v)
                .partition(i % 2),
            Duration::from_secs(10),
        )
        .await
        .expect("deliver");
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "ledger-readers")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("ledger", 0, Offset::Offset(17))
        .expect("tpl");
    tpl.add_partition_offset("ledger", 1, Offset::Offset(42))
        .expect("tpl");
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(consumer);

    node.kill9();
    node.restart();

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "ledger-readers")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut want = TopicPartitionList::new();
    want.add_partition("ledger", 0);
    want.add_partition("ledger", 1);
    let committed = consumer.committed_offsets(want, WAIT).expect("committed");
    let offsets: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(offsets, vec![Offset::Offset(17), Offset::Offset(42)]);

    // A group member resumes from the committed offsets.
    consumer.subscribe(&["ledger"]).expect("subscribe");
    let mut first: std::collections::BTreeMap<i32, i64> = Default::default();
    wait_for("records from both partitions", WAIT, || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            use rdkafka::Message;
            first.entry(m.partition()).or_insert(m.offset());
        }
        (first.len() == 2).then_some(())
    });
    assert_eq!(first.get(&0), Some(&17));
    assert_eq!(first.get(&1), Some(&42));
}

#[tokio::test(flavor = "multi_thread")]
async fn default_offsets_replication_factor_on_one_broker_explains_itself() {
    let node = start(&["offsets.topic.replication.factor=3"]);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "never")
        .create()
        .expect("consumer");
    let mut want = TopicPartitionList::new();
    want.add_partition("t", 0);
    assert!(consumer
        .committed_offsets(want, Duration::from_secs(3))
        .is_err());
    wait_for(
        "the log line explaining the replication factor",
        WAIT,
        || {
            node.log()
                .contains("offsets.topic.replication.factor is 3")
                .then_some(())
        },
    );
    let explained = node
        .log()
        .matches("offsets.topic.replication.factor is 3")
        .count();
    assert_eq!(explained, 1, "logged once");
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_offsets_stay_small_under_many_commits() {
    let mut node = start(&[
        "group.initial.rebalance.delay.ms=0",
        "offsets.topic.num.partitions=1",
        "offsets.topic.segment.bytes=20000",
    ]);
    create_topic(&node, "busy", 1, &[]).await;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "committer")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    for i in 0..3000i64 {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("busy", 0, Offset::Offset(i))
            .expect("tpl");
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    let dir = node.partition_dir("__consumer_offsets", 0);
    let size = || -> u64 {
        std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum()
    };
    // 3000 commits wrote far more than 20 KB; compaction keeps the partition small.
    wait_for("__consumer_offsets to be compacted", WAIT, || {
        (size() < 100_000).then_some(())
    });
    node.kill9();
    node.restart();
    let mut want = TopicPartitionList::new();
    want.add_partition("busy", 0);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "committer")
        .create()
        .expect("consumer");
    let committed = consumer.committed_offsets(want, WAIT).expect("committed");
    assert_eq!(committed.elements()[0].offset(), Offset::Offset(2999));
}
