//! ListGroups (16): every group on this node, optionally filtered by state (v4+) and type
//! (v5+: classic or consumer).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use krust_group::GroupState;

use super::sb;
use crate::broker::Broker;

pub async fn handle(broker: &Broker, req: ListGroupsRequest, _version: i16) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    let wanted: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let states: Vec<GroupState> = wanted.iter().filter_map(|s| GroupState::parse(s)).collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    if !wanted.is_empty() && states.is_empty() {
        return resp;
    }
    for shard in broker.group_shards_all().await {
        match shard.read(|c| c.list(&states)).await {
            Ok(groups) => resp.groups.extend(
                groups
                    .into_iter()
                    .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
                    .map(|g| {
                        ListedGroup::default()
                            .with_group_id(GroupId(sb(g.group_id)))
                            .with_protocol_type(sb(g.protocol_type))
                            .with_group_state(sb(g.state.name()))
                            .with_group_type(sb(g.group_type))
                    }),
            ),
            Err(code) => resp.error_code = code.code(),
        }
    }
    resp.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    resp
}
