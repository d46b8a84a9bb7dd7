//! Partitions hosted by this node: their log, leadership, high watermark and the fetch
//! requests waiting for new data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use krust_storage::parking_lot::{RwLockReadGuard, RwLockWriteGuard};
use krust_storage::SharedLog;

use bytes::Bytes;
use krust_storage::{AppendInfo, Log, StorageError};
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
}

impl Partition {
    pub fn new(
        topic: String,
        index: i32,
        topic_id: Uuid,
        log: SharedLog,
        leader_epoch: i32,
    ) -> Partition {
        let end = log.read().log_end_offset();
        Partition {
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

    /// Appends a producer's batches as leader and wakes parked fetches.
    pub fn append(&self, records: &Bytes, now_ms: i64) -> Result<AppendInfo, StorageError> {
        let info = {
            let mut log = self.write_log();
            let info = log.append_as_leader(records, self.leader_epoch(), now_ms)?;
            self.high_watermark
                .store(log.log_end_offset(), Ordering::Release);
            info
        };
        self.wake();
        Ok(info)
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
