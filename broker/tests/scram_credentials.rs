//! KIP-554 SCRAM credentials against real `strom-broker` processes: Kafka 4.4's own
//! `kafka-configs` (skipped without the jars unless STROM_REQUIRE_JVM=1), Kafka's error
//! codes and messages through the raw protocol (the same checks run against Apache Kafka
//! 4.4 by hand, see `kafka_answers_on_reference_kafka`), replication to every broker of a
//! cluster, and `strom-broker format --add-scram`.

mod common;

use common::java_clients::kafka_tool as tool;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeClientQuotasRequest, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use common::cluster::{call, Cluster};
use common::{kafka_jars, repo_root, wait_for, BrokerProcess};

const SHA256: i8 = 1;
const SHA512: i8 = 2;

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// An upsertion as a client sends it: any salted password of the mechanism's hash length
/// makes a valid credential (only a client knowing it could ever log in).
fn upsertion(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    let len = if mechanism == SHA512 { 64 } else { 32 };
    ScramCredentialUpsertion::default()
        .with_name(name(user))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(Bytes::from_static(b"salt"))
        .with_salted_password(Bytes::from(vec![7u8; len]))
}

fn deletion(user: &str, mechanism: i8) -> ScramCredentialDeletion {
    ScramCredentialDeletion::default()
        .with_name(name(user))
        .with_mechanism(mechanism)
}

fn alter(
    port: u16,
    deletions: Vec<ScramCredentialDeletion>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> AlterUserScramCredentialsResponse {
    let request = AlterUserScramCredentialsRequest::default()
        .with_deletions(deletions)
        .with_upsertions(upsertions);
    call(port, 0, &request)
}

/// (user, error code, message) per result, sorted by user: Kafka lists them in no
/// particular order.
fn alter_results(response: &AlterUserScramCredentialsResponse) -> Vec<(String, i16, String)> {
    let mut results: Vec<(String, i16, String)> = response
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.error_code,
                r.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    results.sort();
    results
}

fn describe(port: u16, users: Option<&[&str]>) -> DescribeUserScramCredentialsResponse {
    let request = DescribeUserScramCredentialsRequest::default().with_users(users.map(|users| {
        users
            .iter()
            .map(|u| UserName::default().with_name(name(u)))
            .collect()
    }));
    call(port, 0, &request)
}

/// One user's described credentials as "MECHANISM=iterations" (sorted), or its error.
type Described = Result<Vec<String>, (i16, String)>;

fn described(response: &DescribeUserScramCredentialsResponse) -> Vec<(String, Described)> {
    assert_eq!(response.error_code, 0, "{response:?}");
    let mut users: Vec<(String, Described)> = response
        .results
        .iter()
        .map(|r| {
            let outcome = if r.error_code == 0 {
                let mut infos: Vec<String> = r
                    .credential_infos
                    .iter()
                    .map(|c| format!("{}={}", c.mechanism, c.iterations))
                    .collect();
                infos.sort();
                Ok(infos)
            } else {
                Err((
                    r.error_code,
                    r.error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                ))
            };
            (r.user.to_string(), outcome)
        })
        .collect();
    users.sort_by(|a, b| a.0.cmp(&b.0));
    users
}

fn ok(user: &str) -> (String, i16, String) {
    (user.to_string(), 0, String::new())
}

fn refused(user: &str, code: i16, message: &str) -> (String, i16, String) {
    (user.to_string(), code, message.to_string())
}

/// The answers Strom and Apache Kafka 4.4 give alike. Leaves the broker with no users.
fn check_kafka_answers(port: u16) {
    // Nothing yet: an empty list, no error.
    assert!(describe(port, None).results.is_empty());

    // Two users in one request, each with its own result.
    let r = alter(
        port,
        vec![],
        vec![
            upsertion("alice", SHA512, 4096),
            upsertion("bob", SHA256, 8192),
        ],
    );
    assert_eq!(alter_results(&r), vec![ok("alice"), ok("bob")]);
    // Kafka's brokers see a change a moment after the controller commits it.
    let both = |port| {
        let d = described(&describe(port, None));
        (d.len() == 2).then_some(d)
    };
    let all = wait_for("both users described", Duration::from_secs(10), || {
        both(port)
    });
    assert_eq!(
        all,
        vec![
            ("alice".to_string(), Ok(vec!["2=4096".to_string()])),
            ("bob".to_string(), Ok(vec!["1=8192".to_string()])),
        ]
    );

    // Named users: one unknown, one twice (an empty list means every user, like null).
    let d = described(&describe(port, Some(&["alice", "nobody", "bob", "bob"])));
    assert_eq!(
        d,
        vec![
            ("alice".to_string(), Ok(vec!["2=4096".to_string()])),
            (
                "bob".to_string(),
                Err((
                    DUPLICATE_RESOURCE,
                    "Cannot describe SCRAM credentials for the same user twice in a single request: bob"
                        .to_string()
                ))
            ),
            (
                "nobody".to_string(),
                Err((
                    RESOURCE_NOT_FOUND,
                    "Attempt to describe a user credential that does not exist: nobody"
                        .to_string()
                ))
            ),
        ]
    );
    assert_eq!(described(&describe(port, Some(&[]))).len(), 2);

    // Refusals, each for its user only.
    let r = alter(
        port,
        vec![
            deletion("carol", SHA256),
            deletion("bob", SHA512),
            deletion("", SHA256),
        ],
        vec![
            upsertion("dave", 0, 4096),
            upsertion("erin", SHA256, 4095),
            upsertion("frank", SHA512, 16385),
            upsertion("alice", 5, 4096),
        ],
    );
    let not_found = "Attempt to delete a user credential that does not exist";
    assert_eq!(
        alter_results(&r),
        vec![
            refused("", UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
            refused(
                "alice",
                UNSUPPORTED_SASL_MECHANISM,
                "Unknown SCRAM mechanism"
            ),
            // bob exists, but not with SCRAM-SHA-512.
            refused("bob", RESOURCE_NOT_FOUND, not_found),
            refused("carol", RESOURCE_NOT_FOUND, not_found),
            refused(
                "dave",
                UNSUPPORTED_SASL_MECHANISM,
                "Unknown SCRAM mechanism"
            ),
            refused("erin", UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
            refused("frank", UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
        ]
    );

    // A user altered twice in one request, whatever the mechanisms: none of it happens.
    let twice = "A user credential cannot be altered twice in the same request";
    let r = alter(
        port,
        vec![deletion("alice", SHA512)],
        vec![upsertion("alice", SHA512, 8192)],
    );
    assert_eq!(
        alter_results(&r),
        vec![refused("alice", DUPLICATE_RESOURCE, twice)]
    );
    let r = alter(
        port,
        vec![],
        vec![
            upsertion("bob", SHA256, 4096),
            upsertion("bob", SHA512, 4096),
        ],
    );
    assert_eq!(
        alter_results(&r),
        vec![refused("bob", DUPLICATE_RESOURCE, twice)]
    );
    let d = described(&describe(port, Some(&["alice", "bob"])));
    assert_eq!(
        d,
        vec![
            ("alice".to_string(), Ok(vec!["2=4096".to_string()])),
            ("bob".to_string(), Ok(vec!["1=8192".to_string()])),
        ],
        "refused requests change nothing"
    );

    // Deleting a user's last mechanism removes the user.
    let r = alter(
        port,
        vec![deletion("alice", SHA512), deletion("bob", SHA256)],
        vec![],
    );
    assert_eq!(alter_results(&r), vec![ok("alice"), ok("bob")]);
    wait_for("users removed", Duration::from_secs(10), || {
        describe(port, None).results.is_empty().then_some(())
    });
    let d = described(&describe(port, Some(&["alice"])));
    assert_eq!(d[0].1.as_ref().err().map(|e| e.0), Some(RESOURCE_NOT_FOUND));
}

/// DescribeClientQuotas, which `kafka-configs --describe --entity-type users` sends before
/// it describes credentials: nothing matches (no quotas are set), and a malformed filter
/// gets Kafka's top-level error.
fn check_client_quotas_answers(port: u16) {
    let component = |entity_type: &str, match_type: i8, matched: Option<&str>| {
        ComponentData::default()
            .with_entity_type(name(entity_type))
            .with_match_type(match_type)
            .with_match(matched.map(name))
    };
    let ask = |components: Vec<ComponentData>| {
        let request = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(true);
        let r = call(port, 1, &request);
        let message = r.error_message.as_ref().map(|m| m.to_string());
        (r.error_code, message, r.entries.map(|e| e.len()))
    };
    // The filters kafka-configs sends for all users and for one. (Kafka's message on
    // success is the empty string, not null.)
    let nothing = (0, Some(String::new()), Some(0));
    assert_eq!(ask(vec![component("user", 2, None)]), nothing);
    assert_eq!(ask(vec![component("user", 0, Some("alice"))]), nothing);
    assert_eq!(
        ask(vec![component("user", 2, None), component("user", 1, None)]),
        (
            INVALID_REQUEST,
            Some("Entity type user cannot appear more than once in the filter.".to_string()),
            None
        )
    );
    assert_eq!(
        ask(vec![component("group", 2, None)]),
        (
            UNSUPPORTED_VERSION,
            Some("Unsupported entity type group".to_string()),
            None
        )
    );
}

#[test]
fn kafka_answers_through_the_raw_protocol() {
    let broker = BrokerProcess::start(&[]);
    check_kafka_answers(broker.port);
    check_client_quotas_answers(broker.port);
}

/// Where Strom is stricter than Kafka: a credential no client could match is refused.
#[test]
fn salts_and_salted_passwords_that_make_no_credential_are_refused() {
    let broker = BrokerProcess::start(&[]);
    let port = broker.port;
    let cases = [
        (
            upsertion("a", SHA256, 4096).with_salt(Bytes::new()),
            "Salt must not be empty",
        ),
        (
            upsertion("b", SHA256, 4096).with_salted_password(Bytes::new()),
            "Salted password must be 32 bytes for SCRAM-SHA-256, got 0",
        ),
        (
            upsertion("c", SHA512, 4096).with_salted_password(Bytes::from(vec![1u8; 32])),
            "Salted password must be 64 bytes for SCRAM-SHA-512, got 32",
        ),
    ];
    for (u, message) in cases {
        let user = u.name.to_string();
        let r = alter(port, vec![], vec![u]);
        assert_eq!(
            alter_results(&r),
            vec![refused(&user, UNACCEPTABLE_CREDENTIAL, message)]
        );
    }
    assert!(describe(port, None).results.is_empty());
}

/// The same checks against a running Apache Kafka 4.4 broker, by hand:
/// `STROM_REFERENCE_KAFKA_PORT=<port> cargo test -p strom-broker --test scram_credentials -- --ignored`
/// (start one with e2e/jvm/bin/apache-kafka-node). Also pins what Kafka does where Strom
/// is stricter (see `controller::scram`).
#[test]
#[ignore = "needs a running Apache Kafka broker"]
fn kafka_answers_on_reference_kafka() {
    let port: u16 = std::env::var("STROM_REFERENCE_KAFKA_PORT")
        .expect("STROM_REFERENCE_KAFKA_PORT")
        .parse()
        .expect("a port number");
    check_kafka_answers(port);
    check_client_quotas_answers(port);
    // Kafka stores an empty salt and a salted password of any non-empty length...
    let r = alter(
        port,
        vec![],
        vec![
            upsertion("a", SHA256, 4096).with_salt(Bytes::new()),
            upsertion("c", SHA512, 4096).with_salted_password(Bytes::from(vec![1u8; 32])),
        ],
    );
    assert_eq!(alter_results(&r), vec![ok("a"), ok("c")]);
    // ... and fails on an empty salted password (its HMAC refuses an empty key).
    let r = alter(
        port,
        vec![],
        vec![upsertion("b", SHA256, 4096).with_salted_password(Bytes::new())],
    );
    let results = alter_results(&r);
    eprintln!("Kafka, empty salted password: {results:?}");
    assert_eq!(results[0].1, -1, "UNKNOWN_SERVER_ERROR: {results:?}");
    let r = alter(
        port,
        vec![deletion("a", SHA256), deletion("c", SHA512)],
        vec![],
    );
    assert_eq!(alter_results(&r), vec![ok("a"), ok("c")]);
}

#[test]
fn a_credential_altered_through_one_broker_is_described_by_every_broker() {
    let cluster = Cluster::start(3, &[]);
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
    let r = alter(ports[1], vec![], vec![upsertion("alice", SHA512, 8192)]);
    assert_eq!(alter_results(&r), vec![ok("alice")]);
    for &port in &ports {
        let d = wait_for("alice on every broker", Duration::from_secs(20), || {
            let d = described(&describe(port, Some(&["alice"])));
            d[0].1.is_ok().then_some(d)
        });
        assert_eq!(
            d,
            vec![("alice".to_string(), Ok(vec!["2=8192".to_string()]))]
        );
    }
    // Refusals are decided by the active controller, whichever broker is asked.
    let r = alter(ports[2], vec![deletion("alice", SHA256)], vec![]);
    assert_eq!(
        alter_results(&r),
        vec![refused(
            "alice",
            RESOURCE_NOT_FOUND,
            "Attempt to delete a user credential that does not exist"
        )]
    );
    let r = alter(ports[2], vec![deletion("alice", SHA512)], vec![]);
    assert_eq!(alter_results(&r), vec![ok("alice")]);
    for &port in &ports {
        wait_for(
            "alice gone on every broker",
            Duration::from_secs(20),
            || describe(port, None).results.is_empty().then_some(()),
        );
    }
}

/// Runs `strom-broker format` for a broker whose log dir is `data_dir`.
fn format(data_dir: &Path, extra: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_strom-broker"))
        .arg("format")
        .arg("--cluster-id")
        .arg("c3Ryb20tc2NyYW0tdGVzdA")
        .args(extra)
        .arg("--override")
        .arg(format!("log.dirs={}", data_dir.display()))
        .output()
        .expect("run strom-broker format");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn format_add_scram_puts_credentials_into_the_new_metadata_log_once() {
    let specs = [
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=alice-secret]",
        "--add-scram=SCRAM-SHA-256=[name=bob,iterations=8192,salt=\"N3E=\",password=bob-secret]",
    ];
    let mut broker = BrokerProcess::start_prepared(&[], None, |dir| {
        // A malformed credential stops format before it writes anything.
        let (code, out) = format(dir, &["--add-scram", "SCRAM-SHA-256=[name=carol]"]);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains(
                "--add-scram: You must supply one of 'password' or 'saltedpassword' to add-scram"
            ),
            "{out}"
        );
        assert!(!dir.join("meta.properties").exists());
        let (code, out) = format(dir, &specs);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("alice (SCRAM-SHA-512, 4096 iterations)")
                && out.contains("bob (SCRAM-SHA-256, 8192 iterations)"),
            "{out}"
        );
        assert!(!out.contains("secret"), "no password is printed: {out}");
    });
    let port = broker.port;
    let d = described(&describe(port, None));
    assert_eq!(
        d,
        vec![
            ("alice".to_string(), Ok(vec!["2=4096".to_string()])),
            ("bob".to_string(), Ok(vec!["1=8192".to_string()])),
        ],
        "{}",
        broker.log()
    );

    // Changed after the first start, the credential stays changed over restarts: the
    // bootstrap records are not written again.
    let r = alter(port, vec![], vec![upsertion("alice", SHA512, 10000)]);
    assert_eq!(alter_results(&r), vec![ok("alice")]);
    // Formatting again changes nothing: the node is formatted.
    let (code, out) = format(
        &broker.data_dir,
        &["--add-scram", "SCRAM-SHA-256=[name=mallory,password=x]"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already formatted"), "{out}");
    assert!(broker.terminate(), "clean shutdown");
    broker.restart();
    let d = described(&describe(broker.port, None));
    assert_eq!(
        d,
        vec![
            ("alice".to_string(), Ok(vec!["2=10000".to_string()])),
            ("bob".to_string(), Ok(vec!["1=8192".to_string()])),
        ],
        "{}",
        broker.log()
    );
}

/// `kafka-configs` of Kafka 4.4 (org.apache.kafka.tools.ConfigCommand), checked by hand
/// against an Apache Kafka 4.4 node: the same commands print the same lines and exit
/// codes there (noted at each step).
#[test]
fn kafka_configs_alters_describes_and_deletes_scram_users() {
    if kafka_jars().is_none() {
        return;
    }
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    let configs = |args: &[&str]| tool("kafka-configs", &bootstrap, args);
    let users = ["--entity-type", "users"];
    let alice = ["--entity-type", "users", "--entity-name", "alice"];

    // Kafka: "Completed updating config for user alice.", exit 0.
    let (code, out) = configs(
        &[
            &[
                "--alter",
                "--add-config",
                "SCRAM-SHA-512=[password=alice-secret]",
            ][..],
            &alice,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Completed updating config for user alice."),
        "{out}"
    );
    // Kafka: the one line below for all users and for alice alone, exit 0.
    let line =
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-512=iterations=4096";
    for args in [
        &[&["--describe"][..], &users].concat(),
        &[&["--describe"][..], &alice].concat(),
    ] {
        let (code, out) = configs(args);
        assert_eq!(code, 0, "{out}");
        assert_eq!(out.trim(), line, "{args:?}");
    }
    // Kafka: a user without credentials prints nothing, exit 0.
    let (code, out) = configs(&[
        "--describe",
        "--entity-type",
        "users",
        "--entity-name",
        "nobody",
    ]);
    assert_eq!((code, out.trim()), (0, ""), "{out}");

    // Kafka: both mechanisms at once is one user altered twice: exit 1 with
    // DuplicateResourceException.
    let (code, out) = configs(
        &[
            &[
                "--alter",
                "--add-config",
                "SCRAM-SHA-256=[iterations=8192,password=a],SCRAM-SHA-512=[password=a]",
            ][..],
            &alice,
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("DuplicateResourceException: A user credential cannot be altered twice in the same request"),
        "{out}"
    );
    // One at a time works. (Kafka lists a user's mechanisms in no fixed order.)
    let (code, out) = configs(
        &[
            &[
                "--alter",
                "--add-config",
                "SCRAM-SHA-256=[iterations=8192,password=a]",
            ][..],
            &alice,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = configs(&[&["--describe"][..], &alice].concat());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("SCRAM credential configs for user-principal 'alice' are ")
            && out.contains("SCRAM-SHA-256=iterations=8192")
            && out.contains("SCRAM-SHA-512=iterations=4096"),
        "{out}"
    );

    // Kafka: "Completed updating config for user alice.", and alice keeps SHA-256.
    let (code, out) =
        configs(&[&["--alter", "--delete-config", "SCRAM-SHA-512"][..], &alice].concat());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Completed updating config for user alice."),
        "{out}"
    );
    let (code, out) = configs(&[&["--describe"][..], &users].concat());
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192"
    );
    // Kafka: exit 1, ResourceNotFoundException.
    let (code, out) =
        configs(&[&["--alter", "--delete-config", "SCRAM-SHA-512"][..], &alice].concat());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "ResourceNotFoundException: Attempt to delete a user credential that does not exist"
        ),
        "{out}"
    );
    // The tool itself refuses too few iterations (Kafka: the same message, exit 1).
    let (code, out) = configs(
        &[
            &[
                "--alter",
                "--add-config",
                "SCRAM-SHA-256=[iterations=100,password=x]",
            ][..],
            &alice,
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Iterations 100 is less than the minimum 4096 required for SCRAM-SHA-256"),
        "{out}"
    );
    // The last mechanism deleted, nothing is described.
    let (code, out) =
        configs(&[&["--alter", "--delete-config", "SCRAM-SHA-256"][..], &alice].concat());
    assert_eq!(code, 0, "{out}");
    let (code, out) = configs(&[&["--describe"][..], &users].concat());
    assert_eq!((code, out.trim()), (0, ""), "{out}");
}

/// The fuzzer's seeds for these APIs (fuzz/corpus/request_frame), fed through the
/// in-process broker whole, cut short at every length, and with each byte flipped: every
/// frame gets an answer or a close with a reason, never a panic.
#[test]
fn scram_fuzz_seeds_and_their_mutations_are_answered() {
    use strom_broker::harness::FrameHarness;
    use strom_broker::protocol::Reply;
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = FrameHarness::new(dir.path(), &[]).expect("in-process broker");
    let seeds = repo_root().join("fuzz/corpus/request_frame");
    for name in [
        "alter_user_scram_credentials_v0",
        "describe_user_scram_credentials_v0",
        "describe_client_quotas_v1",
    ] {
        let seed = std::fs::read(seeds.join(name)).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        match harness.handle(&seed) {
            Reply::Frame(_) => {}
            other => panic!("seed {name} not answered: {other:?}"),
        }
        for cut in 0..seed.len() {
            if let Reply::Close(reason) = harness.handle(&seed[..cut]) {
                assert!(!reason.is_empty());
            }
        }
        for at in 8..seed.len() {
            let mut flipped = seed.clone();
            flipped[at] ^= 0xff;
            if let Reply::Close(reason) = harness.handle(&flipped) {
                assert!(!reason.is_empty());
            }
        }
    }
}
