//! LeaveGroup (13): one member (v0-2) or a batch of members, static ones included (v3+).

use std::time::Duration;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use krust_group::{LeaveMember, LeaveRequest, Response};

use super::{opt, sb};
use crate::broker::Broker;

pub async fn handle(broker: &Broker, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = req.group_id.to_string();
    let members: Vec<LeaveMember> = if version >= 3 {
        req.members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: opt(&m.group_instance_id),
                reason: opt(&m.reason),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
            reason: None,
        }]
    };
    let leave = |request_id| LeaveRequest {
        request_id,
        group_id: group_id.clone(),
        members: members.clone(),
    };
    let mut resp = LeaveGroupResponse::default();
    match broker
        .group_command(&group_id, Duration::from_secs(30), |c, id, now| {
            c.leave(leave(id), now)
        })
        .await
    {
        Ok(Response::Leave(l)) => {
            resp.error_code = l.error.code();
            if version >= 3 {
                resp.members = l
                    .members
                    .into_iter()
                    .map(|m| {
                        MemberResponse::default()
                            .with_member_id(sb(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(sb))
                            .with_error_code(m.error.code())
                    })
                    .collect();
            } else if let Some(m) = l.members.first() {
                if !m.error.is_ok() {
                    resp.error_code = m.error.code();
                }
            }
        }
        Ok(_) => resp.error_code = krust_protocol::ErrorCode::UnknownServerError.code(),
        Err(code) => resp.error_code = code.code(),
    }
    resp
}
