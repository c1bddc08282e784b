//! Typed security administration on an [`Admin`]: ACLs (DescribeAcls, CreateAcls,
//! DeleteAcls), SCRAM credentials (DescribeUserScramCredentials,
//! AlterUserScramCredentials) and client quotas (DescribeClientQuotas,
//! AlterClientQuotas), with Kafka's wire codes behind enums and every refusal a
//! [`Refused`] like the topic calls.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use bytes::Bytes;
use kafka_protocol::messages::alter_client_quotas_request::{
    EntityData as AlterEntity, EntryData as AlterEntry, OpData,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterUserScramCredentialsRequest, CreateAclsRequest,
    DeleteAclsRequest, DescribeAclsRequest, DescribeClientQuotasRequest,
    DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ring::rand::{SecureRandom, SystemRandom};

use crate::admin::{check, Admin, AdminError, Outcome, Refused};
use crate::scram::salted_password;
pub use crate::scram::ScramMechanism;

const DESCRIBE_ACLS_VERSION: i16 = 3;
const CREATE_ACLS_VERSION: i16 = 3;
const DELETE_ACLS_VERSION: i16 = 3;
const DESCRIBE_SCRAM_VERSION: i16 = 0;
const ALTER_SCRAM_VERSION: i16 = 0;
const DESCRIBE_QUOTAS_VERSION: i16 = 1;
const ALTER_QUOTAS_VERSION: i16 = 1;

/// Kafka's `ANY` in every ACL filter enum.
const ANY: i8 = 1;
/// `ClientQuotaFilterComponent` match type EXACT.
const MATCH_EXACT: i8 = 0;
/// The quota entity type of a user principal's name.
const ENTITY_USER: &str = "user";
/// Length of a generated SCRAM salt; Kafka's `ScramFormatter.secureRandomBytes` also
/// uses a few dozen random bytes.
const SALT_LEN: usize = 32;

/// Kafka's `ResourceType`, the kinds an ACL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

/// Kafka's `PatternType` for a binding (the filter-only ANY and MATCH are left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PatternType {
    Literal,
    Prefixed,
}

/// Kafka's `AclOperation` (the filter-only ANY is left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

/// Kafka's `AclPermissionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclPermission {
    Deny,
    Allow,
}

macro_rules! wire_codes {
    ($ty:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        impl $ty {
            /// The code on the wire.
            pub const fn code(self) -> i8 {
                match self { $($ty::$variant => $code),+ }
            }
            /// The value for a wire code; `None` for UNKNOWN, ANY and codes Kafka lacks.
            pub const fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($ty::$variant),)+ _ => None }
            }
        }
    };
}

wire_codes!(ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
});
wire_codes!(PatternType {
    Literal = 3,
    Prefixed = 4
});
wire_codes!(AclOperation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
});
wire_codes!(AclPermission { Deny = 2, Allow = 3 });

/// One ACL: `principal` from `host` is allowed or denied `operation` on a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// Which ACLs a describe or delete matches; `None` matches anything (Kafka's ANY or null).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern_type: Option<PatternType>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

impl AclFilter {
    /// Every ACL of one principal.
    pub fn principal(principal: impl Into<String>) -> AclFilter {
        AclFilter {
            principal: Some(principal.into()),
            ..AclFilter::default()
        }
    }

    /// Exactly `binding`: a delete with it removes that ACL and no other.
    pub fn exact(binding: &AclBinding) -> AclFilter {
        AclFilter {
            resource_type: Some(binding.resource_type),
            resource_name: Some(binding.resource_name.clone()),
            pattern_type: Some(binding.pattern_type),
            principal: Some(binding.principal.clone()),
            host: Some(binding.host.clone()),
            operation: Some(binding.operation),
            permission: Some(binding.permission),
        }
    }
}

/// A credential the brokers hold for a user (never the secret parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    pub mechanism: ScramMechanism,
    pub iterations: i32,
}

/// A credential to create or replace. The password itself never goes on the wire: only
/// the salt and the salted password (KIP-554).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for ScramUpsertion {
    // The salted password is as good as the password for a replayed login: keep it out
    // of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramUpsertion")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The system's random source could not give bytes for a salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no random bytes for a SCRAM salt")]
pub struct NoRandomness;

impl ScramUpsertion {
    /// A credential for `password` with a fresh random salt.
    pub fn new(
        user: impl Into<String>,
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<ScramUpsertion, NoRandomness> {
        let mut salt = vec![0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| NoRandomness)?;
        // Zero iterations is no credential at all; Kafka's minimum is 4096 anyway, and a
        // broker refuses anything below it with a typed error.
        let rounds = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        let salted_password = salted_password(mechanism, password, &salt, rounds);
        Ok(ScramUpsertion {
            user: user.into(),
            mechanism,
            iterations: i32::try_from(iterations).unwrap_or(i32::MAX),
            salt,
            salted_password,
        })
    }
}

/// A credential to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramDeletion {
    pub user: String,
    pub mechanism: ScramMechanism,
}

/// One AlterClientQuotas change on an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaOp {
    Set { key: String, value: f64 },
    Remove { key: String },
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn unknown_code(api: &'static str, what: &str, code: i8) -> AdminError {
    AdminError::Refused(Refused {
        api,
        resource: what.to_string(),
        code: ResponseError::UnknownServerError.code(),
        message: Some(format!("the broker answered with an unknown code {code}")),
    })
}

fn binding_from_wire(
    api: &'static str,
    resource: (i8, &StrBytes, i8),
    principal: &StrBytes,
    host: &StrBytes,
    operation: i8,
    permission: i8,
) -> Result<AclBinding, AdminError> {
    let (resource_type, resource_name, pattern_type) = resource;
    Ok(AclBinding {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| unknown_code(api, "resource type", resource_type))?,
        resource_name: resource_name.to_string(),
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| unknown_code(api, "pattern type", pattern_type))?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: AclOperation::from_code(operation)
            .ok_or_else(|| unknown_code(api, "operation", operation))?,
        permission: AclPermission::from_code(permission)
            .ok_or_else(|| unknown_code(api, "permission", permission))?,
    })
}

fn describe_filter(filter: &AclFilter) -> String {
    match &filter.principal {
        Some(p) => format!("ACLs of {p}"),
        None => "ACLs".to_string(),
    }
}

impl Admin {
    /// The ACLs matching `filter`. A refusal covers the whole request.
    pub async fn describe_acls(
        &mut self,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, AdminError> {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.map_or(ANY, ResourceType::code))
            .with_resource_name_filter(filter.resource_name.as_deref().map(sb))
            .with_pattern_type_filter(filter.pattern_type.map_or(ANY, PatternType::code))
            .with_principal_filter(filter.principal.as_deref().map(sb))
            .with_host_filter(filter.host.as_deref().map(sb))
            .with_operation(filter.operation.map_or(ANY, AclOperation::code))
            .with_permission_type(filter.permission.map_or(ANY, AclPermission::code));
        let response = self
            .send("DescribeAcls", request, DESCRIBE_ACLS_VERSION)
            .await?;
        check(
            "DescribeAcls",
            describe_filter(filter),
            response.error_code,
            response.error_message.as_ref(),
        )?;
        let mut out = Vec::new();
        for resource in &response.resources {
            for acl in &resource.acls {
                out.push(binding_from_wire(
                    "DescribeAcls",
                    (
                        resource.resource_type,
                        &resource.resource_name,
                        resource.pattern_type,
                    ),
                    &acl.principal,
                    &acl.host,
                    acl.operation,
                    acl.permission_type,
                )?);
            }
        }
        Ok(out)
    }

    /// Creates the bindings in one request; one outcome per binding, in order.
    pub async fn create_acls(
        &mut self,
        bindings: &[AclBinding],
    ) -> Result<Vec<Outcome<()>>, AdminError> {
        if bindings.is_empty() {
            return Ok(Vec::new());
        }
        let request = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(sb(&b.resource_name))
                        .with_resource_pattern_type(b.pattern_type.code())
                        .with_principal(sb(&b.principal))
                        .with_host(sb(&b.host))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code())
                })
                .collect(),
        );
        let response = self
            .send("CreateAcls", request, CREATE_ACLS_VERSION)
            .await?;
        let mut results = response.results.iter();
        Ok(bindings
            .iter()
            .map(|b| {
                let resource = format!(
                    "{:?} {:?} {} for {}",
                    b.operation, b.resource_type, b.resource_name, b.principal
                );
                match results.next() {
                    Some(r) => check(
                        "CreateAcls",
                        resource,
                        r.error_code,
                        r.error_message.as_ref(),
                    ),
                    // A short answer leaves the rest unknown: report them as not made.
                    None => Err(Refused {
                        api: "CreateAcls",
                        resource,
                        code: ResponseError::UnknownServerError.code(),
                        message: Some("the broker's answer left this ACL out".into()),
                    }),
                }
            })
            .collect())
    }

    /// Deletes every ACL matching each filter; one outcome per filter, in order, with the
    /// ACLs it deleted.
    pub async fn delete_acls(
        &mut self,
        filters: &[AclFilter],
    ) -> Result<Vec<Outcome<Vec<AclBinding>>>, AdminError> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let request = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type.map_or(ANY, ResourceType::code))
                        .with_resource_name_filter(f.resource_name.as_deref().map(sb))
                        .with_pattern_type_filter(f.pattern_type.map_or(ANY, PatternType::code))
                        .with_principal_filter(f.principal.as_deref().map(sb))
                        .with_host_filter(f.host.as_deref().map(sb))
                        .with_operation(f.operation.map_or(ANY, AclOperation::code))
                        .with_permission_type(f.permission.map_or(ANY, AclPermission::code))
                })
                .collect(),
        );
        let response = self
            .send("DeleteAcls", request, DELETE_ACLS_VERSION)
            .await?;
        let mut results = response.filter_results.iter();
        let mut out = Vec::with_capacity(filters.len());
        for filter in filters {
            let resource = describe_filter(filter);
            let Some(r) = results.next() else {
                out.push(Err(Refused {
                    api: "DeleteAcls",
                    resource,
                    code: ResponseError::UnknownServerError.code(),
                    message: Some("the broker's answer left this filter out".into()),
                }));
                continue;
            };
            if let Err(refusal) = check(
                "DeleteAcls",
                resource.clone(),
                r.error_code,
                r.error_message.as_ref(),
            ) {
                out.push(Err(refusal));
                continue;
            }
            let mut deleted = Vec::new();
            let mut failed = None;
            for m in &r.matching_acls {
                if let Err(refusal) = check(
                    "DeleteAcls",
                    resource.clone(),
                    m.error_code,
                    m.error_message.as_ref(),
                ) {
                    failed.get_or_insert(refusal);
                    continue;
                }
                deleted.push(binding_from_wire(
                    "DeleteAcls",
                    (m.resource_type, &m.resource_name, m.pattern_type),
                    &m.principal,
                    &m.host,
                    m.operation,
                    m.permission_type,
                )?);
            }
            out.push(match failed {
                Some(refusal) => Err(refusal),
                None => Ok(deleted),
            });
        }
        Ok(out)
    }

    /// Each user's SCRAM credentials; a user with none has an empty list (Kafka answers
    /// RESOURCE_NOT_FOUND for it).
    pub async fn describe_user_scram_credentials(
        &mut self,
        users: &[String],
    ) -> Result<BTreeMap<String, Outcome<Vec<ScramCredentialInfo>>>, AdminError> {
        if users.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = DescribeUserScramCredentialsRequest::default().with_users(Some(
            users
                .iter()
                .map(|u| UserName::default().with_name(sb(u)))
                .collect(),
        ));
        let response = self
            .send(
                "DescribeUserScramCredentials",
                request,
                DESCRIBE_SCRAM_VERSION,
            )
            .await?;
        check(
            "DescribeUserScramCredentials",
            "users",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        let mut out = BTreeMap::new();
        for r in &response.results {
            let user = r.user.to_string();
            let outcome = if r.error_code == ResponseError::ResourceNotFound.code() {
                Ok(Vec::new())
            } else {
                check(
                    "DescribeUserScramCredentials",
                    format!("user {user}"),
                    r.error_code,
                    r.error_message.as_ref(),
                )
                .map(|()| {
                    r.credential_infos
                        .iter()
                        .filter_map(|c| {
                            Some(ScramCredentialInfo {
                                mechanism: ScramMechanism::from_type_code(c.mechanism)?,
                                iterations: c.iterations,
                            })
                        })
                        .collect()
                })
            };
            out.insert(user, outcome);
        }
        for u in users {
            out.entry(u.clone()).or_insert(Ok(Vec::new()));
        }
        Ok(out)
    }

    /// Creates or replaces and deletes SCRAM credentials in one request; one outcome per
    /// user named.
    pub async fn alter_user_scram_credentials(
        &mut self,
        upsertions: &[ScramUpsertion],
        deletions: &[ScramDeletion],
    ) -> Result<BTreeMap<String, Outcome<()>>, AdminError> {
        if upsertions.is_empty() && deletions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = AlterUserScramCredentialsRequest::default()
            .with_upsertions(
                upsertions
                    .iter()
                    .map(|u| {
                        ScramCredentialUpsertion::default()
                            .with_name(sb(&u.user))
                            .with_mechanism(u.mechanism.type_code())
                            .with_iterations(u.iterations)
                            .with_salt(Bytes::copy_from_slice(&u.salt))
                            .with_salted_password(Bytes::copy_from_slice(&u.salted_password))
                    })
                    .collect(),
            )
            .with_deletions(
                deletions
                    .iter()
                    .map(|d| {
                        ScramCredentialDeletion::default()
                            .with_name(sb(&d.user))
                            .with_mechanism(d.mechanism.type_code())
                    })
                    .collect(),
            );
        let response = self
            .send("AlterUserScramCredentials", request, ALTER_SCRAM_VERSION)
            .await?;
        Ok(response
            .results
            .iter()
            .map(|r| {
                let user = r.user.to_string();
                let outcome = check(
                    "AlterUserScramCredentials",
                    format!("user {user}"),
                    r.error_code,
                    r.error_message.as_ref(),
                );
                (user, outcome)
            })
            .collect())
    }

    /// The quotas set on exactly the `user` entity `user` (not the defaults).
    pub async fn describe_user_quotas(
        &mut self,
        user: &str,
    ) -> Result<BTreeMap<String, f64>, AdminError> {
        let request = DescribeClientQuotasRequest::default()
            .with_components(vec![ComponentData::default()
                .with_entity_type(sb(ENTITY_USER))
                .with_match_type(MATCH_EXACT)
                .with_match(Some(sb(user)))])
            .with_strict(true);
        let response = self
            .send("DescribeClientQuotas", request, DESCRIBE_QUOTAS_VERSION)
            .await?;
        check(
            "DescribeClientQuotas",
            format!("quotas of user {user}"),
            response.error_code,
            response.error_message.as_ref(),
        )?;
        let mut out = BTreeMap::new();
        for entry in response.entries.iter().flatten() {
            let is_user = entry.entity.len() == 1
                && entry.entity.iter().all(|e| {
                    e.entity_type.as_str() == ENTITY_USER
                        && e.entity_name.as_ref().map(|n| n.as_str()) == Some(user)
                });
            if is_user {
                out.extend(entry.values.iter().map(|v| (v.key.to_string(), v.value)));
            }
        }
        Ok(out)
    }

    /// Sets and removes quotas of the `user` entity `user`; keys not named keep theirs.
    pub async fn alter_user_quotas(
        &mut self,
        user: &str,
        ops: &[QuotaOp],
    ) -> Result<Outcome<()>, AdminError> {
        if ops.is_empty() {
            return Ok(Ok(()));
        }
        let request = AlterClientQuotasRequest::default()
            .with_entries(vec![AlterEntry::default()
                .with_entity(vec![AlterEntity::default()
                    .with_entity_type(sb(ENTITY_USER))
                    .with_entity_name(Some(sb(user)))])
                .with_ops(
                    ops.iter()
                        .map(|op| match op {
                            QuotaOp::Set { key, value } => OpData::default()
                                .with_key(sb(key))
                                .with_value(*value)
                                .with_remove(false),
                            QuotaOp::Remove { key } => {
                                OpData::default().with_key(sb(key)).with_remove(true)
                            }
                        })
                        .collect(),
                )])
            .with_validate_only(false);
        let response = self
            .send("AlterClientQuotas", request, ALTER_QUOTAS_VERSION)
            .await?;
        let resource = format!("quotas of user {user}");
        Ok(match response.entries.first() {
            Some(e) => check(
                "AlterClientQuotas",
                resource,
                e.error_code,
                e.error_message.as_ref(),
            ),
            None => Err(Refused {
                api: "AlterClientQuotas",
                resource,
                code: ResponseError::UnknownServerError.code(),
                message: Some("the broker's answer named no entity".into()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_round_trip_and_any_is_no_value() {
        for op in [
            AclOperation::All,
            AclOperation::Read,
            AclOperation::IdempotentWrite,
            AclOperation::DescribeTokens,
        ] {
            assert_eq!(AclOperation::from_code(op.code()), Some(op));
        }
        assert_eq!(AclOperation::All.code(), 2);
        assert_eq!(AclOperation::from_code(ANY), None);
        assert_eq!(ResourceType::Cluster.code(), 4);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(AclPermission::Allow.code(), 3);
        assert_eq!(ScramMechanism::Sha512.type_code(), 2);
    }

    #[test]
    fn upsertions_get_fresh_salts_and_hide_their_secrets() {
        let a =
            ScramUpsertion::new("alice", ScramMechanism::Sha512, "pw", 4096).expect("randomness");
        let b =
            ScramUpsertion::new("alice", ScramMechanism::Sha512, "pw", 4096).expect("randomness");
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.salted_password, b.salted_password);
        assert_eq!(a.iterations, 4096);
        let printed = format!("{a:?}");
        assert!(!printed.contains("salt"), "{printed}");
    }

    #[test]
    fn an_exact_filter_names_every_field() {
        let binding = AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "orders".into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        };
        let f = AclFilter::exact(&binding);
        assert_eq!(f.resource_type, Some(ResourceType::Topic));
        assert_eq!(f.host.as_deref(), Some("*"));
        assert_eq!(f.permission, Some(AclPermission::Allow));
        assert_eq!(
            AclFilter::principal("User:alice").operation,
            None,
            "a principal filter matches any operation"
        );
    }
}
