//! Which moves start next, and the replication throttles a batch needs. One batch at a
//! time: nothing new starts while any reassignment is under way (the operator's or
//! anyone's), so the throttled traffic has a bound and a failed batch stops the rest.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{Move, TopicPartition};

/// Partitions the operator moves at once, unless a cluster config says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 10;

/// The next batch: empty while reassignments are in flight; otherwise the first
/// `size` moves of the plan that copy data, plus every move that only reorders replicas
/// (those copy nothing, so they do not count against the batch).
pub fn next_batch(plan: &[Move], in_flight: &BTreeSet<TopicPartition>, size: usize) -> Vec<Move> {
    if !in_flight.is_empty() {
        return Vec::new();
    }
    let mut copying = 0;
    plan.iter()
        .filter(|m| {
            if m.is_reorder() {
                return true;
            }
            copying += 1;
            copying <= size.max(1)
        })
        .cloned()
        .collect()
}

/// The topic throttles a batch needs, as `kafka-reassign-partitions --throttle` sets them:
/// `leader.replication.throttled.replicas` lists the partition's current replicas (those
/// that may serve the copy) and `follower.replication.throttled.replicas` the brokers
/// being added, each as `partition:broker`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicThrottle {
    pub leader: Vec<String>,
    pub follower: Vec<String>,
}

impl TopicThrottle {
    pub fn leader_value(&self) -> String {
        self.leader.join(",")
    }
    pub fn follower_value(&self) -> String {
        self.follower.join(",")
    }
}

pub fn throttles(batch: &[Move]) -> BTreeMap<String, TopicThrottle> {
    let mut out: BTreeMap<String, TopicThrottle> = BTreeMap::new();
    for m in batch.iter().filter(|m| !m.is_reorder()) {
        let entry = out.entry(m.partition.topic.clone()).or_default();
        let p = m.partition.partition;
        entry
            .leader
            .extend(m.from.iter().map(|b| format!("{p}:{b}")));
        entry
            .follower
            .extend(m.adding().iter().map(|b| format!("{p}:{b}")));
    }
    out
}

/// Brokers whose `leader/follower.replication.throttled.rate` must be set for a batch:
/// every broker that sends or receives a copy.
pub fn throttled_brokers(batch: &[Move]) -> BTreeSet<i32> {
    batch
        .iter()
        .filter(|m| !m.is_reorder())
        .flat_map(|m| m.from.iter().chain(m.to.iter()).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(topic: &str, p: i32, from: &[i32], to: &[i32]) -> Move {
        Move {
            partition: TopicPartition::new(topic, p),
            from: from.to_vec(),
            to: to.to_vec(),
        }
    }

    #[test]
    fn nothing_starts_while_a_reassignment_is_in_flight() {
        let plan = vec![mv("t", 0, &[0, 1], &[0, 2])];
        let busy = BTreeSet::from([TopicPartition::new("other", 3)]);
        assert!(next_batch(&plan, &busy, 10).is_empty());
        assert_eq!(next_batch(&plan, &BTreeSet::new(), 10), plan);
    }

    #[test]
    fn a_batch_holds_at_most_size_copying_moves_plus_free_reorders() {
        let plan = vec![
            mv("t", 0, &[0, 1], &[0, 2]),
            mv("t", 1, &[0, 1], &[1, 0]),
            mv("t", 2, &[0, 1], &[3, 1]),
            mv("t", 3, &[0, 1], &[4, 1]),
            mv("t", 4, &[1, 0], &[0, 1]),
        ];
        let batch = next_batch(&plan, &BTreeSet::new(), 2);
        let parts: Vec<i32> = batch.iter().map(|m| m.partition.partition).collect();
        assert_eq!(parts, vec![0, 1, 2, 4]);
        // A size of zero still makes progress.
        assert_eq!(next_batch(&plan, &BTreeSet::new(), 0).len(), 3);
    }

    #[test]
    fn throttles_name_current_replicas_as_leaders_and_new_ones_as_followers() {
        let batch = vec![
            mv("a", 0, &[0, 1, 2], &[3, 1, 2]),
            mv("a", 5, &[1, 2, 0], &[1, 4, 0]),
            mv("b", 1, &[2, 0, 1], &[0, 2, 1]),
        ];
        let t = throttles(&batch);
        assert_eq!(t.len(), 1, "a reorder needs no throttle");
        assert_eq!(t["a"].leader_value(), "0:0,0:1,0:2,5:1,5:2,5:0");
        assert_eq!(t["a"].follower_value(), "0:3,5:4");
        assert_eq!(throttled_brokers(&batch), BTreeSet::from([0, 1, 2, 3, 4]));
    }
}
