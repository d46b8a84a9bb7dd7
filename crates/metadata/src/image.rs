//! The metadata image: the cluster state obtained by replaying metadata records in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::records::{
    BrokerEndpoint, BrokerFeature, BrokerFencingChange, LeaderRecoveryState, MetadataRecord,
    PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, NO_LEADER_CHANGE,
};

/// A partition's replicas and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// The replicas, in preferred order (the first is the preferred leader).
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas being removed by a reassignment.
    pub removing_replicas: Vec<i32>,
    /// Replicas being added by a reassignment.
    pub adding_replicas: Vec<i32>,
    /// The leader, or -1 ([`crate::records::NO_LEADER`]).
    pub leader: i32,
    /// Whether the leader is recovering from an unclean election (KIP-704).
    pub leader_recovery_state: LeaderRecoveryState,
    /// The leader epoch: bumped whenever a change names a leader.
    pub leader_epoch: i32,
    /// The partition epoch: bumped by every change.
    pub partition_epoch: i32,
}

impl PartitionImage {
    /// The state a full `PartitionRecord` describes.
    pub fn from_record(p: &PartitionRecord) -> PartitionImage {
        PartitionImage {
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            removing_replicas: p.removing_replicas.clone(),
            adding_replicas: p.adding_replicas.clone(),
            leader: p.leader,
            leader_recovery_state: p.leader_recovery_state,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
        }
    }

    /// The partition as the `PartitionRecord` that recreates it.
    pub fn to_record(&self, topic_id: Uuid, partition_id: i32) -> PartitionRecord {
        PartitionRecord {
            partition_id,
            topic_id,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            removing_replicas: self.removing_replicas.clone(),
            adding_replicas: self.adding_replicas.clone(),
            leader: self.leader,
            leader_recovery_state: self.leader_recovery_state,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        }
    }

    /// The state after a `PartitionChangeRecord`, following Kafka's
    /// `PartitionRegistration.merge`: each field present replaces the current one; a leader
    /// other than "no change" (-2) replaces the leader and bumps the leader epoch, even if
    /// it names the same leader; the partition epoch is bumped by every change.
    pub fn merged(&self, c: &PartitionChangeRecord) -> PartitionImage {
        let (leader, leader_epoch) = if c.leader == NO_LEADER_CHANGE {
            (self.leader, self.leader_epoch)
        } else {
            (c.leader, self.leader_epoch.wrapping_add(1))
        };
        PartitionImage {
            replicas: c.replicas.clone().unwrap_or_else(|| self.replicas.clone()),
            isr: c.isr.clone().unwrap_or_else(|| self.isr.clone()),
            removing_replicas: c
                .removing_replicas
                .clone()
                .unwrap_or_else(|| self.removing_replicas.clone()),
            adding_replicas: c
                .adding_replicas
                .clone()
                .unwrap_or_else(|| self.adding_replicas.clone()),
            leader,
            leader_recovery_state: c
                .leader_recovery_state
                .unwrap_or(self.leader_recovery_state),
            leader_epoch,
            partition_epoch: self.partition_epoch.wrapping_add(1),
        }
    }

    /// Whether the partition has a leader.
    pub fn has_leader(&self) -> bool {
        self.leader >= 0
    }

    /// The preferred leader: the first replica, or -1 if there are no replicas.
    pub fn preferred_leader(&self) -> i32 {
        self.replicas
            .first()
            .copied()
            .unwrap_or(crate::records::NO_LEADER)
    }
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

/// A registered broker, as its registration records left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// The broker id.
    pub id: i32,
    /// The id of the registered run of the broker process.
    pub incarnation_id: Uuid,
    /// The broker epoch; records that change the registration must carry it.
    pub epoch: i64,
    /// The listeners the broker can be reached on (name, host, port, security protocol).
    pub endpoints: Vec<BrokerEndpoint>,
    /// The feature ranges the broker supports.
    pub features: Vec<BrokerFeature>,
    /// The broker rack, if any.
    pub rack: Option<String>,
    /// A fenced broker takes no leadership and is not live.
    pub fenced: bool,
    /// A broker in controlled shutdown is not live either.
    pub in_controlled_shutdown: bool,
    /// The broker's online log directory ids (empty if it reported none).
    pub log_dirs: Vec<Uuid>,
}

impl BrokerRegistration {
    /// Whether the broker can take replicas and leadership: not fenced and not in
    /// controlled shutdown.
    pub fn is_live(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }

    /// The registration as the record that recreates it.
    pub fn to_record(&self) -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: self.id,
            is_migrating_zk_broker: false,
            incarnation_id: self.incarnation_id,
            broker_epoch: self.epoch,
            endpoints: self.endpoints.clone(),
            features: self.features.clone(),
            rack: self.rack.clone(),
            fenced: self.fenced,
            in_controlled_shutdown: self.in_controlled_shutdown,
            log_dirs: self.log_dirs.clone(),
        }
    }

    fn from_record(r: &RegisterBrokerRecord) -> BrokerRegistration {
        BrokerRegistration {
            id: r.broker_id,
            incarnation_id: r.incarnation_id,
            epoch: r.broker_epoch,
            endpoints: r.endpoints.clone(),
            features: r.features.clone(),
            rack: r.rack.clone(),
            fenced: r.fenced,
            in_controlled_shutdown: r.in_controlled_shutdown,
            log_dirs: r.log_dirs.clone(),
        }
    }
}

/// A record that cannot apply to the current image: the metadata log is inconsistent.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApplyError {
    #[error("topic {name} ({id}) already exists")]
    TopicExists { name: String, id: Uuid },
    #[error("partition record for unknown topic id {0}")]
    UnknownTopicId(Uuid),
    /// A partition change names a partition the topic does not have.
    #[error("partition change record for unknown partition {partition} of topic id {topic_id}")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    /// A broker record names a broker id with no registration.
    #[error("broker record for broker {0}, which is not registered")]
    UnknownBroker(i32),
    /// A broker record carries an epoch other than the registration's.
    #[error(
        "broker record for broker {id} with epoch {got}, but its registration has epoch {expected}"
    )]
    StaleBrokerEpoch { id: i32, expected: i64, got: i64 },
}

/// A client quota entity: its (type, name) parts (`user`, `client-id`, `ip`), sorted by
/// type; a `None` name is the type's default.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// The whole cluster metadata as of [`MetadataImage::offset`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    /// Offset of the last record applied; -1 for an empty image.
    pub offset: i64,
    pub features: BTreeMap<String, i16>,
    /// Each topic behind its own `Arc`: cloning an image (every published version, every
    /// staged decision) copies one pointer per topic, and a change copies only the topic
    /// it touches.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// Config overrides by (resource type, resource name), then key.
    pub configs: BTreeMap<(i8, String), BTreeMap<String, String>>,
    /// First producer id not yet handed out.
    pub next_producer_id: i64,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// SCRAM credentials by user name and Kafka's ScramMechanism type (1 = SHA-256,
    /// 2 = SHA-512).
    pub scram: BTreeMap<(String, i8), krust_protocol::sasl::ScramCredential>,
    /// Every ACL, shared between versions until one changes.
    pub acls: Arc<crate::acl::AclTable>,
    /// Client quotas by entity (its (type, name) parts sorted by type; a `None` name is
    /// the default), then key.
    pub quotas: BTreeMap<QuotaEntity, BTreeMap<String, f64>>,
}

impl MetadataImage {
    /// An empty image, before any record.
    pub fn new() -> MetadataImage {
        MetadataImage {
            offset: -1,
            ..Default::default()
        }
    }

    /// Applies one committed record found at `offset`. This is the only mutation of an image.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::FeatureLevel { name, level } => {
                self.features.insert(name.clone(), *level);
            }
            MetadataRecord::Topic { name, topic_id } => {
                if let Some(t) = self.topics.get(name) {
                    return Err(ApplyError::TopicExists {
                        name: name.clone(),
                        id: t.id,
                    });
                }
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: BTreeMap::new(),
                    }),
                );
                self.topic_names_by_id.insert(*topic_id, name.clone());
            }
            MetadataRecord::Partition(p) => self.apply_partition(p)?,
            MetadataRecord::PartitionChange(c) => self.apply_partition_change(c)?,
            MetadataRecord::Config {
                resource_type,
                resource_name,
                name,
                value,
            } => {
                let key = (*resource_type, resource_name.clone());
                match value {
                    Some(v) => {
                        self.configs
                            .entry(key)
                            .or_default()
                            .insert(name.clone(), v.clone());
                    }
                    None => {
                        if let Some(m) = self.configs.get_mut(&key) {
                            m.remove(name);
                            if m.is_empty() {
                                self.configs.remove(&key);
                            }
                        }
                    }
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self
                    .topic_names_by_id
                    .remove(topic_id)
                    .ok_or(ApplyError::UnknownTopicId(*topic_id))?;
                self.topics.remove(&name);
                self.configs.remove(&(crate::RESOURCE_TOPIC, name));
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                self.scram.insert(
                    (name.clone(), *mechanism),
                    krust_protocol::sasl::ScramCredential {
                        salt: salt.clone(),
                        stored_key: stored_key.clone(),
                        server_key: server_key.clone(),
                        iterations: *iterations,
                    },
                );
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                self.scram.remove(&(name.clone(), *mechanism));
            }
            MetadataRecord::AccessControlEntry { id, acl } => {
                Arc::make_mut(&mut self.acls).insert(*id, acl.clone());
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                Arc::make_mut(&mut self.acls).remove(id);
            }
            MetadataRecord::ClientQuota {
                entity,
                key,
                value,
                remove,
            } => {
                let mut entity = entity.clone();
                entity.sort();
                if *remove {
                    if let Some(q) = self.quotas.get_mut(&entity) {
                        q.remove(key);
                        if q.is_empty() {
                            self.quotas.remove(&entity);
                        }
                    }
                } else {
                    self.quotas
                        .entry(entity)
                        .or_default()
                        .insert(key.clone(), *value);
                }
            }
            // Transaction markers: the log's reader stages what lies between them.
            MetadataRecord::NoOp
            | MetadataRecord::BeginTransaction { .. }
            | MetadataRecord::EndTransaction
            | MetadataRecord::AbortTransaction { .. } => {}
            MetadataRecord::RegisterBroker(r) => {
                self.brokers
                    .insert(r.broker_id, BrokerRegistration::from_record(r));
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.registration_mut(*broker_id, *broker_epoch)?;
                self.brokers.remove(broker_id);
            }
            MetadataRecord::FenceBroker { id, epoch } => {
                self.registration_mut(*id, *epoch)?.fenced = true;
            }
            MetadataRecord::UnfenceBroker { id, epoch } => {
                self.registration_mut(*id, *epoch)?.fenced = false;
            }
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch,
                fenced,
                in_controlled_shutdown,
                log_dirs,
            } => {
                let b = self.registration_mut(*broker_id, *broker_epoch)?;
                match fenced {
                    BrokerFencingChange::Fence => b.fenced = true,
                    BrokerFencingChange::Unfence => b.fenced = false,
                    BrokerFencingChange::NoChange => {}
                }
                if *in_controlled_shutdown {
                    b.in_controlled_shutdown = true;
                }
                if !log_dirs.is_empty() {
                    b.log_dirs = log_dirs.clone();
                }
            }
        }
        self.offset = offset;
        Ok(())
    }

    /// The registration a broker record names, if its epoch matches.
    fn registration_mut(
        &mut self,
        id: i32,
        epoch: i64,
    ) -> Result<&mut BrokerRegistration, ApplyError> {
        let b = self
            .brokers
            .get_mut(&id)
            .ok_or(ApplyError::UnknownBroker(id))?;
        if b.epoch != epoch {
            return Err(ApplyError::StaleBrokerEpoch {
                id,
                expected: b.epoch,
                got: epoch,
            });
        }
        Ok(b)
    }

    fn apply_partition(&mut self, p: &PartitionRecord) -> Result<(), ApplyError> {
        let name = self
            .topic_names_by_id
            .get(&p.topic_id)
            .ok_or(ApplyError::UnknownTopicId(p.topic_id))?;
        let topic = self
            .topics
            .get_mut(name)
            .ok_or(ApplyError::UnknownTopicId(p.topic_id))?;
        Arc::make_mut(topic)
            .partitions
            .insert(p.partition_id, PartitionImage::from_record(p));
        Ok(())
    }

    fn apply_partition_change(&mut self, c: &PartitionChangeRecord) -> Result<(), ApplyError> {
        let name = self
            .topic_names_by_id
            .get(&c.topic_id)
            .ok_or(ApplyError::UnknownTopicId(c.topic_id))?;
        let topic = self
            .topics
            .get_mut(name)
            .ok_or(ApplyError::UnknownTopicId(c.topic_id))?;
        let part = Arc::make_mut(topic)
            .partitions
            .get_mut(&c.partition_id)
            .ok_or(ApplyError::UnknownPartition {
                topic_id: c.topic_id,
                partition: c.partition_id,
            })?;
        *part = part.merged(c);
        Ok(())
    }

    /// The whole image as records: replaying them into an empty image rebuilds it (a
    /// snapshot's content). Order: features, producer ids, broker registrations, then each
    /// topic with its partitions, then config overrides, then SCRAM credentials, ACLs and client quotas.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, level) in &self.features {
            out.push(MetadataRecord::FeatureLevel {
                name: name.clone(),
                level: *level,
            });
        }
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds {
                broker_id: -1,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(b.to_record()));
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.id,
            });
            for (&index, p) in &t.partitions {
                out.push(MetadataRecord::Partition(p.to_record(t.id, index)));
            }
        }
        for ((resource_type, resource_name), entries) in &self.configs {
            for (name, value) in entries {
                out.push(MetadataRecord::Config {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for ((name, mechanism), c) in &self.scram {
            out.push(MetadataRecord::user_scram_credential(name, *mechanism, c));
        }
        for (id, acl) in self.acls.iter() {
            out.push(MetadataRecord::AccessControlEntry {
                id: *id,
                acl: acl.clone(),
            });
        }
        for (entity, values) in &self.quotas {
            for (key, value) in values {
                out.push(MetadataRecord::ClientQuota {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: *value,
                    remove: false,
                });
            }
        }
        out
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name).map(|t| &**t)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
            .map(|t| &**t)
    }

    /// A partition by topic id and index.
    pub fn partition(&self, topic_id: &Uuid, partition: i32) -> Option<&PartitionImage> {
        self.topic_by_id(topic_id)?.partitions.get(&partition)
    }

    /// A broker's registration by id.
    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Whether a broker is live: registered, not fenced and not in controlled shutdown
    /// (Kafka's `ClusterControlManager.isActive`). Only live brokers take new replicas,
    /// join an ISR or become leaders.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers
            .get(&id)
            .is_some_and(BrokerRegistration::is_live)
    }

    /// Ids of the live brokers ([`MetadataImage::is_live`]), sorted.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| b.is_live())
            .map(|b| b.id)
            .collect()
    }

    /// One config override of a topic, without copying the topic's whole config map.
    pub fn topic_config(&self, name: &str, key: &str) -> Option<&str> {
        self.configs
            .get(&(crate::RESOURCE_TOPIC, name.to_string()))?
            .get(key)
            .map(String::as_str)
    }

    /// The config overrides of a topic (empty if none).
    pub fn topic_configs(&self, name: &str) -> BTreeMap<String, String> {
        self.resource_configs(crate::RESOURCE_TOPIC, name)
    }

    /// The config overrides of a resource (topic, group, ...), empty if none.
    pub fn resource_configs(&self, resource_type: i8, name: &str) -> BTreeMap<String, String> {
        self.configs
            .get(&(resource_type, name.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{PartitionChangeRecord, PartitionRecord};

    fn part(topic_id: Uuid, id: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            partition_id: id,
            topic_id,
            replicas: vec![1],
            isr: vec![1],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 1,
            leader_recovery_state: LeaderRecoveryState::Recovered,
            leader_epoch: 0,
            partition_epoch: 0,
        })
    }

    #[test]
    fn a_copy_shares_its_topics_until_one_changes() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut img = MetadataImage::new();
        let records = [
            MetadataRecord::Topic {
                name: "a".into(),
                topic_id: a,
            },
            part(a, 0),
            MetadataRecord::Topic {
                name: "b".into(),
                topic_id: b,
            },
            part(b, 0),
        ];
        for (i, r) in records.iter().enumerate() {
            img.apply(i as i64, r).expect("apply");
        }
        let before = img.clone();
        assert!(Arc::ptr_eq(&before.topics["a"], &img.topics["a"]));
        let mut change = PartitionChangeRecord::new(a, 0);
        change.leader = 2;
        img.apply(4, &MetadataRecord::PartitionChange(change))
            .expect("apply");
        // The changed topic is copied; the copy taken before keeps the old leader.
        assert!(!Arc::ptr_eq(&before.topics["a"], &img.topics["a"]));
        assert_eq!(before.topics["a"].partitions[&0].leader, 1);
        assert_eq!(img.topics["a"].partitions[&0].leader, 2);
        // The other topic is still shared.
        assert!(Arc::ptr_eq(&before.topics["b"], &img.topics["b"]));
        // A change to a partition that does not exist is refused and changes nothing.
        let missing = PartitionChangeRecord::new(b, 9);
        assert!(img
            .apply(5, &MetadataRecord::PartitionChange(missing))
            .is_err());
        assert_eq!(img.topics["b"], before.topics["b"]);
    }

    #[test]
    fn replay_builds_and_removes_topics() {
        let id = Uuid::from_u128(7);
        let log = [
            MetadataRecord::FeatureLevel {
                name: "metadata.version".into(),
                level: 27,
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            part(id, 0),
            part(id, 1),
            MetadataRecord::Config {
                resource_type: 2,
                resource_name: "t".into(),
                name: "retention.ms".into(),
                value: Some("5".into()),
            },
        ];
        let mut img = MetadataImage::new();
        for (i, r) in log.iter().enumerate() {
            img.apply(i as i64, r).expect("apply");
        }
        assert_eq!(img.offset, 4);
        let t = img.topic("t").expect("topic");
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(
            img.topic_configs("t")
                .get("retention.ms")
                .map(String::as_str),
            Some("5")
        );
        assert_eq!(img.topic_by_id(&id).map(|t| t.name.as_str()), Some("t"));

        // Replaying the same records gives the same image.
        let mut again = MetadataImage::new();
        for (i, r) in log.iter().enumerate() {
            again.apply(i as i64, r).expect("apply");
        }
        assert_eq!(img, again);

        img.apply(5, &MetadataRecord::RemoveTopic { topic_id: id })
            .expect("remove");
        assert!(img.topic("t").is_none());
        assert!(img.topic_configs("t").is_empty());
        assert!(img.topic_by_id(&id).is_none());
    }

    fn acl(id: u128, topic: &str) -> MetadataRecord {
        MetadataRecord::AccessControlEntry {
            id: Uuid::from_u128(id),
            acl: crate::acl::Acl {
                resource_type: crate::acl::resource::TOPIC,
                resource_name: topic.into(),
                pattern_type: crate::acl::pattern::LITERAL,
                principal: "User:alice".into(),
                host: "*".into(),
                operation: crate::acl::op::READ,
                permission: crate::acl::permission::ALLOW,
            },
        }
    }

    fn register(id: i32, epoch: i64) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            is_migrating_zk_broker: false,
            incarnation_id: Uuid::from_u128(100 + id as u128),
            broker_epoch: epoch,
            endpoints: vec![BrokerEndpoint {
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
            rack: None,
            fenced: true,
            in_controlled_shutdown: false,
            log_dirs: vec![],
        })
    }

    fn change(id: i32, epoch: i64, fenced: BrokerFencingChange) -> MetadataRecord {
        MetadataRecord::BrokerRegistrationChange {
            broker_id: id,
            broker_epoch: epoch,
            fenced,
            in_controlled_shutdown: false,
            log_dirs: vec![],
        }
    }

    #[test]
    fn broker_lifecycle() {
        let mut img = MetadataImage::new();
        img.apply(10, &register(1, 10)).expect("register 1");
        img.apply(11, &register(2, 11)).expect("register 2");
        assert_eq!(img.broker(1).map(|b| b.fenced), Some(true));
        assert!(img.live_brokers().is_empty());

        img.apply(12, &change(2, 11, BrokerFencingChange::Unfence))
            .expect("unfence 2");
        img.apply(13, &MetadataRecord::UnfenceBroker { id: 1, epoch: 10 })
            .expect("unfence 1");
        assert_eq!(img.live_brokers(), vec![1, 2]);

        img.apply(14, &MetadataRecord::FenceBroker { id: 1, epoch: 10 })
            .expect("fence 1");
        assert_eq!(img.live_brokers(), vec![2]);
        img.apply(15, &change(1, 10, BrokerFencingChange::Unfence))
            .expect("unfence 1 again");

        let dirs = vec![Uuid::from_u128(500)];
        img.apply(
            16,
            &MetadataRecord::BrokerRegistrationChange {
                broker_id: 2,
                broker_epoch: 11,
                fenced: BrokerFencingChange::NoChange,
                in_controlled_shutdown: true,
                log_dirs: dirs.clone(),
            },
        )
        .expect("controlled shutdown");
        let b2 = img.broker(2).expect("broker 2");
        assert!(!b2.fenced && b2.in_controlled_shutdown);
        assert_eq!(b2.log_dirs, dirs);
        assert_eq!(img.live_brokers(), vec![1]);
        // An empty log_dirs leaves them alone.
        img.apply(17, &change(2, 11, BrokerFencingChange::Fence))
            .expect("fence 2");
        assert_eq!(img.broker(2).map(|b| b.log_dirs.clone()), Some(dirs));

        // A new registration replaces the old one whole.
        img.apply(18, &register(2, 18)).expect("re-register 2");
        let b2 = img.broker(2).expect("broker 2");
        assert_eq!(b2.epoch, 18);
        assert!(b2.fenced && !b2.in_controlled_shutdown && b2.log_dirs.is_empty());

        img.apply(
            19,
            &MetadataRecord::UnregisterBroker {
                broker_id: 1,
                broker_epoch: 10,
            },
        )
        .expect("unregister 1");
        assert!(img.broker(1).is_none());
        assert_eq!(img.offset, 19);
        assert_eq!(img.brokers.keys().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn broker_records_need_the_registration_epoch() {
        let mut img = MetadataImage::new();
        img.apply(5, &register(1, 5)).expect("register");
        let stale = || ApplyError::StaleBrokerEpoch {
            id: 1,
            expected: 5,
            got: 4,
        };
        for r in [
            MetadataRecord::FenceBroker { id: 1, epoch: 4 },
            MetadataRecord::UnfenceBroker { id: 1, epoch: 4 },
            change(1, 4, BrokerFencingChange::Unfence),
            MetadataRecord::UnregisterBroker {
                broker_id: 1,
                broker_epoch: 4,
            },
        ] {
            assert_eq!(img.apply(6, &r), Err(stale()), "{r:?}");
        }
        for r in [
            MetadataRecord::FenceBroker { id: 9, epoch: 5 },
            MetadataRecord::UnfenceBroker { id: 9, epoch: 5 },
            change(9, 5, BrokerFencingChange::Fence),
            MetadataRecord::UnregisterBroker {
                broker_id: 9,
                broker_epoch: 5,
            },
        ] {
            assert_eq!(img.apply(6, &r), Err(ApplyError::UnknownBroker(9)), "{r:?}");
        }
        // Nothing changed, not even the offset.
        assert_eq!(img.offset, 5);
        assert_eq!(img.broker(1).map(|b| b.fenced), Some(true));
    }

    #[test]
    fn to_records_rebuilds_the_same_image() {
        let id = Uuid::from_u128(9);
        let mut img = MetadataImage::new();
        let log = [
            MetadataRecord::FeatureLevel {
                name: "metadata.version".into(),
                level: 27,
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            part(id, 0),
            part(id, 1),
            MetadataRecord::Config {
                resource_type: 2,
                resource_name: "t".into(),
                name: "retention.ms".into(),
                value: Some("5".into()),
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                broker_epoch: 0,
                next_producer_id: 3000,
            },
            MetadataRecord::UserScramCredential {
                name: "alice".into(),
                mechanism: 1,
                salt: vec![1],
                stored_key: vec![2],
                server_key: vec![3],
                iterations: 4096,
            },
            MetadataRecord::UserScramCredential {
                name: "bob".into(),
                mechanism: 2,
                salt: vec![1],
                stored_key: vec![2],
                server_key: vec![3],
                iterations: 4096,
            },
            MetadataRecord::RemoveUserScramCredential {
                name: "bob".into(),
                mechanism: 2,
            },
            acl(1, "orders"),
            acl(2, "pay"),
            acl(3, "gone"),
            MetadataRecord::RemoveAccessControlEntry {
                id: Uuid::from_u128(3),
            },
            MetadataRecord::ClientQuota {
                entity: vec![("user".into(), Some("alice".into()))],
                key: "producer_byte_rate".into(),
                value: 2048.0,
                remove: false,
            },
            MetadataRecord::ClientQuota {
                entity: vec![("client-id".into(), None)],
                key: "consumer_byte_rate".into(),
                value: 10.0,
                remove: false,
            },
            MetadataRecord::ClientQuota {
                entity: vec![("client-id".into(), None)],
                key: "consumer_byte_rate".into(),
                value: 0.0,
                remove: true,
            },
            register(1, 6),
            register(2, 7),
            register(3, 8),
            change(1, 6, BrokerFencingChange::Unfence),
            MetadataRecord::BrokerRegistrationChange {
                broker_id: 2,
                broker_epoch: 7,
                fenced: BrokerFencingChange::Unfence,
                in_controlled_shutdown: true,
                log_dirs: vec![Uuid::from_u128(700), Uuid::from_u128(701)],
            },
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                rack: Some("rack-a".into()),
                ..match register(4, 13) {
                    MetadataRecord::RegisterBroker(r) => r,
                    _ => unreachable!(),
                }
            }),
        ];
        for (i, r) in log.iter().enumerate() {
            img.apply(i as i64, r).expect("apply");
        }
        assert_eq!(img.brokers.len(), 4);
        assert_eq!(img.acls.len(), 2);
        assert_eq!(img.quotas.len(), 1);
        let mut rebuilt = MetadataImage::new();
        for r in img.to_records() {
            rebuilt
                .apply(img.offset, &r)
                .expect("apply snapshot record");
        }
        assert_eq!(rebuilt, img);
        assert_eq!(rebuilt.live_brokers(), vec![1]);
        // And through the wire encoding too.
        let mut decoded = MetadataImage::new();
        for r in img.to_records() {
            let r = MetadataRecord::decode(&r.encode()).expect("decode");
            decoded.apply(img.offset, &r).expect("apply decoded");
        }
        assert_eq!(decoded, img);
    }

    fn pchange(topic_id: Uuid, partition: i32) -> PartitionChangeRecord {
        PartitionChangeRecord::new(topic_id, partition)
    }

    #[test]
    fn partition_changes_merge_like_kafka() {
        let id = Uuid::from_u128(7);
        let mut img = MetadataImage::new();
        img.apply(
            0,
            &MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
        )
        .expect("topic");
        img.apply(
            1,
            &MetadataRecord::Partition(PartitionRecord {
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                ..match part(id, 0) {
                    MetadataRecord::Partition(p) => p,
                    _ => unreachable!(),
                }
            }),
        )
        .expect("partition");
        let p = |img: &MetadataImage| img.partition(&id, 0).cloned().expect("partition");

        // An ISR shrink alone: partition epoch only (krust's metadata.version is past
        // 3.6-IV0, which stopped bumping the leader epoch on a controller ISR shrink).
        let shrink = PartitionChangeRecord {
            isr: Some(vec![1, 2]),
            ..pchange(id, 0)
        };
        img.apply(2, &MetadataRecord::PartitionChange(shrink))
            .expect("shrink");
        let now = p(&img);
        assert_eq!(now.isr, vec![1, 2]);
        assert_eq!(
            (now.leader, now.leader_epoch, now.partition_epoch),
            (1, 0, 1)
        );

        // A new leader bumps both epochs.
        let elect = PartitionChangeRecord {
            isr: Some(vec![2]),
            leader: 2,
            ..pchange(id, 0)
        };
        img.apply(3, &MetadataRecord::PartitionChange(elect))
            .expect("elect");
        let now = p(&img);
        assert_eq!(
            (now.leader, now.leader_epoch, now.partition_epoch),
            (2, 1, 2)
        );
        assert_eq!(now.isr, vec![2]);

        // Naming the current leader still bumps the leader epoch.
        let same = PartitionChangeRecord {
            leader: 2,
            ..pchange(id, 0)
        };
        img.apply(4, &MetadataRecord::PartitionChange(same))
            .expect("same leader");
        assert_eq!((p(&img).leader_epoch, p(&img).partition_epoch), (2, 3));

        // No leader; then replicas, reassignment fields and recovery state.
        let none = PartitionChangeRecord {
            leader: crate::records::NO_LEADER,
            ..pchange(id, 0)
        };
        img.apply(5, &MetadataRecord::PartitionChange(none))
            .expect("no leader");
        assert!(!p(&img).has_leader());
        let unclean = PartitionChangeRecord {
            isr: Some(vec![3]),
            leader: 3,
            replicas: Some(vec![3, 2, 1, 4]),
            adding_replicas: Some(vec![4]),
            removing_replicas: Some(vec![1]),
            leader_recovery_state: Some(LeaderRecoveryState::Recovering),
            ..pchange(id, 0)
        };
        img.apply(6, &MetadataRecord::PartitionChange(unclean))
            .expect("unclean");
        let want = PartitionImage {
            replicas: vec![3, 2, 1, 4],
            isr: vec![3],
            removing_replicas: vec![1],
            adding_replicas: vec![4],
            leader: 3,
            leader_recovery_state: LeaderRecoveryState::Recovering,
            leader_epoch: 4,
            partition_epoch: 5,
        };
        assert_eq!(p(&img), want);
        assert_eq!(want.preferred_leader(), 3);

        // Snapshots carry every field.
        let mut rebuilt = MetadataImage::new();
        for r in img.to_records() {
            let r = MetadataRecord::decode(&r.encode()).expect("decode");
            rebuilt
                .apply(img.offset, &r)
                .expect("apply snapshot record");
        }
        assert_eq!(rebuilt, img);

        // Unknown topic or partition.
        let other = Uuid::from_u128(8);
        assert_eq!(
            img.apply(7, &MetadataRecord::PartitionChange(pchange(other, 0))),
            Err(ApplyError::UnknownTopicId(other))
        );
        assert_eq!(
            img.apply(7, &MetadataRecord::PartitionChange(pchange(id, 1))),
            Err(ApplyError::UnknownPartition {
                topic_id: id,
                partition: 1
            })
        );
        assert_eq!(img.offset, 6);
        assert_eq!(p(&img), want);
    }

    #[test]
    fn inconsistent_records_are_errors() {
        let mut img = MetadataImage::new();
        assert_eq!(
            img.apply(0, &part(Uuid::from_u128(1), 0)),
            Err(ApplyError::UnknownTopicId(Uuid::from_u128(1)))
        );
        let t = MetadataRecord::Topic {
            name: "t".into(),
            topic_id: Uuid::from_u128(2),
        };
        img.apply(0, &t).expect("first");
        assert!(img.apply(1, &t).is_err());
    }

    #[test]
    fn config_delete_removes_key() {
        let mut img = MetadataImage::new();
        let set = |v: Option<&str>| MetadataRecord::Config {
            resource_type: 4,
            resource_name: "1".into(),
            name: "k".into(),
            value: v.map(String::from),
        };
        img.apply(0, &set(Some("a"))).expect("set");
        img.apply(1, &set(None)).expect("delete");
        assert!(img.configs.is_empty());
    }
}
