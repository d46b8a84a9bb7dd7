//! `krust console-producer` (kafka-console-producer.sh): one record per stdin line.
//!
//! Kafka's `LineMessageReader` properties are honoured: `parse.key` with `key.separator`
//! (default tab), `ignore.error`, `null.marker`. Keyed records go to
//! `toPositive(murmur2(key)) % partitions` like Kafka's default partitioner; keyless records
//! stick to one partition per batch. Lines are batched (up to `--batch-size` records, waiting
//! at most `--timeout` ms, Kafka's console default linger of 1000 ms) and each partition's
//! batch is sent to its leader with the chosen `acks` (default -1, Kafka's console default).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use krust_client::{Client, ClientError};
use krust_protocol::records::{encode_batch, Compression, NewRecord};

use super::common::{self, ConnectArgs, PartitionLeader};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-console-producer",
    about = "Read data from standard input and publish it to Kafka.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// REQUIRED: The topic id to produce messages to.
    #[arg(long, value_name = "topic")]
    topic: String,
    /// Properties for the line reader: parse.key, key.separator, ignore.error, null.marker.
    #[arg(long = "property", value_name = "prop")]
    property: Vec<String>,
    /// Producer config properties (key=value), e.g. acks=all.
    #[arg(long = "producer-property", value_name = "producer_prop")]
    producer_property: Vec<String>,
    /// Producer config properties file.
    #[arg(long = "producer.config", value_name = "config file")]
    producer_config: Option<PathBuf>,
    /// Compression codec: none, gzip (default if given without value), snappy, lz4, zstd.
    #[arg(
        long = "compression-codec",
        value_name = "compression-codec",
        num_args = 0..=1,
        default_missing_value = "gzip"
    )]
    compression_codec: Option<String>,
    /// Bytes of records to gather before sending (Kafka maps this to `batch.size`).
    #[arg(long = "batch-size", default_value_t = 16 * 1024, value_name = "size")]
    batch_size: usize,
    /// Send each message synchronously, one request per message.
    #[arg(long)]
    sync: bool,
    /// Longest time (ms) a message waits for its batch to fill.
    #[arg(long = "timeout", default_value_t = 1000, value_name = "timeout_ms")]
    linger_ms: u64,
    /// Required acks: -1 (all), 0 or 1.
    #[arg(
        long = "request-required-acks",
        allow_hyphen_values = true,
        value_name = "request required acks"
    )]
    request_required_acks: Option<String>,
    /// The produce request timeout (ms).
    #[arg(
        long = "request-timeout-ms",
        default_value_t = 1500,
        value_name = "request timeout ms"
    )]
    request_timeout_ms: i32,
    /// How many times a failed send is retried.
    #[arg(
        long = "message-send-max-retries",
        default_value_t = 3,
        value_name = "Integer"
    )]
    max_retries: u32,
    /// Wait between retries (ms).
    #[arg(long = "retry-backoff-ms", default_value_t = 100, value_name = "Long")]
    retry_backoff_ms: u64,
}

/// A record read from one line.
#[derive(Debug, Clone, Default)]
struct LineRecord {
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

impl LineRecord {
    fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>()
    }
}

type KeyValue = LineRecord;

/// Records of one batch by partition.
type ByPartition = BTreeMap<i32, Vec<KeyValue>>;

/// How lines become records (`LineMessageReader`).
#[derive(Debug, Clone)]
struct LineReader {
    parse_key: bool,
    key_separator: String,
    ignore_error: bool,
    null_marker: Option<String>,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
}

impl LineReader {
    fn from_props(props: &BTreeMap<String, String>) -> LineReader {
        let flag = |k: &str| {
            props
                .get(k)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        };
        LineReader {
            parse_key: flag("parse.key"),
            key_separator: props
                .get("key.separator")
                .cloned()
                .unwrap_or_else(|| "\t".to_string()),
            ignore_error: flag("ignore.error"),
            null_marker: props.get("null.marker").cloned(),
            parse_headers: flag("parse.headers"),
            headers_delimiter: props
                .get("headers.delimiter")
                .cloned()
                .unwrap_or_else(|| "\t".to_string()),
            headers_separator: props
                .get("headers.separator")
                .cloned()
                .unwrap_or_else(|| ",".to_string()),
            headers_key_separator: props
                .get("headers.key.separator")
                .cloned()
                .unwrap_or_else(|| ":".to_string()),
        }
    }

    /// The record of line number `n` (1-based), as Kafka's `LineMessageReader` reads it:
    /// `[h1:v1,h2:v2<headers.delimiter>][key<key.separator>]value`.
    fn parse(&self, line: &str, n: u64) -> anyhow::Result<KeyValue> {
        let to_bytes = |s: &str| -> Option<Bytes> {
            if self.null_marker.as_deref() == Some(s) {
                None
            } else {
                Some(Bytes::copy_from_slice(s.as_bytes()))
            }
        };
        let mut rest = line;
        let mut record = LineRecord::default();
        if self.parse_headers {
            let Some((headers, after)) = rest.split_once(self.headers_delimiter.as_str()) else {
                if self.ignore_error {
                    return Ok(LineRecord {
                        value: to_bytes(line),
                        ..LineRecord::default()
                    });
                }
                bail!("No headers delimiter found on line number {n}: '{line}'");
            };
            rest = after;
            if self.null_marker.as_deref() != Some(headers) && !headers.is_empty() {
                for pair in headers.split(self.headers_separator.as_str()) {
                    match pair.split_once(self.headers_key_separator.as_str()) {
                        Some((k, v)) => record.headers.push((k.to_string(), to_bytes(v))),
                        None if self.ignore_error => record.headers.push((pair.to_string(), None)),
                        None => bail!(
                            "No header key separator found in pair '{pair}' on line number {n}"
                        ),
                    }
                }
            }
        }
        if !self.parse_key {
            record.value = to_bytes(rest);
            return Ok(record);
        }
        match rest.split_once(self.key_separator.as_str()) {
            Some((k, v)) => {
                record.key = to_bytes(k);
                record.value = to_bytes(v);
            }
            None if self.ignore_error => record.value = to_bytes(rest),
            None => bail!("No key separator found on line number {n}: '{line}'"),
        }
        Ok(record)
    }
}

fn parse_compression(codec: Option<&str>) -> anyhow::Result<Compression> {
    Ok(match codec.unwrap_or("none") {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => bail!("Invalid value {other} for configuration compression.type: String must be one of: none, gzip, snappy, lz4, zstd"),
    })
}

fn parse_acks(s: &str) -> anyhow::Result<i16> {
    Ok(match s.trim() {
        "all" | "-1" => -1,
        "0" => 0,
        "1" => 1,
        other => bail!(
            "Invalid value {other} for configuration acks: String must be one of: all, -1, 0, 1"
        ),
    })
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-console-producer", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match common::block_on(execute(&args)).and_then(|r| r) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => common::fail("ERROR ", &e),
    }
}

struct Settings {
    acks: i16,
    compression: Compression,
    reader: LineReader,
}

fn settings(args: &Args) -> anyhow::Result<(Settings, BTreeMap<String, String>)> {
    let mut producer_props = match &args.producer_config {
        Some(p) => common::load_properties(p)?,
        None => BTreeMap::new(),
    };
    producer_props.extend(common::parse_key_values(&args.producer_property)?);
    // Precedence as Kafka: --request-required-acks, then producer properties, then -1.
    let acks = match (&args.request_required_acks, producer_props.get("acks")) {
        (Some(a), _) => parse_acks(a)?,
        (None, Some(a)) => parse_acks(a)?,
        (None, None) => -1,
    };
    // As Kafka's tool: --compression-codec alone decides (none when absent).
    let compression = parse_compression(args.compression_codec.as_deref())?;
    let reader = LineReader::from_props(&common::parse_key_values(&args.property)?);
    Ok((
        Settings {
            acks,
            compression,
            reader,
        },
        producer_props,
    ))
}

/// Returns the number of records that failed.
async fn execute(args: &Args) -> anyhow::Result<u64> {
    let (settings, producer_props) = settings(args)?;
    // Producer properties override --command-config.
    let config = common::client_config_over(
        args.connect.client_config("console-producer")?,
        &producer_props,
    )?;
    let mut client = Client::connect(&args.connect.bootstrap_server, config).await?;
    let (_, partitions) = common::topic_partitions(&mut client, &args.topic, true).await?;
    let mut producer = Producer {
        topic: args.topic.clone(),
        partitions,
        settings,
        sticky: rand::random_range(0..i32::MAX),
        failed: 0,
        timeout_ms: args.request_timeout_ms,
        max_retries: args.max_retries,
        backoff: Duration::from_millis(args.retry_backoff_ms),
    };

    // Lines are read on a plain thread (stdin is blocking) and handed over in order.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(4096);
    std::thread::spawn(move || {
        use std::io::IsTerminal;
        let stdin = std::io::stdin();
        // Kafka prompts with '>' when it runs on a console.
        let prompt = stdin.is_terminal() && std::io::stdout().is_terminal();
        let mut lock = stdin.lock();
        let mut buf = Vec::new();
        loop {
            if prompt {
                let mut out = std::io::stdout();
                let _ = std::io::Write::write_all(&mut out, b">");
                let _ = std::io::Write::flush(&mut out);
            }
            buf.clear();
            match lock.read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                        if buf.last() == Some(&b'\r') {
                            buf.pop();
                        }
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });

    // --sync sends every record on its own; otherwise records gather up to --batch-size
    // bytes or --timeout ms, whichever comes first.
    let (batch_records, batch_bytes) = if args.sync {
        (1, usize::MAX)
    } else {
        (usize::MAX, args.batch_size.max(1))
    };
    let linger = Duration::from_millis(args.linger_ms);
    let mut line_no: u64 = 0;
    let mut open = true;
    while open {
        let mut batch: Vec<KeyValue> = Vec::new();
        let Some(first) = rx.recv().await else {
            break;
        };
        line_no += 1;
        let first = producer
            .settings
            .reader
            .parse(&first.context("reading stdin")?, line_no)?;
        let mut bytes = first.size();
        batch.push(first);
        let deadline = Instant::now() + linger;
        while batch.len() < batch_records && bytes < batch_bytes {
            let next = match rx.try_recv() {
                Ok(l) => Some(l),
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    None
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                        Ok(Some(l)) => Some(l),
                        Ok(None) => {
                            open = false;
                            None
                        }
                        Err(_) => None,
                    }
                }
            };
            let Some(line) = next else {
                break;
            };
            line_no += 1;
            match line
                .context("reading stdin")
                .and_then(|l| producer.settings.reader.parse(&l, line_no))
            {
                Ok(r) => {
                    bytes += r.size();
                    batch.push(r);
                }
                Err(e) => {
                    // Send what was read before the bad line, then stop as Kafka does.
                    producer.send(&mut client, batch).await;
                    return Err(e);
                }
            }
        }
        producer.send(&mut client, batch).await;
    }
    Ok(producer.failed)
}

struct Producer {
    topic: String,
    partitions: Vec<PartitionLeader>,
    settings: Settings,
    sticky: i32,
    failed: u64,
    timeout_ms: i32,
    max_retries: u32,
    backoff: Duration,
}

impl Producer {
    fn partition_for(&self, key: Option<&Bytes>) -> i32 {
        let n = self.partitions.len() as i32;
        match key {
            Some(k) => common::partition_for_key(k, n),
            None => {
                // Sticky: keyless records of one batch go to one available partition.
                let available: Vec<i32> = self
                    .partitions
                    .iter()
                    .filter(|p| p.leader >= 0)
                    .map(|p| p.partition)
                    .collect();
                if available.is_empty() {
                    self.sticky % n.max(1)
                } else {
                    available[(self.sticky as usize) % available.len()]
                }
            }
        }
    }

    /// Sends one batch of records, retrying retriable errors; reports failures on stderr.
    async fn send(&mut self, client: &mut Client, records: Vec<KeyValue>) {
        if records.is_empty() {
            return;
        }
        self.sticky = self.sticky.wrapping_add(1).max(0);
        let mut by_partition: ByPartition = BTreeMap::new();
        for r in records {
            let p = self.partition_for(r.key.as_ref());
            by_partition.entry(p).or_default().push(r);
        }
        let mut attempt = 0;
        loop {
            let errors = self.send_once(client, &by_partition).await;
            let retriable = errors.iter().all(|(_, e)| e.is_retriable());
            if errors.is_empty() {
                return;
            }
            if retriable && attempt < self.max_retries {
                attempt += 1;
                tokio::time::sleep(self.backoff).await;
                if let Ok((_, parts)) = common::topic_partitions(client, &self.topic, false).await {
                    self.partitions = parts;
                }
                by_partition.retain(|p, _| errors.iter().any(|(ep, _)| ep == p));
                continue;
            }
            for (p, e) in &errors {
                for r in by_partition.get(p).map(Vec::as_slice).unwrap_or(&[]) {
                    self.failed += 1;
                    let (k, v) = (&r.key, &r.value);
                    let key = k
                        .as_ref()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_else(|| "null".into());
                    let len = v.as_ref().map(|v| v.len()).unwrap_or(0);
                    eprintln!(
                        "ERROR Error when sending message to topic {} with key: {key}, value: {len} bytes with error: {e}",
                        self.topic
                    );
                }
            }
            return;
        }
    }

    /// One attempt: one Produce request per leader. Returns the partitions that failed.
    async fn send_once(
        &self,
        client: &mut Client,
        by_partition: &ByPartition,
    ) -> Vec<(i32, ClientError)> {
        let mut errors = Vec::new();
        let leaders: HashMap<i32, i32> = self
            .partitions
            .iter()
            .map(|p| (p.partition, p.leader))
            .collect();
        let mut by_leader: BTreeMap<i32, Vec<(i32, Bytes)>> = BTreeMap::new();
        for (p, records) in by_partition {
            let leader = leaders.get(p).copied().unwrap_or(-1);
            if leader < 0 {
                errors.push((*p, ClientError::broker(5, None)));
                continue;
            }
            match self.encode(records) {
                Ok(b) => by_leader.entry(leader).or_default().push((*p, b)),
                Err(e) => errors.push((*p, ClientError::Protocol(e.to_string()))),
            }
        }
        for (leader, batches) in by_leader {
            let partition_ids: Vec<i32> = batches.iter().map(|(p, _)| *p).collect();
            let req = ProduceRequest::default()
                .with_acks(self.settings.acks)
                .with_timeout_ms(self.timeout_ms)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_partition_data(
                        batches
                            .into_iter()
                            .map(|(p, b)| {
                                PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(b))
                            })
                            .collect(),
                    )]);
            if self.settings.acks == 0 {
                let r = match client.connection_to(leader).await {
                    Ok(conn) => conn.send_no_response(&req).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    errors.extend(partition_ids.iter().map(|p| (*p, clone_err(&e))));
                }
                continue;
            }
            match client.send_to(leader, &req).await {
                Ok(resp) => {
                    let mut answered = Vec::new();
                    for t in &resp.responses {
                        for p in &t.partition_responses {
                            answered.push(p.index);
                            if let Err(e) =
                                ClientError::check(p.error_code, p.error_message.as_ref())
                            {
                                errors.push((p.index, e));
                            }
                        }
                    }
                    for p in partition_ids.iter().filter(|p| !answered.contains(p)) {
                        errors.push((
                            *p,
                            ClientError::Protocol(format!("no answer for partition {p}")),
                        ));
                    }
                }
                Err(e) => errors.extend(partition_ids.iter().map(|p| (*p, clone_err(&e)))),
            }
        }
        errors
    }

    fn encode(&self, records: &[KeyValue]) -> anyhow::Result<Bytes> {
        let recs: Vec<NewRecord> = records
            .iter()
            .map(|r| NewRecord {
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
                timestamp: None,
            })
            .collect();
        encode_batch(&recs, common::now_ms(), self.settings.compression)
            .map_err(|e| anyhow::anyhow!("cannot encode records: {e}"))
    }
}

/// ClientError is not Clone (it may carry I/O detail); rebuild an equivalent value.
fn clone_err(e: &ClientError) -> ClientError {
    match e {
        ClientError::Broker { code, message } => ClientError::Broker {
            code: *code,
            message: message.clone(),
        },
        ClientError::Timeout { what, after } => ClientError::Timeout {
            what: what.clone(),
            after: *after,
        },
        ClientError::Io { addr, reason } => ClientError::Io {
            addr: addr.clone(),
            reason: reason.clone(),
        },
        other => ClientError::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_reader_splits_keys_like_kafka() {
        let mut props = BTreeMap::new();
        props.insert("parse.key".to_string(), "true".to_string());
        props.insert("key.separator".to_string(), ":".to_string());
        let r = LineReader::from_props(&props);
        let rec = r.parse("a:b:c", 1).expect("parse");
        assert_eq!(rec.key.as_deref(), Some(&b"a"[..]));
        assert_eq!(rec.value.as_deref(), Some(&b"b:c"[..]));
        let err = r.parse("nokey", 7).expect_err("no separator");
        assert_eq!(
            err.to_string(),
            "No key separator found on line number 7: 'nokey'"
        );
        props.insert("parse.headers".to_string(), "true".to_string());
        props.insert("null.marker".to_string(), "NULL".to_string());
        let r = LineReader::from_props(&props);
        let rec = r.parse("h1:x,h2:NULL\tk:NULL", 2).expect("parse");
        assert_eq!(
            rec.headers,
            vec![
                ("h1".to_string(), Some(Bytes::from_static(b"x"))),
                ("h2".to_string(), None)
            ]
        );
        assert_eq!(rec.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(rec.value, None);
        assert!(r.parse("no-headers", 3).is_err());
        let r = LineReader::from_props(&BTreeMap::new());
        let plain = r.parse("a\tb", 1).expect("parse");
        assert_eq!(plain.value.as_deref(), Some(&b"a\tb"[..]));
        assert_eq!(parse_acks("all").expect("acks"), -1);
        assert!(parse_compression(Some("brotli")).is_err());
    }
}
