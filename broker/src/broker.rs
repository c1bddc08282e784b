//! The broker's shared state, handed to every connection: config, metadata, logs, replica
//! roles, producer ids, groups and metrics, plus the few operations that span them
//! (asking the controller for a change, appending to a partition this broker leads and
//! waiting for the ISR to have it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::controller::{self, Defaults, NewTopic};
use crate::error::{ApiError, ApiResult};
use crate::group::{GroupCoordinator, OffsetsLog, OFFSETS_TOPIC};
use crate::log::batch::{self, BatchError};
use crate::log::recompress;
use crate::log::{now_ms, AppendOutcome, LogManager, Partition, TopicPartition};
use crate::metadata::MetadataImage;
use crate::metrics::Metrics;
use crate::quorum::auto_create::{Admission, AutoCreateLimits, AutoCreator};
use crate::quorum::membership::Membership;
use crate::quorum::{ControllerOk, ControllerRequest, Metadata};
use crate::replication::ReplicaManager;
use crate::txn::producer_ids::ProducerIdManager;

/// How long a request waits for its own metadata change to reach this broker's image.
const IMAGE_CATCH_UP: Duration = Duration::from_secs(5);
/// How long a Produce to a topic being auto-created waits for it before answering
/// LEADER_NOT_AVAILABLE (the client retries).
const PRODUCE_CREATE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub metadata: Metadata,
    pub membership: Membership,
    pub replicas: ReplicaManager,
    pub logs: LogManager,
    pub producer_ids: ProducerIdManager,
    pub groups: GroupCoordinator,
    pub metrics: Metrics,
    /// Topics clients asked to auto-create, on their way to the controller in batches.
    pub auto_creator: AutoCreator,
    /// The ACL authorizer, in step with the metadata image (see `auth::authorize`).
    pub acls: crate::auth::authorize::LiveAcls,
    /// Client quotas' rate sensors (the quotas themselves are in the metadata image).
    /// Shared with this node's controller service, which charges controller mutations.
    pub client_quotas: Arc<crate::quota::ClientQuotas>,
    /// How follower fetchers connect to leaders (TLS and SASL as configured).
    pub inter_broker: Arc<crate::net::outbound::InterBrokerConnector>,
    ready: AtomicBool,
    shutdown: watch::Receiver<bool>,
}

/// A write this broker appended as leader, and what an acks=all answer waits for.
#[derive(Debug, Clone)]
pub struct Appended {
    pub outcome: AppendOutcome,
    pub log_start_offset: i64,
    /// The high watermark must reach this for the write to be committed.
    pub required_end: i64,
    pub leader_epoch: i32,
}

impl Broker {
    // One argument per part start-up assembles the broker from.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: BrokerConfig,
        cluster_id: String,
        metadata: Metadata,
        membership: Membership,
        logs: LogManager,
        inter_broker: Arc<crate::net::outbound::InterBrokerConnector>,
        shutdown: watch::Receiver<bool>,
        metrics: Metrics,
        client_quotas: Arc<crate::quota::ClientQuotas>,
    ) -> Broker {
        Broker {
            client_quotas,
            inter_broker,
            groups: GroupCoordinator::new(config.groups.clone()),
            replicas: ReplicaManager::new(&config),
            auto_creator: AutoCreator::new(AutoCreateLimits {
                per_request: config.auto_create_topics_max_per_request,
                pending: config.auto_create_topics_max_pending,
                per_client: config.auto_create_topics_max_pending_per_client,
            }),
            acls: crate::auth::authorize::LiveAcls::new(config.authorizer.clone()),
            config,
            cluster_id,
            metadata,
            membership,
            logs,
            producer_ids: ProducerIdManager::default(),
            metrics,
            ready: AtomicBool::new(false),
            shutdown,
        }
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn defaults(&self) -> Defaults {
        Defaults {
            num_partitions: self.config.num_partitions,
            replication_factor: self.config.default_replication_factor,
        }
    }

    /// Started and serving; see `admin_http` for what readiness adds on a cluster.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// A receiver that changes to `true` when the broker starts shutting down; long polls
    /// select on it so they end promptly.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.cluster.quorum_request_timeout_ms)
    }

    /// Asks the active controller for a change and waits for its answer.
    pub async fn controller(&self, request: ControllerRequest) -> ApiResult<ControllerOk> {
        self.metadata.request(request, self.request_timeout()).await
    }

    /// Waits (briefly) until this broker's image satisfies `ready` and its partitions
    /// play the roles that image gives them: a change the controller committed reaches
    /// every broker a moment later.
    pub async fn await_image(&self, ready: impl Fn(&MetadataImage) -> bool) -> bool {
        let mut images = self.metadata.subscribe();
        let waited = tokio::time::timeout(IMAGE_CATCH_UP, async {
            let applied = images.wait_for(|i| ready(i)).await.ok()?.applied;
            self.replicas.wait_applied(applied).await;
            Some(())
        })
        .await;
        matches!(waited, Ok(Some(())))
    }

    /// Auto-creation of one topic for Produce to an unknown topic: admitted like
    /// `auto_create_many`, then waits (at most `PRODUCE_CREATE_WAIT`) for the batch to
    /// reach this broker, so a producer that does not retry still gets its first write
    /// in. The wait does no work: a producer that leaves leaves nothing running.
    pub async fn auto_create(&self, name: &str, client: &str) -> ApiResult<()> {
        let admitted = self
            .auto_create_many(&[name], client)
            .pop()
            .unwrap_or(Ok(()));
        match admitted {
            Err(e) if e.error == ResponseError::LeaderNotAvailable => {
                let created = tokio::time::timeout(
                    PRODUCE_CREATE_WAIT,
                    self.await_image(|i| i.topic(name).is_some()),
                )
                .await;
                if matches!(created, Ok(true)) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    /// Auto-creation of the topics a request names, answered at once as Kafka does: `Ok`
    /// for a topic that exists; INVALID_TOPIC_EXCEPTION for an invalid name and
    /// UNKNOWN_TOPIC_OR_PARTITION with auto-creation off (nothing created either way);
    /// LEADER_NOT_AVAILABLE for one now being created in the background; and
    /// UNKNOWN_TOPIC_OR_PARTITION for one left uncreated by the bounds (see
    /// `quorum::auto_create`). Nothing here waits for the controller, so a client that
    /// disconnects leaves only the bounded batches already queued.
    /// `client` names the asker for `auto.create.topics.max.pending.per.client`.
    pub fn auto_create_many(&self, names: &[&str], client: &str) -> Vec<ApiResult<()>> {
        let image = self.metadata.image();
        let mut results: Vec<Option<ApiResult<()>>> = Vec::with_capacity(names.len());
        let mut candidates = Vec::new();
        for name in names {
            let decided = if let Err(e) = controller::validate_topic_name(name) {
                Some(Err(e))
            } else if image.topic(name).is_some() {
                Some(Ok(()))
            } else if !self.config.auto_create_topics_enable {
                Some(Err(ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist and auto.create.topics.enable is false"),
                )))
            } else if controller::is_internal_topic(name) {
                // Internal topics are created by their coordinators, with their own
                // settings, never with the broker defaults.
                Some(Err(ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("internal topic '{name}' is not auto-created"),
                )))
            } else {
                candidates.push(*name);
                None
            };
            results.push(decided);
        }
        let mut verdicts = if candidates.is_empty() {
            Vec::new()
        } else {
            let per_topic = self.config.num_partitions.max(1) as u64;
            self.auto_creator
                .submit(&candidates, client, self.partition_headroom(), per_topic)
        }
        .into_iter();
        let limits = *self.auto_creator.limits();
        names
            .iter()
            .zip(results)
            .map(|(name, decided)| match decided {
                Some(r) => r,
                None => {
                    let verdict = verdicts.next().unwrap_or(Admission::OverPendingLimit);
                    Err(verdict.error(name, &limits))
                }
            })
            .collect()
    }

    /// How many more partition replicas this broker may take on before
    /// `max.broker.partitions`: auto-creation leaves topics uncreated
    /// (UNKNOWN_TOPIC_OR_PARTITION) rather than asking the controller for more. The
    /// controller enforces the limit in any case; this only spares it hopeless requests.
    pub fn partition_headroom(&self) -> Option<u64> {
        let me = self.node_id();
        let hosted = self
            .metadata
            .image()
            .partitions()
            .filter(|(_, p)| p.replicas.contains(&me))
            .count();
        Some(self.config.max_broker_partitions.saturating_sub(hosted) as u64)
    }

    /// Creates `topic` unless it exists by the time the controller decides. Returns whether
    /// this call created it; either way the topic is in this broker's image on return.
    async fn create_topic_if_absent(&self, topic: NewTopic) -> ApiResult<bool> {
        let name = topic.name.clone();
        let reply = self
            .controller(ControllerRequest::CreateTopic {
                topic,
                defaults: self.defaults(),
                if_absent: true,
                validate_only: false,
                // The broker's own topics: no client's quota (Kafka creates internal topics
                // on the broker's behalf, not the client's).
                quota: None,
            })
            .await?;
        self.await_image(|i| i.topic(&name).is_some()).await;
        Ok(matches!(reply, ControllerOk::Created(true)))
    }

    /// The host and port clients should use to reach this broker through `listener`.
    pub fn advertised_endpoint(&self, listener: &str) -> (String, u16) {
        let advertised = self
            .config
            .advertised_for(listener)
            .unwrap_or(&self.config.advertised_listeners[0]);
        let host = if advertised.host.is_empty() || advertised.host == "0.0.0.0" {
            "localhost".to_string()
        } else {
            advertised.host.clone()
        };
        (host, advertised.port)
    }

    /// The partition, if this broker holds a replica of it.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.logs.get(&TopicPartition {
            topic: topic.to_string(),
            partition,
        })
    }

    /// The partition or the Kafka error for its absence here: NOT_LEADER_OR_FOLLOWER when
    /// it exists elsewhere in the cluster (the client's metadata is stale), else
    /// UNKNOWN_TOPIC_OR_PARTITION.
    /// A partition on an offline log directory answers KAFKA_STORAGE_ERROR.
    pub fn partition_or_error(&self, topic: &str, partition: i32) -> ApiResult<Arc<Partition>> {
        let found = self.partition(topic, partition);
        if let Some(p) = &found {
            p.check_online()?;
        }
        found.ok_or_else(|| {
            let elsewhere = self
                .metadata
                .image()
                .topic(topic)
                .is_some_and(|t| t.partitions.contains_key(&partition));
            if elsewhere {
                ApiError::new(
                    ResponseError::NotLeaderOrFollower,
                    format!(
                        "broker {} holds no replica of {topic}-{partition}",
                        self.node_id()
                    ),
                )
            } else {
                ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{topic}-{partition} does not exist"),
                )
            }
        })
    }

    /// The partition if this broker leads it, else NOT_LEADER_OR_FOLLOWER.
    pub fn led_partition(&self, topic: &str, partition: i32) -> ApiResult<Arc<Partition>> {
        let p = self.partition_or_error(topic, partition)?;
        if p.replica.lock().leader().is_none() {
            return Err(not_leader(self.node_id(), topic, partition));
        }
        Ok(p)
    }

    /// The current leader epoch of a partition per the metadata image.
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        self.metadata
            .image()
            .topic(topic)
            .and_then(|t| t.partitions.get(&partition).map(|p| p.leader_epoch))
            .unwrap_or(0)
    }

    /// Whether this broker currently leads `topic-partition`.
    pub fn is_leader(&self, topic: &str, partition: i32) -> bool {
        self.partition(topic, partition)
            .is_some_and(|p| p.replica.lock().leader().is_some())
    }

    /// Validates and appends a record set to a partition this broker leads. With acks=all
    /// the ISR must have at least min.insync.replicas members first (NOT_ENOUGH_REPLICAS);
    /// the caller then waits for the high watermark (`wait_replicated`).
    pub fn append_records(
        &self,
        topic: &str,
        partition: i32,
        records: Option<&bytes::Bytes>,
        acks: i16,
    ) -> ApiResult<Appended> {
        let partition_state = self.partition_or_error(topic, partition)?;
        let records = records.filter(|r| !r.is_empty()).ok_or_else(|| {
            ApiError::new(
                ResponseError::InvalidRecord,
                "produce request without records",
            )
        })?;
        let batches = batch::validate_record_set(records).map_err(batch_error)?;
        if let Some((_, h)) = batches
            .iter()
            .find(|(_, h)| h.is_transactional() || h.is_control())
        {
            return Err(ApiError::new(
                ResponseError::InvalidTxnState,
                format!(
                    "producer {} sent a transactional or control batch; transactions are not supported yet",
                    h.producer_id
                ),
            ));
        }
        // A topic with its own compression.type gets batches in that codec; the rewrite
        // happens before any lock is taken.
        let rewritten;
        let target = partition_state.log.lock().config().compression;
        let (records, batches) = match target.rewrite_to(&batches) {
            Some(codec) => {
                rewritten = recompress::rewrite(records, codec).map_err(batch_error)?;
                let batches = batch::validate_record_set(&rewritten).map_err(batch_error)?;
                (&rewritten, batches)
            }
            None => (records, batches),
        };
        // The role lock is held across the append so a leadership change cannot slip in
        // between the check and the write (lock order: role, then log).
        let mut role = partition_state.replica.lock();
        let Some(state) = role.leader_mut() else {
            return Err(not_leader(self.node_id(), topic, partition));
        };
        let leader_epoch = state.leader_epoch;
        let (outcome, log_start, leo) = {
            let mut log = partition_state.log.lock();
            // Again under the lock: the directory may have failed since the lookup.
            partition_state.check_online()?;
            if acks == -1 {
                let isr = state.isr.len() as i32;
                let min_isr = log.config().min_insync_replicas;
                if isr < min_isr {
                    return Err(ApiError::new(
                        ResponseError::NotEnoughReplicas,
                        format!("{topic}-{partition} has {isr} in-sync replica(s), min.insync.replicas is {min_isr}"),
                    ));
                }
            }
            let outcome = log
                .append(records, &batches, leader_epoch, now_ms())
                .inspect_err(|e| {
                    // Nothing more is written there until the directory is checked again.
                    if e.error == ResponseError::KafkaStorageError {
                        partition_state.report_storage_error(e);
                    }
                })?;
            (outcome, log.log_start_offset(), log.log_end_offset())
        };
        partition_state.publish_end(leo);
        crate::replication::manager::advance_high_watermark(
            &partition_state,
            state,
            self.node_id(),
        );
        drop(role);
        self.metrics
            .record_produce(topic, outcome.bytes, outcome.records);
        // A duplicate (an idempotent retry) still waits for its original to be committed.
        let required_end = outcome.base_offset + outcome.records.max(1);
        Ok(Appended {
            outcome,
            log_start_offset: log_start,
            required_end,
            leader_epoch,
        })
    }

    /// Waits until `topic-partition`'s high watermark reaches `end_offset`: what was written
    /// up to there is on every in-sync replica. Fails with NOT_LEADER_OR_FOLLOWER if this
    /// broker stops leading the partition, REQUEST_TIMED_OUT after `timeout`, and
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below min.insync.replicas
    /// while it waited.
    pub async fn wait_replicated(
        &self,
        topic: &str,
        partition: i32,
        end_offset: i64,
        timeout: Duration,
    ) -> ApiResult<()> {
        let p = self.partition_or_error(topic, partition)?;
        let mut hw = p.subscribe();
        let epoch = p.replica.lock().leader().map(|s| s.leader_epoch);
        let Some(epoch) = epoch else {
            return Err(not_leader(self.node_id(), topic, partition));
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reached = *hw.borrow_and_update() >= end_offset;
            {
                let role = p.replica.lock();
                let Some(state) = role.leader().filter(|s| s.leader_epoch == epoch) else {
                    return Err(not_leader(self.node_id(), topic, partition));
                };
                if reached {
                    let min_isr = p.log.lock().config().min_insync_replicas;
                    if (state.isr.len() as i32) < min_isr {
                        return Err(ApiError::new(
                            ResponseError::NotEnoughReplicasAfterAppend,
                            format!(
                                "{topic}-{partition} was written but its ISR shrank to {:?}, below min.insync.replicas {min_isr}",
                                state.isr
                            ),
                        ));
                    }
                    return Ok(());
                }
            }
            tokio::select! {
                changed = hw.changed() => {
                    if changed.is_err() {
                        return Err(not_leader(self.node_id(), topic, partition));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ApiError::new(
                        ResponseError::RequestTimedOut,
                        format!("{topic}-{partition}: the in-sync replicas did not confirm offset {} within {timeout:?}", end_offset - 1),
                    ));
                }
            }
        }
    }

    /// Creates `__consumer_offsets` the first time a group needs it, as Kafka does:
    /// compacted, `offsets.topic.num.partitions` partitions, replicated
    /// `offsets.topic.replication.factor` times. A one-node cluster caps the factor at 1 so
    /// the embedded default can run groups; a larger cluster waits for enough brokers
    /// (COORDINATOR_NOT_AVAILABLE meanwhile), so the offsets are never under-replicated
    /// for good.
    pub async fn ensure_offsets_topic(&self) -> ApiResult<()> {
        if self.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let cfg = &self.config.groups;
        let mut replication = cfg.offsets_topic_replication_factor;
        if self.config.cluster.voters.len() == 1 {
            let live = self.metadata.image().live_brokers().len().max(1) as i16;
            if live < replication {
                tracing::warn!(
                    configured = replication,
                    live_brokers = live,
                    "single-node cluster: creating {OFFSETS_TOPIC} with replication factor {live}"
                );
                replication = live;
            }
        }
        let topic = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: cfg.offsets_topic_partitions,
            replication_factor: replication,
            configs: vec![
                ("cleanup.policy".into(), Some("compact".into())),
                (
                    "segment.bytes".into(),
                    Some(cfg.offsets_topic_segment_bytes.to_string()),
                ),
                ("compression.type".into(), Some("producer".into())),
            ],
            ..Default::default()
        };
        match self.create_topic_if_absent(topic).await {
            Ok(true) => {
                tracing::info!(
                    partitions = cfg.offsets_topic_partitions,
                    replication,
                    "created {OFFSETS_TOPIC}"
                );
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) if e.error == ResponseError::InvalidReplicationFactor => Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                format!("cannot create {OFFSETS_TOPIC} yet: {}", e.message),
            )),
            Err(e) => Err(e),
        }
    }
}

fn not_leader(me: i32, topic: &str, partition: i32) -> ApiError {
    ApiError::new(
        ResponseError::NotLeaderOrFollower,
        format!("broker {me} is not the leader of {topic}-{partition}"),
    )
}

fn batch_error(e: BatchError) -> ApiError {
    let code = match e {
        BatchError::CrcMismatch { .. } | BatchError::Truncated(_) => ResponseError::CorruptMessage,
        BatchError::UnsupportedMagic(_) | BatchError::Malformed(_) => ResponseError::InvalidRecord,
    };
    ApiError::new(code, e.to_string())
}

/// The coordinator's writes go through the same append path as an acks=all produce.
impl OffsetsLog for Broker {
    fn append(
        &self,
        partition: i32,
        records: Vec<(bytes::Bytes, Option<bytes::Bytes>)>,
    ) -> ApiResult<i64> {
        let batch = crate::group::load::encode_batch(records, now_ms())?;
        self.append_records(OFFSETS_TOPIC, partition, Some(&batch), -1)
            .map(|a| a.outcome.base_offset + a.outcome.records)
    }
}
