//! The metadata log on disk, as the Raft core sees it.
//!
//! [`DiskRaftLog`] implements `krust_raft::RaftLog` on the same log engine as every
//! partition, in `__cluster_metadata-0`. Each Raft entry is one record batch holding one
//! record, with the entry's epoch as the batch's partition leader epoch: offsets match one
//! to one, and truncation (which the engine does by whole batches) is exact. A leader's
//! LeaderChange entry is a control batch (control record type 2), as in Kafka.
//! Snapshots are files `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint` next to the
//! segments; saving one moves the log start to its end offset.
//!
//! The `RaftLog` contract has no errors: a metadata log that cannot be written or read
//! stops the process (as Kafka does), after logging why.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use krust_raft::messages::SnapshotId;
use krust_raft::{Entry, EntryKind, Epoch, Offset, RaftLog};
use krust_storage::{Log, LogConfig};

/// Largest read when scanning or serving entries.
const READ_BYTES: usize = 4 * 1024 * 1024;
const SNAPSHOT_SUFFIX: &str = ".checkpoint";

/// Stops the process on a metadata log failure: continuing could break what this node
/// promised its peers.
fn fatal(what: &str, e: impl std::fmt::Display) -> ! {
    tracing::error!(error = %e, "fatal metadata log error: {what}");
    eprintln!("fatal metadata log error: {what}: {e}");
    std::process::exit(1)
}

/// The Raft log on disk.
pub struct DiskRaftLog {
    log: Log,
    dir: PathBuf,
    /// (epoch, first offset of that epoch), ascending.
    epoch_starts: Vec<(Epoch, Offset)>,
    flushed_end: Offset,
    snapshot: Option<SnapshotId>,
}

fn snapshot_name(id: SnapshotId) -> String {
    format!(
        "{:020}-{:010}{SNAPSHOT_SUFFIX}",
        id.end_offset.0, id.epoch.0
    )
}

fn parse_snapshot_name(name: &str) -> Option<SnapshotId> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    let (end, epoch) = stem.split_once('-')?;
    Some(SnapshotId {
        end_offset: Offset(end.parse().ok()?),
        epoch: Epoch(epoch.parse().ok()?),
    })
}

impl DiskRaftLog {
    /// Opens (or creates) the log in `dir`, validating every batch and cutting a torn tail.
    pub fn open(dir: &Path, now_ms: i64) -> Result<DiskRaftLog, String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut snapshots: Vec<SnapshotId> = fs::read_dir(dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_snapshot_name(&e.file_name().to_string_lossy()))
            .collect();
        snapshots.sort_by_key(|s| (s.end_offset, s.epoch));
        let snapshot = snapshots.last().copied();
        let start = snapshot.map_or(0, |s| s.end_offset.0);
        let config = LogConfig {
            segment_bytes: 8 * 1024 * 1024,
            // Every entry is fsynced: zeros filled ahead would be written to the device.
            fill_ahead: false,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir, config, 0, start, false, now_ms)
            .map_err(|e| format!("cannot open the metadata log {}: {e}", dir.display()))?;
        if log.log_end_offset() < start {
            log.truncate_fully_and_start_at(start)
                .map_err(|e| format!("cannot reset the metadata log to its snapshot: {e}"))?;
        }
        if log.log_start_offset() < start {
            log.delete_records_before(start)
                .map_err(|e| format!("cannot move the metadata log start to its snapshot: {e}"))?;
        }
        log.flush()
            .map_err(|e| format!("cannot flush the metadata log: {e}"))?;
        let mut raft_log = DiskRaftLog {
            flushed_end: Offset(log.log_end_offset()),
            log,
            dir: dir.to_path_buf(),
            epoch_starts: Vec::new(),
            snapshot,
        };
        // Older snapshots are superseded.
        for old in snapshots.iter().rev().skip(1) {
            let _ = fs::remove_file(dir.join(snapshot_name(*old)));
        }
        let mut next = raft_log.start_offset();
        loop {
            let entries = raft_log.read(next, 1024);
            let Some(last) = entries.last() else { break };
            next = Offset(last.offset.0 + 1);
            for e in &entries {
                raft_log.note_epoch(e.epoch, e.offset);
            }
        }
        Ok(raft_log)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn note_epoch(&mut self, epoch: Epoch, offset: Offset) {
        if self.epoch_starts.last().is_none_or(|(e, _)| *e < epoch) {
            self.epoch_starts.push((epoch, offset));
        }
    }
}

impl RaftLog for DiskRaftLog {
    fn start_offset(&self) -> Offset {
        Offset(self.log.log_start_offset())
    }

    fn end_offset(&self) -> Offset {
        Offset(self.log.log_end_offset())
    }

    fn last_epoch(&self) -> Epoch {
        match (self.epoch_starts.last(), self.snapshot) {
            (Some((e, _)), _) => *e,
            (None, Some(s)) => s.epoch,
            (None, None) => Epoch::ZERO,
        }
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, Offset) {
        let higher = self.epoch_starts.partition_point(|(e, _)| *e <= epoch);
        if higher == 0 {
            return match self.snapshot {
                Some(id) if id.epoch <= epoch => (id.epoch, id.end_offset),
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
        let end = self.log.log_end_offset();
        if from.0 < self.log.log_start_offset() || from.0 >= end || max_entries == 0 {
            return Vec::new();
        }
        let read = match self.log.read(from.0, READ_BYTES, end, true) {
            Ok(r) => r,
            Err(e) => fatal("cannot read", e),
        };
        let mut bytes = read.records;
        let mut out = Vec::new();
        while !bytes.is_empty() && out.len() < max_entries {
            let set = match RecordBatchDecoder::decode(&mut bytes) {
                Ok(s) => s,
                Err(e) => fatal("cannot decode a batch", e),
            };
            for r in set.records {
                if r.offset < from.0 || out.len() >= max_entries {
                    continue;
                }
                out.push(Entry {
                    offset: Offset(r.offset),
                    epoch: Epoch(r.partition_leader_epoch),
                    kind: if r.control {
                        EntryKind::LeaderChange
                    } else {
                        EntryKind::Data
                    },
                    data: r.value.unwrap_or_default(),
                });
            }
        }
        out
    }

    fn append(&mut self, entries: &[Entry]) {
        let (mut next, mut epoch) = (self.end_offset(), self.last_epoch());
        for entry in entries {
            assert_eq!(entry.offset, next, "append must be contiguous");
            assert!(entry.epoch >= epoch, "epochs must not decrease");
            next = Offset(next.0 + 1);
            epoch = entry.epoch;
        }
        if entries.is_empty() {
            return;
        }
        // Still one batch per entry, written together: a decision of thousands of records
        // (a broker with thousands of partitions coming back) is one write, not thousands.
        let batches = crate::raft_wire::encode_entries(entries);
        if let Err(e) = self.log.append_batches_with_offsets(&batches) {
            fatal("cannot append", e);
        }
        for entry in entries {
            self.note_epoch(entry.epoch, entry.offset);
        }
    }

    fn truncate_to(&mut self, offset: Offset) {
        if offset >= self.end_offset() {
            return;
        }
        assert!(
            offset >= self.start_offset(),
            "cannot truncate below the log start"
        );
        if let Err(e) = self.log.truncate_to(offset.0) {
            fatal("cannot truncate", e);
        }
        assert_eq!(
            self.end_offset(),
            offset,
            "one entry per batch truncates exactly"
        );
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
        if let Err(e) = self.log.flush() {
            fatal("cannot flush", e);
        }
        self.flushed_end = self.end_offset();
    }

    fn flushed_end(&self) -> Offset {
        self.flushed_end
    }

    fn latest_snapshot(&self) -> Option<SnapshotId> {
        self.snapshot
    }

    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Option<(Bytes, u64)> {
        if self.snapshot != Some(id) {
            return None;
        }
        let data = fs::read(self.dir.join(snapshot_name(id))).ok()?;
        let size = data.len();
        let start = usize::try_from(position).ok()?.min(size);
        let end = start.saturating_add(max_bytes).min(size);
        Some((Bytes::copy_from_slice(&data[start..end]), size as u64))
    }

    fn save_snapshot(&mut self, id: SnapshotId, data: Bytes) {
        assert!(id.end_offset >= self.start_offset() && id.end_offset <= self.flushed_end);
        self.write_snapshot_file(id, &data);
        if let Err(e) = self.log.delete_records_before(id.end_offset.0) {
            fatal("cannot move the log start to a snapshot", e);
        }
        while self.epoch_starts.len() >= 2 && self.epoch_starts[1].1 <= id.end_offset {
            self.epoch_starts.remove(0);
        }
        if self.end_offset() == id.end_offset {
            self.epoch_starts.clear();
        } else if let Some(first) = self.epoch_starts.first_mut() {
            first.1 = first.1.max(id.end_offset);
        }
        self.replace_snapshot(id);
    }

    fn install_snapshot(&mut self, id: SnapshotId, data: Bytes) {
        self.write_snapshot_file(id, &data);
        if let Err(e) = self.log.truncate_fully_and_start_at(id.end_offset.0) {
            fatal("cannot reset the log to a snapshot", e);
        }
        self.epoch_starts.clear();
        self.flushed_end = id.end_offset;
        self.replace_snapshot(id);
    }
}

impl DiskRaftLog {
    fn write_snapshot_file(&self, id: SnapshotId, data: &[u8]) {
        let path = self.dir.join(snapshot_name(id));
        let tmp = self.dir.join(format!("{}.part", snapshot_name(id)));
        let result = (|| -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = result {
            fatal("cannot write a snapshot", e);
        }
    }

    fn replace_snapshot(&mut self, id: SnapshotId) {
        if let Some(old) = self.snapshot.replace(id) {
            if old != id {
                let _ = fs::remove_file(self.dir.join(snapshot_name(old)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krust_raft::MemoryLog;
    use rand::{Rng, SeedableRng};

    fn entry(offset: i64, epoch: i32, kind: EntryKind) -> Entry {
        Entry {
            offset: Offset(offset),
            epoch: Epoch(epoch),
            kind,
            data: Bytes::from(format!("e{offset}@{epoch}")),
        }
    }

    fn same(disk: &DiskRaftLog, mem: &MemoryLog, step: &str) {
        assert_eq!(disk.start_offset(), mem.start_offset(), "{step}: start");
        assert_eq!(disk.end_offset(), mem.end_offset(), "{step}: end");
        assert_eq!(disk.last_epoch(), mem.last_epoch(), "{step}: last epoch");
        assert_eq!(
            disk.latest_snapshot(),
            mem.latest_snapshot(),
            "{step}: snapshot"
        );
        for e in 0..12 {
            assert_eq!(
                disk.end_offset_for_epoch(Epoch(e)),
                mem.end_offset_for_epoch(Epoch(e)),
                "{step}: epoch {e}"
            );
        }
        let from = mem.start_offset();
        assert_eq!(
            disk.read(from, 10_000),
            mem.read(from, 10_000),
            "{step}: entries"
        );
        if let Some(id) = mem.latest_snapshot() {
            assert_eq!(
                disk.read_snapshot(id, 0, 1 << 20),
                mem.read_snapshot(id, 0, 1 << 20),
                "{step}: snapshot data"
            );
        }
    }

    /// Random appends, truncations, flushes, snapshots and reopens, compared step by step
    /// with the reference in-memory log the Raft simulation uses.
    #[test]
    fn behaves_like_the_reference_log() {
        for seed in 0..8u64 {
            let dir = tempfile::tempdir().expect("tmp");
            let path = dir.path().join("__cluster_metadata-0");
            let mut disk = DiskRaftLog::open(&path, 0).expect("open");
            let mut mem = MemoryLog::new();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut epoch = 1;
            for step in 0..300 {
                let what = rng.random_range(0..100);
                let label = format!("seed {seed} step {step}");
                if what < 55 {
                    if rng.random_range(0..10) == 0 {
                        epoch += 1;
                    }
                    let n = rng.random_range(1..4);
                    let start = mem.end_offset().0;
                    let kind = if rng.random_range(0..8) == 0 {
                        EntryKind::LeaderChange
                    } else {
                        EntryKind::Data
                    };
                    let entries: Vec<Entry> =
                        (0..n).map(|i| entry(start + i, epoch, kind)).collect();
                    disk.append(&entries);
                    mem.append(&entries);
                } else if what < 70 {
                    let (lo, hi) = (
                        mem.flushed_end().0.max(mem.start_offset().0),
                        mem.end_offset().0,
                    );
                    if lo < hi {
                        let to = Offset(rng.random_range(lo..=hi));
                        disk.truncate_to(to);
                        mem.truncate_to(to);
                    }
                } else if what < 85 {
                    disk.flush();
                    mem.flush();
                } else if what < 93 {
                    let (lo, hi) = (mem.start_offset().0, mem.flushed_end().0);
                    if lo < hi {
                        let end = Offset(rng.random_range(lo + 1..=hi));
                        let last = mem.read(Offset(end.0 - 1), 1);
                        if let Some(last) = last.first() {
                            let id = SnapshotId {
                                end_offset: end,
                                epoch: last.epoch,
                            };
                            let data = Bytes::from(format!("snapshot at {}", end.0));
                            disk.save_snapshot(id, data.clone());
                            mem.save_snapshot(id, data);
                        }
                    }
                } else {
                    disk.flush();
                    mem.flush();
                    drop(disk);
                    disk = DiskRaftLog::open(&path, 0).expect("reopen");
                }
                same(&disk, &mem, &label);
            }
        }
    }

    #[test]
    fn installing_a_snapshot_replaces_the_log() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m");
        let mut disk = DiskRaftLog::open(&path, 0).expect("open");
        disk.append(&[
            entry(0, 1, EntryKind::LeaderChange),
            entry(1, 1, EntryKind::Data),
        ]);
        let id = SnapshotId {
            end_offset: Offset(50),
            epoch: Epoch(3),
        };
        disk.install_snapshot(id, Bytes::from_static(b"state"));
        assert_eq!(
            (disk.start_offset(), disk.end_offset(), disk.flushed_end()),
            (Offset(50), Offset(50), Offset(50))
        );
        assert_eq!(disk.last_epoch(), Epoch(3));
        disk.append(&[entry(50, 4, EntryKind::Data)]);
        drop(disk);
        let disk = DiskRaftLog::open(&path, 0).expect("reopen");
        assert_eq!(disk.latest_snapshot(), Some(id));
        assert_eq!(disk.start_offset(), Offset(50));
        assert_eq!(
            disk.read(Offset(50), 10),
            vec![entry(50, 4, EntryKind::Data)]
        );
        assert_eq!(
            disk.read_snapshot(id, 1, 3),
            Some((Bytes::from_static(b"tat"), 5))
        );
    }
}
