//! The admin HTTP endpoint (`admin.listener`): Prometheus `/metrics`, liveness `/health`
//! and readiness `/ready` for Kubernetes probes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::broker::Broker;

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .with_state(broker)
}

async fn metrics(State(broker): State<Arc<Broker>>) -> String {
    broker.metrics.render(&broker.logs, &broker.groups)
}

async fn ready(State(broker): State<Arc<Broker>>) -> (StatusCode, &'static str) {
    if broker.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Serves until the broker's shutdown signal.
pub async fn serve(broker: Arc<Broker>, socket: TcpListener) {
    let mut shutdown = broker.shutdown_signal();
    let app = router(broker);
    let result = axum::serve(socket, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin HTTP server failed");
    }
}
