//! Leader epoch cache: which leader epoch started at which offset.
//!
//! Persisted in the partition directory as `leader-epoch-checkpoint` in the text checkpoint format
//! (`0`, count, then `epoch startOffset` lines), rewritten atomically on every change. Changes are
//! rare (once per leader election), so the whole file is rewritten each time.

use std::path::{Path, PathBuf};

use crate::checkpoint::{read_entries, write_entries};
use crate::error::{Result, StorageError};

/// File name of the leader epoch checkpoint in a partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Epoch value meaning "unknown".
pub const UNDEFINED_EPOCH: i32 = -1;
/// Offset value meaning "unknown".
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// Leader epoch.
    pub epoch: i32,
    /// First offset of the epoch.
    pub start_offset: i64,
}

/// The leader epoch cache of one partition; epochs and start offsets strictly increase.
#[derive(Debug)]
///
/// Changes stay in memory until [`Self::sync`] writes the checkpoint durably; the log calls
/// it before it moves its recovery point (every flush, and at shutdown). Epochs of data above
/// the recovery point are found again by recovery's scan of the batches, so a crash before
/// the write loses nothing. An epoch that starts at the log end holds no data yet and says
/// nothing a follower's truncation could use, so it is written with the first data in it: a
/// leadership change over many idle partitions costs no file write at all.
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
    /// What the checkpoint file holds.
    on_disk: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the cache from `path` (an absent file is an empty cache). A file that cannot be
    /// parsed or whose entries are not increasing is an error.
    pub fn open(path: &Path) -> Result<LeaderEpochCache> {
        let mut entries = Vec::new();
        if let Some(rows) = read_entries(path, 2)? {
            for (i, row) in rows.iter().enumerate() {
                let bad = |what: &str| StorageError::CorruptCheckpoint {
                    path: path.to_path_buf(),
                    line: i + 3,
                    reason: what.to_string(),
                };
                let epoch: i32 = row[0].parse().map_err(|_| bad("bad epoch"))?;
                let start_offset: i64 = row[1].parse().map_err(|_| bad("bad offset"))?;
                if epoch < 0 || start_offset < 0 {
                    return Err(bad("negative epoch or offset"));
                }
                if let Some(last) = entries.last() {
                    let last: &EpochEntry = last;
                    if epoch <= last.epoch || start_offset < last.start_offset {
                        return Err(bad("entries are not increasing"));
                    }
                }
                entries.push(EpochEntry {
                    epoch,
                    start_offset,
                });
            }
        }
        Ok(LeaderEpochCache {
            on_disk: entries.clone(),
            path: path.to_path_buf(),
            entries,
        })
    }

    /// An empty cache whose checkpoint at `path` is written by its first [`Self::sync`].
    pub fn empty(path: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            on_disk: Vec::new(),
            path: path.to_path_buf(),
            entries: Vec::new(),
        }
    }

    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The latest entry, if any.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The earliest entry, if any.
    pub fn earliest_entry(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }

    /// The epoch that `offset` belongs to (largest entry with start offset <= offset).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Ignored (returns `false`) if `epoch` is
    /// not greater than the latest epoch or either value is negative. Entries whose start offset
    /// is >= `start_offset` (epochs that never got any data) are replaced. Persists on change.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool> {
        if epoch < 0 || start_offset < 0 {
            return Ok(false);
        }
        if let Some(latest) = self.latest_epoch() {
            if epoch <= latest {
                return Ok(false);
            }
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        Ok(true)
    }

    /// Kafka's OffsetsForLeaderEpoch answer: `(epoch, end_offset)` where epoch is the largest
    /// known epoch <= `requested` and end_offset the start offset of the next higher epoch, or
    /// `log_end_offset` if `requested` is the latest epoch. `(-1, -1)` if `requested` is -1 or
    /// above the latest epoch (or the cache is empty). If `requested` is below the first known
    /// epoch the answer is `(requested, start of the first epoch)`, as in Kafka.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        // First entry with epoch > requested.
        let hi = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(higher) = self.entries.get(hi) else {
            return undefined;
        };
        match hi.checked_sub(1) {
            None => (requested, higher.start_offset),
            Some(lo) => (self.entries[lo].epoch, higher.start_offset),
        }
    }

    /// Removes every entry whose start offset is >= `end_offset` (after a log truncation).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        self.entries.retain(|e| e.start_offset < end_offset);
        Ok(())
    }

    /// Drops entries wholly below the new log start `start_offset`: the last entry starting at or
    /// below it is kept with its start offset moved up to `start_offset`, older ones are removed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<()> {
        let i = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(keep) = i.checked_sub(1) else {
            return Ok(());
        };
        if keep == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..keep);
        self.entries[0].start_offset = start_offset;
        Ok(())
    }

    /// Removes all entries.
    pub fn clear(&mut self) -> Result<()> {
        self.entries.clear();
        Ok(())
    }

    /// Writes the checkpoint durably unless the file already holds every epoch with data
    /// below `log_end_offset` and nothing the cache has dropped.
    pub fn sync(&mut self, log_end_offset: i64) -> Result<()> {
        let with_data = |v: &[EpochEntry]| -> Vec<EpochEntry> {
            v.iter()
                .copied()
                .filter(|e| e.start_offset < log_end_offset)
                .collect()
        };
        let dropped = self.on_disk.iter().any(|e| !self.entries.contains(e));
        if !dropped && with_data(&self.entries) == with_data(&self.on_disk) {
            return Ok(());
        }
        write_entries(
            &self.path,
            self.entries
                .iter()
                .map(|e| [e.epoch.to_string(), e.start_offset.to_string()]),
        )?;
        self.on_disk = self.entries.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().expect("tmp");
        let c = LeaderEpochCache::open(&dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("open");
        (dir, c)
    }

    #[test]
    fn assign_and_end_offsets() {
        let (dir, mut c) = cache();
        assert_eq!(c.end_offset_for(0, 10), (-1, -1));
        assert!(c.assign(1, 0).expect("assign"));
        assert!(!c.assign(1, 5).expect("same epoch ignored"));
        assert!(!c.assign(0, 5).expect("older epoch ignored"));
        assert!(c.assign(3, 10).expect("assign"));
        assert!(c.assign(5, 20).expect("assign"));
        assert_eq!(c.latest_epoch(), Some(5));
        // Latest epoch: log end.
        assert_eq!(c.end_offset_for(5, 42), (5, 42));
        // Exact older epoch: start of next.
        assert_eq!(c.end_offset_for(1, 42), (1, 10));
        assert_eq!(c.end_offset_for(3, 42), (3, 20));
        // Unknown epoch in between: largest epoch below, start of next higher.
        assert_eq!(c.end_offset_for(2, 42), (1, 10));
        assert_eq!(c.end_offset_for(4, 42), (3, 20));
        // Below the first epoch: (requested, start of first), as Kafka.
        assert_eq!(c.end_offset_for(0, 42), (0, 0));
        // Above latest / undefined.
        assert_eq!(c.end_offset_for(6, 42), (-1, -1));
        assert_eq!(c.end_offset_for(-1, 42), (-1, -1));
        assert_eq!(c.epoch_for_offset(15), Some(3));
        assert_eq!(c.epoch_for_offset(0), Some(1));

        // Changes reach the file only when synced.
        let before =
            LeaderEpochCache::open(&dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("open");
        assert!(before.entries().is_empty());
        c.sync(i64::MAX).expect("sync");
        let reopened =
            LeaderEpochCache::open(&dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("open");
        assert_eq!(reopened.entries(), c.entries());
    }

    #[test]
    fn assign_replaces_empty_epochs() {
        let (_dir, mut c) = cache();
        c.assign(1, 0).expect("a");
        c.assign(2, 5).expect("a");
        c.assign(3, 5).expect("a");
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 5
                }
            ]
        );
    }

    #[test]
    fn truncation() {
        let (dir, mut c) = cache();
        c.assign(1, 0).expect("a");
        c.assign(2, 5).expect("a");
        c.assign(3, 10).expect("a");
        c.truncate_from_start(7).expect("t");
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 2,
                    start_offset: 7
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 10
                }
            ]
        );
        c.truncate_from_start(3).expect("no-op below first");
        assert_eq!(c.entries().len(), 2);
        c.truncate_from_end(10).expect("t");
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 2,
                start_offset: 7
            }]
        );
        c.truncate_from_end(100).expect("no-op");
        assert_eq!(c.entries().len(), 1);
        c.sync(i64::MAX).expect("sync");
        let reopened =
            LeaderEpochCache::open(&dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("open");
        assert_eq!(reopened.entries(), c.entries());
        c.truncate_from_end(0).expect("t");
        assert!(c.entries().is_empty());
    }

    #[test]
    fn corrupt_file_is_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        std::fs::write(&p, "0\n2\n3 10\n2 20\n").expect("w");
        assert!(LeaderEpochCache::open(&p).is_err());
    }
}
