//! DescribeAcls (29), CreateAcls (30) and DeleteAcls (31). krust has no authorizer (as
//! Kafka without `authorizer.class.name`), so each answers SECURITY_DISABLED, item by item,
//! exactly as Kafka does then: admin tools learn that ACLs are off rather than that the
//! APIs are missing.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use krust_protocol::ErrorCode;

use super::sb;
use crate::broker::Broker;

/// Kafka's message for an ACL request to a broker without an authorizer.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

pub async fn describe(
    _broker: &Broker,
    _req: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(ErrorCode::SecurityDisabled.code())
        .with_error_message(Some(sb(NO_AUTHORIZER)))
}

pub async fn create(_broker: &Broker, req: CreateAclsRequest, _version: i16) -> CreateAclsResponse {
    CreateAclsResponse::default().with_results(
        req.creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(ErrorCode::SecurityDisabled.code())
                    .with_error_message(Some(sb(NO_AUTHORIZER)))
            })
            .collect(),
    )
}

pub async fn delete(_broker: &Broker, req: DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
    DeleteAclsResponse::default().with_filter_results(
        req.filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(ErrorCode::SecurityDisabled.code())
                    .with_error_message(Some(sb(NO_AUTHORIZER)))
            })
            .collect(),
    )
}
