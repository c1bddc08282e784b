//! Group membership: FindCoordinator, JoinGroup, SyncGroup, Heartbeat and LeaveGroup,
//! translated to and from the group coordinator; plus what every group request checks
//! first (is the group coordinated here?) and waits for last (is what it wrote replicated?).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
    SyncGroupResponse,
};

use super::{log_refusal, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::authorize;
use crate::broker::Broker;
use crate::error::{ApiError, ApiResult};
use crate::group::durability::{group_write_error, offset_write_error, REPLICATION_TIMEOUT};
use crate::group::state::{JoinResult, SyncResult};
use crate::group::{JoinRequest, PartitionStatus, OFFSETS_TOPIC};
use crate::metadata::{MetadataImage, NO_LEADER};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

fn validate_group_id(group_id: &str) -> ApiResult<()> {
    if group_id.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidGroupId,
            "group id is empty",
        ));
    }
    Ok(())
}

/// Creates `__consumer_offsets` on first use, as Kafka does.
async fn offsets_topic(broker: &Broker) -> ApiResult<()> {
    broker.ensure_offsets_topic().await.map_err(|e| {
        ApiError::new(
            ResponseError::CoordinatorNotAvailable,
            format!("{OFFSETS_TOPIC} is not available: {}", e.message),
        )
    })
}

/// How long a request for a group whose partition this broker leads but has not loaded
/// yet waits for the load before it is answered COORDINATOR_LOAD_IN_PROGRESS. Loads are
/// usually quick; waiting spares clients a retry round right after a leadership change.
const LOAD_WAIT: Duration = Duration::from_secs(2);

/// Checks what every group request needs: a group id, and this broker coordinating the
/// group, i.e. leading its `__consumer_offsets` partition with the partition loaded
/// (NOT_COORDINATOR when another broker leads it, COORDINATOR_LOAD_IN_PROGRESS while it
/// loads here). The coordinator checks again under the group's lock; this check gives the
/// clearer message, and waits a little for a load in progress.
///
/// Right after `__consumer_offsets` is created, or its leadership moves, a client can
/// arrive before this broker has applied the change: another broker (or this one, from a
/// newer image than its replicas show) already named it coordinator. So NOT_COORDINATOR is
/// only answered when this broker's image names another leader; while its image does not
/// have the partition yet, or names this broker but the replica is not leading yet, the
/// answer is one clients retry (issue 12 §5).
pub(crate) async fn coordinate(broker: &Broker, group_id: &str) -> ApiResult<()> {
    validate_group_id(group_id)?;
    offsets_topic(broker).await?;
    let partition = broker.groups.partition_for(group_id);
    let leads = || broker.is_leader(OFFSETS_TOPIC, partition);
    let mut changes = broker.groups.ownership_changes();
    let mut images = broker.metadata.subscribe();
    let waiting = tokio::time::sleep(LOAD_WAIT);
    tokio::pin!(waiting);
    loop {
        let status = broker.groups.partition_status(partition);
        let refusal = match status {
            PartitionStatus::Loaded => return Ok(()),
            PartitionStatus::NotOwned if !leads() => {
                match named_leader(&broker.metadata.image(), partition) {
                    Some(leader) if leader == broker.node_id() => ApiError::new(
                        ResponseError::CoordinatorLoadInProgress,
                        format!("{OFFSETS_TOPIC}-{partition} is becoming led by this broker"),
                    ),
                    Some(_) => {
                        return Err(ApiError::new(
                            ResponseError::NotCoordinator,
                            format!("{OFFSETS_TOPIC}-{partition} is not led by this broker"),
                        ));
                    }
                    None => ApiError::new(
                        ResponseError::CoordinatorNotAvailable,
                        format!(
                            "{OFFSETS_TOPIC}-{partition} has no leader known to this broker yet"
                        ),
                    ),
                }
            }
            // Led here, and its load is under way or about to start.
            PartitionStatus::Loading | PartitionStatus::NotOwned => ApiError::new(
                ResponseError::CoordinatorLoadInProgress,
                format!("{OFFSETS_TOPIC}-{partition} is still being loaded"),
            ),
        };
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(refusal);
                }
            }
            changed = images.changed() => {
                if changed.is_err() {
                    return Err(refusal);
                }
            }
            _ = &mut waiting => return Err(refusal),
        }
    }
}

/// The leader this broker's image names for an offsets partition, if it has one.
fn named_leader(image: &MetadataImage, partition: i32) -> Option<i32> {
    image
        .partition(OFFSETS_TOPIC, partition)
        .map(|(_, p)| p.leader)
        .filter(|leader| *leader != NO_LEADER)
}

/// What a write answers, which decides the error a failed replication is reported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// OffsetCommit, OffsetDelete.
    Offsets,
    /// JoinGroup, SyncGroup, DeleteGroups.
    GroupMetadata,
}

/// Waits until everything the coordinator wrote to `group_id`'s offsets partition is on
/// the in-sync replicas, so no answer that follows a write goes out before the write is
/// durable (see the `group::coordinator` docs for why the latest write is waited for).
pub(crate) async fn replicated(broker: &Broker, group_id: &str, kind: WriteKind) -> ApiResult<()> {
    let partition = broker.groups.partition_for(group_id);
    let Some(end) = broker.groups.written_end(partition) else {
        return Ok(());
    };
    broker
        .wait_replicated(OFFSETS_TOPIC, partition, end, REPLICATION_TIMEOUT)
        .await
        .map_err(|e| {
            let error = match kind {
                WriteKind::Offsets => offset_write_error(e.error),
                WriteKind::GroupMetadata => group_write_error(e.error),
            };
            ApiError::new(
                error,
                format!(
                    "{OFFSETS_TOPIC}-{partition} did not replicate up to offset {end}: {}",
                    e.message
                ),
            )
        })
}

/// The coordinator of `partition`'s groups: the leader of that `__consumer_offsets`
/// partition, reached through the listener the client used (this broker's own advertised
/// endpoint when it is the leader itself).
fn leader_endpoint(
    image: &MetadataImage,
    partition: i32,
    listener: &str,
    self_id: i32,
    self_endpoint: impl FnOnce() -> (String, u16),
) -> ApiResult<(i32, String, u16)> {
    let unavailable = |why: String| ApiError::new(ResponseError::CoordinatorNotAvailable, why);
    let leader = image
        .partition(OFFSETS_TOPIC, partition)
        .map(|(_, p)| p.leader)
        .ok_or_else(|| unavailable(format!("{OFFSETS_TOPIC}-{partition} does not exist")))?;
    if leader == NO_LEADER {
        return Err(unavailable(format!(
            "{OFFSETS_TOPIC}-{partition} has no leader"
        )));
    }
    if leader == self_id {
        let (host, port) = self_endpoint();
        return Ok((leader, host, port));
    }
    let registration = image.broker(leader).filter(|b| !b.fenced).ok_or_else(|| {
        unavailable(format!(
            "broker {leader}, leader of {OFFSETS_TOPIC}-{partition}, is not registered or fenced"
        ))
    })?;
    let endpoint = registration
        .endpoints
        .iter()
        .find(|e| e.listener == listener)
        .ok_or_else(|| {
            unavailable(format!(
                "broker {leader}, leader of {OFFSETS_TOPIC}-{partition}, has no listener {listener}"
            ))
        })?;
    Ok((leader, endpoint.host.clone(), endpoint.port))
}

async fn group_coordinator(
    broker: &Broker,
    listener: &str,
    group_id: &str,
) -> ApiResult<(i32, String, u16)> {
    validate_group_id(group_id)?;
    offsets_topic(broker).await?;
    let partition = broker.groups.partition_for(group_id);
    leader_endpoint(
        &broker.metadata.image(),
        partition,
        listener,
        broker.node_id(),
        || broker.advertised_endpoint(listener),
    )
}

/// Runs a possibly parked group request, giving up when the broker starts shutting down:
/// the client then hears NOT_COORDINATOR and looks for the group's next coordinator.
async fn until_shutdown<T>(
    broker: &Broker,
    request: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut shutdown = broker.shutdown_signal();
    tokio::select! {
        // The request first: an answer that is ready wins over a shutdown in progress.
        biased;
        result = request => Some(result),
        _ = shutdown.wait_for(|stopping| *stopping) => None,
    }
}

/// The error to answer with, logged once.
fn refused(ctx: &RequestContext<'_>, group_id: &str, e: ApiError) -> i16 {
    log_refusal(ctx, group_id, &e);
    e.code()
}

/// Kafka's check for JoinGroup, SyncGroup, Heartbeat, LeaveGroup and OffsetCommit: READ
/// on the group, before the coordinator is looked at (GROUP_AUTHORIZATION_FAILED).
pub(crate) fn may_read_group(broker: &Broker, ctx: &RequestContext<'_>, group_id: &str) -> bool {
    authorize(
        broker,
        ctx,
        AclOperation::Read,
        ResourceType::Group,
        group_id,
    )
}

/// Kafka reports a member's host as the peer address with a leading slash.
fn client_host(ctx: &RequestContext<'_>) -> String {
    format!("/{}", ctx.connection.peer.ip())
}

fn client_id(ctx: &RequestContext<'_>) -> String {
    ctx.header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// Strom keeps no transaction state yet, so every broker gives the same true answers about
/// transactional ids (none exists: DescribeTransactions says TRANSACTIONAL_ID_NOT_FOUND,
/// InitProducerId refuses the id), and the broker asked names itself. Naming no one
/// (COORDINATOR_NOT_AVAILABLE) would make clients retry until their timeout instead.
fn transaction_coordinator(
    broker: &Broker,
    listener: &str,
    transactional_id: &str,
) -> ApiResult<(i32, String, u16)> {
    if transactional_id.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            "transactional id is empty",
        ));
    }
    let (host, port) = broker.advertised_endpoint(listener);
    Ok((broker.node_id(), host, port))
}

async fn coordinator_for(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    key: &str,
    key_type: i8,
) -> Coordinator {
    // Kafka: DESCRIBE on the group or transactional id, before anything else.
    let denied = match key_type {
        KEY_TYPE_GROUP => (!authorize(
            broker,
            ctx,
            AclOperation::Describe,
            ResourceType::Group,
            key,
        ))
        .then_some(ResponseError::GroupAuthorizationFailed),
        KEY_TYPE_TRANSACTION => (!authorize(
            broker,
            ctx,
            AclOperation::Describe,
            ResourceType::TransactionalId,
            key,
        ))
        .then_some(ResponseError::TransactionalIdAuthorizationFailed),
        _ => None,
    };
    if let Some(error) = denied {
        return Coordinator::default()
            .with_key(str_bytes(key))
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1)
            .with_error_code(error.code());
    }
    let outcome = match key_type {
        KEY_TYPE_GROUP => group_coordinator(broker, &ctx.connection.listener, key).await,
        KEY_TYPE_TRANSACTION => transaction_coordinator(broker, &ctx.connection.listener, key),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unknown coordinator key type {other}"),
        )),
    };
    match outcome {
        Ok((node_id, host, port)) => Coordinator::default()
            .with_key(str_bytes(key))
            .with_node_id(BrokerId(node_id))
            .with_host(str_bytes(&host))
            .with_port(port as i32),
        Err(e) => {
            log_refusal(ctx, key, &e);
            Coordinator::default()
                .with_key(str_bytes(key))
                .with_node_id(BrokerId(-1))
                .with_host(str_bytes(""))
                .with_port(-1)
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(&e.message)))
        }
    }
}

pub async fn find_coordinator(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if ctx.version() >= 4 {
        // v4+ (KIP-699) asks for many keys at once.
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in &request.coordinator_keys {
            coordinators.push(coordinator_for(broker, ctx, key, request.key_type).await);
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinator_for(broker, ctx, &request.key, request.key_type).await;
    let mut response = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if ctx.version() >= 1 {
        response = response.with_error_message(c.error_message);
    }
    response
}

pub async fn join_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = ctx.version();
    let group_id = request.group_id.to_string();
    let fail = |code: i16| {
        let mut r = JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(request.member_id.clone());
        if version < 7 {
            r = r.with_protocol_name(Some(str_bytes("")));
        }
        r
    };
    if !may_read_group(broker, ctx, &group_id) {
        return fail(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = coordinate(broker, &group_id).await {
        return fail(refused(ctx, &group_id, e));
    }
    let session_timeout = Duration::from_millis(request.session_timeout_ms.max(0) as u64);
    // v0 had one timeout for both.
    let rebalance_timeout = if version >= 1 {
        Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64)
    } else {
        session_timeout
    };
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request
            .group_instance_id
            .as_ref()
            .map(|i| i.to_string())
            .filter(|_| version >= 5),
        client_id: client_id(ctx),
        client_host: client_host(ctx),
        session_timeout,
        rebalance_timeout,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let joined = async {
        let mut result = broker.groups.join(&**broker, &group_id, join).await;
        if result.error.is_none() {
            // Logged with the other refusals below.
            if let Err(e) = replicated(broker, &group_id, WriteKind::GroupMetadata).await {
                result.error = Some(e.error);
            }
        }
        result
    };
    let result = until_shutdown(broker, joined)
        .await
        .unwrap_or_else(|| JoinResult {
            error: Some(ResponseError::NotCoordinator),
            member_id: request.member_id.to_string(),
            ..Default::default()
        });
    if let Some(error) = result.error {
        if error != ResponseError::MemberIdRequired {
            log_refusal(
                ctx,
                &group_id,
                &ApiError::new(
                    error,
                    format!("join by member '{}' refused", request.member_id),
                ),
            );
        }
        return fail(error.code()).with_member_id(str_bytes(&result.member_id));
    }
    let members = result
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&id))
                .with_group_instance_id(instance.filter(|_| version >= 5).map(|i| str_bytes(&i)))
                .with_metadata(metadata)
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_generation_id(result.generation)
        .with_protocol_name(Some(str_bytes(
            result.protocol_name.as_deref().unwrap_or_default(),
        )))
        .with_leader(str_bytes(&result.leader))
        .with_member_id(str_bytes(&result.member_id))
        .with_members(members);
    if version >= 7 {
        response = response.with_protocol_type(result.protocol_type.map(|t| str_bytes(&t)));
    }
    response
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = ctx.version();
    let group_id = request.group_id.to_string();
    if !may_read_group(broker, ctx, &group_id) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = coordinate(broker, &group_id).await {
        return SyncGroupResponse::default().with_error_code(refused(ctx, &group_id, e));
    }
    let assignments = request
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let instance = request
        .group_instance_id
        .as_ref()
        .map(|i| i.to_string())
        .filter(|_| version >= 3);
    let (protocol_type, protocol_name) = if version >= 5 {
        (
            request.protocol_type.as_ref().map(|t| t.to_string()),
            request.protocol_name.as_ref().map(|n| n.to_string()),
        )
    } else {
        (None, None)
    };
    let sync = broker.groups.sync(
        &**broker,
        &group_id,
        &request.member_id,
        instance.as_deref(),
        request.generation_id,
        protocol_type.as_deref(),
        protocol_name.as_deref(),
        assignments,
    );
    let synced = async {
        let mut result = sync.await;
        if result.error.is_none() {
            // Logged with the other refusals below.
            if let Err(e) = replicated(broker, &group_id, WriteKind::GroupMetadata).await {
                result.error = Some(e.error);
            }
        }
        result
    };
    let result = until_shutdown(broker, synced)
        .await
        .unwrap_or_else(|| SyncResult {
            error: Some(ResponseError::NotCoordinator),
            ..Default::default()
        });
    if let Some(error) = result.error {
        let e = ApiError::new(
            error,
            format!(
                "sync by member '{}' of generation {} refused",
                request.member_id, request.generation_id
            ),
        );
        return SyncGroupResponse::default().with_error_code(refused(ctx, &group_id, e));
    }
    let mut response = SyncGroupResponse::default().with_assignment(result.assignment);
    if version >= 5 {
        response = response
            .with_protocol_type(result.protocol_type.map(|t| str_bytes(&t)))
            .with_protocol_name(result.protocol_name.map(|n| str_bytes(&n)));
    }
    response
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let group_id = request.group_id.to_string();
    if !may_read_group(broker, ctx, &group_id) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let instance = request
        .group_instance_id
        .as_ref()
        .map(|i| i.to_string())
        .filter(|_| ctx.version() >= 3);
    let outcome = coordinate(broker, &group_id).await.and_then(|()| {
        broker
            .groups
            .heartbeat(
                &group_id,
                &request.member_id,
                instance.as_deref(),
                request.generation_id,
            )
            .map_err(|e| {
                ApiError::new(
                    e,
                    format!(
                        "heartbeat of member '{}' generation {}",
                        request.member_id, request.generation_id
                    ),
                )
            })
    });
    match outcome {
        Ok(()) => HeartbeatResponse::default(),
        // A rebalance notice is the normal way members learn to rejoin; not worth a log.
        Err(e) if e.error == ResponseError::RebalanceInProgress => {
            HeartbeatResponse::default().with_error_code(e.code())
        }
        Err(e) => HeartbeatResponse::default().with_error_code(refused(ctx, &group_id, e)),
    }
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = ctx.version();
    let group_id = request.group_id.to_string();
    if !may_read_group(broker, ctx, &group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    // v3+ (KIP-345) leaves many members at once, by member or instance id.
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let outcome = coordinate(broker, &group_id).await.and_then(|()| {
        broker
            .groups
            .leave(&**broker, &group_id, &members)
            .map_err(|e| ApiError::new(e, "leave refused"))
    });
    let results = match outcome {
        Ok(results) => results,
        Err(e) => return LeaveGroupResponse::default().with_error_code(refused(ctx, &group_id, e)),
    };
    let codes: Vec<i16> = results
        .iter()
        .zip(&members)
        .map(|(r, (member, instance))| match r {
            Ok(()) => 0,
            Err(e) => refused(
                ctx,
                &group_id,
                ApiError::new(
                    *e,
                    format!("leave of member '{member}' instance {instance:?}"),
                ),
            ),
        })
        .collect();
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    LeaveGroupResponse::default().with_members(
        members
            .into_iter()
            .zip(codes)
            .map(|((member, instance), code)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(&member))
                    .with_group_instance_id(instance.map(|i| str_bytes(&i)))
                    .with_error_code(code)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::metadata::{BrokerEndpoint, MetadataRecord};

    /// `__consumer_offsets-0` led by `leader`, brokers 1 and 2 registered and unfenced,
    /// each with an external and an internal listener.
    fn image(leader: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        let topic_id = Uuid::new_v4();
        image.apply(&MetadataRecord::Topic {
            name: OFFSETS_TOPIC.into(),
            topic_id,
        });
        image.apply(&MetadataRecord::Partition {
            topic_id,
            partition: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader,
            leader_epoch: 1,
            partition_epoch: 1,
            adding: Vec::new(),
            removing: Vec::new(),
        });
        for id in [1, 2] {
            let endpoint = |listener: &str, port| BrokerEndpoint {
                listener: listener.into(),
                host: format!("broker-{id}"),
                port,
            };
            image.apply(&MetadataRecord::RegisterBroker {
                id,
                incarnation: Uuid::new_v4(),
                endpoints: vec![endpoint("EXTERNAL", 9092), endpoint("INTERNAL", 9093)],
                rack: None,
            });
            image.apply(&MetadataRecord::UnfenceBroker { id });
        }
        image
    }

    fn own() -> (String, u16) {
        ("me".into(), 1234)
    }

    fn unavailable(result: ApiResult<(i32, String, u16)>) -> bool {
        result.is_err_and(|e| e.error == ResponseError::CoordinatorNotAvailable)
    }

    #[test]
    fn the_coordinator_is_the_leader_through_the_clients_listener() {
        let found = leader_endpoint(&image(2), 0, "INTERNAL", 1, own).unwrap();
        assert_eq!(found, (2, "broker-2".to_string(), 9093));
        let found = leader_endpoint(&image(2), 0, "EXTERNAL", 1, own).unwrap();
        assert_eq!(found, (2, "broker-2".to_string(), 9092));
    }

    #[test]
    fn the_leader_itself_answers_with_its_own_advertised_endpoint() {
        // Even without a registration (a single broker that never registered).
        let mut image = image(1);
        image.brokers.clear();
        let found = leader_endpoint(&image, 0, "EXTERNAL", 1, own).unwrap();
        assert_eq!(found, (1, "me".to_string(), 1234));
    }

    #[test]
    fn no_reachable_leader_means_coordinator_not_available() {
        assert!(unavailable(leader_endpoint(
            &image(NO_LEADER),
            0,
            "EXTERNAL",
            1,
            own
        )));
        assert!(unavailable(leader_endpoint(
            &image(3),
            0,
            "EXTERNAL",
            1,
            own
        )));
        assert!(unavailable(leader_endpoint(&image(2), 0, "OTHER", 1, own)));
        assert!(unavailable(leader_endpoint(
            &image(2),
            7,
            "EXTERNAL",
            1,
            own
        )));
        let mut fenced = image(2);
        fenced.apply(&MetadataRecord::FenceBroker { id: 2 });
        assert!(unavailable(leader_endpoint(&fenced, 0, "EXTERNAL", 1, own)));
    }
}
