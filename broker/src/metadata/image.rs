//! The metadata image: the state the record log adds up to. Readers take a cheap `Arc`
//! snapshot; a commit builds the next image from the previous one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::records::{ConfigResource, MetadataRecord};

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// Topic-level overrides only; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names: HashMap<Uuid, String>,
    pub next_producer_id_block: i64,
    /// How many records have been applied.
    pub applied: u64,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }

    /// Applies one record. Records that refer to something absent are ignored, as a
    /// replayed log may hold changes to a topic removed later.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.applied += 1;
        match record {
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_names.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                        configs: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
            } => {
                if let Some(topic) = self.topic_mut_by_id(topic_id) {
                    topic.partitions.insert(
                        *partition,
                        PartitionImage {
                            partition: *partition,
                            replicas: replicas.clone(),
                            isr: isr.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                        },
                    );
                }
            }
            MetadataRecord::Config {
                resource: ConfigResource::Topic(name),
                key,
                value,
            } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    let topic = Arc::make_mut(topic);
                    match value {
                        Some(v) => topic.configs.insert(key.clone(), v.clone()),
                        None => topic.configs.remove(key),
                    };
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::ProducerIds { next_block_start } => {
                self.next_producer_id_block = self.next_producer_id_block.max(*next_block_start);
            }
        }
    }

    fn topic_mut_by_id(&mut self, id: &Uuid) -> Option<&mut TopicImage> {
        let name = self.topic_names.get(id)?;
        self.topics.get_mut(name).map(Arc::make_mut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_topic_lifecycle() {
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        });
        image.apply(&MetadataRecord::Partition {
            topic_id: id,
            partition: 0,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
        });
        image.apply(&MetadataRecord::Config {
            resource: ConfigResource::Topic("t".into()),
            key: "retention.ms".into(),
            value: Some("5".into()),
        });
        let topic = image.topic("t").unwrap();
        assert_eq!(topic.partitions.len(), 1);
        assert_eq!(topic.configs["retention.ms"], "5");
        image.apply(&MetadataRecord::RemoveTopic { topic_id: id });
        assert!(image.topic("t").is_none());
        assert!(image.topic_by_id(&id).is_none());
    }
}
