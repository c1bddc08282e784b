//! The topic admin calls (`strom_client::admin`) and the topic controller's broker step
//! (`topic::kafka`, driven by `topic::plan`) against a real strom-broker started in this
//! test process on a loopback port: create with configs, a name Kafka refuses, grow
//! partitions, set and delete configs, revert drift, delete. A second test changes a
//! topic's replication factor up and down on three brokers with the reassignment the
//! controller makes.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use strom_broker::config::{BrokerConfig, Properties};
use strom_broker::harness::start_plaintext;
use strom_broker::server::Running;
use strom_client::admin::{Admin, AdminError, ConfigOp, NewTopic};
use strom_operator::access::Brokers;
use strom_operator::rebalance::kafka as rebalance_kafka;
use strom_operator::topic::kafka::{self as topic_kafka};
use strom_operator::topic::plan::{self, Desired};
use strom_test_support::free_port;

/// Bounds every wait for the brokers to reach a state; about 4 s for both tests on an idle
/// machine, far longer on a loaded one.
const SETTLE: Duration = Duration::from_secs(60);

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Polls `check` until it returns Some, for what the broker's metadata shows a moment
/// after the controller accepted it.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_lifecycle_on_a_real_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = start_plaintext(dir.path(), SETTLE)
        .await
        .expect("broker starts");

    // A dead address first: the bootstrap list is tried in order.
    let bootstrap = Brokers::plaintext(vec!["127.0.0.1:1".to_string(), address.clone()]);
    let mut admin = Admin::connect(
        &bootstrap.addresses,
        "topic-test",
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
    .await
    .expect("connects past the dead address");

    // Create: one good topic with configs, one name Kafka refuses, in one request.
    let created = admin
        .create_topics(&[
            NewTopic {
                name: "orders".into(),
                partitions: 2,
                replication_factor: 1,
                configs: strings(&[("retention.ms", "3600000"), ("cleanup.policy", "compact")]),
            },
            NewTopic {
                name: "bad name!".into(),
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
        ])
        .await
        .expect("CreateTopics answered");
    let orders = created["orders"].as_ref().expect("orders created");
    assert_eq!(orders.topic_id.len(), 22, "{orders:?}");
    let refused = created["bad name!"].as_ref().expect_err("bad name refused");
    assert_eq!(
        refused.error(),
        Some(ResponseError::InvalidTopicException),
        "{refused}"
    );

    let names = vec!["orders".to_string(), "absent".to_string()];
    let deadline = Instant::now() + SETTLE;
    let (description, all) = loop {
        let all = admin.describe_topics(&names).await.expect("Metadata");
        if let Ok(Some(d)) = &all["orders"] {
            break (d.clone(), all);
        }
        assert!(
            Instant::now() < deadline,
            "orders never in the metadata: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(description.partitions, 2);
    assert_eq!(description.replication_factor, 1);
    assert_eq!(description.topic_id, orders.topic_id);
    assert_eq!(all["absent"], Ok(None));

    let configs = admin
        .describe_topic_configs(&names)
        .await
        .expect("DescribeConfigs");
    assert_eq!(
        configs["orders"],
        Ok(strings(&[
            ("cleanup.policy", "compact"),
            ("retention.ms", "3600000")
        ])),
        "only the topic's own values, no broker defaults"
    );
    let absent = configs["absent"]
        .as_ref()
        .expect_err("absent topic refused");
    assert_eq!(absent.error(), Some(ResponseError::UnknownTopicOrPartition));

    // Grow partitions; a decrease is Kafka's refusal.
    let grown = admin
        .create_partitions(&BTreeMap::from([("orders".to_string(), 4)]))
        .await
        .expect("CreatePartitions");
    assert_eq!(grown["orders"], Ok(()));
    let shrink = admin
        .create_partitions(&BTreeMap::from([("orders".to_string(), 1)]))
        .await
        .expect("CreatePartitions");
    let refused = shrink["orders"].as_ref().expect_err("decrease refused");
    assert_eq!(refused.error(), Some(ResponseError::InvalidPartitions));

    // SET and DELETE in one request.
    let altered = admin
        .alter_topic_configs(&BTreeMap::from([(
            "orders".to_string(),
            vec![
                ConfigOp::Set {
                    key: "retention.ms".into(),
                    value: "7200000".into(),
                },
                ConfigOp::Delete {
                    key: "cleanup.policy".into(),
                },
            ],
        )]))
        .await
        .expect("IncrementalAlterConfigs");
    assert_eq!(altered["orders"], Ok(()));
    let configs = admin
        .describe_topic_configs(&["orders".to_string()])
        .await
        .expect("DescribeConfigs");
    assert_eq!(
        configs["orders"],
        Ok(strings(&[("retention.ms", "7200000")]))
    );

    // The controller's path: observe, plan and apply; drift on the broker is reverted.
    let observed = eventually("4 partitions", || {
        let bootstrap = bootstrap.clone();
        async move {
            topic_kafka::observe(&bootstrap, "orders")
                .await
                .expect("observe")
                .filter(|o| o.partitions == 4)
        }
    })
    .await;
    assert_eq!(observed.config, strings(&[("retention.ms", "7200000")]));
    let desired = Desired {
        name: "orders".into(),
        partitions: 5,
        replicas: 1,
        config: strings(&[("segment.bytes", "1048576")]),
    };
    let plan = plan::plan(&desired, Some(&observed));
    assert!(plan.refusals.is_empty(), "{plan:?}");
    topic_kafka::apply(&bootstrap, "orders", &plan.steps)
        .await
        .expect("plan applied");
    let after = eventually("5 partitions", || {
        let bootstrap = bootstrap.clone();
        async move {
            topic_kafka::observe(&bootstrap, "orders")
                .await
                .expect("observe")
                .filter(|o| o.partitions == 5)
        }
    })
    .await;
    assert_eq!(after.config, strings(&[("segment.bytes", "1048576")]));
    assert!(plan::plan(&desired, Some(&after)).is_noop());

    // A config Kafka does not know is refused with its message.
    let bad = Desired {
        config: strings(&[("retention.mss", "1")]),
        ..desired.clone()
    };
    let err = topic_kafka::apply(&bootstrap, "orders", &plan::plan(&bad, Some(&after)).steps)
        .await
        .expect_err("unknown config refused");
    match &err {
        AdminError::Refused(r) => assert_ne!(r.code, 0, "{r}"),
        other => panic!("expected a refusal, got {other}"),
    }

    // Delete, then deleting again counts as done.
    let deleted = admin
        .delete_topics(&["orders".to_string()])
        .await
        .expect("DeleteTopics");
    assert_eq!(deleted["orders"], Ok(()));
    eventually("orders gone", || {
        let bootstrap = bootstrap.clone();
        async move {
            topic_kafka::observe(&bootstrap, "orders")
                .await
                .expect("observe")
                .is_none()
                .then_some(())
        }
    })
    .await;
    topic_kafka::delete(&bootstrap, "orders")
        .await
        .expect("an absent topic counts as deleted");

    drop(admin);
    running.shutdown().await.expect("shutdown");
}

/// One reconcile's worth of the replication-factor change, as `topic::reconcile` does
/// it: read the assignment, plan the moves, start them. Returns how many partitions moved.
async fn reassign_to(bootstrap: &Brokers, topic: &str, replicas: i32) -> usize {
    let view = rebalance_kafka::describe(bootstrap)
        .await
        .expect("describe the cluster");
    assert!(view.in_flight.is_empty(), "{:?}", view.in_flight);
    let moves = plan::replication_moves(topic, &view.assignment, &view.live_brokers(), replicas)
        .expect("enough live brokers");
    rebalance_kafka::reassign(bootstrap, &moves)
        .await
        .expect("reassignment accepted");
    moves.len()
}

async fn settled_replicas(bootstrap: &Brokers, topic: &str, replicas: i32) {
    eventually(&format!("replication factor {replicas}"), || {
        let bootstrap = bootstrap.clone();
        let topic = topic.to_string();
        async move {
            let view = rebalance_kafka::describe(&bootstrap).await.ok()?;
            let done = view.in_flight.is_empty()
                && view
                    .assignment
                    .iter()
                    .filter(|(tp, _)| tp.topic == topic)
                    .all(|(_, r)| r.len() == replicas as usize);
            let observed = topic_kafka::observe(&bootstrap, &topic).await.ok()??;
            (done && observed.replicas == replicas).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_factor_changes_on_three_brokers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = controller_ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{i}@127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let configs: Vec<BrokerConfig> = (0..3)
        .map(|i| {
            let mut props = Properties::new();
            for (k, v) in [
                ("node.id", i.to_string()),
                ("controller.quorum.voters", voters.clone()),
                (
                    "listeners",
                    format!(
                        "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                        ports[i], controller_ports[i]
                    ),
                ),
                (
                    "log.dirs",
                    dir.path().join(format!("b{i}")).display().to_string(),
                ),
                ("admin.listener", format!("127.0.0.1:{}", free_port())),
                ("broker.heartbeat.interval.ms", "500".into()),
                ("broker.session.timeout.ms", "3000".into()),
            ] {
                props.insert(k.into(), v);
            }
            BrokerConfig::from_properties(props).expect("config").0
        })
        .collect();
    // A quorum forms only with its voters together: start the three at once.
    let running: Vec<Running> = futures::future::join_all(
        configs
            .into_iter()
            .map(|c| async move { strom_broker::server::start(c, true).await.expect("starts") }),
    )
    .await;
    let bootstrap = Brokers::plaintext(ports.iter().map(|p| format!("127.0.0.1:{p}")).collect());
    eventually("three unfenced brokers", || {
        let bootstrap = bootstrap.clone();
        async move {
            let view = rebalance_kafka::describe(&bootstrap).await.ok()?;
            (view.live_brokers().len() == 3).then_some(())
        }
    })
    .await;

    let desired = Desired {
        name: "events".into(),
        partitions: 3,
        replicas: 1,
        config: BTreeMap::new(),
    };
    topic_kafka::apply(&bootstrap, "events", &plan::plan(&desired, None).steps)
        .await
        .expect("created");
    settled_replicas(&bootstrap, "events", 1).await;

    let observed = topic_kafka::observe(&bootstrap, "events")
        .await
        .expect("observe")
        .expect("exists");
    let up = Desired {
        replicas: 3,
        ..desired.clone()
    };
    assert_eq!(plan::plan(&up, Some(&observed)).replication, Some((1, 3)));
    assert_eq!(reassign_to(&bootstrap, "events", 3).await, 3);
    settled_replicas(&bootstrap, "events", 3).await;

    assert_eq!(reassign_to(&bootstrap, "events", 2).await, 3);
    settled_replicas(&bootstrap, "events", 2).await;
    let observed = topic_kafka::observe(&bootstrap, "events")
        .await
        .expect("observe")
        .expect("exists");
    let two = Desired {
        replicas: 2,
        ..desired
    };
    assert!(plan::plan(&two, Some(&observed)).replication.is_none());

    for r in running {
        r.shutdown().await.expect("shutdown");
    }
}
