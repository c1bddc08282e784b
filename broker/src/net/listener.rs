//! Binding the configured listeners and accepting connections until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use super::connection;
use crate::broker::Broker;
use crate::config::Listener;
use crate::protocol::ConnectionContext;

/// A bound listener socket with the listener name it serves.
pub struct Bound {
    pub name: String,
    pub socket: TcpListener,
}

/// Binds every address `listener`'s host resolves to (so `localhost` serves both IPv4 and
/// IPv6 clients); fails only if none can be bound.
pub async fn bind(listener: &Listener) -> anyhow::Result<Vec<Bound>> {
    let target = format!("{}:{}", listener.bind_host(), listener.port);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&target)
        .await
        .with_context(|| format!("cannot resolve listener address {target}"))?
        .collect();
    let mut bound = Vec::new();
    let mut last_error = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(socket) => bound.push(Bound {
                name: listener.name.clone(),
                socket,
            }),
            Err(e) => last_error = Some(format!("{addr}: {e}")),
        }
    }
    if bound.is_empty() {
        bail!(
            "cannot bind listener {} on {target}: {}",
            listener.name,
            last_error.unwrap_or_else(|| "no address".into())
        );
    }
    Ok(bound)
}

/// Accepts connections until the broker's shutdown signal, spawning each on `tracker` so
/// shutdown can wait for in-flight requests to finish.
pub async fn accept_loop(broker: Arc<Broker>, bound: Bound, tracker: TaskTracker) {
    let mut shutdown = broker.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            accepted = bound.socket.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ctx = ConnectionContext {
                    listener: bound.name.clone(),
                    peer,
                };
                tracker.spawn(connection::serve(broker.clone(), stream, ctx));
            }
            Err(e) => {
                // Usually EMFILE; back off briefly instead of spinning.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
