//! `KafkaCluster`: a cluster of strom-broker pods. Field names follow Strimzi's `Kafka`
//! resource where the idea is the same, so manifests read familiar.
// Each `printcolumn(...)` in the kube derive repeats keys such as `type_`; clippy reads
// that as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodSecurityContext, ResourceRequirements, SecurityContext, Toleration,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::{conditions_list, config_map};

/// A Kafka-compatible cluster of strom-broker pods, run as one StatefulSet.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kafka.strom.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    namespaced,
    status = "KafkaClusterStatus",
    shortname = "kc",
    category = "strom",
    cel,
    doc = "A Kafka-compatible cluster of strom-broker pods, run as one StatefulSet.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Brokers asked for"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Brokers ready"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.version",
        description = "strom-broker version running"
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
#[x_kube(validation = Rule::new("!has(self.defaultReplicationFactor) || !has(self.minInsyncReplicas) || self.minInsyncReplicas <= self.defaultReplicationFactor").message("minInsyncReplicas cannot exceed defaultReplicationFactor"))]
pub struct KafkaClusterSpec {
    /// Number of brokers. Each broker is one pod; its `node.id` is the pod's ordinal.
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,

    /// strom-broker release to run, e.g. `0.1.0`. Defaults to the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Container image for the brokers. Overrides the image the operator derives from `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Client listeners. Each gets a port on every broker and a bootstrap address. When
    /// empty, one internal plaintext listener named `plain` on port 9092 is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(l, self.exists_one(m, m.name == l.name))").message("listener names must be unique"))]
    #[x_kube(validation = Rule::new("self.all(l, self.exists_one(m, m.port == l.port))").message("listener ports must be unique"))]
    #[schemars(length(max = 8))]
    pub listeners: Vec<ListenerSpec>,

    /// Broker configuration as Kafka property names and values, e.g. `log.retention.ms`.
    /// Keys the operator manages itself (node.id, listeners, log.dirs, ...) are ignored
    /// with a Warning condition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "config_map")]
    pub config: BTreeMap<String, serde_json::Value>,

    /// Where brokers keep their logs.
    #[serde(default)]
    pub storage: StorageSpec,

    /// CPU and memory for each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Rack awareness: each broker's `broker.rack` is its node's value of this label, so
    /// replicas spread across zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,

    /// Overrides for the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateOverrides>,

    /// Prometheus metrics on the brokers' admin port.
    #[serde(default)]
    pub metrics: MetricsSpec,

    /// Restrict ingress to the brokers with a NetworkPolicy.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// Default replication factor of new topics (`default.replication.factor`, also used
    /// for internal topics). Cannot exceed `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub default_replication_factor: Option<i32>,

    /// Default `min.insync.replicas` of topics. Cannot exceed the replication factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_insync_replicas: Option<i32>,

    /// How partitions move when brokers are added or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceSpec>,

    /// Kafka's ACL authorizer. Without it every client may do everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<ClusterAuthorization>,

    /// The cluster CA (signs the brokers' and the operator's certificates) of a secured
    /// cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ca: Option<CertificateAuthoritySpec>,

    /// The clients CA (signs KafkaUser certificates) of a secured cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_ca: Option<CertificateAuthoritySpec>,
}

/// A certificate authority's lifetime and origin, in Strimzi's `clusterCa` shape.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.validityDays) || !has(self.renewalDays) || self.renewalDays < self.validityDays").message("renewalDays must be shorter than validityDays"))]
pub struct CertificateAuthoritySpec {
    /// Days the CA's certificate, and each certificate it issues, is valid. Default 365.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub validity_days: Option<i32>,
    /// Days before expiry a certificate is renewed. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 36499))]
    pub renewal_days: Option<i32>,
    /// False: the CA is yours. The operator then reads the Secrets
    /// `<cluster>-cluster-ca-cert` (`ca.crt`) and `<cluster>-cluster-ca` (`ca.key`), or
    /// the `clients-ca` pair, and only issues certificates from them. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_certificate_authority: Option<bool>,
    /// What renewing a generated CA does (see [`CertificateExpirationPolicy`]). Default
    /// `renew-certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expiration_policy: Option<CertificateExpirationPolicy>,
}

/// What renewing a generated CA does, as Strimzi's `certificateExpirationPolicy`:
/// `renew-certificate` (default) issues a new CA certificate for the same key and subject,
/// so clients that still trust the old certificate keep connecting; `replace-key` makes a
/// new key, and clients must load the new `ca.crt` before the brokers present certificates
/// from it. Annotate the `-ca-cert` Secret with `kafka.strom.dev/force-renew: "true"` to
/// renew now (as this policy says), or the `-ca` Secret with
/// `kafka.strom.dev/force-replace: "true"` to replace the key now.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateExpirationPolicy {
    /// A new CA certificate with the same key and subject; the old one stays trusted
    /// until nothing uses it.
    #[default]
    RenewCertificate,
    /// A new CA key and certificate; the old certificate stays trusted until nothing uses
    /// it.
    ReplaceKey,
}

/// The brokers' authorizer, as Strimzi's `authorization` block writes it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAuthorization {
    /// `simple`: Kafka's ACL authorizer (ACLs in the metadata log, managed with
    /// `kafka-acls` or KafkaUser resources).
    #[serde(rename = "type")]
    pub kind: ClusterAuthorizationType,
    /// Principals allowed everything, e.g. `CN=admin` (an mTLS user) or `admin` (a SCRAM
    /// user); a `User:` prefix is added where missing. The brokers and the operator are
    /// always super users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // `super.users` separates principals with ';'.
    #[schemars(
        length(max = 100),
        inner(length(min = 1, max = 512), regex(pattern = r"^[^;]+$"))
    )]
    pub super_users: Vec<String>,
}

/// Cluster authorizer type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClusterAuthorizationType {
    /// Kafka's StandardAuthorizer semantics.
    Simple,
}

/// Partition moves on scale-up and scale-down.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Partitions moved at once (one batch; the next starts when it is done). Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub batch_size: Option<i32>,
    /// Replication throttle in bytes per second while partitions move, set as
    /// `leader.replication.throttled.rate` and `follower.replication.throttled.rate` on
    /// the brokers involved and removed when the batch is done. Default 50 MiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub throttle_bytes_per_second: Option<i64>,
}

/// One client listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// Listener name: lower-case letters and digits, unique in the cluster. Kafka sees it
    /// upper-cased (`PLAIN` for `plain`).
    #[schemars(length(min = 1, max = 25), regex(pattern = r"^[a-z][a-z0-9]*$"))]
    pub name: String,

    /// Port every broker listens on for this listener.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,

    /// How clients reach the listener: `internal` (ClusterIP services inside the cluster),
    /// `nodeport` or `loadbalancer`.
    #[serde(rename = "type", default)]
    pub kind: ListenerType,

    /// Encrypt connections with TLS.
    #[serde(default)]
    pub tls: bool,

    /// Client authentication on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ListenerAuthentication>,

    /// Who may connect when `networkPolicy.enabled` is true. Empty means anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_policy_peers: Vec<NetworkPolicyPeer>,
}

/// How clients reach a listener.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListenerType {
    /// Reachable inside the Kubernetes cluster.
    #[default]
    Internal,
    /// A NodePort service per broker plus one for bootstrap.
    Nodeport,
    /// A LoadBalancer service per broker plus one for bootstrap.
    Loadbalancer,
}

/// Client authentication on a listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ListenerAuthentication {
    /// Mechanism: `scram-sha-512` or `tls` (mutual TLS). Other values are reported on the
    /// cluster's Ready condition.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Broker storage.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'ephemeral' || has(self.size)").message("persistent-claim storage needs a size"))]
#[x_kube(validation = Rule::new("self.type == oldSelf.type").message("storage type is immutable"))]
#[x_kube(validation = Rule::new("has(self.class) == has(oldSelf.class) && (!has(self.class) || self.class == oldSelf.class)").message("storage class is immutable"))]
pub struct StorageSpec {
    /// `ephemeral` (an emptyDir: data is lost with the pod) or `persistent-claim`.
    #[serde(rename = "type", default)]
    pub kind: StorageType,

    /// Volume size, e.g. `100Gi`. For ephemeral storage, the emptyDir size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,

    /// StorageClass of the claims. Immutable, as a StatefulSet's claim templates are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,

    /// Delete the claims of brokers a scale-down removes (the StatefulSet's
    /// `persistentVolumeClaimRetentionPolicy.whenScaled: Delete`). Default false: they are
    /// kept, and a broker that comes back with the same ordinal finds its old volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_claims_on_scale_down: bool,
}

/// Kind of broker storage.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StorageType {
    /// An emptyDir: data lives as long as the pod.
    #[default]
    Ephemeral,
    /// A PersistentVolumeClaim per broker, kept when the pod moves.
    PersistentClaim,
}

/// Rack awareness.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// Node label whose value becomes each broker's `broker.rack`, e.g.
    /// `topology.kubernetes.io/zone`.
    #[schemars(length(min = 1))]
    pub topology_key: String,
}

/// Overrides for the broker pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra pod labels. The operator's own labels win on conflict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Replaces the default affinity (which prefers one broker per node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Pod tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// PriorityClass of the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Pod security context. The default runs as a non-root user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Security context of the broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_security_context: Option<SecurityContext>,
}

/// Metrics settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MetricsSpec {
    /// Serve Prometheus metrics on the admin port and annotate pods for scraping.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec { enabled: true }
    }
}

fn enabled() -> bool {
    true
}

/// NetworkPolicy settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct NetworkPolicySpec {
    /// Create a NetworkPolicy: brokers talk to each other on every port, clients reach
    /// only the listener ports (from each listener's `networkPolicyPeers`), and anyone
    /// may reach the admin port (probes, metrics, the operator).
    #[serde(default)]
    pub enabled: bool,
}

/// Observed state of a KafkaCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// Ready, NotReady and Warning. `lastTransitionTime` changes only when a status flips.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_list")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Broker pods that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Broker pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the broker pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// strom-broker version the StatefulSet runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Bootstrap addresses per listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    /// Progress of the rolling restart under way; absent when every broker runs its
    /// current configuration and image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_restart: Option<RollingRestartStatus>,
    /// A scale under way: its phase, the partition moves planned and done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingStatus>,
    /// Partitions whose ISR is smaller than their replica set, as the brokers last
    /// reported; absent while the operator cannot ask them (see the UnderReplicated
    /// condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_replicated_partitions: Option<i32>,
    /// Partitions without a leader, as the brokers last reported; absent while unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_partitions: Option<i32>,
}

/// Where a rolling restart stands. The roller restarts one broker at a time; this says
/// which are done, which wait, and what holds the next one back.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollingRestartStatus {
    /// Brokers that still need a restart, in the order the roller takes them (not-ready
    /// brokers first, the active controller last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<i32>,
    /// Brokers restarted, or updated in place, since this roll began.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<i32>,
    /// The broker restarted last, until its pod is Ready, it is back in the ISR of every
    /// partition it replicates and it leads its preferred partitions again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarting: Option<i32>,
    /// Why the next restart waits; the roller re-checks with back-off and goes on by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<BlockedRestart>,
    /// Brokers stuck (CrashLoopBackOff, Pending) on the current pod template: restarting
    /// them would not help, so they are reported, not restarted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<i32>,
}

/// The restart the roller is holding back, and why.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BlockedRestart {
    /// The broker that would be restarted next.
    pub broker: i32,
    /// A CamelCase reason, as in the `RollingRestart` condition.
    pub reason: String,
    /// What blocks it, in words.
    pub message: String,
    /// The partitions (`topic-partition`) that would fall below `min.insync.replicas`, the
    /// first ones only when there are many.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
}

/// Progress of a scale (and of the partition moves it needs).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStatus {
    /// Identifies this scale for approval: `<from>to<to>`, e.g. `3to5`. With the
    /// annotation `kafka.strom.dev/rebalance: approve`, moves start once
    /// `kafka.strom.dev/rebalance-approved` carries this value.
    pub id: String,
    /// What the operator is doing: Growing, WaitingForBrokers, Moving, Paused,
    /// AwaitingApproval, Draining, Shrinking, Unregistering, Refused, or Unreachable.
    pub phase: String,
    /// Brokers when the scale started.
    pub from: i32,
    /// Brokers asked for.
    pub to: i32,
    /// Partition moves finished so far.
    #[serde(default)]
    pub moves_done: i32,
    /// Partition moves this scale needs (grows if the target changes mid-way).
    #[serde(default)]
    pub moves_total: i32,
    /// Partitions of the batch under way, as `topic-partition`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<String>,
    /// Topics that carry replication throttles set by the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttled_topics: Vec<String>,
    /// Topics whose replication factor the remaining brokers cannot hold (scale-down refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_topics: Vec<String>,
    /// One line on what is happening or what holds the scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where clients find one listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// `host:port` list to put in a client's `bootstrap.servers`.
    pub bootstrap_servers: String,
}

impl KafkaClusterSpec {
    /// The listeners in effect: the spec's, or the default internal plaintext one.
    pub fn effective_listeners(&self) -> Vec<ListenerSpec> {
        if self.listeners.is_empty() {
            vec![ListenerSpec {
                name: "plain".into(),
                port: 9092,
                kind: ListenerType::Internal,
                tls: false,
                authentication: None,
                network_policy_peers: Vec::new(),
            }]
        } else {
            self.listeners.clone()
        }
    }
}
