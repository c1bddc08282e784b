//! Group administration: ListGroups, DescribeGroups and DeleteGroups.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};

use super::groups::{coordinate, replicated, WriteKind};
use super::{log_refusal, str_bytes, RequestContext, OPERATIONS_NOT_REQUESTED};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::error::ApiError;

/// Every group here uses the classic protocol (KIP-848's "consumer" type is not served).
const GROUP_TYPE: &str = "classic";

pub async fn list_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = ctx.version();
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if !types.is_empty() && !types.iter().any(|t| t == GROUP_TYPE) {
        return ListGroupsResponse::default();
    }
    // Kafka: DESCRIBE on the cluster lists every group; otherwise only the groups the
    // client may DESCRIBE.
    let access = Access::of(broker, ctx);
    let all = access.cluster(AclOperation::Describe);
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(id, _, _)| all || access.allows(AclOperation::Describe, ResourceType::Group, id))
        .filter(|(_, _, state)| {
            states.is_empty() || states.contains(&state.name().to_ascii_lowercase())
        })
        .map(|(id, protocol_type, state)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&id)))
                .with_protocol_type(str_bytes(&protocol_type));
            if version >= 4 {
                g = g.with_group_state(str_bytes(state.name()));
            }
            if version >= 5 {
                g = g.with_group_type(str_bytes(GROUP_TYPE));
            }
            g
        })
        .collect();
    let mut response = ListGroupsResponse::default().with_groups(groups);
    if broker.groups.is_loading() {
        // Kafka's answer while some groups are still being loaded: the rest, and a
        // retriable error so the caller asks again for the full list.
        response = response.with_error_code(ResponseError::CoordinatorLoadInProgress.code());
    }
    response
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.version();
    let access = Access::of(broker, ctx);
    let mut groups = Vec::with_capacity(request.groups.len());
    for id in &request.groups {
        // Kafka: DESCRIBE on each group, refused before the group is looked up.
        if !access.allows(AclOperation::Describe, ResourceType::Group, id) {
            groups.push(
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code())
                    .with_authorized_operations(OPERATIONS_NOT_REQUESTED),
            );
            continue;
        }
        // The group's authorized operations (v3+), reported for a group answered
        // without error, as Kafka does.
        let operations = if request.include_authorized_operations && version >= 3 {
            access.operations(ResourceType::Group, id)
        } else {
            OPERATIONS_NOT_REQUESTED
        };
        let coordinated = coordinate(broker, id).await;
        groups.push(describe_group(
            broker,
            ctx,
            id,
            coordinated,
            version,
            operations,
        ));
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

fn describe_group(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    id: &GroupId,
    coordinated: Result<(), ApiError>,
    version: i16,
    operations: i32,
) -> DescribedGroup {
    let mut described = DescribedGroup::default()
        .with_group_id(id.clone())
        .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
    let described_now = coordinated.and_then(|()| {
        broker
            .groups
            .describe(id)
            .map_err(|e| ApiError::new(e, "describe refused"))
    });
    let desc = match described_now {
        Ok(desc) => desc,
        Err(e) => {
            log_refusal(ctx, id, &e);
            return described.with_error_code(e.code());
        }
    };
    let Some(desc) = desc else {
        if version < 6 {
            described = described.with_authorized_operations(operations);
        }
        // Before v6 an unknown group is reported as a Dead one with no error.
        described = described.with_group_state(str_bytes("Dead"));
        if version >= 6 {
            let message = format!("group '{}' does not exist", id.as_str());
            described = described
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(str_bytes(&message)));
        }
        return described;
    };
    let members = desc
        .members
        .into_iter()
        .map(|m| {
            let mut member = DescribedGroupMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_client_id(str_bytes(&m.client_id))
                .with_client_host(str_bytes(&m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment);
            if version >= 4 {
                member = member.with_group_instance_id(m.instance_id.map(|i| str_bytes(&i)));
            }
            member
        })
        .collect();
    described
        .with_authorized_operations(operations)
        .with_group_state(str_bytes(desc.state.name()))
        .with_protocol_type(str_bytes(&desc.protocol_type))
        .with_protocol_data(str_bytes(&desc.protocol))
        .with_members(members)
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    let access = Access::of(broker, ctx);
    for id in &request.groups_names {
        // Kafka: DELETE on each group.
        if !access.allows(AclOperation::Delete, ResourceType::Group, id) {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
            );
            continue;
        }
        let outcome = coordinate(broker, id).await.and_then(|()| {
            broker.groups.delete(&**broker, id).map_err(|e| {
                let why = match e {
                    ResponseError::NonEmptyGroup => "the group still has members",
                    ResponseError::GroupIdNotFound => "the group does not exist",
                    ResponseError::NotCoordinator | ResponseError::CoordinatorLoadInProgress => {
                        "the group is not coordinated here"
                    }
                    _ => "the deletion could not be written",
                };
                ApiError::new(e, why)
            })
        });
        let outcome = match outcome {
            Ok(()) => replicated(broker, id, WriteKind::GroupMetadata).await,
            Err(e) => Err(e),
        };
        let code = match outcome {
            Ok(()) => 0,
            Err(e) => {
                log_refusal(ctx, id, &e);
                e.code()
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
