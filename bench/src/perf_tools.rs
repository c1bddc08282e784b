//! Apache Kafka's own `kafka-producer-perf-test` and `kafka-consumer-perf-test` (the
//! Java client), run against a broker and parsed from their summary lines, so the
//! peer comparison does not rest on librdkafka alone.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::apache::kill_group;
use crate::broker::{die_with_parent, tail_file, CpuUse};

/// The summary `kafka-producer-perf-test` prints last.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProducerPerf {
    pub command: String,
    pub records: u64,
    pub records_per_sec: f64,
    /// The tool's MB/sec (MiB).
    pub mib_per_sec: f64,
    pub avg_latency_ms: f64,
    pub max_latency_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub cpu: Option<CpuUse>,
}

/// The values line `kafka-consumer-perf-test` prints under its header.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsumerPerf {
    pub command: String,
    pub records: u64,
    /// Whole run, the group join included.
    pub records_per_sec: f64,
    pub rebalance_ms: f64,
    pub fetch_ms: f64,
    /// After the group join: fetching only.
    pub fetch_records_per_sec: f64,
    pub cpu: Option<CpuUse>,
}

/// A tool process in its own group; dropping it SIGKILLs the group.
struct ToolRun(Option<Child>);

impl Drop for ToolRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            kill_group(child.id());
            let _ = child.wait();
        }
    }
}

/// Runs `tools_dir/tool args...` to completion (bounded by `timeout`), its output in
/// `log_dir/<tool>.out` and `.err`; returns the standard output. A non-zero exit or
/// a timeout is an error carrying the tail of the error output.
fn run_tool(
    tools_dir: &Path,
    tool: &str,
    args: &[String],
    log_dir: &Path,
    timeout: Duration,
) -> Result<String> {
    let out_path = log_dir.join(format!("{tool}.out"));
    let err_path = log_dir.join(format!("{tool}.err"));
    let mut cmd = Command::new(tools_dir.join(tool));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .process_group(0);
    die_with_parent(&mut cmd);
    let mut run =
        ToolRun(Some(cmd.spawn().with_context(|| {
            format!("spawning {}", tools_dir.join(tool).display())
        })?));
    let deadline = Instant::now() + timeout;
    let status = loop {
        let child = run
            .0
            .as_mut()
            .ok_or_else(|| anyhow!("{tool} not running"))?;
        if let Some(status) = child.try_wait()? {
            run.0 = None;
            break status;
        }
        if Instant::now() >= deadline {
            bail!(
                "{tool} still running after {timeout:?}; stderr tail:\n{}",
                tail_file(&err_path, 10)
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        bail!(
            "{tool} exited with {status}; stderr tail:\n{}\nstdout tail:\n{}",
            tail_file(&err_path, 10),
            tail_file(&out_path, 5)
        );
    }
    Ok(std::fs::read_to_string(&out_path)?)
}

fn owned(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The arguments both tools take alike.
fn common_args(bootstrap: &str, topic: &str, records: u64) -> Vec<String> {
    owned(&[
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--num-records",
        &records.to_string(),
    ])
}

/// `kafka-producer-perf-test`: `records` records of `record_size` bytes as fast as it
/// goes, with `acks` and the Java producer's other defaults.
#[allow(clippy::too_many_arguments)]
pub fn producer_perf_test(
    tools_dir: &Path,
    bootstrap: &str,
    topic: &str,
    records: u64,
    record_size: u64,
    acks: &str,
    log_dir: &Path,
    timeout: Duration,
) -> Result<ProducerPerf> {
    let mut args = common_args(bootstrap, topic, records);
    args.extend(owned(&[
        "--record-size",
        &record_size.to_string(),
        "--throughput",
        "-1",
        "--command-property",
        &format!("acks={acks}"),
    ]));
    let out = run_tool(
        tools_dir,
        "kafka-producer-perf-test",
        &args,
        log_dir,
        timeout,
    )?;
    let mut perf = parse_producer_summary(&out)?;
    perf.command = format!("kafka-producer-perf-test {}", args.join(" "));
    Ok(perf)
}

/// The last line of the form "N records sent, R records/sec (M MB/sec), A ms avg
/// latency, X ms max latency, P ms 50th, P ms 95th, P ms 99th, P ms 99.9th.".
pub fn parse_producer_summary(out: &str) -> Result<ProducerPerf> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("99.9th"))
        .ok_or_else(|| anyhow!("no summary line in the output:\n{out}"))?;
    // Every figure is the first word of a comma-separated part ("(M MB/sec)" aside).
    let parts: Vec<&str> = line.trim_end_matches('.').split(", ").collect();
    let number = |i: usize| -> Result<f64> {
        parts
            .get(i)
            .and_then(|p| p.split_whitespace().next())
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| anyhow!("field {i} unreadable in {line:?}"))
    };
    let mib_per_sec = parts
        .get(1)
        .and_then(|p| p.split_once('(')?.1.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no MB/sec in {line:?}"))?;
    Ok(ProducerPerf {
        records: number(0)? as u64,
        records_per_sec: number(1)?,
        mib_per_sec,
        avg_latency_ms: number(2)?,
        max_latency_ms: number(3)?,
        p50_ms: number(4)?,
        p95_ms: number(5)?,
        p99_ms: number(6)?,
        p999_ms: number(7)?,
        ..Default::default()
    })
}

/// `kafka-consumer-perf-test`: reads `records` records of `topic` from the start in a
/// new group.
pub fn consumer_perf_test(
    tools_dir: &Path,
    bootstrap: &str,
    topic: &str,
    records: u64,
    log_dir: &Path,
    timeout: Duration,
) -> Result<ConsumerPerf> {
    let mut args = common_args(bootstrap, topic, records);
    args.extend(owned(&["--timeout", "30000"]));
    let out = run_tool(
        tools_dir,
        "kafka-consumer-perf-test",
        &args,
        log_dir,
        timeout,
    )?;
    let mut perf = parse_consumer_summary(&out)?;
    if perf.records < records {
        bail!(
            "kafka-consumer-perf-test read {} of {records} records",
            perf.records
        );
    }
    perf.command = format!("kafka-consumer-perf-test {}", args.join(" "));
    Ok(perf)
}

/// The values under the header "start.time, end.time, data.consumed.in.MB, MB.sec,
/// data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec,
/// fetch.nMsg.sec", found by name.
pub fn parse_consumer_summary(out: &str) -> Result<ConsumerPerf> {
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("data.consumed.in.nMsg"))
        .ok_or_else(|| anyhow!("no header line in the output:\n{out}"))?;
    let header: Vec<&str> = lines[at].split(',').map(str::trim).collect();
    let values: Vec<&str> = lines
        .get(at + 1)
        .ok_or_else(|| anyhow!("no values under the header:\n{out}"))?
        .split(',')
        .map(str::trim)
        .collect();
    let field = |name: &str| -> Result<f64> {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| values.get(i)?.parse().ok())
            .ok_or_else(|| anyhow!("{name} missing or unreadable in:\n{out}"))
    };
    Ok(ConsumerPerf {
        records: field("data.consumed.in.nMsg")? as u64,
        records_per_sec: field("nMsg.sec")?,
        rebalance_ms: field("rebalance.time.ms")?,
        fetch_ms: field("fetch.time.ms")?,
        fetch_records_per_sec: field("fetch.nMsg.sec")?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_summary_is_the_last_line_with_percentiles() {
        let out = "500000 records sent, 99980.0 records/sec (97.64 MB/sec), 12.1 ms avg latency, 300.0 ms max latency.\n\
            1000000 records sent, 123456.7 records/sec (120.56 MB/sec), 12.34 ms avg latency, 456.00 ms max latency, 10 ms 50th, 30 ms 95th, 50 ms 99th, 60 ms 99.9th.\n";
        let p = parse_producer_summary(out).unwrap();
        assert_eq!(p.records, 1_000_000);
        assert_eq!(p.records_per_sec, 123456.7);
        assert_eq!(p.mib_per_sec, 120.56);
        assert_eq!(p.avg_latency_ms, 12.34);
        assert_eq!(p.max_latency_ms, 456.0);
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.p99_ms, p.p999_ms),
            (10.0, 30.0, 50.0, 60.0)
        );
        assert!(parse_producer_summary("1 records sent, 1.0 records/sec\n").is_err());
    }

    #[test]
    fn consumer_summary_is_read_by_column_name() {
        let out = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
            2026-12-06 02:30:00:123, 2026-12-06 02:30:05:123, 488.2812, 97.6562, 500000, 100000.0000, 3012, 1988, 245.6143, 251509.0543\n";
        let c = parse_consumer_summary(out).unwrap();
        assert_eq!(c.records, 500_000);
        assert_eq!(c.records_per_sec, 100000.0);
        assert_eq!(c.rebalance_ms, 3012.0);
        assert_eq!(c.fetch_ms, 1988.0);
        assert_eq!(c.fetch_records_per_sec, 251509.0543);
        assert!(parse_consumer_summary("start.time, end.time\n").is_err());
    }
}
