//! Kafka's sampled statistics as its quotas use them (`SampledStat`, `Rate`, `Avg`,
//! `QuotaUtils`): `quota.window.num` samples of `quota.window.size.seconds` each; a rate
//! is the sum of the live samples over the time they span, counted as at least
//! `samples - 1` full windows so a fresh sensor does not report a huge rate.

/// `quota.window.num` and `quota.window.size.seconds` (Kafka's defaults 11 and 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowConfig {
    pub samples: usize,
    pub window_ms: i64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            samples: 11,
            window_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    value: f64,
    events: u64,
    start_ms: i64,
    last_event_ms: i64,
}

impl Sample {
    fn new(now: i64) -> Sample {
        Sample {
            value: 0.0,
            events: 0,
            start_ms: now,
            last_event_ms: now,
        }
    }
}

/// The samples of one statistic: a ring of `samples + 1` (Kafka keeps one extra for the
/// sample overlapping the start of the monitored span).
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    samples: Vec<Sample>,
    current: usize,
}

impl Sampled {
    pub fn record(&mut self, config: &WindowConfig, value: f64, now: i64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now));
            self.current = 0;
        }
        if now - self.samples[self.current].start_ms >= config.window_ms {
            self.current = (self.current + 1) % (config.samples + 1);
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now));
            } else {
                self.samples[self.current] = Sample::new(now);
            }
        }
        let sample = &mut self.samples[self.current];
        sample.value += value;
        sample.events += 1;
        sample.last_event_ms = now;
    }

    /// Samples without an event for the whole monitored span start afresh.
    fn purge(&mut self, config: &WindowConfig, now: i64) {
        let expire_age = config.samples as i64 * config.window_ms;
        for sample in &mut self.samples {
            if now - sample.last_event_ms >= expire_age {
                *sample = Sample::new(now);
            }
        }
    }

    /// Kafka's `Rate.windowSize`, in milliseconds.
    pub fn window_size(&mut self, config: &WindowConfig, now: i64) -> i64 {
        self.purge(config, now);
        let oldest = self.samples.iter().map(|s| s.start_ms).min().unwrap_or(now);
        let mut elapsed = now - oldest;
        let full_windows = elapsed / config.window_ms;
        let min_full = config.samples as i64 - 1;
        if full_windows < min_full {
            elapsed += (min_full - full_windows) * config.window_ms;
        }
        elapsed.max(1)
    }

    /// The rate per second (Kafka's `Rate` over a `WindowedSum`).
    pub fn rate(&mut self, config: &WindowConfig, now: i64) -> f64 {
        let window = self.window_size(config, now);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (window as f64 / 1000.0)
    }

    /// The mean of the recorded values (Kafka's `Avg`); `None` with no events.
    pub fn average(&mut self, config: &WindowConfig, now: i64) -> Option<f64> {
        self.purge(config, now);
        let events: u64 = self.samples.iter().map(|s| s.events).sum();
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        (events > 0).then(|| total / events as f64)
    }

    /// When the last value was recorded, for expiring idle sensors.
    pub fn last_event_ms(&self) -> Option<i64> {
        self.samples.iter().map(|s| s.last_event_ms).max()
    }
}

/// Kafka's `QuotaUtils.throttleTime`: with observed rate O over a window W and bound T,
/// the delay X that brings O·W/(W+X) down to T is (O−T)/T·W, rounded.
pub fn throttle_time_ms(observed: f64, bound: f64, window_ms: i64) -> i64 {
    let difference = observed - bound;
    (difference / bound * window_ms as f64).round() as i64
}

/// Kafka's `QuotaUtils.boundedThrottleTime` (the request quota caps throttling at one
/// window).
pub fn bounded_throttle_time_ms(observed: f64, bound: f64, window_ms: i64, max_ms: i64) -> i64 {
    throttle_time_ms(observed, bound, window_ms).min(max_ms)
}

/// Kafka's `TokenBucket` stat, what the controller mutation quota measures: the bucket
/// refills at `quota` tokens a second up to a burst of `samples × window` seconds' worth,
/// and a mutation takes its partitions' worth, which may take it below zero once.
#[derive(Debug, Clone, Default)]
pub struct TokenBucket {
    tokens: f64,
    /// `None` for a new bucket, which Kafka starts as if it had been filling forever.
    last_update_ms: Option<i64>,
}

impl TokenBucket {
    fn refill(&mut self, config: &WindowConfig, quota: f64, now: i64) -> f64 {
        let burst = config.samples as f64 * config.window_ms as f64 / 1000.0 * quota;
        self.tokens = match self.last_update_ms {
            Some(last) => (self.tokens + quota * (now - last) as f64 / 1000.0).min(burst),
            None => burst,
        };
        self.last_update_ms = Some(now);
        burst
    }

    /// The tokens left at `now`.
    pub fn tokens(&mut self, config: &WindowConfig, quota: f64, now: i64) -> f64 {
        self.refill(config, quota, now);
        self.tokens
    }

    pub fn record(&mut self, config: &WindowConfig, quota: f64, value: f64, now: i64) {
        let burst = self.refill(config, quota, now);
        self.tokens = (self.tokens - value).min(burst);
    }
}

/// Kafka's `ControllerMutationQuotaManager.throttleTimeMs`: the time the bucket needs to
/// refill to zero; 0 while it holds tokens.
pub fn token_throttle_time_ms(tokens: f64, quota: f64) -> i64 {
    if tokens >= 0.0 {
        return 0;
    }
    let ms = (-tokens / quota * 1000.0).round();
    // A zero quota never refills: as long as a throttle can be.
    if ms.is_finite() {
        ms as i64
    } else {
        i64::from(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn a_fresh_rate_counts_ten_full_windows() {
        let mut s = Sampled::default();
        s.record(&CONFIG, 5000.0, 0);
        // 0 ms elapsed, counted as 10 full windows: 5000 bytes / 10 s.
        assert_eq!(s.window_size(&CONFIG, 0), 10_000);
        assert_eq!(s.rate(&CONFIG, 0), 500.0);
        // 500 ms into the first window: 10.5 s.
        assert_eq!(s.window_size(&CONFIG, 500), 10_500);
    }

    #[test]
    fn a_steady_rate_is_measured_over_the_live_samples() {
        let mut s = Sampled::default();
        // 1000 bytes every 100 ms for 30 s: 10,000 bytes/s.
        for t in (0..30_000).step_by(100) {
            s.record(&CONFIG, 1000.0, t);
        }
        let rate = s.rate(&CONFIG, 29_900);
        assert!((rate - 10_000.0).abs() / 10_000.0 < 0.1, "{rate}");
    }

    #[test]
    fn idle_samples_expire_after_the_whole_span() {
        let mut s = Sampled::default();
        s.record(&CONFIG, 1_000_000.0, 0);
        assert!(s.rate(&CONFIG, 10_999) > 0.0);
        assert_eq!(s.rate(&CONFIG, 11_000), 0.0);
        assert_eq!(s.average(&CONFIG, 11_000), None);
    }

    #[test]
    fn throttle_time_is_kafkas_formula() {
        // Kafka's QuotaUtilsTest: observed 20, bound 10, window 10 s → 10 s.
        assert_eq!(throttle_time_ms(20.0, 10.0, 10_000), 10_000);
        assert_eq!(throttle_time_ms(10.5, 10.0, 10_000), 500);
        assert_eq!(bounded_throttle_time_ms(20.0, 10.0, 10_000, 1000), 1000);
        assert_eq!(bounded_throttle_time_ms(10.5, 10.0, 10_000, 1000), 500);
    }

    #[test]
    fn a_token_bucket_starts_full_refills_at_the_quota_and_goes_below_zero_once() {
        let mut b = TokenBucket::default();
        // 2 mutations/s: a burst of 11 s × 2 = 22 tokens.
        assert_eq!(b.tokens(&CONFIG, 2.0, 1_000_000), 22.0);
        b.record(&CONFIG, 2.0, 30.0, 1_000_000);
        assert_eq!(b.tokens(&CONFIG, 2.0, 1_000_000), -8.0);
        assert_eq!(token_throttle_time_ms(-8.0, 2.0), 4000);
        // Four seconds refill it to zero, and it never holds more than the burst.
        assert_eq!(b.tokens(&CONFIG, 2.0, 1_004_000), 0.0);
        assert_eq!(b.tokens(&CONFIG, 2.0, 2_000_000), 22.0);
        assert_eq!(token_throttle_time_ms(0.0, 2.0), 0);
        assert_eq!(token_throttle_time_ms(-1.0, 0.0), i64::from(i32::MAX));
    }

    #[test]
    fn average_is_over_recorded_events() {
        let mut s = Sampled::default();
        s.record(&CONFIG, 100.0, 0);
        s.record(&CONFIG, 300.0, 1500);
        assert_eq!(s.average(&CONFIG, 2000), Some(200.0));
    }
}
