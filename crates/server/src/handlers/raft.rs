//! The metadata quorum's RPCs on the controller listener: Vote (52), BeginQuorumEpoch (53),
//! EndQuorumEpoch (54), FetchSnapshot (59) and Fetch (1) of `__cluster_metadata-0`.
//!
//! Each request is mapped to the Raft core's message, handed to the node, and its answer
//! mapped back. A request the node cannot take (another partition, a malformed body)
//! gets Kafka's error for it (INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION); a request the node did not answer in time (shutdown) closes
//! the connection, which the peer treats like a lost message.

use std::sync::Arc;

use crate::metadata_log::MetadataLog;
use crate::raft_wire::{self, WireRequest, WireResponse};

/// What the connection sends back.
pub enum Reply {
    Respond(WireResponse),
    Close(String),
}

pub async fn handle(metadata: &Arc<MetadataLog>, request: WireRequest, version: i16) -> Reply {
    let (from, request) = match raft_wire::request_from_wire(request.clone()) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "refusing a metadata quorum request");
            return Reply::Respond(raft_wire::misaddressed_response(&request));
        }
    };
    match metadata.raft_request(from, request).await {
        Some(response) => Reply::Respond(raft_wire::response_to_wire(&response, version)),
        None => Reply::Close("the metadata quorum did not answer in time".into()),
    }
}
