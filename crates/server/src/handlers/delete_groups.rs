//! DeleteGroups (42): removes empty groups and their offsets (NON_EMPTY_GROUP otherwise).

use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use krust_group::Response;

use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for g in &req.groups_names {
        let id = g.to_string();
        let delete = |request_id| krust_group::DeleteGroupsRequest {
            request_id,
            group_ids: vec![id.clone()],
        };
        let code = match broker
            .group_command(&id, Duration::from_secs(30), |c, rid, now| {
                c.delete_groups(delete(rid), now)
            })
            .await
        {
            Ok(Response::DeleteGroups(r)) => r.results.first().map_or(0, |(_, e)| e.code()),
            Ok(_) => krust_protocol::ErrorCode::UnknownServerError.code(),
            Err(code) => code.code(),
        };
        resp.results.push(
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(code),
        );
    }
    resp
}
