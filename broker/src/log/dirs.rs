//! The health of each log directory, with KIP-112's semantics: the first storage error in
//! a directory takes the whole directory offline (its partitions answer
//! KAFKA_STORAGE_ERROR, a cluster moves their leadership away), while the broker and its
//! other directories keep serving. Unlike Kafka, which needs a restart, Strom probes an
//! offline directory and brings its partitions back once writing works again (space was
//! freed); recovery then cuts whatever a failed write may have left.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Written, fsynced and removed to learn whether a directory takes writes again.
const PROBE_FILE: &str = ".strom-write-probe";
/// What the probe writes: enough to need real free blocks, not just an inode.
const PROBE_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub struct LogDir {
    pub path: PathBuf,
    offline: AtomicBool,
    /// Why it went offline (the first error), for logs and DescribeLogDirs.
    reason: Mutex<Option<String>>,
    /// Partitions placed here, so placing a new one does not list every directory.
    partitions: AtomicUsize,
}

impl LogDir {
    pub fn new(path: PathBuf) -> LogDir {
        LogDir {
            path,
            offline: AtomicBool::new(false),
            reason: Mutex::new(None),
            partitions: AtomicUsize::new(0),
        }
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    pub fn offline_reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// Takes the directory offline; returns true for the call that did it, so the
    /// transition is logged once.
    pub fn fail(&self, reason: &str) -> bool {
        let mut current = self.reason.lock();
        if self.offline.swap(true, Ordering::AcqRel) {
            return false;
        }
        *current = Some(reason.to_string());
        tracing::error!(
            log_dir = %self.path.display(),
            reason,
            "log directory is offline: its partitions answer KAFKA_STORAGE_ERROR until writes work again"
        );
        true
    }

    /// Marks the directory online again, after its partitions were reopened.
    pub fn restore(&self) {
        let mut reason = self.reason.lock();
        *reason = None;
        self.offline.store(false, Ordering::Release);
        tracing::info!(log_dir = %self.path.display(), "log directory is back online");
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.load(Ordering::Relaxed)
    }

    pub fn add_partition(&self) {
        self.partitions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn remove_partition(&self) {
        // Saturating: a count that drifted must not wrap and repel every new partition.
        let _ = self
            .partitions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Whether the directory takes a real write again: a megabyte written and fsynced.
    pub fn probe_writable(&self) -> io::Result<()> {
        probe_writable(&self.path)
    }
}

fn probe_writable(dir: &Path) -> io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let result = (|| {
        let mut file = fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    // The probe never stays behind, whether it worked or not.
    let removed = fs::remove_file(&path);
    result?;
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_offline_once_and_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = LogDir::new(dir.path().to_path_buf());
        assert!(!d.is_offline());
        assert!(d.fail("No space left on device"));
        assert!(!d.fail("a second error"), "only the first failure counts");
        assert_eq!(
            d.offline_reason().as_deref(),
            Some("No space left on device")
        );
        d.probe_writable().unwrap();
        assert!(!dir.path().join(PROBE_FILE).exists());
        d.restore();
        assert!(!d.is_offline());
        assert_eq!(d.offline_reason(), None);
    }

    #[test]
    fn probe_fails_where_nothing_can_be_written() {
        let d = LogDir::new(PathBuf::from("/proc/strom-no-such-dir"));
        assert!(d.probe_writable().is_err());
    }

    #[test]
    fn partition_count_never_wraps() {
        let d = LogDir::new(PathBuf::from("/tmp"));
        d.remove_partition();
        assert_eq!(d.partition_count(), 0);
        d.add_partition();
        assert_eq!(d.partition_count(), 1);
    }
}
