//! Group and member state.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::api::RequestId;
use crate::records::Reader;

/// The state of a classic group.
///
/// Allowed transitions (anything else is a bug and trips an `assert!`):
///
/// | from                | to                  | when |
/// |---------------------|---------------------|------|
/// | Empty               | PreparingRebalance  | a member joins |
/// | Stable              | PreparingRebalance  | a member joins, rejoins with new protocols, the leader rejoins, leaves, or expires |
/// | CompletingRebalance | PreparingRebalance  | a member joins with new protocols, leaves, expires or does not sync in time |
/// | PreparingRebalance  | CompletingRebalance | the join phase completes with members |
/// | PreparingRebalance  | Empty               | the join phase completes without members |
/// | CompletingRebalance | Stable              | the leader syncs the assignment |
/// | Empty               | Dead                | the group is deleted (DeleteGroups, offsets retention) |
///
/// Replay does not transition: it builds a group directly in Stable (if the
/// record has members) or Empty. Dead groups are removed from the coordinator
/// right away, so no other state follows Dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Members are (re)joining; JoinGroup responses are held.
    PreparingRebalance,
    /// The join phase is over; waiting for the leader's SyncGroup.
    CompletingRebalance,
    /// Members have their assignment.
    Stable,
    /// The group was deleted.
    Dead,
    /// A consumer-protocol group whose target assignment is behind its epoch.
    Assigning,
    /// A consumer-protocol group whose members are moving to their targets.
    Reconciling,
}

impl GroupState {
    /// Kafka's name of the state, as DescribeGroups and ListGroups return it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
        }
    }

    /// Parses a state name case-insensitively (as ListGroups' states filter does).
    pub fn parse(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
            GroupState::Assigning,
            GroupState::Reconciling,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Whether the table above allows `self -> to`.
    pub fn can_transition_to(self, to: GroupState) -> bool {
        use GroupState::*;
        matches!(
            (self, to),
            (Empty | Stable | CompletingRebalance, PreparingRebalance)
                | (PreparingRebalance, CompletingRebalance | Empty)
                | (CompletingRebalance, Stable)
                | (Empty, Dead)
        )
    }
}

/// A member of a group.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// Supported protocols, preferred first.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// A held JoinGroup.
    pub awaiting_join: Option<RequestId>,
    /// A held SyncGroup.
    pub awaiting_sync: Option<RequestId>,
    /// When the session expires without a heartbeat.
    pub session_deadline: i64,
    /// Order of joining; the leader is the earliest.
    pub seq: u64,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub expire_timestamp: Option<i64>,
}

/// The join-phase timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinTimer {
    /// `group.initial.rebalance.delay.ms` of a group that was empty; may be
    /// extended by `remaining_ms` while new members keep joining.
    Initial { deadline: i64, remaining_ms: i64 },
    /// The rebalance timeout; completes early once every member rejoined.
    Rebalance { deadline: i64 },
}

impl JoinTimer {
    pub fn deadline(self) -> i64 {
        match self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Rebalance { deadline } => deadline,
        }
    }
}

/// A group with its members and offsets.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the group entered `state` (None if unknown, e.g. replayed from an old record).
    pub state_timestamp: Option<i64>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// instance id -> member id
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED -> when they expire.
    pub pending_members: BTreeMap<String, i64>,
    pub join_timer: Option<JoinTimer>,
    pub new_member_added: bool,
    /// Members that have not sent SyncGroup since the join phase completed.
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline: Option<i64>,
    pub offsets: BTreeMap<String, BTreeMap<i32, OffsetEntry>>,
    pub next_seq: u64,
    /// The group's consumer-protocol membership, when it uses that protocol (its classic
    /// state then stays Empty).
    pub modern: Option<Box<crate::consumer::ConsumerGroup>>,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Self {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            state_timestamp: Some(now_ms),
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            join_timer: None,
            new_member_added: false,
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            offsets: BTreeMap::new(),
            next_seq: 0,
            modern: None,
        }
    }

    /// Moves to `to`; an illegal transition is a bug.
    pub fn transition(&mut self, to: GroupState, now_ms: i64) {
        assert!(
            self.state.can_transition_to(to),
            "group {}: illegal transition {:?} -> {:?}",
            self.id,
            self.state,
            to
        );
        tracing::debug!(group = %self.id, from = ?self.state, ?to, "group state transition");
        self.state = to;
        self.state_timestamp = Some(now_ms);
        if to != GroupState::PreparingRebalance {
            self.join_timer = None;
            self.new_member_added = false;
        }
        if to != GroupState::CompletingRebalance && to != GroupState::Stable {
            self.pending_sync.clear();
            self.sync_deadline = None;
        }
    }

    /// The tombstones to write when a trivially empty group is dropped: those of its
    /// consumer-protocol records, if it ever wrote any.
    pub fn dropped_records(&self) -> Vec<crate::api::Record> {
        self.modern
            .as_ref()
            .filter(|c| c.group_epoch > 0)
            .map(|c| c.tombstones())
            .unwrap_or_default()
    }

    /// Whether consumer-protocol members are in the group.
    pub fn has_consumer_members(&self) -> bool {
        self.modern.as_ref().is_some_and(|c| !c.members.is_empty())
    }

    /// Whether no member of either protocol is in the group (Kafka's Empty).
    pub fn is_empty(&self) -> bool {
        self.is_in(GroupState::Empty) && !self.has_consumer_members()
    }

    pub fn is_in(&self, state: GroupState) -> bool {
        self.state == state
    }

    /// The largest rebalance timeout of the members (0 without members).
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Members in join order.
    pub fn members_by_seq(&self) -> Vec<&Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.seq);
        v
    }

    /// The earliest joined member satisfying `pred`.
    pub fn first_member(&self, pred: impl Fn(&Member) -> bool) -> Option<String> {
        self.members
            .values()
            .filter(|m| pred(m))
            .min_by_key(|m| m.seq)
            .map(|m| m.id.clone())
    }

    /// Whether a member with these protocols may join (Kafka's rule: an Empty
    /// group takes any non-empty protocol type and protocols; otherwise the type
    /// must match and one protocol must be supported by every current member).
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() && self.is_in(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.members.is_empty() {
            return !protocols.is_empty() && self.protocol_type.as_deref() == Some(protocol_type);
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| m.supports(name)))
    }

    /// Kafka's vote: among the protocols every member supports, each member
    /// votes for its most preferred; most votes wins, ties go to the protocol
    /// the earliest member prefers. `None` without members.
    pub fn select_protocol(&self) -> Option<String> {
        let members = self.members_by_seq();
        let first = members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| members.iter().all(|m| m.supports(n)))
            .collect();
        assert!(
            !candidates.is_empty(),
            "group {}: members share no protocol",
            self.id
        );
        let mut votes = vec![0usize; candidates.len()];
        for m in &members {
            let vote = m
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| *c == n));
            if let Some(i) = vote {
                votes[i] += 1;
            }
        }
        let mut best = 0;
        for (i, v) in votes.iter().enumerate() {
            if *v > votes[best] {
                best = i;
            }
        }
        Some(candidates[best].clone())
    }

    /// The member id a static instance id maps to, if it maps to another one
    /// than `member_id` (then the requester is fenced).
    pub fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|current| current != member_id)
    }

    /// Whether some member's subscription may include `topic`. Only "consumer"
    /// groups are decoded; a subscription that cannot be parsed counts as
    /// subscribed to everything.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        if self.members.is_empty() {
            return false;
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return true;
        }
        for m in self.members.values() {
            let metadatas: Vec<&Bytes> = match &self.protocol_name {
                Some(p) => m
                    .protocols
                    .iter()
                    .filter(|(n, _)| n == p)
                    .map(|(_, b)| b)
                    .collect(),
                None => m.protocols.iter().map(|(_, b)| b).collect(),
            };
            for md in metadatas {
                match parse_subscription_topics(md) {
                    Some(topics) => {
                        if topics.iter().any(|t| t == topic) {
                            return true;
                        }
                    }
                    None => return true,
                }
            }
        }
        false
    }

    /// The topics subscribed to by all members, or None if unknown.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut all = BTreeSet::new();
        for m in self.members.values() {
            all.extend(parse_subscription_topics(&m.metadata(protocol))?);
        }
        Some(all)
    }

    /// True when nothing is left worth keeping in memory.
    pub fn is_trivially_empty(&self) -> bool {
        self.is_empty()
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
            && self.generation == 0
    }
}

/// Parses the topic list of a consumer protocol subscription (int16 version,
/// then an array of int16-length strings); the rest is ignored.
pub(crate) fn parse_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(metadata);
    let _version = r.i16().ok()?;
    let count = r.i32().ok()?;
    if count < 0 {
        return Some(Vec::new());
    }
    let mut topics = Vec::new();
    for _ in 0..count {
        topics.push(r.string().ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_parse() {
        for s in [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ] {
            assert_eq!(GroupState::parse(s.name()), Some(s));
            assert_eq!(GroupState::parse(&s.name().to_lowercase()), Some(s));
        }
        assert_eq!(GroupState::parse("nope"), None);
    }

    #[test]
    fn transition_table() {
        use GroupState::*;
        let all = [Empty, PreparingRebalance, CompletingRebalance, Stable, Dead];
        let allowed = [
            (Empty, PreparingRebalance),
            (Stable, PreparingRebalance),
            (CompletingRebalance, PreparingRebalance),
            (PreparingRebalance, CompletingRebalance),
            (PreparingRebalance, Empty),
            (CompletingRebalance, Stable),
            (Empty, Dead),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "illegal transition")]
    fn illegal_transition_asserts() {
        let mut g = Group::new("g", 0);
        g.transition(GroupState::Stable, 1);
    }

    #[test]
    fn subscription_parsing_is_lenient() {
        let mut b = vec![0u8, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 9, 9];
        assert_eq!(
            parse_subscription_topics(&b),
            Some(vec!["a".to_owned(), "bc".to_owned()])
        );
        b.truncate(9);
        assert_eq!(parse_subscription_topics(&b), None);
        assert_eq!(parse_subscription_topics(&[]), None);
    }
}
