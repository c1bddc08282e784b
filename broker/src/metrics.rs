//! Prometheus metrics under the names Kafka's JMX exporter (as Strimzi configures it)
//! produces, so existing dashboards and alerts work against Strom unchanged.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
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
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
