//! Building record batches: the one place krust encodes records it writes itself
//! (metadata records, group records, the console producer's lines).
//!
//! Producers' batches are never re-encoded; this is for records krust creates.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

pub use kafka_protocol::records::Compression;

/// One record to write: key, value (None = null, e.g. a tombstone), headers, and its own
/// timestamp if it is not the batch's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp: Option<i64>,
}

impl NewRecord {
    /// A record with a value and no key.
    pub fn value(value: Bytes) -> NewRecord {
        NewRecord {
            value: Some(value),
            ..Default::default()
        }
    }

    /// A key and a value (None = tombstone).
    pub fn key_value(key: Bytes, value: Option<Bytes>) -> NewRecord {
        NewRecord {
            key: Some(key),
            value,
            ..Default::default()
        }
    }
}

/// Encodes `records` as one v2 batch (base offset 0: the log assigns offsets), without a
/// producer id, timestamped `timestamp_ms` (CreateTime) where a record has none of its own.
pub fn encode_batch(
    records: &[NewRecord],
    timestamp_ms: i64,
    compression: Compression,
) -> Result<Bytes, String> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch wherever offset - sequence changes; this keeps
            // one batch, and its base sequence -1 says "no producer".
            sequence: i as i32 - 1,
            timestamp: r.timestamp.unwrap_or(timestamp_ms),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_records_make_one_batch() {
        let recs: Vec<NewRecord> = (0..10)
            .map(|i| NewRecord::value(Bytes::from(format!("v{i}"))))
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Snappy,
            Compression::Zstd,
        ] {
            let b = encode_batch(&recs, 5, c).expect("encode");
            let length = i32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
            assert_eq!(length + 12, b.len(), "{c:?}: one batch");
            let mut bytes = b.clone();
            let set =
                kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).expect("decode");
            assert_eq!(set.records.len(), 10);
            assert_eq!(set.records[3].value.as_deref(), Some(&b"v3"[..]));
            assert_eq!(set.records[0].sequence, -1);
        }
    }
}
