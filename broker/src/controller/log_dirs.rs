//! KIP-112 on the controller: a broker reports the replicas it cannot serve because their
//! log directory failed (a full disk), and the controller moves them out of the way as it
//! would for a dead broker, but only those partitions: the broker keeps serving the rest.

use std::collections::HashSet;

use uuid::Uuid;

use super::change::{advance, first_eligible};
use crate::metadata::{MetadataImage, MetadataRecord, NO_LEADER};

/// Each reported replica leaves its ISR where another member remains, and its leaderships
/// move to the first live in-sync replica. Where the broker is the last in-sync replica
/// nothing changes: the partition keeps its only complete copy, unavailable until the
/// directory comes back, rather than losing acknowledged records to another replica.
/// Once back, the replica catches up and rejoins the ISR the usual way.
pub fn offline_replicas(
    image: &MetadataImage,
    id: i32,
    offline: &[(Uuid, i32)],
) -> Vec<MetadataRecord> {
    let offline: HashSet<&(Uuid, i32)> = offline.iter().collect();
    let live = |b: i32| b != id && image.is_live(b);
    let mut records = Vec::new();
    for (topic, p) in image.partitions() {
        if !offline.contains(&(topic.topic_id, p.partition)) || !p.isr.contains(&id) {
            continue;
        }
        let successor = first_eligible(&p.replicas, |b| p.isr.contains(&b) && live(b));
        if successor == NO_LEADER {
            continue;
        }
        let mut next = p.clone();
        if p.leader == id {
            next.leader = successor;
        }
        next.isr.retain(|&b| b != id);
        records.extend(advance(p, next).map(|n| n.to_record(topic.topic_id)));
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testkit::{apply, cluster, part, topic_of, with_partition};

    #[test]
    fn leaderships_move_and_the_isr_shrinks_only_for_reported_partitions() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1, 2, 3], 1);
        with_partition(&mut image, "t", 1, &[2, 1, 3], &[2, 1, 3], 2);
        with_partition(&mut image, "t", 2, &[1, 2, 3], &[1, 2, 3], 1);
        let id = topic_of(&image, "t").topic_id;
        let image = apply(&image, &offline_replicas(&image, 1, &[(id, 0), (id, 1)]));
        let p0 = part(&image, "t", 0);
        assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
        assert_eq!(p0.leader_epoch, 6, "a new leader, a new epoch");
        let p1 = part(&image, "t", 1);
        assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2, 3]));
        assert_eq!(p1.leader_epoch, 5, "the leader stays");
        let p2 = part(&image, "t", 2);
        assert_eq!((p2.leader, p2.isr.len()), (1, 3), "not reported: untouched");
    }

    #[test]
    fn the_last_in_sync_replica_keeps_its_partition() {
        let mut image = cluster(&[1, 2]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1], 1);
        with_partition(&mut image, "t", 1, &[1], &[1], 1);
        let id = topic_of(&image, "t").topic_id;
        assert!(offline_replicas(&image, 1, &[(id, 0), (id, 1)]).is_empty());
    }

    #[test]
    fn a_replica_already_out_of_the_isr_changes_nothing() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[2, 3], 2);
        let id = topic_of(&image, "t").topic_id;
        assert!(offline_replicas(&image, 1, &[(id, 0)]).is_empty());
    }

    #[test]
    fn fenced_members_are_not_successors() {
        let mut image = cluster(&[1, 2, 3]);
        image.apply(&MetadataRecord::FenceBroker { id: 2 });
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1, 2, 3], 1);
        let id = topic_of(&image, "t").topic_id;
        let image = apply(&image, &offline_replicas(&image, 1, &[(id, 0)]));
        let p0 = part(&image, "t", 0);
        assert_eq!((p0.leader, p0.isr.clone()), (3, vec![2, 3]));
    }
}
