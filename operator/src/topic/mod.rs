//! The KafkaTopic controller, one way from Kubernetes to the brokers: `plan` is the pure
//! decision (spec and observed topic to broker calls), `status` the pure status and
//! ownership rules, `kafka` the broker calls behind a trait, `reconcile` applies them.

pub mod controller;
pub mod index;
pub mod kafka;
pub mod plan;
pub mod reconcile;
pub mod status;

#[cfg(test)]
mod reconcile_tests;
