//! The quorum listener: accepts peer connections and answers their requests in order.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::codec;
use super::transport::{BoxedStream, Transport};
use super::wire::RpcRequest;
use crate::quorum::Quorum;
use crate::{ReplicatedState, RequestHandler};

/// How long a peer has to finish the transport's handshake (TLS) after connecting.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown`. Holds the quorum weakly so a forgotten listener
/// task cannot keep it alive.
pub(crate) async fn serve<S: ReplicatedState, H: RequestHandler>(
    listener: TcpListener,
    transport: Option<Arc<dyn Transport>>,
    quorum: Weak<Quorum<S, H>>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(secure_and_serve(
                    stream,
                    peer,
                    transport.clone(),
                    quorum.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a quorum connection failed");
                // Usually out of file descriptors; do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Runs the transport's handshake (refusing peers it refuses), then serves.
async fn secure_and_serve<S: ReplicatedState, H: RequestHandler>(
    stream: TcpStream,
    peer: SocketAddr,
    transport: Option<Arc<dyn Transport>>,
    quorum: Weak<Quorum<S, H>>,
    shutdown: CancellationToken,
) {
    let stream: BoxedStream = match transport {
        None => Box::new(stream),
        Some(transport) => {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, transport.accept(stream, peer));
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = handshake => outcome,
            };
            match outcome {
                Ok(Ok(stream)) => stream,
                Ok(Err(reason)) => {
                    tracing::warn!(%peer, %reason, "refused a quorum connection");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, timeout = ?HANDSHAKE_TIMEOUT,
                        "refused a quorum connection: no handshake in time");
                    return;
                }
            }
        }
    };
    serve_connection(stream, peer, quorum, shutdown).await
}

async fn serve_connection<S: ReplicatedState, H: RequestHandler>(
    stream: BoxedStream,
    peer: SocketAddr,
    quorum: Weak<Quorum<S, H>>,
    shutdown: CancellationToken,
) {
    let mut framed = Framed::new(stream, codec());
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return,
            frame = framed.next() => frame,
        };
        let frame = match frame {
            None => return,
            Some(Ok(frame)) => frame,
            // A TLS peer that went away without close_notify (killed, or dropping a pooled
            // connection) is an ordinary close, as a plain TCP EOF is.
            Some(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!(%peer, error = %e, "quorum connection closed by the peer");
                return;
            }
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing quorum connection: unreadable frame");
                return;
            }
        };
        let request: RpcRequest<S, H> = match serde_json::from_slice(&frame) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing quorum connection: malformed request");
                return;
            }
        };
        let Some(node) = quorum.upgrade() else { return };
        let response = tokio::select! {
            _ = shutdown.cancelled() => return,
            response = node.serve_rpc(request) => response,
        };
        drop(node);
        let bytes = match serde_json::to_vec(&response) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(%peer, error = %e, "encoding a quorum response failed");
                return;
            }
        };
        if let Err(e) = framed.send(bytes::Bytes::from(bytes)).await {
            tracing::debug!(%peer, error = %e, "quorum connection closed while answering");
            return;
        }
    }
}
