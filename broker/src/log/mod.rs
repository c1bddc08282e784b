//! Partition logs on disk: which partitions this broker holds, where, and the background
//! work on them (retention, time-based flush, compaction). The metadata image says which partitions
//! exist; `LogManager::sync` makes the disk agree.

pub mod batch;
pub mod cleaner;
pub mod disk;
pub mod epoch_cache;
pub mod handles;
pub mod index;
pub mod partition;
pub mod segment;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::{BrokerConfig, LogConfig};
use crate::metadata::MetadataImage;
use crate::replication::ReplicaRole;
pub use cleaner::CleanStats;
pub use partition::{AppendOutcome, PartitionLog};

/// Written to a log dir after every partition in it was flushed and closed.
const CLEAN_SHUTDOWN_FILE: &str = ".strom-clean-shutdown";
/// Names the topic a partition directory belongs to, so a directory left from a deleted
/// topic is never mistaken for a new topic of the same name.
const PARTITION_METADATA_FILE: &str = "partition.metadata";

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A partition this broker holds: its log, its role in replication, and watches of its
/// high watermark (consumer fetches and acks=all produces wait on it) and log end
/// (follower fetches wait on it).
#[derive(Debug)]
pub struct Partition {
    pub id: TopicPartition,
    pub topic_id: Uuid,
    pub log: Mutex<PartitionLog>,
    /// Leader or follower, and what the leader knows of its followers.
    pub replica: Mutex<ReplicaRole>,
    high_watermark: watch::Sender<i64>,
    log_end: watch::Sender<i64>,
}

impl Partition {
    fn new(id: TopicPartition, topic_id: Uuid, log: PartitionLog) -> Partition {
        let leo = log.log_end_offset();
        Partition {
            id,
            topic_id,
            log: Mutex::new(log),
            replica: Mutex::new(ReplicaRole::None),
            // Nothing is known to be replicated until a role says so: a leader whose ISR
            // is itself moves it to the log end at once, a follower takes the leader's.
            high_watermark: watch::channel(0).0,
            log_end: watch::channel(leo).0,
        }
    }

    /// Everything below the high watermark is on every in-sync replica: the part of the
    /// log consumers may read and acks=all producers wait for.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn log_end_offset(&self) -> i64 {
        *self.log_end.borrow()
    }

    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Publishes the log's new end to waiting follower fetches.
    pub fn publish_end(&self, log_end_offset: i64) {
        // Appends publish after releasing the log lock, so they can arrive out of order;
        // only ever move forward (a truncation publishes through `reset_end`).
        self.log_end.send_if_modified(|leo| {
            let advanced = log_end_offset > *leo;
            if advanced {
                *leo = log_end_offset;
            }
            advanced
        });
    }

    /// After a truncation the log end moves back.
    pub fn reset_end(&self, log_end_offset: i64) {
        self.log_end.send_replace(log_end_offset);
        self.high_watermark
            .send_if_modified(|hw| std::mem::replace(hw, (*hw).min(log_end_offset)) != *hw);
    }

    /// Moves the high watermark forward to `hw`; never back.
    pub fn advance_high_watermark(&self, hw: i64) -> bool {
        self.high_watermark.send_if_modified(|current| {
            let advanced = hw > *current;
            if advanced {
                *current = hw;
            }
            advanced
        })
    }

    /// Wakes everyone waiting on the high watermark without changing it, so they re-check
    /// what else they depend on (the role, after a leadership change).
    pub fn poke(&self) {
        self.high_watermark.send_modify(|_| {});
        self.log_end.send_modify(|_| {});
    }
}

#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<PathBuf>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    clean_shutdown: Vec<bool>,
    topic_defaults: std::collections::BTreeMap<&'static str, String>,
    /// Set by `close`, so a cleaning pass still running swaps nothing in after it.
    closing: AtomicBool,
    /// The open segment files of every partition, at most `log.max.open.files`.
    handles: Arc<handles::HandleCache>,
}

fn read_partition_topic_id(dir: &Path) -> Option<Uuid> {
    let text = fs::read_to_string(dir.join(PARTITION_METADATA_FILE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: "))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

/// Splits `name-7` into ("name", 7).
fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    Some((topic, partition.parse().ok()?))
}

impl LogManager {
    /// Opens the log dirs and notes whether the last shutdown was clean in each.
    pub fn open(config: &BrokerConfig) -> io::Result<LogManager> {
        let mut clean_shutdown = Vec::new();
        for dir in &config.log_dirs {
            fs::create_dir_all(dir)?;
            let marker = dir.join(CLEAN_SHUTDOWN_FILE);
            clean_shutdown.push(marker.exists());
            match fs::remove_file(&marker) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(LogManager {
            dirs: config.log_dirs.clone(),
            partitions: RwLock::new(HashMap::new()),
            clean_shutdown,
            topic_defaults: config.topic_defaults.clone(),
            closing: AtomicBool::new(false),
            handles: handles::HandleCache::new(handles::HandleCache::capacity_for(
                config.log_max_open_files,
            )),
        })
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Makes the partitions on disk match the image: opens or creates the ones it places
    /// on broker `node_id`, updates their configs, and removes the ones it no longer has
    /// there. Directories found on disk that the image does not know are renamed aside
    /// (`-stray`), never deleted.
    pub fn sync(&self, image: &MetadataImage, node_id: i32, startup: bool) -> io::Result<()> {
        let now = now_ms();
        let mut wanted: HashMap<TopicPartition, (Uuid, LogConfig)> = HashMap::new();
        for topic in image.topics.values() {
            let config = LogConfig::resolve(&self.topic_defaults, &topic.configs);
            for (p, state) in &topic.partitions {
                if !state.replicas.contains(&node_id) {
                    continue;
                }
                wanted.insert(
                    TopicPartition {
                        topic: topic.name.clone(),
                        partition: *p,
                    },
                    (topic.topic_id, config.clone()),
                );
            }
        }

        if startup {
            self.set_aside_strays(&wanted)?;
        }

        let mut partitions = self.partitions.write();
        let gone: Vec<TopicPartition> = partitions
            .iter()
            .filter(|(tp, p)| wanted.get(*tp).is_none_or(|(id, _)| *id != p.topic_id))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in gone {
            if let Some(p) = partitions.remove(&tp) {
                let dir = p.log.lock().dir().to_path_buf();
                tracing::info!(partition = %tp, "deleting partition log");
                fs::remove_dir_all(&dir)?;
            }
        }
        for (tp, (topic_id, config)) in wanted {
            if let Some(p) = partitions.get(&tp) {
                let mut log = p.log.lock();
                if *log.config() != config {
                    log.set_config(config);
                }
                continue;
            }
            let (dir, clean) = self.place(&tp, topic_id)?;
            let (log, report) =
                PartitionLog::open(&dir, tp.to_string(), config, clean, now, &self.handles)
                    .map_err(|e| io::Error::other(e.to_string()))?;
            if report.truncated_bytes > 0 || report.dropped_segments > 0 {
                tracing::warn!(
                    partition = %tp,
                    truncated_bytes = report.truncated_bytes,
                    dropped_segments = report.dropped_segments,
                    "recovered partition log: cut a damaged tail"
                );
            }
            partitions.insert(tp.clone(), Arc::new(Partition::new(tp, topic_id, log)));
        }
        Ok(())
    }

    /// Finds the partition's directory, or picks the log dir holding the fewest partitions
    /// for a new one. Returns it with whether that log dir shut down cleanly.
    fn place(&self, tp: &TopicPartition, topic_id: Uuid) -> io::Result<(PathBuf, bool)> {
        let name = tp.to_string();
        for (i, dir) in self.dirs.iter().enumerate() {
            let candidate = dir.join(&name);
            if candidate.is_dir() {
                return Ok((candidate, self.clean_shutdown[i]));
            }
        }
        let mut best = 0;
        let mut fewest = usize::MAX;
        // With one log dir there is nothing to choose, and counting would stat every
        // partition directory for each new partition.
        let choosing = self.dirs.len() > 1;
        for (i, dir) in self.dirs.iter().enumerate().filter(|_| choosing) {
            let count = fs::read_dir(dir)?
                .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
                .count();
            if count < fewest {
                fewest = count;
                best = i;
            }
        }
        let path = self.dirs[best].join(&name);
        fs::create_dir_all(&path)?;
        fs::write(
            path.join(PARTITION_METADATA_FILE),
            format!("version: 0\ntopic_id: {topic_id}\n"),
        )?;
        Ok((path, true))
    }

    fn set_aside_strays(
        &self,
        wanted: &HashMap<TopicPartition, (Uuid, LogConfig)>,
    ) -> io::Result<()> {
        for dir in &self.dirs {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                if !entry.path().is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with("__cluster_metadata") || name.ends_with("-stray") {
                    continue;
                }
                let Some((topic, partition)) = parse_partition_dir(&name) else {
                    continue;
                };
                let tp = TopicPartition {
                    topic: topic.to_string(),
                    partition,
                };
                let known = wanted
                    .get(&tp)
                    .is_some_and(|(id, _)| read_partition_topic_id(&entry.path()) == Some(*id));
                if !known {
                    let aside = dir.join(format!("{name}.{}-stray", Uuid::new_v4().simple()));
                    tracing::warn!(dir = %entry.path().display(), moved_to = %aside.display(),
                        "partition directory is not in the metadata; setting it aside");
                    fs::rename(entry.path(), aside)?;
                }
            }
        }
        Ok(())
    }

    /// Applies retention to every partition; returns how many segments were deleted.
    pub fn apply_retention(&self) -> usize {
        let now = now_ms();
        let mut deleted = 0;
        for p in self.all() {
            match p.log.lock().apply_retention(now) {
                Ok(n) => deleted += n,
                Err(e) => tracing::error!(partition = %p.id, error = %e, "retention failed"),
            }
        }
        deleted
    }

    /// Compacts the partitions whose cleanup.policy includes compact and whose dirty share
    /// (or a tombstone due for removal) calls for it; see `cleaner`. A partition that fails
    /// is logged and counted, and the others still run.
    pub fn clean_compacted(&self, now_ms: i64) -> CleanStats {
        let mut stats = CleanStats::default();
        for p in self.all() {
            if self.closing.load(Ordering::Relaxed) {
                break;
            }
            match cleaner::clean_partition(&p.log, now_ms, &self.closing) {
                Ok(Some(s)) => {
                    tracing::debug!(partition = %p.id, ?s, "cleaned partition log");
                    stats.add(&s);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(partition = %p.id, error = %e, "log cleaning failed");
                    stats.partitions_failed += 1;
                }
            }
        }
        stats
    }

    /// Flushes the partitions whose flush.ms has passed, and records rolled segments whose
    /// background flush finished.
    pub fn flush_due(&self) {
        let now = now_ms();
        for p in self.all() {
            let mut log = p.log.lock();
            if let Err(e) = log.reap_finished_flushes() {
                tracing::error!(partition = %p.id, error = %e, "flushing a rolled segment failed");
            }
            if log.flush_due(now) {
                if let Err(e) = log.flush(now) {
                    tracing::error!(partition = %p.id, error = %e, "flush failed");
                }
            }
        }
    }

    /// Flushes and closes every partition, then marks each log dir as cleanly shut down.
    pub fn close(&self) -> io::Result<()> {
        self.closing.store(true, Ordering::Relaxed);
        let now = now_ms();
        let mut failed = false;
        for p in self.all() {
            if let Err(e) = p.log.lock().close(now) {
                tracing::error!(partition = %p.id, error = %e, "closing partition failed");
                failed = true;
            }
        }
        if !failed {
            for dir in &self.dirs {
                fs::write(dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
            }
        }
        Ok(())
    }
}
