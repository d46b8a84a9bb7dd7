//! DescribeCluster (60): the cluster id, the controller and the brokers. With endpoint
//! type 2 (KIP-919, `--bootstrap-controller`) it lists the controllers instead.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use krust_protocol::Listener;

use super::sb;
use crate::broker::Broker;

const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

pub fn handle(
    broker: &Broker,
    _listener: Listener,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let endpoint_type = if version >= 1 {
        req.endpoint_type
    } else {
        ENDPOINT_BROKER
    };
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(sb(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id))
        .with_endpoint_type(endpoint_type)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            super::metadata::CLUSTER_OPERATIONS_ALL
        } else {
            i32::MIN
        });
    let (host, port) = if endpoint_type == ENDPOINT_CONTROLLER {
        broker.advertised_controller_endpoint()
    } else {
        Some(broker.advertised_endpoint())
    }
    .unwrap_or_else(|| ("localhost".into(), 0));
    resp.brokers = vec![DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.node_id))
        .with_host(sb(host))
        .with_port(port)
        .with_rack(broker.config.broker_rack.clone().map(sb))];
    resp
}
