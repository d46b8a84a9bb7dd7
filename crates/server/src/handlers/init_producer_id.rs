//! InitProducerId (22): a fresh producer id for an idempotent producer.
//!
//! Ids come from blocks reserved through the metadata log (ProducerIdsRecord), so an id is
//! never handed out twice, across restarts included. Transactions are not implemented: a
//! request with a transactional id is refused rather than half-served.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use krust_protocol::ErrorCode;

use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        tracing::info!(
            "refusing InitProducerId with a transactional id: transactions are not supported"
        );
        resp.error_code = ErrorCode::UnsupportedVersion.code();
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
