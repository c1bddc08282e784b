//! ACLs with an authorizer configured (`authorizer.class.name`): Kafka 4.4's `kafka-acls`
//! against a Strom broker, compared with what the same commands print against an Apache
//! Kafka 4.4 node (e2e/jvm/bin/apache-kafka-node with the same two settings; recorded
//! below), ACLs created through one broker of a cluster listed by another, and the ACL
//! APIs' own cluster permission checks. The tool test is skipped without the Kafka jars
//! unless STROM_REQUIRE_JVM=1; the others speak the protocol directly.

mod common;

use std::process::Command;

use common::cluster::{call, Cluster};
use common::{kafka_jars, BrokerProcess};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

const AUTHORIZER: (&str, &str) = (
    "authorizer.class.name",
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
);
/// The PLAINTEXT test clients are `User:ANONYMOUS`; as a super user they administer ACLs.
const ANONYMOUS_SUPER: (&str, &str) = ("super.users", "User:ANONYMOUS");

fn kafka_acls(bootstrap: &str, args: &[&str]) -> (i32, String) {
    common::java_clients::kafka_tool("kafka-acls", bootstrap, args)
}

/// The tool's output as a set of blank-line separated blocks, each line trimmed: the order
/// of the "Current ACLs for resource" blocks is the tool's map order, which is not a
/// broker behaviour (Kafka 4.4 itself printed MATCH results in another order than ANY).
fn blocks(text: &str) -> Vec<String> {
    let mut blocks: Vec<String> = text
        .split("\n\n")
        .map(|b| {
            b.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|b| !b.is_empty())
        .collect();
    blocks.sort();
    blocks
}

const ORDERS_LITERAL: &str = "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:\n\t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\n";
const ORD_PREFIXED: &str = "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=ord, patternType=PREFIXED)`:\n\t(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)\n\n";

#[test]
fn kafka_acls_tool_prints_what_it_prints_against_kafka() {
    if kafka_jars().is_none() {
        return;
    }
    let broker = BrokerProcess::start(&[AUTHORIZER, ANONYMOUS_SUPER]);
    let bootstrap = broker.bootstrap();
    let both = format!("{ORDERS_LITERAL}{ORD_PREFIXED}");
    // (arguments, what Apache Kafka 4.4 printed, exit 0 every time).
    let steps: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "orders"],
            "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`: \n \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\n".into(),
        ),
        // The same ACL again: the tool sees it listed and does not send it.
        (
            vec!["--add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "orders"],
            "Acl (pattern=ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL), entry=(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)) already exists.\n".into(),
        ),
        (
            vec!["--add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "ord", "--resource-pattern-type", "prefixed"],
            "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=ord, patternType=PREFIXED)`: \n \t(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)\n\n".into(),
        ),
        (vec!["--list"], both.clone()),
        (
            vec!["--list", "--topic", "orders", "--resource-pattern-type", "literal"],
            ORDERS_LITERAL.into(),
        ),
        (
            vec!["--list", "--topic", "orders", "--resource-pattern-type", "prefixed"],
            String::new(),
        ),
        (
            vec!["--list", "--topic", "ord", "--resource-pattern-type", "prefixed"],
            ORD_PREFIXED.into(),
        ),
        // MATCH: the literal name, the wildcard, and every prefix of it.
        (
            vec!["--list", "--topic", "orders", "--resource-pattern-type", "match"],
            both.clone(),
        ),
        // ANY with a name: that name under any pattern type (the prefix "ord" is not it).
        (
            vec!["--list", "--topic", "orders", "--resource-pattern-type", "any"],
            ORDERS_LITERAL.into(),
        ),
        (
            vec!["--remove", "--force", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "orders"],
            String::new(),
        ),
        (vec!["--list"], ORD_PREFIXED.into()),
        (
            vec!["--remove", "--force", "--topic", "ord", "--resource-pattern-type", "prefixed"],
            String::new(),
        ),
        (vec!["--list"], String::new()),
    ];
    for (args, expected) in steps {
        let (code, out) = kafka_acls(&bootstrap, &args);
        assert_eq!(code, 0, "{args:?}: {out}\n{}", broker.log());
        assert_eq!(blocks(&out), blocks(&expected), "{args:?}:\n{out}");
    }
}

fn creation(name: &str, pattern_type: i8, principal: &str) -> AclCreation {
    AclCreation::default()
        .with_resource_type(2) // TOPIC
        .with_resource_name(StrBytes::from_string(name.into()))
        .with_resource_pattern_type(pattern_type)
        .with_principal(StrBytes::from_string(principal.into()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(3) // READ
        .with_permission_type(3) // ALLOW
}

/// DescribeAcls of every ACL: (resource name, pattern type, principals).
fn describe_all(port: u16) -> Vec<(String, i8, Vec<String>)> {
    let r = call(
        port,
        3,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1) // ANY
            .with_pattern_type_filter(1) // ANY
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1),
    );
    assert_eq!(r.error_code, 0, "{r:?}");
    r.resources
        .iter()
        .map(|res| {
            (
                res.resource_name.to_string(),
                res.pattern_type,
                res.acls.iter().map(|a| a.principal.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn an_acl_created_through_one_broker_is_listed_and_deleted_through_others() {
    let cluster = Cluster::start(3, &[AUTHORIZER, ANONYMOUS_SUPER]);
    let r = call(
        cluster.nodes[0].port,
        3,
        &CreateAclsRequest::default().with_creations(vec![
            creation("orders", 3, "User:alice"), // LITERAL
            creation("ord", 4, "User:bob"),      // PREFIXED
            creation("orders", 3, "User:alice"), // a copy: success, stored once
            creation("", 3, "User:alice"),
        ]),
    );
    let codes: Vec<i16> = r.results.iter().map(|c| c.error_code).collect();
    assert_eq!(
        codes,
        vec![0, 0, 0, ResponseError::InvalidRequest.code()],
        "{r:?}"
    );
    assert_eq!(
        r.results[3].error_message.as_deref(),
        Some("Invalid empty resource name")
    );
    let expected = vec![
        ("orders".to_string(), 3, vec!["User:alice".to_string()]),
        ("ord".to_string(), 4, vec!["User:bob".to_string()]),
    ];
    // Every broker follows the metadata log; give the others a moment to apply it.
    for node in &cluster.nodes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = describe_all(node.port);
            if got == expected {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {}: {got:?}\n{}",
                node.id,
                cluster.logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // Delete through the third broker with a MATCH filter on "orders": both ACLs match.
    let r = call(
        cluster.nodes[2].port,
        3,
        &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(StrBytes::from_static_str("orders")))
            .with_pattern_type_filter(2) // MATCH
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1)]),
    );
    assert_eq!(r.filter_results.len(), 1);
    assert_eq!(r.filter_results[0].error_code, 0, "{r:?}");
    assert_eq!(r.filter_results[0].matching_acls.len(), 2, "{r:?}");
    assert!(describe_all(cluster.nodes[2].port).is_empty());
}

#[test]
fn acl_apis_need_their_cluster_permission() {
    // No super users, no ACLs, default deny: the ACL APIs refuse ANONYMOUS.
    let broker = BrokerProcess::start(&[AUTHORIZER]);
    let d = call(
        broker.port,
        3,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1),
    );
    assert_eq!(
        d.error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    assert!(d.resources.is_empty());
    let c = call(
        broker.port,
        3,
        &CreateAclsRequest::default().with_creations(vec![creation("t", 3, "User:x")]),
    );
    assert_eq!(
        c.results[0].error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    let r = call(
        broker.port,
        3,
        &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1)]),
    );
    assert_eq!(
        r.filter_results[0].error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    drop(broker);

    // allow.everyone.if.no.acl.found: no ACL on the cluster, so everyone may.
    let broker = BrokerProcess::start(&[AUTHORIZER, ("allow.everyone.if.no.acl.found", "true")]);
    let c = call(
        broker.port,
        3,
        &CreateAclsRequest::default().with_creations(vec![creation("t", 3, "User:x")]),
    );
    assert_eq!(c.results[0].error_code, 0, "{c:?}");
}

#[test]
fn an_unknown_authorizer_stops_start_up() {
    let output = Command::new(env!("CARGO_BIN_EXE_strom-broker"))
        .args([
            "--override",
            "authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
        ])
        .output()
        .expect("run strom-broker");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("authorizer.class.name") && err.contains("AclAuthorizer"),
        "{err}"
    );
}
