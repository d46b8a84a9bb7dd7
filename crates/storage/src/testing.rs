//! Test helpers: build uncompressed v2 record batches and decode them back.
//!
//! Compiled for this crate's tests and, behind the cargo feature `testing`, for other crates'
//! tests. Not for production paths: the engine itself never decodes records.

use bytes::Bytes;

use crate::batch::{self, RecordBatch, HEADER_LEN};

/// One record of a test batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// Absolute offset (base offset + offset delta); ignored when building.
    pub offset: i64,
    /// Absolute timestamp.
    pub timestamp: i64,
    /// Key, `None` = null.
    pub key: Option<Vec<u8>>,
    /// Value, `None` = null.
    pub value: Option<Vec<u8>>,
    /// Headers: key and optional value.
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Builder of one uncompressed v2 record batch with a correct CRC.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: i16,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<TestRecord>,
    records_count_override: Option<i32>,
    last_offset_delta_override: Option<i32>,
}

impl BatchBuilder {
    /// A new empty batch with the given base offset, no producer id, leader epoch -1.
    pub fn new(base_offset: i64) -> Self {
        BatchBuilder {
            base_offset,
            partition_leader_epoch: -1,
            attributes: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: Vec::new(),
            records_count_override: None,
            last_offset_delta_override: None,
        }
    }

    /// Sets PartitionLeaderEpoch.
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Sets ProducerId, ProducerEpoch and BaseSequence.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the raw attributes (compression bits are only labels: records stay uncompressed).
    pub fn attributes(mut self, attributes: i16) -> Self {
        self.attributes = attributes;
        self
    }

    /// Overrides RecordsCount (to build invalid batches).
    pub fn records_count_override(mut self, count: i32) -> Self {
        self.records_count_override = Some(count);
        self
    }

    /// Overrides LastOffsetDelta (to build invalid batches or batches with offset gaps).
    pub fn last_offset_delta_override(mut self, delta: i32) -> Self {
        self.last_offset_delta_override = Some(delta);
        self
    }

    /// Adds a record.
    pub fn record(mut self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64) -> Self {
        self.records.push(TestRecord {
            offset: 0,
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
        });
        self
    }

    /// Adds a fully specified record (its `offset` is ignored).
    pub fn test_record(mut self, record: TestRecord) -> Self {
        self.records.push(record);
        self
    }

    /// Encodes the batch.
    pub fn build(self) -> Bytes {
        let base_ts = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .min()
            .unwrap_or(batch::NO_TIMESTAMP);
        let max_ts = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(batch::NO_TIMESTAMP);
        let mut body = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            let mut rec = Vec::new();
            rec.push(0u8); // record attributes
            put_varlong(&mut rec, r.timestamp - base_ts);
            put_varlong(&mut rec, i as i64);
            put_bytes(&mut rec, r.key.as_deref());
            put_bytes(&mut rec, r.value.as_deref());
            put_varlong(&mut rec, r.headers.len() as i64);
            for (k, v) in &r.headers {
                put_bytes(&mut rec, Some(k));
                put_bytes(&mut rec, v.as_deref());
            }
            put_varlong(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        let count = self.records.len() as i32;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&((HEADER_LEN - 12 + body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(batch::MAGIC_V2 as u8);
        out.extend_from_slice(&[0u8; 4]); // CRC placeholder
        out.extend_from_slice(&self.attributes.to_be_bytes());
        let lod = self
            .last_offset_delta_override
            .unwrap_or((count - 1).max(0));
        out.extend_from_slice(&lod.to_be_bytes());
        out.extend_from_slice(&base_ts.to_be_bytes());
        out.extend_from_slice(&max_ts.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.records_count_override.unwrap_or(count).to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[batch::ATTRIBUTES_OFFSET..]);
        out[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(out)
    }
}

/// A batch of `count` records with values `v0`, `v1`, ... and timestamps `timestamp + i`.
pub fn simple_batch(base_offset: i64, count: usize, timestamp: i64) -> Bytes {
    let mut b = BatchBuilder::new(base_offset);
    for i in 0..count {
        let v = format!("v{i}");
        b = b.record(None, Some(v.as_bytes()), timestamp + i as i64);
    }
    b.build()
}

/// A batch with one record whose value has `value_len` bytes.
pub fn sized_batch(base_offset: i64, value_len: usize, timestamp: i64) -> Bytes {
    let v = vec![b'x'; value_len];
    BatchBuilder::new(base_offset)
        .record(None, Some(&v), timestamp)
        .build()
}

/// Concatenates batches into one buffer.
pub fn concat(parts: &[Bytes]) -> Bytes {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
    }
    Bytes::from(out)
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl Cursor<'_> {
    fn varlong(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for shift in (0..70).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.buf.len() {
            return Err("truncated record".into());
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        let len = self.varlong()?;
        if len < 0 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|e| e.to_string())?;
        Ok(Some(self.take(n)?.to_vec()))
    }
}

/// Decodes the records of an uncompressed batch (tests only).
pub fn decode_records(batch: &RecordBatch<'_>) -> Result<Vec<TestRecord>, String> {
    if batch.compression_code() != 0 {
        return Err("compressed batch".into());
    }
    let mut c = Cursor {
        buf: batch.records_bytes(),
    };
    let mut out = Vec::new();
    for _ in 0..batch.records_count().max(0) {
        let len = usize::try_from(c.varlong()?).map_err(|e| e.to_string())?;
        let mut r = Cursor { buf: c.take(len)? };
        r.take(1)?;
        let ts_delta = r.varlong()?;
        let off_delta = r.varlong()?;
        let key = r.bytes()?;
        let value = r.bytes()?;
        let nh = r.varlong()?;
        let mut headers = Vec::new();
        for _ in 0..nh.max(0) {
            let k = r.bytes()?.unwrap_or_default();
            headers.push((k, r.bytes()?));
        }
        let timestamp = if batch.timestamp_type() == batch::TimestampType::LogAppendTime {
            batch.max_timestamp()
        } else {
            batch.base_timestamp() + ts_delta
        };
        out.push(TestRecord {
            offset: batch.base_offset() + off_delta,
            timestamp,
            key,
            value,
            headers,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let b = BatchBuilder::new(5)
            .record(Some(b"a"), None, 10)
            .test_record(TestRecord {
                offset: 0,
                timestamp: 300,
                key: None,
                value: Some(vec![1; 200]),
                headers: vec![(b"h".to_vec(), Some(b"x".to_vec()))],
            })
            .build();
        let (batch, _) = RecordBatch::parse(&b).expect("parse");
        let recs = decode_records(&batch).expect("decode");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].offset, 5);
        assert_eq!(recs[0].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(recs[1].offset, 6);
        assert_eq!(recs[1].timestamp, 300);
        assert_eq!(recs[1].headers.len(), 1);
    }
}
