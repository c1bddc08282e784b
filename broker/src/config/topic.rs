//! Per-topic configuration: every key Kafka 4.4 accepts on a topic, the broker property
//! each one defaults from, how a value is validated, and the typed `LogConfig` the log uses.
//!
//! Topic overrides are kept as strings (as Kafka stores them in metadata) and turned into a
//! `LogConfig` by layering them over the broker defaults, so a changed broker default
//! reaches every topic that did not override it.

use crate::log::recompress::TopicCompression;
use std::collections::BTreeMap;

/// How a config value is checked, and the type DescribeConfigs reports for it.
#[derive(Debug, Clone, Copy)]
pub enum ValueKind {
    /// A signed 64-bit integer with a lower bound.
    Long {
        min: i64,
    },
    /// A signed 32-bit integer with a lower bound.
    Int {
        min: i32,
    },
    /// A number in `min..=max`.
    Double {
        min: f64,
        max: f64,
    },
    Bool,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of words from a fixed set.
    ListOf(&'static [&'static str]),
    /// A comma-separated list checked by the key's own check.
    List,
    /// Free text.
    Text,
}

impl ValueKind {
    /// The `config_type` DescribeConfigs reports (Kafka's ConfigType numbering).
    pub fn describe_type(self) -> i8 {
        match self {
            ValueKind::Bool => 1,
            ValueKind::OneOf(_) | ValueKind::Text => 2,
            ValueKind::Int { .. } => 3,
            ValueKind::Long { .. } => 5,
            ValueKind::Double { .. } => 6,
            ValueKind::ListOf(_) | ValueKind::List => 7,
        }
    }

    /// Kafka's name of the type, as its validation messages spell it.
    fn type_name(self) -> &'static str {
        match self {
            ValueKind::Bool => "BOOLEAN",
            ValueKind::OneOf(_) | ValueKind::Text => "STRING",
            ValueKind::Int { .. } => "INT",
            ValueKind::Long { .. } => "LONG",
            ValueKind::Double { .. } => "DOUBLE",
            ValueKind::ListOf(_) | ValueKind::List => "LIST",
        }
    }
}

/// Where a topic key's default comes from on the broker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BrokerSynonym {
    /// No broker property: the default is Kafka's built-in one.
    None,
    /// This broker property, always listed among the synonyms.
    Listed(&'static str),
    /// This broker property, listed only when set: Kafka's own default for it is null
    /// (`log.flush.interval.ms`, `log.roll.ms`), so Kafka shows no synonym until it is.
    WhenSet(&'static str),
}

impl BrokerSynonym {
    pub fn key(self) -> Option<&'static str> {
        match self {
            BrokerSynonym::None => None,
            BrokerSynonym::Listed(k) | BrokerSynonym::WhenSet(k) => Some(k),
        }
    }
}

/// One topic-level key.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker property that supplies the default.
    pub broker: BrokerSynonym,
    /// Kafka's built-in default, used when no broker property supplies one.
    pub default: &'static str,
    pub kind: ValueKind,
    /// Whether the value is sensitive (none are yet; kept for DescribeConfigs).
    pub sensitive: bool,
    /// A check that replaces the one `kind` implies, for values no `ValueKind` describes;
    /// `kind` then only says how DescribeConfigs reports the type.
    pub check: Option<CustomCheck>,
    /// Accepted, stored and described as Kafka does, but without effect in Strom (the
    /// feature behind it is off or absent; broker/README.md lists these).
    pub inert: bool,
}

/// A value check for a key whose `ValueKind` cannot express it.
pub type CustomCheck = fn(&str) -> Result<(), String>;

impl TopicConfigDef {
    /// Checks a value for this key; the error says what was expected, as Kafka words it.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        match self.check {
            Some(check) => check(value),
            None => validate_value(self.kind, value),
        }
    }
}

const fn def(
    name: &'static str,
    broker: BrokerSynonym,
    default: &'static str,
    kind: ValueKind,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker,
        default,
        kind,
        sensitive: false,
        check: None,
        inert: false,
    }
}

const fn inert(def: TopicConfigDef) -> TopicConfigDef {
    TopicConfigDef { inert: true, ..def }
}

const fn checked(def: TopicConfigDef, check: CustomCheck) -> TopicConfigDef {
    TopicConfigDef {
        check: Some(check),
        ..def
    }
}

use BrokerSynonym::{Listed, None as NoSynonym, WhenSet};

/// A whole number in `min..=max`, or `-1` when `allow_minus_one`.
fn int_in(value: &str, min: i32, max: i32, allow_minus_one: bool) -> Result<(), String> {
    match value.trim().parse::<i32>() {
        Ok(-1) if allow_minus_one => Ok(()),
        Ok(v) if (min..=max).contains(&v) => Ok(()),
        Ok(_) => Err(format!("Value must be in the range [{min}, {max}]")),
        Err(_) => Err("Not a number of type INT".to_string()),
    }
}

fn gzip_level(value: &str) -> Result<(), String> {
    int_in(value, 1, 9, true)
}

fn lz4_level(value: &str) -> Result<(), String> {
    int_in(value, 1, 17, false)
}

fn zstd_level(value: &str) -> Result<(), String> {
    int_in(value, -131_072, 22, false)
}

/// `*`, empty, or `partition:broker` pairs, as the replication throttle lists take.
fn throttled_replicas(value: &str) -> Result<(), String> {
    if crate::replication::throttle::ThrottledReplicas::parse(value).is_some() {
        Ok(())
    } else {
        Err(
            "must be the literal '*' or a list of replicas in the following format: \
             [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                .to_string(),
        )
    }
}

/// Kafka's throttled-replica lists name themselves in their error.
fn leader_throttled_replicas(value: &str) -> Result<(), String> {
    throttled_replicas(value).map_err(|why| format!("leader.replication.throttled.replicas {why}"))
}

fn follower_throttled_replicas(value: &str) -> Result<(), String> {
    throttled_replicas(value)
        .map_err(|why| format!("follower.replication.throttled.replicas {why}"))
}

/// Every topic key Kafka 4.4 lists for a topic, in its order. Values set through
/// CreateTopics or AlterConfigs are checked against this table; anything else is
/// INVALID_CONFIG.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        Listed("log.cleanup.policy"),
        "delete",
        ValueKind::ListOf(&["delete", "compact"]),
    ),
    checked(
        inert(def(
            "compression.gzip.level",
            Listed("compression.gzip.level"),
            "-1",
            ValueKind::Int { min: -1 },
        )),
        gzip_level,
    ),
    checked(
        inert(def(
            "compression.lz4.level",
            Listed("compression.lz4.level"),
            "9",
            ValueKind::Int { min: 1 },
        )),
        lz4_level,
    ),
    // A codec here makes the leader rewrite batches sent in another one (log::recompress).
    def(
        "compression.type",
        Listed("compression.type"),
        "producer",
        ValueKind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    checked(
        inert(def(
            "compression.zstd.level",
            Listed("compression.zstd.level"),
            "3",
            ValueKind::Int { min: -131_072 },
        )),
        zstd_level,
    ),
    def(
        "delete.retention.ms",
        Listed("log.cleaner.delete.retention.ms"),
        "86400000",
        ValueKind::Long { min: 0 },
    ),
    inert(def(
        "errors.deadletterqueue.group.enable",
        NoSynonym,
        "false",
        ValueKind::Bool,
    )),
    inert(def(
        "file.delete.delay.ms",
        Listed("log.segment.delete.delay.ms"),
        "60000",
        ValueKind::Long { min: 0 },
    )),
    def(
        "flush.messages",
        Listed("log.flush.interval.messages"),
        "9223372036854775807",
        ValueKind::Long { min: 1 },
    ),
    def(
        "flush.ms",
        WhenSet("log.flush.interval.ms"),
        "9223372036854775807",
        ValueKind::Long { min: 0 },
    ),
    checked(
        def(
            "follower.replication.throttled.replicas",
            NoSynonym,
            "",
            ValueKind::List,
        ),
        follower_throttled_replicas,
    ),
    def(
        "index.interval.bytes",
        Listed("log.index.interval.bytes"),
        "4096",
        ValueKind::Int { min: 0 },
    ),
    checked(
        def(
            "leader.replication.throttled.replicas",
            NoSynonym,
            "",
            ValueKind::List,
        ),
        leader_throttled_replicas,
    ),
    inert(def(
        "local.retention.bytes",
        Listed("log.local.retention.bytes"),
        "-2",
        ValueKind::Long { min: -2 },
    )),
    inert(def(
        "local.retention.ms",
        Listed("log.local.retention.ms"),
        "-2",
        ValueKind::Long { min: -2 },
    )),
    inert(def(
        "max.compaction.lag.ms",
        Listed("log.cleaner.max.compaction.lag.ms"),
        "9223372036854775807",
        ValueKind::Long { min: 1 },
    )),
    inert(def(
        "max.decompressed.message.bytes",
        Listed("max.decompressed.message.bytes"),
        "2147483639",
        ValueKind::Int { min: 0 },
    )),
    def(
        "max.message.bytes",
        Listed("message.max.bytes"),
        "1048588",
        ValueKind::Int { min: 0 },
    ),
    def(
        "message.timestamp.after.max.ms",
        Listed("log.message.timestamp.after.max.ms"),
        "3600000",
        ValueKind::Long { min: 0 },
    ),
    def(
        "message.timestamp.before.max.ms",
        Listed("log.message.timestamp.before.max.ms"),
        "9223372036854775807",
        ValueKind::Long { min: 0 },
    ),
    def(
        "message.timestamp.type",
        Listed("log.message.timestamp.type"),
        "CreateTime",
        ValueKind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    def(
        "min.cleanable.dirty.ratio",
        Listed("log.cleaner.min.cleanable.ratio"),
        "0.5",
        ValueKind::Double { min: 0.0, max: 1.0 },
    ),
    def(
        "min.compaction.lag.ms",
        Listed("log.cleaner.min.compaction.lag.ms"),
        "0",
        ValueKind::Long { min: 0 },
    ),
    def(
        "min.insync.replicas",
        Listed("min.insync.replicas"),
        "1",
        ValueKind::Int { min: 1 },
    ),
    inert(def(
        "preallocate",
        Listed("log.preallocate"),
        "false",
        ValueKind::Bool,
    )),
    inert(def(
        "remote.copy.lag.bytes",
        Listed("log.remote.copy.lag.bytes"),
        "-1",
        ValueKind::Long { min: -1 },
    )),
    inert(def(
        "remote.copy.lag.ms",
        Listed("log.remote.copy.lag.ms"),
        "0",
        ValueKind::Long { min: 0 },
    )),
    inert(def(
        "remote.log.copy.disable",
        NoSynonym,
        "false",
        ValueKind::Bool,
    )),
    inert(def(
        "remote.log.delete.on.disable",
        NoSynonym,
        "false",
        ValueKind::Bool,
    )),
    inert(def(
        "remote.storage.enable",
        NoSynonym,
        "false",
        ValueKind::Bool,
    )),
    def(
        "retention.bytes",
        Listed("log.retention.bytes"),
        "-1",
        ValueKind::Long { min: -1 },
    ),
    def(
        "retention.ms",
        WhenSet("log.retention.ms"),
        "604800000",
        ValueKind::Long { min: -1 },
    ),
    def(
        "segment.bytes",
        Listed("log.segment.bytes"),
        "1073741824",
        ValueKind::Int { min: 14 },
    ),
    inert(def(
        "segment.index.bytes",
        Listed("log.index.size.max.bytes"),
        "10485760",
        ValueKind::Int { min: 4 },
    )),
    inert(def(
        "segment.jitter.ms",
        WhenSet("log.roll.jitter.ms"),
        "0",
        ValueKind::Long { min: 0 },
    )),
    def(
        "segment.ms",
        WhenSet("log.roll.ms"),
        "604800000",
        ValueKind::Long { min: 1 },
    ),
    def(
        "unclean.leader.election.enable",
        Listed("unclean.leader.election.enable"),
        "false",
        ValueKind::Bool,
    ),
];

pub fn find_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The topic key a broker property supplies the default of, if any.
pub fn def_for_broker_key(broker_key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker.key() == Some(broker_key))
}

/// Checks one value against its kind; the error is the reason Kafka gives.
pub fn validate_value(kind: ValueKind, value: &str) -> Result<(), String> {
    let not_a = || format!("Not a number of type {}", kind.type_name());
    match kind {
        ValueKind::Long { min } => match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            Ok(_) => Err(format!("Value must be at least {min}")),
            Err(_) => Err(not_a()),
        },
        ValueKind::Int { min } => match value.trim().parse::<i32>() {
            Ok(v) if v >= min => Ok(()),
            Ok(_) => Err(format!("Value must be at least {min}")),
            Err(_) => Err(not_a()),
        },
        ValueKind::Double { min, max } => match value.trim().parse::<f64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(()),
            Ok(v) if v < min => Err(format!("Value must be at least {min}")),
            Ok(_) => Err(format!("Value must be no more than {max}")),
            Err(_) => Err(not_a()),
        },
        ValueKind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err("Expected value to be either true or false".to_string()),
        },
        ValueKind::OneOf(words) => {
            if words.contains(&value.trim()) {
                Ok(())
            } else {
                Err(format!("String must be one of: {}", words.join(", ")))
            }
        }
        ValueKind::ListOf(words) => {
            for item in value.split(',') {
                if !words.contains(&item.trim()) {
                    return Err(format!(
                        "Invalid value {} for configuration: String must be one of: {}",
                        item.trim(),
                        words.join(", ")
                    ));
                }
            }
            Ok(())
        }
        ValueKind::List | ValueKind::Text => Ok(()),
    }
}

/// Checks a topic key and value; the error is the message for INVALID_CONFIG, worded as
/// Kafka words it.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let def = find_def(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    def.validate(value).map_err(|why| {
        // Kafka names the parsed value: a DOUBLE given as `2` shows as `2.0`, a LIST as
        // `[a, b]`.
        let shown = match (def.kind, value.trim().parse::<f64>()) {
            (ValueKind::Double { .. }, Ok(v)) => format!("{v:?}"),
            (ValueKind::List | ValueKind::ListOf(_), _) => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                format!("[{}]", items.join(", "))
            }
            _ => value.to_string(),
        };
        format!("Invalid value {shown} for configuration {name}: {why}")
    })
}

/// The settings one partition log runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// -1: keep forever.
    pub retention_ms: i64,
    /// -1: no size limit.
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub index_interval_bytes: u64,
    pub min_insync_replicas: i32,
    pub log_append_time: bool,
    pub compact: bool,
    pub delete: bool,
    /// How long a tombstone outlives the cleaning that could drop it (see `log::cleaner`).
    pub delete_retention_ms: i64,
    /// Records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// The share of the log that must be uncleaned before the cleaner rewrites it.
    pub min_cleanable_dirty_ratio: f64,
    /// `compression.type`: the codec batches are stored in, or the producer's.
    pub compression: TopicCompression,
    /// How far a CreateTime record's timestamp may lie before / after the broker's clock.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
}

impl LogConfig {
    /// Layers topic overrides over the broker's effective topic defaults. Both maps hold
    /// values that were validated when they were set, so a parse failure here can only
    /// come from a default, which `BrokerConfig` also validated.
    pub fn resolve(
        defaults: &BTreeMap<&'static str, String>,
        overrides: &BTreeMap<String, String>,
    ) -> LogConfig {
        let get = |name: &str| -> &str {
            overrides
                .get(name)
                .or_else(|| defaults.get(name))
                .map(String::as_str)
                .unwrap_or("")
        };
        let long = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
        let policy = get("cleanup.policy");
        LogConfig {
            segment_bytes: long("segment.bytes", 1 << 30).max(14) as u64,
            segment_ms: long("segment.ms", 7 * 24 * 3_600_000),
            retention_ms: long("retention.ms", 7 * 24 * 3_600_000),
            retention_bytes: long("retention.bytes", -1),
            max_message_bytes: long("max.message.bytes", 1_048_588).max(0) as usize,
            flush_messages: long("flush.messages", i64::MAX),
            flush_ms: long("flush.ms", i64::MAX),
            index_interval_bytes: long("index.interval.bytes", 4096).max(0) as u64,
            min_insync_replicas: long("min.insync.replicas", 1) as i32,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            delete: policy.is_empty() || policy.split(',').any(|p| p.trim() == "delete"),
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
                .trim()
                .parse::<f64>()
                .unwrap_or(0.5),
            compression: TopicCompression::parse(get("compression.type")),
            timestamp_before_max_ms: long("message.timestamp.before.max.ms", i64::MAX).max(0),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms", 3_600_000).max(0),
        }
    }
}

impl LogConfig {
    /// For tests and tools: the same config with another segment size.
    pub fn with_segment_bytes(mut self, bytes: u64) -> LogConfig {
        self.segment_bytes = bytes;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_values_by_kind() {
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("segment.bytes", "abc").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("no.such.key", "1").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "0.25").is_ok());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "half").is_err());
        assert!(validate_topic_config("delete.retention.ms", "-1").is_err());
        let err = validate_topic_config("leader.replication.throttled.replicas", "0:1,x")
            .expect_err("not a replica");
        assert!(
            err.starts_with("Invalid value [0:1, x] for configuration"),
            "{err}"
        );
        let err = validate_topic_config("min.cleanable.dirty.ratio", "2").expect_err("above 1");
        assert!(
            err.ends_with(
                "2.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"
            ),
            "{err}"
        );
    }

    #[test]
    fn overrides_win_over_defaults() {
        let mut defaults = BTreeMap::new();
        defaults.insert("segment.bytes", "1000".to_string());
        defaults.insert("retention.ms", "5".to_string());
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "9".to_string());
        let cfg = LogConfig::resolve(&defaults, &overrides);
        assert_eq!(cfg.segment_bytes, 1000);
        assert_eq!(cfg.retention_ms, 9);
        assert!(cfg.delete && !cfg.compact);
    }
}
