//! Issue 12 §5: group requests that arrive while `__consumer_offsets` is being created and
//! its partitions loaded. Many groups start at once on a fresh broker (and a fresh
//! three-broker cluster): each finds its coordinator and goes straight to it. While the
//! partition is created or loaded the answers must be ones clients retry
//! (COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS), never NOT_COORDINATOR from
//! the broker that just named itself coordinator; and every group gets through.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{BrokerProcess, RawClient};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, JoinGroupRequest, OffsetFetchRequest, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const GROUPS: usize = 24;
const DEADLINE: Duration = Duration::from_secs(60);

fn retriable(code: i16) -> bool {
    code == ResponseError::CoordinatorNotAvailable.code()
        || code == ResponseError::CoordinatorLoadInProgress.code()
}

/// What one group saw: every error code answered on its way, in order.
fn one_group(bootstrap_port: u16, group: String) -> Result<Vec<i16>, String> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    let mut raw = RawClient::connect(bootstrap_port);
    let (node, port) = loop {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.clone()))
            .with_key_type(0);
        let ResponseKind::FindCoordinator(r) = raw.send(3, RequestKind::FindCoordinator(request))
        else {
            return Err("FindCoordinator answered with another response".into());
        };
        seen.push(r.error_code);
        if r.error_code == 0 {
            break (r.node_id.0, r.port as u16);
        }
        if !retriable(r.error_code) || Instant::now() > deadline {
            return Err(format!(
                "{group}: FindCoordinator failed with {}",
                r.error_code
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut coordinator = RawClient::connect(port);
    // OffsetFetch, then a JoinGroup, each retried only on what clients retry.
    loop {
        let fetch = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0])]));
        let ResponseKind::OffsetFetch(r) = coordinator.send(7, RequestKind::OffsetFetch(fetch))
        else {
            return Err("OffsetFetch answered with another response".into());
        };
        seen.push(r.error_code);
        if r.error_code == 0 {
            break;
        }
        if !retriable(r.error_code) || Instant::now() > deadline {
            return Err(format!(
                "{group}: OffsetFetch on node {node} failed with {}",
                r.error_code
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        let join = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_static_str(""))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0]))]);
        let ResponseKind::JoinGroup(r) = coordinator.send(3, RequestKind::JoinGroup(join)) else {
            return Err("JoinGroup answered with another response".into());
        };
        seen.push(r.error_code);
        if r.error_code == 0 {
            return Ok(seen);
        }
        if !retriable(r.error_code) || Instant::now() > deadline {
            return Err(format!(
                "{group}: JoinGroup on node {node} failed with {}",
                r.error_code
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn many_groups_at_once(ports: &[u16], logs: impl Fn() -> String) {
    let handles: Vec<_> = (0..GROUPS)
        .map(|i| {
            let port = ports[i % ports.len()];
            std::thread::spawn(move || one_group(port, format!("fresh-group-{i}")))
        })
        .collect();
    let mut failures = Vec::new();
    let mut retried = 0;
    for handle in handles {
        match handle.join() {
            Ok(Ok(seen)) => retried += seen.iter().filter(|c| **c != 0).count(),
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a group's thread panicked".into()),
        }
    }
    assert!(
        failures.is_empty(),
        "groups failed on a fresh cluster: {failures:?}\n{}",
        logs()
    );
    // Not asserted (timing decides), but shows whether the load window was hit.
    eprintln!("{GROUPS} groups done; {retried} retriable answers on the way");
}

#[test]
fn first_groups_on_a_fresh_broker_get_retriable_errors_only() {
    let broker = BrokerProcess::start(&[("group.initial.rebalance.delay.ms", "0")]);
    many_groups_at_once(&[broker.port], || broker.log());
}

#[test]
fn first_groups_on_a_fresh_cluster_get_retriable_errors_only() {
    let cluster = Cluster::start(3, &[("group.initial.rebalance.delay.ms", "0")]);
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
    many_groups_at_once(&ports, || cluster.logs());
}
