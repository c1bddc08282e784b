//! Spawning `strom-broker` as a child process, and the guard that kills it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use serde::Serialize;

/// A running broker. Dropping it kills the process (SIGKILL) and then removes its
/// data directory (unless asked to keep it). The child also gets SIGKILL from the
/// kernel if this process dies without unwinding (`PR_SET_PDEATHSIG`).
pub struct Broker {
    child: Option<Child>,
    pub pid: u32,
    pub kafka_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub run_dir: PathBuf,
    stderr_path: PathBuf,
    /// Declared last: removed only after `Drop::drop` has killed the child.
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct StartupTiming {
    /// Spawn until a TCP connect to the Kafka port succeeds.
    pub tcp_ms: f64,
    /// Spawn until an rdkafka metadata request has been answered.
    pub metadata_ms: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rss {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// The overrides that make `strom-broker` a single node (node 0, no controller
/// quorum) serving Kafka on `kafka_addr`.
pub fn single_node_overrides(kafka_addr: SocketAddr) -> Vec<String> {
    vec![
        format!("listeners=PLAINTEXT://{kafka_addr}"),
        format!("advertised.listeners=PLAINTEXT://{kafka_addr}"),
        "node.id=0".to_string(),
    ]
}

/// Picks `n` distinct free loopback ports (held open together so they differ).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding a loopback port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

impl Broker {
    /// Spawns a single-node broker (node 0) with a fresh run directory under
    /// `base_dir` and free loopback ports. Returns the guard and the instant just
    /// before the spawn (the start-up clock).
    pub fn spawn(
        binary: &Path,
        base_dir: &Path,
        extra_overrides: &[String],
        keep: bool,
    ) -> Result<(Broker, Instant)> {
        let mut dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(base_dir)
            .with_context(|| format!("creating a run dir under {}", base_dir.display()))?;
        if keep {
            dir.disable_cleanup(true);
        }
        let ports = free_ports(2)?;
        let kafka_addr: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let admin_addr: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let mut overrides = single_node_overrides(kafka_addr);
        overrides.extend_from_slice(extra_overrides);
        let run_dir = dir.path().to_path_buf();
        Broker::launch(
            binary,
            run_dir,
            Some(dir),
            kafka_addr,
            admin_addr,
            &overrides,
        )
    }

    /// Spawns the broker with `run_dir` for its logs and `run_dir/data` as its
    /// `log.dirs`, serving admin HTTP on `admin_addr`; `overrides` name its listeners
    /// (on `kafka_addr`), node id and the rest. `dir`, if given, is removed after the
    /// process is killed; without it the caller owns the directory's clean-up.
    pub fn launch(
        binary: &Path,
        run_dir: PathBuf,
        dir: Option<tempfile::TempDir>,
        kafka_addr: SocketAddr,
        admin_addr: SocketAddr,
        overrides: &[String],
    ) -> Result<(Broker, Instant)> {
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        let data_dir = run_dir.join("data");
        let stdout_path = run_dir.join("broker.stdout.log");
        let stderr_path = run_dir.join("broker.stderr.log");

        let mut cmd = Command::new(binary);
        let own = [
            format!("log.dirs={}", data_dir.display()),
            format!("admin.listener={admin_addr}"),
        ];
        for o in own.iter().chain(overrides) {
            cmd.arg("--override").arg(o);
        }
        // Plain logs (tracing-subscriber honours NO_COLOR) so tails read cleanly.
        cmd.env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path)?)
            .stderr(File::create(&stderr_path)?);
        die_with_parent(&mut cmd);
        crate::pinning::confine_broker(&mut cmd);
        let t0 = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let pid = child.id();
        Ok((
            Broker {
                child: Some(child),
                pid,
                kafka_addr,
                admin_addr,
                run_dir,
                stderr_path,
                _dir: dir,
            },
            t0,
        ))
    }

    pub fn bootstrap(&self) -> String {
        self.kafka_addr.to_string()
    }

    /// Fails (with the tail of the broker's stderr) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("broker already stopped");
        };
        if let Some(status) = child.try_wait()? {
            let tail = self.stderr_tail(10);
            self.child = None;
            bail!("broker exited with {status}; stderr tail:\n{tail}");
        }
        Ok(())
    }

    /// The broker's log (it logs to stderr).
    pub fn log_path(&self) -> &Path {
        &self.stderr_path
    }

    pub fn stderr_tail(&self, lines: usize) -> String {
        tail_file(&self.stderr_path, lines)
    }

    /// Waits (bounded by `timeout` from `t0`) until the Kafka port accepts TCP and an
    /// rdkafka metadata request is answered (see [`wait_serving`]).
    pub fn wait_serving(
        &mut self,
        t0: Instant,
        timeout: Duration,
        topic: Option<&str>,
    ) -> Result<StartupTiming> {
        let addr = self.kafka_addr;
        wait_serving(self, addr, t0, timeout, topic)
    }

    pub fn rss(&self) -> Result<Rss> {
        read_rss(self.pid)
    }

    /// Graceful stop: SIGTERM, wait up to `grace`, then SIGKILL. Returns the time
    /// to exit if the broker exited on SIGTERM.
    pub fn shutdown(&mut self, grace: Duration) -> Option<Duration> {
        let mut child = self.child.take()?;
        let took = terminate(&mut child, grace);
        if took.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        took
    }
}

/// SIGTERM to `child`, then waits up to `grace` for it to exit. Returns the time it
/// took, or None if it is still running (the caller kills it).
pub fn terminate(child: &mut Child, grace: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    // SAFETY: plain kill(2) on our own child's pid, which has not been reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    while t0.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(t0.elapsed());
        }
        thread::sleep(Duration::from_millis(2));
    }
    None
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a load run needs of the brokers it runs against: one broker or a cluster.
pub trait UnderTest {
    /// The broker processes, for CPU readings.
    fn pids(&self) -> Vec<u32>;
    /// Fails (with the tail of the logs) if any broker process has exited.
    fn check_alive(&mut self) -> Result<()>;
    /// The last lines of the brokers' logs, for error reports.
    fn stderr_tail(&self, lines: usize) -> String;
    /// `bootstrap.servers` for clients.
    fn bootstrap(&self) -> String;
    /// Resident memory of every broker process summed.
    fn resident(&self) -> Result<Rss> {
        total_rss(&self.pids())
    }
}

impl UnderTest for Broker {
    fn pids(&self) -> Vec<u32> {
        vec![self.pid]
    }

    fn check_alive(&mut self) -> Result<()> {
        Broker::check_alive(self)
    }

    fn stderr_tail(&self, lines: usize) -> String {
        Broker::stderr_tail(self, lines)
    }

    fn bootstrap(&self) -> String {
        Broker::bootstrap(self)
    }
}

/// Waits (bounded by `timeout` from `t0`) until `addr` accepts TCP and an rdkafka
/// metadata request to it is answered, failing early if `b` exits.
/// `topic`: ask for that topic's metadata instead of all topics'.
pub fn wait_serving<B: UnderTest + ?Sized>(
    b: &mut B,
    addr: SocketAddr,
    t0: Instant,
    timeout: Duration,
    topic: Option<&str>,
) -> Result<StartupTiming> {
    let deadline = t0 + timeout;
    loop {
        b.check_alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "broker not accepting TCP on {addr} after {timeout:?}; log tail:\n{}",
                b.stderr_tail(10)
            );
        }
        thread::sleep(Duration::from_millis(1));
    }
    let tcp = t0.elapsed();
    // The client is created only now: created earlier, its first refused
    // connection would put it into reconnect back-off and inflate the figure.
    let client: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("reconnect.backoff.ms", "5")
        .set("reconnect.backoff.max.ms", "50")
        .create()
        .context("creating the metadata client")?;
    let mut last_err: Option<rdkafka::error::KafkaError> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let last_err = last_err.map_or_else(|| "none".to_string(), |e| e.to_string());
            bail!(
                "no metadata answer within {timeout:?} (last error: {last_err}); log tail:\n{}",
                b.stderr_tail(10)
            );
        }
        match client
            .client()
            .fetch_metadata(topic, left.min(Duration::from_secs(2)))
        {
            Ok(_) => break,
            Err(e) => {
                last_err = Some(e);
                b.check_alive()?;
            }
        }
    }
    let meta = t0.elapsed();
    Ok(StartupTiming {
        tcp_ms: ms(tcp),
        metadata_ms: ms(meta),
    })
}

/// Has the kernel SIGKILL the child if this process dies without unwinding
/// (`PR_SET_PDEATHSIG`; it survives the exec of a launcher script into the JVM).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `root` and every process descended from it (from each /proc/PID/stat's parent
/// field), `root` first: a launcher script's JVM and whatever it started.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // After the parenthesised command name: state, then the parent pid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// Resident memory of `pids` summed (their peaks summed too: an upper bound of the
/// set's peak).
pub fn total_rss(pids: &[u32]) -> Result<Rss> {
    let mut total = Rss {
        rss_kib: 0,
        hwm_kib: 0,
    };
    for pid in pids {
        let r = read_rss(*pid)?;
        total.rss_kib += r.rss_kib;
        total.hwm_kib += r.hwm_kib;
    }
    Ok(total)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The soft "Max open files" of process `pid`.
pub fn fd_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// How many descriptors process `pid` has open.
pub fn open_fds(pid: u32) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count() as u64)
}

pub fn read_rss(pid: u32) -> Result<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("{name} missing in /proc/{pid}/status"))
    };
    Ok(Rss {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

pub fn tail_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<String> = text.lines().map(strip_ansi).collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Minimal bounded HTTP/1.1 GET; returns the status code.
pub fn http_status(addr: SocketAddr, path: &str) -> Result<u16> {
    http_get(addr, path).map(|(status, _)| status)
}

/// Minimal bounded HTTP/1.1 GET (`Connection: close`, at most 4 MiB read); returns
/// the status code and the body. A chunked body keeps its chunk-size lines, which
/// line-oriented readers such as `metric_value` skip.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.take(4 << 20).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status line in {:?}", &text[..text.len().min(80)]))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

/// The value of the Prometheus sample `name` whose labels include every one of
/// `labels` (`key="value"` pairs), in the text exposition format.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once('}')?,
            None if rest.starts_with(' ') => ("", rest),
            None => return None,
        };
        let all = labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.split_whitespace().next()?.parse().ok())?
    })
}

/// Drops ANSI escape sequences (ESC '[' ... final byte) from a log line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// CPU time (user + system) of a process so far, from /proc/PID/stat.
pub fn cpu_time(pid: &str) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f
        .get(11)
        .zip(f.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .ok_or_else(|| anyhow!("no utime/stime in /proc/{pid}/stat"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// CPU used by the broker and by this harness (librdkafka's threads included)
/// over one run, as a percentage of one core.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// All broker processes together (a cluster's brokers summed).
    pub broker_pct: f64,
    /// All broker processes' CPU time over the run, in seconds.
    pub broker_cpu_secs: f64,
    /// Each broker's share when there are several (in node id order), else empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_broker_pct: Vec<f64>,
    pub client_pct: f64,
    /// The whole machine (kernel threads such as writeback included), as a
    /// percentage of all cores, from /proc/stat.
    pub machine_busy_pct: Option<f64>,
    /// Dirty + Writeback page cache (MiB, /proc/meminfo) at the start and end of
    /// the run: the kernel's write-back backlog the run started with and left.
    pub dirty_mib_before: Option<u64>,
    pub dirty_mib_after: Option<u64>,
}

/// Dirty + Writeback from /proc/meminfo, in MiB.
pub fn dirty_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("Dirty:")? + field("Writeback:")?) / 1024)
}

/// The machine's busy share (all cores, %) over `window`, before anything of this run
/// started: other load on the machine that the figures share it with.
pub fn background_busy_pct(window: Duration) -> Option<f64> {
    let (b0, t0) = machine_jiffies()?;
    thread::sleep(window);
    let (b1, t1) = machine_jiffies()?;
    (t1 > t0).then(|| 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64)
}

/// (busy, total) jiffies over all cores from the first line of /proc/stat.
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

pub struct CpuMeter {
    pids: Vec<String>,
    at: Instant,
    brokers: Vec<Duration>,
    client: Duration,
    machine: Option<(u64, u64)>,
    dirty_before: Option<u64>,
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter::start_all(&[pid])
    }

    /// Meters every broker process in `pids` (a cluster on this machine).
    pub fn start_all(pids: &[u32]) -> CpuMeter {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        CpuMeter {
            brokers: pids
                .iter()
                .map(|p| cpu_time(p).unwrap_or_default())
                .collect(),
            client: cpu_time("self").unwrap_or_default(),
            machine: machine_jiffies(),
            dirty_before: dirty_mib(),
            at: Instant::now(),
            pids,
        }
    }

    pub fn stop(&self) -> Option<CpuUse> {
        let wall = self.at.elapsed().as_secs_f64();
        let used = self
            .pids
            .iter()
            .zip(&self.brokers)
            .map(|(pid, before)| Some(cpu_time(pid).ok()?.saturating_sub(*before).as_secs_f64()))
            .collect::<Option<Vec<f64>>>()?;
        let per_broker_pct: Vec<f64> = used.iter().map(|u| 100.0 * u / wall).collect();
        let client = cpu_time("self").ok()?.saturating_sub(self.client);
        let machine_busy_pct = match (self.machine, machine_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some(100.0 * (b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        Some(CpuUse {
            broker_pct: per_broker_pct.iter().sum(),
            broker_cpu_secs: used.iter().sum(),
            per_broker_pct: if per_broker_pct.len() > 1 {
                per_broker_pct
            } else {
                Vec::new()
            },
            client_pct: 100.0 * client.as_secs_f64() / wall,
            machine_busy_pct,
            dirty_mib_before: self.dirty_before,
            dirty_mib_after: dirty_mib(),
        })
    }
}
