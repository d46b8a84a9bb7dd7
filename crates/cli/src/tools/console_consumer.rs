//! `krust console-consumer` (kafka-console-consumer.sh): fetches a topic's partitions
//! directly, or as a member of a consumer group with `--group` (see `group_member`: range
//! assignment, committed offsets, heartbeats, commits periodically and on exit, LeaveGroup),
//! and prints records in Kafka's `DefaultMessageFormatter` layout:
//! `[CreateTime:<ts>\t][Partition:<p>\t][Offset:<o>\t][headers\t][key\t]value`, with
//! Kafka's defaults (`key.separator` tab, `line.separator` newline, `null.literal` `null`).
//! Ends on Ctrl-C/SIGTERM, `--max-messages` or `--timeout-ms` and prints
//! `Processed a total of N messages` on stderr.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::{Buf, Bytes};
use clap::Parser;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder, TimestampType};
use krust_client::{Client, ClientError};

use super::common::{self, ConnectArgs};
use super::get_offsets::list_offsets;
use super::group_member::{
    auto_commit_settings, CommitOutcome, GroupMember, MemberConfig, MemberState,
};
use super::topic_filter::TopicFilter;

const OFFSET_OUT_OF_RANGE: i16 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-console-consumer",
    about = "Consume messages from a topic and print them to standard output.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic to consume on.
    #[arg(long, value_name = "topic")]
    topic: Option<String>,
    /// Regular expression of the topics to read (internal topics excluded).
    #[arg(long, value_name = "Java regex (String)")]
    include: Option<String>,
    /// The partition to consume from (all partitions if not given).
    #[arg(long, value_name = "Integer: partition")]
    partition: Option<i32>,
    /// The offset to start from: a non-negative number, 'earliest' or 'latest' (default).
    #[arg(long, value_name = "consume offset")]
    offset: Option<String>,
    /// Start with the earliest message present rather than the latest.
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// The maximum number of messages to consume before exiting.
    #[arg(long = "max-messages", value_name = "Integer: num_messages")]
    max_messages: Option<u64>,
    /// Exit if no message is available for consumption for this many ms.
    #[arg(long = "timeout-ms", value_name = "Integer: timeout_ms")]
    timeout_ms: Option<u64>,
    /// Formatter properties: print.key, print.offset, print.partition, print.timestamp,
    /// print.headers, print.value, key.separator, line.separator, headers.separator, null.literal.
    #[arg(long = "property", value_name = "prop")]
    property: Vec<String>,
    /// The formatter class (only Kafka's default formatter is available).
    #[arg(long, value_name = "class")]
    formatter: Option<String>,
    /// Consumer config properties (key=value).
    #[arg(long = "consumer-property", value_name = "consumer_prop")]
    consumer_property: Vec<String>,
    /// Consumer config properties file.
    #[arg(long = "consumer.config", value_name = "config file")]
    consumer_config: Option<PathBuf>,
    /// The consumer group id: join the group, read the partitions it assigns from the
    /// committed offsets and commit what was consumed.
    #[arg(long, value_name = "consumer group id")]
    group: Option<String>,
    /// read_committed or read_uncommitted (default).
    #[arg(long = "isolation-level", default_value = "read_uncommitted")]
    isolation_level: String,
    /// Accepted for compatibility; records are printed as raw bytes.
    #[arg(long = "key-deserializer")]
    key_deserializer: Option<String>,
    /// Accepted for compatibility; records are printed as raw bytes.
    #[arg(long = "value-deserializer")]
    value_deserializer: Option<String>,
}

/// Kafka's `DefaultMessageFormatter`.
#[derive(Debug, Clone)]
struct Formatter {
    print_timestamp: bool,
    print_key: bool,
    print_offset: bool,
    print_partition: bool,
    print_headers: bool,
    print_value: bool,
    key_separator: Vec<u8>,
    line_separator: Vec<u8>,
    headers_separator: Vec<u8>,
    null_literal: Vec<u8>,
}

impl Formatter {
    fn from_props(props: &BTreeMap<String, String>) -> Formatter {
        let flag = |k: &str, default: bool| {
            props
                .get(k)
                .map(|v| v.trim().eq_ignore_ascii_case("true"))
                .unwrap_or(default)
        };
        let bytes = |k: &str, default: &str| {
            props
                .get(k)
                .map(|v| unescape(v))
                .unwrap_or_else(|| default.as_bytes().to_vec())
        };
        Formatter {
            print_timestamp: flag("print.timestamp", false),
            print_key: flag("print.key", false),
            print_offset: flag("print.offset", false),
            print_partition: flag("print.partition", false),
            print_headers: flag("print.headers", false),
            print_value: flag("print.value", true),
            key_separator: bytes("key.separator", "\t"),
            line_separator: bytes("line.separator", "\n"),
            headers_separator: bytes("headers.separator", ","),
            null_literal: bytes("null.literal", "null"),
        }
    }

    fn write(&self, out: &mut Vec<u8>, partition: i32, r: &Record) {
        let sep = |out: &mut Vec<u8>, column: bool| {
            if column {
                out.extend_from_slice(&self.key_separator);
            } else {
                out.extend_from_slice(&self.line_separator);
            }
        };
        if self.print_timestamp {
            let kind = match r.timestamp_type {
                TimestampType::Creation => "CreateTime",
                TimestampType::LogAppend => "LogAppendTime",
            };
            out.extend_from_slice(format!("{kind}:{}", r.timestamp).as_bytes());
            sep(
                out,
                self.print_partition
                    || self.print_offset
                    || self.print_headers
                    || self.print_key
                    || self.print_value,
            );
        }
        if self.print_partition {
            out.extend_from_slice(format!("Partition:{partition}").as_bytes());
            sep(
                out,
                self.print_offset || self.print_headers || self.print_key || self.print_value,
            );
        }
        if self.print_offset {
            out.extend_from_slice(format!("Offset:{}", r.offset).as_bytes());
            sep(
                out,
                self.print_headers || self.print_key || self.print_value,
            );
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.extend_from_slice(b"NO_HEADERS");
            } else {
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(&self.headers_separator);
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(v.as_deref().unwrap_or(&self.null_literal));
                }
            }
            sep(out, self.print_key || self.print_value);
        }
        if self.print_key {
            out.extend_from_slice(r.key.as_deref().unwrap_or(&self.null_literal));
            sep(out, self.print_value);
        }
        if self.print_value {
            out.extend_from_slice(r.value.as_deref().unwrap_or(&self.null_literal));
            out.extend_from_slice(&self.line_separator);
        }
    }
}

/// Kafka reads separators from properties files, where `\t` and `\n` are escapes; on the
/// command line a literal backslash sequence is taken the same way.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push(b'\t'),
                Some('n') => out.push(b'\n'),
                Some('r') => out.push(b'\r'),
                Some('\\') => out.push(b'\\'),
                Some(o) => {
                    out.push(b'\\');
                    let mut b = [0u8; 4];
                    out.extend_from_slice(o.encode_utf8(&mut b).as_bytes());
                }
                None => out.push(b'\\'),
            }
        } else {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
    }
    out
}

/// Where to start a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    Earliest,
    Latest,
    At(i64),
}

/// What to read: one topic, or every non-internal topic matching an include list.
pub(super) enum Selection {
    Topic(String),
    Include(TopicFilter),
}

fn check_args(args: &Args) -> anyhow::Result<(Selection, Start)> {
    if args.group.is_some() && args.partition.is_some() {
        bail!("Options group and partition cannot be specified together.");
    }
    let selection = match (&args.topic, &args.include) {
        (Some(t), None) => Selection::Topic(t.clone()),
        (None, Some(i)) => Selection::Include(TopicFilter::new(i)?),
        _ => bail!("Exactly one of --include/--topic is required."),
    };
    if args.partition.is_some() && args.topic.is_none() {
        bail!("The topic is required when partition is specified.");
    }
    if args.offset.is_some() && args.partition.is_none() {
        bail!("The partition is required when offset is specified.");
    }
    if args.offset.is_some() && args.from_beginning {
        bail!("Options from-beginning and offset cannot be specified together.");
    }
    if let Some(f) = &args.formatter {
        if !f.ends_with("DefaultMessageFormatter") {
            bail!(
                "Formatter {f} is not supported by krust: only the default formatter is available"
            );
        }
    }
    let start = match args.offset.as_deref() {
        Some("earliest") => Start::Earliest,
        Some("latest") => Start::Latest,
        Some(n) => match n.parse::<i64>() {
            Ok(v) if v >= 0 => Start::At(v),
            _ => bail!("The provided offset value '{n}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long."),
        },
        None if args.from_beginning => Start::Earliest,
        None => Start::Latest,
    };
    Ok((selection, start))
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-console-consumer", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (selection, start) = match check_args(&args) {
        Ok(v) => v,
        Err(e) => return common::fail("Error: ", &e),
    };
    let grouped = match consumer_props(&args).and_then(|p| {
        if let Some(reset) = p.get("auto.offset.reset") {
            if args.from_beginning && reset.trim() != "earliest" {
                bail!("Can't simultaneously specify --from-beginning and 'auto.offset.reset={reset}', exiting.");
            }
        }
        group_id(&args, &p)
    }) {
        Ok(g) => g.is_some(),
        Err(e) => return common::fail("Error: ", &e),
    };
    let mut count = 0u64;
    let stop = AtomicBool::new(false);
    let result = common::block_on(async {
        let consume = consume(&args, &selection, start, &mut count, &stop);
        tokio::select! {
            r = consume => r,
            () = async {
                shutdown_signal().await;
                // A group member commits and leaves the group before it ends; give it time.
                stop.store(true, Ordering::SeqCst);
                if grouped {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            } => Ok(()),
        }
    })
    .and_then(|r| r);
    common::flush_stdout();
    match result {
        Ok(()) => {
            eprintln!("Processed a total of {count} messages");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = common::fail(
                "ERROR Error processing message, terminating consumer process: ",
                &e,
            );
            eprintln!("Processed a total of {count} messages");
            code
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub(super) struct PartitionState {
    pub(super) leader: i32,
    pub(super) next: i64,
}

/// A topic-partition.
type Tp = (String, i32);

/// The partitions to read, with their leaders, and the topic ids (for Fetch v13+).
async fn assignment(
    client: &mut Client,
    selection: &Selection,
    partition: Option<i32>,
) -> anyhow::Result<(BTreeMap<Tp, i32>, HashMap<String, uuid::Uuid>)> {
    let mut leaders = BTreeMap::new();
    let mut ids = HashMap::new();
    match selection {
        Selection::Topic(topic) => {
            let (id, parts) = common::topic_partitions(client, topic, false).await?;
            ids.insert(topic.clone(), id);
            for p in parts {
                if partition.is_none_or(|want| want == p.partition) {
                    leaders.insert((topic.clone(), p.partition), p.leader);
                }
            }
            if let Some(p) = partition {
                if leaders.is_empty() {
                    bail!("Partition {topic}-{p} does not exist");
                }
            }
        }
        Selection::Include(filter) => {
            let md = client.metadata(None).await?;
            for t in &md.topics {
                let Some(name) = t.name.as_ref().map(|n| n.to_string()) else {
                    continue;
                };
                let internal = t.is_internal || common::is_internal_topic(&name);
                if t.error_code != 0 || internal || !filter.matches(&name) {
                    continue;
                }
                ids.insert(name.clone(), t.topic_id);
                for p in &t.partitions {
                    leaders.insert((name.clone(), p.partition_index), p.leader_id.0);
                }
            }
        }
    }
    Ok((leaders, ids))
}

/// The consumer properties: `--consumer.config` overlaid with `--consumer-property`.
fn consumer_props(args: &Args) -> anyhow::Result<BTreeMap<String, String>> {
    let mut props = match &args.consumer_config {
        Some(p) => common::load_properties(p)?,
        None => BTreeMap::new(),
    };
    props.extend(common::parse_key_values(&args.consumer_property)?);
    Ok(props)
}

/// The group id from `--group` or the `group.id` consumer property (they must agree).
fn group_id(args: &Args, props: &BTreeMap<String, String>) -> anyhow::Result<Option<String>> {
    match (&args.group, props.get("group.id")) {
        (Some(a), Some(b)) if a != b => bail!(
            "The group ids provided in different places (directly using '--group', via '--consumer-property', or via '--consumer.config') do not match. Detected group ids: '{a}', '{b}'"
        ),
        (Some(a), _) => Ok(Some(a.clone())),
        (None, Some(b)) if !b.is_empty() => Ok(Some(b.clone())),
        _ => Ok(None),
    }
}

async fn consume(
    args: &Args,
    selection: &Selection,
    start: Start,
    count: &mut u64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let props = consumer_props(args)?;
    let formatter = Formatter::from_props(&common::parse_key_values(&args.property)?);
    let isolation: i8 = match args.isolation_level.as_str() {
        "read_uncommitted" => 0,
        "read_committed" => 1,
        other => bail!("Invalid value {other} for configuration isolation.level: String must be one of: read_committed, read_uncommitted"),
    };
    // Consumer properties override --command-config.
    let config =
        common::client_config_over(args.connect.client_config("console-consumer")?, &props)?;
    let mut client = Client::connect(&args.connect.bootstrap_server, config).await?;
    if let Some(group) = group_id(args, &props)? {
        let ctx = FetchCtx {
            topic_ids: HashMap::new(),
            isolation,
            formatter: &formatter,
            max: args.max_messages.unwrap_or(u64::MAX),
        };
        return consume_group(
            &mut client,
            args,
            selection,
            &group,
            &props,
            ctx,
            count,
            stop,
        )
        .await;
    }
    let (leaders, topic_ids) = assignment(&mut client, selection, args.partition).await?;
    let mut state: BTreeMap<Tp, PartitionState> = leaders
        .into_iter()
        .map(|(tp, leader)| (tp, PartitionState { leader, next: -1 }))
        .collect();
    resolve_offsets(&mut client, &mut state, start).await?;
    let ctx = FetchCtx {
        topic_ids,
        isolation,
        formatter: &formatter,
        max: args.max_messages.unwrap_or(u64::MAX),
    };

    let idle_timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last_message = Instant::now();
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    if ctx.max == 0 {
        return Ok(());
    }
    loop {
        let wait = match idle_timeout {
            Some(t) => {
                let left = t.saturating_sub(last_message.elapsed());
                if left.is_zero() {
                    return Ok(());
                }
                left.min(Duration::from_millis(500))
            }
            None => Duration::from_millis(500),
        };
        if state.is_empty() {
            // Nothing matched (yet): wait for the idle timeout or a signal.
            tokio::time::sleep(wait).await;
            continue;
        }
        let round = fetch_round(
            &mut client,
            &mut state,
            &ctx,
            wait,
            &mut out,
            count,
            &mut last_message,
        )
        .await?;
        if round.done {
            return Ok(());
        }
        if !round.reset.is_empty() {
            // auto.offset.reset: earliest with --from-beginning, else latest (Kafka's default).
            let policy = if args.from_beginning || start == Start::Earliest {
                Start::Earliest
            } else {
                Start::Latest
            };
            reset_partitions(&mut client, &mut state, &round.reset, policy).await?;
        }
        if round.need_metadata {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok((leaders, _)) = assignment(&mut client, selection, args.partition).await {
                for (tp, leader) in leaders {
                    if let Some(s) = state.get_mut(&tp) {
                        s.leader = leader;
                    }
                }
            }
        }
    }
}

/// Moves `partitions` to the `policy` offset.
pub(super) async fn reset_partitions(
    client: &mut Client,
    state: &mut BTreeMap<Tp, PartitionState>,
    partitions: &[Tp],
    policy: Start,
) -> anyhow::Result<()> {
    let mut sub: BTreeMap<Tp, PartitionState> = BTreeMap::new();
    for tp in partitions {
        if let Some(s) = state.get(tp) {
            sub.insert(
                tp.clone(),
                PartitionState {
                    leader: s.leader,
                    next: -1,
                },
            );
        }
    }
    resolve_offsets(client, &mut sub, policy).await?;
    for (tp, s) in sub {
        if let Some(st) = state.get_mut(&tp) {
            st.next = s.next;
        }
    }
    Ok(())
}

/// What one fetch round needs from its caller.
#[derive(Default)]
struct Round {
    need_metadata: bool,
    reset: Vec<Tp>,
    /// `--max-messages` reached.
    done: bool,
}

/// What every fetch round shares.
struct FetchCtx<'a> {
    topic_ids: HashMap<String, uuid::Uuid>,
    isolation: i8,
    formatter: &'a Formatter,
    max: u64,
}

/// One Fetch request per partition leader for the partitions of `state` that have a leader
/// and a position (`partition_max_bytes` each, 50 MiB per response), and whether some
/// partition has no leader.
pub(super) fn fetch_requests(
    state: &BTreeMap<Tp, PartitionState>,
    topic_ids: &HashMap<String, uuid::Uuid>,
    wait: Duration,
    isolation: i8,
    partition_max_bytes: i32,
) -> (Vec<(i32, FetchRequest)>, bool) {
    let mut leaderless = false;
    let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<FetchPartition>>> = BTreeMap::new();
    for ((t, p), s) in state {
        if s.leader < 0 {
            leaderless = true;
        } else if s.next >= 0 {
            by_leader
                .entry(s.leader)
                .or_default()
                .entry(t.as_str())
                .or_default()
                .push(
                    FetchPartition::default()
                        .with_partition(*p)
                        .with_fetch_offset(s.next)
                        .with_partition_max_bytes(partition_max_bytes),
                );
        }
    }
    let requests = by_leader
        .into_iter()
        .map(|(leader, topics)| {
            let topics = topics
                .into_iter()
                .map(|(t, parts)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_topic_id(topic_ids.get(t).copied().unwrap_or_default())
                        .with_partitions(parts)
                })
                .collect();
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(wait.as_millis() as i32)
                .with_min_bytes(1)
                .with_max_bytes(52_428_800)
                .with_isolation_level(isolation)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(topics);
            (leader, req)
        })
        .collect();
    (requests, leaderless)
}

/// What a fetch response says of one partition, for its reader.
pub(super) enum Answer {
    Records(Bytes),
    /// OFFSET_OUT_OF_RANGE: the position needs resetting.
    OutOfRange,
    /// A retriable error (a moved leader...): look the leaders up again.
    Retriable,
}

/// Whether a reader wants the rest of a fetch response.
#[derive(PartialEq, Eq)]
pub(super) enum Flow {
    Go,
    Stop,
}

/// How [`fetch_from`] ended.
#[derive(PartialEq, Eq)]
pub(super) enum Fetched {
    /// Every partition was handed over.
    Done,
    /// The reader stopped ([`Flow::Stop`]).
    Stopped,
    /// The leader could not be reached (a retriable error): look the leaders up again.
    Unreachable,
}

/// Sends `req` to `leader` and hands each answered partition of the response to `each`, by
/// topic name (Fetch v13+ answers by topic id, older versions by name); partitions with
/// neither records nor an error are left out. A non-retriable error ends it.
pub(super) async fn fetch_from(
    client: &mut Client,
    leader: i32,
    req: &FetchRequest,
    topic_ids: &HashMap<String, uuid::Uuid>,
    mut each: impl FnMut(&str, i32, Answer) -> anyhow::Result<Flow>,
) -> anyhow::Result<Fetched> {
    let resp = match client.send_to(leader, req).await {
        Ok(r) => r,
        Err(e) if e.is_retriable() => {
            tracing::debug!("fetch from {leader}: {e}");
            return Ok(Fetched::Unreachable);
        }
        Err(e) => return Err(e.into()),
    };
    ClientError::check(resp.error_code, None)?;
    for t in resp.responses {
        let name = if t.topic.is_empty() {
            match topic_ids.iter().find(|(_, id)| **id == t.topic_id) {
                Some((n, _)) => n.clone(),
                None => continue,
            }
        } else {
            t.topic.to_string()
        };
        for pd in t.partitions {
            let p = pd.partition_index;
            let answer = if pd.error_code == OFFSET_OUT_OF_RANGE {
                Answer::OutOfRange
            } else if let Err(e) = ClientError::check(pd.error_code, None) {
                if !e.is_retriable() {
                    return Err(anyhow::Error::new(e).context(format!("{name}-{p}")));
                }
                Answer::Retriable
            } else if let Some(records) = pd.records {
                Answer::Records(records)
            } else {
                continue;
            };
            if each(&name, p, answer)? == Flow::Stop {
                return Ok(Fetched::Stopped);
            }
        }
    }
    Ok(Fetched::Done)
}

/// One Fetch to each partition leader; prints the records and advances the positions. When
/// `--max-messages` is reached mid-batch, the position is just after the last printed record.
async fn fetch_round(
    client: &mut Client,
    state: &mut BTreeMap<Tp, PartitionState>,
    ctx: &FetchCtx<'_>,
    wait: Duration,
    out: &mut Vec<u8>,
    count: &mut u64,
    last_message: &mut Instant,
) -> anyhow::Result<Round> {
    let stdout = std::io::stdout();
    let mut round = Round::default();
    let (requests, leaderless) =
        fetch_requests(state, &ctx.topic_ids, wait, ctx.isolation, 1_048_576);
    round.need_metadata = leaderless;
    for (leader, req) in requests {
        let fetched = fetch_from(client, leader, &req, &ctx.topic_ids, |name, p, answer| {
            let tp = (name.to_string(), p);
            let Some(s) = state.get_mut(&tp) else {
                return Ok(Flow::Go);
            };
            match answer {
                Answer::OutOfRange => round.reset.push(tp),
                Answer::Retriable => round.need_metadata = true,
                Answer::Records(records) => {
                    for r in decode_complete_batches(records, &mut s.next)? {
                        ctx.formatter.write(out, p, &r);
                        *count += 1;
                        *last_message = Instant::now();
                        if *count >= ctx.max {
                            s.next = r.offset + 1;
                            return Ok(Flow::Stop);
                        }
                    }
                }
            }
            Ok(Flow::Go)
        })
        .await?;
        write_out(&stdout, out)?;
        match fetched {
            Fetched::Done => {}
            Fetched::Stopped => {
                round.done = true;
                return Ok(round);
            }
            Fetched::Unreachable => round.need_metadata = true,
        }
    }
    Ok(round)
}

/// The topics a group member subscribes to: the topic, or the non-internal topics matching
/// `--include` now.
pub(super) async fn subscribed_topics(
    client: &mut Client,
    selection: &Selection,
) -> anyhow::Result<Vec<String>> {
    match selection {
        Selection::Topic(t) => Ok(vec![t.clone()]),
        Selection::Include(filter) => {
            let md = client.metadata(None).await?;
            let mut topics: Vec<String> = md
                .topics
                .iter()
                .filter(|t| t.error_code == 0 && !t.is_internal)
                .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
                .filter(|n| !common::is_internal_topic(n) && filter.matches(n))
                .collect();
            topics.sort();
            Ok(topics)
        }
    }
}

/// The positions to commit: every assigned partition with a known position.
pub(super) fn positions(state: &BTreeMap<Tp, PartitionState>) -> BTreeMap<Tp, i64> {
    state
        .iter()
        .filter(|(_, s)| s.next >= 0)
        .map(|(tp, s)| (tp.clone(), s.next))
        .collect()
}

/// Consumes as a member of `group`: join, read the assigned partitions from the committed
/// offsets (else `auto.offset.reset`), heartbeat, commit every `auto.commit.interval.ms`,
/// rejoin on a rebalance; on the end (max messages, idle timeout, signal) commit and leave.
#[allow(clippy::too_many_arguments)]
async fn consume_group(
    client: &mut Client,
    args: &Args,
    selection: &Selection,
    group: &str,
    props: &BTreeMap<String, String>,
    mut ctx: FetchCtx<'_>,
    count: &mut u64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let config = MemberConfig::from_props(group, props)?;
    let heartbeat_interval = config.heartbeat_interval;
    let (auto_commit, commit_interval) = auto_commit_settings(props)?;
    let policy = if args.from_beginning {
        Some(Start::Earliest)
    } else {
        match props.get("auto.offset.reset").map(|s| s.trim()) {
            None | Some("latest") => Some(Start::Latest),
            Some("earliest") => Some(Start::Earliest),
            Some("none") => None,
            Some(other) => bail!("Invalid value {other} for configuration auto.offset.reset: Invalid value `{other}` for configuration auto.offset.reset. The value must be either 'earliest', 'latest', 'none' or of the format 'by_duration:<PnDTnHnMn.nS.>'."),
        }
    };
    let idle_timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last_message = Instant::now();
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut member = GroupMember::new(config);
    let mut state: BTreeMap<Tp, PartitionState> = BTreeMap::new();
    if ctx.max == 0 {
        return Ok(());
    }
    let stopped = || stop.load(Ordering::SeqCst);
    'outer: loop {
        if stopped() {
            break;
        }
        let topics = subscribed_topics(client, selection).await?;
        let joined = tokio::select! {
            a = member.join(client, &topics) => Some(a?),
            () = wait_for_flag(stop) => None,
        };
        let Some(assigned) = joined else {
            break;
        };
        tracing::debug!(
            "joined group {group} as {} (generation {}): {assigned:?}",
            member.member_id(),
            member.generation()
        );
        state.clear();
        ctx.topic_ids.clear();
        for (topic, parts) in &assigned {
            let (id, leaders) = common::topic_partitions(client, topic, false).await?;
            ctx.topic_ids.insert(topic.clone(), id);
            for p in parts {
                let leader = leaders
                    .iter()
                    .find(|l| l.partition == *p)
                    .map(|l| l.leader)
                    .unwrap_or(-1);
                state.insert((topic.clone(), *p), PartitionState { leader, next: -1 });
            }
        }
        let committed = member.committed(client, &assigned).await?;
        let mut missing: Vec<Tp> = Vec::new();
        for (tp, s) in state.iter_mut() {
            match committed.get(tp).copied().flatten() {
                Some(o) => s.next = o,
                None => missing.push(tp.clone()),
            }
        }
        if !missing.is_empty() {
            let Some(policy) = policy else {
                let list: Vec<String> = missing.iter().map(|(t, p)| format!("{t}-{p}")).collect();
                bail!(
                    "Undefined offset with no reset policy for partitions: [{}]",
                    list.join(", ")
                );
            };
            reset_partitions(client, &mut state, &missing, policy).await?;
        }
        let mut last_commit = Instant::now();
        loop {
            if stopped() {
                break 'outer;
            }
            if member.heartbeat_due() {
                member.heartbeat(client).await?;
            }
            if member.state() != MemberState::Stable {
                if auto_commit {
                    // Commit before rejoining, as Kafka's consumer does; a refusal only means
                    // those records may be read again.
                    let _ = member.commit(client, &positions(&state)).await?;
                }
                continue 'outer;
            }
            if auto_commit && last_commit.elapsed() >= commit_interval {
                last_commit = Instant::now();
                if let CommitOutcome::MustRejoin = member.commit(client, &positions(&state)).await?
                {
                    continue 'outer;
                }
            }
            let mut wait = Duration::from_millis(500).min(heartbeat_interval);
            if let Some(t) = idle_timeout {
                let left = t.saturating_sub(last_message.elapsed());
                if left.is_zero() {
                    break 'outer;
                }
                wait = wait.min(left);
            }
            if state.is_empty() {
                tokio::time::sleep(wait).await;
                continue;
            }
            let round = fetch_round(
                client,
                &mut state,
                &ctx,
                wait,
                &mut out,
                count,
                &mut last_message,
            )
            .await?;
            if round.done {
                break 'outer;
            }
            if !round.reset.is_empty() {
                let Some(policy) = policy else {
                    bail!(
                        "Offsets out of range with no configured reset policy for partitions: {:?}",
                        round.reset
                    );
                };
                reset_partitions(client, &mut state, &round.reset, policy).await?;
            }
            if round.need_metadata {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let topics: BTreeSet<String> = state.keys().map(|(t, _)| t.clone()).collect();
                for t in topics {
                    if let Ok((_, leaders)) = common::topic_partitions(client, &t, false).await {
                        for l in leaders {
                            if let Some(s) = state.get_mut(&(t.clone(), l.partition)) {
                                s.leader = l.leader;
                            }
                        }
                    }
                }
            }
        }
    }
    if auto_commit && member.state() == MemberState::Stable {
        if let Err(e) = member.commit(client, &positions(&state)).await {
            tracing::warn!("committing offsets on exit: {e:#}");
        }
    }
    member.leave(client).await;
    Ok(())
}

/// Resolves once `flag` is set (polled every 100 ms).
async fn wait_for_flag(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_out(stdout: &std::io::Stdout, out: &mut Vec<u8>) -> anyhow::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let mut lock = stdout.lock();
    let r = lock.write_all(out).and_then(|()| lock.flush());
    out.clear();
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            bail!("standard output was closed")
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets each partition's start offset from ListOffsets (`At` is used as given).
async fn resolve_offsets(
    client: &mut Client,
    state: &mut BTreeMap<Tp, PartitionState>,
    start: Start,
) -> anyhow::Result<()> {
    let time = match start {
        Start::At(o) => {
            for s in state.values_mut() {
                s.next = o;
            }
            return Ok(());
        }
        Start::Earliest => -2,
        Start::Latest => -1,
    };
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for ((t, p), s) in state.iter() {
        by_leader
            .entry(s.leader)
            .or_default()
            .entry(t.clone())
            .or_default()
            .push(*p);
    }
    let deadline = Instant::now() + client.config().request_timeout;
    let mut results: HashMap<Tp, i64> = HashMap::new();
    for (leader, topics) in by_leader {
        if leader < 0 {
            let (t, ps) = topics
                .iter()
                .next()
                .map(|(t, ps)| (t.clone(), ps.clone()))
                .unwrap_or_default();
            bail!(
                "{t}-{} has no leader",
                ps.first().copied().unwrap_or_default()
            );
        }
        loop {
            let r = list_offsets(client, leader, &topics, time).await?;
            let mut retry = false;
            for ((t, p), res) in r {
                match res {
                    Ok(o) => {
                        results.insert((t, p), o);
                    }
                    Err(e) if e.is_retriable() && Instant::now() < deadline => retry = true,
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("{t}-{p}"))),
                }
            }
            if !retry {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (tp, s) in state.iter_mut() {
        s.next = results.get(tp).copied().unwrap_or(0);
    }
    Ok(())
}

/// Decodes the complete record batches in a fetch response's records (a trailing partial
/// batch is ignored), returning the records at or after `*next` and advancing `*next` past
/// every complete batch. Control records are skipped.
fn decode_complete_batches(mut data: Bytes, next: &mut i64) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    // Batch header: baseOffset(8) batchLength(4) partitionLeaderEpoch(4) magic(1) crc(4)
    // attributes(2) lastOffsetDelta(4) ...
    while data.len() >= 12 {
        let base = i64::from_be_bytes(data[0..8].try_into().unwrap_or([0; 8]));
        let len = i32::from_be_bytes(data[8..12].try_into().unwrap_or([0; 4]));
        let Ok(len) = usize::try_from(len) else {
            bail!("invalid record batch length {len}");
        };
        let total = 12 + len;
        if data.len() < total {
            break;
        }
        if len < 49 {
            bail!("record batch too short ({len} bytes)");
        }
        let mut batch = data.split_to(total);
        let last_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap_or([0; 4]));
        let magic = batch[16];
        if magic != 2 {
            bail!("record batch with magic {magic} is not supported");
        }
        let set = RecordBatchDecoder::decode(&mut batch)
            .map_err(|e| anyhow::anyhow!("cannot decode a record batch: {e}"))?;
        for r in set.records {
            if r.control || r.offset < *next {
                continue;
            }
            out.push(r);
        }
        let after = base.saturating_add(i64::from(last_delta)).saturating_add(1);
        if after > *next {
            *next = after;
        }
        let _ = batch.remaining();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, key: Option<&str>, value: &str) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 1000,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
        }
    }

    #[test]
    fn formats_like_kafka_default_formatter() {
        let mut props = BTreeMap::new();
        for k in [
            "print.key",
            "print.offset",
            "print.partition",
            "print.timestamp",
        ] {
            props.insert(k.to_string(), "true".to_string());
        }
        let f = Formatter::from_props(&props);
        let mut out = Vec::new();
        f.write(&mut out, 2, &record(5, None, "v"));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "CreateTime:1000\tPartition:2\tOffset:5\tnull\tv\n"
        );
        let f = Formatter::from_props(&BTreeMap::new());
        let mut out = Vec::new();
        f.write(&mut out, 0, &record(0, Some("k"), "only"));
        assert_eq!(String::from_utf8_lossy(&out), "only\n");
    }

    #[test]
    fn skips_partial_batches_and_records_before_the_fetch_offset() {
        use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
        let recs: Vec<Record> = (10..13).map(|o| record(o, None, "x")).collect();
        let mut buf = bytes::BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, recs.iter(), &opts).expect("encode");
        let one = buf.len();
        RecordBatchEncoder::encode(&mut buf, recs.iter(), &opts).expect("encode");
        let data = buf.freeze().slice(..one + 20);
        let mut next = 11;
        let got = decode_complete_batches(data, &mut next).expect("decode");
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![11, 12]
        );
        assert_eq!(next, 13);
    }
}
