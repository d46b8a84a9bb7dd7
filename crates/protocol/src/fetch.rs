//! Fetch responses whose record sets are sent apart from the encoded frame.
//!
//! A Fetch response is mostly record bytes that the broker already holds in segment files.
//! [`encode_fetch_response_split`] encodes everything else (frame size, header, every field)
//! and reports where each partition's record bytes belong, so the caller can send them
//! straight from the files (sendfile) between the encoded pieces instead of copying them
//! into the response buffer.
//!
//! How the positions are found without a second encoder: a record set is a length-prefixed
//! field, and a null one has the same encoded size as an empty one (a compact `0x00` against
//! `0x01` in flexible versions, an `int32` `-1` against `0` before). Encoding the response
//! once with those record sets null and once empty gives two buffers that differ exactly at
//! their length prefixes; every other byte, and so every other field, comes from
//! `kafka-protocol`'s own encoder.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use crate::frame::FrameError;

/// Appends a whole Fetch response frame to `buf`, leaving out the record bytes of every
/// partition whose `external[i]` is `Some(len)` (partitions counted in response order across
/// topics; `None` encodes that partition's `records` field as it is). The frame's size and
/// the record sets' length prefixes count the left-out bytes. Returns, for each left-out
/// record set in order, the position in `buf` where its bytes go: the caller sends `buf` up
/// to the first position, then those bytes, then `buf` up to the next position, and so on.
pub fn encode_fetch_response_split(
    buf: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    resp: &mut FetchResponse,
    external: &[Option<u64>],
) -> Result<Vec<usize>, FrameError> {
    let count: usize = resp.responses.iter().map(|t| t.partitions.len()).sum();
    if count != external.len() {
        return Err(FrameError::Encode(format!(
            "{} record set sizes for {count} partitions",
            external.len()
        )));
    }
    let flexible = version >= 12;
    let set_external = |resp: &mut FetchResponse, value: Option<Bytes>| {
        let parts = resp
            .responses
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut());
        for (p, ext) in parts.zip(external) {
            if ext.is_some() {
                p.records = value.clone();
            }
        }
    };
    let encode_body = |resp: &FetchResponse| -> Result<BytesMut, FrameError> {
        let mut b = BytesMut::new();
        resp.encode(&mut b, version)
            .map_err(|e| FrameError::Encode(e.to_string()))?;
        Ok(b)
    };
    set_external(resp, None);
    let nulls = encode_body(resp)?;
    set_external(resp, Some(Bytes::new()));
    let empties = encode_body(resp)?;
    if nulls.len() != empties.len() {
        return Err(FrameError::Encode(
            "null and empty record sets encode to different sizes".into(),
        ));
    }
    // Positions of the length prefixes: where the two encodings differ.
    let prefix_len = if flexible { 1 } else { 4 };
    let mut prefixes = Vec::new();
    let mut i = 0;
    while i < nulls.len() {
        if nulls[i] != empties[i] {
            prefixes.push(i);
            i += prefix_len;
        } else {
            i += 1;
        }
    }
    let sizes: Vec<u64> = external.iter().flatten().copied().collect();
    if prefixes.len() != sizes.len() {
        return Err(FrameError::Encode(format!(
            "found {} record set prefixes for {} left-out record sets",
            prefixes.len(),
            sizes.len()
        )));
    }
    let mut new_prefixes = Vec::with_capacity(sizes.len());
    for &len in &sizes {
        let mut p = Vec::with_capacity(5);
        if flexible {
            let v = u32::try_from(len + 1)
                .map_err(|_| FrameError::Encode(format!("record set of {len} bytes")))?;
            put_unsigned_varint(&mut p, v);
        } else {
            let v = i32::try_from(len)
                .map_err(|_| FrameError::Encode(format!("record set of {len} bytes")))?;
            p.put_i32(v);
        }
        new_prefixes.push(p);
    }
    let header_len = if FetchResponse::header_version(version) >= 1 {
        5
    } else {
        4
    };
    let body_len =
        empties.len() - prefix_len * sizes.len() + new_prefixes.iter().map(Vec::len).sum::<usize>();
    let total = header_len as u64 + body_len as u64 + sizes.iter().sum::<u64>();
    let size = i32::try_from(total)
        .map_err(|_| FrameError::Encode(format!("response of {total} bytes")))?;
    buf.reserve(4 + header_len + body_len);
    buf.put_i32(size);
    buf.put_i32(correlation_id);
    if header_len == 5 {
        buf.put_u8(0); // no tagged fields
    }
    let mut holes = Vec::with_capacity(sizes.len());
    let mut from = 0;
    for (at, prefix) in prefixes.iter().zip(&new_prefixes) {
        buf.extend_from_slice(&empties[from..*at]);
        buf.extend_from_slice(prefix);
        holes.push(buf.len());
        from = at + prefix_len;
    }
    buf.extend_from_slice(&empties[from..]);
    Ok(holes)
}

fn put_unsigned_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_response_with;
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn response(version: i16, sizes: &[Vec<usize>]) -> FetchResponse {
        let mut resp = FetchResponse::default().with_throttle_time_ms(3);
        if version >= 7 {
            resp.error_code = 0;
        }
        for (t, parts) in sizes.iter().enumerate() {
            let mut topic = FetchableTopicResponse::default();
            if version >= 13 {
                topic.topic_id = uuid::Uuid::from_u128(0x1234_5678 + t as u128);
            } else {
                topic.topic = TopicName(StrBytes::from_string(format!("topic-{t}")));
            }
            for (i, &len) in parts.iter().enumerate() {
                let mut p = PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(1000 + i as i64)
                    .with_last_stable_offset(900)
                    .with_records(Some(Bytes::from(vec![(i as u8) ^ 0x5a; len])));
                if version >= 5 {
                    p.log_start_offset = 7;
                }
                if version >= 11 {
                    p.preferred_read_replica = BrokerId(-1);
                }
                if version >= 12 && i % 3 == 1 {
                    p.diverging_epoch = EpochEndOffset::default().with_epoch(4).with_end_offset(77);
                    p.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(2))
                        .with_leader_epoch(9);
                }
                if i % 4 == 2 {
                    p.error_code = 6;
                }
                topic.partitions.push(p);
            }
            resp.responses.push(topic);
        }
        resp
    }

    /// The split encoding, with the left-out bytes put back where it says, is exactly what
    /// kafka-protocol encodes for the whole response, in every served version.
    #[test]
    fn split_encoding_plus_records_is_the_whole_encoding() {
        let shapes: Vec<Vec<Vec<usize>>> = vec![
            vec![],
            vec![vec![0]],
            vec![vec![100]],
            vec![vec![200, 0, 16_500], vec![1]],
            vec![vec![127, 128, 16_383, 16_384, 70_000], vec![], vec![5, 6]],
        ];
        for version in 4..=16i16 {
            for shape in &shapes {
                let whole = response(version, shape);
                let mut expected = BytesMut::new();
                encode_response_with(&mut expected, 42, version, &whole).expect("encode");
                // Leave out every other non-empty record set, and every empty one.
                let mut external = Vec::new();
                let mut records = Vec::new();
                let mut k = 0;
                for t in &whole.responses {
                    for p in &t.partitions {
                        let r = p.records.clone().unwrap_or_default();
                        if r.is_empty() || k % 2 == 0 {
                            external.push(Some(r.len() as u64));
                            records.push(r);
                        } else {
                            external.push(None);
                        }
                        k += 1;
                    }
                }
                let mut split = whole.clone();
                let mut buf = BytesMut::from(&b"earlier"[..]);
                let holes =
                    encode_fetch_response_split(&mut buf, 42, version, &mut split, &external)
                        .expect("split");
                assert_eq!(holes.len(), records.len());
                let mut joined = Vec::new();
                let mut from = 7;
                for (at, r) in holes.iter().zip(&records) {
                    joined.extend_from_slice(&buf[from..*at]);
                    joined.extend_from_slice(r);
                    from = *at;
                }
                joined.extend_from_slice(&buf[from..]);
                assert_eq!(&buf[..7], b"earlier");
                assert_eq!(joined, expected.as_ref(), "v{version} {shape:?}");
            }
        }
    }

    #[test]
    fn a_size_list_that_does_not_match_the_partitions_is_an_error() {
        let mut resp = response(12, &[vec![1, 2]]);
        let mut buf = BytesMut::new();
        assert!(encode_fetch_response_split(&mut buf, 1, 12, &mut resp, &[Some(1)]).is_err());
        assert!(buf.is_empty());
    }
}
