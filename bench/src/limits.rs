//! The limits the broker's figures are compared against, measured in the same run.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

pub const MIB: u64 = 1 << 20;

/// Deterministic, incompressible bytes (xorshift64*).
pub fn random_pool(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The `len` bytes at a position of `pool` that depends on `i` (never 4 KiB aligned,
/// so no two 1 MiB chunks or records of a run share their blocks).
pub fn slice_for(pool: &[u8], i: u64, len: usize) -> &[u8] {
    let span = (pool.len() - len) as u64;
    let off = (i.wrapping_mul(1_000_003)) % span;
    &pool[off as usize..off as usize + len]
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskResult {
    pub path: PathBuf,
    pub bytes: u64,
    /// write() calls only: the page-cache path.
    pub write_secs: f64,
    /// write() calls plus fsync: the disk limit.
    pub fsync_secs: f64,
    pub page_cache_mbps: f64,
    pub fsync_mbps: f64,
}

/// Sequential write of `bytes` in 1 MiB chunks to a fresh file in `dir`, then fsync.
pub fn disk_write(dir: &Path, bytes: u64, pool: &[u8]) -> Result<DiskResult> {
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let path = dir.join(format!("disk-probe-{}.bin", std::process::id()));
    let guard = RemoveOnDrop(path.clone());
    let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let t0 = Instant::now();
    let mut written = 0u64;
    let mut i = 0u64;
    while written < bytes {
        let n = (bytes - written).min(MIB) as usize;
        f.write_all(slice_for(pool, i, n))?;
        written += n as u64;
        i += 1;
    }
    let write = t0.elapsed();
    f.sync_all()?;
    let total = t0.elapsed();
    drop(f);
    drop(guard);
    Ok(DiskResult {
        path,
        bytes,
        write_secs: write.as_secs_f64(),
        fsync_secs: total.as_secs_f64(),
        page_cache_mbps: bytes as f64 / write.as_secs_f64() / 1e6,
        fsync_mbps: bytes as f64 / total.as_secs_f64() / 1e6,
    })
}

/// One TCP stream over loopback, 1 MiB writes and reads: the bandwidth of one
/// user-to-kernel-to-user copy through the loopback device.
pub fn loopback_mbps(bytes: u64) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        let buf = vec![0x5Au8; MIB as usize];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(MIB) as usize;
            s.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let (mut s, _) = listener.accept()?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = vec![0u8; MIB as usize];
    let t0 = Instant::now();
    let mut got = 0u64;
    while got < bytes {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    match writer.join() {
        Ok(r) => r?,
        Err(_) => bail!("loopback writer thread panicked"),
    }
    if got < bytes {
        bail!("loopback: read {got} of {bytes} bytes");
    }
    Ok(bytes as f64 / secs / 1e6)
}
