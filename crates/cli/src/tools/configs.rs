//! `krust configs` (kafka-configs.sh, Kafka's `ConfigCommand`) for topics, brokers, and
//! users' SCRAM credentials.
//!
//! `--describe` prints `Dynamic configs for topic X are:` (`All configs ...` with `--all`,
//! `Default configs for brokers in the cluster are:` for the broker default) and then one
//! `  name=value sensitive=false synonyms={SOURCE:name=value, ...}` line per config, sorted
//! by name. `--alter` uses IncrementalAlterConfigs and prints
//! `Completed updating config for topic X.`.
//!
//! For users, `--add-config 'SCRAM-SHA-256=[iterations=8192,password=secret]'` salts the
//! password here and sends AlterUserScramCredentials; `--delete-config SCRAM-SHA-256`
//! removes a credential; `--describe` prints
//! `SCRAM credential configs for user-principal 'X' are SCRAM-SHA-256=iterations=8192`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Parser;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeUserScramCredentialsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use krust_client::{Client, ClientError, Mechanism};
use krust_protocol::sasl::{self, SCRAM_MIN_ITERATIONS};
use krust_protocol::ErrorCode;

use super::common::{self, ConnectArgs};

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-configs",
    about = "Change configs for topics and brokers.",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Alter the configuration for the entity.
    #[arg(long)]
    alter: bool,
    /// List configs for the given entity.
    #[arg(long)]
    describe: bool,
    /// List all configs for the given entity, including static configs if available.
    #[arg(long)]
    all: bool,
    /// Type of entity (topics/brokers/users).
    #[arg(long = "entity-type", value_name = "entity type")]
    entity_type: Option<String>,
    /// Name of entity (topic name/broker id/user name).
    #[arg(long = "entity-name", value_name = "entity name")]
    entity_name: Option<String>,
    /// Default entity name for brokers (the cluster-wide broker default).
    #[arg(long = "entity-default")]
    entity_default: bool,
    /// The topic's name (same as --entity-type topics --entity-name X).
    #[arg(long, value_name = "topic")]
    topic: Option<String>,
    /// The broker's id (same as --entity-type brokers --entity-name X).
    #[arg(long, value_name = "broker id")]
    broker: Option<String>,
    /// The config defaults for all brokers.
    #[arg(long = "broker-defaults")]
    broker_defaults: bool,
    /// Key-value pairs of configs to add: 'k1=v1,k2=[v1,v2,v2],k3=v3'.
    #[arg(long = "add-config", value_name = "k=v,...")]
    add_config: Option<String>,
    /// Config keys to remove: 'k1,k2'.
    #[arg(long = "delete-config", value_name = "k1,k2")]
    delete_config: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntityType {
    Topics,
    Brokers,
    Users,
}

impl EntityType {
    fn singular(self) -> &'static str {
        match self {
            EntityType::Topics => "topic",
            EntityType::Brokers => "broker",
            EntityType::Users => "user",
        }
    }
    fn resource(self) -> i8 {
        match self {
            EntityType::Topics => TOPIC_RESOURCE,
            EntityType::Brokers | EntityType::Users => BROKER_RESOURCE,
        }
    }
}

/// What the command works on: the type and the name (`None`: all; `Some("")`: the default).
struct Entity {
    kind: EntityType,
    name: Option<String>,
}

pub fn run(raw: Vec<OsString>) -> ExitCode {
    let joined = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let args: Args = match common::parse_args("kafka-configs", raw) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let entity = match check_args(&args) {
        Ok(e) => e,
        Err(e) => return common::fail("", &e),
    };
    match common::block_on(execute(&args, &entity)).and_then(|r| r) {
        Ok(()) => {
            common::flush_stdout();
            ExitCode::SUCCESS
        }
        Err(e) => {
            common::flush_stdout();
            common::fail(
                &format!("Error while executing config command with args '{joined}': "),
                &e,
            )
        }
    }
}

fn check_args(args: &Args) -> anyhow::Result<Entity> {
    if usize::from(args.alter) + usize::from(args.describe) != 1 {
        bail!("Command must include exactly one action: --describe, --alter");
    }
    if args.describe && (args.add_config.is_some() || !args.delete_config.is_empty()) {
        bail!("Option \"[describe]\" can't be used with option \"[add-config]\" or \"[delete-config]\"");
    }
    let specific = args.topic.is_some() || args.broker.is_some() || args.broker_defaults;
    if specific && (args.entity_type.is_some() || args.entity_name.is_some() || args.entity_default)
    {
        bail!("--entity-{{type,name,default}} should not be used in conjunction with specific entity flags");
    }
    let entity = if let Some(t) = &args.topic {
        Entity {
            kind: EntityType::Topics,
            name: Some(t.clone()),
        }
    } else if let Some(b) = &args.broker {
        Entity {
            kind: EntityType::Brokers,
            name: Some(b.clone()),
        }
    } else if args.broker_defaults {
        Entity {
            kind: EntityType::Brokers,
            name: Some(String::new()),
        }
    } else {
        let kind = match args.entity_type.as_deref() {
            Some("topics") => EntityType::Topics,
            Some("brokers") => EntityType::Brokers,
            Some("users") => EntityType::Users,
            Some(other @ ("clients" | "ips" | "broker-loggers" | "client-metrics" | "groups")) => {
                bail!("Entity type {other} is not supported by krust yet (supported: topics, brokers, users)")
            }
            Some(other) => bail!(
                "Invalid entity type {other}, the entity type must be one of topics, clients, users, brokers, ips, broker-loggers, client-metrics, groups with a --bootstrap-server or --bootstrap-controller argument"
            ),
            None => bail!("At least one entity type must be specified"),
        };
        if args.entity_default && args.entity_name.is_some() {
            bail!("--entity-default can't be used with --entity-name");
        }
        if args.entity_default && kind == EntityType::Topics {
            bail!("--entity-default must not be specified with --describe of topics");
        }
        if args.entity_default && kind == EntityType::Users {
            bail!("--entity-default is for user quotas, which krust does not implement");
        }
        Entity {
            kind,
            name: if args.entity_default {
                Some(String::new())
            } else {
                args.entity_name.clone()
            },
        }
    };
    if entity.kind == EntityType::Brokers {
        if let Some(n) = entity.name.as_deref().filter(|n| !n.is_empty()) {
            if n.parse::<i32>().is_err() {
                bail!(
                    "The entity name for brokers must be a valid integer broker id, but it is: {n}"
                );
            }
        }
    }
    if args.alter {
        if entity.name.is_none() {
            bail!(
                "An entity name must be specified with --alter of {}",
                match entity.kind {
                    EntityType::Topics => "topics",
                    EntityType::Brokers => "brokers",
                    EntityType::Users => "users",
                }
            );
        }
        if args.add_config.is_none() && args.delete_config.is_empty() {
            bail!("At least one of --add-config or --delete-config must be specified with --alter");
        }
    }
    Ok(entity)
}

async fn execute(args: &Args, entity: &Entity) -> anyhow::Result<()> {
    let mut client = args.connect.connect("krust-configs").await?;
    if entity.kind == EntityType::Users {
        return if args.describe {
            describe_users(&mut client, entity.name.as_deref()).await
        } else {
            alter_user(
                &mut client,
                args,
                entity.name.as_deref().unwrap_or_default(),
            )
            .await
        };
    }
    if args.describe {
        describe(&mut client, entity, args.all).await
    } else {
        alter(&mut client, args, entity).await
    }
}

/// Kafka's `ConfigEntry.ConfigSource` name of a wire config source.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "DYNAMIC_CLIENT_METRICS_CONFIG",
        8 => "DYNAMIC_GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// The source that marks a dynamic config of this entity.
fn dynamic_source(kind: EntityType, name: &str) -> i8 {
    match kind {
        EntityType::Topics => 1,
        EntityType::Brokers | EntityType::Users if name.is_empty() => 3,
        EntityType::Brokers | EntityType::Users => 2,
    }
}

async fn describe_one(
    client: &mut Client,
    kind: EntityType,
    name: &str,
    synonyms: bool,
) -> anyhow::Result<Vec<DescribeConfigsResourceResult>> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(synonyms)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind.resource())
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
    let resp = client.send_any(&req).await?;
    let r = resp.results.into_iter().next().ok_or_else(|| {
        anyhow!(
            "the broker returned no result for {} {name}",
            kind.singular()
        )
    })?;
    ClientError::check(r.error_code, r.error_message.as_ref())?;
    let mut configs = r.configs;
    configs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    Ok(configs)
}

async fn describe(client: &mut Client, entity: &Entity, all: bool) -> anyhow::Result<()> {
    let names: Vec<String> = match &entity.name {
        Some(n) => vec![n.clone()],
        None => match entity.kind {
            EntityType::Topics => {
                let md = client.metadata(None).await?;
                let set: BTreeSet<String> = md
                    .topics
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
                    .collect();
                set.into_iter().collect()
            }
            EntityType::Users => return describe_users(client, None).await,
            EntityType::Brokers => {
                let resp = client.send_any(&DescribeClusterRequest::default()).await?;
                ClientError::check(resp.error_code, resp.error_message.as_ref())?;
                let mut ids: Vec<String> = resp
                    .brokers
                    .iter()
                    .map(|b| b.broker_id.0.to_string())
                    .collect();
                ids.push(String::new());
                ids
            }
        },
    };
    for name in names {
        if entity.kind == EntityType::Brokers && name.is_empty() {
            outln!("Default configs for brokers in the cluster are:");
        } else {
            let which = if all { "All" } else { "Dynamic" };
            outln!("{which} configs for {} {name} are:", entity.kind.singular());
        }
        let wanted = dynamic_source(entity.kind, &name);
        for c in describe_one(client, entity.kind, &name, true).await? {
            if !all && c.config_source != wanted {
                continue;
            }
            let synonyms = c
                .synonyms
                .iter()
                .map(|s| {
                    format!(
                        "{}:{}={}",
                        source_name(s.source),
                        s.name,
                        s.value.as_deref().unwrap_or("null")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            outln!(
                "  {}={} sensitive={} synonyms={{{synonyms}}}",
                c.name,
                c.value.as_deref().unwrap_or("null"),
                c.is_sensitive
            );
        }
    }
    Ok(())
}

/// Splits `k1=v1,k2=[a,b],k3=v3` into pairs; brackets group values containing commas.
pub fn parse_add_config(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in text.chars() {
        match ch {
            '[' => {
                depth += 1;
                cur.push(ch);
            }
            ']' => {
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    let mut out = Vec::new();
    for item in items.iter().filter(|i| !i.trim().is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            bail!("requirement failed: Invalid entity config: all configs to be added must be in the format \"key=val\" or \"key=[val1,val2]\".");
        };
        let v = v.trim();
        let v = v
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(v);
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

async fn alter(client: &mut Client, args: &Args, entity: &Entity) -> anyhow::Result<()> {
    let name = entity.name.clone().unwrap_or_default();
    let adds = match &args.add_config {
        Some(text) => parse_add_config(text)?,
        None => Vec::new(),
    };
    let deletes: Vec<String> = args
        .delete_config
        .iter()
        .flat_map(|d| d.split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect();
    if !deletes.is_empty() {
        // Kafka fails the command if a config to delete is not currently set.
        let wanted = dynamic_source(entity.kind, &name);
        let current: BTreeSet<String> = describe_one(client, entity.kind, &name, false)
            .await?
            .into_iter()
            .filter(|c| c.config_source == wanted)
            .map(|c| c.name.to_string())
            .collect();
        let invalid: Vec<&str> = deletes
            .iter()
            .filter(|d| !current.contains(*d))
            .map(String::as_str)
            .collect();
        if !invalid.is_empty() {
            bail!("Invalid config(s): {}", invalid.join(","));
        }
    }
    let mut ops: Vec<AlterableConfig> = adds
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    ops.extend(deletes.iter().map(|k| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(OP_DELETE)
            .with_value(None)
    }));
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(entity.kind.resource())
            .with_resource_name(StrBytes::from_string(name.clone()))
            .with_configs(ops),
    ]);
    let resp = client.send_any(&req).await?;
    for r in &resp.responses {
        ClientError::check(r.error_code, r.error_message.as_ref())?;
    }
    if entity.kind == EntityType::Brokers && name.is_empty() {
        outln!("Completed updating default config for brokers in the cluster.");
    } else {
        outln!(
            "Completed updating config for {} {name}.",
            entity.kind.singular()
        );
    }
    Ok(())
}

/// Prints users' SCRAM credentials: one user, or every user that has one.
async fn describe_users(client: &mut Client, user: Option<&str>) -> anyhow::Result<()> {
    let req = DescribeUserScramCredentialsRequest::default().with_users(
        user.map(|u| vec![UserName::default().with_name(StrBytes::from_string(u.to_string()))]),
    );
    let resp = client.send_any(&req).await?;
    ClientError::check(resp.error_code, resp.error_message.as_ref())?;
    for r in &resp.results {
        // A user without credentials has nothing to print.
        if r.error_code == ErrorCode::ResourceNotFound.code() {
            continue;
        }
        ClientError::check(r.error_code, r.error_message.as_ref())?;
        let creds: Vec<String> = r
            .credential_infos
            .iter()
            .map(|c| {
                let mech = Mechanism::from_scram_type(c.mechanism)
                    .map_or_else(|| format!("UNKNOWN({})", c.mechanism), |m| m.to_string());
                format!("{mech}=iterations={}", c.iterations)
            })
            .collect();
        outln!(
            "SCRAM credential configs for user-principal '{}' are {}",
            r.user,
            creds.join(", ")
        );
    }
    Ok(())
}

/// The SCRAM mechanism a user config key names.
fn scram_key(key: &str) -> anyhow::Result<Mechanism> {
    match Mechanism::parse(key) {
        Some(m) if m != Mechanism::Plain => Ok(m),
        _ => bail!(
            "Invalid config(s): {key} (krust's user configs are the SCRAM credentials \
             SCRAM-SHA-256 and SCRAM-SHA-512; quotas are not implemented)"
        ),
    }
}

/// `iterations=N,password=P` of a SCRAM credential (iterations default 4096).
fn scram_value(key: &str, value: &str) -> anyhow::Result<(i32, String)> {
    let mut iterations = SCRAM_MIN_ITERATIONS;
    let mut password = None;
    for part in value.split(',') {
        match part.split_once('=') {
            Some(("iterations", n)) => {
                iterations = n
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("Invalid iterations '{n}' for {key}: not a number"))?;
            }
            Some(("password", p)) => password = Some(p.to_string()),
            _ => {
                bail!("Invalid credential for {key}: expected iterations=N and password=P")
            }
        }
    }
    let password = password.ok_or_else(|| anyhow!("A password must be given for {key}"))?;
    Ok((iterations, password))
}

async fn alter_user(client: &mut Client, args: &Args, user: &str) -> anyhow::Result<()> {
    let mut req = AlterUserScramCredentialsRequest::default();
    if let Some(text) = &args.add_config {
        for (key, value) in parse_add_config(text)? {
            let mech = scram_key(&key)?;
            let (iterations, password) = scram_value(&key, &value)?;
            let salt = sasl::random_salt();
            let salted = sasl::salted_password(mech, password.as_bytes(), &salt, iterations);
            req.upsertions.push(
                ScramCredentialUpsertion::default()
                    .with_name(StrBytes::from_string(user.to_string()))
                    .with_mechanism(mech.scram_type().unwrap_or_default())
                    .with_iterations(iterations)
                    .with_salt(salt.into())
                    .with_salted_password(salted.into()),
            );
        }
    }
    for key in args
        .delete_config
        .iter()
        .flat_map(|d| d.split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let mech = scram_key(key)?;
        req.deletions.push(
            ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(user.to_string()))
                .with_mechanism(mech.scram_type().unwrap_or_default()),
        );
    }
    let resp = client.send_any(&req).await?;
    for r in &resp.results {
        ClientError::check(r.error_code, r.error_message.as_ref())?;
    }
    outln!("Completed updating config for user {user}.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_groups_brackets() {
        let v = parse_add_config("a=1,b=[x,y],c=z").expect("parse");
        assert_eq!(
            v,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x,y".to_string()),
                ("c".to_string(), "z".to_string())
            ]
        );
        assert!(parse_add_config("novalue").is_err());
    }
}
