//! DescribeLogDirs on [`Admin`]: the log directories of the broker the admin is connected
//! to, as Kafka's `Admin.describeLogDirs` (and `kafka-log-dirs.sh --describe`) show them.
//!
//! Kafka sends DescribeLogDirs to each broker asked about; this client describes the
//! broker it is connected to, so connect to [`crate::admin_cluster::BrokerNode::address`]
//! of each broker in turn.

use std::collections::BTreeMap;

use kafka_protocol::messages::DescribeLogDirsRequest;

use crate::admin::{check, Admin, AdminError, Outcome};
use crate::admin_cluster::TopicPartition;

/// v4 adds each directory's total and usable bytes; strom-broker and Kafka 4 serve it.
const DESCRIBE_LOG_DIRS_VERSION: i16 = 4;

/// One online log directory as DescribeLogDirs reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDirDescription {
    /// Every replica held in the directory.
    pub replicas: BTreeMap<TopicPartition, ReplicaInfo>,
    /// The volume's size; `None` when the broker could not read it.
    pub total_bytes: Option<i64>,
    /// The space left for the broker; `None` when the broker could not read it.
    pub usable_bytes: Option<i64>,
}

/// One replica in a log directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// The bytes its log takes.
    pub size: i64,
    /// How far its log end is behind the high watermark (or, for a future replica, behind
    /// the current one).
    pub offset_lag: i64,
    /// A replica being moved here from another directory of the same broker.
    pub is_future: bool,
}

impl Admin {
    /// Every log directory of the connected broker, by path, with the replicas it holds.
    /// An offline directory is refused with KAFKA_STORAGE_ERROR; a refusal of the whole
    /// request (CLUSTER_AUTHORIZATION_FAILED without DESCRIBE on the cluster) is an error.
    pub async fn describe_log_dirs(
        &mut self,
    ) -> Result<BTreeMap<String, Outcome<LogDirDescription>>, AdminError> {
        // Null topics ask for every partition.
        let request = DescribeLogDirsRequest::default().with_topics(None);
        let response = self
            .send("DescribeLogDirs", request, DESCRIBE_LOG_DIRS_VERSION)
            .await?;
        check("DescribeLogDirs", "the request", response.error_code, None)?;
        let known = |bytes: i64| Some(bytes).filter(|b| *b >= 0);
        Ok(response
            .results
            .iter()
            .map(|dir| {
                let path = dir.log_dir.to_string();
                let outcome = check(
                    "DescribeLogDirs",
                    format!("log dir {path}"),
                    dir.error_code,
                    None,
                )
                .map(|()| LogDirDescription {
                    replicas: dir
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions.iter().map(|p| {
                                let info = ReplicaInfo {
                                    size: p.partition_size,
                                    offset_lag: p.offset_lag,
                                    is_future: p.is_future_key,
                                };
                                ((t.name.0.to_string(), p.partition_index), info)
                            })
                        })
                        .collect(),
                    total_bytes: known(dir.total_bytes),
                    usable_bytes: known(dir.usable_bytes),
                });
                (path, outcome)
            })
            .collect())
    }
}
