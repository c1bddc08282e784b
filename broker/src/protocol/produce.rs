//! Produce: validate each partition's record set, append it, answer per partition.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{log_refusal, str_bytes, RequestContext};
use crate::broker::Broker;
use crate::error::{ApiError, ApiResult};

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
        let topic_ready = if crate::controller::is_internal_topic(&name) {
            Err(ApiError::new(
                ResponseError::InvalidTopicException,
                format!("cannot produce to internal topic {name}"),
            ))
        } else if broker.metadata.image().topic(&name).is_some() {
            Ok(())
        } else {
            broker.auto_create(&name)
        };
        for p in topic.partition_data {
            let result = topic_ready
                .clone()
                .and_then(|()| check_acks(acks))
                .and_then(|()| broker.append_records(&name, p.index, p.records.as_ref(), acks));
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
