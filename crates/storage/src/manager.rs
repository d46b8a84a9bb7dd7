//! The log manager: all partition logs of one broker, spread over its log dirs.
//!
//! Each log dir holds partition directories `<topic>-<partition>`, the checkpoint files
//! `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
//! `cleaner-offset-checkpoint` (compacted logs only), and, after a clean
//! shutdown, the marker `.kafka_cleanshutdown` (removed once the logs are open again).
//!
//! Locking: the map of logs is behind a `parking_lot::RwLock`; each log is a [`SharedLog`]
//! (`Arc<parking_lot::RwLock<Log>>`). Periodic passes snapshot the map first and then lock one
//! log at a time, so they never hold the map lock while doing I/O on a log.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tracing::{info, warn};

use crate::checkpoint::{
    read_offsets, sync_dir, write_atomically, write_offsets, TopicPartition,
    CLEANER_OFFSET_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
};
use crate::error::{Result, StorageError};
use crate::log::{Log, LogConfig};

/// Name of the clean-shutdown marker file in each log dir.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Topic of the KRaft metadata log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Suffix of partition directories scheduled for deletion.
pub const DELETE_DIR_SUFFIX: &str = "-delete";

/// A log shared between threads.
pub type SharedLog = Arc<RwLock<Log>>;

/// What the manager found at startup for a partition it did not open (the metadata log when
/// asked to skip it), so its owner can open it with [`Log::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// The partition directory.
    pub dir: PathBuf,
    /// Recovery point from the checkpoint (0 if absent).
    pub recovery_point: i64,
    /// Log start offset from the checkpoint (0 if absent).
    pub log_start_offset: i64,
    /// Whether the log dir had a clean-shutdown marker.
    pub clean_shutdown: bool,
}

#[derive(Debug)]
struct Managed {
    dir_index: usize,
    slot: Slot,
}

/// A log is open, or left unopened after a clean shutdown until someone needs it
/// ([`LogManager::open_deferred`]).
#[derive(Debug)]
enum Slot {
    Open(SharedLog),
    Deferred(Deferred),
}

/// What opening a deferred log needs (read from the checkpoints at startup).
#[derive(Debug, Clone)]
struct Deferred {
    path: PathBuf,
    recovery_point: i64,
    log_start_offset: i64,
    cleaner_offset: Option<i64>,
}

impl Managed {
    fn open_log(&self) -> Option<&SharedLog> {
        match &self.slot {
            Slot::Open(log) => Some(log),
            Slot::Deferred(_) => None,
        }
    }
}

/// Owns the logs of several log dirs.
#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<PathBuf>,
    logs: RwLock<HashMap<TopicPartition, Managed>>,
    skipped: HashMap<TopicPartition, (usize, RecoveryInfo)>,
    /// Set by [`LogManager::shutdown`]: no log opens or is created after it.
    closing: std::sync::atomic::AtomicBool,
    /// Taken for the whole of [`LogManager::create`]: creations take turns, while the
    /// map's lock is held only to look up and to insert.
    creating: Mutex<()>,
    /// Taken while `cleaner-offset-checkpoint` files are written.
    cleaner_checkpoint: Mutex<()>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:016x}{:08x}{:08x}",
        nanos as u64,
        std::process::id(),
        n as u32
    )
}

type DirLoad = (
    Vec<(TopicPartition, Log)>,
    Vec<(TopicPartition, Deferred)>,
    Vec<(TopicPartition, RecoveryInfo)>,
);

/// Threads that open a log dir's logs at startup and close the logs at shutdown: each open
/// or close waits on small reads or fsyncs that the device serves faster several at a time.
const IO_THREADS: usize = 8;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on every item from [`IO_THREADS`] threads; returns the first error. With
/// `stop_on_error`, items not yet started are skipped once one fails.
fn for_each_parallel<T: Sync>(
    items: &[T],
    stop_on_error: bool,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let first_err: Mutex<Option<StorageError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..IO_THREADS.min(items.len()) {
            s.spawn(|| loop {
                if stop_on_error && lock(&first_err).is_some() {
                    break;
                }
                let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                if let Err(e) = f(item) {
                    lock(&first_err).get_or_insert(e);
                }
            });
        }
    });
    match first_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Gives an opened log the first dirty offset its checkpoint holds, unless that is past
/// the log's end (a checkpoint older than a truncation): then its cleaning starts over.
fn set_cleaner_offset(log: &mut Log, offset: Option<i64>) {
    log.set_cleaner_offset(offset.filter(|&o| o <= log.log_end_offset()));
}

/// How often a long load reports its progress.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

fn load_dir(
    dir: &Path,
    config_for: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
    skip_metadata_log: bool,
    defer: bool,
    now: i64,
) -> Result<DirLoad> {
    fs::create_dir_all(dir)?;
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = marker.exists();
    let recovery_points = read_offsets(&dir.join(RECOVERY_POINT_CHECKPOINT)).unwrap_or_else(|e| {
        warn!(error = %e, "ignoring recovery point checkpoint; logs will be fully recovered");
        HashMap::new()
    });
    let log_starts = read_offsets(&dir.join(LOG_START_OFFSET_CHECKPOINT)).unwrap_or_else(|e| {
        warn!(error = %e, "ignoring log start offset checkpoint");
        HashMap::new()
    });
    let cleaner_offsets = read_offsets(&dir.join(CLEANER_OFFSET_CHECKPOINT)).unwrap_or_else(|e| {
        warn!(error = %e, "ignoring cleaner offset checkpoint; compacted logs will be cleaned from their start");
        HashMap::new()
    });
    let mut skipped = Vec::new();
    let entries = fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    let total = entries.len();
    if !clean && total > 0 {
        info!(dir = %dir.display(), partitions = total, "no clean shutdown marker: recovering logs from their recovery points");
    }
    // What to open; removals and skips happen here, in this thread.
    let mut to_open = Vec::new();
    for entry in entries {
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(DELETE_DIR_SUFFIX) {
            info!(dir = %path.display(), "removing partition directory scheduled for deletion");
            fs::remove_dir_all(&path)?;
            continue;
        }
        let Some(tp) = TopicPartition::parse_dir_name(name) else {
            warn!(dir = %path.display(), "skipping directory that is not a partition");
            continue;
        };
        let rp = recovery_points.get(&tp).copied().unwrap_or(0);
        let ls = log_starts.get(&tp).copied().unwrap_or(0);
        if skip_metadata_log && tp.topic == METADATA_TOPIC {
            skipped.push((
                tp,
                RecoveryInfo {
                    dir: path,
                    recovery_point: rp,
                    log_start_offset: ls,
                    clean_shutdown: clean,
                },
            ));
            continue;
        }
        to_open.push((tp, path, rp, ls));
    }
    // After a clean shutdown nothing needs recovery: the logs can wait until they are used.
    if clean && defer {
        fs::remove_file(&marker)?;
        sync_dir(dir)?;
        let deferred = to_open
            .into_iter()
            .map(|(tp, path, rp, ls)| {
                let d = Deferred {
                    cleaner_offset: cleaner_offsets.get(&tp).copied(),
                    path,
                    recovery_point: rp,
                    log_start_offset: ls,
                };
                (tp, d)
            })
            .collect();
        return Ok((Vec::new(), deferred, skipped));
    }
    let started = std::time::Instant::now();
    let last_report = Mutex::new(started);
    let opened: Mutex<Vec<(TopicPartition, Log)>> = Mutex::new(Vec::with_capacity(to_open.len()));
    for_each_parallel(&to_open, true, |(tp, path, rp, ls)| {
        let mut log = Log::open(path, config_for(tp), *rp, *ls, clean, now)?;
        set_cleaner_offset(&mut log, cleaner_offsets.get(tp).copied());
        let n = {
            let mut opened = lock(&opened);
            opened.push((tp.clone(), log));
            opened.len()
        };
        let mut last = lock(&last_report);
        if last.elapsed() >= PROGRESS_INTERVAL {
            *last = std::time::Instant::now();
            info!(
                dir = %dir.display(),
                "loading partitions: {n}/{} after {:.1}s",
                to_open.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })?;
    let logs = opened.into_inner().unwrap_or_else(|e| e.into_inner());
    if clean {
        fs::remove_file(&marker)?;
        sync_dir(dir)?;
    }
    Ok((logs, Vec::new(), skipped))
}

impl LogManager {
    /// Opens every partition directory of every log dir (one thread per log dir), creating the
    /// log dirs if missing. `config_for` gives each partition's config. Directories ending in
    /// `-delete` are removed; with `skip_metadata_log`, `__cluster_metadata-*` is left closed
    /// and described by [`LogManager::skipped_log`]. Logs are recovered unless their log dir
    /// has the clean-shutdown marker, which is then removed. The same partition in two log dirs
    /// is an error.
    pub fn open(
        log_dirs: &[PathBuf],
        config_for: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
        skip_metadata_log: bool,
        now_ms: i64,
    ) -> Result<LogManager> {
        Self::open_with(log_dirs, config_for, skip_metadata_log, false, now_ms)
    }

    /// [`LogManager::open`], but with `defer`, the logs of a log dir that was shut down
    /// cleanly are not opened: they stay deferred (listed by [`LogManager::deferred`],
    /// kept in the checkpoints, deletable) until [`LogManager::open_deferred`] opens one.
    /// Logs that need recovery are always opened at once.
    pub fn open_with(
        log_dirs: &[PathBuf],
        config_for: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
        skip_metadata_log: bool,
        defer: bool,
        now_ms: i64,
    ) -> Result<LogManager> {
        if log_dirs.is_empty() {
            return Err(StorageError::InvalidArgument("no log dirs".into()));
        }
        let results: Vec<Result<DirLoad>> = std::thread::scope(|s| {
            let handles: Vec<_> = log_dirs
                .iter()
                .map(|d| s.spawn(move || load_dir(d, config_for, skip_metadata_log, defer, now_ms)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StorageError::Io(io::Error::other(
                            "log dir loader panicked",
                        )))
                    })
                })
                .collect()
        });
        let mut logs = HashMap::new();
        let mut skipped = HashMap::new();
        let mut deferred_count = 0;
        for (dir_index, r) in results.into_iter().enumerate() {
            let (loaded, deferred, skip) = r?;
            deferred_count += deferred.len();
            let slots = loaded
                .into_iter()
                .map(|(tp, log)| (tp, Slot::Open(Arc::new(RwLock::new(log)))))
                .chain(deferred.into_iter().map(|(tp, d)| (tp, Slot::Deferred(d))));
            for (tp, slot) in slots {
                if logs.contains_key(&tp) {
                    return Err(StorageError::InvalidArgument(format!(
                        "partition {tp} exists in more than one log dir"
                    )));
                }
                logs.insert(tp, Managed { dir_index, slot });
            }
            for (tp, info) in skip {
                skipped.insert(tp, (dir_index, info));
            }
        }
        info!(
            partitions = logs.len(),
            deferred = deferred_count,
            dirs = log_dirs.len(),
            "log manager opened"
        );
        Ok(LogManager {
            dirs: log_dirs.to_vec(),
            logs: RwLock::new(logs),
            skipped,
            closing: Default::default(),
            creating: Mutex::new(()),
            cleaner_checkpoint: Mutex::new(()),
        })
    }

    /// The log dirs.
    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Startup information for a partition that was skipped (the metadata log).
    pub fn skipped_log(&self, topic: &str, partition: i32) -> Option<&RecoveryInfo> {
        self.skipped
            .get(&TopicPartition::new(topic, partition))
            .map(|(_, i)| i)
    }

    /// The log of a partition, if this broker has it open.
    pub fn get(&self, topic: &str, partition: i32) -> Option<SharedLog> {
        self.logs
            .read()
            .get(&TopicPartition::new(topic, partition))
            .and_then(|m| m.open_log().cloned())
    }

    /// All open logs.
    pub fn logs(&self) -> Vec<(TopicPartition, SharedLog)> {
        self.logs
            .read()
            .iter()
            .filter_map(|(tp, m)| Some((tp.clone(), m.open_log()?.clone())))
            .collect()
    }

    /// Every partition with a log here, open or deferred.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.logs.read().keys().cloned().collect()
    }

    /// The partitions with a log here, open or deferred, that `pick` selects.
    pub fn partitions_where(&self, pick: impl Fn(&TopicPartition) -> bool) -> Vec<TopicPartition> {
        self.logs
            .read()
            .keys()
            .filter(|tp| pick(tp))
            .cloned()
            .collect()
    }

    fn check_not_closing(&self, path: &Path) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(StorageError::LogClosed(path.to_path_buf()));
        }
        Ok(())
    }

    /// Whether the partition has a log here, open or deferred.
    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        self.logs
            .read()
            .contains_key(&TopicPartition::new(topic, partition))
    }

    /// Whether the partition's log is here but not opened yet.
    pub fn is_deferred(&self, topic: &str, partition: i32) -> bool {
        self.logs
            .read()
            .get(&TopicPartition::new(topic, partition))
            .is_some_and(|m| matches!(m.slot, Slot::Deferred(_)))
    }

    /// Partitions whose logs are not opened yet.
    pub fn deferred(&self) -> Vec<TopicPartition> {
        self.logs
            .read()
            .iter()
            .filter(|(_, m)| matches!(m.slot, Slot::Deferred(_)))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Opens a deferred log with `config` (it was shut down cleanly, so no recovery), or
    /// returns the log if it is open already; `None` if the partition has no log here.
    pub fn open_deferred(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Option<SharedLog>> {
        let tp = TopicPartition::new(topic, partition);
        let d = match self.logs.read().get(&tp).map(|m| &m.slot) {
            None => return Ok(None),
            Some(Slot::Open(log)) => return Ok(Some(log.clone())),
            Some(Slot::Deferred(d)) => d.clone(),
        };
        self.check_not_closing(&d.path)?;
        // Opened without holding the map lock; a racing open or delete wins. A log that
        // does not open as cleanly shut down is recovered from its recovery point.
        let (rp, ls) = (d.recovery_point, d.log_start_offset);
        let mut log = match Log::open(&d.path, config.clone(), rp, ls, true, now_ms()) {
            Ok(log) => log,
            Err(e) => {
                warn!(partition = %tp, error = %e, "deferred log did not open cleanly; recovering it");
                Log::open(&d.path, config, rp, ls, false, now_ms())?
            }
        };
        set_cleaner_offset(&mut log, d.cleaner_offset);
        let mut logs = self.logs.write();
        if self.closing.load(Ordering::Acquire) {
            drop(logs);
            log.close()?;
            return Err(StorageError::LogClosed(d.path));
        }
        match logs.get_mut(&tp) {
            Some(m) => match &m.slot {
                Slot::Open(existing) => Ok(Some(existing.clone())),
                Slot::Deferred(_) => {
                    let log = Arc::new(RwLock::new(log));
                    m.slot = Slot::Open(log.clone());
                    Ok(Some(log))
                }
            },
            None => Ok(None),
        }
    }

    /// Creates the log of a partition in the log dir with the fewest partitions, or returns the
    /// existing one (whose config is left unchanged). Creations take turns; the caller keeps
    /// the deletion and the deferred opening of the same partition from running meanwhile
    /// (the broker does all three under its reconcile lock).
    pub fn create(&self, topic: &str, partition: i32, config: LogConfig) -> Result<SharedLog> {
        let tp = TopicPartition::new(topic, partition);
        tp.validate()?;
        self.check_not_closing(&self.dirs[0].join(tp.dir_name()))?;
        let _creating = lock(&self.creating);
        let dir_index = {
            let logs = self.logs.read();
            match logs.get(&tp).map(|m| &m.slot) {
                Some(Slot::Open(log)) => return Ok(log.clone()),
                Some(Slot::Deferred(_)) => {
                    drop(logs);
                    return self
                        .open_deferred(topic, partition, config)?
                        .ok_or_else(|| StorageError::LogClosed(self.dirs[0].join(tp.dir_name())));
                }
                None => {}
            }
            let mut counts = vec![0usize; self.dirs.len()];
            if self.dirs.len() > 1 {
                for m in logs.values() {
                    counts[m.dir_index] += 1;
                }
            }
            counts
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| **c)
                .map_or(0, |(i, _)| i)
        };
        // Created and its directory synced without holding the map's lock: lookups of
        // other partitions need not wait for the disk.
        let path = self.dirs[dir_index].join(tp.dir_name());
        let log = Log::open(&path, config, 0, 0, true, now_ms())?;
        sync_dir(&self.dirs[dir_index])?;
        let mut logs = self.logs.write();
        if self.closing.load(Ordering::Acquire) {
            drop(logs);
            log.close()?;
            return Err(StorageError::LogClosed(path));
        }
        let log = Arc::new(RwLock::new(log));
        logs.insert(
            tp,
            Managed {
                dir_index,
                slot: Slot::Open(log.clone()),
            },
        );
        Ok(log)
    }

    /// Deletes a partition's log: removes it from the manager, renames its directory to
    /// `<topic>-<partition>.<unique id>-delete`, then removes that directory. Returns whether
    /// the partition existed. Holders of the log see [`StorageError::LogClosed`] afterwards.
    pub fn delete(&self, topic: &str, partition: i32) -> Result<bool> {
        let tp = TopicPartition::new(topic, partition);
        let Some(m) = self.logs.write().remove(&tp) else {
            return Ok(false);
        };
        let parent = self.dirs[m.dir_index].clone();
        let target = parent.join(format!(
            "{}.{}{}",
            tp.dir_name(),
            unique_id(),
            DELETE_DIR_SUFFIX
        ));
        let compacted = match m.slot {
            Slot::Open(log) => {
                let mut log = log.write();
                log.rename_dir(&target)?;
                sync_dir(&parent)?;
                log.delete_in_place()?;
                log.cleaner_offset().is_some()
            }
            Slot::Deferred(d) => {
                fs::rename(&d.path, &target)?;
                sync_dir(&parent)?;
                fs::remove_dir_all(&target)?;
                d.cleaner_offset.is_some()
            }
        };
        // A partition of the same name created later must not find this one's offset.
        if compacted {
            if let Err(e) = self.checkpoint_cleaner_offsets() {
                warn!(partition = %tp, error = %e, "cannot rewrite the cleaner checkpoint");
            }
        }
        Ok(true)
    }

    /// Writes `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint` in every log
    /// dir. Skipped logs keep the values read at startup.
    pub fn checkpoint_all(&self) -> Result<()> {
        let mut per_dir: Vec<Vec<(TopicPartition, i64, i64)>> = vec![Vec::new(); self.dirs.len()];
        for (tp, (dir_index, info)) in &self.skipped {
            per_dir[*dir_index].push((tp.clone(), info.recovery_point, info.log_start_offset));
        }
        let mut snapshot: Vec<(TopicPartition, usize, SharedLog)> = Vec::new();
        for (tp, m) in self.logs.read().iter() {
            match &m.slot {
                Slot::Open(log) => snapshot.push((tp.clone(), m.dir_index, log.clone())),
                // Untouched since startup: the values read then still hold.
                Slot::Deferred(d) => {
                    per_dir[m.dir_index].push((tp.clone(), d.recovery_point, d.log_start_offset))
                }
            }
        }
        for (tp, dir_index, log) in snapshot {
            let log = log.read();
            per_dir[dir_index].push((tp, log.recovery_point(), log.log_start_offset()));
        }
        for (dir, entries) in self.dirs.iter().zip(per_dir) {
            write_offsets(
                &dir.join(RECOVERY_POINT_CHECKPOINT),
                entries.iter().map(|(tp, rp, _)| (tp, *rp)),
            )?;
            write_offsets(
                &dir.join(LOG_START_OFFSET_CHECKPOINT),
                entries.iter().map(|(tp, _, ls)| (tp, *ls)),
            )?;
        }
        self.checkpoint_cleaner_offsets()
    }

    /// Writes `cleaner-offset-checkpoint` in every log dir: where each compacted log's last
    /// cleaning ended ([`Log::cleaner_offset`]).
    pub fn checkpoint_cleaner_offsets(&self) -> Result<()> {
        let _writing = lock(&self.cleaner_checkpoint);
        let mut per_dir: Vec<Vec<(TopicPartition, i64)>> = vec![Vec::new(); self.dirs.len()];
        let mut snapshot: Vec<(TopicPartition, usize, SharedLog)> = Vec::new();
        for (tp, m) in self.logs.read().iter() {
            match &m.slot {
                Slot::Open(log) => snapshot.push((tp.clone(), m.dir_index, log.clone())),
                Slot::Deferred(d) => {
                    if let Some(o) = d.cleaner_offset {
                        per_dir[m.dir_index].push((tp.clone(), o));
                    }
                }
            }
        }
        for (tp, dir_index, log) in snapshot {
            if let Some(o) = log.read().cleaner_offset() {
                per_dir[dir_index].push((tp, o));
            }
        }
        for (dir, entries) in self.dirs.iter().zip(per_dir) {
            let path = dir.join(CLEANER_OFFSET_CHECKPOINT);
            if entries.is_empty() && !path.exists() {
                continue;
            }
            write_offsets(&path, entries.iter().map(|(tp, o)| (tp, *o)))?;
        }
        Ok(())
    }

    /// Clean shutdown: flushes and closes every log, writes the checkpoints, then writes the
    /// clean-shutdown marker in every log dir. On error no marker is written for any dir, so the
    /// next start recovers.
    /// Logs are closed from [`IO_THREADS`] threads.
    pub fn shutdown(&self) -> Result<()> {
        // Set under the map lock: a log opened concurrently is either in the map already
        // (and closed below) or sees the flag and closes itself.
        {
            let _map = self.logs.write();
            self.closing.store(true, Ordering::Release);
        }
        for_each_parallel(&self.logs(), false, |(tp, log)| {
            log.write().shutdown().inspect_err(|e| {
                warn!(partition = %tp, error = %e, "failed to close log");
            })
        })?;
        self.checkpoint_all()?;
        for dir in &self.dirs {
            write_atomically(&dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        }
        info!("log manager shut down cleanly");
        Ok(())
    }

    /// Periodic retention: for every log, rolls an expired active segment (`segment.ms`) and
    /// enforces retention. Returns the number of deleted segments; every log is processed even
    /// if one fails, and the first error is returned.
    pub fn retention_pass(&self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        let mut first_err = None;
        for (tp, log) in self.logs() {
            let mut log = log.write();
            let r = log
                .maybe_roll(now_ms)
                .and_then(|()| log.enforce_retention(now_ms));
            match r {
                Ok(n) => {
                    deleted += n;
                    if n > 0 {
                        info!(partition = %tp, segments = n, "retention deleted segments");
                    }
                }
                Err(StorageError::LogClosed(_)) => {}
                Err(e) => {
                    warn!(partition = %tp, error = %e, "retention failed");
                    first_err.get_or_insert(e);
                }
            }
            log.release_resources();
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// Periodic flush: fsyncs segments rolled since the last pass (without holding the log's
    /// lock during the fsync) and applies each log's `flush.messages` / `flush.ms`. Every log
    /// is processed; the first error is returned.
    pub fn flush_pass(&self, now_ms: i64) -> Result<()> {
        let mut first_err = None;
        for (tp, log) in self.logs() {
            let r = (|| -> Result<()> {
                let pending = log.read().pending_segment_flush()?;
                if let Some(p) = pending {
                    let synced = p.sync();
                    log.write().complete_segment_flush(p, synced)?;
                }
                log.write().maybe_flush(now_ms)
            })();
            match r {
                Ok(()) | Err(StorageError::LogClosed(_)) => {}
                Err(e) => {
                    warn!(partition = %tp, error = %e, "flush failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
