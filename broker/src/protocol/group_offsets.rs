//! Committed offsets: OffsetCommit, OffsetFetch (single and batched groups) and
//! OffsetDelete. Commits and deletions are answered once replicated to the ISR.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};

use super::groups::{coordinate, replicated, WriteKind};
use super::{log_refusal, str_bytes, topic_name, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::error::ApiError;
use crate::group::coordinator::PartitionResult;
use crate::group::Committed;
use crate::log::now_ms;

/// Whether the partition exists; commits for partitions that don't are refused as in Kafka.
fn partition_exists(broker: &Broker, topic: &str, partition: i32) -> bool {
    broker
        .metadata
        .image()
        .topic(topic)
        .is_some_and(|t| t.partitions.contains_key(&partition))
}

/// Builds a per-topic, per-partition response from per-partition results, keeping the
/// request's order; `topic` and `partition` make the response's own types.
fn by_topic<T, P>(
    results: Vec<PartitionResult>,
    topic: impl Fn(&str, Vec<P>) -> T,
    partition: impl Fn(i32, i16) -> P,
) -> Vec<T> {
    let mut grouped: Vec<(String, Vec<P>)> = Vec::new();
    for (name, index, r) in results {
        let p = partition(index, r.err().map(|e| e.code()).unwrap_or(0));
        match grouped.iter_mut().find(|(t, _)| *t == name) {
            Some((_, ps)) => ps.push(p),
            None => grouped.push((name, vec![p])),
        }
    }
    grouped.into_iter().map(|(t, ps)| topic(&t, ps)).collect()
}

pub async fn offset_commit(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = ctx.version();
    let group_id = request.group_id.to_string();
    let access = Access::of(broker, ctx);
    // Kafka: READ on the group (else every partition GROUP_AUTHORIZATION_FAILED), then
    // READ on each topic (else its partitions TOPIC_AUTHORIZATION_FAILED, before their
    // existence is looked at).
    if !access.allows(AclOperation::Read, ResourceType::Group, &group_id) {
        return OffsetCommitResponse::default().with_topics(every_partition(
            &request,
            ResponseError::GroupAuthorizationFailed,
        ));
    }
    let readable = access.filter(
        AclOperation::Read,
        ResourceType::Topic,
        request.topics.iter().map(|t| t.name.0.as_str()),
    );
    let now = now_ms();
    let mut results: Vec<PartitionResult> = Vec::new();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        let name = topic.name.to_string();
        for p in &topic.partitions {
            if !readable.contains(&name) {
                results.push((
                    name.clone(),
                    p.partition_index,
                    Err(ResponseError::TopicAuthorizationFailed),
                ));
            } else if partition_exists(broker, &name, p.partition_index) {
                offsets.push((
                    name.clone(),
                    p.partition_index,
                    Committed {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        commit_timestamp: now,
                    },
                ));
            } else {
                log_refusal(
                    ctx,
                    &group_id,
                    &ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!(
                            "commit for {name}-{} which does not exist",
                            p.partition_index
                        ),
                    ),
                );
                results.push((
                    name.clone(),
                    p.partition_index,
                    Err(ResponseError::UnknownTopicOrPartition),
                ));
            }
        }
    }
    let instance = request
        .group_instance_id
        .as_ref()
        .map(|i| i.to_string())
        .filter(|_| version >= 7);
    let committed = coordinate(broker, &group_id).await.and_then(|()| {
        broker
            .groups
            .commit(
                &**broker,
                &group_id,
                request.generation_id_or_member_epoch,
                &request.member_id,
                instance.as_deref(),
                offsets.clone(),
            )
            .map_err(|e| {
                ApiError::new(
                    e,
                    format!(
                        "commit by member '{}' of generation {}",
                        request.member_id, request.generation_id_or_member_epoch
                    ),
                )
            })
    });
    let committed = match committed {
        Ok(r) if r.iter().any(|(_, _, outcome)| outcome.is_ok()) => {
            match replicated(broker, &group_id, WriteKind::Offsets).await {
                Ok(()) => Ok(r),
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match committed {
        Ok(r) => results.extend(r),
        Err(e) => {
            log_refusal(ctx, &group_id, &e);
            results.extend(offsets.into_iter().map(|(t, p, _)| (t, p, Err(e.error))));
        }
    }
    let topics = by_topic(
        results,
        |name, partitions| {
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        },
        |index, code| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(code)
        },
    );
    OffsetCommitResponse::default().with_topics(topics)
}

/// Every partition of an OffsetCommit request answered with `error`.
fn every_partition(
    request: &OffsetCommitRequest,
    error: ResponseError,
) -> Vec<OffsetCommitResponseTopic> {
    request
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

/// One group's committed offsets as OffsetFetch reports them: per topic, the error its
/// partitions carry (TOPIC_AUTHORIZATION_FAILED for a topic the client may not describe)
/// and the partitions.
type Fetched = Vec<(String, i16, Vec<(i32, Option<Committed>)>)>;

async fn fetch_group(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    access: &Access,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Fetched, ApiError> {
    // Kafka: DESCRIBE on the group; then offsets only of topics the client may DESCRIBE:
    // named ones it may not are answered TOPIC_AUTHORIZATION_FAILED, and when all are
    // asked for, the others are left out.
    if !access.allows(AclOperation::Describe, ResourceType::Group, group_id) {
        return Err(ApiError::new(ResponseError::GroupAuthorizationFailed, ""));
    }
    let (topics, refused) = match topics {
        Some(topics) => {
            let (allowed, refused): (Vec<_>, Vec<_>) = topics
                .into_iter()
                .partition(|(t, _)| access.allows(AclOperation::Describe, ResourceType::Topic, t));
            (Some(allowed), refused)
        }
        None => (None, Vec::new()),
    };
    let fetched = coordinate(broker, group_id).await.and_then(|()| {
        broker
            .groups
            .fetch_offsets(group_id, topics)
            .map_err(|e| ApiError::new(e, "offset fetch refused"))
    });
    match fetched {
        Ok(f) => {
            let mut out: Fetched = f
                .into_iter()
                .filter(|(t, _)| access.allows(AclOperation::Describe, ResourceType::Topic, t))
                .map(|(t, ps)| (t, 0, ps))
                .collect();
            out.extend(refused.into_iter().map(|(t, ps)| {
                (
                    t,
                    ResponseError::TopicAuthorizationFailed.code(),
                    ps.into_iter().map(|p| (p, None)).collect(),
                )
            }));
            Ok(out)
        }
        Err(e) => {
            log_refusal(ctx, group_id, &e);
            Err(e)
        }
    }
}

/// (offset, leader epoch, metadata) for a partition; -1 and "" where nothing is committed.
fn committed_fields(c: Option<Committed>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

pub async fn offset_fetch(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = ctx.version();
    let access = Access::of(broker, ctx);
    if version >= 8 {
        // v8+ (KIP-709) fetches for many groups in one request.
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in &request.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let fetched = fetch_group(broker, ctx, &access, &g.group_id, topics).await;
            groups.push({
                let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                match fetched {
                    Ok(fetched) => group.with_topics(
                        fetched
                            .into_iter()
                            .map(|(topic, code, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(topic_name(&topic))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(p, c)| {
                                                let (offset, epoch, metadata) = committed_fields(c);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_error_code(code)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(str_bytes(&metadata)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                    Err(e) => group.with_error_code(e.code()),
                }
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    // v1 has no "all topics" form; a null list there is read as empty.
    let topics = match request.topics {
        Some(ts) => Some(
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect(),
        ),
        None if version >= 2 => None,
        None => Some(Vec::new()),
    };
    let asked = topics.clone().unwrap_or_default();
    let fetched = fetch_group(broker, ctx, &access, &request.group_id, topics).await;
    // v1 has no top-level error: an error is reported on every asked partition instead.
    let (fetched, partition_error) = match fetched {
        Ok(f) => (f, 0),
        Err(e) if version >= 2 => {
            return OffsetFetchResponse::default().with_error_code(e.code());
        }
        Err(e) => (
            asked
                .into_iter()
                .map(|(t, ps)| (t, 0, ps.into_iter().map(|p| (p, None)).collect()))
                .collect(),
            e.code(),
        ),
    };
    {
        OffsetFetchResponse::default().with_topics(
            fetched
                .into_iter()
                .map(|(topic, code, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(&topic))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, c)| {
                                    let (offset, epoch, metadata) = committed_fields(c);
                                    let mut r = OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(if code != 0 {
                                            code
                                        } else {
                                            partition_error
                                        })
                                        .with_committed_offset(offset)
                                        .with_metadata(Some(str_bytes(&metadata)));
                                    if version >= 5 {
                                        r = r.with_committed_leader_epoch(epoch);
                                    }
                                    r
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }
}

pub async fn offset_delete(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    // Kafka: DELETE on the group, then READ on each topic.
    let access = Access::of(broker, ctx);
    if !access.allows(AclOperation::Delete, ResourceType::Group, &group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let mut results: Vec<PartitionResult> = Vec::new();
    let mut wanted = Vec::new();
    for t in &request.topics {
        let name = t.name.to_string();
        let readable = access.allows(AclOperation::Read, ResourceType::Topic, &name);
        for p in &t.partitions {
            if !readable {
                results.push((
                    name.clone(),
                    p.partition_index,
                    Err(ResponseError::TopicAuthorizationFailed),
                ));
            } else if partition_exists(broker, &name, p.partition_index) {
                wanted.push((name.clone(), p.partition_index));
            } else {
                results.push((
                    name.clone(),
                    p.partition_index,
                    Err(ResponseError::UnknownTopicOrPartition),
                ));
            }
        }
    }
    let outcome = coordinate(broker, &group_id).await.and_then(|()| {
        broker
            .groups
            .delete_offsets(&**broker, &group_id, wanted)
            .map_err(|e| ApiError::new(e, "offset delete refused"))
    });
    let outcome = match outcome {
        Ok(r) => replicated(broker, &group_id, WriteKind::Offsets)
            .await
            .map(|()| r),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(r) => results.extend(r),
        Err(e) => {
            log_refusal(ctx, &group_id, &e);
            return OffsetDeleteResponse::default().with_error_code(e.code());
        }
    }
    for (topic, partition, r) in &results {
        if let Err(e) = r {
            log_refusal(
                ctx,
                &group_id,
                &ApiError::new(*e, format!("offset delete of {topic}-{partition}")),
            );
        }
    }
    let topics = by_topic(
        results,
        |name, partitions| {
            OffsetDeleteResponseTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        },
        |index, code| {
            OffsetDeleteResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(code)
        },
    );
    OffsetDeleteResponse::default().with_topics(topics)
}
