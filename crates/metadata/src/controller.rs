//! Controller decisions: requests in, records and results out.
//!
//! Each function validates a request against the current image and returns the records
//! that carry it out plus a result per item. Nothing here mutates the image: the caller
//! commits the records to the metadata log and applies them. Randomness (topic ids, the
//! placement start) is passed in so the logic is deterministic under test.
//!
//! Partition leadership and ISRs follow Kafka's KRaft controller
//! (`ReplicationControlManager` and `PartitionChangeBuilder`): [`alter_partition`]
//! (AlterPartition, KIP-497/KIP-841/KIP-903), [`fence_broker_partitions`] (a broker fenced
//! or entering controlled shutdown), [`unfence_broker_partitions`] and [`elect_leaders`]
//! (ElectLeaders, preferred or unclean) each return `PartitionChangeRecord`s, as do the
//! partition reassignments of KIP-455: [`alter_partition_reassignments`] starts, replaces
//! or cancels them, [`list_partition_reassignments`] lists them, and a reassignment
//! finishes ([`complete_reassignment`]) in the change that brings every replica it keeps
//! into the ISR, which [`alter_partition`] does by itself. "Live" is
//! [`MetadataImage::is_live`] everywhere: registered, unfenced and not in controlled
//! shutdown. Eligible leader replicas (KIP-966) and log directory assignment (KIP-858) are
//! not implemented.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use krust_protocol::ErrorCode;
use uuid::Uuid;

use crate::image::{BrokerRegistration, MetadataImage, PartitionImage};
use crate::records::{
    BrokerEndpoint, BrokerFeature, BrokerFencingChange, LeaderRecoveryState, MetadataRecord,
    PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, NO_LEADER,
};
use crate::topic_name;
use crate::RESOURCE_TOPIC;

/// The outcome for one item of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub error: ErrorCode,
    pub message: Option<String>,
}

impl ItemResult {
    pub fn ok() -> ItemResult {
        ItemResult {
            error: ErrorCode::None,
            message: None,
        }
    }

    pub fn err(error: ErrorCode, message: impl Into<String>) -> ItemResult {
        ItemResult {
            error,
            message: Some(message.into()),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.error == ErrorCode::None
    }
}

/// What the controller knows about the brokers that can take replicas.
#[derive(Debug, Clone)]
pub struct Cluster<'a> {
    pub image: &'a MetadataImage,
    /// Unfenced brokers, sorted by id.
    pub live_brokers: &'a [i32],
    pub default_num_partitions: i32,
    pub default_replication_factor: i16,
}

/// Checks one config key/value (None = delete) for a resource; `Err` carries Kafka's message.
pub type ConfigValidator<'a> = &'a dyn Fn(&str, Option<&str>) -> Result<(), String>;

/// Checks a resource's whole set of configs (key -> value); `Err` is the reason.
pub type ConfigSetValidator<'a> = &'a dyn Fn(&BTreeMap<String, String>) -> Result<(), String>;

/// A topic to create, as CreateTopics carries it.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1 means the broker default.
    pub num_partitions: i32,
    /// -1 means the broker default.
    pub replication_factor: i16,
    /// Manual assignment: partition index → broker ids. Empty means place automatically.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, Option<String>)>,
}

/// Result of creating one topic.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub name: String,
    pub result: ItemResult,
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// The most partitions one CreateTopics or CreatePartitions request may create (Kafka's
/// limit on the records of one operation): a larger request fails whole, with
/// POLICY_VIOLATION, before anything is placed.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// The partitions `topics` would create at most, counting the default for -1 and each
/// manual assignment; topics that fail for other reasons count too, as in Kafka.
fn requested_partitions(topics: &[NewTopic], default_num_partitions: i32) -> i64 {
    topics
        .iter()
        .map(|t| {
            if !t.assignments.is_empty() {
                t.assignments.len() as i64
            } else if t.num_partitions == -1 {
                i64::from(default_num_partitions)
            } else {
                i64::from(t.num_partitions.max(0))
            }
        })
        .sum()
}

/// Validates and plans topic creation. Duplicate names in one request fail all copies.
pub fn create_topics(
    cluster: &Cluster<'_>,
    topics: &[NewTopic],
    validate_config: ConfigValidator<'_>,
    new_topic_id: &mut dyn FnMut() -> Uuid,
    placement_start: usize,
) -> (Vec<MetadataRecord>, Vec<CreatedTopic>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    if requested_partitions(topics, cluster.default_num_partitions) > MAX_PARTITIONS_PER_REQUEST {
        let refused = topics
            .iter()
            .map(|t| CreatedTopic {
                name: t.name.clone(),
                result: ItemResult::err(
                    ErrorCode::PolicyViolation,
                    "Excessively large number of partitions per request.",
                ),
                topic_id: Uuid::nil(),
                num_partitions: -1,
                replication_factor: -1,
            })
            .collect();
        return (records, refused);
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for t in topics {
        *seen.entry(t.name.as_str()).or_default() += 1;
    }
    let mut taken_keys: HashSet<String> = cluster
        .image
        .topics
        .keys()
        .map(|n| topic_name::collision_key(n))
        .collect();
    for (i, t) in topics.iter().enumerate() {
        let mut created = CreatedTopic {
            name: t.name.clone(),
            result: ItemResult::ok(),
            topic_id: Uuid::nil(),
            num_partitions: -1,
            replication_factor: -1,
        };
        match plan_topic(
            cluster,
            t,
            &seen,
            &taken_keys,
            validate_config,
            placement_start + i,
        ) {
            Err(r) => created.result = r,
            Ok(assignment) => {
                let id = new_topic_id();
                created.topic_id = id;
                created.num_partitions = assignment.len() as i32;
                created.replication_factor = assignment.first().map_or(0, |r| r.len() as i16);
                taken_keys.insert(topic_name::collision_key(&t.name));
                records.push(MetadataRecord::Topic {
                    name: t.name.clone(),
                    topic_id: id,
                });
                for (p, replicas) in assignment.into_iter().enumerate() {
                    records.push(partition_record(id, p as i32, replicas));
                }
                for (k, v) in &t.configs {
                    if let Some(v) = v {
                        records.push(MetadataRecord::Config {
                            resource_type: RESOURCE_TOPIC,
                            resource_name: t.name.clone(),
                            name: k.clone(),
                            value: Some(v.clone()),
                        });
                    }
                }
            }
        }
        results.push(created);
    }
    (records, results)
}

fn partition_record(topic_id: Uuid, partition_id: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id,
        topic_id,
        isr: replicas.clone(),
        leader: replicas.first().copied().unwrap_or(-1),
        replicas,
        removing_replicas: vec![],
        adding_replicas: vec![],
        leader_recovery_state: LeaderRecoveryState::Recovered,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

fn plan_topic(
    cluster: &Cluster<'_>,
    t: &NewTopic,
    seen: &BTreeMap<&str, usize>,
    taken_keys: &HashSet<String>,
    validate_config: ConfigValidator<'_>,
    placement_start: usize,
) -> Result<Vec<Vec<i32>>, ItemResult> {
    if seen.get(t.name.as_str()).copied().unwrap_or(0) > 1 {
        return Err(ItemResult::err(
            ErrorCode::InvalidRequest,
            format!("Duplicate topic name {} in the request.", t.name),
        ));
    }
    topic_name::validate(&t.name)
        .map_err(|m| ItemResult::err(ErrorCode::InvalidTopicException, m))?;
    if cluster.image.topics.contains_key(&t.name) {
        return Err(ItemResult::err(
            ErrorCode::TopicAlreadyExists,
            format!("Topic '{}' already exists.", t.name),
        ));
    }
    if taken_keys.contains(&topic_name::collision_key(&t.name)) {
        return Err(ItemResult::err(
            ErrorCode::InvalidTopicException,
            format!(
                "Topic '{}' collides with an existing topic: topic names differing only in '.' and '_' may not coexist.",
                t.name
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for (k, v) in &t.configs {
        if !names.insert(k.as_str()) {
            return Err(ItemResult::err(
                ErrorCode::InvalidConfig,
                format!("Duplicate config key {k}"),
            ));
        }
        validate_config(k, v.as_deref())
            .map_err(|m| ItemResult::err(ErrorCode::InvalidConfig, m))?;
    }
    if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(ItemResult::err(
                ErrorCode::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        return manual_assignment(cluster, &t.assignments);
    }
    let partitions = if t.num_partitions == -1 {
        cluster.default_num_partitions
    } else {
        t.num_partitions
    };
    if partitions <= 0 {
        return Err(ItemResult::err(
            ErrorCode::InvalidPartitions,
            "Number of partitions was set to an invalid non-positive value.",
        ));
    }
    let rf = if t.replication_factor == -1 {
        cluster.default_replication_factor
    } else {
        t.replication_factor
    };
    if rf <= 0 {
        return Err(ItemResult::err(
            ErrorCode::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        ));
    }
    place_on_cluster(cluster, partitions, rf, placement_start, 0)
}

fn manual_assignment(
    cluster: &Cluster<'_>,
    assignments: &[(i32, Vec<i32>)],
) -> Result<Vec<Vec<i32>>, ItemResult> {
    let mut by_index: BTreeMap<i32, &Vec<i32>> = BTreeMap::new();
    for (p, brokers) in assignments {
        by_index.insert(*p, brokers);
    }
    let n = by_index.len() as i32;
    let rf = assignments.first().map_or(0, |a| a.1.len());
    let mut out = Vec::new();
    for (expected, (p, brokers)) in by_index.iter().enumerate() {
        if *p != expected as i32 || *p >= n {
            return Err(ItemResult::err(
                ErrorCode::InvalidReplicaAssignment,
                "Partitions should be a consecutive 0-based integer sequence",
            ));
        }
        if brokers.is_empty() || brokers.len() != rf {
            return Err(ItemResult::err(
                ErrorCode::InvalidReplicaAssignment,
                "All partitions should have the same number of replicas",
            ));
        }
        let distinct: BTreeSet<_> = brokers.iter().collect();
        if distinct.len() != brokers.len() {
            return Err(ItemResult::err(
                ErrorCode::InvalidReplicaAssignment,
                format!("Duplicate brokers not allowed in replica assignment: {brokers:?}"),
            ));
        }
        for b in brokers.iter() {
            if !cluster.live_brokers.contains(b) {
                return Err(ItemResult::err(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("The manual partition assignment includes broker {b}, but no such broker is registered."),
                ));
            }
        }
        out.push((*brokers).clone());
    }
    Ok(out)
}

/// Round-robin placement over the live brokers: partition `p`'s replicas start at broker
/// `(start + p) % n` and continue in id order, so leaders spread evenly.
pub fn place(
    live_brokers: &[i32],
    partitions: i32,
    replication_factor: i16,
    start: usize,
    first_partition: i32,
) -> Result<Vec<Vec<i32>>, ItemResult> {
    let n = live_brokers.len();
    if replication_factor as usize > n || n == 0 {
        return Err(too_few_brokers(replication_factor, n));
    }
    Ok((0..partitions)
        .map(|i| {
            let p = (first_partition + i) as usize;
            (0..replication_factor as usize)
                .map(|r| live_brokers[(start + p + r) % n])
                .collect()
        })
        .collect())
}

fn too_few_brokers(replication_factor: i16, n: usize) -> ItemResult {
    ItemResult::err(
        ErrorCode::InvalidReplicationFactor,
        format!(
            "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {n} broker(s) are registered."
        ),
    )
}

/// Places replicas on the cluster's live brokers: [`place_rack_aware`] when any of them has
/// a rack, else [`place`].
fn place_on_cluster(
    cluster: &Cluster<'_>,
    partitions: i32,
    replication_factor: i16,
    start: usize,
    first_partition: i32,
) -> Result<Vec<Vec<i32>>, ItemResult> {
    let brokers: Vec<(i32, Option<&str>)> = cluster
        .live_brokers
        .iter()
        .map(|&id| {
            let rack = cluster.image.broker(id).and_then(|b| b.rack.as_deref());
            (id, rack)
        })
        .collect();
    if brokers.iter().any(|(_, rack)| rack.is_some()) {
        place_rack_aware(
            &brokers,
            partitions,
            replication_factor,
            start,
            first_partition,
        )
    } else {
        place(
            cluster.live_brokers,
            partitions,
            replication_factor,
            start,
            first_partition,
        )
    }
}

/// Rack-aware placement, the idea of Kafka's `StripedReplicaPlacer` simplified: the
/// brokers are grouped by rack (brokers without a rack form one more group), and each
/// partition takes its replicas from the racks in turn, starting one rack further along
/// than the previous partition, so a partition spans `min(replication factor, racks)`
/// racks and leaders rotate over the racks. Within a rack, partition `p` (counting from
/// `start`) starts at broker `p / racks` of the rack's id-sorted list, so over enough
/// partitions every broker of a rack leads in turn; a rack gives a partition a second
/// replica only once every rack has given one. As in Kafka, spreading over racks comes
/// before spreading over brokers: a rack with fewer brokers gets more replicas per broker.
pub fn place_rack_aware(
    brokers: &[(i32, Option<&str>)],
    partitions: i32,
    replication_factor: i16,
    start: usize,
    first_partition: i32,
) -> Result<Vec<Vec<i32>>, ItemResult> {
    let n = brokers.len();
    if replication_factor as usize > n || n == 0 {
        return Err(too_few_brokers(replication_factor, n));
    }
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for &(id, rack) in brokers {
        by_rack.entry(rack).or_default().push(id);
    }
    let racks: Vec<Vec<i32>> = by_rack
        .into_values()
        .map(|mut ids| {
            ids.sort_unstable();
            ids.dedup();
            ids
        })
        .collect();
    let distinct: usize = racks.iter().map(Vec::len).sum();
    if replication_factor as usize > distinct {
        return Err(too_few_brokers(replication_factor, distinct));
    }
    let r = racks.len();
    Ok((0..partitions)
        .map(|i| {
            let p = start + (first_partition + i) as usize;
            let mut taken = vec![0usize; r];
            let mut replicas = Vec::with_capacity(replication_factor as usize);
            let mut k = 0;
            while replicas.len() < replication_factor as usize {
                let rack = (p + k) % r;
                k += 1;
                let ids = &racks[rack];
                if taken[rack] == ids.len() {
                    continue;
                }
                replicas.push(ids[(p / r + taken[rack]) % ids.len()]);
                taken[rack] += 1;
            }
            replicas
        })
        .collect())
}

/// Plans deletion of topics named in a request. Unknown names get UNKNOWN_TOPIC_OR_PARTITION.
pub fn delete_topics(
    image: &MetadataImage,
    names: &[String],
) -> (Vec<MetadataRecord>, Vec<(String, Uuid, ItemResult)>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut done = HashSet::new();
    for name in names {
        match image.topic(name) {
            None => results.push((
                name.clone(),
                Uuid::nil(),
                ItemResult::err(
                    ErrorCode::UnknownTopicOrPartition,
                    "This server does not host this topic-partition.",
                ),
            )),
            Some(t) if topic_name::is_internal(name) => results.push((
                name.clone(),
                t.id,
                ItemResult::err(
                    ErrorCode::InvalidRequest,
                    format!("Internal topic {name} cannot be deleted."),
                ),
            )),
            Some(t) => {
                if done.insert(t.id) {
                    records.push(MetadataRecord::RemoveTopic { topic_id: t.id });
                }
                results.push((name.clone(), t.id, ItemResult::ok()));
            }
        }
    }
    (records, results)
}

/// Kafka's message for an operation over [`MAX_PARTITIONS_PER_REQUEST`] records.
pub const EXCESSIVE_BATCH: &str = "Unable to perform excessively large batch operation.";

/// Plans growing a topic to `count` partitions (CreatePartitions); more than
/// [`MAX_PARTITIONS_PER_REQUEST`] new ones is POLICY_VIOLATION.
pub fn create_partitions(
    cluster: &Cluster<'_>,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    placement_start: usize,
) -> Result<Vec<MetadataRecord>, ItemResult> {
    let topic = cluster.image.topic(name).ok_or_else(|| {
        ItemResult::err(
            ErrorCode::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        )
    })?;
    let current = topic.partitions.len() as i32;
    if count < current {
        return Err(ItemResult::err(
            ErrorCode::InvalidPartitions,
            format!("The topic {name} currently has {current} partition(s); {count} would not be an increase."),
        ));
    }
    if count == current {
        return Err(ItemResult::err(
            ErrorCode::InvalidPartitions,
            format!("Topic already has {current} partitions."),
        ));
    }
    let rf = topic
        .partitions
        .values()
        .next()
        .map_or(1, |p| p.replicas.len()) as i16;
    let new = count - current;
    if i64::from(new) > MAX_PARTITIONS_PER_REQUEST {
        return Err(ItemResult::err(ErrorCode::PolicyViolation, EXCESSIVE_BATCH));
    }
    let placed = match assignments {
        Some(a) => {
            if a.len() as i32 != new {
                return Err(ItemResult::err(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("Attempted to add {new} additional partition(s), but only {} assignment(s) were specified.", a.len()),
                ));
            }
            for brokers in a {
                for b in brokers {
                    if !cluster.live_brokers.contains(b) {
                        return Err(ItemResult::err(
                            ErrorCode::InvalidReplicaAssignment,
                            format!("The manual partition assignment includes broker {b}, but no such broker is registered."),
                        ));
                    }
                }
                if brokers.len() as i16 != rf {
                    return Err(ItemResult::err(
                        ErrorCode::InvalidReplicaAssignment,
                        format!("The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).", brokers.len()),
                    ));
                }
            }
            a.to_vec()
        }
        None => place_on_cluster(cluster, new, rf, placement_start, current)?,
    };
    Ok(placed
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| partition_record(topic.id, current + i as i32, replicas))
        .collect())
}

/// One incremental config operation (IncrementalAlterConfigs op codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    pub fn from_code(code: i8) -> Option<ConfigOp> {
        match code {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }
}

/// Plans config changes on one topic. With `replace_all` (legacy AlterConfigs) keys not named
/// are removed. `is_list` says whether a key holds a comma-separated list (for APPEND/SUBTRACT).
pub fn alter_topic_configs(
    image: &MetadataImage,
    topic: &str,
    ops: &[(String, ConfigOp, Option<String>)],
    replace_all: bool,
    validate_config: ConfigValidator<'_>,
    is_list: &dyn Fn(&str) -> bool,
) -> Result<Vec<MetadataRecord>, ItemResult> {
    if image.topic(topic).is_none() {
        return Err(ItemResult::err(
            ErrorCode::UnknownTopicOrPartition,
            format!("The topic '{topic}' does not exist."),
        ));
    }
    let validate = |next: &BTreeMap<String, String>| {
        next.iter()
            .try_for_each(|(k, v)| validate_config(k, Some(v)))
    };
    alter_resource_configs(
        image,
        RESOURCE_TOPIC,
        topic,
        ops,
        replace_all,
        &validate,
        is_list,
    )
}

/// The records that apply `ops` to the configs of resource (`resource_type`, `name`):
/// `validate` sees the resource's whole set of configs after the change (a message refuses
/// it with INVALID_CONFIG).
pub fn alter_resource_configs(
    image: &MetadataImage,
    resource_type: i8,
    name: &str,
    ops: &[(String, ConfigOp, Option<String>)],
    replace_all: bool,
    validate: ConfigSetValidator<'_>,
    is_list: &dyn Fn(&str) -> bool,
) -> Result<Vec<MetadataRecord>, ItemResult> {
    let current = image.resource_configs(resource_type, name);
    let mut next = if replace_all {
        BTreeMap::new()
    } else {
        current.clone()
    };
    let mut names = BTreeSet::new();
    for (key, op, value) in ops {
        if !names.insert(key.as_str()) {
            return Err(ItemResult::err(
                ErrorCode::InvalidRequest,
                format!("Error due to duplicate config keys: {key}"),
            ));
        }
        match op {
            ConfigOp::Set => {
                let v = value.clone().ok_or_else(|| {
                    ItemResult::err(
                        ErrorCode::InvalidRequest,
                        format!("Null value not supported for : {key}"),
                    )
                })?;
                next.insert(key.clone(), v);
            }
            ConfigOp::Delete => {
                next.remove(key);
            }
            ConfigOp::Append | ConfigOp::Subtract => {
                if !is_list(key) {
                    return Err(ItemResult::err(
                        ErrorCode::InvalidConfig,
                        format!("Config value append is not allowed for config key: {key}"),
                    ));
                }
                let existing: Vec<String> = next
                    .get(key)
                    .map(|v| {
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                let items: Vec<String> = value
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                let merged: Vec<String> = if *op == ConfigOp::Append {
                    let mut m = existing;
                    for i in items {
                        if !m.contains(&i) {
                            m.push(i);
                        }
                    }
                    m
                } else {
                    existing
                        .into_iter()
                        .filter(|e| !items.contains(e))
                        .collect()
                };
                if merged.is_empty() {
                    next.remove(key);
                } else {
                    next.insert(key.clone(), merged.join(","));
                }
            }
        }
    }
    validate(&next).map_err(|m| ItemResult::err(ErrorCode::InvalidConfig, m))?;
    let mut records = Vec::new();
    for (k, v) in &next {
        if current.get(k) != Some(v) {
            records.push(MetadataRecord::Config {
                resource_type,
                resource_name: name.to_string(),
                name: k.clone(),
                value: Some(v.clone()),
            });
        }
    }
    for k in current.keys() {
        if !next.contains_key(k) {
            records.push(MetadataRecord::Config {
                resource_type,
                resource_name: name.to_string(),
                name: k.clone(),
                value: None,
            });
        }
    }
    Ok(records)
}

/// The Kafka error codes the broker lifecycle functions below return (numbers from Kafka's
/// `Errors`). `krust_protocol::ErrorCode` does not name 77, 101, 102 or 119, and this crate
/// does not change that one, so the lifecycle results carry this type; [`code`] gives the
/// wire value.
///
/// [`code`]: BrokerErrorCode::code
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum BrokerErrorCode {
    /// The broker does not support a finalized feature level (35).
    UnsupportedVersion = 35,
    /// The broker epoch in the request is not the registration's (77).
    StaleBrokerEpoch = 77,
    /// Another live incarnation holds the broker id (101).
    DuplicateBrokerRegistration = 101,
    /// No broker is registered with the id (102).
    BrokerIdNotRegistered = 102,
    /// The request's cluster id is not this cluster's (104).
    InconsistentClusterId = 104,
    /// The registration's log directories are invalid (119).
    InvalidRegistration = 119,
}

impl BrokerErrorCode {
    /// The wire value.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// Kafka's name for the error.
    pub fn name(self) -> &'static str {
        match self {
            BrokerErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            BrokerErrorCode::StaleBrokerEpoch => "STALE_BROKER_EPOCH",
            BrokerErrorCode::DuplicateBrokerRegistration => "DUPLICATE_BROKER_REGISTRATION",
            BrokerErrorCode::BrokerIdNotRegistered => "BROKER_ID_NOT_REGISTERED",
            BrokerErrorCode::InconsistentClusterId => "INCONSISTENT_CLUSTER_ID",
            BrokerErrorCode::InvalidRegistration => "INVALID_REGISTRATION",
        }
    }

    /// The same error as a `krust_protocol::ErrorCode`, where that type names it.
    pub fn as_protocol(self) -> Option<ErrorCode> {
        match self {
            BrokerErrorCode::UnsupportedVersion => Some(ErrorCode::UnsupportedVersion),
            BrokerErrorCode::InconsistentClusterId => Some(ErrorCode::InconsistentClusterId),
            _ => None,
        }
    }
}

impl From<BrokerErrorCode> for i16 {
    fn from(e: BrokerErrorCode) -> i16 {
        e.code()
    }
}

impl std::fmt::Display for BrokerErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

const METADATA_VERSION: &str = "metadata.version";
/// The metadata.version a broker that names none is taken to support (Kafka's 3.0-IV1).
const MINIMUM_KRAFT_METADATA_VERSION: i16 = 1;

/// A broker's registration request, as BrokerRegistrationRequest carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerRegistrationInput {
    /// The broker id.
    pub broker_id: i32,
    /// The cluster id the broker believes it belongs to.
    pub cluster_id: String,
    /// The id of this run of the broker process.
    pub incarnation_id: Uuid,
    /// The listeners the broker can be reached on.
    pub listeners: Vec<BrokerEndpoint>,
    /// The feature ranges the broker supports.
    pub features: Vec<BrokerFeature>,
    /// The broker rack, if any.
    pub rack: Option<String>,
    /// Set by a ZooKeeper broker in migration mode; always refused.
    pub is_migrating_zk_broker: bool,
    /// The broker's online log directory ids (may be empty).
    pub log_dirs: Vec<Uuid>,
}

/// Plans a broker registration (BrokerRegistration), following Kafka's
/// `ClusterControlManager.registerBroker`. Returns the records to commit and the broker
/// epoch to answer with.
///
/// - The request's cluster id must be `cluster_id` (else INCONSISTENT_CLUSTER_ID).
/// - If the id is registered with another incarnation and `old_session_alive` (the caller's
///   heartbeat tracking says that incarnation's session has not timed out), the request is
///   refused with DUPLICATE_BROKER_REGISTRATION.
/// - A ZooKeeper broker in migration mode is refused with BROKER_ID_NOT_REGISTERED.
/// - Each feature range the broker sends must include the finalized level (metadata.version
///   defaults to 1, others to 0); a broker that sends no metadata.version range is taken to
///   support only level 1; every finalized feature with a non-zero level must be sent.
///   Otherwise UNSUPPORTED_VERSION.
/// - Log directories, if sent, must be distinct, not among Kafka's 100 reserved ids and not
///   registered to another broker (else INVALID_REGISTRATION). Unlike Kafka at
///   metadata.version 3.7-IV2 and later, an empty list is accepted.
/// - A new incarnation gets a fenced registration with epoch `next_epoch`, which must be
///   the offset the returned record will be committed at.
/// - The same incarnation keeps its epoch, fencing and controlled-shutdown state: if
///   nothing else changed there are no records, otherwise one amending record.
pub fn register_broker(
    image: &MetadataImage,
    cluster_id: &str,
    req: &BrokerRegistrationInput,
    old_session_alive: bool,
    next_epoch: i64,
) -> Result<(Vec<MetadataRecord>, i64), (BrokerErrorCode, String)> {
    if req.cluster_id != cluster_id {
        return Err((
            BrokerErrorCode::InconsistentClusterId,
            format!(
                "Expected cluster ID {cluster_id}, but got cluster ID {}",
                req.cluster_id
            ),
        ));
    }
    let existing = image.broker(req.broker_id);
    if let Some(e) = existing {
        if old_session_alive && e.incarnation_id != req.incarnation_id {
            return Err((
                BrokerErrorCode::DuplicateBrokerRegistration,
                "Another broker is registered with that broker id.".into(),
            ));
        }
    }
    if req.is_migrating_zk_broker {
        return Err((
            BrokerErrorCode::BrokerIdNotRegistered,
            "Controller does not support registering ZK brokers.".into(),
        ));
    }
    check_log_dirs(image, req)?;
    let features = registered_features(image, req)?;
    let mut record = RegisterBrokerRecord {
        broker_id: req.broker_id,
        is_migrating_zk_broker: false,
        incarnation_id: req.incarnation_id,
        broker_epoch: next_epoch,
        endpoints: req.listeners.clone(),
        features,
        rack: req.rack.clone(),
        fenced: true,
        in_controlled_shutdown: false,
        log_dirs: req.log_dirs.clone(),
    };
    match existing {
        Some(e) if e.incarnation_id == req.incarnation_id => {
            record.broker_epoch = e.epoch;
            record.fenced = e.fenced;
            record.in_controlled_shutdown = e.in_controlled_shutdown;
            if e.to_record() == record {
                Ok((Vec::new(), e.epoch))
            } else {
                Ok((vec![MetadataRecord::RegisterBroker(record)], e.epoch))
            }
        }
        _ => Ok((vec![MetadataRecord::RegisterBroker(record)], next_epoch)),
    }
}

fn check_log_dirs(
    image: &MetadataImage,
    req: &BrokerRegistrationInput,
) -> Result<(), (BrokerErrorCode, String)> {
    let invalid = |m: String| Err((BrokerErrorCode::InvalidRegistration, m));
    let mut seen = HashSet::new();
    for d in &req.log_dirs {
        // Kafka reserves the ids whose high half is 0 and whose low half, as a signed
        // long, is below 100.
        let (hi, lo) = d.as_u64_pair();
        if hi == 0 && (lo as i64) < 100 {
            return invalid("Reserved directory ID in request".into());
        }
        if !seen.insert(d) {
            return invalid("Duplicate directory ID in request".into());
        }
        if let Some(other) = image
            .brokers
            .values()
            .find(|b| b.id != req.broker_id && b.log_dirs.contains(d))
        {
            return invalid(format!(
                "Broker {} is already registered with directory {d}",
                other.id
            ));
        }
    }
    Ok(())
}

/// Checks the broker's feature ranges against the finalized levels and returns the ranges
/// to record.
fn registered_features(
    image: &MetadataImage,
    req: &BrokerRegistrationInput,
) -> Result<Vec<BrokerFeature>, (BrokerErrorCode, String)> {
    let check = |f: &BrokerFeature| {
        let default = if f.name == METADATA_VERSION { 1 } else { 0 };
        let finalized = image.features.get(&f.name).copied().unwrap_or(default);
        if finalized < f.min_supported_version || finalized > f.max_supported_version {
            return Err((
                BrokerErrorCode::UnsupportedVersion,
                format!(
                    "Unable to register because the broker does not support finalized version {finalized} of {}. The broker wants a version between {} and {}, inclusive.",
                    f.name, f.min_supported_version, f.max_supported_version
                ),
            ));
        }
        Ok(())
    };
    let mut out = Vec::with_capacity(req.features.len() + 1);
    for f in &req.features {
        check(f)?;
        out.push(f.clone());
    }
    if !req.features.iter().any(|f| f.name == METADATA_VERSION) {
        let f = BrokerFeature {
            name: METADATA_VERSION.into(),
            min_supported_version: MINIMUM_KRAFT_METADATA_VERSION,
            max_supported_version: MINIMUM_KRAFT_METADATA_VERSION,
        };
        check(&f)?;
        out.push(f);
    }
    for (name, &level) in &image.features {
        if level != 0 && name != METADATA_VERSION && !req.features.iter().any(|f| &f.name == name) {
            check(&BrokerFeature {
                name: name.clone(),
                min_supported_version: 0,
                max_supported_version: 0,
            })?;
        }
    }
    Ok(out)
}

/// What a heartbeat answer tells the broker (BrokerHeartbeatResponse's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    /// The broker's metadata offset has reached its registration record.
    pub is_caught_up: bool,
    /// The broker is fenced once the returned records are committed.
    pub is_fenced: bool,
    /// The broker may shut down now.
    pub should_shut_down: bool,
}

fn registration_change(b: &BrokerRegistration, fenced: BrokerFencingChange) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange {
        broker_id: b.id,
        broker_epoch: b.epoch,
        fenced,
        in_controlled_shutdown: false,
        log_dirs: Vec::new(),
    }
}

/// Plans the answer to a broker heartbeat (BrokerHeartbeat), following Kafka's broker
/// state machine (`BrokerHeartbeatManager.calculateNextBrokerState`) with the state taken
/// from the image. `registration_offset` is the offset of the broker's registration record
/// (its epoch, unless the registration was amended since); the broker is caught up when
/// `current_metadata_offset` has reached it.
///
/// - An unregistered id gets BROKER_ID_NOT_REGISTERED (Kafka answers STALE_BROKER_EPOCH
///   there); an epoch other than the registration's gets STALE_BROKER_EPOCH.
/// - A fenced broker is unfenced when it does not want fencing and is caught up; if it
///   wants to shut down it may do so at once.
/// - An unfenced broker that wants to shut down is fenced and told to shut down; one that
///   wants fencing is fenced.
/// - A broker in controlled shutdown is fenced if it is not already and told to shut down,
///   whatever it asks: only a new registration ends controlled shutdown, so it is never
///   unfenced.
///
/// Fencing and unfencing are written as `BrokerRegistrationChange` records, as Kafka does
/// from metadata.version 3.3-IV2 on. Only the broker's own records are returned: the
/// partition side (ISR shrinks and new leaders on fencing, leaders back on unfencing) is
/// [`fence_broker_partitions`] / [`unfence_broker_partitions`], which the caller adds to
/// the same commit. Kafka also keeps a broker in controlled shutdown, rather than telling
/// it to shut down, until it leads no partition; that does not happen here, so the broker
/// is fenced straight away.
pub fn broker_heartbeat(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
    current_metadata_offset: i64,
    want_fence: bool,
    want_shut_down: bool,
    registration_offset: i64,
) -> Result<(Vec<MetadataRecord>, HeartbeatOutcome), BrokerErrorCode> {
    let b = image
        .broker(broker_id)
        .ok_or(BrokerErrorCode::BrokerIdNotRegistered)?;
    if b.epoch != broker_epoch {
        return Err(BrokerErrorCode::StaleBrokerEpoch);
    }
    let is_caught_up = current_metadata_offset >= registration_offset;
    let fence = || vec![registration_change(b, BrokerFencingChange::Fence)];
    let (records, is_fenced, should_shut_down) = if b.in_controlled_shutdown {
        // Only a new registration ends controlled shutdown: never unfence such a broker.
        let records = if b.fenced { Vec::new() } else { fence() };
        (records, true, true)
    } else if b.fenced {
        if want_shut_down {
            (Vec::new(), true, true)
        } else if !want_fence && is_caught_up {
            (
                vec![registration_change(b, BrokerFencingChange::Unfence)],
                false,
                false,
            )
        } else {
            (Vec::new(), true, false)
        }
    } else if want_shut_down {
        (fence(), true, true)
    } else if want_fence {
        (fence(), true, false)
    } else {
        (Vec::new(), false, false)
    };
    Ok((
        records,
        HeartbeatOutcome {
            is_caught_up,
            is_fenced,
            should_shut_down,
        },
    ))
}

/// Plans fencing a broker whose session timed out: one `BrokerRegistrationChange` record,
/// or none if the broker is unknown or already fenced. The partition changes that go with
/// it are [`fence_broker_partitions`]'s.
pub fn fence_broker(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    match image.broker(broker_id) {
        Some(b) if !b.fenced => vec![registration_change(b, BrokerFencingChange::Fence)],
        _ => Vec::new(),
    }
}

/// Plans removing a broker's registration (UnregisterBroker); BROKER_ID_NOT_REGISTERED if
/// there is none.
pub fn unregister_broker(
    image: &MetadataImage,
    broker_id: i32,
) -> Result<Vec<MetadataRecord>, BrokerErrorCode> {
    let b = image
        .broker(broker_id)
        .ok_or(BrokerErrorCode::BrokerIdNotRegistered)?;
    Ok(vec![MetadataRecord::UnregisterBroker {
        broker_id,
        broker_epoch: b.epoch,
    }])
}

/// The Kafka error codes the partition leadership and reassignment functions below return
/// (numbers from Kafka's `Errors`). `krust_protocol::ErrorCode` does not name 77, 80, 83,
/// 84, 85, 95, 107 or 108, so, as [`BrokerErrorCode`] does for the broker lifecycle, these
/// functions carry this type: [`code`] gives the wire value and [`as_protocol`] the
/// `ErrorCode` where that type has one.
///
/// [`code`]: PartitionErrorCode::code
/// [`as_protocol`]: PartitionErrorCode::as_protocol
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum PartitionErrorCode {
    /// No such partition (3); also ElectLeaders' answer for an unknown topic.
    UnknownTopicOrPartition = 3,
    /// A reassignment's target replicas are empty, name a broker twice or name a broker
    /// that is not registered; or cancelling it would need an unclean leader election
    /// that the topic does not allow (39).
    InvalidReplicaAssignment = 39,
    /// The request carries a leader or partition epoch newer than the image's: this node
    /// is probably no longer the active controller (41).
    NotController = 41,
    /// The requester is not the leader, or the new ISR is malformed (42).
    InvalidRequest = 42,
    /// The request's leader epoch is older than the partition's (74).
    FencedLeaderEpoch = 74,
    /// The requesting broker is not registered with that epoch (77).
    StaleBrokerEpoch = 77,
    /// The preferred replica cannot lead: not live or not in the ISR (80).
    PreferredLeaderNotAvailable = 80,
    /// No replica can lead, even uncleanly (83).
    EligibleLeadersNotAvailable = 83,
    /// The partition already has the leader the election asks for (84).
    ElectionNotNeeded = 84,
    /// A reassignment cancellation for a partition that has none in progress (85).
    NoReassignmentInProgress = 85,
    /// The request's partition epoch is older than the partition's (95).
    InvalidUpdateVersion = 95,
    /// No topic has the id (100).
    UnknownTopicId = 100,
    /// The new ISR names a broker that is not registered, fenced, in controlled shutdown, or
    /// registered with another epoch (107).
    IneligibleReplica = 107,
    /// The change was made but the leader changed with it (108).
    NewLeaderElected = 108,
}

impl PartitionErrorCode {
    /// The wire value.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// Kafka's name for the error.
    pub fn name(self) -> &'static str {
        match self {
            PartitionErrorCode::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            PartitionErrorCode::InvalidReplicaAssignment => "INVALID_REPLICA_ASSIGNMENT",
            PartitionErrorCode::NotController => "NOT_CONTROLLER",
            PartitionErrorCode::InvalidRequest => "INVALID_REQUEST",
            PartitionErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            PartitionErrorCode::StaleBrokerEpoch => "STALE_BROKER_EPOCH",
            PartitionErrorCode::PreferredLeaderNotAvailable => "PREFERRED_LEADER_NOT_AVAILABLE",
            PartitionErrorCode::EligibleLeadersNotAvailable => "ELIGIBLE_LEADERS_NOT_AVAILABLE",
            PartitionErrorCode::ElectionNotNeeded => "ELECTION_NOT_NEEDED",
            PartitionErrorCode::NoReassignmentInProgress => "NO_REASSIGNMENT_IN_PROGRESS",
            PartitionErrorCode::InvalidUpdateVersion => "INVALID_UPDATE_VERSION",
            PartitionErrorCode::UnknownTopicId => "UNKNOWN_TOPIC_ID",
            PartitionErrorCode::IneligibleReplica => "INELIGIBLE_REPLICA",
            PartitionErrorCode::NewLeaderElected => "NEW_LEADER_ELECTED",
        }
    }

    /// The same error as a `krust_protocol::ErrorCode`, where that type names it.
    pub fn as_protocol(self) -> Option<ErrorCode> {
        match self {
            PartitionErrorCode::UnknownTopicOrPartition => Some(ErrorCode::UnknownTopicOrPartition),
            PartitionErrorCode::InvalidReplicaAssignment => {
                Some(ErrorCode::InvalidReplicaAssignment)
            }
            PartitionErrorCode::NotController => Some(ErrorCode::NotController),
            PartitionErrorCode::InvalidRequest => Some(ErrorCode::InvalidRequest),
            PartitionErrorCode::FencedLeaderEpoch => Some(ErrorCode::FencedLeaderEpoch),
            PartitionErrorCode::UnknownTopicId => Some(ErrorCode::UnknownTopicId),
            _ => None,
        }
    }
}

impl From<PartitionErrorCode> for i16 {
    fn from(e: PartitionErrorCode) -> i16 {
        e.code()
    }
}

impl std::fmt::Display for PartitionErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// How a partition change picks its leader (Kafka's `PartitionChangeBuilder.Election`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Election {
    /// The first replica if it can lead; else keep the leader if it can; else the next
    /// replica that can.
    Preferred,
    /// Keep the leader if it can lead; else the first replica that can.
    Online,
    /// As `Online`; failing that, the first acceptable replica outside the ISR.
    Unclean,
}

/// The leader an election picks and whether the pick was unclean (outside the ISR).
/// A replica can lead cleanly when it is in `target_isr` and `acceptable`; candidates are
/// taken in the order of `replicas` (the replicas the change leaves).
fn elect_leader(
    current: &PartitionImage,
    replicas: &[i32],
    target_isr: &[i32],
    election: Election,
    acceptable: &dyn Fn(i32) -> bool,
) -> (i32, bool) {
    let valid = |r: i32| target_isr.contains(&r) && acceptable(r);
    if election == Election::Preferred {
        if let Some(&preferred) = replicas.first() {
            if valid(preferred) {
                return (preferred, false);
            }
        }
        if valid(current.leader) {
            return (current.leader, false);
        }
        return match replicas.iter().skip(1).find(|&&r| valid(r)) {
            Some(&r) => (r, false),
            None => (NO_LEADER, false),
        };
    }
    if valid(current.leader) {
        return (current.leader, false);
    }
    if let Some(&r) = replicas.iter().find(|&&r| valid(r)) {
        return (r, false);
    }
    if election == Election::Unclean {
        if let Some(&r) = replicas.iter().find(|&&r| acceptable(r)) {
            return (r, true);
        }
    }
    (NO_LEADER, false)
}

/// The state a partition change aims at (the targets of Kafka's `PartitionChangeBuilder`).
#[derive(Debug, Clone)]
struct ChangeTarget {
    isr: Vec<i32>,
    replicas: Vec<i32>,
    removing: Vec<i32>,
    adding: Vec<i32>,
    recovery: LeaderRecoveryState,
}

impl ChangeTarget {
    /// The partition as it is: a change towards it alters nothing by itself.
    fn of(current: &PartitionImage) -> ChangeTarget {
        ChangeTarget {
            isr: current.isr.clone(),
            replicas: current.replicas.clone(),
            removing: current.removing_replicas.clone(),
            adding: current.adding_replicas.clone(),
            recovery: current.leader_recovery_state,
        }
    }

    /// Whether the target has a reassignment in progress (replicas being added or removed).
    fn reassigning(&self) -> bool {
        !self.removing.is_empty() || !self.adding.is_empty()
    }

    /// The replicas and ISR that finish the target's reassignment, if it can finish
    /// (Kafka's `PartitionReassignmentReplicas.maybeCompleteReassignment`): the removing
    /// replicas leave the replicas and the ISR, and every remaining replica must be in the
    /// remaining ISR, which must not be empty. `None` without a reassignment in progress.
    fn completed(&self) -> Option<(Vec<i32>, Vec<i32>)> {
        if !self.reassigning() {
            return None;
        }
        let kept = |r: &&i32| !self.removing.contains(r);
        let isr: Vec<i32> = self.isr.iter().filter(kept).copied().collect();
        let replicas: Vec<i32> = self.replicas.iter().filter(kept).copied().collect();
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return None;
        }
        Some((replicas, isr))
    }
}

/// The change to one partition, following Kafka's `PartitionChangeBuilder.build` for
/// krust's metadata.version (leader recovery supported, no leader epoch bump on an ISR
/// shrink) without eligible leader replicas:
///
/// 1. a reassignment in progress that the target allows to finish
///    ([`ChangeTarget::completed`]) is finished: replicas and ISR lose the removing
///    replicas, adding and removing are cleared;
/// 2. elect a leader among the target ISR, in target replica order (see [`Election`]); a
///    new leader is written, and an unclean one also sets the ISR to itself alone and marks
///    the leader as recovering;
/// 3. if the leader does not change but the replicas lose a member, the current leader is
///    written again, so the leader epoch is bumped (Kafka's
///    `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`);
/// 4. unless an unclean election already set it, a changed, non-empty ISR is written (an
///    empty ISR never is: the last member stays, so the partition can come back when it
///    does);
/// 5. changed (non-empty) replicas, changed removing and adding lists, and a recovery
///    state other than the current one are written.
///
/// `None` when nothing changes.
fn build_partition_change(
    topic_id: Uuid,
    partition_id: i32,
    current: &PartitionImage,
    target: ChangeTarget,
    election: Election,
    acceptable: &dyn Fn(i32) -> bool,
) -> Option<PartitionChangeRecord> {
    let mut target = target;
    if let Some((replicas, isr)) = target.completed() {
        target.replicas = replicas;
        target.isr = isr;
        target.removing.clear();
        target.adding.clear();
    }
    let mut change = PartitionChangeRecord::new(topic_id, partition_id);
    let (leader, unclean) =
        elect_leader(current, &target.replicas, &target.isr, election, acceptable);
    if leader != current.leader {
        change.leader = leader;
        if unclean {
            change.isr = Some(vec![leader]);
            if current.leader_recovery_state != LeaderRecoveryState::Recovering {
                change.leader_recovery_state = Some(LeaderRecoveryState::Recovering);
            }
        }
    } else if !current.replicas.iter().all(|r| target.replicas.contains(r)) {
        change.leader = current.leader;
    }
    if change.isr.is_none() && !target.isr.is_empty() && target.isr != current.isr {
        change.isr = Some(target.isr);
    }
    if !target.replicas.is_empty() && target.replicas != current.replicas {
        change.replicas = Some(target.replicas);
    }
    if target.removing != current.removing_replicas {
        change.removing_replicas = Some(target.removing);
    }
    if target.adding != current.adding_replicas {
        change.adding_replicas = Some(target.adding);
    }
    if target.recovery != current.leader_recovery_state {
        change.leader_recovery_state = Some(target.recovery);
    }
    (!change.is_noop()).then_some(change)
}

/// [`build_partition_change`] towards a new ISR and recovery state, the replicas as they
/// are (a reassignment in progress still finishes if the new ISR allows it).
fn build_change(
    topic_id: Uuid,
    partition_id: i32,
    current: &PartitionImage,
    target_isr: Vec<i32>,
    target_recovery: LeaderRecoveryState,
    election: Election,
    acceptable: &dyn Fn(i32) -> bool,
) -> Option<PartitionChangeRecord> {
    let target = ChangeTarget {
        isr: target_isr,
        recovery: target_recovery,
        ..ChangeTarget::of(current)
    };
    build_partition_change(
        topic_id,
        partition_id,
        current,
        target,
        election,
        acceptable,
    )
}

/// Plans an AlterPartition (KIP-497, at request version 2 or later: topics by id) for one
/// partition: the leader `broker_id` asks to set the ISR to `new_isr`. Returns the records
/// (none when nothing changes, e.g. the same ISR) and the partition as it will be once they
/// are applied, which is what the response reports. Each ISR member's broker epoch is
/// not checked; see [`alter_partition_with_broker_epochs`] for request version 3.
///
/// Checks, in Kafka's order (`ReplicationControlManager.alterPartition`):
/// - `broker_id` registered with `broker_epoch`, else STALE_BROKER_EPOCH (Kafka fails the
///   whole request with it: answer it as the top-level error);
/// - the topic id known, else UNKNOWN_TOPIC_ID; the partition, else
///   UNKNOWN_TOPIC_OR_PARTITION;
/// - a leader or partition epoch above the partition's: NOT_CONTROLLER (the requester has
///   seen a newer controller);
/// - a leader epoch below the partition's: FENCED_LEADER_EPOCH;
/// - the requester not the leader: INVALID_REQUEST (Kafka's code here; not
///   NOT_LEADER_OR_FOLLOWER);
/// - a partition epoch below the partition's: INVALID_UPDATE_VERSION;
/// - `new_isr` with a negative or duplicate id, a non-replica, or without the leader:
///   INVALID_REQUEST;
/// - `leader_recovery_state` not 0 or 1, RECOVERING with more than one ISR member, or
///   RECOVERING while the partition is RECOVERED: INVALID_REQUEST;
/// - an ISR member that is not live ([`MetadataImage::is_live`]: unregistered, fenced or in
///   controlled shutdown): INELIGIBLE_REPLICA.
///
/// If the partition has a reassignment in progress and the new ISR lets it finish (every
/// replica it keeps is in the ISR, see [`complete_reassignment`]), the same record also
/// finishes it, as Kafka's `PartitionChangeBuilder` does: the replicas and the ISR lose the
/// removing replicas, adding and removing are cleared, the leader epoch is bumped, and if
/// the leader was being removed the first kept replica (in replica order) that is in the
/// ISR and live becomes leader. The returned state is the final one. When its leader is not
/// `broker_id`, Kafka answers NEW_LEADER_ELECTED (FENCED_LEADER_EPOCH to request versions
/// 0 and 1) and still commits the records.
#[allow(clippy::too_many_arguments)]
pub fn alter_partition(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[i32],
    leader_recovery_state: i8,
) -> Result<(Vec<MetadataRecord>, PartitionImage), PartitionErrorCode> {
    let with_epochs: Vec<(i32, i64)> = new_isr.iter().map(|&b| (b, -1)).collect();
    alter_partition_with_broker_epochs(
        image,
        broker_id,
        broker_epoch,
        topic_id,
        partition,
        leader_epoch,
        partition_epoch,
        &with_epochs,
        leader_recovery_state,
    )
}

/// [`alter_partition`] with a broker epoch for each new ISR member, as AlterPartition v3
/// carries them (`NewIsrWithEpochs`, KIP-903): a member registered with another epoch is
/// ineligible (INELIGIBLE_REPLICA); an epoch of -1 skips that check.
#[allow(clippy::too_many_arguments)]
pub fn alter_partition_with_broker_epochs(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[(i32, i64)],
    leader_recovery_state: i8,
) -> Result<(Vec<MetadataRecord>, PartitionImage), PartitionErrorCode> {
    use PartitionErrorCode as E;
    match image.broker(broker_id) {
        Some(b) if b.epoch == broker_epoch => {}
        _ => return Err(E::StaleBrokerEpoch),
    }
    let current = image
        .topic_by_id(&topic_id)
        .ok_or(E::UnknownTopicId)?
        .partitions
        .get(&partition)
        .ok_or(E::UnknownTopicOrPartition)?;
    if leader_epoch > current.leader_epoch || partition_epoch > current.partition_epoch {
        return Err(E::NotController);
    }
    if leader_epoch < current.leader_epoch {
        return Err(E::FencedLeaderEpoch);
    }
    if broker_id != current.leader {
        return Err(E::InvalidRequest);
    }
    if partition_epoch < current.partition_epoch {
        return Err(E::InvalidUpdateVersion);
    }
    let isr: Vec<i32> = new_isr.iter().map(|&(b, _)| b).collect();
    let mut seen = HashSet::new();
    if !isr
        .iter()
        .all(|&b| b >= 0 && seen.insert(b) && current.replicas.contains(&b))
        || !isr.contains(&current.leader)
    {
        return Err(E::InvalidRequest);
    }
    let recovery =
        LeaderRecoveryState::from_value(leader_recovery_state).ok_or(E::InvalidRequest)?;
    if recovery == LeaderRecoveryState::Recovering
        && (isr.len() > 1 || current.leader_recovery_state == LeaderRecoveryState::Recovered)
    {
        return Err(E::InvalidRequest);
    }
    let eligible = |&(b, epoch): &(i32, i64)| {
        image
            .broker(b)
            .is_some_and(|r| r.is_live() && (epoch == -1 || epoch == r.epoch))
    };
    if !new_isr.iter().all(eligible) {
        return Err(E::IneligibleReplica);
    }
    let acceptable = |r: i32| image.is_live(r);
    let change = build_change(
        topic_id,
        partition,
        current,
        isr,
        recovery,
        Election::Online,
        &acceptable,
    );
    Ok(match change {
        Some(c) => {
            let after = current.merged(&c);
            (vec![MetadataRecord::PartitionChange(c)], after)
        }
        None => (Vec::new(), current.clone()),
    })
}

/// Plans the partition changes for a broker that is being fenced or is entering controlled
/// shutdown (Kafka's `handleBrokerFenced` / `handleBrokerInControlledShutdown`): for every
/// partition whose ISR holds `broker_id`, or that it leads:
///
/// - the broker leaves the ISR, unless it is the last member: an ISR is never emptied, so
///   the partition can come back when that broker does;
/// - if it led, the first replica (in replica order) that is in the new ISR and live
///   becomes leader, with a leader epoch bump; if there is none, and `unclean_allowed` says
///   so for the topic (its `unclean.leader.election.enable`), the first live replica becomes
///   leader with the ISR set to it alone and its recovery state RECOVERING (KIP-704);
///   otherwise the partition has no leader (-1).
///
/// `broker_id` is never a candidate, so the result is the same whether or not the image
/// already shows the broker fenced. The caller adds the broker's own fencing or
/// controlled-shutdown record.
pub fn fence_broker_partitions(
    image: &MetadataImage,
    broker_id: i32,
    unclean_allowed: impl Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r != broker_id && image.is_live(r);
    let mut out = Vec::new();
    for t in image.topics.values() {
        let mut election = None;
        for (&index, p) in &t.partitions {
            if p.leader != broker_id && !p.isr.contains(&broker_id) {
                continue;
            }
            let election = *election.get_or_insert_with(|| {
                if unclean_allowed(&t.name) {
                    Election::Unclean
                } else {
                    Election::Online
                }
            });
            let isr = p.isr.iter().copied().filter(|&r| r != broker_id).collect();
            if let Some(c) = build_change(
                t.id,
                index,
                p,
                isr,
                p.leader_recovery_state,
                election,
                &acceptable,
            ) {
                out.push(MetadataRecord::PartitionChange(c));
            }
        }
    }
    out
}

/// Plans the partition changes for a broker that is being unfenced (Kafka's
/// `handleBrokerUnfenced`): every partition without a leader elects the first replica (in
/// replica order) that is in its ISR and live, counting `broker_id` as live. A partition
/// whose ISR was left holding only this broker gets it back as leader, with a leader epoch
/// bump. The ISR is not changed.
///
/// The result is the same whether or not the image already shows the broker unfenced. The
/// caller adds the broker's own unfencing record. Kafka also tries unclean elections here
/// for topics that allow them; krust does not.
pub fn unfence_broker_partitions(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r == broker_id || image.is_live(r);
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (&index, p) in &t.partitions {
            if p.has_leader() {
                continue;
            }
            if let Some(c) = build_change(
                t.id,
                index,
                p,
                p.isr.clone(),
                p.leader_recovery_state,
                Election::Online,
                &acceptable,
            ) {
                out.push(MetadataRecord::PartitionChange(c));
            }
        }
    }
    out
}

/// ElectLeaders' election type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the preferred (first) replica (0).
    Preferred,
    /// Give a leaderless partition a leader, from outside the ISR if need be (1).
    Unclean,
}

impl ElectionType {
    /// Kafka's wire value.
    pub fn value(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }

    /// The type for a wire value; `None` for one Kafka does not define (Kafka answers
    /// INVALID_REQUEST).
    pub fn from_value(value: i8) -> Option<ElectionType> {
        match value {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// The outcome of an election for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionResult {
    /// The topic's id.
    pub topic_id: Uuid,
    /// The partition index.
    pub partition: i32,
    /// `None` when a leader was elected.
    pub error: Option<PartitionErrorCode>,
    /// Kafka's message, where it sends one.
    pub message: Option<String>,
}

/// Plans preferred leader elections (ElectLeaders with election type 0); see
/// [`elect_leaders`].
pub fn elect_preferred_leaders(
    image: &MetadataImage,
    partitions: Option<&[(Uuid, i32)]>,
) -> (Vec<MetadataRecord>, Vec<ElectionResult>) {
    elect_leaders(image, ElectionType::Preferred, partitions)
}

/// Plans leader elections (ElectLeaders, Kafka's `ReplicationControlManager.electLeaders`)
/// for the named partitions, or for every partition when `partitions` is `None`; then the
/// results leave out the partitions that needed no election, as Kafka's do. A partition
/// named twice is elected once.
///
/// - Unknown topic id or partition: UNKNOWN_TOPIC_OR_PARTITION (the caller answers unknown
///   topic names the same way).
/// - Preferred: ELECTION_NOT_NEEDED if the first replica already leads. Otherwise the first
///   replica becomes leader if it is live and in the ISR; if it cannot, Kafka's builder
///   keeps a live ISR leader, or gives a leaderless partition the first live ISR replica
///   (and answers success); if that changes nothing, PREFERRED_LEADER_NOT_AVAILABLE.
/// - Unclean: ELECTION_NOT_NEEDED if the partition has a leader. Otherwise the first live
///   ISR replica, else the first live replica (the ISR becomes it alone, recovering);
///   ELIGIBLE_LEADERS_NOT_AVAILABLE if no replica is live.
pub fn elect_leaders(
    image: &MetadataImage,
    election_type: ElectionType,
    partitions: Option<&[(Uuid, i32)]>,
) -> (Vec<MetadataRecord>, Vec<ElectionResult>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut done: BTreeMap<(Uuid, i32), (Option<PartitionErrorCode>, Option<String>)> =
        BTreeMap::new();
    let all: Vec<(Uuid, i32)>;
    let wanted = match partitions {
        Some(p) => p,
        None => {
            all = image
                .topics
                .values()
                .flat_map(|t| t.partitions.keys().map(move |&p| (t.id, p)))
                .collect();
            &all
        }
    };
    for &(topic_id, partition) in wanted {
        let (error, message) = done
            .entry((topic_id, partition))
            .or_insert_with(|| elect_one(image, election_type, topic_id, partition, &mut records))
            .clone();
        if partitions.is_none() && error == Some(PartitionErrorCode::ElectionNotNeeded) {
            continue;
        }
        results.push(ElectionResult {
            topic_id,
            partition,
            error,
            message,
        });
    }
    (records, results)
}

fn elect_one(
    image: &MetadataImage,
    election_type: ElectionType,
    topic_id: Uuid,
    partition: i32,
    records: &mut Vec<MetadataRecord>,
) -> (Option<PartitionErrorCode>, Option<String>) {
    let Some(topic) = image.topic_by_id(&topic_id) else {
        return (
            Some(PartitionErrorCode::UnknownTopicOrPartition),
            Some(format!("No such topic id as {topic_id}")),
        );
    };
    let Some(current) = topic.partitions.get(&partition) else {
        return (
            Some(PartitionErrorCode::UnknownTopicOrPartition),
            Some(format!("No such partition as {}-{partition}", topic.name)),
        );
    };
    let (not_needed, election, unavailable) = match election_type {
        ElectionType::Preferred => (
            current.leader == current.preferred_leader(),
            Election::Preferred,
            PartitionErrorCode::PreferredLeaderNotAvailable,
        ),
        ElectionType::Unclean => (
            current.has_leader(),
            Election::Unclean,
            PartitionErrorCode::EligibleLeadersNotAvailable,
        ),
    };
    if not_needed {
        return (Some(PartitionErrorCode::ElectionNotNeeded), None);
    }
    let acceptable = |r: i32| image.is_live(r);
    match build_change(
        topic_id,
        partition,
        current,
        current.isr.clone(),
        current.leader_recovery_state,
        election,
        &acceptable,
    ) {
        Some(c) => {
            records.push(MetadataRecord::PartitionChange(c));
            (None, None)
        }
        None => (Some(unavailable), None),
    }
}

/// The outcome of one partition of an AlterPartitionReassignments request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentResult {
    /// The topic's id.
    pub topic_id: Uuid,
    /// The partition index.
    pub partition: i32,
    /// `None` when the reassignment was started, replaced, finished or cancelled (or
    /// nothing needed to change).
    pub error: Option<PartitionErrorCode>,
    /// Kafka's message for the error.
    pub message: Option<String>,
}

/// One ongoing reassignment as ListPartitionReassignments reports it: topic id, partition,
/// replicas (the target first, then the replicas being removed), adding replicas, removing
/// replicas.
pub type OngoingReassignment = (Uuid, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// Plans an AlterPartitionReassignments (KIP-455) request for partitions named by topic id
/// (the caller answers unknown topic names with UNKNOWN_TOPIC_OR_PARTITION). Each item is a
/// partition and its target replicas, or `None` to cancel its reassignment. A cancellation
/// that would need an unclean leader election is refused; see
/// [`alter_partition_reassignments_with_unclean`] to allow it per topic.
pub fn alter_partition_reassignments(
    image: &MetadataImage,
    requests: &[(Uuid, i32, Option<Vec<i32>>)],
) -> (Vec<MetadataRecord>, Vec<ReassignmentResult>) {
    alter_partition_reassignments_with_unclean(image, requests, |_| false)
}

/// [`alter_partition_reassignments`], with `unclean_allowed` saying for a topic name
/// whether its `unclean.leader.election.enable` is on. Follows Kafka's
/// `ReplicationControlManager.alterPartitionReassignments`; every item gets a result, in
/// request order, and the records of the successful items are returned together (Kafka
/// commits them atomically).
///
/// - Unknown topic id or partition: UNKNOWN_TOPIC_OR_PARTITION.
/// - Cancel (`None`): NO_REASSIGNMENT_IN_PROGRESS if the partition has none. Otherwise
///   Kafka's revert (`PartitionReassignmentRevert`): the replicas become the current ones
///   without the adding ones (in replica order), the ISR loses the adding ones, adding and
///   removing are cleared. If that would empty the ISR, the ISR becomes the first remaining
///   replica, which is an unclean election: refused with INVALID_REPLICA_ASSIGNMENT unless
///   the topic allows unclean elections. A leader that is removed is replaced by the first
///   remaining replica in the new ISR that is live (or, if the topic allows it, uncleanly
///   by the first live one).
/// - New target: INVALID_REPLICA_ASSIGNMENT if it is empty, or (checking its ids in
///   ascending order) names a broker that is not registered (fenced brokers count as
///   registered, as in Kafka) or names one twice. Otherwise
///   (`PartitionReassignmentReplicas`) adding = target − current replicas and removing =
///   current replicas − target, both sorted; the replicas become the target followed by
///   the removing ones. "Current replicas" is the whole replica list, so a target that
///   replaces an ongoing reassignment is merged with everything the partition holds now
///   (the original replicas and the ones the previous reassignment was adding); a later
///   cancel reverts to that list without the new adding ones. If the ISR already holds
///   every target replica, the reassignment finishes in the same record (see
///   [`complete_reassignment`]); a target equal to the current replicas changes nothing.
///   Unlike Kafka's builder, which leaves the previous adding (or removing) list in place
///   when the new one is empty, the new lists are always written.
///
/// Whenever the replicas lose a member the leader epoch is bumped, even if the leader
/// stays (Kafka's `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`); a leader change
/// bumps it anyway. A partition named more than once is planned against the state the
/// earlier items leave, so the records apply cleanly in order.
pub fn alter_partition_reassignments_with_unclean(
    image: &MetadataImage,
    requests: &[(Uuid, i32, Option<Vec<i32>>)],
    unclean_allowed: impl Fn(&str) -> bool,
) -> (Vec<MetadataRecord>, Vec<ReassignmentResult>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut staged: HashMap<(Uuid, i32), PartitionImage> = HashMap::new();
    for (topic_id, partition, target) in requests {
        let (topic_id, partition) = (*topic_id, *partition);
        let outcome = reassign_one(
            image,
            &staged,
            topic_id,
            partition,
            target.as_deref(),
            &unclean_allowed,
        );
        let (error, message) = match outcome {
            Ok(Some((change, after))) => {
                staged.insert((topic_id, partition), after);
                records.push(MetadataRecord::PartitionChange(change));
                (None, None)
            }
            Ok(None) => (None, None),
            Err((code, message)) => (Some(code), Some(message)),
        };
        results.push(ReassignmentResult {
            topic_id,
            partition,
            error,
            message,
        });
    }
    (records, results)
}

/// One item of [`alter_partition_reassignments_with_unclean`]: the change (if any) and the
/// partition after it.
fn reassign_one(
    image: &MetadataImage,
    staged: &HashMap<(Uuid, i32), PartitionImage>,
    topic_id: Uuid,
    partition: i32,
    target: Option<&[i32]>,
    unclean_allowed: &dyn Fn(&str) -> bool,
) -> Result<Option<(PartitionChangeRecord, PartitionImage)>, (PartitionErrorCode, String)> {
    use PartitionErrorCode as E;
    let topic = image.topic_by_id(&topic_id).ok_or_else(|| {
        (
            E::UnknownTopicOrPartition,
            format!("Unable to find a topic with ID {topic_id}."),
        )
    })?;
    let current = staged
        .get(&(topic_id, partition))
        .or_else(|| topic.partitions.get(&partition))
        .ok_or_else(|| {
            (
                E::UnknownTopicOrPartition,
                format!("Unable to find partition {}:{partition}.", topic.name),
            )
        })?;
    let acceptable = |r: i32| image.is_live(r);
    let (change_target, election) = match target {
        None => {
            let (change_target, unclean) = revert_reassignment(current)?;
            let allowed = unclean_allowed(&topic.name);
            if unclean && !allowed {
                return Err((
                    E::InvalidReplicaAssignment,
                    format!(
                        "Unable to revert partition assignment for {}:{partition} because it would require an unclean leader election.",
                        topic.name
                    ),
                ));
            }
            let election = if allowed {
                Election::Unclean
            } else {
                Election::Online
            };
            (change_target, election)
        }
        Some(target) => {
            validate_reassignment_target(image, target)?;
            (reassignment_target(current, target), Election::Online)
        }
    };
    Ok(build_partition_change(
        topic_id,
        partition,
        current,
        change_target,
        election,
        &acceptable,
    )
    .map(|c| {
        let after = current.merged(&c);
        (c, after)
    }))
}

/// Kafka's `PartitionReassignmentRevert`: the target that cancels `current`'s reassignment,
/// and whether it needs an unclean election (the ISR held only adding replicas).
fn revert_reassignment(
    current: &PartitionImage,
) -> Result<(ChangeTarget, bool), (PartitionErrorCode, String)> {
    if current.removing_replicas.is_empty() && current.adding_replicas.is_empty() {
        return Err((
            PartitionErrorCode::NoReassignmentInProgress,
            "No partition reassignment is in progress.".into(),
        ));
    }
    let not_adding = |r: &&i32| !current.adding_replicas.contains(r);
    let replicas: Vec<i32> = current
        .replicas
        .iter()
        .filter(not_adding)
        .copied()
        .collect();
    let mut isr: Vec<i32> = current.isr.iter().filter(not_adding).copied().collect();
    let unclean = isr.is_empty();
    if unclean {
        let Some(&first) = replicas.first() else {
            return Err((
                PartitionErrorCode::InvalidReplicaAssignment,
                "Invalid replica assignment: addingReplicas contains all replicas.".into(),
            ));
        };
        isr.push(first);
    }
    let target = ChangeTarget {
        isr,
        replicas,
        removing: Vec::new(),
        adding: Vec::new(),
        recovery: current.leader_recovery_state,
    };
    Ok((target, unclean))
}

/// Kafka's `validateManualPartitionAssignment` for a reassignment target: not empty, and
/// (in ascending id order) every broker registered and named once.
fn validate_reassignment_target(
    image: &MetadataImage,
    target: &[i32],
) -> Result<(), (PartitionErrorCode, String)> {
    let invalid = |m: String| (PartitionErrorCode::InvalidReplicaAssignment, m);
    if target.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for b in sorted {
        if image.broker(b).is_none() {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            )));
        }
        if previous == Some(b) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {b} more than once."
            )));
        }
        previous = Some(b);
    }
    Ok(())
}

/// Kafka's `PartitionReassignmentReplicas` for a new target: the change target that starts
/// moving `current` to `target` (the ISR and recovery state as they are).
fn reassignment_target(current: &PartitionImage, target: &[i32]) -> ChangeTarget {
    let removing: Vec<i32> = current
        .replicas
        .iter()
        .filter(|r| !target.contains(r))
        .copied()
        .collect::<BTreeSet<i32>>()
        .into_iter()
        .collect();
    let adding: Vec<i32> = target
        .iter()
        .filter(|r| !current.replicas.contains(r))
        .copied()
        .collect::<BTreeSet<i32>>()
        .into_iter()
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    ChangeTarget {
        replicas,
        removing,
        adding,
        ..ChangeTarget::of(current)
    }
}

/// Plans finishing a partition's reassignment: the record that does it if the partition
/// has one in progress and its ISR, without the removing replicas, is not empty and holds
/// every replica that stays (so every adding replica has joined, and no staying replica has
/// dropped out: Kafka's condition); otherwise nothing. The record sets the replicas to the
/// target (the replicas without the removing ones, in order), the ISR to its members that
/// stay, clears adding and removing, and bumps the leader epoch if replicas are removed; a
/// leader that is removed (or not live) is replaced by the first staying replica that is in
/// the new ISR and live, or none (-1).
///
/// [`alter_partition`] and [`alter_partition_reassignments`] already finish a
/// reassignment in the change that allows it; this is for a caller that changes the ISR
/// some other way, or to finish one an image holds ready.
pub fn complete_reassignment(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
) -> Vec<MetadataRecord> {
    let Some(current) = image.partition(&topic_id, partition) else {
        return Vec::new();
    };
    let target = ChangeTarget::of(current);
    if target.completed().is_none() {
        return Vec::new();
    }
    let acceptable = |r: i32| image.is_live(r);
    build_partition_change(
        topic_id,
        partition,
        current,
        target,
        Election::Online,
        &acceptable,
    )
    .map(MetadataRecord::PartitionChange)
    .into_iter()
    .collect()
}

/// Lists the reassignments in progress (ListPartitionReassignments, Kafka's
/// `listPartitionReassignments`): for the named partitions, in request order, leaving out
/// unknown ones, ones named twice and ones without a reassignment; or, when `partitions`
/// is `None`, for every partition with one (topics by name, partitions by index).
pub fn list_partition_reassignments(
    image: &MetadataImage,
    partitions: Option<&[(Uuid, i32)]>,
) -> Vec<OngoingReassignment> {
    let ongoing = |topic_id: Uuid, partition: i32, p: &PartitionImage| {
        (!p.adding_replicas.is_empty() || !p.removing_replicas.is_empty()).then(|| {
            (
                topic_id,
                partition,
                p.replicas.clone(),
                p.adding_replicas.clone(),
                p.removing_replicas.clone(),
            )
        })
    };
    match partitions {
        None => image
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter_map(move |(&index, p)| ongoing(t.id, index, p))
            })
            .collect(),
        Some(wanted) => {
            let mut seen = HashSet::new();
            wanted
                .iter()
                .filter(|&&key| seen.insert(key))
                .filter_map(|&(topic_id, partition)| {
                    let p = image.partition(&topic_id, partition)?;
                    ongoing(topic_id, partition, p)
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_config(_: &str, _: Option<&str>) -> Result<(), String> {
        Ok(())
    }

    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            let next = image.offset + 1;
            image.apply(next, r).expect("apply");
        }
    }

    /// Broker 1 alone, with `default_num_partitions` and a default replication factor of 1.
    fn one_broker(image: &MetadataImage, default_num_partitions: i32) -> Cluster<'_> {
        Cluster {
            image,
            live_brokers: &[1],
            default_num_partitions,
            default_replication_factor: 1,
        }
    }

    fn create(
        image: &MetadataImage,
        brokers: &[i32],
        t: NewTopic,
    ) -> (Vec<MetadataRecord>, Vec<CreatedTopic>) {
        let cluster = Cluster {
            image,
            live_brokers: brokers,
            default_num_partitions: 1,
            default_replication_factor: 1,
        };
        let mut n = 0u128;
        create_topics(
            &cluster,
            &[t],
            &ok_config,
            &mut || {
                n += 1;
                Uuid::from_u128(n)
            },
            0,
        )
    }

    fn topic(name: &str, p: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: p,
            replication_factor: rf,
            ..Default::default()
        }
    }

    #[test]
    fn create_places_leaders_round_robin() {
        let img = MetadataImage::new();
        let (records, results) = create(&img, &[1, 2, 3], topic("orders", 3, 3));
        assert!(results[0].result.is_ok());
        assert_eq!(results[0].num_partitions, 3);
        let leaders: Vec<i32> = records
            .iter()
            .filter_map(|r| match r {
                MetadataRecord::Partition(p) => Some(p.leader),
                _ => None,
            })
            .collect();
        assert_eq!(leaders, vec![1, 2, 3]);
    }

    #[test]
    fn create_rejections() {
        let mut img = MetadataImage::new();
        let (recs, _) = create(&img, &[1], topic("a.b", 1, 1));
        apply_all(&mut img, &recs);
        let cases = [
            (topic("a.b", 1, 1), ErrorCode::TopicAlreadyExists),
            (topic("a_b", 1, 1), ErrorCode::InvalidTopicException),
            (topic("bad name", 1, 1), ErrorCode::InvalidTopicException),
            (topic("x", 0, 1), ErrorCode::InvalidPartitions),
            (topic("x", 1, 2), ErrorCode::InvalidReplicationFactor),
            (topic("x", 1, 0), ErrorCode::InvalidReplicationFactor),
        ];
        for (t, code) in cases {
            let (recs, res) = create(&img, &[1], t.clone());
            assert!(recs.is_empty(), "{t:?}");
            assert_eq!(res[0].result.error, code, "{t:?}");
        }
        let cluster = one_broker(&img, 1);
        let dup = vec![topic("d", 1, 1), topic("d", 1, 1)];
        let (recs, res) = create_topics(&cluster, &dup, &ok_config, &mut Uuid::new_v4, 0);
        assert!(recs.is_empty());
        assert!(res
            .iter()
            .all(|r| r.result.error == ErrorCode::InvalidRequest));
        let bad_cfg = |_: &str, _: Option<&str>| Err::<(), String>("nope".into());
        let mut t = topic("c", 1, 1);
        t.configs = vec![("retention.ms".into(), Some("x".into()))];
        let (recs, res) = create_topics(&cluster, &[t], &bad_cfg, &mut Uuid::new_v4, 0);
        assert!(recs.is_empty());
        assert_eq!(res[0].result.error, ErrorCode::InvalidConfig);
    }

    #[test]
    fn defaults_apply_for_minus_one() {
        let img = MetadataImage::new();
        let cluster = one_broker(&img, 4);
        let (_, res) = create_topics(
            &cluster,
            &[topic("t", -1, -1)],
            &ok_config,
            &mut Uuid::new_v4,
            0,
        );
        assert_eq!(res[0].num_partitions, 4);
        assert_eq!(res[0].replication_factor, 1);
    }

    #[test]
    fn more_than_ten_thousand_partitions_per_request_is_a_policy_violation() {
        let mut img = MetadataImage::new();
        let cluster = one_broker(&img, 5_000);
        // 10 000 in all is allowed; one more, counting the default for -1, is not.
        let (recs, res) = create_topics(
            &cluster,
            &[topic("a", -1, 1), topic("b", 5_000, 1)],
            &ok_config,
            &mut Uuid::new_v4,
            0,
        );
        assert!(res.iter().all(|r| r.result.is_ok()), "{res:?}");
        assert_eq!(recs.len(), 10_002);
        for n in [5_001, i32::MAX] {
            let (recs, res) = create_topics(
                &cluster,
                &[topic("c", -1, 1), topic("d", n, 1)],
                &ok_config,
                &mut Uuid::new_v4,
                0,
            );
            assert!(recs.is_empty());
            assert!(
                res.iter()
                    .all(|r| r.result.error == ErrorCode::PolicyViolation),
                "{res:?}"
            );
        }
        let (recs, _) = create(&img, &[1], topic("t", 1, 1));
        apply_all(&mut img, &recs);
        let cluster = one_broker(&img, 1);
        for count in [10_002, i32::MAX] {
            assert_eq!(
                create_partitions(&cluster, "t", count, None, 0)
                    .err()
                    .map(|e| e.error),
                Some(ErrorCode::PolicyViolation)
            );
        }
        assert_eq!(
            create_partitions(&cluster, "t", 10_001, None, 0)
                .expect("grow")
                .len(),
            10_000
        );
    }

    #[test]
    fn partitions_grow_and_never_shrink() {
        let mut img = MetadataImage::new();
        let (recs, _) = create(&img, &[1], topic("t", 2, 1));
        apply_all(&mut img, &recs);
        let cluster = one_broker(&img, 1);
        assert_eq!(
            create_partitions(&cluster, "t", 1, None, 0)
                .err()
                .map(|e| e.error),
            Some(ErrorCode::InvalidPartitions)
        );
        assert_eq!(
            create_partitions(&cluster, "t", 2, None, 0)
                .err()
                .map(|e| e.error),
            Some(ErrorCode::InvalidPartitions)
        );
        let recs = create_partitions(&cluster, "t", 5, None, 0).expect("grow");
        assert_eq!(recs.len(), 3);
        apply_all(&mut img, &recs);
        assert_eq!(img.topic("t").map(|t| t.partitions.len()), Some(5));
    }

    const CLUSTER: &str = "cluster-1";

    fn mv_image() -> MetadataImage {
        let mut img = MetadataImage::new();
        apply_all(
            &mut img,
            &[MetadataRecord::FeatureLevel {
                name: "metadata.version".into(),
                level: 27,
            }],
        );
        img
    }

    fn registration(id: i32, incarnation: u128) -> BrokerRegistrationInput {
        BrokerRegistrationInput {
            broker_id: id,
            cluster_id: CLUSTER.into(),
            incarnation_id: Uuid::from_u128(incarnation),
            listeners: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092,
                security_protocol: 0,
            }],
            features: vec![BrokerFeature {
                name: "metadata.version".into(),
                min_supported_version: 1,
                max_supported_version: 27,
            }],
            ..Default::default()
        }
    }

    /// Registers `req` as a new incarnation and commits it; returns the epoch.
    fn register(img: &mut MetadataImage, req: &BrokerRegistrationInput) -> i64 {
        let next = img.offset + 1;
        let (recs, epoch) = register_broker(img, CLUSTER, req, false, next).expect("register");
        assert_eq!(epoch, next);
        apply_all(img, &recs);
        epoch
    }

    fn heartbeat(
        img: &MetadataImage,
        id: i32,
        epoch: i64,
        offset: i64,
        want_fence: bool,
        want_shut_down: bool,
    ) -> Result<(Vec<MetadataRecord>, HeartbeatOutcome), BrokerErrorCode> {
        broker_heartbeat(img, id, epoch, offset, want_fence, want_shut_down, epoch)
    }

    fn outcome(is_caught_up: bool, is_fenced: bool, should_shut_down: bool) -> HeartbeatOutcome {
        HeartbeatOutcome {
            is_caught_up,
            is_fenced,
            should_shut_down,
        }
    }

    fn fencing(records: &[MetadataRecord]) -> Vec<BrokerFencingChange> {
        records
            .iter()
            .map(|r| match r {
                MetadataRecord::BrokerRegistrationChange { fenced, .. } => *fenced,
                other => panic!("unexpected record {other:?}"),
            })
            .collect()
    }

    #[test]
    fn broker_error_codes_match_kafka() {
        assert_eq!(BrokerErrorCode::UnsupportedVersion.code(), 35);
        assert_eq!(BrokerErrorCode::StaleBrokerEpoch.code(), 77);
        assert_eq!(BrokerErrorCode::DuplicateBrokerRegistration.code(), 101);
        assert_eq!(BrokerErrorCode::BrokerIdNotRegistered.code(), 102);
        assert_eq!(BrokerErrorCode::InconsistentClusterId.code(), 104);
        assert_eq!(BrokerErrorCode::InvalidRegistration.code(), 119);
        for c in [
            BrokerErrorCode::UnsupportedVersion,
            BrokerErrorCode::InconsistentClusterId,
        ] {
            assert_eq!(c.as_protocol().map(ErrorCode::code), Some(c.code()));
        }
        assert_eq!(
            BrokerErrorCode::StaleBrokerEpoch.to_string(),
            "STALE_BROKER_EPOCH (77)"
        );
    }

    #[test]
    fn new_registration_is_fenced_with_the_next_offset_as_epoch() {
        let img = mv_image();
        let req = registration(1, 1);
        let (recs, epoch) = register_broker(&img, CLUSTER, &req, false, 42).expect("register");
        assert_eq!(epoch, 42);
        match recs.as_slice() {
            [MetadataRecord::RegisterBroker(r)] => {
                assert_eq!(r.broker_id, 1);
                assert_eq!(r.broker_epoch, 42);
                assert_eq!(r.incarnation_id, req.incarnation_id);
                assert!(r.fenced && !r.in_controlled_shutdown);
                assert_eq!(r.endpoints, req.listeners);
                assert_eq!(r.features, req.features);
            }
            other => panic!("unexpected records {other:?}"),
        }
    }

    #[test]
    fn same_incarnation_keeps_its_epoch() {
        let mut img = mv_image();
        let mut req = registration(1, 1);
        let epoch = register(&mut img, &req);
        let (recs, _) = heartbeat(&img, 1, epoch, epoch, false, false).expect("heartbeat");
        apply_all(&mut img, &recs);
        assert_eq!(img.live_brokers(), vec![1]);

        // Nothing changed: no records, same epoch, whether or not the session is alive.
        for alive in [true, false] {
            let (recs, e) = register_broker(&img, CLUSTER, &req, alive, 99).expect("re-register");
            assert!(recs.is_empty());
            assert_eq!(e, epoch);
        }

        // A changed listener amends the registration but keeps epoch and fencing state.
        req.listeners[0].port = 9093;
        let (recs, e) = register_broker(&img, CLUSTER, &req, true, 99).expect("amend");
        assert_eq!(e, epoch);
        match recs.as_slice() {
            [MetadataRecord::RegisterBroker(r)] => {
                assert_eq!(r.broker_epoch, epoch);
                assert!(!r.fenced);
                assert_eq!(r.endpoints[0].port, 9093);
            }
            other => panic!("unexpected records {other:?}"),
        }
        apply_all(&mut img, &recs);
        assert_eq!(img.live_brokers(), vec![1]);
        assert_eq!(img.broker(1).map(|b| b.epoch), Some(epoch));
    }

    #[test]
    fn new_incarnation_needs_the_old_session_gone() {
        let mut img = mv_image();
        let epoch = register(&mut img, &registration(1, 1));
        let req = registration(1, 2);
        let (code, _) = register_broker(&img, CLUSTER, &req, true, 50).expect_err("duplicate");
        assert_eq!(code, BrokerErrorCode::DuplicateBrokerRegistration);

        let (recs, new_epoch) = register_broker(&img, CLUSTER, &req, false, 50).expect("take over");
        assert_eq!(new_epoch, 50);
        assert_ne!(new_epoch, epoch);
        apply_all(&mut img, &recs);
        let b = img.broker(1).expect("broker");
        assert_eq!(b.incarnation_id, Uuid::from_u128(2));
        assert!(b.fenced);
    }

    #[test]
    fn registration_rejections() {
        let mut img = mv_image();
        register(&mut img, &registration(2, 2));
        let dir = Uuid::from_u128(1 << 64);
        apply_all(
            &mut img,
            &[MetadataRecord::BrokerRegistrationChange {
                broker_id: 2,
                broker_epoch: 1,
                fenced: BrokerFencingChange::NoChange,
                in_controlled_shutdown: false,
                log_dirs: vec![dir],
            }],
        );
        let reject = |req: BrokerRegistrationInput| {
            register_broker(&img, CLUSTER, &req, false, 10)
                .expect_err("rejected")
                .0
        };

        let mut req = registration(1, 1);
        req.cluster_id = "other".into();
        assert_eq!(reject(req), BrokerErrorCode::InconsistentClusterId);

        let mut req = registration(1, 1);
        req.is_migrating_zk_broker = true;
        assert_eq!(reject(req), BrokerErrorCode::BrokerIdNotRegistered);

        let mut req = registration(1, 1);
        req.features[0].max_supported_version = 26;
        assert_eq!(reject(req), BrokerErrorCode::UnsupportedVersion);
        // No metadata.version range means level 1 only.
        let mut req = registration(1, 1);
        req.features.clear();
        assert_eq!(reject(req), BrokerErrorCode::UnsupportedVersion);

        for dirs in [
            vec![Uuid::from_u128(99)],
            vec![Uuid::from_u128(7 << 64), Uuid::from_u128(7 << 64)],
            vec![dir],
        ] {
            let mut req = registration(1, 1);
            req.log_dirs = dirs;
            assert_eq!(reject(req), BrokerErrorCode::InvalidRegistration);
        }
        // The broker that owns a directory may register it again.
        let mut req = registration(2, 3);
        req.log_dirs = vec![dir];
        assert!(register_broker(&img, CLUSTER, &req, false, 10).is_ok());
    }

    #[test]
    fn finalized_features_must_be_supported() {
        let mut img = mv_image();
        apply_all(
            &mut img,
            &[MetadataRecord::FeatureLevel {
                name: "kraft.version".into(),
                level: 1,
            }],
        );
        let mut req = registration(1, 1);
        let (code, msg) = register_broker(&img, CLUSTER, &req, false, 5).expect_err("missing");
        assert_eq!(code, BrokerErrorCode::UnsupportedVersion);
        assert!(msg.contains("kraft.version"), "{msg}");
        req.features.push(BrokerFeature {
            name: "kraft.version".into(),
            min_supported_version: 0,
            max_supported_version: 1,
        });
        let (recs, _) = register_broker(&img, CLUSTER, &req, false, 5).expect("supported");
        assert!(matches!(&recs[..], [MetadataRecord::RegisterBroker(r)] if r.features.len() == 2));
        // A range for a feature the controller has not finalized must include level 0.
        req.features.push(BrokerFeature {
            name: "group.version".into(),
            min_supported_version: 1,
            max_supported_version: 1,
        });
        assert_eq!(
            register_broker(&img, CLUSTER, &req, false, 5)
                .expect_err("unsupported")
                .0,
            BrokerErrorCode::UnsupportedVersion
        );
    }

    #[test]
    fn heartbeat_rejects_unknown_brokers_and_stale_epochs() {
        let mut img = mv_image();
        let epoch = register(&mut img, &registration(1, 1));
        assert_eq!(
            heartbeat(&img, 2, epoch, epoch, false, false),
            Err(BrokerErrorCode::BrokerIdNotRegistered)
        );
        assert_eq!(
            heartbeat(&img, 1, epoch - 1, epoch, false, false),
            Err(BrokerErrorCode::StaleBrokerEpoch)
        );
    }

    #[test]
    fn heartbeat_unfences_once_caught_up() {
        let mut img = mv_image();
        let epoch = register(&mut img, &registration(1, 1));

        // Behind its registration record: stays fenced.
        let (recs, out) = heartbeat(&img, 1, epoch, epoch - 1, false, false).expect("behind");
        assert!(recs.is_empty());
        assert_eq!(out, outcome(false, true, false));

        // Caught up but still asking to be fenced: stays fenced.
        let (recs, out) = heartbeat(&img, 1, epoch, epoch, true, false).expect("want fence");
        assert!(recs.is_empty());
        assert_eq!(out, outcome(true, true, false));

        // Caught up and willing: unfenced.
        let (recs, out) = heartbeat(&img, 1, epoch, epoch, false, false).expect("unfence");
        assert_eq!(fencing(&recs), vec![BrokerFencingChange::Unfence]);
        assert_eq!(out, outcome(true, false, false));
        apply_all(&mut img, &recs);
        assert_eq!(img.live_brokers(), vec![1]);

        // Unfenced and content: nothing to do.
        let (recs, out) = heartbeat(&img, 1, epoch, img.offset, false, false).expect("steady");
        assert!(recs.is_empty());
        assert_eq!(out, outcome(true, false, false));

        // An amended registration moves the offset to catch up to.
        let (_, out) = broker_heartbeat(&img, 1, epoch, img.offset, false, false, img.offset + 5)
            .expect("amended");
        assert!(!out.is_caught_up);
    }

    #[test]
    fn heartbeat_fences_on_request() {
        let mut img = mv_image();
        let epoch = register(&mut img, &registration(1, 1));
        let (recs, _) = heartbeat(&img, 1, epoch, epoch, false, false).expect("unfence");
        apply_all(&mut img, &recs);

        let (recs, out) = heartbeat(&img, 1, epoch, epoch, true, false).expect("fence");
        assert_eq!(fencing(&recs), vec![BrokerFencingChange::Fence]);
        assert_eq!(out, outcome(true, true, false));
        apply_all(&mut img, &recs);
        assert!(img.live_brokers().is_empty());
    }

    #[test]
    fn heartbeat_shut_down() {
        let mut img = mv_image();
        let epoch = register(&mut img, &registration(1, 1));

        // A fenced broker may go at once; nothing to write.
        let (recs, out) = heartbeat(&img, 1, epoch, epoch, true, true).expect("fenced");
        assert!(recs.is_empty());
        assert_eq!(out, outcome(true, true, true));

        let (recs, _) = heartbeat(&img, 1, epoch, epoch, false, false).expect("unfence");
        apply_all(&mut img, &recs);

        // An unfenced broker is fenced first, with or without asking for fencing.
        for want_fence in [false, true] {
            let (recs, out) =
                heartbeat(&img, 1, epoch, epoch, want_fence, true).expect("shut down");
            assert_eq!(fencing(&recs), vec![BrokerFencingChange::Fence]);
            assert_eq!(out, outcome(true, true, true));
        }
        let (recs, _) = heartbeat(&img, 1, epoch, epoch, false, true).expect("shut down");
        apply_all(&mut img, &recs);
        assert!(img.live_brokers().is_empty());
        assert!(img.broker(1).is_some_and(|b| b.fenced));
    }

    #[test]
    fn broker_in_controlled_shutdown_is_told_to_go() {
        let mut img = mv_image();
        let epoch = register(&mut img, &registration(1, 1));
        apply_all(
            &mut img,
            &[MetadataRecord::BrokerRegistrationChange {
                broker_id: 1,
                broker_epoch: epoch,
                fenced: BrokerFencingChange::Unfence,
                in_controlled_shutdown: true,
                log_dirs: vec![],
            }],
        );
        assert!(img.live_brokers().is_empty());
        let (recs, out) = heartbeat(&img, 1, epoch, img.offset, false, false).expect("go");
        assert_eq!(fencing(&recs), vec![BrokerFencingChange::Fence]);
        assert_eq!(out, outcome(true, true, true));
        apply_all(&mut img, &recs);
        // Once fenced it stays fenced and is still told to go.
        let (recs, out) = heartbeat(&img, 1, epoch, img.offset, false, false).expect("again");
        assert!(recs.is_empty());
        assert_eq!(out, outcome(true, true, true));
    }

    #[test]
    fn session_timeout_fences_once() {
        let mut img = mv_image();
        let epoch = register(&mut img, &registration(1, 1));
        // Unknown, and registered but still fenced: nothing to write.
        assert!(fence_broker(&img, 7).is_empty());
        assert!(fence_broker(&img, 1).is_empty());

        let (recs, _) = heartbeat(&img, 1, epoch, epoch, false, false).expect("unfence");
        apply_all(&mut img, &recs);
        let recs = fence_broker(&img, 1);
        assert_eq!(
            recs,
            vec![MetadataRecord::BrokerRegistrationChange {
                broker_id: 1,
                broker_epoch: epoch,
                fenced: BrokerFencingChange::Fence,
                in_controlled_shutdown: false,
                log_dirs: vec![],
            }]
        );
        apply_all(&mut img, &recs);
        assert!(img.live_brokers().is_empty());
        assert!(fence_broker(&img, 1).is_empty());
    }

    #[test]
    fn unregister_removes_the_registration() {
        let mut img = mv_image();
        let epoch = register(&mut img, &registration(1, 1));
        assert_eq!(
            unregister_broker(&img, 2),
            Err(BrokerErrorCode::BrokerIdNotRegistered)
        );
        let recs = unregister_broker(&img, 1).expect("unregister");
        assert_eq!(
            recs,
            vec![MetadataRecord::UnregisterBroker {
                broker_id: 1,
                broker_epoch: epoch,
            }]
        );
        apply_all(&mut img, &recs);
        assert!(img.broker(1).is_none());
    }

    #[test]
    fn delete_and_configs() {
        let mut img = MetadataImage::new();
        let (recs, _) = create(&img, &[1], topic("t", 1, 1));
        apply_all(&mut img, &recs);
        let list = |k: &str| k == "cleanup.policy";
        let recs = alter_topic_configs(
            &img,
            "t",
            &[
                ("retention.ms".into(), ConfigOp::Set, Some("10".into())),
                (
                    "cleanup.policy".into(),
                    ConfigOp::Append,
                    Some("compact".into()),
                ),
            ],
            false,
            &ok_config,
            &list,
        )
        .expect("alter");
        apply_all(&mut img, &recs);
        assert_eq!(img.topic_configs("t").len(), 2);
        let recs = alter_topic_configs(
            &img,
            "t",
            &[("retention.ms".into(), ConfigOp::Delete, None)],
            false,
            &ok_config,
            &list,
        )
        .expect("delete");
        apply_all(&mut img, &recs);
        assert_eq!(img.topic_configs("t").len(), 1);
        // Legacy AlterConfigs replaces the whole set.
        let recs = alter_topic_configs(
            &img,
            "t",
            &[("segment.ms".into(), ConfigOp::Set, Some("99".into()))],
            true,
            &ok_config,
            &list,
        )
        .expect("replace");
        apply_all(&mut img, &recs);
        assert_eq!(
            img.topic_configs("t").keys().collect::<Vec<_>>(),
            vec!["segment.ms"]
        );

        let (recs, res) = delete_topics(&img, &["t".into(), "nope".into()]);
        assert_eq!(recs.len(), 1);
        assert!(res[0].2.is_ok());
        assert_eq!(res[1].2.error, ErrorCode::UnknownTopicOrPartition);
        apply_all(&mut img, &recs);
        assert!(img.topics.is_empty());
        assert!(img.configs.is_empty());
    }

    // ---- Partition leadership and ISR ----

    /// An image with `ids` registered and unfenced.
    fn live_cluster(ids: &[i32]) -> MetadataImage {
        let mut img = mv_image();
        for &id in ids {
            let epoch = register(&mut img, &registration(id, id as u128));
            let (recs, _) = heartbeat(&img, id, epoch, epoch, false, false).expect("unfence");
            apply_all(&mut img, &recs);
        }
        img
    }

    /// Adds topic `name` with id `id`, one partition per replica list, leader the first
    /// replica and every replica in the ISR.
    fn add_topic(img: &mut MetadataImage, name: &str, id: u128, partitions: &[&[i32]]) -> Uuid {
        let id = Uuid::from_u128(id);
        let mut recs = vec![MetadataRecord::Topic {
            name: name.into(),
            topic_id: id,
        }];
        for (p, replicas) in partitions.iter().enumerate() {
            recs.push(partition_record(id, p as i32, replicas.to_vec()));
        }
        apply_all(img, &recs);
        id
    }

    fn part(img: &MetadataImage, id: Uuid, p: i32) -> PartitionImage {
        img.partition(&id, p).cloned().expect("partition")
    }

    fn changes(records: &[MetadataRecord]) -> Vec<PartitionChangeRecord> {
        records
            .iter()
            .map(|r| match r {
                MetadataRecord::PartitionChange(c) => c.clone(),
                other => panic!("unexpected record {other:?}"),
            })
            .collect()
    }

    fn epoch_of(img: &MetadataImage, id: i32) -> i64 {
        img.broker(id).map(|b| b.epoch).expect("registered")
    }

    /// Fences `id` as the active controller would: partition changes, then the broker's
    /// own record. Returns the partition changes.
    fn fence(img: &mut MetadataImage, id: i32, unclean: bool) -> Vec<PartitionChangeRecord> {
        let recs = fence_broker_partitions(img, id, |_| unclean);
        let out = changes(&recs);
        let own = fence_broker(img, id);
        apply_all(img, &recs);
        apply_all(img, &own);
        out
    }

    /// Unfences `id`: its own record, then the partition changes (planned on the image
    /// before the unfencing, as the controller does).
    fn unfence(img: &mut MetadataImage, id: i32) -> Vec<PartitionChangeRecord> {
        let recs = unfence_broker_partitions(img, id);
        let epoch = epoch_of(img, id);
        let (own, _) = heartbeat(img, id, epoch, img.offset, false, false).expect("unfence");
        assert_eq!(fencing(&own), vec![BrokerFencingChange::Unfence]);
        apply_all(img, &own);
        // Planning after the broker's own record gives the same changes.
        assert_eq!(unfence_broker_partitions(img, id), recs);
        apply_all(img, &recs);
        changes(&recs)
    }

    #[allow(clippy::too_many_arguments)]
    fn alter(
        img: &MetadataImage,
        broker: i32,
        id: Uuid,
        p: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
        recovery: i8,
    ) -> Result<(Vec<MetadataRecord>, PartitionImage), PartitionErrorCode> {
        alter_partition(
            img,
            broker,
            epoch_of(img, broker),
            id,
            p,
            leader_epoch,
            partition_epoch,
            isr,
            recovery,
        )
    }

    #[test]
    fn partition_error_codes_match_kafka() {
        use PartitionErrorCode as E;
        let want = [
            (E::UnknownTopicOrPartition, 3),
            (E::InvalidReplicaAssignment, 39),
            (E::NotController, 41),
            (E::InvalidRequest, 42),
            (E::FencedLeaderEpoch, 74),
            (E::StaleBrokerEpoch, 77),
            (E::PreferredLeaderNotAvailable, 80),
            (E::EligibleLeadersNotAvailable, 83),
            (E::ElectionNotNeeded, 84),
            (E::NoReassignmentInProgress, 85),
            (E::InvalidUpdateVersion, 95),
            (E::UnknownTopicId, 100),
            (E::IneligibleReplica, 107),
            (E::NewLeaderElected, 108),
        ];
        for (e, code) in want {
            assert_eq!(e.code(), code);
            assert_eq!(i16::from(e), code);
            if let Some(p) = e.as_protocol() {
                assert_eq!(p.code(), code);
            }
        }
        assert_eq!(E::IneligibleReplica.to_string(), "INELIGIBLE_REPLICA (107)");
        assert_eq!(ElectionType::from_value(0), Some(ElectionType::Preferred));
        assert_eq!(ElectionType::from_value(1), Some(ElectionType::Unclean));
        assert_eq!(ElectionType::from_value(2), None);
        assert_eq!(ElectionType::Unclean.value(), 1);
    }

    #[test]
    fn live_means_unfenced_and_not_shutting_down() {
        let mut img = live_cluster(&[1, 2, 3]);
        let epoch = epoch_of(&img, 3);
        apply_all(
            &mut img,
            &[MetadataRecord::BrokerRegistrationChange {
                broker_id: 3,
                broker_epoch: epoch,
                fenced: BrokerFencingChange::NoChange,
                in_controlled_shutdown: true,
                log_dirs: vec![],
            }],
        );
        fence(&mut img, 2, false);
        assert_eq!(img.live_brokers(), vec![1]);
        for id in [1, 2, 3, 4] {
            assert_eq!(img.is_live(id), img.live_brokers().contains(&id), "{id}");
        }
    }

    #[test]
    fn fencing_the_leader_elects_the_next_isr_replica() {
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(
            &mut img,
            "t",
            1,
            &[&[1, 2, 3], &[2, 1, 3], &[1, 3, 2], &[2, 3]],
        );
        let got = fence(&mut img, 1, false);
        // Partition 3 does not involve broker 1: no record.
        assert_eq!(
            got,
            vec![
                PartitionChangeRecord {
                    isr: Some(vec![2, 3]),
                    leader: 2,
                    ..PartitionChangeRecord::new(id, 0)
                },
                PartitionChangeRecord {
                    isr: Some(vec![2, 3]),
                    ..PartitionChangeRecord::new(id, 1)
                },
                PartitionChangeRecord {
                    isr: Some(vec![3, 2]),
                    leader: 3,
                    ..PartitionChangeRecord::new(id, 2)
                },
            ]
        );
        let p0 = part(&img, id, 0);
        assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
        assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 1));
        // A follower leaving the ISR bumps only the partition epoch.
        let p1 = part(&img, id, 1);
        assert_eq!((p1.leader, p1.leader_epoch, p1.partition_epoch), (2, 0, 1));
        // Replica order decides, not ISR order.
        assert_eq!(part(&img, id, 2).leader, 3);
        assert_eq!(part(&img, id, 3).partition_epoch, 0);

        // Fencing again finds nothing to do.
        assert!(fence_broker_partitions(&img, 1, |_| true).is_empty());

        // A live replica that is not live any more is skipped: fencing 2 leaves 3.
        let got = fence(&mut img, 2, false);
        assert_eq!(got.len(), 4);
        for p in 0..4 {
            let now = part(&img, id, p);
            assert_eq!((now.leader, now.isr.clone()), (3, vec![3]), "partition {p}");
        }
    }

    #[test]
    fn fencing_the_last_isr_member_keeps_it_and_unfencing_restores_it() {
        let mut img = live_cluster(&[1, 2]);
        let id = add_topic(&mut img, "t", 1, &[&[1], &[1, 2]]);
        // Partition 1's ISR is down to broker 1.
        let (recs, _) = alter(&img, 1, id, 1, 0, 0, &[1], 0).expect("shrink");
        apply_all(&mut img, &recs);

        let got = fence(&mut img, 1, false);
        assert_eq!(
            got,
            vec![
                PartitionChangeRecord {
                    leader: NO_LEADER,
                    ..PartitionChangeRecord::new(id, 0)
                },
                PartitionChangeRecord {
                    leader: NO_LEADER,
                    ..PartitionChangeRecord::new(id, 1)
                },
            ]
        );
        let p0 = part(&img, id, 0);
        assert_eq!((p0.leader, p0.isr.clone()), (NO_LEADER, vec![1]));
        assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 1));
        // Broker 2 is live but not in the ISR: no clean candidate.
        let p1 = part(&img, id, 1);
        assert_eq!((p1.leader, p1.isr.clone()), (NO_LEADER, vec![1]));
        assert!(fence_broker_partitions(&img, 1, |_| false).is_empty());

        // Unfencing brings broker 1 back as leader of both.
        let got = unfence(&mut img, 1);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|c| c.leader == 1 && c.isr.is_none()));
        let p0 = part(&img, id, 0);
        assert_eq!((p0.leader, p0.isr.clone()), (1, vec![1]));
        assert_eq!((p0.leader_epoch, p0.partition_epoch), (2, 2));
        assert_eq!(part(&img, id, 1).leader, 1);
        // Partitions that have a leader are left alone.
        assert!(unfence_broker_partitions(&img, 2).is_empty());
    }

    #[test]
    fn unfencing_elects_only_from_the_isr() {
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3]]);
        fence(&mut img, 2, false);
        fence(&mut img, 3, false);
        fence(&mut img, 1, false);
        assert_eq!(part(&img, id, 0).isr, vec![1]);
        // Broker 2 was dropped from the ISR: it cannot lead on its return.
        assert!(unfence(&mut img, 2).is_empty());
        assert!(!part(&img, id, 0).has_leader());
        assert_eq!(unfence(&mut img, 1).len(), 1);
        assert_eq!(part(&img, id, 0).leader, 1);
    }

    #[test]
    fn unclean_election_when_the_topic_allows_it() {
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3]]);
        let (recs, _) = alter(&img, 1, id, 0, 0, 0, &[1], 0).expect("shrink");
        apply_all(&mut img, &recs);

        let recs = fence_broker_partitions(&img, 1, |topic| topic == "t");
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![2]),
                leader: 2,
                leader_recovery_state: Some(LeaderRecoveryState::Recovering),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        let own = fence_broker(&img, 1);
        apply_all(&mut img, &own);
        let p = part(&img, id, 0);
        assert_eq!(p.leader_recovery_state, LeaderRecoveryState::Recovering);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));

        // While recovering the leader may only report itself, still recovering...
        assert_eq!(
            alter(&img, 2, id, 0, 1, 2, &[2, 3], 1).map(|r| r.0),
            Err(PartitionErrorCode::InvalidRequest)
        );
        let (recs, after) = alter(&img, 2, id, 0, 1, 2, &[2], 1).expect("still recovering");
        assert!(recs.is_empty());
        assert_eq!(after, p);
        // ...then recovered, with a larger ISR in the same change.
        let (recs, after) = alter(&img, 2, id, 0, 1, 2, &[2, 3], 0).expect("recovered");
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![2, 3]),
                leader_recovery_state: Some(LeaderRecoveryState::Recovered),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        assert_eq!(part(&img, id, 0), after);
        assert_eq!(after.leader_recovery_state, LeaderRecoveryState::Recovered);
        // And never back to recovering.
        assert_eq!(
            alter(&img, 2, id, 0, 1, 3, &[2], 1).map(|r| r.0),
            Err(PartitionErrorCode::InvalidRequest)
        );

        // With no live replica at all, even an unclean election finds nobody.
        let mut img = live_cluster(&[1]);
        let id = add_topic(&mut img, "u", 2, &[&[1]]);
        let got = fence(&mut img, 1, true);
        assert_eq!(got[0].leader, NO_LEADER);
        assert_eq!(part(&img, id, 0).isr, vec![1]);
    }

    #[test]
    fn controlled_shutdown_moves_leadership() {
        let mut img = live_cluster(&[1, 2]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2]]);
        let epoch = epoch_of(&img, 1);
        // The controller plans the partition changes with the shutdown record.
        let mut recs = vec![MetadataRecord::BrokerRegistrationChange {
            broker_id: 1,
            broker_epoch: epoch,
            fenced: BrokerFencingChange::NoChange,
            in_controlled_shutdown: true,
            log_dirs: vec![],
        }];
        recs.extend(fence_broker_partitions(&img, 1, |_| false));
        apply_all(&mut img, &recs);
        let p = part(&img, id, 0);
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2], 1));
        // A broker in controlled shutdown may not rejoin the ISR.
        assert_eq!(
            alter(&img, 2, id, 0, 1, 1, &[2, 1], 0).map(|r| r.0),
            Err(PartitionErrorCode::IneligibleReplica)
        );
    }

    #[test]
    fn alter_partition_shrinks_and_expands_the_isr() {
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3]]);

        // The same ISR: nothing to write, the current state back.
        let (recs, after) = alter(&img, 1, id, 0, 0, 0, &[1, 2, 3], 0).expect("same");
        assert!(recs.is_empty());
        assert_eq!(after, part(&img, id, 0));

        let (recs, after) = alter(&img, 1, id, 0, 0, 0, &[1, 3], 0).expect("shrink");
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![1, 3]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        assert_eq!(part(&img, id, 0), after);
        assert_eq!(
            (after.leader, after.leader_epoch, after.partition_epoch),
            (1, 0, 1)
        );

        // The old partition epoch is now stale.
        assert_eq!(
            alter(&img, 1, id, 0, 0, 0, &[1, 2, 3], 0).map(|r| r.0),
            Err(PartitionErrorCode::InvalidUpdateVersion)
        );
        let (recs, after) = alter(&img, 1, id, 0, 0, 1, &[1, 3, 2], 0).expect("expand");
        apply_all(&mut img, &recs);
        assert_eq!(after.isr, vec![1, 3, 2]);
        assert_eq!(after.partition_epoch, 2);

        // Per-member broker epochs (AlterPartition v3): -1 skips the check.
        let epochs = |e2: i64| vec![(1, -1), (2, e2)];
        let call = |isr: &[(i32, i64)]| {
            alter_partition_with_broker_epochs(&img, 1, epoch_of(&img, 1), id, 0, 0, 2, isr, 0)
                .map(|r| r.1.isr)
        };
        assert_eq!(call(&epochs(-1)), Ok(vec![1, 2]));
        assert_eq!(call(&epochs(epoch_of(&img, 2))), Ok(vec![1, 2]));
        assert_eq!(
            call(&epochs(epoch_of(&img, 2) + 1)),
            Err(PartitionErrorCode::IneligibleReplica)
        );
    }

    #[test]
    fn alter_partition_rejections() {
        use PartitionErrorCode as E;
        let mut img = live_cluster(&[1, 2, 3, 4]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3]]);
        // Leader epoch 1, partition epoch 1: a change naming the same leader bumps both.
        apply_all(
            &mut img,
            &[MetadataRecord::PartitionChange(PartitionChangeRecord {
                leader: 1,
                ..PartitionChangeRecord::new(id, 0)
            })],
        );
        let ok = alter(&img, 1, id, 0, 1, 1, &[1, 2], 0);
        assert!(ok.is_ok());
        let code = |r: Result<(Vec<MetadataRecord>, PartitionImage), E>| r.err();

        // Broker epoch: stale, or not registered at all.
        let e1 = epoch_of(&img, 1);
        let with_epoch =
            |broker: i32, epoch: i64| alter_partition(&img, broker, epoch, id, 0, 1, 1, &[1, 2], 0);
        assert_eq!(code(with_epoch(1, e1 + 1)), Some(E::StaleBrokerEpoch));
        assert_eq!(code(with_epoch(9, e1)), Some(E::StaleBrokerEpoch));

        // Unknown topic id, unknown partition.
        let other = Uuid::from_u128(99);
        assert_eq!(
            code(alter(&img, 1, other, 0, 1, 1, &[1], 0)),
            Some(E::UnknownTopicId)
        );
        assert_eq!(
            code(alter(&img, 1, id, 5, 1, 1, &[1], 0)),
            Some(E::UnknownTopicOrPartition)
        );

        // Epochs newer than the image's: the requester saw a newer controller.
        assert_eq!(
            code(alter(&img, 1, id, 0, 2, 1, &[1], 0)),
            Some(E::NotController)
        );
        assert_eq!(
            code(alter(&img, 1, id, 0, 1, 2, &[1], 0)),
            Some(E::NotController)
        );
        // An older leader epoch is fenced; an older partition epoch is stale.
        assert_eq!(
            code(alter(&img, 1, id, 0, 0, 1, &[1], 0)),
            Some(E::FencedLeaderEpoch)
        );
        assert_eq!(
            code(alter(&img, 1, id, 0, 1, 0, &[1], 0)),
            Some(E::InvalidUpdateVersion)
        );
        // Not the leader (checked before the partition epoch).
        assert_eq!(
            code(alter(&img, 2, id, 0, 1, 0, &[1, 2], 0)),
            Some(E::InvalidRequest)
        );

        // Malformed ISRs.
        for isr in [&[2, 3][..], &[1, 1], &[1, 4], &[1, -1], &[]] {
            assert_eq!(
                code(alter(&img, 1, id, 0, 1, 1, isr, 0)),
                Some(E::InvalidRequest),
                "{isr:?}"
            );
        }
        assert_eq!(
            code(alter(&img, 1, id, 0, 1, 1, &[1], 7)),
            Some(E::InvalidRequest)
        );

        // ISR expansion with a fenced broker, or an unregistered replica.
        fence(&mut img, 3, false);
        let p = part(&img, id, 0);
        assert_eq!(p.isr, vec![1, 2]);
        assert_eq!(
            code(alter(&img, 1, id, 0, 1, p.partition_epoch, &[1, 2, 3], 0)),
            Some(E::IneligibleReplica)
        );
        let id2 = add_topic(&mut img, "u", 2, &[&[1, 7]]);
        apply_all(
            &mut img,
            &[MetadataRecord::PartitionChange(PartitionChangeRecord {
                isr: Some(vec![1]),
                ..PartitionChangeRecord::new(id2, 0)
            })],
        );
        assert_eq!(
            code(alter(&img, 1, id2, 0, 0, 1, &[1, 7], 0)),
            Some(E::IneligibleReplica)
        );
        // Nothing above changed the image.
        assert_eq!(part(&img, id, 0), p);
    }

    #[test]
    fn preferred_leader_election() {
        use PartitionErrorCode as E;
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3], &[2, 3, 1]]);
        // Everyone leads where preferred: nothing to do, and nothing reported for "all".
        let (recs, results) = elect_preferred_leaders(&img, None);
        assert!(recs.is_empty() && results.is_empty());

        // Broker 1 goes away and comes back: partition 0 is led by 2, and 1 is not in
        // its ISR yet.
        fence(&mut img, 1, false);
        unfence(&mut img, 1);
        let p = part(&img, id, 0);
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2, 3]));
        let wanted = [(id, 0), (id, 1), (id, 7), (Uuid::from_u128(5), 0)];
        let (recs, results) = elect_preferred_leaders(&img, Some(&wanted));
        assert!(recs.is_empty());
        let errors: Vec<_> = results.iter().map(|r| r.error).collect();
        assert_eq!(
            errors,
            vec![
                Some(E::PreferredLeaderNotAvailable),
                Some(E::ElectionNotNeeded),
                Some(E::UnknownTopicOrPartition),
                Some(E::UnknownTopicOrPartition),
            ]
        );
        assert_eq!(
            results[2].message.as_deref(),
            Some("No such partition as t-7")
        );

        // The leader takes 1 back into the ISR; now the election moves leadership.
        let (recs, _) = alter(
            &img,
            2,
            id,
            0,
            p.leader_epoch,
            p.partition_epoch,
            &[2, 3, 1],
            0,
        )
        .expect("expand");
        apply_all(&mut img, &recs);
        let (recs, results) = elect_preferred_leaders(&img, Some(&[(id, 0), (id, 0)]));
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                leader: 1,
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.error.is_none()));
        let before = part(&img, id, 0);
        apply_all(&mut img, &recs);
        let after = part(&img, id, 0);
        assert_eq!(after.leader, 1);
        assert_eq!(after.isr, vec![2, 3, 1]);
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        let (recs, results) = elect_preferred_leaders(&img, Some(&[(id, 0)]));
        assert!(recs.is_empty());
        assert_eq!(results[0].error, Some(E::ElectionNotNeeded));

        // A leaderless partition whose preferred replica is down gets another ISR leader.
        let mut img = live_cluster(&[1, 2]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2]]);
        apply_all(
            &mut img,
            &[MetadataRecord::PartitionChange(PartitionChangeRecord {
                leader: NO_LEADER,
                ..PartitionChangeRecord::new(id, 0)
            })],
        );
        let own = fence_broker(&img, 1);
        apply_all(&mut img, &own);
        let (recs, results) = elect_preferred_leaders(&img, None);
        assert_eq!(changes(&recs)[0].leader, 2);
        assert_eq!(results[0].error, None);
    }

    #[test]
    fn unclean_leader_election() {
        use PartitionErrorCode as E;
        let mut img = live_cluster(&[1, 2]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2], &[2, 1]]);
        let (recs, _) = alter(&img, 1, id, 0, 0, 0, &[1], 0).expect("shrink");
        apply_all(&mut img, &recs);
        fence(&mut img, 1, false);
        assert!(!part(&img, id, 0).has_leader());

        let (recs, results) = elect_leaders(&img, ElectionType::Unclean, Some(&[(id, 0), (id, 1)]));
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![2]),
                leader: 2,
                leader_recovery_state: Some(LeaderRecoveryState::Recovering),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        assert_eq!(results[0].error, None);
        assert_eq!(results[1].error, Some(E::ElectionNotNeeded));

        // Nobody live: not available.
        fence(&mut img, 2, false);
        let (recs, results) = elect_leaders(&img, ElectionType::Unclean, None);
        assert!(recs.is_empty());
        assert_eq!(results.len(), 2);
        assert!(results
            .iter()
            .all(|r| r.error == Some(E::EligibleLeadersNotAvailable)));
    }

    // ---- Rack-aware placement ----

    fn rack_of(id: i32) -> &'static str {
        match id {
            1..=3 => "a",
            4..=6 => "b",
            _ => "c",
        }
    }

    #[test]
    fn rack_aware_placement_stripes_over_racks() {
        let brokers: Vec<(i32, Option<&str>)> = (1..=9).map(|id| (id, Some(rack_of(id)))).collect();
        let placed = place_rack_aware(&brokers, 9, 3, 0, 0).expect("place");
        let mut leaders = BTreeMap::new();
        for replicas in &placed {
            let racks: BTreeSet<_> = replicas.iter().map(|&id| rack_of(id)).collect();
            assert_eq!(racks.len(), 3, "{replicas:?}");
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        // Every broker leads exactly once over 9 partitions.
        assert_eq!(leaders.len(), 9);
        assert!(leaders.values().all(|&n| n == 1));
        // The first three partitions start on racks a, b, c in turn.
        let first_racks: Vec<_> = placed[..3].iter().map(|r| rack_of(r[0])).collect();
        assert_eq!(first_racks, vec!["a", "b", "c"]);

        // Two racks of two, replication factor 2: both racks every time, leaders even.
        let brokers = [
            (1, Some("a")),
            (2, Some("a")),
            (4, Some("b")),
            (5, Some("b")),
        ];
        let placed = place_rack_aware(&brokers, 4, 2, 0, 0).expect("place");
        for replicas in &placed {
            assert_ne!(rack_of(replicas[0]), rack_of(replicas[1]), "{replicas:?}");
        }
        let leaders: BTreeSet<_> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 4);

        // More replicas than racks: distinct brokers, racks used as evenly as possible.
        let brokers = [
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("a")),
            (4, Some("b")),
            (5, Some("b")),
        ];
        for start in 0..6 {
            for replicas in place_rack_aware(&brokers, 5, 4, start, 0).expect("place") {
                let distinct: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(distinct.len(), 4);
                let in_b = replicas.iter().filter(|&&id| rack_of(id) == "b").count();
                assert_eq!(in_b, 2, "{replicas:?}");
            }
            let all = place_rack_aware(&brokers, 1, 5, start, 0).expect("place");
            assert_eq!(all[0].iter().collect::<BTreeSet<_>>().len(), 5);
        }
        // Brokers without a rack are one more group.
        let brokers = [(1, Some("a")), (2, None), (3, Some("a"))];
        for replicas in place_rack_aware(&brokers, 4, 2, 0, 0).expect("place") {
            assert!(replicas.contains(&2), "{replicas:?}");
        }
        assert_eq!(
            place_rack_aware(&brokers, 1, 4, 0, 0)
                .err()
                .map(|e| e.error),
            Some(ErrorCode::InvalidReplicationFactor)
        );
        assert!(place_rack_aware(&[], 1, 1, 0, 0).is_err());
    }

    #[test]
    fn topics_are_placed_across_racks_when_brokers_have_them() {
        let mut img = mv_image();
        for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
            let mut req = registration(id, id as u128);
            req.rack = Some(rack.into());
            register(&mut img, &req);
        }
        let rack = |id: i32| if id <= 2 { "a" } else { "b" };
        let (recs, res) = create(&img, &[1, 2, 3, 4], topic("t", 4, 2));
        assert!(res[0].result.is_ok());
        let mut leaders = BTreeSet::new();
        for r in &recs {
            if let MetadataRecord::Partition(p) = r {
                assert_ne!(rack(p.replicas[0]), rack(p.replicas[1]), "{p:?}");
                leaders.insert(p.leader);
            }
        }
        assert_eq!(leaders.len(), 4);
        apply_all(&mut img, &recs);

        // Added partitions carry on across racks.
        let cluster = Cluster {
            image: &img,
            live_brokers: &[1, 2, 3, 4],
            default_num_partitions: 1,
            default_replication_factor: 1,
        };
        let recs = create_partitions(&cluster, "t", 8, None, 0).expect("grow");
        assert_eq!(recs.len(), 4);
        for r in &recs {
            if let MetadataRecord::Partition(p) = r {
                assert_ne!(rack(p.replicas[0]), rack(p.replicas[1]), "{p:?}");
            }
        }
    }

    // ---- Partition reassignment (KIP-455) ----

    fn reassign(
        img: &MetadataImage,
        requests: &[(Uuid, i32, Option<Vec<i32>>)],
    ) -> (Vec<MetadataRecord>, Vec<ReassignmentResult>) {
        alter_partition_reassignments(img, requests)
    }

    fn errors(results: &[ReassignmentResult]) -> Vec<Option<PartitionErrorCode>> {
        results.iter().map(|r| r.error).collect()
    }

    #[test]
    fn reassignment_starts_and_finishes_when_the_new_replica_joins_the_isr() {
        let mut img = live_cluster(&[1, 2, 3, 4]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3], &[1, 2, 3]]);
        let (recs, results) = reassign(&img, &[(id, 0, Some(vec![2, 3, 4]))]);
        assert_eq!(
            results,
            vec![ReassignmentResult {
                topic_id: id,
                partition: 0,
                error: None,
                message: None,
            }]
        );
        // The target first, then the replicas being removed; the ISR and leader stay.
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                replicas: Some(vec![2, 3, 4, 1]),
                removing_replicas: Some(vec![1]),
                adding_replicas: Some(vec![4]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        let p = part(&img, id, 0);
        assert_eq!(
            (p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()),
            (1, 0, 1, vec![1, 2, 3])
        );
        let ongoing = (id, 0, vec![2, 3, 4, 1], vec![4], vec![1]);
        assert_eq!(
            list_partition_reassignments(&img, None),
            vec![ongoing.clone()]
        );
        let other = Uuid::from_u128(9);
        let wanted = [(id, 1), (id, 0), (id, 0), (id, 7), (other, 0)];
        assert_eq!(
            list_partition_reassignments(&img, Some(&wanted)),
            vec![ongoing]
        );
        // 4 has not joined the ISR: nothing to finish yet.
        assert!(complete_reassignment(&img, id, 0).is_empty());

        // The leader takes 4 into the ISR: the same record finishes the reassignment, and
        // leadership moves off broker 1, which is removed, to the first target replica.
        let (recs, after) = alter(&img, 1, id, 0, 0, 1, &[1, 2, 3, 4], 0).expect("expand");
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![2, 3, 4]),
                leader: 2,
                replicas: Some(vec![2, 3, 4]),
                removing_replicas: Some(vec![]),
                adding_replicas: Some(vec![]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        assert_eq!(part(&img, id, 0), after);
        assert_eq!(
            (after.leader, after.leader_epoch, after.partition_epoch),
            (2, 1, 2)
        );
        assert!(after.adding_replicas.is_empty() && after.removing_replicas.is_empty());
        assert!(list_partition_reassignments(&img, None).is_empty());
        assert!(complete_reassignment(&img, id, 0).is_empty());
    }

    #[test]
    fn reassignment_waits_for_every_staying_replica_in_the_isr() {
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3]]);
        let (recs, _) = alter(&img, 1, id, 0, 0, 0, &[1, 3], 0).expect("shrink");
        apply_all(&mut img, &recs);

        // Nothing to add, but 2 stays and is out of the ISR: the removal waits for it.
        let (recs, results) = reassign(&img, &[(id, 0, Some(vec![1, 2]))]);
        assert_eq!(errors(&results), vec![None]);
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                removing_replicas: Some(vec![3]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        assert!(complete_reassignment(&img, id, 0).is_empty());

        // 2 rejoins: finished; the leader stays, with a new leader epoch since 3 goes.
        let (recs, after) = alter(&img, 1, id, 0, 0, 2, &[1, 3, 2], 0).expect("expand");
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![1, 2]),
                leader: 1,
                replicas: Some(vec![1, 2]),
                removing_replicas: Some(vec![]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        assert_eq!(part(&img, id, 0), after);
        assert_eq!(
            (after.replicas.clone(), after.isr.clone(), after.leader),
            (vec![1, 2], vec![1, 2], 1)
        );
        assert_eq!((after.leader_epoch, after.partition_epoch), (1, 3));
    }

    #[test]
    fn complete_reassignment_finishes_one_the_isr_allows() {
        let mut img = live_cluster(&[1, 2, 3, 4]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3]]);
        let (recs, _) = reassign(&img, &[(id, 0, Some(vec![1, 2, 4]))]);
        apply_all(&mut img, &recs);
        assert_eq!(part(&img, id, 0).replicas, vec![1, 2, 4, 3]);
        assert!(complete_reassignment(&img, id, 0).is_empty());
        assert!(complete_reassignment(&img, id, 9).is_empty());
        assert!(complete_reassignment(&img, Uuid::from_u128(9), 0).is_empty());

        // An ISR change written without finishing the reassignment.
        apply_all(
            &mut img,
            &[MetadataRecord::PartitionChange(PartitionChangeRecord {
                isr: Some(vec![1, 2, 3, 4]),
                ..PartitionChangeRecord::new(id, 0)
            })],
        );
        let recs = complete_reassignment(&img, id, 0);
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![1, 2, 4]),
                leader: 1,
                replicas: Some(vec![1, 2, 4]),
                removing_replicas: Some(vec![]),
                adding_replicas: Some(vec![]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        let p = part(&img, id, 0);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 1, 3));
        assert!(complete_reassignment(&img, id, 0).is_empty());
    }

    #[test]
    fn reassignment_within_the_isr_finishes_at_once() {
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3], &[1, 2, 3], &[1, 2, 3]]);
        let (recs, results) = reassign(
            &img,
            &[
                (id, 0, Some(vec![3, 2])),
                (id, 1, Some(vec![3, 1, 2])),
                (id, 2, Some(vec![1, 2, 3])),
            ],
        );
        assert_eq!(errors(&results), vec![None, None, None]);
        assert_eq!(
            changes(&recs),
            vec![
                // The leader is removed: the first target replica in the ISR leads.
                PartitionChangeRecord {
                    isr: Some(vec![2, 3]),
                    leader: 3,
                    replicas: Some(vec![3, 2]),
                    ..PartitionChangeRecord::new(id, 0)
                },
                // A new order only: no leader change, no epoch bump.
                PartitionChangeRecord {
                    replicas: Some(vec![3, 1, 2]),
                    ..PartitionChangeRecord::new(id, 1)
                },
                // The same replicas: nothing to write.
            ]
        );
        apply_all(&mut img, &recs);
        let p0 = part(&img, id, 0);
        assert_eq!((p0.leader, p0.leader_epoch, p0.partition_epoch), (3, 1, 1));
        let p1 = part(&img, id, 1);
        assert_eq!((p1.leader, p1.leader_epoch, p1.partition_epoch), (1, 0, 1));
        assert!(list_partition_reassignments(&img, None).is_empty());
    }

    #[test]
    fn cancelling_reverts_to_the_original_replicas() {
        let mut img = live_cluster(&[1, 2, 3, 4]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2], &[1, 2, 3]]);
        let (recs, _) = reassign(
            &img,
            &[(id, 0, Some(vec![1, 3, 4])), (id, 1, Some(vec![2, 3, 4]))],
        );
        apply_all(&mut img, &recs);
        assert_eq!(part(&img, id, 0).replicas, vec![1, 3, 4, 2]);
        // 3 catches up on partition 0; 4 has not, so the reassignment goes on.
        let (recs, _) = alter(&img, 1, id, 0, 0, 1, &[1, 2, 3], 0).expect("expand");
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![1, 2, 3]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);

        let (recs, results) = reassign(&img, &[(id, 0, None), (id, 1, None)]);
        assert_eq!(errors(&results), vec![None, None]);
        assert_eq!(
            changes(&recs),
            vec![
                PartitionChangeRecord {
                    isr: Some(vec![1, 2]),
                    leader: 1,
                    replicas: Some(vec![1, 2]),
                    removing_replicas: Some(vec![]),
                    adding_replicas: Some(vec![]),
                    ..PartitionChangeRecord::new(id, 0)
                },
                // Kafka's revert keeps the merged order: [2, 3, 4, 1] without 4.
                PartitionChangeRecord {
                    leader: 1,
                    replicas: Some(vec![2, 3, 1]),
                    removing_replicas: Some(vec![]),
                    adding_replicas: Some(vec![]),
                    ..PartitionChangeRecord::new(id, 1)
                },
            ]
        );
        apply_all(&mut img, &recs);
        let p0 = part(&img, id, 0);
        assert_eq!(
            (
                p0.replicas.clone(),
                p0.isr.clone(),
                p0.leader,
                p0.leader_epoch
            ),
            (vec![1, 2], vec![1, 2], 1, 1)
        );
        assert!(list_partition_reassignments(&img, None).is_empty());

        let (recs, results) = reassign(&img, &[(id, 0, None)]);
        assert!(recs.is_empty());
        assert_eq!(
            errors(&results),
            vec![Some(PartitionErrorCode::NoReassignmentInProgress)]
        );
        assert_eq!(
            results[0].message.as_deref(),
            Some("No partition reassignment is in progress.")
        );
    }

    #[test]
    fn cancelling_when_only_adding_replicas_are_in_sync_needs_unclean_election() {
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1]]);
        let (recs, _) = reassign(&img, &[(id, 0, Some(vec![2, 3]))]);
        apply_all(&mut img, &recs);
        let (recs, _) = alter(&img, 1, id, 0, 0, 1, &[1, 2], 0).expect("expand");
        apply_all(&mut img, &recs);
        // Broker 1 goes away and comes back: 2 leads and the ISR is [2], an adding replica.
        fence(&mut img, 1, false);
        unfence(&mut img, 1);
        let p = part(&img, id, 0);
        assert_eq!(
            (p.leader, p.isr.clone(), p.replicas.clone()),
            (2, vec![2], vec![2, 3, 1])
        );

        let (recs, results) = reassign(&img, &[(id, 0, None)]);
        assert!(recs.is_empty());
        assert_eq!(
            errors(&results),
            vec![Some(PartitionErrorCode::InvalidReplicaAssignment)]
        );
        assert_eq!(
            results[0].message.as_deref(),
            Some("Unable to revert partition assignment for t:0 because it would require an unclean leader election.")
        );

        let (recs, results) =
            alter_partition_reassignments_with_unclean(&img, &[(id, 0, None)], |t| t == "t");
        assert_eq!(errors(&results), vec![None]);
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                isr: Some(vec![1]),
                leader: 1,
                replicas: Some(vec![1]),
                removing_replicas: Some(vec![]),
                adding_replicas: Some(vec![]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
    }

    #[test]
    fn a_new_target_replaces_an_ongoing_reassignment() {
        let mut img = live_cluster(&[1, 2, 3, 4, 5]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2, 3]]);
        let (recs, _) = reassign(&img, &[(id, 0, Some(vec![2, 3, 4]))]);
        apply_all(&mut img, &recs);

        // Merged with the whole current replica list, 4 (being added) included.
        let (recs, results) = reassign(&img, &[(id, 0, Some(vec![2, 3, 5]))]);
        assert_eq!(errors(&results), vec![None]);
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                replicas: Some(vec![2, 3, 5, 1, 4]),
                removing_replicas: Some(vec![1, 4]),
                adding_replicas: Some(vec![5]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        assert_eq!(
            list_partition_reassignments(&img, None),
            vec![(id, 0, vec![2, 3, 5, 1, 4], vec![5], vec![1, 4])]
        );
        assert_eq!(part(&img, id, 0).leader_epoch, 0);

        // Cancelling now keeps everything but the replica being added.
        let (recs, _) = reassign(&img, &[(id, 0, None)]);
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                leader: 1,
                replicas: Some(vec![2, 3, 1, 4]),
                removing_replicas: Some(vec![]),
                adding_replicas: Some(vec![]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );

        // Going back to the original replicas finishes at once: all are in the ISR.
        let (recs, _) = reassign(&img, &[(id, 0, Some(vec![1, 2, 3]))]);
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                leader: 1,
                replicas: Some(vec![1, 2, 3]),
                removing_replicas: Some(vec![]),
                adding_replicas: Some(vec![]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        apply_all(&mut img, &recs);
        let p = part(&img, id, 0);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch),
            (vec![1, 2, 3], vec![1, 2, 3], 1, 1)
        );
    }

    #[test]
    fn reassignment_rejections() {
        use PartitionErrorCode as E;
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2]]);
        // Registered but fenced: a valid target, as in Kafka.
        register(&mut img, &registration(4, 4));
        let other = Uuid::from_u128(77);
        let requests = [
            (other, 0, Some(vec![1])),
            (id, 5, Some(vec![1])),
            (id, 0, Some(vec![])),
            (id, 0, Some(vec![2, 1, 2])),
            (id, 0, Some(vec![1, 9, 7])),
            (id, 0, None),
            (id, 0, Some(vec![1, 4])),
        ];
        let (recs, results) = reassign(&img, &requests);
        assert_eq!(
            errors(&results),
            vec![
                Some(E::UnknownTopicOrPartition),
                Some(E::UnknownTopicOrPartition),
                Some(E::InvalidReplicaAssignment),
                Some(E::InvalidReplicaAssignment),
                Some(E::InvalidReplicaAssignment),
                Some(E::NoReassignmentInProgress),
                None,
            ]
        );
        let messages: Vec<_> = results.iter().map(|r| r.message.clone()).collect();
        assert_eq!(
            messages,
            vec![
                Some(format!("Unable to find a topic with ID {other}.")),
                Some("Unable to find partition t:5.".into()),
                Some("The manual partition assignment includes an empty replica list.".into()),
                Some(
                    "The manual partition assignment includes the broker 2 more than once."
                        .into()
                ),
                Some("The manual partition assignment includes broker 7, but no such broker is registered.".into()),
                Some("No partition reassignment is in progress.".into()),
                None,
            ]
        );
        let keys: Vec<_> = results.iter().map(|r| (r.topic_id, r.partition)).collect();
        let want: Vec<_> = requests.iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(keys, want);
        assert_eq!(
            changes(&recs),
            vec![PartitionChangeRecord {
                replicas: Some(vec![1, 4, 2]),
                removing_replicas: Some(vec![2]),
                adding_replicas: Some(vec![4]),
                ..PartitionChangeRecord::new(id, 0)
            }]
        );
        assert_eq!(E::NoReassignmentInProgress.as_protocol(), None);
        assert_eq!(
            E::InvalidReplicaAssignment.as_protocol(),
            Some(ErrorCode::InvalidReplicaAssignment)
        );
        assert_eq!(
            E::NoReassignmentInProgress.to_string(),
            "NO_REASSIGNMENT_IN_PROGRESS (85)"
        );
    }

    #[test]
    fn a_partition_named_twice_is_planned_on_the_staged_state() {
        let mut img = live_cluster(&[1, 2, 3]);
        let id = add_topic(&mut img, "t", 1, &[&[1, 2]]);
        let (recs, results) = reassign(&img, &[(id, 0, Some(vec![2, 3])), (id, 0, None)]);
        assert_eq!(errors(&results), vec![None, None]);
        assert_eq!(
            changes(&recs),
            vec![
                PartitionChangeRecord {
                    replicas: Some(vec![2, 3, 1]),
                    removing_replicas: Some(vec![1]),
                    adding_replicas: Some(vec![3]),
                    ..PartitionChangeRecord::new(id, 0)
                },
                PartitionChangeRecord {
                    leader: 1,
                    replicas: Some(vec![2, 1]),
                    removing_replicas: Some(vec![]),
                    adding_replicas: Some(vec![]),
                    ..PartitionChangeRecord::new(id, 0)
                },
            ]
        );
        apply_all(&mut img, &recs);
        let p = part(&img, id, 0);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![2, 1], vec![1, 2], 1)
        );
        assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
        assert!(list_partition_reassignments(&img, None).is_empty());
    }
}
