//! Record batches for tests that shape Produce requests by hand (malformed input,
//! idempotence, a write to exactly one broker): the fields such records share, and
//! kafka-protocol's encoder for an uncompressed v2 batch.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record outside any producer session (no producer id, epoch or sequence, as a
/// non-idempotent client writes it), at `offset` within its batch, created at
/// `timestamp` (ms). Other shapes: `Record { producer_id, sequence, ..record(...) }`.
pub fn record(offset: i64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// `records` as uncompressed v2 batches (the encoder starts a new batch wherever the
/// producer fields or offset − sequence change).
pub fn encode_batch(records: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    // Uncompressed records in memory: only a record too large for the format fails.
    .expect("encode record batch");
    buf.freeze()
}

/// `values` as one uncompressed v2 batch as a producer without idempotence writes it (no
/// producer id, base sequence −1), every record created at `timestamp` (ms).
pub fn plain_batch(timestamp: i64, values: impl IntoIterator<Item = Bytes>) -> Bytes {
    // The encoder starts a new batch wherever offset − sequence changes: sequences that
    // trail the offsets by one keep the records together with a base sequence of −1.
    let records: Vec<Record> = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| Record {
            sequence: i as i32 - 1,
            ..record(i as i64, timestamp, None, Some(value))
        })
        .collect();
    encode_batch(&records)
}

/// Milliseconds since the Unix epoch: a record timestamp retention will not act on.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn a_batch_decodes_to_its_records() {
        let records: Vec<Record> = (0..3)
            .map(|i| record(i, 1_000 + i, None, Some(Bytes::from(format!("v{i}")))))
            .collect();
        let mut bytes = encode_batch(&records);
        // Without sequences, offset − sequence changes with every record: one batch each.
        let batches = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        assert_eq!(batches.len(), 3);
        let decoded: Vec<&Record> = batches.iter().flat_map(|b| &b.records).collect();
        let values: Vec<_> = decoded.iter().map(|r| r.value.clone()).collect();
        assert_eq!(
            values,
            records.iter().map(|r| r.value.clone()).collect::<Vec<_>>()
        );
        assert!(decoded
            .iter()
            .all(|r| r.producer_id == -1 && r.timestamp >= 1_000));
    }

    #[test]
    fn a_plain_batch_is_one_batch_without_a_producer() {
        let values: Vec<Bytes> = (0..5).map(|i| Bytes::from(format!("v{i}"))).collect();
        let mut bytes = plain_batch(7, values.clone());
        let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
        assert_eq!(info.len(), 1, "{info:?}");
        assert_eq!((info[0].producer_id, info[0].base_sequence), (-1, -1));
        let batches = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        let decoded: Vec<_> = batches[0].records.iter().map(|r| r.value.clone()).collect();
        assert_eq!(decoded, values.into_iter().map(Some).collect::<Vec<_>>());
    }
}
