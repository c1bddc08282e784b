//! Producer id allocation for InitProducerId. Ids come from blocks reserved in the metadata
//! log, so an id is never handed out twice, even across restarts (a restart skips the rest
//! of its block, as Kafka's brokers do).

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use crate::controller;
use crate::error::{ApiError, ApiResult};
use crate::metadata::store::CommitError;
use crate::metadata::MetadataStore;

#[derive(Debug, Default)]
pub struct ProducerIdManager {
    /// The next id to hand out and the end of the reserved block.
    block: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn next_id(&self, store: &MetadataStore) -> ApiResult<i64> {
        let mut block = self.block.lock();
        if block.0 >= block.1 {
            let (_, start) = store
                .commit_with(|image| Ok::<_, ApiError>(controller::allocate_producer_ids(image)))
                .map_err(|e| match e {
                    CommitError::Rejected(e) => e,
                    CommitError::Io(io) => ApiError::new(
                        ResponseError::KafkaStorageError,
                        format!("cannot reserve producer ids: {io}"),
                    ),
                })?;
            *block = (start, start + controller::PRODUCER_ID_BLOCK);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
