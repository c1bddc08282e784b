//! Metadata records: each one a single change to the cluster's metadata.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name")]
pub enum ConfigResource {
    Topic(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A topic comes into being.
    Topic { name: String, topic_id: Uuid },
    /// A partition of a topic, or a change to one (same key, new state).
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
    },
    /// Sets (`Some`) or clears (`None`) one config key.
    Config {
        resource: ConfigResource,
        key: String,
        value: Option<String>,
    },
    /// A topic and its partitions go away.
    RemoveTopic { topic_id: Uuid },
    /// Producer ids below `next_block_start` have been handed out.
    ProducerIds { next_block_start: i64 },
}
