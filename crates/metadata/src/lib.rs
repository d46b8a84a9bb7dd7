//! Cluster metadata: the records, the image they build, and the controller logic.
//!
//! Every change to the cluster (a topic created, partitions added, a config set, a topic
//! deleted, a broker registered, fenced or unfenced, a partition's ISR or leader changed)
//! is a [`MetadataRecord`] appended to the `__cluster_metadata` log. The
//! [`MetadataImage`] is the state obtained by replaying those records in order;
//! [`MetadataImage::apply`] is the only way it changes, live and on recovery alike.
//!
//! The [`controller`] module holds the decisions: it takes a request and the current image
//! and returns the records to append plus the per-item results. It never mutates the image
//! and never does I/O, so a single node and a Raft quorum can both sit behind it: whoever
//! commits the records applies them.

pub mod acl;
pub mod codec;
pub mod controller;
pub mod image;
pub mod records;
pub mod topic_name;

pub use image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
pub use records::{
    BrokerEndpoint, BrokerFeature, BrokerFencingChange, LeaderRecoveryState, MetadataRecord,
    PartitionChangeRecord, PartitionRecord, RecordError, RegisterBrokerRecord, NO_LEADER,
    NO_LEADER_CHANGE,
};

/// Kafka's resource type number for topics in ConfigRecord and DescribeConfigs.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type number for brokers.
pub const RESOURCE_BROKER: i8 = 4;
/// Kafka's resource type number for groups (group-level configs, KIP-848).
pub const RESOURCE_GROUP: i8 = 32;

/// The metadata.version krust writes (`FeatureLevelRecord` for `metadata.version`).
pub const METADATA_VERSION_LEVEL: i16 = 27;
