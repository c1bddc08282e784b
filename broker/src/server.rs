//! Start-up and shutdown: open storage, bind listeners, run background work, and on
//! SIGTERM/SIGINT stop accepting, let in-flight requests finish, flush and close.

use std::fs;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::admin_http;
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::group::OFFSETS_TOPIC;
use crate::log::LogManager;
use crate::metadata::MetadataStore;
use crate::net::listener;

/// Kafka's per-log-dir identity file.
const META_PROPERTIES: &str = "meta.properties";
/// Where the metadata journal lives, under the first log dir (Kafka's KRaft name).
const METADATA_DIR: &str = "__cluster_metadata-0";
/// How long shutdown waits for in-flight requests before closing the logs anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the flush policy's time limit (flush.ms) is checked.
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Reads (or, on a fresh log dir, writes) `meta.properties`; every log dir must agree on
/// the cluster id and belong to this node.
fn load_or_format(config: &BrokerConfig) -> anyhow::Result<String> {
    let mut cluster_id: Option<String> = None;
    for dir in &config.log_dirs {
        let path = dir.join(META_PROPERTIES);
        if !path.exists() {
            continue;
        }
        let file =
            fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let props = java_properties::read(std::io::BufReader::new(file))
            .with_context(|| format!("cannot parse {}", path.display()))?;
        let node: Option<i32> = props.get("node.id").and_then(|v| v.parse().ok());
        if node != Some(config.node_id) {
            bail!(
                "{} belongs to node.id {:?}, but this broker is node.id {}",
                path.display(),
                node,
                config.node_id
            );
        }
        let id = props
            .get("cluster.id")
            .cloned()
            .with_context(|| format!("{} has no cluster.id", path.display()))?;
        if let Some(existing) = &cluster_id {
            if *existing != id {
                bail!("log dirs disagree on cluster.id: {existing} and {id}");
            }
        }
        cluster_id = Some(id);
    }
    let cluster_id = cluster_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    for dir in &config.log_dirs {
        let path = dir.join(META_PROPERTIES);
        if !path.exists() {
            fs::create_dir_all(dir)
                .with_context(|| format!("cannot create log dir {}", dir.display()))?;
            fs::write(
                &path,
                format!(
                    "version=1\ncluster.id={cluster_id}\nnode.id={}\n",
                    config.node_id
                ),
            )
            .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(cluster_id)
}

fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let probe = dir.join(".strom-write-probe");
    fs::write(&probe, b"").with_context(|| format!("log dir {} is not writable", dir.display()))?;
    let _ = fs::remove_file(probe);
    Ok(())
}

/// Runs the broker until `stop` completes, then shuts down gracefully.
pub async fn run(config: BrokerConfig, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let started = Instant::now();
    for dir in &config.log_dirs {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log dir {}", dir.display()))?;
        check_writable(dir)?;
    }
    let cluster_id = load_or_format(&config)?;
    let (metadata, torn) = MetadataStore::open(&config.log_dirs[0].join(METADATA_DIR))
        .context("cannot open the metadata journal")?;
    if torn > 0 {
        tracing::warn!(bytes = torn, "cut a torn tail off the metadata journal");
    }
    let logs = LogManager::open(&config).context("cannot open log dirs")?;
    let image = metadata.image();
    // Recovery reads files; keep it off the async workers.
    let logs = tokio::task::spawn_blocking(move || logs.sync(&image, true).map(|()| logs))
        .await
        .context("log recovery panicked")?
        .context("cannot open partition logs")?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let broker = Arc::new(Broker::new(
        config.clone(),
        cluster_id.clone(),
        metadata,
        logs,
        shutdown_rx,
    ));

    let loader = broker.clone();
    tokio::task::spawn_blocking(move || load_groups(&loader))
        .await
        .context("loading consumer groups panicked")??;

    let mut bound = Vec::new();
    for l in &config.listeners {
        bound.extend(listener::bind(l).await?);
    }
    let admin_socket = tokio::net::TcpListener::bind(config.admin_listener)
        .await
        .with_context(|| format!("cannot bind admin.listener {}", config.admin_listener))?;

    let tracker = TaskTracker::new();
    let mut addresses = Vec::new();
    for b in bound {
        if let Ok(addr) = b.socket.local_addr() {
            addresses.push(format!("{}://{addr}", b.name));
        }
        tokio::spawn(listener::accept_loop(broker.clone(), b, tracker.clone()));
    }
    let admin = tokio::spawn(admin_http::serve(broker.clone(), admin_socket));
    let background = tokio::spawn(background_work(broker.clone()));
    let group_timers = tokio::spawn(group_work(broker.clone()));

    broker.set_ready(true);
    tracing::info!(
        node_id = config.node_id,
        %cluster_id,
        listeners = ?addresses,
        admin = %config.admin_listener,
        startup_ms = started.elapsed().as_millis() as u64,
        "strom-broker serving"
    );

    stop.await;
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    broker.set_ready(false);
    let _ = shutdown_tx.send(true);
    // Parked joins and syncs would hold the drain until their rebalance ends; Kafka's
    // answer to them when a coordinator goes away is NOT_COORDINATOR.
    group_timers.abort();
    broker.groups.resign();
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing the logs anyway");
    }
    background.abort();
    let _ = admin.await;
    let closing = broker.clone();
    tokio::task::spawn_blocking(move || closing.logs.close())
        .await
        .context("closing logs panicked")?
        .context("flushing logs on shutdown failed")?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Replays `__consumer_offsets` so committed offsets and groups survive a restart.
fn load_groups(broker: &Broker) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut total = crate::group::load::LoadStats::default();
    let Some(topic) = broker.metadata.image().topic(OFFSETS_TOPIC).cloned() else {
        return Ok(());
    };
    for p in topic.partitions.keys() {
        let Some(partition) = broker.partition(OFFSETS_TOPIC, *p) else {
            continue;
        };
        let stats = crate::group::load::load_partition(&broker.groups, &partition)
            .with_context(|| format!("cannot replay {}", partition.id))?;
        total.records += stats.records;
        total.skipped += stats.skipped;
    }
    tracing::info!(
        records = total.records,
        skipped = total.skipped,
        groups = broker.groups.list().len(),
        took_ms = started.elapsed().as_millis() as u64,
        "loaded consumer groups and committed offsets"
    );
    Ok(())
}

/// How often group timers (session, rebalance and join-delay deadlines) are checked; the
/// granularity those timeouts are honoured with.
const GROUP_TICK: Duration = Duration::from_millis(20);

/// Group timers, and the expiry of committed offsets past offsets.retention.minutes.
async fn group_work(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(GROUP_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expiry = tokio::time::interval(Duration::from_millis(
        broker.config.groups.offsets_retention_check_interval_ms,
    ));
    expiry.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => broker.groups.tick(&*broker),
            _ = expiry.tick() => {
                let b = broker.clone();
                let expired = tokio::task::spawn_blocking(move || {
                    b.groups.expire_offsets(&*b, crate::log::now_ms())
                });
                if let Err(e) = expired.await {
                    tracing::error!(error = %e, "offset expiry task panicked");
                }
            }
        }
    }
}

/// Retention, time-based flushing and log cleaning, each on its own interval.
async fn background_work(broker: Arc<Broker>) {
    let mut retention = tokio::time::interval(Duration::from_millis(
        broker.config.log_retention_check_interval_ms,
    ));
    let mut flush = tokio::time::interval(FLUSH_CHECK_INTERVAL);
    retention.tick().await;
    let mut cleaner =
        tokio::time::interval(Duration::from_millis(broker.config.log_cleaner_backoff_ms));
    cleaner.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    cleaner.tick().await;
    // A cleaning pass can take long; it runs beside this loop (one at a time) so flushes
    // and retention keep their schedule.
    let mut cleaning: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = cleaner.tick(), if broker.config.log_cleaner_enable => {
                if cleaning.as_ref().is_none_or(|c| c.is_finished()) {
                    let b = broker.clone();
                    cleaning = Some(tokio::task::spawn_blocking(move || {
                        let started = Instant::now();
                        let stats = b.logs.clean_compacted(crate::log::now_ms());
                        b.metrics.record_log_cleaning(&stats, started.elapsed());
                        if stats.partitions_cleaned > 0 {
                            tracing::info!(
                                partitions = stats.partitions_cleaned,
                                bytes_before = stats.bytes_read,
                                bytes_after = stats.bytes_written,
                                records_removed = stats.records_removed,
                                "log cleaner compacted partitions"
                            );
                        }
                    }));
                }
            }
            _ = retention.tick() => {
                let b = broker.clone();
                match tokio::task::spawn_blocking(move || b.logs.apply_retention()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(segments = n, "retention deleted segments"),
                    Err(e) => tracing::error!(error = %e, "retention task panicked"),
                }
            }
            _ = flush.tick() => {
                let b = broker.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || b.logs.flush_due()).await {
                    tracing::error!(error = %e, "flush task panicked");
                }
            }
        }
    }
}
