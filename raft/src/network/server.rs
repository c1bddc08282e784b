//! The quorum listener: accepts peer connections and answers their requests in order.

use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::codec;
use super::wire::RpcRequest;
use crate::quorum::Quorum;
use crate::{ReplicatedState, RequestHandler};

/// Accepts connections until `shutdown`. Holds the quorum weakly so a forgotten listener
/// task cannot keep it alive.
pub(crate) async fn serve<S: ReplicatedState, H: RequestHandler>(
    listener: TcpListener,
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
                tokio::spawn(serve_connection(
                    stream,
                    peer,
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

async fn serve_connection<S: ReplicatedState, H: RequestHandler>(
    stream: TcpStream,
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
