//! Errors the quorum reports to its embedder.

use std::sync::Arc;

/// Everything [`crate::Quorum`] can fail with. `Clone` so one fatal error can be handed to
/// every caller of [`crate::Quorum::fatal`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum QuorumError {
    #[error("not the quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("timed out waiting for the quorum")]
    Timeout,
    #[error("cluster id mismatch: this node has cluster id {local}, the quorum has {remote}")]
    ClusterIdMismatch { local: String, remote: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("storage: {0}")]
    Storage(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("invalid quorum config: {0}")]
    Config(String),
    #[error("peer error: {0}")]
    Remote(String),
    #[error("quorum is shut down")]
    Shutdown,
}

impl QuorumError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        QuorumError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}
