//! Scenario tests of the coordinator, with injected time.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 20_000;

fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // user data (ignored)
    b.freeze()
}

fn range(topics: &[&str]) -> Vec<(String, Bytes)> {
    vec![("range".to_owned(), subscription(topics))]
}

/// A test driver: keeps time, collects records and responses.
struct H {
    c: GroupCoordinator,
    now: i64,
    next_id: RequestId,
    records: Vec<Record>,
    responses: BTreeMap<RequestId, Response>,
    /// How many responses each request got (must never exceed 1).
    answered: BTreeMap<RequestId, usize>,
    /// The session timeout of joins.
    session: i32,
}

impl H {
    fn new() -> Self {
        Self::with_config(GroupConfig::default())
    }

    fn with_config(config: GroupConfig) -> Self {
        H {
            c: GroupCoordinator::new(config, 7),
            now: 1_000_000,
            next_id: 1,
            records: Vec::new(),
            responses: BTreeMap::new(),
            answered: BTreeMap::new(),
            session: SESSION,
        }
    }

    fn id(&mut self) -> RequestId {
        self.next_id += 1;
        self.next_id
    }

    fn apply(&mut self, out: Output) {
        self.records.extend(out.records);
        for (id, r) in out.responses {
            let n = self.answered.entry(id).or_default();
            *n += 1;
            assert_eq!(*n, 1, "request {id} answered twice");
            self.responses.insert(id, r);
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let out = self.c.tick(self.now);
        self.apply(out);
    }

    fn join_req(&mut self, group: &str, member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            request_id: self.id(),
            api_version: 5,
            group_id: group.to_owned(),
            member_id: member.to_owned(),
            group_instance_id: instance.map(str::to_owned),
            client_id: "client".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            protocol_type: "consumer".to_owned(),
            protocols: range(&["t1"]),
            session_timeout_ms: self.session,
            rebalance_timeout_ms: REBALANCE,
            reason: None,
        }
    }

    fn send_join(&mut self, req: JoinRequest) -> RequestId {
        let id = req.request_id;
        let out = self.c.join(req, self.now);
        self.apply(out);
        id
    }

    /// Joins with member id `member`; returns the request id.
    fn join(&mut self, group: &str, member: &str) -> RequestId {
        let req = self.join_req(group, member, None);
        self.send_join(req)
    }

    /// The MEMBER_ID_REQUIRED round trip: returns (request id of the held rejoin, member id).
    fn join_new(&mut self, group: &str) -> (RequestId, String) {
        let id = self.join(group, "");
        let r = self.join_resp(id);
        assert_eq!(r.error, ErrorCode::MemberIdRequired);
        assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
        let id = self.join(group, &r.member_id);
        (id, r.member_id)
    }

    fn join_resp(&mut self, id: RequestId) -> JoinResponse {
        match self.responses.remove(&id) {
            Some(Response::Join(r)) => r,
            other => panic!("no join response for {id}: {other:?}"),
        }
    }

    fn has_response(&self, id: RequestId) -> bool {
        self.responses.contains_key(&id)
    }

    fn sync(
        &mut self,
        group: &str,
        gen: i32,
        member: &str,
        assignments: &[(&str, &str)],
    ) -> RequestId {
        let req = SyncRequest {
            request_id: self.id(),
            group_id: group.to_owned(),
            generation_id: gen,
            member_id: member.to_owned(),
            group_instance_id: None,
            protocol_type: Some("consumer".to_owned()),
            protocol_name: Some("range".to_owned()),
            assignments: assignments
                .iter()
                .map(|(m, a)| ((*m).to_owned(), Bytes::copy_from_slice(a.as_bytes())))
                .collect(),
        };
        self.send_sync(req)
    }

    fn send_sync(&mut self, req: SyncRequest) -> RequestId {
        let id = req.request_id;
        let out = self.c.sync(req, self.now);
        self.apply(out);
        id
    }

    fn sync_resp(&mut self, id: RequestId) -> SyncResponse {
        match self.responses.remove(&id) {
            Some(Response::Sync(r)) => r,
            other => panic!("no sync response for {id}: {other:?}"),
        }
    }

    fn heartbeat_with(
        &mut self,
        group: &str,
        gen: i32,
        member: &str,
        instance: Option<&str>,
    ) -> ErrorCode {
        let req = HeartbeatRequest {
            request_id: self.id(),
            group_id: group.to_owned(),
            generation_id: gen,
            member_id: member.to_owned(),
            group_instance_id: instance.map(str::to_owned),
        };
        let id = req.request_id;
        let out = self.c.heartbeat(req, self.now);
        self.apply(out);
        match self.responses.remove(&id) {
            Some(Response::Heartbeat(r)) => r.error,
            other => panic!("no heartbeat response: {other:?}"),
        }
    }

    fn heartbeat(&mut self, group: &str, gen: i32, member: &str) -> ErrorCode {
        self.heartbeat_with(group, gen, member, None)
    }

    fn leave(&mut self, group: &str, members: &[(&str, Option<&str>)]) -> LeaveResponse {
        let req = LeaveRequest {
            request_id: self.id(),
            group_id: group.to_owned(),
            members: members
                .iter()
                .map(|(m, i)| LeaveMember {
                    member_id: (*m).to_owned(),
                    group_instance_id: i.map(str::to_owned),
                    reason: Some("test".to_owned()),
                })
                .collect(),
        };
        let id = req.request_id;
        let out = self.c.leave(req, self.now);
        self.apply(out);
        match self.responses.remove(&id) {
            Some(Response::Leave(r)) => r,
            other => panic!("no leave response: {other:?}"),
        }
    }

    fn commit(
        &mut self,
        group: &str,
        gen: i32,
        member: &str,
        offsets: &[(&str, i32, i64)],
    ) -> Vec<ErrorCode> {
        let mut topics: Vec<(String, Vec<CommitPartition>)> = Vec::new();
        for (t, p, o) in offsets {
            let part = CommitPartition {
                partition: *p,
                offset: *o,
                leader_epoch: 3,
                metadata: Some(format!("m{o}")),
            };
            match topics.iter_mut().find(|(n, _)| n == t) {
                Some((_, v)) => v.push(part),
                None => topics.push(((*t).to_owned(), vec![part])),
            }
        }
        self.commit_req(group, gen, member, topics)
    }

    fn commit_req(
        &mut self,
        group: &str,
        gen: i32,
        member: &str,
        topics: Vec<(String, Vec<CommitPartition>)>,
    ) -> Vec<ErrorCode> {
        let req = OffsetCommitRequest {
            request_id: self.id(),
            group_id: group.to_owned(),
            generation_id: gen,
            member_id: member.to_owned(),
            group_instance_id: None,
            topics,
            api_version: 8,
        };
        let id = req.request_id;
        let out = self.c.commit_offsets(req, self.now);
        self.apply(out);
        match self.responses.remove(&id) {
            Some(Response::OffsetCommit(r)) => r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error))
                .collect(),
            other => panic!("no commit response: {other:?}"),
        }
    }

    /// (offset, leader epoch, metadata) of one partition.
    fn fetch(&self, group: &str, topic: &str, partition: i32) -> (i64, i32, String) {
        let r = self.c.fetch_offsets(&OffsetFetchRequest {
            group_id: group.to_owned(),
            topics: Some(vec![(topic.to_owned(), vec![partition])]),
            member: None,
        });
        assert_eq!(r.error, ErrorCode::None);
        let p = &r.topics[0].1[0];
        (p.offset, p.leader_epoch, p.metadata.clone())
    }

    fn state(&self, group: &str) -> Option<GroupState> {
        self.c.group_state(group)
    }

    /// Brings `n` members into a Stable group (generation 1); returns member
    /// ids with the leader first.
    fn stable_group(&mut self, group: &str, n: usize) -> Vec<String> {
        let mut joins = Vec::new();
        for _ in 0..n {
            joins.push(self.join_new(group));
        }
        self.advance(i64::from(REBALANCE));
        let mut leader = String::new();
        let mut ids = Vec::new();
        for (rid, member) in &joins {
            let r = self.join_resp(*rid);
            assert_eq!(r.error, ErrorCode::None);
            assert_eq!(&r.member_id, member);
            leader = r.leader.clone();
            ids.push(member.clone());
        }
        let gen = self.c.generation(group).unwrap_or(-1);
        let assignments: Vec<(String, String)> =
            ids.iter().map(|m| (m.clone(), format!("a-{m}"))).collect();
        let refs: Vec<(&str, &str)> = assignments
            .iter()
            .map(|(m, a)| (m.as_str(), a.as_str()))
            .collect();
        let sid = self.sync(group, gen, &leader, &refs);
        assert_eq!(self.sync_resp(sid).error, ErrorCode::None);
        for m in ids.iter().filter(|m| **m != leader) {
            let sid = self.sync(group, gen, m, &[]);
            assert_eq!(self.sync_resp(sid).error, ErrorCode::None);
        }
        assert_eq!(self.state(group), Some(GroupState::Stable));
        ids.retain(|m| *m != leader);
        ids.insert(0, leader);
        ids
    }

    fn describe(&self, group: &str) -> DescribedGroup {
        self.c.describe(&[group.to_owned()]).remove(0)
    }
}

// ---------------------------------------------------------------------------
// Join / sync / state machine
// ---------------------------------------------------------------------------

#[test]
fn first_join_member_id_required_initial_delay_and_sync() {
    let mut h = H::new();
    let (rid, member) = h.join_new("g");
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert!(!h.has_response(rid), "join is held");
    // initial delay: min(3000, rebalance timeout)
    assert_eq!(h.c.next_deadline(), Some(h.now + 3000));
    h.advance(2999);
    assert!(!h.has_response(rid));
    h.advance(1);
    let r = h.join_resp(rid);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, member);
    assert_eq!(r.member_id, member);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, subscription(&["t1"]));
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    // heartbeats are fine while completing
    assert_eq!(h.heartbeat("g", 1, &member), ErrorCode::None);
    let records_before = h.records.len();
    let sid = h.sync("g", 1, &member, &[(member.as_str(), "assign")]);
    let s = h.sync_resp(sid);
    assert_eq!(s.error, ErrorCode::None);
    assert_eq!(&s.assignment[..], b"assign");
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // the assignment is persisted as a GroupMetadata record
    let (k, v) = &h.records[records_before];
    assert_eq!(
        RecordKey::decode(k),
        Ok(RecordKey::GroupMetadata { group: "g".into() })
    );
    let v = GroupMetadataValue::decode(v.as_deref().unwrap_or_default()).expect("value");
    assert_eq!(v.generation, 1);
    assert_eq!(v.leader.as_deref(), Some(member.as_str()));
    assert_eq!(v.members.len(), 1);
    assert_eq!(&v.members[0].assignment[..], b"assign");
    assert_eq!(v.members[0].subscription, subscription(&["t1"]));
}

#[test]
fn join_v3_gets_member_id_without_round_trip() {
    let mut h = H::new();
    let mut req = h.join_req("g", "", None);
    req.api_version = 3;
    let rid = h.send_join(req);
    assert!(!h.has_response(rid));
    h.advance(3000);
    let r = h.join_resp(rid);
    assert_eq!(r.error, ErrorCode::None);
    assert!(r.member_id.starts_with("client-"));
    assert_eq!(r.leader, r.member_id);
}

#[test]
fn generated_member_ids_look_like_uuids_and_depend_on_seed() {
    let mut h = H::new();
    let rid = h.join("g", "");
    let a = h.join_resp(rid).member_id;
    let rid = h.join("g", "");
    let b = h.join_resp(rid).member_id;
    assert_ne!(a, b);
    let uuid = a.strip_prefix("client-").expect("prefix");
    let parts: Vec<usize> = uuid.split('-').map(str::len).collect();
    assert_eq!(parts, vec![8, 4, 4, 4, 12]);
    // same seed, same ids
    let mut h2 = H::new();
    let rid = h2.join("g", "");
    assert_eq!(h2.join_resp(rid).member_id, a);
}

#[test]
fn initial_delay_extends_while_members_join_and_three_members_share_a_generation() {
    let mut h = H::new();
    let t0 = h.now;
    let (ra, a) = h.join_new("g");
    h.advance(1000);
    let (rb, b) = h.join_new("g");
    h.advance(2000); // t0 + 3000: extended, B joined during the delay
    assert!(!h.has_response(ra));
    assert_eq!(h.c.next_deadline(), Some(t0 + 6000));
    h.advance(1000);
    let (rc, c) = h.join_new("g");
    h.advance(2000); // t0 + 6000: extended again
    assert!(!h.has_response(ra));
    h.advance(2999);
    assert!(!h.has_response(ra));
    h.advance(1); // t0 + 9000: nobody new, complete
    let ja = h.join_resp(ra);
    let jb = h.join_resp(rb);
    let jc = h.join_resp(rc);
    for r in [&ja, &jb, &jc] {
        assert_eq!(r.error, ErrorCode::None);
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader, a, "first joiner leads");
    }
    let leader_view: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(leader_view, vec![a.as_str(), b.as_str(), c.as_str()]);
    assert!(jb.members.is_empty() && jc.members.is_empty());

    // followers wait for the leader
    let sb = h.sync("g", 1, &b, &[]);
    let sc = h.sync("g", 1, &c, &[]);
    assert!(!h.has_response(sb) && !h.has_response(sc));
    let sa = h.sync("g", 1, &a, &[(&a, "A"), (&b, "B"), (&c, "C")]);
    assert_eq!(&h.sync_resp(sa).assignment[..], b"A");
    assert_eq!(&h.sync_resp(sb).assignment[..], b"B");
    assert_eq!(&h.sync_resp(sc).assignment[..], b"C");
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // a late sync in Stable returns the assignment
    let sb2 = h.sync("g", 1, &b, &[]);
    assert_eq!(&h.sync_resp(sb2).assignment[..], b"B");
    let d = h.describe("g");
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol_data, "range");
    assert_eq!(d.members.len(), 3);
}

#[test]
fn initial_delay_is_capped_by_rebalance_timeout() {
    let mut h = H::new();
    let mut req = h.join_req("g", "", None);
    req.api_version = 3;
    req.rebalance_timeout_ms = 1000;
    let rid = h.send_join(req);
    assert_eq!(h.c.next_deadline(), Some(h.now + 1000));
    h.advance(1000);
    assert_eq!(h.join_resp(rid).generation_id, 1);
}

#[test]
fn fourth_member_triggers_rebalance_and_new_generation() {
    let mut h = H::new();
    let ids = h.stable_group("g", 3);
    let (rd, d) = h.join_new("g");
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert!(!h.has_response(rd));
    for m in &ids {
        assert_eq!(h.heartbeat("g", 1, m), ErrorCode::RebalanceInProgress);
    }
    let mut rejoins = Vec::new();
    for m in &ids {
        rejoins.push(h.join("g", m));
    }
    // everybody rejoined: completes at once, no timer needed
    let jd = h.join_resp(rd);
    assert_eq!(jd.generation_id, 2);
    assert_eq!(jd.member_id, d);
    let leader = h.join_resp(rejoins[0]);
    assert_eq!(leader.leader, ids[0]);
    assert_eq!(leader.members.len(), 4);
    for r in &rejoins[1..] {
        let r = h.join_resp(*r);
        assert_eq!(r.generation_id, 2);
        assert!(r.members.is_empty());
    }
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    // old generation is refused now
    assert_eq!(h.heartbeat("g", 1, &ids[1]), ErrorCode::IllegalGeneration);
    assert_eq!(h.heartbeat("g", 2, &ids[1]), ErrorCode::None);
}

#[test]
fn rejoin_with_same_protocols_while_stable_returns_current_generation() {
    let mut h = H::new();
    let ids = h.stable_group("g", 2);
    let rid = h.join("g", &ids[1]);
    let r = h.join_resp(rid);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, ids[0]);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // the leader rejoining triggers a rebalance
    let rl = h.join("g", &ids[0]);
    assert!(!h.has_response(rl));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    // as does a member with new protocols
    let mut req = h.join_req("g", &ids[1], None);
    req.protocols = range(&["t1", "t2"]);
    let rf = h.send_join(req);
    let r = h.join_resp(rf);
    assert_eq!(r.generation_id, 2);
    let r = h.join_resp(rl);
    assert_eq!(r.members.len(), 2);
}

#[test]
fn rejoin_while_completing_returns_current_generation() {
    let mut h = H::new();
    let (ra, a) = h.join_new("g");
    let (rb, b) = h.join_new("g");
    h.advance(6000); // the second join extended the initial delay
    h.join_resp(ra);
    h.join_resp(rb);
    let again = h.join("g", &a);
    let r = h.join_resp(again);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.members.len(), 2, "the leader gets the members again");
    let again = h.join("g", &b);
    assert!(h.join_resp(again).members.is_empty());
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
}

#[test]
fn leave_triggers_rebalance() {
    let mut h = H::new();
    let ids = h.stable_group("g", 3);
    let r = h.leave("g", &[(&ids[1], None), ("nobody", None)]);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.members[0].error, ErrorCode::None);
    assert_eq!(r.members[1].error, ErrorCode::UnknownMemberId);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let r0 = h.join("g", &ids[0]);
    assert!(!h.has_response(r0));
    let r2 = h.join("g", &ids[2]);
    let j0 = h.join_resp(r0);
    assert_eq!(j0.generation_id, 2);
    let members: Vec<&str> = j0.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, vec![ids[0].as_str(), ids[2].as_str()]);
    assert_eq!(h.join_resp(r2).generation_id, 2);
    // the one who left is unknown now
    assert_eq!(h.heartbeat("g", 2, &ids[1]), ErrorCode::UnknownMemberId);
    // leaving an unknown group
    let r = h.leave("nope", &[("x", None)]);
    assert_eq!(r.members[0].error, ErrorCode::UnknownMemberId);
}

#[test]
fn last_member_leaving_empties_the_group() {
    let mut h = H::new();
    let ids = h.stable_group("g", 1);
    let before = h.records.len();
    h.leave("g", &[(&ids[0], None)]);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    assert_eq!(h.c.generation("g"), Some(2));
    // the empty group is persisted
    let (_, v) = &h.records[before];
    let v = GroupMetadataValue::decode(v.as_deref().unwrap_or_default()).expect("value");
    assert!(v.members.is_empty());
    assert_eq!(v.generation, 2);
    assert_eq!(v.protocol, None);
    // a new member starts over with the initial delay
    let (rid, _) = h.join_new("g");
    assert_eq!(h.c.next_deadline(), Some(h.now + 3000));
    h.advance(3000);
    assert_eq!(h.join_resp(rid).generation_id, 3);
}

#[test]
fn session_expiry_removes_member_and_rebalances() {
    let mut h = H::new();
    let ids = h.stable_group("g", 2);
    h.advance(8000);
    assert_eq!(h.heartbeat("g", 1, &ids[0]), ErrorCode::None);
    assert_eq!(h.c.next_deadline(), Some(h.now + 2000));
    h.advance(1999);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    h.advance(1);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat("g", 1, &ids[0]), ErrorCode::RebalanceInProgress);
    assert_eq!(h.heartbeat("g", 1, &ids[1]), ErrorCode::UnknownMemberId);
    let r = h.join("g", &ids[0]);
    let r = h.join_resp(r);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut h = H::new();
    let ids = h.stable_group("g", 2);
    let (rc, c) = h.join_new("g");
    let ra = h.join("g", &ids[0]);
    // B keeps heartbeating but never rejoins
    for _ in 0..3 {
        h.advance(5000);
        assert_eq!(h.heartbeat("g", 1, &ids[1]), ErrorCode::RebalanceInProgress);
    }
    h.advance(4999);
    assert!(!h.has_response(ra));
    assert_eq!(h.c.next_deadline(), Some(h.now + 1));
    h.advance(1);
    let ja = h.join_resp(ra);
    assert_eq!(ja.generation_id, 2);
    let members: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, vec![ids[0].as_str(), c.as_str()]);
    assert_eq!(h.join_resp(rc).generation_id, 2);
    assert_eq!(h.heartbeat("g", 2, &ids[1]), ErrorCode::UnknownMemberId);
}

#[test]
fn leader_missing_from_rejoin_hands_leadership_over() {
    let mut h = H::new();
    let ids = h.stable_group("g", 2);
    let (rc, c) = h.join_new("g");
    let rb = h.join("g", &ids[1]);
    h.advance(i64::from(REBALANCE));
    let jb = h.join_resp(rb);
    assert_eq!(jb.leader, ids[1]);
    assert_eq!(jb.members.len(), 2);
    assert_eq!(h.join_resp(rc).leader, ids[1]);
    assert_eq!(h.c.leader("g"), Some(ids[1].clone()));
    let _ = c;
}

#[test]
fn pending_member_that_never_rejoins_expires() {
    let mut h = H::new();
    let ids = h.stable_group("g", 1);
    let rid = h.join("g", "");
    let pending = h.join_resp(rid).member_id;
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    h.advance(i64::from(SESSION));
    // the pending id is gone; the original member expired too (no heartbeat)
    let rid = h.join("g", &pending);
    assert_eq!(h.join_resp(rid).error, ErrorCode::UnknownMemberId);
    let _ = ids;
}

#[test]
fn sync_timeout_removes_members_that_did_not_sync() {
    let mut h = H::new();
    let (ra, a) = h.join_new("g");
    let (rb, b) = h.join_new("g");
    h.advance(6000); // the second join extended the initial delay
    h.join_resp(ra);
    h.join_resp(rb);
    let sb = h.sync("g", 1, &b, &[]);
    assert!(!h.has_response(sb));
    // the leader never syncs
    h.advance(i64::from(REBALANCE));
    assert_eq!(h.sync_resp(sb).error, ErrorCode::RebalanceInProgress);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat("g", 1, &a), ErrorCode::UnknownMemberId);
    let rb = h.join("g", &b);
    let jb = h.join_resp(rb);
    assert_eq!(jb.leader, b);
    assert_eq!(jb.generation_id, 2);
}

#[test]
fn sync_errors() {
    let mut h = H::new();
    let ids = h.stable_group("g", 2);
    let s = h.sync("g", 1, "nobody", &[]);
    assert_eq!(h.sync_resp(s).error, ErrorCode::UnknownMemberId);
    let s = h.sync("nogroup", 1, "x", &[]);
    assert_eq!(h.sync_resp(s).error, ErrorCode::UnknownMemberId);
    let s = h.sync("g", 9, &ids[0], &[]);
    assert_eq!(h.sync_resp(s).error, ErrorCode::IllegalGeneration);
    let mut req = SyncRequest {
        request_id: h.id(),
        group_id: "g".into(),
        generation_id: 1,
        member_id: ids[1].clone(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("roundrobin".into()),
        assignments: vec![],
    };
    let s = h.send_sync(req.clone());
    assert_eq!(h.sync_resp(s).error, ErrorCode::InconsistentGroupProtocol);
    req.request_id = h.id();
    req.protocol_name = None;
    req.protocol_type = Some("connect".into());
    let s = h.send_sync(req);
    assert_eq!(h.sync_resp(s).error, ErrorCode::InconsistentGroupProtocol);
    let s = h.sync("", 1, &ids[0], &[]);
    assert_eq!(h.sync_resp(s).error, ErrorCode::InvalidGroupId);
    // during a rebalance
    h.join_new("g");
    let s = h.sync("g", 1, &ids[1], &[]);
    assert_eq!(h.sync_resp(s).error, ErrorCode::RebalanceInProgress);
}

#[test]
fn held_syncs_fail_when_a_rebalance_starts() {
    let mut h = H::new();
    let (ra, a) = h.join_new("g");
    let (rb, b) = h.join_new("g");
    h.advance(6000); // the second join extended the initial delay
    h.join_resp(ra);
    h.join_resp(rb);
    let sb = h.sync("g", 1, &b, &[]);
    h.join_new("g");
    assert_eq!(h.sync_resp(sb).error, ErrorCode::RebalanceInProgress);
    let _ = a;
}

#[test]
fn join_errors() {
    let mut h = H::new();
    let mut req = h.join_req("g", "", None);
    req.session_timeout_ms = 5999;
    let r = h.send_join(req);
    assert_eq!(h.join_resp(r).error, ErrorCode::InvalidSessionTimeout);
    let mut req = h.join_req("g", "", None);
    req.session_timeout_ms = 1_800_001;
    let r = h.send_join(req);
    assert_eq!(h.join_resp(r).error, ErrorCode::InvalidSessionTimeout);
    let r = h.join("", "");
    assert_eq!(h.join_resp(r).error, ErrorCode::InvalidGroupId);
    let r = h.join("g", "someone");
    assert_eq!(h.join_resp(r).error, ErrorCode::UnknownMemberId);
    let mut req = h.join_req("g", "", None);
    req.protocols.clear();
    let r = h.send_join(req);
    assert_eq!(h.join_resp(r).error, ErrorCode::InconsistentGroupProtocol);
    assert_eq!(h.state("g"), None, "failed joins leave no group behind");

    let ids = h.stable_group("g", 1);
    let mut req = h.join_req("g", "", None);
    req.protocol_type = "connect".into();
    let r = h.send_join(req);
    assert_eq!(h.join_resp(r).error, ErrorCode::InconsistentGroupProtocol);
    let mut req = h.join_req("g", "", None);
    req.protocols = vec![("roundrobin".into(), subscription(&["t1"]))];
    let r = h.send_join(req);
    assert_eq!(h.join_resp(r).error, ErrorCode::InconsistentGroupProtocol);
    let r = h.join("g", "stranger");
    assert_eq!(h.join_resp(r).error, ErrorCode::UnknownMemberId);
    let _ = ids;
}

#[test]
fn protocol_vote() {
    let mut h = H::new();
    let proto = |names: &[&str]| -> Vec<(String, Bytes)> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), Bytes::from(n.to_string())))
            .collect()
    };
    let mut rids = Vec::new();
    for p in [
        proto(&["range", "roundrobin", "sticky"]),
        proto(&["roundrobin", "range"]),
        proto(&["roundrobin", "range", "sticky"]),
    ] {
        let mut req = h.join_req("g", "", None);
        req.api_version = 3;
        req.protocols = p;
        rids.push(h.send_join(req));
    }
    h.advance(6000); // the second join extended the initial delay
    let r = h.join_resp(rids[0]);
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
    assert!(r.members.iter().all(|m| &m.metadata[..] == b"roundrobin"));
}

#[test]
fn group_max_size() {
    let mut h = H::with_config(GroupConfig {
        max_size: Some(2),
        ..GroupConfig::default()
    });
    h.join_new("g");
    h.join_new("g");
    let r = h.join("g", "");
    assert_eq!(h.join_resp(r).error, ErrorCode::GroupMaxSizeReached);
}

#[test]
fn duplicate_join_answers_the_older_request() {
    let mut h = H::new();
    let (r1, m) = h.join_new("g");
    let r2 = h.join("g", &m);
    assert_eq!(h.join_resp(r1).error, ErrorCode::RebalanceInProgress);
    h.advance(3000);
    assert_eq!(h.join_resp(r2).generation_id, 1);
}

// ---------------------------------------------------------------------------
// Static membership
// ---------------------------------------------------------------------------

fn static_group(h: &mut H) -> (String, String) {
    let (a, b) = static_group_named(h, "g");
    assert!(a.starts_with("ia-"), "{a}");
    (a, b)
}

#[test]
fn static_member_rejoin_replaces_member_without_rebalance() {
    let mut h = H::new();
    let (a, b) = static_group(&mut h);
    let before = h.records.len();
    let req = h.join_req("g", "", Some("ib"));
    let r = h.send_join(req);
    let r = h.join_resp(r);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, a);
    assert_ne!(r.member_id, b);
    let nb = r.member_id;
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_eq!(h.c.generation("g"), Some(1));
    // the replacement is persisted
    assert_eq!(h.records.len(), before + 1);
    // the old id is fenced, the new one works and keeps the assignment
    assert_eq!(
        h.heartbeat_with("g", 1, &b, Some("ib")),
        ErrorCode::FencedInstanceId
    );
    assert_eq!(h.heartbeat_with("g", 1, &nb, Some("ib")), ErrorCode::None);
    let mut sync = SyncRequest {
        request_id: h.id(),
        group_id: "g".into(),
        generation_id: 1,
        member_id: b.clone(),
        group_instance_id: Some("ib".into()),
        protocol_type: None,
        protocol_name: None,
        assignments: vec![],
    };
    let s = h.send_sync(sync.clone());
    assert_eq!(h.sync_resp(s).error, ErrorCode::FencedInstanceId);
    sync.request_id = h.id();
    sync.member_id = nb.clone();
    let s = h.send_sync(sync);
    assert_eq!(&h.sync_resp(s).assignment[..], b"B");
    let errs = h.commit_req(
        "g",
        1,
        &b,
        vec![("t1".into(), vec![])], // no partitions: the check is what matters
    );
    assert!(errs.is_empty());
    // leave with the fenced id
    let r = h.leave("g", &[(&b, Some("ib"))]);
    assert_eq!(r.members[0].error, ErrorCode::FencedInstanceId);
    // leave by instance id only
    let r = h.leave("g", &[("", Some("ib"))]);
    assert_eq!(r.members[0].error, ErrorCode::None);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn static_leader_rejoin_keeps_leadership_under_new_id() {
    let mut h = H::new();
    let (a, _b) = static_group(&mut h);
    let req = h.join_req("g", "", Some("ia"));
    let r = h.send_join(req);
    let r = h.join_resp(r);
    assert_eq!(r.leader, a, "old leader id is returned");
    assert_eq!(h.c.leader("g"), Some(r.member_id.clone()));
    assert_eq!(h.state("g"), Some(GroupState::Stable));
}

#[test]
fn static_member_with_compatible_protocols_keeps_the_group_stable() {
    let mut h = H::new();
    let (_a, b) = static_group(&mut h);
    let mut req = h.join_req("g", "", Some("ib"));
    // the vote still picks "range" (the only protocol every member supports)
    req.protocols = vec![
        ("roundrobin".into(), subscription(&["t1"])),
        ("range".into(), subscription(&["t1"])),
    ];
    let rb = h.send_join(req);
    let jb = h.join_resp(rb);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_ne!(jb.member_id, b);
    assert_eq!(jb.protocol_name.as_deref(), Some("range"));
    assert_eq!(jb.generation_id, 1);
}

#[test]
fn static_member_replaced_while_completing_triggers_rebalance() {
    let mut h = H::new();
    let ra = {
        let req = h.join_req("g", "", Some("ia"));
        h.send_join(req)
    };
    h.advance(3000);
    let a = h.join_resp(ra).member_id;
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    let s = h.sync("g", 1, &a, &[]);
    assert!(h.has_response(s));
    let (_, b) = h.join_new("g");
    let rb = h.join("g", &b);
    let ra = {
        let req = h.join_req("g", &a, Some("ia"));
        h.send_join(req)
    };
    assert_eq!(h.join_resp(ra).generation_id, 2);
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    // the static member restarts before syncing
    let rn = {
        let req = h.join_req("g", "", Some("ia"));
        h.send_join(req)
    };
    assert!(!h.has_response(rn));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let rb2 = h.join("g", &b);
    let jn = h.join_resp(rn);
    assert_eq!(jn.generation_id, 3);
    assert_ne!(jn.member_id, a);
    assert_eq!(h.join_resp(rb2).generation_id, 3);
    let _ = rb;
}

#[test]
fn static_member_replaced_during_rebalance_fences_the_held_join() {
    let mut h = H::new();
    let (a, b) = static_group(&mut h);
    h.join_new("g");
    let old = {
        let req = h.join_req("g", &b, Some("ib"));
        h.send_join(req)
    };
    let new = {
        let req = h.join_req("g", "", Some("ib"));
        h.send_join(req)
    };
    assert_eq!(h.join_resp(old).error, ErrorCode::FencedInstanceId);
    assert!(!h.has_response(new));
    let ra = {
        let req = h.join_req("g", &a, Some("ia"));
        h.send_join(req)
    };
    let jn = h.join_resp(new);
    assert_eq!(jn.generation_id, 2);
    assert_eq!(h.join_resp(ra).members.len(), 3);
}

#[test]
fn static_members_that_do_not_rejoin_stay_until_their_session_expires() {
    let mut h = H::new();
    let (a, b) = static_group(&mut h);
    let (rc, _c) = h.join_new("g");
    let ra = {
        let req = h.join_req("g", &a, Some("ia"));
        h.send_join(req)
    };
    for _ in 0..3 {
        h.advance(5000);
        assert_eq!(
            h.heartbeat_with("g", 1, &b, Some("ib")),
            ErrorCode::RebalanceInProgress
        );
    }
    h.advance(5000);
    // b did not rejoin but is static: kept, included in the member list
    let ja = h.join_resp(ra);
    assert_eq!(ja.members.len(), 3);
    assert_eq!(h.join_resp(rc).generation_id, 2);
}

// ---------------------------------------------------------------------------
// Offsets
// ---------------------------------------------------------------------------

#[test]
fn offset_commit_rules_and_fetch() {
    let mut h = H::new();
    let ids = h.stable_group("g", 2);
    assert_eq!(
        h.commit(
            "g",
            1,
            &ids[0],
            &[("t1", 0, 10), ("t1", 1, 11), ("t2", 0, 20)]
        ),
        vec![ErrorCode::None; 3]
    );
    assert_eq!(h.fetch("g", "t1", 0), (10, 3, "m10".to_owned()));
    assert_eq!(h.fetch("g", "t1", 1), (11, 3, "m11".to_owned()));
    assert_eq!(h.fetch("g", "t9", 0), (-1, -1, String::new()));
    assert_eq!(h.fetch("nogroup", "t1", 0), (-1, -1, String::new()));
    assert_eq!(
        h.commit("g", 0, &ids[0], &[("t1", 0, 12)]),
        vec![ErrorCode::IllegalGeneration]
    );
    assert_eq!(
        h.commit("g", 1, "stranger", &[("t1", 0, 12)]),
        vec![ErrorCode::UnknownMemberId]
    );
    assert_eq!(
        h.commit("g", -1, "", &[("t1", 0, 12)]),
        vec![ErrorCode::UnknownMemberId],
        "standalone commits need an Empty group"
    );
    assert_eq!(
        h.commit("", -1, "", &[("t1", 0, 12)]),
        vec![ErrorCode::InvalidGroupId]
    );
    // metadata too large: only that partition fails
    let errs = h.commit_req(
        "g",
        1,
        &ids[1],
        vec![(
            "t1".into(),
            vec![
                CommitPartition {
                    partition: 0,
                    offset: 13,
                    leader_epoch: -1,
                    metadata: Some("x".repeat(4097)),
                },
                CommitPartition {
                    partition: 1,
                    offset: 14,
                    leader_epoch: -1,
                    metadata: None,
                },
            ],
        )],
    );
    assert_eq!(
        errs,
        vec![ErrorCode::OffsetMetadataTooLarge, ErrorCode::None]
    );
    assert_eq!(h.fetch("g", "t1", 0).0, 10);
    assert_eq!(h.fetch("g", "t1", 1), (14, -1, String::new()));
    // allowed while preparing a rebalance, refused while completing
    let (rn, _) = h.join_new("g");
    assert_eq!(
        h.commit("g", 1, &ids[0], &[("t1", 0, 15)]),
        vec![ErrorCode::None]
    );
    let r0 = h.join("g", &ids[0]);
    let r1 = h.join("g", &ids[1]);
    h.join_resp(rn);
    h.join_resp(r0);
    h.join_resp(r1);
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(
        h.commit("g", 2, &ids[0], &[("t1", 0, 16)]),
        vec![ErrorCode::RebalanceInProgress]
    );
    // fetch all
    let all = h.c.fetch_offsets(&OffsetFetchRequest {
        group_id: "g".into(),
        topics: None,
        member: None,
    });
    let flat: Vec<(String, i32, i64)> = all
        .topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), p.partition, p.offset)))
        .collect();
    assert_eq!(
        flat,
        vec![
            ("t1".into(), 0, 15),
            ("t1".into(), 1, 14),
            ("t2".into(), 0, 20)
        ]
    );
}

#[test]
fn standalone_commits_create_an_empty_group() {
    let mut h = H::new();
    assert_eq!(
        h.commit("simple", 5, "", &[("t", 0, 1)]),
        vec![ErrorCode::IllegalGeneration]
    );
    assert_eq!(h.state("simple"), None);
    assert_eq!(
        h.commit("simple", -1, "", &[("t", 0, 1)]),
        vec![ErrorCode::None]
    );
    assert_eq!(h.state("simple"), Some(GroupState::Empty));
    assert_eq!(h.fetch("simple", "t", 0).0, 1);
    let listed = h.c.list(&[]).expect("list");
    assert_eq!(
        listed,
        vec![ListedGroup {
            group_id: "simple".into(),
            protocol_type: String::new(),
            state: GroupState::Empty,
            group_type: "classic",
        }]
    );
    // commits of an Empty consumer group with generation -1 are accepted too
    let ids = h.stable_group("g", 1);
    h.leave("g", &[(&ids[0], None)]);
    assert_eq!(h.commit("g", -1, "", &[("t", 0, 7)]), vec![ErrorCode::None]);
    // the record format is Kafka's
    let (k, v) = h.records.last().expect("record");
    assert_eq!(
        RecordKey::decode(k),
        Ok(RecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0
        })
    );
    let v = OffsetCommitValue::decode(v.as_deref().unwrap_or_default()).expect("value");
    assert_eq!(
        (v.offset, v.leader_epoch, v.commit_timestamp),
        (7, 3, h.now)
    );
}

// ---------------------------------------------------------------------------
// Describe / List / Delete
// ---------------------------------------------------------------------------

#[test]
fn describe_and_list() {
    let mut h = H::new();
    let ids = h.stable_group("g", 2);
    h.commit("s", -1, "", &[("t", 0, 1)]);
    h.join_new("p");
    let d = h.describe("g");
    assert_eq!(d.error, ErrorCode::None);
    assert_eq!(d.protocol_type, "consumer");
    let mut members: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
    members.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(members, expected);
    assert!(d.members.iter().all(|m| m.client_host == "/127.0.0.1"));
    assert!(d.members.iter().all(|m| !m.assignment.is_empty()));
    let unknown = h.describe("nope");
    assert_eq!(
        (unknown.error, unknown.state),
        (ErrorCode::None, GroupState::Dead)
    );
    // not Stable: no metadata or assignment
    let p = h.describe("p");
    assert_eq!(p.state, GroupState::PreparingRebalance);
    assert!(p.members.iter().all(|m| m.metadata.is_empty()));
    let names = |l: Vec<ListedGroup>| l.into_iter().map(|g| g.group_id).collect::<Vec<_>>();
    assert_eq!(names(h.c.list(&[]).expect("list")), vec!["g", "p", "s"]);
    assert_eq!(
        names(
            h.c.list(&[GroupState::Stable, GroupState::Empty])
                .expect("list")
        ),
        vec!["g", "s"]
    );
    h.c.begin_load();
    assert_eq!(h.c.list(&[]), Err(ErrorCode::CoordinatorLoadInProgress));
    let r = h.join("g", "");
    assert_eq!(h.join_resp(r).error, ErrorCode::CoordinatorLoadInProgress);
    h.c.end_load();
    assert!(!h.c.is_loading());
}

#[test]
fn delete_groups_rules() {
    let mut h = H::new();
    h.stable_group("g", 1);
    h.commit("s", -1, "", &[("t", 0, 1), ("t", 1, 2)]);
    let before = h.records.len();
    let req = DeleteGroupsRequest {
        request_id: h.id(),
        group_ids: vec!["s".into(), "g".into(), "nope".into(), "".into(), "s".into()],
    };
    let id = req.request_id;
    let out = h.c.delete_groups(req, h.now);
    h.apply(out);
    let Some(Response::DeleteGroups(r)) = h.responses.remove(&id) else {
        panic!("no response");
    };
    let errors: Vec<ErrorCode> = r.results.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        errors,
        vec![
            ErrorCode::None,
            ErrorCode::NonEmptyGroup,
            ErrorCode::GroupIdNotFound,
            ErrorCode::InvalidGroupId,
            ErrorCode::GroupIdNotFound
        ]
    );
    assert_eq!(h.state("s"), None);
    // two offset tombstones and a group tombstone
    let written = &h.records[before..];
    assert_eq!(written.len(), 3);
    assert!(written.iter().all(|(_, v)| v.is_none()));
    assert_eq!(
        RecordKey::decode(&written[2].0),
        Ok(RecordKey::GroupMetadata { group: "s".into() })
    );
    assert_eq!(h.fetch("s", "t", 0).0, -1);
}

#[test]
fn offset_delete_rules() {
    let mut h = H::new();
    let ids = h.stable_group("g", 1);
    h.commit("g", 1, &ids[0], &[("t1", 0, 1), ("t2", 0, 2)]);
    let del = |h: &mut H, group: &str, topics: Vec<(&str, Vec<i32>)>| {
        let req = OffsetDeleteRequest {
            request_id: h.id(),
            group_id: group.to_owned(),
            topics: topics.into_iter().map(|(t, p)| (t.to_owned(), p)).collect(),
        };
        let id = req.request_id;
        let out = h.c.delete_offsets(req, h.now);
        h.apply(out);
        match h.responses.remove(&id) {
            Some(Response::OffsetDelete(r)) => r,
            other => panic!("{other:?}"),
        }
    };
    let before = h.records.len();
    let r = del(&mut h, "g", vec![("t1", vec![0]), ("t2", vec![0, 5])]);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(
        r.topics[0].partitions[0].error,
        ErrorCode::GroupSubscribedToTopic
    );
    assert_eq!(r.topics[1].partitions[0].error, ErrorCode::None);
    assert_eq!(r.topics[1].partitions[1].error, ErrorCode::None);
    assert_eq!(h.records.len(), before + 1, "one tombstone for t2-0");
    assert_eq!(h.fetch("g", "t1", 0).0, 1);
    assert_eq!(h.fetch("g", "t2", 0).0, -1);
    assert_eq!(
        del(&mut h, "nope", vec![("t1", vec![0])]).error,
        ErrorCode::GroupIdNotFound
    );
    assert_eq!(del(&mut h, "", vec![]).error, ErrorCode::InvalidGroupId);
    // once Empty, everything may go
    h.leave("g", &[(&ids[0], None)]);
    let r = del(&mut h, "g", vec![("t1", vec![0])]);
    assert_eq!(r.topics[0].partitions[0].error, ErrorCode::None);
    assert_eq!(h.fetch("g", "t1", 0).0, -1);
    // a non-consumer group with members
    let mut req = h.join_req("c", "", None);
    req.protocol_type = "connect".into();
    req.api_version = 3;
    h.send_join(req);
    assert_eq!(
        del(&mut h, "c", vec![("t1", vec![0])]).error,
        ErrorCode::NonEmptyGroup
    );
}

#[test]
fn unparsable_subscription_counts_as_subscribed() {
    let mut h = H::new();
    let mut req = h.join_req("g", "", None);
    req.api_version = 3;
    req.protocols = vec![("range".into(), Bytes::from_static(b"\x00"))];
    h.send_join(req);
    h.commit("g", -1, "", &[]);
    let req = OffsetDeleteRequest {
        request_id: h.id(),
        group_id: "g".into(),
        topics: vec![("any".into(), vec![0])],
    };
    let id = req.request_id;
    let out = h.c.delete_offsets(req, h.now);
    h.apply(out);
    let Some(Response::OffsetDelete(r)) = h.responses.remove(&id) else {
        panic!("no response");
    };
    assert_eq!(
        r.topics[0].partitions[0].error,
        ErrorCode::GroupSubscribedToTopic
    );
}

// ---------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------

#[test]
fn retention_of_standalone_group() {
    let mut h = H::new();
    h.commit("s", -1, "", &[("t", 0, 1)]);
    h.now += 500;
    h.commit("s", -1, "", &[("t", 1, 1)]);
    let retention = 1000;
    h.now += 499;
    let out = h.c.expire_offsets(h.now, retention);
    assert!(out.records.is_empty());
    h.now += 1;
    let out = h.c.expire_offsets(h.now, retention);
    assert_eq!(out.records.len(), 1);
    assert_eq!(h.fetch("s", "t", 0).0, -1);
    assert_eq!(h.fetch("s", "t", 1).0, 1);
    h.now += 500;
    let out = h.c.expire_offsets(h.now, retention);
    assert_eq!(out.records.len(), 2, "offset and group tombstones");
    assert_eq!(
        RecordKey::decode(&out.records[1].0),
        Ok(RecordKey::GroupMetadata { group: "s".into() })
    );
    assert_eq!(h.state("s"), None);
}

#[test]
fn retention_of_consumer_groups() {
    let mut h = H::new();
    let ids = h.stable_group("g", 1);
    h.commit("g", 1, &ids[0], &[("t1", 0, 1), ("other", 0, 2)]);
    let retention = 10_000;
    // Stable: only topics nobody subscribes to expire
    h.advance(9_000);
    h.heartbeat("g", 1, &ids[0]);
    h.now += 1_000;
    let out = h.c.expire_offsets(h.now, retention);
    assert_eq!(out.records.len(), 1);
    assert_eq!(h.fetch("g", "other", 0).0, -1);
    assert_eq!(h.fetch("g", "t1", 0).0, 1);
    // Empty: counted from when the group became empty
    h.leave("g", &[(&ids[0], None)]);
    let emptied = h.now;
    h.now = emptied + retention - 1;
    assert!(h.c.expire_offsets(h.now, retention).records.is_empty());
    h.now = emptied + retention;
    let out = h.c.expire_offsets(h.now, retention);
    assert_eq!(out.records.len(), 2);
    assert_eq!(h.state("g"), None);
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

fn snapshot(c: &GroupCoordinator) -> (Vec<DescribedGroup>, Vec<OffsetFetchResponse>, Vec<i32>) {
    let ids = c.group_ids();
    let described = c.describe(&ids);
    let offsets = ids
        .iter()
        .map(|g| {
            c.fetch_offsets(&OffsetFetchRequest {
                group_id: g.clone(),
                topics: None,
                member: None,
            })
        })
        .collect();
    let generations = ids.iter().map(|g| c.generation(g).unwrap_or(-1)).collect();
    (described, offsets, generations)
}

#[test]
fn replay_rebuilds_groups_and_offsets() {
    let mut h = H::new();
    h.session = 600_000;
    let ids = h.stable_group("g", 3);
    h.commit("g", 1, &ids[1], &[("t1", 0, 5), ("t1", 1, 6), ("t2", 0, 7)]);
    h.commit("g", 1, &ids[1], &[("t1", 0, 8)]);
    // a static group with a replaced member
    let (_a, _b) = static_group_named(&mut h, "st");
    let req = h.join_req("st", "", Some("ib"));
    let r = h.send_join(req);
    h.join_resp(r);
    // standalone offsets, some deleted
    h.commit("s", -1, "", &[("x", 0, 1), ("x", 1, 2)]);
    let req = OffsetDeleteRequest {
        request_id: h.id(),
        group_id: "s".into(),
        topics: vec![("x".into(), vec![1])],
    };
    let out = h.c.delete_offsets(req, h.now);
    h.apply(out);
    // a deleted group
    h.commit("gone", -1, "", &[("x", 0, 1)]);
    let req = DeleteGroupsRequest {
        request_id: h.id(),
        group_ids: vec!["gone".into()],
    };
    let out = h.c.delete_groups(req, h.now);
    h.apply(out);
    // an emptied group
    let e = h.stable_group("e", 1);
    h.commit("e", 1, &e[0], &[("t", 0, 3)]);
    h.leave("e", &[(&e[0], None)]);

    let mut fresh = GroupCoordinator::new(GroupConfig::default(), 99);
    fresh.begin_load();
    for (k, v) in &h.records {
        fresh.replay(k, v.as_deref(), h.now).expect("replay");
    }
    fresh.end_load();
    assert_eq!(snapshot(&fresh), snapshot(&h.c));
    assert_eq!(fresh.group_ids(), vec!["e", "g", "s", "st"]);
    assert_eq!(fresh.group_state("e"), Some(GroupState::Empty));
    assert_eq!(fresh.leader("g"), Some(ids[0].clone()));

    // The snapshot records rebuild the same state as the whole history.
    let mut compacted = GroupCoordinator::new(GroupConfig::default(), 7);
    for (k, v) in h.c.snapshot_records() {
        compacted
            .replay(&k, v.as_deref(), h.now)
            .expect("replay snapshot");
    }
    assert_eq!(snapshot(&compacted), snapshot(&h.c));
    assert!(h.c.snapshot_records().len() < h.records.len());

    // the rebuilt group works: heartbeats, then session expiry from load time
    let mut h2 = H {
        c: fresh,
        now: h.now,
        next_id: 1000,
        records: Vec::new(),
        responses: BTreeMap::new(),
        answered: BTreeMap::new(),
        session: SESSION,
    };
    assert_eq!(h2.heartbeat("g", 1, &ids[0]), ErrorCode::None);
    let s = h2.sync("g", 1, &ids[2], &[]);
    assert_eq!(
        h2.sync_resp(s).assignment,
        Bytes::from(format!("a-{}", ids[2]))
    );
    // a rejoin of a non-leader with the same protocols needs no rebalance
    let r = h2.join("g", &ids[1]);
    assert_eq!(h2.join_resp(r).generation_id, 1);
    h2.advance(300_000);
    assert_eq!(h2.heartbeat("g", 1, &ids[0]), ErrorCode::None);
    h2.advance(300_000);
    assert_eq!(h2.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h2.heartbeat("g", 1, &ids[1]), ErrorCode::UnknownMemberId);
}

fn static_group_named(h: &mut H, group: &str) -> (String, String) {
    let ra = {
        let req = h.join_req(group, "", Some("ia"));
        h.send_join(req)
    };
    let rb = {
        let req = h.join_req(group, "", Some("ib"));
        h.send_join(req)
    };
    h.advance(6000); // the second join extended the initial delay
    let a = h.join_resp(ra).member_id;
    let b = h.join_resp(rb).member_id;
    let s = h.sync(group, 1, &a, &[(&a, "A"), (&b, "B")]);
    h.sync_resp(s);
    let s = h.sync(group, 1, &b, &[]);
    h.sync_resp(s);
    (a, b)
}

#[test]
fn replay_static_members_are_fenced_after_load() {
    let mut h = H::new();
    let (_a, b) = static_group(&mut h);
    let req = h.join_req("g", "", Some("ib"));
    let r = h.send_join(req);
    let nb = h.join_resp(r).member_id;
    let mut fresh = GroupCoordinator::new(GroupConfig::default(), 1);
    for (k, v) in &h.records {
        fresh.replay(k, v.as_deref(), h.now).expect("replay");
    }
    let mut out = fresh.heartbeat(
        HeartbeatRequest {
            request_id: 1,
            group_id: "g".into(),
            generation_id: 1,
            member_id: b,
            group_instance_id: Some("ib".into()),
        },
        h.now,
    );
    assert_eq!(
        out.responses.pop().map(|(_, r)| r),
        Some(Response::Heartbeat(HeartbeatResponse {
            error: ErrorCode::FencedInstanceId
        }))
    );
    let out = fresh.heartbeat(
        HeartbeatRequest {
            request_id: 2,
            group_id: "g".into(),
            generation_id: 1,
            member_id: nb,
            group_instance_id: Some("ib".into()),
        },
        h.now,
    );
    assert_eq!(
        out.response(2),
        Some(&Response::Heartbeat(HeartbeatResponse {
            error: ErrorCode::None
        }))
    );
}

#[test]
fn replay_errors_and_skips() {
    let mut c = GroupCoordinator::new(GroupConfig::default(), 1);
    assert_eq!(c.replay(&[0], None, 0), Err(RecordError::Truncated));
    let key = RecordKey::GroupMetadata { group: "g".into() }.encode();
    assert_eq!(
        c.replay(&key, Some(&[0, 3, 0]), 0),
        Err(RecordError::Truncated)
    );
    // consumer-protocol records (key versions 3 to 8) are read; later ones are skipped
    assert_eq!(
        c.replay(&[0, 5, 0, 1, b'g'], Some(&[1, 2]), 0),
        Err(RecordError::Truncated)
    );
    assert_eq!(c.replay(&[0, 16, 0, 1, b'g'], Some(&[1, 2]), 0), Ok(()));
    assert_eq!(
        c.replay(&[0xff, 0xff], None, 0),
        Err(RecordError::UnsupportedKeyVersion(-1))
    );
    // tombstones of unknown groups are fine
    let okey = RecordKey::OffsetCommit {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
    }
    .encode();
    assert_eq!(c.replay(&okey, None, 0), Ok(()));
    assert_eq!(c.replay(&key, None, 0), Ok(()));
    assert!(c.group_ids().is_empty());
}

#[test]
fn every_held_request_is_answered_once() {
    // A busy scenario; H::apply asserts no request is answered twice, and at
    // the end no join is left unanswered once the group settles.
    let mut h = H::new();
    let mut joins = Vec::new();
    for _ in 0..3 {
        joins.push(h.join_new("g").0);
    }
    h.advance(1000);
    let rid = h.join("g", "");
    let late = h.join_resp(rid).member_id;
    joins.push(h.join("g", &late));
    for _ in 0..100 {
        h.advance(1000);
    }
    for j in &joins {
        assert!(h.has_response(*j), "join {j} unanswered");
    }
    // nobody synced or heartbeated: everybody is gone, the group is Empty
    // and idle
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    assert_eq!(h.c.next_deadline(), None);
    let out = h.c.tick(h.now + 1_000_000);
    assert_eq!(out, Output::default());
}

#[test]
fn tick_before_a_deadline_does_nothing() {
    let mut h = H::new();
    assert_eq!(h.c.next_deadline(), None);
    let (rid, _) = h.join_new("g");
    let deadline = h.c.next_deadline().expect("deadline");
    let out = h.c.tick(deadline - 1);
    assert_eq!(out, Output::default());
    h.now = deadline - 1;
    h.advance(1);
    assert!(h.has_response(rid));
}

// ---------------------------------------------------------------------------
// Randomized runs
// ---------------------------------------------------------------------------

/// One simulated client.
#[derive(Default, Clone)]
struct Client {
    member_id: String,
    instance: Option<String>,
    generation: i32,
    protocols: usize,
}

#[test]
fn random_runs_keep_invariants_and_replay() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut stable_compared = 0;
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut h = H::new();
        h.c = GroupCoordinator::new(
            GroupConfig {
                max_size: Some(6),
                ..GroupConfig::default()
            },
            seed,
        );
        let groups = ["g1", "g2"];
        let mut clients: Vec<(usize, Client)> = (0..8)
            .map(|i| {
                (
                    i % 2,
                    Client {
                        instance: (i % 3 == 0).then(|| format!("inst-{i}")),
                        ..Client::default()
                    },
                )
            })
            .collect();
        let protocol_sets = [
            vec!["range"],
            vec!["range", "roundrobin"],
            vec!["roundrobin", "range"],
        ];
        let mut held_joins: Vec<(RequestId, usize)> = Vec::new();
        let mut held_syncs: Vec<RequestId> = Vec::new();
        for step in 0..400 {
            let mut ci = rng.random_range(0..clients.len());
            let op = rng.random_range(0..10);
            if op == 3 && rng.random_bool(0.6) {
                // prefer the leader, so that groups do reach Stable
                let gi = clients[ci].0;
                let leader = h.c.leader(groups[gi]);
                if let Some(i) = clients
                    .iter()
                    .position(|(g, c)| *g == gi && Some(&c.member_id) == leader.as_ref())
                {
                    ci = i;
                }
            }
            let (gi, client) = clients[ci].clone();
            let group = groups[gi];
            match op {
                0..=2 => {
                    let mut req = h.join_req(group, &client.member_id, client.instance.as_deref());
                    let ps = rng.random_range(0..protocol_sets.len());
                    let ps = if rng.random_bool(0.7) {
                        client.protocols
                    } else {
                        ps
                    };
                    clients[ci].1.protocols = ps;
                    req.protocols = protocol_sets[ps]
                        .iter()
                        .map(|p| ((*p).to_owned(), subscription(&["t1", "t2"])))
                        .collect();
                    req.api_version = if rng.random_bool(0.8) { 5 } else { 3 };
                    let rid = h.send_join(req);
                    held_joins.push((rid, ci));
                }
                3 => {
                    let leader = h.c.leader(group);
                    let assignments: Vec<(String, String)> = if leader.as_deref()
                        == Some(client.member_id.as_str())
                    {
                        clients
                            .iter()
                            .filter(|(g, _)| *g == gi)
                            .map(|(_, c)| (c.member_id.clone(), format!("a{}", c.member_id.len())))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let refs: Vec<(&str, &str)> = assignments
                        .iter()
                        .map(|(m, a)| (m.as_str(), a.as_str()))
                        .collect();
                    let mut req = SyncRequest {
                        request_id: h.id(),
                        group_id: group.to_owned(),
                        generation_id: client.generation,
                        member_id: client.member_id.clone(),
                        group_instance_id: client.instance.clone(),
                        protocol_type: None,
                        protocol_name: None,
                        assignments: Vec::new(),
                    };
                    req.assignments = refs
                        .iter()
                        .map(|(m, a)| ((*m).to_owned(), Bytes::copy_from_slice(a.as_bytes())))
                        .collect();
                    held_syncs.push(h.send_sync(req));
                }
                4 | 5 => {
                    h.heartbeat_with(
                        group,
                        client.generation,
                        &client.member_id,
                        client.instance.as_deref(),
                    );
                }
                6 => {
                    if rng.random_bool(0.3) {
                        h.leave(group, &[(&client.member_id, client.instance.as_deref())]);
                        clients[ci].1.member_id.clear();
                    }
                }
                7 => {
                    let gen = if rng.random_bool(0.2) {
                        -1
                    } else {
                        client.generation
                    };
                    let p = rng.random_range(0..3);
                    h.commit(
                        group,
                        gen,
                        &client.member_id,
                        &[("t1", p, rng.random_range(0..1000))],
                    );
                }
                8 => {
                    let out = h.c.expire_offsets(h.now, 60_000);
                    h.apply(out);
                }
                _ => {
                    let ms = rng.random_range(0..8000);
                    h.advance(ms);
                }
            }
            // learn member ids and generations from answered joins
            held_joins.retain(|(rid, ci)| match h.responses.remove(rid) {
                Some(Response::Join(r)) => {
                    let c = &mut clients[*ci].1;
                    if r.error == ErrorCode::None || r.error == ErrorCode::MemberIdRequired {
                        c.member_id = r.member_id.clone();
                        c.generation = r.generation_id;
                    } else if r.error == ErrorCode::UnknownMemberId
                        || r.error == ErrorCode::FencedInstanceId
                    {
                        c.member_id.clear();
                    }
                    false
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => true,
            });
            held_syncs.retain(|rid| h.responses.remove(rid).is_none());
            h.responses.retain(|_, r| {
                !matches!(
                    r,
                    Response::Heartbeat(_) | Response::Leave(_) | Response::OffsetCommit(_)
                )
            });
            h.c.check_invariants();
            if step % 50 == 49 {
                stable_compared += compare_with_replay(&h, seed);
            }
            for g in groups {
                if let Some(st) = h.c.group_state(g) {
                    *seen.entry(st.name()).or_insert(0usize) += 1;
                }
            }
        }
        stable_compared += compare_with_replay(&h, seed);
        // let everything time out: every held request gets its answer
        for _ in 0..200 {
            h.advance(5_000);
            h.c.check_invariants();
        }
        held_joins.retain(|(rid, _)| !h.responses.contains_key(rid));
        held_syncs.retain(|rid| !h.responses.contains_key(rid));
        assert!(held_joins.is_empty(), "seed {seed}: joins never answered");
        assert!(held_syncs.is_empty(), "seed {seed}: syncs never answered");
        assert_eq!(h.c.next_deadline(), None, "seed {seed}");
    }
    eprintln!("states seen: {seen:?}, stable groups compared after replay: {stable_compared}");
    for state in [
        "Empty",
        "PreparingRebalance",
        "CompletingRebalance",
        "Stable",
    ] {
        assert!(seen.get(state).copied().unwrap_or(0) > 0, "never {state}");
    }
}

/// Replays `h`'s records into a fresh coordinator: offsets always match, Stable
/// and Empty groups match fully. Returns how many Stable groups were compared.
fn compare_with_replay(h: &H, seed: u64) -> usize {
    let mut compared = 0;
    let mut fresh = GroupCoordinator::new(GroupConfig::default(), 0);
    for (k, v) in &h.records {
        fresh.replay(k, v.as_deref(), h.now).expect("replay");
    }
    fresh.check_invariants();
    for g in h.c.group_ids() {
        let fetch = |c: &GroupCoordinator| {
            c.fetch_offsets(&OffsetFetchRequest {
                group_id: g.clone(),
                topics: None,
                member: None,
            })
        };
        assert_eq!(fetch(&fresh), fetch(&h.c), "seed {seed} group {g}");
        let state = h.c.group_state(&g);
        if state == Some(GroupState::Stable)
            || (state == Some(GroupState::Empty) && fresh.group_state(&g).is_some())
        {
            assert_eq!(
                fresh.describe(std::slice::from_ref(&g)),
                h.c.describe(std::slice::from_ref(&g)),
                "seed {seed} group {g}"
            );
            assert_eq!(
                fresh.generation(&g),
                h.c.generation(&g),
                "seed {seed} group {g}"
            );
            assert_eq!(fresh.leader(&g), h.c.leader(&g), "seed {seed} group {g}");
            compared += usize::from(state == Some(GroupState::Stable));
        }
    }
    for g in fresh.group_ids() {
        assert!(
            h.c.group_state(&g).is_some(),
            "seed {seed}: replay invented {g}"
        );
    }
    compared
}

#[test]
fn oversized_fields_are_refused_not_persisted() {
    let mut h = H::new();
    let long = "x".repeat(40_000);
    let r = h.join(&long, "");
    assert_eq!(h.join_resp(r).error, ErrorCode::InvalidGroupId);
    let mut req = h.join_req("g", "", None);
    req.client_id = long.clone();
    let r = h.send_join(req);
    assert_eq!(h.join_resp(r).error, ErrorCode::InvalidRequest);
    let mut req = h.join_req("g", "", None);
    req.protocols = vec![(long.clone(), Bytes::new())];
    let r = h.send_join(req);
    assert_eq!(h.join_resp(r).error, ErrorCode::InconsistentGroupProtocol);
    assert_eq!(
        h.commit("s", -1, "", &[(long.as_str(), 0, 1), ("t", 0, 1)]),
        vec![ErrorCode::UnknownTopicOrPartition, ErrorCode::None]
    );
    // a long client id is cut in generated member ids
    let mut req = h.join_req("g", "", None);
    req.client_id = "c".repeat(5000);
    let r = h.send_join(req);
    let r = h.join_resp(r);
    assert_eq!(r.error, ErrorCode::MemberIdRequired);
    assert_eq!(r.member_id.len(), 1024 + 37);
    assert!(h.records.iter().all(|(k, _)| RecordKey::decode(k).is_ok()));
}

// ---------------------------------------------------------------------------
// Transactional offset commits
// ---------------------------------------------------------------------------

fn txn_commit(h: &mut H, pid: i64, group: &str, gen: i32, member: &str, offset: i64) -> Output {
    let req = TxnOffsetCommitRequest {
        request_id: h.id(),
        group_id: group.to_owned(),
        producer_id: pid,
        producer_epoch: 2,
        generation_id: gen,
        member_id: member.to_owned(),
        group_instance_id: None,
        topics: vec![(
            "t".to_owned(),
            vec![CommitPartition {
                partition: 0,
                offset,
                leader_epoch: 1,
                metadata: None,
            }],
        )],
    };
    h.c.txn_commit_offsets(req, h.now)
}

#[test]
fn transactional_offsets_take_effect_on_commit_and_go_on_abort() {
    let mut h = H::new();
    let out = txn_commit(&mut h, 7, "g", -1, "", 10);
    assert_eq!(out.producer, Some((7, 2)));
    assert_eq!(out.records.len(), 1);
    let records = out.records.clone();
    h.apply(out);
    // Nothing is pending until the server has written the records and hands them back.
    assert!(!h.c.has_pending_txn());
    for (k, v) in &records {
        h.c.replay_txn(7, k, v.as_deref(), h.now).expect("written");
    }
    // Pending: not visible, but known as unstable.
    assert_eq!(h.fetch("g", "t", 0).0, -1);
    assert!(h.c.has_pending_offset("g", "t", 0));
    assert!(h.c.has_pending_txn());
    h.c.complete_txn(7, true, h.now);
    assert_eq!(h.fetch("g", "t", 0).0, 10);
    assert!(!h.c.has_pending_txn());
    // An aborted transaction's offsets never show.
    let out = txn_commit(&mut h, 8, "g", -1, "", 20);
    for (k, v) in &out.records {
        h.c.replay_txn(8, k, v.as_deref(), h.now).expect("written");
    }
    h.apply(out);
    assert!(h.c.has_pending_offset("g", "t", 0));
    h.c.complete_txn(8, false, h.now);
    assert_eq!(h.fetch("g", "t", 0).0, 10);
    // A plain commit after a transaction's offset (later in the log) wins when the
    // transaction commits.
    let out = txn_commit(&mut h, 9, "g", -1, "", 30);
    for (k, v) in &out.records {
        h.c.replay_txn(9, k, v.as_deref(), h.now).expect("written");
    }
    h.apply(out);
    assert_eq!(
        h.commit("g", -1, "", &[("t", 0, 25)]),
        vec![ErrorCode::None]
    );
    h.c.complete_txn(9, true, h.now);
    assert_eq!(h.fetch("g", "t", 0).0, 25);
    // A member id or generation that is not the group's is refused.
    let members = h.stable_group("s", 1);
    let out = txn_commit(&mut h, 9, "s", 5, &members[0], 1);
    assert!(matches!(
        out.responses[0].1,
        Response::TxnOffsetCommit(ref r) if r.topics[0].partitions[0].error == ErrorCode::IllegalGeneration
    ));
    let out = txn_commit(&mut h, 9, "s", 1, "nobody", 1);
    assert!(matches!(
        out.responses[0].1,
        Response::TxnOffsetCommit(ref r) if r.topics[0].partitions[0].error == ErrorCode::UnknownMemberId
    ));
    // Replayed: the records of a transactional batch wait for the marker.
    let mut fresh = GroupCoordinator::new(GroupConfig::default(), 1);
    fresh.begin_load();
    for (k, v) in &records {
        fresh.replay_txn(7, k, v.as_deref(), h.now).expect("replay");
    }
    fresh.end_load();
    assert!(fresh.has_pending_offset("g", "t", 0));
    fresh.complete_txn(7, true, h.now);
    assert!(fresh
        .fetch_offsets(&OffsetFetchRequest {
            group_id: "g".to_owned(),
            topics: None,
            member: None,
        })
        .topics
        .iter()
        .any(|(t, p)| t == "t" && p[0].offset == 10));
}
