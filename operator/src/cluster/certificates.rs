//! A secured cluster's certificates, as one step of its reconcile: read the CA and
//! certificate Secrets, let `certs::reconcile_certificates` decide, apply what changed.
//! The brokers reload renewed files from their mounted Secrets; nothing here restarts
//! them.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::apply::{apply, Outcome};
use crate::certs::{self, names as cert_names, BrokerIdentity, CaSettings, CertError, CertEvent};
use crate::certs::{CertsOutput, CertsRequest, ExistingSecrets, SecretData};
use crate::cluster::config::ExternalAddresses;
use crate::cluster::{names, resources, security};
use crate::crd::cluster::CertificateAuthoritySpec;
use crate::crd::KafkaCluster;

/// Condition reason when the certificates cannot be made (a user-provided CA missing or
/// unusable, impossible validity settings).
pub const CERTIFICATES_NOT_READY: &str = "CertificateAuthorityNotReady";

/// What the step did: Secrets applied (for the Applied event) and the renewals (Events).
#[derive(Debug, Default)]
pub struct Applied {
    pub secrets: Vec<String>,
    pub events: Vec<CertEvent>,
}

/// The settings a CA spec asks for, Strimzi's defaults where it is silent.
pub fn ca_settings(spec: Option<&CertificateAuthoritySpec>) -> CaSettings {
    let defaults = CaSettings::default();
    let days =
        |v: Option<i32>, default: u32| v.and_then(|d| u32::try_from(d).ok()).unwrap_or(default);
    CaSettings {
        validity_days: days(spec.and_then(|s| s.validity_days), defaults.validity_days),
        renewal_days: days(spec.and_then(|s| s.renewal_days), defaults.renewal_days),
        generate: spec
            .and_then(|s| s.generate_certificate_authority)
            .unwrap_or(defaults.generate),
    }
}

/// The brokers that need certificates: every pod the StatefulSet runs or is about to
/// (a scale-down keeps its leaving brokers' certificates until they are gone), each with
/// the external addresses clients reach it by.
pub fn broker_identities(brokers: i32, external: &ExternalAddresses) -> Vec<BrokerIdentity> {
    (0..brokers.max(0))
        .filter_map(|i| u32::try_from(i).ok().map(|ordinal| (i, ordinal)))
        .map(|(i, ordinal)| BrokerIdentity {
            ordinal,
            extra_names: external
                .by_broker
                .iter()
                .filter(|((_, broker), _)| *broker == i)
                .map(|(_, (host, _))| host.clone())
                .collect(),
        })
        .collect()
}

/// Reads, decides, applies. `Ok(Err(_))` is a certificate problem for the status; the
/// outer error is the Kubernetes API's.
pub async fn reconcile(
    cluster: &KafkaCluster,
    api: &Api<Secret>,
    brokers: i32,
    external: &ExternalAddresses,
) -> Result<Result<Applied, CertError>, kube::Error> {
    if !security::is_secured(&cluster.spec) {
        return Ok(Ok(Applied::default()));
    }
    let name = cluster.name_any();
    let namespace = names::namespace(cluster);
    let read = |secret: String| async move {
        Ok::<_, kube::Error>(api.get_opt(&secret).await?.and_then(|s| s.data))
    };
    let cluster_ca_cert = read(cert_names::cluster_ca_cert_secret(&name)).await?;
    let cluster_ca_key = read(cert_names::cluster_ca_key_secret(&name)).await?;
    let clients_ca_cert = read(cert_names::clients_ca_cert_secret(&name)).await?;
    let clients_ca_key = read(cert_names::clients_ca_key_secret(&name)).await?;
    let broker_certs = read(cert_names::broker_certs_secret(&name)).await?;
    let operator_certs = read(cert_names::operator_certs_secret(&name)).await?;
    let identities = broker_identities(brokers, external);
    let request = CertsRequest {
        cluster: &name,
        namespace: &namespace,
        brokers: &identities,
        cluster_ca: ca_settings(cluster.spec.cluster_ca.as_ref()),
        clients_ca: ca_settings(cluster.spec.clients_ca.as_ref()),
        existing: ExistingSecrets {
            cluster_ca_cert: cluster_ca_cert.as_ref(),
            cluster_ca_key: cluster_ca_key.as_ref(),
            clients_ca_cert: clients_ca_cert.as_ref(),
            clients_ca_key: clients_ca_key.as_ref(),
            broker_certs: broker_certs.as_ref(),
            operator_certs: operator_certs.as_ref(),
        },
        now: SystemTime::now(),
        // Whether every broker has loaded the newest material is not tracked yet, so a
        // renewed-away cluster CA stays trusted until it expires (at most its renewal
        // window), never dropped while a broker may still present a leaf it signed.
        brokers_current: false,
    };
    let output = match certs::reconcile_certificates(&request) {
        Ok(output) => output,
        Err(e) => return Ok(Err(e)),
    };
    let mut applied = Applied {
        events: output.events.clone(),
        ..Applied::default()
    };
    for secret in secrets(cluster, &output) {
        let (_, outcome) = apply(api, &secret).await?;
        if outcome == Outcome::Applied {
            applied.secrets.push(secret.name_any());
        }
    }
    Ok(Ok(applied))
}

/// The Secrets to apply, owned by the cluster like its other objects.
fn secrets(cluster: &KafkaCluster, output: &CertsOutput) -> Vec<Secret> {
    output
        .secrets(&cluster.name_any())
        .into_iter()
        .map(|(name, data): (String, &SecretData)| Secret {
            metadata: resources::meta(cluster, name),
            data: Some(data.clone()),
            type_: Some("Opaque".into()),
            ..Secret::default()
        })
        .collect()
}

/// The Event reason and note of one certificate change (all Normal: each is the
/// operator doing its job).
pub fn describe(event: &CertEvent) -> (&'static str, String) {
    match event {
        CertEvent::CaCreated { kind, reason } => (
            "CertificateAuthorityCreated",
            format!("created the {kind} ({reason})"),
        ),
        CertEvent::CaRenewed { kind } => (
            "CertificateAuthorityRenewed",
            format!("renewed the {kind}; the old one stays trusted until nothing uses it"),
        ),
        CertEvent::CaRetired { kind, count } => (
            "CertificateAuthorityRetired",
            format!("{count} old {kind} certificate(s) no longer trusted"),
        ),
        CertEvent::LeafIssued { holder, reason } => (
            "CertificateIssued",
            format!("issued the {holder} certificate ({reason})"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn ca_settings_default_like_strimzi() {
        assert_eq!(ca_settings(None), CaSettings::default());
        let own = CertificateAuthoritySpec {
            validity_days: Some(10),
            renewal_days: Some(2),
            generate_certificate_authority: Some(false),
        };
        assert_eq!(
            ca_settings(Some(&own)),
            CaSettings {
                validity_days: 10,
                renewal_days: 2,
                generate: false
            }
        );
    }

    #[test]
    fn brokers_carry_their_external_addresses() {
        let external = ExternalAddresses {
            by_broker: BTreeMap::from([
                (("ext".to_string(), 1), ("10.0.0.7".to_string(), 31001)),
                (
                    ("lb".to_string(), 1),
                    ("kafka-1.example.com".to_string(), 9094),
                ),
                (("ext".to_string(), 0), ("10.0.0.6".to_string(), 31000)),
            ]),
        };
        let identities = broker_identities(2, &external);
        assert_eq!(identities.len(), 2);
        assert_eq!(identities[0].extra_names, vec!["10.0.0.6"]);
        assert_eq!(
            identities[1].extra_names,
            vec!["10.0.0.7", "kafka-1.example.com"]
        );
    }
}
