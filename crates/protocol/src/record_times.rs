//! The offset and timestamp deltas of the records inside a v2 record batch, read without
//! decoding keys, values or headers and without sizing anything from the batch's own
//! counts.
//!
//! Each record starts with its length (varint), attributes (int8), timestamp delta
//! (varlong) and offset delta (varint); the rest of it is skipped. A compressed batch is
//! decompressed as a stream (gzip, lz4, zstd) or, for snappy (whose framing Kafka takes
//! from xerial), block by block, each block's announced size checked against the bound
//! before anything is allocated for it. The work stops after `max_bytes` of record data,
//! so a crafted batch that expands a thousand-fold or more costs at most that much.

use std::io::Read;
use std::ops::ControlFlow;

/// The most bytes of a record's start that are read: attributes (1), a varlong (10) and a
/// varint (5).
const RECORD_PREFIX_MAX: usize = 16;

/// Why the records could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordsError {
    /// The compression codec number is not one Kafka defines.
    UnknownCodec(u8),
    /// The data ends inside a record, a varint is too long, or decompression failed.
    Malformed,
    /// More than the allowed bytes of record data.
    TooLarge,
}

/// Record data as read: a slice, or a decompressing stream.
enum Source<'a> {
    Slice(&'a [u8]),
    Stream(Box<dyn Read + 'a>),
}

impl Source<'_> {
    /// Fills `buf` as far as the data goes; returns how many bytes were read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, RecordsError> {
        match self {
            Source::Slice(s) => {
                let n = buf.len().min(s.len());
                buf[..n].copy_from_slice(&s[..n]);
                *s = &s[n..];
                Ok(n)
            }
            Source::Stream(r) => {
                let mut filled = 0;
                while filled < buf.len() {
                    match r.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(RecordsError::Malformed),
                    }
                }
                Ok(filled)
            }
        }
    }

    /// Skips exactly `n` bytes.
    fn skip(&mut self, n: u64) -> Result<(), RecordsError> {
        match self {
            Source::Slice(s) => {
                let n = usize::try_from(n).map_err(|_| RecordsError::Malformed)?;
                *s = s.get(n..).ok_or(RecordsError::Malformed)?;
                Ok(())
            }
            Source::Stream(r) => {
                let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())
                    .map_err(|_| RecordsError::Malformed)?;
                if copied == n {
                    Ok(())
                } else {
                    Err(RecordsError::Malformed)
                }
            }
        }
    }

    /// One byte of a varint.
    fn byte(&mut self) -> Result<u8, RecordsError> {
        let mut b = [0u8; 1];
        match self.read_up_to(&mut b)? {
            1 => Ok(b[0]),
            _ => Err(RecordsError::Malformed),
        }
    }
}

/// The magic that starts xerial-framed snappy data (Kafka's, from snappy-java).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// The xerial header: magic, version, compatible version.
const XERIAL_HEADER_LEN: usize = 16;
/// More than any snappy block expands.
const SNAPPY_MAX_RATIO: u64 = 24;

/// Snappy data decompressed: xerial-framed blocks (as Kafka's clients write it), or one
/// raw snappy block otherwise (as Kafka's reader also accepts). Each block's announced size
/// is checked against what is left of `max_bytes` before anything is allocated for it, so
/// a block claiming gigabytes costs nothing.
pub(crate) fn snappy_bounded(data: &[u8], max_bytes: u64) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    let block = |b: &[u8], out: &mut Vec<u8>| -> Result<(), RecordsError> {
        let n = snap::raw::decompress_len(b).map_err(|_| RecordsError::Malformed)?;
        // No snappy block expands more than about 21 times (a 3-byte copy of 64 bytes): one
        // that claims more is refused before anything is allocated for it.
        if n as u64 > (b.len() as u64).saturating_mul(SNAPPY_MAX_RATIO) {
            return Err(RecordsError::Malformed);
        }
        if (out.len() as u64).saturating_add(n as u64) > max_bytes {
            return Err(RecordsError::TooLarge);
        }
        let at = out.len();
        out.resize(at + n, 0);
        snap::raw::Decoder::new()
            .decompress(b, &mut out[at..])
            .map_err(|_| RecordsError::Malformed)?;
        Ok(())
    };
    if data.len() < XERIAL_HEADER_LEN || data[..XERIAL_MAGIC.len()] != XERIAL_MAGIC {
        block(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = &data[XERIAL_HEADER_LEN..];
    while !rest.is_empty() {
        let len: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(RecordsError::Malformed)?;
        let len = u32::from_be_bytes(len) as usize;
        let b = rest.get(4..4 + len).ok_or(RecordsError::Malformed)?;
        block(b, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// A zig-zag varint of at most `max_bits` bits from `next`.
fn varint(
    mut next: impl FnMut() -> Result<u8, RecordsError>,
    max_bits: u32,
) -> Result<(i64, usize), RecordsError> {
    let mut v: u64 = 0;
    let mut shift = 0;
    let mut used = 0;
    loop {
        let b = next()?;
        used += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((((v >> 1) as i64) ^ -((v & 1) as i64), used));
        }
        shift += 7;
        if shift >= max_bits {
            return Err(RecordsError::Malformed);
        }
    }
}

/// Calls `visit(offset_delta, timestamp_delta)` for each of the first `count` records in
/// `records` (a batch's bytes after its 61-byte header, compressed with `codec`, the
/// attribute bits 0-2), in order, until it breaks. Reads at most `max_bytes` of record
/// data: past that, [`RecordsError::TooLarge`].
pub fn visit_record_times<B>(
    records: &[u8],
    codec: u8,
    count: i32,
    max_bytes: u64,
    mut visit: impl FnMut(i64, i64) -> ControlFlow<B>,
) -> Result<ControlFlow<B>, RecordsError> {
    let snappy;
    let mut src = match codec {
        0 => Source::Slice(records),
        1 => Source::Stream(Box::new(flate2::read::MultiGzDecoder::new(records))),
        2 => {
            snappy = snappy_bounded(records, max_bytes)?;
            Source::Slice(&snappy)
        }
        3 => Source::Stream(Box::new(
            lz4::Decoder::new(records).map_err(|_| RecordsError::Malformed)?,
        )),
        4 => Source::Stream(Box::new(
            zstd::stream::read::Decoder::new(records).map_err(|_| RecordsError::Malformed)?,
        )),
        c => return Err(RecordsError::UnknownCodec(c)),
    };
    let mut consumed: u64 = 0;
    for _ in 0..count.max(0) {
        let (len, used) = varint(|| src.byte(), 35)?;
        let len = u64::try_from(len).map_err(|_| RecordsError::Malformed)?;
        consumed = consumed.saturating_add(used as u64).saturating_add(len);
        if consumed > max_bytes {
            return Err(RecordsError::TooLarge);
        }
        let mut prefix = [0u8; RECORD_PREFIX_MAX];
        let want = usize::try_from(len.min(RECORD_PREFIX_MAX as u64)).unwrap_or(0);
        if src.read_up_to(&mut prefix[..want])? != want || want == 0 {
            return Err(RecordsError::Malformed);
        }
        let mut at = 1; // attributes
        let mut next = || {
            let b = *prefix[..want].get(at).ok_or(RecordsError::Malformed)?;
            at += 1;
            Ok(b)
        };
        let (timestamp_delta, _) = varint(&mut next, 70)?;
        let (offset_delta, _) = varint(&mut next, 35)?;
        src.skip(len - want as u64)?;
        if let ControlFlow::Break(b) = visit(offset_delta, timestamp_delta) {
            return Ok(ControlFlow::Break(b));
        }
    }
    Ok(ControlFlow::Continue(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{encode_batch, Compression, NewRecord};
    use bytes::Bytes;

    /// A batch of `n` records whose i-th carries timestamp 1000 + 10·i and a value of
    /// `value_len` bytes (a key on every other, a header on every third); returns the bytes
    /// after the header.
    fn batch(n: usize, value_len: usize, compression: Compression) -> Vec<u8> {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; value_len])),
                headers: if i % 3 == 0 {
                    vec![("h".to_string(), Some(Bytes::from_static(b"x")))]
                } else {
                    Vec::new()
                },
                timestamp: Some(1000 + 10 * i as i64),
            })
            .collect();
        encode_batch(&records, 0, compression).expect("encode")[61..].to_vec()
    }

    #[test]
    fn every_codec_gives_every_record_in_order() {
        for (codec, c) in [
            (0, Compression::None),
            (1, Compression::Gzip),
            (2, Compression::Snappy),
            (3, Compression::Lz4),
            (4, Compression::Zstd),
        ] {
            let data = batch(50, 300, c);
            let mut seen = Vec::new();
            let r = visit_record_times(&data, codec, 50, u64::MAX, |o, t| {
                seen.push((o, t));
                ControlFlow::<()>::Continue(())
            });
            assert_eq!(r, Ok(ControlFlow::Continue(())), "{c:?}");
            let want: Vec<(i64, i64)> = (0..50).map(|i| (i, 10 * i)).collect();
            assert_eq!(seen, want, "{c:?}");
            // Breaking stops the walk.
            let r = visit_record_times(&data, codec, 50, u64::MAX, |o, _| {
                if o == 7 {
                    ControlFlow::Break(o)
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert_eq!(r, Ok(ControlFlow::Break(7)), "{c:?}");
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let data = batch(5, 10, Compression::None);
        let walk = |d: &[u8], codec: u8, count: i32, max: u64| {
            visit_record_times(d, codec, count, max, |_, _| ControlFlow::<()>::Continue(()))
        };
        // More records announced than present; cut short; an undefined codec.
        assert_eq!(
            walk(&data, 0, i32::MAX, u64::MAX),
            Err(RecordsError::Malformed)
        );
        assert_eq!(
            walk(&data[..data.len() - 3], 0, 5, u64::MAX),
            Err(RecordsError::Malformed)
        );
        assert_eq!(
            walk(&data, 6, 5, u64::MAX),
            Err(RecordsError::UnknownCodec(6))
        );
        // Over the byte bound.
        assert_eq!(walk(&data, 0, 5, 10), Err(RecordsError::TooLarge));
        // Garbage for every codec.
        let junk = [0xffu8; 40];
        for codec in 0..=4 {
            assert!(walk(&junk, codec, 3, u64::MAX).is_err(), "codec {codec}");
        }
        // A record claiming a negative or huge length.
        assert_eq!(
            walk(&[0x01, 0, 0, 0], 0, 1, u64::MAX),
            Err(RecordsError::Malformed)
        );
        assert_eq!(
            walk(&[0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0], 0, 1, u64::MAX),
            Err(RecordsError::Malformed)
        );
        assert_eq!(
            walk(&[0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0], 0, 1, 1 << 20),
            Err(RecordsError::TooLarge)
        );
    }

    #[test]
    fn a_snappy_block_claiming_gigabytes_allocates_nothing() {
        // A raw snappy block whose length prefix says 4 GiB - 1, and the same as a xerial
        // block: refused from the prefix alone.
        let raw = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(snappy_bounded(&raw, 1 << 30), Err(RecordsError::Malformed));
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        xerial.extend_from_slice(&(raw.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&raw);
        assert_eq!(
            snappy_bounded(&xerial, 1 << 30),
            Err(RecordsError::Malformed)
        );
        // Within the ratio but past the bound: too large, still before allocating.
        let big = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 1 << 20])
            .expect("compress");
        assert_eq!(snappy_bounded(&big, 1 << 16), Err(RecordsError::TooLarge));
        assert_eq!(snappy_bounded(&big, 1 << 20).map(|v| v.len()), Ok(1 << 20));
        // A block cut short, and a length past the end.
        assert_eq!(
            snappy_bounded(&xerial[..xerial.len() - 1], 1 << 30),
            Err(RecordsError::Malformed)
        );
    }

    #[test]
    fn a_bomb_stops_at_the_bound() {
        // 64 MiB of one byte, a few KiB compressed.
        let data = batch(1, 64 << 20, Compression::Zstd);
        assert!(data.len() < 1 << 20);
        let r = visit_record_times(&data, 4, 1, 1 << 20, |_, _| ControlFlow::<()>::Continue(()));
        assert_eq!(r, Err(RecordsError::TooLarge));
    }
}
