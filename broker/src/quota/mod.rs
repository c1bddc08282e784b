//! Client quotas (KIP-13 byte rates, KIP-124 request time, KIP-599 controller mutations,
//! KIP-219 throttling): the quotas live in the metadata log as `ClientQuota` records
//! (`entity`), each request is matched to one as Kafka's default quota callback does
//! (`resolve`), and its bytes or time are recorded in Kafka's sampled rate (`rate`). A
//! client over its quota gets `throttle_time_ms` in its response, and its connection reads
//! nothing more for that long once the response has left (`net::connection`).
//!
//! The name `net::quotas` is taken by connection-count limits, which are unrelated.

pub mod entity;
pub mod ip_connections;
pub mod rate;
pub mod resolve;

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use prometheus::GaugeVec;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::metrics::Metrics;
use rate::{Sampled, TokenBucket, WindowConfig};
use resolve::{ClientQuotaMap, MetricTags};

/// Kafka drops a client's sensors after an hour without a request
/// (`ClientQuotaManager.InactiveSensorExpirationTimeSeconds`); Strom drops their metric
/// labels with them.
const INACTIVE_SENSOR_EXPIRATION_MS: i64 = 3600 * 1000;

/// One quota type's sensors: per (user, client-id) tags, the rate being limited and the
/// throttle times handed out, as Kafka's `ClientQuotaManager` keeps them.
#[derive(Debug)]
pub struct QuotaManager {
    /// The quota key this manager enforces.
    key: &'static str,
    config: WindowConfig,
    /// The request quota caps a throttle at one window (`ClientRequestQuotaManager`);
    /// byte-rate quotas do not cap it.
    max_throttle_ms: Option<i64>,
    sensors: Mutex<HashMap<MetricTags, Sensors>>,
    rate_gauge: GaugeVec,
    throttle_gauge: GaugeVec,
}

#[derive(Debug, Default)]
struct Sensors {
    rate: Sampled,
    throttle: Sampled,
    /// Only the controller mutation quota measures with it.
    tokens: TokenBucket,
}

/// What recording a value decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub tags: MetricTags,
    /// 0 when within quota.
    pub throttle_ms: i64,
}

impl QuotaManager {
    fn new(
        metrics: &Metrics,
        key: &'static str,
        jmx_type: &str,
        rate_attribute: &str,
        max_throttle_ms: Option<i64>,
        config: WindowConfig,
    ) -> QuotaManager {
        let labels = &["user", "client_id"];
        QuotaManager {
            key,
            config,
            max_throttle_ms,
            sensors: Mutex::new(HashMap::new()),
            rate_gauge: metrics.float_gauge(
                &format!("kafka_server_{jmx_type}_{rate_attribute}"),
                &format!("Rate limited by {key}, per user/client-id, over the quota window"),
                labels,
            ),
            throttle_gauge: metrics.float_gauge(
                &format!("kafka_server_{jmx_type}_throttle_time"),
                &format!(
                    "Average throttle time in ms handed out under {key}, per user/client-id, \
                     over the quota window"
                ),
                labels,
            ),
        }
    }

    pub fn key(&self) -> &'static str {
        self.key
    }

    /// Whether any quota of this type is set (Kafka records nothing until one is).
    pub fn enabled(&self, quotas: &ClientQuotaMap) -> bool {
        resolve::any_quota(quotas, self.key)
    }

    /// The quota that applies to this user and client id, `None` for unlimited.
    pub fn limit(&self, quotas: &ClientQuotaMap, user: &str, client_id: &str) -> Option<f64> {
        let tags = resolve::metric_tags(quotas, self.key, user, client_id);
        resolve::quota_limit(quotas, self.key, &tags)
    }

    /// Kafka's `recordAndGetThrottleTimeMs`: records `value` and, when the rate is then
    /// over the quota, the time that brings it back to the quota.
    pub fn record(
        &self,
        quotas: &ClientQuotaMap,
        user: &str,
        client_id: &str,
        value: f64,
        now: i64,
    ) -> Recorded {
        let tags = resolve::metric_tags(quotas, self.key, user, client_id);
        let bound = resolve::quota_limit(quotas, self.key, &tags);
        let mut sensors = self.sensors.lock();
        let sensor = sensors.entry(tags.clone()).or_default();
        sensor.rate.record(&self.config, value, now);
        let throttle_ms = match bound {
            Some(bound) => {
                let observed = sensor.rate.rate(&self.config, now);
                if observed > bound {
                    let window = sensor.rate.window_size(&self.config, now);
                    let t = rate::throttle_time_ms(observed, bound, window);
                    self.max_throttle_ms.map_or(t, |max| t.min(max)).max(0)
                } else {
                    0
                }
            }
            None => 0,
        };
        Recorded { tags, throttle_ms }
    }

    /// Kafka's controller mutation `record(permits)` on its token bucket. Strict (KIP-599,
    /// clients that understand THROTTLING_QUOTA_EXCEEDED): refused, recording nothing,
    /// while the bucket is below zero (`Err` with the time it needs to refill to zero),
    /// else taken whole even into debt with no throttle: the next mutation pays. Permissive
    /// (older clients): always taken, and throttled once the bucket is below zero.
    pub fn record_mutation(
        &self,
        quotas: &ClientQuotaMap,
        user: &str,
        client_id: &str,
        permits: f64,
        strict: bool,
        now: i64,
    ) -> Result<Recorded, Recorded> {
        let tags = resolve::metric_tags(quotas, self.key, user, client_id);
        let Some(bound) = resolve::quota_limit(quotas, self.key, &tags) else {
            return Ok(Recorded {
                tags,
                throttle_ms: 0,
            });
        };
        let mut sensors = self.sensors.lock();
        let sensor = sensors.entry(tags.clone()).or_default();
        let before = sensor.tokens.tokens(&self.config, bound, now);
        if strict && before < 0.0 {
            let throttle_ms = rate::token_throttle_time_ms(before, bound);
            return Err(Recorded { tags, throttle_ms });
        }
        sensor.tokens.record(&self.config, bound, permits, now);
        sensor.rate.record(&self.config, permits, now);
        let throttle_ms = if strict {
            0
        } else {
            rate::token_throttle_time_ms(sensor.tokens.tokens(&self.config, bound, now), bound)
        };
        Ok(Recorded { tags, throttle_ms })
    }

    /// Kafka's `recordNoThrottle`: counts toward the rate without checking the quota.
    pub fn record_no_throttle(&self, tags: &MetricTags, value: f64, now: i64) {
        let mut sensors = self.sensors.lock();
        sensors
            .entry(tags.clone())
            .or_default()
            .rate
            .record(&self.config, value, now);
    }

    /// Kafka's `unrecordQuotaSensor`: a throttled fetch sends no data, so its bytes come
    /// off the rate again.
    pub fn unrecord(&self, tags: &MetricTags, value: f64, now: i64) {
        self.record_no_throttle(tags, -value, now);
    }

    /// Kafka's `throttle`: notes a throttle handed out (the connection is muted by the
    /// caller).
    pub fn throttled(&self, tags: &MetricTags, throttle_ms: i64, now: i64) {
        if throttle_ms <= 0 {
            return;
        }
        let mut sensors = self.sensors.lock();
        sensors.entry(tags.clone()).or_default().throttle.record(
            &self.config,
            throttle_ms as f64,
            now,
        );
    }

    /// Kafka's `getMaxValueInQuotaWindow`: the most that can be recorded at once without
    /// certain throttling (a fetch larger than this could never be answered).
    pub fn max_value_in_window(
        &self,
        quotas: &ClientQuotaMap,
        user: &str,
        client_id: &str,
    ) -> Option<f64> {
        let window_s = self.config.window_ms as f64 / 1000.0;
        self.limit(quotas, user, client_id)
            .map(|q| q * (self.config.samples as f64 - 1.0) * window_s)
    }

    /// Sets the gauges from the sensors and drops sensors idle for an hour (and their
    /// labels), as Kafka expires them.
    fn refresh_metrics(&self, now: i64) {
        let mut sensors = self.sensors.lock();
        sensors.retain(|(user, client_id), sensor| {
            let labels = [user.as_str(), client_id.as_str()];
            let last = sensor
                .rate
                .last_event_ms()
                .max(sensor.throttle.last_event_ms())
                .unwrap_or(now);
            if now - last >= INACTIVE_SENSOR_EXPIRATION_MS {
                let _ = self.rate_gauge.remove_label_values(&labels);
                let _ = self.throttle_gauge.remove_label_values(&labels);
                return false;
            }
            // A broker that only notes throttles (the controller measures the controller
            // mutation rate) has no rate to show for these tags.
            if sensor.rate.last_event_ms().is_some() {
                self.rate_gauge
                    .with_label_values(&labels)
                    .set(sensor.rate.rate(&self.config, now));
            }
            self.throttle_gauge
                .with_label_values(&labels)
                .set(sensor.throttle.average(&self.config, now).unwrap_or(0.0));
            true
        });
    }
}

/// The four client quota types of a broker (Kafka's `QuotaFactory.QuotaManagers`).
#[derive(Debug)]
pub struct ClientQuotas {
    started: Instant,
    /// `producer_byte_rate`: bytes of Produce requests.
    pub produce: QuotaManager,
    /// `consumer_byte_rate`: bytes of consumer Fetch responses.
    pub fetch: QuotaManager,
    /// `request_percentage`: request time (decoding, handling, encoding), in percent of
    /// one thread.
    pub request: QuotaManager,
    /// `controller_mutation_rate`: partitions created or deleted per second.
    pub controller_mutation: QuotaManager,
    /// `connection_creation_rate`: new connections per second from one IP address.
    pub connection_creation: ip_connections::IpConnectionRates,
}

impl ClientQuotas {
    pub fn new(metrics: &Metrics) -> ClientQuotas {
        let config = WindowConfig::default();
        ClientQuotas {
            started: Instant::now(),
            produce: QuotaManager::new(
                metrics,
                entity::PRODUCER_BYTE_RATE,
                "produce",
                "byte_rate",
                None,
                config,
            ),
            fetch: QuotaManager::new(
                metrics,
                entity::CONSUMER_BYTE_RATE,
                "fetch",
                "byte_rate",
                None,
                config,
            ),
            request: QuotaManager::new(
                metrics,
                entity::REQUEST_PERCENTAGE,
                "request",
                "request_time",
                Some(config.window_ms),
                config,
            ),
            controller_mutation: QuotaManager::new(
                metrics,
                entity::CONTROLLER_MUTATION_RATE,
                "controllermutation",
                "mutation_rate",
                None,
                config,
            ),
            connection_creation: ip_connections::IpConnectionRates::default(),
        }
    }

    /// Milliseconds on the broker's monotonic clock, the quotas' time base.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// KIP-599, on the active controller: takes `partitions` from the bucket of `who` for
    /// one topic that passed validation (Kafka's `applyPartitionChangeQuota`).
    pub fn charge_mutations(
        &self,
        quotas: &ClientQuotaMap,
        who: &MutationRequester,
        partitions: usize,
        now: i64,
    ) -> MutationCharge {
        let manager = &self.controller_mutation;
        if !manager.enabled(quotas) {
            return MutationCharge::Taken { throttle_ms: 0 };
        }
        match manager.record_mutation(
            quotas,
            &who.user,
            &who.client_id,
            partitions as f64,
            who.strict,
            now,
        ) {
            Ok(r) => MutationCharge::Taken {
                throttle_ms: r.throttle_ms,
            },
            Err(r) => MutationCharge::Refused {
                throttle_ms: r.throttle_ms,
            },
        }
    }

    /// Brings the quota metrics up to date (called when metrics are scraped).
    pub fn refresh_metrics(&self) {
        let now = self.now_ms();
        for manager in [
            &self.produce,
            &self.fetch,
            &self.request,
            &self.controller_mutation,
        ] {
            manager.refresh_metrics(now);
        }
    }
}

/// Whom the controller mutations of a CreateTopics, CreatePartitions or DeleteTopics
/// request are charged to. It travels with each topic to the active controller, which
/// keeps the buckets (Kafka's `ControllerRequestContext` carries the request's principal
/// and client id there the same way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationRequester {
    /// The principal's name, as [`user_of`] gives it.
    pub user: String,
    pub client_id: String,
    /// The request version knows THROTTLING_QUOTA_EXCEEDED (CreateTopics v6+,
    /// CreatePartitions v3+, DeleteTopics v5+): refused rather than throttled once the
    /// bucket is below zero.
    pub strict: bool,
}

/// What charging one topic's partitions decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutationCharge {
    /// Taken; the throttle is 0 unless a permissive request took the bucket below zero.
    Taken { throttle_ms: i64 },
    /// Strict, and the bucket was already below zero: nothing taken, the topic is refused
    /// with [`throttling_quota_exceeded`]; the throttle is the time to refill to zero.
    Refused { throttle_ms: i64 },
}

/// Kafka's THROTTLING_QUOTA_EXCEEDED, with its message, for a strictly refused topic.
pub fn throttling_quota_exceeded() -> ApiError {
    ApiError::new(
        ResponseError::ThrottlingQuotaExceeded,
        "The throttling quota has been exceeded.",
    )
}

/// The user a quota keys on: the principal's name without its `User:` type (Kafka's
/// `KafkaPrincipal.getName`).
pub fn user_of(principal: &str) -> &str {
    principal
        .split_once(':')
        .map_or(principal, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::QuotaEntity;

    fn quotas(value: f64) -> ClientQuotaMap {
        let mut q = ClientQuotaMap::new();
        q.entry(QuotaEntity::user_client(None, Some(Some("app"))))
            .or_default()
            .insert(entity::PRODUCER_BYTE_RATE.into(), value);
        q
    }

    #[test]
    fn a_client_over_its_rate_is_throttled_until_the_rate_is_back() {
        let metrics = Metrics::new();
        let q = ClientQuotas::new(&metrics);
        let map = quotas(1000.0);
        // 10,000 bytes at once against 1000 bytes/s over a 10 s window: on the quota.
        let r = q.produce.record(&map, "ANONYMOUS", "app", 10_000.0, 0);
        assert_eq!(
            r,
            Recorded {
                tags: (String::new(), "app".into()),
                throttle_ms: 0
            }
        );
        // 5,000 more: 15,000 over 10 s is 1500/s; (1500-1000)/1000 × 10 s = 5 s.
        let r = q.produce.record(&map, "ANONYMOUS", "app", 5_000.0, 0);
        assert_eq!(r.throttle_ms, 5000);
        q.produce.throttled(&r.tags, r.throttle_ms, 0);
        // Another client is not limited (no quota applies), but is measured.
        assert_eq!(
            q.produce
                .record(&map, "ANONYMOUS", "other", 1e9, 0)
                .throttle_ms,
            0
        );
        q.refresh_metrics();
        let text = metrics.render_registry();
        assert!(
            text.contains("kafka_server_produce_throttle_time{client_id=\"app\",user=\"\"} 5000"),
            "{text}"
        );
        assert!(
            text.contains("kafka_server_produce_byte_rate{client_id=\"app\",user=\"\"}"),
            "{text}"
        );
    }

    #[test]
    fn the_request_quota_caps_throttling_at_one_window() {
        let metrics = Metrics::new();
        let q = ClientQuotas::new(&metrics);
        let mut map = ClientQuotaMap::new();
        map.entry(QuotaEntity::user_client(Some(Some("alice")), None))
            .or_default()
            .insert(entity::REQUEST_PERCENTAGE.into(), 1.0);
        let r = q.request.record(&map, "alice", "x", 1000.0, 0);
        assert_eq!(r.throttle_ms, 1000);
    }

    #[test]
    fn sensors_and_labels_expire_after_an_hour_idle() {
        let metrics = Metrics::new();
        let q = ClientQuotas::new(&metrics);
        let map = quotas(1000.0);
        q.fetch.record(&map, "u", "c", 1.0, 0);
        q.fetch.refresh_metrics(1000);
        assert!(metrics
            .render_registry()
            .contains("kafka_server_fetch_byte_rate{client_id=\"c\",user=\"\"}"));
        q.fetch.refresh_metrics(INACTIVE_SENSOR_EXPIRATION_MS);
        assert!(!metrics
            .render_registry()
            .contains("kafka_server_fetch_byte_rate{"));
        assert!(q.fetch.sensors.lock().is_empty());
    }

    fn mutation_quota(rate: f64) -> ClientQuotaMap {
        let mut q = ClientQuotaMap::new();
        q.entry(QuotaEntity::user_client(Some(None), None))
            .or_default()
            .insert(entity::CONTROLLER_MUTATION_RATE.into(), rate);
        q
    }

    fn requester(user: &str, strict: bool) -> MutationRequester {
        MutationRequester {
            user: user.into(),
            client_id: "app".into(),
            strict,
        }
    }

    #[test]
    fn strict_mutations_go_into_debt_once_then_are_refused_until_refilled() {
        let q = ClientQuotas::new(&Metrics::new());
        let map = mutation_quota(1.0);
        let alice = requester("alice", true);
        // A new bucket holds 11 s × 1/s; 20 are taken whole, without a throttle.
        assert_eq!(
            q.charge_mutations(&map, &alice, 20, 0),
            MutationCharge::Taken { throttle_ms: 0 }
        );
        // 9 below zero: refused, nothing taken, 9 s to refill.
        assert_eq!(
            q.charge_mutations(&map, &alice, 1, 0),
            MutationCharge::Refused { throttle_ms: 9000 }
        );
        assert_eq!(
            q.charge_mutations(&map, &alice, 1, 4000),
            MutationCharge::Refused { throttle_ms: 5000 }
        );
        // Refilled to zero: taken again.
        assert_eq!(
            q.charge_mutations(&map, &alice, 1, 9000),
            MutationCharge::Taken { throttle_ms: 0 }
        );
        // Each user has a bucket of its own under a default-user quota.
        assert_eq!(
            q.charge_mutations(&map, &requester("bob", true), 5, 9000),
            MutationCharge::Taken { throttle_ms: 0 }
        );
    }

    #[test]
    fn permissive_mutations_are_taken_and_throttled_past_the_quota() {
        let q = ClientQuotas::new(&Metrics::new());
        let map = mutation_quota(2.0);
        let old = requester("alice", false);
        // 22 tokens: 30 leave 8 of debt, 4 s at 2/s.
        assert_eq!(
            q.charge_mutations(&map, &old, 30, 0),
            MutationCharge::Taken { throttle_ms: 4000 }
        );
        assert_eq!(
            q.charge_mutations(&map, &old, 2, 0),
            MutationCharge::Taken { throttle_ms: 5000 }
        );
    }

    #[test]
    fn without_a_mutation_quota_nothing_is_charged() {
        let q = ClientQuotas::new(&Metrics::new());
        let alice = requester("alice", true);
        for _ in 0..3 {
            assert_eq!(
                q.charge_mutations(&ClientQuotaMap::new(), &alice, 1000, 0),
                MutationCharge::Taken { throttle_ms: 0 }
            );
        }
        // Another type's quota does not turn this one on.
        assert_eq!(
            q.charge_mutations(&quotas(1.0), &alice, 1000, 0),
            MutationCharge::Taken { throttle_ms: 0 }
        );
        assert!(q.controller_mutation.sensors.lock().is_empty());
    }

    #[test]
    fn the_user_is_the_principal_name() {
        assert_eq!(user_of("User:alice"), "alice");
        assert_eq!(user_of("User:CN=a,O=b"), "CN=a,O=b");
        assert_eq!(user_of("ANONYMOUS"), "ANONYMOUS");
    }

    /// A client that sends 16 KiB whenever it may, against 512 KiB/s: the bytes per
    /// time it gets through, over `from..to` ms.
    fn greedy_client(from: i64, to: i64) -> f64 {
        let metrics = Metrics::new();
        let q = ClientQuotas::new(&metrics);
        let quota = 512.0 * 1024.0;
        let map = quotas(quota);
        let (mut now, mut sent) = (0i64, 0.0);
        while now < to {
            let r = q.produce.record(&map, "u", "app", 16_384.0, now);
            if now >= from {
                sent += 16_384.0;
            }
            // 2 ms per request, then muted for the throttle time.
            now += 2 + r.throttle_ms;
        }
        sent / ((to - from) as f64 / 1000.0) / quota
    }

    #[test]
    fn a_greedy_client_is_held_to_its_quota_over_whole_quota_spans() {
        // Kafka's windowed rate lets a fresh client send a whole span's worth at once, and
        // again whenever that burst's sample expires: its bytes rise in steps one span
        // (11 s) apart. Over any two whole spans after the first burst the rate is the
        // quota; over a run from the start it is not (the first burst is extra).
        for span in [11_000, 22_000] {
            for start in (2_500..12_000).step_by(1000) {
                let ratio = greedy_client(start, start + span);
                assert!((ratio - 1.0).abs() < 0.05, "{start}+{span}: {ratio}");
            }
        }
        assert!((greedy_client(20_000, 130_000) - 1.0).abs() < 0.05);
        assert!(greedy_client(0, 15_000) > 1.3, "the first burst");
    }
}
