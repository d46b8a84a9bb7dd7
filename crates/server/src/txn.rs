//! The transaction coordinator (KIP-98): `__transaction_state` and one coordinator per
//! partition of it.
//!
//! A transactional id lives in partition `abs(java_hash(id)) % partitions` of
//! `__transaction_state`, whose leader is its coordinator. Each hosted leader partition has
//! a [`TxnShard`]: the transactions of its ids, rebuilt on first use by replaying the
//! partition (Kafka's TransactionLogKey/Value records, version 0). Every change of a
//! transaction is written there (and replicated to the in-sync replicas) before it is
//! answered.
//!
//! A transaction goes Empty → Ongoing (partitions added) → PrepareCommit or PrepareAbort
//! (EndTxn, a timeout, or a new InitProducerId fencing the producer) → CompleteCommit or
//! CompleteAbort, once every partition's leader has written the producer's marker
//! (WriteTxnMarkers) and its in-sync replicas have it. Markers carry the coordinator epoch,
//! the partition's leader epoch here, so a deposed coordinator's markers are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use krust_metadata::controller::NewTopic;
use krust_protocol::records::{encode_batch, Compression, NewRecord};
use krust_protocol::ErrorCode;
use tracing::{debug, info, warn};

use crate::broker::{now_ms, Broker};
use crate::groups::coordinator_partition;
use crate::partition::{AppendError, Partition};

/// The internal topic holding transactions' state.
pub const TXN_TOPIC: &str = "__transaction_state";
/// How long a write to `__transaction_state` may wait for the in-sync replicas.
const TXN_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a marker's write may wait for the partition's in-sync replicas.
const MARKER_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a request waits for its transactional id's completion before it is answered
/// CONCURRENT_TRANSACTIONS.
const COMPLETION_WAIT: Duration = Duration::from_secs(2);
/// Longest a partition verification waits for another node's coordinator.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// Backoff between rounds of markers that failed.
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);
const MARKER_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A transaction's state, with Kafka's numbers (TransactionState ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnState {
    /// Every state's Kafka name.
    pub const NAMES: [&'static str; 8] = [
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
        "Dead",
        "PrepareEpochFence",
    ];

    fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's name, as its tools print it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    fn preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the open (or completing) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    /// When the open transaction began (-1: none).
    pub start_ms: i64,
}

/// The record key of `id` (TransactionLogKey v0).
pub fn encode_key(id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + id.len());
    b.put_i16(0);
    b.put_i16(id.len() as i16);
    b.put_slice(id.as_bytes());
    b.freeze()
}

/// The record value of `m` (TransactionLogValue v0).
pub fn encode_value(m: &TxnMeta) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state as i8);
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &m.partitions {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    b.put_i32(by_topic.len() as i32);
    for (t, ps) in by_topic {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

fn get_string(b: &mut &[u8]) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = b.get_i16();
    if len < 0 || b.remaining() < len as usize {
        return None;
    }
    let s = std::str::from_utf8(&b[..len as usize]).ok()?.to_string();
    b.advance(len as usize);
    Some(s)
}

/// The transactional id of a record key; `None` if it is not a version-0 key.
pub fn decode_key(mut b: &[u8]) -> Option<String> {
    if b.remaining() < 2 || b.get_i16() != 0 {
        return None;
    }
    get_string(&mut b)
}

/// A record value (version 0, or 1 read as far as version 0's fields go).
pub fn decode_value(mut b: &[u8]) -> Option<TxnMeta> {
    if b.remaining() < 2 {
        return None;
    }
    let version = b.get_i16();
    if version != 0 {
        // Version 1 is flexible (compact strings, tagged fields): not written by krust.
        return None;
    }
    if b.remaining() < 8 + 2 + 4 + 1 + 4 {
        return None;
    }
    let producer_id = b.get_i64();
    let producer_epoch = b.get_i16();
    let timeout_ms = b.get_i32();
    let state = TxnState::from_id(b.get_i8())?;
    let topics = b.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let t = get_string(&mut b)?;
        if b.remaining() < 4 {
            return None;
        }
        let n = b.get_i32();
        if n < 0 || b.remaining() < 4 * n as usize {
            return None;
        }
        for _ in 0..n {
            partitions.insert((t.clone(), b.get_i32()));
        }
    }
    if b.remaining() < 16 {
        return None;
    }
    let last_update_ms = b.get_i64();
    let start_ms = b.get_i64();
    Some(TxnMeta {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
}

/// One `__transaction_state` partition's coordinator.
pub struct TxnShard {
    pub partition: Arc<Partition>,
    /// The partition's leader epoch when loaded: the coordinator epoch of its markers.
    pub coordinator_epoch: i32,
    state: tokio::sync::Mutex<ShardState>,
    /// Woken when a completion ends.
    completed: tokio::sync::Notify,
}

#[derive(Default)]
struct ShardState {
    txns: BTreeMap<String, TxnMeta>,
    /// Ids whose markers are being written.
    completing: HashSet<String>,
    /// Ids whose markers were refused as stale: a newer coordinator or producer epoch
    /// wrote past them, so they are not retried by this shard.
    abandoned: HashSet<String>,
}

type VerifyConnection = Arc<tokio::sync::Mutex<Option<krust_client::Connection>>>;

/// All transaction coordinators of this node.
#[derive(Default)]
pub struct TxnManager {
    shards: Mutex<BTreeMap<i32, Arc<TxnShard>>>,
    /// Connections to other nodes' coordinators, for partition verification: one per node.
    verify_conns: Mutex<HashMap<i32, VerifyConnection>>,
}

impl TxnManager {
    /// Forgets shards whose partition is no longer led here, or was led again since.
    pub fn retain_hosted(&self, broker: &Broker) {
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        shards.retain(|&p, s| {
            broker.partitions.get(TXN_TOPIC, p).is_some_and(|hosted| {
                Arc::ptr_eq(&hosted, &s.partition)
                    && hosted.is_leader()
                    && hosted.leader_epoch() == s.coordinator_epoch
            })
        });
    }

    fn all(&self) -> Vec<Arc<TxnShard>> {
        self.shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// An error for a transactional request, with how old clients are told of fencing.
fn fenced(version: i16, new_from: i16) -> ErrorCode {
    if version >= new_from {
        ErrorCode::ProducerFenced
    } else {
        ErrorCode::InvalidProducerEpoch
    }
}

impl Broker {
    /// The partition of `__transaction_state` coordinating `txn_id`, creating the topic on
    /// first use. `Err` is the error FindCoordinator should answer.
    pub async fn txn_partition(&self, txn_id: &str) -> Result<i32, (ErrorCode, String)> {
        let count = match self.image().topic(TXN_TOPIC) {
            Some(t) => t.partitions.len() as i32,
            None => self.create_txn_topic().await?,
        };
        if count <= 0 {
            return Err((
                ErrorCode::CoordinatorNotAvailable,
                "the transaction state topic has no partitions".into(),
            ));
        }
        Ok(coordinator_partition(txn_id, count))
    }

    async fn create_txn_topic(&self) -> Result<i32, (ErrorCode, String)> {
        let live = self.live_brokers();
        let rf = self.config.transaction_state_log_replication_factor;
        if rf as usize > live.len() {
            return Err((
                ErrorCode::CoordinatorNotAvailable,
                format!(
                    "cannot create {TXN_TOPIC}: transaction.state.log.replication.factor is {rf} but only {} broker(s) are available",
                    live.len()
                ),
            ));
        }
        let topic = NewTopic {
            name: TXN_TOPIC.to_string(),
            num_partitions: self.config.transaction_state_log_num_partitions,
            replication_factor: rf,
            assignments: vec![],
            configs: vec![
                ("cleanup.policy".into(), Some("compact".into())),
                ("compression.type".into(), Some("producer".into())),
                (
                    "min.insync.replicas".into(),
                    Some(self.config.transaction_state_log_min_isr.to_string()),
                ),
                (
                    "segment.bytes".into(),
                    Some(self.config.transaction_state_log_segment_bytes.to_string()),
                ),
                (
                    "unclean.leader.election.enable".into(),
                    Some("false".into()),
                ),
            ],
        };
        self.create_internal_topic(topic).await
    }

    /// The coordinator shard of `txn_id`, loading it on first use; `Err` is the error to
    /// answer (NOT_COORDINATOR when another node leads its partition).
    pub fn txn_shard(&self, txn_id: &str) -> Result<Arc<TxnShard>, ErrorCode> {
        // Kafka refuses an empty id; one too long for the record key could not be reloaded.
        if txn_id.is_empty() || txn_id.len() > i16::MAX as usize {
            return Err(ErrorCode::InvalidRequest);
        }
        let index = match self.image().topic(TXN_TOPIC) {
            Some(t) if !t.partitions.is_empty() => {
                coordinator_partition(txn_id, t.partitions.len() as i32)
            }
            _ => return Err(ErrorCode::NotCoordinator),
        };
        let partition = self
            .partition(TXN_TOPIC, index)
            .filter(|p| p.is_leader())
            .ok_or(ErrorCode::NotCoordinator)?;
        Ok(self.txn_shard_at(index, partition))
    }

    /// The shard of partition `index` (led here), loaded from `partition` unless it is
    /// under its current leader epoch.
    fn txn_shard_at(&self, index: i32, partition: Arc<Partition>) -> Arc<TxnShard> {
        let current = |s: &Arc<TxnShard>| {
            Arc::ptr_eq(&s.partition, &partition) && s.coordinator_epoch == partition.leader_epoch()
        };
        let lock = || self.txns.shards.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = lock().get(&index).filter(|s| current(s)) {
            return s.clone();
        }
        // Loaded without the map's lock (other partitions' lookups go on); of two loads at
        // once, the first one in the map is the one used.
        let loaded = Arc::new(load_shard(partition.clone()));
        let shard = {
            let mut shards = lock();
            match shards.get(&index).filter(|s| current(s)) {
                Some(s) => return s.clone(),
                None => {
                    shards.insert(index, loaded.clone());
                    loaded
                }
            }
        };
        // Transactions found half completed are completed now.
        if let Some(b) = self.self_arc() {
            let s = shard.clone();
            tokio::spawn(async move { b.resume_completions(&s).await });
        }
        shard
    }

    /// Loads the shards of every `__transaction_state` partition led here.
    fn load_led_txn_shards(&self) {
        if let Some(t) = self.image().topic(TXN_TOPIC) {
            for &index in t.partitions.keys() {
                let led = self.partition(TXN_TOPIC, index).filter(|p| p.is_leader());
                if let Some(p) = led {
                    self.txn_shard_at(index, p);
                }
            }
        }
    }

    /// ListTransactions: the transactions this node coordinates, filtered by state names,
    /// producer ids and (with `min_duration_ms` >= 0) how long they have been open.
    pub async fn txn_list(
        &self,
        states: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<(String, i64, &'static str)> {
        self.load_led_txn_shards();
        let now = now_ms();
        let mut out = Vec::new();
        for shard in self.txns.all() {
            if !shard.partition.is_leader()
                || shard.partition.leader_epoch() != shard.coordinator_epoch
            {
                continue;
            }
            for (id, m) in &shard.state.lock().await.txns {
                let state = m.state.name();
                if (!states.is_empty() && !states.iter().any(|s| s == state))
                    || (!producer_ids.is_empty() && !producer_ids.contains(&m.producer_id))
                    || (min_duration_ms >= 0
                        && (m.start_ms < 0 || now.saturating_sub(m.start_ms) < min_duration_ms))
                {
                    continue;
                }
                out.push((id.clone(), m.producer_id, state));
            }
        }
        out
    }

    /// DescribeTransactions for one id.
    pub async fn txn_describe(&self, txn_id: &str) -> Result<TxnMeta, ErrorCode> {
        let shard = self.txn_shard(txn_id)?;
        let st = shard.state.lock().await;
        st.txns
            .get(txn_id)
            .cloned()
            .ok_or(ErrorCode::TransactionalIdNotFound)
    }

    /// Writes `meta` for `id` to the shard's partition and records it in memory. The
    /// caller holds the shard's state; the write is acknowledged by
    /// [`Broker::txn_write_acked`].
    fn txn_write(
        &self,
        shard: &TxnShard,
        st: &mut ShardState,
        id: &str,
        meta: Option<TxnMeta>,
    ) -> Result<i64, ErrorCode> {
        if !shard.partition.is_leader() || shard.partition.leader_epoch() != shard.coordinator_epoch
        {
            return Err(ErrorCode::NotCoordinator);
        }
        let min_isr = self.min_insync_replicas(TXN_TOPIC);
        if (shard.partition.replicas().isr.len() as i32) < min_isr {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let record = NewRecord::key_value(encode_key(id), meta.as_ref().map(encode_value));
        let now = now_ms();
        let batch = encode_batch(std::slice::from_ref(&record), now, Compression::None)
            .map_err(|_| ErrorCode::UnknownServerError)?;
        let appended = shard.partition.append(&batch, now).map_err(|e| {
            warn!(error = %e, "could not write to {TXN_TOPIC}");
            ErrorCode::CoordinatorNotAvailable
        })?;
        match meta {
            Some(m) => st.txns.insert(id.to_string(), m),
            None => st.txns.remove(id),
        };
        Ok(appended.last_offset)
    }

    /// Waits until the in-sync replicas have the write at `offset`.
    async fn txn_write_acked(&self, shard: &TxnShard, offset: i64) -> Result<(), ErrorCode> {
        if shard
            .partition
            .wait_for_high_watermark(offset, TXN_WRITE_TIMEOUT)
            .await
        {
            Ok(())
        } else if shard.partition.is_leader() {
            Err(ErrorCode::CoordinatorNotAvailable)
        } else {
            Err(ErrorCode::NotCoordinator)
        }
    }

    /// The shard's state, once `txn_id`'s transaction is no longer being completed (at most
    /// [`COMPLETION_WAIT`]): a producer beginning its next transaction right after a commit
    /// waits for the markers of the last one here, rather than being told
    /// CONCURRENT_TRANSACTIONS and backing off (librdkafka for 100 ms) before asking again.
    async fn lock_settled<'a>(
        &self,
        shard: &'a TxnShard,
        txn_id: &str,
    ) -> tokio::sync::MutexGuard<'a, ShardState> {
        let deadline = tokio::time::Instant::now() + COMPLETION_WAIT;
        loop {
            let notified = shard.completed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let st = shard.state.lock().await;
            let completing = st.completing.contains(txn_id)
                && st.txns.get(txn_id).is_some_and(|m| m.state.preparing());
            if !completing {
                return st;
            }
            drop(st);
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return shard.state.lock().await;
            }
        }
    }

    /// Waits until everything written to the shard's partition so far is acknowledged: an
    /// answer given without a write of its own (a retry) may rest on an earlier write
    /// that is not yet.
    async fn txn_settled(&self, shard: &TxnShard) -> Result<(), ErrorCode> {
        let last = shard.partition.read_log().log_end_offset() - 1;
        if last < 0 {
            return Ok(());
        }
        self.txn_write_acked(shard, last).await
    }

    /// InitProducerId with a transactional id: the producer id and a new epoch for it,
    /// fencing older producers of the same id; an open transaction of theirs is aborted
    /// first (CONCURRENT_TRANSACTIONS until that is done).
    pub async fn txn_init_producer(
        &self,
        txn_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        version: i16,
    ) -> Result<(i64, i16), ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let shard = self.txn_shard(txn_id)?;
        let mut st = self.lock_settled(&shard, txn_id).await;
        let now = now_ms();
        let current = st.txns.get(txn_id).cloned();
        let (meta, answer) = match current {
            None => {
                let pid = self.allocate_producer_id().await.map_err(|e| {
                    warn!(error = %e, "could not allocate a producer id");
                    crate::broker::control_error_code(&e)
                })?;
                let meta = TxnMeta {
                    producer_id: pid,
                    producer_epoch: 0,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    last_update_ms: now,
                    start_ms: -1,
                };
                (meta, Ok((pid, 0)))
            }
            Some(m) => {
                // A transaction being completed (or aborted to fence this id's producer)
                // is waited for first, whoever asks.
                if m.state.preparing() || m.state == TxnState::PrepareEpochFence {
                    return Err(ErrorCode::ConcurrentTransactions);
                }
                if let Some((pid, epoch)) = expected {
                    // KIP-360: a producer that knows its id and epoch may only re-initialize
                    // as the current one (or retry the bump it just got).
                    let current = pid == m.producer_id && epoch == m.producer_epoch;
                    let retried =
                        pid == m.producer_id && epoch.checked_add(1) == Some(m.producer_epoch);
                    // A bump leaves the id Empty; a fence (CompleteAbort) hands its epoch to
                    // nobody, so a fenced producer cannot take it as a retry.
                    if retried && m.state == TxnState::Empty {
                        drop(st);
                        self.txn_settled(&shard).await?;
                        return Ok((m.producer_id, m.producer_epoch));
                    }
                    if !current {
                        return Err(fenced(version, 4));
                    }
                }
                match m.state {
                    TxnState::PrepareCommit
                    | TxnState::PrepareAbort
                    | TxnState::PrepareEpochFence => return Err(ErrorCode::ConcurrentTransactions),
                    TxnState::Ongoing => {
                        // Fence the old producer: its transaction is aborted under a new
                        // epoch, which its late writes cannot pass.
                        let mut next = m.clone();
                        fence_epoch(&mut next);
                        next.state = TxnState::PrepareAbort;
                        next.last_update_ms = now;
                        (next, Err(ErrorCode::ConcurrentTransactions))
                    }
                    TxnState::Dead => return Err(ErrorCode::ConcurrentTransactions),
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                        let mut next = m.clone();
                        bump_epoch(&mut next, self).await?;
                        next.state = TxnState::Empty;
                        next.timeout_ms = timeout_ms;
                        next.partitions.clear();
                        next.last_update_ms = now;
                        next.start_ms = -1;
                        let answer = Ok((next.producer_id, next.producer_epoch));
                        (next, answer)
                    }
                }
            }
        };
        let preparing = meta.state.preparing();
        let offset = self.txn_write(&shard, &mut st, txn_id, Some(meta))?;
        if preparing {
            // The completion waits for this write to be acknowledged, however long that
            // takes, before it writes any marker.
            st.completing.insert(txn_id.to_string());
            self.spawn_completion(&shard, txn_id);
        }
        drop(st);
        self.txn_write_acked(&shard, offset).await?;
        answer
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: adds partitions to the producer's transaction,
    /// opening it. The error is for every partition; unknown partitions are answered by the
    /// caller before this.
    pub async fn txn_add_partitions(
        &self,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        fenced_from: i16,
        version: i16,
    ) -> Result<(), ErrorCode> {
        let shard = self.txn_shard(txn_id)?;
        let mut st = self.lock_settled(&shard, txn_id).await;
        let m = check_producer(
            &st,
            txn_id,
            producer_id,
            epoch,
            fenced(version, fenced_from),
        )?;
        if m.state.preparing() || m.state == TxnState::PrepareEpochFence {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        if m.state == TxnState::Dead {
            return Err(ErrorCode::InvalidTxnState);
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            drop(st);
            return self.txn_settled(&shard).await;
        }
        let now = now_ms();
        let mut next = m.clone();
        if next.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        let offset = self.txn_write(&shard, &mut st, txn_id, Some(next))?;
        drop(st);
        self.txn_write_acked(&shard, offset).await
    }

    /// Partition verification (KIP-890), on the coordinator: whether each partition is in
    /// the producer's open transaction (INVALID_TXN_STATE if not). `Err` is for them all.
    pub async fn txn_verify(
        &self,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        let shard = self.txn_shard(txn_id)?;
        let st = shard.state.lock().await;
        let m = check_producer(
            &st,
            txn_id,
            producer_id,
            epoch,
            ErrorCode::InvalidProducerEpoch,
        )?;
        let codes = partitions
            .iter()
            .map(|p| {
                if m.state == TxnState::Ongoing && m.partitions.contains(p) {
                    ErrorCode::None
                } else {
                    ErrorCode::InvalidTxnState
                }
            })
            .collect();
        drop(st);
        // Only what the in-sync replicas have: a failover must not lose what confirmed it.
        self.txn_settled(&shard).await?;
        Ok(codes)
    }

    /// Partition verification from a partition leader: asks the coordinator of `txn_id`
    /// (this node, or another with AddPartitionsToTxn v4 `verify_only`). Coordinator
    /// errors and unreachable coordinators become NOT_ENOUGH_REPLICAS, which producers
    /// retry, as in Kafka.
    pub async fn txn_verify_partitions(
        &self,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> HashMap<(String, i32), ErrorCode> {
        let retriable = |code: ErrorCode| match code {
            ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::RequestTimedOut => ErrorCode::NotEnoughReplicas,
            other => other,
        };
        let all = |code: ErrorCode| {
            partitions
                .iter()
                .map(|p| (p.clone(), retriable(code)))
                .collect::<HashMap<_, _>>()
        };
        let image = self.image();
        let Some(t) = image.topic(TXN_TOPIC).filter(|t| !t.partitions.is_empty()) else {
            return all(ErrorCode::CoordinatorNotAvailable);
        };
        if txn_id.is_empty() || txn_id.len() > i16::MAX as usize {
            return all(ErrorCode::InvalidRequest);
        }
        let index = coordinator_partition(txn_id, t.partitions.len() as i32);
        let leader = t.partitions.get(&index).map_or(-1, |p| p.leader);
        if leader == self.node_id {
            return match self
                .txn_verify(txn_id, producer_id, epoch, partitions)
                .await
            {
                Ok(codes) => partitions
                    .iter()
                    .cloned()
                    .zip(codes.into_iter().map(retriable))
                    .collect(),
                Err(code) => all(code),
            };
        }
        if leader < 0 {
            return all(ErrorCode::CoordinatorNotAvailable);
        }
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t.as_str()).or_default().push(*p);
        }
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(crate::handlers::sb(txn_id)))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch)
                .with_verify_only(true)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            AddPartitionsToTxnTopic::default()
                                .with_name(TopicName(crate::handlers::sb(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                ),
        ]);
        let Some(resp) = self.ask_coordinator(leader, &req).await else {
            return all(ErrorCode::CoordinatorNotAvailable);
        };
        if resp.error_code != 0 {
            return all(
                ErrorCode::from_code(resp.error_code).unwrap_or(ErrorCode::UnknownServerError)
            );
        }
        let mut out = all(ErrorCode::NotEnoughReplicas);
        for r in resp.results_by_transaction {
            for t in r.topic_results {
                for p in t.results_by_partition {
                    let code = ErrorCode::from_code(p.partition_error_code)
                        .unwrap_or(ErrorCode::UnknownServerError);
                    out.insert((t.name.to_string(), p.partition_index), retriable(code));
                }
            }
        }
        out
    }

    /// One request to the coordinator node `leader` over a kept connection (opened again
    /// after a failure).
    async fn ask_coordinator(
        &self,
        leader: i32,
        req: &AddPartitionsToTxnRequest,
    ) -> Option<kafka_protocol::messages::AddPartitionsToTxnResponse> {
        let addr = self.inter_broker_address(leader)?;
        // One connection per coordinator node, so a slow one holds up only its own.
        let slot = self
            .txns
            .verify_conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(leader)
            .or_default()
            .clone();
        let ask = async {
            let mut conn = slot.lock().await;
            if !conn
                .as_ref()
                .is_some_and(|c| !c.is_broken() && c.addr() == addr)
            {
                match self
                    .inter_broker_connect(&addr, "krust-txn-verify", VERIFY_TIMEOUT)
                    .await
                {
                    Ok(c) => *conn = Some(c),
                    Err(e) => {
                        debug!(leader, error = %e, "cannot reach a transaction coordinator");
                        return None;
                    }
                }
            }
            let c = conn.as_mut()?;
            match c.send_version(req, 4).await {
                Ok(r) => Some(r),
                Err(e) => {
                    debug!(leader, error = %e, "partition verification failed");
                    *conn = None;
                    None
                }
            }
        };
        // The producer retries (NOT_ENOUGH_REPLICAS) rather than wait behind a dead node.
        tokio::time::timeout(VERIFY_TIMEOUT, ask)
            .await
            .ok()
            .flatten()
    }

    /// EndTxn: commits or aborts the producer's transaction. Answered once the decision is
    /// written; the markers follow.
    pub async fn txn_end(
        &self,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        version: i16,
    ) -> Result<(), ErrorCode> {
        let shard = self.txn_shard(txn_id)?;
        let mut st = shard.state.lock().await;
        let m = check_producer(&st, txn_id, producer_id, epoch, fenced(version, 2))?;
        let prepare = match (m.state, commit) {
            (TxnState::Ongoing, true) => TxnState::PrepareCommit,
            (TxnState::Ongoing, false) => TxnState::PrepareAbort,
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                drop(st);
                return self.txn_settled(&shard).await;
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                return Err(ErrorCode::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => return Err(ErrorCode::ConcurrentTransactions),
            _ => return Err(ErrorCode::InvalidTxnState),
        };
        let mut next = m.clone();
        next.state = prepare;
        next.last_update_ms = now_ms();
        let offset = self.txn_write(&shard, &mut st, txn_id, Some(next))?;
        st.completing.insert(txn_id.to_string());
        self.spawn_completion(&shard, txn_id);
        drop(st);
        self.txn_write_acked(&shard, offset).await
    }

    fn spawn_completion(&self, shard: &Arc<TxnShard>, txn_id: &str) {
        if let Some(b) = self.self_arc() {
            let shard = shard.clone();
            let id = txn_id.to_string();
            tokio::spawn(async move { b.complete_txn(&shard, &id).await });
        }
    }

    /// Completes all transactions of a freshly loaded shard that were left preparing.
    async fn resume_completions(&self, shard: &Arc<TxnShard>) {
        let ids: Vec<String> = {
            let mut st = shard.state.lock().await;
            let preparing: Vec<String> = st
                .txns
                .iter()
                .filter(|(_, m)| m.state.preparing())
                .map(|(id, _)| id.clone())
                .collect();
            // Only those no request or tick has started completing meanwhile: one
            // completion per transaction, or a late marker of a second one could close
            // the producer's next transaction.
            preparing
                .into_iter()
                .filter(|id| st.completing.insert(id.clone()))
                .collect()
        };
        for id in ids {
            self.spawn_completion(shard, &id);
        }
    }

    /// Writes the markers of `txn_id`'s prepared transaction to all its partitions, then
    /// writes it complete. Gives up when this node stops coordinating it.
    async fn complete_txn(&self, shard: &Arc<TxnShard>, txn_id: &str) {
        let Some(m) = shard.state.lock().await.txns.get(txn_id).cloned() else {
            return;
        };
        if !m.state.preparing() {
            shard.state.lock().await.completing.remove(txn_id);
            return;
        }
        let commit = m.state == TxnState::PrepareCommit;
        // No marker before the decision is acknowledged: a coordinator elected after a
        // failover must find it, not the open transaction.
        let decided = shard.partition.read_log().log_end_offset() - 1;
        loop {
            if !shard.partition.is_leader()
                || shard.partition.leader_epoch() != shard.coordinator_epoch
            {
                return;
            }
            if shard
                .partition
                .wait_for_high_watermark(decided, TXN_WRITE_TIMEOUT)
                .await
            {
                break;
            }
        }
        let mut pending: BTreeSet<(String, i32)> = m.partitions.clone();
        let mut backoff = MARKER_RETRY_BACKOFF;
        while !pending.is_empty() {
            if !shard.partition.is_leader()
                || shard.partition.leader_epoch() != shard.coordinator_epoch
            {
                debug!(
                    txn_id,
                    "no longer coordinating; leaving the markers to the new coordinator"
                );
                return;
            }
            // Still this transaction (a fenced or completed one is left alone).
            let current = shard
                .state
                .lock()
                .await
                .txns
                .get(txn_id)
                .is_some_and(|cur| {
                    cur.producer_id == m.producer_id
                        && cur.producer_epoch == m.producer_epoch
                        && cur.state == m.state
                });
            if !current {
                shard.state.lock().await.completing.remove(txn_id);
                return;
            }
            let (done, stale) = self
                .send_markers(
                    m.producer_id,
                    m.producer_epoch,
                    commit,
                    shard.coordinator_epoch,
                    &pending,
                )
                .await;
            if stale {
                // A newer coordinator or producer epoch wrote there already: this one's
                // view is outdated, and completing would claim what did not happen.
                tracing::error!(txn_id, producer_id = m.producer_id, "transaction markers refused as stale; leaving the transaction to a newer coordinator");
                let mut st = shard.state.lock().await;
                st.completing.remove(txn_id);
                st.abandoned.insert(txn_id.to_string());
                drop(st);
                shard.completed.notify_waiters();
                return;
            }
            for p in done {
                pending.remove(&p);
            }
            if !pending.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MARKER_RETRY_BACKOFF_MAX);
            }
        }
        let mut st = shard.state.lock().await;
        st.completing.remove(txn_id);
        let still = st.txns.get(txn_id).is_some_and(|cur| {
            cur.producer_id == m.producer_id
                && cur.producer_epoch == m.producer_epoch
                && cur.state == m.state
        });
        if !still {
            drop(st);
            shard.completed.notify_waiters();
            return;
        }
        let mut next = m.clone();
        next.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        next.partitions.clear();
        next.last_update_ms = now_ms();
        next.start_ms = -1;
        match self.txn_write(shard, &mut st, txn_id, Some(next)) {
            Ok(offset) => {
                drop(st);
                if let Err(e) = self.txn_write_acked(shard, offset).await {
                    debug!(txn_id, error = %e, "completion not acknowledged yet");
                }
            }
            Err(e) => warn!(txn_id, error = %e, "could not write a transaction complete"),
        }
        shard.completed.notify_waiters();
    }

    /// One round of markers: groups the partitions by leader and asks each (this node
    /// directly). Returns the partitions done: written, or gone (deleted topics).
    async fn send_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partitions: &BTreeSet<(String, i32)>,
    ) -> (Vec<(String, i32)>, bool) {
        let image = self.image();
        let mut done = Vec::new();
        let mut stale = false;
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (t, p) in partitions {
            match image.topic(t).and_then(|ti| ti.partitions.get(p)) {
                None => done.push((t.clone(), *p)),
                Some(pi) if pi.leader >= 0 => by_leader
                    .entry(pi.leader)
                    .or_default()
                    .push((t.clone(), *p)),
                Some(_) => {}
            }
        }
        for (leader, parts) in by_leader {
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &parts {
                topics.entry(t.as_str()).or_default().push(*p);
            }
            let marker = WritableTxnMarker::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch)
                .with_transaction_result(commit)
                .with_coordinator_epoch(coordinator_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            WritableTxnMarkerTopic::default()
                                .with_name(TopicName(crate::handlers::sb(t)))
                                .with_partition_indexes(ps)
                        })
                        .collect(),
                );
            let req = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
            let resp = if leader == self.node_id {
                Some(self.write_txn_markers(req).await)
            } else {
                self.send_markers_to(leader, &req).await
            };
            let Some(resp) = resp else { continue };
            for m in resp.markers {
                for t in m.topics {
                    for p in t.partitions {
                        let code = ErrorCode::from_code(p.error_code);
                        let tp = (t.name.to_string(), p.partition_index);
                        match code {
                            Some(ErrorCode::None) => done.push(tp),
                            // Gone, or a newer coordinator or producer epoch already wrote
                            // past this transaction: nothing more to write here.
                            Some(ErrorCode::UnknownTopicOrPartition)
                                if image.topic(&tp.0).is_none() =>
                            {
                                done.push(tp)
                            }
                            Some(ErrorCode::InvalidProducerEpoch)
                            | Some(ErrorCode::TransactionCoordinatorFenced) => {
                                warn!(topic = %tp.0, partition = tp.1, producer_id, error = p.error_code, "marker refused as stale");
                                stale = true;
                            }
                            _ => {
                                debug!(topic = %tp.0, partition = tp.1, error = p.error_code, "marker not written yet; retrying")
                            }
                        }
                    }
                }
            }
        }
        (done, stale)
    }

    async fn send_markers_to(
        &self,
        leader: i32,
        req: &WriteTxnMarkersRequest,
    ) -> Option<WriteTxnMarkersResponse> {
        let addr = self.inter_broker_address(leader)?;
        let mut conn = match self
            .inter_broker_connect(
                &addr,
                "krust-txn-markers",
                MARKER_WRITE_TIMEOUT + Duration::from_secs(5),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                debug!(leader, error = %e, "cannot reach a partition leader for markers");
                return None;
            }
        };
        match conn.send(req).await {
            Ok(r) => Some(r),
            Err(e) => {
                debug!(leader, error = %e, "WriteTxnMarkers failed");
                None
            }
        }
    }

    /// WriteTxnMarkers: appends each producer's marker to the partitions this node leads
    /// and answers once their in-sync replicas have it. A marker reaching a
    /// `__consumer_offsets` partition completes the transaction's offsets there.
    pub async fn write_txn_markers(&self, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
        let now = now_ms();
        let mut resp = WriteTxnMarkersResponse::default();
        for m in req.markers {
            let pid = m.producer_id.0;
            let mut result = WritableTxnMarkerResult::default().with_producer_id(m.producer_id);
            for t in m.topics {
                let name = t.name.to_string();
                let mut tr = WritableTxnMarkerTopicResult::default().with_name(t.name.clone());
                for index in t.partition_indexes {
                    let code = self
                        .write_one_marker(
                            &name,
                            index,
                            pid,
                            m.producer_epoch,
                            m.transaction_result,
                            m.coordinator_epoch,
                            now,
                        )
                        .await;
                    tr.partitions.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(code.code()),
                    );
                }
                result.topics.push(tr);
            }
            resp.markers.push(result);
        }
        resp
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_one_marker(
        &self,
        topic: &str,
        index: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now: i64,
    ) -> ErrorCode {
        let partition = match self.leader_partition(topic, index) {
            Ok(p) => p,
            Err(code) => return code,
        };
        let batch = match krust_protocol::records::encode_txn_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now,
        ) {
            Ok(b) => b,
            Err(_) => return ErrorCode::UnknownServerError,
        };
        let appended = match partition.append_from_coordinator(&batch, now) {
            Ok(a) => a,
            Err(AppendError::Storage(e)) => return crate::handlers::produce::storage_error(&e).0,
            Err(AppendError::Producer(e)) => return crate::handlers::produce::producer_error(&e).0,
        };
        if !partition
            .wait_for_high_watermark(appended.last_offset, MARKER_WRITE_TIMEOUT)
            .await
        {
            return if partition.is_leader() {
                ErrorCode::RequestTimedOut
            } else {
                ErrorCode::NotLeaderOrFollower
            };
        }
        if topic == crate::groups::OFFSETS_TOPIC {
            self.complete_group_txn(index, producer_id, commit).await;
        }
        ErrorCode::None
    }

    /// Periodic: aborts transactions open past their timeout (fencing their producer with
    /// a new epoch), completes any left preparing, and with `expire_ids` forgets ids
    /// unused for `transactional.id.expiration.ms`.
    pub async fn txn_tick(&self, expire_ids: bool) {
        // A partition led here since the last tick (a failover) is loaded now, so that the
        // transactions its old coordinator left preparing get completed without waiting
        // for their producers.
        self.load_led_txn_shards();
        let now = now_ms();
        let expiration = i64::from(self.config.transactional_id_expiration_ms);
        for shard in self.txns.all() {
            let mut st = shard.state.lock().await;
            let timed_out: Vec<String> = st
                .txns
                .iter()
                .filter(|(_, m)| {
                    m.state == TxnState::Ongoing
                        && m.start_ms >= 0
                        && now.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
                })
                .map(|(id, _)| id.clone())
                .collect();
            let mut to_complete = Vec::new();
            for id in timed_out {
                let Some(mut next) = st.txns.get(&id).cloned() else {
                    continue;
                };
                fence_epoch(&mut next);
                info!(txn_id = %id, producer_id = next.producer_id, "aborting a transaction past its timeout");
                next.state = TxnState::PrepareAbort;
                next.last_update_ms = now;
                if self.txn_write(&shard, &mut st, &id, Some(next)).is_ok() {
                    st.completing.insert(id.clone());
                    to_complete.push(id);
                }
            }
            let stuck: Vec<String> = st
                .txns
                .iter()
                .filter(|(id, m)| {
                    m.state.preparing()
                        && !st.completing.contains(*id)
                        && !st.abandoned.contains(*id)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in stuck {
                st.completing.insert(id.clone());
                to_complete.push(id);
            }
            if expire_ids {
                let expired: Vec<String> = st
                    .txns
                    .iter()
                    .filter(|(_, m)| {
                        matches!(
                            m.state,
                            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                        ) && now.saturating_sub(m.last_update_ms) > expiration
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in expired {
                    info!(txn_id = %id, "forgetting an expired transactional id");
                    let _ = self.txn_write(&shard, &mut st, &id, None);
                }
            }
            drop(st);
            for id in to_complete {
                self.spawn_completion(&shard, &id);
            }
        }
    }
}

/// The id's transaction, checked against the producer asking.
fn check_producer<'a>(
    st: &'a ShardState,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    fenced: ErrorCode,
) -> Result<&'a TxnMeta, ErrorCode> {
    let m = st
        .txns
        .get(txn_id)
        .ok_or(ErrorCode::InvalidProducerIdMapping)?;
    if m.producer_id != producer_id {
        return Err(ErrorCode::InvalidProducerIdMapping);
    }
    if m.producer_epoch != epoch {
        return Err(fenced);
    }
    Ok(m)
}

/// Fences `m`'s producer: the next epoch, under the same producer id, so that the
/// transaction's markers close what that id opened in its partitions.
fn fence_epoch(m: &mut TxnMeta) {
    m.producer_epoch = m.producer_epoch.saturating_add(1);
}

/// The next epoch of `m`'s producer; a new producer id once the epoch is exhausted.
async fn bump_epoch(m: &mut TxnMeta, broker: &Broker) -> Result<(), ErrorCode> {
    if m.producer_epoch >= i16::MAX - 1 {
        m.producer_id = broker.allocate_producer_id().await.map_err(|e| {
            warn!(error = %e, "could not allocate a producer id");
            crate::broker::control_error_code(&e)
        })?;
        m.producer_epoch = 0;
    } else {
        m.producer_epoch += 1;
    }
    Ok(())
}

/// Builds a shard by replaying its partition.
fn load_shard(partition: Arc<Partition>) -> TxnShard {
    let coordinator_epoch = partition.leader_epoch();
    let mut txns: BTreeMap<String, TxnMeta> = BTreeMap::new();
    let mut records = 0u64;
    partition.replay_records("the transactions' records", |r| {
        if r.control {
            return;
        }
        let Some(id) = r.key.as_deref().and_then(decode_key) else {
            return;
        };
        records += 1;
        match r.value.as_deref() {
            None => {
                txns.remove(&id);
            }
            Some(v) => match decode_value(v) {
                Some(m) => {
                    txns.insert(id, m);
                }
                None => warn!(
                    partition = partition.index,
                    offset = r.offset,
                    "skipping an unreadable transaction record"
                ),
            },
        }
    });
    info!(
        partition = partition.index,
        records,
        transactional_ids = txns.len(),
        coordinator_epoch,
        "loaded transactions"
    );
    TxnShard {
        partition,
        coordinator_epoch,
        state: tokio::sync::Mutex::new(ShardState {
            txns,
            completing: HashSet::new(),
            abandoned: HashSet::new(),
        }),
        completed: tokio::sync::Notify::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_kafkas_layout() {
        let m = TxnMeta {
            producer_id: 4000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_string(), 1),
                ("a".to_string(), 0),
                ("b".to_string(), 7),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 11,
            start_ms: 10,
        };
        let v = encode_value(&m);
        assert_eq!(decode_value(&v), Some(m.clone()));
        // version, producer id, epoch, timeout, state
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(v[2 + 8 + 2 + 4], 1);
        let k = encode_key("tx-1");
        assert_eq!(&k[..], &[0, 0, 0, 4, b't', b'x', b'-', b'1']);
        assert_eq!(decode_key(&k).as_deref(), Some("tx-1"));
        // Cut or foreign input is refused, never a panic.
        for cut in 0..v.len() {
            assert!(decode_value(&v[..cut]).is_none() || cut == v.len());
        }
        assert!(decode_key(&[0, 1, 0, 0]).is_none());
        assert!(decode_key(&[0, 0, 0xff, 0xff]).is_none());
        assert!(decode_value(&[0, 1, 0]).is_none());
    }

    #[test]
    fn placement_matches_kafka() {
        assert_eq!(coordinator_partition("hello", i32::MAX), 99162322);
        assert_eq!(coordinator_partition("", 50), 0);
    }
}
