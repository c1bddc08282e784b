//! The replica manager: makes this broker play the role the metadata gives it for each
//! partition (leader or follower), runs the follower fetchers, and asks the controller to
//! change ISRs when followers fall behind or catch up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::fetcher;
use super::isr_change;
use super::role::{FollowerState, LeaderState, ReplicaRole};
use super::throttle::{self, Throttle};
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::group::OFFSETS_TOPIC;
use crate::log::{now_ms, Partition, TopicPartition};
use crate::metadata::{MetadataImage, NO_LEADER};
use crate::quorum::{ControllerOk, ControllerRequest};

/// One partition a follower fetcher keeps up to date.
#[derive(Debug, Clone)]
pub struct FetchTarget {
    pub partition: Arc<Partition>,
    pub leader_epoch: i32,
    /// Ask the leader where our log diverges (OffsetForLeaderEpoch) before fetching.
    pub truncate_first: bool,
    /// Being added by a reassignment, or listed in the topic's
    /// follower.replication.throttled.replicas and out of sync: counts against
    /// follower.replication.throttled.rate.
    pub throttled: bool,
    /// Skipped until then after an error (the metadata will usually change first).
    pub retry_at: Option<Instant>,
}

pub type FetchTargets = Arc<Mutex<HashMap<TopicPartition, FetchTarget>>>;

/// For each leader, the partitions to fetch from it: (partition, leader epoch, throttled).
type WantedFetches = HashMap<i32, HashMap<TopicPartition, (Arc<Partition>, i32, bool)>>;

#[derive(Debug)]
struct Fetcher {
    targets: FetchTargets,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
}

#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    lag_time_max_ms: u64,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
    pub leader_throttle: Throttle,
    pub follower_throttle: Throttle,
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    /// How far into the metadata (`MetadataImage::applied`) roles and logs are applied.
    applied: tokio::sync::watch::Sender<u64>,
    /// The image whose partitions were last made real here, and how many of the ones it
    /// places here had no log after that (opening failed): what readiness compares the
    /// current image with.
    served: Mutex<(Option<Arc<MetadataImage>>, usize)>,
}

impl ReplicaManager {
    pub fn new(config: &BrokerConfig) -> ReplicaManager {
        ReplicaManager {
            node_id: config.node_id,
            lag_time_max_ms: config.cluster.replica_lag_time_max_ms,
            fetchers: Mutex::new(HashMap::new()),
            leader_throttle: Throttle::new(config.cluster.leader_replication_throttled_rate),
            follower_throttle: Throttle::new(config.cluster.follower_replication_throttled_rate),
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
            applied: tokio::sync::watch::channel(0).0,
            served: Mutex::new((None, 0)),
        }
    }

    /// The image last applied here and how many of its partitions here have no log.
    pub fn served(&self) -> (Option<Arc<MetadataImage>>, usize) {
        self.served.lock().clone()
    }

    /// Waits until roles and logs reflect at least metadata position `applied`.
    pub async fn wait_applied(&self, applied: u64) {
        let mut rx = self.applied.subscribe();
        let _ = rx.wait_for(|a| *a >= applied).await;
    }

    /// Counts an ISR change of a partition led here, whoever made it (this leader's
    /// AlterPartition or the controller), once: the second sight of the same state is Equal.
    fn count_isr_change(&self, change: std::cmp::Ordering) {
        match change {
            std::cmp::Ordering::Less => self.isr_shrinks.fetch_add(1, Ordering::Relaxed),
            std::cmp::Ordering::Greater => self.isr_expands.fetch_add(1, Ordering::Relaxed),
            std::cmp::Ordering::Equal => 0,
        };
    }

    /// Stops every fetcher (shutdown).
    pub fn stop_fetchers(&self) {
        for (_, f) in self.fetchers.lock().drain() {
            f.stop.store(true, Ordering::Release);
            f.wake.notify_one();
        }
    }

    /// Brings partition roles and fetchers in line with `image`. Blocking (opens and
    /// deletes partition logs, loads groups): run it off the async workers.
    pub fn apply_image(&self, broker: &Arc<Broker>, image: &Arc<MetadataImage>) {
        let dynamic = crate::config::dynamic::DynamicLayer::of(image, self.node_id);
        self.leader_throttle.set_rate(dynamic.long(
            "leader.replication.throttled.rate",
            broker.config.cluster.leader_replication_throttled_rate,
        ));
        self.follower_throttle.set_rate(dynamic.long(
            "follower.replication.throttled.rate",
            broker.config.cluster.follower_replication_throttled_rate,
        ));
        if let Err(e) = broker.logs.sync(image, self.node_id, false) {
            tracing::error!(error = %e, "creating or removing partition logs failed");
        }
        let me = self.node_id;
        let now = now_ms();
        let mut wanted: WantedFetches = HashMap::new();
        let mut gained_offsets = Vec::new();
        let mut lost_offsets = Vec::new();
        let mut missing_logs = 0;
        for (topic, p) in image.partitions() {
            if !p.replicas.contains(&me) {
                continue;
            }
            let Some(partition) = broker.partition(&topic.name, p.partition) else {
                missing_logs += 1;
                continue;
            };
            let mut role = partition.replica.lock();
            let was_leader = role.leader().is_some();
            if p.leader == me {
                match &mut *role {
                    ReplicaRole::Leader(s) if s.leader_epoch == p.leader_epoch => {
                        // The controller may change the ISR too (fencing a follower).
                        self.count_isr_change(s.update(p, me, now));
                    }
                    _ => {
                        let leo = {
                            let mut log = partition.log.lock();
                            // OffsetForLeaderEpoch must know this epoch starts here
                            // before anything is written in it.
                            let leo = log.log_end_offset();
                            if let Err(e) = log.assign_epoch_start(p.leader_epoch, leo) {
                                tracing::error!(partition = %partition.id, error = %e, "cannot record the new leader epoch");
                            }
                            leo
                        };
                        tracing::info!(partition = %partition.id, epoch = p.leader_epoch, log_end = leo, "became leader");
                        *role = ReplicaRole::Leader(LeaderState::new(p, me, leo, now));
                        if topic.name == OFFSETS_TOPIC {
                            gained_offsets.push((p.partition, partition.clone()));
                        }
                    }
                }
                if let Some(s) = role.leader() {
                    advance_high_watermark(&partition, s, me);
                }
            } else {
                let state = FollowerState {
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                };
                if !matches!(&*role, ReplicaRole::Follower(f) if *f == state) {
                    tracing::info!(partition = %partition.id, leader = p.leader, epoch = p.leader_epoch, "became follower");
                    *role = ReplicaRole::Follower(state);
                    if was_leader && topic.name == OFFSETS_TOPIC {
                        lost_offsets.push(p.partition);
                    }
                }
                if p.leader != NO_LEADER {
                    wanted.entry(p.leader).or_default().insert(
                        partition.id.clone(),
                        (
                            partition.clone(),
                            p.leader_epoch,
                            // Being added by a reassignment (Strom's rule), or named by
                            // the topic's list while out of sync (Kafka's).
                            p.adding.contains(&me)
                                || throttle::is_throttled(
                                    topic.configs.get(throttle::FOLLOWER_THROTTLED_REPLICAS),
                                    p.partition,
                                    me,
                                    p.isr.contains(&me),
                                ),
                        ),
                    );
                }
            }
            drop(role);
            // Waiting produces re-check their leadership, waiting fetches their epoch.
            partition.poke();
        }
        self.update_fetchers(broker, wanted);
        // Offsets partitions no longer led here, including ones whose replica moved away
        // (their log is gone, so the loop above never saw them).
        for p in broker.groups.owned_partitions() {
            let leads = image
                .partition(OFFSETS_TOPIC, p)
                .is_some_and(|(_, state)| state.leader == me);
            if !leads && !lost_offsets.contains(&p) {
                lost_offsets.push(p);
            }
        }
        for p in lost_offsets {
            broker.groups.unload_partition(p);
        }
        for (p, partition) in gained_offsets {
            if let Err(e) = broker.groups.load_partition(p, &partition) {
                tracing::error!(partition = p, error = %e, "loading consumer groups failed");
            }
        }
        {
            let mut served = self.served.lock();
            let newer = served.0.as_ref().is_none_or(|s| s.applied <= image.applied);
            if newer {
                *served = (Some(image.clone()), missing_logs);
            }
        }
        self.applied.send_if_modified(|a| {
            let newer = image.applied > *a;
            if newer {
                *a = image.applied;
            }
            newer
        });
    }

    fn update_fetchers(&self, broker: &Arc<Broker>, mut wanted: WantedFetches) {
        let mut fetchers = self.fetchers.lock();
        fetchers.retain(|leader, f| {
            let keep = wanted.contains_key(leader);
            if !keep {
                f.stop.store(true, Ordering::Release);
                f.wake.notify_one();
            }
            keep
        });
        for (leader, partitions) in wanted.drain() {
            let fetcher = fetchers.entry(leader).or_insert_with(|| {
                let f = Fetcher {
                    targets: Arc::new(Mutex::new(HashMap::new())),
                    wake: Arc::new(Notify::new()),
                    stop: Arc::new(AtomicBool::new(false)),
                };
                tokio::spawn(fetcher::run(
                    broker.clone(),
                    leader,
                    f.targets.clone(),
                    f.wake.clone(),
                    f.stop.clone(),
                ));
                f
            });
            let mut targets = fetcher.targets.lock();
            targets.retain(|tp, _| partitions.contains_key(tp));
            for (tp, (partition, epoch, throttled)) in partitions {
                match targets.get_mut(&tp) {
                    Some(t) if t.leader_epoch == epoch => t.throttled = throttled,
                    _ => {
                        targets.insert(
                            tp,
                            FetchTarget {
                                partition,
                                leader_epoch: epoch,
                                truncate_first: true,
                                throttled,
                                retry_at: None,
                            },
                        );
                    }
                }
            }
            drop(targets);
            fetcher.wake.notify_one();
        }
    }

    /// A follower fetched `partition` at `fetch_offset`: note its progress, move the high
    /// watermark, and ask for its return to the ISR once it has caught up.
    pub fn on_follower_fetch(
        &self,
        broker: &Arc<Broker>,
        partition: &Arc<Partition>,
        replica: i32,
        fetch_offset: i64,
    ) {
        let me = self.node_id;
        let mut role = partition.replica.lock();
        let Some(state) = role.leader_mut() else {
            return;
        };
        let now = now_ms();
        state.record_fetch(replica, fetch_offset, partition.log_end_offset(), now);
        advance_high_watermark(partition, state, me);
        if !state.isr_changes.may_propose(state.partition_epoch, now) {
            return;
        }
        if let Some(isr) = state.expanded_isr(partition.high_watermark()) {
            self.send_isr_change(broker, partition, state, isr, false);
        }
    }

    /// Drops followers that have not caught up within replica.lag.time.max.ms from the ISR
    /// of every partition this broker leads.
    pub fn shrink_lagging(&self, broker: &Arc<Broker>) {
        let now = now_ms();
        for partition in broker.logs.all() {
            let mut role = partition.replica.lock();
            let Some(state) = role.leader_mut() else {
                continue;
            };
            if !state.isr_changes.may_propose(state.partition_epoch, now) {
                continue;
            }
            if let Some(isr) = state.shrunk_isr(self.node_id, now, self.lag_time_max_ms) {
                tracing::info!(partition = %partition.id, old_isr = ?state.isr, new_isr = ?isr,
                    lag_time_max_ms = self.lag_time_max_ms, "shrinking ISR: followers fell behind");
                self.send_isr_change(broker, &partition, state, isr, true);
            }
        }
    }

    fn send_isr_change(
        &self,
        broker: &Arc<Broker>,
        partition: &Arc<Partition>,
        state: &mut LeaderState,
        isr: Vec<i32>,
        shrink: bool,
    ) {
        let sent_on = state.partition_epoch;
        state.isr_changes.sent(sent_on);
        let request = ControllerRequest::AlterIsr {
            topic_id: partition.topic_id,
            partition: partition.id.partition,
            leader: self.node_id,
            leader_epoch: state.leader_epoch,
            partition_epoch: sent_on,
            isr,
        };
        let broker = broker.clone();
        let partition = partition.clone();
        let epoch = state.leader_epoch;
        tokio::spawn(async move {
            let timeout = Duration::from_millis(broker.config.cluster.quorum_request_timeout_ms);
            let reply = broker.metadata.request(request, timeout).await;
            let me = broker.node_id();
            let mut role = partition.replica.lock();
            let Some(state) = role.leader_mut().filter(|s| s.leader_epoch == epoch) else {
                return;
            };
            let refusal = reply.as_ref().err().map(|e| e.error);
            if !state.isr_changes.answered(sent_on, refusal, now_ms()) {
                // Newer metadata came first and superseded this request.
                return;
            }
            match reply {
                Ok(ControllerOk::Partition(p)) => {
                    tracing::info!(partition = %partition.id, isr = ?p.isr, shrink, "ISR changed");
                    let change = state.update(&p, me, now_ms());
                    broker.replicas.count_isr_change(change);
                    advance_high_watermark(&partition, state, me);
                }
                Ok(other) => tracing::warn!(?other, "unexpected AlterIsr reply"),
                Err(e) => match isr_change::after_refusal(e.error) {
                    isr_change::AfterRefusal::AwaitMetadata => tracing::info!(
                        partition = %partition.id, partition_epoch = sent_on, error = %e,
                        "ISR change refused: this leader's state is behind the controller's; \
                         no new request until the metadata brings a newer partition epoch, or for 5 s"),
                    isr_change::AfterRefusal::RetryAfterBackoff => tracing::warn!(
                        partition = %partition.id, error = %e,
                        retry_in_ms = isr_change::RETRY_BACKOFF_MS,
                        "ISR change refused or not answered"),
                },
            }
        });
    }
}

/// Moves the high watermark to what every ISR member has, if that is further.
pub fn advance_high_watermark(partition: &Partition, state: &LeaderState, me: i32) {
    if let Some(hw) = state.high_watermark(me, partition.log_end_offset()) {
        partition.advance_high_watermark(hw);
    }
}

/// Runs the ISR shrink check on its schedule (half the lag time, as Kafka does).
pub async fn run_isr_checks(broker: Arc<Broker>) {
    let every = Duration::from_millis((broker.config.cluster.replica_lag_time_max_ms / 2).max(50));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // It walks every partition (and takes the log manager's partition map): off the
        // async workers, so a long map operation (a large creation) stalls only this
        // check, never the request handlers or heartbeats.
        let b = broker.clone();
        let checked = tokio::task::spawn_blocking(move || b.replicas.shrink_lagging(&b)).await;
        if let Err(e) = checked {
            tracing::error!(error = %e, "ISR check panicked");
        }
    }
}
