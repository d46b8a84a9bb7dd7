//! CreateTopics (19): validate, place replicas, commit TopicRecord + PartitionRecords +
//! ConfigRecords. `validate_only` runs every check and writes nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use krust_metadata::controller::NewTopic;

use super::{sb, validate_topic_config};
use crate::broker::Broker;
use crate::topic_config::describe_topic_configs;

pub async fn handle(
    broker: &Broker,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let topics: Vec<NewTopic> = req
        .topics
        .iter()
        .map(|t| NewTopic {
            name: t.name.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let validate_only = req.validate_only;
    let outcome = broker
        .create_topics(&topics, validate_only, validate_topic_config)
        .await;
    let mut resp = CreateTopicsResponse::default();
    match outcome {
        Ok(results) => {
            for (r, t) in results.into_iter().zip(&topics) {
                let mut out = CreatableTopicResult::default()
                    .with_name(TopicName(sb(r.name.clone())))
                    .with_error_code(r.result.error.code())
                    .with_error_message(r.result.message.clone().map(sb))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
                if r.result.is_ok() {
                    out.num_partitions = r.num_partitions;
                    out.replication_factor = r.replication_factor;
                    if !validate_only {
                        out.topic_id = r.topic_id;
                    }
                    if version >= 5 {
                        let overrides: BTreeMap<String, String> = t
                            .configs
                            .iter()
                            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                            .collect();
                        out.configs = Some(
                            describe_topic_configs(&overrides, &broker.config, false)
                                .into_iter()
                                .map(|c| {
                                    CreatableTopicConfigs::default()
                                        .with_name(sb(c.name))
                                        .with_value(c.value.map(sb))
                                        .with_read_only(c.read_only)
                                        .with_config_source(c.source)
                                        .with_is_sensitive(c.sensitive)
                                })
                                .collect(),
                        );
                    }
                }
                resp.topics.push(out);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "topic creation could not be committed");
            for t in &topics {
                resp.topics.push(
                    CreatableTopicResult::default()
                        .with_name(TopicName(sb(t.name.clone())))
                        .with_error_code(crate::broker::control_error_code(&e).code())
                        .with_error_message(Some(sb(e.to_string())))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                );
            }
        }
    }
    resp
}
