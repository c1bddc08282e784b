//! A broker's membership in the cluster, Kafka's KRaft way: it registers with the active
//! controller, heartbeats to stay unfenced, and on shutdown asks (through its heartbeats)
//! for its leaderships to be moved away before it stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::requests::{ControllerOk, ControllerRequest};
use super::Metadata;
use crate::config::BrokerConfig;
use crate::metadata::BrokerEndpoint;

/// What the controller last said about this broker.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemberState {
    pub registered: bool,
    pub fenced: bool,
    pub shutdown_ready: bool,
}

#[derive(Debug)]
pub struct Membership {
    node_id: i32,
    /// A new one per process start, so the controller tells a restart from a duplicate.
    pub incarnation: Uuid,
    endpoints: Vec<BrokerEndpoint>,
    rack: Option<String>,
    interval: Duration,
    request_timeout: Duration,
    want_shutdown: AtomicBool,
    beat_now: Notify,
    state: watch::Sender<MemberState>,
    /// Replicas on failed log directories, reported with every heartbeat (KIP-112).
    offline_replicas: parking_lot::Mutex<Vec<(Uuid, i32)>>,
}

impl Membership {
    pub fn new(config: &BrokerConfig, endpoints: Vec<BrokerEndpoint>) -> Membership {
        Membership {
            node_id: config.node_id,
            incarnation: Uuid::new_v4(),
            endpoints,
            rack: config.cluster.rack.clone(),
            interval: Duration::from_millis(config.cluster.broker_heartbeat_interval_ms),
            request_timeout: Duration::from_millis(config.cluster.quorum_request_timeout_ms),
            want_shutdown: AtomicBool::new(false),
            beat_now: Notify::new(),
            state: watch::channel(MemberState::default()).0,
            offline_replicas: parking_lot::Mutex::new(Vec::new()),
        }
    }

    pub fn state(&self) -> MemberState {
        *self.state.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<MemberState> {
        self.state.subscribe()
    }

    /// Registers, retrying until the controller accepts (a previous process with this id
    /// may still hold the registration until its session expires).
    pub async fn register(&self, metadata: &Metadata) {
        let mut warned = false;
        loop {
            let request = ControllerRequest::RegisterBroker {
                id: self.node_id,
                incarnation: self.incarnation,
                endpoints: self.endpoints.clone(),
                rack: self.rack.clone(),
            };
            match metadata.request(request, self.request_timeout).await {
                Ok(_) => {
                    self.state.send_modify(|s| {
                        s.registered = true;
                        s.fenced = true;
                    });
                    tracing::info!(node_id = self.node_id, incarnation = %self.incarnation, "registered with the controller");
                    return;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "broker registration refused or not answered yet; retrying");
                        warned = true;
                    } else {
                        tracing::debug!(error = %e, "broker registration retry failed");
                    }
                    tokio::time::sleep(self.interval.min(Duration::from_millis(500))).await;
                }
            }
        }
    }

    /// Heartbeats until the controlled shutdown is done (or forever, if none starts).
    pub async fn run_heartbeats(&self, metadata: Metadata) {
        loop {
            let want_shutdown = self.want_shutdown.load(Ordering::Acquire);
            let request = ControllerRequest::Heartbeat {
                id: self.node_id,
                incarnation: self.incarnation,
                want_shutdown,
                offline_replicas: self.offline_replicas.lock().clone(),
            };
            match metadata.request(request, self.request_timeout).await {
                Ok(ControllerOk::Heartbeat {
                    fenced,
                    shutdown_ready,
                }) => {
                    self.state.send_if_modified(|s| {
                        let next = MemberState {
                            registered: true,
                            fenced,
                            shutdown_ready,
                        };
                        std::mem::replace(s, next) != next
                    });
                    if shutdown_ready {
                        return;
                    }
                }
                Ok(other) => tracing::warn!(?other, "unexpected heartbeat reply"),
                Err(e)
                    if matches!(
                        e.error,
                        ResponseError::BrokerIdNotRegistered | ResponseError::StaleBrokerEpoch
                    ) =>
                {
                    tracing::warn!(error = %e, "the controller does not know this broker; registering again");
                    self.register(&metadata).await;
                    continue;
                }
                Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
            }
            let pause = if want_shutdown {
                // Controlled shutdown polls faster: nothing else moves until it is done.
                self.interval.min(Duration::from_millis(200))
            } else {
                self.interval
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.beat_now.notified() => {}
            }
        }
    }

    /// Sets the replicas (topic id, partition) this broker cannot serve because their log
    /// directory failed; a change is reported at once, so leaderships move away quickly.
    pub fn report_offline_replicas(&self, offline: Vec<(Uuid, i32)>) {
        let mut current = self.offline_replicas.lock();
        if *current != offline {
            *current = offline;
            drop(current);
            self.beat_now.notify_one();
        }
    }

    /// Asks the controller to move this broker's leaderships away and waits until it says
    /// they have, or `timeout`. Returns whether it completed.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        if !self.state().registered {
            return true;
        }
        self.want_shutdown.store(true, Ordering::Release);
        self.beat_now.notify_one();
        let mut state = self.subscribe();
        let done = tokio::time::timeout(timeout, state.wait_for(|s| s.shutdown_ready)).await;
        matches!(done, Ok(Ok(_)))
    }
}
