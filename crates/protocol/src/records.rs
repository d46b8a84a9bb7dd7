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
    encode_batch_as(records, timestamp_ms, compression, None)
}

/// Like [`encode_batch`], as a transactional batch of producer `producer_id`/`epoch` without
/// sequences (a transaction's offset commits, written by the group coordinator).
pub fn encode_txn_batch(
    records: &[NewRecord],
    timestamp_ms: i64,
    producer_id: i64,
    epoch: i16,
) -> Result<Bytes, String> {
    encode_batch_as(
        records,
        timestamp_ms,
        Compression::None,
        Some((producer_id, epoch)),
    )
}

/// A transaction marker of producer `producer_id`/`epoch`: a transactional control batch
/// with one record, key (version 0, type 1 COMMIT or 0 ABORT), value (version 0,
/// `coordinator_epoch`).
pub fn encode_txn_marker(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Result<Bytes, String> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let rec = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: timestamp_ms,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        std::iter::once(&rec),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

fn encode_batch_as(
    records: &[NewRecord],
    timestamp_ms: i64,
    compression: Compression,
    producer: Option<(i64, i16)>,
) -> Result<Bytes, String> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.0),
            producer_epoch: producer.map_or(-1, |p| p.1),
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

    #[test]
    fn transactional_batches_and_markers() {
        let recs = vec![NewRecord::key_value(
            Bytes::from_static(b"k"),
            Some(Bytes::from_static(b"v")),
        )];
        let mut b = encode_txn_batch(&recs, 5, 42, 3).expect("encode");
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).expect("decode");
        let r = &set.records[0];
        assert!(r.transactional && !r.control);
        assert_eq!((r.producer_id, r.producer_epoch, r.sequence), (42, 3, -1));
        let m = encode_txn_marker(42, 4, true, 7, 9).expect("marker");
        assert_eq!(i16::from_be_bytes([m[21], m[22]]) & 0x30, 0x30);
        let mut bytes = m.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).expect("decode");
        let r = &set.records[0];
        assert!(r.control && r.transactional);
        assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 7][..]));
    }
}
