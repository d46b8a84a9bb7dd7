//! `krust transactions` (kafka-transactions.sh): `list` the transactions every broker
//! coordinates, `describe --transactional-id` one, `describe-producers --topic
//! --partition` of a partition's leader, and `abort` a transaction left open in a
//! partition (by `--start-offset`, or `--producer-id`, `--producer-epoch` and
//! `--coordinator-epoch`), writing its abort marker there as its coordinator would. Tables
//! are laid out as Kafka's tool lays them out: each cell padded to its column's width and
//! followed by a tab.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Parser, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use krust_client::{Client, ClientError};

use super::common::{self, ConnectArgs};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-transactions",
    about = "This tool is used to analyze the transactional state of producers in the cluster. It can be used to detect and recover from hanging transactions.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// list transactions
    List {
        /// Duration (in millis) to filter by: if < 0, all transactions will be returned;
        /// otherwise, only transactions running longer than this duration will be returned
        #[arg(long = "duration-filter", default_value_t = -1, allow_hyphen_values = true)]
        duration_filter: i64,
    },
    /// describe the state of an active transactional-id
    Describe {
        /// transactional id
        #[arg(long = "transactional-id")]
        transactional_id: String,
    },
    /// describe the states of active producers for a topic partition
    DescribeProducers {
        /// topic name
        #[arg(long)]
        topic: String,
        /// partition number
        #[arg(long)]
        partition: i32,
        /// optional broker id to describe the producer state on a specific replica
        #[arg(long = "broker-id")]
        broker_id: Option<i32>,
    },
    /// abort a hanging transaction (requires administrative privileges)
    Abort {
        /// topic name
        #[arg(long)]
        topic: String,
        /// partition number
        #[arg(long)]
        partition: i32,
        /// start offset of the transaction to abort
        #[arg(long = "start-offset")]
        start_offset: Option<i64>,
        /// producer id
        #[arg(long = "producer-id")]
        producer_id: Option<i64>,
        /// producer epoch
        #[arg(long = "producer-epoch")]
        producer_epoch: Option<i16>,
        /// coordinator epoch
        #[arg(long = "coordinator-epoch")]
        coordinator_epoch: Option<i32>,
    },
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-transactions", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    common::exit_code(common::block_on(execute(&args)).and_then(|r| r), "")
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Kafka's table: each cell padded to its column's width, then a tab.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    // Widths in characters, as the cells are padded.
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (cell, w) in cells.zip(&widths) {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(cell))));
            out.push('\t');
        }
        outln!("{out}");
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

async fn execute(args: &Args) -> anyhow::Result<bool> {
    let mut client = args.connect.connect("krust-transactions").await?;
    match &args.command {
        Cmd::List { duration_filter } => list(&mut client, *duration_filter).await,
        Cmd::Describe { transactional_id } => describe(&mut client, transactional_id).await,
        Cmd::DescribeProducers {
            topic,
            partition,
            broker_id,
        } => {
            let producers = producers(&mut client, topic, *partition, *broker_id).await?;
            let rows: Vec<Vec<String>> = producers
                .iter()
                .map(|p| {
                    vec![
                        p.producer_id.0.to_string(),
                        p.producer_epoch.to_string(),
                        p.coordinator_epoch.to_string(),
                        p.last_sequence.to_string(),
                        p.last_timestamp.to_string(),
                        if p.current_txn_start_offset >= 0 {
                            p.current_txn_start_offset.to_string()
                        } else {
                            "None".to_string()
                        },
                    ]
                })
                .collect();
            print_table(
                &[
                    "ProducerId",
                    "ProducerEpoch",
                    "LatestCoordinatorEpoch",
                    "LastSequence",
                    "LastTimestamp",
                    "CurrentTransactionStartOffset",
                ],
                &rows,
            );
            Ok(true)
        }
        Cmd::Abort {
            topic,
            partition,
            start_offset,
            producer_id,
            producer_epoch,
            coordinator_epoch,
        } => {
            let (pid, epoch, coordinator_epoch) = match (start_offset, producer_id) {
                (Some(start), _) if *start < 0 => bail!("--start-offset must not be negative"),
                (Some(start), _) => {
                    let found = producers(&mut client, topic, *partition, None)
                        .await?
                        .into_iter()
                        .find(|p| p.current_txn_start_offset == *start)
                        .ok_or_else(|| {
                            anyhow!(
                                "Could not find any open transactions starting at offset {start} on partition {topic}-{partition}"
                            )
                        })?;
                    (
                        found.producer_id.0,
                        i16::try_from(found.producer_epoch)?,
                        found.coordinator_epoch.max(0),
                    )
                }
                (None, Some(pid)) => {
                    let epoch = producer_epoch
                        .ok_or_else(|| anyhow!("Missing required argument --producer-epoch"))?;
                    let coordinator = coordinator_epoch
                        .ok_or_else(|| anyhow!("Missing required argument --coordinator-epoch"))?;
                    (*pid, epoch, coordinator.max(0))
                }
                (None, None) => bail!(
                    "The transaction to abort must be identified either with --start-offset (for brokers on 3.0 or above) or with --producer-id, --producer-epoch, and --coordinator-epoch (for older brokers)"
                ),
            };
            abort(
                &mut client,
                topic,
                *partition,
                pid,
                epoch,
                coordinator_epoch,
            )
            .await?;
            Ok(true)
        }
    }
}

async fn list(client: &mut Client, duration_filter: i64) -> anyhow::Result<bool> {
    client.metadata(Some(&[])).await?;
    let mut rows = Vec::new();
    for b in client.brokers() {
        let resp = client
            .send_to(
                b.node_id,
                &ListTransactionsRequest::default().with_duration_filter(duration_filter.max(-1)),
            )
            .await?;
        ClientError::check(resp.error_code, None)?;
        for t in resp.transaction_states {
            rows.push(vec![
                t.transactional_id.to_string(),
                b.node_id.to_string(),
                t.producer_id.0.to_string(),
                t.transaction_state.to_string(),
            ]);
        }
    }
    print_table(
        &[
            "TransactionalId",
            "Coordinator",
            "ProducerId",
            "TransactionState",
        ],
        &rows,
    );
    Ok(true)
}

async fn describe(client: &mut Client, id: &str) -> anyhow::Result<bool> {
    let coordinator = super::group_member::find_coordinator_of(client, id, 1).await?;
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(sb(id))]);
    let resp = client.send_to(coordinator.node_id, &req).await?;
    let t = resp
        .transaction_states
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("No description returned for transactional-id `{id}`"))?;
    ClientError::check(t.error_code, None).map_err(|e| {
        anyhow!("Failed to describe transaction state of transactional-id `{id}`: {e}")
    })?;
    let (start, duration) = if t.transaction_start_time_ms >= 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (
            t.transaction_start_time_ms.to_string(),
            (now - t.transaction_start_time_ms).to_string(),
        )
    } else {
        ("None".to_string(), "None".to_string())
    };
    let partitions: Vec<String> = t
        .topics
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| format!("{}-{p}", tp.topic.as_str()))
        })
        .collect();
    print_table(
        &[
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions",
        ],
        &[vec![
            coordinator.node_id.to_string(),
            id.to_string(),
            t.producer_id.0.to_string(),
            t.producer_epoch.to_string(),
            t.transaction_state.to_string(),
            t.transaction_timeout_ms.to_string(),
            start,
            duration,
            partitions.join(","),
        ]],
    );
    Ok(true)
}

/// The leader of `topic`-`partition`, from Metadata.
async fn leader_of(client: &mut Client, topic: &str, partition: i32) -> anyhow::Result<i32> {
    let md = client.metadata(Some(&[topic.to_string()])).await?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .ok_or_else(|| anyhow!("Topic {topic} not found"))?;
    ClientError::check(t.error_code, None)?;
    t.partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .map(|p| p.leader_id.0)
        .filter(|l| *l >= 0)
        .ok_or_else(|| anyhow!("Partition {topic}-{partition} has no leader"))
}

async fn producers(
    client: &mut Client,
    topic: &str,
    partition: i32,
    broker: Option<i32>,
) -> anyhow::Result<Vec<kafka_protocol::messages::describe_producers_response::ProducerState>> {
    let node = match broker {
        Some(b) => b,
        None => leader_of(client, topic, partition).await?,
    };
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(sb(topic)))
        .with_partition_indexes(vec![partition])]);
    let resp = client.send_to(node, &req).await?;
    let p = resp
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| anyhow!("No producer state returned for {topic}-{partition}"))?;
    ClientError::check(p.error_code, p.error_message.as_ref()).map_err(|e| {
        anyhow!(
            "Failed to describe producers for partition {topic}-{partition} on broker {node}: {e}"
        )
    })?;
    Ok(p.active_producers)
}

async fn abort(
    client: &mut Client,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    coordinator_epoch: i32,
) -> anyhow::Result<()> {
    let leader = leader_of(client, topic, partition).await?;
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_transaction_result(false)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_indexes(vec![partition])])]);
    let resp = client.send_to(leader, &req).await?;
    let code = resp
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .next()
        .ok_or_else(|| anyhow!("No answer for {topic}-{partition}"))?;
    ClientError::check(code, None).map_err(|e| {
        anyhow!(
            "Failed to abort transaction of producer {producer_id} (epoch {epoch}, coordinator epoch {coordinator_epoch}) on {topic}-{partition}: {e}"
        )
    })?;
    Ok(())
}
