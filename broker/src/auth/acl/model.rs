//! The ACL vocabulary: Kafka's four enums with their wire codes, the principal, the
//! binding (a resource pattern plus an access control entry), and the small per-type
//! facts Kafka keeps next to them (`AclEntry.supportedOperations`,
//! `AclEntry.authorizationError`, `Utils.to32BitField`, `InetAddress.getHostAddress`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The resource name an ACL uses to mean "every resource of this type" (`ResourcePattern.WILDCARD_RESOURCE`).
pub const WILDCARD_RESOURCE: &str = "*";
/// The host an ACL uses to mean "from anywhere" (`AclEntry.WILDCARD_HOST`).
pub const WILDCARD_HOST: &str = "*";
/// The one principal string that matches every principal (`StandardAuthorizerData.WILDCARD_PRINCIPAL`).
/// Only this one: `Group:*` or `User*` are ordinary principals.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The only name the CLUSTER resource has (`Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// `KafkaPrincipal.USER_TYPE`.
pub const USER_TYPE: &str = "User";

/// Generates one of Kafka's ACL enums: the variants with their i8 codes, Kafka's enum
/// name (`Display`, what Kafka's messages print), the Pascal-case name
/// (`SecurityUtils.toPascalCase`, what the ACL CLI and audit log print), and the
/// conversions both ways. Every code Kafka does not know reads as `Unknown`, as
/// `fromCode` does, so a newer client's value is refused rather than misread.
macro_rules! kafka_enum {
    (
        $(#[$meta:meta])*
        $name:ident, case_insensitive = $ci:literal {
            $($(#[$vmeta:meta])* $variant:ident = $code:literal, $java:literal, $pascal:literal;)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(into = "i8", from = "i8")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in Kafka's declaration (and code) order.
            pub const VALUES: &'static [$name] = &[$($name::$variant),+];

            /// The wire code.
            pub const fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// Kafka's `fromCode`: a code Kafka does not define reads as `Unknown`.
            pub const fn from_code(code: i8) -> Self {
                match code {
                    $($code => $name::$variant,)+
                    _ => $name::Unknown,
                }
            }

            /// Kafka's enum constant name, e.g. `TRANSACTIONAL_ID`.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $java,)+
                }
            }

            /// `SecurityUtils.toPascalCase` of the name, e.g. `TransactionalId`.
            pub const fn pascal_name(self) -> &'static str {
                match self {
                    $($name::$variant => $pascal,)+
                }
            }

            /// Kafka's `fromString`: the enum name (upper-cased first, with Java's
            /// full-Unicode upper-casing, for every enum but `PatternType`, whose lookup is
            /// exact); anything else is `Unknown`.
            pub fn from_name(text: &str) -> Self {
                let key = if $ci { text.to_uppercase() } else { text.to_owned() };
                Self::VALUES
                    .iter()
                    .copied()
                    .find(|v| v.name() == key)
                    .unwrap_or($name::Unknown)
            }

            /// `isUnknown()`.
            pub const fn is_unknown(self) -> bool {
                matches!(self, $name::Unknown)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl From<$name> for i8 {
            fn from(value: $name) -> i8 {
                value.code()
            }
        }

        impl From<i8> for $name {
            fn from(code: i8) -> $name {
                $name::from_code(code)
            }
        }
    };
}

kafka_enum! {
    /// `org.apache.kafka.common.resource.ResourceType`.
    ResourceType, case_insensitive = true {
        Unknown = 0, "UNKNOWN", "Unknown";
        /// Only in filters: any resource type.
        Any = 1, "ANY", "Any";
        Topic = 2, "TOPIC", "Topic";
        Group = 3, "GROUP", "Group";
        Cluster = 4, "CLUSTER", "Cluster";
        TransactionalId = 5, "TRANSACTIONAL_ID", "TransactionalId";
        DelegationToken = 6, "DELEGATION_TOKEN", "DelegationToken";
        User = 7, "USER", "User";
    }
}

kafka_enum! {
    /// `org.apache.kafka.common.acl.AclOperation`.
    AclOperation, case_insensitive = true {
        Unknown = 0, "UNKNOWN", "Unknown";
        /// Only in filters: any operation.
        Any = 1, "ANY", "Any";
        /// In an ACL: every operation.
        All = 2, "ALL", "All";
        Read = 3, "READ", "Read";
        Write = 4, "WRITE", "Write";
        Create = 5, "CREATE", "Create";
        Delete = 6, "DELETE", "Delete";
        Alter = 7, "ALTER", "Alter";
        Describe = 8, "DESCRIBE", "Describe";
        ClusterAction = 9, "CLUSTER_ACTION", "ClusterAction";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS", "DescribeConfigs";
        AlterConfigs = 11, "ALTER_CONFIGS", "AlterConfigs";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE", "IdempotentWrite";
        CreateTokens = 13, "CREATE_TOKENS", "CreateTokens";
        DescribeTokens = 14, "DESCRIBE_TOKENS", "DescribeTokens";
    }
}

kafka_enum! {
    /// `org.apache.kafka.common.resource.PatternType`.
    PatternType, case_insensitive = false {
        Unknown = 0, "UNKNOWN", "Unknown";
        /// Only in filters: the filter's name must equal the pattern's, whatever its type.
        Any = 1, "ANY", "Any";
        /// Only in filters: every pattern that would apply to a resource of the filter's name.
        Match = 2, "MATCH", "Match";
        /// The name is the resource's name, or `*` for every resource.
        Literal = 3, "LITERAL", "Literal";
        /// The name is a prefix of the resources' names.
        Prefixed = 4, "PREFIXED", "Prefixed";
    }
}

kafka_enum! {
    /// `org.apache.kafka.common.acl.AclPermissionType`.
    AclPermissionType, case_insensitive = true {
        Unknown = 0, "UNKNOWN", "Unknown";
        /// Only in filters: either permission.
        Any = 1, "ANY", "Any";
        Deny = 2, "DENY", "Deny";
        Allow = 3, "ALLOW", "Allow";
    }
}

impl PatternType {
    /// `isSpecific()`: a type a stored ACL can have (not a filter-only one, not UNKNOWN).
    pub const fn is_specific(self) -> bool {
        matches!(self, PatternType::Literal | PatternType::Prefixed)
    }
}

/// What an authorization decides (`org.apache.kafka.server.authorizer.AuthorizationResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthorizationResult {
    Allowed,
    Denied,
}

/// `SecurityUtils.parseKafkaPrincipal` refused a string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expected a string in format principalType:principalName but got {input}")]
pub struct PrincipalParseError {
    pub input: String,
}

/// A principal, `type:name` (`KafkaPrincipal`). Equal when type and name are.
///
/// It keeps its `type:name` text whole: the super-user check compares that text with
/// `super.users` (Kafka compares `principal.toString()`), and holding it avoids building a
/// string on every authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    text: String,
    type_len: usize,
}

impl KafkaPrincipal {
    pub fn new(principal_type: &str, name: &str) -> KafkaPrincipal {
        KafkaPrincipal {
            text: format!("{principal_type}:{name}"),
            type_len: principal_type.len(),
        }
    }

    /// `User:<name>`, the principal every Strom authenticator produces.
    pub fn user(name: &str) -> KafkaPrincipal {
        KafkaPrincipal::new(USER_TYPE, name)
    }

    /// `User:*`, which an ACL names to mean every principal.
    pub fn wildcard() -> KafkaPrincipal {
        KafkaPrincipal::user("*")
    }

    /// `SecurityUtils.parseKafkaPrincipal`: split at the first ':' (so the name may hold
    /// more); no ':' at all, or an empty string, is refused. `User:` parses, to an empty name.
    pub fn parse(text: &str) -> Result<KafkaPrincipal, PrincipalParseError> {
        match text.find(':') {
            Some(type_len) => Ok(KafkaPrincipal {
                text: text.to_owned(),
                type_len,
            }),
            None => Err(PrincipalParseError {
                input: text.to_owned(),
            }),
        }
    }

    pub fn principal_type(&self) -> &str {
        &self.text[..self.type_len]
    }

    pub fn name(&self) -> &str {
        &self.text[self.type_len + 1..]
    }

    /// `toString()`: `type:name`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is `User:*`.
    pub fn is_wildcard(&self) -> bool {
        self.text == WILDCARD_PRINCIPAL
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for KafkaPrincipal {
    type Err = PrincipalParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        KafkaPrincipal::parse(text)
    }
}

/// Which resources an ACL covers (`ResourcePattern`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

/// Who may (or may not) do what from where (`AccessControlEntry`). The principal stays the
/// string the client sent: filters compare it as a string, and DescribeAcls returns it as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessControlEntry {
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

/// One ACL (`AclBinding`). Unlike Kafka's constructor it can hold any enum value, ANY and
/// UNKNOWN included, so a request's values can be carried as they came and refused by
/// [`super::validate_new_acl`] with the error Kafka gives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

impl AclBinding {
    /// The seven fields in CreateAcls order.
    pub fn new(
        resource_type: ResourceType,
        resource_name: &str,
        pattern_type: PatternType,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission_type: AclPermissionType,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type,
                name: resource_name.to_owned(),
                pattern_type,
            },
            entry: AccessControlEntry {
                principal: principal.to_owned(),
                host: host.to_owned(),
                operation,
                permission_type,
            },
        }
    }

    /// `AclBinding.isUnknown()`: an UNKNOWN resource type, pattern type, operation or permission.
    pub fn is_unknown(&self) -> bool {
        self.pattern.resource_type.is_unknown()
            || self.pattern.pattern_type.is_unknown()
            || self.entry.operation.is_unknown()
            || self.entry.permission_type.is_unknown()
    }
}

/// `AclEntry.supportedOperations`: the operations Kafka checks, and reports as authorized
/// (MetadataResponse, DescribeGroups, DescribeCluster `authorized_operations`), for a
/// resource type. `None` for ANY and UNKNOWN, which Kafka refuses ("Not a concrete resource
/// type"). Kafka does not use it to refuse ACLs: an ACL for WRITE on CLUSTER is created, and
/// simply never applies.
pub fn supported_operations(resource_type: ResourceType) -> Option<&'static [AclOperation]> {
    use AclOperation::*;
    let ops: &'static [AclOperation] = match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
        ResourceType::Unknown | ResourceType::Any => return None,
    };
    Some(ops)
}

/// `Utils.to32BitField`: bit `code` set for each operation, the form of the
/// `authorized_operations` fields.
pub fn operations_bitfield(operations: impl IntoIterator<Item = AclOperation>) -> i32 {
    operations
        .into_iter()
        .fold(0, |bits, op| bits | (1i32 << op.code()))
}

/// `AclEntry.authorizationError`: the error a refused action on this resource type gets.
/// `None` for the types Kafka has none for (USER, ANY, UNKNOWN).
pub fn authorization_error(resource_type: ResourceType) -> Option<ResponseError> {
    match resource_type {
        ResourceType::Topic => Some(ResponseError::TopicAuthorizationFailed),
        ResourceType::Group => Some(ResponseError::GroupAuthorizationFailed),
        ResourceType::Cluster => Some(ResponseError::ClusterAuthorizationFailed),
        ResourceType::TransactionalId => Some(ResponseError::TransactionalIdAuthorizationFailed),
        ResourceType::DelegationToken => Some(ResponseError::DelegationTokenAuthorizationFailed),
        ResourceType::User | ResourceType::Any | ResourceType::Unknown => None,
    }
}

/// The client's address as Kafka compares it with an ACL's host:
/// `InetAddress.getHostAddress()` of the peer. An ACL's host is matched as a string, so the
/// form matters: IPv4 dotted; IPv6 as eight lower-case hex groups without zero compression
/// (`0:0:0:0:0:0:0:1`, never `::1`), with `%scope` when the address has a scope id; and an
/// IPv4-mapped IPv6 peer as its IPv4 address, as the JVM reports a dual-stack socket's IPv4 peer.
pub fn host_address(peer: &SocketAddr) -> String {
    match peer {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => {
            let ip = IpAddr::V6(*v6.ip()).to_canonical();
            match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6ip) => {
                    let groups: Vec<String> =
                        v6ip.segments().iter().map(|g| format!("{g:x}")).collect();
                    let text = groups.join(":");
                    match v6.scope_id() {
                        0 => text,
                        scope => format!("{text}%{scope}"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes and names against Kafka's enums (AclOperation.java, ResourceType.java,
    /// PatternType.java, AclPermissionType.java) and their tests (AclOperationTest,
    /// ResourceTypeTest, AclPermissionTypeTest).
    #[test]
    fn codes_and_names_are_kafkas() {
        let ops: Vec<(i8, &str)> = AclOperation::VALUES
            .iter()
            .map(|o| (o.code(), o.name()))
            .collect();
        assert_eq!(
            ops,
            vec![
                (0, "UNKNOWN"),
                (1, "ANY"),
                (2, "ALL"),
                (3, "READ"),
                (4, "WRITE"),
                (5, "CREATE"),
                (6, "DELETE"),
                (7, "ALTER"),
                (8, "DESCRIBE"),
                (9, "CLUSTER_ACTION"),
                (10, "DESCRIBE_CONFIGS"),
                (11, "ALTER_CONFIGS"),
                (12, "IDEMPOTENT_WRITE"),
                (13, "CREATE_TOKENS"),
                (14, "DESCRIBE_TOKENS"),
            ]
        );
        let types: Vec<(i8, &str)> = ResourceType::VALUES
            .iter()
            .map(|t| (t.code(), t.name()))
            .collect();
        assert_eq!(
            types,
            vec![
                (0, "UNKNOWN"),
                (1, "ANY"),
                (2, "TOPIC"),
                (3, "GROUP"),
                (4, "CLUSTER"),
                (5, "TRANSACTIONAL_ID"),
                (6, "DELEGATION_TOKEN"),
                (7, "USER"),
            ]
        );
        let patterns: Vec<(i8, &str)> = PatternType::VALUES
            .iter()
            .map(|p| (p.code(), p.name()))
            .collect();
        assert_eq!(
            patterns,
            vec![
                (0, "UNKNOWN"),
                (1, "ANY"),
                (2, "MATCH"),
                (3, "LITERAL"),
                (4, "PREFIXED")
            ]
        );
        let perms: Vec<(i8, &str)> = AclPermissionType::VALUES
            .iter()
            .map(|p| (p.code(), p.name()))
            .collect();
        assert_eq!(
            perms,
            vec![(0, "UNKNOWN"), (1, "ANY"), (2, "DENY"), (3, "ALLOW")]
        );
    }

    /// Every code round-trips; codes Kafka does not define read as UNKNOWN (`fromCode`).
    #[test]
    fn codes_round_trip_and_strangers_are_unknown() {
        for op in AclOperation::VALUES {
            assert_eq!(AclOperation::from_code(op.code()), *op);
        }
        for t in ResourceType::VALUES {
            assert_eq!(ResourceType::from_code(t.code()), *t);
        }
        for p in PatternType::VALUES {
            assert_eq!(PatternType::from_code(p.code()), *p);
        }
        for p in AclPermissionType::VALUES {
            assert_eq!(AclPermissionType::from_code(p.code()), *p);
        }
        assert_eq!(AclOperation::from_code(15), AclOperation::Unknown);
        assert_eq!(AclOperation::from_code(-1), AclOperation::Unknown);
        assert_eq!(ResourceType::from_code(8), ResourceType::Unknown);
        assert_eq!(PatternType::from_code(5), PatternType::Unknown);
        assert_eq!(AclPermissionType::from_code(4), AclPermissionType::Unknown);
    }

    /// `fromString`: case-insensitive except PatternType (PatternType.NAME_TO_VALUE is exact);
    /// `SecurityUtils.toPascalCase` names.
    #[test]
    fn names_parse_as_kafkas_from_string() {
        assert_eq!(
            AclOperation::from_name("cluster_action"),
            AclOperation::ClusterAction
        );
        assert_eq!(
            AclOperation::from_name("ClusterAction"),
            AclOperation::Unknown
        );
        assert_eq!(
            ResourceType::from_name("transactional_id"),
            ResourceType::TransactionalId
        );
        assert_eq!(
            AclPermissionType::from_name("allow"),
            AclPermissionType::Allow
        );
        assert_eq!(PatternType::from_name("PREFIXED"), PatternType::Prefixed);
        assert_eq!(PatternType::from_name("prefixed"), PatternType::Unknown);
        assert_eq!(
            AclOperation::DescribeConfigs.pascal_name(),
            "DescribeConfigs"
        );
        assert_eq!(
            ResourceType::TransactionalId.pascal_name(),
            "TransactionalId"
        );
        assert_eq!(
            AclOperation::IdempotentWrite.to_string(),
            "IDEMPOTENT_WRITE"
        );
    }

    /// SecurityUtilsTest.testPrincipalNameCanContainSeparator,
    /// testParseKafkaPrincipalWithNonUserPrincipalType, and parseKafkaPrincipal's refusals.
    #[test]
    fn principals_parse_as_security_utils_does() {
        let p = KafkaPrincipal::parse("User:name:with:separator:in:it").unwrap();
        assert_eq!(p.principal_type(), "User");
        assert_eq!(p.name(), "name:with:separator:in:it");
        let g = KafkaPrincipal::parse("Group:foo").unwrap();
        assert_eq!((g.principal_type(), g.name()), ("Group", "foo"));
        // `"User:".split(":", 2)` is ["User", ""]: an empty name, not an error.
        let empty = KafkaPrincipal::parse("User:").unwrap();
        assert_eq!((empty.principal_type(), empty.name()), ("User", ""));
        let no_type = KafkaPrincipal::parse(":alice").unwrap();
        assert_eq!((no_type.principal_type(), no_type.name()), ("", "alice"));
        for bad in ["", "bob"] {
            let e = KafkaPrincipal::parse(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("expected a string in format principalType:principalName but got {bad}")
            );
        }
        assert_eq!(
            KafkaPrincipal::new("User", "alice").to_string(),
            "User:alice"
        );
        assert_eq!(KafkaPrincipal::user("alice"), p_user("alice"));
        assert!(KafkaPrincipal::wildcard().is_wildcard());
        assert!(!KafkaPrincipal::new("Group", "*").is_wildcard());
    }

    fn p_user(name: &str) -> KafkaPrincipal {
        KafkaPrincipal::parse(&format!("User:{name}")).unwrap()
    }

    /// AclEntry.supportedOperations, and AuthHelper.authorizedOperations' bitfield
    /// (Utils.to32BitField).
    #[test]
    fn supported_operations_and_their_bitfield() {
        let topic = supported_operations(ResourceType::Topic).unwrap();
        assert!(topic.contains(&AclOperation::Write));
        assert!(!topic.contains(&AclOperation::IdempotentWrite));
        let cluster = supported_operations(ResourceType::Cluster).unwrap();
        assert!(!cluster.contains(&AclOperation::Write));
        assert!(cluster.contains(&AclOperation::IdempotentWrite));
        assert_eq!(
            supported_operations(ResourceType::TransactionalId).unwrap(),
            &[AclOperation::Describe, AclOperation::Write]
        );
        assert!(supported_operations(ResourceType::Any).is_none());
        assert!(supported_operations(ResourceType::Unknown).is_none());
        assert_eq!(
            operations_bitfield([AclOperation::Read, AclOperation::Describe]),
            (1 << 3) | (1 << 8)
        );
    }

    #[test]
    fn authorization_errors_per_type() {
        assert_eq!(
            authorization_error(ResourceType::Topic),
            Some(ResponseError::TopicAuthorizationFailed)
        );
        assert_eq!(
            authorization_error(ResourceType::TransactionalId),
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        );
        assert_eq!(authorization_error(ResourceType::User), None);
    }

    /// `Inet4Address/Inet6Address.getHostAddress()` forms, which ACL hosts are compared with.
    #[test]
    fn host_addresses_are_javas() {
        let v4: SocketAddr = "192.168.1.1:9092".parse().unwrap();
        assert_eq!(host_address(&v4), "192.168.1.1");
        let loopback6: SocketAddr = "[::1]:9092".parse().unwrap();
        assert_eq!(host_address(&loopback6), "0:0:0:0:0:0:0:1");
        let v6: SocketAddr = "[2001:db8::ff00:42:8329]:1".parse().unwrap();
        assert_eq!(host_address(&v6), "2001:db8:0:0:0:ff00:42:8329");
        let mapped: SocketAddr = "[::ffff:10.0.0.7]:1".parse().unwrap();
        assert_eq!(host_address(&mapped), "10.0.0.7");
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            1,
            0,
            3,
        ));
        assert_eq!(host_address(&scoped), "fe80:0:0:0:0:0:0:1%3");
    }

    #[test]
    fn enums_travel_as_codes() {
        let json = serde_json::to_string(&AclOperation::Write).unwrap();
        assert_eq!(json, "4");
        assert_eq!(
            serde_json::from_str::<AclOperation>("99").unwrap(),
            AclOperation::Unknown
        );
    }
}
