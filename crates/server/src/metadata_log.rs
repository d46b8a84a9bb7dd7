//! The metadata log: `__cluster_metadata-0` behind the KRaft core.
//!
//! The log lives in `metadata.log.dir` on the shared log engine ([`DiskRaftLog`]) and is
//! replicated by a [`RaftNode`] among the voters of `controller.quorum.voters`; a node
//! that is not a voter (a broker-only node) follows the log as an observer. This module is
//! the Raft host:
//!
//! * A driver task ticks the node at its deadlines; requests from peers arrive through
//!   [`MetadataLog::raft_request`] (the controller listener's handlers) and responses to
//!   this node's requests come back from the sending tasks. After every input the pending
//!   effects are executed in order, under the node's lock: the election state is made
//!   durable (the `quorum-state` file) before anything after it; responses go to the
//!   waiting handler; requests are sent, after the lock is released, over connections to
//!   the voters' controller listeners.
//! * Committed entries are applied, in offset order, to a working copy of the image, which
//!   is then published; every node (leader, follower, observer) builds its image this way.
//!   A snapshot downloaded from the leader replaces the image.
//! * The active controller (the leader, once its first entry of the epoch is applied)
//!   proposes records with [`MetadataLog::commit`], which waits until they are applied.
//! * The image is written as a snapshot after enough bytes or time
//!   (`metadata.log.max.record.bytes.between.snapshots` / `.snapshot.interval.ms`).
//!
//! A standalone node (the only voter) elects itself while opening: its clock jumps to the
//! election deadline instead of sleeping through it, so startup does not wait.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use krust_client::Connection;
use krust_metadata::{MetadataImage, MetadataRecord};
use krust_raft::messages::{DescribeQuorumData, Request, Response};
use krust_raft::{
    Effect, EntryKind, NodeId, Offset, RaftConfig, RaftLog, RaftNode, RequestId, RoleKind,
};
use tokio::sync::{oneshot, watch, Notify};
use tracing::{debug, info, warn};

use crate::quorum_state;
use crate::raft_log::DiskRaftLog;
use crate::raft_wire;

/// The metadata topic's name.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Name of the metadata log's partition directory.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata-0";

/// Ticks a standalone node may take to elect itself and commit its log.
const STANDALONE_TICKS_MAX: usize = 50;
/// Entries read at a time while applying.
const APPLY_BATCH: usize = 1024;
/// The driver re-checks the node at least this often.
const DRIVER_MAX_SLEEP_MS: u64 = 1000;
/// Idle connections kept per peer.
const POOL_PER_PEER: usize = 4;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why records could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// This node is not the active controller (or lost leadership before the records
    /// were committed).
    #[error("this node is not the active controller")]
    NotController,
    /// The quorum did not commit the records in time.
    #[error("the metadata quorum did not commit the records within {0:?}")]
    Timeout(Duration),
    /// The log could not be written or read.
    #[error("{0}")]
    Storage(String),
}

/// How the quorum is configured for this node.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: i32,
    /// Voter id → `host:port` of its controller listener.
    pub voters: BTreeMap<i32, String>,
    pub election_timeout_ms: u64,
    pub fetch_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub snapshots: SnapshotPolicy,
    /// TLS and SASL of the connections to the other voters' controller listener.
    pub security: krust_client::Security,
}

impl QuorumConfig {
    /// Whether this node is the only voter: it elects itself without waiting.
    pub fn standalone(&self) -> bool {
        self.voters.len() == 1 && self.voters.contains_key(&self.node_id)
    }
}

/// When the image is written as a snapshot (Kafka's
/// `metadata.log.max.record.bytes.between.snapshots` and
/// `metadata.log.max.snapshot.interval.ms`).
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPolicy {
    pub max_record_bytes: u64,
    /// 0 disables the time trigger.
    pub max_interval_ms: u64,
}

/// A snapshot's content: every record of the image, each as a 4-byte length and the
/// record's encoding.
fn encode_snapshot(image: &MetadataImage) -> Bytes {
    let mut b = BytesMut::new();
    for r in image.to_records() {
        let e = r.encode();
        b.put_u32(e.len() as u32);
        b.put_slice(&e);
    }
    b.freeze()
}

fn decode_snapshot(mut data: Bytes) -> anyhow::Result<Vec<MetadataRecord>> {
    let mut out = Vec::new();
    while data.has_remaining() {
        anyhow::ensure!(data.remaining() >= 4, "metadata snapshot is truncated");
        let len = data.get_u32() as usize;
        anyhow::ensure!(data.remaining() >= len, "metadata snapshot is truncated");
        let record = data.split_to(len);
        out.push(
            MetadataRecord::decode(&record)
                .map_err(|e| anyhow::anyhow!("metadata snapshot is corrupt: {e}"))?,
        );
    }
    Ok(out)
}

/// The image a snapshot describes.
fn image_from_snapshot<L: RaftLog>(
    log: &L,
    id: krust_raft::SnapshotId,
) -> anyhow::Result<MetadataImage> {
    let (data, _) = log
        .read_snapshot(id, 0, usize::MAX)
        .ok_or_else(|| anyhow::anyhow!("the metadata snapshot {id:?} cannot be read"))?;
    let records = decode_snapshot(data)?;
    let mut image = MetadataImage::new();
    for r in &records {
        image
            .apply(id.end_offset.0 - 1, r)
            .map_err(|e| anyhow::anyhow!("the metadata snapshot does not apply: {e}"))?;
    }
    Ok(image)
}

struct Inner {
    node: RaftNode<DiskRaftLog>,
    dir: PathBuf,
    cluster_id: String,
    /// Added to the wall clock; only grows, so the node's time never goes back.
    clock_skew_ms: u64,
    /// Next offset to apply to the image.
    applied: i64,
    /// The working image: everything below `applied`.
    image: MetadataImage,
    /// Whether `image` changed since it was last published.
    image_dirty: bool,
    snapshots: SnapshotPolicy,
    /// Record bytes applied since the last snapshot.
    bytes_since_snapshot: u64,
    /// When the last snapshot was taken (node clock).
    last_snapshot_ms: u64,
    /// Handlers waiting for the answer to a request from a peer.
    responders: HashMap<RequestId, oneshot::Sender<Response>>,
    next_incoming_id: RequestId,
    /// Requests to send once the lock is released.
    outbox: Vec<(NodeId, RequestId, Request)>,
    /// The highest high watermark a leader reported in a Fetch response.
    leader_high_watermark: i64,
    /// Set once the image has caught up with the quorum (see [`MetadataLog::is_ready`]).
    ready: bool,
    /// Fetch responses from the leader received so far.
    leader_fetches: u64,
    /// Inside a metadata transaction (BeginTransaction seen, no End/Abort yet): the image
    /// as it was before it, to go back to on an abort. The image is not published meanwhile.
    txn_base: Option<MetadataImage>,
    /// The offset of the open transaction's BeginTransaction.
    txn_begin: i64,
    /// As leader: an AbortTransaction for a transaction an earlier leader left open has
    /// been proposed.
    abort_proposed: bool,
}

impl Inner {
    fn now(&self) -> u64 {
        wall_ms() + self.clock_skew_ms
    }

    /// Executes every pending effect in order.
    fn drain(&mut self) -> anyhow::Result<()> {
        loop {
            let mut effects = self.node.poll_effects();
            if effects.is_empty() {
                // A new leader whose log ends inside a transaction that an earlier leader
                // did not finish abandons it before anything else is decided.
                let left_open = self
                    .epoch_start()
                    .is_some_and(|start| self.txn_begin < start && self.applied > start);
                if self.txn_base.is_some() && !self.abort_proposed && left_open {
                    let abort = MetadataRecord::AbortTransaction {
                        reason: Some("the leader that began it lost leadership".into()),
                    };
                    let now = self.now();
                    if self.node.propose(vec![abort.encode()], now).is_ok() {
                        self.abort_proposed = true;
                        info!("aborting a metadata transaction left open by an earlier leader");
                    }
                    effects = self.node.poll_effects();
                }
                if effects.is_empty() {
                    break;
                }
            }
            for effect in effects {
                match effect {
                    Effect::PersistQuorumState(record) => {
                        quorum_state::write(&self.dir, &self.cluster_id, &record)?
                    }
                    Effect::Committed { high_watermark } => self.apply_up_to(high_watermark)?,
                    Effect::LeaderChanged { epoch, leader } => {
                        info!(epoch = epoch.0, leader = ?leader.map(|l| l.0), "metadata quorum leader changed");
                    }
                    Effect::SendRequest {
                        to,
                        request_id,
                        request,
                    } => self.outbox.push((to, request_id, request)),
                    Effect::SendResponse {
                        request_id,
                        response,
                        ..
                    } => {
                        if let Some(tx) = self.responders.remove(&request_id) {
                            let _ = tx.send(response);
                        }
                    }
                    Effect::SnapshotLoaded { snapshot_id } => {
                        self.txn_base = None;
                        self.image = image_from_snapshot(self.node.log(), snapshot_id)?;
                        self.applied = snapshot_id.end_offset.0;
                        self.image_dirty = true;
                        self.bytes_since_snapshot = 0;
                        info!(
                            end_offset = snapshot_id.end_offset.0,
                            "loaded the metadata snapshot fetched from the leader"
                        );
                    }
                }
            }
        }
        self.update_ready();
        Ok(())
    }

    /// The first offset of the leader's epoch (its LeaderChange entry), if this node leads.
    fn epoch_start(&self) -> Option<i64> {
        self.node.epoch_start_offset().map(|o| o.0)
    }

    /// Whether this node is the active controller: the leader, with every earlier epoch's
    /// entries applied.
    fn is_active(&self) -> bool {
        self.epoch_start().is_some_and(|start| self.applied > start)
    }

    fn update_ready(&mut self) {
        if self.ready {
            return;
        }
        self.ready = self.is_active()
            || (self.node.leader().is_some()
                && self.leader_high_watermark > 0
                && self.applied >= self.leader_high_watermark);
        if self.ready {
            info!(
                offset = self.applied,
                topics = self.image.topics.len(),
                "the metadata image caught up with the quorum"
            );
        }
    }

    fn apply_up_to(&mut self, high_watermark: Offset) -> anyhow::Result<()> {
        while self.applied < high_watermark.0 {
            let entries = self.node.log().read(Offset(self.applied), APPLY_BATCH);
            if entries.is_empty() {
                anyhow::bail!(
                    "committed metadata entry {} is missing from the log",
                    self.applied
                );
            }
            for e in entries
                .into_iter()
                .take_while(|e| e.offset < high_watermark)
            {
                if e.kind == EntryKind::Data {
                    let record = MetadataRecord::decode(&e.data).map_err(|err| {
                        anyhow::anyhow!(
                            "metadata record at offset {} is corrupt: {err}",
                            e.offset.0
                        )
                    })?;
                    match &record {
                        MetadataRecord::BeginTransaction { .. } if self.txn_base.is_none() => {
                            self.txn_base = Some(self.image.clone());
                            self.txn_begin = e.offset.0;
                        }
                        MetadataRecord::EndTransaction => {
                            self.txn_base = None;
                            self.abort_proposed = false;
                        }
                        MetadataRecord::AbortTransaction { .. } => {
                            if let Some(base) = self.txn_base.take() {
                                self.image = base;
                            }
                            self.abort_proposed = false;
                        }
                        _ => {}
                    }
                    self.image.apply(e.offset.0, &record).map_err(|err| {
                        anyhow::anyhow!(
                            "metadata record at offset {} does not apply: {err}",
                            e.offset.0
                        )
                    })?;
                    self.bytes_since_snapshot += e.data.len() as u64;
                    self.image_dirty = true;
                }
                self.applied = e.offset.0 + 1;
            }
        }
        self.snapshot(false);
        Ok(())
    }

    /// Writes the image as a snapshot when the policy says so, or with `now_anyway`
    /// whenever anything was applied since the last one.
    fn snapshot(&mut self, now_anyway: bool) {
        // A snapshot holds whole decisions only.
        if self.bytes_since_snapshot == 0 || self.txn_base.is_some() {
            return;
        }
        let now = self.now();
        let by_time = self.snapshots.max_interval_ms > 0
            && now.saturating_sub(self.last_snapshot_ms) >= self.snapshots.max_interval_ms;
        if self.bytes_since_snapshot < self.snapshots.max_record_bytes && !by_time && !now_anyway {
            return;
        }
        let end = Offset(self.applied);
        if self.node.log().latest_snapshot().map(|s| s.end_offset) == Some(end) {
            return;
        }
        match self.node.create_snapshot(end, encode_snapshot(&self.image)) {
            Ok(id) => {
                info!(
                    end_offset = id.end_offset.0,
                    epoch = id.epoch.0,
                    "wrote metadata snapshot"
                );
                self.bytes_since_snapshot = 0;
                self.last_snapshot_ms = now;
            }
            Err(e) => debug!(error = ?e, "could not write a metadata snapshot yet"),
        }
    }

    /// Ticks at the node's next deadline, jumping the clock there if it is ahead.
    fn tick_to_deadline(&mut self) -> anyhow::Result<()> {
        let deadline = self.node.next_deadline_ms();
        let now = self.now();
        if deadline > now {
            self.clock_skew_ms += deadline - now;
        }
        let now = self.now();
        self.node.tick(now);
        self.drain()
    }
}

/// The metadata log, the quorum it is replicated by, and the image built from it.
pub struct MetadataLog {
    inner: Mutex<Inner>,
    image: RwLock<Arc<MetadataImage>>,
    config: QuorumConfig,
    /// Wakes the driver to recompute its deadline.
    wake: Notify,
    /// Offset of the next entry to apply (so: everything below is in the image).
    applied_tx: watch::Sender<i64>,
    /// Whether the image has caught up with the quorum.
    ready_tx: watch::Sender<bool>,
    /// Idle connections to voters, by node id.
    pool: Mutex<HashMap<i32, Vec<Connection>>>,
    /// Set when the log cannot be written: the node must stop.
    failed: watch::Sender<Option<String>>,
}

impl MetadataLog {
    /// Opens (or creates) the metadata log under `metadata_dir` and loads the latest
    /// snapshot. A standalone node also elects itself and applies its whole log here; a
    /// member of a larger quorum catches up once [`MetadataLog::start`] runs its driver.
    pub fn open(
        metadata_dir: &Path,
        cluster_id: &str,
        config: QuorumConfig,
        now_ms: i64,
    ) -> anyhow::Result<MetadataLog> {
        let dir = metadata_dir.join(METADATA_DIR_NAME);
        let log = DiskRaftLog::open(&dir, now_ms).map_err(anyhow::Error::msg)?;
        let persisted = quorum_state::read(&dir)?;
        let raft_config = RaftConfig {
            cluster_id: Some(cluster_id.to_string()),
            election_timeout_ms: config.election_timeout_ms,
            fetch_timeout_ms: config.fetch_timeout_ms,
            request_timeout_ms: config.request_timeout_ms,
            append_linger_ms: 0,
            ..RaftConfig::default()
        };
        let end = log.end_offset();
        let node = RaftNode::new(
            raft_config,
            NodeId(config.node_id),
            config.voters.keys().map(|id| NodeId(*id)),
            log,
            persisted,
            wall_ms(),
            rand::random(),
        );
        let mut inner = Inner {
            node,
            dir,
            cluster_id: cluster_id.to_string(),
            clock_skew_ms: 0,
            applied: 0,
            image: MetadataImage::new(),
            image_dirty: true,
            snapshots: config.snapshots,
            bytes_since_snapshot: 0,
            last_snapshot_ms: wall_ms(),
            responders: HashMap::new(),
            next_incoming_id: 0,
            outbox: Vec::new(),
            leader_high_watermark: 0,
            ready: false,
            leader_fetches: 0,
            txn_base: None,
            txn_begin: -1,
            abort_proposed: false,
        };
        if let Some(id) = inner.node.log().latest_snapshot() {
            inner.image = image_from_snapshot(inner.node.log(), id)?;
            inner.applied = id.end_offset.0;
            info!(end_offset = id.end_offset.0, "loaded metadata snapshot");
        }
        inner.drain()?;
        if config.standalone() {
            for _ in 0..STANDALONE_TICKS_MAX {
                if inner.node.role() == RoleKind::Leader
                    && inner.node.high_watermark() >= end
                    && inner.is_active()
                    && inner.txn_base.is_none()
                {
                    break;
                }
                inner.tick_to_deadline()?;
            }
            if !inner.is_active() {
                anyhow::bail!("the metadata quorum did not elect this node, its only voter");
            }
            info!(
                epoch = inner.node.epoch().0,
                high_watermark = inner.node.high_watermark().0,
                topics = inner.image.topics.len(),
                "metadata log replayed"
            );
        }
        inner.outbox.clear();
        let image = Arc::new(inner.image.clone());
        inner.image_dirty = false;
        let applied = inner.applied;
        let ready = inner.ready;
        Ok(MetadataLog {
            inner: Mutex::new(inner),
            image: RwLock::new(image),
            config,
            wake: Notify::new(),
            applied_tx: watch::Sender::new(applied),
            ready_tx: watch::Sender::new(ready),
            pool: Mutex::new(HashMap::new()),
            failed: watch::Sender::new(None),
        })
    }

    /// The node's state. Its holder may be writing and syncing the log (a step), which can
    /// take long on a busy disk: a caller that has to wait does so off the async workers,
    /// which the node's timers, heartbeats and requests need meanwhile.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.try_lock() {
            Ok(inner) => inner,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                crate::broker::blocking(|| self.inner.lock().unwrap_or_else(|e| e.into_inner()))
            }
        }
    }

    /// Runs `input` on the node, executes the effects, publishes what changed and sends
    /// the requests it produced.
    fn step(self: &Arc<Self>, input: impl FnOnce(&mut Inner, u64)) {
        self.step_inner(input);
        // The node's next deadline may have moved earlier.
        self.wake.notify_one();
    }

    fn step_inner(self: &Arc<Self>, input: impl FnOnce(&mut Inner, u64)) {
        // A step may append to the log and sync it: off the async workers.
        let outbox = crate::broker::blocking(|| {
            let mut inner = self.lock();
            let now = inner.now();
            input(&mut inner, now);
            if let Err(e) = inner.drain() {
                // The log or the quorum-state file could not be written: continuing could
                // break Raft's promises, so the node stops.
                tracing::error!(error = %e, "the metadata log failed");
                self.failed.send_replace(Some(e.to_string()));
            }
            // Half a decision is never published. Published under the lock: two steps
            // racing to publish could otherwise leave the older image (and applied
            // offset) in place, with nothing left to announce the newer one.
            if inner.image_dirty && inner.txn_base.is_none() {
                inner.image_dirty = false;
                let image = Arc::new(inner.image.clone());
                *self.image.write().unwrap_or_else(|e| e.into_inner()) = image;
            }
            // Readiness first: a subscriber woken by the applied offset that then finds
            // the image not ready would skip this change and wait for the next one.
            if inner.ready && !*self.ready_tx.borrow() {
                self.ready_tx.send_replace(true);
            }
            let applied = inner.applied;
            self.applied_tx.send_if_modified(|a| {
                let changed = *a != applied;
                *a = applied;
                changed
            });
            std::mem::take(&mut inner.outbox)
        });
        for (to, request_id, request) in outbox {
            tokio::spawn(self.clone().send(to, request_id, request));
        }
    }

    /// Starts the driver. It stops when `shutdown` turns true.
    pub fn start(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().drive(shutdown))
    }

    async fn drive(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Anything left over from opening.
        self.step_inner(|_, _| {});
        loop {
            let wait = {
                let inner = self.lock();
                inner
                    .node
                    .next_deadline_ms()
                    .saturating_sub(inner.now())
                    .min(DRIVER_MAX_SLEEP_MS)
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => break,
            }
            self.step_inner(|inner, now| inner.node.tick(now));
        }
        let mut inner = self.lock();
        for (_, tx) in inner.responders.drain() {
            drop(tx);
        }
    }

    /// Sends one request to a voter and hands its response to the node. Lost requests
    /// need no report: the node times them out.
    async fn send(self: Arc<Self>, to: NodeId, request_id: RequestId, request: Request) {
        let Some(addr) = self.config.voters.get(&to.0).cloned() else {
            debug!(peer = to.0, "no address for metadata quorum peer");
            return;
        };
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&to.0)
            .and_then(|v| v.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => match Connection::connect_secured(
                &addr,
                "krust-raft",
                timeout,
                &self.config.security,
            )
            .await
            {
                Ok(c) => c,
                // A refused login is a setting to fix, not a peer that is down: said aloud.
                Err(e @ krust_client::ClientError::Authentication(_)) => {
                    warn!(peer = to.0, %addr, error = %e, "cannot authenticate to metadata quorum peer");
                    return;
                }
                Err(e) => {
                    debug!(peer = to.0, %addr, error = %e, "cannot reach metadata quorum peer");
                    return;
                }
            },
        };
        let me = NodeId(self.config.node_id);
        let result = match raft_wire::send(&mut conn, &request, me).await {
            Ok(r) => r,
            Err(e) => {
                debug!(peer = to.0, %addr, error = %e, "metadata quorum request failed");
                return;
            }
        };
        {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            let idle = pool.entry(to.0).or_default();
            if idle.len() < POOL_PER_PEER {
                idle.push(conn);
            }
        }
        let response = match raft_wire::response_from_wire(result) {
            Ok(r) => r,
            Err(e) => {
                warn!(peer = to.0, error = %e, "unusable metadata quorum response");
                return;
            }
        };
        self.step(|inner, now| {
            if let Response::Fetch(f) = &response {
                if f.error == krust_raft::ErrorCode::None && f.current_leader.leader_id == Some(to)
                {
                    inner.leader_high_watermark =
                        inner.leader_high_watermark.max(f.high_watermark.0);
                    inner.leader_fetches += 1;
                }
            }
            inner.node.handle_response(to, request_id, response, now)
        });
    }

    /// Handles a Raft request from a peer and waits for the node's answer (a Fetch may be
    /// parked until data arrives or its wait expires). `None` when the node gave no answer
    /// in time or is shutting down.
    pub async fn raft_request(
        self: &Arc<Self>,
        from: NodeId,
        request: Request,
    ) -> Option<Response> {
        let (tx, rx) = oneshot::channel();
        let mut id = 0;
        self.step(|inner, now| {
            id = inner.next_incoming_id;
            inner.next_incoming_id += 1;
            inner.responders.insert(id, tx);
            inner.node.handle_request(from, id, request, now)
        });
        let limit = Duration::from_millis(self.config.request_timeout_ms.max(1000) * 2);
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(r)) => Some(r),
            _ => {
                self.lock().responders.remove(&id);
                None
            }
        }
    }

    /// Waits (at most `timeout`) until this node has applied everything the leader had
    /// committed when this call began: on the active controller at once; elsewhere after
    /// two more Fetch rounds, the second of which reports a high watermark covering it.
    pub async fn sync_with_leader(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let start = self.lock().leader_fetches;
        let mut applied = self.applied_tx.subscribe();
        loop {
            {
                let inner = self.lock();
                if inner.is_active()
                    || (inner.leader_fetches >= start + 2
                        && inner.applied >= inner.leader_high_watermark)
                {
                    return;
                }
            }
            let wait = tokio::time::sleep(Duration::from_millis(50));
            tokio::select! {
                _ = applied.changed() => {}
                _ = wait => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
        }
    }

    /// The current Raft epoch.
    pub fn epoch(&self) -> i32 {
        self.lock().node.epoch().0
    }

    /// The current Raft epoch if this node is the active controller, read at once.
    pub fn active_epoch(&self) -> Option<i32> {
        let inner = self.lock();
        inner.is_active().then(|| inner.node.epoch().0)
    }

    /// The offset the next appended entry gets (on the leader: the next proposal's).
    pub fn log_end_offset(&self) -> i64 {
        self.lock().node.log().end_offset().0
    }

    /// The node id of the active controller as far as this node knows.
    pub fn leader(&self) -> Option<i32> {
        self.lock().node.leader().map(|l| l.0)
    }

    /// The controller listener address of a voter.
    pub fn voter_address(&self, id: i32) -> Option<&str> {
        self.config.voters.get(&id).map(String::as_str)
    }

    /// The voters' ids.
    pub fn voter_ids(&self) -> Vec<i32> {
        self.config.voters.keys().copied().collect()
    }

    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        self.lock().is_active()
    }

    /// Whether the image has caught up with the quorum (a standalone node: always).
    pub fn is_ready(&self) -> bool {
        *self.ready_tx.borrow()
    }

    /// Waits until the image has caught up with the quorum.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready_tx.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Notified with the applied offset whenever it moves.
    pub fn subscribe_applied(&self) -> watch::Receiver<i64> {
        self.applied_tx.subscribe()
    }

    /// Notified when the log fails and the node must stop.
    pub fn subscribe_failure(&self) -> watch::Receiver<Option<String>> {
        self.failed.subscribe()
    }

    /// The offset after the last committed record.
    pub fn end_offset(&self) -> i64 {
        self.lock().node.high_watermark().0
    }

    /// The offset of the next entry to apply: the image holds everything below it.
    pub fn applied_offset(&self) -> i64 {
        *self.applied_tx.borrow()
    }

    /// The quorum as DescribeQuorum reports it (only the leader knows it).
    pub fn describe(&self) -> Option<DescribeQuorumData> {
        let inner = self.lock();
        inner.node.describe_quorum(inner.now()).ok()
    }

    /// The current image. Cheap: an `Arc` clone.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Proposes `records` as the active controller and waits until they are committed and
    /// applied to the image. Returns the offset of the last record. An empty list is a
    /// no-op.
    pub async fn commit(
        self: &Arc<Self>,
        records: &[MetadataRecord],
        timeout: Duration,
    ) -> Result<i64, CommitError> {
        if records.is_empty() {
            return Ok(self.image().offset);
        }
        // A decision of several records is one transaction (KIP-868): followers apply it
        // whole, and a leader change half-way through abandons it.
        let mut data: Vec<Bytes> = records.iter().map(MetadataRecord::encode).collect();
        if data.len() > 1 {
            data.insert(0, MetadataRecord::BeginTransaction { name: None }.encode());
            data.push(MetadataRecord::EndTransaction.encode());
        }
        let mut proposed = Err(CommitError::NotController);
        self.step(|inner, now| {
            if !inner.is_active() || (inner.txn_base.is_some() && !inner.abort_proposed) {
                return;
            }
            let epoch = inner.node.epoch();
            proposed = match inner.node.propose(data, now) {
                Ok(last) => Ok((last.0, epoch)),
                Err(_) => Err(CommitError::NotController),
            };
        });
        let (last, epoch) = proposed?;
        let mut applied = self.applied_tx.subscribe();
        // The value's guard goes at once: it holds the channel's lock, which a step takes
        // under the node's lock.
        let waited = tokio::time::timeout(timeout, applied.wait_for(|a| *a > last))
            .await
            .map(|r| r.map(|_| ()));
        match waited {
            Err(_) => return Err(CommitError::Timeout(timeout)),
            Ok(Err(_)) => return Err(CommitError::NotController),
            Ok(Ok(_)) => {}
        }
        // The entry at `last` is the one proposed only if it carries the proposal's epoch;
        // a new leader may have replaced it.
        let inner = self.lock();
        let entry = inner.node.log().read(Offset(last), 1);
        match entry.first() {
            Some(e) if e.offset.0 == last && e.epoch == epoch => Ok(last),
            Some(_) => Err(CommitError::NotController),
            // Already folded into a snapshot: still ours if the epoch never changed.
            None if inner.node.epoch() == epoch && inner.node.role() == RoleKind::Leader => {
                Ok(last)
            }
            None => Err(CommitError::NotController),
        }
    }

    /// Resigns leadership gracefully (EndQuorumEpoch to the other voters), for shutdown.
    pub fn resign(self: &Arc<Self>) {
        self.step(|inner, now| inner.node.resign(now));
    }

    /// Writes the image as a snapshot if anything was applied since the last one: at a
    /// clean shutdown, so that the next start loads it instead of replaying the log.
    pub fn snapshot_now(&self) {
        self.lock().snapshot(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standalone() -> QuorumConfig {
        QuorumConfig {
            node_id: 1,
            voters: [(1, "127.0.0.1:1".to_string())].into_iter().collect(),
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            request_timeout_ms: 2000,
            snapshots: SnapshotPolicy {
                max_record_bytes: u64::MAX,
                max_interval_ms: 0,
            },
            security: Default::default(),
        }
    }

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.into(),
            topic_id: uuid::Uuid::from_u128(id),
        }
    }

    #[tokio::test]
    async fn decisions_apply_whole_and_a_transaction_left_open_is_aborted() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let log = Arc::new(MetadataLog::open(dir.path(), "c", standalone(), 0).expect("open"));
            let (stop, stopped) = watch::channel(false);
            let driver = log.start(stopped);
            log.commit(&[topic("a", 1), topic("b", 2)], Duration::from_secs(5))
                .await
                .expect("commit");
            assert!(log.image().topic("a").is_some() && log.image().topic("b").is_some());
            // A leader writes the start of a decision and dies before the rest.
            let _ = stop.send(true);
            driver.await.expect("driver");
            let mut inner = log.lock();
            let now = inner.now();
            inner
                .node
                .propose(
                    vec![
                        MetadataRecord::BeginTransaction { name: None }.encode(),
                        topic("half", 3).encode(),
                    ],
                    now,
                )
                .expect("propose");
            for _ in 0..5 {
                inner.tick_to_deadline().expect("tick");
            }
            assert!(inner.txn_base.is_some(), "the transaction is open");
            assert!(inner.image.topic("half").is_some());
            assert!(!inner.abort_proposed, "its own leader does not abort it");
        }
        // Not published while open; after a restart (a new epoch) it is abandoned.
        let log = MetadataLog::open(dir.path(), "c", standalone(), 0).expect("reopen");
        assert!(log.image().topic("half").is_none());
        assert!(log.image().topic("a").is_some());
        let inner = log.lock();
        assert!(inner.txn_base.is_none());
        let end = inner.node.log().end_offset().0;
        let last = inner.node.log().read(Offset(end - 1), 1);
        let record = MetadataRecord::decode(&last[0].data).expect("decode");
        assert!(
            matches!(record, MetadataRecord::AbortTransaction { .. }),
            "{record:?}"
        );
    }

    #[tokio::test]
    async fn a_snapshot_at_shutdown_is_what_the_next_start_loads() {
        let dir = tempfile::tempdir().expect("tmp");
        let committed_end = {
            let log = Arc::new(MetadataLog::open(dir.path(), "c", standalone(), 0).expect("open"));
            let (stop, stopped) = watch::channel(false);
            let driver = log.start(stopped);
            log.commit(&[topic("a", 1)], Duration::from_secs(5))
                .await
                .expect("commit");
            log.commit(&[topic("b", 2)], Duration::from_secs(5))
                .await
                .expect("commit");
            let _ = stop.send(true);
            driver.await.expect("driver");
            log.snapshot_now();
            let inner = log.lock();
            let snapshot = inner.node.log().latest_snapshot().expect("a snapshot");
            assert_eq!(snapshot.end_offset.0, inner.applied);
            // What it covers is no longer replayed.
            assert_eq!(inner.node.log().start_offset(), snapshot.end_offset);
            inner.applied
        };
        let log = MetadataLog::open(dir.path(), "c", standalone(), 0).expect("reopen");
        assert!(log.image().topic("a").is_some() && log.image().topic("b").is_some());
        let inner = log.lock();
        assert!(inner.applied >= committed_end);
        // Nothing new since: a second shutdown writes no other snapshot.
        let before = inner.node.log().latest_snapshot();
        drop(inner);
        log.snapshot_now();
        assert_eq!(log.lock().node.log().latest_snapshot(), before);
    }
}
