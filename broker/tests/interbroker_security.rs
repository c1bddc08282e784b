//! A three-broker cluster with every listener secured: SASL_SSL (PLAIN) for clients,
//! mutual TLS for replication and for the controller quorum, an authorizer whose super
//! users are the brokers' certificate principal and the test's admin. Produces with
//! acks=all to a replication-factor-3 topic and consumes; peers without a certificate or
//! with another CA's are refused on the replication and controller listeners while the
//! cluster keeps serving. A variant runs replication over SASL_SSL with SCRAM-SHA-512
//! (`sasl.mechanism.inter.broker.protocol`), the brokers' credential put in place by
//! `strom-broker format --add-scram`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, Layout};
use common::kafka::{consume_with, consumer_with, produce, Rec};
use common::wait_for;
use rdkafka::consumer::Consumer;
use strom_test_certs::DnType;
use strom_test_certs::{write_atomically, Authority};

const ADMIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                          user_admin=\"admin-secret\";";
const BROKER_SCRAM_JAAS: &str = "org.apache.kafka.common.security.scram.ScramLoginModule \
                                 required username=\"broker\" password=\"broker-secret\";";

/// How replication is secured.
#[derive(Clone, Copy, PartialEq)]
enum Replication {
    MutualTls,
    SaslScram,
}

struct Files {
    ca: PathBuf,
    keystore: PathBuf,
    _dir: tempfile::TempDir,
}

fn files(ca: &Authority) -> Files {
    let dir = tempfile::tempdir().expect("temp dir");
    // Every broker presents the same certificate; its CN is the brokers' principal.
    let broker = ca.issue(
        &["localhost", "127.0.0.1"],
        &[
            (DnType::OrganizationName, "Strom"),
            (DnType::CommonName, "broker"),
        ],
    );
    Files {
        keystore: write_atomically(dir.path(), "broker.pem", &broker.keystore_pem()),
        ca: write_atomically(dir.path(), "ca.pem", &ca.pem()),
        _dir: dir,
    }
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 temp path").to_string()
}

fn props(files: &Files, replication: Replication) -> Vec<(String, String)> {
    let replication_protocol = match replication {
        Replication::MutualTls => "SSL",
        Replication::SaslScram => "SASL_SSL",
    };
    let mut p = vec![
        (
            "listener.security.protocol.map",
            format!("CLIENT:SASL_SSL,REPLICATION:{replication_protocol},CONTROLLER:SSL"),
        ),
        ("inter.broker.listener.name", "REPLICATION".into()),
        ("controller.listener.names", "CONTROLLER".into()),
        ("ssl.keystore.location", path(&files.keystore)),
        ("ssl.truststore.location", path(&files.ca)),
        (
            "listener.name.controller.ssl.client.auth",
            "required".into(),
        ),
        // `CN=broker,O=Strom` is `User:broker`.
        (
            "ssl.principal.mapping.rules",
            "RULE:^CN=([a-z]+),O=Strom$/$1/,DEFAULT".into(),
        ),
        (
            "listener.name.client.sasl.enabled.mechanisms",
            "PLAIN".into(),
        ),
        (
            "listener.name.client.plain.sasl.jaas.config",
            ADMIN_JAAS.into(),
        ),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        ),
        ("super.users", "User:broker;User:admin".into()),
    ];
    match replication {
        Replication::MutualTls => p.push((
            "listener.name.replication.ssl.client.auth",
            "required".into(),
        )),
        Replication::SaslScram => {
            p.push((
                "listener.name.replication.sasl.enabled.mechanisms",
                "SCRAM-SHA-512".into(),
            ));
            p.push((
                "listener.name.replication.scram-sha-512.sasl.jaas.config",
                BROKER_SCRAM_JAAS.into(),
            ));
            p.push((
                "sasl.mechanism.inter.broker.protocol",
                "SCRAM-SHA-512".into(),
            ));
        }
    }
    p.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn listeners(client: u16, internal: u16, controller: Option<u16>) -> String {
    let mut l = format!("CLIENT://127.0.0.1:{client},REPLICATION://127.0.0.1:{internal}");
    if let Some(c) = controller {
        l.push_str(&format!(",CONTROLLER://127.0.0.1:{c}"));
    }
    l
}

/// `strom-broker format` with the brokers' SCRAM-SHA-512 credential.
fn format_with_broker_credential(_dir: &Path, props: &[(String, String)]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom-broker"));
    cmd.args(["format", "--cluster-id", "c3Ryb20taW50ZXJicm9rZXI"]);
    cmd.args([
        "--add-scram",
        "SCRAM-SHA-512=[name=broker,password=broker-secret]",
    ]);
    for (k, v) in props {
        cmd.arg("--override").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("run strom-broker format");
    assert!(out.status.success(), "format: {out:?}");
}

fn start(files: &Files, replication: Replication) -> Cluster {
    start_with(files, replication, &[])
}

/// [`start`] with more properties for every broker.
fn start_with(files: &Files, replication: Replication, more: &[(&str, &str)]) -> Cluster {
    let mut extra = props(files, replication);
    extra.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let layout = Layout {
        listeners: &listeners,
        prepare: &|dir, props| {
            if replication == Replication::SaslScram {
                format_with_broker_credential(dir, props)
            }
        },
    };
    Cluster::start_with(3, &extra, Some(&layout))
}

fn client_settings(files: &Files) -> Vec<(String, String)> {
    [
        ("security.protocol", "sasl_ssl".to_string()),
        ("sasl.mechanisms", "PLAIN".into()),
        ("sasl.username", "admin".into()),
        ("sasl.password", "admin-secret".into()),
        ("ssl.ca.location", path(&files.ca)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn refs(s: &[(String, String)]) -> Vec<(&str, &str)> {
    s.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn bootstrap(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|n| n.bootstrap())
        .collect::<Vec<_>>()
        .join(",")
}

/// Produces `n` records with acks=all to `topic` (auto-created with replication factor
/// 3), waits until every broker holds the partition's whole log, and reads them back.
fn round_trip(cluster: &Cluster, files: &Files, topic: &str, n: usize) {
    let settings = client_settings(files);
    let mut producer = refs(&settings);
    producer.push(("acks", "all"));
    producer.push(("enable.idempotence", "true"));
    let records: Vec<Rec> = (0..n)
        .map(|i| Rec::keyed(&format!("k{i}"), &format!("{topic}-{i}")))
        .collect();
    let bootstrap = bootstrap(cluster);
    produce(&bootstrap, topic, &producer, &records);
    // Every replica's log reaches the same size: replication ran over the secured listener.
    wait_for(
        "the followers to replicate",
        Duration::from_secs(30),
        || {
            let sizes: Vec<u64> = cluster
                .nodes
                .iter()
                .map(|node| {
                    let log = node
                        .data_dir
                        .join(format!("{topic}-0"))
                        .join("00000000000000000000.log");
                    std::fs::metadata(log).map_or(0, |m| m.len())
                })
                .collect();
            (sizes[0] > 0 && sizes.iter().all(|s| *s == sizes[0])).then_some(())
        },
    );
    let got = consume_with(&bootstrap, &refs(&settings), topic, 1, n);
    assert_eq!(got.len(), n, "every record read back once");
}

/// Whether librdkafka with `settings` completes a metadata request at `addr`.
fn reaches(addr: &str, settings: &[(String, String)]) -> bool {
    consumer_with(addr, &refs(settings))
        .fetch_metadata(None, Duration::from_secs(3))
        .is_ok()
}

#[test]
fn mutual_tls_between_brokers_and_controllers_with_sasl_ssl_clients() {
    let ca = Authority::new("strom-cluster-ca");
    let files = files(&ca);
    let cluster = start(&files, Replication::MutualTls);
    round_trip(&cluster, &files, "secured", 200);

    // Peers without a certificate, or with one from another CA, are refused on the
    // replication and the controller listeners.
    let rogue_ca = Authority::new("rogue-ca");
    let rogue = rogue_ca.issue(
        &[],
        &[
            (DnType::OrganizationName, "Strom"),
            (DnType::CommonName, "broker"),
        ],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let rogue_key = write_atomically(dir.path(), "rogue.key", &rogue.key_pem);
    let rogue_cert = write_atomically(dir.path(), "rogue.pem", &rogue.cert_pem);
    let no_cert: Vec<(String, String)> = vec![
        ("security.protocol".into(), "ssl".into()),
        ("ssl.ca.location".into(), path(&files.ca)),
    ];
    let mut wrong_ca = no_cert.clone();
    wrong_ca.push(("ssl.certificate.location".into(), path(&rogue_cert)));
    wrong_ca.push(("ssl.key.location".into(), path(&rogue_key)));
    let node = &cluster.nodes[0];
    let replication = format!("127.0.0.1:{}", node.internal_port);
    assert!(
        !reaches(&replication, &no_cert),
        "no certificate on replication"
    );
    assert!(
        !reaches(&replication, &wrong_ca),
        "another CA's certificate on replication"
    );
    let controller_port: u16 = node_controller_port(node);
    let controller = format!("127.0.0.1:{controller_port}");
    // librdkafka cannot speak the quorum's protocol, but the TLS handshake comes first.
    let _ = reaches(&controller, &no_cert);
    let _ = reaches(&controller, &wrong_ca);
    wait_for(
        "the controller listener's refusals in the log",
        Duration::from_secs(10),
        || {
            let log = node.log();
            (log.matches("refused a quorum connection").count() >= 2).then_some(())
        },
    );

    // The cluster kept serving throughout.
    round_trip(&cluster, &files, "secured-after", 50);
}

/// A voter's controller port.
fn node_controller_port(node: &common::cluster::Node) -> u16 {
    node.controller_port().expect("a voter")
}

#[test]
fn scram_sha_512_between_brokers() {
    let ca = Authority::new("strom-cluster-ca");
    let files = files(&ca);
    let cluster = start(&files, Replication::SaslScram);
    round_trip(&cluster, &files, "scram-replicated", 200);
}

/// The sum over the brokers of one metric series.
fn cluster_metric(cluster: &Cluster, series: &str) -> f64 {
    cluster
        .nodes
        .iter()
        .map(|node| {
            let exposition = common::http_get(node.admin_port, "/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default();
            common::metric_value(&exposition, series).unwrap_or(0.0)
        })
        .sum()
}

/// KIP-368 between brokers: with a session lifetime on the replication listener, the
/// followers re-authenticate on the connections they have instead of opening new ones,
/// and replication goes on.
#[test]
fn followers_reauthenticate_on_their_connections() {
    const REAUTHENTICATIONS: &str =
        "kafka_server_socketservermetrics_successful_reauthentication_total{listener=\"REPLICATION\"}";
    const CONNECTIONS: &str =
        "kafka_server_socketservermetrics_connection_creation_total{listener=\"REPLICATION\"}";
    let ca = Authority::new("strom-cluster-ca");
    let files = files(&ca);
    let cluster = start_with(
        &files,
        Replication::SaslScram,
        &[(
            "listener.name.replication.connections.max.reauth.ms",
            "3000",
        )],
    );
    round_trip(&cluster, &files, "reauth-replicated", 100);

    // Each follower's connection renews its session about every 2.5 s. The count starts
    // once the first renewal is seen, when every fetcher has been connected for a while.
    wait_for("a first re-authentication", Duration::from_secs(30), || {
        (cluster_metric(&cluster, REAUTHENTICATIONS) > 0.0).then_some(())
    });
    let connections = cluster_metric(&cluster, CONNECTIONS);
    let reauthentications = cluster_metric(&cluster, REAUTHENTICATIONS);
    assert!(
        connections > 0.0,
        "the followers connected over REPLICATION"
    );
    wait_for(
        "the followers' connections to re-authenticate",
        Duration::from_secs(30),
        || (cluster_metric(&cluster, REAUTHENTICATIONS) >= reauthentications + 4.0).then_some(()),
    );
    assert_eq!(
        cluster_metric(&cluster, CONNECTIONS),
        connections,
        "a session's end opened new replication connections"
    );
    round_trip(&cluster, &files, "reauth-replicated-later", 100);
}
