//! Plain request and response structs; the server maps Kafka messages to and from them.

use bytes::Bytes;

use crate::error::ErrorCode;
use crate::state::GroupState;

/// A caller-chosen id attached to every mutating request, echoed with its response.
pub type RequestId = u64;

/// A record to append to the `__consumer_offsets` partition: key and value
/// (`None` = tombstone).
pub type Record = (Bytes, Option<Bytes>);

/// What a command produced.
///
/// Contract: the server appends `records` (in order) to the partition and only
/// once they are durable sends `responses`. A response may answer a request of
/// an earlier call (held JoinGroup and SyncGroup requests). State changes take
/// effect in memory immediately; if the append fails the server must rebuild
/// the coordinator from the log (a fresh coordinator plus
/// [`crate::GroupCoordinator::replay`]) and answer the requests with an error.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    /// Records to persist, in order, before sending `responses`.
    pub records: Vec<Record>,
    /// Responses to send, each to the request with that id.
    pub responses: Vec<(RequestId, Response)>,
    /// The producer (id, epoch) whose transactional batch `records` are to be written as
    /// (TxnOffsetCommit); `None` for ordinary records.
    pub producer: Option<(i64, i16)>,
}

impl Output {
    /// The response to `id` in this output, if any.
    pub fn response(&self, id: RequestId) -> Option<&Response> {
        self.responses
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, r)| r)
    }

    pub(crate) fn respond(&mut self, id: RequestId, response: Response) {
        self.responses.push((id, response));
    }
}

/// A response to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// To a [`JoinRequest`].
    Join(JoinResponse),
    /// To a [`SyncRequest`].
    Sync(SyncResponse),
    /// To a [`HeartbeatRequest`].
    Heartbeat(HeartbeatResponse),
    /// To a [`LeaveRequest`].
    Leave(LeaveResponse),
    /// To an [`OffsetCommitRequest`].
    OffsetCommit(OffsetCommitResponse),
    /// To a [`TxnOffsetCommitRequest`].
    TxnOffsetCommit(OffsetCommitResponse),
    /// To a [`DeleteGroupsRequest`].
    DeleteGroups(DeleteGroupsResponse),
    /// To an [`OffsetDeleteRequest`].
    OffsetDelete(OffsetDeleteResponse),
    /// To a ConsumerGroupHeartbeat.
    ConsumerHeartbeat(crate::consumer::ConsumerHeartbeatResponse),
}

/// JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinRequest {
    /// Caller-chosen id; the response may come in a later [`Output`].
    pub request_id: RequestId,
    /// The JoinGroup version: from 4 on an unknown member first gets MEMBER_ID_REQUIRED.
    pub api_version: i16,
    /// The group id.
    pub group_id: String,
    /// The member id, empty for a new member.
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The client id of the request header (prefix of generated member ids).
    pub client_id: String,
    /// The client's host, as Kafka shows it (e.g. "/127.0.0.1").
    pub client_host: String,
    /// The protocol type ("consumer").
    pub protocol_type: String,
    /// The supported protocols, preferred first: (name, metadata).
    pub protocols: Vec<(String, Bytes)>,
    /// The session timeout.
    pub session_timeout_ms: i32,
    /// The rebalance timeout (JoinGroup v0: pass the session timeout).
    pub rebalance_timeout_ms: i32,
    /// The reason given by the client (logged only).
    pub reason: Option<String>,
}

/// One member in the leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Its metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResponse {
    /// The error.
    pub error: ErrorCode,
    /// The generation id, -1 on error.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id ("" on error).
    pub leader: String,
    /// Always false (KIP-814 is not implemented).
    pub skip_assignment: bool,
    /// The member id of the requester (a generated one for new members).
    pub member_id: String,
    /// All members, for the leader only; empty otherwise.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub(crate) fn error(error: ErrorCode, member_id: &str) -> Self {
        JoinResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRequest {
    /// Caller-chosen id; the response may come in a later [`Output`].
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The generation id from the JoinGroup response.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The protocol type (v5+), checked if present.
    pub protocol_type: Option<String>,
    /// The protocol name (v5+), checked if present.
    pub protocol_name: Option<String>,
    /// The leader's assignments (member id, assignment); empty for followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// The SyncGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResponse {
    /// The error.
    pub error: ErrorCode,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The group's protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment (empty on error).
    pub assignment: Bytes,
}

impl SyncResponse {
    pub(crate) fn error(error: ErrorCode) -> Self {
        SyncResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// Caller-chosen id.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The generation id.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub group_instance_id: Option<String>,
}

/// The Heartbeat response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The error.
    pub error: ErrorCode,
}

/// One member leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMember {
    /// The member id ("" to name a static member by instance id only).
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The reason (logged only).
    pub reason: Option<String>,
}

/// LeaveGroup (v0-2 carry one member: pass a batch of one and use its error as
/// the top-level error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveRequest {
    /// Caller-chosen id.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The members leaving.
    pub members: Vec<LeaveMember>,
}

/// The result for one leaving member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMemberResult {
    /// The member id as requested.
    pub member_id: String,
    /// The instance id as requested.
    pub group_instance_id: Option<String>,
    /// The error for this member.
    pub error: ErrorCode,
}

/// The LeaveGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResponse {
    /// The top-level error.
    pub error: ErrorCode,
    /// Per-member results, in request order (empty if `error` is set).
    pub members: Vec<LeaveMemberResult>,
}

/// One partition's offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    /// The partition index.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The leader epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// The metadata; `None` is stored as "".
    pub metadata: Option<String>,
}

/// OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    /// Caller-chosen id.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The generation, -1 for a standalone (simple) commit.
    pub generation_id: i32,
    /// The member id ("" for a standalone commit).
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Topics and their partitions.
    pub topics: Vec<(String, Vec<CommitPartition>)>,
    /// The OffsetCommit version (consumer-protocol members need 9 or later).
    pub api_version: i16,
}

/// TxnOffsetCommit: offsets committed within a producer's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommitRequest {
    /// Caller-chosen id.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The transactional producer.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// The generation, -1 if not given.
    pub generation_id: i32,
    /// The member id, "" if not given.
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Topics and their partitions.
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// A partition and its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionResult {
    /// The partition index.
    pub partition: i32,
    /// The error.
    pub error: ErrorCode,
}

/// A topic with per-partition results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicResult {
    /// The topic name.
    pub name: String,
    /// Per-partition results, in request order.
    pub partitions: Vec<PartitionResult>,
}

/// The OffsetCommit response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitResponse {
    /// Per-topic results, in request order.
    pub topics: Vec<TopicResult>,
}

/// OffsetFetch for one group (v8+ batches: call once per group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    /// The group id.
    pub group_id: String,
    /// Topics and partitions, or `None` for all committed offsets of the group.
    pub topics: Option<Vec<(String, Vec<i32>)>>,
    /// A consumer-protocol member fetching (OffsetFetch v9): its id and epoch, checked.
    pub member: Option<(String, i32)>,
}

/// One fetched partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    /// The partition index.
    pub partition: i32,
    /// The committed offset, -1 if none.
    pub offset: i64,
    /// The committed leader epoch, -1 if none.
    pub leader_epoch: i32,
    /// The committed metadata, "" if none.
    pub metadata: String,
    /// The error.
    pub error: ErrorCode,
}

/// The OffsetFetch response for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    /// The group-level error.
    pub error: ErrorCode,
    /// Topics with their partitions, sorted by name and partition when all
    /// offsets are fetched, in request order otherwise.
    pub topics: Vec<(String, Vec<FetchedPartition>)>,
}

/// A member in a DescribeGroups response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    /// The member id.
    pub member_id: String,
    /// The `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// The metadata for the selected protocol (only while Stable, else empty).
    pub metadata: Bytes,
    /// The assignment (only while Stable, else empty).
    pub assignment: Bytes,
}

/// One group in a DescribeGroups response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    /// The error (`None` also for unknown groups, which are reported as Dead, as Kafka does).
    pub error: ErrorCode,
    /// The group id.
    pub group_id: String,
    /// The state.
    pub state: GroupState,
    /// The protocol type ("" if none).
    pub protocol_type: String,
    /// The selected protocol ("" if none).
    pub protocol_data: String,
    /// The members, sorted by member id.
    pub members: Vec<DescribedMember>,
}

/// One group in a ListGroups response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// The group id.
    pub group_id: String,
    /// The protocol type ("" for groups that only store offsets).
    pub protocol_type: String,
    /// The state.
    pub state: GroupState,
    /// "classic" or "consumer".
    pub group_type: &'static str,
}

/// DeleteGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupsRequest {
    /// Caller-chosen id.
    pub request_id: RequestId,
    /// The groups to delete.
    pub group_ids: Vec<String>,
}

/// The DeleteGroups response: (group id, error) in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupsResponse {
    /// Per-group results.
    pub results: Vec<(String, ErrorCode)>,
}

/// OffsetDelete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteRequest {
    /// Caller-chosen id.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// Topics and partitions whose offsets to delete.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// The OffsetDelete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    /// The top-level error (then `topics` is empty).
    pub error: ErrorCode,
    /// Per-partition results.
    pub topics: Vec<TopicResult>,
}
