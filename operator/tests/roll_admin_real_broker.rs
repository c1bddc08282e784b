//! The roller's broker calls (`KafkaAdmin`) against real strom-brokers: a three-node
//! cluster, every node a controller voter, started in this test process from the
//! properties the operator renders for its pods, with only addresses and data dirs
//! localised. The reconcile tests use a stand-in (`FakeAdmin`); this is where the field
//! mapping, API versions and ports of the real calls are checked.
//!
//! The brokers run in-process (`strom_broker::server::start`) rather than as `strom-broker`
//! processes: the library is already a dev-dependency, nothing has to be built or located
//! first, a broker is stopped and started again with its own `shutdown`/`start`, and the
//! test can read each broker's metadata image to compare `describe` against what the
//! cluster itself holds.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loopback::{split_addr, Localised};
use kafka_protocol::ResponseError;
use serde_json::json;
use strom_broker::broker::Broker;
use strom_broker::config::dynamic::DynamicLayer;
use strom_broker::config::BrokerConfig;
use strom_broker::metadata::image::MetadataImage;
use strom_broker::server::{self, Running};
use strom_client::admin::{Admin, NewTopic};
use strom_client::admin_cluster::{ConfigResource, Election, ElectionType};
use strom_client::Security;
use strom_operator::crd::KafkaCluster;
use strom_operator::roll::kafka::{AdminError, BrokerAdmin, ClusterView, Endpoint, KafkaAdmin};
use strom_operator::roll::roller;
use strom_operator::roll::safety::{self, PartitionState};

const CLUSTER: &str = "roll";
const NAMESPACE: &str = "kafka";
const BROKERS: i32 = 3;
/// RF 3 with `min.insync.replicas=2` as a topic config: one broker down puts its ISR at
/// the minimum.
const GUARDED: &str = "orders";
const GUARDED_PARTITIONS: i32 = 3;
/// RF 3 without an override: its minimum is the broker default (1), so describe must not
/// report the other topic's value for it, and losing one broker never makes it unsafe.
const LOOSE: &str = "audit";
/// Bounds every wait for the cluster to reach a state; the whole test takes about 4 s.
const SETTLE: Duration = Duration::from_secs(30);
/// Kafka's `ConfigSource.DYNAMIC_BROKER_CONFIG`.
const DYNAMIC_BROKER_CONFIG: i8 = 2;
/// A key the roller changes in place (`triggers::DYNAMIC_KEYS`), and a value no default has.
const DYNAMIC_KEY: &str = "log.cleaner.backoff.ms";
const DYNAMIC_VALUE: &str = "12345";

fn cluster_spec() -> KafkaCluster {
    serde_json::from_value(json!({
        "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": {"name": CLUSTER, "namespace": NAMESPACE, "uid": "u"},
        "spec": {
            "replicas": BROKERS,
            "listeners": [{"name": "plain", "port": 9092}],
            "defaultReplicationFactor": 3,
            "config": {
                // Otherwise the controller would hand leaderships back by itself and the
                // ElectLeaders check could not tell whether the roller's call did it.
                "auto.leader.rebalance.enable": false,
                // A stopped broker leaves the ISRs within a few seconds, not Kafka's 18.
                "broker.heartbeat.interval.ms": 500,
                "broker.session.timeout.ms": 3000,
            },
        },
    }))
    .expect("a KafkaCluster")
}

/// One broker's configuration with the pod's addresses replaced by loopback ones.
struct Node {
    id: i32,
    config: BrokerConfig,
    /// Where the roller's `Endpoint` for this pod lands on loopback.
    endpoint: Endpoint,
}

/// Renders every broker's properties as the operator does, moves every address to
/// 127.0.0.1 on its own free port, and maps the roller's pod endpoints the same way. The
/// mapping fails the test if an endpoint names a port the rendered broker does not serve,
/// or the Kafka endpoint is not a PLAINTEXT listener or the admin one not `admin.listener`.
fn nodes(data: &Path) -> Vec<Node> {
    let local = Localised::render(&cluster_spec(), BROKERS, data);
    (0..BROKERS)
        .zip(local.props.clone())
        .map(|(i, props)| {
            let protocols: BTreeMap<String, String> = props["listener.security.protocol.map"]
                .split(',')
                .filter_map(|e| e.split_once(':'))
                .map(|(n, p)| (n.to_string(), p.to_string()))
                .collect();
            let props_inter = props.get("inter.broker.listener.name").cloned();
            let (config, _) = BrokerConfig::from_properties(props).expect("a broker config");
            assert!(!config.cluster.auto_leader_rebalance_enable);

            let pod = roller::endpoint(CLUSTER, NAMESPACE, i, &Security::default());
            assert_eq!(pod.id, i);
            let (host, kafka_port) = split_addr(&pod.kafka);
            assert_eq!(local.pod_of(host), i, "{} is not broker {i}'s pod", pod.kafka);
            let kafka_listener = local
                .serves
                .get(&(i, kafka_port))
                .unwrap_or_else(|| panic!("the roller calls {} where broker {i} serves nothing", pod.kafka));
            // The replication listener: the one every broker reaches, PLAINTEXT in a
            // cluster without security (secured_cluster_real_brokers covers mTLS).
            assert_eq!(
                Some(kafka_listener),
                props_inter.as_ref(),
                "the roller's Kafka port {kafka_port} is not the inter-broker listener"
            );
            assert_eq!(
                protocols.get(kafka_listener).map(String::as_str),
                Some("PLAINTEXT"),
                "the roller's Kafka port {kafka_port} is listener {kafka_listener}, not PLAINTEXT in a cluster without security"
            );
            let (host, admin_port) = split_addr(&pod.admin);
            assert_eq!(local.pod_of(host), i, "{} is not broker {i}'s pod", pod.admin);
            assert_eq!(
                local.serves.get(&(i, admin_port)).map(String::as_str),
                Some("admin"),
                "the roller's admin port {admin_port} is not broker {i}'s admin.listener"
            );
            Node {
                id: i,
                config,
                endpoint: Endpoint {
                    id: i,
                    kafka: local.address(i, kafka_port),
                    admin: local.address(i, admin_port),
                    security: Security::default(),
                },
            }
        })
        .collect()
}

/// Polls `check` (an async probe of cluster state) until it returns Some, failing the test
/// with `what` and the last probe's description after `SETTLE`.
async fn settle<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until broker `broker`'s own metadata image satisfies `check`.
async fn image_settles(broker: &Broker, what: &str, check: impl Fn(&MetadataImage) -> bool) {
    let mut images = broker.metadata.subscribe();
    let seen = tokio::time::timeout(SETTLE, images.wait_for(|i| check(i))).await;
    assert!(
        matches!(seen, Ok(Ok(_))),
        "broker {} never saw {what}",
        broker.node_id()
    );
}

/// The partitions of our topics as a broker's own image holds them, in describe's shape.
fn image_partitions(image: &MetadataImage) -> BTreeMap<(String, i32), PartitionState> {
    image
        .partitions()
        .map(|(t, p)| {
            (
                (t.name.clone(), p.partition),
                PartitionState {
                    topic: t.name.clone(),
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                },
            )
        })
        .collect()
}

fn view_partitions(view: &ClusterView) -> BTreeMap<(String, i32), PartitionState> {
    view.partitions
        .iter()
        .map(|p| ((p.topic.clone(), p.partition), p.clone()))
        .collect()
}

fn sorted(ids: &[i32]) -> Vec<i32> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

async fn connect(endpoint: &Endpoint) -> Admin {
    let timeout = Duration::from_secs(10);
    Admin::connect(
        std::slice::from_ref(&endpoint.kafka),
        "roll-admin-test",
        timeout,
        timeout,
    )
    .await
    .expect("connect")
}

async fn create_topics(endpoint: &Endpoint) {
    let topic = |name: &str, partitions: i32, configs: &[(&str, &str)]| NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor: 3,
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let created = connect(endpoint)
        .await
        .create_topics(&[
            topic(GUARDED, GUARDED_PARTITIONS, &[("min.insync.replicas", "2")]),
            topic(LOOSE, 1, &[]),
        ])
        .await
        .expect("CreateTopics");
    for (name, outcome) in &created {
        assert!(outcome.is_ok(), "create {name}: {outcome:?}");
    }
}

/// `key` of BROKER `broker` as that broker describes it: (value, config source).
async fn broker_config(endpoint: &Endpoint, key: &'static str) -> (Option<String>, i8) {
    let resource = ConfigResource::Broker(endpoint.id);
    let mut described = connect(endpoint)
        .await
        .describe_configs(std::slice::from_ref(&resource), Some(&[key.to_string()]))
        .await
        .expect("DescribeConfigs");
    let configs = described
        .remove(&resource)
        .expect("the broker is answered")
        .expect("the broker is described");
    let entry = configs
        .get(key)
        .unwrap_or_else(|| panic!("broker {} does not describe {key}", endpoint.id));
    (entry.value.clone(), entry.source)
}

/// Starts every node at once: a voter's `start` returns only once the quorum has formed.
async fn start_all(nodes: &[Node]) -> Vec<Option<Running>> {
    let starts: Vec<_> = nodes
        .iter()
        .map(|n| tokio::spawn(server::start(n.config.clone(), true)))
        .collect();
    let mut running = Vec::new();
    for (node, start) in nodes.iter().zip(starts) {
        let started = tokio::time::timeout(SETTLE, start)
            .await
            .unwrap_or_else(|_| panic!("broker {} did not start in time", node.id))
            .expect("start task");
        running.push(Some(started.unwrap_or_else(|e| {
            panic!("broker {} failed to start: {e:#}", node.id)
        })));
    }
    running
}

/// Waits until the ports a stopped broker used can be bound again: its listeners close
/// as their aborted tasks are dropped, just after `shutdown` returns.
async fn ports_released(node: &Node) {
    let mut addrs: Vec<String> = node
        .config
        .listeners
        .iter()
        .map(|l| format!("127.0.0.1:{}", l.port))
        .collect();
    addrs.push(node.config.admin_listener.to_string());
    settle("the stopped broker's ports to be free", || {
        let addrs = addrs.clone();
        async move {
            for addr in &addrs {
                TcpListener::bind(addr).map_err(|e| format!("{addr}: {e}"))?;
            }
            Ok(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_against_a_three_broker_cluster() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = nodes(data.path());
    let endpoints: Vec<Endpoint> = nodes.iter().map(|n| n.endpoint.clone()).collect();
    let mut running = start_all(&nodes).await;
    let broker = |running: &[Option<Running>], i: usize| -> Arc<Broker> {
        running[i].as_ref().expect("broker running").broker.clone()
    };
    let admin = KafkaAdmin::default();

    create_topics(&endpoints[0]).await;
    let full_isrs = |image: &MetadataImage| {
        let ours: Vec<_> = image
            .partitions()
            .filter(|(t, _)| t.name == GUARDED || t.name == LOOSE)
            .collect();
        ours.len() == GUARDED_PARTITIONS as usize + 1
            && ours.iter().all(|(_, p)| p.isr.len() == 3 && p.leader >= 0)
    };
    for i in 0..nodes.len() {
        image_settles(
            &broker(&running, i),
            "every partition with a full ISR",
            full_isrs,
        )
        .await;
    }

    // describe: the partitions exactly as the cluster's metadata holds them, each topic's
    // effective minimum, the quorum and the active controller.
    let view = admin.describe(endpoints.clone()).await.expect("describe");
    let image = broker(&running, 0).metadata.image();
    assert_eq!(view_partitions(&view), image_partitions(&image));
    let guarded: Vec<&PartitionState> = view
        .partitions
        .iter()
        .filter(|p| p.topic == GUARDED)
        .collect();
    assert_eq!(guarded.len(), GUARDED_PARTITIONS as usize);
    for p in &view.partitions {
        assert_eq!(sorted(&p.replicas), vec![0, 1, 2], "{}", p.name());
        assert_eq!(sorted(&p.isr), vec![0, 1, 2], "{}", p.name());
        assert!(p.replicas.contains(&p.leader), "{}", p.name());
    }
    assert_eq!(view.min_isr.get(GUARDED), Some(&2), "{:?}", view.min_isr);
    assert_eq!(view.min_isr.get(LOOSE), Some(&1), "{:?}", view.min_isr);
    let quorum = view.quorum.clone().expect("the quorum described");
    let voters: Vec<i32> = sorted(&quorum.voters.iter().map(|v| v.id).collect::<Vec<_>>());
    assert_eq!(voters, vec![0, 1, 2]);
    let active = broker(&running, 0)
        .metadata
        .active_controller()
        .expect("an active controller");
    assert_eq!(quorum.leader, active);
    assert_eq!(view.controller, Some(active));
    for v in &quorum.voters {
        assert!(v.last_caught_up_ms > 0, "voter {} never caught up", v.id);
    }
    assert_eq!(
        safety::quorum_blocker(0, &quorum, safety::QUORUM_FETCH_TIMEOUT_MS),
        None
    );

    // A broker that does not answer is skipped: describe asks the next.
    let mut dead_first = vec![Endpoint {
        id: 9,
        kafka: "127.0.0.1:1".into(),
        admin: "127.0.0.1:1".into(),
        security: Security::default(),
    }];
    dead_first.extend(endpoints.iter().cloned());
    let again = admin
        .describe(dead_first)
        .await
        .expect("describe past a dead broker");
    assert_eq!(view_partitions(&again), view_partitions(&view));

    // /restart-safe with full ISRs: every broker may restart.
    for e in &endpoints {
        let answer = admin.restart_safe(e.clone()).await.expect("restart-safe");
        assert!(answer.safe, "broker {}: {answer:?}", e.id);
        assert_eq!(answer.broker, e.id);
    }

    // IncrementalAlterConfigs of a key the roller changes in place: set on broker 1 only,
    // as DescribeConfigs then shows, and deleted again.
    assert!(strom_operator::roll::triggers::DYNAMIC_KEYS.contains(&DYNAMIC_KEY));
    let (before, _) = broker_config(&endpoints[1], DYNAMIC_KEY).await;
    assert_ne!(before.as_deref(), Some(DYNAMIC_VALUE));
    admin
        .alter_broker_config(
            endpoints[1].clone(),
            vec![(DYNAMIC_KEY.to_string(), Some(DYNAMIC_VALUE.to_string()))],
        )
        .await
        .expect("IncrementalAlterConfigs");
    // The answer comes once the controller has committed the change; the broker applies
    // it when its metadata image catches up, an instant later (as in Kafka).
    let set = (Some(DYNAMIC_VALUE.to_string()), DYNAMIC_BROKER_CONFIG);
    settle("broker 1 to describe its new value", || {
        let set = set.clone();
        let endpoint = endpoints[1].clone();
        async move {
            let now = broker_config(&endpoint, DYNAMIC_KEY).await;
            if now == set {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        }
    })
    .await;
    // Per broker, not a cluster default: broker 0 holds the change, yet its own value is
    // untouched.
    image_settles(&broker(&running, 0), "broker 1's dynamic config", |i| {
        DynamicLayer::of(i, 1).get(DYNAMIC_KEY).map(|(v, _)| v) == Some(DYNAMIC_VALUE)
    })
    .await;
    assert_eq!(broker_config(&endpoints[0], DYNAMIC_KEY).await.0, before);
    admin
        .alter_broker_config(endpoints[1].clone(), vec![(DYNAMIC_KEY.to_string(), None)])
        .await
        .expect("IncrementalAlterConfigs delete");
    settle("broker 1 back on its default", || {
        let before = before.clone();
        let endpoint = endpoints[1].clone();
        async move {
            let (now, _) = broker_config(&endpoint, DYNAMIC_KEY).await;
            if now == before {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        }
    })
    .await;
    // A key that needs a restart is refused, and the refusal reaches the roller.
    let refused = admin
        .alter_broker_config(
            endpoints[1].clone(),
            vec![("log.dirs".to_string(), Some("/elsewhere".to_string()))],
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(ref e) if e.refused().is_some_and(|r| r.api == "IncrementalAlterConfigs")
        ),
        "{refused:?}"
    );

    // Stop the preferred leader of a partition (not the controller, so the quorum keeps
    // its leader): its leaderships move away and it leaves every ISR.
    let moved = guarded
        .iter()
        .find(|p| p.replicas[0] != active)
        .expect("a partition another broker prefers to lead");
    let stopped = moved.replicas[0];
    let remaining = *moved
        .replicas
        .iter()
        .find(|r| **r != stopped)
        .expect("another replica");
    running[stopped as usize]
        .take()
        .expect("running")
        .shutdown()
        .await
        .expect("clean shutdown");
    let survivors: Vec<Endpoint> = endpoints
        .iter()
        .filter(|e| e.id != stopped)
        .cloned()
        .collect();
    // Listed first on purpose: the stopped broker refuses connections and is skipped.
    let mut stopped_first = vec![endpoints[stopped as usize].clone()];
    stopped_first.extend(survivors.iter().cloned());
    let shrunk = settle("the stopped broker out of every ISR", || {
        let admin = admin.clone();
        let brokers = stopped_first.clone();
        async move {
            let view = admin.describe(brokers).await.map_err(|e| e.to_string())?;
            let out = view
                .partitions
                .iter()
                .all(|p| !p.isr.contains(&stopped) && p.leader != stopped);
            if out && view.quorum.is_some() {
                Ok(view)
            } else {
                Err(format!("{:?}", view.partitions))
            }
        }
    })
    .await;
    for p in &shrunk.partitions {
        let expected: Vec<i32> = [0, 1, 2].into_iter().filter(|b| *b != stopped).collect();
        assert_eq!(sorted(&p.isr), expected, "{}", p.name());
    }
    assert_eq!(
        view_partitions(&shrunk),
        image_partitions(&broker(&running, remaining as usize).metadata.image())
    );
    // The unsafe case: `remaining` is in every ISR, now at the guarded topic's minimum.
    let answer = admin
        .restart_safe(endpoints[remaining as usize].clone())
        .await
        .expect("restart-safe");
    assert!(!answer.safe, "{answer:?}");
    assert_eq!(answer.broker, remaining);
    assert_eq!(
        answer.unsafe_partitions,
        Some(GUARDED_PARTITIONS as usize),
        "{answer:?}"
    );
    assert!(
        answer.reasons.iter().all(|r| r.contains(GUARDED)),
        "only the guarded topic is at its minimum: {answer:?}"
    );
    // The roller's own rule, fed by describe, agrees with the broker.
    let min_isr = |topic: &str| shrunk.min_isr.get(topic).copied().unwrap_or(1);
    let blocking = safety::blocking_partitions(remaining, &shrunk.partitions, min_isr);
    assert_eq!(blocking.len(), GUARDED_PARTITIONS as usize, "{blocking:?}");
    // The stopped broker has no answer to give; the roller gets an error, not a verdict.
    let gone = admin
        .restart_safe(endpoints[stopped as usize].clone())
        .await;
    assert!(matches!(gone, Err(AdminError::Http { .. })), "{gone:?}");

    // Back again: it rejoins every ISR, but (no automatic rebalance) leads nothing.
    ports_released(&nodes[stopped as usize]).await;
    let restarted = tokio::time::timeout(
        SETTLE,
        server::start(nodes[stopped as usize].config.clone(), true),
    )
    .await
    .expect("restart in time")
    .expect("restart");
    running[stopped as usize] = Some(restarted);
    let rejoined = settle("the restarted broker back in every ISR", || {
        let admin = admin.clone();
        let brokers = endpoints.clone();
        async move {
            let view = admin.describe(brokers).await.map_err(|e| e.to_string())?;
            if view.partitions.iter().all(|p| p.isr.len() == 3) {
                Ok(view)
            } else {
                Err(format!("{:?}", view.partitions))
            }
        }
    })
    .await;
    let not_preferred: Vec<(String, i32)> = rejoined
        .partitions
        .iter()
        .filter(|p| p.leader != p.replicas[0])
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    assert!(
        not_preferred.contains(&(moved.topic.clone(), moved.partition)),
        "{} should be led away from {stopped}: {:?}",
        moved.name(),
        rejoined.partitions
    );

    // ElectLeaders PREFERRED puts every preferred leader back.
    let everything: Vec<(String, i32)> = rejoined
        .partitions
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    admin
        .elect_preferred(endpoints.clone(), everything.clone())
        .await
        .expect("ElectLeaders");
    settle("every partition led by its preferred leader", || {
        let admin = admin.clone();
        let brokers = endpoints.clone();
        async move {
            let view = admin.describe(brokers).await.map_err(|e| e.to_string())?;
            if view.partitions.iter().all(|p| p.leader == p.replicas[0]) {
                Ok(())
            } else {
                Err(format!("{:?}", view.partitions))
            }
        }
    })
    .await;
    // Asking again is "election not needed", which the roller takes as success.
    let guarded: Vec<(String, i32)> = (0..GUARDED_PARTITIONS)
        .map(|p| (GUARDED.to_string(), p))
        .collect();
    let again = connect(&endpoints[0])
        .await
        .elect_leaders(ElectionType::Preferred, Some(&guarded))
        .await
        .expect("ElectLeaders");
    assert_eq!(again.len(), guarded.len(), "{again:?}");
    for outcome in again.values() {
        assert_eq!(outcome, &Ok(Election::NotNeeded));
    }
    admin
        .elect_preferred(endpoints.clone(), everything)
        .await
        .expect("ElectLeaders when nothing is to do");
    // A partition that does not exist is a failure the roller reports.
    let unknown = (GUARDED.to_string(), GUARDED_PARTITIONS);
    let answer = connect(&endpoints[0])
        .await
        .elect_leaders(
            ElectionType::Preferred,
            Some(std::slice::from_ref(&unknown)),
        )
        .await
        .expect("ElectLeaders");
    let refused = answer[&unknown].clone().expect_err("an unknown partition");
    assert_eq!(
        refused.error(),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    let missing = admin
        .elect_preferred(
            endpoints.clone(),
            vec![(GUARDED.to_string(), GUARDED_PARTITIONS)],
        )
        .await;
    assert!(
        matches!(
            missing,
            Err(ref e) if e.refused().is_some_and(|r| r.api == "ElectLeaders")
        ),
        "{missing:?}"
    );

    // Every broker stops cleanly, together (the last voters need each other to finish).
    let stops: Vec<_> = running
        .iter_mut()
        .map(|r| tokio::spawn(r.take().expect("running").shutdown()))
        .collect();
    for stop in stops {
        stop.await.expect("shutdown task").expect("clean shutdown");
    }
}
