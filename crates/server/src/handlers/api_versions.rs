//! ApiVersions (18): the version table, straight from `krust_protocol::SUPPORTED_APIS`.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use krust_protocol::{Listener, SUPPORTED_APIS};

use super::sb;

/// The response listing every API served on `listener`.
pub fn response(listener: Listener) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = SUPPORTED_APIS
        .iter()
        .filter(|r| match listener {
            Listener::Broker => r.broker,
            Listener::Controller => r.controller,
        })
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect();
    resp
}

/// `consumer_groups`: whether the consumer group protocol is on
/// (`group.coordinator.rebalance.protocols`); Kafka leaves its APIs out when it is not.
pub fn handle(
    listener: Listener,
    consumer_groups: bool,
    _req: ApiVersionsRequest,
    _version: i16,
) -> ApiVersionsResponse {
    let mut resp = response(listener);
    if !consumer_groups {
        resp.api_keys.retain(|k| {
            k.api_key != ApiKey::ConsumerGroupHeartbeat as i16
                && k.api_key != ApiKey::ConsumerGroupDescribe as i16
        });
    }
    let level = krust_metadata::METADATA_VERSION_LEVEL;
    resp.supported_features = vec![SupportedFeatureKey::default()
        .with_name(sb("metadata.version"))
        .with_min_version(1)
        .with_max_version(level)];
    resp.finalized_features_epoch = 0;
    resp.finalized_features = vec![FinalizedFeatureKey::default()
        .with_name(sb("metadata.version"))
        .with_min_version_level(level)
        .with_max_version_level(level)];
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_protocol_apis_go_when_it_is_off() {
        let has = |on: bool| {
            handle(Listener::Broker, on, ApiVersionsRequest::default(), 3)
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::ConsumerGroupHeartbeat as i16)
        };
        assert!(has(true));
        assert!(!has(false));
    }
}
