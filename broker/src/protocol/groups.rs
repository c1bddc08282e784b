//! Group membership: FindCoordinator, JoinGroup, SyncGroup, Heartbeat and LeaveGroup,
//! translated to and from the group coordinator.

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
use crate::broker::Broker;
use crate::error::{ApiError, ApiResult};
use crate::group::state::{JoinResult, SyncResult};
use crate::group::{JoinRequest, OFFSETS_TOPIC};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Checks what every group request needs: a group id, and this broker coordinating it
/// (`__consumer_offsets` exists and its partition for the group is here).
pub(crate) fn coordinate(broker: &Broker, group_id: &str) -> ApiResult<()> {
    if group_id.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidGroupId,
            "group id is empty",
        ));
    }
    broker.ensure_offsets_topic().map_err(|e| {
        ApiError::new(
            ResponseError::CoordinatorNotAvailable,
            format!("{OFFSETS_TOPIC} is not available: {}", e.message),
        )
    })?;
    let partition = broker.groups.partition_for(group_id);
    if broker.partition(OFFSETS_TOPIC, partition).is_none() {
        return Err(ApiError::new(
            ResponseError::NotCoordinator,
            format!("{OFFSETS_TOPIC}-{partition} is not on this broker"),
        ));
    }
    Ok(())
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

fn coordinator_for(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    key: &str,
    key_type: i8,
) -> Coordinator {
    let outcome = match key_type {
        KEY_TYPE_GROUP => coordinate(broker, key),
        KEY_TYPE_TRANSACTION => Err(ApiError::new(
            ResponseError::InvalidRequest,
            "transactions are not supported yet, so there is no transaction coordinator",
        )),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unknown coordinator key type {other}"),
        )),
    };
    match outcome {
        Ok(()) => {
            let (host, port) = broker.advertised_endpoint(&ctx.connection.listener);
            Coordinator::default()
                .with_key(str_bytes(key))
                .with_node_id(BrokerId(broker.node_id()))
                .with_host(str_bytes(&host))
                .with_port(port as i32)
        }
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

pub fn find_coordinator(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if ctx.version() >= 4 {
        // v4+ (KIP-699) asks for many keys at once.
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|k| coordinator_for(broker, ctx, k, request.key_type))
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinator_for(broker, ctx, &request.key, request.key_type);
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
    if let Err(e) = coordinate(broker, &group_id) {
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
    let result = until_shutdown(broker, broker.groups.join(&**broker, &group_id, join))
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
    if let Err(e) = coordinate(broker, &group_id) {
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
    let result = until_shutdown(broker, sync)
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

pub fn heartbeat(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let group_id = request.group_id.to_string();
    let instance = request
        .group_instance_id
        .as_ref()
        .map(|i| i.to_string())
        .filter(|_| ctx.version() >= 3);
    let outcome = coordinate(broker, &group_id).and_then(|()| {
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

pub fn leave_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = ctx.version();
    let group_id = request.group_id.to_string();
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
    let outcome = coordinate(broker, &group_id).and_then(|()| {
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
