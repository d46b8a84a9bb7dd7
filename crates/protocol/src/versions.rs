//! The API versions krust serves: the single source of truth.
//!
//! ApiVersions answers from this table, the dispatcher rejects any request outside it, and
//! each handler may rely on its version lying inside the range written here. A range may
//! never exceed what the `kafka-protocol` crate can decode (a unit test checks this).

use kafka_protocol::messages::ApiKey;

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The client listener (`listeners`, not a controller listener name), port 9092 by default.
    Broker,
    /// The controller listener (`controller.listener.names`), port 9093 by default.
    Controller,
}

/// One row of the table: an API, the versions served, and the listeners that serve it.
#[derive(Debug, Clone, Copy)]
pub struct ApiRange {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    pub broker: bool,
    pub controller: bool,
}

const fn both(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange {
        key,
        min,
        max,
        broker: true,
        controller: true,
    }
}

const fn broker(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange {
        key,
        min,
        max,
        broker: true,
        controller: false,
    }
}

const fn controller(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange {
        key,
        min,
        max,
        broker: false,
        controller: true,
    }
}

/// Every API krust implements, with the versions served.
///
/// Floors follow Kafka 4.x (KIP-896) except where older clients still in use need less
/// (kafka-python 2.0 sends Metadata v1, ListOffsets v1, Fetch v4, Produce v7).
/// Fetch v13+ addresses topics by id: served because Metadata v10+ returns real topic ids.
/// Fetch is also the metadata quorum's replication RPC, hence on the controller listener.
/// The quorum's own RPCs (KIP-595, KIP-630) start where the request names its receiver
/// (`VoterId`, v1), which the Raft core checks; pre-vote needs Vote v2.
pub const SUPPORTED_APIS: &[ApiRange] = &[
    broker(ApiKey::Produce, 3, 11),
    both(ApiKey::Fetch, 4, 16),
    broker(ApiKey::ListOffsets, 1, 8),
    broker(ApiKey::Metadata, 0, 12),
    broker(ApiKey::OffsetForLeaderEpoch, 2, 4),
    both(ApiKey::ApiVersions, 0, 4),
    // Handshake v0 (raw SASL tokens after it) is not served: clients use v1.
    both(ApiKey::SaslHandshake, 1, 1),
    both(ApiKey::SaslAuthenticate, 0, 2),
    broker(ApiKey::DescribeUserScramCredentials, 0, 0),
    // No authorizer: answered with SECURITY_DISABLED, as Kafka's are without one.
    broker(ApiKey::DescribeLogDirs, 1, 4),
    broker(ApiKey::DescribeAcls, 1, 3),
    both(ApiKey::CreateAcls, 1, 3),
    both(ApiKey::DeleteAcls, 1, 3),
    both(ApiKey::AlterUserScramCredentials, 0, 0),
    broker(ApiKey::DescribeClientQuotas, 0, 1),
    both(ApiKey::AlterClientQuotas, 0, 1),
    both(ApiKey::CreateTopics, 2, 7),
    both(ApiKey::DeleteTopics, 1, 6),
    broker(ApiKey::DeleteRecords, 0, 2),
    broker(ApiKey::InitProducerId, 0, 4),
    broker(ApiKey::AddPartitionsToTxn, 0, 4),
    broker(ApiKey::AddOffsetsToTxn, 0, 4),
    broker(ApiKey::EndTxn, 0, 4),
    broker(ApiKey::WriteTxnMarkers, 1, 1),
    broker(ApiKey::TxnOffsetCommit, 0, 4),
    broker(ApiKey::DescribeProducers, 0, 0),
    broker(ApiKey::DescribeTransactions, 0, 0),
    broker(ApiKey::ListTransactions, 0, 1),
    broker(ApiKey::FindCoordinator, 0, 4),
    broker(ApiKey::JoinGroup, 0, 9),
    broker(ApiKey::SyncGroup, 0, 5),
    broker(ApiKey::Heartbeat, 0, 4),
    broker(ApiKey::LeaveGroup, 0, 5),
    broker(ApiKey::OffsetCommit, 2, 9),
    broker(ApiKey::OffsetFetch, 1, 9),
    broker(ApiKey::DescribeGroups, 0, 5),
    broker(ApiKey::ListGroups, 0, 5),
    broker(ApiKey::DeleteGroups, 0, 2),
    // KIP-848's consumer group protocol; v1 adds regular expressions, which librdkafka
    // requires.
    broker(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    broker(ApiKey::ConsumerGroupDescribe, 0, 1),
    broker(ApiKey::OffsetDelete, 0, 0),
    both(ApiKey::DescribeConfigs, 1, 4),
    both(ApiKey::AlterConfigs, 0, 2),
    both(ApiKey::CreatePartitions, 0, 3),
    both(ApiKey::IncrementalAlterConfigs, 0, 1),
    both(ApiKey::DescribeCluster, 0, 1),
    both(ApiKey::DescribeQuorum, 0, 2),
    controller(ApiKey::Vote, 1, 2),
    controller(ApiKey::BeginQuorumEpoch, 1, 1),
    controller(ApiKey::EndQuorumEpoch, 0, 1),
    controller(ApiKey::FetchSnapshot, 0, 1),
    controller(ApiKey::BrokerRegistration, 0, 4),
    controller(ApiKey::BrokerHeartbeat, 0, 1),
    controller(ApiKey::AllocateProducerIds, 0, 0),
    controller(ApiKey::AlterPartition, 2, 3),
    both(ApiKey::ElectLeaders, 0, 2),
    both(ApiKey::AlterPartitionReassignments, 0, 1),
    both(ApiKey::ListPartitionReassignments, 0, 0),
];

/// The served range of `key` on `listener`, if krust serves it there.
pub fn supported(key: ApiKey, listener: Listener) -> Option<&'static ApiRange> {
    SUPPORTED_APIS.iter().find(|r| {
        r.key == key
            && match listener {
                Listener::Broker => r.broker,
                Listener::Controller => r.controller,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    fn crate_range(key: ApiKey) -> (i16, i16) {
        macro_rules! r {
            ($t:ty) => {
                (<$t>::VERSIONS.min, <$t>::VERSIONS.max)
            };
        }
        match key {
            ApiKey::Produce => r!(ProduceRequest),
            ApiKey::Fetch => r!(FetchRequest),
            ApiKey::ListOffsets => r!(ListOffsetsRequest),
            ApiKey::Metadata => r!(MetadataRequest),
            ApiKey::OffsetForLeaderEpoch => r!(OffsetForLeaderEpochRequest),
            ApiKey::ApiVersions => r!(ApiVersionsRequest),
            ApiKey::CreateTopics => r!(CreateTopicsRequest),
            ApiKey::DeleteTopics => r!(DeleteTopicsRequest),
            ApiKey::DeleteRecords => r!(DeleteRecordsRequest),
            ApiKey::DescribeConfigs => r!(DescribeConfigsRequest),
            ApiKey::AlterConfigs => r!(AlterConfigsRequest),
            ApiKey::CreatePartitions => r!(CreatePartitionsRequest),
            ApiKey::IncrementalAlterConfigs => r!(IncrementalAlterConfigsRequest),
            ApiKey::DescribeCluster => r!(DescribeClusterRequest),
            ApiKey::InitProducerId => r!(InitProducerIdRequest),
            ApiKey::AddPartitionsToTxn => r!(AddPartitionsToTxnRequest),
            ApiKey::AddOffsetsToTxn => r!(AddOffsetsToTxnRequest),
            ApiKey::EndTxn => r!(EndTxnRequest),
            ApiKey::WriteTxnMarkers => r!(WriteTxnMarkersRequest),
            ApiKey::TxnOffsetCommit => r!(TxnOffsetCommitRequest),
            ApiKey::DescribeProducers => r!(DescribeProducersRequest),
            ApiKey::DescribeTransactions => r!(DescribeTransactionsRequest),
            ApiKey::ListTransactions => r!(ListTransactionsRequest),
            ApiKey::DescribeQuorum => r!(DescribeQuorumRequest),
            ApiKey::SaslHandshake => r!(SaslHandshakeRequest),
            ApiKey::DescribeAcls => r!(DescribeAclsRequest),
            ApiKey::DescribeClientQuotas => r!(DescribeClientQuotasRequest),
            ApiKey::AlterClientQuotas => r!(AlterClientQuotasRequest),
            ApiKey::DescribeLogDirs => r!(DescribeLogDirsRequest),
            ApiKey::CreateAcls => r!(CreateAclsRequest),
            ApiKey::DeleteAcls => r!(DeleteAclsRequest),
            ApiKey::SaslAuthenticate => r!(SaslAuthenticateRequest),
            ApiKey::DescribeUserScramCredentials => r!(DescribeUserScramCredentialsRequest),
            ApiKey::AlterUserScramCredentials => r!(AlterUserScramCredentialsRequest),
            ApiKey::FindCoordinator => r!(FindCoordinatorRequest),
            ApiKey::JoinGroup => r!(JoinGroupRequest),
            ApiKey::SyncGroup => r!(SyncGroupRequest),
            ApiKey::Heartbeat => r!(HeartbeatRequest),
            ApiKey::LeaveGroup => r!(LeaveGroupRequest),
            ApiKey::OffsetCommit => r!(OffsetCommitRequest),
            ApiKey::OffsetFetch => r!(OffsetFetchRequest),
            ApiKey::DescribeGroups => r!(DescribeGroupsRequest),
            ApiKey::ListGroups => r!(ListGroupsRequest),
            ApiKey::DeleteGroups => r!(DeleteGroupsRequest),
            ApiKey::ConsumerGroupHeartbeat => r!(ConsumerGroupHeartbeatRequest),
            ApiKey::ConsumerGroupDescribe => r!(ConsumerGroupDescribeRequest),
            ApiKey::OffsetDelete => r!(OffsetDeleteRequest),
            ApiKey::Vote => r!(VoteRequest),
            ApiKey::BeginQuorumEpoch => r!(BeginQuorumEpochRequest),
            ApiKey::EndQuorumEpoch => r!(EndQuorumEpochRequest),
            ApiKey::FetchSnapshot => r!(FetchSnapshotRequest),
            ApiKey::BrokerRegistration => r!(BrokerRegistrationRequest),
            ApiKey::BrokerHeartbeat => r!(BrokerHeartbeatRequest),
            ApiKey::AllocateProducerIds => r!(AllocateProducerIdsRequest),
            ApiKey::AlterPartition => r!(AlterPartitionRequest),
            ApiKey::ElectLeaders => r!(ElectLeadersRequest),
            ApiKey::AlterPartitionReassignments => r!(AlterPartitionReassignmentsRequest),
            ApiKey::ListPartitionReassignments => r!(ListPartitionReassignmentsRequest),
            other => panic!("add {other:?} to crate_range"),
        }
    }

    #[test]
    fn table_within_what_the_codec_decodes() {
        for r in SUPPORTED_APIS {
            let (min, max) = crate_range(r.key);
            assert!(
                r.min >= min && r.max <= max,
                "{:?} {}-{} outside {min}-{max}",
                r.key,
                r.min,
                r.max
            );
            assert!(r.min <= r.max);
        }
    }

    #[test]
    fn clients_minimums_are_served() {
        // kafka-python 2.0 hard-codes these versions.
        for (key, v) in [
            (ApiKey::Metadata, 1),
            (ApiKey::Produce, 7),
            (ApiKey::Fetch, 4),
            (ApiKey::ListOffsets, 1),
            (ApiKey::ApiVersions, 0),
        ] {
            let r = supported(key, Listener::Broker).expect("served");
            assert!(r.min <= v && v <= r.max, "{key:?} v{v}");
        }
    }

    #[test]
    fn the_metadata_quorum_is_served_on_the_controller_listener_only() {
        // The versions krust's quorum sends at (the highest of each) are served.
        for (key, v) in [
            (ApiKey::Vote, 2),
            (ApiKey::BeginQuorumEpoch, 1),
            (ApiKey::EndQuorumEpoch, 1),
            (ApiKey::FetchSnapshot, 1),
            (ApiKey::Fetch, 16),
        ] {
            let r = supported(key, Listener::Controller).expect("served");
            assert!(r.min <= v && v <= r.max, "{key:?} v{v}");
        }
        for key in [
            ApiKey::Vote,
            ApiKey::BeginQuorumEpoch,
            ApiKey::EndQuorumEpoch,
            ApiKey::FetchSnapshot,
        ] {
            assert!(supported(key, Listener::Broker).is_none(), "{key:?}");
        }
        assert!(supported(ApiKey::Fetch, Listener::Broker).is_some());
    }

    #[test]
    fn each_api_appears_once() {
        for (i, r) in SUPPORTED_APIS.iter().enumerate() {
            assert!(
                SUPPORTED_APIS[..i].iter().all(|o| o.key != r.key),
                "{:?} twice",
                r.key
            );
        }
    }
}
