//! The active controller: runs on the quorum leader, turns brokers' requests into
//! decisions (the pure functions in `controller`) and commits the records through the
//! quorum. It also keeps what Kafka's controller keeps in memory only: when each broker
//! last heartbeated, so brokers that stop are fenced and their leaderships move.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use uuid::Uuid;

use super::requests::{ControllerOk, ControllerReply, ControllerRequest};
use super::MetadataQuorum;
use crate::config::BrokerConfig;
use crate::controller::{self, ElectionKind};
use crate::error::{ApiError, ApiResult};
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::quota::{throttling_quota_exceeded, ClientQuotas, MutationCharge, MutationRequester};

/// How often the leader checks heartbeats and leader balance.
const DUTY_TICK: Duration = Duration::from_millis(100);
/// How long a decision waits for a new leader to apply what was committed before it
/// led; the requester gets REQUEST_TIMED_OUT after that and retries.
const CATCH_UP: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct ControllerService {
    config: BrokerConfig,
    quorum: OnceLock<Weak<MetadataQuorum>>,
    /// Decisions read the image and commit their records one at a time, so two cannot
    /// decide on the same image (two creations of one topic, two ISR changes).
    decide: tokio::sync::Mutex<()>,
    /// Each broker's last contact as this controller processed it: the incarnation that
    /// heartbeated (or registered) and when. Only contact seen while active counts.
    heartbeats: Mutex<HashMap<i32, (Uuid, Instant)>>,
    /// Sessions are never counted from before this: when this node became the active
    /// controller, or when it last came out of a stall of its own (see `run_duties`).
    heard_floor: Mutex<Option<Instant>>,
    /// What `format` left for an empty metadata log (`metadata::bootstrap`), until this
    /// node has committed it or found the log already started.
    bootstrap: Mutex<Vec<MetadataRecord>>,
    /// The node's client quotas: the controller mutation buckets (KIP-599) are the ones
    /// of the node that is the active controller, so a user has one rate cluster-wide.
    quotas: Arc<ClientQuotas>,
}

/// A topic mutation's decision with what its quota charge gave.
struct Charged {
    outcome: ApiResult<bool>,
    throttle_ms: i64,
    /// When it was charged, on the quotas' clock.
    at_ms: i64,
}

impl ControllerService {
    /// `bootstrap`: the records `format` gave for the log of a new cluster.
    pub fn new(
        config: BrokerConfig,
        bootstrap: Vec<MetadataRecord>,
        quotas: Arc<ClientQuotas>,
    ) -> ControllerService {
        ControllerService {
            quotas,
            config,
            quorum: OnceLock::new(),
            decide: tokio::sync::Mutex::new(()),
            heartbeats: Mutex::new(HashMap::new()),
            heard_floor: Mutex::new(None),
            bootstrap: Mutex::new(bootstrap),
        }
    }

    pub fn attach(&self, quorum: &Arc<MetadataQuorum>) {
        let _ = self.quorum.set(Arc::downgrade(quorum));
    }

    fn quorum(&self) -> ApiResult<Arc<MetadataQuorum>> {
        self.quorum
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| ApiError::new(ResponseError::NotController, "the quorum is stopping"))
    }

    /// Decides on the latest image and commits the records, under the decision lock.
    async fn commit<T>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> ApiResult<(Vec<MetadataRecord>, T)>,
    ) -> ApiResult<T> {
        let _one_at_a_time = self.decide.lock().await;
        let quorum = self.quorum()?;
        if !quorum.is_leader() {
            return Err(ApiError::new(
                ResponseError::NotController,
                format!(
                    "node {} is not the active controller (leader: {:?})",
                    self.config.node_id,
                    quorum.leader()
                ),
            ));
        }
        quorum
            .caught_up_as_leader(CATCH_UP)
            .await
            .map_err(super::quorum_error)?;
        self.bootstrap_empty_log(&quorum).await?;
        let image = quorum.state();
        let (records, value) = decide(&image)?;
        if !records.is_empty() {
            quorum.propose(records).await.map_err(super::quorum_error)?;
        }
        Ok(value)
    }

    /// Commits the bootstrap records as the log's first entry if the log is still empty;
    /// drops them if it is not (see `metadata::bootstrap`). Runs under the decision lock,
    /// as the leader, caught up: nothing can be committed before them or between the
    /// check and the commit. Kept for the next try if the commit fails.
    async fn bootstrap_empty_log(&self, quorum: &MetadataQuorum) -> ApiResult<()> {
        let records = self.bootstrap.lock().clone();
        if records.is_empty() {
            return Ok(());
        }
        if quorum.state().applied > 0 {
            tracing::info!(
                records = records.len(),
                "the metadata log already has records: the bootstrap records of `format` (--add-scram) are not used"
            );
        } else {
            quorum
                .propose(records.clone())
                .await
                .map_err(super::quorum_error)?;
            tracing::info!(
                users = ?bootstrap_users(&records),
                "wrote the bootstrap records of `format` (--add-scram) into the new metadata log"
            );
        }
        self.bootstrap.lock().clear();
        Ok(())
    }

    /// `commit`, or with `validate_only` just the decision on the current image.
    async fn commit_unless<T>(
        &self,
        validate_only: bool,
        decide: impl FnOnce(&MetadataImage) -> ApiResult<(Vec<MetadataRecord>, T)>,
    ) -> ApiResult<T> {
        if validate_only {
            let quorum = self.quorum()?;
            quorum
                .caught_up_as_leader(CATCH_UP)
                .await
                .map_err(super::quorum_error)?;
            decide(&quorum.state()).map(|(_, value)| value)
        } else {
            self.commit(decide).await
        }
    }

    fn unclean_allowed(&self, image: &MetadataImage, topic: &str) -> bool {
        let key = "unclean.leader.election.enable";
        image
            .topic(topic)
            .and_then(|t| t.configs.get(key).cloned())
            .or_else(|| {
                crate::config::dynamic::topic_defaults(&self.config, image, self.config.node_id)
                    .get(key)
                    .cloned()
            })
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Kafka's `applyPartitionChangeQuota`, for a topic that passed validation: charges
    /// `partitions` to `who` (nothing without one) and keeps `records`, or drops them when
    /// a strict quota refuses the topic. Validate-only decisions are charged too, as
    /// Kafka's controller charges them.
    fn charge(
        &self,
        image: &MetadataImage,
        who: Option<&MutationRequester>,
        partitions: usize,
        records: Vec<MetadataRecord>,
        outcome: bool,
    ) -> (Vec<MetadataRecord>, Charged) {
        let at_ms = self.quotas.now_ms();
        let charge = who.map_or(MutationCharge::Taken { throttle_ms: 0 }, |who| {
            self.quotas
                .charge_mutations(&image.client_quotas, who, partitions, at_ms)
        });
        match charge {
            MutationCharge::Taken { throttle_ms } => (
                records,
                Charged {
                    outcome: Ok(outcome),
                    throttle_ms,
                    at_ms,
                },
            ),
            MutationCharge::Refused { throttle_ms } => {
                tracing::debug!(
                    partitions,
                    throttle_ms,
                    "topic mutation refused: the controller mutation quota is exhausted"
                );
                (
                    Vec::new(),
                    Charged {
                        outcome: Err(throttling_quota_exceeded()),
                        throttle_ms,
                        at_ms,
                    },
                )
            }
        }
    }

    /// The reply to a topic mutation: `Mutation` with the throttle left now (Kafka's
    /// `throttleTime` deducts the time since the charge, here the commit) when it carried
    /// a requester, else `plain` as brokers that send none expect.
    fn mutation_reply(
        &self,
        charged: bool,
        decided: Charged,
        plain: impl FnOnce(bool) -> ControllerOk,
    ) -> ControllerReply {
        if !charged {
            return decided.outcome.map(plain);
        }
        let left = (decided.throttle_ms - (self.quotas.now_ms() - decided.at_ms)).max(0);
        Ok(ControllerOk::Mutation {
            outcome: decided.outcome,
            throttle_ms: left,
        })
    }

    async fn decide(&self, request: ControllerRequest) -> ControllerReply {
        match request {
            ControllerRequest::CreateTopic {
                topic,
                defaults,
                if_absent,
                validate_only,
                quota,
            } => {
                let max_partitions = self.config.max_broker_partitions;
                let decide = |image: &MetadataImage| {
                    if if_absent && image.topic(&topic.name).is_some() {
                        return Ok(self.charge(image, None, 0, Vec::new(), false));
                    }
                    let brokers = controller::placeable_broker_infos(image);
                    let records = controller::create_topic(image, &defaults, &brokers, &topic)?;
                    controller::check_broker_capacity(image, &records, max_partitions)?;
                    let partitions = records
                        .iter()
                        .filter(|r| matches!(r, MetadataRecord::Partition { .. }))
                        .count();
                    Ok(self.charge(image, quota.as_ref(), partitions, records, true))
                };
                let decided = self.commit_unless(validate_only, decide).await?;
                self.mutation_reply(quota.is_some(), decided, ControllerOk::Created)
            }
            ControllerRequest::CreateTopics { topics, defaults } => {
                let outcomes = self
                    .commit(|image| {
                        let brokers = controller::placeable_broker_infos(image);
                        Ok(controller::create_topics_if_absent(
                            image,
                            &defaults,
                            &brokers,
                            &topics,
                            self.config.max_broker_partitions,
                        ))
                    })
                    .await?;
                Ok(ControllerOk::CreatedTopics(outcomes))
            }
            ControllerRequest::DeleteTopic { name, quota } => {
                let enabled = self.config.delete_topic_enable;
                let decided = self
                    .commit(|image| {
                        let records = controller::delete_topic(image, &name, enabled)?;
                        let partitions = image.topic(&name).map_or(0, |t| t.partitions.len());
                        Ok(self.charge(image, quota.as_ref(), partitions, records, true))
                    })
                    .await?;
                self.mutation_reply(quota.is_some(), decided, |_| ControllerOk::Done)
            }
            ControllerRequest::CreatePartitions {
                name,
                count,
                assignments,
                validate_only,
                quota,
            } => {
                let decide = |image: &MetadataImage| {
                    let brokers = controller::placeable_broker_infos(image);
                    let records =
                        controller::create_partitions(image, &brokers, &name, count, &assignments)?;
                    controller::check_broker_capacity(
                        image,
                        &records,
                        self.config.max_broker_partitions,
                    )?;
                    // Validated as an increase: the partitions added.
                    let existing = image.topic(&name).map_or(0, |t| t.partitions.len());
                    let added = usize::try_from(count).unwrap_or(0).saturating_sub(existing);
                    Ok(self.charge(image, quota.as_ref(), added, records, true))
                };
                let decided = self.commit_unless(validate_only, decide).await?;
                self.mutation_reply(quota.is_some(), decided, |_| ControllerOk::Done)
            }
            ControllerRequest::AlterTopicConfigs {
                name,
                changes,
                replace_all,
                validate_only,
            } => {
                let decide = |image: &MetadataImage| {
                    let records =
                        controller::alter_topic_configs(image, &name, &changes, replace_all)?;
                    Ok((records, ()))
                };
                self.commit_unless(validate_only, decide).await?;
                Ok(ControllerOk::Done)
            }
            ControllerRequest::AlterConfigs {
                resource,
                changes,
                replace_all,
                validate_only,
            } => {
                let decide = |image: &MetadataImage| {
                    Ok((
                        image.config_change_records(&resource, &changes, replace_all),
                        (),
                    ))
                };
                self.commit_unless(validate_only, decide).await?;
                Ok(ControllerOk::Done)
            }
            ControllerRequest::AllocateProducerIds => {
                let start = self
                    .commit(|image| Ok(controller::allocate_producer_ids(image)))
                    .await?;
                Ok(ControllerOk::ProducerIdBlock(start))
            }
            ControllerRequest::RegisterBroker {
                id,
                incarnation,
                endpoints,
                rack,
            } => {
                self.commit(|image| {
                    let old_session = match image.broker(id) {
                        Some(old) => self.session_of(id, old.incarnation),
                        None => controller::Session::Expired,
                    };
                    if old_session == controller::Session::Expired
                        && image.broker(id).is_some_and(|b| {
                            !b.fenced && b.incarnation != incarnation
                        })
                    {
                        tracing::info!(
                            broker = id,
                            "new incarnation registering; the old one has not heartbeated to this controller within its session: fencing it"
                        );
                    }
                    let unclean = |t: &str| self.unclean_allowed(image, t);
                    let records = controller::register_broker(
                        image,
                        id,
                        incarnation,
                        endpoints,
                        rack,
                        old_session,
                        &unclean,
                    )?;
                    Ok((records, ()))
                })
                .await?;
                self.heartbeats
                    .lock()
                    .insert(id, (incarnation, Instant::now()));
                tracing::info!(broker = id, %incarnation, "broker registered");
                Ok(ControllerOk::Done)
            }
            ControllerRequest::Heartbeat {
                id,
                incarnation,
                want_shutdown,
                offline_replicas,
            } => {
                self.heartbeat(id, incarnation, want_shutdown, &offline_replicas)
                    .await
            }
            ControllerRequest::AlterIsr {
                topic_id,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let state = self
                    .commit(|image| {
                        controller::alter_isr(
                            image,
                            topic_id,
                            partition,
                            leader,
                            leader_epoch,
                            partition_epoch,
                            isr,
                        )
                    })
                    .await?;
                Ok(ControllerOk::Partition(state))
            }
            ControllerRequest::ElectLeaders { targets, unclean } => {
                let kind = if unclean {
                    ElectionKind::Unclean
                } else {
                    ElectionKind::Preferred
                };
                let results = self
                    .commit(|image| Ok(controller::elect_leaders(image, targets.as_deref(), kind)))
                    .await?;
                Ok(ControllerOk::Elections(results))
            }
            ControllerRequest::AlterReassignment {
                topic,
                partition,
                target,
            } => {
                self.commit(|image| {
                    let unclean = self.unclean_allowed(image, &topic);
                    let records =
                        controller::alter_reassignment(image, &topic, partition, target, unclean)?;
                    Ok((records, ()))
                })
                .await?;
                Ok(ControllerOk::Done)
            }
            ControllerRequest::UnregisterBroker { id } => {
                self.commit(|image| {
                    let unclean = |topic: &str| self.unclean_allowed(image, topic);
                    let records = controller::unregister_broker(image, id, &unclean)?;
                    Ok((records, ()))
                })
                .await?;
                // Its session ends with its registration; a process that registers again
                // starts a new one.
                self.heartbeats.lock().remove(&id);
                tracing::info!(broker = id, "broker unregistered");
                Ok(ControllerOk::Done)
            }
            ControllerRequest::AlterScramCredentials {
                deletions,
                upsertions,
            } => {
                let results = self
                    .commit(|image| {
                        Ok(controller::alter_scram_credentials(
                            image,
                            &deletions,
                            &upsertions,
                        ))
                    })
                    .await?;
                Ok(ControllerOk::ScramResults(results))
            }
            // A read: no decision lock, nothing committed.
            ControllerRequest::DescribeQuorum => {
                let quorum = self.quorum()?;
                quorum.describe().map(ControllerOk::Quorum).ok_or_else(|| {
                    ApiError::new(
                        ResponseError::NotController,
                        format!(
                            "node {} is no longer the quorum leader (leader: {:?})",
                            self.config.node_id,
                            quorum.leader()
                        ),
                    )
                })
            }
            ControllerRequest::CreateAcls { bindings } => {
                let results = self
                    .commit(|image| controller::acls::create_acls(image, &bindings, Uuid::new_v4))
                    .await?;
                Ok(ControllerOk::AclsCreated(results))
            }
            ControllerRequest::DeleteAcls { filters } => {
                let results = self
                    .commit(|image| Ok(controller::acls::delete_acls(image, &filters)))
                    .await?;
                Ok(ControllerOk::AclsDeleted(results))
            }
            ControllerRequest::AlterClientQuotas {
                alterations,
                validate_only,
            } => {
                let resolved = controller::client_quotas::resolve_ip_host_names(&alterations).await;
                let results = self
                    .commit_unless(validate_only, |image| {
                        controller::client_quotas::alter_client_quotas(
                            image,
                            &alterations,
                            &resolved,
                        )
                    })
                    .await?;
                Ok(ControllerOk::ClientQuotaResults(results))
            }
        }
    }

    /// Kafka's BrokerHeartbeat: notes the broker alive, unfences it once registered, and
    /// drives its controlled shutdown. A finished shutdown fences the broker at once, so
    /// its restart can register without waiting out the session.
    async fn heartbeat(
        &self,
        id: i32,
        incarnation: uuid::Uuid,
        want_shutdown: bool,
        offline_replicas: &[(uuid::Uuid, i32)],
    ) -> ControllerReply {
        let quorum = self.quorum()?;
        quorum
            .caught_up_as_leader(CATCH_UP)
            .await
            .map_err(super::quorum_error)?;
        let image = quorum.state();
        let Some(reg) = image.broker(id) else {
            return Err(ApiError::new(
                ResponseError::BrokerIdNotRegistered,
                format!("broker {id} is not registered"),
            ));
        };
        if reg.incarnation != incarnation {
            return Err(ApiError::new(
                ResponseError::StaleBrokerEpoch,
                format!(
                    "broker {id} heartbeated for incarnation {incarnation}, registered is {}",
                    reg.incarnation
                ),
            ));
        }
        self.heartbeats
            .lock()
            .insert(id, (incarnation, Instant::now()));
        if want_shutdown {
            if !self.config.cluster.controlled_shutdown_enable {
                return Ok(ControllerOk::Heartbeat {
                    fenced: reg.fenced,
                    shutdown_ready: true,
                });
            }
            let remaining = self
                .commit(|image| controller::controlled_shutdown(image, id))
                .await?;
            if remaining == 0 {
                self.commit(|image| {
                    let records =
                        controller::fence_broker(image, id, &|t| self.unclean_allowed(image, t))?;
                    Ok((records, ()))
                })
                .await?;
                tracing::info!(broker = id, "controlled shutdown complete");
            }
            return Ok(ControllerOk::Heartbeat {
                fenced: true,
                shutdown_ready: remaining == 0,
            });
        }
        if !offline_replicas.is_empty() && !reg.fenced {
            let moved = self
                .commit(|image| {
                    let records = controller::offline_replicas(image, id, offline_replicas);
                    let moved = records.len();
                    Ok((records, moved))
                })
                .await?;
            if moved > 0 {
                tracing::warn!(
                    broker = id,
                    partitions = moved,
                    "moved replicas on a failed log directory out of their ISRs"
                );
            }
        }
        if reg.fenced && !reg.shutting_down {
            self.commit(|image| Ok((controller::unfence_broker(image, id)?, ())))
                .await?;
            tracing::info!(broker = id, "broker unfenced");
            // A returning broker outside the ISR may still bring back an offline partition
            // whose topic allows unclean election.
            self.commit(|image| {
                let records = controller::elect_unclean_where_enabled(image, &|t| {
                    self.unclean_allowed(image, t)
                });
                Ok((records, ()))
            })
            .await?;
        }
        Ok(ControllerOk::Heartbeat {
            fenced: false,
            shutdown_ready: false,
        })
    }

    /// The session of `incarnation` of broker `id` as this controller has seen it.
    fn session_of(&self, id: i32, incarnation: Uuid) -> controller::Session {
        let session = Duration::from_millis(self.config.cluster.broker_session_timeout_ms);
        let last = self
            .heartbeats
            .lock()
            .get(&id)
            .filter(|(inc, _)| *inc == incarnation)
            .map(|(_, at)| *at);
        controller::session_state(last, Instant::now(), session)
    }

    /// Fences brokers whose heartbeats stopped. A controller that just took over, or just
    /// came out of a stall of its own, counts every broker as heard from then, so none is
    /// fenced for the election's gap or for the controller's own delay.
    async fn fence_expired(&self) {
        let Ok(quorum) = self.quorum() else { return };
        let session = Duration::from_millis(self.config.cluster.broker_session_timeout_ms);
        let image = quorum.state();
        let now = Instant::now();
        let floor = self.heard_floor.lock().unwrap_or(now);
        let expired: Vec<i32> = {
            let beats = self.heartbeats.lock();
            image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter(|b| {
                    let last = beats
                        .get(&b.id)
                        .filter(|(inc, _)| *inc == b.incarnation)
                        .map(|(_, at)| *at);
                    controller::session_expired(last, floor, now, session)
                })
                .map(|b| b.id)
                .collect()
        };
        for id in expired {
            let result = self
                .commit(|image| {
                    let records =
                        controller::fence_broker(image, id, &|t| self.unclean_allowed(image, t))?;
                    Ok((records, ()))
                })
                .await;
            match result {
                Ok(()) => tracing::warn!(
                    broker = id,
                    session_ms = session.as_millis() as u64,
                    "fenced broker: no heartbeat within broker.session.timeout.ms"
                ),
                Err(e) => tracing::warn!(broker = id, error = %e, "fencing broker failed"),
            }
        }
    }

    async fn rebalance_leaders(&self) {
        let pct = self.config.cluster.leader_imbalance_per_broker_percentage;
        let result = self
            .commit(|image| Ok((controller::auto_rebalance(image, pct), ())))
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "preferred leader rebalance failed");
        }
    }
}

impl strom_raft::RequestHandler for ControllerService {
    type Request = ControllerRequest;
    type Reply = ControllerReply;

    async fn handle(&self, request: ControllerRequest) -> ControllerReply {
        self.decide(request).await
    }
}

/// The controller's timers, run on every voter and acting only while it leads: fencing
/// brokers that stopped heartbeating, and preferred-leader rebalancing.
pub async fn run_duties(service: Arc<ControllerService>) {
    let mut tick = tokio::time::interval(DUTY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let rebalance_every =
        Duration::from_millis(service.config.cluster.leader_imbalance_check_interval_ms);
    let mut leading = false;
    let mut last_tick = Instant::now();
    let mut last_rebalance = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let late = now.saturating_duration_since(last_tick);
        let Ok(quorum) = service.quorum() else { return };
        if !quorum.is_leader() {
            leading = false;
            last_tick = Instant::now();
            continue;
        }
        if !leading {
            leading = true;
            service.heartbeats.lock().clear();
            *service.heard_floor.lock() = Some(now);
            tracing::info!(
                node = service.config.node_id,
                "this node is the active controller"
            );
        } else if controller_stalled(late) {
            // This timer could not run: the controller's own threads were starved, so
            // heartbeats may be waiting unprocessed. Start everyone's session afresh.
            *service.heard_floor.lock() = Some(now);
            tracing::warn!(
                stalled_ms = late.as_millis() as u64,
                "the controller was stalled; broker sessions restart from now"
            );
        }
        drop(quorum);
        service.fence_expired().await;
        if service.config.cluster.auto_leader_rebalance_enable
            && last_rebalance.elapsed() >= rebalance_every
        {
            last_rebalance = Instant::now();
            service.rebalance_leaders().await;
        }
        // Measured from the end of this round, so only the wait for the next tick counts
        // towards a stall, not the commits awaited here.
        last_tick = Instant::now();
    }
}

/// The user names the bootstrap records give credentials to, for the log line.
fn bootstrap_users(records: &[MetadataRecord]) -> Vec<&str> {
    records
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::UserScramCredential { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// A duty tick this much later than scheduled means the controller itself did not run.
const STALL_THRESHOLD: Duration = Duration::from_millis(1000);

/// Whether the gap since the previous duty tick shows a stall of the controller's own.
fn controller_stalled(since_last_tick: Duration) -> bool {
    since_last_tick > DUTY_TICK + STALL_THRESHOLD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_duty_tick_counts_as_a_controller_stall() {
        assert!(!controller_stalled(DUTY_TICK));
        assert!(!controller_stalled(Duration::from_millis(900)));
        assert!(controller_stalled(Duration::from_secs(3)));
    }
}
