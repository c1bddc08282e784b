//! Dynamic broker configs, as Kafka serves them: set through IncrementalAlterConfigs or
//! AlterConfigs on a BROKER resource, for one broker (resource name = node id) or for the
//! whole cluster (empty name), kept in the metadata log (`ConfigResource::Broker`) so they
//! reach every broker and survive restarts. A value resolves per-broker dynamic, then
//! cluster-default dynamic, then `server.properties` (static), then the built-in default.
//!
//! This module decides: which keys may change at run time, whether a value is valid, what
//! a key resolves to on a broker, and the entries (with sources and synonyms) that
//! DescribeConfigs reports. Applying a value is the job of whoever reads it: the log
//! manager's topic defaults, the replication throttles, the controller's unclean election.

use std::collections::BTreeMap;

use super::topic::{validate_value, BrokerSynonym, ValueKind, TOPIC_CONFIGS};
use super::BrokerConfig;
use crate::metadata::MetadataImage;

/// DescribeConfigs sources (Kafka's ConfigSource numbering).
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;
pub const SOURCE_DYNAMIC_GROUP: i8 = 8;

/// Broker keys that are not topic-config synonyms but that Kafka lets change at run time,
/// with their types. Which of them Strom honours is listed in broker/README.md; the others
/// are stored and described as Kafka does.
const OTHER_DYNAMIC_KEYS: &[(&str, ValueKind, Option<&str>)] = &[
    // Kafka keeps the three quota rates outside its broker config definition: they have no
    // default synonym and are listed only once set.
    ("leader.replication.throttled.rate", LONG, None),
    ("follower.replication.throttled.rate", LONG, None),
    ("replica.alter.log.dirs.io.max.bytes.per.second", LONG, None),
    ("log.cleaner.threads", INT, Some("1")),
    (
        "log.cleaner.io.max.bytes.per.second",
        DOUBLE,
        Some("1.7976931348623157E308"),
    ),
    ("log.cleaner.dedupe.buffer.size", LONG, Some("134217728")),
    ("log.cleaner.io.buffer.size", INT, Some("524288")),
    ("log.cleaner.io.buffer.load.factor", DOUBLE, Some("0.9")),
    ("log.cleaner.backoff.ms", LONG, Some("15000")),
    ("log.retention.minutes", ANY_INT, None),
    ("log.retention.hours", ANY_INT, Some("168")),
    ("log.roll.hours", ValueKind::Int { min: 1 }, Some("168")),
    ("log.roll.jitter.hours", INT, Some("0")),
    ("num.io.threads", ValueKind::Int { min: 1 }, Some("8")),
    ("num.network.threads", ValueKind::Int { min: 1 }, Some("3")),
    ("num.replica.fetchers", ValueKind::Int { min: 1 }, Some("1")),
    (
        "num.recovery.threads.per.data.dir",
        ValueKind::Int { min: 1 },
        Some("2"),
    ),
    ("background.threads", ValueKind::Int { min: 1 }, Some("10")),
    ("max.connections", INT, Some("2147483647")),
    ("max.connections.per.ip", INT, Some("2147483647")),
    (
        "max.connections.per.ip.overrides",
        ValueKind::Text,
        Some(""),
    ),
    ("max.connection.creation.rate", INT, Some("2147483647")),
];

const LONG: ValueKind = ValueKind::Long { min: 0 };
const INT: ValueKind = ValueKind::Int { min: 0 };
const ANY_INT: ValueKind = ValueKind::Int { min: i32::MIN };
const DOUBLE: ValueKind = ValueKind::Double {
    min: f64::MIN,
    max: f64::MAX,
};

/// Kafka keys Strom does not read that Kafka refuses to change at run time; Strom's own
/// static keys (everything in `BrokerConfig::effective`) are refused the same way.
const KAFKA_STATIC_KEYS: &[&str] = &[
    "broker.id",
    "log.dir",
    "process.roles",
    "controller.quorum.bootstrap.servers",
    "zookeeper.connect",
    "metadata.log.dir",
];

/// A broker key that changes at run time, and its type.
pub fn dynamic_kind(key: &str) -> Option<ValueKind> {
    if let Some(def) = super::topic::def_for_broker_key(key) {
        return Some(def.kind);
    }
    OTHER_DYNAMIC_KEYS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, kind, _)| *kind)
}

/// Kafka's built-in default of a broker key, as its DEFAULT_CONFIG synonym shows it; `None`
/// for keys Kafka lists without one.
fn kafka_default(key: &str) -> Option<String> {
    if let Some((_, _, default)) = OTHER_DYNAMIC_KEYS.iter().find(|(k, _, _)| *k == key) {
        return default.map(str::to_string);
    }
    if let Some(def) = super::topic::def_for_broker_key(key) {
        if matches!(def.broker, BrokerSynonym::WhenSet(_)) {
            return None;
        }
        return Some(
            super::builtin_default(key)
                .unwrap_or(def.default)
                .to_string(),
        );
    }
    if STROM_ONLY_DEFAULTS.contains(&key) {
        return None;
    }
    super::builtin_default(key).map(str::to_string)
}

/// Keys Strom gives a default that Kafka leaves unset (so Kafka shows no default synonym).
const STROM_ONLY_DEFAULTS: &[&str] = &["node.id", "listeners", "log.dirs", "admin.listener"];

/// Why a set of broker changes is refused; `INVALID_REQUEST` with this message, as Kafka.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrokerConfigError {
    #[error("Cannot update these configs dynamically: [{}]", .0.join(", "))]
    NotDynamic(Vec<String>),
    #[error("Invalid value {value} for configuration {key}: {why}")]
    BadValue {
        key: String,
        value: String,
        why: String,
    },
}

/// Checks changes to a BROKER resource: keys that cannot change at run time are refused
/// together (as Kafka lists them), then each value is checked against its key's type. Keys
/// unknown to Kafka and Strom are accepted, as Kafka accepts them.
pub fn check_broker_changes(
    config: &BrokerConfig,
    changes: &[(String, Option<String>)],
) -> Result<(), BrokerConfigError> {
    let mut frozen: Vec<String> = changes
        .iter()
        .map(|(k, _)| k)
        .filter(|k| {
            dynamic_kind(k).is_none()
                && (config.effective.contains_key(k.as_str())
                    || KAFKA_STATIC_KEYS.contains(&k.as_str()))
        })
        .cloned()
        .collect();
    if !frozen.is_empty() {
        frozen.sort();
        frozen.dedup();
        return Err(BrokerConfigError::NotDynamic(frozen));
    }
    for (key, value) in changes {
        let (Some(value), Some(kind)) = (value, dynamic_kind(key)) else {
            continue;
        };
        let checked = match super::topic::def_for_broker_key(key) {
            Some(def) => def.validate(value),
            None => validate_value(kind, value),
        };
        checked.map_err(|why| BrokerConfigError::BadValue {
            key: key.clone(),
            value: value.clone(),
            why,
        })?;
    }
    Ok(())
}

/// The dynamic configs that apply to one broker: its own, then the cluster default.
#[derive(Debug, Clone, Copy)]
pub struct DynamicLayer<'a> {
    pub per_broker: Option<&'a BTreeMap<String, String>>,
    pub cluster_default: Option<&'a BTreeMap<String, String>>,
}

impl<'a> DynamicLayer<'a> {
    pub fn of(image: &'a MetadataImage, node_id: i32) -> DynamicLayer<'a> {
        DynamicLayer {
            per_broker: image.broker_config(&node_id.to_string()),
            cluster_default: image.broker_config(""),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.per_broker.is_none() && self.cluster_default.is_none()
    }

    /// The dynamic value of `key` and its source, per-broker first.
    pub fn get(&self, key: &str) -> Option<(&'a str, i8)> {
        let per_broker = self
            .per_broker
            .and_then(|m| m.get(key))
            .map(|v| (v.as_str(), SOURCE_DYNAMIC_BROKER));
        per_broker.or_else(|| {
            self.cluster_default
                .and_then(|m| m.get(key))
                .map(|v| (v.as_str(), SOURCE_DYNAMIC_DEFAULT_BROKER))
        })
    }

    /// A whole-number key's dynamic value, else `fallback` (the static value).
    pub fn long(&self, key: &str, fallback: i64) -> i64 {
        self.get(key)
            .and_then(|(v, _)| v.trim().parse().ok())
            .unwrap_or(fallback)
    }

    /// The dynamic value a topic default takes from its broker keys, converting Kafka's
    /// coarser spellings (`log.retention.minutes`/`.hours`, `log.roll.hours`) to ms. The
    /// finer key wins at any level, as in Kafka.
    fn topic_default(&self, broker_key: &str) -> Option<String> {
        synonym_keys(broker_key).iter().find_map(|(key, factor)| {
            self.get(key).map(|(v, _)| match v.trim().parse::<i64>() {
                Ok(n) if *factor != 1 => n.saturating_mul(*factor).to_string(),
                _ => v.to_string(),
            })
        })
    }
}

/// A broker key and its coarser synonyms, finest first, with the factor to the first's
/// unit.
fn synonym_keys(key: &str) -> &'static [(&'static str, i64)] {
    match key {
        "log.retention.ms" => &[
            ("log.retention.ms", 1),
            ("log.retention.minutes", 60_000),
            ("log.retention.hours", 3_600_000),
        ],
        "log.roll.ms" => &[("log.roll.ms", 1), ("log.roll.hours", 3_600_000)],
        "log.roll.jitter.ms" => &[
            ("log.roll.jitter.ms", 1),
            ("log.roll.jitter.hours", 3_600_000),
        ],
        _ => &[],
    }
}

/// The broker's effective topic defaults: the static ones with the dynamic layer on top.
pub fn topic_defaults(
    config: &BrokerConfig,
    image: &MetadataImage,
    node_id: i32,
) -> BTreeMap<&'static str, String> {
    layered_topic_defaults(&config.topic_defaults, DynamicLayer::of(image, node_id))
}

/// `topic_defaults` from its parts, for callers that keep the static defaults apart.
pub fn layered_topic_defaults(
    static_defaults: &BTreeMap<&'static str, String>,
    layer: DynamicLayer<'_>,
) -> BTreeMap<&'static str, String> {
    let mut defaults = static_defaults.clone();
    if layer.is_empty() {
        return defaults;
    }
    for def in TOPIC_CONFIGS {
        let Some(key) = def.broker.key() else {
            continue;
        };
        let dynamic = if synonym_keys(key).is_empty() {
            layer.get(key).map(|(v, _)| v.to_string())
        } else {
            layer.topic_default(key)
        };
        if let Some(v) = dynamic {
            defaults.insert(def.name, v);
        }
    }
    defaults
}

/// One described config entry with its synonyms, most specific first.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    /// `None` for a sensitive value (Kafka never shows those).
    pub value: Option<String>,
    pub source: i8,
    pub config_type: i8,
    pub read_only: bool,
    pub sensitive: bool,
    /// (name, value, source)
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

impl Entry {
    fn from_synonyms(
        name: &str,
        synonyms: Vec<(String, Option<String>, i8)>,
        fallback: Option<String>,
        config_type: i8,
        read_only: bool,
    ) -> Entry {
        let (value, source) = synonyms
            .first()
            .map(|(_, v, s)| (v.clone(), *s))
            .unwrap_or((fallback, SOURCE_DEFAULT));
        Entry {
            name: name.to_string(),
            value,
            source,
            config_type,
            read_only,
            sensitive: false,
            synonyms,
        }
    }
}

/// Kafka's built-in default of a broker key when Kafka lists it under a coarser synonym
/// (its `log.retention.ms` has no default of its own).
fn kafka_default_synonym(key: &str) -> Option<(&'static str, &'static str)> {
    match key {
        "log.retention.ms" => Some(("log.retention.hours", "168")),
        _ => None,
    }
}

/// The synonyms of a broker key on this broker: dynamic per-broker, dynamic default,
/// static, built-in default, for the key and then its coarser spellings.
fn broker_synonyms(
    config: &BrokerConfig,
    layer: DynamicLayer<'_>,
    key: &str,
) -> Vec<(String, Option<String>, i8)> {
    let mut out = Vec::new();
    let keys: Vec<&str> = match synonym_keys(key) {
        [] => vec![key],
        list => list.iter().map(|(k, _)| *k).collect(),
    };
    for k in &keys {
        if let Some(v) = layer.per_broker.and_then(|m| m.get(*k)) {
            out.push((k.to_string(), Some(v.clone()), SOURCE_DYNAMIC_BROKER));
        }
        if let Some(v) = layer.cluster_default.and_then(|m| m.get(*k)) {
            out.push((
                k.to_string(),
                Some(v.clone()),
                SOURCE_DYNAMIC_DEFAULT_BROKER,
            ));
        }
        if let Some(v) = config.given.get(*k) {
            out.push((k.to_string(), Some(v.clone()), SOURCE_STATIC_BROKER));
        }
    }
    match kafka_default_synonym(key) {
        Some((k, v)) => out.push((k.to_string(), Some(v.to_string()), SOURCE_DEFAULT)),
        None => {
            if let Some(v) = kafka_default(key) {
                out.push((key.to_string(), Some(v), SOURCE_DEFAULT));
            }
        }
    }
    out
}

/// The type DescribeConfigs reports for a broker key Strom reads: the dynamic table's, the
/// topic synonym's, else read off its value.
fn broker_key_type(key: &str, value: &str) -> i8 {
    if let Some(kind) = dynamic_kind(key) {
        return kind.describe_type();
    }
    if value == "true" || value == "false" {
        ValueKind::Bool.describe_type()
    } else if value.parse::<i32>().is_ok() {
        ValueKind::Int { min: 0 }.describe_type()
    } else if value.parse::<i64>().is_ok() {
        ValueKind::Long { min: 0 }.describe_type()
    } else if value.contains(',') {
        ValueKind::List.describe_type()
    } else {
        ValueKind::Text.describe_type()
    }
}

/// An entry for a key only the dynamic layer knows: Kafka cannot tell its type, so it
/// treats it as a password (sensitive, value hidden).
fn unknown_entry(key: &str, source: i8) -> Entry {
    Entry {
        name: key.to_string(),
        value: None,
        source,
        config_type: ValueKind::Text.describe_type(),
        read_only: false,
        sensitive: true,
        synonyms: vec![(key.to_string(), None, source)],
    }
}

/// Dynamic keys Kafka's broker description leaves out until they are set.
fn listed_only_when_set(key: &str) -> bool {
    QUOTA_RATES.contains(&key)
}

/// The replication quota rates, which Kafka keeps outside its broker config definition.
const QUOTA_RATES: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

/// DescribeConfigs for this broker (`name` = its node id): every key Strom reads or that
/// is set dynamically, with its effective value, source and synonyms.
pub fn describe_broker(config: &BrokerConfig, image: &MetadataImage) -> Vec<Entry> {
    let layer = DynamicLayer::of(image, config.node_id);
    let mut keys: Vec<&str> = config.effective.keys().map(String::as_str).collect();
    keys.extend(OTHER_DYNAMIC_KEYS.iter().map(|(k, _, _)| *k));
    keys.extend(TOPIC_CONFIGS.iter().filter_map(|d| d.broker.key()));
    keys.sort_unstable();
    keys.dedup();
    let mut entries: Vec<Entry> =
        keys.iter()
            .filter_map(|key| {
                let synonyms = broker_synonyms(config, layer, key);
                if synonyms.is_empty() && listed_only_when_set(key) {
                    return None;
                }
                let fallback = config.effective.get(*key).cloned().or_else(|| {
                    super::topic::def_for_broker_key(key).map(|d| d.default.to_string())
                });
                let value_for_type = fallback.clone().unwrap_or_default();
                if !synonym_keys(key).is_empty() {
                    // The value is in this key's unit even when a coarser synonym supplies it.
                    let mut entry = Entry::from_synonyms(
                        key,
                        synonyms,
                        None,
                        broker_key_type(key, &value_for_type),
                        false,
                    );
                    entry.value = layer.topic_default(key).or(fallback);
                    return Some(entry);
                }
                Some(Entry::from_synonyms(
                    key,
                    synonyms,
                    fallback,
                    broker_key_type(key, &value_for_type),
                    dynamic_kind(key).is_none(),
                ))
            })
            .collect();
    // Kafka's PASSWORD keys: listed, never shown.
    for entry in entries
        .iter_mut()
        .filter(|e| super::security::is_sensitive(&e.name))
    {
        entry.value = None;
        entry.sensitive = true;
        entry.synonyms.iter_mut().for_each(|s| s.1 = None);
    }
    for (map, source) in [
        (layer.per_broker, SOURCE_DYNAMIC_BROKER),
        (layer.cluster_default, SOURCE_DYNAMIC_DEFAULT_BROKER),
    ] {
        for key in map.into_iter().flat_map(|m| m.keys()) {
            if !entries.iter().any(|e| &e.name == key) {
                entries.push(unknown_entry(key, source));
            }
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// DescribeConfigs for the cluster default (empty name): only what is set there, as Kafka.
pub fn describe_cluster_default(image: &MetadataImage) -> Vec<Entry> {
    let source = SOURCE_DYNAMIC_DEFAULT_BROKER;
    image
        .broker_config("")
        .into_iter()
        .flatten()
        .map(|(key, value)| match dynamic_kind(key) {
            Some(kind) => Entry {
                name: key.clone(),
                value: Some(value.clone()),
                source,
                config_type: kind.describe_type(),
                read_only: false,
                sensitive: false,
                synonyms: vec![(key.clone(), Some(value.clone()), source)],
            },
            None => unknown_entry(key, source),
        })
        .collect()
}

/// DescribeConfigs for a topic: every key Kafka lists, the override first, then the
/// broker synonyms that supply the default.
pub fn describe_topic(
    config: &BrokerConfig,
    image: &MetadataImage,
    overrides: &BTreeMap<String, String>,
) -> Vec<Entry> {
    let layer = DynamicLayer::of(image, config.node_id);
    let defaults = layered_topic_defaults(&config.topic_defaults, layer);
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push((d.name.to_string(), Some(v.clone()), SOURCE_DYNAMIC_TOPIC));
            }
            match d.broker {
                BrokerSynonym::None => {}
                BrokerSynonym::Listed(key) => {
                    synonyms.extend(broker_synonyms(config, layer, key));
                }
                BrokerSynonym::WhenSet(key) => synonyms.extend(
                    broker_synonyms(config, layer, key)
                        .into_iter()
                        .filter(|(_, _, source)| *source != SOURCE_DEFAULT),
                ),
            }
            // The resolved value, in the topic key's unit even when a coarser broker
            // synonym (log.retention.hours) supplies it.
            let value = overrides
                .get(d.name)
                .or_else(|| defaults.get(d.name))
                .cloned()
                .unwrap_or_else(|| d.default.to_string());
            let mut entry =
                Entry::from_synonyms(d.name, synonyms, None, d.kind.describe_type(), false);
            entry.value = Some(value);
            entry
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Properties;
    use crate::metadata::{ConfigResource, MetadataRecord};

    fn config(pairs: &[(&str, &str)]) -> BrokerConfig {
        let props: Properties = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::from_properties(props).expect("valid").0
    }

    fn set(image: &mut MetadataImage, broker: &str, key: &str, value: &str) {
        image.apply(&MetadataRecord::Config {
            resource: ConfigResource::Broker(broker.to_string()),
            key: key.to_string(),
            value: Some(value.to_string()),
        });
    }

    #[test]
    fn per_broker_beats_cluster_default_beats_static() {
        let cfg = config(&[("node.id", "1"), ("log.retention.ms", "1000")]);
        let mut image = MetadataImage::default();
        assert_eq!(topic_defaults(&cfg, &image, 1)["retention.ms"], "1000");
        set(&mut image, "", "log.retention.ms", "2000");
        assert_eq!(topic_defaults(&cfg, &image, 1)["retention.ms"], "2000");
        set(&mut image, "1", "log.retention.ms", "3000");
        assert_eq!(topic_defaults(&cfg, &image, 1)["retention.ms"], "3000");
        assert_eq!(
            topic_defaults(&cfg, &image, 2)["retention.ms"],
            "2000",
            "another broker sees only the default"
        );
        set(&mut image, "", "min.insync.replicas", "2");
        assert_eq!(topic_defaults(&cfg, &image, 1)["min.insync.replicas"], "2");
    }

    #[test]
    fn coarser_retention_keys_convert_and_finer_wins() {
        let cfg = config(&[]);
        let mut image = MetadataImage::default();
        set(&mut image, "", "log.retention.hours", "2");
        assert_eq!(topic_defaults(&cfg, &image, 0)["retention.ms"], "7200000");
        set(&mut image, "0", "log.retention.minutes", "3");
        assert_eq!(topic_defaults(&cfg, &image, 0)["retention.ms"], "180000");
        set(&mut image, "", "log.retention.ms", "5");
        assert_eq!(
            topic_defaults(&cfg, &image, 0)["retention.ms"],
            "5",
            "ms at any level wins over minutes"
        );
    }

    #[test]
    fn static_keys_are_refused_together_and_values_checked() {
        let cfg = config(&[]);
        let change = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        let err = check_broker_changes(
            &cfg,
            &[
                change("node.id", "3"),
                change("log.dirs", "/x"),
                change("log.retention.ms", "1"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot update these configs dynamically: [log.dirs, node.id]"
        );
        let err = check_broker_changes(&cfg, &[change("log.retention.ms", "abc")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid value abc for configuration log.retention.ms: Not a number of type LONG"
        );
        assert!(check_broker_changes(&cfg, &[change("no.such.key", "1")]).is_ok());
        assert!(check_broker_changes(&cfg, &[change("log.cleaner.threads", "2")]).is_ok());
        assert!(check_broker_changes(&cfg, &[("broker.id".to_string(), None)]).is_err());
    }

    #[test]
    fn describe_reports_sources_and_synonyms() {
        let cfg = config(&[("node.id", "1"), ("log.retention.ms", "1000")]);
        let mut image = MetadataImage::default();
        set(&mut image, "", "log.retention.ms", "2000");
        set(&mut image, "1", "no.such.key", "x");
        let entries = describe_broker(&cfg, &image);
        let get = |n: &str| entries.iter().find(|e| e.name == n).expect(n).clone();
        let retention = get("log.retention.ms");
        assert_eq!(retention.value.as_deref(), Some("2000"));
        assert_eq!(retention.source, SOURCE_DYNAMIC_DEFAULT_BROKER);
        assert!(!retention.read_only);
        let sources: Vec<i8> = retention.synonyms.iter().map(|s| s.2).collect();
        assert_eq!(
            sources,
            vec![
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                SOURCE_STATIC_BROKER,
                SOURCE_DEFAULT
            ]
        );
        assert!(get("log.dirs").read_only);
        let unknown = get("no.such.key");
        assert!(unknown.sensitive && unknown.value.is_none());
        assert_eq!(get("min.insync.replicas").source, SOURCE_DEFAULT);
        assert_eq!(describe_cluster_default(&image).len(), 1);

        let tls = config(&[
            ("listeners", "PLAINTEXT://:9092,SSL://:9093"),
            ("ssl.keystore.location", "/tls/k.pem"),
            ("ssl.key.password", "secret"),
        ]);
        let entries = describe_broker(&tls, &image);
        let get = |n: &str| entries.iter().find(|e| e.name == n).expect(n).clone();
        assert_eq!(
            get("ssl.keystore.location").value.as_deref(),
            Some("/tls/k.pem")
        );
        let password = get("ssl.key.password");
        assert!(password.sensitive && password.value.is_none());
        assert!(password.synonyms.iter().all(|s| s.1.is_none()));

        let topic = describe_topic(&cfg, &image, &BTreeMap::new());
        let ratio = topic
            .iter()
            .find(|e| e.name == "min.cleanable.dirty.ratio")
            .expect("listed");
        assert_eq!(ratio.config_type, 6, "DOUBLE");
        let retention = topic
            .iter()
            .find(|e| e.name == "retention.ms")
            .expect("listed");
        assert_eq!(retention.value.as_deref(), Some("2000"));
        assert_eq!(retention.source, SOURCE_DYNAMIC_DEFAULT_BROKER);
        let flush = topic.iter().find(|e| e.name == "flush.ms").expect("listed");
        assert!(
            flush.synonyms.is_empty(),
            "Kafka lists no synonym for an unset flush.ms"
        );
    }
}
