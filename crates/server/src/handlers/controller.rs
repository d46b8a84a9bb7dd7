//! The controller's side of the broker lifecycle (KIP-631) and producer id blocks:
//! BrokerRegistration (62), BrokerHeartbeat (63) and AllocateProducerIds (67). Only the
//! active controller answers them; other nodes forward them there (see `forward`), and a
//! node that is not the active controller answers NOT_CONTROLLER.

use kafka_protocol::messages::*;
use krust_metadata::controller::{self, BrokerRegistrationInput};
use krust_metadata::{BrokerEndpoint, BrokerFeature};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::{control_error_code, Broker};

pub async fn broker_registration(
    broker: &Broker,
    req: BrokerRegistrationRequest,
    _version: i16,
) -> BrokerRegistrationResponse {
    let input = BrokerRegistrationInput {
        broker_id: req.broker_id.0,
        cluster_id: req.cluster_id.to_string(),
        incarnation_id: req.incarnation_id,
        listeners: req
            .listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: l.security_protocol,
            })
            .collect(),
        features: req
            .features
            .iter()
            .map(|f| BrokerFeature {
                name: f.name.to_string(),
                min_supported_version: f.min_supported_version,
                max_supported_version: f.max_supported_version,
            })
            .collect(),
        rack: req.rack.as_ref().map(|r| r.to_string()),
        is_migrating_zk_broker: req.is_migrating_zk_broker,
        log_dirs: req.log_dirs.clone(),
    };
    let mut resp = BrokerRegistrationResponse::default().with_broker_epoch(-1);
    match broker.register_broker(&input).await {
        Ok(Ok(epoch)) => resp.broker_epoch = epoch,
        Ok(Err((code, message))) => {
            tracing::info!(broker = input.broker_id, %message, "broker registration refused");
            resp.error_code = code;
        }
        Err(e) => resp.error_code = control_error_code(&e).code(),
    }
    resp
}

pub async fn broker_heartbeat(
    broker: &Broker,
    req: BrokerHeartbeatRequest,
    _version: i16,
) -> BrokerHeartbeatResponse {
    let mut resp = BrokerHeartbeatResponse::default().with_is_fenced(true);
    match broker
        .broker_heartbeat(
            req.broker_id.0,
            req.broker_epoch,
            req.current_metadata_offset,
            req.want_fence,
            req.want_shut_down,
        )
        .await
    {
        Ok(Ok(outcome)) => {
            resp.is_caught_up = outcome.is_caught_up;
            resp.is_fenced = outcome.is_fenced;
            resp.should_shut_down = outcome.should_shut_down;
        }
        Ok(Err(code)) => resp.error_code = code,
        Err(e) => resp.error_code = control_error_code(&e).code(),
    }
    resp
}

pub async fn allocate_producer_ids(
    broker: &Broker,
    req: AllocateProducerIdsRequest,
    _version: i16,
) -> AllocateProducerIdsResponse {
    let mut resp = AllocateProducerIdsResponse::default();
    if !broker.metadata.is_active() {
        resp.error_code = ErrorCode::NotController.code();
        return resp;
    }
    match broker
        .allocate_producer_id_block(req.broker_id.0, req.broker_epoch)
        .await
    {
        Ok((start, len)) => {
            resp.producer_id_start = ProducerId(start);
            resp.producer_id_len = len;
        }
        Err(e) => resp.error_code = control_error_code(&e).code(),
    }
    resp
}

/// The `metadata.version` range this broker supports, for its registration.
pub fn supported_features() -> Vec<broker_registration_request::Feature> {
    vec![broker_registration_request::Feature::default()
        .with_name(sb("metadata.version"))
        .with_min_supported_version(krust_metadata::METADATA_VERSION_LEVEL)
        .with_max_supported_version(krust_metadata::METADATA_VERSION_LEVEL)]
}

pub async fn alter_partition(
    broker: &Broker,
    req: AlterPartitionRequest,
    version: i16,
) -> AlterPartitionResponse {
    let mut resp = AlterPartitionResponse::default();
    if !broker.metadata.is_active() {
        resp.error_code = ErrorCode::NotController.code();
        return resp;
    }
    for t in &req.topics {
        let mut out = alter_partition_response::TopicData::default().with_topic_id(t.topic_id);
        for p in &t.partitions {
            let new_isr: Vec<i32> = if version >= 3 {
                p.new_isr_with_epochs
                    .iter()
                    .map(|b| b.broker_id.0)
                    .collect()
            } else {
                p.new_isr.iter().map(|b| b.0).collect()
            };
            let outcome = broker
                .control(|image| {
                    match controller::alter_partition(
                        image,
                        req.broker_id.0,
                        req.broker_epoch,
                        t.topic_id,
                        p.partition_index,
                        p.leader_epoch,
                        p.partition_epoch,
                        &new_isr,
                        p.leader_recovery_state,
                    ) {
                        Ok((records, after)) => (records, Ok(after)),
                        Err(code) => (Vec::new(), Err(code)),
                    }
                })
                .await;
            let mut r = alter_partition_response::PartitionData::default()
                .with_partition_index(p.partition_index);
            match outcome {
                Ok(Ok(after)) => {
                    // The change (finishing a reassignment) moved leadership away: applied,
                    // but the requester no longer leads (versions 0-1 know no such code).
                    if after.leader != req.broker_id.0 {
                        r.error_code = if version >= 2 {
                            controller::PartitionErrorCode::NewLeaderElected
                        } else {
                            controller::PartitionErrorCode::FencedLeaderEpoch
                        }
                        .code();
                    }
                    r.leader_id = BrokerId(after.leader);
                    r.leader_epoch = after.leader_epoch;
                    r.isr = after.isr.iter().map(|b| BrokerId(*b)).collect();
                    r.partition_epoch = after.partition_epoch;
                }
                Ok(Err(code)) => r.error_code = code.code(),
                Err(e) => r.error_code = control_error_code(&e).code(),
            }
            out.partitions.push(r);
        }
        resp.topics.push(out);
    }
    resp
}

/// ElectLeaders (43): preferred (or unclean) leader election for the named partitions,
/// or for every partition when none are named.
pub async fn elect_leaders(
    broker: &Broker,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    use std::collections::BTreeMap;
    let mut resp = ElectLeadersResponse::default();
    let election_type = if version >= 1 {
        controller::ElectionType::from_value(req.election_type)
    } else {
        Some(controller::ElectionType::Preferred)
    };
    let Some(election_type) = election_type else {
        resp.error_code = ErrorCode::InvalidRequest.code();
        return resp;
    };
    let image = broker.image();
    // Partitions named in the request that do not exist get their error here.
    let mut unknown: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let wanted: Option<Vec<(uuid::Uuid, i32)>> = req.topic_partitions.as_ref().map(|tps| {
        let mut out = Vec::new();
        for tp in tps {
            for p in &tp.partitions {
                match image.topic(tp.topic.as_str()) {
                    Some(t) if t.partitions.contains_key(p) => out.push((t.id, *p)),
                    _ => unknown.entry(tp.topic.to_string()).or_default().push(*p),
                }
            }
        }
        out
    });
    let outcome = broker
        .control(|image| controller::elect_leaders(image, election_type, wanted.as_deref()))
        .await;
    let results = match outcome {
        Ok(r) => r,
        Err(e) => {
            resp.error_code = control_error_code(&e).code();
            return resp;
        }
    };
    let mut by_topic: BTreeMap<String, Vec<elect_leaders_response::PartitionResult>> =
        BTreeMap::new();
    for r in results {
        let Some(t) = image.topic_by_id(&r.topic_id) else {
            continue;
        };
        by_topic.entry(t.name.clone()).or_default().push(
            elect_leaders_response::PartitionResult::default()
                .with_partition_id(r.partition)
                .with_error_code(r.error.map_or(0, |e| e.code()))
                .with_error_message(r.message.map(sb)),
        );
    }
    for (topic, partitions) in unknown {
        let out = by_topic.entry(topic).or_default();
        for p in partitions {
            out.push(
                elect_leaders_response::PartitionResult::default()
                    .with_partition_id(p)
                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
            );
        }
    }
    resp.replica_election_results = by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            elect_leaders_response::ReplicaElectionResult::default()
                .with_topic(TopicName(sb(topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    resp
}
