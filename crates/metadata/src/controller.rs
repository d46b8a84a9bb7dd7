//! Controller decisions: requests in, records and results out.
//!
//! Each function validates a request against the current image and returns the records
//! that carry it out plus a result per item. Nothing here mutates the image: the caller
//! commits the records to the metadata log and applies them. Randomness (topic ids, the
//! placement start) is passed in so the logic is deterministic under test.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use krust_protocol::ErrorCode;
use uuid::Uuid;

use crate::image::MetadataImage;
use crate::records::{MetadataRecord, PartitionRecord};
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
