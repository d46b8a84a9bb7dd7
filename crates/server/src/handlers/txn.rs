//! The transaction coordinator's APIs: AddPartitionsToTxn (24), AddOffsetsToTxn (25) and
//! EndTxn (26) from transactional producers, and WriteTxnMarkers (27) between brokers. The
//! coordinator itself is [`crate::txn`].

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use krust_protocol::ErrorCode;

use crate::broker::Broker;

/// AddPartitionsToTxn v0-3 (one transaction, from its producer). Partitions that do not
/// exist are UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in
/// Kafka; otherwise all share the coordinator's answer.
pub async fn add_partitions(
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let image = broker.image();
    let mut wanted: Vec<(String, i32)> = Vec::new();
    let mut unknown = std::collections::HashSet::new();
    for t in &req.v3_and_below_topics {
        let name = t.name.to_string();
        for &p in &t.partitions {
            let exists = image
                .topic(&name)
                .is_some_and(|ti| ti.partitions.contains_key(&p));
            if !exists || krust_metadata::topic_name::is_internal(&name) {
                unknown.insert((name.clone(), p));
            }
            wanted.push((name.clone(), p));
        }
    }
    let result = if unknown.is_empty() {
        broker
            .txn_add_partitions(
                &req.v3_and_below_transactional_id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &wanted,
                2,
                version,
            )
            .await
    } else {
        Err(ErrorCode::OperationNotAttempted)
    };
    let code_of = |tp: &(String, i32)| -> i16 {
        if unknown.contains(tp) {
            ErrorCode::UnknownTopicOrPartition.code()
        } else {
            match result {
                Ok(()) => 0,
                Err(e) => e.code(),
            }
        }
    };
    let mut resp = AddPartitionsToTxnResponse::default();
    for t in &req.v3_and_below_topics {
        let name = t.name.to_string();
        let results = t
            .partitions
            .iter()
            .map(|&p| {
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(p)
                    .with_partition_error_code(code_of(&(name.clone(), p)))
            })
            .collect();
        resp.results_by_topic_v3_and_below.push(
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(results),
        );
    }
    resp
}

/// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the transaction, so
/// that the offsets TxnOffsetCommit writes there get the transaction's marker.
pub async fn add_offsets(
    broker: &Broker,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let result = match broker.group_partition(&req.group_id).await {
        Ok(p) => {
            broker
                .txn_add_partitions(
                    &req.transactional_id,
                    req.producer_id.0,
                    req.producer_epoch,
                    &[(crate::groups::OFFSETS_TOPIC.to_string(), p)],
                    2,
                    version,
                )
                .await
        }
        Err((code, _)) => Err(code),
    };
    AddOffsetsToTxnResponse::default().with_error_code(result.err().map_or(0, ErrorCode::code))
}

/// EndTxn: commit or abort.
pub async fn end(broker: &Broker, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let result = broker
        .txn_end(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            version,
        )
        .await;
    EndTxnResponse::default().with_error_code(result.err().map_or(0, ErrorCode::code))
}

/// WriteTxnMarkers (from a transaction coordinator).
pub async fn write_markers(
    broker: &Broker,
    req: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    broker.write_txn_markers(req).await
}
