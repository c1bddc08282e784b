//! The network side of partition health: one Metadata request (all topics) to the
//! cluster's bootstrap Service through `strom-client`, turned into `PartitionState`s.
//! A trait, so reconcile tests replace the brokers with a scripted answer.

use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::messages::MetadataRequest;
use strom_client::{ClientError, Connection};

use super::PartitionState;
use crate::cluster::names;
use crate::crd::KafkaCluster;

/// Why the operator could not learn the partitions' state.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProbeError {
    #[error("no broker is ready to answer")]
    NoBrokersReady,
    #[error("no internal listener without TLS and authentication to ask the brokers on")]
    NoPlainListener,
    #[error("cannot ask the brokers at {address}: {detail}")]
    Unreachable { address: String, detail: String },
    #[error("the brokers at {address} gave no metadata: {detail}")]
    BadAnswer { address: String, detail: String },
}

impl ProbeError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ProbeError::NoBrokersReady => "NoBrokersReady",
            ProbeError::NoPlainListener => "NoPlainListener",
            ProbeError::Unreachable { .. } => "BrokersUnreachable",
            ProbeError::BadAnswer { .. } => "MetadataError",
        }
    }
}

/// Asks the brokers at `address` (`host:port`) for every partition's leader, replicas
/// and ISR.
pub trait PartitionProbe: Send + Sync {
    fn partitions(
        &self,
        address: String,
    ) -> BoxFuture<'static, Result<Vec<PartitionState>, ProbeError>>;
}

/// Where the operator asks: the bootstrap Service on the first internal listener clients
/// reach without TLS or SASL (the operator holds no client credentials yet).
pub fn address(cluster: &KafkaCluster) -> Result<String, ProbeError> {
    let name = names::cluster_name(cluster);
    let ns = names::namespace(cluster);
    cluster
        .spec
        .effective_listeners()
        .into_iter()
        .find(|l| {
            l.kind == crate::crd::cluster::ListenerType::Internal
                && !l.tls
                && l.authentication.is_none()
        })
        .map(|l| format!("{}.{ns}.svc:{}", names::bootstrap_service(&name), l.port))
        .ok_or(ProbeError::NoPlainListener)
}

/// The real probe: Metadata v12 over one connection, bounded by `timeout`.
pub struct MetadataProbe {
    pub timeout: Duration,
}

impl Default for MetadataProbe {
    fn default() -> Self {
        MetadataProbe {
            timeout: Duration::from_secs(5),
        }
    }
}

const METADATA_VERSION: i16 = 12;

impl PartitionProbe for MetadataProbe {
    fn partitions(
        &self,
        address: String,
    ) -> BoxFuture<'static, Result<Vec<PartitionState>, ProbeError>> {
        let timeout = self.timeout;
        Box::pin(async move {
            let unreachable = |e: ClientError| ProbeError::Unreachable {
                address: address.clone(),
                detail: e.to_string(),
            };
            let ask = async {
                let mut conn = Connection::connect(&address, "strom-operator", timeout)
                    .await
                    .map_err(unreachable)?;
                // kafka-protocol's default asks for no topic at all; null means every one.
                let request = MetadataRequest::default()
                    .with_topics(None)
                    .with_allow_auto_topic_creation(false);
                conn.send(request, METADATA_VERSION)
                    .await
                    .map_err(unreachable)
            };
            let response = tokio::time::timeout(timeout, ask).await.map_err(|_| {
                ProbeError::Unreachable {
                    address: address.clone(),
                    detail: format!("no answer within {timeout:?}"),
                }
            })??;
            let mut out = Vec::new();
            for topic in response.topics {
                if topic.error_code != 0 {
                    return Err(ProbeError::BadAnswer {
                        address,
                        detail: format!("topic error code {}", topic.error_code),
                    });
                }
                let name = topic.name.map(|n| n.to_string()).unwrap_or_default();
                for p in topic.partitions {
                    out.push(PartitionState {
                        topic: name.clone(),
                        partition: p.partition_index,
                        leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    });
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn asks_on_the_first_plain_internal_listener() {
        let c = crate::fixtures::cluster(json!({"replicas": 3}));
        assert_eq!(
            address(&c),
            Ok("my-cluster-bootstrap.kafka.svc:9092".to_string())
        );
        let c = crate::fixtures::cluster(json!({"replicas": 3, "listeners": [
            {"name": "tls", "port": 9093, "type": "internal", "tls": true},
            {"name": "ext", "port": 9094, "type": "nodeport"},
            {"name": "plain", "port": 9095, "type": "internal"},
        ]}));
        assert_eq!(
            address(&c),
            Ok("my-cluster-bootstrap.kafka.svc:9095".to_string())
        );
        let c = crate::fixtures::cluster(json!({"replicas": 3, "listeners": [
            {"name": "tls", "port": 9093, "type": "internal", "tls": true},
        ]}));
        assert_eq!(address(&c), Err(ProbeError::NoPlainListener));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let probe = MetadataProbe {
            timeout: Duration::from_secs(2),
        };
        let err = probe.partitions(addr).await.unwrap_err();
        assert_eq!(err.reason(), "BrokersUnreachable");
    }
}
