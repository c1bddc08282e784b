//! A cluster of real `strom-broker` processes: start, kill -9, SIGTERM, restart, isolate,
//! and the Kafka-side views (metadata, watermarks, controller) scenarios act on.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use strom_client::admin::{Admin, AdminError, Refused};
use strom_client::admin_cluster::{
    CoordinatorType, Reassignment, ReassignmentTarget, TopicPartition,
};
use strom_client::admin_log_dirs::LogDirDescription;
use strom_client::ClientError;

use crate::admin_http;
use crate::binary::broker_binary;
use crate::error::{HarnessError, Result};
use crate::netns::Topology;
use crate::process::{tail, BrokerProcess, Launch};
use crate::props::{render_with, BrokerAddress};
use crate::slots::SlotGuard;
use crate::wait::{wait_until, wait_until_every};
use crate::wire::WireClient;

/// Set to 1 to keep data dirs and logs after the test (their path is printed).
pub const KEEP_ENV: &str = "STROM_E2E_KEEP";

const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
const ADMIN_CLIENT_ID: &str = "strom-e2e-cluster";
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// Longer than a broker's own controlled-shutdown timeout, so a broker that gives up on
/// moving leaderships still gets to exit on its own.
const SIGTERM_DEADLINE: Duration = Duration::from_secs(45);
/// How long admin operations retry retriable errors (elections, NOT_CONTROLLER).
const ADMIN_DEADLINE: Duration = Duration::from_secs(30);
const ADMIN_RETRY: Duration = Duration::from_millis(250);
const LOG_TAIL_LINES: usize = 80;

/// A partition as one broker's own metadata shows it: leader, leader epoch, replicas, ISR.
pub use strom_client::admin_cluster::PartitionInfo as PartitionView;

/// Where the brokers live on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// All on 127.0.0.1 with free ports.
    Loopback,
    /// One network namespace per broker (see [`crate::netns`]); enables `isolate`/`heal`.
    Namespaces,
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub network: Network,
    /// Extra or overriding broker properties, applied to every broker.
    pub properties: Vec<(String, String)>,
    /// More log directories for one broker (by index), after its own: a disk-full
    /// scenario puts one on a small file system.
    pub extra_log_dirs: Vec<(usize, PathBuf)>,
    pub ready_timeout: Duration,
    /// Every listener secured (see [`crate::security`]): SASL_SSL clients, mutual TLS
    /// for replication and the controller quorum, an authorizer with super users.
    pub secured: bool,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            network: Network::Loopback,
            properties: Vec::new(),
            extra_log_dirs: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            secured: false,
        }
    }
}

impl ClusterOptions {
    pub fn namespaces() -> ClusterOptions {
        ClusterOptions {
            network: Network::Namespaces,
            ..ClusterOptions::default()
        }
    }

    /// The same options with every listener secured.
    pub fn secured(mut self) -> ClusterOptions {
        self.secured = true;
        self
    }

    pub fn with_property(mut self, key: &str, value: &str) -> ClusterOptions {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Gives broker `i` another log directory, listed after its own (which keeps the
    /// metadata log, so only partitions fail with the extra one).
    pub fn with_extra_log_dir(mut self, i: usize, dir: &Path) -> ClusterOptions {
        self.extra_log_dirs.push((i, dir.to_path_buf()));
        self
    }
}

/// A partition as rdkafka's metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// `None` while the partition has no leader.
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

struct Node {
    address: BrokerAddress,
    log_dir: PathBuf,
    extra_log_dirs: Vec<PathBuf>,
    log_path: PathBuf,
    launch: Launch,
    process: Option<BrokerProcess>,
    starts: u32,
}

pub struct Cluster {
    nodes: Vec<Node>,
    root: Option<tempfile::TempDir>,
    ready_timeout: Duration,
    metadata: BaseConsumer,
    runtime: tokio::runtime::Runtime,
    // Dropped after the processes (killed in Drop::drop), before the slot.
    topology: Option<Topology>,
    /// The client addresses registered with `security` (secured mode), removed on drop.
    secured_addrs: Option<Vec<SocketAddr>>,
    _slot: SlotGuard,
}

/// `count` distinct free loopback ports: all stay bound until every one is chosen, so
/// the kernel cannot hand the same port out twice.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| HarnessError::io("bind 127.0.0.1:0 for a free port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| HarnessError::io("read a bound port", e))
}

/// Another process may take a chosen port before the broker binds it; a start that
/// failed that way is retried with new ports this many times in all.
const START_ATTEMPTS: usize = 3;

impl Cluster {
    /// Starts `n` brokers (node ids `0..n`) and waits until every one answers `/ready`.
    pub fn start(n: usize, options: ClusterOptions) -> Result<Cluster> {
        let mut attempt = 1;
        loop {
            match Cluster::start_once(n, &options) {
                Err(HarnessError::StartFailed { detail, logs })
                    if attempt < START_ATTEMPTS
                        && options.network == Network::Loopback
                        && logs.contains("Address already in use") =>
                {
                    eprintln!("cluster start lost a port race ({detail}); retrying with new ports");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(n: usize, options: &ClusterOptions) -> Result<Cluster> {
        let slot = SlotGuard::acquire();
        let binary = broker_binary()?;
        let topology = match options.network {
            Network::Loopback => None,
            Network::Namespaces => Some(Topology::create(n)?),
        };
        let root = tempfile::Builder::new()
            .prefix("strom-e2e-cluster-")
            .tempdir()
            .map_err(|e| HarnessError::io("create cluster temp dir", e))?;

        let ports = match &topology {
            None => free_ports(4 * n)?,
            Some(_) => Vec::new(),
        };
        let mut addresses = Vec::with_capacity(n);
        for i in 0..n {
            addresses.push(match &topology {
                None => BrokerAddress {
                    node_id: i as i32,
                    host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    kafka_port: ports[4 * i],
                    controller_port: ports[4 * i + 1],
                    admin_port: ports[4 * i + 2],
                    replication_port: ports[4 * i + 3],
                },
                Some(t) => BrokerAddress {
                    node_id: i as i32,
                    host: IpAddr::V4(t.broker_ip(i)),
                    kafka_port: 9092,
                    controller_port: 9093,
                    admin_port: 9644,
                    replication_port: 9094,
                },
            });
        }

        // The secured mode's certificates name every broker's address.
        let secure_files = if options.secured {
            let hosts: Vec<IpAddr> = addresses.iter().map(|a| a.host).collect();
            Some(crate::security::make_files(root.path(), &hosts)?)
        } else {
            None
        };
        let mut nodes = Vec::with_capacity(n);
        for (i, address) in addresses.iter().enumerate() {
            let log_dir = root.path().join(format!("broker-{i}"));
            let props_path = root.path().join(format!("broker-{i}.properties"));
            let log_path = root.path().join(format!("broker-{i}.log"));
            let extra_log_dirs: Vec<PathBuf> = options
                .extra_log_dirs
                .iter()
                .filter(|(broker, _)| *broker == i)
                .map(|(_, dir)| dir.clone())
                .collect();
            let mut properties = match &secure_files {
                Some(files) => crate::security::broker_properties(files),
                None => Vec::new(),
            };
            properties.extend(options.properties.iter().cloned());
            if !extra_log_dirs.is_empty() {
                let all: Vec<String> = std::iter::once(&log_dir)
                    .chain(&extra_log_dirs)
                    .map(|d| d.display().to_string())
                    .collect();
                properties.push(("log.dirs".into(), all.join(",")));
            }
            let text = render_with(
                address,
                &addresses,
                &log_dir,
                &properties,
                secure_files.is_some(),
            );
            std::fs::write(&props_path, text)
                .map_err(|e| HarnessError::io(format!("write {}", props_path.display()), e))?;
            let launch = match &topology {
                None => Launch {
                    program: binary.clone(),
                    args: vec![props_path.into_os_string()],
                    log_path: log_path.clone(),
                },
                Some(t) => Launch {
                    program: PathBuf::from("ip"),
                    args: vec![
                        "netns".into(),
                        "exec".into(),
                        t.namespace(i).into(),
                        binary.clone().into_os_string(),
                        props_path.into_os_string(),
                    ],
                    log_path: log_path.clone(),
                },
            };
            nodes.push(Node {
                address: address.clone(),
                log_dir,
                extra_log_dirs,
                log_path,
                launch,
                process: None,
                starts: 0,
            });
        }

        let secured_addrs = match &secure_files {
            Some(files) => {
                let addrs: Vec<SocketAddr> = addresses.iter().map(|a| a.kafka()).collect();
                crate::security::register(
                    addrs.clone(),
                    crate::security::ClientSecurity::new(files)?,
                );
                Some(addrs)
            }
            None => None,
        };
        let bootstrap = bootstrap_of(&addresses);
        let metadata: BaseConsumer = crate::security::client_config(&bootstrap)
            .set("group.id", "strom-e2e-metadata")
            .set("enable.auto.commit", "false")
            .create()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HarnessError::io("tokio runtime", e))?;
        let mut cluster = Cluster {
            nodes,
            root: Some(root),
            ready_timeout: options.ready_timeout,
            metadata,
            runtime,
            topology,
            secured_addrs,
            _slot: slot,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            if let Err(e) = cluster.wait_ready(i) {
                return Err(HarnessError::StartFailed {
                    detail: e.to_string(),
                    logs: cluster.log_tails(),
                });
            }
        }
        Ok(cluster)
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    fn node(&self, i: usize) -> Result<&Node> {
        self.nodes
            .get(i)
            .ok_or(HarnessError::NoSuchBroker(i as i64))
    }

    fn node_mut(&mut self, i: usize) -> Result<&mut Node> {
        self.nodes
            .get_mut(i)
            .ok_or(HarnessError::NoSuchBroker(i as i64))
    }

    /// The broker index for a Kafka node id (they are equal; this checks the range).
    pub fn index_of(&self, node_id: i32) -> Result<usize> {
        usize::try_from(node_id)
            .ok()
            .filter(|&i| i < self.nodes.len())
            .ok_or(HarnessError::NoSuchBroker(i64::from(node_id)))
    }

    /// `host:port` of every broker, comma separated.
    pub fn bootstrap(&self) -> String {
        let addresses: Vec<BrokerAddress> = self.nodes.iter().map(|n| n.address.clone()).collect();
        bootstrap_of(&addresses)
    }

    pub fn kafka_addr(&self, i: usize) -> Result<SocketAddr> {
        Ok(self.node(i)?.address.kafka())
    }

    pub fn admin_addr(&self, i: usize) -> Result<SocketAddr> {
        Ok(self.node(i)?.address.admin())
    }

    /// The broker's `log.dirs`.
    pub fn log_dir(&self, i: usize) -> Result<&Path> {
        Ok(&self.node(i)?.log_dir)
    }

    /// Where broker `i` keeps `topic-partition`: in whichever of its log directories
    /// holds it (its first one if none does yet).
    pub fn partition_dir(&self, i: usize, topic: &str, partition: i32) -> Result<PathBuf> {
        let node = self.node(i)?;
        let name = format!("{topic}-{partition}");
        Ok(std::iter::once(&node.log_dir)
            .chain(&node.extra_log_dirs)
            .map(|d| d.join(&name))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| node.log_dir.join(&name)))
    }

    /// The OS pid of broker `i` while it runs (in namespaces: of the broker itself, since
    /// `ip netns exec` execs it).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i)?.process.as_ref().map(BrokerProcess::pid)
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes.get_mut(i).and_then(|n| n.process.as_mut()) {
            Some(p) => p.try_exit_status().is_none(),
            None => false,
        }
    }

    pub fn running(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .collect()
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let node = self.node_mut(i)?;
        if node.process.is_some() {
            return Err(HarnessError::StillRunning(i));
        }
        node.starts += 1;
        let label = format!("broker {i} (start #{})", node.starts);
        node.process = Some(BrokerProcess::spawn(&node.launch, &label)?);
        Ok(())
    }

    /// Starts a stopped broker again on the same ports and data; does not wait for
    /// readiness (see [`Cluster::wait_ready`]).
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.is_running(i) {
            return Err(HarnessError::StillRunning(i));
        }
        // A broker that exited on its own still has a reaped handle here.
        self.node_mut(i)?.process = None;
        self.spawn(i)
    }

    /// SIGKILL (the whole process group); returns once the process is gone.
    pub fn kill9(&mut self, i: usize) -> Result<ExitStatus> {
        let process = self
            .node_mut(i)?
            .process
            .take()
            .ok_or(HarnessError::NotRunning(i))?;
        Ok(process.kill9())
    }

    /// SIGTERM and wait for the exit (45 s, then SIGKILL and an error).
    pub fn sigterm(&mut self, i: usize) -> Result<ExitStatus> {
        let process = self
            .node_mut(i)?
            .process
            .take()
            .ok_or(HarnessError::NotRunning(i))?;
        process.sigterm(SIGTERM_DEADLINE)
    }

    /// Stops every running broker with SIGTERM, all at once: one after the other, the
    /// last voters would wait out their controlled-shutdown timeout after the controller
    /// quorum is gone. Returns each broker's exit status or error.
    pub fn stop_all(&mut self) -> Vec<(usize, Result<ExitStatus>)> {
        self.stop_all_within(SIGTERM_DEADLINE)
    }

    /// [`Cluster::stop_all`] with its own deadline, after which stragglers are killed
    /// (and reported as errors).
    pub fn stop_all_within(&mut self, deadline: Duration) -> Vec<(usize, Result<ExitStatus>)> {
        let stopping = self.take_running();
        for (_, process) in &stopping {
            process.send_sigterm();
        }
        let started = std::time::Instant::now();
        stopping
            .into_iter()
            .map(|(i, process)| {
                let left = deadline.saturating_sub(started.elapsed());
                (i, process.wait_exit(left))
            })
            .collect()
    }

    /// SIGKILL to every running broker, all signalled before any is reaped (a whole
    /// cluster losing power at once). Returns each broker's exit status.
    pub fn kill9_all(&mut self) -> Vec<(usize, ExitStatus)> {
        let killing = self.take_running();
        for (_, process) in &killing {
            process.send_sigkill();
        }
        killing
            .into_iter()
            .map(|(i, process)| (i, process.kill9()))
            .collect()
    }

    /// Starts every stopped broker on its old ports and data, all spawned before any is
    /// waited for (a whole cluster coming back at once), then waits until each answers
    /// `/ready`. Returns the indexes started.
    pub fn start_all(&mut self) -> Result<Vec<usize>> {
        let stopped: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.is_running(i))
            .collect();
        for &i in &stopped {
            self.restart(i)?;
        }
        for &i in &stopped {
            self.wait_ready(i)?;
        }
        Ok(stopped)
    }

    /// Takes every running broker's process handle out of the cluster.
    fn take_running(&mut self) -> Vec<(usize, BrokerProcess)> {
        let running = self.running();
        running
            .into_iter()
            .filter_map(|i| Some((i, self.nodes.get_mut(i)?.process.take()?)))
            .collect()
    }

    /// `(status, body)` of an admin HTTP GET on broker `i`.
    pub fn admin_get(&self, i: usize, path: &str) -> Result<(u16, String)> {
        admin_http::get(self.admin_addr(i)?, path, HTTP_TIMEOUT)
    }

    /// Broker `i`'s `/metrics` text.
    pub fn metrics(&self, i: usize) -> Result<String> {
        let (status, body) = self.admin_get(i, "/metrics")?;
        if status != 200 {
            return Err(HarnessError::Http {
                url: format!("{}/metrics", self.admin_addr(i)?),
                detail: format!("status {status}"),
            });
        }
        Ok(body)
    }

    /// One metric of broker `i` (summed over labels), `None` if absent.
    pub fn metric(&self, i: usize, name: &str) -> Result<Option<f64>> {
        Ok(admin_http::metric_value(&self.metrics(i)?, name))
    }

    /// Waits for `/ready` to answer 200, failing early if the process exits.
    pub fn wait_ready(&mut self, i: usize) -> Result<()> {
        let timeout = self.ready_timeout;
        let addr = self.admin_addr(i)?;
        wait_until(&format!("broker {i} /ready"), timeout, || {
            if !self.is_running(i) {
                return Ok(Err(HarnessError::NotRunning(i)));
            }
            match admin_http::get(addr, "/ready", HTTP_TIMEOUT) {
                Ok((200, _)) => Ok(Ok(())),
                Ok((status, body)) => Err(format!("{status} {}", body.trim())),
                Err(e) => Err(e.to_string()),
            }
        })?
    }

    /// Waits for broker `i`'s `/restart-safe` to answer 200 `{"safe":true,...}`.
    pub fn wait_restart_safe(&self, i: usize, timeout: Duration) -> Result<String> {
        wait_until(&format!("broker {i} /restart-safe"), timeout, || match self
            .admin_get(i, "/restart-safe")
        {
            Ok((200, body)) => {
                let safe = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("safe").and_then(|s| s.as_bool()));
                if safe == Some(true) {
                    Ok(body)
                } else {
                    Err(format!("200 without \"safe\":true: {body}"))
                }
            }
            Ok((status, body)) => Err(format!("{status} {}", body.trim())),
            Err(e) => Err(e.to_string()),
        })
    }

    /// Every partition of `topic` as rdkafka's metadata reports it.
    pub fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>> {
        let metadata = self.metadata.fetch_metadata(Some(topic), CLIENT_TIMEOUT)?;
        let topic_md = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| HarnessError::Protocol(format!("metadata lacks topic {topic}")))?;
        if let Some(e) = topic_md.error() {
            return Err(HarnessError::Protocol(format!("topic {topic}: {e:?}")));
        }
        let mut partitions: Vec<PartitionInfo> = topic_md
            .partitions()
            .iter()
            .map(|p| PartitionInfo {
                partition: p.id(),
                leader: (p.leader() >= 0).then_some(p.leader()),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Ok(partitions)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<PartitionInfo> {
        self.partitions(topic)?
            .into_iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| HarnessError::Protocol(format!("metadata lacks {topic}-{partition}")))
    }

    /// The leader's node id of `topic`-`partition` per rdkafka's metadata.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Result<Option<i32>> {
        Ok(self.partition(topic, partition)?.leader)
    }

    /// Waits until the partition has a leader for which `accept` holds; returns it.
    pub fn wait_leader(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
        accept: impl Fn(i32) -> bool,
    ) -> Result<i32> {
        wait_until(
            &format!("an acceptable leader for {topic}-{partition}"),
            timeout,
            || match self.partition(topic, partition) {
                Ok(p) => match p.leader {
                    Some(l) if accept(l) => Ok(l),
                    _ => Err(format!("{p:?}")),
                },
                Err(e) => Err(e.to_string()),
            },
        )
    }

    /// Waits until every partition of `topic` has a leader and its whole replica set in
    /// sync.
    pub fn wait_full_isr(&self, topic: &str, timeout: Duration) -> Result<Vec<PartitionInfo>> {
        wait_until(
            &format!("full ISR for every partition of {topic}"),
            timeout,
            || {
                let partitions = self.partitions(topic).map_err(|e| e.to_string())?;
                let lacking: Vec<&PartitionInfo> = partitions
                    .iter()
                    .filter(|p| {
                        let mut isr = p.isr.clone();
                        let mut replicas = p.replicas.clone();
                        isr.sort_unstable();
                        replicas.sort_unstable();
                        p.leader.is_none() || isr != replicas
                    })
                    .collect();
                if partitions.is_empty() || !lacking.is_empty() {
                    Err(format!("{lacking:?}"))
                } else {
                    Ok(partitions.clone())
                }
            },
        )
    }

    /// `(low, high)` watermarks from the partition's leader.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64)> {
        Ok(self
            .metadata
            .fetch_watermarks(topic, partition, CLIENT_TIMEOUT)?)
    }

    /// The broker whose `activecontrollercount` metric is 1, if exactly one says so.
    pub fn active_controller(&mut self) -> Result<Option<usize>> {
        let mut active = Vec::new();
        for i in self.running() {
            let value = self
                .metric(i, "kafka_controller_kafkacontroller_activecontrollercount")
                .ok()
                .flatten();
            if value == Some(1.0) {
                active.push(i);
            }
        }
        Ok(match active.as_slice() {
            [one] => Some(*one),
            _ => None,
        })
    }

    /// Creates a topic (see [`create_topic`]), then waits until every partition has a
    /// leader.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        create_topic(
            &self.runtime,
            &self.bootstrap(),
            name,
            partitions,
            replication_factor,
            configs,
        )?;
        wait_until(
            &format!("leaders for all {partitions} partitions of {name}"),
            ADMIN_DEADLINE,
            || {
                let ps = self.partitions(name).map_err(|e| e.to_string())?;
                if ps.len() == partitions as usize && ps.iter().all(|p| p.leader.is_some()) {
                    Ok(())
                } else {
                    Err(format!("{ps:?}"))
                }
            },
        )
    }

    /// A raw protocol connection to broker `i`, for requests that are protocol-level test
    /// tools rather than admin calls ([`crate::wire::produce_direct`]).
    pub fn wire(&self, i: usize) -> Result<WireClient> {
        WireClient::connect(self.kafka_addr(i)?, CLIENT_TIMEOUT)
    }

    /// Runs `call` once on strom-client's admin connected to broker `i` (secured as the
    /// cluster is); no retries.
    pub fn admin_on<T>(
        &self,
        i: usize,
        what: &str,
        call: impl AsyncFnOnce(&mut Admin) -> std::result::Result<T, AdminError>,
    ) -> Result<T> {
        let addr = self.kafka_addr(i)?;
        self.runtime
            .block_on(async {
                let mut admin = connect_admin(addr).await?;
                call(&mut admin).await
            })
            .map_err(|source| HarnessError::Admin {
                what: what.to_string(),
                broker: i,
                source,
            })
    }

    /// The partition as broker `i` itself sees it (includes the leader epoch); `None` if
    /// that broker does not know the topic or the partition.
    pub fn partition_view_from(
        &self,
        i: usize,
        topic: &str,
        partition: i32,
    ) -> Result<Option<PartitionView>> {
        let view = self.admin_on(i, "Metadata", async |a| {
            a.describe_partitions(Some(&[topic.to_string()])).await
        })?;
        Ok(view
            .topics
            .get(topic)
            .and_then(|t| t.as_ref().ok())
            .and_then(|ps| ps.iter().find(|p| p.partition == partition))
            .cloned())
    }

    /// Every log directory of broker `i` by path (DescribeLogDirs, every partition); an
    /// offline one is refused with KAFKA_STORAGE_ERROR.
    pub fn describe_log_dirs(
        &self,
        i: usize,
    ) -> Result<BTreeMap<String, strom_client::admin::Outcome<LogDirDescription>>> {
        self.admin_on(i, "DescribeLogDirs", async |a| a.describe_log_dirs().await)
    }

    /// Runs an admin `request` through strom-client against the broker the metadata
    /// names as controller (in KRaft any broker forwards controller requests; asking the
    /// named one also suits a broker that does not), retrying connection failures and
    /// retriable Kafka errors (NOT_CONTROLLER, COORDINATOR_NOT_AVAILABLE, ...) for 30 s.
    /// Non-retriable Kafka refusals are returned as errors.
    pub fn admin_request<T>(
        &mut self,
        what: &str,
        mut request: impl AsyncFnMut(&mut Admin) -> std::result::Result<T, AdminError>,
    ) -> Result<T> {
        let running = self.running();
        let mut turn = 0usize;
        wait_until_every(what, ADMIN_DEADLINE, ADMIN_RETRY, || {
            if running.is_empty() {
                return Ok(Err(HarnessError::Protocol("no broker is running".into())));
            }
            let asked = running[turn % running.len()];
            turn += 1;
            let controller = self
                .admin_on(asked, "Metadata", async |a| {
                    Ok(a.describe_partitions(Some(&[])).await?.controller)
                })
                .map_err(|e| e.to_string())?;
            let target = controller
                .and_then(|c| self.index_of(c).ok())
                .filter(|c| running.contains(c))
                .unwrap_or(asked);
            let addr = self.kafka_addr(target).map_err(|e| e.to_string())?;
            let answer = self.runtime.block_on(async {
                let mut admin = connect_admin(addr).await?;
                request(&mut admin).await
            });
            match answer {
                Ok(v) => Ok(Ok(v)),
                Err(e) if is_final(&e) => Ok(Err(HarnessError::Admin {
                    what: what.to_string(),
                    broker: target,
                    source: e,
                })),
                Err(e) => Err(format!("broker {target}: {e}")),
            }
        })?
    }

    /// Starts (`Some`) or cancels (`None`) a partition reassignment.
    pub fn alter_partition_reassignment(
        &mut self,
        topic: &str,
        partition: i32,
        replicas: Option<&[i32]>,
    ) -> Result<()> {
        let tp = (topic.to_string(), partition);
        let target = match replicas {
            Some(r) => ReassignmentTarget::Replicas(r.to_vec()),
            None => ReassignmentTarget::Cancel,
        };
        let targets = BTreeMap::from([(tp.clone(), target)]);
        self.admin_request("AlterPartitionReassignments", async |a| {
            let mut answers = a.alter_reassignments(&targets).await?;
            match answers.remove(&tp) {
                Some(outcome) => Ok(outcome?),
                None => Err(AdminError::Refused(Refused {
                    api: "AlterPartitionReassignments",
                    resource: format!("{topic}-{partition}"),
                    code: ResponseError::UnknownServerError.code(),
                    message: Some("the answer leaves the partition out".into()),
                })),
            }
        })
    }

    /// Every reassignment under way, by partition.
    pub fn list_partition_reassignments(
        &mut self,
    ) -> Result<BTreeMap<TopicPartition, Reassignment>> {
        self.admin_request("ListPartitionReassignments", async |a| {
            a.list_reassignments(None).await
        })
    }

    /// The coordinator's node id for `group` (FindCoordinator, retried while the group's
    /// partition has no leader).
    pub fn group_coordinator(&mut self, group: &str) -> Result<i32> {
        self.admin_request("FindCoordinator", async |a| {
            Ok(a.find_coordinator(CoordinatorType::Group, group).await?.id)
        })
    }

    /// Cuts broker `i` off from the other brokers (namespaced clusters only).
    pub fn isolate(&self, i: usize) -> Result<()> {
        self.node(i)?;
        self.topology
            .as_ref()
            .ok_or(HarnessError::NotNamespaced)?
            .isolate(i)
    }

    pub fn heal(&self, i: usize) -> Result<()> {
        self.node(i)?;
        self.topology
            .as_ref()
            .ok_or(HarnessError::NotNamespaced)?
            .heal(i)
    }

    pub fn topology(&self) -> Option<&Topology> {
        self.topology.as_ref()
    }

    /// The last lines of broker `i`'s log (all its runs).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        self.nodes
            .get(i)
            .map(|n| tail(&n.log_path, lines))
            .unwrap_or_default()
    }

    /// The tail of every broker's log, headed by the broker's index.
    pub fn log_tails(&self) -> String {
        let mut text = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            text.push_str(&format!(
                "----- broker {i} ({}), last {LOG_TAIL_LINES} lines of {} -----\n{}\n",
                node.address.kafka(),
                node.log_path.display(),
                tail(&node.log_path, LOG_TAIL_LINES)
            ));
        }
        text
    }

    /// High watermarks of partitions `0..partitions`.
    pub fn high_watermarks(&self, topic: &str, partitions: i32) -> Result<BTreeMap<i32, i64>> {
        (0..partitions)
            .map(|p| Ok((p, self.watermarks(topic, p)?.1)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== broker logs (test failed) =====\n{}",
                self.log_tails()
            );
        }
        for node in &mut self.nodes {
            drop(node.process.take());
        }
        if let Some(t) = self.topology.as_mut() {
            t.teardown();
        }
        if let Some(addrs) = self.secured_addrs.take() {
            crate::security::unregister(&addrs);
        }
        let keep = std::env::var(KEEP_ENV).is_ok_and(|v| v == "1");
        if let Some(root) = self.root.take() {
            if keep {
                eprintln!(
                    "{KEEP_ENV}=1: cluster files kept in {}",
                    root.keep().display()
                );
            }
        }
    }
}

fn bootstrap_of(addresses: &[BrokerAddress]) -> String {
    addresses
        .iter()
        .map(|a| a.kafka().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// strom-client's admin on `addr`, secured as its cluster is; connect and call timeouts
/// as the harness's other clients.
async fn connect_admin(addr: SocketAddr) -> std::result::Result<Admin, AdminError> {
    let security = crate::security::admin_security(addr);
    Admin::connect_with(
        &[addr.to_string()],
        &security,
        ADMIN_CLIENT_ID,
        CLIENT_TIMEOUT,
        CLIENT_TIMEOUT,
    )
    .await
}

/// A Kafka refusal that retrying will not change, or a request or answer this client
/// cannot encode or read (retrying cannot make a broker grow an API). Everything else
/// (unreachable, timed out, connection closed, a TLS handshake cut by a dying broker) is
/// retried, as are the retriable codes.
fn is_final(e: &AdminError) -> bool {
    if let AdminError::Client(
        ClientError::Encode { .. } | ClientError::Decode { .. } | ClientError::UnknownApi(_),
    ) = e
    {
        return true;
    }
    let refusals = e.refusals();
    !refusals.is_empty() && !refusals.iter().all(|r| is_retriable_code(r.code))
}

fn is_retriable_code(code: i16) -> bool {
    const NOT_COORDINATOR_FAMILY: [i16; 3] = [14, 15, 16];
    code == ResponseError::NotController.code()
        || NOT_COORDINATOR_FAMILY.contains(&code)
        || ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// Creates a topic through rdkafka's AdminClient at `bootstrap`, retrying retriable
/// errors (an election in progress) for up to 30 s.
///
/// Each attempt uses a new AdminClient: librdkafka sends CreateTopics to the controller
/// id from its cached metadata and does not refresh it when that broker dies, so a
/// long-lived client keeps waiting for a killed controller.
pub fn create_topic(
    runtime: &tokio::runtime::Runtime,
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    create_topic_with(
        runtime,
        bootstrap,
        &[],
        name,
        partitions,
        replication_factor,
        configs,
    )
}

/// [`create_topic`] with extra librdkafka settings for the AdminClient (see
/// [`crate::client_config`]).
pub fn create_topic_with(
    runtime: &tokio::runtime::Runtime,
    bootstrap: &str,
    settings: &crate::client_config::Settings,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let mut attempts = 0;
    wait_until_every(
        &format!("CreateTopics {name}"),
        ADMIN_DEADLINE,
        ADMIN_RETRY,
        || {
            attempts += 1;
            let mut topic = NewTopic::new(
                name,
                partitions,
                TopicReplication::Fixed(replication_factor),
            );
            for (k, v) in configs {
                topic = topic.set(k, v);
            }
            let options = AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(10)))
                .request_timeout(Some(Duration::from_secs(15)));
            let admin: AdminClient<DefaultClientContext> = crate::client_config::apply(
                &mut crate::security::client_config(bootstrap),
                settings,
            )
            .create()
            .map_err(|e| format!("admin client: {e}"))?;
            let results = runtime.block_on(admin.create_topics([&topic], &options));
            let result = match results {
                Ok(mut r) => r.pop(),
                Err(e) => return Err(format!("request failed: {e}")),
            };
            match result {
                Some(Ok(_)) => Ok(Ok(())),
                // A previous attempt may have succeeded without us hearing about it.
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) if attempts > 1 => Ok(Ok(())),
                Some(Err((_, code))) if is_retriable_admin(code) => Err(format!("{code:?}")),
                Some(Err((_, code))) => Ok(Err(HarnessError::Protocol(format!(
                    "CreateTopics {name}: {code:?}"
                )))),
                None => Err("no result".into()),
            }
        },
    )?
}

fn is_retriable_admin(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::NotController
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::InvalidReplicationFactor
            | RDKafkaErrorCode::NotEnoughReplicas
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: i16) -> AdminError {
        AdminError::Refused(Refused {
            api: "AlterPartitionReassignments",
            resource: "t-0".into(),
            code,
            message: None,
        })
    }

    #[test]
    fn only_lasting_refusals_and_unreadable_exchanges_are_final() {
        assert!(is_final(&refused(
            ResponseError::InvalidReplicaAssignment.code()
        )));
        assert!(!is_final(&refused(ResponseError::NotController.code())));
        assert!(!is_final(&refused(
            ResponseError::CoordinatorNotAvailable.code()
        )));
        assert!(is_final(&AdminError::Client(ClientError::UnknownApi(99))));
        assert!(!is_final(&AdminError::Client(ClientError::Closed {
            addr: "127.0.0.1:9092".into()
        })));
    }
}
