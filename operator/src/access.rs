//! How the operator reaches one cluster's brokers: the addresses to try and what to
//! present there. An unsecured cluster is asked over PLAINTEXT. A secured one is asked
//! on every broker's replication listener, which only trusts the cluster CA, with the
//! operator's own certificate from that CA (a super user); the operator in turn trusts
//! only the cluster CA. It never talks to a secured cluster anonymously.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use strom_client::tls::{TlsConfig, TlsConfigError};
use strom_client::Security;
use thiserror::Error;

use crate::certs::names as cert_names;
use crate::cluster::{names, scale, security};
use crate::crd::KafkaCluster;

/// Condition reason while the operator's certificate for a secured cluster is not there.
pub const OPERATOR_CREDENTIALS_NOT_READY: &str = "OperatorCredentialsNotReady";

/// The brokers of one cluster as the operator reaches them.
#[derive(Clone, Debug, Default)]
pub struct Brokers {
    /// `host:port` addresses, tried in order.
    pub addresses: Vec<String>,
    /// What every connection presents.
    pub security: Security,
}

impl Brokers {
    /// PLAINTEXT to `addresses`: tests, and clusters without security.
    pub fn plaintext(addresses: Vec<String>) -> Brokers {
        Brokers {
            addresses,
            security: Security::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum AccessError {
    #[error("Secret {0} with the operator's certificate does not exist yet")]
    CredentialsMissing(String),
    #[error("Secret {secret} has no {key}")]
    CredentialKeyMissing { secret: String, key: &'static str },
    #[error("the operator's certificate in Secret {secret} cannot be used: {source}")]
    Credentials {
        secret: String,
        source: TlsConfigError,
    },
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

impl AccessError {
    /// CamelCase reason for a condition.
    pub fn reason(&self) -> &'static str {
        match self {
            AccessError::Kube(_) => "KubernetesError",
            _ => OPERATOR_CREDENTIALS_NOT_READY,
        }
    }
}

/// Where and how the operator reaches `cluster`: for a secured cluster it reads the
/// operator's certificate Secret, which the cluster's reconcile writes.
pub async fn for_cluster(client: &Client, cluster: &KafkaCluster) -> Result<Brokers, AccessError> {
    if !security::is_secured(&cluster.spec) {
        return from_secret(cluster, None);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names::namespace(cluster));
    let secret = secrets
        .get_opt(&cert_names::operator_certs_secret(&cluster.name_any()))
        .await?;
    from_secret(cluster, secret.as_ref())
}

/// The pure part of [`for_cluster`]: `secret` is the operator's certificate Secret of a
/// secured cluster (ignored for an unsecured one).
pub fn from_secret(
    cluster: &KafkaCluster,
    secret: Option<&Secret>,
) -> Result<Brokers, AccessError> {
    if !security::is_secured(&cluster.spec) {
        return Ok(Brokers::plaintext(plaintext_addresses(cluster)));
    }
    let name = cert_names::operator_certs_secret(&cluster.name_any());
    let secret = secret.ok_or_else(|| AccessError::CredentialsMissing(name.clone()))?;
    let key = |key: &'static str| -> Result<&[u8], AccessError> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.0.as_slice())
            .filter(|v| !v.is_empty())
            .ok_or(AccessError::CredentialKeyMissing {
                secret: name.clone(),
                key,
            })
    };
    let tls = TlsConfig::with_client_certificate(
        key(cert_names::CA_CRT)?,
        key(cert_names::OPERATOR_CRT)?,
        key(cert_names::OPERATOR_KEY)?,
    )
    .map_err(|source| AccessError::Credentials {
        secret: name.clone(),
        source,
    })?;
    Ok(Brokers {
        addresses: scale::bootstrap(cluster, cluster.spec.replicas),
        security: Security::default().with_tls(tls),
    })
}

/// An unsecured cluster: its bootstrap Service on the first plain internal listener (as
/// clients use it), then every broker on the replication listener (as the scale step
/// does), which the brokers' NetworkPolicy admits the operator to.
fn plaintext_addresses(cluster: &KafkaCluster) -> Vec<String> {
    let mut addresses: Vec<String> = crate::health::probe::address(cluster).into_iter().collect();
    addresses.extend(scale::bootstrap(cluster, cluster.spec.replicas));
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn cluster(spec: serde_json::Value) -> KafkaCluster {
        serde_json::from_value(json!({
            "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": "c", "namespace": "ns"}, "spec": spec,
        }))
        .expect("cluster")
    }

    #[test]
    fn an_unsecured_cluster_is_asked_in_plaintext_service_first() {
        let brokers = from_secret(&cluster(json!({"replicas": 2})), None).expect("plaintext");
        assert_eq!(brokers.security.protocol(), "PLAINTEXT");
        assert_eq!(
            brokers.addresses,
            vec![
                "c-bootstrap.ns.svc:9092",
                "c-broker-0.c-brokers.ns.svc:9091",
                "c-broker-1.c-brokers.ns.svc:9091"
            ]
        );
    }

    #[test]
    fn a_secured_cluster_needs_the_operators_certificate() {
        let secured = cluster(json!({"replicas": 2, "authorization": {"type": "simple"}}));
        let err = from_secret(&secured, None).expect_err("no Secret yet");
        assert!(matches!(err, AccessError::CredentialsMissing(ref s) if s == "c-operator-certs"));
        assert_eq!(err.reason(), "OperatorCredentialsNotReady");

        let secret = Secret {
            data: Some(BTreeMap::from([(
                cert_names::CA_CRT.to_string(),
                ByteString(b"not a certificate".to_vec()),
            )])),
            ..Secret::default()
        };
        let err = from_secret(&secured, Some(&secret)).expect_err("keys missing");
        assert!(
            matches!(err, AccessError::CredentialKeyMissing { key, .. } if key == cert_names::OPERATOR_CRT),
            "{err}"
        );
    }
}
