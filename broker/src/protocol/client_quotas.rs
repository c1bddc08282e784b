//! DescribeClientQuotas (API 48), answered from this broker's metadata image, and
//! AlterClientQuotas (API 49), decided by the active controller (`controller::client_quotas`
//! has the rules) and written to the metadata log as `ClientQuota` records, so every broker
//! enforces the same quotas (`crate::quota`).
//!
//! The describe filter is checked and matched as Kafka's `ClientQuotasImage.describe` does
//! it, with its errors (top-level code and message, no entries).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntityData, EntryData as AlterEntryData,
};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};

use super::{log_refusal, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::authorize;
use crate::broker::Broker;
use crate::controller::client_quotas::QuotaAlteration;
use crate::error::ApiError;
use crate::metadata::MetadataImage;
use crate::quorum::{ControllerOk, ControllerRequest};
use crate::quota::entity::QuotaEntity;
use crate::quota::resolve::ClientQuotaMap;

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// Kafka's ClientQuotaFilterComponent match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// What a refused authorization says (Kafka's `ClusterAuthorizationException` default).
const CLUSTER_AUTHORIZATION_FAILED: &str = "Cluster authorization failed.";

pub fn describe(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refused = |e: ApiError| {
        log_refusal(ctx, "quota filter", &e);
        DescribeClientQuotasResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(&e.message)))
            .with_entries(None)
    };
    if !authorize(
        broker,
        ctx,
        AclOperation::DescribeConfigs,
        ResourceType::Cluster,
        "kafka-cluster",
    ) {
        return refused(ApiError::new(
            ResponseError::ClusterAuthorizationFailed,
            CLUSTER_AUTHORIZATION_FAILED,
        ));
    }
    match check_filter(&request.components) {
        Ok(()) => {
            let image = broker.metadata.image();
            let entries = matching(&image.client_quotas, &request.components, request.strict)
                .map(|(entity, values)| {
                    EntryData::default()
                        .with_entity(
                            entity
                                .0
                                .iter()
                                .map(|(t, n)| {
                                    EntityData::default()
                                        .with_entity_type(str_bytes(t))
                                        .with_entity_name(n.as_deref().map(str_bytes))
                                })
                                .collect(),
                        )
                        .with_values(
                            values
                                .iter()
                                .map(|(k, v)| {
                                    ValueData::default().with_key(str_bytes(k)).with_value(*v)
                                })
                                .collect(),
                        )
                })
                .collect();
            DescribeClientQuotasResponse::default().with_entries(Some(entries))
        }
        Err(e) => refused(e),
    }
}

/// The entities a (checked) filter selects, as Kafka's `ClientQuotasImage.matches`: every
/// exact or default component must name the entity's value of that type, every specified
/// component needs the type present (a default counts), and `strict` admits no other
/// types.
fn matching<'a>(
    quotas: &'a ClientQuotaMap,
    components: &'a [ComponentData],
    strict: bool,
) -> impl Iterator<Item = (&'a QuotaEntity, &'a BTreeMap<String, f64>)> + 'a {
    quotas.iter().filter(move |(entity, _)| {
        if strict && entity.0.len() != components.len() {
            return false;
        }
        components.iter().all(|c| {
            let Some(name) = entity.0.get(c.entity_type.as_str()) else {
                return false;
            };
            match c.match_type {
                MATCH_EXACT => name.as_deref() == c._match.as_deref(),
                MATCH_DEFAULT => name.is_none(),
                _ => true,
            }
        })
    })
}

pub async fn alter(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let alterations: Vec<QuotaAlteration> = request
        .entries
        .iter()
        .map(|entry| QuotaAlteration {
            entity: entry
                .entity
                .iter()
                .map(|e| {
                    (
                        e.entity_type.to_string(),
                        e.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: entry
                .ops
                .iter()
                .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                .collect(),
        })
        .collect();
    let results: Vec<Result<(), ApiError>> = if !authorize(
        broker,
        ctx,
        AclOperation::AlterConfigs,
        ResourceType::Cluster,
        "kafka-cluster",
    ) {
        let e = ApiError::new(
            ResponseError::ClusterAuthorizationFailed,
            CLUSTER_AUTHORIZATION_FAILED,
        );
        vec![Err(e); alterations.len()]
    } else {
        let asked = ControllerRequest::AlterClientQuotas {
            alterations: alterations.clone(),
            validate_only: request.validate_only,
        };
        match broker.controller(asked).await {
            Ok(ControllerOk::ClientQuotaResults(results)) => results,
            Ok(other) => vec![
                Err(ApiError::new(
                    ResponseError::UnknownServerError,
                    format!("the controller answered with an unexpected {other:?}"),
                ));
                alterations.len()
            ],
            Err(e) => vec![Err(e); alterations.len()],
        }
    };
    // A client that alters and then describes through this broker (kafka-configs does)
    // should see its change: wait, briefly, until this broker's image has it.
    if !request.validate_only && results.iter().any(Result::is_ok) {
        let wanted: Vec<&QuotaAlteration> = alterations
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(a, _)| a)
            .collect();
        broker
            .await_image(|image| wanted.iter().all(|a| visible(image, a)))
            .await;
    }
    let entries = request
        .entries
        .iter()
        .zip(results)
        .map(|(entry, outcome)| {
            let entity = entry
                .entity
                .iter()
                .map(|e| {
                    AlterEntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            let answer = AlterEntryData::default().with_entity(entity);
            match outcome {
                Ok(()) => answer,
                Err(e) => {
                    log_refusal(ctx, "quota entity", &e);
                    answer
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message)))
                }
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// Whether `image` shows an accepted alteration.
fn visible(image: &MetadataImage, alteration: &QuotaAlteration) -> bool {
    let entity = QuotaEntity(alteration.entity.iter().cloned().collect());
    let values = image.client_quotas.get(&entity);
    alteration
        .ops
        .iter()
        .all(|(key, value)| values.and_then(|v| v.get(key)).copied() == *value)
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

    #[test]
    fn filters_match_as_kafkas_image_matches() {
        let mut quotas = ClientQuotaMap::new();
        let entities = [
            QuotaEntity::user_client(Some(Some("alice")), None),
            QuotaEntity::user_client(Some(None), None),
            QuotaEntity::user_client(Some(Some("alice")), Some(Some("app"))),
            QuotaEntity::user_client(None, Some(Some("app"))),
        ];
        for e in &entities {
            quotas
                .entry(e.clone())
                .or_default()
                .insert("producer_byte_rate".into(), 1.0);
        }
        let select = |components: &[ComponentData], strict: bool| -> Vec<usize> {
            matching(&quotas, components, strict)
                .map(|(e, _)| entities.iter().position(|x| x == e).unwrap())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let alice = component(USER, MATCH_EXACT, Some("alice"));
        assert_eq!(select(std::slice::from_ref(&alice), false), [0, 2]);
        assert_eq!(select(std::slice::from_ref(&alice), true), [0]);
        assert_eq!(select(&[component(USER, MATCH_DEFAULT, None)], false), [1]);
        // SPECIFIED needs the type present; Kafka's image counts a default too.
        assert_eq!(
            select(&[component(USER, MATCH_SPECIFIED, None)], true),
            [0, 1]
        );
        assert_eq!(
            select(&[component(CLIENT_ID, MATCH_SPECIFIED, None)], false),
            [2, 3]
        );
        assert_eq!(select(&[], false), [0, 1, 2, 3]);
        assert!(select(&[], true).is_empty());
    }

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
