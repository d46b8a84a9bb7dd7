//! DescribeClientQuotas (48) and AlterClientQuotas (49): client quotas kept in the
//! metadata log as ClientQuotaRecords. An entity is a user, a client id, a user and a
//! client id, or an IP address; a null name is the default of its type. Alterations are
//! decisions of the active controller (forwarded there), validated as Kafka validates them.
//! Only the byte rates (`producer_byte_rate`, `consumer_byte_rate`) are enforced, so only
//! they may be set; `request_percentage`, `controller_mutation_rate` and
//! `connection_creation_rate` are refused.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntity, EntryData as AlterEntry,
};
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribeEntity, EntryData as DescribeEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use krust_metadata::MetadataRecord;
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::Broker;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub use krust_metadata::image::QuotaEntity as Entity;

/// How a quota key's value is checked.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Long,
    Int,
    Double,
}

/// The keys an entity may carry.
fn key_kind(entity: &Entity, key: &str) -> Option<Kind> {
    let ip = entity.iter().any(|(t, _)| t == IP);
    match (ip, key) {
        (false, "producer_byte_rate" | "consumer_byte_rate") => Some(Kind::Long),
        (false, "request_percentage" | "controller_mutation_rate") => Some(Kind::Double),
        (true, "connection_creation_rate") => Some(Kind::Int),
        _ => None,
    }
}

/// Kafka's text for an entity in messages: `ClientQuotaEntity(entries={user=alice})`.
fn entity_text(entity: &Entity) -> String {
    let parts: Vec<String> = entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("null")))
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", parts.join(", "))
}

/// Why an entity cannot carry quotas, if it cannot.
fn check_entity(entity: &Entity) -> Option<String> {
    if entity.is_empty() {
        return Some("Invalid empty client quota entity".into());
    }
    for (t, n) in entity {
        if t != USER && t != CLIENT_ID && t != IP {
            return Some(format!("Unhandled client quota entity type: {t}"));
        }
        if n.as_deref() == Some("") {
            return Some(format!("Empty {t} not supported"));
        }
        if t == IP {
            if let Some(n) = n {
                if n.parse::<std::net::IpAddr>().is_err() {
                    return Some(format!("{n} is not a valid IP or resolvable host."));
                }
            }
        }
    }
    if entity.len() > 1 && entity.iter().any(|(t, _)| t == IP) {
        return Some(
            "Invalid quota entity combination, IP entity should not be combined with User or ClientId"
                .into(),
        );
    }
    None
}

/// Why a value cannot be set for `key`, if it cannot.
fn check_value(entity: &Entity, key: &str, value: f64) -> Option<String> {
    let Some(kind) = key_kind(entity, key) else {
        return Some(format!("Invalid configuration key {key}"));
    };
    if value.is_nan() || value <= 0.0 {
        return Some(format!("Quota {key} must be greater than 0"));
    }
    if value.is_infinite() {
        return Some(format!("Proposed value for {key} is too large."));
    }
    let max = match kind {
        Kind::Long => i64::MAX as f64,
        Kind::Int => f64::from(i32::MAX),
        Kind::Double => f64::MAX,
    };
    if value > max {
        let ty = if kind == Kind::Long {
            "a LONG"
        } else {
            "an INT"
        };
        return Some(format!("Proposed value for {key} is too large for {ty}."));
    }
    if kind != Kind::Double && (value % 1.0).abs() > 1e-6 {
        return Some(format!("{key} cannot be a fractional value."));
    }
    if !ENFORCED.contains(&key) {
        return Some(format!(
            "Quota {key} is not enforced by krust (only {} are), so it cannot be set",
            ENFORCED.join(" and ")
        ));
    }
    None
}

/// The quota keys krust enforces; the others Kafka knows are refused rather than kept
/// and ignored.
const ENFORCED: [&str; 2] = ["producer_byte_rate", "consumer_byte_rate"];

fn alter_entity(entity: &Entity) -> Vec<AlterEntity> {
    entity
        .iter()
        .map(|(t, n)| {
            AlterEntity::default()
                .with_entity_type(sb(t.clone()))
                .with_entity_name(n.clone().map(sb))
        })
        .collect()
}

pub async fn alter(
    broker: &Broker,
    req: AlterClientQuotasRequest,
    _version: i16,
) -> AlterClientQuotasResponse {
    // Each entity once, with its changes (key -> Some(value) to set, None to remove), or
    // why it cannot change.
    type Changes = Result<BTreeMap<String, Option<f64>>, String>;
    let mut entities: Vec<(Entity, Changes)> = Vec::new();
    for e in &req.entries {
        // As Kafka reads it: a type named twice keeps its last name.
        let mut parts: BTreeMap<String, Option<String>> = BTreeMap::new();
        for d in &e.entity {
            parts.insert(
                d.entity_type.to_string(),
                d.entity_name.as_ref().map(|n| n.to_string()),
            );
        }
        let entity: Entity = parts.into_iter().collect();
        let changes = match check_entity(&entity) {
            Some(why) => Err(why),
            None => {
                let mut changes = BTreeMap::new();
                let mut error = None;
                for op in &e.ops {
                    let key = op.key.to_string();
                    if changes.contains_key(&key) {
                        error = Some(format!(
                            "Ignoring duplicate entity {}",
                            entity_text(&entity)
                        ));
                        break;
                    }
                    if !op.remove {
                        if let Some(why) = check_value(&entity, &key, op.value) {
                            error = Some(why);
                            break;
                        }
                    }
                    changes.insert(key, (!op.remove).then_some(op.value));
                }
                match error {
                    Some(why) => Err(why),
                    None => Ok(changes),
                }
            }
        };
        match entities.iter_mut().find(|(x, _)| *x == entity) {
            Some((_, c)) => {
                *c = Err(format!(
                    "Ignoring duplicate entity {}",
                    entity_text(&entity)
                ))
            }
            None => entities.push((entity, changes)),
        }
    }
    let validate_only = req.validate_only;
    let outcome = broker
        .control(|image| {
            let mut records = Vec::new();
            for (entity, changes) in &entities {
                let Ok(changes) = changes else { continue };
                let current = image.quotas.get(entity);
                for (key, value) in changes {
                    let now = current.and_then(|c| c.get(key)).copied();
                    let record = match (value, now) {
                        (Some(v), Some(n)) if *v == n => None,
                        (Some(v), _) => Some((*v, false)),
                        (None, Some(_)) => Some((0.0, true)),
                        (None, None) => None,
                    };
                    if let Some((value, remove)) = record {
                        records.push(MetadataRecord::ClientQuota {
                            entity: entity.clone(),
                            key: key.clone(),
                            value,
                            remove,
                        });
                    }
                }
            }
            if validate_only {
                records.clear();
            }
            (records, ())
        })
        .await;
    let entries = entities
        .iter()
        .map(|(entity, changes)| {
            let (code, message) = match (changes, &outcome) {
                (Err(why), _) => (ErrorCode::InvalidRequest.code(), Some(why.clone())),
                (Ok(_), Ok(())) => (0, None),
                (Ok(_), Err(e)) => (
                    crate::broker::control_error_code(e).code(),
                    Some(e.to_string()),
                ),
            };
            AlterEntry::default()
                .with_error_code(code)
                .with_error_message(message.map(sb))
                .with_entity(alter_entity(entity))
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// DescribeClientQuotas' match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub async fn describe(
    broker: &Broker,
    req: DescribeClientQuotasRequest,
    _version: i16,
) -> DescribeClientQuotasResponse {
    let fail = |code: ErrorCode, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(sb(message)))
            .with_entries(None)
    };
    let mut seen = std::collections::BTreeSet::new();
    for c in &req.components {
        let t = c.entity_type.as_str();
        if t.is_empty() {
            return fail(
                ErrorCode::InvalidRequest,
                "Invalid empty entity type.".into(),
            );
        }
        if !seen.insert(t) {
            return fail(
                ErrorCode::InvalidRequest,
                format!("Entity type {t} cannot appear more than once in the filter."),
            );
        }
        if t != USER && t != CLIENT_ID && t != IP {
            return fail(
                ErrorCode::UnsupportedVersion,
                format!("Unsupported entity type {t}"),
            );
        }
        match (c.match_type, &c._match) {
            (MATCH_EXACT, None) => {
                return fail(
                    ErrorCode::InvalidRequest,
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                )
            }
            (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                let name = if c.match_type == MATCH_DEFAULT {
                    "DEFAULT"
                } else {
                    "SPECIFIED"
                };
                return fail(
                    ErrorCode::InvalidRequest,
                    format!(
                        "Request specified MATCH_TYPE_{name}, but also specified a match string."
                    ),
                );
            }
            (MATCH_EXACT | MATCH_DEFAULT | MATCH_SPECIFIED, _) => {}
            (other, _) => {
                return fail(
                    ErrorCode::InvalidRequest,
                    format!("Unknown match type {other}"),
                )
            }
        }
    }
    if seen.contains(IP) && seen.len() > 1 {
        return fail(
            ErrorCode::InvalidRequest,
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .into(),
        );
    }
    let image = broker.image();
    let matches = |entity: &Entity| {
        if req.strict && entity.len() != req.components.len() {
            return false;
        }
        req.components.iter().all(|c| {
            let part = entity
                .iter()
                .find(|(t, _)| t.as_str() == c.entity_type.as_str());
            match (part, c.match_type) {
                (None, _) => false,
                (Some((_, n)), MATCH_EXACT) => {
                    n.as_deref() == c._match.as_ref().map(|m| m.as_str())
                }
                (Some((_, n)), MATCH_DEFAULT) => n.is_none(),
                (Some(_), _) => true,
            }
        })
    };
    let entries = image
        .quotas
        .iter()
        .filter(|(entity, _)| (!req.components.is_empty() || !req.strict) && matches(entity))
        .map(|(entity, values)| {
            DescribeEntry::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(t, n)| {
                            DescribeEntity::default()
                                .with_entity_type(sb(t.clone()))
                                .with_entity_name(n.clone().map(sb))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(sb(k.clone())).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}
