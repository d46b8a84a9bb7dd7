//! The metadata quorum as the outside world sees it (DescribeQuorum, metrics).
//!
//! The figures come from the Raft node behind the metadata log and are what
//! `kafka-metadata-quorum describe` prints.

use uuid::Uuid;

use crate::broker::Broker;

/// One replica of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub node_id: i32,
    pub directory_id: Uuid,
    pub log_end_offset: i64,
    /// -1 when unknown.
    pub last_fetch_timestamp: i64,
    /// -1 when unknown.
    pub last_caught_up_timestamp: i64,
}

/// A voter's endpoint on the controller listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterEndpoint {
    pub node_id: i32,
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// The quorum's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaStatus>,
    pub observers: Vec<ReplicaStatus>,
    pub endpoints: Vec<VoterEndpoint>,
}

impl Broker {
    /// The metadata quorum's current state.
    pub fn quorum_status(&self) -> QuorumStatus {
        let listener = self
            .config
            .controller_listener_names
            .first()
            .cloned()
            .unwrap_or_else(|| "CONTROLLER".to_string());
        let endpoints = self
            .config
            .controller_quorum_voters
            .iter()
            .map(|v| VoterEndpoint {
                node_id: v.id,
                listener: listener.clone(),
                host: v.host.clone(),
                port: v.port,
            })
            .collect();
        let replica = |r: &krust_raft::messages::ReplicaState| ReplicaStatus {
            node_id: r.replica_id.0,
            // A static quorum does not know directory ids (Kafka prints the zero id).
            directory_id: Uuid::nil(),
            log_end_offset: r.log_end_offset.map_or(-1, |o| o.0),
            last_fetch_timestamp: r.last_fetch_timestamp_ms.map_or(-1, |t| t as i64),
            last_caught_up_timestamp: r.last_caught_up_timestamp_ms.map_or(-1, |t| t as i64),
        };
        match self.metadata.describe() {
            Some(d) => QuorumStatus {
                leader_id: d.leader_id.0,
                leader_epoch: d.leader_epoch.0,
                high_watermark: d.high_watermark.0,
                voters: d.current_voters.iter().map(replica).collect(),
                observers: d.observers.iter().map(replica).collect(),
                endpoints,
            },
            None => QuorumStatus {
                leader_id: -1,
                leader_epoch: -1,
                high_watermark: -1,
                voters: vec![],
                observers: vec![],
                endpoints,
            },
        }
    }
}
