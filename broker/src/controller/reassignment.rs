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
/// move to `target`, `None` cancels the one under way. `unclean` says whether the topic
/// allows unclean leader elections (`unclean.leader.election.enable`), which a cancel
/// needs when none of the original replicas is in sync any more.
pub fn alter_reassignment(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    unclean: bool,
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
        None => revert(image, p, unclean)?,
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

/// The state at the start of a move to `target`, as Kafka's controller builds it
/// (`changePartitionReassignment`): the replicas listed during the move are the target
/// followed by the current replicas leaving, the adding and removing lists are in broker
/// id order, and the ISR is left alone. A move already under way counts its current
/// replica list (target and leaving ones) as the base, so a replica it was adding that
/// the new target drops is removed like any other; when the new target adds nothing,
/// the target replicas the old move was still adding stay `adding` (so a cancel still
/// drops them). The move finishes at once when nothing has to catch up.
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
    let removing = sorted_difference(&p.replicas, &target);
    let mut adding = sorted_difference(&target, &p.replicas);
    if adding.is_empty() {
        adding = p
            .adding
            .iter()
            .copied()
            .filter(|r| target.contains(r))
            .collect();
    }
    let next = PartitionImage {
        replicas: target.iter().chain(&removing).copied().collect(),
        adding,
        removing,
        ..p.clone()
    };
    Ok(try_complete(image, &next).unwrap_or(next))
}

/// The members of `a` that are not in `b`, in broker id order (Kafka's controller keeps
/// the adding and removing replicas as sorted sets).
fn sorted_difference(a: &[i32], b: &[i32]) -> Vec<i32> {
    let mut out: Vec<i32> = a.iter().copied().filter(|r| !b.contains(r)).collect();
    out.sort_unstable();
    out
}

/// Back to the replicas from before the move. The ISR keeps only original replicas; the
/// leader stays if it is one of them, else the first live one of them in the ISR takes
/// over (none live: offline until one is unfenced).
///
/// When no original replica is in sync the revert needs an unclean election, as in
/// Kafka's controller (`PartitionReassignmentRevert`): refused unless `unclean`, else the
/// first original replica becomes the ISR and the first live original replica leads
/// (what it holds is now the truth; the rest is lost). (Replacing the move with a target
/// that includes an in-sync replica works either way.)
fn revert(image: &MetadataImage, p: &PartitionImage, unclean: bool) -> ApiResult<PartitionImage> {
    let original: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.adding.contains(r))
        .collect();
    let mut isr = in_replica_order(&original, &p.isr);
    if isr.is_empty() {
        if !unclean || original.is_empty() {
            return Err(bad_assignment(format!(
                "cannot revert the move of partition {}: none of its original replicas \
                 {original:?} is in sync (ISR {:?}), so it would need an unclean leader \
                 election, which the topic does not allow",
                p.partition, p.isr
            )));
        }
        isr = vec![original[0]];
    }
    let mut leader = if isr.contains(&p.leader) {
        p.leader
    } else {
        first_eligible(&isr, |b| image.is_live(b))
    };
    if leader == NO_LEADER && unclean {
        // No in-sync original replica is live: any live original replica, alone in sync.
        leader = first_eligible(&original, |b| image.is_live(b));
        if leader != NO_LEADER {
            isr = vec![leader];
        }
    }
    Ok(PartitionImage {
        replicas: original,
        isr,
        leader,
        adding: vec![],
        removing: vec![],
        ..p.clone()
    })
}

/// The finished move, if it may finish: as in Kafka's controller every target replica
/// (added or kept) is in sync, and one of them is live to lead. The ISR keeps only target
/// replicas; a leader being removed hands over to the first in-sync target replica that
/// is live. `None` means it keeps waiting: finishing with a target replica out of sync
/// would leave the partition under-replicated by the move itself (and a removal whose
/// remaining replicas are all out of sync without an in-sync replica at all).
pub(crate) fn try_complete(image: &MetadataImage, p: &PartitionImage) -> Option<PartitionImage> {
    if !p.is_reassigning() {
        return None;
    }
    let target: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
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
        Ok(apply(
            image,
            &alter_reassignment(image, "t", 0, target, false)?,
        ))
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
        // As in Kafka, the base is the current replica list: 3, which the old move was
        // adding, now leaves with 2.
        let image = reassign(&image, Some(vec![4, 1])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.replicas, vec![4, 1, 2, 3]);
        assert_eq!(
            (p.adding.clone(), p.removing.clone()),
            (vec![4], vec![2, 3])
        );
        assert_eq!(p.isr, vec![1, 2]);
        // Back to exactly the original: the replicas there are in sync, so it is done.
        let image = reassign(&image, Some(vec![1, 2])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.is_reassigning()),
            (vec![1, 2], vec![1, 2], false)
        );
    }

    #[test]
    fn a_replica_still_copying_stays_adding_when_the_new_target_adds_nothing() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        let image = reassign(&image, Some(vec![3, 1])).unwrap();
        // Keep 2 after all: nothing new to add, 3 is still copying.
        let image = reassign(&image, Some(vec![3, 1, 2])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.replicas, vec![3, 1, 2]);
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![3], vec![]));
        // So a cancel still drops it.
        let image = reassign(&image, None).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.replicas.clone(), p.is_reassigning()),
            (vec![1, 2], false)
        );
    }

    #[test]
    fn adding_and_removing_are_listed_in_broker_id_order() {
        let mut image = cluster(&[1, 2, 3, 4]);
        with_partition(&mut image, "t", 0, &[2, 1], &[2, 1], 2);
        let image = reassign(&image, Some(vec![4, 3])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.replicas, vec![4, 3, 1, 2]);
        assert_eq!(
            (p.adding.clone(), p.removing.clone()),
            (vec![3, 4], vec![1, 2])
        );
    }

    #[test]
    fn a_move_waits_for_every_target_replica_not_only_the_added_ones() {
        let mut image = cluster(&[1, 2, 3]);
        // 2 has fallen out of sync; the move keeps it.
        with_partition(&mut image, "t", 0, &[1, 2], &[1], 1);
        let image = reassign(&image, Some(vec![3, 2])).unwrap();
        let id = image.topic("t").unwrap().topic_id;
        let mut p = part(&image, "t", 0).clone();
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![3], vec![1]));
        let mut image = image;
        p.isr = vec![3, 1];
        image.apply(&p.to_record(id));
        assert!(
            complete_if_caught_up(&image, "t", 0).unwrap().is_empty(),
            "2 is not in sync yet"
        );
        p.isr = vec![3, 1, 2];
        image.apply(&p.to_record(id));
        let image = apply(&image, &complete_if_caught_up(&image, "t", 0).unwrap());
        let done = part(&image, "t", 0);
        assert_eq!(
            (done.replicas.clone(), done.isr.clone(), done.leader),
            (vec![3, 2], vec![3, 2], 3)
        );
        // A pure removal likewise waits for the replicas it keeps.
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1, 2], 1);
        let image = reassign(&image, Some(vec![2, 3])).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(
            (p.replicas.clone(), p.removing.clone()),
            (vec![2, 3, 1], vec![1])
        );
    }

    #[test]
    fn a_cancel_that_needs_an_unclean_election_runs_where_the_topic_allows_it() {
        let mut image = cluster(&[2, 3]);
        register(&mut image, 1, None); // fenced
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        let mut image = reassign(&image, Some(vec![3])).unwrap();
        let id = image.topic("t").unwrap().topic_id;
        let mut p = part(&image, "t", 0).clone();
        p.isr = vec![3];
        p.leader = 3;
        image.apply(&p.to_record(id));
        let e = alter_reassignment(&image, "t", 0, None, false).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicaAssignment);
        assert!(e.message.contains("unclean"), "{}", e.message);
        let image = apply(
            &image,
            &alter_reassignment(&image, "t", 0, None, true).unwrap(),
        );
        let p = part(&image, "t", 0);
        // Kafka puts the first original replica in the ISR; it is fenced, so the unclean
        // election takes the first live original replica instead.
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![1, 2], vec![2], 2)
        );
        assert!(!p.is_reassigning());
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
        let e = alter_reassignment(&image, "t", 3, None, false).unwrap_err();
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
