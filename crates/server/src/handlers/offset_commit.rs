//! OffsetCommit (8): committed offsets are records in `__consumer_offsets`; the response
//! goes out once they are written.

use std::time::Duration;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use krust_group::{CommitPartition, Response};

use super::{opt, sb};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group_id = req.group_id.to_string();
    let topics: Vec<(String, Vec<CommitPartition>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions
                    .iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: opt(&p.committed_metadata),
                    })
                    .collect(),
            )
        })
        .collect();
    let commit = |request_id| krust_group::OffsetCommitRequest {
        request_id,
        group_id: group_id.clone(),
        generation_id: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        topics: topics.clone(),
        api_version: version,
    };
    let result = broker
        .group_command(&group_id, Duration::from_secs(30), |c, id, now| {
            c.commit_offsets(commit(id), now)
        })
        .await;
    let mut resp = OffsetCommitResponse::default();
    match result {
        Ok(Response::OffsetCommit(r)) => {
            resp.topics = r
                .topics
                .into_iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(sb(t.name)))
                        .with_partitions(
                            t.partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(p.error.code())
                                })
                                .collect(),
                        )
                })
                .collect();
        }
        other => {
            let code = match other {
                Err(code) => code.code(),
                _ => krust_protocol::ErrorCode::UnknownServerError.code(),
            };
            resp.topics = topics
                .iter()
                .map(|(name, parts)| {
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(sb(name.clone())))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
        }
    }
    resp
}
