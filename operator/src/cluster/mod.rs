//! The KafkaCluster controller: `validate` and `resources` (with `config`) are the pure
//! desired-state layer, spec to objects, testable without a cluster; `reconcile` applies
//! them and `status` reads back what runs.

pub mod alerts;
pub mod certificates;
pub mod config;
pub mod controller;
pub mod names;
pub mod reconcile;
pub mod resources;
pub mod scale;
pub mod security;
pub mod status;
pub mod validate;

#[cfg(test)]
mod reconcile_tests;
