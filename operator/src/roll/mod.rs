//! The roller: safe rolling restarts of a KafkaCluster's brokers.
//!
//! The StatefulSet is `OnDelete`, so Kubernetes never replaces a broker pod by itself;
//! the roller decides which pod to delete, when, and in which order. The decisions are
//! pure functions with their own tests (`triggers`, `safety`, `plan`); `kafka` talks to
//! the brokers (Kafka protocol through strom-client, and the admin HTTP `/restart-safe`);
//! `roller` is the reconcile step that reads top to bottom and acts on at most one pod.

pub mod kafka;
pub mod plan;
pub mod roller;
pub mod safety;
pub mod triggers;
