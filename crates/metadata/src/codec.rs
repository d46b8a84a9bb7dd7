//! Flexible-version primitives (unsigned varints, compact strings and arrays, tagged
//! fields) used to encode metadata records the way Kafka frames them.

use bytes::{Buf, BufMut};

use crate::records::RecordError;

pub fn put_uvarint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub fn get_uvarint(buf: &mut impl Buf) -> Result<u64, RecordError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err(RecordError::Truncated);
        }
        let b = buf.get_u8();
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(RecordError::Malformed("varint longer than 10 bytes"))
}

pub fn put_compact_str(buf: &mut impl BufMut, s: Option<&str>) {
    match s {
        None => put_uvarint(buf, 0),
        Some(s) => {
            put_uvarint(buf, s.len() as u64 + 1);
            buf.put_slice(s.as_bytes());
        }
    }
}

pub fn get_compact_str(buf: &mut impl Buf) -> Result<Option<String>, RecordError> {
    let n = get_uvarint(buf)?;
    if n == 0 {
        return Ok(None);
    }
    let len = usize::try_from(n - 1).map_err(|_| RecordError::Malformed("string length"))?;
    if buf.remaining() < len {
        return Err(RecordError::Truncated);
    }
    let mut v = vec![0u8; len];
    buf.copy_to_slice(&mut v);
    String::from_utf8(v)
        .map(Some)
        .map_err(|_| RecordError::Malformed("string is not UTF-8"))
}

pub fn put_compact_bytes(buf: &mut impl BufMut, v: &[u8]) {
    put_uvarint(buf, v.len() as u64 + 1);
    buf.put_slice(v);
}

/// Reads compact bytes that may not be null.
pub fn get_required_bytes(buf: &mut impl Buf) -> Result<Vec<u8>, RecordError> {
    let len =
        get_compact_len(buf, 1)?.ok_or(RecordError::Malformed("null bytes in a required field"))?;
    let mut v = vec![0u8; len];
    buf.copy_to_slice(&mut v);
    Ok(v)
}

pub fn get_required_str(buf: &mut impl Buf) -> Result<String, RecordError> {
    get_compact_str(buf)?.ok_or(RecordError::Malformed("null string in a required field"))
}

pub fn put_compact_i32s(buf: &mut impl BufMut, v: Option<&[i32]>) {
    match v {
        None => put_uvarint(buf, 0),
        Some(v) => {
            put_uvarint(buf, v.len() as u64 + 1);
            for x in v {
                buf.put_i32(*x);
            }
        }
    }
}

pub fn get_compact_i32s(buf: &mut impl Buf) -> Result<Option<Vec<i32>>, RecordError> {
    let n = get_uvarint(buf)?;
    if n == 0 {
        return Ok(None);
    }
    let len = usize::try_from(n - 1).map_err(|_| RecordError::Malformed("array length"))?;
    if buf.remaining() < len.saturating_mul(4) {
        return Err(RecordError::Truncated);
    }
    Ok(Some((0..len).map(|_| buf.get_i32()).collect()))
}

pub fn put_uuid(buf: &mut impl BufMut, id: &uuid::Uuid) {
    buf.put_slice(id.as_bytes());
}

pub fn get_uuid(buf: &mut impl Buf) -> Result<uuid::Uuid, RecordError> {
    if buf.remaining() < 16 {
        return Err(RecordError::Truncated);
    }
    let mut b = [0u8; 16];
    buf.copy_to_slice(&mut b);
    Ok(uuid::Uuid::from_bytes(b))
}

macro_rules! fixed {
    ($get:ident, $t:ty, $m:ident, $n:expr) => {
        pub fn $get(buf: &mut impl Buf) -> Result<$t, RecordError> {
            if buf.remaining() < $n {
                return Err(RecordError::Truncated);
            }
            Ok(buf.$m())
        }
    };
}
fixed!(get_i8, i8, get_i8, 1);
fixed!(get_i16, i16, get_i16, 2);
fixed!(get_i32, i32, get_i32, 4);
fixed!(get_i64, i64, get_i64, 8);
fixed!(get_u16, u16, get_u16, 2);
fixed!(get_f64, f64, get_f64, 8);

/// Reads a boolean byte; like Kafka, any non-zero value is `true`.
pub fn get_bool(buf: &mut impl Buf) -> Result<bool, RecordError> {
    Ok(get_i8(buf)? != 0)
}

/// Reads a compact array length (`None` for a null array) and checks that the buffer holds
/// at least `min_element_size` bytes per element, so a forged length cannot make the caller
/// allocate more than the input could fill.
pub fn get_compact_len(
    buf: &mut impl Buf,
    min_element_size: usize,
) -> Result<Option<usize>, RecordError> {
    let n = get_uvarint(buf)?;
    if n == 0 {
        return Ok(None);
    }
    let len = usize::try_from(n - 1).map_err(|_| RecordError::Malformed("array length"))?;
    if buf.remaining() < len.saturating_mul(min_element_size) {
        return Err(RecordError::Truncated);
    }
    Ok(Some(len))
}

/// Writes a compact array of UUIDs.
pub fn put_compact_uuids(buf: &mut impl BufMut, ids: &[uuid::Uuid]) {
    put_uvarint(buf, ids.len() as u64 + 1);
    for id in ids {
        put_uuid(buf, id);
    }
}

/// Reads a compact array of UUIDs (`None` for a null array).
pub fn get_compact_uuids(buf: &mut impl Buf) -> Result<Option<Vec<uuid::Uuid>>, RecordError> {
    let Some(len) = get_compact_len(buf, 16)? else {
        return Ok(None);
    };
    (0..len)
        .map(|_| get_uuid(buf))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Writes an empty tagged-field section.
pub fn put_no_tags(buf: &mut impl BufMut) {
    put_uvarint(buf, 0);
}

/// Writes a tagged-field section holding `fields` as (tag, serialized value) pairs, which
/// must be in ascending tag order as Kafka writes them.
pub fn put_tags(buf: &mut impl BufMut, fields: &[(u64, Vec<u8>)]) {
    put_uvarint(buf, fields.len() as u64);
    for (tag, data) in fields {
        put_uvarint(buf, *tag);
        put_uvarint(buf, data.len() as u64);
        buf.put_slice(data);
    }
}

/// Reads a tagged-field section into (tag, serialized value) pairs, in the order found.
pub fn get_tags(buf: &mut impl Buf) -> Result<Vec<(u64, bytes::Bytes)>, RecordError> {
    let count = get_uvarint(buf)?;
    let mut out = Vec::new();
    for _ in 0..count {
        let tag = get_uvarint(buf)?;
        let size =
            usize::try_from(get_uvarint(buf)?).map_err(|_| RecordError::Malformed("tag size"))?;
        if buf.remaining() < size {
            return Err(RecordError::Truncated);
        }
        out.push((tag, buf.copy_to_bytes(size)));
    }
    Ok(out)
}

/// Skips a tagged-field section (unknown tags are allowed and ignored).
pub fn skip_tags(buf: &mut impl Buf) -> Result<(), RecordError> {
    let count = get_uvarint(buf)?;
    for _ in 0..count {
        let _tag = get_uvarint(buf)?;
        let size =
            usize::try_from(get_uvarint(buf)?).map_err(|_| RecordError::Malformed("tag size"))?;
        if buf.remaining() < size {
            return Err(RecordError::Truncated);
        }
        buf.advance(size);
    }
    Ok(())
}
