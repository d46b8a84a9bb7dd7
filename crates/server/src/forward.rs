//! Forwarding controller operations to the active controller (KIP-590, KIP-631).
//!
//! Only the active controller decides and writes metadata records. Any other node that
//! receives a request needing a decision (CreateTopics, DeleteTopics, CreatePartitions,
//! AlterConfigs, IncrementalAlterConfigs, a producer id block) sends the same request, at
//! the client's version, to the active controller's controller listener and answers with
//! its response. A request that arrived forwarded is never forwarded again: a node that is
//! no longer the active controller answers it with NOT_CONTROLLER, and the forwarding node
//! retries with the next leader it learns about until its deadline.

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

/// A request the active controller answers, and how its response says "not me".
pub trait Forward: Request {
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
    fn not_controller(resp: &BrokerRegistrationResponse) -> bool {
        resp.error_code == NOT_CONTROLLER
    }
}

impl Forward for BrokerHeartbeatRequest {
    fn not_controller(resp: &BrokerHeartbeatResponse) -> bool {
        resp.error_code == NOT_CONTROLLER
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
            let leader = self.metadata.leader().filter(|l| *l != self.node_id);
            if let Some(addr) = leader.and_then(|l| self.metadata.voter_address(l)) {
                match self.forward_once(addr, req, version).await {
                    Ok(resp) if !R::not_controller(&resp) => return Ok(Route::Remote(resp)),
                    Ok(_) => last_error = format!("node {leader:?} is not the active controller"),
                    Err(e) => last_error = e.to_string(),
                }
            }
            tracing::debug!(error = %last_error, "waiting for an active controller");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn forward_once<R: Forward>(
        &self,
        addr: &str,
        req: &R,
        version: Option<i16>,
    ) -> anyhow::Result<R::Response> {
        let mut slot = self.forward_connection.lock().await;
        let reusable = matches!(&*slot, Some(c) if c.addr() == addr && !c.is_broken());
        if !reusable {
            *slot = Some(
                Connection::connect(
                    addr,
                    FORWARDED_CLIENT_ID,
                    COMMIT_TIMEOUT + Duration::from_secs(5),
                )
                .await?,
            );
        }
        let conn = slot.as_mut().expect("connection was just set");
        let result = match version {
            Some(v) => conn.send_version(req, v).await,
            None => conn.send(req).await,
        };
        if result.is_err() {
            *slot = None;
        }
        Ok(result?)
    }
}
