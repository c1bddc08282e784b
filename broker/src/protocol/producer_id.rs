//! InitProducerId for idempotent producers. Transactional ids need the transaction
//! coordinator, which a later issue adds; until then they are refused with a clear error.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{log_refusal, RequestContext};
use crate::broker::Broker;
use crate::error::{ApiError, ApiResult};

async fn assign(broker: &Broker, request: &InitProducerIdRequest) -> ApiResult<(i64, i16)> {
    if let Some(id) = &request.transactional_id {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "transactional.id '{}' asked for; transactions are not supported yet",
                id.0.as_str()
            ),
        ));
    }
    // KIP-360: an idempotent producer may ask to bump its epoch after an error instead of
    // taking a new id; it keeps the id unless the epoch would overflow.
    let (id, epoch) = (request.producer_id.0, request.producer_epoch);
    if id >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        return Ok((id, epoch + 1));
    }
    let timeout = std::time::Duration::from_millis(broker.config.cluster.quorum_request_timeout_ms);
    Ok((
        broker
            .producer_ids
            .next_id(&broker.metadata, timeout)
            .await?,
        0,
    ))
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    match assign(broker, &request).await {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => {
            log_refusal(ctx, "producer id", &e);
            InitProducerIdResponse::default()
                .with_error_code(e.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
