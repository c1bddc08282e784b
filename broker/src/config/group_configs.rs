//! Group config resources (Kafka's resource type GROUP, `kafka-configs --entity-type
//! groups`): the keys Kafka 4.4 accepts on a group, their broker synonyms and defaults, and
//! how a value is checked. They are kept in the metadata log (`ConfigResource::Group`).
//! Every key belongs to the consumer (KIP-848), share or streams group protocols, which
//! Strom's classic coordinator does not run: they are stored and described as Kafka does,
//! without effect (broker/README.md).

use std::collections::BTreeMap;

use super::dynamic::{Entry, SOURCE_DEFAULT, SOURCE_DYNAMIC_GROUP};
use super::topic::{validate_value, ValueKind};

/// One group key: name, broker synonym, Kafka's default, type, inclusive range for
/// numbers (Kafka's broker-side bounds), allowed words for strings.
struct GroupKey {
    name: &'static str,
    synonym: Option<&'static str>,
    default: &'static str,
    kind: ValueKind,
    range: Option<(i64, i64)>,
}

const fn key(
    name: &'static str,
    synonym: Option<&'static str>,
    default: &'static str,
    kind: ValueKind,
    range: Option<(i64, i64)>,
) -> GroupKey {
    GroupKey {
        name,
        synonym,
        default,
        kind,
        range,
    }
}

const INT: ValueKind = ValueKind::Int { min: i32::MIN };
const BOOL: ValueKind = ValueKind::Bool;
const STRING: ValueKind = ValueKind::Text;

/// Kafka 4.4's group configs, in the order it lists them.
const GROUP_KEYS: &[GroupKey] = &[
    key(
        "consumer.assignment.interval.ms",
        Some("group.consumer.assignment.interval.ms"),
        "1000",
        INT,
        Some((0, i32::MAX as i64)),
    ),
    key(
        "consumer.heartbeat.interval.ms",
        Some("group.consumer.heartbeat.interval.ms"),
        "5000",
        INT,
        Some((5000, 15000)),
    ),
    key(
        "consumer.session.timeout.ms",
        Some("group.consumer.session.timeout.ms"),
        "45000",
        INT,
        Some((45000, 60000)),
    ),
    key(
        "errors.deadletterqueue.copy.record.enable",
        Some("errors.deadletterqueue.copy.record.enable"),
        "false",
        BOOL,
        None,
    ),
    key(
        "errors.deadletterqueue.topic.name",
        Some("errors.deadletterqueue.topic.name"),
        "",
        STRING,
        None,
    ),
    key(
        "share.assignment.interval.ms",
        Some("group.share.assignment.interval.ms"),
        "1000",
        INT,
        Some((0, i32::MAX as i64)),
    ),
    key(
        "share.auto.offset.reset",
        Some("share.auto.offset.reset"),
        "latest",
        STRING,
        None,
    ),
    key(
        "share.delivery.count.limit",
        Some("group.share.delivery.count.limit"),
        "5",
        INT,
        Some((2, 10)),
    ),
    key(
        "share.heartbeat.interval.ms",
        Some("group.share.heartbeat.interval.ms"),
        "5000",
        INT,
        Some((5000, 15000)),
    ),
    key(
        "share.isolation.level",
        Some("share.isolation.level"),
        "read_uncommitted",
        ValueKind::OneOf(&["read_committed", "read_uncommitted"]),
        None,
    ),
    key(
        "share.partition.max.record.locks",
        Some("group.share.partition.max.record.locks"),
        "2000",
        INT,
        Some((100, 10000)),
    ),
    key(
        "share.record.lock.duration.ms",
        Some("group.share.record.lock.duration.ms"),
        "30000",
        INT,
        Some((15000, 60000)),
    ),
    key(
        "share.renew.acknowledge.enable",
        Some("share.renew.acknowledge.enable"),
        "true",
        BOOL,
        None,
    ),
    key(
        "share.session.timeout.ms",
        Some("group.share.session.timeout.ms"),
        "45000",
        INT,
        Some((45000, 60000)),
    ),
    key(
        "streams.assignment.interval.ms",
        Some("group.streams.assignment.interval.ms"),
        "1000",
        INT,
        Some((0, i32::MAX as i64)),
    ),
    key(
        "streams.assignor.name",
        Some("group.streams.assignors"),
        "sticky",
        STRING,
        None,
    ),
    key(
        "streams.heartbeat.interval.ms",
        Some("group.streams.heartbeat.interval.ms"),
        "5000",
        INT,
        Some((5000, 15000)),
    ),
    key(
        "streams.initial.rebalance.delay.ms",
        Some("group.streams.initial.rebalance.delay.ms"),
        "3000",
        INT,
        Some((0, i32::MAX as i64)),
    ),
    key(
        "streams.num.standby.replicas",
        Some("group.streams.num.standby.replicas"),
        "0",
        INT,
        Some((0, 2)),
    ),
    key(
        "streams.rack.aware.assignment.tags",
        Some("group.streams.rack.aware.assignment.tags"),
        "",
        ValueKind::List,
        None,
    ),
    key(
        "streams.session.timeout.ms",
        Some("group.streams.session.timeout.ms"),
        "45000",
        INT,
        Some((45000, 60000)),
    ),
];

fn find(name: &str) -> Option<&'static GroupKey> {
    GROUP_KEYS.iter().find(|k| k.name == name)
}

/// Checks changes to a GROUP resource; the error is the INVALID_CONFIG message Kafka gives.
pub fn check_group_changes(changes: &[(String, Option<String>)]) -> Result<(), String> {
    for (name, value) in changes {
        let key = find(name).ok_or_else(|| format!("Unknown group config name: {name}"))?;
        let Some(value) = value else {
            continue;
        };
        validate_value(key.kind, value)
            .map_err(|why| format!("Invalid value {value} for configuration {name}: {why}"))?;
        if let Some((min, max)) = key.range {
            let n: i64 = value.trim().parse().unwrap_or(min);
            if n < min || n > max {
                return Err(format!(
                    "{name} must be in the range {min} to {max} inclusive."
                ));
            }
        }
    }
    Ok(())
}

/// Whether `name` is a list-valued group key (for APPEND/SUBTRACT), with its default.
pub fn list_default(name: &str) -> Option<&'static str> {
    find(name)
        .filter(|k| matches!(k.kind, ValueKind::List))
        .map(|k| k.default)
}

/// DescribeConfigs for a group: every key, the group's value first, then the default.
pub fn describe_group(overrides: Option<&BTreeMap<String, String>>) -> Vec<Entry> {
    GROUP_KEYS
        .iter()
        .map(|k| {
            let mut synonyms = Vec::new();
            let set = overrides.and_then(|o| o.get(k.name));
            if let Some(v) = set {
                synonyms.push((k.name.to_string(), Some(v.clone()), SOURCE_DYNAMIC_GROUP));
            }
            if let Some(s) = k.synonym {
                synonyms.push((s.to_string(), Some(k.default.to_string()), SOURCE_DEFAULT));
            }
            Entry {
                name: k.name.to_string(),
                value: Some(set.cloned().unwrap_or_else(|| k.default.to_string())),
                source: if set.is_some() {
                    SOURCE_DYNAMIC_GROUP
                } else {
                    SOURCE_DEFAULT
                },
                config_type: k.kind.describe_type(),
                read_only: false,
                sensitive: false,
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(k: &str, v: &str) -> Vec<(String, Option<String>)> {
        vec![(k.to_string(), Some(v.to_string()))]
    }

    #[test]
    fn checks_names_types_and_ranges_as_kafka() {
        assert!(check_group_changes(&change("consumer.session.timeout.ms", "50000")).is_ok());
        assert_eq!(
            check_group_changes(&change("consumer.session.timeout.ms", "5")).unwrap_err(),
            "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."
        );
        assert_eq!(
            check_group_changes(&change("foo", "5")).unwrap_err(),
            "Unknown group config name: foo"
        );
        assert!(check_group_changes(&change("share.isolation.level", "dirty")).is_err());
        assert!(check_group_changes(&[("foo".to_string(), None)]).is_err());
    }

    #[test]
    fn describes_every_key_with_the_group_value_first() {
        let mut set = BTreeMap::new();
        set.insert(
            "consumer.session.timeout.ms".to_string(),
            "50000".to_string(),
        );
        let entries = describe_group(Some(&set));
        assert_eq!(entries.len(), GROUP_KEYS.len());
        let e = entries
            .iter()
            .find(|e| e.name == "consumer.session.timeout.ms")
            .expect("listed");
        assert_eq!(e.value.as_deref(), Some("50000"));
        assert_eq!(e.source, SOURCE_DYNAMIC_GROUP);
        assert_eq!(e.synonyms.len(), 2);
    }
}
