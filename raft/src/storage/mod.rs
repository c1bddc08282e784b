//! openraft's v2 storage, kept on local disk: the log store and the snapshotting state machine.

// openraft's trait methods return its large `StorageError`; helpers return it unchanged
// rather than boxing and unboxing on every call.
#![allow(clippy::result_large_err)]

pub(crate) mod files;
pub(crate) mod log_store;
pub(crate) mod state_machine;

use openraft::AnyError;

use crate::types::StorageError;

/// A storage failure openraft will treat as fatal for the node.
pub(crate) fn storage_err(
    make: fn(AnyError) -> openraft::StorageIOError<u64>,
    error: impl std::fmt::Display,
) -> StorageError {
    StorageError::from(make(AnyError::error(error)))
}
