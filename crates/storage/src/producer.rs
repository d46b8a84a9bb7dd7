//! Idempotent-producer state of one partition (KIP-98).
//!
//! For every producer id the partition remembers the producer epoch and the sequence ranges
//! and offsets of its last [`BATCHES_RETAINED`] batches. A new batch is checked against it:
//! a stale epoch is fenced, a retried batch is recognised as a duplicate and answered with
//! the offsets it got the first time, and a gap in sequence numbers is refused. The state is
//! rebuilt after a restart from a snapshot file plus the batches written after it.
//!
//! Transactions (KIP-98) are tracked here too: a producer's transactional batches open a
//! transaction at the first one's offset, which stays open until the producer's marker
//! (commit or abort) is written. The first offset of the oldest open transaction bounds the
//! last stable offset, up to which `read_committed` consumers read; aborted transactions are
//! remembered (producer, first offset, marker offset) for as long as the log holds them, so
//! that such consumers can be told which records to drop.
//!
//! This module is pure bookkeeping: the caller decides when to check, record and snapshot.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Result, StorageError};

/// Batches remembered per producer (Kafka keeps five, matching max.in.flight of 5).
pub const BATCHES_RETAINED: usize = 5;

/// Where one producer batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of the batch's first record.
    pub first_seq: i32,
    /// Sequence of the batch's last record.
    pub last_seq: i32,
    /// Offset given to the first record.
    pub first_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// When it was appended (ms).
    pub timestamp: i64,
}

/// What the partition knows about one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's current epoch.
    pub epoch: i16,
    /// Its last batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// When it last wrote (ms).
    pub last_timestamp: i64,
    /// Offset of the first batch of its open transaction, if one is open.
    pub current_txn_first_offset: Option<i64>,
    /// Epoch of the transaction coordinator that wrote its last marker (-1: none).
    pub coordinator_epoch: i32,
    /// Markers recorded for it since this state was built (not kept in snapshots): a
    /// batch whose transaction was verified with the coordinator is appended only if no
    /// marker came in between.
    pub markers_seen: u64,
}

/// A transaction that was aborted: its producer's records from `first_offset` up to the
/// marker at `last_offset` are to be dropped by `read_committed` consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of the transaction's first batch here.
    pub first_offset: i64,
    /// Offset of its abort marker.
    pub last_offset: i64,
}

/// The verdict on a new batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// In sequence: append it.
    Append,
    /// Already written: answer with the original offsets, write nothing.
    Duplicate(BatchMeta),
}

/// Why a producer batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// INVALID_PRODUCER_EPOCH (47): a newer epoch of this producer id exists.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The epoch the batch carried.
        epoch: i16,
        /// The epoch known here.
        current: i16,
    },
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45): the batch does not follow the last one.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrder {
        /// The producer.
        producer_id: i64,
        /// The sequence that would follow.
        expected: i32,
        /// The sequence the batch starts with.
        got: i32,
    },
}

/// Why a transaction marker, or a batch given the producer's transaction, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// TRANSACTION_COORDINATOR_FENCED (52): a newer coordinator already wrote a marker for
    /// this producer.
    #[error("coordinator epoch {epoch} is older than {current} for producer {producer_id}")]
    CoordinatorFenced {
        /// The producer.
        producer_id: i64,
        /// The marker's coordinator epoch.
        epoch: i32,
        /// The coordinator epoch known here.
        current: i32,
    },
    /// INVALID_TXN_STATE (48): a producer with an open transaction wrote a batch outside
    /// it.
    #[error("producer {producer_id} has an open transaction: its batches must be transactional")]
    InvalidTxnState {
        /// The producer.
        producer_id: i64,
    },
    /// INVALID_TXN_STATE (48): the batch would open a transaction here that its
    /// coordinator did not confirm (or that ended while it was being confirmed).
    #[error("producer {producer_id}'s transaction does not include this partition")]
    NotVerified {
        /// The producer.
        producer_id: i64,
    },
}

impl TxnError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        match self {
            TxnError::CoordinatorFenced { .. } => 52,
            TxnError::InvalidTxnState { .. } | TxnError::NotVerified { .. } => 48,
        }
    }
}

impl SequenceError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        match self {
            SequenceError::InvalidProducerEpoch { .. } => 47,
            SequenceError::OutOfOrder { .. } => 45,
        }
    }
}

/// Why a producer's batch or marker is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// Its epoch or sequence.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// Its transaction.
    #[error(transparent)]
    Txn(#[from] TxnError),
}

impl ProducerError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        match self {
            ProducerError::Sequence(e) => e.code(),
            ProducerError::Txn(e) => e.code(),
        }
    }
}

/// The sequence after `seq` (sequences wrap from i32::MAX to 0).
pub fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The last sequence of a batch of `count` records starting at `first`.
pub fn last_sequence(first: i32, last_offset_delta: i32) -> i32 {
    let sum = i64::from(first) + i64::from(last_offset_delta);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

/// All producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Offset just after the last batch recorded (for snapshots and replay).
    next_offset: i64,
    /// Open transactions: (first offset, producer).
    ongoing: BTreeSet<(i64, i64)>,
    /// Transactions whose marker is written but may not be replicated yet, as (first offset,
    /// marker offset), in marker order: they stay unstable until the high watermark passes
    /// their marker.
    unreplicated: VecDeque<(i64, i64)>,
    /// Aborted transactions, in marker order.
    aborted: VecDeque<AbortedTxn>,
}

const SNAPSHOT_MAGIC_V1: &[u8; 4] = b"KPS1";
const SNAPSHOT_MAGIC: &[u8; 4] = b"KPS2";
/// Name of the snapshot file in the partition directory.
pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";

impl ProducerStateManager {
    /// No producers known.
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    /// Offset after the last batch recorded.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Number of producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// One producer's entry.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer known, by id.
    pub fn all(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Checks a batch of `producer_id`/`epoch` with sequences `first_seq..=last_seq`.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> std::result::Result<SequenceCheck, SequenceError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return if first_seq == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    got: first_seq,
                })
            };
        };
        if epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    got: first_seq,
                })
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| next_sequence(b.last_seq));
        if first_seq != expected {
            return Err(SequenceError::OutOfOrder {
                producer_id,
                expected,
                got: first_seq,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// The producer's entry, unless `epoch` is older than its own (INVALID_PRODUCER_EPOCH).
    fn current_entry(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> std::result::Result<Option<&ProducerEntry>, ProducerError> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(SequenceError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            }
            .into()),
            entry => Ok(entry),
        }
    }

    /// Checks a batch of `producer_id`/`epoch` against its transaction: a stale epoch is
    /// fenced (for batches without sequences too, such as a transaction's offset commits),
    /// and a producer with an open transaction may only write transactional batches.
    pub fn check_txn(
        &self,
        producer_id: i64,
        epoch: i16,
        transactional: bool,
    ) -> std::result::Result<(), ProducerError> {
        let Some(entry) = self.current_entry(producer_id, epoch)? else {
            return Ok(());
        };
        if !transactional && epoch == entry.epoch && entry.current_txn_first_offset.is_some() {
            return Err(TxnError::InvalidTxnState { producer_id }.into());
        }
        Ok(())
    }

    /// Whether a transactional batch of `producer_id`/`epoch` would open a transaction here
    /// (none of its is open at that epoch): then it must be verified with the coordinator
    /// first (KIP-890), and the number returned, the markers seen so far, must still be
    /// [`ProducerEntry::markers_seen`] when it is appended. `None`: its transaction is open.
    pub fn txn_verification(&self, producer_id: i64, epoch: i16) -> Option<u64> {
        match self.producers.get(&producer_id) {
            Some(e) if e.epoch == epoch && e.current_txn_first_offset.is_some() => None,
            Some(e) => Some(e.markers_seen),
            None => Some(0),
        }
    }

    /// Checks a transaction marker of `producer_id`/`epoch` written by the coordinator of
    /// `coordinator_epoch`.
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> std::result::Result<(), ProducerError> {
        let Some(entry) = self.current_entry(producer_id, epoch)? else {
            return Ok(());
        };
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(TxnError::CoordinatorFenced {
                producer_id,
                epoch: coordinator_epoch,
                current: entry.coordinator_epoch,
            }
            .into());
        }
        Ok(())
    }

    fn entry_mut(&mut self, producer_id: i64, epoch: i16, timestamp: i64) -> &mut ProducerEntry {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: timestamp,
                current_txn_first_offset: None,
                coordinator_epoch: -1,
                markers_seen: 0,
            });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        entry
    }

    /// Records a batch written at `first_offset..=last_offset`.
    pub fn record(&mut self, producer_id: i64, epoch: i16, meta: BatchMeta) {
        let entry = self.entry_mut(producer_id, epoch, meta.timestamp);
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta);
        self.next_offset = self.next_offset.max(meta.last_offset + 1);
    }

    /// Records a transactional batch of `producer_id` written at `first_offset..=last_offset`
    /// (after [`ProducerStateManager::record`] if it has sequences): it opens the producer's
    /// transaction here unless one is open.
    pub fn record_txn_batch(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_offset: i64,
        last_offset: i64,
        timestamp: i64,
    ) {
        let entry = self.entry_mut(producer_id, epoch, timestamp);
        if entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(first_offset);
            self.ongoing.insert((first_offset, producer_id));
        }
        self.next_offset = self.next_offset.max(last_offset + 1);
    }

    /// Records `producer_id`'s transaction marker written at `offset`: its open transaction
    /// here (if any) ends, committed or aborted. The marker's epoch becomes the producer's.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        offset: i64,
        marker: crate::batch::TxnMarker,
        timestamp: i64,
    ) {
        let entry = self.entry_mut(producer_id, epoch, timestamp);
        entry.coordinator_epoch = entry.coordinator_epoch.max(marker.coordinator_epoch);
        entry.markers_seen += 1;
        if let Some(first) = entry.current_txn_first_offset.take() {
            self.ongoing.remove(&(first, producer_id));
            self.unreplicated.push_back((first, offset));
            if !marker.commit {
                self.aborted.push_back(AbortedTxn {
                    producer_id,
                    first_offset: first,
                    last_offset: offset,
                });
            }
        }
        self.next_offset = self.next_offset.max(offset + 1);
    }

    /// The first offset that `read_committed` consumers may not read yet because of a
    /// transaction: the first offset of the oldest transaction that is open, or whose
    /// marker the high watermark `hw` has not passed. `None` when there is none.
    pub fn first_unstable_offset(&mut self, hw: i64) -> Option<i64> {
        while self
            .unreplicated
            .front()
            .is_some_and(|&(_, last)| last < hw)
        {
            self.unreplicated.pop_front();
        }
        let open = self.ongoing.first().map(|&(first, _)| first);
        let unreplicated = self.unreplicated.iter().map(|&(first, _)| first).min();
        match (open, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The last stable offset for high watermark `hw`.
    pub fn last_stable_offset(&mut self, hw: i64) -> i64 {
        self.first_unstable_offset(hw).map_or(hw, |f| f.min(hw))
    }

    /// The aborted transactions a fetch of `from..to` must be told about: those whose marker
    /// is at or after `from` and whose first offset is before `to`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .range(start..)
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Every open transaction, as (producer, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing
            .iter()
            .map(|&(first, pid)| (pid, first))
            .collect()
    }

    /// Forgets aborted transactions whose marker lies below `log_start` (deleted).
    pub fn prune_aborted(&mut self, log_start: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|a| a.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
    }

    /// Notes that the log has data up to `next_offset` (batches without producer ids).
    pub fn advance(&mut self, next_offset: i64) {
        self.next_offset = self.next_offset.max(next_offset);
    }

    /// Records one stored batch found while rebuilding state, or copied from the leader
    /// (no checks): its sequences, the transaction it opens, or the marker it is.
    pub fn replay_batch(&mut self, b: &crate::batch::RecordBatch<'_>) {
        let producer_id = b.producer_id();
        let epoch = b.producer_epoch();
        let base_sequence = b.base_sequence();
        let last_offset_delta = b.last_offset_delta();
        let base_offset = b.base_offset();
        let last_offset = base_offset + i64::from(last_offset_delta);
        let timestamp = b.max_timestamp();
        if producer_id >= 0 {
            if b.is_control() {
                if let Some(marker) = crate::batch::txn_marker(b) {
                    self.record_marker(producer_id, epoch, base_offset, marker, timestamp);
                }
            } else {
                if base_sequence >= 0 {
                    self.record(
                        producer_id,
                        epoch,
                        BatchMeta {
                            first_seq: base_sequence,
                            last_seq: last_sequence(base_sequence, last_offset_delta),
                            first_offset: base_offset,
                            last_offset,
                            timestamp,
                        },
                    );
                }
                if b.is_transactional() {
                    self.record_txn_batch(producer_id, epoch, base_offset, last_offset, timestamp);
                }
            }
        }
        self.advance(last_offset + 1);
    }

    /// Forgets producers idle for longer than `max_idle_ms` (producer.id.expiration.ms),
    /// except those with an open transaction.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) <= max_idle_ms
        });
        before - self.producers.len()
    }

    /// Writes the state to `dir/producer-state.snapshot` with an atomic rename. The file is
    /// not fsynced: it only shortens the rebuild after a restart. A snapshot lost or torn by
    /// a power failure fails its checksum and the state is rebuilt from the log instead.
    pub fn write_snapshot(&self, dir: &Path) -> Result<()> {
        let mut body = Vec::with_capacity(16 + self.producers.len() * 64);
        body.extend_from_slice(&self.next_offset.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        body.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for a in &self.aborted {
            body.extend_from_slice(&a.producer_id.to_be_bytes());
            body.extend_from_slice(&a.first_offset.to_be_bytes());
            body.extend_from_slice(&a.last_offset.to_be_bytes());
        }
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&out)?;
        }
        fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
        Ok(())
    }

    /// Reads a snapshot written by [`ProducerStateManager::write_snapshot`]. `None` if there
    /// is none; a damaged snapshot is an error (the caller rebuilds from the log instead).
    pub fn read_snapshot(dir: &Path) -> Result<Option<ProducerStateManager>> {
        let path = dir.join(SNAPSHOT_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let corrupt = |reason: &str| StorageError::CorruptLog {
            path: path.clone(),
            position: 0,
            reason: format!("producer state snapshot: {reason}"),
        };
        if data.len() < 8 || (&data[..4] != SNAPSHOT_MAGIC && &data[..4] != SNAPSHOT_MAGIC_V1) {
            return Err(corrupt("bad header"));
        }
        // Version 1 was written before transactions: no transaction fields.
        let v2 = &data[..4] == SNAPSHOT_MAGIC;
        let crc = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let body = &data[8..];
        if crc32c::crc32c(body) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let mut r = Reader { buf: body };
        let mut m = ProducerStateManager::new();
        let parse = |r: &mut Reader<'_>, m: &mut ProducerStateManager| -> Option<()> {
            m.next_offset = r.i64()?;
            let count = r.u32()?;
            for _ in 0..count {
                let id = r.i64()?;
                let epoch = r.i16()?;
                let last_timestamp = r.i64()?;
                let (current_txn_first_offset, coordinator_epoch) = if v2 {
                    let first = r.i64()?;
                    ((first >= 0).then_some(first), r.i32()?)
                } else {
                    (None, -1)
                };
                let n = r.u8()?;
                let mut batches = VecDeque::new();
                for _ in 0..n {
                    batches.push_back(BatchMeta {
                        first_seq: r.i32()?,
                        last_seq: r.i32()?,
                        first_offset: r.i64()?,
                        last_offset: r.i64()?,
                        timestamp: r.i64()?,
                    });
                }
                if let Some(first) = current_txn_first_offset {
                    m.ongoing.insert((first, id));
                }
                m.producers.insert(
                    id,
                    ProducerEntry {
                        epoch,
                        batches,
                        last_timestamp,
                        current_txn_first_offset,
                        coordinator_epoch,
                        markers_seen: 0,
                    },
                );
            }
            if v2 {
                let aborted = r.u32()?;
                for _ in 0..aborted {
                    m.aborted.push_back(AbortedTxn {
                        producer_id: r.i64()?,
                        first_offset: r.i64()?,
                        last_offset: r.i64()?,
                    });
                }
            }
            r.buf.is_empty().then_some(())
        };
        parse(&mut r, &mut m).ok_or_else(|| corrupt("truncated or trailing bytes"))?;
        Ok(Some(m))
    }

    /// Removes the snapshot file (after truncation makes it stale).
    pub fn delete_snapshot(dir: &Path) -> Result<()> {
        match fs::remove_file(dir.join(SNAPSHOT_FILE)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.buf.len() < N {
            return None;
        }
        let (a, b) = self.buf.split_at(N);
        self.buf = b;
        a.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take::<2>().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take::<4>().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, first_offset: i64) -> BatchMeta {
        BatchMeta {
            first_seq,
            last_seq,
            first_offset,
            last_offset: first_offset + i64::from(last_seq - first_seq),
            timestamp: 10,
        }
    }

    #[test]
    fn sequences_duplicates_and_fencing() {
        let mut m = ProducerStateManager::new();
        assert_eq!(m.check(7, 0, 0, 4), Ok(SequenceCheck::Append));
        assert!(matches!(
            m.check(7, 0, 3, 4),
            Err(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        m.record(7, 0, meta(0, 4, 100));
        assert_eq!(
            m.check(7, 0, 0, 4),
            Ok(SequenceCheck::Duplicate(meta(0, 4, 100)))
        );
        assert_eq!(m.check(7, 0, 5, 9), Ok(SequenceCheck::Append));
        assert!(matches!(
            m.check(7, 0, 6, 9),
            Err(SequenceError::OutOfOrder {
                expected: 5,
                got: 6,
                ..
            })
        ));
        m.record(7, 0, meta(5, 9, 105));
        // a new epoch must restart at 0
        assert!(matches!(
            m.check(7, 1, 10, 12),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(m.check(7, 1, 0, 0), Ok(SequenceCheck::Append));
        m.record(7, 1, meta(0, 0, 110));
        assert!(matches!(
            m.check(7, 0, 10, 12),
            Err(SequenceError::InvalidProducerEpoch { current: 1, .. })
        ));
        assert_eq!(
            SequenceError::OutOfOrder {
                producer_id: 1,
                expected: 0,
                got: 1
            }
            .code(),
            45
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut m = ProducerStateManager::new();
        for i in 0..7 {
            m.record(1, 0, meta(i, i, 100 + i64::from(i)));
        }
        assert_eq!(m.get(1).map(|e| e.batches.len()), Some(BATCHES_RETAINED));
        assert!(matches!(
            m.check(1, 0, 0, 0),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert!(matches!(
            m.check(1, 0, 6, 6),
            Ok(SequenceCheck::Duplicate(_))
        ));
    }

    #[test]
    fn sequences_wrap() {
        assert_eq!(next_sequence(i32::MAX), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        let mut m = ProducerStateManager::new();
        m.record(
            1,
            0,
            BatchMeta {
                first_seq: i32::MAX - 1,
                last_seq: i32::MAX,
                first_offset: 0,
                last_offset: 1,
                timestamp: 0,
            },
        );
        assert_eq!(m.check(1, 0, 0, 3), Ok(SequenceCheck::Append));
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(
            ProducerStateManager::read_snapshot(dir.path()).expect("none"),
            None
        );
        let mut m = ProducerStateManager::new();
        for i in 0..3 {
            m.record(i, 2, meta(0, 3, 10 * i));
        }
        m.advance(500);
        m.write_snapshot(dir.path()).expect("write");
        let back = ProducerStateManager::read_snapshot(dir.path())
            .expect("read")
            .expect("some");
        assert_eq!(back, m);
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut data = std::fs::read(&path).expect("read");
        let last = data.len() - 1;
        data[last] ^= 1;
        std::fs::write(&path, &data).expect("write");
        assert!(ProducerStateManager::read_snapshot(dir.path()).is_err());
        ProducerStateManager::delete_snapshot(dir.path()).expect("delete");
        assert_eq!(
            ProducerStateManager::read_snapshot(dir.path()).expect("none"),
            None
        );
    }

    fn marker(commit: bool, coordinator_epoch: i32) -> crate::batch::TxnMarker {
        crate::batch::TxnMarker {
            commit,
            coordinator_epoch,
        }
    }

    #[test]
    fn transactions_bound_the_last_stable_offset_and_aborts_are_remembered() {
        let mut m = ProducerStateManager::new();
        assert_eq!(m.last_stable_offset(10), 10);
        // Producer 1 opens a transaction at 10, producer 2 at 12.
        m.record_txn_batch(1, 0, 10, 11, 5);
        m.record_txn_batch(2, 0, 12, 12, 5);
        m.record_txn_batch(1, 0, 13, 14, 5);
        assert_eq!(m.last_stable_offset(15), 10);
        assert_eq!(m.open_transactions(), vec![(1, 10), (2, 12)]);
        // A non-transactional batch of a producer in a transaction is refused.
        assert!(matches!(
            m.check_txn(1, 0, false),
            Err(ProducerError::Txn(TxnError::InvalidTxnState { .. }))
        ));
        assert!(m.check_txn(1, 0, true).is_ok());
        // Producer 1 aborts at 15: unstable until the high watermark passes the marker.
        m.record_marker(1, 0, 15, marker(false, 3), 6);
        assert_eq!(m.last_stable_offset(15), 10);
        assert_eq!(m.last_stable_offset(16), 12);
        m.record_marker(2, 0, 16, marker(true, 3), 6);
        assert_eq!(m.last_stable_offset(17), 17);
        assert_eq!(
            m.aborted_between(0, 17),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 15
            }]
        );
        assert!(m.aborted_between(16, 20).is_empty());
        assert!(m.aborted_between(0, 10).is_empty());
        // Markers of an older coordinator or producer epoch are fenced.
        assert!(matches!(
            m.check_marker(1, 0, 2),
            Err(ProducerError::Txn(TxnError::CoordinatorFenced { .. }))
        ));
        m.record_marker(1, 1, 17, marker(false, 3), 7);
        assert!(matches!(
            m.check_marker(1, 0, 3),
            Err(ProducerError::Sequence(
                SequenceError::InvalidProducerEpoch { .. }
            ))
        ));
        assert!(m.check_txn(1, 0, true).is_err());
        // The snapshot keeps open transactions and aborted ones.
        m.record_txn_batch(2, 0, 18, 18, 8);
        let dir = tempfile::tempdir().expect("tmp");
        m.write_snapshot(dir.path()).expect("write");
        let mut back = ProducerStateManager::read_snapshot(dir.path())
            .expect("read")
            .expect("some");
        assert_eq!(back.last_stable_offset(19), 18);
        assert_eq!(back.aborted_between(0, 19).len(), 1);
        // An open transaction keeps its producer from expiring; pruning follows the log start.
        assert_eq!(back.expire(1_000_000, 10), 1);
        assert!(back.get(2).is_some());
        back.prune_aborted(16);
        assert!(back.aborted_between(0, 19).is_empty());
    }

    #[test]
    fn expiry_forgets_idle_producers() {
        let mut m = ProducerStateManager::new();
        m.record(1, 0, meta(0, 0, 0));
        assert_eq!(m.expire(1000, 5000), 0);
        assert_eq!(m.expire(10_000, 5000), 1);
        assert!(m.is_empty());
    }
}
