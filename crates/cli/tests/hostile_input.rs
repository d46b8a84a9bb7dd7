//! Bad input from the network gets Kafka's error or a closed connection, never a crash and
//! never a change to stored data; other clients keep being served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

fn connect(node: &Node) -> TcpStream {
    let s = TcpStream::connect(node.client_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// True if the server closed the connection (read returns EOF or reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn produce(s: &mut TcpStream, topic: &str, records: bytes::Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    s.write_all(&frame(ApiKey::Produce, 8, 11, &req))
        .expect("send");
    let mut body = read_response(s, 0);
    let resp = ProduceResponse::decode(&mut body, 8).expect("decode");
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_truncated_and_oversized_frames_close_only_their_connection() {
    let node = start(&["socket.request.max.bytes=1048576"]);
    create_topic(&node, "safe", 1, &[]).await;

    // An HTTP request: its first four bytes read as a huge size.
    let mut s = connect(&node);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert!(closed(&mut s));

    // Negative size.
    let mut s = connect(&node);
    s.write_all(&(-7i32).to_be_bytes()).expect("write");
    assert!(closed(&mut s));

    // Announced size over socket.request.max.bytes: refused before the body is read.
    let mut s = connect(&node);
    s.write_all(&(200 * 1024 * 1024i32).to_be_bytes())
        .expect("write");
    assert!(closed(&mut s));

    // Unknown API key.
    let mut s = connect(&node);
    s.write_all(&[0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 5, 0xff, 0xff])
        .expect("write");
    assert!(closed(&mut s));

    // A Metadata request whose body stops half way.
    let mut s = connect(&node);
    let mut f = frame(
        ApiKey::Metadata,
        9,
        3,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    f.truncate(f.len() - 2);
    let new_len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&new_len.to_be_bytes());
    s.write_all(&f).expect("write");
    assert!(closed(&mut s));

    // A truncated frame followed by a hang-up.
    let mut s = connect(&node);
    s.write_all(&[0, 0, 0, 100, 0, 18, 0, 0]).expect("write");
    drop(s);

    // Unsupported ApiVersions version: v0 body with UNSUPPORTED_VERSION and the API list.
    let mut s = connect(&node);
    s.write_all(&frame(ApiKey::ApiVersions, 3, 9, &ApiVersionsRequest::default())[..])
        .expect("write");
    let _ = read_response(&mut s, 0);
    // A future client would frame a v99 request with header v2, as for v3.
    let mut raw = frame(ApiKey::ApiVersions, 3, 10, &ApiVersionsRequest::default());
    raw[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&raw).expect("write");
    let mut body = read_response(&mut s, 0);
    let resp = ApiVersionsResponse::decode(&mut body, 0).expect("v0 body");
    assert_eq!(resp.error_code, 35);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16));

    // Everyone else is still served, and the data is intact.
    assert!(krust_testkit::api_versions_ok(node.client_addr()));
    assert_eq!(watermarks(&node, "safe", 0), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_and_oversized_batches_are_refused_and_nothing_is_stored() {
    let node = start(&["message.max.bytes=2000"]);
    create_topic(&node, "guarded", 1, &[]).await;
    let mut s = connect(&node);

    let good = batch(&["a", "b"]);
    assert_eq!(produce(&mut s, "guarded", good.clone().freeze()), 0);

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    assert_eq!(
        produce(&mut s, "guarded", bad_crc.freeze()),
        2,
        "CORRUPT_MESSAGE"
    );

    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    assert_eq!(
        produce(&mut s, "guarded", truncated.freeze()),
        2,
        "CORRUPT_MESSAGE"
    );

    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    assert_eq!(
        produce(&mut s, "guarded", bad_magic.freeze()),
        2,
        "CORRUPT_MESSAGE"
    );

    let big = "z".repeat(3000);
    assert_eq!(
        produce(&mut s, "guarded", batch(&[&big]).freeze()),
        10,
        "MESSAGE_TOO_LARGE"
    );

    assert_eq!(
        produce(&mut s, "no-such-topic", good.clone().freeze()),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    assert_eq!(
        watermarks(&node, "guarded", 0),
        (0, 2),
        "only the good batch was stored"
    );
}

/// ListOffsets v1 for partition 0 of `topic` at `timestamp`: (error, offset).
fn offset_for_time(s: &mut TcpStream, topic: &str, timestamp: i64) -> (i16, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp),
            ])]);
    s.write_all(&frame(ApiKey::ListOffsets, 1, 12, &req))
        .expect("send");
    let mut body = read_response(s, 0);
    let resp = ListOffsetsResponse::decode(&mut body, 1).expect("decode");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset)
}

/// Counts on the wire are believed only as far as the bytes behind them go: a few bytes
/// announcing billions of elements, or a batch header announcing billions of records, get
/// an error or a fallback answer, and the node keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn announced_counts_beyond_the_bytes_neither_crash_nor_allocate() {
    let node = start(&[]);
    create_topic(&node, "counted", 1, &[]).await;

    // Metadata v4: a topics array of i32::MAX entries, none of them sent.
    let mut s = connect(&node);
    s.write_all(&frame_bytes(
        ApiKey::Metadata,
        4,
        7,
        &i32::MAX.to_be_bytes(),
    ))
    .expect("write");
    assert!(closed(&mut s));
    // Metadata v9: a compact array of u32::MAX - 1 entries.
    let mut s = connect(&node);
    s.write_all(&frame_bytes(
        ApiKey::Metadata,
        9,
        7,
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
    ))
    .expect("write");
    assert!(closed(&mut s));
    // Produce v8: a topic data array of i32::MAX entries.
    let mut s = connect(&node);
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&5000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    s.write_all(&frame_bytes(ApiKey::Produce, 8, 7, &body))
        .expect("write");
    assert!(closed(&mut s));

    // A batch holding one record whose header counts i32::MAX of them (the last offset
    // delta agrees, so it is stored), then a lookup by time that reads inside it: the
    // answer falls back to the batch's base offset.
    let mut bogus = batch(&["only"]);
    bogus[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes()); // last offset delta
    bogus[57..61].copy_from_slice(&i32::MAX.to_be_bytes()); // records count
    let crc = crc32c::crc32c(&bogus[21..]);
    bogus[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut s = connect(&node);
    assert_eq!(produce(&mut s, "counted", bogus.freeze()), 0);
    assert_eq!(offset_for_time(&mut s, "counted", 0), (0, 0));

    assert!(krust_testkit::api_versions_ok(node.client_addr()));
    assert_eq!(watermarks(&node, "counted", 0), (0, i64::from(i32::MAX)));
}

/// A compressed batch that expands past the search bound (64 MiB) is not expanded for a
/// lookup by time: the answer is its base offset, not the record inside it.
#[tokio::test(flavor = "multi_thread")]
async fn a_lookup_by_time_does_not_expand_a_compression_bomb() {
    use krust_protocol::records::{encode_batch, Compression, NewRecord};
    let node = start(&[]);
    create_topic(&node, "bomb", 1, &[]).await;
    // Two records, the first `first_len` zero bytes at `t0`, the second small at t0 + 1 s.
    let encode = |first_len: usize, t0: i64| {
        let records: Vec<NewRecord> = [(first_len, t0), (1, t0 + 1_000)]
            .iter()
            .map(|(len, ts)| NewRecord {
                value: Some(bytes::Bytes::from(vec![0u8; *len])),
                timestamp: Some(*ts),
                ..Default::default()
            })
            .collect();
        encode_batch(&records, 0, Compression::Zstd).expect("encode")
    };
    let mut s = connect(&node);
    // Small: the record at 2 s is found inside its batch (offset 1).
    assert_eq!(produce(&mut s, "bomb", encode(10, 1_000)), 0);
    assert_eq!(offset_for_time(&mut s, "bomb", 2_000), (0, 1));
    // 80 MiB of zeros, a few KiB compressed: the batch's base offset (2) answers for the
    // record at 4 s (offset 3).
    let big = encode(80 << 20, 3_000);
    assert!(big.len() < 1 << 20, "{} bytes", big.len());
    assert_eq!(produce(&mut s, "bomb", big), 0);
    assert_eq!(offset_for_time(&mut s, "bomb", 4_000), (0, 2));
    // 10 MiB expands within the bound: the record itself (offset 5) answers.
    assert_eq!(produce(&mut s, "bomb", encode(10 << 20, 5_000)), 0);
    assert_eq!(offset_for_time(&mut s, "bomb", 6_000), (0, 5));
    assert_eq!(
        offset_for_time(&mut s, "bomb", 7_000),
        (0, -1),
        "none that late"
    );
}

/// The group coordinator trusts what `__consumer_offsets` holds: clients may not append to
/// internal topics (Kafka's INVALID_TOPIC_EXCEPTION).
#[tokio::test(flavor = "multi_thread")]
async fn clients_cannot_append_to_internal_topics() {
    let node = start(&[]);
    let mut s = connect(&node);
    for topic in [
        "__consumer_offsets",
        "__transaction_state",
        "__cluster_metadata",
    ] {
        assert_eq!(
            produce(&mut s, topic, batch(&["junk"]).freeze()),
            17,
            "{topic}"
        );
    }
}

/// One request may create at most 10 000 partitions (Kafka's controller limit): beyond
/// that it fails whole with POLICY_VIOLATION instead of placing them all.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_for_billions_of_partitions_is_a_policy_violation() {
    let node = start(&[]);
    create_topic(&node, "grown", 1, &[]).await;
    let mut s = connect(&node);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("huge")))
            .with_num_partitions(i32::MAX)
            .with_replication_factor(1)]);
    s.write_all(&frame(ApiKey::CreateTopics, 5, 13, &req))
        .expect("send");
    let mut body = read_response(&mut s, 1);
    let resp = CreateTopicsResponse::decode(&mut body, 5).expect("decode");
    assert_eq!(resp.topics[0].error_code, 44, "POLICY_VIOLATION");

    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("grown")))
                .with_count(i32::MAX),
        ]);
    s.write_all(&frame(ApiKey::CreatePartitions, 1, 14, &req))
        .expect("send");
    let mut body = read_response(&mut s, 0);
    let resp = CreatePartitionsResponse::decode(&mut body, 1).expect("decode");
    assert_eq!(resp.results[0].error_code, 44, "POLICY_VIOLATION");
    assert!(krust_testkit::api_versions_ok(node.client_addr()));
}

/// The controller listener takes the same treatment: seeded mutations of plausible quorum,
/// registration and partition-state requests (a vote, a new leader's epoch, a snapshot
/// fetch, a metadata fetch, a broker registering and heartbeating, an ISR change) never
/// stop the node or grow it without bound.
#[tokio::test(flavor = "multi_thread")]
async fn mutated_controller_requests_neither_crash_nor_bloat_the_node() {
    use kafka_protocol::protocol::Encodable;
    let node = start(&[]);
    create_topic(&node, "ctl", 1, &[]).await;
    let mut s = connect(&node);
    s.write_all(&frame(
        ApiKey::DescribeCluster,
        0,
        1,
        &DescribeClusterRequest::default(),
    ))
    .expect("send");
    let mut body = read_response(&mut s, 1);
    let cluster = DescribeClusterResponse::decode(&mut body, 0).expect("decode");
    let cluster_id = Some(cluster.cluster_id.clone());
    let md = TopicName(StrBytes::from_static_str("__cluster_metadata"));
    let md_id = uuid::Uuid::from_u128(1);

    fn seed<R: Encodable>(key: ApiKey, version: i16, req: &R) -> Vec<u8> {
        frame(key, version, 1, req)[4..].to_vec()
    }
    let seeds = vec![
        seed(
            ApiKey::Vote,
            2,
            &VoteRequest::default()
                .with_cluster_id(cluster_id.clone())
                .with_voter_id(BrokerId(1))
                .with_topics(vec![vote_request::TopicData::default()
                    .with_topic_name(md.clone())
                    .with_partitions(vec![vote_request::PartitionData::default()
                        .with_replica_epoch(5)
                        .with_replica_id(BrokerId(2))
                        .with_last_offset_epoch(1)
                        .with_last_offset(10)
                        .with_pre_vote(true)])]),
        ),
        seed(
            ApiKey::BeginQuorumEpoch,
            1,
            &BeginQuorumEpochRequest::default()
                .with_cluster_id(cluster_id.clone())
                .with_voter_id(BrokerId(1))
                .with_topics(vec![begin_quorum_epoch_request::TopicData::default()
                    .with_topic_name(md.clone())
                    .with_partitions(vec![
                        begin_quorum_epoch_request::PartitionData::default()
                            .with_leader_id(BrokerId(2))
                            .with_leader_epoch(9),
                    ])])
                .with_leader_endpoints(vec![begin_quorum_epoch_request::LeaderEndpoint::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(1)]),
        ),
        seed(
            ApiKey::EndQuorumEpoch,
            1,
            &EndQuorumEpochRequest::default()
                .with_cluster_id(cluster_id.clone())
                .with_topics(vec![end_quorum_epoch_request::TopicData::default()
                    .with_topic_name(md.clone())
                    .with_partitions(vec![
                        end_quorum_epoch_request::PartitionData::default()
                            .with_leader_id(BrokerId(1))
                            .with_leader_epoch(1)
                            .with_preferred_candidates(vec![
                                end_quorum_epoch_request::ReplicaInfo::default()
                                    .with_candidate_id(BrokerId(1)),
                            ]),
                    ])]),
        ),
        seed(
            ApiKey::FetchSnapshot,
            1,
            &FetchSnapshotRequest::default()
                .with_cluster_id(cluster_id.clone())
                .with_replica_id(BrokerId(2))
                .with_max_bytes(1 << 20)
                .with_topics(vec![fetch_snapshot_request::TopicSnapshot::default()
                    .with_name(md.clone())
                    .with_partitions(vec![
                        fetch_snapshot_request::PartitionSnapshot::default()
                            .with_current_leader_epoch(1)
                            .with_snapshot_id(
                                fetch_snapshot_request::SnapshotId::default()
                                    .with_end_offset(10)
                                    .with_epoch(1),
                            ),
                    ])]),
        ),
        seed(
            ApiKey::Fetch,
            16,
            &FetchRequest::default()
                .with_cluster_id(cluster_id.clone())
                .with_replica_state(
                    fetch_request::ReplicaState::default().with_replica_id(BrokerId(2)),
                )
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic_id(md_id)
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_current_leader_epoch(1)
                        .with_fetch_offset(0)
                        .with_last_fetched_epoch(0)
                        .with_partition_max_bytes(1 << 20)])]),
        ),
        seed(
            ApiKey::BrokerRegistration,
            4,
            &BrokerRegistrationRequest::default()
                .with_broker_id(BrokerId(7))
                .with_cluster_id(cluster.cluster_id.clone())
                .with_incarnation_id(uuid::Uuid::from_u128(7))
                .with_listeners(vec![broker_registration_request::Listener::default()
                    .with_name(StrBytes::from_static_str("PLAINTEXT"))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(1)])
                .with_features(vec![broker_registration_request::Feature::default()
                    .with_name(StrBytes::from_static_str("metadata.version"))
                    .with_min_supported_version(1)
                    .with_max_supported_version(30)])
                .with_log_dirs(vec![uuid::Uuid::from_u128(8)])
                .with_previous_broker_epoch(-1),
        ),
        seed(
            ApiKey::BrokerHeartbeat,
            1,
            &BrokerHeartbeatRequest::default()
                .with_broker_id(BrokerId(7))
                .with_broker_epoch(1)
                .with_current_metadata_offset(1),
        ),
        seed(
            ApiKey::AllocateProducerIds,
            0,
            &AllocateProducerIdsRequest::default()
                .with_broker_id(BrokerId(1))
                .with_broker_epoch(1),
        ),
        seed(
            ApiKey::AlterPartition,
            3,
            &AlterPartitionRequest::default()
                .with_broker_id(BrokerId(1))
                .with_broker_epoch(1)
                .with_topics(vec![alter_partition_request::TopicData::default()
                    .with_partitions(vec![
                        alter_partition_request::PartitionData::default()
                            .with_leader_epoch(0)
                            .with_new_isr_with_epochs(vec![
                                alter_partition_request::BrokerState::default()
                                    .with_broker_id(BrokerId(1))
                                    .with_broker_epoch(1),
                            ]),
                    ])]),
        ),
        seed(
            ApiKey::DescribeQuorum,
            2,
            &DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(md.clone())
                    .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
            ]),
        ),
    ];
    let addr: std::net::SocketAddr = node.controller_bootstrap().parse().expect("addr");
    mutated_requests_neither_crash_nor_bloat(&node, addr, &seeds, 5_000);
}

/// True if the server closed the connection without answering (not a read timeout).
fn refused(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(n) => n == 0,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

/// The node's peak resident memory (VmHWM), in MiB.
fn peak_mib(node: &Node) -> u64 {
    status_mib(node.pid().expect("pid"), "VmHWM:")
}

/// Sends `req` and decodes its answer.
fn ask<R: Decodable>(s: &mut TcpStream, key: ApiKey, version: i16, req: &impl Encodable) -> R {
    s.write_all(&frame(key, version, 1, req)).expect("write");
    let mut body = read_response(s, key.response_header_version(version));
    R::decode(&mut body, version).expect("decode")
}

/// Requests whose entries would take more memory to decode and answer than the node lets
/// requests take at once (at most 4 GiB) are refused before they are decoded: megabytes of
/// one-byte group ids, or of Produce entries without records, would otherwise take tens of
/// gigabytes. Only their connection closes; the same request a little smaller is
/// answered. A topic, group or config resource named many times in one request is
/// answered once.
#[tokio::test(flavor = "multi_thread")]
async fn requests_that_would_take_gigabytes_are_refused_before_decoding() {
    let node = start(&[]);
    create_topic(&node, "held", 1, &[]).await;
    let before = peak_mib(&node);

    // DescribeGroups v5: 8 Mi empty group ids (an entry is one byte).
    let describe = |groups: usize| {
        let mut body = Vec::new();
        let mut n = groups as u64 + 1;
        while n >= 0x80 {
            body.push((n as u8) | 0x80);
            n >>= 7;
        }
        body.push(n as u8);
        body.resize(body.len() + groups, 1);
        body.extend_from_slice(&[0, 0]); // include_authorized_operations, tagged fields
        frame_bytes(ApiKey::DescribeGroups, 5, 3, &body)
    };
    // 17 MiB of them would take over 4 GiB: more than any node's budget.
    let mut s = connect(&node);
    s.write_all(&describe(17 << 20)).expect("write");
    assert!(refused(&mut s));

    // Produce v9: 9 Mi topic entries with empty names and no partitions (three bytes each).
    let entries: u64 = 9 << 20;
    let mut body = vec![0, 0, 1, 0, 0, 19, 136]; // no transactional id, acks 1, timeout 5000
    let mut n = entries + 1;
    while n >= 0x80 {
        body.push((n as u8) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    for _ in 0..entries {
        body.extend_from_slice(&[1, 1, 0]); // name "", no partitions, no tagged fields
    }
    body.push(0);
    let mut s = connect(&node);
    s.write_all(&frame_bytes(ApiKey::Produce, 9, 4, &body))
        .expect("write");
    assert!(refused(&mut s));

    // Refused before decoding: the node's memory barely moved.
    let after = peak_mib(&node);
    assert!(
        after < before + 300,
        "peak {before} MiB before, {after} MiB after"
    );

    // 64 Ki group ids are within bounds: answered (once, all being the same empty id).
    let mut s = connect(&node);
    s.write_all(&describe(64 << 10)).expect("write");
    let mut body = read_response(&mut s, 1);
    let resp = DescribeGroupsResponse::decode(&mut body, 5).expect("decode");
    assert_eq!(resp.groups.len(), 1);

    // A topic named 100 000 times is answered once, as by Kafka (a set of topics).
    let topic = metadata_request::MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("held"))));
    let mut topics = vec![topic.clone(); 100_000];
    // Named with ids too: a name is looked up by name, whatever the id.
    topics.push(topic.clone().with_topic_id(uuid::Uuid::from_u128(1)));
    topics.push(topic.with_topic_id(uuid::Uuid::from_u128(2)));
    let req = MetadataRequest::default().with_topics(Some(topics));
    let mut s = connect(&node);
    let resp: MetadataResponse = ask(&mut s, ApiKey::Metadata, 12, &req);
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].partitions.len(), 1);

    // So are a group named 100 000 times (DescribeGroups, and OffsetFetch for all of its
    // offsets), a partition's offset asked for 100 000 times, and a topic's configs asked
    // for 100 000 times: each repeat would copy the group's members and offsets, the
    // partition's commit metadata, or the topic's configs. First the group's coordinator.
    let mut s = connect(&node);
    let find = FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![StrBytes::from_static_str("g")]);
    let _: FindCoordinatorResponse = ask(&mut s, ApiKey::FindCoordinator, 4, &find);
    let all = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(None),
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let resp: OffsetFetchResponse = ask(&mut s, ApiKey::OffsetFetch, 8, &all);
        if resp.groups[0].error_code == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no coordinator for g");
        std::thread::sleep(Duration::from_millis(50));
    }
    let req =
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("g")); 100_000]);
    let mut s = connect(&node);
    let resp: DescribeGroupsResponse = ask(&mut s, ApiKey::DescribeGroups, 5, &req);
    assert_eq!(resp.groups.len(), 1);
    let group = offset_fetch_request::OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_topics(None);
    let req = OffsetFetchRequest::default().with_groups(vec![group; 100_000]);
    let resp: OffsetFetchResponse = ask(&mut s, ApiKey::OffsetFetch, 8, &req);
    assert_eq!(resp.groups.len(), 1);
    // A partition asked for 100 000 times, under a topic named twice.
    let held = offset_fetch_request::OffsetFetchRequestTopics::default()
        .with_name(TopicName(StrBytes::from_static_str("held")))
        .with_partition_indexes(vec![0; 50_000]);
    let group = offset_fetch_request::OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_topics(Some(vec![held.clone(), held]));
    let req = OffsetFetchRequest::default().with_groups(vec![group]);
    let resp: OffsetFetchResponse = ask(&mut s, ApiKey::OffsetFetch, 8, &req);
    assert_eq!(resp.groups[0].topics.len(), 1);
    assert_eq!(resp.groups[0].topics[0].partitions.len(), 1);
    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("held"));
    let req = DescribeConfigsRequest::default().with_resources(vec![resource; 100_000]);
    let resp: DescribeConfigsResponse = ask(&mut s, ApiKey::DescribeConfigs, 4, &req);
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].error_code, 0);

    assert!(krust_testkit::api_versions_ok(node.client_addr()));
    assert_eq!(watermarks(&node, "held", 0), (0, 0));
}

/// `connections.max.idle.ms`: a client connection that goes silent, even half way through a
/// request (whose reservation of `queued.max.request.bytes` it would otherwise keep), is
/// closed; one that keeps asking is not.
#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_are_closed_after_connections_max_idle_ms() {
    let node = start(&[
        "connections.max.idle.ms=300",
        "queued.max.request.bytes=1048576",
    ]);
    let mut silent = connect(&node);
    let mut half = connect(&node);
    half.write_all(&[0, 0, 0, 100, 0, 18, 0, 0]).expect("write");
    let mut busy = connect(&node);
    let began = std::time::Instant::now();
    let mut correlation = 0;
    while began.elapsed() < Duration::from_millis(1200) {
        busy.write_all(&frame(
            ApiKey::ApiVersions,
            0,
            correlation,
            &ApiVersionsRequest::default(),
        ))
        .expect("write");
        let _ = read_response(&mut busy, 0);
        correlation += 1;
        // Pacing, under the idle time.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(refused(&mut silent));
    assert!(refused(&mut half));
    assert!(krust_testkit::api_versions_ok(node.client_addr()));
}

/// Whether `s` is answered an ApiVersions request within `wait`.
fn answers(s: &mut TcpStream, correlation: i32, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("timeout");
    if s.write_all(&frame(
        ApiKey::ApiVersions,
        0,
        correlation,
        &ApiVersionsRequest::default(),
    ))
    .is_err()
    {
        return false;
    }
    let mut size = [0u8; 4];
    let ok = s.read_exact(&mut size).is_ok();
    if ok {
        let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).expect("body");
    }
    ok
}

/// `N` connections that the node answers, once it has let go of earlier ones (until it has
/// seen the readiness probe's connection close, it counts it).
fn served<const N: usize>(node: &Node) -> [TcpStream; N] {
    krust_testkit::wait_for("connections served", Duration::from_secs(10), || {
        let mut all: [TcpStream; N] = std::array::from_fn(|_| connect(node));
        all.iter_mut()
            .enumerate()
            .all(|(i, s)| answers(s, i as i32, Duration::from_secs(2)))
            .then_some(all)
    })
}

/// `max.connections.per.ip`: a connection over the limit from one address is closed at
/// once; once one closes, a new one is served.
#[tokio::test(flavor = "multi_thread")]
async fn connections_over_max_connections_per_ip_are_closed() {
    let node = start(&["max.connections.per.ip=2"]);
    let [mut a, _b] = served(&node);
    let mut c = connect(&node);
    assert!(
        refused(&mut c),
        "a third connection from 127.0.0.1 was kept"
    );
    assert!(
        answers(&mut a, 3, Duration::from_secs(10)),
        "the first two are still served"
    );
    drop(a);
    krust_testkit::wait_for(
        "a place for a new connection",
        Duration::from_secs(10),
        || {
            let mut d = connect(&node);
            answers(&mut d, 4, Duration::from_secs(2)).then_some(())
        },
    );
}

/// `max.connections`: over the limit, a new connection waits to be accepted (its request
/// unanswered) until another closes, then it is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_over_max_connections_waits_for_a_place() {
    let node = start(&["max.connections=2"]);
    let [a, mut b] = served(&node);
    let mut c = connect(&node);
    assert!(
        !answers(&mut c, 3, Duration::from_millis(500)),
        "a third connection was served while two were open"
    );
    drop(a);
    // Its request, sent while it waited, is answered once it is accepted.
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = read_response(&mut c, 0);
    assert!(answers(&mut b, 4, Duration::from_secs(10)));
}

/// `listener.name.<listener>.max.connections`: the listener's own limit, as the broker-wide
/// one: a connection over it waits to be accepted until another on it closes.
#[tokio::test(flavor = "multi_thread")]
async fn a_listeners_own_max_connections_holds_back_the_next() {
    let node = start(&["listener.name.plaintext.max.connections=1"]);
    let [a] = served(&node);
    let mut b = connect(&node);
    assert!(
        !answers(&mut b, 2, Duration::from_millis(500)),
        "a second connection was served while one was open"
    );
    drop(a);
    b.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = read_response(&mut b, 0);
    assert!(answers(&mut b, 3, Duration::from_secs(10)));
}
