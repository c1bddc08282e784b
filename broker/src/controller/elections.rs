//! Leader election decisions: preferred and unclean elections asked for by ElectLeaders,
//! the periodic preferred-leader rebalance, and unclean recovery of offline partitions.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use super::change::{advance, first_eligible};
use crate::error::{ApiError, ApiResult};
use crate::metadata::{MetadataImage, MetadataRecord, PartitionImage, TopicImage, NO_LEADER};

/// ElectLeaders' election type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionKind {
    /// Move leadership back to the first replica, if it is live and in sync.
    Preferred,
    /// Bring an offline partition back, from outside the ISR if need be (may lose data).
    Unclean,
}

/// One partition's outcome, keyed by (topic, partition).
pub type ElectionOutcome = ((String, i32), Result<(), ApiError>);

/// Decides ElectLeaders. `targets: None` means every partition; then, as Kafka does, only
/// partitions that changed or failed for another reason than ELECTION_NOT_NEEDED are
/// reported. Partitions named twice are decided once.
pub fn elect_leaders(
    image: &MetadataImage,
    targets: Option<&[(String, i32)]>,
    kind: ElectionKind,
) -> (Vec<MetadataRecord>, Vec<ElectionOutcome>) {
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    let mut decide = |topic: &str, partition: i32, report_not_needed: bool| {
        let result = match image.partition(topic, partition) {
            None => Err(ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("partition {topic}-{partition} does not exist"),
            )),
            Some((t, p)) => elect_one(image, p, kind).map(|next| {
                records.extend(advance(p, next).map(|n| n.to_record(t.topic_id)));
            }),
        };
        let not_needed = matches!(&result, Err(e) if e.error == ResponseError::ElectionNotNeeded);
        if report_not_needed || !not_needed {
            outcomes.push(((topic.to_string(), partition), result));
        }
    };
    match targets {
        Some(targets) => {
            let mut seen = BTreeSet::new();
            for (topic, partition) in targets {
                if seen.insert((topic, *partition)) {
                    decide(topic, *partition, true);
                }
            }
        }
        None => {
            for (t, p) in image.partitions() {
                decide(&t.name, p.partition, false);
            }
        }
    }
    (records, outcomes)
}

/// Kafka's auto.leader.rebalance: a broker whose share of partitions it prefers (is the
/// first replica of) but does not lead is above `imbalance_percentage` gets those
/// leaderships back, wherever it is live and in sync. Partitions being reassigned are
/// left alone, their replica order is about to change.
pub fn auto_rebalance(image: &MetadataImage, imbalance_percentage: i32) -> Vec<MetadataRecord> {
    let mut shares: BTreeMap<i32, PreferredShare> = BTreeMap::new();
    for (t, p) in image.partitions() {
        let Some(&first) = p.replicas.first() else {
            continue;
        };
        let share = shares.entry(first).or_default();
        share.preferred += 1;
        if p.leader != first {
            share.not_leading.push((t, p));
        }
    }
    let threshold = imbalance_percentage.max(0) as usize;
    let mut records = Vec::new();
    for share in shares.values() {
        if share.not_leading.len() * 100 <= threshold * share.preferred {
            continue;
        }
        for (t, p) in &share.not_leading {
            if p.is_reassigning() {
                continue;
            }
            if let Ok(next) = elect_one(image, p, ElectionKind::Preferred) {
                records.extend(advance(p, next).map(|n| n.to_record(t.topic_id)));
            }
        }
    }
    records
}

/// One broker's preferred leaderships: how many partitions list it first, and those of
/// them it does not lead.
#[derive(Default)]
struct PreferredShare<'a> {
    preferred: usize,
    not_leading: Vec<(&'a TopicImage, &'a PartitionImage)>,
}

/// Unclean elections for offline partitions of the topics where `unclean(topic)` allows
/// them (unclean.leader.election.enable): for the controller to run when a broker comes
/// back or the setting is turned on.
pub fn elect_unclean_where_enabled(
    image: &MetadataImage,
    unclean: &dyn Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    image
        .partitions()
        .filter(|(t, p)| p.is_offline() && unclean(&t.name))
        .filter_map(|(t, p)| {
            let next = elect_one(image, p, ElectionKind::Unclean).ok()?;
            advance(p, next).map(|n| n.to_record(t.topic_id))
        })
        .collect()
}

fn elect_one(
    image: &MetadataImage,
    p: &PartitionImage,
    kind: ElectionKind,
) -> ApiResult<PartitionImage> {
    let live = |b: i32| image.is_live(b);
    match kind {
        ElectionKind::Preferred => {
            let preferred = p.replicas.first().copied().unwrap_or(NO_LEADER);
            if p.leader == preferred {
                return Err(ApiError::new(
                    ResponseError::ElectionNotNeeded,
                    format!("broker {preferred} already leads partition {}", p.partition),
                ));
            }
            if preferred == NO_LEADER || !live(preferred) || !p.isr.contains(&preferred) {
                return Err(ApiError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!(
                        "preferred leader {preferred} of partition {} is not live or not in sync (ISR {:?})",
                        p.partition, p.isr
                    ),
                ));
            }
            Ok(PartitionImage {
                leader: preferred,
                ..p.clone()
            })
        }
        ElectionKind::Unclean => {
            if !p.is_offline() {
                return Err(ApiError::new(
                    ResponseError::ElectionNotNeeded,
                    format!("partition {} has a leader ({})", p.partition, p.leader),
                ));
            }
            let clean = first_eligible(&p.replicas, |b| p.isr.contains(&b) && live(b));
            if clean != NO_LEADER {
                return Ok(PartitionImage {
                    leader: clean,
                    ..p.clone()
                });
            }
            let any = first_eligible(&p.replicas, live);
            if any == NO_LEADER {
                return Err(ApiError::new(
                    ResponseError::EligibleLeadersNotAvailable,
                    format!(
                        "no replica of partition {} ({:?}) is live",
                        p.partition, p.replicas
                    ),
                ));
            }
            Ok(PartitionImage {
                leader: any,
                isr: vec![any],
                ..p.clone()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testkit::{apply, cluster, part, with_partition};

    fn code(outcome: &ElectionOutcome) -> Option<ResponseError> {
        outcome.1.as_ref().err().map(|e| e.error)
    }

    fn target(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    #[test]
    fn preferred_election_follows_kafka() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 2); // electable
        with_partition(&mut image, "t", 1, &[1, 2], &[1, 2], 1); // already
        with_partition(&mut image, "t", 2, &[1, 2], &[2], 2); // 1 out of sync
        with_partition(&mut image, "t", 3, &[4, 2], &[4, 2], 2); // 4 not registered
        let targets: Vec<_> = (0..5)
            .map(|p| target("t", p))
            .chain([target("t", 0)])
            .collect();
        let (records, outcomes) = elect_leaders(&image, Some(&targets), ElectionKind::Preferred);
        let codes: Vec<_> = outcomes.iter().map(code).collect();
        assert_eq!(
            codes,
            vec![
                None,
                Some(ResponseError::ElectionNotNeeded),
                Some(ResponseError::PreferredLeaderNotAvailable),
                Some(ResponseError::PreferredLeaderNotAvailable),
                Some(ResponseError::UnknownTopicOrPartition),
            ]
        );
        assert_eq!(records.len(), 1);
        let image = apply(&image, &records);
        let p = part(&image, "t", 0);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 6, 11));
    }

    #[test]
    fn electing_everything_reports_only_what_changed_or_failed() {
        let mut image = cluster(&[1, 2]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 2);
        with_partition(&mut image, "t", 1, &[1, 2], &[1, 2], 1);
        with_partition(&mut image, "t", 2, &[1, 2], &[2], 2);
        let (records, outcomes) = elect_leaders(&image, None, ElectionKind::Preferred);
        assert_eq!(records.len(), 1);
        let reported: Vec<_> = outcomes.iter().map(|o| (o.0 .1, code(o))).collect();
        assert_eq!(
            reported,
            vec![
                (0, None),
                (2, Some(ResponseError::PreferredLeaderNotAvailable))
            ]
        );
    }

    #[test]
    fn unclean_election_only_for_offline_partitions() {
        let mut image = cluster(&[1, 2, 3]);
        image.apply(&MetadataRecord::FenceBroker { id: 1 });
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1], NO_LEADER); // unclean: 2
        with_partition(&mut image, "t", 1, &[1, 3], &[1, 3], NO_LEADER); // clean: 3
        with_partition(&mut image, "t", 2, &[2, 3], &[2, 3], 2); // has a leader
        with_partition(&mut image, "t", 3, &[1], &[1], NO_LEADER); // nobody
        let targets: Vec<_> = (0..4).map(|p| target("t", p)).collect();
        let (records, outcomes) = elect_leaders(&image, Some(&targets), ElectionKind::Unclean);
        let codes: Vec<_> = outcomes.iter().map(code).collect();
        assert_eq!(
            codes,
            vec![
                None,
                None,
                Some(ResponseError::ElectionNotNeeded),
                Some(ResponseError::EligibleLeadersNotAvailable),
            ]
        );
        let image = apply(&image, &records);
        let p0 = part(&image, "t", 0);
        assert_eq!(
            (p0.leader, p0.isr.clone(), p0.leader_epoch),
            (2, vec![2], 6)
        );
        let p1 = part(&image, "t", 1);
        assert_eq!((p1.leader, p1.isr.clone()), (3, vec![1, 3]));
    }

    #[test]
    fn unclean_recovery_respects_the_topic_setting() {
        let mut image = cluster(&[1, 2]);
        image.apply(&MetadataRecord::FenceBroker { id: 1 });
        with_partition(&mut image, "dirty", 0, &[1, 2], &[1], NO_LEADER);
        with_partition(&mut image, "clean", 0, &[1, 2], &[1], NO_LEADER);
        let records = elect_unclean_where_enabled(&image, &|t| t == "dirty");
        let image = apply(&image, &records);
        assert_eq!(part(&image, "dirty", 0).leader, 2);
        assert_eq!(part(&image, "clean", 0).leader, NO_LEADER);
    }

    #[test]
    fn rebalance_acts_only_above_the_imbalance_threshold() {
        let mut image = cluster(&[1, 2]);
        // Broker 1 prefers 10 partitions and leads 9 of them: 10% imbalance.
        for p in 0..10 {
            let leader = if p == 0 { 2 } else { 1 };
            with_partition(&mut image, "t", p, &[1, 2], &[1, 2], leader);
        }
        assert!(auto_rebalance(&image, 10).is_empty());
        let records = auto_rebalance(&image, 5);
        assert_eq!(records.len(), 1);
        let image = apply(&image, &records);
        assert_eq!(part(&image, "t", 0).leader, 1);
        // Not in sync: nothing to do even above the threshold.
        let mut image = image;
        with_partition(&mut image, "t", 0, &[1, 2], &[2], 2);
        assert!(auto_rebalance(&image, 0).is_empty());
        // Moving partitions are left alone.
        with_partition(&mut image, "u", 0, &[2, 1], &[2, 1], 1);
        let mut p = part(&image, "u", 0).clone();
        p.adding = vec![2];
        image.apply(&p.to_record(image.topic("u").unwrap().topic_id));
        assert!(auto_rebalance(&image, 0).is_empty());
    }
}
