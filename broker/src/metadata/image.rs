//! The metadata image: the state the record log adds up to. Readers take a cheap `Arc`
//! snapshot; a commit builds the next image from the previous one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::acl::AclBinding;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::quota::resolve::ClientQuotaMap;
use uuid::Uuid;

use super::records::{BrokerEndpoint, ConfigResource, MetadataRecord};

/// The leader of a partition nobody can lead: the partition is offline.
pub const NO_LEADER: i32 = -1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// `NO_LEADER` when offline.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change to the partition (leader, ISR or replicas).
    #[serde(default)]
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment is adding; empty when none is.
    #[serde(default)]
    pub adding: Vec<i32>,
    /// Replicas an ongoing reassignment will drop.
    #[serde(default)]
    pub removing: Vec<i32>,
}

impl PartitionImage {
    pub fn is_offline(&self) -> bool {
        self.leader == NO_LEADER
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The record that sets this partition to exactly this state.
    pub fn to_record(&self, topic_id: Uuid) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition: self.partition,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            adding: self.adding.clone(),
            removing: self.removing.clone(),
        }
    }
}

/// A broker as the controller knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// Changes every time the broker process starts, so a restart is told from a replay.
    pub incarnation: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// Fenced brokers may not lead partitions or be in an ISR.
    pub fenced: bool,
    /// In controlled shutdown: gets no new leaderships.
    pub shutting_down: bool,
}

impl BrokerRegistration {
    pub fn is_live(&self) -> bool {
        !self.fenced && !self.shutting_down
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// Topic-level overrides only; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

/// Also the raft snapshot, hence serializable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    #[serde(with = "shared_topics")]
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names: HashMap<Uuid, String>,
    pub next_producer_id_block: i64,
    /// How many records have been applied.
    pub applied: u64,
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Dynamic broker configs by resource name: a node id, or "" for the cluster default.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Group configs by group id.
    #[serde(default)]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials by user name and mechanism (Kafka's UserScramCredentialRecord).
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// ACLs by id (Kafka's AccessControlEntryRecord). Shared between successive images
    /// and replaced only by an ACL record, so whoever follows the images (the broker's
    /// authorizer) sees an ACL change as a new pointer and rebuilds only then.
    #[serde(default, with = "shared_acls")]
    pub acls: Arc<BTreeMap<Uuid, AclBinding>>,
    /// Client quotas by entity (Kafka's ClientQuotasImage). Shared between successive
    /// images, so every request's quota lookup reads it without copying.
    #[serde(default, with = "shared_quotas")]
    pub client_quotas: Arc<ClientQuotaMap>,
}

/// Serializes the quotas as a list of (entity, values): an entity is a map, which JSON
/// cannot use as an object key.
mod shared_quotas {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::quota::entity::QuotaEntity;
    use crate::quota::resolve::ClientQuotaMap;

    pub fn serialize<S: Serializer>(
        quotas: &Arc<ClientQuotaMap>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let list: Vec<(&QuotaEntity, &BTreeMap<String, f64>)> = quotas.iter().collect();
        list.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<ClientQuotaMap>, D::Error> {
        let list: Vec<(QuotaEntity, BTreeMap<String, f64>)> = Vec::deserialize(deserializer)?;
        Ok(Arc::new(list.into_iter().collect()))
    }
}

/// Serializes the shared ACL map as a plain map (see `shared_topics` for why).
mod shared_acls {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    use crate::auth::acl::AclBinding;

    pub fn serialize<S: Serializer>(
        acls: &Arc<BTreeMap<Uuid, AclBinding>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        acls.as_ref().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<BTreeMap<Uuid, AclBinding>>, D::Error> {
        BTreeMap::deserialize(deserializer).map(Arc::new)
    }
}

/// Serializes the `Arc`-shared topics as plain values, so serde's `rc` feature (which
/// would duplicate shared data silently in general) is not needed for this one map.
mod shared_topics {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::TopicImage;

    pub fn serialize<S: Serializer>(
        topics: &BTreeMap<String, Arc<TopicImage>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let plain: BTreeMap<&String, &TopicImage> =
            topics.iter().map(|(k, v)| (k, v.as_ref())).collect();
        plain.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, Arc<TopicImage>>, D::Error> {
        let plain = BTreeMap::<String, TopicImage>::deserialize(deserializer)?;
        Ok(plain.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

/// Sets or clears one key of a resource's configs; a resource left with none is dropped.
fn set_config(
    configs: &mut BTreeMap<String, BTreeMap<String, String>>,
    name: &str,
    key: &str,
    value: Option<&String>,
) {
    match value {
        Some(v) => {
            configs
                .entry(name.to_string())
                .or_default()
                .insert(key.to_string(), v.clone());
        }
        None => {
            if let Some(keys) = configs.get_mut(name) {
                keys.remove(key);
                if keys.is_empty() {
                    configs.remove(name);
                }
            }
        }
    }
}

impl MetadataImage {
    /// The SCRAM credential a SASL exchange checks `user`'s proof against.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism).cloned()
    }

    /// The dynamic configs of broker resource `name` (a node id, or "" for the default).
    pub fn broker_config(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(name)
    }

    /// The records that apply `changes` (set or clear) to a broker or group resource;
    /// with `replace_all`, every other key it has is cleared too (legacy AlterConfigs).
    pub fn config_change_records(
        &self,
        resource: &ConfigResource,
        changes: &[(String, Option<String>)],
        replace_all: bool,
    ) -> Vec<MetadataRecord> {
        let current = match resource {
            ConfigResource::Topic(name) => self.topic(name).map(|t| &t.configs),
            ConfigResource::Broker(name) => self.broker_configs.get(name),
            ConfigResource::Group(name) => self.group_configs.get(name),
        };
        let record = |key: &String, value: Option<String>| MetadataRecord::Config {
            resource: resource.clone(),
            key: key.clone(),
            value,
        };
        let mut records: Vec<MetadataRecord> =
            changes.iter().map(|(k, v)| record(k, v.clone())).collect();
        if replace_all {
            for key in current.into_iter().flat_map(|c| c.keys()) {
                if !changes.iter().any(|(k, _)| k == key) {
                    records.push(record(key, None));
                }
            }
        }
        records
    }

    /// Registered brokers that may lead and be in ISRs: not fenced, not shutting down.
    pub fn live_brokers(&self) -> Vec<&BrokerRegistration> {
        self.brokers.values().filter(|b| b.is_live()).collect()
    }

    pub fn is_live(&self, id: i32) -> bool {
        self.brokers
            .get(&id)
            .is_some_and(BrokerRegistration::is_live)
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Every partition of every topic, in topic name then partition order.
    pub fn partitions(&self) -> impl Iterator<Item = (&TopicImage, &PartitionImage)> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.values().map(move |p| (t.as_ref(), p)))
    }

    /// The partition `partition` of topic `name`.
    pub fn partition(&self, name: &str, partition: i32) -> Option<(&TopicImage, &PartitionImage)> {
        let topic = self.topics.get(name)?;
        topic
            .partitions
            .get(&partition)
            .map(|p| (topic.as_ref(), p))
    }

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
                partition_epoch,
                adding,
                removing,
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
                            partition_epoch: *partition_epoch,
                            adding: adding.clone(),
                            removing: removing.clone(),
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
            MetadataRecord::Config {
                resource: ConfigResource::Broker(name),
                key,
                value,
            } => set_config(&mut self.broker_configs, name, key, value.as_ref()),
            MetadataRecord::Config {
                resource: ConfigResource::Group(name),
                key,
                value,
            } => set_config(&mut self.group_configs, name, key, value.as_ref()),
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::ProducerIds { next_block_start } => {
                self.next_producer_id_block = self.next_producer_id_block.max(*next_block_start);
            }
            MetadataRecord::RegisterBroker {
                id,
                incarnation,
                endpoints,
                rack,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerRegistration {
                        id: *id,
                        incarnation: *incarnation,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        // Kafka: a new registration serves only after its first heartbeat
                        // shows it has caught up with the metadata.
                        fenced: true,
                        shutting_down: false,
                    },
                );
            }
            MetadataRecord::FenceBroker { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = false;
                }
            }
            MetadataRecord::BrokerShuttingDown { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.shutting_down = true;
                }
            }
            MetadataRecord::UnregisterBroker { id } => {
                self.brokers.remove(id);
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => {
                self.scram_credentials
                    .entry(name.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                // A user without any mechanism left is no user: DescribeUserScramCredentials
                // must answer RESOURCE_NOT_FOUND for it, as Kafka's ScramImage does.
                if let Some(mechanisms) = self.scram_credentials.get_mut(name) {
                    mechanisms.remove(mechanism);
                    if mechanisms.is_empty() {
                        self.scram_credentials.remove(name);
                    }
                }
            }
            MetadataRecord::Acl { id, binding } => {
                Arc::make_mut(&mut self.acls).insert(*id, binding.clone());
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                let quotas = Arc::make_mut(&mut self.client_quotas);
                match value {
                    Some(value) => {
                        quotas
                            .entry(entity.clone())
                            .or_default()
                            .insert(key.clone(), *value);
                    }
                    None => {
                        // An entity without quotas is no entity (Kafka's replay drops it).
                        if let Some(values) = quotas.get_mut(entity) {
                            values.remove(key);
                            if values.is_empty() {
                                quotas.remove(entity);
                            }
                        }
                    }
                }
            }
            MetadataRecord::RemoveAcl { id } => {
                // Checked first, so removing an unknown id does not replace the shared map
                // (followers would rebuild their authorizer for nothing).
                if self.acls.contains_key(id) {
                    Arc::make_mut(&mut self.acls).remove(id);
                }
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
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
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

    fn register(image: &mut MetadataImage, id: i32) {
        image.apply(&MetadataRecord::RegisterBroker {
            id,
            incarnation: Uuid::new_v4(),
            endpoints: vec![BrokerEndpoint {
                listener: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092,
            }],
            rack: Some("r1".into()),
        });
    }

    #[test]
    fn broker_lifecycle_decides_liveness() {
        let mut image = MetadataImage::default();
        register(&mut image, 1);
        assert!(
            image.brokers[&1].fenced,
            "a fresh registration starts fenced"
        );
        assert!(!image.is_live(1));
        image.apply(&MetadataRecord::UnfenceBroker { id: 1 });
        assert!(image.is_live(1));
        assert_eq!(image.live_brokers().len(), 1);
        image.apply(&MetadataRecord::BrokerShuttingDown { id: 1 });
        assert!(!image.is_live(1));
        image.apply(&MetadataRecord::FenceBroker { id: 1 });
        assert!(image.brokers[&1].fenced);
        register(&mut image, 1);
        let b = &image.brokers[&1];
        assert!(
            b.fenced && !b.shutting_down,
            "re-registration resets shutdown"
        );
        assert!(!image.is_live(7));
        image.apply(&MetadataRecord::FenceBroker { id: 7 });
        assert!(image.broker(7).is_none());
    }

    #[test]
    fn broker_and_group_configs_are_kept_per_resource() {
        let mut image = MetadataImage::default();
        let set = |resource: ConfigResource, value: Option<&str>| MetadataRecord::Config {
            resource,
            key: "k".into(),
            value: value.map(str::to_string),
        };
        image.apply(&set(ConfigResource::Broker(String::new()), Some("1")));
        image.apply(&set(ConfigResource::Broker("2".into()), Some("2")));
        image.apply(&set(ConfigResource::Group("g".into()), Some("3")));
        assert_eq!(
            image
                .broker_config("")
                .and_then(|c| c.get("k"))
                .map(String::as_str),
            Some("1")
        );
        assert_eq!(image.broker_configs["2"]["k"], "2");
        assert_eq!(image.group_configs["g"]["k"], "3");
        image.apply(&set(ConfigResource::Broker("2".into()), None));
        assert!(
            image.broker_config("2").is_none(),
            "an emptied resource is dropped"
        );
        let json = serde_json::to_string(&image).expect("serializes");
        let back: MetadataImage = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, image);
    }

    fn credential(iterations: u32) -> ScramCredential {
        ScramCredential::from_password(ScramMechanism::Sha256, "secret", b"salt", iterations)
            .expect("valid credential")
    }

    #[test]
    fn scram_credentials_are_kept_per_user_and_mechanism() {
        let mut image = MetadataImage::default();
        let upsert = |name: &str, mechanism, iterations| MetadataRecord::UserScramCredential {
            name: name.into(),
            mechanism,
            credential: credential(iterations),
        };
        image.apply(&upsert("alice", ScramMechanism::Sha256, 4096));
        image.apply(&upsert("alice", ScramMechanism::Sha512, 8192));
        image.apply(&upsert("bob", ScramMechanism::Sha256, 4096));
        assert_eq!(
            image
                .scram_credential("alice", ScramMechanism::Sha512)
                .map(|c| c.iterations),
            Some(8192)
        );
        // An upsertion replaces the mechanism's credential.
        image.apply(&upsert("alice", ScramMechanism::Sha512, 5000));
        assert_eq!(
            image.scram_credentials["alice"][&ScramMechanism::Sha512].iterations,
            5000
        );

        let remove = |name: &str, mechanism| MetadataRecord::RemoveUserScramCredential {
            name: name.into(),
            mechanism,
        };
        image.apply(&remove("alice", ScramMechanism::Sha256));
        assert!(image
            .scram_credential("alice", ScramMechanism::Sha256)
            .is_none());
        assert!(image
            .scram_credential("alice", ScramMechanism::Sha512)
            .is_some());
        image.apply(&remove("alice", ScramMechanism::Sha512));
        assert!(
            !image.scram_credentials.contains_key("alice"),
            "the last mechanism removed takes the user with it"
        );
        // Removing what is not there changes nothing (a replayed log may hold it).
        image.apply(&remove("carol", ScramMechanism::Sha256));
        image.apply(&remove("bob", ScramMechanism::Sha512));
        assert_eq!(image.scram_credentials.len(), 1);
        assert!(image
            .scram_credential("bob", ScramMechanism::Sha256)
            .is_some());

        let json = serde_json::to_string(&image).expect("serializes");
        let back: MetadataImage = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, image);
    }

    #[test]
    fn scram_records_round_trip_through_json() {
        let records = vec![
            MetadataRecord::UserScramCredential {
                name: "alice".into(),
                mechanism: ScramMechanism::Sha512,
                credential: credential(4096),
            },
            MetadataRecord::RemoveUserScramCredential {
                name: "alice".into(),
                mechanism: ScramMechanism::Sha256,
            },
        ];
        let json = serde_json::to_string(&records).expect("serializes");
        let back: Vec<MetadataRecord> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, records);
        assert!(
            !format!("{records:?}").contains("stored_key"),
            "a credential's Debug hides its keys"
        );
    }

    #[test]
    fn image_round_trips_through_json_and_old_records_parse() {
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        register(&mut image, 2);
        image.apply(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        });
        // A partition record as the single-node journal wrote it, before epochs existed.
        let old = format!(
            r#"{{"type":"Partition","topic_id":"{id}","partition":0,"replicas":[2],"isr":[2],"leader":2,"leader_epoch":3}}"#
        );
        let record: MetadataRecord = serde_json::from_str(&old).unwrap();
        image.apply(&record);
        let p = &image.topic("t").unwrap().partitions[&0];
        assert_eq!((p.leader_epoch, p.partition_epoch), (3, 0));
        assert!(p.adding.is_empty() && p.removing.is_empty());
        assert_eq!(image.partitions().count(), 1);
        let json = serde_json::to_string(&image).unwrap();
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
    }
    #[test]
    fn acls_are_applied_shared_and_kept_in_snapshots() {
        use crate::auth::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};
        let binding = AclBinding::new(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            "User:alice",
            "*",
            AclOperation::Read,
            AclPermissionType::Allow,
        );
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Acl {
            id,
            binding: binding.clone(),
        });
        assert_eq!(image.acls.get(&id), Some(&binding));
        let before = image.acls.clone();
        image.apply(&MetadataRecord::FenceBroker { id: 1 });
        image.apply(&MetadataRecord::RemoveAcl { id: Uuid::new_v4() });
        assert!(
            Arc::ptr_eq(&before, &image.acls),
            "only a change to the ACLs replaces the shared map"
        );
        let json = serde_json::to_string(&image).unwrap();
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
        image.apply(&MetadataRecord::RemoveAcl { id });
        assert!(image.acls.is_empty());
        assert!(!Arc::ptr_eq(&before, &image.acls));
        // A snapshot written before ACLs existed has none.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut().unwrap().remove("acls");
        let old: MetadataImage = serde_json::from_value(old).unwrap();
        assert!(old.acls.is_empty());
    }

    #[test]
    fn client_quotas_are_set_removed_and_kept_in_snapshots() {
        use crate::quota::entity::QuotaEntity;
        let alice = QuotaEntity::user_client(Some(Some("alice")), None);
        let defaults = QuotaEntity::user_client(Some(None), Some(None));
        let set =
            |entity: &QuotaEntity, key: &str, value: Option<f64>| MetadataRecord::ClientQuota {
                entity: entity.clone(),
                key: key.into(),
                value,
            };
        let mut image = MetadataImage::default();
        image.apply(&set(&alice, "producer_byte_rate", Some(1024.0)));
        image.apply(&set(&alice, "consumer_byte_rate", Some(2048.0)));
        image.apply(&set(&defaults, "request_percentage", Some(50.0)));
        image.apply(&set(&alice, "producer_byte_rate", Some(4096.0)));
        assert_eq!(image.client_quotas[&alice]["producer_byte_rate"], 4096.0);
        assert_eq!(image.client_quotas.len(), 2);
        let json = serde_json::to_string(&image).unwrap();
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
        image.apply(&set(&alice, "producer_byte_rate", None));
        image.apply(&set(&alice, "consumer_byte_rate", None));
        // Removing what is not there changes nothing.
        image.apply(&set(&alice, "consumer_byte_rate", None));
        assert!(
            !image.client_quotas.contains_key(&alice),
            "an entity without quotas goes"
        );
        assert_eq!(image.client_quotas[&defaults]["request_percentage"], 50.0);
    }
}
