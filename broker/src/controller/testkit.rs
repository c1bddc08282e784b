//! Test helpers: small clusters and topics built through the real records.

use uuid::Uuid;

use crate::metadata::{BrokerEndpoint, MetadataImage, MetadataRecord, PartitionImage, TopicImage};

pub(crate) fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    let mut next = image.clone();
    for r in records {
        next.apply(r);
    }
    next
}

/// Live (registered and unfenced) brokers with the given ids, no racks.
pub(crate) fn cluster(ids: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for &id in ids {
        register(&mut image, id, None);
        image.apply(&MetadataRecord::UnfenceBroker { id });
    }
    image
}

pub(crate) fn register(image: &mut MetadataImage, id: i32, rack: Option<&str>) {
    image.apply(&MetadataRecord::RegisterBroker {
        id,
        incarnation: Uuid::new_v4(),
        endpoints: vec![BrokerEndpoint {
            listener: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9000 + id as u16,
        }],
        rack: rack.map(str::to_string),
    });
}

/// Adds (or replaces) partition `partition` of `topic`, creating the topic if needed.
pub(crate) fn with_partition(
    image: &mut MetadataImage,
    topic: &str,
    partition: i32,
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
) {
    let topic_id = match image.topic(topic) {
        Some(t) => t.topic_id,
        None => {
            let topic_id = Uuid::new_v4();
            image.apply(&MetadataRecord::Topic {
                name: topic.into(),
                topic_id,
            });
            topic_id
        }
    };
    image.apply(
        &PartitionImage {
            partition,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 5,
            partition_epoch: 10,
            adding: vec![],
            removing: vec![],
        }
        .to_record(topic_id),
    );
}

pub(crate) fn part<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> &'a PartitionImage {
    &topic_of(image, topic).partitions[&partition]
}

pub(crate) fn topic_of<'a>(image: &'a MetadataImage, topic: &str) -> &'a TopicImage {
    image.topic(topic).unwrap()
}
