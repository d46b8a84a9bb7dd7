//! Heartbeat (12): keeps a member's session alive; tells it when a rebalance started.

use std::time::Duration;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use krust_group::Response;

use super::opt;
use crate::broker::Broker;

pub async fn handle(broker: &Broker, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    let group_id = req.group_id.to_string();
    let hb = |request_id| krust_group::HeartbeatRequest {
        request_id,
        group_id: group_id.clone(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
    };
    let mut resp = HeartbeatResponse::default();
    resp.error_code = match broker
        .group_command(&group_id, Duration::from_secs(30), |c, id, now| {
            c.heartbeat(hb(id), now)
        })
        .await
    {
        Ok(Response::Heartbeat(h)) => h.error.code(),
        Ok(_) => krust_protocol::ErrorCode::UnknownServerError.code(),
        Err(code) => code.code(),
    };
    resp
}
