//! Write-behind: starting the writeback of active segments as they fill.
//!
//! Left to the kernel, written data piles up until `vm.dirty_background_ratio` of memory is
//! dirty (or ages past `vm.dirty_expire_centisecs`), and then writeback of gigabytes at once
//! holds each file's block allocation while appends to it wait (tens to hundreds of
//! milliseconds on ext4). Here each range a segment fills is handed to one thread, which
//! starts its writeback (`sync_file_range`, not waiting) once the system's dirty data is half
//! of what starts the kernel's: dirty data then stays below that, and writeback is steady.
//! Below that level (a burst) ranges are left to the kernel. Best effort, and no flush:
//! durability comes from the log's flushes alone.

use std::fs::{self, File};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use tracing::warn;

/// A segment is handed over in ranges of at least this much.
pub(crate) const MIN_RANGE: u64 = 1 << 20;
/// Ranges end on a page boundary (the last page is still filling): a multiple of every page
/// size Linux uses.
const ALIGN: u64 = 64 << 10;
/// Ranges waiting for the thread; beyond this an append does not wait, and its range is
/// left to the next one (which then covers it).
const QUEUE: usize = 1024;
/// How often the thread reads the system's dirty data.
const DIRTY_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Where a range handed over from a segment of `size` bytes may end.
pub(crate) fn range_end(size: u64) -> u64 {
    size & !(ALIGN - 1)
}

/// Hands `len` bytes of `file` from `offset` to the write-behind thread; false when its
/// queue is full (or it could not start). The file is not kept open for it: a segment
/// deleted meanwhile is skipped.
pub(crate) fn hand_over(file: &Arc<File>, offset: u64, len: u64) -> bool {
    queue()
        .try_send((Arc::downgrade(file), offset, len))
        .is_ok()
}

type Range = (Weak<File>, u64, u64);

/// Whether write-behind last found the system's dirty data high (it then writes ranges
/// back): appends are then paced by writeback, not by adding pages to the page cache.
static PRESSURE: AtomicBool = AtomicBool::new(false);

/// Whether write-behind is writing ranges back (the dirty data it last read was high).
pub(crate) fn under_pressure() -> bool {
    PRESSURE.load(Ordering::Relaxed)
}

fn queue() -> &'static SyncSender<Range> {
    static QUEUE_TX: OnceLock<SyncSender<Range>> = OnceLock::new();
    QUEUE_TX.get_or_init(|| {
        let (tx, rx) = sync_channel::<Range>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("write-behind".into())
            .spawn(move || {
                let mut pressure = DirtyPressure::default();
                for (file, offset, len) in rx {
                    if let Some(file) = file.upgrade().filter(|_| pressure.high()) {
                        start_writeback(&file, offset, len);
                    }
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "no write-behind thread; the kernel alone writes segments back");
        }
        tx
    })
}

/// Whether the system holds enough dirty data for write-behind to act, read from `/proc`
/// at most every [`DIRTY_CHECK_INTERVAL`]; where it cannot be read, write-behind stays off.
#[derive(Default)]
struct DirtyPressure {
    checked: Option<Instant>,
    high: bool,
}

impl DirtyPressure {
    fn high(&mut self) -> bool {
        if self
            .checked
            .is_none_or(|t| t.elapsed() >= DIRTY_CHECK_INTERVAL)
        {
            self.checked = Some(Instant::now());
            self.high = dirty_above_half_background().unwrap_or(false);
            PRESSURE.store(self.high, Ordering::Relaxed);
        }
        self.high
    }
}

/// Whether dirty and under-writeback data is at least half of what starts the kernel's
/// background writeback: `vm.dirty_background_bytes`, or `vm.dirty_background_ratio` of
/// `MemAvailable` (standing for the kernel's dirtyable memory; a container's own dirty
/// limits are not seen).
fn dirty_above_half_background() -> Option<bool> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let dirty = kib("Dirty:")?
        .saturating_add(kib("Writeback:")?)
        .saturating_mul(1024);
    let read = |name: &str| -> Option<u64> {
        fs::read_to_string(format!("/proc/sys/vm/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let threshold = match read("dirty_background_bytes")? {
        0 => (kib("MemAvailable:")?.saturating_mul(1024) / 100)
            .saturating_mul(read("dirty_background_ratio")?),
        bytes => bytes,
    };
    Some(dirty >= threshold / 2)
}

/// Starts writing `len` bytes of `file` from `offset` back to the disk, without waiting for
/// it (`sync_file_range` with `SYNC_FILE_RANGE_WRITE` only, which leaves any write error for
/// the log's next fsync to see).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: a system call on a descriptor that `file` keeps open, with integer arguments
    // and no memory passed.
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Elsewhere the kernel alone writes segments back.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}
