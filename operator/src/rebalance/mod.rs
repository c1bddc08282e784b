//! Partition reassignment for scaling, built into the operator (no external rebalancer):
//! `plan` decides where replicas go, `batch` what starts next and its throttles,
//! `progress` the scale state machine, all pure; `kafka` makes the broker calls. The
//! reconcile step that uses them is `cluster/scale.rs`.

pub mod batch;
pub mod kafka;
pub mod plan;
pub mod progress;
