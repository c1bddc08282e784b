//! One Apache Kafka 4.4 node started from the jars by `e2e/jvm/bin/apache-kafka-node`
//! (KRaft, broker and controller in one JVM): the peer Strom is measured against.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::broker::{die_with_parent, tail_file, terminate};

/// How Apache Kafka nodes are started.
#[derive(Debug, Clone, Serialize)]
pub struct KafkaSpec {
    /// The `apache-kafka-node` launcher.
    pub launcher: PathBuf,
    /// JVM heap, set as both -Xms and -Xmx (Kafka's own start script uses 1g).
    pub heap: String,
    /// Extra `key=value` broker properties (they win over the launcher's).
    pub overrides: Vec<String>,
    /// Extra environment for the launcher (its STROM_KAFKA_* options).
    pub env: Vec<(String, String)>,
}

/// A running node. The launcher formats the directory (StorageTool) on its first
/// start only, then execs the JVM, so the spawned pid is the broker's. Dropping the
/// guard SIGKILLs the node's whole process group.
pub struct KafkaNode {
    child: Option<Child>,
    pub pid: u32,
    log_path: PathBuf,
}

impl KafkaNode {
    /// Starts node `node_id` in `dir` (created; formatted if new) with its Kafka
    /// listener on `port`, its controller on `controller_port`, and the quorum
    /// `voters` (`id@host:port,...`). Returns the guard and the instant just before
    /// the spawn.
    pub fn launch(
        spec: &KafkaSpec,
        dir: &Path,
        node_id: usize,
        port: u16,
        controller_port: u16,
        voters: &str,
    ) -> Result<(KafkaNode, Instant)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let log_path = dir.join("node.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut cmd = Command::new(&spec.launcher);
        cmd.arg(dir)
            .arg(node_id.to_string())
            .arg(port.to_string())
            .arg(controller_port.to_string())
            .arg(voters)
            .args(&spec.overrides)
            .env("KAFKA_HEAP_OPTS", format!("-Xms{0} -Xmx{0}", spec.heap))
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own group, so the format step's JVM goes down with the launcher.
            .process_group(0);
        die_with_parent(&mut cmd);
        crate::pinning::confine_broker(&mut cmd);
        let t0 = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", spec.launcher.display()))?;
        let pid = child.id();
        Ok((
            KafkaNode {
                child: Some(child),
                pid,
                log_path,
            },
            t0,
        ))
    }

    /// Fails (with the tail of the node's log) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("Apache Kafka node already stopped");
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "Apache Kafka node exited with {status}; log tail:\n{}",
                self.log_tail(10)
            );
        }
        Ok(())
    }

    /// The first ERROR or FATAL line of the log (the cause of an exit is usually
    /// far above the shutdown lines that end it), then the last `lines` lines.
    pub fn log_tail(&self, lines: usize) -> String {
        let first_error = std::fs::read_to_string(&self.log_path)
            .ok()
            .and_then(|log| {
                log.lines()
                    .find(|l| l.contains("] ERROR ") || l.contains("] FATAL "))
                    .map(str::to_string)
            });
        let tail = tail_file(&self.log_path, lines);
        match first_error {
            Some(e) => format!("first error: {e}\n...\n{tail}"),
            None => tail,
        }
    }

    /// Graceful stop: SIGTERM (Kafka's controlled shutdown), wait up to `grace`, then
    /// SIGKILL to the group. Returns the time to exit if it exited on SIGTERM.
    pub fn shutdown(&mut self, grace: Duration) -> Option<Duration> {
        let mut child = self.child.take()?;
        let took = terminate(&mut child, grace);
        // Whatever the JVM left in its group, and the JVM itself if it hung.
        kill_group(self.pid);
        let _ = child.wait();
        took
    }
}

/// SIGKILL to process group `pgid` (a node started with `process_group(0)`).
pub fn kill_group(pgid: u32) {
    // SAFETY: kill(2) on a process group this process created.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

impl Drop for KafkaNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(self.pid);
            let _ = child.wait();
        }
    }
}
