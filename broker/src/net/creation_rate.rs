//! `max.connection.creation.rate` (KIP-612): new connections a second, per listener
//! (`listener.name.<l>.max.connection.creation.rate`) and across the broker's listeners,
//! the inter-broker one excepted so clients cannot crowd out replication. As Kafka's
//! acceptor does, a connection that takes a rate over its limit is still counted and
//! served, but only after its throttle time, and its listener accepts nothing meanwhile:
//! new clients wait in the listen backlog. (The per-IP `connection_creation_rate` quota,
//! which closes the connection instead, is `quota::ip_connections`.)

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::ConnectionLimits;
use crate::quota::rate::{bounded_throttle_time_ms, Sampled, WindowConfig};

/// A limit and the rate measured against it.
#[derive(Debug)]
struct Limited {
    limit: f64,
    rate: Mutex<Sampled>,
}

impl Limited {
    fn new(limit: f64) -> Limited {
        Limited {
            limit,
            rate: Mutex::new(Sampled::default()),
        }
    }

    /// Counts one connection; the throttle time in ms when that takes the rate over the
    /// limit (Kafka records the connection either way), at most one window.
    fn record(&self, config: &WindowConfig, now: i64) -> i64 {
        let mut rate = self.rate.lock();
        rate.record(config, 1.0, now);
        let observed = rate.rate(config, now);
        if observed <= self.limit {
            return 0;
        }
        let window = rate.window_size(config, now);
        bounded_throttle_time_ms(observed, self.limit, window, config.window_ms)
    }
}

/// The broker-wide and per-listener connection creation rates of one broker.
#[derive(Debug, Default)]
pub struct CreationRates {
    config: WindowConfig,
    broker: Option<Limited>,
    listeners: HashMap<String, Limited>,
    /// Exempt from the broker-wide rate (Kafka's protected inter-broker listener).
    protected_listener: Option<String>,
}

impl CreationRates {
    pub fn new(limits: &ConnectionLimits, protected_listener: Option<String>) -> CreationRates {
        CreationRates {
            config: WindowConfig::default(),
            broker: limits.creation_rate.map(Limited::new),
            listeners: limits
                .listener_creation_rates
                .iter()
                .map(|(name, &limit)| (name.clone(), Limited::new(limit)))
                .collect(),
            protected_listener,
        }
    }

    /// Counts a connection `listener` accepted at `now` (ms) against its listener's and
    /// the broker's rate; the time to hold it, and the listener's acceptor, before it is
    /// served (zero within both limits).
    pub fn record(&self, listener: &str, now: i64) -> Duration {
        let listener_ms = self
            .listeners
            .get(listener)
            .map_or(0, |l| l.record(&self.config, now));
        let broker_ms = match &self.broker {
            Some(b) if self.protected_listener.as_deref() != Some(listener) => {
                b.record(&self.config, now)
            }
            _ => 0,
        };
        Duration::from_millis(listener_ms.max(broker_ms).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(broker: Option<f64>, listeners: &[(&str, f64)]) -> CreationRates {
        let limits = ConnectionLimits {
            creation_rate: broker,
            listener_creation_rates: listeners.iter().map(|(n, l)| (n.to_string(), *l)).collect(),
            ..ConnectionLimits::default()
        };
        CreationRates::new(&limits, Some("REPLICATION".into()))
    }

    /// Connections recorded at `now` until one is throttled; how many went through.
    fn until_throttled(r: &CreationRates, listener: &str, now: i64) -> (usize, Duration) {
        for n in 0..1000 {
            let throttle = r.record(listener, now);
            if !throttle.is_zero() {
                return (n, throttle);
            }
        }
        panic!("never throttled");
    }

    #[test]
    fn no_limit_never_throttles() {
        let r = rates(None, &[]);
        for _ in 0..1000 {
            assert_eq!(r.record("PLAINTEXT", 0), Duration::ZERO);
        }
    }

    #[test]
    fn the_broker_rate_throttles_client_listeners_but_not_the_inter_broker_one() {
        let r = rates(Some(2.0), &[]);
        // A young rate spans quota.window.num - 1 = 10 windows: 20 connections fit.
        let (through, throttle) = until_throttled(&r, "PLAINTEXT", 0);
        assert_eq!(through, 20);
        // (21 / 10 s − 2) / 2 × 10 s = 500 ms.
        assert_eq!(throttle, Duration::from_millis(500));
        assert_eq!(r.record("REPLICATION", 0), Duration::ZERO);
        // The broker rate is shared: another client listener is over it too.
        assert!(!r.record("EXTERNAL", 0).is_zero());
    }

    #[test]
    fn a_listener_rate_applies_to_its_listener_only_and_to_the_inter_broker_one_too() {
        let r = rates(None, &[("REPLICATION", 1.0)]);
        let (through, throttle) = until_throttled(&r, "REPLICATION", 0);
        assert_eq!(through, 10);
        assert!(
            throttle <= Duration::from_secs(1),
            "at most one window: {throttle:?}"
        );
        assert_eq!(r.record("PLAINTEXT", 0), Duration::ZERO);
    }
}
