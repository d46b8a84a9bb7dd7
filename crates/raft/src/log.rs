//! The replicated log as Raft sees it, and an in-memory implementation with crash semantics.

use bytes::Bytes;

use crate::messages::SnapshotId;
use crate::types::{Entry, Epoch, Offset};

/// The log interface the Raft core drives synchronously.
///
/// Every method is infallible: a host whose disk fails must stop the process (Kafka treats
/// a metadata log I/O error as fatal), because a Raft node that silently loses an append
/// breaks the promises it made to its peers.
pub trait RaftLog {
    /// First offset still present (0 until snapshots move it).
    fn start_offset(&self) -> Offset;
    /// Exclusive end: the offset the next appended entry gets.
    fn end_offset(&self) -> Offset;
    /// Epoch of the last entry; the snapshot's epoch if the log after it is empty; 0 if
    /// there is neither.
    fn last_epoch(&self) -> Epoch;
    /// Kafka's `endOffsetForEpoch`: the largest epoch `e <= epoch` present in the log and
    /// the end of `e` (the start offset of the next higher epoch, or the log end). If no
    /// entry has such an epoch: the snapshot id when its epoch is `<= epoch`, else
    /// `(Epoch(0), start_offset)`.
    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, Offset);
    /// Up to `max_entries` entries starting at `from` (fewer at the end of the log).
    fn read(&self, from: Offset, max_entries: usize) -> Vec<Entry>;
    /// Appends entries. They must start at `end_offset()`, be contiguous and have
    /// non-decreasing epochs not below `last_epoch()`; the core checks this first and the
    /// implementation asserts it.
    fn append(&mut self, entries: &[Entry]);
    /// Removes every entry at or after `offset`.
    fn truncate_to(&mut self, offset: Offset);
    /// Makes everything appended so far durable.
    fn flush(&mut self);
    /// The end offset of the durable prefix.
    fn flushed_end(&self) -> Offset;

    /// The newest snapshot. Whenever the log start is above 0 it equals the snapshot's
    /// end offset.
    fn latest_snapshot(&self) -> Option<SnapshotId>;
    /// `max_bytes` bytes of snapshot `id` from `position`, and the snapshot's total size;
    /// `None` if that snapshot is not (or no longer) the latest.
    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Option<(Bytes, u64)>;
    /// Durably stores a snapshot of the state below `id.end_offset` (which must be flushed)
    /// and deletes the entries below it: the log start becomes `id.end_offset`.
    fn save_snapshot(&mut self, id: SnapshotId, data: Bytes);
    /// Replaces the whole log by snapshot `id` fetched from the leader: start, end and
    /// flushed end all become `id.end_offset`.
    fn install_snapshot(&mut self, id: SnapshotId, data: Bytes);
}

/// A `Vec`-backed log. `crash()` models power loss: everything after the last flush goes.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    start_offset: Offset,
    snapshot: Option<(SnapshotId, Bytes)>,
    entries: Vec<Entry>,
    /// (epoch, first offset of that epoch), ascending; Kafka's leader-epoch cache.
    epoch_starts: Vec<(Epoch, Offset)>,
    flushed_end: Offset,
}

impl MemoryLog {
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// Drops every entry that was not flushed, as a crash would.
    pub fn crash(&mut self) {
        let flushed = self.flushed_end;
        self.truncate_to(flushed);
    }

    /// The entry at `offset`, if present.
    pub fn entry(&self, offset: Offset) -> Option<&Entry> {
        usize::try_from(offset.0 - self.start_offset().0)
            .ok()
            .and_then(|index| self.entries.get(index))
    }

    /// All entries after the log start, for tests and the simulation.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The latest snapshot's bytes.
    pub fn snapshot_data(&self) -> Option<&Bytes> {
        self.snapshot.as_ref().map(|(_, data)| data)
    }
}

impl RaftLog for MemoryLog {
    fn start_offset(&self) -> Offset {
        self.start_offset
    }

    fn end_offset(&self) -> Offset {
        Offset(self.start_offset.0 + self.entries.len() as i64)
    }

    fn last_epoch(&self) -> Epoch {
        match (self.entries.last(), &self.snapshot) {
            (Some(entry), _) => entry.epoch,
            (None, Some((id, _))) => id.epoch,
            (None, None) => Epoch::ZERO,
        }
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, Offset) {
        // Index of the first cached epoch strictly greater than the requested one.
        let higher = self.epoch_starts.partition_point(|(e, _)| *e <= epoch);
        if higher == 0 {
            return match &self.snapshot {
                Some((id, _)) if id.epoch <= epoch => (id.epoch, id.end_offset),
                _ => (Epoch::ZERO, self.start_offset()),
            };
        }
        let found = self.epoch_starts[higher - 1].0;
        let end = self
            .epoch_starts
            .get(higher)
            .map_or(self.end_offset(), |(_, start)| *start);
        (found, end)
    }

    fn read(&self, from: Offset, max_entries: usize) -> Vec<Entry> {
        let Ok(start) = usize::try_from(from.0 - self.start_offset().0) else {
            return Vec::new();
        };
        self.entries
            .iter()
            .skip(start)
            .take(max_entries)
            .cloned()
            .collect()
    }

    fn append(&mut self, entries: &[Entry]) {
        for entry in entries {
            assert_eq!(entry.offset, self.end_offset(), "append must be contiguous");
            assert!(
                entry.epoch >= self.last_epoch(),
                "epochs must not decrease: {} after {}",
                entry.epoch,
                self.last_epoch()
            );
            if self
                .epoch_starts
                .last()
                .is_none_or(|(e, _)| *e < entry.epoch)
            {
                self.epoch_starts.push((entry.epoch, entry.offset));
            }
            self.entries.push(entry.clone());
        }
    }

    fn truncate_to(&mut self, offset: Offset) {
        if offset >= self.end_offset() {
            return;
        }
        assert!(
            offset >= self.start_offset,
            "cannot truncate to {offset}, below the log start {}",
            self.start_offset
        );
        let keep = usize::try_from(offset.0 - self.start_offset.0).unwrap_or(0);
        self.entries.truncate(keep);
        while self
            .epoch_starts
            .last()
            .is_some_and(|(_, start)| *start >= offset)
        {
            self.epoch_starts.pop();
        }
        self.flushed_end = self.flushed_end.min(offset);
    }

    fn flush(&mut self) {
        self.flushed_end = self.end_offset();
    }

    fn flushed_end(&self) -> Offset {
        self.flushed_end
    }

    fn latest_snapshot(&self) -> Option<SnapshotId> {
        self.snapshot.as_ref().map(|(id, _)| *id)
    }

    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Option<(Bytes, u64)> {
        let (latest, data) = self.snapshot.as_ref()?;
        if *latest != id {
            return None;
        }
        let size = data.len();
        let start = usize::try_from(position).ok()?.min(size);
        let end = start.saturating_add(max_bytes).min(size);
        Some((data.slice(start..end), size as u64))
    }

    fn save_snapshot(&mut self, id: SnapshotId, data: Bytes) {
        assert!(
            id.end_offset >= self.start_offset && id.end_offset <= self.flushed_end,
            "snapshot end {} outside the flushed log [{}, {})",
            id.end_offset,
            self.start_offset,
            self.flushed_end
        );
        if let Some(last) = self.entry(Offset(id.end_offset.0 - 1)) {
            assert_eq!(
                last.epoch, id.epoch,
                "snapshot epoch must be its last entry's"
            );
        }
        let drop = usize::try_from(id.end_offset.0 - self.start_offset.0).unwrap_or(0);
        self.entries.drain(..drop);
        self.start_offset = id.end_offset;
        while self.epoch_starts.len() >= 2 && self.epoch_starts[1].1 <= id.end_offset {
            self.epoch_starts.remove(0);
        }
        if self.entries.is_empty() {
            self.epoch_starts.clear();
        } else if let Some(first) = self.epoch_starts.first_mut() {
            first.1 = first.1.max(id.end_offset);
        }
        self.snapshot = Some((id, data));
    }

    fn install_snapshot(&mut self, id: SnapshotId, data: Bytes) {
        self.entries.clear();
        self.epoch_starts.clear();
        self.start_offset = id.end_offset;
        self.flushed_end = id.end_offset;
        self.snapshot = Some((id, data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;
    use bytes::Bytes;

    fn log_with_epochs(epochs: &[i32]) -> MemoryLog {
        let mut log = MemoryLog::new();
        for (i, e) in epochs.iter().enumerate() {
            log.append(&[Entry {
                offset: Offset(i as i64),
                epoch: Epoch(*e),
                kind: EntryKind::Data,
                data: Bytes::new(),
            }]);
        }
        log
    }

    #[test]
    fn end_offset_for_epoch_follows_kafka_semantics() {
        // offsets: 0,1 epoch 1; 2,3,4 epoch 3; 5 epoch 5
        let log = log_with_epochs(&[1, 1, 3, 3, 3, 5]);
        assert_eq!(log.end_offset_for_epoch(Epoch(0)), (Epoch(0), Offset(0)));
        assert_eq!(log.end_offset_for_epoch(Epoch(1)), (Epoch(1), Offset(2)));
        assert_eq!(log.end_offset_for_epoch(Epoch(2)), (Epoch(1), Offset(2)));
        assert_eq!(log.end_offset_for_epoch(Epoch(3)), (Epoch(3), Offset(5)));
        assert_eq!(log.end_offset_for_epoch(Epoch(4)), (Epoch(3), Offset(5)));
        assert_eq!(log.end_offset_for_epoch(Epoch(5)), (Epoch(5), Offset(6)));
        assert_eq!(log.end_offset_for_epoch(Epoch(9)), (Epoch(5), Offset(6)));
    }

    #[test]
    fn truncate_updates_epoch_cache_and_flushed_end() {
        let mut log = log_with_epochs(&[1, 1, 3, 3, 3, 5]);
        log.flush();
        log.truncate_to(Offset(3));
        assert_eq!(log.end_offset(), Offset(3));
        assert_eq!(log.last_epoch(), Epoch(3));
        assert_eq!(log.flushed_end(), Offset(3));
        assert_eq!(log.end_offset_for_epoch(Epoch(5)), (Epoch(3), Offset(3)));
        log.truncate_to(Offset(2));
        assert_eq!(log.end_offset_for_epoch(Epoch(5)), (Epoch(1), Offset(2)));
    }

    #[test]
    fn snapshot_moves_the_log_start_and_answers_for_its_epoch() {
        // offsets: 0,1 epoch 1; 2,3,4 epoch 3; 5 epoch 5
        let mut log = log_with_epochs(&[1, 1, 3, 3, 3, 5]);
        log.flush();
        let id = SnapshotId {
            end_offset: Offset(3),
            epoch: Epoch(3),
        };
        log.save_snapshot(id, Bytes::from_static(b"state"));
        assert_eq!(log.start_offset(), Offset(3));
        assert_eq!(log.end_offset(), Offset(6));
        assert_eq!(log.entry(Offset(3)).map(|e| e.offset), Some(Offset(3)));
        assert_eq!(log.end_offset_for_epoch(Epoch(3)), (Epoch(3), Offset(5)));
        assert_eq!(log.end_offset_for_epoch(Epoch(1)), (Epoch(0), Offset(3)));
        assert!(log.read(Offset(1), 10).is_empty());
        assert_eq!(
            log.read_snapshot(id, 2, 2),
            Some((Bytes::from_static(b"at"), 5))
        );
        // A snapshot covering the whole log.
        let id = SnapshotId {
            end_offset: Offset(6),
            epoch: Epoch(5),
        };
        log.save_snapshot(id, Bytes::new());
        assert_eq!(log.last_epoch(), Epoch(5));
        assert_eq!(log.end_offset_for_epoch(Epoch(7)), (Epoch(5), Offset(6)));
        log.install_snapshot(
            SnapshotId {
                end_offset: Offset(9),
                epoch: Epoch(6),
            },
            Bytes::new(),
        );
        assert_eq!(log.start_offset(), Offset(9));
        assert_eq!(log.end_offset(), Offset(9));
        assert_eq!(log.flushed_end(), Offset(9));
        assert_eq!(log.last_epoch(), Epoch(6));
    }

    #[test]
    fn crash_drops_unflushed_entries() {
        let mut log = log_with_epochs(&[1, 1]);
        log.flush();
        log.append(&[Entry {
            offset: Offset(2),
            epoch: Epoch(2),
            kind: EntryKind::Data,
            data: Bytes::new(),
        }]);
        assert_eq!(log.end_offset(), Offset(3));
        log.crash();
        assert_eq!(log.end_offset(), Offset(2));
        assert_eq!(log.last_epoch(), Epoch(1));
    }
}
