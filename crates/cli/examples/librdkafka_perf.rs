//! A neutral client for `bench/run`: librdkafka (the bundled one of the `rdkafka` crate, a
//! dev-dependency, so nothing of it reaches the `krust` binary), used the same way against
//! every broker.
//!
//! ```text
//! librdkafka_perf produce <bootstrap> <topic> <records> <size> <acks>
//! librdkafka_perf produce-txn <bootstrap> <topic> <records> <size> <records-per-transaction>
//! librdkafka_perf consume <bootstrap> <topic> <records> [read_committed]
//! ```
//!
//! `produce`: `<records>` records of `<size>` random capital letters, librdkafka's defaults
//! except `acks` and `linger.ms=5` (as kcat is run in the bench); timed from the first record
//! handed to the producer until every delivery report is in. Fails if any record is not
//! delivered. `produce-txn`: the same as a transactional producer (acks=all, idempotent),
//! committing every `<records-per-transaction>` records; timed until the last commit.
//! `consume`: `<records>` records from the earliest offsets, as a member of a new
//! consumer group; timed from the first record received to the last, so the group join is
//! left out (as in consumer-perf-test's `fetch.MB.sec`), with `fetch.queue.backoff.ms=10`
//! instead of librdkafka's 1000 (see `consume`).
//!
//! Prints one line: `librdkafka: <n> records, <r> records/sec (<m> MB/sec)` (MB = MiB).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// Counts failed deliveries.
#[derive(Default, Clone)]
struct Deliveries {
    failed: Arc<AtomicU64>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn report(records: u64, bytes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "librdkafka: {records} records, {:.1} records/sec ({:.2} MB/sec)",
        records as f64 / secs,
        bytes as f64 / secs / 1_048_576.0
    );
}

/// `per_txn`: records per transaction (transactional), or `None` (plain, with `acks`).
fn produce(
    bootstrap: &str,
    topic: &str,
    records: u64,
    size: usize,
    acks: &str,
    per_txn: Option<u64>,
) -> Result<(), String> {
    let context = Deliveries::default();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5");
    if per_txn.is_some() {
        config.set(
            "transactional.id",
            format!("bench-{}", rand::random::<u64>()),
        );
    }
    let producer: BaseProducer<Deliveries> = config
        .create_with_context(context.clone())
        .map_err(|e| format!("cannot create the producer: {e}"))?;
    let txn_timeout = Duration::from_secs(60);
    if per_txn.is_some() {
        producer
            .init_transactions(txn_timeout)
            .map_err(|e| format!("init_transactions: {e}"))?;
    }
    let payload: Vec<u8> = (0..size)
        .map(|_| b'A' + rand::random_range(0..26u8))
        .collect();
    let start = Instant::now();
    for i in 0..records {
        if let Some(n) = per_txn {
            if i % n == 0 {
                if i > 0 {
                    drain(&producer);
                    producer
                        .commit_transaction(txn_timeout)
                        .map_err(|e| format!("commit: {e}"))?;
                }
                producer
                    .begin_transaction()
                    .map_err(|e| format!("begin: {e}"))?;
            }
        }
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The producer's queue is full: serve delivery reports, then again.
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
    }
    if per_txn.is_some() {
        drain(&producer);
        producer
            .commit_transaction(txn_timeout)
            .map_err(|e| format!("commit: {e}"))?;
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| format!("flush: {e}"))?;
    let elapsed = start.elapsed();
    let failed = context.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} of {records} records not delivered"));
    }
    report(records, records * size as u64, elapsed);
    Ok(())
}

/// Serves delivery reports until nothing is in flight. The `rdkafka` crate's flush (which
/// its commit_transaction runs first) waits for them in steps of up to 100 ms, which would
/// be most of a short transaction's time.
fn drain(producer: &BaseProducer<Deliveries>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(1));
    }
}

fn consume(bootstrap: &str, topic: &str, records: u64, isolation: &str) -> Result<(), String> {
    let group = format!("bench-{}", rand::random::<u64>());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("isolation.level", isolation)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // Otherwise a consumer that empties librdkafka's prefetch queue (100 000 records,
        // reached quickly with small records) waits up to a second for the next fetch.
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("subscribe: {e}"))?;
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let idle_limit = Duration::from_secs(60);
    while n < records {
        match consumer.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                n += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64)
                    + m.key().map_or(0, |k| k.len() as u64);
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None if last.elapsed() > idle_limit => {
                return Err(format!("only {n} of {records} records within 60 s"));
            }
            None => {}
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |f| last - f);
    report(n, bytes, elapsed);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parse = |s: &str| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["produce", bootstrap, topic, records, size, acks] => parse(records).and_then(|n| {
            let size = parse(size)? as usize;
            produce(bootstrap, topic, n, size, acks, None)
        }),
        ["produce-txn", bootstrap, topic, records, size, per_txn] => {
            parse(records).and_then(|n| {
                let size = parse(size)? as usize;
                let per_txn = parse(per_txn)?.max(1);
                produce(bootstrap, topic, n, size, "all", Some(per_txn))
            })
        }
        ["consume", bootstrap, topic, records] => {
            parse(records).and_then(|n| consume(bootstrap, topic, n, "read_uncommitted"))
        }
        ["consume", bootstrap, topic, records, isolation] => {
            parse(records).and_then(|n| consume(bootstrap, topic, n, isolation))
        }
        _ => Err("usage: librdkafka_perf produce <bootstrap> <topic> <records> <size> <acks>\n       librdkafka_perf produce-txn <bootstrap> <topic> <records> <size> <records-per-transaction>\n       librdkafka_perf consume <bootstrap> <topic> <records> [read_committed]".to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("librdkafka: {e}");
            ExitCode::FAILURE
        }
    }
}
