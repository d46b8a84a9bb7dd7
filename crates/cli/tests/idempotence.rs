//! The idempotent producer: connections cut mid-request while producing; every record is
//! written exactly once and in order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use krust_testkit::proxy::Proxy;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;

#[tokio::test(flavor = "multi_thread")]
async fn retries_after_cut_connections_write_each_record_once_in_order() {
    let proxy_port = krust_testkit::free_port();
    let mut node = start(&[]);
    // Clients learn the proxy's address from Metadata, so all their traffic crosses it.
    node.extra.push(format!(
        "advertised.listeners=PLAINTEXT://127.0.0.1:{proxy_port},CONTROLLER://127.0.0.1:{}",
        node.controller_port
    ));
    node.kill9();
    node.restart();
    // The first 25 connections through the proxy are cut after 8-24 KB from the client,
    // in the middle of produce requests.
    let proxy = Arc::new(Proxy::start_cutting(
        proxy_port,
        node.client_addr(),
        25,
        16_000,
    ));
    create_topic(&node, "idem", 1, &[]).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{proxy_port}"))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "200")
        .set("message.timeout.ms", "120000")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .create()
        .expect("producer");

    let n = 20_000usize;
    let values: Vec<String> = (0..n).map(|i| format!("{i:08}")).collect();
    let mut pending = Vec::with_capacity(n);
    for v in &values {
        let rec = FutureRecord::<(), _>::to("idem").payload(v).partition(0);
        pending.push(
            producer
                .send_result(rec)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
    }
    for f in pending {
        f.await
            .expect("delivery report")
            .unwrap_or_else(|(e, _)| panic!("delivery failed: {e:?}"));
    }
    assert!(
        proxy.cuts() >= 5,
        "the test must actually cut connections ({} cuts)",
        proxy.cuts()
    );

    assert_eq!(
        watermarks(&node, "idem", 0),
        (0, n as i64),
        "no duplicates were written"
    );
    let got = consume(
        &node,
        "idem",
        0,
        Offset::Beginning,
        n,
        Duration::from_secs(60),
    );
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            g.value.as_deref(),
            Some(values[i].as_bytes()),
            "record {i} in order, once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_state_survives_a_broker_kill() {
    let mut node = start(&[]);
    create_topic(&node, "idem-restart", 1, &[]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "120000")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "200")
        .create()
        .expect("producer");
    let send = |i: usize| {
        let v = format!("{i:06}");
        let rec = FutureRecord::<(), _>::to("idem-restart")
            .payload(&v)
            .partition(0);
        producer
            .send_result(rec)
            .map_err(|(e, _)| e)
            .expect("enqueue")
    };
    for i in 0..500 {
        send(i)
            .await
            .expect("report")
            .unwrap_or_else(|(e, _)| panic!("{e:?}"));
    }
    node.kill9();
    node.restart();
    // The same producer continues its sequence; the rebuilt state accepts it.
    for i in 500..1000 {
        send(i)
            .await
            .expect("report")
            .unwrap_or_else(|(e, _)| panic!("{e:?}"));
    }
    assert_eq!(watermarks(&node, "idem-restart", 0), (0, 1000));
    // A clean stop writes the producer-state snapshot; the restart starts from it.
    assert!(node.stop(), "clean stop");
    assert!(node
        .partition_dir("idem-restart", 0)
        .join("producer-state.snapshot")
        .exists());
    node.restart();
    for i in 1000..1500 {
        send(i)
            .await
            .expect("report")
            .unwrap_or_else(|(e, _)| panic!("{e:?}"));
    }
    assert_eq!(watermarks(&node, "idem-restart", 0), (0, 1500));
    let got = consume(
        &node,
        "idem-restart",
        0,
        Offset::Beginning,
        1500,
        Duration::from_secs(30),
    );
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.value.as_deref(), Some(format!("{i:06}").as_bytes()));
    }
}
