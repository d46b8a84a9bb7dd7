//! DeleteTopics (20): by name (all versions) or by topic id (v6+). Commits a
//! RemoveTopicRecord per topic; the partition logs are then deleted from disk.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use krust_metadata::controller;
use krust_protocol::ErrorCode;
use uuid::Uuid;

use super::sb;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    // (name if given, id if given)
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    };
    if !broker.config.delete_topic_enable {
        for (name, id) in wanted {
            resp.responses.push(
                DeletableTopicResult::default()
                    .with_name(name.map(|n| TopicName(sb(n))))
                    .with_topic_id(id)
                    .with_error_code(ErrorCode::TopicDeletionDisabled.code()),
            );
        }
        return resp;
    }
    let outcome = broker
        .control(|image| {
            let mut names = Vec::new();
            let mut unknown_ids = Vec::new();
            for (i, (name, id)) in wanted.iter().enumerate() {
                match name {
                    Some(n) => names.push((i, n.clone())),
                    None => match image.topic_by_id(id) {
                        Some(t) => names.push((i, t.name.clone())),
                        None => unknown_ids.push(i),
                    },
                }
            }
            let just_names: Vec<String> = names.iter().map(|(_, n)| n.clone()).collect();
            let (records, results) = controller::delete_topics(image, &just_names);
            (records, (names, results, unknown_ids))
        })
        .await;
    match outcome {
        Ok((names, results, unknown_ids)) => {
            let mut out: Vec<Option<DeletableTopicResult>> = vec![None; wanted.len()];
            for ((i, _), (name, id, r)) in names.iter().zip(results) {
                out[*i] = Some(
                    DeletableTopicResult::default()
                        .with_name(Some(TopicName(sb(name))))
                        .with_topic_id(id)
                        .with_error_code(r.error.code())
                        .with_error_message(r.message.map(sb)),
                );
            }
            for i in unknown_ids {
                out[i] = Some(
                    DeletableTopicResult::default()
                        .with_topic_id(wanted[i].1)
                        .with_error_code(ErrorCode::UnknownTopicId.code()),
                );
            }
            resp.responses = out.into_iter().flatten().collect();
        }
        Err(e) => {
            tracing::error!(error = %e, "topic deletion could not be committed");
            for (name, id) in wanted {
                resp.responses.push(
                    DeletableTopicResult::default()
                        .with_name(name.map(|n| TopicName(sb(n))))
                        .with_topic_id(id)
                        .with_error_code(crate::broker::control_error_code(&e).code()),
                );
            }
        }
    }
    resp
}
