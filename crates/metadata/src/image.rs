//! The metadata image: the cluster state obtained by replaying metadata records in order.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::records::{
    BrokerEndpoint, BrokerFeature, BrokerFencingChange, MetadataRecord, PartitionRecord,
    RegisterBrokerRecord,
};

/// A partition's replicas and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
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
    /// A broker record names a broker id with no registration.
    #[error("broker record for broker {0}, which is not registered")]
    UnknownBroker(i32),
    /// A broker record carries an epoch other than the registration's.
    #[error(
        "broker record for broker {id} with epoch {got}, but its registration has epoch {expected}"
    )]
    StaleBrokerEpoch { id: i32, expected: i64, got: i64 },
}

/// The whole cluster metadata as of [`MetadataImage::offset`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    /// Offset of the last record applied; -1 for an empty image.
    pub offset: i64,
    pub features: BTreeMap<String, i16>,
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// Config overrides by (resource type, resource name), then key.
    pub configs: BTreeMap<(i8, String), BTreeMap<String, String>>,
    /// First producer id not yet handed out.
    pub next_producer_id: i64,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
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
                    TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: BTreeMap::new(),
                    },
                );
                self.topic_names_by_id.insert(*topic_id, name.clone());
            }
            MetadataRecord::Partition(p) => self.apply_partition(p)?,
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
            MetadataRecord::NoOp => {}
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
        topic.partitions.insert(
            p.partition_id,
            PartitionImage {
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
            },
        );
        Ok(())
    }

    /// The whole image as records: replaying them into an empty image rebuilds it (a
    /// snapshot's content). Order: features, producer ids, broker registrations, then each
    /// topic with its partitions, then config overrides.
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
                out.push(MetadataRecord::Partition(PartitionRecord {
                    partition_id: index,
                    topic_id: t.id,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    removing_replicas: vec![],
                    adding_replicas: vec![],
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                }));
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
        out
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }

    /// A broker's registration by id.
    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Ids of the registered brokers that are neither fenced nor in controlled shutdown,
    /// sorted.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| b.is_live())
            .map(|b| b.id)
            .collect()
    }

    /// The config overrides of a topic (empty if none).
    pub fn topic_configs(&self, name: &str) -> BTreeMap<String, String> {
        self.configs
            .get(&(crate::RESOURCE_TOPIC, name.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::PartitionRecord;

    fn part(topic_id: Uuid, id: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            partition_id: id,
            topic_id,
            replicas: vec![1],
            isr: vec![1],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        })
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
