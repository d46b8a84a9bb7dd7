//! Kafka's consumer group protocol (KIP-848): groups whose members heartbeat with
//! ConsumerGroupHeartbeat and get their partitions from the coordinator.
//!
//! The coordinator computes a *target assignment* for the whole group (with a server-side
//! assignor, `uniform` or `range`) each time the group epoch moves past the assignment
//! epoch. The group epoch moves when a member joins, leaves or changes its subscription, or
//! when a subscribed topic appears, goes or grows. Each member then reconciles towards its
//! target one heartbeat at a time: it first gives up the partitions it must lose (it keeps
//! its epoch until it no longer reports them), then takes the new ones, except those another
//! member still holds; those follow on a later heartbeat, once released.
//!
//! Every change is written to `__consumer_offsets` as Kafka writes it
//! ([`crate::consumer_records`]: the group epoch, the subscribed topics' metadata, each
//! member's subscription, target and current assignment, the target's epoch), so a
//! coordinator that restarts or moves carries on with the same members and epochs. A
//! member of a group the coordinator does not know (deleted, or expired) is answered
//! UNKNOWN_MEMBER_ID, so that it joins again, rather than Kafka's GROUP_ID_NOT_FOUND, which
//! librdkafka 2.12 ignores. Resolved regular expressions are not written: they are matched
//! again after a load.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::consumer_records::{ConsumerKey, ConsumerValue, CurrentValue, MemberValue};
use crate::error::ErrorCode;
use crate::state::GroupState;

/// A topic's id (Kafka's UUID, 16 bytes).
pub type TopicId = [u8; 16];

/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// The member epoch of a member leaving the group.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch of a static member leaving for now (it keeps its partitions until its
/// session expires).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// How often a group's regular expressions are matched against new topics at most.
pub const REGEX_REFRESH_MS: i64 = 10_000;

/// The assignors krust implements, by Kafka's short names.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// The topics a heartbeat may subscribe to, as the server's metadata has them.
pub trait TopicView {
    /// Changes whenever a topic is created, deleted or gains partitions.
    fn version(&self) -> u64;
    /// A topic's id and partition count.
    fn topic(&self, name: &str) -> Option<(TopicId, i32)>;
    /// Every topic name a regular expression may match for this requester.
    fn for_each_name(&self, f: &mut dyn FnMut(&str));
}

/// A view without topics (for callers that have no consumer-protocol groups to serve).
pub struct NoTopics;

impl TopicView for NoTopics {
    fn version(&self) -> u64 {
        0
    }
    fn topic(&self, _: &str) -> Option<(TopicId, i32)> {
        None
    }
    fn for_each_name(&self, _: &mut dyn FnMut(&str)) {}
}

/// ConsumerGroupHeartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeartbeatRequest {
    /// The request's version (v1 clients choose their member id).
    pub api_version: i16,
    /// The group id.
    pub group_id: String,
    /// The member id.
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member leaving for now.
    pub member_epoch: i32,
    /// The static member's `group.instance.id` (null when unchanged).
    pub instance_id: Option<String>,
    /// The rack (null when unchanged).
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    /// Null when unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Null when unchanged; "" for none.
    pub subscribed_topic_regex: Option<String>,
    /// Null when unchanged.
    pub server_assignor: Option<String>,
    /// The partitions the member owns; null when unchanged.
    pub topic_partitions: Option<Vec<(TopicId, Vec<i32>)>>,
    /// The client id of the request header.
    pub client_id: String,
    /// The client's host, as Kafka shows it ("/127.0.0.1").
    pub client_host: String,
    /// The group's own `consumer.session.timeout.ms`, if set.
    pub session_timeout_ms: Option<i32>,
    /// The group's own `consumer.heartbeat.interval.ms`, if set.
    pub heartbeat_interval_ms: Option<i32>,
}

/// The ConsumerGroupHeartbeat response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeartbeatResponse {
    /// The error.
    pub error: ErrorCode,
    /// Its message.
    pub message: Option<String>,
    /// The member id.
    pub member_id: Option<String>,
    /// The member epoch.
    pub member_epoch: i32,
    /// How often the member is to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The partitions the member may use now, when they changed (or it asked in full).
    pub assignment: Option<Vec<(TopicId, Vec<i32>)>>,
}

impl ConsumerHeartbeatResponse {
    pub(crate) fn error(error: ErrorCode, message: impl Into<String>) -> Self {
        ConsumerHeartbeatResponse {
            error,
            message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerMember {
    /// The member id.
    pub member_id: String,
    /// The instance id.
    pub instance_id: Option<String>,
    /// The rack.
    pub rack_id: Option<String>,
    /// The member epoch.
    pub member_epoch: i32,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_topic_names: Vec<String>,
    /// The subscribed regular expression, if any.
    pub subscribed_topic_regex: Option<String>,
    /// What it has.
    pub assignment: Assignment,
    /// What it is to have.
    pub target_assignment: Assignment,
    /// Whether it speaks the classic protocol (JoinGroup, SyncGroup, Heartbeat).
    pub classic: bool,
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerGroup {
    /// INVALID_GROUP_ID, GROUP_ID_NOT_FOUND (unknown or classic) or none.
    pub error: ErrorCode,
    /// The error's message.
    pub message: Option<String>,
    /// The group id.
    pub group_id: String,
    /// Empty, Assigning, Reconciling or Stable.
    pub state: String,
    /// The group epoch.
    pub group_epoch: i32,
    /// The target assignment's epoch.
    pub assignment_epoch: i32,
    /// The assignor in use.
    pub assignor: String,
    /// The members, by member id.
    pub members: Vec<DescribedConsumerMember>,
    /// Topic names by id, for the assignments (from the group's subscribed topics).
    pub topic_names: BTreeMap<TopicId, String>,
}

/// Where a member is in its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// It has its target at the target's epoch.
    Stable,
    /// It still owns partitions it must give up.
    UnrevokedPartitions,
    /// Some of its target is still held by other members.
    UnreleasedPartitions,
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    /// Sorted, without duplicates.
    pub topic_names: Vec<String>,
    /// "" for none.
    pub regex: String,
    pub assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub revoking: Assignment,
    pub session_deadline: i64,
    /// When it must have given up its partitions, and the epoch that deadline is for.
    pub rebalance_deadline: Option<(i64, i32)>,
    /// Set for a member speaking the classic protocol.
    pub classic: Option<ClassicMember>,
}

/// What a member speaking the classic protocol (JoinGroup, SyncGroup, Heartbeat) adds:
/// Kafka's `ClassicMemberMetadata`, and its timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassicMember {
    /// Its JoinGroup's session timeout.
    pub session_timeout_ms: i32,
    /// Its JoinGroup's protocols (name, metadata), in its order.
    pub protocols: Vec<(String, bytes::Bytes)>,
    /// When it must have rejoined, once told to (REBALANCE_IN_PROGRESS).
    pub join_deadline: Option<i64>,
    /// When it must have sent SyncGroup after its JoinGroup.
    pub sync_deadline: Option<i64>,
}

/// Which way groups with members may move between the classic and the consumer protocol
/// (`group.consumer.migration.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Both ways (Kafka's default).
    Bidirectional,
    /// Classic groups become consumer groups when a consumer-protocol member joins.
    Upgrade,
    /// Consumer groups become classic when their last consumer-protocol member leaves.
    Downgrade,
    /// Neither: a group with members keeps its protocol.
    Disabled,
}

impl MigrationPolicy {
    /// Parses Kafka's names, case-insensitively.
    pub fn parse(s: &str) -> Option<MigrationPolicy> {
        [
            MigrationPolicy::Bidirectional,
            MigrationPolicy::Upgrade,
            MigrationPolicy::Downgrade,
            MigrationPolicy::Disabled,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            MigrationPolicy::Bidirectional => "bidirectional",
            MigrationPolicy::Upgrade => "upgrade",
            MigrationPolicy::Downgrade => "downgrade",
            MigrationPolicy::Disabled => "disabled",
        }
    }

    /// Whether a classic group with members may become a consumer group.
    pub fn upgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Upgrade
        )
    }

    /// Whether a consumer group of classic members may become a classic group.
    pub fn downgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Downgrade
        )
    }
}

/// A consumer group's membership and assignments.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerGroup {
    /// The group id.
    pub id: String,
    /// Records of the changes made, for the caller to persist (drained by it).
    pub records: Vec<crate::api::Record>,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Instance id -> member id.
    pub instances: BTreeMap<String, String>,
    /// Member id -> its target.
    pub target: BTreeMap<String, Assignment>,
    /// Subscribed topics (by name or regex) that exist: name -> (id, partitions).
    pub metadata: BTreeMap<String, (TopicId, i32)>,
    pub metadata_version: Option<u64>,
    /// Regular expression -> the topic names it matched.
    pub regexes: BTreeMap<String, BTreeSet<String>>,
    pub regex_version: Option<u64>,
    /// When the regular expressions were last matched against new topics.
    pub regex_refreshed_at: i64,
    /// The expressions compiled, by their text.
    pub compiled: HashMap<String, regex::Regex>,
    /// Partition -> the member holding it (assigned or being revoked).
    pub owners: HashMap<(TopicId, i32), String>,
}

/// Settings of consumer groups (Kafka's `group.consumer.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms` (45000).
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (5000).
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size` (unlimited when `None`).
    pub max_size: Option<usize>,
    /// `group.consumer.assignors`, short names, the default first.
    pub assignors: Vec<String>,
    /// `group.consumer.max.session.timeout.ms` (60000): no group's own session timeout is
    /// longer, so members loaded from the log get that long to heartbeat first.
    pub max_session_timeout_ms: i32,
    /// `group.consumer.migration.policy` (bidirectional).
    pub migration: MigrationPolicy,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: None,
            assignors: ASSIGNORS.iter().map(|s| s.to_string()).collect(),
            max_session_timeout_ms: 60_000,
            migration: MigrationPolicy::Bidirectional,
        }
    }
}

impl ConsumerGroup {
    /// Kafka's state of the group.
    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            GroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.state != MemberState::Stable || m.epoch != self.assignment_epoch)
        {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    /// Topic names some member subscribes to, by name or through a regular expression.
    pub fn subscribed_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for m in self.members.values() {
            names.extend(m.topic_names.iter().cloned());
            if let Some(r) = self.regexes.get(&m.regex) {
                names.extend(r.iter().cloned());
            }
        }
        names
    }

    /// The topics whose offsets the group's members still use: those subscribed, and those
    /// of the last computed subscription (which holds what regular expressions matched
    /// before a load, until they are matched again).
    pub fn topics_in_use(&self) -> BTreeSet<String> {
        let mut names = self.subscribed_names();
        if !self.members.is_empty() {
            names.extend(self.metadata.keys().cloned());
        }
        names
    }

    fn regex_in_use(&self) -> BTreeSet<String> {
        self.members
            .values()
            .filter(|m| !m.regex.is_empty())
            .map(|m| m.regex.clone())
            .collect()
    }

    /// Sets a member's assigned and revoking partitions, keeping `owners` in step.
    pub(crate) fn set_partitions(
        &mut self,
        member_id: &str,
        assigned: Assignment,
        revoking: Assignment,
    ) {
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        for (t, parts) in m.assigned.iter().chain(m.revoking.iter()) {
            for p in parts {
                if self.owners.get(&(*t, *p)).map(String::as_str) == Some(member_id) {
                    self.owners.remove(&(*t, *p));
                }
            }
        }
        for (t, parts) in assigned.iter().chain(revoking.iter()) {
            for p in parts {
                self.owners.insert((*t, *p), member_id.to_owned());
            }
        }
        m.assigned = assigned;
        m.revoking = revoking;
    }

    /// A static member's instance comes back under a new member id: it takes over what the
    /// old one had, and its target.
    pub(crate) fn take_over(&mut self, holder: &str, member_id: &str, instance: &str) {
        let old = self.members.get(holder).cloned();
        let target = self.target.remove(holder);
        self.drop_member(holder);
        if let Some(mut m) = old {
            let assigned = std::mem::take(&mut m.assigned);
            m.id = member_id.to_owned();
            m.epoch = 0;
            m.previous_epoch = 0;
            m.state = MemberState::Stable;
            m.revoking = Assignment::new();
            m.rebalance_deadline = None;
            self.members.insert(member_id.to_owned(), m);
            self.set_partitions(member_id, assigned, Assignment::new());
        }
        if let Some(t) = target {
            self.target.insert(member_id.to_owned(), t);
            self.record_target(member_id);
        }
        self.instances
            .insert(instance.to_owned(), member_id.to_owned());
    }

    /// Takes a member out of the group, releasing its partitions; the group epoch moves.
    pub fn remove_member(&mut self, member_id: &str) {
        self.drop_member(member_id);
        self.group_epoch = self.group_epoch.wrapping_add(1);
        self.record_epoch();
    }

    /// Takes a member out (tombstones for its records), without moving the group epoch.
    pub(crate) fn drop_member(&mut self, member_id: &str) {
        self.set_partitions(member_id, Assignment::new(), Assignment::new());
        if let Some(m) = self.members.remove(member_id) {
            if let Some(i) = &m.instance_id {
                if self.instances.get(i).map(String::as_str) == Some(member_id) {
                    self.instances.remove(i);
                }
            }
        }
        self.target.remove(member_id);
        let (g, m) = (self.id.clone(), member_id.to_owned());
        for key in [
            ConsumerKey::CurrentAssignment(g.clone(), m.clone()),
            ConsumerKey::TargetMember(g.clone(), m.clone()),
            ConsumerKey::Member(g, m),
        ] {
            self.records.push((key.encode(), None));
        }
    }

    pub(crate) fn record(&mut self, key: ConsumerKey, value: ConsumerValue) {
        self.records.push((key.encode(), Some(value.encode())));
    }

    pub(crate) fn record_epoch(&mut self) {
        self.record(
            ConsumerKey::Metadata(self.id.clone()),
            ConsumerValue::Metadata(self.group_epoch),
        );
    }

    pub(crate) fn record_subscription(&mut self, member_id: &str) {
        if let Some(m) = self.members.get(member_id) {
            let value = ConsumerValue::Member(MemberValue {
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                topic_names: m.topic_names.clone(),
                regex: (!m.regex.is_empty()).then(|| m.regex.clone()),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: m.assignor.clone(),
                classic: m
                    .classic
                    .as_ref()
                    .map(|c| (c.session_timeout_ms, c.protocols.clone())),
            });
            self.record(
                ConsumerKey::Member(self.id.clone(), member_id.to_owned()),
                value,
            );
        }
    }

    pub(crate) fn record_current(&mut self, member_id: &str) {
        if let Some(m) = self.members.get(member_id) {
            let value = ConsumerValue::CurrentAssignment(CurrentValue {
                epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                state: match m.state {
                    MemberState::Stable => 0,
                    MemberState::UnrevokedPartitions => 1,
                    MemberState::UnreleasedPartitions => 2,
                },
                assigned: m.assigned.clone(),
                revoking: m.revoking.clone(),
            });
            self.record(
                ConsumerKey::CurrentAssignment(self.id.clone(), member_id.to_owned()),
                value,
            );
        }
    }

    pub(crate) fn record_target(&mut self, member_id: &str) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        self.record(
            ConsumerKey::TargetMember(self.id.clone(), member_id.to_owned()),
            ConsumerValue::TargetMember(target),
        );
    }

    fn record_metadata(&mut self) {
        let topics = self
            .metadata
            .iter()
            .map(|(name, (id, n))| (*id, name.clone(), *n))
            .collect();
        self.record(
            ConsumerKey::PartitionMetadata(self.id.clone()),
            ConsumerValue::PartitionMetadata(topics),
        );
    }

    /// Every record of the group as it stands, for a rewrite of the log.
    pub fn snapshot_records(&self) -> Vec<crate::api::Record> {
        let mut c = self.clone();
        c.records.clear();
        c.write_all();
        c.records
    }

    pub(crate) fn write_all(&mut self) {
        self.record_epoch();
        self.record_metadata();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            self.record_subscription(id);
            self.record_target(id);
            self.record_current(id);
        }
        self.record(
            ConsumerKey::TargetMetadata(self.id.clone()),
            ConsumerValue::TargetMetadata(self.assignment_epoch),
        );
    }

    /// The tombstones of the group's own records (its members have none left).
    pub fn tombstones(&self) -> Vec<crate::api::Record> {
        let g = self.id.clone();
        [
            ConsumerKey::TargetMetadata(g.clone()),
            ConsumerKey::PartitionMetadata(g.clone()),
            ConsumerKey::Metadata(g),
        ]
        .into_iter()
        .map(|k| (k.encode(), None))
        .collect()
    }

    /// Applies one of the group's records (log order), rebuilding its state; a member's
    /// session starts at `session_deadline`.
    pub fn replay(
        &mut self,
        key: ConsumerKey,
        value: Option<ConsumerValue>,
        session_deadline: i64,
    ) {
        match (key, value) {
            (ConsumerKey::Metadata(_), Some(ConsumerValue::Metadata(e))) => self.group_epoch = e,
            (ConsumerKey::PartitionMetadata(_), v) => {
                self.metadata = match v {
                    Some(ConsumerValue::PartitionMetadata(t)) => {
                        t.into_iter().map(|(id, name, n)| (name, (id, n))).collect()
                    }
                    _ => BTreeMap::new(),
                };
            }
            (ConsumerKey::TargetMetadata(_), v) => {
                self.assignment_epoch = match v {
                    Some(ConsumerValue::TargetMetadata(e)) => e,
                    _ => 0,
                };
            }
            (ConsumerKey::Member(_, m), Some(ConsumerValue::Member(v))) => {
                let member = self
                    .members
                    .entry(m.clone())
                    .or_insert_with(|| new_member(&m, session_deadline));
                member.instance_id = v.instance_id.clone();
                member.rack_id = v.rack_id;
                member.client_id = v.client_id;
                member.client_host = v.client_host;
                member.topic_names = v.topic_names;
                member.regex = v.regex.unwrap_or_default();
                member.rebalance_timeout_ms = v.rebalance_timeout_ms;
                member.assignor = v.server_assignor;
                member.session_deadline = session_deadline;
                member.classic = v
                    .classic
                    .map(|(session_timeout_ms, protocols)| ClassicMember {
                        session_timeout_ms,
                        protocols,
                        join_deadline: None,
                        sync_deadline: None,
                    });
                if let Some(i) = v.instance_id {
                    self.instances.insert(i, m);
                }
            }
            (ConsumerKey::Member(_, m), None) => {
                self.drop_member(&m);
                self.records.clear();
            }
            (ConsumerKey::TargetMember(_, m), v) => match v {
                Some(ConsumerValue::TargetMember(a)) => {
                    self.target.insert(m, a);
                }
                _ => {
                    self.target.remove(&m);
                }
            },
            (ConsumerKey::CurrentAssignment(_, m), v) => {
                let Some(ConsumerValue::CurrentAssignment(c)) = v else {
                    self.set_partitions(&m, Assignment::new(), Assignment::new());
                    return;
                };
                let member = self
                    .members
                    .entry(m.clone())
                    .or_insert_with(|| new_member(&m, session_deadline));
                member.epoch = c.epoch;
                member.previous_epoch = c.previous_epoch;
                member.state = match c.state {
                    1 => MemberState::UnrevokedPartitions,
                    2 => MemberState::UnreleasedPartitions,
                    _ => MemberState::Stable,
                };
                member.session_deadline = session_deadline;
                if member.state == MemberState::UnrevokedPartitions {
                    let timeout = i64::from(member.rebalance_timeout_ms.max(0));
                    // A member that was giving partitions up gets a full rebalance
                    // timeout from the load.
                    member.rebalance_deadline =
                        Some((session_deadline.saturating_add(timeout), c.epoch));
                }
                self.set_partitions(&m, c.assigned, c.revoking);
            }
            _ => {}
        }
    }

    /// The earliest session or rebalance deadline.
    pub fn next_deadline(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| {
                std::iter::once(m.session_deadline)
                    .chain(m.rebalance_deadline.map(|d| d.0))
                    .chain(
                        m.classic
                            .iter()
                            .flat_map(|c| c.join_deadline.into_iter().chain(c.sync_deadline)),
                    )
            })
            .min()
    }

    /// Members whose session expired, who kept partitions past their rebalance timeout, or
    /// (classic members) who did not rejoin or sync in time. Deadlines of an epoch that moved
    /// on are dropped.
    pub fn expired(&mut self, now: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now
                    || m.rebalance_deadline
                        .is_some_and(|(d, e)| d <= now && e == m.epoch)
                    || m.classic.as_ref().is_some_and(|c| {
                        c.join_deadline.is_some_and(|d| d <= now)
                            || c.sync_deadline.is_some_and(|d| d <= now)
                    })
            })
            .map(|m| m.id.clone())
            .collect();
        for m in self.members.values_mut() {
            if m.rebalance_deadline.is_some_and(|(_, e)| e != m.epoch) {
                m.rebalance_deadline = None;
            }
        }
        gone
    }
}

/// What a heartbeat does to a consumer group, once the request is valid and the group
/// found (or made). Returns the response.
pub(crate) fn heartbeat(
    g: &mut ConsumerGroup,
    group_id: &str,
    req: &ConsumerHeartbeatRequest,
    member_id: String,
    topics: &dyn TopicView,
    config: &ConsumerGroupConfig,
    now: i64,
) -> ConsumerHeartbeatResponse {
    let epoch = req.member_epoch;
    let owned = req.topic_partitions.as_ref().map(|v| to_assignment(v));
    if epoch == LEAVE_EPOCH || epoch == STATIC_LEAVE_EPOCH {
        return leave(g, group_id, req, member_id);
    }
    let mut prior = g.members.get(&member_id).cloned();
    if let Some(max) = config.max_size {
        if g.members.len() >= max && !g.members.contains_key(&member_id) {
            return ConsumerHeartbeatResponse::error(
                ErrorCode::GroupMaxSizeReached,
                format!("The consumer group has reached its maximum capacity of {max} members."),
            );
        }
    }
    // Find or make the member.
    let mut bump = false;
    if epoch == 0 {
        let existing = g.members.get(&member_id).map(|m| m.instance_id.clone());
        if let Some(was) = existing.filter(|was| *was != req.instance_id) {
            // The id comes back as another (or no) static member: the old one goes first.
            tracing::debug!(member = %member_id, ?was, "member rejoins under another instance id");
            g.remove_member(&member_id);
            prior = None;
        }
    }
    match &req.instance_id {
        Some(instance) => match g.instances.get(instance).cloned() {
            Some(holder) if holder != member_id => {
                if epoch != 0 {
                    return ConsumerHeartbeatResponse::error(
                        ErrorCode::FencedInstanceId,
                        format!(
                            "Static member {member_id} with instance id {instance} was fenced by member {holder}."
                        ),
                    );
                }
                // A classic member's instance is taken over at once (a rolling upgrade of
                // static members); a consumer-protocol one must have left for now first.
                let held = g
                    .members
                    .get(&holder)
                    .map(|m| (m.epoch, m.classic.is_some()));
                if !matches!(held, Some((STATIC_LEAVE_EPOCH, _) | (_, true))) {
                    return ConsumerHeartbeatResponse::error(
                        ErrorCode::UnreleasedInstanceId,
                        format!(
                            "Static member {member_id} with instance id {instance} cannot join the group because the instance id is owned by {holder} member."
                        ),
                    );
                }
                g.take_over(&holder, &member_id, instance);
            }
            Some(_) => {
                if let Some(e) = check_epoch(g, &member_id, epoch, owned.as_ref()) {
                    return e;
                }
            }
            None if epoch == 0 => {
                let mut m = new_member(&member_id, now);
                m.instance_id = Some(instance.clone());
                g.members.insert(member_id.clone(), m);
                g.instances.insert(instance.clone(), member_id.clone());
                bump = true;
            }
            None => {
                return ConsumerHeartbeatResponse::error(
                    ErrorCode::UnknownMemberId,
                    format!("Instance id {instance} is unknown."),
                )
            }
        },
        None => {
            if !g.members.contains_key(&member_id) {
                if epoch != 0 {
                    return ConsumerHeartbeatResponse::error(
                        ErrorCode::UnknownMemberId,
                        format!("Member {member_id} is not a member of group {group_id}."),
                    );
                }
                g.members
                    .insert(member_id.clone(), new_member(&member_id, now));
                bump = true;
            } else if let Some(e) = check_epoch(g, &member_id, epoch, owned.as_ref()) {
                return e;
            }
        }
    }
    let before = g
        .members
        .get(&member_id)
        .map(|m| m.assigned.clone())
        .unwrap_or_default();
    // Take the request's changes.
    let mut regex_changed = false;
    if let Some(m) = g.members.get_mut(&member_id) {
        // It speaks the consumer protocol now.
        m.classic = None;
        m.client_id.clone_from(&req.client_id);
        m.client_host.clone_from(&req.client_host);
        if let Some(r) = &req.rack_id {
            m.rack_id = Some(r.clone());
        }
        if req.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(a) = &req.server_assignor {
            m.assignor = Some(a.clone());
        }
        if let Some(names) = &req.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            if names != m.topic_names {
                m.topic_names = names;
                bump = true;
            }
        }
        if let Some(r) = &req.subscribed_topic_regex {
            if *r != m.regex {
                m.regex.clone_from(r);
                regex_changed = true;
                bump = true;
            }
        }
    }
    advance(
        g,
        &member_id,
        prior.as_ref(),
        bump,
        regex_changed,
        owned.as_ref(),
        topics,
        config,
        now,
    );
    let Some(m) = g.members.get_mut(&member_id) else {
        return ConsumerHeartbeatResponse::error(ErrorCode::UnknownServerError, "member lost");
    };
    let session_timeout_ms = req.session_timeout_ms.unwrap_or(config.session_timeout_ms);
    m.session_deadline = now + i64::from(session_timeout_ms);
    if m.state == MemberState::UnrevokedPartitions {
        if m.rebalance_deadline.is_none_or(|(_, e)| e != m.epoch) {
            m.rebalance_deadline = Some((now + i64::from(m.rebalance_timeout_ms.max(0)), m.epoch));
        }
    } else {
        m.rebalance_deadline = None;
    }
    let full = req.rebalance_timeout_ms != -1
        && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
        && req.topic_partitions.is_some();
    let assignment =
        (epoch == 0 || full || m.assigned != before).then(|| from_assignment(&m.assigned));
    ConsumerHeartbeatResponse {
        error: ErrorCode::None,
        message: None,
        member_id: Some(member_id),
        member_epoch: m.epoch,
        heartbeat_interval_ms: req
            .heartbeat_interval_ms
            .unwrap_or(config.heartbeat_interval_ms),
        assignment,
    }
}

/// After a member's own changes: matches regular expressions, refreshes the subscribed
/// topics' metadata, moves the group epoch (`bump`, or the metadata changed), computes the
/// target when the epoch moved, and reconciles the member with what it says it `owned`,
/// recording what changed. `prior` is the member before the request.
#[allow(clippy::too_many_arguments)]
pub(crate) fn advance(
    g: &mut ConsumerGroup,
    member_id: &str,
    prior: Option<&ConsumerMember>,
    mut bump: bool,
    regex_changed: bool,
    owned: Option<&Assignment>,
    topics: &dyn TopicView,
    config: &ConsumerGroupConfig,
    now: i64,
) {
    // Regular expressions are matched when one is new, and again against newer topics at
    // most every REGEX_REFRESH_MS (as Kafka batches these refreshes). A view older than
    // the one last seen (a heartbeat that read the metadata before another) is not used.
    let version = topics.version();
    let newer = |seen: Option<u64>| seen.is_none_or(|v| version > v);
    // Most groups have none: their heartbeats skip this.
    let uses_regex = !g.regexes.is_empty() || g.members.values().any(|m| !m.regex.is_empty());
    let in_use = if uses_regex {
        g.regex_in_use()
    } else {
        BTreeSet::new()
    };
    let unresolved = in_use.iter().any(|r| !g.regexes.contains_key(r));
    let due = newer(g.regex_version) && now >= g.regex_refreshed_at + REGEX_REFRESH_MS;
    if uses_regex && (regex_changed || unresolved || due || in_use.len() != g.regexes.len()) {
        let refresh = due || g.regex_version.is_none();
        let mut resolved = BTreeMap::new();
        for r in &in_use {
            let matched = match g.regexes.get(r) {
                Some(m) if !refresh => m.clone(),
                _ => resolve(&mut g.compiled, r, topics),
            };
            resolved.insert(r.clone(), matched);
        }
        g.compiled.retain(|r, _| in_use.contains(r));
        // Only what the expressions in use match counts: one no longer used goes quietly.
        let before: BTreeMap<String, BTreeSet<String>> = g
            .regexes
            .iter()
            .filter(|(r, _)| in_use.contains(*r))
            .map(|(r, m)| (r.clone(), m.clone()))
            .collect();
        // The first match after a load is the baseline: what it changes shows in the
        // topics' metadata, compared below with the one written.
        if resolved != before && g.regex_version.is_some() {
            bump = true;
        }
        g.regexes = resolved;
        if refresh {
            g.regex_version = Some(version);
            g.regex_refreshed_at = now;
        }
    }
    if bump || newer(g.metadata_version) {
        let mut metadata = BTreeMap::new();
        for name in g.subscribed_names() {
            if let Some(t) = topics.topic(&name) {
                metadata.insert(name, t);
            }
        }
        if metadata != g.metadata {
            g.metadata = metadata;
            g.record_metadata();
            bump = true;
        }
        g.metadata_version = Some(version);
    }
    let subscription_changed = match (prior, g.members.get(member_id)) {
        (Some(b), Some(a)) => {
            (&b.instance_id, &b.rack_id, &b.client_id, &b.client_host)
                != (&a.instance_id, &a.rack_id, &a.client_id, &a.client_host)
                || (
                    &b.topic_names,
                    &b.regex,
                    b.rebalance_timeout_ms,
                    &b.assignor,
                ) != (
                    &a.topic_names,
                    &a.regex,
                    a.rebalance_timeout_ms,
                    &a.assignor,
                )
                || classic_metadata(b) != classic_metadata(a)
        }
        (None, Some(_)) => true,
        _ => false,
    };
    if subscription_changed {
        g.record_subscription(member_id);
    }
    if bump {
        g.group_epoch = g.group_epoch.wrapping_add(1);
        g.record_epoch();
    }
    if g.group_epoch > g.assignment_epoch {
        let assignor = preferred_assignor(g, config);
        let target = compute_target(g, &assignor);
        let old = std::mem::replace(&mut g.target, target);
        g.assignment_epoch = g.group_epoch;
        let changed: Vec<String> = g
            .target
            .iter()
            .filter(|(id, t)| old.get(*id) != Some(*t))
            .map(|(id, _)| id.clone())
            .collect();
        for id in changed {
            g.record_target(&id);
        }
        g.record(
            ConsumerKey::TargetMetadata(g.id.clone()),
            ConsumerValue::TargetMetadata(g.assignment_epoch),
        );
    }
    reconcile(g, member_id, owned);
    let current_changed = match (prior, g.members.get(member_id)) {
        (Some(b), Some(a)) => {
            (b.epoch, b.previous_epoch, b.state) != (a.epoch, a.previous_epoch, a.state)
                || b.assigned != a.assigned
                || b.revoking != a.revoking
        }
        (None, Some(_)) => true,
        _ => false,
    };
    if current_changed {
        g.record_current(member_id);
    }
}

/// What is recorded of a classic member's protocol.
fn classic_metadata(m: &ConsumerMember) -> Option<(i32, &[(String, bytes::Bytes)])> {
    m.classic
        .as_ref()
        .map(|c| (c.session_timeout_ms, c.protocols.as_slice()))
}

pub(crate) fn new_member(id: &str, now: i64) -> ConsumerMember {
    ConsumerMember {
        id: id.to_owned(),
        instance_id: None,
        rack_id: None,
        client_id: String::new(),
        client_host: String::new(),
        rebalance_timeout_ms: 300_000,
        topic_names: Vec::new(),
        regex: String::new(),
        assignor: None,
        epoch: 0,
        previous_epoch: -1,
        state: MemberState::Stable,
        assigned: Assignment::new(),
        revoking: Assignment::new(),
        session_deadline: now,
        rebalance_deadline: None,
        classic: None,
    }
}

/// A member's epoch must be its own, or its previous one with no partitions it does not
/// have (its last response was lost). Epoch 0 rejoins and is always accepted.
fn check_epoch(
    g: &ConsumerGroup,
    member_id: &str,
    epoch: i32,
    owned: Option<&Assignment>,
) -> Option<ConsumerHeartbeatResponse> {
    let m = g.members.get(member_id)?;
    if epoch == 0 {
        return None;
    }
    let fenced = if epoch > m.epoch {
        true
    } else if epoch < m.epoch {
        !(epoch == m.previous_epoch && owned.is_some_and(|o| is_subset(o, &m.assigned)))
    } else {
        false
    };
    fenced.then(|| {
        let side = if epoch > m.epoch { "greater" } else { "smaller" };
        ConsumerHeartbeatResponse::error(
            ErrorCode::FencedMemberEpoch,
            format!(
                "The consumer group member has a {side} member epoch ({epoch}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                m.epoch
            ),
        )
    })
}

fn leave(
    g: &mut ConsumerGroup,
    group_id: &str,
    req: &ConsumerHeartbeatRequest,
    member_id: String,
) -> ConsumerHeartbeatResponse {
    let id = match &req.instance_id {
        Some(instance) => match g.instances.get(instance) {
            None => {
                return ConsumerHeartbeatResponse::error(
                    ErrorCode::UnknownMemberId,
                    format!("Instance id {instance} is unknown."),
                )
            }
            Some(holder) if *holder != member_id => {
                return ConsumerHeartbeatResponse::error(
                    ErrorCode::FencedInstanceId,
                    format!(
                        "Static member {member_id} with instance id {instance} was fenced by member {holder}."
                    ),
                )
            }
            Some(holder) => holder.clone(),
        },
        None if g.members.contains_key(&member_id) => member_id.clone(),
        None => {
            return ConsumerHeartbeatResponse::error(
                ErrorCode::UnknownMemberId,
                format!("Member {member_id} is not a member of group {group_id}."),
            )
        }
    };
    if req.member_epoch == STATIC_LEAVE_EPOCH {
        // It keeps its partitions (held at epoch -2) until it comes back or its session
        // expires.
        let assigned = g
            .members
            .get(&id)
            .map(|m| m.assigned.clone())
            .unwrap_or_default();
        g.set_partitions(&id, assigned, Assignment::new());
        if let Some(m) = g.members.get_mut(&id) {
            m.previous_epoch = m.epoch;
            m.epoch = STATIC_LEAVE_EPOCH;
            m.state = MemberState::Stable;
            m.rebalance_deadline = None;
        }
        g.record_current(&id);
    } else {
        g.remove_member(&id);
    }
    ConsumerHeartbeatResponse {
        member_id: Some(member_id),
        member_epoch: req.member_epoch,
        ..Default::default()
    }
}

/// Moves a member towards its target (Kafka's CurrentAssignmentBuilder).
fn reconcile(g: &mut ConsumerGroup, member_id: &str, owned: Option<&Assignment>) {
    let target_epoch = g.assignment_epoch;
    let Some(m) = g.members.get(member_id) else {
        return;
    };
    let from_epoch = match m.state {
        MemberState::Stable if m.epoch == target_epoch => return,
        MemberState::Stable | MemberState::UnreleasedPartitions => m.epoch,
        MemberState::UnrevokedPartitions => {
            // It keeps waiting until it reports none of the partitions it gives up.
            let released = owned.is_some_and(|o| !intersects(o, &m.revoking));
            if !released {
                return;
            }
            m.epoch.wrapping_add(1)
        }
    };
    let empty = Assignment::new();
    let target = g.target.get(member_id).unwrap_or(&empty);
    let mut kept = Assignment::new();
    let mut revoking = Assignment::new();
    let mut gaining = Assignment::new();
    let mut withheld = false;
    let topics: BTreeSet<TopicId> = target.keys().chain(m.assigned.keys()).copied().collect();
    for t in topics {
        let current = m.assigned.get(&t).cloned().unwrap_or_default();
        let wanted = target.get(&t).cloned().unwrap_or_default();
        let keep: BTreeSet<i32> = current.intersection(&wanted).copied().collect();
        let lose: BTreeSet<i32> = current.difference(&keep).copied().collect();
        let mut gain = BTreeSet::new();
        for p in wanted.difference(&keep) {
            match g.owners.get(&(t, *p)) {
                Some(holder) if holder != member_id => withheld = true,
                _ => {
                    gain.insert(*p);
                }
            }
        }
        if !keep.is_empty() {
            kept.insert(t, keep);
        }
        if !lose.is_empty() {
            revoking.insert(t, lose);
        }
        if !gain.is_empty() {
            gaining.insert(t, gain);
        }
    }
    let still_owned = !revoking.is_empty() && owned.is_none_or(|o| intersects(o, &revoking));
    let (state, epoch, assigned, revoking) = if still_owned {
        (MemberState::UnrevokedPartitions, from_epoch, kept, revoking)
    } else {
        let mut assigned = kept;
        for (t, parts) in gaining {
            assigned.entry(t).or_default().extend(parts);
        }
        let state = if withheld {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        (state, target_epoch, assigned, Assignment::new())
    };
    g.set_partitions(member_id, assigned, revoking);
    if let Some(m) = g.members.get_mut(member_id) {
        if m.epoch != epoch {
            m.previous_epoch = m.epoch;
        }
        m.epoch = epoch;
        m.state = state;
    }
}

/// The assignor most members asked for, else the configured default.
fn preferred_assignor(g: &ConsumerGroup, config: &ConsumerGroupConfig) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for m in g.members.values() {
        if let Some(a) = &m.assignor {
            *counts.entry(a.as_str()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
        .map(|(name, _)| name.to_owned())
        .or_else(|| config.assignors.first().cloned())
        .unwrap_or_else(|| ASSIGNORS[0].to_owned())
}

/// The target assignment of every member.
fn compute_target(g: &ConsumerGroup, assignor: &str) -> BTreeMap<String, Assignment> {
    // Each member's subscribed topics, by id, with their partition counts.
    let subs: BTreeMap<&str, BTreeSet<TopicId>> = g
        .members
        .values()
        .map(|m| {
            let mut ids = BTreeSet::new();
            let names = m
                .topic_names
                .iter()
                .chain(g.regexes.get(&m.regex).into_iter().flatten());
            for n in names {
                if let Some((id, _)) = g.metadata.get(n) {
                    ids.insert(*id);
                }
            }
            (m.id.as_str(), ids)
        })
        .collect();
    let counts: BTreeMap<TopicId, i32> = g.metadata.values().map(|(id, n)| (*id, *n)).collect();
    if assignor == "range" {
        range_assign(g, &subs, &counts)
    } else {
        uniform_assign(g, &subs, &counts)
    }
}

/// Kafka's range assignor: per topic, subscribers in order (static members by instance id,
/// then the others by member id) take contiguous ranges, the first ones one more.
fn range_assign(
    g: &ConsumerGroup,
    subs: &BTreeMap<&str, BTreeSet<TopicId>>,
    counts: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut order: Vec<&ConsumerMember> = g.members.values().collect();
    order.sort_by(|a, b| match (&a.instance_id, &b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.id.cmp(&b.id),
    });
    let mut out: BTreeMap<String, Assignment> = g
        .members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for (topic, &n) in counts {
        let members: Vec<&str> = order
            .iter()
            .map(|m| m.id.as_str())
            .filter(|id| subs.get(id).is_some_and(|s| s.contains(topic)))
            .collect();
        if members.is_empty() {
            continue;
        }
        let k = members.len() as i32;
        let (quota, extra) = (n / k, n % k);
        let mut start = 0;
        for (i, id) in members.iter().enumerate() {
            let len = quota + i32::from((i as i32) < extra);
            if len > 0 {
                if let Some(a) = out.get_mut(*id) {
                    a.insert(*topic, (start..start + len).collect());
                }
            }
            start += len;
        }
    }
    out
}

/// A sticky, balanced assignment: each member keeps what it had of its subscribed topics,
/// new partitions go to the least loaded subscriber, then partitions move from the most to
/// the least loaded subscriber of their topic until no two subscribers differ by more than
/// one (or no move helps). With identical subscriptions every member ends within one
/// partition of every other.
fn uniform_assign(
    g: &ConsumerGroup,
    subs: &BTreeMap<&str, BTreeSet<TopicId>>,
    counts: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    let mut owner: HashMap<(TopicId, i32), String> = HashMap::new();
    for (id, topics) in subs {
        let mut a = Assignment::new();
        if let Some(prev) = g.target.get(*id) {
            for (t, parts) in prev {
                let Some(&n) = counts.get(t).filter(|_| topics.contains(t)) else {
                    continue;
                };
                let keep: BTreeSet<i32> = parts
                    .iter()
                    .copied()
                    .filter(|p| *p < n && !owner.contains_key(&(*t, *p)))
                    .collect();
                for p in &keep {
                    owner.insert((*t, *p), (*id).to_owned());
                }
                if !keep.is_empty() {
                    a.insert(*t, keep);
                }
            }
        }
        out.insert((*id).to_owned(), a);
    }
    let load = |a: &Assignment| a.values().map(BTreeSet::len).sum::<usize>();
    // With identical subscriptions, nobody keeps more than its share.
    let homogeneous = subs.values().collect::<BTreeSet<_>>().len() <= 1;
    if homogeneous && !subs.is_empty() {
        let total: usize = subs
            .values()
            .next()
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| counts.get(t))
                    .map(|n| *n as usize)
                    .sum()
            })
            .unwrap_or(0);
        let members = subs.len();
        let (quota, extra) = (total / members, total % members);
        // Those that keep the most may keep one more than the quota.
        let mut by_load: Vec<(usize, String)> =
            out.iter().map(|(id, a)| (load(a), id.clone())).collect();
        by_load.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for (i, (_, id)) in by_load.iter().enumerate() {
            let cap = quota + usize::from(i < extra);
            let Some(a) = out.get_mut(id) else { continue };
            while load(a) > cap {
                let Some((&t, _)) = a.iter().next_back() else {
                    break;
                };
                let Some(p) = a.get_mut(&t).and_then(|s| s.pop_last()) else {
                    break;
                };
                if a.get(&t).is_some_and(BTreeSet::is_empty) {
                    a.remove(&t);
                }
                owner.remove(&(t, p));
            }
        }
    }
    // Unassigned partitions, topics with the most partitions per subscriber first.
    let mut topics: Vec<(TopicId, i32, usize)> = counts
        .iter()
        .map(|(t, n)| (*t, *n, subs.values().filter(|s| s.contains(t)).count()))
        .filter(|(_, _, k)| *k > 0)
        .collect();
    topics.sort_by(|a, b| {
        let (x, y) = (a.1 as usize * b.2, b.1 as usize * a.2);
        y.cmp(&x).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0))
    });
    let mut loads: BTreeMap<String, usize> =
        out.iter().map(|(id, a)| (id.clone(), load(a))).collect();
    let subscribers_of: BTreeMap<TopicId, Vec<&str>> = topics
        .iter()
        .map(|(t, _, _)| {
            let ids = subs
                .iter()
                .filter(|(_, s)| s.contains(t))
                .map(|(id, _)| *id)
                .collect();
            (*t, ids)
        })
        .collect();
    let no_one = Vec::new();
    for (t, n, _) in &topics {
        let subscribers = subscribers_of.get(t).unwrap_or(&no_one);
        for p in 0..*n {
            if owner.contains_key(&(*t, p)) {
                continue;
            }
            let Some(best) = subscribers
                .iter()
                .min_by_key(|id| (loads.get(**id).copied().unwrap_or(0), **id))
            else {
                continue;
            };
            out.entry((*best).to_owned())
                .or_default()
                .entry(*t)
                .or_default()
                .insert(p);
            owner.insert((*t, p), (*best).to_owned());
            *loads.entry((*best).to_owned()).or_default() += 1;
        }
    }
    // Balance: move partitions from the most to the least loaded subscriber of a topic.
    for _ in 0..(owner.len() + 1) {
        let mut moved = false;
        for (t, _, _) in &topics {
            let subscribers = subscribers_of.get(t).unwrap_or(&no_one);
            let Some(low) = subscribers
                .iter()
                .min_by_key(|id| (loads.get(**id).copied().unwrap_or(0), **id))
            else {
                continue;
            };
            let Some(high) = subscribers
                .iter()
                .filter(|id| {
                    out.get(**id)
                        .is_some_and(|a| a.get(t).is_some_and(|s| !s.is_empty()))
                })
                .max_by_key(|id| {
                    (
                        loads.get(**id).copied().unwrap_or(0),
                        std::cmp::Reverse(**id),
                    )
                })
            else {
                continue;
            };
            let (lo, hi) = (
                loads.get(*low).copied().unwrap_or(0),
                loads.get(*high).copied().unwrap_or(0),
            );
            if hi <= lo + 1 {
                continue;
            }
            let Some(p) = out
                .get_mut(*high)
                .and_then(|a| a.get_mut(t))
                .and_then(|s| s.pop_last())
            else {
                continue;
            };
            if let Some(a) = out.get_mut(*high) {
                if a.get(t).is_some_and(BTreeSet::is_empty) {
                    a.remove(t);
                }
            }
            out.entry((*low).to_owned())
                .or_default()
                .entry(*t)
                .or_default()
                .insert(p);
            *loads.entry((*high).to_owned()).or_default() -= 1;
            *loads.entry((*low).to_owned()).or_default() += 1;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    out
}

/// The topic names a regular expression matches (all of the name, as Kafka's RE2/J
/// `matches`). An expression that does not compile matches nothing (it was checked when a
/// member subscribed with it).
fn resolve(
    compiled: &mut HashMap<String, regex::Regex>,
    regex: &str,
    topics: &dyn TopicView,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if !compiled.contains_key(regex) {
        let Ok(re) = compile(regex) else {
            return out;
        };
        compiled.insert(regex.to_owned(), re);
    }
    let Some(re) = compiled.get(regex) else {
        return out;
    };
    topics.for_each_name(&mut |name| {
        if re.is_match(name) {
            out.insert(name.to_owned());
        }
    });
    out
}

/// Compiles a subscription's expression to match whole topic names. The expression must
/// compile on its own first: wrapped, `a)|(b` would.
pub(crate) fn compile(regex: &str) -> Result<regex::Regex, regex::Error> {
    let build = |pattern: &str| {
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
    };
    build(regex)?;
    build(&format!("^(?:{regex})$"))
}

fn to_assignment(v: &[(TopicId, Vec<i32>)]) -> Assignment {
    let mut a = Assignment::new();
    for (t, parts) in v {
        a.entry(*t).or_default().extend(parts.iter().copied());
    }
    a.retain(|_, s| !s.is_empty());
    a
}

fn from_assignment(a: &Assignment) -> Vec<(TopicId, Vec<i32>)> {
    a.iter()
        .map(|(t, s)| (*t, s.iter().copied().collect()))
        .collect()
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, s)| b.get(t).is_some_and(|bs| s.is_subset(bs)))
}

pub(crate) fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, s)| b.get(t).is_some_and(|bs| !s.is_disjoint(bs)))
}

/// Validates a heartbeat as Kafka does before looking at the group.
pub(crate) fn validate(
    req: &ConsumerHeartbeatRequest,
    config: &ConsumerGroupConfig,
) -> Result<(), ConsumerHeartbeatResponse> {
    let invalid = |m: &str| {
        Err(ConsumerHeartbeatResponse::error(
            ErrorCode::InvalidRequest,
            m,
        ))
    };
    if req.group_id.trim().is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req
        .instance_id
        .as_ref()
        .is_some_and(|i| i.trim().is_empty())
    {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_ref().is_some_and(|r| r.trim().is_empty()) {
        return invalid("RackId can't be empty.");
    }
    let epoch = req.member_epoch;
    if epoch < STATIC_LEAVE_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if req.member_id.trim().is_empty() && (req.api_version >= 1 || epoch != 0) {
        return invalid("MemberId can't be empty.");
    }
    if req.member_id.len() > i16::MAX as usize {
        return invalid("MemberId is too long.");
    }
    if epoch == 0 {
        if req.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        let subscribed = if req.api_version >= 1 {
            req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some()
        } else {
            req.subscribed_topic_names
                .as_ref()
                .is_some_and(|n| !n.is_empty())
        };
        if !subscribed {
            return invalid(if req.api_version >= 1 {
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
            } else {
                "SubscribedTopicNames must be set in first request."
            });
        }
    }
    if epoch == STATIC_LEAVE_EPOCH && req.instance_id.is_none() {
        return invalid("InstanceId can't be null.");
    }
    if req.rebalance_timeout_ms < -1 {
        return invalid("RebalanceTimeoutMs can't be negative.");
    }
    if let Some(a) = &req.server_assignor {
        if !config.assignors.iter().any(|c| c == a) {
            return Err(ConsumerHeartbeatResponse::error(
                ErrorCode::UnsupportedAssignor,
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    config.assignors.join(", ")
                ),
            ));
        }
    }
    if let Some(r) = req
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        if let Err(e) = compile(r) {
            return Err(ConsumerHeartbeatResponse::error(
                ErrorCode::InvalidRegularExpression,
                format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}."),
            ));
        }
    }
    Ok(())
}

/// A member id as Kafka makes them: a random UUID in URL-safe base64 without padding.
pub(crate) fn member_id(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    out
}

/// How a group looks to ConsumerGroupDescribe.
pub(crate) fn describe(
    g: &ConsumerGroup,
    group_id: &str,
    config: &ConsumerGroupConfig,
) -> DescribedConsumerGroup {
    let topic_names = g
        .metadata
        .iter()
        .map(|(name, (id, _))| (*id, name.clone()))
        .collect();
    DescribedConsumerGroup {
        error: ErrorCode::None,
        message: None,
        group_id: group_id.to_owned(),
        state: g.state().name().to_owned(),
        group_epoch: g.group_epoch,
        assignment_epoch: g.assignment_epoch,
        assignor: preferred_assignor(g, config),
        members: g
            .members
            .values()
            .map(|m| DescribedConsumerMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.topic_names.clone(),
                subscribed_topic_regex: (!m.regex.is_empty()).then(|| m.regex.clone()),
                assignment: m.assigned.clone(),
                target_assignment: g.target.get(&m.id).cloned().unwrap_or_default(),
                classic: m.classic.is_some(),
            })
            .collect(),
        topic_names,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{JoinRequest, OffsetCommitRequest, Response};
    use crate::{GroupConfig, GroupCoordinator};

    pub(crate) struct Topics {
        version: u64,
        topics: BTreeMap<String, (TopicId, i32)>,
    }

    impl Topics {
        pub(crate) fn new(list: &[(&str, i32)]) -> Self {
            let mut t = Topics {
                version: 1,
                topics: BTreeMap::new(),
            };
            for (name, n) in list {
                t.add(name, *n);
            }
            t
        }

        pub(crate) fn add(&mut self, name: &str, partitions: i32) {
            let mut id = [0u8; 16];
            id[..name.len().min(16)].copy_from_slice(&name.as_bytes()[..name.len().min(16)]);
            self.topics.insert(name.to_owned(), (id, partitions));
            self.version += 1;
        }

        pub(crate) fn id(&self, name: &str) -> TopicId {
            self.topics[name].0
        }
    }

    impl TopicView for Topics {
        fn version(&self) -> u64 {
            self.version
        }
        fn topic(&self, name: &str) -> Option<(TopicId, i32)> {
            self.topics.get(name).copied()
        }
        fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
            for n in self.topics.keys() {
                f(n);
            }
        }
    }

    pub(crate) fn join(member: &str, topics: &[&str]) -> ConsumerHeartbeatRequest {
        ConsumerHeartbeatRequest {
            api_version: 1,
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(topics.iter().map(|s| s.to_string()).collect()),
            subscribed_topic_regex: Some(String::new()),
            topic_partitions: Some(vec![]),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..Default::default()
        }
    }

    pub(crate) fn beat(
        member: &str,
        epoch: i32,
        owned: Option<Vec<(TopicId, Vec<i32>)>>,
    ) -> ConsumerHeartbeatRequest {
        ConsumerHeartbeatRequest {
            api_version: 1,
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            topic_partitions: owned,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..Default::default()
        }
    }

    pub(crate) fn count(a: &Option<Vec<(TopicId, Vec<i32>)>>) -> usize {
        a.as_ref()
            .map_or(0, |v| v.iter().map(|(_, p)| p.len()).sum())
    }

    fn coordinator() -> GroupCoordinator {
        GroupCoordinator::new(GroupConfig::default(), 7)
    }

    /// One heartbeat's response.
    pub(crate) fn hb(
        c: &mut GroupCoordinator,
        req: ConsumerHeartbeatRequest,
        topics: &Topics,
        now: i64,
    ) -> ConsumerHeartbeatResponse {
        let out = c.consumer_heartbeat(99, req, topics, now);
        match out.response(99) {
            Some(Response::ConsumerHeartbeat(r)) => r.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn members_share_partitions_after_revocation() {
        let topics = Topics::new(&[("t", 4)]);
        let mut c = coordinator();
        let a = hb(&mut c, join("a", &["t"]), &topics, 0);
        assert_eq!(a.error, ErrorCode::None);
        assert_eq!(a.member_epoch, 1);
        assert_eq!(count(&a.assignment), 4);
        let a_owned = a.assignment.clone();
        // b joins: the group moves to epoch 2, b waits for a's partitions.
        let b = hb(&mut c, join("b", &["t"]), &topics, 10);
        assert_eq!(b.member_epoch, 2);
        assert_eq!(count(&b.assignment), 0);
        // a learns it keeps two; it stays at epoch 1 until it gives the others up.
        let a = hb(&mut c, beat("a", 1, None), &topics, 20);
        assert_eq!(a.member_epoch, 1);
        assert_eq!(count(&a.assignment), 2);
        // While a still reports four, nothing changes; b still waits.
        let a2 = hb(&mut c, beat("a", 1, a_owned), &topics, 30);
        assert_eq!((a2.member_epoch, a2.assignment), (1, None));
        assert_eq!(
            count(&hb(&mut c, beat("b", 2, None), &topics, 31).assignment),
            0
        );
        // a reports its two: it moves to epoch 2, and b gets the other two.
        let a3 = hb(&mut c, beat("a", 1, a.assignment.clone()), &topics, 40);
        assert_eq!(a3.member_epoch, 2);
        let b = hb(&mut c, beat("b", 2, Some(vec![])), &topics, 50);
        assert_eq!(b.member_epoch, 2);
        assert_eq!(count(&b.assignment), 2);
        let mut all: Vec<i32> = a
            .assignment
            .iter()
            .chain(b.assignment.iter())
            .flatten()
            .flat_map(|(_, p)| p.clone())
            .collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3]);
        let d = &c.consumer_describe(&["g".into()])[0];
        assert_eq!(
            (d.state.as_str(), d.group_epoch, d.assignment_epoch),
            ("Stable", 2, 2)
        );
        assert_eq!(d.assignor, "uniform");
    }

    #[test]
    fn epochs_are_fenced() {
        let topics = Topics::new(&[("t", 2)]);
        let mut c = coordinator();
        let a = hb(&mut c, join("a", &["t"]), &topics, 0);
        assert_eq!(a.member_epoch, 1);
        let r = hb(&mut c, beat("a", 5, None), &topics, 1);
        assert_eq!(r.error, ErrorCode::FencedMemberEpoch);
        let r = hb(&mut c, beat("nobody", 1, None), &topics, 1);
        assert_eq!(r.error, ErrorCode::UnknownMemberId);
        // b joins; a (stable at 1 with nothing to give up? it has both) reconciles.
        hb(&mut c, join("b", &["t"]), &topics, 2);
        let a2 = hb(&mut c, beat("a", 1, Some(vec![])), &topics, 3);
        assert_eq!(a2.member_epoch, 2);
        // A heartbeat at the previous epoch, owning only what it has, is still accepted
        // (its last answer was lost); owning more is not.
        let mine = a2.assignment.clone().unwrap_or_default();
        assert_eq!(
            hb(&mut c, beat("a", 1, Some(mine)), &topics, 4).error,
            ErrorCode::None
        );
        let both = vec![(topics.id("t"), vec![0, 1])];
        assert_eq!(
            hb(&mut c, beat("a", 1, Some(both)), &topics, 5).error,
            ErrorCode::FencedMemberEpoch
        );
        // Rejoining at epoch 0 is always accepted.
        let again = hb(&mut c, join("a", &["t"]), &topics, 6);
        assert_eq!((again.error, again.member_epoch), (ErrorCode::None, 2));
        // An unknown group: the member joins again.
        let mut other = beat("a", 3, None);
        other.group_id = "other".into();
        assert_eq!(
            hb(&mut c, other, &topics, 7).error,
            ErrorCode::UnknownMemberId
        );
    }

    #[test]
    fn leaving_and_expiring_release_partitions() {
        let topics = Topics::new(&[("t", 3)]);
        let mut c = coordinator();
        hb(&mut c, join("a", &["t"]), &topics, 0);
        hb(&mut c, join("b", &["t"]), &topics, 0);
        let a = hb(&mut c, beat("a", 1, Some(vec![])), &topics, 1);
        let b = hb(&mut c, beat("b", 2, Some(vec![])), &topics, 1);
        assert_eq!(count(&a.assignment) + count(&b.assignment), 3);
        let mut leave = beat("b", LEAVE_EPOCH, None);
        leave.rebalance_timeout_ms = -1;
        let r = hb(&mut c, leave, &topics, 2);
        assert_eq!((r.error, r.member_epoch), (ErrorCode::None, -1));
        let a = hb(&mut c, beat("a", 2, a.assignment.clone()), &topics, 3);
        assert_eq!((a.member_epoch, count(&a.assignment)), (3, 3));
        // Its session runs out: the group is empty and then forgotten.
        assert_eq!(c.next_deadline(), Some(3 + 45_000));
        c.tick(3 + 45_000);
        assert!(c.list(&[]).expect("list").is_empty());
    }

    #[test]
    fn a_member_that_keeps_partitions_past_its_rebalance_timeout_is_removed() {
        let topics = Topics::new(&[("t", 2)]);
        let mut c = coordinator();
        let a = hb(&mut c, join("a", &["t"]), &topics, 0);
        hb(&mut c, join("b", &["t"]), &topics, 0);
        // a must give one up: its rebalance timeout (30 s) starts.
        let a1 = hb(&mut c, beat("a", 1, a.assignment.clone()), &topics, 1);
        assert_eq!(a1.member_epoch, 1);
        hb(&mut c, beat("b", 2, Some(vec![])), &topics, 30_000);
        c.tick(30_001);
        let r = hb(&mut c, beat("a", 1, a.assignment.clone()), &topics, 30_002);
        assert_eq!(r.error, ErrorCode::UnknownMemberId);
        let b = hb(&mut c, beat("b", 2, Some(vec![])), &topics, 30_003);
        assert_eq!(count(&b.assignment), 2);
    }

    #[test]
    fn static_members_come_back_to_their_partitions() {
        let topics = Topics::new(&[("t", 2)]);
        let mut c = coordinator();
        let mut j = join("a1", &["t"]);
        j.instance_id = Some("i".into());
        let a = hb(&mut c, j.clone(), &topics, 0);
        assert_eq!(count(&a.assignment), 2);
        // Another process with the same instance id while a1 is active.
        let mut dup = j.clone();
        dup.member_id = "a2".into();
        assert_eq!(
            hb(&mut c, dup.clone(), &topics, 1).error,
            ErrorCode::UnreleasedInstanceId
        );
        // a1 leaves for now (-2); a2 takes its place and its partitions.
        let mut leave = beat("a1", STATIC_LEAVE_EPOCH, None);
        leave.instance_id = Some("i".into());
        assert_eq!(hb(&mut c, leave, &topics, 2).member_epoch, -2);
        let a2 = hb(&mut c, dup, &topics, 3);
        assert_eq!(a2.error, ErrorCode::None);
        assert_eq!(a2.assignment, a.assignment);
        assert_eq!(
            a2.member_epoch, 1,
            "no rebalance for a returning static member"
        );
    }

    #[test]
    fn regular_expressions_follow_new_topics() {
        let mut topics = Topics::new(&[("orders-eu", 1), ("payments", 1)]);
        let mut c = coordinator();
        let mut j = join("a", &[]);
        j.subscribed_topic_regex = Some("(^orders-.*)".into());
        let a = hb(&mut c, j, &topics, 0);
        assert_eq!(a.assignment, Some(vec![(topics.id("orders-eu"), vec![0])]));
        topics.add("orders-us", 2);
        // New topics are matched at most every REGEX_REFRESH_MS.
        let a = hb(&mut c, beat("a", 1, None), &topics, 1);
        assert_eq!((a.member_epoch, a.assignment), (1, None));
        let a = hb(&mut c, beat("a", 1, None), &topics, REGEX_REFRESH_MS);
        assert_eq!(a.member_epoch, 2);
        assert_eq!(count(&a.assignment), 3);
        for wrong in ["(", "a)|(b"] {
            let mut bad = join("b", &[]);
            bad.subscribed_topic_regex = Some(wrong.into());
            assert_eq!(
                hb(&mut c, bad, &topics, 2).error,
                ErrorCode::InvalidRegularExpression,
                "{wrong}"
            );
        }
        // Another member with the same expression shares its match; when the last one
        // leaves, nothing else moves.
        let mut j = join("b", &[]);
        j.subscribed_topic_regex = Some("(^orders-.*)".into());
        let b = hb(&mut c, j, &topics, REGEX_REFRESH_MS + 1);
        assert_eq!(b.member_epoch, 3);
        let n = hb(
            &mut c,
            join("n", &["payments"]),
            &topics,
            REGEX_REFRESH_MS + 1,
        );
        assert_eq!(n.member_epoch, 4);
        for m in ["a", "b"] {
            let mut leave = beat(m, LEAVE_EPOCH, None);
            leave.rebalance_timeout_ms = -1;
            hb(&mut c, leave, &topics, REGEX_REFRESH_MS + 2);
        }
        let n = hb(
            &mut c,
            beat("n", 4, Some(vec![])),
            &topics,
            REGEX_REFRESH_MS + 3,
        );
        assert_eq!(n.member_epoch, 6, "two leaves, no more");
        let d = &c.consumer_describe(&["g".into()])[0];
        assert_eq!((d.state.as_str(), d.group_epoch), ("Stable", 6));
    }

    #[test]
    fn requests_are_validated() {
        let topics = Topics::new(&[("t", 1)]);
        let mut c = coordinator();
        let mut r = join("a", &["t"]);
        r.rebalance_timeout_ms = -1;
        assert_eq!(hb(&mut c, r, &topics, 0).error, ErrorCode::InvalidRequest);
        let mut r = join("a", &["t"]);
        r.topic_partitions = None;
        assert_eq!(hb(&mut c, r, &topics, 0).error, ErrorCode::InvalidRequest);
        let mut r = join("", &["t"]);
        assert_eq!(
            hb(&mut c, r.clone(), &topics, 0).error,
            ErrorCode::InvalidRequest
        );
        // v0: the coordinator chooses the member id.
        r.api_version = 0;
        r.subscribed_topic_regex = None;
        let ok = hb(&mut c, r, &topics, 0);
        assert_eq!(ok.error, ErrorCode::None);
        assert_eq!(ok.member_id.as_deref().map(str::len), Some(22));
        let mut r = join("a", &["t"]);
        r.server_assignor = Some("sticky".into());
        let e = hb(&mut c, r, &topics, 0);
        assert_eq!(e.error, ErrorCode::UnsupportedAssignor);
        assert_eq!(
            e.message.as_deref(),
            Some("ServerAssignor sticky is not supported. Supported assignors: uniform, range.")
        );
        let mut r = join("a", &["t"]);
        r.member_epoch = -3;
        assert_eq!(hb(&mut c, r, &topics, 0).error, ErrorCode::InvalidRequest);
    }

    #[test]
    fn assignors_balance() {
        let topics = Topics::new(&[("x", 3), ("y", 3)]);
        let mut c = coordinator();
        for m in ["m1", "m2"] {
            let mut j = join(m, &["x", "y"]);
            j.server_assignor = Some("range".into());
            hb(&mut c, j, &topics, 0);
        }
        let d = &c.consumer_describe(&["g".into()])[0];
        assert_eq!(d.assignor, "range");
        let t1 = &d.members[0].target_assignment;
        // Range: m1 takes partitions 0-1 of each topic, m2 partition 2.
        assert_eq!(t1.get(&topics.id("x")), Some(&BTreeSet::from([0, 1])));
        assert_eq!(t1.get(&topics.id("y")), Some(&BTreeSet::from([0, 1])));

        // Uniform with different subscriptions: everyone within one of the others where
        // they can be.
        let topics = Topics::new(&[("x", 6), ("y", 2)]);
        let mut c = coordinator();
        hb(&mut c, join("a", &["x"]), &topics, 0);
        hb(&mut c, join("b", &["x", "y"]), &topics, 0);
        hb(&mut c, join("c", &["x", "y"]), &topics, 0);
        let d = &c.consumer_describe(&["g".into()])[0];
        let loads: Vec<usize> = d
            .members
            .iter()
            .map(|m| m.target_assignment.values().map(BTreeSet::len).sum())
            .collect();
        assert_eq!(loads.iter().sum::<usize>(), 8);
        assert!(
            loads.iter().max().unwrap_or(&0) - loads.iter().min().unwrap_or(&0) <= 1,
            "{loads:?}"
        );
    }

    #[test]
    fn consumer_groups_and_the_other_apis() {
        let topics = Topics::new(&[("t", 1)]);
        let mut c = coordinator();
        let a = hb(&mut c, join("a", &["t"]), &topics, 0);
        let commit = |epoch: i32, version: i16, member: &str| OffsetCommitRequest {
            request_id: 1,
            group_id: "g".into(),
            generation_id: epoch,
            member_id: member.into(),
            group_instance_id: None,
            topics: vec![(
                "t".into(),
                vec![crate::api::CommitPartition {
                    partition: 0,
                    offset: 5,
                    leader_epoch: -1,
                    metadata: None,
                }],
            )],
            api_version: version,
        };
        let err = |out: crate::api::Output| match out.response(1) {
            Some(Response::OffsetCommit(r)) => r.topics[0].partitions[0].error,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(c.commit_offsets(commit(a.member_epoch, 9, "a"), 1)),
            ErrorCode::None
        );
        assert_eq!(
            err(c.commit_offsets(commit(0, 9, "a"), 1)),
            ErrorCode::StaleMemberEpoch
        );
        assert_eq!(
            err(c.commit_offsets(commit(1, 8, "a"), 1)),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            err(c.commit_offsets(commit(-1, 9, ""), 1)),
            ErrorCode::UnknownMemberId
        );
        let listed = c.list(&[]).expect("list");
        assert_eq!(
            (
                listed[0].group_type,
                listed[0].state,
                listed[0].protocol_type.as_str()
            ),
            ("consumer", GroupState::Stable, "consumer")
        );
        // A classic member joins it as any new member does, first asking for an id (see
        // migration's tests for the rest); the group cannot be deleted while it has members.
        let classic = JoinRequest {
            request_id: 2,
            api_version: 9,
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::new())],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            reason: None,
        };
        match c.join(classic, 2).response(2) {
            Some(Response::Join(j)) => assert_eq!(j.error, ErrorCode::MemberIdRequired),
            other => panic!("{other:?}"),
        }
        let del = c.delete_groups(
            crate::api::DeleteGroupsRequest {
                request_id: 3,
                group_ids: vec!["g".into()],
            },
            3,
        );
        match del.response(3) {
            Some(Response::DeleteGroups(d)) => assert_eq!(d.results[0].1, ErrorCode::NonEmptyGroup),
            other => panic!("{other:?}"),
        }
        // Classic DescribeGroups shows it Dead, as Kafka's does.
        assert_eq!(c.describe(&["g".into()])[0].state, GroupState::Dead);
        // Once empty it is an offsets-only group again; its offsets stay.
        let mut leave = beat("a", LEAVE_EPOCH, None);
        leave.rebalance_timeout_ms = -1;
        hb(&mut c, leave, &topics, 4);
        assert_eq!(c.list(&[]).expect("list")[0].state, GroupState::Empty);
        assert_eq!(err(c.commit_offsets(commit(-1, 9, ""), 5)), ErrorCode::None);
    }

    #[test]
    fn offsets_retention_keeps_a_live_group_without_offsets() {
        let topics = Topics::new(&[("t", 1)]);
        let mut c = coordinator();
        hb(&mut c, join("a", &["t"]), &topics, 0);
        let out = c.expire_offsets(30_000, 1);
        assert!(out.records.is_empty());
        let r = hb(&mut c, beat("a", 1, None), &topics, 30_001);
        assert_eq!(r.error, ErrorCode::None);
    }

    #[test]
    fn a_member_id_back_under_an_instance_id_gives_up_what_it_held() {
        let topics = Topics::new(&[("t", 2)]);
        let mut c = coordinator();
        let a = hb(&mut c, join("x", &["t"]), &topics, 0);
        assert_eq!(count(&a.assignment), 2);
        // x returns as a static member: it is a new member, and whatever x held is free.
        let mut j = join("x", &["t"]);
        j.instance_id = Some("i".into());
        let x = hb(&mut c, j, &topics, 1);
        assert_eq!(x.error, ErrorCode::None);
        let y = hb(&mut c, join("y", &["t"]), &topics, 2);
        let x = hb(
            &mut c,
            beat("x", x.member_epoch, x.assignment.clone()),
            &topics,
            3,
        );
        assert_eq!(count(&x.assignment), 1);
        hb(
            &mut c,
            beat("x", x.member_epoch, x.assignment.clone()),
            &topics,
            4,
        );
        let y = hb(&mut c, beat("y", y.member_epoch, Some(vec![])), &topics, 5);
        assert_eq!(count(&y.assignment), 1, "{y:?}");
        let d = &c.consumer_describe(&["g".into()])[0];
        assert_eq!(d.state, "Stable");
    }

    #[test]
    fn the_records_rebuild_the_group() {
        let topics = Topics::new(&[("t", 4), ("u", 1)]);
        let mut c = coordinator();
        let mut log: Vec<crate::api::Record> = Vec::new();
        let mut run = |c: &mut GroupCoordinator, req: ConsumerHeartbeatRequest, now: i64| {
            let out = c.consumer_heartbeat(1, req, &topics, now);
            log.extend(out.records.iter().cloned());
            match out.response(1) {
                Some(Response::ConsumerHeartbeat(r)) => r.clone(),
                other => panic!("{other:?}"),
            }
        };
        let a = run(&mut c, join("a", &["t"]), 0);
        let mut j = join("b", &["t", "u"]);
        j.instance_id = Some("i".into());
        j.server_assignor = Some("uniform".into());
        let b = run(&mut c, j, 1);
        // a gives up two partitions but has not said so yet: b waits for them.
        run(&mut c, beat("a", a.member_epoch, a.assignment.clone()), 2);
        run(&mut c, beat("b", b.member_epoch, Some(vec![])), 3);
        let x = run(&mut c, join("x", &["u"]), 4);
        let mut leave = beat("x", LEAVE_EPOCH, None);
        leave.rebalance_timeout_ms = -1;
        run(&mut c, leave, 5);
        assert!(x.error.is_ok());
        let described = |c: &GroupCoordinator| c.consumer_describe(&["g".into()]);
        let replay = |records: &[crate::api::Record]| {
            let mut r = coordinator();
            for (k, v) in records {
                r.replay(k, v.as_deref(), 10).expect("replay");
            }
            r
        };
        let from_log = replay(&log);
        assert_eq!(described(&from_log), described(&c));
        assert_eq!(
            described(&c)[0].state,
            "Assigning",
            "x left: a new target is due"
        );
        let snapshot = c.snapshot_records();
        assert_eq!(described(&replay(&snapshot)), described(&c));
        // The rebuilt group carries on: a few rounds of heartbeats, each member reporting
        // what it was last given, and every member has its target.
        let mut r = from_log;
        type Owned = Vec<(TopicId, Vec<i32>)>;
        let mut state: BTreeMap<&str, (i32, Owned)> = BTreeMap::new();
        for round in 0..4 {
            for (m, instance) in [("a", None), ("b", Some("i"))] {
                let (epoch, owned) = state.get(m).cloned().unwrap_or_else(|| {
                    let d = &described(&r)[0];
                    let me = d.members.iter().find(|x| x.member_id == m).expect("member");
                    (me.member_epoch, from_assignment(&me.assignment))
                });
                let mut req = beat(m, epoch, Some(owned.clone()));
                req.instance_id = instance.map(str::to_owned);
                let resp = hb(&mut r, req, &topics, 20 + round);
                assert_eq!(resp.error, ErrorCode::None, "{m}: {resp:?}");
                state.insert(m, (resp.member_epoch, resp.assignment.unwrap_or(owned)));
            }
        }
        assert_eq!(described(&r)[0].state, "Stable", "{:?}", described(&r));
        // Deleting the group leaves nothing to replay.
        let mut leave = beat("a", LEAVE_EPOCH, None);
        leave.rebalance_timeout_ms = -1;
        let out_a = r.consumer_heartbeat(2, leave.clone(), &topics, 23);
        let mut leave_b = leave;
        leave_b.member_id = "b".into();
        leave_b.instance_id = Some("i".into());
        let out_b = r.consumer_heartbeat(3, leave_b, &topics, 24);
        let ticked = r.tick(25);
        let mut all = log.clone();
        for o in [out_a, out_b, ticked] {
            all.extend(o.records);
        }
        let left = replay(&all);
        assert!(
            left.list(&[]).expect("list").is_empty(),
            "{:?}",
            left.consumer_describe(&["g".into()])
        );
    }

    #[test]
    fn a_classic_group_that_takes_the_new_protocol_keeps_its_offsets() {
        use crate::records::{GroupMetadataValue, OffsetCommitValue, RecordKey};
        let topics = Topics::new(&[("t", 1)]);
        let committed = OffsetCommitValue {
            offset: 7,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
            expire_timestamp: None,
        };
        let offset_key = RecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        // An emptied classic group, as krust writes it: a record with a generation.
        let emptied = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: None,
            leader: None,
            current_state_timestamp: 0,
            members: vec![],
        };
        let tombstone = RecordKey::GroupMetadata { group: "g".into() }.encode();
        let mut log: Vec<crate::api::Record> = vec![
            (offset_key.encode(), Some(committed.encode())),
            (tombstone.clone(), Some(emptied.encode())),
        ];
        let mut c = coordinator();
        for (k, v) in &log {
            c.replay(k, v.as_deref(), 0).expect("replay");
        }
        // The first member of the new protocol: the classic record goes, as Kafka
        // writes it, and is not written again by a rewrite of the log.
        let out = c.consumer_heartbeat(2, join("a", &["t"]), &topics, 1);
        assert!(out
            .records
            .iter()
            .any(|(k, v)| *k == tombstone && v.is_none()));
        log.extend(out.records);
        assert!(!c.snapshot_records().iter().any(|(k, _)| *k == tombstone));
        // Replayed (as Kafka would have written it too), the offsets stay.
        let mut r = coordinator();
        for (k, v) in &log {
            r.replay(k, v.as_deref(), 2).expect("replay");
        }
        assert_eq!(
            r.consumer_describe(&["g".into()]),
            c.consumer_describe(&["g".into()])
        );
        let fetched = r.fetch_offsets(&crate::api::OffsetFetchRequest {
            group_id: "g".into(),
            topics: None,
            member: None,
        });
        assert_eq!(
            fetched.topics[0].1[0].offset, 7,
            "offsets survive the change"
        );
    }

    #[test]
    fn a_reloaded_regex_group_does_not_rebalance() {
        let topics = Topics::new(&[("orders-eu", 2)]);
        let mut c = coordinator();
        let mut j = join("a", &[]);
        j.subscribed_topic_regex = Some("(^orders-.*)".into());
        let out = c.consumer_heartbeat(1, j, &topics, 0);
        let mut r = coordinator();
        for (k, v) in &out.records {
            r.replay(k, v.as_deref(), 1).expect("replay");
        }
        let a = hb(&mut r, beat("a", 1, None), &topics, 2);
        assert_eq!((a.error, a.member_epoch), (ErrorCode::None, 1));
        assert_eq!(r.consumer_describe(&["g".into()])[0].group_epoch, 1);
        let mut long = join(&"m".repeat(40_000), &["t"]);
        long.api_version = 1;
        assert_eq!(
            hb(&mut r, long, &topics, 3).error,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn member_ids_are_base64_uuids() {
        assert_eq!(member_id([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(member_id([0xff; 16]), "_____________________w");
    }
}
