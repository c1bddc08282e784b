//! `KafkaTopic`: one topic, managed one way from Kubernetes to the brokers (reconciled by
//! `crate::topic`).
// Each `printcolumn(...)` in the kube derive repeats keys such as `type_`; clippy reads
// that as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::schema::{conditions_list, config_map};

/// A Kafka topic in the KafkaCluster named by the `kafka.strom.dev/cluster` label.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kafka.strom.dev",
    version = "v1alpha1",
    kind = "KafkaTopic",
    namespaced,
    status = "KafkaTopicStatus",
    shortname = "kt",
    category = "strom",
    cel,
    doc = "A Kafka topic in the KafkaCluster named by the kafka.strom.dev/cluster label.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels.kafka\\.strom\\.dev/cluster",
        description = "KafkaCluster the topic lives in"
    ),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Replication factor"
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
#[x_kube(validation = Rule::new("has(self.topicName) == has(oldSelf.topicName) && (!has(self.topicName) || self.topicName == oldSelf.topicName)").message("topicName is immutable"))]
pub struct KafkaTopicSpec {
    /// Topic name in Kafka, when it differs from the resource name (Kafka allows `_` and
    /// upper case; Kubernetes names do not). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic_name: Option<String>,

    /// Number of partitions. Can grow; a decrease is reported, not attempted.
    #[schemars(range(min = 1, max = 10000))]
    pub partitions: i32,

    /// Replication factor.
    #[schemars(range(min = 1, max = 32767))]
    pub replicas: i32,

    /// Topic configuration as Kafka property names, e.g. `retention.ms`, `cleanup.policy`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "config_map")]
    pub config: BTreeMap<String, serde_json::Value>,
}

/// Observed state of a KafkaTopic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicStatus {
    /// Ready, NotReady and Warning conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_list")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The topic's name in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Kafka's id of the topic (as its tools print it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Partitions the topic has on the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replication factor the topic has on the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}
