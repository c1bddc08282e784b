//! DescribeQuorum: the metadata quorum as its leader sees it, answered on every broker.
//! Kafka's brokers forward this request to the active controller; Strom asks the quorum
//! leader through the same controller request path every other controller decision takes,
//! since only the leader knows its followers' progress.
//!
//! Strom's metadata log is the raft log, so its offsets are raft log indexes: the log end
//! offset is the next index to be written and the high watermark the index after the last
//! committed entry, as in Kafka's `__cluster_metadata` partition.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use strom_raft::{NodeProgress, QuorumDescription};

use super::{log_refusal, str_bytes, RequestContext};
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::error::ApiError;
use crate::quorum::{ControllerOk, ControllerRequest};

/// The one topic-partition Kafka's quorum answers for.
const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;

pub async fn describe_quorum(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    // As Kafka's raft client: anything but exactly __cluster_metadata-0 gets
    // UNKNOWN_TOPIC_OR_PARTITION on every partition asked for.
    let asks_for_metadata_partition = request.topics.len() == 1
        && request.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && request.topics[0].partitions.len() == 1
        && request.topics[0].partitions[0].partition_index == METADATA_PARTITION;
    if !asks_for_metadata_partition {
        let error = ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("DescribeQuorum answers only for {METADATA_TOPIC}-{METADATA_PARTITION}"),
        );
        log_refusal(ctx, "DescribeQuorum", &error);
        return partition_errors(&request, &error);
    }
    let timeout = Duration::from_millis(broker.config.cluster.quorum_request_timeout_ms);
    let description = match broker
        .metadata
        .request(ControllerRequest::DescribeQuorum, timeout)
        .await
    {
        Ok(ControllerOk::Quorum(description)) => description,
        Ok(other) => {
            let error = ApiError::new(
                ResponseError::UnknownServerError,
                format!("the controller answered DescribeQuorum with {other:?}"),
            );
            return top_level_error(ctx, error);
        }
        Err(error) => return top_level_error(ctx, error),
    };
    let partition = partition_data(&description);
    let mut response = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(super::topic_name(METADATA_TOPIC))
        .with_partitions(vec![partition])]);
    if ctx.version() >= 2 {
        response = response.with_nodes(voter_nodes(&broker.config));
    }
    response
}

fn partition_data(description: &QuorumDescription) -> PartitionData {
    let replica = |progress: &NodeProgress| {
        ReplicaState::default()
            .with_replica_id(BrokerId(node_id(progress.node_id)))
            .with_log_end_offset(next_offset(progress.matched_index))
            .with_last_fetch_timestamp(progress.last_contact_ms)
            .with_last_caught_up_timestamp(progress.last_caught_up_ms)
    };
    PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_leader_id(BrokerId(node_id(description.leader_id)))
        .with_leader_epoch(i32::try_from(description.term).unwrap_or(i32::MAX))
        .with_high_watermark(next_offset(description.committed_index))
        .with_current_voters(description.voters.iter().map(replica).collect())
        .with_observers(description.observers.iter().map(replica).collect())
}

/// The offset after `index` (0 for an empty log), as Kafka's offsets count entries.
fn next_offset(index: Option<u64>) -> i64 {
    index.map_or(0, |i| i64::try_from(i).unwrap_or(i64::MAX - 1) + 1)
}

fn node_id(id: u64) -> i32 {
    i32::try_from(id).unwrap_or(-1)
}

/// v2's endpoints of the voters: their controller listener, from `controller.quorum.voters`
/// (the same on every node). The embedded single-node quorum listens nowhere (port 0), so
/// its voter has no endpoint to list.
fn voter_nodes(config: &BrokerConfig) -> Vec<Node> {
    let listener_name = config
        .cluster
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".to_string());
    config
        .cluster
        .voters
        .values()
        .map(|voter| {
            let listeners = if voter.port == 0 {
                Vec::new()
            } else {
                vec![Listener::default()
                    .with_name(str_bytes(&listener_name))
                    .with_host(str_bytes(&voter.host))
                    .with_port(voter.port)]
            };
            Node::default()
                .with_node_id(BrokerId(voter.id))
                .with_listeners(listeners)
        })
        .collect()
}

fn partition_errors(request: &DescribeQuorumRequest, error: &ApiError) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error.code())
                                .with_error_message(Some(str_bytes(&error.message)))
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

fn top_level_error(ctx: &RequestContext<'_>, error: ApiError) -> DescribeQuorumResponse {
    log_refusal(ctx, "DescribeQuorum", &error);
    DescribeQuorumResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(str_bytes(&error.message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_entries_after_raft_indexes() {
        assert_eq!(next_offset(None), 0);
        assert_eq!(next_offset(Some(0)), 1);
        assert_eq!(next_offset(Some(41)), 42);
    }

    #[test]
    fn the_leader_and_its_voters_are_reported_with_their_progress() {
        let description = QuorumDescription {
            leader_id: 2,
            term: 7,
            committed_index: Some(10),
            voters: vec![
                NodeProgress {
                    node_id: 1,
                    matched_index: Some(9),
                    last_contact_ms: 100,
                    last_caught_up_ms: 90,
                },
                NodeProgress {
                    node_id: 2,
                    matched_index: Some(10),
                    last_contact_ms: 120,
                    last_caught_up_ms: 120,
                },
            ],
            observers: Vec::new(),
        };
        let p = partition_data(&description);
        assert_eq!(p.leader_id.0, 2);
        assert_eq!(p.leader_epoch, 7);
        assert_eq!(p.high_watermark, 11);
        assert_eq!(p.current_voters.len(), 2);
        assert_eq!(p.current_voters[0].log_end_offset, 10);
        assert_eq!(p.current_voters[0].last_caught_up_timestamp, 90);
        assert!(p.observers.is_empty());
    }
}
