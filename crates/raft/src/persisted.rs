//! The election state that must survive a crash (Kafka's `quorum-state` file).

use crate::types::{Epoch, NodeId};

/// What a node must remember across restarts so it never votes twice in an epoch, never
/// goes back to an older epoch and never leads an epoch twice.
///
/// The node hands this to its host in [`crate::Effect::PersistQuorumState`]; the host
/// must make it durable (write a temp file, fsync, rename) **before** it executes any
/// effect that follows it in the same batch. See the crate docs for the full contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumStateRecord {
    pub leader_epoch: Epoch,
    /// The leader of `leader_epoch`, if known. Equal to the node itself after it won.
    pub leader_id: Option<NodeId>,
    /// The candidate this node voted for in `leader_epoch`, if any.
    pub voted_id: Option<NodeId>,
}

impl QuorumStateRecord {
    /// The state of a freshly formatted node.
    pub const INITIAL: QuorumStateRecord = QuorumStateRecord {
        leader_epoch: Epoch::ZERO,
        leader_id: None,
        voted_id: None,
    };
}
