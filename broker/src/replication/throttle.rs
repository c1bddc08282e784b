//! Replication throttles (`leader.replication.throttled.rate`,
//! `follower.replication.throttled.rate`): a token bucket of bytes per second shared by
//! every throttled replica on this broker, as Kafka's quota is. Only replicas being added
//! by a reassignment are throttled, so moving data never starves the ISR.

use std::time::Instant;

use parking_lot::Mutex;

#[derive(Debug)]
pub struct Throttle {
    rate: i64,
    bucket: Mutex<(f64, Instant)>,
}

impl Throttle {
    /// `rate` bytes per second; `i64::MAX` (Kafka's default) means unlimited.
    pub fn new(rate: i64) -> Throttle {
        Throttle {
            rate,
            bucket: Mutex::new((rate.min(i64::MAX / 2) as f64, Instant::now())),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate == i64::MAX
    }

    /// How many bytes may be sent now, at most `wanted`; 0 when the bucket is empty. The
    /// bucket holds at most one second of traffic.
    pub fn allowance(&self, wanted: usize) -> usize {
        if self.is_unlimited() {
            return wanted;
        }
        let mut bucket = self.bucket.lock();
        let now = Instant::now();
        let refill = now.duration_since(bucket.1).as_secs_f64() * self.rate as f64;
        bucket.0 = (bucket.0 + refill).min(self.rate as f64);
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
    }
}
