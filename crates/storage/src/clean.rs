//! Log compaction (`cleanup.policy=compact`): keeps at least the last record of every key.
//!
//! A cleaning of one log, as Kafka's log cleaner does it:
//!
//! 1. Under the shared lock, a view of the inactive segments that lie wholly below the first
//!    uncleanable offset (the caller's bound: the high watermark, `min.compaction.lag.ms`;
//!    the active segment is never cleaned). The segments from the first dirty offset (the
//!    end of the previous cleaning) on are the dirty ones.
//! 2. No lock: the dirty segments are read and each key's last offset there goes into a map
//!    (a 128-bit hash of the key, so its size per key is fixed), bounded by the caller's
//!    memory; if the bound is reached inside a segment, the cleaning stops before it.
//! 3. No lock: from the first segment to the last one mapped, in groups that fit in one
//!    segment, each batch is kept as it is, rebuilt with fewer records, or left out. A record
//!    goes when its key appears at a later offset in the map, when it has no key, or when it
//!    is a tombstone (null value) in a segment that an earlier cleaning already covered and
//!    whose newest timestamp is older than `delete.retention.ms`. A batch that loses all its
//!    records is left out, unless it is an idempotent producer's last batch here: then its
//!    empty header stays, keeping that producer's sequence. Offsets never change: a batch
//!    keeps its base and last offset, and gaps are allowed in a log. Each group is written
//!    to `<base>.log.cleaned` with new indexes, and fsynced.
//! 4. Under the exclusive lock, briefly, for each group: if the log still has those segments
//!    unchanged, the cleaned files replace them (see [`crate::Log::open`] for completing a
//!    replacement that a crash interrupted).
//!
//! Records are read and rebuilt by the caller's [`RecordKeys`]: this crate does not decode
//! records itself.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufWriter, Write};
use std::sync::Arc;

use parking_lot::RwLock;
use tracing::debug;

use crate::batch::{BatchHeader, RecordBatch};
use crate::error::{Result, StorageError};
use crate::index::{self, IndexBuilder, OnDisk};
use crate::log::{cleaned_file, CleanedGroup, Log};
use crate::segment::{
    segment_path, FileScanner, HeaderAt, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Suffix of a cleaned segment's files before they replace the originals.
pub const CLEANED_SUFFIX: &str = ".cleaned";

/// Bytes the offset map takes per key, at most: a 128-bit hash and an offset take 32 bytes
/// and a control byte in the table, whose buckets are a power of two at most 7/8 full
/// (see [`map_keys`]).
pub const MAP_BYTES_PER_KEY: usize = 76;
/// Bytes one bucket of the offset map takes.
const MAP_BUCKET_BYTES: usize = 33;

/// How many keys an offset map of at most `bytes` holds: the largest table of a power of
/// two buckets that fits, 7/8 of them used.
pub fn map_keys(bytes: usize) -> usize {
    let mut buckets = 8usize;
    while buckets
        .checked_mul(2 * MAP_BUCKET_BYTES)
        .is_some_and(|b| b <= bytes)
    {
        buckets *= 2;
    }
    buckets / 8 * 7
}

/// Called with each record's offset, key and whether it has a value (not a tombstone).
pub type KeyVisitor<'a> = dyn FnMut(i64, Option<&[u8]>, bool) + 'a;
/// Like [`KeyVisitor`], answering whether to keep the record.
pub type KeyFilter<'a> = dyn FnMut(i64, Option<&[u8]>, bool) -> bool + 'a;

/// See [`RecordKeys::for_each_record`].
pub type ForEachRecordFn = fn(&[u8], &mut KeyVisitor<'_>) -> std::result::Result<(), String>;
/// See [`RecordKeys::retain`].
pub type RetainFn =
    fn(&[u8], &mut KeyFilter<'_>, Option<i64>) -> std::result::Result<Option<Vec<u8>>, String>;

/// What the cleaner needs of a batch's records, given by its caller (which decodes them).
#[derive(Debug, Clone, Copy)]
pub struct RecordKeys {
    /// Calls `visit(offset, key, has_value)` for each record of `batch` (a whole stored
    /// batch, header included), in order.
    pub for_each_record: ForEachRecordFn,
    /// `batch` rebuilt with only the records for which `keep(offset, key, has_value)` holds,
    /// keeping its base and last offset (with none kept: its header alone, RecordsCount 0),
    /// and marked with the given delete horizon if it keeps a tombstone and has no horizon
    /// yet (attribute bit 6, BaseTimestamp = horizon, record timestamps unchanged); `None`
    /// when it would be the same batch.
    pub retain: RetainFn,
}

/// What to clean.
#[derive(Debug, Clone)]
pub struct CleanRequest {
    /// Where the previous cleaning ended (the log start offset if none did).
    pub first_dirty: i64,
    /// The first offset that must not be cleaned (exclusive bound).
    pub end: i64,
    /// Now, in ms: tombstones in batches whose delete horizon is past go.
    pub now_ms: i64,
    /// `delete.retention.ms`: a batch first cleaned with tombstones it keeps is marked with
    /// the delete horizon `now_ms` + this (KIP-534).
    pub delete_retention_ms: i64,
    /// Memory for the offset map.
    pub map_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second`: bytes read and written a second, at most
    /// (`None`: no limit).
    pub io_bytes_per_second: Option<f64>,
    /// The log's [`Log::generation`] when `end` was read: if a truncation came between,
    /// `end` may be past the high watermark now, and nothing is cleaned.
    pub generation: u64,
    /// The aborted transactions with data below `end`: their records are not mapped (a
    /// key's aborted value never supersedes its committed one) and are left out.
    pub aborted: Vec<crate::AbortedTxn>,
}

/// Aborted transactions by producer: (first offset, marker offset).
type AbortedByProducer = HashMap<i64, Vec<(i64, i64)>>;

/// Whether a stored data batch belongs to one of `aborted` (by producer, first offsets).
fn in_aborted(h: &BatchHeader, aborted: &AbortedByProducer) -> bool {
    h.is_transactional()
        && !h.is_control()
        && aborted.get(&h.producer_id()).is_some_and(|txns| {
            txns.iter()
                .any(|&(first, last)| first <= h.base_offset() && h.base_offset() < last)
        })
}

/// What a cleaning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Where the next cleaning starts: the end of the segments mapped.
    pub cleaned_up_to: i64,
    /// Bytes of the segments replaced, before and after.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// Records left out.
    pub records_removed: u64,
    /// Segments replaced, and how many they became.
    pub segments_before: usize,
    /// See `segments_before`.
    pub segments_after: usize,
}

/// A segment as the cleaner sees it (see [`Log::clean_view`]).
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    pub base: i64,
    pub size: u64,
    /// Base offset of the segment after it.
    pub next_base: i64,
    pub file: Arc<File>,
}

/// Inactive segments wholly below a bound, and the log's generation when they were taken.
#[derive(Debug)]
pub(crate) struct CleanView {
    pub segments: Vec<SegmentView>,
    pub generation: u64,
    pub segment_limit: u64,
    pub index_interval: u64,
    pub dir: std::path::PathBuf,
}

/// Paces the cleaner's reads and writes to `log.cleaner.io.max.bytes.per.second`.
struct Throttle {
    rate: Option<f64>,
    start: std::time::Instant,
    bytes: f64,
}

impl Throttle {
    fn new(rate: Option<f64>) -> Throttle {
        Throttle {
            rate,
            start: std::time::Instant::now(),
            bytes: 0.0,
        }
    }

    /// Counts `n` bytes read or written; sleeps while ahead of the rate.
    fn account(&mut self, n: usize) {
        let Some(rate) = self.rate else { return };
        self.bytes += n as f64;
        let due = std::time::Duration::from_secs_f64((self.bytes / rate).min(1e9));
        let elapsed = self.start.elapsed();
        if due > elapsed + std::time::Duration::from_millis(10) {
            std::thread::sleep(due - elapsed);
        }
    }
}

fn key_hash(key: &[u8]) -> u128 {
    let mut lo = DefaultHasher::new();
    0u8.hash(&mut lo);
    key.hash(&mut lo);
    let mut hi = DefaultHasher::new();
    1u8.hash(&mut hi);
    key.hash(&mut hi);
    (u128::from(hi.finish()) << 64) | u128::from(lo.finish())
}

/// Walks the whole batches of a segment view.
fn for_each_batch(
    seg: &SegmentView,
    path: &std::path::Path,
    mut f: impl FnMut(BatchHeader, &[u8]) -> Result<bool>,
) -> Result<()> {
    let mut sc = FileScanner::new(&seg.file, seg.size, 1 << 20);
    let mut pos = 0u64;
    loop {
        let h = match sc.header_at(pos)? {
            HeaderAt::End => return Ok(()),
            HeaderAt::Bad(reason) => {
                return Err(StorageError::CorruptLog {
                    path: path.to_path_buf(),
                    position: pos,
                    reason,
                })
            }
            HeaderAt::Batch(h) => h,
        };
        let bytes = sc.bytes_at(pos, h.size())?;
        if !f(h, bytes)? {
            return Ok(());
        }
        pos += h.size() as u64;
    }
}

fn records_error(path: &std::path::Path, base: i64, e: String) -> StorageError {
    StorageError::CorruptLog {
        path: path.to_path_buf(),
        position: 0,
        reason: format!("batch at offset {base}: {e}"),
    }
}

/// Cleans `log` (see the module docs). `None` when there was nothing to clean or the log
/// changed under the cleaning (it is then tried again later); `stop` is asked between
/// groups and ends the cleaning early.
pub fn clean(
    log: &RwLock<Log>,
    req: &CleanRequest,
    keys: RecordKeys,
    stop: &dyn Fn() -> bool,
) -> Result<Option<CleanOutcome>> {
    let view = log.read().clean_view(req.end)?;
    if view.generation != req.generation {
        return Ok(None);
    }
    match clean_view(log, &view, req, keys, stop) {
        // Reading a segment that was truncated or deleted meanwhile fails: the log changed.
        Err(_) if log.read().generation_changed(view.generation) => {
            for s in &view.segments {
                remove_cleaned(&view.dir, s.base);
            }
            Ok(None)
        }
        r => r,
    }
}

fn clean_view(
    log: &RwLock<Log>,
    view: &CleanView,
    req: &CleanRequest,
    keys: RecordKeys,
    stop: &dyn Fn() -> bool,
) -> Result<Option<CleanOutcome>> {
    let segs = &view.segments;
    let Some(first_dirty_seg) = segs.iter().position(|s| s.next_base > req.first_dirty) else {
        return Ok(None);
    };

    // The offset map of the dirty segments, and each idempotent producer's last batch.
    let max_keys = map_keys(req.map_bytes);
    // Sized once (it never grows past `max_keys`), for the records the dirty segments can
    // hold at most: a record takes 7 bytes or more.
    let dirty_bytes: u64 = segs[first_dirty_seg..].iter().map(|s| s.size).sum();
    let mut map: HashMap<u128, i64> = HashMap::with_capacity(
        max_keys.min(usize::try_from(dirty_bytes / 7).unwrap_or(usize::MAX)) + 1,
    );
    let mut last_batch_of: HashMap<i64, i64> = HashMap::new();
    let mut aborted: AbortedByProducer = HashMap::new();
    for a in &req.aborted {
        aborted
            .entry(a.producer_id)
            .or_default()
            .push((a.first_offset, a.last_offset));
    }
    let mut throttle = Throttle::new(req.io_bytes_per_second);
    // One past the last offset mapped, and whether the map filled before the end.
    let mut mapped_to = req.first_dirty;
    let mut full = false;
    let mut mapped_segs = segs.len();
    for (i, seg) in segs.iter().enumerate() {
        if stop() {
            return Ok(None);
        }
        let path = segment_path(&view.dir, seg.base, LOG_SUFFIX);
        let dirty = i >= first_dirty_seg;
        // Once the map is full, the rest of this segment is still walked for its
        // producers' batches: it is cleaned too (what follows the map's end is kept).
        for_each_batch(seg, &path, |h, bytes| {
            throttle.account(bytes.len());
            // (A transaction's marker is not its producer's last batch of data.)
            if h.producer_id() >= 0 && !h.is_control() {
                last_batch_of.insert(h.producer_id(), h.last_offset());
            }
            if full || !dirty || h.last_offset() < req.first_dirty {
                return Ok(true);
            }
            if !h.is_control() && !in_aborted(&h, &aborted) {
                (keys.for_each_record)(bytes, &mut |offset, key, _| {
                    if full || offset < req.first_dirty {
                        return;
                    }
                    if let Some(k) = key {
                        let hash = key_hash(k);
                        if map.len() >= max_keys && !map.contains_key(&hash) {
                            full = true;
                            return;
                        }
                        map.insert(hash, offset);
                    }
                    mapped_to = offset + 1;
                })
                .map_err(|e| records_error(&path, h.base_offset(), e))?;
            }
            if !full {
                mapped_to = mapped_to.max(h.last_offset() + 1);
            }
            Ok(true)
        })?;
        if full {
            mapped_segs = i + 1;
            break;
        }
    }
    let cleaned_up_to = if full {
        mapped_to
    } else {
        segs[mapped_segs - 1].next_base
    };
    if cleaned_up_to <= req.first_dirty {
        tracing::warn!(
            log = %view.dir.display(),
            keys = max_keys,
            "cannot compact: the offset map is too small (log.cleaner.dedupe.buffer.size)"
        );
        return Ok(None);
    }

    // Groups of consecutive segments whose cleaned data fits in one.
    let mut outcome = CleanOutcome {
        cleaned_up_to,
        ..CleanOutcome::default()
    };
    let mut i = 0;
    while i < mapped_segs {
        if stop() {
            return Ok(None);
        }
        let cleaned = write_cleaned(
            view,
            &segs[i..mapped_segs],
            req,
            (keys, &mut throttle),
            &map,
            (&last_batch_of, &aborted),
        )?;
        let n = cleaned.old.len();
        let before: u64 = cleaned.old.iter().map(|(_, size)| size).sum();
        let (after, removed) = (cleaned.size, cleaned.records_removed);
        if !log.write().install_cleaned(view.generation, cleaned)? {
            debug!(log = %view.dir.display(), "log changed while cleaning; trying later");
            remove_cleaned(&view.dir, segs[i].base);
            return Ok(None);
        }
        outcome.bytes_before += before;
        outcome.bytes_after += after;
        outcome.records_removed += removed;
        outcome.segments_before += n;
        outcome.segments_after += 1;
        i += n;
    }
    let mut l = log.write();
    if l.generation_changed(view.generation) {
        return Ok(None);
    }
    l.set_cleaner_offset(Some(cleaned_up_to));
    Ok(Some(outcome))
}

fn remove_cleaned(dir: &std::path::Path, base: i64) {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let _ = std::fs::remove_file(cleaned_file(dir, base, suffix));
    }
}

/// Writes the cleaned copy of the first of `segs`, and of as many after it as fit with it
/// in one segment (`segment.bytes`, counting each by its size before cleaning), as
/// `<base>.*.cleaned`, fsynced.
fn write_cleaned(
    view: &CleanView,
    segs: &[SegmentView],
    req: &CleanRequest,
    (keys, throttle): (RecordKeys, &mut Throttle),
    map: &HashMap<u128, i64>,
    (last_batch_of, aborted): (&HashMap<i64, i64>, &AbortedByProducer),
) -> Result<CleanedGroup> {
    let base = segs[0].base;
    let out_path = cleaned_file(&view.dir, base, LOG_SUFFIX);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&out_path)?;
    let mut out = BufWriter::with_capacity(1 << 20, &file);
    let mut builder = IndexBuilder::new(base, view.index_interval);
    let mut pos = 0u64;
    let mut removed = 0u64;
    let mut taken = 0;
    for seg in segs {
        let fits = pos.saturating_add(seg.size) <= view.segment_limit
            && seg.next_base - 1 - base <= i64::from(i32::MAX);
        if taken > 0 && !fits {
            break;
        }
        taken += 1;
        let path = segment_path(&view.dir, seg.base, LOG_SUFFIX);
        for_each_batch(seg, &path, |h, bytes| {
            throttle.account(bytes.len());
            // A batch's tombstones go once the delete horizon an earlier cleaning marked it
            // with has passed; a batch that keeps some and has none is marked now.
            let horizon = h.delete_horizon_ms();
            let drop_tombstones = horizon.is_some_and(|t| t <= req.now_ms);
            let mark = horizon
                .is_none()
                .then(|| req.now_ms.saturating_add(req.delete_retention_ms));
            let producers_last = h.producer_id() >= 0
                && last_batch_of.get(&h.producer_id()) == Some(&h.last_offset());
            let rebuilt = if h.is_control() {
                None
            } else if h.records_count() == 0 {
                // Left empty by an earlier cleaning: needed while it is its producer's last.
                if !producers_last {
                    return Ok(true);
                }
                None
            } else if in_aborted(&h, aborted) {
                // An aborted transaction's records all go.
                let mut keep = |_: i64, _: Option<&[u8]>, _: bool| {
                    removed += 1;
                    false
                };
                (keys.retain)(bytes, &mut keep, None)
                    .map_err(|e| records_error(&path, h.base_offset(), e))?
            } else {
                let mut keep = |offset: i64, key: Option<&[u8]>, has_value: bool| {
                    let latest = key
                        .is_some_and(|k| map.get(&key_hash(k)).is_none_or(|&last| offset >= last));
                    let kept = latest && (has_value || !drop_tombstones);
                    if !kept {
                        removed += 1;
                    }
                    kept
                };
                (keys.retain)(bytes, &mut keep, mark)
                    .map_err(|e| records_error(&path, h.base_offset(), e))?
            };
            let batch: &[u8] = match &rebuilt {
                None => bytes,
                Some(b) => {
                    let (parsed, _) = RecordBatch::parse(b)?;
                    let empty = parsed.records_count() == 0;
                    if empty && !producers_last {
                        return Ok(true);
                    }
                    b
                }
            };
            let header = BatchHeader::from_slice(batch)?;
            out.write_all(batch)?;
            throttle.account(batch.len());
            builder.on_batch(
                pos,
                header.base_offset(),
                header.last_offset(),
                header.max_timestamp(),
                batch.len() as u64,
            );
            pos += batch.len() as u64;
            Ok(true)
        })?;
    }
    out.flush()?;
    drop(out);
    file.sync_all()?;
    builder.maybe_append_time();
    index::persist(
        &cleaned_file(&view.dir, base, INDEX_SUFFIX),
        &cleaned_file(&view.dir, base, TIME_INDEX_SUFFIX),
        &builder.index,
        &mut OnDisk::default(),
        true,
    )?;
    if pos > i32::MAX as u64 {
        return Err(StorageError::InvalidArgument(format!(
            "a cleaned segment at {base} would take {pos} bytes"
        )));
    }
    let group = &segs[..taken];
    Ok(CleanedGroup {
        old: group.iter().map(|s| (s.base, s.size)).collect(),
        next_base: group[taken - 1].next_base,
        size: pos,
        index: builder.index,
        records_removed: removed,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::testing::{decode_records, BatchBuilder};
    use crate::LogConfig;

    const KEYS: RecordKeys = RecordKeys {
        for_each_record: krust_protocol::record_keys::for_each_record,
        retain: krust_protocol::record_keys::retain_records,
    };

    /// Cleans `log` as `req` asks, which must clean something.
    fn cleaned(log: &RwLock<Log>, req: &CleanRequest) -> CleanOutcome {
        clean(log, req, KEYS, &|| false)
            .expect("clean")
            .expect("cleaned")
    }

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 600,
            index_interval_bytes: 64,
            retention_ms: -1,
            ..LogConfig::default()
        }
    }

    fn request(first_dirty: i64, end: i64) -> CleanRequest {
        CleanRequest {
            first_dirty,
            end,
            now_ms: 1_000,
            delete_retention_ms: 0,
            map_bytes: 1 << 20,
            io_bytes_per_second: None,
            generation: 0,
            aborted: Vec::new(),
        }
    }

    /// Every record of the log as (offset, key, value), and checks offsets only grow.
    /// A record: offset, key, value.
    type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn contents(log: &Log) -> Vec<Rec> {
        let r = log
            .read(log.log_start_offset(), 1 << 30, log.log_end_offset(), true)
            .expect("read");
        let mut out = Vec::new();
        for b in crate::batch::batches(&r.records) {
            let b = b.expect("batch");
            b.verify_crc().expect("crc");
            for rec in decode_records(&b).expect("decode") {
                out.push((rec.offset, rec.key, rec.value));
            }
        }
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "offsets grow");
        out
    }

    /// Appends `n` single-record batches with key `k{i % keys}` and value `v{i}` (a
    /// tombstone for every i in `tombstones`); timestamps = i.
    fn produce(log: &mut Log, from: usize, n: usize, keys: usize, tombstones: &[usize]) {
        for i in from..from + n {
            let key = format!("k{}", i % keys);
            let value = format!("v{i}");
            let v = (!tombstones.contains(&i)).then_some(value.as_bytes());
            let b = BatchBuilder::new(0)
                .record(Some(key.as_bytes()), v, i as i64)
                .build();
            log.append_as_leader(&b, 0, i as i64).expect("append");
        }
    }

    fn latest_by_key(all: &[Rec]) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
        let mut m = BTreeMap::new();
        for (o, k, v) in all {
            if let Some(k) = k {
                m.insert(k.clone(), (*o, v.clone()));
            }
        }
        m
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keeps_the_last_record_of_every_key_at_its_offset() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        produce(&mut log.write(), 0, 200, 7, &[]);
        let before = contents(&log.read());
        let want = latest_by_key(&before);
        let segs_before = log.read().num_segments();
        let end = log.read().log_end_offset();
        let out = cleaned(&log, &request(0, end));
        let after = contents(&log.read());
        // Below the active segment, one record per key remains.
        let active_base = *log.read().segment_base_offsets().last().expect("segment");
        let mut seen = std::collections::HashSet::new();
        for (o, k, _) in after.iter().filter(|(o, _, _)| *o < active_base) {
            assert!(
                seen.insert(k.clone().expect("key")),
                "offset {o}: its key again"
            );
        }
        assert_eq!(latest_by_key(&after), want);
        assert!(out.records_removed > 150, "{out:?}");
        assert!(out.bytes_after < out.bytes_before / 5, "{out:?}");
        assert!(log.read().num_segments() < segs_before);
        assert_eq!(log.read().log_end_offset(), end);
        // Reads from any offset, including removed ones, find the next record.
        for o in 0..end {
            let r = log.read().read(o, 1 << 20, end, true).expect("read");
            assert!(r.num_batches > 0, "nothing from {o}");
        }
        // Appends go on at the log end; a restart (clean or not) finds the same log.
        produce(&mut log.write(), 200, 3, 7, &[]);
        let now = contents(&log.read());
        let leo = log.read().log_end_offset();
        drop(log);
        for clean_start in [true, false] {
            let l = Log::open(dir.path(), config(), 0, 0, clean_start, 0).expect("reopen");
            assert_eq!(contents(&l), now);
            assert_eq!(l.log_end_offset(), leo);
            l.close().expect("close");
        }
        assert!(!file_names(dir.path())
            .iter()
            .any(|n| n.ends_with(".cleaned")));
    }

    #[test]
    fn a_map_too_small_for_a_segment_cleans_part_of_it_each_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        produce(&mut log.write(), 0, 400, 40, &[]);
        let end = log.read().log_end_offset();
        let want = latest_by_key(&contents(&log.read()));
        let mut first_dirty = 0;
        let mut rounds = 0;
        let active_base = *log.read().segment_base_offsets().last().expect("segment");
        while first_dirty < active_base {
            let mut req = request(first_dirty, end);
            req.map_bytes = 0; // the smallest map: 8 buckets, 7 keys of the 40
            let out = cleaned(&log, &req);
            assert!(out.cleaned_up_to > first_dirty);
            assert_eq!(log.read().cleaner_offset(), Some(out.cleaned_up_to));
            first_dirty = out.cleaned_up_to;
            rounds += 1;
            assert!(rounds < 200, "no progress");
            // Nothing that is any key's last record is ever lost.
            assert_eq!(latest_by_key(&contents(&log.read())), want);
        }
        assert!(rounds > 1);
        let after = contents(&log.read());
        let mut seen = std::collections::HashSet::new();
        for (o, k, _) in after.iter().filter(|(o, _, _)| *o < active_base) {
            assert!(
                seen.insert(k.clone().expect("key")),
                "offset {o}: its key again"
            );
        }
    }

    #[test]
    fn a_truncation_lowers_where_the_next_cleaning_starts() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        produce(&mut log.write(), 0, 100, 5, &[]);
        let end = log.read().log_end_offset();
        let out = cleaned(&log, &request(0, end));
        assert_eq!(log.read().cleaner_offset(), Some(out.cleaned_up_to));
        let at = out.cleaned_up_to - 10;
        log.write().truncate_to(at).expect("truncate");
        // A truncation into a gap that compaction left ends the log at the offset asked.
        assert_eq!(log.read().log_end_offset(), at);
        assert_eq!(log.read().cleaner_offset(), Some(at));
        // And again, lower in the same gap (a follower settling divergence epoch by epoch).
        let data_end = log
            .read()
            .read(0, 1 << 30, at, true)
            .expect("read")
            .next_offset;
        assert!(data_end < at - 1, "a gap below {at}");
        log.write().truncate_to(at - 1).expect("truncate again");
        assert_eq!(log.read().log_end_offset(), at - 1);
        // A request made before the truncation (older generation) cleans nothing.
        assert_eq!(
            clean(&log, &request(0, end), KEYS, &|| false).expect("clean"),
            None
        );
        log.write().truncate_fully_and_start_at(500).expect("empty");
        assert_eq!(log.read().cleaner_offset(), None);
    }

    #[test]
    fn the_cleaner_keeps_to_its_io_rate() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        produce(&mut log.write(), 0, 100, 5, &[]);
        let end = log.read().log_end_offset();
        // Reads and writes of about 20 KB at 100 KB/s: about 0.2 s.
        let mut req = request(0, end);
        req.io_bytes_per_second = Some(100_000.0);
        let started = std::time::Instant::now();
        let out = cleaned(&log, &req);
        let floor = (out.bytes_before * 2 - out.bytes_before / 2) as f64 / 100_000.0;
        assert!(
            started.elapsed().as_secs_f64() >= floor * 0.5,
            "{:?} for {out:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_offset_map_fits_its_bytes() {
        assert_eq!(map_keys(0), 7);
        for bytes in [1 << 20, 128 << 20, 2 << 30] {
            let keys = map_keys(bytes);
            // The table hashbrown makes for that many keys fits in the bytes.
            let buckets = (keys * 8 / 7).next_power_of_two();
            assert!(buckets * MAP_BUCKET_BYTES <= bytes, "{bytes}");
            assert!(
                keys * MAP_BYTES_PER_KEY >= bytes / 2,
                "{bytes}: only {keys} keys"
            );
        }
    }

    #[test]
    fn a_second_cleaning_covers_the_new_records_and_drops_old_tombstones() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        // k0..k4, then tombstones for k1 and k3.
        produce(&mut log.write(), 0, 60, 5, &[56, 58]);
        produce(&mut log.write(), 60, 40, 1000, &[]); // other keys, to push those into clean segments
        let end = log.read().log_end_offset();
        let first = cleaned(&log, &request(0, end));
        let keys_now = latest_by_key(&contents(&log.read()));
        // The first cleaning keeps the tombstones, marking their batches with the delete
        // horizon now + delete.retention.ms; their records keep their timestamps.
        assert_eq!(keys_now[&b"k1".to_vec()].1, None);
        let r = log.read().read(0, 1 << 30, end, true).expect("read");
        for b in crate::batch::batches(&r.records) {
            let b = b.expect("batch");
            for rec in decode_records(&b).expect("decode") {
                assert_eq!(
                    rec.timestamp, rec.offset,
                    "record {}'s timestamp",
                    rec.offset
                );
                if rec.value.is_none() {
                    assert_eq!(b.header().delete_horizon_ms(), Some(1_000));
                }
            }
        }
        // A second cleaning before the horizon keeps them, one after it removes them.
        produce(&mut log.write(), 100, 30, 1000, &[]);
        let end = log.read().log_end_offset();
        let mut req = request(first.cleaned_up_to, end);
        req.now_ms = 999;
        let second = cleaned(&log, &req);
        assert_eq!(
            latest_by_key(&contents(&log.read()))[&b"k3".to_vec()].1,
            None
        );
        produce(&mut log.write(), 130, 30, 1000, &[]);
        let end = log.read().log_end_offset();
        let mut req = request(second.cleaned_up_to, end);
        req.now_ms = 1_000;
        cleaned(&log, &req);
        let keys_after = latest_by_key(&contents(&log.read()));
        assert!(!keys_after.contains_key(b"k1".as_slice()));
        assert!(!keys_after.contains_key(b"k3".as_slice()));
        assert_eq!(keys_after[&b"k0".to_vec()], keys_now[&b"k0".to_vec()]);
    }

    #[test]
    fn keyless_records_go_and_a_producers_last_batch_stays_empty() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        {
            let mut l = log.write();
            let b = BatchBuilder::new(0).record(None, Some(b"x"), 1).build();
            l.append_as_leader(&b, 0, 1).expect("append");
            for seq in 0..3 {
                let b = BatchBuilder::new(0)
                    .producer(7, 0, seq)
                    .record(Some(b"p"), Some(b"old"), 2)
                    .build();
                l.append_as_leader(&b, 0, 2).expect("append");
            }
        }
        produce(&mut log.write(), 10, 40, 1, &[]); // key k0, overwriting nothing of the above
        {
            let b = BatchBuilder::new(0)
                .record(Some(b"p"), Some(b"new"), 3)
                .build();
            log.write().append_as_leader(&b, 0, 3).expect("append");
        }
        produce(&mut log.write(), 60, 20, 1000, &[]);
        let end = log.read().log_end_offset();
        cleaned(&log, &request(0, end));
        let r = log.read().read(0, 1 << 20, end, true).expect("read");
        let batches: Vec<_> = crate::batch::batches(&r.records)
            .map(|b| b.expect("batch"))
            .collect();
        // The keyless record and producer 7's first two batches are gone; its last batch
        // (offset 3) stays, empty.
        assert_eq!(batches[0].base_offset(), 3);
        assert_eq!(batches[0].records_count(), 0);
        assert_eq!(batches[0].producer_id(), 7);
        assert_eq!(batches[0].base_sequence(), 2);
        assert!(contents(&log.read()).iter().all(|(_, k, _)| k.is_some()));
    }

    #[test]
    fn an_aborted_transaction_never_supersedes_and_its_records_go() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        let txn = |seq: i32, value: &[u8]| {
            BatchBuilder::new(0)
                .producer(9, 0, seq)
                .attributes(crate::batch::TRANSACTIONAL_BIT)
                .record(Some(b"k"), Some(value), 2)
                .build()
        };
        let marker = |commit: bool| {
            BatchBuilder::new(0)
                .producer(9, 0, -1)
                .attributes(crate::batch::TRANSACTIONAL_BIT | crate::batch::CONTROL_BIT)
                .record(
                    Some(&[0, 0, 0, u8::from(commit)]),
                    Some(&[0, 0, 0, 0, 0, 1]),
                    2,
                )
                .build()
        };
        {
            let mut l = log.write();
            l.append_as_leader(&txn(0, b"committed"), 0, 2)
                .expect("append");
            l.append_from_coordinator(&marker(true), 0, 2)
                .expect("commit");
            l.append_as_leader(&txn(1, b"aborted"), 0, 2)
                .expect("append");
            l.append_from_coordinator(&marker(false), 0, 2)
                .expect("abort");
        }
        // Offsets: 0 committed value, 1 commit marker, 2 aborted value, 3 abort marker.
        let abort = marker(false);
        let first = crate::batch::batches(&abort)
            .next()
            .expect("batch")
            .expect("valid");
        assert_eq!(
            crate::batch::txn_marker(&first),
            Some(crate::batch::TxnMarker {
                commit: false,
                coordinator_epoch: 1
            })
        );
        produce(&mut log.write(), 10, 40, 1, &[]);
        let end = log.read().log_end_offset();
        let mut req = request(0, end);
        req.aborted = vec![crate::AbortedTxn {
            producer_id: 9,
            first_offset: 2,
            last_offset: 3,
        }];
        cleaned(&log, &req);
        let all = contents(&log.read());
        let k: Vec<_> = all
            .iter()
            .filter(|(_, key, _)| key.as_deref() == Some(&b"k"[..]))
            .collect();
        assert_eq!(
            k,
            vec![&(0, Some(b"k".to_vec()), Some(b"committed".to_vec()))],
            "the committed value stays, the aborted one is gone"
        );
        // The markers stay (as control batches); the aborted batch stays only as its
        // producer's empty last batch.
        let r = log.read().read(0, 1 << 20, end, true).expect("read");
        let controls = crate::batch::batches(&r.records)
            .map(|b| b.expect("batch"))
            .filter(|b| b.is_control())
            .count();
        assert_eq!(controls, 2);
    }

    #[test]
    fn a_replacement_cut_short_by_a_crash_is_finished_on_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        produce(&mut log.write(), 0, 120, 4, &[]);
        let end = log.read().log_end_offset();
        let want = latest_by_key(&contents(&log.read()));
        // Clean into `.cleaned` files but stop before they replace anything: as a crash
        // after writing `cleaner-swap` would leave them.
        let view = log.read().clean_view(end).expect("view");
        let group = &view.segments[..2];
        let mut map = HashMap::new();
        for seg in &view.segments {
            let path = segment_path(&view.dir, seg.base, LOG_SUFFIX);
            for_each_batch(seg, &path, |_, bytes| {
                (KEYS.for_each_record)(bytes, &mut |o, k, _| {
                    map.insert(key_hash(k.expect("key")), o);
                })
                .expect("records");
                Ok(true)
            })
            .expect("walk");
        }
        let mut throttle = Throttle::new(None);
        let cleaned = write_cleaned(
            &view,
            group,
            &request(0, end),
            (KEYS, &mut throttle),
            &map,
            (&HashMap::new(), &HashMap::new()),
        )
        .expect("cleaned");
        std::fs::write(
            dir.path().join(crate::log::CLEANER_SWAP),
            format!("{} {}\n", cleaned.old[0].0, cleaned.next_base),
        )
        .expect("swap file");
        drop(log);
        let l = Log::open(dir.path(), config(), 0, 0, false, 0).expect("reopen");
        let names = file_names(dir.path());
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".cleaned") || n == "cleaner-swap"),
            "{names:?}"
        );
        assert!(cleaned.old.len() > 1);
        assert!(
            !names.contains(&segment_file_name(cleaned.old[1].0)),
            "{names:?}"
        );
        assert_eq!(latest_by_key(&contents(&l)), want);
        assert_eq!(l.log_end_offset(), end);
        // Without `cleaner-swap`, leftover `.cleaned` files are just removed.
        std::fs::write(cleaned_file(dir.path(), 0, LOG_SUFFIX), b"junk").expect("junk");
        drop(l);
        let l = Log::open(dir.path(), config(), 0, 0, false, 0).expect("reopen");
        assert_eq!(latest_by_key(&contents(&l)), want);
        assert!(!file_names(dir.path())
            .iter()
            .any(|n| n.ends_with(".cleaned")));
    }

    fn segment_file_name(base: i64) -> String {
        crate::segment::segment_file_name(base, LOG_SUFFIX)
    }

    #[test]
    fn a_log_that_changed_meanwhile_is_left_alone() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = RwLock::new(Log::open(dir.path(), config(), 0, 0, true, 0).expect("open"));
        produce(&mut log.write(), 0, 80, 3, &[]);
        let end = log.read().log_end_offset();
        let before = contents(&log.read());
        // The log is truncated while the cleaning runs (asked through `stop`, which runs
        // before each group).
        let truncated = std::cell::Cell::new(false);
        let stop = || {
            if !truncated.get() {
                log.write().truncate_to(5).expect("truncate");
                truncated.set(true);
            }
            false
        };
        assert_eq!(
            clean(&log, &request(0, end), KEYS, &stop).expect("clean"),
            None
        );
        assert_eq!(contents(&log.read()), before[..5]);
        assert!(!file_names(dir.path())
            .iter()
            .any(|n| n.ends_with(".cleaned")));
        // Nothing is cleaned at or past `end`, nor in the active segment.
        let l = log.read();
        let v = l.clean_view(3).expect("view");
        assert!(v.segments.iter().all(|s| s.next_base <= 3));
    }
}
