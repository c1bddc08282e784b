//! Per-topic configuration: the keys Kafka accepts on a topic, the broker property each
//! one defaults from, how a value is validated, and the typed `LogConfig` the log uses.
//!
//! Topic overrides are kept as strings (as Kafka stores them in metadata) and turned into a
//! `LogConfig` by layering them over the broker defaults, so a changed broker default
//! reaches every topic that did not override it.

use std::collections::BTreeMap;

/// How a config value is checked.
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
    Bool,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of words from a fixed set.
    ListOf(&'static [&'static str]),
}

/// One topic-level key.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker property that supplies the default.
    pub broker_key: &'static str,
    pub kind: ValueKind,
    /// Whether the value is sensitive (none are yet; kept for DescribeConfigs).
    pub sensitive: bool,
    /// A check that replaces the one `kind` implies, for values no `ValueKind` describes
    /// (a fraction); `kind` then only says how DescribeConfigs reports the type.
    pub check: Option<CustomCheck>,
}

/// A value check for a key whose `ValueKind` cannot express it.
pub type CustomCheck = fn(&str) -> Result<(), String>;

impl TopicConfigDef {
    /// Checks a value for this key; the error says what was expected.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        match self.check {
            Some(check) => check(value),
            None => validate_value(self.kind, value),
        }
    }
}

const fn def(name: &'static str, broker_key: &'static str, kind: ValueKind) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_key,
        kind,
        sensitive: false,
        check: None,
    }
}

/// A number between 0 and 1 inclusive, as `min.cleanable.dirty.ratio` takes.
fn validate_fraction(value: &str) -> Result<(), String> {
    match value.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
        Ok(v) => Err(format!("{v} is outside 0.0..=1.0")),
        Err(_) => Err(format!("'{value}' is not a number")),
    }
}

/// Every topic key Strom understands. Values set through CreateTopics or AlterConfigs
/// are checked against this table; anything else is INVALID_CONFIG.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        "log.cleanup.policy",
        ValueKind::ListOf(&["delete", "compact"]),
    ),
    def(
        "compression.type",
        "compression.type",
        // Strom stores batches exactly as producers sent them; recompressing on the broker
        // would put a codec on the hot path, so only `producer` is accepted.
        ValueKind::OneOf(&["producer"]),
    ),
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        ValueKind::Long { min: 0 },
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        ValueKind::Long { min: 1 },
    ),
    def(
        "flush.ms",
        "log.flush.interval.ms",
        ValueKind::Long { min: 0 },
    ),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        ValueKind::Int { min: 0 },
    ),
    def(
        "max.message.bytes",
        "message.max.bytes",
        ValueKind::Int { min: 0 },
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        ValueKind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    TopicConfigDef {
        // Described as a string: DescribeConfigs has a DOUBLE type, but `ValueKind` has no
        // fractional kind yet.
        check: Some(validate_fraction),
        ..def(
            "min.cleanable.dirty.ratio",
            "log.cleaner.min.cleanable.ratio",
            ValueKind::OneOf(&[]),
        )
    },
    def(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        ValueKind::Long { min: 0 },
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        ValueKind::Int { min: 1 },
    ),
    def(
        "retention.bytes",
        "log.retention.bytes",
        ValueKind::Long { min: -1 },
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        ValueKind::Long { min: -1 },
    ),
    def(
        "segment.bytes",
        "log.segment.bytes",
        ValueKind::Int { min: 14 },
    ),
    def("segment.ms", "log.roll.ms", ValueKind::Long { min: 1 }),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        ValueKind::Bool,
    ),
];

pub fn find_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one value against its kind; the error says what was expected.
pub fn validate_value(kind: ValueKind, value: &str) -> Result<(), String> {
    match kind {
        ValueKind::Long { min } => match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            Ok(v) => Err(format!("{v} is below the minimum {min}")),
            Err(_) => Err(format!("'{value}' is not a whole number")),
        },
        ValueKind::Int { min } => match value.trim().parse::<i32>() {
            Ok(v) if v >= min => Ok(()),
            Ok(v) => Err(format!("{v} is below the minimum {min}")),
            Err(_) => Err(format!("'{value}' is not a 32-bit whole number")),
        },
        ValueKind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err(format!("'{value}' is not true or false")),
        },
        ValueKind::OneOf(words) => {
            if words.contains(&value.trim()) {
                Ok(())
            } else {
                Err(format!("'{value}' is not one of {}", words.join(", ")))
            }
        }
        ValueKind::ListOf(words) => {
            for item in value.split(',') {
                if !words.contains(&item.trim()) {
                    return Err(format!("'{item}' is not one of {}", words.join(", ")));
                }
            }
            Ok(())
        }
    }
}

/// Checks a topic key and value; the error is the message for INVALID_CONFIG.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let def = find_def(name).ok_or_else(|| format!("unknown topic config '{name}'"))?;
    def.validate(value)
        .map_err(|why| format!("invalid value for '{name}': {why}"))
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
