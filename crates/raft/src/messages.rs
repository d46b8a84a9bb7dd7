//! Raft RPCs, field for field with Kafka's Vote (v2), BeginQuorumEpoch, EndQuorumEpoch,
//! Fetch and DescribeQuorum messages (minus topic/partition nesting, directory ids and
//! endpoints, which the host adds when it maps these to the wire). Kafka's `-1` for
//! "unknown" is `None`.

use bytes::Bytes;

use crate::types::{Entry, Epoch, NodeId, Offset};

/// Kafka error codes that Raft RPCs use, 1:1 with `Errors.java`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorCode {
    #[error("no error")]
    None,
    #[error("this node is not the leader or a follower for the partition")]
    NotLeaderOrFollower,
    #[error("the request is invalid")]
    InvalidRequest,
    #[error("the request's voter set does not match this node's")]
    InconsistentVoterSet,
    #[error("the request's leader epoch is older than this node's")]
    FencedLeaderEpoch,
    #[error("the request's leader epoch is newer than this node's")]
    UnknownLeaderEpoch,
    #[error("the request's cluster id does not match this node's")]
    InconsistentClusterId,
    #[error("the replica key does not match this node")]
    InvalidVoterKey,
    #[error("the requested snapshot was not found")]
    SnapshotNotFound,
    #[error("the requested position is beyond the snapshot's size")]
    PositionOutOfRange,
}

impl ErrorCode {
    /// Kafka's numeric error code.
    pub fn code(self) -> i16 {
        match self {
            ErrorCode::None => 0,
            ErrorCode::NotLeaderOrFollower => 6,
            ErrorCode::InvalidRequest => 42,
            ErrorCode::InconsistentVoterSet => 94,
            ErrorCode::FencedLeaderEpoch => 74,
            ErrorCode::UnknownLeaderEpoch => 75,
            ErrorCode::InconsistentClusterId => 104,
            ErrorCode::InvalidVoterKey => 125,
            ErrorCode::SnapshotNotFound => 98,
            ErrorCode::PositionOutOfRange => 99,
        }
    }

    /// The error for a Kafka code, if it is one Raft uses.
    pub fn from_code(code: i16) -> Option<ErrorCode> {
        [
            ErrorCode::None,
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::InvalidRequest,
            ErrorCode::InconsistentVoterSet,
            ErrorCode::FencedLeaderEpoch,
            ErrorCode::UnknownLeaderEpoch,
            ErrorCode::InconsistentClusterId,
            ErrorCode::InvalidVoterKey,
            ErrorCode::SnapshotNotFound,
            ErrorCode::PositionOutOfRange,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

/// Vote v2 (KIP-996). With `pre_vote` the receiver records nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRequest {
    pub cluster_id: Option<String>,
    /// The receiver this request is meant for (v1+ top-level `VoterId`).
    pub voter_id: NodeId,
    /// The candidate's epoch (for a pre-vote: the requester's current epoch).
    pub replica_epoch: Epoch,
    pub replica_id: NodeId,
    pub last_offset_epoch: Epoch,
    /// The requester's log end offset.
    pub last_offset: Offset,
    pub pre_vote: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteResponse {
    pub error: ErrorCode,
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
    pub vote_granted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeginQuorumEpochRequest {
    pub cluster_id: Option<String>,
    pub voter_id: NodeId,
    pub leader_id: NodeId,
    pub leader_epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeginQuorumEpochResponse {
    pub error: ErrorCode,
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndQuorumEpochRequest {
    pub cluster_id: Option<String>,
    pub leader_id: NodeId,
    pub leader_epoch: Epoch,
    /// Voters in the order they should try to take over (most caught up first).
    pub preferred_successors: Vec<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndQuorumEpochResponse {
    pub error: ErrorCode,
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    pub cluster_id: Option<String>,
    pub replica_id: NodeId,
    pub fetch_offset: Offset,
    pub last_fetched_epoch: Epoch,
    pub current_leader_epoch: Epoch,
    pub max_wait_ms: i32,
}

/// Fetch response `DivergingEpoch` (tag 0): truncate to the end of `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DivergingEpoch {
    pub epoch: Epoch,
    pub end_offset: Offset,
}

/// Fetch response `CurrentLeader` (tag 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrentLeader {
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
}

/// Fetch response `SnapshotId` (tag 2); `end_offset` is exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotId {
    pub end_offset: Offset,
    pub epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    pub error: ErrorCode,
    pub high_watermark: Offset,
    pub records: Vec<Entry>,
    pub diverging_epoch: Option<DivergingEpoch>,
    pub current_leader: CurrentLeader,
    pub snapshot_id: Option<SnapshotId>,
}

/// FetchSnapshot (KIP-630): one chunk of the leader's snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchSnapshotRequest {
    pub cluster_id: Option<String>,
    pub replica_id: NodeId,
    pub current_leader_epoch: Epoch,
    pub snapshot_id: SnapshotId,
    pub position: u64,
    pub max_bytes: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchSnapshotResponse {
    pub error: ErrorCode,
    pub snapshot_id: SnapshotId,
    /// Total size of the snapshot in bytes.
    pub size: u64,
    pub position: u64,
    /// The chunk: bytes `[position, position + len)` of the snapshot, not record-aligned.
    pub unaligned_records: Bytes,
    pub current_leader: CurrentLeader,
}

/// A request between Raft nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Vote(VoteRequest),
    BeginQuorumEpoch(BeginQuorumEpochRequest),
    EndQuorumEpoch(EndQuorumEpochRequest),
    Fetch(FetchRequest),
    FetchSnapshot(FetchSnapshotRequest),
}

/// A response between Raft nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Vote(VoteResponse),
    BeginQuorumEpoch(BeginQuorumEpochResponse),
    EndQuorumEpoch(EndQuorumEpochResponse),
    Fetch(FetchResponse),
    FetchSnapshot(FetchSnapshotResponse),
}

/// One replica in DescribeQuorum. Timestamps are the host's milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    pub replica_id: NodeId,
    /// `None` when the leader has not yet had a valid fetch from this replica (Kafka: -1).
    pub log_end_offset: Option<Offset>,
    pub last_fetch_timestamp_ms: Option<u64>,
    pub last_caught_up_timestamp_ms: Option<u64>,
}

/// DescribeQuorum partition data, as answered by the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribeQuorumData {
    pub leader_id: NodeId,
    pub leader_epoch: Epoch,
    pub high_watermark: Offset,
    pub current_voters: Vec<ReplicaState>,
    pub observers: Vec<ReplicaState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for e in [
            ErrorCode::None,
            ErrorCode::FencedLeaderEpoch,
            ErrorCode::UnknownLeaderEpoch,
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::InvalidRequest,
            ErrorCode::InconsistentClusterId,
        ] {
            assert_eq!(ErrorCode::from_code(e.code()), Some(e));
        }
        assert_eq!(ErrorCode::FencedLeaderEpoch.code(), 74);
        assert_eq!(ErrorCode::from_code(1), None);
    }
}
