//! The quorum state machine: which role a node is in, for which epoch, and which moves
//! between roles are legal.

use std::collections::{BTreeMap, BTreeSet};

use crate::messages::{FetchRequest, SnapshotId};
use crate::types::{Epoch, NodeId, Offset};
use crate::RequestId;

/// A node's role together with its epoch.
///
/// Allowed transitions (after Kafka 4.0's `QuorumState`, KIP-996). "Same" and "higher" are
/// the epoch of the new state relative to the current one; the epoch never decreases.
///
/// | from          | to            | when                                                        |
/// |---------------|---------------|-------------------------------------------------------------|
/// | Unattached    | Unattached    | higher epoch seen; or same epoch after granting a vote      |
/// | Unattached    | Prospective   | election timeout (voters only)                              |
/// | Unattached    | Follower      | leader found at the same or a higher epoch                  |
/// | Prospective   | Candidate     | a majority granted the pre-vote (the candidate bumps epoch) |
/// | Prospective   | Unattached    | higher epoch; same epoch after granting a vote, or after    |
/// |               |               | the pre-vote timed out with no last-known leader            |
/// | Prospective   | Follower      | leader found at same/higher epoch; or pre-vote timed out    |
/// |               |               | and the last-known leader of this epoch is followed again   |
/// | Candidate     | Leader        | a majority granted the vote (same epoch)                    |
/// | Candidate     | Prospective   | election lost or timed out (same epoch, after backoff)      |
/// | Candidate     | Unattached    | higher epoch seen                                           |
/// | Candidate     | Follower      | leader found at the same or a higher epoch                  |
/// | Leader        | Resigned      | graceful resignation or failed check-quorum (same epoch)    |
/// | Leader        | Unattached    | higher epoch seen                                           |
/// | Leader        | Follower      | higher epoch with a known leader                            |
/// | Follower      | Prospective   | fetch timeout (voters only, same epoch)                     |
/// | Follower      | Unattached    | higher epoch; observers also on fetch timeout (same epoch)  |
/// | Follower      | Follower      | higher epoch with a known leader                            |
/// | Resigned      | Unattached    | higher epoch seen, or election timeout (moves to epoch + 1) |
/// | Resigned      | Follower      | higher epoch with a known leader                            |
///
/// Observers (non-voters) only ever are Unattached or Follower. Any other move is a bug in
/// this crate and trips an `assert!`.
#[derive(Clone, Debug)]
pub struct QuorumState {
    pub(crate) epoch: Epoch,
    pub(crate) role: Role,
}

/// The role of a node, with the data only that role has.
#[derive(Clone, Debug)]
pub(crate) enum Role {
    Unattached {
        voted_for: Option<NodeId>,
        /// Voters: when to start a pre-vote. Observers: when to look for the leader again.
        election_deadline_ms: u64,
    },
    Prospective {
        voted_for: Option<NodeId>,
        /// The last leader known for this epoch (when coming from Follower).
        leader: Option<NodeId>,
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
        election_deadline_ms: u64,
    },
    Candidate {
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
        /// Election timeout, shortened to a backoff once the election is lost.
        election_deadline_ms: u64,
    },
    Leader(Box<LeaderState>),
    Follower {
        leader: NodeId,
        fetch_deadline_ms: u64,
        /// Earliest time the next Fetch may go out (retry backoff after an error).
        next_fetch_ms: u64,
        /// A successful fetch from the leader happened in this role; such a follower
        /// rejects pre-votes.
        has_fetched: bool,
        /// The leader sent EndQuorumEpoch; pre-votes are granted again.
        leader_resigned: bool,
        /// A snapshot being fetched in chunks (the leader no longer has our fetch offset).
        snapshot: Option<SnapshotFetch>,
    },
    Resigned {
        election_deadline_ms: u64,
    },
}

/// Progress of a FetchSnapshot download.
#[derive(Clone, Debug)]
pub(crate) struct SnapshotFetch {
    pub(crate) id: SnapshotId,
    pub(crate) data: Vec<u8>,
}

/// A role without its data, for accessors and the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    Unattached,
    Prospective,
    Candidate,
    Leader,
    Follower,
    Resigned,
}

/// What the leader knows about one replica.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReplicaProgress {
    /// Fetch offset of the last valid Fetch.
    pub(crate) end_offset: Option<Offset>,
    pub(crate) last_fetch_ms: Option<u64>,
    pub(crate) last_caught_up_ms: Option<u64>,
    /// The leader's end offset at the time of the previous fetch.
    pub(crate) leader_end_at_last_fetch: Offset,
    /// The high watermark in the last Fetch response sent to this replica: what it knows.
    pub(crate) high_watermark_sent: Option<Offset>,
}

/// A Fetch with no data to return yet, answered when data arrives, the high watermark
/// moves or `deadline_ms` passes.
#[derive(Clone, Debug)]
pub(crate) struct ParkedFetch {
    pub(crate) from: NodeId,
    pub(crate) request_id: RequestId,
    pub(crate) request: FetchRequest,
    pub(crate) deadline_ms: u64,
    pub(crate) high_watermark_at_park: Offset,
}

#[derive(Clone, Debug)]
pub(crate) struct LeaderState {
    /// Offset of this epoch's LeaderChange entry; the high watermark must pass it.
    pub(crate) epoch_start_offset: Offset,
    /// Every voter except the leader itself.
    pub(crate) voters: BTreeMap<NodeId, ReplicaProgress>,
    pub(crate) observers: BTreeMap<NodeId, ReplicaProgress>,
    /// Voters that fetched since the last check-quorum deadline.
    pub(crate) fetched_since_check: BTreeSet<NodeId>,
    pub(crate) check_quorum_deadline_ms: u64,
    pub(crate) begin_resend_ms: u64,
    pub(crate) flush_deadline_ms: Option<u64>,
    pub(crate) parked: Vec<ParkedFetch>,
}

impl LeaderState {
    /// What the leader knows about voter or observer `id`.
    pub(crate) fn progress(&self, id: NodeId) -> Option<&ReplicaProgress> {
        self.voters.get(&id).or_else(|| self.observers.get(&id))
    }

    pub(crate) fn progress_mut(&mut self, id: NodeId) -> Option<&mut ReplicaProgress> {
        match self.voters.get_mut(&id) {
            Some(p) => Some(p),
            None => self.observers.get_mut(&id),
        }
    }
}

impl Role {
    pub(crate) fn kind(&self) -> RoleKind {
        match self {
            Role::Unattached { .. } => RoleKind::Unattached,
            Role::Prospective { .. } => RoleKind::Prospective,
            Role::Candidate { .. } => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
            Role::Follower { .. } => RoleKind::Follower,
            Role::Resigned { .. } => RoleKind::Resigned,
        }
    }
}

/// Whether `from -> to` is in the table above. `higher` says the epoch grows.
pub(crate) fn transition_allowed(from: RoleKind, to: RoleKind, higher: bool, voter: bool) -> bool {
    use RoleKind::*;
    if !voter && !matches!(to, Unattached | Follower) {
        return false;
    }
    match (from, to) {
        (Unattached, Unattached) => true,
        (Unattached, Prospective) => !higher,
        (Unattached, Follower) => true,
        (Prospective, Candidate) => higher,
        (Prospective, Unattached) => true,
        (Prospective, Follower) => true,
        (Candidate, Leader) => !higher,
        (Candidate, Prospective) => !higher,
        (Candidate, Unattached) => higher,
        (Candidate, Follower) => true,
        (Leader, Resigned) => !higher,
        (Leader, Unattached) | (Leader, Follower) => higher,
        (Follower, Prospective) => !higher,
        (Follower, Unattached) => higher || !voter,
        (Follower, Follower) => higher,
        (Resigned, Unattached) | (Resigned, Follower) => higher,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rejects_illegal_moves() {
        use RoleKind::*;
        assert!(!transition_allowed(Follower, Leader, false, true));
        assert!(!transition_allowed(Unattached, Candidate, true, true));
        assert!(!transition_allowed(Leader, Follower, false, true));
        assert!(!transition_allowed(Resigned, Unattached, false, true));
        assert!(!transition_allowed(Unattached, Prospective, false, false));
        assert!(transition_allowed(Follower, Unattached, false, false));
        assert!(!transition_allowed(Follower, Unattached, false, true));
        assert!(transition_allowed(Prospective, Candidate, true, true));
        assert!(transition_allowed(Candidate, Leader, false, true));
    }
}
