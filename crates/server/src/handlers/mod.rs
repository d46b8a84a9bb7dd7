//! One handler per Kafka API. Each takes the decoded request and its version and returns
//! the response; none of them touches the socket.

pub mod acls;
pub mod alter_configs;
pub mod api_versions;
pub mod client_quotas;
pub mod consumer_group;
pub mod controller;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod raft;
pub mod reassignments;
pub mod scram;
pub mod sync_group;
pub mod txn;
pub mod txn_offset_commit;

use kafka_protocol::protocol::StrBytes;

/// A `StrBytes` from any string.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Topic config validation in the shape the controller expects.
pub(crate) fn validate_topic_config(name: &str, value: Option<&str>) -> Result<(), String> {
    crate::topic_config::validate_topic_config(name, value).map_err(|e| e.to_string())
}

/// An optional string from an optional `StrBytes`.
pub(crate) fn opt(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|x| x.to_string())
}
