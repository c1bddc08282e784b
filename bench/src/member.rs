//! A consumer-group member as the group benchmarks see it: a librdkafka consumer
//! whose context records, on a board shared by the whole group, each assignment it
//! receives (the post_rebalance callback) and, when protocol debugging is on, the
//! round trip of each group request it sends, as librdkafka itself measured it.

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use serde::Serialize;

/// One group request's round trip, from librdkafka's protocol debug log
/// (`Received JoinGroupResponse (v5, 130 bytes, CorrId 7, rtt 101.46ms)`): from the
/// request being written to the socket to its response being read.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrip {
    pub api: String,
    /// When the response was read.
    #[serde(skip)]
    pub at: Instant,
    pub rtt_ms: f64,
    /// JoinGroup: the generation the response carried (-1 for an error such as
    /// MEMBER_ID_REQUIRED). SyncGroup: the error string ("Success").
    pub outcome: Option<String>,
}

/// What one member has reported so far.
#[derive(Debug, Default, Clone)]
pub struct MemberView {
    /// The partitions of its current assignment (empty after a revoke).
    pub partitions: BTreeSet<i32>,
    /// When its last Assign callback ran.
    pub assigned_at: Option<Instant>,
    pub assigns: u32,
    pub revokes: u32,
    /// Set when the member has closed (LeaveGroup sent) or is closing.
    pub gone: bool,
    pub round_trips: Vec<RoundTrip>,
    /// When each HeartbeatRequest was logged as sent (see `MemberCtx::log`).
    pub heartbeats_sent: Vec<Instant>,
    pub errors: Vec<String>,
}

/// The group's members, written by their librdkafka callbacks and read by the harness.
pub struct Board {
    members: Mutex<Vec<MemberView>>,
    changed: Condvar,
}

impl Board {
    pub fn new() -> Arc<Board> {
        Arc::new(Board {
            members: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        })
    }

    /// Adds a member slot and returns its index.
    pub fn add(&self) -> usize {
        let mut m = self.lock();
        m.push(MemberView::default());
        m.len() - 1
    }

    pub fn lock(&self) -> MutexGuard<'_, Vec<MemberView>> {
        // A panicking callback thread must not hide the board from the harness.
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, idx: usize, f: impl FnOnce(&mut MemberView)) {
        let mut m = self.lock();
        if let Some(v) = m.get_mut(idx) {
            f(v);
        }
        drop(m);
        self.changed.notify_all();
    }

    pub fn mark_gone(&self, idx: usize) {
        self.update(idx, |v| v.gone = true);
    }

    /// Waits until `done` holds for the members (checked at every change), at most
    /// until `deadline`. Returns the instant it first held, or None on timeout.
    pub fn wait_until(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&[MemberView]) -> bool,
    ) -> Option<Instant> {
        let mut m = self.lock();
        loop {
            if done(&m) {
                return Some(Instant::now());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            m = self
                .changed
                .wait_timeout(m, left.min(Duration::from_millis(50)))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// True when the members in `live` have all been assigned at or after `since` and
/// their assignments together hold each of `0..partitions` exactly once.
pub fn covered(members: &[MemberView], live: &[usize], partitions: i32, since: Instant) -> bool {
    let mut owned = BTreeSet::new();
    let mut count = 0usize;
    for &i in live {
        let Some(m) = members.get(i) else {
            return false;
        };
        if m.assigned_at.is_none_or(|t| t < since) {
            return false;
        }
        count += m.partitions.len();
        owned.extend(m.partitions.iter().copied());
    }
    count == partitions as usize && owned.len() == partitions as usize
}

pub struct MemberCtx {
    board: Arc<Board>,
    idx: usize,
}

impl ClientContext for MemberCtx {
    /// rdkafka queues librdkafka's log lines and hands them over in poll(), so `at` is
    /// when the member's thread polled them, not when they were written.
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, line: &str) {
        let at = Instant::now();
        // Lines read "[thrd:GroupCoordinator]: GroupCoordinator/0: Received ...".
        if line.contains("Sent HeartbeatRequest") {
            self.board.update(self.idx, |v| v.heartbeats_sent.push(at));
        } else if let Some((_, rest)) = line.split_once("Received ") {
            let Some((api, rest)) = rest.split_once("Response (") else {
                return;
            };
            if !matches!(api, "JoinGroup" | "SyncGroup" | "Heartbeat" | "LeaveGroup") {
                return;
            }
            let Some(rtt_ms) = rest
                .split_once("rtt ")
                .and_then(|(_, r)| r.strip_suffix("ms)"))
                .and_then(|r| r.parse::<f64>().ok())
            else {
                return;
            };
            self.board.update(self.idx, |v| {
                v.round_trips.push(RoundTrip {
                    api: api.to_string(),
                    at,
                    rtt_ms,
                    outcome: None,
                })
            });
        } else if let Some((_, rest)) = line.split_once("JoinGroup response: GenerationId ") {
            // Logged by librdkafka after the RECV line of the same response.
            let generation = rest.split(',').next().unwrap_or("").trim().to_string();
            self.label_last("JoinGroup", generation);
        } else if let Some((_, rest)) = line.split_once("SyncGroup response: ") {
            let outcome = rest.split(" (").next().unwrap_or("").to_string();
            self.label_last("SyncGroup", outcome);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let e = format!("{error}: {reason}");
        self.board.update(self.idx, |v| v.errors.push(e));
    }

    /// Statistics are only ever turned on to wake librdkafka's main thread
    /// (`--wakeup-ms`); nobody reads them.
    fn stats_raw(&self, _statistics: &[u8]) {}
}

impl MemberCtx {
    pub fn note_error(&self, e: String) {
        self.board.update(self.idx, |v| v.errors.push(e));
    }

    fn label_last(&self, api: &str, outcome: String) {
        self.board.update(self.idx, |v| {
            if let Some(rt) = v
                .round_trips
                .iter_mut()
                .rev()
                .find(|r| r.api == api && r.outcome.is_none())
            {
                rt.outcome = Some(outcome);
            }
        });
    }
}

impl ConsumerContext for MemberCtx {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let at = Instant::now();
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                self.board.update(self.idx, |v| {
                    v.partitions = parts;
                    v.assigned_at = Some(at);
                    v.assigns += 1;
                });
            }
            Rebalance::Revoke(_) => self.board.update(self.idx, |v| {
                v.partitions.clear();
                v.revokes += 1;
            }),
            Rebalance::Error(e) => {
                let e = format!("rebalance error: {e}");
                self.board.update(self.idx, |v| v.errors.push(e));
            }
        }
    }
}

/// Settings of every member of a benchmark group.
#[derive(Debug, Clone)]
pub struct MemberSettings {
    pub bootstrap: String,
    pub group_id: String,
    pub heartbeat_ms: u64,
    pub session_timeout_ms: u64,
    pub auto_commit: bool,
    /// librdkafka `debug=protocol,cgrp`, for the group requests' round trips.
    pub protocol_debug: bool,
    /// Further librdkafka properties (`--member-config`), set last.
    pub extra: Vec<(String, String)>,
}

/// Creates a member (not yet subscribed) whose callbacks write to slot `idx` of `board`.
pub fn create(
    s: &MemberSettings,
    board: &Arc<Board>,
    idx: usize,
) -> Result<BaseConsumer<MemberCtx>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.bootstrap)
        .set("group.id", &s.group_id)
        .set("client.id", format!("strom-bench-member-{idx}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", s.auto_commit.to_string())
        .set("heartbeat.interval.ms", s.heartbeat_ms.to_string())
        .set("session.timeout.ms", s.session_timeout_ms.to_string());
    if s.protocol_debug {
        c.set("debug", "protocol,cgrp")
            .set_log_level(RDKafkaLogLevel::Debug);
    }
    for (k, v) in &s.extra {
        c.set(k, v);
    }
    c.create_with_context(MemberCtx {
        board: board.clone(),
        idx,
    })
    .with_context(|| format!("creating group member {idx}"))
}

/// Clean close: revokes, commits if auto commit is on, sends LeaveGroup, serving the
/// callbacks meanwhile; bounded by `limit`. Returns false if it did not finish.
pub fn close(consumer: &BaseConsumer<MemberCtx>, limit: Duration) -> Result<bool> {
    let t0 = Instant::now();
    consumer.close_queue().context("closing the consumer")?;
    while !consumer.closed() {
        if t0.elapsed() > limit {
            return Ok(false);
        }
        let _ = consumer.poll(Duration::from_millis(20));
    }
    Ok(true)
}

/// Wall-clock reading and its Instant, to place broker log lines on the harness's clock.
#[derive(Debug, Clone, Copy)]
pub struct ClockPair {
    pub at: Instant,
    pub wall: SystemTime,
}

impl ClockPair {
    pub fn now() -> ClockPair {
        ClockPair {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Milliseconds from this reading to wall-clock time `t` (negative if before).
    pub fn ms_to(&self, t: SystemTime) -> f64 {
        match t.duration_since(self.wall) {
            Ok(d) => d.as_secs_f64() * 1e3,
            Err(e) => -e.duration().as_secs_f64() * 1e3,
        }
    }
}
