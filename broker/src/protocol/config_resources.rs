//! ListConfigResources (KIP-1142; v0 was KIP-714's ListClientMetricsResources): the names
//! of the resources `kafka-configs --describe` without `--entity-name` and the admin
//! client's `listConfigResources` enumerate. Kafka 4.4's broker (`KafkaApis.
//! handleListConfigResources`) answers v0 with client-metrics resources only and v1 with
//! the types asked for (every type it knows when none is named), type by type in a fixed
//! order; a type outside the version's set fails the whole request with
//! UNSUPPORTED_VERSION. `kafka-configs --entity-type groups` lists the union of the groups
//! the coordinator knows and the GROUP resources this answers, so a group that only has
//! configs is missing from its output unless it is answered here.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::{str_bytes, RequestContext};
use crate::broker::Broker;
use crate::metadata::MetadataImage;

pub(super) const RESOURCE_BROKER_LOGGER: i8 = 8;
pub(super) const RESOURCE_CLIENT_METRICS: i8 = 16;

/// The types a request at `version` may name (Kafka's `ListConfigResourcesRequest.
/// supportedResourceTypes`): v0 knows only client metrics.
fn supported_types(version: i16) -> &'static [i8] {
    if version == 0 {
        &[RESOURCE_CLIENT_METRICS]
    } else {
        &[
            RESOURCE_TOPIC,
            RESOURCE_BROKER,
            RESOURCE_BROKER_LOGGER,
            RESOURCE_CLIENT_METRICS,
            RESOURCE_GROUP,
        ]
    }
}

/// The types to list: those asked for, or every supported one when the list is empty (v0
/// has no list, so it is always empty there). `Err` names the first type the version
/// does not know: Kafka then answers nothing but UNSUPPORTED_VERSION.
pub fn types_to_list(version: i16, requested: &[i8]) -> Result<Vec<i8>, i8> {
    let supported = supported_types(version);
    if let Some(unknown) = requested.iter().find(|t| !supported.contains(t)) {
        return Err(*unknown);
    }
    Ok(if requested.is_empty() {
        supported.to_vec()
    } else {
        requested.to_vec()
    })
}

/// What the broker holds of each type.
pub struct Resources<'a> {
    /// Groups with at least one config set (Kafka's `GroupConfigManager.groupIds`: a group
    /// whose last config is deleted is no longer a resource).
    pub groups: Vec<&'a str>,
    /// Client-metrics subscriptions: Strom has none (no KIP-714 telemetry).
    pub client_metrics: Vec<&'a str>,
    /// Brokers reachable through the request's listener (Kafka's `getBrokerNodes`).
    pub brokers: Vec<i32>,
    pub topics: Vec<&'a str>,
}

/// The answer's rows: each wanted type in Kafka's order (groups, client metrics, broker
/// loggers, brokers, topics), whatever order the request named them in, each once.
pub fn list(types: &[i8], held: &Resources<'_>) -> Vec<(i8, String)> {
    let mut rows = Vec::new();
    let names = |t: i8, names: &[&str], rows: &mut Vec<(i8, String)>| {
        if types.contains(&t) {
            rows.extend(names.iter().map(|n| (t, n.to_string())));
        }
    };
    names(RESOURCE_GROUP, &held.groups, &mut rows);
    names(RESOURCE_CLIENT_METRICS, &held.client_metrics, &mut rows);
    for t in [RESOURCE_BROKER_LOGGER, RESOURCE_BROKER] {
        if types.contains(&t) {
            rows.extend(held.brokers.iter().map(|id| (t, id.to_string())));
        }
    }
    names(RESOURCE_TOPIC, &held.topics, &mut rows);
    rows
}

/// Broker ids with an endpoint on `listener` (fenced ones too, as Kafka lists every
/// registered broker), and this broker, which a single node may not have registered.
fn broker_ids(broker: &Broker, image: &MetadataImage, listener: &str) -> Vec<i32> {
    let mut ids: Vec<i32> = image
        .brokers
        .values()
        .filter(|b| b.endpoints.iter().any(|e| e.listener == listener))
        .map(|b| b.id)
        .collect();
    if !ids.contains(&broker.node_id()) {
        ids.push(broker.node_id());
        ids.sort_unstable();
    }
    ids
}

pub fn list_config_resources(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let types = match types_to_list(ctx.version(), &request.resource_types) {
        Ok(types) => types,
        Err(unknown) => {
            tracing::info!(peer = %ctx.connection.peer, api = ?ctx.api_key, version = ctx.version(),
                resource_type = unknown, "request refused: resource type not listed at this version");
            return ListConfigResourcesResponse::default()
                .with_error_code(ResponseError::UnsupportedVersion.code());
        }
    };
    let image = broker.metadata.image();
    let held = Resources {
        groups: image.group_configs.keys().map(String::as_str).collect(),
        client_metrics: Vec::new(),
        brokers: broker_ids(broker, &image, &ctx.connection.listener),
        topics: image.topics.keys().map(String::as_str).collect(),
    };
    let resources = list(&types, &held)
        .into_iter()
        .map(|(t, name)| {
            ConfigResource::default()
                .with_resource_type(t)
                .with_resource_name(str_bytes(&name))
        })
        .collect();
    ListConfigResourcesResponse::default().with_config_resources(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v0_lists_client_metrics_only_and_v1_every_type_by_default() {
        assert_eq!(types_to_list(0, &[]), Ok(vec![RESOURCE_CLIENT_METRICS]));
        let all = types_to_list(1, &[]).unwrap();
        for t in [2, 4, 8, 16, 32] {
            assert!(all.contains(&t), "{t} missing from {all:?}");
        }
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn an_unknown_type_refuses_the_whole_request() {
        assert_eq!(
            types_to_list(1, &[RESOURCE_TOPIC, 64, RESOURCE_BROKER]),
            Err(64)
        );
        // Type 1 is UNKNOWN in ConfigResource.Type: not listable either.
        assert_eq!(types_to_list(1, &[1]), Err(1));
        assert_eq!(
            types_to_list(1, &[RESOURCE_GROUP]),
            Ok(vec![RESOURCE_GROUP])
        );
    }

    #[test]
    fn rows_follow_kafkas_type_order_once_per_type() {
        let held = Resources {
            groups: vec!["g1"],
            client_metrics: vec![],
            brokers: vec![0, 2],
            topics: vec!["a", "b"],
        };
        let rows = list(
            &[
                RESOURCE_TOPIC,
                RESOURCE_BROKER,
                RESOURCE_GROUP,
                RESOURCE_TOPIC,
            ],
            &held,
        );
        let expected: Vec<(i8, String)> = [
            (RESOURCE_GROUP, "g1"),
            (RESOURCE_BROKER, "0"),
            (RESOURCE_BROKER, "2"),
            (RESOURCE_TOPIC, "a"),
            (RESOURCE_TOPIC, "b"),
        ]
        .iter()
        .map(|(t, n)| (*t, n.to_string()))
        .collect();
        assert_eq!(rows, expected);
        let loggers = list(&[RESOURCE_BROKER_LOGGER], &held);
        assert_eq!(
            loggers,
            vec![
                (RESOURCE_BROKER_LOGGER, "0".to_string()),
                (RESOURCE_BROKER_LOGGER, "2".to_string())
            ]
        );
        assert!(list(&[RESOURCE_CLIENT_METRICS], &held).is_empty());
    }
}
