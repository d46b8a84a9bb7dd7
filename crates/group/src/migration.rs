//! Groups whose members speak both protocols (KIP-848's online migration,
//! `group.consumer.migration.policy`).
//!
//! * **Upgrade.** A consumer-protocol member joining a classic group with members turns it
//!   into a consumer group: each classic member keeps its id, its generation (as its epoch)
//!   and its partitions, and the group goes on from there.
//! * **Classic members in a consumer group** go on with JoinGroup, SyncGroup, Heartbeat and
//!   LeaveGroup. The coordinator assigns their partitions like anyone's; a classic member
//!   reconciles only when it (re)joins: its Heartbeat answers REBALANCE_IN_PROGRESS while the
//!   group has moved on, it has partitions to give up, or the ones it waits for are free.
//! * **Downgrade.** When the last consumer-protocol member leaves (or expires) and classic
//!   members remain, the group becomes classic again, at the group epoch as generation, each
//!   member with its target, and rebalances.
//!
//! Committed offsets stay with the group id either way.

use bytes::Bytes;

use crate::api::{JoinRequest, JoinResponse, LeaveMember, SyncRequest, SyncResponse};
use crate::consumer::{
    self, Assignment, ClassicMember, ConsumerGroup, ConsumerGroupConfig, ConsumerMember,
    MemberState, TopicView,
};
use crate::embedded::{self, NamedPartitions};
use crate::error::ErrorCode;
use crate::state::{Group, GroupState, Member};

/// The protocol type of consumers.
pub(crate) const CONSUMER: &str = "consumer";

/// Partitions by name to partitions by id; topics the view does not know are left out.
fn to_ids(parts: &NamedPartitions, topics: &dyn TopicView) -> Assignment {
    let mut a = Assignment::new();
    for (name, ps) in parts {
        if let Some((id, _)) = topics.topic(name) {
            if !ps.is_empty() {
                a.entry(id).or_default().extend(ps.iter().copied());
            }
        }
    }
    a
}

/// Partitions by id to partitions by name, through the group's subscribed topics; topics it
/// no longer knows are left out.
fn to_names(c: &ConsumerGroup, a: &Assignment) -> NamedPartitions {
    let mut out = Vec::new();
    for (name, (id, _)) in &c.metadata {
        if let Some(ps) = a.get(id) {
            out.push((name.clone(), ps.iter().copied().collect()));
        }
    }
    out
}

fn classic(session_timeout_ms: i32, protocols: Vec<(String, Bytes)>) -> ClassicMember {
    ClassicMember {
        session_timeout_ms,
        protocols,
        join_deadline: None,
        sync_deadline: None,
    }
}

/// Whether a classic group with members may become a consumer group (Kafka's checks: the
/// policy, the consumer protocol type, and the consumer groups' size limit).
pub(crate) fn may_upgrade(g: &Group, config: &ConsumerGroupConfig) -> bool {
    config.migration.upgrades()
        && g.protocol_type.as_deref() == Some(CONSUMER)
        && config.max_size.is_none_or(|max| g.members.len() <= max)
}

/// The consumer group a classic group with members becomes: every member at the
/// generation, with the partitions of its last assignment as its target. A member that has
/// no assignment yet (the group is forming or rebalancing) has no partitions, and a group
/// that never chose a protocol reads each member's preferred one: Kafka refuses those as
/// malformed, which librdkafka 2.16 takes as fatal for the joining member. `Err` when a
/// subscription or assignment cannot be read.
pub(crate) fn upgrade(
    g: &Group,
    topics: &dyn TopicView,
    now: i64,
) -> Result<ConsumerGroup, String> {
    let malformed = || {
        format!(
            "Cannot upgrade the classic group {} to consumer group because the embedded consumer protocol is malformed.",
            g.id
        )
    };
    let mut c = ConsumerGroup {
        id: g.id.clone(),
        group_epoch: g.generation,
        assignment_epoch: g.generation,
        ..Default::default()
    };
    for m in g.members_by_seq() {
        let metadata = match g.protocol_name.as_deref() {
            Some(p) => m.metadata(p),
            None => m
                .protocols
                .first()
                .map(|(_, b)| b.clone())
                .unwrap_or_default(),
        };
        let sub = embedded::decode_subscription(&metadata).ok_or_else(malformed)?;
        let assigned = if m.assignment.is_empty() {
            Assignment::new()
        } else {
            to_ids(
                &embedded::decode_assignment(&m.assignment).ok_or_else(malformed)?,
                topics,
            )
        };
        let mut topic_names = sub.topics;
        topic_names.sort();
        topic_names.dedup();
        let member = ConsumerMember {
            instance_id: m.instance_id.clone(),
            rack_id: sub.rack_id,
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            topic_names,
            epoch: g.generation,
            previous_epoch: g.generation,
            session_deadline: now + i64::from(m.session_timeout_ms),
            classic: Some(classic(m.session_timeout_ms, m.protocols.clone())),
            ..consumer::new_member(&m.id, now)
        };
        c.members.insert(m.id.clone(), member);
        if let Some(i) = &m.instance_id {
            c.instances.insert(i.clone(), m.id.clone());
        }
        // Two members holding one partition cannot be reconciled (Kafka refuses them too).
        for (t, ps) in &assigned {
            if ps.iter().any(|p| c.owners.contains_key(&(*t, *p))) {
                return Err(malformed());
            }
        }
        c.target.insert(m.id.clone(), assigned.clone());
        c.set_partitions(&m.id, assigned, Assignment::new());
    }
    c.write_all();
    Ok(c)
}

/// Finds the member a classic SyncGroup or Heartbeat names, which must speak the classic
/// protocol and be at `generation`.
fn classic_member<'a>(
    c: &'a mut ConsumerGroup,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<&'a mut ConsumerMember, ErrorCode> {
    if let Some(i) = instance_id {
        match c.instances.get(i) {
            None => return Err(ErrorCode::UnknownMemberId),
            Some(holder) if holder != member_id => return Err(ErrorCode::FencedInstanceId),
            Some(_) => {}
        }
    }
    let m = c
        .members
        .get_mut(member_id)
        .filter(|m| m.classic.is_some())
        .ok_or(ErrorCode::UnknownMemberId)?;
    if m.epoch != generation {
        return Err(ErrorCode::IllegalGeneration);
    }
    Ok(m)
}

/// Tells a classic member to rejoin: its join deadline starts, unless already running.
fn rejoin(m: &mut ConsumerMember, now: i64) -> ErrorCode {
    let timeout = i64::from(m.rebalance_timeout_ms.max(0));
    if let Some(c) = m.classic.as_mut() {
        c.join_deadline.get_or_insert(now + timeout);
    }
    ErrorCode::RebalanceInProgress
}

fn restart_session(m: &mut ConsumerMember, now: i64) {
    if let Some(c) = &m.classic {
        m.session_deadline = now + i64::from(c.session_timeout_ms);
    }
}

/// Whether every protocol type and name check of a classic JoinGroup into `c` passes: the
/// consumer protocol type, and a protocol every other classic member supports.
fn supports(c: &ConsumerGroup, member_id: &str, req: &JoinRequest) -> bool {
    req.protocol_type == CONSUMER
        && req.protocols.iter().any(|(name, _)| {
            c.members
                .values()
                .filter(|m| m.id != member_id)
                .filter_map(|m| m.classic.as_ref())
                .all(|cl| cl.protocols.iter().any(|(n, _)| n == name))
        })
}

/// A classic JoinGroup into a consumer group. `new_id` is the id a member without one gets.
/// Answered at once: the member's epoch is its generation, it is never the leader and gets
/// no member list (the coordinator assigns).
pub(crate) fn join(
    c: &mut ConsumerGroup,
    req: &JoinRequest,
    new_id: String,
    topics: &dyn TopicView,
    config: &ConsumerGroupConfig,
    now: i64,
) -> JoinResponse {
    let unknown = req.member_id.is_empty();
    let member_id = if unknown {
        new_id
    } else {
        req.member_id.clone()
    };
    let error = |e: ErrorCode| JoinResponse::error(e, &req.member_id);
    if let Some(max) = config.max_size {
        if c.members.len() >= max && !c.members.contains_key(&member_id) {
            return error(ErrorCode::GroupMaxSizeReached);
        }
    }
    if !supports(c, &member_id, req) {
        return error(ErrorCode::InconsistentGroupProtocol);
    }
    if unknown && req.group_instance_id.is_none() && req.api_version >= 4 {
        return JoinResponse::error(ErrorCode::MemberIdRequired, &member_id);
    }
    let Some(sub) = req
        .protocols
        .first()
        .and_then(|(_, metadata)| embedded::decode_subscription(metadata))
    else {
        return error(ErrorCode::UnknownServerError);
    };
    let mut bump = false;
    // A static member's new id is a new member: its records are all written.
    let prior = c.members.get(&member_id).cloned();
    match &req.group_instance_id {
        Some(instance) => match c.instances.get(instance).cloned() {
            Some(holder) if unknown => c.take_over(&holder, &member_id, instance),
            None if unknown => {
                let mut m = consumer::new_member(&member_id, now);
                m.instance_id = Some(instance.clone());
                c.members.insert(member_id.clone(), m);
                c.instances.insert(instance.clone(), member_id.clone());
                bump = true;
            }
            None => return error(ErrorCode::UnknownMemberId),
            Some(holder) if holder != member_id => return error(ErrorCode::FencedInstanceId),
            Some(_) => {}
        },
        None if !c.members.contains_key(&member_id) => {
            c.members
                .insert(member_id.clone(), consumer::new_member(&member_id, now));
            bump = true;
        }
        None => {}
    }
    let owned = to_ids(&sub.owned, topics);
    if let Some(m) = c.members.get_mut(&member_id) {
        m.client_id.clone_from(&req.client_id);
        m.client_host.clone_from(&req.client_host);
        if sub.rack_id.is_some() {
            m.rack_id = sub.rack_id;
        }
        if req.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        let mut names = sub.topics;
        names.sort();
        names.dedup();
        if names != m.topic_names {
            m.topic_names = names;
            bump = true;
        }
        m.classic = Some(ClassicMember {
            sync_deadline: Some(now + i64::from(req.rebalance_timeout_ms.max(0))),
            ..classic(req.session_timeout_ms, req.protocols.clone())
        });
        m.rebalance_deadline = None;
    }
    consumer::advance(
        c,
        &member_id,
        prior.as_ref(),
        bump,
        false,
        Some(&owned),
        topics,
        config,
        now,
    );
    let Some(m) = c.members.get_mut(&member_id) else {
        return error(ErrorCode::UnknownServerError);
    };
    m.session_deadline = now + i64::from(req.session_timeout_ms);
    m.rebalance_deadline = None;
    JoinResponse {
        error: ErrorCode::None,
        generation_id: m.epoch,
        protocol_type: Some(CONSUMER.to_owned()),
        protocol_name: req.protocols.first().map(|(n, _)| n.clone()),
        leader: String::new(),
        skip_assignment: false,
        member_id,
        members: Vec::new(),
    }
}

/// A classic SyncGroup in a consumer group: the member's current partitions (what it may
/// use now), in its subscription's version. The leader's assignments, if any, are ignored.
pub(crate) fn sync(c: &mut ConsumerGroup, req: &SyncRequest, now: i64) -> SyncResponse {
    let group_epoch = c.group_epoch;
    let m = match classic_member(
        c,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    ) {
        Ok(m) => m,
        Err(e) => return SyncResponse::error(e),
    };
    let Some(first) = m
        .classic
        .as_ref()
        .and_then(|cl| cl.protocols.first())
        .cloned()
    else {
        return SyncResponse::error(ErrorCode::UnknownMemberId);
    };
    if req.protocol_type.as_deref().is_some_and(|t| t != CONSUMER)
        || req.protocol_name.as_deref().is_some_and(|n| n != first.0)
    {
        return SyncResponse::error(ErrorCode::InconsistentGroupProtocol);
    }
    if group_epoch > m.epoch && m.state != MemberState::UnrevokedPartitions {
        return SyncResponse::error(rejoin(m, now));
    }
    let Some(version) = embedded::version(&first.1) else {
        return SyncResponse::error(ErrorCode::UnknownServerError);
    };
    if let Some(cl) = m.classic.as_mut() {
        cl.sync_deadline = None;
    }
    restart_session(m, now);
    let assigned = m.assigned.clone();
    SyncResponse {
        error: ErrorCode::None,
        protocol_type: req.protocol_type.clone(),
        protocol_name: req.protocol_name.clone(),
        assignment: embedded::encode_assignment(version, &to_names(c, &assigned)),
    }
}

/// A classic Heartbeat in a consumer group: REBALANCE_IN_PROGRESS when a rejoin would move
/// the member (the group moved on, it has partitions to give up, or the ones it waits for
/// are free now).
pub(crate) fn heartbeat(
    c: &mut ConsumerGroup,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
    now: i64,
) -> ErrorCode {
    let group_epoch = c.group_epoch;
    // Whether some partition of its target is still held by another member (asked only of
    // members waiting for partitions).
    let waiting = c
        .members
        .get(member_id)
        .filter(|m| m.state == MemberState::UnreleasedPartitions)
        .is_some_and(|m| {
            c.target.get(member_id).is_some_and(|target| {
                target.iter().any(|(t, ps)| {
                    ps.iter().any(|p| {
                        !m.assigned.get(t).is_some_and(|a| a.contains(p))
                            && c.owners.get(&(*t, *p)).is_some_and(|o| o != member_id)
                    })
                })
            })
        });
    let m = match classic_member(c, member_id, instance_id, generation) {
        Ok(m) => m,
        Err(e) => return e,
    };
    restart_session(m, now);
    let behind = m.epoch < group_epoch
        || m.state == MemberState::UnrevokedPartitions
        || (m.state == MemberState::UnreleasedPartitions && !waiting);
    if behind {
        rejoin(m, now)
    } else {
        ErrorCode::None
    }
}

/// One member of a classic LeaveGroup in a consumer group; only classic members leave this
/// way. The group epoch moves once per request, by the caller. Returns the id of the member
/// that left (a static one may be named by its instance id alone).
pub(crate) fn leave(c: &mut ConsumerGroup, lm: &LeaveMember) -> Result<String, ErrorCode> {
    let id = match &lm.group_instance_id {
        Some(i) => match c.instances.get(i) {
            None => return Err(ErrorCode::UnknownMemberId),
            Some(holder) if !lm.member_id.is_empty() && *holder != lm.member_id => {
                return Err(ErrorCode::FencedInstanceId)
            }
            Some(holder) => holder.clone(),
        },
        None => lm.member_id.clone(),
    };
    if c.members.get(&id).is_none_or(|m| m.classic.is_none()) {
        return Err(ErrorCode::UnknownMemberId);
    }
    c.drop_member(&id);
    Ok(id)
}

/// Whether removing `leaving`, a consumer-protocol member, leaves only classic members
/// that may form a classic group (the policy, and `group.max.size`).
pub(crate) fn may_downgrade(
    c: &ConsumerGroup,
    leaving: &str,
    config: &ConsumerGroupConfig,
    classic_max_size: Option<usize>,
) -> bool {
    config.migration.downgrades()
        && c.members.len() > 1
        && c.members.get(leaving).is_some_and(|m| m.classic.is_none())
        && c.members
            .values()
            .all(|m| m.id == leaving || m.classic.is_some())
        && classic_max_size.is_none_or(|max| c.members.len() - 1 <= max)
}

/// The classic group the members other than `leaving` form: Stable at the group epoch as
/// generation, each member with its target as assignment, in the version of its
/// subscription. `Err` when they share no protocol or a subscription cannot be read.
pub(crate) fn downgrade(c: &ConsumerGroup, leaving: &str, now: i64) -> Result<Group, String> {
    let failed = |why: &str| format!("Cannot downgrade the consumer group {}: {why}.", c.id);
    let mut g = Group::new(&c.id, now);
    g.state = GroupState::Stable;
    g.protocol_type = Some(CONSUMER.to_owned());
    g.generation = c.group_epoch;
    for m in c.members.values().filter(|m| m.id != leaving) {
        let Some(cl) = &m.classic else {
            return Err(failed("a member does not use the classic protocol"));
        };
        g.members.insert(
            m.id.clone(),
            Member {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: cl.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocol_type: CONSUMER.to_owned(),
                protocols: cl.protocols.clone(),
                assignment: Bytes::new(),
                awaiting_join: None,
                awaiting_sync: None,
                session_deadline: now + i64::from(cl.session_timeout_ms),
                seq: g.next_seq,
            },
        );
        g.next_seq += 1;
        if let Some(i) = &m.instance_id {
            g.static_members.insert(i.clone(), m.id.clone());
        }
    }
    let shared = g.members.values().next().is_some_and(|first| {
        first
            .protocols
            .iter()
            .any(|(n, _)| g.members.values().all(|m| m.supports(n)))
    });
    if !shared {
        return Err(failed("its members share no protocol"));
    }
    let protocol = g.select_protocol().unwrap_or_default();
    g.leader = g.first_member(|_| true);
    let empty = Assignment::new();
    for (id, m) in g.members.iter_mut() {
        let version = embedded::version(&m.metadata(&protocol))
            .ok_or_else(|| failed("a subscription is malformed"))?;
        let target = c.target.get(id).unwrap_or(&empty);
        m.assignment = embedded::encode_assignment(version, &to_names(c, target));
    }
    g.protocol_name = Some(protocol);
    g.offsets.clear();
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::*;
    use crate::consumer::tests::{beat, count, join as consumer_join, Topics};
    use crate::consumer::{ConsumerHeartbeatResponse, LEAVE_EPOCH};
    use crate::embedded::{decode_assignment, encode_subscription, Subscription};
    use crate::records::RecordKey;
    use crate::{GroupConfig, GroupCoordinator};
    use std::collections::BTreeSet;

    const SESSION: i32 = 10_000;
    const REBALANCE: i32 = 20_000;

    /// A test driver around one coordinator: time, request ids, every record written.
    struct D {
        c: GroupCoordinator,
        topics: Topics,
        now: i64,
        rid: RequestId,
        records: Vec<crate::api::Record>,
        responses: Vec<(RequestId, Response)>,
        /// The classic members' ids by their names in the tests.
        ids: std::collections::BTreeMap<String, String>,
    }

    fn sub(topics: &[&str], owned: &[(&str, &[i32])]) -> Bytes {
        encode_subscription(
            3,
            &Subscription {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                owned: owned
                    .iter()
                    .map(|(t, ps)| (t.to_string(), ps.to_vec()))
                    .collect(),
                rack_id: None,
            },
        )
    }

    impl D {
        fn new(config: GroupConfig) -> D {
            D {
                c: GroupCoordinator::new(config, 3),
                topics: Topics::new(&[("t", 4)]),
                now: 1_000,
                rid: 0,
                records: Vec::new(),
                responses: Vec::new(),
                ids: Default::default(),
            }
        }

        fn mid(&self, name: &str) -> String {
            self.ids
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_owned())
        }

        fn apply(&mut self, out: Output) {
            self.records.extend(out.records);
            self.responses.extend(out.responses);
        }

        fn take(&mut self, id: RequestId) -> Option<Response> {
            let i = self.responses.iter().position(|(r, _)| *r == id)?;
            Some(self.responses.remove(i).1)
        }

        fn join_req(&mut self, member: &str, owned: &[(&str, &[i32])]) -> JoinRequest {
            self.rid += 1;
            JoinRequest {
                request_id: self.rid,
                api_version: 5,
                group_id: "g".into(),
                member_id: self.mid(member),
                group_instance_id: None,
                client_id: "classic".into(),
                client_host: "/127.0.0.1".into(),
                protocol_type: CONSUMER.into(),
                protocols: vec![("range".into(), sub(&["t"], owned))],
                session_timeout_ms: SESSION,
                rebalance_timeout_ms: REBALANCE,
                reason: None,
            }
        }

        /// A JoinGroup; its response if answered at once.
        fn join(
            &mut self,
            member: &str,
            owned: &[(&str, &[i32])],
        ) -> (RequestId, Option<JoinResponse>) {
            let req = self.join_req(member, owned);
            self.send(req)
        }

        fn send(&mut self, req: JoinRequest) -> (RequestId, Option<JoinResponse>) {
            let id = req.request_id;
            let out = self.c.join_with(req, &self.topics, self.now);
            self.apply(out);
            match self.take(id) {
                Some(Response::Join(j)) => (id, Some(j)),
                None => (id, None),
                other => panic!("{other:?}"),
            }
        }

        /// A new member's JoinGroup v3 (no member id round trip); its request id.
        fn join_new(&mut self) -> RequestId {
            let mut req = self.join_req("", &[]);
            req.api_version = 3;
            self.send(req).0
        }

        /// A static member's JoinGroup without a member id, answered at once.
        fn join_static(&mut self, instance: &str) -> JoinResponse {
            let mut req = self.join_req("", &[]);
            req.group_instance_id = Some(instance.into());
            let j = self.send(req).1.expect("answered at once");
            assert_eq!(j.error, ErrorCode::None);
            j
        }

        /// A coordinator rebuilt from every record written.
        fn replayed(&self) -> GroupCoordinator {
            let mut fresh = GroupCoordinator::new(GroupConfig::default(), 1);
            for (k, v) in &self.records {
                fresh.replay(k, v.as_deref(), self.now).expect("replay");
            }
            fresh
        }

        fn sync(
            &mut self,
            member: &str,
            generation: i32,
            assignments: Vec<(String, Bytes)>,
        ) -> SyncResponse {
            self.rid += 1;
            let id = self.rid;
            let out = self.c.sync(
                SyncRequest {
                    request_id: id,
                    group_id: "g".into(),
                    generation_id: generation,
                    member_id: self.mid(member),
                    group_instance_id: None,
                    protocol_type: Some(CONSUMER.into()),
                    protocol_name: Some("range".into()),
                    assignments,
                },
                self.now,
            );
            self.apply(out);
            match self.take(id) {
                Some(Response::Sync(s)) => s,
                other => panic!("{other:?}"),
            }
        }

        fn heartbeat(&mut self, member: &str, generation: i32) -> ErrorCode {
            self.rid += 1;
            let id = self.rid;
            let out = self.c.heartbeat(
                HeartbeatRequest {
                    request_id: id,
                    group_id: "g".into(),
                    generation_id: generation,
                    member_id: self.mid(member),
                    group_instance_id: None,
                },
                self.now,
            );
            self.apply(out);
            match self.take(id) {
                Some(Response::Heartbeat(h)) => h.error,
                other => panic!("{other:?}"),
            }
        }

        fn consumer(
            &mut self,
            req: crate::consumer::ConsumerHeartbeatRequest,
        ) -> ConsumerHeartbeatResponse {
            let out = self.c.consumer_heartbeat(99, req, &self.topics, self.now);
            let r = match out.response(99) {
                Some(Response::ConsumerHeartbeat(r)) => r.clone(),
                other => panic!("{other:?}"),
            };
            self.records.extend(out.records);
            self.responses
                .extend(out.responses.into_iter().filter(|(id, _)| *id != 99));
            r
        }

        fn tick(&mut self, ms: i64) {
            self.now += ms;
            let out = self.c.tick(self.now);
            self.apply(out);
        }

        fn partitions(&self, member: &str) -> BTreeSet<i32> {
            let d = self.c.consumer_describe(&["g".into()]).remove(0);
            let id = self.mid(member);
            d.members
                .iter()
                .find(|m| m.member_id == id)
                .map(|m| m.assignment.values().flatten().copied().collect())
                .unwrap_or_default()
        }
    }

    fn assignment_of(b: &Bytes) -> BTreeSet<i32> {
        decode_assignment(b)
            .expect("assignment")
            .into_iter()
            .flat_map(|(_, ps)| ps)
            .collect()
    }

    fn assigned(parts: &[i32]) -> Bytes {
        embedded::encode_assignment(1, &[("t".to_owned(), parts.to_vec())])
    }

    /// Classic members a and b at generation 1, with t-0,1 and t-2,3.
    fn classic_group(config: GroupConfig) -> D {
        let mut d = D::new(config);
        let mut held = Vec::new();
        for name in ["a", "b"] {
            let id = d.join_new();
            held.push((name, id));
        }
        // The initial delay, extended once by b's join.
        d.tick(3_001);
        d.tick(3_001);
        for (name, id) in held {
            match d.take(id) {
                Some(Response::Join(j)) => {
                    assert_eq!((j.error, j.generation_id), (ErrorCode::None, 1));
                    d.ids.insert(name.to_owned(), j.member_id);
                }
                other => panic!("{other:?}"),
            }
        }
        let leader = d.c.leader("g").expect("leader");
        let assignments = vec![
            (d.mid("a"), assigned(&[0, 1])),
            (d.mid("b"), assigned(&[2, 3])),
        ];
        let (leader, follower) = if leader == d.mid("a") {
            ("a", "b")
        } else {
            ("b", "a")
        };
        assert_eq!(d.sync(leader, 1, assignments).error, ErrorCode::None);
        assert_eq!(d.sync(follower, 1, vec![]).error, ErrorCode::None);
        assert_eq!(d.c.group_state("g"), Some(GroupState::Stable));
        d
    }

    /// The classic members rejoin the consumer group (eager: they own nothing) and sync.
    fn rejoin_and_sync(d: &mut D, member: &str, generation: i32) -> BTreeSet<i32> {
        let (_, j) = d.join(member, &[]);
        let j = j.expect("answered at once");
        assert_eq!(j.error, ErrorCode::None);
        assert_eq!((j.leader.as_str(), j.members.len()), ("", 0));
        assert_eq!(j.protocol_name.as_deref(), Some("range"));
        assert_eq!(j.generation_id, generation);
        let s = d.sync(member, generation, vec![]);
        assert_eq!(s.error, ErrorCode::None);
        assignment_of(&s.assignment)
    }

    /// The classic group upgraded by consumer member c, everyone reconciled.
    fn mixed_group() -> D {
        let mut d = classic_group(GroupConfig::default());
        let r = d.consumer(consumer_join("c", &["t"]));
        assert_eq!(r.error, ErrorCode::None, "{:?}", r.message);
        // The group moved on from generation 1; what c is to have is still held.
        assert_eq!((r.member_epoch, count(&r.assignment)), (2, 0));
        assert_eq!(d.heartbeat("a", 1), ErrorCode::RebalanceInProgress);
        let a = rejoin_and_sync(&mut d, "a", 2);
        let b = rejoin_and_sync(&mut d, "b", 2);
        let c = d.consumer(beat("c", 2, Some(vec![])));
        assert_eq!(c.error, ErrorCode::None);
        let c: BTreeSet<i32> = c
            .assignment
            .iter()
            .flatten()
            .flat_map(|(_, ps)| ps.iter().copied())
            .collect();
        // Every partition has one owner, and the classic members kept what they had.
        assert_eq!(a.len() + b.len() + c.len(), 4);
        assert_eq!(
            a.iter().chain(&b).chain(&c).collect::<BTreeSet<_>>().len(),
            4
        );
        assert!(
            a.is_subset(&[0, 1].into()) && b.is_subset(&[2, 3].into()),
            "{a:?} {b:?}"
        );
        assert_eq!(d.heartbeat("a", 2), ErrorCode::None);
        assert_eq!(d.heartbeat("b", 2), ErrorCode::None);
        d
    }

    #[test]
    fn a_consumer_member_upgrades_a_classic_group_and_its_members_follow() {
        let d = mixed_group();
        // Written as Kafka writes it: the classic record's tombstone before the consumer
        // group's records.
        let tombstone = d.records.iter().position(|(k, v)| {
            v.is_none() && matches!(RecordKey::decode(k), Ok(RecordKey::GroupMetadata { .. }))
        });
        let consumer = d.records.iter().position(|(k, _)| {
            matches!(crate::consumer_records::ConsumerKey::decode(k), Ok(Some(_)))
        });
        assert!(tombstone.expect("tombstone") < consumer.expect("consumer records"));
        let described = d.c.consumer_describe(&["g".into()]).remove(0);
        assert_eq!(described.members.iter().filter(|m| m.classic).count(), 2);
        assert_eq!(described.state, "Stable");
        assert_eq!(d.c.describe(&["g".into()])[0].state, GroupState::Dead);
        // The log rebuilds the same group, classic members included.
        assert_eq!(
            d.replayed().consumer_describe(&["g".into()]),
            d.c.consumer_describe(&["g".into()])
        );
    }

    #[test]
    fn classic_members_of_a_consumer_group_commit_with_their_epoch_at_any_version() {
        let mut d = mixed_group();
        let a = d.mid("a");
        let commit = |generation: i32, version: i16| OffsetCommitRequest {
            request_id: 7,
            group_id: "g".into(),
            generation_id: generation,
            member_id: a.clone(),
            group_instance_id: None,
            topics: vec![(
                "t".into(),
                vec![CommitPartition {
                    partition: 0,
                    offset: 5,
                    leader_epoch: -1,
                    metadata: None,
                }],
            )],
            api_version: version,
        };
        for (generation, version, want) in [
            (2, 2, ErrorCode::None),
            (2, 9, ErrorCode::None),
            (1, 8, ErrorCode::IllegalGeneration),
        ] {
            let out = d.c.commit_offsets(commit(generation, version), d.now);
            match out.response(7) {
                Some(Response::OffsetCommit(r)) => {
                    assert_eq!(
                        r.topics[0].partitions[0].error, want,
                        "generation {generation} v{version}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_last_consumer_member_leaving_downgrades_the_group() {
        let mut d = mixed_group();
        let mut leave = beat("c", 2, None);
        leave.member_epoch = LEAVE_EPOCH;
        let r = d.consumer(leave);
        assert_eq!((r.error, r.member_epoch), (ErrorCode::None, LEAVE_EPOCH));
        // A classic group again, at the group epoch, rebalancing at once.
        assert_eq!(d.c.group_state("g"), Some(GroupState::PreparingRebalance));
        let generation = d.c.generation("g").expect("generation");
        assert_eq!(d.heartbeat("a", generation), ErrorCode::RebalanceInProgress);
        let (ja, _) = d.join("a", &[]);
        let (_, jb) = d.join("b", &[]);
        let mut leader = None;
        for j in [d.take(ja), jb.map(Response::Join)] {
            match j {
                Some(Response::Join(j)) => {
                    assert_eq!(
                        (j.error, j.generation_id),
                        (ErrorCode::None, generation + 1)
                    );
                    if !j.members.is_empty() {
                        leader = Some(j.member_id.clone());
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        let leader = leader.expect("a leader");
        let leader = if leader == d.mid("a") { "a" } else { "b" };
        let assignments = vec![
            (d.mid("a"), assigned(&[0, 1])),
            (d.mid("b"), assigned(&[2, 3])),
        ];
        let s = d.sync(leader, generation + 1, assignments);
        assert_eq!(s.error, ErrorCode::None);
        // The log holds the classic group and no consumer group.
        let fresh = d.replayed();
        assert!(fresh.consumer_describe(&["g".into()])[0].error == ErrorCode::GroupIdNotFound);
        assert_eq!(fresh.generation("g"), Some(generation + 1));
    }

    #[test]
    fn an_expired_consumer_member_downgrades_the_group_and_expired_classic_members_go() {
        let mut d = mixed_group();
        // a and b keep heartbeating; c goes silent past its 45 s session.
        for _ in 0..5 {
            d.tick(8_000);
            assert_eq!(d.heartbeat("a", 2), ErrorCode::None);
            assert_eq!(d.heartbeat("b", 2), ErrorCode::None);
        }
        d.tick(8_000);
        assert_eq!(d.c.group_state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(d.heartbeat("a", 2), ErrorCode::RebalanceInProgress);
        // Without the downgrade, a classic member told to rejoin that does not goes.
        let mut config = GroupConfig::default();
        config.consumer.migration = crate::consumer::MigrationPolicy::Upgrade;
        let mut d = classic_group(config);
        assert_eq!(
            d.consumer(consumer_join("c", &["t"])).error,
            ErrorCode::None
        );
        assert_eq!(d.heartbeat("a", 1), ErrorCode::RebalanceInProgress);
        rejoin_and_sync(&mut d, "b", 2);
        // a heartbeats on, told each time to rejoin, and goes at its rebalance timeout.
        for _ in 0..2 {
            d.tick(8_000);
            assert_eq!(d.heartbeat("a", 1), ErrorCode::RebalanceInProgress);
            assert_eq!(d.heartbeat("b", 2), ErrorCode::None);
        }
        d.tick(5_000);
        assert_eq!(d.heartbeat("a", 1), ErrorCode::UnknownMemberId);
        assert!(d.partitions("a").is_empty());
        let described = d.c.consumer_describe(&["g".into()]).remove(0);
        assert_eq!(described.members.len(), 2, "{described:?}");
    }

    #[test]
    fn upgrades_follow_the_policy_and_kafkas_checks() {
        // Disabled: the group keeps its protocol.
        let mut config = GroupConfig::default();
        config.consumer.migration = crate::consumer::MigrationPolicy::Disabled;
        let mut d = classic_group(config);
        let r = d.consumer(consumer_join("c", &["t"]));
        assert_eq!(r.error, ErrorCode::GroupIdNotFound);
        assert_eq!(d.c.group_state("g"), Some(GroupState::Stable));
        // Full: refused, and the classic group stays as it was.
        let mut config = GroupConfig::default();
        config.consumer.max_size = Some(2);
        let mut d = classic_group(config);
        let r = d.consumer(consumer_join("c", &["t"]));
        assert_eq!(r.error, ErrorCode::GroupMaxSizeReached);
        assert_eq!(d.c.group_state("g"), Some(GroupState::Stable));
        assert_eq!(d.heartbeat("a", 1), ErrorCode::None);
        // Mid-rebalance: a held JoinGroup is told to rejoin. A group still forming (its
        // member has no assignment yet) upgrades too; an assignment that cannot be read
        // refuses it.
        let mut d = classic_group(GroupConfig::default());
        let (held, answer) = d.join("a", &[("t", &[0, 1])]);
        assert!(answer.is_none());
        let r = d.consumer(consumer_join("c", &["t"]));
        assert_eq!(r.error, ErrorCode::None, "{:?}", r.message);
        match d.take(held) {
            Some(Response::Join(j)) => assert_eq!(j.error, ErrorCode::RebalanceInProgress),
            other => panic!("{other:?}"),
        }
        let mut d = D::new(GroupConfig::default());
        let forming = d.join_new();
        let r = d.consumer(consumer_join("c", &["t"]));
        assert_eq!(r.error, ErrorCode::None, "{:?}", r.message);
        assert_eq!(count(&r.assignment), 2, "its half, none of it held");
        match d.take(forming) {
            Some(Response::Join(j)) => assert_eq!(j.error, ErrorCode::RebalanceInProgress),
            other => panic!("{other:?}"),
        }
        let mut d = classic_group(GroupConfig::default());
        let leader = d.c.leader("g").expect("leader");
        let leader = if leader == d.mid("a") { "a" } else { "b" };
        let (_, rejoined) = d.join(leader, &[]);
        assert!(rejoined.is_none(), "held until the other member rejoins");
        let (_, other) = d.join(if leader == "a" { "b" } else { "a" }, &[]);
        let generation = other.expect("the join phase completed").generation_id;
        let garbled = vec![(d.mid("a"), Bytes::from_static(b"xx"))];
        assert_eq!(d.sync(leader, generation, garbled).error, ErrorCode::None);
        let r = d.consumer(consumer_join("c", &["t"]));
        assert_eq!(r.error, ErrorCode::GroupIdNotFound);
        assert!(r.message.unwrap_or_default().contains("malformed"));
    }

    #[test]
    fn a_static_classic_member_back_under_a_new_id_takes_over_and_is_written() {
        let mut d = mixed_group();
        // s joins as a static classic member, then comes back under a new member id.
        let first = d.join_static("s-1");
        let second = d.join_static("s-1");
        assert_ne!(second.member_id, first.member_id);
        // The old id is fenced; the log rebuilds the member under its new id.
        d.ids.insert("old".into(), first.member_id.clone());
        let s = d.sync("old", first.generation_id, vec![]);
        assert_eq!(s.error, ErrorCode::UnknownMemberId);
        let rebuilt = d.replayed().consumer_describe(&["g".into()]).remove(0);
        assert_eq!(rebuilt, d.c.consumer_describe(&["g".into()]).remove(0));
        let m = rebuilt
            .members
            .iter()
            .find(|m| m.member_id == second.member_id)
            .expect("the new id");
        assert_eq!((m.instance_id.as_deref(), m.classic), (Some("s-1"), true));
    }

    #[test]
    fn a_static_classic_member_restarts_on_the_consumer_protocol() {
        let mut d = mixed_group();
        let classic = d.join_static("s-2");
        // The same instance comes back speaking the consumer protocol, without having left.
        let mut j = consumer_join("s2-new", &["t"]);
        j.instance_id = Some("s-2".into());
        let r = d.consumer(j);
        assert_eq!(r.error, ErrorCode::None, "{:?}", r.message);
        let described = d.c.consumer_describe(&["g".into()]).remove(0);
        let ids: Vec<(&str, bool)> = described
            .members
            .iter()
            .filter(|m| m.instance_id.as_deref() == Some("s-2"))
            .map(|m| (m.member_id.as_str(), m.classic))
            .collect();
        assert_eq!(ids, [("s2-new", false)]);
        // The old classic id is fenced.
        d.ids.insert("s".into(), classic.member_id.clone());
        assert_eq!(
            d.heartbeat("s", classic.generation_id),
            ErrorCode::UnknownMemberId
        );
    }

    #[test]
    fn classic_members_reconcile_by_rejoining() {
        let mut d = mixed_group();
        // A cooperative member gives up partitions only once it no longer owns them.
        let b = d.partitions("b");
        let r = d.consumer(consumer_join("e", &["t"]));
        assert_eq!(r.error, ErrorCode::None);
        assert_eq!(d.heartbeat("b", 2), ErrorCode::RebalanceInProgress);
        let owned: Vec<i32> = b.iter().copied().collect();
        let (_, j) = d.join("b", &[("t", &owned)]);
        let j = j.expect("answered");
        let s = d.sync("b", j.generation_id, vec![]);
        let kept = assignment_of(&s.assignment);
        assert!(kept.is_subset(&b));
        if kept.len() < b.len() {
            // It still has partitions to give up: it stays at its epoch until it rejoins
            // without them.
            assert_eq!(j.generation_id, 2);
            assert_eq!(d.heartbeat("b", 2), ErrorCode::RebalanceInProgress);
            let owned: Vec<i32> = kept.iter().copied().collect();
            let (_, j) = d.join("b", &[("t", &owned)]);
            assert_eq!(j.expect("answered").generation_id, 3);
        }
        // Leaving with LeaveGroup moves the group epoch.
        let before = d.c.consumer_describe(&["g".into()]).remove(0).group_epoch;
        let out = d.c.leave(
            LeaveRequest {
                request_id: 50,
                group_id: "g".into(),
                members: vec![
                    LeaveMember {
                        member_id: d.mid("a"),
                        group_instance_id: None,
                        reason: None,
                    },
                    LeaveMember {
                        member_id: "c".into(),
                        group_instance_id: None,
                        reason: None,
                    },
                ],
            },
            d.now,
        );
        match out.response(50) {
            Some(Response::Leave(l)) => {
                // A consumer-protocol member does not leave with LeaveGroup.
                let errors: Vec<ErrorCode> = l.members.iter().map(|m| m.error).collect();
                assert_eq!(errors, [ErrorCode::None, ErrorCode::UnknownMemberId]);
            }
            other => panic!("{other:?}"),
        }
        let after = d.c.consumer_describe(&["g".into()]).remove(0);
        assert_eq!(after.group_epoch, before + 1);
        assert_eq!(after.members.len(), 3);
    }
}
