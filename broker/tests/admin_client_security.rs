//! strom-client's admin over secured listeners of a real broker: SSL, mutual TLS (and its
//! refusal without a client certificate), SASL_SSL with SCRAM-SHA-512 (the credential set
//! with the client's own `salted_password`), SASL_PLAINTEXT with PLAIN, and the typed
//! errors a wrong CA, a wrong password or an unoffered mechanism give.

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use common::{free_port, BrokerProcess};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::AlterUserScramCredentialsRequest;
use kafka_protocol::protocol::StrBytes;
use strom_client::admin::{Admin, AdminError, NewTopic};
use strom_client::sasl::{SaslError, SaslMechanism};
use strom_client::scram::{salted_password, ScramMechanism};
use strom_client::tls::TlsConfig;
use strom_client::{ConnectError, Connection, Security};
use strom_test_certs::{write_atomically, Authority, DnType};

const TIMEOUT: Duration = Duration::from_secs(10);
const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                          user_alice=\"alice-secret\";";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A broker with a PLAINTEXT listener and one `protocol` listener on the returned port,
/// its certificate (if any) from `ca`.
fn broker(
    dir: &Path,
    ca: &Authority,
    protocol: &str,
    extra: &[(&str, &str)],
) -> (BrokerProcess, String) {
    let keystore = write_atomically(dir, "broker.pem", &ca.broker().keystore_pem());
    let truststore = write_atomically(dir, "ca.pem", &ca.pem());
    let port = free_port();
    let name = protocol.to_ascii_lowercase();
    let listeners = format!("PLAINTEXT://127.0.0.1:{{PORT}},{protocol}://127.0.0.1:{port}");
    let keystore_key = format!("listener.name.{name}.ssl.keystore.location");
    let truststore_key = format!("listener.name.{name}.ssl.truststore.location");
    let mut settings = vec![
        ("listeners", listeners.as_str()),
        (keystore_key.as_str(), path_str(&keystore)),
        (truststore_key.as_str(), path_str(&truststore)),
    ];
    settings.extend_from_slice(extra);
    (BrokerProcess::start(&settings), format!("127.0.0.1:{port}"))
}

/// Creates a topic through `security` and reads it back: the admin works end to end.
async fn admin_round_trip(bootstrap: &str, security: &Security, topic: &str) {
    let mut admin = Admin::connect_with(
        &[bootstrap.to_string()],
        security,
        "admin-security-test",
        TIMEOUT,
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{} admin connect: {e}", security.protocol()));
    let created = admin
        .create_topics(&[NewTopic {
            name: topic.into(),
            partitions: 2,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }])
        .await
        .expect("CreateTopics");
    assert!(created[topic].is_ok(), "{created:?}");
    let described = admin
        .describe_topics(&[topic.to_string()])
        .await
        .expect("Metadata");
    let description = described[topic]
        .clone()
        .expect("described")
        .expect("topic exists");
    assert_eq!(description.partitions, 2);
}

/// The refusal `Admin::connect_with` gives; panics if it connects.
async fn refusal(bootstrap: &str, security: &Security) -> ConnectError {
    match Admin::connect_with(&[bootstrap.to_string()], security, "t", TIMEOUT, TIMEOUT).await {
        Ok(_) => panic!("{} connected", security.protocol()),
        Err(AdminError::Refusal(e)) => e,
        Err(other) => panic!("not a refusal: {other}"),
    }
}

#[test]
fn admin_over_ssl_and_a_foreign_ca_is_a_tls_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("Strom test CA");
    let (_broker, bootstrap) = broker(dir.path(), &ca, "SSL", &[]);
    runtime().block_on(async {
        let tls = TlsConfig::new(ca.pem()).expect("CA PEM");
        admin_round_trip(&bootstrap, &Security::default().with_tls(tls), "over-ssl").await;

        let foreign = TlsConfig::new(Authority::new("Another CA").pem()).expect("CA PEM");
        let err = refusal(&bootstrap, &Security::default().with_tls(foreign)).await;
        assert!(
            matches!(&err, ConnectError::Tls { addr, .. } if *addr == bootstrap),
            "{err}"
        );
        // Plaintext to a TLS listener fails too, and does not hang.
        let addresses = [bootstrap.clone()];
        if let Ok(mut conn) = strom_client::admin::connect_any(&addresses, "t", TIMEOUT).await {
            let answer = tokio::time::timeout(
                TIMEOUT,
                conn.send(kafka_protocol::messages::ApiVersionsRequest::default(), 0),
            )
            .await;
            assert!(!matches!(answer, Ok(Ok(_))), "{answer:?}");
        }
    });
}

#[test]
fn admin_over_mutual_tls_and_no_client_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("Strom test CA");
    let (_broker, bootstrap) = broker(
        dir.path(),
        &ca,
        "SSL",
        &[("listener.name.ssl.ssl.client.auth", "required")],
    );
    let operator = ca.issue(
        &["strom-operator"],
        &[(DnType::CommonName, "strom-operator")],
    );
    runtime().block_on(async {
        let mtls =
            TlsConfig::with_client_certificate(ca.pem(), &operator.cert_pem, &operator.key_pem)
                .expect("client certificate");
        admin_round_trip(&bootstrap, &Security::default().with_tls(mtls), "over-mtls").await;

        // In TLS 1.3 the server's verdict on the client certificate arrives after the
        // client's handshake finished, so the refusal may surface at the first request.
        let server_only = Security::default().with_tls(TlsConfig::new(ca.pem()).expect("CA"));
        let result = Admin::connect_with(
            std::slice::from_ref(&bootstrap),
            &server_only,
            "t",
            TIMEOUT,
            TIMEOUT,
        )
        .await;
        if let Ok(mut admin) = result {
            let described = admin.describe_topics(&["over-mtls".to_string()]).await;
            assert!(described.is_err(), "{described:?}");
        }
    });
}

/// Sets `user`'s SCRAM-SHA-512 password over the PLAINTEXT listener, salting it with the
/// client's `salted_password` as the KafkaUser controller will.
async fn set_scram_password(bootstrap: &str, user: &str, password: &str) {
    let mechanism = ScramMechanism::Sha512;
    let iterations = NonZeroU32::new(4096).expect("non-zero");
    let salt = format!("salt-of-{user}").into_bytes();
    let salted = salted_password(mechanism, password, &salt, iterations);
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.into()))
            .with_mechanism(mechanism.type_code())
            .with_iterations(4096)
            .with_salt(salt.into())
            .with_salted_password(salted.into()),
    ]);
    let mut conn = Connection::connect(bootstrap, "t", TIMEOUT)
        .await
        .expect("plaintext connection");
    let response = conn
        .send(request, 0)
        .await
        .expect("AlterUserScramCredentials");
    assert!(
        response.results.iter().all(|r| r.error_code == 0),
        "{response:?}"
    );
}

#[test]
fn admin_over_sasl_ssl_with_scram_sha_512_and_a_wrong_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("Strom test CA");
    let (broker, bootstrap) = broker(
        dir.path(),
        &ca,
        "SASL_SSL",
        &[("sasl.enabled.mechanisms", "SCRAM-SHA-512")],
    );
    runtime().block_on(async {
        set_scram_password(&broker.bootstrap(), "alice", "alice-secret").await;
        let tls = TlsConfig::new(ca.pem()).expect("CA PEM");
        let alice = Security::default().with_tls(tls.clone()).with_sasl(
            SaslMechanism::SCRAM_SHA_512,
            "alice",
            "alice-secret",
        );
        assert_eq!(alice.protocol(), "SASL_SSL");
        admin_round_trip(&bootstrap, &alice, "over-sasl-ssl").await;

        let wrong = Security::default().with_tls(tls.clone()).with_sasl(
            SaslMechanism::SCRAM_SHA_512,
            "alice",
            "not-her-password",
        );
        match refusal(&bootstrap, &wrong).await {
            ConnectError::Sasl(SaslError::Authentication { addr, message }) => {
                assert_eq!(addr, bootstrap);
                assert!(message.contains("SCRAM-SHA-512"), "{message}");
            }
            other => panic!("not an authentication failure: {other}"),
        }

        let sha256 = Security::default().with_tls(tls).with_sasl(
            SaslMechanism::SCRAM_SHA_256,
            "alice",
            "alice-secret",
        );
        match refusal(&bootstrap, &sha256).await {
            ConnectError::Sasl(SaslError::MechanismNotOffered {
                mechanism, offered, ..
            }) => {
                assert_eq!(mechanism, SaslMechanism::SCRAM_SHA_256);
                assert_eq!(offered, "SCRAM-SHA-512");
            }
            other => panic!("not a mechanism refusal: {other}"),
        }
    });
}

#[test]
fn admin_over_sasl_plaintext_with_plain_and_a_wrong_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("Strom test CA");
    let (_broker, bootstrap) = broker(
        dir.path(),
        &ca,
        "SASL_PLAINTEXT",
        &[
            (
                "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
                "PLAIN",
            ),
            (
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                PLAIN_JAAS,
            ),
        ],
    );
    runtime().block_on(async {
        let alice = Security::default().with_sasl(SaslMechanism::Plain, "alice", "alice-secret");
        assert_eq!(alice.protocol(), "SASL_PLAINTEXT");
        admin_round_trip(&bootstrap, &alice, "over-sasl-plaintext").await;

        let wrong = Security::default().with_sasl(SaslMechanism::Plain, "alice", "wrong");
        let err = refusal(&bootstrap, &wrong).await;
        assert!(
            matches!(&err, ConnectError::Sasl(SaslError::Authentication { message, .. })
                if message.contains("Invalid username or password")),
            "{err}"
        );
        assert!(!format!("{wrong:?}").contains("wrong\""), "{wrong:?}");
    });
}
