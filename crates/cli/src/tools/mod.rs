//! Kafka's command-line tools, as subcommands of the `krust` binary. Each takes the same
//! flags and prints the same layout as the Kafka script it is named after.

/// `println!` that ends the process quietly (exit 1) when stdout is closed, e.g. `| head`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::tools::common::write_stdout_line(&format!($($arg)*))
    };
}

pub mod acls;
pub mod aliases;
pub mod cluster_id;
pub mod common;
pub mod configs;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod consumer_perf;
pub mod container_start;
pub mod delete_records;
pub mod dev_cluster;
pub mod get_offsets;
pub mod group_member;
pub mod log_dirs;
pub mod metadata_quorum;
pub mod producer_perf;
pub mod reassign_partitions;
pub mod topic_filter;
pub mod topics;
pub mod transactions;
