//! Calls to other quorum nodes over pooled TCP connections.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::codec;
use super::transport::{host_of, BoxedStream, Transport};
use super::wire::{RequestBody, ResponseBody, RpcRequest, RpcResponse};
use crate::cluster::ClusterIdentity;
use crate::{ReplicatedState, RequestHandler};

/// Idle connections kept per peer; more concurrent calls open extra ones that are dropped.
const IDLE_PER_PEER: usize = 4;

type Connection = Framed<BoxedStream, LengthDelimitedCodec>;

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
    /// Connected (or reusing a pooled connection), request sent, no answer in time.
    #[error("node {peer} did not answer within {timeout:?} on a {} connection", if *.pooled { "pooled" } else { "new" })]
    Timeout {
        peer: u64,
        timeout: Duration,
        pooled: bool,
    },
    /// The connection was never made: told apart from [`CallError::Timeout`] because a
    /// stale or unreachable address and a stuck peer need different fixes.
    #[error("connecting to node {peer} at {addr} did not finish within {timeout:?}: {stage}")]
    ConnectTimeout {
        peer: u64,
        addr: String,
        stage: ConnectStage,
        timeout: Duration,
    },
    #[error("node {peer} refused this node's cluster id (it has {theirs})")]
    Refused { peer: u64, theirs: String },
}

/// Where a connection attempt was when its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectStage {
    Resolving,
    /// The TCP handshake with this resolved address.
    Connecting(SocketAddr),
    /// The transport's handshake (TLS) over the connection to this address.
    Securing(SocketAddr),
}

impl std::fmt::Display for ConnectStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectStage::Resolving => f.write_str("still resolving the name"),
            ConnectStage::Connecting(ip) => write!(f, "no TCP handshake with {ip}"),
            ConnectStage::Securing(ip) => write!(f, "no TLS handshake with {ip}"),
        }
    }
}

/// Pooled clients for every voter's quorum listener.
pub(crate) struct Peers<S: ReplicatedState, H: RequestHandler> {
    node_id: u64,
    addrs: BTreeMap<u64, String>,
    idle: Mutex<HashMap<u64, Vec<Connection>>>,
    cluster: Arc<ClusterIdentity>,
    /// TLS and the like around each new connection; `None` is plain TCP.
    transport: Option<Arc<dyn Transport>>,
    _types: std::marker::PhantomData<fn() -> (S, H)>,
}

impl<S: ReplicatedState, H: RequestHandler> Peers<S, H> {
    pub fn new(
        node_id: u64,
        addrs: BTreeMap<u64, String>,
        cluster: Arc<ClusterIdentity>,
        transport: Option<Arc<dyn Transport>>,
    ) -> Self {
        Peers {
            node_id,
            addrs,
            idle: Mutex::new(HashMap::new()),
            cluster,
            transport,
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
        let deadline = Instant::now() + timeout;
        let response = self.round_trip(peer, payload, deadline, timeout).await?;
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

    /// `timeout` is only for the error; `deadline` bounds connecting and answering together.
    async fn round_trip(
        &self,
        peer: u64,
        payload: Vec<u8>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<RpcResponse<S, H>, CallError> {
        let network = |reason: String| CallError::Network { peer, reason };
        let (mut connection, pooled) = match self.take_idle(peer) {
            Some(connection) => (connection, true),
            None => (self.connect(peer, deadline, timeout).await?, false),
        };
        let exchange = async {
            connection
                .send(bytes::Bytes::from(payload))
                .await
                .map_err(|e| network(e.to_string()))?;
            match connection.next().await {
                Some(Ok(frame)) => Ok(frame),
                Some(Err(e)) => Err(network(e.to_string())),
                None => Err(network("connection closed by peer".to_string())),
            }
        };
        let frame = timeout_at(deadline, exchange)
            .await
            .map_err(|_| CallError::Timeout {
                peer,
                timeout,
                pooled,
            })??;
        let response = serde_json::from_slice(&frame)
            .map_err(|e| network(format!("malformed response: {e}")))?;
        self.put_idle(peer, connection);
        Ok(response)
    }

    /// Resolves the peer's address anew each time (a restarted peer may have a new IP)
    /// and connects to the first resolved address that accepts.
    async fn connect(
        &self,
        peer: u64,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Connection, CallError> {
        let addr = self.addrs.get(&peer).ok_or(CallError::UnknownPeer(peer))?;
        let unreachable = |reason: String| CallError::Unreachable {
            peer,
            addr: addr.clone(),
            reason,
        };
        let timed_out = |stage| CallError::ConnectTimeout {
            peer,
            addr: addr.clone(),
            stage,
            timeout,
        };
        let resolved: Vec<SocketAddr> =
            match timeout_at(deadline, tokio::net::lookup_host(addr.as_str())).await {
                Err(_) => return Err(timed_out(ConnectStage::Resolving)),
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Ok(Ok(found)) => found.collect(),
            };
        let mut last_error = "the name resolves to no address".to_string();
        for ip in resolved {
            match timeout_at(deadline, TcpStream::connect(ip)).await {
                Err(_) => return Err(timed_out(ConnectStage::Connecting(ip))),
                Ok(Err(e)) => last_error = format!("{ip}: {e}"),
                Ok(Ok(stream)) => {
                    // Raft messages are small and latency-bound.
                    let _ = stream.set_nodelay(true);
                    let stream: BoxedStream = match &self.transport {
                        None => Box::new(stream),
                        Some(transport) => {
                            match timeout_at(deadline, transport.connect(stream, host_of(addr)))
                                .await
                            {
                                Err(_) => return Err(timed_out(ConnectStage::Securing(ip))),
                                Ok(Err(e)) => return Err(unreachable(format!("{ip}: {e}"))),
                                Ok(Ok(secured)) => secured,
                            }
                        }
                    };
                    return Ok(Framed::new(stream, codec()));
                }
            }
        }
        Err(unreachable(last_error))
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

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct Nothing;

    impl ReplicatedState for Nothing {
        type Command = ();
        fn apply(&mut self, _: &()) {}
    }

    struct NoHandler;

    impl RequestHandler for NoHandler {
        type Request = ();
        type Reply = ();
        async fn handle(&self, _: ()) {}
    }

    const TIMEOUT: Duration = Duration::from_millis(200);

    fn peers(dir: &std::path::Path, addr: SocketAddr) -> Peers<Nothing, NoHandler> {
        let cluster = Arc::new(ClusterIdentity::load(0, dir, None, 1).unwrap());
        Peers::new(0, BTreeMap::from([(1, addr.to_string())]), cluster, None)
    }

    async fn fetch(peers: &Peers<Nothing, NoHandler>) -> CallError {
        let body = RequestBody::FetchState {
            after_index: 0,
            wait_ms: 0,
        };
        match peers.call(1, body, TIMEOUT).await {
            Ok(_) => panic!("the peer answered"),
            Err(e) => e,
        }
    }

    /// A peer whose listener accepts but never answers: a timeout on a new connection,
    /// so "did not answer" really means the TCP connection was made.
    #[tokio::test]
    async fn a_silent_peer_is_a_timeout_on_a_made_connection() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let error = fetch(&peers(dir.path(), addr)).await;
        assert!(
            matches!(
                error,
                CallError::Timeout {
                    peer: 1,
                    pooled: false,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("did not answer"), "{error}");
        drop(held);
    }

    /// A peer address where the TCP handshake never completes (its accept queue is full,
    /// so the kernel drops the SYN, as for an address nobody holds any more) is reported
    /// as a connect timeout naming the address, not as a peer that did not answer.
    #[tokio::test]
    async fn a_handshake_that_never_completes_is_a_connect_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        // Backlog 0: one unaccepted connection fills the queue.
        let listener = socket.listen(0).unwrap();
        let _filler = TcpStream::connect(addr).await.unwrap();
        let error = fetch(&peers(dir.path(), addr)).await;
        assert!(
            matches!(
                error,
                CallError::ConnectTimeout { peer: 1, stage: ConnectStage::Connecting(ip), .. } if ip == addr
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
        drop(listener);
    }
}
