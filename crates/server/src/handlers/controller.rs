//! The controller's side of the broker lifecycle (KIP-631) and producer id blocks:
//! BrokerRegistration (62), BrokerHeartbeat (63) and AllocateProducerIds (67). Only the
//! active controller answers them; other nodes forward them there (see `forward`), and a
//! node that is not the active controller answers NOT_CONTROLLER.

use kafka_protocol::messages::*;
use krust_metadata::controller::BrokerRegistrationInput;
use krust_metadata::{BrokerEndpoint, BrokerFeature};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::{control_error_code, Broker};

pub async fn broker_registration(
    broker: &Broker,
    req: BrokerRegistrationRequest,
    _version: i16,
) -> BrokerRegistrationResponse {
    let input = BrokerRegistrationInput {
        broker_id: req.broker_id.0,
        cluster_id: req.cluster_id.to_string(),
        incarnation_id: req.incarnation_id,
        listeners: req
            .listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: l.security_protocol,
            })
            .collect(),
        features: req
            .features
            .iter()
            .map(|f| BrokerFeature {
                name: f.name.to_string(),
                min_supported_version: f.min_supported_version,
                max_supported_version: f.max_supported_version,
            })
            .collect(),
        rack: req.rack.as_ref().map(|r| r.to_string()),
        is_migrating_zk_broker: req.is_migrating_zk_broker,
        log_dirs: req.log_dirs.clone(),
    };
    let mut resp = BrokerRegistrationResponse::default().with_broker_epoch(-1);
    match broker.register_broker(&input).await {
        Ok(Ok(epoch)) => resp.broker_epoch = epoch,
        Ok(Err((code, message))) => {
            tracing::info!(broker = input.broker_id, %message, "broker registration refused");
            resp.error_code = code;
        }
        Err(e) => resp.error_code = control_error_code(&e).code(),
    }
    resp
}

pub async fn broker_heartbeat(
    broker: &Broker,
    req: BrokerHeartbeatRequest,
    _version: i16,
) -> BrokerHeartbeatResponse {
    let mut resp = BrokerHeartbeatResponse::default().with_is_fenced(true);
    match broker
        .broker_heartbeat(
            req.broker_id.0,
            req.broker_epoch,
            req.current_metadata_offset,
            req.want_fence,
            req.want_shut_down,
        )
        .await
    {
        Ok(Ok(outcome)) => {
            resp.is_caught_up = outcome.is_caught_up;
            resp.is_fenced = outcome.is_fenced;
            resp.should_shut_down = outcome.should_shut_down;
        }
        Ok(Err(code)) => resp.error_code = code,
        Err(e) => resp.error_code = control_error_code(&e).code(),
    }
    resp
}

pub async fn allocate_producer_ids(
    broker: &Broker,
    req: AllocateProducerIdsRequest,
    _version: i16,
) -> AllocateProducerIdsResponse {
    let mut resp = AllocateProducerIdsResponse::default();
    if !broker.metadata.is_active() {
        resp.error_code = ErrorCode::NotController.code();
        return resp;
    }
    match broker
        .allocate_producer_id_block(req.broker_id.0, req.broker_epoch)
        .await
    {
        Ok((start, len)) => {
            resp.producer_id_start = ProducerId(start);
            resp.producer_id_len = len;
        }
        Err(e) => resp.error_code = control_error_code(&e).code(),
    }
    resp
}

/// The `metadata.version` range this broker supports, for its registration.
pub fn supported_features() -> Vec<broker_registration_request::Feature> {
    vec![broker_registration_request::Feature::default()
        .with_name(sb("metadata.version"))
        .with_min_supported_version(krust_metadata::METADATA_VERSION_LEVEL)
        .with_max_supported_version(krust_metadata::METADATA_VERSION_LEVEL)]
}
