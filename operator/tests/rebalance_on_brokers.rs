//! The operator's rebalance calls (`rebalance::kafka`) and planner against real strom-broker
//! nodes on loopback (started in this process from the broker crate, the same code the
//! binary runs): three voters plus broker 3. A topic placed on 0..2 is spread onto broker 3
//! (3 -> 4), throttled, and checked through Metadata, and the preferred leaders the moves
//! set are elected (the brokers' own leader rebalance is off); then broker 3 is drained
//! (4 -> 3), stopped and unregistered, as the scale step does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use strom_broker::config::{BrokerConfig, Properties};
use strom_broker::server::{self, Running};
use strom_client::admin::{Admin, PlacedTopic};
use strom_operator::access::Brokers;
use strom_operator::rebalance::batch::{next_batch, throttled_brokers, throttles};
use strom_operator::rebalance::kafka::{self, ClusterView};
use strom_operator::rebalance::plan::{self, Broker};
use strom_test_support::free_port;

struct Node {
    id: i32,
    port: u16,
    props: Properties,
}

fn node(id: i32, voters: &str, controller_port: Option<u16>, dir: &std::path::Path) -> Node {
    let port = free_port();
    let mut listeners = format!("PLAINTEXT://127.0.0.1:{port}");
    let mut props = Properties::new();
    if let Some(c) = controller_port {
        listeners.push_str(&format!(",CONTROLLER://127.0.0.1:{c}"));
    } else {
        props.insert("process.roles".into(), "broker".into());
    }
    for (k, v) in [
        ("node.id", id.to_string()),
        ("controller.quorum.voters", voters.to_string()),
        ("listeners", listeners),
        ("log.dirs", dir.join(format!("b{id}")).display().to_string()),
        ("admin.listener", format!("127.0.0.1:{}", free_port())),
        ("broker.heartbeat.interval.ms", "500".into()),
        ("broker.session.timeout.ms", "3000".into()),
        ("default.replication.factor", "3".into()),
        ("min.insync.replicas", "2".into()),
        ("auto.leader.rebalance.enable", "false".into()),
    ] {
        props.insert(k.into(), v);
    }
    Node { id, port, props }
}

async fn start(node: &Node) -> Running {
    let (config, _) = BrokerConfig::from_properties(node.props.clone()).expect("broker config");
    server::start(config, true)
        .await
        .unwrap_or_else(|e| panic!("broker {} starts: {e:#}", node.id))
}

/// Polls `check` every 100 ms until it gives Some, for at most `limit`.
async fn wait_for<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn describe(bootstrap: &Brokers) -> ClusterView {
    kafka::describe(bootstrap)
        .await
        .expect("describe the cluster")
}

/// Runs the scale step's loop by hand: one throttled batch at a time until the plan for
/// `targets` is empty. Returns the number of batches.
async fn rebalance(bootstrap: &Brokers, targets: &[i32]) -> usize {
    let brokers: Vec<Broker> = targets
        .iter()
        .map(|&id| Broker { id, rack: None })
        .collect();
    let mut batches = 0;
    loop {
        let view = wait_for("no move in flight", Duration::from_secs(60), async || {
            let v = describe(bootstrap).await;
            v.in_flight.is_empty().then_some(v)
        })
        .await;
        let moves = plan::plan(&brokers, &view.assignment);
        if moves.is_empty() {
            return batches;
        }
        let batch = next_batch(&moves, &view.in_flight, 3);
        let topic_throttles = throttles(&batch);
        kafka::set_throttles(
            bootstrap,
            10_000_000,
            &throttled_brokers(&batch),
            &topic_throttles,
        )
        .await
        .expect("throttles set");
        kafka::reassign(bootstrap, &batch)
            .await
            .expect("moves start");
        batches += 1;
        assert!(batches < 30, "the plan does not converge");
        let topics: Vec<String> = topic_throttles.into_keys().collect();
        wait_for("the batch to finish", Duration::from_secs(60), async || {
            describe(bootstrap).await.in_flight.is_empty().then_some(())
        })
        .await;
        let all: BTreeSet<i32> = describe(bootstrap).await.brokers.into_keys().collect();
        kafka::clear_throttles(bootstrap, &all, &topics)
            .await
            .expect("throttles removed");
    }
}

fn counts(view: &ClusterView, leaders: bool) -> BTreeMap<i32, usize> {
    let mut c = BTreeMap::new();
    for r in view.assignment.values() {
        let on: &[i32] = if leaders { &r[..1] } else { r };
        for b in on {
            *c.entry(*b).or_insert(0) += 1;
        }
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spread_onto_a_new_broker_then_drain_and_unregister_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = (0..3)
        .map(|i| format!("{i}@127.0.0.1:{}", cports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let nodes: Vec<Node> = (0..4)
        .map(|i| node(i, &voters, cports.get(i as usize).copied(), dir.path()))
        .collect();
    let bootstrap = Brokers::plaintext(
        nodes[..3]
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect(),
    );

    // A quorum forms only with its voters together: start the four at once.
    let mut running: Vec<Running> = futures::future::join_all(nodes.iter().map(start)).await;

    // Twelve partitions at RF 3 placed on brokers 0..2 only, round-robin.
    let orders = PlacedTopic {
        name: "orders".to_string(),
        replicas: (0..12)
            .map(|p| (0..3).map(|i| (p + i) % 3).collect())
            .collect(),
        configs: BTreeMap::new(),
    };
    let created = Admin::connect(
        &bootstrap.addresses,
        "test",
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
    .await
    .expect("connect")
    .create_placed_topics(&[orders])
    .await
    .expect("CreateTopics");
    assert!(created["orders"].is_ok(), "{created:?}");

    wait_for("four live brokers", Duration::from_secs(30), async || {
        let v = describe(&bootstrap).await;
        (v.brokers.len() == 4 && v.brokers.values().all(|b| !b.fenced)).then_some(())
    })
    .await;
    let before = describe(&bootstrap).await;
    assert_eq!(before.assignment.len(), 12);
    assert!(!counts(&before, false).contains_key(&3));

    // 3 -> 4: replicas and preferred leaders spread onto broker 3.
    let batches = rebalance(&bootstrap, &[0, 1, 2, 3]).await;
    assert!(batches >= 2, "moves went in batches of 3, got {batches}");
    let after = describe(&bootstrap).await;
    let replicas = counts(&after, false);
    assert_eq!(replicas.len(), 4, "{replicas:?}");
    assert!(
        replicas.values().all(|&n| n == 9),
        "36 replicas, 9 each: {replicas:?}"
    );
    let leaders = counts(&after, true);
    assert!(
        leaders.values().all(|&n| n == 3),
        "12 leaders, 3 each: {leaders:?}"
    );
    for (tp, r) in &after.assignment {
        assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "{tp}: {r:?}");
    }

    // Only an election moves the leaderships to the first replicas; asked again while
    // some preferred replica is not yet in the ISR (the decision leaves those out).
    let mut moved = 0;
    wait_for(
        "every partition led by its first replica",
        Duration::from_secs(30),
        async || {
            let view = describe(&bootstrap).await;
            let live = view.live_brokers();
            let elect =
                plan::preferred_elections(&view.assignment, &view.leaders, &live, &view.in_flight);
            let led_by_first = view
                .assignment
                .iter()
                .all(|(tp, r)| view.leaders.get(tp).and_then(|l| l.leader) == r.first().copied());
            if led_by_first {
                return Some(());
            }
            moved += kafka::elect_preferred(&bootstrap, &elect)
                .await
                .expect("ElectLeaders")
                .len();
            None
        },
    )
    .await;
    eprintln!("preferred leader elections moved {moved} leaderships after the spread");
    // Nothing left to elect: asking again moves nothing and is no error.
    let everything: Vec<_> = after.assignment.keys().cloned().collect();
    assert_eq!(
        kafka::elect_preferred(&bootstrap, &everything)
            .await
            .expect("ElectLeaders when nothing is to do"),
        Vec::new()
    );

    // 4 -> 3: broker 3 drains; nothing is left there, every RF is kept.
    assert!(plan::blocked_topics(&after.assignment, 3).is_empty());
    rebalance(&bootstrap, &[0, 1, 2]).await;
    let drained = describe(&bootstrap).await;
    let keep: BTreeSet<i32> = [0, 1, 2].into();
    assert_eq!(plan::replicas_outside(&drained.assignment, &keep), 0);
    for (tp, r) in &drained.assignment {
        assert_eq!(r.len(), 3, "{tp}: {r:?}");
    }

    // Its process goes, then its registration.
    let leaving = running.pop().expect("broker 3");
    leaving.shutdown().await.expect("broker 3 stops");
    wait_for("broker 3 fenced", Duration::from_secs(30), async || {
        describe(&bootstrap)
            .await
            .brokers
            .get(&3)
            .is_none_or(|b| b.fenced)
            .then_some(())
    })
    .await;
    kafka::unregister(&bootstrap, 3)
        .await
        .expect("unregister 3");
    // Asking again is no error: the operator may repeat a step after a restart.
    kafka::unregister(&bootstrap, 3)
        .await
        .expect("unregister 3 again");
    let left: Vec<i32> = describe(&bootstrap).await.brokers.into_keys().collect();
    assert_eq!(left, vec![0, 1, 2]);

    for r in running {
        let _ = r.shutdown().await;
    }
}
