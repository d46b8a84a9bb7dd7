//! Controller decisions: requests in, records and results out.
//!
//! Each function validates a request against the current image and returns the records
//! that carry it out plus a result per item. Nothing here mutates the image: the caller
//! commits the records to the metadata log and applies them. Randomness (topic ids, the
//! placement start) is passed in so the logic is deterministic under test.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use krust_protocol::ErrorCode;
use uuid::Uuid;

use crate::image::{BrokerRegistration, MetadataImage};
use crate::records::{
    BrokerEndpoint, BrokerFeature, BrokerFencingChange, MetadataRecord, PartitionRecord,
    RegisterBrokerRecord,
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
    place(cluster.live_brokers, partitions, rf, placement_start, 0)
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
        return Err(ItemResult::err(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {n} broker(s) are registered."
            ),
        ));
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

/// Plans growing a topic to `count` partitions (CreatePartitions).
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
        None => place(cluster.live_brokers, new, rf, placement_start, current)?,
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
    let current = image.topic_configs(topic);
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
    for (k, v) in &next {
        validate_config(k, Some(v)).map_err(|m| ItemResult::err(ErrorCode::InvalidConfig, m))?;
    }
    let mut records = Vec::new();
    for (k, v) in &next {
        if current.get(k) != Some(v) {
            records.push(MetadataRecord::Config {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.to_string(),
                name: k.clone(),
                value: Some(v.clone()),
            });
        }
    }
    for k in current.keys() {
        if !next.contains_key(k) {
            records.push(MetadataRecord::Config {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.to_string(),
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
/// from metadata.version 3.3-IV2 on. Kafka moves partition leadership away before letting a
/// broker that leads partitions shut down (controlled shutdown) and shrinks ISRs when it
/// fences one; neither happens here, so the broker is fenced straight away.
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
/// or none if the broker is unknown or already fenced.
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
        let cluster = Cluster {
            image: &img,
            live_brokers: &[1],
            default_num_partitions: 1,
            default_replication_factor: 1,
        };
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
        let cluster = Cluster {
            image: &img,
            live_brokers: &[1],
            default_num_partitions: 4,
            default_replication_factor: 1,
        };
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
    fn partitions_grow_and_never_shrink() {
        let mut img = MetadataImage::new();
        let (recs, _) = create(&img, &[1], topic("t", 2, 1));
        apply_all(&mut img, &recs);
        let cluster = Cluster {
            image: &img,
            live_brokers: &[1],
            default_num_partitions: 1,
            default_replication_factor: 1,
        };
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
}
