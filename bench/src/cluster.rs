//! A cluster of `strom-broker` processes on loopback, each a broker and a controller
//! voter, started together and killed together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::broker::{free_ports, http_status, Broker, Rss, UnderTest};

/// Running brokers, node id = index. Dropping it kills every process (SIGKILL), then
/// removes the cluster's directory (unless asked to keep it).
pub struct Cluster {
    pub brokers: Vec<Broker>,
    pub dir: PathBuf,
    /// What each node was launched with, so `restart` brings back the same node.
    binary: PathBuf,
    node_overrides: Vec<Vec<String>>,
    restarts: usize,
    /// Declared last: removed only after every broker has been killed.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Spawns `n` brokers with node ids `0..n` on free loopback ports, each with its
    /// own directory `b<id>` (logs, and `data` as its log.dirs) under a fresh
    /// `cluster-*` directory in `base_dir`. All are voters of one controller quorum and
    /// new topics default to `n` replicas. `extra_overrides` go to every broker, last.
    /// Returns the cluster and the instant just before the first spawn.
    pub fn start(
        binary: &Path,
        base_dir: &Path,
        n: usize,
        extra_overrides: &[String],
        keep: bool,
    ) -> Result<(Cluster, Instant)> {
        if n == 0 {
            bail!("a cluster needs at least one broker");
        }
        let mut dir = tempfile::Builder::new()
            .prefix("cluster-")
            .tempdir_in(base_dir)
            .with_context(|| format!("creating a cluster dir under {}", base_dir.display()))?;
        if keep {
            dir.disable_cleanup(true);
        }
        // Kafka, controller and admin port of each node, reserved together so they differ.
        let ports = free_ports(3 * n)?;
        let addr = |port: u16| -> SocketAddr { ([127, 0, 0, 1], port).into() };
        let voters: Vec<String> = (0..n)
            .map(|i| format!("{i}@{}", addr(ports[3 * i + 1])))
            .collect();
        let voters = voters.join(",");
        let mut brokers = Vec::with_capacity(n);
        let mut all_overrides = Vec::with_capacity(n);
        let mut t0 = None;
        for i in 0..n {
            let (kafka, controller, admin) = (
                addr(ports[3 * i]),
                addr(ports[3 * i + 1]),
                addr(ports[3 * i + 2]),
            );
            let mut overrides = node_overrides(i, n, kafka, controller, &voters);
            overrides.extend_from_slice(extra_overrides);
            let (b, started) = Broker::launch(
                binary,
                dir.path().join(format!("b{i}")),
                None,
                kafka,
                admin,
                &overrides,
            )?;
            t0.get_or_insert(started);
            brokers.push(b);
            all_overrides.push(overrides);
        }
        let cluster = Cluster {
            brokers,
            dir: dir.path().to_path_buf(),
            binary: binary.to_path_buf(),
            node_overrides: all_overrides,
            restarts: 0,
            _dir: dir,
        };
        Ok((cluster, t0.unwrap_or_else(Instant::now)))
    }

    /// Waits (bounded by `timeout` from `t0`) until every broker's admin `GET /ready`
    /// answers 200. Returns the time from `t0`.
    pub fn wait_ready(&mut self, t0: Instant, timeout: Duration) -> Result<Duration> {
        let deadline = t0 + timeout;
        loop {
            self.check_alive()?;
            let statuses: Vec<Option<u16>> = self
                .brokers
                .iter()
                .map(|b| http_status(b.admin_addr, "/ready").ok())
                .collect();
            if statuses.iter().all(|s| *s == Some(200)) {
                return Ok(t0.elapsed());
            }
            if Instant::now() >= deadline {
                bail!(
                    "not every broker ready after {timeout:?}: /ready answered {statuses:?} (node id order); logs:\n{}",
                    self.stderr_tail(5)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops node `i` gracefully (SIGTERM: controlled shutdown; SIGKILL after `grace`)
    /// and starts it again on the same directory and ports. Returns the time the stop
    /// took (None: it had to be killed) and the instant just before the new spawn.
    pub fn restart(&mut self, i: usize, grace: Duration) -> Result<(Option<Duration>, Instant)> {
        let old = self
            .brokers
            .get_mut(i)
            .with_context(|| format!("no node {i}"))?;
        let stopped = old.shutdown(grace);
        let (kafka, admin, run_dir) = (old.kafka_addr, old.admin_addr, old.run_dir.clone());
        // The old guard's log is overwritten by the new process's; keep it beside.
        let _ = std::fs::rename(
            old.log_path(),
            run_dir.join(format!("broker.stderr.{}.log", self.restarts)),
        );
        self.restarts += 1;
        let (b, started) = Broker::launch(
            &self.binary,
            run_dir,
            None,
            kafka,
            admin,
            &self.node_overrides[i],
        )?;
        self.brokers[i] = b;
        Ok((stopped, started))
    }

    /// Each broker's resident memory, in node id order.
    pub fn rss(&self) -> Result<Vec<Rss>> {
        self.brokers.iter().map(Broker::rss).collect()
    }
}

/// The overrides that make `strom-broker` node `i` of an `n`-node cluster whose
/// controller voters are `voters` (`id@host:port,...`).
pub fn node_overrides(
    i: usize,
    n: usize,
    kafka: SocketAddr,
    controller: SocketAddr,
    voters: &str,
) -> Vec<String> {
    vec![
        format!("node.id={i}"),
        format!("listeners=PLAINTEXT://{kafka},CONTROLLER://{controller}"),
        format!("advertised.listeners=PLAINTEXT://{kafka}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        format!("controller.quorum.voters={voters}"),
        format!("default.replication.factor={n}"),
    ]
}

impl UnderTest for Cluster {
    fn pids(&self) -> Vec<u32> {
        self.brokers.iter().map(|b| b.pid).collect()
    }

    fn check_alive(&mut self) -> Result<()> {
        for (i, b) in self.brokers.iter_mut().enumerate() {
            b.check_alive().with_context(|| format!("node {i}"))?;
        }
        Ok(())
    }

    fn stderr_tail(&self, lines: usize) -> String {
        let tails: Vec<String> = self
            .brokers
            .iter()
            .enumerate()
            .map(|(i, b)| format!("--- node {i}:\n{}", b.stderr_tail(lines)))
            .collect();
        tails.join("\n")
    }

    /// Every broker's Kafka address.
    fn bootstrap(&self) -> String {
        let addrs: Vec<String> = self.brokers.iter().map(Broker::bootstrap).collect();
        addrs.join(",")
    }
}
