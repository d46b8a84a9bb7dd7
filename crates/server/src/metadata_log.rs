//! The metadata log: `__cluster_metadata-0` behind the KRaft core.
//!
//! The log lives in `metadata.log.dir` on the shared log engine ([`DiskRaftLog`]) and is
//! replicated by a [`RaftNode`]. This module is the seam between deciding and committing:
//! callers propose records with [`MetadataLog::commit`]; once Raft has committed them
//! (durable on a majority of voters — here, the node itself: a standalone node is the
//! single voter of its quorum) they are applied, in offset order, to a fresh copy of the
//! image, which then replaces the current one. On start the node elects itself and every
//! entry up to the high watermark is applied to rebuild the image.
//!
//! The host side of the Raft contract is here: effects are executed in order, and the
//! election state is durable (the `quorum-state` file) before the node acts on it. Time
//! is the wall clock plus a skew that only grows: a standalone node jumps to its election
//! deadline instead of sleeping through it.

use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use krust_metadata::{MetadataImage, MetadataRecord};
use krust_raft::messages::DescribeQuorumData;
use krust_raft::{Effect, EntryKind, NodeId, Offset, RaftConfig, RaftLog, RaftNode, RoleKind};
use tracing::{info, warn};

use crate::quorum_state;
use crate::raft_log::DiskRaftLog;

/// The metadata topic's name.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Name of the metadata log's partition directory.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata-0";

/// Ticks a commit may take before it is declared stuck (a standalone quorum commits in
/// one or two).
const COMMIT_TICKS_MAX: usize = 50;
/// Entries read at a time while applying.
const APPLY_BATCH: usize = 1024;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Inner {
    node: RaftNode<DiskRaftLog>,
    dir: PathBuf,
    cluster_id: String,
    /// Added to the wall clock; only grows, so the node's time never goes back.
    clock_skew_ms: u64,
    /// Next offset to apply to the image.
    applied: i64,
    snapshots: SnapshotPolicy,
    /// Record bytes committed since the last snapshot.
    bytes_since_snapshot: u64,
    /// When the last snapshot was taken (node clock).
    last_snapshot_ms: u64,
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

impl Inner {
    fn now(&self) -> u64 {
        wall_ms() + self.clock_skew_ms
    }

    /// Executes every pending effect in order, applying committed entries to `image`.
    fn drain(&mut self, image: &mut MetadataImage) -> anyhow::Result<()> {
        loop {
            let effects = self.node.poll_effects();
            if effects.is_empty() {
                return Ok(());
            }
            for effect in effects {
                match effect {
                    Effect::PersistQuorumState(record) => {
                        quorum_state::write(&self.dir, &self.cluster_id, &record)?
                    }
                    Effect::Committed { high_watermark } => {
                        self.apply_up_to(high_watermark, image)?
                    }
                    Effect::LeaderChanged { epoch, leader } => {
                        info!(epoch = epoch.0, leader = ?leader.map(|l| l.0), "metadata quorum leader changed");
                    }
                    Effect::SendRequest { to, .. } | Effect::SendResponse { to, .. } => {
                        warn!(peer = to.0, "a standalone quorum has no peers to send to");
                    }
                    Effect::SnapshotLoaded { .. } => {}
                }
            }
        }
    }

    fn apply_up_to(
        &mut self,
        high_watermark: Offset,
        image: &mut MetadataImage,
    ) -> anyhow::Result<()> {
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
                    image.apply(e.offset.0, &record).map_err(|err| {
                        anyhow::anyhow!(
                            "metadata record at offset {} does not apply: {err}",
                            e.offset.0
                        )
                    })?;
                }
                self.applied = e.offset.0 + 1;
            }
        }
        Ok(())
    }

    /// Ticks at the node's next deadline, jumping the clock there if it is ahead.
    fn tick_to_deadline(&mut self, image: &mut MetadataImage) -> anyhow::Result<()> {
        let deadline = self.node.next_deadline_ms();
        let now = self.now();
        if deadline > now {
            self.clock_skew_ms += deadline - now;
        }
        let now = self.now();
        self.node.tick(now);
        self.drain(image)
    }
}

/// The metadata log and the image built from it.
pub struct MetadataLog {
    inner: Mutex<Inner>,
    image: RwLock<Arc<MetadataImage>>,
}

impl MetadataLog {
    /// Opens (or creates) the metadata log under `metadata_dir`, elects this node (the
    /// single voter) and applies the committed log to rebuild the image.
    pub fn open(
        metadata_dir: &Path,
        node_id: i32,
        cluster_id: &str,
        snapshots: SnapshotPolicy,
        now_ms: i64,
    ) -> anyhow::Result<MetadataLog> {
        let dir = metadata_dir.join(METADATA_DIR_NAME);
        let log = DiskRaftLog::open(&dir, now_ms).map_err(anyhow::Error::msg)?;
        let persisted = quorum_state::read(&dir)?;
        let config = RaftConfig {
            cluster_id: Some(cluster_id.to_string()),
            append_linger_ms: 0,
            ..RaftConfig::default()
        };
        let end = log.end_offset();
        let node = RaftNode::new(
            config,
            NodeId(node_id),
            [NodeId(node_id)],
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
            snapshots,
            bytes_since_snapshot: 0,
            last_snapshot_ms: wall_ms(),
        };
        let mut image = MetadataImage::new();
        if let Some(id) = inner.node.log().latest_snapshot() {
            let (data, _) = inner
                .node
                .log()
                .read_snapshot(id, 0, usize::MAX)
                .ok_or_else(|| anyhow::anyhow!("the metadata snapshot {id:?} cannot be read"))?;
            let records = decode_snapshot(data)?;
            for r in &records {
                image
                    .apply(id.end_offset.0 - 1, r)
                    .map_err(|e| anyhow::anyhow!("the metadata snapshot does not apply: {e}"))?;
            }
            inner.applied = id.end_offset.0;
            info!(
                end_offset = id.end_offset.0,
                records = records.len(),
                "loaded metadata snapshot"
            );
        }
        inner.drain(&mut image)?;
        for _ in 0..COMMIT_TICKS_MAX {
            if inner.node.role() == RoleKind::Leader
                && inner.node.high_watermark() >= end
                && inner.applied >= end.0
            {
                break;
            }
            inner.tick_to_deadline(&mut image)?;
        }
        if inner.node.role() != RoleKind::Leader {
            anyhow::bail!("the metadata quorum did not elect this node, its only voter");
        }
        info!(
            epoch = inner.node.epoch().0,
            high_watermark = inner.node.high_watermark().0,
            topics = image.topics.len(),
            "metadata log replayed"
        );
        Ok(MetadataLog {
            inner: Mutex::new(inner),
            image: RwLock::new(Arc::new(image)),
        })
    }

    /// The offset after the last committed record.
    pub fn end_offset(&self) -> i64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .node
            .high_watermark()
            .0
    }

    /// The quorum as DescribeQuorum reports it.
    pub fn describe(&self) -> Option<DescribeQuorumData> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.node.describe_quorum(inner.now()).ok()
    }

    /// The current image. Cheap: an `Arc` clone.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Proposes `records`, waits until they are committed, applies them and publishes
    /// the new image. Returns the offset of the last record. An empty list is a no-op.
    pub fn commit(&self, records: &[MetadataRecord], _now_ms: i64) -> anyhow::Result<i64> {
        if records.is_empty() {
            return Ok(self.image().offset);
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut image = (*self.image()).clone();
        let data = records.iter().map(MetadataRecord::encode).collect();
        let now = inner.now();
        let last = inner
            .node
            .propose(data, now)
            .map_err(|e| anyhow::anyhow!("the metadata quorum refused the records: {e:?}"))?
            .0;
        let first = last - records.len() as i64 + 1;
        let now = inner.now();
        inner.node.tick(now);
        inner.drain(&mut image)?;
        for _ in 0..COMMIT_TICKS_MAX {
            if inner.applied > last {
                break;
            }
            inner.tick_to_deadline(&mut image)?;
        }
        if inner.applied <= last {
            anyhow::bail!("metadata records at {first}..={last} were not committed");
        }
        inner.bytes_since_snapshot += records.iter().map(|r| r.encode().len() as u64).sum::<u64>();
        let now = inner.now();
        let by_time = inner.snapshots.max_interval_ms > 0
            && now.saturating_sub(inner.last_snapshot_ms) >= inner.snapshots.max_interval_ms;
        if inner.bytes_since_snapshot >= inner.snapshots.max_record_bytes || by_time {
            let end = Offset(inner.applied);
            match inner.node.create_snapshot(end, encode_snapshot(&image)) {
                Ok(id) => {
                    info!(
                        end_offset = id.end_offset.0,
                        epoch = id.epoch.0,
                        "wrote metadata snapshot"
                    );
                    inner.bytes_since_snapshot = 0;
                    inner.last_snapshot_ms = now;
                }
                Err(e) => warn!(error = ?e, "could not write a metadata snapshot"),
            }
        }
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(image);
        Ok(last)
    }
}
