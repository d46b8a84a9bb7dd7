//! FindCoordinator (10): the node coordinating a group (v0-3 one key, v4 a batch of keys).
//! The first request creates `__consumer_offsets`. Transaction coordinators are not
//! offered: transactions are not implemented.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::Broker;
use crate::dispatch::RequestContext;

const KEY_GROUP: i8 = 0;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let mut coordinators = Vec::new();
    for key in keys {
        let mut c = Coordinator::default()
            .with_key(sb(key.clone()))
            .with_node_id(BrokerId(-1))
            .with_host(sb(""))
            .with_port(-1);
        let result = if req.key_type != KEY_GROUP {
            Err((
                ErrorCode::CoordinatorNotAvailable,
                "transactions are not supported by this broker".to_string(),
            ))
        } else {
            match broker.group_partition(&key).await {
                Ok(p) => coordinator_of(broker, p, &ctx.listener_name),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(node) => {
                c.node_id = BrokerId(node.id);
                c.host = sb(node.host);
                c.port = node.port;
            }
            Err((code, message)) => {
                c.error_code = code.code();
                c.error_message = Some(sb(message));
            }
        }
        coordinators.push(c);
    }
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        resp.coordinators = coordinators;
    } else if let Some(c) = coordinators.into_iter().next() {
        resp.error_code = c.error_code;
        resp.error_message = c.error_message;
        resp.node_id = c.node_id;
        resp.host = c.host;
        resp.port = c.port;
    }
    resp
}

/// The broker leading the offsets topic partition `partition`: the group's coordinator.
fn coordinator_of(
    broker: &Broker,
    partition: i32,
    listener: &str,
) -> Result<super::metadata::BrokerEndpointView, (ErrorCode, String)> {
    let image = broker.image();
    let leader = image
        .topic(crate::groups::OFFSETS_TOPIC)
        .and_then(|t| t.partitions.get(&partition))
        .map_or(-1, |p| p.leader);
    if !image.live_brokers().contains(&leader) {
        return Err((
            ErrorCode::CoordinatorNotAvailable,
            format!("the leader of partition {partition} of the offsets topic is not available"),
        ));
    }
    super::metadata::broker_endpoint(broker, &image, leader, listener).ok_or((
        ErrorCode::CoordinatorNotAvailable,
        format!("broker {leader} has no endpoint for this listener"),
    ))
}
