//! The admin APIs Kafka's own tools need (issue 12): DescribeQuorum, the feature flags,
//! the ACL APIs without an authorizer, the transaction admin APIs, AlterPartitionReassignments
//! v1 and per-record produce errors (KIP-467), as raw frames against real brokers, since
//! no Rust client exposes these fields. Each expected answer was checked by hand against
//! an Apache Kafka 4.4 broker (e2e/jvm/bin/apache-kafka-node); the facts taken from it are
//! noted where they are asserted.

mod common;

/// The broker binary's allocator, so a mutated frame's hostile array count cannot abort
/// the in-process broker (as in tests/malformed_frames.rs).
#[global_allocator]
static ALLOCATOR: strom_broker::alloc::LazyLargeAlloc = strom_broker::alloc::LazyLargeAlloc;

use std::time::Duration;

use common::cluster::{call, create_topic_ok, Cluster};
use common::kafka::{produce, Rec};
use common::{wait_for, BrokerProcess};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn describe_quorum_request(topic: &str, partition: i32) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s(topic)))
        .with_partitions(vec![
            PartitionData::default().with_partition_index(partition)
        ])])
}

fn quorum_partition(response: &DescribeQuorumResponse) -> &describe_quorum_response::PartitionData {
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(
        response.topics[0].topic_name.0.as_str(),
        "__cluster_metadata"
    );
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    p
}

#[test]
fn describe_quorum_on_a_single_node() {
    let broker = BrokerProcess::start(&[]);
    for version in 0..=2 {
        let r = call(
            broker.port,
            version,
            &describe_quorum_request("__cluster_metadata", 0),
        );
        let p = quorum_partition(&r);
        assert_eq!(p.leader_id.0, 0);
        assert!(p.leader_epoch >= 1, "the raft term: {}", p.leader_epoch);
        assert!(p.high_watermark > 0, "the registration is committed");
        assert_eq!(p.current_voters.len(), 1);
        let me = &p.current_voters[0];
        assert_eq!(me.replica_id.0, 0);
        assert!(me.log_end_offset >= p.high_watermark);
        if version >= 1 {
            assert!(me.last_fetch_timestamp > 0 && me.last_caught_up_timestamp > 0);
        }
        assert!(p.observers.is_empty());
        // v2's node list: the embedded quorum listens on no controller port, so the voter
        // is listed without endpoints.
        if version >= 2 {
            assert_eq!(r.nodes.len(), 1);
            assert!(r.nodes[0].listeners.is_empty());
        }
    }
    // Kafka answers any other partition with UNKNOWN_TOPIC_OR_PARTITION at partition level.
    let r = call(broker.port, 2, &describe_quorum_request("other", 3));
    assert_eq!(r.error_code, 0);
    assert_eq!(r.topics[0].topic_name.0.as_str(), "other");
    assert_eq!(r.topics[0].partitions[0].partition_index, 3);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

/// Three voters and one broker-only node: every node, the leader or not, gives the
/// leader's view: three voters with their progress, and the broker-only node as an
/// observer.
#[test]
fn describe_quorum_on_every_node_of_a_cluster() {
    let cluster = Cluster::start(4, &[]);
    let answer = |port: u16| call(port, 2, &describe_quorum_request("__cluster_metadata", 0));
    let leader = quorum_partition(&answer(cluster.node(0).port)).leader_id.0;
    assert!((0..3).contains(&leader), "a voter leads: {leader}");
    for node in &cluster.nodes {
        let r = wait_for(
            &format!(
                "node {}'s quorum answer to show every voter caught up and the observer",
                node.id
            ),
            Duration::from_secs(30),
            || {
                let r = answer(node.port);
                let p = quorum_partition(&r);
                let voters_fetched = p.current_voters.iter().all(|v| {
                    v.last_fetch_timestamp > 0
                        && v.last_caught_up_timestamp > 0
                        && v.log_end_offset >= p.high_watermark
                });
                let observed = p.observers.iter().any(|o| o.replica_id.0 == 3);
                (voters_fetched && observed).then_some(r)
            },
        );
        let p = quorum_partition(&r);
        assert_eq!(p.leader_id.0, leader, "node {} names the leader", node.id);
        let mut voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        voters.sort_unstable();
        assert_eq!(voters, vec![0, 1, 2]);
        let observer = p.observers.iter().find(|o| o.replica_id.0 == 3);
        assert!(observer.is_some_and(|o| o.log_end_offset > 0));
        // v2 lists each voter's controller endpoint, as Kafka's tool prints it.
        let mut endpoints: Vec<(i32, String)> = r
            .nodes
            .iter()
            .map(|n| (n.node_id.0, n.listeners[0].name.to_string()))
            .collect();
        endpoints.sort();
        assert_eq!(
            endpoints,
            (0..3)
                .map(|i| (i, "CONTROLLER".to_string()))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn features_are_advertised_and_cannot_be_changed() {
    let broker = BrokerProcess::start(&[]);
    let r = call(broker.port, 3, &ApiVersionsRequest::default());
    let supported: Vec<(String, i16, i16)> = r
        .supported_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version, f.max_version))
        .collect();
    // Every feature a Kafka 4.4 broker lists, at what Strom implements.
    for name in [
        "metadata.version",
        "kraft.version",
        "transaction.version",
        "group.version",
        "eligible.leader.replicas.version",
        "share.version",
        "streams.version",
    ] {
        assert!(
            supported.iter().any(|(n, _, _)| n == name),
            "{name} in {supported:?}"
        );
    }
    assert!(supported.contains(&("metadata.version".into(), 7, 7)));
    assert!(supported.contains(&("transaction.version".into(), 0, 0)));
    let finalized: Vec<(String, i16)> = r
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.max_version_level))
        .collect();
    assert_eq!(finalized, vec![("metadata.version".to_string(), 7)]);
    assert!(r.finalized_features_epoch > 0);

    let update = |version: i16, feature: &str, level: i16| {
        call(
            broker.port,
            version,
            &UpdateFeaturesRequest::default()
                .with_timeout_ms(5000)
                .with_feature_updates(vec![FeatureUpdateKey::default()
                    .with_feature(s(feature))
                    .with_max_version_level(level)
                    .with_upgrade_type(1)]),
        )
    };
    for version in 0..=2 {
        // Kafka 4.4: "Invalid update version 5 for feature transaction.version. Local
        // controller 1 only supports versions 0-2", INVALID_UPDATE_VERSION.
        let r = update(version, "transaction.version", 2);
        assert_eq!(r.error_code, ResponseError::InvalidUpdateVersion.code());
        let message = r.error_message.as_deref().unwrap_or_default().to_string();
        assert!(
            message.contains(
                "Invalid update version 2 for feature transaction.version. Local controller 0 only supports versions 0-0"
            ),
            "{message}"
        );
        assert_eq!(r.results.len(), if version < 2 { 1 } else { 0 });
        let r = update(version, "foo.version", 1);
        assert_eq!(r.error_code, ResponseError::InvalidUpdateVersion.code());
        // Setting what is already set is a no-op that succeeds, as on Kafka.
        let r = update(version, "metadata.version", 7);
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    }
}

#[test]
fn acl_apis_answer_security_disabled_as_kafka_without_an_authorizer() {
    let broker = BrokerProcess::start(&[]);
    for version in 1..=3 {
        // Kafka 4.4 without an authorizer: SECURITY_DISABLED, "No Authorizer is configured
        // on the broker" (describe, create) and "No Authorizer is configured." (delete).
        let r = call(
            broker.port,
            version,
            &DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        );
        assert_eq!(r.error_code, ResponseError::SecurityDisabled.code());
        assert_eq!(
            r.error_message.as_deref(),
            Some("No Authorizer is configured on the broker")
        );
        let r = call(
            broker.port,
            version,
            &CreateAclsRequest::default().with_creations(vec![AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_resource_pattern_type(3)
                .with_principal(s("User:a"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3)]),
        );
        assert_eq!(r.results.len(), 1);
        assert_eq!(
            r.results[0].error_code,
            ResponseError::SecurityDisabled.code()
        );
        let r = call(
            broker.port,
            version,
            &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1)]),
        );
        assert_eq!(r.filter_results.len(), 1);
        assert_eq!(
            r.filter_results[0].error_message.as_deref(),
            Some("No Authorizer is configured.")
        );
    }
    assert!(broker.log().contains("No Authorizer is configured"));
}

#[test]
fn transaction_admin_apis_tell_the_truth_about_idempotent_producers() {
    let broker = BrokerProcess::start(&[]);
    create_topic_ok(
        broker.port,
        CreatableTopic::default()
            .with_name(TopicName(s("ledger")))
            .with_num_partitions(1)
            .with_replication_factor(1),
        5000,
    );
    let records: Vec<Rec> = (0..5).map(|i| Rec::keyed("k", &format!("v{i}"))).collect();
    produce(
        &broker.bootstrap(),
        "ledger",
        &[("enable.idempotence", "true")],
        &records,
    );

    for version in 0..=2 {
        let r = call(
            broker.port,
            version,
            &ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]),
        );
        assert_eq!(r.error_code, 0);
        assert!(r.transaction_states.is_empty());
        assert_eq!(r.unknown_state_filters, vec![s("Bogus")]);
    }
    // kafka-transactions describe on Kafka 4.4 for an unknown id: TRANSACTIONAL_ID_NOT_FOUND
    // from the coordinator FindCoordinator named.
    let find = call(
        broker.port,
        3,
        &FindCoordinatorRequest::default()
            .with_key(s("some-txn"))
            .with_key_type(1),
    );
    assert_eq!(find.error_code, 0);
    assert_eq!(find.port, i32::from(broker.port));
    let r = call(
        broker.port,
        0,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s("some-txn"))]),
    );
    assert_eq!(
        r.transaction_states[0].error_code,
        ResponseError::TransactionalIdNotFound.code()
    );

    let describe = |topic: &str, partition: i32| {
        call(
            broker.port,
            0,
            &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![partition])]),
        )
    };
    let r = describe("ledger", 0);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.active_producers.len(), 1, "{p:?}");
    let producer = &p.active_producers[0];
    assert!(producer.producer_id.0 >= 0);
    assert_eq!(producer.producer_epoch, 0);
    assert_eq!(producer.last_sequence, 4, "five records, sequences 0-4");
    assert!(producer.last_timestamp > 0);
    assert_eq!(producer.coordinator_epoch, -1);
    assert_eq!(producer.current_txn_start_offset, -1);
    let r = describe("nowhere", 0);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn reassignment_v1_refuses_a_replication_factor_change_unless_allowed() {
    let cluster = Cluster::start(3, &[]);
    let port = cluster.node(0).port;
    create_topic_ok(
        port,
        CreatableTopic::default()
            .with_name(TopicName(s("moving")))
            .with_num_partitions(1)
            .with_replication_factor(2),
        10_000,
    );
    let reassign = |version: i16, allow: bool, replicas: &[i32]| {
        call(
            port,
            version,
            &AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(10_000)
                .with_allow_replication_factor_change(allow)
                .with_topics(vec![ReassignableTopic::default()
                    .with_name(TopicName(s("moving")))
                    .with_partitions(vec![ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(Some(
                            replicas.iter().map(|r| BrokerId(*r)).collect(),
                        ))])]),
        )
    };
    // Kafka 4.4's controller: INVALID_REPLICATION_FACTOR, "The replication factor is
    // changed from 2 to 3".
    let r = reassign(1, false, &[0, 1, 2]);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, ResponseError::InvalidReplicationFactor.code());
    assert_eq!(
        p.error_message.as_deref(),
        Some("The replication factor is changed from 2 to 3")
    );
    // The same factor passes with the flag off, and a change passes when allowed.
    let r = reassign(1, false, &[2, 1]);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    let r = reassign(1, true, &[0, 1, 2]);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
}

/// A v2 batch of records, keyless where `keys` says None.
fn batch(keys: &[Option<&str>]) -> bytes::Bytes {
    let at: Vec<_> = keys.iter().map(|k| (*k, 1_700_000_000_000)).collect();
    batch_at(&at)
}

/// A v2 batch of (key, timestamp) records from a plain (non-idempotent) producer.
fn batch_at(records: &[(Option<&str>, i64)]) -> bytes::Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, timestamp))| Record {
            // The encoder starts a new batch where offset - sequence changes; the batch's
            // base sequence stays -1 (no producer id).
            sequence: i as i32 - 1,
            ..common::record(
                i as i64,
                *timestamp,
                key.map(|k| bytes::Bytes::copy_from_slice(k.as_bytes())),
                Some(bytes::Bytes::from_static(b"value")),
            )
        })
        .collect();
    common::encode_batch(&records)
}

fn produce_one(port: u16, version: i16, topic: &str, records: bytes::Bytes) -> ProduceResponse {
    call(
        port,
        version,
        &ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]),
    )
}

/// Checks a broker's answer to a batch with keyless records at indexes 1 and 3 on a
/// compacted topic: the same on Strom and on Kafka 4.4 (`record_errors_on_reference_kafka`).
fn check_keyless_record_errors(port: u16) {
    create_topic_ok(
        port,
        CreatableTopic::default()
            .with_name(TopicName(s("compacted")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("cleanup.policy"))
                .with_value(Some(s("compact")))]),
        10_000,
    );
    let mixed = || batch(&[Some("a"), None, Some("b"), None]);
    let per_record =
        "Compacted topic cannot accept message without key in topic partition compacted-0";
    for version in 8..=11 {
        let r = produce_one(port, version, "compacted", mixed());
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
        let errors: Vec<(i32, Option<&str>)> = p
            .record_errors
            .iter()
            .map(|e| (e.batch_index, e.batch_index_error_message.as_deref()))
            .collect();
        assert_eq!(errors, vec![(1, Some(per_record)), (3, Some(per_record))]);
        assert_eq!(
            p.error_message.as_deref(),
            Some(format!(
                "One or more records have been rejected due to 2 record errors in total, and only showing the first three errors at most: [RecordError(batchIndex=1, message='{per_record}'), RecordError(batchIndex=3, message='{per_record}')]"
            ).as_str())
        );
    }
    // Before v8 the fields do not exist: the batch fails whole.
    let r = produce_one(port, 7, "compacted", mixed());
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRecord.code()
    );
    // Nothing of the refused batches was written; a keyed batch goes in at offset 0.
    let r = produce_one(port, 9, "compacted", batch(&[Some("a"), Some("b")]));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
}

#[test]
fn keyless_records_on_a_compacted_topic_are_named_per_record() {
    let broker = BrokerProcess::start(&[]);
    check_keyless_record_errors(broker.port);
}

/// A batch with records an hour past `message.timestamp.after.max.ms`: only those are named
/// (KIP-467), with INVALID_TIMESTAMP and Kafka 4.4's words; the batch is not written.
#[test]
fn records_beyond_the_timestamp_bounds_are_named_per_record() {
    let broker = BrokerProcess::start(&[]);
    create_topic_ok(
        broker.port,
        CreatableTopic::default()
            .with_name(TopicName(s("bounded")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("message.timestamp.after.max.ms"))
                .with_value(Some(s("60000")))]),
        10_000,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let records = batch_at(&[
        (Some("k0"), now),
        (Some("k1"), now + 3_600_000),
        (Some("k2"), now - 86_400_000),
        (Some("k3"), now + 7_200_000),
    ]);
    let r = produce_one(broker.port, 9, "bounded", records);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());
    assert_eq!(
        p.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    let named: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(named, vec![1, 3], "only the records over an hour ahead");
    let first = p.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .unwrap_or("");
    assert!(
        first.starts_with(&format!("Timestamp {} of message with offset 1 is out of range. The timestamp should be within [", now + 3_600_000)),
        "{first}"
    );
    // Nothing was written: a batch within the bounds goes in at offset 0.
    let r = produce_one(broker.port, 9, "bounded", batch(&[Some("a")]));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
}

/// Produce v3+ allows one batch per partition; two are refused whole with Kafka's words
/// (taken from kafka-clients 4.4's ProduceRequest) and nothing is written.
#[test]
fn two_batches_for_one_partition_are_refused() {
    let broker = BrokerProcess::start(&[]);
    create_topic_ok(
        broker.port,
        CreatableTopic::default()
            .with_name(TopicName(s("two-batches")))
            .with_num_partitions(1)
            .with_replication_factor(1),
        10_000,
    );
    let two = [batch(&[Some("a")]), batch(&[Some("b")])].concat();
    let r = produce_one(broker.port, 9, "two-batches", bytes::Bytes::from(two));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    assert_eq!(
        p.error_message.as_deref(),
        Some("Produce requests with version 9 are only allowed to contain exactly one record batch per partition")
    );
    let r = produce_one(broker.port, 9, "two-batches", batch(&[Some("c")]));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "the refused batches wrote nothing"
    );
}

/// The same check against a running Apache Kafka 4.4 broker, by hand:
/// `STROM_REFERENCE_KAFKA_PORT=<port> cargo test -p strom-broker --test admin_apis -- --ignored`
/// (start one with e2e/jvm/bin/apache-kafka-node).
#[test]
#[ignore = "needs a running Apache Kafka broker"]
fn record_errors_on_reference_kafka() {
    let port: u16 = std::env::var("STROM_REFERENCE_KAFKA_PORT")
        .expect("STROM_REFERENCE_KAFKA_PORT")
        .parse()
        .expect("a port number");
    check_keyless_record_errors(port);
}

/// The fuzzer's seeds for the APIs served since issue 12 (fuzz/corpus/request_frame), fed
/// through the in-process broker whole, cut short at every length, and with each byte
/// flipped: every frame gets an answer or a close with a reason, never a panic, and a
/// whole seed is always answered.
#[test]
fn admin_api_fuzz_seeds_and_their_mutations_are_answered() {
    use strom_broker::harness::FrameHarness;
    use strom_broker::protocol::Reply;
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = FrameHarness::new(dir.path(), &[]).expect("in-process broker");
    let seeds =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/request_frame");
    for name in [
        "describe_quorum_v2",
        "update_features_v1",
        "describe_acls_v3",
        "create_acls_v3",
        "delete_acls_v3",
        "list_transactions_v2",
        "describe_transactions_v0",
        "describe_producers_v0",
        "find_coordinator_v4_transaction",
        "alter_partition_reassignments_v1",
        "list_config_resources_v0",
        "list_config_resources_v1",
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
        // Past the 8-byte header peek, so the body's fields are what changes.
        for at in 8..seed.len() {
            let mut flipped = seed.clone();
            flipped[at] ^= 0xff;
            if let Reply::Close(reason) = harness.handle(&flipped) {
                assert!(!reason.is_empty());
            }
        }
    }
}

/// KIP-467 through the Java client (Kafka 4.4's kafka-clients from `scripts/jvm-setup.sh`,
/// under target/jvm/lib): only the keyless records fail as invalid; the keyed ones of the
/// same batch fail as "part of a batch which had one more more invalid records", exactly
/// as against Apache Kafka 4.4. Skipped without the jars unless STROM_REQUIRE_JVM=1.
#[test]
fn java_client_fails_only_the_keyless_records() {
    let Some(lib) = common::kafka_jars() else {
        return;
    };
    let broker = BrokerProcess::start(&[]);
    let stdout = common::run_java(&lib, "RecordErrors.java", &[&broker.bootstrap(), "kip467"]);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.len() > 2 && l.as_bytes()[1] == b' ')
        .collect();
    let batch = "KafkaException: Failed to append record because it was part of a batch which had one more more invalid records";
    let keyless = "InvalidRecordException: Compacted topic cannot accept message without key in topic partition kip467-0";
    assert_eq!(
        lines,
        vec![
            format!("0 {batch}"),
            format!("1 {keyless}"),
            format!("2 {batch}"),
            format!("3 {keyless}"),
        ],
        "{stdout}"
    );
}

/// A transactional producer through the Java client (broker/tests/jvm/TransactionalInit.java,
/// Kafka 4.4's kafka-clients): Strom has no transactions, and the producer must hear so at
/// once, fatally, rather than retry until max.block.ms (30 s here) and time out. Its
/// exception is the client's generic one for a non-retriable InitProducerId error, which
/// points at the broker log; the log names the transactional id and says transactions are
/// not supported. Skipped without the jars unless STROM_REQUIRE_JVM=1.
#[test]
fn java_transactional_producer_is_refused_at_once() {
    let Some(lib) = common::kafka_jars() else {
        return;
    };
    let broker = BrokerProcess::start(&[]);
    let stdout = common::run_java(
        &lib,
        "TransactionalInit.java",
        &[&broker.bootstrap(), "ledger-txn"],
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .to_string()
    };
    let outcome = field("outcome ");
    assert!(
        outcome.starts_with("KafkaException: Unexpected error in InitProducerIdResponse;")
            && outcome.contains("See the broker logs"),
        "{outcome}"
    );
    let elapsed: u64 = field("elapsed_ms ").parse().expect("a number");
    assert!(
        elapsed < 25_000,
        "initTransactions took {elapsed} ms: retried instead of failing"
    );
    let log = broker.log();
    assert!(
        log.lines()
            .any(|l| l.contains("transactional producer refused")
                && l.contains("transactions are not supported")
                && l.contains("ledger-txn")),
        "no broker log line says transactions are not supported"
    );
}
