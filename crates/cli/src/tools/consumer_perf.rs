//! `krust consumer-perf-test` (kafka-consumer-perf-test.sh, Kafka's `ConsumerPerformance`):
//! reads `--messages` records as a member of a consumer group (`--group`, by default
//! `perf-consumer-<random>`) subscribed to `--topic` or to the topics matching `--include`,
//! and prints Kafka's header and result row (`start.time, end.time, data.consumed.in.MB,
//! MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec,
//! fetch.nMsg.sec`).
//!
//! As Kafka's tool does, it joins the group (see `group_member`), starts each assigned
//! partition at its committed offset or else at the earliest (`--from-latest`: latest),
//! heartbeats, commits every `auto.commit.interval.ms` and on exit unless
//! `enable.auto.commit=false` (`--consumer.config`), and leaves the group at the end.
//! `rebalance.time.ms` is the time spent joining (from the start, and again after each
//! rebalance); `fetch.time.ms` is the rest, and `fetch.MB.sec` the rate over it.
//! Each round is one Fetch per leader for all its assigned partitions (`--fetch-size` bytes
//! per partition, 50 MiB per response); batches are walked in place to count records and
//! key + value bytes, without copying them (compressed batches are decompressed). It stops
//! at exactly `--messages` records (Kafka's tool counts whole polls, so it may count a few
//! hundred more), and the offsets it commits are just past the last one counted. A partition
//! without a leader is left aside (its start offset found once it has one) while the others
//! are read. `--include` is Kafka's topic include list, as the console consumer's (`,`
//! also separates alternatives).
//! Times print in UTC with `--date-format` (Kafka's `SimpleDateFormat` letters y M d H m s
//! S; default `yyyy-MM-dd HH:mm:ss:SSS`).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use kafka_protocol::records::RecordBatchDecoder;
use krust_client::Client;

use super::common;
use super::console_consumer::{
    fetch_from, fetch_requests, positions, reset_partitions, subscribed_topics, Answer, Fetched,
    Flow, PartitionState, Selection, Start,
};
use super::group_member::{
    auto_commit_settings, CommitOutcome, GroupMember, MemberConfig, MemberState, Tp,
};
use super::topic_filter::TopicFilter;

/// The least time between two Metadata requests for leaders (Kafka's `retry.backoff.ms`).
const METADATA_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Parser, Debug)]
#[command(
    name = "kafka-consumer-perf-test",
    about = "This tool is used to verify the consumer performance.",
    disable_version_flag = true
)]
struct Args {
    /// REQUIRED: The server(s) to connect to.
    #[arg(long = "bootstrap-server", value_name = "server to connect to")]
    bootstrap_server: Option<String>,
    /// The topic to consume from.
    #[arg(long, value_name = "topic")]
    topic: Option<String>,
    /// Regular expression specifying list of topics to include for consumption.
    #[arg(long, value_name = "Java regex (String)")]
    include: Option<String>,
    /// The group id to consume on [default: perf-consumer-<random number below 100000>].
    #[arg(long, value_name = "gid")]
    group: Option<String>,
    /// The amount of data to fetch in a single request (per partition).
    #[arg(long = "fetch-size", value_name = "size", default_value_t = 1024 * 1024)]
    fetch_size: i32,
    /// If the consumer does not already have an established offset to consume from, start
    /// with the latest message present in the log rather than the earliest message.
    #[arg(long = "from-latest")]
    from_latest: bool,
    /// The size of the tcp RECV size (the connections' SO_RCVBUF; -1 for the system's
    /// default). As in Kafka's tool, it wins over receive.buffer.bytes in --consumer.config.
    #[arg(
        long = "socket-buffer-size",
        value_name = "size",
        default_value_t = 2 * 1024 * 1024,
        allow_hyphen_values = true
    )]
    socket_buffer_size: i64,
    /// Consumer config properties file (client.id, request.timeout.ms, send.buffer.bytes,
    /// session.timeout.ms, heartbeat.interval.ms, max.poll.interval.ms, group.instance.id,
    /// enable.auto.commit and auto.commit.interval.ms are used).
    #[arg(long = "consumer.config", value_name = "config file")]
    consumer_config: Option<PathBuf>,
    /// Print out the metrics.
    #[arg(long = "print-metrics")]
    print_metrics: bool,
    /// If set, stats are reported for each reporting interval as configured by
    /// reporting-interval
    #[arg(long = "show-detailed-stats")]
    show_detailed_stats: bool,
    /// The maximum allowed time in milliseconds between returned records.
    #[arg(long, value_name = "milliseconds", default_value_t = 10_000)]
    timeout: u64,
    /// REQUIRED: The number of messages to consume.
    #[arg(long, value_name = "count", allow_hyphen_values = true)]
    messages: Option<i64>,
    /// Interval in milliseconds at which to print progress info.
    #[arg(
        long = "reporting-interval",
        value_name = "interval_ms",
        default_value_t = 5000
    )]
    reporting_interval: u64,
    /// The date format to use for formatting the time field (SimpleDateFormat letters).
    #[arg(
        long = "date-format",
        value_name = "date format",
        default_value = "yyyy-MM-dd HH:mm:ss:SSS"
    )]
    date_format: String,
    /// If set, skips printing the header for the stats
    #[arg(long = "hide-header")]
    hide_header: bool,
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-consumer-perf-test", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let checked = (|| -> anyhow::Result<(String, Selection, u64)> {
        let bs = args
            .bootstrap_server
            .clone()
            .context("Missing required argument \"[bootstrap-server]\"")?;
        let messages = args
            .messages
            .context("Missing required argument \"[messages]\"")?;
        let selection = match (&args.topic, &args.include) {
            (Some(t), None) => Selection::Topic(t.clone()),
            (None, Some(i)) => Selection::Include(TopicFilter::new(i)?),
            _ => bail!("Exactly one of the following arguments is required: [topic], [include]"),
        };
        if args.reporting_interval == 0 {
            bail!("Reporting interval must be greater than 0.");
        }
        if args.fetch_size <= 0 {
            bail!("--fetch-size must be greater than zero");
        }
        Ok((bs, selection, messages.max(0) as u64))
    })();
    let (bootstrap, selection, messages) = match checked {
        Ok(v) => v,
        Err(e) => return common::fail("Error: ", &e),
    };
    match common::block_on(execute(&args, &bootstrap, &selection, messages)).and_then(|r| r) {
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

/// Progress counters as Kafka's `consume` loop keeps them.
struct Progress {
    messages: u64,
    bytes: u64,
    last_messages: u64,
    last_bytes: u64,
    last_report_ms: i64,
    /// Time spent joining since the last progress line (`--show-detailed-stats`).
    join_ms_in_round: i64,
}

/// What one fetch round asks of the loop around it.
#[derive(Default)]
struct Round {
    need_metadata: bool,
    reset: Vec<Tp>,
    /// Fetch requests sent.
    fetches: usize,
}

/// What every fetch round shares.
struct FetchCtx<'a> {
    args: &'a Args,
    topic_ids: HashMap<String, uuid::Uuid>,
    format: DateFormat,
    /// `--messages`.
    messages: u64,
}

async fn execute(
    args: &Args,
    bootstrap: &str,
    selection: &Selection,
    messages: u64,
) -> anyhow::Result<()> {
    let props = match &args.consumer_config {
        Some(p) => common::load_properties(p)?,
        None => BTreeMap::new(),
    };
    let mut config = common::client_config_from(&props, "perf-consumer-client")?;
    config.buffers.receive =
        common::socket_buffer_bytes("socket-buffer-size", args.socket_buffer_size)?;
    // As in Kafka's tool, --group wins over a group.id in --consumer.config.
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("perf-consumer-{}", rand::random_range(0..100_000)));
    let member_config = MemberConfig::from_props(&group, &props)?;
    let heartbeat_interval = member_config.heartbeat_interval;
    let (auto_commit, commit_interval) = auto_commit_settings(&props)?;
    let policy = if args.from_latest {
        Start::Latest
    } else {
        Start::Earliest
    };
    if !args.hide_header {
        print_header(args.show_detailed_stats);
    }
    let start_ms = common::now_ms();
    let mut client = Client::connect(bootstrap, config).await?;
    let mut member = GroupMember::new(member_config);
    let mut state: BTreeMap<Tp, PartitionState> = BTreeMap::new();
    let mut ctx = FetchCtx {
        args,
        topic_ids: HashMap::new(),
        format: DateFormat::new(&args.date_format),
        messages,
    };
    let mut progress = Progress {
        messages: 0,
        bytes: 0,
        last_messages: 0,
        last_bytes: 0,
        last_report_ms: start_ms,
        join_ms_in_round: 0,
    };
    let mut join_ms: i64 = 0;
    let mut first_join = true;
    let mut last_consumed = Instant::now();
    let timeout = Duration::from_millis(args.timeout);
    'join: while progress.messages < messages {
        let left = timeout.saturating_sub(last_consumed.elapsed());
        // The first join counts from the start, as Kafka's tool counts it.
        let join_start = if std::mem::take(&mut first_join) {
            start_ms
        } else {
            common::now_ms()
        };
        let topics = subscribed_topics(&mut client, selection).await?;
        let Ok(assigned) = tokio::time::timeout(left, member.join(&mut client, &topics)).await
        else {
            break; // no records within --timeout
        };
        let assigned = assigned?;
        let joined_in = common::now_ms() - join_start;
        join_ms += joined_in;
        progress.join_ms_in_round += joined_in;
        tracing::debug!(
            "joined group {group} as {} (generation {}): {assigned:?}",
            member.member_id(),
            member.generation()
        );
        state.clear();
        for (topic, parts) in &assigned {
            for p in parts {
                state.insert(
                    (topic.clone(), *p),
                    PartitionState {
                        leader: -1,
                        next: -1,
                    },
                );
            }
        }
        let topic_names: Vec<String> = assigned.keys().cloned().collect();
        ctx.topic_ids = refresh_leaders(&mut client, &topic_names, &mut state).await?;
        let committed = member.committed(&mut client, &assigned).await?;
        for (tp, s) in state.iter_mut() {
            if let Some(o) = committed.get(tp).copied().flatten() {
                s.next = o;
            }
        }
        reset_positionless(&mut client, &mut state, policy).await?;
        let mut last_commit = Instant::now();
        let mut last_refresh = Instant::now();
        while progress.messages < messages && last_consumed.elapsed() <= timeout {
            if member.heartbeat_due() {
                member.heartbeat(&mut client).await?;
            }
            if member.state() != MemberState::Stable {
                if auto_commit {
                    // Before rejoining, as Kafka's consumer does; a refusal only means
                    // those records may be read again.
                    let _ = member.commit(&mut client, &positions(&state)).await?;
                }
                continue 'join;
            }
            if auto_commit && last_commit.elapsed() >= commit_interval {
                last_commit = Instant::now();
                if let CommitOutcome::MustRejoin =
                    member.commit(&mut client, &positions(&state)).await?
                {
                    continue 'join;
                }
            }
            let wait = Duration::from_millis(100).min(heartbeat_interval);
            if state.is_empty() {
                tokio::time::sleep(wait).await;
                continue;
            }
            let round = fetch_round(
                &mut client,
                &mut state,
                &ctx,
                wait,
                &mut progress,
                &mut last_consumed,
            )
            .await?;
            if !round.reset.is_empty() {
                reset_partitions(&mut client, &mut state, &round.reset, policy).await?;
            }
            if round.fetches == 0 {
                // Nothing to read from until a leader is known.
                tokio::time::sleep(METADATA_BACKOFF).await;
            }
            if round.need_metadata && last_refresh.elapsed() >= METADATA_BACKOFF {
                last_refresh = Instant::now();
                if let Ok(ids) = refresh_leaders(&mut client, &topic_names, &mut state).await {
                    ctx.topic_ids = ids;
                }
                reset_positionless(&mut client, &mut state, policy).await?;
            }
        }
        break;
    }
    let end_ms = common::now_ms();
    if progress.messages < messages {
        outln!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.",
            args.timeout
        );
    }
    // Closing the consumer: a last commit, then leave the group.
    if auto_commit && member.state() == MemberState::Stable {
        if let Err(e) = member.commit(&mut client, &positions(&state)).await {
            tracing::warn!("committing offsets on exit: {e:#}");
        }
    }
    member.leave(&mut client).await;
    if !args.show_detailed_stats {
        let elapsed_sec = (end_ms - start_ms) as f64 / 1000.0;
        let fetch_ms = (end_ms - start_ms) - join_ms;
        let mb = progress.bytes as f64 / (1024.0 * 1024.0);
        outln!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
            ctx.format.format(start_ms),
            ctx.format.format(end_ms),
            mb,
            java_div(mb, elapsed_sec),
            progress.messages,
            java_div(progress.messages as f64, elapsed_sec),
            join_ms,
            fetch_ms,
            java_div(mb, fetch_ms as f64 / 1000.0),
            java_div(progress.messages as f64, fetch_ms as f64 / 1000.0),
        );
    }
    if args.print_metrics {
        let elapsed = ((end_ms - start_ms) as f64 / 1000.0).max(1e-9);
        let id = "{client-id=perf-consumer-client}";
        let metrics = [
            ("bytes-consumed-rate", progress.bytes as f64 / elapsed),
            ("bytes-consumed-total", progress.bytes as f64),
            ("records-consumed-rate", progress.messages as f64 / elapsed),
            ("records-consumed-total", progress.messages as f64),
        ];
        let names: Vec<String> = metrics
            .iter()
            .map(|(k, _)| format!("consumer-fetch-manager-metrics:{k}:{id}"))
            .collect();
        let width = names.iter().map(String::len).max().unwrap_or(11);
        outln!("");
        outln!("{:<width$}   {}", "Metric Name", "Value");
        for (name, (_, v)) in names.iter().zip(metrics) {
            outln!("{name:<width$} : {v:.3}");
        }
    }
    Ok(())
}

/// One Fetch to each leader of assigned partitions; counts the records and advances the
/// positions, printing a progress line each `--reporting-interval` with
/// `--show-detailed-stats`.
async fn fetch_round(
    client: &mut Client,
    state: &mut BTreeMap<Tp, PartitionState>,
    ctx: &FetchCtx<'_>,
    wait: Duration,
    progress: &mut Progress,
    last_consumed: &mut Instant,
) -> anyhow::Result<Round> {
    let args = ctx.args;
    let mut round = Round::default();
    // A partition without a leader is left aside until it has one (and a start offset).
    let (requests, leaderless) = fetch_requests(state, &ctx.topic_ids, wait, 0, args.fetch_size);
    round.need_metadata = leaderless;
    for (leader, req) in requests {
        round.fetches += 1;
        let now_ms = common::now_ms();
        let fetched = fetch_from(client, leader, &req, &ctx.topic_ids, |name, p, answer| {
            let tp = (name.to_string(), p);
            let Some(s) = state.get_mut(&tp) else {
                return Ok(Flow::Go);
            };
            let records = match answer {
                Answer::OutOfRange => {
                    round.reset.push(tp);
                    return Ok(Flow::Go);
                }
                Answer::Retriable => {
                    round.need_metadata = true;
                    return Ok(Flow::Go);
                }
                Answer::Records(records) => records,
            };
            let remaining = ctx.messages - progress.messages;
            let (n, b) = count_records(records, &mut s.next, remaining)?;
            if n > 0 {
                *last_consumed = Instant::now();
            }
            progress.messages += n;
            progress.bytes += b;
            // As Kafka's tool, a progress line comes with records, not with an empty fetch.
            if args.show_detailed_stats
                && n > 0
                && now_ms - progress.last_report_ms >= args.reporting_interval as i64
            {
                print_progress(progress, now_ms, &ctx.format);
                progress.last_report_ms = now_ms;
                progress.last_messages = progress.messages;
                progress.last_bytes = progress.bytes;
                progress.join_ms_in_round = 0;
            }
            Ok(if progress.messages >= ctx.messages {
                Flow::Stop
            } else {
                Flow::Go
            })
        })
        .await?;
        match fetched {
            Fetched::Done => {}
            Fetched::Stopped => return Ok(round),
            Fetched::Unreachable => round.need_metadata = true,
        }
    }
    Ok(round)
}

/// The leaders of the assigned partitions from one Metadata request (-1 where there is
/// none), and the ids of `topics`. No retries: a partition without a leader waits aside.
async fn refresh_leaders(
    client: &mut Client,
    topics: &[String],
    state: &mut BTreeMap<Tp, PartitionState>,
) -> anyhow::Result<HashMap<String, uuid::Uuid>> {
    let md = client.metadata(Some(topics)).await?;
    let mut ids = HashMap::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.to_string()) else {
            continue;
        };
        if t.error_code != 0 {
            continue;
        }
        for p in &t.partitions {
            if let Some(s) = state.get_mut(&(name.clone(), p.partition_index)) {
                s.leader = if p.error_code == 0 { p.leader_id.0 } else { -1 };
            }
        }
        ids.insert(name, t.topic_id);
    }
    Ok(ids)
}

/// Sets the start offset (by `policy`) of every partition that has a leader but no position
/// yet.
async fn reset_positionless(
    client: &mut Client,
    state: &mut BTreeMap<Tp, PartitionState>,
    policy: Start,
) -> anyhow::Result<()> {
    let missing: Vec<Tp> = state
        .iter()
        .filter(|(_, s)| s.next < 0 && s.leader >= 0)
        .map(|(tp, _)| tp.clone())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    reset_partitions(client, state, &missing, policy).await
}

/// Java's double division: x/0 is Infinity or NaN, printed as Java prints them.
fn java_div(x: f64, y: f64) -> JavaDouble {
    JavaDouble(x / y)
}

struct JavaDouble(f64);

impl std::fmt::Display for JavaDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_nan() {
            f.write_str("NaN")
        } else if self.0.is_infinite() {
            f.write_str(if self.0 > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            })
        } else {
            std::fmt::Display::fmt(&self.0, f)
        }
    }
}

fn print_header(detailed: bool) {
    let extra = ", rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";
    if detailed {
        outln!(
            "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec{extra}"
        );
    } else {
        outln!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec{extra}");
    }
}

/// Kafka's `printConsumerProgress` line for one reporting interval.
fn print_progress(p: &Progress, now_ms: i64, format: &DateFormat) {
    let elapsed_ms = (now_ms - p.last_report_ms) as f64;
    let total_mb = p.bytes as f64 / (1024.0 * 1024.0);
    let interval_mb = (p.bytes - p.last_bytes) as f64 / (1024.0 * 1024.0);
    let interval_msgs = (p.messages - p.last_messages) as f64;
    let fetch_ms = now_ms - p.last_report_ms - p.join_ms_in_round;
    let (fetch_mb_sec, fetch_msg_sec) = if fetch_ms <= 0 {
        (0.0, 0.0)
    } else {
        (
            1000.0 * interval_mb / fetch_ms as f64,
            1000.0 * interval_msgs / fetch_ms as f64,
        )
    };
    outln!(
        "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
        format.format(now_ms),
        0,
        total_mb,
        JavaDouble(1000.0 * interval_mb / elapsed_ms),
        p.messages,
        JavaDouble(interval_msgs / elapsed_ms * 1000.0),
        p.join_ms_in_round,
        fetch_ms,
        fetch_mb_sec,
        fetch_msg_sec
    );
}

/// Counts the data records at or after `*pos` in complete batches (at most `max`), adds
/// their key and value bytes, and moves `*pos` past them. Returns (records, bytes).
fn count_records(mut data: Bytes, pos: &mut i64, max: u64) -> anyhow::Result<(u64, u64)> {
    let mut n = 0u64;
    let mut bytes = 0u64;
    while data.len() >= 61 && n < max {
        let base = i64::from_be_bytes(data[0..8].try_into().context("batch header")?);
        let len = i32::from_be_bytes(data[8..12].try_into().context("batch header")?);
        let Ok(len) = usize::try_from(len) else {
            bail!("invalid batch length {len} at offset {base}");
        };
        let total = len + 12;
        if total < 61 || data.len() < total {
            break; // a partial batch at the end of the response
        }
        let batch = data.split_to(total);
        let magic = batch[16] as i8;
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        let last_delta = i32::from_be_bytes(batch[23..27].try_into().context("batch header")?);
        let next = base + i64::from(last_delta) + 1;
        if next <= *pos {
            continue;
        }
        if magic != 2 {
            bail!("unsupported record batch magic {magic} at offset {base}");
        }
        let control = attributes & 0x20 != 0;
        if control {
            *pos = next;
            continue;
        }
        let compressed = attributes & 0x07 != 0;
        let mut stopped_at = None;
        if compressed {
            let mut b = batch.clone();
            let set = RecordBatchDecoder::decode(&mut b)
                .map_err(|e| anyhow::anyhow!("cannot decode batch at offset {base}: {e}"))?;
            for r in set.records {
                if r.offset < *pos {
                    continue;
                }
                if n >= max {
                    stopped_at = Some(r.offset);
                    break;
                }
                n += 1;
                bytes +=
                    r.key.map_or(0, |k| k.len() as u64) + r.value.map_or(0, |v| v.len() as u64);
            }
        } else {
            let mut r = Reader { b: &batch[61..] };
            let count = i32::from_be_bytes(batch[57..61].try_into().context("batch header")?);
            for _ in 0..count.max(0) {
                let rec_len = r.varint()?;
                let Ok(rec_len) = usize::try_from(rec_len) else {
                    bail!("invalid record length at offset {base}");
                };
                let rec = r.take(rec_len)?;
                let mut rr = Reader { b: rec };
                rr.take(1)?; // attributes
                rr.varint()?; // timestamp delta
                let offset = base + rr.varint()?;
                if offset < *pos {
                    continue;
                }
                if n >= max {
                    stopped_at = Some(offset);
                    break;
                }
                let key_len = rr.varint()?;
                if key_len > 0 {
                    rr.take(key_len as usize)?;
                    bytes += key_len as u64;
                }
                let value_len = rr.varint()?;
                if value_len > 0 {
                    bytes += value_len as u64;
                }
                n += 1;
            }
        }
        *pos = stopped_at.unwrap_or(next);
    }
    Ok((n, bytes))
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        if self.b.len() < n {
            bail!("truncated record");
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    /// A zigzag varint (records use them for lengths, deltas).
    fn varint(&mut self) -> anyhow::Result<i64> {
        let mut v: u64 = 0;
        let mut shift = 0;
        loop {
            let Some((&byte, rest)) = self.b.split_first() else {
                bail!("truncated varint");
            };
            self.b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                bail!("varint too long");
            }
        }
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
}

/// The letters of Java's `SimpleDateFormat` that tools use; times in UTC.
struct DateFormat {
    pattern: String,
}

impl DateFormat {
    fn new(pattern: &str) -> DateFormat {
        DateFormat {
            pattern: pattern.to_string(),
        }
    }

    fn format(&self, ms: i64) -> String {
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000);
        let (y, mo, d) = civil_from_days(days);
        let fields = |c: char| -> Option<i64> {
            Some(match c {
                'y' => y,
                'M' => mo,
                'd' => d,
                'H' => in_day / 3_600_000,
                'm' => in_day / 60_000 % 60,
                's' => in_day / 1000 % 60,
                'S' => in_day % 1000,
                _ => return None,
            })
        };
        let chars: Vec<char> = self.pattern.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // Quoted literal text; '' is a quote.
                let mut j = i + 1;
                if chars.get(j) == Some(&'\'') {
                    out.push('\'');
                    i += 2;
                    continue;
                }
                while j < chars.len() && chars[j] != '\'' {
                    out.push(chars[j]);
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            let mut run = 1;
            while i + run < chars.len() && chars[i + run] == c {
                run += 1;
            }
            match fields(c) {
                Some(v) if c == 'y' && run == 2 => out.push_str(&format!("{:02}", v % 100)),
                Some(v) => out.push_str(&format!("{v:0run$}")),
                None => out.extend(std::iter::repeat_n(c, run)),
            }
            i += run;
        }
        out
    }
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_like_simple_date_format() {
        let f = DateFormat::new("yyyy-MM-dd HH:mm:ss:SSS");
        assert_eq!(f.format(0), "1970-01-01 00:00:00:000");
        assert_eq!(f.format(1_700_000_000_123), "2023-11-14 22:13:20:123");
        assert_eq!(
            DateFormat::new("dd/MM/yy 'at' H").format(0),
            "01/01/70 at 0"
        );
    }

    #[test]
    fn counts_records_of_encoded_batches() {
        use krust_protocol::records::{encode_batch, Compression, NewRecord};
        let recs: Vec<NewRecord> = (0..5)
            .map(|i| NewRecord {
                key: (i == 0).then(|| Bytes::from_static(b"kk")),
                value: Some(Bytes::from_static(b"vvv")),
                ..Default::default()
            })
            .collect();
        for compression in [Compression::None, Compression::Gzip] {
            let mut buf =
                bytes::BytesMut::from(&encode_batch(&recs, 0, compression).expect("encode")[..]);
            // Based at offset 10 (the base offset is outside the CRC).
            buf[..8].copy_from_slice(&10i64.to_be_bytes());
            let data = buf.freeze();
            let mut pos = 0;
            assert_eq!(
                count_records(data.clone(), &mut pos, 100).expect("count"),
                (5, 17)
            );
            assert_eq!(pos, 15);
            let mut pos = 12;
            assert_eq!(
                count_records(data.clone(), &mut pos, 2).expect("count"),
                (2, 6)
            );
            assert_eq!(pos, 14);
        }
    }
}
