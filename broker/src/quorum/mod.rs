//! The metadata quorum: the metadata record log replicated by openraft (the `strom-raft`
//! crate) among the controller voters of `controller.quorum.voters`, the active
//! controller that decides on the quorum leader (`service`), and a broker's side of it:
//! registration, heartbeats and controlled shutdown (`membership`), and auto-creation of
//! topics submitted to the controller in batches (`auto_create`).

pub mod auto_create;
pub mod membership;
pub mod requests;
pub mod service;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use strom_raft::{QuorumConfig, QuorumError, ReplicatedState};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::error::ApiError;
use crate::metadata::{MetadataImage, MetadataRecord};
pub use requests::{ControllerOk, ControllerReply, ControllerRequest};
pub use service::ControllerService;

/// One raft log entry is one metadata change: the records land together or not at all.
impl ReplicatedState for MetadataImage {
    type Command = Vec<MetadataRecord>;

    fn apply(&mut self, command: &Vec<MetadataRecord>) {
        for record in command {
            MetadataImage::apply(self, record);
        }
    }
}

pub type MetadataQuorum = strom_raft::Quorum<MetadataImage, ControllerService>;

/// Entries between metadata snapshots; the log behind a snapshot is purged.
const SNAPSHOT_EVERY_ENTRIES: u64 = 1000;

/// The broker's view of the metadata: the latest image its quorum node applied.
#[derive(Clone)]
pub struct Metadata {
    quorum: Arc<MetadataQuorum>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("applied", &self.quorum.applied_index())
            .field("leader", &self.quorum.leader())
            .finish()
    }
}

impl Metadata {
    pub fn new(quorum: Arc<MetadataQuorum>) -> Metadata {
        Metadata { quorum }
    }

    /// The current image; cheap to take, never changes under the holder.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.state()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.quorum.subscribe()
    }

    pub fn quorum(&self) -> &Arc<MetadataQuorum> {
        &self.quorum
    }

    /// Whether this node is the active controller (the quorum leader).
    pub fn is_active_controller(&self) -> bool {
        self.quorum.is_leader()
    }

    /// The active controller's node id, if known.
    pub fn active_controller(&self) -> Option<i32> {
        self.quorum.leader().map(|l| l as i32)
    }

    /// Asks the active controller, wherever it is, and waits for its decision.
    pub async fn request(&self, request: ControllerRequest, timeout: Duration) -> ControllerReply {
        match self.quorum.request(request, timeout).await {
            Ok(reply) => reply,
            Err(e) => Err(quorum_error(e)),
        }
    }
}

/// A quorum failure as the Kafka error a client understands.
pub fn quorum_error(e: QuorumError) -> ApiError {
    let code = match &e {
        QuorumError::NotLeader { .. } => ResponseError::NotController,
        QuorumError::Timeout | QuorumError::Remote(_) | QuorumError::Shutdown => {
            ResponseError::RequestTimedOut
        }
        QuorumError::Io { .. } | QuorumError::Storage(_) => ResponseError::KafkaStorageError,
        _ => ResponseError::UnknownServerError,
    };
    ApiError::new(code, format!("metadata quorum: {e}"))
}

/// Starts this node's part of the quorum: a voter (raft member, serving the controller
/// listener when the quorum has peers) or an observer that follows a voter.
pub async fn start(
    config: &BrokerConfig,
    dir: &Path,
    cluster_id: Option<String>,
    transport: Option<Arc<dyn strom_raft::Transport>>,
    client_quotas: Arc<crate::quota::ClientQuotas>,
) -> Result<(Arc<MetadataQuorum>, Arc<ControllerService>), QuorumError> {
    let voters: BTreeMap<u64, String> = config
        .cluster
        .voters
        .values()
        .map(|v| (v.id as u64, v.address()))
        .collect();
    let mut qc = QuorumConfig::new(config.node_id as u64, voters, dir.to_path_buf());
    qc.cluster_id = cluster_id;
    qc.transport = transport;
    if let Some(l) = &config.controller_listener {
        let addr = format!("{}:{}", l.bind_host(), l.port);
        let resolved = tokio::net::lookup_host(&addr)
            .await
            .map_err(|e| {
                QuorumError::Config(format!("cannot resolve controller listener {addr}: {e}"))
            })?
            .next()
            .ok_or_else(|| {
                QuorumError::Config(format!("controller listener {addr} resolves to nothing"))
            })?;
        qc.listen = Some(resolved);
    }
    let election = config.cluster.election_timeout_ms;
    qc.election_timeout_ms = (election, election * 2);
    qc.heartbeat_interval_ms = (election / 5).max(10);
    qc.snapshot_every_entries = SNAPSHOT_EVERY_ENTRIES;
    let bootstrap = crate::metadata::bootstrap::read(dir)
        .map_err(|e| QuorumError::Config(format!("cannot read the bootstrap records: {e}")))?;
    if !bootstrap.is_empty() && !config.cluster.voters.contains_key(&config.node_id) {
        tracing::info!(
            "this node is not a controller voter: the bootstrap records of `format` (--add-scram) are only used by the voter that leads first"
        );
    }
    let service = Arc::new(ControllerService::new(
        config.clone(),
        bootstrap,
        client_quotas,
    ));
    let quorum = MetadataQuorum::start(qc, service.clone()).await?;
    service.attach(&quorum);
    tokio::spawn(service::run_duties(service.clone()));
    Ok((quorum, service))
}
