//! Metadata records and their encoding.
//!
//! A record value is framed as Kafka frames metadata records: `uvarint frame_version (1)`,
//! `uvarint api_key`, `uvarint version`, then the body in Kafka's flexible encoding (compact
//! strings and arrays, a trailing tagged-field section). The api keys and field order follow
//! Kafka's metadata record schemas. Records travel in ordinary record batches (key null)
//! in the `__cluster_metadata` log.
//!
//! Every record is written at version 0 except `RegisterBrokerRecord` (version 3, the one
//! Kafka writes from metadata.version 3.7-IV2 on: `IsMigratingZkBroker`,
//! `InControlledShutdown` and the tagged `LogDirs`) and `BrokerRegistrationChangeRecord`
//! (version 2, so every tagged field it can carry is defined). Those two are also read at
//! their older versions, which Kafka-written logs may hold.
//!
//! `PartitionRecord` and `PartitionChangeRecord` are written and read at version 0: krust
//! does not assign replicas to log directories (KIP-858, version 1's `Directories`) nor
//! track eligible leader replicas (KIP-966, version 2's `EligibleLeaderReplicas` and
//! `LastKnownElr`). Version 0 carries everything else, including the tagged
//! `LeaderRecoveryState` of KIP-704. The later versions' extra tags are unknown at version 0
//! and skipped, as Kafka skips unknown tags.

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

/// Kafka's leader id for "no leader" (`LeaderConstants.NO_LEADER`).
pub const NO_LEADER: i32 = -1;
/// Kafka's leader id in a `PartitionChangeRecord` for "the leader did not change"
/// (`LeaderConstants.NO_LEADER_CHANGE`).
pub const NO_LEADER_CHANGE: i32 = -2;

/// Whether a partition's leader is recovering from an unclean election (KIP-704).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LeaderRecoveryState {
    /// The leader was elected from the ISR, or has recovered from an unclean election (0).
    #[default]
    Recovered,
    /// The leader was elected by an unclean election and is still recovering (1).
    Recovering,
}

impl LeaderRecoveryState {
    /// Kafka's wire value.
    pub fn value(self) -> i8 {
        match self {
            LeaderRecoveryState::Recovered => 0,
            LeaderRecoveryState::Recovering => 1,
        }
    }

    /// The state for a wire value; `None` for a value Kafka does not define (including
    /// `PartitionChangeRecord`'s -1, "no change").
    pub fn from_value(value: i8) -> Option<LeaderRecoveryState> {
        match value {
            0 => Some(LeaderRecoveryState::Recovered),
            1 => Some(LeaderRecoveryState::Recovering),
            _ => None,
        }
    }
}

/// One partition's full state (`PartitionRecord`, api key 3, version 0), as written when a
/// partition is created and in snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    /// The partition index.
    pub partition_id: i32,
    /// The topic's id.
    pub topic_id: Uuid,
    /// The replicas, in preferred order.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas being removed by a reassignment (Kafka's null is read as empty).
    pub removing_replicas: Vec<i32>,
    /// Replicas being added by a reassignment (Kafka's null is read as empty).
    pub adding_replicas: Vec<i32>,
    /// The leader, or [`NO_LEADER`].
    pub leader: i32,
    /// Whether the leader is recovering from an unclean election (tagged field 0; left out
    /// when `Recovered`).
    pub leader_recovery_state: LeaderRecoveryState,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The partition epoch: bumped by every change to the partition.
    pub partition_epoch: i32,
}

/// A change to one partition (`PartitionChangeRecord`, api key 5, written at version 0).
/// Every field but the ids is tagged and left out when it did not change: `None` (or
/// [`NO_LEADER_CHANGE`] for the leader) means "unchanged".
///
/// Applying one bumps the partition epoch; a leader other than [`NO_LEADER_CHANGE`] also
/// bumps the leader epoch, even when it names the current leader (Kafka uses that to force
/// a leader epoch bump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    /// The partition index.
    pub partition_id: i32,
    /// The topic's id.
    pub topic_id: Uuid,
    /// The new ISR (tag 0).
    pub isr: Option<Vec<i32>>,
    /// The new leader (tag 1): [`NO_LEADER`] for none, [`NO_LEADER_CHANGE`] for no change.
    pub leader: i32,
    /// The new replicas (tag 2).
    pub replicas: Option<Vec<i32>>,
    /// The new removing replicas (tag 3).
    pub removing_replicas: Option<Vec<i32>>,
    /// The new adding replicas (tag 4).
    pub adding_replicas: Option<Vec<i32>>,
    /// The new leader recovery state (tag 5; Kafka's -1 is `None`).
    pub leader_recovery_state: Option<LeaderRecoveryState>,
}

impl PartitionChangeRecord {
    /// A change of nothing to a partition; set the fields that change.
    pub fn new(topic_id: Uuid, partition_id: i32) -> PartitionChangeRecord {
        PartitionChangeRecord {
            partition_id,
            topic_id,
            isr: None,
            leader: NO_LEADER_CHANGE,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
            leader_recovery_state: None,
        }
    }

    /// Whether the record changes nothing (Kafka never writes such a record).
    pub fn is_noop(&self) -> bool {
        self.isr.is_none()
            && self.leader == NO_LEADER_CHANGE
            && self.replicas.is_none()
            && self.removing_replicas.is_none()
            && self.adding_replicas.is_none()
            && self.leader_recovery_state.is_none()
    }
}

/// A listener a broker accepts connections on (`RegisterBrokerRecord.EndPoints`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// The listener name, e.g. `PLAINTEXT`.
    pub name: String,
    /// The host clients connect to.
    pub host: String,
    /// The port clients connect to.
    pub port: u16,
    /// Kafka's security protocol id (0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL).
    pub security_protocol: i16,
}

/// A feature version range a broker supports (`RegisterBrokerRecord.Features`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFeature {
    /// The feature name, e.g. `metadata.version`.
    pub name: String,
    /// The lowest level the broker supports.
    pub min_supported_version: i16,
    /// The highest level the broker supports.
    pub max_supported_version: i16,
}

/// A broker's registration (`RegisterBrokerRecord`, api key 0, written at version 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    /// The broker id.
    pub broker_id: i32,
    /// A ZooKeeper broker in migration mode (version 2+; krust never registers one).
    pub is_migrating_zk_broker: bool,
    /// The id of this run of the broker process.
    pub incarnation_id: Uuid,
    /// The broker epoch: the offset of the record that first registered this incarnation.
    pub broker_epoch: i64,
    /// The listeners the broker can be reached on.
    pub endpoints: Vec<BrokerEndpoint>,
    /// The feature ranges the broker supports.
    pub features: Vec<BrokerFeature>,
    /// The broker rack, if any.
    pub rack: Option<String>,
    /// Whether the broker is fenced (a new registration always is).
    pub fenced: bool,
    /// Whether the broker is in controlled shutdown (version 1+).
    pub in_controlled_shutdown: bool,
    /// The broker's online log directory ids (tagged field 0, version 3+; empty = none).
    pub log_dirs: Vec<Uuid>,
}

/// The `Fenced` field of `BrokerRegistrationChangeRecord`: Kafka writes 1 to fence, 0 for
/// no change and -1 to unfence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerFencingChange {
    /// The broker becomes fenced (1).
    Fence,
    /// The fencing state is unchanged (0).
    NoChange,
    /// The broker becomes unfenced (-1).
    Unfence,
}

impl BrokerFencingChange {
    /// Kafka's wire value.
    pub fn value(self) -> i8 {
        match self {
            BrokerFencingChange::Fence => 1,
            BrokerFencingChange::NoChange => 0,
            BrokerFencingChange::Unfence => -1,
        }
    }

    /// The change for a wire value; `None` for a value Kafka does not define.
    pub fn from_value(value: i8) -> Option<BrokerFencingChange> {
        match value {
            1 => Some(BrokerFencingChange::Fence),
            0 => Some(BrokerFencingChange::NoChange),
            -1 => Some(BrokerFencingChange::Unfence),
            _ => None,
        }
    }
}

/// Every kind of metadata record krust writes.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataRecord {
    /// A finalized feature level (api key 12), e.g. `metadata.version`.
    FeatureLevel { name: String, level: i16 },
    /// A topic came into being (api key 2).
    Topic { name: String, topic_id: Uuid },
    /// A partition of a topic, with its replicas and leadership (api key 3).
    Partition(PartitionRecord),
    /// A change to a partition's ISR, leadership or replicas (api key 5).
    PartitionChange(PartitionChangeRecord),
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
    /// The records up to the matching [`MetadataRecord::EndTransaction`] are one decision,
    /// applied all at once or (after [`MetadataRecord::AbortTransaction`]) not at all
    /// (api key 23, KIP-868; read at api key 22 from logs of krust before 0.1, where it was
    /// written there by mistake, when its body is an empty tag section).
    BeginTransaction { name: Option<String> },
    /// The end of a transaction begun earlier (api key 24).
    EndTransaction,
    /// The transaction begun earlier is abandoned: its records are not applied (api key 25).
    AbortTransaction { reason: Option<String> },
    /// A user's SCRAM credential for one mechanism (api key 11), replacing any earlier one.
    /// `mechanism` is Kafka's ScramMechanism type (1 = SHA-256, 2 = SHA-512).
    UserScramCredential {
        name: String,
        mechanism: i8,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    /// A user's SCRAM credential for one mechanism is removed (api key 22).
    RemoveUserScramCredential { name: String, mechanism: i8 },
    /// A client quota of an entity set, or removed (api key 14). The entity is its
    /// (type, name) parts, `user` and/or `client-id`, or `ip`; a `None` name is the
    /// type's default.
    ClientQuota {
        entity: Vec<(String, Option<String>)>,
        key: String,
        value: f64,
        remove: bool,
    },
    /// An ACL is created (api key 18).
    AccessControlEntry { id: Uuid, acl: crate::acl::Acl },
    /// An ACL is removed (api key 19).
    RemoveAccessControlEntry { id: Uuid },
    /// A broker registered, or amended its registration (api key 0). It replaces any
    /// earlier registration of the same broker id.
    RegisterBroker(RegisterBrokerRecord),
    /// A broker's registration is removed (api key 1); the epoch must match it.
    UnregisterBroker { broker_id: i32, broker_epoch: i64 },
    /// A broker is fenced (api key 7). Kafka writes `BrokerRegistrationChange` instead from
    /// metadata.version 3.3-IV2 on, and so does krust; this is read for older logs.
    FenceBroker { id: i32, epoch: i64 },
    /// A broker is unfenced (api key 8). Read for older logs, like `FenceBroker`.
    UnfenceBroker { id: i32, epoch: i64 },
    /// A change to a broker's registration (api key 17, written at version 2): its fencing
    /// (tagged field 0), entry into controlled shutdown (tagged field 1, `true` = Kafka's 1;
    /// there is no way out but re-registering), and its online log directories (tagged
    /// field 2; empty means unchanged).
    BrokerRegistrationChange {
        broker_id: i32,
        broker_epoch: i64,
        fenced: BrokerFencingChange,
        in_controlled_shutdown: bool,
        log_dirs: Vec<Uuid>,
    },
}

/// The highest version of each record type krust reads; `None` for an unknown api key.
fn max_version(api_key: u64) -> Option<u64> {
    match api_key {
        0 => Some(3),
        17 => Some(2),
        1 | 2 | 3 | 4 | 5 | 7 | 8 | 9 | 11 | 12 | 14 | 15 | 18 | 19 | 20 | 22 | 23 | 24 | 25 => {
            Some(0)
        }
        _ => None,
    }
}

/// Decodes a compact array of structs that may not be null.
fn get_struct_array<'a, T>(
    b: &mut &'a [u8],
    min_element_size: usize,
    mut element: impl FnMut(&mut &'a [u8]) -> Result<T, RecordError>,
) -> Result<Vec<T>, RecordError> {
    let len = get_compact_len(b, min_element_size)?
        .ok_or(RecordError::Malformed("null array in a required field"))?;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(element(b)?);
    }
    Ok(out)
}

/// Decodes one tagged field's value, which must use all of its bytes.
fn tag_value<T>(
    mut data: &[u8],
    read: impl FnOnce(&mut &[u8]) -> Result<T, RecordError>,
) -> Result<T, RecordError> {
    let v = read(&mut data)?;
    if !data.is_empty() {
        return Err(RecordError::Malformed("tagged field longer than its value"));
    }
    Ok(v)
}

fn get_required_uuids(b: &mut &[u8]) -> Result<Vec<Uuid>, RecordError> {
    get_compact_uuids(b)?.ok_or(RecordError::Malformed("null array in a required field"))
}

fn i32s_bytes(v: &[i32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 4 * v.len());
    put_compact_i32s(&mut out, Some(v));
    out
}

fn uuids_bytes(ids: &[Uuid]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + 16 * ids.len());
    put_compact_uuids(&mut v, ids);
    v
}

fn decode_register_broker(
    b: &mut &[u8],
    version: u64,
) -> Result<RegisterBrokerRecord, RecordError> {
    Ok(RegisterBrokerRecord {
        broker_id: get_i32(b)?,
        is_migrating_zk_broker: if version >= 2 { get_bool(b)? } else { false },
        incarnation_id: get_uuid(b)?,
        broker_epoch: get_i64(b)?,
        // Smallest element: two empty strings (1 byte each), port, protocol, no tags.
        endpoints: get_struct_array(b, 7, |b| {
            let e = BrokerEndpoint {
                name: get_required_str(b)?,
                host: get_required_str(b)?,
                port: get_u16(b)?,
                security_protocol: get_i16(b)?,
            };
            skip_tags(b)?;
            Ok(e)
        })?,
        features: get_struct_array(b, 6, |b| {
            let f = BrokerFeature {
                name: get_required_str(b)?,
                min_supported_version: get_i16(b)?,
                max_supported_version: get_i16(b)?,
            };
            skip_tags(b)?;
            Ok(f)
        })?,
        rack: get_compact_str(b)?,
        fenced: get_bool(b)?,
        in_controlled_shutdown: if version >= 1 { get_bool(b)? } else { false },
        log_dirs: Vec::new(),
    })
}

impl MetadataRecord {
    /// The record of `name`'s SCRAM credential for one mechanism (Kafka's ScramMechanism
    /// type).
    pub fn user_scram_credential(
        name: &str,
        mechanism: i8,
        c: &krust_protocol::sasl::ScramCredential,
    ) -> MetadataRecord {
        MetadataRecord::UserScramCredential {
            name: name.to_string(),
            mechanism,
            salt: c.salt.clone(),
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
            iterations: c.iterations,
        }
    }

    /// Kafka's api key for this record type.
    pub fn api_key(&self) -> u64 {
        match self {
            MetadataRecord::Topic { .. } => 2,
            MetadataRecord::Partition(_) => 3,
            MetadataRecord::PartitionChange(_) => 5,
            MetadataRecord::Config { .. } => 4,
            MetadataRecord::RemoveTopic { .. } => 9,
            MetadataRecord::FeatureLevel { .. } => 12,
            MetadataRecord::ProducerIds { .. } => 15,
            MetadataRecord::NoOp => 20,
            MetadataRecord::UserScramCredential { .. } => 11,
            MetadataRecord::RemoveUserScramCredential { .. } => 22,
            MetadataRecord::ClientQuota { .. } => 14,
            MetadataRecord::AccessControlEntry { .. } => 18,
            MetadataRecord::RemoveAccessControlEntry { .. } => 19,
            MetadataRecord::BeginTransaction { .. } => 23,
            MetadataRecord::EndTransaction => 24,
            MetadataRecord::AbortTransaction { .. } => 25,
            MetadataRecord::RegisterBroker(_) => 0,
            MetadataRecord::UnregisterBroker { .. } => 1,
            MetadataRecord::FenceBroker { .. } => 7,
            MetadataRecord::UnfenceBroker { .. } => 8,
            MetadataRecord::BrokerRegistrationChange { .. } => 17,
        }
    }

    /// The version this record type is written at.
    pub fn version(&self) -> u64 {
        match self {
            MetadataRecord::RegisterBroker(_) => 3,
            MetadataRecord::BrokerRegistrationChange { .. } => 2,
            _ => 0,
        }
    }

    /// The tagged fields this record carries, as (tag, value bytes) in tag order. Like
    /// Kafka, a field at its default value is left out.
    fn tagged_fields(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        match self {
            MetadataRecord::RegisterBroker(r) if !r.log_dirs.is_empty() => {
                out.push((0, uuids_bytes(&r.log_dirs)));
            }
            MetadataRecord::Partition(p)
                if p.leader_recovery_state != LeaderRecoveryState::Recovered =>
            {
                out.push((0, vec![p.leader_recovery_state.value() as u8]));
            }
            MetadataRecord::PartitionChange(c) => {
                let arrays = [
                    (0, &c.isr),
                    (2, &c.replicas),
                    (3, &c.removing_replicas),
                    (4, &c.adding_replicas),
                ];
                for (tag, v) in arrays {
                    if let Some(v) = v {
                        out.push((tag, i32s_bytes(v)));
                    }
                }
                if c.leader != NO_LEADER_CHANGE {
                    out.push((1, c.leader.to_be_bytes().to_vec()));
                }
                if let Some(s) = c.leader_recovery_state {
                    out.push((5, vec![s.value() as u8]));
                }
                out.sort_by_key(|(tag, _)| *tag);
            }
            MetadataRecord::BeginTransaction { name: Some(text) }
            | MetadataRecord::AbortTransaction { reason: Some(text) } => {
                let mut v = Vec::new();
                put_compact_str(&mut v, Some(text));
                out.push((0, v));
            }
            MetadataRecord::BrokerRegistrationChange {
                fenced,
                in_controlled_shutdown,
                log_dirs,
                ..
            } => {
                if *fenced != BrokerFencingChange::NoChange {
                    out.push((0, fenced.value().to_be_bytes().to_vec()));
                }
                if *in_controlled_shutdown {
                    out.push((1, vec![1]));
                }
                if !log_dirs.is_empty() {
                    out.push((2, uuids_bytes(log_dirs)));
                }
            }
            _ => {}
        }
        out
    }

    /// Applies one tagged field read at `version`; tags the version does not define are
    /// ignored, as Kafka ignores unknown tags.
    fn read_tag(&mut self, version: u64, tag: u64, data: &[u8]) -> Result<(), RecordError> {
        match self {
            MetadataRecord::RegisterBroker(r) if version >= 3 && tag == 0 => {
                r.log_dirs = tag_value(data, get_required_uuids)?;
            }
            MetadataRecord::BeginTransaction { name: text }
            | MetadataRecord::AbortTransaction { reason: text }
                if tag == 0 =>
            {
                *text = tag_value(data, |b| get_compact_str(b))?;
            }
            MetadataRecord::Partition(p) if tag == 0 => {
                p.leader_recovery_state =
                    LeaderRecoveryState::from_value(tag_value(data, |b| get_i8(b))?)
                        .ok_or(RecordError::Malformed("unknown leader recovery state"))?;
            }
            MetadataRecord::PartitionChange(c) => match tag {
                0 => c.isr = tag_value(data, |b| get_compact_i32s(b))?,
                1 => c.leader = tag_value(data, |b| get_i32(b))?,
                2 => c.replicas = tag_value(data, |b| get_compact_i32s(b))?,
                3 => c.removing_replicas = tag_value(data, |b| get_compact_i32s(b))?,
                4 => c.adding_replicas = tag_value(data, |b| get_compact_i32s(b))?,
                5 => {
                    c.leader_recovery_state = match tag_value(data, |b| get_i8(b))? {
                        -1 => None,
                        v => Some(
                            LeaderRecoveryState::from_value(v)
                                .ok_or(RecordError::Malformed("unknown leader recovery state"))?,
                        ),
                    };
                }
                _ => {}
            },
            MetadataRecord::BrokerRegistrationChange {
                fenced,
                in_controlled_shutdown,
                log_dirs,
                ..
            } => match tag {
                0 => {
                    let v = tag_value(data, |b| get_i8(b))?;
                    *fenced = BrokerFencingChange::from_value(v)
                        .ok_or(RecordError::Malformed("unknown fencing change"))?;
                }
                1 if version >= 1 => {
                    *in_controlled_shutdown = match tag_value(data, |b| get_i8(b))? {
                        0 => false,
                        1 => true,
                        _ => {
                            return Err(RecordError::Malformed(
                                "unknown controlled shutdown change",
                            ))
                        }
                    };
                }
                2 if version >= 2 => *log_dirs = tag_value(data, get_required_uuids)?,
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    /// Encodes the record value (frame header and body).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        put_uvarint(&mut b, FRAME_VERSION);
        put_uvarint(&mut b, self.api_key());
        put_uvarint(&mut b, self.version());
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
            MetadataRecord::PartitionChange(c) => {
                b.put_i32(c.partition_id);
                put_uuid(&mut b, &c.topic_id);
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
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                put_compact_str(&mut b, Some(name));
                b.put_i8(*mechanism);
                put_compact_bytes(&mut b, salt);
                put_compact_bytes(&mut b, stored_key);
                put_compact_bytes(&mut b, server_key);
                b.put_i32(*iterations);
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                put_compact_str(&mut b, Some(name));
                b.put_i8(*mechanism);
            }
            MetadataRecord::AccessControlEntry { id, acl } => {
                put_uuid(&mut b, id);
                b.put_i8(acl.resource_type);
                put_compact_str(&mut b, Some(&acl.resource_name));
                b.put_i8(acl.pattern_type);
                put_compact_str(&mut b, Some(&acl.principal));
                put_compact_str(&mut b, Some(&acl.host));
                b.put_i8(acl.operation);
                b.put_i8(acl.permission);
            }
            MetadataRecord::RemoveAccessControlEntry { id } => put_uuid(&mut b, id),
            MetadataRecord::ClientQuota {
                entity,
                key,
                value,
                remove,
            } => {
                put_uvarint(&mut b, entity.len() as u64 + 1);
                for (t, n) in entity {
                    put_compact_str(&mut b, Some(t));
                    put_compact_str(&mut b, n.as_deref());
                    put_no_tags(&mut b);
                }
                put_compact_str(&mut b, Some(key));
                b.put_f64(*value);
                b.put_u8(u8::from(*remove));
            }
            MetadataRecord::NoOp
            | MetadataRecord::BeginTransaction { .. }
            | MetadataRecord::EndTransaction
            | MetadataRecord::AbortTransaction { .. } => {}
            MetadataRecord::RegisterBroker(r) => {
                b.put_i32(r.broker_id);
                b.put_u8(u8::from(r.is_migrating_zk_broker));
                put_uuid(&mut b, &r.incarnation_id);
                b.put_i64(r.broker_epoch);
                put_uvarint(&mut b, r.endpoints.len() as u64 + 1);
                for e in &r.endpoints {
                    put_compact_str(&mut b, Some(&e.name));
                    put_compact_str(&mut b, Some(&e.host));
                    b.put_u16(e.port);
                    b.put_i16(e.security_protocol);
                    put_no_tags(&mut b);
                }
                put_uvarint(&mut b, r.features.len() as u64 + 1);
                for f in &r.features {
                    put_compact_str(&mut b, Some(&f.name));
                    b.put_i16(f.min_supported_version);
                    b.put_i16(f.max_supported_version);
                    put_no_tags(&mut b);
                }
                put_compact_str(&mut b, r.rack.as_deref());
                b.put_u8(u8::from(r.fenced));
                b.put_u8(u8::from(r.in_controlled_shutdown));
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            }
            | MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch,
                ..
            } => {
                b.put_i32(*broker_id);
                b.put_i64(*broker_epoch);
            }
            MetadataRecord::FenceBroker { id, epoch }
            | MetadataRecord::UnfenceBroker { id, epoch } => {
                b.put_i32(*id);
                b.put_i64(*epoch);
            }
        }
        put_tags(&mut b, &self.tagged_fields());
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
        match max_version(api_key) {
            Some(max) if version <= max => {}
            _ => return Err(RecordError::Unsupported { api_key, version }),
        }
        let mut rec = match api_key {
            0 => MetadataRecord::RegisterBroker(decode_register_broker(b, version)?),
            1 => MetadataRecord::UnregisterBroker {
                broker_id: get_i32(b)?,
                broker_epoch: get_i64(b)?,
            },
            7 => MetadataRecord::FenceBroker {
                id: get_i32(b)?,
                epoch: get_i64(b)?,
            },
            8 => MetadataRecord::UnfenceBroker {
                id: get_i32(b)?,
                epoch: get_i64(b)?,
            },
            17 => MetadataRecord::BrokerRegistrationChange {
                broker_id: get_i32(b)?,
                broker_epoch: get_i64(b)?,
                fenced: BrokerFencingChange::NoChange,
                in_controlled_shutdown: false,
                log_dirs: Vec::new(),
            },
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
                leader_recovery_state: LeaderRecoveryState::Recovered,
                leader_epoch: get_i32(b)?,
                partition_epoch: get_i32(b)?,
            }),
            5 => {
                let partition_id = get_i32(b)?;
                let topic_id = get_uuid(b)?;
                MetadataRecord::PartitionChange(PartitionChangeRecord::new(topic_id, partition_id))
            }
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
            11 => MetadataRecord::UserScramCredential {
                name: get_required_str(b)?,
                mechanism: get_i8(b)?,
                salt: get_required_bytes(b)?,
                stored_key: get_required_bytes(b)?,
                server_key: get_required_bytes(b)?,
                iterations: get_i32(b)?,
            },
            // An empty tag section alone: a BeginTransaction of an earlier krust.
            22 if b.len() == 1 && b[0] == 0 => MetadataRecord::BeginTransaction { name: None },
            22 => MetadataRecord::RemoveUserScramCredential {
                name: get_required_str(b)?,
                mechanism: get_i8(b)?,
            },
            18 => MetadataRecord::AccessControlEntry {
                id: get_uuid(b)?,
                acl: crate::acl::Acl {
                    resource_type: get_i8(b)?,
                    resource_name: get_required_str(b)?,
                    pattern_type: get_i8(b)?,
                    principal: get_required_str(b)?,
                    host: get_required_str(b)?,
                    operation: get_i8(b)?,
                    permission: get_i8(b)?,
                },
            },
            19 => MetadataRecord::RemoveAccessControlEntry { id: get_uuid(b)? },
            14 => MetadataRecord::ClientQuota {
                entity: get_struct_array(b, 3, |b| {
                    let e = (get_required_str(b)?, get_compact_str(b)?);
                    skip_tags(b)?;
                    Ok(e)
                })?,
                key: get_required_str(b)?,
                value: get_f64(b)?,
                remove: get_bool(b)?,
            },
            23 => MetadataRecord::BeginTransaction { name: None },
            24 => MetadataRecord::EndTransaction,
            25 => MetadataRecord::AbortTransaction { reason: None },
            _ => return Err(RecordError::Unsupported { api_key, version }),
        };
        for (tag, data) in get_tags(b)? {
            rec.read_tag(version, tag, &data)?;
        }
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
                leader_recovery_state: LeaderRecoveryState::Recovered,
                leader_epoch: 0,
                partition_epoch: 0,
            }),
            MetadataRecord::Partition(PartitionRecord {
                partition_id: 0,
                topic_id: id,
                replicas: vec![3, 1, 2],
                isr: vec![3],
                removing_replicas: vec![2],
                adding_replicas: vec![1],
                leader: 3,
                leader_recovery_state: LeaderRecoveryState::Recovering,
                leader_epoch: 4,
                partition_epoch: 9,
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord::new(id, 1)),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                isr: Some(vec![2, 1]),
                leader: 2,
                ..PartitionChangeRecord::new(id, 1)
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                leader: NO_LEADER,
                ..PartitionChangeRecord::new(id, 7)
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                isr: Some(vec![]),
                leader: 3,
                replicas: Some(vec![3, 1, 2]),
                removing_replicas: Some(vec![2]),
                adding_replicas: Some(vec![]),
                leader_recovery_state: Some(LeaderRecoveryState::Recovering),
                ..PartitionChangeRecord::new(id, 0)
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                leader_recovery_state: Some(LeaderRecoveryState::Recovered),
                ..PartitionChangeRecord::new(id, 0)
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
            MetadataRecord::BeginTransaction {
                name: Some("create topics".into()),
            },
            MetadataRecord::BeginTransaction { name: None },
            MetadataRecord::EndTransaction,
            MetadataRecord::AbortTransaction {
                reason: Some("leader changed".into()),
            },
            MetadataRecord::UserScramCredential {
                name: "alice".into(),
                mechanism: 2,
                salt: vec![1, 2, 3],
                stored_key: vec![4; 64],
                server_key: vec![5; 64],
                iterations: 8192,
            },
            MetadataRecord::RemoveUserScramCredential {
                name: "alice".into(),
                mechanism: 1,
            },
            MetadataRecord::AccessControlEntry {
                id: Uuid::from_u128(0xac1),
                acl: crate::acl::Acl {
                    resource_type: 2,
                    resource_name: "orders".into(),
                    pattern_type: 4,
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: 3,
                    permission: 3,
                },
            },
            MetadataRecord::RemoveAccessControlEntry {
                id: Uuid::from_u128(0xac1),
            },
            MetadataRecord::ClientQuota {
                entity: vec![
                    ("user".into(), Some("alice".into())),
                    ("client-id".into(), None),
                ],
                key: "producer_byte_rate".into(),
                value: 1024.0,
                remove: false,
            },
            MetadataRecord::ClientQuota {
                entity: vec![("ip".into(), None)],
                key: "connection_creation_rate".into(),
                value: 0.0,
                remove: true,
            },
            MetadataRecord::RegisterBroker(register(vec![Uuid::from_u128(0xab)], Some("r1"))),
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                endpoints: vec![],
                features: vec![],
                in_controlled_shutdown: true,
                fenced: false,
                is_migrating_zk_broker: true,
                ..register(vec![], None)
            }),
            MetadataRecord::UnregisterBroker {
                broker_id: 1,
                broker_epoch: 7,
            },
            MetadataRecord::FenceBroker { id: 1, epoch: 7 },
            MetadataRecord::UnfenceBroker { id: 1, epoch: 7 },
            change(BrokerFencingChange::Fence, false, vec![]),
            change(BrokerFencingChange::Unfence, false, vec![]),
            change(BrokerFencingChange::NoChange, true, vec![]),
            change(BrokerFencingChange::NoChange, false, vec![]),
            change(
                BrokerFencingChange::Fence,
                true,
                vec![Uuid::from_u128(0xab), Uuid::from_u128(0xcd)],
            ),
        ]
    }

    fn register(log_dirs: Vec<Uuid>, rack: Option<&str>) -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: 1,
            is_migrating_zk_broker: false,
            incarnation_id: Uuid::from_u128(5),
            broker_epoch: 7,
            endpoints: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "h".into(),
                port: 9092,
                security_protocol: 0,
            }],
            features: vec![BrokerFeature {
                name: "metadata.version".into(),
                min_supported_version: 1,
                max_supported_version: 27,
            }],
            rack: rack.map(String::from),
            fenced: true,
            in_controlled_shutdown: false,
            log_dirs,
        }
    }

    fn change(
        fenced: BrokerFencingChange,
        in_controlled_shutdown: bool,
        log_dirs: Vec<Uuid>,
    ) -> MetadataRecord {
        MetadataRecord::BrokerRegistrationChange {
            broker_id: 2,
            broker_epoch: 9,
            fenced,
            in_controlled_shutdown,
            log_dirs,
        }
    }

    fn uuid_bytes(last: u8) -> Vec<u8> {
        let mut v = vec![0; 15];
        v.push(last);
        v
    }

    /// A tiny deterministic generator, so the garbage tests are reproducible.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn every_record_round_trips() {
        for r in all() {
            assert_eq!(MetadataRecord::decode(&r.encode()).as_ref(), Ok(&r));
        }
    }

    #[test]
    fn begin_transaction_is_read_at_its_earlier_key() {
        // Kafka's key is 23; an earlier krust wrote it at 22 (RemoveUserScramCredential's).
        assert_eq!(
            MetadataRecord::BeginTransaction { name: None }.encode()[..2],
            [1, 23]
        );
        assert_eq!(
            MetadataRecord::decode(&[1, 22, 0, 0]),
            Ok(MetadataRecord::BeginTransaction { name: None })
        );
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
    fn broker_records_have_kafkas_layout() {
        // RegisterBrokerRecord v3: fixed fields, the endpoint and feature structs each with
        // an empty tag section, then LogDirs as tagged field 0.
        let mut want = vec![1, 0, 3];
        want.extend([0, 0, 0, 1, 0]);
        want.extend(uuid_bytes(5));
        want.extend([0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend([2, 10]);
        want.extend(b"PLAINTEXT");
        want.extend([2, b'h', 0x23, 0x84, 0, 0, 0]);
        want.extend([2, 17]);
        want.extend(b"metadata.version");
        want.extend([0, 1, 0, 27, 0]);
        want.extend([2, b'r', 1, 0]);
        want.extend([1, 0, 17, 2]);
        want.extend(uuid_bytes(0xab));
        let r = MetadataRecord::RegisterBroker(register(vec![Uuid::from_u128(0xab)], Some("r")));
        assert_eq!(r.encode().to_vec(), want);

        // BrokerRegistrationChangeRecord v2: Fenced (-1 = unfence) and InControlledShutdown
        // are tagged fields 0 and 1.
        let r = change(BrokerFencingChange::Unfence, true, vec![]);
        let mut want = vec![1, 17, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        want.extend([2, 0, 1, 0xff, 1, 1, 1]);
        assert_eq!(r.encode().to_vec(), want);
        let r = change(BrokerFencingChange::Fence, false, vec![]);
        assert_eq!(
            r.encode().to_vec(),
            vec![1, 17, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9, 1, 0, 1, 1]
        );

        let r = MetadataRecord::FenceBroker { id: 3, epoch: 4 };
        assert_eq!(
            r.encode().to_vec(),
            vec![1, 7, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0]
        );
        let r = MetadataRecord::UnfenceBroker { id: 3, epoch: 4 };
        assert_eq!(r.encode()[1], 8);
        let r = MetadataRecord::UnregisterBroker {
            broker_id: 3,
            broker_epoch: 4,
        };
        assert_eq!(r.encode()[1], 1);
    }

    #[test]
    fn partition_records_have_kafkas_layout() {
        let id = Uuid::from_u128(0x1234);
        let mut uuid = vec![0; 14];
        uuid.extend([0x12, 0x34]);

        // PartitionRecord v0: LeaderRecoveryState is tagged field 0, left out at 0.
        let mut p = PartitionRecord {
            partition_id: 2,
            topic_id: id,
            replicas: vec![1, 2],
            isr: vec![1],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 1,
            leader_recovery_state: LeaderRecoveryState::Recovered,
            leader_epoch: 5,
            partition_epoch: 6,
        };
        let mut want = vec![1, 3, 0, 0, 0, 0, 2];
        want.extend(&uuid);
        want.extend([3, 0, 0, 0, 1, 0, 0, 0, 2]); // replicas
        want.extend([2, 0, 0, 0, 1]); // isr
        want.extend([1, 1]); // removing, adding
        want.extend([0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 6]); // leader, epochs
        let mut recovered = want.clone();
        recovered.push(0);
        assert_eq!(
            MetadataRecord::Partition(p.clone()).encode().to_vec(),
            recovered
        );
        p.leader_recovery_state = LeaderRecoveryState::Recovering;
        want.extend([1, 0, 1, 1]);
        assert_eq!(MetadataRecord::Partition(p.clone()).encode().to_vec(), want);
        assert_eq!(
            MetadataRecord::decode(&want),
            Ok(MetadataRecord::Partition(p))
        );

        // PartitionChangeRecord v0: only PartitionId and TopicId are fixed; the rest are
        // tags in ascending order, each left out when unchanged.
        let c = PartitionChangeRecord {
            isr: Some(vec![2, 3]),
            leader: 2,
            leader_recovery_state: Some(LeaderRecoveryState::Recovered),
            ..PartitionChangeRecord::new(id, 3)
        };
        let mut want = vec![1, 5, 0, 0, 0, 0, 3];
        want.extend(&uuid);
        want.push(3); // three tags
        want.extend([0, 9, 3, 0, 0, 0, 2, 0, 0, 0, 3]); // Isr
        want.extend([1, 4, 0, 0, 0, 2]); // Leader
        want.extend([5, 1, 0]); // LeaderRecoveryState
        assert_eq!(
            MetadataRecord::PartitionChange(c.clone()).encode().to_vec(),
            want
        );
        assert_eq!(
            MetadataRecord::decode(&want),
            Ok(MetadataRecord::PartitionChange(c))
        );

        // No leader: -1 is written; -2 (no change) is left out.
        let c = PartitionChangeRecord {
            leader: NO_LEADER,
            ..PartitionChangeRecord::new(id, 3)
        };
        let mut want = vec![1, 5, 0, 0, 0, 0, 3];
        want.extend(&uuid);
        want.extend([1, 1, 4, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(MetadataRecord::PartitionChange(c).encode().to_vec(), want);

        // Replicas, RemovingReplicas, AddingReplicas are tags 2, 3 and 4.
        let c = PartitionChangeRecord {
            replicas: Some(vec![4]),
            removing_replicas: Some(vec![]),
            adding_replicas: Some(vec![4]),
            ..PartitionChangeRecord::new(id, 0)
        };
        let mut want = vec![1, 5, 0, 0, 0, 0, 0];
        want.extend(&uuid);
        want.extend([3, 2, 5, 2, 0, 0, 0, 4, 3, 1, 1, 4, 5, 2, 0, 0, 0, 4]);
        assert_eq!(MetadataRecord::PartitionChange(c).encode().to_vec(), want);
    }

    #[test]
    fn partition_change_decoding() {
        let id = Uuid::from_u128(0x1234);
        let mut head = vec![1, 5, 0, 0, 0, 0, 3];
        head.extend(id.as_bytes());
        let with_tags = |tags: &[u8]| {
            let mut v = head.clone();
            v.extend(tags);
            MetadataRecord::decode(&v)
        };
        // Tags in any order; explicit defaults (null ISR, leader -2, recovery -1) decode
        // to "unchanged".
        assert_eq!(
            with_tags(&[3, 5, 1, 0xff, 0, 1, 0, 1, 4, 0xff, 0xff, 0xff, 0xfe]),
            Ok(MetadataRecord::PartitionChange(PartitionChangeRecord::new(
                id, 3
            )))
        );
        // Version 1 and 2 tags (Directories 8, ELR 6 and 7) are unknown at version 0.
        assert_eq!(
            with_tags(&[2, 6, 1, 1, 8, 1, 1]),
            Ok(MetadataRecord::PartitionChange(PartitionChangeRecord::new(
                id, 3
            )))
        );
        // A recovery state Kafka does not define, a short leader, a truncated ISR.
        assert!(matches!(
            with_tags(&[1, 5, 1, 2]),
            Err(RecordError::Malformed(_))
        ));
        assert_eq!(with_tags(&[1, 1, 2, 0, 0]), Err(RecordError::Truncated));
        assert!(with_tags(&[1, 0, 2, 3, 0]).is_err());
        assert_eq!(with_tags(&[]), Err(RecordError::Truncated));
        // Versions 1 and 2 are not read.
        for version in [1u8, 2] {
            assert_eq!(
                MetadataRecord::decode(&[1, 5, version, 0]),
                Err(RecordError::Unsupported {
                    api_key: 5,
                    version: version.into()
                })
            );
        }
        // A PartitionRecord with an unknown recovery state.
        let mut v = vec![1, 3, 0, 0, 0, 0, 2];
        v.extend(id.as_bytes());
        v.extend([1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 6, 1, 0, 1, 7]);
        assert!(matches!(
            MetadataRecord::decode(&v),
            Err(RecordError::Malformed(_))
        ));
    }

    #[test]
    fn older_broker_record_versions_decode() {
        // RegisterBrokerRecord v0: no IsMigratingZkBroker, no InControlledShutdown.
        let mut v0 = vec![1, 0, 0, 0, 0, 0, 1];
        v0.extend(uuid_bytes(5));
        v0.extend([0, 0, 0, 0, 0, 0, 0, 7]);
        v0.extend([1, 1, 0, 0, 0]); // no endpoints, no features, null rack, unfenced, no tags
        let want = RegisterBrokerRecord {
            endpoints: vec![],
            features: vec![],
            fenced: false,
            ..register(vec![], None)
        };
        assert_eq!(
            MetadataRecord::decode(&v0),
            Ok(MetadataRecord::RegisterBroker(want.clone()))
        );

        // v2 does not define tag 0, so a LogDirs-shaped tag is skipped as unknown.
        let mut v2 = vec![1, 0, 2, 0, 0, 0, 1, 0];
        v2.extend(uuid_bytes(5));
        v2.extend([0, 0, 0, 0, 0, 0, 0, 7]);
        v2.extend([1, 1, 0, 0, 0]);
        v2.extend([1, 0, 17, 2]);
        v2.extend(uuid_bytes(0xab));
        assert_eq!(
            MetadataRecord::decode(&v2),
            Ok(MetadataRecord::RegisterBroker(want))
        );

        // BrokerRegistrationChangeRecord v0 knows tag 0 only; tag 1 is skipped.
        let v0 = [
            1, 17, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9, 2, 0, 1, 1, 1, 1, 1,
        ];
        assert_eq!(
            MetadataRecord::decode(&v0),
            Ok(change(BrokerFencingChange::Fence, false, vec![]))
        );
    }

    #[test]
    fn bad_broker_records_are_errors() {
        let head = [1, 17, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        let with_tags = |tags: &[u8]| {
            let mut v = head.to_vec();
            v.extend(tags);
            MetadataRecord::decode(&v)
        };
        assert!(matches!(
            with_tags(&[1, 0, 1, 5]),
            Err(RecordError::Malformed(_))
        ));
        assert!(matches!(
            with_tags(&[1, 1, 1, 2]),
            Err(RecordError::Malformed(_))
        ));
        // A tagged value longer than the field.
        assert!(matches!(
            with_tags(&[1, 0, 2, 1, 0]),
            Err(RecordError::Malformed(_))
        ));
        // A null LogDirs array.
        assert!(matches!(
            with_tags(&[1, 2, 1, 0]),
            Err(RecordError::Malformed(_))
        ));
        assert_eq!(with_tags(&[1, 0, 5, 1]), Err(RecordError::Truncated));
        // Versions past the ones krust reads.
        for (api_key, version) in [(0u8, 4u8), (17, 3), (1, 1), (7, 1), (8, 1)] {
            assert_eq!(
                MetadataRecord::decode(&[1, api_key, version, 0]),
                Err(RecordError::Unsupported {
                    api_key: api_key.into(),
                    version: version.into()
                })
            );
        }
        // Array and string lengths far past the input.
        let mut v = vec![1, 0, 3, 0, 0, 0, 1, 0];
        v.extend(uuid_bytes(5));
        v.extend([0, 0, 0, 0, 0, 0, 0, 7]);
        let mut huge = v.clone();
        huge.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(MetadataRecord::decode(&huge), Err(RecordError::Truncated));
        let mut null = v.clone();
        null.push(0);
        assert!(matches!(
            MetadataRecord::decode(&null),
            Err(RecordError::Malformed(_))
        ));
        let mut long_name = v;
        long_name.extend([2, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            MetadataRecord::decode(&long_name),
            Err(RecordError::Truncated)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let api_keys = [0u8, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 17, 20];
        for i in 0..20_000 {
            let len = (rng.next() % 96) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the inputs get a plausible header so the bodies are exercised.
            if i % 2 == 0 && v.len() >= 3 {
                v[0] = 1;
                v[1] = api_keys[(rng.next() % api_keys.len() as u64) as usize];
                v[2] = (rng.next() % 4) as u8;
            }
            let _ = MetadataRecord::decode(&v);
        }
        // Every single-byte corruption of every valid record.
        for r in all() {
            let e = r.encode().to_vec();
            for pos in 0..e.len() {
                for byte in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff] {
                    let mut v = e.clone();
                    v[pos] = byte;
                    let _ = MetadataRecord::decode(&v);
                }
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
