//! Follower-side operations on a partition log: storing batches copied from the leader
//! exactly as the leader stored them, and cutting the log back where it diverged.

use std::collections::HashMap;
use std::io;
use std::ops::Bound;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{
    note_producer_batch, write_atomically, PartitionLog, LOG_START_FILE, RECOVERY_POINT_FILE,
};
use crate::error::ApiError;
use crate::log::batch::BatchHeader;
use crate::log::segment::{self, Segment};
use crate::txn::producer_state::ProducerStateTable;

/// The result of storing one record set fetched from the leader.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicatedAppend {
    /// Base offset of the first batch written; -1 when every batch was already here.
    pub first_offset: i64,
    /// Last offset of the last batch written; -1 when nothing was written.
    pub last_offset: i64,
    /// Records written (as the batch headers count them).
    pub records: i64,
    pub bytes: u64,
    pub log_end_offset: i64,
}

impl PartitionLog {
    /// Stores batches from the leader's Fetch response (`batches` from
    /// `batch::split_stored` or `batch::validate_record_set`) unmodified: they carry the
    /// leader's offsets and leader epochs, and the leader already checked sequences and
    /// sizes. Batches wholly below the log end are a re-sent fetch and skipped. The first
    /// batch kept must start exactly at the log end, and each next one right after the
    /// previous, unless the topic is compacted, where the leader's cleaner leaves holes;
    /// anything else is refused before a byte is written.
    ///
    /// max.message.bytes is not applied: the leader accepted the batch, and a follower
    /// refusing it (say after a config change) could never catch up again.
    pub fn append_replicated(
        &mut self,
        records: &Bytes,
        batches: &[(usize, BatchHeader)],
        now_ms: i64,
    ) -> Result<ReplicatedAppend, ApiError> {
        self.check_usable().map_err(|e| self.io_error(e))?;
        let kept = self.batches_to_copy(records.len(), batches)?;
        let mut outcome = ReplicatedAppend {
            first_offset: -1,
            last_offset: -1,
            records: 0,
            bytes: 0,
            log_end_offset: self.log_end_offset(),
        };
        for (pos, h) in kept {
            let raw = &records[pos..pos + h.total_len()];
            self.make_room_for(&h, now_ms)
                .map_err(|e| self.io_error(e))?;
            if let Err(e) = self.active_mut().append(&[raw], &h, now_ms) {
                let e = self.write_error(e);
                return Err(self.io_error(e));
            }
            self.record_producer_batch(&h);
            self.epochs
                .assign(h.partition_leader_epoch, h.base_offset)
                .map_err(|e| self.io_error(e))?;
            if outcome.first_offset < 0 {
                outcome.first_offset = h.base_offset;
            }
            outcome.last_offset = h.last_offset();
            outcome.records += h.records_count as i64;
            outcome.bytes += h.total_len() as u64;
            self.unflushed_messages += h.last_offset_delta as i64 + 1;
        }
        if self.unflushed_messages >= self.config.flush_messages
            || now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
        {
            self.flush(now_ms).map_err(|e| self.io_error(e))?;
        }
        outcome.log_end_offset = self.log_end_offset();
        Ok(outcome)
    }

    /// Which of the leader's batches to write, judged before anything is written.
    ///
    /// A hole or overlap at the log end is OFFSET_OUT_OF_RANGE rather than
    /// KAFKA_STORAGE_ERROR: the local disk is fine (a storage error would mark it failed),
    /// the fetched data just does not continue this log, so the fetcher should re-fetch
    /// from the log end or, for a batch straddling it, ask the leader where to truncate.
    fn batches_to_copy(
        &self,
        records_len: usize,
        batches: &[(usize, BatchHeader)],
    ) -> Result<Vec<(usize, BatchHeader)>, ApiError> {
        let leo = self.log_end_offset();
        let mut expected = leo;
        let mut kept: Vec<(usize, BatchHeader)> = Vec::new();
        for &(pos, h) in batches {
            let last = h.base_offset.checked_add(h.last_offset_delta as i64);
            let in_bounds = pos
                .checked_add(h.total_len())
                .is_some_and(|end| end <= records_len);
            let Some(last) = last.filter(|_| in_bounds && h.base_offset >= 0) else {
                return Err(ApiError::new(
                    ResponseError::CorruptMessage,
                    format!(
                        "replicated batch at byte {pos} with base offset {} does not fit the record set on {}",
                        h.base_offset, self.name
                    ),
                ));
            };
            if kept.is_empty() && last < leo {
                continue;
            }
            if h.base_offset < expected {
                let (error, why) = if kept.is_empty() {
                    (
                        ResponseError::OffsetOutOfRange,
                        "straddles the log end; the log diverged from the leader's mid-batch",
                    )
                } else {
                    (
                        ResponseError::CorruptMessage,
                        "overlaps the batch before it",
                    )
                };
                return Err(ApiError::new(
                    error,
                    format!(
                        "replicated batch {}..={last} {why} (expected offset {expected}) on {}",
                        h.base_offset, self.name
                    ),
                ));
            }
            if h.base_offset > expected && !self.config.compact {
                return Err(ApiError::new(
                    ResponseError::OffsetOutOfRange,
                    format!(
                        "replicated batch starts at {}, but the log continues at {expected} (log end {leo}): offsets in between would be missing on {}",
                        h.base_offset, self.name
                    ),
                ));
            }
            expected = last + 1;
            kept.push((pos, h));
        }
        Ok(kept)
    }

    /// Rolls as `append` does, the new segment based at the batch (past the log end after
    /// a compaction hole). An empty active segment that cannot address the batch with
    /// 32-bit relative offsets is replaced by one based at the batch.
    fn make_room_for(&mut self, h: &BatchHeader, now_ms: i64) -> io::Result<()> {
        if self.roll_needed(h.total_len() as u64, h.last_offset(), now_ms) {
            return self.roll_at(h.base_offset, now_ms);
        }
        let active = self.active();
        if active.is_empty() && h.last_offset() - active.base_offset > i32::MAX as i64 {
            let base = active.base_offset;
            let created = Segment::create(
                &self.dir,
                h.base_offset,
                self.config.index_interval_bytes,
                &self.handles,
            );
            let seg = match created {
                Ok(seg) => seg,
                Err(e) => {
                    // As in `roll_at`: no half-made segment may stay on disk.
                    let cleanup = segment::remove_files(&self.dir, h.base_offset);
                    self.fatal(cleanup)?;
                    return Err(e);
                }
            };
            // The new segment goes in before the old one goes out: the log always has an
            // active segment, even when removing the old one's files fails.
            let empty = self.segments.remove(&base);
            self.segments.insert(h.base_offset, seg);
            if let Some(empty) = empty {
                let removed = empty.delete();
                self.fatal(removed)?;
            }
        }
        Ok(())
    }

    /// Kafka's follower truncation: removes every batch holding an offset at or after
    /// `offset` (a batch holding `offset` goes whole, so the log then ends at its base) and
    /// returns the new log end offset. Nothing happens when `offset` is at or past the end.
    ///
    /// The log never ends below its start: when `offset` is below the log start, or the
    /// batch holding it began below the log start (DeleteRecords can start a log
    /// mid-batch), the log is emptied instead and restarted at `offset` or at the log
    /// start respectively, as `truncate_fully_and_start_at`.
    ///
    /// Crash safety: the recovery point is lowered on disk first, later segments are
    /// deleted newest first, and a segment's indexes are cut before its log, so whatever
    /// a crash interrupts, `open` finds a prefix of the old log that it checks in full.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, ApiError> {
        self.check_usable().map_err(|e| self.io_error(e))?;
        let old_leo = self.log_end_offset();
        if offset >= old_leo {
            return Ok(old_leo);
        }
        if offset < self.log_start_offset {
            self.truncate_fully_and_start_at(offset)?;
            return Ok(offset);
        }
        // A background flush of a segment about to go would otherwise move the recovery
        // point past the new end when it completes. Neither step cuts anything yet, so
        // their failure leaves the log as it was.
        self.reap_roll_flushes(true)
            .and_then(|()| self.lower_recovery_point(offset))
            .map_err(|e| self.io_error(e))?;
        // A truncation broken off part way leaves files and state apart.
        let cut = self.truncate_segments(offset);
        self.fatal(cut).map_err(|e| self.io_error(e))?;
        let new_leo = self.log_end_offset();
        if new_leo < self.log_start_offset {
            let start = self.log_start_offset;
            self.truncate_fully_and_start_at(start)?;
            return Ok(start);
        }
        self.epochs
            .truncate_from(new_leo)
            .map_err(|e| self.io_error(e))?;
        self.rebuild_producer_state_from_log()
            .map_err(|e| self.io_error(e))?;
        tracing::info!(
            partition = %self.name,
            old_log_end_offset = old_leo,
            new_log_end_offset = new_leo,
            requested = offset,
            "truncated partition log"
        );
        Ok(new_leo)
    }

    /// Cuts the segments; the caller has collected background flushes and lowered the
    /// recovery point to `offset`.
    fn truncate_segments(&mut self, offset: i64) -> io::Result<()> {
        let doomed: Vec<i64> = self
            .segments
            .range((Bound::Excluded(offset), Bound::Unbounded))
            .map(|(base, _)| *base)
            .collect();
        for base in doomed.iter().rev() {
            if let Some(seg) = self.segments.remove(base) {
                seg.delete()?;
            }
        }
        // Some segment starts at or below `offset` (it is at least the log start), so one
        // is left to hold the cut.
        self.active_mut().truncate_to(offset)?;
        if !doomed.is_empty() {
            segment::sync_dir(&self.dir)?;
        }
        let leo = self.log_end_offset();
        self.lower_recovery_point(leo)?;
        self.unflushed_messages = self
            .unflushed_messages
            .min(leo - self.recovery_point)
            .max(0);
        Ok(())
    }

    /// Replays every batch header from the log start, so the idempotent producer state
    /// forgets batches a truncation removed. Truncation is rare; a full scan is simpler
    /// than keeping snapshots to roll back to.
    fn rebuild_producer_state_from_log(&mut self) -> io::Result<()> {
        let mut producers = ProducerStateTable::default();
        let mut last_batches = HashMap::new();
        self.scan_headers(self.log_start_offset, |h| {
            note_producer_batch(&mut producers, &mut last_batches, h)
        })?;
        self.producers = producers;
        self.last_batch_of_producer = last_batches;
        Ok(())
    }

    /// For a follower whose fetch offset is below the leader's log start: drops every
    /// segment and starts empty at `offset` (log start = log end = `offset`), with no
    /// leader epochs and no producer state. Old segments go newest first and the new one
    /// is created before the log start file moves, so a crash leaves either a prefix of
    /// the old log or the new empty one, and `open` accepts both.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), ApiError> {
        self.check_usable().map_err(|e| self.io_error(e))?;
        if offset < 0 {
            return Err(ApiError::new(
                ResponseError::OffsetOutOfRange,
                format!("cannot restart {} at negative offset {offset}", self.name),
            ));
        }
        let old_leo = self.log_end_offset();
        let restarted = self.restart_empty_at(offset);
        self.fatal(restarted).map_err(|e| self.io_error(e))?;
        tracing::info!(
            partition = %self.name,
            old_log_end_offset = old_leo,
            new_log_end_offset = offset,
            "truncated partition log fully and restarted it"
        );
        Ok(())
    }

    fn restart_empty_at(&mut self, offset: i64) -> io::Result<()> {
        self.reap_roll_flushes(true)?;
        self.lower_recovery_point(offset)?;
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for base in bases.iter().rev() {
            if let Some(seg) = self.segments.remove(base) {
                seg.delete()?;
            }
        }
        // Replaces index files a crash during an earlier delete may have left at this base.
        let seg = Segment::create(
            &self.dir,
            offset,
            self.config.index_interval_bytes,
            &self.handles,
        )?;
        self.segments.insert(offset, seg);
        segment::sync_dir(&self.dir)?;
        write_atomically(
            &self.dir.join(LOG_START_FILE),
            offset.to_string().as_bytes(),
        )?;
        self.log_start_offset = offset;
        // Nothing is stored, so everything up to the new end is trivially durable.
        write_atomically(
            &self.dir.join(RECOVERY_POINT_FILE),
            offset.to_string().as_bytes(),
        )?;
        self.recovery_point = offset;
        self.unflushed_messages = 0;
        self.epochs.clear()?;
        self.producers = ProducerStateTable::default();
        self.last_batch_of_producer.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
