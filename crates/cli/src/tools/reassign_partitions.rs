//! `krust reassign-partitions` (kafka-reassign-partitions.sh): moves partition replicas
//! between brokers with Kafka's reassignment JSON
//! `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}`.
//!
//! `--execute` starts the moves (printing the current assignment to keep for a rollback),
//! `--verify` says for each partition whether its move is complete, `--list` shows the
//! moves in progress, `--cancel` stops them. Throttles are not implemented: the moves run
//! at full speed, and no throttle is set or cleared.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use krust_client::{Client, ClientError};

use super::common::{self, ConnectArgs, Json};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-reassign-partitions",
    about = "This tool helps to move topic partitions between replicas.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The JSON file with the partition reassignment configuration.
    #[arg(
        long = "reassignment-json-file",
        value_name = "manual assignment json file path"
    )]
    reassignment_json_file: Option<PathBuf>,
    /// Kick off the reassignment as specified by the --reassignment-json-file option.
    #[arg(long)]
    execute: bool,
    /// Verify if the reassignment completed as specified by the --reassignment-json-file option.
    #[arg(long)]
    verify: bool,
    /// List all active partition reassignments.
    #[arg(long)]
    list: bool,
    /// Cancel an active reassignment.
    #[arg(long)]
    cancel: bool,
}

/// (topic, partition) → target replicas, in file order.
type Plan = Vec<((String, i32), Vec<i32>)>;

/// (topic, partition) → target replicas, or `None` to cancel.
type Targets = Vec<((String, i32), Option<Vec<i32>>)>;

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-reassign-partitions", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    common::exit_code(common::block_on(execute(&args)).and_then(|r| r), "Error: ")
}

/// Parses Kafka's reassignment JSON.
pub fn parse_plan(text: &str) -> anyhow::Result<Plan> {
    let json = Json::parse(text).context("The reassignment json file is not valid JSON")?;
    if let Some(v) = json.get("version") {
        if v.as_i64() != Some(1) {
            bail!("Not supported version field value {:?}", v);
        }
    }
    let parts = json
        .get("partitions")
        .and_then(Json::as_array)
        .ok_or_else(|| anyhow!("The reassignment json file must contain a \"partitions\" array"))?;
    let mut out: Plan = Vec::new();
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
        let replicas = p
            .get("replicas")
            .and_then(Json::as_array)
            .ok_or_else(|| anyhow!("Each partition entry needs a \"replicas\" array"))?
            .iter()
            .map(|r| r.as_i64().and_then(|v| i32::try_from(v).ok()))
            .collect::<Option<Vec<i32>>>()
            .ok_or_else(|| anyhow!("Replicas must be broker ids"))?;
        if replicas.is_empty() {
            bail!("Partition {topic}-{partition} has an empty replica list");
        }
        let key = (topic.to_string(), partition);
        if out.iter().any(|(k, _)| *k == key) {
            bail!("Duplicate reassignment for partition {topic}-{partition}");
        }
        out.push((key, replicas));
    }
    Ok(out)
}

fn plan_json(plan: &[((String, i32), Vec<i32>)]) -> String {
    let parts: Vec<String> = plan
        .iter()
        .map(|((t, p), r)| {
            let replicas: Vec<String> = r.iter().map(i32::to_string).collect();
            let dirs: Vec<&str> = r.iter().map(|_| "\"any\"").collect();
            format!(
                "{{\"topic\":\"{t}\",\"partition\":{p},\"replicas\":[{}],\"log_dirs\":[{}]}}",
                replicas.join(","),
                dirs.join(",")
            )
        })
        .collect();
    format!("{{\"version\":1,\"partitions\":[{}]}}", parts.join(","))
}

fn read_plan(args: &Args) -> anyhow::Result<Plan> {
    let path = args
        .reassignment_json_file
        .as_ref()
        .ok_or_else(|| anyhow!("Missing required argument \"[reassignment-json-file]\""))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_plan(&text)
}

/// Returns whether everything succeeded.
async fn execute(args: &Args) -> anyhow::Result<bool> {
    let actions = [args.execute, args.verify, args.list, args.cancel]
        .iter()
        .filter(|a| **a)
        .count();
    if actions != 1 {
        bail!("Command must include exactly one action: --execute, --verify, --list or --cancel");
    }
    let mut client = args.connect.connect("krust-reassign-partitions").await?;
    if args.list {
        return list(&mut client).await;
    }
    let plan = read_plan(args)?;
    if args.verify {
        return verify(&mut client, &plan).await;
    }
    if args.execute {
        let current = current_assignment(&mut client, &plan).await?;
        outln!("Current partition replica assignment");
        outln!("");
        outln!("{}", plan_json(&current));
        outln!("");
        outln!("Save this to use as the --reassignment-json-file option during rollback");
    }
    let targets: Targets = plan
        .iter()
        .map(|(k, r)| (k.clone(), (!args.cancel).then(|| r.clone())))
        .collect();
    let errors = alter(&mut client, &targets).await?;
    let names: Vec<String> = plan.iter().map(|((t, p), _)| format!("{t}-{p}")).collect();
    if errors.is_empty() {
        if args.cancel {
            outln!(
                "Successfully cancelled partition reassignments for: {}",
                names.join(",")
            );
        } else {
            outln!(
                "Successfully started partition reassignments for {}",
                names.join(",")
            );
        }
        return Ok(true);
    }
    for ((t, p), e) in &errors {
        outln!("Error reassigning partition(s):\n{t}-{p}: {e}");
    }
    Ok(false)
}

/// Sends AlterPartitionReassignments; returns the partitions that failed, with why.
async fn alter(
    client: &mut Client,
    targets: &Targets,
) -> anyhow::Result<Vec<((String, i32), String)>> {
    let mut topics: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((t, p), r) in targets {
        topics.entry(t).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(*p)
                .with_replicas(r.as_ref().map(|r| r.iter().map(|b| BrokerId(*b)).collect())),
        );
    }
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_allow_replication_factor_change(true)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, partitions)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let resp = client.send_any(&req).await?;
    ClientError::check(resp.error_code, resp.error_message.as_ref())?;
    let mut errors = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            if p.error_code != 0 {
                let why = p
                    .error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| krust_client::error_description(p.error_code));
                errors.push(((t.name.to_string(), p.partition_index), why));
            }
        }
    }
    Ok(errors)
}

/// The replicas each planned partition has now.
async fn current_assignment(client: &mut Client, plan: &Plan) -> anyhow::Result<Plan> {
    let mut topics: Vec<String> = plan.iter().map(|((t, _), _)| t.clone()).collect();
    topics.sort();
    topics.dedup();
    let md = client.metadata(Some(&topics)).await?;
    let mut out = Vec::new();
    for ((t, p), _) in plan {
        let topic = md
            .topics
            .iter()
            .find(|x| x.name.as_ref().map(|n| n.as_str()) == Some(t.as_str()))
            .filter(|x| x.error_code == 0)
            .ok_or_else(|| anyhow!("Topic {t} not found"))?;
        let part = topic
            .partitions
            .iter()
            .find(|x| x.partition_index == *p)
            .ok_or_else(|| anyhow!("Partition {t}-{p} not found"))?;
        out.push((
            (t.clone(), *p),
            part.replica_nodes.iter().map(|b| b.0).collect(),
        ));
    }
    Ok(out)
}

/// Ongoing reassignments: (topic, partition) → (replicas, adding, removing).
type Ongoing = BTreeMap<(String, i32), (Vec<i32>, Vec<i32>, Vec<i32>)>;

async fn ongoing(client: &mut Client) -> anyhow::Result<Ongoing> {
    let resp = client
        .send_any(&ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000))
        .await?;
    ClientError::check(resp.error_code, resp.error_message.as_ref())?;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut out = Ongoing::new();
    for t in &resp.topics {
        for p in &t.partitions {
            out.insert(
                (t.name.to_string(), p.partition_index),
                (
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                ),
            );
        }
    }
    Ok(out)
}

fn join(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn list(client: &mut Client) -> anyhow::Result<bool> {
    let moves = ongoing(client).await?;
    if moves.is_empty() {
        outln!("No partition reassignments found.");
        return Ok(true);
    }
    outln!("Current partition reassignments:");
    for ((t, p), (replicas, adding, removing)) in &moves {
        outln!(
            "{t}-{p}: replicas: {}. adding: {}. removing: {}.",
            join(replicas),
            join(adding),
            join(removing)
        );
    }
    Ok(true)
}

/// Prints each planned partition's status; true when all are done as planned.
async fn verify(client: &mut Client, plan: &Plan) -> anyhow::Result<bool> {
    let moves = ongoing(client).await?;
    let current = current_assignment(client, plan).await?;
    outln!("Status of partition reassignment:");
    let mut all_done = true;
    for (((t, p), target), (_, now)) in plan.iter().zip(&current) {
        if moves.contains_key(&(t.clone(), *p)) {
            all_done = false;
            outln!("Reassignment of partition {t}-{p} is still in progress.");
        } else if now == target {
            outln!("Reassignment of partition {t}-{p} is completed.");
        } else {
            all_done = false;
            outln!(
                "There is no active reassignment of partition {t}-{p}, but replica set is {} rather than {}.",
                join(now),
                join(target)
            );
        }
    }
    Ok(all_done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_reassignment_json() {
        let plan = parse_plan(
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[3,1],"log_dirs":["any","any"]}]}"#,
        )
        .expect("parse");
        assert_eq!(plan, vec![(("t".to_string(), 0), vec![3, 1])]);
        assert_eq!(
            plan_json(&plan),
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[3,1],"log_dirs":["any","any"]}]}"#
        );
        assert!(
            parse_plan(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[]}]}"#).is_err()
        );
        assert!(parse_plan(r#"{"version":2,"partitions":[]}"#).is_err());
        assert!(parse_plan("not json").is_err());
    }
}
