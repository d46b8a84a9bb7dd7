//! `krust get-offsets` (kafka-get-offsets.sh, Kafka's `GetOffsetShell`): one `topic:partition:offset`
//! line per partition, ordered as Kafka orders them (by the string `topic-partition`).
//! Partitions that fail are reported on stderr as
//! `Skip getting offsets for topic-partition t-p due to error: <message>`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use krust_client::{Client, ClientError};

use super::common::{self, ConnectArgs};
use super::topic_filter::TopicFilter;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-get-offsets",
    about = "An interactive shell for getting topic-partition offsets.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic(s) to get the offsets for, a regular expression (all topics if not given).
    #[arg(long, value_name = "topic")]
    topic: Option<String>,
    /// Comma-separated list of partition ids (all partitions if not given).
    #[arg(long, value_name = "partition ids")]
    partitions: Option<String>,
    /// Comma-separated `topic:partition` list (`topic`, `topic:p`, `topic:a-b`).
    #[arg(long = "topic-partitions", value_name = "topic1:1,topic2:0-3")]
    topic_partitions: Option<String>,
    /// Timestamp of the offsets: -1 or latest, -2 or earliest, -3 or max-timestamp, or ms.
    #[arg(
        long,
        default_value = "-1",
        allow_hyphen_values = true,
        value_name = "timestamp"
    )]
    time: String,
    /// Exclude internal topics.
    #[arg(long = "exclude-internal-topics")]
    exclude_internal_topics: bool,
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-get-offsets", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match common::block_on(execute(&args)).and_then(|r| r) {
        Ok(()) => {
            common::flush_stdout();
            ExitCode::SUCCESS
        }
        Err(e) => common::fail("Error occurred: ", &e),
    }
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    Ok(match s {
        "latest" => -1,
        "earliest" => -2,
        "max-timestamp" => -3,
        "earliest-local" => -4,
        "latest-tiered" => -5,
        _ => {
            let t: i64 = s.parse().with_context(|| {
                format!("Malformed time argument {s}. Please use -1 or latest / -2 or earliest / -3 or max-timestamp, or a specified long format timestamp")
            })?;
            if t < -5 {
                bail!("Malformed time argument {s}. Please use -1 or latest / -2 or earliest / -3 or max-timestamp, or a specified long format timestamp");
            }
            t
        }
    })
}

/// A filter on partition ids: any, or a set of single ids and ranges.
#[derive(Debug, Clone)]
enum PartitionFilter {
    Any,
    Ids(Vec<(i32, i32)>),
}

impl PartitionFilter {
    fn parse(s: &str) -> anyhow::Result<PartitionFilter> {
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let range = match part.split_once('-') {
                Some((a, "")) => (parse_id(a)?, i32::MAX),
                Some((a, b)) => (parse_id(a)?, parse_id(b)?.saturating_sub(1)),
                None => {
                    let id = parse_id(part)?;
                    (id, id)
                }
            };
            ranges.push(range);
        }
        Ok(PartitionFilter::Ids(ranges))
    }

    fn allows(&self, p: i32) -> bool {
        match self {
            PartitionFilter::Any => true,
            PartitionFilter::Ids(r) => r.iter().any(|(a, b)| (*a..=*b).contains(&p)),
        }
    }
}

fn parse_id(s: &str) -> anyhow::Result<i32> {
    s.trim()
        .parse()
        .with_context(|| format!("Invalid partition '{s}'"))
}

async fn execute(args: &Args) -> anyhow::Result<()> {
    let time = parse_time(&args.time)?;
    if args.topic_partitions.is_some() && (args.topic.is_some() || args.partitions.is_some()) {
        bail!("--topic-partitions cannot be used with --topic or --partitions");
    }
    // (topic include list or None for all, partition filter)
    let mut filters: Vec<(Option<TopicFilter>, PartitionFilter)> = Vec::new();
    if let Some(tp) = &args.topic_partitions {
        for item in tp.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once(':') {
                Some((t, p)) => {
                    filters.push((Some(TopicFilter::new(t)?), PartitionFilter::parse(p)?))
                }
                None => filters.push((Some(TopicFilter::new(item)?), PartitionFilter::Any)),
            }
        }
    } else {
        let pf = match &args.partitions {
            Some(p) => PartitionFilter::parse(p)?,
            None => PartitionFilter::Any,
        };
        let topic = args.topic.as_deref().map(TopicFilter::new).transpose()?;
        filters.push((topic, pf));
    }

    let mut client = args.connect.connect("krust-get-offsets").await?;
    let md = client.metadata(None).await?;
    // leader -> topic -> partitions
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    let mut selected = 0usize;
    let mut no_leader = Vec::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.as_str()) else {
            continue;
        };
        if t.error_code != 0 {
            continue;
        }
        let internal = t.is_internal || common::is_internal_topic(name);
        if args.exclude_internal_topics && internal {
            continue;
        }
        for p in &t.partitions {
            let wanted = filters.iter().any(|(topic, pf)| {
                topic.as_ref().is_none_or(|f| f.matches(name)) && pf.allows(p.partition_index)
            });
            if !wanted {
                continue;
            }
            selected += 1;
            if p.leader_id.0 < 0 {
                no_leader.push(format!("{name}-{}", p.partition_index));
                continue;
            }
            by_leader
                .entry(p.leader_id.0)
                .or_default()
                .entry(name.to_string())
                .or_default()
                .push(p.partition_index);
        }
    }
    if selected == 0 {
        bail!("Could not match any topic-partitions with the specified filters");
    }
    for tp in no_leader {
        eprintln!("Skip getting offsets for topic-partition {tp} due to error: There is no leader for this topic-partition as we are in the middle of a leadership election.");
    }
    // "topic-partition" -> line, sorted as Kafka sorts TopicPartition strings.
    let mut lines: BTreeMap<String, String> = BTreeMap::new();
    for (leader, topics) in by_leader {
        let results = list_offsets(&mut client, leader, &topics, time).await;
        match results {
            Ok(results) => {
                for ((topic, partition), result) in results {
                    let key = format!("{topic}-{partition}");
                    match result {
                        Ok(offset) if offset >= 0 => {
                            lines.insert(key, format!("{topic}:{partition}:{offset}"));
                        }
                        Ok(_) => {}
                        Err(e) => eprintln!(
                            "Skip getting offsets for topic-partition {key} due to error: {e}"
                        ),
                    }
                }
            }
            Err(e) => {
                for (topic, parts) in &topics {
                    for p in parts {
                        eprintln!(
                            "Skip getting offsets for topic-partition {topic}-{p} due to error: {e}"
                        );
                    }
                }
            }
        }
    }
    for line in lines.values() {
        outln!("{line}");
    }
    Ok(())
}

type OffsetResults = HashMap<(String, i32), Result<i64, ClientError>>;

/// ListOffsets at `time` for `topics` on broker `leader`.
pub async fn list_offsets(
    client: &mut Client,
    leader: i32,
    topics: &BTreeMap<String, Vec<i32>>,
    time: i64,
) -> Result<OffsetResults, ClientError> {
    let timeout_ms = client
        .config()
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_timeout_ms(timeout_ms)
        .with_topics(
            topics
                .iter()
                .map(|(t, parts)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.clone())))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(time)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp = client.send_to(leader, &req).await?;
    let mut out = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            let r = ClientError::check(p.error_code, None).map(|()| p.offset);
            out.insert((t.name.to_string(), p.partition_index), r);
        }
    }
    Ok(out)
}
