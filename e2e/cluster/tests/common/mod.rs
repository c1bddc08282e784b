//! Shared by the test files: the load rate, skip-or-fail for network namespaces, and the
//! final assertion on a checker report.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use strom_e2e_cluster::{History, Report};

/// Messages per second of every scenario's load generator: enough to keep every
/// partition busy through each fault, little enough for two shared cores.
pub const RATE: u32 = 300;
/// Bound for "the cluster makes progress again" and election waits.
pub const FAULT_DEADLINE: Duration = Duration::from_secs(30);

/// With this set to 1 a missing namespace facility fails the test instead of skipping.
pub const REQUIRE_NETNS_ENV: &str = "STROM_E2E_REQUIRE_NETNS";

/// `true` if namespaces work; otherwise prints why the test is skipped (or panics when
/// `STROM_E2E_REQUIRE_NETNS=1`).
pub fn netns_available(test: &str) -> bool {
    available_or_skip(
        test,
        "network namespaces",
        REQUIRE_NETNS_ENV,
        strom_e2e_cluster::netns::probe(),
    )
}

/// With this set to 1 a missing loop-device facility fails the test instead of skipping.
pub const REQUIRE_LOOP_ENV: &str = "STROM_E2E_REQUIRE_LOOP";

/// `true` if a loop-mounted file system can be made; otherwise prints why the test is
/// skipped (or panics when `STROM_E2E_REQUIRE_LOOP=1`).
pub fn small_fs_available(test: &str) -> bool {
    available_or_skip(
        test,
        "loop-mounted file systems",
        REQUIRE_LOOP_ENV,
        strom_e2e_cluster::small_fs::probe(),
    )
}

/// `probed` says whether `facility` works; a failure skips the test with the reason, or
/// fails it when `require_env` is set to 1.
fn available_or_skip(
    test: &str,
    facility: &str,
    require_env: &str,
    probed: Result<(), String>,
) -> bool {
    match probed {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var(require_env).is_ok_and(|v| v == "1") {
                panic!("{test}: {facility} required but unavailable: {reason}");
            }
            eprintln!("SKIPPED {test}: {facility} unavailable: {reason}");
            false
        }
    }
}

pub fn assert_clean(report: &Report, history: &History) {
    eprintln!("checker: {report}\nhistory: {history}");
    assert!(
        report.is_clean(),
        "checker found violations:\n{report}\nhistory: {history}"
    );
    assert!(
        report.acked > 0,
        "the scenario acknowledged nothing: {history}"
    );
}

/// Prefixes a scenario's progress lines with the time since it began, and prints the
/// total when it ends, passed or failed.
pub struct Timer(&'static str, Instant);

impl Timer {
    pub fn start(name: &'static str) -> Timer {
        Timer(name, Instant::now())
    }

    pub fn log(&self, message: impl std::fmt::Display) {
        eprintln!(
            "[{:6.1}s] {}: {message}",
            self.1.elapsed().as_secs_f64(),
            self.0
        );
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!("{} took {:.1?}", self.0, self.1.elapsed());
    }
}
