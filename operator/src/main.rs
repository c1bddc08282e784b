//! `strom-operator`: runs the controllers (default), renders a KafkaCluster's objects
//! (`render`), or prepares a broker pod's configuration (`pod-init`, the brokers' init
//! container — the image ships both binaries).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use kube::runtime::events::Reporter;
use kube::Client;
use strom_operator::cluster::controller::{self, Scope};
use strom_operator::cluster::reconcile::Context;
use strom_operator::cluster::resources::RenderOptions;
use strom_operator::http::{self, HttpState};
use strom_operator::leader::{self, LeaderConfig, LeaderError};
use strom_operator::metrics::Metrics;
use strom_operator::telemetry::{self, LogFormat};
use strom_operator::{podinit, render};
use tokio::sync::watch;

const DEFAULT_BROKER_IMAGE: &str = concat!("ghcr.io/strom-dev/strom:", env!("CARGO_PKG_VERSION"));

#[derive(Parser)]
#[command(
    version,
    about = "Kubernetes operator for Strom, the Kafka-compatible broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Print every object the operator would create for a KafkaCluster, as YAML.
    Render {
        /// A file holding one KafkaCluster.
        #[arg(long, short)]
        file: PathBuf,
        #[arg(long, env = "STROM_BROKER_IMAGE", default_value = DEFAULT_BROKER_IMAGE)]
        broker_image: String,
    },
    /// Init container of broker pods: write this pod's server.properties.
    PodInit {
        #[arg(long)]
        config_dir: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Node label whose value becomes broker.rack.
        #[arg(long)]
        rack_topology_key: Option<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Namespaces to watch, comma-separated; empty watches all.
    #[arg(long, env = "WATCH_NAMESPACES", default_value = "")]
    watch_namespaces: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Hold a Lease so only one replica reconciles.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "strom-operator")]
    lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Broker image for KafkaClusters that name no image.
    #[arg(long, env = "STROM_BROKER_IMAGE", default_value = DEFAULT_BROKER_IMAGE)]
    broker_image: String,
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: LogFormat,
    /// Create a PrometheusRule per KafkaCluster with metrics on, when the Prometheus
    /// Operator's CRD is served. The chart turns this off when it ships the rules itself.
    #[arg(long, env = "PROMETHEUS_RULES", default_value_t = true, action = clap::ArgAction::Set)]
    prometheus_rules: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strom-operator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Render { file, broker_image }) => render_file(&file, broker_image),
        Some(Command::PodInit {
            config_dir,
            output,
            rack_topology_key,
        }) => {
            telemetry::init(LogFormat::Text);
            let env = podinit::PodEnv::from_env();
            runtime
                .block_on(podinit::run(
                    &config_dir,
                    &output,
                    rack_topology_key.as_deref(),
                    &env,
                ))
                .map_err(anyhow::Error::from)
        }
        None => runtime.block_on(run(cli.run)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom-operator: {e:#}");
            tracing::error!(error = format!("{e:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}

fn render_file(file: &PathBuf, broker_image: String) -> anyhow::Result<()> {
    let yaml =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let out = render::render(
        &yaml,
        &RenderOptions {
            default_image: broker_image,
        },
    )
    .with_context(|| file.display().to_string())?;
    print!("{out}");
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let identity = args
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "strom-operator".into());
    let scope = Scope::parse(&args.watch_namespaces);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        ?scope,
        identity,
        leader_election = args.leader_election,
        "starting"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });

    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    let state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let http_server = tokio::spawn(http::serve(listener, state, stopped(stop_rx.clone())));

    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let version = client
        .apiserver_version()
        .await
        .context("reaching the Kubernetes API")?;
    tracing::info!(kubernetes = %version.git_version, "connected");
    ready.store(true, Ordering::SeqCst);

    let reporter = Reporter {
        controller: "strom-operator".into(),
        instance: Some(identity.clone()),
    };
    let options = RenderOptions {
        default_image: args.broker_image,
    };
    let mut ctx = Context::new(client.clone(), metrics.clone(), options, reporter);
    ctx.prometheus_rules = args.prometheus_rules;
    let ctx = Arc::new(ctx);
    let controllers = controller::run(ctx, scope, stop_rx.clone());

    let outcome = if args.leader_election {
        let config = LeaderConfig {
            lease_name: args.lease_name,
            namespace: args.lease_namespace,
            identity,
            lease_duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        };
        // Controllers drain on the stop flag themselves; the delay only bounds how long a
        // standby (which has nothing to drain) lingers after SIGTERM.
        let stop = stop_rx.clone();
        let standby_exit = async move {
            stopped(stop).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        };
        // A client of its own (its own request buffer and connections), so renewals never
        // queue behind a burst of reconciles' requests in this process; the chart's
        // FlowSchema does the same in the API server.
        let lease_client = Client::try_default()
            .await
            .context("connecting to the Kubernetes API for the leader lease")?;
        leader::run_as_leader(lease_client, config, metrics, controllers, standby_exit).await
    } else {
        metrics.set_leader(true);
        controllers.await;
        Ok(())
    };
    ready.store(false, Ordering::SeqCst);
    if outcome.is_ok() {
        // Stopped by the signal, which ends the server too.
        let _ = http_server.await;
    } else {
        // Nothing will set the stop flag now: end the server so the process exits and
        // Kubernetes restarts it as a standby, instead of lingering unready and
        // leaderless (found when a thousand-topic burst on a loaded sandbox cost both
        // replicas the lease in turn).
        http_server.abort();
    }
    match outcome {
        Ok(()) => Ok(()),
        Err(e @ LeaderError::Lost(_)) => {
            Err(anyhow::Error::from(e).context("stopping so a standby can take over"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Resolves once the stop flag is set.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
