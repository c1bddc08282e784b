//! Topic decisions: create and delete topics, add partitions, change topic configs, and
//! hand out producer id blocks.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::capacity::check_broker_capacity;
use super::placement::{place, BrokerInfo};
use crate::config::topic::validate_topic_config;
use crate::error::{ApiError, ApiResult};
use crate::metadata::{ConfigResource, MetadataImage, MetadataRecord, PartitionImage};

/// Kafka's limit on topic name length (a partition directory name must fit in 255 bytes).
const MAX_TOPIC_NAME_LEN: usize = 249;
/// The most partitions one topic may have. Each partition holds open files and a
/// directory; a request for millions (a typo, or a hostile client) must be refused before
/// it is written to the metadata, not discovered when the disk or the fd table runs out.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// Producer ids are handed out in blocks, so one metadata commit serves many producers.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// A topic to create, as CreateTopics (or auto-creation) asks for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's num.partitions.
    pub num_partitions: i32,
    /// -1: the broker's default.replication.factor.
    pub replication_factor: i16,
    /// Explicit replica assignment per partition, if given.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: Vec<(String, Option<String>)>,
}

/// The broker defaults the controller needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Defaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
}

fn invalid(error: ResponseError, message: impl Into<String>) -> ApiError {
    ApiError::new(error, message)
}

/// Topics the brokers keep for themselves: clients may read them but not write or delete.
pub fn is_internal_topic(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

/// Kafka's topic name rules: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> ApiResult<()> {
    let err = |why: String| Err(invalid(ResponseError::InvalidTopicException, why));
    if name.is_empty() {
        return err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return err(format!(
            "topic name is {} characters, the limit is {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return err(format!(
            "topic name '{name}' contains '{c}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// Kafka refuses a topic whose name differs from an existing one only in '.' versus '_',
/// since both map to the same metric names.
fn collides(image: &MetadataImage, name: &str) -> Option<String> {
    let norm = |s: &str| s.replace('.', "_");
    let wanted = norm(name);
    image
        .topics
        .keys()
        .find(|existing| existing.as_str() != name && norm(existing) == wanted)
        .cloned()
}

/// Checks an explicit assignment. Its brokers must be registered (a fenced one is allowed,
/// as in Kafka: it joins the ISR once it is back) or live.
fn check_assignment(
    image: &MetadataImage,
    assignments: &BTreeMap<i32, Vec<i32>>,
    first_partition: i32,
    brokers: &[BrokerInfo],
) -> ApiResult<()> {
    let bad = |why: String| Err(invalid(ResponseError::InvalidReplicaAssignment, why));
    if first_partition as usize + assignments.len() > MAX_PARTITIONS_PER_TOPIC as usize {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!("a topic may have at most {MAX_PARTITIONS_PER_TOPIC} partitions"),
        ));
    }
    let mut rf = None;
    for (expected, (p, replicas)) in (first_partition..).zip(assignments.iter()) {
        if *p != expected {
            return bad(format!(
                "partition {p} is assigned but {expected} was expected next"
            ));
        }
        if replicas.is_empty() {
            return bad(format!("partition {p} has no replicas"));
        }
        if rf.is_some_and(|r| r != replicas.len()) {
            return bad("partitions have different replica counts".into());
        }
        rf = Some(replicas.len());
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return bad(format!("partition {p} lists a broker twice"));
        }
        if let Some(b) = replicas
            .iter()
            .find(|b| image.broker(**b).is_none() && !brokers.iter().any(|l| l.id == **b))
        {
            return bad(format!(
                "partition {p} names broker {b}, which is not registered"
            ));
        }
    }
    Ok(())
}

/// New partitions start with the live replicas in sync and the first of them leading:
/// there is no data yet, so nobody can be behind. A partition whose replicas are all down
/// (possible only with an explicit assignment) is refused, as Kafka does.
fn partition_records(
    topic_id: Uuid,
    placement: &BTreeMap<i32, Vec<i32>>,
    brokers: &[BrokerInfo],
) -> ApiResult<Vec<MetadataRecord>> {
    placement
        .iter()
        .map(|(p, replicas)| {
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|r| brokers.iter().any(|b| b.id == *r && !b.fenced))
                .collect();
            let Some(&leader) = isr.first() else {
                return Err(invalid(
                    ResponseError::InvalidReplicaAssignment,
                    format!("all brokers assigned to partition {p} ({replicas:?}) are fenced or shutting down"),
                ));
            };
            Ok(PartitionImage {
                partition: *p,
                replicas: replicas.clone(),
                isr,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
                adding: vec![],
                removing: vec![],
            }
            .to_record(topic_id))
        })
        .collect()
}

fn check_configs(configs: &[(String, Option<String>)]) -> ApiResult<()> {
    for (key, value) in configs {
        match value {
            Some(v) => validate_topic_config(key, v)
                .map_err(|why| invalid(ResponseError::InvalidConfig, why))?,
            None => {
                if crate::config::topic::find_def(key).is_none() {
                    return Err(invalid(
                        ResponseError::InvalidConfig,
                        format!("unknown topic config '{key}'"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Decides a topic creation. `brokers` are those placement may use, fenced ones marked
/// (see `placeable_broker_infos`); a new partition's ISR is its live replicas.
pub fn create_topic(
    image: &MetadataImage,
    defaults: &Defaults,
    brokers: &[BrokerInfo],
    topic: &NewTopic,
) -> ApiResult<Vec<MetadataRecord>> {
    validate_topic_name(&topic.name)?;
    if image.topic(&topic.name).is_some() {
        return Err(invalid(
            ResponseError::TopicAlreadyExists,
            format!("topic '{}' already exists", topic.name),
        ));
    }
    if let Some(other) = collides(image, &topic.name) {
        return Err(invalid(
            ResponseError::InvalidTopicException,
            format!("topic '{}' collides with existing topic '{other}' ('.' and '_' are interchangeable in metric names)", topic.name),
        ));
    }
    check_configs(&topic.configs)?;
    let placement = if topic.assignments.is_empty() {
        let partitions = if topic.num_partitions == -1 {
            defaults.num_partitions
        } else {
            topic.num_partitions
        };
        let rf = if topic.replication_factor == -1 {
            defaults.replication_factor
        } else {
            topic.replication_factor
        };
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(invalid(
                ResponseError::InvalidPartitions,
                format!("number of partitions must be 1 to {MAX_PARTITIONS_PER_TOPIC}, got {partitions}"),
            ));
        }
        if rf < 1 {
            return Err(invalid(
                ResponseError::InvalidReplicationFactor,
                format!("replication factor must be at least 1, got {rf}"),
            ));
        }
        place(&topic.name, 0, partitions, rf, brokers)?
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(invalid(
                ResponseError::InvalidRequest,
                "give either a replica assignment or partitions and replication factor, not both",
            ));
        }
        check_assignment(image, &topic.assignments, 0, brokers)?;
        topic.assignments.clone()
    };
    let topic_id = Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic {
        name: topic.name.clone(),
        topic_id,
    }];
    for (key, value) in &topic.configs {
        if let Some(value) = value {
            records.push(MetadataRecord::Config {
                resource: ConfigResource::Topic(topic.name.clone()),
                key: key.clone(),
                value: Some(value.clone()),
            });
        }
    }
    records.extend(partition_records(topic_id, &placement, brokers)?);
    Ok(records)
}

/// What a batched creation decided for one topic: `Ok(true)` created, `Ok(false)` it
/// already existed, or why it was refused.
pub type TopicOutcome = (String, ApiResult<bool>);

/// Decides creating several topics in one commit, as auto-creation submits them (Kafka's
/// AutoTopicCreationManager sends one CreateTopics for many topics). Each topic is decided
/// on the image as the ones before it in the batch leave it, so a name given twice or two
/// names that collide ('.' versus '_') are caught within the batch too. A topic that
/// exists is skipped; one that is refused does not stop the others.
pub fn create_topics_if_absent(
    image: &MetadataImage,
    defaults: &Defaults,
    brokers: &[BrokerInfo],
    topics: &[NewTopic],
    max_broker_partitions: usize,
) -> (Vec<MetadataRecord>, Vec<TopicOutcome>) {
    let mut scratch = image.clone();
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(topics.len());
    for topic in topics {
        if scratch.topic(&topic.name).is_some() {
            outcomes.push((topic.name.clone(), Ok(false)));
            continue;
        }
        let decided = create_topic(&scratch, defaults, brokers, topic).and_then(|created| {
            check_broker_capacity(&scratch, &created, max_broker_partitions).map(|()| created)
        });
        match decided {
            Ok(created) => {
                for r in &created {
                    scratch.apply(r);
                }
                records.extend(created);
                outcomes.push((topic.name.clone(), Ok(true)));
            }
            Err(e) => outcomes.push((topic.name.clone(), Err(e))),
        }
    }
    (records, outcomes)
}

/// The named topic, or UNKNOWN_TOPIC_OR_PARTITION.
pub fn existing_topic<'a>(
    image: &'a MetadataImage,
    name: &str,
) -> ApiResult<&'a std::sync::Arc<crate::metadata::TopicImage>> {
    image.topic(name).ok_or_else(|| {
        invalid(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })
}

/// Decides a topic deletion.
pub fn delete_topic(
    image: &MetadataImage,
    name: &str,
    enabled: bool,
) -> ApiResult<Vec<MetadataRecord>> {
    if !enabled {
        return Err(invalid(
            ResponseError::TopicDeletionDisabled,
            "topic deletion is disabled (delete.topic.enable=false)",
        ));
    }
    let topic = existing_topic(image, name)?;
    if is_internal_topic(name) {
        return Err(invalid(
            ResponseError::InvalidTopicException,
            format!("internal topic {name} cannot be deleted"),
        ));
    }
    Ok(vec![MetadataRecord::RemoveTopic {
        topic_id: topic.topic_id,
    }])
}

/// Decides a partition increase to `count` partitions in all.
pub fn create_partitions(
    image: &MetadataImage,
    brokers: &[BrokerInfo],
    name: &str,
    count: i32,
    assignments: &[Vec<i32>],
) -> ApiResult<Vec<MetadataRecord>> {
    let topic = existing_topic(image, name)?;
    let current = topic.partitions.len() as i32;
    if count > MAX_PARTITIONS_PER_TOPIC {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!(
                "a topic may have at most {MAX_PARTITIONS_PER_TOPIC} partitions, {count} asked for"
            ),
        ));
    }
    if count <= current {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!("topic '{name}' has {current} partitions; the new count {count} must be larger (partitions cannot be removed)"),
        ));
    }
    // The replication factor a reassignment is heading for, not its temporary union.
    let rf = topic
        .partitions
        .values()
        .next()
        .map(|p| p.replicas.len().saturating_sub(p.removing.len()).max(1))
        .unwrap_or(1) as i16;
    let placement = if assignments.is_empty() {
        place(name, current, count - current, rf, brokers)?
    } else {
        if assignments.len() as i32 != count - current {
            return Err(invalid(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "{} assignments given for {} new partitions",
                    assignments.len(),
                    count - current
                ),
            ));
        }
        let map: BTreeMap<i32, Vec<i32>> = assignments
            .iter()
            .enumerate()
            .map(|(i, r)| (current + i as i32, r.clone()))
            .collect();
        check_assignment(image, &map, current, brokers)?;
        map
    };
    partition_records(topic.topic_id, &placement, brokers)
}

/// Decides a topic config change. With `replace_all` (legacy AlterConfigs) every override
/// not named is removed; otherwise only the named keys change.
pub fn alter_topic_configs(
    image: &MetadataImage,
    name: &str,
    changes: &[(String, Option<String>)],
    replace_all: bool,
) -> ApiResult<Vec<MetadataRecord>> {
    existing_topic(image, name)?;
    check_configs(changes)?;
    let resource = ConfigResource::Topic(name.to_string());
    Ok(image.config_change_records(&resource, changes, replace_all))
}

/// Reserves the next block of producer ids; returns the records and the block's first id.
pub fn allocate_producer_ids(image: &MetadataImage) -> (Vec<MetadataRecord>, i64) {
    let start = image.next_producer_id_block;
    (
        vec![MetadataRecord::ProducerIds {
            next_block_start: start + PRODUCER_ID_BLOCK,
        }],
        start,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> Vec<BrokerInfo> {
        vec![BrokerInfo {
            id: 0,
            rack: None,
            fenced: false,
        }]
    }

    fn defaults() -> Defaults {
        Defaults {
            num_partitions: 1,
            replication_factor: 1,
        }
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r);
        }
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        for bad in ["", ".", "..", "a b", "ä", "x/y"] {
            let e = validate_topic_name(bad).unwrap_err();
            assert_eq!(e.error, ResponseError::InvalidTopicException, "{bad}");
        }
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn creates_with_defaults_and_refuses_duplicates_and_collisions() {
        let mut image = MetadataImage::default();
        let t = NewTopic {
            name: "a.b".into(),
            num_partitions: 3,
            replication_factor: -1,
            ..Default::default()
        };
        let records = create_topic(&image, &defaults(), &one(), &t).unwrap();
        apply(&mut image, &records);
        assert_eq!(image.topic("a.b").unwrap().partitions.len(), 3);
        let again = create_topic(&image, &defaults(), &one(), &t).unwrap_err();
        assert_eq!(again.error, ResponseError::TopicAlreadyExists);
        let clash = NewTopic {
            name: "a_b".into(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        };
        let e = create_topic(&image, &defaults(), &one(), &clash).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidTopicException);
    }

    #[test]
    fn impossible_replication_and_bad_configs_are_refused() {
        let image = MetadataImage::default();
        let t = NewTopic {
            name: "x".into(),
            num_partitions: 1,
            replication_factor: 3,
            ..Default::default()
        };
        let e = create_topic(&image, &defaults(), &one(), &t).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
        let t = NewTopic {
            name: "x".into(),
            num_partitions: -1,
            replication_factor: -1,
            configs: vec![("retention.ms".into(), Some("soon".into()))],
            ..Default::default()
        };
        let e = create_topic(&image, &defaults(), &one(), &t).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidConfig);
    }

    #[test]
    fn a_batch_creates_what_it_can_and_skips_what_exists() {
        let mut image = MetadataImage::default();
        let named = |name: &str| NewTopic {
            name: name.into(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        };
        let records = create_topic(&image, &defaults(), &one(), &named("old")).unwrap();
        apply(&mut image, &records);
        let batch = [
            named("old"),
            named("a.b"),
            named("a_b"),
            named("a.b"),
            NewTopic {
                num_partitions: 0,
                ..named("zero")
            },
            named("fine"),
        ];
        let (records, outcomes) =
            create_topics_if_absent(&image, &defaults(), &one(), &batch, usize::MAX);
        let codes: Vec<(&str, Result<bool, ResponseError>)> = outcomes
            .iter()
            .map(|(n, r)| (n.as_str(), r.clone().map_err(|e| e.error)))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("old", Ok(false)),
                ("a.b", Ok(true)),
                ("a_b", Err(ResponseError::InvalidTopicException)),
                ("a.b", Ok(false)),
                ("zero", Err(ResponseError::InvalidPartitions)),
                ("fine", Ok(true)),
            ]
        );
        apply(&mut image, &records);
        assert!(image.topic("a.b").is_some() && image.topic("fine").is_some());
        assert!(image.topic("a_b").is_none() && image.topic("zero").is_none());
        assert_eq!(image.topics.len(), 3);
    }

    #[test]
    fn partitions_only_grow() {
        let mut image = MetadataImage::default();
        let t = NewTopic {
            name: "x".into(),
            num_partitions: 2,
            replication_factor: 1,
            ..Default::default()
        };
        let records = create_topic(&image, &defaults(), &one(), &t).unwrap();
        apply(&mut image, &records);
        let e = create_partitions(&image, &one(), "x", 2, &[]).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidPartitions);
        let e = create_partitions(&image, &one(), "x", 4_000_000, &[]).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidPartitions);
        let huge = NewTopic {
            name: "huge".into(),
            num_partitions: 3_997_698,
            replication_factor: 1,
            ..Default::default()
        };
        let e = create_topic(&image, &defaults(), &one(), &huge).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidPartitions);
        let records = create_partitions(&image, &one(), "x", 4, &[]).unwrap();
        apply(&mut image, &records);
        assert_eq!(image.topic("x").unwrap().partitions.len(), 4);
    }

    #[test]
    fn requests_travel_to_the_active_controller_as_json() {
        let t = NewTopic {
            name: "x".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: BTreeMap::from([(0, vec![1, 2]), (1, vec![2, 1])]),
            configs: vec![("retention.ms".into(), None)],
        };
        let json = serde_json::to_string(&(t.clone(), defaults())).unwrap();
        let back: (NewTopic, Defaults) = serde_json::from_str(&json).unwrap();
        assert_eq!(back, (t, defaults()));
    }

    #[test]
    fn explicit_assignments_need_registered_brokers_and_a_live_replica() {
        let mut image = crate::controller::testkit::cluster(&[1, 2]);
        crate::controller::testkit::register(&mut image, 3, None); // fenced
        let live = crate::controller::live_broker_infos(&image);
        let spec = |assignment: Vec<i32>| NewTopic {
            name: "x".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: BTreeMap::from([(0, assignment)]),
            ..Default::default()
        };
        let e = create_topic(&image, &defaults(), &live, &spec(vec![1, 9])).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicaAssignment);
        let e = create_topic(&image, &defaults(), &live, &spec(vec![3])).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicaAssignment);
        let records = create_topic(&image, &defaults(), &live, &spec(vec![3, 2, 1])).unwrap();
        apply(&mut image, &records);
        let p = &image.topic("x").unwrap().partitions[&0];
        assert_eq!(
            (p.leader, p.isr.clone()),
            (2, vec![2, 1]),
            "fenced 3 joins later"
        );
    }

    #[test]
    fn a_fenced_broker_holds_followers_outside_the_isr_when_the_live_ones_are_too_few() {
        let mut image = crate::controller::testkit::cluster(&[1, 2]);
        crate::controller::testkit::register(&mut image, 3, None); // fenced
        let brokers = crate::controller::placeable_broker_infos(&image);
        let t = NewTopic {
            name: "offsets".into(),
            num_partitions: 4,
            replication_factor: 3,
            ..Default::default()
        };
        let records = create_topic(&image, &defaults(), &brokers, &t).unwrap();
        apply(&mut image, &records);
        for p in image.topic("offsets").unwrap().partitions.values() {
            assert_eq!(p.replicas.len(), 3);
            assert!(p.replicas.contains(&3), "{:?}", p.replicas);
            assert_eq!(p.isr.len(), 2, "{:?}", p.isr);
            assert!(!p.isr.contains(&3) && p.leader != 3, "{p:?}");
        }
        // Only the live brokers: RF 3 is more than they can hold.
        let live = crate::controller::live_broker_infos(&image);
        let t = NewTopic {
            name: "other".into(),
            ..t
        };
        let e = create_topic(&image, &defaults(), &live, &t).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
    }

    #[test]
    fn placement_uses_the_live_brokers() {
        let image = crate::controller::testkit::cluster(&[1, 2, 3]);
        let live = crate::controller::live_broker_infos(&image);
        let t = NewTopic {
            name: "x".into(),
            num_partitions: 6,
            replication_factor: 3,
            ..Default::default()
        };
        let mut image = image;
        let records = create_topic(&image, &defaults(), &live, &t).unwrap();
        apply(&mut image, &records);
        let topic = image.topic("x").unwrap();
        for p in topic.partitions.values() {
            assert_eq!(p.isr, p.replicas);
            assert_eq!(p.leader, p.replicas[0]);
            assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        }
        let leaders: std::collections::BTreeSet<i32> =
            topic.partitions.values().map(|p| p.leader).collect();
        assert_eq!(leaders.len(), 3);
        let records = create_partitions(&image, &live, "x", 9, &[]).unwrap();
        apply(&mut image, &records);
        let topic = image.topic("x").unwrap();
        assert!(topic.partitions.values().all(|p| p.replicas.len() == 3));
    }

    #[test]
    fn legacy_alter_replaces_all_overrides() {
        let mut image = MetadataImage::default();
        let t = NewTopic {
            name: "x".into(),
            num_partitions: 1,
            replication_factor: 1,
            configs: vec![("retention.ms".into(), Some("100".into()))],
            ..Default::default()
        };
        let records = create_topic(&image, &defaults(), &one(), &t).unwrap();
        apply(&mut image, &records);
        let records = alter_topic_configs(
            &image,
            "x",
            &[("segment.bytes".into(), Some("2000".into()))],
            true,
        )
        .unwrap();
        apply(&mut image, &records);
        let cfg = &image.topic("x").unwrap().configs;
        assert_eq!(cfg.get("segment.bytes").map(String::as_str), Some("2000"));
        assert!(!cfg.contains_key("retention.ms"));
    }
}
