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
//!
//! Client quotas of users, client ids and IPs (`--entity-default` for the default of the
//! type): `--add-config producer_byte_rate=1048576` sends AlterClientQuotas; `--describe`
//! prints `Quota configs for user-principal 'X' are producer_byte_rate=1048576.0` (values
//! as Java prints a double).

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
const GROUP_RESOURCE: i8 = 32;
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
    /// Type of entity (topics/groups/brokers/users/clients/ips); users and clients may be given
    /// together, each followed by its --entity-name or --entity-default.
    #[arg(long = "entity-type", value_name = "entity type")]
    entity_type: Vec<String>,
    /// Name of entity (topic name/group id/broker id/user name/client id/ip).
    #[arg(long = "entity-name", value_name = "entity name")]
    entity_name: Vec<String>,
    /// Default entity name for brokers, users, clients or ips.
    #[arg(long = "entity-default", action = clap::ArgAction::Count)]
    entity_default: u8,
    /// The topic's name (same as --entity-type topics --entity-name X).
    #[arg(long, value_name = "topic")]
    topic: Option<String>,
    /// The broker's id (same as --entity-type brokers --entity-name X).
    #[arg(long, value_name = "broker id")]
    broker: Option<String>,
    /// The config defaults for all brokers.
    #[arg(long = "broker-defaults")]
    broker_defaults: bool,
    /// The user's principal name (same as --entity-type users --entity-name X).
    #[arg(long, value_name = "user")]
    user: Option<String>,
    /// The config defaults for all users.
    #[arg(long = "user-defaults")]
    user_defaults: bool,
    /// The client id (same as --entity-type clients --entity-name X).
    #[arg(long, value_name = "client")]
    client: Option<String>,
    /// The config defaults for all clients.
    #[arg(long = "client-defaults")]
    client_defaults: bool,
    /// The IP address (same as --entity-type ips --entity-name X).
    #[arg(long, value_name = "ip")]
    ip: Option<String>,
    /// The config defaults for all IPs.
    #[arg(long = "ip-defaults")]
    ip_defaults: bool,
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
    Groups,
    Brokers,
    Users,
    Clients,
    Ips,
}

impl EntityType {
    fn singular(self) -> &'static str {
        match self {
            EntityType::Topics => "topic",
            EntityType::Groups => "group",
            EntityType::Brokers => "broker",
            EntityType::Users => "user",
            EntityType::Clients => "client",
            EntityType::Ips => "ip",
        }
    }
    fn plural(self) -> &'static str {
        match self {
            EntityType::Topics => "topics",
            EntityType::Groups => "groups",
            EntityType::Brokers => "brokers",
            EntityType::Users => "users",
            EntityType::Clients => "clients",
            EntityType::Ips => "ips",
        }
    }
    fn resource(self) -> i8 {
        match self {
            EntityType::Topics => TOPIC_RESOURCE,
            EntityType::Groups => GROUP_RESOURCE,
            _ => BROKER_RESOURCE,
        }
    }
    /// The client quota entity type (user, client-id, ip), for the types that have one.
    fn quota_type(self) -> Option<&'static str> {
        match self {
            EntityType::Users => Some("user"),
            EntityType::Clients => Some("client-id"),
            EntityType::Ips => Some("ip"),
            _ => None,
        }
    }
}

/// What the command works on: the type and the name (`None`: all; `Some("")`: the default).
struct Entity {
    kind: EntityType,
    name: Option<String>,
    /// Client quotas of a user and a client id: the other part.
    other: Option<(EntityType, Option<String>)>,
}

/// `--entity-name` and `--entity-default` in the order given (a default as `""`), to pair
/// with the `--entity-type`s by position as Kafka's tool does.
fn entity_names(raw: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        if a == "--entity-default" {
            names.push(String::new());
        } else if a == "--entity-name" {
            if let Some(n) = it.next() {
                names.push(n.clone());
            }
        } else if let Some(n) = a.strip_prefix("--entity-name=") {
            names.push(n.to_string());
        }
    }
    names
}

pub fn run(raw: Vec<OsString>) -> ExitCode {
    let raw_args: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let joined = raw_args.join(" ");
    let args: Args = match common::parse_args("kafka-configs", raw) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let entity = match check_args(&args, &entity_names(&raw_args)) {
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

fn check_args(args: &Args, names: &[String]) -> anyhow::Result<Entity> {
    if usize::from(args.alter) + usize::from(args.describe) != 1 {
        bail!("Command must include exactly one action: --describe, --alter");
    }
    if args.describe && (args.add_config.is_some() || !args.delete_config.is_empty()) {
        bail!("Option \"[describe]\" can't be used with option \"[add-config]\" or \"[delete-config]\"");
    }
    // The shortcuts for client quota entities: (type, name, or "" for the default).
    let shortcut = |name: &Option<String>, defaults: bool| match (name, defaults) {
        (Some(n), _) => Some(n.clone()),
        (None, true) => Some(String::new()),
        (None, false) => None,
    };
    let user = shortcut(&args.user, args.user_defaults);
    let client = shortcut(&args.client, args.client_defaults);
    let ip = shortcut(&args.ip, args.ip_defaults);
    let quota_shortcuts: Vec<(EntityType, String)> = [
        (EntityType::Users, user),
        (EntityType::Clients, client),
        (EntityType::Ips, ip),
    ]
    .into_iter()
    .filter_map(|(k, n)| Some((k, n?)))
    .collect();
    let specific = args.topic.is_some()
        || args.broker.is_some()
        || args.broker_defaults
        || !quota_shortcuts.is_empty();
    if specific
        && (!args.entity_type.is_empty() || !args.entity_name.is_empty() || args.entity_default > 0)
    {
        bail!("--entity-{{type,name,default}} should not be used in conjunction with specific entity flags");
    }
    if !quota_shortcuts.is_empty()
        && (args.topic.is_some() || args.broker.is_some() || args.broker_defaults)
    {
        bail!("Only one entity may be named: users, clients and ips do not combine with topics or brokers");
    }
    let entity = if let Some(t) = &args.topic {
        Entity {
            kind: EntityType::Topics,
            name: Some(t.clone()),
            other: None,
        }
    } else if let Some(b) = &args.broker {
        Entity {
            kind: EntityType::Brokers,
            name: Some(b.clone()),
            other: None,
        }
    } else if args.broker_defaults {
        Entity {
            kind: EntityType::Brokers,
            name: Some(String::new()),
            other: None,
        }
    } else if let Some((kind, name)) = quota_shortcuts.first().cloned() {
        let other = match quota_shortcuts.get(1).cloned() {
            None => None,
            Some((EntityType::Clients, n))
                if kind == EntityType::Users && quota_shortcuts.len() == 2 =>
            {
                Some((EntityType::Clients, Some(n)))
            }
            Some(_) => bail!("Only 'users' and 'clients' entity types may be combined, each once"),
        };
        Entity {
            kind,
            name: Some(name),
            other,
        }
    } else {
        let parse = |t: &str| -> anyhow::Result<EntityType> {
            Ok(match t {
                "topics" => EntityType::Topics,
                "groups" => EntityType::Groups,
                "brokers" => EntityType::Brokers,
                "users" => EntityType::Users,
                "clients" => EntityType::Clients,
                "ips" => EntityType::Ips,
                other @ ("broker-loggers" | "client-metrics") => {
                    bail!("Entity type {other} is not supported by krust yet (supported: topics, groups, brokers, users, clients, ips)")
                }
                other => bail!(
                    "Invalid entity type {other}, the entity type must be one of topics, clients, users, brokers, ips, broker-loggers, client-metrics, groups with a --bootstrap-server or --bootstrap-controller argument"
                ),
            })
        };
        let kinds: Vec<EntityType> = args
            .entity_type
            .iter()
            .map(|t| parse(t))
            .collect::<anyhow::Result<_>>()?;
        if kinds.is_empty() {
            bail!("At least one entity type must be specified");
        }
        if names.len() > kinds.len() {
            bail!("--entity-name or --entity-default must be specified with each --entity-type");
        }
        let name_of = |i: usize| names.get(i).cloned();
        let other = match kinds.as_slice() {
            [_] => None,
            [EntityType::Users, EntityType::Clients] => Some((EntityType::Clients, name_of(1))),
            [EntityType::Clients, EntityType::Users] => Some((EntityType::Users, name_of(1))),
            _ => bail!("Only 'users' and 'clients' entity types may be combined, each once"),
        };
        if kinds[0] == EntityType::Topics && name_of(0).as_deref() == Some("") {
            bail!("--entity-default must not be specified with --describe of topics");
        }
        if kinds[0] == EntityType::Groups && name_of(0).as_deref() == Some("") {
            bail!("--entity-default must not be specified with --describe of groups");
        }
        Entity {
            kind: kinds[0],
            name: name_of(0),
            other,
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
        if entity.name.is_none() || entity.other.as_ref().is_some_and(|(_, n)| n.is_none()) {
            bail!(
                "An entity name must be specified with --alter of {}",
                entity.kind.plural()
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
    if entity.kind.quota_type().is_some() {
        if args.describe {
            describe_quotas(&mut client, entity).await?;
            // Users' SCRAM credentials follow (users alone; not the default user's).
            return match (entity.kind, entity.name.as_deref(), &entity.other) {
                (EntityType::Users, name, None) if name != Some("") => {
                    describe_users(&mut client, name).await
                }
                _ => Ok(()),
            };
        }
        if is_quota_alter(args)? {
            return alter_quotas(&mut client, args, entity).await;
        }
        if entity.kind != EntityType::Users
            || entity.name.as_deref() == Some("")
            || entity.other.is_some()
        {
            bail!("Invalid config(s): only the client quotas producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate (connection_creation_rate for ips) may be set here");
        }
        return {
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
        EntityType::Groups => 8,
        _ if name.is_empty() => 3,
        _ => 2,
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
            EntityType::Users | EntityType::Clients | EntityType::Ips => Vec::new(),
            EntityType::Groups => {
                // Every group, from each broker's coordinators.
                let md = client.metadata(Some(&[])).await?;
                let mut set = BTreeSet::new();
                for b in md.brokers.iter().map(|b| b.node_id.0) {
                    let conn = client.connection_to(b).await?;
                    let resp = conn
                        .send(&kafka_protocol::messages::ListGroupsRequest::default())
                        .await?;
                    set.extend(resp.groups.iter().map(|g| g.group_id.to_string()));
                }
                set.into_iter().collect()
            }
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

/// The keys of every `--delete-config` (each a comma-separated list).
fn delete_keys(args: &Args) -> Vec<String> {
    args.delete_config
        .iter()
        .flat_map(|d| d.split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect()
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
    let deletes = delete_keys(args);
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

/// The client quota keys.
const QUOTA_KEYS: [&str; 5] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
    "connection_creation_rate",
];

/// Whether `--alter` changes client quotas (not SCRAM credentials); mixing both is refused.
fn is_quota_alter(args: &Args) -> anyhow::Result<bool> {
    let mut keys: Vec<String> = match &args.add_config {
        Some(text) => parse_add_config(text)?
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
        None => Vec::new(),
    };
    keys.extend(delete_keys(args));
    let quotas = keys
        .iter()
        .filter(|k| QUOTA_KEYS.contains(&k.as_str()))
        .count();
    if quotas > 0 && quotas < keys.len() {
        bail!("Quota and SCRAM credential configs cannot be altered in one command");
    }
    Ok(quotas > 0)
}

/// A double as Java's `Double.toString` prints it: `1024.0`, `0.5`, `1.048576E7`.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if v == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') || s.contains("inf") || s.contains("NaN") {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Kafka's words for one part of a quota entity.
fn quota_part(entity_type: &str, name: Option<&str>) -> String {
    let label = match entity_type {
        "user" => "user-principal",
        other => other,
    };
    match name {
        Some(n) => format!("{label} '{n}'"),
        None => format!("the default {label}"),
    }
}

/// The quota entity's parts: (quota entity type, name: `None` all, `""` the default).
fn quota_parts(entity: &Entity) -> Vec<(&'static str, Option<String>)> {
    let mut parts: Vec<(&'static str, Option<String>)> = Vec::new();
    for (kind, name) in
        std::iter::once((entity.kind, entity.name.clone())).chain(entity.other.clone())
    {
        if let Some(t) = kind.quota_type() {
            parts.push((t, name));
        }
    }
    parts
}

/// The strict filter for the entity: each part's name, default (`""`), or any (`None`).
fn quota_filter(entity: &Entity) -> kafka_protocol::messages::DescribeClientQuotasRequest {
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
    let components = quota_parts(entity)
        .into_iter()
        .map(|(t, name)| {
            let component =
                ComponentData::default().with_entity_type(StrBytes::from_string(t.into()));
            match name.as_deref() {
                Some("") => component.with_match_type(1).with_match(None),
                Some(n) => component
                    .with_match_type(0)
                    .with_match(Some(StrBytes::from_string(n.to_string()))),
                None => component.with_match_type(2).with_match(None),
            }
        })
        .collect();
    kafka_protocol::messages::DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(true)
}

/// An entity's parts (type, name: `None` the default), in the order user, client-id, ip,
/// and its quotas, by key.
type EntityQuotas = (Vec<(String, Option<String>)>, Vec<(String, f64)>);

/// The quotas of the entities the filter matches, sorted by entity, each with its values.
async fn quotas(client: &mut Client, entity: &Entity) -> anyhow::Result<Vec<EntityQuotas>> {
    let resp = client.send_any(&quota_filter(entity)).await?;
    ClientError::check(resp.error_code, resp.error_message.as_ref())?;
    let mut out: Vec<EntityQuotas> = resp
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let rank = |t: &str| ["user", "client-id", "ip"].iter().position(|x| *x == t);
            let mut parts: Vec<(String, Option<String>)> = e
                .entity
                .into_iter()
                .map(|p| {
                    (
                        p.entity_type.to_string(),
                        p.entity_name.map(|n| n.to_string()),
                    )
                })
                .collect();
            parts.sort_by_key(|(t, _)| rank(t));
            let mut values: Vec<(String, f64)> = e
                .values
                .into_iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (parts, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

async fn describe_quotas(client: &mut Client, entity: &Entity) -> anyhow::Result<()> {
    for (parts, values) in quotas(client, entity).await? {
        let shown: Vec<String> = values
            .iter()
            .map(|(k, v)| format!("{k}={}", java_double(*v)))
            .collect();
        let who: Vec<String> = parts
            .iter()
            .map(|(t, n)| quota_part(t, n.as_deref()))
            .collect();
        outln!(
            "Quota configs for {} are {}",
            who.join(", "),
            shown.join(", ")
        );
    }
    Ok(())
}

async fn alter_quotas(client: &mut Client, args: &Args, entity: &Entity) -> anyhow::Result<()> {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    let name = entity.name.clone().unwrap_or_default();
    let mut ops = Vec::new();
    if let Some(text) = &args.add_config {
        for (key, value) in parse_add_config(text)? {
            let v: f64 = value.trim().parse().map_err(|_| {
                anyhow!("Cannot parse quota configuration value for {key}: {value}")
            })?;
            ops.push(
                OpData::default()
                    .with_key(StrBytes::from_string(key))
                    .with_value(v),
            );
        }
    }
    let deletes = delete_keys(args);
    if !deletes.is_empty() {
        // Kafka fails the command if a quota to delete is not currently set.
        let current: BTreeSet<String> = quotas(client, entity)
            .await?
            .into_iter()
            .flat_map(|(_, values)| values.into_iter().map(|(k, _)| k))
            .collect();
        let invalid: Vec<&str> = deletes
            .iter()
            .filter(|d| !current.contains(*d))
            .map(String::as_str)
            .collect();
        if !invalid.is_empty() {
            bail!("Invalid config(s): {}", invalid.join(","));
        }
        ops.extend(deletes.into_iter().map(|k| {
            OpData::default()
                .with_key(StrBytes::from_string(k))
                .with_remove(true)
        }));
    }
    let req = kafka_protocol::messages::AlterClientQuotasRequest::default().with_entries(vec![
        EntryData::default()
            .with_entity(
                quota_parts(entity)
                    .into_iter()
                    .map(|(t, n)| {
                        let n = n.unwrap_or_default();
                        EntityData::default()
                            .with_entity_type(StrBytes::from_string(t.to_string()))
                            .with_entity_name((!n.is_empty()).then(|| StrBytes::from_string(n)))
                    })
                    .collect(),
            )
            .with_ops(ops),
    ]);
    let resp = client.send_any(&req).await?;
    for e in &resp.entries {
        ClientError::check(e.error_code, e.error_message.as_ref())?;
    }
    if name.is_empty() {
        outln!(
            "Completed updating default config for {} in the cluster.",
            entity.kind.plural()
        );
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
        Some(m) if m.scram_type().is_some() => Ok(m),
        _ => bail!(
            "Invalid config(s): {key} (a user's configs are its SCRAM credentials, \
             SCRAM-SHA-256 and SCRAM-SHA-512, and its client quotas)"
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
    fn doubles_print_as_java_prints_them() {
        assert_eq!(java_double(1024.0), "1024.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(200.0), "200.0");
        assert_eq!(java_double(10485760.0), "1.048576E7");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(0.0001), "1.0E-4");
    }

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
