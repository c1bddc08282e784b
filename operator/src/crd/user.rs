//! `KafkaUser`: a principal with credentials, ACLs and quotas, in Strimzi's shape so users
//! can move their manifests over (reconciled by `crate::user`).
// Each `printcolumn(...)` in the kube derive repeats keys such as `type_`; clippy reads
// that as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::conditions_list;

/// A Kafka user in the KafkaCluster named by the `kafka.strom.dev/cluster` label.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kafka.strom.dev",
    version = "v1alpha1",
    kind = "KafkaUser",
    namespaced,
    status = "KafkaUserStatus",
    shortname = "ku",
    category = "strom",
    cel,
    doc = "A Kafka user in the KafkaCluster named by the kafka.strom.dev/cluster label.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels.kafka\\.strom\\.dev/cluster",
        description = "KafkaCluster the user belongs to"
    ),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "The Ready condition"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserSpec {
    /// How the user proves who it is.
    pub authentication: UserAuthentication,
    /// What the user may do. Without it the user has no ACLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,
    /// Client quotas for this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<UserQuotas>,
}

/// User authentication.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.type == 'scram-sha-512' || !has(self.password)").message("password applies to scram-sha-512 users only"))]
pub struct UserAuthentication {
    /// `scram-sha-512` (a generated password in a Secret named after the user) or `tls`
    /// (a client certificate).
    #[serde(rename = "type")]
    pub kind: UserAuthenticationType,
    /// For `scram-sha-512`: take the password from a Secret instead of generating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// Where a SCRAM user's password comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    /// The Secret key holding the password.
    pub value_from: PasswordValueFrom,
}

/// A password held elsewhere.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordValueFrom {
    /// A key of a Secret in the user's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// One key of one Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The key whose value is the password.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// User authentication mechanism.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserAuthenticationType {
    /// SASL SCRAM-SHA-512 with a generated password.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// Mutual TLS with a client certificate.
    #[serde(rename = "tls")]
    Tls,
}

/// ACL rules.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UserAuthorization {
    /// Authorizer: only `simple` (Kafka's ACL authorizer).
    #[serde(rename = "type")]
    pub kind: AuthorizationType,
    /// The rules.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub acls: Vec<AclRule>,
}

/// Authorizer type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationType {
    /// Kafka ACLs.
    Simple,
}

/// One ACL rule, as Strimzi writes it. The operations each resource type takes are
/// Kafka's (`AclEntry.supportedOperations`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.resource.type != 'topic' || self.operations.all(o, o in ['Read', 'Write', 'Create', 'Describe', 'Delete', 'Alter', 'DescribeConfigs', 'AlterConfigs', 'All'])").message("a topic takes Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs or All"))]
#[x_kube(validation = Rule::new("self.resource.type != 'group' || self.operations.all(o, o in ['Read', 'Describe', 'Delete', 'All'])").message("a group takes Read, Describe, Delete or All"))]
#[x_kube(validation = Rule::new("self.resource.type != 'cluster' || self.operations.all(o, o in ['Create', 'ClusterAction', 'DescribeConfigs', 'AlterConfigs', 'IdempotentWrite', 'Alter', 'Describe', 'All'])").message("a cluster takes Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe or All"))]
#[x_kube(validation = Rule::new("self.resource.type != 'transactionalId' || self.operations.all(o, o in ['Describe', 'Write', 'All'])").message("a transactionalId takes Describe, Write or All"))]
pub struct AclRule {
    /// `allow` (default) or `deny`.
    #[serde(rename = "type", default)]
    pub kind: AclRuleType,
    /// What the rule applies to.
    pub resource: AclResource,
    /// Operations the rule allows or denies.
    #[schemars(length(min = 1, max = 16))]
    pub operations: Vec<AclOperation>,
    /// Client host the rule applies to; `*` (default) for any.
    #[serde(default = "any_host")]
    #[schemars(length(min = 1, max = 255))]
    pub host: String,
}

fn any_host() -> String {
    "*".into()
}

/// Allow or deny.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AclRuleType {
    /// Grant the operations.
    #[default]
    Allow,
    /// Refuse the operations, whatever else allows them.
    Deny,
}

/// The resource an ACL rule covers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'cluster' || has(self.name)").message("topic, group and transactionalId resources need a name"))]
#[x_kube(validation = Rule::new("self.type != 'cluster' || !has(self.name)").message("the cluster resource has no name"))]
#[x_kube(validation = Rule::new("self.type != 'cluster' || !has(self.patternType) || self.patternType == 'literal'").message("the cluster resource takes patternType literal only"))]
pub struct AclResource {
    /// `topic`, `group`, `cluster` or `transactionalId`.
    #[serde(rename = "type")]
    pub kind: AclResourceType,
    /// Resource name, or prefix when `patternType` is `prefix`. `*` matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// `literal` (default) or `prefix`.
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

/// ACL resource type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster itself.
    Cluster,
    /// A transactional id.
    TransactionalId,
}

/// How the resource name matches.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AclPatternType {
    /// The exact name.
    #[default]
    Literal,
    /// Every name starting with it.
    Prefix,
}

/// Kafka ACL operations.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclOperation {
    /// Fetch, OffsetFetch, JoinGroup, ...
    Read,
    /// Produce.
    Write,
    /// CreateTopics, CreatePartitions.
    Create,
    /// DeleteTopics, DeleteRecords, DeleteGroups.
    Delete,
    /// AlterConfigs and other changes.
    Alter,
    /// Metadata, ListOffsets, DescribeGroups, ...
    Describe,
    /// Cluster actions between brokers.
    ClusterAction,
    /// DescribeConfigs.
    DescribeConfigs,
    /// AlterConfigs, IncrementalAlterConfigs.
    AlterConfigs,
    /// Idempotent produce (cluster level, older clients).
    IdempotentWrite,
    /// Every operation.
    All,
}

/// Client quotas, per broker.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserQuotas {
    /// `producer_byte_rate`: bytes per second the user may produce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub producer_byte_rate: Option<i64>,
    /// `consumer_byte_rate`: bytes per second the user may fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub consumer_byte_rate: Option<i64>,
    /// `request_percentage`: share of broker request-handler time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub request_percentage: Option<i32>,
    /// `controller_mutation_rate`: partition mutations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub controller_mutation_rate: Option<f64>,
}

/// Observed state of a KafkaUser.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserStatus {
    /// Ready, NotReady and Warning conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_list")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The principal's user name in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret holding the user's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
