//! AlterConfigs (33): replaces a topic's whole set of overrides. Broker configs are static
//! in krust, so altering them is refused as Kafka refuses non-dynamic keys.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use krust_metadata::controller::{self, ConfigOp, ItemResult};
use krust_metadata::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use krust_protocol::ErrorCode;

use super::{sb, validate_topic_config};
use crate::broker::Broker;

/// One resource's requested changes.
pub struct ResourceChange {
    pub resource_type: i8,
    pub resource_name: String,
    pub ops: Vec<(String, Option<ConfigOp>, Option<String>)>,
}

/// Applies config changes to several resources; `replace_all` is the legacy AlterConfigs
/// semantics. Returns one result per resource, in order.
pub async fn alter(
    broker: &Broker,
    changes: Vec<ResourceChange>,
    replace_all: bool,
    validate_only: bool,
) -> Vec<ItemResult> {
    let outcome = broker
        .control(|image| {
            let mut records = Vec::new();
            let mut results = Vec::new();
            // A resource named twice is refused each time, as Kafka does: each would be
            // checked without the other's change.
            let mut seen = std::collections::HashSet::new();
            let duplicated: std::collections::HashSet<(i8, &str)> = changes
                .iter()
                .map(|c| (c.resource_type, c.resource_name.as_str()))
                .filter(|k| !seen.insert(*k))
                .collect();
            for c in &changes {
                let r = match c.resource_type {
                    _ if duplicated.contains(&(c.resource_type, c.resource_name.as_str())) => {
                        Err(ItemResult::err(
                            ErrorCode::InvalidRequest,
                            "Duplicate resource.".to_string(),
                        ))
                    }
                    RESOURCE_TOPIC => known_ops(&c.ops).and_then(|ops| {
                        controller::alter_topic_configs(
                            image,
                            &c.resource_name,
                            &ops,
                            replace_all,
                            &validate_topic_config,
                            &crate::topic_config::is_list_config,
                        )
                    }),
                    RESOURCE_GROUP if c.resource_name.is_empty() => Err(ItemResult::err(
                        ErrorCode::InvalidRequest,
                        "Default group resources are not allowed.".to_string(),
                    )),
                    RESOURCE_GROUP => known_ops(&c.ops).and_then(|mut ops| {
                        // Numbers are stored as Kafka shows them ("1500", not " +1500").
                        for (_, _, v) in &mut ops {
                            if let Some(n) = v.as_deref().and_then(|v| v.trim().parse::<i64>().ok())
                            {
                                *v = Some(n.to_string());
                            }
                        }
                        controller::alter_resource_configs(
                            image,
                            RESOURCE_GROUP,
                            &c.resource_name,
                            &ops,
                            replace_all,
                            &|next| crate::group_config::validate(&broker.config, next),
                            &|_| false,
                        )
                    }),
                    RESOURCE_BROKER => Err(ItemResult::err(
                        ErrorCode::InvalidRequest,
                        format!(
                            "Cannot update these configs dynamically: {}",
                            c.ops
                                .iter()
                                .map(|(k, _, _)| k.as_str())
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                    )),
                    other => Err(ItemResult::err(
                        ErrorCode::InvalidRequest,
                        format!("Unsupported resource type {other}"),
                    )),
                };
                match r {
                    Ok(recs) => {
                        records.extend(recs);
                        results.push(ItemResult::ok());
                    }
                    Err(e) => results.push(e),
                }
            }
            (if validate_only { Vec::new() } else { records }, results)
        })
        .await;
    outcome.unwrap_or_else(|e| {
        changes
            .iter()
            .map(|_| ItemResult::err(crate::broker::control_error_code(&e), e.to_string()))
            .collect()
    })
}

/// The request's operations, each known (else INVALID_REQUEST for the first one that is not).
fn known_ops(
    ops: &[(String, Option<ConfigOp>, Option<String>)],
) -> Result<Vec<(String, ConfigOp, Option<String>)>, ItemResult> {
    ops.iter()
        .map(|(k, op, v)| {
            op.map(|op| (k.clone(), op, v.clone())).ok_or_else(|| {
                ItemResult::err(
                    ErrorCode::InvalidRequest,
                    format!("Unknown config operation for {k}"),
                )
            })
        })
        .collect()
}

pub async fn handle(
    broker: &Broker,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
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
                    let v = c.value.as_ref().map(|v| v.to_string());
                    let op = if v.is_some() {
                        ConfigOp::Set
                    } else {
                        ConfigOp::Delete
                    };
                    (c.name.to_string(), Some(op), v)
                })
                .collect(),
        })
        .collect();
    let results = alter(broker, changes, true, req.validate_only).await;
    let mut resp = AlterConfigsResponse::default();
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
