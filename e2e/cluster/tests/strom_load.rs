//! `strom-load` as the Kubernetes scenarios run it (a separate process that knows the
//! cluster only from its command line), against the harness's secured mode: SASL_SSL
//! with PLAIN, the cluster's own CA, the password from a file. It must produce, consume,
//! read back and report a clean history, over PLAIN and over SCRAM-SHA-512; and refuse
//! a wrong password or an untrusted certificate by exiting with the reason instead of
//! retrying forever.

mod common;

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::Timer;
use serde_json::Value;
use strom_e2e_cluster::admin_http;
use strom_e2e_cluster::security::{self, ADMIN_PASSWORD, ADMIN_USER};
use strom_e2e_cluster::wait::wait_until;
use strom_e2e_cluster::{Cluster, ClusterOptions};

const STROM_LOAD: &str = env!("CARGO_BIN_EXE_strom-load");
/// Topic creation plus the first acknowledged writes, on a loaded machine.
const FIRST_ACKS: Duration = Duration::from_secs(120);
/// strom-load's own catch-up and read-back are bounded at 60 s each.
const STOP_ANSWER: Duration = Duration::from_secs(150);
const EXIT: Duration = Duration::from_secs(30);
/// strom-load's reachability check gives up after 30 s.
const REFUSAL: Duration = Duration::from_secs(60);

/// A strom-load process, killed if the test ends before it exits; stderr goes to a file
/// the test reads for messages.
struct LoadProcess {
    child: Child,
    stderr: PathBuf,
}

impl LoadProcess {
    fn spawn(dir: &Path, name: &str, args: &[String]) -> LoadProcess {
        let stderr = dir.join(format!("{name}.stderr"));
        let child = Command::new(STROM_LOAD)
            .args(args)
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        LoadProcess { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_until("strom-load to exit", timeout, || {
            self.exited().ok_or_else(|| self.stderr())
        })
        .unwrap()
    }
}

impl Drop for LoadProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// strom-load's arguments for `bootstrap` with the given client settings.
fn args(bootstrap: &str, listen: SocketAddr, topic: &str, client: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--rate",
        "100",
        "--listen",
        &listen.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend_from_slice(client);
    args
}

/// SASL_SSL with PLAIN as the secured mode's admin: the password from `password_file`,
/// the CA given unless `ca` is `None`.
fn sasl_ssl(password_file: &Path, ca: Option<&Path>) -> Vec<String> {
    let mut settings = vec![
        "--client-config".to_string(),
        "security.protocol=SASL_SSL".into(),
        "--client-config".into(),
        "sasl.mechanism=PLAIN".into(),
        "--client-config".into(),
        format!("sasl.username={ADMIN_USER}"),
        "--client-config-file".into(),
        format!("sasl.password={}", password_file.display()),
    ];
    if let Some(ca) = ca {
        settings.push("--client-config".into());
        settings.push(format!("ssl.ca.location={}", ca.display()));
    }
    settings
}

fn progress(listen: SocketAddr) -> Result<Value, String> {
    let (status, body) =
        admin_http::get(listen, "/progress", Duration::from_secs(5)).map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}

fn number(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing from {report}"))
}

#[test]
fn secured_cluster_load_reports_a_clean_history() {
    let _timer = Timer::start("secured_cluster_load_reports_a_clean_history");
    let c = Cluster::start(3, ClusterOptions::default().secured()).unwrap();
    let bootstrap = c.bootstrap();
    let ca = security::for_bootstrap(&bootstrap).unwrap().ca;
    let dir = tempfile::tempdir().unwrap();
    // As a Secret mounts it: with a trailing newline that is not part of the password.
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{ADMIN_PASSWORD}\n")).unwrap();
    run_clean_load(&bootstrap, dir.path(), &sasl_ssl(&password, Some(&ca)));
}

/// The operator's users log in with SCRAM-SHA-512: the same load with the secured
/// mode's admin holding a SCRAM credential (another password than its PLAIN one, so a
/// PLAIN login could not pass for it).
#[test]
fn scram_sha_512_load_reports_a_clean_history() {
    let _timer = Timer::start("scram_sha_512_load_reports_a_clean_history");
    let c = Cluster::start(
        3,
        ClusterOptions::default().secured().with_property(
            "listener.name.client.sasl.enabled.mechanisms",
            "PLAIN,SCRAM-SHA-512",
        ),
    )
    .unwrap();
    let bootstrap = c.bootstrap();
    let ca = security::for_bootstrap(&bootstrap).unwrap().ca;
    let brokers: Vec<String> = (0..3)
        .map(|i| c.kafka_addr(i).unwrap().to_string())
        .collect();
    give_admin_scram_credential(&brokers, &ca);

    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, SCRAM_PASSWORD).unwrap();
    let mut settings = sasl_ssl(&password, Some(&ca));
    for s in settings.iter_mut() {
        if s == "sasl.mechanism=PLAIN" {
            *s = "sasl.mechanism=SCRAM-SHA-512".into();
        }
    }
    run_clean_load(&bootstrap, dir.path(), &settings);
}

/// Mutual TLS, no SASL: the client listener switched to SSL with
/// `ssl.client.auth=required`; strom-load presents the secured mode's broker certificate
/// (signed by the cluster's CA, `User:broker` under the principal mapping, a super user).
#[test]
fn mutual_tls_load_reports_a_clean_history() {
    let _timer = Timer::start("mutual_tls_load_reports_a_clean_history");
    let c = Cluster::start(
        3,
        ClusterOptions::default()
            .secured()
            .with_property(
                "listener.security.protocol.map",
                "CLIENT:SSL,REPLICATION:SSL,CONTROLLER:SSL",
            )
            .with_property("listener.name.client.ssl.client.auth", "required"),
    )
    .unwrap();
    let bootstrap = c.bootstrap();
    let ca = security::for_bootstrap(&bootstrap).unwrap().ca;
    // The key and the certificate in one PEM file, as `security::make_files` writes it.
    let keystore = ca.with_file_name("broker.pem");
    let dir = tempfile::tempdir().unwrap();
    let settings: Vec<String> = [
        "security.protocol=SSL".to_string(),
        format!("ssl.ca.location={}", ca.display()),
        format!("ssl.certificate.location={}", keystore.display()),
        format!("ssl.key.location={}", keystore.display()),
    ]
    .into_iter()
    .flat_map(|s| ["--client-config".to_string(), s])
    .collect();
    run_clean_load(&bootstrap, dir.path(), &settings);
}

const SCRAM_PASSWORD: &str = "admin-scram-secret";

/// Upserts the SCRAM-SHA-512 credential over PLAIN as the admin, then waits until every
/// broker accepts it (each applies the metadata record on its own).
fn give_admin_scram_credential(brokers: &[String], ca: &Path) {
    use strom_client::admin::Admin;
    use strom_client::admin_security::ScramUpsertion;
    use strom_client::sasl::SaslMechanism;
    use strom_client::scram::ScramMechanism;
    use strom_client::tls::TlsConfig;
    use strom_client::Security;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = TlsConfig::new(std::fs::read(ca).unwrap()).unwrap();
    let plain = Security::plaintext().with_tls(tls.clone()).with_sasl(
        SaslMechanism::Plain,
        ADMIN_USER,
        ADMIN_PASSWORD,
    );
    let timeout = Duration::from_secs(10);
    runtime.block_on(async {
        let mut admin = Admin::connect_with(brokers, &plain, "strom-load-test", timeout, timeout)
            .await
            .unwrap();
        let upsertion =
            ScramUpsertion::new(ADMIN_USER, ScramMechanism::Sha512, SCRAM_PASSWORD, 4096).unwrap();
        let outcomes = admin
            .alter_user_scram_credentials(&[upsertion], &[])
            .await
            .unwrap();
        for (user, outcome) in outcomes {
            outcome.unwrap_or_else(|e| panic!("{user}: {}", e.describe()));
        }
    });
    let scram = Security::plaintext().with_tls(tls).with_sasl(
        SaslMechanism::SCRAM_SHA_512,
        ADMIN_USER,
        SCRAM_PASSWORD,
    );
    for broker in brokers {
        wait_until(
            &format!("a SCRAM-SHA-512 login at {broker}"),
            FIRST_ACKS,
            || {
                runtime
                    .block_on(scram.connect(broker, "strom-load-test", timeout))
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        )
        .unwrap();
    }
}

/// Runs strom-load with `client` settings until 300 writes are acknowledged, stops it
/// and demands a clean report and a clean exit.
fn run_clean_load(bootstrap: &str, dir: &Path, client: &[String]) {
    let listen = free_addr();
    let mut load = LoadProcess::spawn(
        dir,
        "load",
        &args(bootstrap, listen, "secured-load", client),
    );

    wait_until("300 acknowledged writes", FIRST_ACKS, || {
        if let Some(status) = load.exited() {
            panic!("strom-load exited early ({status}):\n{}", load.stderr());
        }
        let p = progress(listen)?;
        match p["acked"].as_u64() {
            Some(acked) if acked >= 300 => Ok(()),
            _ => Err(p.to_string()),
        }
    })
    .unwrap();

    let (status, body) = admin_http::get(listen, "/stop", STOP_ANSWER).unwrap();
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    eprintln!("strom-load report: {report}");
    assert!(report.get("error").is_none(), "{report}");
    assert!(number(&report, "acked") >= 300, "{report}");
    assert_eq!(number(&report, "failed"), 0, "{report}");
    assert_eq!(
        number(&report, "sent"),
        number(&report, "acked"),
        "{report}"
    );
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert_eq!(report["skipped"], serde_json::json!({}), "{report}");
    assert_eq!(report["notes"], serde_json::json!([]), "{report}");
    assert!(
        number(&report, "records_read") >= number(&report, "acked"),
        "{report}"
    );
    assert!(number(&report, "consumed") > 0, "{report}");
    let status = load.wait_exit(EXIT);
    assert!(status.success(), "{status}:\n{}", load.stderr());
}

#[test]
fn refused_credentials_end_strom_load_with_the_reason() {
    let _timer = Timer::start("refused_credentials_end_strom_load_with_the_reason");
    let c = Cluster::start(
        1,
        ClusterOptions::default()
            .secured()
            .with_property("default.replication.factor", "1")
            .with_property("offsets.topic.replication.factor", "1")
            .with_property("min.insync.replicas", "1"),
    )
    .unwrap();
    let bootstrap = c.bootstrap();
    let ca = security::for_bootstrap(&bootstrap).unwrap().ca;
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let right = dir.path().join("password");
    std::fs::write(&right, ADMIN_PASSWORD).unwrap();

    let cases: [(&str, Vec<String>, &[&str]); 3] = [
        (
            "wrong-password",
            sasl_ssl(&wrong, Some(&ca)),
            &["authentication"],
        ),
        // librdkafka then trusts only the system's CAs, which did not sign the brokers'.
        ("no-ca", sasl_ssl(&right, None), &["ssl", "certificate"]),
        (
            "missing-ca-file",
            sasl_ssl(&right, Some(&dir.path().join("absent-ca.pem"))),
            &["ssl.ca.location", "absent-ca.pem"],
        ),
    ];
    for (name, settings, expected) in cases {
        let mut load = LoadProcess::spawn(
            dir.path(),
            name,
            &args(&bootstrap, free_addr(), "refused", &settings),
        );
        let status = load.wait_exit(REFUSAL);
        let stderr = load.stderr();
        eprintln!("{name}: {status}\n{stderr}");
        assert!(!status.success(), "{name}: strom-load succeeded:\n{stderr}");
        let lower = stderr.to_lowercase();
        for word in expected {
            assert!(lower.contains(word), "{name}: no {word:?} in:\n{stderr}");
        }
    }
}
