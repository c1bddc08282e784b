//! Metadata: brokers, topics and partitions, auto-creating topics a client asks for.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use uuid::Uuid;

use super::{
    log_refusal, str_bytes, topic_name, RequestContext, CLUSTER_OPERATIONS,
    OPERATIONS_NOT_REQUESTED, TOPIC_OPERATIONS,
};
use crate::broker::Broker;
use crate::metadata::TopicImage;

fn topic_response(topic: &TopicImage, operations: i32) -> MetadataResponseTopic {
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
                    MetadataResponsePartition::default()
                        .with_partition_index(p.partition)
                        .with_leader_id(BrokerId(p.leader))
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                        .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
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

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: MetadataRequest,
) -> MetadataResponse {
    // Before v4 a Metadata request always allowed auto-creation.
    let allow_create = ctx.version() < 4 || request.allow_auto_topic_creation;
    let topic_ops = if request.include_topic_authorized_operations {
        TOPIC_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    // The cluster field exists in v8 to v10 only.
    let cluster_ops =
        if request.include_cluster_authorized_operations && (8..=10).contains(&ctx.version()) {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        };
    let mut topics = Vec::new();
    match request.topics {
        None => {
            let image = broker.metadata.image();
            topics.extend(image.topics.values().map(|t| topic_response(t, topic_ops)));
        }
        Some(requested) => {
            for t in requested {
                let name = t.name.as_ref().map(|n| n.0.as_str().to_string());
                let Some(name) = name else {
                    let image = broker.metadata.image();
                    topics.push(match image.topic_by_id(&t.topic_id) {
                        Some(topic) => topic_response(topic, topic_ops),
                        None => error_topic(None, t.topic_id, ResponseError::UnknownTopicId.code()),
                    });
                    continue;
                };
                if broker.metadata.image().topic(&name).is_none() {
                    let outcome = if allow_create {
                        broker.auto_create(&name)
                    } else {
                        crate::controller::validate_topic_name(&name).and(Err(
                            crate::error::ApiError::new(
                                ResponseError::UnknownTopicOrPartition,
                                format!("topic '{name}' does not exist"),
                            ),
                        ))
                    };
                    if let Err(e) = outcome {
                        if e.error != ResponseError::UnknownTopicOrPartition {
                            log_refusal(ctx, &name, &e);
                        }
                        topics.push(error_topic(Some(&name), Uuid::nil(), e.code()));
                        continue;
                    }
                }
                let image = broker.metadata.image();
                topics.push(match image.topic(&name) {
                    Some(topic) => topic_response(topic, topic_ops),
                    None => error_topic(
                        Some(&name),
                        Uuid::nil(),
                        ResponseError::UnknownTopicOrPartition.code(),
                    ),
                });
            }
        }
    }

    let (host, port) = broker.advertised_endpoint(&ctx.connection.listener);
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id()))
            .with_host(str_bytes(&host))
            .with_port(port as i32)])
        .with_cluster_id(Some(str_bytes(&broker.cluster_id)))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_cluster_authorized_operations(cluster_ops)
        .with_topics(topics)
}
