//! TxnOffsetCommit (28): offsets a transactional producer commits for a consumer group.
//! They are written to the group's `__consumer_offsets` partition as the producer's own
//! transactional batch and take effect when the transaction's commit marker reaches that
//! partition (an abort marker drops them).

use std::time::Duration;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use krust_group::{CommitPartition, Response};

use super::{opt, sb};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
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
                        leader_epoch: if version >= 2 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: opt(&p.committed_metadata),
                    })
                    .collect(),
            )
        })
        .collect();
    let (generation_id, member_id, group_instance_id) = if version >= 3 {
        (
            req.generation_id,
            req.member_id.to_string(),
            opt(&req.group_instance_id),
        )
    } else {
        (-1, String::new(), None)
    };
    let commit = |request_id| krust_group::TxnOffsetCommitRequest {
        request_id,
        group_id: group_id.clone(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        generation_id,
        member_id: member_id.clone(),
        group_instance_id: group_instance_id.clone(),
        topics: topics.clone(),
    };
    let result = broker
        .group_command(&group_id, Duration::from_secs(30), |c, id, now| {
            c.txn_commit_offsets(commit(id), now)
        })
        .await;
    let results: Vec<(String, Vec<(i32, i16)>)> = match result {
        Ok(Response::TxnOffsetCommit(r)) => r
            .topics
            .into_iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .into_iter()
                    .map(|p| (p.partition, p.error.code()))
                    .collect();
                (t.name, parts)
            })
            .collect(),
        other => {
            let code = match other {
                Err(code) => code.code(),
                _ => krust_protocol::ErrorCode::UnknownServerError.code(),
            };
            topics
                .iter()
                .map(|(name, parts)| {
                    (
                        name.clone(),
                        parts.iter().map(|p| (p.partition, code)).collect(),
                    )
                })
                .collect()
        }
    };
    let mut resp = TxnOffsetCommitResponse::default();
    resp.topics = results
        .into_iter()
        .map(|(name, parts)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(TopicName(sb(name)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(partition, code)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(partition)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    resp
}
