//! librdkafka (through rdkafka) against a real krust node: topic admin, produce with every
//! codec and acks setting, consume by assignment, list offsets, configs, delete records.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminOptions, AlterConfig, NewPartitions, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn produce_every_codec_and_acks_then_consume_in_order() {
    let node = start(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        for acks in ["0", "1", "all"] {
            let topic = format!("codec-{codec}-acks-{acks}");
            create_topic(&node, &topic, 1, &[]).await;
            let p = producer(&node, acks, codec);
            let n = 300;
            let mut pending = Vec::new();
            for i in 0..n {
                let key = format!("k{i}");
                let value = format!("value-{i}-{}", "x".repeat(i % 50));
                let rec = FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&value)
                    .partition(0)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "h",
                        value: Some("hv"),
                    }));
                pending.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
            }
            for f in pending {
                f.await
                    .expect("delivery report")
                    .unwrap_or_else(|(e, _)| panic!("{topic}: delivery failed: {e:?}"));
            }
            let got = consume(&node, &topic, 0, Offset::Beginning, n, WAIT);
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g.offset, i as i64, "{topic}");
                assert_eq!(
                    g.key.as_deref(),
                    Some(format!("k{i}").as_bytes()),
                    "{topic}"
                );
                assert_eq!(
                    g.value.as_deref(),
                    Some(format!("value-{i}-{}", "x".repeat(i % 50)).as_bytes())
                );
                assert_eq!(g.headers, vec![("h".to_string(), Some(b"hv".to_vec()))]);
            }
            assert_eq!(watermarks(&node, &topic, 0), (0, n as i64), "{topic}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_admin_lifecycle() {
    let node = start(&[]);
    let admin = admin(&node);
    let opts = AdminOptions::new();
    create_topic(&node, "orders", 3, &[("retention.ms", "60000")]).await;

    let again = admin
        .create_topics(
            [&rdkafka::admin::NewTopic::new(
                "orders",
                1,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &opts,
        )
        .await
        .expect("request");
    assert_eq!(
        again[0].as_ref().err().map(|e| e.1),
        Some(RDKafkaErrorCode::TopicAlreadyExists)
    );

    let bad = admin
        .create_topics(
            [
                &rdkafka::admin::NewTopic::new(
                    "bad name",
                    1,
                    rdkafka::admin::TopicReplication::Fixed(1),
                ),
                &rdkafka::admin::NewTopic::new(
                    "badcfg",
                    1,
                    rdkafka::admin::TopicReplication::Fixed(1),
                )
                .set("retention.ms", "abc"),
                &rdkafka::admin::NewTopic::new(
                    "badrf",
                    1,
                    rdkafka::admin::TopicReplication::Fixed(3),
                ),
                // Kafka would recompress every batch; krust stores them as produced.
                &rdkafka::admin::NewTopic::new(
                    "recompressed",
                    1,
                    rdkafka::admin::TopicReplication::Fixed(1),
                )
                .set("compression.type", "gzip"),
            ],
            &opts,
        )
        .await
        .expect("request");
    assert_eq!(
        bad[0].as_ref().err().map(|e| e.1),
        Some(RDKafkaErrorCode::InvalidTopic)
    );
    assert_eq!(
        bad[1].as_ref().err().map(|e| e.1),
        Some(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        bad[2].as_ref().err().map(|e| e.1),
        Some(RDKafkaErrorCode::InvalidReplicationFactor)
    );
    assert_eq!(
        bad[3].as_ref().err().map(|e| e.1),
        Some(RDKafkaErrorCode::InvalidConfig)
    );

    let md = consumer(&node)
        .fetch_metadata(Some("orders"), WAIT)
        .expect("metadata");
    let t = &md.topics()[0];
    assert_eq!(t.name(), "orders");
    assert_eq!(t.partitions().len(), 3);
    assert!(t
        .partitions()
        .iter()
        .all(|p| p.leader() == 1 && p.replicas() == [1] && p.isr() == [1]));

    let described = admin
        .describe_configs([&ResourceSpecifier::Topic("orders")], &opts)
        .await
        .expect("describe");
    let cfg = described[0].as_ref().expect("topic configs");
    assert_eq!(
        cfg.get("retention.ms").and_then(|e| e.value.as_deref()),
        Some("60000")
    );
    assert_eq!(
        cfg.get("segment.bytes").and_then(|e| e.value.as_deref()),
        Some("1073741824")
    );
    assert!(cfg.get("retention.ms").is_some_and(|e| !e.is_default));
    assert!(cfg.get("cleanup.policy").is_some_and(|e| e.is_default));

    let alter = AlterConfig::new(ResourceSpecifier::Topic("orders")).set("retention.ms", "120000");
    let res = admin.alter_configs([&alter], &opts).await.expect("alter");
    assert!(res[0].is_ok(), "{res:?}");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic("orders")], &opts)
        .await
        .expect("describe");
    let cfg = described[0].as_ref().expect("topic configs");
    assert_eq!(
        cfg.get("retention.ms").and_then(|e| e.value.as_deref()),
        Some("120000")
    );

    let bad_alter =
        AlterConfig::new(ResourceSpecifier::Topic("orders")).set("retention.ms", "soon");
    // rdkafka reports per-resource AlterConfigs errors as success; the value must not change.
    admin
        .alter_configs([&bad_alter], &opts)
        .await
        .expect("alter");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic("orders")], &opts)
        .await
        .expect("describe");
    assert_eq!(
        described[0]
            .as_ref()
            .expect("cfg")
            .get("retention.ms")
            .and_then(|e| e.value.as_deref()),
        Some("120000"),
        "a refused change changes nothing"
    );

    let brokers = admin
        .describe_configs([&ResourceSpecifier::Broker(1)], &opts)
        .await
        .expect("describe broker");
    let b = brokers[0].as_ref().expect("broker configs");
    assert_eq!(
        b.get("num.partitions").and_then(|e| e.value.as_deref()),
        Some("1")
    );

    let res = admin
        .create_partitions([&NewPartitions::new("orders", 5)], &opts)
        .await
        .expect("create partitions");
    assert!(res[0].is_ok(), "{res:?}");
    let res = admin
        .create_partitions([&NewPartitions::new("orders", 2)], &opts)
        .await
        .expect("shrink");
    assert_eq!(
        res[0].as_ref().err().map(|e| e.1),
        Some(RDKafkaErrorCode::InvalidPartitions)
    );
    let md = consumer(&node)
        .fetch_metadata(Some("orders"), WAIT)
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 5);
    assert!(node.partition_dir("orders", 4).exists());

    let res = admin
        .delete_topics(&["orders"], &opts)
        .await
        .expect("delete");
    assert!(res[0].is_ok(), "{res:?}");
    wait_for("orders to disappear", WAIT, || {
        let md = consumer(&node).fetch_metadata(None, WAIT).ok()?;
        md.topics()
            .iter()
            .all(|t| t.name() != "orders")
            .then_some(())
    });
    wait_for("the partition directories to be removed", WAIT, || {
        (!node.partition_dir("orders", 0).exists()).then_some(())
    });
    let res = admin
        .delete_topics(&["orders"], &opts)
        .await
        .expect("delete again");
    assert_eq!(
        res[0].as_ref().err().map(|e| e.1),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
}

/// ListOffsets by time reads inside batches of every codec (lz4 is covered below).
#[tokio::test(flavor = "multi_thread")]
async fn a_timestamp_is_found_inside_batches_of_every_codec() {
    let node = start(&[]);
    let base = 1_700_000_000_000i64;
    for codec in ["none", "gzip", "snappy", "zstd"] {
        let topic = format!("clock-{codec}");
        create_topic(&node, &topic, 1, &[]).await;
        let p = producer(&node, "all", codec);
        let mut pending = Vec::new();
        for i in 0..100i64 {
            let v = format!("v{i}");
            let rec = FutureRecord::<(), _>::to(&topic)
                .payload(&v)
                .partition(0)
                .timestamp(base + i * 1000);
            pending.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
        }
        for f in pending {
            f.await.expect("report").expect("deliver");
        }
        let c = consumer(&node);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(base + 42_500))
            .expect("tpl");
        let found = c.offsets_for_times(tpl, WAIT).expect("offsets_for_times");
        assert_eq!(found.elements()[0].offset(), Offset::Offset(43), "{codec}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consume_from_latest_and_from_a_timestamp() {
    let node = start(&[]);
    create_topic(&node, "clock", 1, &[]).await;
    // Compressed and batched: the answer must come from inside a batch.
    let p = producer(&node, "all", "lz4");
    let base = 1_700_000_000_000i64;
    let values: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    let mut pending = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let rec = FutureRecord::<(), _>::to("clock")
            .payload(v)
            .partition(0)
            .timestamp(base + i as i64 * 1000);
        pending.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
    }
    for f in pending {
        f.await.expect("report").expect("deliver");
    }
    // By timestamp: the first record at or after base + 42.5 s is offset 43.
    let c = consumer(&node);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("clock", 0, Offset::Offset(base + 42_500))
        .expect("tpl");
    let found = c.offsets_for_times(tpl, WAIT).expect("offsets_for_times");
    let off = found.elements()[0].offset();
    assert_eq!(off, Offset::Offset(43));
    let got = consume(&node, "clock", 0, off, 1, WAIT);
    assert_eq!(got[0].offset, 43);
    assert_eq!(got[0].timestamp, Some(base + 43_000));

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("clock", 0, Offset::Offset(base + 1_000_000))
        .expect("tpl");
    let found = c.offsets_for_times(tpl, WAIT).expect("offsets_for_times");
    assert_eq!(
        found.elements()[0].offset(),
        Offset::End,
        "no record that late"
    );

    // From latest: only records produced after assignment arrive.
    let c = consumer(&node);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("clock", 0, Offset::End)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + WAIT;
    // Wait until the consumer has resolved its position (a poll returns nothing).
    let _ = c.poll(Duration::from_millis(500));
    p.send(
        FutureRecord::<(), _>::to("clock")
            .payload("late")
            .partition(0),
        Duration::from_secs(10),
    )
    .await
    .expect("deliver");
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no record from latest"
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            use rdkafka::Message;
            assert_eq!(m.payload(), Some(&b"late"[..]));
            assert_eq!(m.offset(), 100);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_records_moves_the_log_start() {
    let node = start(&[]);
    create_topic(&node, "trim", 1, &[]).await;
    let p = producer(&node, "1", "none");
    for i in 0..50 {
        let v = format!("v{i}");
        p.send(
            FutureRecord::<(), _>::to("trim").payload(&v).partition(0),
            Duration::from_secs(10),
        )
        .await
        .expect("deliver");
    }
    let admin = admin(&node);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, Offset::Offset(20))
        .expect("tpl");
    let res = admin
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .expect("delete records");
    assert_eq!(res.elements()[0].offset(), Offset::Offset(20));
    assert_eq!(watermarks(&node, "trim", 0), (20, 50));
    let got = consume(&node, "trim", 0, Offset::Beginning, 30, WAIT);
    assert_eq!(got[0].offset, 20);
    assert_eq!(got[29].value.as_deref(), Some(&b"v49"[..]));
}

/// CreateTime timestamps outside `message.timestamp.after.max.ms` (default an hour ahead)
/// and `message.timestamp.before.max.ms` (when set) are refused with INVALID_TIMESTAMP,
/// compressed or not; LogAppendTime topics take any.
#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_timestamps_are_refused() {
    let node = start(&[]);
    create_topic(&node, "future", 1, &[]).await;
    create_topic(
        &node,
        "recent",
        1,
        &[("message.timestamp.before.max.ms", "60000")],
    )
    .await;
    create_topic(
        &node,
        "stamped",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let hour = 3_600_000;
    for codec in ["none", "lz4"] {
        let p = producer(&node, "all", codec);
        let send = |topic: &'static str, ts: i64| {
            let p = p.clone();
            async move {
                p.send(
                    FutureRecord::<(), _>::to(topic)
                        .payload("t")
                        .partition(0)
                        .timestamp(ts),
                    Duration::from_secs(10),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e.rdkafka_error_code())
            }
        };
        assert_eq!(
            send("future", now + 2 * hour).await,
            Err(Some(RDKafkaErrorCode::InvalidTimestamp)),
            "{codec}"
        );
        send("future", now + hour / 2)
            .await
            .expect("half an hour ahead");
        send("future", now - 100 * hour)
            .await
            .expect("no limit in the past");
        assert_eq!(
            send("recent", now - hour).await,
            Err(Some(RDKafkaErrorCode::InvalidTimestamp)),
            "{codec}"
        );
        send("recent", now - 1000).await.expect("a second ago");
        send("stamped", now + 2 * hour)
            .await
            .expect("log append time");
    }
    assert_eq!(watermarks(&node, "future", 0), (0, 4));
    assert_eq!(watermarks(&node, "recent", 0), (0, 2));
}
