//! SASL listeners with real clients: librdkafka over SASL_PLAINTEXT and SASL_SSL with
//! PLAIN, refusals that do not say whether a user exists, the order Kafka enforces
//! (nothing before the handshake, nothing but tokens during it), the failure delay, and
//! KIP-368 sessions: re-authentication keeps a connection, a session that ends without one
//! closes it.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kafka::{
    consume_with, consumer_with, produce, producer_with, refs, send_one, try_produce, Rec,
};
use common::{free_port, wait_for, BrokerProcess, RawClient};
use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, RequestKind, ResponseKind, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use strom_test_certs::{write_atomically, Authority};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_alice=\"alice-secret\" user_bob=\"bob-secret\";";

/// A broker with a PLAINTEXT listener (to set credentials through) and a SASL_SSL one
/// serving both SCRAM mechanisms with a certificate from a fresh CA, configured with the
/// unprefixed keys (the prefixed ones are `sasl_broker`'s). Returns the broker, the
/// SASL_SSL port and the CA file clients trust.
fn scram_ssl_broker(dir: &Path, extra: &[(&str, &str)]) -> (BrokerProcess, u16, PathBuf) {
    let ca = Authority::new("Strom test CA");
    let keystore = write_atomically(dir, "broker.pem", &ca.broker().keystore_pem());
    let trust = write_atomically(dir, "ca.pem", &ca.pem());
    let sasl_port = free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:{{PORT}},SASL_SSL://127.0.0.1:{sasl_port}");
    let mut settings = vec![
        ("listeners", listeners.as_str()),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256"),
        (
            "ssl.keystore.location",
            keystore.to_str().expect("utf-8 path"),
        ),
    ];
    settings.extend_from_slice(extra);
    (BrokerProcess::start(&settings), sasl_port, trust)
}

/// A broker with a PLAINTEXT listener and a SASL one (`protocol`) serving PLAIN.
fn sasl_broker(protocol: &str, extra: &[(&str, String)]) -> (BrokerProcess, u16) {
    let sasl_port = free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:{{PORT}},{protocol}://127.0.0.1:{sasl_port}");
    let prefix = format!("listener.name.{}", protocol.to_ascii_lowercase());
    let mut settings: Vec<(String, String)> = vec![
        ("listeners".into(), listeners),
        (format!("{prefix}.sasl.enabled.mechanisms"), "PLAIN".into()),
        (format!("{prefix}.plain.sasl.jaas.config"), JAAS.into()),
    ];
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    (BrokerProcess::start(&refs(&settings)), sasl_port)
}

fn plain_client(protocol: &str, user: &str, password: &str) -> Vec<(String, String)> {
    vec![
        ("security.protocol".into(), protocol.to_ascii_lowercase()),
        ("sasl.mechanism".into(), "PLAIN".into()),
        ("sasl.username".into(), user.into()),
        ("sasl.password".into(), password.into()),
    ]
}

/// librdkafka's own error for a client, from fetching metadata (none when it works).
fn metadata_error(bootstrap: &str, settings: &[(String, String)]) -> Option<String> {
    consumer_with(bootstrap, &refs(settings))
        .fetch_metadata(None, Duration::from_secs(5))
        .err()
        .map(|e| e.to_string())
}

#[test]
fn plain_over_sasl_plaintext_and_sasl_ssl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("Strom test CA");
    let keystore = write_atomically(dir.path(), "broker.pem", &ca.broker().keystore_pem());
    let trust = write_atomically(dir.path(), "ca.pem", &ca.pem());
    let (broker, port) = sasl_broker(
        "SASL_SSL",
        &[(
            "listener.name.sasl_ssl.ssl.keystore.location",
            keystore.display().to_string(),
        )],
    );
    let bootstrap = format!("127.0.0.1:{port}");
    let mut alice = plain_client("SASL_SSL", "alice", "alice-secret");
    alice.push(("ssl.ca.location".into(), trust.display().to_string()));
    let records: Vec<Rec> = (0..50)
        .map(|i| Rec::keyed(&format!("k{i}"), &format!("v{i}")))
        .collect();
    produce(&bootstrap, "sasl-ssl", &refs(&alice), &records);
    let got = consume_with(&bootstrap, &refs(&alice), "sasl-ssl", 1, 50);
    assert_eq!(got.len(), 50, "{}", broker.log());
    assert!(broker.metric("kafka_server_socketservermetrics_successful_authentication_total{listener=\"SASL_SSL\"}"
    ) >= 1.0);

    let (broker, port) = sasl_broker("SASL_PLAINTEXT", &[]);
    let bootstrap = format!("127.0.0.1:{port}");
    let bob = plain_client("SASL_PLAINTEXT", "bob", "bob-secret");
    produce(&bootstrap, "sasl-plain", &refs(&bob), &records[..5]);
    assert_eq!(
        consume_with(&bootstrap, &refs(&bob), "sasl-plain", 1, 5).len(),
        5
    );
    drop(broker);
}

#[test]
fn wrong_passwords_and_unknown_users_are_refused_alike() {
    let (broker, port) = sasl_broker("SASL_PLAINTEXT", &[]);
    let bootstrap = format!("127.0.0.1:{port}");
    let failures = || {
        broker.metric("kafka_server_socketservermetrics_failed_authentication_total{listener=\"SASL_PLAINTEXT\"}",
        )
    };
    // librdkafka reports a refused login as a transport failure; the exact answer is
    // checked on the wire below.
    for (user, password) in [("alice", "guess"), ("mallory", "x")] {
        assert!(
            metadata_error(&bootstrap, &plain_client("SASL_PLAINTEXT", user, password)).is_some(),
            "{user} with a wrong password was served"
        );
    }
    wait_for("both failures counted", Duration::from_secs(10), || {
        (failures() >= 2.0).then_some(())
    });
    let log = broker.log();
    assert!(
        log.contains("SASL authentication failed") && log.contains("peer=127.0.0.1:"),
        "{log}"
    );

    // Raw: the same answer, word for word, for both; and it comes after the delay.
    let answer = |user: &str, password: &str| {
        let mut raw = RawClient::connect(port);
        handshake(&mut raw, "PLAIN");
        let started = Instant::now();
        let token = format!("\0{user}\0{password}");
        let ResponseKind::SaslAuthenticate(r) = raw.send(
            2,
            RequestKind::SaslAuthenticate(
                SaslAuthenticateRequest::default().with_auth_bytes(token.into_bytes().into()),
            ),
        ) else {
            panic!("not a SaslAuthenticate response")
        };
        let waited = started.elapsed();
        assert!(
            raw.closed_by_broker(),
            "the connection closes after a failure"
        );
        (r.error_code, r.error_message.map(|m| m.to_string()), waited)
    };
    let (code_a, message_a, waited) = answer("alice", "guess");
    let (code_b, message_b, _) = answer("nobody", "guess");
    assert_eq!(code_a, 58, "SASL_AUTHENTICATION_FAILED");
    assert_eq!((code_a, &message_a), (code_b, &message_b));
    assert_eq!(
        message_a.as_deref(),
        Some("Authentication failed: Invalid username or password")
    );
    assert!(
        waited >= Duration::from_millis(100),
        "connection.failed.authentication.delay.ms holds the answer back ({waited:?})"
    );

    // Other clients were served all along.
    let alice = plain_client("SASL_PLAINTEXT", "alice", "alice-secret");
    let acked = try_produce(&bootstrap, "after", &refs(&alice), &[Rec::keyed("k", "v")]);
    assert!(acked.iter().all(Result::is_ok), "{acked:?}");
}

fn handshake(raw: &mut RawClient, mechanism: &str) {
    let ResponseKind::SaslHandshake(r) = raw.send(
        1,
        RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
        ),
    ) else {
        panic!("not a SaslHandshake response")
    };
    assert_eq!(r.error_code, 0, "{mechanism}: {r:?}");
}

fn authenticate_plain(raw: &mut RawClient, version: i16, user: &str, password: &str) -> i64 {
    let token = format!("\0{user}\0{password}");
    let ResponseKind::SaslAuthenticate(r) = raw.send(
        version,
        RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(token.into_bytes().into()),
        ),
    ) else {
        panic!("not a SaslAuthenticate response")
    };
    assert_eq!(r.error_code, 0, "{r:?}");
    r.session_lifetime_ms
}

#[test]
fn frames_out_of_order_are_refused() {
    let (broker, port) = sasl_broker("SASL_PLAINTEXT", &[]);

    // A request before the handshake: closed without an answer, as Kafka.
    let mut raw = RawClient::connect(port);
    raw.send_only(12, RequestKind::Metadata(MetadataRequest::default()));
    assert!(raw.closed_by_broker());

    // SaslAuthenticate before SaslHandshake.
    let mut raw = RawClient::connect(port);
    raw.send_only(
        2,
        RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default()),
    );
    assert!(raw.closed_by_broker());

    // A mechanism the listener does not enable: UNSUPPORTED_SASL_MECHANISM, the list.
    let mut raw = RawClient::connect(port);
    let ResponseKind::SaslHandshake(r) = raw.send(
        1,
        RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
        ),
    ) else {
        panic!("not a SaslHandshake response")
    };
    assert_eq!(r.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    assert_eq!(r.mechanisms, vec![StrBytes::from_static_str("PLAIN")]);
    assert!(raw.closed_by_broker());

    // Another request in the middle of the exchange: that API's error response with
    // ILLEGAL_SASL_STATE, then the close.
    let mut raw = RawClient::connect(port);
    let ResponseKind::ApiVersions(v) =
        raw.send(3, RequestKind::ApiVersions(ApiVersionsRequest::default()))
    else {
        panic!("not an ApiVersions response")
    };
    assert!(v
        .api_keys
        .iter()
        .any(|k| k.api_key == 17 && k.max_version >= 1));
    handshake(&mut raw, "PLAIN");
    let ResponseKind::Metadata(m) = raw.send(12, RequestKind::Metadata(MetadataRequest::default()))
    else {
        panic!("not a Metadata response")
    };
    assert!(m.topics.is_empty() && m.brokers.is_empty(), "{m:?}");
    assert!(raw.closed_by_broker());

    // Authenticated, the connection serves; a second SaslAuthenticate is answered as Kafka.
    let mut raw = RawClient::connect(port);
    handshake(&mut raw, "PLAIN");
    authenticate_plain(&mut raw, 2, "alice", "alice-secret");
    let ResponseKind::Metadata(m) = raw.send(12, RequestKind::Metadata(MetadataRequest::default()))
    else {
        panic!("not a Metadata response")
    };
    assert_eq!(m.brokers.len(), 1);
    let log = broker.log();
    for reason in [
        "Unexpected Kafka request of type METADATA during SASL handshake.",
        "Unexpected Kafka request of type SASL_AUTHENTICATE during SASL handshake.",
        "Unsupported SASL mechanism GSSAPI",
        "Unexpected Kafka request of type METADATA during SASL authentication.",
    ] {
        assert!(log.contains(reason), "{reason}:\n{log}");
    }
}

#[test]
fn sessions_end_with_connections_max_reauth_ms() {
    let (broker, port) = sasl_broker(
        "SASL_PLAINTEXT",
        &[(
            "listener.name.sasl_plaintext.connections.max.reauth.ms",
            "1500".into(),
        )],
    );

    // A client that re-authenticates (SaslAuthenticate v1+) keeps its connection.
    let mut raw = RawClient::connect(port);
    handshake(&mut raw, "PLAIN");
    assert_eq!(
        authenticate_plain(&mut raw, 2, "alice", "alice-secret"),
        1500
    );
    // The session's end is the condition under test: wait it out.
    std::thread::sleep(Duration::from_millis(1600));
    handshake(&mut raw, "PLAIN");
    assert_eq!(
        authenticate_plain(&mut raw, 2, "alice", "alice-secret"),
        1500
    );
    assert!(matches!(
        raw.send(12, RequestKind::Metadata(MetadataRequest::default())),
        ResponseKind::Metadata(_)
    ));
    // Re-authenticating as someone else is refused.
    handshake(&mut raw, "PLAIN");
    let token = "\0bob\0bob-secret".to_string();
    let ResponseKind::SaslAuthenticate(r) = raw.send(
        2,
        RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(token.into_bytes().into()),
        ),
    ) else {
        panic!("not a SaslAuthenticate response")
    };
    assert_eq!(r.error_code, 58);
    assert_eq!(
        r.error_message.as_deref(),
        Some("Cannot change principals during re-authentication from User.alice: User.bob")
    );

    // A session that ends without a re-authentication: the next request closes it.
    let mut raw = RawClient::connect(port);
    handshake(&mut raw, "PLAIN");
    authenticate_plain(&mut raw, 0, "alice", "alice-secret");
    std::thread::sleep(Duration::from_millis(1600));
    raw.send_only(12, RequestKind::Metadata(MetadataRequest::default()));
    assert!(raw.closed_by_broker(), "{}", broker.log());
    assert!(broker
        .log()
        .contains("the session ended (connections.max.reauth.ms) without a re-authentication"));

    // librdkafka re-authenticates by itself (KIP-368) and keeps producing.
    let bootstrap = format!("127.0.0.1:{port}");
    let alice = plain_client("SASL_PLAINTEXT", "alice", "alice-secret");
    let reauthentications = || {
        broker.metric(
            "kafka_server_socketservermetrics_successful_reauthentication_total{listener=\"SASL_PLAINTEXT\"}",
        )
    };
    let before = reauthentications();
    let producer = producer_with(&bootstrap, &refs(&alice));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    // Produce until the broker has seen the producer's connections re-authenticate.
    while reauthentications() < before + 2.0 {
        assert!(
            Instant::now() < deadline,
            "no re-authentication:\n{}",
            broker.log()
        );
        send_one(&producer, "reauth", "x").expect("delivered across re-authentications");
        sent += 1;
    }
    assert_eq!(
        common::kafka::consume(&broker.bootstrap(), "reauth", 1, sent).len(),
        sent
    );
}

/// Sets `user`'s SCRAM password for `mechanism` (1 = SHA-256, 2 = SHA-512) through
/// AlterUserScramCredentials on `port`, as `kafka-configs --add-config
/// 'SCRAM-SHA-512=[password=...]'` does: the client salts and hashes, the broker never sees
/// the password.
fn set_scram_password(port: u16, mechanism: i8, user: &str, password: &str) {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    use kafka_protocol::messages::AlterUserScramCredentialsRequest;
    let (algorithm, len) = match mechanism {
        1 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
        _ => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
    };
    let salt = format!("salt-of-{user}-{password}").into_bytes();
    let mut salted = vec![0u8; len];
    ring::pbkdf2::derive(
        algorithm,
        std::num::NonZeroU32::new(4096).expect("non-zero"),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.into()))
            .with_mechanism(mechanism)
            .with_iterations(4096)
            .with_salt(salt.into())
            .with_salted_password(salted.into()),
    ]);
    let response = common::cluster::call(port, 0, &request);
    assert!(
        response.results.iter().all(|r| r.error_code == 0),
        "{response:?}"
    );
}

#[test]
fn scram_over_sasl_ssl_and_a_changed_password_ends_the_session_at_re_authentication() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, sasl_port, trust) = scram_ssl_broker(
        dir.path(),
        &[("listener.name.sasl_ssl.connections.max.reauth.ms", "2000")],
    );
    set_scram_password(broker.port, 2, "alice", "alice-secret");
    let bootstrap = format!("127.0.0.1:{sasl_port}");
    let client = |password: &str| {
        vec![
            ("security.protocol".to_string(), "sasl_ssl".to_string()),
            ("sasl.mechanism".into(), "SCRAM-SHA-512".into()),
            ("sasl.username".into(), "alice".into()),
            ("sasl.password".into(), password.into()),
            ("ssl.ca.location".into(), trust.display().to_string()),
        ]
    };
    let records: Vec<Rec> = (0..20)
        .map(|i| Rec::keyed(&format!("k{i}"), &format!("v{i}")))
        .collect();
    produce(
        &bootstrap,
        "scram",
        &refs(&client("alice-secret")),
        &records,
    );
    assert_eq!(
        consume_with(&bootstrap, &refs(&client("alice-secret")), "scram", 1, 20).len(),
        20
    );
    assert!(metadata_error(&bootstrap, &client("wrong")).is_some());
    assert!(
        metadata_error(&bootstrap, &{
            let mut c = client("x");
            c[2].1 = "nobody".into();
            c
        })
        .is_some(),
        "an unknown user is refused"
    );

    // A producer logged in with the old password...
    let producer = producer_with(&bootstrap, &refs(&client("alice-secret")));
    send_one(&producer, "scram", "before").expect("delivered");
    let failed = || {
        broker.metric(
            "kafka_server_socketservermetrics_failed_authentication_total{listener=\"SASL_SSL\"}",
        )
    };
    let failures_before = failed();
    // ...fails its next re-authentication once the password changed.
    set_scram_password(broker.port, 2, "alice", "new-secret");
    wait_for(
        "the re-authentication with the old password to fail",
        Duration::from_secs(30),
        || {
            producer.poll(Duration::from_millis(100));
            (failed() > failures_before).then_some(())
        },
    );
    assert!(
        broker.log().contains("SASL authentication failed"),
        "{}",
        broker.log()
    );
    // The new password works for a new client.
    produce(
        &bootstrap,
        "scram",
        &refs(&client("new-secret")),
        &records[..1],
    );
}

/// Kafka's own Java client over SASL_SSL with SCRAM-SHA-256 and a PEM truststore.
#[test]
fn java_client_over_sasl_ssl_with_scram() {
    use common::java_clients::{client_properties, console_consume, console_produce};
    if common::kafka_jars().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, sasl_port, trust) = scram_ssl_broker(dir.path(), &[]);
    set_scram_password(broker.port, 1, "carol", "carol-secret");
    let jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required \
                username=\"carol\" password=\"carol-secret\";";
    let config = client_properties(
        dir.path(),
        "client.properties",
        &[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.jaas.config", jaas),
            ("ssl.truststore.type", "PEM"),
            (
                "ssl.truststore.location",
                trust.to_str().expect("utf-8 path"),
            ),
        ],
    );
    let bootstrap = format!("127.0.0.1:{sasl_port}");
    let lines: Vec<String> = (0..10).map(|i| format!("java-{i}")).collect();
    console_produce(&bootstrap, "java-scram", &config, &lines);
    assert_eq!(
        console_consume(&bootstrap, "java-scram", &config, 10),
        lines
    );
}
