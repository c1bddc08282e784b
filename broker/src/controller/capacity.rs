//! The most partition replicas one broker may hold (`max.broker.partitions`, the name
//! KIP-578 proposed for Kafka). A creation that would take a broker past it is refused up
//! front, before anything is committed, rather than discovered when that broker runs out
//! of memory or start-up time. Strom's default is the count the scale benchmark proves.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::metadata::{MetadataImage, MetadataRecord};

/// Refuses `records` (a decided creation) with POLICY_VIOLATION if the partitions they
/// add would give any broker more than `limit` replicas.
pub fn check_broker_capacity(
    image: &MetadataImage,
    records: &[MetadataRecord],
    limit: usize,
) -> ApiResult<()> {
    let existing: HashSet<(Uuid, i32)> = image
        .topics
        .values()
        .flat_map(|t| t.partitions.keys().map(move |p| (t.topic_id, *p)))
        .collect();
    let mut added: BTreeMap<i32, usize> = BTreeMap::new();
    for record in records {
        if let MetadataRecord::Partition {
            topic_id,
            partition,
            replicas,
            ..
        } = record
        {
            if !existing.contains(&(*topic_id, *partition)) {
                for b in replicas {
                    *added.entry(*b).or_default() += 1;
                }
            }
        }
    }
    if added.is_empty() {
        return Ok(());
    }
    let mut held: BTreeMap<i32, usize> = BTreeMap::new();
    for (_, p) in image.partitions() {
        for b in &p.replicas {
            *held.entry(*b).or_default() += 1;
        }
    }
    for (broker, more) in added {
        let now = held.get(&broker).copied().unwrap_or(0);
        if now + more > limit {
            let message = format!(
                "broker {broker} holds {now} partition replicas; {more} more would pass max.broker.partitions={limit}"
            );
            tracing::warn!(
                broker,
                held = now,
                more,
                limit,
                "refused a partition creation: {message}"
            );
            return Err(ApiError::new(ResponseError::PolicyViolation, message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testkit::{cluster, with_partition};
    use crate::metadata::PartitionImage;

    fn new_partition(topic_id: Uuid, partition: i32, replicas: &[i32]) -> MetadataRecord {
        PartitionImage {
            partition,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
        }
        .to_record(topic_id)
    }

    #[test]
    fn counts_existing_and_new_replicas_per_broker() {
        let mut image = cluster(&[1, 2]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        with_partition(&mut image, "t", 1, &[1], &[1], 1);
        let id = Uuid::new_v4();
        // Broker 1 holds 2; two more reach 4, one past a limit of 3.
        let records = vec![new_partition(id, 0, &[1, 2]), new_partition(id, 1, &[2, 1])];
        let e = check_broker_capacity(&image, &records, 3).unwrap_err();
        assert_eq!(e.error, ResponseError::PolicyViolation);
        assert!(e.message.contains("broker 1"), "{}", e.message);
        check_broker_capacity(&image, &records, 4).unwrap();
    }

    #[test]
    fn changes_to_existing_partitions_are_not_counted() {
        let mut image = cluster(&[1]);
        with_partition(&mut image, "t", 0, &[1], &[1], 1);
        let id = image.topic("t").unwrap().topic_id;
        check_broker_capacity(&image, &[new_partition(id, 0, &[1])], 1).unwrap();
    }
}
