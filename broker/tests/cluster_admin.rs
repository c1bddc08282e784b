//! The cluster admin APIs against a real four-broker cluster (three voters, one
//! broker-only node): DescribeCluster, ElectLeaders, AlterPartitionReassignments and
//! ListPartitionReassignments, sent to the broker-only node so every decision is
//! forwarded to the active controller.

mod common;

use std::time::Duration;

use common::cluster::{call, create_placed_topic, Cluster};
use common::kafka::{produce, Rec};
use common::wait_for;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// Slow enough that copying the produced data to a new replica takes several seconds.
const THROTTLE_BYTES_PER_SEC: &str = "20000";

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|b| BrokerId(*b)).collect()
}

fn plain(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

fn partition(port: u16, topic: &str) -> MetadataResponsePartition {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let response = call(port, 12, &request);
    let t = &response.topics[0];
    assert_eq!(t.error_code, 0, "metadata of {topic}");
    t.partitions
        .iter()
        .find(|p| p.partition_index == 0)
        .cloned()
        .expect("partition 0")
}

/// Waits for partition 0 of `topic` to have a leader and every replica in sync.
fn wait_fully_in_sync(port: u16, topic: &str) -> MetadataResponsePartition {
    wait_for(
        &format!("{topic}-0 fully in sync"),
        Duration::from_secs(30),
        || {
            let p = partition(port, topic);
            let mut isr = plain(&p.isr_nodes);
            let mut replicas = plain(&p.replica_nodes);
            isr.sort();
            replicas.sort();
            (p.leader_id.0 >= 0 && isr == replicas).then_some(p)
        },
    )
}

/// One partition's AlterPartitionReassignments outcome: (error code, message).
fn reassign(port: u16, topic: &str, target: Option<&[i32]>) -> (i16, String) {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(target.map(ids))])]);
    let response = call(port, 0, &request);
    assert_eq!(response.error_code, 0);
    let p = &response.responses[0].partitions[0];
    (
        p.error_code,
        p.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// A move under way: (topic, partition, replicas, adding, removing).
type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

fn list_reassignments(port: u16, only: Option<&[(&str, &[i32])]>) -> Vec<Ongoing> {
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(only.map(|topics| {
            topics
                .iter()
                .map(|(t, parts)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(name(t))
                        .with_partition_indexes(parts.to_vec())
                })
                .collect()
        }));
    let response = call(port, 0, &request);
    assert_eq!(response.error_code, 0);
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    plain(&p.replicas),
                    plain(&p.adding_replicas),
                    plain(&p.removing_replicas),
                )
            })
        })
        .collect()
}

fn elect(
    port: u16,
    version: i16,
    election_type: i8,
    targets: Option<&[(&str, i32)]>,
) -> ElectLeadersResponse {
    let request = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(30_000)
        .with_topic_partitions(targets.map(|targets| {
            targets
                .iter()
                .map(|(t, p)| {
                    TopicPartitions::default()
                        .with_topic(name(t))
                        .with_partitions(vec![*p])
                })
                .collect()
        }));
    call(port, version, &request)
}

/// Each reported partition as (topic, partition, error code).
fn election_codes(response: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
    response
        .replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
        })
        .collect()
}

#[test]
fn cluster_admin_apis_on_a_four_broker_cluster() {
    let cluster = Cluster::start(
        4,
        &[
            ("auto.leader.rebalance.enable", "false"),
            (
                "follower.replication.throttled.rate",
                THROTTLE_BYTES_PER_SEC,
            ),
        ],
    );
    // The broker-only node: every controller-bound request is forwarded from here.
    let port = cluster.node(3).port;

    advertises_the_cluster_apis(port);
    describe_cluster_lists_every_broker(&cluster, port);
    preferred_election_moves_leadership_to_the_first_replica(port);
    reassignment_completes_and_metadata_shows_the_new_replicas(port);
    cancelling_a_throttled_move_reverts_it(&cluster, port);
    invalid_reassignments_are_refused(port);
}

fn advertises_the_cluster_apis(port: u16) {
    let response = call(port, 3, &ApiVersionsRequest::default());
    for (key, min, max) in [
        (ApiKey::ElectLeaders, 0, 2),
        (ApiKey::AlterPartitionReassignments, 0, 1),
        (ApiKey::ListPartitionReassignments, 0, 0),
        (ApiKey::DescribeCluster, 0, 2),
    ] {
        let listed = response
            .api_keys
            .iter()
            .find(|a| a.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} advertised"));
        assert_eq!(
            (listed.min_version, listed.max_version),
            (min, max),
            "{key:?}"
        );
    }
}

fn describe_cluster_lists_every_broker(cluster: &Cluster, port: u16) {
    let expected: Vec<(i32, i32)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id, n.port as i32))
        .collect();
    // Registered brokers are unfenced by their first heartbeat; wait for all four.
    let response = wait_for(
        "DescribeCluster to list four brokers",
        Duration::from_secs(30),
        || {
            let r = call(port, 1, &DescribeClusterRequest::default());
            let listed: Vec<(i32, i32)> =
                r.brokers.iter().map(|b| (b.broker_id.0, b.port)).collect();
            (listed == expected).then_some(r)
        },
    );
    assert_eq!(response.error_code, 0);
    assert!(!response.cluster_id.is_empty());
    assert!(
        (0..3).contains(&response.controller_id.0),
        "the controller is a voter, got {}",
        response.controller_id.0
    );
    assert!(response
        .brokers
        .iter()
        .all(|b| b.host.as_str() == "127.0.0.1"));

    let controllers = call(
        port,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(2),
    );
    assert_eq!(controllers.error_code, 0);
    assert_eq!(
        controllers
            .brokers
            .iter()
            .map(|b| b.broker_id.0)
            .collect::<Vec<_>>(),
        vec![0, 1, 2],
        "the voters"
    );
    let bad = call(
        port,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(7),
    );
    assert_eq!(
        bad.error_code,
        ResponseError::UnsupportedEndpointType.code()
    );

    let v2 = call(
        port,
        2,
        &DescribeClusterRequest::default().with_include_fenced_brokers(true),
    );
    assert_eq!(v2.brokers.len(), 4);
    assert!(v2.brokers.iter().all(|b| !b.is_fenced));
    let v0 = call(port, 0, &DescribeClusterRequest::default());
    assert_eq!(v0.brokers.len(), 4);
}

fn preferred_election_moves_leadership_to_the_first_replica(port: u16) {
    create_placed_topic(port, "elect", &[1, 2, 3]);
    let p = wait_fully_in_sync(port, "elect");
    assert_eq!(p.leader_id.0, 1);
    let not_needed = elect(port, 2, 0, Some(&[("elect", 0)]));
    assert_eq!(not_needed.error_code, 0);
    assert_eq!(
        election_codes(&not_needed),
        vec![("elect".into(), 0, ResponseError::ElectionNotNeeded.code())]
    );

    // The same replicas in a new order: only the preferred leader changes.
    assert_eq!(reassign(port, "elect", Some(&[2, 1, 3])).0, 0);
    let p = partition(port, "elect");
    assert_eq!((plain(&p.replica_nodes), p.leader_id.0), (vec![2, 1, 3], 1));

    let elected = elect(port, 2, 0, Some(&[("elect", 0), ("no-such-topic", 0)]));
    let mut codes = election_codes(&elected);
    codes.sort();
    assert_eq!(
        codes,
        vec![
            ("elect".into(), 0, 0),
            (
                "no-such-topic".into(),
                0,
                ResponseError::UnknownTopicOrPartition.code()
            ),
        ]
    );
    // The handler waited for this broker's metadata to show the new leader.
    let p = partition(port, "elect");
    assert_eq!(p.leader_id.0, 2);
    assert!(p.leader_epoch > 0);

    // Every partition (a null list): only those that changed or failed are reported.
    let all = elect(port, 1, 0, None);
    assert_eq!(all.error_code, 0);
    assert!(
        election_codes(&all).iter().all(|(t, ..)| t != "elect"),
        "{all:?}"
    );
    // v0 has no election type and is a preferred election.
    let v0 = elect(port, 0, 0, Some(&[("elect", 0)]));
    assert_eq!(
        election_codes(&v0),
        vec![("elect".into(), 0, ResponseError::ElectionNotNeeded.code())]
    );
    // Unclean on a partition with a leader: nothing to do.
    let unclean = elect(port, 1, 1, Some(&[("elect", 0)]));
    assert_eq!(
        election_codes(&unclean),
        vec![("elect".into(), 0, ResponseError::ElectionNotNeeded.code())]
    );
    let bad = elect(port, 1, 5, Some(&[("elect", 0)]));
    assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
    assert_eq!(
        election_codes(&bad),
        vec![("elect".into(), 0, ResponseError::InvalidRequest.code())]
    );
}

fn reassignment_completes_and_metadata_shows_the_new_replicas(port: u16) {
    create_placed_topic(port, "move", &[0, 1, 2]);
    wait_fully_in_sync(port, "move");
    let (code, message) = reassign(port, "move", Some(&[3, 2, 1]));
    assert_eq!(code, 0, "{message}");
    wait_for("the move to finish", Duration::from_secs(30), || {
        list_reassignments(port, None)
            .iter()
            .all(|(t, ..)| t != "move")
            .then_some(())
    });
    let p = partition(port, "move");
    assert_eq!(plain(&p.replica_nodes), vec![3, 2, 1]);
    assert!(
        [3, 2, 1].contains(&p.leader_id.0),
        "leader {}",
        p.leader_id.0
    );
    assert!(plain(&p.isr_nodes).iter().all(|r| [3, 2, 1].contains(r)));
}

fn cancelling_a_throttled_move_reverts_it(cluster: &Cluster, port: u16) {
    create_placed_topic(port, "cancel", &[0, 1, 2]);
    wait_fully_in_sync(port, "cancel");
    let value = "x".repeat(1000);
    let records: Vec<Rec> = (0..300)
        .map(|i| Rec::keyed(&i.to_string(), &value))
        .collect();
    produce(
        &cluster.node(0).bootstrap(),
        "cancel",
        &[("acks", "all")],
        &records,
    );

    let (code, message) = reassign(port, "cancel", Some(&[3, 1, 2]));
    assert_eq!(code, 0, "{message}");
    // Broker 3 copies ~300 KB at 20 KB/s, so the move is normally still under way.
    let listed = list_reassignments(port, Some(&[("cancel", &[0, 1]), ("no-such-topic", &[0])]));
    if let Some(ongoing) = listed.first() {
        assert_eq!(
            ongoing,
            &("cancel".to_string(), 0, vec![3, 1, 2, 0], vec![3], vec![0])
        );
    }
    let (code, message) = reassign(port, "cancel", None);
    let p = partition(port, "cancel");
    let mut replicas = plain(&p.replica_nodes);
    if code == 0 {
        replicas.sort();
        assert_eq!(
            replicas,
            vec![0, 1, 2],
            "cancelled: back to the original replicas"
        );
        assert!(!plain(&p.isr_nodes).contains(&3));
    } else {
        // The copy won the race and the move completed before the cancel.
        assert_eq!(
            code,
            ResponseError::NoReassignmentInProgress.code(),
            "{message}"
        );
        assert_eq!(replicas, vec![3, 1, 2]);
    }
    assert!(list_reassignments(port, Some(&[("cancel", &[0])])).is_empty());
}

fn invalid_reassignments_are_refused(port: u16) {
    let (code, message) = reassign(port, "move", Some(&[3, 2, 99]));
    assert_eq!(
        code,
        ResponseError::InvalidReplicaAssignment.code(),
        "{message}"
    );
    assert!(message.contains("99"), "{message}");
    let (code, _) = reassign(port, "move", Some(&[3, 3]));
    assert_eq!(code, ResponseError::InvalidReplicaAssignment.code());
    let (code, message) = reassign(port, "move", None);
    assert_eq!(
        code,
        ResponseError::NoReassignmentInProgress.code(),
        "{message}"
    );
    let (code, _) = reassign(port, "no-such-topic", Some(&[0]));
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
    assert_eq!(plain(&partition(port, "move").replica_nodes), vec![3, 2, 1]);
}
