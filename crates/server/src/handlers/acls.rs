//! DescribeAcls (29), CreateAcls (30) and DeleteAcls (31).
//!
//! With the authorizer on (`authorizer.class.name`), ACLs live in the metadata log as
//! AccessControlEntry records: DescribeAcls reads this node's image, CreateAcls and
//! DeleteAcls are decisions of the active controller (forwarded there). Without an
//! authorizer each answers SECURITY_DISABLED, as Kafka does then: admin tools learn that
//! ACLs are off rather than that the APIs are missing.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use krust_metadata::acl::{Acl, AclFilter};
use krust_metadata::MetadataRecord;
use krust_protocol::ErrorCode;
use uuid::Uuid;

use super::{opt, sb};
use crate::broker::Broker;

/// A resource pattern: type, name, pattern type.
type Pattern<'a> = (i8, &'a str, i8);
/// An entry: principal, host, operation, permission.
type Entry<'a> = (&'a str, &'a str, i8, i8);

/// Kafka's message for an ACL request to a broker without an authorizer.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn filter(
    resource_type: i8,
    resource_name: &Option<kafka_protocol::protocol::StrBytes>,
    pattern_type: i8,
    principal: &Option<kafka_protocol::protocol::StrBytes>,
    host: &Option<kafka_protocol::protocol::StrBytes>,
    operation: i8,
    permission: i8,
) -> AclFilter {
    AclFilter {
        resource_type,
        resource_name: opt(resource_name),
        pattern_type,
        principal: opt(principal),
        host: opt(host),
        operation,
        permission,
    }
}

pub async fn describe(
    broker: &Broker,
    req: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
    let resp = DescribeAclsResponse::default();
    if broker.config.authorizer.is_none() {
        return resp
            .with_error_code(ErrorCode::SecurityDisabled.code())
            .with_error_message(Some(sb(NO_AUTHORIZER)));
    }
    let f = filter(
        req.resource_type_filter,
        &req.resource_name_filter,
        req.pattern_type_filter,
        &req.principal_filter,
        &req.host_filter,
        req.operation,
        req.permission_type,
    );
    if let Some(why) = f.invalid() {
        return resp
            .with_error_code(ErrorCode::InvalidRequest.code())
            .with_error_message(Some(sb(why)));
    }
    let image = broker.image();
    // Grouped by resource pattern, each pattern's entries in a stable order.
    let mut by_resource: BTreeMap<Pattern, BTreeSet<Entry>> = BTreeMap::new();
    for (_, a) in image.acls.iter().filter(|(_, a)| f.matches(a)) {
        by_resource
            .entry((a.resource_type, &a.resource_name, a.pattern_type))
            .or_default()
            .insert((&a.principal, &a.host, a.operation, a.permission));
    }
    resp.with_resources(
        by_resource
            .into_iter()
            .map(|((rt, name, pt), entries)| {
                DescribeAclsResource::default()
                    .with_resource_type(rt)
                    .with_resource_name(sb(name))
                    .with_pattern_type(pt)
                    .with_acls(
                        entries
                            .into_iter()
                            .map(|(principal, host, operation, permission)| {
                                AclDescription::default()
                                    .with_principal(sb(principal))
                                    .with_host(sb(host))
                                    .with_operation(operation)
                                    .with_permission_type(permission)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn item_error(code: ErrorCode, message: impl Into<String>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code.code())
        .with_error_message(Some(sb(message)))
}

pub async fn create(broker: &Broker, req: CreateAclsRequest, _version: i16) -> CreateAclsResponse {
    if broker.config.authorizer.is_none() {
        return CreateAclsResponse::default().with_results(
            req.creations
                .iter()
                .map(|_| item_error(ErrorCode::SecurityDisabled, NO_AUTHORIZER))
                .collect(),
        );
    }
    let acls: Vec<Result<Acl, String>> = req
        .creations
        .iter()
        .map(|c| {
            let acl = Acl {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission: c.permission_type,
            };
            match acl.invalid() {
                Some(why) => Err(why),
                None => Ok(acl),
            }
        })
        .collect();
    let outcome = broker
        .control(|image| {
            let mut records = Vec::new();
            let mut added: BTreeSet<&Acl> = BTreeSet::new();
            for acl in acls.iter().flatten() {
                // One that exists already, or earlier in this request, is not added twice.
                if image.acls.find(acl).is_none() && added.insert(acl) {
                    records.push(MetadataRecord::AccessControlEntry {
                        id: Uuid::new_v4(),
                        acl: acl.clone(),
                    });
                }
            }
            (records, ())
        })
        .await;
    let results = acls
        .iter()
        .map(|a| match (a, &outcome) {
            (Err(why), _) => item_error(ErrorCode::InvalidRequest, why.clone()),
            (Ok(_), Ok(())) => AclCreationResult::default(),
            (Ok(_), Err(e)) => item_error(crate::broker::control_error_code(e), e.to_string()),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn delete(broker: &Broker, req: DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
    let filter_error = |code: ErrorCode, message: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(sb(message)))
    };
    if broker.config.authorizer.is_none() {
        return DeleteAclsResponse::default().with_filter_results(
            req.filters
                .iter()
                .map(|_| filter_error(ErrorCode::SecurityDisabled, NO_AUTHORIZER.into()))
                .collect(),
        );
    }
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let outcome = broker
        .control(|image| {
            let mut removed: BTreeSet<Uuid> = BTreeSet::new();
            let mut results = Vec::new();
            for f in &filters {
                if let Some(why) = f.invalid() {
                    results.push(Err(why));
                    continue;
                }
                let matched: Vec<Acl> = image
                    .acls
                    .iter()
                    .filter(|(_, a)| f.matches(a))
                    .map(|(id, a)| {
                        removed.insert(*id);
                        a.clone()
                    })
                    .collect();
                results.push(Ok(matched));
            }
            let records = removed
                .into_iter()
                .map(|id| MetadataRecord::RemoveAccessControlEntry { id })
                .collect();
            (records, results)
        })
        .await;
    let results = match outcome {
        Err(e) => filters
            .iter()
            .map(|_| filter_error(crate::broker::control_error_code(&e), e.to_string()))
            .collect(),
        Ok(results) => results
            .into_iter()
            .map(|r| match r {
                Err(why) => filter_error(ErrorCode::InvalidRequest, why),
                Ok(matched) => DeleteAclsFilterResult::default().with_matching_acls(
                    matched
                        .into_iter()
                        .map(|a| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(a.resource_type)
                                .with_resource_name(sb(a.resource_name))
                                .with_pattern_type(a.pattern_type)
                                .with_principal(sb(a.principal))
                                .with_host(sb(a.host))
                                .with_operation(a.operation)
                                .with_permission_type(a.permission)
                        })
                        .collect(),
                ),
            })
            .collect(),
    };
    DeleteAclsResponse::default().with_filter_results(results)
}
