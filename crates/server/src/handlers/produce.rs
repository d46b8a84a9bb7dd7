//! Produce (0): validate and append each partition's batches, as leader.
//!
//! The record bytes go to the log as they arrived; only the batch headers are stamped
//! (base offset, leader epoch, and the timestamp under LogAppendTime). acks=0 gets no
//! response, and any error on it closes the connection so the client notices.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use krust_protocol::ErrorCode;
use krust_storage::{SequenceError, StorageError};

use super::sb;
use crate::broker::{now_ms, Broker};
use crate::partition::AppendError;

/// What the connection does with the result.
pub enum Reply {
    Respond(ProduceResponse),
    /// acks=0 and everything succeeded.
    None,
    /// acks=0 and something failed: close the connection (Kafka's behaviour).
    Close(String),
}

pub async fn handle(broker: &Broker, req: ProduceRequest, _version: i16) -> Reply {
    let acks = req.acks;
    let now = now_ms();
    let mut resp = ProduceResponse::default();
    let mut first_error: Option<String> = None;
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
            } else if req.transactional_id.is_some() {
                Err((
                    ErrorCode::InvalidRequest,
                    Some("transactions are not supported by this broker".to_string()),
                ))
            } else {
                append(broker, &name, pd.index, pd.records.as_ref(), now)
            };
            match result {
                Ok((base, append_time, log_start)) => {
                    pr.base_offset = base;
                    pr.log_append_time_ms = append_time;
                    pr.log_start_offset = log_start;
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
    if acks == 0 {
        return match first_error {
            Some(e) => Reply::Close(e),
            None => Reply::None,
        };
    }
    Reply::Respond(resp)
}

type AppendResult = Result<(i64, i64, i64), (ErrorCode, Option<String>)>;

fn append(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: Option<&bytes::Bytes>,
    now: i64,
) -> AppendResult {
    let Some(partition) = broker.partitions.get(topic, index) else {
        return Err((ErrorCode::UnknownTopicOrPartition, None));
    };
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
    match partition.append(records, now) {
        Ok(a) => {
            if !a.duplicate {
                let count = (a.last_offset - a.first_offset + 1).max(0) as u64;
                broker.metrics.record_produce(topic, records.len(), count);
            }
            Ok((
                a.first_offset,
                a.log_append_time,
                partition.log_start_offset(),
            ))
        }
        Err(AppendError::Storage(e)) => Err(storage_error(&e)),
        Err(AppendError::Sequence(e)) => {
            let code = match e {
                SequenceError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
                SequenceError::OutOfOrder { .. } => ErrorCode::OutOfOrderSequenceNumber,
            };
            Err((code, Some(e.to_string())))
        }
    }
}

/// The Kafka error code and message for a storage error.
pub(crate) fn storage_error(e: &StorageError) -> (ErrorCode, Option<String>) {
    let code = match e.kafka_error_code() {
        1 => ErrorCode::OffsetOutOfRange,
        2 => ErrorCode::CorruptMessage,
        6 => ErrorCode::NotLeaderOrFollower,
        10 => ErrorCode::MessageTooLarge,
        17 => ErrorCode::InvalidTopicException,
        18 => ErrorCode::RecordListTooLarge,
        56 => ErrorCode::KafkaStorageError,
        87 => ErrorCode::InvalidRecord,
        _ => ErrorCode::UnknownServerError,
    };
    if code == ErrorCode::KafkaStorageError || code == ErrorCode::UnknownServerError {
        tracing::error!(error = %e, "storage failure");
    }
    (code, Some(e.to_string()))
}
