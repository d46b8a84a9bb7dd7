//! OffsetDelete (47): removes committed offsets of partitions the group does not consume.

use std::time::Duration;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use krust_group::Response;

use super::sb;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let group_id = req.group_id.to_string();
    let topics: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let delete = |request_id| krust_group::OffsetDeleteRequest {
        request_id,
        group_id: group_id.clone(),
        topics: topics.clone(),
    };
    let mut resp = OffsetDeleteResponse::default();
    match broker
        .group_command(&group_id, Duration::from_secs(30), |c, id, now| {
            c.delete_offsets(delete(id), now)
        })
        .await
    {
        Ok(Response::OffsetDelete(r)) => {
            resp.error_code = r.error.code();
            resp.topics = r
                .topics
                .into_iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(sb(t.name)))
                        .with_partitions(
                            t.partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(p.error.code())
                                })
                                .collect(),
                        )
                })
                .collect();
        }
        Ok(_) => resp.error_code = krust_protocol::ErrorCode::UnknownServerError.code(),
        Err(code) => resp.error_code = code.code(),
    }
    resp
}
