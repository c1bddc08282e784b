//! Helpers every decision shares: finding a partition, and turning a partition's next
//! state into a record with Kafka's epoch rules.

use kafka_protocol::error::ResponseError;

use crate::error::{ApiError, ApiResult};
use crate::metadata::{MetadataImage, PartitionImage, TopicImage, NO_LEADER};

/// The named partition, or UNKNOWN_TOPIC_OR_PARTITION.
pub(crate) fn find_partition<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> ApiResult<(&'a TopicImage, &'a PartitionImage)> {
    image.partition(topic, partition).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("partition {topic}-{partition} does not exist"),
        )
    })
}

/// `after` with its epochs set from `before`: the leader epoch goes up when the leader
/// changes (followers and clients use it to fence the old leader), the partition epoch on
/// any change (AlterPartition uses it to refuse updates built on an old state). `None`
/// when nothing changed, so no record is written.
pub(crate) fn advance(
    before: &PartitionImage,
    mut after: PartitionImage,
) -> Option<PartitionImage> {
    after.leader_epoch = before.leader_epoch;
    after.partition_epoch = before.partition_epoch;
    if after == *before {
        return None;
    }
    if after.leader != before.leader {
        after.leader_epoch += 1;
    }
    after.partition_epoch += 1;
    Some(after)
}

/// The first of `candidates` (in that order) that `eligible` accepts, or `NO_LEADER`.
pub(crate) fn first_eligible(candidates: &[i32], eligible: impl Fn(i32) -> bool) -> i32 {
    candidates
        .iter()
        .copied()
        .find(|&b| eligible(b))
        .unwrap_or(NO_LEADER)
}

/// `isr` ordered as `replicas` lists them, so equal sets compare equal.
pub(crate) fn in_replica_order(replicas: &[i32], isr: &[i32]) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|r| isr.contains(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(leader: i32, isr: Vec<i32>) -> PartitionImage {
        PartitionImage {
            partition: 0,
            replicas: vec![1, 2, 3],
            isr,
            leader,
            leader_epoch: 4,
            partition_epoch: 7,
            adding: vec![],
            removing: vec![],
        }
    }

    #[test]
    fn epochs_follow_kafka() {
        let before = partition(1, vec![1, 2, 3]);
        assert_eq!(advance(&before, before.clone()), None);
        let shrunk = advance(&before, partition(1, vec![1, 2])).unwrap();
        assert_eq!((shrunk.leader_epoch, shrunk.partition_epoch), (4, 8));
        let moved = advance(&before, partition(2, vec![2, 3])).unwrap();
        assert_eq!((moved.leader_epoch, moved.partition_epoch), (5, 8));
    }
}
