//! Partition reassignment decisions (KIP-455): start, replace, cancel and complete the
//! move of a partition to a new replica set, and list the moves under way.
//!
//! During a move `replicas` holds the target followed by the replicas being dropped;
//! `adding` lists target replicas that were not replicas before and `removing` the old
//! ones leaving. The ISR is left alone: the leader adds the new replicas through
//! AlterPartition as they catch up, and the move completes when all of them are in sync.

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use super::change::{advance, find_partition, first_eligible, in_replica_order};
use crate::error::{ApiError, ApiResult};
use crate::metadata::{MetadataImage, MetadataRecord, PartitionImage, NO_LEADER};

/// A partition move under way, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// Decides an AlterPartitionReassignments entry: `Some(target)` starts (or replaces) a
/// move to `target`, `None` cancels the one under way.
pub fn alter_reassignment(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
) -> ApiResult<Vec<MetadataRecord>> {
    let (t, p) = find_partition(image, topic, partition)?;
    let next = match target {
        Some(target) => start(image, p, target)?,
        None if !p.is_reassigning() => {
            return Err(ApiError::new(
                ResponseError::NoReassignmentInProgress,
                format!("no reassignment of {topic}-{partition} is in progress"),
            ))
        }
        None => revert(image, p)?,
    };
    Ok(advance(p, next)
        .map(|n| n.to_record(t.topic_id))
        .into_iter()
        .collect())
}

/// Completes the move of `topic`-`partition` if every added replica is in sync; no
/// records when it is not (or no move is under way).
pub fn complete_if_caught_up(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
) -> ApiResult<Vec<MetadataRecord>> {
    let (t, p) = find_partition(image, topic, partition)?;
    Ok(try_complete(image, p)
        .and_then(|next| advance(p, next))
        .map(|n| n.to_record(t.topic_id))
        .into_iter()
        .collect())
}

/// The moves under way, all of them or those among `filter`.
pub fn list_reassignments(
    image: &MetadataImage,
    filter: Option<&[(String, i32)]>,
) -> Vec<OngoingReassignment> {
    image
        .partitions()
        .filter(|(t, p)| {
            p.is_reassigning()
                && filter.is_none_or(|f| f.iter().any(|(n, i)| *n == t.name && *i == p.partition))
        })
        .map(|(t, p)| OngoingReassignment {
            topic: t.name.clone(),
            partition: p.partition,
            replicas: p.replicas.clone(),
            adding: p.adding.clone(),
            removing: p.removing.clone(),
        })
        .collect()
}

fn bad_assignment(message: String) -> ApiError {
    ApiError::new(ResponseError::InvalidReplicaAssignment, message)
}

/// The state at the start of a move to `target`. A move already under way is reverted
/// first (Kafka's rule: the original replicas are the current ones minus those being
/// added), so a new target replaces the old one rather than stacking on it.
fn start(image: &MetadataImage, p: &PartitionImage, target: Vec<i32>) -> ApiResult<PartitionImage> {
    if target.is_empty() {
        return Err(bad_assignment("the target replica list is empty".into()));
    }
    if let Some(dup) = target
        .iter()
        .enumerate()
        .find(|(i, b)| target[..*i].contains(b))
    {
        return Err(bad_assignment(format!(
            "the target replica list {target:?} names broker {} twice",
            dup.1
        )));
    }
    if let Some(b) = target.iter().find(|b| image.broker(**b).is_none()) {
        return Err(bad_assignment(format!(
            "the target replica list {target:?} names broker {b}, which is not registered"
        )));
    }
    let base = if p.is_reassigning() {
        revert(image, p)?
    } else {
        p.clone()
    };
    let leaving: Vec<i32> = base
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let next = PartitionImage {
        replicas: target.iter().chain(&leaving).copied().collect(),
        adding: target
            .iter()
            .copied()
            .filter(|r| !base.replicas.contains(r))
            .collect(),
        removing: leaving,
        ..base
    };
    if next.adding.is_empty() {
        // Nothing to copy: finish now, unless the completion cannot pick an in-sync leader
        // yet (see `try_complete`), in which case the move waits like any other.
        return Ok(try_complete(image, &next).unwrap_or(next));
    }
    Ok(next)
}

/// Back to the replicas from before the move. The ISR keeps only original replicas; the
/// leader stays if it is one of them, else the first live one of them in the ISR takes
/// over (none live: offline until one is unfenced). When no original replica is in sync
/// the revert is refused, as Kafka does without unclean election: it would lose data.
/// (Replacing the move with a target that includes an in-sync replica still works.)
fn revert(image: &MetadataImage, p: &PartitionImage) -> ApiResult<PartitionImage> {
    let original: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.adding.contains(r))
        .collect();
    let isr = in_replica_order(&original, &p.isr);
    if isr.is_empty() {
        return Err(bad_assignment(format!(
            "cannot revert the move of partition {}: none of its original replicas {original:?} is \
             in sync (ISR {:?}), so it would need an unclean leader election",
            p.partition, p.isr
        )));
    }
    let leader = if isr.contains(&p.leader) {
        p.leader
    } else {
        first_eligible(&isr, |b| image.is_live(b))
    };
    Ok(PartitionImage {
        replicas: original,
        isr,
        leader,
        adding: vec![],
        removing: vec![],
        ..p.clone()
    })
}

/// The finished move, if it may finish: every added replica is in sync and at least one
/// target replica is in sync and can lead. The ISR keeps only target replicas; a leader
/// being removed hands over to the first in-sync target replica that is live. `None`
/// means it keeps waiting: a pure removal whose remaining replicas are all out of sync
/// would otherwise leave the partition without an in-sync replica, so it waits for one
/// of them to catch up.
pub(crate) fn try_complete(image: &MetadataImage, p: &PartitionImage) -> Option<PartitionImage> {
    if !p.is_reassigning() || !p.adding.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let target: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect();
    let isr = in_replica_order(&target, &p.isr);
    let leader = if p.leader != NO_LEADER && isr.contains(&p.leader) {
        p.leader
    } else {
        first_eligible(&target, |b| isr.contains(&b) && image.is_live(b))
    };
    if leader == NO_LEADER {
        return None;
    }
    Some(PartitionImage {
        replicas: target,
        isr,
        leader,
        adding: vec![],
        removing: vec![],
        ..p.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testkit::{apply, cluster, part, register, with_partition};

    fn reassign(image: &MetadataImage, target: Option<Vec<i32>>) -> ApiResult<MetadataImage> {
        Ok(apply(image, &alter_reassignment(image, "t", 0, target)?))
    }

    #[test]
    fn a_move_adds_then_completes_when_the_new_replicas_are_in_sync() {
        let mut image = cluster(&[1, 2, 3, 4]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        let image = reassign(&image, Some(vec![3, 4])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.replicas, vec![3, 4, 1, 2]);
        assert_eq!(
            (p.adding.clone(), p.removing.clone()),
            (vec![3, 4], vec![1, 2])
        );
        assert_eq!(
            (p.isr.clone(), p.leader, p.partition_epoch),
            (vec![1, 2], 1, 11)
        );
        assert_eq!(list_reassignments(&image, None).len(), 1);
        assert!(complete_if_caught_up(&image, "t", 0).unwrap().is_empty());
        // 3 caught up, 4 not yet: still moving.
        let mut image = image;
        let mut p = part(&image, "t", 0).clone();
        p.isr = vec![3, 1, 2];
        image.apply(&p.to_record(image.topic("t").unwrap().topic_id));
        assert!(complete_if_caught_up(&image, "t", 0).unwrap().is_empty());
        p.isr = vec![3, 4, 1, 2];
        image.apply(&p.to_record(image.topic("t").unwrap().topic_id));
        let image = apply(&image, &complete_if_caught_up(&image, "t", 0).unwrap());
        let done = part(&image, "t", 0);
        assert_eq!(
            (done.replicas.clone(), done.isr.clone()),
            (vec![3, 4], vec![3, 4])
        );
        assert_eq!((done.leader, done.leader_epoch), (3, p.leader_epoch + 1));
        assert!(!done.is_reassigning());
        assert!(list_reassignments(&image, None).is_empty());
    }

    #[test]
    fn a_pure_removal_or_reorder_completes_at_once() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1, 2, 3], 1);
        let image = reassign(&image, Some(vec![3, 2])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![3, 2], vec![3, 2], 3)
        );
        assert_eq!((p.leader_epoch, p.partition_epoch), (6, 11));
        assert!(!p.is_reassigning());
        // Same set, new order: only the preferred leader changes; the leader stays.
        let image = reassign(&image, Some(vec![2, 3])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!((p.replicas.clone(), p.leader), (vec![2, 3], 3));
    }

    #[test]
    fn a_removal_waits_when_the_remaining_replicas_are_out_of_sync() {
        let mut image = cluster(&[1, 2]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1], 1);
        let image = reassign(&image, Some(vec![2])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!((p.removing.clone(), p.leader), (vec![1], 1));
        assert!(p.is_reassigning());
    }

    #[test]
    fn cancel_reverts_to_the_original_replicas() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        let e = reassign(&image, None).unwrap_err();
        assert_eq!(e.error, ResponseError::NoReassignmentInProgress);
        let moving = reassign(&image, Some(vec![3, 2])).unwrap();
        // 3 caught up and 1 was lost meanwhile; 2 took over.
        let mut moving = moving;
        let mut p = part(&moving, "t", 0).clone();
        p.isr = vec![3, 2];
        p.leader = 2;
        moving.apply(&p.to_record(moving.topic("t").unwrap().topic_id));
        let image = reassign(&moving, None).unwrap();
        let p = part(&image, "t", 0);
        // The original order is not kept anywhere (as in Kafka): the kept replicas come
        // in their order within the target.
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![2, 1], vec![2], 2)
        );
        assert!(!p.is_reassigning());
    }

    #[test]
    fn cancel_elects_from_the_original_isr_when_the_leader_was_new() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        let mut image = reassign(&image, Some(vec![3, 1])).unwrap();
        let mut p = part(&image, "t", 0).clone();
        p.isr = vec![3, 2];
        p.leader = 3;
        image.apply(&p.to_record(image.topic("t").unwrap().topic_id));
        let image = reassign(&image, None).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![1, 2], vec![2], 2)
        );
        // Nothing original in sync: refused rather than losing data.
        let mut image = reassign(&image, Some(vec![3])).unwrap();
        let mut p = part(&image, "t", 0).clone();
        p.isr = vec![3];
        p.leader = 3;
        image.apply(&p.to_record(image.topic("t").unwrap().topic_id));
        let e = reassign(&image, None).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicaAssignment);
    }

    #[test]
    fn a_new_target_replaces_the_move_under_way() {
        let mut image = cluster(&[1, 2, 3, 4]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        let image = reassign(&image, Some(vec![3])).unwrap();
        let image = reassign(&image, Some(vec![4, 1])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.replicas, vec![4, 1, 2]);
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![2]));
        assert_eq!(p.isr, vec![1, 2]);
        // Back to exactly the original: nothing left to move.
        let image = reassign(&image, Some(vec![1, 2])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.replicas.clone(), p.is_reassigning()),
            (vec![1, 2], false)
        );
    }

    #[test]
    fn invalid_targets_are_refused() {
        let mut image = cluster(&[1, 2]);
        register(&mut image, 5, None);
        with_partition(&mut image, "t", 0, &[1], &[1], 1);
        for target in [vec![], vec![1, 1], vec![1, 9]] {
            let e = reassign(&image, Some(target.clone())).unwrap_err();
            assert_eq!(
                e.error,
                ResponseError::InvalidReplicaAssignment,
                "{target:?}"
            );
        }
        // Registered but fenced is fine: it catches up once it is back.
        assert!(reassign(&image, Some(vec![5])).is_ok());
        let e = alter_reassignment(&image, "t", 3, None).unwrap_err();
        assert_eq!(e.error, ResponseError::UnknownTopicOrPartition);
    }

    #[test]
    fn listing_filters_by_partition() {
        let mut image = cluster(&[1, 2]);
        with_partition(&mut image, "t", 0, &[1], &[1], 1);
        with_partition(&mut image, "t", 1, &[1], &[1], 1);
        let image = reassign(&image, Some(vec![2])).unwrap();
        let listed = list_reassignments(&image, Some(&[("t".into(), 0), ("t".into(), 1)]));
        assert_eq!(
            listed,
            vec![OngoingReassignment {
                topic: "t".into(),
                partition: 0,
                replicas: vec![2, 1],
                adding: vec![2],
                removing: vec![1],
            }]
        );
        assert!(list_reassignments(&image, Some(&[("t".into(), 1)])).is_empty());
    }
}
