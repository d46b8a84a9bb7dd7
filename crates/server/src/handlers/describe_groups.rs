//! DescribeGroups (15): state, protocol and members of each group.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::sb;
use crate::broker::Broker;

/// With no authorizer every group operation is allowed: READ 3, DELETE 6, DESCRIBE 8.
const GROUP_OPERATIONS_ALL: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(
    broker: &Broker,
    req: DescribeGroupsRequest,
    _version: i16,
) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    // A group named twice is described once: each repeat would copy all of its members.
    let mut seen = std::collections::HashSet::new();
    for g in req.groups.iter().filter(|g| seen.insert(g.as_str())) {
        let id = g.to_string();
        let mut out = DescribedGroup::default()
            .with_group_id(g.clone())
            .with_authorized_operations(if req.include_authorized_operations {
                GROUP_OPERATIONS_ALL
            } else {
                i32::MIN
            });
        match broker
            .group_read(&id, |c| c.describe(std::slice::from_ref(&id)))
            .await
        {
            Ok(mut described) if !described.is_empty() => {
                let d = described.remove(0);
                out.error_code = d.error.code();
                out.group_state = sb(d.state.name());
                out.protocol_type = sb(d.protocol_type);
                out.protocol_data = sb(d.protocol_data);
                out.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(sb(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(sb))
                            .with_client_id(sb(m.client_id))
                            .with_client_host(sb(m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment)
                    })
                    .collect();
            }
            Ok(_) => out.group_state = sb("Dead"),
            Err(code) => out.error_code = code.code(),
        }
        resp.groups.push(out);
    }
    resp
}
