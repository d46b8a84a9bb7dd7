//! `krust container-start`: the container image's entrypoint. It runs a node configured
//! from environment variables, as users of Kafka's images expect, and formats the node's
//! storage first when a cluster id is given and the storage is not formatted yet.
//!
//! Mapping: `KRUST_<KEY>` and `KAFKA_<KEY>` set the `server.properties` key spelled by
//! `<KEY>` lower-cased with `_` read as `.` (`KRUST_NODE_ID=1` is `node.id=1`,
//! `KAFKA_CONTROLLER_QUORUM_VOTERS` is `controller.quorum.voters`). A key that really holds
//! an underscore or a dash is written with `__` or `___` (Confluent's images do the same):
//! `KRUST_A__B` is `a_b`, `KRUST_A___B` is `a-b`. No key krust implements has either, so
//! this matters only for pass-through keys such as `listener.name.<name>.*` of a listener
//! whose name has one. When both prefixes set one key, `KRUST_` wins.
//!
//! Not config keys: `KRUST_LOG` (the log filter), and the cluster id `KRUST_CLUSTER_ID`
//! (also read as `KAFKA_CLUSTER_ID` or `CLUSTER_ID`, the name Apache Kafka's image uses).
//! A `KRUST_` variable naming no known key is an error, as a misspelt key in a file is; a
//! `KAFKA_` one is skipped with a warning, since Kafka's images read many such variables
//! (`KAFKA_HEAP_OPTS`, `KAFKA_JMX_PORT`, ...) that mean nothing here.
//!
//! Precedence, lowest first: the defaults below (only without `--config`), the config
//! file, the environment, then `--override` arguments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use krust_server::config::{is_known_broker_key, ServerConfig};
use krust_server::meta_properties::MetaProperties;

/// Variables with these names are read here but are not config keys.
const RESERVED: &[&str] = &["KRUST_LOG", "KRUST_CLUSTER_ID", "KAFKA_CLUSTER_ID"];
/// Cluster id variables, first found wins.
const CLUSTER_ID_VARS: &[&str] = &["KRUST_CLUSTER_ID", "KAFKA_CLUSTER_ID", "CLUSTER_ID"];

/// The settings of a container started with no config file: a standalone combined node that
/// listens on every interface, advertises `localhost` (for `docker run -p 9092:9092`) and
/// keeps its data under `/var/lib/krust/data` (the image's volume).
pub const CONTAINER_DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("process.roles", "broker,controller"),
    ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
    (
        "advertised.listeners",
        "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
    ),
    ("controller.listener.names", "CONTROLLER"),
    ("controller.quorum.voters", "1@localhost:9093"),
    ("log.dirs", "/var/lib/krust/data"),
    ("http.listener", "http://0.0.0.0:9644"),
];

/// What the environment says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EnvConfig {
    /// Config key → (value, the variable it came from).
    pub settings: BTreeMap<String, (String, String)>,
    pub cluster_id: Option<String>,
    /// Warnings to log (skipped or shadowed variables).
    pub warnings: Vec<String>,
}

/// The config key a variable name spells after its prefix, e.g. `NODE_ID` → `node.id`.
pub fn key_from_env_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty key".into());
    }
    let mut out = String::new();
    let mut run = 0usize;
    let flush = |run: usize, out: &mut String| -> Result<(), String> {
        match run {
            0 => {}
            1 => out.push('.'),
            2 => out.push('_'),
            3 => out.push('-'),
            n => return Err(format!("{n} underscores in a row mean nothing")),
        }
        Ok(())
    };
    for c in name.chars() {
        if c == '_' {
            run += 1;
            continue;
        }
        flush(run, &mut out)?;
        run = 0;
        out.push(c.to_ascii_lowercase());
    }
    flush(run, &mut out)?;
    if out.starts_with(['.', '_', '-']) || out.ends_with(['.', '_', '-']) {
        return Err("a key cannot start or end with a separator".into());
    }
    Ok(out)
}

/// Reads the config settings and the cluster id from environment variables.
pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<EnvConfig> {
    let vars: BTreeMap<String, String> = vars.into_iter().collect();
    let mut out = EnvConfig {
        cluster_id: CLUSTER_ID_VARS
            .iter()
            .find_map(|v| vars.get(*v))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        ..EnvConfig::default()
    };
    // KAFKA_ first so that KRUST_ overwrites it.
    for prefix in ["KAFKA_", "KRUST_"] {
        for (name, value) in &vars {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            if RESERVED.contains(&name.as_str()) {
                continue;
            }
            let key = match key_from_env_name(rest) {
                Ok(k) => k,
                Err(e) if prefix == "KAFKA_" => {
                    out.warnings
                        .push(format!("ignoring {name}: not a config key ({e})"));
                    continue;
                }
                Err(e) => bail!("{name}: not a config key ({e})"),
            };
            if !is_known_broker_key(&key) {
                if prefix == "KAFKA_" {
                    out.warnings
                        .push(format!("ignoring {name}: {key} is not a broker config key"));
                    continue;
                }
                bail!(
                    "{name} names {key}, which is not a broker config key (KRUST_<KEY> is the \
                     server.properties key upper-cased with dots as underscores, e.g. \
                     KRUST_NODE_ID for node.id)"
                );
            }
            if let Some((old, from)) = out.settings.get(&key) {
                if old != value {
                    out.warnings.push(format!(
                        "{name} overrides {from} for {key} ({value} instead of {old})"
                    ));
                }
            }
            out.settings.insert(key, (value.clone(), name.clone()));
        }
    }
    Ok(out)
}

/// The `--override` list for a node started from the environment: container defaults
/// (without a config file), then the environment, then `overrides`.
pub fn overrides_for(has_config: bool, env: &EnvConfig, overrides: &[String]) -> Vec<String> {
    let mut given: Vec<String> = env.settings.keys().cloned().collect();
    for o in overrides {
        if let Some((k, _)) = o.split_once('=') {
            given.push(k.trim().to_string());
        }
    }
    let is_given = |k: &str| given.iter().any(|g| g == k);
    let mut out = Vec::new();
    if !has_config {
        for (k, v) in CONTAINER_DEFAULTS {
            // advertised.listeners must name the configured listeners: without its own
            // value it follows `listeners` (Kafka's rule), not the default.
            let follows_listeners = *k == "advertised.listeners" && is_given("listeners");
            if !is_given(k) && !follows_listeners {
                out.push(format!("{k}={v}"));
            }
        }
    }
    for (k, (v, _)) in &env.settings {
        out.push(format!("{k}={v}"));
    }
    out.extend(overrides.iter().cloned());
    out
}

/// Reads the environment, formats the storage if a cluster id is given and it is not
/// formatted, and returns the `--override` list to start the server with.
pub fn prepare(config: Option<&Path>, overrides: &[String]) -> anyhow::Result<Vec<String>> {
    let env = from_env(std::env::vars())?;
    for w in &env.warnings {
        tracing::warn!("{w}");
    }
    for (k, (v, from)) in &env.settings {
        tracing::info!("{k}={v} (from {from})");
    }
    let all = overrides_for(config.is_some(), &env, overrides);
    let server_config = ServerConfig::load(config, &all)?;
    let unformatted: Vec<PathBuf> = server_config
        .all_log_dirs()
        .into_iter()
        .filter(|d| !matches!(MetaProperties::read_from_dir(d), Ok(Some(_))))
        .collect();
    if unformatted.is_empty() {
        return Ok(all);
    }
    match &env.cluster_id {
        Some(id) => {
            for line in krust_server::format::format(&server_config, id, true, false, &[])
                .context("cannot format the storage")?
            {
                tracing::info!("{line}");
            }
        }
        None if krust_server::format::is_standalone_node(&server_config) => {
            // The server formats a standalone node with a new cluster id by itself.
        }
        None => bail!(
            "the storage ({}) is not formatted: set KRUST_CLUSTER_ID to the cluster's id (the \
             same on every node; `krust storage random-uuid` makes one)",
            unformatted
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_names_map_to_keys() {
        assert_eq!(key_from_env_name("NODE_ID").as_deref(), Ok("node.id"));
        assert_eq!(
            key_from_env_name("CONTROLLER_QUORUM_VOTERS").as_deref(),
            Ok("controller.quorum.voters")
        );
        assert_eq!(key_from_env_name("A__B").as_deref(), Ok("a_b"));
        assert_eq!(key_from_env_name("A___B_C").as_deref(), Ok("a-b.c"));
        assert!(key_from_env_name("A____B").is_err());
        assert!(key_from_env_name("_A").is_err());
        assert!(key_from_env_name("").is_err());
    }

    #[test]
    fn krust_wins_over_kafka_and_reserved_names_are_not_keys() {
        let e = from_env(env(&[
            ("KAFKA_NODE_ID", "2"),
            ("KRUST_NODE_ID", "3"),
            ("KAFKA_LOG_DIRS", "/data"),
            ("KRUST_LOG", "debug"),
            ("KRUST_CLUSTER_ID", "MkU3OEVBNTcwNTJENDM2Qg"),
            ("KAFKA_HEAP_OPTS", "-Xmx1G"),
            ("PATH", "/bin"),
        ]))
        .expect("valid");
        assert_eq!(e.settings["node.id"].0, "3");
        assert_eq!(e.settings["node.id"].1, "KRUST_NODE_ID");
        assert_eq!(e.settings["log.dirs"].0, "/data");
        assert_eq!(e.settings.len(), 2, "{:?}", e.settings);
        assert_eq!(e.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qg"));
        assert!(e.warnings.iter().any(|w| w.contains("KAFKA_HEAP_OPTS")));
        assert!(e.warnings.iter().any(|w| w.contains("KRUST_NODE_ID")));
    }

    #[test]
    fn cluster_id_aliases() {
        let e = from_env(env(&[("CLUSTER_ID", "x")])).expect("valid");
        assert_eq!(e.cluster_id.as_deref(), Some("x"));
        let e = from_env(env(&[("KAFKA_CLUSTER_ID", "y"), ("CLUSTER_ID", "x")])).expect("ok");
        assert_eq!(e.cluster_id.as_deref(), Some("y"));
        assert!(e.settings.is_empty());
    }

    #[test]
    fn an_unknown_krust_key_is_an_error() {
        let err = from_env(env(&[("KRUST_NODE_IDD", "1")])).expect_err("unknown key");
        assert!(err.to_string().contains("KRUST_NODE_IDD"), "{err}");
        assert!(err.to_string().contains("node.idd"), "{err}");
    }

    #[test]
    fn defaults_yield_to_the_environment_and_overrides() {
        let e = from_env(env(&[
            ("KRUST_NODE_ID", "2"),
            ("KRUST_LISTENERS", "PLAINTEXT://:19092,CONTROLLER://:19093"),
        ]))
        .expect("valid");
        let o = overrides_for(false, &e, &["log.dirs=/x".to_string()]);
        assert!(!o.iter().any(|s| s.starts_with("advertised.listeners=")));
        assert!(!o.iter().any(|s| s == "node.id=1"));
        assert!(o.contains(&"node.id=2".to_string()));
        assert_eq!(o.last().map(String::as_str), Some("log.dirs=/x"));
        assert!(o.contains(&"controller.listener.names=CONTROLLER".to_string()));
        // With a config file, no container defaults.
        let o = overrides_for(true, &e, &[]);
        assert_eq!(o.len(), 2);
    }

    #[test]
    fn container_defaults_are_a_valid_standalone_node() {
        let o = overrides_for(false, &EnvConfig::default(), &[]);
        let c = ServerConfig::load(None, &o).expect("valid");
        assert!(krust_server::format::is_standalone_node(&c));
        assert_eq!(
            c.broker_listener().map(|l| l.bind_address()).as_deref(),
            Some("0.0.0.0:9092")
        );
        assert_eq!(c.all_log_dirs(), vec![PathBuf::from("/var/lib/krust/data")]);
    }

    #[test]
    fn the_compose_settings_are_valid() {
        // What docker/compose.yaml gives krust-2.
        let e = from_env(env(&[
            ("KRUST_NODE_ID", "2"),
            ("KRUST_PROCESS_ROLES", "broker,controller"),
            (
                "KRUST_LISTENERS",
                "INTERNAL://:19092,EXTERNAL://:9092,CONTROLLER://:9093",
            ),
            (
                "KRUST_ADVERTISED_LISTENERS",
                "INTERNAL://krust-2:19092,EXTERNAL://localhost:9094,CONTROLLER://krust-2:9093",
            ),
            (
                "KRUST_LISTENER_SECURITY_PROTOCOL_MAP",
                "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("KRUST_INTER_BROKER_LISTENER_NAME", "EXTERNAL"),
            (
                "KRUST_CONTROLLER_QUORUM_VOTERS",
                "1@krust-1:9093,2@krust-2:9093,3@krust-3:9093",
            ),
            ("KRUST_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
            ("KRUST_CLUSTER_ID", "MkU3OEVBNTcwNTJENDM2Qg"),
        ]))
        .expect("valid");
        let c = ServerConfig::load(None, &overrides_for(false, &e, &[])).expect("valid config");
        assert_eq!(c.node_id, 2);
        assert_eq!(c.broker_listeners().len(), 2);
        assert_eq!(
            c.advertised_broker_listener()
                .map(|l| (l.host.as_str(), l.port)),
            Some(("localhost", 9094))
        );
        assert!(!krust_server::format::is_standalone_node(&c));
    }
}
