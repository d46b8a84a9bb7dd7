//! CreatePartitions (37): grow a topic. Partitions can only be added, never removed.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use krust_metadata::controller::{self, Cluster, ItemResult};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let live = broker.live_brokers();
    let start = broker.placement_start();
    let validate_only = req.validate_only;
    let defaults = (
        broker.config.num_partitions,
        broker.config.default_replication_factor,
    );
    let mut seen = std::collections::HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_insert(0) += 1;
    }
    let outcome = broker
        .control(|image| {
            let mut all_records = Vec::new();
            let mut results = Vec::new();
            for t in &req.topics {
                let name = t.name.to_string();
                if seen.get(&name).copied().unwrap_or(0) > 1 {
                    results.push(ItemResult::err(
                        ErrorCode::InvalidRequest,
                        "Duplicate topic in request.",
                    ));
                    continue;
                }
                let cluster = Cluster {
                    image,
                    live_brokers: &live,
                    default_num_partitions: defaults.0,
                    default_replication_factor: defaults.1,
                };
                let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
                    a.iter()
                        .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                });
                match controller::create_partitions(
                    &cluster,
                    &name,
                    t.count,
                    assignments.as_deref(),
                    start,
                ) {
                    Ok(records) => {
                        all_records.extend(records);
                        results.push(ItemResult::ok());
                    }
                    Err(r) => results.push(r),
                }
            }
            // Kafka's bound holds for the request as a whole: over it, nothing is created.
            if all_records.len() as i64 > controller::MAX_PARTITIONS_PER_REQUEST {
                let refused = results
                    .iter()
                    .map(|_| {
                        ItemResult::err(ErrorCode::PolicyViolation, controller::EXCESSIVE_BATCH)
                    })
                    .collect();
                return (Vec::new(), refused);
            }
            (
                if validate_only {
                    Vec::new()
                } else {
                    all_records
                },
                results,
            )
        })
        .await;
    let mut resp = CreatePartitionsResponse::default();
    let results = match outcome {
        Ok(r) => r,
        Err(e) => req
            .topics
            .iter()
            .map(|_| ItemResult::err(crate::broker::control_error_code(&e), e.to_string()))
            .collect(),
    };
    for (t, r) in req.topics.iter().zip(results) {
        resp.results.push(
            CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(r.error.code())
                .with_error_message(r.message.map(sb)),
        );
    }
    resp
}
