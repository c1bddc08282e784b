//! Moving coordinator records in and out of `__consumer_offsets` record batches: encoding
//! a write, and replaying a partition when this broker becomes its leader.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::records::{GroupValue, OffsetValue, RecordKey};
use super::state::Group;
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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    pub records: usize,
    pub skipped: usize,
    /// The partition's log end offset when the replay finished.
    pub end_offset: i64,
}

/// The groups of one `__consumer_offsets` partition as its records are replayed, kept
/// apart from the groups being served until the load is installed, so a load that loses
/// its partition half-way can simply be dropped.
#[derive(Debug)]
pub struct PartitionLoad {
    pub(crate) partition: i32,
    pub(crate) epoch: u64,
    pub(crate) groups: HashMap<String, Group>,
    pub(crate) stats: LoadStats,
}

impl PartitionLoad {
    pub(crate) fn new(partition: i32, epoch: u64) -> PartitionLoad {
        PartitionLoad {
            partition,
            epoch,
            groups: HashMap::new(),
            stats: LoadStats::default(),
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    fn group(&mut self, id: &str) -> &mut Group {
        self.groups
            .entry(id.to_string())
            .or_insert_with(|| Group::new(id, crate::log::now_ms()))
    }

    /// Applies one record read back from the partition, oldest first; counts it as
    /// loaded, or as skipped when it cannot be read.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let outcome = self.apply_record(key, value);
        match outcome {
            Ok(()) => self.stats.records += 1,
            Err(_) => self.stats.skipped += 1,
        }
        outcome
    }

    fn apply_record(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key = RecordKey::decode(key).map_err(|e| format!("bad key: {e}"))?;
        match key {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => match value {
                Some(v) => {
                    let v = OffsetValue::decode(v).map_err(|e| format!("bad offset value: {e}"))?;
                    self.group(&group)
                        .offsets
                        .insert((topic, partition), v.into());
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            RecordKey::Group { group } => match value {
                Some(v) => {
                    let v = GroupValue::decode(v).map_err(|e| format!("bad group value: {e}"))?;
                    self.group(&group).restore(v, Instant::now());
                }
                None => {
                    self.groups.remove(&group);
                }
            },
        }
        Ok(())
    }
}

/// Bytes read per step while replaying.
const READ_CHUNK: usize = 1 << 20;

/// Replays every record of one `__consumer_offsets` partition into `load`, oldest first,
/// so it ends with the latest committed offsets and group metadata. A record that cannot
/// be read is logged and skipped; it must not keep every other group from loading.
/// Reads files: run it on a blocking thread.
pub fn replay(load: &mut PartitionLoad, partition: &Partition) -> Result<(), ApiError> {
    let (mut offset, end) = {
        let log = partition.log.lock();
        (log.log_start_offset(), log.log_end_offset())
    };
    while offset < end {
        let chunk = partition
            .log
            .lock()
            .read(offset, READ_CHUNK, true, i64::MAX)?;
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
                    load.stats.skipped += 1;
                    continue;
                }
            };
            for record in set.records {
                if record.offset < offset || record.control {
                    continue;
                }
                let Some(key) = record.key.as_ref() else {
                    load.stats.skipped += 1;
                    continue;
                };
                if let Err(why) = load.apply(key, record.value.as_deref()) {
                    tracing::warn!(partition = %partition.id, offset = record.offset, %why,
                        "offsets topic record skipped");
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    load.stats.end_offset = offset.max(end);
    Ok(())
}
