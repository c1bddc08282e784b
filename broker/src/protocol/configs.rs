//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, brokers (one
//! broker, or the cluster default with an empty name) and groups. What a value resolves to
//! and which keys may change is decided in `config::dynamic`, `config::topic` and
//! `config::group_configs`; this module turns requests into those decisions and back.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{log_refusal, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::config::dynamic::{self, Entry};
use crate::config::topic::find_def;
use crate::config::{group_configs, ValueKind};
use crate::controller;
use crate::error::{ApiError, ApiResult};
use crate::metadata::ConfigResource;
use crate::quorum::ControllerRequest;

pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;
pub(super) const RESOURCE_GROUP: i8 = 32;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_CLIENT_METRICS: i8 = 16;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Kafka's check for a config resource (`ConfigHelper`, `ControllerApis`): `op`
/// (DESCRIBE_CONFIGS or ALTER_CONFIGS) on the cluster for broker, broker-logger and
/// client-metrics resources, on the topic or the group for those. The refusal carries the
/// error's standard text, as Kafka's does. Other types are left to the handler's own
/// refusal.
fn config_refusal(
    access: &Access,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> Option<ApiError> {
    let (error, allowed) = match resource_type {
        RESOURCE_TOPIC => (
            ResponseError::TopicAuthorizationFailed,
            access.allows(op, ResourceType::Topic, name),
        ),
        RESOURCE_GROUP => (
            ResponseError::GroupAuthorizationFailed,
            access.allows(op, ResourceType::Group, name),
        ),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER | RESOURCE_CLIENT_METRICS => (
            ResponseError::ClusterAuthorizationFailed,
            access.cluster(op),
        ),
        _ => return None,
    };
    (!allowed).then(|| ApiError::new(error, standard_text(error)))
}

/// Kafka's `Errors` text for the authorization failures.
pub(crate) fn standard_text(error: ResponseError) -> &'static str {
    match error {
        ResponseError::TopicAuthorizationFailed => "Topic authorization failed.",
        ResponseError::GroupAuthorizationFailed => "Group authorization failed.",
        ResponseError::ClusterAuthorizationFailed => "Cluster authorization failed.",
        ResponseError::TransactionalIdAuthorizationFailed => {
            "Transactional Id authorization failed."
        }
        _ => "",
    }
}

/// A broker resource must name this broker or be empty (the cluster default): the admin
/// client sends a broker's configs to that broker, as Kafka requires.
fn check_broker_name(broker: &Broker, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.trim().parse::<i32>().ok() == Some(broker.node_id()) {
        return Ok(());
    }
    Err(ApiError::new(
        ResponseError::InvalidRequest,
        format!(
            "Unexpected broker id, expected {} or empty string, but received {name}",
            broker.node_id()
        ),
    ))
}

/// A topic's entries as DescribeConfigs reports them (CreateTopics answers with them too).
pub fn topic_entries(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<Entry> {
    dynamic::describe_topic(&broker.config, &broker.metadata.image(), overrides)
}

fn describe_resource(broker: &Broker, resource_type: i8, name: &str) -> ApiResult<Vec<Entry>> {
    let image = broker.metadata.image();
    match resource_type {
        RESOURCE_TOPIC => {
            let topic = controller::existing_topic(&image, name)?;
            Ok(dynamic::describe_topic(
                &broker.config,
                &image,
                &topic.configs,
            ))
        }
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            if name.is_empty() {
                Ok(dynamic::describe_cluster_default(&image))
            } else {
                Ok(dynamic::describe_broker(&broker.config, &image))
            }
        }
        RESOURCE_GROUP => Ok(group_configs::describe_group(image.group_configs.get(name))),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("describing resource type {other} is not supported"),
        )),
    }
}

fn described(entry: Entry, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        entry
            .synonyms
            .iter()
            .map(|(n, v, s)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(n))
                    .with_value(v.as_deref().map(str_bytes))
                    .with_source(*s)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&entry.name))
        .with_value(entry.value.as_deref().map(str_bytes))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source)
        .with_is_sensitive(entry.sensitive)
        .with_config_type(entry.config_type)
        .with_synonyms(synonyms)
}

pub fn describe(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let include_synonyms = request.include_synonyms;
    let access = Access::of(broker, ctx);
    let results = request
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.as_str();
            let keys: Option<Vec<&str>> = r
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.as_str()).collect());
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let outcome = match config_refusal(
                &access,
                AclOperation::DescribeConfigs,
                r.resource_type,
                name,
            ) {
                Some(refusal) => Err(refusal),
                None => describe_resource(broker, r.resource_type, name),
            };
            match outcome {
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name.as_str())))
                        .map(|e| described(e, include_synonyms))
                        .collect(),
                ),
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

/// The current values of a resource and, for a list-valued key, its default (the value
/// APPEND and SUBTRACT start from when the resource does not set it).
struct Current<'a> {
    values: Option<&'a BTreeMap<String, String>>,
    /// `Ok(Some(default))` for a list key, `Ok(None)` for another known key, `Err` when
    /// the key is unknown.
    list_default: &'a dyn Fn(&str) -> ApiResult<Option<String>>,
}

/// Applies (or with `validate_only`, checks) config changes to one resource.
async fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    changes: impl FnOnce(Current<'_>) -> ApiResult<ConfigChanges>,
) -> ApiResult<()> {
    let image = broker.metadata.image();
    let request = match resource_type {
        RESOURCE_TOPIC => {
            // Incremental changes are worked out against this broker's image; the
            // controller checks them again against its own.
            let topic = controller::existing_topic(&image, name)?;
            let list_default = |key: &str| topic_list_default(broker, key);
            let (changes, replace_all) = changes(Current {
                values: Some(&topic.configs),
                list_default: &list_default,
            })?;
            ControllerRequest::AlterTopicConfigs {
                name: name.to_string(),
                changes,
                replace_all,
                validate_only,
            }
        }
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            let list_default = |key: &str| broker_list_default(broker, key);
            let (changes, replace_all) = changes(Current {
                values: image.broker_config(name),
                list_default: &list_default,
            })?;
            dynamic::check_broker_changes(&broker.config, &changes)
                .map_err(|e| ApiError::new(ResponseError::InvalidRequest, e.to_string()))?;
            if !validate_only {
                let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
                tracing::info!(broker = name, ?keys, "dynamic broker config changing");
            }
            ControllerRequest::AlterConfigs {
                resource: ConfigResource::Broker(name.to_string()),
                changes,
                replace_all,
                validate_only,
            }
        }
        RESOURCE_GROUP => {
            let list_default = |key: &str| group_list_default(key);
            let (changes, replace_all) = changes(Current {
                values: image.group_configs.get(name),
                list_default: &list_default,
            })?;
            group_configs::check_group_changes(&changes)
                .map_err(|why| ApiError::new(ResponseError::InvalidConfig, why))?;
            ControllerRequest::AlterConfigs {
                resource: ConfigResource::Group(name.to_string()),
                changes,
                replace_all,
                validate_only,
            }
        }
        other => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("altering resource type {other} is not supported"),
            ))
        }
    };
    drop(image);
    broker.controller(request).await?;
    if !validate_only {
        tracing::info!(resource_type, name, "config changed");
    }
    Ok(())
}

fn topic_list_default(broker: &Broker, key: &str) -> ApiResult<Option<String>> {
    let def = find_def(key).ok_or_else(|| {
        ApiError::new(
            ResponseError::InvalidConfig,
            format!("Unknown topic config name: {key}"),
        )
    })?;
    Ok(
        matches!(def.kind, ValueKind::ListOf(_) | ValueKind::List).then(|| {
            broker
                .config
                .topic_defaults
                .get(def.name)
                .cloned()
                .unwrap_or_default()
        }),
    )
}

fn broker_list_default(broker: &Broker, key: &str) -> ApiResult<Option<String>> {
    Ok(dynamic::dynamic_kind(key)
        .filter(|kind| matches!(kind, ValueKind::ListOf(_) | ValueKind::List))
        .map(|_| {
            broker
                .config
                .effective
                .get(key)
                .cloned()
                .unwrap_or_default()
        }))
}

fn group_list_default(key: &str) -> ApiResult<Option<String>> {
    Ok(group_configs::list_default(key).map(str::to_string))
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
    let access = Access::of(broker, ctx);
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        responses.push({
            let name = r.resource_name.as_str();
            let refusal =
                config_refusal(&access, AclOperation::AlterConfigs, r.resource_type, name);
            let outcome = if let Some(refusal) = refusal {
                Err(refusal)
            } else {
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
                .await
            };
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

/// Turns IncrementalAlterConfigs operations into key changes against the current values.
fn incremental_changes(
    configs: &[AlterableConfig],
    current: Current<'_>,
) -> ApiResult<ConfigChanges> {
    let mut changes = Vec::new();
    for c in configs {
        let key = c.name.as_str().to_string();
        let value = as_string(&c.value);
        let change = match c.config_operation {
            OP_SET => (key, Some(value.unwrap_or_default())),
            OP_DELETE => (key, None),
            op @ (OP_APPEND | OP_SUBTRACT) => {
                let Some(default) = (current.list_default)(&key)? else {
                    return Err(ApiError::new(
                        ResponseError::InvalidConfig,
                        format!(
                            "Config value append is not allowed for config key: {key}: it is not a list"
                        ),
                    ));
                };
                let item = value.unwrap_or_default();
                let now = current.values.and_then(|v| v.get(&key));
                let new = list_change(now, &default, &item, op == OP_APPEND);
                (key, Some(new))
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
    let access = Access::of(broker, ctx);
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        responses.push({
            let name = r.resource_name.as_str();
            let refusal =
                config_refusal(&access, AclOperation::AlterConfigs, r.resource_type, name);
            let outcome = match refusal {
                Some(refusal) => Err(refusal),
                None => {
                    alter_resource(
                        broker,
                        r.resource_type,
                        name,
                        request.validate_only,
                        |current| incremental_changes(&r.configs, current),
                    )
                    .await
                }
            };
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
