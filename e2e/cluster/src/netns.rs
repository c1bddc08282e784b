//! Network namespaces for partition tests: one namespace per broker, joined by a bridge in
//! the root namespace (where the test client runs), nftables drop rules to cut a broker off
//! from its peers, and teardown that also runs on panic.
//!
//! Names carry the test process id (`strom-<pid>-<n>-<i>`, `strom-probe-<pid>-<n>`,
//! `stb<pid><n>`, `stv<pid><n><i>`),
//! so leftovers of a test process that died without unwinding are found and removed by the
//! next run.

use std::fs::File;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{HarnessError, Result};

const NFT_TABLE: &str = "strom_isolation";
const LOCK_FILE: &str = "/tmp/strom-e2e-netns.lock";
/// Second octets the harness may use: 10.200.0.0 – 10.249.255.255.
const SECOND_OCTETS: std::ops::RangeInclusive<u8> = 200..=249;

static TOPOLOGY_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Checks that `ip` and `nft` exist and that a namespace can be created and filtered.
/// The error says why not, for the skip message.
pub fn probe() -> std::result::Result<(), String> {
    for tool in ["ip", "nft"] {
        if !installed(tool) {
            return Err(format!(
                "`{tool}` is not installed (apt-get install -y iproute2 nftables)"
            ));
        }
    }
    static PROBES: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "strom-probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    run("ip", &["netns", "add", &name]).map_err(|e| e.to_string())?;
    let filtered = run("ip", &["netns", "exec", &name, "nft", "list", "tables"]);
    let _ = run("ip", &["netns", "del", &name]);
    filtered.map(|_| ()).map_err(|e| e.to_string())
}

/// Brokers in namespaces on a private /24; see the module doc.
pub struct Topology {
    subnet: (u8, u8),
    bridge: String,
    namespaces: Vec<String>,
    veths: Vec<String>,
    torn_down: bool,
}

impl Topology {
    pub fn create(brokers: usize) -> Result<Topology> {
        if let Err(reason) = probe() {
            return Err(HarnessError::NetnsUnavailable(reason));
        }
        assert!(brokers <= 16, "one hex digit names the broker's veth");
        sweep_leftovers();
        let pid = std::process::id();
        let n = TOPOLOGY_COUNTER.fetch_add(1, Ordering::Relaxed) % 0x1000;
        let mut topology = Topology {
            subnet: (0, 0),
            bridge: format!("stb{pid:06x}{n:03x}"),
            namespaces: (0..brokers)
                .map(|i| format!("strom-{pid}-{n}-{i}"))
                .collect(),
            veths: (0..brokers)
                .map(|i| format!("stv{pid:06x}{n:03x}{i:x}"))
                .collect(),
            torn_down: false,
        };
        // From here on Drop removes whatever part was built.
        {
            let _lock = SubnetLock::acquire()?;
            topology.subnet = free_subnet(pid, n)?;
            let host = format!("{}/24", topology.host_ip());
            run("ip", &["link", "add", &topology.bridge, "type", "bridge"])?;
            run("ip", &["addr", "add", &host, "dev", &topology.bridge])?;
            run("ip", &["link", "set", &topology.bridge, "up"])?;
        }
        for i in 0..brokers {
            let ns = topology.namespaces[i].clone();
            let veth = topology.veths[i].clone();
            let addr = format!("{}/24", topology.broker_ip(i));
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            run("ip", &["link", "set", &veth, "master", &topology.bridge])?;
            run("ip", &["link", "set", &veth, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(topology)
    }

    pub fn size(&self) -> usize {
        self.namespaces.len()
    }

    pub fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    pub fn broker_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, i as u8 + 1)
    }

    /// The bridge's address: what brokers see as the test client's address.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, 254)
    }

    /// Drops all traffic between broker `i` and the other brokers, both directions,
    /// inside `i`'s namespace. The client (the bridge address) still reaches it.
    pub fn isolate(&self, i: usize) -> Result<()> {
        let peers: Vec<String> = (0..self.size())
            .filter(|&j| j != i)
            .map(|j| self.broker_ip(j).to_string())
            .collect();
        if peers.is_empty() {
            return Ok(());
        }
        let set = peers.join(", ");
        let script = format!(
            "table inet {NFT_TABLE} {{\n\
             \tchain input {{ type filter hook input priority filter; policy accept; ip saddr {{ {set} }} drop; }}\n\
             \tchain output {{ type filter hook output priority filter; policy accept; ip daddr {{ {set} }} drop; }}\n\
             }}\n"
        );
        run_with_stdin(
            "ip",
            &["netns", "exec", &self.namespaces[i], "nft", "-f", "-"],
            &script,
        )
    }

    /// Removes the rules `isolate(i)` added.
    pub fn heal(&self, i: usize) -> Result<()> {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.namespaces[i],
                "nft",
                "delete",
                "table",
                "inet",
                NFT_TABLE,
            ],
        )
        .map(|_| ())
    }

    /// Deletes namespaces, veths and the bridge. Idempotent; errors are ignored because
    /// parts may already be gone (a namespace's veth end dies with it).
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for ns in &self.namespaces {
            let _ = run("ip", &["netns", "del", ns]);
        }
        for veth in &self.veths {
            let _ = run_quiet("ip", &["link", "del", veth]);
        }
        let _ = run_quiet("ip", &["link", "del", &self.bridge]);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Serialises subnet choice between concurrently running test processes.
struct SubnetLock {
    _file: File,
}

impl SubnetLock {
    fn acquire() -> Result<SubnetLock> {
        let file = File::create(LOCK_FILE)
            .map_err(|e| HarnessError::io(format!("create {LOCK_FILE}"), e))?;
        // SAFETY: flock(2) on a descriptor we own; released when the file closes.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(HarnessError::io(
                format!("flock {LOCK_FILE}"),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(SubnetLock { _file: file })
    }
}

/// A 10.a.b.0/24 with no address on this host yet, starting from a point derived from
/// the pid so parallel runs rarely even look at the same candidates.
fn free_subnet(pid: u32, n: u32) -> Result<(u8, u8)> {
    let listing = run("ip", &["-o", "-4", "addr", "show"])?;
    let used: Vec<(u8, u8)> = listing
        .split_whitespace()
        .filter_map(|word| {
            let ip: Ipv4Addr = word.split('/').next()?.parse().ok()?;
            let o = ip.octets();
            (o[0] == 10).then_some((o[1], o[2]))
        })
        .collect();
    let span = (*SECOND_OCTETS.end() - *SECOND_OCTETS.start()) as u32 + 1;
    let total = span * 256;
    let start = (pid.wrapping_mul(31).wrapping_add(n.wrapping_mul(7919))) % total;
    (0..total)
        .map(|k| (start + k) % total)
        .map(|c| (*SECOND_OCTETS.start() + (c / 256) as u8, (c % 256) as u8))
        .find(|candidate| !used.contains(candidate))
        .ok_or_else(|| HarnessError::Command {
            command: "choose a subnet".into(),
            detail: "every 10.200-249.x.0/24 is in use".into(),
        })
}

/// Removes namespaces and links named by this harness for processes that no longer exist.
fn sweep_leftovers() {
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for line in list.lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if harness_netns_pid(name).is_some_and(|p| !alive(p)) {
                let _ = run("ip", &["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = run("ip", &["-o", "link", "show"]) {
        for line in list.lines() {
            // "12: stb00abcd001: <...>" or "13: stv00abcd0010@if2: <...>"
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            let ours = (name.starts_with("stb") || name.starts_with("stv"))
                && name.len() >= 9
                && name.is_char_boundary(9);
            if !ours {
                continue;
            }
            if let Ok(pid) = u32::from_str_radix(&name[3..9], 16) {
                if !alive(pid) {
                    let _ = run_quiet("ip", &["link", "del", name]);
                }
            }
        }
    }
}

/// The process that made namespace `name`, if this harness named it: `strom-{pid}-{n}-{i}`
/// (a topology) or `strom-probe-{pid}-{k}` (a probe), every part decimal. Other tools name
/// namespaces `strom-…` too (the kube sandbox's node agent: `strom-{hash}-{pod uid}`), and
/// those are never this harness's to remove, even when a hash reads as a dead pid.
fn harness_netns_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("strom-")?;
    let (rest, parts) = match rest.strip_prefix("probe-") {
        Some(probe) => (probe, 2),
        None => (rest, 3),
    };
    let numbers: Vec<&str> = rest.split('-').collect();
    let decimal = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if numbers.len() != parts || !numbers.iter().all(decimal) {
        return None;
    }
    numbers[0].parse().ok()
}

fn command_text(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command to completion; its stdout, or an error carrying its stderr.
/// Whether `tool` can be started (`tool -V`; its answer does not matter).
pub fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::Command {
            command: command_text(program, args),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(HarnessError::Command {
            command: command_text(program, args),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_quiet(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| HarnessError::io(command_text(program, args), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(HarnessError::Command {
            command: command_text(program, args),
            detail: status.to_string(),
        })
    }
}

fn run_with_stdin(program: &str, args: &[&str], input: &str) -> Result<()> {
    let failed = |detail: String| HarnessError::Command {
        command: command_text(program, args),
        detail,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(format!(
            "{}: {}\ninput:\n{input}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::harness_netns_pid;

    #[test]
    fn only_the_harness_own_namespace_names_carry_a_pid() {
        assert_eq!(harness_netns_pid("strom-4242-7-2"), Some(4242));
        assert_eq!(harness_netns_pid("strom-probe-4242-0"), Some(4242));
        // The kube sandbox's node agent: strom-{8 hex digits of a hash}-{pod uid}.
        assert_eq!(
            harness_netns_pid("strom-12345678-0f3c2a1e-9b7d-4c1a-8e2f-5a6b7c8d9e0f"),
            None
        );
        assert_eq!(harness_netns_pid("strom-12345678-1-2-3"), None);
        assert_eq!(harness_netns_pid("strom-4242-7"), None);
        assert_eq!(harness_netns_pid("strom-4242-x-2"), None);
        assert_eq!(harness_netns_pid("other-4242-7-2"), None);
    }
}
