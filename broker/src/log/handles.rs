//! A bounded, process-wide cache of open segment files, shared by every partition log.
//!
//! A broker holding 100,000 partitions cannot keep three descriptors open per segment
//! (`.log`, `.index`, `.timeindex`): it would run out of descriptors long before. So a
//! segment holds only its files' names (`CachedFile`) and asks this cache for a handle
//! when it reads or writes; at most `capacity` files stay open, and the one least
//! recently used (CLOCK's approximation of it) is closed to make room.
//!
//! Handles are `Arc<File>`: a reader or a background fsync that holds one keeps it open
//! even if the cache evicts it meanwhile, so an eviction never fails an operation in
//! flight. The descriptor closes when the last holder lets go.
//!
//! Why closing and reopening is safe: every write is positional (`disk::write_all_at`),
//! nothing is buffered in user space, and a reopen never truncates or appends. An fsync
//! through a reopened handle still reports a writeback error no descriptor has seen yet
//! (Linux 4.16+ reports unseen errors to new openers).

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::disk;

/// The smallest capacity the automatic default picks.
const MIN_AUTO_CAPACITY: usize = 64;

/// The open files of every segment of every partition log, at most `capacity` of them.
pub struct HandleCache {
    capacity: usize,
    next_id: AtomicU64,
    state: RwLock<State>,
}

struct State {
    /// File id → its place in `slots`.
    by_id: HashMap<u64, usize>,
    slots: Vec<Slot>,
    /// CLOCK's hand: the slot the next eviction looks at first.
    hand: usize,
}

struct Slot {
    id: u64,
    file: Arc<File>,
    /// Set on every use, cleared as the hand passes: a slot is evicted when the hand finds
    /// it unused since its last pass.
    referenced: AtomicBool,
}

impl fmt::Debug for HandleCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleCache")
            .field("capacity", &self.capacity)
            .field("open", &self.open_count())
            .finish()
    }
}

impl HandleCache {
    /// A cache keeping at most `capacity` (at least one) files open.
    pub fn new(capacity: usize) -> Arc<HandleCache> {
        let capacity = capacity.max(1);
        Arc::new(HandleCache {
            capacity,
            next_id: AtomicU64::new(0),
            state: RwLock::new(State {
                by_id: HashMap::new(),
                slots: Vec::new(),
                hand: 0,
            }),
        })
    }

    /// The capacity for `log.max.open.files`: the configured one, or by default half the
    /// process's soft RLIMIT_NOFILE (the other half is left for sockets and everything
    /// else), at least `MIN_AUTO_CAPACITY`.
    pub fn capacity_for(configured: Option<usize>) -> usize {
        configured.unwrap_or_else(|| match nofile_soft_limit() {
            Some(limit) => (limit / 2).max(MIN_AUTO_CAPACITY as u64) as usize,
            None => 4096,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many files the cache holds open now (holders of evicted handles aside).
    pub fn open_count(&self) -> usize {
        self.state.read().slots.len()
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The handle of file `id`, opened with `open` if the cache does not hold it.
    fn get(&self, id: u64, open: impl FnOnce() -> io::Result<File>) -> io::Result<Arc<File>> {
        {
            let state = self.state.read();
            if let Some(&i) = state.by_id.get(&id) {
                let slot = &state.slots[i];
                slot.referenced.store(true, Ordering::Relaxed);
                return Ok(slot.file.clone());
            }
        }
        // Opened outside the lock: an open can be slow, and other files stay usable.
        let file = Arc::new(open()?);
        let evicted = {
            let mut state = self.state.write();
            if let Some(&i) = state.by_id.get(&id) {
                // Someone opened it meanwhile; keep theirs so there is one handle per file.
                return Ok(state.slots[i].file.clone());
            }
            state.insert(id, file.clone(), self.capacity)
        };
        // Closed outside the lock, as closing can wait on the file system.
        drop(evicted);
        Ok(file)
    }

    /// The handle of file `id` if the cache holds it open.
    fn cached(&self, id: u64) -> Option<Arc<File>> {
        let state = self.state.read();
        state.by_id.get(&id).map(|&i| state.slots[i].file.clone())
    }

    /// Closes file `id` (unless someone still holds its handle).
    fn forget(&self, id: u64) {
        let removed = self.state.write().remove(id);
        drop(removed);
    }
}

impl State {
    /// Adds a handle, returning the one evicted to make room, if any.
    fn insert(&mut self, id: u64, file: Arc<File>, capacity: usize) -> Option<Arc<File>> {
        let slot = Slot {
            id,
            file,
            referenced: AtomicBool::new(true),
        };
        if self.slots.len() < capacity {
            self.by_id.insert(id, self.slots.len());
            self.slots.push(slot);
            return None;
        }
        // Every referenced slot passed gets its bit cleared, so within two turns of the
        // hand some slot is free to go.
        loop {
            let i = self.hand % self.slots.len();
            self.hand = (i + 1) % self.slots.len();
            if self.slots[i].referenced.swap(false, Ordering::Relaxed) {
                continue;
            }
            let old = std::mem::replace(&mut self.slots[i], slot);
            self.by_id.remove(&old.id);
            self.by_id.insert(id, i);
            return Some(old.file);
        }
    }

    fn remove(&mut self, id: u64) -> Option<Arc<File>> {
        let i = self.by_id.remove(&id)?;
        let old = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.by_id.insert(moved.id, i);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
        Some(old.file)
    }
}

/// The soft limit on open descriptors of this process.
fn nofile_soft_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// How a file is opened when the cache does not hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// The file must exist (a `.log`: the segment created it, and a missing one is an
    /// error, never silently replaced by an empty file).
    Existing,
    /// The file is created on its first write (indexes, which most small segments never
    /// need, so a new partition costs one file, not three).
    CreateOnWrite,
}

/// One file of a segment: its name and its place in the handle cache. Dropping it closes
/// its cached handle.
pub struct CachedFile {
    cache: Arc<HandleCache>,
    id: u64,
    path: PathBuf,
    reopen: Reopen,
}

impl fmt::Debug for CachedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedFile")
            .field("path", &self.path)
            .field("reopen", &self.reopen)
            .finish()
    }
}

impl CachedFile {
    /// Names a file without opening it.
    pub fn new(cache: &Arc<HandleCache>, path: PathBuf, reopen: Reopen) -> CachedFile {
        CachedFile {
            id: cache.new_id(),
            cache: cache.clone(),
            path,
            reopen,
        }
    }

    /// Creates the file empty (cutting any file of that name) and caches its handle.
    pub fn create(cache: &Arc<HandleCache>, path: PathBuf, reopen: Reopen) -> io::Result<Self> {
        let file = CachedFile::new(cache, path, reopen);
        cache.get(file.id, || disk::create(&file.path))?;
        Ok(file)
    }

    /// A handle for reading and writing, reopening the file if it was evicted; a file
    /// that is `CreateOnWrite` is created if missing.
    pub fn handle(&self) -> io::Result<Arc<File>> {
        let create = self.reopen == Reopen::CreateOnWrite;
        self.cache.get(self.id, || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .open(&self.path)
        })
    }

    /// A handle if the file exists, `None` if it does not (an index never written).
    pub fn existing_handle(&self) -> io::Result<Option<Arc<File>>> {
        if let Some(file) = self.cache.cached(self.id) {
            return Ok(Some(file));
        }
        let opened = self.cache.get(self.id, || {
            OpenOptions::new().read(true).write(true).open(&self.path)
        });
        match opened {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the file was renamed to `to` (a cached handle follows the rename by
    /// itself; this is for reopening).
    pub fn set_path(&mut self, to: PathBuf) {
        self.path = to;
    }

    /// Closes the cached handle now, before the file is removed, so its space is freed.
    pub fn close(&self) {
        self.cache.forget(self.id);
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        self.cache.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn files(dir: &Path, cache: &Arc<HandleCache>, n: usize) -> Vec<CachedFile> {
        (0..n)
            .map(|i| {
                CachedFile::create(cache, dir.join(format!("{i}.log")), Reopen::Existing)
                    .expect("create")
            })
            .collect()
    }

    #[test]
    fn never_holds_more_than_its_capacity_and_reopens_evicted_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(4);
        let all = files(dir.path(), &cache, 10);
        for (i, f) in all.iter().enumerate() {
            use std::os::unix::fs::FileExt;
            f.handle().unwrap().write_all_at(&[i as u8], 0).unwrap();
            assert!(cache.open_count() <= 4);
        }
        for (i, f) in all.iter().enumerate() {
            let mut byte = [0u8; 1];
            (&*f.handle().unwrap()).read_exact(&mut byte).unwrap();
            assert_eq!(byte[0], i as u8, "reopened without truncation");
        }
        assert_eq!(cache.open_count(), 4);
        drop(all);
        assert_eq!(cache.open_count(), 0, "dropping a file closes its handle");
    }

    #[test]
    fn a_held_handle_survives_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(1);
        let all = files(dir.path(), &cache, 2);
        let held = all[0].handle().unwrap();
        all[1].handle().unwrap();
        assert!(cache.cached(all[0].id).is_none(), "evicted");
        use std::os::unix::fs::FileExt;
        held.write_all_at(b"x", 0).unwrap();
        assert_eq!(std::fs::read(all[0].path()).unwrap(), b"x");
    }

    #[test]
    fn recently_used_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(3);
        let abc = files(dir.path(), &cache, 3);
        let more = |name: &str| {
            CachedFile::create(&cache, dir.path().join(name), Reopen::Existing).expect("create")
        };
        // All three were just used: the hand clears them in a turn, then takes the first.
        let d = more("d.log");
        assert!(cache.cached(abc[0].id).is_none());
        // `b` is used again, so the next miss passes it over and takes `c`.
        abc[1].handle().unwrap();
        let e = more("e.log");
        assert!(cache.cached(abc[1].id).is_some());
        assert!(cache.cached(abc[2].id).is_none());
        assert!(cache.cached(d.id).is_some() && cache.cached(e.id).is_some());
        assert_eq!(cache.open_count(), 3);
    }

    #[test]
    fn create_on_write_files_appear_only_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(8);
        let path = dir.path().join("0.index");
        let index = CachedFile::new(&cache, path.clone(), Reopen::CreateOnWrite);
        assert!(index.existing_handle().unwrap().is_none());
        assert!(!path.exists());
        index.handle().unwrap();
        assert!(path.exists());
        let log = CachedFile::new(&cache, dir.path().join("0.log"), Reopen::Existing);
        assert!(
            log.handle().is_err(),
            "a missing log is an error, not a new file"
        );
    }

    #[test]
    fn automatic_capacity_is_half_the_descriptor_limit() {
        let cap = HandleCache::capacity_for(None);
        assert!(cap >= MIN_AUTO_CAPACITY);
        if let Some(limit) = nofile_soft_limit() {
            assert_eq!(cap as u64, (limit / 2).max(MIN_AUTO_CAPACITY as u64));
        }
        assert_eq!(HandleCache::capacity_for(Some(10)), 10);
    }

    #[test]
    fn log_max_open_files_is_read_from_the_broker_config() {
        use crate::config::{BrokerConfig, Properties};
        let parse = |value: Option<&str>| {
            let mut props = Properties::new();
            if let Some(v) = value {
                props.insert("log.max.open.files".into(), v.into());
            }
            BrokerConfig::from_properties(props).map(|(c, _)| c.log_max_open_files)
        };
        assert_eq!(parse(None).unwrap(), None, "automatic by default");
        assert_eq!(parse(Some("-1")).unwrap(), None);
        assert_eq!(parse(Some("20000")).unwrap(), Some(20_000));
        assert!(parse(Some("0")).is_err());
        assert!(parse(Some("many")).is_err());
    }
}
