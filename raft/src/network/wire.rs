//! The messages exchanged between quorum nodes.

use openraft::error::{Fatal, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::storage::state_machine::StoredSnapshot;
use crate::types::{RaftTypes, Vote};
use crate::{ReplicatedState, RequestHandler};

/// Every request names the sender and its cluster id, so a receiver can refuse foreign nodes.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct RpcRequest<S: ReplicatedState, H: RequestHandler> {
    pub cluster_id: Option<String>,
    pub from: u64,
    pub body: RequestBody<S, H>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum RequestBody<S: ReplicatedState, H: RequestHandler> {
    AppendEntries(AppendEntriesRequest<RaftTypes<S>>),
    Vote(VoteRequest<u64>),
    /// openraft's chunked transfer; this transport sends whole snapshots instead, but answers
    /// it for completeness.
    InstallSnapshot(InstallSnapshotRequest<RaftTypes<S>>),
    FullSnapshot {
        vote: Vote,
        snapshot: StoredSnapshot,
    },
    /// Run a request on the leader's handler. `hop` is set when a voter relays it to the
    /// leader, which must then answer itself instead of relaying again.
    Forward {
        request: H::Request,
        hop: bool,
        timeout_ms: u64,
    },
    /// An observer's long poll: answer with the state once its index exceeds `after_index`,
    /// or without a state after `wait_ms`.
    FetchState {
        after_index: u64,
        wait_ms: u64,
    },
}

/// Every response carries the responder's cluster id, so a node without one can adopt it.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct RpcResponse<S: ReplicatedState, H: RequestHandler> {
    pub cluster_id: Option<String>,
    pub body: ResponseBody<S, H>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum ResponseBody<S: ReplicatedState, H: RequestHandler> {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    FullSnapshot(Result<SnapshotResponse<u64>, Fatal<u64>>),
    Forwarded(H::Reply),
    NotLeader {
        leader: Option<u64>,
    },
    State {
        applied_index: u64,
        leader: Option<u64>,
        state: Option<S>,
    },
    /// The sender's cluster id differs from the responder's (carried in the envelope).
    Refused,
    /// The request cannot be served here (e.g. a Raft RPC sent to an observer).
    Error(String),
}

impl<S: ReplicatedState, H: RequestHandler> ResponseBody<S, H> {
    /// What the response is, for log lines (the payload types need not be `Debug`).
    pub fn describe(&self) -> String {
        match self {
            ResponseBody::AppendEntries(_) => "AppendEntries".into(),
            ResponseBody::Vote(_) => "Vote".into(),
            ResponseBody::InstallSnapshot(_) => "InstallSnapshot".into(),
            ResponseBody::FullSnapshot(_) => "FullSnapshot".into(),
            ResponseBody::Forwarded(_) => "Forwarded".into(),
            ResponseBody::NotLeader { leader } => format!("NotLeader({leader:?})"),
            ResponseBody::State { applied_index, .. } => format!("State({applied_index})"),
            ResponseBody::Refused => "Refused".into(),
            ResponseBody::Error(message) => format!("Error({message})"),
        }
    }
}
