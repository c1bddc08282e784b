//! A secured cluster's certificates, as one step of its reconcile: read the CA and
//! certificate Secrets, let `certs::reconcile_certificates` decide, apply what changed.
//! The brokers reload renewed files from their mounted Secrets; nothing here restarts
//! them.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::apply::{apply, Outcome};
use crate::certs::SecretData;
use crate::certs::{self, names as cert_names, BrokerIdentity, CaSettings, CertError, CertEvent};
use crate::certs::{CertsOutput, CertsRequest, ExistingSecrets, ExpirationPolicy, Forced};
use crate::cluster::config::ExternalAddresses;
use crate::cluster::{names, resources, security};
use crate::crd::cluster::{CertificateAuthoritySpec, CertificateExpirationPolicy};
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
        expiration_policy: match spec.and_then(|s| s.certificate_expiration_policy) {
            None => defaults.expiration_policy,
            Some(CertificateExpirationPolicy::RenewCertificate) => {
                ExpirationPolicy::RenewCertificate
            }
            Some(CertificateExpirationPolicy::ReplaceKey) => ExpirationPolicy::ReplaceKey,
        },
    }
}

fn data(secret: &Option<Secret>) -> Option<&SecretData> {
    secret.as_ref().and_then(|s| s.data.as_ref())
}

/// True when `secret` carries `annotation: "true"` (Strimzi acts on nothing else either).
fn annotated(secret: Option<&Secret>, annotation: &str) -> bool {
    secret
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(annotation))
        .is_some_and(|v| v == "true")
}

/// The renewals forced on one CA by the annotations on its two Secrets.
fn forced(cert: Option<&Secret>, key: Option<&Secret>) -> Forced {
    Forced {
        renew: annotated(cert, cert_names::FORCE_RENEW_ANNOTATION),
        replace_key: annotated(key, cert_names::FORCE_REPLACE_ANNOTATION),
    }
}

/// Removes a force annotation once the renewal it asked for is written. Server-side apply
/// cannot do it: the annotation belongs to whoever set it (kubectl, another manager), and
/// an apply only removes fields its own manager set before. A merge patch removes it
/// whoever owns it.
async fn remove_annotation(
    api: &Api<Secret>,
    secret: &str,
    annotation: &str,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {annotation: null}}});
    api.patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
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
    let read = |secret: String| async move { api.get_opt(&secret).await };
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
            cluster_ca_cert: data(&cluster_ca_cert),
            cluster_ca_key: data(&cluster_ca_key),
            clients_ca_cert: data(&clients_ca_cert),
            clients_ca_key: data(&clients_ca_key),
            broker_certs: data(&broker_certs),
            operator_certs: data(&operator_certs),
        },
        now: SystemTime::now(),
        // Whether every broker has loaded the newest material is not tracked yet, so a
        // renewed-away cluster CA stays trusted until it expires (at most its renewal
        // window), never dropped while a broker may still present a leaf it signed.
        brokers_current: false,
        forced_cluster_ca: forced(cluster_ca_cert.as_ref(), cluster_ca_key.as_ref()),
        forced_clients_ca: forced(clients_ca_cert.as_ref(), clients_ca_key.as_ref()),
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
    // Only now that the renewed Secrets are written: a failure before this point leaves
    // the annotations, and the next reconcile renews again rather than never. A
    // user-provided CA is never renewed by the operator, so its annotations are left.
    for (settings, cert, key) in [
        (&request.cluster_ca, &cluster_ca_cert, &cluster_ca_key),
        (&request.clients_ca, &clients_ca_cert, &clients_ca_key),
    ] {
        if !settings.generate {
            continue;
        }
        for (secret, annotation) in [
            (cert, cert_names::FORCE_RENEW_ANNOTATION),
            (key, cert_names::FORCE_REPLACE_ANNOTATION),
        ] {
            if let Some(secret) = secret.as_ref().filter(|s| annotated(Some(s), annotation)) {
                remove_annotation(api, &secret.name_any(), annotation).await?;
            }
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
        CertEvent::CaRenewed {
            kind,
            key_replaced,
            forced,
        } => {
            let what = if *key_replaced {
                "replaced the key of"
            } else {
                "renewed the certificate (same key) of"
            };
            let why = if *forced { " as annotated" } else { "" };
            (
                "CertificateAuthorityRenewed",
                format!(
                    "{what} the {kind}{why}; the old certificate stays trusted until nothing \
                     uses it"
                ),
            )
        }
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
            certificate_expiration_policy: Some(CertificateExpirationPolicy::ReplaceKey),
        };
        assert_eq!(
            ca_settings(Some(&own)),
            CaSettings {
                validity_days: 10,
                renewal_days: 2,
                generate: false,
                expiration_policy: ExpirationPolicy::ReplaceKey,
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
