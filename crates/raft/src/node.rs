//! `RaftNode`: the whole KRaft protocol for one replica, driven by calls and answering
//! with effects.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, info, warn};

use crate::config::RaftConfig;
use crate::log::RaftLog;
use crate::messages::{
    BeginQuorumEpochRequest, BeginQuorumEpochResponse, CurrentLeader, DescribeQuorumData,
    DivergingEpoch, EndQuorumEpochRequest, EndQuorumEpochResponse, ErrorCode, FetchRequest,
    FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, ReplicaState, Request, Response,
    SnapshotId, VoteRequest, VoteResponse,
};
use crate::persisted::QuorumStateRecord;
use crate::state::{
    transition_allowed, LeaderState, ParkedFetch, QuorumState, ReplicaProgress, Role, RoleKind,
    SnapshotFetch,
};
use crate::types::{Entry, EntryKind, Epoch, NodeId, Offset};

mod election;
mod follower;
mod leader;
mod snapshot;

#[cfg(test)]
pub(crate) use follower::truncation_offset;
#[cfg(test)]
pub(crate) use leader::{diverging_epoch, majority_offset};

/// Identifies a request so its response can be matched. The node numbers its own
/// requests; for incoming requests it echoes whatever id the host gave it.
pub type RequestId = u64;

/// Base of the exponential election backoff (Kafka's `RETRY_BACKOFF_BASE_MS`).
const ELECTION_BACKOFF_BASE_MS: u64 = 100;
/// The leader forgets an observer that has not fetched for this long.
const OBSERVER_SESSION_TIMEOUT_MS: u64 = 300_000;
/// Cap on the exponent of the election backoff, so the shift cannot overflow.
const BACKOFF_EXPONENT_MAX: u32 = 10;

/// Something the host must do. Effects are returned in order by
/// [`RaftNode::poll_effects`] and must be executed in that order; a
/// `PersistQuorumState` must be durable before any later effect is executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Durably store the election state (replacing the previous record).
    PersistQuorumState(QuorumStateRecord),
    /// Send a request; deliver its response with [`RaftNode::handle_response`] and the
    /// same `request_id`. Lost requests need no report: the node times them out itself.
    SendRequest {
        to: NodeId,
        request_id: RequestId,
        request: Request,
    },
    /// Answer a request previously given to [`RaftNode::handle_request`].
    SendResponse {
        to: NodeId,
        request_id: RequestId,
        response: Response,
    },
    /// The high watermark moved up: entries below it are committed and may be applied.
    Committed { high_watermark: Offset },
    /// The known leader or the epoch changed (`leader` is `None` while unknown).
    LeaderChanged {
        epoch: Epoch,
        leader: Option<NodeId>,
    },
    /// The log was replaced by a snapshot fetched from the leader: the state machine
    /// must reload its state from [`RaftLog::read_snapshot`] before applying entries
    /// above `snapshot_id.end_offset`. Never happens on a leader.
    SnapshotLoaded { snapshot_id: SnapshotId },
}

/// Why a proposal was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader (known leader {leader:?} in epoch {epoch})")]
    NotLeader {
        leader: Option<NodeId>,
        epoch: Epoch,
    },
    #[error("a proposal needs at least one entry")]
    Empty,
}

/// Why a snapshot could not be taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot end {end_offset} is above the high watermark {high_watermark}")]
    AboveHighWatermark {
        end_offset: Offset,
        high_watermark: Offset,
    },
    #[error("snapshot end {end_offset} is not after the log start {start_offset}")]
    NotAfterLogStart {
        end_offset: Offset,
        start_offset: Offset,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestKind {
    Vote,
    BeginQuorumEpoch,
    EndQuorumEpoch,
    Fetch,
    FetchSnapshot,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    to: NodeId,
    kind: RequestKind,
    sent_ms: u64,
}

/// One KRaft replica (voter or observer). Owns its log; never does I/O.
pub struct RaftNode<L: RaftLog> {
    config: RaftConfig,
    node_id: NodeId,
    voters: BTreeSet<NodeId>,
    log: L,
    state: QuorumState,
    high_watermark: Offset,
    /// What the host was last asked to persist (or what it loaded).
    persisted: Option<QuorumStateRecord>,
    reported_leader: Option<(Epoch, Option<NodeId>)>,
    rng: StdRng,
    effects: Vec<Effect>,
    next_request_id: RequestId,
    in_flight: BTreeMap<RequestId, InFlight>,
    now_ms: u64,
    election_retries: u32,
}

impl<L: RaftLog> RaftNode<L> {
    /// Starts a node from its log and its last persisted election state (`None` on a
    /// freshly formatted node). Restart rules: a former leader comes back Resigned in the
    /// same epoch; a node that knew a leader follows it; a node that voted comes back
    /// Unattached with that vote; a log epoch above the stored epoch wins.
    pub fn new(
        config: RaftConfig,
        node_id: NodeId,
        voters: impl IntoIterator<Item = NodeId>,
        log: L,
        persisted: Option<QuorumStateRecord>,
        now_ms: u64,
        rng_seed: u64,
    ) -> RaftNode<L> {
        let voters: BTreeSet<NodeId> = voters.into_iter().collect();
        assert!(!voters.is_empty(), "a quorum needs at least one voter");
        let record = persisted.unwrap_or(QuorumStateRecord::INITIAL);
        let snapshot_end = log
            .latest_snapshot()
            .map_or(Offset::ZERO, |id| id.end_offset);
        let mut node = RaftNode {
            config,
            node_id,
            voters,
            log,
            state: QuorumState {
                epoch: record.leader_epoch,
                role: Role::Unattached {
                    voted_for: None,
                    election_deadline_ms: now_ms,
                },
            },
            // A snapshot is only ever taken at or below the high watermark.
            high_watermark: snapshot_end,
            persisted,
            reported_leader: None,
            rng: StdRng::seed_from_u64(rng_seed),
            effects: Vec::new(),
            next_request_id: 0,
            in_flight: BTreeMap::new(),
            now_ms,
            election_retries: 0,
        };
        // Start request ids at a random point so that a late response addressed to a
        // previous incarnation is unlikely to match a request of this one.
        node.next_request_id = u64::from(node.rng.random::<u32>()) << 32;
        let election_deadline_ms = node.random_election_deadline();
        let is_voter = node.is_voter();
        let log_epoch = node.log.last_epoch();
        if log_epoch > record.leader_epoch {
            node.state.epoch = log_epoch;
        } else if record.leader_id == Some(node_id) && is_voter {
            node.state.role = Role::Resigned {
                election_deadline_ms,
            };
        } else if let Some(leader) = record.leader_id.filter(|l| *l != node_id) {
            node.state.role = node.new_follower_role(leader);
        } else {
            node.state.role = Role::Unattached {
                voted_for: record.voted_id.filter(|_| is_voter),
                election_deadline_ms,
            };
        }
        info!(node = %node_id, epoch = %node.state.epoch, role = ?node.role(), "raft node started");
        node.persist_if_changed();
        node.report_leader_if_changed();
        node
    }

    // ----- accessors -------------------------------------------------------------------

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn role(&self) -> RoleKind {
        self.state.role.kind()
    }

    pub fn epoch(&self) -> Epoch {
        self.state.epoch
    }

    /// The leader of the current epoch, if known (the node itself when Leader or Resigned).
    pub fn leader(&self) -> Option<NodeId> {
        match &self.state.role {
            Role::Leader(_) | Role::Resigned { .. } => Some(self.node_id),
            Role::Follower { leader, .. } => Some(*leader),
            Role::Prospective { leader, .. } => *leader,
            Role::Unattached { .. } | Role::Candidate { .. } => None,
        }
    }

    /// As leader, the offset of this epoch's LeaderChange entry: once the high watermark
    /// is above it, everything from earlier epochs is committed. `None` on a non-leader.
    pub fn epoch_start_offset(&self) -> Option<Offset> {
        match &self.state.role {
            Role::Leader(leader) => Some(leader.epoch_start_offset),
            _ => None,
        }
    }

    /// Entries below this offset are committed. Never decreases within one incarnation.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    pub fn is_voter(&self) -> bool {
        self.voters.contains(&self.node_id)
    }

    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().copied()
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    /// Gives the log back (for a restart in tests and simulations).
    pub fn into_log(self) -> L {
        self.log
    }

    /// The earliest time at which [`RaftNode::tick`] has something to do.
    pub fn next_deadline_ms(&self) -> u64 {
        let mut deadline = self
            .in_flight
            .values()
            .map(|f| f.sent_ms + request_timeout_ms(&self.config, f.kind))
            .min()
            .unwrap_or(u64::MAX);
        match &self.state.role {
            Role::Unattached {
                election_deadline_ms,
                ..
            }
            | Role::Prospective {
                election_deadline_ms,
                ..
            }
            | Role::Candidate {
                election_deadline_ms,
                ..
            }
            | Role::Resigned {
                election_deadline_ms,
            } => deadline = deadline.min(*election_deadline_ms),
            Role::Follower {
                fetch_deadline_ms,
                next_fetch_ms,
                ..
            } => {
                deadline = deadline.min(*fetch_deadline_ms);
                if !self.fetch_in_flight() {
                    deadline = deadline.min(*next_fetch_ms);
                }
            }
            Role::Leader(leader) => {
                deadline = deadline
                    .min(leader.check_quorum_deadline_ms)
                    .min(leader.begin_resend_ms)
                    .min(leader.flush_deadline_ms.unwrap_or(u64::MAX));
                for parked in &leader.parked {
                    deadline = deadline.min(parked.deadline_ms);
                }
            }
        }
        deadline
    }

    /// Takes the effects produced so far, in the order they must be executed.
    pub fn poll_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// DescribeQuorum, answered only by the leader (others: NOT_LEADER_OR_FOLLOWER).
    pub fn describe_quorum(&self, now_ms: u64) -> Result<DescribeQuorumData, ErrorCode> {
        let Role::Leader(leader) = &self.state.role else {
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        let describe = |(id, p): (&NodeId, &ReplicaProgress)| ReplicaState {
            replica_id: *id,
            log_end_offset: p.end_offset,
            last_fetch_timestamp_ms: p.last_fetch_ms,
            last_caught_up_timestamp_ms: p.last_caught_up_ms,
        };
        let mut current_voters = vec![ReplicaState {
            replica_id: self.node_id,
            log_end_offset: Some(self.log.end_offset()),
            last_fetch_timestamp_ms: Some(now_ms),
            last_caught_up_timestamp_ms: Some(now_ms),
        }];
        current_voters.extend(leader.voters.iter().map(describe));
        Ok(DescribeQuorumData {
            leader_id: self.node_id,
            leader_epoch: self.state.epoch,
            high_watermark: self.high_watermark,
            current_voters,
            observers: leader.observers.iter().map(describe).collect(),
        })
    }

    // ----- inputs ----------------------------------------------------------------------

    /// Advances time: elections, fetch timeouts, flushes, parked fetches, check quorum.
    pub fn tick(&mut self, now_ms: u64) {
        self.advance_clock(now_ms);
        self.expire_in_flight();
        let now = self.now_ms;
        match &self.state.role {
            Role::Unattached {
                election_deadline_ms,
                ..
            } => {
                if now >= *election_deadline_ms {
                    if self.is_voter() {
                        self.become_prospective();
                    } else {
                        self.discover_leader();
                    }
                }
            }
            Role::Prospective {
                election_deadline_ms,
                leader,
                voted_for,
                ..
            } => {
                if now >= *election_deadline_ms {
                    debug!(node = %self.node_id, "pre-vote timed out");
                    match *leader {
                        Some(leader) => self.become_follower(self.state.epoch, leader),
                        None => self.become_unattached(self.state.epoch, *voted_for),
                    }
                }
            }
            Role::Candidate {
                election_deadline_ms,
                ..
            } => {
                if now >= *election_deadline_ms {
                    self.election_retries = self.election_retries.saturating_add(1);
                    self.become_prospective();
                }
            }
            Role::Leader(_) => self.tick_leader(),
            Role::Follower {
                leader,
                fetch_deadline_ms,
                next_fetch_ms,
                ..
            } => {
                let leader = *leader;
                if now >= *fetch_deadline_ms {
                    info!(node = %self.node_id, %leader, "fetch timeout");
                    if self.is_voter() {
                        self.become_prospective();
                    } else {
                        self.become_unattached(self.state.epoch, None);
                    }
                } else if now >= *next_fetch_ms && !self.fetch_in_flight() {
                    self.send_next_fetch(leader);
                }
            }
            Role::Resigned {
                election_deadline_ms,
            } => {
                if now >= *election_deadline_ms {
                    self.become_unattached(self.state.epoch.next(), None);
                }
            }
        }
    }

    /// Handles a request from another node; the answer comes out as an
    /// [`Effect::SendResponse`] with the same `request_id` (for a parked Fetch, later).
    pub fn handle_request(
        &mut self,
        from: NodeId,
        request_id: RequestId,
        request: Request,
        now_ms: u64,
    ) {
        self.advance_clock(now_ms);
        match request {
            Request::Vote(request) => self.on_vote_request(from, request_id, request),
            Request::BeginQuorumEpoch(request) => self.on_begin_request(request_id, from, request),
            Request::EndQuorumEpoch(request) => self.on_end_request(request_id, from, request),
            Request::Fetch(request) => self.on_fetch_request(from, request_id, request),
            Request::FetchSnapshot(request) => {
                self.on_fetch_snapshot_request(from, request_id, request)
            }
        }
    }

    /// Handles the response to a request this node sent. Responses that do not match an
    /// outstanding request (late, duplicated, from a previous role) are ignored.
    pub fn handle_response(
        &mut self,
        from: NodeId,
        request_id: RequestId,
        response: Response,
        now_ms: u64,
    ) {
        self.advance_clock(now_ms);
        let Some(in_flight) = self.in_flight.get(&request_id).copied() else {
            debug!(node = %self.node_id, %from, request_id, "ignoring unexpected response");
            return;
        };
        let kind = match &response {
            Response::Vote(_) => RequestKind::Vote,
            Response::BeginQuorumEpoch(_) => RequestKind::BeginQuorumEpoch,
            Response::EndQuorumEpoch(_) => RequestKind::EndQuorumEpoch,
            Response::Fetch(_) => RequestKind::Fetch,
            Response::FetchSnapshot(_) => RequestKind::FetchSnapshot,
        };
        if in_flight.to != from || in_flight.kind != kind {
            warn!(node = %self.node_id, %from, request_id, "response does not match its request");
            return;
        }
        self.in_flight.remove(&request_id);
        match response {
            Response::Vote(response) => self.on_vote_response(from, response),
            Response::BeginQuorumEpoch(BeginQuorumEpochResponse {
                leader_id,
                leader_epoch,
                ..
            })
            | Response::EndQuorumEpoch(EndQuorumEpochResponse {
                leader_id,
                leader_epoch,
                ..
            }) => {
                self.observe_leader(leader_epoch, leader_id);
            }
            Response::Fetch(response) => self.on_fetch_response(from, response),
            Response::FetchSnapshot(response) => self.on_fetch_snapshot_response(from, response),
        }
    }

    /// Appends entries as leader. Returns the offset of the last one; it is committed
    /// once the high watermark is above it.
    pub fn propose(&mut self, data: Vec<Bytes>, now_ms: u64) -> Result<Offset, ProposeError> {
        self.advance_clock(now_ms);
        if data.is_empty() {
            return Err(ProposeError::Empty);
        }
        let epoch = self.state.epoch;
        let leader_id = self.leader();
        let Role::Leader(leader) = &mut self.state.role else {
            return Err(ProposeError::NotLeader {
                leader: leader_id,
                epoch,
            });
        };
        let start = self.log.end_offset();
        let entries: Vec<Entry> = data
            .into_iter()
            .enumerate()
            .map(|(i, data)| Entry {
                offset: Offset(start.0 + i as i64),
                epoch,
                kind: EntryKind::Data,
                data,
            })
            .collect();
        let last = Offset(start.0 + entries.len() as i64 - 1);
        leader
            .flush_deadline_ms
            .get_or_insert(self.now_ms + self.config.append_linger_ms);
        self.log.append(&entries);
        self.complete_parked_fetches();
        Ok(last)
    }

    /// Graceful resignation: the leader moves to Resigned and sends EndQuorumEpoch with
    /// the voters ordered by replication progress. No-op on a non-leader.
    pub fn resign(&mut self, now_ms: u64) {
        self.advance_clock(now_ms);
        if matches!(self.state.role, Role::Leader(_)) {
            self.resign_leadership();
        }
    }

    // ----- transitions -----------------------------------------------------------------

    fn transition(&mut self, epoch: Epoch, role: Role) {
        let from = self.state.role.kind();
        let to = role.kind();
        assert!(
            epoch >= self.state.epoch,
            "node {}: epoch must not go back from {} to {epoch}",
            self.node_id,
            self.state.epoch
        );
        assert!(
            transition_allowed(from, to, epoch > self.state.epoch, self.is_voter()),
            "node {}: illegal transition {from:?}@{} -> {to:?}@{epoch}",
            self.node_id,
            self.state.epoch
        );
        debug!(node = %self.node_id, ?from, ?to, %epoch, "transition");
        let old = std::mem::replace(&mut self.state, QuorumState { epoch, role });
        self.in_flight.clear();
        self.persist_if_changed();
        if let Role::Leader(leader) = old.role {
            self.answer_parked_after_leadership(leader.parked);
        }
        self.report_leader_if_changed();
    }

    fn become_unattached(&mut self, epoch: Epoch, voted_for: Option<NodeId>) {
        let election_deadline_ms = self.random_election_deadline();
        self.transition(
            epoch,
            Role::Unattached {
                voted_for,
                election_deadline_ms,
            },
        );
    }

    fn become_follower(&mut self, epoch: Epoch, leader: NodeId) {
        assert_ne!(leader, self.node_id, "a node cannot follow itself");
        let role = self.new_follower_role(leader);
        self.transition(epoch, role);
        self.election_retries = 0;
        self.send_fetch(leader);
    }

    fn new_follower_role(&self, leader: NodeId) -> Role {
        Role::Follower {
            leader,
            fetch_deadline_ms: self.now_ms + self.config.fetch_timeout_ms,
            next_fetch_ms: self.now_ms,
            has_fetched: false,
            leader_resigned: false,
            snapshot: None,
        }
    }

    fn become_prospective(&mut self) {
        let (voted_for, leader) = match &self.state.role {
            Role::Unattached { voted_for, .. } => (*voted_for, None),
            Role::Follower { leader, .. } => (None, Some(*leader)),
            Role::Candidate { .. } => (Some(self.node_id), None),
            other => unreachable_role("become_prospective", other.kind()),
        };
        let election_deadline_ms = self.random_election_deadline();
        let granted = BTreeSet::from([self.node_id]);
        let won = granted.len() >= self.majority();
        self.transition(
            self.state.epoch,
            Role::Prospective {
                voted_for,
                leader,
                granted,
                rejected: BTreeSet::new(),
                election_deadline_ms,
            },
        );
        if won {
            self.become_candidate();
            return;
        }
        info!(node = %self.node_id, epoch = %self.state.epoch, "starting pre-vote");
        self.request_votes(true);
    }

    fn become_candidate(&mut self) {
        let epoch = self.state.epoch.next();
        let election_deadline_ms = self.random_election_deadline();
        let granted = BTreeSet::from([self.node_id]);
        let won = granted.len() >= self.majority();
        self.transition(
            epoch,
            Role::Candidate {
                granted,
                rejected: BTreeSet::new(),
                election_deadline_ms,
            },
        );
        if won {
            self.become_leader();
            return;
        }
        info!(node = %self.node_id, %epoch, "starting election");
        self.request_votes(false);
    }

    fn become_leader(&mut self) {
        let now = self.now_ms;
        let epoch = self.state.epoch;
        let epoch_start_offset = self.log.end_offset();
        let others: Vec<NodeId> = self.other_voters().collect();
        let leader = LeaderState {
            epoch_start_offset,
            voters: others
                .iter()
                .map(|id| (*id, ReplicaProgress::default()))
                .collect(),
            observers: BTreeMap::new(),
            fetched_since_check: BTreeSet::new(),
            check_quorum_deadline_ms: now + self.config.check_quorum_timeout_ms(),
            begin_resend_ms: now + self.config.fetch_timeout_ms / 2,
            flush_deadline_ms: Some(now),
            parked: Vec::new(),
        };
        self.transition(epoch, Role::Leader(Box::new(leader)));
        self.election_retries = 0;
        info!(node = %self.node_id, %epoch, %epoch_start_offset, "became leader");
        self.log.append(&[Entry {
            offset: epoch_start_offset,
            epoch,
            kind: EntryKind::LeaderChange,
            data: Bytes::copy_from_slice(&self.node_id.0.to_be_bytes()),
        }]);
        for voter in others {
            self.send_begin_quorum_epoch(voter);
        }
    }

    fn resign_leadership(&mut self) {
        let Role::Leader(leader) = &self.state.role else {
            return;
        };
        let mut successors: Vec<(Option<Offset>, NodeId)> = leader
            .voters
            .iter()
            .map(|(id, p)| (p.end_offset, *id))
            .collect();
        successors.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let preferred_successors: Vec<NodeId> = successors.into_iter().map(|(_, id)| id).collect();
        let election_deadline_ms = self.random_election_deadline();
        let epoch = self.state.epoch;
        info!(node = %self.node_id, %epoch, "resigning leadership");
        self.transition(
            epoch,
            Role::Resigned {
                election_deadline_ms,
            },
        );
        for voter in preferred_successors.clone() {
            let request = EndQuorumEpochRequest {
                cluster_id: self.config.cluster_id.clone(),
                leader_id: self.node_id,
                leader_epoch: epoch,
                preferred_successors: preferred_successors.clone(),
            };
            self.send_request(
                voter,
                Request::EndQuorumEpoch(request),
                RequestKind::EndQuorumEpoch,
            );
        }
    }

    /// Reacts to a (leader, epoch) learned from a message. Returns true if the node moved.
    fn observe_leader(&mut self, epoch: Epoch, leader: Option<NodeId>) -> bool {
        if epoch > self.state.epoch {
            match leader {
                Some(leader) if leader != self.node_id => self.become_follower(epoch, leader),
                _ => self.become_unattached(epoch, None),
            }
            return true;
        }
        if epoch == self.state.epoch && self.leader().is_none() {
            if let Some(leader) = leader.filter(|l| *l != self.node_id) {
                self.become_follower(epoch, leader);
                return true;
            }
        }
        false
    }

    // ----- helpers ---------------------------------------------------------------------

    fn raise_high_watermark(&mut self, high_watermark: Offset) {
        assert!(
            high_watermark >= self.high_watermark,
            "node {}: high watermark must not go back from {} to {high_watermark}",
            self.node_id,
            self.high_watermark
        );
        assert!(
            high_watermark <= self.log.end_offset(),
            "high watermark beyond the log end"
        );
        if high_watermark > self.high_watermark {
            self.high_watermark = high_watermark;
            self.effects.push(Effect::Committed { high_watermark });
        }
    }

    fn election_record(&self) -> QuorumStateRecord {
        let (leader_id, voted_id) = match &self.state.role {
            Role::Unattached { voted_for, .. } => (None, *voted_for),
            Role::Prospective {
                voted_for, leader, ..
            } => (*leader, *voted_for),
            Role::Candidate { .. } => (None, Some(self.node_id)),
            Role::Leader(_) | Role::Resigned { .. } => (Some(self.node_id), Some(self.node_id)),
            Role::Follower { leader, .. } => (Some(*leader), None),
        };
        QuorumStateRecord {
            leader_epoch: self.state.epoch,
            leader_id,
            voted_id,
        }
    }

    fn persist_if_changed(&mut self) {
        let record = self.election_record();
        if self.persisted != Some(record) {
            if let Some(old) = self.persisted {
                assert!(
                    record.leader_epoch >= old.leader_epoch,
                    "persisted epoch must not decrease"
                );
            }
            self.persisted = Some(record);
            self.effects.push(Effect::PersistQuorumState(record));
        }
    }

    fn report_leader_if_changed(&mut self) {
        let current = (self.state.epoch, self.leader());
        if self.reported_leader != Some(current) {
            self.reported_leader = Some(current);
            self.effects.push(Effect::LeaderChanged {
                epoch: current.0,
                leader: current.1,
            });
        }
    }

    fn send_request(&mut self, to: NodeId, request: Request, kind: RequestKind) {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.in_flight.insert(
            request_id,
            InFlight {
                to,
                kind,
                sent_ms: self.now_ms,
            },
        );
        assert!(
            self.in_flight.len() <= 2 * self.voters.len() + 2,
            "node {}: too many requests in flight",
            self.node_id
        );
        self.effects.push(Effect::SendRequest {
            to,
            request_id,
            request,
        });
    }

    fn send_response(&mut self, to: NodeId, request_id: RequestId, response: Response) {
        self.effects.push(Effect::SendResponse {
            to,
            request_id,
            response,
        });
    }

    fn has_in_flight(&self, kind: RequestKind) -> bool {
        self.in_flight.values().any(|f| f.kind == kind)
    }

    fn expire_in_flight(&mut self) {
        let now = self.now_ms;
        let config = &self.config;
        self.in_flight
            .retain(|_, f| now < f.sent_ms + request_timeout_ms(config, f.kind));
    }

    fn advance_clock(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    fn cluster_id_matches(&self, cluster_id: &Option<String>) -> bool {
        match (&self.config.cluster_id, cluster_id) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        }
    }

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn other_voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.node_id;
        self.voters.iter().copied().filter(move |id| *id != me)
    }

    fn random_election_timeout_ms(&mut self) -> u64 {
        let base = self.config.election_timeout_ms.max(1);
        base + self.rng.random_range(0..base)
    }

    fn random_election_deadline(&mut self) -> u64 {
        self.now_ms + self.random_election_timeout_ms()
    }
}

/// How long a request may stay unanswered. A Fetch or FetchSnapshot gets at most half the
/// fetch timeout, so that one lost request (or response) is retried before the follower
/// gives up on its leader; with Kafka's defaults request and fetch timeouts are both 2 s.
fn request_timeout_ms(config: &RaftConfig, kind: RequestKind) -> u64 {
    match kind {
        RequestKind::Fetch | RequestKind::FetchSnapshot => config
            .request_timeout_ms
            .min(config.fetch_timeout_ms / 2)
            .max(config.fetch_max_wait_ms + 1),
        _ => config.request_timeout_ms,
    }
}

fn unreachable_role(what: &str, role: RoleKind) -> ! {
    panic!("{what} called in role {role:?}")
}
