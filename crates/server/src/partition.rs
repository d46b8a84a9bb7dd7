//! Partitions hosted by this node: their log, leadership, high watermark and the fetch
//! requests waiting for new data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use krust_storage::parking_lot::{RwLockReadGuard, RwLockWriteGuard};
use krust_storage::SharedLog;

use bytes::Bytes;
use krust_storage::batch::{self, RecordBatch};
use krust_storage::producer::{last_sequence, BatchMeta};
use krust_storage::{
    AppendInfo, Log, ProducerStateManager, SequenceCheck, SequenceError, StorageError,
};
use tokio::sync::Notify;
use uuid::Uuid;

/// Parked fetches per partition above which finished ones are pruned on the next park.
const WAITERS_PRUNE_AT: usize = 64;

/// One hosted partition.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    pub log: SharedLog,
    leader_epoch: AtomicI32,
    high_watermark: AtomicI64,
    waiters: Mutex<Vec<Weak<Notify>>>,
    /// Idempotent-producer state; held across check, append and record so they are atomic.
    producers: Mutex<ProducerStateManager>,
    /// Whether the producer state moved since its snapshot was written.
    producers_dirty: AtomicBool,
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

/// Where an append landed: a fresh append, or the original place of a retried batch.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub first_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub duplicate: bool,
}

/// Largest read while rebuilding producer state.
const SCAN_READ_BYTES: usize = 4 * 1024 * 1024;

impl Partition {
    pub fn new(
        topic: String,
        index: i32,
        topic_id: Uuid,
        log: SharedLog,
        leader_epoch: i32,
    ) -> Partition {
        let end = log.read().log_end_offset();
        let (producers, snapshot_offset) = rebuild_producer_state(&log.read());
        Partition {
            producers_dirty: AtomicBool::new(producers.next_offset() != snapshot_offset),
            producers: Mutex::new(producers),
            topic,
            index,
            topic_id,
            log,
            leader_epoch: AtomicI32::new(leader_epoch),
            high_watermark: AtomicI64::new(end),
            waiters: Mutex::new(Vec::new()),
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Checks the leader epoch a client or follower believes current (-1 = not given):
    /// older is FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH. Returns the epoch.
    pub fn check_leader_epoch(&self, current: i32) -> Result<i32, krust_protocol::ErrorCode> {
        let epoch = self.leader_epoch();
        if current >= 0 && current < epoch {
            Err(krust_protocol::ErrorCode::FencedLeaderEpoch)
        } else if current > epoch {
            Err(krust_protocol::ErrorCode::UnknownLeaderEpoch)
        } else {
            Ok(epoch)
        }
    }

    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
    }

    /// Offset below which records are committed and visible to consumers. This node is the
    /// only replica, so it is the log end once an append returns.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.read_log().log_start_offset()
    }

    pub fn read_log(&self) -> RwLockReadGuard<'_, Log> {
        self.log.read()
    }

    pub fn write_log(&self) -> RwLockWriteGuard<'_, Log> {
        self.log.write()
    }

    /// Appends a producer's batch as leader and wakes parked fetches. A batch with a
    /// producer id is checked against that producer's state first: a retry of a batch
    /// already written is answered with its original offsets and not written again.
    pub fn append(&self, records: &Bytes, now_ms: i64) -> Result<Appended, AppendError> {
        let idempotent = match RecordBatch::parse(records) {
            Ok((b, _)) if b.producer_id() >= 0 && b.base_sequence() >= 0 => Some((
                b.producer_id(),
                b.producer_epoch(),
                b.base_sequence(),
                last_sequence(b.base_sequence(), b.last_offset_delta()),
            )),
            _ => None,
        };
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((pid, epoch, first_seq, last_seq)) = idempotent {
            if let SequenceCheck::Duplicate(meta) =
                producers.check(pid, epoch, first_seq, last_seq)?
            {
                return Ok(Appended {
                    first_offset: meta.first_offset,
                    last_offset: meta.last_offset,
                    log_append_time: -1,
                    duplicate: true,
                });
            }
        }
        let info: AppendInfo = {
            let mut log = self.write_log();
            let info = log.append_as_leader(records, self.leader_epoch(), now_ms)?;
            self.high_watermark
                .store(log.log_end_offset(), Ordering::Release);
            info
        };
        match idempotent {
            Some((pid, epoch, first_seq, last_seq)) => producers.record(
                pid,
                epoch,
                BatchMeta {
                    first_seq,
                    last_seq,
                    first_offset: info.first_offset,
                    last_offset: info.last_offset,
                    timestamp: now_ms,
                },
            ),
            None => producers.advance(info.last_offset + 1),
        }
        drop(producers);
        self.producers_dirty.store(true, Ordering::Release);
        self.wake();
        Ok(Appended {
            first_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time: info.log_append_time,
            duplicate: false,
        })
    }

    /// Writes the producer-state snapshot next to the log (on shutdown and periodically),
    /// so a restart replays only the batches written after it.
    /// Partitions without appends since the last snapshot are skipped.
    pub fn snapshot_producer_state(&self) -> Result<(), StorageError> {
        let producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if !self.producers_dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let dir = self.read_log().dir().to_path_buf();
        producers.write_snapshot(&dir)
    }

    /// Forgets producers idle longer than `max_idle_ms` (producer.id.expiration.ms).
    pub fn expire_producers(&self, now_ms: i64, max_idle_ms: i64) {
        let expired = self
            .producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now_ms, max_idle_ms);
        if expired > 0 {
            self.producers_dirty.store(true, Ordering::Release);
        }
    }

    /// Registers a fetch that waits for data; it is notified on the next append.
    /// Only a weak reference is kept: a fetch that completes or is dropped leaves nothing
    /// behind but a dead entry, pruned here or on the next append.
    pub fn park(&self, waiter: &Arc<Notify>) {
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() >= WAITERS_PRUNE_AT {
            w.retain(|n| n.strong_count() > 0);
        }
        w.push(Arc::downgrade(waiter));
    }

    /// Wakes every parked fetch.
    pub fn wake(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for n in waiters.iter().filter_map(Weak::upgrade) {
            n.notify_one();
        }
    }

    /// Re-reads the high watermark after the log changed underneath (truncation, deletion).
    pub fn refresh_high_watermark(&self) {
        let end = self.read_log().log_end_offset();
        self.high_watermark.store(end, Ordering::Release);
    }
}

/// Loads the producer-state snapshot and replays the batches written after it. A missing,
/// damaged or stale snapshot (beyond the log end after a truncation) means replaying the
/// whole log.
/// Returns the state and the offset its snapshot covered (-1 without a usable one).
fn rebuild_producer_state(log: &Log) -> (ProducerStateManager, i64) {
    let dir = log.dir().to_path_buf();
    let end = log.log_end_offset();
    let mut state = match ProducerStateManager::read_snapshot(&dir) {
        Ok(Some(s)) if s.next_offset() <= end && s.next_offset() >= log.log_start_offset() => s,
        Ok(_) => ProducerStateManager::new(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "ignoring producer state snapshot; rebuilding from the log");
            ProducerStateManager::new()
        }
    };
    let snapshot_offset = if state.is_empty() && state.next_offset() == 0 {
        -1
    } else {
        state.next_offset()
    };
    let mut next = state.next_offset().max(log.log_start_offset());
    while next < end {
        let read = match log.read(next, SCAN_READ_BYTES, end, true) {
            Ok(r) if !r.records.is_empty() => r,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not scan the log for producer state");
                break;
            }
        };
        for b in batch::batches(&read.records).flatten() {
            if b.next_offset() <= next {
                continue;
            }
            state.replay_batch(
                b.producer_id(),
                b.producer_epoch(),
                b.base_sequence(),
                b.last_offset_delta(),
                b.base_offset(),
                b.max_timestamp(),
            );
        }
        if read.next_offset <= next {
            break;
        }
        next = read.next_offset;
    }
    (state, snapshot_offset)
}

/// Every partition this node hosts, by (topic, index).
#[derive(Default)]
pub struct Partitions {
    map: RwLock<HashMap<(String, i32), Arc<Partition>>>,
}

impl Partitions {
    pub fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(topic.to_string(), index))
            .cloned()
    }

    pub fn insert(&self, p: Arc<Partition>) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((p.topic.clone(), p.index), p);
    }

    pub fn remove(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(topic.to_string(), index))
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

impl Partition {
    /// Kafka's end offset for `epoch`: the largest epoch not above it and where it ends,
    /// from the log's leader-epoch cache.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.read_log().end_offset_for_epoch(epoch)
    }
}
