//! `strom-bench peer`: the same workloads, with the same client (librdkafka) and in
//! the same run, against Strom (the release `strom-broker`) and Apache Kafka 4.4
//! (from the jars, KRaft combined mode), then Kafka's own perf tools against both.
//!
//! Each side is a [`Nodes`]: one node or a three-node cluster of either kind, behind
//! [`UnderTest`], so the produce, latency and consume runs are the main suite's own
//! (`crate::produce_run`, `latency_run`, `consume_run`) and do not know which broker
//! they load. Both sides get the same protocol: start-up (a first start on a fresh
//! directory, then restarts on it), idle memory, a warm-up produce run (not
//! counted: the JVM compiles its hot paths), four produce runs (1 and 6
//! partitions, acks=1 and acks=all), open-loop latency at fixed rates, memory after
//! the load, consume, `kafka-producer-perf-test` and `kafka-consumer-perf-test`,
//! SIGTERM; then RF=3 acks=all produce, latency and consume on three local nodes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use crate::apache::{KafkaNode, KafkaSpec};
use crate::broker::{
    free_ports, ms, process_tree, single_node_overrides, wait_serving, Broker, CpuMeter, Rss,
    StartupTiming, UnderTest,
};
use crate::cluster::node_overrides;
use crate::kafka::{self, ConsumeResult, LatencyResult, ProduceResult, ProducerSettings};
use crate::limits::MIB;
use crate::perf_tools::{self, ConsumerPerf, ProducerPerf};
use crate::replicated::{watching_isr, IsrSeen};
use crate::{median, phase, Args, Report};

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct PeerArgs {
    /// A smoke run (a minute or two): 32 MiB per produce run unless --produce-mib is
    /// given, one short latency rate, two start-ups, small disk and loopback probes.
    #[arg(long)]
    pub quick: bool,
    /// Which brokers to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "strom,kafka")]
    pub sides: Vec<SideKind>,
    /// The Apache Kafka node launcher.
    #[arg(long, default_value = "e2e/jvm/bin/apache-kafka-node")]
    pub kafka_launcher: PathBuf,
    /// Where Kafka's tool launchers are (kafka-producer-perf-test, ...).
    #[arg(long, default_value = "e2e/jvm/bin")]
    pub kafka_tools: PathBuf,
    /// Apache Kafka's JVM heap (-Xms and -Xmx), per node; 1g is Kafka's own default.
    #[arg(long, default_value = "1g")]
    pub kafka_heap: String,
    /// Start-ups measured on one directory: the first on a fresh one, the rest
    /// restarts after a SIGTERM.
    #[arg(long, default_value_t = 4)]
    pub startups: usize,
    /// Fixed rates (records/s) of the acks=1 latency runs against one node.
    #[arg(long, value_delimiter = ',', default_value = "5000,50000")]
    pub latency_rates: Vec<u64>,
    /// Fixed rate (records/s) of the RF=3 acks=all latency run.
    #[arg(long, default_value_t = 5000)]
    pub rf3_latency_rate: u64,
    /// MiB produced (acks=1, not counted) before the measured runs, so both brokers
    /// are measured warm: the JVM's JIT compiles Kafka's hot paths during it
    /// [default: 256; 16 with --quick].
    #[arg(long)]
    pub warmup_mib: Option<u64>,
    /// Upper bound on a start-up (to the first metadata answer, and for three nodes
    /// until metadata lists them all); a loaded 2-core machine needs minutes for
    /// three JVMs.
    #[arg(long, default_value_t = 300)]
    pub startup_timeout_secs: u64,
    /// Skip Kafka's perf tools.
    #[arg(long)]
    pub no_perf_tools: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SideKind {
    Strom,
    Kafka,
}

/// How to start a node of one side.
#[derive(Debug, Clone)]
pub enum Flavor {
    Strom {
        binary: PathBuf,
        overrides: Vec<String>,
    },
    Kafka(KafkaSpec),
}

enum Node {
    Strom(Broker),
    Kafka(KafkaNode),
}

impl Node {
    fn pid(&self) -> u32 {
        match self {
            Node::Strom(b) => b.pid,
            Node::Kafka(k) => k.pid,
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        match self {
            Node::Strom(b) => b.check_alive(),
            Node::Kafka(k) => k.check_alive(),
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        match self {
            Node::Strom(b) => b.stderr_tail(lines),
            Node::Kafka(k) => k.log_tail(lines),
        }
    }

    fn shutdown(&mut self, grace: Duration) -> Option<Duration> {
        match self {
            Node::Strom(b) => b.shutdown(grace),
            Node::Kafka(k) => k.shutdown(grace),
        }
    }
}

/// `n` nodes of one flavor on fixed loopback ports and directories (so they can be
/// stopped and started again on the same data); node ids `0..n`, every node a
/// controller voter when `n > 1` (Kafka's nodes always are: combined mode). Dropping
/// it kills every node, then removes the directory unless asked to keep it.
pub struct Nodes {
    flavor: Flavor,
    /// Kafka, controller and admin port per node.
    ports: Vec<[u16; 3]>,
    running: Vec<Node>,
    pub dir: PathBuf,
    /// Declared last: removed only after every node has been killed.
    _dir: tempfile::TempDir,
}

fn loopback(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

impl Nodes {
    pub fn new(flavor: Flavor, base_dir: &Path, n: usize, keep: bool) -> Result<Nodes> {
        if n == 0 {
            bail!("at least one node");
        }
        let prefix = match flavor {
            Flavor::Strom { .. } => "peer-strom-",
            Flavor::Kafka(_) => "peer-kafka-",
        };
        let mut dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(base_dir)
            .with_context(|| format!("creating a run dir under {}", base_dir.display()))?;
        if keep {
            dir.disable_cleanup(true);
        }
        let flat = free_ports(3 * n)?;
        Ok(Nodes {
            flavor,
            ports: flat.chunks(3).map(|c| [c[0], c[1], c[2]]).collect(),
            running: Vec::new(),
            dir: dir.path().to_path_buf(),
            _dir: dir,
        })
    }

    fn kafka_addr(&self, i: usize) -> SocketAddr {
        loopback(self.ports[i][0])
    }

    /// Spawns every node; returns the instant just before the first spawn.
    pub fn start(&mut self) -> Result<Instant> {
        if !self.running.is_empty() {
            bail!("nodes already running");
        }
        let n = self.ports.len();
        let voters: Vec<String> = (0..n)
            .map(|i| format!("{i}@{}", loopback(self.ports[i][1])))
            .collect();
        let voters = voters.join(",");
        let mut t0 = None;
        for i in 0..n {
            let [kafka, controller, admin] = self.ports[i];
            let node_dir = self.dir.join(format!("n{i}"));
            let (node, started) = match &self.flavor {
                Flavor::Strom { binary, overrides } => {
                    let mut all = if n == 1 {
                        single_node_overrides(loopback(kafka))
                    } else {
                        node_overrides(i, n, loopback(kafka), loopback(controller), &voters)
                    };
                    all.extend_from_slice(overrides);
                    let (b, t) = Broker::launch(
                        binary,
                        node_dir,
                        None,
                        loopback(kafka),
                        loopback(admin),
                        &all,
                    )?;
                    (Node::Strom(b), t)
                }
                Flavor::Kafka(spec) => {
                    let (k, t) = KafkaNode::launch(spec, &node_dir, i, kafka, controller, &voters)?;
                    (Node::Kafka(k), t)
                }
            };
            t0.get_or_insert(started);
            self.running.push(node);
        }
        Ok(t0.unwrap_or_else(Instant::now))
    }

    /// Waits (bounded by `timeout` from `t0`) until node 0 answers metadata (the
    /// start-up figure), then until metadata lists every node as a broker.
    pub fn wait_serving(&mut self, t0: Instant, timeout: Duration) -> Result<StartupTiming> {
        let addr = self.kafka_addr(0);
        let timing = wait_serving(self, addr, t0, timeout, None)?;
        let n = self.ports.len();
        if n > 1 {
            let client: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", self.bootstrap())
                .create()
                .context("creating the metadata client")?;
            let deadline = t0 + timeout;
            loop {
                let brokers = client
                    .client()
                    .fetch_metadata(None, Duration::from_secs(2))
                    .map(|m| m.brokers().len())
                    .unwrap_or(0);
                if brokers >= n {
                    break;
                }
                self.check_alive()?;
                if Instant::now() >= deadline {
                    bail!(
                        "metadata lists {brokers} of {n} brokers after {timeout:?}; logs:\n{}",
                        self.stderr_tail(5)
                    );
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(timing)
    }

    /// SIGTERM to each node in turn (waiting up to `grace` for each), SIGKILL to any
    /// left. Returns the longest exit time if every node exited on SIGTERM.
    pub fn stop(&mut self, grace: Duration) -> Option<Duration> {
        let mut longest = Some(Duration::ZERO);
        for mut node in self.running.drain(..) {
            let took = node.shutdown(grace);
            longest = longest.zip(took).map(|(a, b)| a.max(b));
        }
        longest
    }
}

impl UnderTest for Nodes {
    /// Every process of every node: a launcher's JVM and anything it started.
    fn pids(&self) -> Vec<u32> {
        self.running
            .iter()
            .flat_map(|n| process_tree(n.pid()))
            .collect()
    }

    fn check_alive(&mut self) -> Result<()> {
        for (i, n) in self.running.iter_mut().enumerate() {
            n.check_alive().with_context(|| format!("node {i}"))?;
        }
        if self.running.is_empty() {
            bail!("no node running");
        }
        Ok(())
    }

    fn stderr_tail(&self, lines: usize) -> String {
        let tails: Vec<String> = self
            .running
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {i}:\n{}", n.log_tail(lines)))
            .collect();
        tails.join("\n")
    }

    fn bootstrap(&self) -> String {
        let addrs: Vec<String> = (0..self.ports.len())
            .map(|i| self.kafka_addr(i).to_string())
            .collect();
        addrs.join(",")
    }
}

/// The librdkafka producer settings of every run (idempotence off, as in the other
/// modes).
fn producer_settings(args: &Args, bootstrap: &str) -> ProducerSettings {
    ProducerSettings {
        bootstrap: bootstrap.to_string(),
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        record_size: args.record_size as usize,
        idempotence: false,
        client_settings: Vec::new(),
    }
}

/// Everything measured against one side.
#[derive(Debug, Default, Serialize)]
pub struct SideResult {
    pub side: String,
    /// Spawn → first metadata answer; the first on a fresh directory (Kafka's
    /// includes formatting it), the rest restarts on it.
    pub startups: Vec<StartupTiming>,
    pub restart_median_ms: Option<f64>,
    pub rss_idle: Option<Rss>,
    pub produce: Vec<ProduceResult>,
    pub latency: Vec<LatencyResult>,
    pub rss_after_load: Option<Rss>,
    pub consume: Vec<ConsumeResult>,
    pub perf_producer: Option<ProducerPerf>,
    pub perf_consumer: Option<ConsumerPerf>,
    pub shutdown_ms: Option<f64>,
    /// Three nodes, one partition with three replicas, min.insync.replicas=2.
    pub rf3_ready_ms: Option<f64>,
    pub rf3_produce: Option<ProduceResult>,
    pub rf3_isr_during_produce: Option<IsrSeen>,
    pub rf3_latency: Option<LatencyResult>,
    pub rf3_consume: Option<ConsumeResult>,
    /// The three nodes' resident memory summed.
    pub rf3_rss_after: Option<Rss>,
    pub errors: Vec<String>,
}

impl SideResult {
    /// Broker CPU seconds per GiB of payload over `runs` (a cluster's nodes summed).
    pub fn cpu_secs_per_gib<'a>(runs: impl IntoIterator<Item = &'a ProduceResult>) -> Option<f64> {
        let (mut secs, mut bytes) = (0.0, 0u64);
        for r in runs {
            secs += r.cpu.as_ref()?.broker_cpu_secs;
            bytes += r.bytes_acked;
        }
        (bytes > 0).then(|| secs / (bytes as f64 / (1u64 << 30) as f64))
    }
}

#[derive(Debug, Default, Serialize)]
pub struct PeerResult {
    pub quick: bool,
    pub kafka_heap: String,
    pub sides: Vec<SideResult>,
}

/// The single-node produce runs: (partitions, acks).
pub const PRODUCE_RUNS: [(i32, &str); 4] = [(1, "1"), (1, "all"), (6, "1"), (6, "all")];
const RF: usize = 3;
const MIN_INSYNC: usize = 2;
const STOP_GRACE: Duration = Duration::from_secs(30);

pub fn run(
    args: &Args,
    p: &PeerArgs,
    broker_path: &Path,
    base_dir: &Path,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    let launcher = p.kafka_launcher.canonicalize().with_context(|| {
        format!(
            "Apache Kafka launcher {} (run from the repository root after scripts/jvm-setup.sh)",
            p.kafka_launcher.display()
        )
    })?;
    let tools = p.kafka_tools.canonicalize()?;
    let mut result = PeerResult {
        quick: p.quick,
        kafka_heap: p.kafka_heap.clone(),
        sides: Vec::new(),
    };
    for kind in &p.sides {
        let (name, flavor) = match kind {
            SideKind::Strom => (
                "Strom",
                Flavor::Strom {
                    binary: broker_path.to_path_buf(),
                    overrides: args.overrides.clone(),
                },
            ),
            SideKind::Kafka => (
                "Apache Kafka",
                Flavor::Kafka(KafkaSpec {
                    launcher: launcher.clone(),
                    heap: p.kafka_heap.clone(),
                    overrides: Vec::new(),
                    env: Vec::new(),
                }),
            ),
        };
        phase(&format!("peer: {name}"));
        let mut side = SideResult {
            side: name.to_string(),
            ..Default::default()
        };
        // The shared runs record into a report (errors included): this side's own.
        let mut rep = Report::default();
        // A side that fails still reports what it measured, and the other side runs.
        let outcome = run_side(
            args, p, &flavor, &tools, base_dir, pool, &mut side, &mut rep,
        );
        side.errors.append(&mut rep.errors);
        if let Err(e) = outcome {
            side.errors.push(format!("{e:#}"));
        }
        for e in &side.errors {
            report.errors.push(format!("{name}: {e}"));
        }
        result.sides.push(side);
    }
    report.peer = Some(result);
    Ok(())
}

/// The args the shared runs read, adjusted for `--quick`.
pub fn effective_args(args: &Args, p: &PeerArgs) -> Args {
    let mut a = args.clone();
    if p.quick {
        a.latency_secs = a.latency_secs.min(2);
        a.idle_secs = a.idle_secs.min(1);
    }
    a
}

#[allow(clippy::too_many_arguments)]
fn run_side(
    args: &Args,
    p: &PeerArgs,
    flavor: &Flavor,
    tools: &Path,
    base_dir: &Path,
    pool: &[u8],
    side: &mut SideResult,
    rep: &mut Report,
) -> Result<()> {
    let args = &effective_args(args, p);
    let mut nodes = Nodes::new(flavor.clone(), base_dir, 1, args.keep_data)?;

    let startups = if p.quick { 2 } else { p.startups.max(1) };
    for i in 0..startups {
        if i > 0 {
            nodes.stop(STOP_GRACE);
        }
        let t0 = nodes.start()?;
        let t = nodes
            .wait_serving(t0, Duration::from_secs(p.startup_timeout_secs))
            .with_context(|| format!("start-up {}", i + 1))?;
        eprintln!(
            "  start-up {}: metadata after {:.0} ms",
            i + 1,
            t.metadata_ms
        );
        side.startups.push(t);
    }
    side.restart_median_ms = median(
        side.startups
            .iter()
            .skip(1)
            .map(|t| t.metadata_ms)
            .collect(),
    );

    phase("idle RSS");
    thread::sleep(Duration::from_secs(args.idle_secs));
    nodes.check_alive()?;
    side.rss_idle = Some(nodes.resident()?);

    let bootstrap = nodes.bootstrap();
    let settings = producer_settings(args, &bootstrap);
    let warmup = Args {
        produce_mib: Some(p.warmup_mib.unwrap_or(if p.quick { 16 } else { 256 })),
        ..args.clone()
    };
    if warmup.produce_mib() > 0 {
        kafka::create_topic(&bootstrap, "peer-warmup", 1, 1)?;
        crate::produce_run(
            &warmup,
            &mut nodes,
            &settings,
            "peer-warmup",
            1,
            "1",
            pool,
            rep,
        )?;
        // Not a figure: only its errors count.
        rep.produce.clear();
    }
    let mut consume_topics = Vec::new();
    for (partitions, acks) in PRODUCE_RUNS {
        let topic = format!("peer-p{partitions}-acks-{acks}");
        kafka::create_topic(&bootstrap, &topic, partitions, 1)?;
        let acked = crate::produce_run(
            args, &mut nodes, &settings, &topic, partitions, acks, pool, rep,
        )?;
        side.produce.extend(rep.produce.pop());
        if acks == "1" {
            consume_topics.push((topic, partitions, acked));
        }
    }

    let rates: &[u64] = if p.quick {
        &p.latency_rates[..p.latency_rates.len().min(1)]
    } else {
        &p.latency_rates
    };
    for &rate in rates {
        let topic = format!("peer-latency-{rate}");
        kafka::create_topic(&bootstrap, &topic, 1, 1)?;
        let fixed = Args {
            latency_rate: Some(rate),
            ..args.clone()
        };
        crate::latency_run(&fixed, &mut nodes, &settings, &topic, "1", pool, rep)?;
        side.latency.extend(rep.latency.take());
    }
    side.rss_after_load = Some(nodes.resident()?);

    for (topic, partitions, acked) in &consume_topics {
        crate::consume_run(args, &mut nodes, topic, *partitions, *acked, pool, rep)?;
        side.consume.extend(rep.consume.take());
    }

    if !p.no_perf_tools {
        perf_tools_runs(args, tools, &mut nodes, side)?;
    }

    phase("shutdown (SIGTERM)");
    side.shutdown_ms = nodes.stop(STOP_GRACE).map(ms);
    drop(nodes);

    rf3(args, p, flavor, base_dir, pool, side, rep)
}

/// Kafka's producer perf tool into a new one-partition topic (acks=1, the Java
/// producer's other defaults), then its consumer perf tool reading it back.
fn perf_tools_runs(
    args: &Args,
    tools: &Path,
    nodes: &mut Nodes,
    side: &mut SideResult,
) -> Result<()> {
    let bootstrap = nodes.bootstrap();
    let topic = "peer-perf-tool";
    let records = args.produce_mib() * MIB / args.record_size;
    let timeout = Duration::from_secs(args.run_timeout_secs + 60);
    kafka::create_topic(&bootstrap, topic, 1, 1)?;
    phase(&format!(
        "kafka-producer-perf-test: {records} x {} B, acks=1",
        args.record_size
    ));
    let meter = CpuMeter::start_all(&nodes.pids());
    let perf = perf_tools::producer_perf_test(
        tools,
        &bootstrap,
        topic,
        records,
        args.record_size,
        "1",
        &nodes.dir,
        timeout,
    );
    nodes.check_alive()?;
    let mut perf = perf?;
    perf.cpu = meter.stop();
    eprintln!(
        "  {:.0} rec/s, p50 {} / p99 {} / p99.9 {} ms",
        perf.records_per_sec, perf.p50_ms, perf.p99_ms, perf.p999_ms
    );
    side.perf_producer = Some(perf);

    phase("kafka-consumer-perf-test");
    let meter = CpuMeter::start_all(&nodes.pids());
    let perf =
        perf_tools::consumer_perf_test(tools, &bootstrap, topic, records, &nodes.dir, timeout);
    nodes.check_alive()?;
    let mut perf = perf?;
    perf.cpu = meter.stop();
    eprintln!(
        "  {:.0} rec/s fetching ({:.0} rec/s with the group join of {} ms)",
        perf.fetch_records_per_sec, perf.records_per_sec, perf.rebalance_ms
    );
    side.perf_consumer = Some(perf);
    Ok(())
}

/// Three nodes; one partition, three replicas, min.insync.replicas=2: acks=all
/// throughput with the ISR watched, latency at a fixed rate, every record read back.
fn rf3(
    args: &Args,
    p: &PeerArgs,
    flavor: &Flavor,
    base_dir: &Path,
    pool: &[u8],
    side: &mut SideResult,
    rep: &mut Report,
) -> Result<()> {
    phase(&format!(
        "{RF} nodes, RF={RF}, min.insync.replicas={MIN_INSYNC}"
    ));
    let mut flavor = flavor.clone();
    let min_isr = format!("min.insync.replicas={MIN_INSYNC}");
    match &mut flavor {
        Flavor::Strom { overrides, .. } => overrides.push(min_isr),
        Flavor::Kafka(spec) => spec.overrides.push(min_isr),
    }
    let mut nodes = Nodes::new(flavor, base_dir, RF, args.keep_data)?;
    let t0 = nodes.start()?;
    let startup_timeout = Duration::from_secs(p.startup_timeout_secs);
    nodes.wait_serving(t0, startup_timeout)?;
    side.rf3_ready_ms = Some(ms(t0.elapsed()));
    let bootstrap = nodes.bootstrap();
    let settings = producer_settings(args, &bootstrap);
    let topic = "peer-rf3";
    for t in [topic, "peer-rf3-latency"] {
        kafka::create_topic(&bootstrap, t, 1, RF as i32)?;
        kafka::wait_isr(&bootstrap, t, 0, RF, startup_timeout)?;
    }
    let (acked, seen) = watching_isr(&bootstrap, topic, Duration::from_millis(250), || {
        crate::produce_run(args, &mut nodes, &settings, topic, 1, "all", pool, rep)
    });
    side.rf3_isr_during_produce = Some(seen);
    side.rf3_produce = rep.produce.pop();
    let acked = acked?;

    let fixed = Args {
        latency_rate: Some(p.rf3_latency_rate),
        ..args.clone()
    };
    crate::latency_run(
        &fixed,
        &mut nodes,
        &settings,
        "peer-rf3-latency",
        "all",
        pool,
        rep,
    )?;
    side.rf3_latency = rep.latency.take();
    crate::consume_run(args, &mut nodes, topic, 1, acked, pool, rep)?;
    side.rf3_consume = rep.consume.take();
    side.rf3_rss_after = Some(nodes.resident()?);
    Ok(())
}
