//! Names, labels and ports of everything the operator creates for one KafkaCluster. One
//! place, so the desired-state code, the reconciler and the pod init step agree.

use std::collections::BTreeMap;

use crate::crd::{KafkaCluster, CLUSTER_LABEL};

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "strom-operator";
/// Pod-template annotation holding the hash of the broker configuration that needs a
/// restart to take effect; the rolling-restart controller compares it per pod.
pub const CONFIG_HASH_ANNOTATION: &str = "kafka.strom.dev/config-hash";
/// Pod-template annotation: a JSON map from broker ordinal to the hash of that broker's own
/// `broker-<i>.properties` (`{"0":"..","1":".."}`). A pod keeps the map of the template it
/// was created from, so broker i runs an outdated configuration iff its entry differs from
/// the desired one; a change to broker 1's file alone restarts only broker 1.
pub const BROKER_HASHES_ANNOTATION: &str = "kafka.strom.dev/broker-config-hashes";
/// Pod annotation the roller writes after applying a dynamic-only change with
/// IncrementalAlterConfigs: the hash of the properties the running broker now has, which
/// supersedes the template's entry for that pod.
pub const APPLIED_HASH_ANNOTATION: &str = "kafka.strom.dev/applied-config-hash";
/// `true` on a broker pod restarts that broker; on the KafkaCluster, every broker. The
/// operator removes it when done (a pod's goes with the pod it restarts).
pub const MANUAL_ROLL_ANNOTATION: &str = "kafka.strom.dev/manual-rolling-update";
/// `app.kubernetes.io/name` of the operator's own pods (chart and deploy/), which the
/// brokers' NetworkPolicy admits to the inter-broker listener for the admin calls.
pub const OPERATOR_APP_NAME: &str = "strom-operator";
/// Finalizer, added only while cluster-scoped objects (the rack ClusterRoleBinding) exist.
pub const FINALIZER: &str = "kafka.strom.dev/cluster-cleanup";

/// Broker-to-broker listener (Kafka's `inter.broker.listener.name`).
pub const REPLICATION_LISTENER: &str = "REPLICATION";
pub const REPLICATION_PORT: i32 = 9091;
/// KRaft controller listener (`controller.listener.names`).
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";
pub const CONTROLLER_PORT: i32 = 9093;
/// strom-broker's `admin.listener`: /health, /ready, /metrics.
pub const ADMIN_PORT: i32 = 9644;
/// Ports and lower-case listener names users cannot take.
pub const RESERVED_PORTS: &[i32] = &[REPLICATION_PORT, CONTROLLER_PORT, ADMIN_PORT];
pub const RESERVED_LISTENER_NAMES: &[&str] = &["replication", "controller"];
/// Most controller voters: the first pods, as Strimzi and Redpanda use three.
pub const MAX_VOTERS: i32 = 3;

/// Where the ConfigMap is mounted, the per-pod file pod-init writes, and the data volume.
pub const CONFIG_DIR: &str = "/etc/strom";
pub const RUNTIME_CONFIG_DIR: &str = "/var/run/strom";
pub const RUNTIME_CONFIG_FILE: &str = "/var/run/strom/server.properties";
pub const DATA_DIR: &str = "/var/lib/strom";

/// The ClusterRole (shipped by the chart and deploy/) that lets broker pods read their
/// node's labels for rack awareness.
pub const RACK_CLUSTER_ROLE: &str = "strom-broker-rack";

pub fn cluster_name(cluster: &KafkaCluster) -> String {
    cluster.metadata.name.clone().unwrap_or_default()
}

pub fn namespace(cluster: &KafkaCluster) -> String {
    cluster
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

/// StatefulSet, PodDisruptionBudget, ServiceAccount and NetworkPolicy share this name.
pub fn broker_set(cluster: &str) -> String {
    format!("{cluster}-broker")
}
pub fn config_map(cluster: &str) -> String {
    format!("{cluster}-config")
}
pub fn headless_service(cluster: &str) -> String {
    format!("{cluster}-brokers")
}
pub fn bootstrap_service(cluster: &str) -> String {
    format!("{cluster}-bootstrap")
}
/// Bootstrap Service of a nodeport or loadbalancer listener.
pub fn external_bootstrap_service(cluster: &str, listener: &str) -> String {
    format!("{cluster}-{listener}-bootstrap")
}
/// Per-broker Service of a nodeport or loadbalancer listener.
pub fn external_broker_service(cluster: &str, listener: &str, ordinal: i32) -> String {
    format!("{cluster}-{listener}-{ordinal}")
}
pub fn pod(cluster: &str, ordinal: i32) -> String {
    format!("{}-{ordinal}", broker_set(cluster))
}
/// A broker's stable DNS name through the headless Service.
pub fn pod_dns(cluster: &str, namespace: &str, ordinal: i32) -> String {
    format!(
        "{}.{}.{namespace}.svc",
        pod(cluster, ordinal),
        headless_service(cluster)
    )
}
/// ClusterRoleBinding granting the brokers' ServiceAccount the rack ClusterRole.
/// Cluster-scoped, so it cannot be owned by the KafkaCluster: the finalizer removes it.
pub fn rack_binding(cluster: &str, namespace: &str) -> String {
    format!("strom-{namespace}-{cluster}-rack")
}
/// ConfigMap key of one broker's server.properties.
pub fn broker_properties_key(ordinal: i32) -> String {
    format!("broker-{ordinal}.properties")
}

/// Labels that select a cluster's broker pods (StatefulSet selector, Services, PDB).
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "strom-broker".to_string(),
        ),
        (CLUSTER_LABEL.to_string(), cluster.to_string()),
    ])
}

/// `status.selector` for the scale subresource.
pub fn selector_string(cluster: &str) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels on every object the operator creates for a cluster.
pub fn labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert("app.kubernetes.io/instance".into(), cluster.into());
    labels.insert("app.kubernetes.io/part-of".into(), "strom".into());
    labels.insert("app.kubernetes.io/component".into(), "broker".into());
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    labels
}
