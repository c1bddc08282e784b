//! The operator pod's own HTTP endpoint: Prometheus scrapes and kubelet probes.
//!
//! Liveness and readiness are deliberately different: `/healthz` answers as long as the process
//! serves HTTP (a standby replica waiting for the leader lease is healthy and must not be
//! restarted), while `/readyz` reflects `HttpState::ready`, which `main` sets once the
//! controllers are running.

use crate::metrics::Metrics;
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    /// Rendered on `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// `GET /readyz` answers 200 while this is true, 503 otherwise.
    pub ready: Arc<AtomicBool>,
}

/// Routes `GET /metrics`, `GET /healthz` and `GET /readyz`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then stops accepting connections
/// and waits for in-flight requests to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        state.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
        sync::oneshot,
        task::JoinHandle,
    };

    /// Response of [`get`]: status code, raw header block, body.
    struct Reply {
        status: u16,
        headers: String,
        body: String,
    }

    /// One HTTP/1.1 GET over a fresh TCP connection, the way a kubelet probe or scraper does it.
    async fn get(addr: SocketAddr, path: &str) -> Reply {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut raw = String::new();
        stream
            .read_to_string(&mut raw)
            .await
            .expect("read response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status code");
        Reply {
            status,
            headers: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    async fn start(
        state: HttpState,
    ) -> (
        SocketAddr,
        oneshot::Sender<()>,
        JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    fn state() -> HttpState {
        HttpState {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    #[tokio::test]
    async fn healthz_and_metrics() {
        let state = state();
        drop(state.metrics.reconcile("kafkacluster"));
        let (addr, stop, server) = start(state).await;

        let health = get(addr, "/healthz").await;
        assert_eq!((health.status, health.body.as_str()), (200, "ok"));

        let metrics = get(addr, "/metrics").await;
        assert_eq!(metrics.status, 200);
        assert!(
            metrics
                .headers
                .contains("content-type: text/plain; version=0.0.4"),
            "{}",
            metrics.headers
        );
        assert!(
            metrics
                .body
                .contains(r#"strom_operator_reconciliations_total{controller="kafkacluster"} 1"#),
            "{}",
            metrics.body
        );

        assert_eq!(get(addr, "/nope").await.status, 404);

        stop.send(()).expect("server still running");
        server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn readyz_follows_the_flag() {
        let state = state();
        let (addr, stop, server) = start(state.clone()).await;

        let before = get(addr, "/readyz").await;
        assert_eq!((before.status, before.body.as_str()), (503, "not ready"));

        state.ready.store(true, Ordering::Release);
        let after = get(addr, "/readyz").await;
        assert_eq!((after.status, after.body.as_str()), (200, "ready"));

        stop.send(()).expect("server still running");
        server.await.expect("join").expect("serve");
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }
}
