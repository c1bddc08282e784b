//! Listeners, framing and per-connection request handling.

pub mod connection;
pub mod frame;
pub mod listener;
