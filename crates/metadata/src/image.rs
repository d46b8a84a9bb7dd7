//! The metadata image: the cluster state obtained by replaying metadata records in order.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::records::{MetadataRecord, PartitionRecord};

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

/// A record that cannot apply to the current image: the metadata log is inconsistent.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApplyError {
    #[error("topic {name} ({id}) already exists")]
    TopicExists { name: String, id: Uuid },
    #[error("partition record for unknown topic id {0}")]
    UnknownTopicId(Uuid),
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
        }
        self.offset = offset;
        Ok(())
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
    /// snapshot's content). Order: features, producer ids, then each topic with its
    /// partitions, then config overrides.
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
        ];
        for (i, r) in log.iter().enumerate() {
            img.apply(i as i64, r).expect("apply");
        }
        let mut rebuilt = MetadataImage::new();
        for r in img.to_records() {
            rebuilt
                .apply(img.offset, &r)
                .expect("apply snapshot record");
        }
        assert_eq!(rebuilt, img);
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
