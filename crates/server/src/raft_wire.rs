//! The metadata quorum's messages on the wire: krust's Raft messages
//! ([`krust_raft::messages`]) mapped to and from the `kafka-protocol` structs of Vote (52),
//! BeginQuorumEpoch (53), EndQuorumEpoch (54), Fetch (1) and FetchSnapshot (59), filled
//! as Kafka's KRaft fills them (KIP-595, KIP-630, KIP-853, KIP-996).
//!
//! * Every message addresses the one metadata partition, `__cluster_metadata-0`: Fetch
//!   v13+ by topic id ([`METADATA_TOPIC_ID`]), everything else by name.
//! * Fields the Raft core does not model (directory ids, endpoints, the log start offset,
//!   the broker epoch) are sent at Kafka's defaults and ignored on receipt. A Kafka peer
//!   falls back to its voter set for endpoints it is not sent.
//! * Log entries travel as v2 record batches, one per entry ([`encode_entry`]); received
//!   records are CRC-checked and never panic the decoder ([`decode_entries`]).
//! * Errors sit where Kafka puts them: INCONSISTENT_CLUSTER_ID at the top level with no
//!   topics, every other Raft error on the partition. A received top-level error becomes
//!   a response with that error, no leader and epoch -1, which the core ignores (as
//!   Kafka does).
//!
//! The wire structs are version independent: the `*_to_wire` functions take the version
//! the caller encodes at and set only fields that version has, so the encoder never
//! refuses them, with one deliberate exception: a pre-vote below Vote v2 would turn
//! into a real vote, so it stays set and the encoder refuses it. Raft needs Fetch v12+
//! (`LastFetchedEpoch` and the tagged `DivergingEpoch`, `CurrentLeader`, `SnapshotId`);
//! lower versions map but lose those fields.
//!
//! [`send`] sends at the highest version both sides serve: Vote v2, BeginQuorumEpoch v1,
//! EndQuorumEpoch v1, FetchSnapshot v1, and Fetch v16 to a krust peer (a Kafka peer may
//! serve up to v17 or v18, which map the same).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{self as wire, ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use krust_client::{ClientError, Connection};
use krust_raft::messages::{self as raft, ErrorCode, Request, Response};
use krust_raft::{Entry, EntryKind, Epoch, NodeId, Offset};
use uuid::Uuid;

/// The metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The metadata log's partition.
pub const METADATA_PARTITION: i32 = 0;
/// The metadata topic's fixed id, `AAAAAAAAAAAAAAAAAAAAAQ` (Kafka's `Uuid.METADATA_TOPIC_ID`).
pub const METADATA_TOPIC_ID: Uuid = Uuid::from_u128(1);
/// Fetch `MaxBytes` as Kafka's KRaft sends it (`KafkaRaftClient.MAX_FETCH_SIZE_BYTES`).
pub const FETCH_MAX_BYTES: i32 = 8 * 1024 * 1024;

/// Kafka's "unknown" leader epoch, for responses that carry none.
const UNKNOWN_EPOCH: Epoch = Epoch(-1);
/// Control record key of a LeaderChange marker: version 0, type 2.
const LEADER_CHANGE_KEY: [u8; 4] = [0, 0, 0, 2];
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
/// The base offset and batch length fields, which the batch length does not count.
const BATCH_PREFIX: usize = 12;
/// v2 batch header after the length field, up to and including the record count.
const BATCH_HEADER: usize = 49;
/// The smallest v2 record: length, attributes, timestamp and offset deltas, key and
/// value lengths, header count, one byte each.
const MIN_RECORD: usize = 7;
/// Records a compressed batch may claim (its size says nothing about the count).
const MAX_COMPRESSED_RECORDS: usize = 1 << 20;

/// Which of the five Raft APIs a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireKind {
    /// Vote (52).
    Vote,
    /// BeginQuorumEpoch (53).
    BeginQuorumEpoch,
    /// EndQuorumEpoch (54).
    EndQuorumEpoch,
    /// Fetch (1) of `__cluster_metadata-0`.
    Fetch,
    /// FetchSnapshot (59).
    FetchSnapshot,
}

impl WireKind {
    /// The Kafka API key.
    pub fn api_key(self) -> ApiKey {
        match self {
            WireKind::Vote => ApiKey::Vote,
            WireKind::BeginQuorumEpoch => ApiKey::BeginQuorumEpoch,
            WireKind::EndQuorumEpoch => ApiKey::EndQuorumEpoch,
            WireKind::Fetch => ApiKey::Fetch,
            WireKind::FetchSnapshot => ApiKey::FetchSnapshot,
        }
    }

    /// The kind of a Raft core request.
    pub fn of_request(req: &Request) -> WireKind {
        match req {
            Request::Vote(_) => WireKind::Vote,
            Request::BeginQuorumEpoch(_) => WireKind::BeginQuorumEpoch,
            Request::EndQuorumEpoch(_) => WireKind::EndQuorumEpoch,
            Request::Fetch(_) => WireKind::Fetch,
            Request::FetchSnapshot(_) => WireKind::FetchSnapshot,
        }
    }
}

/// A Raft request as `kafka-protocol` encodes and decodes it.
#[derive(Clone, Debug, PartialEq)]
pub enum WireRequest {
    Vote(wire::VoteRequest),
    BeginQuorumEpoch(wire::BeginQuorumEpochRequest),
    EndQuorumEpoch(wire::EndQuorumEpochRequest),
    Fetch(wire::FetchRequest),
    FetchSnapshot(wire::FetchSnapshotRequest),
}

impl WireRequest {
    /// Which API this is.
    pub fn kind(&self) -> WireKind {
        match self {
            WireRequest::Vote(_) => WireKind::Vote,
            WireRequest::BeginQuorumEpoch(_) => WireKind::BeginQuorumEpoch,
            WireRequest::EndQuorumEpoch(_) => WireKind::EndQuorumEpoch,
            WireRequest::Fetch(_) => WireKind::Fetch,
            WireRequest::FetchSnapshot(_) => WireKind::FetchSnapshot,
        }
    }
}

/// A Raft response as `kafka-protocol` encodes and decodes it.
#[derive(Clone, Debug, PartialEq)]
pub enum WireResponse {
    Vote(wire::VoteResponse),
    BeginQuorumEpoch(wire::BeginQuorumEpochResponse),
    EndQuorumEpoch(wire::EndQuorumEpochResponse),
    Fetch(wire::FetchResponse),
    FetchSnapshot(wire::FetchSnapshotResponse),
}

impl WireResponse {
    /// Which API this is.
    pub fn kind(&self) -> WireKind {
        match self {
            WireResponse::Vote(_) => WireKind::Vote,
            WireResponse::BeginQuorumEpoch(_) => WireKind::BeginQuorumEpoch,
            WireResponse::EndQuorumEpoch(_) => WireKind::EndQuorumEpoch,
            WireResponse::Fetch(_) => WireKind::Fetch,
            WireResponse::FetchSnapshot(_) => WireKind::FetchSnapshot,
        }
    }
}

/// Whether a Fetch reads the metadata log (by topic id or, before v13, by name) rather
/// than a data partition.
pub fn is_metadata_fetch(req: &wire::FetchRequest) -> bool {
    req.topics
        .iter()
        .any(|t| is_metadata_topic(t.topic_id, &t.topic))
}

/// The node a request comes from, as the request itself names it (candidate, leader or
/// fetching replica).
pub fn sender_of(req: &Request) -> NodeId {
    match req {
        Request::Vote(r) => r.replica_id,
        Request::BeginQuorumEpoch(r) => r.leader_id,
        Request::EndQuorumEpoch(r) => r.leader_id,
        Request::Fetch(r) => r.replica_id,
        Request::FetchSnapshot(r) => r.replica_id,
    }
}

// ----- requests ------------------------------------------------------------------------

/// Maps a Raft core request to the wire, for encoding at `version`. `sender` is this
/// node; it must be the id the request names (see [`sender_of`]), which is what is sent.
pub fn request_to_wire(req: &Request, sender: NodeId, version: i16) -> WireRequest {
    debug_assert_eq!(sender, sender_of(req), "a request names its sender");
    match req {
        Request::Vote(r) => {
            let partition = wire::vote_request::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_replica_epoch(r.replica_epoch.0)
                .with_replica_id(BrokerId(r.replica_id.0))
                .with_last_offset_epoch(r.last_offset_epoch.0)
                .with_last_offset(r.last_offset.0)
                // Set at every version: below v2 the encoder must refuse a pre-vote
                // rather than send it as a real vote.
                .with_pre_vote(r.pre_vote);
            let mut w = wire::VoteRequest::default()
                .with_cluster_id(str_to_wire(&r.cluster_id))
                .with_topics(vec![wire::vote_request::TopicData::default()
                    .with_topic_name(metadata_topic())
                    .with_partitions(vec![partition])]);
            if version >= 1 {
                w.voter_id = BrokerId(r.voter_id.0);
            }
            WireRequest::Vote(w)
        }
        Request::BeginQuorumEpoch(r) => {
            let partition = wire::begin_quorum_epoch_request::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_leader_id(BrokerId(r.leader_id.0))
                .with_leader_epoch(r.leader_epoch.0);
            let mut w = wire::BeginQuorumEpochRequest::default()
                .with_cluster_id(str_to_wire(&r.cluster_id))
                .with_topics(vec![wire::begin_quorum_epoch_request::TopicData::default()
                    .with_topic_name(metadata_topic())
                    .with_partitions(vec![partition])]);
            if version >= 1 {
                w.voter_id = BrokerId(r.voter_id.0);
            }
            WireRequest::BeginQuorumEpoch(w)
        }
        Request::EndQuorumEpoch(r) => {
            let mut partition = wire::end_quorum_epoch_request::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_leader_id(BrokerId(r.leader_id.0))
                .with_leader_epoch(r.leader_epoch.0);
            if version >= 1 {
                partition.preferred_candidates = r
                    .preferred_successors
                    .iter()
                    .map(|id| {
                        wire::end_quorum_epoch_request::ReplicaInfo::default()
                            .with_candidate_id(BrokerId(id.0))
                    })
                    .collect();
            } else {
                partition.preferred_successors =
                    r.preferred_successors.iter().map(|id| id.0).collect();
            }
            WireRequest::EndQuorumEpoch(
                wire::EndQuorumEpochRequest::default()
                    .with_cluster_id(str_to_wire(&r.cluster_id))
                    .with_topics(vec![wire::end_quorum_epoch_request::TopicData::default()
                        .with_topic_name(metadata_topic())
                        .with_partitions(vec![partition])]),
            )
        }
        Request::Fetch(r) => {
            let mut partition = wire::fetch_request::FetchPartition::default()
                .with_partition(METADATA_PARTITION)
                .with_fetch_offset(r.fetch_offset.0);
            if version >= 9 {
                partition.current_leader_epoch = r.current_leader_epoch.0;
            }
            if version >= 12 {
                partition.last_fetched_epoch = r.last_fetched_epoch.0;
            }
            let mut topic =
                wire::fetch_request::FetchTopic::default().with_partitions(vec![partition]);
            if version >= 13 {
                topic.topic_id = METADATA_TOPIC_ID;
            } else {
                topic.topic = metadata_topic();
            }
            let mut w = wire::FetchRequest::default()
                .with_max_wait_ms(r.max_wait_ms)
                .with_max_bytes(FETCH_MAX_BYTES)
                .with_topics(vec![topic]);
            if version >= 12 {
                w.cluster_id = str_to_wire(&r.cluster_id);
            }
            if version >= 15 {
                w.replica_state = wire::fetch_request::ReplicaState::default()
                    .with_replica_id(BrokerId(r.replica_id.0));
            } else {
                w.replica_id = BrokerId(r.replica_id.0);
            }
            WireRequest::Fetch(w)
        }
        Request::FetchSnapshot(r) => {
            let partition = wire::fetch_snapshot_request::PartitionSnapshot::default()
                .with_partition(METADATA_PARTITION)
                .with_current_leader_epoch(r.current_leader_epoch.0)
                .with_snapshot_id(
                    wire::fetch_snapshot_request::SnapshotId::default()
                        .with_end_offset(r.snapshot_id.end_offset.0)
                        .with_epoch(r.snapshot_id.epoch.0),
                )
                .with_position(to_i64(r.position));
            WireRequest::FetchSnapshot(
                wire::FetchSnapshotRequest::default()
                    .with_cluster_id(str_to_wire(&r.cluster_id))
                    .with_replica_id(BrokerId(r.replica_id.0))
                    .with_max_bytes(r.max_bytes)
                    .with_topics(vec![wire::fetch_snapshot_request::TopicSnapshot::default()
                        .with_name(metadata_topic())
                        .with_partitions(vec![partition])]),
            )
        }
    }
}

/// Maps a received request to the Raft core's, with its sender (the replica id, leader
/// id or candidate id it names). Fields the request's version lacks arrive as Kafka's
/// defaults (e.g. Vote v0 has no voter id: -1), which the core refuses where it needs
/// them. A negative FetchSnapshot position becomes `u64::MAX`, which the core answers
/// with POSITION_OUT_OF_RANGE as Kafka does.
///
/// Fails when the request does not address exactly `__cluster_metadata-0`; answer it
/// with [`misaddressed_response`].
pub fn request_from_wire(req: WireRequest) -> Result<(NodeId, Request), String> {
    let request = match req {
        WireRequest::Vote(w) => {
            let p = single(
                w.topics,
                |t| is_metadata_name(&t.topic_name),
                |t| t.partitions,
                |p| p.partition_index,
            )?;
            Request::Vote(raft::VoteRequest {
                cluster_id: str_from_wire(w.cluster_id),
                voter_id: NodeId(w.voter_id.0),
                replica_epoch: Epoch(p.replica_epoch),
                replica_id: NodeId(p.replica_id.0),
                last_offset_epoch: Epoch(p.last_offset_epoch),
                last_offset: Offset(p.last_offset),
                pre_vote: p.pre_vote,
            })
        }
        WireRequest::BeginQuorumEpoch(w) => {
            let p = single(
                w.topics,
                |t| is_metadata_name(&t.topic_name),
                |t| t.partitions,
                |p| p.partition_index,
            )?;
            Request::BeginQuorumEpoch(raft::BeginQuorumEpochRequest {
                cluster_id: str_from_wire(w.cluster_id),
                voter_id: NodeId(w.voter_id.0),
                leader_id: NodeId(p.leader_id.0),
                leader_epoch: Epoch(p.leader_epoch),
            })
        }
        WireRequest::EndQuorumEpoch(w) => {
            let p = single(
                w.topics,
                |t| is_metadata_name(&t.topic_name),
                |t| t.partitions,
                |p| p.partition_index,
            )?;
            // v1 carries candidates, v0 successors; the other list is empty.
            let preferred_successors = if p.preferred_candidates.is_empty() {
                p.preferred_successors.into_iter().map(NodeId).collect()
            } else {
                p.preferred_candidates
                    .into_iter()
                    .map(|c| NodeId(c.candidate_id.0))
                    .collect()
            };
            Request::EndQuorumEpoch(raft::EndQuorumEpochRequest {
                cluster_id: str_from_wire(w.cluster_id),
                leader_id: NodeId(p.leader_id.0),
                leader_epoch: Epoch(p.leader_epoch),
                preferred_successors,
            })
        }
        WireRequest::Fetch(w) => {
            // v15+ names the replica in ReplicaState (the top-level field reads -1).
            let replica_id = if w.replica_state.replica_id.0 >= 0 {
                w.replica_state.replica_id
            } else {
                w.replica_id
            };
            let p = single(
                w.topics,
                |t| is_metadata_topic(t.topic_id, &t.topic),
                |t| t.partitions,
                |p| p.partition,
            )?;
            Request::Fetch(raft::FetchRequest {
                cluster_id: str_from_wire(w.cluster_id),
                replica_id: NodeId(replica_id.0),
                fetch_offset: Offset(p.fetch_offset),
                last_fetched_epoch: Epoch(p.last_fetched_epoch),
                current_leader_epoch: Epoch(p.current_leader_epoch),
                max_wait_ms: w.max_wait_ms,
            })
        }
        WireRequest::FetchSnapshot(w) => {
            let p = single(
                w.topics,
                |t| is_metadata_name(&t.name),
                |t| t.partitions,
                |p| p.partition,
            )?;
            Request::FetchSnapshot(raft::FetchSnapshotRequest {
                cluster_id: str_from_wire(w.cluster_id),
                replica_id: NodeId(w.replica_id.0),
                current_leader_epoch: Epoch(p.current_leader_epoch),
                snapshot_id: raft::SnapshotId {
                    end_offset: Offset(p.snapshot_id.end_offset),
                    epoch: Epoch(p.snapshot_id.epoch),
                },
                position: u64::try_from(p.position).unwrap_or(u64::MAX),
                max_bytes: w.max_bytes,
            })
        }
    };
    Ok((sender_of(&request), request))
}

// ----- responses -----------------------------------------------------------------------

/// Maps a Raft core response to the wire, for encoding at `version`.
pub fn response_to_wire(resp: &Response, version: i16) -> WireResponse {
    if let Some(code) = top_level_error(resp) {
        return error_response(kind_of_response(resp), code);
    }
    match resp {
        Response::Vote(r) => {
            let partition = wire::vote_response::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_error_code(r.error.code())
                .with_leader_id(leader_to_wire(r.leader_id))
                .with_leader_epoch(r.leader_epoch.0)
                .with_vote_granted(r.vote_granted);
            WireResponse::Vote(wire::VoteResponse::default().with_topics(vec![
                wire::vote_response::TopicData::default()
                    .with_topic_name(metadata_topic())
                    .with_partitions(vec![partition]),
            ]))
        }
        Response::BeginQuorumEpoch(r) => {
            let partition = wire::begin_quorum_epoch_response::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_error_code(r.error.code())
                .with_leader_id(leader_to_wire(r.leader_id))
                .with_leader_epoch(r.leader_epoch.0);
            WireResponse::BeginQuorumEpoch(wire::BeginQuorumEpochResponse::default().with_topics(
                vec![wire::begin_quorum_epoch_response::TopicData::default()
                    .with_topic_name(metadata_topic())
                    .with_partitions(vec![partition])],
            ))
        }
        Response::EndQuorumEpoch(r) => {
            let partition = wire::end_quorum_epoch_response::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_error_code(r.error.code())
                .with_leader_id(leader_to_wire(r.leader_id))
                .with_leader_epoch(r.leader_epoch.0);
            WireResponse::EndQuorumEpoch(wire::EndQuorumEpochResponse::default().with_topics(
                vec![wire::end_quorum_epoch_response::TopicData::default()
                    .with_topic_name(metadata_topic())
                    .with_partitions(vec![partition])],
            ))
        }
        Response::Fetch(r) => {
            let mut partition = wire::fetch_response::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_error_code(r.error.code())
                .with_high_watermark(r.high_watermark.0)
                .with_records(Some(encode_entries(&r.records)));
            if version >= 12 {
                if let Some(d) = r.diverging_epoch {
                    partition.diverging_epoch = wire::fetch_response::EpochEndOffset::default()
                        .with_epoch(d.epoch.0)
                        .with_end_offset(d.end_offset.0);
                }
                partition.current_leader = wire::fetch_response::LeaderIdAndEpoch::default()
                    .with_leader_id(leader_to_wire(r.current_leader.leader_id))
                    .with_leader_epoch(r.current_leader.leader_epoch.0);
                if let Some(s) = r.snapshot_id {
                    partition.snapshot_id = wire::fetch_response::SnapshotId::default()
                        .with_end_offset(s.end_offset.0)
                        .with_epoch(s.epoch.0);
                }
            }
            let mut topic = wire::fetch_response::FetchableTopicResponse::default()
                .with_partitions(vec![partition]);
            if version >= 13 {
                topic.topic_id = METADATA_TOPIC_ID;
            } else {
                topic.topic = metadata_topic();
            }
            WireResponse::Fetch(wire::FetchResponse::default().with_responses(vec![topic]))
        }
        Response::FetchSnapshot(r) => {
            let partition = wire::fetch_snapshot_response::PartitionSnapshot::default()
                .with_index(METADATA_PARTITION)
                .with_error_code(r.error.code())
                .with_snapshot_id(
                    wire::fetch_snapshot_response::SnapshotId::default()
                        .with_end_offset(r.snapshot_id.end_offset.0)
                        .with_epoch(r.snapshot_id.epoch.0),
                )
                .with_current_leader(
                    wire::fetch_snapshot_response::LeaderIdAndEpoch::default()
                        .with_leader_id(leader_to_wire(r.current_leader.leader_id))
                        .with_leader_epoch(r.current_leader.leader_epoch.0),
                )
                .with_size(to_i64(r.size))
                .with_position(to_i64(r.position))
                .with_unaligned_records(r.unaligned_records.clone());
            WireResponse::FetchSnapshot(wire::FetchSnapshotResponse::default().with_topics(vec![
                wire::fetch_snapshot_response::TopicSnapshot::default()
                    .with_name(metadata_topic())
                    .with_partitions(vec![partition]),
            ]))
        }
    }
}

/// Maps a received response to the Raft core's. A top-level error becomes a response
/// with that error, no leader and epoch -1 (and empty data). Fails on an error code the
/// Raft core does not know (e.g. UNKNOWN_TOPIC_OR_PARTITION, UNSUPPORTED_VERSION), a
/// response for another partition, or records that do not decode.
pub fn response_from_wire(resp: WireResponse) -> Result<Response, String> {
    let unknown_leader = raft::CurrentLeader {
        leader_id: None,
        leader_epoch: UNKNOWN_EPOCH,
    };
    Ok(match resp {
        WireResponse::Vote(w) => {
            if w.error_code != 0 {
                return Ok(Response::Vote(raft::VoteResponse {
                    error: raft_error(w.error_code)?,
                    leader_id: None,
                    leader_epoch: UNKNOWN_EPOCH,
                    vote_granted: false,
                }));
            }
            let p = single(
                w.topics,
                |t| is_metadata_name(&t.topic_name),
                |t| t.partitions,
                |p| p.partition_index,
            )?;
            Response::Vote(raft::VoteResponse {
                error: raft_error(p.error_code)?,
                leader_id: leader_from_wire(p.leader_id),
                leader_epoch: Epoch(p.leader_epoch),
                vote_granted: p.vote_granted,
            })
        }
        WireResponse::BeginQuorumEpoch(w) => {
            if w.error_code != 0 {
                return Ok(Response::BeginQuorumEpoch(raft::BeginQuorumEpochResponse {
                    error: raft_error(w.error_code)?,
                    leader_id: None,
                    leader_epoch: UNKNOWN_EPOCH,
                }));
            }
            let p = single(
                w.topics,
                |t| is_metadata_name(&t.topic_name),
                |t| t.partitions,
                |p| p.partition_index,
            )?;
            Response::BeginQuorumEpoch(raft::BeginQuorumEpochResponse {
                error: raft_error(p.error_code)?,
                leader_id: leader_from_wire(p.leader_id),
                leader_epoch: Epoch(p.leader_epoch),
            })
        }
        WireResponse::EndQuorumEpoch(w) => {
            if w.error_code != 0 {
                return Ok(Response::EndQuorumEpoch(raft::EndQuorumEpochResponse {
                    error: raft_error(w.error_code)?,
                    leader_id: None,
                    leader_epoch: UNKNOWN_EPOCH,
                }));
            }
            let p = single(
                w.topics,
                |t| is_metadata_name(&t.topic_name),
                |t| t.partitions,
                |p| p.partition_index,
            )?;
            Response::EndQuorumEpoch(raft::EndQuorumEpochResponse {
                error: raft_error(p.error_code)?,
                leader_id: leader_from_wire(p.leader_id),
                leader_epoch: Epoch(p.leader_epoch),
            })
        }
        WireResponse::Fetch(w) => {
            if w.error_code != 0 {
                return Ok(Response::Fetch(raft::FetchResponse {
                    error: raft_error(w.error_code)?,
                    high_watermark: Offset(-1),
                    records: Vec::new(),
                    diverging_epoch: None,
                    current_leader: unknown_leader,
                    snapshot_id: None,
                }));
            }
            let p = single(
                w.responses,
                |t| is_metadata_topic(t.topic_id, &t.topic),
                |t| t.partitions,
                |p| p.partition_index,
            )?;
            let error = raft_error(p.error_code)?;
            // Kafka: a diverging epoch is set when its epoch is; a snapshot id when
            // either half is, and then both must be valid.
            let diverging_epoch = if p.diverging_epoch.epoch >= 0 {
                if p.diverging_epoch.end_offset < 0 {
                    return Err(format!(
                        "diverging epoch {} with end offset {}",
                        p.diverging_epoch.epoch, p.diverging_epoch.end_offset
                    ));
                }
                Some(raft::DivergingEpoch {
                    epoch: Epoch(p.diverging_epoch.epoch),
                    end_offset: Offset(p.diverging_epoch.end_offset),
                })
            } else {
                None
            };
            let snapshot_id = if p.snapshot_id.epoch >= 0 || p.snapshot_id.end_offset >= 0 {
                if p.snapshot_id.epoch < 0 || p.snapshot_id.end_offset < 0 {
                    return Err(format!(
                        "snapshot id with end offset {} and epoch {}",
                        p.snapshot_id.end_offset, p.snapshot_id.epoch
                    ));
                }
                Some(raft::SnapshotId {
                    end_offset: Offset(p.snapshot_id.end_offset),
                    epoch: Epoch(p.snapshot_id.epoch),
                })
            } else {
                None
            };
            let records = match p.records {
                Some(bytes) => decode_entries(bytes)?,
                None => Vec::new(),
            };
            Response::Fetch(raft::FetchResponse {
                error,
                high_watermark: Offset(p.high_watermark),
                records,
                diverging_epoch,
                current_leader: raft::CurrentLeader {
                    leader_id: leader_from_wire(p.current_leader.leader_id),
                    leader_epoch: Epoch(p.current_leader.leader_epoch),
                },
                snapshot_id,
            })
        }
        WireResponse::FetchSnapshot(w) => {
            if w.error_code != 0 {
                return Ok(Response::FetchSnapshot(raft::FetchSnapshotResponse {
                    error: raft_error(w.error_code)?,
                    snapshot_id: raft::SnapshotId {
                        end_offset: Offset(-1),
                        epoch: UNKNOWN_EPOCH,
                    },
                    size: 0,
                    position: 0,
                    unaligned_records: Bytes::new(),
                    current_leader: unknown_leader,
                }));
            }
            let p = single(
                w.topics,
                |t| is_metadata_name(&t.name),
                |t| t.partitions,
                |p| p.index,
            )?;
            let error = raft_error(p.error_code)?;
            let size = u64::try_from(p.size).map_err(|_| format!("snapshot size {}", p.size))?;
            let position = u64::try_from(p.position)
                .map_err(|_| format!("snapshot position {}", p.position))?;
            Response::FetchSnapshot(raft::FetchSnapshotResponse {
                error,
                snapshot_id: raft::SnapshotId {
                    end_offset: Offset(p.snapshot_id.end_offset),
                    epoch: Epoch(p.snapshot_id.epoch),
                },
                size,
                position,
                unaligned_records: p.unaligned_records,
                current_leader: raft::CurrentLeader {
                    leader_id: leader_from_wire(p.current_leader.leader_id),
                    leader_epoch: Epoch(p.current_leader.leader_epoch),
                },
            })
        }
    })
}

/// A response carrying only a top-level error and no topics: Kafka's answer to a Raft
/// request it cannot take (INVALID_REQUEST, INCONSISTENT_CLUSTER_ID, ...). Fetch has a
/// top-level error only from v7.
pub fn error_response(kind: WireKind, code: i16) -> WireResponse {
    match kind {
        WireKind::Vote => WireResponse::Vote(wire::VoteResponse::default().with_error_code(code)),
        WireKind::BeginQuorumEpoch => WireResponse::BeginQuorumEpoch(
            wire::BeginQuorumEpochResponse::default().with_error_code(code),
        ),
        WireKind::EndQuorumEpoch => WireResponse::EndQuorumEpoch(
            wire::EndQuorumEpochResponse::default().with_error_code(code),
        ),
        WireKind::Fetch => {
            WireResponse::Fetch(wire::FetchResponse::default().with_error_code(code))
        }
        WireKind::FetchSnapshot => WireResponse::FetchSnapshot(
            wire::FetchSnapshotResponse::default().with_error_code(code),
        ),
    }
}

/// Kafka's answer to a request that does not address `__cluster_metadata-0` (the
/// requests [`request_from_wire`] refuses): top-level INVALID_REQUEST, except that a
/// FetchSnapshot naming a partition gets UNKNOWN_TOPIC_OR_PARTITION on that partition.
pub fn misaddressed_response(req: &WireRequest) -> WireResponse {
    if let WireRequest::FetchSnapshot(w) = req {
        let named = w
            .topics
            .first()
            .and_then(|t| t.partitions.first().map(|p| (t.name.clone(), p.partition)));
        if let Some((name, index)) = named {
            let partition = wire::fetch_snapshot_response::PartitionSnapshot::default()
                .with_index(index)
                .with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
            return WireResponse::FetchSnapshot(
                wire::FetchSnapshotResponse::default().with_topics(vec![
                    wire::fetch_snapshot_response::TopicSnapshot::default()
                        .with_name(name)
                        .with_partitions(vec![partition]),
                ]),
            );
        }
    }
    error_response(req.kind(), INVALID_REQUEST)
}

// ----- sending -------------------------------------------------------------------------

/// Sends `req` over `conn` at the highest version both sides serve and returns the
/// answer as received; map it with [`response_from_wire`]. `sender` is this node.
pub async fn send(
    conn: &mut Connection,
    req: &Request,
    sender: NodeId,
) -> Result<WireResponse, ClientError> {
    let version = match WireKind::of_request(req) {
        WireKind::Vote => conn.version_for::<wire::VoteRequest>()?,
        WireKind::BeginQuorumEpoch => conn.version_for::<wire::BeginQuorumEpochRequest>()?,
        WireKind::EndQuorumEpoch => conn.version_for::<wire::EndQuorumEpochRequest>()?,
        WireKind::Fetch => conn.version_for::<wire::FetchRequest>()?,
        WireKind::FetchSnapshot => conn.version_for::<wire::FetchSnapshotRequest>()?,
    };
    Ok(match request_to_wire(req, sender, version) {
        WireRequest::Vote(w) => WireResponse::Vote(conn.send_version(&w, version).await?),
        WireRequest::BeginQuorumEpoch(w) => {
            WireResponse::BeginQuorumEpoch(conn.send_version(&w, version).await?)
        }
        WireRequest::EndQuorumEpoch(w) => {
            WireResponse::EndQuorumEpoch(conn.send_version(&w, version).await?)
        }
        WireRequest::Fetch(w) => WireResponse::Fetch(conn.send_version(&w, version).await?),
        WireRequest::FetchSnapshot(w) => {
            WireResponse::FetchSnapshot(conn.send_version(&w, version).await?)
        }
    })
}

// ----- records -------------------------------------------------------------------------

/// One entry as one v2 record batch: base offset = the entry's offset, partition leader
/// epoch = its epoch, one record whose value is its data, no producer, the current time.
/// A LeaderChange entry is a control batch whose record key is control type 2.
///
/// # Panics
/// If the entry cannot be framed: its data would have to exceed 2 GiB.
pub fn encode_entry(entry: &Entry) -> Bytes {
    let mut buf = BytesMut::new();
    encode_entry_into(&mut buf, entry);
    buf.freeze()
}

/// Entries as consecutive record batches, one per entry ([`encode_entry`]).
pub fn encode_entries(entries: &[Entry]) -> Bytes {
    let mut buf = BytesMut::new();
    for entry in entries {
        encode_entry_into(&mut buf, entry);
    }
    buf.freeze()
}

fn encode_entry_into(buf: &mut BytesMut, entry: &Entry) {
    let control = entry.kind == EntryKind::LeaderChange;
    let record = Record {
        transactional: false,
        control,
        delete_horizon: false,
        partition_leader_epoch: entry.epoch.0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: entry.offset.0,
        sequence: -1,
        timestamp: now_ms(),
        key: control.then(|| Bytes::from_static(&LEADER_CHANGE_KEY)),
        value: Some(entry.data.clone()),
        headers: Default::default(),
    };
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    if let Err(e) = RecordBatchEncoder::encode(buf, std::iter::once(&record), &options) {
        panic!("cannot frame the entry at offset {}: {e}", entry.offset);
    }
}

/// Entries from record batches (v2, CRC-checked): every record is an entry with the
/// batch's partition leader epoch; a control record is a LeaderChange (krust has no
/// other control entries; Kafka's KRaftVersion and KRaftVoters map there too). A batch
/// cut off at the end is dropped, as Kafka's readers do (a log read can end mid-batch),
/// unless it is the only one. Anything malformed is an error, never a panic.
pub fn decode_entries(mut records: Bytes) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut batches = 0usize;
    while !records.is_empty() {
        let truncated = |what: String| {
            if batches == 0 {
                Err(format!("records hold no complete batch: {what}"))
            } else {
                Ok(())
            }
        };
        if records.len() < BATCH_PREFIX {
            truncated(format!("{} bytes", records.len()))?;
            break;
        }
        let mut prefix = &records[..BATCH_PREFIX];
        let base_offset = prefix.get_i64();
        let length = prefix.get_i32();
        let at = format!("batch at offset {base_offset}");
        let body = usize::try_from(length)
            .ok()
            .filter(|l| *l >= BATCH_HEADER)
            .ok_or_else(|| format!("{at}: length {length} is not that of a v2 batch"))?;
        if records.len() < BATCH_PREFIX + body {
            truncated(format!(
                "{at}: {} of {} bytes",
                records.len(),
                BATCH_PREFIX + body
            ))?;
            break;
        }
        let batch = records.split_to(BATCH_PREFIX + body);
        // Checked here so that the decoder never sees them: it reserves room for the
        // record count and adds offset deltas to the base offset unchecked.
        let magic = batch[16] as i8;
        if magic != 2 {
            return Err(format!("{at}: magic {magic}, expected 2"));
        }
        if base_offset < 0 || base_offset > i64::MAX - i64::from(i32::MAX) {
            return Err(format!("{at}: invalid base offset"));
        }
        let compressed = batch[22] & 0x07 != 0;
        let count = i32::from_be_bytes([batch[57], batch[58], batch[59], batch[60]]);
        let count_ok = usize::try_from(count).is_ok_and(|n| {
            if compressed {
                n <= MAX_COMPRESSED_RECORDS
            } else {
                n.saturating_mul(MIN_RECORD) <= body - BATCH_HEADER
            }
        });
        if !count_ok {
            return Err(format!("{at}: record count {count}"));
        }
        // The decoder adds timestamp deltas unchecked too (an overflow panics in debug
        // builds): a crafted batch with a valid CRC must still only be an error.
        let mut input = batch;
        let set = catch_unwind(AssertUnwindSafe(|| RecordBatchDecoder::decode(&mut input)))
            .map_err(|_| format!("{at}: the batch decoder panicked"))?
            .map_err(|e| format!("{at}: {e}"))?;
        entries.extend(set.records.into_iter().map(|r| Entry {
            offset: Offset(r.offset),
            epoch: Epoch(r.partition_leader_epoch),
            kind: if r.control {
                EntryKind::LeaderChange
            } else {
                EntryKind::Data
            },
            data: r.value.unwrap_or_default(),
        }));
        batches += 1;
    }
    Ok(entries)
}

// ----- helpers -------------------------------------------------------------------------

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn metadata_topic() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn is_metadata_name(name: &TopicName) -> bool {
    name.0.as_str() == METADATA_TOPIC
}

/// Fetch v13+ names the topic by id (its name reads empty), older versions by name.
fn is_metadata_topic(id: Uuid, name: &TopicName) -> bool {
    id == METADATA_TOPIC_ID || (id.is_nil() && is_metadata_name(name))
}

/// The one partition of the one topic a Raft message carries, if it is the metadata
/// partition.
fn single<T, P>(
    topics: Vec<T>,
    is_metadata: impl Fn(&T) -> bool,
    partitions: impl Fn(T) -> Vec<P>,
    index: impl Fn(&P) -> i32,
) -> Result<P, String> {
    let [topic]: [T; 1] = topics
        .try_into()
        .map_err(|t: Vec<T>| format!("{} topics, expected 1", t.len()))?;
    if !is_metadata(&topic) {
        return Err(format!("the topic is not {METADATA_TOPIC}"));
    }
    let [partition]: [P; 1] = partitions(topic)
        .try_into()
        .map_err(|p: Vec<P>| format!("{} partitions, expected 1", p.len()))?;
    match index(&partition) {
        METADATA_PARTITION => Ok(partition),
        other => Err(format!("partition {other} of {METADATA_TOPIC}, expected 0")),
    }
}

fn kind_of_response(resp: &Response) -> WireKind {
    match resp {
        Response::Vote(_) => WireKind::Vote,
        Response::BeginQuorumEpoch(_) => WireKind::BeginQuorumEpoch,
        Response::EndQuorumEpoch(_) => WireKind::EndQuorumEpoch,
        Response::Fetch(_) => WireKind::Fetch,
        Response::FetchSnapshot(_) => WireKind::FetchSnapshot,
    }
}

/// Kafka answers a foreign cluster id at the top level, with no topics.
fn top_level_error(resp: &Response) -> Option<i16> {
    let error = match resp {
        Response::Vote(r) => r.error,
        Response::BeginQuorumEpoch(r) => r.error,
        Response::EndQuorumEpoch(r) => r.error,
        Response::Fetch(r) => r.error,
        Response::FetchSnapshot(r) => r.error,
    };
    (error == ErrorCode::InconsistentClusterId).then(|| error.code())
}

fn raft_error(code: i16) -> Result<ErrorCode, String> {
    ErrorCode::from_code(code).ok_or_else(|| {
        if code == krust_protocol::ErrorCode::ClusterAuthorizationFailed.code() {
            "CLUSTER_AUTHORIZATION_FAILED: the peer's authorizer does not let this node's \
             principal CLUSTER_ACTION (make it a super user)"
                .to_string()
        } else {
            format!("error code {code}")
        }
    })
}

fn leader_to_wire(leader: Option<NodeId>) -> BrokerId {
    BrokerId(leader.map_or(-1, |id| id.0))
}

/// Kafka: a negative leader id means the leader is unknown.
fn leader_from_wire(id: BrokerId) -> Option<NodeId> {
    (id.0 >= 0).then_some(NodeId(id.0))
}

fn str_to_wire(s: &Option<String>) -> Option<StrBytes> {
    s.clone().map(StrBytes::from_string)
}

fn str_from_wire(s: Option<StrBytes>) -> Option<String> {
    s.map(|s| s.as_str().to_owned())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, Encodable, Message};
    use krust_raft::messages::{CurrentLeader, DivergingEpoch, SnapshotId};
    use rand::{Rng, SeedableRng};
    use std::ops::RangeInclusive;

    /// Encodes and decodes `msg` at `version` with `kafka-protocol`.
    fn trip<T: Encodable + Decodable>(msg: &T, version: i16) -> T {
        let mut buf = BytesMut::new();
        msg.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
        let mut bytes = buf.freeze();
        let back =
            T::decode(&mut bytes, version).unwrap_or_else(|e| panic!("decode v{version}: {e}"));
        assert!(bytes.is_empty(), "v{version}: bytes left over");
        back
    }

    fn request_trip(w: WireRequest, v: i16) -> WireRequest {
        match w {
            WireRequest::Vote(m) => WireRequest::Vote(trip(&m, v)),
            WireRequest::BeginQuorumEpoch(m) => WireRequest::BeginQuorumEpoch(trip(&m, v)),
            WireRequest::EndQuorumEpoch(m) => WireRequest::EndQuorumEpoch(trip(&m, v)),
            WireRequest::Fetch(m) => WireRequest::Fetch(trip(&m, v)),
            WireRequest::FetchSnapshot(m) => WireRequest::FetchSnapshot(trip(&m, v)),
        }
    }

    fn response_trip(w: WireResponse, v: i16) -> WireResponse {
        match w {
            WireResponse::Vote(m) => WireResponse::Vote(trip(&m, v)),
            WireResponse::BeginQuorumEpoch(m) => WireResponse::BeginQuorumEpoch(trip(&m, v)),
            WireResponse::EndQuorumEpoch(m) => WireResponse::EndQuorumEpoch(trip(&m, v)),
            WireResponse::Fetch(m) => WireResponse::Fetch(trip(&m, v)),
            WireResponse::FetchSnapshot(m) => WireResponse::FetchSnapshot(trip(&m, v)),
        }
    }

    /// Every version the codec has (a superset of what krust serves and sends).
    fn versions(kind: WireKind) -> RangeInclusive<i16> {
        let r = match kind {
            WireKind::Vote => wire::VoteRequest::VERSIONS,
            WireKind::BeginQuorumEpoch => wire::BeginQuorumEpochRequest::VERSIONS,
            WireKind::EndQuorumEpoch => wire::EndQuorumEpochRequest::VERSIONS,
            WireKind::Fetch => wire::FetchRequest::VERSIONS,
            WireKind::FetchSnapshot => wire::FetchSnapshotRequest::VERSIONS,
        };
        r.min..=r.max
    }

    fn cluster() -> Option<String> {
        Some("MkU3OEVBNTcwNTJENDM2Qg".to_string())
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::Vote(raft::VoteRequest {
                cluster_id: cluster(),
                voter_id: NodeId(2),
                replica_epoch: Epoch(7),
                replica_id: NodeId(1),
                last_offset_epoch: Epoch(6),
                last_offset: Offset(1234),
                pre_vote: false,
            }),
            Request::Vote(raft::VoteRequest {
                cluster_id: None,
                voter_id: NodeId(3),
                replica_epoch: Epoch(6),
                replica_id: NodeId(1),
                last_offset_epoch: Epoch(6),
                last_offset: Offset(0),
                pre_vote: true,
            }),
            Request::BeginQuorumEpoch(raft::BeginQuorumEpochRequest {
                cluster_id: cluster(),
                voter_id: NodeId(3),
                leader_id: NodeId(1),
                leader_epoch: Epoch(8),
            }),
            Request::EndQuorumEpoch(raft::EndQuorumEpochRequest {
                cluster_id: cluster(),
                leader_id: NodeId(1),
                leader_epoch: Epoch(8),
                preferred_successors: vec![NodeId(3), NodeId(2)],
            }),
            Request::EndQuorumEpoch(raft::EndQuorumEpochRequest {
                cluster_id: None,
                leader_id: NodeId(1),
                leader_epoch: Epoch(1),
                preferred_successors: Vec::new(),
            }),
            Request::Fetch(raft::FetchRequest {
                cluster_id: cluster(),
                replica_id: NodeId(3),
                fetch_offset: Offset(99),
                last_fetched_epoch: Epoch(4),
                current_leader_epoch: Epoch(5),
                max_wait_ms: 500,
            }),
            // An observer without an id.
            Request::Fetch(raft::FetchRequest {
                cluster_id: None,
                replica_id: NodeId(-1),
                fetch_offset: Offset(0),
                last_fetched_epoch: Epoch(0),
                current_leader_epoch: Epoch(0),
                max_wait_ms: 0,
            }),
            Request::FetchSnapshot(raft::FetchSnapshotRequest {
                cluster_id: cluster(),
                replica_id: NodeId(2),
                current_leader_epoch: Epoch(5),
                snapshot_id: SnapshotId {
                    end_offset: Offset(500),
                    epoch: Epoch(3),
                },
                position: 1 << 20,
                max_bytes: 1 << 16,
            }),
        ]
    }

    /// `req` as it arrives after a trip at `version`: fields the version lacks read as
    /// Kafka's defaults.
    fn request_at(req: &Request, version: i16) -> Request {
        let mut r = req.clone();
        match &mut r {
            Request::Vote(v) if version < 1 => v.voter_id = NodeId(-1),
            Request::BeginQuorumEpoch(b) if version < 1 => b.voter_id = NodeId(-1),
            Request::Fetch(f) => {
                if version < 9 {
                    f.current_leader_epoch = Epoch(-1);
                }
                if version < 12 {
                    f.last_fetched_epoch = Epoch(-1);
                    f.cluster_id = None;
                }
            }
            _ => {}
        }
        r
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                offset: Offset(10),
                epoch: Epoch(3),
                kind: EntryKind::LeaderChange,
                data: Bytes::from_static(b"leader change"),
            },
            Entry {
                offset: Offset(11),
                epoch: Epoch(3),
                kind: EntryKind::Data,
                data: Bytes::from_static(b"a record"),
            },
            Entry {
                offset: Offset(12),
                epoch: Epoch(3),
                kind: EntryKind::Data,
                data: Bytes::new(),
            },
        ]
    }

    fn leader(id: i32, epoch: i32) -> CurrentLeader {
        CurrentLeader {
            leader_id: Some(NodeId(id)),
            leader_epoch: Epoch(epoch),
        }
    }

    fn fetch(records: Vec<Entry>) -> raft::FetchResponse {
        raft::FetchResponse {
            error: ErrorCode::None,
            high_watermark: Offset(12),
            records,
            diverging_epoch: None,
            current_leader: leader(1, 3),
            snapshot_id: None,
        }
    }

    fn responses() -> Vec<Response> {
        vec![
            Response::Vote(raft::VoteResponse {
                error: ErrorCode::None,
                leader_id: None,
                leader_epoch: Epoch(7),
                vote_granted: true,
            }),
            Response::Vote(raft::VoteResponse {
                error: ErrorCode::FencedLeaderEpoch,
                leader_id: Some(NodeId(2)),
                leader_epoch: Epoch(9),
                vote_granted: false,
            }),
            Response::BeginQuorumEpoch(raft::BeginQuorumEpochResponse {
                error: ErrorCode::None,
                leader_id: Some(NodeId(1)),
                leader_epoch: Epoch(4),
            }),
            Response::EndQuorumEpoch(raft::EndQuorumEpochResponse {
                error: ErrorCode::NotLeaderOrFollower,
                leader_id: None,
                leader_epoch: Epoch(4),
            }),
            Response::Fetch(fetch(entries())),
            Response::Fetch(raft::FetchResponse {
                diverging_epoch: Some(DivergingEpoch {
                    epoch: Epoch(2),
                    end_offset: Offset(8),
                }),
                ..fetch(Vec::new())
            }),
            Response::Fetch(raft::FetchResponse {
                snapshot_id: Some(SnapshotId {
                    end_offset: Offset(20),
                    epoch: Epoch(2),
                }),
                ..fetch(Vec::new())
            }),
            Response::Fetch(raft::FetchResponse {
                error: ErrorCode::UnknownLeaderEpoch,
                current_leader: CurrentLeader {
                    leader_id: None,
                    leader_epoch: Epoch(0),
                },
                ..fetch(Vec::new())
            }),
            Response::FetchSnapshot(raft::FetchSnapshotResponse {
                error: ErrorCode::None,
                snapshot_id: SnapshotId {
                    end_offset: Offset(500),
                    epoch: Epoch(3),
                },
                size: 1000,
                position: 100,
                unaligned_records: Bytes::from_static(b"snapshot bytes"),
                current_leader: leader(1, 5),
            }),
            Response::FetchSnapshot(raft::FetchSnapshotResponse {
                error: ErrorCode::SnapshotNotFound,
                snapshot_id: SnapshotId {
                    end_offset: Offset(500),
                    epoch: Epoch(3),
                },
                size: 0,
                position: 0,
                unaligned_records: Bytes::new(),
                current_leader: leader(0, 0),
            }),
        ]
    }

    /// `resp` as it arrives after a trip at `version`.
    fn response_at(resp: &Response, version: i16) -> Response {
        let mut r = resp.clone();
        if let Response::Fetch(f) = &mut r {
            if version < 12 {
                f.diverging_epoch = None;
                f.snapshot_id = None;
                f.current_leader = CurrentLeader {
                    leader_id: None,
                    leader_epoch: Epoch(-1),
                };
            }
        }
        r
    }

    fn response_kind(resp: &Response) -> WireKind {
        kind_of_response(resp)
    }

    #[test]
    fn requests_round_trip_at_every_version() {
        for req in requests() {
            let kind = WireKind::of_request(&req);
            for v in versions(kind) {
                if matches!(&req, Request::Vote(r) if r.pre_vote) && v < 2 {
                    continue;
                }
                let sender = sender_of(&req);
                let wire = request_trip(request_to_wire(&req, sender, v), v);
                assert_eq!(wire.kind(), kind);
                let (from, back) =
                    request_from_wire(wire).unwrap_or_else(|e| panic!("{kind:?} v{v}: {e}"));
                assert_eq!(from, sender, "{kind:?} v{v}");
                assert_eq!(back, request_at(&req, v), "{kind:?} v{v}");
            }
        }
    }

    #[test]
    fn responses_round_trip_at_every_version() {
        for resp in responses() {
            let kind = response_kind(&resp);
            for v in versions(kind) {
                let wire = response_trip(response_to_wire(&resp, v), v);
                assert_eq!(wire.kind(), kind);
                let back =
                    response_from_wire(wire).unwrap_or_else(|e| panic!("{kind:?} v{v}: {e}"));
                assert_eq!(back, response_at(&resp, v), "{kind:?} v{v}");
            }
        }
    }

    #[test]
    fn a_pre_vote_cannot_be_sent_below_vote_v2() {
        let req = &requests()[1];
        for v in 0..2 {
            let WireRequest::Vote(w) = request_to_wire(req, NodeId(1), v) else {
                panic!("not a vote")
            };
            assert!(w.encode(&mut BytesMut::new(), v).is_err(), "v{v}");
        }
    }

    #[test]
    fn fetch_addresses_the_topic_by_id_from_v13_and_names_the_replica_in_replica_state_from_v15() {
        let req = &requests()[5];
        for v in versions(WireKind::Fetch) {
            let WireRequest::Fetch(w) = request_to_wire(req, NodeId(3), v) else {
                panic!("not a fetch")
            };
            assert!(is_metadata_fetch(&w), "v{v}");
            let t = &w.topics[0];
            if v >= 13 {
                assert_eq!((t.topic_id, t.topic.0.as_str()), (METADATA_TOPIC_ID, ""));
            } else {
                assert_eq!(
                    (t.topic_id, t.topic.0.as_str()),
                    (Uuid::nil(), METADATA_TOPIC)
                );
            }
            if v >= 15 {
                assert_eq!((w.replica_id.0, w.replica_state.replica_id.0), (-1, 3));
            } else {
                assert_eq!((w.replica_id.0, w.replica_state.replica_id.0), (3, -1));
            }
            assert_eq!(w.max_bytes, FETCH_MAX_BYTES);
        }
    }

    /// DivergingEpoch, CurrentLeader and SnapshotId are tags 0, 1 and 2 of a Fetch
    /// response partition from v12 (FetchResponse.json); below v12 they do not exist.
    #[test]
    fn fetch_response_tagged_fields_travel_under_their_schema_tags() {
        let resp = Response::Fetch(raft::FetchResponse {
            error: ErrorCode::None,
            high_watermark: Offset(5),
            records: Vec::new(),
            diverging_epoch: Some(DivergingEpoch {
                epoch: Epoch(0x0102_0304),
                end_offset: Offset(0x0a0b_0c0d_0e0f_1011),
            }),
            current_leader: leader(0x2122_2324, 0x3132_3334),
            snapshot_id: Some(SnapshotId {
                end_offset: Offset(0x4142_4344_4546_4748),
                epoch: Epoch(0x5152_5354),
            }),
        });
        // Field count, then each field: tag, size, the struct, its empty tag section.
        let tagged = [
            &[3u8, 0, 13][..],
            &0x0102_0304i32.to_be_bytes(),
            &0x0a0b_0c0d_0e0f_1011i64.to_be_bytes(),
            &[0, 1, 9],
            &0x2122_2324i32.to_be_bytes(),
            &0x3132_3334i32.to_be_bytes(),
            &[0, 2, 13],
            &0x4142_4344_4546_4748i64.to_be_bytes(),
            &0x5152_5354i32.to_be_bytes(),
            &[0],
        ]
        .concat();
        for v in versions(WireKind::Fetch) {
            let WireResponse::Fetch(w) = response_to_wire(&resp, v) else {
                panic!("not a fetch")
            };
            let mut buf = BytesMut::new();
            w.encode(&mut buf, v).expect("encode");
            let found = buf.windows(tagged.len()).any(|s| s == tagged.as_slice());
            assert_eq!(found, v >= 12, "v{v}");
            let back =
                response_from_wire(response_trip(WireResponse::Fetch(w), v)).expect("decode");
            assert_eq!(back, response_at(&resp, v), "v{v}");
        }
    }

    #[test]
    fn a_foreign_cluster_id_is_a_top_level_error_as_in_kafka() {
        for resp in responses() {
            let kind = response_kind(&resp);
            let mut foreign = resp.clone();
            match &mut foreign {
                Response::Vote(r) => r.error = ErrorCode::InconsistentClusterId,
                Response::BeginQuorumEpoch(r) => r.error = ErrorCode::InconsistentClusterId,
                Response::EndQuorumEpoch(r) => r.error = ErrorCode::InconsistentClusterId,
                Response::Fetch(r) => r.error = ErrorCode::InconsistentClusterId,
                Response::FetchSnapshot(r) => r.error = ErrorCode::InconsistentClusterId,
            }
            let v = *versions(kind).end();
            let wire = response_to_wire(&foreign, v);
            assert_eq!(wire, error_response(kind, 104), "{kind:?}");
            let back = response_from_wire(response_trip(wire, v)).expect("decode");
            let (error, leader_id, leader_epoch) = match back {
                Response::Vote(r) => (r.error, r.leader_id, r.leader_epoch),
                Response::BeginQuorumEpoch(r) => (r.error, r.leader_id, r.leader_epoch),
                Response::EndQuorumEpoch(r) => (r.error, r.leader_id, r.leader_epoch),
                Response::Fetch(r) => (
                    r.error,
                    r.current_leader.leader_id,
                    r.current_leader.leader_epoch,
                ),
                Response::FetchSnapshot(r) => (
                    r.error,
                    r.current_leader.leader_id,
                    r.current_leader.leader_epoch,
                ),
            };
            assert_eq!(
                (error, leader_id, leader_epoch),
                (ErrorCode::InconsistentClusterId, None, Epoch(-1)),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn top_level_errors_map_to_raft_errors_or_fail() {
        for kind in [
            WireKind::Vote,
            WireKind::BeginQuorumEpoch,
            WireKind::EndQuorumEpoch,
            WireKind::Fetch,
            WireKind::FetchSnapshot,
        ] {
            let v = *versions(kind).end();
            let invalid = response_from_wire(response_trip(error_response(kind, 42), v))
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(response_kind(&invalid), kind);
            // UNSUPPORTED_VERSION is no Raft error.
            assert!(
                response_from_wire(error_response(kind, 35)).is_err(),
                "{kind:?}"
            );
            // Neither a top-level error nor a partition.
            assert!(
                response_from_wire(error_response(kind, 0)).is_err(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn requests_for_another_partition_are_refused_as_kafka_does() {
        let other = || TopicName(StrBytes::from_static_str("other"));
        for req in requests() {
            let kind = WireKind::of_request(&req);
            let v = *versions(kind).end();
            let good = request_to_wire(&req, sender_of(&req), v);
            let mut wrong_topic = good.clone();
            let mut wrong_partition = good.clone();
            let mut two_topics = good.clone();
            match (&mut wrong_topic, &mut wrong_partition, &mut two_topics) {
                (WireRequest::Vote(a), WireRequest::Vote(b), WireRequest::Vote(c)) => {
                    a.topics[0].topic_name = other();
                    b.topics[0].partitions[0].partition_index = 1;
                    c.topics.push(c.topics[0].clone());
                }
                (
                    WireRequest::BeginQuorumEpoch(a),
                    WireRequest::BeginQuorumEpoch(b),
                    WireRequest::BeginQuorumEpoch(c),
                ) => {
                    a.topics[0].topic_name = other();
                    b.topics[0].partitions[0].partition_index = 1;
                    c.topics.push(c.topics[0].clone());
                }
                (
                    WireRequest::EndQuorumEpoch(a),
                    WireRequest::EndQuorumEpoch(b),
                    WireRequest::EndQuorumEpoch(c),
                ) => {
                    a.topics[0].topic_name = other();
                    b.topics[0].partitions[0].partition_index = 1;
                    c.topics.push(c.topics[0].clone());
                }
                (WireRequest::Fetch(a), WireRequest::Fetch(b), WireRequest::Fetch(c)) => {
                    a.topics[0].topic_id = Uuid::from_u128(2);
                    b.topics[0].partitions[0].partition = 1;
                    let again = c.topics[0].partitions[0].clone();
                    c.topics[0].partitions.push(again);
                }
                (
                    WireRequest::FetchSnapshot(a),
                    WireRequest::FetchSnapshot(b),
                    WireRequest::FetchSnapshot(c),
                ) => {
                    a.topics[0].name = other();
                    b.topics[0].partitions[0].partition = 1;
                    c.topics.push(c.topics[0].clone());
                }
                _ => unreachable!("same kind"),
            }
            for bad in [wrong_topic, wrong_partition, two_topics] {
                let bad = request_trip(bad, v);
                assert!(request_from_wire(bad.clone()).is_err(), "{kind:?}: {bad:?}");
                let answer = response_trip(misaddressed_response(&bad), v);
                if let (WireRequest::FetchSnapshot(q), WireResponse::FetchSnapshot(r)) =
                    (&bad, &answer)
                {
                    // Kafka echoes the partition asked for, with UNKNOWN_TOPIC_OR_PARTITION.
                    let (topic, partition) = (&r.topics[0], &r.topics[0].partitions[0]);
                    assert_eq!(r.error_code, 0);
                    assert_eq!(topic.name, q.topics[0].name);
                    assert_eq!(partition.index, q.topics[0].partitions[0].partition);
                    assert_eq!(partition.error_code, 3);
                    assert!(response_from_wire(answer).is_err());
                } else {
                    assert_eq!(answer, error_response(kind, 42), "{kind:?}");
                    let back = response_from_wire(answer).expect("INVALID_REQUEST is a Raft error");
                    assert_eq!(response_kind(&back), kind);
                }
            }
        }
    }

    #[test]
    fn a_fetch_by_name_is_accepted_and_a_foreign_name_refused() {
        let req = &requests()[5];
        let WireRequest::Fetch(mut w) = request_to_wire(req, NodeId(3), 12) else {
            panic!("not a fetch")
        };
        assert!(request_from_wire(WireRequest::Fetch(w.clone())).is_ok());
        w.topics[0].topic = TopicName(StrBytes::from_static_str("data"));
        assert!(!is_metadata_fetch(&w));
        assert!(request_from_wire(WireRequest::Fetch(w)).is_err());
    }

    #[test]
    fn a_negative_snapshot_position_is_out_of_range() {
        let req = &requests()[7];
        let WireRequest::FetchSnapshot(mut w) = request_to_wire(req, NodeId(2), 1) else {
            panic!("not a fetch snapshot")
        };
        w.topics[0].partitions[0].position = -1;
        let (_, back) = request_from_wire(WireRequest::FetchSnapshot(w)).expect("mapped");
        let Request::FetchSnapshot(back) = back else {
            panic!("not a fetch snapshot")
        };
        assert_eq!(back.position, u64::MAX);
    }

    #[test]
    fn an_entry_is_one_batch_of_one_record() {
        for e in entries() {
            let bytes = encode_entry(&e);
            let set = RecordBatchDecoder::decode(&mut bytes.clone()).expect("decode");
            let [r]: [Record; 1] = set.records.try_into().expect("one record");
            assert_eq!(
                (r.offset, r.partition_leader_epoch),
                (e.offset.0, e.epoch.0)
            );
            assert_eq!(r.control, e.kind == EntryKind::LeaderChange);
            assert_eq!(
                r.key.as_deref(),
                (e.kind == EntryKind::LeaderChange).then_some(&LEADER_CHANGE_KEY[..])
            );
            assert_eq!(r.value.as_ref(), Some(&e.data));
            assert_eq!((r.producer_id, r.producer_epoch, r.sequence), (-1, -1, -1));
            assert_eq!(decode_entries(bytes), Ok(vec![e]));
        }
        let all = encode_entries(&entries());
        assert_eq!(decode_entries(all), Ok(entries()));
        assert_eq!(decode_entries(Bytes::new()), Ok(Vec::new()));
    }

    #[test]
    fn garbage_records_are_errors() {
        let good = encode_entries(&entries());
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.to_vec();
            f(&mut b);
            decode_entries(Bytes::from(b))
        };
        assert!(decode_entries(Bytes::from_static(b"not a record batch, not even close")).is_err());
        // A flipped bit under the CRC, in the first and in the last batch.
        assert!(bad(&|b| b[40] ^= 0x10).is_err());
        assert!(bad(&|b| {
            let last = b.len() - 1;
            b[last] ^= 0x01
        })
        .is_err());
        // Legacy magic, a length too short for a header, a negative length.
        assert!(bad(&|b| b[16] = 1).is_err());
        assert!(bad(&|b| b[8..12].copy_from_slice(&20i32.to_be_bytes())).is_err());
        assert!(bad(&|b| b[8..12].copy_from_slice(&(-1i32).to_be_bytes())).is_err());
        // A base offset whose deltas would overflow.
        assert!(bad(&|b| b[0..8].copy_from_slice(&i64::MAX.to_be_bytes())).is_err());
        // A record count the batch cannot hold.
        assert!(bad(&|b| b[57..61].copy_from_slice(&i32::MAX.to_be_bytes())).is_err());
        // A lone batch cut short.
        let one = encode_entry(&entries()[0]);
        assert!(decode_entries(one.slice(..one.len() - 1)).is_err());
        assert!(decode_entries(one.slice(..5)).is_err());
        // And in a Fetch response.
        let mut w = response_to_wire(&Response::Fetch(fetch(Vec::new())), 16);
        if let WireResponse::Fetch(f) = &mut w {
            f.responses[0].partitions[0].records = Some(Bytes::from_static(&[0xff; 80]));
        }
        assert!(response_from_wire(w).is_err());
    }

    #[test]
    fn a_batch_cut_off_after_complete_ones_is_dropped() {
        let all = encode_entries(&entries());
        for cut in [1, 5, 11, 12, 30] {
            assert_eq!(
                decode_entries(all.slice(..all.len() - cut)),
                Ok(entries()[..2].to_vec()),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn mangled_records_never_panic() {
        let good = encode_entries(&entries());
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..5000 {
            let mut b = good.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            if rng.random_range(0..4) == 0 {
                b.truncate(rng.random_range(0..b.len()));
            }
            let _ = decode_entries(Bytes::from(b));
        }
        for _ in 0..2000 {
            let len = rng.random_range(0..200);
            let b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = decode_entries(Bytes::from(b));
        }
    }

    #[test]
    fn the_metadata_topic_id_is_kafkas() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        assert_eq!(
            URL_SAFE_NO_PAD.encode(METADATA_TOPIC_ID.as_bytes()),
            "AAAAAAAAAAAAAAAAAAAAAQ"
        );
    }
}
