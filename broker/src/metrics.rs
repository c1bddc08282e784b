//! Prometheus metrics under the names Kafka's JMX exporter (as Strimzi configures it)
//! produces, so existing dashboards and alerts work against Strom unchanged. Traffic is
//! counted as it happens; per-partition, group and replication gauges are computed at
//! scrape time (`render`, `record_replication`).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::group::GroupCoordinator;
use crate::log::{LogManager, TopicPartition};

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    messages_in: IntCounterVec,
    requests: IntCounterVec,
    request_time_ms: HistogramVec,
    connections: IntGaugeVec,
    connection_events: ConnectionMetrics,
    log_size: IntGaugeVec,
    log_end_offset: IntGaugeVec,
    log_start_offset: IntGaugeVec,
    log_segments: IntGaugeVec,
    group_offset: IntGaugeVec,
    group_lag: IntGaugeVec,
    groups_by_state: IntGaugeVec,
    cleaner_recopy_percent: IntGauge,
    cleaner_clean_time_ms: IntGauge,
    cleaner_bytes: IntCounterVec,
    under_replicated: IntGauge,
    under_min_isr: IntGauge,
    leader_count: IntGauge,
    partition_count: IntGauge,
    offline_log_dirs: IntGauge,
    isr_shrinks: IntCounter,
    isr_expands: IntCounter,
    active_controller: IntGauge,
    offline_partitions: IntGauge,
    active_brokers: IntGauge,
    fenced_brokers: IntGauge,
    replica_lag: IntGaugeVec,
    /// Serialises `record_replication`, whose counters catch up by difference.
    replication_scrape: Arc<Mutex<()>>,
}

/// Connection life-cycle counters. Kafka's socket-server-metrics names where Kafka has
/// one (`connection-creation-total`, `connection-close-total`, the acceptor's
/// `AcceptorBlockedPercent`); why the broker itself closed a connection is Strom's.
#[derive(Debug, Clone)]
pub struct ConnectionMetrics {
    created: IntCounterVec,
    closed: IntCounterVec,
    closed_by_broker: IntCounterVec,
    acceptor_blocked_ns: IntCounterVec,
    failed_authentication: IntCounterVec,
    successful_authentication: IntCounterVec,
    successful_reauthentication: IntCounterVec,
}

impl ConnectionMetrics {
    fn new(registry: &Registry) -> Self {
        ConnectionMetrics {
            created: counter(
                registry,
                "kafka_server_socketservermetrics_connection_creation_total",
                "Client connections accepted and served",
                &["listener"],
            ),
            closed: counter(
                registry,
                "kafka_server_socketservermetrics_connection_close_total",
                "Served client connections that closed, for any reason",
                &["listener"],
            ),
            closed_by_broker: counter(
                registry,
                "kafka_server_socketservermetrics_connection_broker_close_total",
                "Connections the broker closed: idle (connections.max.idle.ms), \
                 request_read_timeout (socket.request.read.timeout.ms), \
                 per_ip_limit (max.connections.per.ip, closed at accept), \
                 ip_connection_rate (connection_creation_rate, closed after the throttle time)",
                &["listener", "reason"],
            ),
            // Kafka marks a meter with the nanoseconds the acceptor waited for a slot
            // under max.connections or out a max.connection.creation.rate throttle; the
            // JMX exporter shows the meter's count.
            acceptor_blocked_ns: counter(
                registry,
                "kafka_network_acceptor_acceptorblockedpercent",
                "Nanoseconds the acceptor waited for a free slot under max.connections or \
                 for max.connection.creation.rate (rate()/1e9 is the blocked fraction)",
                &["listener"],
            ),
            failed_authentication: counter(
                registry,
                "kafka_server_socketservermetrics_failed_authentication_total",
                "Connections that failed to authenticate (a failed TLS handshake or SASL \
                 exchange)",
                &["listener"],
            ),
            successful_authentication: counter(
                registry,
                "kafka_server_socketservermetrics_successful_authentication_total",
                "SASL authentications that succeeded (re-authentications are counted apart)",
                &["listener"],
            ),
            successful_reauthentication: counter(
                registry,
                "kafka_server_socketservermetrics_successful_reauthentication_total",
                "SASL re-authentications (KIP-368, connections.max.reauth.ms) that succeeded",
                &["listener"],
            ),
        }
    }

    pub fn successful_authentication(&self, listener: &str) {
        self.successful_authentication
            .with_label_values(&[listener])
            .inc();
    }

    pub fn successful_reauthentication(&self, listener: &str) {
        self.successful_reauthentication
            .with_label_values(&[listener])
            .inc();
    }

    pub fn failed_authentication(&self, listener: &str) {
        self.failed_authentication
            .with_label_values(&[listener])
            .inc();
    }

    pub fn created(&self, listener: &str) {
        self.created.with_label_values(&[listener]).inc();
    }

    pub fn closed(&self, listener: &str) {
        self.closed.with_label_values(&[listener]).inc();
    }

    /// `reason` is one of the values the metric's help lists.
    pub fn closed_by_broker(&self, listener: &str, reason: &str) {
        self.closed_by_broker
            .with_label_values(&[listener, reason])
            .inc();
    }

    pub fn acceptor_blocked(&self, listener: &str, waited: Duration) {
        self.acceptor_blocked_ns
            .with_label_values(&[listener])
            .inc_by(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// One partition replica this broker holds, as the replication metrics need it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReplica {
    pub topic: String,
    pub partition: i32,
    /// Set when this broker leads the partition.
    pub led: Option<LedReplica>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LedReplica {
    /// The replica set without the replicas a reassignment is still adding: Kafka counts
    /// a partition under-replicated against its original replicas during a reassignment.
    pub replication_factor: usize,
    pub isr: usize,
    pub min_insync_replicas: i32,
    /// Each follower's lag behind the leader's log end, in messages.
    pub follower_lags: Vec<(i32, i64)>,
}

/// The replication and controller state the metrics report, gathered at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationSnapshot {
    pub replicas: Vec<LocalReplica>,
    pub isr_shrinks: u64,
    pub isr_expands: u64,
    pub active_controller: bool,
    /// Partitions without a leader in the whole cluster; reported by the active
    /// controller only (0 elsewhere), as Kafka does.
    pub offline_partitions: usize,
    /// Registered brokers that are not fenced, and fenced ones (stopped heartbeating or
    /// not yet caught up); reported by the active controller only, as Kafka's
    /// `ActiveBrokerCount` and `FencedBrokerCount`.
    pub active_brokers: usize,
    pub fenced_brokers: usize,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn single_counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn single_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let request_time_ms = HistogramVec::new(
            HistogramOpts::new(
                "kafka_network_requestmetrics_totaltimems",
                "Time from receiving a request to having its response, in milliseconds",
            )
            .buckets(vec![
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
                5000.0,
            ]),
            &["request"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(request_time_ms.clone()))
            .expect("metric registered once");
        Metrics {
            bytes_in: counter(
                &registry,
                "kafka_server_brokertopicmetrics_bytesin_total",
                "Bytes appended to the log from producers",
                &["topic"],
            ),
            bytes_out: counter(
                &registry,
                "kafka_server_brokertopicmetrics_bytesout_total",
                "Bytes sent to consumers",
                &["topic"],
            ),
            messages_in: counter(
                &registry,
                "kafka_server_brokertopicmetrics_messagesin_total",
                "Records appended to the log",
                &["topic"],
            ),
            requests: counter(
                &registry,
                "kafka_network_requestmetrics_requests_total",
                "Requests handled, by API",
                &["request"],
            ),
            connections: gauge(
                &registry,
                "kafka_server_socketservermetrics_connection_count",
                "Open client connections",
                &["listener"],
            ),
            connection_events: ConnectionMetrics::new(&registry),
            log_size: gauge(
                &registry,
                "kafka_log_log_size",
                "Bytes on disk per partition",
                &["topic", "partition"],
            ),
            log_end_offset: gauge(
                &registry,
                "kafka_log_log_logendoffset",
                "Log end offset per partition",
                &["topic", "partition"],
            ),
            log_start_offset: gauge(
                &registry,
                "kafka_log_log_logstartoffset",
                "Log start offset per partition",
                &["topic", "partition"],
            ),
            log_segments: gauge(
                &registry,
                "kafka_log_log_numlogsegments",
                "Segments per partition",
                &["topic", "partition"],
            ),
            cleaner_recopy_percent: single_gauge(
                &registry,
                "kafka_log_logcleaner_cleaner_recopy_percent",
                "Bytes written as a share of bytes read by the last cleaning pass that cleaned",
            ),
            cleaner_clean_time_ms: single_gauge(
                &registry,
                "kafka_log_logcleaner_last_clean_time_ms",
                "Duration of the last log cleaning pass, in milliseconds",
            ),
            cleaner_bytes: counter(
                &registry,
                "kafka_log_logcleaner_bytes_total",
                "Bytes of segments the log cleaner read (before) and wrote (after)",
                &["stage"],
            ),
            // Committed offsets and lag under Kafka Exporter's names (the exporter Strimzi
            // deploys), so its lag dashboards and alerts read the broker directly.
            group_offset: gauge(
                &registry,
                "kafka_consumergroup_current_offset",
                "Committed offset per consumer group and partition",
                &["consumergroup", "topic", "partition"],
            ),
            group_lag: gauge(
                &registry,
                "kafka_consumergroup_lag",
                "High watermark minus committed offset per consumer group and partition",
                &["consumergroup", "topic", "partition"],
            ),
            groups_by_state: gauge(
                &registry,
                "kafka_coordinator_group_groupmetadatamanager_numgroups",
                "Consumer groups coordinated here, by state",
                &["state"],
            ),
            under_replicated: single_gauge(
                &registry,
                "kafka_server_replicamanager_underreplicatedpartitions",
                "Partitions led here whose ISR is smaller than their replica set",
            ),
            under_min_isr: single_gauge(
                &registry,
                "kafka_server_replicamanager_underminisrpartitioncount",
                "Partitions led here whose ISR is smaller than min.insync.replicas",
            ),
            leader_count: single_gauge(
                &registry,
                "kafka_server_replicamanager_leadercount",
                "Partitions led here",
            ),
            partition_count: single_gauge(
                &registry,
                "kafka_server_replicamanager_partitioncount",
                "Partition replicas held here",
            ),
            offline_log_dirs: single_gauge(
                &registry,
                "kafka_log_logmanager_offlinelogdirectorycount",
                "Log directories offline after a storage error",
            ),
            // Kafka's IsrShrinksPerSec and IsrExpandsPerSec are meters; the JMX exporter
            // exposes a meter's Count as a `_total` counter, and Prometheus takes the rate.
            isr_shrinks: single_counter(
                &registry,
                "kafka_server_replicamanager_isrshrinks_total",
                "ISR shrinks of partitions led here",
            ),
            isr_expands: single_counter(
                &registry,
                "kafka_server_replicamanager_isrexpands_total",
                "ISR expansions of partitions led here",
            ),
            active_controller: single_gauge(
                &registry,
                "kafka_controller_kafkacontroller_activecontrollercount",
                "1 on the active controller (the metadata quorum leader), else 0",
            ),
            offline_partitions: single_gauge(
                &registry,
                "kafka_controller_kafkacontroller_offlinepartitionscount",
                "Partitions without a leader; reported by the active controller only",
            ),
            active_brokers: single_gauge(
                &registry,
                "kafka_controller_kafkacontroller_activebrokercount",
                "Registered brokers that are not fenced; reported by the active controller only",
            ),
            fenced_brokers: single_gauge(
                &registry,
                "kafka_controller_kafkacontroller_fencedbrokercount",
                "Registered brokers that are fenced; reported by the active controller only",
            ),
            // Kafka reports replica lag on the follower (FetcherLagMetrics ConsumerLag, per
            // fetcher client). Strom reports it from the leader, which knows every
            // follower's log end from its fetches, labelled by follower: one scrape of the
            // leader then shows the whole partition, including followers that are down.
            replica_lag: gauge(
                &registry,
                "kafka_server_fetcherlagmetrics_consumerlag",
                "Messages a follower is behind the leader's log end, reported by the leader",
                &["topic", "partition", "replica"],
            ),
            replication_scrape: Arc::new(Mutex::new(())),
            request_time_ms,
            registry,
        }
    }

    pub fn observe_request(&self, api: ApiKey, took: Duration) {
        let name = format!("{api:?}");
        self.requests.with_label_values(&[&name]).inc();
        self.request_time_ms
            .with_label_values(&[&name])
            .observe(took.as_secs_f64() * 1000.0);
    }

    pub fn record_produce(&self, topic: &str, bytes: u64, messages: i64) {
        self.bytes_in.with_label_values(&[topic]).inc_by(bytes);
        self.messages_in
            .with_label_values(&[topic])
            .inc_by(messages.max(0) as u64);
    }

    pub fn record_fetch(&self, topic: &str, bytes: u64) {
        self.bytes_out.with_label_values(&[topic]).inc_by(bytes);
    }

    pub fn record_log_cleaning(&self, stats: &crate::log::CleanStats, took: Duration) {
        self.cleaner_clean_time_ms
            .set(took.as_millis().min(i64::MAX as u128) as i64);
        if let Some(percent) = stats
            .bytes_written
            .saturating_mul(100)
            .checked_div(stats.bytes_read)
        {
            self.cleaner_recopy_percent
                .set(percent.min(i64::MAX as u64) as i64);
            self.cleaner_bytes
                .with_label_values(&["before"])
                .inc_by(stats.bytes_read);
            self.cleaner_bytes
                .with_label_values(&["after"])
                .inc_by(stats.bytes_written);
        }
    }

    pub fn connection_opened(&self, listener: &str) {
        self.connections.with_label_values(&[listener]).inc();
    }

    pub fn connection_closed(&self, listener: &str) {
        self.connections.with_label_values(&[listener]).dec();
    }

    /// Connection creations, closes, refusals and acceptor waits (`net`).
    pub fn connection_events(&self) -> &ConnectionMetrics {
        &self.connection_events
    }

    /// Sets the replication and controller metrics from `snapshot`. Call before `render`.
    pub fn record_replication(&self, snapshot: &ReplicationSnapshot) {
        let _serialised = self.replication_scrape.lock();
        let led = || snapshot.replicas.iter().filter_map(|r| r.led.as_ref());
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.partition_count.set(count(snapshot.replicas.len()));
        self.leader_count.set(count(led().count()));
        self.under_replicated.set(count(
            led().filter(|l| l.isr < l.replication_factor).count(),
        ));
        self.under_min_isr.set(count(
            led()
                .filter(|l| (l.isr as i64) < i64::from(l.min_insync_replicas))
                .count(),
        ));
        // The counters live in the replica manager; bring ours level with them.
        for (counter, total) in [
            (&self.isr_shrinks, snapshot.isr_shrinks),
            (&self.isr_expands, snapshot.isr_expands),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.active_controller
            .set(i64::from(snapshot.active_controller));
        let controller_only = |n: usize| {
            if snapshot.active_controller {
                count(n)
            } else {
                0
            }
        };
        self.offline_partitions
            .set(controller_only(snapshot.offline_partitions));
        self.active_brokers
            .set(controller_only(snapshot.active_brokers));
        self.fenced_brokers
            .set(controller_only(snapshot.fenced_brokers));
        self.replica_lag.reset();
        for r in &snapshot.replicas {
            let Some(led) = &r.led else { continue };
            let partition = r.partition.to_string();
            for (replica, lag) in &led.follower_lags {
                let replica = replica.to_string();
                self.replica_lag
                    .with_label_values(&[r.topic.as_str(), partition.as_str(), replica.as_str()])
                    .set(*lag);
            }
        }
    }

    /// Renders the text exposition, refreshing the per-partition gauges first so deleted
    /// partitions disappear.
    pub fn render(&self, logs: &LogManager, groups: &GroupCoordinator) -> String {
        self.group_offset.reset();
        self.group_lag.reset();
        self.groups_by_state.reset();
        for (group, topic, partition, offset) in groups.committed_offsets() {
            let p = partition.to_string();
            let labels = [group.as_str(), topic.as_str(), p.as_str()];
            self.group_offset.with_label_values(&labels).set(offset);
            let tp = TopicPartition {
                topic: topic.clone(),
                partition,
            };
            if let Some(log) = logs.get(&tp) {
                let lag = (log.high_watermark() - offset).max(0);
                self.group_lag.with_label_values(&labels).set(lag);
            }
        }
        for (state, count) in groups.state_counts() {
            self.groups_by_state.with_label_values(&[state]).set(count);
        }
        self.offline_log_dirs.set(logs.offline_dir_count() as i64);
        self.log_size.reset();
        self.log_end_offset.reset();
        self.log_start_offset.reset();
        self.log_segments.reset();
        for p in logs.all() {
            let partition = p.id.partition.to_string();
            let labels = [p.id.topic.as_str(), partition.as_str()];
            let log = p.log.lock();
            self.log_size
                .with_label_values(&labels)
                .set(log.size_bytes() as i64);
            self.log_end_offset
                .with_label_values(&labels)
                .set(log.log_end_offset());
            self.log_start_offset
                .with_label_values(&labels)
                .set(log.log_start_offset());
            self.log_segments
                .with_label_values(&labels)
                .set(log.segment_count() as i64);
        }
        self.encode()
    }

    /// A floating-point gauge family registered with this broker's metrics (the client
    /// quota rates and throttle times, owned by `quota`).
    pub fn float_gauge(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::GaugeVec {
        let g = prometheus::GaugeVec::new(Opts::new(name, help), labels)
            .expect("static metric definition");
        self.registry
            .register(Box::new(g.clone()))
            .expect("metric registered once");
        g
    }

    /// The registry's text without the scrape-time gauges (for tests of other modules).
    #[cfg(test)]
    pub fn render_registry(&self) -> String {
        self.encode()
    }

    fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(
        replication_factor: usize,
        isr: usize,
        min_insync_replicas: i32,
        lags: &[(i32, i64)],
    ) -> Option<LedReplica> {
        Some(LedReplica {
            replication_factor,
            isr,
            min_insync_replicas,
            follower_lags: lags.to_vec(),
        })
    }

    fn replica(topic: &str, partition: i32, led: Option<LedReplica>) -> LocalReplica {
        LocalReplica {
            topic: topic.into(),
            partition,
            led,
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn replication_metrics_render_under_kafka_names() {
        let metrics = Metrics::new();
        let snapshot = ReplicationSnapshot {
            replicas: vec![
                replica("t", 0, led(3, 3, 2, &[(2, 0), (3, 5)])),
                replica("t", 1, led(3, 2, 2, &[(2, 0), (3, 40)])),
                replica("t", 2, led(3, 1, 2, &[(2, 7), (3, 9)])),
                replica("t", 3, None),
                replica("u", 0, None),
            ],
            isr_shrinks: 4,
            isr_expands: 1,
            active_controller: true,
            offline_partitions: 2,
            active_brokers: 2,
            fenced_brokers: 1,
        };
        metrics.record_replication(&snapshot);
        let text = metrics.encode();
        let lines = lines(&text);
        for expected in [
            "kafka_server_replicamanager_partitioncount 5",
            "kafka_server_replicamanager_leadercount 3",
            "kafka_server_replicamanager_underreplicatedpartitions 2",
            "kafka_server_replicamanager_underminisrpartitioncount 1",
            "kafka_server_replicamanager_isrshrinks_total 4",
            "kafka_server_replicamanager_isrexpands_total 1",
            "kafka_controller_kafkacontroller_activecontrollercount 1",
            "kafka_controller_kafkacontroller_offlinepartitionscount 2",
            "kafka_controller_kafkacontroller_activebrokercount 2",
            "kafka_controller_kafkacontroller_fencedbrokercount 1",
            r#"kafka_server_fetcherlagmetrics_consumerlag{partition="1",replica="3",topic="t"} 40"#,
            r#"kafka_server_fetcherlagmetrics_consumerlag{partition="0",replica="2",topic="t"} 0"#,
        ] {
            assert!(lines.contains(&expected), "{expected} missing from\n{text}");
        }
        let lag_series = lines
            .iter()
            .filter(|l| l.starts_with("kafka_server_fetcherlagmetrics_consumerlag"))
            .count();
        assert_eq!(lag_series, 6, "one series per follower of a led partition");
    }

    #[test]
    fn later_scrapes_follow_the_state() {
        let metrics = Metrics::new();
        let mut snapshot = ReplicationSnapshot {
            replicas: vec![replica("t", 0, led(2, 1, 1, &[(2, 9)]))],
            isr_shrinks: 3,
            isr_expands: 2,
            active_controller: true,
            offline_partitions: 1,
            active_brokers: 3,
            fenced_brokers: 1,
        };
        metrics.record_replication(&snapshot);
        // Leadership moved away, the counters moved on, another node became controller.
        snapshot.replicas = vec![replica("t", 0, None)];
        snapshot.isr_shrinks = 5;
        snapshot.active_controller = false;
        metrics.record_replication(&snapshot);
        metrics.record_replication(&snapshot);
        let text = metrics.encode();
        let lines = lines(&text);
        for expected in [
            "kafka_server_replicamanager_leadercount 0",
            "kafka_server_replicamanager_underreplicatedpartitions 0",
            "kafka_server_replicamanager_isrshrinks_total 5",
            "kafka_server_replicamanager_isrexpands_total 2",
            "kafka_controller_kafkacontroller_activecontrollercount 0",
            "kafka_controller_kafkacontroller_offlinepartitionscount 0",
            "kafka_controller_kafkacontroller_activebrokercount 0",
            "kafka_controller_kafkacontroller_fencedbrokercount 0",
        ] {
            assert!(lines.contains(&expected), "{expected} missing from\n{text}");
        }
        assert!(
            !text.contains("kafka_server_fetcherlagmetrics_consumerlag{"),
            "lag series of a partition no longer led are dropped:\n{text}"
        );
    }
}
