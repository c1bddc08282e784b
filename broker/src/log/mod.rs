//! Partition logs on disk: which partitions this broker holds, where, and the background
//! work on them (retention, time-based flush, compaction). The metadata image says which partitions
//! exist; `LogManager::sync` makes the disk agree.

pub mod batch;
pub mod cleaner;
pub mod dirs;
pub mod disk;
pub mod epoch_cache;
pub mod handles;
pub mod index;
pub mod partition;
pub mod recompress;
pub mod record_checks;
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
use crate::error::ApiError;
use crate::metadata::MetadataImage;
use crate::replication::ReplicaRole;
pub use cleaner::CleanStats;
pub use dirs::LogDir;
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
    /// The log directory holding it: when that goes offline, so does the partition.
    pub log_dir: Arc<LogDir>,
    pub log: Mutex<PartitionLog>,
    /// Leader or follower, and what the leader knows of its followers.
    pub replica: Mutex<ReplicaRole>,
    high_watermark: watch::Sender<i64>,
    log_end: watch::Sender<i64>,
}

impl Partition {
    fn new(
        id: TopicPartition,
        topic_id: Uuid,
        log_dir: Arc<LogDir>,
        log: PartitionLog,
    ) -> Partition {
        let leo = log.log_end_offset();
        Partition {
            id,
            topic_id,
            log_dir,
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

    /// KAFKA_STORAGE_ERROR while the partition's log directory is offline: nothing is
    /// read from or written to a log that may hold bytes it does not account for.
    pub fn check_online(&self) -> Result<(), ApiError> {
        if !self.log_dir.is_offline() {
            return Ok(());
        }
        let reason = self.log_dir.offline_reason().unwrap_or_default();
        Err(ApiError::new(
            kafka_protocol::error::ResponseError::KafkaStorageError,
            format!(
                "{} is offline: log directory {} failed ({reason})",
                self.id,
                self.log_dir.path.display()
            ),
        ))
    }

    /// Takes the partition's log directory offline after a storage error on it.
    pub fn report_storage_error(&self, error: &dyn std::fmt::Display) {
        self.log_dir
            .fail(&format!("partition {}: {error}", self.id));
    }

    /// Wakes everyone waiting on the high watermark without changing it, so they re-check
    /// what else they depend on (the role, after a leadership change).
    pub fn poke(&self) {
        self.high_watermark.send_modify(|_| {});
        self.log_end.send_modify(|_| {});
    }
}

/// New partition logs are opened by this many threads at once: enough to overlap the
/// file-system latency of creating directories and files, few enough for a small machine.
const OPEN_THREADS: usize = 4;
/// Opened partitions are published in chunks of this many, so the request handlers, which
/// read the partition map on every request, never wait long for its write lock.
const PUBLISH_CHUNK: usize = 256;

/// A log directory as DescribeLogDirs reports it.
#[derive(Debug, Clone)]
pub struct LogDirDescription {
    pub path: PathBuf,
    /// Why the directory is offline, if it is.
    pub offline_reason: Option<String>,
    /// (partition, size in bytes) of every partition held there.
    pub partitions: Vec<(TopicPartition, u64)>,
    pub total_bytes: Option<u64>,
    pub usable_bytes: Option<u64>,
}

/// The topics the last `LogManager::sync` applied, and those it must look at again.
#[derive(Debug, Default)]
struct Synced {
    topics: std::collections::BTreeMap<String, Arc<crate::metadata::TopicImage>>,
    /// Topics with a partition that could not be opened (its directory is offline).
    retry: std::collections::HashSet<String>,
    /// The topic defaults (static, with dynamic broker configs on top) the last sync used;
    /// when they change, every topic is resolved again.
    defaults: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<Arc<LogDir>>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    clean_shutdown: Vec<bool>,
    topic_defaults: std::collections::BTreeMap<&'static str, String>,
    /// Set by `close`, so a cleaning pass still running swaps nothing in after it.
    closing: AtomicBool,
    /// What the last sync saw; held for the whole of a sync, so there is one at a time
    /// (start-up and the metadata follower both sync, and two at once could open the same
    /// log twice).
    synced: Mutex<Synced>,
    /// Held while a new partition's directory is chosen and counted.
    placing: Mutex<()>,
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

/// Size and free space of the file system holding `dir`.
fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some((stat.f_blocks as u64 * block, stat.f_bavail as u64 * block))
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
            dirs: config
                .log_dirs
                .iter()
                .map(|d| Arc::new(LogDir::new(d.clone())))
                .collect(),
            partitions: RwLock::new(HashMap::new()),
            clean_shutdown,
            topic_defaults: config.topic_defaults.clone(),
            closing: AtomicBool::new(false),
            synced: Mutex::new(Synced::default()),
            placing: Mutex::new(()),
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

    /// The partitions whose log directory is online: the ones background work may touch.
    fn online(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .values()
            .filter(|p| !p.log_dir.is_offline())
            .cloned()
            .collect()
    }

    pub fn log_dirs(&self) -> &[Arc<LogDir>] {
        &self.dirs
    }

    /// Kafka's `OfflineLogDirectoryCount`.
    pub fn offline_dir_count(&self) -> usize {
        self.dirs.iter().filter(|d| d.is_offline()).count()
    }

    /// (topic id, partition) of every partition in an offline log directory: what the
    /// broker's heartbeat tells the controller, so it moves their leadership away.
    pub fn offline_partitions(&self) -> Vec<(Uuid, i32)> {
        let mut out: Vec<(Uuid, i32)> = self
            .partitions
            .read()
            .values()
            .filter(|p| p.log_dir.is_offline())
            .map(|p| (p.topic_id, p.id.partition))
            .collect();
        out.sort_unstable();
        out
    }

    /// Makes the partitions on disk match the image: opens or creates the ones it places
    /// on broker `node_id`, updates their configs, and removes the ones it no longer has
    /// there. Directories found on disk that the image does not know are renamed aside
    /// (`-stray`), never deleted. The partition map is locked only briefly: creating ten
    /// thousand logs must not stall the requests that read it.
    pub fn sync(&self, image: &MetadataImage, node_id: i32, startup: bool) -> io::Result<()> {
        let mut synced = self.synced.lock();
        let now = now_ms();
        // Only topics whose image changed since the last sync (or that had a partition
        // left unopened) are looked at: resolving every partition of every topic on each
        // metadata change made creating many small topics quadratic.
        let mut wanted: HashMap<TopicPartition, (Uuid, LogConfig)> = HashMap::new();
        let defaults = crate::config::dynamic::layered_topic_defaults(
            &self.topic_defaults,
            crate::config::dynamic::DynamicLayer::of(image, node_id),
        );
        let defaults_changed = defaults != synced.defaults;
        if defaults_changed && !startup {
            tracing::info!("dynamic broker configs changed the topic defaults");
        }
        for topic in image.topics.values() {
            let unchanged = synced
                .topics
                .get(&topic.name)
                .is_some_and(|seen| Arc::ptr_eq(seen, topic));
            if !startup && !defaults_changed && unchanged && !synced.retry.contains(&topic.name) {
                continue;
            }
            let config = LogConfig::resolve(&defaults, &topic.configs);
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

        let placed_here = |p: &Partition| {
            image.topics.get(&p.id.topic).is_some_and(|t| {
                t.topic_id == p.topic_id
                    && t.partitions
                        .get(&p.id.partition)
                        .is_some_and(|state| state.replicas.contains(&node_id))
            })
        };
        // Found under the read lock (a walk of every partition), removed under the write
        // lock: only syncs, one at a time, change the map's keys.
        let doomed: Vec<TopicPartition> = self
            .partitions
            .read()
            .iter()
            .filter(|(_, p)| !placed_here(p))
            .map(|(tp, _)| tp.clone())
            .collect();
        let gone: Vec<Arc<Partition>> = if doomed.is_empty() {
            Vec::new()
        } else {
            let mut partitions = self.partitions.write();
            doomed
                .iter()
                .filter_map(|tp| partitions.remove(tp))
                .collect()
        };
        for p in gone {
            let dir = p.log.lock().dir().to_path_buf();
            tracing::info!(partition = %p.id, "deleting partition log");
            p.log_dir.remove_partition();
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(partition = %p.id, error = %e, "cannot delete partition log");
                    p.report_storage_error(&e);
                }
            }
        }

        let mut to_open = Vec::new();
        {
            let partitions = self.partitions.read();
            for (tp, (topic_id, config)) in wanted {
                match partitions.get(&tp) {
                    Some(p) => {
                        let mut log = p.log.lock();
                        if *log.config() != config {
                            log.set_config(config);
                        }
                    }
                    None => to_open.push((tp, topic_id, config)),
                }
            }
        }
        let unopened = self.open_all(to_open, now);
        synced.topics = image.topics.clone();
        synced.retry = unopened.into_iter().map(|tp| tp.topic).collect();
        synced.defaults = defaults;
        Ok(())
    }

    /// Opens (or creates) logs on a few threads, publishing them in chunks. A partition
    /// that cannot be opened is logged and left out (its directory goes offline); the
    /// next sync tries again.
    fn open_all(
        &self,
        to_open: Vec<(TopicPartition, Uuid, LogConfig)>,
        now: i64,
    ) -> Vec<TopicPartition> {
        if to_open.is_empty() {
            return Vec::new();
        }
        let unopened = Mutex::new(Vec::new());
        let total = to_open.len();
        let started = std::time::Instant::now();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let to_open = &to_open;
        std::thread::scope(|scope| {
            for _ in 0..OPEN_THREADS.min(total) {
                scope.spawn(|| {
                    let mut opened = Vec::with_capacity(PUBLISH_CHUNK);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((tp, topic_id, config)) = to_open.get(i) else {
                            break;
                        };
                        match self.open_one(tp, *topic_id, config.clone(), now) {
                            Ok(p) => opened.push(p),
                            Err(e) => {
                                tracing::error!(partition = %tp, error = %e, "cannot open partition log");
                                unopened.lock().push(tp.clone());
                            }
                        }
                        if opened.len() >= PUBLISH_CHUNK {
                            self.publish(&mut opened);
                        }
                    }
                    self.publish(&mut opened);
                });
            }
        });
        if total > PUBLISH_CHUNK {
            tracing::info!(
                partitions = total,
                took_ms = started.elapsed().as_millis() as u64,
                "opened partition logs"
            );
        }
        unopened.into_inner()
    }

    fn publish(&self, opened: &mut Vec<Arc<Partition>>) {
        if opened.is_empty() {
            return;
        }
        let mut partitions = self.partitions.write();
        for p in opened.drain(..) {
            partitions.insert(p.id.clone(), p);
        }
    }

    fn open_one(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
        config: LogConfig,
        now: i64,
    ) -> io::Result<Arc<Partition>> {
        let (log_dir, dir, clean) = self.place(tp, topic_id)?;
        let opened = PartitionLog::open(&dir, tp.to_string(), config, clean, now, &self.handles);
        let (log, report) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                log_dir.remove_partition();
                log_dir.fail(&format!("opening {tp}: {e}"));
                return Err(io::Error::other(e.to_string()));
            }
        };
        if report.truncated_bytes > 0 || report.dropped_segments > 0 {
            tracing::warn!(
                partition = %tp,
                truncated_bytes = report.truncated_bytes,
                dropped_segments = report.dropped_segments,
                "recovered partition log: cut a damaged tail"
            );
        }
        Ok(Arc::new(Partition::new(tp.clone(), topic_id, log_dir, log)))
    }

    /// Finds the partition's directory, or picks the online log dir holding the fewest
    /// partitions for a new one, and counts the partition there (the caller uncounts it
    /// if the open fails). Returns it with whether that log dir shut down cleanly.
    /// A partition already on an offline directory is not opened (nor placed anew, which
    /// would fork its history): it waits for the directory to come back.
    fn place(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
    ) -> io::Result<(Arc<LogDir>, PathBuf, bool)> {
        let name = tp.to_string();
        for (i, dir) in self.dirs.iter().enumerate() {
            let candidate = dir.path.join(&name);
            if candidate.is_dir() {
                if dir.is_offline() {
                    return Err(io::Error::other(format!(
                        "log directory {} is offline",
                        dir.path.display()
                    )));
                }
                dir.add_partition();
                return Ok((dir.clone(), candidate, self.clean_shutdown[i]));
            }
        }
        let dir = {
            // Choosing and counting together: the opening threads place concurrently,
            // and choosing on counts not yet raised would send them all to one directory.
            let _one_at_a_time = self.placing.lock();
            let dir = self
                .dirs
                .iter()
                .filter(|d| !d.is_offline())
                .min_by_key(|d| d.partition_count())
                .ok_or_else(|| io::Error::other("every log directory is offline"))?;
            dir.add_partition();
            dir
        };
        let path = dir.path.join(&name);
        let created = fs::create_dir_all(&path).and_then(|()| {
            fs::write(
                path.join(PARTITION_METADATA_FILE),
                format!("version: 0\ntopic_id: {topic_id}\n"),
            )
        });
        if let Err(e) = created {
            dir.remove_partition();
            dir.fail(&format!("creating {name}: {e}"));
            // Nothing of it is usable: the next placement starts afresh.
            let _ = fs::remove_dir_all(&path);
            return Err(e);
        }
        Ok((dir.clone(), path, true))
    }

    fn set_aside_strays(
        &self,
        wanted: &HashMap<TopicPartition, (Uuid, LogConfig)>,
    ) -> io::Result<()> {
        for dir in &self.dirs {
            for entry in fs::read_dir(&dir.path)? {
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
                    let aside = dir
                        .path
                        .join(format!("{name}.{}-stray", Uuid::new_v4().simple()));
                    tracing::warn!(dir = %entry.path().display(), moved_to = %aside.display(),
                        "partition directory is not in the metadata; setting it aside");
                    fs::rename(entry.path(), aside)?;
                }
            }
        }
        Ok(())
    }

    /// Probes every offline log directory; where a real write works again (space was
    /// freed), reopens its partitions with a full recovery, which cuts whatever a failed
    /// write left, and brings the directory back. Returns how many came back; the caller
    /// then re-applies the metadata image, so partitions that could not even be created
    /// get created and every role is restored.
    pub fn restore_offline_dirs(&self) -> usize {
        let mut restored = 0;
        for dir in self.dirs.iter().filter(|d| d.is_offline()) {
            if let Err(e) = dir.probe_writable() {
                tracing::debug!(log_dir = %dir.path.display(), error = %e, "log directory still unwritable");
                continue;
            }
            let held: Vec<Arc<Partition>> = self
                .all()
                .into_iter()
                .filter(|p| Arc::ptr_eq(&p.log_dir, dir))
                .collect();
            let reopened = held.iter().try_for_each(|p| reopen(p, &self.handles));
            match reopened {
                Ok(()) => {
                    dir.restore();
                    restored += 1;
                }
                Err(e) => {
                    tracing::warn!(log_dir = %dir.path.display(), error = %e, "log directory is writable again, but reopening its partitions failed")
                }
            }
        }
        restored
    }

    /// What DescribeLogDirs reports: each directory, its state, space and partitions.
    pub fn describe_dirs(&self) -> Vec<LogDirDescription> {
        let all = self.all();
        self.dirs
            .iter()
            .map(|dir| {
                let offline_reason = dir.offline_reason();
                let partitions = if offline_reason.is_some() {
                    Vec::new()
                } else {
                    all.iter()
                        .filter(|p| Arc::ptr_eq(&p.log_dir, dir))
                        .map(|p| (p.id.clone(), p.log.lock().size_bytes()))
                        .collect()
                };
                let space = disk_space(&dir.path);
                LogDirDescription {
                    path: dir.path.clone(),
                    offline_reason,
                    partitions,
                    total_bytes: space.map(|s| s.0),
                    usable_bytes: space.map(|s| s.1),
                }
            })
            .collect()
    }

    /// Applies retention to every partition; returns how many segments were deleted.
    pub fn apply_retention(&self) -> usize {
        let now = now_ms();
        let mut deleted = 0;
        for p in self.online() {
            let result = p.log.lock().apply_retention(now);
            match result {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::error!(partition = %p.id, error = %e, "retention failed");
                    p.report_storage_error(&e);
                }
            }
        }
        deleted
    }

    /// Compacts the partitions whose cleanup.policy includes compact and whose dirty share
    /// (or a tombstone due for removal) calls for it; see `cleaner`. A partition that fails
    /// is logged and counted, and the others still run.
    pub fn clean_compacted(&self, now_ms: i64) -> CleanStats {
        let mut stats = CleanStats::default();
        for p in self.online() {
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
    /// background flush finished. A failed fsync takes the directory offline: the kernel
    /// may have dropped the dirty pages, so a retry proves nothing.
    pub fn flush_due(&self) {
        let now = now_ms();
        for p in self.online() {
            let mut log = p.log.lock();
            let mut result = log.reap_finished_flushes();
            if result.is_ok() && log.flush_due(now) {
                result = log.flush(now);
            }
            drop(log);
            if let Err(e) = result {
                tracing::error!(partition = %p.id, error = %e, "flush failed");
                p.report_storage_error(&e);
            }
        }
    }

    /// Flushes and closes every partition, then marks each log dir whose partitions all
    /// closed as cleanly shut down. An offline directory is left as it is: its next start
    /// recovers it in full.
    pub fn close(&self) -> io::Result<()> {
        self.closing.store(true, Ordering::Relaxed);
        let now = now_ms();
        let mut failed = vec![false; self.dirs.len()];
        for p in self.all() {
            let i = self
                .dirs
                .iter()
                .position(|d| Arc::ptr_eq(d, &p.log_dir))
                .unwrap_or(0);
            if p.log_dir.is_offline() {
                failed[i] = true;
                continue;
            }
            if let Err(e) = p.log.lock().close(now) {
                tracing::error!(partition = %p.id, error = %e, "closing partition failed");
                failed[i] = true;
            }
        }
        for (dir, failed) in self.dirs.iter().zip(failed) {
            if !failed && !dir.is_offline() {
                fs::write(dir.path.join(CLEAN_SHUTDOWN_FILE), b"")?;
            }
        }
        Ok(())
    }
}

/// Replaces a partition's log with a freshly opened one (a full recovery from its
/// recovery point). Nothing writes meanwhile: the directory is still offline.
fn reopen(p: &Partition, handles: &Arc<handles::HandleCache>) -> io::Result<()> {
    let (dir, name, config) = {
        let log = p.log.lock();
        (
            log.dir().to_path_buf(),
            log.name.clone(),
            log.config().clone(),
        )
    };
    let (fresh, report) = PartitionLog::open(&dir, name, config, false, now_ms(), handles)
        .map_err(|e| io::Error::other(e.to_string()))?;
    if report.truncated_bytes > 0 || report.dropped_segments > 0 {
        tracing::warn!(
            partition = %p.id,
            truncated_bytes = report.truncated_bytes,
            dropped_segments = report.dropped_segments,
            "reopened partition log: cut bytes a failed write left"
        );
    }
    let leo = fresh.log_end_offset();
    // Lock order as everywhere: role, then log.
    let _role = p.replica.lock();
    *p.log.lock() = fresh;
    p.reset_end(leo);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Properties;
    use crate::controller::testkit::{cluster, with_partition};

    #[test]
    fn new_partitions_spread_over_the_log_dirs_though_opened_together() {
        let root = tempfile::tempdir().unwrap();
        let dirs = format!(
            "{},{}",
            root.path().join("a").display(),
            root.path().join("b").display()
        );
        let props: Properties = [("log.dirs".to_string(), dirs)].into_iter().collect();
        let (config, _) = BrokerConfig::from_properties(props).unwrap();
        let logs = LogManager::open(&config).unwrap();
        let mut image = cluster(&[0]);
        for p in 0..16 {
            with_partition(&mut image, "t", p, &[0], &[0], 0);
        }
        logs.sync(&image, 0, true).unwrap();
        assert_eq!(logs.all().len(), 16);
        let counts: Vec<usize> = logs
            .log_dirs()
            .iter()
            .map(|d| d.partition_count())
            .collect();
        assert_eq!(
            counts,
            vec![8, 8],
            "the opening threads must not all pick one dir"
        );
        for d in logs.log_dirs() {
            let on_disk = fs::read_dir(&d.path).unwrap().count();
            assert_eq!(on_disk, 8, "{}", d.path.display());
        }
    }
}
