//! `krust metadata-quorum` (`kafka-metadata-quorum.sh`): `describe --status` and
//! `describe --replication`, in Kafka 4.1's layout.
//!
//! The cluster id comes from DescribeCluster, everything else from DescribeQuorum. With
//! `--bootstrap-controller` the controllers are found through DescribeCluster with
//! endpoint type 2 (KIP-919) and the question goes to the active one.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::{self, ReplicaState};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use krust_client::{ClientError, Connection};

use super::common;

/// Kafka's label column width in `describe --status`.
const LABEL_WIDTH: usize = 24;
const ZERO_UUID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

#[derive(Parser, Debug)]
#[command(
    name = "kafka-metadata-quorum",
    about = "This tool describes kraft metadata quorum status.",
    disable_version_flag = true
)]
struct Args {
    /// A comma-separated list of host:port pairs to use for establishing the connection to the Kafka cluster.
    #[arg(long = "bootstrap-server")]
    bootstrap_server: Option<String>,
    /// A comma-separated list of host:port pairs to use for establishing the connection to the KRaft controllers.
    #[arg(long = "bootstrap-controller")]
    bootstrap_controller: Option<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(long = "command-config")]
    command_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Describe the metadata quorum info
    Describe {
        /// A short summary of the quorum status and the other provides information about the current replication state.
        #[arg(long)]
        status: bool,
        /// Detailed information about the status of replication
        #[arg(long)]
        replication: bool,
        /// Print human-readable timestamps
        #[arg(long = "human-readable")]
        human_readable: bool,
    },
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("kafka-metadata-quorum", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let Cmd::Describe {
        status,
        replication,
        human_readable,
    } = args.command;
    let check = match (status, replication) {
        (true, true) => Err(
            "Only one of --status or --replication should be specified with describe sub-command",
        ),
        (false, false) => {
            Err("One of --status or --replication must be specified with describe sub-command")
        }
        _ if human_readable && !replication => {
            Err("The option --human-readable is only supported along with --replication")
        }
        _ => Ok(()),
    };
    let target = match (&args.bootstrap_server, &args.bootstrap_controller) {
        (Some(s), None) => Ok((s.clone(), false)),
        (None, Some(c)) => Ok((c.clone(), true)),
        _ => Err("Only one of --bootstrap-server or --bootstrap-controller must be specified"),
    };
    let (bootstrap, controller) = match check.and(target) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let config = match common::client_config_from(
        &match &args.command_config {
            Some(p) => match common::load_properties(p) {
                Ok(m) => m,
                Err(e) => return common::fail("Error: ", &e),
            },
            None => Default::default(),
        },
        "krust-metadata-quorum",
    ) {
        Ok(c) => c,
        Err(e) => return common::fail("Error: ", &e),
    };
    let result = common::block_on(async move {
        // The command config's TLS and SASL, for the controller listener as for a client
        // listener.
        let security = krust_client::Security {
            tls: config.tls.clone(),
            sasl: config.sasl.clone(),
        };
        let (cluster_id, quorum) = query(
            &bootstrap,
            controller,
            &config.client_id,
            config.request_timeout,
            &security,
        )
        .await?;
        anyhow::Ok(if status {
            status_text(&cluster_id, &quorum)?
        } else {
            replication_text(&quorum, human_readable)?
        })
    })
    .and_then(|r| r);
    match result {
        Ok(text) => {
            for line in text.lines() {
                outln!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => common::fail("Error: ", &e),
    }
}

/// Connects to the first reachable address of a comma-separated list.
async fn connect_any(
    list: &str,
    client_id: &str,
    timeout: std::time::Duration,
    security: &krust_client::Security,
) -> Result<Connection, ClientError> {
    let mut last = None;
    for addr in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match Connection::connect_secured(addr, client_id, timeout, security).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ClientError::Connect {
        addr: list.to_string(),
        reason: "no address given".into(),
    }))
}

async fn query(
    bootstrap: &str,
    controller: bool,
    client_id: &str,
    timeout: std::time::Duration,
    security: &krust_client::Security,
) -> anyhow::Result<(String, DescribeQuorumResponse)> {
    let mut conn = connect_any(bootstrap, client_id, timeout, security).await?;
    let mut describe = DescribeClusterRequest::default();
    describe.endpoint_type = if controller { 2 } else { 1 };
    let cluster = conn.send(&describe).await?;
    ClientError::check(cluster.error_code, cluster.error_message.as_ref())?;
    if controller {
        // Ask the active controller.
        let active = cluster.controller_id.0;
        if let Some(b) = cluster.brokers.iter().find(|b| b.broker_id.0 == active) {
            let addr = format!("{}:{}", b.host, b.port);
            if let Ok(c) = Connection::connect_secured(&addr, client_id, timeout, security).await {
                conn = c;
            }
        }
    }
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp = conn.send(&req).await?;
    ClientError::check(resp.error_code, resp.error_message.as_ref())?;
    let part = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow::anyhow!("DescribeQuorum returned no partition"))?;
    ClientError::check(part.error_code, part.error_message.as_ref())?;
    Ok((cluster.cluster_id.to_string(), resp))
}

fn partition(
    resp: &DescribeQuorumResponse,
) -> anyhow::Result<&describe_quorum_response::PartitionData> {
    resp.topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow::anyhow!("DescribeQuorum returned no partition"))
}

fn uuid_string(id: &uuid::Uuid) -> String {
    let b = id.as_bytes();
    let mut out = String::with_capacity(22);
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut nbits = 0;
    for &byte in b {
        bits = (bits << 8) | u32::from(byte);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

/// `{"id": 1, "endpoints": ["CONTROLLER://localhost:9093"]}` (4.1: a zero directory id
/// is omitted; endpoints only when known).
fn node_json(r: &ReplicaState, resp: &DescribeQuorumResponse) -> String {
    let mut s = format!("{{\"id\": {}", r.replica_id.0);
    if !r.replica_directory_id.is_nil() {
        s.push_str(&format!(
            ", \"directoryId\": \"{}\"",
            uuid_string(&r.replica_directory_id)
        ));
    }
    if let Some(node) = resp.nodes.iter().find(|n| n.node_id == r.replica_id) {
        if !node.listeners.is_empty() {
            let eps: Vec<String> = node
                .listeners
                .iter()
                .map(|l| {
                    let host = if l.host.contains(':') {
                        format!("[{}]", l.host)
                    } else {
                        l.host.to_string()
                    };
                    format!("\"{}://{}:{}\"", l.name, host, l.port)
                })
                .collect();
            s.push_str(&format!(", \"endpoints\": [{}]", eps.join(", ")));
        }
    }
    s.push('}');
    s
}

fn status_text(cluster_id: &str, resp: &DescribeQuorumResponse) -> anyhow::Result<String> {
    let p = partition(resp)?;
    let leader = p
        .current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id);
    let leader_end = leader.map_or(-1, |l| l.log_end_offset);
    let laggard = p.current_voters.iter().min_by_key(|v| v.log_end_offset);
    let max_lag = laggard.map_or(0, |l| leader_end - l.log_end_offset);
    let max_lag_time = match (leader, laggard) {
        (Some(l), Some(g)) if l.replica_id == g.replica_id => 0,
        (Some(l), Some(g))
            if l.last_caught_up_timestamp >= 0 && g.last_caught_up_timestamp >= 0 =>
        {
            l.last_caught_up_timestamp - g.last_caught_up_timestamp
        }
        _ => -1,
    };
    let voters: Vec<String> = p
        .current_voters
        .iter()
        .map(|v| node_json(v, resp))
        .collect();
    let observers: Vec<String> = p.observers.iter().map(|v| node_json(v, resp)).collect();
    let rows = [
        ("ClusterId:", cluster_id.to_string()),
        ("LeaderId:", p.leader_id.0.to_string()),
        ("LeaderEpoch:", p.leader_epoch.to_string()),
        ("HighWatermark:", p.high_watermark.to_string()),
        ("MaxFollowerLag:", max_lag.to_string()),
        ("MaxFollowerLagTimeMs:", max_lag_time.to_string()),
        ("CurrentVoters:", format!("[{}]", voters.join(", "))),
        ("CurrentObservers:", format!("[{}]", observers.join(", "))),
    ];
    Ok(rows
        .iter()
        .map(|(k, v)| format!("{k:<LABEL_WIDTH$}{v}\n"))
        .collect())
}

fn replication_text(resp: &DescribeQuorumResponse, human: bool) -> anyhow::Result<String> {
    let p = partition(resp)?;
    let leader_end = p
        .current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id)
        .map_or(-1, |l| l.log_end_offset);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let ts = |t: i64| -> anyhow::Result<String> {
        if !human {
            return Ok(t.to_string());
        }
        if t <= 0 || t > now {
            anyhow::bail!("Error while printing human readable timestamp: the timestamp {t} is not in the past");
        }
        Ok(format!("{} ms ago", now - t))
    };
    let mut rows: Vec<Vec<String>> = vec![[
        "NodeId",
        "DirectoryId",
        "LogEndOffset",
        "Lag",
        "LastFetchTimestamp",
        "LastCaughtUpTimestamp",
        "Status",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    let mut add = |r: &ReplicaState, status: &str| -> anyhow::Result<()> {
        let dir = if r.replica_directory_id.is_nil() {
            ZERO_UUID.to_string()
        } else {
            uuid_string(&r.replica_directory_id)
        };
        rows.push(vec![
            r.replica_id.0.to_string(),
            dir,
            r.log_end_offset.to_string(),
            (leader_end - r.log_end_offset).to_string(),
            ts(r.last_fetch_timestamp)?,
            ts(r.last_caught_up_timestamp)?,
            status.to_string(),
        ]);
        Ok(())
    };
    if let Some(l) = p
        .current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id)
    {
        add(l, "Leader")?;
    }
    for v in p
        .current_voters
        .iter()
        .filter(|v| v.replica_id != p.leader_id)
    {
        add(v, "Follower")?;
    }
    for o in &p.observers {
        add(o, "Observer")?;
    }
    Ok(pretty_table(&rows))
}

/// Kafka's `prettyPrintTable`: every cell left-aligned, padded to its column's width and
/// followed by a tab.
fn pretty_table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            out.push_str(&format!("{cell:<w$}\t", w = widths[c]));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_response::{Listener, Node};
    use kafka_protocol::messages::BrokerId;

    fn response() -> DescribeQuorumResponse {
        let voter = |id, end, ts| {
            ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_log_end_offset(end)
                .with_last_fetch_timestamp(ts)
                .with_last_caught_up_timestamp(ts)
        };
        let part = describe_quorum_response::PartitionData::default()
            .with_leader_id(BrokerId(1))
            .with_leader_epoch(3)
            .with_high_watermark(10)
            .with_current_voters(vec![voter(1, 10, 1000), voter(2, 7, 400)])
            .with_observers(vec![voter(4, 9, 900)]);
        DescribeQuorumResponse::default()
            .with_topics(vec![
                describe_quorum_response::TopicData::default().with_partitions(vec![part])
            ])
            .with_nodes(vec![Node::default()
                .with_node_id(BrokerId(1))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_static_str("localhost"))
                    .with_port(9093)])])
    }

    #[test]
    fn status_layout_matches_kafka() {
        let text = status_text("MkU3OEVBNTcwNTJENDM2Qk", &response()).expect("status");
        let expected = "ClusterId:              MkU3OEVBNTcwNTJENDM2Qk\n\
                        LeaderId:               1\n\
                        LeaderEpoch:            3\n\
                        HighWatermark:          10\n\
                        MaxFollowerLag:         3\n\
                        MaxFollowerLagTimeMs:   600\n\
                        CurrentVoters:          [{\"id\": 1, \"endpoints\": [\"CONTROLLER://localhost:9093\"]}, {\"id\": 2}]\n\
                        CurrentObservers:       [{\"id\": 4}]\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn replication_table_matches_kafka() {
        let text = replication_text(&response(), false).expect("table");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t"
        );
        assert_eq!(
            lines[1],
            "1     \tAAAAAAAAAAAAAAAAAAAAAA\t10          \t0  \t1000              \t1000                 \tLeader  \t"
        );
        assert_eq!(lines[2].split('\t').nth(6), Some("Follower"));
        assert_eq!(lines[3].split('\t').nth(6), Some("Observer"));
        assert_eq!(lines[2].split('\t').nth(3), Some("3  "));
    }

    #[test]
    fn uuid_text_is_kafka_base64() {
        assert_eq!(uuid_string(&uuid::Uuid::nil()), ZERO_UUID);
        assert_eq!(
            uuid_string(&uuid::Uuid::from_u128(1)),
            "AAAAAAAAAAAAAAAAAAAAAQ"
        );
    }
}
