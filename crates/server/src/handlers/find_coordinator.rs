//! FindCoordinator (10): the node coordinating a group or a transactional id (v0-3 one
//! key, v4 a batch of keys): the leader of its partition of `__consumer_offsets` or
//! `__transaction_state`, created by the first request.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::Broker;
use crate::dispatch::RequestContext;

const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

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
        let result = match req.key_type {
            KEY_GROUP => match broker.group_partition(&key).await {
                Ok(p) => {
                    coordinator_of(broker, crate::groups::OFFSETS_TOPIC, p, &ctx.listener_name)
                }
                Err(e) => Err(e),
            },
            KEY_TRANSACTION => match broker.txn_partition(&key).await {
                Ok(p) => coordinator_of(broker, crate::txn::TXN_TOPIC, p, &ctx.listener_name),
                Err(e) => Err(e),
            },
            other => Err((
                ErrorCode::InvalidRequest,
                format!("unknown coordinator key type {other}"),
            )),
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

/// The broker leading partition `partition` of the internal topic `topic`: the
/// coordinator.
fn coordinator_of(
    broker: &Broker,
    topic: &str,
    partition: i32,
    listener: &str,
) -> Result<super::metadata::BrokerEndpointView, (ErrorCode, String)> {
    let image = broker.image();
    let leader = image
        .topic(topic)
        .and_then(|t| t.partitions.get(&partition))
        .map_or(-1, |p| p.leader);
    if !image.live_brokers().contains(&leader) {
        return Err((
            ErrorCode::CoordinatorNotAvailable,
            format!("the leader of partition {partition} of {topic} is not available"),
        ));
    }
    super::metadata::broker_endpoint(broker, &image, leader, listener).ok_or((
        ErrorCode::CoordinatorNotAvailable,
        format!("broker {leader} has no endpoint for this listener"),
    ))
}
