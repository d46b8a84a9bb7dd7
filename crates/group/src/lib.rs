//! The consumer-group coordinator of krust (Kafka's classic group protocol),
//! as a pure state machine.
//!
//! # What it owns
//!
//! One [`GroupCoordinator`] holds every group of one `__consumer_offsets`
//! partition: members, generations, assignments (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, static membership), committed offsets (OffsetCommit,
//! OffsetFetch, OffsetDelete), DescribeGroups, ListGroups, DeleteGroups and
//! offsets retention. It also owns the format of the partition's records
//! ([`records`]: Kafka's `__consumer_offsets` keys and values, so Kafka's
//! tools can read them) and rebuilds its state from them
//! ([`GroupCoordinator::replay`]).
//!
//! # What it never does
//!
//! No I/O, no async, no threads, no clock, no global randomness: commands come
//! in with `now_ms` and a [`RequestId`], an [`Output`] (records to append,
//! responses to send) comes out. It never writes the log, never routes
//! requests to partitions (the server hashes the group id to its
//! `__consumer_offsets` partition and answers NOT_COORDINATOR itself), never
//! decodes Kafka wire messages (the server maps them to the plain structs of
//! [`api`]), and never interprets assignments.
//!
//! # Contract with the server
//!
//! * Append `Output::records` in order to the partition and send
//!   `Output::responses` only once they are durable. Responses may answer
//!   requests of earlier calls (held JoinGroup/SyncGroup); route them by
//!   [`RequestId`]. Every JoinGroup and SyncGroup is answered exactly once
//!   (in the call's own output or a later one).
//! * State changes take effect immediately (committed offsets are visible to
//!   OffsetFetch at once). If an append fails, drop the coordinator, rebuild
//!   it by replaying the log, and answer the affected requests with an error.
//! * Call [`GroupCoordinator::tick`] no later than
//!   [`GroupCoordinator::next_deadline`] (and after every command, the
//!   deadline may move), and [`GroupCoordinator::expire_offsets`]
//!   periodically (`offsets.retention.check.interval.ms`).
//! * On start (or when becoming leader of the partition), feed every record
//!   of the partition to [`GroupCoordinator::replay`] in log order before
//!   serving requests (optionally bracketed by
//!   [`GroupCoordinator::begin_load`] / [`GroupCoordinator::end_load`]).
//!
//! # Deliberately left out
//!
//! A classic static member replacing the last consumer-protocol one does not turn the group
//! classic (Kafka's second way of downgrading; the group stays a consumer group with that
//! classic member), the resolved regular expressions' records (key version 16, skipped on replay), transactional offset commits
//! (TxnOffsetCommit), the per-request retention time of OffsetCommit v2-4,
//! KIP-814 `skip_assignment`, the flexible (version 4) record values, and
//! shrinking groups larger than `group.max.size` on load.

#![warn(missing_docs)]

pub mod api;
pub mod consumer;
pub mod consumer_records;
mod coordinator;
mod embedded;
pub mod error;
mod migration;
pub mod records;
mod state;

pub use api::*;
pub use coordinator::{GroupConfig, GroupCoordinator, MAX_OFFSET_METADATA_BYTES};
pub use error::ErrorCode;
pub use records::{
    GroupMetadataValue, MemberMetadataValue, OffsetCommitValue, RecordError, RecordKey,
};
pub use state::GroupState;

#[cfg(test)]
mod tests;
