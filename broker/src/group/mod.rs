//! Consumer groups (Kafka's classic group protocol) and their committed offsets.
//!
//! `state` is one group's rebalance state machine, `coordinator` runs requests against
//! the groups this broker coordinates and persists them, `records` is the layout of what
//! goes into the internal compacted topic `__consumer_offsets`, and `load` replays that
//! topic at start-up.

pub mod coordinator;
pub mod load;
pub mod records;
pub mod state;

pub use coordinator::{GroupCoordinator, OffsetsLog};
pub use state::{Committed, GroupState, JoinRequest};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
