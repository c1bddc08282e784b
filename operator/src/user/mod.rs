//! The KafkaUser controller, one way from Kubernetes to the brokers: `plan` is the pure
//! decision (spec to principal, ACL bindings and quotas, and their differences from what
//! the brokers hold), `secret` the user's Secret, `status` the pure status rules, `kafka`
//! the broker calls behind a trait, `reconcile` applies them.

pub mod controller;
pub mod kafka;
pub mod plan;
pub mod reconcile;
pub mod secret;
pub mod status;

#[cfg(test)]
mod reconcile_tests;
