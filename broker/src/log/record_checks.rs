//! Per-record checks of a produced record set, answered as Kafka 4.4's log validator
//! answers them (KIP-467): every offending record is named by its index in its batch, so
//! clients fail only those records, and the partition error sums them up.
//!
//! Decoding a batch costs a decompression, so a batch is decoded only when a rule needs
//! its records: keys on a compacted topic, or timestamps when the batch header's first or
//! largest timestamp lies outside `message.timestamp.before.max.ms` / `after.max.ms`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;

use super::batch::BatchHeader;
use crate::error::{ApiError, RecordError};

/// Kafka's "no timestamp" value, which no bound applies to.
const NO_TIMESTAMP: i64 = -1;
/// Bit 3 of a batch's attributes: LogAppendTime.
const LOG_APPEND_TIME_FLAG: i16 = 1 << 3;

/// What a partition's config asks of each record.
#[derive(Debug, Clone, Copy)]
pub struct RecordRules {
    /// cleanup.policy=compact: a record without a key could never be compacted.
    pub require_keys: bool,
    /// message.timestamp.before.max.ms and after.max.ms, or `None` for LogAppendTime
    /// topics, whose records get the broker's time anyway.
    pub timestamp_bounds: Option<(i64, i64)>,
}

/// Whether `timestamp` is further than the bounds from `now` (Kafka's rule, on differences
/// so that the defaults' Long.MAX cannot overflow).
fn out_of_range(timestamp: i64, now: i64, (before, after): (i64, i64)) -> bool {
    if timestamp == NO_TIMESTAMP {
        return false;
    }
    let diff = i128::from(timestamp) - i128::from(now);
    diff > i128::from(after) || -diff > i128::from(before)
}

/// Refuses the record set if any record breaks `rules`; Ok when all pass.
pub fn check(
    records: &Bytes,
    batches: &[(usize, BatchHeader)],
    partition: &str,
    rules: RecordRules,
    now: i64,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let mut bad_timestamp = false;
    for (pos, h) in batches {
        let bounds = rules
            .timestamp_bounds
            .filter(|_| h.attributes & LOG_APPEND_TIME_FLAG == 0);
        let timestamps_suspect = bounds.is_some_and(|b| {
            out_of_range(h.base_timestamp, now, b) || out_of_range(h.max_timestamp, now, b)
        });
        if !rules.require_keys && !timestamps_suspect {
            continue;
        }
        let mut raw = records.slice(*pos..*pos + h.total_len());
        let set = RecordBatchDecoder::decode(&mut raw).map_err(|e| {
            ApiError::new(
                ResponseError::CorruptMessage,
                format!("record batch for {partition} does not decode: {e}"),
            )
        })?;
        for (index, record) in set.records.iter().enumerate() {
            let batch_index = i32::try_from(index).unwrap_or(i32::MAX);
            if let Some(b) = bounds.filter(|b| out_of_range(record.timestamp, now, *b)) {
                bad_timestamp = true;
                errors.push(RecordError {
                    batch_index,
                    message: format!(
                        "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                        record.timestamp,
                        record.offset,
                        now.wrapping_sub(b.0),
                        now.wrapping_add(b.1)
                    ),
                });
            } else if rules.require_keys && record.key.is_none() {
                errors.push(RecordError {
                    batch_index,
                    message: format!(
                        "Compacted topic cannot accept message without key in topic partition {partition}"
                    ),
                });
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let error = if bad_timestamp {
        ApiError::new(
            ResponseError::InvalidTimestamp,
            "One or more records have been rejected due to invalid timestamp",
        )
    } else {
        ApiError::new(ResponseError::InvalidRecord, summary(&errors))
    };
    Err(error.with_record_errors(errors))
}

/// Kafka's partition-level message for a batch refused for some of its records.
fn summary(errors: &[RecordError]) -> String {
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| {
            format!(
                "RecordError(batchIndex={}, message='{}')",
                e.batch_index, e.message
            )
        })
        .collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::{encode_records, record};
    use crate::log::batch::validate_record_set;
    use kafka_protocol::records::{Compression, Record};

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn batch(records: &[(Option<&str>, i64)]) -> Bytes {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, timestamp))| Record {
                key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: Some(Bytes::from_static(b"v")),
                ..record(i as i64, -1, -1, *timestamp)
            })
            .collect();
        encode_records(&records, Compression::Lz4)
    }

    fn run(records: &Bytes, rules: RecordRules) -> Result<(), ApiError> {
        let batches = validate_record_set(records).expect("valid");
        check(records, &batches, "t-0", rules, NOW)
    }

    const KAFKA_DEFAULTS: RecordRules = RecordRules {
        require_keys: false,
        timestamp_bounds: Some((i64::MAX, HOUR)),
    };

    #[test]
    fn records_within_kafkas_default_bounds_pass() {
        let old = batch(&[
            (Some("a"), 0),
            (Some("b"), NOW - 365 * 24 * HOUR),
            (None, NOW + HOUR),
        ]);
        assert!(run(&old, KAFKA_DEFAULTS).is_ok());
    }

    #[test]
    fn only_the_future_records_are_named() {
        let b = batch(&[
            (Some("a"), NOW),
            (Some("b"), NOW + 2 * HOUR),
            (Some("c"), NOW + HOUR + 1),
        ]);
        let e = run(&b, KAFKA_DEFAULTS).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidTimestamp);
        assert_eq!(
            e.message,
            "One or more records have been rejected due to invalid timestamp"
        );
        let named: Vec<i32> = e.record_errors.iter().map(|r| r.batch_index).collect();
        assert_eq!(named, vec![1, 2]);
        assert_eq!(
            e.record_errors[0].message,
            format!(
                "Timestamp {} of message with offset 1 is out of range. The timestamp should be within [{}, {}]",
                NOW + 2 * HOUR,
                NOW.wrapping_sub(i64::MAX),
                NOW + HOUR
            )
        );
    }

    #[test]
    fn a_lower_bound_refuses_old_records_and_log_append_time_topics_skip_bounds() {
        let b = batch(&[(Some("a"), NOW - 2 * HOUR), (Some("b"), NOW)]);
        let rules = RecordRules {
            require_keys: false,
            timestamp_bounds: Some((HOUR, HOUR)),
        };
        assert_eq!(run(&b, rules).unwrap_err().record_errors.len(), 1);
        let log_append_time = RecordRules {
            require_keys: false,
            timestamp_bounds: None,
        };
        assert!(run(&b, log_append_time).is_ok());
    }

    #[test]
    fn keyless_records_on_a_compacted_topic_are_invalid_records() {
        let b = batch(&[(Some("a"), NOW), (None, NOW), (None, NOW)]);
        let rules = RecordRules {
            require_keys: true,
            timestamp_bounds: Some((i64::MAX, HOUR)),
        };
        let e = run(&b, rules).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidRecord);
        assert_eq!(e.record_errors.len(), 2);
        assert!(e
            .message
            .starts_with("One or more records have been rejected due to 2 record errors"));
    }
}
