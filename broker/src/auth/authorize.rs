//! The broker's live authorizer and the one question request handlers ask it.
//!
//! The ACLs live in the metadata image (records `Acl` / `RemoveAcl`); [`LiveAcls`] keeps an
//! [`Authorizer`] built from them, rebuilt only when the image's ACL map changes (the
//! image shares that map between images until an ACL record replaces it, so noticing a
//! change is a pointer comparison and the rebuild cost follows ACL changes, not images).
//!
//! Kafka refuses everyone but super users until the authorizer has loaded the initial
//! metadata (`AuthorizerNotReadyException`). Strom needs no such state: a broker serves
//! clients only once it has started on its image (a voter replays the log before
//! starting to serve; a broker-only node registers and catches up first), and
//! [`LiveAcls::current`] always brings the authorizer to the image it is asked with.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;
use uuid::Uuid;

use super::acl::{
    authorization_error, host_address, operations_bitfield, supported_operations, AclBinding,
    AclOperation, AuthorizationResult, Authorizer, AuthorizerConfig, KafkaPrincipal, ResourceType,
    CLUSTER_NAME,
};
use crate::broker::Broker;
use crate::metadata::MetadataImage;
use crate::protocol::RequestContext;

type AclMap = Arc<BTreeMap<Uuid, AclBinding>>;

/// The authorizer kept in step with the metadata image; `None` inside when no authorizer
/// is configured.
#[derive(Debug)]
pub struct LiveAcls {
    config: Option<AuthorizerConfig>,
    /// The ACL map the authorizer was built from, and the authorizer.
    state: RwLock<(AclMap, Arc<Authorizer>)>,
}

impl LiveAcls {
    pub fn new(config: Option<AuthorizerConfig>) -> LiveAcls {
        let authorizer = Authorizer::new(config.clone().unwrap_or_default());
        LiveAcls {
            config,
            state: RwLock::new((AclMap::default(), Arc::new(authorizer))),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// The authorizer for `image`'s ACLs (`None` without an authorizer), rebuilt first if
    /// the image's ACLs are not the ones it holds.
    pub fn current(&self, image: &MetadataImage) -> Option<Arc<Authorizer>> {
        let config = self.config.as_ref()?;
        {
            let state = self.state.read();
            if Arc::ptr_eq(&state.0, &image.acls) {
                return Some(state.1.clone());
            }
        }
        let mut state = self.state.write();
        if !Arc::ptr_eq(&state.0, &image.acls) {
            *state = (image.acls.clone(), Arc::new(build(config, &image.acls)));
        }
        Some(state.1.clone())
    }

    /// Follows a new image (called for every image the broker applies), so the rebuild
    /// usually happens here rather than on a request.
    pub fn follow(&self, image: &MetadataImage) {
        let _ = self.current(image);
    }
}

/// An authorizer holding `acls`. An ACL the set refuses (an identical one under another
/// id, which the controller never writes) is logged and left out rather than failing the
/// whole set, so one bad record cannot turn authorization off.
fn build(config: &AuthorizerConfig, acls: &BTreeMap<Uuid, AclBinding>) -> Authorizer {
    let mut authorizer = Authorizer::new(config.clone());
    for (id, binding) in acls {
        if let Err(e) = authorizer.add(*id, binding.clone()) {
            tracing::warn!(%id, acl = ?binding, error = %e, "ACL left out of the authorizer");
        }
    }
    authorizer
}

/// Whether an authorizer is configured.
pub fn enabled(broker: &Broker) -> bool {
    broker.acls.enabled()
}

/// The requester's principal and host as decisions need them. A principal that does not
/// parse (never one the broker builds itself) matches no ACL.
fn requester(ctx: &RequestContext<'_>) -> (Option<KafkaPrincipal>, String) {
    (
        KafkaPrincipal::parse(&ctx.connection.principal).ok(),
        host_address(&ctx.connection.peer),
    )
}

/// May the request's principal, from its host, do `op` on `resource_type` `name`? Always
/// true without an authorizer.
pub fn authorize(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    Access::of(broker, ctx).allows(op, resource_type, name)
}

/// Kafka's `authorizeByResourceType`: may the principal do `op` on at least one resource
/// of this type? Always true without an authorizer; false for a filter type or operation
/// (ANY, UNKNOWN), which Kafka refuses with an exception.
pub fn authorize_any(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    op: AclOperation,
    resource_type: ResourceType,
) -> bool {
    Access::of(broker, ctx).allows_any(op, resource_type)
}

/// One request's view of the authorizer: the authorizer as of the current image, the
/// requester's principal and host. Handlers that ask many questions (one per topic or
/// group) take it once, so a request sees one ACL set throughout, as Kafka's batched
/// `authorize` calls do.
pub struct Access {
    /// `None` without an authorizer: everything is allowed.
    authorizer: Option<Arc<Authorizer>>,
    /// `None` for a principal that does not parse: nothing is allowed.
    principal: Option<KafkaPrincipal>,
    host: String,
}

impl Access {
    pub fn of(broker: &Broker, ctx: &RequestContext<'_>) -> Access {
        let authorizer = broker.acls.current(&broker.metadata.image());
        let (principal, host) = requester(ctx);
        Access {
            authorizer,
            principal,
            host,
        }
    }

    /// An `Access` that allows everything (no authorizer), for callers without a request.
    pub fn unrestricted() -> Access {
        Access {
            authorizer: None,
            principal: None,
            host: String::new(),
        }
    }

    /// Whether an authorizer is configured.
    pub fn enabled(&self) -> bool {
        self.authorizer.is_some()
    }

    /// May the requester do `op` on the LITERAL resource `name`? Each decision is logged
    /// at debug with the principal, host, operation, resource and the rule that decided.
    pub fn allows(&self, op: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        let Some(authorizer) = &self.authorizer else {
            return true;
        };
        let Some(principal) = &self.principal else {
            tracing::debug!(host = %self.host, ?op, ?resource_type, name,
                "authorization denied: the principal does not parse");
            return false;
        };
        let decision = authorizer.decide(principal, &self.host, op, resource_type, name);
        tracing::debug!(principal = %principal, host = %self.host, ?op, ?resource_type, name,
            result = ?decision.result, rule = ?decision.rule, "authorization");
        decision.result == AuthorizationResult::Allowed
    }

    /// `op` on the cluster resource (`kafka-cluster`).
    pub fn cluster(&self, op: AclOperation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Kafka's `authorizeByResourceType`.
    pub fn allows_any(&self, op: AclOperation, resource_type: ResourceType) -> bool {
        let Some(authorizer) = &self.authorizer else {
            return true;
        };
        let Some(principal) = &self.principal else {
            return false;
        };
        matches!(
            authorizer.authorize_by_resource_type(principal, &self.host, op, resource_type),
            Ok(AuthorizationResult::Allowed)
        )
    }

    /// Kafka's `filterByAuthorized`: the names among `names` the requester may do `op` on.
    pub fn filter<'a>(
        &self,
        op: AclOperation,
        resource_type: ResourceType,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashSet<String> {
        let mut allowed = HashSet::new();
        let mut denied = HashSet::new();
        for name in names {
            if allowed.contains(name) || denied.contains(name) {
                continue;
            }
            if self.allows(op, resource_type, name) {
                allowed.insert(name.to_string());
            } else {
                denied.insert(name.to_string());
            }
        }
        allowed
    }

    /// Kafka's `AuthHelper.authorizedOperations`: the bitfield of the resource type's
    /// supported operations the requester is allowed; all of them without an authorizer.
    pub fn operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        let supported = supported_operations(resource_type).unwrap_or(&[]);
        match (&self.authorizer, &self.principal) {
            (None, _) => operations_bitfield(supported.iter().copied()),
            (Some(authorizer), Some(principal)) => {
                authorizer.authorized_operations(principal, &self.host, resource_type, name)
            }
            (Some(_), None) => 0,
        }
    }
}

/// The error a refused action on `resource_type` answers with (Kafka's
/// `AclEntry.authorizationError`); CLUSTER_AUTHORIZATION_FAILED for the types without one.
pub fn denied_error(resource_type: ResourceType) -> kafka_protocol::error::ResponseError {
    authorization_error(resource_type)
        .unwrap_or(kafka_protocol::error::ResponseError::ClusterAuthorizationFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::{AclPermissionType, PatternType};
    use crate::metadata::MetadataRecord;

    fn read_orders() -> AclBinding {
        AclBinding::new(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            "User:alice",
            "*",
            AclOperation::Read,
            AclPermissionType::Allow,
        )
    }

    fn allowed(authorizer: &Authorizer) -> bool {
        authorizer.authorize(
            &KafkaPrincipal::user("alice"),
            "127.0.0.1",
            AclOperation::Read,
            ResourceType::Topic,
            "orders",
        ) == AuthorizationResult::Allowed
    }

    #[test]
    fn without_a_config_there_is_no_authorizer() {
        let live = LiveAcls::new(None);
        assert!(!live.enabled());
        assert!(live.current(&MetadataImage::default()).is_none());
    }

    #[test]
    fn follows_acl_changes_and_only_those() {
        let live = LiveAcls::new(Some(AuthorizerConfig::default()));
        let mut image = MetadataImage::default();
        let first = live.current(&image).expect("on");
        assert!(!allowed(&first));
        // A record that is not about ACLs keeps the map, and so the same authorizer.
        image.apply(&MetadataRecord::ProducerIds {
            next_block_start: 1000,
        });
        assert!(Arc::ptr_eq(&first, &live.current(&image).expect("on")));
        let id = Uuid::new_v4();
        image.apply(&MetadataRecord::Acl {
            id,
            binding: read_orders(),
        });
        live.follow(&image);
        let second = live.current(&image).expect("on");
        assert!(!Arc::ptr_eq(&first, &second), "rebuilt on the ACL change");
        assert!(allowed(&second));
        image.apply(&MetadataRecord::RemoveAcl { id });
        assert!(!allowed(&live.current(&image).expect("on")));
    }

    #[test]
    fn a_duplicate_in_the_image_is_left_out_not_fatal() {
        let mut image = MetadataImage::default();
        for _ in 0..2 {
            image.apply(&MetadataRecord::Acl {
                id: Uuid::new_v4(),
                binding: read_orders(),
            });
        }
        let live = LiveAcls::new(Some(AuthorizerConfig::default()));
        let authorizer = live.current(&image).expect("on");
        assert_eq!(authorizer.len(), 1);
        assert!(allowed(&authorizer));
    }

    fn access(acls: &[AclBinding], principal: &str) -> Access {
        let mut authorizer = Authorizer::new(AuthorizerConfig::default());
        for binding in acls {
            authorizer
                .add(Uuid::new_v4(), binding.clone())
                .expect("add");
        }
        Access {
            authorizer: Some(Arc::new(authorizer)),
            principal: KafkaPrincipal::parse(principal).ok(),
            host: "127.0.0.1".into(),
        }
    }

    #[test]
    fn without_an_authorizer_everything_is_allowed() {
        let open = Access::unrestricted();
        assert!(!open.enabled());
        assert!(open.allows(AclOperation::Write, ResourceType::Topic, "t"));
        assert!(open.cluster(AclOperation::ClusterAction));
        assert!(open.allows_any(AclOperation::Write, ResourceType::Topic));
        assert_eq!(
            open.filter(AclOperation::Read, ResourceType::Topic, ["a", "b", "a"]),
            HashSet::from(["a".to_string(), "b".to_string()])
        );
        // Kafka without an authorizer reports every supported operation.
        assert_eq!(open.operations(ResourceType::Topic, "t"), 3576);
        assert_eq!(open.operations(ResourceType::Cluster, CLUSTER_NAME), 8096);
        assert_eq!(open.operations(ResourceType::Group, "g"), 3400);
    }

    #[test]
    fn filter_keeps_what_is_allowed_once() {
        let a = access(&[read_orders()], "User:alice");
        assert!(a.enabled());
        assert_eq!(
            a.filter(
                AclOperation::Read,
                ResourceType::Topic,
                ["orders", "other", "orders"]
            ),
            HashSet::from(["orders".to_string()])
        );
        // READ implies DESCRIBE, not WRITE.
        assert!(a.allows(AclOperation::Describe, ResourceType::Topic, "orders"));
        assert!(!a.allows(AclOperation::Write, ResourceType::Topic, "orders"));
        // READ | DESCRIBE.
        assert_eq!(a.operations(ResourceType::Topic, "orders"), 264);
        assert!(!a.cluster(AclOperation::Describe));
        assert!(!a.allows_any(AclOperation::Write, ResourceType::Topic));
        assert!(a.allows_any(AclOperation::Read, ResourceType::Topic));
    }

    #[test]
    fn an_unparseable_principal_is_allowed_nothing() {
        let a = access(&[read_orders()], "alice-without-a-type");
        assert!(!a.allows(AclOperation::Read, ResourceType::Topic, "orders"));
        assert!(!a.allows_any(AclOperation::Read, ResourceType::Topic));
        assert_eq!(a.operations(ResourceType::Topic, "orders"), 0);
    }

    #[test]
    fn refusals_use_the_resource_types_error() {
        use kafka_protocol::error::ResponseError;
        assert_eq!(
            denied_error(ResourceType::Topic),
            ResponseError::TopicAuthorizationFailed
        );
        assert_eq!(
            denied_error(ResourceType::TransactionalId),
            ResponseError::TransactionalIdAuthorizationFailed
        );
        assert_eq!(
            denied_error(ResourceType::User),
            ResponseError::ClusterAuthorizationFailed
        );
    }
}
