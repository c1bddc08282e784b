//! Kafka's replication model: every partition has a leader and followers; followers fetch
//! from the leader with their replica id; the high watermark is what every in-sync
//! replica has; the ISR shrinks and grows through the controller; a follower truncates to
//! the new leader's log on a leadership change.
//!
//! `role` holds the per-partition rules, `isr_change` when a leader may ask for an ISR
//! change, `manager` applies the metadata's roles and asks
//! for ISR changes, `fetcher` is the follower side, `throttle` the reassignment throttles.

pub mod fetcher;
pub mod isr_change;
pub mod manager;
pub mod role;
pub mod throttle;

pub use manager::ReplicaManager;
pub use role::{FollowerState, LeaderState, ReplicaRole};
