//! Transactions with librdkafka's transactional producer: committed records reach
//! read_committed consumers, aborted ones never do, an open transaction holds back the last
//! stable offset, consumed offsets commit with the transaction, a new producer instance
//! fences the old one, the coordinator aborts transactions past their timeout, and all of
//! it survives a restart of the node.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);

fn txn_producer(node: &Node, id: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", node.bootstrap())
        .set("transactional.id", id)
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let p: FutureProducer = c.create().expect("producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

fn reader(node: &Node, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "txn-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

/// Values read from the start of `topic`'s partitions until `quiet` passes with nothing new
/// after at least `want` arrived (or the deadline).
fn read_values(
    node: &Node,
    topic: &str,
    partitions: i32,
    isolation: &str,
    want: usize,
) -> Vec<String> {
    let c = reader(node, isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + T;
    let mut out = Vec::new();
    let mut last_new = Instant::now();
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                last_new = Instant::now();
            }
            Some(Err(e)) => panic!("consume error: {e:?}"),
            None if out.len() >= want && last_new.elapsed() > Duration::from_millis(700) => break,
            None => {}
        }
    }
    out
}

/// (low, high) as a consumer of `isolation` sees them: high is the last stable offset
/// under read_committed.
fn watermarks_as(node: &Node, topic: &str, partition: i32, isolation: &str) -> (i64, i64) {
    reader(node, isolation)
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks")
}

async fn send(p: &FutureProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        FutureRecord::<(), _>::to(topic)
            .payload(value)
            .partition(partition),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|(e, _)| panic!("send {value}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_records_are_read_and_aborted_ones_never_are() {
    let mut node = start(&[]);
    create_topic(&node, "tx", 2, &[]).await;
    let p = txn_producer(&node, "tx-a", &[]);

    p.begin_transaction().expect("begin");
    for i in 0..10 {
        send(&p, "tx", i % 2, &format!("c1-{i}")).await;
    }
    p.commit_transaction(T).expect("commit");

    p.begin_transaction().expect("begin");
    for i in 0..6 {
        send(&p, "tx", i % 2, &format!("ab-{i}")).await;
    }
    // Open: read_committed consumers are held at the transaction's first offset.
    let (_, hw) = watermarks_as(&node, "tx", 0, "read_uncommitted");
    let (_, lso) = watermarks_as(&node, "tx", 0, "read_committed");
    assert!(
        lso < hw,
        "an open transaction holds back the last stable offset ({lso} < {hw})"
    );
    p.abort_transaction(T).expect("abort");

    p.begin_transaction().expect("begin");
    for i in 0..4 {
        send(&p, "tx", i % 2, &format!("c2-{i}")).await;
    }
    p.commit_transaction(T).expect("commit");

    let expect_committed: BTreeSet<String> = (0..10)
        .map(|i| format!("c1-{i}"))
        .chain((0..4).map(|i| format!("c2-{i}")))
        .collect();
    let committed = read_values(&node, "tx", 2, "read_committed", 14);
    assert_eq!(
        committed.iter().cloned().collect::<BTreeSet<_>>(),
        expect_committed,
        "read_committed sees exactly the committed records"
    );
    assert_eq!(committed.len(), 14, "each once");
    let all = read_values(&node, "tx", 2, "read_uncommitted", 20);
    assert_eq!(
        all.len(),
        20,
        "read_uncommitted sees the aborted records too: {all:?}"
    );
    for part in 0..2 {
        let (_, hw) = watermarks_as(&node, "tx", part, "read_uncommitted");
        let (_, lso) = watermarks_as(&node, "tx", part, "read_committed");
        assert_eq!(lso, hw, "no transaction open on partition {part}");
    }

    // A crash and restart (the partition's state rebuilt from its log) keeps the aborted
    // transactions known, and the state of the transactional id.
    drop(p);
    node.kill9();
    node.restart();
    let committed = read_values(&node, "tx", 2, "read_committed", 14);
    assert_eq!(
        committed.into_iter().collect::<BTreeSet<_>>(),
        expect_committed,
        "after a restart"
    );
    let p = txn_producer(&node, "tx-a", &[]);
    p.begin_transaction().expect("begin");
    send(&p, "tx", 0, "c3").await;
    p.commit_transaction(T).expect("commit after restart");
    assert!(read_values(&node, "tx", 1, "read_committed", 8)
        .iter()
        .all(|v| !v.starts_with("ab-")));
}

#[tokio::test(flavor = "multi_thread")]
async fn consumed_offsets_commit_with_the_transaction() {
    let node = start(&[]);
    create_topic(&node, "src", 1, &[]).await;
    create_topic(&node, "dst", 1, &[]).await;
    let plain = producer(&node, "all", "none");
    for i in 0..10 {
        send_to(&plain, "src", 0, &format!("in-{i}")).await;
    }
    let group = "txn-group";
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer.subscribe(&["src"]).expect("subscribe");
    let p = txn_producer(&node, "tx-ctp", &[]);

    // Consume-transform-produce: 5 records, then their offsets with the transaction.
    let mut consumed = 0;
    let deadline = Instant::now() + T;
    p.begin_transaction().expect("begin");
    while consumed < 5 {
        assert!(Instant::now() < deadline, "consumed {consumed} of 5");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            send(&p, "dst", 0, &format!("out-{v}")).await;
            consumed += 1;
        }
    }
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("src", 0, Offset::Offset(5))
        .expect("tpl");
    let meta = consumer.group_metadata().expect("group metadata");
    p.send_offsets_to_transaction(&offsets, &meta, T)
        .expect("send offsets");
    p.commit_transaction(T).expect("commit");
    let committed = |c: &BaseConsumer| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("src", 0);
        c.committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed")
            .find_partition("src", 0)
            .map(|e| e.offset())
    };
    assert_eq!(committed(&consumer), Some(Offset::Offset(5)));

    // An aborted transaction's offsets are not committed.
    p.begin_transaction().expect("begin");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("src", 0, Offset::Offset(9))
        .expect("tpl");
    p.send_offsets_to_transaction(&offsets, &meta, T)
        .expect("send offsets");
    p.abort_transaction(T).expect("abort");
    assert_eq!(committed(&consumer), Some(Offset::Offset(5)));
    assert_eq!(read_values(&node, "dst", 1, "read_committed", 5).len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_instance_fences_the_old_and_timeouts_abort() {
    let node = start(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=200"]);
    create_topic(&node, "fence", 1, &[]).await;

    // The old instance has a transaction open when the new one starts.
    let old = txn_producer(&node, "tx-f", &[]);
    old.begin_transaction().expect("begin");
    send(&old, "fence", 0, "zombie").await;
    let new = txn_producer(&node, "tx-f", &[]);
    // Its open transaction was aborted, and it cannot go on.
    send_expecting_failure(&old, "fence", "late").await;
    let err = old
        .commit_transaction(T)
        .expect_err("the old instance is fenced");
    assert!(is_fenced(&err), "fenced: {err:?}");
    new.begin_transaction().expect("begin");
    send(&new, "fence", 0, "fresh").await;
    new.commit_transaction(T).expect("commit");
    assert_eq!(
        read_values(&node, "fence", 1, "read_committed", 1),
        vec!["fresh"]
    );

    // A transaction left open past its timeout is aborted by the coordinator: the last
    // stable offset moves on without it.
    let slow = txn_producer(
        &node,
        "tx-slow",
        &[
            ("transaction.timeout.ms", "1500"),
            ("message.timeout.ms", "1500"),
        ],
    );
    slow.begin_transaction().expect("begin");
    send(&slow, "fence", 0, "too-slow").await;
    let (_, hw) = watermarks_as(&node, "fence", 0, "read_uncommitted");
    wait_for("the timed-out transaction to be aborted", T, || {
        let (_, lso) = watermarks_as(&node, "fence", 0, "read_committed");
        (lso > hw).then_some(())
    });
    assert_eq!(
        read_values(&node, "fence", 1, "read_committed", 1),
        vec!["fresh"]
    );
    let err = slow.commit_transaction(T).expect_err("aborted by timeout");
    assert!(!err.to_string().is_empty());
}

async fn send_expecting_failure(p: &FutureProducer, topic: &str, value: &str) {
    let r = p
        .send(
            FutureRecord::<(), _>::to(topic).payload(value).partition(0),
            Duration::from_secs(10),
        )
        .await;
    assert!(r.is_err(), "a fenced producer's send fails");
}

fn is_fenced(e: &KafkaError) -> bool {
    let s = format!("{e:?}");
    s.contains("Fenced") || s.contains("fenced") || s.contains("InvalidProducerEpoch")
}
