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

use super::groups::coordinate;
use super::{log_refusal, operations, str_bytes, RequestContext, OPERATIONS_NOT_REQUESTED};
use crate::broker::Broker;
use crate::error::ApiError;

/// READ, DELETE, DESCRIBE: what applies to a group, all allowed without an authorizer.
const GROUP_OPERATIONS: i32 = operations(&[3, 6, 8]);

/// Every group here uses the classic protocol (KIP-848's "consumer" type is not served).
const GROUP_TYPE: &str = "classic";

pub fn list_groups(
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
    let groups = broker
        .groups
        .list()
        .into_iter()
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
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.version();
    let operations = if request.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let mut described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(operations);
            if let Err(e) = coordinate(broker, id) {
                log_refusal(ctx, id, &e);
                return described.with_error_code(e.code());
            }
            let Some(desc) = broker.groups.describe(id) else {
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
                        member =
                            member.with_group_instance_id(m.instance_id.map(|i| str_bytes(&i)));
                    }
                    member
                })
                .collect();
            described
                .with_group_state(str_bytes(desc.state.name()))
                .with_protocol_type(str_bytes(&desc.protocol_type))
                .with_protocol_data(str_bytes(&desc.protocol))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .iter()
        .map(|id| {
            let outcome = coordinate(broker, id).and_then(|()| {
                broker.groups.delete(&**broker, id).map_err(|e| {
                    let why = match e {
                        ResponseError::NonEmptyGroup => "the group still has members",
                        ResponseError::GroupIdNotFound => "the group does not exist",
                        _ => "the deletion could not be written",
                    };
                    ApiError::new(e, why)
                })
            });
            let code = match outcome {
                Ok(()) => 0,
                Err(e) => {
                    log_refusal(ctx, id, &e);
                    e.code()
                }
            };
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
