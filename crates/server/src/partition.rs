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
    AbortedTxn, AppendInfo, Log, ProducerError, ProducerStateManager, SequenceCheck, SequenceError,
    StorageError,
};
use tokio::sync::Notify;
use uuid::Uuid;

/// Parked fetches per partition above which finished ones are pruned on the next park.
const WAITERS_PRUNE_AT: usize = 64;

/// A follower's progress as its leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct FollowerState {
    /// The follower's log end offset (its last fetch offset).
    pub log_end_offset: i64,
    /// When it last fetched.
    pub last_fetch_ms: i64,
    /// When its fetch last reached the leader's log end offset.
    pub last_caught_up_ms: i64,
}

/// Leadership and replica set, as the metadata image says, plus what the leader learns.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSet {
    /// The leader's node id (-1: none).
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    /// As leader: each follower's progress.
    pub followers: HashMap<i32, FollowerState>,
    /// As leader: an ISR change sent to the controller and not yet in the image.
    pub pending_isr: Option<Vec<i32>>,
    /// As leader: when this node took the current leader epoch (a follower that has not
    /// fetched yet counts as caught up at that moment).
    pub leader_since_ms: i64,
}

/// One hosted partition.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    pub log: SharedLog,
    /// This node's id.
    node_id: i32,
    leader_epoch: AtomicI32,
    high_watermark: AtomicI64,
    /// The high watermark as the replicas last agreed on it: from the in-sync replicas'
    /// logs as leader, from the leader as follower; -1 until then. (A restarted replica's
    /// high watermark starts at its log end, which may hold records never committed.)
    confirmed_high_watermark: AtomicI64,
    /// The leader's id, mirrored from `replica_set` for a lock-free `is_leader`.
    leader: AtomicI32,
    replica_set: Mutex<ReplicaSet>,
    /// Woken whenever the high watermark moves (acks=all producers wait on it).
    high_watermark_moved: Notify,
    /// Held by [`Partition::complete_append`] while it flushes.
    flushing: Mutex<()>,
    waiters: Mutex<Vec<Weak<Notify>>>,
    /// Parked follower fetches: woken by appends only (they read up to the log end, so a
    /// moving high watermark gives them nothing new).
    replica_waiters: Mutex<Vec<Weak<Notify>>>,
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
    Producer(#[from] ProducerError),
}

impl From<SequenceError> for AppendError {
    fn from(e: SequenceError) -> Self {
        AppendError::Producer(e.into())
    }
}

/// Where an append landed: a fresh append, or the original place of a retried batch.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub first_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub duplicate: bool,
}

/// How a transactional batch's transaction was checked before its append (KIP-890
/// partition verification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnCheck {
    /// Not checked (`transaction.partition.verification.enable=false`, or not a
    /// producer's batch).
    Off,
    /// Its transaction was open here when the request arrived: it must still be.
    Open,
    /// The coordinator confirmed the partition is in its transaction, when this many of
    /// the producer's markers had been seen here: none may have come since, unless its
    /// transaction is open here.
    Verified(u64),
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
        node_id: i32,
    ) -> Partition {
        let (end, replayed, producers, snapshot_offset) = {
            let log = log.read();
            let (producers, snapshot_offset) = rebuild_producer_state(&log);
            let end = log.log_end_offset();
            // A new snapshot pays off only if batches beyond the last one were replayed; an
            // empty log needs none.
            let replayed = snapshot_offset.max(log.log_start_offset()) < end;
            (end, replayed, producers, snapshot_offset)
        };
        Partition {
            producers_dirty: AtomicBool::new(
                replayed && producers.next_offset() != snapshot_offset,
            ),
            producers: Mutex::new(producers),
            topic,
            index,
            topic_id,
            log,
            node_id,
            leader_epoch: AtomicI32::new(leader_epoch),
            high_watermark: AtomicI64::new(end),
            confirmed_high_watermark: AtomicI64::new(-1),
            leader: AtomicI32::new(-1),
            replica_set: Mutex::new(ReplicaSet {
                leader: -1,
                ..ReplicaSet::default()
            }),
            high_watermark_moved: Notify::new(),
            flushing: Mutex::new(()),
            waiters: Mutex::new(Vec::new()),
            replica_waiters: Mutex::new(Vec::new()),
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

    /// Offset below which records are committed and visible to consumers: on the leader,
    /// what every in-sync replica has; on a follower, what the leader last reported.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    fn replica_set(&self) -> std::sync::MutexGuard<'_, ReplicaSet> {
        self.replica_set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the leadership and replica state.
    /// See `confirmed_high_watermark`: what the log cleaner may clean up to.
    pub fn confirmed_high_watermark(&self) -> i64 {
        self.confirmed_high_watermark.load(Ordering::Acquire)
    }

    pub fn replicas(&self) -> ReplicaSet {
        self.replica_set().clone()
    }

    /// Whether this node leads the partition.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire) == self.node_id
    }

    /// Takes leadership and replica set from the metadata image. Returns whether this node
    /// just became the leader (a new leader epoch with this node as leader).
    pub fn update_leadership(
        &self,
        leader: i32,
        leader_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
    ) -> bool {
        let previous_epoch = self.leader_epoch();
        let mut set = self.replica_set();
        let was_leader = set.leader == self.node_id;
        let epoch_changed = leader_epoch != previous_epoch;
        let changed = epoch_changed || set.leader != leader || set.isr != isr;
        set.leader = leader;
        set.replicas = replicas.to_vec();
        set.isr = isr.to_vec();
        set.partition_epoch = partition_epoch;
        if set.pending_isr.as_deref() == Some(isr) || epoch_changed {
            set.pending_isr = None;
        }
        let leading = leader == self.node_id;
        if !leading || epoch_changed {
            set.followers.clear();
            set.leader_since_ms = crate::broker::now_ms();
        }
        set.followers.retain(|id, _| replicas.contains(id));
        drop(set);
        self.set_leader_epoch(leader_epoch);
        self.leader.store(leader, Ordering::Release);
        if !changed {
            return false;
        }
        if leading {
            self.maybe_advance_high_watermark();
        }
        // Whoever waits must re-check who leads.
        self.wake();
        self.high_watermark_moved.notify_waiters();
        leading && (!was_leader || epoch_changed)
    }

    /// As leader: moves the high watermark up to what every in-sync replica (and any
    /// replica an ISR change is adding) has. Never moves it down.
    pub fn maybe_advance_high_watermark(&self) {
        let end = self.read_log().high_watermark_limit();
        let candidate = {
            let set = self.replica_set();
            if set.leader != self.node_id {
                return;
            }
            let mut members: Vec<i32> = set.isr.clone();
            if let Some(p) = &set.pending_isr {
                members.extend(p.iter().copied());
            }
            members
                .iter()
                .filter(|id| **id != self.node_id)
                .map(|id| set.followers.get(id).map_or(i64::MIN, |f| f.log_end_offset))
                .fold(end, i64::min)
        };
        self.confirmed_high_watermark
            .fetch_max(candidate, Ordering::AcqRel);
        let mut current = self.high_watermark();
        while candidate > current {
            match self.high_watermark.compare_exchange(
                current,
                candidate,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.high_watermark_moved.notify_waiters();
                    wake_all(&self.waiters);
                    break;
                }
                Err(now) => current = now,
            }
        }
    }

    /// As leader: records a follower's fetch at `fetch_offset` (its log end offset) and
    /// advances the high watermark. Returns the ISR the leader should now ask for if the
    /// follower caught up and is not in it yet.
    pub fn follower_fetched(
        &self,
        replica: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Option<Vec<i32>> {
        let end = self.read_log().log_end_offset();
        let hw = self.high_watermark();
        let expand = {
            let mut set = self.replica_set();
            if set.leader != self.node_id || !set.replicas.contains(&replica) {
                return None;
            }
            let f = set.followers.entry(replica).or_insert(FollowerState {
                log_end_offset: fetch_offset,
                last_fetch_ms: now_ms,
                last_caught_up_ms: -1,
            });
            f.log_end_offset = fetch_offset;
            f.last_fetch_ms = now_ms;
            if fetch_offset >= end {
                f.last_caught_up_ms = now_ms;
            }
            let in_isr = set.isr.contains(&replica);
            (!in_isr && set.pending_isr.is_none() && fetch_offset >= hw).then(|| {
                let mut isr = set.isr.clone();
                isr.push(replica);
                isr.sort_unstable();
                set.pending_isr = Some(isr.clone());
                isr
            })
        };
        self.maybe_advance_high_watermark();
        expand
    }

    /// As leader: the ISR without the followers that have not caught up within
    /// `max_lag_ms`, if that drops anyone (and no other ISR change is in flight).
    pub fn shrunk_isr(&self, now_ms: i64, max_lag_ms: i64) -> Option<Vec<i32>> {
        let mut set = self.replica_set();
        if set.leader != self.node_id || set.pending_isr.is_some() {
            return None;
        }
        let since = set.leader_since_ms;
        let lagging = |id: &i32| {
            let caught_up = set
                .followers
                .get(id)
                .map_or(since, |f| f.last_caught_up_ms.max(since));
            *id != self.node_id && now_ms - caught_up > max_lag_ms
        };
        if !set.isr.iter().any(lagging) {
            return None;
        }
        let isr: Vec<i32> = set.isr.iter().copied().filter(|id| !lagging(id)).collect();
        set.pending_isr = Some(isr.clone());
        Some(isr)
    }

    /// Forgets an ISR change that failed, so that it can be tried again.
    pub fn clear_pending_isr(&self) {
        self.replica_set().pending_isr = None;
    }

    /// As follower: takes the leader's high watermark, never beyond the local log end.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let end = self.read_log().log_end_offset();
        let hw = leader_high_watermark.min(end);
        self.confirmed_high_watermark.store(hw, Ordering::Release);
        if self.high_watermark.swap(hw, Ordering::AcqRel) != hw {
            self.wake();
        }
    }

    /// Waits until the high watermark passes `offset` (acks=all), the partition stops
    /// being led here, or `timeout` runs out. Returns whether it passed.
    pub async fn wait_for_high_watermark(&self, offset: i64, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let moved = self.high_watermark_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.high_watermark() > offset {
                return true;
            }
            if !self.is_leader() {
                return false;
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                return self.high_watermark() > offset;
            }
        }
    }

    /// As follower: appends batches copied from the leader, offsets and epochs as they
    /// are, and replays them into the producer state so that idempotence survives a
    /// failover.
    pub fn append_as_follower(&self, records: &Bytes) -> Result<(), AppendError> {
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        self.write_log().append_batches_with_offsets(records)?;
        for b in batch::batches(records).flatten() {
            producers.replay_batch(&b);
        }
        // Completed transactions below the high watermark are forgotten as it moves.
        producers.first_unstable_offset(self.high_watermark());
        drop(producers);
        self.producers_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// As follower: removes everything from `offset` on (divergence from the leader) and
    /// rebuilds the producer state from what is left.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut log = self.write_log();
            log.truncate_to(offset)?;
            // Lowered before the log is let go: whoever reads the log's generation and the
            // high watermark under its lock (the log cleaner) sees both or neither change.
            self.high_watermark
                .fetch_min(log.log_end_offset(), Ordering::AcqRel);
            self.confirmed_high_watermark
                .fetch_min(log.log_end_offset(), Ordering::AcqRel);
        }
        let _ = std::fs::remove_file(
            self.read_log()
                .dir()
                .join(krust_storage::producer::SNAPSHOT_FILE),
        );
        *producers = rebuild_producer_state(&self.read_log()).0;
        self.producers_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// As follower: the leader's log starts after this one ends; start over there.
    pub fn restart_at(&self, offset: i64) -> Result<(), StorageError> {
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut log = self.write_log();
            log.truncate_fully_and_start_at(offset)?;
            self.high_watermark.store(offset, Ordering::Release);
            self.confirmed_high_watermark
                .store(offset, Ordering::Release);
        }
        *producers = ProducerStateManager::new();
        producers.advance(offset);
        self.producers_dirty.store(true, Ordering::Release);
        Ok(())
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
        let appended = self.append_unwoken(records, now_ms)?;
        self.wake();
        Ok(appended)
    }

    /// [`Partition::append`] without waking the parked fetches: a Produce request wakes
    /// them once all of its partitions are appended, so that a follower (or consumer)
    /// fetching several of them is answered with all their new batches at once rather
    /// than with the first one alone.
    pub fn append_unwoken(&self, records: &Bytes, now_ms: i64) -> Result<Appended, AppendError> {
        self.append_as_leader(records, now_ms, false, TxnCheck::Off)
    }

    /// [`Partition::append_unwoken`] that leaves to the caller a flush the append makes due
    /// (`log.flush.interval.messages`) and the high watermark's advance, both done by
    /// [`Partition::complete_append`]: a Produce request then syncs all its partitions
    /// at once, and its records become visible only once synced, as with an inline flush.
    pub fn append_unflushed(
        &self,
        records: &Bytes,
        now_ms: i64,
        check: TxnCheck,
    ) -> Result<Appended, AppendError> {
        self.append_as_leader(records, now_ms, true, check)
    }

    /// Whether a transactional batch of `producer_id`/`epoch` would open its transaction
    /// here, and so needs verifying with the coordinator: `Some(markers seen)` for
    /// [`TxnCheck::Verified`], `None` if its transaction is open.
    pub fn txn_verification(&self, producer_id: i64, epoch: i16) -> Option<u64> {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .txn_verification(producer_id, epoch)
    }

    /// Whether a flush is due after [`Partition::append_unflushed`].
    pub fn flush_due(&self) -> bool {
        self.read_log().flush_due()
    }

    /// Finishes [`Partition::append_unflushed`] of records up to `last_offset`: flushes if
    /// due and they are not flushed yet (a flush for a later append may have covered them),
    /// then moves the high watermark. Parked fetches are still to be woken. The fsyncs run
    /// without the log's lock, so further appends go on meanwhile and the next flush covers
    /// them all; the high watermark does not pass what is flushed while a flush is due.
    pub fn complete_append(&self, last_offset: i64) -> Result<(), StorageError> {
        {
            // One flush at a time: one that waited here finds its records covered by the
            // flush before it when they were appended meanwhile (group commit).
            let _flushing = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
            let pending = {
                let mut log = self.write_log();
                if log.recovery_point() <= last_offset && log.flush_due() {
                    log.pending_flush()?
                } else {
                    None
                }
            };
            if let Some(p) = pending {
                let synced = p.sync();
                self.write_log().complete_segment_flush(p, synced)?;
            }
        }
        self.maybe_advance_high_watermark();
        Ok(())
    }

    fn append_as_leader(
        &self,
        records: &Bytes,
        now_ms: i64,
        deferred: bool,
        check: TxnCheck,
    ) -> Result<Appended, AppendError> {
        let (idempotent, transactional) = match RecordBatch::parse(records) {
            Ok((b, _)) if b.producer_id() >= 0 && b.base_sequence() >= 0 => (
                Some((
                    b.producer_id(),
                    b.producer_epoch(),
                    b.base_sequence(),
                    last_sequence(b.base_sequence(), b.last_offset_delta()),
                )),
                b.is_transactional(),
            ),
            _ => (None, false),
        };
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((pid, epoch, first_seq, last_seq)) = idempotent {
            producers.check_txn(pid, epoch, transactional)?;
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
            if transactional && check != TxnCheck::Off {
                let allowed = match (check, producers.txn_verification(pid, epoch)) {
                    (_, None) => true,
                    (TxnCheck::Verified(seen), Some(now)) => seen == now,
                    _ => false,
                };
                if !allowed {
                    return Err(AppendError::Producer(
                        krust_storage::TxnError::NotVerified { producer_id: pid }.into(),
                    ));
                }
            }
        }
        let info: AppendInfo = {
            let mut log = self.write_log();
            if deferred {
                log.append_as_leader_unflushed(records, self.leader_epoch(), now_ms)?
            } else {
                log.append_as_leader(records, self.leader_epoch(), now_ms)?
            }
        };
        if !deferred {
            self.maybe_advance_high_watermark();
        }
        match idempotent {
            Some((pid, epoch, first_seq, last_seq)) => {
                producers.record(
                    pid,
                    epoch,
                    BatchMeta {
                        first_seq,
                        last_seq,
                        first_offset: info.first_offset,
                        last_offset: info.last_offset,
                        timestamp: now_ms,
                    },
                );
                if transactional {
                    producers.record_txn_batch(
                        pid,
                        epoch,
                        info.first_offset,
                        info.last_offset,
                        now_ms,
                    );
                }
            }
            None => producers.advance(info.last_offset + 1),
        }
        drop(producers);
        self.producers_dirty.store(true, Ordering::Release);
        Ok(Appended {
            first_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time: info.log_append_time,
            duplicate: false,
        })
    }

    /// Appends, as leader, one batch a coordinator of this node writes for a producer: a
    /// transaction marker, or a transaction's offset commits. It is checked against the
    /// producer's state (epoch; for a marker, the coordinator epoch too) and recorded in
    /// it. Parked fetches are woken and the high watermark moved.
    pub fn append_from_coordinator(
        &self,
        records: &Bytes,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let (b, _) = RecordBatch::parse(records).map_err(AppendError::Storage)?;
        let (pid, epoch, transactional) =
            (b.producer_id(), b.producer_epoch(), b.is_transactional());
        let marker = batch::txn_marker(&b);
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        // Completed transactions below the high watermark are forgotten as it moves.
        producers.first_unstable_offset(self.high_watermark());
        if pid >= 0 {
            match marker {
                Some(m) => producers.check_marker(pid, epoch, m.coordinator_epoch)?,
                None => producers.check_txn(pid, epoch, transactional)?,
            }
        }
        let info =
            self.write_log()
                .append_from_coordinator(records, self.leader_epoch(), now_ms)?;
        match marker {
            Some(m) if pid >= 0 => {
                producers.record_marker(pid, epoch, info.first_offset, m, now_ms);
            }
            _ if pid >= 0 && transactional => {
                producers.record_txn_batch(pid, epoch, info.first_offset, info.last_offset, now_ms);
            }
            _ => producers.advance(info.last_offset + 1),
        }
        drop(producers);
        self.producers_dirty.store(true, Ordering::Release);
        self.maybe_advance_high_watermark();
        self.wake();
        Ok(Appended {
            first_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time: info.log_append_time,
            duplicate: false,
        })
    }

    /// The offset up to which `read_committed` consumers read: the high watermark, or the
    /// first offset of the oldest transaction still open (or whose marker is not committed
    /// yet) if that is lower.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_stable_offset(hw)
    }

    /// The first offset of the oldest transaction still open, or whose marker is not
    /// committed yet.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let hw = self.high_watermark();
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_unstable_offset(hw)
    }

    /// The aborted transactions a `read_committed` fetch of `from..to` must be told about.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .aborted_between(from, to)
    }

    /// The producers known here (DescribeProducers): id, epoch, last sequence (-1: none),
    /// last write time, coordinator epoch of their last marker, first offset of their open
    /// transaction (-1: none).
    pub fn active_producers(&self) -> Vec<(i64, i16, i32, i64, i32, i64)> {
        let producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = producers
            .all()
            .map(|(id, e)| {
                (
                    id,
                    e.epoch,
                    e.batches.back().map_or(-1, |b| b.last_seq),
                    e.last_timestamp,
                    e.coordinator_epoch,
                    e.current_txn_first_offset.unwrap_or(-1),
                )
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Every transaction open in this partition, as (producer, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open_transactions()
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
        let expired = {
            let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
            producers.prune_aborted(self.read_log().log_start_offset());
            producers.first_unstable_offset(self.high_watermark());
            producers.expire(now_ms, max_idle_ms)
        };
        if expired > 0 {
            self.producers_dirty.store(true, Ordering::Release);
        }
    }

    /// Registers a fetch that waits for data; it is notified on the next append.
    /// Only a weak reference is kept: a fetch that completes or is dropped leaves nothing
    /// behind but a dead entry, pruned here or on the next append.
    pub fn park(&self, waiter: &Arc<Notify>) {
        park_in(&self.waiters, waiter);
    }

    /// Like [`Partition::park`], for a follower's fetch.
    pub fn park_replica(&self, waiter: &Arc<Notify>) {
        park_in(&self.replica_waiters, waiter);
    }

    /// Wakes every parked fetch.
    pub fn wake(&self) {
        wake_all(&self.waiters);
        wake_all(&self.replica_waiters);
    }

    /// Re-reads the high watermark after the log changed underneath (deletion): it stays
    /// within the log.
    pub fn refresh_high_watermark(&self) {
        let (start, end) = {
            let log = self.read_log();
            (log.log_start_offset(), log.log_end_offset())
        };
        let hw = self.high_watermark().clamp(start, end);
        self.high_watermark.store(hw, Ordering::Release);
        self.maybe_advance_high_watermark();
    }
}

fn park_in(list: &Mutex<Vec<Weak<Notify>>>, waiter: &Arc<Notify>) {
    let mut w = list.lock().unwrap_or_else(|e| e.into_inner());
    if w.len() >= WAITERS_PRUNE_AT {
        w.retain(|n| n.strong_count() > 0);
    }
    w.push(Arc::downgrade(waiter));
}

fn wake_all(list: &Mutex<Vec<Weak<Notify>>>) {
    let waiters = std::mem::take(&mut *list.lock().unwrap_or_else(|e| e.into_inner()));
    for n in waiters.iter().filter_map(Weak::upgrade) {
        n.notify_one();
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
            state.replay_batch(&b);
        }
        if read.next_offset <= next {
            break;
        }
        next = read.next_offset;
    }
    (state, snapshot_offset)
}

/// Largest read while a coordinator replays its partition.
const REPLAY_READ_BYTES: usize = 8 * 1024 * 1024;

impl Partition {
    /// Hands every record of the log, from its start to its end, to `visit` in offset
    /// order, decoded: how a coordinator (groups, transactions) rebuilds its state. Up to
    /// the log end, not the high watermark: a new leader learns the high watermark only
    /// from its followers' next fetches, and the tail may hold writes its predecessor
    /// acknowledged (a leader's log is never truncated). An unreadable batch ends the
    /// replay, logged with `what`.
    pub fn replay_records(
        &self,
        what: &str,
        mut visit: impl FnMut(kafka_protocol::records::Record),
    ) {
        let (mut next, end) = {
            let log = self.read_log();
            (log.log_start_offset(), log.log_end_offset())
        };
        while next < end {
            let read = match self.read_log().read(next, REPLAY_READ_BYTES, end, true) {
                Ok(r) if !r.records.is_empty() => r,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot read {what}");
                    break;
                }
            };
            let mut bytes = read.records.clone();
            while !bytes.is_empty() {
                match kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) {
                    Ok(set) => set
                        .records
                        .into_iter()
                        .filter(|r| r.offset >= next)
                        .for_each(&mut visit),
                    Err(e) => {
                        tracing::error!(topic = %self.topic, partition = self.index, error = %e, "undecodable batch while reading {what}");
                        break;
                    }
                }
            }
            if read.next_offset <= next {
                break;
            }
            next = read.next_offset;
        }
    }
}

/// Every partition this node hosts, by (topic, index).
#[derive(Default)]
pub struct Partitions {
    /// By topic, then index: a lookup by `&str` needs no key built.
    map: RwLock<HashMap<String, HashMap<i32, Arc<Partition>>>>,
}

impl Partitions {
    pub fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)?
            .get(&index)
            .cloned()
    }

    pub fn insert(&self, p: Arc<Partition>) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(p.topic.clone())
            .or_default()
            .insert(p.index, p);
    }

    pub fn remove(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let partitions = map.get_mut(topic)?;
        let removed = partitions.remove(&index);
        if partitions.is_empty() {
            map.remove(topic);
        }
        removed
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flat_map(|t| t.values().cloned())
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
