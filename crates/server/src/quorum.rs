//! The metadata quorum as the outside world sees it (DescribeQuorum, metrics).
//!
//! A standalone node is the single voter of its quorum and its leader; every record it
//! commits is immediately below the high watermark. The figures here are what
//! `kafka-metadata-quorum describe` prints.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::broker::Broker;

/// The leader epoch of a standalone quorum: it elected itself once.
pub const STANDALONE_LEADER_EPOCH: i32 = 1;

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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Broker {
    /// The metadata quorum's current state.
    pub fn quorum_status(&self) -> QuorumStatus {
        let end = self.metadata.end_offset();
        let now = now_ms();
        let endpoints = self
            .config
            .advertised_controller_listener()
            .map(|l| VoterEndpoint {
                node_id: self.node_id,
                listener: l.name.clone(),
                host: if l.host.is_empty() {
                    "localhost".into()
                } else {
                    l.host.clone()
                },
                port: l.port,
            })
            .into_iter()
            .collect();
        QuorumStatus {
            leader_id: self.node_id,
            leader_epoch: STANDALONE_LEADER_EPOCH,
            high_watermark: end,
            voters: vec![ReplicaStatus {
                node_id: self.node_id,
                // A static quorum does not know directory ids (Kafka prints the zero id).
                directory_id: Uuid::nil(),
                log_end_offset: end,
                last_fetch_timestamp: now,
                last_caught_up_timestamp: now,
            }],
            observers: vec![],
            endpoints,
        }
    }
}
