//! Counting the entries of a Produce request without decoding it.
//!
//! A decoded request takes more memory than its bytes: each topic and partition entry
//! becomes a struct of about a hundred bytes, and its answer another, however few bytes
//! the entry took on the wire (three, for a topic with no partitions). The record bytes
//! themselves stay a slice of the frame. So what a Produce request costs to decode and
//! answer follows its number of entries, which this walk finds before anything is
//! allocated for them.

use std::convert::TryInto;

/// The number of topic and partition entries (and tagged fields, each of which decodes to
/// an entry of its own) in a Produce request body (after the request header) of `version`
/// (3 to 11; flexible from 9), or None when the body is malformed or the version unknown.
pub fn produce_entries(body: &[u8], version: i16) -> Option<usize> {
    if !(3..=11).contains(&version) {
        return None;
    }
    let flexible = version >= 9;
    let mut r = Reader {
        buf: body,
        flexible,
        tagged: 0,
    };
    r.skip_nullable(false)?; // transactional_id
    r.skip(2)?; // acks
    r.skip(4)?; // timeout_ms
    let topics = r.array_len()?;
    let mut entries = topics;
    for _ in 0..topics {
        r.skip_nullable(false)?; // name
        let partitions = r.array_len()?;
        entries = entries.checked_add(partitions)?;
        for _ in 0..partitions {
            r.skip(4)?; // index
            r.skip_nullable(true)?; // records
            r.tagged_fields()?;
        }
        r.tagged_fields()?;
    }
    r.tagged_fields()?;
    entries.checked_add(r.tagged)
}

struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
    /// Tagged fields seen: each decodes to an entry of its own (in a map).
    tagged: usize,
}

impl Reader<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        self.buf = self.buf.get(n..)?;
        Some(())
    }

    fn i16(&mut self) -> Option<i16> {
        let v = i16::from_be_bytes(self.buf.get(..2)?.try_into().ok()?);
        self.skip(2)?;
        Some(v)
    }

    fn i32(&mut self) -> Option<i32> {
        let v = i32::from_be_bytes(self.buf.get(..4)?.try_into().ok()?);
        self.skip(4)?;
        Some(v)
    }

    fn uvarint(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = *self.buf.first()?;
            self.skip(1)?;
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A compact length (stored plus one; 0 is null): the length, None for null.
    fn compact_len(&mut self) -> Option<Option<usize>> {
        Some(self.uvarint()?.checked_sub(1).map(|n| n as usize))
    }

    /// Skips a nullable string (`wide` false: an i16 length when not flexible) or bytes
    /// (`wide`: an i32 length).
    fn skip_nullable(&mut self, wide: bool) -> Option<()> {
        let len = match (self.flexible, wide) {
            (true, _) => self.compact_len()?,
            (false, false) => usize::try_from(self.i16()?).ok(),
            (false, true) => usize::try_from(self.i32()?).ok(),
        };
        self.skip(len.unwrap_or(0))
    }

    /// An array's length; a null array counts as empty. Each entry takes at least one
    /// byte, so a length beyond the bytes left is malformed.
    fn array_len(&mut self) -> Option<usize> {
        let len = if self.flexible {
            self.compact_len()?.unwrap_or(0)
        } else {
            usize::try_from(self.i32()?).unwrap_or(0)
        };
        (len <= self.buf.len()).then_some(len)
    }

    fn tagged_fields(&mut self) -> Option<()> {
        if !self.flexible {
            return Some(());
        }
        let n = self.uvarint()? as usize;
        // Each takes at least two bytes.
        if n > self.buf.len() {
            return None;
        }
        self.tagged += n;
        for _ in 0..n {
            self.uvarint()?; // tag
            let size = self.uvarint()? as usize;
            self.skip(size)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn request(topics: usize, partitions: usize) -> ProduceRequest {
        ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(
                (0..topics)
                    .map(|t| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                            .with_partition_data(
                                (0..partitions)
                                    .map(|p| {
                                        PartitionProduceData::default()
                                            .with_index(p as i32)
                                            .with_records(
                                                (p % 2 == 0)
                                                    .then(|| Bytes::from(vec![7u8; 100 + p])),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    }

    #[test]
    fn counts_topics_and_partitions_in_every_version() {
        for version in 3..=11 {
            for (topics, partitions) in [(0, 0), (1, 1), (3, 5), (2, 0)] {
                let mut buf = BytesMut::new();
                request(topics, partitions)
                    .encode(&mut buf, version)
                    .expect("encode");
                assert_eq!(
                    produce_entries(&buf, version),
                    Some(topics + topics * partitions),
                    "v{version}, {topics} x {partitions}"
                );
            }
        }
    }

    #[test]
    fn tagged_fields_count_as_entries() {
        // v9: null transactional id, acks, timeout, one topic "t" with one partition
        // (null records) carrying three unknown tagged fields, then no more tags.
        let mut body = vec![0, 0, 1, 0, 0, 0, 100, 2, 2, b't', 2, 0, 0, 0, 0, 0, 3];
        for tag in 0..3 {
            body.extend_from_slice(&[tag, 1, 0xaa]);
        }
        body.extend_from_slice(&[0, 0]);
        assert_eq!(produce_entries(&body, 9), Some(2 + 3));
        // More tags announced than bytes left.
        let mut lying = body[..16].to_vec();
        lying.extend_from_slice(&[0xff, 0xff, 0x7f]);
        assert_eq!(produce_entries(&lying, 9), None);
    }

    #[test]
    fn malformed_bodies_and_unknown_versions_are_none() {
        let mut buf = BytesMut::new();
        request(2, 3).encode(&mut buf, 9).expect("encode");
        for cut in 0..buf.len() {
            assert_eq!(produce_entries(&buf[..cut], 9), None, "cut at {cut}");
        }
        assert_eq!(produce_entries(&buf, 2), None);
        assert_eq!(produce_entries(&buf, 12), None);
        // An array announcing more entries than there are bytes left.
        let mut lying = vec![0xff, 0xff, 0, 1, 0, 0, 0, 0];
        lying.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(produce_entries(&lying, 3), None);
    }
}
