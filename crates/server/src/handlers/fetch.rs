//! Fetch (1): whole stored batches up to the high watermark, with long polling.
//!
//! A fetch with a replica id is a follower's: it reads up to the log end, tells the
//! leader how far the follower has got (which may move the high watermark and grow the
//! ISR), and gets a diverging epoch instead of data when the follower's last epoch ends
//! earlier on the leader (KIP-320). Only the leader serves fetches.
//!
//! Batches are sent as stored, never decoded: a partition's answer names ranges of its
//! segment files, and record sets of at least [`SENDFILE_MIN_BYTES`] go from the page cache
//! to the socket by sendfile without passing through this process (smaller ones are read
//! into memory and leave with the rest of the frame in one vectored write, which costs
//! fewer system calls). A request that
//! finds fewer than `min_bytes`
//! parks on every partition it reads and is woken by the next append to any of them, or
//! answered when `max_wait_ms` runs out. Fetch sessions (KIP-227) are not kept: every
//! response has session id 0, which tells clients to send full requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use krust_protocol::encode_fetch_response_split;
use krust_protocol::ErrorCode;
use krust_storage::{FileSlice, StorageError};
use tokio::sync::Notify;
use uuid::Uuid;

use super::sb;
use crate::broker::Broker;
use crate::outbound::{Chunk, Outbound};
use crate::partition::Partition;

/// Ceiling on a single response, whatever the client asks.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Record sets at least this large are sent by sendfile; smaller ones are copied.
pub const SENDFILE_MIN_BYTES: u64 = 32 * 1024;

/// A Fetch response whose record sets are still ranges of segment files.
pub struct FetchAnswer {
    resp: FetchResponse,
    /// Per partition, in response order across topics.
    records: Vec<Vec<FileSlice>>,
}

impl FetchAnswer {
    fn empty(resp: FetchResponse) -> Self {
        FetchAnswer {
            resp,
            records: Vec::new(),
        }
    }

    /// About the bytes of the response (what a consumer's byte-rate quota counts): its
    /// records, and the fixed fields of the response, its topics and partitions.
    pub fn quota_bytes(&self) -> u64 {
        let records: u64 = self.records.iter().flatten().map(|s| s.len).sum();
        let topics: u64 = self
            .resp
            .responses
            .iter()
            .map(|t| 20 + t.topic.len() as u64 + 42 * t.partitions.len() as u64)
            .sum();
        16 + topics + records
    }

    /// The answer to a fetch over its consumer's quota: no records, and how long the
    /// client should wait (Kafka's throttled fetch response).
    pub fn throttled(throttle_ms: i32) -> FetchAnswer {
        FetchAnswer::empty(FetchResponse::default().with_throttle_time_ms(throttle_ms))
    }

    /// Queues the response frame on `out`; an error means the frame could not be encoded.
    /// The frame is encoded without record sets; large ones follow as file ranges (sent by
    /// sendfile), small ones are read into memory first.
    pub fn write(
        mut self,
        out: &mut Outbound,
        correlation_id: i32,
        version: i16,
    ) -> Result<(), String> {
        let parts = self
            .resp
            .responses
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut());
        let mut sizes = Vec::with_capacity(self.records.len());
        let mut chunks: Vec<Vec<Chunk>> = Vec::with_capacity(self.records.len());
        for (p, slices) in parts.zip(std::mem::take(&mut self.records)) {
            let len: u64 = slices.iter().map(|s| s.len).sum();
            if len >= SENDFILE_MIN_BYTES {
                sizes.push(Some(len));
                chunks.push(slices.into_iter().map(Chunk::File).collect());
                continue;
            }
            let mut bytes = Vec::with_capacity(len as usize);
            if let Err(e) = slices.iter().try_for_each(|s| s.read_into(&mut bytes)) {
                tracing::warn!(partition = p.partition_index, error = %e, "cannot read records for a fetch");
                p.error_code = ErrorCode::KafkaStorageError.code();
                bytes.clear();
            }
            sizes.push(Some(bytes.len() as u64));
            chunks.push(vec![Chunk::Bytes(Bytes::from(bytes))]);
        }
        let holes = encode_fetch_response_split(
            &mut out.buf,
            correlation_id,
            version,
            &mut self.resp,
            &sizes,
        )
        .map_err(|e| e.to_string())?;
        let mut sealed = 0;
        for (at, c) in holes.into_iter().zip(chunks) {
            out.push_at(at - sealed, c);
            sealed = at;
        }
        Ok(())
    }
}

struct Wanted {
    topic: String,
    topic_id: Uuid,
    index: i32,
    partition: Option<Arc<Partition>>,
    missing_error: ErrorCode,
    fetch_offset: i64,
    current_leader_epoch: i32,
    /// The epoch of the follower's last fetched batch (-1: not given).
    last_fetched_epoch: i32,
    max_bytes: usize,
    /// The follower's id, for a replica fetch.
    replica: Option<i32>,
    /// `isolation_level` 1: up to the last stable offset, with the aborted transactions.
    read_committed: bool,
}

/// `holds_share`: the request holds a share of the memory budget (until it is answered, as
/// what it decoded is held as long), so it waits for records at most
/// [`crate::admission::MAX_WAIT_WITH_SHARE`], whatever `max_wait_ms` it asks for.
/// The fetching follower's id (v15 moved it into ReplicaState); negative for a consumer.
pub fn replica_id(req: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    }
}

pub async fn handle(
    broker: &Broker,
    az: &crate::authz::Authz,
    req: FetchRequest,
    version: i16,
    holds_share: bool,
) -> FetchAnswer {
    let mut resp = FetchResponse::default();
    if req.session_id != 0 {
        resp.error_code = ErrorCode::FetchSessionIdNotFound.code();
        return FetchAnswer::empty(resp);
    }
    if req.session_epoch > 0 {
        resp.error_code = ErrorCode::InvalidFetchSessionEpoch.code();
        return FetchAnswer::empty(resp);
    }
    let image = broker.image();
    let replica_id = replica_id(&req, version);
    let replica = (replica_id >= 0).then_some(replica_id);
    // A follower needs CLUSTER_ACTION (else every partition is refused, as Kafka does); a
    // consumer needs READ on each topic.
    let follower_denied =
        replica.is_some() && az.is_on() && !az.cluster(krust_metadata::acl::op::CLUSTER_ACTION);
    let mut wanted = Vec::new();
    for t in &req.topics {
        let (name, id, missing_error) = if version >= 13 {
            match image.topic_by_id(&t.topic_id) {
                Some(ti) => (
                    ti.name.clone(),
                    t.topic_id,
                    ErrorCode::UnknownTopicOrPartition,
                ),
                None => (String::new(), t.topic_id, ErrorCode::UnknownTopicId),
            }
        } else {
            let n = t.topic.to_string();
            let id = image.topic(&n).map(|ti| ti.id).unwrap_or_default();
            (n, id, ErrorCode::UnknownTopicOrPartition)
        };
        let denied = !name.is_empty()
            && (follower_denied
                || (replica.is_none() && !az.topic(krust_metadata::acl::op::READ, &name)));
        let missing_error = if denied {
            ErrorCode::TopicAuthorizationFailed
        } else {
            missing_error
        };
        for p in &t.partitions {
            let partition = if name.is_empty() || denied {
                None
            } else {
                broker.partition(&name, p.partition)
            };
            // A partition of the cluster that this node does not hold: ask its leader.
            let missing_error = if partition.is_none()
                && !denied
                && image
                    .topic(&name)
                    .is_some_and(|t| t.partitions.contains_key(&p.partition))
            {
                ErrorCode::NotLeaderOrFollower
            } else {
                missing_error
            };
            wanted.push(Wanted {
                partition,
                topic: name.clone(),
                topic_id: id,
                index: p.partition,
                missing_error,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: if version >= 12 {
                    p.last_fetched_epoch
                } else {
                    -1
                },
                max_bytes: p.partition_max_bytes.max(0) as usize,
                replica,
                read_committed: req.isolation_level == 1,
            });
        }
    }
    let response_max = (req.max_bytes.max(0) as usize).min(RESPONSE_BYTES_MAX);
    let min_bytes = req.min_bytes.max(0) as usize;
    let mut wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    if holds_share {
        wait = wait.min(crate::admission::MAX_WAIT_WITH_SHARE);
    }
    let deadline = tokio::time::Instant::now() + wait;
    if let Some(id) = replica {
        let now = crate::broker::now_ms();
        for w in &wanted {
            let Some(p) = w.partition.as_ref().filter(|p| p.is_leader()) else {
                continue;
            };
            if p.check_leader_epoch(w.current_leader_epoch).is_err() {
                continue;
            }
            if let Some(isr) = p.follower_fetched(id, w.fetch_offset, now) {
                if let Some(b) = broker.self_arc() {
                    let p = p.clone();
                    tokio::spawn(async move { b.alter_isr(&p, isr).await });
                }
            }
        }
    }
    let waiter = Arc::new(Notify::new());
    loop {
        for w in &wanted {
            if let Some(p) = &w.partition {
                if w.replica.is_some() {
                    p.park_replica(&waiter);
                } else {
                    p.park(&waiter);
                }
            }
        }
        let read = read_all(&wanted, response_max, version);
        if read.total >= min_bytes.max(1)
            || read.errors
            || tokio::time::Instant::now() >= deadline
            || wanted.is_empty()
        {
            return answer(broker, &wanted, resp, read);
        }
        if tokio::time::timeout_at(deadline, waiter.notified())
            .await
            .is_err()
        {
            let read = read_all(&wanted, response_max, version);
            return answer(broker, &wanted, resp, read);
        }
    }
}

/// The answer from a final read, counting the bytes sent per topic (the read lists
/// partitions in `wanted` order).
fn answer(
    broker: &Broker,
    wanted: &[Wanted],
    mut resp: FetchResponse,
    read: ReadAll,
) -> FetchAnswer {
    for (w, slices) in wanted.iter().zip(&read.records) {
        let bytes: u64 = slices.iter().map(|s| s.len).sum();
        broker.metrics.record_fetch(&w.topic, bytes as usize);
    }
    resp.responses = read.topics;
    FetchAnswer {
        resp,
        records: read.records,
    }
}

/// One pass over the wanted partitions.
struct ReadAll {
    topics: Vec<FetchableTopicResponse>,
    /// Each partition's record set, in `wanted` order.
    records: Vec<Vec<FileSlice>>,
    total: usize,
    /// Whether any partition had an error (which makes the response go out at once, as in
    /// Kafka).
    errors: bool,
}

/// Reads every wanted partition once.
fn read_all(wanted: &[Wanted], response_max: usize, version: i16) -> ReadAll {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut records = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut errors = false;
    for w in wanted {
        let (data, slices) = read_one(w, response_max.saturating_sub(total), total == 0);
        if data.error_code != 0 {
            errors = true;
        }
        total += slices.iter().map(|s| s.len as usize).sum::<usize>();
        records.push(slices);
        let same_topic = topics.last().is_some_and(|t| {
            if version >= 13 {
                t.topic_id == w.topic_id
            } else {
                t.topic.as_str() == w.topic
            }
        });
        if !same_topic {
            let mut t = FetchableTopicResponse::default();
            if version >= 13 {
                t.topic_id = w.topic_id;
            } else {
                t.topic = TopicName(sb(w.topic.clone()));
            }
            topics.push(t);
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(data);
        }
    }
    ReadAll {
        topics,
        records,
        total,
        errors,
    }
}

fn read_one(w: &Wanted, budget: usize, first: bool) -> (PartitionData, Vec<FileSlice>) {
    let mut data = PartitionData::default()
        .with_partition_index(w.index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()));
    data.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
    let Some(p) = &w.partition else {
        data.error_code = w.missing_error.code();
        return (data, Vec::new());
    };
    if let Err(code) = p.check_leader_epoch(w.current_leader_epoch) {
        data.error_code = code.code();
        return (data, Vec::new());
    }
    if !p.is_leader() {
        data.error_code = ErrorCode::NotLeaderOrFollower.code();
        return (data, Vec::new());
    }
    // The producer state is locked before the log (as appends do), so the last stable
    // offset and the aborted transactions are read first.
    let last_stable = p.last_stable_offset();
    let high_watermark = p.high_watermark().max(last_stable);
    let aborted = (w.read_committed && w.replica.is_none()).then(|| {
        p.aborted_between(w.fetch_offset, last_stable)
            .into_iter()
            .map(|a| {
                kafka_protocol::messages::fetch_response::AbortedTransaction::default()
                    .with_producer_id(kafka_protocol::messages::ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset)
            })
            .collect::<Vec<_>>()
    });
    let log = p.read_log();
    data.high_watermark = high_watermark;
    data.last_stable_offset = last_stable;
    data.aborted_transactions = aborted;
    data.log_start_offset = log.log_start_offset();
    if w.replica.is_some() && w.last_fetched_epoch >= 0 {
        // KIP-320: where the follower's last epoch ends here; if that is before its fetch
        // offset (or the epoch is unknown here), its log diverged.
        let (epoch, end) = log.end_offset_for_epoch(w.last_fetched_epoch);
        if epoch != w.last_fetched_epoch || end < w.fetch_offset {
            data.diverging_epoch =
                kafka_protocol::messages::fetch_response::EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end);
            return (data, Vec::new());
        }
    }
    // Followers read everything written; consumers what is committed, and read_committed
    // ones what no open transaction may still abort.
    let max_offset = if w.replica.is_some() {
        log.log_end_offset()
    } else if w.read_committed {
        last_stable
    } else {
        high_watermark
    };
    let max = w.max_bytes.min(budget);
    match log.read_slices(w.fetch_offset, max, max_offset, first) {
        Ok(slices) => return (data, slices),
        Err(StorageError::OffsetOutOfRange { .. }) => {
            data.error_code = ErrorCode::OffsetOutOfRange.code();
        }
        Err(e) => {
            data.error_code = super::produce::storage_error(&e).0.code();
        }
    }
    (data, Vec::new())
}
