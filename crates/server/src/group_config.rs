//! Group-level configs (ConfigResource type GROUP, KIP-848): a consumer-protocol group's own
//! session timeout and heartbeat interval, within the broker's bounds.

use std::collections::BTreeMap;

use crate::config::ServerConfig;
use crate::topic_config::{ConfigEntryDesc, SOURCE_DEFAULT_CONFIG, SOURCE_STATIC_BROKER_CONFIG};

/// Kafka's ConfigSource for a group's own value.
pub const SOURCE_GROUP_CONFIG: i8 = 8;

/// `consumer.session.timeout.ms`.
pub const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
/// `consumer.heartbeat.interval.ms`.
pub const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";

/// Each group key, the broker key whose value it defaults to, and its documentation.
const KEYS: &[(&str, &str, &str)] = &[
    (
        HEARTBEAT_INTERVAL,
        "group.consumer.heartbeat.interval.ms",
        "How often this group's consumer-protocol members heartbeat.",
    ),
    (
        SESSION_TIMEOUT,
        "group.consumer.session.timeout.ms",
        "How long this group's consumer-protocol members live without a heartbeat.",
    ),
];

fn broker_default(server: &ServerConfig, key: &str) -> i32 {
    if key == SESSION_TIMEOUT {
        server.consumer_groups.session_timeout_ms
    } else {
        server.consumer_groups.heartbeat_interval_ms
    }
}

/// Checks a group's whole set of configs after a change, as Kafka's `GroupConfig.validate`:
/// known keys, integers within the broker's `group.consumer.min/max.*` bounds, and a
/// session timeout above the heartbeat interval.
pub fn validate(server: &ServerConfig, configs: &BTreeMap<String, String>) -> Result<(), String> {
    for key in configs.keys() {
        if !KEYS.iter().any(|(k, _, _)| k == key) {
            return Err(format!("Unknown group config name: {key}"));
        }
    }
    let value = |key: &str| -> Result<i32, String> {
        match configs.get(key) {
            None => Ok(broker_default(server, key)),
            Some(v) => match v.trim().parse::<i32>() {
                Err(_) => Err(format!(
                    "Invalid value {v} for configuration {key}: Not a number of type INT"
                )),
                Ok(n) if n < 1 => Err(format!(
                    "Invalid value {v} for configuration {key}: Value must be at least 1"
                )),
                Ok(n) => Ok(n),
            },
        }
    };
    let heartbeat = value(HEARTBEAT_INTERVAL)?;
    let session = value(SESSION_TIMEOUT)?;
    let bounds = &server.consumer_group_bounds;
    let check = |key: &str, v: i32, (min, max): (i32, i32), min_key: &str, max_key: &str| {
        if v < min {
            return Err(format!("{key} must be greater than or equal to {min_key}"));
        }
        if v > max {
            return Err(format!("{key} must be less than or equal to {max_key}"));
        }
        Ok(())
    };
    check(
        HEARTBEAT_INTERVAL,
        heartbeat,
        bounds.heartbeat,
        "group.consumer.min.heartbeat.interval.ms",
        "group.consumer.max.heartbeat.interval.ms",
    )?;
    check(
        SESSION_TIMEOUT,
        session,
        bounds.session,
        "group.consumer.min.session.timeout.ms",
        "group.consumer.max.session.timeout.ms",
    )?;
    if session <= heartbeat {
        return Err(format!(
            "{SESSION_TIMEOUT} must be greater than {HEARTBEAT_INTERVAL}"
        ));
    }
    Ok(())
}

/// A group's configs as DescribeConfigs shows them: its own values, else the broker's.
pub fn describe(
    server: &ServerConfig,
    overrides: &BTreeMap<String, String>,
    include_synonyms: bool,
) -> Vec<ConfigEntryDesc> {
    KEYS.iter()
        .map(|(key, broker_key, doc)| {
            let broker_source = if server.explicit().contains_key(*broker_key) {
                SOURCE_STATIC_BROKER_CONFIG
            } else {
                SOURCE_DEFAULT_CONFIG
            };
            let broker_value = broker_default(server, key).to_string();
            let (value, source) = match overrides.get(*key) {
                Some(v) => (v.clone(), SOURCE_GROUP_CONFIG),
                None => (broker_value.clone(), broker_source),
            };
            let mut synonyms = Vec::new();
            if include_synonyms {
                if let Some(v) = overrides.get(*key) {
                    synonyms.push((key.to_string(), Some(v.clone()), SOURCE_GROUP_CONFIG));
                }
                synonyms.push((broker_key.to_string(), Some(broker_value), broker_source));
                if broker_source == SOURCE_STATIC_BROKER_CONFIG {
                    let default = if *key == SESSION_TIMEOUT {
                        45_000
                    } else {
                        5_000
                    };
                    synonyms.push((
                        broker_key.to_string(),
                        Some(default.to_string()),
                        SOURCE_DEFAULT_CONFIG,
                    ));
                }
            }
            ConfigEntryDesc {
                name: key.to_string(),
                value: Some(value),
                source,
                read_only: false,
                sensitive: false,
                // INT
                config_type: 3,
                documentation: Some(doc.to_string()),
                synonyms,
            }
        })
        .collect()
}

/// A group's own session timeout and heartbeat interval, where set.
pub fn overrides(configs: Option<&BTreeMap<String, String>>) -> (Option<i32>, Option<i32>) {
    let get = |k: &str| {
        configs
            .and_then(|c| c.get(k))
            .and_then(|v| v.trim().parse().ok())
    };
    (get(SESSION_TIMEOUT), get(HEARTBEAT_INTERVAL))
}
