//! Moving coordinator records in and out of `__consumer_offsets` record batches: encoding
//! a write, and replaying a partition into the coordinator when the broker starts.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::GroupCoordinator;
use crate::error::{ApiError, ApiResult};
use crate::log::{batch, Partition};

/// One uncompressed v2 batch of keyed records (`None` values are tombstones).
pub fn encode_batch(records: Vec<(Bytes, Option<Bytes>)>, now_ms: i64) -> ApiResult<Bytes> {
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| {
        ApiError::new(
            ResponseError::UnknownServerError,
            format!("encoding coordinator records failed: {e}"),
        )
    })?;
    Ok(buf.freeze())
}

/// What replaying one partition found.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadStats {
    pub records: usize,
    pub skipped: usize,
}

/// Bytes read per step while replaying.
const READ_CHUNK: usize = 1 << 20;

/// Replays every record of one `__consumer_offsets` partition, oldest first, so the
/// coordinator ends with the latest committed offsets and group metadata. A record that
/// cannot be read is logged and skipped; it must not keep every other group from loading.
pub fn load_partition(
    coordinator: &GroupCoordinator,
    partition: &Partition,
) -> Result<LoadStats, ApiError> {
    let mut stats = LoadStats::default();
    let (mut offset, end) = {
        let log = partition.log.lock();
        (log.log_start_offset(), log.log_end_offset())
    };
    while offset < end {
        let chunk = partition.log.lock().read(offset, READ_CHUNK, true)?;
        if chunk.is_empty() {
            break;
        }
        let chunk = Bytes::from(chunk);
        let headers = batch::split_stored(&chunk).map_err(|e| {
            ApiError::new(
                ResponseError::CorruptMessage,
                format!("{} at offset {offset}: {e}", partition.id),
            )
        })?;
        let Some((_, last)) = headers.last() else {
            break;
        };
        let next = last.last_offset() + 1;
        for (pos, h) in &headers {
            let mut one = chunk.slice(*pos..*pos + h.total_len());
            let set = match RecordBatchDecoder::decode(&mut one) {
                Ok(set) => set,
                Err(e) => {
                    tracing::error!(partition = %partition.id, base_offset = h.base_offset, error = %e,
                        "unreadable batch in the offsets topic skipped");
                    stats.skipped += 1;
                    continue;
                }
            };
            for record in set.records {
                if record.offset < offset || record.control {
                    continue;
                }
                let Some(key) = record.key.as_ref() else {
                    stats.skipped += 1;
                    continue;
                };
                match coordinator.load_record(key, record.value.as_deref()) {
                    Ok(()) => stats.records += 1,
                    Err(why) => {
                        tracing::warn!(partition = %partition.id, offset = record.offset, %why,
                            "offsets topic record skipped");
                        stats.skipped += 1;
                    }
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(stats)
}
