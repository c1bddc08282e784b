//! strom-operator: reconciles `KafkaCluster`, `KafkaTopic` and `KafkaUser` into
//! StatefulSets of strom-broker. See `operator/README.md` for the module map.

pub mod cluster;
pub mod crd;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod telemetry;
