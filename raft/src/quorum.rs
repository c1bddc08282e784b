//! The quorum handle: starts a voter (an openraft node) or an observer and answers queries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::metrics::WaitError;
use openraft::{BasicNode, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::applied::Publisher;
use crate::cluster::ClusterIdentity;
use crate::config::QuorumConfig;
use crate::error::QuorumError;
use crate::network::client::Peers;
use crate::network::raft_network::Network;
use crate::network::server;
use crate::network::wire::{RequestBody, ResponseBody, RpcRequest, RpcResponse};
use crate::progress::{now_ms, NodeProgress, ProgressTracker, QuorumDescription};
use crate::storage::log_store::LogStore;
use crate::storage::state_machine::StateMachineStore;
use crate::types::Raft;
use crate::{observer, ReplicatedState, RequestHandler};

/// Longest a long poll from an observer is held open.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);
const NO_LEADER: u64 = u64::MAX;

/// One node's membership in the metadata quorum. Create with [`Quorum::start`], share as
/// `Arc`, and call [`Quorum::shutdown`] before dropping it (its tasks hold it until then).
pub struct Quorum<S: ReplicatedState, H: RequestHandler> {
    pub(crate) config: QuorumConfig,
    pub(crate) handler: Arc<H>,
    /// `None` on an observer.
    pub(crate) raft: Option<Raft<S>>,
    pub(crate) publisher: Arc<Publisher<S>>,
    pub(crate) cluster: Arc<ClusterIdentity>,
    pub(crate) peers: Arc<Peers<S, H>>,
    /// Other nodes' progress as seen from here (read when this node leads).
    progress: Arc<ProgressTracker>,
    /// The leader an observer last heard of.
    pub(crate) observed_leader: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<S: ReplicatedState, H: RequestHandler> Quorum<S, H> {
    /// Opens the node's storage, starts serving quorum RPCs (voters with a `listen` address)
    /// and joins the quorum. A voter whose storage is pristine initializes the quorum with
    /// every configured voter; openraft documents that initializing several nodes with the
    /// same membership is safe, so no node has to wait for a designated one.
    pub async fn start(config: QuorumConfig, handler: Arc<H>) -> Result<Arc<Self>, QuorumError> {
        if config.voters.is_empty() {
            return Err(QuorumError::Config("no quorum voters configured".into()));
        }
        if config.is_voter() && config.voters.len() > 1 && config.listen.is_none() {
            return Err(QuorumError::Config(format!(
                "node {} is one of several voters and needs a listen address",
                config.node_id
            )));
        }
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| QuorumError::io(format!("creating {}", config.dir.display()), e))?;
        let cluster = Arc::new(ClusterIdentity::load(
            config.node_id,
            &config.dir,
            config.cluster_id.clone(),
            config.refusals_for_fatal(),
        )?);
        let publisher = Arc::new(Publisher::new());
        let peers = Arc::new(Peers::new(
            config.node_id,
            config.voters.clone(),
            Arc::clone(&cluster),
            config.transport.clone(),
        ));
        let listener = match (config.is_voter(), config.listen) {
            (true, Some(addr)) => Some(TcpListener::bind(addr).await.map_err(|e| {
                QuorumError::io(format!("binding the quorum listener on {addr}"), e)
            })?),
            _ => None,
        };

        let progress = Arc::new(ProgressTracker::default());
        let (raft, pristine) = if config.is_voter() {
            let log_store = LogStore::<S>::open(&config.dir)?;
            let pristine = log_store.is_pristine()?;
            let state_machine = StateMachineStore::open(&config.dir, Arc::clone(&publisher))?;
            let network = Network {
                peers: Arc::clone(&peers),
                progress: Arc::clone(&progress),
            };
            let raft = Raft::new(
                config.node_id,
                Arc::new(raft_config(&config)?),
                network,
                log_store,
                state_machine,
            )
            .await
            .map_err(|e| QuorumError::Raft(format!("starting raft: {e}")))?;
            (Some(raft), pristine)
        } else {
            (None, false)
        };

        let quorum = Arc::new(Quorum {
            config,
            handler,
            raft,
            publisher,
            cluster,
            peers,
            progress,
            observed_leader: AtomicU64::new(NO_LEADER),
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::new();
        if let Some(listener) = listener {
            tasks.push(tokio::spawn(server::serve(
                listener,
                quorum.config.transport.clone(),
                Arc::downgrade(&quorum),
                quorum.shutdown.clone(),
            )));
        }
        if let Some(raft) = &quorum.raft {
            tasks.push(tokio::spawn(watch_raft(
                quorum.config.node_id,
                raft.clone(),
                Arc::clone(&quorum.cluster),
                quorum.shutdown.clone(),
            )));
            if pristine {
                quorum.initialize(raft).await?;
            }
        } else {
            tasks.push(tokio::spawn(observer::follow(
                Arc::downgrade(&quorum),
                quorum.shutdown.clone(),
            )));
        }
        if let Ok(mut slot) = quorum.tasks.lock() {
            slot.extend(tasks);
        }
        tracing::info!(
            node = quorum.config.node_id,
            voter = quorum.config.is_voter(),
            voters = ?quorum.config.voters,
            cluster_id = ?quorum.cluster.get(),
            "quorum node started"
        );
        Ok(quorum)
    }

    async fn initialize(&self, raft: &Raft<S>) -> Result<(), QuorumError> {
        let lowest_voter = self.config.voters.keys().next().copied();
        if lowest_voter == Some(self.config.node_id) {
            self.cluster.generate_if_missing()?;
        }
        let members: BTreeMap<u64, BasicNode> = self
            .config
            .voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        tracing::info!(node = self.config.node_id, voters = ?self.config.voters, "initializing a fresh quorum");
        match raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(QuorumError::Raft(format!("initializing the quorum: {e}"))),
        }
    }

    /// The latest applied state.
    pub fn state(&self) -> Arc<S> {
        self.publisher.current().state
    }

    /// Sees every applied change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<S>> {
        self.publisher.subscribe_state()
    }

    /// The log index [`Self::state`] reflects (0 before anything was applied).
    pub fn applied_index(&self) -> u64 {
        self.publisher.current().index
    }

    pub fn node_id(&self) -> u64 {
        self.config.node_id
    }

    /// The current leader as far as this node knows.
    pub fn leader(&self) -> Option<u64> {
        match &self.raft {
            Some(raft) => raft.metrics().borrow().current_leader,
            None => {
                Some(self.observed_leader.load(Ordering::Relaxed)).filter(|id| *id != NO_LEADER)
            }
        }
    }

    pub fn is_leader(&self) -> bool {
        self.raft.is_some() && self.leader() == Some(self.config.node_id)
    }

    pub fn cluster_id(&self) -> Option<String> {
        self.cluster.get()
    }

    /// Leader only: waits until this node has applied an entry of its own term (every new
    /// leader appends one first), so [`Self::state`] holds everything committed before it
    /// became leader. A decision made on the state before that could be built on an older
    /// state than clients were already told about, and refuse a request built on the
    /// current one. Kafka's controller likewise becomes active only once it has replayed
    /// the log up to the start of its epoch.
    pub async fn caught_up_as_leader(&self, timeout: Duration) -> Result<(), QuorumError> {
        let Some(raft) = self.raft.as_ref().filter(|_| self.is_leader()) else {
            return Err(QuorumError::NotLeader {
                leader: self.leader(),
            });
        };
        let me = self.config.node_id;
        raft.wait(Some(timeout))
            .metrics(
                |m| {
                    m.current_leader == Some(me)
                        && m.last_applied
                            .is_some_and(|applied| applied.leader_id.term == m.current_term)
                },
                "the leader applied an entry of its own term",
            )
            .await
            .map(|_| ())
            .map_err(|e| match e {
                WaitError::Timeout(..) => QuorumError::Timeout,
                WaitError::ShuttingDown => QuorumError::Shutdown,
            })
    }

    /// Leader only: appends `command`, waits until it is committed and applied here, and
    /// returns the state after it (which may include later commands too).
    pub async fn propose(&self, command: S::Command) -> Result<Arc<S>, QuorumError> {
        let Some(raft) = &self.raft else {
            return Err(QuorumError::NotLeader {
                leader: self.leader(),
            });
        };
        match raft.client_write(command).await {
            Ok(_) => Ok(self.state()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(QuorumError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(RaftError::APIError(e)) => Err(QuorumError::Raft(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(self
                .cluster
                .fatal_error()
                .unwrap_or(QuorumError::Raft(e.to_string()))),
        }
    }

    /// Runs `request` on the current leader's handler: here if this node leads, otherwise over
    /// RPC, following leader changes until `timeout` passes.
    pub async fn request(
        &self,
        request: H::Request,
        timeout: Duration,
    ) -> Result<H::Reply, QuorumError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let others: Vec<u64> = self
            .config
            .voters
            .keys()
            .copied()
            .filter(|id| *id != self.config.node_id)
            .collect();
        let mut hint: Option<u64> = None;
        let mut attempt = 0usize;
        loop {
            if let Some(error) = self.cluster.fatal_error() {
                return Err(error);
            }
            if self.shutdown.is_cancelled() {
                return Err(QuorumError::Shutdown);
            }
            if self.is_leader() {
                return Ok(self.handler.handle(request).await);
            }
            let target = hint
                .take()
                .or_else(|| self.leader())
                .filter(|id| *id != self.config.node_id && self.config.voters.contains_key(id))
                .or_else(|| (!others.is_empty()).then(|| others[attempt % others.len()]));
            attempt += 1;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(QuorumError::Timeout);
            }
            if let Some(target) = target {
                let body = RequestBody::Forward {
                    request: request.clone(),
                    hop: false,
                    timeout_ms: remaining.as_millis().try_into().unwrap_or(u64::MAX),
                };
                match self.peers.call(target, body, remaining).await {
                    Ok(ResponseBody::Forwarded(reply)) => return Ok(reply),
                    Ok(ResponseBody::NotLeader { leader }) => hint = leader,
                    Ok(other) => {
                        tracing::debug!(target, response = %other.describe(), "quorum request not served")
                    }
                    Err(e) => {
                        tracing::debug!(target, error = %e, "quorum request failed; retrying")
                    }
                }
            }
            let backoff =
                Duration::from_millis(20u64 << attempt.min(5)).min(Duration::from_millis(500));
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(backoff.min(remaining)).await;
        }
    }

    /// Resolves if this node learns it belongs to another cluster or its storage fails.
    pub async fn fatal(&self) -> QuorumError {
        self.cluster.fatal().await
    }

    /// Stops serving, stops raft and waits for this node's tasks. Idempotent.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        if let Some(raft) = &self.raft {
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(error = %e, "raft did not shut down cleanly");
            }
        }
        let tasks = self
            .tasks
            .lock()
            .map(|mut tasks| std::mem::take(&mut *tasks))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        self.peers.clear();
        tracing::info!(node = self.config.node_id, "quorum node stopped");
    }

    /// The quorum as this node sees it while it leads (`None` otherwise): its term, commit
    /// point, and every voter's and recent observer's progress.
    pub fn describe(&self) -> Option<QuorumDescription> {
        let raft = self.raft.as_ref()?;
        let metrics = raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.config.node_id) {
            return None;
        }
        let committed_index = metrics.last_applied.map(|id| id.index);
        let now = now_ms();
        let voters = metrics
            .membership_config
            .voter_ids()
            .map(|id| {
                if id == self.config.node_id {
                    NodeProgress {
                        node_id: id,
                        matched_index: metrics.last_log_index,
                        last_contact_ms: now,
                        last_caught_up_ms: now,
                    }
                } else {
                    let mut progress = self.progress.voter(id);
                    // openraft's own matched index is authoritative where it has one.
                    if let Some(Some(matched)) =
                        metrics.replication.as_ref().and_then(|r| r.get(&id))
                    {
                        progress.matched_index = Some(matched.index);
                    }
                    progress
                }
            })
            .collect();
        Some(QuorumDescription {
            leader_id: self.config.node_id,
            term: metrics.current_term,
            committed_index,
            voters,
            observers: self.progress.recent_observers(),
        })
    }

    /// Answers one RPC from a peer.
    pub(crate) async fn serve_rpc(&self, request: RpcRequest<S, H>) -> RpcResponse<S, H> {
        if let RequestBody::FetchState { after_index, .. } = &request.body {
            if !self.config.voters.contains_key(&request.from) {
                self.progress
                    .observer_polled(request.from, *after_index, self.applied_index());
            }
        }
        let body = match self
            .cluster
            .check_incoming(request.cluster_id.as_deref(), request.from)
        {
            Err(_) => ResponseBody::Refused,
            Ok(()) => self.dispatch(request.body).await,
        };
        RpcResponse {
            cluster_id: self.cluster.get(),
            body,
        }
    }

    async fn dispatch(&self, body: RequestBody<S, H>) -> ResponseBody<S, H> {
        let not_voter = || {
            ResponseBody::Error(format!(
                "node {} is not a quorum voter",
                self.config.node_id
            ))
        };
        match body {
            RequestBody::AppendEntries(rpc) => match &self.raft {
                Some(raft) => ResponseBody::AppendEntries(raft.append_entries(rpc).await),
                None => not_voter(),
            },
            RequestBody::Vote(rpc) => match &self.raft {
                Some(raft) => ResponseBody::Vote(raft.vote(rpc).await),
                None => not_voter(),
            },
            RequestBody::InstallSnapshot(rpc) => match &self.raft {
                Some(raft) => ResponseBody::InstallSnapshot(raft.install_snapshot(rpc).await),
                None => not_voter(),
            },
            RequestBody::FullSnapshot { vote, snapshot } => match &self.raft {
                Some(raft) => ResponseBody::FullSnapshot(
                    raft.install_full_snapshot(vote, snapshot.to_openraft())
                        .await,
                ),
                None => not_voter(),
            },
            RequestBody::Forward {
                request,
                hop,
                timeout_ms,
            } => {
                self.serve_forward(request, hop, Duration::from_millis(timeout_ms))
                    .await
            }
            RequestBody::FetchState {
                after_index,
                wait_ms,
            } => {
                self.serve_fetch(
                    after_index,
                    Duration::from_millis(wait_ms).min(MAX_FETCH_WAIT),
                )
                .await
            }
        }
    }

    /// Handles a forwarded request if we lead; a voter relays it once to the leader it knows.
    async fn serve_forward(
        &self,
        request: H::Request,
        hop: bool,
        timeout: Duration,
    ) -> ResponseBody<S, H> {
        if self.is_leader() {
            return ResponseBody::Forwarded(self.handler.handle(request).await);
        }
        let leader = self.leader();
        match leader {
            Some(leader) if !hop && leader != self.config.node_id => {
                let body = RequestBody::Forward {
                    request,
                    hop: true,
                    timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
                };
                match self.peers.call(leader, body, timeout).await {
                    Ok(response) => response,
                    Err(e) => {
                        tracing::debug!(leader, error = %e, "relaying a quorum request to the leader failed");
                        ResponseBody::NotLeader {
                            leader: Some(leader),
                        }
                    }
                }
            }
            _ => ResponseBody::NotLeader { leader },
        }
    }

    async fn serve_fetch(&self, after_index: u64, wait: Duration) -> ResponseBody<S, H> {
        let mut applied = self.publisher.subscribe_applied();
        let _ = tokio::time::timeout(
            wait,
            applied.wait_for(|applied| applied.index > after_index),
        )
        .await;
        let current = applied.borrow().clone();
        ResponseBody::State {
            applied_index: current.index,
            leader: self.leader(),
            state: (current.index > after_index).then(|| (*current.state).clone()),
        }
    }
}

fn raft_config(config: &QuorumConfig) -> Result<openraft::Config, QuorumError> {
    let (election_min, election_max) = config.election_timeout_ms;
    let every = config.snapshot_every_entries.max(1);
    openraft::Config {
        cluster_name: "strom-metadata".to_string(),
        election_timeout_min: election_min,
        election_timeout_max: election_max,
        heartbeat_interval: config.heartbeat_interval_ms,
        // Whole snapshots travel in one message; give them time.
        install_snapshot_timeout: election_max.max(10_000),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(every),
        // Keep about one snapshot interval of log so briefly lagging voters catch up by
        // replication rather than by snapshot.
        max_in_snapshot_log_to_keep: every,
        ..Default::default()
    }
    .validate()
    .map_err(|e| QuorumError::Config(format!("raft timing: {e}")))
}

/// Logs leader changes and turns a stopped raft core (storage failure) into a fatal error.
async fn watch_raft<S: ReplicatedState>(
    node_id: u64,
    raft: Raft<S>,
    cluster: Arc<ClusterIdentity>,
    shutdown: CancellationToken,
) {
    let mut metrics = raft.metrics();
    let mut last_leader = None;
    loop {
        let (leader, term, running) = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.current_term, m.running_state.clone())
        };
        if leader != last_leader {
            match leader {
                Some(leader) => {
                    tracing::info!(node = node_id, leader, term, "quorum leader elected")
                }
                None => tracing::info!(node = node_id, term, "quorum has no leader"),
            }
            last_leader = leader;
        }
        if let Err(e) = running {
            if !shutdown.is_cancelled() {
                cluster.fail(QuorumError::Raft(format!("raft stopped: {e}")));
            }
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}
