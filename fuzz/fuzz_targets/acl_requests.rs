//! The ACL request paths without a broker: the first byte picks CreateAcls, DescribeAcls
//! or DeleteAcls and the version (1 to 3), the rest is the request body. A body that
//! decodes goes through what the handlers do with it: the conversion to bindings or
//! filters, Kafka's validation, then an authorizer holding the valid bindings is asked
//! about them, about the filters, and by resource type. Nothing may panic, and:
//! - a binding's own filter (`to_filter`) matches it, and the authorizer lists it;
//! - a super user is allowed everything; with no ACL for a resource and
//!   `allow.everyone.if.no.acl.found` off, nobody else is;
//! - an ALLOW binding of a concrete principal and operation, with no DENY in the set,
//!   allows that principal that operation on its own (literal) resource name.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;
use strom_broker::auth::acl::{
    supported_operations, validate_create_request, validate_delete_request,
    validate_describe_filter, AclBinding, AclOperation, AclPermissionType, AuthorizationResult,
    Authorizer, AuthorizerConfig, KafkaPrincipal, PatternType, ResourceType,
};
use strom_broker::protocol::acls::{creation_bindings, deletion_filters, describe_filter};
use uuid::Uuid;

fn authorizer(bindings: &[AclBinding], allow_everyone: bool) -> Authorizer {
    let config = AuthorizerConfig {
        super_users: ["User:admin".to_string()].into_iter().collect(),
        allow_everyone_if_no_acl_found: allow_everyone,
    };
    let mut authorizer = Authorizer::new(config);
    for binding in bindings {
        // A duplicate is refused, not added: the controller never writes one.
        let _ = authorizer.add(Uuid::new_v4(), binding.clone());
    }
    authorizer
}

/// The host a request from `acl_host` would come from.
fn host_for(acl_host: &str) -> &str {
    if acl_host == "*" {
        "127.0.0.1"
    } else {
        acl_host
    }
}

fn check_bindings(bindings: &[AclBinding], allow_everyone: bool) {
    let authorizer = authorizer(bindings, allow_everyone);
    let any_deny = bindings
        .iter()
        .any(|b| b.entry.permission_type == AclPermissionType::Deny);
    let admin = KafkaPrincipal::user("admin");
    for binding in bindings {
        let filter = binding.to_filter();
        assert!(
            filter.matches(binding),
            "{binding:?} not matched by its filter"
        );
        assert!(
            !authorizer.acls(&filter).is_empty(),
            "{binding:?} not listed by its filter"
        );
        let p = &binding.pattern;
        let e = &binding.entry;
        let host = host_for(&e.host);
        if supported_operations(p.resource_type).is_some() {
            assert_eq!(
                authorizer.authorize(&admin, host, AclOperation::Read, p.resource_type, &p.name),
                AuthorizationResult::Allowed,
                "a super user is refused"
            );
        }
        let Ok(principal) = KafkaPrincipal::parse(&e.principal) else {
            continue;
        };
        let concrete_op = !matches!(
            e.operation,
            AclOperation::Any | AclOperation::Unknown | AclOperation::All
        );
        if !any_deny
            && e.permission_type == AclPermissionType::Allow
            && !principal.is_wildcard()
            && concrete_op
            && p.pattern_type == PatternType::Literal
            && supported_operations(p.resource_type).is_some()
        {
            assert_eq!(
                authorizer.authorize(&principal, host, e.operation, p.resource_type, &p.name),
                AuthorizationResult::Allowed,
                "{binding:?} does not allow what it says"
            );
        }
        // By resource type: must not panic, whatever the type and operation.
        let _ =
            authorizer.authorize_by_resource_type(&principal, host, e.operation, p.resource_type);
        let _ = authorizer.authorized_operations(&principal, host, p.resource_type, &p.name);
    }
    // A resource no ACL names: only the super user, or everyone with the setting.
    let nobody = KafkaPrincipal::user("nobody-has-acls");
    let unnamed = "\u{0}no-acl-names-this";
    for resource_type in [ResourceType::Topic, ResourceType::Group] {
        let named = bindings.iter().any(|b| {
            b.pattern.resource_type == resource_type
                && (b.pattern.name == "*"
                    || b.pattern.name == unnamed
                    || b.pattern.pattern_type == PatternType::Prefixed)
        });
        if !named {
            let want = if allow_everyone {
                AuthorizationResult::Allowed
            } else {
                AuthorizationResult::Denied
            };
            assert_eq!(
                authorizer.authorize(
                    &nobody,
                    "10.0.0.1",
                    AclOperation::Read,
                    resource_type,
                    unnamed
                ),
                want
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let version = i16::from(selector % 3) + 1;
    let allow_everyone = selector & 0x80 != 0;
    let mut body = Bytes::copy_from_slice(body);
    match (selector >> 2) % 3 {
        0 => {
            let Ok(request) = CreateAclsRequest::decode(&mut body, version) else {
                return;
            };
            let bindings = creation_bindings(&request);
            let valid: Vec<AclBinding> = match validate_create_request(&bindings) {
                Ok(results) => bindings
                    .iter()
                    .zip(results)
                    .filter(|(_, r)| r.is_ok())
                    .map(|(b, _)| b.clone())
                    .collect(),
                Err(_) => return,
            };
            check_bindings(&valid, allow_everyone);
        }
        1 => {
            let Ok(request) = DescribeAclsRequest::decode(&mut body, version) else {
                return;
            };
            let filter = describe_filter(&request);
            if validate_describe_filter(&filter).is_ok() {
                let authorizer = authorizer(&[], allow_everyone);
                let _ = authorizer.acls(&filter);
                let _ = filter.matches_at_most_one();
                let _ = filter.find_indefinite_field();
            }
        }
        _ => {
            let Ok(request) = DeleteAclsRequest::decode(&mut body, version) else {
                return;
            };
            let filters = deletion_filters(&request);
            if let Ok(results) = validate_delete_request(&filters) {
                for (filter, result) in filters.iter().zip(results) {
                    if result.is_ok() {
                        let _ = filter.matches_at_most_one();
                        let _ = filter.find_indefinite_field();
                    }
                }
            }
        }
    }
});
