//! The roller's calls to brokers: Metadata, DescribeConfigs, DescribeQuorum,
//! IncrementalAlterConfigs and ElectLeaders through strom-client (kafka-protocol codecs),
//! and the admin HTTP `GET /restart-safe`.
//!
//! The HTTP call is one GET of a small JSON answer from our own broker on the cluster
//! network, so it is written here over a tokio `TcpStream` (HTTP/1.1, `Connection: close`,
//! bounded size and time) rather than adding a client crate such as reqwest, whose TLS,
//! pooling and redirect machinery the roller would never use.
//!
//! `BrokerAdmin` is a trait so reconcile tests can stand in canned cluster states; the
//! real implementation is `KafkaAdmin`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_quorum_request::{
    PartitionData as QuorumPartition, TopicData as QuorumTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeQuorumRequest, ElectLeadersRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_client::{ClientError, ConnectError, Connection, Security};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::safety::{
    parse_restart_safe, AnswerError, PartitionState, QuorumState, RestartSafeAnswer, VoterState,
};
use super::triggers::ConfigChange;

/// Kafka's resource types and operations, as the protocol numbers them.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const ELECTION_PREFERRED: i8 = 0;
/// ElectLeaders per-partition errors that mean "nothing to do".
const ELECTION_NOT_NEEDED: i16 = 84;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const MIN_ISR_KEY: &str = "min.insync.replicas";
/// Largest `/restart-safe` answer read; the real one is a few hundred bytes.
const MAX_HTTP_ANSWER: usize = 64 * 1024;
const CLIENT_ID: &str = "strom-operator";

/// Where the roller reaches one broker.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: i32,
    /// `host:port` of a Kafka listener (the REPLICATION one in pods).
    pub kafka: String,
    /// `host:port` of the admin HTTP listener.
    pub admin: String,
    /// What the Kafka listener asks of the operator.
    pub security: Security,
}

/// The cluster as the brokers describe it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// The active controller: the quorum leader, else Metadata's controller id.
    pub controller: Option<i32>,
    pub partitions: Vec<PartitionState>,
    /// Effective `min.insync.replicas` per topic.
    pub min_isr: BTreeMap<String, i32>,
    pub quorum: Option<QuorumState>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("no broker answered ({0})")]
    NoBroker(String),
    #[error("{api} refused: {message}")]
    Refused { api: &'static str, message: String },
    #[error("GET http://{addr}{path}: {message}")]
    Http {
        addr: String,
        path: &'static str,
        message: String,
    },
    #[error(transparent)]
    Answer(#[from] AnswerError),
}

/// The broker calls the roller makes.
pub trait BrokerAdmin: Send + Sync {
    /// Partitions, ISRs, per-topic `min.insync.replicas` and the quorum, from the first
    /// of `brokers` that answers.
    fn describe(&self, brokers: Vec<Endpoint>) -> BoxFuture<'_, Result<ClusterView, AdminError>>;
    /// The broker's own `/restart-safe` verdict.
    fn restart_safe(
        &self,
        broker: Endpoint,
    ) -> BoxFuture<'_, Result<RestartSafeAnswer, AdminError>>;
    /// Per-broker dynamic configuration (IncrementalAlterConfigs on BROKER `id`), sent to
    /// that broker as Kafka's admin client does.
    fn alter_broker_config(
        &self,
        broker: Endpoint,
        changes: Vec<ConfigChange>,
    ) -> BoxFuture<'_, Result<(), AdminError>>;
    /// ElectLeaders PREFERRED for these partitions.
    fn elect_preferred(
        &self,
        brokers: Vec<Endpoint>,
        partitions: Vec<(String, i32)>,
    ) -> BoxFuture<'_, Result<(), AdminError>>;
}

/// The real thing: strom-client connections, one per call.
#[derive(Clone, Debug)]
pub struct KafkaAdmin {
    pub timeout: Duration,
}

impl Default for KafkaAdmin {
    fn default() -> Self {
        KafkaAdmin {
            timeout: Duration::from_secs(10),
        }
    }
}

impl KafkaAdmin {
    async fn connect(&self, broker: &Endpoint) -> Result<Connection, AdminError> {
        Ok(broker
            .security
            .connect(&broker.kafka, CLIENT_ID, self.timeout)
            .await?)
    }

    /// The first of `brokers` that accepts a connection.
    async fn any(&self, brokers: &[Endpoint]) -> Result<Connection, AdminError> {
        let mut errors = Vec::new();
        for broker in brokers {
            match self.connect(broker).await {
                Ok(connection) => return Ok(connection),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(AdminError::NoBroker(errors.join("; ")))
    }

    /// Every call is bounded: a broker that accepts and then hangs must not hang the
    /// reconcile.
    async fn timed<T>(
        &self,
        api: &'static str,
        call: impl std::future::Future<Output = Result<T, AdminError>>,
    ) -> Result<T, AdminError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| AdminError::Refused {
                api,
                message: format!("no answer within {:?}", self.timeout),
            })?
    }

    async fn describe_inner(&self, brokers: Vec<Endpoint>) -> Result<ClusterView, AdminError> {
        let mut conn = self.any(&brokers).await?;
        let metadata = conn
            .send(MetadataRequest::default().with_topics(None), 12)
            .await?;
        let mut partitions = Vec::new();
        for topic in &metadata.topics {
            let Some(name) = topic.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            for p in &topic.partitions {
                partitions.push(PartitionState {
                    topic: name.clone(),
                    partition: p.partition_index,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    leader: p.leader_id.0,
                });
            }
        }
        let topics: Vec<String> = metadata
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        let min_isr = min_isr(&mut conn, &topics).await?;
        // A failing DescribeQuorum leaves the quorum unknown, which blocks voter restarts
        // rather than failing the whole description.
        let quorum = match describe_quorum(&mut conn).await {
            Ok(quorum) => quorum,
            Err(e) => {
                tracing::warn!(error = %e, "DescribeQuorum failed");
                None
            }
        };
        let metadata_controller = Some(metadata.controller_id.0).filter(|c| *c >= 0);
        Ok(ClusterView {
            controller: quorum.as_ref().map(|q| q.leader).or(metadata_controller),
            partitions,
            min_isr,
            quorum,
        })
    }

    async fn alter_inner(
        &self,
        broker: Endpoint,
        changes: Vec<ConfigChange>,
    ) -> Result<(), AdminError> {
        let mut conn = self.connect(&broker).await?;
        let configs = changes
            .into_iter()
            .map(|(key, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(key))
                    .with_config_operation(if value.is_some() { OP_SET } else { OP_DELETE })
                    .with_value(value.map(StrBytes::from_string))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(StrBytes::from_string(broker.id.to_string()))
                .with_configs(configs),
        ]);
        let response = conn.send(request, 1).await?;
        for result in response.responses {
            if result.error_code != 0 {
                return Err(AdminError::Refused {
                    api: "IncrementalAlterConfigs",
                    message: format!(
                        "error {}: {}",
                        result.error_code,
                        result.error_message.as_deref().unwrap_or("")
                    ),
                });
            }
        }
        Ok(())
    }

    async fn elect_inner(
        &self,
        brokers: Vec<Endpoint>,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), AdminError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut conn = self.any(&brokers).await?;
        let timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        elect_preferred_on(&mut conn, partitions, timeout_ms).await?;
        Ok(())
    }
}

/// Why an ElectLeaders PREFERRED call failed.
#[derive(Debug, thiserror::Error)]
pub enum ElectError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("error {0}")]
    Request(i16),
    /// `topic-partition: error code` of each partition whose election failed.
    #[error("{}", .0.join(", "))]
    Partitions(Vec<String>),
}

impl From<ElectError> for AdminError {
    fn from(e: ElectError) -> Self {
        match e {
            ElectError::Client(e) => AdminError::Client(e),
            other => AdminError::Refused {
                api: "ElectLeaders",
                message: other.to_string(),
            },
        }
    }
}

/// ElectLeaders PREFERRED for `partitions` over `conn`: the one request and answer check
/// both the roller and the scale step use. Returns the partitions whose leadership moved.
/// "Election not needed" and "preferred leader not available" are not failures: the
/// leader is already right, or the preferred replica is not in the ISR yet and a later
/// call (or the brokers' own leader rebalance) moves it.
pub(crate) async fn elect_preferred_on(
    conn: &mut Connection,
    partitions: Vec<(String, i32)>,
    timeout_ms: i32,
) -> Result<Vec<(String, i32)>, ElectError> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(partition);
    }
    let topic_partitions = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect();
    let request = ElectLeadersRequest::default()
        .with_election_type(ELECTION_PREFERRED)
        .with_topic_partitions(Some(topic_partitions))
        .with_timeout_ms(timeout_ms);
    let response = conn.send(request, 2).await?;
    if response.error_code != 0 {
        return Err(ElectError::Request(response.error_code));
    }
    let mut moved = Vec::new();
    let mut failed = Vec::new();
    for t in &response.replica_election_results {
        for p in &t.partition_result {
            match p.error_code {
                0 => moved.push((t.topic.0.to_string(), p.partition_id)),
                ELECTION_NOT_NEEDED | PREFERRED_LEADER_NOT_AVAILABLE => {}
                code => failed.push(format!("{}-{}: error {code}", t.topic.0, p.partition_id)),
            }
        }
    }
    if failed.is_empty() {
        Ok(moved)
    } else {
        Err(ElectError::Partitions(failed))
    }
}

impl BrokerAdmin for KafkaAdmin {
    fn describe(&self, brokers: Vec<Endpoint>) -> BoxFuture<'_, Result<ClusterView, AdminError>> {
        Box::pin(self.timed("Metadata", self.describe_inner(brokers)))
    }

    fn restart_safe(
        &self,
        broker: Endpoint,
    ) -> BoxFuture<'_, Result<RestartSafeAnswer, AdminError>> {
        Box::pin(self.timed("restart-safe", async move {
            let (status, body) = http_get(&broker.admin, "/restart-safe").await?;
            Ok(parse_restart_safe(broker.id, status, &body)?)
        }))
    }

    fn alter_broker_config(
        &self,
        broker: Endpoint,
        changes: Vec<ConfigChange>,
    ) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(self.timed("IncrementalAlterConfigs", self.alter_inner(broker, changes)))
    }

    fn elect_preferred(
        &self,
        brokers: Vec<Endpoint>,
        partitions: Vec<(String, i32)>,
    ) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(self.timed("ElectLeaders", self.elect_inner(brokers, partitions)))
    }
}

/// Effective `min.insync.replicas` of each topic (its override or the broker default, as
/// DescribeConfigs reports it).
async fn min_isr(
    conn: &mut Connection,
    topics: &[String],
) -> Result<BTreeMap<String, i32>, AdminError> {
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let resources = topics
        .iter()
        .map(|t| {
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(t.clone()))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str(MIN_ISR_KEY)]))
        })
        .collect();
    let response = conn
        .send(
            DescribeConfigsRequest::default().with_resources(resources),
            4,
        )
        .await?;
    Ok(response
        .results
        .iter()
        .filter(|r| r.error_code == 0)
        .filter_map(|r| {
            let value = r
                .configs
                .iter()
                .find(|c| c.name.as_str() == MIN_ISR_KEY)?
                .value
                .as_ref()?
                .parse()
                .ok()?;
            Some((r.resource_name.to_string(), value))
        })
        .collect())
}

async fn describe_quorum(conn: &mut Connection) -> Result<Option<QuorumState>, AdminError> {
    let request = DescribeQuorumRequest::default().with_topics(vec![QuorumTopic::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![QuorumPartition::default().with_partition_index(0)])]);
    let response = conn.send(request, 1).await?;
    if response.error_code != 0 {
        return Err(AdminError::Refused {
            api: "DescribeQuorum",
            message: format!("error {}", response.error_code),
        });
    }
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .filter(|p| p.error_code == 0);
    Ok(partition.map(|p| QuorumState {
        leader: p.leader_id.0,
        voters: p
            .current_voters
            .iter()
            .map(|v| VoterState {
                id: v.replica_id.0,
                last_caught_up_ms: v.last_caught_up_timestamp,
            })
            .collect(),
    }))
}

/// `GET path` over HTTP/1.1 on `addr`; the status code and the body.
pub async fn http_get(addr: &str, path: &'static str) -> Result<(u16, String), AdminError> {
    let fail = |message: String| AdminError::Http {
        addr: addr.to_string(),
        path,
        message,
    };
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_HTTP_ANSWER as u64 + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if raw.len() > MAX_HTTP_ANSWER {
        return Err(fail(format!("answer larger than {MAX_HTTP_ANSWER} bytes")));
    }
    parse_http_answer(&raw).map_err(fail)
}

/// Status code and body of an HTTP/1.x answer; a chunked body is de-chunked.
pub fn parse_http_answer(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "no end of headers".to_string())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "no status line".to_string())?;
    let chunked = lines.any(|l| {
        let lower = l.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body
            .split_once("\r\n")
            .ok_or_else(|| "truncated chunk size".to_string())?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest
            .get(..size)
            .ok_or_else(|| "truncated chunk".to_string())?;
        out.push_str(chunk);
        body = rest.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_parse_plain_and_chunked() {
        let plain = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_http_answer(plain), Ok((503, "{}".to_string())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_answer(chunked),
            Ok((200, "{\"a\":1}".to_string()))
        );
        assert!(parse_http_answer(b"garbage").is_err());
        assert!(
            parse_http_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .is_err()
        );
    }
}
