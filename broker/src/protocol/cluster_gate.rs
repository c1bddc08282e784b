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
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
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
        RequestKind::DescribeUserScramCredentials(r) => {
            // Kafka's getErrorResponse: a result per named user carrying the error, with
            // the user's name left empty (Kafka does not set it). With no list (all users)
            // Kafka 4.4 fails to build this response and sends nothing; Strom answers.
            let results = r
                .users
                .iter()
                .flatten()
                .map(|_| {
                    DescribeUserScramCredentialsResult::default()
                        .with_error_code(code)
                        .with_error_message(text())
                })
                .collect();
            ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(code)
                    .with_error_message(text())
                    .with_results(results),
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every API the gate guards has a refusal, and the refusal is its own response.
    #[test]
    fn every_guarded_api_has_its_refusal() {
        let requests = vec![
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
            RequestKind::ElectLeaders(ElectLeadersRequest::default()),
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default()),
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
            RequestKind::UnregisterBroker(UnregisterBrokerRequest::default()),
            RequestKind::DescribeQuorum(DescribeQuorumRequest::default()),
            RequestKind::UpdateFeatures(UpdateFeaturesRequest::default()),
            RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default(),
            ),
            RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default()),
            RequestKind::ListConfigResources(ListConfigResourcesRequest::default()),
        ];
        for request in &requests {
            assert!(operation(request).is_some(), "{request:?}");
            let refusal = refusal(request).expect("a refusal");
            assert_eq!(
                std::mem::discriminant(&refusal),
                std::mem::discriminant(&match request {
                    RequestKind::DescribeLogDirs(_) => {
                        ResponseKind::DescribeLogDirs(Default::default())
                    }
                    RequestKind::ElectLeaders(_) => ResponseKind::ElectLeaders(Default::default()),
                    RequestKind::AlterPartitionReassignments(_) => {
                        ResponseKind::AlterPartitionReassignments(Default::default())
                    }
                    RequestKind::ListPartitionReassignments(_) => {
                        ResponseKind::ListPartitionReassignments(Default::default())
                    }
                    RequestKind::UnregisterBroker(_) => {
                        ResponseKind::UnregisterBroker(Default::default())
                    }
                    RequestKind::DescribeQuorum(_) => {
                        ResponseKind::DescribeQuorum(Default::default())
                    }
                    RequestKind::UpdateFeatures(_) => {
                        ResponseKind::UpdateFeatures(Default::default())
                    }
                    RequestKind::DescribeUserScramCredentials(_) => {
                        ResponseKind::DescribeUserScramCredentials(Default::default())
                    }
                    RequestKind::AlterUserScramCredentials(_) => {
                        ResponseKind::AlterUserScramCredentials(Default::default())
                    }
                    _ => ResponseKind::ListConfigResources(Default::default()),
                })
            );
        }
        // Never the unguarded ones.
        assert!(operation(&RequestKind::ApiVersions(ApiVersionsRequest::default())).is_none());
        assert!(operation(&RequestKind::Metadata(MetadataRequest::default())).is_none());
    }

    #[test]
    fn scram_alteration_refuses_each_user_once() {
        use kafka_protocol::messages::alter_user_scram_credentials_request::{
            ScramCredentialDeletion, ScramCredentialUpsertion,
        };
        let request = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![
                ScramCredentialDeletion::default().with_name(str_bytes("a"))
            ])
            .with_upsertions(vec![
                ScramCredentialUpsertion::default().with_name(str_bytes("a")),
                ScramCredentialUpsertion::default().with_name(str_bytes("b")),
            ]);
        let Some(ResponseKind::AlterUserScramCredentials(r)) =
            refusal(&RequestKind::AlterUserScramCredentials(request))
        else {
            panic!("not an AlterUserScramCredentials response");
        };
        let users: Vec<&str> = r.results.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(users, ["a", "b"]);
        assert!(r
            .results
            .iter()
            .all(|u| u.error_code == ResponseError::ClusterAuthorizationFailed.code()));
    }
}
