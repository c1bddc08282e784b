//! `strom-bench`: one run measures the machine's limits (disk sequential write with
//! fsync, loopback TCP copy) and, against a freshly spawned release `strom-broker`,
//! start-up time, resident memory, produce throughput and latency, and consume
//! throughput; then prints a Markdown table and one JSON line.
//!
//! `strom-bench groups` measures the same limits, then consumer groups instead: a
//! group's consume throughput against one assigned consumer on the same topic, and
//! how long a rebalance takes when a member joins or leaves (see `groups.rs`).
//!
//! `strom-bench replicated` measures the same limits, then produce throughput and
//! latency with acks=all against three local brokers replicating one partition
//! three ways (see `replicated.rs`).
//!
//! `strom-bench connections` measures the broker's resident memory with 1,000 and 10,000
//! idle connections and after they close (see `connections.rs`).
//! `strom-bench scale` measures one broker holding 1k, 10k and 100k partitions:
//! creation rate, RSS, open descriptors, Metadata latency and restart-to-ready, beside
//! the descriptor limit and memory (see `scale.rs`).
//! `strom-bench peer` runs the same workloads against Strom and against Apache Kafka
//! 4.4 started from the jars, plus Kafka's own perf tools against both, and prints
//! them side by side with the ratio Strom/Kafka (see `peer.rs`).
//! `strom-bench roll` rolls a three-broker cluster under an acks=all load the way the
//! operator's roller does, split per broker into restart, catch-up and leader moves,
//! beside the same roll idle (see `roll.rs`).
//! `strom-bench drain` moves every replica off a broker holding `--data-mib` with the
//! operator's rebalance code at a replication throttle, beside the throttle's floor and
//! the same drain unthrottled (see `drain.rs`).

mod apache;
mod broker;
mod cluster;
mod connections;
mod drain;
mod groups;
mod kafka;
mod lean_client;
mod limits;
mod member;
mod peer;
mod peer_table;
mod perf_tools;
mod pinning;
mod rebalance;
mod replicated;
mod report;
mod roll;
mod scale;
mod security;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use broker::{Broker, CpuMeter, Rss, StartupTiming, UnderTest};
use groups::{GroupArgs, GroupConsumeResult};
use kafka::{ConsumeResult, LatencyResult, ProduceResult, ProducerSettings};
use limits::{DiskResult, MIB};
use rebalance::RebalanceResult;
use replicated::{ReplicatedArgs, ReplicatedResult};

#[derive(Parser, Debug, Clone, Serialize)]
#[command(version, about)]
pub struct Args {
    /// Without a subcommand: the broker suite (start-up, RSS, produce, latency, consume).
    #[command(subcommand)]
    command: Option<Command>,
    /// The broker binary to benchmark.
    #[arg(long, global = true, default_value = "target/release/strom-broker")]
    broker: PathBuf,
    /// Where the disk probe file and the brokers' data dirs go; keep it on the disk
    /// the broker would use in production (not tmpfs).
    #[arg(long, global = true, default_value = "target/strom-bench")]
    base_dir: PathBuf,
    /// Extra `--override key=value` passed to the broker (repeatable).
    #[arg(long = "override", global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// MiB written by each disk probe.
    #[arg(long, global = true, default_value_t = 1024)]
    disk_mib: u64,
    /// Disk probes; the limit is their median (this VM's disk varies run to run).
    #[arg(long, global = true, default_value_t = 5)]
    disk_runs: usize,
    /// MiB sent through loopback TCP for the copy-bandwidth limit.
    #[arg(long, global = true, default_value_t = 2048)]
    loopback_mib: u64,
    /// Start-ups measured (the last one serves the load runs).
    #[arg(long, default_value_t = 5)]
    startup_runs: usize,
    /// Start-up probe asks metadata for this topic only (auto-creating it) instead of
    /// for all topics.
    #[arg(long)]
    startup_metadata_topic: Option<String>,
    /// Seconds the broker idles before the idle RSS reading.
    #[arg(long, default_value_t = 2)]
    idle_secs: u64,
    /// MiB of record payload per throughput run (for `groups`: the pre-filled topic)
    /// [default: 1024; 512 for `replicated`, which writes every byte three times].
    #[arg(long, global = true)]
    produce_mib: Option<u64>,
    /// Record payload size in bytes (at least 8: the record's index leads it).
    #[arg(long, global = true, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(8..=1_000_000))]
    record_size: u64,
    /// Producer instances (each with its own thread and connection) per throughput
    /// run; more than one shows whether one librdkafka producer is the bottleneck.
    #[arg(long, global = true, default_value_t = 1)]
    producers: usize,
    /// acks settings for throughput runs, in order; the acks=1 topic is consumed.
    #[arg(long, value_delimiter = ',', default_value = "1,all,0")]
    acks: Vec<String>,
    /// Producer linger.ms.
    #[arg(long, global = true, default_value_t = 5)]
    linger_ms: u64,
    /// Producer batch.size (librdkafka also caps a request at message.max.bytes, 1 MB).
    #[arg(long, global = true, default_value_t = 1_048_576)]
    batch_size: u64,
    /// Records/s for the latency run; default: half the peak of the throughput run
    /// with the latency run's acks.
    #[arg(long, global = true)]
    latency_rate: Option<u64>,
    /// Length of the latency run.
    #[arg(long, global = true, default_value_t = 10)]
    latency_secs: u64,
    /// acks for the latency run.
    #[arg(long, default_value = "1")]
    latency_acks: String,
    /// Seconds to pause before each produce, latency and consume run, so the
    /// kernel can write back what the previous run left dirty.
    #[arg(long, global = true, default_value_t = 0)]
    settle_secs: u64,
    /// Upper bound on any one produce or consume run, in seconds.
    #[arg(long, global = true, default_value_t = 60)]
    run_timeout_secs: u64,
    /// Keep the broker's run dir (data and logs) after the run.
    #[arg(long, global = true)]
    keep_data: bool,
    /// Also write the JSON result to this file.
    #[arg(long, global = true)]
    json_out: Option<PathBuf>,
    /// Run the brokers on these CPUs (e.g. `0`) and the benchmark's clients on the others.
    #[arg(long, global = true, value_delimiter = ',')]
    broker_cpus: Vec<usize>,
}

#[derive(Subcommand, Debug, Clone, Serialize)]
pub enum Command {
    /// Consumer groups: a group's consume throughput (beside one assigned consumer on
    /// the same topic) and rebalance time when a member joins or leaves.
    Groups(GroupArgs),
    /// Replicated produce: three local brokers, one partition with three replicas,
    /// acks=all throughput and latency against the disk limit divided by three.
    Replicated(ReplicatedArgs),
    /// Idle connections: the broker's RSS with 1k and 10k of them open and after they
    /// close, beside its open-file limit and the machine's memory.
    Connections(connections::ConnectionArgs),
    /// Many partitions on one broker (1k, 10k, 100k): creation rate, RSS, open
    /// descriptors, Metadata latency and restart-to-ready beside the descriptor limit.
    Scale(scale::ScaleArgs),
    /// Strom beside Apache Kafka 4.4 (from the jars): the same produce, latency and
    /// consume runs with the same client, RF=3 on three nodes, start-up, memory and
    /// CPU per GiB, and Kafka's own perf tools against both; ratio Strom/Kafka.
    Peer(peer::PeerArgs),
    /// Rolling restart of three brokers under an acks=all idempotent load, as the
    /// operator's roller does it: per broker restart, catch-up and leader moves, beside
    /// the same roll of the idle cluster and the producer's throughput before it.
    Roll(roll::RollArgs),
    /// Drain one broker holding --data-mib with the operator's rebalance code at a
    /// replication throttle, beside the throttle's floor and the unthrottled drain.
    Drain(drain::DrainArgs),
    /// TLS and SASL beside plaintext: produce and consume through PLAINTEXT, SSL and
    /// SASL_SSL (SCRAM-SHA-512) listeners of one broker, round after round, and the
    /// handshake rate of each.
    Security(security::SecurityArgs),
}

impl Args {
    /// MiB per throughput run: `--produce-mib`, else this command's default.
    pub fn produce_mib(&self) -> u64 {
        self.produce_mib.unwrap_or(match self.command {
            Some(Command::Replicated(_)) => 512,
            Some(Command::Peer(ref p)) if p.quick => 32,
            Some(Command::Peer(_)) => 512,
            Some(Command::Security(_)) => 512,
            _ => 1024,
        })
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: Option<String>,
    pub mem_total_kib: Option<u64>,
    pub kernel: Option<String>,
    pub base_dir: String,
    pub base_dir_device: Option<String>,
    pub base_dir_fstype: Option<String>,
    pub base_dir_rotational: Option<bool>,
    /// Busy share of all cores over 1 s before the run (other load on the machine).
    pub background_busy_pct: Option<f64>,
    pub loadavg_at_start: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Admin {
    pub ready: Option<u16>,
    pub health: Option<u16>,
    pub metrics: Option<u16>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub args: Option<Args>,
    pub broker_binary_bytes: Option<u64>,
    pub disk_runs: Vec<DiskResult>,
    /// Median of the fsynced disk probes: the limit produce is compared against.
    pub disk_fsync_mbps: Option<f64>,
    pub disk_page_cache_mbps: Option<f64>,
    pub loopback_mbps: Option<f64>,
    pub startups: Vec<StartupTiming>,
    pub startup_median_tcp_ms: Option<f64>,
    pub startup_median_metadata_ms: Option<f64>,
    pub rss_idle: Option<Rss>,
    pub rss_after_produce: Option<Rss>,
    pub rss_after_consume: Option<Rss>,
    pub admin: Admin,
    pub produce: Vec<ProduceResult>,
    pub latency: Option<LatencyResult>,
    pub consume: Option<ConsumeResult>,
    pub group_consume: Option<GroupConsumeResult>,
    pub rebalance: Vec<RebalanceResult>,
    pub replicated: Option<ReplicatedResult>,
    pub connections: Option<connections::ConnectionsResult>,
    pub scale: Option<scale::ScaleResult>,
    pub peer: Option<peer::PeerResult>,
    pub roll: Option<roll::RollResult>,
    pub drain: Option<drain::DrainResult>,
    pub security: Option<security::SecurityResult>,
    pub shutdown_ms: Option<f64>,
    pub errors: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.broker_cpus.is_empty() {
        if let Err(e) = pinning::split(&args.broker_cpus) {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    let mut report = Report {
        args: Some(args.clone()),
        ..Default::default()
    };
    if let Err(e) = run(&args, &mut report) {
        report.errors.push(format!("{e:#}"));
    }
    // Every broker guard has been dropped (and its process killed) by now.
    let table = match args.command {
        Some(Command::Connections(_)) => connections::markdown(&report),
        Some(Command::Peer(_)) => peer_table::markdown(&report),
        Some(Command::Roll(_)) => roll::markdown(&report),
        Some(Command::Drain(_)) => drain::markdown(&report),
        Some(Command::Security(_)) => security::markdown(&report),
        _ => report::markdown(&report),
    };
    println!("{table}");
    let json = serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    println!("{json}");
    if let Some(path) = &args.json_out {
        if let Err(e) = std::fs::write(path, format!("{json}\n")) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        ExitCode::FAILURE
    }
}

fn phase(name: &str) {
    eprintln!("[strom-bench] {name}");
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn run(args: &Args, report: &mut Report) -> Result<()> {
    // No disk or loopback probes: memory per connection is compared with the machine's.
    if let Some(Command::Connections(c)) = &args.command {
        return connections::run(args, c, report);
    }
    if let Some(Command::Scale(s)) = &args.command {
        // Its limits are the descriptor limit and the memory, not disk or loopback.
        std::fs::create_dir_all(&args.base_dir)
            .with_context(|| format!("creating {}", args.base_dir.display()))?;
        let base_dir = args.base_dir.canonicalize()?;
        report.machine = machine(&base_dir);
        let broker_path = args.broker.canonicalize().with_context(|| {
            format!(
                "broker binary {} (build it: cargo build --release -p strom-broker)",
                args.broker.display()
            )
        })?;
        return scale::run(args, s, &broker_path, &base_dir, report);
    }
    if matches!(
        args.command,
        Some(Command::Roll(_) | Command::Drain(_) | Command::Security(_))
    ) {
        // Their limits are measured by the runs themselves (the idle roll; the throttle's
        // floor and the unthrottled drain; plaintext beside TLS), not by disk or loopback
        // probes.
        let base_dir = describe_machine(args, report)?;
        let broker_path = args.broker.canonicalize().with_context(|| {
            format!(
                "broker binary {} (build it: cargo build --release -p strom-broker)",
                args.broker.display()
            )
        })?;
        let pool = limits::random_pool(64 * MIB as usize);
        return match &args.command {
            Some(Command::Roll(r)) => roll::run(args, r, &broker_path, &base_dir, &pool, report),
            Some(Command::Drain(d)) => drain::run(args, d, &broker_path, &base_dir, &pool, report),
            Some(Command::Security(s)) => {
                security::run(args, s, &broker_path, &base_dir, &pool, report)
            }
            _ => Ok(()),
        };
    }
    let quick_limits;
    let limits_args = match &args.command {
        // A smoke run keeps its probes small too.
        Some(Command::Peer(p)) if p.quick => {
            quick_limits = Args {
                disk_mib: args.disk_mib.min(64),
                disk_runs: 1,
                loopback_mib: args.loopback_mib.min(256),
                ..args.clone()
            };
            &quick_limits
        }
        _ => args,
    };
    let (base_dir, pool) = machine_and_limits(limits_args, report)?;
    let broker_path = args.broker.canonicalize().with_context(|| {
        format!(
            "broker binary {} (build it: cargo build --release -p strom-broker)",
            args.broker.display()
        )
    })?;
    match &args.command {
        Some(Command::Groups(g)) => groups::run(args, g, &broker_path, &base_dir, &pool, report),
        Some(Command::Replicated(r)) => {
            replicated::run(args, r, &broker_path, &base_dir, &pool, report)
        }
        Some(Command::Peer(p)) => peer::run(args, p, &broker_path, &base_dir, &pool, report),
        // Dispatched before the probes, above.
        Some(
            Command::Connections(_)
            | Command::Scale(_)
            | Command::Roll(_)
            | Command::Drain(_)
            | Command::Security(_),
        ) => Ok(()),
        None => run_suite(args, &broker_path, &base_dir, &pool, report),
    }
}

/// Creates the base dir and records the machine, its load and how busy it is in the
/// report; returns the canonical base dir.
fn describe_machine(args: &Args, report: &mut Report) -> Result<PathBuf> {
    std::fs::create_dir_all(&args.base_dir)
        .with_context(|| format!("creating {}", args.base_dir.display()))?;
    let base_dir = args.base_dir.canonicalize()?;
    report.machine = machine(&base_dir);
    report.machine.loadavg_at_start = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.trim().to_string());
    report.machine.background_busy_pct = broker::background_busy_pct(Duration::from_secs(1));
    Ok(base_dir)
}

/// The machine's description, then its limits: disk write with fsync and loopback
/// copy bandwidth. Returns the canonical base dir and the payload pool.
fn machine_and_limits(args: &Args, report: &mut Report) -> Result<(PathBuf, Vec<u8>)> {
    let base_dir = describe_machine(args, report)?;
    if let Some(b) = report.machine.background_busy_pct.filter(|b| *b > 10.0) {
        eprintln!(
            "[strom-bench] warning: the machine is already {b:.0}% busy; figures will be noisy"
        );
    }
    report.broker_binary_bytes = std::fs::metadata(&args.broker).ok().map(|m| m.len());

    let pool = limits::random_pool(64 * MIB as usize);

    phase("disk limit: sequential write + fsync");
    for _ in 0..args.disk_runs {
        match limits::disk_write(&base_dir, args.disk_mib * MIB, &pool) {
            Ok(d) => {
                eprintln!(
                    "  {:.1} MB/s with fsync, {:.1} MB/s page cache",
                    d.fsync_mbps, d.page_cache_mbps
                );
                report.disk_runs.push(d);
            }
            Err(e) => {
                report.errors.push(format!("disk probe: {e:#}"));
                break;
            }
        }
    }
    report.disk_fsync_mbps = median(report.disk_runs.iter().map(|d| d.fsync_mbps).collect());
    report.disk_page_cache_mbps =
        median(report.disk_runs.iter().map(|d| d.page_cache_mbps).collect());
    phase("loopback limit: TCP copy");
    match limits::loopback_mbps(args.loopback_mib * MIB) {
        Ok(m) => report.loopback_mbps = Some(m),
        Err(e) => report.errors.push(format!("loopback probe: {e:#}")),
    }
    Ok((base_dir, pool))
}

fn run_suite(
    args: &Args,
    broker_path: &Path,
    base_dir: &Path,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    phase("start-up to serving");
    let runs = args.startup_runs.max(1);
    let mut serving: Option<Broker> = None;
    for i in 0..runs {
        let (mut b, t0) = Broker::spawn(broker_path, base_dir, &args.overrides, args.keep_data)?;
        let t = b
            .wait_serving(
                t0,
                Duration::from_secs(20),
                args.startup_metadata_topic.as_deref(),
            )
            .with_context(|| format!("start-up run {}", i + 1))?;
        eprintln!(
            "  run {}: tcp {:.1} ms, metadata {:.1} ms",
            i + 1,
            t.tcp_ms,
            t.metadata_ms
        );
        report.startups.push(t);
        if i + 1 == runs {
            serving = Some(b);
        } // else: dropped here, which kills it
    }
    report.startup_median_tcp_ms = median(report.startups.iter().map(|t| t.tcp_ms).collect());
    report.startup_median_metadata_ms =
        median(report.startups.iter().map(|t| t.metadata_ms).collect());
    let mut b = serving.expect("at least one start-up run");
    eprintln!(
        "  serving broker pid {} on {}, dir {}",
        b.pid,
        b.kafka_addr,
        b.run_dir.display()
    );

    phase("idle RSS");
    thread::sleep(Duration::from_secs(args.idle_secs));
    b.check_alive()?;
    report.rss_idle = Some(b.rss()?);
    report.admin = Admin {
        ready: broker::http_status(b.admin_addr, "/ready").ok(),
        health: broker::http_status(b.admin_addr, "/health").ok(),
        metrics: broker::http_status(b.admin_addr, "/metrics").ok(),
    };

    let settings = ProducerSettings {
        bootstrap: b.bootstrap(),
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        record_size: args.record_size as usize,
        idempotence: false,
        client_settings: Vec::new(),
    };
    let mut consume_topic = None;
    for acks in &args.acks {
        let topic = format!("bench-acks-{acks}");
        let acked = produce_run(args, &mut b, &settings, &topic, 1, acks, pool, report)?;
        if acks == "1" {
            consume_topic = Some((topic, acked));
        }
    }

    latency_run(
        args,
        &mut b,
        &settings,
        "bench-latency",
        &args.latency_acks,
        pool,
        report,
    )?;
    report.rss_after_produce = Some(b.rss()?);

    if let Some((topic, acked)) = consume_topic {
        consume_run(args, &mut b, &topic, 1, acked, pool, report)?;
        report.rss_after_consume = Some(b.rss()?);
    }

    phase("shutdown (SIGTERM)");
    report.shutdown_ms = b.shutdown(Duration::from_secs(10)).map(broker::ms);
    Ok(())
}

/// One produce throughput run of `--produce-mib` into `topic` (its records spread
/// over `partitions`), recorded in the report. Returns the records acknowledged.
#[allow(clippy::too_many_arguments)]
pub(crate) fn produce_run<B: UnderTest + ?Sized>(
    args: &Args,
    b: &mut B,
    settings: &ProducerSettings,
    topic: &str,
    partitions: i32,
    acks: &str,
    pool: &[u8],
    report: &mut Report,
) -> Result<u64> {
    let records = args.produce_mib() * MIB / args.record_size;
    phase(&format!(
        "produce {records} x {} B to {topic} ({partitions} partition(s)), acks={acks}",
        args.record_size
    ));
    thread::sleep(Duration::from_secs(args.settle_secs));
    let meter = CpuMeter::start_all(&b.pids());
    let r = kafka::produce_throughput(
        settings,
        topic,
        partitions,
        acks,
        records,
        args.producers,
        pool,
        Duration::from_secs(args.run_timeout_secs),
    )
    .with_context(|| format!("produce acks={acks}"));
    b.check_alive()?;
    let mut r = r?;
    r.cpu = meter.stop();
    eprintln!(
        "  {:.1} MB/s, {:.0} rec/s, acked {}/{}, failed {}, cpu {}",
        r.mbps,
        r.records_per_sec,
        r.records_acked,
        r.records_target,
        r.records_failed,
        report::cpu(r.cpu.as_ref())
    );
    if r.records_failed > 0 || r.timed_out {
        report.errors.push(format!(
            "produce acks={acks}: {} failed, timed out: {}, first error: {:?}; broker stderr tail:\n{}",
            r.records_failed,
            r.timed_out,
            r.first_delivery_error,
            b.stderr_tail(10)
        ));
    }
    let acked = r.records_acked;
    report.produce.push(r);
    Ok(acked)
}

/// The open-loop latency run into `topic` with `acks`, at `--latency-rate`, else at
/// half the records/s of this run's throughput run with the same acks (else of the
/// first one); recorded in the report. Skipped if there is no rate to run at.
#[allow(clippy::too_many_arguments)]
pub(crate) fn latency_run<B: UnderTest + ?Sized>(
    args: &Args,
    b: &mut B,
    settings: &ProducerSettings,
    topic: &str,
    acks: &str,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    let peak_rps = report
        .produce
        .iter()
        .find(|r| r.acks == acks)
        .or(report.produce.first())
        .map(|r| r.records_per_sec);
    let Some(rate) = args
        .latency_rate
        .or(peak_rps.map(|p| (p / 2.0) as u64))
        .filter(|r| *r > 0)
    else {
        return Ok(());
    };
    phase(&format!(
        "produce latency at {rate} rec/s for {} s, acks={acks}",
        args.latency_secs
    ));
    thread::sleep(Duration::from_secs(args.settle_secs));
    let meter = CpuMeter::start_all(&b.pids());
    let r = kafka::produce_latency(
        settings,
        topic,
        acks,
        rate,
        Duration::from_secs(args.latency_secs),
        pool,
    );
    b.check_alive()?;
    let mut r = r.context("latency run")?;
    r.cpu = meter.stop();
    eprintln!(
        "  p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, cpu {}",
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
        r.max_ms,
        report::cpu(r.cpu.as_ref())
    );
    let per_sec: Vec<String> = r
        .max_ms_per_second
        .iter()
        .map(|m| format!("{m:.0}"))
        .collect();
    eprintln!("  worst ms per second: {}", per_sec.join(" "));
    if r.records_failed > 0 {
        report.errors.push(format!(
            "latency run acks={acks}: {} records failed, first error: {:?}; broker stderr tail:\n{}",
            r.records_failed,
            r.first_delivery_error,
            b.stderr_tail(10)
        ));
    }
    report.latency = Some(r);
    Ok(())
}

/// One assigned (group-less) consumer reads partitions `0..partitions` of `topic`
/// from offset 0, checking every record; recorded in the report.
pub(crate) fn consume_run<B: UnderTest + ?Sized>(
    args: &Args,
    b: &mut B,
    topic: &str,
    partitions: i32,
    acked: u64,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    phase(&format!(
        "consume {topic} ({partitions} partition(s), one assigned consumer)"
    ));
    thread::sleep(Duration::from_secs(args.settle_secs));
    let meter = CpuMeter::start_all(&b.pids());
    let r = kafka::consume(
        &b.bootstrap(),
        topic,
        partitions,
        acked,
        pool,
        args.record_size as usize,
        Duration::from_secs(args.run_timeout_secs),
    );
    b.check_alive()?;
    let mut r = r.context("consume")?;
    r.cpu = meter.stop();
    eprintln!(
        "  {:.1} MB/s, {:.0} rec/s, {} records, {} payload mismatches, cpu {}",
        r.mbps,
        r.records_per_sec,
        r.records,
        r.payload_mismatches,
        report::cpu(r.cpu.as_ref())
    );
    if r.timed_out || r.records < r.records_expected || r.payload_mismatches > 0 || r.duplicates > 0
    {
        report.errors.push(format!(
            "consume: {} of {} records, {} payload mismatches, {} duplicates, first error {:?}",
            r.records, r.records_expected, r.payload_mismatches, r.duplicates, r.first_error
        ));
    }
    report.consume = Some(r);
    Ok(())
}

fn machine(base_dir: &Path) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cpu_model = read("/proc/cpuinfo").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
    });
    let mem_total_kib = read("/proc/meminfo").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    });
    // The mount holding base_dir: the longest mount point that is a prefix of it.
    let mount = read("/proc/self/mounts").and_then(|s| {
        s.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && base_dir.starts_with(f[1]))
                    .then(|| (f[1].len(), f[0].to_string(), f[2].to_string()))
            })
            .max_by_key(|m| m.0)
    });
    let rotational = mount.as_ref().and_then(|(_, dev, _)| {
        let name = dev.rsplit('/').next()?;
        read(&format!("/sys/class/block/{name}/queue/rotational")).map(|s| s.trim() == "1")
    });
    Machine {
        nproc: thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        mem_total_kib,
        kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
        base_dir: base_dir.display().to_string(),
        base_dir_device: mount.as_ref().map(|m| m.1.clone()),
        base_dir_fstype: mount.map(|m| m.2),
        base_dir_rotational: rotational,
        ..Default::default()
    }
}
