//! Topic-level configuration: the keys Kafka knows, their validation, how a topic's effective
//! value is derived from its overrides and the broker's synonyms, and DescribeConfigs entries.
//!
//! Each topic key falls back to one or more broker keys ("synonyms", in Kafka's order): for
//! example `retention.ms` takes `log.retention.ms`, then `log.retention.minutes`, then
//! `log.retention.hours`. A topic override always wins.

use std::collections::BTreeMap;

use crate::config::ServerConfig;

/// Kafka's `INVALID_CONFIG` error code.
pub const INVALID_CONFIG: i16 = 40;

/// DescribeConfigs `ConfigSource` values (Kafka's `DescribeConfigsResponse.ConfigSource`).
pub const SOURCE_UNKNOWN: i8 = 0;
pub const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER_CONFIG: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
pub const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
pub const SOURCE_DEFAULT_CONFIG: i8 = 5;
pub const SOURCE_DYNAMIC_BROKER_LOGGER_CONFIG: i8 = 6;

/// Kafka's `ConfigDef.Type` as DescribeConfigs (v3+) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    /// The wire value.
    pub fn as_i8(self) -> i8 {
        self as i8
    }

    /// The name Kafka uses in messages ("Not a number of type LONG").
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// One DescribeConfigs result entry (topic or broker resource).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntryDesc {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
    pub config_type: i8,
    pub documentation: Option<String>,
    /// `(name, value, source)`, most specific first.
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

/// A rejected topic config; maps to `INVALID_CONFIG` (40).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TopicConfigError {
    pub message: String,
}

impl TopicConfigError {
    fn new(message: impl Into<String>) -> Self {
        TopicConfigError {
            message: message.into(),
        }
    }

    /// Always `INVALID_CONFIG`.
    pub fn error_code(&self) -> i16 {
        INVALID_CONFIG
    }
}

#[derive(Debug, Clone, Copy)]
enum Validator {
    None,
    AtLeast(i64),
    Between(i64, i64),
    DoubleBetween(f64, f64),
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    ThrottledReplicas,
    GzipLevel,
}

/// A broker synonym and the factor that turns its unit into the topic key's unit
/// (`log.retention.hours` → milliseconds is 3 600 000). A factor of 1 passes the value through.
type Synonym = (&'static str, i64);

struct TopicKeyDef {
    name: &'static str,
    ty: ConfigType,
    /// Kafka's topic default, used when no broker synonym has a value.
    default: &'static str,
    synonyms: &'static [Synonym],
    validator: Validator,
    doc: &'static str,
}

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
const LONG_MAX: &str = "9223372036854775807";

const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Every topic config Kafka accepts, sorted by name.
const TOPIC_KEYS: &[TopicKeyDef] = &[
    TopicKeyDef {
        name: "cleanup.policy",
        ty: ConfigType::List,
        default: "delete",
        synonyms: &[("log.cleanup.policy", 1)],
        validator: Validator::ListOf(CLEANUP_POLICIES),
        doc: "How old log segments are discarded: delete them by age/size (delete); compact \
              keeps them (this broker does not compact user topics).",
    },
    TopicKeyDef {
        name: "compression.gzip.level",
        ty: ConfigType::Int,
        default: "-1",
        synonyms: &[("compression.gzip.level", 1)],
        validator: Validator::GzipLevel,
        doc: "Level used when the broker recompresses with gzip (-1 for the codec default).",
    },
    TopicKeyDef {
        name: "compression.lz4.level",
        ty: ConfigType::Int,
        default: "9",
        synonyms: &[("compression.lz4.level", 1)],
        validator: Validator::Between(1, 17),
        doc: "Level used when the broker recompresses with lz4.",
    },
    TopicKeyDef {
        name: "compression.type",
        ty: ConfigType::String,
        default: "producer",
        synonyms: &[("compression.type", 1)],
        validator: Validator::OneOf(COMPRESSION_TYPES),
        doc: "Codec the stored batches use; 'producer' (the only value this broker \
              supports) keeps whatever the producer sent.",
    },
    TopicKeyDef {
        name: "compression.zstd.level",
        ty: ConfigType::Int,
        default: "3",
        synonyms: &[("compression.zstd.level", 1)],
        validator: Validator::Between(-131072, 22),
        doc: "Level used when the broker recompresses with zstd.",
    },
    TopicKeyDef {
        name: "delete.retention.ms",
        ty: ConfigType::Long,
        default: "86400000",
        synonyms: &[("log.cleaner.delete.retention.ms", 1)],
        validator: Validator::AtLeast(0),
        doc: "How long tombstones stay readable in a compacted topic.",
    },
    TopicKeyDef {
        name: "file.delete.delay.ms",
        ty: ConfigType::Long,
        default: "60000",
        synonyms: &[("log.segment.delete.delay.ms", 1)],
        validator: Validator::AtLeast(0),
        doc: "Delay between marking a segment deleted and removing its files.",
    },
    TopicKeyDef {
        name: "flush.messages",
        ty: ConfigType::Long,
        default: LONG_MAX,
        synonyms: &[("log.flush.interval.messages", 1)],
        validator: Validator::AtLeast(1),
        doc: "Force an fsync after this many appended messages.",
    },
    TopicKeyDef {
        name: "flush.ms",
        ty: ConfigType::Long,
        default: LONG_MAX,
        synonyms: &[
            ("log.flush.interval.ms", 1),
            ("log.flush.scheduler.interval.ms", 1),
        ],
        validator: Validator::AtLeast(0),
        doc: "Force an fsync when unflushed data is older than this many milliseconds.",
    },
    TopicKeyDef {
        name: "follower.replication.throttled.replicas",
        ty: ConfigType::List,
        default: "",
        synonyms: &[],
        validator: Validator::ThrottledReplicas,
        doc: "Replicas throttled on the follower side: partition:broker pairs or '*'.",
    },
    TopicKeyDef {
        name: "index.interval.bytes",
        ty: ConfigType::Int,
        default: "4096",
        synonyms: &[("log.index.interval.bytes", 1)],
        validator: Validator::AtLeast(0),
        doc: "Bytes appended between two offset-index entries.",
    },
    TopicKeyDef {
        name: "leader.replication.throttled.replicas",
        ty: ConfigType::List,
        default: "",
        synonyms: &[],
        validator: Validator::ThrottledReplicas,
        doc: "Replicas throttled on the leader side: partition:broker pairs or '*'.",
    },
    TopicKeyDef {
        name: "local.retention.bytes",
        ty: ConfigType::Long,
        default: "-2",
        synonyms: &[("log.local.retention.bytes", 1)],
        validator: Validator::AtLeast(-2),
        doc: "Local size limit for tiered topics (-2 means use retention.bytes).",
    },
    TopicKeyDef {
        name: "local.retention.ms",
        ty: ConfigType::Long,
        default: "-2",
        synonyms: &[("log.local.retention.ms", 1)],
        validator: Validator::AtLeast(-2),
        doc: "Local time limit for tiered topics (-2 means use retention.ms).",
    },
    TopicKeyDef {
        name: "max.compaction.lag.ms",
        ty: ConfigType::Long,
        default: LONG_MAX,
        synonyms: &[("log.cleaner.max.compaction.lag.ms", 1)],
        validator: Validator::AtLeast(1),
        doc: "Longest time a record may stay uncompacted.",
    },
    TopicKeyDef {
        name: "max.message.bytes",
        ty: ConfigType::Int,
        default: "1048588",
        synonyms: &[("message.max.bytes", 1)],
        validator: Validator::AtLeast(0),
        doc: "Largest record batch the topic accepts, after compression.",
    },
    TopicKeyDef {
        name: "message.downconversion.enable",
        ty: ConfigType::Boolean,
        default: "true",
        synonyms: &[("log.message.downconversion.enable", 1)],
        validator: Validator::None,
        doc: "Whether fetches by old clients may be down-converted (accepted, no effect in krust).",
    },
    TopicKeyDef {
        name: "message.timestamp.after.max.ms",
        ty: ConfigType::Long,
        default: "3600000",
        synonyms: &[("log.message.timestamp.after.max.ms", 1)],
        validator: Validator::AtLeast(0),
        doc: "How far in the future a CreateTime timestamp may be.",
    },
    TopicKeyDef {
        name: "message.timestamp.before.max.ms",
        ty: ConfigType::Long,
        default: LONG_MAX,
        synonyms: &[("log.message.timestamp.before.max.ms", 1)],
        validator: Validator::AtLeast(0),
        doc: "How far in the past a CreateTime timestamp may be.",
    },
    TopicKeyDef {
        name: "message.timestamp.type",
        ty: ConfigType::String,
        default: "CreateTime",
        synonyms: &[("log.message.timestamp.type", 1)],
        validator: Validator::OneOf(TIMESTAMP_TYPES),
        doc: "Whether record timestamps come from the producer or the broker's append time.",
    },
    TopicKeyDef {
        name: "min.cleanable.dirty.ratio",
        ty: ConfigType::Double,
        default: "0.5",
        synonyms: &[("log.cleaner.min.cleanable.ratio", 1)],
        validator: Validator::DoubleBetween(0.0, 1.0),
        doc: "Share of uncompacted log that makes a partition eligible for cleaning.",
    },
    TopicKeyDef {
        name: "min.compaction.lag.ms",
        ty: ConfigType::Long,
        default: "0",
        synonyms: &[("log.cleaner.min.compaction.lag.ms", 1)],
        validator: Validator::AtLeast(0),
        doc: "Shortest time a record stays uncompacted.",
    },
    TopicKeyDef {
        name: "min.insync.replicas",
        ty: ConfigType::Int,
        default: "1",
        synonyms: &[("min.insync.replicas", 1)],
        validator: Validator::AtLeast(1),
        doc: "Replicas that must acknowledge an acks=all write.",
    },
    TopicKeyDef {
        name: "preallocate",
        ty: ConfigType::Boolean,
        default: "false",
        synonyms: &[("log.preallocate", 1)],
        validator: Validator::None,
        doc: "Whether segment files are preallocated on disk.",
    },
    TopicKeyDef {
        name: "remote.log.copy.disable",
        ty: ConfigType::Boolean,
        default: "false",
        synonyms: &[],
        validator: Validator::None,
        doc: "Stop copying segments to remote storage (tiered storage, unsupported by krust).",
    },
    TopicKeyDef {
        name: "remote.log.delete.on.disable",
        ty: ConfigType::Boolean,
        default: "false",
        synonyms: &[],
        validator: Validator::None,
        doc: "Delete remote data when tiering is disabled (tiered storage, unsupported by krust).",
    },
    TopicKeyDef {
        name: "remote.storage.enable",
        ty: ConfigType::Boolean,
        default: "false",
        synonyms: &[],
        validator: Validator::None,
        doc: "Tiered storage for the topic; krust does not support it.",
    },
    TopicKeyDef {
        name: "retention.bytes",
        ty: ConfigType::Long,
        default: "-1",
        synonyms: &[("log.retention.bytes", 1)],
        validator: Validator::None,
        doc: "Size a partition may grow to before old segments are deleted (-1: no limit).",
    },
    TopicKeyDef {
        name: "retention.ms",
        ty: ConfigType::Long,
        default: "604800000",
        synonyms: &[
            ("log.retention.ms", 1),
            ("log.retention.minutes", MINUTE_MS),
            ("log.retention.hours", HOUR_MS),
        ],
        validator: Validator::AtLeast(-1),
        doc: "Age after which old segments are deleted (-1: keep forever).",
    },
    TopicKeyDef {
        name: "segment.bytes",
        ty: ConfigType::Int,
        default: "1073741824",
        synonyms: &[("log.segment.bytes", 1)],
        validator: Validator::AtLeast(1024 * 1024),
        doc: "Size at which the active segment is rolled.",
    },
    TopicKeyDef {
        name: "segment.index.bytes",
        ty: ConfigType::Int,
        default: "10485760",
        synonyms: &[("log.index.size.max.bytes", 1)],
        validator: Validator::AtLeast(4),
        doc: "Maximum size of a segment's offset and time indexes.",
    },
    TopicKeyDef {
        name: "segment.jitter.ms",
        ty: ConfigType::Long,
        default: "0",
        synonyms: &[
            ("log.roll.jitter.ms", 1),
            ("log.roll.jitter.hours", HOUR_MS),
        ],
        validator: Validator::AtLeast(0),
        doc: "Random jitter subtracted from segment.ms to spread segment rolls.",
    },
    TopicKeyDef {
        name: "segment.ms",
        ty: ConfigType::Long,
        default: "604800000",
        synonyms: &[("log.roll.ms", 1), ("log.roll.hours", HOUR_MS)],
        validator: Validator::AtLeast(1),
        doc: "Age at which the active segment is rolled even if not full.",
    },
    TopicKeyDef {
        name: "unclean.leader.election.enable",
        ty: ConfigType::Boolean,
        default: "false",
        synonyms: &[("unclean.leader.election.enable", 1)],
        validator: Validator::None,
        doc: "Whether an out-of-sync replica may become leader, at the risk of data loss.",
    },
];

/// Kafka's defaults of the broker synonyms that krust itself does not parse.
const UNIMPLEMENTED_BROKER_SYNONYM_DEFAULTS: &[(&str, Option<&str>)] = &[
    ("compression.gzip.level", Some("-1")),
    ("compression.lz4.level", Some("9")),
    ("compression.type", Some("producer")),
    ("compression.zstd.level", Some("3")),
    ("log.cleaner.delete.retention.ms", Some("86400000")),
    ("log.cleaner.max.compaction.lag.ms", Some(LONG_MAX)),
    ("log.cleaner.min.cleanable.ratio", Some("0.5")),
    ("log.cleaner.min.compaction.lag.ms", Some("0")),
    ("log.local.retention.bytes", Some("-2")),
    ("log.local.retention.ms", Some("-2")),
    ("log.message.downconversion.enable", Some("true")),
    ("log.message.timestamp.after.max.ms", Some("3600000")),
    ("log.message.timestamp.before.max.ms", Some(LONG_MAX)),
    ("log.preallocate", Some("false")),
    ("log.roll.jitter.hours", Some("0")),
    ("log.roll.jitter.ms", None),
    ("log.segment.delete.delay.ms", Some("60000")),
];

fn topic_key(name: &str) -> Option<&'static TopicKeyDef> {
    TOPIC_KEYS.iter().find(|d| d.name == name)
}

/// All topic config names krust accepts, sorted.
pub fn topic_config_names() -> impl Iterator<Item = &'static str> {
    TOPIC_KEYS.iter().map(|d| d.name)
}

/// Whether `name` is a known topic config.
pub fn is_topic_config(name: &str) -> bool {
    topic_key(name).is_some()
}

/// Whether a topic config holds a comma-separated list (for incremental APPEND/SUBTRACT).
pub fn is_list_config(name: &str) -> bool {
    topic_key(name).is_some_and(|d| d.ty == ConfigType::List)
}

/// The Kafka config type of a topic config.
pub fn topic_config_type(name: &str) -> Option<ConfigType> {
    topic_key(name).map(|d| d.ty)
}

/// The default of a broker key that is a synonym of a topic config, as Kafka defines it.
fn broker_synonym_default(name: &str) -> Option<&'static str> {
    if let Some(d) = crate::config::broker_key_default(name) {
        return d;
    }
    UNIMPLEMENTED_BROKER_SYNONYM_DEFAULTS
        .iter()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| *v)
}

fn invalid(value: &str, key: &str, reason: impl std::fmt::Display) -> String {
    format!("Invalid value {value} for configuration {key}: {reason}")
}

fn check_range(value: &str, key: &str, n: i64, v: Validator) -> Result<(), String> {
    match v {
        Validator::AtLeast(min) if n < min => {
            Err(invalid(value, key, format!("Value must be at least {min}")))
        }
        Validator::Between(min, _) if n < min => {
            Err(invalid(value, key, format!("Value must be at least {min}")))
        }
        Validator::Between(_, max) if n > max => Err(invalid(
            value,
            key,
            format!("Value must be no more than {max}"),
        )),
        Validator::GzipLevel if n != -1 && !(1..=9).contains(&n) => Err(invalid(
            value,
            key,
            "Value must be -1 (codec default) or between 1 and 9",
        )),
        _ => Ok(()),
    }
}

/// Parses a Kafka boolean: `true` or `false`, case-insensitively, as Kafka's ConfigDef does.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Splits a Kafka LIST value: comma separated, items trimmed; an empty string is an empty list.
pub(crate) fn split_list(value: &str) -> Vec<String> {
    let t = value.trim();
    if t.is_empty() {
        return Vec::new();
    }
    t.split(',').map(|s| s.trim().to_string()).collect()
}

/// Validates `value` against `def`, naming `key` (the topic key or a broker synonym) in errors.
fn validate_value(def: &TopicKeyDef, key: &str, raw: &str) -> Result<(), String> {
    let value = raw.trim();
    match def.ty {
        ConfigType::Int | ConfigType::Short | ConfigType::Long => {
            let n: i64 = match def.ty {
                ConfigType::Int => value.parse::<i32>().map(i64::from).ok(),
                ConfigType::Short => value.parse::<i16>().map(i64::from).ok(),
                _ => value.parse::<i64>().ok(),
            }
            .ok_or_else(|| {
                invalid(
                    value,
                    key,
                    format!("Not a number of type {}", def.ty.name()),
                )
            })?;
            check_range(value, key, n, def.validator)
        }
        ConfigType::Double => {
            let d: f64 = value
                .parse::<f64>()
                .ok()
                .filter(|d| d.is_finite())
                .ok_or_else(|| invalid(value, key, "Not a number of type DOUBLE"))?;
            if let Validator::DoubleBetween(min, max) = def.validator {
                if d < min {
                    return Err(invalid(
                        value,
                        key,
                        format!("Value must be at least {min:?}"),
                    ));
                }
                if d > max {
                    return Err(invalid(
                        value,
                        key,
                        format!("Value must be no more than {max:?}"),
                    ));
                }
            }
            Ok(())
        }
        ConfigType::Boolean => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| invalid(value, key, "Expected value to be either true or false")),
        ConfigType::String => match def.validator {
            Validator::OneOf(allowed) if !allowed.contains(&value) => Err(invalid(
                value,
                key,
                format!("String must be one of: {}", allowed.join(", ")),
            )),
            _ => Ok(()),
        },
        ConfigType::List => {
            let items = split_list(value);
            match def.validator {
                Validator::ListOf(allowed) => {
                    for item in &items {
                        if !allowed.contains(&item.as_str()) {
                            return Err(invalid(
                                item,
                                key,
                                format!("String must be one of: {}", allowed.join(", ")),
                            ));
                        }
                    }
                    let mut seen: Vec<&str> = Vec::new();
                    for item in &items {
                        if seen.contains(&item.as_str()) {
                            return Err(format!(
                                "Configuration '{key}' values must not be duplicated."
                            ));
                        }
                        seen.push(item);
                    }
                    Ok(())
                }
                Validator::ThrottledReplicas => {
                    let ok = (items.len() == 1 && items[0] == "*")
                        || items.iter().all(|item| {
                            item.split_once(':').is_some_and(|(p, b)| {
                                p.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok()
                            })
                        });
                    if ok {
                        Ok(())
                    } else {
                        Err(invalid(
                            value,
                            key,
                            "must be the literal '*' or a list of replicas in the following format: \
                             [partitionId]:[brokerId],[partitionId]:[brokerId],...",
                        ))
                    }
                }
                _ => Ok(()),
            }
        }
        ConfigType::Class | ConfigType::Password => Ok(()),
    }
}

/// Validates one topic config as CreateTopics / AlterConfigs receive it. `None` (a delete or a
/// null value) only checks that the key is known.
pub fn validate_topic_config(name: &str, value: Option<&str>) -> Result<(), TopicConfigError> {
    let def = topic_key(name)
        .ok_or_else(|| TopicConfigError::new(format!("Unknown topic config name: {name}")))?;
    let Some(value) = value else {
        return Ok(());
    };
    validate_value(def, name, value).map_err(TopicConfigError::new)?;
    if let Some(why) = unsupported_value(name, value) {
        return Err(TopicConfigError::new(why));
    }
    if name == "remote.storage.enable" && parse_bool(value.trim()) == Some(true) {
        return Err(TopicConfigError::new(
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured \
             with remote log storage.",
        ));
    }
    Ok(())
}

/// Validates a whole set of topic overrides, including the cross-key rules.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicConfigError> {
    for (k, v) in configs {
        validate_topic_config(k, Some(v))?;
    }
    let min_lag = configs
        .get("min.compaction.lag.ms")
        .and_then(|v| v.trim().parse::<i64>().ok());
    let max_lag = configs
        .get("max.compaction.lag.ms")
        .and_then(|v| v.trim().parse::<i64>().ok());
    if let (Some(min), Some(max)) = (min_lag, max_lag) {
        if min > max {
            return Err(TopicConfigError::new(format!(
                "conflict topic config setting min.compaction.lag.ms ({min}) > \
                 max.compaction.lag.ms ({max})"
            )));
        }
    }
    Ok(())
}

/// The adapter the metadata crate's controller takes (`ConfigValidator`).
pub fn validate_for_controller(name: &str, value: Option<&str>) -> Result<(), String> {
    validate_topic_config(name, value).map_err(|e| e.message)
}

/// Why a valid Kafka value cannot be honoured here, if it cannot: a `compression.type`
/// other than `producer` would have the broker recompress every batch, and krust stores
/// batches as producers compressed them (it never re-encodes records).
fn unsupported_value(key: &str, value: &str) -> Option<String> {
    let value = value.trim();
    (key == "compression.type" && value != "producer").then(|| {
        format!(
            "Invalid value {value} for configuration {key}: this broker stores batches as \
             producers compressed them; only producer is supported"
        )
    })
}

/// If `key` is a broker key that only matters as a synonym of a topic config (and krust does
/// not parse it itself), validates `value` with the topic config's rules. `None` if `key` is not
/// such a synonym.
pub(crate) fn validate_broker_synonym(key: &str, value: &str) -> Option<Result<(), String>> {
    if !UNIMPLEMENTED_BROKER_SYNONYM_DEFAULTS
        .iter()
        .any(|(k, _)| *k == key)
    {
        return None;
    }
    let def = TOPIC_KEYS
        .iter()
        .find(|d| d.synonyms.iter().any(|(s, _)| *s == key))?;
    Some(
        validate_value(def, key, value).and_then(|()| match unsupported_value(key, value) {
            Some(why) => Err(why),
            None => Ok(()),
        }),
    )
}

/// The value the broker gives a topic key when there is no override, and its source.
fn broker_value(def: &TopicKeyDef, server: &ServerConfig) -> (String, i8) {
    let explicit = server.explicit();
    // Kafka turns any negative broker retention into -1 (unlimited).
    let negative_is_unlimited = def.name == "retention.ms";
    let convert = |raw: &str, factor: i64| -> Option<String> {
        let raw = raw.trim();
        if factor == 1 && !negative_is_unlimited {
            return Some(canonical(def.ty, raw));
        }
        let n = raw.parse::<i64>().ok()?.saturating_mul(factor);
        Some(
            if negative_is_unlimited && n < 0 {
                -1
            } else {
                n
            }
            .to_string(),
        )
    };
    for (syn, factor) in def.synonyms {
        if let Some(v) = explicit.get(*syn) {
            if let Some(out) = convert(v, *factor) {
                return (out, SOURCE_STATIC_BROKER_CONFIG);
            }
        }
    }
    for (syn, factor) in def.synonyms {
        if let Some(v) = broker_synonym_default(syn) {
            if let Some(out) = convert(v, *factor) {
                return (out, SOURCE_DEFAULT_CONFIG);
            }
        }
    }
    (def.default.to_string(), SOURCE_DEFAULT_CONFIG)
}

/// How Kafka prints a value of this type (lists joined by ",", numbers normalised).
pub(crate) fn canonical(ty: ConfigType, raw: &str) -> String {
    let raw = raw.trim();
    match ty {
        ConfigType::List => split_list(raw).join(","),
        ConfigType::Int | ConfigType::Short | ConfigType::Long => raw
            .parse::<i64>()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| raw.to_string()),
        ConfigType::Boolean => parse_bool(raw)
            .map(|b| b.to_string())
            .unwrap_or_else(|| raw.to_string()),
        ConfigType::Double => raw
            .parse::<f64>()
            .map(|d| format!("{d:?}"))
            .unwrap_or_else(|_| raw.to_string()),
        _ => raw.to_string(),
    }
}

/// The topic's value of `name` (override, else broker-derived), or `None` for an unknown key.
pub fn topic_value(
    name: &str,
    overrides: &BTreeMap<String, String>,
    server: &ServerConfig,
) -> Option<String> {
    let def = topic_key(name)?;
    Some(match overrides.get(name) {
        Some(v) => v.clone(),
        None => broker_value(def, server).0,
    })
}

/// The settings a partition log actually uses.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveTopicConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub index_interval_bytes: u32,
    pub max_message_bytes: u32,
    pub message_timestamp_type_log_append: bool,
    pub flush_interval_messages: u64,
    pub flush_interval_ms: i64,
    pub min_insync_replicas: i32,
    pub cleanup_policy_compact: bool,
    pub cleanup_policy_delete: bool,
    pub unclean_leader_election: bool,
    pub segment_index_bytes: u32,
    pub segment_jitter_ms: i64,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    /// One of uncompressed, zstd, lz4, snappy, gzip, producer.
    pub compression_type: String,
    pub delete_retention_ms: i64,
    pub file_delete_delay_ms: i64,
    pub preallocate: bool,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
}

impl Default for EffectiveTopicConfig {
    /// Kafka's defaults with no broker or topic overrides.
    fn default() -> Self {
        EffectiveTopicConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * HOUR_MS,
            retention_ms: 7 * 24 * HOUR_MS,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type_log_append: false,
            flush_interval_messages: i64::MAX as u64,
            flush_interval_ms: i64::MAX,
            min_insync_replicas: 1,
            cleanup_policy_compact: false,
            cleanup_policy_delete: true,
            unclean_leader_election: false,
            segment_index_bytes: 10 * 1024 * 1024,
            segment_jitter_ms: 0,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: HOUR_MS,
            compression_type: "producer".to_string(),
            delete_retention_ms: 86_400_000,
            file_delete_delay_ms: 60_000,
            preallocate: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

/// Candidate values for `name`, most specific first: the override (if it validates), the
/// broker-derived value, then Kafka's topic default.
fn candidates(
    name: &str,
    overrides: &BTreeMap<String, String>,
    server: &ServerConfig,
) -> Vec<String> {
    let mut out = Vec::with_capacity(3);
    let Some(def) = topic_key(name) else {
        return out;
    };
    if let Some(v) = overrides.get(name) {
        if validate_value(def, name, v).is_ok() {
            out.push(v.trim().to_string());
        } else {
            tracing::warn!(
                "ignoring invalid topic config override {name}={v}; using the broker's value"
            );
        }
    }
    out.push(broker_value(def, server).0);
    out.push(def.default.to_string());
    out
}

fn pick<T>(
    name: &str,
    overrides: &BTreeMap<String, String>,
    server: &ServerConfig,
    parse: impl Fn(&str) -> Option<T>,
    fallback: T,
) -> T {
    candidates(name, overrides, server)
        .iter()
        .find_map(|v| parse(v))
        .unwrap_or(fallback)
}

/// Computes a topic's effective settings from its overrides and the broker config.
pub fn effective(
    overrides: &BTreeMap<String, String>,
    server: &ServerConfig,
) -> EffectiveTopicConfig {
    let d = EffectiveTopicConfig::default();
    let long = |s: &str| s.parse::<i64>().ok();
    let non_neg_u64 = |s: &str| s.parse::<i64>().ok().and_then(|n| u64::try_from(n).ok());
    let non_neg_u32 = |s: &str| s.parse::<i32>().ok().and_then(|n| u32::try_from(n).ok());
    let boolean = |s: &str| parse_bool(s);
    let policies = pick(
        "cleanup.policy",
        overrides,
        server,
        |s| Some(split_list(s)),
        vec!["delete".to_string()],
    );
    EffectiveTopicConfig {
        segment_bytes: pick(
            "segment.bytes",
            overrides,
            server,
            non_neg_u64,
            d.segment_bytes,
        ),
        segment_ms: pick("segment.ms", overrides, server, long, d.segment_ms),
        retention_ms: pick("retention.ms", overrides, server, long, d.retention_ms),
        retention_bytes: pick(
            "retention.bytes",
            overrides,
            server,
            long,
            d.retention_bytes,
        ),
        index_interval_bytes: pick(
            "index.interval.bytes",
            overrides,
            server,
            non_neg_u32,
            d.index_interval_bytes,
        ),
        max_message_bytes: pick(
            "max.message.bytes",
            overrides,
            server,
            non_neg_u32,
            d.max_message_bytes,
        ),
        message_timestamp_type_log_append: pick(
            "message.timestamp.type",
            overrides,
            server,
            |s| match s {
                "LogAppendTime" => Some(true),
                "CreateTime" => Some(false),
                _ => None,
            },
            false,
        ),
        flush_interval_messages: pick(
            "flush.messages",
            overrides,
            server,
            non_neg_u64,
            d.flush_interval_messages,
        ),
        flush_interval_ms: pick("flush.ms", overrides, server, long, d.flush_interval_ms),
        min_insync_replicas: pick(
            "min.insync.replicas",
            overrides,
            server,
            |s| s.parse::<i32>().ok().filter(|n| *n >= 1),
            d.min_insync_replicas,
        ),
        cleanup_policy_compact: policies.iter().any(|p| p == "compact"),
        cleanup_policy_delete: policies.iter().any(|p| p == "delete"),
        unclean_leader_election: pick(
            "unclean.leader.election.enable",
            overrides,
            server,
            boolean,
            false,
        ),
        segment_index_bytes: pick(
            "segment.index.bytes",
            overrides,
            server,
            non_neg_u32,
            d.segment_index_bytes,
        ),
        segment_jitter_ms: pick("segment.jitter.ms", overrides, server, long, 0),
        message_timestamp_before_max_ms: pick(
            "message.timestamp.before.max.ms",
            overrides,
            server,
            long,
            d.message_timestamp_before_max_ms,
        ),
        message_timestamp_after_max_ms: pick(
            "message.timestamp.after.max.ms",
            overrides,
            server,
            long,
            d.message_timestamp_after_max_ms,
        ),
        compression_type: pick(
            "compression.type",
            overrides,
            server,
            |s| COMPRESSION_TYPES.contains(&s).then(|| s.to_string()),
            d.compression_type.clone(),
        ),
        delete_retention_ms: pick(
            "delete.retention.ms",
            overrides,
            server,
            long,
            d.delete_retention_ms,
        ),
        file_delete_delay_ms: pick(
            "file.delete.delay.ms",
            overrides,
            server,
            long,
            d.file_delete_delay_ms,
        ),
        preallocate: pick("preallocate", overrides, server, boolean, false),
        min_cleanable_dirty_ratio: pick(
            "min.cleanable.dirty.ratio",
            overrides,
            server,
            |s| s.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)),
            d.min_cleanable_dirty_ratio,
        ),
        min_compaction_lag_ms: pick(
            "min.compaction.lag.ms",
            overrides,
            server,
            long,
            d.min_compaction_lag_ms,
        ),
        max_compaction_lag_ms: pick(
            "max.compaction.lag.ms",
            overrides,
            server,
            long,
            d.max_compaction_lag_ms,
        ),
    }
}

/// DescribeConfigs for a topic: every topic key with its value and source; with
/// `include_synonyms`, the override and the broker synonyms (each with its source).
pub fn describe_topic_configs(
    overrides: &BTreeMap<String, String>,
    server: &ServerConfig,
    include_synonyms: bool,
) -> Vec<ConfigEntryDesc> {
    let explicit = server.explicit();
    TOPIC_KEYS
        .iter()
        .map(|def| {
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (v.clone(), SOURCE_DYNAMIC_TOPIC_CONFIG),
                None => broker_value(def, server),
            };
            let mut synonyms = Vec::new();
            if include_synonyms {
                if let Some(v) = overrides.get(def.name) {
                    synonyms.push((
                        def.name.to_string(),
                        Some(v.clone()),
                        SOURCE_DYNAMIC_TOPIC_CONFIG,
                    ));
                }
                for (syn, _) in def.synonyms {
                    if let Some(v) = explicit.get(*syn) {
                        synonyms.push((
                            syn.to_string(),
                            Some(v.clone()),
                            SOURCE_STATIC_BROKER_CONFIG,
                        ));
                    }
                    if let Some(v) = broker_synonym_default(syn) {
                        synonyms.push((
                            syn.to_string(),
                            Some(v.to_string()),
                            SOURCE_DEFAULT_CONFIG,
                        ));
                    }
                }
            }
            ConfigEntryDesc {
                name: def.name.to_string(),
                value: Some(value),
                source,
                read_only: false,
                sensitive: false,
                config_type: def.ty.as_i8(),
                documentation: Some(def.doc.to_string()),
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(extra: &[&str]) -> ServerConfig {
        let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        ServerConfig::load(None, &overrides).expect("valid config")
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(name: &str, value: &str) -> String {
        match validate_topic_config(name, Some(value)) {
            Ok(()) => panic!("{name}={value} should be rejected"),
            Err(e) => {
                assert_eq!(e.error_code(), 40);
                e.message
            }
        }
    }

    #[test]
    fn table_is_sorted_and_unique() {
        let names: Vec<&str> = topic_config_names().collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        for def in TOPIC_KEYS {
            assert!(
                validate_value(def, def.name, def.default).is_ok(),
                "default of {} must validate",
                def.name
            );
            for (syn, _) in def.synonyms {
                assert!(
                    crate::config::broker_key_default(syn).is_some()
                        || UNIMPLEMENTED_BROKER_SYNONYM_DEFAULTS
                            .iter()
                            .any(|(k, _)| k == syn),
                    "synonym {syn} needs a known default"
                );
                assert!(
                    crate::config::is_known_broker_key(syn),
                    "synonym {syn} must be an accepted broker key"
                );
            }
        }
    }

    #[test]
    fn unknown_topic_config() {
        let e = validate_topic_config("foo", Some("1")).expect_err("unknown");
        assert_eq!(e.message, "Unknown topic config name: foo");
        assert_eq!(e.error_code(), INVALID_CONFIG);
        assert!(validate_topic_config("foo", None).is_err());
        assert!(validate_topic_config("retention.ms", None).is_ok());
    }

    #[test]
    fn number_validation_messages() {
        assert_eq!(
            err("retention.ms", "abc"),
            "Invalid value abc for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            err("segment.bytes", "2147483648"),
            "Invalid value 2147483648 for configuration segment.bytes: Not a number of type INT"
        );
        assert_eq!(
            err("segment.bytes", "1000"),
            "Invalid value 1000 for configuration segment.bytes: Value must be at least 1048576"
        );
        assert_eq!(
            err("retention.ms", "-2"),
            "Invalid value -2 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(
            err("min.insync.replicas", "0"),
            "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"
        );
        assert_eq!(
            err("compression.lz4.level", "18"),
            "Invalid value 18 for configuration compression.lz4.level: Value must be no more than 17"
        );
        assert!(err("compression.gzip.level", "0").contains("-1"));
        assert!(validate_topic_config("compression.gzip.level", Some("-1")).is_ok());
        assert!(validate_topic_config("retention.ms", Some("-1")).is_ok());
        assert!(validate_topic_config("retention.bytes", Some("-5")).is_ok());
        assert!(validate_topic_config("segment.bytes", Some(" 1048576 ")).is_ok());
    }

    #[test]
    fn other_type_validation_messages() {
        assert_eq!(
            err("preallocate", "yes"),
            "Invalid value yes for configuration preallocate: Expected value to be either true or false"
        );
        assert!(validate_topic_config("preallocate", Some("TRUE")).is_ok());
        assert_eq!(
            err("compression.type", "brotli"),
            "Invalid value brotli for configuration compression.type: String must be one of: \
             uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert_eq!(
            err("cleanup.policy", "delete,foo"),
            "Invalid value foo for configuration cleanup.policy: String must be one of: compact, delete"
        );
        assert!(err("cleanup.policy", "delete,delete").contains("must not be duplicated"));
        assert!(validate_topic_config("cleanup.policy", Some("compact, delete")).is_ok());
        assert_eq!(
            err("min.cleanable.dirty.ratio", "1.5"),
            "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1.0"
        );
        assert!(err("min.cleanable.dirty.ratio", "x").contains("Not a number of type DOUBLE"));
        assert!(err("message.timestamp.type", "createtime").contains("CreateTime, LogAppendTime"));
        assert!(validate_topic_config("leader.replication.throttled.replicas", Some("*")).is_ok());
        assert!(
            validate_topic_config("leader.replication.throttled.replicas", Some("0:1,1:2")).is_ok()
        );
        assert!(validate_topic_config("leader.replication.throttled.replicas", Some("")).is_ok());
        assert!(err("follower.replication.throttled.replicas", "0-1").contains("[partitionId]"));
        assert!(err("remote.storage.enable", "true").contains("Tiered Storage"));
        assert!(validate_topic_config("remote.storage.enable", Some("false")).is_ok());
    }

    #[test]
    fn cross_key_validation() {
        assert!(validate_topic_configs(&map(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5")
        ]))
        .expect_err("conflict")
        .message
        .contains("min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"));
        assert!(validate_topic_configs(&map(&[("retention.ms", "1000")])).is_ok());
        assert!(validate_topic_configs(&map(&[("retention.ms", "x")])).is_err());
        assert!(is_list_config("cleanup.policy"));
        assert!(!is_list_config("retention.ms"));
        assert_eq!(
            validate_for_controller("nope", None),
            Err("Unknown topic config name: nope".into())
        );
    }

    #[test]
    fn effective_defaults() {
        let s = server(&[]);
        let e = effective(&BTreeMap::new(), &s);
        assert_eq!(e, EffectiveTopicConfig::default());
        assert_eq!(e.segment_bytes, 1_073_741_824);
        assert_eq!(e.retention_ms, 604_800_000);
        assert_eq!(e.flush_interval_ms, i64::MAX);
        assert_eq!(e.flush_interval_messages, i64::MAX as u64);
    }

    #[test]
    fn effective_from_broker_and_overrides() {
        let s = server(&[
            "log.retention.minutes=10",
            "log.roll.hours=2",
            "log.segment.bytes=2000000",
            "log.cleanup.policy=compact",
            "log.message.timestamp.type=LogAppendTime",
            "log.flush.scheduler.interval.ms=5000",
            "min.insync.replicas=2",
            "log.message.timestamp.before.max.ms=60000",
        ]);
        let e = effective(&BTreeMap::new(), &s);
        assert_eq!(e.retention_ms, 600_000);
        assert_eq!(e.segment_ms, 7_200_000);
        assert_eq!(e.segment_bytes, 2_000_000);
        assert!(e.cleanup_policy_compact && !e.cleanup_policy_delete);
        assert!(e.message_timestamp_type_log_append);
        assert_eq!(e.flush_interval_ms, 5000);
        assert_eq!(e.min_insync_replicas, 2);
        assert_eq!(e.compression_type, "producer");
        assert_eq!(e.message_timestamp_before_max_ms, 60_000);

        let o = map(&[
            ("retention.ms", "-1"),
            ("segment.bytes", "1048576"),
            ("cleanup.policy", "compact,delete"),
            ("message.timestamp.type", "CreateTime"),
            ("max.message.bytes", "100"),
            ("unclean.leader.election.enable", "true"),
            ("flush.messages", "1"),
            // Invalid overrides fall back to the broker's value instead of failing.
            ("min.insync.replicas", "zero"),
        ]);
        let e = effective(&o, &s);
        assert_eq!(e.retention_ms, -1);
        assert_eq!(e.segment_bytes, 1_048_576);
        assert!(e.cleanup_policy_compact && e.cleanup_policy_delete);
        assert!(!e.message_timestamp_type_log_append);
        assert_eq!(e.max_message_bytes, 100);
        assert!(e.unclean_leader_election);
        assert_eq!(e.flush_interval_messages, 1);
        assert_eq!(e.min_insync_replicas, 2);
    }

    #[test]
    fn effective_retention_precedence_and_unlimited() {
        let s = server(&["log.retention.hours=-1"]);
        assert_eq!(effective(&BTreeMap::new(), &s).retention_ms, -1);
        let s = server(&[
            "log.retention.ms=5",
            "log.retention.minutes=1",
            "log.retention.hours=1",
        ]);
        assert_eq!(effective(&BTreeMap::new(), &s).retention_ms, 5);
        let s = server(&["log.retention.minutes=2", "log.retention.hours=1"]);
        assert_eq!(effective(&BTreeMap::new(), &s).retention_ms, 120_000);
    }

    fn entry<'a>(entries: &'a [ConfigEntryDesc], name: &str) -> &'a ConfigEntryDesc {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no entry {name}"))
    }

    #[test]
    fn describe_sources_and_synonyms() {
        let s = server(&["log.retention.hours=24", "log.segment.bytes=2000000"]);
        let o = map(&[("segment.bytes", "1048576")]);
        let all = describe_topic_configs(&o, &s, true);
        assert_eq!(all.len(), TOPIC_KEYS.len());

        let seg = entry(&all, "segment.bytes");
        assert_eq!(seg.value.as_deref(), Some("1048576"));
        assert_eq!(seg.source, SOURCE_DYNAMIC_TOPIC_CONFIG);
        assert_eq!(seg.config_type, ConfigType::Int as i8);
        assert!(!seg.read_only);
        assert_eq!(
            seg.synonyms,
            vec![
                ("segment.bytes".to_string(), Some("1048576".to_string()), 1),
                (
                    "log.segment.bytes".to_string(),
                    Some("2000000".to_string()),
                    4
                ),
                (
                    "log.segment.bytes".to_string(),
                    Some("1073741824".to_string()),
                    5
                ),
            ]
        );

        let ret = entry(&all, "retention.ms");
        assert_eq!(ret.value.as_deref(), Some("86400000"));
        assert_eq!(ret.source, SOURCE_STATIC_BROKER_CONFIG);
        assert_eq!(ret.config_type, ConfigType::Long as i8);
        assert_eq!(
            ret.synonyms,
            vec![
                ("log.retention.hours".to_string(), Some("24".to_string()), 4),
                (
                    "log.retention.hours".to_string(),
                    Some("168".to_string()),
                    5
                ),
            ]
        );

        let cp = entry(&all, "cleanup.policy");
        assert_eq!(cp.value.as_deref(), Some("delete"));
        assert_eq!(cp.source, SOURCE_DEFAULT_CONFIG);
        assert_eq!(cp.config_type, ConfigType::List as i8);

        let flush = entry(&all, "flush.ms");
        assert_eq!(flush.value.as_deref(), Some(LONG_MAX));
        assert_eq!(flush.source, SOURCE_DEFAULT_CONFIG);
        assert_eq!(
            flush.synonyms,
            vec![(
                "log.flush.scheduler.interval.ms".to_string(),
                Some(LONG_MAX.to_string()),
                5
            )]
        );

        let remote = entry(&all, "remote.storage.enable");
        assert_eq!(remote.value.as_deref(), Some("false"));
        assert!(remote.synonyms.is_empty());

        let no_syn = describe_topic_configs(&o, &s, false);
        assert!(no_syn.iter().all(|e| e.synonyms.is_empty()));
    }

    #[test]
    fn describe_unimplemented_broker_synonym() {
        let s = server(&[
            "log.cleaner.min.cleanable.ratio=0.75",
            "log.preallocate=true",
        ]);
        let all = describe_topic_configs(&BTreeMap::new(), &s, true);
        let r = entry(&all, "min.cleanable.dirty.ratio");
        assert_eq!(r.value.as_deref(), Some("0.75"));
        assert_eq!(r.source, SOURCE_STATIC_BROKER_CONFIG);
        let c = entry(&all, "preallocate");
        assert_eq!(c.value.as_deref(), Some("true"));
        assert_eq!(
            topic_value("preallocate", &BTreeMap::new(), &s).as_deref(),
            Some("true")
        );
        assert_eq!(topic_value("nope", &BTreeMap::new(), &s), None);
    }

    #[test]
    fn broker_synonym_validation() {
        assert!(validate_broker_synonym("num.io.threads", "8").is_none());
        assert!(matches!(
            validate_broker_synonym("log.preallocate", "true"),
            Some(Ok(()))
        ));
        let e = validate_broker_synonym("log.cleaner.min.cleanable.ratio", "2")
            .expect("a synonym")
            .expect_err("out of range");
        assert!(e.contains("log.cleaner.min.cleanable.ratio"), "{e}");
        // Valid in Kafka, but it would need recompression.
        let e = validate_broker_synonym("compression.type", "zstd")
            .expect("a synonym")
            .expect_err("unsupported");
        assert!(e.contains("only producer is supported"), "{e}");
        assert!(validate_broker_synonym("compression.type", "producer").is_some_and(|r| r.is_ok()));
        let e = validate_topic_config("compression.type", Some("gzip")).expect_err("topic");
        assert!(e.to_string().contains("only producer is supported"), "{e}");
    }
}
