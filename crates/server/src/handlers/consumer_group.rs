//! ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69): Kafka's consumer group
//! protocol (KIP-848), served by the group's coordinator (`krust_group::consumer`).

use kafka_protocol::messages::consumer_group_describe_response::{self, DescribedGroup, Member};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use krust_group::consumer::{self as cg, TopicId, TopicView};
use krust_metadata::image::MetadataImage;
use krust_metadata::topic_name::is_internal;
use krust_protocol::ErrorCode;
use std::time::Duration;
use uuid::Uuid;

use super::{opt, sb};
use crate::authz::Authz;
use crate::broker::Broker;
use crate::dispatch::RequestContext;

/// The cluster's topics as a heartbeat (or a classic member's JoinGroup) sees them: regular
/// expressions match the topics the sender may describe, internal topics left out.
pub(crate) struct ImageTopics<'a> {
    pub image: &'a MetadataImage,
    pub authz: &'a Authz,
}

impl TopicView for ImageTopics<'_> {
    fn version(&self) -> u64 {
        self.image.offset.max(0) as u64
    }

    fn topic(&self, name: &str) -> Option<(TopicId, i32)> {
        self.image
            .topic(name)
            .map(|t| (*t.id.as_bytes(), t.partitions.len() as i32))
    }

    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        for name in self.image.topics.keys() {
            // Without an authorizer every topic may be described.
            if !is_internal(name)
                && self.authz.quietly(
                    krust_metadata::acl::op::DESCRIBE,
                    krust_metadata::acl::resource::TOPIC,
                    name,
                )
            {
                f(name);
            }
        }
    }
}

fn error_response(code: ErrorCode, message: Option<String>) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(message.map(sb))
}

pub async fn heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    if !broker.config.consumer_group_protocol {
        return error_response(
            ErrorCode::UnsupportedVersion,
            Some("The new consumer group protocol is not enabled (group.coordinator.rebalance.protocols).".into()),
        );
    }
    let group_id = req.group_id.to_string();
    let mut request = cg::ConsumerHeartbeatRequest {
        api_version: version,
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: opt(&req.instance_id),
        rack_id: opt(&req.rack_id),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|v| v.iter().map(|t| t.to_string()).collect()),
        subscribed_topic_regex: opt(&req.subscribed_topic_regex),
        server_assignor: opt(&req.server_assignor),
        topic_partitions: req.topic_partitions.as_ref().map(|v| {
            v.iter()
                .map(|t| (*t.topic_id.as_bytes(), t.partitions.clone()))
                .collect()
        }),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: None,
        heartbeat_interval_ms: None,
    };
    let authz = ctx.authz.clone();
    let result = broker
        .group_command(&group_id, Duration::from_secs(30), |c, id, now| {
            // Read under the shard's lock: a heartbeat never sees older metadata than
            // the one before it.
            let image = broker.image();
            let (session, heartbeat) = crate::group_config::overrides(
                image
                    .configs
                    .get(&(krust_metadata::RESOURCE_GROUP, request.group_id.clone())),
            );
            request.session_timeout_ms = session;
            request.heartbeat_interval_ms = heartbeat;
            let topics = ImageTopics {
                image: &image,
                authz: &authz,
            };
            c.consumer_heartbeat(id, request, &topics, now)
        })
        .await;
    match result {
        Err(code) => error_response(code, None),
        Ok(other) => {
            let krust_group::Response::ConsumerHeartbeat(r) = other else {
                return error_response(ErrorCode::UnknownServerError, None);
            };
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(r.error.code())
                .with_error_message(r.message.map(sb))
                .with_member_id(r.member_id.map(sb))
                .with_member_epoch(r.member_epoch)
                .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
                .with_assignment(r.assignment.map(|a| {
                    Assignment::default().with_topic_partitions(
                        a.into_iter()
                            .map(|(id, partitions)| {
                                TopicPartitions::default()
                                    .with_topic_id(Uuid::from_bytes(id))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    )
                }))
        }
    }
}

pub async fn describe(
    broker: &Broker,
    req: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let mut resp = ConsumerGroupDescribeResponse::default();
    let mut seen = std::collections::HashSet::new();
    for g in req.group_ids.iter().filter(|g| seen.insert(g.as_str())) {
        let id = g.to_string();
        let mut out = DescribedGroup::default()
            .with_group_id(g.clone())
            .with_authorized_operations(i32::MIN);
        if !broker.config.consumer_group_protocol {
            out.error_code = ErrorCode::UnsupportedVersion.code();
            resp.groups.push(out);
            continue;
        }
        match broker
            .group_read(&id, |c| c.consumer_describe(std::slice::from_ref(&id)))
            .await
        {
            Ok(mut described) if !described.is_empty() => {
                let d = described.remove(0);
                out.error_code = d.error.code();
                out.error_message = d.message.map(sb);
                out.group_state = sb(d.state);
                out.group_epoch = d.group_epoch;
                out.assignment_epoch = d.assignment_epoch;
                out.assignor_name = sb(d.assignor);
                let names = &d.topic_names;
                let image = broker.image();
                let assignment = |a: &cg::Assignment| {
                    consumer_group_describe_response::Assignment::default().with_topic_partitions(
                        a.iter()
                            .map(|(topic, parts)| {
                                let uuid = Uuid::from_bytes(*topic);
                                let name = names
                                    .get(topic)
                                    .cloned()
                                    .or_else(|| image.topic_names_by_id.get(&uuid).cloned())
                                    .unwrap_or_default();
                                consumer_group_describe_response::TopicPartitions::default()
                                    .with_topic_id(uuid)
                                    .with_topic_name(TopicName(sb(name)))
                                    .with_partitions(parts.iter().copied().collect())
                            })
                            .collect(),
                    )
                };
                out.members = d
                    .members
                    .iter()
                    .map(|m| {
                        let mut member = Member::default()
                            .with_member_id(sb(m.member_id.clone()))
                            .with_instance_id(m.instance_id.clone().map(sb))
                            .with_rack_id(m.rack_id.clone().map(sb))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(sb(m.client_id.clone()))
                            .with_client_host(sb(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|t| TopicName(sb(t.clone())))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(m.subscribed_topic_regex.clone().map(sb))
                            .with_assignment(assignment(&m.assignment))
                            .with_target_assignment(assignment(&m.target_assignment));
                        if version >= 1 {
                            // 0: a classic member, 1: a member of the consumer protocol.
                            member.member_type = if m.classic { 0 } else { 1 };
                        }
                        member
                    })
                    .collect();
            }
            Ok(_) => out.error_code = krust_group::ErrorCode::GroupIdNotFound.code(),
            Err(code) => out.error_code = code.code(),
        }
        resp.groups.push(out);
    }
    resp
}
