//! Listeners, framing, per-connection request handling and connection limits.

pub mod connection;
pub mod creation_rate;
pub mod frame;
pub mod listener;
pub mod outbound;
pub mod quotas;
pub mod sasl;
pub mod tls;
mod trim;
