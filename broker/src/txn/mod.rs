//! Producer state: idempotent producer sequence checks and producer id allocation.
//! Transactions (coordinator, markers, LSO) land here in a later issue.

pub mod producer_ids;
pub mod producer_state;
