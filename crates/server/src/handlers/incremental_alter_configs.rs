//! IncrementalAlterConfigs (44): SET, DELETE, APPEND and SUBTRACT on single keys.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use krust_metadata::controller::ConfigOp;

use super::alter_configs::{alter, ResourceChange};
use super::sb;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let changes: Vec<ResourceChange> = req
        .resources
        .iter()
        .map(|r| ResourceChange {
            resource_type: r.resource_type,
            resource_name: r.resource_name.to_string(),
            ops: r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        ConfigOp::from_code(c.config_operation),
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect(),
        })
        .collect();
    let results = alter(broker, changes, false, req.validate_only).await;
    let mut resp = IncrementalAlterConfigsResponse::default();
    for (r, res) in req.resources.iter().zip(results) {
        resp.responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(res.error.code())
                .with_error_message(res.message.map(sb)),
        );
    }
    resp
}
