//! The ACL APIs: DescribeAcls, CreateAcls and DeleteAcls. Strom has no authorizer yet, so
//! each is answered as Apache Kafka 4.4 answers without one: SECURITY_DISABLED, with the
//! message Kafka's broker sends for that API (checked against a 4.4 broker with
//! `kafka-acls --list / --add / --remove`). The authorizer, when it comes, answers here.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};

use super::{log_refusal, str_bytes, RequestContext};
use crate::error::ApiError;

/// Kafka's words for DescribeAcls and CreateAcls without an authorizer.
const NO_AUTHORIZER_ON_BROKER: &str = "No Authorizer is configured on the broker";
/// Kafka's words for DeleteAcls without an authorizer.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn security_disabled(ctx: &RequestContext<'_>, message: &str) -> ApiError {
    let error = ApiError::new(ResponseError::SecurityDisabled, message);
    log_refusal(ctx, "ACLs", &error);
    error
}

pub fn describe_acls(
    ctx: &RequestContext<'_>,
    _request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let error = security_disabled(ctx, NO_AUTHORIZER_ON_BROKER);
    DescribeAclsResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(str_bytes(&error.message)))
}

pub fn create_acls(ctx: &RequestContext<'_>, request: CreateAclsRequest) -> CreateAclsResponse {
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
    CreateAclsResponse::default().with_results(results)
}

pub fn delete_acls(ctx: &RequestContext<'_>, request: DeleteAclsRequest) -> DeleteAclsResponse {
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
    DeleteAclsResponse::default().with_filter_results(results)
}
