//! Produce: validate each partition's record set, append it, answer per partition.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{log_refusal, str_bytes, RequestContext};
use crate::broker::Broker;
use crate::error::{ApiError, ApiResult};
use crate::log::batch::{self, BatchError};
use crate::log::{now_ms, AppendOutcome};

/// Returns `None` for acks=0: the producer expects no response at all.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.as_str().to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        let topic_ready = if broker.metadata.image().topic(&name).is_some() {
            Ok(())
        } else {
            broker.auto_create(&name)
        };
        for p in topic.partition_data {
            let result = topic_ready
                .clone()
                .and_then(|()| check_acks(acks))
                .and_then(|()| append(broker, &name, p.index, p.records.as_ref(), acks));
            let response = match result {
                Ok((outcome, log_start)) => PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_base_offset(outcome.base_offset)
                    .with_log_append_time_ms(outcome.log_append_time)
                    .with_log_start_offset(log_start),
                Err(e) => {
                    log_refusal(ctx, &format!("{name}-{}", p.index), &e);
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(e.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(Some(str_bytes(&e.message)))
                }
            };
            partitions.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
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

fn batch_error(e: BatchError) -> ApiError {
    let code = match e {
        BatchError::CrcMismatch { .. } | BatchError::Truncated(_) => ResponseError::CorruptMessage,
        BatchError::UnsupportedMagic(_) | BatchError::Malformed(_) => ResponseError::InvalidRecord,
    };
    ApiError::new(code, e.to_string())
}

/// Validates and appends one partition's records; returns the outcome and log start offset.
fn append(
    broker: &Broker,
    topic: &str,
    partition: i32,
    records: Option<&bytes::Bytes>,
    acks: i16,
) -> ApiResult<(AppendOutcome, i64)> {
    let partition_state = broker.partition_or_error(topic, partition)?;
    let records = records.filter(|r| !r.is_empty()).ok_or_else(|| {
        ApiError::new(
            ResponseError::InvalidRecord,
            "produce request without records",
        )
    })?;
    let batches = batch::validate_record_set(records).map_err(batch_error)?;
    if let Some((_, h)) = batches
        .iter()
        .find(|(_, h)| h.is_transactional() || h.is_control())
    {
        return Err(ApiError::new(
            ResponseError::InvalidTxnState,
            format!(
                "producer {} sent a transactional or control batch; transactions are not supported yet",
                h.producer_id
            ),
        ));
    }
    let leader_epoch = broker.leader_epoch(topic, partition);
    let (outcome, log_start, leo) = {
        let mut log = partition_state.log.lock();
        if acks == -1 {
            // The ISR of a single broker is itself: acks=all can only be met when the
            // topic does not ask for more in-sync replicas than that.
            let isr = 1;
            let min_isr = log.config().min_insync_replicas;
            if isr < min_isr {
                return Err(ApiError::new(
                    ResponseError::NotEnoughReplicas,
                    format!("{topic}-{partition} has {isr} in-sync replica(s), min.insync.replicas is {min_isr}"),
                ));
            }
        }
        let outcome = log.append(records, &batches, leader_epoch, now_ms())?;
        (outcome, log.log_start_offset(), log.log_end_offset())
    };
    partition_state.publish_end(leo);
    broker
        .metrics
        .record_produce(topic, outcome.bytes, outcome.records);
    Ok((outcome, log_start))
}
