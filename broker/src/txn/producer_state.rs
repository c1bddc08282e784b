//! Per-partition idempotent producer state, Kafka's rules: for each producer id the broker
//! remembers the epoch and the last five batches' sequence ranges. A retried batch that
//! matches one of them is acknowledged with its original offset and not written again; a
//! gap in the sequence is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is fenced.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::log::batch::BatchHeader;

/// How many recent batches per producer are remembered for duplicate detection; the same
/// as Kafka, and the reason clients cap `max.in.flight.requests.per.connection` at 5.
const CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// The max timestamp of its last batch, which DescribeProducers reports (-1 in state
    /// saved before it was kept, until the producer writes again).
    #[serde(default = "no_timestamp")]
    pub last_timestamp: i64,
}

fn no_timestamp() -> i64 {
    -1
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data: append it.
    Append,
    /// Already stored at this base offset: acknowledge without writing.
    Duplicate { base_offset: i64 },
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStateTable {
    /// Judges a batch (header as sent by the producer) against what is stored.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, ApiError> {
        if !header.has_producer_id() || header.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let pid = header.producer_id;
        let Some(entry) = self.producers.get(&pid) else {
            if header.base_sequence == 0 {
                return Ok(SequenceCheck::Append);
            }
            return Err(ApiError::new(
                ResponseError::OutOfOrderSequenceNumber,
                format!(
                    "producer {pid} is unknown here and its first batch starts at sequence {} instead of 0",
                    header.base_sequence
                ),
            ));
        };
        if header.producer_epoch < entry.epoch {
            return Err(ApiError::new(
                ResponseError::InvalidProducerEpoch,
                format!(
                    "producer {pid} sent epoch {} but epoch {} is current",
                    header.producer_epoch, entry.epoch
                ),
            ));
        }
        if header.producer_epoch > entry.epoch {
            if header.base_sequence == 0 {
                return Ok(SequenceCheck::Append);
            }
            return Err(ApiError::new(
                ResponseError::OutOfOrderSequenceNumber,
                format!(
                    "producer {pid} bumped its epoch to {} but started at sequence {}",
                    header.producer_epoch, header.base_sequence
                ),
            ));
        }
        let last_seq = header.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map(|b| next_seq(b.last_seq))
            .unwrap_or(0);
        if header.base_sequence != expected {
            return Err(ApiError::new(
                ResponseError::OutOfOrderSequenceNumber,
                format!(
                    "producer {pid} epoch {} sent sequence {}, expected {expected}",
                    header.producer_epoch, header.base_sequence
                ),
            ));
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch that was appended (or found in the log during recovery); the header
    /// carries the base offset it was stored at.
    pub fn record(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() || header.base_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: -1,
            });
        if header.producer_epoch > entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = header.max_timestamp;
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            base_offset: header.base_offset,
        });
        while entry.batches.len() > CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// A table holding only the given producers, to judge a request's batches in order
    /// without touching the real state until they are written.
    pub fn clone_for(&self, pids: impl Iterator<Item = i64>) -> ProducerStateTable {
        let mut subset = ProducerStateTable::default();
        for pid in pids {
            if let Some(entry) = self.producers.get(&pid) {
                subset.producers.insert(pid, entry.clone());
            }
        }
        subset
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Every producer remembered here, by id.
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let mut producers: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(id, entry)| ActiveProducer {
                producer_id: *id,
                epoch: entry.epoch,
                last_sequence: entry.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: entry.last_timestamp,
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        producers
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{tests::encode_batch, validate_record_set};

    fn header(pid: i64, seq: i32, n: usize, offset: i64) -> BatchHeader {
        let values: Vec<&[u8]> = (0..n).map(|_| b"v".as_slice()).collect();
        let raw = encode_batch(&values, pid, seq);
        let mut h = validate_record_set(&raw).unwrap()[0].1;
        h.base_offset = offset;
        h
    }

    #[test]
    fn duplicates_are_detected_and_gaps_refused() {
        let mut table = ProducerStateTable::default();
        let first = header(1, 0, 3, 0);
        assert_eq!(table.check(&first).unwrap(), SequenceCheck::Append);
        table.record(&first);
        assert_eq!(
            table.check(&header(1, 0, 3, 99)).unwrap(),
            SequenceCheck::Duplicate { base_offset: 0 }
        );
        let gap = table.check(&header(1, 5, 1, 0)).unwrap_err();
        assert_eq!(gap.error, ResponseError::OutOfOrderSequenceNumber);
        assert_eq!(
            table.check(&header(1, 3, 1, 3)).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn unknown_producer_must_start_at_zero() {
        let table = ProducerStateTable::default();
        assert!(table.check(&header(9, 4, 1, 0)).is_err());
        assert!(table.check(&header(-1, -1, 1, 0)).is_ok());
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&header(1, i, 1, i as i64));
        }
        assert!(matches!(
            table.check(&header(1, 6, 1, 0)).unwrap(),
            SequenceCheck::Duplicate { base_offset: 6 }
        ));
        assert!(table.check(&header(1, 0, 1, 0)).is_err());
    }
}
