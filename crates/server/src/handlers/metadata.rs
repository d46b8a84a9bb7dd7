//! Metadata (3): brokers, controller, topics and partitions from the metadata image.
//! Missing topics are created here when both the request and `auto.create.topics.enable`
//! allow it, and the new topic is returned in the same response.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use krust_metadata::acl::{self, op, resource};
use krust_metadata::controller::NewTopic;
use krust_metadata::{topic_name, MetadataImage, TopicImage};
use krust_protocol::ErrorCode;
use uuid::Uuid;

use super::sb;
use crate::broker::Broker;
use crate::dispatch::RequestContext;

/// Kafka's "authorized operations not requested" value.
const OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let auto_create =
        broker.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);
    let mut image = broker.image();

    // Which topics: None = all; v0 sends an empty list to mean all.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match &req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        // Each topic once, however often it is named (as Kafka answers a set of topics):
        // a name repeated in a few bytes would otherwise repeat all of its partitions.
        Some(t) => {
            let mut seen = std::collections::HashSet::new();
            Some(
                t.iter()
                    .map(|x| (x.name.as_ref().map(|n| n.to_string()), x.topic_id))
                    // By name when there is one (the id is then not looked at), else by id.
                    .filter(|(n, id)| {
                        seen.insert((n.clone(), if n.is_some() { Uuid::nil() } else { *id }))
                    })
                    .collect(),
            )
        }
    };

    let az = &ctx.authz;
    // Topics named (or found by id) that the sender may not describe: refused whether or
    // not they exist. Of those it may describe, the missing ones it may not create are
    // refused too when they would be created.
    let mut denied: std::collections::HashSet<(Option<String>, Uuid)> = Default::default();
    if let (Some(req_topics), true) = (&requested, az.is_on()) {
        let may_create = az.quietly(op::CREATE, resource::CLUSTER, acl::CLUSTER_NAME);
        for (n, id) in req_topics {
            let name = match n {
                Some(n) => Some(n.as_str()),
                None => image.topic_by_id(id).map(|t| t.name.as_str()),
            };
            let Some(name) = name else { continue };
            let refused = !az.topic(op::DESCRIBE, name)
                || (auto_create
                    && image.topic(name).is_none()
                    && !may_create
                    && !az.topic(op::CREATE, name));
            if refused {
                denied.insert((n.clone(), *id));
            }
        }
    }
    if auto_create {
        if let Some(req_topics) = &requested {
            let missing: Vec<String> = req_topics
                .iter()
                .filter(|t| !denied.contains(t))
                .filter_map(|(n, _)| n.clone())
                .filter(|n| {
                    image.topic(n).is_none()
                        && topic_name::validate(n).is_ok()
                        && !topic_name::is_internal(n)
                })
                .collect();
            if !missing.is_empty() {
                auto_create_topics(broker, &missing).await;
                image = broker.image();
            }
        }
    }

    let mut resp = MetadataResponse::default();
    resp.brokers = live_broker_endpoints(broker, &ctx.listener_name)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(sb(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(sb))
        })
        .collect();
    resp.cluster_id = Some(sb(broker.cluster_id.clone()));
    // Any broker takes admin requests (they are forwarded to the active controller).
    resp.controller_id = BrokerId(broker.node_id);
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        cluster_operations(az)
    } else {
        OPERATIONS_OMITTED
    };
    resp.topics = match requested {
        None => image
            .topics
            .values()
            .filter(|t| az.quietly(op::DESCRIBE, resource::TOPIC, &t.name))
            .map(|t| topic_entry(t))
            .collect(),
        Some(list) => list
            .iter()
            .map(|(name, id)| {
                if denied.contains(&(name.clone(), *id)) {
                    MetadataResponseTopic::default()
                        .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
                        .with_name(name.as_deref().map(|n| TopicName(sb(n))))
                        .with_topic_id(if name.is_some() { Uuid::nil() } else { *id })
                        .with_topic_authorized_operations(OPERATIONS_OMITTED)
                } else {
                    lookup(&image, name.as_deref(), *id)
                }
            })
            .collect(),
    };
    // A partition whose leader is fenced has no leader until it comes back.
    let live = image.live_brokers();
    for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        if p.leader_id.0 >= 0 && !live.contains(&p.leader_id.0) {
            p.leader_id = BrokerId(-1);
            p.error_code = ErrorCode::LeaderNotAvailable.code();
        }
    }
    if req.include_topic_authorized_operations {
        // Every topic answered but those refused or unknown by id.
        let omitted = [
            ErrorCode::TopicAuthorizationFailed.code(),
            ErrorCode::UnknownTopicId.code(),
        ];
        for t in resp
            .topics
            .iter_mut()
            .filter(|t| !omitted.contains(&t.error_code))
        {
            if let Some(name) = &t.name {
                t.topic_authorized_operations = az.operations(resource::TOPIC, name);
            }
        }
    }
    resp
}

/// The cluster's authorized operations as Metadata and DescribeCluster report them: none
/// without DESCRIBE on the cluster.
pub(crate) fn cluster_operations(az: &crate::authz::Authz) -> i32 {
    if az.quietly(op::DESCRIBE, resource::CLUSTER, acl::CLUSTER_NAME) {
        az.operations(resource::CLUSTER, acl::CLUSTER_NAME)
    } else {
        0
    }
}

async fn auto_create_topics(broker: &Broker, names: &[String]) {
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic {
            name: n.clone(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        })
        .collect();
    let result = broker
        .create_topics(&topics, false, crate::handlers::validate_topic_config)
        .await;
    match result {
        Ok(results) => {
            for r in results.iter().filter(|r| r.result.is_ok()) {
                tracing::info!(topic = %r.name, partitions = r.num_partitions, "auto-created topic");
            }
        }
        Err(e) => tracing::warn!(error = %e, "auto topic creation failed"),
    }
}

fn lookup(image: &MetadataImage, name: Option<&str>, id: Uuid) -> MetadataResponseTopic {
    let found = match name {
        Some(n) => image.topic(n),
        None => image.topic_by_id(&id),
    };
    match found {
        Some(t) => topic_entry(t),
        None => {
            let error = match name {
                None => ErrorCode::UnknownTopicId,
                Some(n) if topic_name::validate(n).is_err() => ErrorCode::InvalidTopicException,
                Some(_) => ErrorCode::UnknownTopicOrPartition,
            };
            MetadataResponseTopic::default()
                .with_error_code(error.code())
                .with_name(name.map(|n| TopicName(sb(n))))
                .with_topic_id(id)
                .with_topic_authorized_operations(OPERATIONS_OMITTED)
        }
    }
}

fn topic_entry(t: &TopicImage) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(topic_name::is_internal(&t.name))
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
        .with_partitions(
            t.partitions
                .iter()
                .map(|(&index, p)| {
                    let error = if p.leader < 0 {
                        ErrorCode::LeaderNotAvailable
                    } else {
                        ErrorCode::None
                    };
                    MetadataResponsePartition::default()
                        .with_error_code(error.code())
                        .with_partition_index(index)
                        .with_leader_id(BrokerId(p.leader))
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(p.replicas.iter().map(|&b| BrokerId(b)).collect())
                        .with_isr_nodes(p.isr.iter().map(|&b| BrokerId(b)).collect())
                })
                .collect(),
        )
}

/// A live broker as clients reach it.
pub struct BrokerEndpointView {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// The live (registered, unfenced) brokers' endpoints on listener `listener`.
pub fn live_broker_endpoints(broker: &Broker, listener: &str) -> Vec<BrokerEndpointView> {
    let image = broker.image();
    image
        .live_brokers()
        .into_iter()
        .filter_map(|id| broker_endpoint(broker, &image, id, listener))
        .collect()
}

/// The endpoint of broker `id` on listener `listener` (the one the client's request came in
/// on, as Kafka answers), else on this node's first broker listener.
pub fn broker_endpoint(
    broker: &Broker,
    image: &MetadataImage,
    id: i32,
    listener: &str,
) -> Option<BrokerEndpointView> {
    let b = image.broker(id)?;
    let fallback = broker
        .config
        .advertised_broker_listener()
        .map(|l| l.name.clone());
    let e = b
        .endpoints
        .iter()
        .find(|e| e.name == listener)
        .or_else(|| {
            b.endpoints
                .iter()
                .find(|e| Some(&e.name) == fallback.as_ref())
        })
        .or_else(|| b.endpoints.first())?;
    Some(BrokerEndpointView {
        id,
        host: e.host.clone(),
        port: i32::from(e.port),
        rack: b.rack.clone(),
    })
}
