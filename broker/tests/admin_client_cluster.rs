//! strom-client's cluster operations (`admin_cluster`) against a real four-broker cluster
//! of `strom-broker` processes (three voters, one broker-only node): DescribeCluster, the
//! partition view of Metadata, DescribeConfigs and IncrementalAlterConfigs on a broker,
//! List- and AlterPartitionReassignments, ElectLeaders, DescribeQuorum,
//! UnregisterBroker, FindCoordinator and DescribeLogDirs, each with the refusal Kafka
//! gives where it has one. Cluster-wide
//! calls go to the broker-only node, so the brokers forward them to the controller.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::Cluster;
use common::kafka::{produce, Rec};
use common::wait_for;
use kafka_protocol::ResponseError;
use strom_client::admin::{Admin, AdminError, ConfigOp, PlacedTopic};
use strom_client::admin_cluster::{
    ConfigResource, CoordinatorType, Election, ElectionType, PartitionInfo, ReassignmentTarget,
};

const TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);
/// Slow enough that copying the produced data to a new replica takes several seconds.
const THROTTLE_BYTES_PER_SEC: &str = "20000";
/// A broker config that changes in place, and a value no default has.
const DYNAMIC_KEY: &str = "log.cleaner.backoff.ms";
const DYNAMIC_VALUE: &str = "12345";
/// Kafka's `ConfigSource.DYNAMIC_BROKER_CONFIG`.
const DYNAMIC_BROKER_CONFIG: i8 = 2;

struct Client {
    rt: tokio::runtime::Runtime,
}

impl Client {
    fn new() -> Client {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Client { rt }
    }

    /// Runs `call` on a fresh admin connection to `port`.
    fn on<T>(
        &self,
        port: u16,
        call: impl AsyncFnOnce(&mut Admin) -> Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        self.rt.block_on(async {
            let mut admin = Admin::connect(
                &[format!("127.0.0.1:{port}")],
                "admin-cluster-test",
                TIMEOUT,
                TIMEOUT,
            )
            .await?;
            call(&mut admin).await
        })
    }
}

fn tp(topic: &str, partition: i32) -> (String, i32) {
    (topic.to_string(), partition)
}

fn partition(client: &Client, port: u16, topic: &str, index: i32) -> PartitionInfo {
    let view = client
        .on(port, async |a| {
            a.describe_partitions(Some(&[topic.to_string()])).await
        })
        .expect("Metadata");
    let found = view.partitions().find(|p| p.partition == index).cloned();
    found.unwrap_or_else(|| panic!("{topic}-{index} in {view:?}"))
}

/// Waits until `topic-index` is led by its first replica with every replica in sync.
fn wait_in_sync(client: &Client, port: u16, topic: &str, index: i32) -> PartitionInfo {
    wait_for(&format!("{topic}-{index} fully in sync"), SETTLE, || {
        let p = partition(client, port, topic, index);
        let mut isr = p.isr.clone();
        let mut replicas = p.replicas.clone();
        isr.sort_unstable();
        replicas.sort_unstable();
        (isr == replicas && p.leader.is_some()).then_some(p)
    })
}

fn create_placed(client: &Client, port: u16, name: &str, replicas: &[&[i32]]) {
    let topic = PlacedTopic {
        name: name.to_string(),
        replicas: replicas.iter().map(|r| r.to_vec()).collect(),
        configs: BTreeMap::new(),
    };
    let created = client
        .on(port, async |a| a.create_placed_topics(&[topic]).await)
        .expect("CreateTopics");
    assert!(created[name].is_ok(), "{created:?}");
}

fn refusal_code(error: &AdminError) -> Option<ResponseError> {
    error.refused().and_then(|r| r.error())
}

#[test]
fn cluster_operations_through_the_admin_client() {
    let mut cluster = Cluster::start(
        4,
        &[
            ("auto.leader.rebalance.enable", "false"),
            (
                "follower.replication.throttled.rate",
                THROTTLE_BYTES_PER_SEC,
            ),
        ],
    );
    let client = Client::new();
    // The broker-only node: every controller-bound request is forwarded from here.
    let port = cluster.node(3).port;

    describe_cluster_lists_every_broker(&client, &cluster, port);
    describe_quorum_shows_voters_and_observers(&client, port);
    partitions_show_placement_and_unknown_topics_are_refused(&client, port);
    log_dirs_list_the_replicas_a_broker_holds(&client, &cluster);
    coordinators_are_found(&client, &cluster, port);
    reorder_then_elect_the_preferred_leader(&client, port);
    a_throttled_move_is_listed_and_cancelled(&client, &cluster, port);
    invalid_reassignments_are_refused_per_partition(&client, port);
    broker_configs_are_set_and_deleted_on_that_broker(&client, &cluster);
    unregister_removes_a_stopped_broker(&client, &mut cluster);
}

fn describe_cluster_lists_every_broker(client: &Client, cluster: &Cluster, port: u16) {
    let described = wait_for("four unfenced brokers", SETTLE, || {
        let d = client
            .on(port, async |a| a.describe_cluster(true).await)
            .expect("DescribeCluster");
        (d.brokers.len() == 4 && d.brokers.iter().all(|b| !b.fenced)).then_some(d)
    });
    assert!(!described.cluster_id.is_empty(), "{described:?}");
    assert!(
        described.controller.is_some_and(|c| (0..3).contains(&c)),
        "the controller is a voter: {described:?}"
    );
    for (broker, node) in described.brokers.iter().zip(&cluster.nodes) {
        assert_eq!(broker.id, node.id);
        assert_eq!(broker.address(), node.bootstrap());
        assert_eq!(broker.rack, None);
    }
}

fn describe_quorum_shows_voters_and_observers(client: &Client, port: u16) {
    let quorum = client
        .on(port, async |a| a.describe_quorum().await)
        .expect("DescribeQuorum");
    assert!((0..3).contains(&quorum.leader), "{quorum:?}");
    assert!(quorum.epoch > 0, "{quorum:?}");
    assert!(quorum.high_watermark > 0, "{quorum:?}");
    let mut voters: Vec<i32> = quorum.voters.iter().map(|v| v.id).collect();
    voters.sort_unstable();
    assert_eq!(voters, vec![0, 1, 2]);
    assert!(
        quorum.observers.iter().any(|o| o.id == 3),
        "the broker-only node observes: {quorum:?}"
    );
    let leader = quorum
        .voters
        .iter()
        .find(|v| v.id == quorum.leader)
        .expect("the leader is a voter");
    assert_eq!(leader.lag, Some(0), "{quorum:?}");
    assert!(leader.log_end_offset >= Some(quorum.high_watermark));
    for voter in &quorum.voters {
        assert!(voter.lag.is_some_and(|l| l >= 0), "{quorum:?}");
    }
}

fn partitions_show_placement_and_unknown_topics_are_refused(client: &Client, port: u16) {
    create_placed(client, port, "placed", &[&[1, 2, 0], &[2, 0, 3]]);
    let first = wait_in_sync(client, port, "placed", 0);
    assert_eq!(first.replicas, vec![1, 2, 0]);
    assert_eq!(first.leader, Some(1));
    assert!(first.offline.is_empty());
    let second = wait_in_sync(client, port, "placed", 1);
    assert_eq!(second.replicas, vec![2, 0, 3]);

    let view = client
        .on(port, async |a| {
            a.describe_partitions(Some(&["placed".to_string(), "no-such-topic".to_string()]))
                .await
        })
        .expect("Metadata");
    assert_eq!(view.partitions().count(), 2);
    let refused = view.topics["no-such-topic"]
        .clone()
        .expect_err("an unknown topic");
    assert_eq!(
        refused.error(),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    // Every topic, when none is named.
    let all = client
        .on(port, async |a| a.describe_partitions(None).await)
        .expect("Metadata");
    assert!(all.topics.contains_key("placed"), "{all:?}");
}

/// Broker 3 holds `placed-1` but not `placed-0`; its one log directory says so.
fn log_dirs_list_the_replicas_a_broker_holds(client: &Client, cluster: &Cluster) {
    let node = cluster.node(3);
    let dirs = client
        .on(node.port, async |a| a.describe_log_dirs().await)
        .expect("DescribeLogDirs");
    let path = node.data_dir.display().to_string();
    assert_eq!(dirs.keys().collect::<Vec<_>>(), vec![&path], "{dirs:?}");
    let dir = dirs[&path].as_ref().expect("the log dir is online");
    let held = dir
        .replicas
        .get(&tp("placed", 1))
        .expect("placed-1 is held");
    assert!(held.size >= 0 && held.offset_lag >= 0, "{dir:?}");
    assert!(!held.is_future, "{dir:?}");
    assert!(!dir.replicas.contains_key(&tp("placed", 0)), "{dir:?}");
    let usable = dir.usable_bytes.expect("usable bytes are known");
    assert!(usable > 0, "{dir:?}");
    assert!(dir.total_bytes.is_some_and(|t| t >= usable), "{dir:?}");
}

/// The group's coordinator is the same broker whoever is asked (once `__consumer_offsets`,
/// created by the first lookup, has leaders); strom keeps no transaction state, so the
/// broker asked coordinates transactional ids itself; an empty transactional id is
/// refused.
fn coordinators_are_found(client: &Client, cluster: &Cluster, port: u16) {
    const GROUP: &str = "admin-client-group";
    let find = |port: u16, kind: CoordinatorType, key: &'static str| {
        client.on(port, async move |a| a.find_coordinator(kind, key).await)
    };
    let until_found = |port: u16| {
        wait_for(
            &format!("a coordinator for {GROUP} at {port}"),
            SETTLE,
            || match find(port, CoordinatorType::Group, GROUP) {
                Ok(c) => Some(c),
                Err(e) => {
                    assert_eq!(
                        refusal_code(&e),
                        Some(ResponseError::CoordinatorNotAvailable),
                        "{e}"
                    );
                    None
                }
            },
        )
    };
    let coordinator = until_found(port);
    assert_eq!(
        coordinator.address(),
        cluster.node(coordinator.id).bootstrap()
    );
    for node in &cluster.nodes {
        assert_eq!(
            until_found(node.port),
            coordinator,
            "asked broker {}",
            node.id
        );
    }

    let transactions =
        find(port, CoordinatorType::Transaction, "admin-client-txn").expect("FindCoordinator");
    assert_eq!(transactions.id, 3, "{transactions:?}");
    let refused = find(port, CoordinatorType::Transaction, "").expect_err("an empty id");
    assert_eq!(refusal_code(&refused), Some(ResponseError::InvalidRequest));
    assert_eq!(refused.refused().map(|r| r.api), Some("FindCoordinator"));
}

/// A reassignment that only reorders the replicas completes at once and leaves the
/// leader where it was; the preferred election then moves it to the new first replica.
fn reorder_then_elect_the_preferred_leader(client: &Client, port: u16) {
    create_placed(client, port, "elect", &[&[0, 1, 2]]);
    wait_in_sync(client, port, "elect", 0);
    let reorder = BTreeMap::from([(tp("elect", 0), ReassignmentTarget::Replicas(vec![1, 0, 2]))]);
    let answer = client
        .on(port, async |a| a.alter_reassignments(&reorder).await)
        .expect("AlterPartitionReassignments");
    assert_eq!(answer, BTreeMap::from([(tp("elect", 0), Ok(()))]));
    wait_for("elect-0 reordered", SETTLE, || {
        let p = partition(client, port, "elect", 0);
        (p.replicas == vec![1, 0, 2]).then_some(())
    });
    assert_eq!(partition(client, port, "elect", 0).leader, Some(0));

    let asked = [tp("elect", 0)];
    let elected = client
        .on(port, async |a| {
            a.elect_leaders(ElectionType::Preferred, Some(&asked)).await
        })
        .expect("ElectLeaders");
    assert_eq!(
        elected,
        BTreeMap::from([(tp("elect", 0), Ok(Election::Elected))])
    );
    wait_for("broker 1 leads elect-0", SETTLE, || {
        (partition(client, port, "elect", 0).leader == Some(1)).then_some(())
    });
    // Asked again, there is nothing to do: success, not a refusal.
    let again = client
        .on(port, async |a| {
            a.elect_leaders(ElectionType::Preferred, Some(&asked)).await
        })
        .expect("ElectLeaders");
    assert_eq!(
        again,
        BTreeMap::from([(tp("elect", 0), Ok(Election::NotNeeded))])
    );
    // An unclean election where the leader is alive is not needed either.
    let unclean = client
        .on(port, async |a| {
            a.elect_leaders(ElectionType::Unclean, Some(&asked)).await
        })
        .expect("ElectLeaders");
    assert_eq!(unclean[&tp("elect", 0)], Ok(Election::NotNeeded));
    // A partition that does not exist is refused, by itself.
    let unknown = [tp("elect", 0), tp("elect", 7)];
    let answer = client
        .on(port, async |a| {
            a.elect_leaders(ElectionType::Preferred, Some(&unknown))
                .await
        })
        .expect("ElectLeaders");
    assert_eq!(answer[&tp("elect", 0)], Ok(Election::NotNeeded));
    let refused = answer[&tp("elect", 7)].clone().expect_err("elect-7");
    assert_eq!(
        refused.error(),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(refused.api, "ElectLeaders");
}

fn a_throttled_move_is_listed_and_cancelled(client: &Client, cluster: &Cluster, port: u16) {
    create_placed(client, port, "cancel", &[&[0, 1, 2]]);
    wait_in_sync(client, port, "cancel", 0);
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

    let target = BTreeMap::from([(tp("cancel", 0), ReassignmentTarget::Replicas(vec![3, 1, 2]))]);
    let answer = client
        .on(port, async |a| a.alter_reassignments(&target).await)
        .expect("AlterPartitionReassignments");
    assert_eq!(answer[&tp("cancel", 0)], Ok(()));
    // Broker 3 copies ~300 KB at 20 KB/s, so the move is normally still under way.
    let listed = client
        .on(port, async |a| a.list_reassignments(None).await)
        .expect("ListPartitionReassignments");
    if let Some(moving) = listed.get(&tp("cancel", 0)) {
        assert_eq!(moving.replicas, vec![3, 1, 2, 0]);
        assert_eq!(moving.adding, vec![3]);
        assert_eq!(moving.removing, vec![0]);
        assert_eq!(moving.target(), vec![3, 1, 2]);
    }
    let cancel = BTreeMap::from([(tp("cancel", 0), ReassignmentTarget::Cancel)]);
    let answer = client
        .on(port, async |a| a.alter_reassignments(&cancel).await)
        .expect("AlterPartitionReassignments");
    let mut replicas = partition(client, port, "cancel", 0).replicas;
    match &answer[&tp("cancel", 0)] {
        Ok(()) => {
            replicas.sort_unstable();
            assert_eq!(replicas, vec![0, 1, 2], "cancelled: the original replicas");
        }
        // The copy won the race and the move completed before the cancel.
        Err(refused) => {
            assert_eq!(
                refused.error(),
                Some(ResponseError::NoReassignmentInProgress),
                "{refused}"
            );
            assert_eq!(replicas, vec![3, 1, 2]);
        }
    }
    let only = [tp("cancel", 0)];
    let listed = client
        .on(port, async |a| a.list_reassignments(Some(&only)).await)
        .expect("ListPartitionReassignments");
    assert!(listed.is_empty(), "{listed:?}");
}

fn invalid_reassignments_are_refused_per_partition(client: &Client, port: u16) {
    let targets = BTreeMap::from([
        (
            tp("placed", 0),
            ReassignmentTarget::Replicas(vec![1, 2, 99]),
        ),
        (tp("placed", 1), ReassignmentTarget::Cancel),
        (
            tp("no-such-topic", 0),
            ReassignmentTarget::Replicas(vec![0]),
        ),
    ]);
    let answer = client
        .on(port, async |a| a.alter_reassignments(&targets).await)
        .expect("AlterPartitionReassignments");
    let code = |topic: &str, p: i32| answer[&tp(topic, p)].as_ref().expect_err("refused").error();
    assert_eq!(
        code("placed", 0),
        Some(ResponseError::InvalidReplicaAssignment)
    );
    assert!(
        answer[&tp("placed", 0)]
            .as_ref()
            .is_err_and(|r| r.describe().contains("99")),
        "{answer:?}"
    );
    assert_eq!(
        code("placed", 1),
        Some(ResponseError::NoReassignmentInProgress)
    );
    assert_eq!(
        code("no-such-topic", 0),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(partition(client, port, "placed", 0).replicas, vec![1, 2, 0]);
    // The refusals as one error, for callers that treat a partly refused batch as failed.
    let all = strom_client::admin::all_accepted(answer).expect_err("refused");
    assert_eq!(all.refusals().len(), 3, "{all}");
}

fn broker_configs_are_set_and_deleted_on_that_broker(client: &Client, cluster: &Cluster) {
    let port = cluster.node(1).port;
    let key = [DYNAMIC_KEY.to_string()];
    let value_on = |broker: i32, port: u16| {
        let resource = ConfigResource::Broker(broker);
        let mut described = client
            .on(port, async |a| {
                a.describe_configs(std::slice::from_ref(&resource), Some(&key))
                    .await
            })
            .expect("DescribeConfigs");
        let configs = described
            .remove(&resource)
            .expect("answered")
            .expect("described");
        let entry = configs[DYNAMIC_KEY].clone();
        (entry.value, entry.source)
    };
    let (before, _) = value_on(1, port);
    assert_ne!(before.as_deref(), Some(DYNAMIC_VALUE));

    let set = BTreeMap::from([(
        1,
        vec![ConfigOp::Set {
            key: DYNAMIC_KEY.to_string(),
            value: DYNAMIC_VALUE.to_string(),
        }],
    )]);
    let answer = client
        .on(port, async |a| a.alter_broker_configs(&set).await)
        .expect("IncrementalAlterConfigs");
    assert_eq!(answer, BTreeMap::from([(1, Ok(()))]));
    wait_for("broker 1 has the dynamic value", SETTLE, || {
        let now = value_on(1, port);
        (now == (Some(DYNAMIC_VALUE.to_string()), DYNAMIC_BROKER_CONFIG)).then_some(())
    });
    // Only broker 1 changed.
    assert_eq!(value_on(0, cluster.node(0).port).0, before);

    let delete = BTreeMap::from([(
        1,
        vec![ConfigOp::Delete {
            key: DYNAMIC_KEY.to_string(),
        }],
    )]);
    let answer = client
        .on(port, async |a| a.alter_broker_configs(&delete).await)
        .expect("IncrementalAlterConfigs");
    assert_eq!(answer, BTreeMap::from([(1, Ok(()))]));
    wait_for("broker 1 back to its static value", SETTLE, || {
        let (now, source) = value_on(1, port);
        (now == before && source != DYNAMIC_BROKER_CONFIG).then_some(())
    });

    // A key that needs a restart is refused for the broker.
    let restart = BTreeMap::from([(
        1,
        vec![ConfigOp::Set {
            key: "log.dirs".to_string(),
            value: "/elsewhere".to_string(),
        }],
    )]);
    let answer = client
        .on(port, async |a| a.alter_broker_configs(&restart).await)
        .expect("IncrementalAlterConfigs");
    let refused = answer[&1].clone().expect_err("log.dirs is read-only");
    assert_eq!(refused.api, "IncrementalAlterConfigs");
    assert_eq!(refused.resource, "broker 1");

    // The effective value of a topic config, here the cluster's broker default.
    let topic = ConfigResource::Topic("placed".to_string());
    let min_isr = ["min.insync.replicas".to_string()];
    let described = client
        .on(port, async |a| {
            a.describe_configs(std::slice::from_ref(&topic), Some(&min_isr))
                .await
        })
        .expect("DescribeConfigs");
    let configs = described[&topic].clone().expect("described");
    assert_eq!(
        configs["min.insync.replicas"].value.as_deref(),
        Some("2"),
        "{configs:?}"
    );
}

fn unregister_removes_a_stopped_broker(client: &Client, cluster: &mut Cluster) {
    let port = cluster.node(0).port;
    // An id that was never registered: BROKER_ID_NOT_REGISTERED.
    let never = client
        .on(port, async |a| a.unregister_broker(9).await)
        .expect_err("broker 9 is unknown");
    assert_eq!(
        refusal_code(&never),
        Some(ResponseError::BrokerIdNotRegistered),
        "{never}"
    );
    assert_eq!(
        never.refused().map(|r| r.resource.as_str()),
        Some("broker 9")
    );

    cluster.nodes[3].kill();
    client
        .on(port, async |a| a.unregister_broker(3).await)
        .expect("unregister broker 3");
    let described = client
        .on(port, async |a| a.describe_cluster(true).await)
        .expect("DescribeCluster");
    let ids: Vec<i32> = described.brokers.iter().map(|b| b.id).collect();
    assert_eq!(ids, vec![0, 1, 2]);
    // A second time it is unknown.
    let again = client
        .on(port, async |a| a.unregister_broker(3).await)
        .expect_err("broker 3 is gone");
    assert_eq!(
        refusal_code(&again),
        Some(ResponseError::BrokerIdNotRegistered)
    );
}
