//! The keys of the records inside a v2 record batch, and batches rebuilt from some of their
//! records: what log compaction and the compacted topics' produce check need.
//!
//! A record's bytes are never re-encoded: a rebuilt batch carries the kept records' bytes as
//! they were (their offset and timestamp deltas stay relative to the batch's base offset and
//! base timestamp, which stay too), compressed again with the batch's codec when it had one.
//! Like Kafka's cleaner, a rebuilt batch keeps its last offset, producer id, epoch and base
//! sequence, so offsets and idempotent producers' sequences read from it stay what they were.

use std::borrow::Cow;
use std::io::Read;

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use crate::record_times::RecordsError;

use crate::batch_layout::{
    ATTRIBUTES_AT, BASE_TIMESTAMP_AT, CODEC_MASK, COUNT_AT, CRC_AT, DELETE_HORIZON_BIT, HEADER_LEN,
    LAST_OFFSET_DELTA_AT, LENGTH_AT, LOG_APPEND_TIME_BIT, MAX_TIMESTAMP_AT,
};

/// One record of a batch, borrowed from its (decompressed) record data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Offset delta from the batch's base offset.
    pub offset_delta: i64,
    /// Timestamp delta from the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Whether the value is not null (a null value is a tombstone).
    pub has_value: bool,
    /// The whole record as encoded, its length prefix included.
    pub raw: &'a [u8],
}

/// A batch's record data, decompressed if the batch is compressed (`codec`, the attribute
/// bits 0-2): at most `max_bytes`, or [`RecordsError::TooLarge`].
pub fn record_data(
    records: &[u8],
    codec: u8,
    max_bytes: u64,
) -> Result<Cow<'_, [u8]>, RecordsError> {
    let bounded = |mut r: Box<dyn Read + '_>| -> Result<Cow<'_, [u8]>, RecordsError> {
        let mut out = Vec::new();
        let n = (&mut r)
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|_| RecordsError::Malformed)?;
        if n as u64 > max_bytes {
            return Err(RecordsError::TooLarge);
        }
        Ok(Cow::Owned(out))
    };
    match codec {
        0 if records.len() as u64 > max_bytes => Err(RecordsError::TooLarge),
        0 => Ok(Cow::Borrowed(records)),
        1 => bounded(Box::new(flate2::read::MultiGzDecoder::new(records))),
        2 => Ok(Cow::Owned(crate::record_times::snappy_bounded(
            records, max_bytes,
        )?)),
        3 => bounded(Box::new(
            lz4::Decoder::new(records).map_err(|_| RecordsError::Malformed)?,
        )),
        4 => bounded(Box::new(
            zstd::stream::read::Decoder::new(records).map_err(|_| RecordsError::Malformed)?,
        )),
        c => Err(RecordsError::UnknownCodec(c)),
    }
}

/// A zig-zag varint of at most `max_bits` bits at `*at` of `data`.
fn varint(data: &[u8], at: &mut usize, max_bits: u32) -> Result<i64, RecordsError> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *data.get(*at).ok_or(RecordsError::Malformed)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
        shift += 7;
        if shift >= max_bits {
            return Err(RecordsError::Malformed);
        }
    }
}

/// A length-prefixed field (`-1`: null) at `*at` of `data`, within `end`.
fn field<'a>(data: &'a [u8], at: &mut usize, end: usize) -> Result<Option<&'a [u8]>, RecordsError> {
    let len = varint(data, at, 35)?;
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| RecordsError::Malformed)?;
    let to = at
        .checked_add(len)
        .filter(|&t| t <= end)
        .ok_or(RecordsError::Malformed)?;
    let f = &data[*at..to];
    *at = to;
    Ok(Some(f))
}

/// The `count` records of `data` (uncompressed record data, see [`record_data`]), in order.
/// Everything of each record up to its value is read and checked; its headers are not.
pub fn parse_records(data: &[u8], count: i32) -> Result<Vec<RecordRef<'_>>, RecordsError> {
    // Every record takes at least 7 bytes: a count beyond that is a lie, not an allocation.
    let count = usize::try_from(count).map_err(|_| RecordsError::Malformed)?;
    if count > data.len() / 7 + 1 {
        return Err(RecordsError::Malformed);
    }
    let mut out = Vec::with_capacity(count);
    let mut at = 0usize;
    for _ in 0..count {
        let start = at;
        let len = varint(data, &mut at, 35)?;
        let len = usize::try_from(len).map_err(|_| RecordsError::Malformed)?;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or(RecordsError::Malformed)?;
        at += 1; // attributes
        let timestamp_delta = varint(data, &mut at, 70)?;
        let offset_delta = varint(data, &mut at, 35)?;
        let key = field(data, &mut at, end)?;
        let value = field(data, &mut at, end)?;
        if at > end {
            return Err(RecordsError::Malformed);
        }
        out.push(RecordRef {
            offset_delta,
            timestamp_delta,
            key,
            has_value: value.is_some(),
            raw: &data[start..end],
        });
        at = end;
    }
    if at != data.len() {
        return Err(RecordsError::Malformed);
    }
    Ok(out)
}

/// Appends `v` as a zig-zag varint.
fn put_varlong(v: i64, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// A record's bytes (`raw`, as [`RecordRef::raw`]) with its timestamp delta taken from
/// `old_base` to `new_base`, the record's timestamp unchanged; the rest is copied.
fn rebase_record(raw: &[u8], old_base: i64, new_base: i64) -> Result<Vec<u8>, RecordsError> {
    let mut at = 0;
    varint(raw, &mut at, 35)?; // the length
    let attributes = *raw.get(at).ok_or(RecordsError::Malformed)?;
    at += 1;
    let delta = varint(raw, &mut at, 70)?;
    let timestamp = old_base.wrapping_add(delta);
    let mut body = vec![attributes];
    put_varlong(timestamp.wrapping_sub(new_base), &mut body);
    body.extend_from_slice(raw.get(at..).ok_or(RecordsError::Malformed)?);
    let mut out = Vec::with_capacity(body.len() + 5);
    put_varlong(
        i64::try_from(body.len()).map_err(|_| RecordsError::TooLarge)?,
        &mut out,
    );
    out.extend_from_slice(&body);
    Ok(out)
}

/// The batch `batch` (whole, header included, as stored) rebuilt with only the records
/// `kept` (some of its own, in order): same base offset, last offset delta, producer fields
/// and base timestamp; RecordsCount, MaxTimestamp (unless LogAppendTime), Length and CRC
/// recomputed; compressed with the batch's codec again. With no record kept, an empty batch
/// (uncompressed), as Kafka's cleaner keeps for an idempotent producer's last batch.
///
/// With `delete_horizon`, the batch is marked with it (KIP-534): attribute bit 6 set and
/// BaseTimestamp holding the horizon, each record's timestamp delta moved so that its
/// timestamp (BaseTimestamp + delta) stays what it was.
pub fn rebuild_batch(
    batch: &[u8],
    kept: &[RecordRef<'_>],
    delete_horizon: Option<i64>,
) -> Result<Vec<u8>, RecordsError> {
    let header: &[u8; HEADER_LEN] = batch
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(RecordsError::Malformed)?;
    let mut out = header.to_vec();
    let attributes_low = header[ATTRIBUTES_AT + 1];
    let codec = if kept.is_empty() {
        0
    } else {
        attributes_low & CODEC_MASK
    };
    out[ATTRIBUTES_AT + 1] = (attributes_low & !CODEC_MASK) | codec;
    let base_ts = i64::from_be_bytes(
        header[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8]
            .try_into()
            .map_err(|_| RecordsError::Malformed)?,
    );
    let rebased: Vec<Vec<u8>> = match delete_horizon {
        Some(h) if !kept.is_empty() => {
            out[ATTRIBUTES_AT + 1] |= DELETE_HORIZON_BIT;
            out[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&h.to_be_bytes());
            kept.iter()
                .map(|r| rebase_record(r.raw, base_ts, h))
                .collect::<Result<_, _>>()?
        }
        _ => Vec::new(),
    };
    let raw_len: usize = kept.iter().map(|r| r.raw.len()).sum();
    let mut plain = BytesMut::with_capacity(raw_len);
    if rebased.is_empty() {
        for r in kept {
            plain.extend_from_slice(r.raw);
        }
    } else {
        for r in &rebased {
            plain.extend_from_slice(r);
        }
    }
    let put = |buf: &mut BytesMut| -> anyhow::Result<()> {
        buf.extend_from_slice(&plain);
        Ok(())
    };
    let mut packed = BytesMut::new();
    let done = match codec {
        0 => {
            packed = plain.clone();
            Ok(())
        }
        1 => <Gzip as Compressor<BytesMut>>::compress(&mut packed, put),
        2 => <Snappy as Compressor<BytesMut>>::compress(&mut packed, put),
        3 => <Lz4 as Compressor<BytesMut>>::compress(&mut packed, put),
        4 => <Zstd as Compressor<BytesMut>>::compress(&mut packed, put),
        c => return Err(RecordsError::UnknownCodec(c)),
    };
    done.map_err(|_| RecordsError::Malformed)?;
    out.extend_from_slice(&packed);
    let count = i32::try_from(kept.len()).map_err(|_| RecordsError::TooLarge)?;
    out[COUNT_AT..COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    if attributes_low & LOG_APPEND_TIME_BIT == 0 {
        let max_ts = kept
            .iter()
            .map(|r| base_ts.saturating_add(r.timestamp_delta))
            .max()
            .unwrap_or_else(|| {
                i64::from_be_bytes(
                    header[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
                        .try_into()
                        .unwrap_or([0xff; 8]),
                )
            });
        out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_ts.to_be_bytes());
    }
    let length = i32::try_from(out.len() - 12).map_err(|_| RecordsError::TooLarge)?;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// What a compacted topic refuses in a producer's batch whose record data is `records`
/// (after the 61-byte header; `codec` and `count` from its header): a record without a key,
/// or records whose offset deltas are not 0, 1, 2... (the cleaner keeps a key's record by
/// its offset). `None` when neither. Reads at most `max_bytes` of record data.
pub fn compacted_batch_problem(
    records: &[u8],
    codec: u8,
    count: i32,
    max_bytes: u64,
) -> Result<Option<&'static str>, RecordsError> {
    let data = record_data(records, codec, max_bytes)?;
    let records = parse_records(&data, count)?;
    if records.iter().any(|r| r.key.is_none()) {
        return Ok(Some("Compacted topic cannot accept message without key"));
    }
    if records
        .iter()
        .enumerate()
        .any(|(i, r)| r.offset_delta != i as i64)
    {
        return Ok(Some("Inner record offsets are not 0, 1, 2..."));
    }
    Ok(None)
}

/// Called with each record's offset, key and whether it has a value.
pub type RecordVisitor<'a> = dyn FnMut(i64, Option<&[u8]>, bool) + 'a;
/// Like [`RecordVisitor`], answering whether to keep the record.
pub type RecordFilter<'a> = dyn FnMut(i64, Option<&[u8]>, bool) -> bool + 'a;

/// Record data read from one batch by [`for_each_record`] and [`retain_records`], at most
/// (256 MiB): far beyond any real batch, and a bound on what a crafted one costs.
pub const BATCH_DATA_MAX_BYTES: u64 = 256 << 20;

/// A stored batch's BaseOffset and its records (decompressed, at most
/// [`BATCH_DATA_MAX_BYTES`]), whose offset deltas must grow within its LastOffsetDelta.
fn stored_batch(batch: &[u8]) -> Result<StoredBatch<'_>, String> {
    let header = batch
        .get(..HEADER_LEN)
        .ok_or("batch shorter than its header")?;
    let int = |at: usize| {
        header[at..at + 4]
            .try_into()
            .map(i32::from_be_bytes)
            .map_err(|_| "header")
    };
    let base = i64::from_be_bytes(header[..8].try_into().map_err(|_| "header")?);
    let codec = header[ATTRIBUTES_AT + 1] & CODEC_MASK;
    let data = record_data(&batch[HEADER_LEN..], codec, BATCH_DATA_MAX_BYTES)
        .map_err(|e| format!("{e:?}"))?;
    Ok(StoredBatch {
        base,
        data,
        count: int(COUNT_AT)?,
        last_delta: i64::from(int(LAST_OFFSET_DELTA_AT)?),
    })
}

/// See [`stored_batch`].
struct StoredBatch<'a> {
    base: i64,
    data: Cow<'a, [u8]>,
    count: i32,
    last_delta: i64,
}

/// The records of a stored batch (see [`stored_batch`]): a record claiming an offset
/// outside its batch would otherwise stand for a later offset than any in the log.
fn stored_records(data: &[u8], count: i32, last_delta: i64) -> Result<Vec<RecordRef<'_>>, String> {
    let records = parse_records(data, count).map_err(|e| format!("{e:?}"))?;
    let mut prev = -1;
    for r in &records {
        if r.offset_delta <= prev || r.offset_delta > last_delta {
            return Err(format!(
                "record offset delta {} out of order or past the batch's last ({last_delta})",
                r.offset_delta
            ));
        }
        prev = r.offset_delta;
    }
    Ok(records)
}

/// Calls `visit(offset, key, has_value)` for each record of `batch` (whole, header
/// included), in order.
pub fn for_each_record(batch: &[u8], visit: &mut RecordVisitor<'_>) -> Result<(), String> {
    let b = stored_batch(batch)?;
    for r in stored_records(&b.data, b.count, b.last_delta)? {
        visit(b.base.saturating_add(r.offset_delta), r.key, r.has_value);
    }
    Ok(())
}

/// `batch` rebuilt ([`rebuild_batch`]) with only the records for which
/// `keep(offset, key, has_value)` holds, and marked with `delete_horizon` if it keeps a
/// tombstone and has no horizon yet; `None` when it would be the same batch.
pub fn retain_records(
    batch: &[u8],
    keep: &mut RecordFilter<'_>,
    delete_horizon: Option<i64>,
) -> Result<Option<Vec<u8>>, String> {
    let b = stored_batch(batch)?;
    let records = stored_records(&b.data, b.count, b.last_delta)?;
    let kept: Vec<RecordRef<'_>> = records
        .iter()
        .copied()
        .filter(|r| keep(b.base.saturating_add(r.offset_delta), r.key, r.has_value))
        .collect();
    let has_horizon = batch[ATTRIBUTES_AT + 1] & DELETE_HORIZON_BIT != 0;
    let horizon = delete_horizon.filter(|_| !has_horizon && kept.iter().any(|r| !r.has_value));
    if kept.len() == records.len() && horizon.is_none() {
        return Ok(None);
    }
    rebuild_batch(batch, &kept, horizon)
        .map(Some)
        .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{encode_batch, Compression, NewRecord};
    use bytes::Bytes;

    const CODECS: [(u8, Compression); 5] = [
        (0, Compression::None),
        (1, Compression::Gzip),
        (2, Compression::Snappy),
        (3, Compression::Lz4),
        (4, Compression::Zstd),
    ];

    /// Records k0..k{n-1} (the last key null when `null_last`), value v{i} except every third
    /// (a tombstone), timestamps 1000 + i.
    fn batch(n: usize, c: Compression, null_last: bool) -> Vec<u8> {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                key: (!(null_last && i + 1 == n)).then(|| Bytes::from(format!("k{i}"))),
                value: (i % 3 != 2).then(|| Bytes::from(format!("v{i}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                timestamp: Some(1000 + i as i64),
            })
            .collect();
        encode_batch(&records, 0, c).expect("encode").to_vec()
    }

    fn count(b: &[u8]) -> i32 {
        i32::from_be_bytes(b[COUNT_AT..COUNT_AT + 4].try_into().expect("4"))
    }

    #[test]
    fn keys_values_and_rebuilt_batches_in_every_codec() {
        for (codec, c) in CODECS {
            let b = batch(6, c, false);
            let data = record_data(&b[HEADER_LEN..], codec, u64::MAX).expect("data");
            let recs = parse_records(&data, count(&b)).expect("records");
            let keys: Vec<_> = recs.iter().map(|r| r.key.map(<[u8]>::to_vec)).collect();
            assert_eq!(keys[4], Some(b"k4".to_vec()), "{c:?}");
            assert_eq!(
                recs.iter().map(|r| r.has_value).collect::<Vec<_>>(),
                [true, true, false, true, true, false]
            );
            // Keep records 1 and 4: the batch keeps its offsets and codec, gets a new CRC.
            let kept = [recs[1], recs[4]];
            let rebuilt = rebuild_batch(&b, &kept, None).expect("rebuild");
            assert_eq!(rebuilt[..8], b[..8], "base offset");
            assert_eq!(rebuilt[23..27], b[23..27], "last offset delta");
            assert_eq!(rebuilt[22] & CODEC_MASK, codec);
            assert_eq!(count(&rebuilt), 2);
            let len = i32::from_be_bytes(rebuilt[8..12].try_into().expect("4"));
            assert_eq!(len as usize, rebuilt.len() - 12);
            let crc = u32::from_be_bytes(rebuilt[17..21].try_into().expect("4"));
            assert_eq!(crc, crc32c::crc32c(&rebuilt[21..]));
            let max_ts = i64::from_be_bytes(rebuilt[35..43].try_into().expect("8"));
            assert_eq!(max_ts, 1004);
            let data2 = record_data(&rebuilt[HEADER_LEN..], codec, u64::MAX).expect("data");
            let again = parse_records(&data2, 2).expect("records");
            assert_eq!(again[0].key, Some(&b"k1"[..]));
            assert_eq!(again[1].offset_delta, 4);
            // Nothing kept: an empty, uncompressed batch with the same offsets.
            let empty = rebuild_batch(&b, &[], None).expect("empty");
            assert_eq!(empty.len(), HEADER_LEN);
            assert_eq!(count(&empty), 0);
            assert_eq!(empty[22] & CODEC_MASK, 0);
            assert_eq!(empty[23..27], b[23..27]);
        }
    }

    #[test]
    fn a_delete_horizon_keeps_every_record_timestamp() {
        for (codec, c) in CODECS {
            // Records 0..6, tombstones at 2 and 5; all kept, the horizon set.
            let b = batch(6, c, false);
            let horizon = 5_000_000_000_i64;
            let marked = retain_records(&b, &mut |_, _, _| true, Some(horizon))
                .expect("retain")
                .expect("rebuilt: it keeps tombstones");
            assert_eq!(marked[22] & DELETE_HORIZON_BIT, DELETE_HORIZON_BIT, "{c:?}");
            let base = i64::from_be_bytes(marked[27..35].try_into().expect("8"));
            assert_eq!(base, horizon);
            let data = record_data(&marked[HEADER_LEN..], codec, u64::MAX).expect("data");
            let recs = parse_records(&data, 6).expect("records");
            let times: Vec<i64> = recs.iter().map(|r| base + r.timestamp_delta).collect();
            assert_eq!(times, (0..6).map(|i| 1000 + i).collect::<Vec<_>>(), "{c:?}");
            let max_ts = i64::from_be_bytes(marked[35..43].try_into().expect("8"));
            assert_eq!(max_ts, 1005);
            assert_eq!(recs[1].key, Some(&b"k1"[..]));
            // Marked once: the same batch again needs nothing, and dropping a record keeps
            // the mark.
            assert_eq!(
                retain_records(&marked, &mut |_, _, _| true, Some(1)),
                Ok(None)
            );
            let fewer = retain_records(&marked, &mut |o, _, _| o != 0, Some(1))
                .expect("retain")
                .expect("rebuilt");
            assert_eq!(
                i64::from_be_bytes(fewer[27..35].try_into().expect("8")),
                horizon
            );
            // Without tombstones kept, no mark.
            let none = retain_records(&b, &mut |_, _, v| v, Some(horizon))
                .expect("retain")
                .expect("rebuilt");
            assert_eq!(none[22] & DELETE_HORIZON_BIT, 0);
        }
    }

    #[test]
    fn null_keys_are_found() {
        for (codec, c) in CODECS {
            let with = batch(4, c, true);
            let without = batch(4, c, false);
            let check = |b: &[u8]| {
                compacted_batch_problem(&b[HEADER_LEN..], codec, count(b), 1 << 20)
                    .map(|p| p.is_some())
            };
            assert_eq!(check(&with), Ok(true), "{c:?}");
            assert_eq!(check(&without), Ok(false), "{c:?}");
        }
    }

    #[test]
    fn a_record_offset_outside_its_batch_is_refused() {
        // Two records; the second claims offset delta 1000 while the batch's last delta is 1.
        let b = batch(2, Compression::None, false);
        let recs = parse_records(&b[HEADER_LEN..], 2).expect("records");
        let second = HEADER_LEN + recs[0].raw.len();
        let mut forged = b.clone();
        // The second record: its length (1 byte here), attributes, timestamp delta (1 byte),
        // then its offset delta, 1 (zig-zag 2); 1000 (zig-zag 2000) takes two bytes.
        assert_eq!(forged[second + 3], 2);
        forged[second + 3] = 0xd0;
        forged.insert(second + 4, 0x0f);
        forged[second] += 2; // one more byte: the record's length, zig-zag
        let problem = compacted_batch_problem(&forged[HEADER_LEN..], 0, 2, 1 << 20);
        assert_eq!(problem, Ok(Some("Inner record offsets are not 0, 1, 2...")));
        let err = for_each_record(&forged, &mut |_, _, _| {}).expect_err("refused");
        assert!(err.contains("past the batch's last"), "{err}");
        assert!(retain_records(&forged, &mut |_, _, _| true, None).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        let b = batch(4, Compression::None, false);
        let recs = &b[HEADER_LEN..];
        assert_eq!(parse_records(recs, 5), Err(RecordsError::Malformed));
        assert_eq!(parse_records(recs, 3), Err(RecordsError::Malformed));
        assert_eq!(parse_records(recs, i32::MAX), Err(RecordsError::Malformed));
        assert_eq!(parse_records(recs, -1), Err(RecordsError::Malformed));
        assert_eq!(
            parse_records(&recs[..recs.len() - 1], 4),
            Err(RecordsError::Malformed)
        );
        assert_eq!(
            record_data(recs, 7, u64::MAX),
            Err(RecordsError::UnknownCodec(7))
        );
        assert_eq!(record_data(recs, 0, 3), Err(RecordsError::TooLarge));
        let junk = [0xffu8; 40];
        for codec in 0..=4 {
            let parsed =
                record_data(&junk, codec, 1 << 20).and_then(|d| parse_records(&d, 2).map(|_| ()));
            assert!(parsed.is_err(), "codec {codec}");
        }
        // A key longer than its record.
        let mut cut = recs.to_vec();
        cut[0] = 2; // record length 1
        assert_eq!(parse_records(&cut, 1), Err(RecordsError::Malformed));
        // A bomb stops at the bound.
        let big = encode_batch(
            &[NewRecord::key_value(
                Bytes::from_static(b"k"),
                Some(Bytes::from(vec![0u8; 8 << 20])),
            )],
            0,
            Compression::Zstd,
        )
        .expect("encode");
        assert_eq!(
            record_data(&big[HEADER_LEN..], 4, 1 << 20),
            Err(RecordsError::TooLarge)
        );
    }
}
