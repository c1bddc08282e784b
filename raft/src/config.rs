//! The settings one quorum node starts with.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::network::transport::Transport;

/// How one node takes part in the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's id (Kafka's `node.id`).
    pub node_id: u64,
    /// The voters, Kafka's `controller.quorum.voters`: id -> "host:port" of their CONTROLLER
    /// listener. A node whose id is not here is an observer.
    pub voters: BTreeMap<u64, String>,
    /// Where this node serves quorum RPCs (its CONTROLLER listener). `None` for an observer,
    /// and allowed for a single voter that has no peers.
    pub listen: Option<SocketAddr>,
    /// Raft log, vote, snapshots and `cluster.id` live here.
    pub dir: PathBuf,
    /// The cluster id from `meta.properties` / `format`, if known.
    pub cluster_id: Option<String>,
    /// Randomized election timeout range, milliseconds.
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_interval_ms: u64,
    /// Take a snapshot (and purge the log behind it) after this many applied entries.
    pub snapshot_every_entries: u64,
    /// Secures quorum connections both ways (TLS, peer checks); `None` is plain TCP.
    pub transport: Option<Arc<dyn Transport>>,
}

impl QuorumConfig {
    /// A config with the timing defaults Strom uses in production.
    pub fn new(node_id: u64, voters: BTreeMap<u64, String>, dir: PathBuf) -> Self {
        QuorumConfig {
            node_id,
            voters,
            listen: None,
            dir,
            cluster_id: None,
            election_timeout_ms: (1000, 2000),
            heartbeat_interval_ms: 200,
            snapshot_every_entries: 1000,
            transport: None,
        }
    }

    pub fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }

    /// Voters refusing this node's cluster id needed before it gives up: a majority, so one
    /// misconfigured peer cannot take healthy nodes down with it.
    pub(crate) fn refusals_for_fatal(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}
