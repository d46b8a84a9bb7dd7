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
    send_to(p, topic, partition, value).await;
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

/// One request on `s`, its response decoded.
fn call<R>(s: &mut std::net::TcpStream, req: &R, version: i16) -> R::Response
where
    R: kafka_protocol::protocol::Request,
{
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::{Decodable, HeaderVersion};
    use std::io::Write;
    let key = ApiKey::try_from(R::KEY).expect("key");
    s.write_all(&frame(key, version, 1, req)).expect("send");
    let mut body = read_response(s, R::Response::header_version(version));
    R::Response::decode(&mut body, version).expect("response")
}

/// A transactional batch of producer `pid`/`epoch` starting at sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, value: &str) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let rec = Record {
        transactional: true,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: seq,
        timestamp: 1,
        key: None,
        value: Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        std::iter::once(&rec),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("batch");
    buf.freeze()
}

/// Partition verification (KIP-890): a transactional batch for a partition its
/// transaction does not include is refused, and accepted once the partition is added.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_outside_its_transaction_is_refused() {
    use kafka_protocol::messages::*;
    let node = start(&[]);
    create_topic(&node, "ver", 2, &[]).await;
    let sb = |s: &str| kafka_protocol::protocol::StrBytes::from_string(s.to_string());
    let mut s = std::net::TcpStream::connect(node.client_addr()).expect("connect");
    // The coordinator (this node) and a producer id for the transactional id.
    let r = call(
        &mut s,
        &FindCoordinatorRequest::default()
            .with_key(sb("raw-tx"))
            .with_key_type(1),
        1,
    );
    assert_eq!(r.error_code, 0, "FindCoordinator");
    let init = wait_for("a producer id", T, || {
        let r = call(
            &mut s,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(sb("raw-tx"))))
                .with_transaction_timeout_ms(60_000),
            2,
        );
        (r.error_code == 0).then_some(r)
    });
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let produce = |s: &mut std::net::TcpStream, partition: i32, seq: i32, value: &str| {
        let req = ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(sb("raw-tx"))))
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(sb("ver")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(txn_batch(pid, epoch, seq, value))),
                ])]);
        call(s, &req, 8).responses[0].partition_responses[0].error_code
    };
    let add = |s: &mut std::net::TcpStream, partition: i32| {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(sb("raw-tx")))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb("ver")))
                    .with_partitions(vec![partition]),
            ]);
        call(s, &req, 3).results_by_topic_v3_and_below[0].results_by_partition[0]
            .partition_error_code
    };
    // No partition added yet: INVALID_TXN_STATE, and nothing written.
    assert_eq!(produce(&mut s, 0, 0, "stray"), 48);
    assert_eq!(watermarks(&node, "ver", 0), (0, 0));
    assert_eq!(add(&mut s, 0), 0);
    // An internal topic never joins a transaction: refused as unauthorized, as in Kafka.
    let internal = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(sb("raw-tx")))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(sb("__consumer_offsets")))
                .with_partitions(vec![0]),
        ]);
    let r = call(&mut s, &internal, 3);
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        29
    );
    assert_eq!(produce(&mut s, 0, 0, "in"), 0);
    // Partition 1 is not in the transaction.
    assert_eq!(produce(&mut s, 1, 0, "stray"), 48);
    let end = call(
        &mut s,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb("raw-tx")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(true),
        1,
    );
    assert_eq!(end.error_code, 0, "EndTxn");
    assert_eq!(
        read_values(&node, "ver", 2, "read_committed", 1),
        vec!["in"]
    );
    // After the commit, a late batch of the same epoch cannot open a transaction again.
    assert_eq!(produce(&mut s, 0, 1, "late"), 48);
    assert_eq!(
        watermarks_as(&node, "ver", 0, "read_committed"),
        watermarks_as(&node, "ver", 0, "read_uncommitted"),
        "no transaction left open"
    );
}

/// `krust transactions` (kafka-transactions.sh): list, describe, describe-producers, and
/// abort a transaction left open in a partition.
#[tokio::test(flavor = "multi_thread")]
async fn the_transactions_tool_lists_describes_and_aborts() {
    use krust_testkit::cli::{run, stderr, stdout};
    let node = start(&[]);
    create_topic(&node, "tt", 1, &[]).await;
    let p = txn_producer(&node, "tool-tx", &[]);
    p.begin_transaction().expect("begin");
    send(&p, "tt", 0, "open").await;
    let bootstrap = node.bootstrap();
    let tool = |args: &[&str]| {
        let mut all = vec!["transactions", "--bootstrap-server", bootstrap.as_str()];
        all.extend_from_slice(args);
        let o = run(BIN, &all);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let listed = tool(&["list"]);
    assert!(listed.starts_with("TransactionalId"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("tool-tx") && l.contains("Ongoing")),
        "{listed}"
    );
    // Open for less than an hour: not listed with --duration-filter 3600000.
    let long = tool(&["list", "--duration-filter", "3600000"]);
    assert!(!long.contains("tool-tx"), "{long}");
    let any = tool(&["list", "--duration-filter", "0"]);
    assert!(any.contains("tool-tx"), "{any}");
    let described = tool(&["describe", "--transactional-id", "tool-tx"]);
    let row: Vec<&str> = described
        .lines()
        .nth(1)
        .expect("row")
        .split('\t')
        .map(str::trim)
        .collect();
    assert_eq!(row[1], "tool-tx", "{described}");
    assert_eq!(row[4], "Ongoing", "{described}");
    assert_eq!(row[8], "tt-0", "{described}");
    let producers = tool(&["describe-producers", "--topic", "tt", "--partition", "0"]);
    let row: Vec<&str> = producers
        .lines()
        .nth(1)
        .expect("row")
        .split('\t')
        .map(str::trim)
        .collect();
    assert_eq!(
        row[5], "0",
        "the open transaction starts at offset 0: {producers}"
    );

    // Aborted by hand, as for a hanging transaction: read_committed moves on without it.
    tool(&[
        "abort",
        "--topic",
        "tt",
        "--partition",
        "0",
        "--start-offset",
        "0",
    ]);
    assert_eq!(
        watermarks_as(&node, "tt", 0, "read_committed"),
        watermarks_as(&node, "tt", 0, "read_uncommitted")
    );
    assert!(read_values(&node, "tt", 1, "read_committed", 0).is_empty());
    let unknown = run(
        BIN,
        &[
            "transactions",
            "--bootstrap-server",
            &bootstrap,
            "describe",
            "--transactional-id",
            "nobody",
        ],
    );
    assert!(!unknown.status.success());
    drop(p);
}
