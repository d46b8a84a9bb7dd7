//! `krust log-dirs` (kafka-log-dirs.sh): asks brokers for their log directories with
//! DescribeLogDirs and prints, as Kafka's tool does, `Querying brokers for log directories
//! information`, `Received log directory information from brokers 1,2,3`, then one line of
//! JSON: `{"brokers":[{"broker":1,"logDirs":[{"partitions":[{"partition":"t-0","size":0,
//! "offsetLag":0,"isFuture":false}],"error":null,"logDir":"/data"}]}],"version":1}`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeLogDirsRequest};
use krust_client::ClientError;
use krust_protocol::ErrorCode;

use super::common::{self, ConnectArgs};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-log-dirs",
    about = "This tool helps to query log directory usage on the specified brokers.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// REQUIRED: Describe the specified log directories on the specified brokers.
    #[arg(long)]
    describe: bool,
    /// The list of topics to be queried in the form "topic1,topic2,topic3". All topics
    /// will be queried if no topic list is specified.
    #[arg(long = "topic-list", value_name = "Topic list", default_value = "")]
    topic_list: String,
    /// The list of brokers to be queried in the form "0,1,2". All brokers in the cluster
    /// will be queried if no broker list is specified.
    #[arg(long = "broker-list", value_name = "Broker list", default_value = "")]
    broker_list: String,
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-log-dirs", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if !args.describe {
        eprintln!("Missing required argument \"[describe]\"");
        return ExitCode::FAILURE;
    }
    common::exit_code(
        common::block_on(execute(&args))
            .and_then(|r| r)
            .map(|()| true),
        "",
    )
}

/// A JSON string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The Java exception class Kafka's tool prints for a log directory's error.
fn error_class(code: i16) -> String {
    let name = match code {
        56 => "KafkaStorageException",
        _ => "UnknownServerException",
    };
    format!("org.apache.kafka.common.errors.{name}")
}

async fn execute(args: &Args) -> anyhow::Result<()> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let topics: BTreeSet<String> = split(&args.topic_list).into_iter().collect();
    let mut wanted = BTreeSet::new();
    for b in split(&args.broker_list) {
        match b.parse::<i32>() {
            Ok(id) => {
                wanted.insert(id);
            }
            Err(_) => bail!("Invalid broker id '{b}' in --broker-list"),
        }
    }
    let mut client = args.connect.connect("log-dirs-tool").await?;
    let cluster = client.send_any(&DescribeClusterRequest::default()).await?;
    ClientError::check(cluster.error_code, cluster.error_message.as_ref())?;
    let in_cluster: BTreeSet<i32> = cluster.brokers.iter().map(|b| b.broker_id.0).collect();
    let missing: Vec<String> = wanted.difference(&in_cluster).map(i32::to_string).collect();
    if !missing.is_empty() {
        bail!(
            "ERROR: The given brokers do not exist from --broker-list: {}. Current existent brokers: {}",
            missing.join(","),
            in_cluster.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
        );
    }
    let brokers = if wanted.is_empty() {
        in_cluster
    } else {
        wanted
    };
    outln!("Querying brokers for log directories information");
    let mut described = Vec::new();
    for &id in &brokers {
        let conn = client.connection_to(id).await?;
        let resp = conn
            .send(&DescribeLogDirsRequest::default().with_topics(None))
            .await?;
        if resp.error_code != ErrorCode::None.code() {
            ClientError::check(resp.error_code, None)?;
        }
        described.push((id, resp));
    }
    outln!(
        "Received log directory information from brokers {}",
        brokers
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let brokers_json: Vec<String> = described
        .iter()
        .map(|(id, resp)| {
            let dirs: Vec<String> = resp
                .results
                .iter()
                .map(|d| {
                    let mut parts: Vec<(String, i32, i64, i64, bool)> = d
                        .topics
                        .iter()
                        .filter(|t| topics.is_empty() || topics.contains(t.name.as_str()))
                        .flat_map(|t| {
                            t.partitions.iter().map(|p| {
                                (
                                    t.name.to_string(),
                                    p.partition_index,
                                    p.partition_size,
                                    p.offset_lag,
                                    p.is_future_key,
                                )
                            })
                        })
                        .collect();
                    parts.sort();
                    let parts: Vec<String> = parts
                        .iter()
                        .map(|(t, p, size, lag, future)| {
                            format!(
                                "{{\"partition\":{},\"size\":{size},\"offsetLag\":{lag},\"isFuture\":{future}}}",
                                quoted(&format!("{t}-{p}"))
                            )
                        })
                        .collect();
                    let error = if d.error_code == 0 {
                        "null".to_string()
                    } else {
                        quoted(&error_class(d.error_code))
                    };
                    format!(
                        "{{\"partitions\":[{}],\"error\":{error},\"logDir\":{}}}",
                        parts.join(","),
                        quoted(&d.log_dir)
                    )
                })
                .collect();
            format!("{{\"broker\":{id},\"logDirs\":[{}]}}", dirs.join(","))
        })
        .collect();
    outln!("{{\"brokers\":[{}],\"version\":1}}", brokers_json.join(","));
    Ok(())
}
