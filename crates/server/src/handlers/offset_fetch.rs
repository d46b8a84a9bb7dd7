//! OffsetFetch (9): committed offsets of one group (v1-7) or of several (v8+). With
//! RequireStable (v7+), offsets a transaction has committed but not completed are
//! UNSTABLE_OFFSET_COMMIT.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use krust_group::FetchedPartition;

use super::sb;
use crate::broker::Broker;

type Fetched = Result<Vec<(String, Vec<FetchedPartition>)>, i16>;

/// `require_stable` (v7+): a partition with offsets committed by a transaction not
/// completed yet answers UNSTABLE_OFFSET_COMMIT instead of its offset, and the client asks
/// again.
async fn fetch(
    broker: &Broker,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
    member: Option<(String, i32)>,
) -> Fetched {
    let req = krust_group::OffsetFetchRequest {
        group_id: group_id.to_string(),
        topics,
        member,
    };
    let read = |c: &krust_group::GroupCoordinator| {
        let mut r = c.fetch_offsets(&req);
        if require_stable && c.has_pending_txn() {
            for (topic, parts) in &mut r.topics {
                for p in parts.iter_mut() {
                    if c.has_pending_offset(group_id, topic, p.partition) {
                        p.error = krust_group::ErrorCode::UnstableOffsetCommit;
                        p.offset = -1;
                    }
                }
            }
        }
        r
    };
    match broker.group_read(group_id, read).await {
        Ok(r) if r.error.is_ok() => Ok(r.topics),
        Ok(r) => Err(r.error.code()),
        Err(code) => Err(code.code()),
    }
}

/// Each topic once and each of its partitions once, in the order first asked: a repeat
/// would copy the partition's committed metadata (up to 4 KiB) again.
fn distinct(topics: impl Iterator<Item = (String, Vec<i32>)>) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (name, partitions) in topics {
        let i = *at.entry(name.clone()).or_insert_with(|| {
            out.push((name, Vec::new()));
            out.len() - 1
        });
        for p in partitions {
            if seen.insert((i, p)) {
                out[i].1.push(p);
            }
        }
    }
    out
}

pub async fn handle(broker: &Broker, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        // A group asked for all its offsets twice is answered once: each repeat would copy
        // all of them.
        let mut all = std::collections::HashSet::new();
        for g in req
            .groups
            .iter()
            .filter(|g| g.topics.is_some() || all.insert(g.group_id.as_str()))
        {
            let topics = g.topics.as_ref().map(|ts| {
                distinct(
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone())),
                )
            });
            let mut out = OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(sb(g.group_id.to_string())));
            // v9: a consumer-protocol member names itself and its epoch, which are checked.
            let member = (g.member_id.is_some() || g.member_epoch >= 0).then(|| {
                (
                    g.member_id
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    g.member_epoch,
                )
            });
            match fetch(broker, &g.group_id, topics, req.require_stable, member).await {
                Ok(topics) => {
                    out.topics = topics
                        .into_iter()
                        .map(|(name, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(sb(name)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p.partition)
                                                .with_committed_offset(p.offset)
                                                .with_committed_leader_epoch(p.leader_epoch)
                                                .with_metadata(Some(sb(p.metadata)))
                                                .with_error_code(p.error.code())
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
                Err(code) => out.error_code = code,
            }
            resp.groups.push(out);
        }
        return resp;
    }
    let topics = req.topics.as_ref().map(|ts| {
        distinct(
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone())),
        )
    });
    match fetch(
        broker,
        &req.group_id,
        topics,
        version >= 7 && req.require_stable,
        None,
    )
    .await
    {
        Ok(topics) => {
            resp.topics = topics
                .into_iter()
                .map(|(name, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(sb(name)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(p.leader_epoch)
                                        .with_metadata(Some(sb(p.metadata)))
                                        .with_error_code(p.error.code())
                                })
                                .collect(),
                        )
                })
                .collect();
        }
        Err(code) => {
            if version >= 2 {
                resp.error_code = code;
            } else {
                // v1 has no top-level error: report it on every requested partition.
                resp.topics = req
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|&p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
        }
    }
    resp
}
