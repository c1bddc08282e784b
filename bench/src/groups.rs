//! `strom-bench groups`: consumer-group benchmarks.
//!
//! 1. **Group consume throughput.** A topic of `--partitions` partitions is filled with
//!    `--produce-mib` of records (the produce run of the main suite, records spread
//!    round-robin), read once by one assigned consumer (the main suite's consume run,
//!    over every partition), then by a group of `--members` members, each a librdkafka
//!    consumer on its own thread, until every record has been read. Throughput runs
//!    from the first assignment to the last record; the time until the group was first
//!    stable (every member assigned, every partition owned once) runs from subscribe().
//!    This broker runs with its configured `group.initial.rebalance.delay.ms`.
//! 2. **Rebalance time** (`rebalance.rs`), on a second broker started with
//!    `group.initial.rebalance.delay.ms=0`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use serde::Serialize;

use crate::broker::{Broker, CpuMeter, CpuUse};
use crate::kafka::{self, ProducerSettings};
use crate::member::{self, Board, MemberCtx, MemberSettings};
use crate::{phase, report, Args, Report};

/// Kafka's (and the broker's) default group.initial.rebalance.delay.ms.
const DEFAULT_INITIAL_DELAY_MS: u64 = 3000;

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct GroupArgs {
    /// Members of the consuming group, each a librdkafka consumer on its own thread.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Partitions of the pre-filled topic and of the rebalance topic.
    #[arg(long, default_value_t = 12)]
    pub partitions: i32,
    /// Members' heartbeat.interval.ms: members learn of a rebalance on their next
    /// heartbeat, so this bounds how soon they rejoin.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_ms: u64,
    /// Members' session.timeout.ms (librdkafka's default).
    #[arg(long, default_value_t = 45_000)]
    pub session_timeout_ms: u64,
    /// Rebalance benchmark: join/leave cycles; each times a member joining a stable
    /// group and then a member leaving it (clean close, LeaveGroup).
    #[arg(long, default_value_t = 10)]
    pub rebalances: usize,
    /// Rebalance benchmark: members of the stable group each event starts from.
    #[arg(long, default_value_t = 3)]
    pub rebalance_members: usize,
    /// Rebalance benchmark: pause in a stable group before each event, in ms; a
    /// pseudo-random 0..--pause-jitter-ms is added, so events fall at every phase of
    /// the members' heartbeats (which a rebalance leaves in step).
    #[arg(long, default_value_t = 1000)]
    pub pause_ms: u64,
    /// Rebalance benchmark: upper bound of the pseudo-random part of each pause, in ms.
    #[arg(long, default_value_t = 1000)]
    pub pause_jitter_ms: u64,
    /// Rebalance benchmark: upper bound on any one rebalance, in seconds.
    #[arg(long, default_value_t = 30)]
    pub rebalance_timeout_secs: u64,
    /// Rebalance benchmark: also run it with librdkafka's statistics.interval.ms set
    /// to this many ms (0: don't). librdkafka (classic protocol) checks whether a
    /// heartbeat is due only when its main thread wakes up, which an idle consumer's
    /// does every 500 ms (its max.poll.interval.ms check), so heartbeat.interval.ms
    /// below that is not honoured; a statistics timer wakes it more often.
    #[arg(long, default_value_t = 100)]
    pub wakeup_ms: u64,
    /// Extra librdkafka property for every group member (repeatable), e.g.
    /// `partition.assignment.strategy=cooperative-sticky`.
    #[arg(long = "member-config", value_name = "KEY=VALUE")]
    pub member_config: Vec<String>,
    /// Skip the group consume throughput run.
    #[arg(long)]
    pub skip_consume: bool,
    /// Skip the rebalance runs.
    #[arg(long)]
    pub skip_rebalance: bool,
}

pub fn run(
    args: &Args,
    g: &GroupArgs,
    broker_path: &Path,
    base_dir: &Path,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    if g.members == 0 || g.rebalance_members == 0 || g.partitions <= 0 {
        bail!("--members, --rebalance-members and --partitions must be at least 1");
    }
    if !g.skip_consume {
        consume_part(args, g, broker_path, base_dir, pool, report)?;
    }
    if !g.skip_rebalance {
        phase("rebalance: broker with group.initial.rebalance.delay.ms=0");
        let mut overrides = args.overrides.clone();
        overrides.push("group.initial.rebalance.delay.ms=0".into());
        let mut b = start(broker_path, base_dir, &overrides, args.keep_data)?;
        let topic = "bench-rebalance";
        kafka::create_topic(&b.bootstrap(), topic, g.partitions, 1)?;
        let extra = parse_member_config(&g.member_config)?;
        let mut variants = vec![("librdkafka as configured", extra.clone())];
        if g.wakeup_ms > 0 {
            let mut woken = extra;
            woken.push(("statistics.interval.ms".into(), g.wakeup_ms.to_string()));
            variants.push(("main thread woken by statistics.interval.ms", woken));
        }
        for (n, (variant, extra)) in variants.into_iter().enumerate() {
            let r =
                crate::rebalance::run(&b.bootstrap(), topic, g, n, variant, extra, b.log_path());
            b.check_alive()?;
            let r = r.with_context(|| format!("rebalance runs ({variant})"))?;
            report.errors.extend(
                r.errors
                    .iter()
                    .map(|e| format!("rebalance ({variant}): {e}")),
            );
            report.rebalance.push(r);
        }
        report.shutdown_ms = b.shutdown(Duration::from_secs(10)).map(crate::broker::ms);
    }
    Ok(())
}

fn start(broker_path: &Path, base_dir: &Path, overrides: &[String], keep: bool) -> Result<Broker> {
    let (mut b, t0) = Broker::spawn(broker_path, base_dir, overrides, keep)?;
    b.wait_serving(t0, Duration::from_secs(20), None)?;
    eprintln!(
        "  broker pid {} on {}, dir {}",
        b.pid,
        b.kafka_addr,
        b.run_dir.display()
    );
    Ok(b)
}

fn consume_part(
    args: &Args,
    g: &GroupArgs,
    broker_path: &Path,
    base_dir: &Path,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    phase("group consume: broker with its configured group.initial.rebalance.delay.ms");
    let mut b = start(broker_path, base_dir, &args.overrides, args.keep_data)?;
    let topic = "bench-group";
    kafka::create_topic(&b.bootstrap(), topic, g.partitions, 1)?;
    let settings = ProducerSettings {
        bootstrap: b.bootstrap(),
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        record_size: args.record_size as usize,
        idempotence: false,
        client_settings: Vec::new(),
    };
    let acked = crate::produce_run(
        args,
        &mut b,
        &settings,
        topic,
        g.partitions,
        "1",
        pool,
        report,
    )?;
    crate::consume_run(args, &mut b, topic, g.partitions, acked, pool, report)?;

    phase(&format!(
        "consume {topic} with a group of {} members (heartbeat.interval.ms={})",
        g.members, g.heartbeat_ms
    ));
    thread::sleep(Duration::from_secs(args.settle_secs));
    let records_target = report.produce.last().map_or(acked, |p| p.records_target);
    let member_settings = MemberSettings {
        bootstrap: b.bootstrap(),
        group_id: format!("strom-bench-consume-{}", std::process::id()),
        heartbeat_ms: g.heartbeat_ms,
        session_timeout_ms: g.session_timeout_ms,
        auto_commit: true,
        protocol_debug: false,
        extra: parse_member_config(&g.member_config)?,
    };
    let run = GroupRun {
        topic,
        partitions: g.partitions,
        members: g.members,
        records_target,
        record_size: args.record_size as usize,
        pool,
        run_timeout: Duration::from_secs(args.run_timeout_secs),
    };
    let r = run.consume(&member_settings, b.pid);
    b.check_alive()?;
    let mut r = r.context("group consume")?;
    r.initial_rebalance_delay_ms = configured_initial_delay(&args.overrides);
    r.heartbeat_ms = g.heartbeat_ms;
    eprintln!(
        "  {:.1} MB/s, {:.0} rec/s, {} of {} records, first assignment after {:.0} ms, stable after {} ms, cpu {}",
        r.mbps,
        r.records_per_sec,
        r.records,
        r.records_expected,
        r.first_assignment_ms.unwrap_or(f64::NAN),
        r.stable_ms.map_or("?".into(), |s| format!("{s:.0}")),
        report::cpu(r.cpu.as_ref())
    );
    if r.timed_out || r.records < r.records_expected || r.payload_mismatches > 0 {
        report.errors.push(format!(
            "group consume: {} of {} records, {} payload mismatches, timed out: {}, errors: {:?}",
            r.records, r.records_expected, r.payload_mismatches, r.timed_out, r.errors
        ));
    }
    report.group_consume = Some(r);
    report.rss_after_consume = Some(b.rss()?);
    report.shutdown_ms = b.shutdown(Duration::from_secs(10)).map(crate::broker::ms);
    Ok(())
}

pub fn parse_member_config(kvs: &[String]) -> Result<Vec<(String, String)>> {
    kvs.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("--member-config {kv:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// group.initial.rebalance.delay.ms as the broker gets it: the last `--override` of
/// it, else the broker's default.
fn configured_initial_delay(overrides: &[String]) -> Option<u64> {
    overrides
        .iter()
        .rev()
        .find_map(|o| o.strip_prefix("group.initial.rebalance.delay.ms="))
        .map_or(Some(DEFAULT_INITIAL_DELAY_MS), |v| v.trim().parse().ok())
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupConsumeResult {
    pub topic: String,
    pub partitions: i32,
    pub members: usize,
    pub heartbeat_ms: u64,
    pub initial_rebalance_delay_ms: Option<u64>,
    pub records_expected: u64,
    /// Distinct records read (each checked against what was produced).
    pub records: u64,
    pub bytes: u64,
    /// Records read again (possible across a rebalance; not expected here).
    pub duplicates: u64,
    pub payload_mismatches: u64,
    pub records_per_member: Vec<u64>,
    /// subscribe() to the first Assign callback of any member.
    pub first_assignment_ms: Option<f64>,
    /// subscribe() until every member had an assignment and every partition was owned
    /// by exactly one member.
    pub stable_ms: Option<f64>,
    /// Assign callbacks over all members (one each if the group formed in one go).
    pub assigns: u32,
    /// First assignment to last record.
    pub secs: f64,
    pub mbps: f64,
    pub records_per_sec: f64,
    pub timed_out: bool,
    pub errors: Vec<String>,
    /// CPU from the first assignment to the last record.
    pub cpu: Option<CpuUse>,
}

/// Which record indexes have been read, one bit each, shared by the member threads.
struct Seen(Vec<AtomicU64>);

impl Seen {
    fn new(records: u64) -> Seen {
        Seen(
            (0..records.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }

    /// Marks record `i`: Some(true) the first time, Some(false) for a repeat, None if
    /// `i` is beyond what was produced.
    fn mark(&self, i: u64) -> Option<bool> {
        let word = self.0.get((i / 64) as usize)?;
        let bit = 1u64 << (i % 64);
        Some(word.fetch_or(bit, Ordering::Relaxed) & bit == 0)
    }
}

/// Counters shared by the member threads of a group consume run.
struct Progress {
    base: Instant,
    expected: u64,
    seen: Seen,
    unique: AtomicU64,
    bytes: AtomicU64,
    duplicates: AtomicU64,
    mismatches: AtomicU64,
    last_ns: AtomicU64,
    done: AtomicBool,
}

struct GroupRun<'a> {
    topic: &'a str,
    partitions: i32,
    members: usize,
    records_target: u64,
    record_size: usize,
    pool: &'a [u8],
    run_timeout: Duration,
}

impl GroupRun<'_> {
    fn consume(&self, s: &MemberSettings, broker_pid: u32) -> Result<GroupConsumeResult> {
        let board = Board::new();
        let consumers = (0..self.members)
            .map(|_| member::create(s, &board, board.add()))
            .collect::<Result<Vec<_>>>()?;
        let (low, high) = kafka::records_on_topic(&consumers[0], self.topic, self.partitions)
            .context("reading the topic's watermarks")?;
        let progress = Progress {
            base: Instant::now(),
            expected: (high - low).max(0) as u64,
            seen: Seen::new(self.records_target),
            unique: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            done: AtomicBool::new(false),
        };
        let deadline = progress.base + self.run_timeout;
        let all: Vec<usize> = (0..self.members).collect();
        let ended = || progress.done.load(Ordering::Relaxed);
        let (outcomes, stable_at, cpu) = thread::scope(|scope| {
            let handles: Vec<_> = consumers
                .iter()
                .map(|c| scope.spawn(|| self.member_loop(c, &progress, deadline)))
                .collect();
            // CPU is measured over the throughput window: from the first assignment.
            board.wait_until(deadline, |m| {
                ended() || m.iter().any(|v| v.assigned_at.is_some())
            });
            let meter = CpuMeter::start(broker_pid);
            let stable_at = board.wait_until(deadline, |m| {
                ended() || member::covered(m, &all, self.partitions, progress.base)
            });
            let outcomes: Vec<Result<(u64, bool)>> = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("member thread panicked")))
                })
                .collect();
            (outcomes, stable_at, meter.stop())
        });
        let mut errors = Vec::new();
        let mut per_member = Vec::new();
        let mut timed_out = false;
        for o in outcomes {
            match o {
                Ok((n, t)) => {
                    per_member.push(n);
                    timed_out |= t;
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        close_all(consumers, &mut errors);
        let members = board.lock().clone();
        for (i, m) in members.iter().enumerate() {
            errors.extend(m.errors.iter().map(|e| format!("member {i}: {e}")));
        }
        let since = |t: Instant| t.saturating_duration_since(progress.base).as_secs_f64() * 1e3;
        let first_assign = members.iter().filter_map(|m| m.assigned_at).min();
        let last = progress.base + Duration::from_nanos(progress.last_ns.load(Ordering::Relaxed));
        let secs = first_assign.map_or(0.0, |f| last.saturating_duration_since(f).as_secs_f64());
        let records = progress.unique.load(Ordering::Relaxed);
        let bytes = progress.bytes.load(Ordering::Relaxed);
        // stable_at also returns when the run ended first; only full coverage counts.
        let stable = stable_at.filter(|_| {
            members
                .iter()
                .all(|m| m.assigned_at.is_some_and(|t| t <= last))
        });
        Ok(GroupConsumeResult {
            topic: self.topic.to_string(),
            partitions: self.partitions,
            members: self.members,
            heartbeat_ms: s.heartbeat_ms,
            initial_rebalance_delay_ms: None,
            records_expected: progress.expected,
            records,
            bytes,
            duplicates: progress.duplicates.load(Ordering::Relaxed),
            payload_mismatches: progress.mismatches.load(Ordering::Relaxed),
            records_per_member: per_member,
            first_assignment_ms: first_assign.map(since),
            stable_ms: stable.map(since),
            assigns: members.iter().map(|m| m.assigns).sum(),
            secs,
            mbps: if secs > 0.0 {
                bytes as f64 / secs / 1e6
            } else {
                0.0
            },
            records_per_sec: if secs > 0.0 {
                records as f64 / secs
            } else {
                0.0
            },
            timed_out,
            errors,
            cpu,
        })
    }

    /// One member: subscribe, then read until the group as a whole has every record.
    /// Returns the records this member read and whether the deadline passed first.
    fn member_loop(
        &self,
        consumer: &BaseConsumer<MemberCtx>,
        p: &Progress,
        deadline: Instant,
    ) -> Result<(u64, bool)> {
        consumer.subscribe(&[self.topic]).context("subscribe")?;
        let mut mine = 0u64;
        let mut last_error = None;
        let mut errors = 0u32;
        while !p.done.load(Ordering::Relaxed) {
            if Instant::now() >= deadline {
                if let Some(e) = last_error {
                    bail!("timed out; last consumer error: {e}");
                }
                return Ok((mine, true));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    mine += 1;
                    let payload = m.payload().unwrap_or(&[]);
                    match kafka::payload_index(self.pool, self.record_size, payload)
                        .and_then(|i| p.seen.mark(i))
                    {
                        Some(true) => {
                            p.bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                            p.last_ns
                                .fetch_max(p.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            if p.unique.fetch_add(1, Ordering::Relaxed) + 1 >= p.expected {
                                p.done.store(true, Ordering::Relaxed);
                            }
                        }
                        Some(false) => {
                            p.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            p.mismatches.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Some(Err(e)) => {
                    errors += 1;
                    last_error = Some(e.to_string());
                    if errors > 1000 {
                        bail!("1000 consumer errors, last: {e}");
                    }
                }
            }
        }
        Ok((mine, false))
    }
}

/// Closes every member cleanly and in parallel (each sends LeaveGroup); a member
/// that does not finish within 10 s is leaked rather than waited for without bound
/// (rdkafka's Drop would wait for it forever).
pub fn close_all(consumers: Vec<BaseConsumer<MemberCtx>>, errors: &mut Vec<String>) {
    let results: Vec<Result<bool>> = thread::scope(|scope| {
        let handles: Vec<_> = consumers
            .iter()
            .map(|c| scope.spawn(|| member::close(c, Duration::from_secs(10))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("close thread panicked")))
            })
            .collect()
    });
    for (c, r) in consumers.into_iter().zip(results) {
        match r {
            Ok(true) => drop(c),
            Ok(false) => {
                errors.push("a member did not close within 10 s".into());
                std::mem::forget(c);
            }
            Err(e) => {
                errors.push(format!("closing a member: {e:#}"));
                std::mem::forget(c);
            }
        }
    }
}
