//! `krust delete-records` (kafka-delete-records.sh): deletes records before the offsets in
//! Kafka's JSON file `{"partitions":[{"topic":"t","partition":0,"offset":3}],"version":1}`
//! (offset -1 means the high watermark) and prints Kafka's report:
//! `Executing records delete operation`, `Records delete operation completed:`, then
//! `partition: t-0\tlow_watermark: 3` (or `partition: t-0\terror: <message>`) per partition.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{DeleteRecordsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use krust_client::{Client, ClientError};

use super::common::{self, ConnectArgs, Json};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-delete-records",
    about = "Delete records of the given partitions down to the specified offset.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// REQUIRED: The JSON file with offset per partition.
    #[arg(long = "offset-json-file", value_name = "Offset json file path")]
    offset_json_file: PathBuf,
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-delete-records", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let succeeded = common::block_on(execute(&args))
        .and_then(|r| r)
        .map(|failed| !failed);
    common::exit_code(succeeded, "Error: ")
}

/// Parses Kafka's offset JSON into (topic, partition, offset) in file order.
pub fn parse_offset_json(text: &str) -> anyhow::Result<Vec<(String, i32, i64)>> {
    let json = Json::parse(text).context("The offset json file is not valid JSON")?;
    if let Some(v) = json.get("version") {
        if v.as_i64() != Some(1) {
            bail!("Not supported version field value {:?}", v);
        }
    }
    let parts = json
        .get("partitions")
        .and_then(Json::as_array)
        .ok_or_else(|| anyhow!("The offset json file must contain a \"partitions\" array"))?;
    let mut out: Vec<(String, i32, i64)> = Vec::new();
    for p in parts {
        let topic = p
            .get("topic")
            .and_then(Json::as_str)
            .ok_or_else(|| anyhow!("Each partition entry needs a string \"topic\""))?;
        let partition = p
            .get("partition")
            .and_then(Json::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| anyhow!("Each partition entry needs an integer \"partition\""))?;
        let offset = p
            .get("offset")
            .and_then(Json::as_i64)
            .ok_or_else(|| anyhow!("Each partition entry needs an integer \"offset\""))?;
        out.push((topic.to_string(), partition, offset));
    }
    let mut seen = std::collections::HashSet::new();
    let dups: Vec<String> = out
        .iter()
        .filter(|(t, p, _)| !seen.insert((t.clone(), *p)))
        .map(|(t, p, _)| format!("{t}-{p}"))
        .collect();
    if !dups.is_empty() {
        bail!(
            "Offset json file contains duplicate topic partitions: {}",
            dups.join(",")
        );
    }
    Ok(out)
}

/// Returns whether any partition failed.
async fn execute(args: &Args) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.offset_json_file)
        .with_context(|| format!("cannot read {}", args.offset_json_file.display()))?;
    let wanted = parse_offset_json(&text)?;
    let mut client = args.connect.connect("krust-delete-records").await?;
    outln!("Executing records delete operation");
    let results = delete(&mut client, &wanted).await?;
    outln!("Records delete operation completed:");
    let mut failed = false;
    for (topic, partition, _) in &wanted {
        match results.get(&(topic.clone(), *partition)) {
            Some(Ok(low)) => outln!("partition: {topic}-{partition}\tlow_watermark: {low}"),
            Some(Err(e)) => {
                failed = true;
                outln!("partition: {topic}-{partition}\terror: {e}");
            }
            None => {
                failed = true;
                outln!("partition: {topic}-{partition}\terror: no answer from the broker");
            }
        }
    }
    Ok(failed)
}

type Results = BTreeMap<(String, i32), Result<i64, String>>;

async fn delete(client: &mut Client, wanted: &[(String, i32, i64)]) -> anyhow::Result<Results> {
    let mut results: Results = BTreeMap::new();
    let topics: Vec<String> = {
        let mut t: Vec<String> = wanted.iter().map(|(t, _, _)| t.clone()).collect();
        t.sort();
        t.dedup();
        t
    };
    let md = client.metadata(Some(&topics)).await?;
    // leader -> topic -> [(partition, offset)]
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
    for (topic, partition, offset) in wanted {
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic.as_str()));
        let leader = match t {
            Some(t) if t.error_code != 0 => {
                Err(ClientError::broker(t.error_code, None).to_string())
            }
            Some(t) => match t
                .partitions
                .iter()
                .find(|p| p.partition_index == *partition)
            {
                Some(p) if p.leader_id.0 >= 0 => Ok(p.leader_id.0),
                Some(_) => Err(ClientError::broker(5, None).to_string()),
                None => Err(ClientError::broker(3, None).to_string()),
            },
            None => Err(ClientError::broker(3, None).to_string()),
        };
        match leader {
            Ok(l) => by_leader
                .entry(l)
                .or_default()
                .entry(topic.clone())
                .or_default()
                .push((*partition, *offset)),
            Err(e) => {
                results.insert((topic.clone(), *partition), Err(e));
            }
        }
    }
    let timeout_ms = client
        .config()
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    for (leader, topics) in by_leader {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(
                topics
                    .iter()
                    .map(|(t, parts)| {
                        DeleteRecordsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.clone())))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|(p, o)| {
                                        DeleteRecordsPartition::default()
                                            .with_partition_index(*p)
                                            .with_offset(*o)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        match client.send_to(leader, &req).await {
            Ok(resp) => {
                for t in resp.topics {
                    for p in t.partitions {
                        let r = ClientError::check(p.error_code, None)
                            .map(|()| p.low_watermark)
                            .map_err(|e| e.to_string());
                        results.insert((t.name.to_string(), p.partition_index), r);
                    }
                }
            }
            Err(e) => {
                for (t, parts) in &topics {
                    for (p, _) in parts {
                        results.insert((t.clone(), *p), Err(e.to_string()));
                    }
                }
            }
        }
    }
    Ok(results)
}
