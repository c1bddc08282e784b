//! strom-operator: reconciles `KafkaCluster`, `KafkaTopic` and `KafkaUser` into
//! StatefulSets of strom-broker. See `operator/README.md` for the module map.

pub mod access;
pub mod apply;
pub mod backoff;
pub mod certs;
pub mod cluster;
pub mod conditions;
pub mod crd;
pub mod events;
pub mod health;
pub mod http;
pub mod leader;
pub mod membership;
pub mod metrics;
pub mod podinit;
pub mod rebalance;
pub mod render;
pub mod roll;
pub mod telemetry;
pub mod topic;
pub mod user;

#[cfg(test)]
mod fixtures;
