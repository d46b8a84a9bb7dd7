//! Log compaction (`cleanup.policy=compact`) with librdkafka (through rdkafka) against a
//! real node: the cleaner keeps the last value of each key at its offset, tombstones stay
//! until an earlier cleaning covered them, idempotent producers' batches and every codec
//! survive, consumers read across the gaps, and a restart finds the compacted log.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;

const WAIT: Duration = Duration::from_secs(60);

fn idempotent_producer(node: &Node, codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("enable.idempotence", "true")
        .set("compression.codec", codec)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// Sends `(key, value)` records to partition 0 and waits for all their acks.
async fn send_all(p: &FutureProducer, topic: &str, records: &[(String, Option<String>)]) {
    let mut pending = Vec::new();
    for (k, v) in records {
        let mut rec = FutureRecord::to(topic).key(k).partition(0);
        if let Some(v) = v {
            rec = rec.payload(v);
        }
        pending.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
    }
    for f in pending {
        f.await
            .expect("delivery report")
            .unwrap_or_else(|(e, _)| panic!("{topic}: delivery failed: {e:?}"));
    }
}

/// Everything below the high watermark, read from the start.
fn read_all(node: &Node, topic: &str) -> Vec<Got> {
    let (_, high) = watermarks(node, topic, 0);
    let c = consumer(node);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    rdkafka::consumer::Consumer::assign(&c, &tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    let mut out: Vec<Got> = Vec::new();
    while out.last().is_none_or(|g| g.offset + 1 < high) {
        assert!(
            Instant::now() < deadline,
            "read {} records of {topic}",
            out.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            use rdkafka::message::Message;
            out.push(Got {
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                timestamp: None,
                headers: Vec::new(),
            });
        }
    }
    out
}

/// 200 characters that compress poorly, different for each `i`.
fn noise(i: usize) -> String {
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..25)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:08x}", x as u32)
        })
        .collect()
}

/// Records `i` of `from..from + n` over `keys` keys, `value-{i}-` and ~200 bytes.
fn keyed(from: usize, n: usize, keys: usize) -> Vec<(String, Option<String>)> {
    (from..from + n)
        .map(|i| {
            (
                format!("key-{}", i % keys),
                Some(format!("value-{i}-{}", noise(i))),
            )
        })
        .collect()
}

/// Records with keys of their own, to push the others out of the active segment.
fn filler(tag: &str, n: usize) -> Vec<(String, Option<String>)> {
    (0..n)
        .map(|i| (format!("{tag}-{i}"), Some(noise(1_000_000 + i))))
        .collect()
}

/// The value of the metric `name` at the node's HTTP listener on `port`.
fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    raw.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_topic_keeps_the_last_value_of_each_key() {
    let port = krust_testkit::free_port();
    let http = format!("http.listener=http://127.0.0.1:{port}");
    let mut node = start(&["log.cleaner.backoff.ms=100", &http]);
    for codec in ["none", "lz4", "zstd"] {
        let topic = format!("compacted-{codec}");
        create_topic(
            &node,
            &topic,
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "1048576"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("delete.retention.ms", "0"),
            ],
        )
        .await;
        let p = idempotent_producer(&node, codec);
        // 12 000 records over 40 keys, then tombstones for keys 0-4, then 6 000 records
        // with keys of their own so the others leave the active segment.
        let mut records = keyed(0, 12_000, 40);
        for k in 0..5 {
            records.push((format!("key-{k}"), None));
        }
        records.extend(filler("filler", 6_000));
        send_all(&p, &topic, &records).await;
        let mut last: HashMap<Vec<u8>, (i64, Option<Vec<u8>>)> = HashMap::new();
        for (offset, (k, v)) in records.iter().enumerate() {
            last.insert(
                k.clone().into_bytes(),
                (offset as i64, v.clone().map(String::into_bytes)),
            );
        }
        let before = watermarks(&node, &topic, 0);

        // The cleaner runs: each of the 40 keys ends up once, at its last offset.
        let got = wait_for("compaction", WAIT, || {
            let got = read_all(&node, &topic);
            let keyed = got
                .iter()
                .filter(|g| g.key.as_deref().is_some_and(|k| k.starts_with(b"key-")))
                .count();
            (keyed == 40).then_some(got)
        });
        assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));
        for g in &got {
            let k = g.key.clone().expect("every record has a key");
            let (offset, value) = &last[&k];
            if k.starts_with(b"key-") {
                assert_eq!(
                    g.offset,
                    *offset,
                    "{topic}: {}",
                    String::from_utf8_lossy(&k)
                );
                assert_eq!(&g.value, value, "{topic}");
            }
        }
        // Offsets and the end are unchanged; the earliest offset too.
        assert_eq!(watermarks(&node, &topic, 0), before, "{topic}");

        // A record without a key is refused, as Kafka refuses it.
        let refused = p
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .payload("no key")
                    .partition(0),
                Duration::from_secs(10),
            )
            .await;
        match refused {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {}
            other => panic!("{topic}: a keyless record gave {other:?}"),
        }

        // More of the same keys: a second cleaning covers them, and the tombstones it
        // finds in segments cleaned before (delete.retention.ms=0) go.
        let mut more = keyed(20_000, 8_000, 40);
        more.extend(filler("filler2", 6_000));
        send_all(&p, &topic, &more).await;
        let base = records.len() as i64;
        wait_for("second compaction", WAIT, || {
            let got = read_all(&node, &topic);
            let tombstones = got.iter().filter(|g| g.value.is_none()).count();
            let old_values = got
                .iter()
                .filter(|g| {
                    g.key.as_deref().is_some_and(|k| k.starts_with(b"key-")) && g.offset < base
                })
                .count();
            (tombstones == 0 && old_values == 0).then_some(())
        });
    }

    // Kafka's cleaner metrics say what the last cleaning did.
    let took = metric(port, "kafka_log_logcleaner_max_clean_time_secs").expect("clean time");
    let recopy = metric(port, "kafka_log_logcleaner_cleaner_recopy_percent").expect("recopy");
    assert!(
        took > 0.0 && recopy > 0.0 && recopy < 100.0,
        "{took} s, {recopy} %"
    );
    let uncleanable = "kafka_log_logcleanermanager_uncleanable_partitions_count";
    assert_eq!(metric(port, uncleanable), Some(0.0));
    assert!(metric(port, "kafka_log_logcleanermanager_max_dirty_percent").is_some());

    // A restart finds the compacted logs, and the cleaner's checkpoint.
    let topic = "compacted-lz4";
    let got = read_all(&node, topic);
    assert!(node.stop(), "clean shutdown");
    node.restart();
    assert_eq!(read_all(&node, topic), got);
    let checkpoint = std::fs::read_to_string(
        node.partition_dir(topic, 0)
            .with_file_name("cleaner-offset-checkpoint"),
    )
    .expect("cleaner checkpoint");
    assert!(checkpoint.contains("compacted-lz4 0 "), "{checkpoint}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_compacted_topics_are_cleaned() {
    let node = start(&["log.cleaner.backoff.ms=100"]);
    create_topic(&node, "plain", 1, &[("segment.bytes", "1048576")]).await;
    create_topic(
        &node,
        "kept",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1048576"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let p = idempotent_producer(&node, "none");
    for topic in ["plain", "kept"] {
        send_all(&p, topic, &keyed(0, 12_000, 10)).await;
    }
    // A delete-policy topic takes keyless records.
    let r = p
        .send(
            FutureRecord::<(), _>::to("plain")
                .payload("no key")
                .partition(0),
            Duration::from_secs(10),
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
    // Once the compacted topic's inactive segments are cleaned, the other topic still
    // holds every record.
    wait_for("compaction", WAIT, || {
        (read_all(&node, "kept").len() < 12_000).then_some(())
    });
    assert_eq!(read_all(&node, "plain").len(), 12_001);
}
