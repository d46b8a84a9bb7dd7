//! Metadata records and their encoding.
//!
//! A record value is framed as Kafka frames metadata records: `uvarint frame_version (1)`,
//! `uvarint api_key`, `uvarint version`, then the body in Kafka's flexible encoding (compact
//! strings and arrays, a trailing tagged-field section). The api keys and field order follow
//! Kafka's metadata record schemas. Records travel in ordinary record batches (key null)
//! in the `__cluster_metadata` log.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use krust_protocol::records::{Compression, NewRecord};
use uuid::Uuid;

use crate::codec::*;

/// A record that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
    #[error("record is truncated")]
    Truncated,
    #[error("record is malformed: {0}")]
    Malformed(&'static str),
    #[error("unsupported metadata record: api key {api_key} version {version}")]
    Unsupported { api_key: u64, version: u64 },
    #[error("record batch could not be decoded: {0}")]
    Batch(String),
}

const FRAME_VERSION: u64 = 1;

/// One partition's full state, as written when a partition is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// Every kind of metadata record krust writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A finalized feature level (api key 12), e.g. `metadata.version`.
    FeatureLevel { name: String, level: i16 },
    /// A topic came into being (api key 2).
    Topic { name: String, topic_id: Uuid },
    /// A partition of a topic, with its replicas and leadership (api key 3).
    Partition(PartitionRecord),
    /// A config key set (value `Some`) or removed (`None`) on a resource (api key 4).
    Config {
        resource_type: i8,
        resource_name: String,
        name: String,
        value: Option<String>,
    },
    /// A topic and all its partitions are gone (api key 9).
    RemoveTopic { topic_id: Uuid },
    /// A block of producer ids handed out (api key 15); `next_producer_id` is the first id
    /// not yet allocated.
    ProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        next_producer_id: i64,
    },
    /// Nothing; written to show the log is alive (api key 20).
    NoOp,
}

impl MetadataRecord {
    /// Kafka's api key for this record type.
    pub fn api_key(&self) -> u64 {
        match self {
            MetadataRecord::Topic { .. } => 2,
            MetadataRecord::Partition(_) => 3,
            MetadataRecord::Config { .. } => 4,
            MetadataRecord::RemoveTopic { .. } => 9,
            MetadataRecord::FeatureLevel { .. } => 12,
            MetadataRecord::ProducerIds { .. } => 15,
            MetadataRecord::NoOp => 20,
        }
    }

    /// Encodes the record value (frame header and body).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        put_uvarint(&mut b, FRAME_VERSION);
        put_uvarint(&mut b, self.api_key());
        put_uvarint(&mut b, 0);
        match self {
            MetadataRecord::FeatureLevel { name, level } => {
                put_compact_str(&mut b, Some(name));
                b.put_i16(*level);
            }
            MetadataRecord::Topic { name, topic_id } => {
                put_compact_str(&mut b, Some(name));
                put_uuid(&mut b, topic_id);
            }
            MetadataRecord::Partition(p) => {
                b.put_i32(p.partition_id);
                put_uuid(&mut b, &p.topic_id);
                put_compact_i32s(&mut b, Some(&p.replicas));
                put_compact_i32s(&mut b, Some(&p.isr));
                put_compact_i32s(&mut b, Some(&p.removing_replicas));
                put_compact_i32s(&mut b, Some(&p.adding_replicas));
                b.put_i32(p.leader);
                b.put_i32(p.leader_epoch);
                b.put_i32(p.partition_epoch);
            }
            MetadataRecord::Config {
                resource_type,
                resource_name,
                name,
                value,
            } => {
                b.put_i8(*resource_type);
                put_compact_str(&mut b, Some(resource_name));
                put_compact_str(&mut b, Some(name));
                put_compact_str(&mut b, value.as_deref());
            }
            MetadataRecord::RemoveTopic { topic_id } => put_uuid(&mut b, topic_id),
            MetadataRecord::ProducerIds {
                broker_id,
                broker_epoch,
                next_producer_id,
            } => {
                b.put_i32(*broker_id);
                b.put_i64(*broker_epoch);
                b.put_i64(*next_producer_id);
            }
            MetadataRecord::NoOp => {}
        }
        put_no_tags(&mut b);
        b.freeze()
    }

    /// Decodes a record value written by [`MetadataRecord::encode`].
    pub fn decode(mut buf: &[u8]) -> Result<MetadataRecord, RecordError> {
        let b = &mut buf;
        let frame = get_uvarint(b)?;
        if frame != FRAME_VERSION {
            return Err(RecordError::Malformed("unknown frame version"));
        }
        let api_key = get_uvarint(b)?;
        let version = get_uvarint(b)?;
        if version != 0 {
            return Err(RecordError::Unsupported { api_key, version });
        }
        let rec = match api_key {
            2 => MetadataRecord::Topic {
                name: get_required_str(b)?,
                topic_id: get_uuid(b)?,
            },
            3 => MetadataRecord::Partition(PartitionRecord {
                partition_id: get_i32(b)?,
                topic_id: get_uuid(b)?,
                replicas: get_compact_i32s(b)?.unwrap_or_default(),
                isr: get_compact_i32s(b)?.unwrap_or_default(),
                removing_replicas: get_compact_i32s(b)?.unwrap_or_default(),
                adding_replicas: get_compact_i32s(b)?.unwrap_or_default(),
                leader: get_i32(b)?,
                leader_epoch: get_i32(b)?,
                partition_epoch: get_i32(b)?,
            }),
            4 => MetadataRecord::Config {
                resource_type: get_i8(b)?,
                resource_name: get_required_str(b)?,
                name: get_required_str(b)?,
                value: get_compact_str(b)?,
            },
            9 => MetadataRecord::RemoveTopic {
                topic_id: get_uuid(b)?,
            },
            12 => MetadataRecord::FeatureLevel {
                name: get_required_str(b)?,
                level: get_i16(b)?,
            },
            15 => MetadataRecord::ProducerIds {
                broker_id: get_i32(b)?,
                broker_epoch: get_i64(b)?,
                next_producer_id: get_i64(b)?,
            },
            20 => MetadataRecord::NoOp,
            _ => return Err(RecordError::Unsupported { api_key, version }),
        };
        skip_tags(b)?;
        if b.has_remaining() {
            return Err(RecordError::Malformed("trailing bytes after record"));
        }
        Ok(rec)
    }
}

/// Builds one uncompressed record batch (base offset 0; the log assigns offsets) holding
/// `records` in order.
pub fn encode_batch(records: &[MetadataRecord], now_ms: i64) -> Result<Bytes, RecordError> {
    let recs: Vec<NewRecord> = records
        .iter()
        .map(|r| NewRecord::value(r.encode()))
        .collect();
    krust_protocol::records::encode_batch(&recs, now_ms, Compression::None)
        .map_err(RecordError::Batch)
}

/// Decodes every metadata record in a buffer of whole batches, with its offset.
/// Control batches are skipped.
pub fn decode_batches(bytes: Bytes) -> Result<Vec<(i64, MetadataRecord)>, RecordError> {
    let mut buf = bytes;
    let mut out = Vec::new();
    while buf.has_remaining() {
        let set =
            RecordBatchDecoder::decode(&mut buf).map_err(|e| RecordError::Batch(e.to_string()))?;
        for r in set.records {
            if r.control {
                continue;
            }
            let value = r
                .value
                .ok_or(RecordError::Malformed("metadata record without value"))?;
            out.push((r.offset, MetadataRecord::decode(&value)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<MetadataRecord> {
        let id = Uuid::from_u128(0x1234);
        vec![
            MetadataRecord::FeatureLevel {
                name: "metadata.version".into(),
                level: 27,
            },
            MetadataRecord::Topic {
                name: "orders".into(),
                topic_id: id,
            },
            MetadataRecord::Partition(PartitionRecord {
                partition_id: 2,
                topic_id: id,
                replicas: vec![1, 2],
                isr: vec![1],
                removing_replicas: vec![],
                adding_replicas: vec![],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            }),
            MetadataRecord::Config {
                resource_type: 2,
                resource_name: "orders".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::Config {
                resource_type: 2,
                resource_name: "orders".into(),
                name: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::RemoveTopic { topic_id: id },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                broker_epoch: 5,
                next_producer_id: 2000,
            },
            MetadataRecord::NoOp,
        ]
    }

    #[test]
    fn every_record_round_trips() {
        for r in all() {
            assert_eq!(MetadataRecord::decode(&r.encode()).as_ref(), Ok(&r));
        }
    }

    #[test]
    fn truncated_records_are_errors() {
        for r in all() {
            let e = r.encode();
            for cut in 0..e.len() {
                assert!(
                    MetadataRecord::decode(&e[..cut]).is_err(),
                    "{r:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn batches_round_trip() {
        let recs = all();
        let batch = encode_batch(&recs, 42).expect("batch");
        // One batch: its Length field covers the whole buffer.
        let length = i32::from_be_bytes([batch[8], batch[9], batch[10], batch[11]]) as usize;
        assert_eq!(length + 12, batch.len());
        let back = decode_batches(batch).expect("decode");
        assert_eq!(back.len(), recs.len());
        for (i, (off, r)) in back.iter().enumerate() {
            assert_eq!(*off, i as i64);
            assert_eq!(r, &recs[i]);
        }
    }
}
