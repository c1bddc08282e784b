//! The APIs Kafka guards with one operation on the cluster resource
//! (`authorizeClusterOperation` and its like in KafkaApis and ControllerApis), checked
//! before their handlers run, and the refusal each answers with: its own
//! `getErrorResponse` shape, CLUSTER_AUTHORIZATION_FAILED at the top and, where Kafka's
//! has them, on every item the request named.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::*;

use super::str_bytes;
use crate::auth::acl::AclOperation;

/// The cluster operation `request` needs, for the APIs guarded by one; `None` for the
/// others (checked in their handlers, or never: ApiVersions, the SASL exchange).
pub fn operation(request: &RequestKind) -> Option<AclOperation> {
    use AclOperation::*;
    Some(match request {
        RequestKind::DescribeLogDirs(_) => Describe,
        RequestKind::ElectLeaders(_) => Alter,
        RequestKind::AlterPartitionReassignments(_) => Alter,
        RequestKind::ListPartitionReassignments(_) => Describe,
        RequestKind::UnregisterBroker(_) => Alter,
        RequestKind::DescribeQuorum(_) => Describe,
        RequestKind::UpdateFeatures(_) => Alter,
        RequestKind::DescribeUserScramCredentials(_) => Describe,
        RequestKind::AlterUserScramCredentials(_) => Alter,
        RequestKind::ListConfigResources(_) => DescribeConfigs,
        _ => return None,
    })
}

/// Kafka's text for CLUSTER_AUTHORIZATION_FAILED.
const TEXT: &str = "Cluster authorization failed.";

/// The refusal of `request` (one `operation` names) with CLUSTER_AUTHORIZATION_FAILED.
pub fn refusal(request: &RequestKind) -> Option<ResponseKind> {
    let code = ResponseError::ClusterAuthorizationFailed.code();
    let text = || Some(str_bytes(TEXT));
    Some(match request {
        RequestKind::DescribeLogDirs(_) => {
            ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_error_code(code))
        }
        RequestKind::ElectLeaders(r) => {
            let results = r
                .topic_partitions
                .iter()
                .flatten()
                .map(|t| {
                    ReplicaElectionResult::default()
                        .with_topic(t.topic.clone())
                        .with_partition_result(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionResult::default()
                                        .with_partition_id(*p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            ResponseKind::ElectLeaders(
                ElectLeadersResponse::default()
                    .with_error_code(code)
                    .with_replica_election_results(results),
            )
        }
        RequestKind::AlterPartitionReassignments(r) => {
            let responses = r
                .topics
                .iter()
                .map(|t| {
                    ReassignableTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    ReassignablePartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                        .with_error_message(text())
                                })
                                .collect(),
                        )
                })
                .collect();
            ResponseKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsResponse::default()
                    .with_error_code(code)
                    .with_error_message(text())
                    .with_responses(responses),
            )
        }
        RequestKind::ListPartitionReassignments(_) => ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default()
                .with_error_code(code)
                .with_error_message(text()),
        ),
        RequestKind::UnregisterBroker(_) => ResponseKind::UnregisterBroker(
            UnregisterBrokerResponse::default()
                .with_error_code(code)
                .with_error_message(text()),
        ),
        RequestKind::DescribeQuorum(_) => ResponseKind::DescribeQuorum(
            DescribeQuorumResponse::default()
                .with_error_code(code)
                .with_error_message(text()),
        ),
        RequestKind::UpdateFeatures(_) => ResponseKind::UpdateFeatures(
            UpdateFeaturesResponse::default()
                .with_error_code(code)
                .with_error_message(text()),
        ),
        RequestKind::DescribeUserScramCredentials(_) => ResponseKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsResponse::default()
                .with_error_code(code)
                .with_error_message(text()),
        ),
        RequestKind::AlterUserScramCredentials(r) => {
            // Each user named, once, as Kafka's getErrorResponse does.
            let users: BTreeSet<&str> = r
                .deletions
                .iter()
                .map(|d| d.name.as_str())
                .chain(r.upsertions.iter().map(|u| u.name.as_str()))
                .collect();
            ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(
                    users
                        .into_iter()
                        .map(|u| {
                            AlterUserScramCredentialsResult::default()
                                .with_user(str_bytes(u))
                                .with_error_code(code)
                                .with_error_message(text())
                        })
                        .collect(),
                ),
            )
        }
        RequestKind::ListConfigResources(_) => ResponseKind::ListConfigResources(
            ListConfigResourcesResponse::default().with_error_code(code),
        ),
        _ => return None,
    })
}
