//! KafkaUser reconciles on the fake API server, with fake brokers behind `UserAdmin`
//! (and one test against a real in-process broker with the authorizer on): what is
//! written to Kubernetes, what is asked of the brokers, and what the status says.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kafka_protocol::ResponseError;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{json, Value};
use strom_client::admin::{AdminError, Refused};
use strom_client::admin_security::{
    AclBinding, AclOperation, AclPermission, PatternType, QuotaOp, ResourceType,
};

use super::kafka::{Observed, UserAdmin};
use super::reconcile::{reconcile, Context};
use super::secret::{password_hash, PASSWORD_HASH_ANNOTATION};
use super::status::FINALIZER;
use crate::access::Brokers;
use crate::fixtures::{self, Call, FakeApi};
use crate::metrics::Metrics;

const NS: &str = "/apis/kafka.strom.dev/v1alpha1/namespaces/kafka";
const SECRETS: &str = "/api/v1/namespaces/kafka/secrets";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/kafka/events";

fn user_path(name: &str) -> String {
    format!("{NS}/kafkausers/{name}")
}

fn secret_path(name: &str) -> String {
    format!("{SECRETS}/{name}")
}

fn cluster_path() -> String {
    format!("{NS}/kafkaclusters/my-cluster")
}

/// What the brokers hold per user name, and every call made to them.
#[derive(Default)]
struct FakeBrokers {
    /// SCRAM-SHA-512 passwords by user name.
    scram: Mutex<BTreeMap<String, String>>,
    acls: Mutex<BTreeSet<AclBinding>>,
    quotas: Mutex<BTreeMap<String, BTreeMap<String, f64>>>,
    calls: Mutex<Vec<String>>,
    /// Kafka refuses every change with this, while set.
    refuse: Mutex<Option<Refused>>,
}

impl FakeBrokers {
    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn refusal(&self) -> Result<(), AdminError> {
        match self.refuse.lock().unwrap().clone() {
            Some(r) => Err(AdminError::Refused(r)),
            None => Ok(()),
        }
    }

    fn acls_of(&self, principal: &str) -> Vec<AclBinding> {
        self.acls
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b.principal == principal)
            .cloned()
            .collect()
    }
}

impl UserAdmin for FakeBrokers {
    fn observe<'a>(
        &'a self,
        _: &'a Brokers,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Observed, AdminError>> {
        Box::pin(async move {
            self.note(format!("observe {username}"));
            Ok(Observed {
                scram: self.scram.lock().unwrap().contains_key(username),
                acls: self.acls_of(&format!("User:{username}")),
                quotas: self
                    .quotas
                    .lock()
                    .unwrap()
                    .get(username)
                    .cloned()
                    .unwrap_or_default(),
            })
        })
    }
    fn upsert_scram<'a>(
        &'a self,
        _: &'a Brokers,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            self.note(format!("upsert {username}"));
            self.refusal()?;
            self.scram
                .lock()
                .unwrap()
                .insert(username.into(), password.into());
            Ok(())
        })
    }
    fn delete_scram<'a>(
        &'a self,
        _: &'a Brokers,
        username: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            self.note(format!("delete scram {username}"));
            self.scram.lock().unwrap().remove(username);
            Ok(())
        })
    }
    fn create_acls<'a>(
        &'a self,
        _: &'a Brokers,
        acls: &'a [AclBinding],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            self.note(format!("create {} acls", acls.len()));
            self.refusal()?;
            self.acls.lock().unwrap().extend(acls.iter().cloned());
            Ok(())
        })
    }
    fn delete_acls<'a>(
        &'a self,
        _: &'a Brokers,
        acls: &'a [AclBinding],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            if !acls.is_empty() {
                self.note(format!("delete {} acls", acls.len()));
            }
            let mut held = self.acls.lock().unwrap();
            for b in acls {
                held.remove(b);
            }
            Ok(())
        })
    }
    fn alter_quotas<'a>(
        &'a self,
        _: &'a Brokers,
        username: &'a str,
        ops: &'a [QuotaOp],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            if ops.is_empty() {
                return Ok(());
            }
            self.note(format!("alter {} quotas of {username}", ops.len()));
            self.refusal()?;
            let mut quotas = self.quotas.lock().unwrap();
            let entity = quotas.entry(username.to_string()).or_default();
            for op in ops {
                match op {
                    QuotaOp::Set { key, value } => {
                        entity.insert(key.clone(), *value);
                    }
                    QuotaOp::Remove { key } => {
                        entity.remove(key);
                    }
                }
            }
            Ok(())
        })
    }
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

struct Harness {
    fake: FakeApi,
    ctx: Arc<Context>,
    brokers: Arc<FakeBrokers>,
}

impl Harness {
    fn new() -> Harness {
        let (mut ctx, fake) = fake_context();
        let brokers = Arc::new(FakeBrokers::default());
        ctx.admin = brokers.clone();
        Harness::with(ctx, fake, brokers)
    }

    fn with(ctx: Context, fake: FakeApi, brokers: Arc<FakeBrokers>) -> Harness {
        let cluster = fixtures::cluster(json!({
            "replicas": 1,
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
        }
    }

    fn add_user(&self, name: &str, spec: Value) {
        let object = json!({
            "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaUser",
            "metadata": {
                "name": name, "namespace": "kafka", "uid": format!("uid-{name}"),
                "generation": 1, "resourceVersion": "1",
                "labels": {"kafka.strom.dev/cluster": "my-cluster"},
            },
            "spec": spec,
        });
        self.fake.insert(&user_path(name), object);
    }

    fn user(&self, name: &str) -> crate::crd::KafkaUser {
        serde_json::from_value(self.fake.get(&user_path(name)).expect("user stored"))
            .expect("user parses")
    }

    async fn reconcile(&self, name: &str) -> (Action, Vec<String>) {
        let action = reconcile(Arc::new(self.user(name)), self.ctx.clone())
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
        self.fake.get(&user_path(name)).expect("user stored")["status"].clone()
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
        self.fake.get(&user_path(name)).expect("user stored")["metadata"]["finalizers"].clone()
    }

    /// A key of a stored Secret, decoded.
    fn secret_key(&self, name: &str, key: &str) -> Option<String> {
        let secret: k8s_openapi::api::core::v1::Secret =
            serde_json::from_value(self.fake.get(&secret_path(name))?).ok()?;
        super::secret::key_text(&secret, key)
    }

    fn edit_spec(&self, name: &str, change: impl FnOnce(&mut Value)) {
        self.fake.edit(&user_path(name), |u| {
            change(&mut u["spec"]);
            let generation = u["metadata"]["generation"].as_i64().unwrap_or(1);
            u["metadata"]["generation"] = json!(generation + 1);
        });
    }

    fn delete(&self, name: &str) {
        self.fake.edit(&user_path(name), |u| {
            u["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        });
    }
}

fn patch(path: &str) -> String {
    format!("PATCH {path}")
}

fn status_patch(name: &str) -> String {
    format!("PATCH {}/status", user_path(name))
}

fn scram_spec() -> Value {
    json!({
        "authentication": {"type": "scram-sha-512"},
        "authorization": {"type": "simple", "acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
            {"resource": {"type": "group", "name": "app-", "patternType": "prefix"}, "operations": ["All"]},
            {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
        ]},
        "quotas": {"producerByteRate": 1048576, "requestPercentage": 50},
    })
}

fn acl(principal: &str, rt: ResourceType, name: &str, op: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: PatternType::Literal,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: AclPermission::Allow,
    }
}

#[tokio::test]
async fn a_scram_user_gets_its_credential_secret_acls_and_quotas_then_goes_quiet() {
    let h = Harness::new();
    h.add_user("alice", scram_spec());

    let (action, writes) = h.reconcile("alice").await;
    assert_eq!(
        writes,
        vec![
            patch(&user_path("alice")),
            "EVENT".into(),
            patch(&secret_path("alice")),
            "EVENT".into(),
            status_patch("alice"),
            "EVENT".into(),
        ]
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(120)));
    assert_eq!(h.finalizers("alice"), json!([FINALIZER]));
    assert_eq!(
        h.brokers.take_calls(),
        vec![
            "observe alice",
            "upsert alice",
            "create 4 acls",
            "alter 2 quotas of alice"
        ]
    );

    let password = h.secret_key("alice", "password").expect("password");
    assert_eq!(password.len(), 32);
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        h.brokers.scram.lock().unwrap().get("alice"),
        Some(&password)
    );
    assert_eq!(
        h.secret_key("alice", "sasl.jaas.config").expect("jaas"),
        format!("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"{password}\";")
    );
    let secret = h.fake.get(&secret_path("alice")).expect("secret");
    assert_eq!(
        secret["metadata"]["annotations"][PASSWORD_HASH_ANNOTATION],
        json!(password_hash("alice", &password))
    );
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "uid-alice");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "KafkaUser"
    );

    let acls = h.brokers.acls_of("User:alice");
    assert_eq!(acls.len(), 4);
    assert!(acls.contains(&acl(
        "User:alice",
        ResourceType::Cluster,
        "kafka-cluster",
        AclOperation::IdempotentWrite
    )));
    assert!(acls.iter().any(|b| b.resource_type == ResourceType::Group
        && b.pattern_type == PatternType::Prefixed
        && b.operation == AclOperation::All));
    assert_eq!(
        h.brokers.quotas.lock().unwrap()["alice"],
        BTreeMap::from([
            ("producer_byte_rate".to_string(), 1_048_576.0),
            ("request_percentage".to_string(), 50.0)
        ])
    );
    let status = h.status("alice");
    assert_eq!(status["username"], "alice");
    assert_eq!(status["secret"], "alice");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(h.ready("alice").0, "True");

    // In sync: the brokers are asked, the password is kept, nothing is written.
    let (_, writes) = h.reconcile("alice").await;
    assert_eq!(writes, Vec::<String>::new());
    assert_eq!(h.brokers.take_calls(), vec!["observe alice"]);
    assert_eq!(h.secret_key("alice", "password"), Some(password));
}

#[tokio::test]
async fn acls_and_quotas_are_synced_exactly_and_drift_is_reverted() {
    let h = Harness::new();
    h.add_user("alice", scram_spec());
    h.reconcile("alice").await;
    h.brokers.take_calls();

    // Changed on the brokers directly: an extra ACL of the principal, one removed, an
    // extra quota. Another principal's ACL is not touched.
    let extra = acl(
        "User:alice",
        ResourceType::Topic,
        "secret",
        AclOperation::Write,
    );
    let other = acl(
        "User:bob",
        ResourceType::Topic,
        "orders",
        AclOperation::Read,
    );
    let removed = acl(
        "User:alice",
        ResourceType::Topic,
        "orders",
        AclOperation::Read,
    );
    {
        let mut acls = h.brokers.acls.lock().unwrap();
        acls.insert(extra.clone());
        acls.insert(other.clone());
        acls.remove(&removed);
    }
    h.brokers
        .quotas
        .lock()
        .unwrap()
        .entry("alice".into())
        .or_default()
        .insert("consumer_byte_rate".into(), 1.0);

    let (_, writes) = h.reconcile("alice").await;
    assert_eq!(writes, vec!["EVENT".to_string()]);
    assert_eq!(
        h.brokers.take_calls(),
        vec![
            "observe alice",
            "create 1 acls",
            "delete 1 acls",
            "alter 1 quotas of alice"
        ]
    );
    let acls = h.brokers.acls_of("User:alice");
    assert!(acls.contains(&removed) && !acls.contains(&extra));
    assert!(h.brokers.acls.lock().unwrap().contains(&other));
    assert!(!h.brokers.quotas.lock().unwrap()["alice"].contains_key("consumer_byte_rate"));

    // The spec drops its rules and quotas: the brokers follow.
    h.edit_spec("alice", |s| {
        s.as_object_mut().expect("spec").remove("authorization");
        s.as_object_mut().expect("spec").remove("quotas");
    });
    h.reconcile("alice").await;
    assert!(h.brokers.acls_of("User:alice").is_empty());
    assert!(h.brokers.quotas.lock().unwrap()["alice"].is_empty());
    assert_eq!(h.status("alice")["observedGeneration"], 2);
}

#[tokio::test]
async fn a_password_is_re_upserted_only_when_it_changes() {
    let h = Harness::new();
    h.add_user(
        "alice",
        json!({"authentication": {"type": "scram-sha-512"}}),
    );
    h.reconcile("alice").await;
    let generated = h.secret_key("alice", "password").expect("password");
    h.brokers.take_calls();

    // The password moves to a Secret of the user's own.
    h.fake.insert(
        &secret_path("alice-password"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "alice-password", "namespace": "kafka"},
               "data": {"pw": "aHVudGVyMg=="}}),
    );
    h.edit_spec("alice", |s| {
        s["authentication"]["password"] =
            json!({"valueFrom": {"secretKeyRef": {"name": "alice-password", "key": "pw"}}});
    });
    h.reconcile("alice").await;
    assert_eq!(
        h.brokers.take_calls(),
        vec!["observe alice", "upsert alice"]
    );
    assert_eq!(
        h.secret_key("alice", "password").as_deref(),
        Some("hunter2")
    );
    assert_ne!(generated, "hunter2");
    assert_eq!(
        h.brokers
            .scram
            .lock()
            .unwrap()
            .get("alice")
            .map(String::as_str),
        Some("hunter2")
    );

    // Unchanged: no upsert.
    h.reconcile("alice").await;
    assert_eq!(h.brokers.take_calls(), vec!["observe alice"]);

    // The credential vanished from the brokers: it is put back.
    h.brokers.scram.lock().unwrap().clear();
    h.reconcile("alice").await;
    assert_eq!(
        h.brokers.take_calls(),
        vec!["observe alice", "upsert alice"]
    );

    // A password Secret that is missing: Ready=False, nothing applied.
    h.edit_spec("alice", |s| {
        s["authentication"]["password"]["valueFrom"]["secretKeyRef"]["key"] = json!("nope");
    });
    h.reconcile("alice").await;
    assert!(h.brokers.take_calls().is_empty());
    let (ready, reason, message) = h.ready("alice");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "PasswordSecretNotFound")
    );
    assert!(message.contains("alice-password"), "{message}");
}

#[tokio::test]
async fn a_bad_spec_touches_nothing_and_others_keep_reconciling() {
    let h = Harness::new();
    h.add_user(
        "alice",
        json!({"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read"]},
            {"resource": {"type": "group", "name": "g"}, "operations": ["Write"]},
        ]}}),
    );
    let (action, writes) = h.reconcile("alice").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(writes, vec![status_patch("alice"), "EVENT".into()]);
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.fake.get(&secret_path("alice")).is_none());
    assert_eq!(h.finalizers("alice"), Value::Null);
    let (ready, reason, message) = h.ready("alice");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "InvalidAclRule")
    );
    assert!(message.contains("acls[1]"), "{message}");

    h.add_user("bob", json!({"authentication": {"type": "scram-sha-512"}}));
    h.reconcile("bob").await;
    assert_eq!(h.ready("bob").0, "True");
}

#[tokio::test]
async fn without_a_cluster_or_a_label_nothing_is_touched() {
    let h = Harness::new();
    h.add_user("alice", scram_spec());
    h.fake.edit(&user_path("alice"), |u| {
        u["metadata"]["labels"] = json!({});
    });
    let (action, _) = h.reconcile("alice").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    assert_eq!(h.ready("alice").1, "ClusterLabelMissing");

    h.fake.edit(&user_path("alice"), |u| {
        u["metadata"]["labels"] = json!({"kafka.strom.dev/cluster": "elsewhere"});
    });
    h.reconcile("alice").await;
    let (ready, reason, message) = h.ready("alice");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ClusterNotFound")
    );
    assert!(message.contains("elsewhere"), "{message}");
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.fake.get(&secret_path("alice")).is_none());
}

#[tokio::test]
async fn a_tls_user_waits_for_the_clients_ca() {
    let h = Harness::new();
    h.add_user(
        "app",
        json!({"authentication": {"type": "tls"}, "authorization": {"type": "simple", "acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read"]}]}}),
    );
    let (action, _) = h.reconcile("app").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let (ready, reason, _) = h.ready("app");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "CertificateAuthorityNotReady")
    );
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.fake.get(&secret_path("app")).is_none());
}

/// A secured cluster as its reconcile leaves it: the KafkaCluster and every certificate
/// Secret the certificates step writes.
fn secure_the_cluster(h: &Harness) {
    let cluster = fixtures::cluster(json!({
        "replicas": 1,
        "listeners": [{"name": "mtls", "port": 9094, "tls": true,
                       "authentication": {"type": "tls"}}],
        "authorization": {"type": "simple"},
    }));
    h.fake.insert(
        &cluster_path(),
        serde_json::to_value(&cluster).expect("cluster serializes"),
    );
    let certs = crate::certs::reconcile_certificates(&crate::certs::CertsRequest {
        cluster: "my-cluster",
        namespace: "kafka",
        brokers: &[],
        cluster_ca: Default::default(),
        clients_ca: Default::default(),
        existing: Default::default(),
        now: std::time::SystemTime::now(),
        brokers_current: true,
        forced_cluster_ca: Default::default(),
        forced_clients_ca: Default::default(),
    })
    .expect("certificates");
    for (name, data) in certs.secrets("my-cluster") {
        let data: BTreeMap<String, String> = data
            .iter()
            .map(|(k, v)| (k.clone(), base64(&v.0)))
            .collect();
        h.fake.insert(
            &secret_path(&name),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": "kafka"}, "data": data}),
        );
    }
}

fn base64(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .expect("ByteString serializes as base64")
}

#[tokio::test]
async fn a_tls_user_gets_a_certificate_from_the_clients_ca() {
    let h = Harness::new();
    secure_the_cluster(&h);
    h.add_user(
        "app",
        json!({"authentication": {"type": "tls"}, "authorization": {"type": "simple", "acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read"]}]}}),
    );
    h.reconcile("app").await;
    let (ready, reason, message) = h.ready("app");
    assert_eq!(ready, "True", "{reason}: {message}");
    let secret = h.fake.get(&secret_path("app")).expect("the user's Secret");
    for key in [
        "ca.crt",
        "user.crt",
        "user.key",
        "user.p12",
        "user.password",
    ] {
        assert!(secret["data"][key].is_string(), "{key} in {secret}");
    }
    assert_eq!(h.status("app")["username"], "CN=app");
    let acls = h.brokers.acls.lock().unwrap().clone();
    assert!(
        acls.iter().all(|a| a.principal == "User:CN=app"),
        "{acls:?}"
    );

    // The next reconcile keeps the certificate.
    h.reconcile("app").await;
    let again = h.fake.get(&secret_path("app")).expect("the user's Secret");
    assert_eq!(again["data"]["user.crt"], secret["data"]["user.crt"]);
}

#[tokio::test]
async fn someone_elses_secret_is_not_taken_over() {
    let h = Harness::new();
    h.fake.insert(
        &secret_path("alice"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "alice", "namespace": "kafka"}, "data": {"x": "eA=="}}),
    );
    h.add_user("alice", scram_spec());
    h.reconcile("alice").await;
    assert_eq!(h.ready("alice").1, "SecretConflict");
    assert!(h.brokers.take_calls().is_empty());
    assert_eq!(
        h.fake.get(&secret_path("alice")).expect("kept")["data"],
        json!({"x": "eA=="})
    );
}

#[tokio::test]
async fn a_refusal_is_reported_and_backs_off() {
    let h = Harness::new();
    h.add_user("alice", scram_spec());
    *h.brokers.refuse.lock().unwrap() = Some(Refused {
        api: "AlterUserScramCredentials",
        resource: "user alice".into(),
        code: ResponseError::UnsupportedSaslMechanism.code(),
        message: Some("no SCRAM here".into()),
    });
    let (first, _) = h.reconcile("alice").await;
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    let (ready, reason, message) = h.ready("alice");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "UnsupportedSaslMechanism")
    );
    assert!(message.contains("no SCRAM here"), "{message}");
    // Nothing half-written: no Secret for a password the brokers do not have.
    assert!(h.fake.get(&secret_path("alice")).is_none());
    let (second, _) = h.reconcile("alice").await;
    assert_eq!(second, Action::requeue(Duration::from_secs(10)));

    *h.brokers.refuse.lock().unwrap() = None;
    let (action, _) = h.reconcile("alice").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(120)));
    assert_eq!(h.ready("alice").0, "True");
}

#[tokio::test]
async fn deleting_the_user_removes_its_credential_acls_quotas_and_secret() {
    let h = Harness::new();
    h.add_user("alice", scram_spec());
    h.reconcile("alice").await;
    h.brokers.take_calls();

    h.delete("alice");
    let (action, _) = h.reconcile("alice").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(
        h.brokers.take_calls(),
        vec![
            "observe alice",
            "delete scram alice",
            "delete 4 acls",
            "alter 2 quotas of alice"
        ]
    );
    assert!(h.brokers.scram.lock().unwrap().is_empty());
    assert!(h.brokers.acls.lock().unwrap().is_empty());
    assert!(h.brokers.quotas.lock().unwrap()["alice"].is_empty());
    assert!(h.fake.get(&secret_path("alice")).is_none());
    assert_eq!(h.finalizers("alice"), json!([]));
}

#[tokio::test]
async fn switching_authentication_removes_the_old_principal() {
    let h = Harness::new();
    h.add_user("alice", scram_spec());
    h.reconcile("alice").await;
    assert_eq!(h.status("alice")["username"], "alice");
    // A tls user cannot be finished before the CA module lands; the old principal stays
    // until the switch completes, so nothing is lost while it waits.
    h.edit_spec("alice", |s| s["authentication"] = json!({"type": "tls"}));
    h.brokers.take_calls();
    h.reconcile("alice").await;
    assert_eq!(h.ready("alice").1, "CertificateAuthorityNotReady");
    assert!(h.brokers.take_calls().is_empty());
    assert!(h.brokers.scram.lock().unwrap().contains_key("alice"));
    // Deleting it now removes both principals.
    h.delete("alice");
    h.reconcile("alice").await;
    let calls = h.brokers.take_calls();
    assert!(calls.contains(&"observe CN=alice".to_string()), "{calls:?}");
    assert!(
        calls.contains(&"delete scram alice".to_string()),
        "{calls:?}"
    );
    assert!(h.brokers.acls.lock().unwrap().is_empty());
}

/// The real broker calls, on a broker at `address` whatever bootstrap the cluster names.
struct Loopback {
    address: String,
}

impl Loopback {
    fn at(&self) -> Brokers {
        Brokers::plaintext(vec![self.address.clone()])
    }
}

impl UserAdmin for Loopback {
    fn observe<'a>(
        &'a self,
        _: &'a Brokers,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Observed, AdminError>> {
        Box::pin(async move { super::kafka::observe(&self.at(), username).await })
    }
    fn upsert_scram<'a>(
        &'a self,
        _: &'a Brokers,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move { super::kafka::upsert_scram(&self.at(), username, password).await })
    }
    fn delete_scram<'a>(
        &'a self,
        _: &'a Brokers,
        username: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move { super::kafka::delete_scram(&self.at(), username).await })
    }
    fn create_acls<'a>(
        &'a self,
        _: &'a Brokers,
        acls: &'a [AclBinding],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move { super::kafka::create_acls(&self.at(), acls).await })
    }
    fn delete_acls<'a>(
        &'a self,
        _: &'a Brokers,
        acls: &'a [AclBinding],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move { super::kafka::delete_acls(&self.at(), acls).await })
    }
    fn alter_quotas<'a>(
        &'a self,
        _: &'a Brokers,
        username: &'a str,
        ops: &'a [QuotaOp],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move { super::kafka::alter_quotas(&self.at(), username, ops).await })
    }
}

/// Reconciles until `done` holds, as the controller's requeues would (the brokers apply
/// metadata changes a moment after they answer).
async fn reconcile_until(h: &Harness, name: &str, what: &str, done: impl Fn(&Harness) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let _ = reconcile(Arc::new(h.user(name)), h.ctx.clone()).await;
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
async fn reconciles_against_a_real_broker_with_the_authorizer_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = strom_broker::harness::start_plaintext_with(
        dir.path(),
        &[
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            ("super.users", "User:ANONYMOUS"),
        ],
        Duration::from_secs(60),
    )
    .await
    .expect("broker starts");
    let (mut ctx, fake) = fake_context();
    ctx.admin = Arc::new(Loopback {
        address: address.clone(),
    });
    let h = Harness::with(ctx, fake, Arc::new(FakeBrokers::default()));
    let bootstrap = Brokers::plaintext(vec![address.clone()]);

    h.add_user("alice", scram_spec());
    reconcile_until(&h, "alice", "applied", |h| h.ready("alice").0 == "True").await;
    let observe = || super::kafka::observe(&bootstrap, "alice");
    let seen = observe().await.expect("observe");
    assert!(seen.scram, "SCRAM-SHA-512 credential upserted");
    assert_eq!(seen.acls.len(), 4, "{:?}", seen.acls);
    assert_eq!(seen.quotas.get("producer_byte_rate"), Some(&1_048_576.0));

    // Drift on the broker is reverted.
    super::kafka::create_acls(
        &bootstrap,
        &[acl(
            "User:alice",
            ResourceType::Topic,
            "secret",
            AclOperation::Write,
        )],
    )
    .await
    .expect("CreateAcls");
    reconcile_until(&h, "alice", "drift reverted", |_| true).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let acls = observe().await.expect("observe").acls;
        if acls.len() == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{acls:?}");
        let _ = reconcile(Arc::new(h.user("alice")), h.ctx.clone()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleting the resource removes everything from the broker.
    h.delete("alice");
    h.reconcile("alice").await;
    assert_eq!(h.finalizers("alice"), json!([]));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = observe().await.expect("observe");
        if !seen.scram && seen.acls.is_empty() && seen.quotas.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.shutdown().await.expect("shutdown");
}
