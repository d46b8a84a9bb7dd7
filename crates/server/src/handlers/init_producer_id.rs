//! InitProducerId (22): a producer id and epoch.
//!
//! Without a transactional id: a fresh id for an idempotent producer, from blocks reserved
//! through the metadata log (ProducerIdsRecord), so an id is never handed out twice, across
//! restarts included. With one: the transaction coordinator's id for it and a new epoch,
//! which fences the producer's earlier instances (see [`crate::txn`]).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(txn_id) = &req.transactional_id {
        // KIP-360 (v3+): a producer that had an id says which.
        let expected = (version >= 3 && req.producer_id.0 >= 0)
            .then_some((req.producer_id.0, req.producer_epoch));
        match broker
            .txn_init_producer(txn_id, req.transaction_timeout_ms, expected, version)
            .await
        {
            Ok((id, epoch)) => {
                resp.producer_id = ProducerId(id);
                resp.producer_epoch = epoch;
            }
            Err(code) => resp.error_code = code.code(),
        }
        return resp;
    }
    match broker.allocate_producer_id().await {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not allocate a producer id");
            resp.error_code = crate::broker::control_error_code(&e).code();
        }
    }
    resp
}
