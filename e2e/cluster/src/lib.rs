//! Multi-broker fault tests for strom-broker: a harness that runs real broker processes
//! (on loopback or in network namespaces), an acks=all load generator that records every
//! send, and a checker for acknowledged-write durability, idempotence, order and replica
//! consistency. The scenarios are in `tests/faults.rs`; see README.md.

pub mod admin_http;
pub mod binary;
pub mod checker;
pub mod client_config;
pub mod cluster;
pub mod error;
pub mod group;
pub mod history;
pub mod load;
pub mod netns;
pub mod process;
pub mod prom;
pub mod props;
pub mod reader;
pub mod security;
pub mod segments;
pub mod slots;
pub mod small_fs;
pub mod verify;
pub mod wait;
pub mod wire;

pub use checker::{Report, Violation};
pub use cluster::{Cluster, ClusterOptions, Network, PartitionInfo};
pub use error::{HarnessError, Result};
pub use history::{History, Outcome, SendRecord};
pub use load::{LoadGenerator, LoadOptions};
pub use verify::verify;
