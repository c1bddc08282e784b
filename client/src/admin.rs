//! Typed, batched topic administration over one [`Connection`]: what Kafka's `Admin`
//! client offers for topics (describe, describe configs, create, create partitions,
//! incremental alter configs, delete), with every refusal carrying Kafka's error code and
//! message. Any broker will do: brokers forward controller-bound requests themselves.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use thiserror::Error;

use crate::admin_cluster::ConfigResource;
use crate::security::{ConnectError, Security};
use crate::{ClientError, Connection};

/// Kafka's `ConfigResource.Type.TOPIC`.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's `ConfigSource.DYNAMIC_TOPIC_CONFIG`: a value set on the topic itself, as
/// opposed to a broker default showing through.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// The highest version of each API the calls use; strom-broker and Kafka 4 serve them all.
const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
const CREATE_PARTITIONS_VERSION: i16 = 3;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
const DELETE_TOPICS_VERSION: i16 = 6;

/// How long the brokers may take for a create, delete or partition change (Kafka's
/// `timeoutMs`); the call itself is bounded a little above it.
const BROKER_TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("no broker reachable among {addresses:?}: {last}")]
    Unreachable {
        addresses: Vec<String>,
        last: String,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A broker was reached but refused this client (TLS handshake or SASL).
    #[error(transparent)]
    Refusal(#[from] ConnectError),
    #[error("{api} timed out after {after:?}")]
    Timeout { api: &'static str, after: Duration },
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Kafka refused several resources of one batch, each for its own reason.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    RefusedSome(Vec<Refused>),
}

impl AdminError {
    /// Kafka's refusal (the first, for several), when that is what this is.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            AdminError::Refused(r) => Some(r),
            AdminError::RefusedSome(all) => all.first(),
            _ => None,
        }
    }

    /// Every refusal this carries: none, one, or each of a batch's.
    pub fn refusals(&self) -> &[Refused] {
        match self {
            AdminError::Refused(r) => std::slice::from_ref(r),
            AdminError::RefusedSome(all) => all,
            _ => &[],
        }
    }
}

/// The accepted answers of a batch, or every refusal in it as one error: for callers
/// that treat a partly refused batch as failed.
pub fn all_accepted<K: Ord, T>(
    outcomes: BTreeMap<K, Outcome<T>>,
) -> Result<BTreeMap<K, T>, AdminError> {
    let mut accepted = BTreeMap::new();
    let mut refused = Vec::new();
    for (key, outcome) in outcomes {
        match outcome {
            Ok(value) => {
                accepted.insert(key, value);
            }
            Err(r) => refused.push(r),
        }
    }
    match refused.len() {
        0 => Ok(accepted),
        1 => Err(AdminError::Refused(refused.remove(0))),
        _ => Err(AdminError::RefusedSome(refused)),
    }
}

/// Kafka said no: its error code and message for one resource (or the whole request).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{api} refused {resource}: {}{}", self.code_name(), self.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
pub struct Refused {
    pub api: &'static str,
    pub resource: String,
    pub code: i16,
    pub message: Option<String>,
}

impl Refused {
    /// The code as kafka-protocol knows it.
    pub fn error(&self) -> Option<ResponseError> {
        ResponseError::try_from_code(self.code)
    }

    /// The error's name, e.g. `InvalidTopicException`.
    pub fn code_name(&self) -> String {
        match self.error() {
            Some(e) => e.to_string(),
            None => format!("error code {}", self.code),
        }
    }

    /// Kafka's message when it sent one, else the error's name.
    pub fn describe(&self) -> String {
        match &self.message {
            Some(m) if !m.is_empty() => m.clone(),
            _ => self.code_name(),
        }
    }
}

/// A per-resource answer inside a batch that Kafka accepted as a whole.
pub type Outcome<T> = Result<T, Refused>;

/// Connects to the first reachable address of `bootstrap`, in order, over PLAINTEXT.
pub async fn connect_any(
    bootstrap: &[String],
    client_id: &str,
    timeout: Duration,
) -> Result<Connection, AdminError> {
    connect_any_with(bootstrap, &Security::default(), client_id, timeout).await
}

/// Connects to the first reachable address of `bootstrap`, in order, secured as
/// `security` says. An unreachable broker makes it try the next; a broker that refuses
/// the TLS handshake or the credentials ends the search with [`AdminError::Refusal`],
/// since the cluster's other brokers share its certificates and users.
pub async fn connect_any_with(
    bootstrap: &[String],
    security: &Security,
    client_id: &str,
    timeout: Duration,
) -> Result<Connection, AdminError> {
    let mut last = String::from("no addresses");
    for addr in bootstrap {
        match security.connect(addr, client_id, timeout).await {
            Ok(c) => return Ok(c),
            Err(e) if e.is_refusal() => return Err(AdminError::Refusal(e)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(AdminError::Unreachable {
        addresses: bootstrap.to_vec(),
        last,
    })
}

/// Sends `request` on `conn` and waits at most `timeout` for the answer, so an
/// unresponsive broker delays its caller, never blocks it.
pub async fn send_within<R: Request>(
    conn: &mut Connection,
    api: &'static str,
    request: R,
    version: i16,
    timeout: Duration,
) -> Result<R::Response, AdminError> {
    match tokio::time::timeout(timeout, conn.send(request, version)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(AdminError::Timeout {
            api,
            after: timeout,
        }),
    }
}

/// A topic as Metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Kafka's `Uuid.toString()`: URL-safe base64 without padding.
    pub topic_id: String,
    pub partitions: i32,
    /// The largest replica count of any partition (they differ only mid-reassignment).
    pub replication_factor: i32,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// A topic whose replicas are placed by the caller rather than the controller:
/// partition `i` goes on `replicas[i]`, the first of each its preferred leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedTopic {
    pub name: String,
    pub replicas: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// What CreateTopics reports for a topic it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub topic_id: String,
    pub partitions: i32,
    pub replication_factor: i32,
}

/// One IncrementalAlterConfigs operation on a topic config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigOp {
    Set { key: String, value: String },
    Delete { key: String },
}

/// Topic administration over one connection; every call is bounded by `timeout`.
#[derive(Debug)]
pub struct Admin {
    conn: Connection,
    timeout: Duration,
}

impl Admin {
    pub fn new(conn: Connection, timeout: Duration) -> Admin {
        Admin { conn, timeout }
    }

    /// Connects to the first reachable broker of `bootstrap` over PLAINTEXT.
    pub async fn connect(
        bootstrap: &[String],
        client_id: &str,
        connect_timeout: Duration,
        call_timeout: Duration,
    ) -> Result<Admin, AdminError> {
        let conn = connect_any(bootstrap, client_id, connect_timeout).await?;
        Ok(Admin::new(conn, call_timeout))
    }

    /// Connects to the first reachable broker of `bootstrap` secured as `security` says
    /// (see [`connect_any_with`]).
    pub async fn connect_with(
        bootstrap: &[String],
        security: &Security,
        client_id: &str,
        connect_timeout: Duration,
        call_timeout: Duration,
    ) -> Result<Admin, AdminError> {
        let conn = connect_any_with(bootstrap, security, client_id, connect_timeout).await?;
        Ok(Admin::new(conn, call_timeout))
    }

    /// How long each call may take.
    pub fn call_timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) async fn send<R: Request>(
        &mut self,
        api: &'static str,
        request: R,
        version: i16,
    ) -> Result<R::Response, AdminError> {
        send_within(&mut self.conn, api, request, version, self.timeout).await
    }

    /// Each topic's partitions, replication factor and id; `None` for a topic that does
    /// not exist. Nothing is auto-created.
    pub async fn describe_topics(
        &mut self,
        names: &[String],
    ) -> Result<BTreeMap<String, Outcome<Option<TopicDescription>>>, AdminError> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = MetadataRequest::default()
            .with_topics(Some(
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let response = self.send("Metadata", request, METADATA_VERSION).await?;
        let mut out = BTreeMap::new();
        for topic in &response.topics {
            let Some(name) = topic.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            let outcome = if topic.error_code == ResponseError::UnknownTopicOrPartition.code() {
                Ok(None)
            } else if topic.error_code != 0 && topic.partitions.is_empty() {
                Err(refused(
                    "Metadata",
                    format!("topic {name}"),
                    topic.error_code,
                    None,
                ))
            } else {
                Ok(Some(TopicDescription {
                    topic_id: kafka_uuid(topic.topic_id.as_bytes()),
                    partitions: i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
                    replication_factor: topic
                        .partitions
                        .iter()
                        .map(|p| i32::try_from(p.replica_nodes.len()).unwrap_or(i32::MAX))
                        .max()
                        .unwrap_or(0),
                }))
            };
            out.insert(name, outcome);
        }
        // A broker that leaves a topic out of its answer does not know it either.
        for n in names {
            out.entry(n.clone()).or_insert(Ok(None));
        }
        Ok(out)
    }

    /// The configs set on each topic itself (source DYNAMIC_TOPIC_CONFIG); broker
    /// defaults showing through are left out. A topic that does not exist is refused with
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub async fn describe_topic_configs(
        &mut self,
        names: &[String],
    ) -> Result<BTreeMap<String, Outcome<BTreeMap<String, String>>>, AdminError> {
        let resources: Vec<_> = names.iter().cloned().map(ConfigResource::Topic).collect();
        let described = self.describe_configs(&resources, None).await?;
        Ok(described
            .into_iter()
            .filter_map(|(resource, outcome)| match resource {
                ConfigResource::Topic(name) => Some((name, outcome)),
                ConfigResource::Broker(_) => None,
            })
            .map(|(name, outcome)| {
                let own = outcome.map(|entries| {
                    entries
                        .into_iter()
                        .filter(|(_, e)| e.source == SOURCE_DYNAMIC_TOPIC)
                        .filter_map(|(key, e)| e.value.map(|v| (key, v)))
                        .collect()
                });
                (name, own)
            })
            .collect())
    }

    /// Creates every topic in one request, each with its configs.
    pub async fn create_topics(
        &mut self,
        topics: &[NewTopic],
    ) -> Result<BTreeMap<String, Outcome<CreatedTopic>>, AdminError> {
        self.send_create_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(&t.name))
                        .with_num_partitions(t.partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(creatable_configs(&t.configs))
                })
                .collect(),
        )
        .await
    }

    /// Creates every topic in one request with the replica placement given (Kafka's
    /// `NewTopic(name, replicasAssignments)`).
    pub async fn create_placed_topics(
        &mut self,
        topics: &[PlacedTopic],
    ) -> Result<BTreeMap<String, Outcome<CreatedTopic>>, AdminError> {
        self.send_create_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(&t.name))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                        .with_assignments(
                            (0..)
                                .zip(&t.replicas)
                                .map(|(index, replicas)| {
                                    CreatableReplicaAssignment::default()
                                        .with_partition_index(index)
                                        .with_broker_ids(
                                            replicas.iter().map(|&b| BrokerId(b)).collect(),
                                        )
                                })
                                .collect(),
                        )
                        .with_configs(creatable_configs(&t.configs))
                })
                .collect(),
        )
        .await
    }

    async fn send_create_topics(
        &mut self,
        topics: Vec<CreatableTopic>,
    ) -> Result<BTreeMap<String, Outcome<CreatedTopic>>, AdminError> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(BROKER_TIMEOUT_MS)
            .with_topics(topics);
        let response = self
            .send("CreateTopics", request, CREATE_TOPICS_VERSION)
            .await?;
        Ok(response
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let outcome = if t.error_code != 0 {
                    Err(refused(
                        "CreateTopics",
                        format!("topic {name}"),
                        t.error_code,
                        t.error_message.as_ref(),
                    ))
                } else {
                    Ok(CreatedTopic {
                        topic_id: kafka_uuid(t.topic_id.as_bytes()),
                        partitions: t.num_partitions,
                        replication_factor: i32::from(t.replication_factor),
                    })
                };
                (name, outcome)
            })
            .collect())
    }

    /// Grows each topic to the given total partition count (Kafka's `count`), replicas
    /// placed by the controller.
    pub async fn create_partitions(
        &mut self,
        totals: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<String, Outcome<()>>, AdminError> {
        if totals.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(BROKER_TIMEOUT_MS)
            .with_topics(
                totals
                    .iter()
                    .map(|(name, count)| {
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(name))
                            .with_count(*count)
                            .with_assignments(None)
                    })
                    .collect(),
            );
        let response = self
            .send("CreatePartitions", request, CREATE_PARTITIONS_VERSION)
            .await?;
        Ok(response
            .results
            .iter()
            .map(|r| {
                let name = r.name.0.to_string();
                let outcome = check(
                    "CreatePartitions",
                    format!("topic {name}"),
                    r.error_code,
                    r.error_message.as_ref(),
                );
                (name, outcome)
            })
            .collect())
    }

    /// Sets and deletes topic configs; the keys not named keep their values.
    pub async fn alter_topic_configs(
        &mut self,
        changes: &BTreeMap<String, Vec<ConfigOp>>,
    ) -> Result<BTreeMap<String, Outcome<()>>, AdminError> {
        self.alter_configs(RESOURCE_TOPIC, "topic", changes).await
    }

    /// IncrementalAlterConfigs on resources of one type (`kind` names them in refusals),
    /// by resource name; resources without changes are not sent.
    pub(crate) async fn alter_configs(
        &mut self,
        resource_type: i8,
        kind: &str,
        changes: &BTreeMap<String, Vec<ConfigOp>>,
    ) -> Result<BTreeMap<String, Outcome<()>>, AdminError> {
        let changes: Vec<_> = changes.iter().filter(|(_, ops)| !ops.is_empty()).collect();
        if changes.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = IncrementalAlterConfigsRequest::default().with_resources(
            changes
                .iter()
                .map(|(name, ops)| {
                    AlterConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(StrBytes::from_string((*name).clone()))
                        .with_configs(ops.iter().map(alterable).collect())
                })
                .collect(),
        );
        let response = self
            .send(
                "IncrementalAlterConfigs",
                request,
                INCREMENTAL_ALTER_CONFIGS_VERSION,
            )
            .await?;
        Ok(response
            .responses
            .iter()
            .map(|r| {
                let name = r.resource_name.to_string();
                let outcome = check(
                    "IncrementalAlterConfigs",
                    format!("{kind} {name}"),
                    r.error_code,
                    r.error_message.as_ref(),
                );
                (name, outcome)
            })
            .collect())
    }

    /// Deletes topics by name.
    pub async fn delete_topics(
        &mut self,
        names: &[String],
    ) -> Result<BTreeMap<String, Outcome<()>>, AdminError> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(BROKER_TIMEOUT_MS)
            .with_topics(
                names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect(),
            );
        let response = self
            .send("DeleteTopics", request, DELETE_TOPICS_VERSION)
            .await?;
        Ok(response
            .responses
            .iter()
            .filter_map(|r| {
                let name = r.name.as_ref()?.0.to_string();
                let outcome = check(
                    "DeleteTopics",
                    format!("topic {name}"),
                    r.error_code,
                    r.error_message.as_ref(),
                );
                Some((name, outcome))
            })
            .collect())
    }
}

fn creatable_configs(configs: &BTreeMap<String, String>) -> Vec<CreatableTopicConfig> {
    configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect()
}

pub(crate) fn alterable(op: &ConfigOp) -> AlterableConfig {
    match op {
        ConfigOp::Set { key, value } => AlterableConfig::default()
            .with_name(StrBytes::from_string(key.clone()))
            .with_config_operation(OP_SET)
            .with_value(Some(StrBytes::from_string(value.clone()))),
        ConfigOp::Delete { key } => AlterableConfig::default()
            .with_name(StrBytes::from_string(key.clone()))
            .with_config_operation(OP_DELETE)
            .with_value(None),
    }
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub(crate) fn refused(
    api: &'static str,
    resource: String,
    code: i16,
    message: Option<&StrBytes>,
) -> Refused {
    Refused {
        api,
        resource,
        code,
        message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
    }
}

/// Ok for error code 0, else Kafka's refusal.
pub fn check(
    api: &'static str,
    resource: impl Into<String>,
    code: i16,
    message: Option<&StrBytes>,
) -> Outcome<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(refused(api, resource.into(), code, message))
    }
}

/// Kafka prints topic ids as URL-safe base64 without padding (`Uuid.toString()`).
pub fn kafka_uuid(bytes: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_prints_like_kafka() {
        // Uuid.fromString("AAAAAAAAAAAAAAAAAAAAAQ") is 0L, 1L in Kafka.
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(kafka_uuid(&one), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(kafka_uuid(&[0xff; 16]), "_____________________w");
        assert_eq!(kafka_uuid(&[0; 16]).len(), 22);
    }

    #[test]
    fn refusals_carry_the_code_and_message() {
        let r = check(
            "CreateTopics",
            "topic a b",
            ResponseError::InvalidTopicException.code(),
            Some(&StrBytes::from_static_str("bad name")),
        )
        .unwrap_err();
        assert_eq!(r.error(), Some(ResponseError::InvalidTopicException));
        assert_eq!(r.describe(), "bad name");
        assert!(
            r.to_string().contains("CreateTopics refused topic a b"),
            "{r}"
        );
        let no_message = check("DeleteTopics", "topic x", 3, None).unwrap_err();
        assert_eq!(no_message.describe(), no_message.code_name());
        assert!(check("DeleteTopics", "topic x", 0, None).is_ok());
    }
}
