//! The metadata log of a single-node quorum.
//!
//! `__cluster_metadata-0` lives in `metadata.log.dir` and uses the same log engine as every
//! partition. This module is the seam between deciding and committing: callers propose
//! records with [`MetadataLog::commit`]; once they are durable in the log (fsynced) they
//! are applied, in order, to a fresh copy of the image, which then replaces the current
//! one. On start the whole log is replayed to rebuild the image. A Raft quorum will sit
//! behind this same interface: propose, wait for the high watermark, apply.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use krust_metadata::records::{decode_batches, encode_batch};
use krust_metadata::{MetadataImage, MetadataRecord};
use krust_storage::{Log, LogConfig};
use tracing::info;

/// The metadata topic's name.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Name of the metadata log's partition directory.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata-0";

/// Largest read while replaying.
const REPLAY_READ_BYTES: usize = 8 * 1024 * 1024;

pub struct MetadataLog {
    log: Mutex<Log>,
    image: RwLock<Arc<MetadataImage>>,
}

impl MetadataLog {
    /// Opens (or creates) the metadata log under `metadata_dir` and replays it.
    pub fn open(metadata_dir: &Path, now_ms: i64) -> anyhow::Result<MetadataLog> {
        let dir = metadata_dir.join(METADATA_DIR_NAME);
        let config = LogConfig {
            segment_bytes: 8 * 1024 * 1024,
            ..LogConfig::default()
        };
        // The metadata log is always fsynced before records are applied, so its recovery
        // point is its end: validate it fully on every start.
        let log = Log::open(&dir, config, 0, 0, false, now_ms)
            .map_err(|e| anyhow::anyhow!("cannot open metadata log {}: {e}", dir.display()))?;
        let mut image = MetadataImage::new();
        let mut next = log.log_start_offset();
        let end = log.log_end_offset();
        let mut count = 0u64;
        while next < end {
            let read = log
                .read(next, REPLAY_READ_BYTES, end, true)
                .map_err(|e| anyhow::anyhow!("cannot read metadata log at offset {next}: {e}"))?;
            if read.records.is_empty() {
                break;
            }
            for (offset, record) in decode_batches(read.records.clone())
                .map_err(|e| anyhow::anyhow!("metadata log is corrupt near offset {next}: {e}"))?
            {
                if offset < next {
                    continue;
                }
                image.apply(offset, &record).map_err(|e| {
                    anyhow::anyhow!("metadata record at offset {offset} does not apply: {e}")
                })?;
                next = offset + 1;
                count += 1;
            }
            next = next.max(read.next_offset);
        }
        info!(
            records = count,
            end_offset = end,
            topics = image.topics.len(),
            "metadata log replayed"
        );
        Ok(MetadataLog {
            log: Mutex::new(log),
            image: RwLock::new(Arc::new(image)),
        })
    }

    /// The offset after the last committed record.
    pub fn end_offset(&self) -> i64 {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log_end_offset()
    }

    /// The current image. Cheap: an `Arc` clone.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Appends `records` as one batch, makes them durable, applies them and publishes the
    /// new image. Returns the offset of the last record. An empty list is a no-op.
    pub fn commit(&self, records: &[MetadataRecord], now_ms: i64) -> anyhow::Result<i64> {
        if records.is_empty() {
            return Ok(self.image().offset);
        }
        let batch: Bytes = encode_batch(records, now_ms)?;
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let info = log.append_as_leader(&batch, 0, now_ms)?;
        log.flush()?;
        let mut next = (*self.image()).clone();
        for (i, r) in records.iter().enumerate() {
            // The records were validated by the controller against this same image; a
            // failure here is a bug, not bad input.
            next.apply(info.first_offset + i as i64, r)
                .map_err(|e| anyhow::anyhow!("committed metadata record does not apply: {e}"))?;
        }
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(info.last_offset)
    }

    /// Flushes and closes the log.
    pub fn close(self) -> anyhow::Result<()> {
        let log = self.log.into_inner().unwrap_or_else(|e| e.into_inner());
        log.close()?;
        Ok(())
    }
}
