//! UnregisterBroker (KIP-500's `kafka-cluster.sh unregister`) against a real four-broker
//! cluster: three voters and one broker-only node, which is stopped and then removed from
//! the cluster metadata, as the operator does after a scale-down. Requests go to a voter
//! that is not necessarily the controller, so they are forwarded like any controller
//! request.

mod common;

use std::time::Duration;

use common::cluster::{call, create_placed_topic, Cluster};
use common::wait_for;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn registered(port: u16) -> Vec<i32> {
    let r = call(
        port,
        2,
        &DescribeClusterRequest::default().with_include_fenced_brokers(true),
    );
    assert_eq!(r.error_code, 0, "DescribeCluster: {:?}", r.error_message);
    r.brokers.iter().map(|b| b.broker_id.0).collect()
}

fn unregister(port: u16, id: i32) -> (i16, Option<String>) {
    let r = call(
        port,
        0,
        &UnregisterBrokerRequest::default().with_broker_id(BrokerId(id)),
    );
    (r.error_code, r.error_message.map(|m| m.to_string()))
}

fn leader_and_isr(port: u16, topic: &str) -> (i32, Vec<i32>) {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]));
    let response = call(port, 12, &request);
    let p = &response.topics[0].partitions[0];
    (p.leader_id.0, p.isr_nodes.iter().map(|b| b.0).collect())
}

#[test]
fn unregister_broker_removes_a_stopped_broker_from_the_cluster_metadata() {
    let mut cluster = Cluster::start(4, &[("auto.leader.rebalance.enable", "false")]);
    let port = cluster.node(1).port;

    let api = call(port, 3, &ApiVersionsRequest::default())
        .api_keys
        .into_iter()
        .find(|a| a.api_key == ApiKey::UnregisterBroker as i16)
        .expect("UnregisterBroker advertised");
    assert_eq!((api.min_version, api.max_version), (0, 0));

    wait_for("four registered brokers", Duration::from_secs(30), || {
        (registered(port) == vec![0, 1, 2, 3]).then_some(())
    });
    // Broker 3 leads a partition, so unregistering it must also move the leadership.
    create_placed_topic(port, "leaving", &[3, 0, 1]);
    wait_for("leaving-0 fully in sync", Duration::from_secs(30), || {
        let (leader, mut isr) = leader_and_isr(port, "leaving");
        isr.sort();
        (leader == 3 && isr == vec![0, 1, 3]).then_some(())
    });

    // An id that was never registered: Kafka's BROKER_ID_NOT_REGISTERED.
    let (code, _) = unregister(port, 9);
    assert_eq!(code, ResponseError::BrokerIdNotRegistered.code());

    cluster.nodes[3].kill();
    let (code, message) = unregister(port, 3);
    assert_eq!(code, 0, "unregister broker 3: {message:?}");
    // The answer waits until the broker that took the request no longer lists it.
    assert_eq!(registered(port), vec![0, 1, 2]);
    // The others follow as the committed change reaches them (as on Kafka, where only
    // the controller has it when the answer comes); which of them is the controller
    // depends on the election.
    for other in [0, 2] {
        wait_for(
            &format!("broker {other} to see the removal"),
            Duration::from_secs(10),
            || (registered(cluster.node(other).port) == vec![0, 1, 2]).then_some(()),
        );
    }
    // Its leadership and ISR membership went with it; its replica stays listed until
    // a reassignment moves it, as on Kafka.
    let (leader, mut isr) = leader_and_isr(port, "leaving");
    isr.sort();
    assert_eq!((leader, isr), (0, vec![0, 1]));

    // Asking again finds nothing to remove.
    let (code, _) = unregister(port, 3);
    assert_eq!(code, ResponseError::BrokerIdNotRegistered.code());
}
