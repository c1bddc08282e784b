//! strom-operator: reconciles `KafkaCluster`, `KafkaTopic` and `KafkaUser` into
//! StatefulSets of strom-broker. See `operator/README.md` for the module map.

pub mod crd;
