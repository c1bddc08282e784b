//! openraft's network traits on top of [`Peers`].

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, Snapshot};

use super::client::{CallError, Peers};
use super::wire::{RequestBody, ResponseBody};
use crate::progress::ProgressTracker;
use crate::storage::state_machine::StoredSnapshot;
use crate::types::{RaftTypes, Vote};
use crate::{ReplicatedState, RequestHandler};

pub(crate) struct Network<S: ReplicatedState, H: RequestHandler> {
    pub peers: Arc<Peers<S, H>>,
    pub progress: Arc<ProgressTracker>,
}

impl<S: ReplicatedState, H: RequestHandler> RaftNetworkFactory<RaftTypes<S>> for Network<S, H> {
    type Network = PeerClient<S, H>;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        PeerClient {
            peers: Arc::clone(&self.peers),
            progress: Arc::clone(&self.progress),
            target,
        }
    }
}

pub(crate) struct PeerClient<S: ReplicatedState, H: RequestHandler> {
    peers: Arc<Peers<S, H>>,
    progress: Arc<ProgressTracker>,
    target: u64,
}

/// Connection failures and refusals back off; anything else is retried as a network error.
fn rpc_error<E: std::error::Error>(error: CallError) -> RPCError<u64, BasicNode, E> {
    match error {
        CallError::UnknownPeer(_) | CallError::Unreachable { .. } | CallError::Refused { .. } => {
            RPCError::Unreachable(Unreachable::new(&error))
        }
        CallError::Network { .. }
        | CallError::Timeout { .. }
        | CallError::ConnectTimeout { .. } => RPCError::Network(NetworkError::new(&error)),
    }
}

fn unexpected<E: std::error::Error, S: ReplicatedState, H: RequestHandler>(
    body: ResponseBody<S, H>,
) -> RPCError<u64, BasicNode, E> {
    let message = match body {
        ResponseBody::Error(message) => message,
        other => format!("unexpected response {}", other.describe()),
    };
    RPCError::Network(NetworkError::new(&std::io::Error::other(message)))
}

impl<S: ReplicatedState, H: RequestHandler> RaftNetwork<RaftTypes<S>> for PeerClient<S, H> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<RaftTypes<S>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let sent_up_to = rpc
            .entries
            .last()
            .map(|entry| entry.log_id.index)
            .or(rpc.prev_log_id.map(|id| id.index));
        let leader_commit = rpc.leader_commit.map(|id| id.index);
        match self
            .peers
            .call(
                self.target,
                RequestBody::AppendEntries(rpc),
                option.hard_ttl(),
            )
            .await
        {
            Ok(ResponseBody::AppendEntries(Ok(response))) => {
                let matched = match &response {
                    AppendEntriesResponse::Success => Some(sent_up_to),
                    AppendEntriesResponse::PartialSuccess(matching) => {
                        Some(matching.map(|id| id.index))
                    }
                    _ => None,
                };
                if let Some(matched) = matched {
                    self.progress
                        .voter_answered(self.target, matched, leader_commit);
                }
                Ok(response)
            }
            Ok(ResponseBody::AppendEntries(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<RaftTypes<S>>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .peers
            .call(
                self.target,
                RequestBody::InstallSnapshot(rpc),
                option.hard_ttl(),
            )
            .await
        {
            Ok(ResponseBody::InstallSnapshot(Ok(response))) => Ok(response),
            Ok(ResponseBody::InstallSnapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .peers
            .call(self.target, RequestBody::Vote(rpc), option.hard_ttl())
            .await
        {
            Ok(ResponseBody::Vote(Ok(response))) => Ok(response),
            Ok(ResponseBody::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(rpc_error(e)),
        }
    }

    /// Sends the whole snapshot in one message: the metadata state is small, so openraft's
    /// chunking would only add round trips.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<RaftTypes<S>>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<RaftTypes<S>, Fatal<u64>>> {
        let data = String::from_utf8(Cursor::into_inner(*snapshot.snapshot))
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let body = RequestBody::FullSnapshot {
            vote,
            snapshot: StoredSnapshot {
                meta: snapshot.meta,
                data,
            },
        };
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = self.peers.call(self.target, body, option.hard_ttl()) => result,
        };
        match result {
            Ok(ResponseBody::FullSnapshot(Ok(response))) => Ok(response),
            Ok(ResponseBody::FullSnapshot(Err(fatal))) => Err(StreamingError::RemoteError(
                RemoteError::new(self.target, fatal),
            )),
            Ok(other) => Err(StreamingError::Network(NetworkError::new(
                &std::io::Error::other(format!("unexpected response {}", other.describe())),
            ))),
            Err(
                e @ (CallError::Network { .. }
                | CallError::Timeout { .. }
                | CallError::ConnectTimeout { .. }),
            ) => Err(StreamingError::Network(NetworkError::new(&e))),
            Err(e) => Err(StreamingError::Unreachable(Unreachable::new(&e))),
        }
    }
}
