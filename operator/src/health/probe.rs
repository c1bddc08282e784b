//! The network side of partition health: one Metadata request (all topics) to the
//! cluster's brokers through `strom-client`, turned into `PartitionState`s.
//! A trait, so reconcile tests replace the brokers with a scripted answer.

use std::time::Duration;

use futures::future::BoxFuture;
use strom_client::admin::Admin;

use crate::access::Brokers;

use super::PartitionState;
use crate::cluster::names;
use crate::crd::KafkaCluster;

/// Why the operator could not learn the partitions' state.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProbeError {
    #[error("no broker is ready to answer")]
    NoBrokersReady,
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
            ProbeError::Unreachable { .. } => "BrokersUnreachable",
            ProbeError::BadAnswer { .. } => "MetadataError",
        }
    }
}

/// Asks the first of `brokers` that answers for every partition's leader, replicas and
/// ISR.
pub trait PartitionProbe: Send + Sync {
    fn partitions(
        &self,
        brokers: Brokers,
    ) -> BoxFuture<'static, Result<Vec<PartitionState>, ProbeError>>;
}

/// The bootstrap Service on the first internal listener clients reach without TLS or
/// SASL, where an unsecured cluster is asked first.
pub fn address(cluster: &KafkaCluster) -> Option<String> {
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
}

/// The real probe: strom-client's partition view (Metadata) over one connection, bounded
/// by `timeout`.
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

impl PartitionProbe for MetadataProbe {
    fn partitions(
        &self,
        brokers: Brokers,
    ) -> BoxFuture<'static, Result<Vec<PartitionState>, ProbeError>> {
        let timeout = self.timeout;
        Box::pin(async move {
            let address = brokers.addresses.join(",");
            let unreachable = |detail: String| ProbeError::Unreachable {
                address: address.clone(),
                detail,
            };
            // Each connection attempt is bounded by `timeout`, and so is the answer.
            let mut admin = Admin::connect_with(
                &brokers.addresses,
                &brokers.security,
                "strom-operator",
                timeout,
                timeout,
            )
            .await
            .map_err(|e| unreachable(e.to_string()))?;
            let view = admin
                .describe_partitions(None)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let mut out = Vec::new();
            for (_, topic) in view.topics {
                let partitions = topic.map_err(|refused| ProbeError::BadAnswer {
                    address: address.clone(),
                    detail: refused.to_string(),
                })?;
                out.extend(partitions.into_iter().map(|p| PartitionState {
                    topic: p.topic,
                    partition: p.partition,
                    leader: p.leader,
                    replicas: p.replicas,
                    isr: p.isr,
                }));
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
            Some("my-cluster-bootstrap.kafka.svc:9092".to_string())
        );
        let c = crate::fixtures::cluster(json!({"replicas": 3, "listeners": [
            {"name": "tls", "port": 9093, "type": "internal", "tls": true},
            {"name": "ext", "port": 9094, "type": "nodeport"},
            {"name": "plain", "port": 9095, "type": "internal"},
        ]}));
        assert_eq!(
            address(&c),
            Some("my-cluster-bootstrap.kafka.svc:9095".to_string())
        );
        let c = crate::fixtures::cluster(json!({"replicas": 3, "listeners": [
            {"name": "tls", "port": 9093, "type": "internal", "tls": true},
        ]}));
        assert_eq!(address(&c), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let probe = MetadataProbe {
            timeout: Duration::from_secs(2),
        };
        let err = probe
            .partitions(Brokers::plaintext(vec![addr]))
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "BrokersUnreachable");
    }
}
