//! The krust log engine.
//!
//! This crate owns everything krust keeps on disk for partitions: the segmented partition logs
//! of user topics, `__consumer_offsets` and the KRaft metadata log `__cluster_metadata` all use
//! [`Log`]. It provides:
//!
//! * [`batch`]: a zero-copy view of v2 record batch headers, validation of produced batches, and
//!   header patching (offsets, leader epoch, LogAppendTime);
//! * [`Log`]: segments (`<20-digit base offset>.log`), sparse offset and time indexes in Kafka's
//!   formats, appends that write patched 61-byte headers plus the untouched rest of each batch
//!   with vectored writes, whole-batch reads, timestamp lookups, rolling, retention,
//!   truncation, flushing and crash recovery (a torn tail is truncated);
//! * [`LeaderEpochCache`]: the `leader-epoch-checkpoint` file and OffsetsForLeaderEpoch answers;
//! * [`checkpoint`]: Kafka's text checkpoint files;
//! * [`clean`]: log compaction (`cleanup.policy=compact`), with records decoded and rebuilt by
//!   the caller's [`clean::RecordKeys`];
//! * [`LogManager`]: all partitions of a broker's log dirs, checkpoints, the clean-shutdown
//!   marker and the periodic retention and flush passes.
//!
//! The on-disk layout follows Kafka's, so a partition directory looks like a Kafka one.
//!
//! What this crate must never do: touch the network, know about requests or the Kafka protocol
//! beyond the record batch header, or decode, decompress or re-encode records itself (the
//! cleaner hands that to its caller): on the append path the work is per batch (CRC check and header patch), never per record. Input errors are
//! `Result`s; nothing read from disk or given by callers may panic.
//!
//! Concurrency: share a log as `Arc<parking_lot::RwLock<Log>>` ([`SharedLog`]); reads take the
//! shared lock, appends and maintenance the exclusive one.

#![warn(missing_docs)]

pub mod batch;
pub mod checkpoint;
pub mod clean;
pub mod epoch;
pub mod error;
pub mod index;
pub mod log;
pub mod manager;
pub mod producer;
pub mod segment;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod write_behind;

#[cfg(test)]
mod tests;

pub use checkpoint::TopicPartition;
pub use epoch::{EpochEntry, LeaderEpochCache};
pub use error::{Result, StorageError};
pub use log::{AppendInfo, FileSlice, Log, LogConfig, PendingFlush, ReadResult};
pub use manager::{LogManager, RecoveryInfo, SharedLog};
/// Re-exported so users name the same lock type as [`SharedLog`].
pub use parking_lot;
pub use producer::{
    AbortedTxn, ProducerError, ProducerStateManager, SequenceCheck, SequenceError, TxnError,
};
