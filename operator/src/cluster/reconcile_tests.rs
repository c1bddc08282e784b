//! Reconcile tests against the verifying fake API (`crate::fixtures`): each asserts the
//! exact writes the reconciler makes and the status it leaves.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::Reporter;
use serde_json::{json, Value};

use super::reconcile::{reconcile, Context};
use super::resources::RenderOptions;
use crate::crd::cluster::{ListenerSpec, ListenerType, RackSpec, StorageSpec, StorageType};
use crate::crd::{KafkaCluster, KafkaClusterSpec};
use crate::fixtures::{Call, FakeApi};
use crate::health::{PartitionProbe, PartitionState, ProbeError};
use crate::metrics::Metrics;

const CLUSTER: &str = "/apis/kafka.strom.dev/v1alpha1/namespaces/kafka/kafkaclusters/my-cluster";
const STATUS: &str =
    "/apis/kafka.strom.dev/v1alpha1/namespaces/kafka/kafkaclusters/my-cluster/status";
const SA: &str = "/api/v1/namespaces/kafka/serviceaccounts/my-cluster-broker";
const CM: &str = "/api/v1/namespaces/kafka/configmaps/my-cluster-config";
const HEADLESS: &str = "/api/v1/namespaces/kafka/services/my-cluster-brokers";
const BOOTSTRAP: &str = "/api/v1/namespaces/kafka/services/my-cluster-bootstrap";
const PDB: &str = "/apis/policy/v1/namespaces/kafka/poddisruptionbudgets/my-cluster-broker";
const STS: &str = "/apis/apps/v1/namespaces/kafka/statefulsets/my-cluster-broker";
const CRB: &str =
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/strom-kafka-my-cluster-rack";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/kafka/events";

fn spec(replicas: i32) -> KafkaClusterSpec {
    serde_json::from_value(json!({ "replicas": replicas })).expect("minimal spec")
}

struct Harness {
    fake: FakeApi,
    ctx: Arc<Context>,
    brokers: Arc<ScriptedBrokers>,
}

/// Stands in for the brokers' Metadata answer: what `answer` holds, and who asked.
struct ScriptedBrokers {
    answer: std::sync::Mutex<Result<Vec<PartitionState>, ProbeError>>,
    asked: std::sync::Mutex<Vec<String>>,
}

impl PartitionProbe for ScriptedBrokers {
    fn partitions(
        &self,
        address: String,
    ) -> futures::future::BoxFuture<'static, Result<Vec<PartitionState>, ProbeError>> {
        self.asked.lock().unwrap().push(address);
        let answer = self.answer.lock().unwrap().clone();
        Box::pin(async move { answer })
    }
}

fn second(n: i64) -> Timestamp {
    Timestamp::from_second(n).expect("valid time")
}

thread_local! {
    /// The reconciler's clock, in seconds; tokio tests run on the test's own thread.
    static NOW: std::cell::Cell<i64> = const { std::cell::Cell::new(1_000) };
}

impl Harness {
    fn new(spec: KafkaClusterSpec) -> Harness {
        let (client, fake) = FakeApi::start();
        let options = RenderOptions {
            default_image: "ghcr.io/strom-dev/strom:0.1.0".into(),
        };
        let reporter = Reporter {
            controller: "strom-operator".into(),
            instance: None,
        };
        let mut ctx = Context::new(client, Arc::new(Metrics::new()), options, reporter);
        ctx.clock = || second(NOW.with(|now| now.get()));
        let brokers = Arc::new(ScriptedBrokers {
            answer: std::sync::Mutex::new(Err(ProbeError::Unreachable {
                address: "my-cluster-bootstrap.kafka.svc:9092".into(),
                detail: "no brokers in unit tests".into(),
            })),
            asked: std::sync::Mutex::default(),
        });
        ctx.probe = brokers.clone();
        let mut cluster = KafkaCluster::new("my-cluster", spec);
        cluster.metadata.namespace = Some("kafka".into());
        cluster.metadata.uid = Some("cluster-uid".into());
        cluster.metadata.generation = Some(1);
        cluster.metadata.resource_version = Some("1".into());
        fake.insert(
            CLUSTER,
            serde_json::to_value(&cluster).expect("cluster serializes"),
        );
        Harness {
            fake,
            ctx: Arc::new(ctx),
            brokers,
        }
    }

    fn cluster(&self) -> KafkaCluster {
        serde_json::from_value(self.fake.get(CLUSTER).expect("cluster stored"))
            .expect("cluster parses")
    }

    /// Runs one reconcile of the stored cluster; returns the writes it made.
    async fn reconcile(&self) -> Vec<Call> {
        reconcile(Arc::new(self.cluster()), self.ctx.clone())
            .await
            .expect("reconcile succeeds");
        self.fake
            .take_calls()
            .into_iter()
            .filter(Call::is_write)
            .collect()
    }

    fn change_spec(&self, change: impl FnOnce(&mut Value)) {
        self.fake.edit(CLUSTER, |c| {
            change(&mut c["spec"]);
            let generation = c["metadata"]["generation"].as_i64().unwrap_or(1);
            c["metadata"]["generation"] = json!(generation + 1);
        });
    }

    fn status(&self) -> Value {
        self.fake.get(CLUSTER).expect("cluster stored")["status"].clone()
    }

    fn condition(&self, kind: &str) -> Value {
        self.status()["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind).cloned())
            .unwrap_or(Value::Null)
    }

    /// Marks the StatefulSet as the StatefulSet controller would once `ready` pods run.
    fn brokers_ready(&self, ready: i32) {
        self.fake.edit(STS, |s| {
            let generation = s["metadata"]["generation"].clone();
            s["status"] = json!({"replicas": ready, "readyReplicas": ready, "updatedReplicas": ready, "observedGeneration": generation});
        });
    }
}

/// Calls as `METHOD path`; any event write (a new Event, or a PATCH that extends an event
/// series, as kube's Recorder does for repeats) reads `EVENT`.
fn lines(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| {
            if c.path.starts_with(EVENTS) {
                event()
            } else {
                c.line()
            }
        })
        .collect()
}

fn patch(path: &str) -> String {
    format!("PATCH {path}")
}

fn event() -> String {
    "EVENT".into()
}

#[tokio::test]
async fn creates_every_object_then_goes_quiet() {
    let h = Harness::new(spec(3));

    let writes = h.reconcile().await;
    assert_eq!(
        lines(&writes),
        vec![
            patch(SA),
            patch(CM),
            patch(HEADLESS),
            patch(BOOTSTRAP),
            patch(PDB),
            patch(STS),
            event(),
            patch(STATUS)
        ]
    );
    for apply in writes
        .iter()
        .filter(|c| c.method == "PATCH" && c.path != STATUS)
    {
        assert!(
            apply.query.contains("fieldManager=strom-operator")
                && apply.query.contains("force=true"),
            "{apply:?}"
        );
        let owner = &apply.body.as_ref().expect("apply body")["metadata"]["ownerReferences"][0];
        assert_eq!(
            owner["uid"], "cluster-uid",
            "{} has no owner reference",
            apply.path
        );
        assert_eq!(owner["controller"], true);
    }
    let sts = h.fake.get(STS).expect("StatefulSet applied");
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert!(h.fake.get(CRB).is_none(), "no rack, no ClusterRoleBinding");
    assert!(
        h.cluster().metadata.finalizers.is_none(),
        "no finalizer without cluster-scoped objects"
    );

    assert_eq!(h.condition("Ready")["status"], "False");
    assert_eq!(h.condition("Ready")["reason"], "BrokersNotReady");
    assert_eq!(h.condition("Ready")["message"], "0/3 brokers ready");
    assert_eq!(h.condition("NotReady")["status"], "True");
    assert_eq!(h.condition("Warning")["status"], "False");
    assert_eq!(h.status()["observedGeneration"], 1);
    assert_eq!(
        h.status()["selector"],
        "app.kubernetes.io/name=strom-broker,kafka.strom.dev/cluster=my-cluster"
    );
    assert_eq!(h.status()["version"], "0.1.0");
    assert_eq!(
        h.status()["listeners"][0]["bootstrapServers"],
        "my-cluster-bootstrap.kafka.svc:9092"
    );

    // Pods come up: only status changes, and Ready's transition is announced.
    h.brokers_ready(3);
    NOW.with(|now| now.set(2_000));
    assert_eq!(lines(&h.reconcile().await), vec![patch(STATUS), event()]);
    assert_eq!(h.condition("Ready")["status"], "True");
    assert_eq!(
        h.condition("Ready")["lastTransitionTime"],
        "1970-01-01T00:33:20Z"
    );
    assert_eq!(
        h.condition("Warning")["lastTransitionTime"],
        "1970-01-01T00:16:40Z",
        "Warning did not flip"
    );
    assert_eq!(h.status()["readyReplicas"], 3);

    // Nothing changed: a resync only reads, and writes nothing at all.
    reconcile(Arc::new(h.cluster()), h.ctx.clone())
        .await
        .expect("resync succeeds");
    let get = |path: &str| format!("GET {path}");
    assert_eq!(
        lines(&h.fake.take_calls()),
        vec![
            get(STS),
            get(SA),
            get(CM),
            get(HEADLESS),
            get(BOOTSTRAP),
            get("/api/v1/namespaces/kafka/services"),
            get(PDB),
            get("/apis/networking.k8s.io/v1/namespaces/kafka/networkpolicies/my-cluster-broker"),
            get(STS),
            // Discovery: is the PrometheusRule CRD served (cluster/alerts.rs)?
            get(RULES_API),
        ]
    );

    // Drift: a deleted Service is put back, and only it.
    h.fake.remove(BOOTSTRAP);
    assert_eq!(lines(&h.reconcile().await), vec![patch(BOOTSTRAP), event()]);
}

#[tokio::test]
async fn impossible_spec_is_refused_without_touching_anything() {
    let mut s = spec(3);
    s.default_replication_factor = Some(5);
    let h = Harness::new(s);

    let calls = {
        reconcile(Arc::new(h.cluster()), h.ctx.clone())
            .await
            .expect("a refused spec is not an error");
        h.fake.take_calls()
    };
    assert_eq!(
        lines(&calls),
        vec![patch(STATUS), event()],
        "no reads or writes of cluster objects"
    );
    assert_eq!(h.condition("Ready")["status"], "False");
    assert_eq!(h.condition("Ready")["reason"], "ReplicationFactorTooHigh");
    let message = h.condition("Ready")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains('5') && message.contains('3'), "{message}");
    let event = calls[1].body.as_ref().expect("event body");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "ReplicationFactorTooHigh");

    // Same spec again: no status churn, no repeated event.
    assert_eq!(lines(&h.reconcile().await), Vec::<String>::new());

    // Fixed: the cluster is created.
    h.change_spec(|s| s["defaultReplicationFactor"] = json!(3));
    let writes = lines(&h.reconcile().await);
    assert!(writes.contains(&patch(STS)), "{writes:?}");
    assert_eq!(h.status()["observedGeneration"], 2);
}

#[tokio::test]
async fn config_change_rewrites_config_and_hash_only() {
    let h = Harness::new(spec(3));
    h.reconcile().await;
    h.brokers_ready(3);
    h.reconcile().await;
    let hash_before = h.fake.get(STS).expect("sts")["spec"]["template"]["metadata"]["annotations"]
        ["kafka.strom.dev/config-hash"]
        .clone();

    h.change_spec(|s| s["config"] = json!({"log.retention.hours": 24}));
    let writes = lines(&h.reconcile().await);
    assert_eq!(writes[..2], [patch(CM), patch(STS)], "{writes:?}");
    assert!(!writes.contains(&patch(HEADLESS)) && !writes.contains(&patch(SA)));
    let sts = h.fake.get(STS).expect("sts");
    let hash_after =
        &sts["spec"]["template"]["metadata"]["annotations"]["kafka.strom.dev/config-hash"];
    assert_ne!(
        hash_before, *hash_after,
        "a config change must change the config hash"
    );
    let cm = h.fake.get(CM).expect("cm");
    assert!(cm["data"]["broker-0.properties"]
        .as_str()
        .unwrap_or("")
        .contains("log.retention.hours=24"));
    assert_eq!(h.status()["observedGeneration"], 2);

    // The StatefulSet controller sees the new template; no pod has been restarted yet.
    h.fake.edit(STS, |s| {
        s["status"]["observedGeneration"] = s["metadata"]["generation"].clone();
        s["status"]["updatedReplicas"] = json!(0);
    });
    h.reconcile().await;
    assert_eq!(
        h.condition("Ready")["status"],
        "True",
        "old pods still serve"
    );
    assert_eq!(h.condition("Warning")["status"], "True");
    assert_eq!(h.condition("Warning")["reason"], "RestartPending");
}

#[tokio::test]
async fn rack_awareness_uses_a_finalizer_to_remove_its_cluster_role_binding() {
    let mut s = spec(3);
    s.rack = Some(RackSpec {
        topology_key: "topology.kubernetes.io/zone".into(),
    });
    let h = Harness::new(s);

    let writes = lines(&h.reconcile().await);
    assert_eq!(
        writes[0],
        patch(CLUSTER),
        "finalizer first, before the cluster-scoped object exists"
    );
    assert!(writes.contains(&patch(CRB)), "{writes:?}");
    assert_eq!(
        h.cluster().metadata.finalizers,
        Some(vec!["kafka.strom.dev/cluster-cleanup".to_string()])
    );
    let binding = h.fake.get(CRB).expect("binding applied");
    assert!(
        binding["metadata"]["ownerReferences"].is_null(),
        "cluster-scoped: no namespaced owner"
    );
    assert_eq!(binding["roleRef"]["name"], "strom-broker-rack");
    assert_eq!(binding["subjects"][0]["name"], "my-cluster-broker");

    // Delete the KafkaCluster: the binding goes, then the finalizer.
    h.fake.edit(CLUSTER, |c| {
        c["metadata"]["deletionTimestamp"] = json!("2026-11-21T00:00:00Z")
    });
    let writes = lines(&h.reconcile().await);
    assert_eq!(
        writes,
        vec![format!("DELETE {CRB}"), event(), patch(CLUSTER)]
    );
    assert!(h.fake.get(CRB).is_none());
    assert!(h
        .cluster()
        .metadata
        .finalizers
        .unwrap_or_default()
        .is_empty());

    // Nothing left to do.
    assert_eq!(lines(&h.reconcile().await), Vec::<String>::new());
}

#[tokio::test]
async fn dropping_rack_awareness_removes_binding_and_finalizer() {
    let mut s = spec(3);
    s.rack = Some(RackSpec {
        topology_key: "topology.kubernetes.io/zone".into(),
    });
    let h = Harness::new(s);
    h.reconcile().await;
    h.change_spec(|s| {
        s.as_object_mut()
            .map(|o| o.remove("rack"))
            .map(drop)
            .unwrap_or(())
    });
    let writes = lines(&h.reconcile().await);
    assert!(writes.contains(&format!("DELETE {CRB}")), "{writes:?}");
    assert!(
        writes.contains(&patch(CLUSTER)),
        "finalizer released: {writes:?}"
    );
    assert!(h
        .cluster()
        .metadata
        .finalizers
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn storage_resize_is_refused_before_anything_is_applied() {
    let mut s = spec(3);
    s.storage = StorageSpec {
        kind: StorageType::PersistentClaim,
        size: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "10Gi".into(),
        )),
        class: None,
    };
    let h = Harness::new(s);
    h.reconcile().await;

    h.change_spec(|s| s["storage"]["size"] = json!("20Gi"));
    let writes = lines(&h.reconcile().await);
    assert_eq!(writes, vec![patch(STATUS), event()]);
    assert_eq!(h.condition("Ready")["reason"], "StorageChangeNotSupported");
    let message = h.condition("Ready")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.contains("10Gi") && message.contains("20Gi"),
        "{message}"
    );
}

#[tokio::test]
async fn load_balancer_listener_waits_for_addresses_before_starting_brokers() {
    let mut s = spec(2);
    s.listeners = vec![ListenerSpec {
        name: "external".into(),
        port: 9094,
        kind: ListenerType::Loadbalancer,
        tls: false,
        authentication: None,
        network_policy_peers: Vec::new(),
    }];
    let h = Harness::new(s);

    let writes = lines(&h.reconcile().await);
    assert!(
        writes.contains(&patch(
            "/api/v1/namespaces/kafka/services/my-cluster-external-0"
        )),
        "{writes:?}"
    );
    assert!(
        !writes.contains(&patch(STS)),
        "no brokers before their addresses are known: {writes:?}"
    );
    assert_eq!(h.condition("Ready")["reason"], "WaitingForLoadBalancer");

    for (svc, ip) in [
        ("my-cluster-external-0", "203.0.113.10"),
        ("my-cluster-external-1", "203.0.113.11"),
        ("my-cluster-external-bootstrap", "203.0.113.9"),
    ] {
        h.fake
            .edit(&format!("/api/v1/namespaces/kafka/services/{svc}"), |s| {
                s["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
            });
    }
    let writes = lines(&h.reconcile().await);
    assert!(writes.contains(&patch(STS)), "{writes:?}");
    let cm = h.fake.get(CM).expect("config map");
    let broker1 = cm["data"]["broker-1.properties"].as_str().unwrap_or("");
    assert!(
        broker1.contains("EXTERNAL://203.0.113.11:9094"),
        "{broker1}"
    );
    assert_eq!(
        h.status()["listeners"][0]["bootstrapServers"],
        "203.0.113.9:9094"
    );
}

fn partition(topic: &str, partition: i32, leader: i32, isr: &[i32]) -> PartitionState {
    PartitionState {
        topic: topic.into(),
        partition,
        leader: (leader >= 0).then_some(leader),
        replicas: vec![0, 1, 2],
        isr: isr.to_vec(),
    }
}

/// `(type, reason)` of every Event the writes created.
fn events(writes: &[Call]) -> Vec<(String, String)> {
    writes
        .iter()
        .filter(|c| c.method == "POST" && c.path.starts_with(EVENTS))
        .filter_map(|c| c.body.as_ref())
        .map(|b| {
            (
                b["type"].as_str().unwrap_or("").to_string(),
                b["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn without_brokers_partition_health_is_unknown() {
    let h = Harness::new(spec(3));
    h.reconcile().await;
    let c = h.condition("UnderReplicated");
    assert_eq!(c["status"], "Unknown");
    assert_eq!(c["reason"], "NoBrokersReady");
    assert!(h.status().get("underReplicatedPartitions").is_none());
    assert!(h.status().get("offlinePartitions").is_none());
    assert!(h.brokers.asked.lock().unwrap().is_empty(), "nobody to ask");

    // Ready pods whose brokers do not answer: still Unknown, never a made-up False.
    h.brokers_ready(3);
    let writes = h.reconcile().await;
    let c = h.condition("UnderReplicated");
    assert_eq!(c["status"], "Unknown");
    assert_eq!(c["reason"], "BrokersUnreachable");
    assert!(h.status().get("underReplicatedPartitions").is_none());
    assert_eq!(
        h.brokers.asked.lock().unwrap().as_slice(),
        ["my-cluster-bootstrap.kafka.svc:9092"]
    );
    assert!(
        !events(&writes).iter().any(|(_, r)| r.contains("Partition")),
        "{writes:?}"
    );
}

#[tokio::test]
async fn under_replicated_condition_and_events_follow_the_brokers() {
    let h = Harness::new(spec(3));
    h.reconcile().await;
    h.brokers_ready(3);
    let healthy = vec![
        partition("t", 0, 0, &[0, 1, 2]),
        partition("t", 1, 1, &[1, 2, 0]),
    ];
    *h.brokers.answer.lock().unwrap() = Ok(healthy.clone());
    NOW.with(|now| now.set(5_000));
    let writes = h.reconcile().await;
    let c = h.condition("UnderReplicated");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "AllReplicasInSync");
    assert_eq!(h.status()["underReplicatedPartitions"], 0);
    assert_eq!(h.status()["offlinePartitions"], 0);
    assert!(
        !events(&writes).iter().any(|(_, r)| r.contains("Partition")),
        "a healthy first look is no event: {writes:?}"
    );

    // Broker 2 dies: both partitions lose a replica.
    *h.brokers.answer.lock().unwrap() = Ok(vec![
        partition("t", 0, 0, &[0, 1]),
        partition("t", 1, 1, &[1, 0]),
    ]);
    NOW.with(|now| now.set(6_000));
    let writes = h.reconcile().await;
    let c = h.condition("UnderReplicated");
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "UnderReplicatedPartitions");
    assert_eq!(c["message"], "2 under-replicated partitions: t-0, t-1");
    assert_eq!(c["lastTransitionTime"], "1970-01-01T01:40:00Z");
    assert_eq!(h.status()["underReplicatedPartitions"], 2);
    assert_eq!(
        events(&writes),
        vec![(
            "Warning".to_string(),
            "UnderReplicatedPartitions".to_string()
        )]
    );

    // Nothing changed: no write at all, the transition time stays.
    NOW.with(|now| now.set(7_000));
    let writes = h.reconcile().await;
    assert!(
        writes.is_empty(),
        "no churn while nothing changes: {writes:?}"
    );

    // One partition has its leader gone too: same status True, no new event.
    *h.brokers.answer.lock().unwrap() = Ok(vec![
        partition("t", 0, -1, &[0]),
        partition("t", 1, 1, &[1, 0]),
    ]);
    let writes = h.reconcile().await;
    let c = h.condition("UnderReplicated");
    assert_eq!(c["reason"], "OfflinePartitions");
    assert_eq!(c["lastTransitionTime"], "1970-01-01T01:40:00Z");
    assert_eq!(h.status()["offlinePartitions"], 1);
    assert!(events(&writes).is_empty(), "{writes:?}");

    // The broker is back and caught up.
    *h.brokers.answer.lock().unwrap() = Ok(healthy);
    NOW.with(|now| now.set(8_000));
    let writes = h.reconcile().await;
    let c = h.condition("UnderReplicated");
    assert_eq!(c["status"], "False");
    assert_eq!(c["lastTransitionTime"], "1970-01-01T02:13:20Z");
    assert_eq!(h.status()["underReplicatedPartitions"], 0);
    assert_eq!(
        events(&writes),
        vec![("Normal".to_string(), "PartitionsInSync".to_string())]
    );
}

const RULES_API: &str = "/apis/monitoring.coreos.com/v1";
const RULE: &str =
    "/apis/monitoring.coreos.com/v1/namespaces/kafka/prometheusrules/my-cluster-kafka-rules";

#[tokio::test]
async fn prometheus_rule_only_where_the_crd_is_served_and_metrics_are_on() {
    let h = Harness::new(spec(3));
    let writes = lines(&h.reconcile().await);
    assert!(
        !writes.contains(&patch(RULE)),
        "no CRD, no rule: {writes:?}"
    );

    h.fake.insert(
        RULES_API,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
               "resources": [{"name": "prometheusrules", "singularName": "prometheusrule", "namespaced": true,
                              "kind": "PrometheusRule", "verbs": ["get", "list", "patch", "delete"]}]}),
    );
    let writes = lines(&h.reconcile().await);
    assert!(writes.contains(&patch(RULE)), "{writes:?}");
    let rule = h.fake.get(RULE).expect("rule applied");
    assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], "cluster-uid");
    let expr = rule["spec"]["groups"][0]["rules"][0]["expr"]
        .as_str()
        .unwrap_or("");
    assert!(
        expr.contains(r#"namespace="kafka",pod=~"my-cluster-broker-[0-9]+""#),
        "{expr}"
    );
    let writes = lines(&h.reconcile().await);
    assert!(
        !writes.contains(&patch(RULE)),
        "unchanged, not re-applied: {writes:?}"
    );

    h.change_spec(|s| s["metrics"] = json!({"enabled": false}));
    let writes = lines(&h.reconcile().await);
    assert!(writes.contains(&format!("DELETE {RULE}")), "{writes:?}");
    assert!(h.fake.get(RULE).is_none());
}
