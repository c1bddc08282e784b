//! Topic administration (CreateTopics, DeleteTopics, CreatePartitions) and DescribeCluster.
//! Each asks the controller for a decision and commits it; `validate_only` stops after the
//! decision.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse,
};
use uuid::Uuid;

use super::configs::topic_entries;
use super::{log_refusal, str_bytes, topic_name, RequestContext};
use crate::broker::Broker;
use crate::controller::{self, NewTopic};
use crate::error::{ApiError, ApiResult};

/// Runs a controller decision, committing it unless `validate_only`.
fn decide_and_commit<T>(
    broker: &Broker,
    validate_only: bool,
    decide: impl FnOnce(
        &crate::metadata::MetadataImage,
    ) -> ApiResult<(Vec<crate::metadata::MetadataRecord>, T)>,
) -> ApiResult<T> {
    if validate_only {
        decide(&broker.metadata.image()).map(|(_, v)| v)
    } else {
        broker.commit(decide)
    }
}

pub fn create_topics(
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
    let brokers = broker.live_brokers();
    let results = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str().to_string();
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
                decide_and_commit(broker, request.validate_only, |image| {
                    let records = controller::create_topic(image, &defaults, &brokers, &spec)?;
                    Ok((records, ()))
                })
            };
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(()) => {
                    if !request.validate_only {
                        tracing::info!(topic = %name, "created topic");
                    }
                    describe_created(broker, &spec, result, request.validate_only)
                }
                Err(e) => {
                    log_refusal(ctx, &name, &e);
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
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
    let configs = topic_entries(broker, &topic.configs, None)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(e.name))
                .with_value(Some(str_bytes(&e.value)))
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

pub fn delete_topics(
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
    let enabled = broker.config.delete_topic_enable;
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
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
            let outcome = resolved.and_then(|n| {
                broker
                    .commit(|image| Ok((controller::delete_topic(image, &n, enabled)?, ())))
                    .map(|()| n)
            });
            let result = DeletableTopicResult::default()
                .with_name(name.as_deref().map(topic_name))
                .with_topic_id(id);
            match outcome {
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
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub fn create_partitions(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let brokers = broker.live_brokers();
    let results = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str().to_string();
            let assignments: Vec<Vec<i32>> = t
                .assignments
                .iter()
                .flatten()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect();
            let outcome = decide_and_commit(broker, request.validate_only, |image| {
                Ok((
                    controller::create_partitions(image, &brokers, &name, t.count, &assignments)?,
                    (),
                ))
            });
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(()) => result,
                Err(e) => {
                    log_refusal(ctx, &name, &e);
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message)))
                }
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub fn describe_cluster(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    // endpoint_type 1 asks for brokers, 2 for controllers; a single node is both.
    if request.endpoint_type != 1 && request.endpoint_type != 2 {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(
                "endpoint type must be 1 (brokers) or 2 (controllers)",
            )))
            .with_endpoint_type(request.endpoint_type);
    }
    let (host, port) = broker.advertised_endpoint(&ctx.connection.listener);
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(&broker.cluster_id))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id()))
            .with_host(str_bytes(&host))
            .with_port(port as i32)])
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            super::CLUSTER_OPERATIONS
        } else {
            super::OPERATIONS_NOT_REQUESTED
        })
}
