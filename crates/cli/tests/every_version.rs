//! Every API at every version krust advertises gets a well-formed response: a field that
//! a version cannot carry must never turn an answer into a closed connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use krust_protocol::records::{encode_batch, Compression, NewRecord};
use krust_protocol::SUPPORTED_APIS;
use uuid::Uuid;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

struct Wire {
    stream: TcpStream,
    correlation: i32,
    /// Every request frame sent, size prefix excluded: the seeds of the mutation pass.
    sent: Vec<Vec<u8>>,
}

impl Wire {
    fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        self.correlation += 1;
        let key = ApiKey::try_from(R::KEY).expect("key");
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(s("every-version")))
            .encode(&mut body, key.request_header_version(version))
            .expect("header");
        req.encode(&mut body, version).expect("request");
        let mut frame = Vec::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.sent.push(frame[4..].to_vec());
        self.stream.write_all(&frame).expect("send");
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: no response ({e})"));
        let mut data = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut data).expect("response body");
        let mut data = Bytes::from(data);
        assert_eq!(
            &data[..4],
            &self.correlation.to_be_bytes(),
            "{key:?} v{version}: correlation id"
        );
        let header_len = if R::Response::header_version(version) >= 1 {
            5
        } else {
            4
        };
        let mut body = data.split_off(header_len);
        R::Response::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: bad response: {e}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_supported_version_answers() {
    let node = start(&["group.initial.rebalance.delay.ms=0"]);
    create_topic(&node, "v", 1, &[]).await;
    let p = producer(&node, "1", "none");
    p.send(
        rdkafka::producer::FutureRecord::<(), _>::to("v")
            .payload("x")
            .partition(0),
        Duration::from_secs(10),
    )
    .await
    .expect("deliver");
    let stream = TcpStream::connect(node.client_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut w = Wire {
        stream,
        correlation: 0,
        sent: Vec::new(),
    };

    let md = w.call(&MetadataRequest::default().with_topics(None), 12);
    let topic_id = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "v"))
        .map_or(Uuid::nil(), |t| t.topic_id);
    assert!(!topic_id.is_nil());
    let batch = || {
        encode_batch(
            &[NewRecord::value(Bytes::from_static(b"y"))],
            1,
            Compression::None,
        )
        .expect("batch")
    };
    let topic = || TopicName(s("v"));

    let mut calls = 0;
    for api in SUPPORTED_APIS.iter().filter(|a| a.broker) {
        for v in api.min..=api.max {
            calls += 1;
            match api.key {
                ApiKey::ApiVersions => {
                    w.call(&ApiVersionsRequest::default(), v);
                }
                ApiKey::Metadata => {
                    let topics =
                        vec![metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(topic()))];
                    let r = w.call(&MetadataRequest::default().with_topics(Some(topics)), v);
                    assert_eq!(r.topics[0].error_code, 0, "Metadata v{v}");
                }
                ApiKey::Produce => {
                    let req = ProduceRequest::default()
                        .with_acks(1)
                        .with_timeout_ms(5000)
                        .with_topic_data(vec![produce_request::TopicProduceData::default()
                            .with_name(topic())
                            .with_partition_data(vec![
                                produce_request::PartitionProduceData::default()
                                    .with_index(0)
                                    .with_records(Some(batch())),
                            ])]);
                    let r = w.call(&req, v);
                    assert_eq!(
                        r.responses[0].partition_responses[0].error_code, 0,
                        "Produce v{v}"
                    );
                }
                ApiKey::Fetch => {
                    let mut t = fetch_request::FetchTopic::default()
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition_max_bytes(1 << 20)]);
                    if v >= 13 {
                        t.topic_id = topic_id;
                    } else {
                        t.topic = topic();
                    }
                    let req = FetchRequest::default()
                        .with_max_bytes(1 << 20)
                        .with_topics(vec![t])
                        .with_session_epoch(-1);
                    let r = w.call(&req, v);
                    let part = &r.responses[0].partitions[0];
                    assert_eq!(part.error_code, 0, "Fetch v{v}");
                    assert!(
                        part.records.as_ref().is_some_and(|b| !b.is_empty()),
                        "Fetch v{v} returns data"
                    );
                }
                ApiKey::ListOffsets => {
                    let req = ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                            .with_name(topic())
                            .with_partitions(vec![
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_timestamp(-1),
                            ])]);
                    let r = w.call(&req, v);
                    assert_eq!(r.topics[0].partitions[0].error_code, 0, "ListOffsets v{v}");
                }
                ApiKey::OffsetForLeaderEpoch => {
                    let req = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderTopic::default().with_topic(topic()).with_partitions(vec![
                            offset_for_leader_epoch_request::OffsetForLeaderPartition::default().with_leader_epoch(0),
                        ]),
                    ]);
                    w.call(&req, v);
                }
                ApiKey::CreateTopics => {
                    let req = CreateTopicsRequest::default()
                        .with_validate_only(true)
                        .with_topics(vec![create_topics_request::CreatableTopic::default()
                            .with_name(TopicName(s(&format!("new-{v}"))))
                            .with_num_partitions(1)
                            .with_replication_factor(1)]);
                    let r = w.call(&req, v);
                    assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
                }
                ApiKey::DeleteTopics => {
                    let mut req = DeleteTopicsRequest::default();
                    if v >= 6 {
                        req.topics = vec![delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(TopicName(s("absent"))))];
                    } else {
                        req.topic_names = vec![TopicName(s("absent"))];
                    }
                    w.call(&req, v);
                }
                ApiKey::DeleteRecords => {
                    w.call(&DeleteRecordsRequest::default(), v);
                }
                ApiKey::InitProducerId => {
                    let r = w.call(
                        &InitProducerIdRequest::default()
                            .with_transactional_id(None)
                            .with_transaction_timeout_ms(60000),
                        v,
                    );
                    assert_eq!(r.error_code, 0, "InitProducerId v{v}");
                    // An empty transactional id is refused, as by Kafka.
                    let r = w.call(
                        &InitProducerIdRequest::default()
                            .with_transactional_id(Some(TransactionalId(s(""))))
                            .with_transaction_timeout_ms(60000),
                        v,
                    );
                    assert_eq!(r.error_code, 42, "InitProducerId v{v} with an empty id");
                }
                // Transactions: a transactional id nobody initialized is not known to the
                // coordinator (or there is none yet: NOT_COORDINATOR).
                ApiKey::AddPartitionsToTxn => {
                    let req = AddPartitionsToTxnRequest::default()
                        .with_v3_and_below_transactional_id(TransactionalId(s("nobody")))
                        .with_v3_and_below_producer_id(ProducerId(1))
                        .with_v3_and_below_topics(vec![
                            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                                .with_name(topic())
                                .with_partitions(vec![0]),
                        ]);
                    // v4 is the brokers' form: several transactions, here a verification.
                    let req = if v >= 4 {
                        AddPartitionsToTxnRequest::default().with_transactions(vec![
                            add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                                .with_transactional_id(TransactionalId(s("nobody")))
                                .with_producer_id(ProducerId(1))
                                .with_verify_only(true)
                                .with_topics(req.v3_and_below_topics.clone()),
                        ])
                    } else {
                        req
                    };
                    let r = w.call(&req, v);
                    let code = if v >= 4 {
                        r.results_by_transaction[0].topic_results[0].results_by_partition[0]
                            .partition_error_code
                    } else {
                        r.results_by_topic_v3_and_below[0].results_by_partition[0]
                            .partition_error_code
                    };
                    assert!([16, 49].contains(&code), "AddPartitionsToTxn v{v}: {code}");
                }
                ApiKey::AddOffsetsToTxn => {
                    let req = AddOffsetsToTxnRequest::default()
                        .with_transactional_id(TransactionalId(s("nobody")))
                        .with_producer_id(ProducerId(1))
                        .with_group_id(GroupId(s("g")));
                    let code = w.call(&req, v).error_code;
                    assert!([15, 16, 49].contains(&code), "AddOffsetsToTxn v{v}: {code}");
                }
                ApiKey::EndTxn => {
                    let req = EndTxnRequest::default()
                        .with_transactional_id(TransactionalId(s("nobody")))
                        .with_producer_id(ProducerId(1))
                        .with_committed(true);
                    let code = w.call(&req, v).error_code;
                    assert!([16, 49].contains(&code), "EndTxn v{v}: {code}");
                }
                ApiKey::WriteTxnMarkers => {
                    let req = WriteTxnMarkersRequest::default().with_markers(vec![
                        write_txn_markers_request::WritableTxnMarker::default()
                            .with_producer_id(ProducerId(1))
                            .with_transaction_result(true)
                            .with_topics(vec![
                                write_txn_markers_request::WritableTxnMarkerTopic::default()
                                    .with_name(TopicName(s("absent")))
                                    .with_partition_indexes(vec![0]),
                            ]),
                    ]);
                    let r = w.call(&req, v);
                    assert_eq!(
                        r.markers[0].topics[0].partitions[0].error_code, 3,
                        "WriteTxnMarkers v{v}"
                    );
                }
                ApiKey::TxnOffsetCommit => {
                    // The group's coordinator first (this creates the offsets topic).
                    let group = format!("txn-{v}");
                    w.call(&FindCoordinatorRequest::default().with_key(s(&group)), 0);
                    let req = TxnOffsetCommitRequest::default()
                        .with_transactional_id(TransactionalId(s("t")))
                        .with_group_id(GroupId(s(&group)))
                        .with_producer_id(ProducerId(77))
                        .with_generation_id(-1)
                        .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                            .with_name(topic())
                            .with_partitions(vec![
                                txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                    .with_committed_offset(1),
                            ])]);
                    let r = w.call(&req, v);
                    assert_eq!(
                        r.topics[0].partitions[0].error_code, 0,
                        "TxnOffsetCommit v{v}"
                    );
                }
                ApiKey::ListTransactions => {
                    let req = ListTransactionsRequest::default()
                        .with_state_filters(vec![s("Ongoing"), s("Bogus")])
                        .with_duration_filter(-1);
                    let r = w.call(&req, v);
                    assert_eq!(r.error_code, 0, "ListTransactions v{v}");
                    assert_eq!(r.unknown_state_filters, vec![s("Bogus")]);
                }
                ApiKey::DescribeTransactions => {
                    let req = DescribeTransactionsRequest::default()
                        .with_transactional_ids(vec![TransactionalId(s("nobody"))]);
                    let code = w.call(&req, v).transaction_states[0].error_code;
                    assert!(
                        [16, 105].contains(&code),
                        "DescribeTransactions v{v}: {code}"
                    );
                }
                ApiKey::DescribeProducers => {
                    let req = DescribeProducersRequest::default().with_topics(vec![
                        describe_producers_request::TopicRequest::default()
                            .with_name(topic())
                            .with_partition_indexes(vec![0]),
                    ]);
                    let r = w.call(&req, v);
                    assert_eq!(
                        r.topics[0].partitions[0].error_code, 0,
                        "DescribeProducers v{v}"
                    );
                }
                ApiKey::FindCoordinator => {
                    let mut req = FindCoordinatorRequest::default();
                    if v >= 4 {
                        req.coordinator_keys = vec![s("g")];
                    } else {
                        req.key = s("g");
                    }
                    w.call(&req, v);
                }
                ApiKey::JoinGroup => {
                    let req = JoinGroupRequest::default()
                        .with_group_id(GroupId(s(&format!("join-{v}"))))
                        .with_session_timeout_ms(10000)
                        .with_rebalance_timeout_ms(10000)
                        .with_protocol_type(s("consumer"))
                        .with_protocols(vec![
                            join_group_request::JoinGroupRequestProtocol::default()
                                .with_name(s("range")),
                        ]);
                    // v4+ answers MEMBER_ID_REQUIRED at once; older versions are the first
                    // member of their own group and wait only the (zero) initial delay.
                    w.call(&req, v);
                }
                ApiKey::SyncGroup => {
                    w.call(
                        &SyncGroupRequest::default()
                            .with_group_id(GroupId(s("g")))
                            .with_member_id(s("nobody")),
                        v,
                    );
                }
                ApiKey::Heartbeat => {
                    w.call(
                        &HeartbeatRequest::default()
                            .with_group_id(GroupId(s("g")))
                            .with_member_id(s("nobody")),
                        v,
                    );
                }
                ApiKey::LeaveGroup => {
                    let mut req = LeaveGroupRequest::default().with_group_id(GroupId(s("g")));
                    if v >= 3 {
                        req.members = vec![leave_group_request::MemberIdentity::default()
                            .with_member_id(s("nobody"))];
                    } else {
                        req.member_id = s("nobody");
                    }
                    w.call(&req, v);
                }
                ApiKey::OffsetCommit => {
                    let req = OffsetCommitRequest::default()
                        .with_group_id(GroupId(s("standalone")))
                        .with_generation_id_or_member_epoch(-1)
                        .with_topics(vec![
                            offset_commit_request::OffsetCommitRequestTopic::default()
                                .with_name(topic())
                                .with_partitions(vec![
                                    offset_commit_request::OffsetCommitRequestPartition::default()
                                        .with_committed_offset(1),
                                ]),
                        ]);
                    let r = w.call(&req, v);
                    assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{v}");
                }
                ApiKey::OffsetFetch => {
                    let mut req = OffsetFetchRequest::default();
                    if v >= 8 {
                        req.groups = vec![offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("standalone")))];
                    } else {
                        req.group_id = GroupId(s("standalone"));
                        req.topics = Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(topic())
                                .with_partition_indexes(vec![0]),
                        ]);
                    }
                    w.call(&req, v);
                }
                ApiKey::DescribeGroups => {
                    w.call(
                        &DescribeGroupsRequest::default()
                            .with_groups(vec![GroupId(s("standalone"))]),
                        v,
                    );
                }
                ApiKey::ListGroups => {
                    w.call(&ListGroupsRequest::default(), v);
                }
                ApiKey::ConsumerGroupHeartbeat => {
                    let mut req = ConsumerGroupHeartbeatRequest::default()
                        .with_group_id(GroupId(s(&format!("kip848-v{v}"))))
                        .with_member_id(s(&format!("member-v{v}")))
                        .with_rebalance_timeout_ms(30_000)
                        .with_subscribed_topic_names(Some(vec![topic()]))
                        .with_topic_partitions(Some(vec![]));
                    if v >= 1 {
                        req.subscribed_topic_regex = Some(s(""));
                    }
                    let r = w.call(&req, v);
                    assert_eq!(r.error_code, 0, "ConsumerGroupHeartbeat v{v}: {r:?}");
                    assert_eq!(r.member_epoch, 1, "ConsumerGroupHeartbeat v{v}");
                    assert!(r.assignment.is_some(), "ConsumerGroupHeartbeat v{v}");
                }
                ApiKey::ConsumerGroupDescribe => {
                    let r = w.call(
                        &ConsumerGroupDescribeRequest::default()
                            .with_group_ids(vec![GroupId(s("kip848-v1")), GroupId(s("absent"))]),
                        v,
                    );
                    assert_eq!(r.groups[1].error_code, 69, "ConsumerGroupDescribe v{v}");
                }
                ApiKey::DeleteGroups => {
                    w.call(
                        &DeleteGroupsRequest::default()
                            .with_groups_names(vec![GroupId(s("absent"))]),
                        v,
                    );
                }
                ApiKey::OffsetDelete => {
                    w.call(
                        &OffsetDeleteRequest::default().with_group_id(GroupId(s("standalone"))),
                        v,
                    );
                }
                ApiKey::DescribeConfigs => {
                    let req = DescribeConfigsRequest::default().with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("v")),
                    ]);
                    let r = w.call(&req, v);
                    assert_eq!(r.results[0].error_code, 0, "DescribeConfigs v{v}");
                }
                ApiKey::AlterConfigs => {
                    w.call(&AlterConfigsRequest::default().with_validate_only(true), v);
                }
                ApiKey::IncrementalAlterConfigs => {
                    w.call(
                        &IncrementalAlterConfigsRequest::default().with_validate_only(true),
                        v,
                    );
                }
                ApiKey::CreatePartitions => {
                    w.call(
                        &CreatePartitionsRequest::default().with_validate_only(true),
                        v,
                    );
                }
                ApiKey::DescribeCluster => {
                    w.call(&DescribeClusterRequest::default(), v);
                }
                ApiKey::DescribeQuorum => {
                    let req = DescribeQuorumRequest::default().with_topics(vec![
                        describe_quorum_request::TopicData::default()
                            .with_topic_name(TopicName(s("__cluster_metadata")))
                            .with_partitions(vec![
                                describe_quorum_request::PartitionData::default(),
                            ]),
                    ]);
                    let r = w.call(&req, v);
                    assert_eq!(
                        r.topics[0].partitions[0].error_code, 0,
                        "DescribeQuorum v{v}"
                    );
                }
                ApiKey::AlterPartitionReassignments => {
                    // Cancelling where nothing is in progress.
                    let req = AlterPartitionReassignmentsRequest::default()
                        .with_timeout_ms(5000)
                        .with_topics(vec![
                            alter_partition_reassignments_request::ReassignableTopic::default()
                                .with_name(TopicName(s("v")))
                                .with_partitions(vec![
                                    alter_partition_reassignments_request::ReassignablePartition::default()
                                        .with_partition_index(0)
                                        .with_replicas(None),
                                ]),
                        ]);
                    let r = w.call(&req, v);
                    assert_eq!(r.error_code, 0, "AlterPartitionReassignments v{v}");
                    // NO_REASSIGNMENT_IN_PROGRESS (85).
                    assert_eq!(
                        r.responses[0].partitions[0].error_code, 85,
                        "AlterPartitionReassignments v{v}"
                    );
                }
                ApiKey::ListPartitionReassignments => {
                    let r = w.call(&ListPartitionReassignmentsRequest::default(), v);
                    assert_eq!(r.error_code, 0, "ListPartitionReassignments v{v}");
                    assert!(r.topics.is_empty(), "ListPartitionReassignments v{v}");
                }
                ApiKey::ElectLeaders => {
                    // Preferred election for a partition that has its preferred leader.
                    let req = ElectLeadersRequest::default()
                        .with_topic_partitions(Some(vec![
                            elect_leaders_request::TopicPartitions::default()
                                .with_topic(TopicName(s("v")))
                                .with_partitions(vec![0]),
                        ]))
                        .with_timeout_ms(5000);
                    let r = w.call(&req, v);
                    assert_eq!(r.error_code, 0, "ElectLeaders v{v}");
                    let p = &r.replica_election_results[0].partition_result[0];
                    // ELECTION_NOT_NEEDED (84).
                    assert_eq!(p.error_code, 84, "ElectLeaders v{v}");
                }
                ApiKey::SaslHandshake => {
                    // Answered, not closed, on a listener without SASL.
                    let req = SaslHandshakeRequest::default().with_mechanism(s("PLAIN"));
                    assert_eq!(w.call(&req, v).error_code, 34, "SaslHandshake v{v}");
                }
                ApiKey::SaslAuthenticate => {
                    let req = SaslAuthenticateRequest::default()
                        .with_auth_bytes(Bytes::from_static(b"\0u\0p"));
                    assert_eq!(w.call(&req, v).error_code, 34, "SaslAuthenticate v{v}");
                }
                ApiKey::DescribeLogDirs => {
                    let r = w.call(&DescribeLogDirsRequest::default().with_topics(None), v);
                    let parts: Vec<(String, i32)> = r.results[0]
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| (t.name.to_string(), p.partition_index))
                        })
                        .collect();
                    assert!(
                        parts.contains(&("v".to_string(), 0)),
                        "DescribeLogDirs v{v}: {parts:?}"
                    );
                }
                ApiKey::DescribeAcls => {
                    let req = DescribeAclsRequest::default()
                        .with_resource_type_filter(1)
                        .with_pattern_type_filter(1)
                        .with_operation(1)
                        .with_permission_type(1);
                    assert_eq!(w.call(&req, v).error_code, 54, "DescribeAcls v{v}");
                }
                ApiKey::CreateAcls => {
                    let req = CreateAclsRequest::default().with_creations(vec![
                        create_acls_request::AclCreation::default()
                            .with_resource_type(2)
                            .with_resource_name(s("v"))
                            .with_resource_pattern_type(3)
                            .with_principal(s("User:a"))
                            .with_host(s("*"))
                            .with_operation(3)
                            .with_permission_type(3),
                    ]);
                    assert_eq!(w.call(&req, v).results[0].error_code, 54);
                }
                ApiKey::DeleteAcls => {
                    let req = DeleteAclsRequest::default().with_filters(vec![
                        delete_acls_request::DeleteAclsFilter::default()
                            .with_resource_type_filter(1)
                            .with_pattern_type_filter(1)
                            .with_operation(1)
                            .with_permission_type(1),
                    ]);
                    assert_eq!(w.call(&req, v).filter_results[0].error_code, 54);
                }
                ApiKey::AlterUserScramCredentials => {
                    let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                            .with_name(s("every-version"))
                            .with_mechanism(1)
                            .with_iterations(4096)
                            .with_salt(Bytes::from_static(b"salt"))
                            .with_salted_password(Bytes::from_static(&[7; 32])),
                    ]);
                    assert_eq!(w.call(&req, v).results[0].error_code, 0);
                }
                ApiKey::AlterClientQuotas => {
                    let req = AlterClientQuotasRequest::default().with_entries(vec![
                        alter_client_quotas_request::EntryData::default()
                            .with_entity(vec![alter_client_quotas_request::EntityData::default()
                                .with_entity_type(s("client-id"))
                                .with_entity_name(Some(s(&format!("every-version-{v}"))))])
                            .with_ops(vec![alter_client_quotas_request::OpData::default()
                                .with_key(s("producer_byte_rate"))
                                .with_value(1e9)]),
                    ]);
                    let r = w.call(&req, v);
                    assert_eq!(r.entries[0].error_code, 0, "AlterClientQuotas v{v}: {r:?}");
                }
                ApiKey::DescribeClientQuotas => {
                    let req = DescribeClientQuotasRequest::default().with_components(vec![
                        describe_client_quotas_request::ComponentData::default()
                            .with_entity_type(s("client-id"))
                            .with_match_type(2)
                            .with_match(None),
                    ]);
                    let r = w.call(&req, v);
                    assert_eq!(r.error_code, 0, "DescribeClientQuotas v{v}: {r:?}");
                }
                ApiKey::DescribeUserScramCredentials => {
                    let r = w.call(&DescribeUserScramCredentialsRequest::default(), v);
                    assert_eq!(r.error_code, 0, "DescribeUserScramCredentials v{v}");
                }
                other => {
                    panic!("{other:?} is advertised but this test does not exercise it; add it")
                }
            }
        }
    }
    assert!(calls > 100, "{calls} calls");
    // Then thousands of mutations of those requests.
    mutated_requests_neither_crash_nor_bloat(&node, node.client_addr(), &w.sent, 10_000);
}
