//! The Prometheus endpoint: scraped and parsed as Prometheus text, its values move with
//! traffic.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

/// Fetches /metrics and parses every sample into "name{labels}" → value.
fn scrape(port: u16) -> BTreeMap<String, f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let mut out = BTreeMap::new();
    for line in body.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert!(
                matches!(words.first(), Some(&"HELP") | Some(&"TYPE")),
                "bad comment: {line}"
            );
            if words[0] == "TYPE" {
                assert!(
                    matches!(
                        words.get(2),
                        Some(&"counter") | Some(&"gauge") | Some(&"histogram")
                    ),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line}");
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        out.insert(series.to_string(), v);
    }
    out
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_prometheus_text_and_move_with_traffic() {
    let port = krust_testkit::free_port();
    let node = start(&[
        &format!("http.listener=http://127.0.0.1:{port}"),
        "group.initial.rebalance.delay.ms=0",
    ]);
    create_topic(&node, "watched", 1, &[]).await;
    let before = scrape(port);

    let p = producer(&node, "1", "none");
    for i in 0..50 {
        let v = format!("value-{i}");
        p.send(
            FutureRecord::<(), _>::to("watched")
                .payload(&v)
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .expect("deliver");
    }
    let got = consume(
        &node,
        "watched",
        0,
        Offset::Beginning,
        50,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), 50);
    let c = consumer(&node);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("watched", 0, Offset::Offset(20))
        .expect("tpl");
    c.commit(&tpl, CommitMode::Sync).expect("commit");

    let after = scrape(port);
    let produce = "kafka_network_requestmetrics_requests_total{request=\"Produce\"}";
    assert!(
        value(&after, produce) >= value(&before, produce) + 50.0,
        "produce requests counted"
    );
    assert!(
        value(
            &after,
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"watched\"}"
        ) >= 50.0
    );
    assert!(
        value(
            &after,
            "kafka_server_brokertopicmetrics_bytesin_total{topic=\"watched\"}"
        ) > 0.0
    );
    assert!(
        value(
            &after,
            "kafka_server_brokertopicmetrics_bytesout_total{topic=\"watched\"}"
        ) > 0.0
    );
    assert_eq!(
        value(
            &after,
            "kafka_log_log_logendoffset{topic=\"watched\",partition=\"0\"}"
        ),
        50.0
    );
    assert_eq!(
        value(&after, "kafka_consumergroup_lag{group=\"krust-test-reader\",topic=\"watched\",partition=\"0\"}"),
        30.0
    );
    assert!(value(&after, "kafka_server_replicamanager_partitioncount") >= 1.0);
    assert_eq!(
        value(
            &after,
            "kafka_server_replicamanager_underreplicatedpartitions"
        ),
        0.0
    );
    assert_eq!(
        value(&after, "kafka_controller_kafkacontroller_activebrokercount"),
        1.0
    );
    let hist = "kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"}";
    assert_eq!(value(&after, hist), value(&after, produce));
}

#[test]
fn a_taken_metrics_port_does_not_stop_a_node() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let node = start(&[&format!("http.listener=127.0.0.1:{port}")]);
    assert!(krust_testkit::api_versions_ok(node.client_addr()));
    wait_for(
        "the warning about the metrics port",
        Duration::from_secs(10),
        || {
            node.log()
                .contains("metrics endpoint disabled")
                .then_some(())
        },
    );
}

/// `queued.max.request.bytes`: a request's size is reserved from the pool as soon as its
/// size prefix is read. While one connection's large request is only partly sent, another
/// request that does not fit in what is left waits unread, and is answered once the first
/// one is; the pool's use shows in Kafka's SocketServer MemoryPool gauges.
#[test]
fn queued_max_request_bytes_holds_back_what_does_not_fit() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
    use kafka_protocol::protocol::{Decodable, StrBytes};

    let port = krust_testkit::free_port();
    let node = start(&[
        &format!("http.listener=http://127.0.0.1:{port}"),
        "queued.max.request.bytes=1048576",
    ]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(create_topic(&node, "pooled", 1, &[]));
    let used = |m: &BTreeMap<String, f64>| value(m, "kafka_network_socketserver_memorypoolused");
    assert_eq!(
        value(
            &scrape(port),
            "kafka_network_socketserver_memorypoolavailable"
        ),
        1048576.0
    );
    let produce = |kib: usize, corr: i32| {
        let value = "x".repeat(kib << 10);
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("pooled")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&[&value]).freeze()))])]);
        frame(ApiKey::Produce, 8, corr, &req)
    };
    let answered = |s: &mut TcpStream| {
        let mut body = read_response(s, 0);
        let resp = ProduceResponse::decode(&mut body, 8).expect("decode");
        resp.responses[0].partition_responses[0].error_code
    };

    // A: 700 KiB, all but its last byte; its size is reserved.
    let first = produce(700, 1);
    let mut a = TcpStream::connect(node.client_addr()).expect("connect");
    a.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    a.write_all(&first[..first.len() - 1]).expect("write");
    krust_testkit::wait_for(
        "the first request's reservation",
        Duration::from_secs(10),
        || (used(&scrape(port)) >= (700 << 10) as f64).then_some(()),
    );

    // B: 400 KiB, more than is left; written from a thread (the node reads no more of it).
    let second = produce(400, 2);
    let mut b = TcpStream::connect(node.client_addr()).expect("connect");
    let mut writer = b.try_clone().expect("clone");
    let sent = std::thread::spawn(move || writer.write_all(&second));
    b.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    assert!(
        matches!(b.read(&mut byte), Err(ref e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the second request was answered while the first held the pool"
    );

    // A's last byte: A is answered, then B, and the pool is free again.
    a.write_all(&first[first.len() - 1..]).expect("write");
    assert_eq!(answered(&mut a), 0);
    b.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(answered(&mut b), 0);
    sent.join().expect("writer").expect("write");
    krust_testkit::wait_for("the pool given back", Duration::from_secs(10), || {
        (used(&scrape(port)) == 0.0).then_some(())
    });
}
