//! Topic administration (CreateTopics, DeleteTopics, CreatePartitions).
//! Each asks the controller for a decision and commits it; `validate_only` stops after the
//! decision. The controller also charges each topic to the request's controller mutation
//! quota (KIP-599, see `throttle::MutationQuota`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse,
};
use uuid::Uuid;

use super::configs::topic_entries;
use super::throttle::MutationQuota;
use super::{log_refusal, str_bytes, topic_name, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::controller::NewTopic;
use crate::error::{ApiError, ApiResult};
use crate::quorum::{ControllerOk, ControllerRequest};

pub async fn create_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.as_str().to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let defaults = broker.defaults();
    // Kafka (ControllerApis): CREATE on the cluster covers every topic, else CREATE on
    // each; the configs of a created topic are returned only with DESCRIBE_CONFIGS on it.
    let access = Access::of(broker, ctx);
    let cluster_create = access.cluster(AclOperation::Create);
    let mut mutations = MutationQuota::of(broker, ctx, 6);
    let mut results = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = t.name.0.as_str().to_string();
        if !duplicates.contains(&name)
            && !cluster_create
            && !access.allows(AclOperation::Create, ResourceType::Topic, &name)
        {
            results.push(
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Authorization failed.")))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
            continue;
        }
        let spec = NewTopic {
            name: name.clone(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect::<BTreeMap<_, _>>(),
            configs: t
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.as_str().to_string(),
                        c.value.as_ref().map(|v| v.as_str().to_string()),
                    )
                })
                .collect(),
        };
        let outcome = if duplicates.contains(&name) {
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("topic '{name}' appears more than once in the request"),
            ))
        } else {
            let create = ControllerRequest::CreateTopic {
                topic: spec.clone(),
                defaults: defaults.clone(),
                if_absent: false,
                validate_only: request.validate_only,
                quota: mutations.requester(),
            };
            mutate(broker, &mut mutations, create).await.map(|_| ())
        };
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(()) => {
                if !request.validate_only {
                    tracing::info!(topic = %name, "created topic");
                    broker.await_image(|i| i.topic(&name).is_some()).await;
                }
                if access.allows(AclOperation::DescribeConfigs, ResourceType::Topic, &name) {
                    describe_created(broker, &spec, result, request.validate_only)
                } else {
                    describe_created(broker, &spec, result, request.validate_only)
                        .with_configs(None)
                        .with_topic_config_error_code(
                            ResponseError::TopicAuthorizationFailed.code(),
                        )
                }
            }
            Err(e) => {
                log_refusal(ctx, &name, &e);
                result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            }
        });
    }
    CreateTopicsResponse::default()
        .with_topics(results)
        .with_throttle_time_ms(mutations.finish())
}

/// Asks the controller for one topic's mutation; the throttle its quota charge gave goes
/// to `quota`. Whether the topic was created (for CreateTopic), or why not.
async fn mutate(
    broker: &Broker,
    quota: &mut MutationQuota<'_>,
    request: ControllerRequest,
) -> ApiResult<bool> {
    match broker.controller(request).await? {
        ControllerOk::Mutation {
            outcome,
            throttle_ms,
        } => {
            quota.note(throttle_ms);
            outcome
        }
        ControllerOk::Created(created) => Ok(created),
        _ => Ok(true),
    }
}

/// Fills the v5+ fields: the topic's id, partition count, replication factor and configs.
fn describe_created(
    broker: &Broker,
    spec: &NewTopic,
    result: CreatableTopicResult,
    validate_only: bool,
) -> CreatableTopicResult {
    let image = broker.metadata.image();
    let Some(topic) = image.topic(&spec.name).filter(|_| !validate_only) else {
        let partitions = if spec.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            spec.num_partitions
        };
        let rf = if spec.replication_factor == -1 {
            broker.config.default_replication_factor
        } else {
            spec.replication_factor
        };
        return result
            .with_num_partitions(partitions)
            .with_replication_factor(rf);
    };
    let rf = topic
        .partitions
        .values()
        .next()
        .map(|p| p.replicas.len())
        .unwrap_or(0) as i16;
    let configs = topic_entries(broker, &topic.configs)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(&e.name))
                .with_value(e.value.as_deref().map(str_bytes))
                .with_config_source(e.source)
                .with_read_only(false)
        })
        .collect();
    result
        .with_topic_id(topic.topic_id)
        .with_num_partitions(topic.partitions.len() as i32)
        .with_replication_factor(rf)
        .with_configs(Some(configs))
}

pub async fn delete_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; older versions by name only.
    let mut targets: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.as_str().to_string()), Uuid::nil()))
        .collect();
    targets.extend(request.topics.iter().map(|t| {
        (
            t.name.as_ref().map(|n| n.0.as_str().to_string()),
            t.topic_id,
        )
    }));
    // Kafka (ControllerApis): DELETE on the cluster covers every topic. Otherwise a topic
    // named that the client may not DESCRIBE is TOPIC_AUTHORIZATION_FAILED whether or not
    // it exists; one it may describe but not DELETE too; a topic named by id that the
    // client may not delete is refused, its name given only if it may describe it.
    let access = Access::of(broker, ctx);
    let cluster_delete = access.cluster(AclOperation::Delete);
    let describable =
        |n: &str| cluster_delete || access.allows(AclOperation::Describe, ResourceType::Topic, n);
    let deletable =
        |n: &str| cluster_delete || access.allows(AclOperation::Delete, ResourceType::Topic, n);
    let mut mutations = MutationQuota::of(broker, ctx, 5);
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let refusal = match &name {
            Some(n)
                if !describable(n)
                    || (broker.metadata.image().topic(n).is_some() && !deletable(n)) =>
            {
                Some((Some(n.clone()), Uuid::nil()))
            }
            Some(_) => None,
            None => broker
                .metadata
                .image()
                .topic_by_id(&id)
                .filter(|t| !deletable(&t.name))
                .map(|t| (describable(&t.name).then(|| t.name.clone()), id)),
        };
        if let Some((shown, id)) = refusal {
            responses.push(
                DeletableTopicResult::default()
                    .with_name(shown.as_deref().map(topic_name))
                    .with_topic_id(id)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Topic authorization failed."))),
            );
            continue;
        }
        let resolved = match &name {
            Some(n) => Ok(n.clone()),
            None => broker
                .metadata
                .image()
                .topic_by_id(&id)
                .map(|t| t.name.clone())
                .ok_or_else(|| {
                    ApiError::new(
                        ResponseError::UnknownTopicId,
                        format!("no topic has id {id}"),
                    )
                }),
        };
        let outcome = match resolved {
            Ok(n) => {
                let delete = ControllerRequest::DeleteTopic {
                    name: n.clone(),
                    quota: mutations.requester(),
                };
                mutate(broker, &mut mutations, delete).await.map(|_| n)
            }
            Err(e) => Err(e),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(topic_name))
            .with_topic_id(id);
        responses.push(match outcome {
            Ok(n) => {
                tracing::info!(topic = %n, "deleted topic");
                result.with_name(Some(topic_name(&n)))
            }
            Err(e) => {
                log_refusal(ctx, name.as_deref().unwrap_or("?"), &e);
                result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.message)))
            }
        });
    }
    DeleteTopicsResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(mutations.finish())
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    // Kafka: ALTER on each topic (TOPIC_AUTHORIZATION_FAILED, no message).
    let access = Access::of(broker, ctx);
    let mut mutations = MutationQuota::of(broker, ctx, 3);
    let mut results = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = t.name.0.as_str().to_string();
        if !access.allows(AclOperation::Alter, ResourceType::Topic, &name) {
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
            );
            continue;
        }
        let assignments: Vec<Vec<i32>> = t
            .assignments
            .iter()
            .flatten()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect();
        let create = ControllerRequest::CreatePartitions {
            name: name.clone(),
            count: t.count,
            assignments,
            validate_only: request.validate_only,
            quota: mutations.requester(),
        };
        let outcome = mutate(broker, &mut mutations, create).await.map(|_| ());
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(()) => result,
            Err(e) => {
                log_refusal(ctx, &name, &e);
                result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.message)))
            }
        });
    }
    CreatePartitionsResponse::default()
        .with_results(results)
        .with_throttle_time_ms(mutations.finish())
}
