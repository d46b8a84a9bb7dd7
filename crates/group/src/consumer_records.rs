//! The records of consumer-protocol groups in `__consumer_offsets`, in Kafka's format
//! (key versions 3 to 8).
//!
//! Keys are an int16 version and int16-length strings. Values are an int16 version (0)
//! and a flexible body: compact strings and arrays (unsigned varint length + 1, 0 = null),
//! 16-byte UUIDs, and a tagged-field section after each structure (skipped on read).

use bytes::{BufMut, Bytes, BytesMut};

use crate::consumer::{Assignment, TopicId};
use crate::records::RecordError;

/// A key of a consumer-protocol group's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerKey {
    /// 3: the group epoch.
    Metadata(String),
    /// 4: the subscribed topics' metadata.
    PartitionMetadata(String),
    /// 5: a member's subscription.
    Member(String, String),
    /// 6: the target assignment's epoch.
    TargetMetadata(String),
    /// 7: a member's target assignment.
    TargetMember(String, String),
    /// 8: a member's current assignment.
    CurrentAssignment(String, String),
}

impl ConsumerKey {
    /// The key's version.
    fn version(&self) -> i16 {
        match self {
            ConsumerKey::Metadata(_) => 3,
            ConsumerKey::PartitionMetadata(_) => 4,
            ConsumerKey::Member(..) => 5,
            ConsumerKey::TargetMetadata(_) => 6,
            ConsumerKey::TargetMember(..) => 7,
            ConsumerKey::CurrentAssignment(..) => 8,
        }
    }

    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            ConsumerKey::Metadata(g)
            | ConsumerKey::PartitionMetadata(g)
            | ConsumerKey::TargetMetadata(g)
            | ConsumerKey::Member(g, _)
            | ConsumerKey::TargetMember(g, _)
            | ConsumerKey::CurrentAssignment(g, _) => g,
        }
    }

    /// Kafka's bytes.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(self.version());
        let put = |b: &mut BytesMut, s: &str| {
            let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
            b.put_i16(s.len() as i16);
            b.put_slice(s);
        };
        match self {
            ConsumerKey::Metadata(g)
            | ConsumerKey::PartitionMetadata(g)
            | ConsumerKey::TargetMetadata(g) => put(&mut b, g),
            ConsumerKey::Member(g, m)
            | ConsumerKey::TargetMember(g, m)
            | ConsumerKey::CurrentAssignment(g, m) => {
                put(&mut b, g);
                put(&mut b, m);
            }
        }
        b.freeze()
    }

    /// Reads a key of versions 3 to 8; `Ok(None)` for other versions.
    pub fn decode(input: &[u8]) -> Result<Option<ConsumerKey>, RecordError> {
        let mut r = crate::records::Reader::new(input);
        let version = r.i16()?;
        Ok(Some(match version {
            3 => ConsumerKey::Metadata(r.string()?),
            4 => ConsumerKey::PartitionMetadata(r.string()?),
            5 => ConsumerKey::Member(r.string()?, r.string()?),
            6 => ConsumerKey::TargetMetadata(r.string()?),
            7 => ConsumerKey::TargetMember(r.string()?, r.string()?),
            8 => ConsumerKey::CurrentAssignment(r.string()?, r.string()?),
            _ => return Ok(None),
        }))
    }
}

/// A member's subscription (value of key 5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    /// The instance id.
    pub instance_id: Option<String>,
    /// The rack.
    pub rack_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub topic_names: Vec<String>,
    /// The subscribed regular expression.
    pub regex: Option<String>,
    /// The rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// The server assignor asked for.
    pub server_assignor: Option<String>,
    /// A member speaking the classic protocol: its session timeout and its protocols (name,
    /// metadata), Kafka's tagged `ClassicMemberMetadata`.
    pub classic: Option<(i32, Vec<(String, Bytes)>)>,
}

/// A member's current assignment (value of key 8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentValue {
    /// The member epoch.
    pub epoch: i32,
    /// The previous member epoch.
    pub previous_epoch: i32,
    /// 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    /// Assigned partitions.
    pub assigned: Assignment,
    /// Partitions being revoked.
    pub revoking: Assignment,
}

/// The values of the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerValue {
    /// 3: the group epoch.
    Metadata(i32),
    /// 4: (topic id, name, partitions) of the subscribed topics.
    PartitionMetadata(Vec<(TopicId, String, i32)>),
    /// 5.
    Member(MemberValue),
    /// 6: the target assignment epoch.
    TargetMetadata(i32),
    /// 7.
    TargetMember(Assignment),
    /// 8.
    CurrentAssignment(CurrentValue),
}

struct W(BytesMut);

impl W {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.put_u8(v as u8);
    }

    fn string(&mut self, s: &str) {
        self.uvarint(s.len() as u64 + 1);
        self.0.put_slice(s.as_bytes());
    }

    fn nullable(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.uvarint(0),
        }
    }

    fn len(&mut self, n: usize) {
        self.uvarint(n as u64 + 1);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.put_slice(b);
    }

    fn tags(&mut self) {
        self.uvarint(0);
    }

    fn assignment(&mut self, a: &Assignment) {
        self.len(a.len());
        for (t, parts) in a {
            self.0.put_slice(t);
            self.len(parts.len());
            for p in parts {
                self.0.put_i32(*p);
            }
            self.tags();
        }
    }
}

struct R<'a> {
    buf: &'a [u8],
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::InvalidLength(-1))
    }

    /// A compact length: `None` for null; never more than what is left to read.
    fn len(&mut self) -> Result<Option<usize>, RecordError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n - 1).map_err(|_| RecordError::InvalidLength(-1))?;
        if n > self.buf.len() {
            return Err(RecordError::Truncated);
        }
        Ok(Some(n))
    }

    fn nullable(&mut self) -> Result<Option<String>, RecordError> {
        match self.len()? {
            None => Ok(None),
            Some(n) => String::from_utf8(self.take(n)?.to_vec())
                .map(Some)
                .map_err(|_| RecordError::InvalidString),
        }
    }

    fn string(&mut self) -> Result<String, RecordError> {
        self.nullable()?.ok_or(RecordError::InvalidLength(-1))
    }

    fn uuid(&mut self) -> Result<TopicId, RecordError> {
        let b = self.take(16)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(b);
        Ok(id)
    }

    fn tags(&mut self) -> Result<(), RecordError> {
        self.tagged().map(|_| ())
    }

    /// The tagged fields: (tag, data).
    fn tagged(&mut self) -> Result<Vec<(u64, &'a [u8])>, RecordError> {
        let n = self.uvarint()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let tag = self.uvarint()?;
            let size = self.uvarint()?;
            let size = usize::try_from(size).map_err(|_| RecordError::InvalidLength(-1))?;
            out.push((tag, self.take(size)?));
        }
        Ok(out)
    }

    fn array<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, RecordError>,
    ) -> Result<Vec<T>, RecordError> {
        let n = self.len()?.unwrap_or(0);
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }

    fn assignment(&mut self) -> Result<Assignment, RecordError> {
        let mut a = Assignment::new();
        for (t, parts) in self.array(|r| {
            let t = r.uuid()?;
            let parts = r.array(R::i32)?;
            r.tags()?;
            Ok((t, parts))
        })? {
            if !parts.is_empty() {
                a.entry(t).or_default().extend(parts);
            }
        }
        Ok(a)
    }
}

impl ConsumerValue {
    /// Kafka's bytes (value version 0).
    pub fn encode(&self) -> Bytes {
        let mut w = W(BytesMut::new());
        w.0.put_i16(0);
        match self {
            ConsumerValue::Metadata(epoch) | ConsumerValue::TargetMetadata(epoch) => {
                w.0.put_i32(*epoch)
            }
            ConsumerValue::PartitionMetadata(topics) => {
                w.len(topics.len());
                for (id, name, n) in topics {
                    w.0.put_slice(id);
                    w.string(name);
                    w.0.put_i32(*n);
                    w.len(0);
                    w.tags();
                }
            }
            ConsumerValue::Member(m) => {
                w.nullable(m.instance_id.as_deref());
                w.nullable(m.rack_id.as_deref());
                w.string(&m.client_id);
                w.string(&m.client_host);
                w.len(m.topic_names.len());
                for t in &m.topic_names {
                    w.string(t);
                }
                w.nullable(m.regex.as_deref());
                w.0.put_i32(m.rebalance_timeout_ms);
                w.nullable(m.server_assignor.as_deref());
                if let Some((session, protocols)) = &m.classic {
                    // Tag 0: a nullable struct, present (1), then its fields.
                    let mut t = W(BytesMut::new());
                    t.0.put_i8(1);
                    t.0.put_i32(*session);
                    t.len(protocols.len());
                    for (name, metadata) in protocols {
                        t.string(name);
                        t.bytes(metadata);
                        t.tags();
                    }
                    t.tags();
                    w.uvarint(1);
                    w.uvarint(0);
                    w.uvarint(t.0.len() as u64);
                    w.0.put_slice(&t.0);
                    return w.0.freeze();
                }
            }
            ConsumerValue::TargetMember(a) => w.assignment(a),
            ConsumerValue::CurrentAssignment(c) => {
                w.0.put_i32(c.epoch);
                w.0.put_i32(c.previous_epoch);
                w.0.put_i8(c.state);
                w.assignment(&c.assigned);
                w.assignment(&c.revoking);
            }
        }
        w.tags();
        w.0.freeze()
    }

    /// Reads the value of a record with `key`.
    pub fn decode(key: &ConsumerKey, input: &[u8]) -> Result<ConsumerValue, RecordError> {
        let mut r = R { buf: input };
        let version = i16::from_be_bytes([r.u8()?, r.u8()?]);
        if version != 0 {
            return Err(RecordError::UnsupportedValueVersion(version));
        }
        let v = match key {
            ConsumerKey::Metadata(_) => ConsumerValue::Metadata(r.i32()?),
            ConsumerKey::TargetMetadata(_) => ConsumerValue::TargetMetadata(r.i32()?),
            ConsumerKey::PartitionMetadata(_) => {
                ConsumerValue::PartitionMetadata(r.array(|r| {
                    let id = r.uuid()?;
                    let name = r.string()?;
                    let n = r.i32()?;
                    r.array(|r| {
                        r.i32()?;
                        r.array(R::string)?;
                        r.tags()
                    })?;
                    r.tags()?;
                    Ok((id, name, n))
                })?)
            }
            ConsumerKey::Member(..) => ConsumerValue::Member(MemberValue {
                instance_id: r.nullable()?,
                rack_id: r.nullable()?,
                client_id: r.string()?,
                client_host: r.string()?,
                topic_names: r.array(R::string)?,
                regex: r.nullable()?,
                rebalance_timeout_ms: r.i32()?,
                server_assignor: r.nullable()?,
                classic: None,
            }),
            ConsumerKey::TargetMember(..) => ConsumerValue::TargetMember(r.assignment()?),
            ConsumerKey::CurrentAssignment(..) => ConsumerValue::CurrentAssignment(CurrentValue {
                epoch: r.i32()?,
                previous_epoch: r.i32()?,
                state: r.u8()? as i8,
                assigned: r.assignment()?,
                revoking: r.assignment()?,
            }),
        };
        let mut v = v;
        for (tag, data) in r.tagged()? {
            if let (0, ConsumerValue::Member(m)) = (tag, &mut v) {
                let mut t = R { buf: data };
                if t.u8()? as i8 >= 0 {
                    let session = t.i32()?;
                    let protocols = t.array(|r| {
                        let name = r.string()?;
                        let n = r.len()?.ok_or(RecordError::InvalidLength(-1))?;
                        let metadata = Bytes::copy_from_slice(r.take(n)?);
                        r.tags()?;
                        Ok((name, metadata))
                    })?;
                    t.tags()?;
                    m.classic = Some((session, protocols));
                }
            }
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn records_round_trip() {
        let a: Assignment = [([7u8; 16], BTreeSet::from([0, 2]))].into_iter().collect();
        let cases = [
            (
                ConsumerKey::Metadata("g".into()),
                ConsumerValue::Metadata(4),
            ),
            (
                ConsumerKey::PartitionMetadata("g".into()),
                ConsumerValue::PartitionMetadata(vec![([1; 16], "t".into(), 3)]),
            ),
            (
                ConsumerKey::Member("g".into(), "m".into()),
                ConsumerValue::Member(MemberValue {
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    topic_names: vec!["t".into(), "u".into()],
                    regex: Some("(^t.*)".into()),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("range".into()),
                    classic: None,
                }),
            ),
            (
                ConsumerKey::Member("g".into(), "c".into()),
                ConsumerValue::Member(MemberValue {
                    instance_id: None,
                    rack_id: Some("r".into()),
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    topic_names: vec!["t".into()],
                    regex: None,
                    rebalance_timeout_ms: 60_000,
                    server_assignor: None,
                    classic: Some((
                        10_000,
                        vec![
                            ("range".into(), Bytes::from_static(&[0, 1, 2])),
                            ("roundrobin".into(), Bytes::new()),
                        ],
                    )),
                }),
            ),
            (
                ConsumerKey::TargetMetadata("g".into()),
                ConsumerValue::TargetMetadata(4),
            ),
            (
                ConsumerKey::TargetMember("g".into(), "m".into()),
                ConsumerValue::TargetMember(a.clone()),
            ),
            (
                ConsumerKey::CurrentAssignment("g".into(), "m".into()),
                ConsumerValue::CurrentAssignment(CurrentValue {
                    epoch: 4,
                    previous_epoch: 3,
                    state: 1,
                    assigned: a.clone(),
                    revoking: Assignment::new(),
                }),
            ),
        ];
        for (k, v) in cases {
            let kb = k.encode();
            let back = ConsumerKey::decode(&kb)
                .expect("key")
                .expect("consumer key");
            assert_eq!(back, k);
            let vb = v.encode();
            assert_eq!(ConsumerValue::decode(&k, &vb).expect("value"), v);
            // Every truncation is an error, never a panic.
            for cut in 0..vb.len() {
                assert!(
                    ConsumerValue::decode(&k, &vb[..cut]).is_err(),
                    "{k:?} cut at {cut}"
                );
            }
        }
        // Kafka's bytes of a group epoch: key version 3, "g"; value version 0, 4, no tags.
        assert_eq!(
            &ConsumerKey::Metadata("g".into()).encode()[..],
            &[0, 3, 0, 1, b'g']
        );
        assert_eq!(
            &ConsumerValue::Metadata(4).encode()[..],
            &[0, 0, 0, 0, 0, 4, 0]
        );
        assert_eq!(ConsumerKey::decode(&[0, 2, 0, 1, b'g']).expect("key"), None);
    }
}
