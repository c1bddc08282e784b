//! `strom-bench roll`: a rolling restart of a three-broker cluster under an acks=all
//! idempotent producer load, done the way the operator's roller does it, with each
//! broker's time split into restart, catch-up and leader moves.
//!
//! The decisions are the operator's own code (`strom_operator::roll`): the restart is
//! started only when `safety::decide` says Safe (metadata min-ISR rule, quorum rule and
//! the broker's `/restart-safe`), the order is `plan::order` (active controller last),
//! catch-up is `safety::catch_up`, and the preferred leaders are moved back with the
//! roller's `ElectLeaders` call. Only the pod deletion is replaced: the harness sends
//! SIGTERM (the broker's controlled shutdown) and starts the process again on the same
//! directory and ports, as the StatefulSet would on the same volume.
//!
//! Per broker:
//! - restart: SIGTERM → the new process serves (registered, unfenced: its admin
//!   `GET /ready` answers 200 or names only partitions whose ISR it has not rejoined);
//! - catch-up: serving → `/ready` 200 and, in the cluster's metadata, the broker in the
//!   ISR of every partition it replicates (Strom's `/ready` itself waits for the ISRs,
//!   so SIGTERM → `/ready` 200 is reported too);
//! - leader moves: ElectLeaders(preferred) → every partition that prefers it is led by it.
//!
//! The limits in the same run: the same roll of the idle cluster before the load
//! starts (its restart column is the floor of the loaded one), and the producer's
//! throughput before the roll beside its throughput during it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use strom_client::Security;
use strom_operator::roll::kafka::{BrokerAdmin, ClusterView, Endpoint, KafkaAdmin};
use strom_operator::roll::{plan, safety};

use crate::broker::{http_get, http_status, ms, UnderTest};
use crate::cluster::Cluster;
use crate::kafka::{self, AckSample, ProducerSettings, SteadyLoad};
use crate::{phase, Args, Report};

const TOPIC: &str = "bench-roll";
const BROKERS: usize = 3;
const MIN_ISR: i32 = 2;

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct RollArgs {
    /// Partitions of the RF 3 topic the load goes to.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Records/s the producer offers (0: as fast as the cluster takes them, which on a
    /// small machine starves the catch-up the roll waits for).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds of load before the roll starts (the "before" throughput window).
    #[arg(long, default_value_t = 20)]
    pub before_secs: u64,
    /// Seconds of load after the roll ends, before the producer stops.
    #[arg(long, default_value_t = 5)]
    pub after_secs: u64,
    /// Upper bound on each wait of the roll (restart safe, ready, in ISR, leaders back).
    #[arg(long, default_value_t = 120)]
    pub step_timeout_secs: u64,
    /// SIGTERM to SIGKILL, as a pod's terminationGracePeriodSeconds.
    #[arg(long, default_value_t = 60)]
    pub grace_secs: u64,
}

/// One broker's restart within a roll.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BrokerRestart {
    pub broker: i32,
    /// It was the active controller when its turn came.
    pub was_controller: bool,
    /// The roll's turn started → the restart was judged safe.
    pub wait_safe_ms: f64,
    /// SIGTERM → process exit (controlled shutdown); None if it had to be killed.
    pub stop_ms: Option<f64>,
    /// SIGTERM → the new process serves: registered and unfenced (its `/ready` answers
    /// 200 or names only partitions whose ISR it has not rejoined yet).
    pub restart_ms: f64,
    /// SIGTERM → `/ready` answers 200 (which in Strom includes rejoining the ISRs).
    pub ready_ms: Option<f64>,
    /// Serving → `/ready` 200 and, by the cluster's metadata, in the ISR of every
    /// partition it replicates.
    pub catch_up_ms: f64,
    /// ElectLeaders(preferred) sent → every partition preferring it is led by it.
    pub leader_moves_ms: f64,
    /// Partitions the election moved back to it.
    pub elected: usize,
    /// The whole turn: wait for safety + restart + catch-up + leader moves.
    pub total_ms: f64,
}

/// One roll of the whole cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollPass {
    pub under_load: bool,
    pub restarts: Vec<BrokerRestart>,
    pub total_ms: f64,
}

/// The producer's figures over one window of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    pub secs: f64,
    pub mbps: f64,
    pub records_per_sec: f64,
    /// Longest stretch without a single acknowledgement (100 ms resolution).
    pub longest_stall_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RollResult {
    pub brokers: usize,
    pub partitions: i32,
    pub min_insync_replicas: i32,
    pub record_size: u64,
    /// The restart of the idle cluster: the floor of the loaded one.
    pub idle: Option<RollPass>,
    pub loaded: Option<RollPass>,
    pub load: Option<SteadyLoad>,
    pub before: Option<Window>,
    pub during: Option<Window>,
    /// Every partition's high watermark minus log start, summed, after the load:
    /// must cover every acknowledged record.
    pub records_on_topic: Option<i64>,
}

pub fn run(
    args: &Args,
    r: &RollArgs,
    broker_path: &Path,
    base_dir: &Path,
    pool: &[u8],
    report: &mut Report,
) -> Result<()> {
    if r.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    let mut result = RollResult {
        brokers: BROKERS,
        partitions: r.partitions,
        min_insync_replicas: MIN_ISR,
        record_size: args.record_size,
        ..Default::default()
    };
    let mut overrides = vec![
        format!("min.insync.replicas={MIN_ISR}"),
        // Otherwise the controller moves leaderships back by itself and the leader-move
        // time would be its rebalance interval, not the roller's ElectLeaders.
        "auto.leader.rebalance.enable=false".to_string(),
    ];
    overrides.extend_from_slice(&args.overrides);
    phase(&format!(
        "roll: {BROKERS} brokers, {TOPIC} with {} partitions, RF {BROKERS}, min.insync.replicas={MIN_ISR}",
        r.partitions
    ));
    let (mut cluster, t0) =
        Cluster::start(broker_path, base_dir, BROKERS, &overrides, args.keep_data)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime for the operator's calls")?;
    // Filled in step by step, so a failure still reports what was measured.
    let outcome = measure(args, r, &mut cluster, t0, &runtime, pool, &mut result);
    if let Some(load) = &result.load {
        if load.records_failed > 0 || load.unflushed || load.records_acked < load.records_sent {
            report.errors.push(format!(
                "roll: the producer lost records: {} sent, {} acknowledged, {} failed, unflushed: {}, first error: {:?}",
                load.records_sent,
                load.records_acked,
                load.records_failed,
                load.unflushed,
                load.first_delivery_error
            ));
        }
    }
    if let (Some(on_topic), Some(load)) = (result.records_on_topic, &result.load) {
        if on_topic < load.records_acked as i64 {
            report.errors.push(format!(
                "roll: {on_topic} records on {TOPIC}, fewer than the {} acknowledged",
                load.records_acked
            ));
        }
    }
    report.roll = Some(result);
    if outcome.is_err() {
        eprintln!("{}", cluster.stderr_tail(10));
    }
    outcome
    // `cluster` dropped here: every broker is killed, then its directory removed.
}

fn measure(
    args: &Args,
    r: &RollArgs,
    cluster: &mut Cluster,
    t0: Instant,
    runtime: &tokio::runtime::Runtime,
    pool: &[u8],
    result: &mut RollResult,
) -> Result<()> {
    let step_timeout = Duration::from_secs(r.step_timeout_secs);
    let ready = cluster.wait_ready(t0, step_timeout)?;
    eprintln!("  every broker ready after {:.0} ms", ms(ready));
    let bootstrap = cluster.bootstrap();
    kafka::create_topic(&bootstrap, TOPIC, r.partitions, BROKERS as i32)?;
    for p in 0..r.partitions {
        kafka::wait_isr(&bootstrap, TOPIC, p, BROKERS, step_timeout)?;
    }

    phase("roll the idle cluster (the floor)");
    let mut idle = RollPass::default();
    let outcome = roll(r, cluster, runtime, &mut idle);
    result.idle = Some(idle);
    outcome?;

    let settings = ProducerSettings {
        bootstrap: bootstrap.clone(),
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        record_size: args.record_size as usize,
        idempotence: true,
        client_settings: Vec::new(),
    };
    phase(&format!(
        "load: acks=all, idempotent, {} records/s of {} B; {} s before the roll",
        r.rate, args.record_size, r.before_secs
    ));
    let stop = AtomicBool::new(false);
    let samples: Mutex<Vec<AckSample>> = Mutex::new(Vec::new());
    let mut loaded = RollPass {
        under_load: true,
        ..Default::default()
    };
    let (load, rolled) = thread::scope(|scope| {
        let producer = scope.spawn(|| {
            kafka::produce_until(
                &settings,
                TOPIC,
                r.partitions,
                "all",
                r.rate,
                pool,
                &stop,
                Duration::from_millis(100),
                &samples,
            )
        });
        let rolled = roll_under_load(r, cluster, runtime, &mut loaded, &producer);
        // Stops the producer on every path, so the scope can end.
        stop.store(true, Ordering::Relaxed);
        let load = producer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the producer panicked")));
        (load, rolled)
    });
    result.loaded = Some(loaded);
    let load = load?;
    eprintln!(
        "  producer: {} sent, {} acknowledged, {} failed, client errors {}",
        load.records_sent, load.records_acked, load.records_failed, load.client_errors
    );
    result.load = Some(load);
    let (load_start, roll_start, roll_end) = rolled?;
    let samples = samples.into_inner().unwrap_or_else(|e| e.into_inner());
    let window = |from: Instant, to: Instant| {
        kafka::rate_between(&samples, from, to).map(|(mbps, rps)| Window {
            secs: to.duration_since(from).as_secs_f64(),
            mbps,
            records_per_sec: rps,
            longest_stall_ms: ms(kafka::longest_stall(&samples, from, to)),
        })
    };
    result.before = window(load_start, roll_start);
    result.during = window(roll_start, roll_end);
    eprintln!(
        "  before the roll {:?}\n  during the roll {:?}",
        result.before, result.during
    );
    let mut on_topic = 0;
    for p in 0..r.partitions {
        let (low, high) = kafka::watermarks(&bootstrap, TOPIC, p)?;
        on_topic += high - low;
    }
    result.records_on_topic = Some(on_topic);
    Ok(())
}

/// The loaded roll between `--before-secs` and `--after-secs` of load. Returns when the
/// load window before it starts, and when the roll starts and ends.
fn roll_under_load(
    r: &RollArgs,
    cluster: &mut Cluster,
    runtime: &tokio::runtime::Runtime,
    loaded: &mut RollPass,
    producer: &thread::ScopedJoinHandle<'_, Result<SteadyLoad>>,
) -> Result<(Instant, Instant, Instant)> {
    // The first seconds are the producer's connection and metadata set-up.
    let load_start = Instant::now() + Duration::from_secs(2);
    thread::sleep(Duration::from_secs(r.before_secs.max(3)));
    if producer.is_finished() {
        bail!("the producer stopped before the roll");
    }
    let roll_start = Instant::now();
    phase("roll under load");
    roll(r, cluster, runtime, loaded)?;
    let roll_end = Instant::now();
    thread::sleep(Duration::from_secs(r.after_secs));
    Ok((load_start, roll_start, roll_end))
}

/// Where the operator's calls reach each node: Kafka listener and admin HTTP.
fn endpoints(cluster: &Cluster) -> Vec<Endpoint> {
    cluster
        .brokers
        .iter()
        .enumerate()
        .map(|(i, b)| Endpoint {
            id: i as i32,
            kafka: b.kafka_addr.to_string(),
            admin: b.admin_addr.to_string(),
            security: Security::default(),
        })
        .collect()
}

/// Polls `check` every 50 ms until it returns Some, bounded by `timeout`; `what` and the
/// last error name a failure.
fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("{what}: not reached after {timeout:?} (last: {last})");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Rolls every broker once, one at a time, as the operator's roller does.
fn roll(
    r: &RollArgs,
    cluster: &mut Cluster,
    runtime: &tokio::runtime::Runtime,
    pass: &mut RollPass,
) -> Result<()> {
    let admin = KafkaAdmin::default();
    let timeout = Duration::from_secs(r.step_timeout_secs);
    let start = Instant::now();
    let mut pending: Vec<i32> = (0..cluster.brokers.len() as i32).collect();
    while !pending.is_empty() {
        let eps = endpoints(cluster);
        let describe = |eps: Vec<Endpoint>| -> Result<ClusterView> {
            Ok(runtime.block_on(admin.describe(eps))?)
        };
        // The roller's order: the active controller last (every broker here is ready
        // and outdated).
        let controller = describe(eps.clone())?.controller;
        let brokers: Vec<plan::Broker> = pending
            .iter()
            .map(|&ordinal| plan::Broker {
                ordinal,
                ready: true,
                outdated: true,
                stuck: false,
            })
            .collect();
        let Some(&id) = plan::order(&brokers, controller).first() else {
            bail!("the roller's order is empty with brokers {pending:?} pending");
        };
        pending.retain(|b| *b != id);
        let i = id as usize;
        let me = eps[i].clone();
        // Ask the others first: the broker just restarted may still be catching up on
        // metadata, and the roller asks any broker.
        let mut others = eps.clone();
        others.rotate_left(i + 1);
        let mut step = BrokerRestart {
            broker: id,
            was_controller: controller == Some(id),
            ..Default::default()
        };
        let turn = Instant::now();

        poll(&format!("broker {id} safe to restart"), timeout, || {
            let view = describe(others.clone())?;
            let answer = runtime.block_on(admin.restart_safe(me.clone()));
            let answer = answer.map_err(|e| e.to_string());
            let verdict = safety::decide(
                id,
                &view.partitions,
                &view.min_isr,
                MIN_ISR,
                view.quorum.as_ref(),
                answer.as_ref().map_err(String::as_str),
            );
            Ok(matches!(verdict, safety::Verdict::Safe).then_some(()))
        })?;
        step.wait_safe_ms = ms(turn.elapsed());

        let sigterm = Instant::now();
        let (stopped, _) = cluster.restart(i, Duration::from_secs(r.grace_secs))?;
        step.stop_ms = stopped.map(ms);
        let admin_addr = cluster.brokers[i].admin_addr;
        // Strom's /ready includes "in the ISR of every partition it follows", so the
        // restart proper ends earlier: when /ready first answers at all past start-up,
        // registration and unfencing (200, or 503 naming only partitions out of sync).
        poll(&format!("broker {id} serving again"), timeout, || {
            cluster.brokers[i].check_alive()?;
            let (status, body) = http_get(admin_addr, "/ready")?;
            Ok((status == 200 || body.contains("not yet in their ISR")).then_some(()))
        })?;
        step.restart_ms = ms(sigterm.elapsed());

        let serving = Instant::now();
        let elect = poll(
            &format!("broker {id} ready and back in every ISR"),
            timeout,
            || {
                if step.ready_ms.is_none() && http_status(admin_addr, "/ready")? == 200 {
                    step.ready_ms = Some(ms(sigterm.elapsed()));
                }
                let view = describe(others.clone())?;
                Ok(match safety::catch_up(id, &view.partitions) {
                    safety::CatchUp::CaughtUp { elect } if step.ready_ms.is_some() => Some(elect),
                    _ => None,
                })
            },
        )?;
        step.catch_up_ms = ms(serving.elapsed());

        let electing = Instant::now();
        step.elected = elect.len();
        if !elect.is_empty() {
            runtime
                .block_on(admin.elect_preferred(others.clone(), elect))
                .with_context(|| format!("ElectLeaders for broker {id}"))?;
            poll(&format!("broker {id} leads again"), timeout, || {
                let view = describe(others.clone())?;
                Ok(view
                    .partitions
                    .iter()
                    .filter(|p| p.replicas.first() == Some(&id))
                    .all(|p| p.leader == id)
                    .then_some(()))
            })?;
        }
        step.leader_moves_ms = ms(electing.elapsed());
        step.total_ms = ms(turn.elapsed());
        eprintln!(
            "  broker {id}{}: safe after {:.0} ms, restart {:.0} ms (stop {}; ready {:?} ms), catch-up {:.0} ms, {} leader(s) back in {:.0} ms",
            if step.was_controller { " (controller)" } else { "" },
            step.wait_safe_ms,
            step.restart_ms,
            step.stop_ms.map_or("killed".to_string(), |s| format!("{s:.0} ms")),
            step.ready_ms,
            step.catch_up_ms,
            step.elected,
            step.leader_moves_ms
        );
        pass.restarts.push(step);
        pass.total_ms = ms(start.elapsed());
    }
    Ok(())
}

fn s(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

/// The figures as Markdown: the loaded roll's split per broker beside the idle one's.
pub fn markdown(report: &Report) -> String {
    let mut out = crate::report::machine_line(report);
    let Some(r) = &report.roll else {
        return out;
    };
    out.push_str(&format!(
        "{} brokers, `{TOPIC}`: {} partitions, RF {}, min.insync.replicas {}; roller order, active controller last\n\n",
        r.brokers, r.partitions, r.brokers, r.min_insync_replicas
    ));
    out.push_str(
        "| Roll | Broker | Wait for safe | Restart (SIGTERM → serving) | of which stop | Catch-up (serving → ready, in every ISR) | Leader moves (ElectLeaders → led) | Broker total | SIGTERM → /ready 200 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for pass in [&r.idle, &r.loaded].into_iter().flatten() {
        let label = if pass.under_load {
            "under load"
        } else {
            "idle (floor)"
        };
        for b in &pass.restarts {
            out.push_str(&format!(
                "| {label} | {}{} | {} | {} | {} | {} | {} ({}) | {} | {} |\n",
                b.broker,
                if b.was_controller {
                    " (controller)"
                } else {
                    ""
                },
                s(b.wait_safe_ms),
                s(b.restart_ms),
                b.stop_ms.map_or("killed".to_string(), s),
                s(b.catch_up_ms),
                s(b.leader_moves_ms),
                b.elected,
                s(b.total_ms),
                b.ready_ms.map_or("–".to_string(), s),
            ));
        }
        let sum = |f: fn(&BrokerRestart) -> f64| s(pass.restarts.iter().map(f).sum());
        out.push_str(&format!(
            "| **{label}, whole roll** | | {} | {} | | {} | {} | **{}** | |\n",
            sum(|b| b.wait_safe_ms),
            sum(|b| b.restart_ms),
            sum(|b| b.catch_up_ms),
            sum(|b| b.leader_moves_ms),
            s(pass.total_ms),
        ));
    }
    if let Some(load) = &r.load {
        out.push_str(&format!(
            "\nLoad: one librdkafka producer, acks=all, idempotent, {} records/s offered ({}), {} B records, over the {} partitions.\n\n",
            load.target_rate,
            if load.target_rate == 0 { "as fast as it goes" } else { "open loop" },
            r.record_size,
            r.partitions
        ));
        out.push_str("| Producer | Window | MB/s | records/s | Longest stall without an ack |\n|---|---:|---:|---:|---:|\n");
        for (name, w) in [
            ("before the roll", &r.before),
            ("during the roll", &r.during),
        ] {
            if let Some(w) = w {
                out.push_str(&format!(
                    "| {name} | {:.1} s | {:.1} | {:.0} | {:.0} ms |\n",
                    w.secs, w.mbps, w.records_per_sec, w.longest_stall_ms
                ));
            }
        }
        out.push_str(&format!(
            "\nProducer: {} sent, {} acknowledged, **{} failed**, {} client-level errors (first: {}); {} records on the topic afterwards.\n",
            load.records_sent,
            load.records_acked,
            load.records_failed,
            load.client_errors,
            load.first_client_error.as_deref().unwrap_or("none"),
            r.records_on_topic.map_or("?".to_string(), |n| n.to_string()),
        ));
    }
    out
}
