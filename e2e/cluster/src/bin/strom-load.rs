//! `strom-load`: the fault tests' load as a program, for scenarios whose cluster the test
//! process cannot reach itself (the Kubernetes scenarios run it as a pod next to the
//! brokers). It creates the topic, runs an acks=all idempotent producer and a consumer
//! group member until asked to stop over HTTP, then waits for the member to catch up,
//! reads the topic back, runs the history checker and answers with the report as JSON
//! (also printed on stdout), and exits.
//!
//! ```text
//! strom-load --bootstrap my-cluster-bootstrap.ns.svc:9092 --topic load
//! GET /progress   {"sent":..,"acked":..,"failed":..,"consumed":..}
//! GET /stop       the report; the program exits after answering
//! ```
//!
//! A secured cluster: `--client-config KEY=VALUE` (librdkafka's names) for every Kafka
//! client it makes, `--client-config-file KEY=PATH` for a value kept in a file (a mounted
//! Secret), e.g. `--client-config security.protocol=SASL_SSL --client-config
//! sasl.mechanism=SCRAM-SHA-512 --client-config sasl.username=load
//! --client-config-file sasl.password=/secrets/password --client-config
//! ssl.ca.location=/certs/ca.crt`. A wrong password or an untrusted certificate ends
//! the program at start with a non-zero status and librdkafka's reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{json, Value};
use tokio::sync::Notify;

use strom_e2e_cluster::checker::check_history;
use strom_e2e_cluster::client_config::{self, Settings};
use strom_e2e_cluster::cluster::create_topic_with;
use strom_e2e_cluster::group::GroupMember;
use strom_e2e_cluster::history::Outcome;
use strom_e2e_cluster::reader::read_partitions_with;
use strom_e2e_cluster::security;
use strom_e2e_cluster::{LoadGenerator, LoadOptions};

#[derive(Parser, Debug)]
#[command(about = "acks=all load with a consumer group and a history check at the end")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    #[arg(long, default_value = "load")]
    topic: String,
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    #[arg(long, default_value_t = 3)]
    replication_factor: i32,
    #[arg(long, default_value = "2")]
    min_insync_replicas: String,
    /// Sends per second.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    #[arg(long, default_value = "load-group")]
    group: String,
    /// Where the HTTP endpoint listens.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// A librdkafka setting for every Kafka client (topic creation, producer, group
    /// member, read-back), KEY=VALUE (repeatable), e.g. `security.protocol=SASL_SSL`.
    #[arg(long = "client-config", value_parser = client_config::parse_pair)]
    client_config: Vec<(String, String)>,
    /// As --client-config with the value read from a file and trimmed, KEY=PATH
    /// (repeatable; applied after --client-config), e.g. `sasl.password=/secret/password`.
    #[arg(long = "client-config-file", value_parser = client_config::parse_file_pair)]
    client_config_file: Vec<(String, String)>,
    /// A librdkafka producer setting, KEY=VALUE (repeatable; applied after the client
    /// settings), e.g. `message.timeout.ms=300000` for a scenario whose broker dies
    /// without a word.
    #[arg(long = "producer-config", value_parser = client_config::parse_pair)]
    producer_config: Vec<(String, String)>,
}

impl Args {
    /// The settings of every client: --client-config, then --client-config-file.
    fn client_settings(&self) -> Vec<(String, String)> {
        let mut settings = self.client_config.clone();
        settings.extend_from_slice(&self.client_config_file);
        settings
    }
}

/// The running load, taken out once by `/stop`.
struct Running {
    load: LoadGenerator,
    member: GroupMember,
}

struct App {
    args: Args,
    settings: Vec<(String, String)>,
    running: Mutex<Option<Running>>,
    stopped: Notify,
}

/// How long the member may take to reach the high watermarks, and the read-back.
const CATCH_UP: Duration = Duration::from_secs(60);
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How many of the producer's errors the report quotes (the count is always given).
const ERRORS_SHOWN: usize = 10;
/// How long the first metadata request may take: brokers that have just become ready
/// answer at once, a refusal (password, certificate) is reported within it.
const REACH_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = args.client_settings();
    client_config::check(&settings)?;
    client_config::check_reachable(&args.bootstrap, &settings, REACH_TIMEOUT)?;
    let runtime = tokio::runtime::Runtime::new()?;
    // The brokers may have only just become ready: CreateTopics retries elections.
    create_topic_with(
        &runtime,
        &args.bootstrap,
        &settings,
        &args.topic,
        args.partitions,
        args.replication_factor,
        &[("min.insync.replicas", args.min_insync_replicas.as_str())],
    )?;
    let load = LoadGenerator::start(
        &args.bootstrap,
        &args.topic,
        LoadOptions::new(1, args.rate, args.partitions)
            .with_client_settings(&settings)
            .with_client_settings(&args.producer_config),
    )?;
    let member = GroupMember::start_with(&args.bootstrap, &settings, &args.group, &args.topic)?;
    eprintln!(
        "strom-load: producing {}/s to {} ({} partitions) and consuming in group {} over {}; GET http://{}/stop to finish",
        args.rate,
        args.topic,
        args.partitions,
        args.group,
        protocol_of(&settings),
        args.listen
    );
    let listen = args.listen;
    let app = Arc::new(App {
        args,
        settings,
        running: Mutex::new(Some(Running { load, member })),
        stopped: Notify::new(),
    });
    runtime.block_on(serve(app, listen))
}

async fn serve(app: Arc<App>, listen: SocketAddr) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/progress", get(progress))
        .route("/stop", get(stop))
        .with_state(app.clone());
    tokio::spawn(report_progress(app.clone()));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { app.stopped.notified().await })
        .await?;
    Ok(())
}

async fn progress(State(app): State<Arc<App>>) -> Json<Value> {
    Json(app.progress().unwrap_or_else(|| json!({"stopped": true})))
}

/// A progress line every few seconds on stderr (the pod's log), so a scenario can wait
/// for the first acknowledged writes without an HTTP client.
async fn report_progress(app: Arc<App>) {
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    loop {
        every.tick().await;
        match app.progress() {
            Some(p) => eprintln!("strom-load: progress {p}"),
            None => return,
        }
    }
}

impl App {
    fn progress(&self) -> Option<Value> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.as_ref().map(|r| {
            json!({
                "sent": r.load.sent(),
                "acked": r.load.acked(),
                "failed": r.load.failed(),
                "consumed": r.member.consumed(),
            })
        })
    }
}

async fn stop(State(app): State<Arc<App>>) -> Json<Value> {
    let running = app.running.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(running) = running else {
        return Json(json!({"error": "already stopped"}));
    };
    let checked = app.clone();
    let report =
        tokio::task::spawn_blocking(move || finish(&checked.args, &checked.settings, running))
            .await
            .unwrap_or_else(|e| json!({"error": format!("the check panicked: {e}")}));
    println!("{report}");
    app.stopped.notify_one();
    Json(report)
}

/// Stops the load, lets the member catch up, reads the topic back and checks it.
fn finish(args: &Args, settings: &Settings, running: Running) -> Value {
    let mut notes = Vec::new();
    let history = match running.load.stop() {
        Ok(h) => h,
        Err(e) => return json!({"error": format!("stopping the producer: {e}")}),
    };
    let hws = match high_watermarks(&args.bootstrap, settings, &args.topic, args.partitions) {
        Ok(h) => h,
        Err(e) => return json!({"error": format!("high watermarks: {e}")}),
    };
    if let Err(e) = running.member.wait_caught_up(&hws, CATCH_UP) {
        notes.push(format!("group member not caught up: {e}"));
    }
    let run = match running.member.stop() {
        Ok(r) => r,
        Err(e) => return json!({"error": format!("stopping the group member: {e}")}),
    };
    let observed =
        match read_partitions_with(&args.bootstrap, settings, &args.topic, &hws, CATCH_UP) {
            Ok(o) => o,
            Err(e) => return json!({"error": format!("reading the topic back: {e}")}),
        };
    let violations: Vec<String> = check_history(&history, &observed)
        .iter()
        .map(ToString::to_string)
        .collect();
    // Records below the high watermark the member never saw: the group skipped them.
    let skipped: BTreeMap<String, Vec<i64>> = hws
        .iter()
        .map(|(&p, &hw)| (p.to_string(), run.missing_below(p, hw)))
        .filter(|(_, missing)| !missing.is_empty())
        .collect();
    let send_errors: Vec<&str> = history
        .sends
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Failed { error } => Some(error.as_str()),
            Outcome::Acked { .. } => None,
        })
        .collect();
    json!({
        "topic": args.topic,
        "sent": history.sends.len(),
        "acked": history.acked(),
        "failed": send_errors.len(),
        "send_errors": send_errors.iter().take(ERRORS_SHOWN).collect::<Vec<_>>(),
        "consumed": run.consumed.len(),
        "records_read": observed.values().map(Vec::len).sum::<usize>(),
        "high_watermarks": hws.iter().map(|(p, hw)| (p.to_string(), *hw)).collect::<BTreeMap<_, _>>(),
        "violations": violations,
        "skipped": skipped,
        "poll_errors": run.poll_errors,
        "transport_notices": run.transport_notices.len(),
        "commit_errors": run.commit_errors,
        "notes": notes,
    })
}

/// `security.protocol` as given (librdkafka's default otherwise), for the start line.
fn protocol_of(settings: &Settings) -> &str {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == "security.protocol")
        .map_or("plaintext", |(_, v)| v.as_str())
}

fn high_watermarks(
    bootstrap: &str,
    settings: &Settings,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer =
        client_config::apply(&mut security::client_config(bootstrap), settings).create()?;
    (0..partitions)
        .map(|p| {
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(15))?;
            Ok((p, high))
        })
        .collect()
}
