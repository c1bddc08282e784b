//! Metadata: brokers, topics and partitions. Unknown topics a client names are submitted
//! for auto-creation and answered at once (LEADER_NOT_AVAILABLE while being created).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use uuid::Uuid;

use super::{log_refusal, str_bytes, topic_name, RequestContext, OPERATIONS_NOT_REQUESTED};
use crate::auth::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::metadata::{MetadataImage, TopicImage, NO_LEADER};

/// How many refused topic names of one Metadata request are logged one by one.
const REFUSALS_LOGGED: usize = 5;

fn topic_response(
    image: &MetadataImage,
    topic: &TopicImage,
    operations: i32,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.topic_id)
        .with_is_internal(crate::controller::is_internal_topic(&topic.name))
        .with_topic_authorized_operations(operations)
        .with_partitions(
            topic
                .partitions
                .values()
                .map(|p| {
                    let error = if p.leader == NO_LEADER {
                        ResponseError::LeaderNotAvailable.code()
                    } else {
                        0
                    };
                    MetadataResponsePartition::default()
                        .with_error_code(error)
                        .with_partition_index(p.partition)
                        .with_leader_id(BrokerId(p.leader))
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                        .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                        .with_offline_replicas(
                            p.replicas
                                .iter()
                                .filter(|r| !image.is_live(**r))
                                .map(|r| BrokerId(*r))
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn error_topic(name: Option<&str>, id: Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(code)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

/// Every unfenced broker with its endpoint for the listener the client came through (the
/// client must reach all brokers the way it reached this one).
pub fn brokers(
    broker: &Broker,
    image: &MetadataImage,
    listener: &str,
) -> Vec<(i32, String, u16, Option<String>)> {
    let mut out: Vec<(i32, String, u16, Option<String>)> = image
        .brokers
        .values()
        .filter(|b| !b.fenced || b.id == broker.node_id())
        .filter_map(|b| {
            let e = b.endpoints.iter().find(|e| e.listener == listener)?;
            Some((b.id, e.host.clone(), e.port, b.rack.clone()))
        })
        .collect();
    if !out.iter().any(|(id, ..)| *id == broker.node_id()) {
        let (host, port) = broker.advertised_endpoint(listener);
        out.push((
            broker.node_id(),
            host,
            port,
            broker.config.cluster.rack.clone(),
        ));
        out.sort_by_key(|(id, ..)| *id);
    }
    out
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: MetadataRequest,
) -> MetadataResponse {
    // Before v4 a Metadata request always allowed auto-creation.
    let allow_create = ctx.version() < 4 || request.allow_auto_topic_creation;
    let access = Access::of(broker, ctx);
    // Kafka's `authorizedOperations` for each topic answered, when asked for.
    let topic_ops = |name: &str| {
        if request.include_topic_authorized_operations {
            access.operations(ResourceType::Topic, name)
        } else {
            OPERATIONS_NOT_REQUESTED
        }
    };
    // The cluster field exists in v8 to v10 only; without DESCRIBE on the cluster it is 0.
    let cluster_ops =
        if request.include_cluster_authorized_operations && (8..=10).contains(&ctx.version()) {
            if access.cluster(AclOperation::Describe) {
                access.operations(ResourceType::Cluster, CLUSTER_NAME)
            } else {
                0
            }
        } else {
            OPERATIONS_NOT_REQUESTED
        };
    let mut topics = Vec::new();
    match request.topics {
        None => {
            // Every topic the client may DESCRIBE; the others are left out silently.
            let image = broker.metadata.image();
            topics.extend(
                image
                    .topics
                    .values()
                    .filter(|t| access.allows(AclOperation::Describe, ResourceType::Topic, &t.name))
                    .map(|t| topic_response(&image, t, topic_ops(&t.name))),
            );
        }
        Some(requested) => {
            let image = broker.metadata.image();
            let describable = access.filter(
                AclOperation::Describe,
                ResourceType::Topic,
                requested
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
                    .chain(
                        requested
                            .iter()
                            .filter(|t| t.name.is_none())
                            .filter_map(|t| {
                                image
                                    .topic_by_id(&t.topic_id)
                                    .map(|topic| topic.name.as_str())
                            }),
                    ),
            );
            // Kafka: creating a describable unknown topic needs CREATE on the cluster or
            // on the topic; without it the topic is TOPIC_AUTHORIZATION_FAILED.
            let auto_create = allow_create && broker.config.auto_create_topics_enable;
            let may_create_any = !auto_create || access.cluster(AclOperation::Create);
            let creatable = |name: &str| {
                may_create_any || access.allows(AclOperation::Create, ResourceType::Topic, name)
            };
            // Names this broker does not know, decided together: auto-creation admits
            // them in one pass and answers at once (see `Broker::auto_create_many`).
            let unknown: Vec<&str> = requested
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
                .filter(|n| image.topic(n).is_none() && describable.contains(*n))
                .filter(|n| creatable(n))
                .collect();
            let mut verdicts = if allow_create {
                broker.auto_create_many(&unknown, &super::client_key(ctx))
            } else {
                unknown
                    .iter()
                    .map(|name| {
                        crate::controller::validate_topic_name(name).and(Err(
                            crate::error::ApiError::new(
                                ResponseError::UnknownTopicOrPartition,
                                format!("topic '{name}' does not exist"),
                            ),
                        ))
                    })
                    .collect()
            }
            .into_iter();
            let mut refusals_logged = 0usize;
            for t in &requested {
                let Some(name) = t.name.as_ref().map(|n| n.0.as_str()) else {
                    topics.push(match image.topic_by_id(&t.topic_id) {
                        // Topic ids are not secret (Kafka): a refused one keeps its id.
                        Some(topic) if !describable.contains(&topic.name) => error_topic(
                            None,
                            t.topic_id,
                            ResponseError::TopicAuthorizationFailed.code(),
                        ),
                        Some(topic) => topic_response(&image, topic, topic_ops(&topic.name)),
                        None => error_topic(None, t.topic_id, ResponseError::UnknownTopicId.code()),
                    });
                    continue;
                };
                // Not describable: refused without looking whether it exists, so the
                // answer does not tell an existing topic from an absent one.
                if !describable.contains(name) {
                    topics.push(error_topic(
                        Some(name),
                        Uuid::nil(),
                        ResponseError::TopicAuthorizationFailed.code(),
                    ));
                    continue;
                }
                if let Some(topic) = image.topic(name) {
                    topics.push(topic_response(&image, topic, topic_ops(name)));
                    continue;
                }
                if !creatable(name) {
                    topics.push(error_topic(
                        Some(name),
                        Uuid::nil(),
                        ResponseError::TopicAuthorizationFailed.code(),
                    ));
                    continue;
                }
                // A topic created since the image was taken is answered as still being
                // created; the client asks again.
                let code = match verdicts.next() {
                    Some(Err(e)) => {
                        if !matches!(
                            e.error,
                            ResponseError::UnknownTopicOrPartition
                                | ResponseError::LeaderNotAvailable
                        ) {
                            // A request may name 100,000 bad topics: log a few.
                            if refusals_logged < REFUSALS_LOGGED {
                                log_refusal(ctx, name, &e);
                            }
                            refusals_logged += 1;
                        }
                        e.code()
                    }
                    Some(Ok(())) | None => ResponseError::LeaderNotAvailable.code(),
                };
                topics.push(error_topic(Some(name), Uuid::nil(), code));
            }
            if refusals_logged > REFUSALS_LOGGED {
                tracing::info!(
                    peer = %ctx.connection.peer,
                    refused = refusals_logged,
                    "Metadata request named many invalid topics; the first {REFUSALS_LOGGED} were logged"
                );
            }
        }
    }

    let image = broker.metadata.image();
    let brokers = brokers(broker, &image, &ctx.connection.listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(&host))
                .with_port(port as i32)
                .with_rack(rack.as_deref().map(str_bytes))
        })
        .collect();
    // Clients send controller-bound admin requests to this id; any broker forwards them
    // to the active controller, which is itself a broker here.
    let controller = broker
        .metadata
        .active_controller()
        .filter(|c| image.is_live(*c))
        .unwrap_or(broker.node_id());
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&broker.cluster_id)))
        .with_controller_id(BrokerId(controller))
        .with_cluster_authorized_operations(cluster_ops)
        .with_topics(topics)
}
