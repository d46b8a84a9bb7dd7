//! Authorization: which requests a principal may make, by the ACLs in the metadata image
//! (`authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`).
//!
//! Each API is checked as Kafka's broker checks it, on the node the client reached,
//! before anything is done or forwarded: a request naming several topics (groups,
//! configs...) is split, the denied ones answered with Kafka's authorization error for
//! their kind (TOPIC_, GROUP_, TRANSACTIONAL_ID_ or CLUSTER_AUTHORIZATION_FAILED), the rest
//! served. A gate here either answers the whole request (`Err`) or lets it through,
//! possibly with a step that completes its response (`Ok(Some(..))`).
//!
//! Requests on a PLAINTEXT controller listener are not checked: that listener serves the
//! quorum, the brokers and requests other nodes forward after checking them, and knows no
//! principal. Kafka's usual setup with a PLAINTEXT controller listener (its principal,
//! `User:ANONYMOUS`, among the super users) amounts to the same. A controller listener with
//! TLS or SASL is checked like a broker listener, the requests between nodes needing
//! CLUSTER_ACTION (`dispatch`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use krust_metadata::acl::{
    self, op, resource, AclTable, AuthorizerSettings, Requester, CLUSTER_NAME,
};
use krust_protocol::{ErrorCode, Listener};

use crate::broker::Broker;
use crate::handlers::sb;

/// A step completing a response after the handler made it.
pub type Post<R> = Option<Box<dyn FnOnce(&mut R) + Send>>;

/// A gate's verdict: the whole request denied (its answer), or let through with a step
/// completing its response.
pub type Gate<R> = Result<Post<R>, Box<R>>;

fn post<R>(f: impl FnOnce(&mut R) + Send + 'static) -> Post<R> {
    Some(Box::new(f))
}

/// What a request's sender may do.
#[derive(Clone, Default)]
pub struct Authz {
    /// None: no authorizer, or a controller listener: everything is allowed.
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Authz(open)"),
            Some(i) => write!(f, "Authz({} from {})", i.principal, i.host),
        }
    }
}

struct Inner {
    acls: Arc<AclTable>,
    settings: Arc<AuthorizerSettings>,
    principal: Arc<str>,
    host: String,
}

/// Kafka's form of a client address in ACLs: IPv4 dotted, IPv6 as eight groups of
/// lower-case hex without leading zeros (Java's `getHostAddress`).
pub fn host_string(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

impl Authz {
    /// Everything allowed.
    pub fn open() -> Authz {
        Authz::default()
    }

    /// For a request from `principal` at `peer` on listener `name`, of kind `listener`.
    pub fn new(
        broker: &Broker,
        listener: Listener,
        name: &str,
        principal: &Arc<str>,
        peer: SocketAddr,
    ) -> Authz {
        // A PLAINTEXT controller listener knows no principal (everyone is ANONYMOUS): its
        // requests are not authorized, and only the cluster's nodes should reach it.
        let authorized = match listener {
            Listener::Broker => true,
            Listener::Controller => broker
                .config
                .listeners
                .iter()
                .find(|l| l.name == name)
                .is_some_and(|l| l.security_protocol != crate::config::SecurityProtocol::Plaintext),
        };
        match &broker.config.authorizer {
            Some(settings) if authorized => Authz {
                inner: Some(Arc::new(Inner {
                    acls: broker.image().acls.clone(),
                    settings: settings.clone(),
                    principal: principal.clone(),
                    host: host_string(peer.ip()),
                })),
            },
            _ => Authz::open(),
        }
    }

    /// Whether an authorizer is in force.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    fn check(&self, operation: i8, resource_type: i8, name: &str, log: bool) -> bool {
        let Some(i) = &self.inner else {
            return true;
        };
        let who = Requester {
            principal: &i.principal,
            host: &i.host,
        };
        let allowed = acl::authorize(&i.acls, &i.settings, who, operation, resource_type, name);
        if !allowed && log {
            tracing::info!(
                principal = %i.principal,
                host = %i.host,
                operation = acl::operation_name(operation),
                resource = %format_args!("{}:{name}", acl::resource_name(resource_type)),
                "authorization denied"
            );
        }
        allowed
    }

    /// Whether `operation` on resource `name` of `resource_type` is allowed (a denial is
    /// logged).
    pub fn allows(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        self.check(operation, resource_type, name, true)
    }

    /// As [`Authz::allows`], without logging a denial: for lists filtered silently.
    pub fn quietly(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        self.check(operation, resource_type, name, false)
    }

    pub fn topic(&self, operation: i8, name: &str) -> bool {
        self.allows(operation, resource::TOPIC, name)
    }

    pub fn group(&self, operation: i8, name: &str) -> bool {
        self.allows(operation, resource::GROUP, name)
    }

    pub fn txn(&self, operation: i8, id: &str) -> bool {
        self.allows(operation, resource::TRANSACTIONAL_ID, id)
    }

    pub fn cluster(&self, operation: i8) -> bool {
        self.allows(operation, resource::CLUSTER, CLUSTER_NAME)
    }

    /// Whether `operation` is allowed on some resource of `resource_type` (KIP-679).
    pub fn any(&self, operation: i8, resource_type: i8) -> bool {
        let Some(i) = &self.inner else {
            return true;
        };
        let who = Requester {
            principal: &i.principal,
            host: &i.host,
        };
        acl::authorize_any(&i.acls, &i.settings, who, operation, resource_type)
    }

    /// Kafka's authorized-operations bit field for a resource: bit `op` set for each
    /// operation allowed on it.
    pub fn operations(&self, resource_type: i8, name: &str) -> i32 {
        acl::supported_operations(resource_type)
            .iter()
            .filter(|&&o| self.quietly(o, resource_type, name))
            .fold(0, |bits, &o| bits | (1 << o))
    }
}

const TOPIC_DENIED: i16 = ErrorCode::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = ErrorCode::GroupAuthorizationFailed.code();
const TXN_DENIED: i16 = ErrorCode::TransactionalIdAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = ErrorCode::ClusterAuthorizationFailed.code();

/// The names that appear more than once.
fn repeated<'a>(names: impl Iterator<Item = &'a str>) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .filter(|n| !seen.insert(*n))
        .map(str::to_string)
        .collect()
}

/// Splits `items` by `allowed`, keeping the allowed ones in place and returning the others.
fn split<T>(items: &mut Vec<T>, mut allowed: impl FnMut(&T) -> bool) -> Vec<T> {
    let (keep, denied): (Vec<T>, Vec<T>) =
        std::mem::take(items).into_iter().partition(|t| allowed(t));
    *items = keep;
    denied
}

/// Whether a partition's record set starts with a transactional batch.
fn is_transactional(records: &[u8]) -> bool {
    krust_storage::batch::BatchHeader::from_slice(records)
        .is_ok_and(|h| h.magic() == 2 && h.is_transactional())
}

/// Produce: WRITE on the transactional id when a batch is transactional, then WRITE on
/// each topic.
/// Also returns whether anything was denied (an acks=0 request then closes the
/// connection, having no answer to carry the error).
pub fn produce(az: &Authz, req: &mut ProduceRequest) -> (Gate<ProduceResponse>, bool) {
    use produce_response::{PartitionProduceResponse, TopicProduceResponse};
    if !az.is_on() {
        return (Ok(None), false);
    }
    let answer =
        |topics: &[produce_request::TopicProduceData], code: i16| -> Vec<TopicProduceResponse> {
            topics
                .iter()
                .map(|t| {
                    TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_topic_id(t.topic_id)
                        .with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|p| {
                                    PartitionProduceResponse::default()
                                        .with_index(p.index)
                                        .with_error_code(code)
                                        .with_base_offset(-1)
                                        .with_log_append_time_ms(-1)
                                        .with_log_start_offset(-1)
                                })
                                .collect(),
                        )
                })
                .collect()
        };
    // A transactional batch needs WRITE on the transactional id, which must be given.
    let transactional = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref())
        .any(|r| is_transactional(r));
    if transactional {
        let allowed = req
            .transactional_id
            .as_ref()
            .is_some_and(|id| az.txn(op::WRITE, id));
        if !allowed {
            let resp =
                ProduceResponse::default().with_responses(answer(&req.topic_data, TXN_DENIED));
            return (Err(Box::new(resp)), true);
        }
    }
    let denied = split(&mut req.topic_data, |t| az.topic(op::WRITE, &t.name));
    if denied.is_empty() {
        return (Ok(None), false);
    }
    let extra = answer(&denied, TOPIC_DENIED);
    (
        Ok(post(move |r: &mut ProduceResponse| {
            r.responses.extend(extra)
        })),
        true,
    )
}

/// ListOffsets: DESCRIBE on each topic.
pub fn list_offsets(az: &Authz, req: &mut ListOffsetsRequest) -> Post<ListOffsetsResponse> {
    use list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    let denied = split(&mut req.topics, |t| az.topic(op::DESCRIBE, &t.name));
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut ListOffsetsResponse| {
        r.topics.extend(denied.into_iter().map(|t| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED)
                                .with_offset(-1)
                                .with_timestamp(-1)
                        })
                        .collect(),
                )
        }))
    })
}

/// OffsetForLeaderEpoch: CLUSTER_ACTION (followers), else DESCRIBE on each topic.
pub fn offset_for_leader_epoch(
    az: &Authz,
    req: &mut OffsetForLeaderEpochRequest,
) -> Post<OffsetForLeaderEpochResponse> {
    use offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    if !az.is_on() || az.quietly(op::CLUSTER_ACTION, resource::CLUSTER, CLUSTER_NAME) {
        return None;
    }
    let denied = split(&mut req.topics, |t| az.topic(op::DESCRIBE, &t.topic));
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut OffsetForLeaderEpochResponse| {
        r.topics.extend(denied.into_iter().map(|t| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(TOPIC_DENIED)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        })
                        .collect(),
                )
        }))
    })
}

/// OffsetCommit: READ on the group, then READ on each topic.
pub fn offset_commit(az: &Authz, req: &mut OffsetCommitRequest) -> Gate<OffsetCommitResponse> {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let answer = |topics: &[offset_commit_request::OffsetCommitRequestTopic], code: i16| {
        topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect::<Vec<_>>()
    };
    if !az.group(op::READ, &req.group_id) {
        return Err(Box::new(
            OffsetCommitResponse::default().with_topics(answer(&req.topics, GROUP_DENIED)),
        ));
    }
    let denied = split(&mut req.topics, |t| az.topic(op::READ, &t.name));
    if denied.is_empty() {
        return Ok(None);
    }
    let extra = answer(&denied, TOPIC_DENIED);
    Ok(post(move |r: &mut OffsetCommitResponse| {
        r.topics.extend(extra)
    }))
}

/// TxnOffsetCommit: WRITE on the transactional id, READ on the group, READ on each topic.
pub fn txn_offset_commit(
    az: &Authz,
    req: &mut TxnOffsetCommitRequest,
) -> Gate<TxnOffsetCommitResponse> {
    use txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let answer = |topics: &[txn_offset_commit_request::TxnOffsetCommitRequestTopic], code: i16| {
        topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect::<Vec<_>>()
    };
    if !az.txn(op::WRITE, &req.transactional_id) {
        return Err(Box::new(
            TxnOffsetCommitResponse::default().with_topics(answer(&req.topics, TXN_DENIED)),
        ));
    }
    if !az.group(op::READ, &req.group_id) {
        return Err(Box::new(
            TxnOffsetCommitResponse::default().with_topics(answer(&req.topics, GROUP_DENIED)),
        ));
    }
    let denied = split(&mut req.topics, |t| az.topic(op::READ, &t.name));
    if denied.is_empty() {
        return Ok(None);
    }
    let extra = answer(&denied, TOPIC_DENIED);
    Ok(post(move |r: &mut TxnOffsetCommitResponse| {
        r.topics.extend(extra)
    }))
}

/// OffsetFetch: DESCRIBE on each group; DESCRIBE on each topic. Topics named and denied
/// are answered TOPIC_AUTHORIZATION_FAILED; any other topic the sender may not describe is
/// left out of every answer (an "all offsets" answer, or a group named twice).
pub fn offset_fetch(
    az: &Authz,
    req: &mut OffsetFetchRequest,
    version: i16,
) -> Gate<OffsetFetchResponse> {
    use offset_fetch_response::*;
    if !az.is_on() {
        return Ok(None);
    }
    if version < 8 {
        if !az.group(op::DESCRIBE, &req.group_id) {
            return Err(Box::new(
                OffsetFetchResponse::default().with_error_code(GROUP_DENIED),
            ));
        }
        let denied = match req.topics.as_mut() {
            Some(topics) => split(topics, |t| az.topic(op::DESCRIBE, &t.name)),
            None => Vec::new(),
        };
        let az = az.clone();
        return Ok(post(move |r: &mut OffsetFetchResponse| {
            r.topics
                .retain(|t| az.quietly(op::DESCRIBE, resource::TOPIC, &t.name));
            if r.error_code != 0 {
                return;
            }
            r.topics.extend(denied.into_iter().map(|t| {
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|&p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    )
            }))
        }));
    }
    let denied_groups = split(&mut req.groups, |g| az.group(op::DESCRIBE, &g.group_id));
    // The denied topics each group named, by group (a group named twice: both lists).
    let mut denied_topics: std::collections::HashMap<GroupId, Vec<_>> = Default::default();
    for g in &mut req.groups {
        if let Some(topics) = g.topics.as_mut() {
            let d = split(topics, |t| az.topic(op::DESCRIBE, &t.name));
            if !d.is_empty() {
                denied_topics
                    .entry(g.group_id.clone())
                    .or_default()
                    .extend(d);
            }
        }
    }
    let az = az.clone();
    Ok(post(move |r: &mut OffsetFetchResponse| {
        for g in &mut r.groups {
            g.topics
                .retain(|t| az.quietly(op::DESCRIBE, resource::TOPIC, &t.name));
            if g.error_code != 0 {
                continue;
            }
            let Some(d) = denied_topics.remove(&g.group_id) else {
                continue;
            };
            g.topics.extend(d.into_iter().map(|t| {
                OffsetFetchResponseTopics::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|&p| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    )
            }));
        }
        r.groups.extend(denied_groups.into_iter().map(|g| {
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_error_code(GROUP_DENIED)
        }));
    }))
}

/// FindCoordinator: DESCRIBE on the group or transactional id.
pub fn find_coordinator(
    az: &Authz,
    req: &mut FindCoordinatorRequest,
    version: i16,
) -> Gate<FindCoordinatorResponse> {
    use find_coordinator_response::Coordinator;
    let (rt, code) = match req.key_type {
        1 => (resource::TRANSACTIONAL_ID, TXN_DENIED),
        _ => (resource::GROUP, GROUP_DENIED),
    };
    if version < 4 {
        if az.allows(op::DESCRIBE, rt, &req.key) {
            return Ok(None);
        }
        return Err(Box::new(
            FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_node_id(BrokerId(-1))
                .with_host(sb(""))
                .with_port(-1),
        ));
    }
    let denied = split(&mut req.coordinator_keys, |k| {
        az.allows(op::DESCRIBE, rt, k)
    });
    if denied.is_empty() {
        return Ok(None);
    }
    Ok(post(move |r: &mut FindCoordinatorResponse| {
        r.coordinators.extend(denied.into_iter().map(|k| {
            Coordinator::default()
                .with_key(k)
                .with_node_id(BrokerId(-1))
                .with_host(sb(""))
                .with_port(-1)
                .with_error_code(code)
        }))
    }))
}

/// JoinGroup, SyncGroup, Heartbeat, LeaveGroup: READ on the group.
pub fn group_read(az: &Authz, group: &str) -> bool {
    az.group(op::READ, group)
}

/// The JoinGroup answer to a member denied its group.
pub fn join_group_denied() -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(GROUP_DENIED)
        .with_generation_id(-1)
}

pub fn sync_group_denied() -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(GROUP_DENIED)
}

pub fn heartbeat_denied() -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(GROUP_DENIED)
}

pub fn leave_group_denied() -> LeaveGroupResponse {
    LeaveGroupResponse::default().with_error_code(GROUP_DENIED)
}

/// ConsumerGroupHeartbeat: READ on the group, DESCRIBE on every topic subscribed to by
/// name. A regular expression is matched against the topics that the member whose
/// heartbeat matches it may describe, for the whole group, as Kafka does; a member still
/// needs READ on a topic to fetch from it.
pub fn consumer_group_heartbeat(
    az: &Authz,
    req: &ConsumerGroupHeartbeatRequest,
) -> Option<ConsumerGroupHeartbeatResponse> {
    if !az.group(op::READ, &req.group_id) {
        return Some(ConsumerGroupHeartbeatResponse::default().with_error_code(GROUP_DENIED));
    }
    let denied: Vec<String> = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .filter(|t| !az.topic(op::DESCRIBE, t))
        .map(|t| t.to_string())
        .collect();
    (!denied.is_empty()).then(|| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(TOPIC_DENIED)
            .with_error_message(Some(sb(format!(
                "The following topics are not authorized: [{}]",
                denied.join(", ")
            ))))
    })
}

/// ConsumerGroupDescribe: DESCRIBE on each group; the groups' authorized operations.
pub fn consumer_group_describe(
    az: &Authz,
    req: &mut ConsumerGroupDescribeRequest,
) -> Post<ConsumerGroupDescribeResponse> {
    use consumer_group_describe_response::DescribedGroup;
    let denied = split(&mut req.group_ids, |g| az.group(op::DESCRIBE, g));
    let include = req.include_authorized_operations;
    if !az.is_on() && !include {
        return None;
    }
    let az = az.clone();
    post(move |r: &mut ConsumerGroupDescribeResponse| {
        for g in &mut r.groups {
            if g.error_code != 0 {
                continue;
            }
            // A group whose members name topics the sender may not describe is not shown.
            let hidden = g.members.iter().any(|m| {
                m.subscribed_topic_names
                    .iter()
                    .chain(
                        m.assignment
                            .topic_partitions
                            .iter()
                            .chain(&m.target_assignment.topic_partitions)
                            .map(|t| &t.topic_name),
                    )
                    .any(|t| !az.quietly(op::DESCRIBE, resource::TOPIC, t))
            });
            if hidden {
                *g = DescribedGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(TOPIC_DENIED)
                    .with_error_message(Some(sb(
                        "The group has described topic(s) that the client is not authorized to describe.",
                    )));
                continue;
            }
            if include {
                g.authorized_operations = az.operations(resource::GROUP, &g.group_id);
            }
        }
        r.groups.extend(denied.into_iter().map(|g| {
            DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED)
        }))
    })
}

/// DescribeGroups: DESCRIBE on each group; the groups' authorized operations.
pub fn describe_groups(
    az: &Authz,
    req: &mut DescribeGroupsRequest,
) -> Post<DescribeGroupsResponse> {
    use describe_groups_response::DescribedGroup;
    let denied = split(&mut req.groups, |g| az.group(op::DESCRIBE, g));
    let include = req.include_authorized_operations;
    if denied.is_empty() && !include {
        return None;
    }
    let az = az.clone();
    post(move |r: &mut DescribeGroupsResponse| {
        if include {
            for g in &mut r.groups {
                g.authorized_operations = if g.error_code == 0 {
                    az.operations(resource::GROUP, &g.group_id)
                } else {
                    i32::MIN
                };
            }
        }
        r.groups.extend(denied.into_iter().map(|g| {
            DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED)
                .with_authorized_operations(i32::MIN)
        }))
    })
}

/// ListGroups: every group with DESCRIBE on the cluster, else those the sender may
/// describe.
pub fn list_groups(az: &Authz) -> Post<ListGroupsResponse> {
    if !az.is_on() || az.quietly(op::DESCRIBE, resource::CLUSTER, CLUSTER_NAME) {
        return None;
    }
    let az = az.clone();
    post(move |r: &mut ListGroupsResponse| {
        r.groups
            .retain(|g| az.quietly(op::DESCRIBE, resource::GROUP, &g.group_id))
    })
}

/// DeleteGroups: DELETE on each group.
pub fn delete_groups(az: &Authz, req: &mut DeleteGroupsRequest) -> Post<DeleteGroupsResponse> {
    use delete_groups_response::DeletableGroupResult;
    let denied = split(&mut req.groups_names, |g| az.group(op::DELETE, g));
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut DeleteGroupsResponse| {
        r.results.extend(denied.into_iter().map(|g| {
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED)
        }))
    })
}

/// OffsetDelete: DELETE on the group, READ on each topic.
pub fn offset_delete(az: &Authz, req: &mut OffsetDeleteRequest) -> Gate<OffsetDeleteResponse> {
    use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
    if !az.group(op::DELETE, &req.group_id) {
        return Err(Box::new(
            OffsetDeleteResponse::default().with_error_code(GROUP_DENIED),
        ));
    }
    let denied = split(&mut req.topics, |t| az.topic(op::READ, &t.name));
    if denied.is_empty() {
        return Ok(None);
    }
    Ok(post(move |r: &mut OffsetDeleteResponse| {
        r.topics.extend(denied.into_iter().map(|t| {
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED)
                        })
                        .collect(),
                )
        }))
    }))
}

/// CreateTopics: CREATE on the cluster, else on each topic; a created topic's configs
/// only with DESCRIBE_CONFIGS on it.
pub fn create_topics(
    az: &Authz,
    req: &mut CreateTopicsRequest,
    version: i16,
) -> Post<CreateTopicsResponse> {
    use create_topics_response::CreatableTopicResult;
    if !az.is_on() {
        return None;
    }
    // A name given twice is the handler's to refuse (INVALID_REQUEST), as Kafka refuses
    // duplicates before it authorizes.
    let twice = repeated(req.topics.iter().map(|t| t.name.as_str()));
    let denied = if az.quietly(op::CREATE, resource::CLUSTER, CLUSTER_NAME) {
        Vec::new()
    } else {
        split(&mut req.topics, |t| {
            twice.contains(t.name.as_str()) || az.topic(op::CREATE, &t.name)
        })
    };
    let az = az.clone();
    post(move |r: &mut CreateTopicsResponse| {
        // Configs are answered from v5 on.
        for t in r
            .topics
            .iter_mut()
            .filter(|t| t.error_code == 0 && version >= 5)
        {
            if !az.quietly(op::DESCRIBE_CONFIGS, resource::TOPIC, &t.name) {
                t.configs = Some(Vec::new());
                t.num_partitions = -1;
                t.replication_factor = -1;
                t.topic_config_error_code = TOPIC_DENIED;
            }
        }
        r.topics.extend(denied.into_iter().map(|t| {
            CreatableTopicResult::default()
                .with_name(t.name)
                .with_error_code(TOPIC_DENIED)
                .with_error_message(Some(sb("Authorization failed.")))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        }))
    })
}

/// DeleteTopics: DELETE on the cluster, else DESCRIBE and DELETE on each topic. A topic
/// the sender may not describe is denied whether or not it exists; one it may describe
/// that this node does not know is answered UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID
/// by id) without being forwarded.
pub fn delete_topics(
    broker: &Broker,
    az: &Authz,
    req: &mut DeleteTopicsRequest,
) -> Post<DeleteTopicsResponse> {
    use delete_topics_response::DeletableTopicResult;
    if !az.is_on() || az.quietly(op::DELETE, resource::CLUSTER, CLUSTER_NAME) {
        return None;
    }
    let image = broker.image();
    let mut denied: Vec<DeletableTopicResult> = Vec::new();
    let mut check = |name: Option<&str>, id: uuid::Uuid| -> bool {
        let by_name = name.is_some();
        let name = match name {
            Some(n) => Some(n.to_string()),
            None => image.topic_by_id(&id).map(|t| t.name.clone()),
        };
        // What this node does not know is answered here, not forwarded: the controller
        // would act on its own image, which may know the topic this check did not see.
        let Some(name) = name else {
            denied.push(
                DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(ErrorCode::UnknownTopicId.code()),
            );
            return false;
        };
        let describe = az.topic(op::DESCRIBE, &name);
        let exists = image.topic(&name).is_some();
        if describe && exists && az.topic(op::DELETE, &name) {
            return true;
        }
        if describe && !exists {
            denied.push(
                DeletableTopicResult::default()
                    .with_name(Some(TopicName(sb(name))))
                    .with_topic_id(id)
                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
            );
            return false;
        }
        // A topic named is answered by its name; one asked for by id, by its name only
        // when the sender may describe it.
        let shown = (by_name || describe).then(|| TopicName(sb(name)));
        denied.push(
            DeletableTopicResult::default()
                .with_name(shown)
                .with_topic_id(id)
                .with_error_code(TOPIC_DENIED),
        );
        false
    };
    req.topic_names
        .retain(|n| check(Some(n), uuid::Uuid::nil()));
    req.topics
        .retain(|t| check(t.name.as_ref().map(|n| n.as_str()), t.topic_id));
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut DeleteTopicsResponse| r.responses.extend(denied))
}

/// CreatePartitions: ALTER on each topic.
pub fn create_partitions(
    az: &Authz,
    req: &mut CreatePartitionsRequest,
) -> Post<CreatePartitionsResponse> {
    use create_partitions_response::CreatePartitionsTopicResult;
    let twice = repeated(req.topics.iter().map(|t| t.name.as_str()));
    let denied = split(&mut req.topics, |t| {
        twice.contains(t.name.as_str()) || az.topic(op::ALTER, &t.name)
    });
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut CreatePartitionsResponse| {
        r.results.extend(denied.into_iter().map(|t| {
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(TOPIC_DENIED)
        }))
    })
}

/// DeleteRecords: DELETE on each topic.
pub fn delete_records(az: &Authz, req: &mut DeleteRecordsRequest) -> Post<DeleteRecordsResponse> {
    use delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
    let denied = split(&mut req.topics, |t| az.topic(op::DELETE, &t.name));
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut DeleteRecordsResponse| {
        r.topics.extend(denied.into_iter().map(|t| {
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1)
                                .with_error_code(TOPIC_DENIED)
                        })
                        .collect(),
                )
        }))
    })
}

/// Which resource a config request names, and the error for denying it: topics by
/// themselves, groups by themselves, brokers and broker loggers by the cluster.
fn config_check(az: &Authz, operation: i8, resource_type: i8, name: &str) -> Option<i16> {
    let (rt, res_name, code) = match resource_type {
        2 => (resource::TOPIC, name, TOPIC_DENIED),
        32 => (resource::GROUP, name, GROUP_DENIED),
        _ => (resource::CLUSTER, CLUSTER_NAME, CLUSTER_DENIED),
    };
    (!az.allows(operation, rt, res_name)).then_some(code)
}

/// Takes the config resources `operation` is denied on out of `resources`, answering each
/// with `answer(resource type, name, error code)`.
fn config_denials<T, R>(
    az: &Authz,
    operation: i8,
    resources: &mut Vec<T>,
    of: impl Fn(&T) -> (i8, &StrBytes),
    answer: impl Fn(i8, StrBytes, i16) -> R,
) -> Vec<R> {
    let mut denied = Vec::new();
    resources.retain(|r| {
        let (rt, name) = of(r);
        match config_check(az, operation, rt, name) {
            None => true,
            Some(code) => {
                denied.push(answer(rt, name.clone(), code));
                false
            }
        }
    });
    denied
}

/// DescribeConfigs: DESCRIBE_CONFIGS on each resource.
pub fn describe_configs(
    az: &Authz,
    req: &mut DescribeConfigsRequest,
) -> Post<DescribeConfigsResponse> {
    use describe_configs_response::DescribeConfigsResult;
    let denied = config_denials(
        az,
        op::DESCRIBE_CONFIGS,
        &mut req.resources,
        |r| (r.resource_type, &r.resource_name),
        |rt, name, code| {
            DescribeConfigsResult::default()
                .with_error_code(code)
                .with_error_message(Some(sb("Authorization failed.")))
                .with_resource_type(rt)
                .with_resource_name(name)
        },
    );
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut DescribeConfigsResponse| r.results.extend(denied))
}

/// AlterConfigs: ALTER_CONFIGS on each resource.
pub fn alter_configs(az: &Authz, req: &mut AlterConfigsRequest) -> Post<AlterConfigsResponse> {
    use alter_configs_response::AlterConfigsResourceResponse;
    let denied = config_denials(
        az,
        op::ALTER_CONFIGS,
        &mut req.resources,
        |r| (r.resource_type, &r.resource_name),
        |rt, name, code| {
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_resource_type(rt)
                .with_resource_name(name)
        },
    );
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut AlterConfigsResponse| r.responses.extend(denied))
}

/// IncrementalAlterConfigs: ALTER_CONFIGS on each resource.
pub fn incremental_alter_configs(
    az: &Authz,
    req: &mut IncrementalAlterConfigsRequest,
) -> Post<IncrementalAlterConfigsResponse> {
    use incremental_alter_configs_response::AlterConfigsResourceResponse;
    let denied = config_denials(
        az,
        op::ALTER_CONFIGS,
        &mut req.resources,
        |r| (r.resource_type, &r.resource_name),
        |rt, name, code| {
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_resource_type(rt)
                .with_resource_name(name)
        },
    );
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut IncrementalAlterConfigsResponse| r.responses.extend(denied))
}

/// InitProducerId: WRITE on the transactional id; an idempotent producer needs
/// IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).
pub fn init_producer_id(az: &Authz, req: &InitProducerIdRequest) -> Option<InitProducerIdResponse> {
    let denied = match &req.transactional_id {
        Some(id) => (!az.txn(op::WRITE, id)).then_some(TXN_DENIED),
        None => (!az.quietly(op::IDEMPOTENT_WRITE, resource::CLUSTER, CLUSTER_NAME)
            && !az.any(op::WRITE, resource::TOPIC))
        .then_some(CLUSTER_DENIED),
    }?;
    Some(
        InitProducerIdResponse::default()
            .with_error_code(denied)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
}

/// AddPartitionsToTxn: a client's (v0-3) needs WRITE on the transactional id and on each
/// topic, and is refused as a whole when any partition is (the others OPERATION_NOT_ATTEMPTED);
/// a broker's verification (v4) needs CLUSTER_ACTION.
pub fn add_partitions_to_txn(
    az: &Authz,
    req: &AddPartitionsToTxnRequest,
    version: i16,
) -> Option<AddPartitionsToTxnResponse> {
    use add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    };
    if !az.is_on() {
        return None;
    }
    if version >= 4 {
        return (!az.cluster(op::CLUSTER_ACTION))
            .then(|| AddPartitionsToTxnResponse::default().with_error_code(CLUSTER_DENIED));
    }
    let topics = &req.v3_and_below_topics;
    let codes: Vec<i16> = if !az.txn(op::WRITE, &req.v3_and_below_transactional_id) {
        vec![TXN_DENIED; topics.len()]
    } else {
        let codes: Vec<i16> = topics
            .iter()
            .map(|t| {
                if az.topic(op::WRITE, &t.name) {
                    ErrorCode::OperationNotAttempted.code()
                } else {
                    TOPIC_DENIED
                }
            })
            .collect();
        if !codes.contains(&TOPIC_DENIED) {
            return None;
        }
        codes
    };
    Some(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
            topics
                .iter()
                .zip(codes)
                .map(|(t, code)| {
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|&p| {
                                    AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(p)
                                        .with_partition_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    )
}

/// AddOffsetsToTxn: WRITE on the transactional id, READ on the group.
pub fn add_offsets_to_txn(
    az: &Authz,
    req: &AddOffsetsToTxnRequest,
) -> Option<AddOffsetsToTxnResponse> {
    let code = if !az.txn(op::WRITE, &req.transactional_id) {
        TXN_DENIED
    } else if !az.group(op::READ, &req.group_id) {
        GROUP_DENIED
    } else {
        return None;
    };
    Some(AddOffsetsToTxnResponse::default().with_error_code(code))
}

/// EndTxn: WRITE on the transactional id.
pub fn end_txn(az: &Authz, req: &EndTxnRequest) -> Option<EndTxnResponse> {
    (!az.txn(op::WRITE, &req.transactional_id)).then(|| {
        EndTxnResponse::default()
            .with_error_code(TXN_DENIED)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    })
}

/// WriteTxnMarkers (from a transaction coordinator): ALTER or CLUSTER_ACTION on the cluster.
pub fn write_txn_markers(
    az: &Authz,
    req: &WriteTxnMarkersRequest,
) -> Option<WriteTxnMarkersResponse> {
    use write_txn_markers_response::*;
    if az.quietly(op::ALTER, resource::CLUSTER, CLUSTER_NAME) || az.cluster(op::CLUSTER_ACTION) {
        return None;
    }
    Some(
        WriteTxnMarkersResponse::default().with_markers(
            req.markers
                .iter()
                .map(|m| {
                    WritableTxnMarkerResult::default()
                        .with_producer_id(m.producer_id)
                        .with_topics(
                            m.topics
                                .iter()
                                .map(|t| {
                                    WritableTxnMarkerTopicResult::default()
                                        .with_name(t.name.clone())
                                        .with_partitions(
                                            t.partition_indexes
                                                .iter()
                                                .map(|&p| {
                                                    WritableTxnMarkerPartitionResult::default()
                                                        .with_partition_index(p)
                                                        .with_error_code(CLUSTER_DENIED)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    )
}

/// DescribeTransactions: DESCRIBE on each transactional id; topics the sender may not
/// describe are left out of the answers.
pub fn describe_transactions(
    az: &Authz,
    req: &mut DescribeTransactionsRequest,
) -> Post<DescribeTransactionsResponse> {
    use describe_transactions_response::TransactionState;
    if !az.is_on() {
        return None;
    }
    let denied = split(&mut req.transactional_ids, |id| az.txn(op::DESCRIBE, id));
    let az = az.clone();
    post(move |r: &mut DescribeTransactionsResponse| {
        for s in &mut r.transaction_states {
            s.topics
                .retain(|t| az.quietly(op::DESCRIBE, resource::TOPIC, &t.topic));
        }
        r.transaction_states.extend(denied.into_iter().map(|id| {
            TransactionState::default()
                .with_transactional_id(id)
                .with_error_code(TXN_DENIED)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1)
                .with_transaction_state(sb(""))
        }))
    })
}

/// ListTransactions: only the transactional ids the sender may describe.
pub fn list_transactions(az: &Authz) -> Post<ListTransactionsResponse> {
    if !az.is_on() {
        return None;
    }
    let az = az.clone();
    post(move |r: &mut ListTransactionsResponse| {
        r.transaction_states.retain(|s| {
            az.quietly(
                op::DESCRIBE,
                resource::TRANSACTIONAL_ID,
                &s.transactional_id,
            )
        })
    })
}

/// DescribeProducers: READ on each topic.
pub fn describe_producers(
    az: &Authz,
    req: &mut DescribeProducersRequest,
) -> Post<DescribeProducersResponse> {
    use describe_producers_response::{PartitionResponse, TopicResponse};
    let denied = split(&mut req.topics, |t| az.topic(op::READ, &t.name));
    if denied.is_empty() {
        return None;
    }
    post(move |r: &mut DescribeProducersResponse| {
        r.topics.extend(denied.into_iter().map(|t| {
            TopicResponse::default().with_name(t.name).with_partitions(
                t.partition_indexes
                    .iter()
                    .map(|&p| {
                        PartitionResponse::default()
                            .with_partition_index(p)
                            .with_error_code(TOPIC_DENIED)
                    })
                    .collect(),
            )
        }))
    })
}

/// DescribeLogDirs: DESCRIBE on the cluster (before v3, which has no error field, an
/// empty answer).
pub fn describe_log_dirs(az: &Authz, version: i16) -> Option<DescribeLogDirsResponse> {
    (!az.cluster(op::DESCRIBE)).then(|| {
        DescribeLogDirsResponse::default().with_error_code(if version >= 3 {
            CLUSTER_DENIED
        } else {
            0
        })
    })
}

/// ListPartitionReassignments: DESCRIBE on the cluster.
pub fn list_reassignments(az: &Authz) -> Option<ListPartitionReassignmentsResponse> {
    (!az.cluster(op::DESCRIBE)).then(|| {
        ListPartitionReassignmentsResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(sb("Authorization failed.")))
    })
}

/// AlterPartitionReassignments: ALTER on the cluster.
pub fn alter_reassignments(
    az: &Authz,
    req: &AlterPartitionReassignmentsRequest,
) -> Option<AlterPartitionReassignmentsResponse> {
    use alter_partition_reassignments_response::*;
    if az.cluster(op::ALTER) {
        return None;
    }
    Some(
        AlterPartitionReassignmentsResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(sb("Authorization failed.")))
            .with_responses(
                req.topics
                    .iter()
                    .map(|t| {
                        ReassignableTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        ReassignablePartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(CLUSTER_DENIED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
    )
}

/// ElectLeaders: ALTER on the cluster.
pub fn elect_leaders(
    az: &Authz,
    req: &ElectLeadersRequest,
    version: i16,
) -> Option<ElectLeadersResponse> {
    use elect_leaders_response::{PartitionResult, ReplicaElectionResult};
    if az.cluster(op::ALTER) {
        return None;
    }
    Some(
        ElectLeadersResponse::default()
            // The top-level error exists from v1 on.
            .with_error_code(if version >= 1 { CLUSTER_DENIED } else { 0 })
            .with_replica_election_results(
                req.topic_partitions
                    .iter()
                    .flatten()
                    .map(|t| {
                        ReplicaElectionResult::default()
                            .with_topic(t.topic.clone())
                            .with_partition_result(
                                t.partitions
                                    .iter()
                                    .map(|&p| {
                                        PartitionResult::default()
                                            .with_partition_id(p)
                                            .with_error_code(CLUSTER_DENIED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
    )
}

/// DescribeQuorum: DESCRIBE on the cluster.
pub fn describe_quorum(az: &Authz) -> Option<DescribeQuorumResponse> {
    (!az.cluster(op::DESCRIBE))
        .then(|| DescribeQuorumResponse::default().with_error_code(CLUSTER_DENIED))
}

/// DescribeAcls: DESCRIBE on the cluster.
pub fn describe_acls(az: &Authz) -> Option<DescribeAclsResponse> {
    (!az.cluster(op::DESCRIBE)).then(|| {
        DescribeAclsResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(sb("Authorization failed.")))
    })
}

/// CreateAcls: ALTER on the cluster.
pub fn create_acls(az: &Authz, req: &CreateAclsRequest) -> Option<CreateAclsResponse> {
    use create_acls_response::AclCreationResult;
    (!az.cluster(op::ALTER)).then(|| {
        CreateAclsResponse::default().with_results(
            req.creations
                .iter()
                .map(|_| {
                    AclCreationResult::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_error_message(Some(sb("Authorization failed.")))
                })
                .collect(),
        )
    })
}

/// DeleteAcls: ALTER on the cluster.
pub fn delete_acls(az: &Authz, req: &DeleteAclsRequest) -> Option<DeleteAclsResponse> {
    use delete_acls_response::DeleteAclsFilterResult;
    (!az.cluster(op::ALTER)).then(|| {
        DeleteAclsResponse::default().with_filter_results(
            req.filters
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_error_message(Some(sb("Authorization failed.")))
                })
                .collect(),
        )
    })
}

/// DescribeClientQuotas: DESCRIBE_CONFIGS on the cluster.
pub fn describe_client_quotas(az: &Authz) -> Option<DescribeClientQuotasResponse> {
    (!az.cluster(op::DESCRIBE_CONFIGS)).then(|| {
        DescribeClientQuotasResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(sb("Authorization failed.")))
            .with_entries(None)
    })
}

/// AlterClientQuotas: ALTER_CONFIGS on the cluster.
pub fn alter_client_quotas(
    az: &Authz,
    req: &AlterClientQuotasRequest,
) -> Option<AlterClientQuotasResponse> {
    use alter_client_quotas_response::{EntityData, EntryData};
    (!az.cluster(op::ALTER_CONFIGS)).then(|| {
        AlterClientQuotasResponse::default().with_entries(
            req.entries
                .iter()
                .map(|e| {
                    EntryData::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_error_message(Some(sb("Authorization failed.")))
                        .with_entity(
                            e.entity
                                .iter()
                                .map(|d| {
                                    EntityData::default()
                                        .with_entity_type(d.entity_type.clone())
                                        .with_entity_name(d.entity_name.clone())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    })
}

/// DescribeUserScramCredentials: DESCRIBE on the cluster.
pub fn describe_scram(
    az: &Authz,
    req: &DescribeUserScramCredentialsRequest,
) -> Option<DescribeUserScramCredentialsResponse> {
    use describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
    (!az.cluster(op::DESCRIBE)).then(|| {
        DescribeUserScramCredentialsResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(sb("Authorization failed.")))
            .with_results(
                req.users
                    .iter()
                    .flatten()
                    .map(|u| {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(u.name.clone())
                            .with_error_code(CLUSTER_DENIED)
                    })
                    .collect(),
            )
    })
}

/// AlterUserScramCredentials: ALTER on the cluster.
pub fn alter_scram(
    az: &Authz,
    req: &AlterUserScramCredentialsRequest,
) -> Option<AlterUserScramCredentialsResponse> {
    use alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    if az.cluster(op::ALTER) {
        return None;
    }
    let mut users: Vec<&str> = req
        .deletions
        .iter()
        .map(|d| d.name.as_str())
        .chain(req.upsertions.iter().map(|u| u.name.as_str()))
        .collect();
    users.sort_unstable();
    users.dedup();
    Some(
        AlterUserScramCredentialsResponse::default().with_results(
            users
                .into_iter()
                .map(|u| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(sb(u))
                        .with_error_code(CLUSTER_DENIED)
                        .with_error_message(Some(sb("Authorization failed.")))
                })
                .collect(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_kafka_writes_them() {
        assert_eq!(
            host_string("10.1.2.3".parse().expect("address")),
            "10.1.2.3"
        );
        assert_eq!(
            host_string("::1".parse().expect("address")),
            "0:0:0:0:0:0:0:1"
        );
        assert_eq!(
            host_string("::ffff:127.0.0.1".parse().expect("address")),
            "127.0.0.1"
        );
        assert_eq!(
            host_string("fe80::a:1b".parse().expect("address")),
            "fe80:0:0:0:0:0:a:1b"
        );
    }

    use bytes::BytesMut;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use krust_protocol::versions::supported;

    /// An authorizer with no ACL and no super user: everything is denied.
    fn deny_all() -> Authz {
        Authz {
            inner: Some(Arc::new(Inner {
                acls: Arc::new(AclTable::default()),
                settings: Arc::new(AuthorizerSettings::default()),
                principal: Arc::from("User:nobody"),
                host: "10.0.0.1".into(),
            })),
        }
    }

    /// READ on group g, nothing else.
    fn allow_group_only() -> Authz {
        let mut acls = AclTable::default();
        acls.insert(
            uuid::Uuid::from_u128(1),
            acl::Acl {
                resource_type: resource::GROUP,
                resource_name: "g".into(),
                pattern_type: acl::pattern::LITERAL,
                principal: "User:nobody".into(),
                host: "*".into(),
                operation: op::READ,
                permission: acl::permission::ALLOW,
            },
        );
        Authz {
            inner: Some(Arc::new(Inner {
                acls: Arc::new(acls),
                settings: Arc::new(AuthorizerSettings::default()),
                principal: Arc::from("User:nobody"),
                host: "10.0.0.1".into(),
            })),
        }
    }

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    /// Encodes what `answer` gives at every version krust serves of `key`.
    fn encodes<R: Encodable>(key: ApiKey, answer: impl Fn(i16) -> Option<R>) {
        let range = supported(key, Listener::Broker).expect("served");
        for v in range.min..=range.max {
            if let Some(r) = answer(v) {
                r.encode(&mut BytesMut::new(), v)
                    .unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
            }
        }
    }

    /// The response a filtering gate completes, from a default one.
    fn completed<R: Default>(post: Post<R>) -> Option<R> {
        let mut r = R::default();
        post.expect("something denied")(&mut r);
        Some(r)
    }

    #[test]
    fn every_denial_encodes_at_every_version() {
        let az = deny_all();
        let t = || TopicName(s("t"));
        encodes(ApiKey::Produce, |_| {
            let mut req = ProduceRequest::default().with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(t())
                    .with_partition_data(vec![produce_request::PartitionProduceData::default()]),
            ]);
            let (gate, denied) = produce(&az, &mut req);
            assert!(denied && req.topic_data.is_empty());
            completed(gate.expect("filtered"))
        });
        encodes(ApiKey::Produce, |_| {
            let mut req = ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(s("x"))))
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default().with_name(t())
                ]);
            produce(&az, &mut req).0.err().map(|b| *b)
        });
        encodes(ApiKey::ListOffsets, |_| {
            let mut req = ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(t())
                    .with_partitions(vec![Default::default()]),
            ]);
            completed(list_offsets(&az, &mut req))
        });
        encodes(ApiKey::OffsetForLeaderEpoch, |_| {
            let mut req = OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(t())
                    .with_partitions(vec![Default::default()]),
            ]);
            completed(offset_for_leader_epoch(&az, &mut req))
        });
        let commit_topic = || {
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(t())
                .with_partitions(vec![Default::default()])
        };
        encodes(ApiKey::OffsetCommit, |_| {
            let mut req = OffsetCommitRequest::default().with_topics(vec![commit_topic()]);
            offset_commit(&az, &mut req).err().map(|b| *b)
        });
        encodes(ApiKey::TxnOffsetCommit, |_| {
            let mut req = TxnOffsetCommitRequest::default().with_topics(vec![
                txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(t())
                    .with_partitions(vec![Default::default()]),
            ]);
            txn_offset_commit(&az, &mut req).err().map(|b| *b)
        });
        encodes(ApiKey::OffsetFetch, |v| {
            let mut req = OffsetFetchRequest::default();
            if v >= 8 {
                req.groups = vec![offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("g")))];
                completed(offset_fetch(&az, &mut req, v).ok().flatten())
            } else {
                offset_fetch(&az, &mut req, v).err().map(|b| *b)
            }
        });
        encodes(ApiKey::FindCoordinator, |v| {
            let mut req = FindCoordinatorRequest::default()
                .with_key(s("g"))
                .with_coordinator_keys(if v >= 4 { vec![s("g")] } else { vec![] });
            match find_coordinator(&az, &mut req, v) {
                Err(r) => Some(*r),
                Ok(post) => completed(post),
            }
        });
        encodes(ApiKey::JoinGroup, |_| Some(join_group_denied()));
        encodes(ApiKey::SyncGroup, |_| Some(sync_group_denied()));
        encodes(ApiKey::Heartbeat, |_| Some(heartbeat_denied()));
        encodes(ApiKey::LeaveGroup, |_| Some(leave_group_denied()));
        encodes(ApiKey::ConsumerGroupHeartbeat, |_| {
            consumer_group_heartbeat(
                &az,
                &ConsumerGroupHeartbeatRequest::default().with_group_id(GroupId(s("g"))),
            )
        });
        encodes(ApiKey::ConsumerGroupHeartbeat, |_| {
            // READ on the group, but not DESCRIBE on the topic.
            let az = allow_group_only();
            let denied = consumer_group_heartbeat(
                &az,
                &ConsumerGroupHeartbeatRequest::default().with_group_id(GroupId(s("g"))),
            );
            assert!(
                denied.is_none(),
                "READ on the group is enough without topics"
            );
            consumer_group_heartbeat(
                &az,
                &ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_subscribed_topic_names(Some(vec![t()])),
            )
        });
        encodes(ApiKey::ConsumerGroupDescribe, |_| {
            let mut req = ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(s("g"))])
                .with_include_authorized_operations(true);
            completed(consumer_group_describe(&az, &mut req))
        });
        encodes(ApiKey::ConsumerGroupDescribe, |_| {
            // The group may be described, but a member names a topic that may not.
            let az = allow_group_only();
            let mut req =
                ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g"))]);
            let finish = consumer_group_describe(&az, &mut req).expect("checked");
            assert_eq!(req.group_ids.len(), 1);
            let mut r = ConsumerGroupDescribeResponse::default().with_groups(vec![
                consumer_group_describe_response::DescribedGroup::default()
                    .with_group_id(GroupId(s("g")))
                    .with_members(vec![consumer_group_describe_response::Member::default()
                        .with_subscribed_topic_names(vec![t()])]),
            ]);
            finish(&mut r);
            assert_eq!(r.groups[0].error_code, TOPIC_DENIED);
            assert!(r.groups[0].members.is_empty());
            Some(r)
        });
        encodes(ApiKey::DescribeGroups, |v| {
            let mut req = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("g"))])
                .with_include_authorized_operations(v >= 3);
            completed(describe_groups(&az, &mut req))
        });
        encodes(ApiKey::ListGroups, |_| {
            let mut r = ListGroupsResponse::default().with_groups(vec![
                list_groups_response::ListedGroup::default().with_group_id(GroupId(s("g"))),
            ]);
            list_groups(&az).expect("filtered")(&mut r);
            assert!(r.groups.is_empty());
            Some(r)
        });
        encodes(ApiKey::DeleteGroups, |_| {
            let mut req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
            completed(delete_groups(&az, &mut req))
        });
        encodes(ApiKey::OffsetDelete, |_| {
            let mut req = OffsetDeleteRequest::default();
            offset_delete(&az, &mut req).err().map(|b| *b)
        });
        encodes(ApiKey::CreateTopics, |v| {
            let mut req = CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default().with_name(t()),
            ]);
            let post = create_topics(&az, &mut req, v);
            // A topic created before the check of its configs.
            let mut r = CreateTopicsResponse::default().with_topics(vec![
                create_topics_response::CreatableTopicResult::default()
                    .with_name(TopicName(s("u")))
                    .with_error_message(None),
            ]);
            post.expect("filtered")(&mut r);
            Some(r)
        });
        encodes(ApiKey::CreatePartitions, |_| {
            let mut req = CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default().with_name(t()),
            ]);
            completed(create_partitions(&az, &mut req))
        });
        encodes(ApiKey::DeleteRecords, |_| {
            let mut req = DeleteRecordsRequest::default().with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(t())
                    .with_partitions(vec![Default::default()]),
            ]);
            completed(delete_records(&az, &mut req))
        });
        for rt in [2i8, 4, 8, 32] {
            encodes(ApiKey::DescribeConfigs, |_| {
                let mut req = DescribeConfigsRequest::default().with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(rt)
                        .with_resource_name(s("1")),
                ]);
                completed(describe_configs(&az, &mut req))
            });
            encodes(ApiKey::AlterConfigs, |_| {
                let mut req = AlterConfigsRequest::default()
                    .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(rt)]);
                completed(alter_configs(&az, &mut req))
            });
            encodes(ApiKey::IncrementalAlterConfigs, |_| {
                let mut req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(rt),
                ]);
                completed(incremental_alter_configs(&az, &mut req))
            });
        }
        encodes(ApiKey::InitProducerId, |_| {
            init_producer_id(
                &az,
                &InitProducerIdRequest::default().with_transactional_id(None),
            )
        });
        encodes(ApiKey::InitProducerId, |_| {
            init_producer_id(
                &az,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s("x")))),
            )
        });
        encodes(ApiKey::AddPartitionsToTxn, |v| {
            let req = AddPartitionsToTxnRequest::default().with_v3_and_below_topics(if v < 4 {
                vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(t())
                        .with_partitions(vec![0]),
                ]
            } else {
                vec![]
            });
            add_partitions_to_txn(&az, &req, v)
        });
        encodes(ApiKey::AddOffsetsToTxn, |_| {
            add_offsets_to_txn(&az, &AddOffsetsToTxnRequest::default())
        });
        encodes(ApiKey::EndTxn, |_| end_txn(&az, &EndTxnRequest::default()));
        encodes(ApiKey::WriteTxnMarkers, |_| {
            write_txn_markers(
                &az,
                &WriteTxnMarkersRequest::default().with_markers(vec![
                    write_txn_markers_request::WritableTxnMarker::default().with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default()
                            .with_name(t())
                            .with_partition_indexes(vec![0]),
                    ]),
                ]),
            )
        });
        encodes(ApiKey::DescribeTransactions, |_| {
            let mut req = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("x"))]);
            completed(describe_transactions(&az, &mut req))
        });
        encodes(ApiKey::ListTransactions, |_| {
            completed(list_transactions(&az))
        });
        encodes(ApiKey::DescribeProducers, |_| {
            let mut req = DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(t())
                    .with_partition_indexes(vec![0]),
            ]);
            completed(describe_producers(&az, &mut req))
        });
        encodes(ApiKey::DescribeLogDirs, |v| describe_log_dirs(&az, v));
        encodes(ApiKey::ListPartitionReassignments, |_| {
            list_reassignments(&az)
        });
        encodes(ApiKey::AlterPartitionReassignments, |_| {
            alter_reassignments(
                &az,
                &AlterPartitionReassignmentsRequest::default().with_topics(vec![
                    alter_partition_reassignments_request::ReassignableTopic::default()
                        .with_name(t())
                        .with_partitions(vec![Default::default()]),
                ]),
            )
        });
        encodes(ApiKey::ElectLeaders, |v| {
            elect_leaders(
                &az,
                &ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(t())
                        .with_partitions(vec![0]),
                ])),
                v,
            )
        });
        encodes(ApiKey::DescribeQuorum, |_| describe_quorum(&az));
        encodes(ApiKey::DescribeAcls, |_| describe_acls(&az));
        encodes(ApiKey::DescribeClientQuotas, |_| {
            describe_client_quotas(&az)
        });
        encodes(ApiKey::AlterClientQuotas, |_| {
            alter_client_quotas(
                &az,
                &AlterClientQuotasRequest::default().with_entries(vec![Default::default()]),
            )
        });
        encodes(ApiKey::CreateAcls, |_| {
            create_acls(
                &az,
                &CreateAclsRequest::default().with_creations(vec![Default::default()]),
            )
        });
        encodes(ApiKey::DeleteAcls, |_| {
            delete_acls(
                &az,
                &DeleteAclsRequest::default().with_filters(vec![Default::default()]),
            )
        });
        encodes(ApiKey::DescribeUserScramCredentials, |_| {
            describe_scram(
                &az,
                &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                    describe_user_scram_credentials_request::UserName::default().with_name(s("u")),
                ])),
            )
        });
        encodes(ApiKey::AlterUserScramCredentials, |_| {
            alter_scram(
                &az,
                &AlterUserScramCredentialsRequest::default().with_deletions(vec![
                    alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                        .with_name(s("u")),
                ]),
            )
        });
    }

    #[test]
    fn transactional_batches_need_their_transactional_id() {
        // Alice may write to t, and nothing else.
        let mut acls = AclTable::default();
        acls.insert(
            uuid::Uuid::from_u128(1),
            acl::Acl {
                resource_type: resource::TOPIC,
                resource_name: "t".into(),
                pattern_type: acl::pattern::LITERAL,
                principal: "User:alice".into(),
                host: "*".into(),
                operation: op::WRITE,
                permission: acl::permission::ALLOW,
            },
        );
        let az = Authz {
            inner: Some(Arc::new(Inner {
                acls: Arc::new(acls),
                settings: Arc::new(AuthorizerSettings::default()),
                principal: Arc::from("User:alice"),
                host: "10.0.0.1".into(),
            })),
        };
        let batch = |transactional: bool| {
            let mut b = vec![0u8; 61];
            b[16] = 2;
            if transactional {
                b[22] = 0x10;
            }
            bytes::Bytes::from(b)
        };
        let request = |transactional: bool, id: Option<&str>| {
            ProduceRequest::default()
                .with_transactional_id(id.map(|i| TransactionalId(s(i))))
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_records(Some(batch(transactional))),
                    ])])
        };
        let (gate, denied) = produce(&az, &mut request(false, None));
        assert!(matches!(gate, Ok(None)) && !denied);
        for id in [None, Some("someone-elses")] {
            let (gate, denied) = produce(&az, &mut request(true, id));
            let resp = gate.err().expect("refused");
            assert!(denied);
            assert_eq!(
                resp.responses[0].partition_responses[0].error_code,
                TXN_DENIED
            );
        }
    }

    #[test]
    fn offsets_of_undescribable_topics_never_leave() {
        use offset_fetch_response::*;
        let az = deny_all();
        // Group g named twice (once for a topic, once for all), g2 once: the groups are
        // denied here, so build the answer as if they were not and check the topics.
        let mut req = OffsetFetchRequest::default();
        let post = offset_fetch(&az, &mut req, 9)
            .expect("filtered")
            .expect("post");
        let topic = |n: &str| OffsetFetchResponseTopics::default().with_name(TopicName(s(n)));
        let mut resp = OffsetFetchResponse::default().with_groups(vec![
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(vec![topic("a")]),
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(vec![topic("a"), topic("b")]),
        ]);
        post(&mut resp);
        assert!(resp.groups.iter().all(|g| g.topics.is_empty()));
    }

    #[test]
    fn duplicates_are_left_to_the_handler() {
        let az = deny_all();
        let topic =
            |n: &str| create_topics_request::CreatableTopic::default().with_name(TopicName(s(n)));
        let mut req =
            CreateTopicsRequest::default().with_topics(vec![topic("t"), topic("u"), topic("t")]);
        let mut resp = CreateTopicsResponse::default();
        create_topics(&az, &mut req, 7).expect("post")(&mut resp);
        let kept: Vec<&str> = req.topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(kept, ["t", "t"]);
        assert_eq!(resp.topics.len(), 1);
        assert_eq!(resp.topics[0].name.as_str(), "u");
    }

    #[test]
    fn an_open_authz_allows_everything() {
        let az = Authz::open();
        assert!(!az.is_on());
        assert!(
            az.topic(op::WRITE, "t") && az.cluster(op::ALTER) && az.any(op::WRITE, resource::TOPIC)
        );
        assert_eq!(az.operations(resource::TOPIC, "t"), 3576);
        assert_eq!(az.operations(resource::CLUSTER, CLUSTER_NAME), 8096);
    }
}
