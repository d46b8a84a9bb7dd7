//! Forwarding controller operations to the active controller (KIP-590, KIP-631).
//!
//! Only the active controller decides and writes metadata records. Any other node that
//! receives a request needing a decision (CreateTopics, DeleteTopics, CreatePartitions,
//! AlterConfigs, IncrementalAlterConfigs, a producer id block) sends the same request, at
//! the client's version, to the active controller's controller listener and answers with
//! its response. A request that arrived forwarded is never forwarded again: a node that is
//! no longer the active controller answers it with NOT_CONTROLLER, and the forwarding node
//! retries with the next leader it learns about until its deadline.
//!
//! A request waiting at a node that stops being the quorum leader (it crashed, stalled or
//! lost an election) is abandoned as soon as this node learns of another leader, and goes
//! to that one. As in Kafka, three connections carry the forwarded requests, so that one
//! kind does not wait behind another: the broker's registration and heartbeats, its ISR
//! changes, and everything else (a CreateTopics, for one, waits for its commit).

use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::Request;
use krust_client::Connection;

use crate::broker::{Broker, COMMIT_TIMEOUT};

/// The client id of forwarded requests.
pub const FORWARDED_CLIENT_ID: &str = "krust-forward";

/// Pause between attempts while the quorum has no reachable active controller.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// NOT_CONTROLLER.
const NOT_CONTROLLER: i16 = 41;
/// NOT_LEADER_OR_FOLLOWER: DescribeQuorum's answer from a node that is not the leader.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// Which connection to the active controller a forwarded request goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// BrokerRegistration and BrokerHeartbeat: late, the broker is fenced.
    Lifecycle = 0,
    /// AlterPartition.
    AlterPartition = 1,
    /// Admin requests and producer id blocks.
    Other = 2,
}

/// How many [`Channel`]s there are.
pub const CHANNELS: usize = 3;

/// A request the active controller answers, and how its response says "not me".
pub trait Forward: Request {
    /// The connection it goes over.
    const CHANNEL: Channel = Channel::Other;
    fn not_controller(resp: &Self::Response) -> bool;
}

impl Forward for CreateTopicsRequest {
    fn not_controller(resp: &CreateTopicsResponse) -> bool {
        resp.topics.iter().any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl Forward for DeleteTopicsRequest {
    fn not_controller(resp: &DeleteTopicsResponse) -> bool {
        resp.responses
            .iter()
            .any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl Forward for CreatePartitionsRequest {
    fn not_controller(resp: &CreatePartitionsResponse) -> bool {
        resp.results.iter().any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl Forward for AlterConfigsRequest {
    fn not_controller(resp: &AlterConfigsResponse) -> bool {
        resp.responses
            .iter()
            .any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl Forward for IncrementalAlterConfigsRequest {
    fn not_controller(resp: &IncrementalAlterConfigsResponse) -> bool {
        resp.responses
            .iter()
            .any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl Forward for DescribeQuorumRequest {
    fn not_controller(resp: &DescribeQuorumResponse) -> bool {
        resp.error_code == NOT_LEADER_OR_FOLLOWER
            || resp
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error_code == NOT_LEADER_OR_FOLLOWER)
    }
}

impl Forward for AlterPartitionReassignmentsRequest {
    fn not_controller(resp: &AlterPartitionReassignmentsResponse) -> bool {
        resp.error_code == NOT_CONTROLLER
    }
}

impl Forward for ElectLeadersRequest {
    fn not_controller(resp: &ElectLeadersResponse) -> bool {
        resp.error_code == NOT_CONTROLLER
    }
}

impl Forward for AlterPartitionRequest {
    const CHANNEL: Channel = Channel::AlterPartition;
    fn not_controller(resp: &AlterPartitionResponse) -> bool {
        resp.error_code == NOT_CONTROLLER
    }
}

impl Forward for AllocateProducerIdsRequest {
    fn not_controller(resp: &AllocateProducerIdsResponse) -> bool {
        resp.error_code == NOT_CONTROLLER
    }
}

impl Forward for BrokerRegistrationRequest {
    const CHANNEL: Channel = Channel::Lifecycle;
    fn not_controller(resp: &BrokerRegistrationResponse) -> bool {
        resp.error_code == NOT_CONTROLLER
    }
}

impl Forward for BrokerHeartbeatRequest {
    const CHANNEL: Channel = Channel::Lifecycle;
    fn not_controller(resp: &BrokerHeartbeatResponse) -> bool {
        resp.error_code == NOT_CONTROLLER
    }
}

impl Forward for AlterUserScramCredentialsRequest {
    fn not_controller(resp: &AlterUserScramCredentialsResponse) -> bool {
        resp.results.iter().any(|r| r.error_code == NOT_CONTROLLER)
    }
}

impl Forward for AlterClientQuotasRequest {
    fn not_controller(resp: &AlterClientQuotasResponse) -> bool {
        resp.entries.iter().any(|e| e.error_code == NOT_CONTROLLER)
    }
}

impl Forward for CreateAclsRequest {
    fn not_controller(resp: &CreateAclsResponse) -> bool {
        resp.results.iter().any(|r| r.error_code == NOT_CONTROLLER)
    }
}

impl Forward for DeleteAclsRequest {
    fn not_controller(resp: &DeleteAclsResponse) -> bool {
        resp.filter_results
            .iter()
            .any(|r| r.error_code == NOT_CONTROLLER)
    }
}

/// Where a controller operation runs.
pub enum Route<T> {
    /// This node is the active controller: decide here.
    Local,
    /// The active controller's answer.
    Remote(T),
}

impl Broker {
    /// Sends `req` to the active controller, at `version` if given (else the highest both
    /// sides serve), unless this node is the active controller. Retries while there is no
    /// reachable active controller, up to the commit timeout.
    pub async fn forward<R: Forward>(
        &self,
        req: &R,
        version: Option<i16>,
    ) -> anyhow::Result<Route<R::Response>> {
        self.forward_within(req, version, COMMIT_TIMEOUT).await
    }

    /// [`Broker::forward`], giving up after `patience`.
    pub async fn forward_within<R: Forward>(
        &self,
        req: &R,
        version: Option<i16>,
        patience: Duration,
    ) -> anyhow::Result<Route<R::Response>> {
        let deadline = Instant::now() + patience;
        let mut last_error = String::from("no active controller is known");
        loop {
            if self.metadata.is_active() {
                return Ok(Route::Local);
            }
            if Instant::now() >= deadline {
                anyhow::bail!(crate::metadata_log::CommitError::Timeout(patience));
            }
            let known = self.metadata.leader();
            let leader = known.filter(|l| *l != self.node_id);
            if let Some(addr) = leader.and_then(|l| self.metadata.voter_address(l)) {
                let outcome = tokio::select! {
                    r = self.forward_once(addr, req, version) => Some(r),
                    _ = self.leader_moves_from(known) => None,
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        anyhow::bail!(crate::metadata_log::CommitError::Timeout(patience))
                    }
                };
                match outcome {
                    Some(Ok(resp)) if !R::not_controller(&resp) => return Ok(Route::Remote(resp)),
                    Some(Ok(_)) => {
                        last_error = format!("node {leader:?} is not the active controller")
                    }
                    Some(Err(e)) => last_error = e.to_string(),
                    // Abandoned: another node leads now.
                    None => continue,
                }
            }
            tracing::debug!(error = %last_error, "waiting for an active controller");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Returns once the quorum leader this node knows of is no longer `leader`.
    async fn leader_moves_from(&self, leader: Option<i32>) {
        while self.metadata.leader() == leader {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn forward_once<R: Forward>(
        &self,
        addr: &str,
        req: &R,
        version: Option<i16>,
    ) -> anyhow::Result<R::Response> {
        let mut slot = self.forward_connections[R::CHANNEL as usize].lock().await;
        let mut conn = match slot.take() {
            Some(c) if c.addr() == addr && !c.is_broken() => c,
            _ => {
                Connection::connect_secured(
                    addr,
                    FORWARDED_CLIENT_ID,
                    COMMIT_TIMEOUT + Duration::from_secs(5),
                    &self.config.controller_security,
                )
                .await?
            }
        };
        // Out of the slot while its request is out: if this is abandoned, the connection
        // (with a response still to come) goes with it.
        let result = match version {
            Some(v) => conn.send_version(req, v).await,
            None => conn.send(req).await,
        };
        if result.is_ok() {
            *slot = Some(conn);
        }
        Ok(result?)
    }
}
