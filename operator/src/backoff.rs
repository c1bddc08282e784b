//! Back-off per object after consecutive failures (Kubernetes errors and broker refusals
//! alike): 5 s doubling per failure, at most 5 minutes, so an API outage or a refused
//! object never turns into a hot loop, and a success starts over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Consecutive failures per object key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Failures(Mutex<HashMap<String, u32>>);

impl Failures {
    /// Counts one more failure of `key`; returns its attempt number and the delay before
    /// the next try.
    pub fn failed(&self, key: &str) -> (u32, Duration) {
        let attempt = match self.0.lock() {
            Ok(mut failures) => {
                let n = failures.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            // A panic elsewhere poisoned the map: back off as for a first failure.
            Err(_) => 1,
        };
        (attempt, delay(attempt))
    }

    pub fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.0.lock() {
            failures.remove(key);
        }
    }
}

/// The delay after `attempt` consecutive failures.
pub fn delay(attempt: u32) -> Duration {
    let secs = 5u64.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_and_caps() {
        assert_eq!(delay(1), Duration::from_secs(5));
        assert_eq!(delay(2), Duration::from_secs(10));
        assert_eq!(delay(4), Duration::from_secs(40));
        assert_eq!(delay(30), Duration::from_secs(300));
    }

    #[test]
    fn a_success_starts_over() {
        let failures = Failures::default();
        assert_eq!(failures.failed("a"), (1, Duration::from_secs(5)));
        assert_eq!(failures.failed("a"), (2, Duration::from_secs(10)));
        assert_eq!(failures.failed("b").0, 1);
        failures.succeeded("a");
        assert_eq!(failures.failed("a").0, 1);
    }
}
