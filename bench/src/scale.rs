//! `strom-bench scale`: how one release broker copes with many partitions. For each
//! partition count (1k, 10k, 100k by default) a fresh broker creates that many partitions
//! (topics of at most 10,000 partitions, Strom's per-topic limit), and the run records
//! the creation rate (from the CreateTopics request until `/ready` says every partition is
//! served), resident memory and open descriptors with the partitions open, the latency of
//! a Metadata request for every topic, and the time from a SIGKILL to `/ready` again.
//! Each row stands beside the limits measured in the same run: the broker's descriptor
//! limit (`/proc/<pid>/limits`) and the machine's memory.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use serde::Serialize;

use crate::broker::{fd_limit, http_status, ms, open_fds, read_rss, Broker};
use crate::kafka::block_on;
use crate::{phase, Args, Report};

/// Strom's (and the bench's) largest topic.
const MAX_PER_TOPIC: u32 = 10_000;
/// Metadata requests timed per row; the median is reported.
const METADATA_RUNS: usize = 5;

#[derive(ClapArgs, Debug, Clone, Serialize)]
pub struct ScaleArgs {
    /// Partition counts, one fresh broker each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub partitions: Vec<u32>,
    /// Upper bound on creating the partitions and on a restart, each, in seconds.
    #[arg(long, default_value_t = 600)]
    pub phase_timeout_secs: u64,
}

/// One partition count's figures. `None` where the run did not get that far; `error`
/// says why.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ScaleRow {
    pub partitions: u32,
    pub create_ms: Option<f64>,
    pub partitions_per_sec: Option<f64>,
    pub rss_kib: Option<u64>,
    pub open_fds: Option<u64>,
    /// The broker's soft RLIMIT_NOFILE (it raises it to the hard limit at start).
    pub fd_limit: Option<u64>,
    pub metadata_all_ms: Option<f64>,
    pub restart_to_ready_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ScaleResult {
    pub mem_total_kib: Option<u64>,
    pub rows: Vec<ScaleRow>,
}

pub fn run(
    args: &Args,
    scale: &ScaleArgs,
    broker_path: &Path,
    base_dir: &Path,
    report: &mut Report,
) -> Result<()> {
    let mut result = ScaleResult {
        mem_total_kib: report.machine.mem_total_kib,
        rows: Vec::new(),
    };
    let timeout = Duration::from_secs(scale.phase_timeout_secs);
    for &partitions in &scale.partitions {
        phase(&format!("scale: {partitions} partitions"));
        let mut row = ScaleRow {
            partitions,
            ..Default::default()
        };
        if let Err(e) = measure(args, broker_path, base_dir, partitions, timeout, &mut row) {
            eprintln!("[strom-bench] scale {partitions}: {e:#}");
            row.error = Some(format!("{e:#}"));
        }
        result.rows.push(row);
    }
    println!("{}", markdown(&result));
    let failed: Vec<String> = result
        .rows
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.partitions)))
        .collect();
    report.scale = Some(result);
    if !failed.is_empty() {
        bail!("scale rows failed: {}", failed.join("; "));
    }
    Ok(())
}

fn measure(
    args: &Args,
    broker_path: &Path,
    base_dir: &Path,
    partitions: u32,
    timeout: Duration,
    row: &mut ScaleRow,
) -> Result<()> {
    // Kept on drop: the restart reuses the directory; it is removed below.
    let (broker, t0) = Broker::spawn(broker_path, base_dir, &args.overrides, true)?;
    let run_dir = broker.run_dir.clone();
    let outcome = measure_on(args, broker, t0, broker_path, partitions, timeout, row);
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    outcome
}

fn measure_on(
    args: &Args,
    mut broker: Broker,
    t0: Instant,
    broker_path: &Path,
    partitions: u32,
    timeout: Duration,
    row: &mut ScaleRow,
) -> Result<()> {
    broker.wait_serving(t0, Duration::from_secs(60), None)?;
    wait_ready(&mut broker, t0, timeout)?;
    row.fd_limit = fd_limit(broker.pid);

    let started = Instant::now();
    let created = create_topics(&broker.bootstrap(), partitions, timeout)
        .and_then(|()| wait_ready(&mut broker, started, timeout));
    if let Err(e) = created {
        // How far it got: what the broker holds when it gives up is the point.
        row.rss_kib = read_rss(broker.pid).ok().map(|r| r.rss_kib);
        row.open_fds = open_fds(broker.pid);
        return Err(e);
    }
    let took = started.elapsed();
    row.create_ms = Some(ms(took));
    row.partitions_per_sec = Some(f64::from(partitions) / took.as_secs_f64());
    row.rss_kib = read_rss(broker.pid).ok().map(|r| r.rss_kib);
    row.open_fds = open_fds(broker.pid);
    row.metadata_all_ms = Some(metadata_latency(&broker.bootstrap())?);

    // SIGKILL (the guard's drop), then the same node on the same data and ports.
    let (kafka_addr, admin_addr, run_dir) =
        (broker.kafka_addr, broker.admin_addr, broker.run_dir.clone());
    drop(broker);
    let mut overrides = vec![
        format!("listeners=PLAINTEXT://{kafka_addr}"),
        format!("advertised.listeners=PLAINTEXT://{kafka_addr}"),
        "node.id=0".to_string(),
    ];
    overrides.extend_from_slice(&args.overrides);
    let (mut broker, t0) = Broker::launch(
        broker_path,
        run_dir,
        None,
        kafka_addr,
        admin_addr,
        &overrides,
    )?;
    wait_ready(&mut broker, t0, timeout)?;
    row.restart_to_ready_ms = Some(ms(t0.elapsed()));
    Ok(())
}

/// Waits until `/ready` answers 200 (every partition placed here served, unfenced).
fn wait_ready(broker: &mut Broker, since: Instant, timeout: Duration) -> Result<()> {
    while since.elapsed() < timeout {
        broker.check_alive()?;
        if http_status(broker.admin_addr, "/ready").ok() == Some(200) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "not ready within {timeout:?}; stderr tail:\n{}",
        broker.stderr_tail(10)
    )
}

/// Creates `partitions` partitions as topics `scale-0`, `scale-1`, … of at most
/// `MAX_PER_TOPIC` each, in one CreateTopics request.
fn create_topics(bootstrap: &str, partitions: u32, timeout: Duration) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating admin client")?;
    let sizes: Vec<(String, i32)> = (0..partitions.div_ceil(MAX_PER_TOPIC))
        .map(|i| {
            let n = (partitions - i * MAX_PER_TOPIC).min(MAX_PER_TOPIC);
            (format!("scale-{i}"), n as i32)
        })
        .collect();
    let topics: Vec<NewTopic> = sizes
        .iter()
        .map(|(name, n)| NewTopic::new(name, *n, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = block_on(admin.create_topics(&topics, &opts)).context("CreateTopics")?;
    for r in results {
        if let Err((name, code)) = r {
            bail!("CreateTopics {name}: {code}");
        }
    }
    Ok(())
}

/// Median time of a Metadata request for every topic.
fn metadata_latency(bootstrap: &str) -> Result<f64> {
    let client: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating the metadata client")?;
    let mut times = Vec::with_capacity(METADATA_RUNS);
    for _ in 0..METADATA_RUNS {
        let started = Instant::now();
        client
            .client()
            .fetch_metadata(None, Duration::from_secs(60))
            .context("metadata for every topic")?;
        times.push(ms(started.elapsed()));
    }
    Ok(crate::median(times).unwrap_or(0.0))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

/// The rows as a Markdown table, for BENCHMARKS.md.
pub fn markdown(result: &ScaleResult) -> String {
    let mem = result
        .mem_total_kib
        .map_or_else(|| "unknown".to_string(), |k| format!("{} MiB", k / 1024));
    let mut out = String::from(
        "| partitions | create (s) | partitions/s | RSS (MiB) | open fds | fd limit | metadata, all topics (ms) | SIGKILL → ready (s) | error |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in &result.rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.partitions,
            opt_f(r.create_ms.map(|m| m / 1000.0), 2),
            opt_f(r.partitions_per_sec, 0),
            opt_f(r.rss_kib.map(|k| k as f64 / 1024.0), 0),
            opt(r.open_fds),
            opt(r.fd_limit),
            opt_f(r.metadata_all_ms, 1),
            opt_f(r.restart_to_ready_ms.map(|m| m / 1000.0), 2),
            r.error
                .as_deref()
                .map(|e| e.lines().next().unwrap_or("").replace('|', "/"))
                .unwrap_or_default(),
        ));
    }
    out.push_str(&format!("\nMachine memory: {mem}.\n"));
    out
}
