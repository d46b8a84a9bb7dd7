//! ListOffsets (2): earliest (-2), latest (-1), max timestamp (-3), earliest local (-4),
//! or the first offset at or after a timestamp, found through the time index. Latest is the
//! high watermark, or the last stable offset for `read_committed` (isolation level 1).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use krust_protocol::ErrorCode;

use std::ops::ControlFlow;

use krust_protocol::record_times::visit_record_times;
use krust_storage::batch::{RecordBatch, TimestampType};

use crate::broker::Broker;

/// The offset and timestamp of the first record at or after `ts` in the batch starting at
/// `base` (the time index locates batches; Kafka answers with the record). Reads that one
/// batch's record headers, decompressing it if needed, with nothing sized from the batch's
/// own counts; `None` if it cannot be read or holds more than [`SEARCH_MAX_BYTES`] of
/// records, and the batch's base offset is answered instead.
fn exact_record(log: &krust_storage::Log, base: i64, ts: i64) -> Option<(i64, i64)> {
    let read = log.read(base, 1, log.log_end_offset(), true).ok()?;
    let (batch, _) = RecordBatch::parse(&read.records).ok()?;
    let log_append_time = batch.timestamp_type() == TimestampType::LogAppendTime;
    let found = visit_record_times(
        batch.records_bytes(),
        batch.compression_code(),
        batch.records_count(),
        SEARCH_MAX_BYTES,
        |offset_delta, timestamp_delta| {
            let offset = batch.base_offset().saturating_add(offset_delta);
            let timestamp = if log_append_time {
                batch.max_timestamp()
            } else {
                batch.base_timestamp().saturating_add(timestamp_delta)
            };
            if offset >= base && timestamp >= ts {
                ControlFlow::Break((offset, timestamp))
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    match found {
        Ok(ControlFlow::Break(hit)) => Some(hit),
        _ => None,
    }
}

/// Records of one batch beyond this many bytes (64 MiB) are not searched. A stored batch
/// is at most `message.max.bytes` compressed, but crafted gzip or zstd data expands a
/// thousand-fold and more.
const SEARCH_MAX_BYTES: u64 = 64 << 20;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub async fn handle(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    let read_committed = version >= 2 && req.isolation_level == 1;
    for t in req.topics {
        let name = t.name.to_string();
        let mut out = ListOffsetsTopicResponse::default().with_name(t.name.clone());
        for p in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            match broker.leader_partition(&name, p.partition_index) {
                Err(code) => r.error_code = code.code(),
                Ok(part) => match part.check_leader_epoch(p.current_leader_epoch) {
                    Err(code) => r.error_code = code.code(),
                    Ok(epoch) => {
                        // read_committed (1) reads up to the last stable offset, others to
                        // the high watermark; a record found by time must lie below it.
                        // (Read before the log's lock: the producer state is locked first.)
                        let fetchable = if read_committed {
                            part.last_stable_offset()
                        } else {
                            part.high_watermark()
                        };
                        let log = part.read_log();
                        let found = match p.timestamp {
                            LATEST => Ok(Some((fetchable, -1))),
                            EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                            MAX_TIMESTAMP => log
                                .max_timestamp_and_offset()
                                .map(|o| o.map(|(ts, off)| (off, ts))),
                            ts if ts >= 0 => log.fetch_offset_by_timestamp(ts).map(|found| {
                                found
                                    .map(|(base, max_ts)| {
                                        exact_record(&log, base, ts).unwrap_or((base, max_ts))
                                    })
                                    .filter(|&(offset, _)| offset < fetchable)
                            }),
                            _ => {
                                r.error_code = ErrorCode::InvalidRequest.code();
                                Ok(None)
                            }
                        };
                        match found {
                            Ok(Some((offset, ts))) => {
                                r.offset = offset;
                                r.timestamp = ts;
                                if version >= 4 {
                                    r.leader_epoch = epoch;
                                }
                            }
                            Ok(None) => {}
                            Err(e) => r.error_code = super::produce::storage_error(&e).0.code(),
                        }
                    }
                },
            }
            out.partitions.push(r);
        }
        resp.topics.push(out);
    }
    resp
}
