//! Tests of the harness itself that do not need a clustered broker: process control and
//! the checker on a single node, namespace setup, isolation and teardown.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{assert_clean, netns_available, Timer, RATE};
use strom_e2e_cluster::netns::{run, Topology};
use strom_e2e_cluster::{verify, Cluster, ClusterOptions, LoadGenerator, LoadOptions};

/// One broker with single-replica defaults, so it runs before replication exists.
fn single_node() -> ClusterOptions {
    ClusterOptions::default()
        .with_property("default.replication.factor", "1")
        .with_property("offsets.topic.replication.factor", "1")
        .with_property("min.insync.replicas", "1")
}

#[test]
fn single_broker_process_control_and_checker() {
    let _timer = Timer::start("single_broker_process_control_and_checker");
    let mut c = Cluster::start(1, single_node()).unwrap();
    assert_eq!(c.admin_get(0, "/ready").unwrap().0, 200);
    c.create_topic("h", 2, 1, &[]).unwrap();
    assert_eq!(c.leader_of("h", 0).unwrap(), Some(0));

    let load = LoadGenerator::start(&c.bootstrap(), "h", LoadOptions::new(1, RATE, 2)).unwrap();
    load.wait_more_acks(100, Duration::from_secs(30)).unwrap();

    let pid = c.pid(0).unwrap();
    let status = c.kill9(0).unwrap();
    assert!(
        !status.success(),
        "kill -9 ends the broker by signal: {status}"
    );
    assert!(!c.is_running(0));
    assert!(
        c.admin_get(0, "/ready").is_err(),
        "nothing answers after kill -9"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(matches!(
        c.kill9(0),
        Err(strom_e2e_cluster::HarnessError::NotRunning(0))
    ));

    c.restart(0).unwrap();
    c.wait_ready(0).unwrap();
    load.wait_more_acks(100, Duration::from_secs(30)).unwrap();

    let status = c.sigterm(0).unwrap();
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    c.restart(0).unwrap();
    c.wait_ready(0).unwrap();
    load.wait_more_acks(100, Duration::from_secs(30)).unwrap();

    let history = load.stop().unwrap();
    let report = verify(&mut c, "h", 2, &history).unwrap();
    assert_eq!(report.replicas_compared, 2, "{report}");
    assert_clean(&report, &history);
    assert!(c.running().is_empty(), "verify stops the brokers");

    let log_dir = c.log_dir(0).unwrap().to_path_buf();
    let pid = {
        c.restart(0).unwrap();
        c.pid(0).unwrap()
    };
    drop(c);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "drop kills brokers"
    );
    if std::env::var("STROM_E2E_KEEP").is_err() {
        assert!(!log_dir.exists(), "drop removes the data dirs");
    }
}

/// Connects from inside namespace `ns` to `ip:port` with bash's /dev/tcp, 2 s at most.
fn connects_from(ns: &str, ip: &str, port: u16) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "2", "bash", "-c"])
        .arg(format!("exec 3<>/dev/tcp/{ip}/{port}"))
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn netns_isolation_cuts_peers_but_not_the_client() {
    let _timer = Timer::start("netns_isolation_cuts_peers_but_not_the_client");
    if !netns_available("netns_isolation_cuts_peers_but_not_the_client") {
        return;
    }
    let c = Cluster::start(
        2,
        ClusterOptions::namespaces()
            .with_property("default.replication.factor", "1")
            .with_property("min.insync.replicas", "1"),
    )
    .unwrap();
    let topo = c.topology().unwrap();
    let (ns0, ns1) = (topo.namespace(0).to_string(), topo.namespace(1).to_string());
    let (ip0, ip1) = (topo.broker_ip(0).to_string(), topo.broker_ip(1).to_string());
    let bridge = topo.bridge().to_string();
    assert!(connects_from(&ns0, &ip1, 9092), "peers reach each other");
    assert!(connects_from(&ns1, &ip0, 9092));

    c.isolate(0).unwrap();
    assert!(
        !connects_from(&ns0, &ip1, 9092),
        "isolated broker cannot reach its peer"
    );
    assert!(
        !connects_from(&ns1, &ip0, 9092),
        "peer cannot reach the isolated broker"
    );
    assert!(
        c.admin_get(0, "/metrics").is_ok(),
        "the client in the root namespace still reaches the isolated broker"
    );
    assert!(
        c.wire(0).is_ok(),
        "Kafka port reachable from the client too"
    );

    c.heal(0).unwrap();
    assert!(connects_from(&ns0, &ip1, 9092), "heal restores traffic");
    assert!(connects_from(&ns1, &ip0, 9092));

    drop(c);
    let namespaces = run("ip", &["netns", "list"]).unwrap();
    assert!(
        !namespaces.contains(&ns0) && !namespaces.contains(&ns1),
        "{namespaces}"
    );
    assert!(
        run("ip", &["link", "show", &bridge]).is_err(),
        "bridge removed"
    );
}

#[test]
fn netns_topology_is_removed_when_a_test_panics() {
    let _timer = Timer::start("netns_topology_is_removed_when_a_test_panics");
    if !netns_available("netns_topology_is_removed_when_a_test_panics") {
        return;
    }
    let (names_tx, names_rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let topo = Topology::create(2).unwrap();
        names_tx
            .send((
                topo.namespace(0).to_string(),
                topo.namespace(1).to_string(),
                topo.bridge().to_string(),
            ))
            .unwrap();
        panic!("deliberate panic with a live topology");
    })
    .join();
    assert!(outcome.is_err());
    let (ns0, ns1, bridge) = names_rx.recv().unwrap();
    let namespaces = run("ip", &["netns", "list"]).unwrap();
    assert!(
        !namespaces.contains(&ns0) && !namespaces.contains(&ns1),
        "{namespaces}"
    );
    assert!(
        run("ip", &["link", "show", &bridge]).is_err(),
        "bridge removed"
    );
}
