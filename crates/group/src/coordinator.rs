//! The coordinator: all groups of one `__consumer_offsets` partition.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::api::*;
use crate::consumer::{
    self, ConsumerGroup, ConsumerGroupConfig, ConsumerHeartbeatRequest, ConsumerHeartbeatResponse,
    DescribedConsumerGroup, TopicView,
};
use crate::consumer_records::{ConsumerKey, ConsumerValue};
use crate::error::ErrorCode;
use crate::migration;
use crate::records::{
    GroupMetadataValue, MemberMetadataValue, OffsetCommitValue, RecordError, RecordKey,
};
use crate::state::{Group, GroupState, JoinTimer, Member, OffsetEntry};

/// The largest offset metadata string accepted (`offset.metadata.max.bytes`).
pub const MAX_OFFSET_METADATA_BYTES: usize = 4096;

/// How many timer events `tick` handles per group and call at most; the rest
/// is handled at the next call (then `next_deadline` is already due).
const MAX_EVENTS_PER_TICK: usize = 1024;

/// Broker settings of the group coordinator (Kafka's names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms` (3000).
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` (6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub max_session_timeout_ms: i32,
    /// `group.max.size` (unlimited when `None`).
    pub max_size: Option<usize>,
    /// Settings of consumer-protocol groups.
    pub consumer: ConsumerGroupConfig,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: None,
            consumer: ConsumerGroupConfig::default(),
        }
    }
}

/// The groups of one `__consumer_offsets` partition, as a pure state machine.
///
/// Every mutating command returns an [`Output`]: records to persist and
/// responses to send, in that order (see [`Output`] for the contract). Time is
/// the `now_ms` argument; call [`GroupCoordinator::tick`] at
/// [`GroupCoordinator::next_deadline`].
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    rng: StdRng,
    groups: BTreeMap<String, Group>,
    loading: bool,
    /// Offsets committed within transactions not completed yet: by producer id, then by
    /// (group, topic, partition). They take effect when the producer's commit marker is
    /// written to this partition, and go with its abort marker.
    pending_txn: BTreeMap<i64, BTreeMap<(String, String, i32), OffsetEntry>>,
}

/// What the internal helpers need besides the group.
struct Cx<'a> {
    config: &'a GroupConfig,
    rng: &'a mut StdRng,
    now: i64,
    out: &'a mut Output,
}

impl Cx<'_> {
    fn join_error(&mut self, id: RequestId, error: ErrorCode, member_id: &str) {
        self.out
            .respond(id, Response::Join(JoinResponse::error(error, member_id)));
    }

    fn sync_error(&mut self, id: RequestId, error: ErrorCode) {
        self.out
            .respond(id, Response::Sync(SyncResponse::error(error)));
    }

    /// `<prefix>-<uuid-like random>`, as Kafka builds member ids.
    fn member_id(&mut self, prefix: &str) -> String {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        // Keep the id well inside the int16 string limit of the records.
        let mut cut = prefix.len().min(1024);
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        format!(
            "{}-{}-{}-{}-{}-{}",
            &prefix[..cut],
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

impl GroupCoordinator {
    /// A coordinator without groups; `seed` drives the generated member ids.
    pub fn new(config: GroupConfig, seed: u64) -> Self {
        GroupCoordinator {
            config,
            rng: StdRng::seed_from_u64(seed),
            groups: BTreeMap::new(),
            pending_txn: BTreeMap::new(),
            loading: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Marks the coordinator as loading: until [`GroupCoordinator::end_load`]
    /// every request is answered with COORDINATOR_LOAD_IN_PROGRESS. Optional:
    /// a server that replays before serving need not call it.
    pub fn begin_load(&mut self) {
        self.loading = true;
    }

    /// Ends loading (see [`GroupCoordinator::begin_load`]).
    pub fn end_load(&mut self) {
        self.loading = false;
    }

    /// Whether the coordinator is loading.
    pub fn is_loading(&self) -> bool {
        self.loading
    }

    /// The ids of all groups, sorted.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// The state of a group, `None` if unknown.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// The generation of a group, `None` if unknown.
    pub fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation)
    }

    /// The leader of a group, `None` if unknown or without members.
    pub fn leader(&self, group_id: &str) -> Option<String> {
        self.groups.get(group_id).and_then(|g| g.leader.clone())
    }

    fn check_group_id(&self, group_id: &str) -> ErrorCode {
        if self.loading {
            ErrorCode::CoordinatorLoadInProgress
        } else if group_id.is_empty() || !fits(group_id) {
            ErrorCode::InvalidGroupId
        } else {
            ErrorCode::None
        }
    }

    // ------------------------------------------------------------------
    // Replay
    // ------------------------------------------------------------------

    /// Applies one record of the partition's log (in log order) to rebuild
    /// state. `value == None` is a tombstone. Groups come back Stable when the
    /// record has members (their session timers start at `now_ms`), Empty
    /// otherwise. Keys of versions 3 and up (Kafka's new consumer protocol)
    /// are skipped. Meant for loading, before requests are served.
    pub fn replay(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), RecordError> {
        self.replay_from(None, key, value, now_ms)
    }

    /// Like [`GroupCoordinator::replay`], for a record of a transactional batch of
    /// `producer_id`: an offset commit is held pending until the producer's marker
    /// ([`GroupCoordinator::complete_txn`]).
    pub fn replay_txn(
        &mut self,
        producer_id: i64,
        key: &[u8],
        value: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), RecordError> {
        self.replay_from(Some(producer_id), key, value, now_ms)
    }

    fn replay_from(
        &mut self,
        producer_id: Option<i64>,
        key: &[u8],
        value: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), RecordError> {
        if let Some(k) = ConsumerKey::decode(key)? {
            let value = value.map(|v| ConsumerValue::decode(&k, v)).transpose()?;
            let group = k.group().to_owned();
            if matches!((&k, &value), (ConsumerKey::Metadata(_), None)) {
                // The group's end as a consumer-protocol group.
                if let Some(g) = self.groups.get_mut(&group) {
                    g.modern = None;
                    if g.is_trivially_empty() {
                        self.groups.remove(&group);
                    }
                }
                return Ok(());
            }
            if value.is_none() && self.groups.get(&group).is_none_or(|g| g.modern.is_none()) {
                // A tombstone of what was never read.
                return Ok(());
            }
            let g = self
                .groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, now_ms));
            if !g.members.is_empty() {
                tracing::warn!(group = %group, "skipping a consumer-protocol record of a group with classic members");
                return Ok(());
            }
            let c = g.modern.get_or_insert_with(|| {
                Box::new(ConsumerGroup {
                    id: group.clone(),
                    ..Default::default()
                })
            });
            // The group's own session timeout is not known here: a loaded member gets the
            // longest one allowed to heartbeat first.
            let session = self
                .config
                .consumer
                .session_timeout_ms
                .max(self.config.consumer.max_session_timeout_ms);
            c.replay(k, value, now_ms + i64::from(session));
            // Offsets retention of an empty group counts from the commits, not the load.
            g.state_timestamp = None;
            return Ok(());
        }
        let key = match RecordKey::decode(key) {
            Ok(k) => k,
            Err(RecordError::UnsupportedKeyVersion(v)) if v >= 3 => {
                tracing::debug!(version = v, "skipping record of an unsupported key version");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match key {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => match value {
                Some(v) if producer_id.is_some() => {
                    let v = OffsetCommitValue::decode(v)?;
                    self.pending_txn
                        .entry(producer_id.unwrap_or(-1))
                        .or_default()
                        .insert((group, topic, partition), OffsetEntry::from(v));
                }
                Some(v) => {
                    let v = OffsetCommitValue::decode(v)?;
                    self.supersede_pending(&group, &topic, partition);
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now_ms));
                    g.offsets
                        .entry(topic)
                        .or_default()
                        .insert(partition, OffsetEntry::from(v));
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        remove_offset(g, &topic, partition);
                    }
                }
            },
            RecordKey::GroupMetadata { group } => match value {
                Some(v) => {
                    let v = GroupMetadataValue::decode(v)?;
                    let old = self.groups.remove(&group);
                    let empty = v.members.is_empty();
                    let mut g = group_from_record(&group, v, now_ms);
                    if let Some(old) = old {
                        g.offsets = old.offsets;
                        // An empty classic record does not end a consumer-protocol group.
                        if empty {
                            g.modern = old.modern;
                        }
                    }
                    self.groups.insert(group, g);
                }
                None => {
                    // The classic group goes; its offsets (and a consumer-protocol group
                    // it became, as Kafka writes it) stay.
                    if let Some(old) = self.groups.remove(&group) {
                        let mut g = Group::new(&group, now_ms);
                        g.offsets = old.offsets;
                        g.modern = old.modern;
                        if !g.is_trivially_empty() {
                            self.groups.insert(group, g);
                        }
                    }
                }
            },
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // JoinGroup
    // ------------------------------------------------------------------

    /// JoinGroup. The response is usually held until the join phase completes
    /// (in this or a later [`Output`], e.g. from [`GroupCoordinator::tick`]).
    pub fn join(&mut self, req: JoinRequest, now_ms: i64) -> Output {
        self.join_with(req, &consumer::NoTopics, now_ms)
    }

    /// JoinGroup, with the topics a classic member of a consumer-protocol group may be
    /// assigned (see [`crate::consumer`]); such a member is answered at once.
    pub fn join_with(&mut self, req: JoinRequest, topics: &dyn TopicView, now_ms: i64) -> Output {
        let mut out = Output::default();
        let rid = req.request_id;
        let err = self.join_check(&req);
        if !err.is_ok() {
            out.respond(
                rid,
                Response::Join(JoinResponse::error(err, &req.member_id)),
            );
            return out;
        }
        let existed = self.groups.contains_key(&req.group_id);
        let group_id = req.group_id.clone();
        let g = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(&group_id, now_ms));
        if let Some(modern) = g.modern.as_mut() {
            if !modern.members.is_empty() {
                // A classic member of a consumer-protocol group: the coordinator assigns.
                let mut b = [0u8; 16];
                self.rng.fill_bytes(&mut b);
                let response = migration::join(
                    modern,
                    &req,
                    consumer::member_id(b),
                    topics,
                    &self.config.consumer,
                    now_ms,
                );
                out.records = std::mem::take(&mut modern.records);
                out.respond(rid, Response::Join(response));
                return out;
            }
            out.records.extend(modern.tombstones());
            g.modern = None;
        }
        let mut cx = Cx {
            config: &self.config,
            rng: &mut self.rng,
            now: now_ms,
            out: &mut out,
        };
        join_group(g, &req, &mut cx);
        if !existed && g.is_trivially_empty() {
            self.groups.remove(&group_id);
        }
        out
    }

    /// The JoinGroup checks made before the group is looked at or created.
    fn join_check(&self, req: &JoinRequest) -> ErrorCode {
        let err = self.check_group_id(&req.group_id);
        if !err.is_ok() {
            return err;
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return ErrorCode::InvalidSessionTimeout;
        }
        if [&req.member_id, &req.client_id, &req.client_host]
            .into_iter()
            .chain(&req.group_instance_id)
            .any(|s| !fits(s))
        {
            return ErrorCode::InvalidRequest;
        }
        if !fits(&req.protocol_type) || req.protocols.iter().any(|(n, _)| !fits(n)) {
            return ErrorCode::InconsistentGroupProtocol;
        }
        if !self.groups.contains_key(&req.group_id) && !req.member_id.is_empty() {
            return ErrorCode::UnknownMemberId;
        }
        ErrorCode::None
    }

    // ------------------------------------------------------------------
    // SyncGroup
    // ------------------------------------------------------------------

    /// SyncGroup. Followers are held until the leader syncs.
    pub fn sync(&mut self, req: SyncRequest, now_ms: i64) -> Output {
        let mut out = Output::default();
        let rid = req.request_id;
        let err = self.check_group_id(&req.group_id);
        let mut cx = Cx {
            config: &self.config,
            rng: &mut self.rng,
            now: now_ms,
            out: &mut out,
        };
        if !err.is_ok() {
            cx.sync_error(rid, err);
            return out;
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            cx.sync_error(rid, ErrorCode::UnknownMemberId);
            return out;
        };
        if let Some(c) = g.modern.as_mut() {
            let response = migration::sync(c, &req, now_ms);
            out.respond(rid, Response::Sync(response));
            return out;
        }
        sync_group(g, &req, &mut cx);
        out
    }

    // ------------------------------------------------------------------
    // Heartbeat
    // ------------------------------------------------------------------

    /// Heartbeat: resets the member's session timer.
    pub fn heartbeat(&mut self, req: HeartbeatRequest, now_ms: i64) -> Output {
        let mut out = Output::default();
        let error = self.heartbeat_error(&req, now_ms);
        out.respond(
            req.request_id,
            Response::Heartbeat(HeartbeatResponse { error }),
        );
        out
    }

    fn heartbeat_error(&mut self, req: &HeartbeatRequest, now_ms: i64) -> ErrorCode {
        let err = self.check_group_id(&req.group_id);
        if !err.is_ok() {
            return err;
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if let Some(c) = g.modern.as_mut() {
            return migration::heartbeat(
                c,
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id,
                now_ms,
            );
        }
        if g.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
            return ErrorCode::FencedInstanceId;
        }
        let generation = g.generation;
        let state = g.state;
        let Some(m) = g.members.get_mut(&req.member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if req.generation_id != generation {
            return ErrorCode::IllegalGeneration;
        }
        match state {
            GroupState::Empty | GroupState::Assigning | GroupState::Reconciling => {
                ErrorCode::UnknownMemberId
            }
            GroupState::Dead => ErrorCode::CoordinatorNotAvailable,
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
                ErrorCode::None
            }
            GroupState::PreparingRebalance => {
                m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
                ErrorCode::RebalanceInProgress
            }
        }
    }

    // ------------------------------------------------------------------
    // ConsumerGroupHeartbeat (KIP-848)
    // ------------------------------------------------------------------

    /// ConsumerGroupHeartbeat: joins, heartbeats, reconciles or leaves a consumer-protocol
    /// group (see [`crate::consumer`]). It writes nothing: the membership of such groups
    /// is kept in memory.
    pub fn consumer_heartbeat(
        &mut self,
        request_id: RequestId,
        req: ConsumerHeartbeatRequest,
        topics: &dyn TopicView,
        now_ms: i64,
    ) -> Output {
        let group_id = req.group_id.clone();
        let mut out = Output::default();
        let response = self.consumer_heartbeat_inner(req, topics, now_ms, &mut out);
        if let Some(g) = self.groups.get_mut(&group_id) {
            if let Some(c) = g.modern.as_mut() {
                out.records = std::mem::take(&mut c.records);
            }
            if g.is_trivially_empty() {
                out.records.extend(g.dropped_records());
                self.groups.remove(&group_id);
            }
        }
        out.respond(request_id, Response::ConsumerHeartbeat(response));
        out
    }

    fn consumer_heartbeat_inner(
        &mut self,
        req: ConsumerHeartbeatRequest,
        topics: &dyn TopicView,
        now_ms: i64,
        out: &mut Output,
    ) -> ConsumerHeartbeatResponse {
        if let Err(e) = consumer::validate(&req, &self.config.consumer) {
            return e;
        }
        let err = self.check_group_id(&req.group_id);
        if !err.is_ok() {
            return ConsumerHeartbeatResponse::error(err, format!("group {}", req.group_id));
        }
        let epoch = req.member_epoch;
        let group_id = req.group_id.clone();
        let member_id = if req.member_id.is_empty() {
            let mut b = [0u8; 16];
            self.rng.fill_bytes(&mut b);
            consumer::member_id(b)
        } else {
            req.member_id.clone()
        };
        let g = self.groups.get(&group_id);
        let classic_with_members =
            |g: &Group| g.modern.is_none() && !(g.is_in(GroupState::Empty) && g.members.is_empty());
        if g.is_some_and(classic_with_members) {
            return self.upgrade_and_heartbeat(req, member_id, topics, now_ms, out);
        }
        if epoch != 0 && g.is_none_or(|g| g.modern.is_none()) {
            // Never known, deleted, or only offsets: a member with an epoch joins again
            // (a leave is answered as Kafka does).
            return ConsumerHeartbeatResponse::error(
                if epoch < 0 {
                    ErrorCode::GroupIdNotFound
                } else {
                    ErrorCode::UnknownMemberId
                },
                format!("Member {member_id} is not a member of group {group_id}."),
            );
        }
        let g = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(&group_id, now_ms));
        if g.modern.is_none() {
            // A group that only holds offsets (or was emptied) takes the new protocol; an
            // emptied classic group's record goes, as Kafka writes it.
            g.pending_members.clear();
            let mut c = ConsumerGroup {
                id: group_id.clone(),
                ..Default::default()
            };
            if g.protocol_type.is_some() || g.generation > 0 {
                c.records.push((
                    RecordKey::GroupMetadata {
                        group: group_id.clone(),
                    }
                    .encode(),
                    None,
                ));
                let offsets = std::mem::take(&mut g.offsets);
                *g = Group::new(&group_id, now_ms);
                g.offsets = offsets;
            }
            g.modern = Some(Box::new(c));
        }
        let Some(c) = g.modern.as_mut() else {
            return ConsumerHeartbeatResponse::error(ErrorCode::UnknownServerError, "no group");
        };
        let had_members = !c.members.is_empty();
        // The leaving member as named, its instance id (if any) its own.
        let named = req
            .instance_id
            .as_ref()
            .is_none_or(|i| c.instances.get(i) == Some(&member_id));
        if epoch == consumer::LEAVE_EPOCH && named {
            let mut cx = Cx {
                config: &self.config,
                rng: &mut self.rng,
                now: now_ms,
                out,
            };
            if maybe_downgrade(g, &member_id, &mut cx) {
                return ConsumerHeartbeatResponse {
                    member_id: Some(member_id),
                    member_epoch: epoch,
                    ..Default::default()
                };
            }
        }
        let Some(c) = g.modern.as_mut() else {
            return ConsumerHeartbeatResponse::error(ErrorCode::UnknownServerError, "no group");
        };
        let resp = consumer::heartbeat(
            c,
            &group_id,
            &req,
            member_id,
            topics,
            &self.config.consumer,
            now_ms,
        );
        if had_members && c.members.is_empty() {
            // Offsets retention counts from when the group emptied.
            g.state_timestamp = Some(now_ms);
        }
        resp
    }

    /// A consumer-protocol member joins a classic group with members: the group becomes a
    /// consumer group (when `group.consumer.migration.policy` and Kafka's checks allow) and
    /// the heartbeat goes on in it. Held JoinGroups and SyncGroups of the classic group are
    /// answered REBALANCE_IN_PROGRESS; its members rejoin into the consumer group. If the
    /// heartbeat fails, the group stays as it was.
    fn upgrade_and_heartbeat(
        &mut self,
        req: ConsumerHeartbeatRequest,
        member_id: String,
        topics: &dyn TopicView,
        now_ms: i64,
        out: &mut Output,
    ) -> ConsumerHeartbeatResponse {
        let group_id = req.group_id.clone();
        let not_consumer = || {
            ConsumerHeartbeatResponse::error(
                ErrorCode::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            )
        };
        let config = &self.config.consumer;
        let Some(g) = self.groups.get_mut(&group_id) else {
            return not_consumer();
        };
        if req.member_epoch != 0 || !migration::may_upgrade(g, config) {
            return not_consumer();
        }
        let converted = match migration::upgrade(g, topics, now_ms) {
            Ok(c) => c,
            Err(message) => {
                return ConsumerHeartbeatResponse::error(ErrorCode::GroupIdNotFound, message)
            }
        };
        // The heartbeat runs on the converted group before it replaces the classic one, so
        // a failed heartbeat leaves the group as it was.
        let mut c = converted;
        let resp = consumer::heartbeat(&mut c, &group_id, &req, member_id, topics, config, now_ms);
        if !resp.error.is_ok() {
            return resp;
        }
        tracing::info!(group = %group_id, generation = g.generation, "classic group upgraded to a consumer group");
        let tombstone = RecordKey::GroupMetadata {
            group: group_id.clone(),
        };
        c.records.insert(0, (tombstone.encode(), None));
        let mut upgraded = Group::new(&group_id, now_ms);
        upgraded.offsets = std::mem::take(&mut g.offsets);
        upgraded.modern = Some(Box::new(c));
        let classic = std::mem::replace(g, upgraded);
        for m in classic.members.values() {
            if let Some(r) = m.awaiting_join {
                out.respond(
                    r,
                    Response::Join(JoinResponse::error(ErrorCode::RebalanceInProgress, &m.id)),
                );
            }
            if let Some(r) = m.awaiting_sync {
                out.respond(
                    r,
                    Response::Sync(SyncResponse::error(ErrorCode::RebalanceInProgress)),
                );
            }
        }
        resp
    }

    /// ConsumerGroupDescribe: consumer-protocol groups; a classic or unknown group is
    /// GROUP_ID_NOT_FOUND.
    pub fn consumer_describe(&self, group_ids: &[String]) -> Vec<DescribedConsumerGroup> {
        group_ids
            .iter()
            .map(|id| {
                let err = self.check_group_id(id);
                let modern = self.groups.get(id).and_then(|g| g.modern.as_deref());
                match modern {
                    Some(c) if err.is_ok() => consumer::describe(c, id, &self.config.consumer),
                    _ => DescribedConsumerGroup {
                        error: if err.is_ok() {
                            ErrorCode::GroupIdNotFound
                        } else {
                            err
                        },
                        message: err.is_ok().then(|| match self.groups.get(id) {
                            Some(_) => format!("Group {id} is not a consumer group."),
                            None => format!("Group {id} not found."),
                        }),
                        group_id: id.clone(),
                        state: "Dead".to_owned(),
                        group_epoch: 0,
                        assignment_epoch: 0,
                        assignor: String::new(),
                        members: Vec::new(),
                        topic_names: BTreeMap::new(),
                    },
                }
            })
            .collect()
    }

    // ------------------------------------------------------------------
    // LeaveGroup
    // ------------------------------------------------------------------

    /// LeaveGroup: removes the members (a rebalance follows).
    pub fn leave(&mut self, req: LeaveRequest, now_ms: i64) -> Output {
        let mut out = Output::default();
        let err = self.check_group_id(&req.group_id);
        if !err.is_ok() {
            out.respond(
                req.request_id,
                Response::Leave(LeaveResponse {
                    error: err,
                    members: Vec::new(),
                }),
            );
            return out;
        }
        let mut results = Vec::new();
        let mut cx = Cx {
            config: &self.config,
            rng: &mut self.rng,
            now: now_ms,
            out: &mut out,
        };
        let mut group = self.groups.get_mut(&req.group_id);
        let mut left = false;
        for lm in &req.members {
            let mut member_id = lm.member_id.clone();
            let error = match group.as_deref_mut() {
                None => ErrorCode::UnknownMemberId,
                Some(g) => match g.modern.as_mut() {
                    Some(c) => match migration::leave(c, lm) {
                        Ok(id) => {
                            left = true;
                            member_id = id;
                            ErrorCode::None
                        }
                        Err(e) => e,
                    },
                    None => leave_member(g, lm, &mut cx),
                },
            };
            if let Some(reason) = &lm.reason {
                tracing::debug!(group = %req.group_id, member = %lm.member_id, %reason, "leave");
            }
            results.push(LeaveMemberResult {
                member_id,
                group_instance_id: lm.group_instance_id.clone(),
                error,
            });
        }
        if let Some(g) = group {
            if let Some(c) = g.modern.as_mut() {
                if left {
                    c.group_epoch = c.group_epoch.wrapping_add(1);
                    c.record_epoch();
                    if c.members.is_empty() {
                        g.state_timestamp = Some(now_ms);
                    }
                }
                cx.out.records.append(&mut c.records);
            }
        }
        out.respond(
            req.request_id,
            Response::Leave(LeaveResponse {
                error: ErrorCode::None,
                members: results,
            }),
        );
        if let Some(g) = self
            .groups
            .get(&req.group_id)
            .filter(|g| g.modern.is_some() && g.is_trivially_empty())
        {
            out.records.extend(g.dropped_records());
            self.groups.remove(&req.group_id);
        }
        out
    }

    // ------------------------------------------------------------------
    // Offsets
    // ------------------------------------------------------------------

    /// OffsetCommit. Committed offsets are visible to
    /// [`GroupCoordinator::fetch_offsets`] immediately (the server persists the
    /// records before it answers, see [`Output`]). A request's retention time
    /// is not supported (KIP-211 deprecated it); the broker-wide retention of
    /// [`GroupCoordinator::expire_offsets`] applies.
    pub fn commit_offsets(&mut self, req: OffsetCommitRequest, now_ms: i64) -> Output {
        let mut out = Output::default();
        let error = self.commit_check(&req, now_ms);
        let topics = if error.is_ok() {
            match self.groups.get_mut(&req.group_id) {
                Some(g) => {
                    let results = commit_partitions(g, &req.topics, now_ms, &mut out, None);
                    for (topic, parts) in &req.topics {
                        for p in parts {
                            self.supersede_pending(&req.group_id, topic, p.partition);
                        }
                    }
                    results
                }
                None => all_partitions(&req.topics, ErrorCode::UnknownServerError),
            }
        } else {
            all_partitions(&req.topics, error)
        };
        out.respond(
            req.request_id,
            Response::OffsetCommit(OffsetCommitResponse { topics }),
        );
        out
    }

    /// TxnOffsetCommit: offsets committed within the transaction of producer
    /// `producer_id`. Their records are to be written as that producer's transactional
    /// batch ([`Output::producer`]); once written, the server hands them back with
    /// [`GroupCoordinator::replay_txn`], which holds them pending until the producer's
    /// marker reaches this partition ([`GroupCoordinator::complete_txn`]). The group is
    /// created if it does not exist; a member id and generation, when given, must be the
    /// group's.
    pub fn txn_commit_offsets(&mut self, req: TxnOffsetCommitRequest, now_ms: i64) -> Output {
        let mut out = Output {
            producer: Some((req.producer_id, req.producer_epoch)),
            ..Output::default()
        };
        let mut error = self.check_group_id(&req.group_id);
        if error.is_ok() {
            let g = self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id, now_ms));
            let modern_epoch = g
                .modern
                .as_ref()
                .map(|c| c.members.get(&req.member_id).map(|m| m.epoch));
            error = if g.is_in(GroupState::Dead) {
                ErrorCode::CoordinatorNotAvailable
            } else if let Some(epoch) = modern_epoch {
                match epoch {
                    None if !req.member_id.is_empty() => ErrorCode::UnknownMemberId,
                    Some(e) if req.generation_id >= 0 && req.generation_id != e => {
                        ErrorCode::IllegalGeneration
                    }
                    _ => ErrorCode::None,
                }
            } else if g.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
                ErrorCode::FencedInstanceId
            } else if !req.member_id.is_empty() && !g.members.contains_key(&req.member_id) {
                ErrorCode::UnknownMemberId
            } else if req.generation_id >= 0 && req.generation_id != g.generation {
                ErrorCode::IllegalGeneration
            } else {
                ErrorCode::None
            };
        }
        let topics = match self.groups.get_mut(&req.group_id) {
            Some(g) if error.is_ok() => {
                // Nothing is pending before the records are written.
                let mut staged = BTreeMap::new();
                commit_partitions(g, &req.topics, now_ms, &mut out, Some(&mut staged))
            }
            _ => all_partitions(&req.topics, error),
        };
        out.respond(
            req.request_id,
            Response::TxnOffsetCommit(OffsetCommitResponse { topics }),
        );
        out
    }

    /// A plain commit of `group`'s `topic` `partition` comes after (in the log) any offset
    /// an open transaction committed for it: when that transaction commits, the later
    /// commit stays (Kafka keeps whichever offset record is newer in the log).
    fn supersede_pending(&mut self, group: &str, topic: &str, partition: i32) {
        if self.pending_txn.is_empty() {
            return;
        }
        let key = (group.to_string(), topic.to_string(), partition);
        for pending in self.pending_txn.values_mut() {
            pending.remove(&key);
        }
        self.pending_txn.retain(|_, p| !p.is_empty());
    }

    /// The transaction of `producer_id` ended here (its marker is written): its pending
    /// offsets take effect if it committed, and are dropped if it aborted.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool, now_ms: i64) {
        let Some(pending) = self.pending_txn.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for ((group, topic, partition), entry) in pending {
            let g = self
                .groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, now_ms));
            g.offsets.entry(topic).or_default().insert(partition, entry);
        }
    }

    /// Whether an open transaction has committed an offset of `group`'s `topic`
    /// `partition` (OffsetFetch with RequireStable answers UNSTABLE_OFFSET_COMMIT for it).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (group.to_string(), topic.to_string(), partition);
        self.pending_txn.values().any(|p| p.contains_key(&key))
    }

    /// Whether any transaction has offsets pending here (the server does not rewrite the
    /// partition while so: those records must stay as the producer wrote them).
    pub fn has_pending_txn(&self) -> bool {
        !self.pending_txn.is_empty()
    }

    /// Validates a commit; may create a standalone group; resets the session.
    fn commit_check(&mut self, req: &OffsetCommitRequest, now_ms: i64) -> ErrorCode {
        let err = self.check_group_id(&req.group_id);
        if !err.is_ok() {
            return err;
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            if req.generation_id < 0 {
                self.groups
                    .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
                return ErrorCode::None;
            }
            // A member of a group this coordinator does not know (a consumer-protocol group
            // forgotten by a coordinator that moved) joins again.
            return match (req.api_version >= 9, req.member_id.is_empty()) {
                (true, false) => ErrorCode::UnknownMemberId,
                (true, true) => ErrorCode::GroupIdNotFound,
                (false, _) => ErrorCode::IllegalGeneration,
            };
        };
        if let Some(modern) = &g.modern {
            if req.generation_id < 0 && modern.members.is_empty() {
                return ErrorCode::None;
            }
            let Some(m) = modern.members.get(&req.member_id) else {
                return ErrorCode::UnknownMemberId;
            };
            if m.classic.is_some() {
                // A classic member commits at any version, with its epoch as generation.
                if req.generation_id != m.epoch {
                    return ErrorCode::IllegalGeneration;
                }
                return ErrorCode::None;
            }
            if req.api_version < 9 {
                return ErrorCode::UnsupportedVersion;
            }
            if req.generation_id != m.epoch {
                return ErrorCode::StaleMemberEpoch;
            }
            return ErrorCode::None;
        }
        if g.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
            return ErrorCode::FencedInstanceId;
        }
        if req.generation_id < 0 && g.is_in(GroupState::Empty) {
            return ErrorCode::None;
        }
        let generation = g.generation;
        let state = g.state;
        let Some(m) = g.members.get_mut(&req.member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if req.generation_id != generation {
            return ErrorCode::IllegalGeneration;
        }
        match state {
            GroupState::Stable | GroupState::PreparingRebalance => {
                m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
                ErrorCode::None
            }
            GroupState::CompletingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => ErrorCode::UnknownMemberId,
        }
    }

    /// Every live group and committed offset as records, as if the log had been compacted
    /// to its latest values. Replaying these into an empty coordinator yields the same
    /// groups and offsets; the server writes them to start a fresh, short log.
    pub fn snapshot_records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for g in self.groups.values() {
            if g.is_in(GroupState::Dead) {
                continue;
            }
            if g.protocol_type.is_some() || g.generation > 0 {
                out.push(group_record(g));
            }
            if let Some(c) = &g.modern {
                out.extend(c.snapshot_records());
            }
            for (topic, parts) in &g.offsets {
                for (partition, e) in parts {
                    let key = RecordKey::OffsetCommit {
                        group: g.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    let value = OffsetCommitValue {
                        offset: e.offset,
                        leader_epoch: e.leader_epoch,
                        metadata: e.metadata.clone(),
                        commit_timestamp: e.commit_timestamp,
                        expire_timestamp: e.expire_timestamp,
                    };
                    out.push((key.encode(), Some(value.encode())));
                }
            }
        }
        out
    }

    /// OffsetFetch for one group: -1 / -1 / "" for partitions without a
    /// committed offset; `topics == None` returns all committed offsets.
    pub fn fetch_offsets(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        let err = self.check_group_id(&req.group_id);
        if !err.is_ok() {
            return OffsetFetchResponse {
                error: err,
                topics: Vec::new(),
            };
        }
        let g = self.groups.get(&req.group_id);
        if let (Some((member_id, epoch)), Some(modern)) =
            (&req.member, g.and_then(|g| g.modern.as_ref()))
        {
            let error = match modern.members.get(member_id) {
                None => ErrorCode::UnknownMemberId,
                Some(m) if m.epoch != *epoch && m.classic.is_some() => ErrorCode::IllegalGeneration,
                Some(m) if m.epoch != *epoch => ErrorCode::StaleMemberEpoch,
                Some(_) => ErrorCode::None,
            };
            if !error.is_ok() {
                return OffsetFetchResponse {
                    error,
                    topics: Vec::new(),
                };
            }
        }
        let fetched = |partition: i32, e: Option<&OffsetEntry>| match e {
            Some(e) => FetchedPartition {
                partition,
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata: e.metadata.clone(),
                error: ErrorCode::None,
            },
            None => FetchedPartition {
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error: ErrorCode::None,
            },
        };
        let topics = match &req.topics {
            Some(list) => list
                .iter()
                .map(|(topic, parts)| {
                    let committed = g.and_then(|g| g.offsets.get(topic));
                    let parts = parts
                        .iter()
                        .map(|p| fetched(*p, committed.and_then(|c| c.get(p))))
                        .collect();
                    (topic.clone(), parts)
                })
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(topic, parts)| {
                            let parts = parts.iter().map(|(p, e)| fetched(*p, Some(e))).collect();
                            (topic.clone(), parts)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        OffsetFetchResponse {
            error: ErrorCode::None,
            topics,
        }
    }

    // ------------------------------------------------------------------
    // Describe / List / Delete
    // ------------------------------------------------------------------

    /// DescribeGroups. Unknown groups are reported as Dead without error, as
    /// Kafka does (DescribeGroups v6 servers may map that to GROUP_ID_NOT_FOUND).
    pub fn describe(&self, group_ids: &[String]) -> Vec<DescribedGroup> {
        group_ids
            .iter()
            .map(|id| {
                let mut d = DescribedGroup {
                    error: self.check_group_id(id),
                    group_id: id.clone(),
                    state: GroupState::Dead,
                    protocol_type: String::new(),
                    protocol_data: String::new(),
                    members: Vec::new(),
                };
                if !d.error.is_ok() {
                    return d;
                }
                let Some(g) = self.groups.get(id).filter(|g| g.modern.is_none()) else {
                    return d;
                };
                d.state = g.state;
                d.protocol_type = g.protocol_type.clone().unwrap_or_default();
                let stable = g.is_in(GroupState::Stable);
                if stable {
                    d.protocol_data = g.protocol_name.clone().unwrap_or_default();
                }
                d.members = g
                    .members
                    .values()
                    .map(|m| DescribedMember {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: match (&g.protocol_name, stable) {
                            (Some(p), true) => m.metadata(p),
                            _ => Bytes::new(),
                        },
                        assignment: if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                    })
                    .collect();
                d
            })
            .collect()
    }

    /// ListGroups, filtered by state (an empty filter lists all groups).
    pub fn list(&self, states: &[GroupState]) -> Result<Vec<ListedGroup>, ErrorCode> {
        if self.loading {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        Ok(self
            .groups
            .values()
            .map(|g| match &g.modern {
                Some(c) => ListedGroup {
                    group_id: g.id.clone(),
                    protocol_type: "consumer".to_owned(),
                    state: c.state(),
                    group_type: "consumer",
                },
                None => ListedGroup {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state,
                    group_type: "classic",
                },
            })
            .filter(|g| states.is_empty() || states.contains(&g.state))
            .collect())
    }

    /// DeleteGroups: only Empty groups (else NON_EMPTY_GROUP); writes
    /// tombstones for their offsets and metadata.
    pub fn delete_groups(&mut self, req: DeleteGroupsRequest, now_ms: i64) -> Output {
        let mut out = Output::default();
        let mut results = Vec::new();
        for id in &req.group_ids {
            let mut error = self.check_group_id(id);
            if error.is_ok() {
                error = match self.groups.get(id) {
                    None => ErrorCode::GroupIdNotFound,
                    Some(g) if g.is_empty() => ErrorCode::None,
                    Some(_) => ErrorCode::NonEmptyGroup,
                };
            }
            if error.is_ok() {
                if let Some(mut g) = self.groups.remove(id) {
                    delete_group(&mut g, now_ms, &mut out);
                }
            }
            results.push((id.clone(), error));
        }
        out.respond(
            req.request_id,
            Response::DeleteGroups(DeleteGroupsResponse { results }),
        );
        out
    }

    /// OffsetDelete: deletes committed offsets unless a member is subscribed to
    /// the topic (GROUP_SUBSCRIBED_TO_TOPIC per partition); groups other than
    /// Empty ones and "consumer" groups get NON_EMPTY_GROUP.
    pub fn delete_offsets(&mut self, req: OffsetDeleteRequest, _now_ms: i64) -> Output {
        let mut out = Output::default();
        let mut error = self.check_group_id(&req.group_id);
        let mut topics = Vec::new();
        if error.is_ok() {
            match self.groups.get_mut(&req.group_id) {
                None => error = ErrorCode::GroupIdNotFound,
                Some(g) => {
                    let empty = g.is_in(GroupState::Empty);
                    let consumer_topics = g.modern.as_ref().map(|c| c.topics_in_use());
                    if !empty && g.protocol_type.as_deref() != Some("consumer") {
                        error = ErrorCode::NonEmptyGroup;
                    } else {
                        for (topic, parts) in &req.topics {
                            let subscribed = match &consumer_topics {
                                Some(names) => names.contains(topic),
                                None => !empty && g.is_subscribed_to(topic),
                            };
                            let mut results = Vec::new();
                            for p in parts {
                                let error = if subscribed {
                                    ErrorCode::GroupSubscribedToTopic
                                } else {
                                    if remove_offset(g, topic, *p) {
                                        out.records.push(offset_tombstone(&g.id, topic, *p));
                                    }
                                    ErrorCode::None
                                };
                                results.push(PartitionResult {
                                    partition: *p,
                                    error,
                                });
                            }
                            topics.push(TopicResult {
                                name: topic.clone(),
                                partitions: results,
                            });
                        }
                    }
                }
            }
        }
        out.respond(
            req.request_id,
            Response::OffsetDelete(OffsetDeleteResponse { error, topics }),
        );
        out
    }

    // ------------------------------------------------------------------
    // Time
    // ------------------------------------------------------------------

    /// Handles every timer due at `now_ms`: session expiry (including member
    /// ids handed out with MEMBER_ID_REQUIRED that never rejoined), the
    /// initial rebalance delay, the rebalance timeout (completing the join
    /// phase and answering held JoinGroups) and the SyncGroup timeout.
    pub fn tick(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        let mut cx = Cx {
            config: &self.config,
            rng: &mut self.rng,
            now: now_ms,
            out: &mut out,
        };
        let mut drop = Vec::new();
        for (id, g) in self.groups.iter_mut() {
            for _ in 0..MAX_EVENTS_PER_TICK {
                if !tick_group(g, &mut cx) {
                    break;
                }
            }
            expire_consumer_members(g, &mut cx);
            if g.is_trivially_empty() {
                cx.out.records.extend(g.dropped_records());
                drop.push(id.clone());
            }
        }
        for id in drop {
            self.groups.remove(&id);
        }
        out
    }

    /// The earliest time at which [`GroupCoordinator::tick`] has work, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .flat_map(|g| {
                group_deadline(g)
                    .into_iter()
                    .chain(g.modern.as_ref().and_then(|c| c.next_deadline()))
            })
            .min()
    }

    /// Offsets retention: removes offsets older than `retention_ms`
    /// (`offsets.retention.minutes`) and returns their tombstones. KIP-211:
    /// for an Empty group the age counts from when the group became Empty;
    /// for a group that only stores offsets, from the commit; for a Stable
    /// "consumer" group only offsets of topics no member subscribes to
    /// expire, counted from the commit. An Empty group left without offsets
    /// is deleted (group tombstone).
    pub fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> Output {
        let mut out = Output::default();
        let mut deleted = Vec::new();
        for (id, g) in self.groups.iter_mut() {
            let expired = expired_offsets(g, now_ms, retention_ms);
            for (topic, p) in expired {
                remove_offset(g, &topic, p);
                out.records.push(offset_tombstone(id, &topic, p));
            }
            if g.is_empty() && g.offsets.is_empty() && g.pending_members.is_empty() {
                deleted.push(id.clone());
            }
        }
        for id in deleted {
            if let Some(mut g) = self.groups.remove(&id) {
                delete_group(&mut g, now_ms, &mut out);
            }
        }
        out
    }
}

// ----------------------------------------------------------------------
// Group logic
// ----------------------------------------------------------------------

/// Whether a string fits the int16 length prefix of the records.
fn fits(s: &str) -> bool {
    s.len() <= i16::MAX as usize
}

fn join_group(g: &mut Group, req: &JoinRequest, cx: &mut Cx<'_>) {
    let rid = req.request_id;
    let unknown = req.member_id.is_empty();
    let pending = !unknown && g.pending_members.contains_key(&req.member_id);
    if let Some(reason) = &req.reason {
        tracing::debug!(group = %g.id, member = %req.member_id, %reason, "join");
    }
    if !g.supports_protocols(&req.protocol_type, &req.protocols) {
        cx.join_error(rid, ErrorCode::InconsistentGroupProtocol, &req.member_id);
        return;
    }
    let known_static = req
        .group_instance_id
        .as_ref()
        .and_then(|i| g.static_members.get(i))
        .cloned();
    let size_after_add = g.members.len() + g.pending_members.len() + usize::from(!pending);
    let full = cx.config.max_size.is_some_and(|max| size_after_add > max);
    if unknown {
        if let Some(old_id) = known_static {
            update_static_member(g, &old_id, req, cx);
        } else if full {
            cx.join_error(rid, ErrorCode::GroupMaxSizeReached, &req.member_id);
            return;
        } else if let Some(instance) = &req.group_instance_id {
            let id = cx.member_id(instance);
            add_member_and_rebalance(g, req, id, cx);
        } else if req.api_version >= 4 {
            let id = cx.member_id(&req.client_id);
            g.pending_members
                .insert(id.clone(), cx.now + i64::from(req.session_timeout_ms));
            cx.join_error(rid, ErrorCode::MemberIdRequired, &id);
            return;
        } else {
            let id = cx.member_id(&req.client_id);
            add_member_and_rebalance(g, req, id, cx);
        }
    } else if pending {
        if full {
            g.pending_members.remove(&req.member_id);
            cx.join_error(rid, ErrorCode::GroupMaxSizeReached, &req.member_id);
            return;
        }
        add_member_and_rebalance(g, req, req.member_id.clone(), cx);
    } else if g.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
        cx.join_error(rid, ErrorCode::FencedInstanceId, &req.member_id);
        return;
    } else if let Some(m) = g.members.get(&req.member_id) {
        let same = m.protocols == req.protocols;
        let is_leader = g.leader.as_deref() == Some(req.member_id.as_str());
        match g.state {
            GroupState::PreparingRebalance => update_member_and_rebalance(g, req, cx),
            GroupState::CompletingRebalance if same => {
                let resp = join_success(g, &req.member_id, is_leader, None);
                cx.out.respond(rid, Response::Join(resp));
            }
            GroupState::Stable if same && !is_leader => {
                let resp = join_success(g, &req.member_id, false, None);
                cx.out.respond(rid, Response::Join(resp));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                update_member_and_rebalance(g, req, cx)
            }
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => {
                cx.join_error(rid, ErrorCode::UnknownMemberId, &req.member_id);
                return;
            }
        }
    } else {
        cx.join_error(rid, ErrorCode::UnknownMemberId, &req.member_id);
        return;
    }
    try_complete_join(g, cx);
}

/// The JoinGroup response of the current generation.
fn join_success(
    g: &Group,
    member_id: &str,
    with_members: bool,
    leader: Option<String>,
) -> JoinResponse {
    let protocol = g.protocol_name.clone();
    let members = if with_members {
        g.members_by_seq()
            .into_iter()
            .map(|m| JoinMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: protocol
                    .as_deref()
                    .map(|p| m.metadata(p))
                    .unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResponse {
        error: ErrorCode::None,
        generation_id: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol_name: protocol,
        leader: leader.or_else(|| g.leader.clone()).unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_owned(),
        members,
    }
}

fn add_member_and_rebalance(g: &mut Group, req: &JoinRequest, id: String, cx: &mut Cx<'_>) {
    if g.members.is_empty() {
        g.protocol_type = Some(req.protocol_type.clone());
    }
    let seq = g.next_seq;
    g.next_seq += 1;
    if g.leader.is_none() {
        g.leader = Some(id.clone());
    }
    if let Some(instance) = &req.group_instance_id {
        g.static_members.insert(instance.clone(), id.clone());
    }
    g.pending_members.remove(&id);
    if matches!(g.join_timer, Some(JoinTimer::Initial { .. })) {
        g.new_member_added = true;
    }
    tracing::debug!(group = %g.id, member = %id, "member added");
    g.members.insert(
        id.clone(),
        Member {
            id,
            instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: Some(req.request_id),
            awaiting_sync: None,
            session_deadline: cx.now + i64::from(req.session_timeout_ms),
            seq,
        },
    );
    maybe_prepare_rebalance(g, cx);
}

fn update_member(m: &mut Member, req: &JoinRequest) {
    m.protocols = req.protocols.clone();
    m.protocol_type = req.protocol_type.clone();
    m.session_timeout_ms = req.session_timeout_ms;
    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    m.client_id = req.client_id.clone();
    m.client_host = req.client_host.clone();
}

/// Records a held JoinGroup for the member, answering an older one.
fn hold_join(m: &mut Member, rid: RequestId, cx: &mut Cx<'_>) {
    if let Some(old) = m.awaiting_join.replace(rid) {
        if old != rid {
            cx.join_error(old, ErrorCode::RebalanceInProgress, &m.id);
        }
    }
}

fn update_member_and_rebalance(g: &mut Group, req: &JoinRequest, cx: &mut Cx<'_>) {
    let m = g.members.get_mut(&req.member_id);
    assert!(m.is_some(), "updating an unknown member");
    if let Some(m) = m {
        update_member(m, req);
        hold_join(m, req.request_id, cx);
    }
    maybe_prepare_rebalance(g, cx);
}

/// A static member rejoined with an unknown member id: it takes over the old
/// member (KIP-345); the old id is fenced from now on.
fn update_static_member(g: &mut Group, old_id: &str, req: &JoinRequest, cx: &mut Cx<'_>) {
    let Some(instance) = req.group_instance_id.clone() else {
        unreachable!("static member without instance id");
    };
    let Some(mut m) = g.members.remove(old_id) else {
        unreachable!("static member map points to a missing member");
    };
    let new_id = cx.member_id(&instance);
    let old_leader = g.leader.clone();
    if let Some(r) = m.awaiting_join.take() {
        cx.join_error(r, ErrorCode::FencedInstanceId, old_id);
    }
    if let Some(r) = m.awaiting_sync.take() {
        cx.sync_error(r, ErrorCode::FencedInstanceId);
    }
    tracing::debug!(group = %g.id, old = %old_id, new = %new_id, %instance, "static member replaced");
    m.id = new_id.clone();
    update_member(&mut m, req);
    m.session_deadline = cx.now + i64::from(m.session_timeout_ms);
    g.static_members.insert(instance, new_id.clone());
    if g.leader.as_deref() == Some(old_id) {
        g.leader = Some(new_id.clone());
    }
    if g.pending_sync.remove(old_id) {
        g.pending_sync.insert(new_id.clone());
    }
    g.members.insert(new_id.clone(), m);
    match g.state {
        GroupState::Stable if g.select_protocol() == g.protocol_name => {
            cx.out.records.push(group_record(g));
            // The old leader id is returned so that a replaced leader does not
            // compute an assignment a Stable group would not distribute.
            let resp = join_success(g, &new_id, false, old_leader);
            cx.out.respond(req.request_id, Response::Join(resp));
        }
        GroupState::Stable | GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
            if let Some(m) = g.members.get_mut(&new_id) {
                hold_join(m, req.request_id, cx);
            }
            maybe_prepare_rebalance(g, cx);
        }
        GroupState::Empty | GroupState::Dead | GroupState::Assigning | GroupState::Reconciling => {
            unreachable!("a classic group with members is neither Empty nor Dead nor in a consumer group's state")
        }
    }
}

fn maybe_prepare_rebalance(g: &mut Group, cx: &mut Cx<'_>) {
    if matches!(
        g.state,
        GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
    ) {
        prepare_rebalance(g, cx);
    }
}

fn prepare_rebalance(g: &mut Group, cx: &mut Cx<'_>) {
    if g.is_in(GroupState::CompletingRebalance) {
        for m in g.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(r) = m.awaiting_sync.take() {
                cx.sync_error(r, ErrorCode::RebalanceInProgress);
                // Sessions do not expire while a request is held; restart it.
                m.session_deadline = cx.now + i64::from(m.session_timeout_ms);
            }
        }
    }
    let was_empty = g.is_in(GroupState::Empty);
    let rebalance_timeout = g.rebalance_timeout_ms();
    g.transition(GroupState::PreparingRebalance, cx.now);
    let delay = cx
        .config
        .initial_rebalance_delay_ms
        .min(rebalance_timeout)
        .max(0);
    g.join_timer = Some(if was_empty && delay > 0 {
        JoinTimer::Initial {
            deadline: cx.now + delay,
            remaining_ms: rebalance_timeout - delay,
        }
    } else {
        JoinTimer::Rebalance {
            deadline: cx.now + rebalance_timeout,
        }
    });
    g.new_member_added = false;
}

fn try_complete_join(g: &mut Group, cx: &mut Cx<'_>) {
    if g.is_in(GroupState::PreparingRebalance)
        && matches!(g.join_timer, Some(JoinTimer::Rebalance { .. }))
        && g.pending_members.is_empty()
        && g.members.values().all(|m| m.awaiting_join.is_some())
    {
        complete_join(g, cx);
    }
}

/// Ends the join phase: drops dynamic members that did not rejoin, starts the
/// next generation and answers the held JoinGroups.
fn complete_join(g: &mut Group, cx: &mut Cx<'_>) {
    assert!(g.is_in(GroupState::PreparingRebalance));
    let gone: Vec<String> = g
        .members
        .values()
        .filter(|m| m.instance_id.is_none() && m.awaiting_join.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in gone {
        tracing::debug!(group = %g.id, member = %id, "member did not rejoin in time");
        remove_member(g, &id, cx);
    }
    g.join_timer = None;
    let rebalance_timeout = g.rebalance_timeout_ms();
    if !g.members.is_empty() && g.members.values().all(|m| m.awaiting_join.is_none()) {
        // Only static members that did not rejoin are left: wait for them
        // to rejoin or for their sessions to expire.
        g.join_timer = Some(JoinTimer::Rebalance {
            deadline: cx.now + rebalance_timeout.max(1),
        });
        return;
    }
    let leader_joined = g
        .leader
        .as_ref()
        .and_then(|l| g.members.get(l))
        .is_some_and(|m| m.awaiting_join.is_some());
    if !leader_joined {
        g.leader = g.first_member(|m| m.awaiting_join.is_some());
    }
    g.generation = g.generation.wrapping_add(1);
    if g.members.is_empty() {
        g.protocol_name = None;
        g.leader = None;
        g.transition(GroupState::Empty, cx.now);
        cx.out.records.push(group_record(g));
        return;
    }
    g.protocol_name = g.select_protocol();
    g.transition(GroupState::CompletingRebalance, cx.now);
    g.pending_sync = g.members.keys().cloned().collect();
    g.sync_deadline = Some(cx.now + rebalance_timeout);
    let leader = g.leader.clone().unwrap_or_default();
    let for_leader = join_success(g, &leader, true, None);
    let for_followers = join_success(g, "", false, None);
    for m in g.members.values_mut() {
        if let Some(r) = m.awaiting_join.take() {
            let mut resp = if m.id == leader {
                for_leader.clone()
            } else {
                for_followers.clone()
            };
            resp.member_id = m.id.clone();
            cx.out.respond(r, Response::Join(resp));
        }
        m.session_deadline = cx.now + i64::from(m.session_timeout_ms);
    }
}

/// Removes a member without state transitions; held requests get UNKNOWN_MEMBER_ID.
fn remove_member(g: &mut Group, id: &str, cx: &mut Cx<'_>) {
    let Some(m) = g.members.remove(id) else {
        return;
    };
    if let Some(r) = m.awaiting_join {
        cx.join_error(r, ErrorCode::UnknownMemberId, id);
    }
    if let Some(r) = m.awaiting_sync {
        cx.sync_error(r, ErrorCode::UnknownMemberId);
    }
    if let Some(instance) = &m.instance_id {
        if g.static_members.get(instance).map(String::as_str) == Some(id) {
            g.static_members.remove(instance);
        }
    }
    g.pending_sync.remove(id);
    if g.pending_sync.is_empty() {
        g.sync_deadline = None;
    }
    if g.leader.as_deref() == Some(id) {
        g.leader = g.first_member(|_| true);
    }
}

/// Removes a member and rebalances (or completes a join phase waiting for it).
fn remove_member_and_update(g: &mut Group, id: &str, cx: &mut Cx<'_>) {
    remove_member(g, id, cx);
    match g.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(g, cx);
            try_complete_join(g, cx);
        }
        GroupState::PreparingRebalance => try_complete_join(g, cx),
        GroupState::Empty | GroupState::Dead | GroupState::Assigning | GroupState::Reconciling => {}
    }
}

fn leave_member(g: &mut Group, lm: &LeaveMember, cx: &mut Cx<'_>) -> ErrorCode {
    if lm.member_id.is_empty() {
        let target = lm
            .group_instance_id
            .as_ref()
            .and_then(|i| g.static_members.get(i))
            .cloned();
        return match target {
            Some(id) => {
                remove_member_and_update(g, &id, cx);
                ErrorCode::None
            }
            None => ErrorCode::UnknownMemberId,
        };
    }
    if g.is_fenced(&lm.member_id, lm.group_instance_id.as_deref()) {
        return ErrorCode::FencedInstanceId;
    }
    if g.pending_members.remove(&lm.member_id).is_some() {
        try_complete_join(g, cx);
        return ErrorCode::None;
    }
    if !g.members.contains_key(&lm.member_id) {
        return ErrorCode::UnknownMemberId;
    }
    remove_member_and_update(g, &lm.member_id, cx);
    ErrorCode::None
}

fn sync_group(g: &mut Group, req: &SyncRequest, cx: &mut Cx<'_>) {
    let rid = req.request_id;
    if g.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
        return cx.sync_error(rid, ErrorCode::FencedInstanceId);
    }
    if !g.members.contains_key(&req.member_id) {
        return cx.sync_error(rid, ErrorCode::UnknownMemberId);
    }
    if req.generation_id != g.generation {
        return cx.sync_error(rid, ErrorCode::IllegalGeneration);
    }
    if req
        .protocol_type
        .as_ref()
        .is_some_and(|t| g.protocol_type.as_ref() != Some(t))
        || req
            .protocol_name
            .as_ref()
            .is_some_and(|p| g.protocol_name.as_ref() != Some(p))
    {
        return cx.sync_error(rid, ErrorCode::InconsistentGroupProtocol);
    }
    let ok = |assignment: Bytes| {
        Response::Sync(SyncResponse {
            error: ErrorCode::None,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        })
    };
    match g.state {
        GroupState::Empty | GroupState::Dead | GroupState::Assigning | GroupState::Reconciling => {
            cx.sync_error(rid, ErrorCode::UnknownMemberId)
        }
        GroupState::PreparingRebalance => cx.sync_error(rid, ErrorCode::RebalanceInProgress),
        GroupState::Stable => {
            let assignment = g
                .members
                .get(&req.member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            let resp = ok(assignment);
            cx.out.respond(rid, resp);
            mark_synced(g, &req.member_id, cx.now);
        }
        GroupState::CompletingRebalance => {
            mark_synced(g, &req.member_id, cx.now);
            if let Some(m) = g.members.get_mut(&req.member_id) {
                if let Some(old) = m.awaiting_sync.replace(rid) {
                    if old != rid {
                        cx.sync_error(old, ErrorCode::RebalanceInProgress);
                    }
                }
            }
            if g.leader.as_deref() != Some(req.member_id.as_str()) {
                return;
            }
            let assignments: BTreeMap<&str, &Bytes> = req
                .assignments
                .iter()
                .map(|(id, a)| (id.as_str(), a))
                .collect();
            for m in g.members.values_mut() {
                m.assignment = assignments
                    .get(m.id.as_str())
                    .map(|a| (*a).clone())
                    .unwrap_or_default();
            }
            g.transition(GroupState::Stable, cx.now);
            cx.out.records.push(group_record(g));
            let protocol_type = g.protocol_type.clone();
            let protocol_name = g.protocol_name.clone();
            for m in g.members.values_mut() {
                if let Some(r) = m.awaiting_sync.take() {
                    m.session_deadline = cx.now + i64::from(m.session_timeout_ms);
                    cx.out.respond(
                        r,
                        Response::Sync(SyncResponse {
                            error: ErrorCode::None,
                            protocol_type: protocol_type.clone(),
                            protocol_name: protocol_name.clone(),
                            assignment: m.assignment.clone(),
                        }),
                    );
                }
            }
        }
    }
}

fn mark_synced(g: &mut Group, member_id: &str, now: i64) {
    g.pending_sync.remove(member_id);
    if g.pending_sync.is_empty() {
        g.sync_deadline = None;
    }
    if let Some(m) = g.members.get_mut(member_id) {
        m.session_deadline = now + i64::from(m.session_timeout_ms);
    }
}

fn tick_group(g: &mut Group, cx: &mut Cx<'_>) -> bool {
    let now = cx.now;
    let expired: Vec<String> = g
        .pending_members
        .iter()
        .filter(|(_, d)| **d <= now)
        .map(|(id, _)| id.clone())
        .collect();
    if !expired.is_empty() {
        for id in &expired {
            tracing::debug!(group = %g.id, member = %id, "pending member expired");
            g.pending_members.remove(id);
        }
        try_complete_join(g, cx);
        return true;
    }
    let session_expired = g
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none())
        .filter(|m| m.session_deadline <= now)
        .min_by_key(|m| m.seq)
        .map(|m| m.id.clone());
    if let Some(id) = session_expired {
        tracing::debug!(group = %g.id, member = %id, "session expired");
        remove_member_and_update(g, &id, cx);
        return true;
    }
    if g.sync_deadline.is_some_and(|d| d <= now) {
        g.sync_deadline = None;
        let late = std::mem::take(&mut g.pending_sync);
        for id in late {
            tracing::debug!(group = %g.id, member = %id, "member did not sync in time");
            remove_member_and_update(g, &id, cx);
        }
        return true;
    }
    match g.join_timer {
        Some(t) if t.deadline() <= now => {
            match t {
                JoinTimer::Initial {
                    remaining_ms,
                    deadline,
                } if g.new_member_added && remaining_ms > 0 => {
                    // Extensions count from the expired deadline, so a late
                    // tick does not stretch the delay.
                    let delay = cx.config.initial_rebalance_delay_ms.min(remaining_ms);
                    g.new_member_added = false;
                    g.join_timer = Some(if delay > 0 {
                        JoinTimer::Initial {
                            deadline: deadline + delay,
                            remaining_ms: remaining_ms - delay,
                        }
                    } else {
                        JoinTimer::Rebalance { deadline }
                    });
                }
                _ => complete_join(g, cx),
            }
            true
        }
        _ => false,
    }
}

fn group_deadline(g: &Group) -> Option<i64> {
    let sessions = g
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none())
        .map(|m| m.session_deadline);
    sessions
        .chain(g.pending_members.values().copied())
        .chain(g.sync_deadline)
        .chain(g.join_timer.map(JoinTimer::deadline))
        .min()
}

// ----------------------------------------------------------------------
// Offsets helpers
// ----------------------------------------------------------------------

fn all_partitions(topics: &[(String, Vec<CommitPartition>)], error: ErrorCode) -> Vec<TopicResult> {
    topics
        .iter()
        .map(|(name, parts)| TopicResult {
            name: name.clone(),
            partitions: parts
                .iter()
                .map(|p| PartitionResult {
                    partition: p.partition,
                    error,
                })
                .collect(),
        })
        .collect()
}

/// Writes the offsets' records to `out` and applies them to `g`, or, within a transaction,
/// to `pending`.
fn commit_partitions(
    g: &mut Group,
    topics: &[(String, Vec<CommitPartition>)],
    now: i64,
    out: &mut Output,
    mut pending: Option<&mut BTreeMap<(String, String, i32), OffsetEntry>>,
) -> Vec<TopicResult> {
    let mut results = Vec::new();
    for (topic, parts) in topics {
        let mut partitions = Vec::new();
        for p in parts {
            let metadata = p.metadata.clone().unwrap_or_default();
            let error = if !fits(topic) {
                ErrorCode::UnknownTopicOrPartition
            } else if metadata.len() > MAX_OFFSET_METADATA_BYTES {
                ErrorCode::OffsetMetadataTooLarge
            } else {
                let value = OffsetCommitValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: metadata.clone(),
                    commit_timestamp: now,
                    expire_timestamp: None,
                };
                let key = RecordKey::OffsetCommit {
                    group: g.id.clone(),
                    topic: topic.clone(),
                    partition: p.partition,
                };
                out.records.push((key.encode(), Some(value.encode())));
                let entry = OffsetEntry {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                    expire_timestamp: None,
                };
                match pending.as_deref_mut() {
                    Some(pending) => {
                        pending.insert((g.id.clone(), topic.clone(), p.partition), entry);
                    }
                    None => {
                        g.offsets
                            .entry(topic.clone())
                            .or_default()
                            .insert(p.partition, entry);
                    }
                }
                ErrorCode::None
            };
            partitions.push(PartitionResult {
                partition: p.partition,
                error,
            });
        }
        results.push(TopicResult {
            name: topic.clone(),
            partitions,
        });
    }
    results
}

/// Removes one committed offset; true if it existed.
fn remove_offset(g: &mut Group, topic: &str, partition: i32) -> bool {
    let Some(parts) = g.offsets.get_mut(topic) else {
        return false;
    };
    let removed = parts.remove(&partition).is_some();
    if parts.is_empty() {
        g.offsets.remove(topic);
    }
    removed
}

fn offset_tombstone(group: &str, topic: &str, partition: i32) -> Record {
    let key = RecordKey::OffsetCommit {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    };
    (key.encode(), None)
}

fn expired_offsets(g: &Group, now: i64, retention_ms: i64) -> Vec<(String, i32)> {
    let is_expired = |e: &OffsetEntry, base: i64| match e.expire_timestamp {
        Some(t) => now >= t,
        None => now - base >= retention_ms,
    };
    let mut expired = Vec::new();
    let empty = g.is_empty();
    let subscribed = if empty {
        None
    } else if let Some(c) = &g.modern {
        Some(c.topics_in_use())
    } else if g.protocol_type.as_deref() == Some("consumer") && g.is_in(GroupState::Stable) {
        match g.subscribed_topics() {
            Some(s) => Some(s),
            None => return expired,
        }
    } else {
        return expired;
    };
    for (topic, parts) in &g.offsets {
        if subscribed.as_ref().is_some_and(|s| s.contains(topic)) {
            continue;
        }
        for (p, e) in parts {
            let base = match (empty, g.protocol_type.is_some() || g.modern.is_some()) {
                (true, true) => g.state_timestamp.unwrap_or(e.commit_timestamp),
                _ => e.commit_timestamp,
            };
            if is_expired(e, base) {
                expired.push((topic.clone(), *p));
            }
        }
    }
    expired
}

/// Writes the tombstones of a group being deleted (already removed from the map).
fn delete_group(g: &mut Group, now: i64, out: &mut Output) {
    if let Some(c) = &g.modern {
        out.records.extend(c.tombstones());
    }
    for (topic, parts) in &g.offsets {
        for p in parts.keys() {
            out.records.push(offset_tombstone(&g.id, topic, *p));
        }
    }
    g.offsets.clear();
    out.records.push((
        RecordKey::GroupMetadata {
            group: g.id.clone(),
        }
        .encode(),
        None,
    ));
    g.transition(GroupState::Dead, now);
    tracing::debug!(group = %g.id, "group deleted");
}

/// Removes the consumer-protocol group's members whose time is up; when the last
/// consumer-protocol member goes and classic members remain, the group becomes classic.
fn expire_consumer_members(g: &mut Group, cx: &mut Cx<'_>) {
    let Some(c) = g.modern.as_mut() else {
        return;
    };
    let gone = c.expired(cx.now);
    for id in &gone {
        tracing::info!(group = %g.id, member = %id, "consumer group member expired");
        if maybe_downgrade(g, id, cx) {
            return;
        }
        if let Some(c) = g.modern.as_mut() {
            c.remove_member(id);
        }
    }
    if let Some(c) = g.modern.as_mut() {
        if !gone.is_empty() && c.members.is_empty() {
            g.state_timestamp = Some(cx.now);
        }
        cx.out.records.append(&mut c.records);
    }
}

/// When `leaving` is the last consumer-protocol member and the members left may form a
/// classic group (see [`migration::may_downgrade`]), the group becomes classic without it:
/// the consumer records go, the classic group's record is written, and the group
/// rebalances at once. False (nothing changed) otherwise.
fn maybe_downgrade(g: &mut Group, leaving: &str, cx: &mut Cx<'_>) -> bool {
    let Some(c) = g
        .modern
        .as_mut()
        .filter(|c| migration::may_downgrade(c, leaving, &cx.config.consumer, cx.config.max_size))
    else {
        return false;
    };
    let mut classic = match migration::downgrade(c, leaving, cx.now) {
        Ok(classic) => classic,
        Err(why) => {
            tracing::info!(group = %c.id, %why, "the group stays a consumer group");
            return false;
        }
    };
    let ids: Vec<String> = c.members.keys().cloned().collect();
    for id in &ids {
        c.drop_member(id);
    }
    cx.out.records.append(&mut c.records);
    cx.out.records.extend(c.tombstones());
    cx.out.records.push(group_record(&classic));
    tracing::info!(group = %g.id, generation = classic.generation, "consumer group downgraded to a classic group");
    classic.offsets = std::mem::take(&mut g.offsets);
    *g = classic;
    prepare_rebalance(g, cx);
    true
}

// ----------------------------------------------------------------------
// Group records
// ----------------------------------------------------------------------

fn group_record(g: &Group) -> Record {
    let protocol = g.protocol_name.clone();
    let members = g
        .members_by_seq()
        .into_iter()
        .map(|m| MemberMetadataValue {
            member_id: m.id.clone(),
            group_instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            session_timeout_ms: m.session_timeout_ms,
            subscription: protocol
                .as_deref()
                .map(|p| m.metadata(p))
                .unwrap_or_default(),
            assignment: m.assignment.clone(),
        })
        .collect();
    let value = GroupMetadataValue {
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        generation: g.generation,
        protocol,
        leader: g.leader.clone(),
        current_state_timestamp: g.state_timestamp.unwrap_or(-1),
        members,
    };
    let key = RecordKey::GroupMetadata {
        group: g.id.clone(),
    };
    (key.encode(), Some(value.encode()))
}

fn group_from_record(id: &str, v: GroupMetadataValue, now: i64) -> Group {
    let mut g = Group::new(id, now);
    g.protocol_type = (!v.protocol_type.is_empty()).then(|| v.protocol_type.clone());
    g.generation = v.generation;
    g.state_timestamp = (v.current_state_timestamp >= 0).then_some(v.current_state_timestamp);
    // Kafka never writes members without a protocol; such members could not
    // take part in protocol selection, so they are dropped.
    let Some(protocol) = v.protocol.filter(|_| !v.members.is_empty()) else {
        return g;
    };
    for (seq, mv) in v.members.into_iter().enumerate() {
        if let Some(instance) = &mv.group_instance_id {
            g.static_members
                .insert(instance.clone(), mv.member_id.clone());
        }
        let member = Member {
            id: mv.member_id.clone(),
            instance_id: mv.group_instance_id,
            client_id: mv.client_id,
            client_host: mv.client_host,
            session_timeout_ms: mv.session_timeout_ms,
            rebalance_timeout_ms: mv.rebalance_timeout_ms,
            protocol_type: v.protocol_type.clone(),
            protocols: vec![(protocol.clone(), mv.subscription)],
            assignment: mv.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            session_deadline: now + i64::from(mv.session_timeout_ms),
            seq: seq as u64,
        };
        g.members.insert(mv.member_id, member);
    }
    g.next_seq = g.members.len() as u64;
    g.protocol_name = Some(protocol);
    g.leader = v
        .leader
        .filter(|l| g.members.contains_key(l))
        .or_else(|| g.first_member(|_| true));
    g.state = GroupState::Stable;
    g
}

#[cfg(test)]
impl GroupCoordinator {
    /// Asserts the invariants every group keeps between commands.
    pub(crate) fn check_invariants(&self) {
        for (id, g) in &self.groups {
            assert_eq!(id, &g.id);
            assert_ne!(g.state, GroupState::Dead, "{id}: dead groups are removed");
            if g.is_in(GroupState::Empty) {
                assert!(g.members.is_empty(), "{id}: Empty with members");
            }
            if !g.members.is_empty() {
                let leader = g
                    .leader
                    .as_ref()
                    .expect("a group with members has a leader");
                assert!(g.members.contains_key(leader), "{id}: leader not a member");
            }
            if matches!(
                g.state,
                GroupState::Stable | GroupState::CompletingRebalance
            ) {
                let p = g.protocol_name.as_ref().expect("protocol selected");
                assert!(g.members.values().all(|m| m.supports(p)), "{id}: protocol");
                assert!(!g.members.is_empty(), "{id}: no members");
            }
            assert_eq!(
                g.join_timer.is_some(),
                g.is_in(GroupState::PreparingRebalance),
                "{id}: join timer only while preparing"
            );
            for (instance, member) in &g.static_members {
                let m = g.members.get(member).expect("static member exists");
                assert_eq!(m.instance_id.as_ref(), Some(instance));
            }
            for m in g.members.values() {
                if let Some(i) = &m.instance_id {
                    assert_eq!(g.static_members.get(i), Some(&m.id));
                }
                if m.awaiting_join.is_some() {
                    assert!(g.is_in(GroupState::PreparingRebalance), "{id}: held join");
                }
                if m.awaiting_sync.is_some() {
                    assert!(g.is_in(GroupState::CompletingRebalance), "{id}: held sync");
                }
            }
            assert!(g.pending_sync.iter().all(|m| g.members.contains_key(m)));
            assert_eq!(g.sync_deadline.is_some(), !g.pending_sync.is_empty());
            assert!(g.offsets.values().all(|p| !p.is_empty()));
        }
    }
}

impl From<OffsetCommitValue> for OffsetEntry {
    fn from(v: OffsetCommitValue) -> Self {
        OffsetEntry {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp: v.commit_timestamp,
            expire_timestamp: v.expire_timestamp,
        }
    }
}
