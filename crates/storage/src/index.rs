//! Sparse offset and time indexes of one segment, kept in memory as sorted vectors and stored in
//! Kafka's file formats:
//!
//! * `.index`: 8-byte entries, `i32 relative offset, i32 file position` (big-endian). The
//!   relative offset is that of the **last** offset of the batch starting at the position (as in
//!   Kafka), so "largest entry with relative offset <= target" gives a position at or before the
//!   batch containing the target.
//! * `.timeindex`: 12-byte entries, `i64 timestamp, i32 relative offset`. The timestamp is the
//!   largest batch MaxTimestamp seen so far in the segment and the offset is the **base** offset
//!   of the first batch that carried it. Timestamps strictly increase.
//!
//! An entry is added for a batch when more than `index_interval_bytes` of log were written since
//! the previous entry; a time entry is added at the same moment if the max timestamp grew, plus a
//! final one when the segment stops being active.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::batch::NO_TIMESTAMP;

/// Size of one offset index entry.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Size of one time index entry.
pub const TIME_ENTRY_LEN: usize = 12;

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: i32,
    pub pos: i32,
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: i64,
    pub rel: i32,
}

/// Both indexes of a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
}

impl SegmentIndex {
    /// File position to start scanning from to find relative offset `rel`.
    pub fn position_for(&self, rel: i64) -> u64 {
        let i = self.offsets.partition_point(|e| i64::from(e.rel) <= rel);
        match i.checked_sub(1) {
            Some(i) => self.offsets[i].pos as u64,
            None => 0,
        }
    }

    /// Relative offset to start scanning from to find the first batch with max timestamp >= ts:
    /// the offset of the last entry whose timestamp is < ts (all batches up to and including
    /// that one have smaller timestamps), or `None` to start from the segment start.
    pub fn rel_offset_before_time(&self, ts: i64) -> Option<i32> {
        let i = self.times.partition_point(|e| e.ts < ts);
        i.checked_sub(1).map(|i| self.times[i].rel)
    }

    /// Largest timestamp recorded, with its relative offset.
    pub fn last_time(&self) -> Option<TimeEntry> {
        self.times.last().copied()
    }

    /// Removes offset entries pointing at or after `pos`, and time entries for relative offsets
    /// >= `rel_end`.
    pub fn truncate(&mut self, pos: u64, rel_end: i64) {
        self.offsets.retain(|e| (e.pos as u64) < pos);
        self.times.retain(|e| i64::from(e.rel) < rel_end);
    }

    /// Decodes both files' contents; `None` if a size is not a multiple of its entry size.
    pub fn decode(offsets: &[u8], times: &[u8]) -> Option<SegmentIndex> {
        if !offsets
            .chunks_exact(OFFSET_ENTRY_LEN)
            .remainder()
            .is_empty()
            || !times.chunks_exact(TIME_ENTRY_LEN).remainder().is_empty()
        {
            return None;
        }
        let offsets = offsets
            .chunks_exact(OFFSET_ENTRY_LEN)
            .map(|c| OffsetEntry {
                rel: i32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                pos: i32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let times = times
            .chunks_exact(TIME_ENTRY_LEN)
            .map(|c| {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&c[..8]);
                TimeEntry {
                    ts: i64::from_be_bytes(ts),
                    rel: i32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                }
            })
            .collect();
        Some(SegmentIndex { offsets, times })
    }

    /// Checks the invariants: relative offsets in `0..=max_rel`, offset entries strictly
    /// increasing in offset and position with positions inside `segment_size`, time entries
    /// strictly increasing in timestamp and non-decreasing in offset.
    pub fn validate(&self, segment_size: u64, max_rel: i64) -> Result<(), String> {
        let mut prev: Option<OffsetEntry> = None;
        for e in &self.offsets {
            if e.rel < 0 || i64::from(e.rel) > max_rel || e.pos < 0 {
                return Err(format!("offset entry {e:?} out of range"));
            }
            if (e.pos as u64) >= segment_size {
                return Err(format!(
                    "offset entry {e:?} points past the log ({segment_size})"
                ));
            }
            if let Some(p) = prev {
                if e.rel <= p.rel || e.pos <= p.pos {
                    return Err(format!("offset entries not increasing: {p:?} then {e:?}"));
                }
            }
            prev = Some(*e);
        }
        let mut prev: Option<TimeEntry> = None;
        for e in &self.times {
            if e.rel < 0 || i64::from(e.rel) > max_rel || e.ts <= NO_TIMESTAMP {
                return Err(format!("time entry {e:?} out of range"));
            }
            if let Some(p) = prev {
                if e.ts <= p.ts || e.rel < p.rel {
                    return Err(format!("time entries not increasing: {p:?} then {e:?}"));
                }
            }
            prev = Some(*e);
        }
        Ok(())
    }

    fn encode_offsets(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.offsets.len() - from) * OFFSET_ENTRY_LEN);
        for e in &self.offsets[from..] {
            out.extend_from_slice(&e.rel.to_be_bytes());
            out.extend_from_slice(&e.pos.to_be_bytes());
        }
        out
    }

    fn encode_times(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.times.len() - from) * TIME_ENTRY_LEN);
        for e in &self.times[from..] {
            out.extend_from_slice(&e.ts.to_be_bytes());
            out.extend_from_slice(&e.rel.to_be_bytes());
        }
        out
    }
}

/// How many entries of each index are known to be in the files, so a flush only appends.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OnDisk {
    pub offsets: usize,
    pub times: usize,
    /// Entries were written since the files were last fsynced.
    pub unsynced: bool,
}

impl OnDisk {
    /// Forget entries beyond the index's current length (after a truncation).
    pub fn clamp(&mut self, index: &SegmentIndex) {
        self.offsets = self.offsets.min(index.offsets.len());
        self.times = self.times.min(index.times.len());
    }
}

fn write_file_tail(
    path: &Path,
    entry_len: usize,
    known: usize,
    tail: &[u8],
    sync: bool,
) -> io::Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = f.metadata()?.len();
    let known_len = (known * entry_len) as u64;
    if len < known_len {
        // The file lost entries we thought it had: caller must rewrite; signal with an error.
        return Err(io::Error::other("index file shorter than expected"));
    }
    if len > known_len {
        f.set_len(known_len)?;
    }
    f.write_all_at(tail, known_len)?;
    if sync {
        f.sync_data()?;
    }
    Ok(())
}

/// Writes the entries of `index` not yet in the files (all of them if the files disagree with
/// `on_disk`), optionally fsyncing. Updates `on_disk`.
pub(crate) fn persist(
    offsets_path: &Path,
    times_path: &Path,
    index: &SegmentIndex,
    on_disk: &mut OnDisk,
    sync: bool,
) -> io::Result<()> {
    on_disk.clamp(index);
    let wrote = on_disk.offsets < index.offsets.len() || on_disk.times < index.times.len();
    on_disk.unsynced = !sync && (on_disk.unsynced || wrote);
    let tail = index.encode_offsets(on_disk.offsets);
    if write_file_tail(offsets_path, OFFSET_ENTRY_LEN, on_disk.offsets, &tail, sync).is_err() {
        write_file_tail(
            offsets_path,
            OFFSET_ENTRY_LEN,
            0,
            &index.encode_offsets(0),
            sync,
        )?;
    }
    on_disk.offsets = index.offsets.len();
    let tail = index.encode_times(on_disk.times);
    if write_file_tail(times_path, TIME_ENTRY_LEN, on_disk.times, &tail, sync).is_err() {
        write_file_tail(times_path, TIME_ENTRY_LEN, 0, &index.encode_times(0), sync)?;
    }
    on_disk.times = index.times.len();
    Ok(())
}

/// Reads a whole index file; a missing file reads as `None`.
pub(crate) fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Fsyncs a file by path; a missing file is fine (nothing to sync).
pub(crate) fn sync_path(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(f) => f.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Builds a segment's indexes batch by batch (on append and when rebuilding from the log).
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    pub base_offset: i64,
    pub interval: u64,
    pub index: SegmentIndex,
    pub bytes_since_last_entry: u64,
    /// Largest batch MaxTimestamp in the segment so far (-1 if none).
    pub max_timestamp: i64,
    /// Base offset of the first batch that carried `max_timestamp` (-1 if none).
    pub offset_of_max_timestamp: i64,
}

impl IndexBuilder {
    pub fn new(base_offset: i64, interval: u64) -> Self {
        IndexBuilder {
            base_offset,
            interval,
            index: SegmentIndex::default(),
            bytes_since_last_entry: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
        }
    }

    fn rel(&self, offset: i64) -> Option<i32> {
        offset
            .checked_sub(self.base_offset)
            .and_then(|r| i32::try_from(r).ok())
            .filter(|r| *r >= 0)
    }

    /// Accounts for one batch written at `pos`.
    pub fn on_batch(
        &mut self,
        pos: u64,
        base_offset: i64,
        last_offset: i64,
        max_ts: i64,
        size: u64,
    ) {
        if max_ts > self.max_timestamp {
            self.max_timestamp = max_ts;
            self.offset_of_max_timestamp = base_offset;
        }
        if self.bytes_since_last_entry > self.interval {
            if let (Some(rel), Ok(pos)) = (self.rel(last_offset), i32::try_from(pos)) {
                let newer = self
                    .index
                    .offsets
                    .last()
                    .is_none_or(|e| e.rel < rel && e.pos < pos);
                if newer {
                    self.index.offsets.push(OffsetEntry { rel, pos });
                    self.maybe_append_time();
                    self.bytes_since_last_entry = 0;
                }
            }
        }
        self.bytes_since_last_entry = self.bytes_since_last_entry.saturating_add(size);
    }

    /// Adds a time entry for the current max timestamp if it grew since the last entry.
    pub fn maybe_append_time(&mut self) {
        let last_ts = self.index.times.last().map_or(NO_TIMESTAMP, |e| e.ts);
        if self.max_timestamp > last_ts {
            if let Some(rel) = self.rel(self.offset_of_max_timestamp) {
                self.index.times.push(TimeEntry {
                    ts: self.max_timestamp,
                    rel,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let idx = SegmentIndex {
            offsets: vec![
                OffsetEntry { rel: 9, pos: 4100 },
                OffsetEntry { rel: 19, pos: 8300 },
                OffsetEntry {
                    rel: 29,
                    pos: 12500,
                },
            ],
            times: vec![
                TimeEntry { ts: 100, rel: 0 },
                TimeEntry { ts: 200, rel: 10 },
                TimeEntry { ts: 300, rel: 25 },
            ],
        };
        assert_eq!(idx.position_for(0), 0);
        assert_eq!(idx.position_for(8), 0);
        assert_eq!(idx.position_for(9), 4100);
        assert_eq!(idx.position_for(18), 4100);
        assert_eq!(idx.position_for(19), 8300);
        assert_eq!(idx.position_for(1000), 12500);
        assert_eq!(idx.rel_offset_before_time(50), None);
        assert_eq!(idx.rel_offset_before_time(100), None);
        assert_eq!(idx.rel_offset_before_time(101), Some(0));
        assert_eq!(idx.rel_offset_before_time(250), Some(10));
        assert_eq!(idx.rel_offset_before_time(1000), Some(25));
        idx.validate(20000, i64::from(i32::MAX)).expect("valid");
        assert!(idx.validate(12000, i64::from(i32::MAX)).is_err());
        assert!(idx.validate(20000, 20).is_err());

        let mut t = idx.clone();
        t.truncate(8300, 10);
        assert_eq!(t.offsets.len(), 1);
        assert_eq!(t.times.len(), 1);
    }

    #[test]
    fn encode_decode_persist() {
        let dir = tempfile::tempdir().expect("tmp");
        let (op, tp) = (dir.path().join("a.index"), dir.path().join("a.timeindex"));
        let mut b = IndexBuilder::new(100, 10);
        let mut pos = 0;
        for i in 0..20i64 {
            b.on_batch(pos, 100 + i * 2, 101 + i * 2, 1000 + i, 7);
            pos += 7;
        }
        assert!(!b.index.offsets.is_empty());
        let mut on_disk = OnDisk::default();
        persist(&op, &tp, &b.index, &mut on_disk, true).expect("persist");
        b.on_batch(pos, 200, 201, 5000, 7);
        b.on_batch(pos + 7, 202, 203, 5001, 7);
        b.maybe_append_time();
        persist(&op, &tp, &b.index, &mut on_disk, false).expect("persist");
        let o = read_file(&op).expect("r").expect("exists");
        let t = read_file(&tp).expect("r").expect("exists");
        let decoded = SegmentIndex::decode(&o, &t).expect("decode");
        assert_eq!(decoded, b.index);
        decoded.validate(pos + 14, 1000).expect("valid");
        assert!(SegmentIndex::decode(&o[..5], &t).is_none());
        // Truncation then persist rewrites the tail.
        b.index.truncate(20, 4);
        persist(&op, &tp, &b.index, &mut on_disk, false).expect("persist");
        let o = read_file(&op).expect("r").expect("exists");
        let t = read_file(&tp).expect("r").expect("exists");
        assert_eq!(SegmentIndex::decode(&o, &t).expect("decode"), b.index);
    }
}
