//! The cluster id: loading, adopting and persisting it, checking peers against it, and the
//! node's fatal outcome when the quorum refuses it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::error::QuorumError;
use crate::storage::files;

const CLUSTER_ID_FILE: &str = "cluster.id";

pub(crate) struct ClusterIdentity {
    node_id: u64,
    dir: PathBuf,
    id: Mutex<Option<String>>,
    /// Voters that refused this node's cluster id; a majority of them makes it fatal.
    refused_by: Mutex<BTreeSet<u64>>,
    refusals_for_fatal: usize,
    fatal: watch::Sender<Option<QuorumError>>,
}

impl ClusterIdentity {
    /// Reads `cluster.id` from `dir`; a configured id must agree with it and is persisted if
    /// the file does not exist yet.
    pub fn load(
        node_id: u64,
        dir: &Path,
        configured: Option<String>,
        refusals_for_fatal: usize,
    ) -> Result<Self, QuorumError> {
        let path = dir.join(CLUSTER_ID_FILE);
        let stored = files::read_optional(&path)
            .map_err(|e| QuorumError::io(format!("reading {}", path.display()), e))?
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
            .filter(|id| !id.is_empty());
        let identity = ClusterIdentity {
            node_id,
            dir: dir.to_path_buf(),
            id: Mutex::new(None),
            refused_by: Mutex::new(BTreeSet::new()),
            refusals_for_fatal,
            fatal: watch::Sender::new(None),
        };
        match (configured, stored) {
            (Some(configured), Some(stored)) if configured != stored => {
                return Err(QuorumError::Config(format!(
                    "configured cluster id {configured} differs from {stored} stored in {}",
                    path.display()
                )));
            }
            (Some(id), None) => {
                identity.set_if_missing(&id)?;
            }
            (_, Some(id)) => *identity.lock() = Some(id),
            (None, None) => {}
        }
        Ok(identity)
    }

    pub fn get(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // The guarded value is a plain Option<String>; a panic elsewhere cannot leave it torn.
        self.id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Persists and takes `id` unless an id is already known (then returns false). The lock
    /// is held across the write so concurrent adopters cannot race on the file.
    fn set_if_missing(&self, id: &str) -> Result<bool, QuorumError> {
        let mut current = self.lock();
        if current.is_some() {
            return Ok(false);
        }
        let path = self.dir.join(CLUSTER_ID_FILE);
        files::write_atomic(&path, id.as_bytes())
            .map_err(|e| QuorumError::io(format!("writing {}", path.display()), e))?;
        *current = Some(id.to_string());
        Ok(true)
    }

    /// Generates and persists a new id unless one is known; for the node forming a quorum.
    pub fn generate_if_missing(&self) -> Result<String, QuorumError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        if self.set_if_missing(&id)? {
            tracing::info!(cluster_id = %id, "generated a new cluster id");
            return Ok(id);
        }
        Ok(self.get().unwrap_or(id))
    }

    /// Takes `theirs` as our id if we have none yet.
    pub fn adopt(&self, theirs: Option<&str>, peer: u64) {
        let Some(theirs) = theirs else { return };
        if self.get().is_some() {
            return;
        }
        match self.set_if_missing(theirs) {
            Ok(true) => {
                tracing::info!(cluster_id = %theirs, peer, "adopted the cluster id of a quorum peer")
            }
            Ok(false) => {}
            Err(e) => self.fail(e),
        }
    }

    /// Checks the id on an incoming RPC: `Err(ours)` means refuse it.
    pub fn check_incoming(&self, theirs: Option<&str>, from: u64) -> Result<(), String> {
        match (self.get(), theirs) {
            (Some(ours), Some(theirs)) if ours != theirs => {
                tracing::error!(
                    from,
                    their_cluster_id = %theirs,
                    our_cluster_id = %ours,
                    "refusing a quorum RPC from node {from}: it belongs to cluster {theirs}, this node to {ours}"
                );
                Err(ours)
            }
            (None, theirs) => {
                self.adopt(theirs, from);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Records that voter `peer` refused us for belonging to `theirs`; resolves the fatal
    /// outcome once a majority of voters did.
    pub fn refused_by(&self, peer: u64, theirs: &str) {
        let ours = self.get().unwrap_or_else(|| "<none>".to_string());
        let refusals = {
            let mut refused = self
                .refused_by
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if refused.insert(peer) {
                tracing::error!(
                    node = self.node_id,
                    peer,
                    our_cluster_id = %ours,
                    their_cluster_id = %theirs,
                    "quorum peer {peer} refused this node: this node has cluster id {ours}, the peer has {theirs}"
                );
            }
            refused.len()
        };
        if refusals >= self.refusals_for_fatal {
            self.fail(QuorumError::ClusterIdMismatch {
                local: ours,
                remote: theirs.to_string(),
            });
        }
    }

    /// Resolves [`Self::fatal`] with `error` (the first error wins).
    pub fn fail(&self, error: QuorumError) {
        self.fatal.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            tracing::error!(node = self.node_id, error = %error, "quorum node failed fatally");
            *slot = Some(error);
            true
        });
    }

    pub fn fatal_error(&self) -> Option<QuorumError> {
        self.fatal.borrow().clone()
    }

    pub async fn fatal(&self) -> QuorumError {
        let mut rx = self.fatal.subscribe();
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(error) => error.clone().unwrap_or(QuorumError::Shutdown),
            // The sender lives as long as `self`, so this cannot happen while we are borrowed.
            Err(_) => QuorumError::Shutdown,
        };
        outcome
    }
}
