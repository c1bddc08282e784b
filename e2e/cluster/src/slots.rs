//! Limits how many clusters run at once inside one test process (`STROM_E2E_PARALLEL`,
//! default 1): a fault scenario's timing assumptions (3 s session timeouts, 4 s replica
//! lag) do not survive several clusters fighting over two cores.

use std::sync::{Condvar, Mutex};

pub const PARALLEL_ENV: &str = "STROM_E2E_PARALLEL";

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

fn limit() -> usize {
    std::env::var(PARALLEL_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// Held for a cluster's lifetime. Taking a second slot in the same thread while holding
/// one deadlocks when the limit is 1: a scenario runs one cluster.
pub struct SlotGuard(());

impl SlotGuard {
    pub fn acquire() -> SlotGuard {
        let limit = limit();
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= limit {
            running = FREED.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        SlotGuard(())
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        FREED.notify_one();
    }
}
