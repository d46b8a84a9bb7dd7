//! One handler per Kafka API. Each takes the decoded request and its version and returns
//! the response; none of them touches the socket.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod fetch;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;

use kafka_protocol::protocol::StrBytes;

/// A `StrBytes` from any string.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Topic config validation in the shape the controller expects.
pub(crate) fn validate_topic_config(name: &str, value: Option<&str>) -> Result<(), String> {
    crate::topic_config::validate_topic_config(name, value).map_err(|e| e.to_string())
}
