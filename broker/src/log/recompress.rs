//! A topic's `compression.type`: `producer` keeps batches as sent; a codec (or
//! `uncompressed`) makes the leader rewrite a batch in that codec before appending it, as
//! Kafka's log validator does. A batch already in the topic's codec is stored as sent, so
//! the common case costs nothing.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use super::batch::{BatchError, BatchHeader};

/// The codec bits of a v2 batch's attributes.
const CODEC_MASK: i16 = 0x07;

/// What `compression.type` asks of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicCompression {
    /// Store what the producer sent (Kafka's default).
    #[default]
    Producer,
    /// Store every batch in this codec (`uncompressed` is `Compression::None`).
    Codec(Compression),
}

impl TopicCompression {
    /// From a validated `compression.type` value; anything else keeps the producer's.
    pub fn parse(value: &str) -> TopicCompression {
        match value.trim() {
            "uncompressed" => TopicCompression::Codec(Compression::None),
            "gzip" => TopicCompression::Codec(Compression::Gzip),
            "snappy" => TopicCompression::Codec(Compression::Snappy),
            "lz4" => TopicCompression::Codec(Compression::Lz4),
            "zstd" => TopicCompression::Codec(Compression::Zstd),
            _ => TopicCompression::Producer,
        }
    }

    /// The codec to rewrite `batches` in, or `None` when they can be stored as sent.
    pub fn rewrite_to(self, batches: &[(usize, BatchHeader)]) -> Option<Compression> {
        match self {
            TopicCompression::Producer => None,
            TopicCompression::Codec(codec) => batches
                .iter()
                .any(|(_, h)| h.attributes & CODEC_MASK != codec as i16)
                .then_some(codec),
        }
    }
}

/// Rewrites a validated record set with `codec`. Records keep their offsets deltas,
/// timestamps, keys, values, headers and producer id, epoch and sequences, so idempotence
/// and the time index see the same batch; only the codec (and so the CRC) changes.
pub fn rewrite(records: &Bytes, codec: Compression) -> Result<Bytes, BatchError> {
    let mut input = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut input)
        .map_err(|e| BatchError::Malformed(format!("cannot decompress to recompress: {e}")))?;
    let mut out = BytesMut::with_capacity(records.len());
    for set in sets {
        RecordBatchEncoder::encode(
            &mut out,
            &set.records,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .map_err(|e| BatchError::Malformed(format!("cannot recompress as {codec:?}: {e}")))?;
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::batch_of;
    use crate::log::batch::validate_record_set;
    use kafka_protocol::records::Record;

    fn batch(codec: Compression, producer_id: i64, base_sequence: i32) -> Bytes {
        let keys: Vec<String> = (0..5).map(|i| format!("key-{i}")).collect();
        let value = "v".repeat(200);
        let kvs: Vec<_> = keys
            .iter()
            .map(|k| (Some(k.as_str()), Some(value.as_str())))
            .collect();
        batch_of(&kvs, 1_700_000_000_000, producer_id, base_sequence, codec)
    }

    fn decoded(records: &Bytes) -> Vec<Record> {
        let mut b = records.clone();
        RecordBatchDecoder::decode_all(&mut b)
            .expect("decode")
            .into_iter()
            .flat_map(|s| s.records)
            .collect()
    }

    #[test]
    fn only_a_batch_in_another_codec_is_rewritten() {
        let gzip = batch(Compression::Gzip, -1, -1);
        let headers = validate_record_set(&gzip).expect("valid");
        let topic = TopicCompression::parse("gzip");
        assert_eq!(
            topic.rewrite_to(&headers),
            None,
            "already gzip: stored as sent"
        );
        assert_eq!(
            TopicCompression::parse("producer").rewrite_to(&headers),
            None
        );
        assert_eq!(
            TopicCompression::parse("uncompressed").rewrite_to(&headers),
            Some(Compression::None)
        );
        assert_eq!(
            TopicCompression::parse("zstd").rewrite_to(&headers),
            Some(Compression::Zstd)
        );
    }

    #[test]
    fn rewriting_keeps_every_record_and_the_producer_fields() {
        for (from, to) in [
            (Compression::None, Compression::Gzip),
            (Compression::Snappy, Compression::Zstd),
            (Compression::Lz4, Compression::None),
            (Compression::Zstd, Compression::Lz4),
        ] {
            for (producer_id, base_sequence) in [(-1, -1), (42, 17)] {
                let sent = batch(from, producer_id, base_sequence);
                let stored = rewrite(&sent, to).expect("rewrite");
                let headers = validate_record_set(&stored).expect("a valid batch with a good CRC");
                assert_eq!(headers.len(), 1, "{from:?} -> {to:?}: still one batch");
                let h = headers[0].1;
                assert_eq!(h.attributes & CODEC_MASK, to as i16);
                assert_eq!(
                    (h.producer_id, h.base_sequence, h.records_count),
                    (producer_id, base_sequence, 5)
                );
                assert_eq!(decoded(&stored), decoded(&sent), "{from:?} -> {to:?}");
            }
        }
    }
}
