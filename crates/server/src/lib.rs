//! The krust node: the I/O shell around the pure crates.
//!
//! This crate owns every socket and timer of a running node. It reads the config, checks
//! the storage identity, replays the metadata log into an image, opens the partition logs
//! the image assigns to this node, and serves the Kafka protocol on the client and
//! controller listeners. Each Kafka API has its own handler in [`handlers`].

pub mod admission;
pub mod authz;
pub mod broker;
pub mod cleaner;
pub mod config;
pub mod controller;
pub mod dispatch;
pub mod format;
pub mod forward;
pub mod group_config;
pub mod groups;
pub mod handlers;
pub mod meta_properties;
pub mod metadata_log;
pub mod metrics;
pub mod network;
pub mod oauth;
pub mod outbound;
pub mod partition;
pub mod principal;
pub mod quorum;
pub mod quorum_state;
pub mod quota;
pub mod raft_log;
pub mod raft_wire;
pub mod replication;
pub mod sasl;
pub mod server;
pub mod topic_config;
pub mod txn;

pub use server::{run, RunningServer};
