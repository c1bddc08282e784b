//! The Kafka calls a scale needs, through strom-client's `Admin`: the cluster's brokers,
//! the assignment and the moves under way (DescribeCluster, Metadata,
//! ListPartitionReassignments), starting moves (AlterPartitionReassignments), the dynamic
//! replication throttles (IncrementalAlterConfigs), preferred leader elections
//! (ElectLeaders, the call the roller makes too) and UnregisterBroker. Behind the
//! `ClusterAdmin` trait, so the reconcile tests put a fake in its place.

use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use strom_client::admin::{self, Admin, ConfigOp};
use strom_client::admin_cluster::ReassignmentTarget;

use super::batch::TopicThrottle;
use super::plan::{Assignment, Leaders, Leadership, Move, TopicPartition};
use crate::access::Brokers;
use crate::roll::kafka::elect_preferred_on;

/// Why a scale's broker call failed: strom-client's error, typed (unreachable, refused by
/// Kafka with its code, timed out).
pub use strom_client::admin::AdminError as KafkaError;

const CLIENT_ID: &str = "strom-operator";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Every call is bounded, so an unresponsive broker delays a reconcile, never blocks it;
/// it is also Kafka's `timeoutMs` for the controller-bound calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

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

async fn connect(bootstrap: &Brokers) -> Result<Admin, KafkaError> {
    Admin::connect_with(
        &bootstrap.addresses,
        &bootstrap.security,
        CLIENT_ID,
        CONNECT_TIMEOUT,
        CALL_TIMEOUT,
    )
    .await
}

pub async fn describe(bootstrap: &Brokers) -> Result<ClusterView, KafkaError> {
    let mut admin = connect(bootstrap).await?;
    let cluster = admin.describe_cluster(true).await?;
    let brokers = cluster
        .brokers
        .into_iter()
        .map(|b| {
            (
                b.id,
                BrokerState {
                    rack: b.rack,
                    fenced: b.fenced,
                },
            )
        })
        .collect();

    // All topics, internal ones too: their replicas move like any other. A topic Kafka
    // will not describe fails the description: a plan without it would be wrong.
    let metadata = admin.describe_partitions(None).await?;
    let mut assignment = Assignment::new();
    let mut leaders = Leaders::new();
    for topic in admin::all_accepted(metadata.topics)?.into_values() {
        for p in topic {
            let tp = TopicPartition::new(&p.topic, p.partition);
            leaders.insert(
                tp.clone(),
                Leadership {
                    leader: p.leader,
                    isr: p.isr,
                },
            );
            assignment.insert(tp, p.replicas);
        }
    }

    let mut in_flight = BTreeSet::new();
    for ((topic, partition), moving) in admin.list_reassignments(None).await? {
        let tp = TopicPartition::new(&topic, partition);
        assignment.insert(tp.clone(), moving.target());
        in_flight.insert(tp);
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
    let asked: Vec<(String, i32)> = partitions
        .iter()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect();
    let mut admin = connect(bootstrap).await?;
    let moved = elect_preferred_on(&mut admin, &asked).await?;
    Ok(moved
        .into_iter()
        .map(|(topic, partition)| TopicPartition { topic, partition })
        .collect())
}

pub async fn reassign(bootstrap: &Brokers, moves: &[Move]) -> Result<(), KafkaError> {
    if moves.is_empty() {
        return Ok(());
    }
    let targets = moves
        .iter()
        .map(|m| {
            (
                (m.partition.topic.clone(), m.partition.partition),
                ReassignmentTarget::Replicas(m.to.clone()),
            )
        })
        .collect();
    let mut admin = connect(bootstrap).await?;
    admin::all_accepted(admin.alter_reassignments(&targets).await?)?;
    Ok(())
}

fn set(key: &str, value: String) -> ConfigOp {
    ConfigOp::Set {
        key: key.to_string(),
        value,
    }
}

fn delete(key: &str) -> ConfigOp {
    ConfigOp::Delete {
        key: key.to_string(),
    }
}

/// The topic configs that throttle a batch's replicas.
pub fn set_topic_throttles(
    topics: &BTreeMap<String, TopicThrottle>,
) -> BTreeMap<String, Vec<ConfigOp>> {
    topics
        .iter()
        .map(|(t, throttle)| {
            (
                t.clone(),
                vec![
                    set(LEADER_REPLICAS, throttle.leader_value()),
                    set(FOLLOWER_REPLICAS, throttle.follower_value()),
                ],
            )
        })
        .collect()
}

/// The topic configs that remove the throttled replica lists.
pub fn clear_topic_throttles(topics: &[String]) -> BTreeMap<String, Vec<ConfigOp>> {
    topics
        .iter()
        .map(|t| {
            (
                t.clone(),
                vec![delete(LEADER_REPLICAS), delete(FOLLOWER_REPLICAS)],
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
    let rate = rate.to_string();
    alter_broker_configs(bootstrap, brokers, || {
        vec![
            set(LEADER_RATE, rate.clone()),
            set(FOLLOWER_RATE, rate.clone()),
        ]
    })
    .await?;
    alter_topic_configs(bootstrap, set_topic_throttles(topics)).await
}

/// Removes the four throttle keys from `brokers` and `topics`.
pub async fn clear_throttles(
    bootstrap: &Brokers,
    brokers: &BTreeSet<i32>,
    topics: &[String],
) -> Result<(), KafkaError> {
    alter_broker_configs(bootstrap, brokers, || {
        vec![delete(LEADER_RATE), delete(FOLLOWER_RATE)]
    })
    .await?;
    alter_topic_configs(bootstrap, clear_topic_throttles(topics)).await
}

/// A broker's own dynamic config is changed on that broker, as Kafka requires (and its
/// admin client does by routing): its address comes from DescribeCluster, so it is the
/// one advertised on the listener the operator uses. A broker that is not registered
/// (or fenced) has nothing to change.
async fn alter_broker_configs(
    bootstrap: &Brokers,
    brokers: &BTreeSet<i32>,
    ops: impl Fn() -> Vec<ConfigOp>,
) -> Result<(), KafkaError> {
    if brokers.is_empty() {
        return Ok(());
    }
    let cluster = connect(bootstrap).await?.describe_cluster(false).await?;
    for b in cluster.brokers.iter().filter(|b| brokers.contains(&b.id)) {
        let broker = Brokers {
            addresses: vec![b.address()],
            security: bootstrap.security.clone(),
        };
        let mut admin = connect(&broker).await?;
        admin::all_accepted(
            admin
                .alter_broker_configs(&BTreeMap::from([(b.id, ops())]))
                .await?,
        )?;
    }
    Ok(())
}

async fn alter_topic_configs(
    bootstrap: &Brokers,
    changes: BTreeMap<String, Vec<ConfigOp>>,
) -> Result<(), KafkaError> {
    if changes.is_empty() {
        return Ok(());
    }
    let outcomes = connect(bootstrap)
        .await?
        .alter_topic_configs(&changes)
        .await?
        .into_iter()
        // A topic deleted since the batch started has no throttle left to remove.
        .filter(|(_, outcome)| {
            !outcome
                .as_ref()
                .is_err_and(|r| r.error() == Some(ResponseError::UnknownTopicOrPartition))
        })
        .collect();
    admin::all_accepted(outcomes)?;
    Ok(())
}

/// Unregisters `broker`; one already unknown counts as done.
pub async fn unregister(bootstrap: &Brokers, broker: i32) -> Result<(), KafkaError> {
    match connect(bootstrap).await?.unregister_broker(broker).await {
        Err(e)
            if e.refused()
                .is_some_and(|r| r.error() == Some(ResponseError::BrokerIdNotRegistered)) =>
        {
            Ok(())
        }
        other => other,
    }
}
