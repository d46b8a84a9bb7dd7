//! JoinGroup (11): join or rejoin a classic group. The response is held until the join
//! phase completes (every known member rejoined, or the rebalance timeout passed).

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use krust_group::{JoinRequest, Response};

use super::consumer_group::ImageTopics;
use super::{opt, sb};
use crate::broker::Broker;
use crate::dispatch::RequestContext;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group_id = req.group_id.to_string();
    let rebalance_timeout_ms = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let wait = Duration::from_millis(rebalance_timeout_ms.max(0) as u64)
        + Duration::from_millis(broker.config.group_initial_rebalance_delay_ms.max(0) as u64);
    let join = |request_id| JoinRequest {
        request_id,
        api_version: version,
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        reason: opt(&req.reason),
    };
    let mut resp = JoinGroupResponse::default()
        .with_generation_id(-1)
        .with_member_id(req.member_id.clone());
    let authz = ctx.authz.clone();
    match broker
        .group_command(&group_id, wait, |c, id, now| {
            // A classic member of a consumer-protocol group is assigned from the topics as
            // they are now (read under the shard's lock, as heartbeats read them).
            let image = broker.image();
            let topics = ImageTopics {
                image: &image,
                authz: &authz,
            };
            c.join_with(join(id), &topics, now)
        })
        .await
    {
        Ok(Response::Join(j)) => {
            resp.error_code = j.error.code();
            resp.generation_id = j.generation_id;
            resp.protocol_type = j.protocol_type.map(sb);
            resp.protocol_name = Some(sb(j.protocol_name.unwrap_or_default()));
            if version >= 7 {
                resp.protocol_name = resp.protocol_name.filter(|n| !n.is_empty());
            }
            resp.leader = sb(j.leader);
            resp.skip_assignment = j.skip_assignment;
            resp.member_id = sb(j.member_id);
            resp.members = j
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(sb))
                        .with_metadata(m.metadata)
                })
                .collect();
        }
        Ok(_) => resp.error_code = krust_protocol::ErrorCode::UnknownServerError.code(),
        Err(code) => resp.error_code = code.code(),
    }
    resp
}
