//! Prometheus metrics of the operator, labelled per controller.
//!
//! Each `Metrics` owns its own [`Registry`] rather than using the process-global default one, so
//! tests can create as many as they like and nothing a dependency registers leaks into our
//! `/metrics` output.

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramTimer, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Reconcile durations of interest run from a cache hit (~10 ms) to a slow rolling restart step
/// that waits on the API server (seconds); anything slower than 10 s lands in `+Inf`.
const RECONCILE_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The operator's Prometheus metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    reconciliations: IntCounterVec,
    reconcile_errors: IntCounterVec,
    reconcile_duration: HistogramVec,
    leader: IntGauge,
    broker_restarts: IntCounterVec,
    dynamic_updates: IntCounterVec,
    roll_blocked: CounterVec,
    moves_started: IntCounterVec,
    moves_completed: IntCounterVec,
    leader_elections: IntCounterVec,
    scale_in_progress: IntGaugeVec,
}

/// Times one reconcile; the duration is recorded in
/// `strom_operator_reconcile_duration_seconds` when the guard is dropped, so every exit path of a
/// reconcile — including `?` and panics unwinding through it — is measured.
#[must_use = "the reconcile is timed until this guard is dropped"]
#[derive(Debug)]
pub struct ReconcileTimer {
    _timer: HistogramTimer,
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Self {
        let reconciliations = IntCounterVec::new(
            Opts::new(
                "strom_operator_reconciliations_total",
                "Reconciliations started, per controller",
            ),
            &["controller"],
        )
        .expect("static metric definition is valid");
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "strom_operator_reconcile_errors_total",
                "Reconciliations that failed, per controller and reason",
            ),
            &["controller", "reason"],
        )
        .expect("static metric definition is valid");
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "strom_operator_reconcile_duration_seconds",
                "Duration of reconciliations, per controller",
            )
            .buckets(RECONCILE_BUCKETS.to_vec()),
            &["controller"],
        )
        .expect("static metric definition is valid");
        let leader = IntGauge::new(
            "strom_operator_leader",
            "1 while this replica holds the leader lease and reconciles, else 0",
        )
        .expect("static metric definition is valid");

        let broker_restarts = IntCounterVec::new(
            Opts::new(
                "strom_operator_broker_restarts_total",
                "Broker pods the roller restarted, per cluster (namespace/name) and reason \
                 (config, image, manual, stuck)",
            ),
            &["cluster", "reason"],
        )
        .expect("static metric definition is valid");
        let dynamic_updates = IntCounterVec::new(
            Opts::new(
                "strom_operator_dynamic_config_updates_total",
                "Brokers updated in place with IncrementalAlterConfigs instead of a restart",
            ),
            &["cluster"],
        )
        .expect("static metric definition is valid");
        let roll_blocked = CounterVec::new(
            Opts::new(
                "strom_operator_roll_blocked_seconds_total",
                "Time rolling restarts spent waiting because a restart was not safe",
            ),
            &["cluster"],
        )
        .expect("static metric definition is valid");

        let moves_started = IntCounterVec::new(
            Opts::new(
                "strom_operator_partition_moves_started_total",
                "Partition reassignments the scale step started, per cluster (namespace/name)",
            ),
            &["cluster"],
        )
        .expect("static metric definition is valid");
        let moves_completed = IntCounterVec::new(
            Opts::new(
                "strom_operator_partition_moves_completed_total",
                "Partition reassignments seen finished during a scale, per cluster",
            ),
            &["cluster"],
        )
        .expect("static metric definition is valid");
        let leader_elections = IntCounterVec::new(
            Opts::new(
                "strom_operator_leader_elections_total",
                "Preferred leader elections (ElectLeaders calls) the scale step made, per \
                 cluster and result (ok, failed)",
            ),
            &["cluster", "result"],
        )
        .expect("static metric definition is valid");
        let scale_in_progress = IntGaugeVec::new(
            Opts::new(
                "strom_operator_scale_in_progress",
                "1 while a cluster's scale is under way (status.scaling is set), else 0",
            ),
            &["cluster"],
        )
        .expect("static metric definition is valid");

        let registry = Registry::new();
        for collector in [
            Box::new(reconciliations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(leader.clone()),
            Box::new(broker_restarts.clone()),
            Box::new(dynamic_updates.clone()),
            Box::new(roll_blocked.clone()),
            Box::new(moves_started.clone()),
            Box::new(moves_completed.clone()),
            Box::new(leader_elections.clone()),
            Box::new(scale_in_progress.clone()),
        ] {
            // Only fails on duplicate names, which the distinct names above rule out.
            registry
                .register(collector)
                .expect("metric names are distinct");
        }

        Self {
            registry,
            reconciliations,
            reconcile_errors,
            reconcile_duration,
            leader,
            broker_restarts,
            dynamic_updates,
            roll_blocked,
            moves_started,
            moves_completed,
            leader_elections,
            scale_in_progress,
        }
    }

    /// Counts the partition moves of one batch the scale step started.
    pub fn partition_moves_started(&self, cluster: &str, moves: usize) {
        self.moves_started
            .with_label_values(&[cluster])
            .inc_by(u64::try_from(moves).unwrap_or(u64::MAX));
    }

    /// Counts partition moves seen finished since the last look.
    pub fn partition_moves_completed(&self, cluster: &str, moves: usize) {
        self.moves_completed
            .with_label_values(&[cluster])
            .inc_by(u64::try_from(moves).unwrap_or(u64::MAX));
    }

    /// Counts one ElectLeaders call of the scale step; `ok` is its result.
    pub fn leader_election(&self, cluster: &str, ok: bool) {
        self.leader_elections
            .with_label_values(&[cluster, if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// Records whether `cluster` is scaling.
    pub fn set_scale_in_progress(&self, cluster: &str, scaling: bool) {
        self.scale_in_progress
            .with_label_values(&[cluster])
            .set(i64::from(scaling));
    }

    /// Counts one broker restart of `cluster` (`namespace/name`); `reason` is a fixed label.
    pub fn broker_restart(&self, cluster: &str, reason: &str) {
        self.broker_restarts
            .with_label_values(&[cluster, reason])
            .inc();
    }

    /// Counts one broker updated in place.
    pub fn dynamic_update(&self, cluster: &str) {
        self.dynamic_updates.with_label_values(&[cluster]).inc();
    }

    /// Adds the seconds a roll has been blocked since its last blocked check.
    pub fn roll_blocked(&self, cluster: &str, seconds: f64) {
        self.roll_blocked
            .with_label_values(&[cluster])
            .inc_by(seconds.max(0.0));
    }

    /// Counts one reconcile of `controller` ("kafkacluster") and times it until the guard drops.
    pub fn reconcile(&self, controller: &str) -> ReconcileTimer {
        self.reconciliations.with_label_values(&[controller]).inc();
        ReconcileTimer {
            _timer: self
                .reconcile_duration
                .with_label_values(&[controller])
                .start_timer(),
        }
    }

    /// Counts one failed reconcile of `controller`. `reason` should come from a small fixed set
    /// (an error variant name, not its message) so the label's cardinality stays bounded.
    pub fn reconcile_failure(&self, controller: &str, reason: &str) {
        self.reconcile_errors
            .with_label_values(&[controller, reason])
            .inc();
    }

    /// Records whether this replica is the active (leader) one.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding only fails for malformed metric families, which our own collectors never
        // produce; an empty scrape is the honest answer if it ever happens.
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %err, "failed to encode metrics");
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_counts_and_times_per_controller() {
        let metrics = Metrics::new();
        drop(metrics.reconcile("kafkacluster"));
        drop(metrics.reconcile("kafkacluster"));
        drop(metrics.reconcile("kafkatopic"));

        let text = metrics.render();
        assert!(
            text.contains(r#"strom_operator_reconciliations_total{controller="kafkacluster"} 2"#)
        );
        assert!(text.contains(r#"strom_operator_reconciliations_total{controller="kafkatopic"} 1"#));
        assert!(text.contains(
            r#"strom_operator_reconcile_duration_seconds_count{controller="kafkacluster"} 2"#
        ));
        assert!(text.contains(
            r#"strom_operator_reconcile_duration_seconds_bucket{controller="kafkacluster",le="10"} 2"#
        ));
    }

    #[test]
    fn failures_are_labelled_by_reason() {
        let metrics = Metrics::new();
        metrics.reconcile_failure("kafkatopic", "BrokerUnavailable");
        metrics.reconcile_failure("kafkatopic", "BrokerUnavailable");

        assert!(metrics.render().contains(
            r#"strom_operator_reconcile_errors_total{controller="kafkatopic",reason="BrokerUnavailable"} 2"#
        ));
    }

    #[test]
    fn leader_gauge_flips() {
        let metrics = Metrics::default();
        assert!(metrics.render().contains("strom_operator_leader 0"));
        metrics.set_leader(true);
        assert!(metrics.render().contains("strom_operator_leader 1"));
        metrics.set_leader(false);
        assert!(metrics.render().contains("strom_operator_leader 0"));
    }

    #[test]
    fn scale_metrics_are_labelled_by_cluster() {
        let metrics = Metrics::new();
        metrics.set_scale_in_progress("kafka/a", true);
        metrics.partition_moves_started("kafka/a", 10);
        metrics.partition_moves_started("kafka/a", 4);
        metrics.partition_moves_completed("kafka/a", 14);
        metrics.leader_election("kafka/a", true);
        metrics.leader_election("kafka/a", false);
        let text = metrics.render();
        for line in [
            r#"strom_operator_scale_in_progress{cluster="kafka/a"} 1"#,
            r#"strom_operator_partition_moves_started_total{cluster="kafka/a"} 14"#,
            r#"strom_operator_partition_moves_completed_total{cluster="kafka/a"} 14"#,
            r#"strom_operator_leader_elections_total{cluster="kafka/a",result="ok"} 1"#,
            r#"strom_operator_leader_elections_total{cluster="kafka/a",result="failed"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        metrics.set_scale_in_progress("kafka/a", false);
        assert!(metrics
            .render()
            .contains(r#"strom_operator_scale_in_progress{cluster="kafka/a"} 0"#));
    }

    #[test]
    fn registries_are_independent() {
        let a = Metrics::new();
        let b = Metrics::new();
        drop(a.reconcile("kafkauser"));
        assert!(!b.render().contains("kafkauser"));
    }
}
