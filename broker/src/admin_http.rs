//! The admin HTTP endpoint (`admin.listener`): Prometheus `/metrics`, liveness `/health`,
//! readiness `/ready` for Kubernetes probes (serving, unfenced, serving every partition
//! placed on it and back in the ISR of what it follows), and `/restart-safe` for rolling restarts (whether stopping this broker now
//! would leave a partition leaderless or below `min.insync.replicas`). The decisions are
//! in `cluster_health`; this module gathers the broker's state and answers over HTTP.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::cluster_health::{self, UnsafePartition};
use crate::metrics::{LedReplica, LocalReplica, ReplicationSnapshot};

/// How many reasons `/restart-safe` lists; the count of unsafe partitions is always given.
const RESTART_REASONS_LISTED: usize = 10;

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/restart-safe", get(restart_safe))
        .with_state(broker)
}

async fn metrics(State(broker): State<Arc<Broker>>) -> (StatusCode, String) {
    // Rendering walks every partition (and takes the log manager's partition map): off
    // the async workers, so a scrape during a large creation never stalls /health,
    // Metadata or heartbeats.
    let rendered = tokio::task::spawn_blocking(move || {
        broker
            .metrics
            .record_replication(&replication_snapshot(&broker));
        broker.client_quotas.refresh_metrics();
        broker.metrics.render(&broker.logs, &broker.groups)
    })
    .await;
    match rendered {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering metrics failed: {e}\n"),
        ),
    }
}

/// The replication state the metrics report, read from the local replicas' roles and the
/// metadata image.
fn replication_snapshot(broker: &Broker) -> ReplicationSnapshot {
    let replicas = broker
        .logs
        .all()
        .iter()
        .map(|p| {
            // Lock order as everywhere: role, then log.
            let role = p.replica.lock();
            let led = role.leader().map(|s| LedReplica {
                replication_factor: s.replicas.iter().filter(|r| !s.adding.contains(r)).count(),
                isr: s.isr.len(),
                min_insync_replicas: p.log.lock().config().min_insync_replicas,
                follower_lags: s.lags(p.log_end_offset()),
            });
            LocalReplica {
                topic: p.id.topic.clone(),
                partition: p.id.partition,
                led,
            }
        })
        .collect();
    let active_controller = broker.metadata.is_active_controller();
    let (offline_partitions, active_brokers, fenced_brokers) = if active_controller {
        let image = broker.metadata.image();
        let fenced = image.brokers.values().filter(|b| b.fenced).count();
        (
            image.partitions().filter(|(_, p)| p.is_offline()).count(),
            image.brokers.len() - fenced,
            fenced,
        )
    } else {
        (0, 0, 0)
    };
    ReplicationSnapshot {
        replicas,
        isr_shrinks: broker
            .replicas
            .isr_shrinks
            .load(std::sync::atomic::Ordering::Relaxed),
        isr_expands: broker
            .replicas
            .isr_expands
            .load(std::sync::atomic::Ordering::Relaxed),
        active_controller,
        offline_partitions,
        active_brokers,
        fenced_brokers,
    }
}

async fn ready(State(broker): State<Arc<Broker>>) -> (StatusCode, String) {
    let image = broker.metadata.image();
    let verdict = cluster_health::readiness(
        broker.is_ready(),
        broker.membership.state(),
        &image,
        broker.node_id(),
    );
    // A broker that cannot serve the partitions of a failed log directory is not ready,
    // though it stays up and serves the rest. That is named before the other reasons (the
    // replicas of the failed directory also fall out of their ISRs), unless the broker is
    // not serving at all.
    let offline: Vec<String> = broker
        .logs
        .log_dirs()
        .iter()
        .filter(|d| d.is_offline())
        .map(|d| d.path.display().to_string())
        .collect();
    let verdict = match verdict {
        Err(cluster_health::NotReady::NotServing) => Err(cluster_health::NotReady::NotServing),
        _ if !offline.is_empty() => Err(cluster_health::NotReady::LogDirsOffline { dirs: offline }),
        other => other,
    };
    // Every partition placed here must be served: a large CreateTopics answers before
    // the logs exist, and until they do this broker cannot take their traffic.
    let verdict = verdict.and_then(|()| {
        let (served, missing_logs) = broker.replicas.served();
        cluster_health::unserved_partitions(
            &image,
            served.as_deref(),
            broker.node_id(),
            missing_logs,
        )
    });
    // Groups of the offsets partitions it leads must be loaded too, or the first group
    // request after a restart would be sent away.
    let verdict = verdict.and_then(|()| {
        if broker
            .groups
            .serves_led_partitions(&image, broker.node_id())
        {
            Ok(())
        } else {
            Err(cluster_health::NotReady::LoadingGroups)
        }
    });
    match verdict {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn restart_safe(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    let image = broker.metadata.image();
    let defaults = crate::config::dynamic::topic_defaults(&broker.config, &image, broker.node_id());
    let risks = cluster_health::restart_risks(&image, broker.node_id(), &defaults);
    let (status, body) = restart_safety_answer(broker.node_id(), &risks);
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

/// The `/restart-safe` body, fields in this order.
#[derive(Serialize)]
struct RestartSafety {
    safe: bool,
    broker: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsafe_partitions: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
}

/// `{"safe":true,"broker":N}` with 200, or 503 with the count of unsafe partitions and
/// the first few reasons.
fn restart_safety_answer(broker: i32, risks: &[UnsafePartition]) -> (StatusCode, String) {
    let safe = risks.is_empty();
    let answer = RestartSafety {
        safe,
        broker,
        unsafe_partitions: (!safe).then_some(risks.len()),
        reasons: risks
            .iter()
            .take(RESTART_REASONS_LISTED)
            .map(ToString::to_string)
            .collect(),
    };
    let status = if safe {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Serialising bools, numbers and strings cannot fail; the fallback keeps the verdict.
    let body = serde_json::to_string(&answer)
        .unwrap_or_else(|_| format!(r#"{{"safe":{safe},"broker":{broker}}}"#));
    (status, body)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_health::RestartRisk;

    #[test]
    fn restart_safety_answers_in_json_with_capped_reasons() {
        let (status, body) = restart_safety_answer(3, &[]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"safe":true,"broker":3}"#);

        let risks: Vec<UnsafePartition> = (0..12)
            .map(|partition| UnsafePartition {
                topic: "t".into(),
                partition,
                risk: RestartRisk::BelowMinIsr {
                    isr: vec![3, 1],
                    remaining: 1,
                    min_isr: 2,
                },
            })
            .collect();
        let (status, body) = restart_safety_answer(3, &risks);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["safe"], false);
        assert_eq!(v["broker"], 3);
        assert_eq!(v["unsafe_partitions"], 12);
        let reasons = v["reasons"].as_array().unwrap();
        assert_eq!(reasons.len(), RESTART_REASONS_LISTED);
        assert_eq!(
            reasons[0],
            "t-0: ISR [3, 1] would drop to 1, below min.insync.replicas 2"
        );
    }
}
