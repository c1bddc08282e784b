//! In-place access to the fixed header of a v2 record batch.
//!
//! Why by hand: `kafka-protocol`'s `RecordBatchDecoder` decodes (and decompresses) every
//! record into owned values, and has no way to patch a field of stored bytes. The hot path
//! needs the opposite: check the CRC, read a few header fields, write the assigned base
//! offset and leader epoch, and store the producer's bytes untouched. The header layout is
//! fixed by the protocol (magic 2), so these are plain reads at fixed positions; the
//! records themselves are only ever decoded with `kafka-protocol` (see `timestamp_search`).

use thiserror::Error;

/// baseOffset (8) + batchLength (4): the part of a batch not counted in batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Everything up to and including recordsCount.
pub const HEADER_LEN: usize = 61;
/// The smallest value batchLength can hold: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;

const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const TIMESTAMP_TYPE_FLAG: i16 = 1 << 3;
const TRANSACTIONAL_FLAG: i16 = 1 << 4;
const CONTROL_FLAG: i16 = 1 << 5;

#[derive(Debug, Error, PartialEq)]
pub enum BatchError {
    #[error("record set is truncated: {0}")]
    Truncated(String),
    #[error("unsupported record batch magic {0}; only v2 batches are accepted")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("malformed record batch: {0}")]
    Malformed(String),
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The fields of a batch header the broker acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads a header from the start of `b`, which must hold at least `HEADER_LEN` bytes.
    pub fn parse(b: &[u8]) -> Result<BatchHeader, BatchError> {
        if b.len() < HEADER_LEN {
            return Err(BatchError::Truncated(format!(
                "{} bytes, a batch header needs {HEADER_LEN}",
                b.len()
            )));
        }
        let magic = b[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let header = BatchHeader {
            base_offset: i64_at(b, 0),
            batch_length: i32_at(b, 8),
            partition_leader_epoch: i32_at(b, PARTITION_LEADER_EPOCH),
            magic,
            crc: i32_at(b, CRC) as u32,
            attributes: i16_at(b, ATTRIBUTES),
            last_offset_delta: i32_at(b, LAST_OFFSET_DELTA),
            base_timestamp: i64_at(b, BASE_TIMESTAMP),
            max_timestamp: i64_at(b, MAX_TIMESTAMP),
            producer_id: i64_at(b, PRODUCER_ID),
            producer_epoch: i16_at(b, PRODUCER_EPOCH),
            base_sequence: i32_at(b, BASE_SEQUENCE),
            records_count: i32_at(b, RECORDS_COUNT),
        };
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::Malformed(format!(
                "batchLength {} is below the header size",
                header.batch_length
            )));
        }
        if header.last_offset_delta < 0 || header.records_count < 0 {
            return Err(BatchError::Malformed(format!(
                "negative lastOffsetDelta {} or recordsCount {}",
                header.last_offset_delta, header.records_count
            )));
        }
        Ok(header)
    }

    /// Bytes the whole batch takes, overhead included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Whether the producer state tracks this batch (an idempotent producer's).
    pub fn has_sequence(&self) -> bool {
        self.has_producer_id() && self.base_sequence >= 0
    }

    /// The sequence of the batch's last record, wrapping as Kafka's sequences do.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// Checks a whole batch (header bytes followed by its records) against its CRC-32C, which
/// covers everything from the attributes on.
pub fn verify_crc(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let computed = crc32c::crc32c(&batch[ATTRIBUTES..header.total_len()]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// The smallest an uncompressed record can be: length, attributes, timestamp delta,
/// offset delta, key length, value length and header count, one varint byte each.
const MIN_RECORD_LEN: usize = 7;
const COMPRESSION_MASK: i16 = 0x7;

/// A producer's batch must say how many records it holds consistently: the count matches
/// the offset span, and (when uncompressed) fits in the bytes. Stored counts are trusted
/// by readers, so a batch claiming billions of records is refused here.
fn check_record_count(header: &BatchHeader) -> Result<(), BatchError> {
    if header.records_count == 0 {
        return Err(BatchError::Malformed("batch holds no records".into()));
    }
    if header.records_count as i64 != header.last_offset_delta as i64 + 1 {
        return Err(BatchError::Malformed(format!(
            "recordsCount {} does not match lastOffsetDelta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    let payload = header.total_len() - HEADER_LEN;
    if header.attributes & COMPRESSION_MASK == 0
        && header.records_count as usize > payload / MIN_RECORD_LEN
    {
        return Err(BatchError::Malformed(format!(
            "{} records cannot fit in {payload} bytes",
            header.records_count
        )));
    }
    Ok(())
}

/// How many batches a record set holds, read from their length fields only (no CRC): what
/// `validate_record_set` later judges in full. A damaged tail counts as one more batch.
pub fn count_batches(records: &[u8]) -> usize {
    let mut count = 0;
    let mut pos = 0;
    while pos < records.len() {
        count += 1;
        let Some(length) = records.get(pos + 8..pos + 12) else {
            break;
        };
        let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        if length <= 0 {
            break;
        }
        pos += LOG_OVERHEAD + length as usize;
    }
    count
}

/// Splits a record set from a produce request into its batches and validates each one.
/// Any damage rejects the whole set: Kafka appends a partition's record set all or nothing.
pub fn validate_record_set(records: &[u8]) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    if records.is_empty() {
        return Err(BatchError::Malformed("empty record set".into()));
    }
    while pos < records.len() {
        let rest = &records[pos..];
        let header = BatchHeader::parse(rest)?;
        if header.total_len() > rest.len() {
            return Err(BatchError::Truncated(format!(
                "batch at byte {pos} claims {} bytes, {} remain",
                header.total_len(),
                rest.len()
            )));
        }
        verify_crc(rest, &header)?;
        check_record_count(&header)?;
        out.push((pos, header));
        pos += header.total_len();
    }
    Ok(out)
}

/// Splits record batches read back from the log (a fetch's bytes, a replay) and checks
/// each one's CRC. Unlike `validate_record_set`, which judges a producer's input, it
/// accepts what compaction leaves: batches holding fewer records than their offset span,
/// and empty ones.
pub fn split_stored(records: &[u8]) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        let header = BatchHeader::parse(rest)?;
        if header.total_len() > rest.len() {
            return Err(BatchError::Truncated(format!(
                "batch at byte {pos} claims {} bytes, {} remain",
                header.total_len(),
                rest.len()
            )));
        }
        verify_crc(rest, &header)?;
        out.push((pos, header));
        pos += header.total_len();
    }
    Ok(out)
}

/// The 16 bytes that precede the CRC-covered part, with the broker's base offset and
/// leader epoch written in: appended in front of the producer's untouched remainder.
pub fn patched_prefix(original: &[u8], base_offset: i64, leader_epoch: i32) -> [u8; 17] {
    let mut prefix = [0u8; 17];
    prefix[0..8].copy_from_slice(&base_offset.to_be_bytes());
    prefix[8..12].copy_from_slice(&original[8..12]);
    prefix[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    prefix[16] = original[MAGIC];
    prefix
}

fn put_i16(b: &mut [u8], at: usize, v: i16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
fn put_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put_i64(b: &mut [u8], at: usize, v: i64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn write_crc(batch: &mut [u8]) {
    let len = LOG_OVERHEAD + i32_at(batch, 8) as usize;
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..len]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Gives a batch the cleaner re-encoded from some of `original`'s records the header
/// fields Kafka keeps when it compacts a batch: attributes (codec, timestamp type,
/// transactional), last offset delta, producer id, epoch and base sequence, leader epoch,
/// and for LogAppendTime the max timestamp, and sets the record count. The base offset and
/// base timestamp come from the encoding. Recomputes the CRC.
pub fn restore_compacted_header(batch: &mut [u8], original: &BatchHeader, records: i32) {
    put_i32(
        batch,
        PARTITION_LEADER_EPOCH,
        original.partition_leader_epoch,
    );
    put_i16(batch, ATTRIBUTES, original.attributes);
    put_i32(batch, LAST_OFFSET_DELTA, original.last_offset_delta);
    if original.attributes & TIMESTAMP_TYPE_FLAG != 0 {
        put_i64(batch, MAX_TIMESTAMP, original.max_timestamp);
    }
    put_i64(batch, PRODUCER_ID, original.producer_id);
    put_i16(batch, PRODUCER_EPOCH, original.producer_epoch);
    put_i32(batch, BASE_SEQUENCE, original.base_sequence);
    put_i32(batch, RECORDS_COUNT, records);
    write_crc(batch);
}

/// A batch with `original`'s offsets and producer fields but no records, as Kafka's
/// cleaner keeps (RETAIN_EMPTY) when every record of a batch is gone but the batch must
/// still say which offsets and sequence numbers it covered.
pub fn empty_batch_like(original: &BatchHeader) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    put_i64(&mut b, 0, original.base_offset);
    put_i32(&mut b, 8, MIN_BATCH_LENGTH);
    put_i32(
        &mut b,
        PARTITION_LEADER_EPOCH,
        original.partition_leader_epoch,
    );
    b[MAGIC] = 2;
    // No records, so no codec; the flags that still mean something stay.
    let keep = TIMESTAMP_TYPE_FLAG | TRANSACTIONAL_FLAG | CONTROL_FLAG;
    put_i16(&mut b, ATTRIBUTES, original.attributes & keep);
    put_i32(&mut b, LAST_OFFSET_DELTA, original.last_offset_delta);
    put_i64(&mut b, BASE_TIMESTAMP, original.max_timestamp);
    put_i64(&mut b, MAX_TIMESTAMP, original.max_timestamp);
    put_i64(&mut b, PRODUCER_ID, original.producer_id);
    put_i16(&mut b, PRODUCER_EPOCH, original.producer_epoch);
    put_i32(&mut b, BASE_SEQUENCE, original.base_sequence);
    put_i32(&mut b, RECORDS_COUNT, 0);
    write_crc(&mut b);
    b
}

/// Rewrites a batch for `message.timestamp.type=LogAppendTime`: the timestamp type flag
/// and max timestamp change, so the CRC must be recomputed. Only this path copies a batch.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = i16_at(batch, ATTRIBUTES) | TIMESTAMP_TYPE_FLAG;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    write_crc(batch);
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Records encoded with kafka-protocol into v2 batches: the one batch builder of the
    /// broker's unit tests.
    pub fn encode_records(records: &[Record], compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    /// A record at `offset` of a batch: `producer_id` -1 for a plain producer (its
    /// sequence then stays -1 + offset, so the encoder keeps one batch).
    pub fn record(offset: i64, producer_id: i64, base_sequence: i32, timestamp: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: base_sequence + offset as i32,
            timestamp,
            key: None,
            value: None,
            headers: Default::default(),
        }
    }

    /// One batch of (key, value) records at timestamp `ts`.
    pub fn batch_of(
        kvs: &[(Option<&str>, Option<&str>)],
        ts: i64,
        producer_id: i64,
        base_sequence: i32,
        compression: Compression,
    ) -> Bytes {
        let records: Vec<Record> = kvs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                key: k.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                ..record(i as i64, producer_id, base_sequence, ts)
            })
            .collect();
        encode_records(&records, compression)
    }

    /// A real batch of values (no keys), for tests.
    pub fn encode_batch(values: &[&[u8]], producer_id: i64, base_sequence: i32) -> Vec<u8> {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                producer_epoch: 0,
                value: Some(bytes::Bytes::copy_from_slice(v)),
                ..record(i as i64, producer_id, base_sequence, 1_000 + i as i64)
            })
            .collect();
        encode_records(&records, Compression::None).to_vec()
    }

    #[test]
    fn counts_batches_from_their_lengths() {
        let one = encode_batch(&[b"a", b"bb"], 7, 0);
        assert_eq!(count_batches(&one), 1);
        let two = [one.clone(), encode_batch(&[b"c"], 7, 2)].concat();
        assert_eq!(count_batches(&two), 2);
        let damaged_tail = [one.clone(), vec![0; 5]].concat();
        assert_eq!(
            count_batches(&damaged_tail),
            2,
            "a partial second batch still counts"
        );
        assert_eq!(count_batches(&[]), 0);
    }

    #[test]
    fn parses_and_checks_crc() {
        let batch = encode_batch(&[b"a", b"bb", b"ccc"], 7, 0);
        let set = validate_record_set(&batch).unwrap();
        assert_eq!(set.len(), 1);
        let h = set[0].1;
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.producer_id, 7);
        assert_eq!(h.last_sequence(), 2);
        assert_eq!(h.total_len(), batch.len());
    }

    #[test]
    fn flipped_bit_fails_crc() {
        let mut batch = encode_batch(&[b"hello"], -1, -1);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(
            validate_record_set(&batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn truncated_and_bad_magic_rejected() {
        let batch = encode_batch(&[b"hello"], -1, -1);
        assert!(matches!(
            validate_record_set(&batch[..batch.len() - 1]),
            Err(BatchError::Truncated(_))
        ));
        let mut old = batch.clone();
        old[MAGIC] = 1;
        assert_eq!(
            validate_record_set(&old),
            Err(BatchError::UnsupportedMagic(1))
        );
    }

    #[test]
    fn impossible_record_counts_rejected() {
        let mut batch = encode_batch(&[b"a", b"b"], -1, -1);
        batch[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
        batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_record_set(&batch),
            Err(BatchError::Malformed(_))
        ));
    }

    #[test]
    fn patching_offset_keeps_crc_valid() {
        let batch = encode_batch(&[b"x", b"y"], -1, -1);
        let prefix = patched_prefix(&batch, 42, 3);
        let mut stored = prefix.to_vec();
        stored.extend_from_slice(&batch[17..]);
        let set = validate_record_set(&stored).unwrap();
        assert_eq!(set[0].1.base_offset, 42);
        assert_eq!(set[0].1.partition_leader_epoch, 3);
    }

    #[test]
    fn stored_batches_may_be_compacted_or_empty() {
        let full = encode_batch(&[b"a", b"b"], 5, 0);
        let header = validate_record_set(&full).unwrap()[0].1;
        let empty = empty_batch_like(&header);
        let mut set = full.clone();
        set.extend_from_slice(&empty);
        assert!(
            validate_record_set(&set).is_err(),
            "not acceptable from a producer"
        );
        let split = split_stored(&set).unwrap();
        assert_eq!(split.len(), 2);
        assert_eq!(split[1].0, full.len());
        assert_eq!(split[1].1.records_count, 0);
        assert_eq!(split[1].1.last_offset_delta, 1);
        assert_eq!((split[1].1.producer_id, split[1].1.base_sequence), (5, 0));
        set[full.len() + 30] ^= 1;
        assert!(matches!(
            split_stored(&set),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn log_append_time_restamps_and_recomputes_crc() {
        let mut batch = encode_batch(&[b"x"], -1, -1);
        stamp_log_append_time(&mut batch, 99);
        let set = validate_record_set(&batch).unwrap();
        assert_eq!(set[0].1.max_timestamp, 99);
    }
}
