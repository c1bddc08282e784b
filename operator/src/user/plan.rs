//! The pure decisions of a KafkaUser reconcile: the whole spec checked and turned into
//! what the brokers should hold for the user (principal, ACL bindings, quotas), and the
//! differences from what they hold. Everything here runs before any broker call, so a
//! bad spec changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use strom_client::admin_security::{
    AclBinding, AclOperation, AclPermission, PatternType, QuotaOp, ResourceType,
};

use crate::crd::user::{
    AclOperation as Op, AclPatternType, AclResourceType, AclRule, AclRuleType, KafkaUserSpec,
    UserAuthenticationType, UserQuotas,
};

pub const INVALID_USER_NAME: &str = "InvalidUserName";
pub const INVALID_ACL_RULE: &str = "InvalidAclRule";
pub const INVALID_QUOTA: &str = "InvalidQuota";

/// The name Kafka gives the cluster resource in ACLs.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";
/// X.509's upper bound for a common name (RFC 5280 `ub-common-name`).
const MAX_COMMON_NAME: usize = 64;

/// The quota keys Kafka knows for a user entity, by the CRD's fields.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// Why a spec cannot be applied: a condition reason and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

/// What the brokers should hold for one KafkaUser.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub authentication: UserAuthenticationType,
    /// The principal's name: the SCRAM user name, or the certificate's subject for tls;
    /// also the quota entity's name.
    pub username: String,
    /// `User:<username>`, as ACLs name it.
    pub principal: String,
    pub acls: BTreeSet<AclBinding>,
    pub quotas: BTreeMap<String, f64>,
}

/// The principal's name for a KafkaUser `name`: a tls client's principal is its
/// certificate's subject as Kafka prints it.
pub fn username(name: &str, authentication: UserAuthenticationType) -> String {
    match authentication {
        UserAuthenticationType::ScramSha512 => name.to_string(),
        UserAuthenticationType::Tls => format!("CN={name}"),
    }
}

/// The whole spec checked at once; the first problem found is the answer.
pub fn desired(name: &str, spec: &KafkaUserSpec) -> Result<Desired, Invalid> {
    let authentication = spec.authentication.kind;
    check_name(name, authentication)?;
    let username = username(name, authentication);
    let principal = format!("User:{username}");
    let mut acls = BTreeSet::new();
    if let Some(authorization) = &spec.authorization {
        for (index, rule) in authorization.acls.iter().enumerate() {
            acls.extend(bindings(&principal, rule).map_err(|message| Invalid {
                reason: INVALID_ACL_RULE,
                message: format!("acls[{index}]: {message}"),
            })?);
        }
    }
    let quotas = match &spec.quotas {
        Some(q) => quotas(q)?,
        None => BTreeMap::new(),
    };
    Ok(Desired {
        authentication,
        username,
        principal,
        acls,
        quotas,
    })
}

/// A Kubernetes name is already a safe SCRAM user name and DN value; what remains is
/// the certificate's limit on a common name, and characters that would change what a
/// principal or a DN means, should the name come from elsewhere one day.
fn check_name(name: &str, authentication: UserAuthenticationType) -> Result<(), Invalid> {
    let invalid = |message: String| Invalid {
        reason: INVALID_USER_NAME,
        message,
    };
    if name.is_empty() {
        return Err(invalid("the user name is empty".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(invalid(format!(
            "user name {name:?} has {c:?}; a principal name takes letters, digits, '-', '.' and '_'"
        )));
    }
    if authentication == UserAuthenticationType::Tls && name.len() > MAX_COMMON_NAME {
        return Err(invalid(format!(
            "user name {name} is {} characters; a tls user's name is its certificate's common name, at most {MAX_COMMON_NAME}",
            name.len()
        )));
    }
    Ok(())
}

/// Kafka's `AclEntry.supportedOperations`: the operations each resource type takes.
pub fn supported(resource: AclResourceType, op: Op) -> bool {
    use Op::*;
    match resource {
        AclResourceType::Topic => matches!(
            op,
            Read | Write
                | Create
                | Describe
                | Delete
                | Alter
                | DescribeConfigs
                | AlterConfigs
                | All
        ),
        AclResourceType::Group => matches!(op, Read | Describe | Delete | All),
        AclResourceType::Cluster => matches!(
            op,
            Create
                | ClusterAction
                | DescribeConfigs
                | AlterConfigs
                | IdempotentWrite
                | Alter
                | Describe
                | All
        ),
        AclResourceType::TransactionalId => matches!(op, Describe | Write | All),
    }
}

fn operation(op: Op) -> AclOperation {
    match op {
        Op::Read => AclOperation::Read,
        Op::Write => AclOperation::Write,
        Op::Create => AclOperation::Create,
        Op::Delete => AclOperation::Delete,
        Op::Alter => AclOperation::Alter,
        Op::Describe => AclOperation::Describe,
        Op::ClusterAction => AclOperation::ClusterAction,
        Op::DescribeConfigs => AclOperation::DescribeConfigs,
        Op::AlterConfigs => AclOperation::AlterConfigs,
        Op::IdempotentWrite => AclOperation::IdempotentWrite,
        Op::All => AclOperation::All,
    }
}

/// One rule as Kafka bindings, one per operation. The CRD's CEL rules refuse most bad
/// rules on admission; these checks also cover objects stored before a rule existed.
fn bindings(principal: &str, rule: &AclRule) -> Result<Vec<AclBinding>, String> {
    let resource = &rule.resource;
    let (resource_type, resource_name) = match resource.kind {
        AclResourceType::Cluster => {
            if resource.name.is_some() {
                return Err("the cluster resource has no name".into());
            }
            if resource.pattern_type != AclPatternType::Literal {
                return Err("the cluster resource takes patternType literal only".into());
            }
            (ResourceType::Cluster, CLUSTER_RESOURCE_NAME.to_string())
        }
        kind => {
            let name = resource.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(format!("a {} resource needs a name", kind_name(kind)));
            }
            let resource_type = match kind {
                AclResourceType::Topic => ResourceType::Topic,
                AclResourceType::Group => ResourceType::Group,
                _ => ResourceType::TransactionalId,
            };
            (resource_type, name)
        }
    };
    if rule.operations.is_empty() {
        return Err("no operations".into());
    }
    if let Some(op) = rule
        .operations
        .iter()
        .find(|op| !supported(resource.kind, **op))
    {
        return Err(format!(
            "operation {op:?} does not apply to a {} resource",
            kind_name(resource.kind)
        ));
    }
    let host = rule.host.trim();
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(format!("host {:?} is not a host", rule.host));
    }
    let pattern_type = match resource.pattern_type {
        AclPatternType::Literal => PatternType::Literal,
        AclPatternType::Prefix => PatternType::Prefixed,
    };
    let permission = match rule.kind {
        AclRuleType::Allow => AclPermission::Allow,
        AclRuleType::Deny => AclPermission::Deny,
    };
    Ok(rule
        .operations
        .iter()
        .map(|op| AclBinding {
            resource_type,
            resource_name: resource_name.clone(),
            pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation: operation(*op),
            permission,
        })
        .collect())
}

fn kind_name(kind: AclResourceType) -> &'static str {
    match kind {
        AclResourceType::Topic => "topic",
        AclResourceType::Group => "group",
        AclResourceType::Cluster => "cluster",
        AclResourceType::TransactionalId => "transactionalId",
    }
}

/// The quotas as Kafka's keys and values (quota values are doubles on the wire).
pub fn quotas(q: &UserQuotas) -> Result<BTreeMap<String, f64>, Invalid> {
    let mut out = BTreeMap::new();
    let candidates = [
        (PRODUCER_BYTE_RATE, q.producer_byte_rate.map(|v| v as f64)),
        (CONSUMER_BYTE_RATE, q.consumer_byte_rate.map(|v| v as f64)),
        (REQUEST_PERCENTAGE, q.request_percentage.map(f64::from)),
        (CONTROLLER_MUTATION_RATE, q.controller_mutation_rate),
    ];
    for (key, value) in candidates {
        let Some(value) = value else { continue };
        if !value.is_finite() || value < 0.0 {
            return Err(Invalid {
                reason: INVALID_QUOTA,
                message: format!("quota {key} is {value}; it must be a number of 0 or more"),
            });
        }
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// ACLs to create and to delete so the principal holds exactly `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclDiff {
    pub create: Vec<AclBinding>,
    pub delete: Vec<AclBinding>,
}

impl AclDiff {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

pub fn acl_diff(desired: &BTreeSet<AclBinding>, observed: &[AclBinding]) -> AclDiff {
    let observed: BTreeSet<&AclBinding> = observed.iter().collect();
    AclDiff {
        create: desired
            .iter()
            .filter(|b| !observed.contains(b))
            .cloned()
            .collect(),
        delete: observed
            .iter()
            .filter(|b| !desired.contains(**b))
            .map(|b| (*b).clone())
            .collect(),
    }
}

/// The quota changes that leave the user entity with exactly `desired`: keys set to a
/// new value, keys the spec does not name removed.
pub fn quota_ops(
    desired: &BTreeMap<String, f64>,
    observed: &BTreeMap<String, f64>,
) -> Vec<QuotaOp> {
    let mut ops: Vec<QuotaOp> = desired
        .iter()
        .filter(|(k, v)| observed.get(*k) != Some(*v))
        .map(|(k, v)| QuotaOp::Set {
            key: k.clone(),
            value: *v,
        })
        .collect();
    ops.extend(
        observed
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .map(|k| QuotaOp::Remove { key: k.clone() }),
    );
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> KafkaUserSpec {
        serde_json::from_value(value).expect("a KafkaUser spec")
    }

    fn binding(rt: ResourceType, name: &str, op: AclOperation) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: op,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn scram_and_tls_principals() {
        let scram = desired(
            "alice",
            &spec(json!({"authentication": {"type": "scram-sha-512"}})),
        )
        .expect("valid");
        assert_eq!(scram.username, "alice");
        assert_eq!(scram.principal, "User:alice");
        let tls =
            desired("alice", &spec(json!({"authentication": {"type": "tls"}}))).expect("valid");
        assert_eq!(tls.username, "CN=alice");
        assert_eq!(tls.principal, "User:CN=alice");
    }

    #[test]
    fn rules_become_one_binding_per_operation() {
        let d = desired(
            "alice",
            &spec(json!({"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": [
                {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
                {"type": "deny", "resource": {"type": "group", "name": "app-", "patternType": "prefix"}, "operations": ["All"], "host": "10.0.0.1"},
                {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
            ]}})),
        )
        .expect("valid");
        let mut expected = BTreeSet::from([
            binding(ResourceType::Topic, "orders", AclOperation::Read),
            binding(ResourceType::Topic, "orders", AclOperation::Describe),
            binding(
                ResourceType::Cluster,
                CLUSTER_RESOURCE_NAME,
                AclOperation::IdempotentWrite,
            ),
        ]);
        expected.insert(AclBinding {
            resource_type: ResourceType::Group,
            resource_name: "app-".into(),
            pattern_type: PatternType::Prefixed,
            principal: "User:alice".into(),
            host: "10.0.0.1".into(),
            operation: AclOperation::All,
            permission: AclPermission::Deny,
        });
        assert_eq!(d.acls, expected);
    }

    #[test]
    fn a_bad_rule_anywhere_refuses_the_whole_spec() {
        let with = |rule: serde_json::Value| {
            desired(
                "alice",
                &spec(
                    json!({"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": [
                    {"resource": {"type": "topic", "name": "ok"}, "operations": ["Read"]}, rule]}}),
                ),
            )
        };
        let refused = |rule: serde_json::Value, expected: &str| {
            let e = with(rule).expect_err("refused");
            assert_eq!(e.reason, INVALID_ACL_RULE);
            assert!(e.message.starts_with("acls[1]: "), "{}", e.message);
            assert!(e.message.contains(expected), "{}", e.message);
        };
        refused(
            json!({"resource": {"type": "group", "name": "g"}, "operations": ["Write"]}),
            "operation Write does not apply to a group",
        );
        refused(
            json!({"resource": {"type": "cluster", "name": "x"}, "operations": ["Alter"]}),
            "has no name",
        );
        refused(
            json!({"resource": {"type": "cluster", "patternType": "prefix"}, "operations": ["Alter"]}),
            "literal only",
        );
        refused(
            json!({"resource": {"type": "topic", "patternType": "prefix"}, "operations": ["Read"]}),
            "needs a name",
        );
        refused(
            json!({"resource": {"type": "topic", "name": ""}, "operations": ["Read"]}),
            "needs a name",
        );
        refused(
            json!({"resource": {"type": "topic", "name": "t"}, "operations": []}),
            "no operations",
        );
        refused(
            json!({"resource": {"type": "topic", "name": "t"}, "operations": ["Read"], "host": "a b"}),
            "is not a host",
        );
    }

    #[test]
    fn a_name_that_cannot_be_a_principal_is_refused() {
        let tls = spec(json!({"authentication": {"type": "tls"}}));
        let long = "a".repeat(65);
        let e = desired(&long, &tls).expect_err("too long a CN");
        assert_eq!(e.reason, INVALID_USER_NAME);
        assert!(e.message.contains("at most 64"), "{}", e.message);
        let scram = spec(json!({"authentication": {"type": "scram-sha-512"}}));
        assert!(
            desired(&long, &scram).is_ok(),
            "SCRAM names have no such limit"
        );
        assert_eq!(
            desired("a,b", &scram).expect_err("comma").reason,
            INVALID_USER_NAME
        );
        assert_eq!(
            desired("", &scram).expect_err("empty").reason,
            INVALID_USER_NAME
        );
    }

    #[test]
    fn quotas_take_kafkas_keys() {
        let d = desired(
            "alice",
            &spec(json!({"authentication": {"type": "scram-sha-512"}, "quotas": {
                "producerByteRate": 1024, "consumerByteRate": 2048, "requestPercentage": 50, "controllerMutationRate": 2.5}})),
        )
        .expect("valid");
        assert_eq!(
            d.quotas,
            BTreeMap::from([
                (CONSUMER_BYTE_RATE.to_string(), 2048.0),
                (CONTROLLER_MUTATION_RATE.to_string(), 2.5),
                (PRODUCER_BYTE_RATE.to_string(), 1024.0),
                (REQUEST_PERCENTAGE.to_string(), 50.0),
            ])
        );
        let negative = UserQuotas {
            producer_byte_rate: Some(-1),
            ..UserQuotas::default()
        };
        assert_eq!(
            quotas(&negative).expect_err("negative").reason,
            INVALID_QUOTA
        );
    }

    #[test]
    fn acls_are_synced_exactly() {
        let wanted = BTreeSet::from([
            binding(ResourceType::Topic, "a", AclOperation::Read),
            binding(ResourceType::Topic, "b", AclOperation::Read),
        ]);
        let observed = vec![
            binding(ResourceType::Topic, "b", AclOperation::Read),
            binding(ResourceType::Topic, "c", AclOperation::Write),
        ];
        let diff = acl_diff(&wanted, &observed);
        assert_eq!(
            diff.create,
            vec![binding(ResourceType::Topic, "a", AclOperation::Read)]
        );
        assert_eq!(
            diff.delete,
            vec![binding(ResourceType::Topic, "c", AclOperation::Write)]
        );
        let same: Vec<AclBinding> = wanted.iter().cloned().collect();
        assert!(acl_diff(&wanted, &same).is_empty());
    }

    #[test]
    fn quota_ops_set_changed_keys_and_remove_undeclared_ones() {
        let wanted = BTreeMap::from([
            (PRODUCER_BYTE_RATE.to_string(), 1024.0),
            (REQUEST_PERCENTAGE.to_string(), 50.0),
        ]);
        let observed = BTreeMap::from([
            (PRODUCER_BYTE_RATE.to_string(), 1024.0),
            (REQUEST_PERCENTAGE.to_string(), 20.0),
            (CONSUMER_BYTE_RATE.to_string(), 1.0),
        ]);
        assert_eq!(
            quota_ops(&wanted, &observed),
            vec![
                QuotaOp::Set {
                    key: REQUEST_PERCENTAGE.into(),
                    value: 50.0
                },
                QuotaOp::Remove {
                    key: CONSUMER_BYTE_RATE.into()
                },
            ]
        );
        assert!(quota_ops(&wanted, &wanted).is_empty());
    }
}
