//! InitProducerId for idempotent producers. Transactional ids need the transaction
//! coordinator, which a later issue adds; until then they are refused with a clear error.
//!
//! Which error: the Java producer (Kafka 4.4's `TransactionManager.InitProducerIdHandler`)
//! retries NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE and every other retriable error
//! until `max.block.ms`, and then reports only a TimeoutException; it reports the
//! authorization errors as such, which would be a lie; and it fails every other error at
//! once, fatally, as "Unexpected error in InitProducerIdResponse; " plus the error's
//! standard text (InitProducerId has no message field). Of those, INVALID_REQUEST's text
//! is the true one ("... sent to an incompatible broker. See the broker logs for more
//! details.") and the broker log says why; UNSUPPORTED_VERSION's ("The version of API is
//! not supported.") would send the user after client versions, though this API version
//! is served. FindCoordinator(TRANSACTION) could carry Strom's own message into the
//! producer's exception, but the admin tools (`kafka-transactions describe`) would then
//! differ from Kafka, where an unknown id is TRANSACTIONAL_ID_NOT_FOUND; it keeps
//! answering as Kafka does.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{log_refusal, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::error::{ApiError, ApiResult};

/// The refusal of a transactional producer (module comment: why INVALID_REQUEST).
fn transactions_unsupported(transactional_id: &str) -> ApiError {
    ApiError::new(
        ResponseError::InvalidRequest,
        format!(
            "transactions are not supported: a producer with transactional.id \
             '{transactional_id}' asked for a producer id; Strom has no transaction \
             coordinator yet (idempotent producers without transactional.id work)"
        ),
    )
}

async fn assign(broker: &Broker, request: &InitProducerIdRequest) -> ApiResult<(i64, i16)> {
    if let Some(id) = &request.transactional_id {
        return Err(transactions_unsupported(id.0.as_str()));
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
    if let Some(error) = authorization(&Access::of(broker, ctx), &request) {
        return InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match assign(broker, &request).await {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => {
            if request.transactional_id.is_some() {
                // The client only sees a generic error: this line is where the
                // user finds out why.
                tracing::warn!(peer = %ctx.connection.peer, client_id = ?ctx.header.client_id,
                    reason = %e.message, "transactional producer refused");
            } else {
                log_refusal(ctx, "producer id", &e);
            }
            InitProducerIdResponse::default()
                .with_error_code(e.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}

/// Kafka's `handleInitProducerIdRequest` checks: a transactional producer needs WRITE on
/// its transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent one
/// IDEMPOTENT_WRITE on the cluster or, since KIP-679, WRITE on at least one topic
/// (CLUSTER_AUTHORIZATION_FAILED).
fn authorization(access: &Access, request: &InitProducerIdRequest) -> Option<ResponseError> {
    match &request.transactional_id {
        Some(id) => (!access.allows(
            AclOperation::Write,
            ResourceType::TransactionalId,
            id.0.as_str(),
        ))
        .then_some(ResponseError::TransactionalIdAuthorizationFailed),
        None => (!access.cluster(AclOperation::IdempotentWrite)
            && !access.allows_any(AclOperation::Write, ResourceType::Topic))
        .then_some(ResponseError::ClusterAuthorizationFailed),
    }
}
