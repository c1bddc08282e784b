//! Kafka's ACL model and authorization decisions, with Kafka's exact semantics (KRaft's
//! `StandardAuthorizer`), as pure data and functions: no I/O, no metadata log.
//!
//! - [`model`]: the enums with their wire codes, [`KafkaPrincipal`], [`AclBinding`],
//!   [`supported_operations`], and [`host_address`] (the client address in the string form
//!   ACL hosts are compared with).
//! - [`filter`]: DescribeAcls/DeleteAcls filters and how they match ACLs, ANY and MATCH
//!   included.
//! - [`validate`]: what CreateAcls, DescribeAcls and DeleteAcls refuse, with Kafka's codes,
//!   messages, and reach (the connection, the request, or one item).
//! - [`authorizer`]: the ACL set, `authorize`, `authorize_by_resource_type`, and listing.
//!
//! The Kafka sources these follow are named on each item; facts were taken from them, not
//! code. Where Strom differs, the item says so (only for inputs Kafka answers with an
//! exception: a stored principal without ':', a stored pattern that is neither LITERAL nor
//! PREFIXED).

pub mod authorizer;
pub mod filter;
pub mod model;
pub mod validate;

pub use authorizer::{
    parse_allow_everyone_if_no_acl_found, parse_super_users, AclStoreError, Authorizer,
    AuthorizerConfig, Decision, InvalidQuery, MatchingRule, ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG,
    SUPER_USERS_CONFIG,
};
pub use filter::{AccessControlEntryFilter, AclBindingFilter, ResourcePatternFilter};
pub use model::{
    authorization_error, host_address, operations_bitfield, supported_operations,
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, AuthorizationResult,
    KafkaPrincipal, PatternType, PrincipalParseError, ResourcePattern, ResourceType, CLUSTER_NAME,
    USER_TYPE, WILDCARD_HOST, WILDCARD_PRINCIPAL, WILDCARD_RESOURCE,
};
pub use validate::{
    validate_create_request, validate_delete_filter, validate_delete_request,
    validate_describe_filter, validate_new_acl, AclError, ErrorScope,
};
