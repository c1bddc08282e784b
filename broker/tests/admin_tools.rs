//! Kafka 4.4's own tools (e2e/jvm/bin) against a Strom broker for the APIs issue 12 added:
//! what each prints and its exit code, as on an Apache Kafka 4.4 broker (checked by hand
//! with e2e/jvm/bin/apache-kafka-node; the facts are noted at each assertion). Skipped
//! without the jars unless STROM_REQUIRE_JVM=1 (`scripts/jvm-setup.sh` fetches them).

mod common;

use common::java_clients::kafka_tool as tool;

use common::cluster::Cluster;
use common::{kafka_jars, BrokerProcess};

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|rest| rest.trim_start_matches(':').trim())
}

#[test]
fn quorum_features_acls_and_transactions_tools_on_one_broker() {
    if kafka_jars().is_none() {
        return;
    }
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();

    // Kafka 4.4 single node: ClusterId, LeaderId 1, LeaderEpoch 1, HighWatermark,
    // MaxFollowerLag 0, MaxFollowerLagTimeMs 0, CurrentVoters [{"id": 1, "endpoints":
    // [...]}], CurrentObservers [], exit 0.
    let (code, out) = tool(
        "kafka-metadata-quorum",
        &bootstrap,
        &["describe", "--status"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "LeaderId"), Some("0"), "{out}");
    assert_eq!(field(&out, "MaxFollowerLag"), Some("0"), "{out}");
    assert!(
        field(&out, "HighWatermark").is_some_and(|hw| hw.parse::<i64>().is_ok_and(|hw| hw > 0)),
        "{out}"
    );
    assert_eq!(
        field(&out, "CurrentVoters"),
        Some(r#"[{"id": 0}]"#),
        "{out}"
    );
    assert_eq!(field(&out, "CurrentObservers"), Some("[]"), "{out}");
    // Kafka: a header row, then "1 AAAAAAAAAAAAAAAAAAAAAA <LEO> 0 <ts> <ts> Leader".
    let (code, out) = tool(
        "kafka-metadata-quorum",
        &bootstrap,
        &["describe", "--replication"],
    );
    assert_eq!(code, 0, "{out}");
    let leader_row: Vec<&str> = out
        .lines()
        .find(|l| l.trim_end().ends_with("Leader"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(leader_row.first(), Some(&"0"), "{out}");
    assert_eq!(leader_row.get(1), Some(&"AAAAAAAAAAAAAAAAAAAAAA"), "{out}");
    assert_eq!(leader_row.get(3), Some(&"0"), "no lag: {out}");

    // Kafka 4.4 lists seven features; Strom lists the same seven at its own levels.
    let (code, out) = tool("kafka-features", &bootstrap, &["describe"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Feature: ")).count(),
        7,
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("Feature: metadata.version")
                && l.contains("FinalizedVersionLevel: 3.3-IV3")),
        "{out}"
    );
    // Kafka: "Could not upgrade transaction.version to 5. ... Invalid update version 5 for
    // feature transaction.version. Local controller 1 only supports versions 0-2",
    // "1 out of 1 operation(s) failed.", exit 1.
    let (code, out) = tool(
        "kafka-features",
        &bootstrap,
        &["upgrade", "--feature", "transaction.version=5"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Invalid update version 5 for feature transaction.version. Local controller 0 only supports versions 0-0"), "{out}");

    // Kafka without an authorizer: exit 1, SecurityDisabledException.
    let (code, out) = tool("kafka-acls", &bootstrap, &["--list"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("SecurityDisabledException: No Authorizer is configured on the broker"),
        "{out}"
    );

    // Kafka: list prints the header only (exit 0); describe of an unknown id fails
    // "... failed because the ID could not be found" (exit 1).
    let (code, out) = tool("kafka-transactions", &bootstrap, &["list"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("TransactionalId\tCoordinator\tProducerId\tTransactionState"),
        "{out}"
    );
    let (code, out) = tool(
        "kafka-transactions",
        &bootstrap,
        &["describe", "--transactional-id", "nobody"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the ID could not be found"), "{out}");
}

#[test]
fn metadata_quorum_tool_on_every_node_of_a_cluster() {
    if kafka_jars().is_none() {
        return;
    }
    let cluster = Cluster::start(3, &[]);
    let mut leaders = Vec::new();
    for node in &cluster.nodes {
        let (code, out) = tool(
            "kafka-metadata-quorum",
            &node.bootstrap(),
            &["describe", "--replication"],
        );
        assert_eq!(code, 0, "{out}");
        let rows: Vec<Vec<&str>> = out
            .lines()
            .filter(|l| l.trim_end().ends_with("Leader") || l.trim_end().ends_with("Follower"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        // Kafka 4.4 with three combined nodes: one Leader row and two Follower rows.
        assert_eq!(rows.len(), 3, "{out}");
        assert_eq!(
            rows.iter().filter(|r| r.last() == Some(&"Leader")).count(),
            1,
            "{out}"
        );
        leaders.push(rows[0][0].to_string());
    }
    assert!(
        leaders.windows(2).all(|w| w[0] == w[1]),
        "every node names one leader: {leaders:?}"
    );
}
