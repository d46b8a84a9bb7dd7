//! `krust topics` (kafka-topics.sh): create, list, describe, alter and delete topics.
//!
//! Output follows Kafka 4.x `TopicCommand`: `Created topic T.`, one name per line for
//! `--list`, and for `--describe` a topic line
//! `Topic: T\tTopicId: ID\tPartitionCount: N\tReplicationFactor: R\tConfigs: k=v,...`
//! followed by one `\tTopic: T\tPartition: p\tLeader: l\tReplicas: ..\tIsr: ..\tElr: \tLastKnownElr: `
//! line per partition. Errors are `Error while executing topic command : <message>`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Parser;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use krust_client::{Client, ClientError};

use super::common::{self, ConnectArgs};
use super::topic_filter::TopicFilter;

const TOPIC_EXISTS: i16 = 36;
/// DescribeConfigs resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// `ConfigSource.DEFAULT_CONFIG`.
const DEFAULT_CONFIG_SOURCE: i8 = 5;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-topics",
    about = "Create, delete, describe, or change a topic.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Create a new topic.
    #[arg(long)]
    create: bool,
    /// List all available topics.
    #[arg(long)]
    list: bool,
    /// List details for the given topics.
    #[arg(long)]
    describe: bool,
    /// Alter the number of partitions of a topic.
    #[arg(long)]
    alter: bool,
    /// Delete a topic.
    #[arg(long)]
    delete: bool,
    /// The topic to create, alter, describe or delete.
    #[arg(long, value_name = "topic")]
    topic: Option<String>,
    /// The number of partitions for the topic being created or altered.
    #[arg(long, value_name = "# of partitions")]
    partitions: Option<i32>,
    /// The replication factor for each partition in the topic being created.
    #[arg(long = "replication-factor", value_name = "replication factor")]
    replication_factor: Option<i32>,
    /// A topic configuration override for the topic being created (name=value).
    #[arg(long = "config", value_name = "name=value")]
    config: Vec<String>,
    /// Only create the topic if it does not already exist.
    #[arg(long = "if-not-exists")]
    if_not_exists: bool,
    /// Only alter, delete or describe the topic if it exists.
    #[arg(long = "if-exists")]
    if_exists: bool,
    /// Exclude internal topics when listing or describing topics.
    #[arg(long = "exclude-internal")]
    exclude_internal: bool,
    /// Manual partition-to-broker assignment: `b1:b2,b1:b2,...` (one group per partition).
    #[arg(
        long = "replica-assignment",
        value_name = "broker_id_for_part1_replica1 : ..."
    )]
    replica_assignment: Option<String>,
    /// Only show partitions whose ISR is smaller than the replica list.
    #[arg(long = "under-replicated-partitions")]
    under_replicated: bool,
    /// Only show partitions whose leader is not available.
    #[arg(long = "unavailable-partitions")]
    unavailable: bool,
    /// Only show topics that have overridden configs.
    #[arg(long = "topics-with-overrides")]
    topics_with_overrides: bool,
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-topics", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let result = check_args(&args).and_then(|()| common::block_on(execute(&args)).and_then(|r| r));
    match result {
        Ok(()) => {
            common::flush_stdout();
            ExitCode::SUCCESS
        }
        Err(e) => {
            common::flush_stdout();
            common::fail("Error while executing topic command : ", &e)
        }
    }
}

fn check_args(args: &Args) -> anyhow::Result<()> {
    let actions = [
        args.create,
        args.list,
        args.describe,
        args.alter,
        args.delete,
    ]
    .iter()
    .filter(|a| **a)
    .count();
    if actions != 1 {
        bail!("Command must include exactly one action: --list, --describe, --create, --alter or --delete");
    }
    if (args.create || args.alter || args.delete) && args.topic.is_none() {
        bail!("Missing required argument \"[topic]\"");
    }
    if args.alter && args.partitions.is_none() {
        bail!("Missing required argument \"[partitions]\"");
    }
    if args.create
        && args.replica_assignment.is_some()
        && (args.partitions.is_some() || args.replication_factor.is_some())
    {
        bail!("Option \"[replica-assignment]\" can't be used with option \"[partitions]\" or \"[replication-factor]\"");
    }
    Ok(())
}

async fn execute(args: &Args) -> anyhow::Result<()> {
    let mut client = args.connect.connect("krust-topics").await?;
    if args.create {
        create(&mut client, args).await
    } else if args.list {
        // Kafka prints the names joined by newlines: an empty list is one empty line.
        outln!("{}", topic_names(&mut client, args).await?.join("\n"));
        Ok(())
    } else if args.describe {
        describe(&mut client, args).await
    } else if args.alter {
        alter(&mut client, args).await
    } else {
        delete(&mut client, args).await
    }
}

/// All topics, sorted, filtered by `--topic` and `--exclude-internal`.
async fn topics(client: &mut Client, args: &Args) -> anyhow::Result<Vec<MetadataResponseTopic>> {
    let filter = args.topic.as_deref().map(TopicFilter::new).transpose()?;
    let md = client.metadata(None).await?;
    let mut topics: Vec<MetadataResponseTopic> = md
        .topics
        .into_iter()
        .filter(|t| t.error_code == 0)
        .filter(|t| {
            let name = t.name.as_ref().map(|n| n.as_str()).unwrap_or("");
            let internal = t.is_internal || common::is_internal_topic(name);
            let selected = filter.as_ref().is_none_or(|f| f.matches(name));
            selected && !(args.exclude_internal && internal)
        })
        .collect();
    topics.sort_by(|a, b| a.name.as_deref().cmp(&b.name.as_deref()));
    if topics.is_empty() && !args.if_exists {
        if let Some(t) = &args.topic {
            if !t.is_empty() {
                bail!("Topic '{t}' does not exist as expected");
            }
        }
    }
    Ok(topics)
}

async fn topic_names(client: &mut Client, args: &Args) -> anyhow::Result<Vec<String>> {
    // --list tolerates a missing --topic match (prints nothing), as Kafka does.
    let filter = args.topic.as_deref().map(TopicFilter::new).transpose()?;
    let md = client.metadata(None).await?;
    let mut names: Vec<String> = md
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| {
            let name = t.name.as_ref()?.to_string();
            let internal = t.is_internal || common::is_internal_topic(&name);
            let selected = filter.as_ref().is_none_or(|f| f.matches(&name));
            (selected && !(args.exclude_internal && internal)).then_some(name)
        })
        .collect();
    names.sort();
    Ok(names)
}

async fn create(client: &mut Client, args: &Args) -> anyhow::Result<()> {
    let name = args.topic.clone().unwrap_or_default();
    if name.contains('.') || name.contains('_') {
        outln!("WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both.");
    }
    if let Some(rf) = args.replication_factor {
        if !(1..=i32::from(i16::MAX)).contains(&rf) {
            bail!(
                "The replication factor must be between 1 and {} inclusive",
                i16::MAX
            );
        }
    }
    if let Some(p) = args.partitions {
        if p < 1 {
            bail!("The partitions must be greater than 0");
        }
    }
    let mut configs = Vec::new();
    for c in &args.config {
        let parts: Vec<&str> = c.split('=').collect();
        if parts.len() != 2 {
            bail!("requirement failed: Invalid topic config: all configs to be added must be in the format \"key=val\".");
        }
        configs.push(
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(parts[0].trim().to_string()))
                .with_value(Some(StrBytes::from_string(parts[1].trim().to_string()))),
        );
    }
    let mut topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.clone())))
        .with_num_partitions(args.partitions.unwrap_or(-1))
        .with_replication_factor(args.replication_factor.map(|r| r as i16).unwrap_or(-1))
        .with_configs(configs);
    if let Some(assignment) = &args.replica_assignment {
        topic = topic
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(parse_assignment(assignment)?);
    }
    let timeout_ms = client
        .config()
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(timeout_ms);
    let resp = client.send_any(&req).await?;
    let result = resp
        .topics
        .iter()
        .find(|t| t.name.as_str() == name)
        .ok_or_else(|| anyhow!("the broker did not answer for topic {name}"))?;
    match ClientError::check(result.error_code, result.error_message.as_ref()) {
        Ok(()) => {
            outln!("Created topic {name}.");
            Ok(())
        }
        Err(e) if e.code() == Some(TOPIC_EXISTS) && args.if_not_exists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn parse_assignment(
    text: &str,
) -> anyhow::Result<Vec<kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment>>
{
    use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
    use kafka_protocol::messages::BrokerId;
    let mut out = Vec::new();
    let mut width = None;
    for (i, part) in text.split(',').enumerate() {
        let brokers = part
            .split(':')
            .map(|b| b.trim().parse::<i32>().map(BrokerId))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("Invalid replica assignment '{part}': {e}"))?;
        if *width.get_or_insert(brokers.len()) != brokers.len() {
            bail!(
                "Partition {i} has different replication factor: [{}]",
                part.replace(':', ", ")
            );
        }
        out.push(
            CreatableReplicaAssignment::default()
                .with_partition_index(i as i32)
                .with_broker_ids(brokers),
        );
    }
    Ok(out)
}

async fn describe(client: &mut Client, args: &Args) -> anyhow::Result<()> {
    let topics = topics(client, args).await?;
    if topics.is_empty() {
        return Ok(());
    }
    let configs = non_default_configs(client, &topics).await?;
    for t in &topics {
        let name = t.name.as_ref().map(|n| n.as_str()).unwrap_or("");
        let mut parts: Vec<_> = t.partitions.iter().collect();
        parts.sort_by_key(|p| p.partition_index);
        let Some(first) = parts.first() else {
            continue;
        };
        let conf = configs.get(name).cloned().unwrap_or_default();
        let under_replicated =
            |p: &&kafka_protocol::messages::metadata_response::MetadataResponsePartition| {
                p.isr_nodes.len() < p.replica_nodes.len()
            };
        let filtered = args.under_replicated || args.unavailable;
        if args.topics_with_overrides && conf.is_empty() {
            continue;
        }
        if !filtered {
            let mut line = format!("Topic: {name}");
            if !t.topic_id.is_nil() {
                line.push_str(&format!(
                    "\tTopicId: {}",
                    common::topic_id_string(&t.topic_id)
                ));
            }
            line.push_str(&format!(
                "\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                parts.len(),
                first.replica_nodes.len(),
                conf.join(",")
            ));
            outln!("{line}");
        }
        if args.topics_with_overrides {
            continue;
        }
        for p in &parts {
            if filtered
                && !((args.under_replicated && under_replicated(p))
                    || (args.unavailable && p.leader_id.0 < 0))
            {
                continue;
            }
            let leader = if p.leader_id.0 < 0 {
                "none".to_string()
            } else {
                p.leader_id.0.to_string()
            };
            outln!(
                "\tTopic: {name}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\tElr: \tLastKnownElr: ",
                p.partition_index,
                join_ids(&p.replica_nodes),
                join_ids(&p.isr_nodes),
            );
        }
    }
    Ok(())
}

fn join_ids(ids: &[kafka_protocol::messages::BrokerId]) -> String {
    ids.iter()
        .map(|b| b.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `name=value` of every config whose source is not the default, per topic.
async fn non_default_configs(
    client: &mut Client,
    topics: &[MetadataResponseTopic],
) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let req = DescribeConfigsRequest::default().with_resources(
        topics
            .iter()
            .map(|t| {
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(t.name.clone().map(|n| n.0).unwrap_or_default())
                    .with_configuration_keys(None)
            })
            .collect(),
    );
    let resp = client.send_any(&req).await?;
    let mut out = HashMap::new();
    for r in resp.results {
        ClientError::check(r.error_code, r.error_message.as_ref())?;
        let entries = r
            .configs
            .iter()
            .filter(|c| c.config_source != DEFAULT_CONFIG_SOURCE)
            .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
            .collect();
        out.insert(r.resource_name.to_string(), entries);
    }
    Ok(out)
}

async fn alter(client: &mut Client, args: &Args) -> anyhow::Result<()> {
    let topics = topics(client, args).await?;
    let count = args.partitions.unwrap_or_default();
    if topics.is_empty() {
        return Ok(());
    }
    let timeout_ms = client
        .config()
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let req = CreatePartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatePartitionsTopic::default()
                        .with_name(t.name.clone().unwrap_or_default())
                        .with_count(count)
                        .with_assignments(None)
                })
                .collect(),
        )
        .with_timeout_ms(timeout_ms);
    let resp = client.send_any(&req).await?;
    for r in &resp.results {
        ClientError::check(r.error_code, r.error_message.as_ref())?;
    }
    Ok(())
}

async fn delete(client: &mut Client, args: &Args) -> anyhow::Result<()> {
    let topics = topics(client, args).await?;
    if topics.is_empty() {
        return Ok(());
    }
    let names: Vec<TopicName> = topics.iter().filter_map(|t| t.name.clone()).collect();
    let timeout_ms = client
        .config()
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let req = DeleteTopicsRequest::default()
        .with_topic_names(names.clone())
        .with_topics(
            names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(n.clone())))
                .collect(),
        )
        .with_timeout_ms(timeout_ms);
    let resp = client.send_any(&req).await?;
    for r in &resp.responses {
        ClientError::check(r.error_code, r.error_message.as_ref())?;
    }
    Ok(())
}
