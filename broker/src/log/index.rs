//! Sparse per-segment indexes, in Kafka's file formats: `.index` maps a relative offset to a
//! byte position, `.timeindex` maps a max timestamp to a relative offset. Both are kept in
//! memory and appended to their files; a file that fails its checks on load is rebuilt
//! from the segment's log rather than trusted.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

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
    path: PathBuf,
    file: File,
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
    /// Opens the file and reads its entries without judging them; `None` entries mean the
    /// file's length is not a whole number of entries, i.e. it is damaged.
    pub fn open(path: &Path) -> io::Result<(Index<E>, bool)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let whole = raw.len() % E::SIZE == 0;
        let entries = raw.chunks_exact(E::SIZE).map(E::decode).collect();
        Ok((
            Index {
                path: path.to_path_buf(),
                file,
                entries,
            },
            whole,
        ))
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    pub fn append(&mut self, entry: E) -> io::Result<()> {
        let mut buf = Vec::with_capacity(E::SIZE);
        entry.encode(&mut buf);
        self.file.write_all(&buf)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Drops every entry and empties the file, before a rebuild.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.entries.clear();
        Ok(())
    }

    /// Keeps only the first `len` entries.
    pub fn truncate_entries(&mut self, len: usize) -> io::Result<()> {
        if len < self.entries.len() {
            self.entries.truncate(len);
            self.file.set_len((len * E::SIZE) as u64)?;
        }
        Ok(())
    }

    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file; the open handle follows it.
    pub fn rename(&mut self, to: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, to)?;
        self.path = to.to_path_buf();
        Ok(())
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
        {
            let (mut idx, whole) = Index::<OffsetEntry>::open(&path).unwrap();
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
        let (idx, whole) = Index::<OffsetEntry>::open(&path).unwrap();
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
        let (_, whole) = Index::<TimeEntry>::open(&path).unwrap();
        assert!(!whole);
    }
}
