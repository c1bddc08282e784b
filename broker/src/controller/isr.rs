//! AlterPartition decisions: a partition leader asks to shrink or expand its ISR.

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::change::{advance, in_replica_order};
use super::reassignment::try_complete;
use crate::error::{ApiError, ApiResult};
use crate::metadata::{MetadataImage, MetadataRecord, PartitionImage};

/// Decides one partition's AlterPartition. The request must come from the current
/// leader, at the current leader epoch, built on the current partition epoch; otherwise
/// the leader is acting on stale state and must wait for the metadata to reach it. The new
/// ISR must hold the leader and only replicas (INVALID_REQUEST, as Kafka), and every
/// replica it adds must be live: a fenced or shutting-down broker may not join
/// (INELIGIBLE_REPLICA). If the change lets a reassignment finish, it finishes in the same
/// record. Returns the records and the partition's resulting state, which the leader
/// adopts (an unchanged ISR writes nothing and returns the current state).
pub fn alter_isr(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: Vec<i32>,
) -> ApiResult<(Vec<MetadataRecord>, PartitionImage)> {
    let Some((topic, p)) = image
        .topic_by_id(&topic_id)
        .and_then(|t| t.partitions.get(&partition).map(|p| (t, p)))
    else {
        return Err(ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("partition {partition} of topic id {topic_id} does not exist"),
        ));
    };
    let name = format!("{}-{partition}", topic.name);
    if leader != p.leader {
        return Err(ApiError::new(
            ResponseError::NotLeaderOrFollower,
            format!(
                "broker {leader} is not the leader of {name}; {} is",
                p.leader
            ),
        ));
    }
    if leader_epoch != p.leader_epoch {
        return Err(ApiError::new(
            ResponseError::FencedLeaderEpoch,
            format!(
                "leader epoch {leader_epoch} for {name} is not the current {}",
                p.leader_epoch
            ),
        ));
    }
    if partition_epoch != p.partition_epoch {
        return Err(ApiError::new(
            ResponseError::InvalidUpdateVersion,
            format!(
                "partition epoch {partition_epoch} for {name} is not the current {}; \
                 the request was built on an older state",
                p.partition_epoch
            ),
        ));
    }
    check_isr(image, p, &new_isr, &name)?;
    let isr = in_replica_order(&p.replicas, &new_isr);
    if isr == in_replica_order(&p.replicas, &p.isr) {
        return Ok((Vec::new(), p.clone()));
    }
    let changed = PartitionImage { isr, ..p.clone() };
    let next = try_complete(image, &changed).unwrap_or(changed);
    match advance(p, next) {
        Some(next) => Ok((vec![next.to_record(topic.topic_id)], next)),
        None => Ok((Vec::new(), p.clone())),
    }
}

fn check_isr(
    image: &MetadataImage,
    p: &PartitionImage,
    new_isr: &[i32],
    name: &str,
) -> ApiResult<()> {
    let invalid = |why: String| Err(ApiError::new(ResponseError::InvalidRequest, why));
    if new_isr.is_empty() {
        return invalid(format!("the new ISR for {name} is empty"));
    }
    if let Some(dup) = new_isr
        .iter()
        .enumerate()
        .find(|(i, b)| new_isr[..*i].contains(b))
    {
        return invalid(format!(
            "the new ISR for {name} names broker {} twice",
            dup.1
        ));
    }
    if !new_isr.contains(&p.leader) {
        return invalid(format!(
            "the new ISR {new_isr:?} for {name} leaves out its leader {}",
            p.leader
        ));
    }
    if let Some(b) = new_isr.iter().find(|b| !p.replicas.contains(b)) {
        return invalid(format!(
            "the new ISR for {name} names broker {b}, which is not a replica ({:?})",
            p.replicas
        ));
    }
    if let Some(b) = new_isr
        .iter()
        .find(|b| !p.isr.contains(b) && !image.is_live(**b))
    {
        return Err(ApiError::new(
            ResponseError::IneligibleReplica,
            format!("broker {b} cannot join the ISR of {name}: it is fenced, shutting down or not registered"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::reassignment::alter_reassignment;
    use crate::controller::testkit::{apply, cluster, part, register, with_partition};

    fn setup() -> (MetadataImage, Uuid) {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1, 2], 1);
        let id = image.topic("t").unwrap().topic_id;
        (image, id)
    }

    #[test]
    fn the_leader_expands_and_shrinks_its_isr() {
        let (image, id) = setup();
        let (records, state) = alter_isr(&image, id, 0, 1, 5, 10, vec![3, 1, 2]).unwrap();
        assert_eq!(state.isr, vec![1, 2, 3]);
        assert_eq!((state.leader_epoch, state.partition_epoch), (5, 11));
        let image = apply(&image, &records);
        assert_eq!(part(&image, "t", 0), &state);
        let (records, state) = alter_isr(&image, id, 0, 1, 5, 11, vec![1]).unwrap();
        assert_eq!((state.isr.clone(), state.partition_epoch), (vec![1], 12));
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn an_unchanged_isr_writes_nothing() {
        let (image, id) = setup();
        let (records, state) = alter_isr(&image, id, 0, 1, 5, 10, vec![2, 1]).unwrap();
        assert!(records.is_empty());
        assert_eq!(&state, part(&image, "t", 0));
    }

    #[test]
    fn stale_requests_are_refused() {
        let (image, id) = setup();
        let cases = [
            (
                Uuid::new_v4(),
                0,
                1,
                5,
                10,
                ResponseError::UnknownTopicOrPartition,
            ),
            (id, 7, 1, 5, 10, ResponseError::UnknownTopicOrPartition),
            (id, 0, 2, 5, 10, ResponseError::NotLeaderOrFollower),
            (id, 0, 1, 4, 10, ResponseError::FencedLeaderEpoch),
            (id, 0, 1, 6, 10, ResponseError::FencedLeaderEpoch),
            (id, 0, 1, 5, 9, ResponseError::InvalidUpdateVersion),
        ];
        for (topic, partition, leader, le, pe, expected) in cases {
            let e = alter_isr(&image, topic, partition, leader, le, pe, vec![1]).unwrap_err();
            assert_eq!(e.error, expected, "{e}");
        }
    }

    #[test]
    fn the_new_isr_must_be_valid_and_its_new_members_live() {
        let (mut image, id) = setup();
        image.apply(&MetadataRecord::FenceBroker { id: 3 });
        for bad in [vec![], vec![2], vec![1, 4], vec![1, 1]] {
            let e = alter_isr(&image, id, 0, 1, 5, 10, bad.clone()).unwrap_err();
            assert_eq!(e.error, ResponseError::InvalidRequest, "{bad:?}");
        }
        let e = alter_isr(&image, id, 0, 1, 5, 10, vec![1, 2, 3]).unwrap_err();
        assert_eq!(e.error, ResponseError::IneligibleReplica);
        image.apply(&MetadataRecord::UnfenceBroker { id: 3 });
        image.apply(&MetadataRecord::BrokerShuttingDown { id: 3 });
        let e = alter_isr(&image, id, 0, 1, 5, 10, vec![1, 2, 3]).unwrap_err();
        assert_eq!(e.error, ResponseError::IneligibleReplica);
        // Members already in the ISR may stay even when fenced: only the leader knows
        // whether they keep up, and shrinking is always allowed.
        image.apply(&MetadataRecord::FenceBroker { id: 2 });
        assert!(alter_isr(&image, id, 0, 1, 5, 10, vec![1, 2]).is_ok());
    }

    #[test]
    fn an_expansion_that_catches_up_completes_the_reassignment() {
        let mut image = cluster(&[1, 2, 3, 4]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        let id = image.topic("t").unwrap().topic_id;
        let image = apply(
            &image,
            &alter_reassignment(&image, "t", 0, Some(vec![3, 2]), false).unwrap(),
        );
        let p = part(&image, "t", 0).clone();
        assert_eq!(p.replicas, vec![3, 2, 1]);
        let (records, state) = alter_isr(
            &image,
            id,
            0,
            1,
            p.leader_epoch,
            p.partition_epoch,
            vec![1, 2, 3],
        )
        .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (state.replicas.clone(), state.isr.clone()),
            (vec![3, 2], vec![3, 2])
        );
        assert_eq!((state.leader, state.leader_epoch), (3, p.leader_epoch + 1));
        assert!(!state.is_reassigning());
        let image = apply(&image, &records);
        assert_eq!(part(&image, "t", 0), &state);
    }

    #[test]
    fn a_waiting_removal_completes_once_a_remaining_replica_is_in_sync() {
        let mut image = cluster(&[1, 2]);
        register(&mut image, 3, None);
        with_partition(&mut image, "t", 0, &[1, 2], &[1], 1);
        let id = image.topic("t").unwrap().topic_id;
        let image = apply(
            &image,
            &alter_reassignment(&image, "t", 0, Some(vec![2]), false).unwrap(),
        );
        let p = part(&image, "t", 0).clone();
        assert!(p.is_reassigning());
        let (_, state) = alter_isr(
            &image,
            id,
            0,
            1,
            p.leader_epoch,
            p.partition_epoch,
            vec![1, 2],
        )
        .unwrap();
        assert_eq!(
            (state.replicas.clone(), state.isr.clone(), state.leader),
            (vec![2], vec![2], 2)
        );
    }
}
