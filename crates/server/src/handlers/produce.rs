//! Produce (0): validate and append each partition's batches, as leader.
//!
//! The record bytes go to the log as they arrived; only the batch headers are stamped
//! (base offset, leader epoch, and the timestamp under LogAppendTime). acks=0 gets no
//! response, and any error on it closes the connection so the client notices.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use krust_protocol::ErrorCode;
use krust_storage::{ProducerError, SequenceError, StorageError, TxnError};

use super::sb;
use crate::broker::{now_ms, Broker};
use crate::partition::{AppendError, TxnCheck};

/// What the connection does with the result.
pub enum Reply {
    Respond(ProduceResponse),
    /// Appended; the answer waits for a due fsync and, under acks=all, for the in-sync
    /// replicas. The connection may go on with its next Produce requests meanwhile.
    Wait(PendingAcks),
    /// acks=0 and everything succeeded.
    None,
    /// acks=0 and something failed: close the connection (Kafka's behaviour).
    Close(String),
}

/// Kafka's admin tools' client id, the one client that may append to internal topics.
pub const ADMIN_CLIENT_ID: &str = "__admin_client";

/// `internal_allowed`: the request came from [`ADMIN_CLIENT_ID`]; anyone else appending to
/// an internal topic (`__consumer_offsets`, whose records the group coordinator trusts)
/// gets INVALID_TOPIC_EXCEPTION, as from Kafka.
pub async fn handle(
    broker: &Broker,
    req: ProduceRequest,
    _version: i16,
    internal_allowed: bool,
) -> Reply {
    let acks = req.acks;
    let now = now_ms();
    let mut resp = ProduceResponse::default();
    let mut first_error: Option<String> = None;
    // acks=all: what to wait for.
    let mut waits: Vec<Wait> = Vec::new();
    // Partitions appended to, with where their answers go: flushed when due, then their
    // high watermarks moved and their parked fetches woken, once all are appended.
    let mut appended = Vec::new();
    // KIP-890: a transactional batch that would open its transaction in a partition is
    // appended only once the coordinator confirms the partition is in the transaction.
    let verifying = broker.config.transaction_partition_verification_enable;
    let checks = match req.transactional_id.as_deref() {
        Some(txn_id) if verifying => verify_transactions(broker, txn_id, &req.topic_data).await,
        _ => std::collections::HashMap::new(),
    };
    // Verification may have waited: the append time is taken after it.
    let now = if checks.is_empty() { now } else { now_ms() };
    // A transactional batch no verification covered (no transactional id, or a partition
    // led here only since) may only continue a transaction already open.
    let unchecked = if verifying {
        TxnCheck::Open
    } else {
        TxnCheck::Off
    };
    for topic in req.topic_data {
        let name = topic.name.to_string();
        let mut out = TopicProduceResponse::default().with_name(topic.name.clone());
        for pd in topic.partition_data {
            let mut pr = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let result = if !matches!(acks, -1..=1) {
                Err((ErrorCode::InvalidRequiredAcks, None))
            } else if !internal_allowed && krust_metadata::topic_name::is_internal(&name) {
                Err((
                    ErrorCode::InvalidTopicException,
                    Some(format!("Cannot append to internal topic {name}")),
                ))
            } else if let Some(Err(e)) = checks.get(&(name.clone(), pd.index)) {
                Err(e.clone())
            } else {
                let check = match checks.get(&(name.clone(), pd.index)) {
                    Some(Ok(c)) => *c,
                    _ => unchecked,
                };
                append(
                    broker,
                    &name,
                    pd.index,
                    pd.records.as_ref(),
                    acks,
                    (now, check),
                    (
                        &mut appended,
                        resp.responses.len(),
                        out.partition_responses.len(),
                    ),
                )
            };
            match result {
                Ok((base, append_time, log_start, wait)) => {
                    pr.base_offset = base;
                    pr.log_append_time_ms = append_time;
                    pr.log_start_offset = log_start;
                    if let Some((partition, last)) = wait {
                        waits.push((
                            resp.responses.len(),
                            out.partition_responses.len(),
                            partition,
                            last,
                        ));
                    }
                }
                Err((code, message)) => {
                    pr.error_code = code.code();
                    pr.error_message = message.clone().map(sb);
                    first_error.get_or_insert_with(|| {
                        format!(
                            "produce to {name}-{} failed: {}",
                            pd.index,
                            message.unwrap_or_else(|| code.to_string())
                        )
                    });
                }
            }
            out.partition_responses.push(pr);
        }
        resp.responses.push(out);
    }
    // Partitions whose flush is due (`flush.messages`) count their records only once
    // synced; the others' high watermarks move now.
    let (due, rest): (Appended, Appended) =
        appended.into_iter().partition(|(p, _, _, _)| p.flush_due());
    for (p, _, _, _) in &rest {
        p.maybe_advance_high_watermark();
        p.wake();
    }
    // The fsyncs start now, whenever the answer is looked at.
    let flushes = start_flushes(&due);
    if acks == 0 {
        if let Some(e) = finish_flushes(flushes, &due, &mut resp, &mut waits).await {
            first_error.get_or_insert(e);
        }
        return match first_error {
            Some(e) => Reply::Close(e),
            None => Reply::None,
        };
    }
    if waits.is_empty() && due.is_empty() {
        return Reply::Respond(resp);
    }
    Reply::Wait(PendingAcks {
        resp,
        due,
        flushes,
        waits,
        deadline: tokio::time::Instant::now()
            + std::time::Duration::from_millis(req.timeout_ms.max(0) as u64),
    })
}

/// (topic index, partition index in it, partition, last offset appended): an acks=all
/// answer waits until the high watermark passes that offset.
type Wait = (
    usize,
    usize,
    std::sync::Arc<crate::partition::Partition>,
    i64,
);

/// An answer that waits: for the fsync of partitions whose flush is due, and under acks=all
/// for the in-sync replicas. The connection goes on with its next Produce requests
/// meanwhile, so their appends overlap this request's fsync, and the next fsync covers
/// all of them.
pub struct PendingAcks {
    resp: ProduceResponse,
    due: Appended,
    flushes: Vec<Flush>,
    waits: Vec<Wait>,
    deadline: tokio::time::Instant,
}

impl PendingAcks {
    /// The answer, once the due partitions are synced and (acks=all) every in-sync replica
    /// has the records (the high watermark passed them), with REQUEST_TIMED_OUT for those
    /// still missing at the request's timeout.
    pub async fn finish(mut self) -> ProduceResponse {
        let flushes = std::mem::take(&mut self.flushes);
        finish_flushes(flushes, &self.due, &mut self.resp, &mut self.waits).await;
        for (t, i, partition, last) in self.waits {
            let left = self
                .deadline
                .saturating_duration_since(tokio::time::Instant::now());
            if partition.wait_for_high_watermark(last, left).await {
                continue;
            }
            let code = if partition.is_leader() {
                ErrorCode::RequestTimedOut
            } else {
                ErrorCode::NotLeaderOrFollower
            };
            let pr = &mut self.resp.responses[t].partition_responses[i];
            pr.error_code = code.code();
            pr.error_message = Some(sb(format!(
                "the in-sync replicas did not acknowledge offset {last} in time"
            )));
        }
        self.resp
    }
}

/// Appended partitions, each with its topic's and its own index in the response and the
/// last offset appended.
type Appended = Vec<(
    std::sync::Arc<crate::partition::Partition>,
    usize,
    usize,
    i64,
)>;

/// Flushes running on a blocking thread, in turn, with where their partitions' answers go.
type Flush = (
    Vec<(usize, usize)>,
    tokio::task::JoinHandle<Vec<Result<(), StorageError>>>,
);

/// Syncs the partitions whose flush is due on blocking threads (up to 32, each taking
/// its share in turn), so that the fsyncs of several partitions overlap rather than
/// queue. Those of one partition take turns, each covering whatever was appended by then.
fn start_flushes(due: &Appended) -> Vec<Flush> {
    /// Blocking threads one request's flushes use, at most.
    const PARALLEL_FLUSHES: usize = 32;
    let threads = due.len().min(PARALLEL_FLUSHES);
    (0..threads)
        .map(|k| {
            let share: Vec<_> = due.iter().skip(k).step_by(threads).collect();
            let at = share.iter().map(|(_, t, i, _)| (*t, *i)).collect();
            let work: Vec<_> = share
                .iter()
                .map(|(p, _, _, last)| (p.clone(), *last))
                .collect();
            let task = tokio::task::spawn_blocking(move || {
                work.into_iter()
                    .map(|(p, last)| p.complete_append(last))
                    .collect()
            });
            (at, task)
        })
        .collect()
}

/// Waits for the flushes, then wakes the fetches parked on their partitions. A partition
/// whose flush failed gets the error in `resp` and is no longer waited for; the first
/// failure is returned.
async fn finish_flushes(
    flushes: Vec<Flush>,
    due: &Appended,
    resp: &mut ProduceResponse,
    waits: &mut Vec<Wait>,
) -> Option<String> {
    let mut first = None;
    let mut failed = Vec::new();
    for (at, task) in flushes {
        match task.await {
            Ok(results) => failed.extend(
                at.into_iter()
                    .zip(results)
                    .filter_map(|(at, r)| Some((at, r.err()?))),
            ),
            Err(e) => {
                let why = format!("flush task: {e}");
                failed.extend(
                    at.into_iter()
                        .map(|at| (at, StorageError::Io(std::io::Error::other(why.clone())))),
                );
            }
        }
    }
    for ((t, i), e) in failed {
        let (code, message) = storage_error(&e);
        first.get_or_insert_with(|| e.to_string());
        let pr = &mut resp.responses[t].partition_responses[i];
        pr.error_code = code.code();
        pr.error_message = message.map(sb);
        waits.retain(|w| (w.0, w.1) != (t, i));
    }
    for (p, _, _, _) in due {
        p.wake();
    }
    first
}

/// Base offset, log append time, log start offset, and for acks=all what to wait for.
type AppendResult = Result<
    (
        i64,
        i64,
        i64,
        Option<(std::sync::Arc<crate::partition::Partition>, i64)>,
    ),
    (ErrorCode, Option<String>),
>;

fn append(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: Option<&bytes::Bytes>,
    acks: i16,
    (now, check): (i64, TxnCheck),
    (appended, t, i): (&mut Appended, usize, usize),
) -> AppendResult {
    let partition = broker
        .leader_partition(topic, index)
        .map_err(|code| (code, None))?;
    if acks == -1 {
        let min_isr = broker.min_insync_replicas(topic);
        let isr = partition.replicas().isr.len() as i32;
        if isr < min_isr {
            return Err((
                ErrorCode::NotEnoughReplicas,
                Some(format!(
                    "the in-sync replicas ({isr}) are fewer than min.insync.replicas ({min_isr})"
                )),
            ));
        }
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err((
            ErrorCode::CorruptMessage,
            Some("produce request carries no records".into()),
        ));
    };
    // Since v3 a partition's data is exactly one record batch (Kafka's rule).
    if krust_storage::batch::batches(records).take(2).count() > 1 {
        return Err((
            ErrorCode::InvalidRecord,
            Some("Produce requests are only allowed to contain exactly one record batch per partition".into()),
        ));
    }
    // The checks that read records, only where the topic's settings ask for them.
    let (before_max, after_max, log_append, compact) = {
        let log = partition.read_log();
        let c = log.config();
        (
            c.message_timestamp_before_max_ms,
            c.message_timestamp_after_max_ms,
            c.message_timestamp_type_log_append,
            c.compact,
        )
    };
    if !log_append && before_max != i64::MAX {
        check_not_too_old(records, now, before_max, after_max)?;
    }
    if compact {
        check_keys_if_compacted(&partition, records)?;
    }
    match partition.append_unflushed(records, now, check) {
        Ok(a) => {
            // A retried batch already written is still synced before it is answered, in
            // case its first write has not been yet.
            appended.push((partition.clone(), t, i, a.last_offset));
            if !a.duplicate {
                let count = (a.last_offset - a.first_offset + 1).max(0) as u64;
                broker.metrics.record_produce(topic, records.len(), count);
            }
            let log_start = partition.log_start_offset();
            let wait = (acks == -1).then(|| (partition.clone(), a.last_offset));
            Ok((a.first_offset, a.log_append_time, log_start, wait))
        }
        Err(AppendError::Storage(e)) => Err(storage_error(&e)),
        Err(AppendError::Producer(e)) => Err(producer_error(&e)),
    }
}

type Checks =
    std::collections::HashMap<(String, i32), Result<TxnCheck, (ErrorCode, Option<String>)>>;

/// The partitions of a transactional producer's request whose batch would open its
/// transaction there, verified with the transaction coordinator (one request for all of
/// them); the others are to find their transaction still open when appended.
async fn verify_transactions(
    broker: &Broker,
    txn_id: &str,
    topics: &[kafka_protocol::messages::produce_request::TopicProduceData],
) -> Checks {
    let mut checks = Checks::new();
    let mut to_verify: Vec<(String, i32, u64)> = Vec::new();
    let mut producer = None;
    let mut mixed = false;
    for t in topics {
        let name = t.name.to_string();
        for pd in &t.partition_data {
            let Some(records) = pd.records.as_ref() else {
                continue;
            };
            let Ok((b, _)) = krust_storage::batch::RecordBatch::parse(records) else {
                continue;
            };
            if !b.is_transactional() || b.producer_id() < 0 {
                continue;
            }
            let Ok(partition) = broker.leader_partition(&name, pd.index) else {
                continue;
            };
            let this = (b.producer_id(), b.producer_epoch());
            mixed |= producer.is_some_and(|p| p != this);
            producer = Some(this);
            match partition.txn_verification(b.producer_id(), b.producer_epoch()) {
                None => {
                    checks.insert((name.clone(), pd.index), Ok(TxnCheck::Open));
                }
                Some(seen) => to_verify.push((name.clone(), pd.index, seen)),
            }
        }
    }
    if mixed {
        // One transactional producer per request, as Kafka requires.
        let refused = || {
            Err((
                ErrorCode::InvalidRecord,
                Some("transactional records of more than one producer in one request".into()),
            ))
        };
        for c in checks.values_mut() {
            *c = refused();
        }
        for (topic, index, _) in to_verify {
            checks.insert((topic, index), refused());
        }
        return checks;
    }
    let Some((producer_id, epoch)) = producer.filter(|_| !to_verify.is_empty()) else {
        return checks;
    };
    let parts: Vec<(String, i32)> = to_verify.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    let verdicts = broker
        .txn_verify_partitions(txn_id, producer_id, epoch, &parts)
        .await;
    for (topic, index, seen) in to_verify {
        let verdict = match verdicts.get(&(topic.clone(), index)) {
            Some(ErrorCode::None) => Ok(TxnCheck::Verified(seen)),
            Some(code) => Err((
                *code,
                Some(format!(
                    "the transaction of {txn_id} could not be verified to include {topic}-{index}: {code}"
                )),
            )),
            None => Err((ErrorCode::NotEnoughReplicas, None)),
        };
        checks.insert((topic, index), verdict);
    }
    checks
}

/// Kafka's error for a batch or marker its producer's state refuses.
pub fn producer_error(e: &ProducerError) -> (ErrorCode, Option<String>) {
    let code = match e {
        ProducerError::Sequence(SequenceError::InvalidProducerEpoch { .. }) => {
            ErrorCode::InvalidProducerEpoch
        }
        ProducerError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ErrorCode::OutOfOrderSequenceNumber
        }
        ProducerError::Txn(TxnError::CoordinatorFenced { .. }) => {
            ErrorCode::TransactionCoordinatorFenced
        }
        ProducerError::Txn(TxnError::InvalidTxnState { .. } | TxnError::NotVerified { .. }) => {
            ErrorCode::InvalidTxnState
        }
    };
    (code, Some(e.to_string()))
}

/// `message.timestamp.before.max.ms` (`before_max`), when the topic sets it under
/// CreateTime: no record may be older. Only this reads every record's timestamp (the log checks the future bound from
/// each batch's header), up to [`TIMESTAMP_CHECK_MAX_BYTES`] of records per batch; a batch
/// that cannot be read that far is refused as corrupt.
fn check_not_too_old(
    records: &bytes::Bytes,
    now: i64,
    before_max: i64,
    after_max: i64,
) -> Result<(), (ErrorCode, Option<String>)> {
    let earliest = now.saturating_sub(before_max);
    for b in krust_storage::batch::batches(records) {
        let Ok(b) = b else {
            return Ok(()); // the log refuses it with the precise reason
        };
        let base = b.base_timestamp();
        let old = krust_protocol::record_times::visit_record_times(
            b.records_bytes(),
            b.compression_code(),
            b.records_count(),
            TIMESTAMP_CHECK_MAX_BYTES,
            |_, delta| {
                let t = base.saturating_add(delta);
                // -1: no timestamp, which Kafka does not check either.
                if t != -1 && t < earliest {
                    std::ops::ControlFlow::Break(t)
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            },
        );
        match old {
            Ok(std::ops::ControlFlow::Continue(())) => {}
            Ok(std::ops::ControlFlow::Break(t)) => {
                return Err(storage_error(&StorageError::InvalidTimestamp {
                    timestamp: t,
                    earliest,
                    latest: now.saturating_add(after_max),
                }))
            }
            Err(e) => {
                return Err((
                    ErrorCode::CorruptMessage,
                    Some(format!("cannot read the batch's record timestamps: {e:?}")),
                ))
            }
        }
    }
    Ok(())
}

/// A compacted topic keeps the last record of each key, so every record needs one: as
/// Kafka, a batch with a record without a key is refused (INVALID_RECORD), and so is one
/// whose records' offset deltas are not 0, 1, 2... (the cleaner goes by each record's
/// offset).
fn check_keys_if_compacted(
    partition: &crate::partition::Partition,
    records: &bytes::Bytes,
) -> Result<(), (ErrorCode, Option<String>)> {
    for b in krust_storage::batch::batches(records) {
        let Ok(b) = b else {
            return Ok(()); // the log refuses it with the precise reason
        };
        match krust_protocol::record_keys::compacted_batch_problem(
            b.records_bytes(),
            b.compression_code(),
            b.records_count(),
            krust_protocol::record_keys::BATCH_DATA_MAX_BYTES,
        ) {
            Ok(None) => {}
            Ok(Some(problem)) => {
                return Err((
                    ErrorCode::InvalidRecord,
                    Some(format!(
                        "{problem} in topic partition {}-{}.",
                        partition.topic, partition.index
                    )),
                ))
            }
            Err(e) => {
                return Err((
                    ErrorCode::CorruptMessage,
                    Some(format!("cannot read the batch's records: {e:?}")),
                ))
            }
        }
    }
    Ok(())
}

/// Records read per batch for `message.timestamp.before.max.ms`, at most (1 GiB): a
/// thousand times `max.message.bytes`, beyond any real compression ratio.
const TIMESTAMP_CHECK_MAX_BYTES: u64 = 1 << 30;

/// The Kafka error code and message for a storage error.
pub(crate) fn storage_error(e: &StorageError) -> (ErrorCode, Option<String>) {
    let code = match e.kafka_error_code() {
        1 => ErrorCode::OffsetOutOfRange,
        2 => ErrorCode::CorruptMessage,
        6 => ErrorCode::NotLeaderOrFollower,
        10 => ErrorCode::MessageTooLarge,
        17 => ErrorCode::InvalidTopicException,
        18 => ErrorCode::RecordListTooLarge,
        32 => ErrorCode::InvalidTimestamp,
        56 => ErrorCode::KafkaStorageError,
        87 => ErrorCode::InvalidRecord,
        _ => ErrorCode::UnknownServerError,
    };
    if code == ErrorCode::KafkaStorageError || code == ErrorCode::UnknownServerError {
        tracing::error!(error = %e, "storage failure");
    }
    (code, Some(e.to_string()))
}
