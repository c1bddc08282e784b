//! A small async Kafka protocol client: one connection, typed requests from the
//! `kafka-protocol` crate, answers decoded with the matching response type. Brokers use it
//! for follower fetches; tools and tests use it for APIs the usual clients do not expose.
//! `admin` adds typed, batched topic administration on top; `admin_security` the ACL,
//! SCRAM credential and client quota calls; `admin_cluster` the cluster operations
//! (brokers, partitions, broker configs, reassignments, elections, the quorum, group and
//! transaction coordinators); `admin_log_dirs` one broker's log directories.
//!
//! Connections may be secured as Kafka's `security.protocol` allows: [`Security`] holds
//! an optional [`tls::TlsConfig`] (CA bundle, optional client certificate for mutual TLS,
//! all from PEM in memory) and optional [`sasl::SaslCredentials`] (PLAIN,
//! SCRAM-SHA-256/512); [`Security::connect`] opens TCP, then TLS, then SASL.
//! [`scram`] is the SCRAM client and the primitives the broker's SCRAM server shares,
//! including [`scram::salted_password`] for AlterUserScramCredentials.

pub mod admin;
pub mod admin_cluster;
pub mod admin_log_dirs;
pub mod admin_security;
mod connection;
pub mod sasl;
pub mod scram;
pub mod security;
pub mod tls;

pub use connection::{ClientError, Connection, Stream};
pub use security::{ConnectError, Security};
