//! Offset questions about a partition's log: ListOffsets, OffsetForLeaderEpoch and
//! DeleteRecords (which moves the log start offset).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use super::{log_refusal, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::error::{ApiError, ApiResult};

/// TOPIC_AUTHORIZATION_FAILED (without text, as Kafka) unless `allowed`.
fn denied_unless(allowed: bool) -> ApiResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(ResponseError::TopicAuthorizationFailed, ""))
    }
}

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// Checks a request's view of the leader epoch against ours.
fn check_epoch(broker: &Broker, topic: &str, partition: i32, requested: i32) -> ApiResult<i32> {
    let epoch = broker.leader_epoch(topic, partition);
    if requested >= 0 && requested < epoch {
        return Err(ApiError::new(
            ResponseError::FencedLeaderEpoch,
            format!("leader epoch {requested} is older than {epoch}"),
        ));
    }
    if requested > epoch {
        return Err(ApiError::new(
            ResponseError::UnknownLeaderEpoch,
            format!("leader epoch {requested} is newer than {epoch}"),
        ));
    }
    Ok(epoch)
}

/// (timestamp, offset) for one ListOffsets query.
fn lookup(
    broker: &Broker,
    topic: &str,
    partition: i32,
    timestamp: i64,
    version: i16,
) -> ApiResult<(i64, i64)> {
    let p = broker.led_partition(topic, partition)?;
    let log = p.log.lock();
    match timestamp {
        // Consumers see the log up to the high watermark only.
        LATEST => Ok((-1, p.high_watermark())),
        EARLIEST => Ok((-1, log.log_start_offset())),
        MAX_TIMESTAMP if version >= 7 => Ok(log
            .max_timestamp_offset()?
            .map(|(o, t)| (t, o))
            .unwrap_or((-1, -1))),
        t if t >= 0 => Ok(log
            .offset_for_timestamp(t)?
            .map(|(o, t)| (t, o))
            .unwrap_or((-1, -1))),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("timestamp {other} is not a valid ListOffsets query at v{version}"),
        )),
    }
}

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // Kafka: DESCRIBE on each topic, refused before its existence is looked at.
    let access = Access::of(broker, ctx);
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.as_str().to_string();
            let allowed = access.allows(AclOperation::Describe, ResourceType::Topic, &name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = denied_unless(allowed).and_then(|()| {
                        check_epoch(broker, &name, p.partition_index, p.current_leader_epoch)
                            .and_then(|epoch| {
                                lookup(broker, &name, p.partition_index, p.timestamp, ctx.version())
                                    .map(|found| (epoch, found))
                            })
                    });
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok((epoch, (timestamp, offset))) => response
                            .with_timestamp(timestamp)
                            .with_offset(offset)
                            // The leader epoch field exists from v4 on.
                            .with_leader_epoch(if offset >= 0 && ctx.version() >= 4 {
                                epoch
                            } else {
                                -1
                            }),
                        Err(e) => {
                            log_refusal(ctx, &format!("{name}-{}", p.partition_index), &e);
                            response
                                .with_error_code(e.code())
                                .with_timestamp(-1)
                                .with_offset(-1)
                                .with_leader_epoch(-1)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub fn handle_leader_epoch(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // Kafka: CLUSTER_ACTION (a follower) covers every topic; otherwise DESCRIBE on each.
    let access = Access::of(broker, ctx);
    let cluster_action = access.cluster(AclOperation::ClusterAction);
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.as_str().to_string();
            let allowed =
                cluster_action || access.allows(AclOperation::Describe, ResourceType::Topic, &name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = denied_unless(allowed)
                        .and_then(|()| {
                            check_epoch(broker, &name, p.partition, p.current_leader_epoch)
                        })
                        .and_then(|_| broker.led_partition(&name, p.partition))
                        .map(|part| part.log.lock().end_offset_for_epoch(p.leader_epoch));
                    let response = EpochEndOffset::default().with_partition(p.partition);
                    match result {
                        Ok((epoch, end)) => response.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => {
                            log_refusal(ctx, &format!("{name}-{}", p.partition), &e);
                            response
                                .with_error_code(e.code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub fn handle_delete_records(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    // Kafka: DELETE on each topic.
    let access = Access::of(broker, ctx);
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.as_str().to_string();
            let allowed = access.allows(AclOperation::Delete, ResourceType::Topic, &name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = denied_unless(allowed)
                        .and_then(|()| broker.led_partition(&name, p.partition_index))
                        .and_then(|part| part.log.lock().delete_records_before(p.offset));
                    let response = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok(low) => {
                            tracing::info!(partition = %format!("{name}-{}", p.partition_index),
                                log_start_offset = low, "records deleted");
                            response.with_low_watermark(low)
                        }
                        Err(e) => {
                            log_refusal(ctx, &format!("{name}-{}", p.partition_index), &e);
                            response.with_low_watermark(-1).with_error_code(e.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
