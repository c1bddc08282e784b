//! Produce: validate each partition's record set, append it, answer per partition.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{log_refusal, str_bytes, RequestContext};
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
    let mut pending: Vec<(usize, String, i32, ApiResult<Appended>)> = Vec::new();
    let mut topic_names = Vec::with_capacity(request.topic_data.len());
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let name = topic.name.0.as_str().to_string();
        let topic_ready = if crate::controller::is_internal_topic(&name) {
            Err(ApiError::new(
                ResponseError::InvalidTopicException,
                format!("cannot produce to internal topic {name}"),
            ))
        } else if broker.metadata.image().topic(&name).is_some() {
            Ok(())
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
                    .with_error_message(Some(str_bytes(&e.message)))
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
