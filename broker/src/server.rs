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
use crate::log::LogManager;
use crate::metadata::{journal, BrokerEndpoint};
use crate::metrics::Metrics;
use crate::net::listener;
use crate::net::outbound::{InterBrokerConnector, PeerAcls, QuorumTransport};
use crate::net::tls::{TlsClient, TlsListener};
use crate::quorum::{self, membership::Membership, Metadata, MetadataQuorum};
use crate::quota::ClientQuotas;

/// Kafka's per-log-dir identity file.
const META_PROPERTIES: &str = "meta.properties";
/// Where the metadata journal lives, under the first log dir (Kafka's KRaft name).
const METADATA_DIR: &str = "__cluster_metadata-0";
/// How long shutdown waits for in-flight requests before closing the logs anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the flush policy's time limit (flush.ms) is checked.
/// How often an offline log directory is probed for writes working again.
const LOG_DIR_PROBE_INTERVAL: Duration = Duration::from_secs(2);
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Reads `meta.properties` from every log dir that has one: they must agree on the
/// cluster id and belong to this node. Returns the cluster id, if any dir is formatted.
fn read_meta_properties(config: &BrokerConfig) -> anyhow::Result<Option<String>> {
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
    Ok(cluster_id)
}

/// What `format_with_bootstrap` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    /// Log dirs that got their `meta.properties` now.
    pub dirs: usize,
    /// Whether the bootstrap records were written; false when there were none or when the
    /// metadata dir was formatted before (see `metadata::bootstrap`).
    pub bootstrap_written: bool,
}

/// `strom-broker format`: `format_log_dirs`, and the bootstrap records for the metadata
/// log of a new cluster (`--add-scram`). They are written only into a metadata dir that
/// is formatted now, and before its `meta.properties`, so a format interrupted in between
/// is simply run again.
pub fn format_with_bootstrap(
    config: &BrokerConfig,
    cluster_id: &str,
    bootstrap: &[crate::metadata::MetadataRecord],
) -> anyhow::Result<Formatted> {
    if let Some(existing) = read_meta_properties(config)? {
        if existing != cluster_id {
            bail!("log dirs are already formatted for cluster {existing}, not {cluster_id}");
        }
    }
    let metadata_log_dir = &config.log_dirs[0];
    let fresh = !metadata_log_dir.join(META_PROPERTIES).exists();
    let bootstrap_written = fresh && !bootstrap.is_empty();
    if bootstrap_written {
        let dir = metadata_log_dir.join(METADATA_DIR);
        crate::metadata::bootstrap::write(&dir, bootstrap).with_context(|| {
            format!("cannot write the bootstrap records into {}", dir.display())
        })?;
    }
    let dirs = format_log_dirs(config, cluster_id)?;
    Ok(Formatted {
        dirs,
        bootstrap_written,
    })
}

/// Writes `meta.properties` into every log dir that lacks one (Kafka's
/// `kafka-storage.sh format`). Fails if a dir is formatted for another cluster or node.
pub fn format_log_dirs(config: &BrokerConfig, cluster_id: &str) -> anyhow::Result<usize> {
    if let Some(existing) = read_meta_properties(config)? {
        if existing != cluster_id {
            bail!("log dirs are already formatted for cluster {existing}, not {cluster_id}");
        }
    }
    let mut written = 0;
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
            written += 1;
        }
    }
    Ok(written)
}

fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let probe = dir.join(".strom-write-probe");
    fs::write(&probe, b"").with_context(|| format!("log dir {} is not writable", dir.display()))?;
    let _ = fs::remove_file(probe);
    Ok(())
}

/// This broker's advertised endpoints, as other brokers and clients will look them up.
fn endpoints(config: &BrokerConfig) -> Vec<BrokerEndpoint> {
    config
        .advertised_listeners
        .iter()
        .map(|l| BrokerEndpoint {
            listener: l.name.clone(),
            host: if l.host.is_empty() || l.host == "0.0.0.0" {
                "localhost".to_string()
            } else {
                l.host.clone()
            },
            port: l.port,
        })
        .collect()
}

/// Waits for the quorum to settle the cluster id (a fresh voter learns it from its
/// peers), then checks it against `meta.properties` and records it there.
async fn settle_cluster_id(
    config: &BrokerConfig,
    quorum: &MetadataQuorum,
    formatted: Option<String>,
) -> anyhow::Result<String> {
    let mut logged = false;
    let id = loop {
        if let Some(id) = quorum.cluster_id() {
            break id;
        }
        if !logged {
            tracing::info!("waiting for the controller quorum to form and agree on a cluster id");
            logged = true;
        }
        tokio::select! {
            e = quorum.fatal() => bail!("cannot join the metadata quorum: {e}"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    };
    if let Some(formatted) = formatted {
        if formatted != id {
            bail!("this node's log dirs belong to cluster {formatted}, but the quorum is cluster {id}; refusing to join");
        }
    }
    format_log_dirs(config, &id)?;
    Ok(id)
}

/// Brings a single-node data dir from before the raft quorum (a `metadata.journal` of
/// record batches) into the quorum's log once, so upgrading keeps every topic.
async fn import_single_node_journal(
    config: &BrokerConfig,
    quorum: &MetadataQuorum,
) -> anyhow::Result<()> {
    let dir = config.log_dirs[0].join(METADATA_DIR);
    if !dir.join(journal::FILE).exists() || config.cluster.voters.len() != 1 {
        return Ok(());
    }
    let (_, replay) =
        journal::Journal::open(&dir).context("cannot read the old metadata journal")?;
    let records: Vec<_> = replay.batches.into_iter().flatten().collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !quorum.is_leader() {
        if Instant::now() > deadline {
            bail!("the single-node quorum did not elect itself; cannot import the old journal");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if quorum.state().topics.is_empty() && !records.is_empty() {
        let count = records.len();
        quorum
            .propose(records)
            .await
            .context("cannot import the old metadata journal")?;
        tracing::info!(
            records = count,
            "imported the single-node metadata journal into the quorum"
        );
    }
    fs::rename(
        dir.join(journal::FILE),
        dir.join(format!("{}.imported", journal::FILE)),
    )
    .context("cannot set the imported metadata journal aside")?;
    Ok(())
}

/// The TLS configuration of every SSL and SASL_SSL listener, by listener name.
fn tls_listeners(
    config: &BrokerConfig,
) -> anyhow::Result<std::collections::BTreeMap<String, Arc<TlsListener>>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, security) in &config.security {
        if let Some(settings) = &security.tls {
            let tls = TlsListener::new(name, settings)
                .with_context(|| format!("listener {name}: cannot set up TLS"))?;
            out.insert(name.clone(), Arc::new(tls));
        }
    }
    Ok(out)
}

/// The quorum's transport when the controller listener uses TLS: this node's TLS client
/// for connecting to voters, the listener's server side when it is a voter, and the peer
/// check when an authorizer is configured. Also returns the client (to watch its files)
/// and the peer check (to attach to the quorum once it runs).
#[allow(clippy::type_complexity)]
fn quorum_transport(
    config: &BrokerConfig,
    tls: &std::collections::BTreeMap<String, Arc<TlsListener>>,
) -> anyhow::Result<(
    Option<Arc<dyn strom_raft::Transport>>,
    Option<Arc<TlsClient>>,
    Option<Arc<PeerAcls>>,
)> {
    let client = match config
        .controller_client
        .as_ref()
        .and_then(|c| c.tls.as_ref().map(|t| (&c.listener, t)))
    {
        Some((name, settings)) => Some(Arc::new(TlsClient::new(name, settings).with_context(
            || format!("controller listener {name}: cannot set up this node's TLS client"),
        )?)),
        None => None,
    };
    let server = config
        .controller_listener
        .as_ref()
        .and_then(|l| tls.get(&l.name).cloned());
    let acls = config
        .authorizer
        .clone()
        .filter(|_| server.is_some())
        .map(|a| Arc::new(PeerAcls::new(a)));
    let transport = QuorumTransport::new(client.clone(), server, acls.clone())
        .map(|t| Arc::new(t) as Arc<dyn strom_raft::Transport>);
    Ok((transport, client, acls))
}

/// A started broker: everything serving, and what shutting it down needs.
pub struct Running {
    pub broker: Arc<Broker>,
    pub addresses: Vec<String>,
    quorum: Arc<MetadataQuorum>,
    tracker: TaskTracker,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    admin: Option<tokio::task::JoinHandle<()>>,
}

/// Opens storage, joins the cluster and starts serving. Returns once the broker is
/// registered and its partitions are open.
pub async fn start(config: BrokerConfig, serve_network: bool) -> anyhow::Result<Running> {
    let started = Instant::now();
    for dir in &config.log_dirs {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log dir {}", dir.display()))?;
        check_writable(dir)?;
    }
    let formatted = read_meta_properties(&config)?;
    // Certificates are checked before anything else starts: a bad one stops start-up.
    let tls = tls_listeners(&config)?;
    let inter_broker = Arc::new(
        InterBrokerConnector::new(config.inter_broker_client.as_ref())
            .context("inter-broker listener: cannot set up this broker's TLS client")?,
    );
    let (quorum_transport, quorum_tls_client, peer_acls) = quorum_transport(&config, &tls)?;
    // Made before the quorum: the controller charges KIP-599's controller mutations to
    // the same quota managers the broker measures its clients with.
    let metrics = Metrics::new();
    let client_quotas = Arc::new(ClientQuotas::new(&metrics));
    let (quorum, _controller) = quorum::start(
        &config,
        &config.log_dirs[0].join(METADATA_DIR),
        formatted.clone(),
        quorum_transport,
        client_quotas.clone(),
    )
    .await
    .context("cannot start the metadata quorum")?;
    if let Some(acls) = &peer_acls {
        acls.attach(&quorum);
    }
    let cluster_id = settle_cluster_id(&config, &quorum, formatted).await?;
    import_single_node_journal(&config, &quorum).await?;
    let metadata = Metadata::new(quorum.clone());

    // Bound before registering: once registered, other brokers may fetch from us.
    let mut bound = Vec::new();
    let mut admin_socket = None;
    if serve_network {
        for l in &config.listeners {
            bound.extend(listener::bind(l, tls.get(&l.name).cloned()).await?);
        }
        admin_socket = Some(
            tokio::net::TcpListener::bind(config.admin_listener)
                .await
                .with_context(|| format!("cannot bind admin.listener {}", config.admin_listener))?,
        );
    }

    let membership = Membership::new(&config, endpoints(&config));
    // A node the quorum refuses (another cluster's id) would wait here for ever.
    tokio::select! {
        () = membership.register(&metadata) => {}
        e = quorum.fatal() => bail!("cannot join the metadata quorum: {e}"),
    }
    // The image is now at least as new as our registration: it says which partitions
    // live here, so stray directories can be told from real ones.
    let node = config.node_id;
    let mut images = metadata.subscribe();
    let _ = images.wait_for(|i| i.broker(node).is_some()).await;
    let logs = LogManager::open(&config).context("cannot open log dirs")?;
    let image = metadata.image();
    // Recovery reads files; keep it off the async workers.
    let logs = tokio::task::spawn_blocking(move || logs.sync(&image, node, true).map(|()| logs))
        .await
        .context("log recovery panicked")?
        .context("cannot open partition logs")?;

    let (shutdown_tx, shutdown_rx) = watch::channel(!serve_network);
    let broker = Arc::new(Broker::new(
        config.clone(),
        cluster_id.clone(),
        metadata,
        membership,
        logs,
        inter_broker.clone(),
        shutdown_rx,
        metrics,
        client_quotas,
    ));

    let mut tasks = vec![
        tokio::spawn(follow_metadata(broker.clone())),
        tokio::spawn({
            let b = broker.clone();
            async move { b.membership.run_heartbeats(b.metadata.clone()).await }
        }),
        tokio::spawn(crate::replication::manager::run_isr_checks(broker.clone())),
        tokio::spawn({
            let b = broker.clone();
            async move {
                let timeout = Duration::from_millis(b.config.cluster.quorum_request_timeout_ms);
                b.auto_creator
                    .run(b.metadata.clone(), b.defaults(), timeout)
                    .await
            }
        }),
        tokio::spawn(background_work(broker.clone())),
        tokio::spawn(group_work(broker.clone())),
        tokio::spawn(follow_ip_quota_hosts(broker.clone())),
    ];
    let tracker = TaskTracker::new();
    // One connection budget for all listeners (`max.connections` counts them together).
    let quotas = crate::net::quotas::for_config(&broker.config);
    let mut addresses = Vec::new();
    for b in bound {
        if let Ok(addr) = b.socket.local_addr() {
            addresses.push(format!("{}://{addr}", b.name));
        }
        tasks.push(tokio::spawn(listener::accept_loop(
            broker.clone(),
            b,
            tracker.clone(),
            quotas.clone(),
        )));
    }
    for t in tls.into_values() {
        tasks.push(tokio::spawn(t.watch(broker.shutdown_signal())));
    }
    for t in inter_broker
        .tls()
        .cloned()
        .into_iter()
        .chain(quorum_tls_client)
    {
        tasks.push(tokio::spawn(t.watch(broker.shutdown_signal())));
    }
    let admin = admin_socket.map(|s| tokio::spawn(admin_http::serve(broker.clone(), s)));

    broker.set_ready(true);
    tracing::info!(
        node_id = config.node_id,
        %cluster_id,
        listeners = ?addresses,
        admin = %config.admin_listener,
        voters = config.cluster.voters.len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "strom-broker serving"
    );
    Ok(Running {
        broker,
        addresses,
        quorum,
        tracker,
        shutdown_tx,
        tasks,
        admin,
    })
}

/// Runs the broker until `stop` completes, then shuts down gracefully.
pub async fn run(config: BrokerConfig, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(config, true).await?;
    let fatal = running.quorum.clone();
    tokio::select! {
        () = stop => {}
        e = fatal.fatal() => {
            tracing::error!(error = %e, "leaving: the metadata quorum failed");
        }
    }
    running.shutdown().await
}

impl Running {
    /// Kafka's controlled shutdown, then a graceful stop: leaderships move away first (so
    /// producers see no errors), then in-flight requests finish, then the logs close.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let broker = self.broker;
        tracing::info!("shutting down: moving leaderships away");
        broker.set_ready(false);
        // With a reachable controller this takes milliseconds. Without one (the whole
        // cluster stopping), waiting longer than a session is pointless: the controller
        // that comes back fences this broker after that long anyway.
        let limit = Duration::from_millis(broker.config.cluster.broker_session_timeout_ms);
        if broker.membership.controlled_shutdown(limit).await {
            let me = broker.node_id();
            let moved = broker
                .await_image(|i| i.partitions().all(|(_, p)| p.leader != me))
                .await;
            if !moved {
                tracing::warn!(
                    "controlled shutdown finished but this broker's image still shows it leading"
                );
            }
        } else {
            tracing::warn!("controlled shutdown did not finish in time; stopping anyway");
        }
        tracing::info!("no new connections, finishing in-flight requests");
        let _ = self.shutdown_tx.send(true);
        broker.replicas.stop_fetchers();
        broker.groups.resign();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish in time; closing the logs anyway");
        }
        for t in self.tasks {
            t.abort();
        }
        if let Some(admin) = self.admin {
            let _ = admin.await;
        }
        self.quorum.shutdown().await;
        let closing = broker.clone();
        tokio::task::spawn_blocking(move || closing.logs.close())
            .await
            .context("closing logs panicked")?
            .context("flushing logs on shutdown failed")?;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Applies every new metadata image: partition logs, leader and follower roles, fetchers,
/// group coordination.
async fn follow_metadata(broker: Arc<Broker>) {
    let mut images = broker.metadata.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        broker.acls.follow(&image);
        let b = broker.clone();
        if let Err(e) =
            tokio::task::spawn_blocking(move || b.replicas.apply_image(&b, &image)).await
        {
            tracing::error!(error = %e, "applying metadata panicked");
        }
        if images.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves the host names of IP quota entities again whenever the quotas change (Kafka
/// resolves them when it applies a quota), so accepting a connection never waits on DNS.
async fn follow_ip_quota_hosts(broker: Arc<Broker>) {
    let mut images = broker.metadata.subscribe();
    let mut applied = None;
    loop {
        let quotas = images.borrow_and_update().client_quotas.clone();
        if applied.as_ref() != Some(&quotas) {
            let rates = &broker.client_quotas.connection_creation;
            rates.resolve_host_names(&quotas).await;
            applied = Some(quotas);
        }
        if images.changed().await.is_err() {
            return;
        }
    }
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
    let mut probe = tokio::time::interval(LOG_DIR_PROBE_INTERVAL);
    retention.tick().await;
    let cleaner_backoff = |broker: &Broker| {
        let image = broker.metadata.image();
        crate::config::dynamic::DynamicLayer::of(&image, broker.node_id()).long(
            "log.cleaner.backoff.ms",
            broker.config.log_cleaner_backoff_ms as i64,
        )
    };
    let mut backoff_ms = cleaner_backoff(&broker);
    let mut cleaner = tokio::time::interval(Duration::from_millis(backoff_ms.max(1) as u64));
    cleaner.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    cleaner.tick().await;
    // A cleaning pass can take long; it runs beside this loop (one at a time) so flushes
    // and retention keep their schedule.
    let mut cleaning: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = cleaner.tick(), if broker.config.log_cleaner_enable => {
                // log.cleaner.backoff.ms is a dynamic broker config: a new value takes
                // effect from the next pass.
                let now_ms = cleaner_backoff(&broker);
                if now_ms != backoff_ms {
                    tracing::info!(old = backoff_ms, new = now_ms, "log cleaner backoff changed");
                    backoff_ms = now_ms;
                    cleaner = tokio::time::interval(Duration::from_millis(backoff_ms.max(1) as u64));
                    cleaner.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    cleaner.tick().await;
                }
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
                // Replicas on failed log directories go to the controller with the next
                // heartbeat, which moves their leaderships away.
                let offline = if broker.logs.offline_dir_count() > 0 {
                    broker.logs.offline_partitions()
                } else {
                    Vec::new()
                };
                broker.membership.report_offline_replicas(offline);
            }
            _ = probe.tick(), if broker.logs.offline_dir_count() > 0 => {
                let b = broker.clone();
                let restored = tokio::task::spawn_blocking(move || {
                    let restored = b.logs.restore_offline_dirs();
                    if restored > 0 {
                        // Partitions that could not even be created get created now, and
                        // every role is applied to the reopened logs.
                        b.replicas.apply_image(&b, &b.metadata.image());
                    }
                    restored
                })
                .await;
                if let Err(e) = restored {
                    tracing::error!(error = %e, "log directory probe panicked");
                }
            }
        }
    }
}
