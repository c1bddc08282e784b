//! Metadata records: each one a single change to the cluster's metadata.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::acl::AclBinding;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::quota::entity::QuotaEntity;

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name")]
pub enum ConfigResource {
    Topic(String),
    /// A broker's dynamic configs: its node id, or empty for the cluster-wide default
    /// (Kafka's ConfigRecord with resource type BROKER).
    Broker(String),
    /// A consumer group's configs (Kafka's resource type GROUP).
    Group(String),
}

/// One address a broker accepts connections on, named by its listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
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
        /// Bumped on every change to the partition; AlterPartition must name the current
        /// one. Defaulted so journals written before the cluster work still parse.
        #[serde(default)]
        partition_epoch: i32,
        /// Replicas a reassignment is adding (already listed in `replicas`).
        #[serde(default)]
        adding: Vec<i32>,
        /// Replicas a reassignment will drop once the added ones catch up.
        #[serde(default)]
        removing: Vec<i32>,
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
    /// A broker (re)joins the cluster. A new incarnation replaces the old registration and
    /// starts fenced: it may not lead or join an ISR until it has caught up.
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
    },
    /// The broker missed its heartbeats (or left): it may not lead or be in an ISR.
    FenceBroker { id: i32 },
    /// The broker has caught up with the metadata and may serve again.
    UnfenceBroker { id: i32 },
    /// The broker asked for a controlled shutdown: it gets no new leaderships.
    BrokerShuttingDown { id: i32 },
    /// The broker's registration is removed (Kafka's UnregisterBrokerRecord, KIP-500's
    /// `kafka-cluster.sh unregister`): it left the cluster for good, or its process will
    /// register again as a new incarnation.
    UnregisterBroker { id: i32 },
    /// Sets a user's SCRAM credential for one mechanism, replacing any it had (Kafka's
    /// UserScramCredentialRecord). Written by AlterUserScramCredentials upsertions and by
    /// `strom-broker format --add-scram` (see `quorum::bootstrap`).
    UserScramCredential {
        name: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    /// Removes a user's SCRAM credential for one mechanism (Kafka's
    /// RemoveUserScramCredentialRecord).
    RemoveUserScramCredential {
        name: String,
        mechanism: ScramMechanism,
    },
    /// An ACL is created under a fresh id (Kafka's AccessControlEntryRecord). The
    /// controller never stores two identical ACLs.
    Acl { id: Uuid, binding: AclBinding },
    /// The ACL with this id is deleted (Kafka's RemoveAccessControlEntryRecord).
    RemoveAcl { id: Uuid },
    /// Sets (`Some`) or removes (`None`) one client quota of an entity (Kafka's
    /// ClientQuotaRecord, whose `remove` flag is the `None`).
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<f64>,
    },
}
