//! One broker OS process: spawned in its own process group, output to a log file,
//! stopped by SIGKILL or SIGTERM.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// How to start a broker: the program (the broker itself, or `ip` for `ip netns exec`)
/// and its arguments.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub log_path: PathBuf,
}

pub struct BrokerProcess {
    child: Child,
}

impl BrokerProcess {
    pub fn spawn(launch: &Launch, label: &str) -> Result<BrokerProcess> {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log_path)
            .map_err(|e| HarnessError::io(format!("open {}", launch.log_path.display()), e))?;
        // Restarts append to the same file; the marker shows where each run begins.
        let _ = writeln!(log, "===== strom-e2e-cluster: starting {label} =====");
        let stdout = log
            .try_clone()
            .map_err(|e| HarnessError::io("clone log handle", e))?;
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            // Plain text logs: they are read in failure messages, not on a terminal.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            // Own process group: signals reach the broker and anything it forks, and a
            // Ctrl-C aimed at `cargo test` is not delivered twice.
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which
        // is async-signal-safe. PDEATHSIG kills the broker if the test process dies without
        // running destructors (e.g. SIGKILL); it survives `ip netns exec`, which execs.
        // The "parent" is the spawning *thread*: drive a cluster from the thread that owns
        // it (a test's own thread), not from a short-lived helper thread.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {}", launch.program.display()), e))?;
        Ok(BrokerProcess { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `None` while the process runs.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL to the whole process group, then reap.
    pub fn kill9(mut self) -> ExitStatus {
        self.kill_group();
        self.reap()
    }

    /// SIGTERM, then waits up to `deadline` for the exit. On timeout the process group
    /// is killed and the error says so.
    pub fn sigterm(self, deadline: Duration) -> Result<ExitStatus> {
        self.send_sigterm();
        self.wait_exit(deadline)
    }

    /// SIGTERM without waiting, to stop several brokers at once.
    pub fn send_sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits up to `deadline` for the process to exit; then kills the group and fails.
    pub fn wait_exit(mut self, deadline: Duration) -> Result<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exit_status() {
                return Ok(status);
            }
            if started.elapsed() >= deadline {
                self.kill_group();
                let status = self.reap();
                return Err(HarnessError::Timeout {
                    what: format!("pid {} to exit after SIGTERM", self.pid()),
                    after: deadline,
                    last: format!("killed with SIGKILL, status {status}"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the process group without reaping, to kill several brokers at once;
    /// [`BrokerProcess::kill9`] then reaps.
    pub fn send_sigkill(&self) {
        self.kill_group();
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own, not yet reaped child, so the pid is not reused.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    fn kill_group(&self) {
        // SAFETY: as above; the child leads its own group (process_group(0)).
        unsafe {
            libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL);
        }
    }

    fn reap(&mut self) -> ExitStatus {
        self.child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL))
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// The last `lines` lines of a log file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
