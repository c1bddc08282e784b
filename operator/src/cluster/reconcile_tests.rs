//! Reconcile tests against the verifying fake API (`crate::fixtures`): each asserts the
//! exact writes the reconciler makes and the status it leaves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::Reporter;
use serde_json::{json, Value};

use super::reconcile::{reconcile, Context};
use super::resources::RenderOptions;
use crate::access::Brokers;
use crate::crd::cluster::{ListenerSpec, ListenerType, RackSpec, StorageSpec, StorageType};
use crate::crd::{KafkaCluster, KafkaClusterSpec};
use crate::fixtures::{Call, FakeApi};
use crate::health::{PartitionProbe, PartitionState as HealthPartition, ProbeError};
use crate::metrics::Metrics;
use crate::rebalance::batch::TopicThrottle;
use crate::rebalance::kafka::{BrokerState, ClusterAdmin, ClusterView as ScaleView, KafkaError};
use crate::rebalance::plan::{
    apply_moves, replicas_outside, Assignment, Leaders, Leadership, Move, TopicPartition,
};
use crate::roll::kafka::{AdminError, BrokerAdmin, ClusterView, Endpoint};
use crate::roll::safety::{PartitionState, QuorumState, RestartSafeAnswer, VoterState};
use crate::roll::triggers::ConfigChange;
use std::collections::BTreeSet;

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
const PODS: &str = "/api/v1/namespaces/kafka/pods";
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
    answer: std::sync::Mutex<Result<Vec<HealthPartition>, ProbeError>>,
    asked: std::sync::Mutex<Vec<String>>,
}

impl PartitionProbe for ScriptedBrokers {
    fn partitions(
        &self,
        brokers: Brokers,
    ) -> futures::future::BoxFuture<'static, Result<Vec<HealthPartition>, ProbeError>> {
        self.asked.lock().unwrap().push(brokers.addresses.join(","));
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
        Harness::with_parts(spec, None, Arc::new(FakeKafka::default()))
    }

    fn with_admin(spec: KafkaClusterSpec, admin: Option<Arc<FakeAdmin>>) -> Harness {
        Harness::with_parts(spec, admin, Arc::new(FakeKafka::default()))
    }

    fn with_kafka(spec: KafkaClusterSpec, kafka: Arc<FakeKafka>) -> Harness {
        Harness::with_parts(spec, None, kafka)
    }

    /// The roller's broker calls (`admin`, the real client when None) and the scale
    /// step's (`kafka`) are stand-ins the tests control.
    fn with_parts(
        spec: KafkaClusterSpec,
        admin: Option<Arc<FakeAdmin>>,
        kafka: Arc<FakeKafka>,
    ) -> Harness {
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
        if let Some(admin) = admin {
            ctx.admin = admin;
        }
        ctx.kafka = kafka;
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
            // The scale step reads the KafkaCluster fresh (its cached copy can trail status).
            get(CLUSTER),
            get(CM),
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
            get(PODS),
        ]
    );

    // Drift: a deleted Service is put back, and only it.
    h.fake.remove(BOOTSTRAP);
    assert_eq!(lines(&h.reconcile().await), vec![patch(BOOTSTRAP), event()]);
}

const SECRETS: &str = "/api/v1/namespaces/kafka/secrets";

#[tokio::test]
async fn a_secured_cluster_gets_its_certificates_before_its_brokers_then_goes_quiet() {
    let mut secured = spec(3);
    secured.authorization =
        Some(serde_json::from_value(json!({"type": "simple"})).expect("authorization"));
    let h = Harness::new(secured);

    let writes = h.reconcile().await;
    let secrets: Vec<String> = writes
        .iter()
        .filter(|c| c.method == "PATCH" && c.path.starts_with(SECRETS))
        .map(|c| c.path.trim_start_matches(SECRETS).to_string())
        .collect();
    assert_eq!(
        secrets,
        [
            "/my-cluster-cluster-ca-cert",
            "/my-cluster-cluster-ca",
            "/my-cluster-clients-ca-cert",
            "/my-cluster-clients-ca",
            "/my-cluster-broker-certs",
            "/my-cluster-operator-certs"
        ]
    );
    let position = |path: &str| writes.iter().position(|c| c.path == path);
    assert!(
        position(&format!("{SECRETS}/my-cluster-broker-certs")) < position(STS),
        "the brokers start with their certificates in place"
    );
    let brokers = h
        .fake
        .get(&format!("{SECRETS}/my-cluster-broker-certs"))
        .expect("broker certificates");
    for i in 0..3 {
        assert!(
            brokers["data"][format!("broker-{i}.pem")].is_string(),
            "{brokers}"
        );
    }
    let set = h.fake.get(STS).expect("StatefulSet");
    let volumes = set["spec"]["template"]["spec"]["volumes"].to_string();
    for secret in [
        "my-cluster-cluster-ca-cert",
        "my-cluster-clients-ca-cert",
        "my-cluster-broker-certs",
    ] {
        assert!(volumes.contains(secret), "{secret} not mounted: {volumes}");
    }
    assert!(
        !volumes.contains("my-cluster-cluster-ca\"") && !volumes.contains("operator-certs"),
        "CA keys and the operator's key stay out of the pods: {volumes}"
    );

    // Nothing to renew: the next reconcile writes no Secret.
    h.brokers_ready(3);
    let writes = h.reconcile().await;
    assert!(
        !writes.iter().any(|c| c.path.starts_with(SECRETS)),
        "{:?}",
        lines(&writes)
    );
}

fn secured(replicas: i32) -> KafkaClusterSpec {
    let mut secured = spec(replicas);
    secured.authorization =
        Some(serde_json::from_value(json!({"type": "simple"})).expect("authorization"));
    secured
}

/// A stored Secret's data key, decoded.
fn secret_data(h: &Harness, secret: &str, key: &str) -> Vec<u8> {
    let stored = h
        .fake
        .get(&format!("{SECRETS}/{secret}"))
        .unwrap_or_else(|| panic!("{secret} stored"));
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(stored).expect("a Secret");
    secret
        .data
        .and_then(|d| d.get(key).cloned())
        .unwrap_or_else(|| panic!("{key} missing"))
        .0
}

fn annotations(h: &Harness, secret: &str) -> Value {
    h.fake.get(&format!("{SECRETS}/{secret}")).expect("stored")["metadata"]["annotations"].clone()
}

fn annotate(h: &Harness, secret: &str, annotation: &str) {
    h.fake.edit(&format!("{SECRETS}/{secret}"), |s| {
        s["metadata"]["annotations"][annotation] = json!("true");
    });
}

fn pem_count(pem: &[u8]) -> usize {
    String::from_utf8_lossy(pem)
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

/// Strimzi's force annotations, with the operator as a real API server would see it: the
/// annotation was set by another manager, so applying the renewed Secret alone would keep
/// it; the reconcile removes it once the renewal is written. The CA is days old, far from
/// its renewal window.
#[tokio::test]
async fn force_renew_annotation_renews_the_ca_certificate_and_is_removed() {
    use crate::certs::names::FORCE_RENEW_ANNOTATION;
    let h = Harness::new(secured(3));
    h.reconcile().await;
    h.brokers_ready(3);
    h.reconcile().await;
    let ca_key = || secret_data(&h, "my-cluster-cluster-ca", "ca.key");
    let ca_crt = || secret_data(&h, "my-cluster-cluster-ca-cert", "ca.crt");
    let broker_crt = || secret_data(&h, "my-cluster-broker-certs", "broker-0.crt");
    let (key0, crt0, leaf0) = (ca_key(), ca_crt(), broker_crt());
    let clients0 = secret_data(&h, "my-cluster-clients-ca-cert", "ca.crt");

    annotate(&h, "my-cluster-cluster-ca-cert", FORCE_RENEW_ANNOTATION);
    let writes = h.reconcile().await;
    assert_eq!(
        event_notes(&writes, "CertificateAuthorityRenewed"),
        [
            "renewed the certificate (same key) of the cluster CA as annotated; the old \
          certificate stays trusted until nothing uses it"
        ]
    );
    assert!(ca_key() == key0, "renew-certificate keeps the key");
    assert!(ca_crt() != crt0);
    assert_eq!(pem_count(&ca_crt()), 2, "new and old certificate");
    assert!(broker_crt() != leaf0, "leaves re-issued");
    assert!(secret_data(&h, "my-cluster-clients-ca-cert", "ca.crt") == clients0);
    assert!(
        annotations(&h, "my-cluster-cluster-ca-cert")
            .get(FORCE_RENEW_ANNOTATION)
            .is_none(),
        "{}",
        annotations(&h, "my-cluster-cluster-ca-cert")
    );
    let removals: Vec<&Call> = writes
        .iter()
        .filter(|c| c.method == "PATCH" && c.query.is_empty() && c.path.starts_with(SECRETS))
        .collect();
    assert_eq!(removals.len(), 1, "{:?}", lines(&writes));

    // Done once: the next reconcile writes no Secret.
    let writes = h.reconcile().await;
    assert!(
        !writes.iter().any(|c| c.path.starts_with(SECRETS)),
        "{:?}",
        lines(&writes)
    );
}

/// As above for `force-replace` on the key Secret: a new key, though the policy is
/// renew-certificate. (Its own cluster: kube's Recorder folds a second Event of the same
/// reason into the first one's series.)
#[tokio::test]
async fn force_replace_annotation_gives_the_ca_a_new_key_and_is_removed() {
    use crate::certs::names::FORCE_REPLACE_ANNOTATION;
    let h = Harness::new(secured(3));
    h.reconcile().await;
    h.brokers_ready(3);
    h.reconcile().await;
    let ca_key = || secret_data(&h, "my-cluster-cluster-ca", "ca.key");
    let ca_crt = || secret_data(&h, "my-cluster-cluster-ca-cert", "ca.crt");
    let broker_crt = || secret_data(&h, "my-cluster-broker-certs", "broker-0.crt");
    let (key0, crt0, leaf0) = (ca_key(), ca_crt(), broker_crt());

    annotate(&h, "my-cluster-cluster-ca", FORCE_REPLACE_ANNOTATION);
    let writes = h.reconcile().await;
    assert_eq!(
        event_notes(&writes, "CertificateAuthorityRenewed"),
        [
            "replaced the key of the cluster CA as annotated; the old certificate stays \
          trusted until nothing uses it"
        ]
    );
    assert!(ca_key() != key0, "a new key");
    assert!(ca_crt() != crt0);
    assert_eq!(pem_count(&ca_crt()), 2, "new and old certificate");
    assert!(broker_crt() != leaf0);
    assert!(
        annotations(&h, "my-cluster-cluster-ca")
            .get(FORCE_REPLACE_ANNOTATION)
            .is_none(),
        "{}",
        annotations(&h, "my-cluster-cluster-ca")
    );
    let writes = h.reconcile().await;
    assert!(
        !writes.iter().any(|c| c.path.starts_with(SECRETS)),
        "{:?}",
        lines(&writes)
    );
}

/// An annotation that asks for nothing (`"false"`) is neither acted on nor removed.
#[tokio::test]
async fn a_force_annotation_other_than_true_is_left_alone() {
    use crate::certs::names::FORCE_RENEW_ANNOTATION;
    let h = Harness::new(secured(1));
    h.reconcile().await;
    h.brokers_ready(1);
    h.reconcile().await;
    let crt0 = secret_data(&h, "my-cluster-cluster-ca-cert", "ca.crt");
    h.fake
        .edit(&format!("{SECRETS}/my-cluster-cluster-ca-cert"), |s| {
            s["metadata"]["annotations"][FORCE_RENEW_ANNOTATION] = json!("false");
        });
    let writes = h.reconcile().await;
    assert!(
        !writes.iter().any(|c| c.path.starts_with(SECRETS)),
        "{:?}",
        lines(&writes)
    );
    assert!(secret_data(&h, "my-cluster-cluster-ca-cert", "ca.crt") == crt0);
    assert_eq!(
        annotations(&h, "my-cluster-cluster-ca-cert")[FORCE_RENEW_ANNOTATION],
        "false"
    );
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
    // Which brokers need a restart is the roller's call (the RollingRestart condition),
    // not the StatefulSet's revision count, which a scale alone changes.
    assert_eq!(h.condition("Warning")["status"], "False");
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
        delete_claims_on_scale_down: false,
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

// ---- The roller, against the fake API and a stand-in for the brokers ----

/// Canned broker answers; records the calls that change something.
#[derive(Default)]
struct FakeAdmin {
    view: Mutex<ClusterView>,
    safe: Mutex<bool>,
    altered: Mutex<Vec<(i32, Vec<ConfigChange>)>>,
    elected: Mutex<Vec<(String, i32)>>,
}

impl FakeAdmin {
    /// Three brokers, broker 0 the controller, one healthy RF 3 partition.
    fn healthy() -> Arc<FakeAdmin> {
        let admin = FakeAdmin::default();
        admin.set_isr(&[0, 1, 2]);
        *admin.safe.lock().expect("lock") = true;
        Arc::new(admin)
    }

    fn set_isr(&self, isr: &[i32]) {
        let quorum = QuorumState {
            leader: 0,
            voters: (0..3)
                .map(|id| VoterState {
                    id,
                    last_caught_up_ms: 1_000,
                })
                .collect(),
        };
        *self.view.lock().expect("lock") = ClusterView {
            controller: Some(0),
            partitions: vec![PartitionState {
                topic: "orders".into(),
                partition: 0,
                replicas: vec![1, 2, 0],
                isr: isr.to_vec(),
                leader: isr[0],
            }],
            min_isr: BTreeMap::from([("orders".to_string(), 2)]),
            quorum: Some(quorum),
        };
    }
}

impl BrokerAdmin for FakeAdmin {
    fn describe(&self, _: Vec<Endpoint>) -> BoxFuture<'_, Result<ClusterView, AdminError>> {
        let view = self.view.lock().expect("lock").clone();
        Box::pin(async move { Ok(view) })
    }

    fn restart_safe(
        &self,
        broker: Endpoint,
    ) -> BoxFuture<'_, Result<RestartSafeAnswer, AdminError>> {
        let safe = *self.safe.lock().expect("lock");
        Box::pin(async move {
            Ok(RestartSafeAnswer {
                safe,
                broker: broker.id,
                unsafe_partitions: None,
                reasons: vec![],
            })
        })
    }

    fn alter_broker_config(
        &self,
        broker: Endpoint,
        changes: Vec<ConfigChange>,
    ) -> BoxFuture<'_, Result<(), AdminError>> {
        self.altered
            .lock()
            .expect("lock")
            .push((broker.id, changes));
        Box::pin(async { Ok(()) })
    }

    fn elect_preferred(
        &self,
        _: Vec<Endpoint>,
        partitions: Vec<(String, i32)>,
    ) -> BoxFuture<'_, Result<(), AdminError>> {
        self.elected.lock().expect("lock").extend(partitions);
        Box::pin(async { Ok(()) })
    }
}

fn pod_path(i: i32) -> String {
    format!("{PODS}/my-cluster-broker-{i}")
}

/// Creates (or re-creates, as the StatefulSet controller would) pod `i` from the stored
/// StatefulSet's template, Ready.
fn run_pod(h: &Harness, i: i32) {
    let sts = h.fake.get(STS).expect("sts");
    let template = &sts["spec"]["template"];
    h.fake.insert(
        &pod_path(i),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("my-cluster-broker-{i}"), "namespace": "kafka",
                "uid": format!("pod-uid-{i}"), "resourceVersion": "1",
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"]},
            "spec": template["spec"],
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }),
    );
}

/// A running three-broker cluster whose pods match the template.
async fn rolled_out(admin: Arc<FakeAdmin>) -> Harness {
    let h = Harness::with_admin(spec(3), Some(admin));
    h.reconcile().await;
    for i in 0..3 {
        run_pod(&h, i);
    }
    h.brokers_ready(3);
    h.reconcile().await;
    h
}

fn deletes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.path.clone())
        .collect()
}

#[tokio::test]
async fn a_static_change_restarts_one_broker_per_reconcile_controller_last() {
    let admin = FakeAdmin::healthy();
    let h = rolled_out(admin.clone()).await;
    assert_eq!(h.condition("RollingRestart")["status"], "False");
    assert_eq!(h.status()["rollingRestart"], Value::Null);

    h.change_spec(|s| s["config"] = json!({"num.io.threads": 4}));
    let writes = h.reconcile().await;
    assert_eq!(
        deletes(&writes),
        vec![pod_path(1)],
        "one pod, not the controller"
    );
    assert_eq!(h.condition("RollingRestart")["status"], "True");
    assert_eq!(h.condition("RollingRestart")["reason"], "Restarting");
    let roll = &h.status()["rollingRestart"];
    assert_eq!(roll["restarting"], 1);
    assert_eq!(roll["pending"], json!([2, 0]));
    assert_eq!(roll["done"], json!([1]));
    assert!(
        lines(&writes).contains(&event()),
        "an Event names the restart"
    );
    assert!(
        admin.altered.lock().expect("lock").is_empty(),
        "num.io.threads is static"
    );

    // While broker 1 is away nothing else restarts.
    let writes = h.reconcile().await;
    assert!(deletes(&writes).is_empty());
    assert_eq!(h.condition("RollingRestart")["reason"], "WaitingForBroker");

    // Back, from the new template, and in the ISR: its preferred leadership returns and
    // the next broker goes; the controller (0) is last.
    run_pod(&h, 1);
    let writes = h.reconcile().await;
    assert_eq!(deletes(&writes), vec![pod_path(2)]);
    assert_eq!(
        *admin.elected.lock().expect("lock"),
        vec![("orders".to_string(), 0)]
    );
    run_pod(&h, 2);
    assert_eq!(deletes(&h.reconcile().await), vec![pod_path(0)]);
    run_pod(&h, 0);
    let writes = h.reconcile().await;
    assert!(deletes(&writes).is_empty());
    assert_eq!(h.condition("RollingRestart")["status"], "False");
    assert_eq!(h.status()["rollingRestart"], Value::Null);
}

#[tokio::test]
async fn an_unsafe_restart_waits_with_the_blocking_partitions_and_resumes() {
    let admin = FakeAdmin::healthy();
    let h = rolled_out(admin.clone()).await;
    // Broker 2 is out of the ISR: taking 1 down would leave orders-0 below min.insync 2.
    admin.set_isr(&[1, 0]);
    h.change_spec(|s| s["config"] = json!({"num.io.threads": 4}));
    let writes = h.reconcile().await;
    assert!(deletes(&writes).is_empty(), "never an unsafe restart");
    let condition = h.condition("RollingRestart");
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "UnderMinIsr");
    assert!(condition["message"]
        .as_str()
        .unwrap_or("")
        .contains("orders-0"));
    let blocked = &h.status()["rollingRestart"]["blocked"];
    assert_eq!(blocked["broker"], 1);
    assert_eq!(blocked["partitions"], json!(["orders-0"]));
    // The reconcile succeeded (no error back-off); it asks to be called again.
    let action = reconcile(Arc::new(h.cluster()), h.ctx.clone())
        .await
        .expect("a blocked roll is not an error");
    assert_ne!(action, kube::runtime::controller::Action::await_change());
    assert!(deletes(&h.fake.take_calls()).is_empty());

    admin.set_isr(&[1, 2, 0]);
    assert_eq!(
        deletes(&h.reconcile().await),
        vec![pod_path(1)],
        "resumes by itself"
    );
    assert_eq!(h.status()["rollingRestart"]["blocked"], Value::Null);
}

#[tokio::test]
async fn a_roll_waiting_for_a_down_broker_names_the_partitions_it_blocks_on() {
    let admin = FakeAdmin::healthy();
    let h = rolled_out(admin.clone()).await;
    // Broker 2 is down (pod not Ready, out of the ISR); a roll of broker 0 is requested.
    h.fake.edit(&pod_path(2), |p| {
        p["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}])
    });
    admin.set_isr(&[1, 0]);
    h.fake.edit(&pod_path(0), |p| {
        p["metadata"]["annotations"]["kafka.strom.dev/manual-rolling-update"] = json!("true")
    });
    assert!(deletes(&h.reconcile().await).is_empty());
    let condition = h.condition("RollingRestart");
    assert_eq!(condition["reason"], "UnderMinIsr");
    let blocked = &h.status()["rollingRestart"]["blocked"];
    assert_eq!(blocked["broker"], 0);
    assert_eq!(blocked["partitions"], json!(["orders-0"]));

    // Still not Ready, but back in the ISR: its own restart would be safe, the other
    // broker's readiness is what the roll waits for.
    admin.set_isr(&[1, 2, 0]);
    assert!(deletes(&h.reconcile().await).is_empty());
    assert_eq!(h.condition("RollingRestart")["reason"], "BrokerNotReady");
    assert!(h.status()["rollingRestart"]["blocked"]
        .get("partitions")
        .is_none_or(|p| p == &json!([])));

    // Ready again: broker 0 restarts, with an Event about its pod.
    run_pod(&h, 2);
    let writes = h.reconcile().await;
    assert_eq!(deletes(&writes), vec![pod_path(0)]);
    let related: Vec<Value> = writes
        .iter()
        .filter(|c| c.method == "POST" && c.path.starts_with(EVENTS))
        .filter_map(|c| c.body.clone())
        .filter(|b| b["reason"] == "RestartingBroker")
        .map(|b| b["related"].clone())
        .collect();
    assert_eq!(related.len(), 1, "one Event per restart");
    assert_eq!(related[0]["kind"], "Pod");
    assert_eq!(related[0]["name"], "my-cluster-broker-0");
    assert_eq!(related[0]["uid"], "pod-uid-0");
}

#[tokio::test]
async fn the_broker_answer_blocks_too() {
    let admin = FakeAdmin::healthy();
    let h = rolled_out(admin.clone()).await;
    *admin.safe.lock().expect("lock") = false;
    h.fake.edit(&pod_path(2), |p| {
        p["metadata"]["annotations"]["kafka.strom.dev/manual-rolling-update"] = json!("true")
    });
    assert!(deletes(&h.reconcile().await).is_empty());
    assert_eq!(
        h.condition("RollingRestart")["reason"],
        "BrokerReportsUnsafe"
    );
    assert_eq!(h.status()["rollingRestart"]["pending"], json!([2]));
}

#[tokio::test]
async fn a_dynamic_only_change_updates_brokers_in_place() {
    let admin = FakeAdmin::healthy();
    let h = rolled_out(admin.clone()).await;
    h.change_spec(|s| s["config"] = json!({"log.retention.ms": 60000}));
    let writes = h.reconcile().await;
    assert!(deletes(&writes).is_empty(), "no restart");
    let altered = admin.altered.lock().expect("lock").clone();
    assert_eq!(altered.len(), 3);
    for (_, changes) in &altered {
        assert_eq!(
            changes,
            &vec![("log.retention.ms".to_string(), Some("60000".to_string()))]
        );
    }
    let cm = h.fake.get(CM).expect("cm");
    for i in 0..3 {
        let file = cm["data"][format!("broker-{i}.properties")]
            .as_str()
            .unwrap_or("");
        assert_eq!(
            h.fake.get(&pod_path(i)).expect("pod")["metadata"]["annotations"]
                ["kafka.strom.dev/applied-config-hash"],
            json!(crate::cluster::config::properties_hash(file))
        );
    }
    // Next time round every broker counts as current.
    assert!(deletes(&h.reconcile().await).is_empty());
    assert_eq!(h.condition("RollingRestart")["status"], "False");
}

#[tokio::test]
async fn a_manual_roll_on_the_cluster_moves_to_the_pods_and_is_removed() {
    let admin = FakeAdmin::healthy();
    let h = rolled_out(admin).await;
    h.fake.edit(CLUSTER, |c| {
        c["metadata"]["annotations"] = json!({"kafka.strom.dev/manual-rolling-update": "true"})
    });
    let writes = h.reconcile().await;
    let cluster = h.fake.get(CLUSTER).expect("cluster");
    assert_eq!(
        cluster["metadata"]["annotations"]["kafka.strom.dev/manual-rolling-update"],
        Value::Null,
        "removed from the KafkaCluster"
    );
    for i in [0, 2] {
        assert_eq!(
            h.fake.get(&pod_path(i)).expect("pod")["metadata"]["annotations"]
                ["kafka.strom.dev/manual-rolling-update"],
            "true"
        );
    }
    assert_eq!(deletes(&writes), vec![pod_path(1)]);
}

#[tokio::test]
async fn a_pod_crashing_on_an_old_template_is_restarted_at_once_but_not_on_the_current_one() {
    let admin = FakeAdmin::healthy();
    let h = rolled_out(admin.clone()).await;
    let crash = |p: &mut Value| {
        p["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "broker", "image": "i", "imageID": "", "ready": false,
                "restartCount": 9, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]});
    };
    h.fake.edit(&pod_path(2), crash);
    let writes = h.reconcile().await;
    assert!(
        deletes(&writes).is_empty(),
        "current template: reported only"
    );
    assert_eq!(h.status()["rollingRestart"]["stuck"], json!([2]));

    // Even an unsafe cluster does not hold back a not-ready broker on an old template.
    admin.set_isr(&[1, 0]);
    *admin.safe.lock().expect("lock") = false;
    h.change_spec(|s| s["config"] = json!({"num.io.threads": 4}));
    assert_eq!(deletes(&h.reconcile().await), vec![pod_path(2)]);
}

/// The brokers as the scale step sees them: moves complete as soon as they are started,
/// leaderships stay where they are unless their leader left the replicas (as in Kafka)
/// or an election moves them, and every call is recorded.
#[derive(Default)]
struct FakeKafka {
    /// Brokers that cannot be reached: every describe fails.
    unreachable: std::sync::atomic::AtomicBool,
    /// ElectLeaders fails.
    election_fails: std::sync::atomic::AtomicBool,
    view: std::sync::Mutex<ScaleView>,
    calls: std::sync::Mutex<Vec<String>>,
}

/// Every partition led by its first replica, all replicas in sync.
fn preferred_leaders(assignment: &Assignment) -> Leaders {
    assignment
        .iter()
        .map(|(tp, replicas)| {
            (
                tp.clone(),
                Leadership {
                    leader: replicas.first().copied(),
                    isr: replicas.clone(),
                },
            )
        })
        .collect()
}

impl FakeKafka {
    fn new(brokers: &[i32], assignment: Assignment) -> Arc<FakeKafka> {
        let view = ScaleView {
            brokers: brokers
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
                .collect(),
            leaders: preferred_leaders(&assignment),
            assignment,
            in_flight: Default::default(),
        };
        Arc::new(FakeKafka {
            view: std::sync::Mutex::new(view),
            ..FakeKafka::default()
        })
    }

    /// Partitions whose leader is not their first replica, as `elect` calls name them.
    fn not_preferred(&self) -> Vec<String> {
        let view = self.view();
        view.assignment
            .iter()
            .filter(|(tp, r)| view.leaders.get(*tp).and_then(|l| l.leader) != r.first().copied())
            .map(|(tp, _)| tp.to_string())
            .collect()
    }

    fn view(&self) -> ScaleView {
        self.view.lock().expect("fake view").clone()
    }

    fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().expect("fake calls"))
    }

    fn note(&self, call: String) {
        self.calls.lock().expect("fake calls").push(call);
    }

    fn fence(&self, broker: i32) {
        if let Some(b) = self
            .view
            .lock()
            .expect("fake view")
            .brokers
            .get_mut(&broker)
        {
            b.fenced = true;
        }
    }
}

impl ClusterAdmin for FakeKafka {
    fn describe<'a>(
        &'a self,
        _bootstrap: &'a Brokers,
    ) -> BoxFuture<'a, Result<ScaleView, KafkaError>> {
        self.note("describe".into());
        let view = self.view();
        let down = self.unreachable.load(std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            if down {
                return Err(KafkaError::Unreachable {
                    addresses: Vec::new(),
                    last: "connection refused".into(),
                });
            }
            Ok(view)
        })
    }
    fn reassign<'a>(
        &'a self,
        _bootstrap: &'a Brokers,
        moves: &'a [Move],
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        self.note(format!("reassign {}", moves.len()));
        let mut view = self.view.lock().expect("fake view");
        view.assignment = apply_moves(&view.assignment, moves);
        for m in moves {
            let Some(now) = view.leaders.get_mut(&m.partition) else {
                continue;
            };
            now.isr = m.to.clone();
            if !now.leader.is_some_and(|l| m.to.contains(&l)) {
                now.leader = m.to.first().copied();
            }
        }
        Box::pin(async { Ok(()) })
    }
    fn set_throttles<'a>(
        &'a self,
        _bootstrap: &'a Brokers,
        rate: u64,
        _brokers: &'a BTreeSet<i32>,
        topics: &'a BTreeMap<String, TopicThrottle>,
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        self.note(format!(
            "throttle {rate} {:?}",
            topics.keys().collect::<Vec<_>>()
        ));
        Box::pin(async { Ok(()) })
    }
    fn clear_throttles<'a>(
        &'a self,
        _bootstrap: &'a Brokers,
        _brokers: &'a BTreeSet<i32>,
        topics: &'a [String],
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        self.note(format!("unthrottle {topics:?}"));
        Box::pin(async { Ok(()) })
    }
    fn unregister<'a>(
        &'a self,
        _bootstrap: &'a Brokers,
        broker: i32,
    ) -> BoxFuture<'a, Result<(), KafkaError>> {
        self.note(format!("unregister {broker}"));
        self.view.lock().expect("fake view").brokers.remove(&broker);
        Box::pin(async { Ok(()) })
    }
    fn elect_preferred<'a>(
        &'a self,
        _bootstrap: &'a Brokers,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<TopicPartition>, KafkaError>> {
        let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
        self.note(format!("elect {}", names.join(",")));
        if self
            .election_fails
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Box::pin(async {
                Err(KafkaError::Timeout {
                    api: "ElectLeaders",
                    after: Duration::from_secs(30),
                })
            });
        }
        let mut view = self.view.lock().expect("fake view");
        let mut moved = Vec::new();
        for tp in partitions {
            let preferred = view.assignment.get(tp).and_then(|r| r.first().copied());
            if let Some(now) = view.leaders.get_mut(tp) {
                if now.leader != preferred {
                    now.leader = preferred;
                    moved.push(tp.clone());
                }
            }
        }
        Box::pin(async move { Ok(moved) })
    }
}

/// `partitions` partitions of `topic` at `rf`, round-robin over `brokers`.
fn spread_topic(a: &mut Assignment, topic: &str, partitions: i32, rf: usize, brokers: &[i32]) {
    for p in 0..partitions {
        let replicas = (0..rf)
            .map(|i| brokers[(p as usize + i) % brokers.len()])
            .collect();
        a.insert(TopicPartition::new(topic, p), replicas);
    }
}

fn sts_replicas(h: &Harness) -> i64 {
    h.fake.get(STS).expect("StatefulSet")["spec"]["replicas"]
        .as_i64()
        .expect("replicas")
}

#[tokio::test]
async fn scale_down_holds_the_stateful_set_until_the_leaving_brokers_are_drained() {
    let mut assignment = Assignment::new();
    spread_topic(&mut assignment, "orders", 24, 3, &[0, 1, 2, 3, 4]);
    let kafka = FakeKafka::new(&[0, 1, 2, 3, 4], assignment);
    let h = Harness::with_kafka(spec(5), kafka.clone());
    h.reconcile().await;
    h.brokers_ready(5);
    h.reconcile().await;
    assert!(
        kafka.take_calls().is_empty(),
        "a steady cluster asks the brokers nothing"
    );

    h.change_spec(|s| s["replicas"] = json!(3));
    let keep: BTreeSet<i32> = [0, 1, 2].into();
    let mut batches = 0;
    while replicas_outside(&kafka.view().assignment, &keep) > 0 {
        let writes = lines(&h.reconcile().await);
        batches += 1;
        assert!(batches < 20, "the drain does not finish");
        assert!(
            !writes.contains(&patch(STS)),
            "the StatefulSet is not touched while brokers 3 and 4 hold replicas"
        );
        assert_eq!(sts_replicas(&h), 5);
        assert_eq!(h.status()["scaling"]["phase"], "Draining");
        assert_eq!(h.status()["scaling"]["id"], "5to3");
        let calls = kafka.take_calls();
        assert!(
            calls.iter().any(|c| c.starts_with("throttle 52428800")),
            "{calls:?}"
        );
        assert!(calls.iter().any(|c| c.starts_with("reassign")), "{calls:?}");
    }
    // 24 partitions x 3 replicas; 3 and 4 held 29 of them, moved 10 partitions a batch.
    assert!(batches >= 2, "moves went in batches, got {batches}");
    let cm = h.fake.get(CM).expect("ConfigMap");
    assert!(
        cm["data"]["broker-4.properties"].is_string(),
        "held brokers keep their configuration"
    );

    // Drained: the StatefulSet shrinks, the throttles go.
    let writes = lines(&h.reconcile().await);
    assert!(writes.contains(&patch(STS)), "{writes:?}");
    assert_eq!(sts_replicas(&h), 3);
    assert_eq!(h.status()["scaling"]["phase"], "Shrinking");
    assert!(kafka
        .take_calls()
        .iter()
        .any(|c| c.starts_with("unthrottle")));
    assert_eq!(
        h.status()["scaling"]["movesDone"],
        h.status()["scaling"]["movesTotal"]
    );
    for (tp, replicas) in &kafka.view().assignment {
        assert_eq!(replicas.len(), 3, "{tp} kept its replication factor");
    }

    // Pods gone, registrations fenced: unregistered, then done.
    h.reconcile().await;
    assert_eq!(h.status()["scaling"]["phase"], "Unregistering");
    assert!(!kafka
        .take_calls()
        .iter()
        .any(|c| c.starts_with("unregister")));
    kafka.fence(3);
    kafka.fence(4);
    h.reconcile().await;
    assert_eq!(
        kafka
            .take_calls()
            .into_iter()
            .filter(|c| c.starts_with("unregister"))
            .collect::<Vec<_>>(),
        vec!["unregister 3", "unregister 4"]
    );
    h.brokers_ready(3);
    h.reconcile().await;
    assert!(h.status()["scaling"].is_null(), "{}", h.status());
    assert_eq!(h.condition("Ready")["status"], "True");
}

#[tokio::test]
async fn refused_scale_down_sets_the_warning_and_moves_nothing() {
    let mut assignment = Assignment::new();
    spread_topic(&mut assignment, "orders", 6, 3, &[0, 1, 2, 3, 4]);
    spread_topic(&mut assignment, "wide", 2, 5, &[0, 1, 2, 3, 4]);
    let kafka = FakeKafka::new(&[0, 1, 2, 3, 4], assignment.clone());
    let h = Harness::with_kafka(spec(5), kafka.clone());
    h.reconcile().await;
    h.brokers_ready(5);
    h.reconcile().await;

    h.change_spec(|s| s["replicas"] = json!(3));
    let writes = lines(&h.reconcile().await);
    assert!(!writes.contains(&patch(STS)), "{writes:?}");
    assert!(writes.contains(&event()), "a Warning Event: {writes:?}");
    assert_eq!(sts_replicas(&h), 5);
    assert_eq!(kafka.take_calls(), vec!["describe"], "nothing moved");
    assert_eq!(kafka.view().assignment, assignment);
    let warning = h.condition("Warning");
    assert_eq!(warning["status"], "True");
    assert_eq!(warning["reason"], "ScaleDownRefused");
    assert!(
        warning["message"].as_str().unwrap_or("").contains("wide"),
        "{warning}"
    );
    assert_eq!(h.status()["scaling"]["phase"], "Refused");
    assert_eq!(h.status()["scaling"]["blockedTopics"], json!(["wide"]));

    // Asked again, still refused, and no second Event or status write.
    assert_eq!(lines(&h.reconcile().await), Vec::<String>::new());
    assert_eq!(kafka.take_calls(), vec!["describe"]);

    // Back to 5: the refusal clears.
    h.change_spec(|s| s["replicas"] = json!(5));
    h.reconcile().await;
    assert_eq!(h.condition("Warning")["status"], "False");
}

#[tokio::test]
async fn scale_up_grows_then_moves_partitions_onto_the_new_brokers() {
    let mut assignment = Assignment::new();
    spread_topic(&mut assignment, "orders", 12, 3, &[0, 1, 2]);
    let kafka = FakeKafka::new(&[0, 1, 2], assignment);
    let h = Harness::with_kafka(spec(3), kafka.clone());
    h.reconcile().await;
    h.brokers_ready(3);
    h.reconcile().await;

    h.change_spec(|s| s["replicas"] = json!(5));
    let writes = lines(&h.reconcile().await);
    assert!(writes.contains(&patch(STS)));
    assert_eq!(sts_replicas(&h), 5);
    assert_eq!(h.status()["scaling"]["phase"], "Growing");
    // The new brokers have not registered: nothing moves yet.
    h.reconcile().await;
    assert_eq!(h.status()["scaling"]["phase"], "WaitingForBrokers");
    assert!(!kafka.take_calls().iter().any(|c| c.starts_with("reassign")));

    {
        let mut view = kafka.view.lock().expect("fake view");
        for b in [3, 4] {
            view.brokers.insert(
                b,
                BrokerState {
                    rack: None,
                    fenced: false,
                },
            );
        }
    }
    for _ in 0..10 {
        h.reconcile().await;
        if h.status()["scaling"].is_null() {
            break;
        }
    }
    assert!(h.status()["scaling"].is_null(), "{}", h.status());
    let mut counts = BTreeMap::new();
    for b in kafka.view().assignment.values().flatten() {
        *counts.entry(*b).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|&n| n == 7 || n == 8), "{counts:?}");
}

/// Notes of the Events with `reason` the writes created.
fn event_notes(writes: &[Call], reason: &str) -> Vec<String> {
    writes
        .iter()
        .filter(|c| c.method == "POST" && c.path.starts_with(EVENTS))
        .filter_map(|c| c.body.as_ref())
        .filter(|b| b["reason"] == reason)
        .map(|b| b["note"].as_str().unwrap_or("").to_string())
        .collect()
}

/// 3 -> `to` brokers with the new ones registered at once: the reconciles up to the
/// first batch of moves.
async fn scaled_up(kafka: &Arc<FakeKafka>, to: i32) -> Harness {
    let h = Harness::with_kafka(spec(3), kafka.clone());
    h.reconcile().await;
    h.brokers_ready(3);
    h.reconcile().await;
    h.change_spec(|s| s["replicas"] = json!(to));
    h.reconcile().await;
    {
        let mut view = kafka.view.lock().expect("fake view");
        for b in 3..to {
            view.brokers.insert(
                b,
                BrokerState {
                    rack: None,
                    fenced: false,
                },
            );
        }
    }
    kafka.take_calls();
    h
}

#[tokio::test]
async fn finished_moves_elect_the_preferred_leaders_they_set() {
    let mut assignment = Assignment::new();
    spread_topic(&mut assignment, "orders", 12, 3, &[0, 1, 2]);
    let kafka = FakeKafka::new(&[0, 1, 2], assignment);
    let h = scaled_up(&kafka, 5).await;

    let (mut elected, mut started) = (0, 0);
    for _ in 0..10 {
        // What the brokers show before the reconcile: the last batch is done.
        let expected = kafka.not_preferred();
        let writes = h.reconcile().await;
        let calls = kafka.take_calls();
        let elect: Vec<&String> = calls.iter().filter(|c| c.starts_with("elect")).collect();
        let notes = event_notes(&writes, "LeadersMoved");
        if expected.is_empty() {
            assert!(elect.is_empty(), "{calls:?}");
            assert!(notes.is_empty(), "{notes:?}");
        } else {
            assert_eq!(elect, vec![&format!("elect {}", expected.join(","))]);
            assert_eq!(notes.len(), 1, "one Event: {notes:?}");
            assert!(
                notes[0].starts_with(&format!("{} leaderships moved", expected.len())),
                "{notes:?}"
            );
            elected += expected.len();
        }
        started += calls
            .iter()
            .filter_map(|c| c.strip_prefix("reassign "))
            .filter_map(|n| n.parse::<usize>().ok())
            .sum::<usize>();
        if h.status()["scaling"].is_null() {
            break;
        }
    }
    assert!(h.status()["scaling"].is_null(), "{}", h.status());
    assert!(elected > 0, "the moves left some partitions led elsewhere");
    assert_eq!(kafka.not_preferred(), Vec::<String>::new());

    let text = h.ctx.metrics.render();
    for line in [
        format!(
            r#"strom_operator_partition_moves_started_total{{cluster="kafka/my-cluster"}} {started}"#
        ),
        format!(
            r#"strom_operator_partition_moves_completed_total{{cluster="kafka/my-cluster"}} {started}"#
        ),
        r#"strom_operator_scale_in_progress{cluster="kafka/my-cluster"} 0"#.to_string(),
    ] {
        assert!(text.contains(&line), "{line} in {text}");
    }
    assert!(
        text.contains(
            r#"strom_operator_leader_elections_total{cluster="kafka/my-cluster",result="ok"}"#
        ),
        "{text}"
    );
    assert!(!text.contains(r#"result="failed""#), "{text}");
}

#[tokio::test]
async fn a_failed_election_holds_the_finished_scale_and_is_retried() {
    let mut assignment = Assignment::new();
    spread_topic(&mut assignment, "orders", 12, 3, &[0, 1, 2]);
    let kafka = FakeKafka::new(&[0, 1, 2], assignment);
    let h = scaled_up(&kafka, 4).await;
    kafka
        .election_fails
        .store(true, std::sync::atomic::Ordering::Relaxed);

    // Every batch is placed; the elections fail but no reconcile does.
    for _ in 0..10 {
        h.reconcile().await;
        if h.status()["scaling"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("electing preferred leaders failed"))
        {
            break;
        }
    }
    assert_eq!(h.status()["scaling"]["phase"], "Moving", "{}", h.status());
    assert!(!kafka.not_preferred().is_empty());
    let text = h.ctx.metrics.render();
    assert!(
        text.contains(
            r#"strom_operator_leader_elections_total{cluster="kafka/my-cluster",result="failed"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"strom_operator_scale_in_progress{cluster="kafka/my-cluster"} 1"#));

    // The brokers accept it again: the next reconcile elects and the scale is done.
    kafka
        .election_fails
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let writes = h.reconcile().await;
    assert_eq!(event_notes(&writes, "LeadersMoved").len(), 1);
    assert_eq!(event_notes(&writes, "ScaleDone").len(), 1);
    assert!(h.status()["scaling"].is_null(), "{}", h.status());
    assert_eq!(kafka.not_preferred(), Vec::<String>::new());
    assert!(h
        .ctx
        .metrics
        .render()
        .contains(r#"strom_operator_scale_in_progress{cluster="kafka/my-cluster"} 0"#));
}

#[tokio::test]
async fn the_voters_are_never_removed_even_with_the_brokers_unreachable() {
    let kafka = FakeKafka::new(&[0, 1, 2, 3], Assignment::new());
    let h = Harness::with_kafka(spec(4), kafka.clone());
    h.reconcile().await;
    h.brokers_ready(4);
    h.reconcile().await;
    kafka
        .unreachable
        .store(true, std::sync::atomic::Ordering::Relaxed);

    h.change_spec(|s| s["replicas"] = json!(2));
    let writes = lines(&h.reconcile().await);
    assert!(!writes.contains(&patch(STS)), "{writes:?}");
    assert_eq!(sts_replicas(&h), 4);
    // Two brokers also draw validation's own TwoBrokers warning.
    let reason = h.condition("Warning")["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        reason.split(',').any(|r| r == "ScaleDownRefused"),
        "{reason}"
    );
    assert_eq!(h.status()["scaling"]["phase"], "Refused");

    // A scale-down the voters allow waits for the brokers instead of shrinking blind.
    h.change_spec(|s| s["replicas"] = json!(3));
    h.reconcile().await;
    assert_eq!(sts_replicas(&h), 4);
    assert_eq!(h.status()["scaling"]["phase"], "Unreachable");
    assert_eq!(h.condition("Warning")["status"], "False");
}

fn partition(topic: &str, partition: i32, leader: i32, isr: &[i32]) -> HealthPartition {
    HealthPartition {
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
        ["my-cluster-bootstrap.kafka.svc:9092,\
          my-cluster-broker-0.my-cluster-brokers.kafka.svc:9091,\
          my-cluster-broker-1.my-cluster-brokers.kafka.svc:9091,\
          my-cluster-broker-2.my-cluster-brokers.kafka.svc:9091"]
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
