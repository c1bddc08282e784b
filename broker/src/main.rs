//! `strom-broker [server.properties] [--override key=value ...]`, like
//! `kafka-server-start.sh`. With no arguments: one broker on localhost:9092, data in ./data.

use std::path::PathBuf;
use std::process::ExitCode;

use strom_broker::config::{properties, BrokerConfig, Properties};
use tracing_subscriber::EnvFilter;

/// See `alloc`: keeps a hostile array count in a request from aborting the process.
#[global_allocator]
static ALLOCATOR: strom_broker::alloc::LazyLargeAlloc = strom_broker::alloc::LazyLargeAlloc;

const USAGE: &str = "usage: strom-broker [server.properties] [--override key=value ...]
       strom-broker format --cluster-id ID [--add-scram SPEC ...] [server.properties] [--override key=value ...]
       strom-broker random-uuid

Runs one Kafka-compatible broker. Without arguments it listens on localhost:9092,
keeps data under ./data and serves /metrics, /health and /ready on 127.0.0.1:9644.
Configuration uses Kafka's property names (listeners, log.dirs, num.partitions, ...).
For a cluster, give each node listeners=PLAINTEXT://:9092,CONTROLLER://:9093 and the
same controller.quorum.voters=0@host0:9093,1@host1:9093,2@host2:9093. `format` writes
meta.properties with the cluster id into every log dir first, like kafka-storage.sh
format; without it a fresh quorum picks an id on first start. `--add-scram` (repeatable,
Kafka's syntax) gives a new cluster SCRAM users before it first serves, e.g.
'SCRAM-SHA-512=[name=alice,password=alice-secret]' (also iterations=, salt= and
saltedpassword= in base64); they enter the metadata log once, when the cluster first
starts, and are ignored for a node that is already formatted.
Logging: RUST_LOG sets the level (default info); STROM_LOG_FORMAT=json for JSON lines.";

/// Kafka's cluster ids are short printable tokens; refuse anything that could break the
/// properties file or a log line.
fn valid_cluster_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `strom-broker format --cluster-id ID [--add-scram SPEC ...] [props] [--override k=v]`.
fn format_command(args: &[String]) -> ExitCode {
    let mut cluster_id = None;
    let mut scram_specs = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--cluster-id" | "-t" => {
                cluster_id = args.get(i + 1).cloned();
                i += 2;
            }
            "--add-scram" | "-S" => {
                let Some(spec) = args.get(i + 1) else {
                    eprintln!("strom-broker format: --add-scram needs a credential, e.g. 'SCRAM-SHA-512=[name=alice,password=alice-secret]'");
                    return ExitCode::from(2);
                };
                scram_specs.push(spec.clone());
                i += 2;
            }
            other if other.starts_with("--add-scram=") => {
                scram_specs.push(other["--add-scram=".len()..].to_string());
                i += 1;
            }
            other => {
                rest.push(other.to_string());
                i += 1;
            }
        }
    }
    let Some(cluster_id) = cluster_id.filter(|c| valid_cluster_id(c)) else {
        eprintln!("strom-broker format: --cluster-id ID is required (1-64 of [A-Za-z0-9_-]); `strom-broker random-uuid` makes one");
        return ExitCode::from(2);
    };
    let config = match parse_args(&rest).map_err(|e| e.to_string()).and_then(|p| {
        BrokerConfig::from_properties(p)
            .map(|(c, _)| c)
            .map_err(|e| e.to_string())
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strom-broker format: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bootstrap = Vec::new();
    for spec in &scram_specs {
        match strom_broker::metadata::add_scram::parse(spec) {
            Ok(record) => bootstrap.push(record),
            Err(e) => {
                // The message names the part that is wrong, never the password.
                eprintln!("strom-broker format: --add-scram: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match strom_broker::server::format_with_bootstrap(&config, &cluster_id, &bootstrap) {
        Ok(formatted) => {
            println!(
                "formatted {} log dir(s) for cluster {cluster_id}, node {}",
                formatted.dirs, config.node_id
            );
            if formatted.bootstrap_written {
                println!(
                    "SCRAM credentials for the new metadata log: {}",
                    describe_bootstrap(&bootstrap)
                );
            } else if !bootstrap.is_empty() {
                eprintln!(
                    "strom-broker format: {} is already formatted, so the --add-scram credentials were not written; on a running cluster use AlterUserScramCredentials (kafka-configs --alter --entity-type users --entity-name NAME --add-config 'SCRAM-SHA-512=[password=...]')",
                    config.log_dirs[0].display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strom-broker format: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// "alice (SCRAM-SHA-512, 4096 iterations), ...": what `format` stored, without secrets.
fn describe_bootstrap(records: &[strom_broker::metadata::MetadataRecord]) -> String {
    records
        .iter()
        .filter_map(|r| match r {
            strom_broker::metadata::MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => Some(format!(
                "{name} ({mechanism}, {} iterations)",
                credential.iterations
            )),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_args(args: &[String]) -> Result<Properties, String> {
    let mut props = Properties::new();
    let mut file: Option<PathBuf> = None;
    let mut overrides = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--override" => {
                let value = args.get(i + 1).ok_or("--override needs key=value")?;
                overrides.push(value.clone());
                i += 2;
            }
            other if other.starts_with("--override=") => {
                overrides.push(other["--override=".len()..].to_string());
                i += 1;
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            path => {
                if file.is_some() {
                    return Err(format!("more than one properties file given ({path})"));
                }
                file = Some(PathBuf::from(path));
                i += 1;
            }
        }
    }
    if let Some(path) = file {
        props = properties::read_file(&path).map_err(|e| e.to_string())?;
    }
    for o in overrides {
        properties::apply_override(&mut props, &o).map_err(|e| e.to_string())?;
    }
    Ok(props)
}

fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log file or `kubectl logs` gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("STROM_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// Every partition keeps its segment files open, so the default soft limit of 1024 file
/// descriptors is far too low; raise it to the hard limit, as Kafka's docs ask operators to.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(soft = limit.rlim_cur, "could not raise the open file limit");
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("strom-broker {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match args.first().map(String::as_str) {
        Some("format") => return format_command(&args[1..]),
        Some("random-uuid") => {
            println!("{}", uuid::Uuid::new_v4().simple());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    init_tracing();
    let props = match parse_args(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("strom-broker: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (config, warnings) = match BrokerConfig::from_properties(props) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            eprintln!("strom-broker: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in warnings {
        tracing::warn!("{w}");
    }
    raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strom-broker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(strom_broker::server::run(config, stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("broker failed: {e:#}");
            eprintln!("strom-broker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
