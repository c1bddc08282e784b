//! A small async Kafka protocol client: one connection, typed requests from the
//! `kafka-protocol` crate, answers decoded with the matching response type. Brokers use it
//! for follower fetches; tools and tests use it for APIs the usual clients do not expose.
//! `admin` adds typed, batched topic administration on top; `admin_security` the ACL,
//! SCRAM credential and client quota calls.

pub mod admin;
pub mod admin_security;
mod connection;

pub use connection::{ClientError, Connection, Stream};
