//! ListOffsets (2): earliest (-2), latest (-1), max timestamp (-3), earliest local (-4),
//! or the first offset at or after a timestamp, found through the time index.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use krust_protocol::ErrorCode;

use std::borrow::Cow;
use std::io::Read;

use bytes::Bytes;
use kafka_protocol::compression::Decompressor;
use krust_storage::batch::{Compression, RecordBatch, TimestampType};

use crate::broker::Broker;

/// The offset and timestamp of the first record at or after `ts` in the batch starting at
/// `base` (the time index locates batches; Kafka answers with the record). Reads that one
/// batch's record headers, decompressing it if needed, with nothing sized from the batch's
/// own counts; `None` if it cannot be read or expands beyond [`SEARCH_MAX_BYTES`], and the
/// batch's base offset is answered instead.
fn exact_record(log: &krust_storage::Log, base: i64, ts: i64) -> Option<(i64, i64)> {
    let read = log.read(base, 1, log.log_end_offset(), true).ok()?;
    let (batch, _) = RecordBatch::parse(&read.records).ok()?;
    let records = match batch.compression()? {
        Compression::None => Cow::Borrowed(batch.records_bytes()),
        c => Cow::Owned(decompress(c, batch.records_bytes())?),
    };
    let log_append_time = batch.timestamp_type() == TimestampType::LogAppendTime;
    let mut rest = &records[..];
    for _ in 0..batch.records_count().max(0) {
        let len = usize::try_from(varint(&mut rest)?).ok()?;
        let (mut record, after) = (rest.get(..len)?, rest.get(len..)?);
        rest = after;
        record = record.get(1..)?; // attributes
        let timestamp_delta = varint(&mut record)?;
        let offset_delta = varint(&mut record)?;
        let offset = batch.base_offset().checked_add(offset_delta)?;
        let timestamp = if log_append_time {
            batch.max_timestamp()
        } else {
            batch.base_timestamp().checked_add(timestamp_delta)?
        };
        if offset >= base && timestamp >= ts {
            return Some((offset, timestamp));
        }
    }
    None
}

/// Decompressed records larger than this (64 MiB) are not searched. A stored batch is at
/// most `message.max.bytes` compressed, but crafted gzip or zstd data expands a
/// thousand-fold and more.
const SEARCH_MAX_BYTES: u64 = 64 << 20;

/// A batch's records decompressed, `None` if they are malformed or beyond
/// [`SEARCH_MAX_BYTES`].
fn decompress(codec: Compression, data: &[u8]) -> Option<Vec<u8>> {
    let reader: Box<dyn Read + '_> = match codec {
        Compression::None => return Some(data.to_vec()),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
        Compression::Lz4 => Box::new(lz4::Decoder::new(data).ok()?),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(data).ok()?),
        // Snappy's own format bounds its expansion (a few tens of times).
        Compression::Snappy => {
            let mut input = Bytes::copy_from_slice(data);
            let out = <kafka_protocol::compression::Snappy as Decompressor<Bytes>>::decompress(
                &mut input,
                |b| Ok(b.to_vec()),
            )
            .ok()?;
            return (out.len() as u64 <= SEARCH_MAX_BYTES).then_some(out);
        }
    };
    let mut out = Vec::new();
    reader
        .take(SEARCH_MAX_BYTES + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= SEARCH_MAX_BYTES).then_some(out)
}

/// A zig-zag varint (record fields), `None` if truncated or longer than 64 bits.
fn varint(b: &mut &[u8]) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub async fn handle(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
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
                        let log = part.read_log();
                        let found = match p.timestamp {
                            LATEST => Ok(Some((part.high_watermark(), -1))),
                            EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                            MAX_TIMESTAMP => log
                                .max_timestamp_and_offset()
                                .map(|o| o.map(|(ts, off)| (off, ts))),
                            ts if ts >= 0 => log.fetch_offset_by_timestamp(ts).map(|found| {
                                found.map(|(base, max_ts)| {
                                    exact_record(&log, base, ts).unwrap_or((base, max_ts))
                                })
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
