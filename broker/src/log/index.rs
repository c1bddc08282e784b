//! Sparse per-segment indexes, in Kafka's file formats: `.index` maps a relative offset to a
//! byte position, `.timeindex` maps a max timestamp to a relative offset. Both are kept in
//! memory and appended to their files; a file that fails its checks on load is rebuilt
//! from the segment's log rather than trusted.
//!
//! The files are not kept open: they are read once on load, and written through the
//! shared handle cache. A file is created by its first entry, so a segment that never
//! grows past `index.interval.bytes` has none.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::disk::{self, WriteError};
use super::handles::{CachedFile, HandleCache, Reopen};
use super::segment::remove_if_present;

/// One `.index` entry: (offset - segment base, byte position in the `.log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One `.timeindex` entry: (max timestamp so far, offset - segment base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// An index file plus its entries. `E` is one of the two entry kinds above.
#[derive(Debug)]
pub struct Index<E> {
    file: CachedFile,
    entries: Vec<E>,
}

/// The fixed-width encoding of an entry.
pub trait Entry: Copy + Sized {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

impl<E: Entry> Index<E> {
    /// Reads the file's entries without judging them (a missing file is an empty index);
    /// `false` beside them means the file's length is not a whole number of entries, i.e.
    /// it is damaged.
    pub fn open(path: &Path, handles: &Arc<HandleCache>) -> io::Result<(Index<E>, bool)> {
        let raw = match fs::read(path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let whole = raw.len() % E::SIZE == 0;
        let entries = raw.chunks_exact(E::SIZE).map(E::decode).collect();
        let file = CachedFile::new(handles, path.to_path_buf(), Reopen::CreateOnWrite);
        Ok((Index { file, entries }, whole))
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    /// Adds an entry, in memory only once it is in the file; a failed write is cut off
    /// the file again (or reported as unrepaired when that fails too).
    pub fn append(&mut self, entry: E) -> Result<(), WriteError> {
        let mut buf = Vec::with_capacity(E::SIZE);
        entry.encode(&mut buf);
        let file = self.file.handle().map_err(WriteError::RolledBack)?;
        disk::append_at(&file, &[&buf], self.file_len())?;
        self.entries.push(entry);
        Ok(())
    }

    fn file_len(&self) -> u64 {
        (self.entries.len() * E::SIZE) as u64
    }

    /// Drops every entry and empties the file, before a rebuild.
    pub fn clear(&mut self) -> io::Result<()> {
        self.entries.clear();
        if let Some(file) = self.file.existing_handle()? {
            disk::set_len(&file, 0)?;
        }
        Ok(())
    }

    /// Keeps only the first `len` entries.
    pub fn truncate_entries(&mut self, len: usize) -> io::Result<()> {
        if len < self.entries.len() {
            self.entries.truncate(len);
            if let Some(file) = self.file.existing_handle()? {
                disk::set_len(&file, self.file_len())?;
            }
        }
        Ok(())
    }

    pub fn flush(&self) -> io::Result<()> {
        match self.file.existing_handle()? {
            Some(file) => disk::sync_data(&file),
            None => Ok(()),
        }
    }

    /// A handle for fsyncing the file elsewhere; `None` while the file does not exist.
    pub fn sync_handle(&self) -> io::Result<Option<Arc<fs::File>>> {
        self.file.existing_handle()
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Renames the file. An index never written has no file; then any file already under
    /// the new name goes, so it cannot pass for this index later.
    pub fn rename(&mut self, to: &Path) -> io::Result<()> {
        match fs::rename(self.file.path(), to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.entries.is_empty() => {
                remove_if_present(to)?;
            }
            Err(e) => return Err(e),
        }
        self.file.set_path(to.to_path_buf());
        Ok(())
    }

    /// Closes the file's handle and removes the file.
    pub fn delete(&self) -> io::Result<()> {
        self.file.close();
        remove_if_present(self.file.path())
    }
}

impl Index<OffsetEntry> {
    /// The last entry at or below `relative_offset`: where a scan for it may start.
    pub fn floor(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let idx = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    /// Entries must rise strictly in offset and position and stay inside the log.
    pub fn is_sane(&self, log_size: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && self
                .entries
                .iter()
                .all(|e| (e.position as u64) < log_size.max(1))
    }
}

impl Index<TimeEntry> {
    /// The last entry whose timestamp is below `timestamp`: records before its offset are
    /// all older than `timestamp`, so a search for it may start there.
    pub fn floor_below(&self, timestamp: i64) -> Option<TimeEntry> {
        let idx = self.entries.partition_point(|e| e.timestamp < timestamp);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn is_sane(&self, max_relative_offset: u32) -> bool {
        self.entries.windows(2).all(|w| {
            w[0].timestamp <= w[1].timestamp && w[0].relative_offset <= w[1].relative_offset
        }) && self
            .entries
            .iter()
            .all(|e| e.relative_offset <= max_relative_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_floors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let handles = HandleCache::new(4);
        {
            let (mut idx, whole) = Index::<OffsetEntry>::open(&path, &handles).unwrap();
            assert!(whole);
            idx.append(OffsetEntry {
                relative_offset: 0,
                position: 0,
            })
            .unwrap();
            idx.append(OffsetEntry {
                relative_offset: 10,
                position: 4096,
            })
            .unwrap();
        }
        let (idx, whole) = Index::<OffsetEntry>::open(&path, &handles).unwrap();
        assert!(whole);
        assert_eq!(idx.floor(5).unwrap().position, 0);
        assert_eq!(idx.floor(10).unwrap().position, 4096);
        assert!(idx.is_sane(5000));
        assert!(!idx.is_sane(100));
    }

    #[test]
    fn partial_entry_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        std::fs::write(&path, [0u8; 13]).unwrap();
        let (_, whole) = Index::<TimeEntry>::open(&path, &HandleCache::new(4)).unwrap();
        assert!(!whole);
    }

    #[test]
    fn a_failed_entry_is_neither_in_memory_nor_in_the_file() {
        use crate::log::disk::faults::{self, Faults};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let handles = HandleCache::new(4);
        let (mut idx, _) = Index::<OffsetEntry>::open(&path, &handles).unwrap();
        let entry = |n: u32| OffsetEntry {
            relative_offset: n,
            position: n * 100,
        };
        idx.append(entry(1)).unwrap();
        // Half an entry fits: the old append-mode write left those bytes in the file.
        faults::set(Faults {
            write_budget: Some(3),
            ..Faults::default()
        });
        let failed = idx.append(entry(2)).unwrap_err();
        faults::clear();
        assert!(!failed.is_unrepaired());
        assert_eq!(idx.entries(), &[entry(1)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        idx.append(entry(3)).unwrap();
        drop(idx);
        let (idx, whole) = Index::<OffsetEntry>::open(&path, &handles).unwrap();
        assert!(whole);
        assert_eq!(idx.entries(), &[entry(1), entry(3)]);

        // When the cut fails too, the caller hears it.
        let (mut idx, _) = Index::<OffsetEntry>::open(&path, &handles).unwrap();
        faults::set(Faults {
            write_budget: Some(3),
            fail_set_len: true,
            ..Faults::default()
        });
        let failed = idx.append(entry(4)).unwrap_err();
        faults::clear();
        assert!(failed.is_unrepaired());
        assert_eq!(idx.entries().len(), 2, "never in memory");
    }

    #[test]
    fn an_index_never_written_has_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let handles = HandleCache::new(4);
        let (mut idx, whole) = Index::<TimeEntry>::open(&path, &handles).unwrap();
        assert!(whole);
        idx.flush().unwrap();
        idx.truncate_entries(0).unwrap();
        assert!(!path.exists());
        // A stale file under the new name must not pass for this empty index.
        let to = dir.path().join("0.timeindex.cleaned");
        std::fs::write(&to, [7u8; 12]).unwrap();
        idx.rename(&to).unwrap();
        assert!(!to.exists());
        idx.delete().unwrap();
    }
}
