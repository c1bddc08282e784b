//! Strom's broker: a Kafka-compatible broker on a durable segmented log.
//!
//! The modules follow Apache Kafka 4's own seams: `net` (listeners, framing),
//! `protocol` (routing by api key; codecs from `kafka-protocol`), `log` (partition logs),
//! `metadata` (the metadata record log and its image), `controller` (decisions that turn
//! requests into metadata records), `txn` (producer state), plus `metrics` and the admin
//! HTTP endpoint. See README.md in this crate.

pub mod admin_http;
pub mod alloc;
pub mod auth;
pub mod broker;
pub mod cluster_health;
pub mod config;
pub mod controller;
pub mod error;
pub mod group;
pub mod harness;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod quorum;
pub mod quota;
pub mod replication;
pub mod server;
pub mod txn;
