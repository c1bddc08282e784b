//! The ACL APIs: DescribeAcls, CreateAcls and DeleteAcls.
//!
//! Without an authorizer (`authorizer.class.name` unset) each is answered as Apache Kafka
//! 4.4 answers without one: SECURITY_DISABLED, with the message Kafka's broker sends for
//! that API (checked against a 4.4 broker with `kafka-acls --list / --add / --remove`).
//!
//! With one, as Kafka's `AclApis`: DescribeAcls needs DESCRIBE on the cluster and is
//! answered from this broker's image, grouped by resource pattern; CreateAcls and
//! DeleteAcls need ALTER on the cluster, are checked here (`auth::acl::validate_*`) and
//! forwarded to the active controller (`controller::acls`), whose records every broker
//! applies. A request Kafka could not parse (an UNKNOWN code) closes the connection, see
//! [`unparseable`].

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, RequestKind,
};
use kafka_protocol::protocol::StrBytes;

use super::{log_refusal, str_bytes, RequestContext};
use crate::auth::acl::{
    validate_create_request, validate_delete_request, validate_describe_filter, AclBinding,
    AclBindingFilter, AclError, AclOperation, AclPermissionType, PatternType, ResourceType,
    CLUSTER_NAME,
};
use crate::auth::authorize::{authorize, enabled};
use crate::broker::Broker;
use crate::controller::acls::acl_api_error;
use crate::error::ApiError;
use crate::quorum::{ControllerOk, ControllerRequest};

/// Kafka's words for DescribeAcls and CreateAcls without an authorizer.
const NO_AUTHORIZER_ON_BROKER: &str = "No Authorizer is configured on the broker";
/// Kafka's words for DeleteAcls without an authorizer.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn security_disabled(ctx: &RequestContext<'_>, message: &str) -> ApiError {
    let error = ApiError::new(ResponseError::SecurityDisabled, message);
    log_refusal(ctx, "ACLs", &error);
    error
}

/// `AuthHelper.authorizeClusterOperation`: the API's own permission on the cluster, or
/// CLUSTER_AUTHORIZATION_FAILED for the whole request. Kafka's message names its request
/// object; Strom's names the API and principal.
fn check_cluster(broker: &Broker, ctx: &RequestContext<'_>, op: AclOperation) -> Option<ApiError> {
    if authorize(broker, ctx, op, ResourceType::Cluster, CLUSTER_NAME) {
        return None;
    }
    let error = ApiError::new(
        ResponseError::ClusterAuthorizationFailed,
        format!(
            "Request {:?} from {} is not authorized.",
            ctx.api_key, ctx.connection.principal
        ),
    );
    log_refusal(ctx, "cluster", &error);
    Some(error)
}

fn opt_str(s: &Option<StrBytes>) -> Option<&str> {
    s.as_ref().map(|s| s.as_str())
}

/// DescribeAcls' filter, as the handler (and the fuzzer) reads it.
pub fn describe_filter(r: &DescribeAclsRequest) -> AclBindingFilter {
    AclBindingFilter::new(
        ResourceType::from_code(r.resource_type_filter),
        opt_str(&r.resource_name_filter),
        PatternType::from_code(r.pattern_type_filter),
        opt_str(&r.principal_filter),
        opt_str(&r.host_filter),
        AclOperation::from_code(r.operation),
        AclPermissionType::from_code(r.permission_type),
    )
}

/// CreateAcls' bindings, as the handler (and the fuzzer) reads them.
pub fn creation_bindings(r: &CreateAclsRequest) -> Vec<AclBinding> {
    r.creations
        .iter()
        .map(|c| {
            AclBinding::new(
                ResourceType::from_code(c.resource_type),
                c.resource_name.as_str(),
                PatternType::from_code(c.resource_pattern_type),
                c.principal.as_str(),
                c.host.as_str(),
                AclOperation::from_code(c.operation),
                AclPermissionType::from_code(c.permission_type),
            )
        })
        .collect()
}

/// DeleteAcls' filters, as the handler (and the fuzzer) reads them.
pub fn deletion_filters(r: &DeleteAclsRequest) -> Vec<AclBindingFilter> {
    r.filters
        .iter()
        .map(|f| {
            AclBindingFilter::new(
                ResourceType::from_code(f.resource_type_filter),
                opt_str(&f.resource_name_filter),
                PatternType::from_code(f.pattern_type_filter),
                opt_str(&f.principal_filter),
                opt_str(&f.host_filter),
                AclOperation::from_code(f.operation),
                AclPermissionType::from_code(f.permission_type),
            )
        })
        .collect()
}

/// With an authorizer, why an ACL request must close the connection instead of being
/// answered: Kafka refuses UNKNOWN codes while parsing the request, and a request that
/// does not parse gets no response. Without an authorizer every ACL request keeps its
/// SECURITY_DISABLED answer (Strom's behaviour before the authorizer, which its tests and
/// frame corpus pin).
pub fn unparseable(broker: &Broker, request: &RequestKind) -> Option<String> {
    if !enabled(broker) {
        return None;
    }
    let refused = match request {
        RequestKind::DescribeAcls(r) => validate_describe_filter(&describe_filter(r)).err(),
        RequestKind::CreateAcls(r) => validate_create_request(&creation_bindings(r))
            .err()
            .filter(|e| matches!(e, AclError::Unparseable(_))),
        RequestKind::DeleteAcls(r) => validate_delete_request(&deletion_filters(r)).err(),
        _ => None,
    };
    refused.map(|e| e.to_string())
}

/// The error's text for the response: Kafka sends none with UNKNOWN_SERVER_ERROR.
fn message(e: &ApiError) -> Option<StrBytes> {
    (e.error != ResponseError::UnknownServerError).then(|| str_bytes(&e.message))
}

pub fn describe_acls(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let image = broker.metadata.image();
    let Some(authorizer) = broker.acls.current(&image) else {
        let error = security_disabled(ctx, NO_AUTHORIZER_ON_BROKER);
        return DescribeAclsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&error.message)));
    };
    let refused = check_cluster(broker, ctx, AclOperation::Describe).or_else(|| {
        let filter = describe_filter(&request);
        validate_describe_filter(&filter)
            .err()
            .map(|e| acl_api_error(&e))
    });
    if let Some(error) = refused {
        return DescribeAclsResponse::default()
            .with_error_code(error.code())
            .with_error_message(message(&error));
    }
    let found = authorizer.acls(&describe_filter(&request));
    // `DescribeAclsResponse.aclsResources`: one entry per resource pattern. Kafka's order is
    // a hash map's; Strom's is the listing order, in which a pattern's ACLs are adjacent.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for (_, binding) in found {
        let p = &binding.pattern;
        let same = resources.last().is_some_and(|r| {
            r.resource_type == p.resource_type.code()
                && r.pattern_type == p.pattern_type.code()
                && r.resource_name.as_str() == p.name
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(p.resource_type.code())
                    .with_resource_name(str_bytes(&p.name))
                    .with_pattern_type(p.pattern_type.code()),
            );
        }
        let e = &binding.entry;
        if let Some(last) = resources.last_mut() {
            last.acls.push(
                AclDescription::default()
                    .with_principal(str_bytes(&e.principal))
                    .with_host(str_bytes(&e.host))
                    .with_operation(e.operation.code())
                    .with_permission_type(e.permission_type.code()),
            );
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

fn creation_result(result: &Result<(), ApiError>) -> AclCreationResult {
    match result {
        Ok(()) => AclCreationResult::default(),
        Err(e) => AclCreationResult::default()
            .with_error_code(e.code())
            .with_error_message(message(e)),
    }
}

pub async fn create_acls(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    if !enabled(broker) {
        let error = security_disabled(ctx, NO_AUTHORIZER_ON_BROKER);
        let results = request
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(&error.message)))
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let bindings = creation_bindings(&request);
    let everyone = |e: ApiError| {
        CreateAclsResponse::default().with_results(
            bindings
                .iter()
                .map(|_| creation_result(&Err(e.clone())))
                .collect(),
        )
    };
    if let Some(error) = check_cluster(broker, ctx, AclOperation::Alter) {
        return everyone(error);
    }
    let checked = match validate_create_request(&bindings) {
        Ok(checked) => checked,
        Err(e) => return everyone(acl_api_error(&e)),
    };
    let mut results: Vec<Result<(), ApiError>> = checked
        .iter()
        .map(|r| r.as_ref().map_err(acl_api_error).copied())
        .collect();
    let valid: Vec<usize> = (0..bindings.len())
        .filter(|&i| results[i].is_ok())
        .collect();
    if !valid.is_empty() {
        let sent: Vec<AclBinding> = valid.iter().map(|&i| bindings[i].clone()).collect();
        let answers = match broker
            .controller(ControllerRequest::CreateAcls {
                bindings: sent.clone(),
            })
            .await
        {
            Ok(ControllerOk::AclsCreated(answers)) if answers.len() == valid.len() => answers,
            Ok(other) => vec![Err(unexpected(&other)); valid.len()],
            Err(e) => vec![Err(e); valid.len()],
        };
        for (&i, answer) in valid.iter().zip(answers) {
            results[i] = answer;
        }
        // Read-your-writes on this broker: a DescribeAcls right after sees the ACLs.
        let created: Vec<&AclBinding> = valid
            .iter()
            .filter(|&&i| results[i].is_ok())
            .map(|&i| &bindings[i])
            .collect();
        if !created.is_empty() {
            broker
                .await_image(|image| {
                    created
                        .iter()
                        .all(|b| image.acls.values().any(|stored| stored == *b))
                })
                .await;
        }
    }
    for (result, binding) in results.iter().zip(&bindings) {
        if let Err(e) = result {
            log_refusal(ctx, &format!("{binding:?}"), e);
        }
    }
    CreateAclsResponse::default().with_results(results.iter().map(creation_result).collect())
}

fn unexpected(reply: &ControllerOk) -> ApiError {
    ApiError::new(
        ResponseError::UnknownServerError,
        format!("unexpected controller reply {reply:?}"),
    )
}

fn filter_result(result: &Result<Vec<AclBinding>, ApiError>) -> DeleteAclsFilterResult {
    match result {
        Err(e) => DeleteAclsFilterResult::default()
            .with_error_code(e.code())
            .with_error_message(message(e)),
        Ok(bindings) => DeleteAclsFilterResult::default().with_matching_acls(
            bindings
                .iter()
                .map(|b| {
                    DeleteAclsMatchingAcl::default()
                        .with_resource_type(b.pattern.resource_type.code())
                        .with_resource_name(str_bytes(&b.pattern.name))
                        .with_pattern_type(b.pattern.pattern_type.code())
                        .with_principal(str_bytes(&b.entry.principal))
                        .with_host(str_bytes(&b.entry.host))
                        .with_operation(b.entry.operation.code())
                        .with_permission_type(b.entry.permission_type.code())
                })
                .collect(),
        ),
    }
}

pub async fn delete_acls(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    if !enabled(broker) {
        let error = security_disabled(ctx, NO_AUTHORIZER);
        let results = request
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(&error.message)))
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let filters = deletion_filters(&request);
    let everyone = |e: ApiError| {
        DeleteAclsResponse::default().with_filter_results(
            filters
                .iter()
                .map(|_| filter_result(&Err(e.clone())))
                .collect(),
        )
    };
    if let Some(error) = check_cluster(broker, ctx, AclOperation::Alter) {
        return everyone(error);
    }
    let checked = match validate_delete_request(&filters) {
        Ok(checked) => checked,
        Err(e) => return everyone(acl_api_error(&e)),
    };
    let mut results: Vec<Result<Vec<AclBinding>, ApiError>> = checked
        .iter()
        .map(|r| r.as_ref().map_err(acl_api_error).map(|()| Vec::new()))
        .collect();
    let valid: Vec<usize> = (0..filters.len()).filter(|&i| results[i].is_ok()).collect();
    if !valid.is_empty() {
        let sent: Vec<AclBindingFilter> = valid.iter().map(|&i| filters[i].clone()).collect();
        let answers = match broker
            .controller(ControllerRequest::DeleteAcls { filters: sent })
            .await
        {
            Ok(ControllerOk::AclsDeleted(answers)) if answers.len() == valid.len() => answers,
            Ok(other) => vec![Err(unexpected(&other)); valid.len()],
            Err(e) => vec![Err(e); valid.len()],
        };
        let mut removed = Vec::new();
        for (&i, answer) in valid.iter().zip(answers) {
            results[i] = answer.map(|deleted| {
                deleted
                    .into_iter()
                    .map(|(id, binding)| {
                        removed.push(id);
                        binding
                    })
                    .collect()
            });
        }
        if !removed.is_empty() {
            broker
                .await_image(|image| removed.iter().all(|id| !image.acls.contains_key(id)))
                .await;
        }
    }
    for result in &results {
        if let Err(e) = result {
            log_refusal(ctx, "ACL filter", e);
        }
    }
    DeleteAclsResponse::default().with_filter_results(results.iter().map(filter_result).collect())
}
