//! Client quotas: `krust configs` sets, describes and removes them (AlterClientQuotas,
//! DescribeClientQuotas) for users, client ids, IPs and their defaults, with Kafka's
//! validation.

mod common;

use common::*;
use krust_testkit::cli::{run, stderr, stdout};

fn configs(node: &Node, args: &[&str]) -> std::process::Output {
    let b = node.bootstrap();
    let mut full = vec!["configs", "--bootstrap-server", &b];
    full.extend_from_slice(args);
    run(BIN, &full)
}

#[test]
fn quotas_are_set_described_and_removed() {
    let node = start(&[]);
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--add-config",
            "producer_byte_rate=1024,consumer_byte_rate=2048",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "Completed updating config for user alice."
    );
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "clients",
            "--entity-default",
            "--add-config",
            "consumer_byte_rate=10485760",
        ],
    );
    assert_eq!(
        stdout(&o).trim(),
        "Completed updating default config for clients in the cluster.",
        "{}",
        stderr(&o)
    );
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "ips",
            "--entity-name",
            "10.0.0.1",
            "--add-config",
            "connection_creation_rate=5",
        ],
    );
    // Quotas krust does not enforce are refused, not kept.
    assert!(
        stderr(&o).contains("not enforced by krust"),
        "{}",
        stderr(&o)
    );

    let o = configs(
        &node,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    );
    assert_eq!(
        stdout(&o).trim(),
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0"
    );
    let o = configs(&node, &["--describe", "--entity-type", "clients"]);
    assert_eq!(
        stdout(&o).trim(),
        "Quota configs for the default client-id are consumer_byte_rate=1.048576E7"
    );
    let o = configs(&node, &["--describe", "--entity-type", "ips"]);
    assert_eq!(stdout(&o).trim(), "");

    // Kafka's validation: fractional byte rates, keys of another entity, values <= 0.
    for (entity, config, wanted) in [
        (
            "users",
            "producer_byte_rate=10.5",
            "producer_byte_rate cannot be a fractional value.",
        ),
        (
            "users",
            "connection_creation_rate=5",
            "Invalid configuration key connection_creation_rate",
        ),
        (
            "clients",
            "request_percentage=0",
            "Quota request_percentage must be greater than 0",
        ),
        ("clients", "request_percentage=50", "not enforced by krust"),
        (
            "users",
            "producer_byte_rate=x",
            "Cannot parse quota configuration value for producer_byte_rate: x",
        ),
    ] {
        let o = configs(
            &node,
            &[
                "--alter",
                "--entity-type",
                entity,
                "--entity-name",
                "bob",
                "--add-config",
                config,
            ],
        );
        assert!(!o.status.success(), "{config}");
        assert!(stderr(&o).contains(wanted), "{config}: {}", stderr(&o));
    }
    let o = configs(
        &node,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "bob",
        ],
    );
    assert_eq!(stdout(&o).trim(), "");

    // A user with a client id: the two entity types pair with their names by position.
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--entity-type",
            "clients",
            "--entity-default",
            "--add-config",
            "producer_byte_rate=4096",
        ],
    );
    assert_eq!(
        stdout(&o).trim(),
        "Completed updating config for user alice.",
        "{}",
        stderr(&o)
    );
    let o = configs(
        &node,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--entity-type",
            "clients",
        ],
    );
    assert_eq!(
        stdout(&o).trim(),
        "Quota configs for user-principal 'alice', the default client-id are producer_byte_rate=4096.0"
    );
    // Kafka's shortcuts for the same.
    let o = configs(
        &node,
        &["--describe", "--user", "alice", "--client-defaults"],
    );
    assert_eq!(
        stdout(&o).trim(),
        "Quota configs for user-principal 'alice', the default client-id are producer_byte_rate=4096.0",
        "{}",
        stderr(&o)
    );
    // Removing: a key that is not set is refused by the tool, as Kafka's is.
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--delete-config",
            "request_percentage",
        ],
    );
    assert!(
        stderr(&o).contains("Invalid config(s): request_percentage"),
        "{}",
        stderr(&o)
    );
    let o = configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--delete-config",
            "producer_byte_rate,consumer_byte_rate",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = configs(
        &node,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    );
    assert_eq!(stdout(&o).trim(), "");
}

/// librdkafka's statistics: the largest throttle time any broker reported.
#[derive(Default)]
struct Throttles(std::sync::atomic::AtomicI64);

impl rdkafka::ClientContext for Throttles {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for b in statistics.brokers.values() {
            if let Some(w) = &b.throttle {
                self.0
                    .fetch_max(w.max, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Throttles {}

impl rdkafka::producer::ProducerContext for Throttles {
    type DeliveryOpaque = ();
    fn delivery(&self, report: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        assert!(report.is_ok(), "delivery failed: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_over_their_byte_rates_are_throttled() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    // Two windows of a second: a rate is measured over one to two seconds.
    let node = start(&["quota.window.num=2", "quota.window.size.seconds=1"]);
    let b = node.bootstrap();
    let o = run(
        BIN,
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--create",
            "--topic",
            "q",
            "--partitions",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for (entity, name, config) in [
        ("clients", "slow-producer", "producer_byte_rate=20000"),
        ("users", "ANONYMOUS", "consumer_byte_rate=20000"),
    ] {
        let o = configs(
            &node,
            &[
                "--alter",
                "--entity-type",
                entity,
                "--entity-name",
                name,
                "--add-config",
                config,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }

    // 100 KiB to a producer allowed 20 000 B/s: delivered, throttled on the way.
    let producer: ThreadedProducer<Throttles> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("client.id", "slow-producer")
        .set("linger.ms", "5")
        .set("batch.size", "8192")
        .set("statistics.interval.ms", "100")
        .create_with_context(Throttles::default())
        .expect("producer");
    let payload = vec![b'x'; 1024];
    for _ in 0..100 {
        let mut record = BaseRecord::<(), _>::to("q").payload(&payload).partition(0);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("all delivered");
    let deadline = Instant::now() + Duration::from_secs(10);
    while producer.context().0.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(100));
    }
    assert!(
        producer.context().0.load(Ordering::Relaxed) > 0,
        "the producer saw no throttle"
    );
    // Another client id has no quota.
    let free: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("client.id", "free")
        .create()
        .expect("producer");
    free.send(BaseRecord::<(), _>::to("q").payload("free").partition(0))
        .map_err(|(e, _)| e)
        .expect("send");
    free.flush(Duration::from_secs(10)).expect("delivered");

    // The anonymous user's consumers may read 20 000 B/s: all of it arrives, throttled.
    let consumer: BaseConsumer<Throttles> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "q")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "100")
        .create_with_context(Throttles::default())
        .expect("consumer");
    consumer.subscribe(&["q"]).expect("subscribe");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < 101 && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            got += 1;
        }
    }
    assert_eq!(got, 101);
    while consumer.context().0.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        consumer.poll(Duration::from_millis(100));
    }
    assert!(
        consumer.context().0.load(Ordering::Relaxed) > 0,
        "the consumer saw no throttle"
    );
}
