//! Spec checks the API server cannot make. The CRD schema and its CEL rules catch what they
//! can at admission; what is left here needs several fields at once, knowledge of the ports
//! and names the operator reserves, or of what strom-broker can serve today.
//!
//! Errors mean the operator applies nothing and reports `Ready=False`; warnings are
//! reported on a `Warning` condition while the cluster is still applied.

use std::collections::BTreeMap;

use crate::cluster::{names, security};
use crate::crd::cluster::{KafkaClusterSpec, ListenerSpec, StorageType};

/// Config keys the operator writes itself. A user value for one of them is dropped (with a
/// `ManagedConfigIgnored` warning) because it would break the cluster's wiring.
pub const MANAGED_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "controller.listener.names",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "log.dirs",
    "log.dir",
    "admin.listener",
    "broker.rack",
];

/// Authentication types a listener may name (Strimzi's spellings).
pub const KNOWN_AUTHENTICATION_TYPES: &[&str] = &["scram-sha-512", "tls"];

/// Kafka's own `default.replication.factor` and `min.insync.replicas` defaults, which
/// strom-broker shares: what applies when neither the spec nor `config` sets them.
const BROKER_DEFAULT_REPLICATION_FACTOR: i64 = 1;
const BROKER_DEFAULT_MIN_INSYNC_REPLICAS: i64 = 1;

/// One finding. `reason` is a CamelCase condition reason; `message` is for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

/// Everything `validate` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validation {
    /// The operator applies nothing while there is any.
    pub errors: Vec<Problem>,
    /// The cluster is applied; these are reported beside it.
    pub warnings: Vec<Problem>,
}

impl Validation {
    fn error(&mut self, reason: &'static str, message: String) {
        self.errors.push(Problem { reason, message });
    }

    fn warning(&mut self, reason: &'static str, message: String) {
        self.warnings.push(Problem { reason, message });
    }
}

/// Checks a spec. Pure: the same spec always gives the same findings, in the same order.
pub fn validate(spec: &KafkaClusterSpec) -> Validation {
    let mut v = Validation::default();
    check_replicas(spec, &mut v);
    check_replication(spec, &mut v);
    check_listeners(&spec.effective_listeners(), &mut v);
    check_config(spec, &mut v);
    check_overridden_config(spec, &mut v);
    check_storage(spec, &mut v);
    check_rack(spec, &mut v);
    v
}

fn check_replicas(spec: &KafkaClusterSpec, v: &mut Validation) {
    if spec.replicas < 1 {
        v.error(
            "InvalidReplicas",
            format!(
                "spec.replicas is {}; a cluster needs at least 1 broker",
                spec.replicas
            ),
        );
    }
    if spec.replicas == 2 {
        v.warning(
            "TwoBrokers",
            "a 2-broker cluster cannot survive the loss of either controller voter; \
             use 1 for development or 3 or more for availability"
                .into(),
        );
    }
}

/// Replication factors above the broker count make topic creation fail, and a
/// `min.insync.replicas` above the replication factor makes every `acks=all` produce fail.
fn check_replication(spec: &KafkaClusterSpec, v: &mut Validation) {
    let (rf, rf_source) = effective_replication_factor(spec);
    if let Some(rf) = rf.filter(|rf| *rf > i64::from(spec.replicas)) {
        v.error(
            "ReplicationFactorTooHigh",
            format!(
                "{rf_source} {rf} is more than the {} broker(s) in spec.replicas",
                spec.replicas
            ),
        );
    }
    let (min_isr, min_isr_source) = effective_min_insync_replicas(spec);
    let rf = rf.unwrap_or(BROKER_DEFAULT_REPLICATION_FACTOR);
    if min_isr > rf {
        let rf_source = if rf_source.is_empty() {
            "the broker's default replication factor"
        } else {
            rf_source
        };
        v.error(
            "MinInsyncReplicasTooHigh",
            format!(
                "{min_isr_source} {min_isr} is more than {rf_source} {rf}; \
                 producers with acks=all could never write"
            ),
        );
    }
}

/// The replication factor new topics get, and where it comes from: the spec field wins
/// over `config` (as `config.rs` renders it). `None` when neither sets it.
fn effective_replication_factor(spec: &KafkaClusterSpec) -> (Option<i64>, &'static str) {
    if let Some(rf) = spec.default_replication_factor {
        return (Some(i64::from(rf)), "defaultReplicationFactor");
    }
    match config_int(&spec.config, "default.replication.factor") {
        Some(rf) => (Some(rf), "config default.replication.factor"),
        None => (None, ""),
    }
}

fn effective_min_insync_replicas(spec: &KafkaClusterSpec) -> (i64, &'static str) {
    if let Some(min_isr) = spec.min_insync_replicas {
        return (i64::from(min_isr), "minInsyncReplicas");
    }
    match config_int(&spec.config, "min.insync.replicas") {
        Some(min_isr) => (min_isr, "config min.insync.replicas"),
        None => (BROKER_DEFAULT_MIN_INSYNC_REPLICAS, "the broker default"),
    }
}

/// A `config` entry as a whole number, whether given as a JSON number or a string.
pub(crate) fn config_int(config: &BTreeMap<String, serde_json::Value>, key: &str) -> Option<i64> {
    match config.get(key)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn check_listeners(listeners: &[ListenerSpec], v: &mut Validation) {
    check_listener_names(listeners, v);
    check_listener_ports(listeners, v);
    for listener in listeners {
        check_listener_security(listener, v);
    }
}

fn check_listener_names(listeners: &[ListenerSpec], v: &mut Validation) {
    let mut seen: Vec<&str> = Vec::new();
    for listener in listeners {
        let name = listener.name.as_str();
        if names::RESERVED_LISTENER_NAMES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
        {
            v.error(
                "ReservedListenerName",
                format!(
                    "listener name {name} is reserved for the operator's own listener; \
                     reserved names: {}",
                    names::RESERVED_LISTENER_NAMES.join(", ")
                ),
            );
        }
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            v.error(
                "DuplicateListenerName",
                format!("listener name {name} is used more than once"),
            );
        } else {
            seen.push(name);
        }
    }
}

fn check_listener_ports(listeners: &[ListenerSpec], v: &mut Validation) {
    for (i, listener) in listeners.iter().enumerate() {
        if let Some(user) = reserved_port_user(listener.port) {
            v.error(
                "ListenerPortClash",
                format!(
                    "listener {} uses port {}, which the operator uses for {user}",
                    listener.name, listener.port
                ),
            );
        }
        if let Some(earlier) = listeners[..i].iter().find(|l| l.port == listener.port) {
            v.error(
                "ListenerPortClash",
                format!(
                    "listener {} uses port {}, which listener {} already uses",
                    listener.name, listener.port, earlier.name
                ),
            );
        }
    }
}

/// What the operator runs on a reserved port, for the clash message.
fn reserved_port_user(port: i32) -> Option<&'static str> {
    match port {
        names::REPLICATION_PORT => Some("replication between brokers"),
        names::CONTROLLER_PORT => Some("the KRaft controller quorum"),
        names::ADMIN_PORT => Some("the admin endpoint (health, readiness, metrics)"),
        _ => None,
    }
}

/// An authentication type the operator does not know would otherwise be served as an
/// open listener, which is worse than not starting.
fn check_listener_security(listener: &ListenerSpec, v: &mut Validation) {
    if let Some(auth) = &listener.authentication {
        if !KNOWN_AUTHENTICATION_TYPES.contains(&auth.kind.as_str()) {
            v.error(
                "UnknownAuthenticationType",
                format!(
                    "listener {} has authentication type {:?}; known types: {}",
                    listener.name,
                    auth.kind,
                    KNOWN_AUTHENTICATION_TYPES.join(", ")
                ),
            );
        }
    }
}

/// Kafka properties are flat strings: nested values have no rendering. strom-broker also
/// reads its file as Latin-1 with `\uXXXX` escapes, which cannot carry characters outside
/// the Basic Multilingual Plane.
fn check_config(spec: &KafkaClusterSpec, v: &mut Validation) {
    let config = &spec.config;
    for (key, value) in config {
        let problem = match value {
            serde_json::Value::String(s) if s.chars().any(outside_bmp) => {
                Some("contains a character strom-broker's properties reader cannot read")
            }
            serde_json::Value::String(_)
            | serde_json::Value::Number(_)
            | serde_json::Value::Bool(_) => None,
            serde_json::Value::Null => Some("is null"),
            serde_json::Value::Array(_) => Some("is a list"),
            serde_json::Value::Object(_) => Some("is an object"),
        };
        let problem = problem.or_else(|| {
            key.chars()
                .any(outside_bmp)
                .then_some("has an unreadable key")
        });
        let problem = problem.or_else(|| key.trim().is_empty().then_some("has an empty key"));
        if let Some(problem) = problem {
            v.error(
                "InvalidConfigValue",
                format!("config {key:?} {problem}; values must be strings, numbers or booleans"),
            );
        }
    }
    let managed: Vec<&str> = config
        .keys()
        .map(String::as_str)
        .filter(|k| {
            MANAGED_KEYS.contains(k)
                || security::managed_keys(spec).contains(k)
                || (security::is_secured(spec) && security::is_internal_listener_key(k))
        })
        .collect();
    if !managed.is_empty() {
        v.warning(
            "ManagedConfigIgnored",
            format!(
                "config keys {} are managed by the operator and ignored",
                managed.join(", ")
            ),
        );
    }
}

fn outside_bmp(c: char) -> bool {
    u32::from(c) > 0xFFFF
}

/// The spec's own fields win over the same setting in `config`; say so rather than
/// silently dropping the user's value.
fn check_overridden_config(spec: &KafkaClusterSpec, v: &mut Validation) {
    let overridden: Vec<&str> = overridden_config_keys(spec)
        .into_iter()
        .filter(|k| spec.config.contains_key(*k))
        .collect();
    if !overridden.is_empty() {
        v.warning(
            "ConfigOverriddenBySpec",
            format!(
                "config keys {} are ignored because the spec sets them \
                 (defaultReplicationFactor, minInsyncReplicas)",
                overridden.join(", ")
            ),
        );
    }
}

/// Config keys a spec field replaces, for this spec.
pub(crate) fn overridden_config_keys(spec: &KafkaClusterSpec) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if spec.default_replication_factor.is_some() {
        keys.push("default.replication.factor");
    }
    if spec.min_insync_replicas.is_some() {
        keys.push("min.insync.replicas");
    }
    keys
}

fn check_storage(spec: &KafkaClusterSpec, v: &mut Validation) {
    if spec.storage.kind == StorageType::PersistentClaim && spec.storage.size.is_none() {
        v.error(
            "MissingStorageSize",
            "persistent-claim storage needs spec.storage.size, e.g. 100Gi".into(),
        );
    }
}

fn check_rack(spec: &KafkaClusterSpec, v: &mut Validation) {
    if let Some(rack) = &spec.rack {
        if rack.topology_key.trim().is_empty() {
            v.error(
                "InvalidRack",
                "spec.rack.topologyKey is empty; name a node label such as \
                 topology.kubernetes.io/zone"
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> KafkaClusterSpec {
        serde_json::from_value(value).expect("fixture spec")
    }

    fn good() -> serde_json::Value {
        json!({
            "replicas": 3,
            "defaultReplicationFactor": 3,
            "minInsyncReplicas": 2,
            "listeners": [
                {"name": "plain", "port": 9092, "type": "internal"},
                {"name": "external", "port": 9094, "type": "nodeport"},
            ],
            "config": {"log.retention.ms": 3600000, "auto.create.topics.enable": false,
                       "compression.type": "zstd"},
            "storage": {"type": "persistent-claim", "size": "10Gi"},
            "rack": {"topologyKey": "topology.kubernetes.io/zone"},
        })
    }

    fn error_reasons(value: serde_json::Value) -> Vec<&'static str> {
        validate(&spec(value))
            .errors
            .iter()
            .map(|p| p.reason)
            .collect()
    }

    fn with(mut base: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
        base[key] = value;
        base
    }

    #[test]
    fn good_spec_has_no_findings() {
        assert_eq!(validate(&spec(good())), Validation::default());
        assert_eq!(
            validate(&spec(json!({"replicas": 1}))),
            Validation::default()
        );
    }

    #[test]
    fn zero_replicas() {
        assert_eq!(
            error_reasons(json!({"replicas": 0})),
            vec!["InvalidReplicas"]
        );
    }

    #[test]
    fn replication_factor_above_replicas() {
        let v = validate(&spec(json!({"replicas": 1, "defaultReplicationFactor": 3})));
        assert_eq!(v.errors.len(), 1);
        assert_eq!(v.errors[0].reason, "ReplicationFactorTooHigh");
        assert!(v.errors[0].message.contains("defaultReplicationFactor 3"));
        assert!(v.errors[0].message.contains("1 broker(s)"));
    }

    #[test]
    fn replication_factor_from_config_is_checked_too() {
        let v = json!({"replicas": 1, "config": {"default.replication.factor": "2"}});
        assert_eq!(error_reasons(v), vec!["ReplicationFactorTooHigh"]);
    }

    #[test]
    fn min_insync_above_replication_factor() {
        let v = json!({"replicas": 3, "defaultReplicationFactor": 2, "minInsyncReplicas": 3});
        assert_eq!(error_reasons(v), vec!["MinInsyncReplicasTooHigh"]);
        // Without a replication factor the broker default (1) applies.
        let v = json!({"replicas": 3, "minInsyncReplicas": 2});
        assert_eq!(error_reasons(v), vec!["MinInsyncReplicasTooHigh"]);
        let v = json!({"replicas": 3, "config": {"default.replication.factor": 3,
                                                  "min.insync.replicas": 2}});
        assert_eq!(error_reasons(v), Vec::<&str>::new());
    }

    #[test]
    fn unknown_authentication_type_is_an_error() {
        let v = with(
            good(),
            "listeners",
            json!([{"name": "plain", "port": 9092, "authentication": {"type": "plain"}}]),
        );
        let v = validate(&spec(v));
        assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
        assert_eq!(v.errors[0].reason, "UnknownAuthenticationType");
        assert!(v.errors[0].message.contains("plain"));
        assert!(v.errors[0].message.contains("scram-sha-512, tls"));
    }

    #[test]
    fn tls_and_known_authentication_are_accepted() {
        for listener in [
            json!({"name": "secure", "port": 9095, "tls": true}),
            json!({"name": "secure", "port": 9095, "authentication": {"type": "scram-sha-512"}}),
            json!({"name": "secure", "port": 9095, "tls": true,
                   "authentication": {"type": "tls"}}),
        ] {
            let v = validate(&spec(with(good(), "listeners", json!([listener]))));
            assert!(v.errors.is_empty(), "{:?}", v.errors);
        }
    }

    #[test]
    fn a_secured_cluster_keeps_its_security_keys() {
        let v = with(good(), "authorization", json!({"type": "simple"}));
        let v = with(
            v,
            "config",
            json!({"super.users": "User:x", "listener.name.replication.ssl.client.auth": "none",
                   "listener.name.plain.ssl.cipher.suites": "x"}),
        );
        let v = validate(&spec(v));
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert_eq!(v.warnings[0].reason, "ManagedConfigIgnored");
        assert!(v.warnings[0]
            .message
            .contains("listener.name.replication.ssl.client.auth, super.users"));
    }

    #[test]
    fn listener_on_a_reserved_port() {
        for (port, what) in [(9091, "replication"), (9093, "controller"), (9644, "admin")] {
            let v = with(
                good(),
                "listeners",
                json!([{"name": "plain", "port": port}]),
            );
            let v = validate(&spec(v));
            assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
            assert_eq!(v.errors[0].reason, "ListenerPortClash");
            assert!(v.errors[0].message.contains("listener plain"));
            assert!(
                v.errors[0].message.contains(what),
                "{}",
                v.errors[0].message
            );
        }
    }

    #[test]
    fn two_listeners_on_one_port() {
        let v = with(
            good(),
            "listeners",
            json!([{"name": "a", "port": 9092}, {"name": "b", "port": 9092}]),
        );
        let v = validate(&spec(v));
        assert_eq!(v.errors.len(), 1);
        assert_eq!(v.errors[0].reason, "ListenerPortClash");
        assert!(v.errors[0].message.contains("listener b"));
        assert!(v.errors[0].message.contains("listener a"));
    }

    #[test]
    fn reserved_and_duplicate_listener_names() {
        let v = with(
            good(),
            "listeners",
            json!([{"name": "replication", "port": 9092}]),
        );
        assert_eq!(error_reasons(v), vec!["ReservedListenerName"]);
        let v = with(
            good(),
            "listeners",
            json!([{"name": "plain", "port": 9092}, {"name": "plain", "port": 9094}]),
        );
        assert_eq!(error_reasons(v), vec!["DuplicateListenerName"]);
    }

    #[test]
    fn non_scalar_config_values() {
        let v = with(
            good(),
            "config",
            json!({"a": [1], "b": {"c": 1}, "d": null, "ok": "x"}),
        );
        let v = validate(&spec(v));
        let reasons: Vec<_> = v.errors.iter().map(|p| p.reason).collect();
        assert_eq!(reasons, vec!["InvalidConfigValue"; 3]);
        assert!(v.errors[0].message.contains("\"a\""));
        let v = with(good(), "config", json!({"x": "emoji \u{1F600}"}));
        assert_eq!(error_reasons(v), vec!["InvalidConfigValue"]);
    }

    #[test]
    fn persistent_storage_needs_a_size() {
        let v = with(good(), "storage", json!({"type": "persistent-claim"}));
        assert_eq!(error_reasons(v), vec!["MissingStorageSize"]);
        let v = with(good(), "storage", json!({"type": "ephemeral"}));
        assert!(error_reasons(v).is_empty());
    }

    #[test]
    fn empty_rack_key() {
        let v = with(good(), "rack", json!({"topologyKey": " "}));
        assert_eq!(error_reasons(v), vec!["InvalidRack"]);
    }

    #[test]
    fn managed_keys_warn_once_sorted() {
        let v = with(
            good(),
            "config",
            json!({"node.id": 5, "log.dirs": "/x", "listeners": "P://:1", "retention.ms": 1}),
        );
        let v = validate(&spec(v));
        assert!(v.errors.is_empty());
        assert_eq!(v.warnings.len(), 1);
        assert_eq!(v.warnings[0].reason, "ManagedConfigIgnored");
        assert!(v.warnings[0]
            .message
            .contains("listeners, log.dirs, node.id"));
        assert!(!v.warnings[0].message.contains("retention.ms"));
    }

    #[test]
    fn spec_fields_override_config() {
        let v = with(
            good(),
            "config",
            json!({"default.replication.factor": 1, "min.insync.replicas": 1}),
        );
        let v = validate(&spec(v));
        assert!(v.errors.is_empty());
        assert_eq!(v.warnings.len(), 1);
        assert_eq!(v.warnings[0].reason, "ConfigOverriddenBySpec");
    }

    #[test]
    fn two_brokers_warn() {
        let v = validate(&spec(json!({"replicas": 2})));
        assert!(v.errors.is_empty());
        assert_eq!(v.warnings.len(), 1);
        assert_eq!(v.warnings[0].reason, "TwoBrokers");
    }
}
