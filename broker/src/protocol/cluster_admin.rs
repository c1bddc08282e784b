//! Cluster operations for admin clients: ElectLeaders, AlterPartitionReassignments,
//! ListPartitionReassignments, DescribeCluster and UnregisterBroker. Elections,
//! reassignments and unregistrations are the active controller's decisions
//! (`controller::elections`, `controller::reassignment`, `controller::brokers`); this
//! module translates the requests into controller requests and the answers back, then
//! waits for the change to reach this broker's image so the client's next request here
//! sees it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    DescribeClusterRequest, DescribeClusterResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};
use tokio::time::Instant;

use super::{log_refusal, str_bytes, topic_name, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::controller::{list_reassignments, ElectionOutcome};
use crate::error::{ApiError, ApiResult};
use crate::metadata::MetadataImage;
use crate::quorum::{ControllerOk, ControllerRequest};

/// DescribeCluster's endpoint types.
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

/// The instant a request's `timeout_ms` runs out (a non-positive timeout has already).
fn deadline_of(timeout_ms: i32) -> Instant {
    Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64)
}

/// Runs `work` unless `deadline` passes first, which is REQUEST_TIMED_OUT. A controller
/// request cut short may still be committed, as in Kafka: the client learns the outcome
/// by asking again.
async fn before<T>(
    deadline: Instant,
    timeout_ms: i32,
    work: impl Future<Output = ApiResult<T>>,
) -> ApiResult<T> {
    let timed_out = || {
        ApiError::new(
            ResponseError::RequestTimedOut,
            format!(
                "the controller did not decide within the request's timeout of {timeout_ms} ms"
            ),
        )
    };
    if Instant::now() >= deadline {
        return Err(timed_out());
    }
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

fn unexpected_reply(reply: &ControllerOk) -> ApiError {
    ApiError::new(
        ResponseError::UnknownServerError,
        format!("the controller answered with an unexpected {reply:?}"),
    )
}

pub async fn elect_leaders(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let targets: Option<Vec<(String, i32)>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.as_str();
                t.partitions.iter().map(move |p| (name.to_string(), *p))
            })
            .collect()
    });
    // v0 has no election type field; it decodes as 0, a preferred election.
    let unclean = match request.election_type {
        0 => false,
        1 => true,
        other => {
            let e = ApiError::new(
                ResponseError::InvalidRequest,
                format!("election type {other} is neither 0 (preferred) nor 1 (unclean)"),
            );
            return failed_elections(ctx, targets.as_deref(), e);
        }
    };
    let deadline = deadline_of(request.timeout_ms);
    let decided = before(
        deadline,
        request.timeout_ms,
        broker.controller(ControllerRequest::ElectLeaders {
            targets: targets.clone(),
            unclean,
        }),
    )
    .await
    .and_then(|reply| match reply {
        ControllerOk::Elections(outcomes) => Ok(outcomes),
        other => Err(unexpected_reply(&other)),
    });
    let outcomes = match decided {
        Ok(outcomes) => outcomes,
        Err(e) => return failed_elections(ctx, targets.as_deref(), e),
    };
    // Not seeing it in time is no failure: the controller has committed the elections.
    let _ = tokio::time::timeout_at(deadline, await_elected(broker, &outcomes, unclean)).await;
    for ((topic, partition), result) in &outcomes {
        match result {
            Err(e) if e.error != ResponseError::ElectionNotNeeded => {
                log_refusal(ctx, &format!("{topic}-{partition}"), e)
            }
            Ok(()) => tracing::info!(topic = %topic, partition, unclean, "elected a new leader"),
            Err(_) => {}
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(election_results(outcomes))
}

/// Waits until this broker's image shows the leaders just elected.
async fn await_elected(broker: &Broker, outcomes: &[ElectionOutcome], unclean: bool) {
    let elected: Vec<&(String, i32)> = outcomes
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(tp, _)| tp)
        .collect();
    if elected.is_empty() {
        return;
    }
    let shows_election = |image: &MetadataImage| {
        elected.iter().all(|(topic, partition)| {
            image.partition(topic, *partition).is_some_and(|(_, p)| {
                if unclean {
                    !p.is_offline()
                } else {
                    p.replicas.first() == Some(&p.leader)
                }
            })
        })
    };
    if !broker.await_image(shows_election).await {
        tracing::warn!(
            partitions = elected.len(),
            "elections committed but not yet visible in this broker's metadata"
        );
    }
}

/// The answer when the whole request failed: the error at the top (v1+, where the field
/// exists) and for every named partition, as Kafka reports it.
fn failed_elections(
    ctx: &RequestContext<'_>,
    targets: Option<&[(String, i32)]>,
    error: ApiError,
) -> ElectLeadersResponse {
    log_refusal(ctx, "ElectLeaders", &error);
    let outcomes = targets
        .unwrap_or_default()
        .iter()
        .map(|tp| (tp.clone(), Err(error.clone())))
        .collect();
    let response =
        ElectLeadersResponse::default().with_replica_election_results(election_results(outcomes));
    if ctx.version() >= 1 {
        response.with_error_code(error.code())
    } else {
        response
    }
}

/// The message sent with a partition's refused election. Kafka's controller refuses
/// ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE and ELIGIBLE_LEADERS_NOT_AVAILABLE
/// with none, so the tools print the error's standard text ("The preferred leader was not
/// available."); our detail (which replica, which ISR) is in the broker's log line.
fn election_message(e: &ApiError) -> Option<&str> {
    match e.error {
        ResponseError::ElectionNotNeeded
        | ResponseError::PreferredLeaderNotAvailable
        | ResponseError::EligibleLeadersNotAvailable => None,
        _ => Some(&e.message),
    }
}

fn election_results(outcomes: Vec<ElectionOutcome>) -> Vec<ReplicaElectionResult> {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), result) in outcomes {
        let entry = PartitionResult::default().with_partition_id(partition);
        by_topic.entry(topic).or_default().push(match result {
            Ok(()) => entry.with_error_code(0).with_error_message(None),
            Err(e) => entry
                .with_error_code(e.code())
                .with_error_message(election_message(&e).map(str_bytes)),
        });
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(topic_name(&topic))
                .with_partition_result(partitions)
        })
        .collect()
}

pub async fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let deadline = deadline_of(request.timeout_ms);
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let rf_check = match (&target, request.allow_replication_factor_change) {
                (Some(target), false) => same_replication_factor(
                    &broker.metadata.image(),
                    name,
                    p.partition_index,
                    target,
                ),
                _ => Ok(()),
            };
            let outcome = match rf_check {
                Ok(()) => {
                    reassign(
                        broker,
                        name,
                        p.partition_index,
                        target,
                        deadline,
                        request.timeout_ms,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            let result =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match outcome {
                Ok(()) => result.with_error_message(None),
                Err(e) => {
                    log_refusal(ctx, &format!("{name}-{}", p.partition_index), &e);
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message)))
                }
            });
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_responses(responses)
}

/// AlterPartitionReassignments v1 with `allow_replication_factor_change` false (KIP-860):
/// the target must keep the partition's replication factor, counted as Kafka's controller
/// counts it (the replicas a reassignment in progress ends with), refused with its
/// INVALID_REPLICATION_FACTOR and message otherwise. A partition this broker does not know
/// passes, so the controller answers it as it answers any unknown partition.
fn same_replication_factor(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: &[i32],
) -> ApiResult<()> {
    let Some((_, current)) = image.partition(topic, partition) else {
        return Ok(());
    };
    let current_rf = if current.is_reassigning() {
        current
            .replicas
            .iter()
            .chain(&current.adding)
            .filter(|r| !current.removing.contains(r))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    } else {
        current.replicas.len()
    };
    if current_rf == target.len() {
        return Ok(());
    }
    Err(ApiError::new(
        ResponseError::InvalidReplicationFactor,
        format!(
            "The replication factor is changed from {current_rf} to {}",
            target.len()
        ),
    ))
}

/// Starts, replaces (`Some`) or cancels (`None`) one partition's move, then waits until
/// this broker's image shows it, up to the request's `deadline`.
async fn reassign(
    broker: &Broker,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    deadline: Instant,
    timeout_ms: i32,
) -> ApiResult<()> {
    let asked = broker.controller(ControllerRequest::AlterReassignment {
        topic: topic.to_string(),
        partition,
        target: target.clone(),
    });
    let reply = before(deadline, timeout_ms, asked).await?;
    if !matches!(reply, ControllerOk::Done) {
        return Err(unexpected_reply(&reply));
    }
    match &target {
        Some(t) => tracing::info!(topic, partition, target = ?t, "partition reassignment started"),
        None => tracing::info!(topic, partition, "partition reassignment cancelled"),
    }
    // A move lists its target first while under way and alone once done; a cancelled
    // move is no longer reassigning.
    let shows_change = |image: &MetadataImage| {
        image
            .partition(topic, partition)
            .is_some_and(|(_, p)| match &target {
                Some(t) => p.replicas.starts_with(t),
                None => !p.is_reassigning(),
            })
    };
    // Not seeing it in time is no failure: the controller has committed the change.
    let _ = tokio::time::timeout_at(deadline, broker.await_image(shows_change)).await;
    Ok(())
}

/// How long UnregisterBroker waits for the removal to reach this broker's image; the
/// request has no timeout field of its own.
const UNREGISTER_WAIT: Duration = Duration::from_secs(30);

/// UnregisterBroker (KIP-500, `kafka-cluster.sh unregister`): the controller removes the
/// registration (BROKER_ID_NOT_REGISTERED when there is none); the answer comes once this
/// broker's image no longer lists it, so a DescribeCluster sent here next agrees.
pub async fn unregister_broker(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let id = request.broker_id.0;
    let deadline = Instant::now() + UNREGISTER_WAIT;
    let timeout_ms = UNREGISTER_WAIT.as_millis() as i32;
    let asked = broker.controller(ControllerRequest::UnregisterBroker { id });
    let outcome = match before(deadline, timeout_ms, asked).await {
        Ok(ControllerOk::Done) => Ok(()),
        Ok(other) => Err(unexpected_reply(&other)),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            let gone = |image: &MetadataImage| image.broker(id).is_none();
            // Not seeing it in time is no failure: the controller has committed it.
            let _ = tokio::time::timeout_at(deadline, broker.await_image(gone)).await;
            UnregisterBrokerResponse::default().with_error_message(None)
        }
        Err(e) => {
            log_refusal(ctx, &format!("broker {id}"), &e);
            UnregisterBrokerResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(&e.message)))
        }
    }
}

/// The moves under way per this broker's image (which trails the controller's by the
/// moment it takes a committed change to arrive). Named partitions that are not moving,
/// or do not exist, are left out, as Kafka does.
pub fn list_partition_reassignments(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let filter: Option<Vec<(String, i32)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                let name = t.name.0.as_str();
                t.partition_indexes
                    .iter()
                    .map(move |p| (name.to_string(), *p))
            })
            .collect()
    });
    let image = broker.metadata.image();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for r in list_reassignments(&image, filter.as_deref()) {
        let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
        by_topic.entry(r.topic.clone()).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(r.partition)
                .with_replicas(ids(&r.replicas))
                .with_adding_replicas(ids(&r.adding))
                .with_removing_replicas(ids(&r.removing)),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            OngoingTopicReassignment::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions)
        })
        .collect();
    ListPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_topics(topics)
}

pub fn describe_cluster(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if request.endpoint_type != ENDPOINT_BROKERS && request.endpoint_type != ENDPOINT_CONTROLLERS {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(
                "endpoint type must be 1 (brokers) or 2 (controllers)",
            )))
            .with_endpoint_type(request.endpoint_type);
    }
    let image = broker.metadata.image();
    let listener = &ctx.connection.listener;
    // The flag exists from v2 on; an older answer lists the same brokers without it.
    let flags_fenced = ctx.version() >= 2;
    let fenced = |id: i32| flags_fenced && image.broker(id).is_some_and(|b| b.fenced);
    let mut brokers: Vec<DescribeClusterBroker> =
        super::metadata::brokers(broker, &image, listener)
            .into_iter()
            .map(|(id, host, port, rack)| describe_broker(id, &host, port, rack, fenced(id)))
            .collect();
    // v2 (KIP-1073): fenced brokers too, flagged, when asked for.
    if request.include_fenced_brokers && flags_fenced {
        for b in image.brokers.values().filter(|b| b.fenced) {
            if brokers.iter().any(|d| d.broker_id.0 == b.id) {
                continue;
            }
            if let Some(e) = b.endpoints.iter().find(|e| &e.listener == listener) {
                brokers.push(describe_broker(b.id, &e.host, e.port, b.rack.clone(), true));
            }
        }
        brokers.sort_by_key(|b| b.broker_id.0);
    }
    // Every controller voter is also a broker here, so the controllers are the voters'
    // broker endpoints on the listener the client came through.
    if request.endpoint_type == ENDPOINT_CONTROLLERS {
        let voters = &broker.config.cluster.voters;
        brokers.retain(|b| voters.contains_key(&b.broker_id.0));
    }
    // As in Metadata: the active controller if it is live, else this broker, which
    // forwards controller-bound requests anyway.
    let controller = broker
        .metadata
        .active_controller()
        .filter(|c| image.is_live(*c))
        .unwrap_or(broker.node_id());
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(&broker.cluster_id))
        .with_controller_id(BrokerId(controller))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(cluster_operations(broker, ctx, &request))
}

/// Kafka's `computeDescribeClusterResponse`: the cluster's authorized operations when
/// asked for, 0 without DESCRIBE on the cluster. DescribeCluster itself needs no
/// permission.
fn cluster_operations(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: &DescribeClusterRequest,
) -> i32 {
    if !request.include_cluster_authorized_operations {
        return super::OPERATIONS_NOT_REQUESTED;
    }
    let access = Access::of(broker, ctx);
    if access.cluster(AclOperation::Describe) {
        access.operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        0
    }
}

fn describe_broker(
    id: i32,
    host: &str,
    port: u16,
    rack: Option<String>,
    fenced: bool,
) -> DescribeClusterBroker {
    DescribeClusterBroker::default()
        .with_broker_id(BrokerId(id))
        .with_host(str_bytes(host))
        .with_port(port as i32)
        .with_rack(rack.as_deref().map(str_bytes))
        .with_is_fenced(fenced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConnectionContext;
    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::Encodable;

    fn connection() -> ConnectionContext {
        ConnectionContext {
            listener: "PLAINTEXT".into(),
            peer: "127.0.0.1:1".parse().unwrap(),
            principal: crate::protocol::ANONYMOUS.into(),
        }
    }

    fn context(connection: &ConnectionContext, version: i16) -> RequestContext<'_> {
        RequestContext {
            connection,
            header: RequestHeader::default().with_request_api_version(version),
            api_key: ApiKey::ElectLeaders,
        }
    }

    fn refused(code: ResponseError) -> ApiError {
        ApiError::new(code, "why")
    }

    #[test]
    fn election_results_are_grouped_by_topic_with_null_messages_on_success() {
        let results = election_results(vec![
            (("b".into(), 1), Ok(())),
            (
                ("a".into(), 0),
                Err(refused(ResponseError::ElectionNotNeeded)),
            ),
            (("b".into(), 0), Ok(())),
        ]);
        let topics: Vec<&str> = results.iter().map(|r| r.topic.0.as_str()).collect();
        assert_eq!(topics, vec!["a", "b"]);
        let a = &results[0].partition_result[0];
        assert_eq!(a.error_code, ResponseError::ElectionNotNeeded.code());
        assert_eq!(a.error_message.as_deref(), None);
        let b: Vec<(i32, i16, bool)> = results[1]
            .partition_result
            .iter()
            .map(|p| (p.partition_id, p.error_code, p.error_message.is_none()))
            .collect();
        assert_eq!(b, vec![(1, 0, true), (0, 0, true)]);
    }

    #[test]
    fn election_refusals_carry_a_message_only_where_kafka_sends_one() {
        let message = |code| election_message(&refused(code)).map(str::to_string);
        for quiet in [
            ResponseError::ElectionNotNeeded,
            ResponseError::PreferredLeaderNotAvailable,
            ResponseError::EligibleLeadersNotAvailable,
        ] {
            assert_eq!(message(quiet), None, "{quiet:?}");
        }
        // Kafka names the missing partition ("No such partition as t-9"), and a whole
        // refused request (not the controller, timed out) says why.
        for told in [
            ResponseError::UnknownTopicOrPartition,
            ResponseError::NotController,
            ResponseError::RequestTimedOut,
        ] {
            assert_eq!(message(told).as_deref(), Some("why"), "{told:?}");
        }
    }

    #[test]
    fn a_failed_election_request_reports_at_the_top_only_from_v1() {
        let conn = connection();
        let targets = [("t".to_string(), 0)];
        for version in 0..=2 {
            let response = failed_elections(
                &context(&conn, version),
                Some(&targets),
                refused(ResponseError::NotController),
            );
            let top = if version >= 1 {
                ResponseError::NotController.code()
            } else {
                0
            };
            assert_eq!(response.error_code, top, "v{version}");
            let p = &response.replica_election_results[0].partition_result[0];
            assert_eq!(p.error_code, ResponseError::NotController.code());
            // v0 has no top-level field: setting it would make the answer unencodable.
            let mut buf = bytes::BytesMut::new();
            response.encode(&mut buf, version).unwrap();
        }
        let all = failed_elections(
            &context(&conn, 1),
            None,
            refused(ResponseError::RequestTimedOut),
        );
        assert!(all.replica_election_results.is_empty());
    }

    #[tokio::test]
    async fn an_expired_deadline_times_out_without_asking() {
        let asked = std::sync::atomic::AtomicBool::new(false);
        let e = before(deadline_of(0), 0, async {
            asked.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(e.error, ResponseError::RequestTimedOut);
        assert!(!asked.load(std::sync::atomic::Ordering::SeqCst));
        let slow = before(deadline_of(20), 20, std::future::pending::<ApiResult<()>>()).await;
        assert_eq!(slow.unwrap_err().error, ResponseError::RequestTimedOut);
        assert_eq!(
            before(deadline_of(1000), 1000, async { Ok(7) }).await,
            Ok(7)
        );
    }
}
