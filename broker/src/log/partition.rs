//! One partition's log: an ordered set of segments, the log start offset, the flush policy,
//! idempotent producer state and the leader epoch cache.
//!
//! Files in the partition directory (Kafka's names where Kafka has one):
//! `*.log`/`*.index`/`*.timeindex` segments, `leader-epoch-checkpoint`,
//! `log-start-offset` (moved by DeleteRecords), `recovery-point` (everything below it was
//! fsynced), `producer-state.json` (written on clean shutdown) and, for compacted topics,
//! `cleaner-offset-checkpoint` (see `cleaner`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::batch::{self, BatchHeader};
use super::cleaner;
use super::disk::{self, WriteError};
use super::epoch_cache::EpochCache;
use super::handles::HandleCache;
use super::record_checks;
use super::segment::{self, Segment};
use crate::config::LogConfig;
use crate::error::ApiError;
use crate::txn::producer_state::{ProducerStateTable, SequenceCheck};

mod follower;
pub use follower::ReplicatedAppend;

#[cfg(test)]
mod storage_tests;

const LOG_START_FILE: &str = "log-start-offset";
const RECOVERY_POINT_FILE: &str = "recovery-point";
const PRODUCER_SNAPSHOT_FILE: &str = "producer-state.json";

#[derive(Debug, Error)]
pub enum LogError {
    #[error("I/O error on partition {partition}: {source}")]
    Io {
        partition: String,
        source: io::Error,
    },
}

/// The result of appending one produce record set.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    /// -1 unless the topic stamps LogAppendTime.
    pub log_append_time: i64,
    pub records: i64,
    pub bytes: u64,
}

/// What opening a partition log found.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub truncated_bytes: u64,
    pub rebuilt_indexes: usize,
    pub dropped_segments: usize,
}

#[derive(Serialize, Deserialize)]
struct ProducerSnapshot {
    /// The snapshot covers batches below this offset.
    next_offset: i64,
    table: ProducerStateTable,
    /// `PartitionLog::last_batch_of_producer`; a snapshot without it is not used.
    #[serde(default)]
    last_batches: Option<HashMap<i64, i64>>,
}

#[derive(Debug)]
pub struct PartitionLog {
    pub name: String,
    pub(super) dir: PathBuf,
    config: LogConfig,
    pub(super) segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    unflushed_messages: i64,
    last_flush_ms: i64,
    producers: ProducerStateTable,
    /// Base offset of each idempotent producer's last batch in the log: the cleaner keeps
    /// that batch (emptied if need be) so producer state can be rebuilt from the log.
    pub(super) last_batch_of_producer: HashMap<i64, i64>,
    epochs: EpochCache,
    /// Background fsyncs of rolled segments: (the segment's end offset, the flush).
    roll_flushes: Vec<(i64, std::thread::JoinHandle<io::Result<()>>)>,
    /// The open files of all segments, shared with every other partition log.
    handles: Arc<HandleCache>,
    /// Set when the files may no longer match what the log accounts for (a failed write
    /// that could not be cut off again, a failed fsync, a truncation that broke off): why.
    /// A failed log refuses every write until it is reopened, whose recovery puts files
    /// and state back in agreement; it never acknowledges anything past the failure.
    failed: Option<String>,
}

fn read_i64_file(path: &Path) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents)?;
    fs::rename(&tmp, path)
}

/// Notes a stored batch in the idempotent producer state and, for an idempotent producer,
/// as that producer's last batch in the log.
fn note_producer_batch(
    producers: &mut ProducerStateTable,
    last_batch_of_producer: &mut HashMap<i64, i64>,
    stored: &BatchHeader,
) {
    producers.record(stored);
    if stored.has_sequence() {
        last_batch_of_producer.insert(stored.producer_id, stored.base_offset);
    }
}

impl PartitionLog {
    /// The idempotent producers this log remembers (DescribeProducers reads it).
    pub fn producer_state(&self) -> &ProducerStateTable {
        &self.producers
    }

    /// Opens or creates the log in `dir`. After an unclean shutdown every segment from the
    /// recovery point on is read and checked batch by batch; damage ends the log there.
    /// Its segments' files are opened through `handles`, shared by all partition logs.
    ///
    /// A new log costs one empty `.log` file and no fsync: until something is appended
    /// there is nothing to make durable.
    pub fn open(
        dir: &Path,
        name: String,
        config: LogConfig,
        clean_shutdown: bool,
        now_ms: i64,
        handles: &Arc<HandleCache>,
    ) -> Result<(PartitionLog, OpenReport), LogError> {
        let io_err = |source| LogError::Io {
            partition: name.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        // A log cleaning cut short by a crash: finish or discard it before listing segments.
        let swapped_in = cleaner::complete_interrupted_swaps(dir).map_err(io_err)?;
        let stored_start = read_i64_file(&dir.join(LOG_START_FILE)).unwrap_or(0);
        let recovery_point = read_i64_file(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let bases = segment::list_base_offsets(dir).map_err(io_err)?;
        let mut report = OpenReport::default();
        let mut segments = BTreeMap::new();
        let mut cut = false;
        for (i, base) in bases.iter().enumerate() {
            if cut {
                // Everything after a damaged segment would leave a hole in the offsets.
                let (seg, _) =
                    Segment::open(dir, *base, config.index_interval_bytes, false, handles)
                        .map_err(io_err)?;
                seg.delete().map_err(io_err)?;
                report.dropped_segments += 1;
                continue;
            }
            let next_base = bases.get(i + 1).copied();
            let needs_recovery = (!clean_shutdown
                && next_base.is_none_or(|next| next > recovery_point))
                || swapped_in.contains(base);
            let (seg, seg_report) = Segment::open(
                dir,
                *base,
                config.index_interval_bytes,
                needs_recovery,
                handles,
            )
            .map_err(io_err)?;
            report.truncated_bytes += seg_report.truncated_bytes;
            if seg_report.rebuilt_indexes {
                report.rebuilt_indexes += 1;
            }
            if seg_report.truncated_bytes > 0 {
                cut = true;
            }
            segments.insert(*base, seg);
        }
        if segments.is_empty() {
            let seg = Segment::create(dir, stored_start, config.index_interval_bytes, handles)
                .map_err(io_err)?;
            segments.insert(stored_start, seg);
        }
        let first_base = *segments.keys().next().unwrap_or(&0);
        let mut log = PartitionLog {
            name: name.clone(),
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: stored_start.max(first_base),
            recovery_point,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            roll_flushes: Vec::new(),
            producers: ProducerStateTable::default(),
            last_batch_of_producer: HashMap::new(),
            epochs: EpochCache::load(dir),
            handles: handles.clone(),
            failed: None,
        };
        let leo = log.log_end_offset();
        log.log_start_offset = log.log_start_offset.min(leo);
        // Persisted, not just lowered in memory: a stale higher recovery point on disk would
        // let the next crash skip checking segments written after this open.
        log.lower_recovery_point(leo).map_err(io_err)?;
        log.epochs.truncate_from(leo).map_err(io_err)?;
        log.rebuild_producer_state(clean_shutdown).map_err(io_err)?;
        Ok((log, report))
    }

    /// Loads the clean-shutdown snapshot if there is one, then replays batch headers after
    /// it. Without a snapshot every header is read, which also refills the epoch cache.
    fn rebuild_producer_state(&mut self, clean_shutdown: bool) -> io::Result<()> {
        let path = self.dir.join(PRODUCER_SNAPSHOT_FILE);
        let mut from = self.log_start_offset;
        if clean_shutdown {
            if let Some(snap) = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<ProducerSnapshot>(&b).ok())
            {
                let leo = self.log_end_offset();
                if let Some(last_batches) = snap.last_batches.filter(|_| snap.next_offset <= leo) {
                    self.producers = snap.table;
                    self.last_batch_of_producer = last_batches;
                    from = snap.next_offset;
                }
            }
        }
        // A snapshot is only valid for the run that wrote it.
        let _ = fs::remove_file(&path);
        let mut headers = Vec::new();
        self.scan_headers(from, |h| headers.push(*h))?;
        for h in &headers {
            self.record_producer_batch(h);
            self.epochs
                .assign(h.partition_leader_epoch, h.base_offset)?;
        }
        Ok(())
    }

    fn record_producer_batch(&mut self, stored: &BatchHeader) {
        note_producer_batch(
            &mut self.producers,
            &mut self.last_batch_of_producer,
            stored,
        );
    }

    /// Calls `f` with each batch header at or after `from`.
    fn scan_headers(&self, from: i64, mut f: impl FnMut(&BatchHeader)) -> io::Result<()> {
        for seg in self.segments.values() {
            if seg.next_offset() <= from {
                continue;
            }
            let mut pos = match seg.find_position(from)? {
                Some((pos, _)) => pos,
                None => continue,
            };
            while let Some(h) = seg.read_header_at(pos)? {
                f(&h);
                pos += h.total_len() as u64;
            }
        }
        Ok(())
    }

    pub fn log_end_offset(&self) -> i64 {
        self.segments
            .values()
            .next_back()
            .map(Segment::next_offset)
            .unwrap_or(0)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Whether the log refuses writes until it is reopened (see `failed`).
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The handle cache this log's segments use.
    pub(super) fn handles(&self) -> &Arc<HandleCache> {
        &self.handles
    }

    /// Refuses a write to a failed log.
    fn check_usable(&self) -> io::Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(io::Error::other(format!(
                "partition log {} failed earlier ({why}); it takes no writes until reopened",
                self.name
            ))),
        }
    }

    /// Marks the log failed, keeping the first cause.
    fn fail(&mut self, cause: &dyn std::fmt::Display) {
        if self.failed.is_none() {
            tracing::error!(partition = %self.name, error = %cause,
                "partition log failed: refusing writes until it is reopened");
            self.failed = Some(cause.to_string());
        }
    }

    /// Passes `result` on, failing the log if it is an error: for steps (fsyncs,
    /// truncations) after whose failure the files' state is unknown.
    fn fatal<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// A segment write's error; one that left bytes behind fails the log.
    fn write_error(&mut self, e: WriteError) -> io::Error {
        if e.is_unrepaired() {
            self.fail(&e);
        }
        e.into()
    }

    fn io_error(&self, source: io::Error) -> ApiError {
        tracing::error!(partition = %self.name, error = %source, "log I/O error");
        ApiError::new(
            ResponseError::KafkaStorageError,
            format!("storage error on {}: {source}", self.name),
        )
    }

    /// Appends a validated record set (`batches` from `batch::validate_record_set`).
    pub fn append(
        &mut self,
        records: &Bytes,
        batches: &[(usize, BatchHeader)],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, ApiError> {
        self.check_usable().map_err(|e| self.io_error(e))?;
        for (_, h) in batches {
            if h.total_len() > self.config.max_message_bytes {
                return Err(ApiError::new(
                    ResponseError::MessageTooLarge,
                    format!(
                        "batch of {} bytes exceeds max.message.bytes {} on {}",
                        h.total_len(),
                        self.config.max_message_bytes,
                        self.name
                    ),
                ));
            }
        }
        let rules = record_checks::RecordRules {
            require_keys: self.config.compact,
            timestamp_bounds: (!self.config.log_append_time).then_some((
                self.config.timestamp_before_max_ms,
                self.config.timestamp_after_max_ms,
            )),
        };
        record_checks::check(records, batches, &self.name, rules, now_ms)?;
        // Judge every batch before writing any, so a bad one leaves the log untouched.
        let mut scratch = self
            .producers
            .clone_for(batches.iter().map(|(_, h)| h.producer_id));
        let mut verdicts = Vec::with_capacity(batches.len());
        let mut next = self.log_end_offset();
        for (_, h) in batches {
            let verdict = scratch.check(h)?;
            if verdict == SequenceCheck::Append {
                let mut stored = *h;
                stored.base_offset = next;
                scratch.record(&stored);
                next = stored.last_offset() + 1;
            }
            verdicts.push(verdict);
        }

        let mut outcome = AppendOutcome {
            base_offset: -1,
            log_append_time: if self.config.log_append_time {
                now_ms
            } else {
                -1
            },
            records: 0,
            bytes: 0,
        };
        for ((pos, h), verdict) in batches.iter().zip(verdicts) {
            if let SequenceCheck::Duplicate { base_offset } = verdict {
                if outcome.base_offset < 0 {
                    outcome.base_offset = base_offset;
                }
                continue;
            }
            let raw = &records[*pos..*pos + h.total_len()];
            let base_offset = self.log_end_offset();
            let mut stored = *h;
            stored.base_offset = base_offset;
            stored.partition_leader_epoch = leader_epoch;
            self.maybe_roll(h.total_len() as u64, stored.last_offset(), now_ms)
                .map_err(|e| self.io_error(e))?;
            let prefix = batch::patched_prefix(raw, base_offset, leader_epoch);
            let result = if self.config.log_append_time {
                let mut copy = raw.to_vec();
                batch::stamp_log_append_time(&mut copy, now_ms);
                copy[..prefix.len()].copy_from_slice(&prefix);
                self.active_mut().append(&[&copy], &stored, now_ms)
            } else {
                self.active_mut()
                    .append(&[&prefix, &raw[prefix.len()..]], &stored, now_ms)
            };
            // Batches before this one stay: they are whole and consistent. The caller
            // hears the error, so nothing after it is acknowledged.
            if let Err(e) = result {
                let e = self.write_error(e);
                return Err(self.io_error(e));
            }
            self.record_producer_batch(&stored);
            self.epochs
                .assign(leader_epoch, base_offset)
                .map_err(|e| self.io_error(e))?;
            if outcome.base_offset < 0 {
                outcome.base_offset = base_offset;
            }
            outcome.records += h.last_offset_delta as i64 + 1;
            outcome.bytes += h.total_len() as u64;
            self.unflushed_messages += h.last_offset_delta as i64 + 1;
        }
        if self.unflushed_messages >= self.config.flush_messages
            || now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
        {
            self.flush(now_ms).map_err(|e| self.io_error(e))?;
        }
        Ok(outcome)
    }

    fn active_mut(&mut self) -> &mut Segment {
        // The map is never empty: open() creates a segment and nothing removes the last one.
        self.segments
            .values_mut()
            .next_back()
            .expect("a partition log always has an active segment")
    }

    pub(super) fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a partition log always has an active segment")
    }

    /// Starts a new segment when the active one would pass segment.bytes, has been open
    /// longer than segment.ms, or could no longer address its contents with 32-bit indexes
    /// once a batch of `incoming` bytes ending at `incoming_last_offset` is added.
    fn maybe_roll(
        &mut self,
        incoming: u64,
        incoming_last_offset: i64,
        now_ms: i64,
    ) -> io::Result<()> {
        if self.roll_needed(incoming, incoming_last_offset, now_ms) {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    fn roll_needed(&self, incoming: u64, incoming_last_offset: i64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let too_big = active.size() + incoming > self.config.segment_bytes;
        let too_old = active
            .first_append_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.segment_ms);
        let offsets_overflow = incoming_last_offset - active.base_offset > i32::MAX as i64;
        let positions_overflow = active.size() + incoming > u32::MAX as u64;
        too_big || too_old || offsets_overflow || positions_overflow
    }

    /// Opens a new segment at the log end. The closed segment is fsynced on a background
    /// thread, as Kafka does, so producers never wait for a gigabyte to reach the disk; the
    /// recovery point moves past it only once that flush is done, so a crash before then
    /// recovers it like any unflushed data.
    fn roll(&mut self, now_ms: i64) -> io::Result<()> {
        self.roll_at(self.log_end_offset(), now_ms)
    }

    /// `roll`, with the new segment based at `base` (at or past the log end): a follower
    /// copying a compacted leader may meet a batch far past its log end. A roll that fails
    /// leaves the old segment active and nothing of the new one on disk (an empty `.log`
    /// left there would be listed as a segment on the next open, amid offsets the old
    /// segment goes on taking); if even that cleanup fails, the log fails.
    fn roll_at(&mut self, base: i64, _now_ms: i64) -> io::Result<()> {
        self.check_usable()?;
        self.reap_roll_flushes(false)?;
        let leo = self.log_end_offset();
        let base = base.max(leo);
        let files = self.active().sync_handles()?;
        let created = Segment::create(
            &self.dir,
            base,
            self.config.index_interval_bytes,
            &self.handles,
        );
        let seg = match created {
            Ok(seg) => seg,
            Err(e) => {
                let cleanup = segment::remove_files(&self.dir, base);
                self.fatal(cleanup)?;
                return Err(e);
            }
        };
        let flush = std::thread::Builder::new()
            .name("strom-roll-flush".into())
            .spawn(move || files.iter().try_for_each(|f| disk::sync_data(f)));
        let flush = match flush {
            Ok(flush) => flush,
            Err(e) => {
                let cleanup = seg.delete();
                self.fatal(cleanup)?;
                return Err(e);
            }
        };
        self.roll_flushes.push((leo, flush));
        self.segments.insert(seg.base_offset, seg);
        Ok(())
    }

    /// Collects finished background flushes of rolled segments (all of them, waiting, with
    /// `wait`) and moves the recovery point past the segments they made durable.
    fn reap_roll_flushes(&mut self, wait: bool) -> io::Result<()> {
        let mut durable_to = None;
        let mut i = 0;
        while i < self.roll_flushes.len() {
            if !wait && !self.roll_flushes[i].1.is_finished() {
                // Later segments cannot count as durable before an earlier one.
                break;
            }
            let (end, handle) = self.roll_flushes.remove(i);
            let flushed = handle
                .join()
                .map_err(|_| io::Error::other("segment flush thread panicked"))
                .and_then(|flushed| flushed);
            // An fsync that failed cannot be retried into success: the pages it was to
            // write may be gone.
            self.fatal(flushed)?;
            durable_to = Some(end);
            i = 0;
        }
        if let Some(end) = durable_to {
            self.advance_recovery_point(end)?;
        }
        Ok(())
    }

    /// Moves the recovery point down to `to` (a truncation or recovery cut the log below
    /// it), on disk first.
    fn lower_recovery_point(&mut self, to: i64) -> io::Result<()> {
        if to < self.recovery_point {
            write_atomically(
                &self.dir.join(RECOVERY_POINT_FILE),
                to.to_string().as_bytes(),
            )?;
            self.recovery_point = to;
        }
        Ok(())
    }

    fn advance_recovery_point(&mut self, to: i64) -> io::Result<()> {
        if to > self.recovery_point {
            write_atomically(
                &self.dir.join(RECOVERY_POINT_FILE),
                to.to_string().as_bytes(),
            )?;
            self.recovery_point = to;
        }
        Ok(())
    }

    /// fsyncs everything (rolled segments still flushing, then the active one) and moves
    /// the recovery point to the log end.
    pub fn flush(&mut self, now_ms: i64) -> io::Result<()> {
        self.check_usable()?;
        self.reap_roll_flushes(true)?;
        let synced = self.active().flush();
        self.fatal(synced)?;
        self.advance_recovery_point(self.log_end_offset())?;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// Moves the recovery point past rolled segments whose background flush finished.
    pub fn reap_finished_flushes(&mut self) -> io::Result<()> {
        self.reap_roll_flushes(false)
    }

    /// Whether the time-based flush policy (flush.ms) says a flush is due.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.unflushed_messages > 0
            && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
    }

    /// Reads whole batches from the one holding `offset`, up to `max_bytes` (but at least
    /// one batch when `allow_oversized_first`), and only batches that end below
    /// `max_offset` (exclusive; `i64::MAX` for no bound). With the high watermark as the
    /// bound a consumer sees only committed records: a batch straddling it is held back
    /// whole, even when it is the first, as Kafka returns nothing past the high watermark.
    /// Offsets outside the log are out of range.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        allow_oversized_first: bool,
        max_offset: i64,
    ) -> Result<Vec<u8>, ApiError> {
        let leo = self.log_end_offset();
        if offset < self.log_start_offset || offset > leo {
            return Err(ApiError::new(
                ResponseError::OffsetOutOfRange,
                format!(
                    "offset {offset} is outside {}..={leo} on {}",
                    self.log_start_offset, self.name
                ),
            ));
        }
        if offset == leo || offset >= max_offset {
            return Ok(Vec::new());
        }
        let start_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(offset);
        for seg in self.segments.range(start_base..).map(|(_, s)| s) {
            if let Some((pos, _)) = seg.find_position(offset).map_err(|e| self.io_error(e))? {
                return seg
                    .read_batches(pos, max_bytes, allow_oversized_first, max_offset)
                    .map_err(|e| self.io_error(e));
            }
        }
        Ok(Vec::new())
    }

    /// The first offset whose record timestamp is at or after `timestamp`, with that
    /// record's timestamp; `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, ApiError> {
        for seg in self.segments.values() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            let mut pos = seg.timestamp_start_position(timestamp);
            while let Some(h) = seg.read_header_at(pos).map_err(|e| self.io_error(e))? {
                if h.max_timestamp >= timestamp && h.last_offset() >= self.log_start_offset {
                    let found = self.find_in_batch(seg, pos, &h, |off, ts| {
                        off >= self.log_start_offset && ts >= timestamp
                    })?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, ApiError> {
        let Some(seg) = self
            .segments
            .values()
            .filter(|s| !s.is_empty())
            .max_by_key(|s| s.max_timestamp())
        else {
            return Ok(None);
        };
        let target = seg.max_timestamp();
        let mut pos = 0;
        while let Some(h) = seg.read_header_at(pos).map_err(|e| self.io_error(e))? {
            if h.max_timestamp == target {
                // A batch compaction emptied keeps its max timestamp but has no record.
                if let Some(found) = self.find_in_batch(seg, pos, &h, |_, ts| ts == target)? {
                    return Ok(Some(found));
                }
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Decodes one batch (decompressing if needed, off the hot path) and returns the first
    /// record matching `pred(offset, timestamp)`.
    fn find_in_batch(
        &self,
        seg: &Segment,
        pos: u64,
        header: &BatchHeader,
        pred: impl Fn(i64, i64) -> bool,
    ) -> Result<Option<(i64, i64)>, ApiError> {
        let raw = seg.read_batch(pos, header).map_err(|e| self.io_error(e))?;
        let mut buf = Bytes::from(raw);
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
            ApiError::new(
                ResponseError::CorruptMessage,
                format!(
                    "stored batch at offset {} on {} does not decode: {e}",
                    header.base_offset, self.name
                ),
            )
        })?;
        Ok(set
            .records
            .iter()
            .find(|r| pred(r.offset, r.timestamp))
            .map(|r| (r.offset, r.timestamp)))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the log end) and
    /// drops segments that lie wholly below it. A log whose cleanup.policy lacks `delete`
    /// refuses, as Kafka does: only the cleaner may remove records of a compacted topic.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, ApiError> {
        self.check_usable().map_err(|e| self.io_error(e))?;
        if !self.config.delete {
            return Err(ApiError::new(
                ResponseError::PolicyViolation,
                format!(
                    "records of {} cannot be deleted: its cleanup.policy does not include delete",
                    self.name
                ),
            ));
        }
        let leo = self.log_end_offset();
        let target = if offset == -1 { leo } else { offset };
        if target < 0 || target > leo {
            return Err(ApiError::new(
                ResponseError::OffsetOutOfRange,
                format!(
                    "cannot delete before {offset} on {}: log ends at {leo}",
                    self.name
                ),
            ));
        }
        if target > self.log_start_offset {
            self.log_start_offset = target;
            write_atomically(
                &self.dir.join(LOG_START_FILE),
                target.to_string().as_bytes(),
            )
            .map_err(|e| self.io_error(e))?;
            self.drop_segments_below_start()
                .map_err(|e| self.io_error(e))?;
        }
        Ok(self.log_start_offset)
    }

    /// Removes non-active segments whose every offset is below the log start offset.
    fn drop_segments_below_start(&mut self) -> io::Result<usize> {
        let start = self.log_start_offset;
        let active_base = self.active().base_offset;
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .filter(|(base, seg)| **base != active_base && seg.next_offset() <= start)
            .map(|(base, _)| *base)
            .collect();
        for base in &doomed {
            if let Some(seg) = self.segments.remove(base) {
                seg.delete()?;
            }
        }
        Ok(doomed.len())
    }

    /// Deletes segments past retention.ms or beyond retention.bytes (when cleanup.policy
    /// includes delete). An expired active segment is rolled first, as Kafka does, so
    /// retention also applies to a partition that stopped receiving data.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        if !self.config.delete {
            return Ok(0);
        }
        self.check_usable()?;
        let mut new_start = self.log_start_offset;
        if self.config.retention_ms >= 0 {
            let horizon = now_ms.saturating_sub(self.config.retention_ms);
            let expired: Vec<i64> = self
                .segments
                .values()
                .take_while(|s| !s.is_empty() && s.max_timestamp() < horizon)
                .map(Segment::next_offset)
                .collect();
            if let Some(end) = expired.last() {
                if *end == self.log_end_offset() && !self.active().is_empty() {
                    self.roll(now_ms)?;
                }
                new_start = new_start.max(*end);
            }
        }
        if self.config.retention_bytes >= 0 {
            let mut size = self.size_bytes();
            let active_base = self.active().base_offset;
            for seg in self.segments.values() {
                if seg.base_offset == active_base
                    || size.saturating_sub(seg.size()) < self.config.retention_bytes as u64
                {
                    break;
                }
                size -= seg.size();
                new_start = new_start.max(seg.next_offset());
            }
        }
        if new_start > self.log_start_offset {
            self.log_start_offset = new_start;
            write_atomically(
                &self.dir.join(LOG_START_FILE),
                new_start.to_string().as_bytes(),
            )?;
        }
        self.drop_segments_below_start()
    }

    /// OffsetForLeaderEpoch: where `epoch` ends in this log (see `EpochCache::end_offset_for`).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The newest leader epoch that wrote to (or was assigned in) this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// Kafka's `maybeAssignEpochStartOffset`: a new leader notes that its epoch starts at
    /// its log end before it writes anything, so OffsetForLeaderEpoch from followers that
    /// still hold an older leader's unreplicated tail tells them to cut it there.
    /// Ignored unless `epoch` is newer than the latest known.
    pub fn assign_epoch_start(&mut self, epoch: i32, start_offset: i64) -> Result<(), ApiError> {
        self.epochs
            .assign(epoch, start_offset)
            .map_err(|e| self.io_error(e))
    }

    /// Flushes everything and writes the producer snapshot, for a clean shutdown. A failed
    /// log refuses, so its directory is not marked as cleanly shut down.
    pub fn close(&mut self, now_ms: i64) -> io::Result<()> {
        self.flush(now_ms)?;
        let snap = ProducerSnapshot {
            next_offset: self.log_end_offset(),
            table: self.producers.clone(),
            last_batches: Some(self.last_batch_of_producer.clone()),
        };
        let bytes = serde_json::to_vec(&snap).map_err(io::Error::other)?;
        write_atomically(&self.dir.join(PRODUCER_SNAPSHOT_FILE), &bytes)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::encode_batch;
    use crate::log::batch::validate_record_set;

    pub(super) fn config(segment_bytes: u64) -> LogConfig {
        LogConfig::resolve(
            &crate::config::BrokerConfig::from_properties(Default::default())
                .expect("defaults")
                .0
                .topic_defaults,
            &Default::default(),
        )
        .with_segment_bytes(segment_bytes)
    }

    pub(super) fn append(log: &mut PartitionLog, value: &[u8], now: i64) -> AppendOutcome {
        let raw = Bytes::from(encode_batch(&[value], -1, -1));
        let batches = validate_record_set(&raw).expect("valid");
        log.append(&raw, &batches, 0, now).expect("append")
    }

    pub(super) fn open(dir: &Path, cfg: LogConfig, clean: bool) -> PartitionLog {
        PartitionLog::open(dir, "t-0".into(), cfg, clean, 0, &HandleCache::new(64))
            .expect("open")
            .0
    }

    #[test]
    fn rolls_by_size_and_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(1 << 20);
        cfg.segment_ms = 1000;
        let mut log = open(dir.path(), cfg, true);
        append(&mut log, b"a", 0);
        append(&mut log, b"b", 500);
        assert_eq!(log.segment_count(), 1);
        append(&mut log, b"c", 1500);
        assert_eq!(
            log.segment_count(),
            2,
            "segment.ms passed since the first append"
        );

        let small = tempfile::tempdir().unwrap();
        let mut log = open(small.path(), config(200), true);
        for i in 0..10 {
            append(&mut log, &[b'x'; 60], i);
        }
        assert!(
            log.segment_count() >= 5,
            "segment.bytes=200 holds at most two batches"
        );
        assert_eq!(log.log_end_offset(), 10);
    }

    #[test]
    fn retention_by_time_and_size_moves_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(200);
        cfg.retention_bytes = 400;
        let mut log = open(dir.path(), cfg.clone(), true);
        for i in 0..10 {
            append(&mut log, &[b'x'; 60], i);
        }
        let deleted = log.apply_retention(100).unwrap();
        assert!(deleted > 0);
        assert!(log.log_start_offset() > 0);
        assert!(
            log.size_bytes() <= 400 + 200,
            "within retention.bytes plus the active segment"
        );
        assert!(
            log.read(0, 1 << 20, true, i64::MAX).is_err(),
            "deleted offsets are out of range"
        );

        // Batches encoded by the test carry timestamps around 1000; a horizon past them
        // expires everything, rolling the active segment so it can go too.
        cfg.retention_bytes = -1;
        cfg.retention_ms = 10;
        log.set_config(cfg);
        log.apply_retention(1_000_000).unwrap();
        assert_eq!(log.log_start_offset(), 10);
        assert_eq!(log.log_end_offset(), 10, "offsets never go back");
        assert_eq!(append(&mut log, b"next", 0).base_offset, 10);
    }

    #[test]
    fn delete_records_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config(1 << 20), true);
        for i in 0..5 {
            append(&mut log, b"v", i);
        }
        assert_eq!(log.delete_records_before(3).unwrap(), 3);
        assert!(log.delete_records_before(9).is_err());
        log.close(10).unwrap();
        let log = open(dir.path(), config(1 << 20), true);
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(log.log_end_offset(), 5);
    }

    #[test]
    fn delete_records_refused_without_the_delete_policy() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(1 << 20);
        let mut log = open(dir.path(), cfg.clone(), true);
        for i in 0..3 {
            append(&mut log, b"v", i);
        }
        cfg.compact = true;
        cfg.delete = false;
        log.set_config(cfg.clone());
        let refused = log.delete_records_before(2).unwrap_err();
        assert_eq!(refused.error, ResponseError::PolicyViolation);
        assert_eq!(log.log_start_offset(), 0, "nothing deleted");
        cfg.delete = true; // compact,delete allows it
        log.set_config(cfg);
        assert_eq!(log.delete_records_before(2).unwrap(), 2);
    }

    #[test]
    fn flush_messages_moves_the_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(1 << 20);
        cfg.flush_messages = 2;
        let mut log = open(dir.path(), cfg, true);
        append(&mut log, b"a", 0);
        assert_eq!(read_i64_file(&dir.path().join(RECOVERY_POINT_FILE)), None);
        append(&mut log, b"b", 0);
        assert_eq!(
            read_i64_file(&dir.path().join(RECOVERY_POINT_FILE)),
            Some(2)
        );
    }

    #[test]
    fn idempotent_state_survives_clean_and_unclean_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let raw = Bytes::from(encode_batch(&[b"a", b"b"], 42, 0));
        let batches = validate_record_set(&raw).unwrap();
        let mut log = open(dir.path(), config(1 << 20), true);
        log.append(&raw, &batches, 0, 0).unwrap();
        log.close(0).unwrap();
        for clean in [true, false] {
            let mut log = open(dir.path(), config(1 << 20), clean);
            let again = log.append(&raw, &batches, 0, 0).unwrap();
            assert_eq!(again.base_offset, 0, "duplicate recognised (clean={clean})");
            assert_eq!(log.log_end_offset(), 2);
        }
    }
}
