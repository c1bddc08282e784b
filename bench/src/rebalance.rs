//! Rebalance time of a consumer group (`strom-bench groups`, second part).
//!
//! A group of `--rebalance-members` members (librdkafka, default eager assignors,
//! `heartbeat.interval.ms=--heartbeat-ms`, auto commit off) subscribes to an empty
//! topic of `--partitions` partitions on a broker started with
//! `group.initial.rebalance.delay.ms=0`. Once it is stable, each cycle times two events:
//!
//! - **join**: a new member (already connected: its metadata request was answered)
//!   calls subscribe();
//! - **leave**: the longest-standing member closes cleanly (revoke, LeaveGroup), so the
//!   group rotates through its members and the group's leader is the one that leaves.
//!
//! Each event follows a pause of `--pause-ms` plus a pseudo-random part, because a
//! rebalance leaves the members' heartbeats in step, and a fixed pause would put every
//! event at the same heartbeat phase. Members learn of a rebalance only from their next
//! heartbeat, and librdkafka (classic protocol) decides whether a heartbeat is due only
//! when its main thread wakes, which in an idle consumer happens every 500 ms (its
//! max.poll.interval.ms check); so the series runs twice, as configured and with a
//! `statistics.interval.ms` timer (`--wakeup-ms`) that wakes the main thread often
//! enough for `heartbeat.interval.ms` to hold. The gaps between each member's logged
//! HeartbeatRequests are reported.
//!
//! An event ends when every member of the group after it has run its post_rebalance
//! Assign callback after the event and their assignments hold every partition exactly
//! once; its time is the last of those callbacks. Three more clocks sit beside it:
//! - librdkafka's own round trip of each JoinGroup, SyncGroup and Heartbeat (from its
//!   `debug=protocol` log lines), per member;
//! - the broker's log lines "preparing rebalance", "rebalance: join phase complete" and
//!   "group is stable" for the group (wall-clock timestamps, same machine clock);
//! - from these, the broker's share of the critical path: the shortest JoinGroup and
//!   shortest SyncGroup round trip of the rebalance. The last member to rejoin
//!   completes the join phase, so its JoinGroup is never parked; the leader's SyncGroup
//!   completes the sync phase, so the shortest SyncGroup is never parked either. Each
//!   is the broker's own time for that step (persisting the generation included) plus
//!   loopback and librdkafka's thread hand-offs: an upper bound on broker-side delay.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use crate::groups::{self, GroupArgs};
use crate::member::{self, Board, ClockPair, MemberCtx, MemberSettings, MemberView};

/// The target from the consumer-group issue: a rebalance completes within the
/// clients' join-group round trip plus this much broker-side delay.
pub const BROKER_DELAY_TARGET_MS: f64 = 100.0;

#[derive(Debug, Clone, Default, Serialize)]
pub struct BrokerTimeline {
    /// Event to the broker's "preparing rebalance" (it has heard of the event).
    pub prepare_ms: Option<f64>,
    /// Event to "rebalance: join phase complete" (every member has rejoined).
    pub join_complete_ms: Option<f64>,
    /// Event to "group is stable" (the leader's SyncGroup has arrived).
    pub stable_ms: Option<f64>,
    /// "preparing rebalance" lines for the group during the event (1 = one rebalance).
    pub rebalances: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RebalanceEvent {
    pub kind: &'static str,
    pub cycle: usize,
    pub members_after: usize,
    /// Event to every partition owned again; None if it did not happen in time.
    pub total_ms: Option<f64>,
    /// The generation the members' JoinGroup responses carried (the highest seen).
    pub generation: Option<i32>,
    /// Successful JoinGroup round trips of the members during the event.
    pub join_rtt_ms: Vec<f64>,
    pub sync_rtt_ms: Vec<f64>,
    pub heartbeat_rtt_max_ms: Option<f64>,
    /// Shortest JoinGroup plus shortest SyncGroup round trip (see the module doc).
    pub broker_side_ms: Option<f64>,
    pub broker: BrokerTimeline,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stat {
    pub n: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

impl Stat {
    fn of(v: impl IntoIterator<Item = f64>) -> Stat {
        let mut v: Vec<f64> = v.into_iter().collect();
        v.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = |q: f64| {
            v.get(((q * v.len() as f64).ceil() as usize).max(1) - 1)
                .copied()
        };
        Stat {
            n: v.len(),
            p90: rank(0.9),
            max: v.last().copied(),
            p50: crate::median(v),
        }
    }
}

/// p50 and max over the events of one kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub events: usize,
    pub completed: usize,
    pub total_ms: Stat,
    /// The longest JoinGroup round trip of each event: the clients' join-group round trip.
    pub join_rtt_max_ms: Stat,
    /// The shortest JoinGroup round trip of each event (never parked).
    pub join_rtt_min_ms: Stat,
    pub sync_rtt_max_ms: Stat,
    pub sync_rtt_min_ms: Stat,
    pub broker_side_ms: Stat,
    /// total − longest JoinGroup round trip, per event: what the target allows 100 ms for.
    pub beyond_join_rtt_ms: Stat,
    /// Events with total ≤ longest JoinGroup round trip + BROKER_DELAY_TARGET_MS.
    pub within_target: usize,
    pub broker_prepare_ms: Stat,
    pub broker_join_complete_ms: Stat,
    pub broker_stable_ms: Stat,
    /// Events the broker handled in more than one rebalance.
    pub multi_rebalance_events: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RebalanceResult {
    pub variant: String,
    pub group_id: String,
    /// librdkafka properties given to every member beyond the harness's own.
    pub member_config: Vec<(String, String)>,
    pub topic: String,
    pub partitions: i32,
    pub members: usize,
    pub heartbeat_ms: u64,
    pub session_timeout_ms: u64,
    pub pause_ms: u64,
    pub pause_jitter_ms: u64,
    /// subscribe() of the first members until the group first covered every partition.
    pub formation_ms: Option<f64>,
    /// Gaps between a member's consecutive HeartbeatRequests while the group was
    /// stable (between events), as librdkafka logged them (about ±10 ms).
    pub heartbeat_gap_ms: Stat,
    pub events: Vec<RebalanceEvent>,
    pub join: Summary,
    pub leave: Summary,
    pub errors: Vec<String>,
}

/// A member whose thread polls it (serving its rebalance callbacks) until told to stop;
/// the thread then hands the consumer back for a timed close.
struct Running {
    idx: usize,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<BaseConsumer<MemberCtx>>>,
}

/// Creates a member, waits until it is connected, subscribes it (the join event starts
/// just before) and starts its polling thread.
fn start_member(
    s: &MemberSettings,
    board: &Arc<Board>,
    topic: &str,
    deadline: Instant,
) -> Result<(Running, ClockPair)> {
    let idx = board.add();
    let consumer = member::create(s, board, idx)?;
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("member {idx}: first metadata request"))?;
    let t0 = ClockPair::now();
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("member {idx}: subscribe"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = thread::Builder::new()
        .name(format!("member-{idx}"))
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if Instant::now() >= deadline {
                    bail!("member {idx}: run deadline passed");
                }
                // Short, so librdkafka's queued log lines are timestamped closely.
                if let Some(Err(e)) = consumer.poll(Duration::from_millis(10)) {
                    consumer.context().note_error(format!("poll: {e}"));
                }
            }
            Ok(consumer)
        })
        .context("spawning a member thread")?;
    Ok((Running { idx, stop, handle }, t0))
}

/// Stops a member's polling thread and returns its consumer.
fn stop_member(m: Running) -> Result<BaseConsumer<MemberCtx>> {
    m.stop.store(true, Ordering::Relaxed);
    m.handle
        .join()
        .map_err(|_| anyhow!("member {} thread panicked", m.idx))?
}

/// The instant every member in `live` held its part of a full assignment given after
/// `since`: the last of their Assign callbacks. None if not (yet) covered.
fn covered_at(
    members: &[MemberView],
    live: &[usize],
    partitions: i32,
    since: Instant,
) -> Option<Instant> {
    member::covered(members, live, partitions, since)
        .then(|| {
            live.iter()
                .filter_map(|&i| members.get(i)?.assigned_at)
                .max()
        })
        .flatten()
}

/// One series of join/leave cycles with a fresh group (`run_no` keeps group ids apart);
/// `extra` librdkafka properties go to every member.
pub fn run(
    bootstrap: &str,
    topic: &str,
    g: &GroupArgs,
    run_no: usize,
    variant: &str,
    extra: Vec<(String, String)>,
    broker_log: &Path,
) -> Result<RebalanceResult> {
    let settings = MemberSettings {
        bootstrap: bootstrap.to_string(),
        group_id: format!("strom-bench-rebalance-{}-{run_no}", std::process::id()),
        heartbeat_ms: g.heartbeat_ms,
        session_timeout_ms: g.session_timeout_ms,
        auto_commit: false,
        protocol_debug: true,
        extra,
    };
    let board = Board::new();
    let step_limit = Duration::from_secs(g.rebalance_timeout_secs);
    let max_pause = Duration::from_millis(g.pause_ms + g.pause_jitter_ms);
    let mut jitter = Jitter(0x2545_F491_4F6C_DD1D ^ run_no as u64);
    let mut pause = || {
        let ms = g.pause_ms + jitter.next() % g.pause_jitter_ms.max(1);
        thread::sleep(Duration::from_millis(ms));
    };
    // Every member thread stops by this deadline whatever happens.
    let deadline = Instant::now()
        + (step_limit + max_pause + Duration::from_secs(12)) * (2 * g.rebalances as u32 + 2);
    let mut errors = Vec::new();
    let mut live: Vec<Running> = Vec::new();
    let mut marks: Vec<(&'static str, usize, usize, ClockPair, Option<Instant>)> = Vec::new();

    crate::phase(&format!(
        "rebalance ({variant}): forming a group of {} (heartbeat.interval.ms={}; {:?})",
        g.rebalance_members, g.heartbeat_ms, settings.extra
    ));
    let formed_from = Instant::now();
    let mut formation = None;
    // Whatever fails in here, every member started is stopped and closed below.
    let outcome = (|| -> Result<()> {
        for _ in 0..g.rebalance_members {
            live.push(start_member(&settings, &board, topic, deadline)?.0);
        }
        let ids: Vec<usize> = live.iter().map(|m| m.idx).collect();
        formation = board
            .wait_until(Instant::now() + step_limit, |m| {
                member::covered(m, &ids, g.partitions, formed_from)
            })
            .and_then(|_| covered_at(&board.lock(), &ids, g.partitions, formed_from))
            .map(|t| ms(t - formed_from));
        if formation.is_none() {
            bail!(
                "the first {} members never covered every partition",
                ids.len()
            );
        }
        for cycle in 0..g.rebalances {
            pause();
            let (m, t0) = start_member(&settings, &board, topic, deadline)?;
            live.push(m);
            let done = wait_event(&board, &live, g.partitions, t0, step_limit);
            marks.push(("join", cycle, live.len(), t0, done));
            eprintln!(
                "  cycle {cycle}: join {}",
                fmt_ms(done.map(|d| ms(d - t0.at)))
            );

            pause();
            let leaving = live.remove(0);
            let idx = leaving.idx;
            let consumer = stop_member(leaving)?;
            let t0 = ClockPair::now();
            board.mark_gone(idx);
            let closed = member::close(&consumer, Duration::from_secs(10));
            let done = wait_event(&board, &live, g.partitions, t0, step_limit);
            marks.push(("leave", cycle, live.len(), t0, done));
            eprintln!(
                "  cycle {cycle}: leave {}",
                fmt_ms(done.map(|d| ms(d - t0.at)))
            );
            match closed {
                Ok(true) => drop(consumer),
                Ok(false) => {
                    errors.push(format!("member {idx} did not close within 10 s"));
                    std::mem::forget(consumer);
                }
                Err(e) => {
                    errors.push(format!("member {idx}: {e:#}"));
                    std::mem::forget(consumer);
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        errors.push(format!("{e:#}"));
    }
    let mut rest = Vec::new();
    for m in live {
        match stop_member(m) {
            Ok(c) => rest.push(c),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    groups::close_all(rest, &mut errors);

    let members = board.lock().clone();
    for (i, m) in members.iter().enumerate() {
        errors.extend(m.errors.iter().map(|e| format!("member {i}: {e}")));
    }
    let log = BrokerLog::read(broker_log, &settings.group_id);
    if log.lines.is_empty() {
        errors.push(format!(
            "no group lines for {} in the broker log {}",
            settings.group_id,
            broker_log.display()
        ));
    }
    // Stable stretches: after the group formed or an event ended, until the next event.
    let mut stable = Vec::new();
    let mut from = formation.map(|f| formed_from + Duration::from_secs_f64(f / 1e3));
    for (_, _, _, t0, done) in &marks {
        if let Some(f) = from {
            stable.push((f, t0.at));
        }
        from = *done;
    }
    let heartbeat_gap_ms = Stat::of(members.iter().flat_map(|m| {
        m.heartbeats_sent
            .windows(2)
            .filter(|w| stable.iter().any(|(a, b)| w[0] >= *a && w[1] <= *b))
            .map(|w| ms(w[1] - w[0]))
            .collect::<Vec<_>>()
    }));
    let events: Vec<RebalanceEvent> = marks
        .into_iter()
        .map(|(kind, cycle, members_after, t0, done)| {
            event(kind, cycle, members_after, t0, done, &members, &log)
        })
        .collect();
    for e in events.iter().filter(|e| e.total_ms.is_none()) {
        errors.push(format!(
            "{} in cycle {}: partitions not all owned again within {} s",
            e.kind, e.cycle, g.rebalance_timeout_secs
        ));
    }
    Ok(RebalanceResult {
        variant: variant.to_string(),
        group_id: settings.group_id.clone(),
        member_config: settings.extra.clone(),
        topic: topic.to_string(),
        partitions: g.partitions,
        members: g.rebalance_members,
        heartbeat_ms: g.heartbeat_ms,
        session_timeout_ms: g.session_timeout_ms,
        pause_ms: g.pause_ms,
        pause_jitter_ms: g.pause_jitter_ms,
        formation_ms: formation,
        heartbeat_gap_ms,
        join: summary(&events, "join"),
        leave: summary(&events, "leave"),
        events,
        errors,
    })
}

/// xorshift64: reproducible pauses.
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn wait_event(
    board: &Board,
    live: &[Running],
    partitions: i32,
    t0: ClockPair,
    limit: Duration,
) -> Option<Instant> {
    let ids: Vec<usize> = live.iter().map(|m| m.idx).collect();
    board.wait_until(t0.at + limit, |m| {
        member::covered(m, &ids, partitions, t0.at)
    })?;
    covered_at(&board.lock(), &ids, partitions, t0.at)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("not completed".into(), |v| format!("{v:.1} ms"))
}

fn event(
    kind: &'static str,
    cycle: usize,
    members_after: usize,
    t0: ClockPair,
    done: Option<Instant>,
    members: &[MemberView],
    log: &BrokerLog,
) -> RebalanceEvent {
    // Log lines arrive with the member's next poll, possibly after its Assign callback.
    let end = done.unwrap_or(t0.at) + Duration::from_millis(100);
    let in_window = |at: Instant| at >= t0.at && at <= end;
    let mut join = Vec::new();
    let mut sync = Vec::new();
    let mut heartbeat: Option<f64> = None;
    let mut generation = None;
    for m in members {
        for rt in m.round_trips.iter().filter(|r| in_window(r.at)) {
            let outcome = rt.outcome.as_deref().unwrap_or("");
            match rt.api.as_str() {
                "JoinGroup" => {
                    if let Some(g) = outcome.parse::<i32>().ok().filter(|g| *g >= 0) {
                        generation = generation.max(Some(g));
                        join.push((g, rt.rtt_ms));
                    }
                }
                "SyncGroup" if outcome == "Success" => sync.push(rt.rtt_ms),
                "Heartbeat" => {
                    heartbeat = Some(heartbeat.map_or(rt.rtt_ms, |h: f64| h.max(rt.rtt_ms)))
                }
                _ => {}
            }
        }
    }
    // Only the generation the event ended in (an earlier one would be a second round).
    let join_rtt_ms: Vec<f64> = join
        .iter()
        .filter(|(g, _)| Some(*g) == generation)
        .map(|(_, r)| *r)
        .collect();
    let min = |v: &[f64]| v.iter().copied().reduce(f64::min);
    let broker_side_ms = match (min(&join_rtt_ms), min(&sync)) {
        (Some(j), Some(s)) if done.is_some() => Some(j + s),
        _ => None,
    };
    let done_wall = done.map(|d| t0.wall + (d - t0.at));
    RebalanceEvent {
        kind,
        cycle,
        members_after,
        total_ms: done.map(|d| ms(d - t0.at)),
        generation,
        join_rtt_ms,
        sync_rtt_ms: sync,
        heartbeat_rtt_max_ms: heartbeat,
        broker_side_ms,
        broker: log.timeline(t0, done_wall),
    }
}

fn summary(events: &[RebalanceEvent], kind: &str) -> Summary {
    let ev: Vec<&RebalanceEvent> = events.iter().filter(|e| e.kind == kind).collect();
    let done: Vec<&RebalanceEvent> = ev
        .iter()
        .copied()
        .filter(|e| e.total_ms.is_some())
        .collect();
    let max_of = |v: &[f64]| v.iter().copied().reduce(f64::max);
    let min_of = |v: &[f64]| v.iter().copied().reduce(f64::min);
    Summary {
        events: ev.len(),
        completed: done.len(),
        total_ms: Stat::of(done.iter().filter_map(|e| e.total_ms)),
        join_rtt_max_ms: Stat::of(done.iter().filter_map(|e| max_of(&e.join_rtt_ms))),
        join_rtt_min_ms: Stat::of(done.iter().filter_map(|e| min_of(&e.join_rtt_ms))),
        sync_rtt_max_ms: Stat::of(done.iter().filter_map(|e| max_of(&e.sync_rtt_ms))),
        sync_rtt_min_ms: Stat::of(done.iter().filter_map(|e| min_of(&e.sync_rtt_ms))),
        broker_side_ms: Stat::of(done.iter().filter_map(|e| e.broker_side_ms)),
        beyond_join_rtt_ms: Stat::of(
            done.iter()
                .filter_map(|e| Some(e.total_ms? - max_of(&e.join_rtt_ms)?)),
        ),
        within_target: done
            .iter()
            .filter(|e| {
                matches!((e.total_ms, max_of(&e.join_rtt_ms)),
                    (Some(t), Some(j)) if t <= j + BROKER_DELAY_TARGET_MS)
            })
            .count(),
        broker_prepare_ms: Stat::of(done.iter().filter_map(|e| e.broker.prepare_ms)),
        broker_join_complete_ms: Stat::of(done.iter().filter_map(|e| e.broker.join_complete_ms)),
        broker_stable_ms: Stat::of(done.iter().filter_map(|e| e.broker.stable_ms)),
        multi_rebalance_events: done.iter().filter(|e| e.broker.rebalances > 1).count(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Prepare,
    JoinComplete,
    Stable,
}

/// The broker's group log lines for one group, with their timestamps.
struct BrokerLog {
    lines: Vec<(SystemTime, Mark)>,
}

impl BrokerLog {
    /// Reads the broker's plain-text log (`2026-11-21T03:48:55.383835Z  INFO target:
    /// message field=value ...`); unreadable lines are skipped.
    fn read(path: &Path, group: &str) -> BrokerLog {
        let text = std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let field = format!("group={group}");
        let lines = text
            .lines()
            .map(crate::broker::strip_ansi)
            .filter(|l| l.split_whitespace().any(|w| w == field))
            .filter_map(|l| {
                let mark = if l.contains("preparing rebalance") {
                    Mark::Prepare
                } else if l.contains("rebalance: join phase complete") {
                    Mark::JoinComplete
                } else if l.contains("group is stable") {
                    Mark::Stable
                } else {
                    return None;
                };
                Some((parse_utc(l.split_whitespace().next()?)?, mark))
            })
            .collect();
        BrokerLog { lines }
    }

    /// The broker's marks between the event and its end (plus 1 s of slack for lines
    /// written just after the clients saw the outcome).
    fn timeline(&self, t0: ClockPair, done: Option<SystemTime>) -> BrokerTimeline {
        let end = done.unwrap_or(t0.wall) + Duration::from_secs(1);
        let window: Vec<&(SystemTime, Mark)> = self
            .lines
            .iter()
            .filter(|(t, _)| *t >= t0.wall && *t <= end)
            .collect();
        let first_after = |mark: Mark, after: Option<SystemTime>| {
            window
                .iter()
                .find(|(t, m)| *m == mark && after.is_none_or(|a| *t >= a))
                .map(|(t, _)| *t)
        };
        let prepare = first_after(Mark::Prepare, None);
        let join = prepare.and_then(|p| first_after(Mark::JoinComplete, Some(p)));
        let stable = join.and_then(|j| first_after(Mark::Stable, Some(j)));
        let within = |t: &SystemTime| done.is_none_or(|d| *t <= d);
        BrokerTimeline {
            prepare_ms: prepare.map(|t| t0.ms_to(t)),
            join_complete_ms: join.map(|t| t0.ms_to(t)),
            stable_ms: stable.map(|t| t0.ms_to(t)),
            rebalances: window
                .iter()
                .filter(|(t, m)| *m == Mark::Prepare && within(t))
                .count(),
        }
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac]Z` (UTC).
fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<u64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let nanos: u64 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        digits.parse::<u64>().ok()? * 10u64.pow(9 - digits.len() as u32)
    };
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_timestamps() {
        let t = parse_utc("2026-11-21T03:48:55.383835Z").expect("parses");
        let d = t.duration_since(UNIX_EPOCH).expect("after the epoch");
        // date -u -d 2026-11-21T03:48:55Z +%s
        assert_eq!(d.as_secs(), 1_795_232_935);
        assert_eq!(d.subsec_micros(), 383_835);
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert!(parse_utc("not a time").is_none());
    }
}
