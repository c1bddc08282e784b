//! A reusable Raft metadata quorum (openraft 0.9) over a replicated state the embedding
//! application defines; see README.md.

mod applied;
mod cluster;
mod config;
mod error;
mod network;
mod observer;
mod progress;
mod quorum;
mod storage;
mod types;

use std::fmt::Debug;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use config::QuorumConfig;
pub use error::QuorumError;
pub use network::transport::{BoxedFuture, BoxedStream, PeerStream, Transport};
pub use progress::{NodeProgress, QuorumDescription};
pub use quorum::Quorum;

/// The state the replicated log adds up to (the broker's metadata image).
///
/// The whole value is serialized for snapshots and for observers, so it should stay small
/// (metadata, not data).
pub trait ReplicatedState:
    Default + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// One log entry's payload (the broker uses `Vec<MetadataRecord>`).
    type Command: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Applies one committed command. Must be deterministic: every node applies the same
    /// commands in the same order and must reach the same state.
    fn apply(&mut self, command: &Self::Command);
}

/// Requests that only the leader may decide (the broker's controller).
///
/// [`Quorum::request`] ships a request to whichever node currently leads and calls
/// `handle` there, so `handle` only ever runs on the leader (it usually ends in
/// [`Quorum::propose`]).
pub trait RequestHandler: Send + Sync + 'static {
    type Request: Clone + Debug + Serialize + DeserializeOwned + Send + 'static;
    type Reply: Debug + Serialize + DeserializeOwned + Send + 'static;

    fn handle(&self, request: Self::Request) -> impl Future<Output = Self::Reply> + Send;
}
