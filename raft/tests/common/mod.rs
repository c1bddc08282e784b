//! Shared fixtures for the quorum tests: a journal state, a handler that proposes, and
//! helpers to start nodes on free ports and wait for conditions.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strom_raft::{Quorum, QuorumConfig, ReplicatedState, RequestHandler};

/// The test state: every applied command appended to a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub lines: Vec<String>,
}

impl ReplicatedState for Journal {
    type Command = String;
    fn apply(&mut self, command: &String) {
        self.lines.push(command.clone());
    }
}

/// Proposes the request on the node it runs on (always the leader) and replies with the
/// journal length after it, or the error.
#[derive(Default)]
pub struct Appender {
    quorum: OnceLock<Weak<Quorum<Journal, Appender>>>,
}

impl RequestHandler for Appender {
    type Request = String;
    type Reply = Result<usize, String>;

    async fn handle(&self, request: String) -> Result<usize, String> {
        let quorum = self
            .quorum
            .get()
            .and_then(Weak::upgrade)
            .ok_or("handler not bound")?;
        quorum
            .propose(request)
            .await
            .map(|state| state.lines.len())
            .map_err(|e| e.to_string())
    }
}

pub type Node = Arc<Quorum<Journal, Appender>>;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub use strom_test_support::free_port;

pub fn voters(ids: &[u64]) -> BTreeMap<u64, String> {
    ids.iter()
        .map(|id| (*id, format!("127.0.0.1:{}", free_port())))
        .collect()
}

pub fn config(node_id: u64, voters: &BTreeMap<u64, String>, dir: &Path) -> QuorumConfig {
    let mut config = QuorumConfig::new(node_id, voters.clone(), dir.to_path_buf());
    config.listen = voters.get(&node_id).and_then(|addr| addr.parse().ok());
    config.election_timeout_ms = (400, 800);
    config.heartbeat_interval_ms = 100;
    config.snapshot_every_entries = 1000;
    config
}

pub async fn start(config: QuorumConfig) -> Node {
    let handler = Arc::new(Appender::default());
    let node = Quorum::start(config, Arc::clone(&handler)).await.unwrap();
    handler.quorum.set(Arc::downgrade(&node)).ok().unwrap();
    node
}

pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds or `DEADLINE` passes.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut condition: F) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node agrees on one leader that is among them, and returns it.
pub async fn agreed_leader(nodes: &[&Node]) -> u64 {
    let ids: Vec<u64> = nodes.iter().map(|n| n.node_id()).collect();
    let mut leader = None;
    eventually("an agreed leader", || {
        let first = nodes[0].leader();
        leader = first;
        first.is_some_and(|l| ids.contains(&l)) && nodes.iter().all(|n| n.leader() == first)
    })
    .await;
    leader.unwrap()
}

/// Waits (via `subscribe`) until the node's state satisfies `predicate`.
pub async fn wait_state(
    node: &Node,
    what: &str,
    predicate: impl FnMut(&Arc<Journal>) -> bool,
) -> Arc<Journal> {
    let mut rx = node.subscribe();
    let result = tokio::time::timeout(DEADLINE, rx.wait_for(predicate)).await;
    match result {
        Ok(Ok(state)) => Arc::clone(&state),
        _ => panic!(
            "node {} timed out waiting for {what}; state {:?}",
            node.node_id(),
            node.state()
        ),
    }
}

pub async fn with_timeout<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .expect("timed out")
}
