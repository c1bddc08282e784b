//! The broker's shared state, handed to every connection: config, metadata, logs, producer
//! ids and metrics, plus the few operations that span them (committing a metadata change
//! and making the disk follow it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::controller::{self, Defaults, NewTopic};
use crate::error::{ApiError, ApiResult};
use crate::group::{GroupCoordinator, OffsetsLog, OFFSETS_TOPIC};
use crate::log::batch::{self, BatchError};
use crate::log::{now_ms, AppendOutcome, LogManager, Partition, TopicPartition};
use crate::metadata::store::CommitError;
use crate::metadata::{MetadataImage, MetadataRecord, MetadataStore};
use crate::metrics::Metrics;
use crate::txn::producer_ids::ProducerIdManager;

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub metadata: MetadataStore,
    pub logs: LogManager,
    pub producer_ids: ProducerIdManager,
    pub groups: GroupCoordinator,
    pub metrics: Metrics,
    ready: AtomicBool,
    sync_lock: parking_lot::Mutex<()>,
    shutdown: watch::Receiver<bool>,
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        cluster_id: String,
        metadata: MetadataStore,
        logs: LogManager,
        shutdown: watch::Receiver<bool>,
    ) -> Broker {
        Broker {
            groups: GroupCoordinator::new(config.groups.clone()),
            config,
            cluster_id,
            metadata,
            logs,
            producer_ids: ProducerIdManager::default(),
            metrics: Metrics::new(),
            ready: AtomicBool::new(false),
            sync_lock: parking_lot::Mutex::new(()),
            shutdown,
        }
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The brokers placement may use. A single node is its own cluster.
    pub fn live_brokers(&self) -> Vec<i32> {
        vec![self.config.node_id]
    }

    pub fn defaults(&self) -> Defaults {
        Defaults {
            num_partitions: self.config.num_partitions,
            replication_factor: self.config.default_replication_factor,
        }
    }

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

    /// Commits the records `decide` returns and brings the partition logs in line with the
    /// new image. `decide` sees the latest image under the commit lock.
    pub fn commit<T>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> ApiResult<(Vec<MetadataRecord>, T)>,
    ) -> ApiResult<T> {
        let (_, value) = self.metadata.commit_with(decide).map_err(|e| match e {
            CommitError::Rejected(e) => e,
            CommitError::Io(io) => {
                tracing::error!(error = %io, "metadata journal write failed");
                ApiError::new(
                    ResponseError::KafkaStorageError,
                    format!("metadata write failed: {io}"),
                )
            }
        })?;
        // Concurrent commits may finish out of order; syncing to the latest image under one
        // lock means a slower sync can never undo a newer topic with an older image.
        let _syncing = self.sync_lock.lock();
        self.logs
            .sync(&self.metadata.image(), false)
            .map_err(|io| {
                tracing::error!(error = %io, "creating or removing partition logs failed");
                ApiError::new(
                    ResponseError::KafkaStorageError,
                    format!("partition log change failed: {io}"),
                )
            })?;
        Ok(value)
    }

    /// Creates `name` with the broker defaults if auto-creation is on and it does not exist.
    /// Returns the error to report for the topic when it cannot be had.
    pub fn auto_create(&self, name: &str) -> ApiResult<()> {
        controller::validate_topic_name(name)?;
        if self.metadata.image().topic(name).is_some() {
            return Ok(());
        }
        if !self.config.auto_create_topics_enable {
            return Err(ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist and auto.create.topics.enable is false"),
            ));
        }
        let topic = NewTopic {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        };
        let created = self.create_topic_once(&topic)?;
        if created {
            tracing::info!(topic = name, "auto-created topic");
        }
        Ok(())
    }

    /// Creates `topic` unless it exists by the time the commit lock is held (another
    /// request may have created it meanwhile). Returns whether this call created it.
    fn create_topic_once(&self, topic: &NewTopic) -> ApiResult<bool> {
        let defaults = self.defaults();
        let brokers = self.live_brokers();
        self.commit(|image| {
            if image.topic(&topic.name).is_some() {
                return Ok((Vec::new(), false));
            }
            Ok((
                controller::create_topic(image, &defaults, &brokers, topic)?,
                true,
            ))
        })
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

    /// The partition, if this broker holds it.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.logs.get(&TopicPartition {
            topic: topic.to_string(),
            partition,
        })
    }

    /// The partition or the Kafka error for its absence.
    pub fn partition_or_error(&self, topic: &str, partition: i32) -> ApiResult<Arc<Partition>> {
        self.partition(topic, partition).ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("{topic}-{partition} does not exist on this broker"),
            )
        })
    }

    /// The current leader epoch of a partition per the metadata image.
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        self.metadata
            .image()
            .topic(topic)
            .and_then(|t| t.partitions.get(&partition).map(|p| p.leader_epoch))
            .unwrap_or(0)
    }

    /// Validates and appends a record set to a partition this broker leads; returns the
    /// outcome and the log start offset. Shared by Produce and the group coordinator.
    pub fn append_records(
        &self,
        topic: &str,
        partition: i32,
        records: Option<&bytes::Bytes>,
        acks: i16,
    ) -> ApiResult<(AppendOutcome, i64)> {
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
        let leader_epoch = self.leader_epoch(topic, partition);
        let (outcome, log_start, leo) = {
            let mut log = partition_state.log.lock();
            if acks == -1 {
                // The ISR of a single broker is itself: acks=all can only be met when the
                // topic does not ask for more in-sync replicas than that.
                let isr = 1;
                let min_isr = log.config().min_insync_replicas;
                if isr < min_isr {
                    return Err(ApiError::new(
                        ResponseError::NotEnoughReplicas,
                        format!("{topic}-{partition} has {isr} in-sync replica(s), min.insync.replicas is {min_isr}"),
                    ));
                }
            }
            let outcome = log.append(records, &batches, leader_epoch, now_ms())?;
            (outcome, log.log_start_offset(), log.log_end_offset())
        };
        partition_state.publish_end(leo);
        self.metrics
            .record_produce(topic, outcome.bytes, outcome.records);
        Ok((outcome, log_start))
    }

    /// Creates `__consumer_offsets` the first time a group needs it, as Kafka does:
    /// compacted, `offsets.topic.num.partitions` partitions. The replication factor is
    /// capped at the live brokers so a small cluster can still run groups.
    pub fn ensure_offsets_topic(&self) -> ApiResult<()> {
        if self.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let cfg = &self.config.groups;
        let brokers = self.live_brokers();
        let replication = cfg
            .offsets_topic_replication_factor
            .min(brokers.len() as i16);
        if replication < cfg.offsets_topic_replication_factor {
            tracing::warn!(
                configured = cfg.offsets_topic_replication_factor,
                live_brokers = brokers.len(),
                "offsets.topic.replication.factor exceeds the live brokers; creating {OFFSETS_TOPIC} with replication factor {replication}"
            );
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
        let created = self.create_topic_once(&topic)?;
        if created {
            tracing::info!(
                partitions = cfg.offsets_topic_partitions,
                "created {OFFSETS_TOPIC}"
            );
        }
        Ok(())
    }
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
    ) -> ApiResult<()> {
        let batch = crate::group::load::encode_batch(records, now_ms())?;
        self.append_records(OFFSETS_TOPIC, partition, Some(&batch), -1)
            .map(|_| ())
    }
}
