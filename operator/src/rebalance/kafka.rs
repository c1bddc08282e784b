//! The Kafka calls a scale needs, through `strom-client`: the cluster's brokers, the
//! assignment and the moves under way (DescribeCluster, Metadata,
//! ListPartitionReassignments), starting moves (AlterPartitionReassignments), the dynamic
//! replication throttles (IncrementalAlterConfigs), preferred leader elections
//! (ElectLeaders, the request the roller uses too) and UnregisterBroker. Behind the
//! `ClusterAdmin` trait, so the reconcile tests put a fake in its place.

use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, DescribeClusterRequest,
    IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest, MetadataRequest, TopicName,
    UnregisterBrokerRequest,
};
use kafka_protocol::protocol::StrBytes;
use strom_client::admin::{self, AdminError, Refused};
use strom_client::{ClientError, Connection};

use super::batch::TopicThrottle;
use super::plan::{Assignment, Leaders, Leadership, Move, TopicPartition};
use crate::access::Brokers;
use crate::roll::kafka::{elect_preferred_on, ElectError};

const CLIENT_ID: &str = "strom-operator";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Every call is bounded, so an unresponsive broker delays a reconcile, never blocks it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT_MS: i32 = 30_000;

/// Kafka's ConfigResource types and IncrementalAlterConfigs operations.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("no broker reachable among {addresses:?}: {last}")]
    Unreachable {
        addresses: Vec<String>,
        last: String,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Refusal(strom_client::ConnectError),
    #[error("{api} timed out after {0:?}", CALL_TIMEOUT)]
    Timeout { api: &'static str },
    #[error("ElectLeaders failed: {0}")]
    Election(ElectError),
    #[error("{api} refused {what}: {code:?} {message}")]
    Refused {
        api: &'static str,
        what: String,
        code: Option<ResponseError>,
        message: String,
    },
}

impl From<AdminError> for KafkaError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Unreachable { addresses, last } => {
                KafkaError::Unreachable { addresses, last }
            }
            AdminError::Client(e) => KafkaError::Client(e),
            AdminError::Refusal(e) => KafkaError::Refusal(e),
            AdminError::Timeout { api, .. } => KafkaError::Timeout { api },
            AdminError::Refused(r) => KafkaError::from(r),
        }
    }
}

impl From<Refused> for KafkaError {
    fn from(r: Refused) -> Self {
        KafkaError::Refused {
            api: r.api,
            code: r.error(),
            what: r.resource,
            message: r.message.unwrap_or_default(),
        }
    }
}

impl From<ElectError> for KafkaError {
    fn from(e: ElectError) -> Self {
        match e {
            ElectError::Client(e) => KafkaError::Client(e),
            other => KafkaError::Election(other),
        }
    }
}

/// A registered broker as DescribeCluster shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerState {
    pub rack: Option<String>,
    pub fenced: bool,
}

/// What the scale step reads from the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub brokers: BTreeMap<i32, BrokerState>,
    /// Every partition's replicas; a partition being moved counts with its target, so a
    /// plan made now does not undo the move.
    pub assignment: Assignment,
    pub in_flight: BTreeSet<TopicPartition>,
    /// Every partition's leader and ISR as Metadata reports them.
    pub leaders: Leaders,
}

impl ClusterView {
    /// Registered brokers that are not fenced: the ones a leadership can move to.
    pub fn live_brokers(&self) -> BTreeSet<i32> {
        self.brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(&b, _)| b)
            .collect()
    }
}

/// The broker calls of a scale, to the brokers `bootstrap` names.
pub trait ClusterAdmin: Send + Sync {
    fn describe<'a>(
        &'a self,
        bootstrap: &'a Brokers,
    ) -> BoxFuture<'a, Result<ClusterView, KafkaError>>;
    fn reassign<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        moves: &'a [Move],
    ) -> BoxFuture<'a, Result<(), KafkaError>>;
    /// Sets the rate on `brokers` and the replica lists on the topics.
    fn set_throttles<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        rate: u64,
        brokers: &'a BTreeSet<i32>,
        topics: &'a BTreeMap<String, TopicThrottle>,
    ) -> BoxFuture<'a, Result<(), KafkaError>>;
    /// Removes the four throttle keys from `brokers` and `topics`.
    fn clear_throttles<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        brokers: &'a BTreeSet<i32>,
        topics: &'a [String],
    ) -> BoxFuture<'a, Result<(), KafkaError>>;
    /// Unregisters `broker`; one already unknown counts as done.
    fn unregister<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        broker: i32,
    ) -> BoxFuture<'a, Result<(), KafkaError>>;
    /// ElectLeaders PREFERRED for `partitions`; the ones whose leadership moved.
    fn elect_preferred<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<TopicPartition>, KafkaError>>;
}

/// The real thing: a fresh connection per call (reconciles are minutes apart).
#[derive(Debug, Default, Clone, Copy)]
pub struct KafkaAdmin;

impl ClusterAdmin for KafkaAdmin {
    fn describe<'a>(
        &'a self,
        bootstrap: &'a Brokers,
    ) -> BoxFuture<'a, Result<ClusterView, KafkaError>> {
        Box::pin(describe(bootstrap))
    }
    fn reassign<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        moves: &'a [Move],
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        Box::pin(reassign(bootstrap, moves))
    }
    fn set_throttles<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        rate: u64,
        brokers: &'a BTreeSet<i32>,
        topics: &'a BTreeMap<String, TopicThrottle>,
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        Box::pin(set_throttles(bootstrap, rate, brokers, topics))
    }
    fn clear_throttles<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        brokers: &'a BTreeSet<i32>,
        topics: &'a [String],
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        Box::pin(clear_throttles(bootstrap, brokers, topics))
    }
    fn unregister<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        broker: i32,
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        Box::pin(unregister(bootstrap, broker))
    }
    fn elect_preferred<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<TopicPartition>, KafkaError>> {
        Box::pin(elect_preferred(bootstrap, partitions))
    }
}

async fn connect(bootstrap: &Brokers) -> Result<Connection, KafkaError> {
    admin::connect_any_with(
        &bootstrap.addresses,
        &bootstrap.security,
        CLIENT_ID,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(KafkaError::from)
}

async fn send<R: kafka_protocol::protocol::Request>(
    conn: &mut Connection,
    api: &'static str,
    request: R,
    version: i16,
) -> Result<R::Response, KafkaError> {
    admin::send_within(conn, api, request, version, CALL_TIMEOUT)
        .await
        .map_err(KafkaError::from)
}

fn check(
    api: &'static str,
    what: impl Into<String>,
    code: i16,
    message: Option<&StrBytes>,
) -> Result<(), KafkaError> {
    admin::check(api, what, code, message).map_err(KafkaError::from)
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub async fn describe(bootstrap: &Brokers) -> Result<ClusterView, KafkaError> {
    let mut conn = connect(bootstrap).await?;
    let cluster = send(
        &mut conn,
        "DescribeCluster",
        DescribeClusterRequest::default().with_include_fenced_brokers(true),
        2,
    )
    .await?;
    check(
        "DescribeCluster",
        "the cluster",
        cluster.error_code,
        cluster.error_message.as_ref(),
    )?;
    let brokers = cluster
        .brokers
        .iter()
        .map(|b| {
            (
                b.broker_id.0,
                BrokerState {
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                    fenced: b.is_fenced,
                },
            )
        })
        .collect();

    // All topics (null, not the default empty list), internal ones too: their replicas
    // move like any other.
    let metadata = send(
        &mut conn,
        "Metadata",
        MetadataRequest::default().with_topics(None),
        12,
    )
    .await?;
    let mut assignment = Assignment::new();
    let mut leaders = Leaders::new();
    for topic in &metadata.topics {
        let Some(topic_name) = topic.name.as_ref() else {
            continue;
        };
        check("Metadata", topic_name.0.to_string(), topic.error_code, None)?;
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic_name.0.as_str(), p.partition_index);
            leaders.insert(
                tp.clone(),
                Leadership {
                    leader: Some(p.leader_id.0).filter(|&l| l >= 0),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                },
            );
            assignment.insert(tp, p.replica_nodes.iter().map(|b| b.0).collect());
        }
    }

    let ongoing = send(
        &mut conn,
        "ListPartitionReassignments",
        ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(REQUEST_TIMEOUT_MS)
            .with_topics(None),
        0,
    )
    .await?;
    check(
        "ListPartitionReassignments",
        "all partitions",
        ongoing.error_code,
        ongoing.error_message.as_ref(),
    )?;
    let mut in_flight = BTreeSet::new();
    for topic in &ongoing.topics {
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
            let removing: BTreeSet<i32> = p.removing_replicas.iter().map(|b| b.0).collect();
            let target: Vec<i32> = p
                .replicas
                .iter()
                .map(|b| b.0)
                .filter(|b| !removing.contains(b))
                .collect();
            assignment.insert(tp.clone(), target);
            in_flight.insert(tp);
        }
    }
    Ok(ClusterView {
        brokers,
        assignment,
        in_flight,
        leaders,
    })
}

/// ElectLeaders PREFERRED for `partitions`; the ones whose leadership moved.
pub async fn elect_preferred(
    bootstrap: &Brokers,
    partitions: &[TopicPartition],
) -> Result<Vec<TopicPartition>, KafkaError> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let asked = partitions
        .iter()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect();
    let mut conn = connect(bootstrap).await?;
    let moved = tokio::time::timeout(
        CALL_TIMEOUT,
        elect_preferred_on(&mut conn, asked, REQUEST_TIMEOUT_MS),
    )
    .await
    .map_err(|_| KafkaError::Timeout {
        api: "ElectLeaders",
    })??;
    Ok(moved
        .into_iter()
        .map(|(topic, partition)| TopicPartition { topic, partition })
        .collect())
}

pub async fn reassign(bootstrap: &Brokers, moves: &[Move]) -> Result<(), KafkaError> {
    if moves.is_empty() {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for m in moves {
        by_topic
            .entry(m.partition.topic.as_str())
            .or_default()
            .push(
                ReassignablePartition::default()
                    .with_partition_index(m.partition.partition)
                    .with_replicas(Some(m.to.iter().map(|&b| BrokerId(b)).collect())),
            );
    }
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(REQUEST_TIMEOUT_MS)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, partitions)| {
                    ReassignableTopic::default()
                        .with_name(name(t))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let mut conn = connect(bootstrap).await?;
    let response = send(&mut conn, "AlterPartitionReassignments", request, 0).await?;
    check(
        "AlterPartitionReassignments",
        "the request",
        response.error_code,
        response.error_message.as_ref(),
    )?;
    for topic in &response.responses {
        for p in &topic.partitions {
            check(
                "AlterPartitionReassignments",
                format!("{}-{}", topic.name.0, p.partition_index),
                p.error_code,
                p.error_message.as_ref(),
            )?;
        }
    }
    Ok(())
}

fn config(key: &str, value: Option<String>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(StrBytes::from_string(key.to_string()))
        .with_config_operation(if value.is_some() { OP_SET } else { OP_DELETE })
        .with_value(value.map(StrBytes::from_string))
}

fn resource(kind: i8, name: String, configs: Vec<AlterableConfig>) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(StrBytes::from_string(name))
        .with_configs(configs)
}

fn set_broker_throttle(rate: u64, broker: i32) -> AlterConfigsResource {
    resource(
        RESOURCE_BROKER,
        broker.to_string(),
        vec![
            config(LEADER_RATE, Some(rate.to_string())),
            config(FOLLOWER_RATE, Some(rate.to_string())),
        ],
    )
}

fn clear_broker_throttle(broker: i32) -> AlterConfigsResource {
    resource(
        RESOURCE_BROKER,
        broker.to_string(),
        vec![config(LEADER_RATE, None), config(FOLLOWER_RATE, None)],
    )
}

/// The topic resources that throttle a batch's replicas.
pub fn set_topic_throttles(topics: &BTreeMap<String, TopicThrottle>) -> Vec<AlterConfigsResource> {
    topics
        .iter()
        .map(|(t, throttle)| {
            resource(
                RESOURCE_TOPIC,
                t.clone(),
                vec![
                    config(LEADER_REPLICAS, Some(throttle.leader_value())),
                    config(FOLLOWER_REPLICAS, Some(throttle.follower_value())),
                ],
            )
        })
        .collect()
}

/// The topic resources that remove the throttled replica lists.
pub fn clear_topic_throttles(topics: &[String]) -> Vec<AlterConfigsResource> {
    topics
        .iter()
        .map(|t| {
            resource(
                RESOURCE_TOPIC,
                t.clone(),
                vec![
                    config(LEADER_REPLICAS, None),
                    config(FOLLOWER_REPLICAS, None),
                ],
            )
        })
        .collect()
}

/// Sets the replication rate on `brokers` and the replica lists on `topics`.
pub async fn set_throttles(
    bootstrap: &Brokers,
    rate: u64,
    brokers: &BTreeSet<i32>,
    topics: &BTreeMap<String, TopicThrottle>,
) -> Result<(), KafkaError> {
    alter_broker_configs(bootstrap, brokers, |b| set_broker_throttle(rate, b)).await?;
    alter_configs(bootstrap, set_topic_throttles(topics)).await
}

/// Removes the four throttle keys from `brokers` and `topics`.
pub async fn clear_throttles(
    bootstrap: &Brokers,
    brokers: &BTreeSet<i32>,
    topics: &[String],
) -> Result<(), KafkaError> {
    alter_broker_configs(bootstrap, brokers, clear_broker_throttle).await?;
    alter_configs(bootstrap, clear_topic_throttles(topics)).await
}

/// A broker's own dynamic config is changed on that broker, as Kafka requires (and its
/// admin client does by routing): its address comes from DescribeCluster, so it is the
/// one advertised on the listener the operator uses. A broker that is not registered
/// has nothing to change.
async fn alter_broker_configs(
    bootstrap: &Brokers,
    brokers: &BTreeSet<i32>,
    resource_of: impl Fn(i32) -> AlterConfigsResource,
) -> Result<(), KafkaError> {
    if brokers.is_empty() {
        return Ok(());
    }
    let mut conn = connect(bootstrap).await?;
    let cluster = send(
        &mut conn,
        "DescribeCluster",
        DescribeClusterRequest::default(),
        0,
    )
    .await?;
    for b in cluster
        .brokers
        .iter()
        .filter(|b| brokers.contains(&b.broker_id.0))
    {
        let address = format!("{}:{}", b.host, b.port);
        let broker = Brokers {
            addresses: vec![address],
            security: bootstrap.security.clone(),
        };
        alter_configs(&broker, vec![resource_of(b.broker_id.0)]).await?;
    }
    Ok(())
}

async fn alter_configs(
    bootstrap: &Brokers,
    resources: Vec<AlterConfigsResource>,
) -> Result<(), KafkaError> {
    if resources.is_empty() {
        return Ok(());
    }
    let mut conn = connect(bootstrap).await?;
    let response = send(
        &mut conn,
        "IncrementalAlterConfigs",
        IncrementalAlterConfigsRequest::default().with_resources(resources),
        1,
    )
    .await?;
    for r in &response.responses {
        // A topic deleted since the batch started has no throttle left to remove.
        if r.resource_type == RESOURCE_TOPIC
            && r.error_code == ResponseError::UnknownTopicOrPartition.code()
        {
            continue;
        }
        check(
            "IncrementalAlterConfigs",
            format!("resource {} {}", r.resource_type, r.resource_name),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    Ok(())
}

pub async fn unregister(bootstrap: &Brokers, broker: i32) -> Result<(), KafkaError> {
    let mut conn = connect(bootstrap).await?;
    let response = send(
        &mut conn,
        "UnregisterBroker",
        UnregisterBrokerRequest::default().with_broker_id(BrokerId(broker)),
        0,
    )
    .await?;
    if response.error_code == ResponseError::BrokerIdNotRegistered.code() {
        return Ok(());
    }
    check(
        "UnregisterBroker",
        format!("broker {broker}"),
        response.error_code,
        response.error_message.as_ref(),
    )
}
