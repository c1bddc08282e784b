//! Replication throttles, as Kafka's: the broker rates `leader.replication.throttled.rate`
//! and `follower.replication.throttled.rate` (dynamic broker configs) are token buckets of
//! bytes per second shared by every throttled replica on this broker, and the topic configs
//! `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`
//! (`*` or `partition:broker` pairs, which `kafka-reassign-partitions --throttle` sets) say
//! which replicas are throttled. A listed replica in the ISR is not throttled, so moving
//! data never starves the replicas that acknowledge writes. Strom also throttles a replica
//! a reassignment is adding (its rule from before the lists; see the callers).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

/// The topic config naming the replicas a leader throttles when serving them.
pub const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";
/// The topic config naming the replicas a follower throttles when fetching.
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";

/// A parsed throttled-replicas list.
#[derive(Debug, Clone, PartialEq)]
pub enum ThrottledReplicas {
    /// `*`: every replica of the topic.
    All,
    /// (partition, broker) pairs.
    Listed(Vec<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Parses `*` or `p:b,p:b,...` (an empty value lists nothing); `None` when malformed.
    pub fn parse(value: &str) -> Option<ThrottledReplicas> {
        let value = value.trim();
        if value == "*" {
            return Some(ThrottledReplicas::All);
        }
        let mut pairs = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (p, b) = item.split_once(':')?;
            pairs.push((p.trim().parse().ok()?, b.trim().parse().ok()?));
        }
        Some(ThrottledReplicas::Listed(pairs))
    }

    pub fn contains(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(pairs) => pairs.contains(&(partition, broker)),
        }
    }
}

/// Whether the replica `broker` of `partition` is throttled by the list `value` (a topic
/// config, absent when unset) while `in_sync` says whether that replica is in the ISR.
pub fn is_throttled(value: Option<&String>, partition: i32, broker: i32, in_sync: bool) -> bool {
    !in_sync
        && value
            .and_then(|v| ThrottledReplicas::parse(v))
            .is_some_and(|list| list.contains(partition, broker))
}

#[derive(Debug)]
pub struct Throttle {
    rate: AtomicI64,
    bucket: Mutex<(f64, Instant)>,
}

impl Throttle {
    /// `rate` bytes per second; `i64::MAX` (Kafka's default) means unlimited.
    pub fn new(rate: i64) -> Throttle {
        Throttle {
            rate: AtomicI64::new(rate),
            bucket: Mutex::new((rate.min(i64::MAX / 2) as f64, Instant::now())),
        }
    }

    pub fn rate(&self) -> i64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Changes the rate (a dynamic broker config changed); the bucket keeps what it holds,
    /// capped at one second of the new rate.
    pub fn set_rate(&self, rate: i64) {
        let old = self.rate.swap(rate, Ordering::Relaxed);
        if old != rate {
            let mut bucket = self.bucket.lock();
            bucket.0 = bucket.0.min(rate as f64);
            bucket.1 = Instant::now();
            tracing::info!(old, new = rate, "replication throttle rate changed");
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate() == i64::MAX
    }

    /// How many bytes may be sent now, at most `wanted`; 0 when the bucket is empty. The
    /// bucket holds at most one second of traffic.
    pub fn allowance(&self, wanted: usize) -> usize {
        let rate = self.rate();
        if rate == i64::MAX {
            return wanted;
        }
        let mut bucket = self.bucket.lock();
        let now = Instant::now();
        let refill = now.duration_since(bucket.1).as_secs_f64() * rate as f64;
        bucket.0 = (bucket.0 + refill).min(rate as f64);
        bucket.1 = now;
        bucket.0.max(0.0).min(wanted as f64) as usize
    }

    /// Takes `bytes` that were sent (may overdraw: a batch is never split).
    pub fn consume(&self, bytes: usize) {
        if self.is_unlimited() {
            return;
        }
        self.bucket.lock().0 -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_refills() {
        let t = Throttle::new(1000);
        assert_eq!(t.allowance(5000), 1000);
        t.consume(1500);
        assert_eq!(t.allowance(100), 0, "overdrawn");
        let unlimited = Throttle::new(i64::MAX);
        assert_eq!(unlimited.allowance(1 << 30), 1 << 30);
        unlimited.set_rate(10);
        assert!(
            unlimited.allowance(1 << 30) <= 10,
            "a new rate applies at once"
        );
        unlimited.set_rate(i64::MAX);
        assert_eq!(unlimited.allowance(1 << 30), 1 << 30);
    }

    #[test]
    fn throttled_replica_lists() {
        let list = |s: &str| Some(s.to_string());
        assert!(is_throttled(list("*").as_ref(), 3, 7, false));
        assert!(!is_throttled(list("*").as_ref(), 3, 7, true), "in sync");
        assert!(is_throttled(list("0:1, 3:7").as_ref(), 3, 7, false));
        assert!(!is_throttled(list("0:1,3:6").as_ref(), 3, 7, false));
        assert!(!is_throttled(None, 3, 7, false));
        assert!(!is_throttled(list("").as_ref(), 3, 7, false));
        assert_eq!(ThrottledReplicas::parse("0:x"), None);
        assert_eq!(ThrottledReplicas::parse("3"), None);
    }
}
