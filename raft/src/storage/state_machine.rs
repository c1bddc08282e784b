//! The state machine openraft applies committed entries to, with snapshots on disk.
//!
//! The state itself lives in memory; `snapshot.json` in the quorum directory holds the last
//! snapshot (state, last included log id, membership). On restart the state is rebuilt from
//! that snapshot plus the log entries after it, which openraft re-applies.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};

use super::files;
use super::storage_err;
use crate::applied::Publisher;
use crate::error::QuorumError;
use crate::types::{Entry, LogId, Membership, RaftTypes, SnapshotMeta, StorageError};
use crate::ReplicatedState;

const SNAPSHOT_FILE: &str = "snapshot.json";

/// A snapshot as stored on disk and sent to peers. `data` is the JSON of the state, kept as a
/// string so it is not re-encoded as a JSON array of numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub meta: SnapshotMeta,
    pub data: String,
}

impl StoredSnapshot {
    pub(crate) fn to_openraft<S: ReplicatedState>(&self) -> Snapshot<RaftTypes<S>> {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.data.clone().into_bytes())),
        }
    }
}

/// The last snapshot, shared between the state machine and its snapshot builders.
struct SnapshotSlot {
    dir: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
}

impl SnapshotSlot {
    /// Persists `snapshot` unless a newer one is already in place.
    fn store(&self, snapshot: StoredSnapshot) -> Result<(), StorageError> {
        let signature = snapshot.meta.signature();
        let mut current = self.current.lock().map_err(|_| {
            storage_err(
                StorageIOError::write_state_machine,
                "snapshot lock poisoned",
            )
        })?;
        if current
            .as_ref()
            .is_some_and(|cur| cur.meta.last_log_id > snapshot.meta.last_log_id)
        {
            return Ok(());
        }
        files::write_json(&self.dir.join(SNAPSHOT_FILE), &snapshot).map_err(|e| {
            StorageError::from(StorageIOError::write_snapshot(
                Some(signature),
                openraft::AnyError::new(&e),
            ))
        })?;
        *current = Some(snapshot);
        Ok(())
    }

    fn get(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let current = self.current.lock().map_err(|_| {
            storage_err(StorageIOError::read_state_machine, "snapshot lock poisoned")
        })?;
        Ok(current.clone())
    }
}

pub(crate) struct StateMachineStore<S: ReplicatedState> {
    state: Arc<S>,
    applied: Option<LogId>,
    membership: Membership,
    snapshots: Arc<SnapshotSlot>,
    publisher: Arc<Publisher<S>>,
}

impl<S: ReplicatedState> StateMachineStore<S> {
    /// Loads the last snapshot from `dir`, if any, and publishes its state.
    pub fn open(dir: &Path, publisher: Arc<Publisher<S>>) -> Result<Self, QuorumError> {
        let snapshot: Option<StoredSnapshot> = files::read_json(&dir.join(SNAPSHOT_FILE))
            .map_err(|e| QuorumError::io("reading the raft snapshot", e))?;
        let mut store = StateMachineStore {
            state: Arc::new(S::default()),
            applied: None,
            membership: StoredMembership::default(),
            snapshots: Arc::new(SnapshotSlot {
                dir: dir.to_path_buf(),
                current: Mutex::new(None),
            }),
            publisher,
        };
        if let Some(snapshot) = snapshot {
            let state: S = serde_json::from_str(&snapshot.data).map_err(|e| {
                QuorumError::Storage(format!("decoding the raft snapshot's state: {e}"))
            })?;
            tracing::info!(last_log_id = ?snapshot.meta.last_log_id, "recovered state from the raft snapshot");
            store.state = Arc::new(state);
            store.applied = snapshot.meta.last_log_id;
            store.membership = snapshot.meta.last_membership.clone();
            if let Ok(mut current) = store.snapshots.current.lock() {
                *current = Some(snapshot);
            }
        }
        store.publish();
        Ok(store)
    }

    fn publish(&self) {
        self.publisher.publish(
            self.applied.map_or(0, |id| id.index),
            Arc::clone(&self.state),
        );
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked for the builder.
pub(crate) struct SnapshotBuilder<S: ReplicatedState> {
    state: Arc<S>,
    applied: Option<LogId>,
    membership: Membership,
    snapshots: Arc<SnapshotSlot>,
}

impl<S: ReplicatedState> RaftSnapshotBuilder<RaftTypes<S>> for SnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<RaftTypes<S>>, StorageError> {
        let data = serde_json::to_string(&*self.state)
            .map_err(|e| storage_err(StorageIOError::read_state_machine, e))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let snapshot_id = format!("{}-{nanos}", self.applied.map_or(0, |id| id.index));
        let snapshot = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            data,
        };
        tracing::debug!(meta = %snapshot.meta, "built a raft snapshot");
        let result = snapshot.to_openraft();
        self.snapshots.store(snapshot)?;
        Ok(result)
    }
}

impl<S: ReplicatedState> RaftStateMachine<RaftTypes<S>> for StateMachineStore<S> {
    type SnapshotBuilder = SnapshotBuilder<S>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry<S>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => Arc::make_mut(&mut self.state).apply(&command),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            self.applied = Some(entry.log_id);
            responses.push(());
        }
        self.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            state: Arc::clone(&self.state),
            applied: self.applied,
            membership: self.membership.clone(),
            snapshots: Arc::clone(&self.snapshots),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let signature = Some(meta.signature());
        let data = String::from_utf8(snapshot.into_inner()).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                signature.clone(),
                openraft::AnyError::new(&e),
            ))
        })?;
        let state: S = serde_json::from_str(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                signature,
                openraft::AnyError::new(&e),
            ))
        })?;
        tracing::info!(%meta, "installing a raft snapshot from the leader");
        self.snapshots.store(StoredSnapshot {
            meta: meta.clone(),
            data,
        })?;
        self.state = Arc::new(state);
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<RaftTypes<S>>>, StorageError> {
        Ok(self.snapshots.get()?.map(|snapshot| snapshot.to_openraft()))
    }
}
