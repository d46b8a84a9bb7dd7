//! Client-side membership in a classic consumer group, as Kafka's consumer does it: find the
//! coordinator (FindCoordinator), JoinGroup (rejoining with the id handed back on
//! MEMBER_ID_REQUIRED) with protocol type `consumer` and the `range` assignor, the leader
//! computes the assignment and sends it in SyncGroup, Heartbeat on `heartbeat.interval.ms`,
//! rejoin on REBALANCE_IN_PROGRESS, OffsetFetch / OffsetCommit with the generation and member
//! id, LeaveGroup on a clean exit (except for a static member, `group.instance.id`).
//!
//! The wire codecs of the consumer protocol (subscription and assignment), the range
//! assignment and the reaction to each error code are pure functions, unit-tested without a
//! network; [`GroupMember`] is the small I/O shell around them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use krust_client::{Client, ClientError};

/// Kafka error codes the membership logic reacts to.
pub mod codes {
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// A topic-partition.
pub type Tp = (String, i32);

/// What a member does after an error code from the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing went wrong.
    Proceed,
    /// The group is rebalancing: join again with the same member id.
    Rejoin,
    /// The member id or generation is no longer valid: join again as a new member.
    ResetAndRejoin,
    /// The coordinator moved or is loading: find it again and retry.
    Rediscover,
    /// Anything else ends the member.
    Fatal,
}

/// The reaction to `code` from Heartbeat, SyncGroup, OffsetCommit or JoinGroup.
pub fn react(code: i16) -> Reaction {
    match code {
        0 => Reaction::Proceed,
        codes::REBALANCE_IN_PROGRESS => Reaction::Rejoin,
        codes::ILLEGAL_GENERATION | codes::UNKNOWN_MEMBER_ID => Reaction::ResetAndRejoin,
        codes::COORDINATOR_LOAD_IN_PROGRESS
        | codes::COORDINATOR_NOT_AVAILABLE
        | codes::NOT_COORDINATOR => Reaction::Rediscover,
        _ => Reaction::Fatal,
    }
}

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not (or no longer) in the group: must JoinGroup + SyncGroup before fetching.
    Unjoined,
    /// Holds an assignment for `generation`.
    Stable,
    /// Must rejoin (keeping the member id) before consuming further.
    NeedsRejoin,
}

/// Applies `reaction` to the membership: the next state, and whether the member id and
/// generation are forgotten.
pub fn next_state(state: MemberState, reaction: Reaction) -> (MemberState, bool) {
    match reaction {
        Reaction::Proceed => (state, false),
        Reaction::Rejoin => (MemberState::NeedsRejoin, false),
        Reaction::ResetAndRejoin => (MemberState::Unjoined, true),
        Reaction::Rediscover => (state, false),
        Reaction::Fatal => (state, false),
    }
}

/// Consumer protocol subscription, version 0: int16 version, topics (int32 count of int16
/// strings), user data (int32 length, -1 = null).
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        put_string(&mut b, t);
    }
    b.put_i32(-1);
    b.freeze()
}

/// The topics of a subscription (any version; fields after the topics are ignored).
/// Malformed data gives the topics read so far.
pub fn decode_subscription(mut data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if data.remaining() < 6 {
        return out;
    }
    let _version = data.get_i16();
    let n = data.get_i32();
    for _ in 0..n.max(0) {
        match get_string(&mut data) {
            Some(t) => out.push(t),
            None => break,
        }
    }
    out
}

/// Consumer protocol assignment, version 0: int16 version, (topic, partitions) array, user
/// data null.
pub fn encode_assignment(assignment: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(assignment.len() as i32);
    for (t, parts) in assignment {
        put_string(&mut b, t);
        b.put_i32(parts.len() as i32);
        for p in parts {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

/// The partitions of an assignment (any version), read leniently: whatever is truncated or
/// malformed ends the list; an empty or absent assignment is empty.
pub fn decode_assignment(mut data: &[u8]) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    if data.remaining() < 6 {
        return out;
    }
    let _version = data.get_i16();
    let n = data.get_i32();
    for _ in 0..n.max(0) {
        let Some(topic) = get_string(&mut data) else {
            break;
        };
        if data.remaining() < 4 {
            break;
        }
        let count = data.get_i32();
        let entry = out.entry(topic).or_default();
        for _ in 0..count.max(0) {
            if data.remaining() < 4 {
                return out;
            }
            entry.push(data.get_i32());
        }
    }
    out
}

fn put_string(b: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    b.put_i16(len as i16);
    b.put_slice(&bytes[..len]);
}

fn get_string(data: &mut &[u8]) -> Option<String> {
    if data.remaining() < 2 {
        return None;
    }
    let len = data.get_i16();
    let len = usize::try_from(len).ok()?;
    if data.remaining() < len {
        return None;
    }
    let s = String::from_utf8_lossy(&data[..len]).into_owned();
    data.advance(len);
    Some(s)
}

/// Kafka's `RangeAssignor`: per topic, the subscribed members sorted by member id get
/// consecutive ranges, the first `partitions % members` one partition more.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &HashMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    let mut by_topic: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for t in topics {
            by_topic.entry(t).or_default().insert(member);
        }
    }
    for (topic, members) in by_topic {
        let Some(&n) = partitions.get(topic) else {
            continue;
        };
        let n = n.max(0) as usize;
        let c = members.len();
        let per = n / c;
        let extra = n % c;
        for (i, member) in members.into_iter().enumerate() {
            let start = i * per + i.min(extra);
            let len = per + usize::from(i < extra);
            if len == 0 {
                continue;
            }
            let parts: Vec<i32> = (start..start + len).map(|p| p as i32).collect();
            if let Some(a) = out.get_mut(member) {
                a.insert(topic.to_string(), parts);
            }
        }
    }
    out
}

/// Settings of a member (Kafka consumer config names in the comments).
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub group_id: String,
    /// `session.timeout.ms` (45000).
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms` (300000), sent as the rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// `heartbeat.interval.ms` (3000).
    pub heartbeat_interval: Duration,
    /// `group.instance.id` (static membership), if set.
    pub group_instance_id: Option<String>,
}

impl MemberConfig {
    /// Reads Kafka's consumer properties, with Kafka's defaults.
    pub fn from_props(group_id: &str, props: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let int = |key: &str, default: i64| -> anyhow::Result<i64> {
            match props.get(key) {
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0 && *n <= i64::from(i32::MAX))
                    .with_context(|| format!("Invalid value {v} for configuration {key}")),
                None => Ok(default),
            }
        };
        Ok(MemberConfig {
            group_id: group_id.to_string(),
            session_timeout_ms: int("session.timeout.ms", 45_000)? as i32,
            rebalance_timeout_ms: int("max.poll.interval.ms", 300_000)? as i32,
            heartbeat_interval: Duration::from_millis(int("heartbeat.interval.ms", 3_000)? as u64),
            group_instance_id: props
                .get("group.instance.id")
                .filter(|s| !s.is_empty())
                .cloned(),
        })
    }
}

/// `enable.auto.commit` (true) and `auto.commit.interval.ms` (5000) of Kafka's consumer.
pub fn auto_commit_settings(props: &BTreeMap<String, String>) -> anyhow::Result<(bool, Duration)> {
    let enabled = match props.get("enable.auto.commit").map(|v| v.trim()) {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => bail!(
            "Invalid value {v} for configuration enable.auto.commit: Expected value to be either true or false"
        ),
    };
    let interval = match props.get("auto.commit.interval.ms") {
        Some(v) => Duration::from_millis(v.trim().parse().with_context(|| {
            format!("Invalid value {v} for configuration auto.commit.interval.ms")
        })?),
        None => Duration::from_secs(5),
    };
    Ok((enabled, interval))
}

/// How an offset commit ended (errors that end membership are `Err`).
#[derive(Debug)]
pub enum CommitOutcome {
    Committed,
    /// The group is rebalancing or the generation is gone: rejoin, then consume again.
    MustRejoin,
}

/// One member of a classic consumer group.
pub struct GroupMember {
    config: MemberConfig,
    coordinator: Option<i32>,
    member_id: String,
    generation: i32,
    state: MemberState,
    last_heartbeat: Instant,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl GroupMember {
    pub fn new(config: MemberConfig) -> GroupMember {
        GroupMember {
            config,
            coordinator: None,
            member_id: String::new(),
            generation: -1,
            state: MemberState::Unjoined,
            last_heartbeat: Instant::now(),
        }
    }

    pub fn state(&self) -> MemberState {
        self.state
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    fn apply(&mut self, reaction: Reaction) {
        if reaction == Reaction::Rediscover {
            self.coordinator = None;
        }
        let (state, reset) = next_state(self.state, reaction);
        self.state = state;
        if reset {
            self.member_id.clear();
            self.generation = -1;
        }
    }

    /// The coordinator's node id, found with FindCoordinator (retried while it is loading).
    pub async fn coordinator(&mut self, client: &mut Client) -> anyhow::Result<i32> {
        if let Some(c) = self.coordinator {
            return Ok(c);
        }
        let node = find_coordinator(client, &self.config.group_id).await?;
        self.coordinator = Some(node);
        Ok(node)
    }

    /// Joins (or rejoins) the group subscribed to `topics` and returns this member's
    /// assignment. As leader it reads the partition counts of every member's topics from
    /// Metadata and computes the range assignment for the whole group.
    pub async fn join(
        &mut self,
        client: &mut Client,
        topics: &[String],
    ) -> anyhow::Result<BTreeMap<String, Vec<i32>>> {
        let deadline = Instant::now() + client.config().request_timeout * 4;
        loop {
            if Instant::now() > deadline {
                bail!(
                    "Timed out joining group {} (the coordinator kept answering with retriable errors)",
                    self.config.group_id
                );
            }
            let node = self.coordinator(client).await?;
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(sb(&self.config.group_id)))
                .with_session_timeout_ms(self.config.session_timeout_ms)
                .with_rebalance_timeout_ms(self.config.rebalance_timeout_ms)
                .with_member_id(sb(&self.member_id))
                .with_group_instance_id(self.config.group_instance_id.as_deref().map(sb))
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(sb("range"))
                    .with_metadata(encode_subscription(topics))]);
            let resp = match send_join(client, node, &req, self.config.rebalance_timeout_ms).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    self.coordinator = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if resp.error_code == codes::MEMBER_ID_REQUIRED {
                self.member_id = resp.member_id.to_string();
                continue;
            }
            match react(resp.error_code) {
                Reaction::Proceed => {}
                Reaction::Fatal => {
                    return Err(
                        anyhow::Error::new(ClientError::broker(resp.error_code, None))
                            .context(format!("JoinGroup for group {}", self.config.group_id)),
                    )
                }
                r => {
                    self.apply(r);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
            self.member_id = resp.member_id.to_string();
            self.generation = resp.generation_id;
            let assignments = if resp.leader == resp.member_id {
                let subscriptions: BTreeMap<String, Vec<String>> = resp
                    .members
                    .iter()
                    .map(|m| (m.member_id.to_string(), decode_subscription(&m.metadata)))
                    .collect();
                let all: BTreeSet<String> = subscriptions.values().flatten().cloned().collect();
                let all: Vec<String> = all.into_iter().collect();
                let counts = partition_counts(client, &all).await?;
                range_assign(&subscriptions, &counts)
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(&m))
                            .with_assignment(encode_assignment(&a))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(sb(&self.config.group_id)))
                .with_generation_id(self.generation)
                .with_member_id(sb(&self.member_id))
                .with_group_instance_id(self.config.group_instance_id.as_deref().map(sb))
                .with_assignments(assignments);
            let v = client
                .connection_to(node)
                .await?
                .version_for::<SyncGroupRequest>()?;
            // v5+ repeat the protocol type and name.
            let sync = if v >= 5 {
                sync.with_protocol_type(Some(sb("consumer")))
                    .with_protocol_name(Some(sb("range")))
            } else {
                sync
            };
            let resp = match client
                .connection_to(node)
                .await?
                .send_version(&sync, v)
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    self.coordinator = None;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match react(resp.error_code) {
                Reaction::Proceed => {
                    self.state = MemberState::Stable;
                    self.last_heartbeat = Instant::now();
                    return Ok(decode_assignment(&resp.assignment));
                }
                Reaction::Fatal => {
                    return Err(
                        anyhow::Error::new(ClientError::broker(resp.error_code, None))
                            .context(format!("SyncGroup for group {}", self.config.group_id)),
                    )
                }
                r => {
                    self.apply(r);
                    continue;
                }
            }
        }
    }

    /// Whether a heartbeat is due.
    pub fn heartbeat_due(&self) -> bool {
        self.state == MemberState::Stable
            && self.last_heartbeat.elapsed() >= self.config.heartbeat_interval
    }

    /// Sends a heartbeat; afterwards [`GroupMember::state`] tells whether to rejoin.
    pub async fn heartbeat(&mut self, client: &mut Client) -> anyhow::Result<()> {
        self.last_heartbeat = Instant::now();
        let node = self.coordinator(client).await?;
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.config.group_id)))
            .with_generation_id(self.generation)
            .with_member_id(sb(&self.member_id))
            .with_group_instance_id(self.config.group_instance_id.as_deref().map(sb));
        let resp = match client.send_to(node, &req).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                self.coordinator = None;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        match react(resp.error_code) {
            Reaction::Fatal => Err(
                anyhow::Error::new(ClientError::broker(resp.error_code, None))
                    .context(format!("Heartbeat for group {}", self.config.group_id)),
            ),
            r => {
                self.apply(r);
                Ok(())
            }
        }
    }

    /// The committed offsets of `partitions` (`None`: nothing committed).
    pub async fn committed(
        &mut self,
        client: &mut Client,
        partitions: &BTreeMap<String, Vec<i32>>,
    ) -> anyhow::Result<BTreeMap<Tp, Option<i64>>> {
        let deadline = Instant::now() + client.config().request_timeout;
        loop {
            let node = self.coordinator(client).await?;
            match fetch_offsets(client, node, &self.config.group_id, Some(partitions)).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    self.coordinator = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("OffsetFetch for group {}", self.config.group_id)))
                }
            }
        }
    }

    /// Commits `offsets` with this member's generation and id.
    pub async fn commit(
        &mut self,
        client: &mut Client,
        offsets: &BTreeMap<Tp, i64>,
    ) -> anyhow::Result<CommitOutcome> {
        if offsets.is_empty() {
            return Ok(CommitOutcome::Committed);
        }
        let deadline = Instant::now() + client.config().request_timeout;
        loop {
            let node = self.coordinator(client).await?;
            let r = commit_offsets(
                client,
                node,
                &self.config.group_id,
                self.generation,
                &self.member_id,
                self.config.group_instance_id.as_deref(),
                offsets,
            )
            .await;
            let code = match r {
                Ok(results) => results
                    .values()
                    .copied()
                    .find(|c| *c != 0)
                    .unwrap_or_default(),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    self.coordinator = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match react(code) {
                Reaction::Proceed => return Ok(CommitOutcome::Committed),
                Reaction::Rediscover if Instant::now() < deadline => {
                    self.apply(Reaction::Rediscover);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Reaction::Rejoin | Reaction::ResetAndRejoin => {
                    self.apply(react(code));
                    return Ok(CommitOutcome::MustRejoin);
                }
                _ => {
                    return Err(anyhow::Error::new(ClientError::broker(code, None))
                        .context(format!("OffsetCommit for group {}", self.config.group_id)))
                }
            }
        }
    }

    /// Leaves the group (best effort: errors are only logged). A static member
    /// (`group.instance.id`) does not, as Kafka's consumer does not on close: the group keeps
    /// its assignment until the session times out, so a restart with the same instance id
    /// rebalances nothing.
    pub async fn leave(&mut self, client: &mut Client) {
        if self.member_id.is_empty() || self.config.group_instance_id.is_some() {
            return;
        }
        let Ok(node) = self.coordinator(client).await else {
            return;
        };
        let v = match client.connection_to(node).await {
            Ok(c) => c.version_for::<LeaveGroupRequest>().unwrap_or(0),
            Err(_) => return,
        };
        // v0-2 name the member at the top level, v3+ in a batch of members.
        let req = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(sb(&self.config.group_id)))
                .with_members(vec![MemberIdentity::default()
                    .with_member_id(sb(&self.member_id))
                    .with_group_instance_id(
                        self.config.group_instance_id.as_deref().map(sb),
                    )])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(sb(&self.config.group_id)))
                .with_member_id(sb(&self.member_id))
        };
        match client.send_to(node, &req).await {
            Ok(r) if r.error_code != 0 => {
                tracing::debug!("LeaveGroup: error {}", r.error_code);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("LeaveGroup: {e}"),
        }
        self.member_id.clear();
        self.generation = -1;
        self.state = MemberState::Unjoined;
    }
}

/// JoinGroup waits for the whole group, up to the rebalance timeout: send it on a connection
/// whose timeout covers that (Kafka's consumer allows rebalance timeout + 5 s).
async fn send_join(
    client: &mut Client,
    node: i32,
    req: &JoinGroupRequest,
    rebalance_timeout_ms: i32,
) -> Result<kafka_protocol::messages::JoinGroupResponse, ClientError> {
    let addr = {
        let conn = client.connection_to(node).await?;
        conn.addr().to_string()
    };
    let timeout = Duration::from_millis(rebalance_timeout_ms.max(0) as u64 + 5_000)
        .max(client.config().request_timeout);
    let mut config = client.config().clone();
    config.request_timeout = timeout;
    let mut conn = krust_client::Connection::connect_config(&addr, &config).await?;
    let v = conn.version_for::<JoinGroupRequest>()?;
    conn.send_version(req, v.min(5)).await
}

/// The partition count of each of `topics` that exists.
async fn partition_counts(
    client: &mut Client,
    topics: &[String],
) -> anyhow::Result<HashMap<String, i32>> {
    let md = client.metadata(Some(topics)).await?;
    Ok(md
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| {
            t.name
                .as_ref()
                .map(|n| (n.to_string(), t.partitions.len() as i32))
        })
        .collect())
}

/// The group coordinator of `group`, retrying retriable answers until the request timeout.
pub async fn find_coordinator(client: &mut Client, group: &str) -> anyhow::Result<i32> {
    Ok(find_coordinator_info(client, group).await?.node_id)
}

/// The coordinator of `group` (node id, host, port), retrying retriable answers until the
/// request timeout. The node is added to the client's broker list if missing.
pub async fn find_coordinator_info(
    client: &mut Client,
    group: &str,
) -> anyhow::Result<krust_client::BrokerInfo> {
    find_coordinator_of(client, group, 0).await
}

/// The coordinator of `key` of `key_type` (0: a group, 1: a transactional id), retrying
/// retriable answers until the request timeout.
pub async fn find_coordinator_of(
    client: &mut Client,
    group: &str,
    key_type: i8,
) -> anyhow::Result<krust_client::BrokerInfo> {
    let deadline = Instant::now() + client.config().request_timeout;
    loop {
        let req = FindCoordinatorRequest::default()
            .with_key(sb(group))
            .with_key_type(key_type);
        let v = client
            .any_connection()
            .await?
            .version_for::<FindCoordinatorRequest>()?;
        let r = match client
            .any_connection()
            .await?
            .send_version(&req, v.min(3))
            .await
        {
            Ok(resp) => {
                ClientError::check(resp.error_code, resp.error_message.as_ref()).map(|()| {
                    krust_client::BrokerInfo {
                        node_id: resp.node_id.0,
                        host: resp.host.to_string(),
                        port: resp.port,
                    }
                })
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(info) => {
                // Make sure the node is known for connection_to.
                if !client.brokers().iter().any(|b| b.node_id == info.node_id) {
                    client.metadata(Some(&[])).await?;
                }
                return Ok(info);
            }
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                let what = if key_type == 1 {
                    "transactional id"
                } else {
                    "group"
                };
                return Err(
                    anyhow::Error::new(e).context(format!("FindCoordinator for {what} {group}"))
                );
            }
        }
    }
}

/// OffsetFetch (v7 layout at most) of `group`: the given partitions, or all (`None`).
pub async fn fetch_offsets(
    client: &mut Client,
    node: i32,
    group: &str,
    partitions: Option<&BTreeMap<String, Vec<i32>>>,
) -> Result<BTreeMap<Tp, Option<i64>>, ClientError> {
    Ok(fetch_offsets_with_epochs(client, node, group, partitions)
        .await?
        .into_iter()
        .map(|(tp, o)| (tp, o.map(|(o, _)| o)))
        .collect())
}

/// As [`fetch_offsets`], with each committed offset's leader epoch (-1 when unknown).
pub async fn fetch_offsets_with_epochs(
    client: &mut Client,
    node: i32,
    group: &str,
    partitions: Option<&BTreeMap<String, Vec<i32>>>,
) -> Result<BTreeMap<Tp, Option<(i64, i32)>>, ClientError> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(partitions.map(|ps| {
            ps.iter()
                .map(|(t, parts)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partition_indexes(parts.clone())
                })
                .collect()
        }));
    let conn = client.connection_to(node).await?;
    let v = conn.version_for::<OffsetFetchRequest>()?.min(7);
    let resp = conn.send_version(&req, v).await?;
    ClientError::check(resp.error_code, None)?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            ClientError::check(p.error_code, None)?;
            let o =
                (p.committed_offset >= 0).then_some((p.committed_offset, p.committed_leader_epoch));
            out.insert((t.name.to_string(), p.partition_index), o);
        }
    }
    Ok(out)
}

/// OffsetCommit (v7 layout at most); returns each partition's error code.
pub async fn commit_offsets(
    client: &mut Client,
    node: i32,
    group: &str,
    generation: i32,
    member_id: &str,
    group_instance_id: Option<&str>,
    offsets: &BTreeMap<Tp, i64>,
) -> Result<BTreeMap<Tp, i16>, ClientError> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        topics.entry(t.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(sb(""))),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member_id))
        .with_group_instance_id(group_instance_id.map(sb))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let conn = client.connection_to(node).await?;
    let v = conn.version_for::<OffsetCommitRequest>()?.min(7);
    let resp = conn.send_version(&req, v).await?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            out.insert((t.name.to_string(), p.partition_index), p.error_code);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_commit_settings_have_kafka_defaults_and_refuse_bad_values() {
        let props = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            auto_commit_settings(&props(&[])).expect("defaults"),
            (true, Duration::from_secs(5))
        );
        assert_eq!(
            auto_commit_settings(&props(&[
                ("enable.auto.commit", "FALSE"),
                ("auto.commit.interval.ms", "250")
            ]))
            .expect("set"),
            (false, Duration::from_millis(250))
        );
        let err = auto_commit_settings(&props(&[("enable.auto.commit", "yes")]))
            .expect_err("not a boolean");
        assert!(err
            .to_string()
            .starts_with("Invalid value yes for configuration enable.auto.commit"));
        assert!(auto_commit_settings(&props(&[("auto.commit.interval.ms", "-1")])).is_err());
    }

    #[test]
    fn subscription_round_trips_in_kafka_layout() {
        let b = encode_subscription(&["a".to_string(), "bc".to_string()]);
        assert_eq!(
            &b[..],
            &[0, 0, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(decode_subscription(&b), vec!["a", "bc"]);
        assert!(decode_subscription(&[0, 1]).is_empty());
    }

    #[test]
    fn assignment_round_trips_and_decodes_leniently() {
        let mut a = BTreeMap::new();
        a.insert("t".to_string(), vec![0, 2]);
        let b = encode_assignment(&a);
        assert_eq!(decode_assignment(&b), a);
        // Truncated in the middle of the partitions: what was read is kept.
        let cut = &b[..b.len() - 8];
        assert_eq!(decode_assignment(cut).get("t"), Some(&vec![0]));
        assert!(decode_assignment(&[]).is_empty());
        // A negative count is an empty list, not a panic.
        assert!(decode_assignment(&[0, 0, 0xff, 0xff, 0xff, 0xff]).is_empty());
    }

    #[test]
    fn range_assignor_matches_kafka() {
        let mut subs = BTreeMap::new();
        subs.insert("m2".to_string(), vec!["t".to_string(), "u".to_string()]);
        subs.insert("m1".to_string(), vec!["t".to_string()]);
        subs.insert("m3".to_string(), vec!["t".to_string()]);
        let counts: HashMap<String, i32> = [("t".to_string(), 4), ("u".to_string(), 2)]
            .into_iter()
            .collect();
        let a = range_assign(&subs, &counts);
        assert_eq!(a["m1"]["t"], vec![0, 1]);
        assert_eq!(a["m2"]["t"], vec![2]);
        assert_eq!(a["m3"]["t"], vec![3]);
        assert_eq!(a["m2"]["u"], vec![0, 1]);
        assert!(!a["m1"].contains_key("u"));
        // More members than partitions: the last ones get nothing.
        let mut subs = BTreeMap::new();
        for m in ["a", "b", "c"] {
            subs.insert(m.to_string(), vec!["u".to_string()]);
        }
        let a = range_assign(&subs, &counts);
        assert_eq!(a["a"]["u"], vec![0]);
        assert_eq!(a["b"]["u"], vec![1]);
        assert!(a["c"].is_empty());
    }

    #[test]
    fn errors_drive_the_membership_state() {
        assert_eq!(react(0), Reaction::Proceed);
        assert_eq!(react(codes::REBALANCE_IN_PROGRESS), Reaction::Rejoin);
        assert_eq!(react(codes::UNKNOWN_MEMBER_ID), Reaction::ResetAndRejoin);
        assert_eq!(react(codes::ILLEGAL_GENERATION), Reaction::ResetAndRejoin);
        assert_eq!(react(codes::NOT_COORDINATOR), Reaction::Rediscover);
        assert_eq!(react(30), Reaction::Fatal);
        assert_eq!(
            next_state(MemberState::Stable, Reaction::Rejoin),
            (MemberState::NeedsRejoin, false)
        );
        assert_eq!(
            next_state(MemberState::Stable, Reaction::ResetAndRejoin),
            (MemberState::Unjoined, true)
        );
        assert_eq!(
            next_state(MemberState::Stable, Reaction::Proceed),
            (MemberState::Stable, false)
        );
        let mut m =
            GroupMember::new(MemberConfig::from_props("g", &BTreeMap::new()).expect("defaults"));
        m.member_id = "x".into();
        m.generation = 3;
        m.state = MemberState::Stable;
        m.apply(Reaction::ResetAndRejoin);
        assert_eq!(
            (m.state(), m.member_id(), m.generation()),
            (MemberState::Unjoined, "", -1)
        );
    }

    #[test]
    fn config_reads_kafka_properties() {
        let mut p = BTreeMap::new();
        p.insert("heartbeat.interval.ms".to_string(), "500".to_string());
        let c = MemberConfig::from_props("g", &p).expect("config");
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.session_timeout_ms, 45_000);
        p.insert("session.timeout.ms".to_string(), "x".to_string());
        assert!(MemberConfig::from_props("g", &p).is_err());
    }
}
