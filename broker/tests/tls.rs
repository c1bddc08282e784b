//! TLS listeners with librdkafka as the client: serving over SSL, mutual TLS with its
//! refusals (no certificate, another CA's, a plaintext client), and a certificate
//! rotated on disk reaching new connections without a restart while open ones stay.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::kafka::{
    consume_with, consumer_with, produce, producer_with, refs, send_one, try_produce, Rec,
};
use common::{free_port, wait_for, BrokerProcess};
use rdkafka::consumer::Consumer;
use strom_test_certs::DnType;
use strom_test_certs::{write_atomically, Authority, Leaf};

/// A broker with a PLAINTEXT listener and an SSL one whose files live in `dir`.
struct TlsBroker {
    broker: BrokerProcess,
    ssl_port: u16,
    dir: PathBuf,
}

impl TlsBroker {
    fn start(dir: &Path, ca: &Authority, client_auth: &str) -> TlsBroker {
        let keystore = write_atomically(dir, "broker.pem", &ca.broker().keystore_pem());
        let truststore = write_atomically(dir, "ca.pem", &ca.pem());
        let ssl_port = free_port();
        let listeners = format!("PLAINTEXT://127.0.0.1:{{PORT}},SSL://127.0.0.1:{ssl_port}");
        let broker = BrokerProcess::start(&[
            ("listeners", listeners.as_str()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SSL:SSL",
            ),
            (
                "listener.name.ssl.ssl.keystore.location",
                path_str(&keystore),
            ),
            (
                "listener.name.ssl.ssl.truststore.location",
                path_str(&truststore),
            ),
            ("listener.name.ssl.ssl.client.auth", client_auth),
        ]);
        TlsBroker {
            broker,
            ssl_port,
            dir: dir.to_path_buf(),
        }
    }

    fn ssl_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ssl_port)
    }

    fn failed_authentications(&self) -> f64 {
        self.broker.metric(
            "kafka_server_socketservermetrics_failed_authentication_total{listener=\"SSL\"}",
        )
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// librdkafka settings for SSL that trusts `ca_file`, plus a client certificate if given.
fn ssl_settings(ca_file: &Path, client: Option<(&Path, &Path)>) -> Vec<(String, String)> {
    let mut s = vec![
        ("security.protocol".to_string(), "ssl".to_string()),
        ("ssl.ca.location".into(), path_str(ca_file).into()),
        (
            "ssl.endpoint.identification.algorithm".into(),
            "https".into(),
        ),
    ];
    if let Some((cert, key)) = client {
        s.push(("ssl.certificate.location".into(), path_str(cert).into()));
        s.push(("ssl.key.location".into(), path_str(key).into()));
    }
    s
}

/// Writes a client's certificate and key into `dir` as `<name>.crt` / `<name>.key`.
fn client_files(dir: &Path, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    (
        write_atomically(dir, &format!("{name}.crt"), &leaf.cert_pem),
        write_atomically(dir, &format!("{name}.key"), &leaf.key_pem),
    )
}

/// Whether a client with `settings` gets the cluster's metadata from `bootstrap`.
fn reaches(bootstrap: &str, settings: &[(String, String)]) -> bool {
    let consumer = consumer_with(bootstrap, &refs(settings));
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .is_ok()
}

fn records(n: usize, tag: &str) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::keyed(&format!("k{i}"), &format!("{tag}-{i}")))
        .collect()
}

#[test]
fn ssl_listener_serves_produce_and_consume() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("Strom test CA");
    let b = TlsBroker::start(dir.path(), &ca, "none");
    let client = ssl_settings(&b.dir.join("ca.pem"), None);

    let sent = records(200, "tls");
    let acked = produce(&b.ssl_bootstrap(), "secure", &refs(&client), &sent);
    assert_eq!(acked.len(), 200);
    let over_tls = consume_with(&b.ssl_bootstrap(), &refs(&client), "secure", 1, 200);
    let over_plaintext = consume_with(&b.broker.bootstrap(), &[], "secure", 1, 200);
    let values = |got: &[common::kafka::Got]| -> Vec<Vec<u8>> {
        got.iter().map(|g| g.value.clone()).collect()
    };
    let want: Vec<Vec<u8>> = sent.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values(&over_tls), want, "{}", b.broker.log());
    assert_eq!(values(&over_plaintext), want);
}

#[test]
fn mutual_tls_refuses_clients_without_a_trusted_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("Strom test CA");
    let b = TlsBroker::start(dir.path(), &ca, "required");
    let ca_file = b.dir.join("ca.pem");
    let alice = ca.issue(
        &[],
        &[
            (DnType::OrganizationName, "Strom"),
            (DnType::OrganizationalUnitName, "eng"),
            (DnType::CommonName, "alice"),
        ],
    );
    let (alice_cert, alice_key) = client_files(dir.path(), "alice", &alice);
    let alice_settings = ssl_settings(&ca_file, Some((&alice_cert, &alice_key)));
    assert!(
        reaches(&b.ssl_bootstrap(), &alice_settings),
        "{}",
        b.broker.log()
    );

    let other_ca = Authority::new("Someone else's CA");
    let mallory = other_ca.issue(&[], &[(DnType::CommonName, "mallory")]);
    let (mallory_cert, mallory_key) = client_files(dir.path(), "mallory", &mallory);
    let refused: [(&str, Vec<(String, String)>); 3] = [
        ("no client certificate", ssl_settings(&ca_file, None)),
        (
            "a certificate from another CA",
            ssl_settings(&ca_file, Some((&mallory_cert, &mallory_key))),
        ),
        (
            "a plaintext client",
            vec![("security.protocol".to_string(), "plaintext".to_string())],
        ),
    ];
    for (what, settings) in &refused {
        let before = b.failed_authentications();
        assert!(
            !reaches(&b.ssl_bootstrap(), settings),
            "{what} was served:\n{}",
            b.broker.log()
        );
        wait_for(
            &format!("the broker to count {what} as a failed authentication"),
            Duration::from_secs(10),
            || (b.failed_authentications() > before).then_some(()),
        );
    }
    let log = b.broker.log();
    assert!(
        log.contains("TLS handshake failed") && log.contains("peer=127.0.0.1:"),
        "every refusal is logged with the peer:\n{log}"
    );
    // The refusals cost nobody else anything.
    let acked = try_produce(
        &b.ssl_bootstrap(),
        "after-refusals",
        &refs(&alice_settings),
        &records(10, "alice"),
    );
    assert!(acked.iter().all(Result::is_ok), "{acked:?}");
}

#[test]
fn a_rotated_certificate_reaches_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old_ca = Authority::new("Strom CA 1");
    let b = TlsBroker::start(dir.path(), &old_ca, "none");
    let old_trust = b.dir.join("ca.pem");
    let new_ca = Authority::new("Strom CA 2");
    let new_trust = write_atomically(dir.path(), "new-ca.pem", &new_ca.pem());

    // A producer connected before the rotation, trusting only the old CA.
    let old_client = ssl_settings(&old_trust, None);
    let producer = producer_with(&b.ssl_bootstrap(), &refs(&old_client));
    let send = |value: &str| send_one(&producer, "rotation", value);
    send("before").expect("delivered before the rotation");
    assert!(!reaches(
        &b.ssl_bootstrap(),
        &ssl_settings(&new_trust, None)
    ));

    // A broken file first: the broker keeps serving the certificate it has.
    write_atomically(dir.path(), "broker.pem", "not a certificate\n");
    wait_for("the reload error", Duration::from_secs(30), || {
        b.broker
            .log()
            .contains("cannot reload the TLS certificate")
            .then_some(())
    });
    assert!(
        reaches(&b.ssl_bootstrap(), &old_client),
        "{}",
        b.broker.log()
    );

    write_atomically(dir.path(), "broker.pem", &new_ca.broker().keystore_pem());
    wait_for("the new certificate", Duration::from_secs(30), || {
        reaches(&b.ssl_bootstrap(), &ssl_settings(&new_trust, None)).then_some(())
    });
    assert!(b.broker.log().contains("TLS certificate reloaded"));
    // The connection opened before the rotation is still served: its session stays.
    send("after").expect("the open connection survives the rotation");
    let got = consume_with(&b.broker.bootstrap(), &[], "rotation", 1, 2);
    let values: Vec<&[u8]> = got.iter().map(|g| g.value.as_slice()).collect();
    assert_eq!(values, vec![&b"before"[..], &b"after"[..]]);
}

/// Kafka's own Java client with a PEM keystore and truststore against mutual TLS.
#[test]
fn java_client_over_mutual_tls() {
    use common::java_clients::{client_properties, console_consume, console_produce};
    if common::kafka_jars().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("Strom test CA");
    let b = TlsBroker::start(dir.path(), &ca, "required");
    let dave = ca.issue(&[], &[(DnType::CommonName, "dave")]);
    let keystore = write_atomically(dir.path(), "dave.pem", &dave.keystore_pem());
    let trust = b.dir.join("ca.pem");
    let config = client_properties(
        dir.path(),
        "client.properties",
        &[
            ("security.protocol", "SSL"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", path_str(&keystore)),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", path_str(&trust)),
        ],
    );
    let lines: Vec<String> = (0..10).map(|i| format!("mtls-{i}")).collect();
    console_produce(&b.ssl_bootstrap(), "java-mtls", &config, &lines);
    assert_eq!(
        console_consume(&b.ssl_bootstrap(), "java-mtls", &config, 10),
        lines
    );
}
