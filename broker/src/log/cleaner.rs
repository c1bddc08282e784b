//! Log compaction, Kafka's log cleaner, for partitions whose `cleanup.policy` includes
//! `compact`.
//!
//! Why: a compacted topic promises the latest record of every key forever (the group
//! coordinator's `__consumer_offsets` relies on it) while superseded records go, so the log
//! stays proportional to the number of live keys rather than to the number of writes.
//!
//! How, one partition at a time, in Kafka's three steps:
//! 1. Under the partition lock, `plan` picks what to clean: sealed segments only (never the
//!    active one), up to the first segment holding a record younger than
//!    `min.compaction.lag.ms`. The part past the cleaner checkpoint
//!    (`cleaner-offset-checkpoint`: where the last cleaning ended) is dirty; nothing happens
//!    until dirty bytes are `min.cleanable.dirty.ratio` of the cleanable bytes, or a kept
//!    tombstone has become due for removal.
//! 2. Without the lock (sealed segments never change, and reads go through cloned handles),
//!    map every key of the dirty part to its latest offset, then rewrite the cleanable
//!    segments, merged into groups of up to `segment.bytes`, into `.cleaned` files. A record
//!    stays unless a later record has its key. Records without a key go, as in Kafka. A
//!    tombstone (null value) stays until its batch's max timestamp is `delete.retention.ms`
//!    old: an approximation of Kafka's "since the segment was cleaned" that needs no state
//!    in the batch, and still lets a consumer that lags by less than `delete.retention.ms`
//!    see every delete.
//! 3. Under the lock again, swap each group in: `.cleaned` → `.swap` (the commit point),
//!    remove the old segments, `.swap` → live names. On open, `complete_interrupted_swaps`
//!    deletes `.cleaned` files and finishes `.swap` ones, so a crash leaves the old
//!    segments or their replacement, never neither.
//!
//! Offsets never move. A batch that loses some records is re-encoded with its own codec and
//! keeps its base offset, last offset delta, leader epoch and producer id, epoch and base
//! sequence, so the sequence numbers it covered, the producer state rebuilt from the log and
//! the segment's end all stay as they were. A batch that loses every record disappears,
//! leaving a gap that reads skip, except two kinds kept as empty batches (Kafka's
//! RETAIN_EMPTY): an idempotent producer's last batch, so its state can be rebuilt from the
//! log after a crash, and a group's last batch, so the new segment ends exactly where the
//! old ones did (which is also how a half-finished swap knows what it replaces).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use parking_lot::Mutex;
use thiserror::Error;

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::handles::HandleCache;
use super::partition::PartitionLog;
use super::segment::{self, file_name, remove_if_present, sync_dir, Segment, EXTENSIONS};

/// Per partition: where the last cleaning ended, and when the earliest tombstone it kept
/// becomes removable (Kafka keeps the first in a per-log-dir `cleaner-offset-checkpoint`).
pub const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const CLEANED: &str = ".cleaned";
const SWAP: &str = ".swap";
/// Memory the key map may use, estimated; Kafka's `log.cleaner.dedupe.buffer.size` default.
/// A dirty part with more keys is cleaned in several passes, whole segments at a time.
const KEY_MAP_BUDGET: usize = 128 << 20;
/// Estimated cost of one key map entry beside the key bytes.
const KEY_ENTRY_OVERHEAD: usize = 64;
/// What the placeholder record in `rebuild_batch` encodes to: size 6, attributes 0,
/// timestamp delta 0, offset delta 0, null key, null value, no headers.
const PLACEHOLDER: [u8; 7] = [0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00];

#[derive(Debug, Error)]
pub enum CleanError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("stored batch at offset {offset} cannot be read: {reason}")]
    Corrupt { offset: i64, reason: String },
    #[error("re-encoding the batch at offset {offset} failed: {reason}")]
    Encode { offset: i64, reason: String },
}

/// What a cleaning pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanStats {
    pub partitions_cleaned: usize,
    pub partitions_failed: usize,
    /// Bytes of the segments that were replaced.
    pub bytes_read: u64,
    /// Bytes of their replacements.
    pub bytes_written: u64,
    pub records_removed: u64,
    pub segments_replaced: usize,
    pub segments_written: usize,
}

impl CleanStats {
    pub fn add(&mut self, other: &CleanStats) {
        self.partitions_cleaned += other.partitions_cleaned;
        self.partitions_failed += other.partitions_failed;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.records_removed += other.records_removed;
        self.segments_replaced += other.segments_replaced;
        self.segments_written += other.segments_written;
    }
}

/// The checkpoint file's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    /// Everything below this offset has been cleaned.
    cleaned_to: i64,
    /// The earliest time a kept tombstone may go, if any was kept.
    tombstone_due_ms: Option<i64>,
}

fn read_checkpoint(dir: &Path) -> Option<Checkpoint> {
    let text = fs::read_to_string(dir.join(CHECKPOINT_FILE)).ok()?;
    let mut lines = text.lines();
    let cleaned_to = lines.next()?.trim().parse().ok()?;
    let tombstone_due_ms = lines.next().and_then(|l| l.trim().parse().ok());
    Some(Checkpoint {
        cleaned_to,
        tombstone_due_ms,
    })
}

fn write_checkpoint(dir: &Path, checkpoint: Checkpoint) -> io::Result<()> {
    let mut text = format!("{}\n", checkpoint.cleaned_to);
    if let Some(due) = checkpoint.tombstone_due_ms {
        text.push_str(&format!("{due}\n"));
    }
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &path)
}

/// A sealed segment as the plan saw it, with its own handle for reading without the lock.
#[derive(Debug)]
struct SealedSegment {
    base: i64,
    next_offset: i64,
    size: u64,
    /// Held open by the cleaning, whatever the handle cache evicts meanwhile.
    file: Arc<File>,
}

/// What one cleaning will do, decided under the partition lock.
#[derive(Debug)]
struct Plan {
    dir: PathBuf,
    handles: Arc<HandleCache>,
    index_interval: u64,
    max_group_bytes: u64,
    delete_retention_ms: i64,
    /// Every sealed segment below `clean_end`, in order.
    segments: Vec<SealedSegment>,
    /// Index in `segments` of the first one past the checkpoint.
    dirty_from: usize,
    /// The first offset this cleaning must not touch.
    clean_end: i64,
    last_batch_of_producer: HashMap<i64, i64>,
}

fn plan(log: &PartitionLog, now_ms: i64) -> Result<Option<Plan>, CleanError> {
    let config = log.config();
    if !config.compact || log.is_failed() {
        return Ok(None);
    }
    let active_base = log.active().base_offset;
    let start = log.log_start_offset();
    let leo = log.log_end_offset();
    let checkpoint = read_checkpoint(log.dir()).filter(|c| c.cleaned_to <= leo);
    let first_dirty = checkpoint.map_or(start, |c| c.cleaned_to.max(start));
    let tombstones_due = checkpoint
        .and_then(|c| c.tombstone_due_ms)
        .is_some_and(|due| now_ms >= due);

    let lag_horizon = now_ms.saturating_sub(config.min_compaction_lag_ms);
    let mut clean_end = active_base;
    for seg in log.segments.values() {
        if seg.base_offset == active_base {
            break;
        }
        if seg.next_offset() > first_dirty
            && config.min_compaction_lag_ms > 0
            && seg.max_timestamp() > lag_horizon
        {
            clean_end = seg.base_offset;
            break;
        }
    }

    let mut dirty_bytes = 0u64;
    let mut clean_bytes = 0u64;
    let mut chosen = Vec::new();
    let mut dirty_from = None;
    for seg in log.segments.range(..clean_end).map(|(_, s)| s) {
        if seg.next_offset() > first_dirty {
            dirty_from.get_or_insert(chosen.len());
            dirty_bytes += seg.size();
        } else {
            clean_bytes += seg.size();
        }
        chosen.push(seg);
    }
    let ratio_met = dirty_bytes > 0
        && dirty_bytes as f64 / (dirty_bytes + clean_bytes) as f64
            >= config.min_cleanable_dirty_ratio;
    if chosen.is_empty() || !(ratio_met || tombstones_due) {
        return Ok(None);
    }
    let segments = chosen
        .into_iter()
        .map(|s| {
            Ok(SealedSegment {
                base: s.base_offset,
                next_offset: s.next_offset(),
                size: s.size(),
                file: s.clone_log_handle()?,
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Some(Plan {
        dir: log.dir().to_path_buf(),
        handles: log.handles().clone(),
        index_interval: config.index_interval_bytes,
        max_group_bytes: config.segment_bytes.min(i32::MAX as u64),
        delete_retention_ms: config.delete_retention_ms,
        dirty_from: dirty_from.unwrap_or(segments.len()),
        segments,
        clean_end,
        last_batch_of_producer: log.last_batch_of_producer.clone(),
    }))
}

/// Walks the batches of a segment file through its own handle.
struct BatchReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl BatchReader<'_> {
    fn next_batch(&mut self) -> Result<Option<(BatchHeader, Bytes)>, CleanError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let corrupt = |reason: String| CleanError::Corrupt {
            offset: -1,
            reason: format!("at byte {}: {reason}", self.pos),
        };
        if self.pos + HEADER_LEN as u64 > self.end {
            return Err(corrupt("a partial batch header ends the segment".into()));
        }
        let mut head = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut head, self.pos)?;
        let header = BatchHeader::parse(&head).map_err(|e| corrupt(e.to_string()))?;
        let len = header.total_len() as u64;
        if self.pos + len > self.end {
            return Err(corrupt("the batch runs past the segment's end".into()));
        }
        let mut raw = vec![0u8; len as usize];
        self.file.read_exact_at(&mut raw, self.pos)?;
        self.pos += len;
        Ok(Some((header, Bytes::from(raw))))
    }
}

fn reader(seg: &SealedSegment) -> BatchReader<'_> {
    BatchReader {
        file: &seg.file,
        pos: 0,
        end: seg.size,
    }
}

fn decode(header: &BatchHeader, raw: &Bytes) -> Result<Vec<Record>, CleanError> {
    let mut buf = raw.clone();
    RecordBatchDecoder::decode(&mut buf)
        .map(|set| set.records)
        .map_err(|e| CleanError::Corrupt {
            offset: header.base_offset,
            reason: e.to_string(),
        })
}

/// Transaction markers and transactional data need the transaction state to be compacted
/// correctly; Strom refuses them at produce time, so they are only ever copied.
fn copied_verbatim(header: &BatchHeader) -> bool {
    header.is_control() || header.is_transactional()
}

/// The latest offset of every key in the dirty part, and the offset the map covers up to:
/// whole segments, as many as fit the memory budget (at least one).
fn build_key_map(plan: &Plan) -> Result<(HashMap<Bytes, i64>, i64), CleanError> {
    let mut map: HashMap<Bytes, i64> = HashMap::new();
    let mut used = 0usize;
    let mut end = plan.clean_end;
    for (i, seg) in plan.segments.iter().enumerate().skip(plan.dirty_from) {
        if i > plan.dirty_from && used > KEY_MAP_BUDGET {
            end = seg.base;
            break;
        }
        let mut batches = reader(seg);
        while let Some((header, raw)) = batches.next_batch()? {
            if copied_verbatim(&header) {
                continue;
            }
            for record in decode(&header, &raw)? {
                let Some(key) = record.key else { continue };
                if let Some(latest) = map.get_mut(key.as_ref()) {
                    *latest = record.offset;
                } else {
                    used += key.len() + KEY_ENTRY_OVERHEAD;
                    // A copy, so the map does not pin whole batch buffers.
                    map.insert(Bytes::copy_from_slice(&key), record.offset);
                }
            }
        }
    }
    Ok((map, end))
}

/// What happens to one batch.
enum Verdict {
    /// Every record stays: the stored bytes are copied as they are.
    Unchanged,
    /// Some records (or none, for an empty batch that must stay) in new bytes.
    Rewritten(Vec<u8>),
    Dropped,
}

/// The rules a record is judged by.
struct Rules<'a> {
    latest: &'a HashMap<Bytes, i64>,
    last_batch_of_producer: &'a HashMap<i64, i64>,
    now_ms: i64,
    delete_retention_ms: i64,
}

/// Per-group counts, and the earliest time a tombstone kept in the group may go.
#[derive(Default)]
struct GroupCounts {
    records_removed: u64,
    changed: bool,
    tombstone_due_ms: Option<i64>,
}

fn judge(
    rules: &Rules<'_>,
    header: &BatchHeader,
    raw: &Bytes,
    last_in_group: bool,
    counts: &mut GroupCounts,
) -> Result<Verdict, CleanError> {
    if copied_verbatim(header) {
        return Ok(Verdict::Unchanged);
    }
    let records = decode(header, raw)?;
    let tombstone_expired =
        rules.now_ms.saturating_sub(header.max_timestamp) > rules.delete_retention_ms;
    let mut kept_tombstone = false;
    let kept: Vec<&Record> = records
        .iter()
        .filter(|r| {
            let Some(key) = &r.key else { return false };
            if rules
                .latest
                .get(key.as_ref())
                .is_some_and(|latest| *latest > r.offset)
            {
                return false;
            }
            if r.value.is_none() {
                kept_tombstone |= !tombstone_expired;
                return !tombstone_expired;
            }
            true
        })
        .collect();
    if kept_tombstone {
        let due = header
            .max_timestamp
            .saturating_add(rules.delete_retention_ms)
            .saturating_add(1);
        counts.tombstone_due_ms = Some(counts.tombstone_due_ms.map_or(due, |d| d.min(due)));
    }
    counts.records_removed += (records.len() - kept.len()) as u64;
    if kept.len() == records.len() && !records.is_empty() {
        return Ok(Verdict::Unchanged);
    }
    if !kept.is_empty() {
        counts.changed = true;
        let compression = compression_of(header)?;
        return rebuild_batch(header, compression, &kept)
            .map(Verdict::Rewritten)
            .map_err(|reason| CleanError::Encode {
                offset: header.base_offset,
                reason,
            });
    }
    let producers_last = header.has_sequence()
        && rules.last_batch_of_producer.get(&header.producer_id) == Some(&header.base_offset);
    if producers_last || last_in_group {
        if records.is_empty() {
            return Ok(Verdict::Unchanged);
        }
        counts.changed = true;
        return Ok(Verdict::Rewritten(batch::empty_batch_like(header).to_vec()));
    }
    counts.changed = true;
    Ok(Verdict::Dropped)
}

fn compression_of(header: &BatchHeader) -> Result<Compression, CleanError> {
    Ok(match header.attributes & 0x7 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => {
            return Err(CleanError::Corrupt {
                offset: header.base_offset,
                reason: format!("unknown compression codec {other}"),
            })
        }
    })
}

fn compress_into(
    out: &mut BytesMut,
    compression: Compression,
    payload: &[u8],
) -> anyhow::Result<()> {
    let put = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.put_slice(payload);
        Ok(())
    };
    match compression {
        Compression::None => out.put_slice(payload),
        Compression::Gzip => <codec::Gzip as Compressor<BytesMut>>::compress(out, put)?,
        Compression::Snappy => <codec::Snappy as Compressor<BytesMut>>::compress(out, put)?,
        Compression::Lz4 => <codec::Lz4 as Compressor<BytesMut>>::compress(out, put)?,
        Compression::Zstd => <codec::Zstd as Compressor<BytesMut>>::compress(out, put)?,
    }
    Ok(())
}

/// Encodes the kept records of a batch as a batch with the original's base offset and
/// header fields, in the original codec.
///
/// kafka-protocol's encoder takes the base offset from the first record and the base
/// sequence from its sequence, but Kafka keeps a compacted batch's base offset (record
/// offsets are deltas from it). So a placeholder record at the base offset goes first and
/// its seven bytes are cut from the record payload before compression; the header fields
/// the encoder derives are then set back to the original's.
fn rebuild_batch(
    original: &BatchHeader,
    compression: Compression,
    kept: &[&Record],
) -> Result<Vec<u8>, String> {
    let first = kept.first().ok_or("no records to encode")?;
    let min_timestamp = kept
        .iter()
        .map(|r| r.timestamp)
        .min()
        .unwrap_or(first.timestamp);
    // The encoder splits batches where offset minus sequence changes; deriving every
    // sequence from the offset keeps one batch (the real base sequence is restored below).
    let sequence_of = |offset: i64| (offset - original.base_offset) as i32;
    let mut records = Vec::with_capacity(kept.len() + 1);
    records.push(Record {
        offset: original.base_offset,
        sequence: 0,
        timestamp: min_timestamp,
        key: None,
        value: None,
        headers: Default::default(),
        ..(*first).clone()
    });
    for r in kept {
        let mut r = (*r).clone();
        r.sequence = sequence_of(r.offset);
        records.push(r);
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
        Some(
            |payload: &mut BytesMut, out: &mut BytesMut, c: Compression| -> anyhow::Result<()> {
                let rest = payload
                    .strip_prefix(&PLACEHOLDER[..])
                    .ok_or_else(|| anyhow::anyhow!("placeholder record encoded unexpectedly"))?;
                compress_into(out, c, rest)
            },
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut out = buf.to_vec();
    let header = BatchHeader::parse(&out).map_err(|e| e.to_string())?;
    if header.total_len() != out.len() || header.base_offset != original.base_offset {
        return Err(format!(
            "encoder produced {} bytes for a {}-byte batch at offset {}",
            out.len(),
            header.total_len(),
            header.base_offset
        ));
    }
    batch::restore_compacted_header(&mut out, original, kept.len() as i32);
    Ok(out)
}

/// One group's cleaned segment, not yet swapped in.
struct Cleaned {
    segment: Segment,
    /// (base, next offset, size) of the segments it replaces.
    replaces: Vec<(i64, i64, u64)>,
    records_removed: u64,
}

/// Rewrites the planned segments into cleaned segments, each replacing a run of whole old
/// segments. A run grows while the cleaned output so far plus the next old segment (as an
/// upper bound of what it adds) fits `segment.bytes`, and its offsets fit a 32-bit index:
/// sizes after cleaning, so small cleaned segments merge.
fn clean_groups(
    plan: &Plan,
    rules: &Rules<'_>,
    now_ms: i64,
    stop: &AtomicBool,
    tombstone_due_ms: &mut Option<i64>,
) -> Result<Vec<Cleaned>, CleanError> {
    let mut cleaned = Vec::new();
    let mut next = 0;
    while next < plan.segments.len() && !stop.load(Ordering::Relaxed) {
        let start = next;
        let base = plan.segments[start].base;
        let mut out = Segment::create_with_suffix(
            &plan.dir,
            base,
            plan.index_interval,
            CLEANED,
            &plan.handles,
        )?;
        let mut counts = GroupCounts::default();
        let written = write_group(plan, rules, now_ms, &mut out, &mut counts, &mut next);
        if let Err(e) = written.and_then(|()| Ok(out.flush()?)) {
            let _ = out.delete();
            discard(cleaned);
            return Err(e);
        }
        if let Some(due) = counts.tombstone_due_ms {
            *tombstone_due_ms = Some(tombstone_due_ms.map_or(due, |d| d.min(due)));
        }
        let olds = &plan.segments[start..next];
        // Nothing to gain from swapping in an identical copy of a single segment.
        if !counts.changed && olds.len() == 1 {
            out.delete()?;
            continue;
        }
        cleaned.push(Cleaned {
            segment: out,
            replaces: olds
                .iter()
                .map(|s| (s.base, s.next_offset, s.size))
                .collect(),
            records_removed: counts.records_removed,
        });
    }
    Ok(cleaned)
}

/// Writes the group starting at `plan.segments[*next]` into `out`, leaving `*next` at the
/// first segment of the following group.
fn write_group(
    plan: &Plan,
    rules: &Rules<'_>,
    now_ms: i64,
    out: &mut Segment,
    counts: &mut GroupCounts,
    next: &mut usize,
) -> Result<(), CleanError> {
    let group_base = plan.segments[*next].base;
    let emit = |header: BatchHeader,
                raw: Bytes,
                last: bool,
                out: &mut Segment,
                counts: &mut GroupCounts|
     -> Result<(), CleanError> {
        match judge(rules, &header, &raw, last, counts)? {
            Verdict::Unchanged => out
                .append(&[&raw], &header, now_ms)
                .map_err(io::Error::from)?,
            Verdict::Rewritten(bytes) => {
                let rewritten = BatchHeader::parse(&bytes).map_err(|e| CleanError::Encode {
                    offset: header.base_offset,
                    reason: e.to_string(),
                })?;
                out.append(&[&bytes], &rewritten, now_ms)
                    .map_err(io::Error::from)?;
            }
            Verdict::Dropped => {}
        }
        Ok(())
    };
    // One batch of lookahead: whether the batch is the group's last is only known once the
    // next segment's membership is.
    let mut pending: Option<(BatchHeader, Bytes)> = None;
    loop {
        let mut batches = reader(&plan.segments[*next]);
        while let Some(batch) = batches.next_batch()? {
            if let Some((header, raw)) = pending.replace(batch) {
                emit(header, raw, false, out, counts)?;
            }
        }
        *next += 1;
        let pending_len = pending.as_ref().map_or(0, |(_, raw)| raw.len() as u64);
        let joins = plan.segments.get(*next).is_some_and(|seg| {
            out.size() + pending_len + seg.size <= plan.max_group_bytes
                && seg.next_offset - group_base <= i32::MAX as i64
        });
        if !joins {
            break;
        }
    }
    if let Some((header, raw)) = pending {
        emit(header, raw, true, out, counts)?;
    }
    Ok(())
}

/// Cleans one partition if its policy and dirty ratio call for it. Holds the partition
/// lock only to plan and to swap; `stop` (set on shutdown) abandons the pass before it
/// swaps anything in.
pub fn clean_partition(
    log: &Mutex<PartitionLog>,
    now_ms: i64,
    stop: &AtomicBool,
) -> Result<Option<CleanStats>, CleanError> {
    let Some(mut plan) = plan(&log.lock(), now_ms)? else {
        return Ok(None);
    };
    let (latest, map_end) = build_key_map(&plan)?;
    plan.segments.retain(|s| s.base < map_end);
    let rules = Rules {
        latest: &latest,
        last_batch_of_producer: &plan.last_batch_of_producer,
        now_ms,
        delete_retention_ms: plan.delete_retention_ms,
    };
    let mut tombstone_due_ms = None;
    let cleaned = clean_groups(&plan, &rules, now_ms, stop, &mut tombstone_due_ms)?;
    let mut log = log.lock();
    // A log that failed meanwhile takes no swap: its files may not match its state.
    if stop.load(Ordering::Relaxed) || log.is_failed() {
        discard(cleaned);
        return Ok(None);
    }
    let stats = swap_in(&mut log, cleaned)?;
    write_checkpoint(
        &plan.dir,
        Checkpoint {
            cleaned_to: map_end,
            tombstone_due_ms,
        },
    )?;
    Ok(Some(stats))
}

fn discard(cleaned: Vec<Cleaned>) {
    for c in cleaned {
        let _ = c.segment.delete();
    }
}

/// Swaps each cleaned segment in for the segments it replaces, if they are still there as
/// they were planned (retention may have removed them meanwhile).
fn swap_in(log: &mut PartitionLog, cleaned: Vec<Cleaned>) -> Result<CleanStats, CleanError> {
    let mut stats = CleanStats {
        partitions_cleaned: 1,
        ..CleanStats::default()
    };
    let dir = log.dir().to_path_buf();
    let active_base = log.active().base_offset;
    let mut pending = cleaned.into_iter();
    while let Some(mut c) = pending.next() {
        let unchanged = c.replaces.iter().all(|(base, next, size)| {
            *base != active_base
                && log
                    .segments
                    .get(base)
                    .is_some_and(|s| s.next_offset() == *next && s.size() == *size)
        });
        if !unchanged {
            let _ = c.segment.delete();
            continue;
        }
        // The commit point: from here a crash completes the swap on open.
        let committed = c.segment.set_suffix(SWAP).and_then(|()| sync_dir(&dir));
        if let Err(e) = committed {
            let _ = c.segment.delete();
            discard(pending.collect());
            return Err(e.into());
        }
        // Committed: whatever fails now, the new segment is the one to serve.
        let mut first_error: Option<io::Error> = None;
        for (base, _, size) in &c.replaces {
            if let Some(old) = log.segments.remove(base) {
                stats.bytes_read += size;
                stats.segments_replaced += 1;
                if let Err(e) = old.delete() {
                    first_error.get_or_insert(e);
                }
            }
        }
        // The removals must be durable before the swap loses its name, or a crash could
        // bring old segments back beside their replacement with nothing left to say so.
        let renamed = sync_dir(&dir)
            .and_then(|()| c.segment.set_suffix(""))
            .and_then(|()| sync_dir(&dir));
        if let Err(e) = renamed {
            first_error.get_or_insert(e);
        }
        stats.bytes_written += c.segment.size();
        stats.segments_written += 1;
        stats.records_removed += c.records_removed;
        log.segments.insert(c.segment.base_offset, c.segment);
        if let Some(e) = first_error {
            discard(pending.collect());
            return Err(e.into());
        }
    }
    Ok(stats)
}

/// Run when a partition log opens: removes `.cleaned` files (a cleaning that never
/// committed) and completes `.swap` ones (one that did): the old segments in the swap's
/// offset range go and the swap takes the live name. Returns the base offsets of the
/// segments swapped in, whose indexes must be rebuilt.
pub fn complete_interrupted_swaps(dir: &Path) -> io::Result<Vec<i64>> {
    let mut swaps = Vec::new();
    let mut touched = false;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if name.ends_with(CLEANED) {
            remove_if_present(&dir.join(&name))?;
            touched = true;
        } else if let Some(base) = name
            .strip_suffix(&format!(".log{SWAP}"))
            .and_then(|stem| stem.parse::<i64>().ok())
        {
            swaps.push(base);
        }
    }
    swaps.sort_unstable();
    let mut completed = Vec::new();
    for base in swaps {
        let swap = dir.join(format!("{}{SWAP}", file_name(base, "log")));
        touched = true;
        let Some(end) = end_offset_of(&swap)? else {
            tracing::warn!(file = %swap.display(), "discarding a swap file that holds no batch");
            remove_if_present(&swap)?;
            continue;
        };
        for old in segment::list_base_offsets(dir)? {
            if (base..end).contains(&old) {
                for ext in EXTENSIONS {
                    remove_if_present(&dir.join(file_name(old, ext)))?;
                }
            }
        }
        fs::rename(&swap, dir.join(file_name(base, "log")))?;
        tracing::info!(dir = %dir.display(), base, end, "completed an interrupted log cleaning swap");
        completed.push(base);
    }
    // Index files of a swap: renamed before its log, so either their log was swapped above
    // (and they are rebuilt) or it never committed.
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if name.ends_with(&format!(".index{SWAP}")) || name.ends_with(&format!(".timeindex{SWAP}"))
        {
            remove_if_present(&dir.join(&name))?;
            touched = true;
        }
    }
    if touched {
        sync_dir(dir)?;
    }
    Ok(completed)
}

/// One past the last offset of the whole batches in a log file, `None` if it holds none.
fn end_offset_of(path: &Path) -> io::Result<Option<i64>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut pos = 0u64;
    let mut end = None;
    let mut head = [0u8; HEADER_LEN];
    while pos + HEADER_LEN as u64 <= len {
        file.read_exact_at(&mut head, pos)?;
        let Ok(header) = BatchHeader::parse(&head) else {
            break;
        };
        if pos + header.total_len() as u64 > len {
            break;
        }
        end = Some(header.last_offset() + 1);
        pos += header.total_len() as u64;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kafka_protocol::error::ResponseError;

    use crate::error::ApiError;

    use super::*;
    use crate::config::{BrokerConfig, LogConfig, Properties};
    use crate::log::batch::tests::batch_of;
    use crate::log::batch::validate_record_set;

    type Kv<'a> = (Option<&'a str>, Option<&'a str>);

    fn compact_config(segment_bytes: u64) -> LogConfig {
        let defaults = BrokerConfig::from_properties(Properties::new())
            .expect("defaults")
            .0
            .topic_defaults;
        let mut overrides = BTreeMap::new();
        overrides.insert("cleanup.policy".to_string(), "compact".to_string());
        LogConfig::resolve(&defaults, &overrides).with_segment_bytes(segment_bytes)
    }

    fn open(dir: &Path, config: LogConfig, clean: bool) -> Mutex<PartitionLog> {
        Mutex::new(
            PartitionLog::open(dir, "t-0".into(), config, clean, 0, &HandleCache::new(64))
                .expect("open")
                .0,
        )
    }

    fn append_raw(log: &Mutex<PartitionLog>, raw: &Bytes) -> Result<i64, ApiError> {
        let batches = validate_record_set(raw).expect("valid batch");
        log.lock()
            .append(raw, &batches, 0, 0)
            .map(|o| o.base_offset)
    }

    fn put(log: &Mutex<PartitionLog>, kvs: &[Kv<'_>], ts: i64) -> i64 {
        append_raw(log, &batch_of(kvs, ts, -1, -1, Compression::None)).expect("append")
    }

    fn clean(log: &Mutex<PartitionLog>, now_ms: i64) -> Option<CleanStats> {
        clean_partition(log, now_ms, &AtomicBool::new(false)).expect("clean")
    }

    /// Every stored batch from the log start: its header and its records.
    fn batches(log: &PartitionLog) -> Vec<(BatchHeader, Vec<Record>)> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let raw = log.read(offset, 1 << 20, true, i64::MAX).expect("read");
            assert!(!raw.is_empty(), "nothing readable at {offset}");
            let mut pos = 0;
            while pos < raw.len() {
                let header = BatchHeader::parse(&raw[pos..]).expect("header");
                let bytes = Bytes::copy_from_slice(&raw[pos..pos + header.total_len()]);
                batch::verify_crc(&bytes, &header).expect("crc");
                let records = decode(&header, &bytes).expect("decodes");
                offset = header.last_offset() + 1;
                pos += header.total_len();
                out.push((header, records));
            }
        }
        out
    }

    /// (offset, key, value) of every record from the log start.
    fn records(log: &PartitionLog) -> Vec<(i64, Option<String>, Option<String>)> {
        let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).to_string());
        batches(log)
            .into_iter()
            .flat_map(|(_, rs)| rs)
            .map(|r| (r.offset, text(&r.key), text(&r.value)))
            .collect()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    // Two open files for a log of many segments: the cleaner's handles, the cleaned
    // segment's writes and the swap all cross evictions.
    #[test]
    fn cleaning_works_through_a_tiny_handle_cache() {
        let dir = tempfile::tempdir().unwrap();
        let handles = HandleCache::new(2);
        let open_tiny = |clean: bool| {
            Mutex::new(
                PartitionLog::open(
                    dir.path(),
                    "t-0".into(),
                    compact_config(400),
                    clean,
                    0,
                    &handles,
                )
                .expect("open")
                .0,
            )
        };
        let log = open_tiny(true);
        for round in 0..20 {
            for k in 0..10 {
                let (key, value) = (format!("k{k}"), format!("v{round}"));
                put(&log, &[(Some(&key), Some(&value))], 1_000);
            }
        }
        let stats = clean(&log, 10_000).expect("a cleaning runs");
        assert!(stats.records_removed > 100, "{stats:?}");
        assert!(handles.open_count() <= 2);
        let after = records(&log.lock());
        for k in 0..10 {
            let key = Some(format!("k{k}"));
            let last = after.iter().rev().find(|r| r.1 == key).expect("key kept");
            assert_eq!(last.2.as_deref(), Some("v19"));
        }
        drop(log);
        assert_eq!(records(&open_tiny(false).lock()), after);
    }

    #[test]
    fn overwritten_keys_keep_only_their_latest_value_at_the_same_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), compact_config(400), true);
        for round in 0..20 {
            for k in 0..10 {
                let (key, value) = (format!("k{k}"), format!("v{round}"));
                let offset = put(&log, &[(Some(&key), Some(&value))], 1_000);
                assert_eq!(offset, round * 10 + k);
            }
        }
        let (segments_before, size_before) = {
            let l = log.lock();
            (l.segment_count(), l.size_bytes())
        };
        assert!(segments_before > 10, "small segments: {segments_before}");

        let stats = clean(&log, 10_000).expect("a first cleaning runs");
        assert!(stats.records_removed > 100, "{stats:?}");
        let l = log.lock();
        assert_eq!(l.log_end_offset(), 200, "the log end never moves");
        assert!(
            l.size_bytes() < size_before / 2,
            "{} of {size_before}",
            l.size_bytes()
        );

        let active_base = l.active().base_offset;
        let all = records(&l);
        let mut seen_below_active = std::collections::HashSet::new();
        let mut latest = BTreeMap::new();
        for (offset, key, value) in &all {
            let (key, value) = (key.clone().expect("key"), value.clone().expect("value"));
            let k: i64 = key[1..].parse().unwrap();
            let round: i64 = value[1..].parse().unwrap();
            assert_eq!(*offset, round * 10 + k, "records keep their offsets");
            if *offset < active_base {
                assert!(
                    seen_below_active.insert(key.clone()),
                    "{key} twice when cleaned"
                );
                let newest_cleanable = (0..20)
                    .map(|r| r * 10 + k)
                    .filter(|o| *o < active_base)
                    .max();
                assert_eq!(
                    Some(*offset),
                    newest_cleanable,
                    "{key} keeps its latest value"
                );
            }
            latest.insert(key, value);
        }
        assert_eq!(latest.len(), 10);
        assert!(latest.values().all(|v| v == "v19"), "{latest:?}");

        // A consumer positioned on a compacted-away offset gets the next surviving batch.
        let raw = l
            .read(0, 1 << 20, true, i64::MAX)
            .expect("reading a gap is no error");
        let first = BatchHeader::parse(&raw).unwrap();
        assert!(first.last_offset() >= 0);
        let survivors = records(&l);
        assert!(survivors[0].0 > 0, "offset 0 was overwritten and is gone");
        drop(l);

        assert_eq!(clean(&log, 10_000), None, "nothing dirty: nothing to do");

        // Cleaned segments are small; the next pass merges them up to segment.bytes.
        for k in 0..10 {
            let key = format!("k{k}");
            put(&log, &[(Some(&key), Some("v20"))], 1_000);
        }
        let mut config = log.lock().config().clone();
        config.min_cleanable_dirty_ratio = 0.0;
        log.lock().set_config(config);
        clean(&log, 10_000).expect("a second pass");
        let l = log.lock();
        assert!(
            l.segment_count() < segments_before / 4,
            "{} segments of {segments_before} remain",
            l.segment_count()
        );
        let latest: BTreeMap<String, String> = records(&l)
            .into_iter()
            .map(|(_, k, v)| (k.unwrap(), v.unwrap()))
            .collect();
        assert!(latest.values().all(|v| v == "v20"), "{latest:?}");
    }

    #[test]
    fn tombstones_stay_until_delete_retention_passes() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), compact_config(200), true);
        put(&log, &[(Some("a"), Some("1"))], 1_000);
        put(&log, &[(Some("b"), Some("1"))], 1_000);
        put(&log, &[(Some("a"), None)], 1_000);
        for i in 0..6 {
            let key = format!("f{i}");
            put(&log, &[(Some(&key), Some("x"))], 1_000);
        }
        let retention = log.lock().config().delete_retention_ms;
        assert_eq!(retention, 86_400_000, "Kafka's default");

        clean(&log, 2_000).expect("cleans");
        let has = |log: &Mutex<PartitionLog>, key: &str, value: Option<&str>| {
            records(&log.lock())
                .iter()
                .any(|(_, k, v)| k.as_deref() == Some(key) && v.as_deref() == value)
        };
        assert!(
            !has(&log, "a", Some("1")),
            "the value under the tombstone goes"
        );
        assert!(has(&log, "a", None), "the tombstone stays for now");
        assert!(has(&log, "b", Some("1")));

        assert_eq!(
            clean(&log, 1_000 + retention),
            None,
            "not yet past delete.retention.ms"
        );
        assert!(has(&log, "a", None));

        clean(&log, 1_000 + retention + 1).expect("a due tombstone triggers a cleaning");
        assert!(!has(&log, "a", None), "the tombstone is gone");
        assert!(has(&log, "b", Some("1")));
        assert_eq!(log.lock().log_end_offset(), 9);
    }

    #[test]
    fn the_active_segment_is_never_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), compact_config(1 << 20), true);
        for i in 0..50 {
            let value = i.to_string();
            put(&log, &[(Some("same"), Some(&value))], 1_000);
        }
        assert_eq!(clean(&log, 10_000), None);
        assert_eq!(records(&log.lock()).len(), 50);
    }

    #[test]
    fn min_compaction_lag_keeps_young_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = compact_config(200);
        config.min_compaction_lag_ms = 10_500;
        let log = open(dir.path(), config, true);
        for i in 0..20 {
            let value = i.to_string();
            put(&log, &[(Some("a"), Some(&value))], i * 1_000);
        }
        // now - lag = 9_500: the segment holding offset 10 (timestamp 10_000) and everything
        // after it are too young.
        let boundary = {
            let l = log.lock();
            *l.segments.range(..=10).next_back().unwrap().0
        };
        clean(&log, 20_000).expect("the old part is cleaned");
        let all = records(&log.lock());
        let old: Vec<i64> = all.iter().map(|r| r.0).filter(|o| *o < boundary).collect();
        let young: Vec<i64> = all.iter().map(|r| r.0).filter(|o| *o >= boundary).collect();
        assert_eq!(old, vec![boundary - 1], "only the latest old value is kept");
        assert_eq!(
            young,
            (boundary..20).collect::<Vec<_>>(),
            "young records untouched"
        );
    }

    #[test]
    fn the_dirty_ratio_decides_when_to_clean() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = compact_config(200);
        config.min_cleanable_dirty_ratio = 0.9;
        let log = open(dir.path(), config.clone(), true);
        for i in 0..40 {
            let key = format!("k{i}");
            put(&log, &[(Some(&key), Some("old"))], 1_000);
        }
        clean(&log, 2_000).expect("all dirty at first");
        let cleaned_to = read_checkpoint(dir.path()).expect("checkpoint").cleaned_to;
        assert_eq!(cleaned_to, log.lock().active().base_offset);

        for key in ["k0", "k1", "k2", "k3"] {
            put(&log, &[(Some(key), Some("new"))], 1_000);
        }
        let count = |log: &Mutex<PartitionLog>| records(&log.lock()).len();
        assert_eq!(count(&log), 44);
        assert_eq!(clean(&log, 2_000), None, "a small dirty share waits");
        assert_eq!(count(&log), 44);

        config.min_cleanable_dirty_ratio = 0.01;
        log.lock().set_config(config);
        clean(&log, 2_000).expect("a lower ratio cleans");
        assert!(count(&log) < 44);
        assert!(read_checkpoint(dir.path()).unwrap().cleaned_to > cleaned_to);
    }

    fn crash_test_config() -> LogConfig {
        let mut config = compact_config(300);
        config.min_cleanable_dirty_ratio = 0.0;
        config
    }

    /// Writes the same data, cleaned once (leaving small segments) and then some more, into
    /// a fresh log each time: the next cleaning merges segments.
    fn fill(dir: &Path) -> Mutex<PartitionLog> {
        let log = open(dir, crash_test_config(), true);
        for round in 0..8 {
            for k in 0..6 {
                let (key, value) = (format!("k{k}"), format!("v{round}"));
                put(&log, &[(Some(&key), Some(&value))], 1_000);
            }
        }
        clean(&log, 2_000).expect("first pass");
        for k in 0..6 {
            let key = format!("k{k}");
            put(&log, &[(Some(&key), Some("v8"))], 1_000);
        }
        log
    }

    #[test]
    fn a_crash_leaves_the_old_segments_or_the_new_one() {
        // The outcome a finished cleaning has: the first cleaned segment's bytes and range.
        let reference = tempfile::tempdir().unwrap();
        let done = fill(reference.path());
        clean(&done, 2_000).expect("cleans");
        let (first_end, first_bytes, cleaned) = {
            let l = done.lock();
            let (base, seg) = l.segments.iter().next().unwrap();
            assert_eq!(*base, 0);
            let bytes = fs::read(reference.path().join(file_name(0, "log"))).unwrap();
            (seg.next_offset(), bytes, records(&l))
        };
        let expected_within = |r: &&(i64, Option<String>, Option<String>)| r.0 < first_end;

        for crash in ["before commit", "after commit", "mid delete"] {
            let dir = tempfile::tempdir().unwrap();
            let original = {
                let log = fill(dir.path());
                let l = log.lock();
                assert!(
                    l.segments.range(1..first_end).count() > 0,
                    "the group merged segments"
                );
                records(&l)
            };
            let at =
                |ext: &str, suffix: &str| dir.path().join(format!("{}{suffix}", file_name(0, ext)));
            match crash {
                "before commit" => {
                    fs::write(at("log", CLEANED), &first_bytes).unwrap();
                    fs::write(at("index", SWAP), b"").unwrap();
                }
                "after commit" => {
                    fs::write(at("log", SWAP), &first_bytes).unwrap();
                    fs::write(at("index", SWAP), b"").unwrap();
                    fs::write(
                        dir.path()
                            .join(format!("{}{CLEANED}", file_name(first_end, "log"))),
                        b"x",
                    )
                    .unwrap();
                }
                _ => {
                    fs::write(at("log", SWAP), &first_bytes).unwrap();
                    // Index files exist only once they have entries.
                    for ext in EXTENSIONS {
                        remove_if_present(&at(ext, "")).unwrap();
                    }
                }
            }
            let log = open(dir.path(), crash_test_config(), true);
            let l = log.lock();
            let names = names_in(dir.path());
            assert!(
                !names
                    .iter()
                    .any(|n| n.ends_with(SWAP) || n.ends_with(CLEANED)),
                "{crash}: leftovers remain: {names:?}"
            );
            let now = records(&l);
            assert_eq!(l.log_end_offset(), 54, "{crash}");
            if crash == "before commit" {
                assert_eq!(now, original, "an uncommitted cleaning changes nothing");
            } else {
                let within: Vec<_> = now.iter().filter(expected_within).collect();
                let want: Vec<_> = cleaned.iter().filter(expected_within).collect();
                assert_eq!(within, want, "{crash}: the swap was completed");
                let after: Vec<_> = now.iter().filter(|r| r.0 >= first_end).collect();
                let untouched: Vec<_> = original.iter().filter(|r| r.0 >= first_end).collect();
                assert_eq!(after, untouched, "{crash}: later segments untouched");
                assert_eq!(l.segments.range(1..first_end).count(), 0, "{crash}");
                // The swapped-in segment got its indexes rebuilt.
                assert!(l.read(first_end - 1, 1 << 20, true, i64::MAX).is_ok());
            }
        }
    }

    #[test]
    fn compressed_batches_keep_their_codec_and_base_offset() {
        for (codec, id) in [
            (Compression::Gzip, 1),
            (Compression::Snappy, 2),
            (Compression::Lz4, 3),
            (Compression::Zstd, 4),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), compact_config(100), true);
            let kvs = [
                (Some("a"), Some("1")),
                (Some("b"), Some("1")),
                (Some("c"), Some("1")),
            ];
            append_raw(&log, &batch_of(&kvs, 1_000, -1, -1, codec)).unwrap();
            put(&log, &[(Some("a"), Some("2"))], 1_000);
            put(&log, &[(Some("z"), Some("1"))], 1_000);
            clean(&log, 2_000).expect("cleans");
            let l = log.lock();
            let (header, kept) = &batches(&l)[0];
            assert_eq!(header.attributes & 0x7, id, "{codec:?} kept");
            assert_eq!(header.base_offset, 0, "{codec:?}");
            assert_eq!(header.last_offset_delta, 2, "{codec:?}");
            assert_eq!(header.records_count, 2, "{codec:?}");
            let offsets: Vec<i64> = kept.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![1, 2], "{codec:?}");
        }
    }

    #[test]
    fn idempotent_batches_keep_producer_state_across_cleaning_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let config = compact_config(100);
        let log = open(dir.path(), config.clone(), true);
        let b1 = batch_of(
            &[(Some("a"), Some("1")), (Some("b"), Some("1"))],
            1_000,
            42,
            0,
            Compression::None,
        );
        let b2 = batch_of(
            &[(Some("a"), Some("2")), (Some("c"), Some("1"))],
            1_000,
            42,
            2,
            Compression::None,
        );
        let b4 = batch_of(&[(Some("x"), Some("1"))], 1_000, 7, 0, Compression::None);
        assert_eq!(append_raw(&log, &b1).unwrap(), 0);
        assert_eq!(append_raw(&log, &b2).unwrap(), 2);
        assert_eq!(put(&log, &[(Some("c"), Some("2"))], 1_000), 4);
        assert_eq!(append_raw(&log, &b4).unwrap(), 5);
        assert_eq!(put(&log, &[(Some("x"), Some("2"))], 1_000), 6);
        assert_eq!(put(&log, &[(Some("z"), Some("1"))], 1_000), 7);

        clean(&log, 2_000).expect("cleans");
        let stored: BTreeMap<i64, (BatchHeader, Vec<i64>)> = batches(&log.lock())
            .into_iter()
            .map(|(h, rs)| (h.base_offset, (h, rs.iter().map(|r| r.offset).collect())))
            .collect();
        let (h1, r1) = &stored[&0];
        assert_eq!(
            (h1.producer_id, h1.base_sequence, h1.last_offset_delta),
            (42, 0, 1)
        );
        assert_eq!(r1, &vec![1], "b1 keeps b");
        let (h2, r2) = &stored[&2];
        assert_eq!(
            (h2.producer_id, h2.base_sequence, h2.last_offset_delta),
            (42, 2, 1)
        );
        assert_eq!(r2, &vec![2], "b2 keeps a");
        let (h4, r4) = &stored[&5];
        assert_eq!(
            (h4.producer_id, h4.base_sequence, h4.records_count),
            (7, 0, 0)
        );
        assert!(r4.is_empty(), "producer 7's last batch stays, empty");

        let retries_are_duplicates = |log: &Mutex<PartitionLog>, when: &str| {
            assert_eq!(append_raw(log, &b2).unwrap(), 2, "{when}: b2 retry");
            assert_eq!(append_raw(log, &b4).unwrap(), 5, "{when}: b4 retry");
            assert_eq!(log.lock().log_end_offset(), 8, "{when}: nothing appended");
        };
        retries_are_duplicates(&log, "after cleaning");
        log.lock().close(0).unwrap();
        drop(log);
        for clean_shutdown in [false, true] {
            let log = open(dir.path(), config.clone(), clean_shutdown);
            retries_are_duplicates(&log, &format!("reopened, clean={clean_shutdown}"));
            log.lock().close(0).unwrap();
        }
        let log = open(dir.path(), config, false);
        let next = batch_of(&[(Some("a"), Some("3"))], 1_000, 42, 4, Compression::None);
        assert_eq!(
            append_raw(&log, &next).unwrap(),
            8,
            "the sequence continues"
        );
    }

    #[test]
    fn an_emptied_last_batch_of_a_producer_stays_mid_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = compact_config(1 << 20);
        config.segment_ms = 1_000;
        let log = open(dir.path(), config.clone(), true);
        let append_at = |raw: &Bytes, now: i64| {
            let batches = validate_record_set(raw).expect("valid batch");
            log.lock()
                .append(raw, &batches, 0, now)
                .expect("append")
                .base_offset
        };
        let mine = batch_of(&[(Some("x"), Some("1"))], 1_000, 7, 0, Compression::None);
        let plain =
            |k: &str, v: &str| batch_of(&[(Some(k), Some(v))], 1_000, -1, -1, Compression::None);
        assert_eq!(append_at(&mine, 0), 0);
        assert_eq!(append_at(&plain("x", "2"), 0), 1);
        assert_eq!(append_at(&plain("y", "1"), 0), 2);
        // segment.ms has passed: this one starts the active segment.
        assert_eq!(append_at(&plain("z", "1"), 5_000), 3);
        assert_eq!(log.lock().segment_count(), 2);

        clean(&log, 2_000).expect("cleans");
        let stored = batches(&log.lock());
        let (first, records) = &stored[0];
        assert_eq!((first.base_offset, first.producer_id), (0, 7));
        assert!(
            records.is_empty(),
            "emptied but kept: not the segment's last batch"
        );
        log.lock().close(0).unwrap();
        drop(log);

        let log = open(dir.path(), config, false);
        let batches = validate_record_set(&mine).unwrap();
        let retry = log.lock().append(&mine, &batches, 0, 6_000).unwrap();
        assert_eq!(retry.base_offset, 0, "rebuilt state still knows the batch");
        assert_eq!(log.lock().log_end_offset(), 4);
    }

    #[test]
    fn keyless_records_are_refused_by_compacted_topics_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), compact_config(1 << 20), true);
        let keyless = batch_of(
            &[(Some("k"), Some("v")), (None, Some("v"))],
            1_000,
            -1,
            -1,
            Compression::Lz4,
        );
        let err = append_raw(&log, &keyless).unwrap_err();
        assert_eq!(err.error, ResponseError::InvalidRecord);
        assert!(err.message.contains("without key"), "{}", err.message);
        assert_eq!(log.lock().log_end_offset(), 0);

        let mut delete = compact_config(1 << 20);
        delete.compact = false;
        log.lock().set_config(delete);
        assert_eq!(append_raw(&log, &keyless).unwrap(), 0);
    }

    #[test]
    fn cleaner_settings_have_kafkas_defaults_and_names() {
        let (config, warnings) = BrokerConfig::from_properties(Properties::new()).unwrap();
        assert!(config.log_cleaner_enable);
        assert_eq!(config.log_cleaner_backoff_ms, 15_000);
        let log = config.default_log_config();
        assert_eq!(log.delete_retention_ms, 86_400_000);
        assert_eq!(log.min_compaction_lag_ms, 0);
        assert_eq!(log.min_cleanable_dirty_ratio, 0.5);
        assert!(warnings.is_empty());

        let props: Properties = [
            ("log.cleaner.enable", "false"),
            ("log.cleaner.backoff.ms", "200"),
            ("log.cleaner.min.cleanable.ratio", "0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (config, warnings) = BrokerConfig::from_properties(props).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!config.log_cleaner_enable);
        assert_eq!(config.log_cleaner_backoff_ms, 200);
        assert_eq!(config.default_log_config().min_cleanable_dirty_ratio, 0.1);

        let bad: Properties = [(
            "log.cleaner.min.cleanable.ratio".to_string(),
            "2".to_string(),
        )]
        .into_iter()
        .collect();
        assert!(BrokerConfig::from_properties(bad).is_err());
    }
}
