//! Cluster operations on [`Admin`]: what Kafka's `Admin` client offers for brokers,
//! partitions and the metadata quorum. DescribeCluster, the partition view of Metadata,
//! DescribeConfigs and IncrementalAlterConfigs on brokers, List- and
//! AlterPartitionReassignments, ElectLeaders, DescribeQuorum, UnregisterBroker and
//! FindCoordinator (which broker coordinates a group or a transactional id).
//!
//! Where to send them: any broker will do for every call here except a broker's own
//! configs, which Kafka changes only on that broker (its admin client routes
//! `BROKER <id>` resources there); connect to [`BrokerNode::address`] for those.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeQuorumRequest, ElectLeadersRequest, FindCoordinatorRequest,
    ListPartitionReassignmentsRequest, MetadataRequest, UnregisterBrokerRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::admin::{
    check, refused, topic_name, Admin, AdminError, ConfigOp, Outcome, RESOURCE_TOPIC,
};

/// Kafka's `ConfigResource.Type.BROKER`.
pub const RESOURCE_BROKER: i8 = 4;
/// The metadata quorum's topic and partition, as DescribeQuorum names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The versions the calls use: the highest strom-broker and Kafka 4 both serve, except
/// DescribeQuorum, whose v2 adds only directory ids and listener endpoints this client
/// does not report.
const METADATA_VERSION: i16 = 12;
const DESCRIBE_CLUSTER_VERSION: i16 = 2;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
const LIST_REASSIGNMENTS_VERSION: i16 = 0;
/// v1 only adds `allow_replication_factor_change`, which Kafka before 4.1 lacks.
const ALTER_REASSIGNMENTS_VERSION: i16 = 0;
const ELECT_LEADERS_VERSION: i16 = 2;
const DESCRIBE_QUORUM_VERSION: i16 = 1;
const UNREGISTER_BROKER_VERSION: i16 = 0;
/// v4 is the first that takes a list of keys (and answers each with its own error); v5
/// and v6 only add error codes and the share-group key type.
const FIND_COORDINATOR_VERSION: i16 = 4;

/// A partition by topic name and index, as Kafka's `TopicPartition`.
pub type TopicPartition = (String, i32);

/// A broker as DescribeCluster shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNode {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Registered but fenced: it lost its session with the controller (or never had one).
    pub fenced: bool,
}

impl BrokerNode {
    /// `host:port` of the listener this client is connected through.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The cluster as DescribeCluster shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    /// The active controller, when the broker knows one.
    pub controller: Option<i32>,
    pub brokers: Vec<BrokerNode>,
}

/// One partition as Metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub topic: String,
    pub partition: i32,
    /// `None` while the partition has no leader.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    /// In assignment order: the first is the preferred leader.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas whose log directory is offline.
    pub offline: Vec<i32>,
}

/// Partitions of the topics Metadata was asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionsView {
    pub cluster_id: Option<String>,
    /// The controller as Metadata names it (a broker, in KRaft a random one).
    pub controller: Option<i32>,
    /// Each topic's partitions, or Kafka's refusal to describe it (an unknown topic asked
    /// for by name is UNKNOWN_TOPIC_OR_PARTITION).
    pub topics: BTreeMap<String, Outcome<Vec<PartitionInfo>>>,
}

impl PartitionsView {
    /// The partitions of every topic that was described.
    pub fn partitions(&self) -> impl Iterator<Item = &PartitionInfo> {
        self.topics
            .values()
            .filter_map(|t| t.as_ref().ok())
            .flatten()
    }
}

/// A config resource of DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

impl ConfigResource {
    fn kind(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => RESOURCE_TOPIC,
            ConfigResource::Broker(_) => RESOURCE_BROKER,
        }
    }

    fn name(&self) -> String {
        match self {
            ConfigResource::Topic(name) => name.clone(),
            ConfigResource::Broker(id) => id.to_string(),
        }
    }

    fn describe(&self) -> String {
        match self {
            ConfigResource::Topic(name) => format!("topic {name}"),
            ConfigResource::Broker(id) => format!("broker {id}"),
        }
    }
}

/// One config's value as DescribeConfigs reports it, wherever it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// `None` for a sensitive value or one without a value.
    pub value: Option<String>,
    /// Kafka's `ConfigSource` code (1 dynamic topic, 2 dynamic broker, 4 static broker,
    /// 5 default, ...).
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

/// A partition reassignment under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    /// Every replica while the move lasts: the target plus those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Reassignment {
    /// The replicas the partition will have once the move is done.
    pub fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }
}

/// What AlterPartitionReassignments should do with a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassignmentTarget {
    /// Move the partition onto these replicas, the first its preferred leader.
    Replicas(Vec<i32>),
    /// Stop the move under way, back to the replicas it had.
    Cancel,
}

/// Kafka's `ElectionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Make the first replica leader again, if it is in the ISR.
    Preferred,
    /// Elect a leader outside the ISR when none inside is alive (may lose data).
    Unclean,
}

impl ElectionType {
    fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

/// An election Kafka did not refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The leadership moved.
    Elected,
    /// ELECTION_NOT_NEEDED: the leader was already the one asked for.
    NotNeeded,
}

/// One quorum member as DescribeQuorum shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    /// `None` when the leader does not know it.
    pub log_end_offset: Option<i64>,
    /// Offsets behind the leader's log end, when both are known.
    pub lag: Option<i64>,
    /// The leader's clock, milliseconds; `None` when never.
    pub last_fetch_ms: Option<i64>,
    pub last_caught_up_ms: Option<i64>,
}

/// The metadata quorum as its leader reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    pub leader: i32,
    pub epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

/// Kafka's `FindCoordinatorRequest.CoordinatorType`: what the key of FindCoordinator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorType {
    /// A consumer group id.
    Group,
    /// A transactional id.
    Transaction,
}

impl CoordinatorType {
    fn code(self) -> i8 {
        match self {
            CoordinatorType::Group => 0,
            CoordinatorType::Transaction => 1,
        }
    }

    fn describe(self, key: &str) -> String {
        match self {
            CoordinatorType::Group => format!("group {key}"),
            CoordinatorType::Transaction => format!("transactional id {key}"),
        }
    }
}

/// The broker FindCoordinator names, and where its listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

impl Coordinator {
    /// `host:port` on the listener this client asked through.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl Admin {
    /// The cluster id, the controller and the registered brokers; fenced ones too when
    /// `include_fenced`.
    pub async fn describe_cluster(
        &mut self,
        include_fenced: bool,
    ) -> Result<ClusterDescription, AdminError> {
        let request = DescribeClusterRequest::default().with_include_fenced_brokers(include_fenced);
        let response = self
            .send("DescribeCluster", request, DESCRIBE_CLUSTER_VERSION)
            .await?;
        check(
            "DescribeCluster",
            "the cluster",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        Ok(ClusterDescription {
            cluster_id: response.cluster_id.to_string(),
            controller: Some(response.controller_id.0).filter(|c| *c >= 0),
            brokers: response
                .brokers
                .iter()
                .map(|b| BrokerNode {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                    fenced: b.is_fenced,
                })
                .collect(),
        })
    }

    /// Leader, replicas and ISR of every partition of `topics`, or of every topic
    /// (internal ones too) for `None`. Nothing is auto-created.
    pub async fn describe_partitions(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<PartitionsView, AdminError> {
        // kafka-protocol's default asks for no topic at all; null means every one.
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let response = self.send("Metadata", request, METADATA_VERSION).await?;
        let mut view = PartitionsView {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller: Some(response.controller_id.0).filter(|c| *c >= 0),
            topics: BTreeMap::new(),
        };
        for topic in &response.topics {
            let Some(name) = topic.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            let outcome =
                check("Metadata", format!("topic {name}"), topic.error_code, None).map(|()| {
                    topic
                        .partitions
                        .iter()
                        .map(|p| PartitionInfo {
                            topic: name.clone(),
                            partition: p.partition_index,
                            leader: Some(p.leader_id.0).filter(|l| *l >= 0),
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                            offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                        })
                        .collect()
                });
            view.topics.insert(name, outcome);
        }
        Ok(view)
    }

    /// The values of `keys` (all keys for `None`) of each resource, wherever they come
    /// from: a topic's own override, a broker's dynamic or static config, or the default.
    pub async fn describe_configs(
        &mut self,
        resources: &[ConfigResource],
        keys: Option<&[String]>,
    ) -> Result<BTreeMap<ConfigResource, Outcome<BTreeMap<String, ConfigEntry>>>, AdminError> {
        if resources.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = DescribeConfigsRequest::default().with_resources(
            resources
                .iter()
                .map(|r| {
                    DescribeConfigsResource::default()
                        .with_resource_type(r.kind())
                        .with_resource_name(StrBytes::from_string(r.name()))
                        .with_configuration_keys(keys.map(|keys| {
                            keys.iter()
                                .map(|k| StrBytes::from_string(k.clone()))
                                .collect()
                        }))
                })
                .collect(),
        );
        let response = self
            .send("DescribeConfigs", request, DESCRIBE_CONFIGS_VERSION)
            .await?;
        let mut out = BTreeMap::new();
        for result in &response.results {
            let Some(resource) = resources.iter().find(|r| {
                r.kind() == result.resource_type && r.name() == result.resource_name.as_str()
            }) else {
                continue;
            };
            let outcome = check(
                "DescribeConfigs",
                resource.describe(),
                result.error_code,
                result.error_message.as_ref(),
            )
            .map(|()| {
                result
                    .configs
                    .iter()
                    .map(|c| {
                        let entry = ConfigEntry {
                            value: c.value.as_ref().map(|v| v.to_string()),
                            source: c.config_source,
                            read_only: c.read_only,
                            sensitive: c.is_sensitive,
                        };
                        (c.name.to_string(), entry)
                    })
                    .collect()
            });
            out.insert(resource.clone(), outcome);
        }
        Ok(out)
    }

    /// Sets and deletes per-broker dynamic configs (IncrementalAlterConfigs on `BROKER
    /// <id>`). Kafka applies a broker's own configs only on that broker: connect to it.
    pub async fn alter_broker_configs(
        &mut self,
        changes: &BTreeMap<i32, Vec<ConfigOp>>,
    ) -> Result<BTreeMap<i32, Outcome<()>>, AdminError> {
        let by_name = changes
            .iter()
            .map(|(id, ops)| (id.to_string(), ops.clone()))
            .collect();
        let answers = self
            .alter_configs(RESOURCE_BROKER, "broker", &by_name)
            .await?;
        Ok(answers
            .into_iter()
            .filter_map(|(name, outcome)| name.parse::<i32>().ok().map(|id| (id, outcome)))
            .collect())
    }

    /// The reassignments under way, of `partitions` or of every partition for `None`.
    pub async fn list_reassignments(
        &mut self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, Reassignment>, AdminError> {
        let topics = partitions.map(|partitions| {
            by_topic(partitions.iter().cloned())
                .into_iter()
                .map(|(topic, indexes)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(&topic))
                        .with_partition_indexes(indexes)
                })
                .collect()
        });
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.broker_timeout_ms())
            .with_topics(topics);
        let response = self
            .send(
                "ListPartitionReassignments",
                request,
                LIST_REASSIGNMENTS_VERSION,
            )
            .await?;
        check(
            "ListPartitionReassignments",
            "the request",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        let ids = |brokers: &[BrokerId]| brokers.iter().map(|b| b.0).collect::<Vec<_>>();
        let mut out = BTreeMap::new();
        for topic in &response.topics {
            for p in &topic.partitions {
                out.insert(
                    (topic.name.0.to_string(), p.partition_index),
                    Reassignment {
                        replicas: ids(&p.replicas),
                        adding: ids(&p.adding_replicas),
                        removing: ids(&p.removing_replicas),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Starts (or cancels) partition moves. A refusal of the whole request is an error;
    /// each partition's own refusal (an unknown broker, a partition that does not exist,
    /// no move to cancel) is its outcome.
    pub async fn alter_reassignments(
        &mut self,
        targets: &BTreeMap<TopicPartition, ReassignmentTarget>,
    ) -> Result<BTreeMap<TopicPartition, Outcome<()>>, AdminError> {
        if targets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut topics: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for ((topic, partition), target) in targets {
            let replicas = match target {
                ReassignmentTarget::Replicas(replicas) => {
                    Some(replicas.iter().map(|&b| BrokerId(b)).collect())
                }
                ReassignmentTarget::Cancel => None,
            };
            topics.entry(topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*partition)
                    .with_replicas(replicas),
            );
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.broker_timeout_ms())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        ReassignableTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = self
            .send(
                "AlterPartitionReassignments",
                request,
                ALTER_REASSIGNMENTS_VERSION,
            )
            .await?;
        check(
            "AlterPartitionReassignments",
            "the request",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        let mut out = BTreeMap::new();
        for topic in &response.responses {
            for p in &topic.partitions {
                let tp = (topic.name.0.to_string(), p.partition_index);
                let outcome = check(
                    "AlterPartitionReassignments",
                    format!("{}-{}", tp.0, tp.1),
                    p.error_code,
                    p.error_message.as_ref(),
                );
                out.insert(tp, outcome);
            }
        }
        Ok(out)
    }

    /// Elects leaders of `partitions` (every partition for `None`, as Kafka allows).
    /// ELECTION_NOT_NEEDED is [`Election::NotNeeded`], not a refusal; others (an unknown
    /// partition, PREFERRED_LEADER_NOT_AVAILABLE while the preferred replica is out of
    /// the ISR, ELIGIBLE_LEADERS_NOT_AVAILABLE) are the partition's outcome.
    pub async fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, Outcome<Election>>, AdminError> {
        if partitions.is_some_and(|p| p.is_empty()) {
            return Ok(BTreeMap::new());
        }
        let topic_partitions = partitions.map(|partitions| {
            by_topic(partitions.iter().cloned())
                .into_iter()
                .map(|(topic, indexes)| {
                    TopicPartitions::default()
                        .with_topic(topic_name(&topic))
                        .with_partitions(indexes)
                })
                .collect()
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(election.code())
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(self.broker_timeout_ms());
        let response = self
            .send("ElectLeaders", request, ELECT_LEADERS_VERSION)
            .await?;
        check("ElectLeaders", "the request", response.error_code, None)?;
        let mut out = BTreeMap::new();
        for t in &response.replica_election_results {
            for p in &t.partition_result {
                let tp = (t.topic.0.to_string(), p.partition_id);
                let outcome = if p.error_code == 0 {
                    Ok(Election::Elected)
                } else if p.error_code == ResponseError::ElectionNotNeeded.code() {
                    Ok(Election::NotNeeded)
                } else {
                    Err(refused(
                        "ElectLeaders",
                        format!("{}-{}", tp.0, tp.1),
                        p.error_code,
                        p.error_message.as_ref(),
                    ))
                };
                out.insert(tp, outcome);
            }
        }
        Ok(out)
    }

    /// The metadata quorum: its leader, epoch and high watermark, and how far each voter
    /// and observer is behind the leader.
    pub async fn describe_quorum(&mut self) -> Result<QuorumDescription, AdminError> {
        let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(topic_name(METADATA_TOPIC))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let response = self
            .send("DescribeQuorum", request, DESCRIBE_QUORUM_VERSION)
            .await?;
        check(
            "DescribeQuorum",
            "the request",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        let Some(partition) = response.topics.first().and_then(|t| t.partitions.first()) else {
            return Err(refused(
                "DescribeQuorum",
                format!("{METADATA_TOPIC}-0"),
                ResponseError::UnknownTopicOrPartition.code(),
                None,
            )
            .into());
        };
        check(
            "DescribeQuorum",
            format!("{METADATA_TOPIC}-0"),
            partition.error_code,
            partition.error_message.as_ref(),
        )?;
        let leader = partition.leader_id.0;
        let leader_end = partition
            .current_voters
            .iter()
            .find(|v| v.replica_id.0 == leader)
            .map(|v| v.log_end_offset)
            .filter(|o| *o >= 0);
        let replica = |r: &ReplicaState| {
            let log_end_offset = Some(r.log_end_offset).filter(|o| *o >= 0);
            QuorumReplica {
                id: r.replica_id.0,
                log_end_offset,
                lag: leader_end
                    .zip(log_end_offset)
                    .map(|(lead, own)| (lead - own).max(0)),
                last_fetch_ms: Some(r.last_fetch_timestamp).filter(|t| *t >= 0),
                last_caught_up_ms: Some(r.last_caught_up_timestamp).filter(|t| *t >= 0),
            }
        };
        Ok(QuorumDescription {
            leader,
            epoch: partition.leader_epoch,
            high_watermark: partition.high_watermark,
            voters: partition.current_voters.iter().map(replica).collect(),
            observers: partition.observers.iter().map(replica).collect(),
        })
    }

    /// Removes a broker's registration. Kafka refuses a broker that is still alive
    /// (BROKER_ID_NOT_REGISTERED for one it does not know).
    pub async fn unregister_broker(&mut self, broker: i32) -> Result<(), AdminError> {
        let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(broker));
        let response = self
            .send("UnregisterBroker", request, UNREGISTER_BROKER_VERSION)
            .await?;
        Ok(check(
            "UnregisterBroker",
            format!("broker {broker}"),
            response.error_code,
            response.error_message.as_ref(),
        )?)
    }

    /// The broker that coordinates `key` (a group id or a transactional id), as Kafka's
    /// clients find it. While none can (the key's `__consumer_offsets` partition has no
    /// leader yet) the answer is a refusal with COORDINATOR_NOT_AVAILABLE, which is
    /// retriable; an unauthorized key is refused with GROUP_AUTHORIZATION_FAILED or
    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
    pub async fn find_coordinator(
        &mut self,
        kind: CoordinatorType,
        key: &str,
    ) -> Result<Coordinator, AdminError> {
        let request = FindCoordinatorRequest::default()
            .with_key_type(kind.code())
            .with_coordinator_keys(vec![StrBytes::from_string(key.to_string())]);
        let response = self
            .send("FindCoordinator", request, FIND_COORDINATOR_VERSION)
            .await?;
        let Some(answer) = response.coordinators.iter().find(|c| c.key.as_str() == key) else {
            // A broker that leaves the key out of its answer named no coordinator.
            return Err(refused(
                "FindCoordinator",
                kind.describe(key),
                ResponseError::CoordinatorNotAvailable.code(),
                None,
            )
            .into());
        };
        check(
            "FindCoordinator",
            kind.describe(key),
            answer.error_code,
            answer.error_message.as_ref(),
        )?;
        Ok(Coordinator {
            id: answer.node_id.0,
            host: answer.host.to_string(),
            port: answer.port,
        })
    }

    /// Kafka's `timeoutMs` for controller-bound calls: the brokers give up when this
    /// client would.
    fn broker_timeout_ms(&self) -> i32 {
        i32::try_from(self.call_timeout().as_millis()).unwrap_or(i32::MAX)
    }
}

/// Partition indexes grouped by topic, each list sorted and without repeats.
fn by_topic(partitions: impl Iterator<Item = TopicPartition>) -> BTreeMap<String, Vec<i32>> {
    let mut grouped: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        grouped.entry(topic).or_default().insert(partition);
    }
    grouped
        .into_iter()
        .map(|(topic, set)| (topic, set.into_iter().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moves_target_leaves_out_the_replicas_being_removed() {
        let moving = Reassignment {
            replicas: vec![3, 1, 2],
            adding: vec![3],
            removing: vec![2],
        };
        assert_eq!(moving.target(), vec![3, 1]);
    }

    #[test]
    fn partitions_are_grouped_by_topic_once_each() {
        let grouped = by_topic(
            [("b", 1), ("a", 2), ("b", 0), ("b", 1)]
                .into_iter()
                .map(|(t, p)| (t.to_string(), p)),
        );
        assert_eq!(
            grouped,
            BTreeMap::from([("a".to_string(), vec![2]), ("b".to_string(), vec![0, 1])])
        );
    }
}
