//! The KafkaCluster controller: `validate` and `resources` are the pure desired-state layer
//! (spec to objects, testable without a cluster); `reconcile` applies them and writes status.

pub mod config;
pub mod names;
pub mod resources;
pub mod validate;
