//! Polling with a deadline: every correctness wait in the harness goes through here.

use std::time::{Duration, Instant};

use crate::error::HarnessError;

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `check` until it returns `Ok`, or fails with the last `Err` observation once
/// `timeout` has passed. Polls every 50 ms.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> Result<T, String>,
) -> Result<T, HarnessError> {
    wait_until_every(what, timeout, POLL_INTERVAL, check)
}

/// [`wait_until`] with its own polling interval, for checks that cost the cluster work
/// (admin requests) or fill its logs.
pub fn wait_until_every<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, HarnessError> {
    let started = Instant::now();
    loop {
        let last = match check() {
            Ok(v) => return Ok(v),
            Err(observation) => observation,
        };
        if started.elapsed() >= timeout {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                after: timeout,
                last,
            });
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_once_ready_and_times_out_with_last_observation() {
        let mut calls = 0;
        let v = wait_until("three calls", Duration::from_secs(5), || {
            calls += 1;
            if calls == 3 {
                Ok(calls)
            } else {
                Err(format!("call {calls}"))
            }
        })
        .unwrap();
        assert_eq!(v, 3);

        let err = wait_until::<()>("never", Duration::from_millis(120), || {
            Err("still no".into())
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("never") && text.contains("still no"),
            "{text}"
        );
    }
}
