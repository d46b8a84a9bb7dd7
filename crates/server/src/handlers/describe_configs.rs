//! DescribeConfigs (32): topic configs (overrides over broker defaults, with sources and
//! synonyms) and this broker's static configs.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use krust_metadata::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::Broker;
use crate::topic_config::{describe_topic_configs, ConfigEntryDesc};

pub async fn handle(
    broker: &Broker,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = broker.image();
    let mut resp = DescribeConfigsResponse::default();
    // A resource asked for twice is described once: each repeat would copy its configs.
    let mut seen = std::collections::HashSet::new();
    for r in req.resources {
        let keys: Option<Vec<String>> = r
            .configuration_keys
            .as_ref()
            .map(|k| k.iter().map(|k| k.to_string()).collect());
        if !seen.insert((r.resource_type, r.resource_name.to_string(), keys)) {
            continue;
        }
        let name = r.resource_name.to_string();
        let mut out = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let entries: Result<Vec<ConfigEntryDesc>, (ErrorCode, String)> = match r.resource_type {
            RESOURCE_TOPIC => match image.topic(&name) {
                Some(_) => Ok(describe_topic_configs(
                    &image.topic_configs(&name),
                    &broker.config,
                    req.include_synonyms,
                )),
                None => Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist."),
                )),
            },
            RESOURCE_GROUP if name.is_empty() => Err((
                ErrorCode::InvalidRequest,
                "Group name must not be empty".to_string(),
            )),
            RESOURCE_GROUP => Ok(crate::group_config::describe(
                &broker.config,
                &image.resource_configs(RESOURCE_GROUP, &name),
                req.include_synonyms,
            )),
            RESOURCE_BROKER => {
                if name.is_empty() || name == broker.node_id.to_string() {
                    Ok(broker.config.describe_broker_configs())
                } else {
                    Err((ErrorCode::InvalidRequest, format!("Unexpected broker id, expected {} or empty string, but received {name}", broker.node_id)))
                }
            }
            other => Err((
                ErrorCode::InvalidRequest,
                format!("Unsupported resource type {other}"),
            )),
        };
        match entries {
            Ok(entries) => {
                let keys = r
                    .configuration_keys
                    .as_ref()
                    .map(|k| k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
                out.configs = entries
                    .into_iter()
                    .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name)))
                    .map(|e| entry(e, version, req.include_synonyms, req.include_documentation))
                    .collect();
            }
            Err((code, message)) => {
                out.error_code = code.code();
                out.error_message = Some(sb(message));
            }
        }
        resp.results.push(out);
    }
    resp
}

fn entry(
    e: ConfigEntryDesc,
    _version: i16,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult::default()
        .with_name(sb(e.name))
        .with_value(e.value.map(sb))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(e.sensitive)
        .with_config_type(e.config_type);
    if docs {
        out.documentation = e.documentation.map(sb);
    }
    if synonyms {
        out.synonyms = e
            .synonyms
            .into_iter()
            .map(|(n, v, s)| {
                DescribeConfigsSynonym::default()
                    .with_name(sb(n))
                    .with_value(v.map(sb))
                    .with_source(s)
            })
            .collect();
    }
    out
}
