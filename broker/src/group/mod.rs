//! Consumer groups (Kafka's classic group protocol) and their committed offsets.
//!
//! `state` is one group's rebalance state machine, `coordinator` runs requests against
//! the groups this broker coordinates and persists them, `partitions` tracks which
//! partitions of the internal compacted topic `__consumer_offsets` it coordinates (the
//! ones this broker leads), `records` is the layout of what goes into that topic, `load`
//! replays a partition when this broker becomes its leader, and `durability` says what a
//! client hears when a write does not make it to the in-sync replicas.

pub mod coordinator;
pub mod durability;
pub mod load;
pub mod partitions;
pub mod records;
pub mod state;

pub use coordinator::{GroupCoordinator, OffsetsLog};
pub use partitions::PartitionStatus;
pub use state::{Committed, GroupState, JoinRequest};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
