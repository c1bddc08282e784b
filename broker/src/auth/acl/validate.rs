//! What Kafka refuses in CreateAcls, DescribeAcls and DeleteAcls, with its error codes
//! and messages, and where each refusal lands.
//!
//! In Kafka a refusal comes from one of three layers, and the layer decides its reach:
//! 1. Request parsing (`CreateAclsRequest.validate`, `DescribeAclsRequest` and
//!    `DeleteAclsRequest.normalizeAndValidate`) refuses any UNKNOWN code (a code Kafka does
//!    not define reads as UNKNOWN). The parse failure becomes an `InvalidRequestException`
//!    in `RequestContext.parseRequest`, and the socket server closes the connection: no
//!    response at all.
//! 2. Building the `AclBinding` in `AclApis.handleCreateAcls` throws
//!    `IllegalArgumentException` for resource type ANY, pattern type ANY or MATCH,
//!    operation ANY or permission ANY. That escapes the handler, so every creation of the
//!    request gets UNKNOWN_SERVER_ERROR with no message (`ApiError.fromThrowable`).
//! 3. Per item, INVALID_REQUEST with a message: `AclApis.handleCreateAcls` (CLUSTER name,
//!    empty name), then `AclControlManager.validateNewAcl` on the controller; for
//!    DeleteAcls, `AclControlManager.validateFilter`. DescribeAcls has no third layer.
//!
//! Layer 3's checks of the enums can no longer fail once layers 1 and 2 pass; they are kept,
//! in Kafka's order, so the functions give Kafka's answer for any input.

use kafka_protocol::error::ResponseError;
use thiserror::Error;

use super::filter::AclBindingFilter;
use super::model::{
    AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType, CLUSTER_NAME,
};

/// How far a refusal reaches (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorScope {
    /// Kafka cannot parse the request: it closes the connection and sends nothing.
    Connection,
    /// The whole request fails: every item gets the error.
    Request,
    /// Only this creation or filter fails.
    Item,
}

/// Why Kafka refuses an ACL or a filter. The text is Kafka's exception message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AclError {
    /// An UNKNOWN element, refused while parsing: the connection is closed.
    #[error("{0}")]
    Unparseable(String),
    /// Refused by Kafka's `AclBinding` constructor: the whole request fails with
    /// UNKNOWN_SERVER_ERROR and no message.
    #[error("{0}")]
    IllegalArgument(String),
    /// INVALID_REQUEST, with this message, for this item.
    #[error("{0}")]
    InvalidRequest(String),
}

impl AclError {
    pub fn scope(&self) -> ErrorScope {
        match self {
            AclError::Unparseable(_) => ErrorScope::Connection,
            AclError::IllegalArgument(_) => ErrorScope::Request,
            AclError::InvalidRequest(_) => ErrorScope::Item,
        }
    }

    /// The response error code. For [`AclError::Unparseable`] no response is sent; the code
    /// is that of the exception Kafka raises before closing.
    pub fn error(&self) -> ResponseError {
        match self {
            AclError::Unparseable(_) | AclError::InvalidRequest(_) => ResponseError::InvalidRequest,
            AclError::IllegalArgument(_) => ResponseError::UnknownServerError,
        }
    }

    /// The response's error message: Kafka sends none with UNKNOWN_SERVER_ERROR, so as
    /// not to leak internals.
    pub fn response_message(&self) -> Option<&str> {
        match self {
            AclError::IllegalArgument(_) => None,
            AclError::Unparseable(m) | AclError::InvalidRequest(m) => Some(m),
        }
    }
}

/// One creation, through every layer Kafka passes it through, stopping at the first
/// refusal. For a whole request use [`validate_create_request`], which also gives the
/// request-wide refusals their reach.
pub fn validate_new_acl(binding: &AclBinding) -> Result<(), AclError> {
    check_creation_parses(binding)?;
    check_binding_constructible(binding)?;
    check_acl_apis(binding)?;
    check_control_manager(binding)
}

/// A CreateAcls request: `Err` when the whole request fails (connection closed, or every
/// creation UNKNOWN_SERVER_ERROR), otherwise one result per creation, in order.
pub fn validate_create_request(
    bindings: &[AclBinding],
) -> Result<Vec<Result<(), AclError>>, AclError> {
    // Parsing looks at every creation before the handler sees any of them.
    for binding in bindings {
        check_creation_parses(binding)?;
    }
    for binding in bindings {
        check_binding_constructible(binding)?;
    }
    Ok(bindings
        .iter()
        .map(|b| check_acl_apis(b).and_then(|()| check_control_manager(b)))
        .collect())
}

/// A DescribeAcls filter. Kafka checks only for UNKNOWN elements, while parsing.
pub fn validate_describe_filter(filter: &AclBindingFilter) -> Result<(), AclError> {
    if filter.is_unknown() {
        return Err(AclError::Unparseable(format!(
            "DescribeAclsRequest contains UNKNOWN elements: {filter:?}"
        )));
    }
    Ok(())
}

/// A DeleteAcls request: `Err` when the connection is closed (an UNKNOWN element in any
/// filter), otherwise one result per filter (`AclControlManager.validateFilter`).
pub fn validate_delete_request(
    filters: &[AclBindingFilter],
) -> Result<Vec<Result<(), AclError>>, AclError> {
    if let Some(bad) = filters.iter().find(|f| f.is_unknown()) {
        return Err(AclError::Unparseable(format!(
            "Filters contain UNKNOWN elements, filters: {bad:?}"
        )));
    }
    Ok(filters.iter().map(validate_delete_filter).collect())
}

/// `AclControlManager.validateFilter`: the controller's check of one DeleteAcls filter.
pub fn validate_delete_filter(filter: &AclBindingFilter) -> Result<(), AclError> {
    if filter.pattern.is_unknown() {
        return Err(AclError::InvalidRequest("Unknown patternFilter.".into()));
    }
    if filter.entry.is_unknown() {
        return Err(AclError::InvalidRequest("Unknown entryFilter.".into()));
    }
    Ok(())
}

/// Layer 1 for a creation (`CreateAclsRequest.validate`).
fn check_creation_parses(binding: &AclBinding) -> Result<(), AclError> {
    if binding.is_unknown() {
        return Err(AclError::Unparseable(format!(
            "CreatableAcls contain unknown elements: {binding:?}"
        )));
    }
    Ok(())
}

/// Layer 2: `ResourcePattern`'s and `AccessControlEntry`'s constructors, in the order
/// `CreateAclsRequest.aclBinding` calls them.
fn check_binding_constructible(binding: &AclBinding) -> Result<(), AclError> {
    if binding.pattern.resource_type == ResourceType::Any {
        return Err(AclError::IllegalArgument(
            "resourceType must not be ANY".into(),
        ));
    }
    if let pt @ (PatternType::Match | PatternType::Any) = binding.pattern.pattern_type {
        return Err(AclError::IllegalArgument(format!(
            "patternType must not be {pt}"
        )));
    }
    if binding.entry.operation == AclOperation::Any {
        return Err(AclError::IllegalArgument(
            "operation must not be ANY".into(),
        ));
    }
    if binding.entry.permission_type == AclPermissionType::Any {
        return Err(AclError::IllegalArgument(
            "permissionType must not be ANY".into(),
        ));
    }
    Ok(())
}

/// Layer 3 on the handling node (`AclApis.handleCreateAcls`).
fn check_acl_apis(binding: &AclBinding) -> Result<(), AclError> {
    let pattern = &binding.pattern;
    if pattern.resource_type == ResourceType::Cluster && pattern.name != CLUSTER_NAME {
        return Err(AclError::InvalidRequest(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        )));
    }
    if pattern.name.is_empty() {
        return Err(AclError::InvalidRequest(
            "Invalid empty resource name".into(),
        ));
    }
    Ok(())
}

/// Layer 3 on the controller (`AclControlManager.validateNewAcl`), plus the principal
/// check Kafka 4.0 added there (KAFKA-18051): before it, a principal without ':' was stored
/// and then broke every authorization that reached it (`StandardAcl.kafkaPrincipal` throws).
fn check_control_manager(binding: &AclBinding) -> Result<(), AclError> {
    let (pattern, entry) = (&binding.pattern, &binding.entry);
    if matches!(
        pattern.resource_type,
        ResourceType::Unknown | ResourceType::Any
    ) {
        return Err(invalid("resourceType", pattern.resource_type));
    }
    if !pattern.pattern_type.is_specific() {
        return Err(invalid("patternType", pattern.pattern_type));
    }
    if matches!(entry.operation, AclOperation::Unknown | AclOperation::Any) {
        return Err(invalid("operation", entry.operation));
    }
    if !matches!(
        entry.permission_type,
        AclPermissionType::Deny | AclPermissionType::Allow
    ) {
        return Err(invalid("permissionType", entry.permission_type));
    }
    if pattern.name.is_empty() {
        return Err(AclError::InvalidRequest(
            "Resource name should not be empty".into(),
        ));
    }
    if !entry.principal.contains(':') {
        return Err(AclError::InvalidRequest(format!(
            "Could not parse principal from `{}` (no colon is present separating the \
             principal type from the principal name)",
            entry.principal
        )));
    }
    Ok(())
}

fn invalid(field: &str, value: impl std::fmt::Display) -> AclError {
    AclError::InvalidRequest(format!("Invalid {field} {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation as Op;
    use AclPermissionType as Perm;
    use PatternType as Pt;
    use ResourceType as Rt;

    fn binding(rt: Rt, name: &str, pt: Pt, principal: &str, op: Op, perm: Perm) -> AclBinding {
        AclBinding::new(rt, name, pt, principal, "*", op, perm)
    }

    fn ok_topic() -> AclBinding {
        binding(
            Rt::Topic,
            "*",
            Pt::Literal,
            "User:*",
            Op::Alter,
            Perm::Allow,
        )
    }

    /// Every refusal of one creation, with its layer, code and message. Layer 1:
    /// CreateAclsRequest.validate; layer 2: ResourcePattern/AccessControlEntry constructors
    /// (AclBindingTest.shouldThrowOnAnyResourceType, shouldThrowOnMatchPatternType,
    /// shouldThrowOnAnyPatternType); layer 3: AclApis.handleCreateAcls and
    /// AclControlManagerTest.testValidateNewAcl.
    #[test]
    fn creations_are_refused_as_kafka_does() {
        type Case = (
            fn(&mut AclBinding),
            ErrorScope,
            ResponseError,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (
                |b| b.pattern.resource_type = Rt::Unknown,
                ErrorScope::Connection,
                ResponseError::InvalidRequest,
                None,
            ),
            (
                |b| b.pattern.pattern_type = Pt::Unknown,
                ErrorScope::Connection,
                ResponseError::InvalidRequest,
                None,
            ),
            (
                |b| b.entry.operation = Op::Unknown,
                ErrorScope::Connection,
                ResponseError::InvalidRequest,
                None,
            ),
            (
                |b| b.entry.permission_type = Perm::Unknown,
                ErrorScope::Connection,
                ResponseError::InvalidRequest,
                None,
            ),
            (
                |b| b.pattern.resource_type = Rt::Any,
                ErrorScope::Request,
                ResponseError::UnknownServerError,
                Some("resourceType must not be ANY"),
            ),
            (
                |b| b.pattern.pattern_type = Pt::Match,
                ErrorScope::Request,
                ResponseError::UnknownServerError,
                Some("patternType must not be MATCH"),
            ),
            (
                |b| b.pattern.pattern_type = Pt::Any,
                ErrorScope::Request,
                ResponseError::UnknownServerError,
                Some("patternType must not be ANY"),
            ),
            (
                |b| b.entry.operation = Op::Any,
                ErrorScope::Request,
                ResponseError::UnknownServerError,
                Some("operation must not be ANY"),
            ),
            (
                |b| b.entry.permission_type = Perm::Any,
                ErrorScope::Request,
                ResponseError::UnknownServerError,
                Some("permissionType must not be ANY"),
            ),
            (
                |b| {
                    b.pattern.resource_type = Rt::Cluster;
                    b.pattern.name = "my-cluster".into();
                },
                ErrorScope::Item,
                ResponseError::InvalidRequest,
                Some("The only valid name for the CLUSTER resource is kafka-cluster"),
            ),
            // An empty CLUSTER name fails the CLUSTER rule first.
            (
                |b| {
                    b.pattern.resource_type = Rt::Cluster;
                    b.pattern.name = String::new();
                },
                ErrorScope::Item,
                ResponseError::InvalidRequest,
                Some("The only valid name for the CLUSTER resource is kafka-cluster"),
            ),
            (
                |b| b.pattern.name = String::new(),
                ErrorScope::Item,
                ResponseError::InvalidRequest,
                Some("Invalid empty resource name"),
            ),
            (
                |b| {
                    b.pattern.pattern_type = Pt::Prefixed;
                    b.pattern.name = String::new();
                },
                ErrorScope::Item,
                ResponseError::InvalidRequest,
                Some("Invalid empty resource name"),
            ),
            (
                |b| b.entry.principal = "alice".into(),
                ErrorScope::Item,
                ResponseError::InvalidRequest,
                Some(
                    "Could not parse principal from `alice` (no colon is present separating \
                     the principal type from the principal name)",
                ),
            ),
        ];
        for (i, (edit, scope, code, message)) in cases.iter().enumerate() {
            let mut b = ok_topic();
            edit(&mut b);
            let e = validate_new_acl(&b).expect_err(&format!("case {i} passed: {b:?}"));
            assert_eq!(e.scope(), *scope, "case {i}: {e:?}");
            assert_eq!(e.error(), *code, "case {i}: {e:?}");
            if let Some(m) = message {
                assert_eq!(e.to_string(), *m, "case {i}");
            }
            // UNKNOWN_SERVER_ERROR travels without its message.
            if *code == ResponseError::UnknownServerError {
                assert_eq!(e.response_message(), None);
            } else {
                assert_eq!(e.response_message(), Some(e.to_string().as_str()));
            }
        }
    }

    /// What Kafka accepts: the KRaft controller has no supportedOperations check (WRITE on
    /// CLUSTER is stored), any host string, "*" names, principal types other than User,
    /// and the empty principal name of "User:".
    #[test]
    fn creations_kafka_accepts() {
        let accepted = [
            ok_topic(),
            binding(
                Rt::Cluster,
                "kafka-cluster",
                Pt::Literal,
                "User:a",
                Op::Write,
                Perm::Deny,
            ),
            binding(
                Rt::Cluster,
                "kafka-cluster",
                Pt::Prefixed,
                "User:a",
                Op::All,
                Perm::Allow,
            ),
            binding(
                Rt::Group,
                "g",
                Pt::Prefixed,
                "Group:admins",
                Op::Read,
                Perm::Allow,
            ),
            binding(
                Rt::User,
                "bob",
                Pt::Literal,
                "User:",
                Op::CreateTokens,
                Perm::Allow,
            ),
            binding(
                Rt::TransactionalId,
                "*",
                Pt::Prefixed,
                "User:*",
                Op::All,
                Perm::Deny,
            ),
            AclBinding::new(
                Rt::Topic,
                "t",
                Pt::Literal,
                "User:a",
                "",
                Op::Read,
                Perm::Allow,
            ),
        ];
        for b in &accepted {
            assert_eq!(validate_new_acl(b), Ok(()), "{b:?}");
        }
    }

    /// The controller's own messages (AclControlManagerTest.testValidateNewAcl), reachable
    /// only past the request layers, so asserted on the controller step directly.
    #[test]
    fn control_manager_messages() {
        let with = |f: fn(&mut AclBinding)| {
            let mut b = ok_topic();
            f(&mut b);
            check_control_manager(&b).unwrap_err().to_string()
        };
        assert_eq!(
            with(|b| b.pattern.pattern_type = Pt::Unknown),
            "Invalid patternType UNKNOWN"
        );
        assert_eq!(
            with(|b| b.pattern.resource_type = Rt::Unknown),
            "Invalid resourceType UNKNOWN"
        );
        assert_eq!(
            with(|b| b.pattern.resource_type = Rt::Any),
            "Invalid resourceType ANY"
        );
        assert_eq!(
            with(|b| b.entry.operation = Op::Unknown),
            "Invalid operation UNKNOWN"
        );
        assert_eq!(
            with(|b| b.entry.permission_type = Perm::Unknown),
            "Invalid permissionType UNKNOWN"
        );
        assert_eq!(
            with(|b| b.pattern.name = String::new()),
            "Resource name should not be empty"
        );
    }

    /// Request-wide refusals outrank per-item ones, whichever creation carries them.
    #[test]
    fn create_request_scopes() {
        let bad_cluster = binding(
            Rt::Cluster,
            "x",
            Pt::Literal,
            "User:a",
            Op::Alter,
            Perm::Allow,
        );
        let any_op = binding(Rt::Topic, "t", Pt::Literal, "User:a", Op::Any, Perm::Allow);
        let unknown = binding(Rt::Topic, "t", Pt::Unknown, "User:a", Op::Read, Perm::Allow);

        let per_item = validate_create_request(&[ok_topic(), bad_cluster.clone()]).unwrap();
        assert_eq!(per_item[0], Ok(()));
        assert_eq!(per_item[1].as_ref().unwrap_err().scope(), ErrorScope::Item);

        let whole = validate_create_request(&[bad_cluster.clone(), any_op.clone()]).unwrap_err();
        assert_eq!(whole.scope(), ErrorScope::Request);

        let closed = validate_create_request(&[any_op, bad_cluster, unknown]).unwrap_err();
        assert_eq!(closed.scope(), ErrorScope::Connection);
        assert_eq!(validate_create_request(&[]), Ok(vec![]));
    }

    fn filter(rt: Rt, pt: Pt, op: Op, perm: Perm) -> AclBindingFilter {
        AclBindingFilter::new(rt, Some("*"), pt, Some("User:*"), Some("*"), op, perm)
    }

    /// DescribeAclsRequest/DeleteAclsRequest.normalizeAndValidate refuse UNKNOWN elements
    /// while parsing; ANY and MATCH are fine there.
    #[test]
    fn filters_with_unknown_elements_close_the_connection() {
        let unknowns = [
            filter(Rt::Unknown, Pt::Any, Op::Any, Perm::Any),
            filter(Rt::Any, Pt::Unknown, Op::Any, Perm::Any),
            filter(Rt::Any, Pt::Any, Op::Unknown, Perm::Any),
            filter(Rt::Any, Pt::Any, Op::Any, Perm::Unknown),
        ];
        for f in &unknowns {
            let e = validate_describe_filter(f).unwrap_err();
            assert_eq!(e.scope(), ErrorScope::Connection);
            let e = validate_delete_request(&[AclBindingFilter::any(), f.clone()]).unwrap_err();
            assert_eq!(e.scope(), ErrorScope::Connection);
        }
        let fine = filter(Rt::Any, Pt::Match, Op::Any, Perm::Any);
        assert_eq!(validate_describe_filter(&fine), Ok(()));
        assert_eq!(validate_describe_filter(&AclBindingFilter::any()), Ok(()));
        assert_eq!(
            validate_delete_request(&[fine, AclBindingFilter::any()]),
            Ok(vec![Ok(()), Ok(())])
        );
    }

    /// AclControlManagerTest.testValidateFilter.
    #[test]
    fn delete_filter_controller_messages() {
        assert_eq!(
            validate_delete_filter(&filter(Rt::Any, Pt::Literal, Op::Any, Perm::Any)),
            Ok(())
        );
        let e = validate_delete_filter(&filter(Rt::Any, Pt::Unknown, Op::Any, Perm::Any));
        assert_eq!(
            e,
            Err(AclError::InvalidRequest("Unknown patternFilter.".into()))
        );
        let e = validate_delete_filter(&filter(Rt::Any, Pt::Match, Op::Any, Perm::Unknown));
        assert_eq!(
            e,
            Err(AclError::InvalidRequest("Unknown entryFilter.".into()))
        );
    }
}
