//! DescribeCluster (60): the cluster id, the controller and the brokers. With endpoint
//! type 2 (KIP-919, `--bootstrap-controller`) it lists the controllers instead.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::sb;
use crate::broker::Broker;
use crate::dispatch::RequestContext;

const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let endpoint_type = if version >= 1 {
        req.endpoint_type
    } else {
        ENDPOINT_BROKER
    };
    // Through the controller listener the active controller is the one to talk to;
    // through a broker, any broker can take admin requests (they are forwarded).
    let controller_id = if endpoint_type == ENDPOINT_CONTROLLER {
        broker.metadata.leader().unwrap_or(broker.node_id)
    } else {
        broker.node_id
    };
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(sb(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(controller_id))
        .with_endpoint_type(endpoint_type)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            super::metadata::cluster_operations(&ctx.authz)
        } else {
            i32::MIN
        });
    resp.brokers = if endpoint_type == ENDPOINT_CONTROLLER {
        broker
            .config
            .controller_quorum_voters
            .iter()
            .map(|v| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(v.id))
                    .with_host(sb(v.host.clone()))
                    .with_port(i32::from(v.port))
            })
            .collect()
    } else {
        super::metadata::live_broker_endpoints(broker, &ctx.listener_name)
            .into_iter()
            .map(|b| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(sb(b.host))
                    .with_port(b.port)
                    .with_rack(b.rack.map(sb))
            })
            .collect()
    };
    resp
}
