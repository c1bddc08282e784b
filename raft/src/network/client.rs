//! Calls to other quorum nodes over pooled TCP connections.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::codec;
use super::wire::{RequestBody, ResponseBody, RpcRequest, RpcResponse};
use crate::cluster::ClusterIdentity;
use crate::{ReplicatedState, RequestHandler};

/// Idle connections kept per peer; more concurrent calls open extra ones that are dropped.
const IDLE_PER_PEER: usize = 4;

type Connection = Framed<TcpStream, LengthDelimitedCodec>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("no address known for node {0}")]
    UnknownPeer(u64),
    #[error("cannot connect to node {peer} at {addr}: {reason}")]
    Unreachable {
        peer: u64,
        addr: String,
        reason: String,
    },
    #[error("connection to node {peer} failed: {reason}")]
    Network { peer: u64, reason: String },
    #[error("node {peer} did not answer within {timeout:?}")]
    Timeout { peer: u64, timeout: Duration },
    #[error("node {peer} refused this node's cluster id (it has {theirs})")]
    Refused { peer: u64, theirs: String },
}

/// Pooled clients for every voter's quorum listener.
pub(crate) struct Peers<S: ReplicatedState, H: RequestHandler> {
    node_id: u64,
    addrs: BTreeMap<u64, String>,
    idle: Mutex<HashMap<u64, Vec<Connection>>>,
    cluster: Arc<ClusterIdentity>,
    _types: std::marker::PhantomData<fn() -> (S, H)>,
}

impl<S: ReplicatedState, H: RequestHandler> Peers<S, H> {
    pub fn new(node_id: u64, addrs: BTreeMap<u64, String>, cluster: Arc<ClusterIdentity>) -> Self {
        Peers {
            node_id,
            addrs,
            idle: Mutex::new(HashMap::new()),
            cluster,
            _types: std::marker::PhantomData,
        }
    }

    /// Sends `body` to `peer` and waits at most `timeout` for its answer. A response that
    /// refuses our cluster id is reported to the cluster identity and returned as an error.
    pub async fn call(
        &self,
        peer: u64,
        body: RequestBody<S, H>,
        timeout: Duration,
    ) -> Result<ResponseBody<S, H>, CallError> {
        // Encoded before any await: `H::Request` need not be `Sync`.
        let request = RpcRequest {
            cluster_id: self.cluster.get(),
            from: self.node_id,
            body,
        };
        let payload = serde_json::to_vec(&request).map_err(|e| CallError::Network {
            peer,
            reason: format!("encoding request: {e}"),
        })?;
        drop(request);
        let response = tokio::time::timeout(timeout, self.round_trip(peer, payload))
            .await
            .map_err(|_| CallError::Timeout { peer, timeout })??;
        match response.body {
            ResponseBody::Refused => {
                let theirs = response.cluster_id.unwrap_or_else(|| "<none>".to_string());
                self.cluster.refused_by(peer, &theirs);
                Err(CallError::Refused { peer, theirs })
            }
            body => {
                self.cluster.adopt(response.cluster_id.as_deref(), peer);
                Ok(body)
            }
        }
    }

    async fn round_trip(
        &self,
        peer: u64,
        payload: Vec<u8>,
    ) -> Result<RpcResponse<S, H>, CallError> {
        let network = |reason: String| CallError::Network { peer, reason };
        let mut connection = match self.take_idle(peer) {
            Some(connection) => connection,
            None => self.connect(peer).await?,
        };
        connection
            .send(bytes::Bytes::from(payload))
            .await
            .map_err(|e| network(e.to_string()))?;
        let frame = match connection.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(network(e.to_string())),
            None => return Err(network("connection closed by peer".to_string())),
        };
        let response = serde_json::from_slice(&frame)
            .map_err(|e| network(format!("malformed response: {e}")))?;
        self.put_idle(peer, connection);
        Ok(response)
    }

    async fn connect(&self, peer: u64) -> Result<Connection, CallError> {
        let addr = self.addrs.get(&peer).ok_or(CallError::UnknownPeer(peer))?;
        let stream =
            TcpStream::connect(addr.as_str())
                .await
                .map_err(|e| CallError::Unreachable {
                    peer,
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        // Raft messages are small and latency-bound.
        let _ = stream.set_nodelay(true);
        Ok(Framed::new(stream, codec()))
    }

    fn take_idle(&self, peer: u64) -> Option<Connection> {
        self.idle.lock().ok()?.get_mut(&peer)?.pop()
    }

    fn put_idle(&self, peer: u64, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            let pool = idle.entry(peer).or_default();
            if pool.len() < IDLE_PER_PEER {
                pool.push(connection);
            }
        }
    }

    /// Drops every pooled connection (on shutdown).
    pub fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}
