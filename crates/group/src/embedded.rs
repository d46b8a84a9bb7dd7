//! Kafka's embedded consumer protocol: the `ConsumerProtocolSubscription` a classic consumer
//! puts in its JoinGroup metadata and the `ConsumerProtocolAssignment` it gets back in
//! SyncGroup (versions 0 to 3; later versions are read as 3). The coordinator reads them
//! only for classic members of a consumer-protocol group, whose partitions it assigns.

use bytes::{BufMut, Bytes, BytesMut};

use crate::records::Reader;

/// The newest version of both structures.
pub(crate) const MAX_VERSION: i16 = 3;

/// Partitions by topic name.
pub(crate) type NamedPartitions = Vec<(String, Vec<i32>)>;

/// A classic consumer's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Subscription {
    /// Subscribed topic names.
    pub topics: Vec<String>,
    /// The partitions it owns (version 1 and up; eager clients send none).
    pub owned: NamedPartitions,
    /// Its rack (version 3 and up), if not empty.
    pub rack_id: Option<String>,
}

/// The version of a subscription or assignment (`None` when unreadable or negative).
pub(crate) fn version(b: &[u8]) -> Option<i16> {
    Reader::new(b).i16().ok().filter(|v| *v >= 0)
}

fn partitions(r: &mut Reader<'_>) -> Option<NamedPartitions> {
    let n = r.i32().ok()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let topic = r.string().ok()?;
        let count = r.i32().ok()?;
        let mut parts = Vec::new();
        for _ in 0..count.max(0) {
            parts.push(r.i32().ok()?);
        }
        out.push((topic, parts));
    }
    Some(out)
}

/// Reads a subscription; `None` when malformed.
pub(crate) fn decode_subscription(b: &[u8]) -> Option<Subscription> {
    let mut r = Reader::new(b);
    let version = r.i16().ok().filter(|v| *v >= 0)?;
    let n = r.i32().ok()?;
    let mut topics = Vec::new();
    for _ in 0..n.max(0) {
        topics.push(r.string().ok()?);
    }
    let _user_data = r.bytes().ok()?;
    let mut sub = Subscription {
        topics,
        ..Default::default()
    };
    if version >= 1 {
        sub.owned = partitions(&mut r)?;
    }
    if version >= 2 {
        let _generation = r.i32().ok()?;
    }
    if version >= 3 {
        sub.rack_id = r.nullable_string().ok()?.filter(|s| !s.is_empty());
    }
    Some(sub)
}

/// Reads an assignment's partitions; `None` when malformed.
pub(crate) fn decode_assignment(b: &[u8]) -> Option<NamedPartitions> {
    let mut r = Reader::new(b);
    r.i16().ok().filter(|v| *v >= 0)?;
    let parts = partitions(&mut r)?;
    r.bytes().ok()?;
    Some(parts)
}

fn put_string(buf: &mut BytesMut, s: &str) {
    // Topic names are at most 249 bytes.
    buf.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
    buf.put_slice(s.as_bytes());
}

/// An assignment in `version` (capped at 3), without user data.
pub(crate) fn encode_assignment(version: i16, parts: &[(String, Vec<i32>)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(version.clamp(0, MAX_VERSION));
    b.put_i32(parts.len() as i32);
    for (topic, ps) in parts {
        put_string(&mut b, topic);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

#[cfg(test)]
pub(crate) fn encode_subscription(version: i16, sub: &Subscription) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(version);
    b.put_i32(sub.topics.len() as i32);
    for t in &sub.topics {
        put_string(&mut b, t);
    }
    b.put_i32(-1);
    if version >= 1 {
        b.put_i32(sub.owned.len() as i32);
        for (topic, ps) in &sub.owned {
            put_string(&mut b, topic);
            b.put_i32(ps.len() as i32);
            for p in ps {
                b.put_i32(*p);
            }
        }
    }
    if version >= 2 {
        b.put_i32(-1);
    }
    if version >= 3 {
        match &sub.rack_id {
            Some(r) => put_string(&mut b, r),
            None => b.put_i16(-1),
        }
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_of_every_version_round_trip() {
        let sub = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned: vec![("a".into(), vec![0, 2])],
            rack_id: Some("r1".into()),
        };
        for v in 0..=4 {
            let got = decode_subscription(&encode_subscription(v, &sub)).expect("subscription");
            assert_eq!(got.topics, sub.topics, "v{v}");
            assert_eq!(got.owned.is_empty(), v == 0, "v{v}");
            assert_eq!(got.rack_id.is_some(), v >= 3, "v{v}");
        }
        let b = encode_subscription(3, &sub);
        for cut in 0..b.len() - 1 {
            assert!(decode_subscription(&b[..cut]).is_none(), "cut {cut}");
        }
        assert!(decode_subscription(&[0xff, 0xff, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn assignments_round_trip() {
        let parts = vec![("t".to_owned(), vec![1, 3])];
        for v in 0..=5 {
            let b = encode_assignment(v, &parts);
            assert_eq!(version(&b), Some(v.min(3)));
            assert_eq!(decode_assignment(&b), Some(parts.clone()));
        }
        assert_eq!(decode_assignment(&[]), None);
    }
}
