//! Producer id allocation for InitProducerId. Ids come from blocks the active controller
//! reserves in the metadata log, so an id is never handed out twice, even across restarts
//! and brokers (a restart skips the rest of its block, as Kafka's brokers do).

use std::time::Duration;

use kafka_protocol::error::ResponseError;

use crate::controller;
use crate::error::{ApiError, ApiResult};
use crate::quorum::{ControllerOk, ControllerRequest, Metadata};

#[derive(Debug, Default)]
pub struct ProducerIdManager {
    /// The next id to hand out and the end of the reserved block. Held across the
    /// controller round trip, so concurrent callers wait for one new block.
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub async fn next_id(&self, metadata: &Metadata, timeout: Duration) -> ApiResult<i64> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let start = match metadata
                .request(ControllerRequest::AllocateProducerIds, timeout)
                .await?
            {
                ControllerOk::ProducerIdBlock(start) => start,
                other => {
                    return Err(ApiError::new(
                        ResponseError::UnknownServerError,
                        format!("unexpected controller reply {other:?}"),
                    ))
                }
            };
            *block = (start, start + controller::PRODUCER_ID_BLOCK);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
