//! `strom-bench connections`: the resident memory idle client connections cost a release
//! broker, and whether it comes back once they close. For each count (default 1,000 and
//! 10,000) it opens that many idle TCP connections, reads the broker's RSS once the broker
//! counts them all, closes them, and reads RSS again once memory settles; beside it the
//! broker's open-file limit and the machine's memory, measured in the same run.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::broker::{self, Broker};
use crate::{phase, Args, Report};

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct ConnectionArgs {
    /// Idle connection counts, one step each, in order.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    counts: Vec<usize>,
    /// Upper bound, in seconds, on waiting for memory to come back after a step.
    #[arg(long, default_value_t = 10)]
    return_secs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsResult {
    /// The broker's open-file limit (soft), from /proc/<pid>/limits.
    pub broker_fd_limit: Option<u64>,
    pub mem_total_kib: Option<u64>,
    pub steps: Vec<ConnectionStep>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionStep {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_with_kib: u64,
    pub rss_after_kib: u64,
    pub bytes_per_connection: u64,
    /// Time to open them all and see the broker count them.
    pub open_secs: f64,
}

pub fn run(args: &Args, c: &ConnectionArgs, report: &mut Report) -> Result<()> {
    std::fs::create_dir_all(&args.base_dir)
        .with_context(|| format!("creating {}", args.base_dir.display()))?;
    let base_dir = args.base_dir.canonicalize()?;
    report.machine = crate::machine(&base_dir);
    let broker_path = args.broker.canonicalize().with_context(|| {
        format!(
            "broker binary {} (build it: cargo build --release -p strom-broker)",
            args.broker.display()
        )
    })?;
    let most = c.counts.iter().copied().max().unwrap_or(0);
    let own_limit = raise_fd_limit();
    if own_limit < most as u64 + 100 {
        bail!("this process may open {own_limit} files; {most} connections need more");
    }

    phase("start the broker");
    let (mut b, t0) = Broker::spawn(&broker_path, &base_dir, &args.overrides, args.keep_data)?;
    b.wait_serving(t0, Duration::from_secs(20), None)?;
    let mut result = ConnectionsResult {
        broker_fd_limit: broker::fd_limit(b.pid),
        mem_total_kib: report.machine.mem_total_kib,
        steps: Vec::new(),
    };
    // Warm up: the first connections size the runtime's tables.
    let warm = open(&b, 50)?;
    wait_count(&b, 50)?;
    drop(warm);
    wait_count(&b, 0)?;

    for &n in &c.counts {
        phase(&format!("{n} idle connections"));
        let before = b.rss()?.rss_kib;
        let started = Instant::now();
        let conns = open(&b, n)?;
        wait_count(&b, n)?;
        let open_secs = started.elapsed().as_secs_f64();
        b.check_alive()?;
        let with = b.rss()?.rss_kib;
        drop(conns);
        wait_count(&b, 0)?;
        let deadline = Instant::now() + Duration::from_secs(c.return_secs);
        let mut after = b.rss()?.rss_kib;
        while after > before + 1024 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(200));
            after = b.rss()?.rss_kib;
        }
        let step = ConnectionStep {
            connections: n,
            rss_before_kib: before,
            rss_with_kib: with,
            rss_after_kib: after,
            bytes_per_connection: with.saturating_sub(before) * 1024 / n.max(1) as u64,
            open_secs,
        };
        eprintln!(
            "  RSS {before} KiB -> {with} KiB with them ({} B each) -> {after} KiB after",
            step.bytes_per_connection
        );
        result.steps.push(step);
    }
    b.shutdown(Duration::from_secs(10));
    report.connections = Some(result);
    Ok(())
}

/// Opens `n` connections to the broker's Kafka port and leaves them idle.
fn open(b: &Broker, n: usize) -> Result<Vec<TcpStream>> {
    (0..n)
        .map(|i| TcpStream::connect(b.kafka_addr).with_context(|| format!("connection {}", i + 1)))
        .collect()
}

/// Waits until the broker reports `n` open client connections.
fn wait_count(b: &Broker, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = broker::http_get(b.admin_addr, "/metrics")?;
        let open = broker::metric_value(
            &text,
            "kafka_server_socketservermetrics_connection_count",
            &[("listener", "PLAINTEXT")],
        )
        .unwrap_or(0.0);
        if open as usize == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the broker counts {open} connections, expected {n}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Raises this process's open-file limit to its hard limit; returns the soft limit.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// The Markdown table for this command.
pub fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut s = format!(
        "Machine: {} cores ({}), {:.1} GiB RAM, kernel {}\n\n",
        m.nproc,
        m.cpu_model.as_deref().unwrap_or("?"),
        m.mem_total_kib.unwrap_or(0) as f64 / 1024.0 / 1024.0,
        m.kernel.as_deref().unwrap_or("?"),
    );
    let Some(c) = &r.connections else {
        return s;
    };
    s.push_str(&format!(
        "Broker open-file limit: {}\n\n",
        c.broker_fd_limit.map_or("?".to_string(), |l| l.to_string())
    ));
    s.push_str("| Idle connections | RSS before | RSS with them | Per connection | RSS after closing | Share of RAM |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for step in &c.steps {
        let share = c.mem_total_kib.map_or("?".to_string(), |t| {
            format!(
                "{:.3}%",
                step.rss_with_kib.saturating_sub(step.rss_before_kib) as f64 * 100.0
                    / t.max(1) as f64
            )
        });
        s.push_str(&format!(
            "| {} | {:.1} MiB | {:.1} MiB | {} B | {:.1} MiB | {share} |\n",
            step.connections,
            step.rss_before_kib as f64 / 1024.0,
            step.rss_with_kib as f64 / 1024.0,
            step.bytes_per_connection,
            step.rss_after_kib as f64 / 1024.0,
        ));
    }
    // What the descriptor limit would let idle clients cost at the largest step's rate.
    if let (Some(limit), Some(step)) = (c.broker_fd_limit, c.steps.last()) {
        let bytes = limit.saturating_mul(step.bytes_per_connection);
        let share = c.mem_total_kib.map_or("?".to_string(), |t| {
            format!("{:.2}%", bytes as f64 * 100.0 / (t.max(1) * 1024) as f64)
        });
        s.push_str(&format!(
            "\nAt the open-file limit ({limit} connections) idle clients would hold {:.1} MiB, \
             {share} of RAM.\n",
            bytes as f64 / 1024.0 / 1024.0
        ));
    }
    s
}
