//! `strom-bench replicated`: produce with acks=all to one partition replicated over
//! three local brokers, against the disk limit divided by the replication factor.
//!
//! All brokers share this machine's one disk, so every byte produced is written once
//! per replica: with three replicas the disk can take at most a third of its
//! bandwidth in produced bytes. The runs are the main suite's produce, latency and
//! consume runs (`crate::produce_run`, `latency_run`, `consume_run`) against a
//! `Cluster`, with the topic's ISR watched throughout: if a follower fell out of the
//! ISR, acks=all would wait for fewer copies and the figure would not be a
//! three-way one.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use crate::broker::{http_get, metric_value, ms, Rss, UnderTest};
use crate::cluster::Cluster;
use crate::kafka::{self, PartitionReplicas, ProducerSettings};
use crate::{phase, Args, Report};

/// The target: acks=all throughput at least this share of disk bandwidth / replicas.
pub const TARGET_RATIO: f64 = 0.6;

/// The acks the target is stated for.
const TARGET_ACKS: &str = "all";
const TOPIC: &str = "bench-replicated";
const LATENCY_TOPIC: &str = "bench-replicated-latency";

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct ReplicatedArgs {
    /// Brokers in the cluster (every one a controller voter); also the topic's
    /// replication factor.
    #[arg(long, default_value_t = 3)]
    pub brokers: usize,
    /// The brokers' min.insync.replicas.
    #[arg(long, default_value_t = 2)]
    pub min_insync_replicas: usize,
    /// Producer acks for the throughput and latency runs. The target is for acks=all;
    /// acks=1 on the same cluster shows what waiting for the followers costs.
    #[arg(long = "acks", default_value = TARGET_ACKS)]
    pub acks: String,
    /// Producer enable.idempotence (off by default, like the single-broker runs).
    #[arg(long)]
    pub idempotence: bool,
    /// Upper bound on the wait for every broker's /ready and for a new topic's full ISR.
    #[arg(long, default_value_t = 60)]
    pub ready_timeout_secs: u64,
    /// How often the ISR is read (metadata) during the load runs, in ms.
    #[arg(long, default_value_t = 250)]
    pub isr_poll_ms: u64,
}

/// What the ISR watch saw during one load run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IsrSeen {
    pub polls: u64,
    pub smallest_isr: Option<usize>,
    /// Each distinct (leader, ISR) in the order seen.
    pub changes: Vec<PartitionReplicas>,
    pub failed_polls: u64,
}

/// Request counts and the brokers' total time handling them, summed over brokers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestLoad {
    pub produce_requests: f64,
    /// Receipt to response, acks=all waiting for the followers included.
    pub produce_ms_sum: f64,
    pub fetch_requests: f64,
    /// Receipt to response, a parked long poll's wait included.
    pub fetch_ms_sum: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicatedResult {
    pub brokers: usize,
    pub replication_factor: usize,
    pub min_insync_replicas: usize,
    pub acks: String,
    pub idempotence: bool,
    /// First spawn → every broker's /ready answered 200.
    pub ready_ms: Option<f64>,
    /// CreateTopics sent → metadata shows every replica in the ISR.
    pub topic_isr_full_ms: Option<f64>,
    pub topic: String,
    pub at_start: Option<PartitionReplicas>,
    pub during_produce: Option<IsrSeen>,
    pub during_latency: Option<IsrSeen>,
    pub after_runs: Option<PartitionReplicas>,
    pub high_watermark_after_produce: Option<i64>,
    /// Each broker's log end offset of the topic from its /metrics after the produce
    /// run (node id order): every replica should hold every acknowledged record.
    pub replica_log_end_offsets: Vec<Option<i64>>,
    /// Requests the brokers handled during the throughput run (/metrics, all brokers):
    /// the producer's Produce requests and, as no consumer runs then, the followers'
    /// Fetch requests.
    pub produce_run_requests: Option<RequestLoad>,
    /// Payload bytes acknowledged in the throughput run.
    pub produce_bytes: u64,
    /// ISR shrinks and expands over all brokers during the load runs (/metrics).
    pub isr_shrinks: Option<f64>,
    pub isr_expands: Option<f64>,
    /// Disk limit (write + fsync) / replication factor.
    pub limit_mbps: Option<f64>,
    pub ratio: Option<f64>,
    pub target_ratio: f64,
    /// None if not measured or not comparable (the ISR shrank during the run, or the
    /// run was not acks=all).
    pub met: Option<bool>,
    pub rss_after: Vec<Rss>,
}

pub fn run(
    args: &Args,
    r: &ReplicatedArgs,
    broker_path: &Path,
    base_dir: &Path,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    if r.brokers == 0 || r.min_insync_replicas == 0 || r.min_insync_replicas > r.brokers {
        bail!("need --brokers ≥ 1 and 1 ≤ --min-insync-replicas ≤ --brokers");
    }
    let mut result = ReplicatedResult {
        brokers: r.brokers,
        replication_factor: r.brokers,
        min_insync_replicas: r.min_insync_replicas,
        acks: r.acks.clone(),
        idempotence: r.idempotence,
        topic: TOPIC.into(),
        target_ratio: TARGET_RATIO,
        limit_mbps: report.disk_fsync_mbps.map(|d| d / r.brokers as f64),
        ..Default::default()
    };
    phase(&format!(
        "replicated: {} brokers, min.insync.replicas={}",
        r.brokers, r.min_insync_replicas
    ));
    let mut overrides = vec![format!("min.insync.replicas={}", r.min_insync_replicas)];
    overrides.extend_from_slice(&args.overrides);
    let (mut cluster, t0) =
        Cluster::start(broker_path, base_dir, r.brokers, &overrides, args.keep_data)?;
    eprintln!(
        "  pids {:?}, bootstrap {}, dir {}",
        cluster.pids(),
        cluster.bootstrap(),
        cluster.dir.display()
    );
    // Filled in step by step, so a failure still reports what was measured.
    let outcome = measure(args, r, &mut cluster, t0, pool, report, &mut result);
    report.replicated = Some(result);
    outcome
    // `cluster` dropped here: every broker is killed, then its directory removed.
}

fn measure(
    args: &Args,
    r: &ReplicatedArgs,
    cluster: &mut Cluster,
    t0: Instant,
    pool: &[u8],
    report: &mut Report,
    result: &mut ReplicatedResult,
) -> Result<()> {
    let ready_timeout = Duration::from_secs(r.ready_timeout_secs);
    let ready = cluster.wait_ready(t0, ready_timeout)?;
    result.ready_ms = Some(ms(ready));
    eprintln!("  every broker ready after {:.0} ms", ms(ready));
    let bootstrap = cluster.bootstrap();

    let t = Instant::now();
    result.at_start = Some(create_replicated(
        &bootstrap,
        TOPIC,
        r.brokers,
        ready_timeout,
    )?);
    result.topic_isr_full_ms = Some(ms(t.elapsed()));
    eprintln!(
        "  {TOPIC}: {:?} after {:.0} ms",
        result.at_start,
        ms(t.elapsed())
    );
    let counters_before = isr_counters(cluster);
    let requests_before = request_load(cluster);

    let settings = ProducerSettings {
        bootstrap: bootstrap.clone(),
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        record_size: args.record_size as usize,
        idempotence: r.idempotence,
        client_settings: Vec::new(),
    };
    let poll = Duration::from_millis(r.isr_poll_ms.max(10));
    let (acked, seen) = watching_isr(&bootstrap, TOPIC, poll, || {
        crate::produce_run(args, cluster, &settings, TOPIC, 1, &r.acks, pool, report)
    });
    let acked = acked?;
    result.during_produce = Some(seen);
    result.produce_bytes = report.produce.last().map_or(0, |p| p.bytes_acked);
    if let (Some(a), Some(b)) = (requests_before, request_load(cluster)) {
        result.produce_run_requests = Some(RequestLoad {
            produce_requests: b.produce_requests - a.produce_requests,
            produce_ms_sum: b.produce_ms_sum - a.produce_ms_sum,
            fetch_requests: b.fetch_requests - a.fetch_requests,
            fetch_ms_sum: b.fetch_ms_sum - a.fetch_ms_sum,
        });
    }
    check_replicas(cluster, acked, report, result);
    if let (Some(limit), Some(p)) = (result.limit_mbps, report.produce.last()) {
        let ratio = p.mbps / limit;
        result.ratio = Some(ratio);
        let full_isr = result
            .during_produce
            .as_ref()
            .and_then(|s| s.smallest_isr)
            .is_some_and(|n| n >= r.brokers);
        result.met = (full_isr && r.acks == TARGET_ACKS).then_some(ratio >= TARGET_RATIO);
        eprintln!(
            "  {:.1} MB/s = {:.0}% of disk/{} ({limit:.1} MB/s); target {:.0}%",
            p.mbps,
            100.0 * ratio,
            r.brokers,
            100.0 * TARGET_RATIO
        );
    }

    create_replicated(&bootstrap, LATENCY_TOPIC, r.brokers, ready_timeout)?;
    let (latency, seen) = watching_isr(&bootstrap, LATENCY_TOPIC, poll, || {
        crate::latency_run(
            args,
            cluster,
            &settings,
            LATENCY_TOPIC,
            &r.acks,
            pool,
            report,
        )
    });
    latency?;
    result.during_latency = Some(seen);
    if let (Some((s0, e0)), Some((s1, e1))) = (counters_before, isr_counters(cluster)) {
        result.isr_shrinks = Some(s1 - s0);
        result.isr_expands = Some(e1 - e0);
    }
    result.after_runs = kafka::wait_isr(&bootstrap, TOPIC, 0, 0, Duration::from_secs(5)).ok();

    // Reads every record back from the leader: loss, corruption and duplicates fail the run.
    crate::consume_run(args, cluster, TOPIC, 1, acked, pool, report)?;
    result.rss_after = cluster.rss()?;
    Ok(())
}

/// Creates a one-partition topic with `replicas` replicas and waits until its ISR
/// holds them all.
fn create_replicated(
    bootstrap: &str,
    topic: &str,
    replicas: usize,
    timeout: Duration,
) -> Result<PartitionReplicas> {
    kafka::create_topic(bootstrap, topic, 1, replicas as i32)?;
    kafka::wait_isr(bootstrap, topic, 0, replicas, timeout)
}

/// Runs `f` while a thread reads `topic`-0's leader and ISR from metadata every
/// `every`, and returns `f`'s result with what the thread saw.
pub fn watching_isr<T>(
    bootstrap: &str,
    topic: &str,
    every: Duration,
    f: impl FnOnce() -> T,
) -> (T, IsrSeen) {
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(IsrSeen::default());
    let out = thread::scope(|scope| {
        scope.spawn(|| {
            let client: Option<BaseConsumer> = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .create()
                .ok();
            while !stop.load(Ordering::Relaxed) {
                let now = client.as_ref().and_then(|c| {
                    kafka::partition_replicas(c.client(), topic, 0, Duration::from_secs(1)).ok()
                });
                // A poisoned lock only means a panicking reader; its data is still whole.
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                s.polls += 1;
                match now {
                    Some(p) => {
                        s.smallest_isr =
                            Some(s.smallest_isr.map_or(p.isr.len(), |m| m.min(p.isr.len())));
                        let changed = s
                            .changes
                            .last()
                            .is_none_or(|l| l.leader != p.leader || l.isr != p.isr);
                        if changed {
                            s.changes.push(p);
                        }
                    }
                    None => s.failed_polls += 1,
                }
                drop(s);
                thread::sleep(every);
            }
        });
        let out = f();
        stop.store(true, Ordering::Relaxed);
        out
    });
    (out, seen.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// ISR shrinks and expands summed over every broker's /metrics; None if any broker
/// did not answer.
fn isr_counters(cluster: &Cluster) -> Option<(f64, f64)> {
    let mut sums = (0.0, 0.0);
    for b in &cluster.brokers {
        let (status, text) = http_get(b.admin_addr, "/metrics").ok()?;
        if status != 200 {
            return None;
        }
        sums.0 += metric_value(&text, "kafka_server_replicamanager_isrshrinks_total", &[])?;
        sums.1 += metric_value(&text, "kafka_server_replicamanager_isrexpands_total", &[])?;
    }
    Some(sums)
}

/// Produce and Fetch request counts and time sums over every broker's /metrics; None
/// if any broker did not answer.
fn request_load(cluster: &Cluster) -> Option<RequestLoad> {
    let mut load = RequestLoad::default();
    for b in &cluster.brokers {
        let (status, text) = http_get(b.admin_addr, "/metrics").ok()?;
        if status != 200 {
            return None;
        }
        // A broker that has not handled an API yet has no sample for it.
        let v =
            |name: &str, api: &str| metric_value(&text, name, &[("request", api)]).unwrap_or(0.0);
        let count = "kafka_network_requestmetrics_requests_total";
        let sum = "kafka_network_requestmetrics_totaltimems_sum";
        load.produce_requests += v(count, "Produce");
        load.produce_ms_sum += v(sum, "Produce");
        load.fetch_requests += v(count, "Fetch");
        load.fetch_ms_sum += v(sum, "Fetch");
    }
    Some(load)
}

/// After the produce run: the leader's high watermark and every replica's log end
/// offset must cover every acknowledged record. Followers may still be a fetch behind
/// the last acknowledgement's high watermark, so their offsets are read until they
/// catch up (at most 10 s).
fn check_replicas(
    cluster: &Cluster,
    acked: u64,
    report: &mut Report,
    result: &mut ReplicatedResult,
) {
    let bootstrap = cluster.bootstrap();
    // An acks=all acknowledgement means the high watermark had passed the record, so
    // the first reading must already cover every acknowledged record; with fewer acks
    // the followers may still be catching up, and the high watermark with them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut first = true;
    loop {
        match kafka::watermarks(&bootstrap, TOPIC, 0) {
            Ok((low, high)) => {
                let covered = high.saturating_sub(low) >= acked as i64;
                if first {
                    result.high_watermark_after_produce = Some(high);
                    if !covered && result.acks == TARGET_ACKS {
                        report.errors.push(format!(
                            "{TOPIC}: high watermark {high} (log start {low}) below the {acked} records acknowledged with acks=all"
                        ));
                        break;
                    }
                }
                if covered {
                    break;
                }
                if Instant::now() >= deadline {
                    report.errors.push(format!(
                        "{TOPIC}: high watermark {high} (log start {low}) still below the {acked} acknowledged records after 10 s"
                    ));
                    break;
                }
            }
            Err(e) => {
                report.errors.push(format!("{e:#}"));
                break;
            }
        }
        first = false;
        thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let partition = [("topic", TOPIC), ("partition", "0")];
    loop {
        let ends: Vec<Option<i64>> = cluster
            .brokers
            .iter()
            .map(|b| {
                let (_, text) = http_get(b.admin_addr, "/metrics").ok()?;
                metric_value(&text, "kafka_log_log_logendoffset", &partition).map(|v| v as i64)
            })
            .collect();
        let behind = ends.iter().any(|e| e.is_none_or(|e| e < acked as i64));
        result.replica_log_end_offsets = ends;
        if !behind {
            break;
        }
        if Instant::now() >= deadline {
            report.errors.push(format!(
                "{TOPIC}: replica log end offsets {:?} (node id order) do not all cover the {acked} acknowledged records",
                result.replica_log_end_offsets
            ));
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "  high watermark {:?}, replica log end offsets {:?}",
        result.high_watermark_after_produce, result.replica_log_end_offsets
    );
}

#[cfg(test)]
mod tests {
    use crate::broker::metric_value;

    #[test]
    fn metric_value_matches_name_and_every_label() {
        let text = "# HELP x\n\
            kafka_log_log_logendoffset{partition=\"0\",topic=\"bench-replicated-latency\"} 7\n\
            kafka_log_log_logendoffset{partition=\"10\",topic=\"bench-replicated\"} 8\n\
            kafka_log_log_logendoffset{partition=\"0\",topic=\"bench-replicated\"} 524288\n\
            kafka_server_replicamanager_isrshrinks_total 3\n";
        let p = [("topic", "bench-replicated"), ("partition", "0")];
        assert_eq!(
            metric_value(text, "kafka_log_log_logendoffset", &p),
            Some(524288.0)
        );
        assert_eq!(
            metric_value(text, "kafka_server_replicamanager_isrshrinks_total", &[]),
            Some(3.0)
        );
        assert_eq!(
            metric_value(text, "kafka_server_replicamanager_isrshrinks", &[]),
            None
        );
        let missing = [("topic", "other"), ("partition", "0")];
        assert_eq!(
            metric_value(text, "kafka_log_log_logendoffset", &missing),
            None
        );
    }
}
