//! Consumer groups end to end: real `rdkafka` consumers (and raw protocol requests where a
//! client cannot be made to misbehave on purpose) against real `strom-broker` processes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::kafka::{produce, Rec};
use common::{wait_for, BrokerProcess, RawClient};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DeleteTopicsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, RequestKind, ResponseKind, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

/// Counts completed rebalances (assignments handed to the consumer).
#[derive(Clone, Default)]
struct Rebalances(Arc<AtomicUsize>);

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type GroupConsumer = BaseConsumer<Rebalances>;

fn group_consumer(
    bootstrap: &str,
    group: &str,
    extra: &[(&str, &str)],
) -> (GroupConsumer, Rebalances) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let counter = Rebalances::default();
    let consumer = config
        .create_with_context(counter.clone())
        .expect("consumer");
    (consumer, counter)
}

fn assigned(c: &GroupConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Assignments cover exactly `0..partitions`, each partition once.
fn complete_and_disjoint(assignments: &[BTreeSet<i32>], partitions: i32) -> bool {
    let total: usize = assignments.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = assignments.iter().flatten().copied().collect();
    assignments.iter().all(|a| !a.is_empty())
        && total == partitions as usize
        && union == (0..partitions).collect()
}

/// Polls every consumer once, keeping (partition, offset) -> value of what arrived.
fn poll_round(consumers: &[&GroupConsumer], got: &mut BTreeMap<(i32, i64), String>) {
    for c in consumers {
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                got.insert((m.partition(), m.offset()), value);
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
}

fn keyed(prefix: &str, n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::keyed(&format!("key-{}", i % 60), &format!("{prefix}-{i}")))
        .collect()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn describe(
    raw: &mut RawClient,
    group: &str,
) -> kafka_protocol::messages::describe_groups_response::DescribedGroup {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    match raw.send(5, RequestKind::DescribeGroups(request)) {
        ResponseKind::DescribeGroups(r) => r.groups.into_iter().next().expect("one group"),
        other => panic!("unexpected {other:?}"),
    }
}

fn list_groups(raw: &mut RawClient, states: &[&str]) -> Vec<(String, String)> {
    let request =
        ListGroupsRequest::default().with_states_filter(states.iter().map(|x| s(x)).collect());
    match raw.send(4, RequestKind::ListGroups(request)) {
        ResponseKind::ListGroups(r) => {
            assert_eq!(r.error_code, 0);
            r.groups
                .into_iter()
                .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
                .collect()
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The consumer protocol's subscription bytes, version-prefixed as clients send them.
fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    sub.encode(&mut buf, 0).expect("encode subscription");
    buf.freeze()
}

fn assignment_partitions(mut bytes: Bytes) -> BTreeSet<i32> {
    if bytes.len() < 2 {
        return BTreeSet::new();
    }
    let _version = bytes::Buf::get_i16(&mut bytes);
    let a = ConsumerProtocolAssignment::decode(&mut bytes, 0).expect("assignment decodes");
    a.assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect()
}

/// The whole consumer-group life cycle with three real consumers: a complete and disjoint
/// assignment, partitions moving when a member leaves, commits, and a kill -9 of the
/// broker after which the group resumes exactly after its committed offsets.
#[test]
fn group_shares_partitions_and_resumes_from_commits_after_kill9() {
    let mut broker = BrokerProcess::start(&[
        ("num.partitions", "6"),
        ("group.initial.rebalance.delay.ms", "1000"),
    ]);
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, "orders", &[("acks", "all")], &keyed("one", 600));

    let consumers: Vec<(GroupConsumer, Rebalances)> = (0..3)
        .map(|_| group_consumer(&bootstrap, "billing", &[]))
        .collect();
    for (c, _) in &consumers {
        c.subscribe(&["orders"]).expect("subscribe");
    }
    let mut got = BTreeMap::new();
    wait_for(
        "three members sharing six partitions and 600 records",
        Duration::from_secs(60),
        || {
            let refs: Vec<&GroupConsumer> = consumers.iter().map(|(c, _)| c).collect();
            poll_round(&refs, &mut got);
            let a: Vec<BTreeSet<i32>> = refs.iter().map(|c| assigned(c)).collect();
            (complete_and_disjoint(&a, 6) && got.len() == 600).then_some(())
        },
    );
    assert!(got.values().all(|v| v.starts_with("one-")));
    for (c, _) in &consumers {
        c.commit_consumer_state(CommitMode::Sync).expect("commit");
    }

    let mut raw = RawClient::connect(broker.port);
    let described = describe(&mut raw, "billing");
    assert_eq!(described.error_code, 0);
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_type.as_str(), "consumer");
    assert_eq!(described.members.len(), 3);
    for m in &described.members {
        assert_eq!(m.client_host.as_str(), "/127.0.0.1");
        assert!(
            !m.member_assignment.is_empty(),
            "every member has an assignment"
        );
    }
    assert!(list_groups(&mut raw, &["Stable"]).contains(&("billing".into(), "Stable".into())));
    assert!(list_groups(&mut raw, &["empty"]).is_empty());

    // One member leaves: the other two take its partitions.
    let mut consumers = consumers.into_iter();
    drop(consumers.next());
    let rest: Vec<(GroupConsumer, Rebalances)> = consumers.collect();
    wait_for(
        "two members sharing six partitions",
        Duration::from_secs(30),
        || {
            let refs: Vec<&GroupConsumer> = rest.iter().map(|(c, _)| c).collect();
            poll_round(&refs, &mut got);
            let a: Vec<BTreeSet<i32>> = refs.iter().map(|c| assigned(c)).collect();
            complete_and_disjoint(&a, 6).then_some(())
        },
    );
    assert_eq!(
        got.len(),
        600,
        "nothing new arrived, nothing was delivered twice under a new key"
    );
    drop(rest);
    wait_for("the group to be empty", Duration::from_secs(30), || {
        (describe(&mut raw, "billing").group_state.as_str() == "Empty").then_some(())
    });

    let later = produce(&bootstrap, "orders", &[("acks", "all")], &keyed("two", 60));
    broker.kill9();
    broker.restart();
    let bootstrap = broker.bootstrap();

    // Committed offsets came back from __consumer_offsets: one past what was consumed.
    let mut consumed_end: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in got.keys() {
        let e = consumed_end.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    let (resumed, _) = group_consumer(&bootstrap, "billing", &[("auto.offset.reset", "error")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition("orders", p);
    }
    let committed = resumed
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(consumed_end[&e.partition()]),
            "committed offset of partition {}",
            e.partition()
        );
    }

    // With auto.offset.reset=error a lost commit would fail; the group resumes at the
    // commits and sees exactly the 60 records produced after them.
    resumed.subscribe(&["orders"]).expect("subscribe");
    let mut after = BTreeMap::new();
    wait_for(
        "the 60 records produced after the commit",
        Duration::from_secs(60),
        || {
            poll_round(&[&resumed], &mut after);
            (after.len() >= 60).then_some(())
        },
    );
    let expected: BTreeSet<(i32, i64)> = later.into_iter().collect();
    assert_eq!(after.keys().copied().collect::<BTreeSet<_>>(), expected);
    assert!(after.values().all(|v| v.starts_with("two-")));

    let metrics = broker.metrics();
    assert!(
        metrics.contains("kafka_consumergroup_current_offset{consumergroup=\"billing\",partition=\"0\",topic=\"orders\"}"),
        "committed offsets are exported: {metrics}"
    );
    assert!(metrics.contains("kafka_consumergroup_lag{consumergroup=\"billing\""));
}

/// A static member (KIP-345) that restarts within its session timeout gets its
/// partitions back without the other member rebalancing; a second live member with the
/// same instance id fences the first.
#[test]
fn static_member_returns_without_rebalance_and_duplicates_are_fenced() {
    let broker = BrokerProcess::start(&[
        ("num.partitions", "6"),
        ("group.initial.rebalance.delay.ms", "500"),
    ]);
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, "events", &[], &keyed("e", 60));
    let statik = |instance: &str| {
        let (c, r) = group_consumer(
            &bootstrap,
            "static",
            &[
                ("group.instance.id", instance),
                ("session.timeout.ms", "10000"),
            ],
        );
        c.subscribe(&["events"]).expect("subscribe");
        (c, r)
    };
    let (a, _) = statik("a");
    let (b, b_rebalances) = statik("b");
    let mut got = BTreeMap::new();
    wait_for(
        "a and b sharing six partitions",
        Duration::from_secs(60),
        || {
            poll_round(&[&a, &b], &mut got);
            complete_and_disjoint(&[assigned(&a), assigned(&b)], 6).then_some(())
        },
    );
    let a_partitions = assigned(&a);
    let b_partitions = assigned(&b);
    let b_before = b_rebalances.0.load(Ordering::SeqCst);

    // A static member's close does not leave the group; its replacement takes its place.
    drop(a);
    let (a2, _) = statik("a");
    wait_for(
        "the restarted static member to get its partitions back",
        Duration::from_secs(30),
        || {
            poll_round(&[&a2, &b], &mut got);
            (assigned(&a2) == a_partitions).then_some(())
        },
    );
    for _ in 0..10 {
        poll_round(&[&a2, &b], &mut got);
    }
    assert_eq!(assigned(&b), b_partitions, "b kept its partitions");
    assert_eq!(
        b_rebalances.0.load(Ordering::SeqCst),
        b_before,
        "b did not rebalance"
    );
    let mut raw = RawClient::connect(broker.port);
    let described = describe(&mut raw, "static");
    let instances: BTreeSet<String> = described
        .members
        .iter()
        .filter_map(|m| m.group_instance_id.as_ref().map(|i| i.to_string()))
        .collect();
    assert_eq!(instances, ["a".to_string(), "b".to_string()].into());

    // A second live "b": the older one is fenced.
    let (b2, _) = statik("b");
    let fenced = wait_for("b to be fenced", Duration::from_secs(30), || {
        let _ = b2.poll(Duration::from_millis(20));
        let _ = a2.poll(Duration::from_millis(20));
        match b.poll(Duration::from_millis(50)) {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        }
    });
    assert!(
        fenced.to_lowercase().contains("fenced"),
        "fenced error: {fenced}"
    );
}

/// A member that stops heart-beating is removed after its session timeout and its
/// partitions go to the others; the error codes members see on the way are Kafka's.
#[test]
fn silent_member_expires_and_errors_are_kafkas() {
    let broker = BrokerProcess::start(&[
        ("num.partitions", "6"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]);
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, "jobs", &[], &keyed("j", 12));

    // The rdkafka member runs in its own thread so it keeps serving rebalances while the
    // raw member's requests block.
    let assignment = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (assignment, stop, bootstrap) = (assignment.clone(), stop.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let (c, _) = group_consumer(&bootstrap, "workers", &[]);
            c.subscribe(&["jobs"]).expect("subscribe");
            while !stop.load(Ordering::SeqCst) {
                let _ = c.poll(Duration::from_millis(50));
                *assignment.lock().expect("lock") = assigned(&c);
            }
        })
    };
    let owns = |n: usize| assignment.lock().expect("lock").len() == n;
    wait_for(
        "the client member to own all six partitions",
        Duration::from_secs(30),
        || owns(6).then_some(()),
    );

    let mut raw = RawClient::connect(broker.port);
    fn join(
        raw: &mut RawClient,
        member: &str,
        session_ms: i32,
    ) -> kafka_protocol::messages::JoinGroupResponse {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(s("workers")))
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(&["jobs"]))]);
        match raw.send(5, RequestKind::JoinGroup(request)) {
            ResponseKind::JoinGroup(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }
    let heartbeat = |raw: &mut RawClient, member: &str, generation: i32| {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(s("workers")))
            .with_member_id(s(member))
            .with_generation_id(generation);
        match raw.send(3, RequestKind::Heartbeat(request)) {
            ResponseKind::Heartbeat(r) => r.error_code,
            other => panic!("unexpected {other:?}"),
        }
    };

    let bad = join(&mut raw, "", 10);
    assert_eq!(bad.error_code, ResponseError::InvalidSessionTimeout.code());
    let first = join(&mut raw, "", 6000);
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member = first.member_id.to_string();
    assert!(
        member.starts_with("strom-test-"),
        "member id names the client: {member}"
    );
    // This join completes once the client member has rejoined for the new generation.
    let joined = join(&mut raw, &member, 6000);
    assert_eq!(joined.error_code, 0);
    assert_ne!(
        joined.leader.as_str(),
        member,
        "the longer-standing member leads"
    );
    let generation = joined.generation_id;

    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("workers")))
        .with_generation_id(generation)
        .with_member_id(s(&member));
    let mine = match raw.send(3, RequestKind::SyncGroup(sync)) {
        ResponseKind::SyncGroup(r) => {
            assert_eq!(r.error_code, 0);
            assignment_partitions(r.assignment)
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        mine.len(),
        3,
        "range gives each of two members three partitions"
    );
    wait_for(
        "the client member to own the other three",
        Duration::from_secs(30),
        || {
            (*assignment.lock().expect("lock") == (0..6).filter(|p| !mine.contains(p)).collect())
                .then_some(())
        },
    );

    assert_eq!(heartbeat(&mut raw, &member, generation), 0);
    assert_eq!(
        heartbeat(&mut raw, &member, generation - 1),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut raw, "nobody", generation),
        ResponseError::UnknownMemberId.code()
    );
    let stale_sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("workers")))
        .with_generation_id(generation + 7)
        .with_member_id(s(&member));
    match raw.send(3, RequestKind::SyncGroup(stale_sync)) {
        ResponseKind::SyncGroup(r) => {
            assert_eq!(r.error_code, ResponseError::IllegalGeneration.code())
        }
        other => panic!("unexpected {other:?}"),
    }
    // Kafka's classic coordinator does not check that a member owns what it commits.
    let not_mine = (0..6)
        .find(|p| !mine.contains(p))
        .expect("a partition of the other member");
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("workers")))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(&member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("jobs")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(not_mine)
                .with_committed_offset(1)])]);
    match raw.send(7, RequestKind::OffsetCommit(commit.clone())) {
        ResponseKind::OffsetCommit(r) => assert_eq!(r.topics[0].partitions[0].error_code, 0),
        other => panic!("unexpected {other:?}"),
    }
    let stale_commit = commit.with_generation_id_or_member_epoch(generation - 1);
    match raw.send(7, RequestKind::OffsetCommit(stale_commit)) {
        ResponseKind::OffsetCommit(r) => assert_eq!(
            r.topics[0].partitions[0].error_code,
            ResponseError::IllegalGeneration.code()
        ),
        other => panic!("unexpected {other:?}"),
    }

    // Another member joins: the first learns of the rebalance from its heartbeat, rejoins
    // and syncs into the new generation along with it.
    let newcomer = {
        let port = broker.port;
        std::thread::spawn(move || {
            let mut raw = RawClient::connect(port);
            let first = join(&mut raw, "", 6000);
            let joined = join(&mut raw, &first.member_id, 6000);
            assert_eq!(joined.error_code, 0);
            joined.generation_id
        })
    };
    wait_for(
        "a heartbeat to report the rebalance",
        Duration::from_secs(30),
        || {
            (heartbeat(&mut raw, &member, generation) == ResponseError::RebalanceInProgress.code())
                .then_some(())
        },
    );
    let rejoined = join(&mut raw, &member, 6000);
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(
        newcomer.join().expect("newcomer thread"),
        rejoined.generation_id
    );
    assert!(rejoined.generation_id > generation);
    let generation = rejoined.generation_id;

    // The raw members go silent: after their session timeout the client owns all six again.
    wait_for(
        "the silent member's partitions to move",
        Duration::from_secs(30),
        || owns(6).then_some(()),
    );
    assert_eq!(
        heartbeat(&mut raw, &member, generation),
        ResponseError::UnknownMemberId.code()
    );
    assert!(broker.log().contains("missed its session timeout"));

    stop.store(true, Ordering::SeqCst);
    worker.join().expect("worker thread");
}

/// Committed offsets and group administration over the wire: standalone commits with
/// metadata, single and batched OffsetFetch, OffsetDelete, DescribeGroups, DeleteGroups,
/// FindCoordinator's batched form, auto.offset.reset, and the internal topic's protection.
#[test]
fn offsets_and_group_admin() {
    let broker = BrokerProcess::start(&[("group.initial.rebalance.delay.ms", "0")]);
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, "ledger", &[], &keyed("l", 10));
    let mut raw = RawClient::connect(broker.port);

    let find = FindCoordinatorRequest::default().with_coordinator_keys(vec![s("tool"), s("other")]);
    match raw.send(4, RequestKind::FindCoordinator(find)) {
        ResponseKind::FindCoordinator(r) => {
            assert_eq!(r.coordinators.len(), 2);
            for c in r.coordinators {
                assert_eq!((c.error_code, c.port), (0, broker.port as i32));
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    let txn = FindCoordinatorRequest::default()
        .with_key(s("tx"))
        .with_key_type(1);
    // No transaction state exists anywhere, so the broker asked names itself and then
    // answers for the id truthfully (see tests/admin_apis.rs).
    match raw.send(3, RequestKind::FindCoordinator(txn)) {
        ResponseKind::FindCoordinator(r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.node_id.0, 0);
        }
        other => panic!("unexpected {other:?}"),
    }

    let commit = |raw: &mut RawClient, group: &str, partition: i32, offset: i64, metadata: &str| {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("ledger")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_committed_metadata(Some(s(metadata)))])]);
        match raw.send(8, RequestKind::OffsetCommit(request)) {
            ResponseKind::OffsetCommit(r) => r.topics[0].partitions[0].error_code,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(commit(&mut raw, "tool", 0, 4, "ckpt-1"), 0);
    assert_eq!(
        commit(&mut raw, "tool", 5, 1, ""),
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        commit(&mut raw, "tool", 0, 9, &"x".repeat(4097)),
        ResponseError::OffsetMetadataTooLarge.code()
    );
    assert_eq!(
        commit(&mut raw, "", 0, 1, ""),
        ResponseError::InvalidGroupId.code()
    );

    // Batched OffsetFetch (v8): one known group, one unknown.
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("tool")))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("nobody")))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(s("ledger")))
                .with_partition_indexes(vec![0])])),
    ]);
    match raw.send(8, RequestKind::OffsetFetch(fetch)) {
        ResponseKind::OffsetFetch(r) => {
            let tool = &r.groups[0].topics[0].partitions[0];
            assert_eq!(
                (
                    tool.committed_offset,
                    tool.metadata.as_ref().map(|m| m.to_string())
                ),
                (4, Some("ckpt-1".to_string()))
            );
            let nobody = &r.groups[1].topics[0].partitions[0];
            assert_eq!((nobody.committed_offset, nobody.error_code), (-1, 0));
        }
        other => panic!("unexpected {other:?}"),
    }

    // A consumer in the group resumes at the commit; fresh groups follow auto.offset.reset.
    let first_offset = |group: &str, reset: &str| -> Result<i64, String> {
        let (c, _) = group_consumer(&bootstrap, group, &[("auto.offset.reset", reset)]);
        c.subscribe(&["ledger"]).expect("subscribe");
        wait_for("a record or an error", Duration::from_secs(30), || match c
            .poll(Duration::from_millis(100))
        {
            Some(Ok(m)) => Some(Ok(m.offset())),
            Some(Err(e)) => Some(Err(e.to_string())),
            None => None,
        })
    };
    assert_eq!(
        first_offset("tool", "latest"),
        Ok(4),
        "the commit wins over the reset policy"
    );
    assert_eq!(first_offset("fresh-earliest", "earliest"), Ok(0));
    let no_offset =
        first_offset("fresh-error", "error").expect_err("no committed offset is an error");
    assert!(no_offset.to_lowercase().contains("offset"), "{no_offset}");
    {
        // The consumer resolves "latest" with a ListOffsets request; the late record is
        // produced once the broker has answered one more of those.
        let list_offsets_served = || {
            broker
                .metrics()
                .lines()
                .find(|l| {
                    l.starts_with(
                        "kafka_network_requestmetrics_requests_total{request=\"ListOffsets\"}",
                    )
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let before = list_offsets_served();
        let (c, _) = group_consumer(
            &bootstrap,
            "fresh-latest",
            &[("auto.offset.reset", "latest")],
        );
        c.subscribe(&["ledger"]).expect("subscribe");
        wait_for(
            "the latest offset to be resolved",
            Duration::from_secs(30),
            || {
                let _ = c.poll(Duration::from_millis(50));
                (!assigned(&c).is_empty() && list_offsets_served() > before).then_some(())
            },
        );
        let added = produce(&bootstrap, "ledger", &[], &[Rec::keyed("k", "late")]);
        let offset = wait_for("the late record", Duration::from_secs(30), || {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => Some(m.offset()),
                Some(Err(e)) => panic!("consumer error: {e}"),
                None => None,
            }
        });
        assert_eq!(offset, added[0].1, "latest skips what was there before");
    }

    // Groups administration.
    let (busy, _) = group_consumer(&bootstrap, "busy", &[]);
    busy.subscribe(&["ledger"]).expect("subscribe");
    wait_for("busy to be stable", Duration::from_secs(30), || {
        let _ = busy.poll(Duration::from_millis(50));
        (!assigned(&busy).is_empty()).then_some(())
    });
    busy.commit_consumer_state(CommitMode::Sync).ok();
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![
        GroupId(s("tool")),
        GroupId(s("busy")),
        GroupId(s("nobody")),
    ]);
    match raw.send(2, RequestKind::DeleteGroups(delete)) {
        ResponseKind::DeleteGroups(r) => {
            let codes: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
            assert_eq!(
                codes,
                vec![
                    0,
                    ResponseError::NonEmptyGroup.code(),
                    ResponseError::GroupIdNotFound.code()
                ]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let offset_delete = |raw: &mut RawClient, group: &str| {
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("ledger")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ])]);
        match raw.send(0, RequestKind::OffsetDelete(request)) {
            ResponseKind::OffsetDelete(r) => (
                r.error_code,
                r.topics
                    .first()
                    .map(|t| t.partitions[0].error_code)
                    .unwrap_or(-99),
            ),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        offset_delete(&mut raw, "busy"),
        (0, ResponseError::GroupSubscribedToTopic.code())
    );
    assert_eq!(commit(&mut raw, "tool2", 0, 3, ""), 0);
    assert_eq!(offset_delete(&mut raw, "tool2"), (0, 0));
    assert_eq!(
        offset_delete(&mut raw, "nobody").0,
        ResponseError::GroupIdNotFound.code()
    );
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("tool2")))
        .with_topics(None);
    match raw.send(7, RequestKind::OffsetFetch(fetch)) {
        ResponseKind::OffsetFetch(r) => {
            assert!(r.topics.is_empty(), "deleted offsets are gone: {r:?}")
        }
        other => panic!("unexpected {other:?}"),
    }
    let unknown = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("nobody"))]);
    match raw.send(6, RequestKind::DescribeGroups(unknown)) {
        ResponseKind::DescribeGroups(r) => assert_eq!(
            r.groups[0].error_code,
            ResponseError::GroupIdNotFound.code()
        ),
        other => panic!("unexpected {other:?}"),
    }
    let listed: BTreeSet<String> = list_groups(&mut raw, &[])
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    assert!(
        listed.contains("busy") && !listed.contains("tool"),
        "{listed:?}"
    );

    let delete_internal =
        DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("__consumer_offsets"))]);
    match raw.send(4, RequestKind::DeleteTopics(delete_internal)) {
        ResponseKind::DeleteTopics(r) => assert_eq!(
            r.responses[0].error_code,
            ResponseError::InvalidTopicException.code()
        ),
        other => panic!("unexpected {other:?}"),
    }
}

/// The cooperative-sticky assignor (KIP-429): when a member joins, the others give up
/// only the partitions that move, in incremental rebalances the broker runs like any other.
#[test]
fn cooperative_sticky_rebalances_incrementally() {
    let broker = BrokerProcess::start(&[
        ("num.partitions", "6"),
        ("group.initial.rebalance.delay.ms", "500"),
    ]);
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, "stream", &[], &keyed("c", 60));
    let member = || {
        let (c, r) = group_consumer(
            &bootstrap,
            "coop",
            &[("partition.assignment.strategy", "cooperative-sticky")],
        );
        c.subscribe(&["stream"]).expect("subscribe");
        (c, r)
    };
    let first: Vec<(GroupConsumer, Rebalances)> = (0..2).map(|_| member()).collect();
    let mut got = BTreeMap::new();
    wait_for(
        "two members sharing six partitions",
        Duration::from_secs(60),
        || {
            let refs: Vec<&GroupConsumer> = first.iter().map(|(c, _)| c).collect();
            poll_round(&refs, &mut got);
            complete_and_disjoint(&[assigned(refs[0]), assigned(refs[1])], 6).then_some(())
        },
    );
    let before: Vec<BTreeSet<i32>> = first.iter().map(|(c, _)| assigned(c)).collect();

    let (third, _) = member();
    // Members must keep every partition they still own at each step: cooperative
    // rebalancing never revokes everything.
    wait_for(
        "three members sharing six partitions",
        Duration::from_secs(60),
        || {
            let mut refs: Vec<&GroupConsumer> = first.iter().map(|(c, _)| c).collect();
            refs.push(&third);
            poll_round(&refs, &mut got);
            for (i, (c, _)) in first.iter().enumerate() {
                let now = assigned(c);
                assert!(
                    now.is_subset(&before[i]),
                    "member {i} gained {now:?} from {:?}",
                    before[i]
                );
                assert!(!now.is_empty(), "member {i} lost all its partitions");
            }
            let a: Vec<BTreeSet<i32>> = refs.iter().map(|c| assigned(c)).collect();
            complete_and_disjoint(&a, 6).then_some(())
        },
    );
    let mut raw = RawClient::connect(broker.port);
    let described = describe(&mut raw, "coop");
    assert_eq!(described.protocol_data.as_str(), "cooperative-sticky");
    assert_eq!(described.members.len(), 3);
}

/// `__consumer_offsets` is compacted like any compacted topic, and the coordinator's
/// replay at start-up reads the cleaned log (gaps, emptied batches) back correctly.
#[test]
fn committed_offsets_survive_compaction_of_the_offsets_topic() {
    let mut broker = BrokerProcess::start(&[
        ("offsets.topic.num.partitions", "1"),
        ("offsets.topic.segment.bytes", "1024"),
        ("log.cleaner.backoff.ms", "100"),
    ]);
    produce(&broker.bootstrap(), "audit", &[], &keyed("a", 5));
    let mut raw = RawClient::connect(broker.port);
    let commit = |raw: &mut RawClient, group: &str, offset: i64| {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("audit")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])]);
        match raw.send(8, RequestKind::OffsetCommit(request)) {
            ResponseKind::OffsetCommit(r) => assert_eq!(r.topics[0].partitions[0].error_code, 0),
            other => panic!("unexpected {other:?}"),
        }
    };
    for offset in 1..=300 {
        commit(&mut raw, "compacted", offset);
        commit(&mut raw, "other", 1000 + offset);
    }
    commit(&mut raw, "gone", 7);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("gone"))]);
    raw.send(2, RequestKind::DeleteGroups(delete));
    wait_for(
        "the cleaner to compact __consumer_offsets",
        Duration::from_secs(60),
        || {
            let metrics = broker.metrics();
            let size = metrics
                .lines()
                .find(|l| {
                    l.starts_with(
                        "kafka_log_log_size{partition=\"0\",topic=\"__consumer_offsets\"}",
                    )
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())?;
            // 601 commits take well over 40 KiB uncompacted.
            (size < 8 * 1024).then_some(())
        },
    );

    broker.kill9();
    broker.restart();
    let mut raw = RawClient::connect(broker.port);
    let fetch = |raw: &mut RawClient, group: &str| {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None);
        match raw.send(7, RequestKind::OffsetFetch(request)) {
            ResponseKind::OffsetFetch(r) => r
                .topics
                .first()
                .map(|t| t.partitions[0].committed_offset)
                .unwrap_or(-1),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(fetch(&mut raw, "compacted"), 300);
    assert_eq!(fetch(&mut raw, "other"), 1300);
    assert_eq!(fetch(&mut raw, "gone"), -1, "a deleted group stays deleted");
    assert!(!broker.log().contains("offsets topic record skipped"));
}
