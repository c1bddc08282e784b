//! Admin and produce requests sent over [`WireClient`]: partition reassignments (api keys
//! 45/46), IncrementalAlterConfigs, FindCoordinator, Metadata as one broker sees it, and a
//! Produce that goes to exactly one broker.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, FindCoordinatorRequest,
    IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::{HarnessError, Result};
use crate::wire::WireClient;

/// Kafka's NOT_CONTROLLER: the request must go to the (forwarding) controller broker.
pub const NOT_CONTROLLER: i16 = 41;

/// A Kafka error code from a response, with the broker's message if it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaCode {
    pub code: i16,
    pub message: Option<String>,
}

impl KafkaCode {
    pub fn new(code: i16, message: Option<&StrBytes>) -> KafkaCode {
        KafkaCode {
            code,
            message: message.map(|m| m.as_str().to_string()),
        }
    }
}

impl std::fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match ResponseError::try_from_code(self.code) {
            Some(e) => write!(f, "{e} ({})", self.code)?,
            None => write!(f, "NONE (0)")?,
        }
        match &self.message {
            Some(m) => write!(f, ": {m}"),
            None => Ok(()),
        }
    }
}

fn unexpected(what: &str, got: &ResponseKind) -> HarnessError {
    HarnessError::Protocol(format!("{what}: unexpected response {got:?}"))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A partition as one broker's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Metadata for `topics` (all topics if `None`) as the connected broker sees it.
pub fn metadata(client: &mut WireClient, topics: Option<&[&str]>) -> Result<MetadataResponse> {
    let version = client.version(ApiKey::Metadata, 12)?;
    let request = MetadataRequest::default().with_topics(topics.map(|ts| {
        ts.iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect()
    }));
    match client.request(ApiKey::Metadata, version, RequestKind::Metadata(request))? {
        ResponseKind::Metadata(m) => Ok(m),
        other => Err(unexpected("Metadata", &other)),
    }
}

/// One partition as the connected broker sees it; `None` if it does not know it.
pub fn partition_view(
    client: &mut WireClient,
    topic: &str,
    partition: i32,
) -> Result<Option<PartitionView>> {
    let m = metadata(client, Some(&[topic]))?;
    let view = m
        .topics
        .iter()
        .filter(|t| t.error_code == 0 && t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| PartitionView {
            partition,
            leader: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        });
    Ok(view)
}

/// Starts (`Some(replicas)`) or cancels (`None`) the reassignment of one partition.
/// Returns the top-level or partition error code if the controller refused.
pub fn alter_partition_reassignment(
    client: &mut WireClient,
    topic: &str,
    partition: i32,
    replicas: Option<&[i32]>,
) -> Result<std::result::Result<(), KafkaCode>> {
    let version = client.version(ApiKey::AlterPartitionReassignments, 0)?;
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect()),
                )])]);
    let response = match client.request(
        ApiKey::AlterPartitionReassignments,
        version,
        RequestKind::AlterPartitionReassignments(request),
    )? {
        ResponseKind::AlterPartitionReassignments(r) => r,
        other => return Err(unexpected("AlterPartitionReassignments", &other)),
    };
    if response.error_code != 0 {
        return Ok(Err(KafkaCode::new(
            response.error_code,
            response.error_message.as_ref(),
        )));
    }
    let p = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| {
            HarnessError::Protocol("AlterPartitionReassignments: partition missing in reply".into())
        })?;
    Ok(if p.error_code == 0 {
        Ok(())
    } else {
        Err(KafkaCode::new(p.error_code, p.error_message.as_ref()))
    })
}

/// A reassignment in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// Every reassignment in progress.
pub fn list_partition_reassignments(
    client: &mut WireClient,
) -> Result<std::result::Result<Vec<OngoingReassignment>, KafkaCode>> {
    let version = client.version(ApiKey::ListPartitionReassignments, 0)?;
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(None);
    let response = match client.request(
        ApiKey::ListPartitionReassignments,
        version,
        RequestKind::ListPartitionReassignments(request),
    )? {
        ResponseKind::ListPartitionReassignments(r) => r,
        other => return Err(unexpected("ListPartitionReassignments", &other)),
    };
    if response.error_code != 0 {
        return Ok(Err(KafkaCode::new(
            response.error_code,
            response.error_message.as_ref(),
        )));
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(Ok(response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| OngoingReassignment {
                topic: t.name.as_str().to_string(),
                partition: p.partition_index,
                replicas: ids(&p.replicas),
                adding: ids(&p.adding_replicas),
                removing: ids(&p.removing_replicas),
            })
        })
        .collect()))
}

/// IncrementalAlterConfigs operations.
#[derive(Debug, Clone, Copy)]
pub enum ConfigOp {
    Set = 0,
    Delete = 1,
}

/// Kafka's config resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// One IncrementalAlterConfigs request for one resource; `Err` carries the refusal.
pub fn incremental_alter_configs(
    client: &mut WireClient,
    resource_type: i8,
    resource_name: &str,
    configs: &[(&str, ConfigOp, Option<&str>)],
) -> Result<std::result::Result<(), KafkaCode>> {
    let version = client.version(ApiKey::IncrementalAlterConfigs, 1)?;
    let resource = AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(resource_name.to_string()))
        .with_configs(
            configs
                .iter()
                .map(|(name, op, value)| {
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(name.to_string()))
                        .with_config_operation(*op as i8)
                        .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let response = match client.request(
        ApiKey::IncrementalAlterConfigs,
        version,
        RequestKind::IncrementalAlterConfigs(request),
    )? {
        ResponseKind::IncrementalAlterConfigs(r) => r,
        other => return Err(unexpected("IncrementalAlterConfigs", &other)),
    };
    for r in &response.responses {
        if r.error_code != 0 {
            return Ok(Err(KafkaCode::new(r.error_code, r.error_message.as_ref())));
        }
    }
    Ok(Ok(()))
}

/// The node id of `group`'s coordinator according to the connected broker.
pub fn find_group_coordinator(
    client: &mut WireClient,
    group: &str,
) -> Result<std::result::Result<i32, KafkaCode>> {
    // v3: the last single-key version; later ones batch keys and answer per key.
    let version = client.version(ApiKey::FindCoordinator, 3)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let response = match client.request(
        ApiKey::FindCoordinator,
        version,
        RequestKind::FindCoordinator(request),
    )? {
        ResponseKind::FindCoordinator(r) => r,
        other => return Err(unexpected("FindCoordinator", &other)),
    };
    if response.error_code != 0 {
        return Ok(Err(KafkaCode::new(
            response.error_code,
            response.error_message.as_ref(),
        )));
    }
    Ok(Ok(response.node_id.0))
}

/// Produces `values` as one batch to exactly the connected broker, with `acks` and the
/// broker-side `timeout_ms`. `Ok(Ok(base_offset))` means acknowledged.
pub fn produce_direct(
    client: &mut WireClient,
    topic: &str,
    partition: i32,
    acks: i16,
    timeout_ms: i32,
    values: &[String],
) -> Result<std::result::Result<i64, KafkaCode>> {
    // v9 is flexible and still names topics (v13 switched to topic ids).
    let version = client.version(ApiKey::Produce, 9)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: None,
            value: Some(bytes::Bytes::from(v.clone().into_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut batch = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| HarnessError::Protocol(format!("encode record batch: {e}")))?;
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.freeze()))])]);
    let response = match client.request(ApiKey::Produce, version, RequestKind::Produce(request))? {
        ResponseKind::Produce(r) => r,
        other => return Err(unexpected("Produce", &other)),
    };
    let p = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .ok_or_else(|| HarnessError::Protocol("Produce: partition missing in reply".into()))?;
    Ok(if p.error_code == 0 {
        Ok(p.base_offset)
    } else {
        Err(KafkaCode::new(p.error_code, p.error_message.as_ref()))
    })
}

/// One log directory as DescribeLogDirs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirInfo {
    pub path: String,
    /// 0, or KAFKA_STORAGE_ERROR (56) for an offline directory.
    pub error_code: i16,
    /// (topic, partition) held there.
    pub partitions: Vec<(String, i32)>,
    pub usable_bytes: i64,
}

/// Every log directory of the broker `client` is connected to (DescribeLogDirs, all topics).
pub fn describe_log_dirs(client: &mut WireClient) -> Result<Vec<LogDirInfo>> {
    use kafka_protocol::messages::DescribeLogDirsRequest;
    let version = client.version(ApiKey::DescribeLogDirs, 4)?;
    let response = match client.request(
        ApiKey::DescribeLogDirs,
        version,
        RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
    )? {
        ResponseKind::DescribeLogDirs(r) => r,
        other => return Err(unexpected("DescribeLogDirs", &other)),
    };
    Ok(response
        .results
        .iter()
        .map(|d| LogDirInfo {
            path: d.log_dir.to_string(),
            error_code: d.error_code,
            partitions: d
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.name.0.to_string(), p.partition_index))
                })
                .collect(),
            usable_bytes: d.usable_bytes,
        })
        .collect())
}
