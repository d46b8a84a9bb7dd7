//! The transaction coordinator's APIs: AddPartitionsToTxn (24), AddOffsetsToTxn (25) and
//! EndTxn (26) from transactional producers, WriteTxnMarkers (27) between brokers, and
//! for tools ListTransactions (66), DescribeTransactions (65) and, from partition leaders,
//! DescribeProducers (61). The coordinator itself is [`crate::txn`].

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
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
/// Kafka; otherwise all share the coordinator's answer. v4 (between brokers) carries
/// several transactions, for partition verification (`verify_only`).
pub async fn add_partitions(
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version >= 4 {
        return verify_partitions(broker, req).await;
    }
    let image = broker.image();
    let mut wanted: Vec<(String, i32)> = Vec::new();
    let mut unknown = std::collections::HashSet::new();
    let mut internal = std::collections::HashSet::new();
    for t in &req.v3_and_below_topics {
        let name = t.name.to_string();
        for &p in &t.partitions {
            let exists = image
                .topic(&name)
                .is_some_and(|ti| ti.partitions.contains_key(&p));
            if !exists || krust_metadata::topic_name::is_internal(&name) {
                unknown.insert((name.clone(), p));
            }
            // Internal topics never join a transaction: refused as unauthorized, as Kafka
            // leaves them out of the topics a producer may write.
            if krust_metadata::topic_name::is_internal(&name) {
                internal.insert((name.clone(), p));
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
        if internal.contains(tp) {
            ErrorCode::TopicAuthorizationFailed.code()
        } else if unknown.contains(tp) {
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

/// AddPartitionsToTxn v4: each transaction's partitions checked (`verify_only`) or
/// added, as a partition leader or another coordinator asks.
async fn verify_partitions(
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut resp = AddPartitionsToTxnResponse::default();
    for t in req.transactions {
        let parts: Vec<(String, i32)> = t
            .topics
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.name.to_string(), *p)))
            .collect();
        let codes: Vec<i16> = if t.verify_only {
            match broker
                .txn_verify(
                    &t.transactional_id,
                    t.producer_id.0,
                    t.producer_epoch,
                    &parts,
                )
                .await
            {
                Ok(codes) => codes.into_iter().map(ErrorCode::code).collect(),
                Err(code) => vec![code.code(); parts.len()],
            }
        } else {
            let code = broker
                .txn_add_partitions(
                    &t.transactional_id,
                    t.producer_id.0,
                    t.producer_epoch,
                    &parts,
                    0,
                    4,
                )
                .await
                .err()
                .map_or(0, ErrorCode::code);
            vec![code; parts.len()]
        };
        let mut by_topic: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
        for ((topic, p), code) in parts.into_iter().zip(codes) {
            let result = AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(p)
                .with_partition_error_code(code);
            match by_topic.iter_mut().find(|r| r.name.as_str() == topic) {
                Some(r) => r.results_by_partition.push(result),
                None => by_topic.push(
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(kafka_protocol::messages::TopicName(super::sb(topic)))
                        .with_results_by_partition(vec![result]),
                ),
            }
        }
        resp.results_by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(by_topic),
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

/// ListTransactions: what this node coordinates (the admin client asks every broker).
pub async fn list(
    broker: &Broker,
    req: kafka_protocol::messages::ListTransactionsRequest,
    version: i16,
) -> kafka_protocol::messages::ListTransactionsResponse {
    use kafka_protocol::messages::list_transactions_response::TransactionState;
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let mut resp = kafka_protocol::messages::ListTransactionsResponse::default();
    resp.unknown_state_filters = req
        .state_filters
        .iter()
        .filter(|s| !crate::txn::TxnState::NAMES.contains(&s.as_str()))
        .cloned()
        .collect();
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    for (id, pid, state) in broker.txn_list(&states, &pids, min_duration).await {
        resp.transaction_states.push(
            TransactionState::default()
                .with_transactional_id(kafka_protocol::messages::TransactionalId(super::sb(id)))
                .with_producer_id(kafka_protocol::messages::ProducerId(pid))
                .with_transaction_state(super::sb(state)),
        );
    }
    resp
}

/// DescribeTransactions: each id's state, from its coordinator (NOT_COORDINATOR
/// elsewhere, TRANSACTIONAL_ID_NOT_FOUND if unknown).
pub async fn describe(
    broker: &Broker,
    req: kafka_protocol::messages::DescribeTransactionsRequest,
    _version: i16,
) -> kafka_protocol::messages::DescribeTransactionsResponse {
    use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
    let mut resp = kafka_protocol::messages::DescribeTransactionsResponse::default();
    let mut seen = std::collections::HashSet::new();
    for id in req
        .transactional_ids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
    {
        let mut t = TransactionState::default()
            .with_transactional_id(id.clone())
            .with_transaction_state(super::sb(""))
            .with_transaction_start_time_ms(-1)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1);
        match broker.txn_describe(id).await {
            Ok(m) => {
                t.transaction_state = super::sb(m.state.name());
                t.transaction_timeout_ms = m.timeout_ms;
                t.transaction_start_time_ms = m.start_ms;
                t.producer_id = kafka_protocol::messages::ProducerId(m.producer_id);
                t.producer_epoch = m.producer_epoch;
                let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> =
                    std::collections::BTreeMap::new();
                for (topic, p) in &m.partitions {
                    by_topic.entry(topic.clone()).or_default().push(*p);
                }
                t.topics = by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        TopicData::default()
                            .with_topic(kafka_protocol::messages::TopicName(super::sb(topic)))
                            .with_partitions(partitions)
                    })
                    .collect();
            }
            Err(code) => t.error_code = code.code(),
        }
        resp.transaction_states.push(t);
    }
    resp
}

/// DescribeProducers: the producers a partition's leader knows, with their open
/// transactions.
pub async fn describe_producers(
    broker: &Broker,
    req: kafka_protocol::messages::DescribeProducersRequest,
    _version: i16,
) -> kafka_protocol::messages::DescribeProducersResponse {
    use kafka_protocol::messages::describe_producers_response::{
        PartitionResponse, ProducerState, TopicResponse,
    };
    let mut resp = kafka_protocol::messages::DescribeProducersResponse::default();
    for t in &req.topics {
        let name = t.name.to_string();
        let mut out = TopicResponse::default().with_name(t.name.clone());
        let mut seen = std::collections::HashSet::new();
        for &index in t.partition_indexes.iter().filter(|p| seen.insert(**p)) {
            let mut p = PartitionResponse::default().with_partition_index(index);
            // Any replica answers with its own state (kafka-transactions --broker-id);
            // elsewhere, the error a leader lookup gives.
            let hosted = match broker.partition(&name, index) {
                Some(p) => Ok(p),
                None => Err(broker
                    .leader_partition(&name, index)
                    .err()
                    .unwrap_or(ErrorCode::NotLeaderOrFollower)),
            };
            match hosted {
                Ok(partition) => {
                    p.active_producers = partition
                        .active_producers()
                        .into_iter()
                        .map(|(id, epoch, last_seq, last_ts, coord, txn_start)| {
                            ProducerState::default()
                                .with_producer_id(kafka_protocol::messages::ProducerId(id))
                                .with_producer_epoch(i32::from(epoch))
                                .with_last_sequence(last_seq)
                                .with_last_timestamp(last_ts)
                                .with_coordinator_epoch(coord)
                                .with_current_txn_start_offset(txn_start)
                        })
                        .collect();
                }
                Err(code) => p.error_code = code.code(),
            }
            out.partitions.push(p);
        }
        resp.topics.push(out);
    }
    resp
}
