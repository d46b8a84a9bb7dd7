//! SyncGroup (14): the leader hands out assignments; followers wait for theirs.

use std::time::Duration;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use krust_group::{Response, SyncRequest};

use super::{opt, sb};
use crate::broker::Broker;

/// Followers wait for the leader at most this long (the leader has the rebalance timeout).
const SYNC_WAIT: Duration = Duration::from_secs(300);

pub async fn handle(broker: &Broker, req: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
    let group_id = req.group_id.to_string();
    let sync = |request_id| SyncRequest {
        request_id,
        group_id: group_id.clone(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        protocol_type: opt(&req.protocol_type),
        protocol_name: opt(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let mut resp = SyncGroupResponse::default();
    match broker
        .group_command(&group_id, SYNC_WAIT, |c, id, now| c.sync(sync(id), now))
        .await
    {
        Ok(Response::Sync(s)) => {
            resp.error_code = s.error.code();
            resp.protocol_type = s.protocol_type.map(sb);
            resp.protocol_name = s.protocol_name.map(sb);
            resp.assignment = s.assignment;
        }
        Ok(_) => resp.error_code = krust_protocol::ErrorCode::UnknownServerError.code(),
        Err(code) => resp.error_code = code.code(),
    }
    resp
}
