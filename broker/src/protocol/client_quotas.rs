//! DescribeClientQuotas (API 48). Strom keeps no client quotas yet (AlterClientQuotas is
//! not served), so every valid filter matches nothing: the answer Kafka gives for a cluster
//! where no quota was ever set. It is served because Kafka's tools ask it first:
//! `kafka-configs --describe --entity-type users` lists a user's quotas and then their
//! SCRAM credentials, and fails as a whole if the quota half is not answered.
//!
//! The filter is checked as Kafka's `ClientQuotasImage.describe` checks it, with its
//! errors (top-level code and message, no entries).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::{log_refusal, str_bytes, RequestContext};
use crate::error::ApiError;

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// Kafka's ClientQuotaFilterComponent match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub fn describe(
    ctx: &RequestContext<'_>,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    // Authorization goes here once there is an authorizer: Kafka requires
    // DESCRIBE_CONFIGS on the CLUSTER resource (CLUSTER_AUTHORIZATION_FAILED otherwise).
    match check_filter(&request.components) {
        Ok(()) => DescribeClientQuotasResponse::default().with_entries(Some(Vec::new())),
        Err(e) => {
            log_refusal(ctx, "quota filter", &e);
            DescribeClientQuotasResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(&e.message)))
                .with_entries(None)
        }
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ResponseError::InvalidRequest, message)
}

/// Kafka's checks of a filter, in its order.
fn check_filter(components: &[ComponentData]) -> Result<(), ApiError> {
    let mut seen: Vec<&str> = Vec::new();
    for component in components {
        let entity_type = component.entity_type.as_str();
        if entity_type.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if seen.contains(&entity_type) {
            return Err(invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&entity_type) {
            return Err(ApiError::new(
                ResponseError::UnsupportedVersion,
                format!("Unsupported entity type {entity_type}"),
            ));
        }
        let has_match = component._match.is_some();
        match component.match_type {
            MATCH_EXACT if !has_match => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ))
            }
            MATCH_DEFAULT if has_match => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ))
            }
            MATCH_SPECIFIED if has_match => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ))
            }
            MATCH_EXACT | MATCH_DEFAULT | MATCH_SPECIFIED => {}
            other => return Err(invalid(format!("Unknown match type {other}"))),
        }
        seen.push(entity_type);
    }
    if seen.contains(&IP) && (seen.contains(&USER) || seen.contains(&CLIENT_ID)) {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(str_bytes(entity_type))
            .with_match_type(match_type)
            .with_match(name.map(str_bytes))
    }

    #[test]
    fn the_filters_kafka_configs_sends_are_accepted() {
        assert!(check_filter(&[component(USER, MATCH_SPECIFIED, None)]).is_ok());
        assert!(check_filter(&[component(USER, MATCH_EXACT, Some("alice"))]).is_ok());
        assert!(check_filter(&[
            component(USER, MATCH_DEFAULT, None),
            component(CLIENT_ID, MATCH_SPECIFIED, None)
        ])
        .is_ok());
        assert!(check_filter(&[]).is_ok());
    }

    #[test]
    fn malformed_filters_get_kafkas_errors() {
        let cases = [
            (
                vec![component("", MATCH_SPECIFIED, None)],
                ResponseError::InvalidRequest,
                "Invalid empty entity type.",
            ),
            (
                vec![
                    component(USER, MATCH_SPECIFIED, None),
                    component(USER, MATCH_DEFAULT, None),
                ],
                ResponseError::InvalidRequest,
                "Entity type user cannot appear more than once in the filter.",
            ),
            (
                vec![component("group", MATCH_SPECIFIED, None)],
                ResponseError::UnsupportedVersion,
                "Unsupported entity type group",
            ),
            (
                vec![component(USER, MATCH_EXACT, None)],
                ResponseError::InvalidRequest,
                "Request specified MATCH_TYPE_EXACT, but set match string to null.",
            ),
            (
                vec![component(USER, MATCH_DEFAULT, Some("a"))],
                ResponseError::InvalidRequest,
                "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
            ),
            (
                vec![component(USER, MATCH_SPECIFIED, Some("a"))],
                ResponseError::InvalidRequest,
                "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
            ),
            (
                vec![component(USER, 7, None)],
                ResponseError::InvalidRequest,
                "Unknown match type 7",
            ),
            (
                vec![
                    component(IP, MATCH_SPECIFIED, None),
                    component(CLIENT_ID, MATCH_SPECIFIED, None),
                ],
                ResponseError::InvalidRequest,
                "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
            ),
        ];
        for (components, error, message) in cases {
            let e = check_filter(&components).expect_err(message);
            assert_eq!((e.error, e.message.as_str()), (error, message));
        }
    }
}
