//! Partition replication between brokers, after Kafka's: followers fetch from leaders.
//!
//! For every broker that leads partitions this node follows, one fetcher task sends Fetch
//! requests with this node's replica id (and broker epoch) over the inter-broker listener,
//! for all those partitions at once, each from its local log end offset and with the epoch
//! of its last batch. The leader answers with the batches (beyond its high watermark too),
//! its high watermark, or a diverging epoch (KIP-320) when the follower's log went further
//! in an older epoch than the leader's: the follower then truncates to where that epoch
//! ends on the leader, and fetches again. Batches are appended byte for byte with the
//! leader's offsets and epochs. A partition whose fetch fails is left out of the next
//! fetches until its retry is due (`Delays`).
//!
//! The leader tracks each follower's log end offset from its fetches; the high watermark
//! is what every in-sync replica has (`Partition::maybe_advance_high_watermark`). A follower
//! that catches up joins the ISR, one that stops catching up for `replica.lag.time.max.ms`
//! leaves it; both through AlterPartition to the active controller, which writes the change
//! to the metadata log (the leader applies it when its image has it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::*;
use krust_client::Connection;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::broker::{now_ms, Broker};
use crate::forward::Route;
use crate::partition::Partition;

/// Error codes the fetcher reacts to.
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// Errors that mean the leader's metadata and the follower's disagree for now (one of them
/// has not applied the latest change yet): retried soon, not after the full backoff.
const METADATA_LAG_ERRORS: [i16; 6] = [
    3,   // UNKNOWN_TOPIC_OR_PARTITION
    5,   // LEADER_NOT_AVAILABLE
    6,   // NOT_LEADER_OR_FOLLOWER
    74,  // FENCED_LEADER_EPOCH
    76,  // UNKNOWN_LEADER_EPOCH
    100, // UNKNOWN_TOPIC_ID
];

/// The first retry of a partition whose fetch failed with a metadata-lag error; it doubles
/// with each failure in a row, up to `replica.fetch.backoff.ms`.
const FIRST_RETRY: Duration = Duration::from_millis(10);

/// Partitions whose last fetch failed, held back until their retry is due (Kafka's
/// per-partition fetch backoff): one partition in error neither makes the fetcher spin nor
/// holds up the others. Keyed by anything that names a partition (the fetcher uses its
/// address).
struct Delays<K> {
    /// When each may be fetched again, and its failures in a row.
    held: HashMap<K, (Instant, u32)>,
}

impl<K: std::hash::Hash + Eq + Copy> Delays<K> {
    fn new() -> Self {
        Delays {
            held: HashMap::new(),
        }
    }

    /// Which of `keys` may be fetched at `now`, and when the next held-back one may.
    /// Forgets keys no longer followed.
    fn ready(&mut self, keys: &[K], now: Instant) -> (Vec<bool>, Option<Instant>) {
        self.held.retain(|k, _| keys.contains(k));
        let mut next: Option<Instant> = None;
        let ready = keys
            .iter()
            .map(|k| match self.held.get(k) {
                Some((until, _)) if *until > now => {
                    next = Some(next.map_or(*until, |n| n.min(*until)));
                    false
                }
                _ => true,
            })
            .collect();
        (ready, next)
    }

    /// Holds `key` back after a failure with error `code` at `now`.
    fn failed(&mut self, key: K, code: i16, backoff: Duration, now: Instant) {
        let entry = self.held.entry(key).or_insert((now, 0));
        entry.1 = entry.1.saturating_add(1);
        let delay = if METADATA_LAG_ERRORS.contains(&code) {
            FIRST_RETRY
                .saturating_mul(1 << entry.1.saturating_sub(1).min(16))
                .min(backoff)
        } else {
            backoff
        };
        entry.0 = now + delay;
    }

    fn succeeded(&mut self, key: K) {
        self.held.remove(&key);
    }
}

/// A followed partition's identity (the object itself): the key of a fetcher's `Delays`,
/// and what tells whether its set changed.
fn partition_key(p: &Arc<Partition>) -> usize {
    Arc::as_ptr(p) as usize
}

struct Fetcher {
    partitions: Arc<Mutex<Vec<Arc<Partition>>>>,
    /// Counts the changes of `partitions`; `changed` is notified on each.
    generation: Arc<AtomicU64>,
    changed: Arc<Notify>,
}

/// The same partitions (the same objects), in any order.
fn same_partitions(a: &[Arc<Partition>], b: &[Arc<Partition>]) -> bool {
    let ids = |v: &[Arc<Partition>]| {
        let mut ids: Vec<usize> = v.iter().map(partition_key).collect();
        ids.sort_unstable();
        ids
    };
    a.len() == b.len() && ids(a) == ids(b)
}

/// The follower side: one fetcher per leader.
#[derive(Default)]
pub struct ReplicaManager {
    broker: OnceLock<Weak<Broker>>,
    shutdown: OnceLock<watch::Receiver<bool>>,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl ReplicaManager {
    /// Lets fetchers run; until then `follow` only records what to follow.
    pub fn start(&self, broker: &Arc<Broker>, shutdown: watch::Receiver<bool>) {
        let _ = self.broker.set(Arc::downgrade(broker));
        let _ = self.shutdown.set(shutdown);
        crate::broker::blocking(|| broker.reconcile());
    }

    /// Makes the fetchers follow exactly `followed` (leader id → partitions).
    pub fn follow(&self, _broker: &Broker, mut followed: HashMap<i32, Vec<Arc<Partition>>>) {
        let (Some(weak), Some(shutdown)) = (self.broker.get(), self.shutdown.get()) else {
            return;
        };
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|e| e.into_inner());
        for (leader, f) in fetchers.iter() {
            let mut parts = f.partitions.lock().unwrap_or_else(|e| e.into_inner());
            let new = followed.remove(leader).unwrap_or_default();
            if same_partitions(&parts, &new) {
                continue;
            }
            *parts = new;
            f.generation.fetch_add(1, Ordering::AcqRel);
            f.changed.notify_one();
        }
        for (leader, partitions) in followed {
            let f = Fetcher {
                partitions: Arc::new(Mutex::new(partitions)),
                generation: Arc::new(AtomicU64::new(0)),
                changed: Arc::new(Notify::new()),
            };
            tokio::spawn(run_fetcher(
                weak.clone(),
                leader,
                f.partitions.clone(),
                f.generation.clone(),
                f.changed.clone(),
                shutdown.clone(),
            ));
            fetchers.insert(leader, f);
        }
    }
}

impl Broker {
    /// This broker as an `Arc`, once the replica manager has started.
    pub fn self_arc(&self) -> Option<Arc<Broker>> {
        self.replication.broker.get()?.upgrade()
    }

    /// The partition if this node leads it; else Kafka's error for a client that asked the
    /// wrong broker (NOT_LEADER_OR_FOLLOWER) or for a partition that does not exist.
    pub fn leader_partition(
        &self,
        topic: &str,
        index: i32,
    ) -> Result<Arc<Partition>, krust_protocol::ErrorCode> {
        match self.partition(topic, index) {
            Some(p) if p.is_leader() => Ok(p),
            _ if self
                .image()
                .topic(topic)
                .is_some_and(|t| t.partitions.contains_key(&index)) =>
            {
                Err(krust_protocol::ErrorCode::NotLeaderOrFollower)
            }
            _ => Err(krust_protocol::ErrorCode::UnknownTopicOrPartition),
        }
    }

    /// `min.insync.replicas` for a topic: its override, else the broker's.
    pub fn min_insync_replicas(&self, topic: &str) -> i32 {
        self.image()
            .topic_config(topic, "min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.config.min_insync_replicas)
    }

    /// A connection to another broker's inter-broker listener, authenticated as
    /// `sasl.mechanism.inter.broker.protocol` says when that listener is SASL_PLAINTEXT.
    pub(crate) async fn inter_broker_connect(
        &self,
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, krust_client::ClientError> {
        Connection::connect_secured(addr, client_id, timeout, &self.config.inter_broker_security)
            .await
    }

    /// The address of broker `id`'s inter-broker listener.
    pub(crate) fn inter_broker_address(&self, id: i32) -> Option<String> {
        let image = self.image();
        let b = image.broker(id)?;
        let name = &self.config.inter_broker_listener_name;
        let e = b
            .endpoints
            .iter()
            .find(|e| &e.name == name)
            .or_else(|| b.endpoints.first())?;
        Some(if e.host.contains(':') {
            format!("[{}]:{}", e.host, e.port)
        } else {
            format!("{}:{}", e.host, e.port)
        })
    }

    /// Asks the active controller to set a partition's ISR (AlterPartition), as its
    /// leader. The change takes effect when the metadata image has it; on failure the
    /// pending change is dropped so that it can be tried again.
    pub async fn alter_isr(&self, p: &Arc<Partition>, new_isr: Vec<i32>) {
        let set = p.replicas();
        let req = AlterPartitionRequest::default()
            .with_broker_id(BrokerId(self.node_id))
            .with_broker_epoch(self.broker_epoch.load(std::sync::atomic::Ordering::Relaxed))
            .with_topics(vec![alter_partition_request::TopicData::default()
                .with_topic_id(p.topic_id)
                .with_partitions(vec![
                    alter_partition_request::PartitionData::default()
                        .with_partition_index(p.index)
                        .with_leader_epoch(p.leader_epoch())
                        .with_partition_epoch(set.partition_epoch)
                        .with_new_isr_with_epochs(
                            new_isr
                                .iter()
                                .map(|id| {
                                    alter_partition_request::BrokerState::default()
                                        .with_broker_id(BrokerId(*id))
                                        .with_broker_epoch(-1)
                                })
                                .collect(),
                        ),
                ])]);
        let outcome = match self.forward(&req, None).await {
            Ok(Route::Local) => crate::handlers::controller::alter_partition(self, req, 3).await,
            Ok(Route::Remote(r)) => r,
            Err(e) => {
                warn!(topic = %p.topic, partition = p.index, error = %e, "could not change the ISR");
                p.clear_pending_isr();
                return;
            }
        };
        let code = outcome
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(outcome.error_code, |r| {
                if outcome.error_code != 0 {
                    outcome.error_code
                } else {
                    r.error_code
                }
            });
        if code != 0 {
            info!(topic = %p.topic, partition = p.index, isr = ?new_isr,
                  error = %krust_client::error_description(code), "ISR change refused");
            p.clear_pending_isr();
            return;
        }
        info!(topic = %p.topic, partition = p.index, isr = ?new_isr, "ISR changed");
        let counter = if new_isr.len() < set.isr.len() {
            &self.metrics.isr_shrinks
        } else {
            &self.metrics.isr_expands
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Apply it as soon as this node's image has it.
        self.wait_caught_up(Duration::from_secs(5)).await;
    }

    /// As leader: drops followers that stopped keeping up from the ISR.
    pub async fn shrink_lagging_isrs(self: &Arc<Self>) {
        let now = now_ms();
        let max_lag = self.config.replica_lag_time_max_ms;
        for p in self.partitions.all() {
            if let Some(isr) = p.shrunk_isr(now, max_lag) {
                let b = self.clone();
                tokio::spawn(async move { b.alter_isr(&p, isr).await });
            }
        }
    }
}

/// Follows the partitions `leader` leads until there are none or the node stops.
///
/// When the partitions change while a fetch waits at the leader (up to
/// `replica.fetch.wait.max.ms`), that fetch is abandoned with its connection and the next
/// one asks for the new set at once: a new partition's first acks=all writes would wait
/// for the old fetch otherwise.
async fn run_fetcher(
    broker: Weak<Broker>,
    leader: i32,
    partitions: Arc<Mutex<Vec<Arc<Partition>>>>,
    generation: Arc<AtomicU64>,
    changed: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn: Option<Connection> = None;
    let mut delays = Delays::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(b) = broker.upgrade() else { return };
        let (all_parts, fetched_generation) = {
            let parts = partitions.lock().unwrap_or_else(|e| e.into_inner());
            (parts.clone(), generation.load(Ordering::Acquire))
        };
        let backoff = Duration::from_millis(b.config.replica_fetch_backoff_ms.max(1) as u64);
        if all_parts.is_empty() {
            conn = None;
            drop(b);
            tokio::select! {
                _ = changed.notified() => continue,
                _ = shutdown.changed() => return,
            }
        }
        let keys: Vec<usize> = all_parts.iter().map(partition_key).collect();
        let (ready, next_due) = delays.ready(&keys, Instant::now());
        let parts: Vec<Arc<Partition>> = all_parts
            .iter()
            .zip(ready)
            .filter(|(_, r)| *r)
            .map(|(p, _)| p.clone())
            .collect();
        if parts.is_empty() {
            // Every partition waits for its retry.
            drop(b);
            let due = next_due.unwrap_or_else(|| Instant::now() + backoff);
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = changed.notified() => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        if conn.is_none() {
            let Some(addr) = b.inter_broker_address(leader) else {
                drop(b);
                pause(&mut shutdown, backoff).await;
                continue;
            };
            let timeout =
                Duration::from_millis((b.config.replica_fetch_wait_max_ms.max(0) as u64) + 30_000);
            match b
                .inter_broker_connect(&addr, "krust-replica-fetcher", timeout)
                .await
            {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    debug!(leader, %addr, error = %e, "cannot reach the leader");
                    drop(b);
                    pause(&mut shutdown, backoff).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let version = match c.version_for::<FetchRequest>() {
            Ok(v) if v >= 12 => v,
            _ => {
                warn!(
                    leader,
                    "the leader does not serve Fetch v12 or later; cannot follow it"
                );
                conn = None;
                drop(b);
                pause(&mut shutdown, backoff * 10).await;
                continue;
            }
        };
        // While partitions are held back, a fetch waits at the leader no longer than until
        // the first of them is due, or their retry would wait for it.
        let max_wait_ms = next_due.map_or(b.config.replica_fetch_wait_max_ms, |due| {
            let left = due.saturating_duration_since(Instant::now()).as_millis();
            b.config
                .replica_fetch_wait_max_ms
                .min(i32::try_from(left).unwrap_or(i32::MAX))
        });
        let req = fetch_request(&b, &parts, version, max_wait_ms);
        let result = {
            let fetch = c.send_version(&req, version);
            tokio::pin!(fetch);
            loop {
                tokio::select! {
                    r = &mut fetch => break Some(r),
                    _ = changed.notified() => {
                        // A permit left from a change this fetch already has is no change.
                        if generation.load(Ordering::Acquire) != fetched_generation {
                            break None;
                        }
                    }
                    _ = shutdown.changed() => return,
                }
            }
        };
        let Some(result) = result else {
            debug!(leader, "followed partitions changed; fetching the new set");
            conn = None;
            continue;
        };
        match result {
            Ok(resp) => {
                let failed =
                    handle_response(&b, leader, &parts, resp, version, &mut delays, backoff);
                if failed {
                    drop(b);
                    pause(&mut shutdown, backoff).await;
                }
            }
            Err(e) => {
                debug!(leader, error = %e, "follower fetch failed");
                conn = None;
                drop(b);
                pause(&mut shutdown, backoff).await;
            }
        }
    }
}

async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}

fn fetch_request(
    b: &Broker,
    parts: &[Arc<Partition>],
    version: i16,
    max_wait_ms: i32,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in parts {
        let (end, last_epoch) = {
            let log = p.read_log();
            (
                log.log_end_offset(),
                log.leader_epoch_cache().latest_epoch().unwrap_or(-1),
            )
        };
        let fp = FetchPartition::default()
            .with_partition(p.index)
            .with_current_leader_epoch(p.leader_epoch())
            .with_fetch_offset(end)
            .with_last_fetched_epoch(last_epoch)
            .with_log_start_offset(p.log_start_offset())
            .with_partition_max_bytes(b.config.replica_fetch_max_bytes);
        let same = topics.last().is_some_and(|t| {
            if version >= 13 {
                t.topic_id == p.topic_id
            } else {
                t.topic.as_str() == p.topic
            }
        });
        if !same {
            let mut t = FetchTopic::default();
            if version >= 13 {
                t.topic_id = p.topic_id;
            } else {
                t.topic = TopicName(crate::handlers::sb(p.topic.clone()));
            }
            topics.push(t);
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(fp);
        }
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(b.config.replica_fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    if version >= 15 {
        req.replica_state = ReplicaState::default()
            .with_replica_id(BrokerId(b.node_id))
            .with_replica_epoch(b.broker_epoch.load(std::sync::atomic::Ordering::Relaxed));
    } else {
        req.replica_id = BrokerId(b.node_id);
    }
    req
}

/// Applies a fetch response; a partition that failed is held back (`delays`). Returns
/// whether the whole response was refused (back off then).
fn handle_response(
    b: &Broker,
    leader: i32,
    parts: &[Arc<Partition>],
    resp: FetchResponse,
    version: i16,
    delays: &mut Delays<usize>,
    backoff: Duration,
) -> bool {
    if resp.error_code != 0 {
        debug!(leader, error = %krust_client::error_description(resp.error_code), "follower fetch refused");
        return true;
    }
    let image = b.image();
    for t in &resp.responses {
        let name = if version >= 13 {
            image.topic_by_id(&t.topic_id).map(|ti| ti.name.clone())
        } else {
            Some(t.topic.to_string())
        };
        let Some(name) = name else { continue };
        for pd in &t.partitions {
            let Some(p) = parts
                .iter()
                .find(|p| p.topic == name && p.index == pd.partition_index)
            else {
                continue;
            };
            match apply_partition(b, p, pd) {
                Ok(()) => delays.succeeded(partition_key(p)),
                Err((code, e)) => {
                    debug!(topic = %p.topic, partition = p.index, leader, error = %e, "follower fetch");
                    delays.failed(partition_key(p), code, backoff, Instant::now());
                }
            }
        }
    }
    false
}

/// An error applying a partition's data: its Kafka error code (-1 when local) and why.
type ApplyError = (i16, String);

fn local(e: impl std::fmt::Display) -> ApplyError {
    (-1, e.to_string())
}

/// After a truncation of a compacted log: its first dirty offset may have come down, which
/// the cleaner checkpoint must say before a crash could bring back the old one.
fn cleaner_offset_lowered(b: &Broker, p: &Partition) {
    if p.read_log().config().compact {
        if let Err(e) = b.logs.checkpoint_cleaner_offsets() {
            warn!(topic = %p.topic, partition = p.index, error = %e, "cannot write the cleaner checkpoint");
        }
    }
}

fn apply_partition(
    b: &Broker,
    p: &Partition,
    pd: &fetch_response::PartitionData,
) -> Result<(), ApplyError> {
    match pd.error_code {
        0 => {}
        OFFSET_OUT_OF_RANGE => {
            let end = p.read_log().log_end_offset();
            if pd.log_start_offset > end {
                // The leader deleted what this replica still needs: start at its log start.
                p.restart_at(pd.log_start_offset).map_err(local)?;
                cleaner_offset_lowered(b, p);
                info!(topic = %p.topic, partition = p.index, offset = pd.log_start_offset,
                      "follower restarted at the leader's log start");
                return Ok(());
            }
            return Err((OFFSET_OUT_OF_RANGE, "offset out of range".into()));
        }
        code => return Err((code, krust_client::error_description(code))),
    }
    let diverging = &pd.diverging_epoch;
    if diverging.epoch >= 0 {
        let end = p.read_log().log_end_offset();
        let to = diverging.end_offset.min(end);
        info!(topic = %p.topic, partition = p.index, epoch = diverging.epoch, from = end, to,
              "follower truncates its divergent tail");
        p.truncate_to(to).map_err(local)?;
        cleaner_offset_lowered(b, p);
        return Ok(());
    }
    if let Some(records) = pd.records.as_ref().filter(|r| !r.is_empty()) {
        append_complete_batches(p, records).map_err(local)?;
    }
    p.follow_high_watermark(pd.high_watermark);
    // Records the leader deleted (DeleteRecords, retention) go here too.
    if pd.log_start_offset > p.log_start_offset() && pd.log_start_offset <= p.high_watermark() {
        p.write_log()
            .delete_records_before(pd.log_start_offset)
            .map_err(local)?;
    }
    Ok(())
}

/// Appends the whole batches of `records` (a response may end in a partial batch).
fn append_complete_batches(p: &Partition, records: &Bytes) -> Result<(), String> {
    let mut len = 0usize;
    for b in krust_storage::batch::batches(records) {
        match b {
            Ok(b) => len += b.size(),
            Err(_) => break,
        }
    }
    if len == 0 {
        return Ok(());
    }
    p.append_as_follower(&records.slice(..len))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Duration = Duration::from_millis(1000);
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    const KAFKA_STORAGE_ERROR: i16 = 56;

    #[test]
    fn a_failed_partition_is_held_back_alone_until_its_retry() {
        let mut d = Delays::new();
        let t0 = Instant::now();
        d.failed(2, NOT_LEADER_OR_FOLLOWER, BACKOFF, t0);
        let (ready, next) = d.ready(&[1, 2, 3], t0);
        assert_eq!(ready, vec![true, false, true]);
        assert_eq!(next, Some(t0 + FIRST_RETRY));
        let (ready, _) = d.ready(&[1, 2, 3], t0 + FIRST_RETRY);
        assert_eq!(ready, vec![true, true, true]);
    }

    #[test]
    fn metadata_lag_retries_double_up_to_the_backoff_and_reset_on_success() {
        let mut d = Delays::new();
        let t0 = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..10 {
            d.failed(7, NOT_LEADER_OR_FOLLOWER, BACKOFF, t0);
            waits.push(d.ready(&[7], t0).1.expect("held") - t0);
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        d.succeeded(7);
        d.failed(7, NOT_LEADER_OR_FOLLOWER, BACKOFF, t0);
        assert_eq!(d.ready(&[7], t0).1, Some(t0 + FIRST_RETRY));
    }

    #[test]
    fn other_errors_wait_the_full_backoff_and_unfollowed_partitions_are_forgotten() {
        let mut d = Delays::new();
        let t0 = Instant::now();
        d.failed(1, KAFKA_STORAGE_ERROR, BACKOFF, t0);
        assert_eq!(d.ready(&[1], t0).1, Some(t0 + BACKOFF));
        d.ready(&[2], t0);
        assert!(d.held.is_empty());
    }
}
