//! A secured KafkaCluster as the operator renders it, on three real strom-brokers started
//! in this process, with the certificates the operator's own `certs` module issues,
//! written where the pods mount them. Replication and the controller quorum run over
//! mutual TLS with the cluster CA (a topic with three replicas gets all three in sync);
//! the operator reaches the replication listener with its own certificate and is a super
//! user; a KafkaUser certificate from the clients CA authenticates on the mTLS listener as
//! `User:CN=<name>` and does what its ACLs allow, and the replication listener refuses it;
//! a SCRAM user the operator created logs in on the SASL_SSL listener. Then the cluster CA
//! is renewed under the default policy (same key): a client that loaded only the old
//! `ca.crt` accepts the renewed leaf the broker reloads and serves; after a key replacement
//! the same client refuses the new leaf (the control).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::loopback::Localised;
use k8s_openapi::api::core::v1::Secret;
use kafka_protocol::ResponseError;
use serde_json::json;
use strom_broker::config::BrokerConfig;
use strom_broker::server::{self, Running};
use strom_client::admin::{Admin, AdminError};
use strom_client::admin_security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, ScramMechanism,
    ScramUpsertion,
};
use strom_client::sasl::SaslMechanism;
use strom_client::tls::TlsConfig;
use strom_client::Security;
use strom_operator::access::{self, Brokers};
use strom_operator::certs::{
    self, issue_user_certificate, names as cert_names, Authority, BrokerIdentity, CaKind,
    CertsOutput, CertsRequest, ExistingSecrets, Forced,
};
use strom_operator::cluster::{names, security};
use strom_operator::crd::KafkaCluster;
use strom_operator::topic::kafka as topic_kafka;
use strom_operator::topic::plan::{self, Desired};

const CLUSTER: &str = "secure";
const NAMESPACE: &str = "kafka";
const BROKERS: i32 = 3;
const SCRAM_PORT: u16 = 9094;
const MTLS_PORT: u16 = 9095;
const SETTLE: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(10);

fn cluster() -> KafkaCluster {
    serde_json::from_value(json!({
        "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": {"name": CLUSTER, "namespace": NAMESPACE, "uid": "u"},
        "spec": {
            "replicas": BROKERS,
            "listeners": [
                {"name": "scram", "port": SCRAM_PORT, "tls": true,
                 "authentication": {"type": "scram-sha-512"}},
                {"name": "mtls", "port": MTLS_PORT, "tls": true,
                 "authentication": {"type": "tls"}},
            ],
            "authorization": {"type": "simple"},
            "defaultReplicationFactor": 3,
            "minInsyncReplicas": 2,
        },
    }))
    .expect("a KafkaCluster")
}

/// Every certificate Secret of the cluster; the brokers are reached on 127.0.0.1 here,
/// so that is one of their names too (as an external address would be).
fn certificates() -> CertsOutput {
    let brokers = broker_identities();
    certs::reconcile_certificates(&CertsRequest {
        cluster: CLUSTER,
        namespace: NAMESPACE,
        brokers: &brokers,
        cluster_ca: Default::default(),
        clients_ca: Default::default(),
        existing: Default::default(),
        now: SystemTime::now(),
        brokers_current: true,
        forced_cluster_ca: Default::default(),
        forced_clients_ca: Default::default(),
    })
    .expect("certificates")
}

fn broker_identities() -> Vec<BrokerIdentity> {
    (0..BROKERS as u32)
        .map(|ordinal| BrokerIdentity {
            ordinal,
            extra_names: vec!["127.0.0.1".into()],
        })
        .collect()
}

/// The next reconcile's certificates, from what `stored` wrote, with a forced cluster CA
/// renewal (the `force-renew` / `force-replace` annotations) at the real time, so the
/// brokers' clocks agree with the certificates.
fn forced_renewal(stored: &CertsOutput, forced: Forced) -> CertsOutput {
    let cluster_ca = stored.cluster_ca.as_ref().expect("cluster CA");
    let clients_ca = stored.clients_ca.as_ref().expect("clients CA");
    certs::reconcile_certificates(&CertsRequest {
        cluster: CLUSTER,
        namespace: NAMESPACE,
        brokers: &broker_identities(),
        cluster_ca: Default::default(),
        clients_ca: Default::default(),
        existing: ExistingSecrets {
            cluster_ca_cert: Some(&cluster_ca.cert),
            cluster_ca_key: Some(&cluster_ca.key),
            clients_ca_cert: Some(&clients_ca.cert),
            clients_ca_key: Some(&clients_ca.key),
            broker_certs: Some(&stored.broker_certs),
            operator_certs: Some(&stored.operator_certs),
        },
        now: SystemTime::now(),
        brokers_current: false,
        forced_cluster_ca: forced,
        forced_clients_ca: Forced::default(),
    })
    .expect("renewed certificates")
}

fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    ::pem::parse_many(pem)
        .expect("PEM")
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect()
}

fn leaf_of(certs: &CertsOutput, ordinal: u32) -> Vec<u8> {
    pem_certs(&certs.broker_certs[&cert_names::broker_crt(ordinal)].0).swap_remove(0)
}

/// rustls' WebPkiServerVerifier, noting the certificate the broker presented.
#[derive(Debug)]
struct Recording {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
}

impl rustls::client::danger::ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("lock") = Some(end_entity.to_vec());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS handshake with `address` by a client whose truststore is `trusted` (PEM), as a
/// Kafka client that loaded it once: the leaf the broker presented, and whether the
/// client accepted it.
async fn handshake(address: String, trusted: Vec<u8>) -> (Option<Vec<u8>>, Result<(), String>) {
    tokio::task::spawn_blocking(move || {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in pem_certs(&trusted) {
            roots.add(der.into()).expect("a trust anchor");
        }
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("verifier");
        let seen = Arc::new(Mutex::new(None));
        let verifier = Arc::new(Recording {
            inner,
            seen: seen.clone(),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let outcome = (|| {
            let mut conn =
                rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
            let mut sock = std::net::TcpStream::connect(&address).map_err(|e| e.to_string())?;
            sock.set_read_timeout(Some(TIMEOUT))
                .map_err(|e| e.to_string())?;
            while conn.is_handshaking() {
                conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
            }
            Ok(())
        })();
        let leaf = seen.lock().expect("lock").take();
        (leaf, outcome)
    })
    .await
    .expect("handshake task")
}

/// The Secrets as the broker pods mount them, under `root` instead of the certs dir.
fn mount(certs: &CertsOutput, root: &Path) {
    let cluster_ca = certs.cluster_ca.as_ref().expect("generated cluster CA");
    let clients_ca = certs.clients_ca.as_ref().expect("generated clients CA");
    for (dir, data) in [
        (security::CLUSTER_CA_DIR, &cluster_ca.cert),
        (security::CLIENTS_CA_DIR, &clients_ca.cert),
        (security::BROKER_CERTS_DIR, &certs.broker_certs),
    ] {
        let dir = root.join(
            dir.trim_start_matches(security::CERTS_DIR)
                .trim_start_matches('/'),
        );
        std::fs::create_dir_all(&dir).expect("mount dir");
        for (key, value) in data {
            std::fs::write(dir.join(key), &value.0).expect("write a Secret key");
        }
    }
}

fn secret(data: &certs::SecretData) -> Secret {
    Secret {
        data: Some(data.clone()),
        ..Secret::default()
    }
}

/// The current cluster CA certificate alone, as PEM.
fn cluster_ca_pem_first(certs: &CertsOutput) -> Vec<u8> {
    let bundle = &certs.cluster_ca.as_ref().expect("CA").cert[cert_names::CA_CRT].0;
    let first = pem_certs(bundle).swap_remove(0);
    ::pem::encode(&::pem::Pem::new("CERTIFICATE", first)).into_bytes()
}

async fn admin(addresses: &[String], security: &Security) -> Result<Admin, AdminError> {
    Admin::connect_with(addresses, security, "secured-test", TIMEOUT, TIMEOUT).await
}

/// Polls `check` until it gives `Some`, failing with `what` after `SETTLE`.
async fn eventually<T, Fut: std::future::Future<Output = Result<T, String>>>(
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => assert!(Instant::now() < deadline, "{what}: {last}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_cluster_serves_its_operator_and_its_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = cluster();
    let certs = certificates();
    let mounted = dir.path().join("certs");
    mount(&certs, &mounted);
    let local = Localised::render(&spec, BROKERS, dir.path());
    let configs: Vec<BrokerConfig> = local
        .props
        .iter()
        .map(|props| {
            let props = props
                .iter()
                .map(|(k, v)| {
                    let v = v.replace(security::CERTS_DIR, &mounted.display().to_string());
                    (k.clone(), v)
                })
                .collect();
            BrokerConfig::from_properties(props)
                .expect("the broker accepts the secured config")
                .0
        })
        .collect();
    let starts: Vec<_> = configs
        .iter()
        .map(|c| tokio::spawn(server::start(c.clone(), true)))
        .collect();
    let mut running: Vec<Running> = Vec::new();
    for start in starts {
        running.push(
            tokio::time::timeout(SETTLE, start)
                .await
                .expect("started in time")
                .expect("start task")
                .expect("the broker starts"),
        );
    }

    // The operator: its certificate from the operator Secret, the replication listener.
    let mut operator = access::from_secret(&spec, Some(&secret(&certs.operator_certs)))
        .expect("the operator's credentials");
    assert_eq!(operator.security.protocol(), "SSL");
    let replication = names::REPLICATION_PORT as u16;
    operator.addresses = (0..BROKERS)
        .map(|i| local.address(i, replication))
        .collect();

    // A topic with three replicas, all in sync: replication runs over mutual TLS, and
    // the operator may create it (a super user; nobody else has an ACL).
    let desired = Desired {
        name: "payments".into(),
        partitions: 3,
        replicas: 3,
        config: Default::default(),
    };
    eventually("the operator creates a topic", || {
        let operator = operator.clone();
        let steps = plan::plan(&desired, None).steps;
        async move {
            topic_kafka::apply(&operator, "payments", &steps)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    eventually("every replica in sync", || {
        let operator: Brokers = operator.clone();
        async move {
            let view = strom_operator::rebalance::kafka::describe(&operator)
                .await
                .map_err(|e| e.to_string())?;
            let partitions: Vec<_> = view
                .assignment
                .iter()
                .filter(|(tp, _)| tp.topic == "payments")
                .collect();
            let observed = topic_kafka::observe(&operator, "payments")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no topic")?;
            (partitions.len() == 3 && observed.replicas == 3 && view.in_flight.is_empty())
                .then_some(())
                .ok_or_else(|| format!("{partitions:?}"))
        }
    })
    .await;
    let mut as_operator = admin(&operator.addresses, &operator.security)
        .await
        .expect("the operator connects");
    let described = as_operator
        .describe_topics(&["payments".to_string()])
        .await
        .expect("metadata");
    let payments = described["payments"]
        .clone()
        .expect("described")
        .expect("exists");
    assert_eq!(payments.partitions, 3);

    // A KafkaUser certificate from the clients CA, on the mTLS listener.
    let clients = certs.clients_ca.as_ref().expect("clients CA");
    let clients_ca = Authority::load(
        CaKind::Clients,
        CLUSTER,
        Some(&clients.cert),
        Some(&clients.key),
    )
    .expect("the clients CA loads");
    let user = issue_user_certificate(&clients_ca, "reporter", SystemTime::now(), 30)
        .expect("a user certificate");
    let cluster_ca = &certs.cluster_ca.as_ref().expect("cluster CA").cert[cert_names::CA_CRT].0;
    let as_user = Security::default().with_tls(
        TlsConfig::with_client_certificate(cluster_ca, &user.user_crt, &user.user_key)
            .expect("the user's TLS config"),
    );
    let mtls = vec![local.address(0, MTLS_PORT)];
    let topics = ["payments".to_string()];
    let mut reporter = admin(&mtls, &as_user).await.expect("the user connects");
    let refused = reporter.describe_topics(&topics).await.expect("metadata")["payments"]
        .clone()
        .expect_err("no ACL yet");
    assert_eq!(
        refused.error(),
        Some(ResponseError::TopicAuthorizationFailed)
    );

    let allow = AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: "payments".into(),
        pattern_type: PatternType::Literal,
        principal: "User:CN=reporter".into(),
        host: "*".into(),
        operation: AclOperation::Describe,
        permission: AclPermission::Allow,
    };
    for outcome in as_operator.create_acls(&[allow]).await.expect("CreateAcls") {
        outcome.expect("the ACL is created");
    }
    eventually("the ACL lets the user describe the topic", || {
        let (mtls, as_user, topics) = (mtls.clone(), as_user.clone(), topics.clone());
        async move {
            let mut reporter = admin(&mtls, &as_user).await.map_err(|e| e.to_string())?;
            match reporter
                .describe_topics(&topics)
                .await
                .map_err(|e| e.to_string())?["payments"]
                .clone()
            {
                Ok(Some(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;

    // The replication listener trusts only the cluster CA: a user certificate is refused.
    // (Under TLS 1.3 the refusal of a client certificate may only show at the first
    // request, after the client finished its side of the handshake.)
    let accepted = match admin(&operator.addresses[..1], &as_user).await {
        Ok(mut a) => a.describe_topics(&topics).await.is_ok(),
        Err(_) => false,
    };
    assert!(
        !accepted,
        "a client certificate from the clients CA got onto the replication listener"
    );

    // A SCRAM user the operator creates logs in on the SASL_SSL listener.
    let upsert = ScramUpsertion::new("payments-app", ScramMechanism::Sha512, "s3cret-pw", 4096)
        .expect("randomness");
    for (_, outcome) in as_operator
        .alter_user_scram_credentials(&[upsert], &[])
        .await
        .expect("AlterUserScramCredentials")
    {
        outcome.expect("the credential is stored");
    }
    let as_scram = Security::default()
        .with_tls(TlsConfig::new(cluster_ca).expect("trust the cluster CA"))
        .with_sasl(SaslMechanism::SCRAM_SHA_512, "payments-app", "s3cret-pw");
    let scram = vec![local.address(1, SCRAM_PORT)];
    let mut app = eventually("the SCRAM user logs in", || {
        let (scram, as_scram) = (scram.clone(), as_scram.clone());
        async move { admin(&scram, &as_scram).await.map_err(|e| e.to_string()) }
    })
    .await;
    let refused = app.describe_topics(&topics).await.expect("metadata")["payments"]
        .clone()
        .expect_err("payments-app has no ACL");
    assert_eq!(
        refused.error(),
        Some(ResponseError::TopicAuthorizationFailed)
    );
    let wrong = Security::default()
        .with_tls(TlsConfig::new(cluster_ca).expect("trust the cluster CA"))
        .with_sasl(SaslMechanism::SCRAM_SHA_512, "payments-app", "wrong");
    assert!(matches!(
        admin(&scram, &wrong).await,
        Err(AdminError::Refusal(_))
    ));

    // The cluster CA renewed with the same key (the default policy, forced here so it
    // happens now): a client that loaded the old ca.crt, and only that, accepts the
    // renewed leaf once the broker serves it, and works on Kafka's protocol too.
    let old_ca_only = cluster_ca.clone();
    assert_eq!(pem_certs(&old_ca_only).len(), 1);
    let renewed = forced_renewal(
        &certs,
        Forced {
            renew: true,
            replace_key: false,
        },
    );
    assert_eq!(
        pem_certs(&renewed.cluster_ca.as_ref().expect("CA").cert[cert_names::CA_CRT].0).len(),
        2
    );
    mount(&renewed, &mounted);
    let scram_address = local.address(1, SCRAM_PORT);
    let renewed_leaf = leaf_of(&renewed, 1);
    eventually(
        "the broker presents the renewed leaf to an old truststore",
        || {
            let (address, trusted) = (scram_address.clone(), old_ca_only.clone());
            let expected = renewed_leaf.clone();
            async move {
                let (leaf, accepted) = handshake(address, trusted).await;
                accepted?;
                (leaf.as_ref() == Some(&expected))
                    .then_some(())
                    .ok_or_else(|| "still the old leaf".to_string())
            }
        },
    )
    .await;
    let as_old_client = Security::default()
        .with_tls(TlsConfig::new(&old_ca_only).expect("trust the old cluster CA only"))
        .with_sasl(SaslMechanism::SCRAM_SHA_512, "payments-app", "s3cret-pw");
    let mut old_client = admin(&scram, &as_old_client)
        .await
        .expect("a client with the old truststore connects after the renewal");
    old_client
        .describe_topics(&topics)
        .await
        .expect("and is answered");

    // The control: replace-key. Once the broker serves a leaf of the new key, the old
    // truststore refuses it; the new certificate accepts it.
    let replaced = forced_renewal(
        &renewed,
        Forced {
            renew: false,
            replace_key: true,
        },
    );
    let new_ca_only = cluster_ca_pem_first(&replaced);
    mount(&replaced, &mounted);
    let replaced_leaf = leaf_of(&replaced, 1);
    eventually("the broker presents the leaf of the new key", || {
        let (address, trusted) = (scram_address.clone(), new_ca_only.clone());
        let expected = replaced_leaf.clone();
        async move {
            let (leaf, accepted) = handshake(address, trusted).await;
            accepted?;
            (leaf.as_ref() == Some(&expected))
                .then_some(())
                .ok_or_else(|| "still a leaf of the old key".to_string())
        }
    })
    .await;
    let (leaf, accepted) = handshake(scram_address.clone(), old_ca_only.clone()).await;
    assert_eq!(leaf.as_ref(), Some(&replaced_leaf));
    assert!(
        accepted.is_err(),
        "the old truststore accepted a leaf of the replaced key"
    );

    drop((as_operator, reporter, app, old_client));
    for r in running {
        r.shutdown().await.expect("shutdown");
    }
}
