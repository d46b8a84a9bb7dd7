//! `krust producer-perf-test` (kafka-producer-perf-test.sh, Kafka's `ProducerPerformance`):
//! sends `--num-records` records of `--record-size` bytes as fast as allowed and prints
//! Kafka's progress line every 5 s and its summary line with latency percentiles.
//!
//! The producer is built for speed: the payload is made once, keyless records stick to one
//! partition until its batch is full (`batch.size`, default 16384) or has waited `linger.ms`
//! (default 5), and each leader gets one connection carrying up to
//! `max.in.flight.requests.per.connection` (default 5) Produce requests at once: requests
//! are written back to back and a reader task takes the responses in order (a broker
//! answers a connection's requests in order). Unsent batches may hold up to
//! `buffer.memory` (default 32 MiB); beyond that the sender waits, as Kafka's does.
//! A record's latency is the time from its enqueue to the ack of its batch (acks=0: to the
//! write of its request).
//!
//! As Kafka's producer does, a batch refused with a retriable error (not leader, not
//! enough replicas, timeout...) or lost with its connection is sent again after
//! `retry.backoff.ms` (default 100) to its partition's current leader, looked up again and
//! reconnected to as needed, until `delivery.timeout.ms` (default 120000) after it was
//! sealed; `retries=0` turns this off.
//!
//! As with Kafka's producer, idempotence (`enable.idempotence`) is on unless the settings
//! conflict with it (acks other than all, retries=0, more than 5 requests in flight), or
//! it is turned off: the tool takes a producer id (InitProducerId) and numbers each
//! partition's batches, so that the broker writes a retried batch once and in order (it
//! refuses one that arrives ahead of its turn, which is then sent again). When one batch of
//! a partition is handed back for another try, the partition's later batches that have not
//! been sent go back with it and all of them are sent again in order. Without idempotence
//! a retried batch may be written twice or out of order.
//!
//! A batch that fails for good under idempotence (its delivery timeout passed, or a
//! non-retriable error) leaves a gap in its partition's sequence numbers that the broker
//! would refuse every later batch for. As Kafka's producer does since KIP-360, the tool
//! then waits for every answer in flight, bumps its producer epoch (a new producer id once
//! the epoch runs out), and numbers every batch not yet written anew from 0; the run goes
//! on, and the failed records are reported. A batch whose answer never came may have been
//! written all the same, and is then written twice, as with Kafka's producer.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use krust_client::{Client, ClientConfig, ClientError};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
/// A pipelined connection's halves: TCP's own, or split TLS and SASL streams.
type ReadSide = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type WriteSide = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::common::{self, PartitionLeader};

#[derive(Parser, Debug)]
#[command(
    name = "producer-performance",
    about = "This tool is used to verify the producer performance.",
    disable_version_flag = true
)]
struct Args {
    /// produce messages to this topic
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// number of messages to produce
    #[arg(
        long = "num-records",
        value_name = "NUM-RECORDS",
        allow_hyphen_values = true
    )]
    num_records: i64,
    /// message size in bytes (exactly one of --record-size, --payload-file,
    /// --payload-monotonic)
    #[arg(
        long = "record-size",
        value_name = "RECORD-SIZE",
        allow_hyphen_values = true
    )]
    record_size: Option<i32>,
    /// file to read the message payloads from (UTF-8 text, split at --payload-delimiter);
    /// a payload is picked at random for each record
    #[arg(long = "payload-file", value_name = "PAYLOAD-FILE")]
    payload_file: Option<PathBuf>,
    /// payload is a monotonically increasing integer
    #[arg(long = "payload-monotonic")]
    payload_monotonic: bool,
    /// delimiter of --payload-file
    #[arg(
        long = "payload-delimiter",
        value_name = "PAYLOAD-DELIMITER",
        default_value = "\\n"
    )]
    payload_delimiter: String,
    /// throttle maximum message throughput to *approximately* THROUGHPUT messages/sec. Set
    /// this to -1 to disable throttling.
    #[arg(long, value_name = "THROUGHPUT", allow_hyphen_values = true)]
    throughput: f64,
    /// kafka producer related configuration properties like bootstrap.servers,client.id
    /// etc. These configs take precedence over those passed via --producer.config.
    #[arg(long = "producer-props", value_name = "PROP-NAME=PROP-VALUE", num_args = 1..)]
    producer_props: Vec<String>,
    /// producer config properties file.
    #[arg(long = "producer.config", value_name = "CONFIG-FILE")]
    producer_config: Option<PathBuf>,
    /// print out metrics at the end of the test.
    #[arg(long = "print-metrics")]
    print_metrics: bool,
    /// print the summary's latency percentiles in milliseconds with three decimals
    /// instead of whole milliseconds (a krust extension).
    #[arg(long = "precise-latency")]
    precise_latency: bool,
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("producer-performance", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let settings = match Settings::from_args(&args) {
        Ok(s) => s,
        Err(e) => return common::fail("Error: ", &e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return common::fail("Error: ", &e.into()),
    };
    match rt.block_on(execute(settings)) {
        Ok(()) => {
            common::flush_stdout();
            ExitCode::SUCCESS
        }
        Err(e) => {
            common::flush_stdout();
            common::fail("Error: ", &e)
        }
    }
}

/// Where record values come from.
#[derive(Debug, Clone)]
enum Payload {
    /// The same random printable bytes for every record.
    Fixed(Bytes),
    /// One of these, at random.
    List(Vec<Bytes>),
    /// The record's number as text.
    Monotonic,
}

impl Payload {
    fn value(&self, i: u64, rng: &mut impl Rng) -> Bytes {
        match self {
            Payload::Fixed(b) => b.clone(),
            Payload::List(l) => l[rng.random_range(0..l.len())].clone(),
            Payload::Monotonic => Bytes::from(i.to_string()),
        }
    }
}

/// The validated run settings.
#[derive(Debug, Clone)]
struct Settings {
    topic: String,
    num_records: u64,
    payload: Payload,
    /// Records per second; None = unthrottled.
    throughput: Option<f64>,
    bootstrap: String,
    client: ClientConfig,
    acks: i16,
    linger: Duration,
    batch_size: usize,
    compression: Compression,
    max_in_flight: usize,
    buffer_memory: usize,
    max_request_size: usize,
    /// Retriable failures are sent again (`retries` > 0) after `retry.backoff.ms`, until
    /// `delivery.timeout.ms` after the batch was sealed.
    retries: bool,
    retry_backoff: Duration,
    delivery_timeout: Duration,
    /// Batches carry a producer id and sequence numbers (`enable.idempotence`).
    idempotent: bool,
    print_metrics: bool,
    precise_latency: bool,
}

fn parse_num<T: std::str::FromStr>(
    props: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> anyhow::Result<T> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("Invalid value {v} for configuration {key}")),
    }
}

impl Settings {
    fn from_args(args: &Args) -> anyhow::Result<Settings> {
        // Kafka's ConfigPostProcessor checks, in its order and words.
        if args.num_records <= 0 {
            bail!("--num-records should be greater than zero");
        }
        let payload_options = usize::from(args.record_size.is_some())
            + usize::from(args.payload_file.is_some())
            + usize::from(args.payload_monotonic);
        if payload_options == 0 {
            bail!(
                "one of the arguments --record-size --payload-file --payload-monotonic is required"
            );
        }
        if payload_options > 1 {
            bail!("only one of the arguments --record-size --payload-file --payload-monotonic is allowed");
        }
        if let Some(size) = args.record_size {
            if size <= 0 {
                bail!("--record-size should be greater than zero");
            }
        }
        if args.producer_props.is_empty() && args.producer_config.is_none() {
            bail!("Either --producer-props or --producer.config must be specified.");
        }
        let payload = if let Some(size) = args.record_size {
            let mut rng = rand::rng();
            let bytes: Vec<u8> = (0..size).map(|_| rng.random_range(b'A'..=b'Z')).collect();
            Payload::Fixed(Bytes::from(bytes))
        } else if let Some(path) = &args.payload_file {
            let delimiter = if args.payload_delimiter == "\\n" {
                "\n"
            } else {
                args.payload_delimiter.as_str()
            };
            println!("Reading payloads from: {}", absolute(path).display());
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.is_empty() {
                bail!("File does not exist or empty file provided.");
            }
            let list: Vec<Bytes> = text
                .split(delimiter)
                .filter(|s| !s.is_empty())
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect();
            println!("Number of messages read: {}", list.len());
            if list.is_empty() {
                bail!("File does not exist or empty file provided.");
            }
            Payload::List(list)
        } else {
            Payload::Monotonic
        };
        let throughput = if args.throughput < 0.0 {
            None
        } else if args.throughput == 0.0 || args.throughput.is_nan() {
            bail!("--throughput must be positive, or -1 to disable throttling");
        } else {
            Some(args.throughput)
        };

        let mut props = match &args.producer_config {
            Some(p) => common::load_properties(p)?,
            None => BTreeMap::new(),
        };
        for prop in &args.producer_props {
            let pieces: Vec<&str> = prop.split('=').collect();
            if pieces.len() != 2 {
                bail!("Invalid property: {prop}");
            }
            props.insert(pieces[0].to_string(), pieces[1].to_string());
        }
        let bootstrap = props
            .get("bootstrap.servers")
            .cloned()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "Missing required configuration \"bootstrap.servers\" which has no default value."
                )
            })?;
        let client = common::client_config_from(&props, "perf-producer-client")?;
        let acks = match props.get("acks").map(|s| s.trim()).unwrap_or("all") {
            "all" | "-1" => -1,
            "0" => 0,
            "1" => 1,
            other => bail!(
                "Invalid value {other} for configuration acks: String must be one of: all, -1, 0, 1"
            ),
        };
        let compression = match props
            .get("compression.type")
            .map(|s| s.trim())
            .unwrap_or("none")
        {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            other => bail!("Invalid value {other} for configuration compression.type: String must be one of: none, gzip, snappy, lz4, zstd"),
        };
        let linger_ms: u64 = parse_num(&props, "linger.ms", 5)?;
        let batch_size: usize = parse_num(&props, "batch.size", 16384)?;
        let max_in_flight: usize = parse_num(&props, "max.in.flight.requests.per.connection", 5)?;
        if max_in_flight == 0 {
            bail!("Invalid value 0 for configuration max.in.flight.requests.per.connection: Value must be at least 1");
        }
        let buffer_memory: usize = parse_num(&props, "buffer.memory", 32 * 1024 * 1024)?;
        let max_request_size: usize = parse_num(&props, "max.request.size", 1024 * 1024)?;
        let retries: i64 = parse_num(&props, "retries", i64::from(i32::MAX))?;
        let retry_backoff_ms: u64 = parse_num(&props, "retry.backoff.ms", 100)?;
        let delivery_timeout_ms: u64 = parse_num(&props, "delivery.timeout.ms", 120_000)?;
        // Kafka's rule: on by default, quietly off when other settings conflict with it, an
        // error when asked for explicitly alongside them.
        let idempotent = match props.get("enable.idempotence").map(|s| s.trim()) {
            None => acks == -1 && retries > 0 && max_in_flight <= 5,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) if v.eq_ignore_ascii_case("true") => {
                if max_in_flight > 5 {
                    bail!("enable.idempotence=true needs max.in.flight.requests.per.connection of at most 5, not {max_in_flight}");
                }
                if retries <= 0 {
                    bail!("enable.idempotence=true needs retries greater than 0");
                }
                if acks != -1 {
                    bail!("enable.idempotence=true needs acks=all: otherwise a retried batch could still be lost or written twice");
                }
                true
            }
            Some(v) => bail!(
                "Invalid value {v} for configuration enable.idempotence: Expected value to be either true or false"
            ),
        };
        Ok(Settings {
            topic: args.topic.clone(),
            num_records: args.num_records as u64,
            payload,
            throughput,
            bootstrap,
            client,
            acks,
            linger: Duration::from_millis(linger_ms),
            batch_size: batch_size.max(1),
            compression,
            max_in_flight,
            buffer_memory: buffer_memory.max(1),
            max_request_size: max_request_size.max(1),
            retries: retries > 0 && acks != 0,
            retry_backoff: Duration::from_millis(retry_backoff_ms),
            delivery_timeout: Duration::from_millis(delivery_timeout_ms),
            idempotent,
            print_metrics: args.print_metrics,
            precise_latency: args.precise_latency,
        })
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// Kafka's `ProducerPerformance.Stats`: whole-run and 5-second window counters, and a
/// sample of at most 500000 latencies for the percentiles. Latencies are kept in
/// microseconds and printed in milliseconds.
struct Stats {
    start: Instant,
    latencies: Vec<u64>,
    sampling: u64,
    iteration: u64,
    count: u64,
    bytes: u64,
    max_latency: u64,
    total_latency: u64,
    window_count: u64,
    window_max_latency: u64,
    window_total_latency: u64,
    window_bytes: u64,
    window_start: Instant,
    reporting_interval: Duration,
}

impl Stats {
    fn new(num_records: u64, start: Instant) -> Stats {
        let sampling = (num_records / num_records.clamp(1, 500_000)).max(1);
        Stats {
            start,
            latencies: Vec::with_capacity((num_records / sampling + 1) as usize),
            sampling,
            iteration: 0,
            count: 0,
            bytes: 0,
            max_latency: 0,
            total_latency: 0,
            window_count: 0,
            window_max_latency: 0,
            window_total_latency: 0,
            window_bytes: 0,
            window_start: start,
            reporting_interval: Duration::from_secs(5),
        }
    }

    fn record(&mut self, latency_us: u64, bytes: u64, now: Instant) {
        self.count += 1;
        self.bytes += bytes;
        self.total_latency += latency_us;
        self.max_latency = self.max_latency.max(latency_us);
        self.window_count += 1;
        self.window_bytes += bytes;
        self.window_total_latency += latency_us;
        self.window_max_latency = self.window_max_latency.max(latency_us);
        if self.iteration.is_multiple_of(self.sampling) {
            self.latencies.push(latency_us);
        }
        if now.saturating_duration_since(self.window_start) >= self.reporting_interval {
            self.print_window();
            self.new_window();
        }
        self.iteration += 1;
    }

    fn print_window(&self) {
        let line = self.window_line(self.window_start.elapsed());
        outln!("{line}");
    }

    fn window_line(&self, elapsed: Duration) -> String {
        let elapsed = elapsed.as_secs_f64().max(1e-9);
        let recs_per_sec = self.window_count as f64 / elapsed;
        let mb_per_sec = self.window_bytes as f64 / elapsed / (1024.0 * 1024.0);
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.window_count,
            recs_per_sec,
            mb_per_sec,
            self.window_total_latency as f64 / self.window_count.max(1) as f64 / 1000.0,
            self.window_max_latency as f64 / 1000.0
        )
    }

    fn new_window(&mut self) {
        self.window_start = Instant::now();
        self.window_count = 0;
        self.window_max_latency = 0;
        self.window_total_latency = 0;
        self.window_bytes = 0;
    }

    /// The summary line; `precise` prints the percentiles with three decimals instead of
    /// in whole milliseconds (rounded down, as Kafka's tool does).
    fn total_line(&mut self, precise: bool) -> String {
        let elapsed = self.start.elapsed().as_secs_f64().max(1e-9);
        let recs_per_sec = self.count as f64 / elapsed;
        let mb_per_sec = self.bytes as f64 / elapsed / (1024.0 * 1024.0);
        let p: Vec<String> = percentiles(&mut self.latencies, &[0.5, 0.95, 0.99, 0.999])
            .into_iter()
            .map(|us| {
                if precise {
                    format!("{:.3}", us as f64 / 1000.0)
                } else {
                    (us / 1000).to_string()
                }
            })
            .collect();
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            recs_per_sec,
            mb_per_sec,
            self.total_latency as f64 / self.count.max(1) as f64 / 1000.0,
            self.max_latency as f64 / 1000.0,
            p[0],
            p[1],
            p[2],
            p[3],
        )
    }
}

/// Kafka's percentile pick: sort, then the value at `(int)(p * size)`.
fn percentiles(latencies: &mut [u64], ps: &[f64]) -> Vec<u64> {
    latencies.sort_unstable();
    ps.iter()
        .map(|p| {
            if latencies.is_empty() {
                0
            } else {
                let i = ((p * latencies.len() as f64) as usize).min(latencies.len() - 1);
                latencies[i]
            }
        })
        .collect()
}

/// Counters for `--print-metrics`.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    request_bytes: AtomicU64,
    batches: AtomicU64,
    errors: AtomicU64,
    request_latency_us: AtomicU64,
    responses: AtomicU64,
}

/// A batch being filled for one partition.
struct OpenBatch {
    values: Vec<Bytes>,
    /// Enqueue time of each record, microseconds since the run started.
    enqueued: Vec<u64>,
    size: usize,
    created: Instant,
}

/// A batch encoded and waiting to be sent (or in flight).
struct Sealed {
    partition: i32,
    enqueued: Vec<u64>,
    bytes: u64,
    data: Bytes,
    sealed: Instant,
    /// Sealing order (a partition's batches carry their sequence numbers in this order).
    order: u64,
}

impl Sealed {
    /// What the batch counts for against `buffer.memory`.
    fn buffered_size(&self) -> usize {
        self.bytes as usize + 12 * self.enqueued.len()
    }
}

/// What the reader needs to account for one in-flight request.
struct Inflight {
    correlation: i32,
    sent: Instant,
    batches: Vec<Sealed>,
    _permit: OwnedSemaphorePermit,
}

/// One pipelined connection to a partition leader.
struct Leader {
    write: WriteSide,
    permits: Arc<Semaphore>,
    inflight_tx: Option<mpsc::UnboundedSender<Inflight>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    next_correlation: i32,
    version: i16,
    ready: VecDeque<Sealed>,
    addr: String,
    /// Set when the connection failed: its batches go to the partitions' leaders again.
    broken: Arc<std::sync::atomic::AtomicBool>,
}

/// Opens a pipelined connection to broker `id`, with its response reader.
async fn connect_leader(
    client: &mut Client,
    id: i32,
    settings: &Settings,
    shared: &Arc<Shared>,
) -> anyhow::Result<Leader> {
    let conn = client.connection_to(id).await?;
    // Produce v13 addresses topics by id; names are enough below it.
    let version = conn.version_for::<ProduceRequest>()?.min(12);
    let addr = conn.addr().to_string();
    let (read, write): (ReadSide, WriteSide) =
        if settings.client.tls.is_none() && settings.client.sasl.is_none() {
            // Kafka's socket.connection.setup.timeout.ms.
            let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&addr))
                .await
                .map_err(|_| ClientError::Connect {
                    addr: addr.clone(),
                    reason: "timed out".into(),
                })?
                .map_err(|e| ClientError::Connect {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            let _ = stream.set_nodelay(true);
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        } else {
            // Over TLS and authenticated by the client, then split.
            let conn = krust_client::Connection::connect_config(&addr, &settings.client).await?;
            let (r, w) = tokio::io::split(conn.into_stream()?);
            (Box::new(r), Box::new(w))
        };
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (inflight_tx, reader) = if settings.acks == 0 {
        (None, None)
    } else {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(read_responses(
            read,
            rx,
            shared.clone(),
            settings.topic.clone(),
            version,
            settings.client.request_timeout,
            addr.clone(),
            broken.clone(),
        ));
        (Some(tx), Some(task))
    };
    Ok(Leader {
        write,
        permits,
        inflight_tx,
        reader,
        next_correlation: 1,
        version,
        ready: VecDeque::new(),
        addr,
        broken,
    })
}

/// Shared by the sender and the reader tasks.
struct Shared {
    stats: Mutex<Stats>,
    counters: Counters,
    failed: AtomicU64,
    /// The first fatal error.
    fatal: Mutex<Option<String>>,
    /// Batches to send again (retriable errors, broken connections), with why.
    retries: Mutex<Vec<(Sealed, String)>>,
    retry_enabled: bool,
    /// Out-of-order refusals are retried (an earlier batch is being sent again) and
    /// duplicates count as written.
    idempotent: bool,
    /// Batches of each partition sent and not answered yet.
    inflight: Mutex<HashMap<i32, usize>>,
    /// Partitions with a batch handed back for another try: none of their batches is sent
    /// until none is in flight any more, then they all go again, in order. Otherwise a
    /// later batch could be written ahead of an earlier one, or push it out of the
    /// broker's memory of recent batches, so that its retry is refused forever.
    held: Mutex<HashSet<i32>>,
    /// Under idempotence, a batch failed for good: the producer id must be renewed (see
    /// [`Producer::renew_producer_id`]) before anything more is sent.
    renew: AtomicBool,
    t0: Instant,
}

impl Shared {
    fn sent(&self, partitions: impl Iterator<Item = i32>) {
        if let Ok(mut m) = self.inflight.lock() {
            for p in partitions {
                *m.entry(p).or_default() += 1;
            }
        }
    }

    fn answered(&self, partition: i32) {
        if let Ok(mut m) = self.inflight.lock() {
            if let Some(n) = m.get_mut(&partition) {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn in_flight(&self, partition: i32) -> usize {
        self.inflight
            .lock()
            .map(|m| m.get(&partition).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn held(&self) -> HashSet<i32> {
        self.held.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn is_held(&self, partition: i32) -> bool {
        self.held.lock().is_ok_and(|h| h.contains(&partition))
    }

    fn release(&self, partition: i32) {
        if let Ok(mut h) = self.held.lock() {
            h.remove(&partition);
        }
    }

    fn release_all(&self) {
        if let Ok(mut h) = self.held.lock() {
            h.clear();
        }
    }

    fn record_batch(&self, batch: &Sealed, now: Instant) {
        let now_us = now.saturating_duration_since(self.t0).as_micros() as u64;
        let per_record = batch.bytes / batch.enqueued.len().max(1) as u64;
        let Ok(mut stats) = self.stats.lock() else {
            return;
        };
        for e in &batch.enqueued {
            stats.record(now_us.saturating_sub(*e), per_record, now);
        }
    }

    fn fail_batch(&self, topic: &str, batch: &Sealed, why: &str) {
        self.failed
            .fetch_add(batch.enqueued.len() as u64, Ordering::Relaxed);
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "ERROR Error when sending {} records to topic {topic} partition {}: {why}",
            batch.enqueued.len(),
            batch.partition
        );
        // The partition's later batches would be refused for the gap in its sequence
        // numbers: they go with a new producer id.
        if self.idempotent {
            self.renew.store(true, Ordering::Release);
        }
    }

    /// Hands a batch back for another try if retries are on, else fails it.
    fn retry(&self, topic: &str, batch: Sealed, why: String) {
        if !self.retry_enabled {
            return self.fail_batch(topic, &batch, &why);
        }
        if let Ok(mut h) = self.held.lock() {
            h.insert(batch.partition);
        }
        match self.retries.lock() {
            Ok(mut r) => r.push((batch, why)),
            Err(_) => self.fail_batch(topic, &batch, &why),
        }
    }

    fn take_retries(&self) -> Vec<(Sealed, String)> {
        self.retries
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    fn set_fatal(&self, why: String) {
        if let Ok(mut f) = self.fatal.lock() {
            if f.is_none() {
                *f = Some(why);
            }
        }
    }

    fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }
}

struct Producer {
    client: Client,
    /// Batches waiting to be sent again, each with when.
    retrying: Vec<(Instant, Sealed)>,
    /// Response readers of dropped connections, still handing back what was in flight.
    draining: Vec<tokio::task::JoinHandle<()>>,
    settings: Settings,
    shared: Arc<Shared>,
    partitions: Vec<PartitionLeader>,
    open: HashMap<i32, OpenBatch>,
    leaders: BTreeMap<i32, Leader>,
    leader_of: HashMap<i32, i32>,
    sticky: usize,
    buffered: usize,
    epoch_ms: i64,
    /// Producer id and epoch, with idempotence.
    producer_id: Option<(i64, i16)>,
    /// The sequence number of each partition's next batch, with idempotence.
    next_sequence: HashMap<i32, i32>,
    /// Batches sealed so far.
    sealed_count: u64,
}

/// A producer id for an idempotent run (InitProducerId without a transactional id),
/// retried as long as the error is retriable, up to `delivery.timeout.ms`.
async fn init_producer_id(client: &mut Client, settings: &Settings) -> anyhow::Result<(i64, i16)> {
    use kafka_protocol::messages::InitProducerIdRequest;
    let deadline = Instant::now() + settings.delivery_timeout;
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let resp = client
        .retry(deadline, settings.retry_backoff, |c| {
            let req = req.clone();
            Box::pin(async move {
                let r = c.send_any(&req).await?;
                ClientError::check(r.error_code, None)?;
                Ok(r)
            })
        })
        .await
        .context("cannot get a producer id")?;
    Ok((resp.producer_id.0, resp.producer_epoch))
}

async fn execute(settings: Settings) -> anyhow::Result<()> {
    let mut client = Client::connect(&settings.bootstrap, settings.client.clone()).await?;
    let (_, partitions) = common::topic_partitions(&mut client, &settings.topic, true).await?;
    let producer_id = if settings.idempotent {
        Some(init_producer_id(&mut client, &settings).await?)
    } else {
        None
    };
    let mut leaders = BTreeMap::new();
    let mut leader_of = HashMap::new();
    let t0 = Instant::now();
    let shared = Arc::new(Shared {
        stats: Mutex::new(Stats::new(settings.num_records, t0)),
        counters: Counters::default(),
        failed: AtomicU64::new(0),
        fatal: Mutex::new(None),
        retries: Mutex::new(Vec::new()),
        retry_enabled: settings.retries,
        idempotent: settings.idempotent,
        inflight: Mutex::new(HashMap::new()),
        held: Mutex::new(HashSet::new()),
        renew: AtomicBool::new(false),
        t0,
    });
    for p in &partitions {
        if p.leader < 0 {
            bail!("Partition {}-{} has no leader", settings.topic, p.partition);
        }
        leader_of.insert(p.partition, p.leader);
        if leaders.contains_key(&p.leader) {
            continue;
        }
        let leader = connect_leader(&mut client, p.leader, &settings, &shared).await?;
        leaders.insert(p.leader, leader);
    }
    let mut producer = Producer {
        client,
        retrying: Vec::new(),
        draining: Vec::new(),
        sticky: rand::random_range(0..partitions.len()),
        settings,
        shared: shared.clone(),
        partitions,
        open: HashMap::new(),
        leaders,
        leader_of,
        buffered: 0,
        epoch_ms: common::now_ms(),
        producer_id,
        next_sequence: HashMap::new(),
        sealed_count: 0,
    };
    // The run starts now, as Kafka's Stats start just before the send loop.
    if let Ok(mut s) = shared.stats.lock() {
        let now = Instant::now();
        s.start = now;
        s.window_start = now;
    }
    producer.produce_all().await?;
    producer.close().await?;

    let line = match shared.stats.lock() {
        Ok(mut s) => s.total_line(producer.settings.precise_latency),
        Err(_) => bail!("statistics unavailable"),
    };
    outln!("{line}");
    if producer.settings.print_metrics {
        producer.print_metrics();
    }
    let failed = shared.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} records could not be sent");
    }
    Ok(())
}

impl Producer {
    fn now_us(&self) -> u64 {
        self.shared.t0.elapsed().as_micros() as u64
    }

    /// The record loop: throttle, enqueue, seal full batches, send what may be sent.
    async fn produce_all(&mut self) -> anyhow::Result<()> {
        let mut rng = rand::rng();
        let start = Instant::now();
        let n = self.settings.num_records;
        for i in 0..n {
            if let Some(rate) = self.settings.throughput {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if Instant::now() < due {
                    self.idle_until(due).await?;
                }
            }
            let value = self.settings.payload.value(i, &mut rng);
            self.enqueue(value);
            if i % 64 == 63 {
                self.seal_lingering(false);
                self.pump().await?;
            }
        }
        Ok(())
    }

    /// Appends one record to the sticky partition's batch.
    fn enqueue(&mut self, value: Bytes) {
        let partition = self.partitions[self.sticky].partition;
        let size = value.len() + 12;
        let now_us = self.now_us();
        let full = self
            .open
            .get(&partition)
            .is_some_and(|b| !b.values.is_empty() && b.size + size > self.settings.batch_size);
        if full {
            self.seal(partition);
            // Sticky partitioning: a new partition once a batch is complete.
            self.next_sticky();
            let partition = self.partitions[self.sticky].partition;
            return self.push(partition, value, size, now_us);
        }
        self.push(partition, value, size, now_us);
    }

    fn push(&mut self, partition: i32, value: Bytes, size: usize, now_us: u64) {
        let b = self.open.entry(partition).or_insert_with(|| OpenBatch {
            values: Vec::new(),
            enqueued: Vec::new(),
            size: 61,
            created: Instant::now(),
        });
        b.values.push(value);
        b.enqueued.push(now_us);
        b.size += size;
        self.buffered += size;
    }

    fn next_sticky(&mut self) {
        let n = self.partitions.len();
        if n > 1 {
            let step = rand::random_range(1..n);
            self.sticky = (self.sticky + step) % n;
        }
    }

    /// Encodes the open batch of `partition` and queues it for its leader.
    fn seal(&mut self, partition: i32) {
        let Some(batch) = self.open.remove(&partition) else {
            return;
        };
        if batch.values.is_empty() {
            return;
        }
        let bytes: u64 = batch.values.iter().map(|v| v.len() as u64).sum();
        let sequence = self
            .producer_id
            .map(|_| self.take_sequence(partition, batch.values.len()));
        self.sealed_count += 1;
        let order = self.sealed_count;
        let data = match self.encode(&batch, sequence) {
            Ok(d) => d,
            Err(e) => {
                let sealed = Sealed {
                    partition,
                    enqueued: batch.enqueued,
                    bytes,
                    data: Bytes::new(),
                    sealed: Instant::now(),
                    order,
                };
                self.buffered = self.buffered.saturating_sub(sealed.buffered_size());
                self.shared
                    .fail_batch(&self.settings.topic, &sealed, &e.to_string());
                return;
            }
        };
        let leader = self.leader_of.get(&partition).copied().unwrap_or(-1);
        let sealed = Sealed {
            partition,
            enqueued: batch.enqueued,
            bytes,
            data,
            sealed: Instant::now(),
            order,
        };
        // Behind its partition's batches that wait to be sent again, in order.
        let behind_retries = self.shared.is_held(partition)
            || self.retrying.iter().any(|(_, b)| b.partition == partition);
        match self.leaders.get_mut(&leader) {
            Some(l) if !behind_retries => l.ready.push_back(sealed),
            Some(_) => self
                .retrying
                .push((Instant::now() + self.settings.retry_backoff, sealed)),
            // Its leader's connection broke: it goes where the partition leads by then.
            None if self.settings.retries => self
                .retrying
                .push((Instant::now() + self.settings.retry_backoff, sealed)),
            None => {
                self.buffered = self.buffered.saturating_sub(sealed.buffered_size());
                self.shared
                    .fail_batch(&self.settings.topic, &sealed, "no leader");
            }
        }
    }

    /// The base sequence number of `partition`'s next batch, of `records` records; the one
    /// after it is next.
    fn take_sequence(&mut self, partition: i32, records: usize) -> i32 {
        let base = self.next_sequence.get(&partition).copied().unwrap_or(0);
        self.next_sequence
            .insert(partition, sequence_after(base, records));
        base
    }

    /// The batch's bytes; with idempotence, `sequence` is its base sequence number.
    fn encode(&self, batch: &OpenBatch, sequence: Option<i32>) -> anyhow::Result<Bytes> {
        let (producer_id, producer_epoch) = self.producer_id.unwrap_or((-1, -1));
        let records: Vec<Record> = batch
            .values
            .iter()
            .zip(&batch.enqueued)
            .enumerate()
            .map(|(i, (v, e))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // Without idempotence: one batch with base sequence -1 (see console_producer).
                sequence: match sequence {
                    Some(base) => sequence_after(base, i),
                    None => i as i32 - 1,
                },
                timestamp: self.epoch_ms + (*e / 1000) as i64,
                key: None,
                value: Some(v.clone()),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::with_capacity(batch.size + 64);
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: self.settings.compression,
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot encode records: {e}"))?;
        Ok(buf.freeze())
    }

    /// Seals batches that have waited `linger.ms` (all open batches with `all`).
    fn seal_lingering(&mut self, all: bool) {
        let linger = self.settings.linger;
        let due: Vec<i32> = self
            .open
            .iter()
            .filter(|(_, b)| all || b.created.elapsed() >= linger)
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            self.seal(p);
            if self.partitions.get(self.sticky).map(|x| x.partition) == Some(p) {
                self.next_sticky();
            }
        }
    }

    /// When the oldest open batch is due.
    fn linger_deadline(&self) -> Option<Instant> {
        self.open
            .values()
            .map(|b| b.created + self.settings.linger)
            .min()
    }

    fn check_fatal(&self) -> anyhow::Result<()> {
        match self.shared.fatal() {
            Some(why) => bail!("{why}"),
            None => Ok(()),
        }
    }

    /// Sends ready batches while in-flight slots are free; waits for slots while more than
    /// `buffer.memory` bytes are waiting.
    async fn pump(&mut self) -> anyhow::Result<()> {
        self.check_fatal()?;
        self.renew_producer_id().await?;
        self.reroute().await?;
        let leaders: Vec<i32> = self.leaders.keys().copied().collect();
        for id in &leaders {
            loop {
                let permit = {
                    let Some(l) = self.leaders.get(id) else {
                        break;
                    };
                    if l.ready.is_empty() || l.broken.load(Ordering::Acquire) {
                        break;
                    }
                    match l.permits.clone().try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => break,
                    }
                };
                self.send_one(*id, permit).await?;
            }
        }
        while self.buffered > self.settings.buffer_memory {
            // Wait for the leader with the most queued data.
            let Some(id) = self
                .leaders
                .iter()
                .filter(|(_, l)| !l.ready.is_empty() && !l.broken.load(Ordering::Acquire))
                .max_by_key(|(_, l)| l.ready.len())
                .map(|(id, _)| *id)
            else {
                // What fills the buffer waits to be sent again: wait for the first due (a
                // little at least: its partition may wait for answers still to come).
                let Some(at) = self.retrying.iter().map(|(at, _)| *at).min() else {
                    break;
                };
                let at = at.max(Instant::now() + Duration::from_millis(10));
                tokio::time::sleep_until(at.into()).await;
                self.reroute().await?;
                self.check_fatal()?;
                continue;
            };
            let permit = self.acquire(id).await?;
            self.send_one(id, permit).await?;
            self.check_fatal()?;
        }
        Ok(())
    }

    async fn acquire(&self, id: i32) -> anyhow::Result<OwnedSemaphorePermit> {
        let l = self.leaders.get(&id).context("unknown leader")?;
        l.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| anyhow::anyhow!("connection closed"))
    }

    /// Waits until `deadline` (throttling), sealing lingering batches and sending meanwhile.
    async fn idle_until(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            self.seal_lingering(false);
            self.pump().await?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let wake = self
                .linger_deadline()
                .map_or(deadline, |l| l.min(deadline))
                .max(now + Duration::from_micros(50));
            let waiting = self
                .leaders
                .iter()
                .find(|(_, l)| !l.ready.is_empty())
                .map(|(id, l)| (*id, l.permits.clone()));
            match waiting {
                Some((id, permits)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake.into()) => {}
                        p = permits.acquire_owned() => {
                            let p = p.map_err(|_| anyhow::anyhow!("connection closed"))?;
                            self.send_one(id, p).await?;
                        }
                    }
                }
                None => tokio::time::sleep_until(wake.into()).await,
            }
        }
    }

    /// Builds one Produce request from the head of a leader's ready queue (one batch per
    /// partition, up to `max.request.size`) and writes it.
    async fn send_one(&mut self, id: i32, permit: OwnedSemaphorePermit) -> anyhow::Result<()> {
        let max_request = self.settings.max_request_size;
        let acks = self.settings.acks;
        let timeout_ms = self
            .settings
            .client
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let topic = TopicName(StrBytes::from_string(self.settings.topic.clone()));
        let client_id = StrBytes::from_string(self.settings.client.client_id.clone());
        self.hold_back();
        let Some(l) = self.leaders.get_mut(&id) else {
            return Ok(());
        };
        let mut batches: Vec<Sealed> = Vec::new();
        let mut size = 0;
        while let Some(front) = l.ready.front() {
            let dup = batches.iter().any(|b| b.partition == front.partition);
            if dup || (!batches.is_empty() && size + front.data.len() > max_request) {
                break;
            }
            size += front.data.len();
            if let Some(b) = l.ready.pop_front() {
                batches.push(b);
            }
        }
        if batches.is_empty() {
            return Ok(());
        }
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic)
                .with_partition_data(
                    batches
                        .iter()
                        .map(|b| {
                            PartitionProduceData::default()
                                .with_index(b.partition)
                                .with_records(Some(b.data.clone()))
                        })
                        .collect(),
                )]);
        let correlation = l.next_correlation;
        l.next_correlation = l.next_correlation.wrapping_add(1);
        let version = l.version;
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(client_id));
        let mut frame = BytesMut::with_capacity(size + 256);
        frame.extend_from_slice(&[0, 0, 0, 0]);
        header
            .encode(&mut frame, ApiKey::Produce.request_header_version(version))
            .map_err(|e| anyhow::anyhow!("encoding the request header: {e}"))?;
        req.encode(&mut frame, version)
            .map_err(|e| anyhow::anyhow!("encoding the Produce request: {e}"))?;
        let len = (frame.len() - 4) as i32;
        frame[0..4].copy_from_slice(&len.to_be_bytes());

        let freed: usize = batches.iter().map(|b| b.buffered_size()).sum();
        self.buffered = self.buffered.saturating_sub(freed);
        let counters = &self.shared.counters;
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters
            .request_bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        counters
            .batches
            .fetch_add(batches.len() as u64, Ordering::Relaxed);

        let sent = Instant::now();
        if let Some(tx) = &l.inflight_tx {
            self.shared.sent(batches.iter().map(|b| b.partition));
            // The reader learns of the request before its response can arrive.
            let _ = tx.send(Inflight {
                correlation,
                sent,
                batches,
                _permit: permit,
            });
            if let Err(e) = l.write.write_all(&frame).await {
                // The reader meets the failure too and hands the batches back.
                l.broken.store(true, Ordering::Release);
                if !self.settings.retries {
                    let why = format!("Connection to {} failed: {e}", l.addr);
                    self.shared.set_fatal(why.clone());
                    bail!("{why}");
                }
            }
        } else {
            let r = l.write.write_all(&frame).await;
            drop(permit);
            match r {
                Ok(()) => {
                    let now = Instant::now();
                    for b in &batches {
                        self.shared.record_batch(b, now);
                    }
                }
                Err(e) => {
                    let why = format!("Connection to {} failed: {e}", l.addr);
                    for b in &batches {
                        self.shared.fail_batch(&self.settings.topic, b, &why);
                    }
                    bail!("{why}");
                }
            }
        }
        Ok(())
    }

    /// Batches handed back for another try (retriable errors, broken connections): fails
    /// those past `delivery.timeout.ms`; once one is due (`retry.backoff.ms` after its
    /// failure), looks up the partitions' leaders again, reconnecting where needed, and
    /// queues it ahead of newer batches. A broken connection is dropped and its queued
    /// batches go the same way (its reader hands back those in flight).
    async fn reroute(&mut self) -> anyhow::Result<()> {
        if !self.settings.retries {
            return Ok(());
        }
        let now = Instant::now();
        let broken: Vec<i32> = self
            .leaders
            .iter()
            .filter(|(_, l)| l.broken.load(Ordering::Acquire))
            .map(|(id, _)| *id)
            .collect();
        for id in broken {
            if let Some(mut l) = self.leaders.remove(&id) {
                self.retrying.extend(l.ready.drain(..).map(|b| (now, b)));
                // The reader hands back what is in flight, then ends; close() waits for it.
                l.inflight_tx = None;
                self.draining.extend(l.reader.take());
            }
        }
        for (b, why) in self.take_retries() {
            if let Some(b) = self.unless_expired(b, &why) {
                self.retrying.push((now + self.settings.retry_backoff, b));
            }
        }
        self.hold_back();
        // A partition's batches go together, once the first of them is due and none of
        // its batches is still in flight.
        let due_partitions: HashSet<i32> = self
            .retrying
            .iter()
            .filter(|(due, b)| *due <= now && self.shared.in_flight(b.partition) == 0)
            .map(|(_, b)| b.partition)
            .collect();
        if due_partitions.is_empty() {
            return Ok(());
        }
        // One look at the metadata; partitions still without a leader wait for the next.
        let topics = [self.settings.topic.clone()];
        if let Ok(md) = self.client.metadata_with(Some(&topics), false).await {
            let parts = md
                .topics
                .iter()
                .filter(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topics[0].as_str()))
                .flat_map(|t| t.partitions.iter());
            for p in parts.filter(|p| p.error_code == 0 && p.leader_id.0 >= 0) {
                self.leader_of.insert(p.partition_index, p.leader_id.0);
            }
        }
        let mut unreachable = std::collections::HashSet::new();
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retrying)
            .into_iter()
            .partition(|(_, b)| due_partitions.contains(&b.partition));
        self.retrying = later;
        // Oldest last, so that pushing each to the front leaves them oldest first.
        due.sort_by_key(|(_, b)| std::cmp::Reverse(b.order));
        for p in &due_partitions {
            self.shared.release(*p);
        }
        for (_, b) in due {
            let Some(b) = self.unless_expired(b, "no leader could be reached") else {
                continue;
            };
            let leader = self.leader_of.get(&b.partition).copied().unwrap_or(-1);
            if leader >= 0 && !self.leaders.contains_key(&leader) && !unreachable.contains(&leader)
            {
                match connect_leader(&mut self.client, leader, &self.settings, &self.shared).await {
                    Ok(l) => {
                        self.leaders.insert(leader, l);
                    }
                    Err(_) => {
                        unreachable.insert(leader);
                    }
                }
            }
            match self.leaders.get_mut(&leader) {
                Some(l) => l.ready.push_front(b),
                None => self
                    .retrying
                    .push((Instant::now() + self.settings.retry_backoff, b)),
            }
        }
        Ok(())
    }

    /// After a batch failed for good under idempotence (see [`Shared::renew`]): once no
    /// request is in flight, bumps the producer epoch and numbers every batch not yet
    /// written anew, each partition's from 0 in the order sealed. They are then sent as
    /// batches handed back are, oldest first.
    async fn renew_producer_id(&mut self) -> anyhow::Result<()> {
        if !self.shared.renew.load(Ordering::Acquire) {
            return Ok(());
        }
        // Every permit back: every answer read, so nothing numbered the old way is still
        // on its way to a broker.
        let max = self.settings.max_in_flight as u32;
        for l in self.leaders.values() {
            drop(l.permits.clone().acquire_many_owned(max).await);
        }
        for r in std::mem::take(&mut self.draining) {
            let _ = r.await;
        }
        let mut unsent: Vec<Sealed> = Vec::new();
        for (b, why) in self.take_retries() {
            unsent.extend(self.unless_expired(b, &why));
        }
        for (_, b) in std::mem::take(&mut self.retrying) {
            unsent.extend(self.unless_expired(b, "not sent again in time"));
        }
        for l in self.leaders.values_mut() {
            unsent.extend(l.ready.drain(..));
        }
        // Cleared once the expired batches are failed (which asks again): a failure from
        // here on asks for another renewal.
        self.shared.renew.store(false, Ordering::Release);
        unsent.sort_by_key(|b| b.order);
        // As Kafka's idempotent producer: the same producer id under the next epoch, so
        // that a late request of the old epoch is refused (INVALID_PRODUCER_EPOCH) wherever
        // a batch of the new one has arrived; a new producer id once the epoch runs out.
        let (producer_id, epoch) = match self.producer_id {
            Some((id, epoch)) if epoch < i16::MAX => (id, epoch + 1),
            _ => init_producer_id(&mut self.client, &self.settings).await?,
        };
        eprintln!(
            "WARN A batch failed for good; numbering the {} batch(es) not yet written anew under producer id {producer_id} epoch {epoch}",
            unsent.len()
        );
        self.producer_id = Some((producer_id, epoch));
        self.next_sequence.clear();
        let now = Instant::now();
        for mut b in unsent {
            let base = self.take_sequence(b.partition, b.enqueued.len());
            b.data = restamp(&b.data, producer_id, epoch, base)?;
            self.retrying.push((now, b));
        }
        // Nothing is in flight: no partition waits for an answer any more.
        self.shared.release_all();
        Ok(())
    }

    /// Moves the not yet sent batches of held partitions (see [`Shared::held`]) out of
    /// the ready queues, to wait with the ones to be sent again.
    fn hold_back(&mut self) {
        let held = self.shared.held();
        if held.is_empty() {
            return;
        }
        let due = Instant::now() + self.settings.retry_backoff;
        for l in self.leaders.values_mut() {
            if !l.ready.iter().any(|b| held.contains(&b.partition)) {
                continue;
            }
            let (out, keep): (VecDeque<Sealed>, VecDeque<Sealed>) =
                l.ready.drain(..).partition(|b| held.contains(&b.partition));
            l.ready = keep;
            self.retrying.extend(out.into_iter().map(|b| (due, b)));
        }
    }

    /// The batches handed back for another try, counted in the buffer again (until sent
    /// again), with why.
    fn take_retries(&mut self) -> Vec<(Sealed, String)> {
        let retries = self.shared.take_retries();
        self.buffered += retries
            .iter()
            .map(|(b, _)| b.buffered_size())
            .sum::<usize>();
        retries
    }

    /// `b`, or `None` when its `delivery.timeout.ms` has passed: then it is failed (`why`).
    fn unless_expired(&mut self, b: Sealed, why: &str) -> Option<Sealed> {
        if b.sealed.elapsed() < self.settings.delivery_timeout {
            return Some(b);
        }
        self.expire(b, why);
        None
    }

    fn expire(&mut self, b: Sealed, why: &str) {
        self.buffered = self.buffered.saturating_sub(b.buffered_size());
        let why = format!(
            "Expiring {} record(s) for {}-{}: {} ms has passed since batch creation ({why})",
            b.enqueued.len(),
            self.settings.topic,
            b.partition,
            self.settings.delivery_timeout.as_millis()
        );
        self.shared.fail_batch(&self.settings.topic, &b, &why);
    }

    /// Sends everything still open or queued and waits for every response, and for every
    /// batch sent again.
    async fn close(&mut self) -> anyhow::Result<()> {
        self.seal_lingering(true);
        let max = self.settings.max_in_flight as u32;
        loop {
            self.renew_producer_id().await?;
            self.reroute().await?;
            let ids: Vec<i32> = self.leaders.keys().copied().collect();
            for id in &ids {
                while self.leaders.get(id).is_some_and(|l| !l.ready.is_empty()) {
                    self.check_fatal()?;
                    let permit = self.acquire(*id).await?;
                    self.send_one(*id, permit).await?;
                }
            }
            for id in &ids {
                if let Some(l) = self.leaders.get(id) {
                    // All permits back: every response has been read.
                    let all = l.permits.clone().acquire_many_owned(max).await;
                    drop(all);
                }
            }
            // Readers of dropped connections hand back what they still had in flight.
            for r in std::mem::take(&mut self.draining) {
                let _ = r.await;
            }
            self.check_fatal()?;
            let handed_back = self.shared.retries.lock().is_ok_and(|r| !r.is_empty())
                || self.shared.renew.load(Ordering::Acquire);
            let broken = self
                .leaders
                .values()
                .any(|l| l.broken.load(Ordering::Acquire));
            if !handed_back && !broken && self.retrying.is_empty() {
                break;
            }
            if !handed_back && !broken {
                let next = self.retrying.iter().map(|(at, _)| *at).min();
                if let Some(at) = next {
                    tokio::time::sleep_until(at.into()).await;
                }
            }
        }
        for l in self.leaders.values_mut() {
            l.inflight_tx = None;
            if let Some(r) = l.reader.take() {
                let _ = r.await;
            }
            let _ = l.write.shutdown().await;
        }
        self.check_fatal()
    }

    fn print_metrics(&self) {
        let c = &self.shared.counters;
        let elapsed = self
            .shared
            .stats
            .lock()
            .map(|s| s.start.elapsed().as_secs_f64())
            .unwrap_or(1.0)
            .max(1e-9);
        let (count, bytes) = self
            .shared
            .stats
            .lock()
            .map(|s| (s.count, s.bytes))
            .unwrap_or((0, 0));
        let requests = c.requests.load(Ordering::Relaxed) as f64;
        let batches = c.batches.load(Ordering::Relaxed) as f64;
        let responses = c.responses.load(Ordering::Relaxed) as f64;
        let id = format!("{{client-id={}}}", self.settings.client.client_id);
        let metrics: Vec<(String, f64)> = vec![
            ("batch-size-avg", bytes as f64 / batches.max(1.0)),
            (
                "outgoing-byte-rate",
                c.request_bytes.load(Ordering::Relaxed) as f64 / elapsed,
            ),
            (
                "outgoing-byte-total",
                c.request_bytes.load(Ordering::Relaxed) as f64,
            ),
            (
                "record-error-total",
                self.shared.failed.load(Ordering::Relaxed) as f64,
            ),
            ("record-send-rate", count as f64 / elapsed),
            ("record-send-total", count as f64),
            ("records-per-request-avg", count as f64 / requests.max(1.0)),
            (
                "request-latency-avg",
                c.request_latency_us.load(Ordering::Relaxed) as f64 / responses.max(1.0) / 1000.0,
            ),
            ("request-rate", requests / elapsed),
            ("request-total", requests),
        ]
        .into_iter()
        .map(|(k, v)| (format!("producer-metrics:{k}:{id}"), v))
        .collect();
        let width = metrics.iter().map(|(k, _)| k.len()).max().unwrap_or(11);
        outln!("");
        outln!("{:<width$}   {}", "Metric Name", "Value");
        for (k, v) in metrics {
            outln!("{k:<width$} : {v:.3}");
        }
    }
}

/// Reads the responses of one connection in order and accounts each request's batches.
#[allow(clippy::too_many_arguments)]
async fn read_responses(
    read: ReadSide,
    mut inflight: mpsc::UnboundedReceiver<Inflight>,
    shared: Arc<Shared>,
    topic: String,
    version: i16,
    timeout: Duration,
    addr: String,
    failed: Arc<std::sync::atomic::AtomicBool>,
) {
    let header_version = ProduceResponse::header_version(version);
    // Buffered: small responses that arrive together are read in one system call.
    let mut read = BufReader::with_capacity(READ_BUFFER, read);
    let mut broken: Option<String> = None;
    while let Some(req) = inflight.recv().await {
        if let Some(why) = &broken {
            for b in req.batches {
                let p = b.partition;
                shared.retry(&topic, b, why.clone());
                shared.answered(p);
            }
            continue;
        }
        let frame = match tokio::time::timeout(timeout, read_frame(&mut read)).await {
            Ok(Ok(f)) => f,
            lost => {
                // As Kafka's producer: a lost connection is retriable.
                let why = match lost {
                    Ok(Err(e)) => format!("Connection to {addr} failed: {e}"),
                    _ => format!(
                        "Timed out after {}ms waiting for a Produce response from {addr}",
                        timeout.as_millis()
                    ),
                };
                failed.store(true, Ordering::Release);
                if !shared.retry_enabled {
                    shared.set_fatal(why.clone());
                }
                for b in req.batches {
                    let p = b.partition;
                    shared.retry(&topic, b, why.clone());
                    shared.answered(p);
                }
                broken = Some(why);
                continue;
            }
        };
        let now = Instant::now();
        shared.counters.responses.fetch_add(1, Ordering::Relaxed);
        shared.counters.request_latency_us.fetch_add(
            now.saturating_duration_since(req.sent).as_micros() as u64,
            Ordering::Relaxed,
        );
        match decode_response(frame, header_version, version, req.correlation) {
            Ok(resp) => {
                for b in req.batches {
                    let partition = b.partition;
                    let answer = resp
                        .responses
                        .iter()
                        .flat_map(|t| t.partition_responses.iter())
                        .find(|p| p.index == b.partition);
                    match answer {
                        Some(p) if p.error_code == 0 => shared.record_batch(&b, now),
                        // Written before: a retry of a batch whose answer was lost.
                        Some(p) if shared.idempotent && p.error_code == DUPLICATE_SEQUENCE => {
                            shared.record_batch(&b, now)
                        }
                        Some(p) => {
                            let e = ClientError::broker(
                                p.error_code,
                                p.error_message.as_ref().map(|m| m.as_str()),
                            );
                            // Ahead of its turn: an earlier batch of the partition is being
                            // sent again, and this one goes again behind it.
                            let out_of_order =
                                shared.idempotent && p.error_code == OUT_OF_ORDER_SEQUENCE;
                            if e.is_retriable() || out_of_order {
                                shared.retry(&topic, b, e.to_string());
                            } else {
                                shared.fail_batch(&topic, &b, &e.to_string());
                            }
                        }
                        None => shared.fail_batch(&topic, &b, "no answer for the partition"),
                    }
                    shared.answered(partition);
                }
            }
            Err(why) => {
                failed.store(true, Ordering::Release);
                shared.set_fatal(why.clone());
                for b in &req.batches {
                    shared.fail_batch(&topic, b, &why);
                    shared.answered(b.partition);
                }
                broken = Some(why);
            }
        }
    }
}

fn decode_response(
    mut frame: Bytes,
    header_version: i16,
    version: i16,
    correlation: i32,
) -> Result<ProduceResponse, String> {
    let header = ResponseHeader::decode(&mut frame, header_version)
        .map_err(|e| format!("Protocol error: bad Produce response header: {e}"))?;
    if header.correlation_id != correlation {
        return Err(format!(
            "Protocol error: correlation id mismatch: sent {correlation}, got {}",
            header.correlation_id
        ));
    }
    ProduceResponse::decode(&mut frame, version)
        .map_err(|e| format!("Protocol error: cannot decode ProduceResponse v{version}: {e}"))
}

use krust_protocol::batch_layout::{
    ATTRIBUTES_AT, BASE_SEQUENCE_AT, CRC_AT, HEADER_LEN, MAGIC_AT, PRODUCER_EPOCH_AT,
    PRODUCER_ID_AT,
};

/// An encoded batch under another producer id, epoch and base sequence (the records'
/// sequences are the base plus their offset delta), with its CRC computed again.
fn restamp(
    batch: &Bytes,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> anyhow::Result<Bytes> {
    if batch.len() < HEADER_LEN || batch[MAGIC_AT] != 2 {
        bail!("not a v2 record batch ({} bytes)", batch.len());
    }
    let mut b = BytesMut::from(&batch[..]);
    b[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
    b[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&epoch.to_be_bytes());
    b[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(b.freeze())
}

/// The sequence number `n` after `base`: they wrap around to 0 after i32::MAX, as Kafka's
/// do.
fn sequence_after(base: i32, n: usize) -> i32 {
    base.wrapping_add(n as i32) & i32::MAX
}

/// OUT_OF_ORDER_SEQUENCE_NUMBER and DUPLICATE_SEQUENCE_NUMBER.
const OUT_OF_ORDER_SEQUENCE: i16 = 45;
const DUPLICATE_SEQUENCE: i16 = 46;

/// Bytes read from a connection at a time.
const READ_BUFFER: usize = 64 * 1024;

async fn read_frame(read: &mut BufReader<ReadSide>) -> std::io::Result<Bytes> {
    let mut len = [0u8; 4];
    read.read_exact(&mut len).await?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= krust_client::MAX_RESPONSE_BYTES)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("invalid response size {len}"),
            )
        })?;
    let mut buf = vec![0u8; len];
    read.read_exact(&mut buf).await?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restamping_renumbers_a_batch_under_a_new_producer_id() {
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: 7,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: 40 + i as i32,
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode");
        let out = restamp(&buf.freeze(), 99, 1, 0).expect("restamp");
        let mut again = out.clone();
        let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut again)
            .expect("decodes, CRC included");
        let got: Vec<(i64, i16, i32)> = decoded
            .records
            .iter()
            .map(|r| (r.producer_id, r.producer_epoch, r.sequence))
            .collect();
        assert_eq!(got, vec![(99, 1, 0), (99, 1, 1), (99, 1, 2)]);
        assert!(restamp(&Bytes::from_static(b"short"), 1, 0, 0).is_err());
        assert!(
            restamp(&Bytes::from(vec![0u8; 70]), 1, 0, 0).is_err(),
            "magic 0"
        );
    }

    #[test]
    fn percentiles_pick_like_kafka() {
        let mut v: Vec<u64> = (0..1000).rev().collect();
        assert_eq!(
            percentiles(&mut v, &[0.5, 0.95, 0.99, 0.999]),
            vec![500, 950, 990, 999]
        );
        assert_eq!(percentiles(&mut [], &[0.5]), vec![0]);
    }

    #[test]
    fn stats_line_layout() {
        let start = Instant::now();
        let mut s = Stats::new(10, start);
        for i in 0..10 {
            s.record(1000 * i, 100, start);
        }
        assert_eq!(
            s.window_line(Duration::from_secs(2)),
            "10 records sent, 5.0 records/sec (0.00 MB/sec), 4.5 ms avg latency, 9.0 ms max latency."
        );
        let line = s.total_line(false);
        assert!(line.starts_with("10 records sent, "), "{line}");
        assert!(line.contains(" ms avg latency, 9.00 ms max latency, 5 ms 50th, 9 ms 95th, 9 ms 99th, 9 ms 99.9th."), "{line}");
        let mut s = Stats::new(4, start);
        for us in [250, 1999, 420, 3001] {
            s.record(us, 100, start);
        }
        let line = s.total_line(true);
        assert!(
            line.contains(
                " ms max latency, 1.999 ms 50th, 3.001 ms 95th, 3.001 ms 99th, 3.001 ms 99.9th."
            ),
            "{line}"
        );
    }
}
