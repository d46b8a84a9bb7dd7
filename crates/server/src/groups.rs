//! Consumer groups: the `__consumer_offsets` topic and one coordinator per partition of it.
//!
//! A group lives in partition `abs(java_hash(group_id)) % partitions` of
//! `__consumer_offsets` (Kafka's placement, so the same group maps to the same partition
//! number). Each hosted partition has a [`Shard`]: the pure `krust_group::GroupCoordinator`
//! plus the parked requests waiting for a rebalance. A command runs under the shard's lock:
//! the coordinator returns records and responses, the records are appended to the
//! partition (the durable store) and only then are the responses released. On first use a
//! shard replays its partition to rebuild the groups.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use krust_group::{GroupConfig, GroupCoordinator, Output, RequestId, Response};
use krust_metadata::controller::NewTopic;
use krust_protocol::records::{encode_batch, Compression, NewRecord};
use krust_protocol::ErrorCode;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::broker::{now_ms, Broker};
use crate::partition::Partition;

/// The internal topic holding group state and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Largest batch written when compacting a partition (under message.max.bytes).
const SNAPSHOT_BATCH_BYTES: usize = 512 * 1024;
/// Longest a request waits for a rebalance beyond its own timeout.
const PARKED_GRACE: Duration = Duration::from_secs(5);
/// Kafka's offsets.commit.timeout.ms default: how long a write to the offsets topic may
/// wait for the in-sync replicas.
const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Java's `String.hashCode` over UTF-16 code units.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Kafka's `Utils.abs`.
fn kafka_abs(n: i32) -> i32 {
    if n == i32::MIN {
        0
    } else {
        n.abs()
    }
}

/// The partition of a coordinator's topic with `partitions` partitions that `key` (a group
/// or transactional id) belongs to: Kafka's placement, `abs(java_hash(key)) % partitions`.
pub(crate) fn coordinator_partition(key: &str, partitions: i32) -> i32 {
    kafka_abs(java_hash(key)) % partitions
}

/// One `__consumer_offsets` partition's coordinator.
pub struct Shard {
    partition: Arc<Partition>,
    state: tokio::sync::Mutex<ShardState>,
}

struct ShardState {
    coordinator: GroupCoordinator,
    parked: HashMap<RequestId, oneshot::Sender<Response>>,
    /// Size of the partition right after the last compaction.
    compacted_size: u64,
}

/// All coordinators of this node.
pub struct GroupManager {
    config: GroupConfig,
    shards: Mutex<BTreeMap<i32, Arc<Shard>>>,
    /// Held while a shard loads.
    loading: tokio::sync::Mutex<()>,
    next_request_id: AtomicU64,
    warned_replication: AtomicBool,
}

impl GroupManager {
    pub fn new(config: GroupConfig) -> GroupManager {
        GroupManager {
            config,
            shards: Mutex::new(BTreeMap::new()),
            loading: tokio::sync::Mutex::new(()),
            next_request_id: AtomicU64::new(1),
            warned_replication: AtomicBool::new(false),
        }
    }

    /// A fresh request id for a coordinator command.
    pub fn request_id(&self) -> RequestId {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Forgets shards whose partition is no longer hosted (or was recreated).
    pub fn retain_hosted(&self, broker: &Broker) {
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        shards.retain(|&p, s| {
            broker
                .partitions
                .get(OFFSETS_TOPIC, p)
                .is_some_and(|hosted| Arc::ptr_eq(&hosted, &s.partition) && hosted.is_leader())
        });
    }

    fn all_shards(&self) -> Vec<Arc<Shard>> {
        self.shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

impl Broker {
    /// The partition of `__consumer_offsets` that coordinates `group_id`, creating the topic
    /// on first use. `Err` is the error FindCoordinator should answer.
    pub async fn group_partition(&self, group_id: &str) -> Result<i32, (ErrorCode, String)> {
        let count = match self.image().topic(OFFSETS_TOPIC) {
            Some(t) => t.partitions.len() as i32,
            None => self.create_offsets_topic().await?,
        };
        if count <= 0 {
            return Err((
                ErrorCode::CoordinatorNotAvailable,
                "the offsets topic has no partitions".into(),
            ));
        }
        Ok(coordinator_partition(group_id, count))
    }

    async fn create_offsets_topic(&self) -> Result<i32, (ErrorCode, String)> {
        let live = self.live_brokers();
        let rf = self.config.offsets_topic_replication_factor;
        if rf as usize > live.len() {
            let msg = format!(
                "cannot create {OFFSETS_TOPIC}: offsets.topic.replication.factor is {rf} but only {} broker(s) are available; \
                 consumer groups stay unavailable until enough brokers join, or set offsets.topic.replication.factor={}",
                live.len(),
                live.len()
            );
            if !self.groups.warned_replication.swap(true, Ordering::Relaxed) {
                warn!("{msg}");
            }
            return Err((ErrorCode::CoordinatorNotAvailable, msg));
        }
        let topic = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: self.config.offsets_topic_num_partitions,
            replication_factor: rf,
            assignments: vec![],
            configs: vec![
                ("cleanup.policy".into(), Some("compact".into())),
                ("compression.type".into(), Some("producer".into())),
                (
                    "segment.bytes".into(),
                    Some(self.config.offsets_topic_segment_bytes.to_string()),
                ),
            ],
        };
        self.create_internal_topic(topic).await
    }

    /// Creates an internal topic (a coordinator's) unless it exists; its partition count.
    pub(crate) async fn create_internal_topic(
        &self,
        topic: NewTopic,
    ) -> Result<i32, (ErrorCode, String)> {
        let partitions = |b: &Broker| {
            b.image()
                .topic(&topic.name)
                .map(|t| t.partitions.len() as i32)
        };
        if let Some(n) = partitions(self) {
            return Ok(n);
        }
        // The internal topic's settings come from validated broker config.
        let outcome = self
            .create_topics(std::slice::from_ref(&topic), false, |_, _| Ok(()))
            .await
            .map(|results| match results.into_iter().next() {
                Some(r) if r.result.is_ok() => Ok(r.num_partitions),
                // Another request created it first.
                Some(r) if r.result.error == ErrorCode::TopicAlreadyExists => {
                    Ok(partitions(self).unwrap_or(0))
                }
                Some(r) => Err((r.result.error, r.result.message.unwrap_or_default())),
                None => Err((ErrorCode::UnknownServerError, "no result".to_string())),
            });
        match outcome {
            Ok(Ok(n)) => {
                info!(partitions = n, "created {}", topic.name);
                Ok(n)
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err((ErrorCode::CoordinatorNotAvailable, e.to_string())),
        }
    }

    /// The coordinator shard for `group_id`, loading it on first use.
    pub async fn group_shard(&self, group_id: &str) -> Result<Arc<Shard>, ErrorCode> {
        let index = match self.image().topic(OFFSETS_TOPIC) {
            Some(t) if !t.partitions.is_empty() => {
                coordinator_partition(group_id, t.partitions.len() as i32)
            }
            _ => return Err(ErrorCode::CoordinatorNotAvailable),
        };
        if let Some(s) = self
            .groups
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
        {
            return Ok(s.clone());
        }
        let partition = self
            .partition(OFFSETS_TOPIC, index)
            .filter(|p| p.is_leader())
            .ok_or(ErrorCode::NotCoordinator)?;
        Ok(self.load_shard_once(index, partition).await)
    }

    /// The shard of `index`, loaded from `partition` unless it is. Loads happen one at a
    /// time (under `loading`), so that a transaction marker completed meanwhile
    /// ([`Broker::complete_group_txn`], which waits for a load under way) is applied to
    /// the loaded shard or replayed by it, never missed.
    async fn load_shard_once(&self, index: i32, partition: Arc<Partition>) -> Arc<Shard> {
        let _loading = self.groups.loading.lock().await;
        if let Some(s) = self
            .groups
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
        {
            return s.clone();
        }
        let shard = Arc::new(load_shard(partition, self.groups.config.clone()));
        let mut shards = self.groups.shards.lock().unwrap_or_else(|e| e.into_inner());
        shards.entry(index).or_insert(shard).clone()
    }

    /// Runs one coordinator command for `group_id` and waits for its response, which may
    /// be held until a rebalance completes (at most `wait`). `Err` is a coordinator-level
    /// error for the handler to answer with.
    pub async fn group_command(
        &self,
        group_id: &str,
        wait: Duration,
        command: impl FnOnce(&mut GroupCoordinator, RequestId, i64) -> Output,
    ) -> Result<Response, ErrorCode> {
        let shard = self.group_shard(group_id).await?;
        let id = self.groups.request_id();
        let rx = {
            let mut st = shard.state.lock().await;
            let out = command(&mut st.coordinator, id, now_ms());
            match deliver(&shard, &mut st, out, Some(id)) {
                Some(answer) => {
                    let written_end = shard.partition.read_log().log_end_offset();
                    drop(st);
                    // What the command wrote is acknowledged once every in-sync replica
                    // has it.
                    if !shard
                        .partition
                        .wait_for_high_watermark(written_end - 1, OFFSETS_COMMIT_TIMEOUT)
                        .await
                    {
                        return Err(ErrorCode::RequestTimedOut);
                    }
                    return answer;
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    st.parked.insert(id, tx);
                    rx
                }
            }
        };
        match tokio::time::timeout(wait + PARKED_GRACE, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(ErrorCode::CoordinatorNotAvailable),
            Err(_) => {
                shard.state.lock().await.parked.remove(&id);
                Err(ErrorCode::RequestTimedOut)
            }
        }
    }

    /// Reads from the coordinator without changing it.
    pub async fn group_read<T>(
        &self,
        group_id: &str,
        read: impl FnOnce(&GroupCoordinator) -> T,
    ) -> Result<T, ErrorCode> {
        let shard = self.group_shard(group_id).await?;
        let st = shard.state.lock().await;
        if st.coordinator.is_loading() {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        Ok(read(&st.coordinator))
    }

    /// Every loaded coordinator, for ListGroups.
    pub async fn group_shards_all(&self) -> Vec<Arc<Shard>> {
        // Make sure every hosted partition's shard is loaded so ListGroups sees all groups.
        if let Some(t) = self.image().topic(OFFSETS_TOPIC) {
            let indexes: Vec<i32> = t.partitions.keys().copied().collect();
            for i in indexes {
                let loaded = self
                    .groups
                    .shards
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&i);
                if !loaded {
                    if let Some(partition) =
                        self.partition(OFFSETS_TOPIC, i).filter(|p| p.is_leader())
                    {
                        self.load_shard_once(i, partition).await;
                    }
                }
            }
        }
        self.groups.all_shards()
    }

    /// Timers: session expiry, rebalance deadlines, offsets retention. Called periodically.
    pub async fn group_tick(&self, expire_offsets: bool) {
        let retention_ms = i64::from(self.config.offsets_retention_minutes) * 60_000;
        for shard in self.groups.all_shards() {
            let mut st = shard.state.lock().await;
            let now = now_ms();
            if st.coordinator.next_deadline().is_some_and(|d| d <= now) {
                let out = st.coordinator.tick(now);
                deliver(&shard, &mut st, out, None);
            }
            if expire_offsets {
                let out = st.coordinator.expire_offsets(now, retention_ms);
                deliver(&shard, &mut st, out, None);
            }
            let threshold =
                (self.config.offsets_topic_segment_bytes.max(1) as u64).max(2 * st.compacted_size);
            // Offsets of open transactions stay in the producers' own batches until their
            // markers: no rewrite meanwhile.
            if shard.partition.read_log().size_bytes() > threshold
                && !st.coordinator.has_pending_txn()
            {
                if let Err(e) = compact(&shard.partition, &mut st) {
                    warn!(partition = shard.partition.index, error = %e, "compacting {OFFSETS_TOPIC} failed");
                }
            }
        }
    }
}

impl Broker {
    /// A transaction marker of `producer_id` was written to `__consumer_offsets` partition
    /// `index`: the offsets its transaction committed there take effect, or go.
    pub async fn complete_group_txn(&self, index: i32, producer_id: i64, commit: bool) {
        let find = || {
            self.groups
                .shards
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&index)
                .cloned()
        };
        let shard = match find() {
            Some(s) => Some(s),
            None => {
                // A load under way may have read the log before the marker.
                let _loading = self.groups.loading.lock().await;
                find()
            }
        };
        if let Some(shard) = shard {
            shard
                .state
                .lock()
                .await
                .coordinator
                .complete_txn(producer_id, commit, now_ms());
        }
    }
}

impl Shard {
    /// Runs a read against this shard's coordinator.
    pub async fn read<T>(&self, read: impl FnOnce(&GroupCoordinator) -> T) -> T {
        read(&self.state.lock().await.coordinator)
    }
}

/// Persists the output's records, then releases its responses: the one for `mine` is
/// returned (None if it is still held), the others go to their parked requests. If the
/// records cannot be written, no response is released: the held requests fail.
fn deliver(
    shard: &Shard,
    st: &mut ShardState,
    out: Output,
    mine: Option<RequestId>,
) -> Option<Result<Response, ErrorCode>> {
    if !out.records.is_empty() {
        let written = match out.producer {
            Some((producer_id, epoch)) => {
                persist_txn(&shard.partition, &out.records, producer_id, epoch)
            }
            None => persist(&shard.partition, &out.records),
        };
        if let (Ok(()), Some((producer_id, _))) = (&written, out.producer) {
            // Written: the transaction's offsets are pending until its marker.
            let now = now_ms();
            for (k, v) in &out.records {
                if let Err(e) = st.coordinator.replay_txn(producer_id, k, v.as_deref(), now) {
                    warn!(error = %e, "a transactional offset record that cannot be read back");
                }
            }
        }
        if let Err(e) = written {
            if let Some(crate::partition::AppendError::Producer(p)) =
                e.downcast_ref::<crate::partition::AppendError>()
            {
                // A zombie producer's offsets: its epoch is fenced.
                let code = crate::handlers::produce::producer_error(p).0;
                for (id, _) in &out.responses {
                    st.parked.remove(id);
                }
                warn!(partition = shard.partition.index, error = %p, "refusing transactional offsets");
                return mine.map(|_| Err(code));
            }
            error!(partition = shard.partition.index, error = %e, "could not write group records");
            for (id, _) in &out.responses {
                st.parked.remove(id);
            }
            // The command changed the coordinator, but its records are not in the log: the
            // coordinator goes back to what the log holds.
            let config = st.coordinator.config().clone();
            st.coordinator = load_coordinator(&shard.partition, config);
            return mine.map(|_| Err(ErrorCode::CoordinatorNotAvailable));
        }
    }
    let mut result = None;
    for (id, resp) in out.responses {
        if Some(id) == mine {
            result = Some(Ok(resp));
        } else if let Some(tx) = st.parked.remove(&id) {
            let _ = tx.send(resp);
        }
    }
    result
}

/// Keeps a `__consumer_offsets` partition from growing without bound: writes the current
/// groups and offsets as fresh records, then moves the log start to them. Everything
/// before is superseded (tombstoned keys simply do not reappear); whole segments below the
/// new start are deleted. A crash between the two steps leaves history followed by the
/// snapshot, which replays to the same state.
fn compact(partition: &Partition, st: &mut ShardState) -> anyhow::Result<()> {
    let records = st.coordinator.snapshot_records();
    let before = partition.read_log().size_bytes();
    // The snapshot starts a segment of its own, so every older segment can go.
    partition.write_log().roll_now()?;
    let mut first_offset = None;
    let mut chunk: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    let mut chunk_bytes = 0;
    let flush =
        |chunk: &mut Vec<(Bytes, Option<Bytes>)>, first: &mut Option<i64>| -> anyhow::Result<()> {
            if !chunk.is_empty() {
                let offset = persist_at(partition, chunk)?;
                first.get_or_insert(offset);
                chunk.clear();
            }
            Ok(())
        };
    for r in records {
        chunk_bytes += r.0.len() + r.1.as_ref().map_or(0, Bytes::len) + 32;
        chunk.push(r);
        if chunk_bytes >= SNAPSHOT_BATCH_BYTES {
            flush(&mut chunk, &mut first_offset)?;
            chunk_bytes = 0;
        }
    }
    flush(&mut chunk, &mut first_offset)?;
    let start = first_offset.unwrap_or_else(|| partition.high_watermark());
    partition.write_log().delete_records_before(start)?;
    st.compacted_size = partition.read_log().size_bytes();
    info!(
        partition = partition.index,
        before_bytes = before,
        after_bytes = st.compacted_size,
        "compacted {OFFSETS_TOPIC}"
    );
    Ok(())
}

/// Appends key/value records (None = tombstone) to the partition as one batch.
fn persist(partition: &Partition, records: &[(Bytes, Option<Bytes>)]) -> anyhow::Result<()> {
    persist_at(partition, records).map(|_| ())
}

/// Appends a transaction's offset commits as the producer's transactional batch.
fn persist_txn(
    partition: &Partition,
    records: &[(Bytes, Option<Bytes>)],
    producer_id: i64,
    epoch: i16,
) -> anyhow::Result<()> {
    let now = now_ms();
    let recs: Vec<NewRecord> = records
        .iter()
        .map(|(k, v)| NewRecord::key_value(k.clone(), v.clone()))
        .collect();
    let batch = krust_protocol::records::encode_txn_batch(&recs, now, producer_id, epoch)
        .map_err(anyhow::Error::msg)?;
    partition.append_from_coordinator(&batch, now)?;
    Ok(())
}

/// Like [`persist`], returning the offset of the first record.
fn persist_at(partition: &Partition, records: &[(Bytes, Option<Bytes>)]) -> anyhow::Result<i64> {
    let now = now_ms();
    let recs: Vec<NewRecord> = records
        .iter()
        .map(|(k, v)| NewRecord::key_value(k.clone(), v.clone()))
        .collect();
    let batch = encode_batch(&recs, now, Compression::None).map_err(anyhow::Error::msg)?;
    Ok(partition.append(&batch, now)?.first_offset)
}

/// Builds a shard by replaying its partition.
fn load_shard(partition: Arc<Partition>, config: GroupConfig) -> Shard {
    let coordinator = load_coordinator(&partition, config);
    Shard {
        partition,
        state: tokio::sync::Mutex::new(ShardState {
            coordinator,
            parked: HashMap::new(),
            compacted_size: 0,
        }),
    }
}

/// A coordinator rebuilt by replaying the partition.
fn load_coordinator(partition: &Partition, config: GroupConfig) -> GroupCoordinator {
    let mut coordinator = GroupCoordinator::new(config, rand::random());
    coordinator.begin_load();
    let now = now_ms();
    let mut records = 0u64;
    partition.replay_records("the groups' records", |r| {
        if r.control {
            // A transaction's marker: its offsets take effect or go.
            if r.transactional {
                if let Some(k) = r.key.as_deref().filter(|k| k.len() >= 4) {
                    let kind = i16::from_be_bytes([k[2], k[3]]);
                    if kind == 0 || kind == 1 {
                        coordinator.complete_txn(r.producer_id, kind == 1, now);
                    }
                }
            }
            return;
        }
        if let Some(key) = &r.key {
            let replayed = if r.transactional && r.producer_id >= 0 {
                coordinator.replay_txn(r.producer_id, key, r.value.as_deref(), now)
            } else {
                coordinator.replay(key, r.value.as_deref(), now)
            };
            if let Err(e) = replayed {
                warn!(partition = partition.index, offset = r.offset, error = %e, "skipping an unreadable group record");
            }
            records += 1;
        }
    });
    coordinator.end_load();
    info!(
        partition = partition.index,
        records,
        groups = coordinator.group_ids().len(),
        "loaded consumer groups"
    );
    coordinator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_matches_kafka() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("ab"), 97 * 31 + 98);
        assert_eq!(java_hash("hello"), 99162322);
        // Characters outside the BMP count as two UTF-16 units, as in Java.
        assert_eq!(java_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
        assert_eq!(kafka_abs(i32::MIN), 0);
        assert_eq!(kafka_abs(-5), 5);
    }
}
