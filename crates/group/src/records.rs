//! The records of `__consumer_offsets`, in Kafka's on-disk format.
//!
//! Every record is a key and a value; both start with an int16 version. Keys of
//! version 0 and 1 are [`RecordKey::OffsetCommit`], version 2 is
//! [`RecordKey::GroupMetadata`]. Values are [`OffsetCommitValue`] (written as
//! version 3, read as 0..=3) and [`GroupMetadataValue`] (written as version 3,
//! read as 0..=3). A missing value (`None`) is a tombstone. Strings are int16
//! length prefixed (length -1 = null for nullable strings), byte arrays are
//! int32 length prefixed. Bytes after the last known field are ignored, so
//! that a reader tolerates fields appended by later writers.

use bytes::{BufMut, Bytes, BytesMut};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The input ended before a field was complete.
    #[error("record truncated")]
    Truncated,
    /// The key's version is not one this crate knows.
    #[error("unsupported key version {0}")]
    UnsupportedKeyVersion(i16),
    /// The value's version is not one this crate knows.
    #[error("unsupported value version {0}")]
    UnsupportedValueVersion(i16),
    /// A string field is not valid UTF-8.
    #[error("string field is not valid UTF-8")]
    InvalidString,
    /// A length prefix is negative where null is not allowed.
    #[error("invalid length {0}")]
    InvalidLength(i32),
}

/// The version written for offset commit keys.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// The version of group metadata keys.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// The version written for offset commit values.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// The version written for group metadata values.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// Key versions 0 and 1: the committed offset of one partition for one group.
    OffsetCommit {
        /// The group id.
        group: String,
        /// The topic name.
        topic: String,
        /// The partition index.
        partition: i32,
    },
    /// Key version 2: the metadata (members, generation, assignment) of one group.
    GroupMetadata {
        /// The group id.
        group: String,
    },
}

impl RecordKey {
    /// The group this key belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::OffsetCommit { group, .. } | RecordKey::GroupMetadata { group } => group,
        }
    }

    /// Encodes the key (offset commit keys as version 1, group keys as version 2).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::GroupMetadata { group } => {
                buf.put_i16(GROUP_METADATA_KEY_VERSION);
                put_string(&mut buf, group);
            }
        }
        buf.freeze()
    }

    /// Decodes a key. Versions other than 0, 1 and 2 (for example the records of
    /// Kafka's new consumer protocol, versions 3 and up) give
    /// [`RecordError::UnsupportedKeyVersion`].
    pub fn decode(input: &[u8]) -> Result<RecordKey, RecordError> {
        let mut r = Reader::new(input);
        let version = r.i16()?;
        match version {
            0 | 1 => {
                let group = r.string()?;
                let topic = r.string()?;
                let partition = r.i32()?;
                Ok(RecordKey::OffsetCommit {
                    group,
                    topic,
                    partition,
                })
            }
            2 => Ok(RecordKey::GroupMetadata { group: r.string()? }),
            v => Err(RecordError::UnsupportedKeyVersion(v)),
        }
    }
}

/// The value of an offset commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The committed offset.
    pub offset: i64,
    /// The leader epoch of the committed offset, -1 if unknown (versions < 3).
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When the commit was made (ms since the epoch).
    pub commit_timestamp: i64,
    /// The explicit expiry time of value version 1, never written by this crate.
    pub expire_timestamp: Option<i64>,
}

impl OffsetCommitValue {
    /// Encodes the value as version 3 (the expire timestamp is not part of version 3).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp);
        buf.freeze()
    }

    /// Decodes a value of version 0 to 3.
    pub fn decode(input: &[u8]) -> Result<OffsetCommitValue, RecordError> {
        let mut r = Reader::new(input);
        let version = r.i16()?;
        match version {
            0 | 2 => Ok(OffsetCommitValue {
                offset: r.i64()?,
                leader_epoch: -1,
                metadata: r.string()?,
                commit_timestamp: r.i64()?,
                expire_timestamp: None,
            }),
            1 => Ok(OffsetCommitValue {
                offset: r.i64()?,
                leader_epoch: -1,
                metadata: r.string()?,
                commit_timestamp: r.i64()?,
                expire_timestamp: Some(r.i64()?),
            }),
            3 => Ok(OffsetCommitValue {
                offset: r.i64()?,
                leader_epoch: r.i32()?,
                metadata: r.string()?,
                commit_timestamp: r.i64()?,
                expire_timestamp: None,
            }),
            v => Err(RecordError::UnsupportedValueVersion(v)),
        }
    }
}

/// One member in a [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    /// The member id.
    pub member_id: String,
    /// The static member's `group.instance.id` (version 3).
    pub group_instance_id: Option<String>,
    /// The client id of the member's last JoinGroup.
    pub client_id: String,
    /// The client host of the member's last JoinGroup.
    pub client_host: String,
    /// The rebalance timeout (version >= 1; version 0 reads the session timeout).
    pub rebalance_timeout_ms: i32,
    /// The session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    /// The assignment the leader gave the member.
    pub assignment: Bytes,
}

/// The value of a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// The protocol type ("consumer", "connect", ...); empty if none.
    pub protocol_type: String,
    /// The generation id.
    pub generation: i32,
    /// The selected protocol, null when the group is empty.
    pub protocol: Option<String>,
    /// The leader's member id, null when the group is empty.
    pub leader: Option<String>,
    /// When the group entered its current state (version >= 2), -1 if unknown.
    pub current_state_timestamp: i64,
    /// The members with their assignment.
    pub members: Vec<MemberMetadataValue>,
}

impl GroupMetadataValue {
    /// Encodes the value as version 3.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        let count = i32::try_from(self.members.len());
        assert!(count.is_ok(), "too many members");
        buf.put_i32(count.unwrap_or(i32::MAX));
        for m in &self.members {
            put_string(&mut buf, &m.member_id);
            put_nullable_string(&mut buf, m.group_instance_id.as_deref());
            put_string(&mut buf, &m.client_id);
            put_string(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    /// Decodes a value of version 0 to 3.
    pub fn decode(input: &[u8]) -> Result<GroupMetadataValue, RecordError> {
        let mut r = Reader::new(input);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnsupportedValueVersion(version));
        }
        let protocol_type = r.string()?;
        let generation = r.i32()?;
        let protocol = r.nullable_string()?;
        let leader = r.nullable_string()?;
        let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
        let count = r.i32()?;
        if count < 0 {
            return Err(RecordError::InvalidLength(count));
        }
        let mut members = Vec::new();
        for _ in 0..count {
            let member_id = r.string()?;
            let group_instance_id = if version >= 3 {
                r.nullable_string()?
            } else {
                None
            };
            let client_id = r.string()?;
            let client_host = r.string()?;
            let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
            let session_timeout_ms = r.i32()?;
            let subscription = r.bytes()?;
            let assignment = r.bytes()?;
            members.push(MemberMetadataValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: rebalance_timeout.unwrap_or(session_timeout_ms),
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

fn put_string(buf: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len());
    assert!(len.is_ok(), "string longer than i16::MAX bytes");
    buf.put_i16(len.unwrap_or(i16::MAX));
    buf.put_slice(s.as_bytes());
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    let len = i32::try_from(b.len());
    assert!(len.is_ok(), "byte array longer than i32::MAX bytes");
    buf.put_i32(len.unwrap_or(i32::MAX));
    buf.put_slice(b);
}

/// A bounds-checked big-endian reader.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(usize::from(len.unsigned_abs()))?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| RecordError::InvalidString)
    }

    pub(crate) fn string(&mut self) -> Result<String, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Err(RecordError::InvalidLength(i32::from(len)));
        }
        let raw = self.take(usize::from(len.unsigned_abs()))?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| RecordError::InvalidString)
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len < 0 {
            // Kafka writes non-null arrays here; read null leniently as empty.
            return Ok(Bytes::new());
        }
        let n = usize::try_from(len).map_err(|_| RecordError::InvalidLength(len))?;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_group() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 1234,
            members: vec![
                MemberMetadataValue {
                    member_id: "m1".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assign"),
                },
                MemberMetadataValue {
                    member_id: "m2".into(),
                    group_instance_id: Some("i2".into()),
                    client_id: "c2".into(),
                    client_host: "h".into(),
                    rebalance_timeout_ms: 1,
                    session_timeout_ms: 2,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    #[test]
    fn key_round_trips() {
        let keys = [
            RecordKey::OffsetCommit {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
            },
            RecordKey::GroupMetadata {
                group: "grp".into(),
            },
        ];
        for k in keys {
            let enc = k.encode();
            assert_eq!(RecordKey::decode(&enc), Ok(k.clone()));
            for cut in 0..enc.len() {
                assert_eq!(
                    RecordKey::decode(&enc[..cut]),
                    Err(RecordError::Truncated),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn key_exact_bytes() {
        let k = RecordKey::GroupMetadata { group: "ab".into() };
        assert_eq!(&k.encode()[..], &[0, 2, 0, 2, b'a', b'b']);
        let k = RecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
        };
        assert_eq!(&k.encode()[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
        // version 0 reads the same layout
        assert_eq!(
            RecordKey::decode(&[0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]),
            Ok(k)
        );
    }

    #[test]
    fn unknown_versions() {
        assert_eq!(
            RecordKey::decode(&[0, 3, 0, 0]),
            Err(RecordError::UnsupportedKeyVersion(3))
        );
        assert_eq!(
            OffsetCommitValue::decode(&[0, 9]),
            Err(RecordError::UnsupportedValueVersion(9))
        );
        assert_eq!(
            GroupMetadataValue::decode(&[0, 4]),
            Err(RecordError::UnsupportedValueVersion(4))
        );
        assert_eq!(
            RecordKey::decode(&[0, 2, 0xff, 0xff]),
            Err(RecordError::InvalidLength(-1))
        );
        assert_eq!(
            RecordKey::decode(&[0, 2, 0, 1, 0xff]),
            Err(RecordError::InvalidString)
        );
    }

    #[test]
    fn offset_value_round_trip_and_truncation() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 5,
            metadata: "meta".into(),
            commit_timestamp: 99,
            expire_timestamp: None,
        };
        let enc = v.encode();
        assert_eq!(OffsetCommitValue::decode(&enc), Ok(v));
        for cut in 0..enc.len() {
            assert_eq!(
                OffsetCommitValue::decode(&enc[..cut]),
                Err(RecordError::Truncated)
            );
        }
    }

    #[test]
    fn offset_value_old_versions() {
        let mut v1 = BytesMut::new();
        v1.put_i16(1);
        v1.put_i64(10);
        put_string(&mut v1, "m");
        v1.put_i64(20);
        v1.put_i64(30);
        assert_eq!(
            OffsetCommitValue::decode(&v1),
            Ok(OffsetCommitValue {
                offset: 10,
                leader_epoch: -1,
                metadata: "m".into(),
                commit_timestamp: 20,
                expire_timestamp: Some(30),
            })
        );
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        v0.put_i64(10);
        put_string(&mut v0, "");
        v0.put_i64(20);
        let got = OffsetCommitValue::decode(&v0);
        assert_eq!(got.map(|v| (v.offset, v.commit_timestamp)), Ok((10, 20)));
    }

    #[test]
    fn group_value_round_trip_and_truncation() {
        let v = sample_group();
        let enc = v.encode();
        assert_eq!(GroupMetadataValue::decode(&enc), Ok(v));
        for cut in 0..enc.len() {
            assert_eq!(
                GroupMetadataValue::decode(&enc[..cut]),
                Err(RecordError::Truncated),
                "cut {cut}"
            );
        }
        let empty = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 2,
            protocol: None,
            leader: None,
            current_state_timestamp: -1,
            members: vec![],
        };
        assert_eq!(GroupMetadataValue::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn group_value_version_1() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        put_string(&mut b, "consumer");
        b.put_i32(3);
        put_nullable_string(&mut b, Some("range"));
        put_nullable_string(&mut b, Some("m"));
        b.put_i32(1);
        put_string(&mut b, "m");
        put_string(&mut b, "cid");
        put_string(&mut b, "host");
        b.put_i32(100);
        b.put_i32(200);
        put_bytes(&mut b, b"s");
        put_bytes(&mut b, b"a");
        let v = GroupMetadataValue::decode(&b);
        let v = v.as_ref().map(|v| {
            (
                v.generation,
                v.current_state_timestamp,
                v.members[0].rebalance_timeout_ms,
                v.members[0].session_timeout_ms,
                v.members[0].group_instance_id.clone(),
            )
        });
        assert_eq!(v, Ok((3, -1, 100, 200, None)));
    }
}
