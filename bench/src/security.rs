//! `strom-bench security`: what TLS and SASL cost. One release broker serves three client
//! listeners on loopback: PLAINTEXT, SSL, and SASL_SSL with SCRAM-SHA-512. The same
//! produce (acks=1) and consume runs go through each listener in turn, round after round,
//! so every encrypted figure sits beside a plaintext one from the same minutes on the same
//! broker. Then the handshake rate: threads that each open a new client, connect, finish
//! the TLS handshake (and the SCRAM exchange) and get metadata, over and over, with the
//! broker's CPU time per handshake.
//!
//! The certificates come from rcgen (a CA and a broker certificate for 127.0.0.1); the
//! SCRAM user is written by `strom-broker format --add-scram`, as an operator seeds its
//! first user. With `--kafka` the same runs go to Apache Kafka 4.4 (one KRaft node from
//! the jars, the same three listeners, certificate and user) afterwards, so what the
//! client itself costs over TLS shows beside what each broker costs.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use serde::Serialize;
use strom_test_certs::{write_atomically, Authority};

use strom_client::sasl::SaslMechanism;
use strom_client::tls::TlsConfig;
use strom_client::Security;

use crate::apache::{KafkaNode, KafkaSpec};
use crate::broker::{self, Broker, CpuMeter};
use crate::kafka::{self, ConsumeResult, ProduceResult, ProducerSettings};
use crate::lean_client::{self, LeanLoad};
use crate::limits::MIB;
use crate::{median, phase, Args, Report};

const USER: &str = "bench";
const PASSWORD: &str = "bench-secret";

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct SecurityArgs {
    /// Rounds of produce and consume through each listener (the figures are medians).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds each handshake run lasts.
    #[arg(long, default_value_t = 10)]
    handshake_secs: u64,
    /// Threads opening connections at once in the handshake runs.
    #[arg(long, default_value_t = 4)]
    handshake_threads: usize,
    /// Also run everything against Apache Kafka 4.4 (needs scripts/jvm-setup.sh).
    #[arg(long)]
    kafka: bool,
    /// The Apache Kafka node launcher.
    #[arg(long, default_value = "e2e/jvm/bin/apache-kafka-node")]
    kafka_launcher: std::path::PathBuf,
    /// Apache Kafka's JVM heap (-Xms and -Xmx); 1g is Kafka's own default.
    #[arg(long, default_value = "1g")]
    kafka_heap: String,
    /// The client of the produce and consume runs: `librdkafka` (what applications run)
    /// or `strom` (strom-client with its batches encoded before the clock starts; with
    /// `--broker-cpus` the broker rather than the client then sets the figure).
    #[arg(long, value_enum, default_value_t = ClientKind::Librdkafka)]
    client: ClientKind,
    /// Connections, and partitions of the topic, in a `--client strom` run.
    #[arg(long, default_value_t = 4)]
    connections: i32,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ClientKind {
    Librdkafka,
    Strom,
}

/// A client listener of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Listener {
    Plaintext,
    Ssl,
    SaslSsl,
}

impl Listener {
    const ALL: [Listener; 3] = [Listener::Plaintext, Listener::Ssl, Listener::SaslSsl];

    fn name(self) -> &'static str {
        match self {
            Listener::Plaintext => "PLAINTEXT",
            Listener::Ssl => "SSL",
            Listener::SaslSsl => "SASL_SSL",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SecurityRun {
    pub round: usize,
    pub listener: Listener,
    pub client: ClientKind,
    pub produce: ProduceResult,
    pub consume: ConsumeResult,
}

#[derive(Debug, Clone, Serialize)]
pub struct HandshakeResult {
    pub listener: Listener,
    pub threads: usize,
    pub handshakes: u64,
    pub failures: u64,
    pub secs: f64,
    pub per_sec: f64,
    /// The broker's CPU time per completed handshake, in milliseconds.
    pub broker_cpu_ms_per_handshake: Option<f64>,
}

/// Strom's runs, then Apache Kafka's when asked for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SecurityResult {
    pub sides: Vec<SideResult>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SideResult {
    pub side: String,
    pub runs: Vec<SecurityRun>,
    pub handshakes: Vec<HandshakeResult>,
}

impl SideResult {
    /// Median produce and consume MB/s over the rounds of one listener.
    pub fn medians(&self, listener: Listener) -> (Option<f64>, Option<f64>) {
        let of = |f: fn(&SecurityRun) -> f64| {
            median(
                self.runs
                    .iter()
                    .filter(|r| r.listener == listener)
                    .map(f)
                    .collect(),
            )
        };
        (of(|r| r.produce.mbps), of(|r| r.consume.mbps))
    }
}

/// The broker's ports and the files clients need.
struct Setup {
    plaintext: u16,
    ssl: u16,
    sasl_ssl: u16,
    ca_file: String,
}

impl Setup {
    /// Ports: PLAINTEXT, SSL, SASL_SSL (a fourth, if any, is the caller's).
    fn new(ports: &[u16], ca_file: &str) -> Setup {
        Setup {
            plaintext: ports[0],
            ssl: ports[1],
            sasl_ssl: ports[2],
            ca_file: ca_file.to_string(),
        }
    }

    /// The `listeners` value for the three client listeners.
    fn listeners(&self) -> String {
        format!(
            "PLAINTEXT://127.0.0.1:{},SSL://127.0.0.1:{},SASL_SSL://127.0.0.1:{}",
            self.plaintext, self.ssl, self.sasl_ssl
        )
    }

    fn bootstrap(&self, listener: Listener) -> String {
        let port = match listener {
            Listener::Plaintext => self.plaintext,
            Listener::Ssl => self.ssl,
            Listener::SaslSsl => self.sasl_ssl,
        };
        format!("127.0.0.1:{port}")
    }

    /// librdkafka settings for `listener`; the CA is trusted and the host name checked.
    fn client_settings(&self, listener: Listener) -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| s.push((k.to_string(), v.to_string()));
        match listener {
            Listener::Plaintext => {}
            Listener::Ssl => {
                set("security.protocol", "ssl");
                set("ssl.ca.location", &self.ca_file);
            }
            Listener::SaslSsl => {
                set("security.protocol", "sasl_ssl");
                set("ssl.ca.location", &self.ca_file);
                set("sasl.mechanism", "SCRAM-SHA-512");
                set("sasl.username", USER);
                set("sasl.password", PASSWORD);
            }
        }
        s
    }

    /// strom-client's security for `listener`: the same CA, user and mechanism.
    fn strom_security(&self, listener: Listener) -> Result<Security> {
        if listener == Listener::Plaintext {
            return Ok(Security::plaintext());
        }
        let ca =
            std::fs::read(&self.ca_file).with_context(|| format!("reading {}", self.ca_file))?;
        let tls = Security::plaintext().with_tls(TlsConfig::new(ca)?);
        Ok(match listener {
            Listener::SaslSsl => tls.with_sasl(SaslMechanism::SCRAM_SHA_512, USER, PASSWORD),
            _ => tls,
        })
    }
}

pub fn run(
    args: &Args,
    sec: &SecurityArgs,
    broker_path: &Path,
    base_dir: &Path,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    let mut dir = tempfile::Builder::new()
        .prefix("security-")
        .tempdir_in(base_dir)?;
    if args.keep_data {
        dir.disable_cleanup(true);
    }
    phase("certificates");
    let ca_file = write_certificates(dir.path())?;
    let keystore = dir.path().join("broker.pem");
    let mut result = SecurityResult::default();

    phase("Strom: format with the SCRAM user and start");
    let run_dir = dir.path().join("strom");
    let ports = broker::free_ports(4)?;
    let setup = Setup::new(&ports, &ca_file);
    let listeners = setup.listeners();
    let mut overrides = vec![
        format!("listeners={listeners}"),
        format!("advertised.listeners={listeners}"),
        "node.id=0".to_string(),
        format!("ssl.keystore.location={}", keystore.display()),
        "sasl.enabled.mechanisms=SCRAM-SHA-512".to_string(),
    ];
    overrides.extend_from_slice(&args.overrides);
    std::fs::create_dir_all(&run_dir)?;
    format_with_user(broker_path, &run_dir, &overrides)?;
    let (mut b, t0) = Broker::launch(
        broker_path,
        run_dir,
        None,
        ([127, 0, 0, 1], setup.plaintext).into(),
        ([127, 0, 0, 1], ports[3]).into(),
        &overrides,
    )?;
    b.wait_serving(t0, Duration::from_secs(20), None)?;
    let pids = [b.pid];
    let strom = measure(
        "Strom",
        &setup,
        &pids,
        &mut || b.check_alive(),
        args,
        sec,
        pool,
    );
    phase("Strom: shutdown (SIGTERM)");
    report.shutdown_ms = b.shutdown(Duration::from_secs(10)).map(broker::ms);
    result.sides.push(strom?);

    if sec.kafka {
        let launcher = sec.kafka_launcher.canonicalize().with_context(|| {
            format!(
                "Apache Kafka launcher {} (run from the repository root after scripts/jvm-setup.sh)",
                sec.kafka_launcher.display()
            )
        })?;
        phase("Apache Kafka: format with the SCRAM user and start");
        let ports = broker::free_ports(4)?;
        let setup = Setup::new(&ports, &ca_file);
        let spec = KafkaSpec {
            launcher,
            heap: sec.kafka_heap.clone(),
            overrides: vec![
                format!(
                    "listeners={},CONTROLLER://127.0.0.1:{}",
                    setup.listeners(),
                    ports[3]
                ),
                format!("advertised.listeners={}", setup.listeners()),
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL".to_string(),
                "ssl.keystore.type=PEM".to_string(),
                format!("ssl.keystore.location={}", keystore.display()),
                "sasl.enabled.mechanisms=SCRAM-SHA-512".to_string(),
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;".to_string(),
            ],
            // The launcher hands this to kafka-storage format, as `--add-scram`.
            env: vec![("STROM_KAFKA_ADD_SCRAM".to_string(), scram_spec())],
        };
        let (mut k, _) = KafkaNode::launch(
            &spec,
            &dir.path().join("kafka"),
            1,
            setup.plaintext,
            ports[3],
            &format!("1@127.0.0.1:{}", ports[3]),
        )?;
        wait_for_metadata(&setup, &mut || k.check_alive())?;
        // The launcher's JVM and whatever else it runs.
        let pids = broker::process_tree(k.pid);
        let kafka = measure(
            "Apache Kafka",
            &setup,
            &pids,
            &mut || k.check_alive(),
            args,
            sec,
            pool,
        );
        k.shutdown(Duration::from_secs(20));
        result.sides.push(kafka?);
    }
    for side in &result.sides {
        for h in side.handshakes.iter().filter(|h| h.failures > 0) {
            report.errors.push(format!(
                "{}: {} handshakes over {} failed",
                side.side,
                h.failures,
                h.listener.name()
            ));
        }
    }
    report.security = Some(result);
    Ok(())
}

/// The produce and consume rounds, then the handshake runs, against one broker process.
fn measure(
    side: &str,
    setup: &Setup,
    pids: &[u32],
    check_alive: &mut dyn FnMut() -> Result<()>,
    args: &Args,
    sec: &SecurityArgs,
    pool: &[u8],
) -> Result<SideResult> {
    let mut result = SideResult {
        side: side.to_string(),
        ..Default::default()
    };
    let records = args.produce_mib() * MIB / args.record_size;
    let timeout = Duration::from_secs(args.run_timeout_secs);
    // strom-client's calls; one thread, as the librdkafka runs have one client thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime for strom-client")?;
    for round in 1..=sec.rounds {
        for listener in Listener::ALL {
            let topic = format!("security-{}-{round}", listener.name().to_lowercase());
            let settings = ProducerSettings {
                bootstrap: setup.bootstrap(listener),
                linger_ms: args.linger_ms,
                batch_size: args.batch_size,
                record_size: args.record_size as usize,
                idempotence: false,
                client_settings: setup.client_settings(listener),
            };
            phase(&format!(
                "{side} round {round}: produce {records} x {} B over {}",
                args.record_size,
                listener.name()
            ));
            let lean = match sec.client {
                ClientKind::Librdkafka => None,
                ClientKind::Strom => {
                    kafka::create_topic(
                        &setup.bootstrap(Listener::Plaintext),
                        &topic,
                        sec.connections,
                        1,
                    )?;
                    Some(LeanLoad {
                        bootstrap: settings.bootstrap.clone(),
                        security: setup.strom_security(listener)?,
                        topic: topic.clone(),
                        partitions: sec.connections,
                        record_size: settings.record_size,
                        pool,
                        timeout,
                    })
                }
            };
            let batches = lean
                .as_ref()
                .map(|load| lean_client::encode_batches(load, records, args.batch_size as usize));
            thread::sleep(Duration::from_secs(args.settle_secs));
            let meter = CpuMeter::start_all(pids);
            let produced = match (&lean, batches) {
                (Some(load), Some(batches)) => {
                    runtime.block_on(lean_client::produce(load, batches))
                }
                _ => {
                    kafka::produce_throughput(&settings, &topic, 1, "1", records, 1, pool, timeout)
                }
            };
            check_alive()?;
            let mut produce = produced.with_context(|| format!("produce over {listener:?}"))?;
            produce.cpu = meter.stop();
            if produce.records_failed > 0 || produce.timed_out {
                bail!(
                    "{side}: produce over {}: {} failed, first error {:?}",
                    listener.name(),
                    produce.records_failed,
                    produce.first_delivery_error
                );
            }
            phase(&format!(
                "{side} round {round}: consume over {}",
                listener.name()
            ));
            thread::sleep(Duration::from_secs(args.settle_secs));
            let meter = CpuMeter::start_all(pids);
            let consumed = match &lean {
                None => kafka::consume_with(
                    &settings.bootstrap,
                    &settings.client_settings,
                    &topic,
                    1,
                    produce.records_acked,
                    pool,
                    args.record_size as usize,
                    timeout,
                ),
                Some(load) => runtime.block_on(lean_client::consume(load, produce.records_acked)),
            };
            check_alive()?;
            let mut consume = consumed.with_context(|| format!("consume over {listener:?}"))?;
            consume.cpu = meter.stop();
            if consume.timed_out
                || consume.records < consume.records_expected
                || consume.payload_mismatches > 0
                || consume.duplicates > 0
            {
                bail!(
                    "{side}: consume over {}: {} of {} records, {} mismatches, {} duplicates, first error {:?}",
                    listener.name(),
                    consume.records,
                    consume.records_expected,
                    consume.payload_mismatches,
                    consume.duplicates,
                    consume.first_error
                );
            }
            eprintln!(
                "  produce {:.1} MB/s, consume {:.1} MB/s",
                produce.mbps, consume.mbps
            );
            result.runs.push(SecurityRun {
                round,
                listener,
                client: sec.client,
                produce,
                consume,
            });
        }
    }
    for listener in Listener::ALL {
        phase(&format!(
            "{side}: handshakes over {} ({} threads, {} s)",
            listener.name(),
            sec.handshake_threads,
            sec.handshake_secs
        ));
        let h = handshakes(setup, listener, sec, pids)?;
        check_alive()?;
        eprintln!(
            "  {:.1} handshakes/s, broker {:?} ms CPU each, {} failures",
            h.per_sec, h.broker_cpu_ms_per_handshake, h.failures
        );
        result.handshakes.push(h);
    }
    Ok(result)
}

/// Polls metadata over the plaintext listener until it answers (Kafka's JVM start-up).
fn wait_for_metadata(setup: &Setup, check_alive: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", setup.bootstrap(Listener::Plaintext))
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        check_alive()?;
        if client.fetch_metadata(None, Duration::from_secs(2)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("Apache Kafka did not answer metadata within 90 s");
        }
    }
}

fn scram_spec() -> String {
    format!("SCRAM-SHA-512=[name={USER},password={PASSWORD}]")
}

/// Writes `ca.pem` and the broker's `broker.pem` (key then certificate, the PEM keystore
/// both brokers read) into `dir`; returns the CA file's path.
fn write_certificates(dir: &Path) -> Result<String> {
    let ca = Authority::new("strom-bench CA");
    write_atomically(dir, "broker.pem", &ca.broker().keystore_pem());
    Ok(write_atomically(dir, "ca.pem", &ca.pem())
        .display()
        .to_string())
}

/// `strom-broker format` of the run's data dir with the benchmark's SCRAM user.
fn format_with_user(binary: &Path, run_dir: &Path, overrides: &[String]) -> Result<()> {
    let mut cmd = Command::new(binary);
    cmd.args(["format", "--cluster-id", "strom-bench-security"])
        .arg("--add-scram")
        .arg(format!("SCRAM-SHA-512=[name={USER},password={PASSWORD}]"))
        .arg("--override")
        .arg(format!("log.dirs={}", run_dir.join("data").display()));
    for o in overrides {
        cmd.arg("--override").arg(o);
    }
    let out = cmd.output().context("running strom-broker format")?;
    if !out.status.success() {
        bail!(
            "strom-broker format failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Threads that each, until the time is up, make a new client on `listener` and wait for
/// its metadata: a TCP connect, the TLS handshake and the SCRAM exchange where the
/// listener has them, ApiVersions and Metadata.
fn handshakes(
    setup: &Setup,
    listener: Listener,
    sec: &SecurityArgs,
    pids: &[u32],
) -> Result<HandshakeResult> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", setup.bootstrap(listener))
        .set("group.id", "strom-bench-handshakes");
    for (k, v) in setup.client_settings(listener) {
        config.set(k, v);
    }
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let meter = CpuMeter::start_all(pids);
    let started = Instant::now();
    let workers: Vec<_> = (0..sec.handshake_threads.max(1))
        .map(|_| {
            let (config, done, failed, stop) =
                (config.clone(), done.clone(), failed.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ok = config
                        .create::<BaseConsumer>()
                        .ok()
                        .and_then(|c| c.fetch_metadata(None, Duration::from_secs(10)).ok())
                        .is_some();
                    let counter = if ok { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(sec.handshake_secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = meter.stop();
    let handshakes = done.load(Ordering::Relaxed);
    Ok(HandshakeResult {
        listener,
        threads: sec.handshake_threads,
        handshakes,
        failures: failed.load(Ordering::Relaxed),
        secs,
        per_sec: handshakes as f64 / secs,
        broker_cpu_ms_per_handshake: cpu
            .filter(|_| handshakes > 0)
            .map(|c| c.broker_cpu_secs * 1000.0 / handshakes as f64),
    })
}

pub fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut s = format!(
        "Machine: {} cores ({}), {:.1} GiB RAM, kernel {}; busy {} before the run\n\n",
        m.nproc,
        m.cpu_model.as_deref().unwrap_or("?"),
        m.mem_total_kib.unwrap_or(0) as f64 / 1024.0 / 1024.0,
        m.kernel.as_deref().unwrap_or("?"),
        m.background_busy_pct
            .map_or("?".to_string(), |b| format!("{b:.0}%")),
    );
    let Some(sec) = &r.security else {
        return s;
    };
    let vs = |x: Option<f64>, base: Option<f64>| match (x, base) {
        (Some(x), Some(b)) if b > 0.0 => format!("{:+.0}%", (x / b - 1.0) * 100.0),
        _ => "?".to_string(),
    };
    let mbps = |x: Option<f64>| x.map_or("?".to_string(), |x| format!("{x:.1}"));
    if let Some(run) = sec.sides.iter().flat_map(|side| &side.runs).next() {
        s.push_str(&format!(
            "Client of the produce and consume runs: {:?}\n\n",
            run.client
        ));
    }
    s.push_str("| Broker | Listener | Produce MB/s (median) | vs PLAINTEXT | Consume MB/s (median) | vs PLAINTEXT |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for side in &sec.sides {
        let (plain_p, plain_c) = side.medians(Listener::Plaintext);
        for listener in Listener::ALL {
            let (p, c) = side.medians(listener);
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                side.side,
                listener.name(),
                mbps(p),
                vs(p, plain_p),
                mbps(c),
                vs(c, plain_c)
            ));
        }
    }
    // The broker's CPU per MB moved is its cost whichever side sets the pace.
    let cpu = |c: Option<&broker::CpuUse>, bytes: u64| {
        c.map_or("?".to_string(), |c| {
            format!(
                "broker {:.0}% ({:.2} ms/MB), client {:.0}%",
                c.broker_pct,
                c.broker_cpu_secs * 1e3 / (bytes.max(1) as f64 / 1e6),
                c.client_pct
            )
        })
    };
    s.push_str("\n| Broker | Round | Listener | Produce MB/s | CPU | Consume MB/s | CPU |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for side in &sec.sides {
        for run in &side.runs {
            s.push_str(&format!(
                "| {} | {} | {} | {:.1} | {} | {:.1} | {} |\n",
                side.side,
                run.round,
                run.listener.name(),
                run.produce.mbps,
                cpu(run.produce.cpu.as_ref(), run.produce.bytes_acked),
                run.consume.mbps,
                cpu(run.consume.cpu.as_ref(), run.consume.bytes),
            ));
        }
    }
    s.push_str(
        "\n| Broker | Handshakes over | Threads | Per second | Broker CPU per handshake | Failures |\n",
    );
    s.push_str("|---|---|---|---|---|---|\n");
    for side in &sec.sides {
        for h in &side.handshakes {
            s.push_str(&format!(
                "| {} | {} | {} | {:.1} | {} | {} |\n",
                side.side,
                h.listener.name(),
                h.threads,
                h.per_sec,
                h.broker_cpu_ms_per_handshake
                    .map_or("?".to_string(), |ms| format!("{ms:.2} ms")),
                h.failures
            ));
        }
    }
    s
}
