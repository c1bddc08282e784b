//! `--broker-cpus`: the brokers (Strom's and Apache Kafka's) on some CPUs, this process
//! and its clients on the others, so that a run shows what the broker can do rather
//! than how the two share the cores.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Result};

/// The CPU set brokers are confined to; unset, everything runs anywhere.
static BROKER_CPUS: OnceLock<libc::cpu_set_t> = OnceLock::new();

fn cpu_set(cpus: impl IntoIterator<Item = usize>) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in cpus {
        // SAFETY: CPU_SET bounds-checks against the set's size.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

fn set_affinity(set: &libc::cpu_set_t) -> std::io::Result<()> {
    // SAFETY: pid 0 is the calling thread; `set` outlives the call.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Confines brokers spawned from now on to `broker_cpus`, and this process (call it
/// before any thread starts, so every client thread inherits it) to the other CPUs.
pub fn split(broker_cpus: &[usize]) -> Result<()> {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let clients: Vec<usize> = (0..online).filter(|c| !broker_cpus.contains(c)).collect();
    if broker_cpus.is_empty() || clients.is_empty() || broker_cpus.iter().any(|&c| c >= online) {
        bail!("--broker-cpus {broker_cpus:?} must name some but not all of CPUs 0..{online}");
    }
    set_affinity(&cpu_set(clients.iter().copied()))?;
    let _ = BROKER_CPUS.set(cpu_set(broker_cpus.iter().copied()));
    Ok(())
}

/// Makes `cmd` run on the broker CPUs, if `--broker-cpus` was given.
pub fn confine_broker(cmd: &mut Command) {
    if let Some(set) = BROKER_CPUS.get() {
        let set = *set;
        // SAFETY: sched_setaffinity is a plain system call; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || set_affinity(&set));
        }
    }
}
