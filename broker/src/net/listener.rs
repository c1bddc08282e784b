//! Binding the configured listeners and accepting connections until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use super::connection;
use super::quotas::ConnectionQuotas;
use super::tls::TlsListener;
use crate::broker::Broker;
use crate::config::Listener;
use crate::protocol::{ConnectionContext, ANONYMOUS};

/// A bound listener socket with the listener name it serves and, on SSL and SASL_SSL
/// listeners, its TLS configuration.
pub struct Bound {
    pub name: String,
    pub socket: TcpListener,
    pub tls: Option<Arc<TlsListener>>,
}

/// Binds every address `listener`'s host resolves to (so `localhost` serves both IPv4 and
/// IPv6 clients); fails only if none can be bound.
pub async fn bind(
    listener: &Listener,
    tls: Option<Arc<TlsListener>>,
) -> anyhow::Result<Vec<Bound>> {
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
                tls: tls.clone(),
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
/// shutdown can wait for in-flight requests to finish. Kafka's limits apply: at
/// `max.connections` the loop stops accepting until a connection closes; over
/// `max.connection.creation.rate` (the broker's or the listener's) it holds the new
/// connection, and accepts nothing, for the throttle time; a client over its IP's
/// `connection_creation_rate` has its new connection closed after the throttle time, and
/// one at its `max.connections.per.ip` limit has it closed at once.
pub async fn accept_loop(
    broker: Arc<Broker>,
    bound: Bound,
    tracker: TaskTracker,
    quotas: Arc<ConnectionQuotas>,
) {
    let events = broker.metrics.connection_events().clone();
    let mut shutdown = broker.shutdown_signal();
    loop {
        // The place is taken before accepting: over the limit, clients wait in the
        // listen backlog rather than being accepted and dropped.
        let permit = tokio::select! {
            permit = quotas.acquire(&bound.name, &events) => permit,
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            accepted = bound.socket.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let now = broker.client_quotas.now_ms();
                let hold = quotas.creation_throttle(&bound.name, now);
                if !hold.is_zero() {
                    tracing::debug!(%peer, listener = %bound.name, throttle_ms = hold.as_millis() as u64,
                        "max.connection.creation.rate exceeded: holding the new connection");
                    let held = Instant::now();
                    tokio::select! {
                        () = tokio::time::sleep(hold) => {}
                        _ = shutdown.changed() => break,
                    }
                    events.acceptor_blocked(&bound.name, held.elapsed());
                }
                let quotas = broker.metadata.image().client_quotas.clone();
                let now = broker.client_quotas.now_ms();
                if let Err(throttle) =
                    broker
                        .client_quotas
                        .connection_creation
                        .admit(&quotas, peer.ip(), now)
                {
                    // Kafka's behaviour over `connection_creation_rate`: not counted, not
                    // served, and closed once the throttle time has passed.
                    tracing::debug!(
                        %peer,
                        listener = %bound.name,
                        throttle_ms = throttle.as_millis() as u64,
                        "connection_creation_rate exceeded: closing after the throttle time"
                    );
                    events.closed_by_broker(&bound.name, "ip_connection_rate");
                    drop(permit);
                    tokio::spawn(async move {
                        tokio::time::sleep(throttle).await;
                        drop(stream);
                    });
                    continue;
                }
                match permit.admit(peer.ip()) {
                    Ok(slot) => {
                        let ctx = ConnectionContext {
                            listener: bound.name.clone(),
                            peer,
                            principal: ANONYMOUS.to_string(),
                        };
                        tracker.spawn(connection::serve(
                            broker.clone(),
                            stream,
                            ctx,
                            slot,
                            bound.tls.clone(),
                        ));
                    }
                    Err(refused) => {
                        // Kafka's behaviour: accepted, then closed straight away.
                        tracing::debug!(%peer, listener = %bound.name, "rejected connection: {refused}");
                        events.closed_by_broker(&bound.name, "per_ip_limit");
                        drop(stream);
                    }
                }
            }
            Err(e) => {
                // Usually EMFILE; back off briefly instead of spinning.
                tracing::error!(error = %e, "accept failed");
                drop(permit);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
