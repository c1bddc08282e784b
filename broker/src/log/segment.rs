//! One segment of a partition log: the `.log` file of stored batches and its two indexes,
//! named by base offset as Kafka names them (`00000000000000000042.log`).
//!
//! Every write lands at `size`, the end of what the segment accounts for, and a write
//! that fails is cut off the file again, so the file never holds bytes past `size`. (With
//! append-mode writes, a full disk left a partial batch there, later batches landed behind
//! it and were acknowledged, and recovery then cut the log at the partial batch.) When the
//! cut itself fails the caller hears `WriteError::Unrepaired` and must write no more.
//!
//! No file is held open: handles come from the shared `HandleCache`.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::disk::{self, WriteError};
use super::handles::{CachedFile, HandleCache, Reopen};
use super::index::{Index, OffsetEntry, TimeEntry};

/// What opening a segment found and did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RecoveryReport {
    /// Bytes cut from the tail because they were torn or failed their CRC.
    pub truncated_bytes: u64,
    /// The indexes were rebuilt from the log.
    pub rebuilt_indexes: bool,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    log: CachedFile,
    size: u64,
    index: Index<OffsetEntry>,
    time_index: Index<TimeEntry>,
    /// One past the last offset stored here; `base_offset` while empty.
    next_offset: i64,
    /// Largest batch max timestamp stored here, -1 while empty.
    max_timestamp: i64,
    bytes_since_index: u64,
    index_interval: u64,
    /// Wall-clock time of the first append, for time-based rolling.
    first_append_ms: Option<i64>,
}

pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// The segment's three extensions: the log first, as recovery keys on it.
pub const EXTENSIONS: [&str; 3] = ["log", "index", "timeindex"];

/// The header at `pos` of a log whose content ends at `size`, or `None` if no whole
/// header fits before the end.
fn read_header(file: &File, pos: u64, size: u64) -> io::Result<Option<BatchHeader>> {
    if pos + HEADER_LEN as u64 > size {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, pos)?;
    Ok(BatchHeader::parse(&buf).ok())
}

impl Segment {
    /// Creates an empty segment: an empty `.log` (replacing any file of that name) and no
    /// index files, which come with their first entry. Index files left under these names
    /// (a crash during a delete) are removed, so they cannot pass for this segment's.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
        handles: &Arc<HandleCache>,
    ) -> io::Result<Segment> {
        Self::create_with_suffix(dir, base_offset, index_interval, "", handles)
    }

    /// `create`, with file names carrying `suffix` (`.cleaned`): the log cleaner builds
    /// its output there before swapping it in with `set_suffix`.
    pub fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
        suffix: &str,
        handles: &Arc<HandleCache>,
    ) -> io::Result<Segment> {
        let path = |ext| dir.join(format!("{}{suffix}", file_name(base_offset, ext)));
        remove_if_present(&path("index"))?;
        remove_if_present(&path("timeindex"))?;
        let log = CachedFile::create(handles, path("log"), Reopen::Existing)?;
        let (index, _) = Index::open(&path("index"), handles)?;
        let (time_index, _) = Index::open(&path("timeindex"), handles)?;
        Ok(Segment::holding(
            base_offset,
            index_interval,
            log,
            0,
            index,
            time_index,
        ))
    }

    /// A segment over its three files, `size` bytes of log, with nothing yet learned
    /// from them (the caller loads or recovers the tail).
    fn holding(
        base_offset: i64,
        index_interval: u64,
        log: CachedFile,
        size: u64,
        index: Index<OffsetEntry>,
        time_index: Index<TimeEntry>,
    ) -> Segment {
        Segment {
            base_offset,
            log,
            size,
            index,
            time_index,
            next_offset: base_offset,
            max_timestamp: -1,
            bytes_since_index: 0,
            index_interval,
            first_append_ms: None,
        }
    }

    /// Opens an existing segment. With `full_recovery` every batch is read and checked
    /// against its CRC, the tail is cut at the first bad one, and the indexes rebuilt;
    /// without it only the indexes are sanity-checked, and rebuilt if they fail.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
        full_recovery: bool,
        handles: &Arc<HandleCache>,
    ) -> io::Result<(Segment, RecoveryReport)> {
        let path = |ext| dir.join(file_name(base_offset, ext));
        let log = CachedFile::new(handles, path("log"), Reopen::Existing);
        let size = log.handle()?.metadata()?.len();
        let (index, index_whole) = Index::open(&path("index"), handles)?;
        let (time_index, time_whole) = Index::open(&path("timeindex"), handles)?;
        let mut segment =
            Segment::holding(base_offset, index_interval, log, size, index, time_index);
        let indexes_ok = index_whole
            && time_whole
            && segment.index.is_sane(size)
            && segment.time_index.is_sane(u32::MAX);
        let mut report = RecoveryReport::default();
        if full_recovery || !indexes_ok || !segment.load_tail()? {
            report = segment.recover()?;
        }
        Ok((segment, report))
    }

    /// Finds `next_offset` and `max_timestamp` by walking batch headers from the last index
    /// entry. Returns false when the walk does not end exactly at the file's end, which means
    /// the index or the log is damaged and a full recovery is needed.
    fn load_tail(&mut self) -> io::Result<bool> {
        let file = self.log.handle()?;
        let start = self.index.last().map(|e| e.position as u64).unwrap_or(0);
        self.max_timestamp = self.time_index.last().map(|e| e.timestamp).unwrap_or(-1);
        let mut pos = start;
        while pos < self.size {
            let Some(header) = read_header(&file, pos, self.size)? else {
                return Ok(false);
            };
            if pos + header.total_len() as u64 > self.size || header.base_offset < self.base_offset
            {
                return Ok(false);
            }
            self.next_offset = header.last_offset() + 1;
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
            pos += header.total_len() as u64;
        }
        if let Some(last) = self.index.last() {
            if self.base_offset + last.relative_offset as i64 >= self.next_offset {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads every batch, checks it, truncates at the first bad one, rebuilds the indexes.
    fn recover(&mut self) -> io::Result<RecoveryReport> {
        let file = self.log.handle()?;
        self.index.clear()?;
        self.time_index.clear()?;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.bytes_since_index = 0;
        let mut pos = 0u64;
        let mut buf = Vec::new();
        while pos < self.size {
            let Some(header) = read_header(&file, pos, self.size)? else {
                break;
            };
            let len = header.total_len() as u64;
            if pos + len > self.size || header.base_offset < self.next_offset {
                break;
            }
            buf.resize(len as usize, 0);
            file.read_exact_at(&mut buf, pos)?;
            if batch::verify_crc(&buf, &header).is_err() {
                break;
            }
            self.index_batch(&header, pos)?;
            self.next_offset = header.last_offset() + 1;
            pos += len;
        }
        let truncated = self.size - pos;
        if truncated > 0 {
            disk::set_len(&file, pos)?;
            disk::sync_data(&file)?;
            self.size = pos;
        }
        Ok(RecoveryReport {
            truncated_bytes: truncated,
            rebuilt_indexes: true,
        })
    }

    /// Adds index entries for a batch about to sit at `position`, every `index_interval`
    /// bytes: both entries or neither, and the segment's state moves only on success.
    fn index_batch(&mut self, header: &BatchHeader, position: u64) -> Result<(), WriteError> {
        let max_timestamp = self.max_timestamp.max(header.max_timestamp);
        let mut bytes_since_index = self.bytes_since_index;
        if bytes_since_index >= self.index_interval {
            let relative_offset = (header.base_offset - self.base_offset) as u32;
            self.index.append(OffsetEntry {
                relative_offset,
                position: position as u32,
            })?;
            if self.time_index.last().map(|e| e.timestamp) < Some(max_timestamp) {
                let timed = self.time_index.append(TimeEntry {
                    timestamp: max_timestamp,
                    relative_offset,
                });
                if let Err(e) = timed {
                    let keep = self.index.entries().len() - 1;
                    return Err(match (e, self.index.truncate_entries(keep)) {
                        (e, Ok(())) => e,
                        (
                            WriteError::RolledBack(write) | WriteError::Unrepaired { write, .. },
                            Err(repair),
                        ) => WriteError::Unrepaired { write, repair },
                    });
                }
            }
            bytes_since_index = 0;
        }
        self.bytes_since_index = bytes_since_index + header.total_len() as u64;
        self.max_timestamp = max_timestamp;
        Ok(())
    }

    /// Appends one batch, given as slices that together are exactly its bytes (so a patched
    /// header prefix and the producer's untouched remainder need no copy). On failure
    /// nothing of the batch stays, in the log or its indexes, unless the error says the
    /// cut failed (`WriteError::Unrepaired`).
    pub fn append(
        &mut self,
        parts: &[&[u8]],
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len != header.total_len() {
            return Err(WriteError::RolledBack(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "batch of {len} bytes, but its header says {}",
                    header.total_len()
                ),
            )));
        }
        let position = self.size;
        let file = self.log.handle().map_err(WriteError::RolledBack)?;
        let end = disk::append_at(&file, parts, position)?;
        // The batch would be readable without its index entry, but the caller is told the
        // append failed, so it must not stay.
        match self.index_batch(header, position) {
            Ok(()) => {}
            Err(WriteError::RolledBack(cause)) => return Err(disk::undo(&file, position, cause)),
            Err(unrepaired) => return Err(unrepaired),
        }
        self.size = end;
        self.next_offset = header.last_offset() + 1;
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// The header of the batch at `pos`, or `None` if no whole header fits before the end.
    pub fn read_header_at(&self, pos: u64) -> io::Result<Option<BatchHeader>> {
        let file = self.log.handle()?;
        read_header(&file, pos, self.size)
    }

    /// Position of the batch that holds `offset`, or of the first batch after it.
    pub fn find_position(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let file = self.log.handle()?;
        let rel = (offset - self.base_offset).max(0) as u32;
        let mut pos = self
            .index
            .floor(rel)
            .map(|e| e.position as u64)
            .unwrap_or(0);
        while let Some(header) = read_header(&file, pos, self.size)? {
            if header.last_offset() >= offset {
                return Ok(Some((pos, header)));
            }
            pos += header.total_len() as u64;
        }
        Ok(None)
    }

    /// Where a search for the first record at or after `timestamp` may start.
    pub fn timestamp_start_position(&self, timestamp: i64) -> u64 {
        match self.time_index.floor_below(timestamp) {
            Some(entry) => self
                .index
                .floor(entry.relative_offset)
                .map(|e| e.position as u64)
                .unwrap_or(0),
            None => 0,
        }
    }

    /// Reads up to `max_len` bytes of whole batches from `pos`; if the first batch alone is
    /// bigger and `allow_oversized_first` is set, reads all of it (Kafka's KIP-74 rule, so a
    /// consumer can always make progress). Stops before the first batch that reaches
    /// `max_offset` (exclusive), whatever its size: that bound is the high watermark, and
    /// nothing at or past it may be shown.
    pub fn read_batches(
        &self,
        pos: u64,
        max_len: usize,
        allow_oversized_first: bool,
        max_offset: i64,
    ) -> io::Result<Vec<u8>> {
        // Held for the whole read: an eviction meanwhile does not close it under us.
        let file = self.log.handle()?;
        let mut end = pos;
        while let Some(header) = read_header(&file, end, self.size)? {
            let next = end + header.total_len() as u64;
            if next > self.size || header.last_offset() >= max_offset {
                break;
            }
            let within = (next - pos) as usize <= max_len;
            if !(within || end == pos && allow_oversized_first) {
                break;
            }
            end = next;
            if !within {
                break;
            }
        }
        let mut buf = vec![0u8; (end - pos) as usize];
        file.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    /// Removes the batch holding `offset` (or the first batch after it) and everything
    /// after it, returning the bytes removed. The indexes are cut before the log and all
    /// three are fsynced, so a crash part way leaves indexes no longer than the log, which
    /// `open` accepts (a shorter index only means a longer scan), and a cut that cannot
    /// come undone after the caller moved on. An error leaves the segment in an unknown
    /// state: the caller must stop writing to it.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<u64> {
        let Some((pos, header)) = self.find_position(offset)? else {
            return Ok(0);
        };
        let cut_relative = (header.base_offset - self.base_offset).max(0) as u32;
        let keep_index = self
            .index
            .entries()
            .partition_point(|e| (e.position as u64) < pos);
        self.index.truncate_entries(keep_index)?;
        let keep_time = self
            .time_index
            .entries()
            .partition_point(|e| e.relative_offset < cut_relative);
        self.time_index.truncate_entries(keep_time)?;
        self.index.flush()?;
        self.time_index.flush()?;
        let removed = self.size - pos;
        let file = self.log.handle()?;
        disk::set_len(&file, pos)?;
        disk::sync_data(&file)?;
        self.size = pos;
        self.next_offset = self.base_offset;
        if !self.load_tail()? {
            // Cannot happen with indexes cut as above; recovering is the safe answer anyway.
            self.recover()?;
        }
        // Kept index entries mark indexed batches; the bytes after the last one count
        // towards the next entry, as they did when appended.
        let last_indexed = self.index.last().map(|e| e.position as u64).unwrap_or(0);
        self.bytes_since_index = self.size - last_indexed;
        if self.size == 0 {
            self.first_append_ms = None;
        }
        Ok(removed)
    }

    /// Reads one whole batch at `pos`.
    pub fn read_batch(&self, pos: u64, header: &BatchHeader) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; header.total_len()];
        self.log.handle()?.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    /// Handles to the segment's existing files, so they can be fsynced elsewhere (a rolled
    /// segment, on a background thread). They stay open while held, evicted or not.
    pub fn sync_handles(&self) -> io::Result<Vec<Arc<File>>> {
        let mut files = vec![self.log.handle()?];
        files.extend(self.index.sync_handle()?);
        files.extend(self.time_index.sync_handle()?);
        Ok(files)
    }

    pub fn flush(&self) -> io::Result<()> {
        disk::sync_data(&*self.log.handle()?)?;
        self.index.flush()?;
        self.time_index.flush()
    }

    /// A handle to the `.log` file, for reading the sealed segment without the partition
    /// lock (the cleaner). Stays valid if the file is later renamed, removed or evicted.
    pub fn clone_log_handle(&self) -> io::Result<Arc<File>> {
        self.log.handle()
    }

    /// Renames the three files to carry `suffix` instead of the current one (`""` for the
    /// live names). The indexes go first and the log last, so the log's name is the one
    /// that says how far a crash got.
    pub fn set_suffix(&mut self, suffix: &str) -> io::Result<()> {
        let dir = self
            .log
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = |ext| dir.join(format!("{}{suffix}", file_name(self.base_offset, ext)));
        let (index_to, time_to, log_to) = (path("index"), path("timeindex"), path("log"));
        self.index.rename(&index_to)?;
        self.time_index.rename(&time_to)?;
        fs::rename(self.log.path(), &log_to)?;
        self.log.set_path(log_to);
        Ok(())
    }

    /// Closes the segment's files and removes them, the log first.
    pub fn delete(self) -> io::Result<()> {
        self.log.close();
        remove_if_present(self.log.path())?;
        self.index.delete()?;
        self.time_index.delete()
    }

    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub fn first_append_ms(&self) -> Option<i64> {
        self.first_append_ms
    }
}

/// Removes a file; one that is already gone is not an error.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the files a segment based at `base_offset` has or may have.
pub fn remove_files(dir: &Path, base_offset: i64) -> io::Result<()> {
    for ext in EXTENSIONS {
        remove_if_present(&dir.join(file_name(base_offset, ext)))?;
    }
    Ok(())
}

/// fsyncs a directory, so renames and removals in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Base offsets of the segments found in a partition directory, in order.
pub fn list_base_offsets(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<i64>() {
                out.push(base);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    use crate::log::batch::tests::encode_batch;
    use crate::log::batch::{patched_prefix, validate_record_set};

    fn handles() -> Arc<HandleCache> {
        HandleCache::new(16)
    }

    fn append(seg: &mut Segment, offset: i64, values: &[&[u8]]) {
        let raw = encode_batch(values, -1, -1);
        let (_, mut header) = validate_record_set(&raw).unwrap()[0];
        let prefix = patched_prefix(&raw, offset, 0);
        header.base_offset = offset;
        seg.append(&[&prefix, &raw[prefix.len()..]], &header, 0)
            .unwrap();
    }

    #[test]
    fn torn_tail_is_cut_and_indexes_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 100, &handles()).unwrap();
        for i in 0..10 {
            append(&mut seg, i * 2, &[b"0123456789abcdef", b"x"]);
        }
        let good = seg.size();
        drop(seg);
        // A torn write: half a batch, then garbage in the index.
        let log = dir.path().join(file_name(0, "log"));
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&encode_batch(&[b"partial"], -1, -1)[..30])
            .unwrap();
        fs::write(dir.path().join(file_name(0, "index")), [1u8; 13]).unwrap();

        let (seg, report) = Segment::open(dir.path(), 0, 100, true, &handles()).unwrap();
        assert_eq!(report.truncated_bytes, 30);
        assert_eq!(seg.size(), good);
        assert_eq!(seg.next_offset(), 20);
        let (pos, header) = seg.find_position(13).unwrap().unwrap();
        assert_eq!(header.base_offset, 12);
        assert!(pos > 0);
    }

    #[test]
    fn corrupt_middle_batch_truncates_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 4096, &handles()).unwrap();
        append(&mut seg, 0, &[b"aaaa"]);
        let first = seg.size();
        append(&mut seg, 1, &[b"bbbb"]);
        append(&mut seg, 2, &[b"cccc"]);
        drop(seg);
        let log = dir.path().join(file_name(0, "log"));
        let mut bytes = fs::read(&log).unwrap();
        let last = (first as usize) + 70;
        bytes[last] ^= 0xff;
        fs::write(&log, bytes).unwrap();
        let (seg, report) = Segment::open(dir.path(), 0, 4096, true, &handles()).unwrap();
        assert_eq!(seg.size(), first);
        assert_eq!(seg.next_offset(), 1);
        assert!(report.truncated_bytes > 0);
    }

    #[test]
    fn truncation_cuts_log_and_indexes_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 100, 50, &handles()).unwrap();
        for i in 0..10 {
            append(&mut seg, 100 + i * 2, &[b"0123456789abcdef", b"x"]);
        }
        let (cut_pos, _) = seg.find_position(110).unwrap().unwrap();
        // Offset 111 sits inside the batch 110..=111: the whole batch goes.
        let removed = seg.truncate_to(111).unwrap();
        assert_eq!(seg.size(), cut_pos);
        assert_eq!(removed, cut_pos, "ten equal batches, cut after the fifth");
        assert_eq!(seg.next_offset(), 110);
        assert!(seg.index.is_sane(seg.size()));
        assert!(seg
            .time_index
            .entries()
            .iter()
            .all(|e| (e.relative_offset as i64) < 10));
        assert_eq!(
            seg.truncate_to(500).unwrap(),
            0,
            "past the end: nothing to cut"
        );

        // Appends continue where the cut left off, and the index keeps pointing right.
        append(&mut seg, 110, &[b"replacement"]);
        let size = seg.size();
        drop(seg);
        let (seg, report) = Segment::open(dir.path(), 100, 50, false, &handles()).unwrap();
        assert!(
            !report.rebuilt_indexes,
            "indexes after a cut are valid as they are"
        );
        assert_eq!((seg.size(), seg.next_offset()), (size, 111));
        assert_eq!(seg.find_position(110).unwrap().unwrap().0, cut_pos);

        let mut seg = seg;
        seg.truncate_to(100).unwrap();
        assert!(seg.is_empty());
        assert_eq!(seg.next_offset(), 100);
    }

    #[test]
    fn reads_whole_batches_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 4096, &handles()).unwrap();
        append(&mut seg, 0, &[b"aaaa"]);
        let one = seg.size() as usize;
        append(&mut seg, 1, &[b"bbbb"]);
        assert_eq!(
            seg.read_batches(0, one + 5, false, i64::MAX).unwrap().len(),
            one
        );
        assert_eq!(seg.read_batches(0, 5, false, i64::MAX).unwrap().len(), 0);
        assert_eq!(seg.read_batches(0, 5, true, i64::MAX).unwrap().len(), one);
        assert_eq!(
            seg.read_batches(0, 1 << 20, true, 1).unwrap().len(),
            one,
            "max_offset is exclusive"
        );
        assert_eq!(seg.read_batches(0, 1 << 20, true, 0).unwrap().len(), 0);
    }

    fn batch(offset: i64, value: &[u8]) -> (Vec<u8>, BatchHeader) {
        let raw = encode_batch(&[value], -1, -1);
        let (_, mut header) = validate_record_set(&raw).unwrap()[0];
        let prefix = patched_prefix(&raw, offset, 0);
        header.base_offset = offset;
        let mut stored = raw.clone();
        stored[..prefix.len()].copy_from_slice(&prefix);
        (stored, header)
    }

    fn log_len(dir: &Path) -> u64 {
        fs::metadata(dir.join(file_name(0, "log"))).unwrap().len()
    }

    // The old segment wrote in append mode and never cut a failed write off: the bytes
    // that fit stayed past `size`, and the next batch landed behind them.
    #[test]
    fn a_short_write_is_cut_off_and_the_next_batch_lands_at_the_end() {
        use crate::log::disk::faults::{self, Faults};
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 1, &handles()).unwrap();
        append(&mut seg, 0, &[b"aaaa"]);
        let good = seg.size();
        let (big, header) = batch(1, &[b'x'; 400]);
        faults::set(Faults {
            write_budget: Some(40),
            ..Faults::default()
        });
        let failed = seg.append(&[&big], &header, 0).unwrap_err();
        faults::clear();
        assert!(!failed.is_unrepaired());
        assert_eq!(
            (seg.size(), seg.next_offset(), log_len(dir.path())),
            (good, 1, good)
        );

        append(&mut seg, 1, &[b"bbbb"]);
        assert_eq!(seg.find_position(1).unwrap().unwrap().0, good);
        assert_eq!(log_len(dir.path()), seg.size());
        let size = seg.size();
        drop(seg);
        for full in [false, true] {
            let (seg, report) = Segment::open(dir.path(), 0, 1, full, &handles()).unwrap();
            assert_eq!(report.truncated_bytes, 0);
            assert!(full || !report.rebuilt_indexes, "the index matches the log");
            assert_eq!((seg.size(), seg.next_offset()), (size, 2));
        }
    }

    // A batch whose index entry could not be written is taken back whole, so an index
    // entry never points past the log, and the caller is never told "failed" about a
    // batch that stays.
    #[test]
    fn a_failed_index_write_takes_the_batch_back() {
        use crate::log::disk::faults::{self, Faults};
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 1, &handles()).unwrap();
        append(&mut seg, 0, &[b"aaaa"]);
        let good = seg.size();
        let (next, header) = batch(1, b"bbbb");
        for budget in [next.len() as u64, next.len() as u64 + 8 + 3] {
            // The batch fits; its offset entry (8 bytes) or its time entry does not.
            faults::set(Faults {
                write_budget: Some(budget),
                ..Faults::default()
            });
            let failed = seg.append(&[&next], &header, 0).unwrap_err();
            faults::clear();
            assert!(!failed.is_unrepaired());
            assert_eq!((seg.size(), log_len(dir.path())), (good, good));
            assert!(seg.index.entries().is_empty() && seg.time_index.entries().is_empty());
            let index_len =
                |ext| fs::metadata(dir.path().join(file_name(0, ext))).map_or(0, |m| m.len());
            assert_eq!((index_len("index"), index_len("timeindex")), (0, 0));
        }
        seg.append(&[&next], &header, 0).unwrap();
        assert_eq!(seg.index.entries().len(), 1);

        // When cutting the log back fails too, the caller is told so.
        let (third, header) = batch(2, b"cccc");
        faults::set(Faults {
            write_budget: Some(third.len() as u64),
            fail_set_len: true,
            ..Faults::default()
        });
        let failed = seg.append(&[&third], &header, 0).unwrap_err();
        faults::clear();
        assert!(failed.is_unrepaired());
    }

    #[test]
    fn parts_that_do_not_add_up_to_the_batch_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 4096, &handles()).unwrap();
        let (raw, header) = batch(0, b"aaaa");
        assert!(seg.append(&[&raw[..10]], &header, 0).is_err());
        assert_eq!(log_len(dir.path()), 0);
    }
}
