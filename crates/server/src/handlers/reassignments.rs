//! AlterPartitionReassignments (45) and ListPartitionReassignments (46) (KIP-455): move a
//! partition's replicas to other brokers. The active controller adds the new replicas,
//! which catch up as followers and join the ISR; once all have, it drops the old ones (and
//! moves leadership if the leader was one of them).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use krust_metadata::controller;
use krust_protocol::ErrorCode;
use uuid::Uuid;

use super::sb;
use crate::broker::{control_error_code, Broker};

/// An error code and message decided before the controller sees the request.
type Refusal = (i16, String);

pub async fn alter(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let mut resp = AlterPartitionReassignmentsResponse::default();
    if version >= 1 {
        resp.allow_replication_factor_change = req.allow_replication_factor_change;
    }
    let image = broker.image();
    // Per request partition: its answer, filled by validation here or by the controller.
    let mut answers: Vec<(String, i32, Option<Refusal>)> = Vec::new();
    let mut requests: Vec<(Uuid, i32, Option<Vec<i32>>)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let name = t.name.to_string();
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current = image
                .topic(&name)
                .and_then(|ti| ti.partitions.get(&p.partition_index).map(|pi| (ti.id, pi)));
            let Some((id, pi)) = current else {
                answers.push((
                    name,
                    p.partition_index,
                    Some((
                        ErrorCode::UnknownTopicOrPartition.code(),
                        "This server does not host this topic-partition.".into(),
                    )),
                ));
                continue;
            };
            let original = pi.replicas.len() - pi.adding_replicas.len();
            if version >= 1 && !req.allow_replication_factor_change {
                if let Some(target) = &target {
                    if target.len() != original {
                        answers.push((
                            name,
                            p.partition_index,
                            Some((
                                ErrorCode::InvalidReplicationFactor.code(),
                                format!(
                                    "The replication factor is changed from {original} to {}",
                                    target.len()
                                ),
                            )),
                        ));
                        continue;
                    }
                }
            }
            requests.push((id, p.partition_index, target));
            answers.push((name, p.partition_index, None));
        }
    }
    let outcome = broker
        .control(|image| {
            controller::alter_partition_reassignments_with_unclean(image, &requests, |topic| {
                broker.unclean_allowed(image, topic)
            })
        })
        .await;
    let results = match outcome {
        Ok(r) => r,
        Err(e) => {
            resp.error_code = control_error_code(&e).code();
            resp.error_message = Some(sb(e.to_string()));
            return resp;
        }
    };
    // One result per request, in request order: the answers left open take them in turn.
    let mut results = results.into_iter();
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    for (name, index, answer) in answers {
        let (code, message) = match answer {
            Some((c, m)) => (c, Some(m)),
            None => match results.next() {
                Some(r) => (r.error.map_or(0, |e| e.code()), r.message),
                None => (ErrorCode::UnknownServerError.code(), None),
            },
        };
        if topics.last().is_none_or(|t| t.name.as_str() != name) {
            topics.push(ReassignableTopicResponse::default().with_name(TopicName(sb(name))));
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(code)
                    .with_error_message(message.map(sb)),
            );
        }
    }
    resp.responses = topics;
    resp
}

pub async fn list(
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let image = broker.image();
    let wanted: Option<Vec<(Uuid, i32)>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .filter_map(|t| Some((image.topic(t.name.as_str())?, t)))
            .flat_map(|(ti, t)| t.partition_indexes.iter().map(move |p| (ti.id, *p)))
            .collect()
    });
    let ongoing = controller::list_partition_reassignments(&image, wanted.as_deref());
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    for (topic_id, partition, replicas, adding, removing) in ongoing {
        let Some(t) = image.topic_by_id(&topic_id) else {
            continue;
        };
        by_topic.entry(t.name.clone()).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(partition)
                .with_replicas(ids(&replicas))
                .with_adding_replicas(ids(&adding))
                .with_removing_replicas(ids(&removing)),
        );
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(sb(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
