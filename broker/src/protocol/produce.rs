//! Produce: validate each partition's record set, append it, answer per partition.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{log_refusal, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::{Appended, Broker};
use crate::error::{ApiError, ApiResult};

/// Produce v3+ carries exactly one record batch per partition; Kafka refuses anything else
/// with INVALID_RECORD before looking further (and with these words).
fn check_one_batch(version: i16, records: Option<&[u8]>) -> ApiResult<()> {
    match records.map(crate::log::batch::count_batches) {
        Some(n) if n > 1 => Err(ApiError::new(
            ResponseError::InvalidRecord,
            format!("Produce requests with version {version} are only allowed to contain exactly one record batch per partition"),
        )),
        _ => Ok(()),
    }
}

/// Returns `None` for acks=0: the producer expects no response at all.
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let access = Access::of(broker, ctx);
    // Kafka: records of a transaction need WRITE on the transactional id, or the whole
    // request is refused (every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
    if access.enabled() && has_transactional_records(&request) {
        let allowed = request.transactional_id.as_ref().is_some_and(|id| {
            access.allows(
                AclOperation::Write,
                ResourceType::TransactionalId,
                id.0.as_str(),
            )
        });
        if !allowed {
            return (acks != 0)
                .then(|| refuse_all(request, ResponseError::TransactionalIdAuthorizationFailed));
        }
    }
    // WRITE on each topic; a topic the producer may not write is refused before its
    // existence is looked at, so an unknown topic does not tell itself apart.
    let writable = access.filter(
        AclOperation::Write,
        ResourceType::Topic,
        request.topic_data.iter().map(|t| t.name.0.as_str()),
    );
    let mut pending: Vec<(usize, String, i32, ApiResult<Appended>)> = Vec::new();
    let mut topic_names = Vec::with_capacity(request.topic_data.len());
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let name = topic.name.0.as_str().to_string();
        let topic_ready = if !writable.contains(&name) {
            Err(ApiError::new(ResponseError::TopicAuthorizationFailed, ""))
        } else if crate::controller::is_internal_topic(&name) {
            Err(ApiError::new(
                ResponseError::InvalidTopicException,
                format!("cannot produce to internal topic {name}"),
            ))
        } else if broker.metadata.image().topic(&name).is_some() {
            Ok(())
        } else if !(access.cluster(AclOperation::Create)
            || access.allows(AclOperation::Create, ResourceType::Topic, &name))
        {
            // Strom auto-creates on produce too; as on Metadata, that needs CREATE. Kafka
            // (which does not create here) answers an absent topic so.
            Err(ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist and the producer may not create it"),
            ))
        } else {
            broker.auto_create(&name, &super::client_key(ctx)).await
        };
        for p in topic.partition_data {
            let appended = topic_ready
                .clone()
                .and_then(|()| check_acks(acks))
                .and_then(|()| check_one_batch(ctx.version(), p.records.as_deref()))
                .and_then(|()| broker.append_records(&name, p.index, p.records.as_ref(), acks));
            pending.push((t, name.clone(), p.index, appended));
        }
        topic_names.push(topic.name);
    }
    // Every partition is appended first and the acks=all waits run together, so a request
    // costs one replication round trip, not one per partition.
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let waits = pending.iter().map(|(_, name, index, appended)| async move {
        match appended {
            Ok(a) if acks == -1 => broker
                .wait_replicated(name, *index, a.required_end, timeout)
                .await
                .map(|()| a.clone()),
            other => other.clone(),
        }
    });
    let results = futures::future::join_all(waits).await;
    if acks == 0 {
        return None;
    }
    let mut responses: Vec<TopicProduceResponse> = topic_names
        .into_iter()
        .map(|n| TopicProduceResponse::default().with_name(n))
        .collect();
    for ((t, name, index, _), result) in pending.iter().zip(results) {
        let response = match result {
            Ok(a) => PartitionProduceResponse::default()
                .with_index(*index)
                .with_base_offset(a.outcome.base_offset)
                .with_log_append_time_ms(a.outcome.log_append_time)
                .with_log_start_offset(a.log_start_offset),
            Err(e) => {
                log_refusal(ctx, &format!("{name}-{index}"), &e);
                PartitionProduceResponse::default()
                    .with_index(*index)
                    .with_error_code(e.code())
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1)
                    // Kafka sends no text with an authorization failure.
                    .with_error_message((!e.message.is_empty()).then(|| str_bytes(&e.message)))
                    .with_record_errors(if ctx.version() >= 8 {
                        record_errors(&e)
                    } else {
                        Vec::new()
                    })
            }
        };
        responses[*t].partition_responses.push(response);
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// KIP-467's per-record errors (encoded from Produce v8 on; older versions drop them and
/// the client fails the whole batch, as with Kafka).
fn record_errors(e: &ApiError) -> Vec<BatchIndexAndErrorMessage> {
    e.record_errors
        .iter()
        .map(|r| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(r.batch_index)
                .with_batch_index_error_message(Some(str_bytes(&r.message)))
        })
        .collect()
}

fn check_acks(acks: i16) -> ApiResult<()> {
    if matches!(acks, -1..=1) {
        Ok(())
    } else {
        Err(ApiError::new(
            ResponseError::InvalidRequiredAcks,
            format!("acks must be -1, 0 or 1, got {acks}"),
        ))
    }
}

/// Kafka's `hasTransactionalRecords`: some partition's first batch is transactional.
fn has_transactional_records(request: &ProduceRequest) -> bool {
    request.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            p.records
                .as_deref()
                .and_then(|r| crate::log::batch::BatchHeader::parse(r).ok())
                .is_some_and(|h| h.is_transactional())
        })
    })
}

/// The whole request answered with one error, every partition carrying it.
fn refuse_all(request: ProduceRequest, error: ResponseError) -> ProduceResponse {
    let responses = request
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(error.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
