//! One client connection. Requests are handled one at a time in arrival order, as Kafka's
//! brokers do, so responses leave in order; a separate writer task lets the next request
//! be read and handled while the previous response is still being sent.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::frame::{read_frame, FrameError};
use crate::broker::Broker;
use crate::protocol::{self, ConnectionContext, Reply};

/// Responses queued for the writer before reading pauses (Kafka clients pipeline up to
/// five in-flight requests; a few more absorbs bursts).
const WRITE_QUEUE: usize = 16;

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, ctx: ConnectionContext) {
    let _ = stream.set_nodelay(true);
    broker.metrics.connection_opened(&ctx.listener);
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let peer = ctx.peer;
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if let Err(e) = write_half.write_all(&frame).await {
                tracing::debug!(%peer, error = %e, "client went away while we were writing");
                return;
            }
        }
        let _ = write_half.shutdown().await;
    });

    let mut shutdown = broker.shutdown_signal();
    let max = broker.config.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, max) => frame,
            _ = shutdown.changed() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "connection read failed");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        match protocol::handle_frame(&broker, &ctx, frame).await {
            Reply::Frame(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break;
                }
            }
            Reply::Nothing => {}
            Reply::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
    drop(tx);
    // Let queued responses go out before the socket closes.
    let _ = writer.await;
    broker.metrics.connection_closed(&ctx.listener);
}
