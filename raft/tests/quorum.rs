//! End-to-end behaviour of the quorum: elections, routing, failover, snapshots, observers
//! and cluster ids, with real TCP on 127.0.0.1 and temp dirs.

mod common;

use std::time::Duration;

use common::*;
use strom_raft::QuorumError;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn len_is(n: usize) -> impl FnMut(&std::sync::Arc<Journal>) -> bool {
    move |state| state.lines.len() == n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_a_leader_and_route_requests_from_every_node() {
    init_tracing();
    let voters = voters(&[1, 2, 3]);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (id, dir) in (1..=3).zip(&dirs) {
        nodes.push(start(config(id, &voters, dir.path())).await);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all).await;
    assert!(nodes.iter().filter(|n| n.is_leader()).count() == 1);

    for (i, node) in nodes.iter().enumerate() {
        let reply = node
            .request(format!("from-{}", node.node_id()), REQUEST_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(
            reply,
            Ok(i + 1),
            "request from node {} (leader {leader})",
            node.node_id()
        );
    }
    let expected = vec![
        "from-1".to_string(),
        "from-2".to_string(),
        "from-3".to_string(),
    ];
    for node in &nodes {
        let state = wait_state(node, "three lines", len_is(3)).await;
        assert_eq!(state.lines, expected);
        assert!(node.applied_index() >= 3);
    }
    // Every node shares the id the quorum generated.
    let cluster_id = nodes[0].cluster_id().expect("a generated cluster id");
    eventually("every node adopts the cluster id", || {
        nodes
            .iter()
            .all(|n| n.cluster_id().as_deref() == Some(cluster_id.as_str()))
    })
    .await;
    // A follower cannot propose directly.
    let follower = nodes.iter().find(|n| !n.is_leader()).unwrap();
    assert!(
        matches!(follower.propose("x".into()).await, Err(QuorumError::NotLeader { leader: Some(l) }) if l == leader)
    );
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_the_restarted_old_leader_catches_up_from_disk() {
    init_tracing();
    let voters = voters(&[1, 2, 3]);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (id, dir) in (1..=3).zip(&dirs) {
        nodes.push(start(config(id, &voters, dir.path())).await);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let old_leader = agreed_leader(&all).await;
    nodes[0]
        .request("before".into(), REQUEST_TIMEOUT)
        .await
        .unwrap()
        .unwrap();
    for node in &nodes {
        wait_state(node, "the first line", len_is(1)).await;
    }

    let old = nodes.remove((old_leader - 1) as usize);
    old.shutdown().await;
    drop(old);
    let survivors: Vec<&Node> = nodes.iter().collect();
    let new_leader = agreed_leader(&survivors).await;
    assert_ne!(new_leader, old_leader);
    // A decision on the new leader's state sees everything committed before it led.
    let leader_node = nodes
        .iter()
        .find(|n| n.node_id() == new_leader)
        .expect("the new leader runs");
    leader_node
        .caught_up_as_leader(REQUEST_TIMEOUT)
        .await
        .expect("the new leader applies an entry of its term");
    assert_eq!(leader_node.state().lines, vec!["before"]);
    let follower = nodes
        .iter()
        .find(|n| n.node_id() != new_leader)
        .expect("a follower runs");
    assert!(matches!(
        follower.caught_up_as_leader(REQUEST_TIMEOUT).await,
        Err(QuorumError::NotLeader { .. })
    ));
    assert_eq!(
        nodes[0]
            .request("after".into(), REQUEST_TIMEOUT)
            .await
            .unwrap(),
        Ok(2)
    );
    for node in &nodes {
        wait_state(node, "the second line", len_is(2)).await;
    }

    let restarted = start(config(
        old_leader,
        &voters,
        dirs[(old_leader - 1) as usize].path(),
    ))
    .await;
    let state = wait_state(&restarted, "catching up", len_is(2)).await;
    assert_eq!(state.lines, vec!["before", "after"]);
    nodes.push(restarted);
    let all: Vec<&Node> = nodes.iter().collect();
    agreed_leader(&all).await;
    for node in &nodes {
        node.shutdown().await;
    }
}

fn purged_index(dir: &std::path::Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("purged.json")).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["index"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_are_installed_on_a_lagging_node() {
    init_tracing();
    let voters = voters(&[1, 2, 3]);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs: Vec<_> = (1..=3)
        .zip(&dirs)
        .map(|(id, dir)| {
            let mut config = config(id, &voters, dir.path());
            config.snapshot_every_entries = 5;
            config
        })
        .collect();
    let mut nodes = Vec::new();
    for config in &configs {
        nodes.push(start(config.clone()).await);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all).await;
    // Stop a follower; it misses everything below.
    let lagging_id = if leader == 3 { 2 } else { 3 };
    let lagging = nodes.remove((lagging_id - 1) as usize);
    let lagging_index = lagging.applied_index();
    lagging.shutdown().await;
    drop(lagging);

    for i in 0..30 {
        assert_eq!(
            nodes[0]
                .request(format!("line-{i}"), REQUEST_TIMEOUT)
                .await
                .unwrap(),
            Ok(i + 1)
        );
    }
    let leader_dir = dirs[(leader - 1) as usize].path();
    eventually("the leader snapshots and purges its log", || {
        leader_dir.join("snapshot.json").exists()
            && purged_index(leader_dir).is_some_and(|i| i > lagging_index + 5)
    })
    .await;

    // The leader's log no longer reaches back to the lagging node: it must get the snapshot.
    let restarted = start(configs[(lagging_id - 1) as usize].clone()).await;
    let state = wait_state(&restarted, "catching up by snapshot", len_is(30)).await;
    assert_eq!(state.lines.last().map(String::as_str), Some("line-29"));
    assert!(dirs[(lagging_id - 1) as usize]
        .path()
        .join("snapshot.json")
        .exists());
    nodes.push(restarted);

    // Everyone restarts; state comes back from snapshot + log before any election.
    for node in &nodes {
        node.shutdown().await;
    }
    nodes.clear();
    for config in &configs {
        let node = start(config.clone()).await;
        assert!(
            node.applied_index() > 0,
            "node {} recovered from its snapshot",
            node.node_id()
        );
        nodes.push(node);
    }
    for node in &nodes {
        wait_state(node, "full recovery", len_is(30)).await;
    }
    assert_eq!(
        nodes[1]
            .request("more".into(), REQUEST_TIMEOUT)
            .await
            .unwrap(),
        Ok(31)
    );
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_without_a_listener_leads_and_recovers_after_restart() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let voters = [(7u64, "unused:1".to_string())].into_iter().collect();
    let mut config = config(7, &voters, dir.path());
    config.listen = None;
    config.snapshot_every_entries = 3;

    let node = start(config.clone()).await;
    eventually("the single voter leads", || node.is_leader()).await;
    assert!(node.cluster_id().is_some());
    for i in 0..5 {
        let state = node.propose(format!("p{i}")).await.unwrap();
        assert_eq!(state.lines.len(), i + 1);
    }
    assert_eq!(
        node.request("r".into(), REQUEST_TIMEOUT).await.unwrap(),
        Ok(6)
    );
    let cluster_id = node.cluster_id();
    node.shutdown().await;
    drop(node);

    let node = start(config).await;
    let state = wait_state(&node, "recovery", len_is(6)).await;
    assert_eq!(state.lines, vec!["p0", "p1", "p2", "p3", "p4", "r"]);
    assert_eq!(node.cluster_id(), cluster_id);
    eventually("leading again", || node.is_leader()).await;
    assert_eq!(node.propose("again".into()).await.unwrap().lines.len(), 7);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_follows_the_state_and_can_send_requests() {
    init_tracing();
    let voters = voters(&[1, 2, 3]);
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (id, dir) in (1..=3).zip(&dirs) {
        nodes.push(start(config(id, &voters, dir.path())).await);
    }
    let observer = start(config(100, &voters, dirs[3].path())).await;
    assert!(!observer.is_leader());
    assert!(matches!(
        observer.propose("no".into()).await,
        Err(QuorumError::NotLeader { .. })
    ));
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all).await;

    nodes[0]
        .request("voter".into(), REQUEST_TIMEOUT)
        .await
        .unwrap()
        .unwrap();
    wait_state(&observer, "the voter's line", len_is(1)).await;
    assert_eq!(
        observer
            .request("observer".into(), REQUEST_TIMEOUT)
            .await
            .unwrap(),
        Ok(2)
    );
    let state = wait_state(&observer, "its own line", len_is(2)).await;
    assert_eq!(state.lines, vec!["voter", "observer"]);
    eventually("the observer learns the leader", || {
        observer.leader() == Some(leader)
    })
    .await;
    assert_eq!(observer.cluster_id(), nodes[0].cluster_id());

    observer.shutdown().await;
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_from_another_cluster_is_refused_and_fails_fatally() {
    init_tracing();
    let voters = voters(&[1, 2, 3]);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (id, dir) in (1..=3).zip(&dirs) {
        let mut config = config(id, &voters, dir.path());
        config.cluster_id = Some(if id == 3 {
            "beta".to_string()
        } else {
            "alpha".to_string()
        });
        nodes.push(start(config).await);
    }
    let stranger = nodes.pop().unwrap();
    match with_timeout(stranger.fatal()).await {
        QuorumError::ClusterIdMismatch { local, remote } => {
            assert_eq!(local, "beta");
            assert_eq!(remote, "alpha");
        }
        other => panic!("unexpected fatal error {other}"),
    }
    let healthy: Vec<&Node> = nodes.iter().collect();
    agreed_leader(&healthy).await;
    assert_eq!(
        nodes[1]
            .request("still works".into(), REQUEST_TIMEOUT)
            .await
            .unwrap(),
        Ok(1)
    );
    for node in &nodes {
        wait_state(node, "the line", len_is(1)).await;
        assert_eq!(node.cluster_id().as_deref(), Some("alpha"));
    }
    // The healthy nodes only logged the refusals; they are not fatal.
    let not_fatal = tokio::time::timeout(Duration::from_millis(200), nodes[0].fatal()).await;
    assert!(not_fatal.is_err());
    stranger.shutdown().await;
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection_and_leave_the_node_running() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let voters = voters(&[1]);
    let node = start(config(1, &voters, dir.path())).await;
    eventually("the single voter leads", || node.is_leader()).await;

    // Valid framing, garbage JSON; then a length header far beyond the frame limit.
    let bad_frames: [Vec<u8>; 2] = [
        [&5u32.to_be_bytes()[..], b"{oops"].concat(),
        [&u32::MAX.to_be_bytes()[..], b"xx"].concat(),
    ];
    for frame in bad_frames {
        let mut stream = tokio::net::TcpStream::connect(&voters[&1]).await.unwrap();
        stream.write_all(&frame).await.unwrap();
        let mut buf = [0u8; 16];
        let read = with_timeout(stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the node closes the connection: {read:?}"
        );
    }
    assert_eq!(
        node.propose("alive".into()).await.unwrap().lines,
        vec!["alive"]
    );
    node.shutdown().await;
}
