//! `strom-bench drain`: how long it takes to move every replica off one broker that
//! holds a given amount of data, at a given replication throttle, the way the
//! operator's scale-down does it.
//!
//! Three brokers; one topic whose partitions each have two replicas, one of them on
//! broker 2 and led by it, so broker 2 holds every byte produced (`--data-mib`) and is
//! the only source of the copy. The drain is the operator's own code
//! (`strom_operator::rebalance`): `plan::plan` onto brokers 0 and 1, `batch::next_batch`,
//! the replication throttles of `batch::throttles` on the batch's brokers (as
//! `kafka-reassign-partitions --throttle` sets them), AlterPartitionReassignments, and
//! the next batch once ListPartitionReassignments is empty, then the throttles removed,
//! as `operator/tests/rebalance_on_brokers.rs` drives it.
//!
//! The limits in the same run: the throttle's floor (bytes to copy / throttle: the
//! leader-side throttle on broker 2 caps everything it sends) and the same drain,
//! on a fresh cluster holding the same data, without a throttle (what the machine
//! allows).

use std::collections::BTreeSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use strom_operator::access::Brokers;
use strom_operator::rebalance::batch::{next_batch, throttled_brokers, throttles};
use strom_operator::rebalance::kafka::{self as rebalance, ClusterView};
use strom_operator::rebalance::plan::{self, Broker as Target};

use crate::broker::{http_get, metric_value, ms, UnderTest};
use crate::cluster::Cluster;
use crate::kafka::{self, ProducerSettings};
use crate::limits::MIB;
use crate::{phase, Args, Report};

const TOPIC: &str = "bench-drain";
const BROKERS: usize = 3;
/// The broker drained; it holds a replica of, and leads, every partition.
const DRAINED: i32 = 2;

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct DrainArgs {
    /// MiB of record payload produced onto the drained broker.
    #[arg(long, default_value_t = 1024)]
    pub data_mib: u64,
    /// Partitions of the topic (two replicas each, one on the drained broker).
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Replication throttle in MB/s (10^6 bytes/s), set as the operator does on every
    /// broker of a batch (`leader.` and `follower.replication.throttled.rate`).
    #[arg(long, default_value_t = 50)]
    pub throttle_mbps: u64,
    /// Partitions moved at once (the operator's default batch size; not the global
    /// `--batch-size`, which is the producer's).
    #[arg(long, default_value_t = strom_operator::rebalance::batch::DEFAULT_BATCH_SIZE)]
    pub reassign_batch: usize,
    /// Skip the unthrottled drain (the limit run).
    #[arg(long)]
    pub no_unthrottled: bool,
    /// Upper bound on one drain.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
}

/// One drain of broker 2.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainRun {
    /// Bytes/s, None: unthrottled.
    pub throttle_bytes_per_sec: Option<u64>,
    /// Payload acknowledged by the producer.
    pub produced_bytes: u64,
    pub produce_mbps: f64,
    /// The drained broker's log bytes of the topic before the drain (/metrics
    /// `kafka_log_log_size`): what the drain copies.
    pub bytes_on_broker: Option<u64>,
    pub batches: usize,
    pub moves: usize,
    /// First throttle/reassignment call → nothing left on the broker and no move in
    /// flight (throttles removed).
    pub drain_ms: Option<f64>,
    /// bytes_on_broker / drain time.
    pub copy_mbps: Option<f64>,
    /// bytes_on_broker / throttle: the throttle's floor.
    pub floor_ms: Option<f64>,
    pub replicas_left: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainResult {
    pub brokers: usize,
    pub partitions: i32,
    pub record_size: u64,
    pub batch_size: usize,
    pub throttled: Option<DrainRun>,
    pub unthrottled: Option<DrainRun>,
}

pub fn run(
    args: &Args,
    d: &DrainArgs,
    broker_path: &Path,
    base_dir: &Path,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    if d.partitions < 1 || d.data_mib == 0 || d.throttle_mbps == 0 || d.reassign_batch == 0 {
        bail!("--partitions, --data-mib, --throttle-mbps and --reassign-batch must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime for the operator's calls")?;
    let mut result = DrainResult {
        brokers: BROKERS,
        partitions: d.partitions,
        record_size: args.record_size,
        batch_size: d.reassign_batch,
        ..Default::default()
    };
    let throttle = d.throttle_mbps.saturating_mul(1_000_000);
    let mut runs = vec![Some(throttle)];
    if !d.no_unthrottled {
        runs.push(None);
    }
    let mut outcome = Ok(());
    for rate in runs {
        let mut run = DrainRun {
            throttle_bytes_per_sec: rate,
            ..Default::default()
        };
        let r = one_drain(args, d, broker_path, base_dir, &runtime, pool, &mut run);
        match rate {
            Some(_) => result.throttled = Some(run),
            None => result.unthrottled = Some(run),
        }
        if let Err(e) = r {
            outcome = Err(e);
            break;
        }
    }
    report.drain = Some(result);
    outcome
}

/// A fresh cluster, the data produced onto broker 2, then broker 2 drained at `rate`.
fn one_drain(
    args: &Args,
    d: &DrainArgs,
    broker_path: &Path,
    base_dir: &Path,
    runtime: &tokio::runtime::Runtime,
    pool: &[u8],
    run: &mut DrainRun,
) -> Result<()> {
    let label = run
        .throttle_bytes_per_sec
        .map_or("unthrottled".to_string(), |r| {
            format!("throttle {} MB/s", r / 1_000_000)
        });
    phase(&format!(
        "drain ({label}): {BROKERS} brokers, {} MiB on broker {DRAINED} in {} partitions",
        d.data_mib, d.partitions
    ));
    let (mut cluster, t0) = Cluster::start(
        broker_path,
        base_dir,
        BROKERS,
        &args.overrides,
        args.keep_data,
    )?;
    let outcome = fill_and_drain(args, d, &mut cluster, t0, runtime, pool, run);
    if outcome.is_err() {
        eprintln!("{}", cluster.stderr_tail(10));
    }
    outcome
    // `cluster` dropped here: every broker is killed, then its directory removed.
}

/// On a started cluster: the topic on broker 2 filled with `--data-mib`, then drained.
fn fill_and_drain(
    args: &Args,
    d: &DrainArgs,
    cluster: &mut Cluster,
    t0: Instant,
    runtime: &tokio::runtime::Runtime,
    pool: &[u8],
    run: &mut DrainRun,
) -> Result<()> {
    cluster.wait_ready(t0, Duration::from_secs(60))?;
    let bootstrap = cluster.bootstrap();
    // Broker 2 first in every list: it holds every partition and leads it, so all
    // of the copy leaves broker 2, through its one leader throttle.
    let assignment: Vec<Vec<i32>> = (0..d.partitions).map(|p| vec![DRAINED, p % 2]).collect();
    kafka::create_topic_assigned(&bootstrap, TOPIC, &assignment)?;
    for p in 0..d.partitions {
        kafka::wait_isr(&bootstrap, TOPIC, p, 2, Duration::from_secs(60))?;
    }
    let settings = ProducerSettings {
        bootstrap: bootstrap.clone(),
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        record_size: args.record_size as usize,
        idempotence: false,
        client_settings: Vec::new(),
    };
    let records = d.data_mib * MIB / args.record_size;
    let p = kafka::produce_throughput(
        &settings,
        TOPIC,
        d.partitions,
        "all",
        records,
        1,
        pool,
        Duration::from_secs(d.timeout_secs),
    )?;
    if p.records_failed > 0 || p.timed_out {
        bail!(
            "producing the data: {} failed, timed out {}, first error {:?}",
            p.records_failed,
            p.timed_out,
            p.first_delivery_error
        );
    }
    run.produced_bytes = p.bytes_acked;
    run.produce_mbps = p.mbps;
    eprintln!(
        "  produced {} MB at {:.1} MB/s",
        p.bytes_acked / 1_000_000,
        p.mbps
    );
    // The followers may still be a fetch behind the last acknowledgement.
    for p in 0..d.partitions {
        kafka::wait_isr(&bootstrap, TOPIC, p, 2, Duration::from_secs(60))?;
    }
    run.bytes_on_broker = topic_bytes(cluster, DRAINED as usize, d.partitions);
    run.floor_ms = match (run.bytes_on_broker, run.throttle_bytes_per_sec) {
        (Some(b), Some(r)) => Some(b as f64 / r as f64 * 1000.0),
        _ => None,
    };
    drain(d, cluster, runtime, run)?;
    Ok(())
}

/// The topic's bytes on disk on node `i`, from its /metrics; None if any partition
/// is missing there.
fn topic_bytes(cluster: &Cluster, i: usize, partitions: i32) -> Option<u64> {
    let (_, text) = http_get(cluster.brokers.get(i)?.admin_addr, "/metrics").ok()?;
    let mut total = 0.0;
    for p in 0..partitions {
        let p = p.to_string();
        total += metric_value(
            &text,
            "kafka_log_log_size",
            &[("topic", TOPIC), ("partition", p.as_str())],
        )?;
    }
    Some(total as u64)
}

/// Waits (every 100 ms, bounded) until no reassignment is in flight; the cluster then.
fn settled(
    runtime: &tokio::runtime::Runtime,
    bootstrap: &Brokers,
    deadline: Instant,
) -> Result<ClusterView> {
    loop {
        let view = runtime.block_on(rebalance::describe(bootstrap));
        match view {
            Ok(v) if v.in_flight.is_empty() => return Ok(v),
            Ok(_) => {}
            // A call refused while the cluster is busy is retried, as a reconcile would.
            Err(e) if Instant::now() < deadline => eprintln!("  describe: {e}"),
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= deadline {
            bail!("reassignments still in flight at the deadline");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The operator's scale step by hand: one (throttled) batch at a time until the plan
/// onto the remaining brokers is empty.
fn drain(
    d: &DrainArgs,
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    run: &mut DrainRun,
) -> Result<()> {
    let bootstrap = Brokers::plaintext(cluster.brokers.iter().map(|b| b.bootstrap()).collect());
    let targets: Vec<Target> = (0..BROKERS as i32)
        .filter(|b| *b != DRAINED)
        .map(|id| Target { id, rack: None })
        .collect();
    let keep: BTreeSet<i32> = targets.iter().map(|t| t.id).collect();
    let all: BTreeSet<i32> = (0..BROKERS as i32).collect();
    let deadline = Instant::now() + Duration::from_secs(d.timeout_secs);
    let start = Instant::now();
    loop {
        let view = settled(runtime, &bootstrap, deadline)?;
        let moves = plan::plan(&targets, &view.assignment);
        if moves.is_empty() {
            run.replicas_left = Some(plan::replicas_outside(&view.assignment, &keep));
            break;
        }
        let batch = next_batch(&moves, &view.in_flight, d.reassign_batch);
        let topic_throttles = throttles(&batch);
        if let Some(rate) = run.throttle_bytes_per_sec {
            runtime
                .block_on(rebalance::set_throttles(
                    &bootstrap,
                    rate,
                    &throttled_brokers(&batch),
                    &topic_throttles,
                ))
                .context("setting the throttles")?;
        }
        runtime
            .block_on(rebalance::reassign(&bootstrap, &batch))
            .context("AlterPartitionReassignments")?;
        run.batches += 1;
        run.moves += batch.len();
        eprintln!(
            "  batch {}: {} move(s) started at {:.1} s",
            run.batches,
            batch.len(),
            start.elapsed().as_secs_f64()
        );
        if run.batches > 1000 {
            bail!("the drain plan does not converge");
        }
        settled(runtime, &bootstrap, deadline)?;
        if run.throttle_bytes_per_sec.is_some() {
            let topics: Vec<String> = topic_throttles.into_keys().collect();
            runtime
                .block_on(rebalance::clear_throttles(&bootstrap, &all, &topics))
                .context("removing the throttles")?;
        }
    }
    let took = start.elapsed();
    run.drain_ms = Some(ms(took));
    run.copy_mbps = run
        .bytes_on_broker
        .map(|b| b as f64 / took.as_secs_f64() / 1e6);
    eprintln!(
        "  drained in {:.1} s ({} batches), {:.1} MB/s; floor {:?} ms; {:?} replicas left",
        took.as_secs_f64(),
        run.batches,
        run.copy_mbps.unwrap_or(0.0),
        run.floor_ms,
        run.replicas_left
    );
    if run.replicas_left != Some(0) {
        bail!("replicas left on broker {DRAINED}: {:?}", run.replicas_left);
    }
    Ok(())
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |ms| format!("{:.1} s", ms / 1000.0))
}

/// The figures as Markdown.
pub fn markdown(report: &Report) -> String {
    let mut out = crate::report::machine_line(report);
    let Some(r) = &report.drain else {
        return out;
    };
    out.push_str(&format!(
        "{} brokers; `{TOPIC}`: {} partitions × 2 replicas, every one on broker {DRAINED} and led by it; {} B records; batches of {} partitions\n\n",
        r.brokers, r.partitions, r.record_size, r.batch_size
    ));
    out.push_str(
        "| Drain | Data on broker 2 | Drain time | Copy rate | Throttle floor (data / throttle) | Time / floor | Batches | Replicas left |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in [&r.throttled, &r.unthrottled].into_iter().flatten() {
        let label = run
            .throttle_bytes_per_sec
            .map_or("unthrottled (what the machine allows)".to_string(), |t| {
                format!("**throttle {} MB/s**", t / 1_000_000)
            });
        let ratio = match (run.drain_ms, run.floor_ms) {
            (Some(t), Some(f)) if f > 0.0 => format!("{:.2}", t / f),
            _ => "–".to_string(),
        };
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {ratio} | {} | {} |\n",
            run.bytes_on_broker
                .map_or("?".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6)),
            secs(run.drain_ms),
            run.copy_mbps
                .map_or("–".to_string(), |m| format!("{m:.1} MB/s")),
            secs(run.floor_ms),
            run.batches,
            run.replicas_left.map_or("?".to_string(), |n| n.to_string()),
        ));
    }
    for run in [&r.throttled, &r.unthrottled].into_iter().flatten() {
        out.push_str(&format!(
            "\nData produced with acks=all ({}): {:.0} MB at {:.1} MB/s.",
            run.throttle_bytes_per_sec
                .map_or("unthrottled run".to_string(), |_| "throttled run"
                    .to_string()),
            run.produced_bytes as f64 / 1e6,
            run.produce_mbps
        ));
    }
    out.push('\n');
    out
}
