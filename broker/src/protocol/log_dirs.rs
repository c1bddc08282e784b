//! DescribeLogDirs (`kafka-log-dirs --describe`): each log directory with its state, its
//! space and the size of every partition in it. An offline directory answers
//! KAFKA_STORAGE_ERROR, as Kafka's does after KIP-112.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::log::{LogDirDescription, TopicPartition};

/// Kafka's `UNKNOWN_VOLUME_BYTES`: the space of a directory that cannot be read.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

pub async fn describe_log_dirs(
    broker: &Arc<Broker>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    // Sizes come from every partition's log lock: off the request threads.
    let b = broker.clone();
    let described = tokio::task::spawn_blocking(move || describe(&b, &request)).await;
    match described {
        Ok(results) => DescribeLogDirsResponse::default().with_results(results),
        Err(e) => {
            tracing::error!(error = %e, "describing log directories failed");
            DescribeLogDirsResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code())
        }
    }
}

fn describe(broker: &Broker, request: &DescribeLogDirsRequest) -> Vec<DescribeLogDirsResult> {
    // `None` asks for every partition.
    let wanted: Option<Vec<(String, i32)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let asked = |tp: &TopicPartition| {
        wanted
            .as_ref()
            .is_none_or(|w| w.iter().any(|(t, p)| *t == tp.topic && *p == tp.partition))
    };
    broker
        .logs
        .describe_dirs()
        .into_iter()
        .map(|dir| result(broker, dir, &asked))
        .collect()
}

fn result(
    broker: &Broker,
    dir: LogDirDescription,
    asked: &dyn Fn(&TopicPartition) -> bool,
) -> DescribeLogDirsResult {
    let path = str_bytes(&dir.path.display().to_string());
    if dir.offline_reason.is_some() {
        return DescribeLogDirsResult::default()
            .with_log_dir(path)
            .with_error_code(ResponseError::KafkaStorageError.code())
            .with_total_bytes(UNKNOWN_VOLUME_BYTES)
            .with_usable_bytes(UNKNOWN_VOLUME_BYTES);
    }
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (tp, size) in dir.partitions.iter().filter(|(tp, _)| asked(tp)) {
        // Kafka's lag of a current (not future) replica: how far its log end is behind
        // the high watermark it knows.
        let lag = broker
            .partition(&tp.topic, tp.partition)
            .map(|p| (p.high_watermark() - p.log_end_offset()).max(0))
            .unwrap_or(0);
        topics.entry(tp.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(tp.partition)
                .with_partition_size(*size as i64)
                .with_offset_lag(lag),
        );
    }
    DescribeLogDirsResult::default()
        .with_log_dir(path)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(topic_name(&name))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_total_bytes(dir.total_bytes.map_or(UNKNOWN_VOLUME_BYTES, |b| b as i64))
        .with_usable_bytes(dir.usable_bytes.map_or(UNKNOWN_VOLUME_BYTES, |b| b as i64))
}
