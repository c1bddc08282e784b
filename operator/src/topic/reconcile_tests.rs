//! Topic reconcile tests against the verifying fake API (`crate::fixtures`) and a fake
//! `TopicAdmin` holding the brokers' topics in memory: each asserts the writes the
//! reconciler makes, the broker calls and the status it leaves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kafka_protocol::ResponseError;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{json, Value};
use strom_client::admin::{AdminError, ConfigOp, Refused};

use std::collections::BTreeSet;

use super::kafka::{KafkaTopicAdmin, TopicAdmin};
use super::plan::{Observed, Step};
use super::reconcile::{reconcile, Context};
use super::status::FINALIZER;
use crate::access::Brokers;
use crate::crd::{KafkaCluster, KafkaTopic};
use crate::fixtures::{self, Call, FakeApi};
use crate::metrics::Metrics;
use crate::rebalance::batch::TopicThrottle;
use crate::rebalance::kafka::{BrokerState, ClusterAdmin, ClusterView, KafkaError};
use crate::rebalance::plan::{Move, TopicPartition};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;

const NS: &str = "/apis/kafka.strom.dev/v1alpha1/namespaces/kafka";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/kafka/events";

fn topic_path(name: &str) -> String {
    format!("{NS}/kafkatopics/{name}")
}

fn cluster_path() -> String {
    format!("{NS}/kafkaclusters/my-cluster")
}

/// The brokers' topics, and every call made to them.
#[derive(Default)]
struct FakeBrokers {
    topics: Mutex<BTreeMap<String, Observed>>,
    calls: Mutex<Vec<String>>,
    /// Kafka refuses every step with this, while set.
    refuse: Mutex<Option<Refused>>,
    unreachable: Mutex<bool>,
}

impl FakeBrokers {
    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn put(&self, name: &str, partitions: i32, replicas: i32, config: &[(&str, &str)]) {
        self.topics.lock().unwrap().insert(
            name.into(),
            Observed {
                topic_id: format!("id-{name}"),
                partitions,
                replicas,
                config: config
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
    }

    fn get(&self, name: &str) -> Option<Observed> {
        self.topics.lock().unwrap().get(name).cloned()
    }

    fn check(&self) -> Result<(), AdminError> {
        if *self.unreachable.lock().unwrap() {
            return Err(AdminError::Unreachable {
                addresses: vec!["b:9092".into()],
                last: "connection refused".into(),
            });
        }
        Ok(())
    }
}

impl TopicAdmin for FakeBrokers {
    fn observe<'a>(
        &'a self,
        _: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Option<Observed>, AdminError>> {
        self.note(format!("observe {topic}"));
        let answer = self.check().map(|()| self.get(topic));
        Box::pin(async move { answer })
    }

    fn apply<'a>(
        &'a self,
        _: &'a Brokers,
        topic: &'a str,
        steps: &'a [Step],
    ) -> BoxFuture<'a, Result<Option<String>, AdminError>> {
        let answer = (|| {
            self.check()?;
            let mut created = None;
            for step in steps {
                self.note(format!("{topic}: {step:?}"));
                if let Some(refused) = self.refuse.lock().unwrap().clone() {
                    return Err(AdminError::Refused(refused));
                }
                let mut topics = self.topics.lock().unwrap();
                match step {
                    Step::Create {
                        partitions,
                        replicas,
                        config,
                    } => {
                        let id = format!("id-{topic}");
                        topics.insert(
                            topic.into(),
                            Observed {
                                topic_id: id.clone(),
                                partitions: *partitions,
                                replicas: *replicas,
                                config: config.clone(),
                            },
                        );
                        created = Some(id);
                    }
                    Step::AddPartitions { total } => {
                        if let Some(t) = topics.get_mut(topic) {
                            t.partitions = *total;
                        }
                    }
                    Step::AlterConfig(ops) => {
                        if let Some(t) = topics.get_mut(topic) {
                            for op in ops {
                                match op {
                                    ConfigOp::Set { key, value } => {
                                        t.config.insert(key.clone(), value.clone());
                                    }
                                    ConfigOp::Delete { key } => {
                                        t.config.remove(key);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Ok(created)
        })();
        Box::pin(async move { answer })
    }

    fn delete<'a>(
        &'a self,
        _: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        self.note(format!("delete {topic}"));
        let answer = self.check().and_then(|()| {
            if let Some(refused) = self.refuse.lock().unwrap().clone() {
                return Err(AdminError::Refused(refused));
            }
            self.topics.lock().unwrap().remove(topic);
            Ok(())
        });
        Box::pin(async move { answer })
    }
}

/// The scale step's calls as the replication-factor change uses them: the assignment
/// and live brokers it reads, the moves it starts (which stay in flight until `finish`).
#[derive(Default)]
struct FakeReassigner {
    view: Mutex<ClusterView>,
    started: Mutex<Vec<Move>>,
}

impl FakeReassigner {
    fn finish(&self) {
        let mut view = self.view.lock().unwrap();
        view.in_flight.clear();
    }
}

impl ClusterAdmin for FakeReassigner {
    fn describe<'a>(&'a self, _: &'a Brokers) -> BoxFuture<'a, Result<ClusterView, KafkaError>> {
        let view = self.view.lock().unwrap().clone();
        Box::pin(async move { Ok(view) })
    }
    fn reassign<'a>(
        &'a self,
        _: &'a Brokers,
        moves: &'a [Move],
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        let mut view = self.view.lock().unwrap();
        for m in moves {
            view.assignment.insert(m.partition.clone(), m.to.clone());
            view.in_flight.insert(m.partition.clone());
        }
        self.started.lock().unwrap().extend(moves.iter().cloned());
        Box::pin(async { Ok(()) })
    }
    fn set_throttles<'a>(
        &'a self,
        _: &'a Brokers,
        _: u64,
        _: &'a BTreeSet<i32>,
        _: &'a BTreeMap<String, TopicThrottle>,
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        Box::pin(async { Ok(()) })
    }
    fn clear_throttles<'a>(
        &'a self,
        _: &'a Brokers,
        _: &'a BTreeSet<i32>,
        _: &'a [String],
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        Box::pin(async { Ok(()) })
    }
    fn unregister<'a>(&'a self, _: &'a Brokers, _: i32) -> BoxFuture<'a, Result<(), KafkaError>> {
        Box::pin(async { Ok(()) })
    }
    fn elect_preferred<'a>(
        &'a self,
        _: &'a Brokers,
        _: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<TopicPartition>, KafkaError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

struct Harness {
    fake: FakeApi,
    ctx: Arc<Context>,
    brokers: Arc<FakeBrokers>,
    reassigner: Arc<FakeReassigner>,
}

/// A reconcile context on the fake API server with a fixed clock; the caller puts its
/// brokers in.
fn fake_context() -> (Context, FakeApi) {
    let (client, fake) = FakeApi::start();
    let reporter = Reporter {
        controller: "strom-operator".into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let mut ctx = Context::new(client, Arc::new(Metrics::new()), recorder);
    ctx.clock = || Timestamp::from_second(1_000).expect("time");
    (ctx, fake)
}

impl Harness {
    fn new() -> Harness {
        let (mut ctx, fake) = fake_context();
        let brokers = Arc::new(FakeBrokers::default());
        ctx.admin = brokers.clone();
        let reassigner = Arc::new(FakeReassigner::default());
        ctx.kafka = reassigner.clone();
        let cluster = fixtures::cluster(json!({
            "replicas": 3,
            "listeners": [{"name": "plain", "port": 9092}],
        }));
        fake.insert(
            &cluster_path(),
            serde_json::to_value(&cluster).expect("cluster serializes"),
        );
        Harness {
            fake,
            ctx: Arc::new(ctx),
            brokers,
            reassigner,
        }
    }

    /// Stores a KafkaTopic `name` of `my-cluster` created at `created` (seconds).
    fn add_topic(&self, name: &str, created: i64, spec: Value) {
        let object = json!({
            "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaTopic",
            "metadata": {
                "name": name, "namespace": "kafka", "uid": format!("uid-{name}"),
                "generation": 1, "resourceVersion": "1",
                "labels": {"kafka.strom.dev/cluster": "my-cluster"},
                "creationTimestamp": Timestamp::from_second(created).expect("time").to_string(),
            },
            "spec": spec,
        });
        self.fake.insert(&topic_path(name), object);
    }

    fn topic(&self, name: &str) -> crate::crd::KafkaTopic {
        serde_json::from_value(self.fake.get(&topic_path(name)).expect("topic stored"))
            .expect("topic parses")
    }

    /// One reconcile of the stored topic: what it asked to come back after, and its writes.
    async fn reconcile(&self, name: &str) -> (Action, Vec<String>) {
        let action = reconcile(Arc::new(self.topic(name)), self.ctx.clone())
            .await
            .expect("reconcile succeeds");
        let writes = self
            .fake
            .take_calls()
            .into_iter()
            .filter(Call::is_write)
            .map(|c| {
                if c.path.starts_with(EVENTS) {
                    "EVENT".to_string()
                } else {
                    c.line()
                }
            })
            .collect();
        (action, writes)
    }

    fn status(&self, name: &str) -> Value {
        self.fake.get(&topic_path(name)).expect("topic stored")["status"].clone()
    }

    fn ready(&self, name: &str) -> (String, String, String) {
        let status = self.status(name);
        let ready = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
            .unwrap_or(Value::Null);
        (
            ready["status"].as_str().unwrap_or("").to_string(),
            ready["reason"].as_str().unwrap_or("").to_string(),
            ready["message"].as_str().unwrap_or("").to_string(),
        )
    }

    fn finalizers(&self, name: &str) -> Value {
        self.fake.get(&topic_path(name)).expect("topic stored")["metadata"]["finalizers"].clone()
    }

    fn edit_spec(&self, name: &str, change: impl FnOnce(&mut Value)) {
        self.fake.edit(&topic_path(name), |t| {
            change(&mut t["spec"]);
            let generation = t["metadata"]["generation"].as_i64().unwrap_or(1);
            t["metadata"]["generation"] = json!(generation + 1);
        });
    }
}

fn patch(path: &str) -> String {
    format!("PATCH {path}")
}

fn status_patch(name: &str) -> String {
    format!("PATCH {}/status", topic_path(name))
}

#[tokio::test]
async fn creates_the_topic_with_a_finalizer_then_goes_quiet() {
    let h = Harness::new();
    h.add_topic(
        "orders",
        100,
        json!({"partitions": 6, "replicas": 3, "config": {"retention.ms": 604800000, "cleanup.policy": "compact"}}),
    );

    let (action, writes) = h.reconcile("orders").await;
    assert_eq!(
        writes,
        vec![
            patch(&topic_path("orders")),
            "EVENT".into(),
            status_patch("orders"),
            "EVENT".into(),
        ]
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(120)));
    assert_eq!(h.finalizers("orders"), json!([FINALIZER]));
    let created = h.brokers.get("orders").expect("topic created");
    assert_eq!((created.partitions, created.replicas), (6, 3));
    assert_eq!(
        created.config,
        BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("retention.ms".to_string(), "604800000".to_string()),
        ])
    );
    let status = h.status("orders");
    assert_eq!(status["topicName"], "orders");
    assert_eq!(status["topicId"], "id-orders");
    assert_eq!(status["partitions"], 6);
    assert_eq!(status["replicas"], 3);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(h.ready("orders").0, "True");

    // In sync: the brokers are asked, nothing is written.
    h.brokers.take_calls();
    let (_, writes) = h.reconcile("orders").await;
    assert_eq!(writes, Vec::<String>::new());
    assert_eq!(h.brokers.take_calls(), vec!["observe orders"]);
}

#[tokio::test]
async fn a_kafka_name_differs_from_the_resource_name() {
    let h = Harness::new();
    h.add_topic(
        "orders-v2",
        100,
        json!({"topicName": "Orders_V2", "partitions": 1, "replicas": 1}),
    );
    h.reconcile("orders-v2").await;
    assert!(h.brokers.get("Orders_V2").is_some());
    assert_eq!(h.status("orders-v2")["topicName"], "Orders_V2");
}

#[tokio::test]
async fn drift_is_reverted_and_partitions_grow() {
    let h = Harness::new();
    h.brokers.put(
        "orders",
        3,
        3,
        &[("retention.ms", "1"), ("max.message.bytes", "10")],
    );
    h.add_topic(
        "orders",
        100,
        json!({"partitions": 6, "replicas": 3, "config": {"retention.ms": 1000}}),
    );
    h.reconcile("orders").await;
    assert_eq!(
        h.brokers.take_calls(),
        vec![
            "observe orders".to_string(),
            "orders: AddPartitions { total: 6 }".into(),
            format!(
                "orders: {:?}",
                Step::AlterConfig(vec![
                    ConfigOp::Delete {
                        key: "max.message.bytes".into()
                    },
                    ConfigOp::Set {
                        key: "retention.ms".into(),
                        value: "1000".into()
                    },
                ])
            ),
        ]
    );
    let topic = h.brokers.get("orders").expect("topic");
    assert_eq!(topic.partitions, 6);
    assert_eq!(
        topic.config,
        BTreeMap::from([("retention.ms".to_string(), "1000".to_string())])
    );
    assert_eq!(h.status("orders")["partitions"], 6);
    assert_eq!(h.ready("orders").0, "True");
}

#[tokio::test]
async fn a_partition_decrease_is_reported_not_attempted() {
    let h = Harness::new();
    h.brokers.put("orders", 6, 3, &[]);
    h.add_topic(
        "orders",
        100,
        json!({"partitions": 3, "replicas": 3, "config": {"retention.ms": 5}}),
    );
    let (action, _) = h.reconcile("orders").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(120)));
    let (ready, reason, message) = h.ready("orders");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "PartitionDecrease")
    );
    assert!(message.contains("has 6 partitions"), "{message}");
    // The config still follows the spec; the brokers keep 6 partitions.
    let topic = h.brokers.get("orders").expect("topic");
    assert_eq!(topic.partitions, 6);
    assert_eq!(
        topic.config.get("retention.ms").map(String::as_str),
        Some("5")
    );
    assert_eq!(h.status("orders")["partitions"], 6);

    // Fixing the spec makes it Ready.
    h.edit_spec("orders", |s| s["partitions"] = json!(6));
    h.reconcile("orders").await;
    assert_eq!(h.ready("orders").0, "True");
    assert_eq!(h.status("orders")["observedGeneration"], 2);
}

fn live_brokers(brokers: &[i32]) -> BTreeMap<i32, BrokerState> {
    brokers
        .iter()
        .map(|&b| {
            (
                b,
                BrokerState {
                    rack: None,
                    fenced: false,
                },
            )
        })
        .collect()
}

#[tokio::test]
async fn a_replication_factor_change_reassigns_and_waits_for_it() {
    let h = Harness::new();
    h.brokers.put("orders", 2, 1, &[]);
    {
        let mut view = h.reassigner.view.lock().unwrap();
        view.brokers = live_brokers(&[0, 1, 2]);
        view.assignment
            .insert(TopicPartition::new("orders", 0), vec![0]);
        view.assignment
            .insert(TopicPartition::new("orders", 1), vec![1]);
    }
    h.add_topic("orders", 100, json!({"partitions": 2, "replicas": 2}));

    let (action, _) = h.reconcile("orders").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
    let started: Vec<(i32, Vec<i32>)> = h
        .reassigner
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.partition.partition, m.to.clone()))
        .collect();
    assert_eq!(started, vec![(0, vec![0, 2]), (1, vec![1, 0])]);
    let (ready, reason, message) = h.ready("orders");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ReplicationFactorChanging")
    );
    assert!(message.contains("moving 2 partitions"), "{message}");

    // While it runs nothing new starts.
    h.reconcile("orders").await;
    assert_eq!(h.reassigner.started.lock().unwrap().len(), 2);
    assert!(h.ready("orders").2.contains("being reassigned"));

    // Done: the brokers report RF 2.
    h.reassigner.finish();
    h.brokers.put("orders", 2, 2, &[]);
    let (action, _) = h.reconcile("orders").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(120)));
    assert_eq!(h.ready("orders").0, "True");
    assert_eq!(h.status("orders")["replicas"], 2);
}

#[tokio::test]
async fn a_replication_factor_above_the_live_brokers_is_reported_and_backs_off() {
    let h = Harness::new();
    h.brokers.put("orders", 1, 1, &[]);
    {
        let mut view = h.reassigner.view.lock().unwrap();
        view.brokers = live_brokers(&[0, 1]);
        view.assignment
            .insert(TopicPartition::new("orders", 0), vec![0]);
    }
    h.add_topic("orders", 100, json!({"partitions": 1, "replicas": 3}));
    let (first, _) = h.reconcile("orders").await;
    let (second, _) = h.reconcile("orders").await;
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(Duration::from_secs(10)));
    let (ready, reason, message) = h.ready("orders");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ReplicationFactorChange")
    );
    assert!(message.contains("2 brokers are live"), "{message}");
    assert!(h.reassigner.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn without_a_cluster_nothing_is_touched() {
    let h = Harness::new();
    h.add_topic("orders", 100, json!({"partitions": 1, "replicas": 1}));
    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["labels"] = json!({});
    });
    let (action, writes) = h.reconcile("orders").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    assert_eq!(writes, vec![status_patch("orders"), "EVENT".into()]);
    assert_eq!(h.ready("orders").1, "ClusterLabelMissing");

    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["labels"] = json!({"kafka.strom.dev/cluster": "nope"});
    });
    h.reconcile("orders").await;
    let (ready, reason, message) = h.ready("orders");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ClusterNotFound")
    );
    assert_eq!(message, "KafkaCluster nope not found in namespace kafka");
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.finalizers("orders").is_null());
}

#[tokio::test]
async fn the_older_of_two_resources_for_one_topic_wins() {
    let h = Harness::new();
    h.add_topic("orders", 200, json!({"partitions": 1, "replicas": 1}));
    h.add_topic(
        "legacy-orders",
        100,
        json!({"topicName": "orders", "partitions": 2, "replicas": 1}),
    );

    let (action, writes) = h.reconcile("orders").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    assert_eq!(writes, vec![status_patch("orders"), "EVENT".into()]);
    let (ready, reason, message) = h.ready("orders");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ResourceConflict")
    );
    assert!(message.contains("legacy-orders"), "{message}");
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.finalizers("orders").is_null());

    h.reconcile("legacy-orders").await;
    assert_eq!(h.brokers.get("orders").expect("topic").partitions, 2);
    assert_eq!(h.ready("legacy-orders").0, "True");

    // Deleting the loser leaves the topic to the winner.
    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        t["metadata"]["finalizers"] = json!([FINALIZER]);
    });
    h.brokers.take_calls();
    h.reconcile("orders").await;
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.brokers.get("orders").is_some());
    assert_eq!(h.finalizers("orders"), json!([]));
}

#[tokio::test]
async fn a_refusal_is_reported_with_kafkas_message_and_backs_off() {
    let h = Harness::new();
    h.add_topic("orders", 100, json!({"partitions": 1, "replicas": 1}));
    *h.brokers.refuse.lock().unwrap() = Some(Refused {
        api: "CreateTopics",
        resource: "topic orders".into(),
        code: ResponseError::InvalidReplicationFactor.code(),
        message: Some("Unable to replicate the partition 1 time(s)".into()),
    });

    let (first, writes) = h.reconcile("orders").await;
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    assert_eq!(
        writes,
        vec![
            patch(&topic_path("orders")),
            status_patch("orders"),
            "EVENT".into()
        ]
    );
    let (ready, reason, message) = h.ready("orders");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "InvalidReplicationFactor")
    );
    assert!(
        message.contains("Unable to replicate the partition"),
        "{message}"
    );

    // Again: nothing written, a longer wait.
    let (second, writes) = h.reconcile("orders").await;
    assert_eq!(second, Action::requeue(Duration::from_secs(10)));
    assert_eq!(writes, Vec::<String>::new());

    // Another topic of the same cluster is not held up.
    *h.brokers.refuse.lock().unwrap() = None;
    h.add_topic("payments", 100, json!({"partitions": 1, "replicas": 1}));
    h.reconcile("payments").await;
    assert_eq!(h.ready("payments").0, "True");

    // Once Kafka accepts, the back-off resets.
    let (action, _) = h.reconcile("orders").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(120)));
    assert_eq!(h.ready("orders").0, "True");
}

#[tokio::test]
async fn a_topic_created_a_moment_ago_and_not_yet_in_the_metadata_is_not_an_error() {
    let h = Harness::new();
    h.add_topic("orders", 100, json!({"partitions": 1, "replicas": 1}));
    h.reconcile("orders").await;
    let status = h.status("orders");
    *h.brokers.refuse.lock().unwrap() = Some(Refused {
        api: "CreateTopics",
        resource: "topic orders".into(),
        code: ResponseError::TopicAlreadyExists.code(),
        message: Some("Topic 'orders' already exists.".into()),
    });
    h.brokers.topics.lock().unwrap().clear();
    let (action, writes) = h.reconcile("orders").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    assert_eq!(writes, Vec::<String>::new());
    assert_eq!(h.status("orders"), status);
}

#[tokio::test]
async fn an_internal_topic_is_refused_untouched() {
    let h = Harness::new();
    h.add_topic(
        "offsets",
        100,
        json!({"topicName": "__consumer_offsets", "partitions": 1, "replicas": 1}),
    );
    let (action, _) = h.reconcile("offsets").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(h.ready("offsets").1, "InternalTopic");
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.finalizers("offsets").is_null());
}

#[tokio::test]
async fn unreachable_brokers_are_reported() {
    let h = Harness::new();
    h.add_topic("orders", 100, json!({"partitions": 1, "replicas": 1}));
    *h.brokers.unreachable.lock().unwrap() = true;
    let (action, _) = h.reconcile("orders").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    let (ready, reason, message) = h.ready("orders");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "BrokersUnreachable")
    );
    assert!(message.contains("connection refused"), "{message}");
}

#[tokio::test]
async fn a_bad_config_value_is_refused_before_the_brokers_are_asked() {
    let h = Harness::new();
    h.add_topic(
        "orders",
        100,
        json!({"partitions": 1, "replicas": 1, "config": {"retention.ms": [1]}}),
    );
    let (action, _) = h.reconcile("orders").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(h.ready("orders").1, "InvalidConfigValue");
    assert!(h.brokers.take_calls().is_empty());
}

#[tokio::test]
async fn deleting_the_resource_deletes_the_topic() {
    let h = Harness::new();
    h.add_topic("orders", 100, json!({"partitions": 1, "replicas": 1}));
    h.reconcile("orders").await;
    assert!(h.brokers.get("orders").is_some());

    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    });
    *h.brokers.unreachable.lock().unwrap() = true;
    // The brokers cannot be reached: the finalizer holds, the error backs off.
    assert!(reconcile(Arc::new(h.topic("orders")), h.ctx.clone())
        .await
        .is_err());
    assert_eq!(h.finalizers("orders"), json!([FINALIZER]));

    *h.brokers.unreachable.lock().unwrap() = false;
    h.brokers.take_calls();
    let (action, writes) = h.reconcile("orders").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(h.brokers.take_calls(), vec!["delete orders"]);
    assert!(h.brokers.get("orders").is_none());
    assert!(writes.contains(&patch(&topic_path("orders"))), "{writes:?}");
    assert_eq!(h.finalizers("orders"), json!([]));
}

#[tokio::test]
async fn brokers_that_forbid_deletion_keep_the_topic_and_release_the_resource() {
    let h = Harness::new();
    h.add_topic("orders", 100, json!({"partitions": 1, "replicas": 1}));
    h.reconcile("orders").await;
    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    });
    // Kafka's answer with delete.topic.enable=false.
    *h.brokers.refuse.lock().unwrap() = Some(Refused {
        api: "DeleteTopics",
        resource: "topic orders".into(),
        code: ResponseError::TopicDeletionDisabled.code(),
        message: Some("Topic deletion is disabled.".into()),
    });
    h.brokers.take_calls();
    let (action, _) = h.reconcile("orders").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(h.brokers.take_calls(), vec!["delete orders"]);
    assert!(h.brokers.get("orders").is_some(), "the topic stays");
    assert_eq!(h.finalizers("orders"), json!([]), "the resource may go");
}

#[tokio::test]
async fn an_unmanaged_topic_is_left_alone_even_when_deleted() {
    let h = Harness::new();
    h.brokers.put("orders", 3, 1, &[("retention.ms", "1")]);
    h.add_topic("orders", 100, json!({"partitions": 6, "replicas": 1}));
    h.reconcile("orders").await;
    assert_eq!(h.finalizers("orders"), json!([FINALIZER]));
    h.brokers.take_calls();

    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["annotations"] = json!({"kafka.strom.dev/managed": "false"});
    });
    let (action, _) = h.reconcile("orders").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(h.finalizers("orders"), json!([]));
    assert_eq!(h.ready("orders").1, "Unmanaged");
    assert!(h.brokers.take_calls().is_empty());

    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    });
    h.reconcile("orders").await;
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.brokers.get("orders").is_some());
}

/// The real broker calls (pooled, as the operator makes them) against a strom-broker on
/// loopback, whatever bootstrap list the reconcile computed from the cluster (pod DNS
/// names do not resolve here).
struct Loopback {
    brokers: Brokers,
    /// `None`: a fresh connection per call, as the operator did before it pooled them.
    pool: Option<KafkaTopicAdmin>,
}

impl Loopback {
    fn new(address: &str) -> Loopback {
        Loopback {
            brokers: Brokers::plaintext(vec![address.to_string()]),
            pool: Some(KafkaTopicAdmin::default()),
        }
    }
}

impl TopicAdmin for Loopback {
    fn observe<'a>(
        &'a self,
        _: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Option<Observed>, AdminError>> {
        match &self.pool {
            Some(pool) => pool.observe(&self.brokers, topic),
            None => Box::pin(super::kafka::observe(&self.brokers, topic)),
        }
    }
    fn apply<'a>(
        &'a self,
        _: &'a Brokers,
        topic: &'a str,
        steps: &'a [Step],
    ) -> BoxFuture<'a, Result<Option<String>, AdminError>> {
        match &self.pool {
            Some(pool) => pool.apply(&self.brokers, topic, steps),
            None => Box::pin(super::kafka::apply(&self.brokers, topic, steps)),
        }
    }
    fn delete<'a>(
        &'a self,
        _: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        match &self.pool {
            Some(pool) => pool.delete(&self.brokers, topic),
            None => Box::pin(super::kafka::delete(&self.brokers, topic)),
        }
    }
}

/// Reconciles until `done` holds for the stored topic, as the controller's requeues would.
async fn reconcile_until(h: &Harness, name: &str, what: &str, done: impl Fn(&Harness) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let _ = reconcile(Arc::new(h.topic(name)), h.ctx.clone()).await;
        if done(h) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: status {}",
            h.status(name)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_against_a_real_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) =
        strom_broker::harness::start_plaintext(dir.path(), Duration::from_secs(60))
            .await
            .expect("broker starts");

    let (mut ctx, fake) = fake_context();
    ctx.admin = Arc::new(Loopback::new(&address));
    let cluster = fixtures::cluster(json!({"replicas": 1}));
    fake.insert(
        &cluster_path(),
        serde_json::to_value(&cluster).expect("cluster serializes"),
    );
    let h = Harness {
        fake,
        ctx: Arc::new(ctx),
        brokers: Arc::new(FakeBrokers::default()),
        reassigner: Arc::new(FakeReassigner::default()),
    };
    let bootstrap = Brokers::plaintext(vec![address.clone()]);

    // Created with its config; Ready once the broker is up and has taken it.
    h.add_topic(
        "orders",
        100,
        json!({"partitions": 2, "replicas": 1, "config": {"retention.ms": 3600000}}),
    );
    reconcile_until(&h, "orders", "created", |h| h.ready("orders").0 == "True").await;
    assert_eq!(h.status("orders")["partitions"], 2);
    assert_eq!(
        h.status("orders")["topicId"].as_str().map(str::len),
        Some(22)
    );

    // Drift made on the broker is reverted; a spec change grows partitions.
    let mut admin = strom_client::admin::Admin::connect(
        &bootstrap.addresses,
        "test",
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
    .await
    .expect("connect");
    let drift = admin
        .alter_topic_configs(&BTreeMap::from([(
            "orders".to_string(),
            vec![ConfigOp::Set {
                key: "max.message.bytes".into(),
                value: "2048".into(),
            }],
        )]))
        .await
        .expect("IncrementalAlterConfigs");
    assert_eq!(drift["orders"], Ok(()));
    h.edit_spec("orders", |s| s["partitions"] = json!(4));
    reconcile_until(&h, "orders", "drift reverted and grown", |h| {
        h.status("orders")["partitions"] == 4 && h.ready("orders").0 == "True"
    })
    .await;
    let configs = admin
        .describe_topic_configs(&["orders".to_string()])
        .await
        .expect("DescribeConfigs");
    assert_eq!(
        configs["orders"],
        Ok(BTreeMap::from([(
            "retention.ms".to_string(),
            "3600000".to_string()
        )]))
    );

    // A config the broker refuses: Ready=False with the broker's message.
    h.edit_spec("orders", |s| s["config"]["retention.mss"] = json!(1));
    let (action, _) = h.reconcile("orders").await;
    assert_ne!(action, Action::requeue(Duration::from_secs(120)));
    let (ready, reason, message) = h.ready("orders");
    assert_eq!(ready, "False");
    assert!(
        !reason.is_empty() && reason != "BrokersUnreachable",
        "{reason}: {message}"
    );
    assert!(message.contains("Kafka refused"), "{message}");
    eprintln!("REFUSAL {reason}: {message}");
    h.edit_spec("orders", |s| {
        s["config"]
            .as_object_mut()
            .expect("config")
            .remove("retention.mss");
    });
    reconcile_until(&h, "orders", "ready again", |h| {
        h.ready("orders").0 == "True"
    })
    .await;

    // Deleting the resource deletes the topic.
    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    });
    h.reconcile("orders").await;
    assert_eq!(h.finalizers("orders"), json!([]));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while super::kafka::observe(&bootstrap, "orders")
        .await
        .expect("observe")
        .is_some()
    {
        assert!(std::time::Instant::now() < deadline, "orders never deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    drop(admin);
    running.shutdown().await.expect("shutdown");
}

/// The controller's stores, filled here as its watches would fill them.
struct Watches {
    clusters: Writer<KafkaCluster>,
    topics: Writer<KafkaTopic>,
}

impl Watches {
    /// Empty stores, put in the harness's index.
    fn attach(h: &Harness) -> Watches {
        let (clusters, cluster_writer) = reflector::store();
        let (topics, topic_writer) = reflector::store();
        h.ctx.index.add_clusters(clusters);
        h.ctx.index.add_topics(topics);
        Watches {
            clusters: cluster_writer,
            topics: topic_writer,
        }
    }

    /// The cluster and the named topics as the API has them now.
    fn sync(&mut self, h: &Harness, topics: &[String]) {
        if let Some(cluster) = h.fake.get(&cluster_path()) {
            let cluster: KafkaCluster = serde_json::from_value(cluster).expect("cluster parses");
            self.clusters
                .apply_watcher_event(&watcher::Event::Apply(cluster));
        }
        for name in topics {
            self.topics
                .apply_watcher_event(&watcher::Event::Apply(h.topic(name)));
        }
    }
}

/// Reads of the cluster (GET) and of the topics (LIST) among `calls`.
fn api_reads(calls: &[Call]) -> (usize, usize) {
    let gets = calls
        .iter()
        .filter(|c| c.method == "GET" && c.path == cluster_path())
        .count();
    let lists = calls
        .iter()
        .filter(|c| c.method == "GET" && c.path.ends_with("/kafkatopics"))
        .count();
    (gets, lists)
}

/// One reconcile of the stored topic; its reads of the cluster and of the topics.
async fn reconcile_reads(h: &Harness, name: &str) -> (usize, usize) {
    h.fake.take_calls();
    reconcile(Arc::new(h.topic(name)), h.ctx.clone())
        .await
        .expect("reconcile succeeds");
    api_reads(&h.fake.take_calls())
}

#[tokio::test]
async fn the_stores_spare_the_api_reads_and_are_confirmed_before_a_topic_is_given_up() {
    let h = Harness::new();
    h.add_topic("payments", 100, json!({"partitions": 1, "replicas": 1}));
    h.add_topic("orders", 200, json!({"partitions": 1, "replicas": 1}));
    h.add_topic(
        "legacy-orders",
        100,
        json!({"topicName": "orders", "partitions": 2, "replicas": 1}),
    );
    let names: Vec<String> = ["payments", "orders", "legacy-orders"]
        .map(String::from)
        .to_vec();
    let mut watches = Watches::attach(&h);
    watches
        .topics
        .apply_watcher_event(&watcher::Event::Apply(h.topic("payments")));

    // A cluster the store has not seen yet (created a moment ago) is asked of the API.
    assert_eq!(reconcile_reads(&h, "payments").await, (1, 0));
    assert_eq!(h.ready("payments").0, "True");

    // Once the store has it: no reads at all.
    watches.sync(&h, &names);
    assert_eq!(reconcile_reads(&h, "payments").await, (0, 0));

    // A conflict the store shows is confirmed with one LIST.
    assert_eq!(reconcile_reads(&h, "orders").await, (0, 1));
    assert_eq!(h.ready("orders").1, "ResourceConflict");
    assert!(h.brokers.get("orders").is_none());

    // The winner is gone, the store does not know yet: the loser takes over anyway.
    h.fake.remove(&topic_path("legacy-orders"));
    h.brokers.take_calls();
    h.reconcile("orders").await;
    assert_eq!(h.ready("orders").0, "True");
    assert_eq!(h.brokers.get("orders").expect("created").partitions, 1);

    // Deleting it while the store still shows the old claimant: the LIST says nobody
    // else claims the topic, so it goes with the resource.
    h.fake.edit(&topic_path("orders"), |t| {
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    });
    h.brokers.take_calls();
    assert_eq!(reconcile_reads(&h, "orders").await, (0, 1));
    assert_eq!(h.brokers.take_calls(), vec!["delete orders"]);
    assert_eq!(h.finalizers("orders"), json!([]));
    assert!(h.brokers.get("orders").is_none());
}

/// Issue 16 §3: a thousand KafkaTopics of one cluster, reconciled as the controller does
/// at start (all at once, each again until Ready), against a real broker and the fake API
/// server. Prints the time; the bound is generous, for a slow shared machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_topics_become_ready_in_seconds() {
    let elapsed = thousand_topics(true, true).await;
    assert!(
        elapsed < Duration::from_secs(120),
        "1000 topics took {elapsed:?}"
    );
}

/// The same without stores and with a connection per call, as the operator was before
/// (`cargo test -- --ignored a_thousand_topics_before` for the comparison).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the baseline for a_thousand_topics_become_ready_in_seconds; about a minute"]
async fn a_thousand_topics_before_stores_and_pooling() {
    thousand_topics(false, false).await;
}

async fn thousand_topics(stores: bool, pooled: bool) -> Duration {
    const TOPICS: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) =
        strom_broker::harness::start_plaintext(dir.path(), Duration::from_secs(60))
            .await
            .expect("broker starts");
    let (mut ctx, fake) = fake_context();
    let mut loopback = Loopback::new(&address);
    if !pooled {
        loopback.pool = None;
    }
    ctx.admin = Arc::new(loopback);
    let cluster = fixtures::cluster(json!({"replicas": 1}));
    fake.insert(
        &cluster_path(),
        serde_json::to_value(&cluster).expect("cluster serializes"),
    );
    let h = Harness {
        fake,
        ctx: Arc::new(ctx),
        brokers: Arc::new(FakeBrokers::default()),
        reassigner: Arc::new(FakeReassigner::default()),
    };
    let names: Vec<String> = (0..TOPICS).map(|i| format!("topic-{i:04}")).collect();
    for (i, name) in names.iter().enumerate() {
        h.add_topic(
            name,
            100 + i as i64,
            json!({"partitions": 1, "replicas": 1}),
        );
    }
    let mut watches = stores.then(|| Watches::attach(&h));

    let start = std::time::Instant::now();
    let mut rounds = 0;
    let (mut gets, mut lists) = (0, 0);
    loop {
        if let Some(watches) = watches.as_mut() {
            watches.sync(&h, &names);
        }
        let pending: Vec<&String> = names.iter().filter(|n| h.ready(n).0 != "True").collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{} topics still not Ready after {rounds} rounds, e.g. {}",
            pending.len(),
            h.status(pending[0])
        );
        if rounds > 0 {
            // As a requeue would: the broker may still be starting.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rounds += 1;
        let reconciles = pending
            .iter()
            .map(|name| reconcile(Arc::new(h.topic(name)), h.ctx.clone()));
        futures::future::join_all(reconciles).await;
        let (g, l) = api_reads(&h.fake.take_calls());
        gets += g;
        lists += l;
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{TOPICS} topics Ready in {elapsed:?} ({rounds} rounds; stores {stores}, pooled \
         connections {pooled}; {gets} GETs of the cluster, {lists} LISTs of topics)"
    );
    running.shutdown().await.expect("shutdown");
    elapsed
}
