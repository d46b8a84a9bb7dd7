//! The log cleaner: compacts the logs of topics whose `cleanup.policy` holds `compact`, as
//! Kafka's does (`krust_storage::clean` does the work on one log).
//!
//! `log.cleaner.threads` tasks each pick, every time they look, the hosted log most worth
//! cleaning that no other is cleaning: the one with the largest dirty ratio (bytes written
//! since its last cleaning over all its cleanable bytes) of those at or above their
//! `min.cleanable.dirty.ratio`, or whose oldest uncleaned record is older than
//! `max.compaction.lag.ms`. Nothing at or past the partition's high watermark is cleaned
//! (a record not yet committed may still be truncated, and the older value it supersedes
//! must stay until it is committed), nor the active segment, nor a segment with records
//! newer than `min.compaction.lag.ms`. With nothing to clean a task sleeps for
//! `log.cleaner.backoff.ms`. Each replica cleans its own log.
//!
//! Only what is below the log's recovery point is cleaned too: a record removed because a
//! later one supersedes it must not outlive that one in a crash. Where each log's last
//! cleaning ended (its first dirty offset, `Log::cleaner_offset`) is kept in each log
//! dir's `cleaner-offset-checkpoint`, as Kafka does, and lowered by truncations.
//! `__consumer_offsets` is compacted by its coordinator instead (`crate::groups`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use krust_storage::clean::{self, CleanOutcome, CleanRequest, RecordKeys};
use krust_storage::TopicPartition;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::{now_ms, Broker};
use crate::groups::OFFSETS_TOPIC;
use crate::partition::Partition;

/// How long a log whose cleaning failed (a corrupt batch, an I/O error) is left alone.
const FAILED_REST_MS: i64 = 10 * 60 * 1000;
/// The most memory one cleaner's offset map takes.
const MAX_MAP_BYTES: usize = 2 << 30;

/// Records decoded by `krust_protocol::record_keys`.
const RECORD_KEYS: RecordKeys = RecordKeys {
    for_each_record: krust_protocol::record_keys::for_each_record,
    retain: krust_protocol::record_keys::retain_records,
};

/// The cleaners' shared state.
pub struct Cleaner {
    broker: Arc<Broker>,
    /// Logs being cleaned now.
    busy: Mutex<HashSet<TopicPartition>>,
    /// Logs not to try again before the given time (a cleaning failed or found nothing).
    resting: Mutex<HashMap<TopicPartition, i64>>,
    /// Logs whose last cleaning failed.
    failed: Mutex<HashSet<TopicPartition>>,
    stop: AtomicBool,
}

/// A log worth cleaning.
struct Candidate {
    partition: Arc<Partition>,
    tp: TopicPartition,
    request: CleanRequest,
    ratio: f64,
}

impl Cleaner {
    pub fn new(broker: Arc<Broker>) -> Cleaner {
        Cleaner {
            broker,
            busy: Mutex::new(HashSet::new()),
            resting: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashSet::new()),
            stop: AtomicBool::new(false),
        }
    }

    /// Starts `log.cleaner.threads` cleaner tasks (none when `log.cleaner.enable` is false);
    /// they end when `shutdown` turns true, a cleaning under way stopping at its next group.
    pub fn start(
        broker: Arc<Broker>,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let threads = broker.config.log_cleaner_threads.max(0) as usize;
        if !broker.config.log_cleaner_enable || threads == 0 {
            return Vec::new();
        }
        let cleaner = Arc::new(Cleaner::new(broker));
        let mut tasks = Vec::new();
        for _ in 0..threads {
            let c = cleaner.clone();
            let mut shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let backoff = Duration::from_millis(
                    u64::try_from(c.broker.config.log_cleaner_backoff_ms).unwrap_or(0),
                );
                loop {
                    let worker = c.clone();
                    let cleaned = tokio::task::spawn_blocking(move || worker.clean_one())
                        .await
                        .unwrap_or(false);
                    if cleaned {
                        tokio::task::yield_now().await;
                        if !*shutdown.borrow() {
                            continue;
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    if *shutdown.borrow() {
                        c.stop.store(true, Ordering::Release);
                        break;
                    }
                }
            }));
        }
        let stopper = cleaner;
        let mut shutdown = shutdown;
        tasks.push(tokio::spawn(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
            stopper.stop.store(true, Ordering::Release);
        }));
        tasks
    }

    /// Cleans the log most worth it, if any; whether one was cleaned.
    pub fn clean_one(&self) -> bool {
        let Some(c) = self.pick() else {
            return false;
        };
        let started = std::time::Instant::now();
        let result = clean::clean(&c.partition.log, &c.request, RECORD_KEYS, &|| {
            self.stop.load(Ordering::Acquire)
        });
        lock(&self.busy).remove(&c.tp);
        match result {
            Ok(Some(out)) => {
                self.cleaned(&c, &out, started.elapsed());
                true
            }
            Ok(None) => {
                self.rest(&c.tp, self.broker.config.log_cleaner_backoff_ms);
                false
            }
            Err(e) => {
                warn!(topic = %c.tp.topic, partition = c.tp.partition, error = %e, "log cleaning failed; trying again in 10 minutes");
                self.rest(&c.tp, FAILED_REST_MS);
                let mut failed = lock(&self.failed);
                failed.insert(c.tp.clone());
                self.broker
                    .metrics
                    .cleaner_uncleanable
                    .store(failed.len() as u64, Ordering::Relaxed);
                false
            }
        }
    }

    /// Leaves `tp` alone for `ms` (at least a second).
    fn rest(&self, tp: &TopicPartition, ms: i64) {
        let until = now_ms().saturating_add(ms.max(1000));
        lock(&self.resting).insert(tp.clone(), until);
    }

    fn cleaned(&self, c: &Candidate, out: &CleanOutcome, took: Duration) {
        let m = &self.broker.metrics;
        m.cleaner_last_clean_us.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        m.cleaner_recopy_permille.store(
            out.bytes_after.saturating_mul(1000) / out.bytes_before.max(1),
            Ordering::Relaxed,
        );
        {
            let mut failed = lock(&self.failed);
            failed.remove(&c.tp);
            m.cleaner_uncleanable
                .store(failed.len() as u64, Ordering::Relaxed);
        }
        info!(
            topic = %c.tp.topic,
            partition = c.tp.partition,
            secs = format!("{:.3}", took.as_secs_f64()),
            dirty_ratio = format!("{:.2}", c.ratio),
            up_to = out.cleaned_up_to,
            segments = format!("{} -> {}", out.segments_before, out.segments_after),
            bytes = format!("{} -> {}", out.bytes_before, out.bytes_after),
            records_removed = out.records_removed,
            "compacted"
        );
        if let Err(e) = self.broker.logs.checkpoint_cleaner_offsets() {
            warn!(error = %e, "cannot write the cleaner checkpoint");
        }
    }

    /// The hosted compacted log most worth cleaning now, marked busy.
    fn pick(&self) -> Option<Candidate> {
        let image = self.broker.image();
        let now = now_ms();
        let threads = self.broker.config.log_cleaner_threads.max(1) as usize;
        // Kafka's bound too: at most 2 GiB per cleaner thread.
        let map_bytes = (usize::try_from(self.broker.config.log_cleaner_dedupe_buffer_size)
            .unwrap_or(usize::MAX)
            / threads)
            .min(MAX_MAP_BYTES);
        let io_bytes_per_second = self
            .broker
            .config
            .log_cleaner_io_max_bytes_per_second
            .map(|r| r / threads as f64);
        let mut best: Option<Candidate> = None;
        let mut max_dirty: f64 = 0.0;
        let busy = lock(&self.busy).clone();
        lock(&self.resting).retain(|_, until| *until > now);
        let resting = lock(&self.resting).clone();
        for p in self.broker.partitions.all() {
            if p.topic == OFFSETS_TOPIC {
                continue;
            }
            let tp = TopicPartition::new(p.topic.clone(), p.index);
            if busy.contains(&tp) || resting.contains_key(&tp) {
                continue;
            }
            let e =
                crate::topic_config::effective(&image.topic_configs(&p.topic), &self.broker.config);
            if !e.cleanup_policy_compact {
                continue;
            }
            // Nothing of a transaction that may still abort is cleaned, and aborted
            // transactions' records go. (Read before the log's lock: the producer state
            // is locked first.)
            let first_unstable = p.first_unstable_offset();
            let aborted = p.aborted_between(0, i64::MAX);
            // The high watermark and the generation are read together under the lock: a
            // truncation lowers the high watermark before it lets the log go. Only one the
            // replicas agreed on counts: a restarted replica's own may be past what was
            // committed.
            let log = p.log.read();
            let generation = log.generation();
            let start = log.log_start_offset();
            let first = log.cleaner_offset().unwrap_or(start).max(start);
            // Only what is committed, and on the disk: a record superseding another must
            // survive a crash if the other does not.
            let mut end = p.confirmed_high_watermark().min(log.recovery_point());
            if let Some(f) = first_unstable {
                end = end.min(f);
            }
            if e.min_compaction_lag_ms > 0 {
                end = end
                    .min(log.first_offset_newer_than(now.saturating_sub(e.min_compaction_lag_ms)));
            }
            let (clean_bytes, dirty_bytes) = log.cleanable_bytes(first, end);
            if dirty_bytes == 0 {
                continue;
            }
            let ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64;
            max_dirty = max_dirty.max(ratio);
            let overdue = e.max_compaction_lag_ms < i64::MAX
                && log
                    .first_timestamp_from(first)
                    .is_some_and(|t| t < now.saturating_sub(e.max_compaction_lag_ms));
            if ratio < e.min_cleanable_dirty_ratio && !overdue {
                continue;
            }
            let rank = if overdue { f64::INFINITY } else { ratio };
            if best.as_ref().is_some_and(|b| b.ratio >= rank) {
                continue;
            }
            drop(log);
            best = Some(Candidate {
                partition: p,
                tp,
                request: CleanRequest {
                    first_dirty: first,
                    end,
                    now_ms: now,
                    delete_retention_ms: e.delete_retention_ms,
                    map_bytes,
                    io_bytes_per_second,
                    generation,
                    aborted,
                },
                ratio: rank,
            });
        }
        self.broker
            .metrics
            .cleaner_max_dirty_permille
            .store((max_dirty * 1000.0) as u64, Ordering::Relaxed);
        let c = best?;
        if !lock(&self.busy).insert(c.tp.clone()) {
            return None;
        }
        Some(c)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
