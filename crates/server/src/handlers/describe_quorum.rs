//! DescribeQuorum (55): leader, epoch, high watermark, voters and observers of the metadata
//! quorum (`__cluster_metadata-0`), as `kafka-metadata-quorum describe` reads them.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::Broker;
use crate::metadata_log::METADATA_TOPIC;
use crate::quorum::ReplicaStatus;

pub async fn handle(
    broker: &Broker,
    req: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let status = broker.quorum_status();
    let replica = |r: &ReplicaStatus| {
        ReplicaState::default()
            .with_replica_id(BrokerId(r.node_id))
            .with_replica_directory_id(r.directory_id)
            .with_log_end_offset(r.log_end_offset)
            .with_last_fetch_timestamp(r.last_fetch_timestamp)
            .with_last_caught_up_timestamp(r.last_caught_up_timestamp)
    };
    let mut resp = DescribeQuorumResponse::default();
    for t in &req.topics {
        let mut out = TopicData::default().with_topic_name(t.topic_name.clone());
        for p in &t.partitions {
            let mut data = PartitionData::default().with_partition_index(p.partition_index);
            if t.topic_name.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                data.error_code = ErrorCode::UnknownTopicOrPartition.code();
                data.error_message = Some(sb("only __cluster_metadata-0 has a quorum"));
            } else if status.leader_id < 0 {
                // Only the leader knows the replicas' progress.
                data.error_code = ErrorCode::NotLeaderOrFollower.code();
                data.error_message = Some(sb("this node is not the metadata quorum's leader"));
                data.leader_id = BrokerId(broker.metadata.leader().unwrap_or(-1));
                data.leader_epoch = -1;
                data.high_watermark = -1;
            } else {
                data.leader_id = BrokerId(status.leader_id);
                data.leader_epoch = status.leader_epoch;
                data.high_watermark = status.high_watermark;
                data.current_voters = status.voters.iter().map(replica).collect();
                data.observers = status.observers.iter().map(replica).collect();
            }
            out.partitions.push(data);
        }
        resp.topics.push(out);
    }
    if version >= 2 {
        resp.nodes = status
            .endpoints
            .iter()
            .map(|e| {
                Node::default()
                    .with_node_id(BrokerId(e.node_id))
                    .with_listeners(vec![Listener::default()
                        .with_name(sb(e.listener.clone()))
                        .with_host(sb(e.host.clone()))
                        .with_port(e.port)])
            })
            .collect();
    }
    resp
}
