//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and describing the
//! broker's static configuration). Values, sources and synonyms follow Kafka's model so
//! `kafka-configs.sh --describe` shows what users expect.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{log_refusal, str_bytes, RequestContext};
use crate::broker::Broker;
use crate::config::topic::find_def;
use crate::config::{ValueKind, TOPIC_CONFIGS};
use crate::controller;
use crate::error::{ApiError, ApiResult};
use crate::quorum::ControllerRequest;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One described config entry with its synonyms, most specific first.
pub struct Entry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
    pub synonyms: Vec<(String, String, i8)>,
}

fn config_type(kind: ValueKind) -> i8 {
    match kind {
        ValueKind::Bool => 1,
        ValueKind::OneOf(_) => 2,
        ValueKind::Int { .. } => 3,
        ValueKind::Long { .. } => 5,
        ValueKind::ListOf(_) => 7,
    }
}

/// A topic's entries: override, else the broker's setting, else Kafka's default.
pub fn topic_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[String]>,
) -> Vec<Entry> {
    TOPIC_CONFIGS
        .iter()
        .filter(|d| keys.is_none_or(|k| k.iter().any(|k| k == d.name)))
        .map(|d| {
            let default = broker
                .config
                .topic_defaults
                .get(d.name)
                .cloned()
                .unwrap_or_default();
            let broker_source = if broker.config.explicit.contains(d.broker_key) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push((d.name.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC));
            }
            synonyms.push((d.broker_key.to_string(), default.clone(), broker_source));
            let (_, value, source) = synonyms[0].clone();
            Entry {
                name: d.name,
                value,
                source,
                config_type: config_type(d.kind),
                synonyms,
            }
        })
        .collect()
}

fn describe_topic(broker: &Broker, name: &str, keys: Option<&[String]>) -> ApiResult<Vec<Entry>> {
    let image = broker.metadata.image();
    let topic = controller::existing_topic(&image, name)?;
    Ok(topic_entries(broker, &topic.configs, keys))
}

fn describe_broker(
    broker: &Broker,
    name: &str,
    keys: Option<&[String]>,
) -> ApiResult<Vec<(String, String, i8)>> {
    // An empty name is the cluster-wide dynamic default, which Strom does not have yet.
    if name.is_empty() {
        return Ok(Vec::new());
    }
    if name.parse::<i32>().ok() != Some(broker.node_id()) {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("broker '{name}' is not this broker ({})", broker.node_id()),
        ));
    }
    Ok(broker
        .config
        .effective
        .iter()
        .filter(|(k, _)| keys.is_none_or(|keys| keys.iter().any(|x| x == *k)))
        .map(|(k, v)| {
            let source = if broker.config.explicit.contains(k) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            (k.clone(), v.clone(), source)
        })
        .collect())
}

fn synonyms(list: &[(String, String, i8)], include: bool) -> Vec<DescribeConfigsSynonym> {
    if !include {
        return Vec::new();
    }
    list.iter()
        .map(|(n, v, s)| {
            DescribeConfigsSynonym::default()
                .with_name(str_bytes(n))
                .with_value(Some(str_bytes(v)))
                .with_source(*s)
        })
        .collect()
}

pub fn describe(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let include_synonyms = request.include_synonyms;
    let results = request
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.as_str();
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.as_str().to_string()).collect());
            let configs: ApiResult<Vec<DescribeConfigsResourceResult>> = match r.resource_type {
                RESOURCE_TOPIC => describe_topic(broker, name, keys.as_deref()).map(|entries| {
                    entries
                        .into_iter()
                        .map(|e| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(e.name))
                                .with_value(Some(str_bytes(&e.value)))
                                .with_config_source(e.source)
                                .with_config_type(e.config_type)
                                .with_synonyms(synonyms(&e.synonyms, include_synonyms))
                        })
                        .collect()
                }),
                RESOURCE_BROKER => describe_broker(broker, name, keys.as_deref()).map(|entries| {
                    entries
                        .into_iter()
                        .map(|(k, v, source)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(&k))
                                .with_value(Some(str_bytes(&v)))
                                .with_read_only(true)
                                .with_config_source(source)
                                .with_config_type(2)
                                .with_synonyms(synonyms(
                                    &[(k.clone(), v.clone(), source)],
                                    include_synonyms,
                                ))
                        })
                        .collect()
                }),
                other => Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("describing resource type {other} is not supported"),
                )),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match configs {
                Ok(configs) => result.with_configs(configs),
                Err(e) => {
                    log_refusal(ctx, name, &e);
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message)))
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Keys to set (`Some`) or clear (`None`), and whether every other override is cleared.
type ConfigChanges = (Vec<(String, Option<String>)>, bool);

/// Applies (or with `validate_only`, checks) topic config changes to one resource.
async fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    changes: impl FnOnce(&BTreeMap<String, String>) -> ApiResult<ConfigChanges>,
) -> ApiResult<()> {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "dynamic broker configs are not supported yet; set them in server.properties",
            ))
        }
        other => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("altering resource type {other} is not supported"),
            ))
        }
    }
    // Incremental changes are worked out against this broker's image; the controller
    // checks them again against its own.
    let (changes, replace_all) = {
        let image = broker.metadata.image();
        let topic = controller::existing_topic(&image, name)?;
        changes(&topic.configs)?
    };
    broker
        .controller(ControllerRequest::AlterTopicConfigs {
            name: name.to_string(),
            changes,
            replace_all,
            validate_only,
        })
        .await?;
    if !validate_only {
        tracing::info!(topic = name, "topic config changed");
    }
    Ok(())
}

/// The error code and message of an alter outcome, logging a refusal.
fn error_fields(
    ctx: &RequestContext<'_>,
    name: &str,
    outcome: ApiResult<()>,
) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => {
            log_refusal(ctx, name, &e);
            (e.code(), Some(str_bytes(&e.message)))
        }
    }
}

fn as_string(value: &Option<StrBytes>) -> Option<String> {
    value.as_ref().map(|v| v.as_str().to_string())
}

pub async fn alter(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        responses.push({
            let name = r.resource_name.as_str();
            let outcome =
                alter_resource(broker, r.resource_type, name, request.validate_only, |_| {
                    // Legacy AlterConfigs replaces the whole set of overrides.
                    Ok((
                        r.configs
                            .iter()
                            .map(|c| (c.name.as_str().to_string(), as_string(&c.value)))
                            .collect(),
                        true,
                    ))
                })
                .await;
            let (code, message) = error_fields(ctx, name, outcome);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Works out the new value of a list-valued key for APPEND and SUBTRACT.
fn list_change(current: Option<&String>, default: &str, item: &str, append: bool) -> String {
    let mut items: Vec<String> = current
        .map(String::as_str)
        .unwrap_or(default)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for piece in item.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if append {
            if !items.iter().any(|i| i == piece) {
                items.push(piece.to_string());
            }
        } else {
            items.retain(|i| i != piece);
        }
    }
    items.join(",")
}

/// Turns IncrementalAlterConfigs operations into key changes against the current overrides.
fn incremental_changes(
    broker: &Broker,
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    current: &BTreeMap<String, String>,
) -> ApiResult<ConfigChanges> {
    let mut changes = Vec::new();
    for c in configs {
        let key = c.name.as_str().to_string();
        let value = as_string(&c.value);
        let change = match c.config_operation {
            OP_SET => (key, Some(value.unwrap_or_default())),
            OP_DELETE => (key, None),
            op @ (OP_APPEND | OP_SUBTRACT) => {
                let def = find_def(&key).ok_or_else(|| {
                    ApiError::new(
                        ResponseError::InvalidConfig,
                        format!("unknown topic config '{key}'"),
                    )
                })?;
                if !matches!(def.kind, ValueKind::ListOf(_)) {
                    return Err(ApiError::new(
                        ResponseError::InvalidConfig,
                        format!(
                            "'{key}' is not a list, so it cannot be appended to or subtracted from"
                        ),
                    ));
                }
                let default = broker
                    .config
                    .topic_defaults
                    .get(def.name)
                    .cloned()
                    .unwrap_or_default();
                let item = value.unwrap_or_default();
                (
                    key.clone(),
                    Some(list_change(
                        current.get(&key),
                        &default,
                        &item,
                        op == OP_APPEND,
                    )),
                )
            }
            other => {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other}"),
                ))
            }
        };
        changes.push(change);
    }
    Ok((changes, false))
}

pub async fn incremental_alter(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        responses.push({
            let name = r.resource_name.as_str();
            let outcome = alter_resource(
                broker,
                r.resource_type,
                name,
                request.validate_only,
                |current| incremental_changes(broker, &r.configs, current),
            )
            .await;
            let (code, message) = error_fields(ctx, name, outcome);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
