//! The partition log: a directory of segments.
//!
//! ```text
//! <dir>/00000000000000000000.log        batches, as received (headers patched)
//! <dir>/00000000000000000000.index      sparse offset index (see crate::index)
//! <dir>/00000000000000000000.timeindex  sparse time index
//! <dir>/00000000000000001234.log ...    later segments; the last one is active
//! <dir>/leader-epoch-checkpoint
//! ```
//!
//! Concurrency: `Log` has no interior locking of its own state; share it as
//! `Arc<parking_lot::RwLock<Log>>` (as [`crate::LogManager`] does). Readers ([`Log::read`],
//! timestamp lookups) take `&self` and may run concurrently; they only touch per-segment caches
//! (lazily opened file handles and lazily loaded indexes of inactive segments), which have their
//! own small mutexes. Writers take `&mut self`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use tracing::{debug, warn};

use crate::batch::{self, BatchHeader, RecordBatch, HEADER_LEN, NO_TIMESTAMP};
use crate::checkpoint::sync_dir;
use crate::epoch::{LeaderEpochCache, LEADER_EPOCH_CHECKPOINT};
use crate::error::{Result, StorageError};
use crate::index::{self, IndexBuilder, OnDisk, SegmentIndex};
use crate::segment::{
    parse_segment_file_name, scan, segment_path, FileScanner, HeaderAt, ScanResult, INDEX_SUFFIX,
    LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::write_behind;

/// Per-log configuration (Kafka topic-level settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when an append would make the active segment larger than this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest timestamp is older than this; -1 = never.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger than this; -1 = never.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes of log between offset index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest batch accepted from a producer (prefix included).
    pub max_message_bytes: u32,
    /// `message.timestamp.type=LogAppendTime` when true, CreateTime when false.
    pub message_timestamp_type_log_append: bool,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime timestamp may
    /// be. Checking it means reading every record, which the log does not do: the caller
    /// checks it before appending (`i64::MAX`: no check).
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime timestamp may
    /// be, checked against each batch's MaxTimestamp.
    pub message_timestamp_after_max_ms: i64,
    /// `flush.messages`: fsync when this many offsets are not yet flushed.
    pub flush_interval_messages: u64,
    /// `flush.ms`: fsync when the last flush is older than this.
    pub flush_interval_ms: i64,
    /// Whether the active segment's file is filled with zeros ahead of its appends
    /// ([`Log::fill_ahead`]) while neither flush setting is set. Not a Kafka setting.
    pub fill_ahead: bool,
    /// `cleanup.policy` holds `compact`: every record needs a key, and the log cleaner
    /// ([`crate::clean`]) keeps the last record of each.
    pub compact: bool,
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type_log_append: false,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 60 * 60 * 1000,
            flush_interval_messages: u64::MAX,
            flush_interval_ms: i64::MAX,
            fill_ahead: true,
            compact: false,
        }
    }
}

impl LogConfig {
    /// Segment size limit as used: at most `i32::MAX` (positions in the index are i32).
    fn segment_limit(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record written (-1 if nothing was appended).
    pub first_offset: i64,
    /// Offset of the last record written (-1 if nothing was appended).
    pub last_offset: i64,
    /// Largest batch MaxTimestamp written (-1 if none).
    pub max_timestamp: i64,
    /// Base offset of the first batch carrying `max_timestamp` (records are not decoded, so this
    /// is a batch base offset; -1 if none).
    pub offset_of_max_timestamp: i64,
    /// The LogAppendTime assigned, or -1 if the log uses CreateTime.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Number of batches written.
    pub num_batches: usize,
    /// Number of bytes written.
    pub bytes: usize,
}

/// Result of [`Log::read`].
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, concatenated, as stored.
    pub records: Bytes,
    /// Number of batches in `records`.
    pub num_batches: usize,
    /// Offset after the last returned batch (`start_offset` if nothing was returned).
    pub next_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// Log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// See [`Log::read_start`].
struct ReadStart {
    seg_i: usize,
    pos: u64,
    limit: i64,
    budget: usize,
}

/// A byte range of one segment file holding whole batches as stored, for sending without
/// copying them through memory (see [`Log::read_slices`]). The file handle stays valid if the
/// segment is deleted meanwhile; if it is truncated meanwhile, fewer bytes than `len` remain
/// (or zeros filled ahead of later appends, or those appends).
#[derive(Debug, Clone)]
pub struct FileSlice {
    /// The segment's data file.
    pub file: Arc<File>,
    /// Where the first batch starts.
    pub position: u64,
    /// Bytes from `position`: whole batches.
    pub len: u64,
}

impl FileSlice {
    /// Reads the slice into memory.
    pub fn read_into(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let len = usize::try_from(self.len).map_err(|_| io::Error::other("slice too large"))?;
        let at = out.len();
        out.resize(at + len, 0);
        self.file.read_exact_at(&mut out[at..], self.position)
    }
}

/// Fsync work for segments that were rolled since the last flush, done without holding the log
/// lock: get it with [`Log::pending_segment_flush`] (shared lock), run [`PendingFlush::sync`]
/// (no lock), then hand it to [`Log::complete_segment_flush`] (exclusive lock), which advances
/// the recovery point to the base offset of the segment that was active when it was collected
/// ([`Log::pending_flush`]: to the log end then).
#[derive(Debug)]
pub struct PendingFlush {
    files: Vec<Arc<File>>,
    index_paths: Vec<PathBuf>,
    bases: Vec<i64>,
    up_to: i64,
    generation: u64,
    /// The active segment whose data file is among `files`, if it is.
    active_base: Option<i64>,
}

impl PendingFlush {
    /// Fsyncs the segment files and their indexes.
    pub fn sync(&self) -> Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        for p in &self.index_paths {
            index::sync_path(p)?;
        }
        Ok(())
    }
}

/// One segment. Inactive segments open their data file and load their indexes lazily and cache
/// them (`release_resources` drops the caches).
#[derive(Debug)]
struct Segment {
    base_offset: i64,
    size: u64,
    file: Mutex<Option<Arc<File>>>,
    index: Mutex<Option<Arc<SegmentIndex>>>,
    /// Rolled but not yet fsynced.
    unflushed: bool,
}

impl Segment {
    fn new(base_offset: i64, size: u64) -> Self {
        Segment {
            base_offset,
            size,
            file: Mutex::new(None),
            index: Mutex::new(None),
            unflushed: false,
        }
    }
}

/// State of the active (last) segment.
#[derive(Debug)]
struct Active {
    /// Opened for reading and appending.
    file: Arc<File>,
    builder: IndexBuilder,
    on_disk: OnDisk,
    next_offset: i64,
    /// Time of the first append (for `segment.ms`), `None` while empty.
    first_append_ms: Option<i64>,
    /// Position and header of the last batches appended in this process (oldest first,
    /// contiguous, ending at the segment's end): followers and tailing consumers read
    /// from here, and finding their batch needs no header reads from the file.
    recent: VecDeque<(u64, BatchHeader)>,
    /// Position up to which the segment was handed to write-behind ([`Log::write_behind`]).
    written_behind: u64,
    /// Length of the file: the segment's size, or more where zeros were written ahead of
    /// the appends ([`Log::fill_ahead`]).
    allocated: u64,
    /// No zeros are filled ahead below this position: the segment's size before its last
    /// truncation, so that a read handed out before it (sent after it) finds the new
    /// appends there at worst, never zeros.
    fill_floor: u64,
}

/// How many recently appended batches [`Active::recent`] remembers.
const RECENT_BATCHES: usize = 32;

impl Active {
    /// The batch holding `offset` among the recent ones: `Some(None)` when `offset` is
    /// past them all (at or beyond the log end), `None` when it precedes them.
    fn recent_batch(&self, offset: i64) -> Option<Option<(u64, BatchHeader)>> {
        let (_, first) = self.recent.front()?;
        if offset < first.base_offset() {
            return None;
        }
        Some(
            self.recent
                .iter()
                .find(|(_, h)| h.last_offset() >= offset)
                .copied(),
        )
    }
}

/// A validated batch of an append, with its patched header.
struct Prepared {
    /// Patched header to write instead of the first 61 bytes, `None` to write the bytes as is.
    header: Option<BatchHeader>,
    start: usize,
    size: usize,
    base: i64,
    last: i64,
    max_ts: i64,
}

/// Either the active segment's in-memory index or a cached inactive one.
enum IndexRef<'a> {
    Active(&'a SegmentIndex),
    Cached(Arc<SegmentIndex>),
}

impl std::ops::Deref for IndexRef<'_> {
    type Target = SegmentIndex;
    fn deref(&self) -> &SegmentIndex {
        match self {
            IndexRef::Active(i) => i,
            IndexRef::Cached(i) => i,
        }
    }
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Opens a segment's data file for reading and positioned writes, creating it if missing.
fn open_segment_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Writes all of `slices` at `pos` (`pwritev`, repeated after a short write).
#[allow(unsafe_code)]
fn write_all_vectored_at(
    file: &File,
    mut slices: &mut [IoSlice<'_>],
    mut pos: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    while !slices.is_empty() {
        let count = slices.len().min(1024);
        let offset = libc::off_t::try_from(pos)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "position too large"))?;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix, and `count` of them are
        // valid, borrowed for the call; the descriptor is kept open by `file`.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast::<libc::iovec>(),
                count as libc::c_int,
                offset,
            )
        };
        match n {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write whole batch",
                ))
            }
            n if n > 0 => {
                let n = n as usize;
                IoSlice::advance_slices(&mut slices, n);
                pos += n as u64;
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Zero-filling ahead of appends ([`Log::fill_ahead`]) extends the file to a multiple of this,
/// at least this far past the append. (Larger zero writes cost the kernel more than they
/// save: 64 KiB took about half the time of plain appends of 16 KiB, 256 KiB gained nothing.)
const FILL_CHUNK: u64 = 64 << 10;
/// ... once the active segment holds this much (so idle and small partitions never do).
const FILL_AFTER: u64 = 1 << 20;
/// Zeros written by [`Log::fill_ahead`].
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Whether `file` holds only zeros from `from` to `to` (read at most [`ZERO_TAIL_MAX`]):
/// space filled ahead of appends that the process did not get to use or trim.
fn zero_tail(file: &File, from: u64, to: u64) -> bool {
    if to <= from || to - from > ZERO_TAIL_MAX {
        return false;
    }
    let mut buf = vec![0u8; (to - from) as usize];
    file.read_exact_at(&mut buf, from).is_ok() && buf.iter().all(|&b| b == 0)
}

/// Logs the cut of segment `base` of the log in `dir` from `pos` to `end` (the first bad
/// batch, for `reason`): a warning, unless the segment is the last one (`last`) and only
/// zeros follow, which are what [`Log::fill_ahead`] left.
fn report_cut(
    dir: &Path,
    base: i64,
    file: &File,
    (pos, end): (u64, u64),
    reason: &str,
    last: bool,
) {
    if last && zero_tail(file, pos, end) {
        debug!(
            log = %dir.display(),
            segment = base,
            position = pos,
            bytes = end - pos,
            "cutting the zeros filled ahead of appends"
        );
    } else {
        warn!(
            log = %dir.display(),
            segment = base,
            position = pos,
            truncated_bytes = end - pos,
            %reason,
            "truncating the log at an invalid or partial batch"
        );
    }
}

/// The length of `file`; `u64::MAX` where it cannot be read (so the file is cut back to
/// its data at the next roll or shutdown, and not filled ahead meanwhile).
fn file_len(file: &File) -> u64 {
    file.metadata().map_or(u64::MAX, |m| m.len())
}

/// More zeros than [`Log::fill_ahead`] ever leaves past a segment's data.
const ZERO_TAIL_MAX: u64 = 2 * FILL_CHUNK + (64 << 10);

/// When the file at `path` was last written, in ms since the epoch.
fn file_time_ms(path: &Path) -> Result<i64> {
    Ok(fs::metadata(path)?
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// A cleaned copy of consecutive segments, written as `<first base>.*.cleaned`
/// ([`crate::clean`]).
#[derive(Debug)]
pub(crate) struct CleanedGroup {
    /// Base offset and size of each segment it replaces.
    pub old: Vec<(i64, u64)>,
    /// Base offset of the segment after them.
    pub next_base: i64,
    /// Size of the cleaned data.
    pub size: u64,
    /// Its index.
    pub index: SegmentIndex,
    /// Records it left out.
    pub records_removed: u64,
}

/// The file naming a segment replacement in progress (see [`Log::install_cleaned`]).
pub const CLEANER_SWAP: &str = "cleaner-swap";

/// Completes the replacement of the segments in `[first, next)` by `<first>.*.cleaned`:
/// deletes the others' files, renames the cleaned ones (data last), fsyncs the directory
/// and removes [`CLEANER_SWAP`]. Done again from the start after a crash, it finishes what
/// is left.
fn finish_swap(dir: &Path, first: i64, next: i64) -> Result<()> {
    // With `cleaner-swap` durable the cleaned files are complete: whatever of this was done
    // before a crash, doing it all again finishes it.
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let base = parse_segment_file_name(name, LOG_SUFFIX)
            .or_else(|| parse_segment_file_name(name, INDEX_SUFFIX))
            .or_else(|| parse_segment_file_name(name, TIME_INDEX_SUFFIX));
        if base.is_some_and(|b| b > first && b < next) {
            remove_if_exists(&entry.path())?;
        }
    }
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
        let from = cleaned_file(dir, first, suffix);
        if from.exists() {
            fs::rename(&from, segment_path(dir, first, suffix))?;
        }
    }
    sync_dir(dir)?;
    // Durably gone before any later cleaning writes `.cleaned` files again.
    remove_if_exists(&dir.join(CLEANER_SWAP))?;
    sync_dir(dir)?;
    Ok(())
}

/// `<base><suffix>.cleaned` in `dir`.
pub(crate) fn cleaned_file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    let mut p = segment_path(dir, base, suffix).into_os_string();
    p.push(crate::clean::CLEANED_SUFFIX);
    p.into()
}

/// Finishes a segment replacement that a crash interrupted (see [`Log::install_cleaned`]).
fn recover_swap(dir: &Path) -> Result<()> {
    let path = dir.join(CLEANER_SWAP);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut it = text.split_whitespace().map(str::parse::<i64>);
    match (it.next(), it.next()) {
        (Some(Ok(first)), Some(Ok(next))) if first < next => {
            warn!(log = %dir.display(), first, next, "finishing a compaction's segment replacement");
            finish_swap(dir, first, next)
        }
        _ => {
            // Written atomically, so never torn: not ours. The cleaned files go below.
            warn!(log = %dir.display(), "ignoring an unreadable cleaner-swap file");
            remove_if_exists(&path)?;
            Ok(())
        }
    }
}

/// Loads a segment's index files and checks them against the segment (`max_rel` bounds the
/// relative offsets); `Err(reason)` if they are missing, corrupt or inconsistent.
fn load_index_files(
    dir: &Path,
    base: i64,
    size: u64,
    max_rel: i64,
    file: &File,
) -> io::Result<std::result::Result<SegmentIndex, String>> {
    let o = index::read_file(&segment_path(dir, base, INDEX_SUFFIX))?;
    let t = index::read_file(&segment_path(dir, base, TIME_INDEX_SUFFIX))?;
    let (Some(o), Some(t)) = (o, t) else {
        return Ok(Err("index file missing".into()));
    };
    let Some(ix) = SegmentIndex::decode(&o, &t) else {
        return Ok(Err(
            "index file size is not a multiple of the entry size".into()
        ));
    };
    if let Err(reason) = ix.validate(size, max_rel) {
        return Ok(Err(reason));
    }
    // Cheap deep check: the last offset entry must point at a batch holding offsets <= entry.
    if let Some(last) = ix.offsets.last() {
        let mut sc = FileScanner::new(file, size, HEADER_LEN);
        match sc.header_at(last.pos as u64)? {
            HeaderAt::Batch(h)
                if h.base_offset() >= base && h.base_offset() <= base + i64::from(last.rel) => {}
            _ => {
                return Ok(Err(format!(
                    "offset entry {last:?} does not point at its batch"
                )))
            }
        }
    }
    Ok(Ok(ix))
}

/// Rebuilds an index by walking the batch headers of a segment (no CRC checks).
fn rebuild_index(file: &File, base: i64, size: u64, interval: u64) -> io::Result<IndexBuilder> {
    let mut b = IndexBuilder::new(base, interval);
    let res = scan(file, 0, size, &mut b, false, base)?;
    if let Some((pos, reason)) = res.error {
        warn!(position = pos, %reason, "segment {base} has an invalid batch while rebuilding its index");
    }
    Ok(b)
}

/// Continues an index from its last offset entry to the end of the segment (or the first bad
/// batch). Returns the builder and the scan result; `next_offset` of the result is filled in
/// for the whole segment (`base` if it is empty).
fn scan_tail(
    file: &File,
    base: i64,
    size: u64,
    index: SegmentIndex,
    interval: u64,
    verify: bool,
) -> io::Result<(IndexBuilder, ScanResult)> {
    let start = index.offsets.last().map_or(0, |e| e.pos as u64);
    let mut b = IndexBuilder::new(base, interval);
    if let Some(t) = index.last_time() {
        b.max_timestamp = t.ts;
        b.offset_of_max_timestamp = base + i64::from(t.rel);
    }
    b.index = index;
    let mut res = scan(file, start, size, &mut b, verify, base)?;
    if start > 0 && res.next_offset.is_none() {
        // The indexed batch itself is bad: the index cannot be trusted; scan everything.
        b = IndexBuilder::new(base, interval);
        res = scan(file, 0, size, &mut b, verify, base)?;
    }
    if res.next_offset.is_none() {
        res.next_offset = Some(base);
    }
    let end = res.valid_end;
    let rel_end = res.next_offset.unwrap_or(base) - base;
    b.index.truncate(end, rel_end);
    if b.offset_of_max_timestamp >= base + rel_end {
        // Should not happen (time entries past the end were removed); recompute conservatively.
        b.max_timestamp = b.index.last_time().map_or(NO_TIMESTAMP, |t| t.ts);
        b.offset_of_max_timestamp = b.index.last_time().map_or(-1, |t| base + i64::from(t.rel));
    }
    Ok((b, res))
}

/// A partition log. See the module docs.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset, never empty; the last one is active.
    segments: Vec<Segment>,
    active: Active,
    log_start_offset: i64,
    recovery_point: i64,
    last_flush_ms: i64,
    epochs: LeaderEpochCache,
    /// Bumped by truncations, so a [`PendingFlush`] collected before one is ignored.
    generation: u64,
    /// Where the last compaction ended (its first dirty offset), if one did.
    cleaner_offset: Option<i64>,
    /// Segment files were created or removed since the directory was last fsynced.
    dir_dirty: bool,
    closed: bool,
    /// Why the log stopped serving: an fsync failed. The kernel may have dropped the
    /// unwritten pages and a later fsync would report success, so nothing here can be
    /// trusted to be durable any more; everything but deletion fails until a restart
    /// recovers the log from its last good recovery point.
    failed: Option<String>,
}

impl Log {
    /// Opens (creating if missing) the log in `dir`.
    ///
    /// With `clean_shutdown`, files are trusted: only the active segment's index is loaded
    /// (rebuilt if corrupt) and its tail after the last index entry is validated; indexes of
    /// other segments are loaded and checked on first use. Without it, every batch from the
    /// segment containing `recovery_point` to the end is validated (framing, CRC, increasing
    /// offsets); the first bad or partial batch and everything after it is truncated (with a
    /// warning), later segments are deleted, the indexes of those segments are rebuilt, and the
    /// leader epoch cache learns the epochs found. The log start offset is
    /// `max(log_start_offset, first segment base)`.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
        log_start_offset: i64,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Log> {
        fs::create_dir_all(dir)?;
        recover_swap(dir)?;
        let interval = u64::from(config.index_interval_bytes);
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp")
                || name.ends_with(".deleted")
                || name.ends_with(".cleaned")
                || name.ends_with(".swap")
            {
                debug!(file = name, "removing leftover file");
                remove_if_exists(&entry.path())?;
            } else if let Some(base) = parse_segment_file_name(name, LOG_SUFFIX) {
                bases.push(base);
            } else if let Some(base) = parse_segment_file_name(name, INDEX_SUFFIX)
                .or_else(|| parse_segment_file_name(name, TIME_INDEX_SUFFIX))
            {
                index_files.push((base, entry.path()));
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                debug!(file = %path.display(), "removing index without a segment");
                remove_if_exists(&path)?;
            }
        }

        let epoch_path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let mut epochs = match LeaderEpochCache::open(&epoch_path) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "ignoring unreadable leader epoch checkpoint");
                LeaderEpochCache::empty(&epoch_path)
            }
        };

        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        for base in &bases {
            let len = fs::metadata(segment_path(dir, *base, LOG_SUFFIX))?.len();
            segments.push(Segment::new(*base, len));
        }
        if segments.is_empty() {
            let base = log_start_offset.max(0);
            open_segment_file(&segment_path(dir, base, LOG_SUFFIX))?;
            segments.push(Segment::new(base, 0));
        }

        // Unclean shutdown: recover from the segment holding the recovery point.
        let mut recovered_active: Option<(IndexBuilder, i64)> = None;
        if !clean_shutdown {
            let rp = recovery_point.max(0);
            let from = segments
                .partition_point(|s| s.base_offset <= rp)
                .saturating_sub(1);
            let mut i = from;
            while i < segments.len() {
                let base = segments[i].base_offset;
                let path = segment_path(dir, base, LOG_SUFFIX);
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                let size = segments[i].size;
                let mut b = IndexBuilder::new(base, interval);
                let res = scan(&file, 0, size, &mut b, true, base)?;
                for (epoch, offset) in &res.epochs {
                    epochs.assign(*epoch, *offset)?;
                }
                let next = res.next_offset.unwrap_or(base);
                let truncated = res.error.is_some();
                if let Some((pos, reason)) = &res.error {
                    let last = i + 1 == segments.len();
                    report_cut(dir, base, &file, (*pos, size), reason, last);
                    file.set_len(*pos)?;
                    segments[i].size = *pos;
                    for later in segments.drain(i + 1..) {
                        warn!(
                            log = %dir.display(),
                            segment = later.base_offset,
                            bytes = later.size,
                            "recovery: deleting segment after the truncation point"
                        );
                        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                            remove_if_exists(&segment_path(dir, later.base_offset, suffix))?;
                        }
                    }
                }
                file.sync_data()?;
                let is_last = i + 1 == segments.len();
                if is_last {
                    recovered_active = Some((b, next));
                } else {
                    b.maybe_append_time();
                    let mut on_disk = OnDisk::default();
                    index::persist(
                        &segment_path(dir, base, INDEX_SUFFIX),
                        &segment_path(dir, base, TIME_INDEX_SUFFIX),
                        &b.index,
                        &mut on_disk,
                        true,
                    )?;
                    *segments[i].index.get_mut() = Some(Arc::new(b.index));
                }
                if truncated {
                    break;
                }
                i += 1;
            }
            sync_dir(dir)?;
        }

        let active = Self::load_active(dir, &mut segments, &config, recovered_active, now_ms)?;
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            active,
            log_start_offset: 0,
            recovery_point: 0,
            last_flush_ms: now_ms,
            epochs,
            generation: 0,
            cleaner_offset: None,
            dir_dirty: false,
            closed: false,
            failed: None,
        };
        let leo = log.log_end_offset();
        log.log_start_offset = log_start_offset.max(log.segments[0].base_offset);
        if log.log_start_offset > leo {
            warn!(
                log = %dir.display(),
                log_start = log.log_start_offset,
                log_end = leo,
                "log start offset is past the log end; starting an empty log there"
            );
            log.truncate_fully_and_start_at(log.log_start_offset)?;
        }
        if !clean_shutdown {
            // Recovered data and rebuilt indexes are now durable.
            log.flush()?;
        }
        log.recovery_point = log.log_end_offset();
        let leo = log.log_end_offset();
        // An epoch may legitimately start at the log end (assigned, no data yet).
        log.epochs.truncate_from_end(leo.saturating_add(1))?;
        log.epochs.truncate_from_start(log.log_start_offset)?;
        Ok(log)
    }

    /// Builds the active state for the last segment: from a recovery scan if given, else from
    /// its index files (rebuilt if invalid) plus a validated scan of the tail. A bad tail is
    /// truncated.
    fn load_active(
        dir: &Path,
        segments: &mut [Segment],
        config: &LogConfig,
        recovered: Option<(IndexBuilder, i64)>,
        now_ms: i64,
    ) -> Result<Active> {
        let interval = u64::from(config.index_interval_bytes);
        let Some(seg) = segments.last_mut() else {
            return Err(StorageError::InvalidArgument("log has no segments".into()));
        };
        let base = seg.base_offset;
        let file = open_segment_file(&segment_path(dir, base, LOG_SUFFIX))?;
        let (builder, next_offset) = match recovered {
            Some(r) => r,
            None => {
                let cached = seg.index.get_mut().take();
                let loaded = match cached {
                    Some(ix) => Ok(Arc::unwrap_or_clone(ix)),
                    None => load_index_files(dir, base, seg.size, i64::from(i32::MAX), &file)?,
                };
                let ix = loaded.unwrap_or_else(|reason| {
                    if seg.size > 0 {
                        warn!(log = %dir.display(), segment = base, %reason, "rebuilding index");
                    }
                    SegmentIndex::default()
                });
                let (b, res) = scan_tail(&file, base, seg.size, ix, interval, true)?;
                if let Some((pos, reason)) = &res.error {
                    report_cut(dir, base, &file, (*pos, seg.size), reason, true);
                    file.set_len(*pos)?;
                    seg.size = *pos;
                    file.sync_data()?;
                }
                (b, res.next_offset.unwrap_or(base))
            }
        };
        let first_append_ms = if seg.size == 0 {
            None
        } else {
            let mut sc = FileScanner::new(&file, seg.size, HEADER_LEN);
            match sc.header_at(0)? {
                HeaderAt::Batch(h) if (0..=now_ms).contains(&h.max_timestamp()) => {
                    Some(h.max_timestamp())
                }
                _ => Some(now_ms),
            }
        };
        *seg.file.get_mut() = None;
        Ok(Active {
            file: Arc::new(file),
            builder,
            on_disk: OnDisk::default(),
            next_offset,
            first_append_ms,
            recent: VecDeque::new(),
            // What an earlier process wrote is the kernel's to write back.
            written_behind: write_behind::range_end(seg.size),
            allocated: seg.size,
            fill_floor: 0,
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(StorageError::LogClosed(self.dir.clone()));
        }
        if let Some(why) = &self.failed {
            return Err(StorageError::Io(io::Error::other(format!(
                "log {} is offline after a failed fsync ({why})",
                self.dir.display()
            ))));
        }
        Ok(())
    }

    /// Takes the log offline after a failed fsync (see `failed`).
    pub fn fail(&mut self, why: &StorageError) {
        if self.failed.is_none() {
            tracing::error!(dir = %self.dir.display(), error = %why, "fsync failed; the log goes offline until a restart");
            self.failed = Some(why.to_string());
        }
    }

    fn path(&self, base: i64, suffix: &str) -> PathBuf {
        segment_path(&self.dir, base, suffix)
    }

    fn active_segment(&self) -> &Segment {
        // Invariant: `segments` is never empty.
        &self.segments[self.segments.len() - 1]
    }

    fn is_active(&self, i: usize) -> bool {
        i + 1 == self.segments.len()
    }

    /// Index of the segment that would hold `offset` (the first one if below all).
    fn segment_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    fn segment_file(&self, i: usize) -> Result<Arc<File>> {
        if self.is_active(i) {
            return Ok(self.active.file.clone());
        }
        let seg = &self.segments[i];
        let mut guard = seg.file.lock();
        if let Some(f) = &*guard {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.path(seg.base_offset, LOG_SUFFIX))?);
        *guard = Some(f.clone());
        Ok(f)
    }

    fn segment_index(&self, i: usize) -> Result<IndexRef<'_>> {
        if self.is_active(i) {
            return Ok(IndexRef::Active(&self.active.builder.index));
        }
        let seg = &self.segments[i];
        let mut guard = seg.index.lock();
        if let Some(ix) = &*guard {
            return Ok(IndexRef::Cached(ix.clone()));
        }
        let file = self.segment_file(i)?;
        let base = seg.base_offset;
        let max_rel = (self.segments[i + 1].base_offset - base - 1).clamp(0, i64::from(i32::MAX));
        let ix = match load_index_files(&self.dir, base, seg.size, max_rel, &file)? {
            Ok(ix) => ix,
            Err(reason) => {
                warn!(log = %self.dir.display(), segment = base, %reason, "rebuilding index");
                let interval = u64::from(self.config.index_interval_bytes);
                let mut b = rebuild_index(&file, base, seg.size, interval)?;
                b.maybe_append_time();
                index::persist(
                    &self.path(base, INDEX_SUFFIX),
                    &self.path(base, TIME_INDEX_SUFFIX),
                    &b.index,
                    &mut OnDisk::default(),
                    false,
                )?;
                b.index
            }
        };
        let ix = Arc::new(ix);
        *guard = Some(ix.clone());
        Ok(IndexRef::Cached(ix))
    }

    /// Largest batch timestamp of segment `i` and the base offset of its batch (-1, -1 if none).
    fn segment_max_timestamp(&self, i: usize) -> Result<(i64, i64)> {
        if self.is_active(i) {
            let b = &self.active.builder;
            return Ok((b.max_timestamp, b.offset_of_max_timestamp));
        }
        let base = self.segments[i].base_offset;
        Ok(self
            .segment_index(i)?
            .last_time()
            .map_or((NO_TIMESTAMP, -1), |t| (t.ts, base + i64::from(t.rel))))
    }

    /// Finds, in segment `i`, the first batch whose last offset is >= `offset`.
    fn find_batch(&self, i: usize, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        if self.is_active(i) {
            if let Some(found) = self.active.recent_batch(offset) {
                return Ok(found);
            }
        }
        let seg = &self.segments[i];
        let start = self
            .segment_index(i)?
            .position_for(offset - seg.base_offset);
        let file = self.segment_file(i)?;
        let mut sc = FileScanner::new(&file, seg.size, 8 << 10);
        let mut pos = start;
        loop {
            match sc.header_at(pos)? {
                HeaderAt::End => return Ok(None),
                HeaderAt::Bad(reason) => {
                    return Err(StorageError::CorruptLog {
                        path: self.path(seg.base_offset, LOG_SUFFIX),
                        position: pos,
                        reason,
                    })
                }
                HeaderAt::Batch(h) => {
                    if h.last_offset() >= offset {
                        return Ok(Some((pos, h)));
                    }
                    pos += h.size() as u64;
                }
            }
        }
    }

    /// Log start offset: the first offset that may be read.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Log end offset: the offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Offset below which all data is known to be fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Number of segments (including the active one).
    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }

    /// The leader epoch cache of this partition.
    pub fn leader_epoch_cache(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Records that `epoch` starts at `start_offset` (e.g. on becoming leader, with the log end
    /// offset). Ignored if `epoch` is not newer than the latest.
    pub fn assign_leader_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        self.check_open()?;
        self.epochs.assign(epoch, start_offset)?;
        Ok(())
    }

    /// OffsetsForLeaderEpoch answer for `epoch` (see [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// Bumped by every truncation: what was read of the log before a change of generation
    /// may no longer be there.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Where the last compaction of this log ended: its first dirty offset (`None`: none
    /// did, or none since it was emptied).
    pub fn cleaner_offset(&self) -> Option<i64> {
        self.cleaner_offset
    }

    /// Sets [`Log::cleaner_offset`] (kept in `cleaner-offset-checkpoint` by the manager).
    pub fn set_cleaner_offset(&mut self, offset: Option<i64>) {
        self.cleaner_offset = offset;
    }

    /// Replaces the configuration; takes effect from the next append / roll / retention check.
    pub fn update_config(&mut self, config: LogConfig) {
        self.active.builder.interval = u64::from(config.index_interval_bytes);
        self.config = config;
    }

    /// Appends producer batches as the leader.
    ///
    /// All batches are validated first ([`batch::validate_client_batch`]); if any is invalid
    /// nothing is written. Offsets are then assigned from the log end offset: only BaseOffset
    /// and PartitionLeaderEpoch are rewritten (with LogAppendTime also MaxTimestamp, the
    /// timestamp-type bit and the CRC). The patched 61-byte headers and the untouched rest of
    /// each batch are written with vectored writes; `records` is never copied. An empty buffer
    /// appends nothing and returns offsets of -1.
    ///
    /// If a write fails after a roll split the append across segments, batches written before
    /// the failure stay in the log.
    pub fn append_as_leader(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_as_leader_with(records, leader_epoch, now_ms, true, true)
    }

    /// Appends batches a coordinator of this node writes on a producer's behalf, as the
    /// leader: transaction markers (control batches) and a transaction's offset commits
    /// (a producer id without sequences). Checked as [`batch::validate_coordinator_batch`]
    /// does; offsets assigned as for [`Log::append_as_leader`].
    pub fn append_from_coordinator(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_as_leader_with(records, leader_epoch, now_ms, true, false)
    }

    /// [`Log::append_as_leader`] that leaves a flush `log.flush.interval.messages` makes due
    /// to the caller ([`Log::flush_due`], [`Log::flush`]): a request appending to several
    /// partitions then syncs them all at once rather than one after another.
    pub fn append_as_leader_unflushed(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_as_leader_with(records, leader_epoch, now_ms, false, true)
    }

    fn append_as_leader_with(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
        now_ms: i64,
        flush_when_due: bool,
        from_client: bool,
    ) -> Result<AppendInfo> {
        self.check_open()?;
        let max_message_bytes = self.config.max_message_bytes as usize;
        let log_append = self.config.message_timestamp_type_log_append;
        let mut prepared = Vec::new();
        let mut start = 0usize;
        let mut next = self.log_end_offset();
        for b in batch::batches(records) {
            let b = b?;
            if from_client {
                batch::validate_client_batch(&b, max_message_bytes)?;
            } else {
                batch::validate_coordinator_batch(&b)?;
            }
            if !log_append {
                // The newest record bounds them all: MaxTimestamp decides, as each record
                // would.
                let newest = b.max_timestamp();
                let latest = now_ms.saturating_add(self.config.message_timestamp_after_max_ms);
                if newest > latest {
                    return Err(StorageError::InvalidTimestamp {
                        timestamp: newest,
                        earliest: now_ms
                            .saturating_sub(self.config.message_timestamp_before_max_ms),
                        latest,
                    });
                }
            }
            let mut header = b.header();
            let base = next;
            let last = base.checked_add(i64::from(b.last_offset_delta())).ok_or(
                StorageError::OffsetOverflow {
                    base_offset: base,
                    last_offset_delta: b.last_offset_delta(),
                },
            )?;
            header.patch_offset_and_epoch(base, leader_epoch);
            if log_append {
                header.set_log_append_time(now_ms, b.records_bytes());
            }
            prepared.push(Prepared {
                header: Some(header),
                start,
                size: b.size(),
                base,
                last,
                max_ts: header.max_timestamp(),
            });
            start += b.size();
            next = last + 1;
        }
        if records.len() as u64 > self.config.segment_limit() {
            return Err(StorageError::RecordListTooLarge {
                size: records.len(),
                segment_bytes: self.config.segment_bytes,
            });
        }
        if let Some(first) = prepared.first() {
            self.epochs.assign(leader_epoch, first.base)?;
        }
        let mut info = self.write_prepared(records, &prepared, now_ms, flush_when_due)?;
        if log_append && !prepared.is_empty() {
            info.log_append_time = now_ms;
        }
        Ok(info)
    }

    /// Appends batches that already carry offsets (replication). Checks framing, CRCs, and that
    /// offsets increase, starting at or after the log end offset (gaps are allowed). Batches are
    /// written byte for byte. The leader epoch cache learns each batch's epoch.
    pub fn append_batches_with_offsets(&mut self, records: &Bytes) -> Result<AppendInfo> {
        self.check_open()?;
        let mut prepared = Vec::new();
        let mut start = 0usize;
        let mut expected_min = self.log_end_offset();
        let mut epochs = Vec::new();
        for b in batch::batches(records) {
            let b = b?;
            b.verify_crc()?;
            let base = b.base_offset();
            let delta = b.last_offset_delta();
            if base < expected_min {
                return Err(StorageError::UnexpectedAppendOffset {
                    base_offset: base,
                    expected_min,
                });
            }
            let last = base
                .checked_add(i64::from(delta))
                .filter(|_| delta >= 0)
                .ok_or(StorageError::OffsetOverflow {
                    base_offset: base,
                    last_offset_delta: delta,
                })?;
            let ple = b.partition_leader_epoch();
            if ple >= 0 && epochs.last().is_none_or(|(e, _)| *e != ple) {
                epochs.push((ple, base));
            }
            prepared.push(Prepared {
                header: None,
                start,
                size: b.size(),
                base,
                last,
                max_ts: b.max_timestamp(),
            });
            start += b.size();
            expected_min = last + 1;
        }
        for (epoch, offset) in epochs {
            self.epochs.assign(epoch, offset)?;
        }
        self.write_prepared(records, &prepared, system_now_ms(), true)
    }

    fn should_roll(&self, size: u64, last: i64, now_ms: i64) -> bool {
        let seg = self.active_segment();
        let rel_overflow = last - seg.base_offset > i64::from(i32::MAX);
        if seg.size == 0 {
            return rel_overflow;
        }
        let too_big = seg.size + size > self.config.segment_limit();
        let too_old = self
            .active
            .first_append_ms
            .is_some_and(|t| now_ms.saturating_sub(t) > self.config.segment_ms);
        too_big || too_old || rel_overflow
    }

    fn write_prepared(
        &mut self,
        src: &Bytes,
        items: &[Prepared],
        now_ms: i64,
        flush_when_due: bool,
    ) -> Result<AppendInfo> {
        let mut info = AppendInfo {
            first_offset: -1,
            last_offset: -1,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            num_batches: 0,
            bytes: 0,
        };
        let limit = self.config.segment_limit();
        let mut i = 0;
        while i < items.len() {
            let it = &items[i];
            if self.should_roll(it.size as u64, it.last, now_ms) {
                self.roll(it.base)?;
            }
            let seg = self.active_segment();
            let mut end = i + 1;
            let mut group_bytes = it.size as u64;
            while end < items.len() {
                let n = &items[end];
                if seg.size + group_bytes + n.size as u64 > limit
                    || n.last - seg.base_offset > i64::from(i32::MAX)
                {
                    break;
                }
                group_bytes += n.size as u64;
                end += 1;
            }
            self.write_group(src, &items[i..end], group_bytes, now_ms)?;
            i = end;
        }
        for it in items {
            if info.first_offset < 0 {
                info.first_offset = it.base;
            }
            info.last_offset = it.last;
            if it.max_ts > info.max_timestamp {
                info.max_timestamp = it.max_ts;
                info.offset_of_max_timestamp = it.base;
            }
            info.num_batches += 1;
            info.bytes += it.size;
        }
        if flush_when_due && self.flush_due() {
            self.flush()?;
        }
        Ok(info)
    }

    /// Whether `log.flush.interval.messages` offsets are written but not flushed.
    pub fn flush_due(&self) -> bool {
        let unflushed = u64::try_from(self.log_end_offset() - self.recovery_point).unwrap_or(0);
        unflushed > 0 && unflushed >= self.config.flush_interval_messages
    }

    /// How far the high watermark may go: the log end, but only the flushed offset while a
    /// flush is due, so that records which must be synced before they are acknowledged are
    /// not visible before that either (another append may land between an appender's
    /// flush and its high watermark update).
    pub fn high_watermark_limit(&self) -> i64 {
        if self.flush_due() {
            self.recovery_point
        } else {
            self.log_end_offset()
        }
    }

    /// Hands what the active segment holds up to `end` to write-behind
    /// ([`write_behind::hand_over`]) once that is [`write_behind::MIN_RANGE`] or more.
    fn write_behind(&mut self, end: u64) {
        let a = &mut self.active;
        let to = write_behind::range_end(end);
        if to < a.written_behind.saturating_add(write_behind::MIN_RANGE) {
            return;
        }
        if write_behind::hand_over(&a.file, a.written_behind, to - a.written_behind) {
            a.written_behind = to;
        }
    }

    /// Before `len` bytes are appended at `start` of the active segment: unless the file
    /// already reaches past them, extends it with zeros to a multiple of [`FILL_CHUNK`] at
    /// least that far beyond them (within `segment.bytes`). The appends then overwrite
    /// page-cache pages that exist already, which costs the kernel a fraction of adding new
    /// ones one small write at a time (each write would allocate its pages and reserve their
    /// blocks). Only for appends smaller than two chunks (larger ones add their pages
    /// efficiently), once the segment holds [`FILL_AFTER`], and only while no flush setting
    /// is set: a flush would write the zeros to the device first. The zeros are never data:
    /// reads stop at the segment's size, a roll and a clean shutdown cut the file back to
    /// it, and recovery after a crash stops at them as at any torn tail. After a truncation
    /// no zeros go below the segment's old end (`fill_floor`), where a read handed out
    /// before it may still be sent from. Best effort: a failure (no space) leaves the
    /// append to extend the file itself.
    fn fill_ahead(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        if !self.config.fill_ahead
            || self.config.flush_interval_messages < i64::MAX as u64
            || self.config.flush_interval_ms < i64::MAX
            || end <= self.active.allocated
            || len >= 2 * FILL_CHUNK
            || start < FILL_AFTER
            || start < self.active.fill_floor
            // (The unit tests fill ahead whatever the machine's dirty data.)
            || (!cfg!(test) && write_behind::under_pressure())
        {
            return;
        }
        let from = self.active.allocated.max(start);
        let to = (end.div_ceil(FILL_CHUNK) + 1)
            .saturating_mul(FILL_CHUNK)
            .min(self.config.segment_limit());
        if to <= end {
            return;
        }
        let n = usize::try_from(to - from).unwrap_or(0);
        let mut slices: Vec<IoSlice<'_>> = (0..n.div_ceil(ZEROS.len()))
            .map(|k| IoSlice::new(&ZEROS[..(n - k * ZEROS.len()).min(ZEROS.len())]))
            .collect();
        match write_all_vectored_at(&self.active.file, &mut slices, from) {
            Ok(()) => self.active.allocated = to,
            Err(e) => {
                debug!(log = %self.dir.display(), error = %e, "could not fill ahead of appends");
                if self.active.file.set_len(self.active.allocated).is_err() {
                    self.active.allocated = file_len(&self.active.file).max(self.active.allocated);
                }
            }
        }
    }

    /// Cuts the active segment's file back to its data (see [`Log::fill_ahead`]).
    fn trim_active(&mut self) -> Result<()> {
        let size = self.active_segment().size;
        if self.active.allocated != size {
            self.active.file.set_len(size)?;
            self.active.allocated = size;
        }
        Ok(())
    }

    /// Writes `group` (`len` bytes in all) at the end of the active segment.
    fn write_group(
        &mut self,
        src: &Bytes,
        group: &[Prepared],
        len: u64,
        now_ms: i64,
    ) -> Result<()> {
        enum Piece {
            Header(usize),
            Src(usize, usize),
        }
        let mut pieces: Vec<Piece> = Vec::with_capacity(group.len() * 2);
        for (k, it) in group.iter().enumerate() {
            let (from, to) = match it.header {
                Some(_) => {
                    pieces.push(Piece::Header(k));
                    (it.start + HEADER_LEN, it.start + it.size)
                }
                None => (it.start, it.start + it.size),
            };
            match pieces.last_mut() {
                Some(Piece::Src(_, e)) if *e == from => *e = to,
                _ => pieces.push(Piece::Src(from, to)),
            }
        }
        let mut slices: Vec<IoSlice<'_>> = pieces
            .iter()
            .map(|p| match p {
                Piece::Header(k) => match &group[*k].header {
                    Some(h) => IoSlice::new(h.as_bytes()),
                    None => IoSlice::new(&[]),
                },
                Piece::Src(a, b) => IoSlice::new(&src[*a..*b]),
            })
            .collect();
        let seg_idx = self.segments.len() - 1;
        let start_pos = self.segments[seg_idx].size;
        self.fill_ahead(start_pos, len);
        if let Err(e) = write_all_vectored_at(&self.active.file, &mut slices, start_pos) {
            // Best effort: drop a partial write so the file matches our state.
            self.active.allocated = match self.active.file.set_len(start_pos) {
                Ok(()) => start_pos,
                Err(e2) => {
                    warn!(log = %self.dir.display(), error = %e2, "could not undo a partial write");
                    // What the file holds past the data is cut at the next roll or shutdown.
                    file_len(&self.active.file).max(start_pos)
                }
            };
            return Err(e.into());
        }
        self.active.allocated = self.active.allocated.max(start_pos + len);
        let mut pos = start_pos;
        for it in group {
            self.active
                .builder
                .on_batch(pos, it.base, it.last, it.max_ts, it.size as u64);
            let header = match it.header {
                Some(h) => Some(h),
                None => BatchHeader::from_slice(&src[it.start..it.start + it.size]).ok(),
            };
            match header {
                Some(h) => {
                    if self.active.recent.len() == RECENT_BATCHES {
                        self.active.recent.pop_front();
                    }
                    self.active.recent.push_back((pos, h));
                }
                // Not expected (batches were validated): the list must stay contiguous.
                None => self.active.recent.clear(),
            }
            pos += it.size as u64;
        }
        self.segments[seg_idx].size = pos;
        self.write_behind(pos);
        if let Some(last) = group.last() {
            self.active.next_offset = last.last + 1;
        }
        self.active.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Makes a new active segment starting at `new_base` (>= log end offset). The old active
    /// segment's indexes are finalized and written; its data is fsynced later (see
    /// [`Log::pending_segment_flush`] / [`Log::flush`]). An empty active segment is replaced.
    fn roll(&mut self, new_base: i64) -> Result<()> {
        let old = self.segments.len() - 1;
        let old_base = self.segments[old].base_offset;
        if self.segments[old].size == 0 {
            if old_base == new_base {
                return Ok(());
            }
            if self.segments.len() == 1 && self.log_start_offset == old_base {
                self.log_start_offset = new_base;
            }
            self.segments.pop();
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                remove_if_exists(&self.path(old_base, suffix))?;
            }
        } else {
            self.trim_active()?;
            self.active.builder.maybe_append_time();
            self.persist_active_index(false)?;
            let a = &mut self.active;
            let ix = std::mem::take(&mut a.builder.index);
            let seg = &mut self.segments[old];
            *seg.index.get_mut() = Some(Arc::new(ix));
            *seg.file.get_mut() = Some(a.file.clone());
            seg.unflushed = true;
        }
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(&self.path(new_base, suffix))?;
        }
        let file = open_segment_file(&self.path(new_base, LOG_SUFFIX))?;
        let next_offset = self.active.next_offset.max(new_base);
        self.segments.push(Segment::new(new_base, 0));
        self.active = Active {
            file: Arc::new(file),
            builder: IndexBuilder::new(new_base, u64::from(self.config.index_interval_bytes)),
            on_disk: OnDisk::default(),
            next_offset,
            first_append_ms: None,
            recent: VecDeque::new(),
            written_behind: 0,
            allocated: 0,
            fill_floor: 0,
        };
        self.dir_dirty = true;
        debug!(log = %self.dir.display(), base = new_base, "rolled new segment");
        Ok(())
    }

    /// Starts a new active segment at the log end now, unless the active segment is
    /// empty. Used when everything before this point is about to be superseded.
    pub fn roll_now(&mut self) -> Result<()> {
        self.check_open()?;
        if self.active_segment().size == 0 {
            return Ok(());
        }
        let end = self.log_end_offset();
        self.roll(end)
    }

    /// Rolls the active segment if it is non-empty and older than `segment_ms`.
    pub fn maybe_roll(&mut self, now_ms: i64) -> Result<()> {
        self.check_open()?;
        let too_old = self.active_segment().size > 0
            && self
                .active
                .first_append_ms
                .is_some_and(|t| now_ms.saturating_sub(t) > self.config.segment_ms);
        if too_old {
            self.roll(self.log_end_offset())?;
        }
        Ok(())
    }

    /// Reads whole batches starting with the one that contains `start_offset`.
    ///
    /// Stops before any batch whose base offset is >= `max_offset_exclusive` (the high
    /// watermark) and keeps the total at most `max_bytes`, except that with `min_one_batch` a
    /// first batch larger than `max_bytes` is returned alone. `start_offset` below the log start
    /// or above the log end is [`StorageError::OffsetOutOfRange`]; at the log end the result is
    /// empty. Reads may span segments; each segment's data is read with one positional read.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult> {
        let leo = self.log_end_offset();
        let mut result = ReadResult {
            records: Bytes::new(),
            num_batches: 0,
            next_offset: start_offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: leo,
        };
        let Some(ReadStart {
            mut seg_i,
            mut pos,
            limit,
            budget,
        }) = self.read_start(start_offset, max_bytes, max_offset_exclusive, min_one_batch)?
        else {
            return Ok(result);
        };
        let mut out: Vec<u8> = Vec::new();
        'segments: while seg_i < self.segments.len() {
            let seg = &self.segments[seg_i];
            let avail = seg.size.saturating_sub(pos);
            let want = usize::try_from(avail)
                .unwrap_or(usize::MAX)
                .min(budget - out.len());
            if want > 0 {
                let file = self.segment_file(seg_i)?;
                let chunk_start = out.len();
                out.resize(chunk_start + want, 0);
                file.read_exact_at(&mut out[chunk_start..], pos)?;
                let mut p = chunk_start;
                while p < out.len() {
                    match RecordBatch::parse(&out[p..]) {
                        Ok((b, _)) => {
                            if b.base_offset() >= limit {
                                out.truncate(p);
                                break 'segments;
                            }
                            result.next_offset = b.next_offset();
                            result.num_batches += 1;
                            p += b.size();
                        }
                        Err(StorageError::TruncatedBatch { .. }) if (want as u64) < avail => {
                            // Budget reached in the middle of a batch.
                            out.truncate(p);
                            break 'segments;
                        }
                        Err(e) => {
                            if p == 0 {
                                return Err(StorageError::CorruptLog {
                                    path: self.path(seg.base_offset, LOG_SUFFIX),
                                    position: pos + (p - chunk_start) as u64,
                                    reason: e.to_string(),
                                });
                            }
                            out.truncate(p);
                            break 'segments;
                        }
                    }
                }
            }
            if out.len() >= budget {
                break;
            }
            seg_i += 1;
            pos = 0;
        }
        result.records = Bytes::from(out);
        Ok(result)
    }

    /// The same batches as [`Log::read`] would return, as ranges of segment files instead of
    /// bytes: only batch headers near the start and the end are read (the offset index finds
    /// batch boundaries), so a fetch can hand the ranges to the kernel (sendfile) without the
    /// records ever being copied into memory. Batches are not validated here; recovery did that.
    pub fn read_slices(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_batch: bool,
    ) -> Result<Vec<FileSlice>> {
        let mut slices = Vec::new();
        let Some(ReadStart {
            mut seg_i,
            mut pos,
            limit,
            budget,
        }) = self.read_start(start_offset, max_bytes, max_offset_exclusive, min_one_batch)?
        else {
            return Ok(slices);
        };
        let budget = budget as u64;
        let mut taken = 0u64;
        while seg_i < self.segments.len() {
            let seg = &self.segments[seg_i];
            // Where this segment's readable data ends: before the first batch starting at or
            // past `limit` (a batch straddling it is included, as `read` does).
            let limit_here = self
                .segments
                .get(seg_i + 1)
                .is_none_or(|next| limit < next.base_offset);
            let at_log_end = self.is_active(seg_i) && limit >= self.active.next_offset;
            let end = if limit_here && !at_log_end {
                match self.find_batch(seg_i, limit)? {
                    Some((p, h)) if h.base_offset() < limit => p + h.size() as u64,
                    Some((p, _)) => p,
                    None => seg.size,
                }
            } else {
                seg.size
            };
            let avail = end.saturating_sub(pos);
            let room = budget - taken;
            if avail > room {
                let cut = self.boundary_at_or_before(seg_i, pos, pos + room)?;
                if cut > pos {
                    slices.push(FileSlice {
                        file: self.segment_file(seg_i)?,
                        position: pos,
                        len: cut - pos,
                    });
                }
                break;
            }
            if avail > 0 {
                slices.push(FileSlice {
                    file: self.segment_file(seg_i)?,
                    position: pos,
                    len: avail,
                });
                taken += avail;
            }
            if limit_here || taken >= budget {
                break;
            }
            seg_i += 1;
            pos = 0;
        }
        Ok(slices)
    }

    /// Where a read from `start_offset` begins (shared by [`Log::read`] and
    /// [`Log::read_slices`]): the segment and position of the batch holding it, the offset
    /// limit, and the byte budget (the first batch alone when it exceeds `max_bytes` and
    /// `min_one_batch` is set). `None` when nothing is to be read; an offset outside the
    /// log is [`StorageError::OffsetOutOfRange`].
    fn read_start(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_batch: bool,
    ) -> Result<Option<ReadStart>> {
        self.check_open()?;
        let leo = self.log_end_offset();
        if start_offset < self.log_start_offset || start_offset > leo {
            return Err(StorageError::OffsetOutOfRange {
                offset: start_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        let limit = max_offset_exclusive.min(leo);
        if start_offset >= limit {
            return Ok(None);
        }
        let mut seg_i = self.segment_for(start_offset);
        let (pos, first) = loop {
            if let Some(found) = self.find_batch(seg_i, start_offset)? {
                break found;
            }
            seg_i += 1;
            if seg_i >= self.segments.len() {
                return Ok(None);
            }
        };
        if first.base_offset() >= limit {
            return Ok(None);
        }
        let budget = if first.size() > max_bytes {
            if !min_one_batch {
                return Ok(None);
            }
            first.size()
        } else {
            max_bytes
        };
        Ok(Some(ReadStart {
            seg_i,
            pos,
            limit,
            budget,
        }))
    }

    /// The last batch boundary of segment `i` in `[from, target]`, `from` being one: starts at
    /// the offset index's last entry at or before `target` and walks batch headers from there.
    fn boundary_at_or_before(&self, i: usize, from: u64, target: u64) -> Result<u64> {
        let indexed = {
            let ix = self.segment_index(i)?;
            let n = ix.offsets.partition_point(|e| e.pos as u64 <= target);
            n.checked_sub(1).map_or(0, |n| ix.offsets[n].pos as u64)
        };
        let file = self.segment_file(i)?;
        let mut sc = FileScanner::new(&file, self.segments[i].size, 1024);
        let mut pos = indexed.max(from);
        loop {
            match sc.header_at(pos)? {
                HeaderAt::Batch(h) if pos + h.size() as u64 <= target => pos += h.size() as u64,
                _ => return Ok(pos),
            }
        }
    }

    /// ListOffsets by timestamp: the first batch whose MaxTimestamp is at least `timestamp`, as
    /// `(offset, batch MaxTimestamp)`, or `None` if no batch qualifies.
    ///
    /// Kafka answers with the first *record* whose timestamp reaches the target; records are
    /// never decoded here, so the answer is the base offset of the first qualifying batch
    /// (raised to the log start offset if the batch straddles it) and that batch's
    /// MaxTimestamp. Uses the segments' largest timestamps, then the time index, then a short
    /// scan of batch headers.
    pub fn fetch_offset_by_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        self.check_open()?;
        let first = self.segment_for(self.log_start_offset);
        for i in first..self.segments.len() {
            let seg = &self.segments[i];
            if seg.size == 0 || self.segment_max_timestamp(i)?.0 < timestamp {
                continue;
            }
            let ix = self.segment_index(i)?;
            let start = ix
                .rel_offset_before_time(timestamp)
                .map_or(0, |rel| ix.position_for(i64::from(rel)));
            drop(ix);
            let file = self.segment_file(i)?;
            let mut sc = FileScanner::new(&file, seg.size, 8 << 10);
            let mut pos = start;
            while let HeaderAt::Batch(h) = sc.header_at(pos)? {
                if h.max_timestamp() >= timestamp && h.last_offset() >= self.log_start_offset {
                    return Ok(Some((
                        h.base_offset().max(self.log_start_offset),
                        h.max_timestamp(),
                    )));
                }
                pos += h.size() as u64;
            }
        }
        Ok(None)
    }

    /// For ListOffsets MAX_TIMESTAMP: the largest batch MaxTimestamp in the log and the base
    /// offset of the first batch carrying it; `None` if no batch has a timestamp. Loads (and
    /// caches) the time indexes of inactive segments.
    pub fn max_timestamp_and_offset(&self) -> Result<Option<(i64, i64)>> {
        self.check_open()?;
        let mut best: Option<(i64, i64)> = None;
        for i in 0..self.segments.len() {
            let (ts, off) = self.segment_max_timestamp(i)?;
            if ts > NO_TIMESTAMP && best.is_none_or(|(b, _)| ts > b) {
                best = Some((ts, off));
            }
        }
        Ok(best)
    }

    fn delete_segment_files(&self, base: i64) -> Result<()> {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(&self.path(base, suffix))?;
        }
        Ok(())
    }

    /// Deletes the oldest segment (never the active one) and advances the log start offset.
    fn delete_oldest_segment(&mut self) -> Result<()> {
        assert!(
            self.segments.len() > 1,
            "the active segment is never deleted"
        );
        let seg = self.segments.remove(0);
        debug!(log = %self.dir.display(), base = seg.base_offset, "deleting segment");
        self.delete_segment_files(seg.base_offset)?;
        self.dir_dirty = true;
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
        Ok(())
    }

    /// Deletes segments that lie wholly below the log start offset, rolling first if the log
    /// start offset has reached the log end.
    fn delete_segments_below_log_start(&mut self) -> Result<usize> {
        if self.log_start_offset >= self.log_end_offset() && self.active_segment().size > 0 {
            self.roll(self.log_end_offset())?;
        }
        let mut deleted = 0;
        while self.segments.len() > 1 && self.segments[1].base_offset <= self.log_start_offset {
            self.delete_oldest_segment()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// DeleteRecords: moves the log start offset up to `offset` and deletes segments wholly
    /// below it. `offset` above the log end is [`StorageError::OffsetOutOfRange`]; an offset at
    /// or below the current log start changes nothing. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        self.check_open()?;
        let leo = self.log_end_offset();
        if offset > leo || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.delete_segments_below_log_start()?;
            self.epochs.truncate_from_start(self.log_start_offset)?;
        }
        Ok(self.log_start_offset)
    }

    fn segment_largest_timestamp(&self, i: usize) -> Result<i64> {
        let (ts, _) = self.segment_max_timestamp(i)?;
        if ts >= 0 {
            return Ok(ts);
        }
        file_time_ms(&self.path(self.segments[i].base_offset, LOG_SUFFIX))
    }

    /// Applies retention: deletes inactive segments wholly below the log start offset, then the
    /// oldest inactive segments whose largest timestamp (file mtime if they have none) is older
    /// than `now_ms - retention_ms`, then the oldest inactive segments while the log minus that
    /// segment is still >= `retention_bytes`. Advances the log start offset. Returns the number
    /// of deleted segments.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize> {
        self.check_open()?;
        let mut deleted = self.delete_segments_below_log_start()?;
        if self.config.retention_ms >= 0 {
            while self.segments.len() > 1 {
                let ts = self.segment_largest_timestamp(0)?;
                if now_ms.saturating_sub(ts) > self.config.retention_ms {
                    self.delete_oldest_segment()?;
                    deleted += 1;
                } else {
                    break;
                }
            }
        }
        if self.config.retention_bytes >= 0 {
            let limit = self.config.retention_bytes as u64;
            let mut size = self.size_bytes();
            while self.segments.len() > 1 && size - self.segments[0].size >= limit {
                size -= self.segments[0].size;
                self.delete_oldest_segment()?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            self.epochs.truncate_from_start(self.log_start_offset)?;
        }
        Ok(deleted)
    }

    /// The inactive segments wholly below `end` (the active one never is), oldest first,
    /// with what [`crate::clean`] needs to read them without the lock.
    pub(crate) fn clean_view(&self, end: i64) -> Result<crate::clean::CleanView> {
        self.check_open()?;
        let mut segments = Vec::new();
        for i in 0..self.segments.len().saturating_sub(1) {
            let next_base = self.segments[i + 1].base_offset;
            if next_base > end {
                break;
            }
            segments.push(crate::clean::SegmentView {
                base: self.segments[i].base_offset,
                size: self.segments[i].size,
                next_base,
                file: self.segment_file(i)?,
            });
        }
        Ok(crate::clean::CleanView {
            segments,
            generation: self.generation,
            segment_limit: self.config.segment_limit(),
            index_interval: u64::from(self.config.index_interval_bytes),
            dir: self.dir.clone(),
        })
    }

    /// The base offset of the first segment with a record newer than `ts` (the log end if
    /// none): where `min.compaction.lag.ms` stops a cleaning.
    pub fn first_offset_newer_than(&self, ts: i64) -> i64 {
        for i in 0..self.segments.len() {
            match self.segment_largest_timestamp(i) {
                Ok(t) if t <= ts => {}
                _ => return self.segments[i].base_offset,
            }
        }
        self.log_end_offset()
    }

    /// The MaxTimestamp of the first batch holding `offset` or a later one (for
    /// `max.compaction.lag.ms`).
    pub fn first_timestamp_from(&self, offset: i64) -> Option<i64> {
        (self.segment_for(offset)..self.segments.len())
            .find_map(|i| self.find_batch(i, offset).ok().flatten())
            .map(|(_, h)| h.max_timestamp())
    }

    /// Whether the log was truncated (or emptied) since `generation` was read.
    pub(crate) fn generation_changed(&self, generation: u64) -> bool {
        self.generation != generation
    }

    /// Bytes of the inactive segments wholly below `first_dirty`, and of those from there
    /// to `end`: a compacted log's dirty ratio is `dirty / (clean + dirty)`.
    pub fn cleanable_bytes(&self, first_dirty: i64, end: i64) -> (u64, u64) {
        let (mut clean, mut dirty) = (0, 0);
        for i in 0..self.segments.len().saturating_sub(1) {
            let next_base = self.segments[i + 1].base_offset;
            if next_base > end {
                break;
            }
            if next_base <= first_dirty {
                clean += self.segments[i].size;
            } else {
                dirty += self.segments[i].size;
            }
        }
        (clean, dirty)
    }

    /// Replaces the segments of `group` with its cleaned files, if the log still holds them
    /// as they were when the cleaning started (same generation, bases and sizes, none
    /// active); `false` when it does not (nothing changed then).
    ///
    /// The replacement survives a crash at any point: `cleaner-swap` (the first base offset
    /// and the next segment's) is written durably first; then the other replaced segments'
    /// files are deleted, and the cleaned files renamed over the first one's (indexes first,
    /// data last); then `cleaner-swap` is removed. [`Log::open`] finishes a replacement it
    /// finds `cleaner-swap` for.
    pub(crate) fn install_cleaned(&mut self, generation: u64, group: CleanedGroup) -> Result<bool> {
        self.check_open()?;
        let Some(&(first, _)) = group.old.first() else {
            return Ok(false);
        };
        let Some(at) = self.segments.iter().position(|s| s.base_offset == first) else {
            return Ok(false);
        };
        let n = group.old.len();
        let unchanged = generation == self.generation
            && at + n < self.segments.len()
            && self.segments[at + n].base_offset == group.next_base
            && self.segments[at..at + n]
                .iter()
                .zip(&group.old)
                .all(|(s, &(base, size))| s.base_offset == base && s.size == size);
        if !unchanged {
            return Ok(false);
        }
        let swapped = crate::checkpoint::write_atomically(
            &self.dir.join(CLEANER_SWAP),
            format!("{} {}\n", first, group.next_base).as_bytes(),
        )
        .and_then(|()| finish_swap(&self.dir, first, group.next_base));
        if let Err(e) = swapped {
            // Files may be half replaced: serve nothing more until a restart finishes the
            // replacement (`cleaner-swap`) or drops it (no `cleaner-swap` yet).
            self.fail(&e);
            return Err(e);
        }
        let mut seg = Segment::new(first, group.size);
        *seg.index.get_mut() = Some(Arc::new(group.index));
        self.segments.splice(at..at + n, [seg]);
        Ok(true)
    }

    /// Removes every segment and starts an empty log at `offset`.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        self.generation += 1;
        let old: Vec<i64> = self.segments.iter().map(|s| s.base_offset).collect();
        for base in old {
            self.delete_segment_files(base)?;
        }
        let file = open_segment_file(&self.path(offset, LOG_SUFFIX))?;
        self.segments = vec![Segment::new(offset, 0)];
        self.active = Active {
            file: Arc::new(file),
            builder: IndexBuilder::new(offset, u64::from(self.config.index_interval_bytes)),
            on_disk: OnDisk::default(),
            next_offset: offset,
            first_append_ms: None,
            recent: VecDeque::new(),
            written_behind: 0,
            allocated: 0,
            fill_floor: 0,
        };
        self.log_start_offset = offset;
        self.recovery_point = self.recovery_point.min(offset);
        self.cleaner_offset = None;
        self.dir_dirty = true;
        self.epochs.clear()?;
        Ok(())
    }

    /// Removes everything at and after `offset` (replica truncation). The whole batch
    /// containing `offset` is removed, so the log end offset becomes that batch's base offset
    /// (<= `offset`), or `offset` when no batch holds it; a no-op if `offset` >= log end. Truncating below the first segment empties
    /// the log and restarts it at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        self.check_open()?;
        if offset < 0 {
            return Err(StorageError::InvalidArgument(format!(
                "cannot truncate to negative offset {offset}"
            )));
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset <= self.segments[0].base_offset || offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        self.generation += 1;
        // Drop whole segments at or after `offset`.
        let keep = self.segments.partition_point(|s| s.base_offset < offset);
        let dropped_active = keep < self.segments.len();
        while self.segments.len() > keep {
            if let Some(seg) = self.segments.pop() {
                self.delete_segment_files(seg.base_offset)?;
                self.dir_dirty = true;
            }
        }
        let interval = u64::from(self.config.index_interval_bytes);
        let last = self.segments.len() - 1;
        if dropped_active {
            // The last remaining segment becomes active.
            let ix = self.take_last_segment_index()?.unwrap_or_default();
            let seg = &mut self.segments[last];
            let file = open_segment_file(&segment_path(&self.dir, seg.base_offset, LOG_SUFFIX))?;
            let (b, res) = scan_tail(&file, seg.base_offset, seg.size, ix, interval, false)?;
            *seg.file.get_mut() = None;
            *seg.index.get_mut() = None;
            seg.unflushed = false;
            self.active = Active {
                file: Arc::new(file),
                builder: b,
                on_disk: OnDisk::default(),
                next_offset: res.next_offset.unwrap_or(seg.base_offset),
                first_append_ms: (seg.size > 0).then(system_now_ms),
                recent: VecDeque::new(),
                written_behind: write_behind::range_end(seg.size),
                allocated: seg.size,
                fill_floor: 0,
            };
        }
        // Truncate inside the (new) active segment.
        let found = self.find_batch(last, offset)?;
        let straddled = found.is_some_and(|(_, h)| h.base_offset() < offset);
        if let Some((pos, h)) = found {
            let base = self.segments[last].base_offset;
            self.active.recent.clear();
            self.active.written_behind = self.active.written_behind.min(pos);
            self.active.fill_floor = self.segments[last].size;
            self.active.file.set_len(pos)?;
            self.active.allocated = pos;
            self.segments[last].size = pos;
            let mut ix = std::mem::take(&mut self.active.builder.index);
            ix.truncate(pos, h.base_offset() - base);
            let file = self.active.file.clone();
            let (b, res) = scan_tail(&file, base, pos, ix, interval, false)?;
            self.active.builder = b;
            self.active.on_disk.clamp(&self.active.builder.index);
            self.active.next_offset = res.next_offset.unwrap_or(base).max(base);
            if pos == 0 {
                self.active.first_append_ms = None;
            }
        }
        if !straddled {
            // Nothing below `offset` was removed: where it falls in a gap (compaction left
            // one, or an earlier truncation into one), the log ends at `offset` all the
            // same, as Kafka's does.
            self.active.next_offset = offset;
        }
        let leo = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(leo);
        self.log_start_offset = self.log_start_offset.min(leo);
        self.cleaner_offset = self.cleaner_offset.map(|o| o.min(leo));
        self.epochs.truncate_from_end(leo)?;
        Ok(())
    }

    /// The index of the last segment while it is being made active again: taken from its
    /// cache or loaded from its files; `None` if the files are unusable (then it is rebuilt).
    fn take_last_segment_index(&mut self) -> Result<Option<SegmentIndex>> {
        let Some(seg) = self.segments.last_mut() else {
            return Ok(None);
        };
        if let Some(ix) = seg.index.get_mut().take() {
            return Ok(Some(Arc::unwrap_or_clone(ix)));
        }
        let file = File::open(segment_path(&self.dir, seg.base_offset, LOG_SUFFIX))?;
        Ok(load_index_files(
            &self.dir,
            seg.base_offset,
            seg.size,
            i64::from(i32::MAX),
            &file,
        )?
        .ok())
    }

    /// Collects the fsync work for rolled segments not yet flushed; `None` if there is none.
    pub fn pending_segment_flush(&self) -> Result<Option<PendingFlush>> {
        self.check_open()?;
        let p = self.rolled_unflushed()?;
        Ok((!p.bases.is_empty()).then_some(p))
    }

    /// The fsync work for the rolled segments not yet flushed, up to the active segment.
    fn rolled_unflushed(&self) -> Result<PendingFlush> {
        let mut p = PendingFlush {
            files: Vec::new(),
            index_paths: Vec::new(),
            bases: Vec::new(),
            up_to: self.active_segment().base_offset,
            generation: self.generation,
            active_base: None,
        };
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.unflushed && !self.is_active(i) {
                p.files.push(self.segment_file(i)?);
                p.index_paths.push(self.path(seg.base_offset, INDEX_SUFFIX));
                p.index_paths
                    .push(self.path(seg.base_offset, TIME_INDEX_SUFFIX));
                p.bases.push(seg.base_offset);
            }
        }
        Ok(p)
    }

    /// Collects the fsync work for everything written so far, so that the fsyncs can run
    /// without the log's lock while appends go on ([`PendingFlush::sync`], then
    /// [`Log::complete_segment_flush`] moves the recovery point to the log end as of now).
    /// What a flush does besides the fsyncs happens here: the leader-epoch checkpoint and the
    /// active segment's new index entries are written. `None` if nothing is unflushed.
    pub fn pending_flush(&mut self) -> Result<Option<PendingFlush>> {
        self.check_open()?;
        // Epochs first: the recovery point must not pass data whose epoch is not durable.
        let leo = self.log_end_offset();
        self.epochs.sync(leo)?;
        let mut p = self.rolled_unflushed()?;
        if p.bases.is_empty() && self.recovery_point >= leo && !self.dir_dirty {
            return Ok(None);
        }
        self.persist_active_index(false)?;
        p.up_to = leo;
        p.files.push(self.active.file.clone());
        p.active_base = Some(self.active_segment().base_offset);
        Ok(Some(p))
    }

    /// Writes the active segment's index entries not yet on disk (fsyncing them with
    /// `sync`).
    fn persist_active_index(&mut self, sync: bool) -> Result<()> {
        let base = self.active_segment().base_offset;
        let a = &mut self.active;
        index::persist(
            &segment_path(&self.dir, base, INDEX_SUFFIX),
            &segment_path(&self.dir, base, TIME_INDEX_SUFFIX),
            &a.builder.index,
            &mut a.on_disk,
            sync,
        )?;
        Ok(())
    }

    /// Completes a [`PendingFlush`] given the result of its [`PendingFlush::sync`]: advances
    /// the recovery point (ignored if the log was truncated meanwhile), or takes the log
    /// offline if the sync failed.
    pub fn complete_segment_flush(
        &mut self,
        pending: PendingFlush,
        synced: Result<()>,
    ) -> Result<()> {
        if let Err(e) = synced {
            self.fail(&e);
            return Err(e);
        }
        if pending.generation != self.generation || self.closed || self.failed.is_some() {
            return Ok(());
        }
        let r = self.sync_before_completing(&pending);
        if let Err(e) = &r {
            self.fail(e);
        }
        r?;
        for seg in &mut self.segments {
            if pending.bases.contains(&seg.base_offset) {
                seg.unflushed = false;
            }
        }
        let target = pending.up_to.min(self.log_end_offset());
        self.recovery_point = self.recovery_point.max(target);
        Ok(())
    }

    /// What must be durable besides the synced files before the recovery point passes them:
    /// the epochs of their data, the directory entries of new segments, and the indexes of
    /// a segment that was active when the flush was collected and has rolled since (the
    /// roll wrote them without fsync, and recovery trusts a segment's indexes below the
    /// recovery point).
    fn sync_before_completing(&mut self, pending: &PendingFlush) -> Result<()> {
        let target = pending.up_to.min(self.log_end_offset());
        self.epochs.sync(target)?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        if let Some(base) = pending.active_base {
            let rolled = base != self.active_segment().base_offset
                && self.segments.iter().any(|s| s.base_offset == base);
            if rolled {
                index::sync_path(&self.path(base, INDEX_SUFFIX))?;
                index::sync_path(&self.path(base, TIME_INDEX_SUFFIX))?;
            }
        }
        Ok(())
    }

    /// Fsyncs all data and the indexes of rolled segments, writes the active segment's new
    /// index entries, and moves the recovery point to the log end offset.
    ///
    /// The active segment's index files are written but not fsynced (that costs two more
    /// fsyncs per flush, which is per append under `flush.messages=1`): nothing depends on
    /// them surviving a power loss. An unclean start rebuilds the index of every segment from
    /// the one holding the recovery point, and the active segment is always one of them; a
    /// clean start validates the files and scans the data after their last entry, so lost
    /// entries only mean a longer scan and damaged ones a rebuild. A clean shutdown still
    /// fsyncs them.
    pub fn flush(&mut self) -> Result<()> {
        self.flush_with(false)
    }

    fn flush_with(&mut self, sync_active_index: bool) -> Result<()> {
        self.check_open()?;
        let r = self.flush_open(sync_active_index);
        if let Err(e) = &r {
            self.fail(e);
        }
        r
    }

    fn flush_open(&mut self, sync_active_index: bool) -> Result<()> {
        // Epochs first: the recovery point must not pass data whose epoch is not durable.
        let leo = self.log_end_offset();
        self.epochs.sync(leo)?;
        // Nothing written since the last flush: skip the fsyncs (an idle broker with many
        // partitions would otherwise pay three per partition at every checkpoint).
        let a = &self.active;
        let index_current = a.on_disk.offsets == a.builder.index.offsets.len()
            && a.on_disk.times == a.builder.index.times.len();
        if self.recovery_point == self.log_end_offset()
            && !self.dir_dirty
            && index_current
            && !(sync_active_index && a.on_disk.unsynced)
            && self.segments.iter().all(|s| !s.unflushed)
        {
            return Ok(());
        }
        for i in 0..self.segments.len() - 1 {
            if self.segments[i].unflushed {
                self.segment_file(i)?.sync_data()?;
                let base = self.segments[i].base_offset;
                index::sync_path(&self.path(base, INDEX_SUFFIX))?;
                index::sync_path(&self.path(base, TIME_INDEX_SUFFIX))?;
                self.segments[i].unflushed = false;
            }
        }
        self.persist_active_index(sync_active_index)?;
        self.active.file.sync_data()?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        self.recovery_point = self.log_end_offset();
        Ok(())
    }

    /// Flushes if `flush_interval_messages` offsets are unflushed or the last flush is older
    /// than `flush_interval_ms`.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<()> {
        self.check_open()?;
        let unflushed = u64::try_from(self.log_end_offset() - self.recovery_point).unwrap_or(0);
        let due_by_count = unflushed > 0 && unflushed >= self.config.flush_interval_messages;
        let due_by_time =
            now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms;
        if due_by_count || due_by_time {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Drops cached file handles and indexes of inactive segments (they are reopened on
    /// demand). Segments with a pending flush keep their handle.
    pub fn release_resources(&self) {
        for (i, seg) in self.segments.iter().enumerate() {
            if !self.is_active(i) && !seg.unflushed {
                *seg.file.lock() = None;
                *seg.index.lock() = None;
            }
        }
    }

    /// Closes the log in place (for logs shared behind a lock): writes the final time index
    /// entry and the indexes, fsyncs everything. Further operations fail with
    /// [`StorageError::LogClosed`].
    pub fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.trim_active()?;
        self.active.builder.maybe_append_time();
        self.flush_with(true)?;
        self.closed = true;
        Ok(())
    }

    /// Flushes and closes the log, keeping its files.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    /// Removes the log directory and everything in it.
    pub fn delete(mut self) -> Result<()> {
        self.delete_in_place()
    }

    /// Marks the log closed and removes its directory (for logs shared behind a lock).
    pub fn delete_in_place(&mut self) -> Result<()> {
        self.closed = true;
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Renames the partition directory (e.g. to a `-delete` name before removal).
    pub fn rename_dir(&mut self, new_dir: &Path) -> Result<()> {
        fs::rename(&self.dir, new_dir)?;
        self.dir = new_dir.to_path_buf();
        self.epochs.set_path(new_dir.join(LEADER_EPOCH_CHECKPOINT));
        Ok(())
    }
}
