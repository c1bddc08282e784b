//! Certificate authorities and certificates of a KafkaCluster, as pure functions.
//!
//! Each cluster has two CAs, like Strimzi: the *cluster CA* signs the broker certificates
//! and the operator's client certificate; the *clients CA* signs KafkaUser certificates.
//! [`reconcile_certificates`] takes the current data of the cluster's Secrets and the
//! time, and returns the data every Secret should hold; the caller applies it with
//! server-side apply. Called again with its own output it returns the same bytes, so a
//! steady cluster sees no writes and no broker restarts.
//!
//! Renewal of a generated CA, across reconciles:
//! 1. The current CA is within `renewal_days` of expiry, or a renewal was forced
//!    ([`Forced`]). What follows depends on its [`ExpirationPolicy`]:
//!    - `RenewCertificate` (the default): a new self-signed certificate with the *same* key
//!      and the *same* subject, a new serial and a new validity. Leaves issued under either
//!      certificate verify against either, so a client whose truststore still holds only
//!      the old certificate keeps connecting to brokers that present new leaves.
//!    - `ReplaceKey`: a new key and a certificate with a new subject (the generation in the
//!      CN goes up). Only the published bundle bridges the two: a client must load the new
//!      `ca.crt` before brokers present leaves from the new key.
//!
//!    Either way `ca.crt` holds the new certificate first and the old one after it, and
//!    every leaf (brokers, operator) is re-issued under the new certificate in the same
//!    call: a leaf belongs to the certificate its stored chain names (leaf, then the CA
//!    certificate it was issued under), which tells two certificates of one key apart.
//!    The broker digests change, so the caller rolls the brokers onto the new material.
//! 2. An old cluster CA certificate is dropped from `ca.crt` once (a) it was already in
//!    the stored bundle next to the current CA (it has been published for at least one
//!    reconcile), (b) no stored broker or operator certificate was issued under it, and (c)
//!    the caller says the brokers run the material of the previous output
//!    ([`CertsRequest::brokers_current`]), so no running broker still presents an old leaf.
//!    An old certificate that has expired is dropped regardless.
//! 3. An old clients CA certificate stays until it expires: the certificates it signed live
//!    in KafkaUser Secrets, which this module does not see, and users may take the whole
//!    renewal window to pick up their re-issued certificates.
//!
//! A user-provided CA (`generate: false`) is only read: its Secrets must exist with the
//! same keys (`ca.crt` may be a bundle; the newest certificate that matches `ca.key` is the
//! one that signs), and the module never writes them ([`CertsOutput::cluster_ca`] is
//! `None`); forced renewals do not apply to it.

mod authority;
mod error;
mod issue;
pub mod names;
mod pkcs12;
mod random;
mod user;
mod x509;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::ByteString;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use authority::Authority;
pub use error::{CaKind, CertError};
pub use issue::IssueReason;
pub use user::{issue_user_certificate, user_certificate_due, UserCertificate};

use issue::{issue_leaf, issued_under, leaf_due, LeafSpec};

/// The `data` of a Secret, as `Secret::data` holds it.
pub type SecretData = BTreeMap<String, ByteString>;

/// Validity and renewal of one CA and of the leaves it issues (Strimzi's `clusterCa` /
/// `clientsCa` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaSettings {
    pub validity_days: u32,
    /// A certificate is renewed once it is this close to its expiry.
    pub renewal_days: u32,
    /// False for a user-provided CA: the operator reads it and never writes it.
    pub generate: bool,
    /// What a renewal does to a generated CA (Strimzi's `certificateExpirationPolicy`).
    pub expiration_policy: ExpirationPolicy,
}

/// How a generated CA is renewed when it nears its expiry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpirationPolicy {
    /// A new certificate for the same key and subject: clients that trust the old
    /// certificate also accept leaves issued under the new one.
    #[default]
    RenewCertificate,
    /// A new key and subject: clients must load the new bundle before brokers present
    /// leaves from it.
    ReplaceKey,
}

/// Renewals asked for by hand (annotations on a generated CA's Secrets, see
/// [`names::FORCE_RENEW_ANNOTATION`]), done at this call whatever the dates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forced {
    /// Renew the CA as its [`ExpirationPolicy`] says.
    pub renew: bool,
    /// Give the CA a new key, whatever its policy.
    pub replace_key: bool,
}

impl Forced {
    pub fn any(&self) -> bool {
        self.renew || self.replace_key
    }
}

impl Default for CaSettings {
    fn default() -> Self {
        Self {
            validity_days: 365,
            renewal_days: 30,
            generate: true,
            expiration_policy: ExpirationPolicy::RenewCertificate,
        }
    }
}

impl CaSettings {
    fn validate(&self, kind: CaKind) -> Result<(), CertError> {
        // A renewal window as long as the validity would renew on every reconcile.
        if self.renewal_days >= self.validity_days {
            return Err(CertError::InvalidSettings {
                kind,
                validity_days: self.validity_days,
                renewal_days: self.renewal_days,
            });
        }
        Ok(())
    }
}

/// One broker the certificates are for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerIdentity {
    /// The StatefulSet ordinal (`<cluster>-broker-<ordinal>`).
    pub ordinal: u32,
    /// Extra DNS names or IP addresses this broker is reached by (nodeport / loadbalancer
    /// listener addresses), added to the certificate's alternative names.
    pub extra_names: Vec<String>,
}

/// The current `data` of each Secret; `None` when the Secret does not exist.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExistingSecrets<'a> {
    pub cluster_ca_cert: Option<&'a SecretData>,
    pub cluster_ca_key: Option<&'a SecretData>,
    pub clients_ca_cert: Option<&'a SecretData>,
    pub clients_ca_key: Option<&'a SecretData>,
    pub broker_certs: Option<&'a SecretData>,
    pub operator_certs: Option<&'a SecretData>,
}

#[derive(Clone, Debug)]
pub struct CertsRequest<'a> {
    pub cluster: &'a str,
    pub namespace: &'a str,
    pub brokers: &'a [BrokerIdentity],
    pub cluster_ca: CaSettings,
    pub clients_ca: CaSettings,
    pub existing: ExistingSecrets<'a>,
    pub now: SystemTime,
    /// True when every broker pod runs with the [`CertsOutput::broker_digests`] of the
    /// previous call. Gates dropping a renewed-away cluster CA from `ca.crt` (step 2 in the
    /// module docs); a caller that does not track this passes `true` after its roll.
    pub brokers_current: bool,
    /// Renewals forced on the cluster CA; ignored for a user-provided CA.
    pub forced_cluster_ca: Forced,
    /// Renewals forced on the clients CA; ignored for a user-provided CA.
    pub forced_clients_ca: Forced,
}

/// The data of a generated CA's two Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSecrets {
    /// `<cluster>-<kind>-ca-cert`: `ca.crt`, `ca.p12`, `ca.password`.
    pub cert: SecretData,
    /// `<cluster>-<kind>-ca`: `ca.key`.
    pub key: SecretData,
}

/// What happened, for Events and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertEvent {
    /// A CA was generated from nothing (`reason`: why the stored one could not be used).
    CaCreated { kind: CaKind, reason: String },
    /// A CA reached its renewal window, or a renewal was forced, and was renewed; the old
    /// certificate is still trusted.
    CaRenewed {
        kind: CaKind,
        /// True for a new key (`ReplaceKey`), false for a new certificate of the same key.
        key_replaced: bool,
        /// True when an annotation asked for it.
        forced: bool,
    },
    /// Old CA certificates dropped from `ca.crt`.
    CaRetired { kind: CaKind, count: usize },
    /// A leaf was (re-)issued: `holder` is `broker-<i>` or `operator`.
    LeafIssued { holder: String, reason: IssueReason },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertsOutput {
    /// `None` for a user-provided CA: nothing to write.
    pub cluster_ca: Option<CaSecrets>,
    pub clients_ca: Option<CaSecrets>,
    /// `<cluster>-broker-certs`: `broker-<i>.crt`, `broker-<i>.key` and the two as one PEM
    /// keystore, `broker-<i>.pem`, for each requested broker.
    pub broker_certs: SecretData,
    /// `<cluster>-operator-certs`: `operator.crt`, `operator.key`, `ca.crt`.
    pub operator_certs: SecretData,
    /// Per broker ordinal, a SHA-256 (hex) over everything that broker loads: its
    /// certificate and key and both CA bundles. Put it in a pod annotation; a change means
    /// the broker must reload or restart.
    pub broker_digests: BTreeMap<u32, String>,
    pub events: Vec<CertEvent>,
}

impl CertsOutput {
    /// Every Secret to apply, by name.
    pub fn secrets(&self, cluster: &str) -> Vec<(String, &SecretData)> {
        let mut out = Vec::new();
        if let Some(ca) = &self.cluster_ca {
            out.push((names::cluster_ca_cert_secret(cluster), &ca.cert));
            out.push((names::cluster_ca_key_secret(cluster), &ca.key));
        }
        if let Some(ca) = &self.clients_ca {
            out.push((names::clients_ca_cert_secret(cluster), &ca.cert));
            out.push((names::clients_ca_key_secret(cluster), &ca.key));
        }
        out.push((names::broker_certs_secret(cluster), &self.broker_certs));
        out.push((names::operator_certs_secret(cluster), &self.operator_certs));
        out
    }
}

/// Decides and produces every CA and leaf Secret of a cluster. See the module docs for the
/// renewal rules.
pub fn reconcile_certificates(req: &CertsRequest<'_>) -> Result<CertsOutput, CertError> {
    let now = OffsetDateTime::from(req.now);
    let mut events = Vec::new();

    // Leaf chains stored now, to know whether an old cluster CA certificate still has
    // leaves in use that were issued under it.
    let stored_chains = stored_leaf_chains(&req.existing);
    let cluster_ca = reconcile_ca(
        CaInputs {
            kind: CaKind::Cluster,
            cluster: req.cluster,
            settings: &req.cluster_ca,
            cert: req.existing.cluster_ca_cert,
            key: req.existing.cluster_ca_key,
            forced: req.forced_cluster_ca,
        },
        now,
        |ca, old| {
            req.brokers_current
                && !stored_chains.iter().any(|chain| {
                    chain.first().is_some_and(|leaf| x509::signed_by(leaf, old))
                        && !issued_under(chain, ca)
                })
        },
        &mut events,
    )?;
    let clients_ca = reconcile_ca(
        CaInputs {
            kind: CaKind::Clients,
            cluster: req.cluster,
            settings: &req.clients_ca,
            cert: req.existing.clients_ca_cert,
            key: req.existing.clients_ca_key,
            forced: req.forced_clients_ca,
        },
        now,
        |_, _| false,
        &mut events,
    )?;

    let cluster_bundle = cluster_ca.bundle_pem();
    let clients_bundle = clients_ca.bundle_pem();
    let mut broker_certs = SecretData::new();
    let mut broker_digests = BTreeMap::new();
    for broker in req.brokers {
        let mut alt_names = names::broker_dns_names(req.cluster, req.namespace, broker.ordinal);
        for extra in &broker.extra_names {
            if !alt_names.contains(extra) {
                alt_names.push(extra.clone());
            }
        }
        let spec = LeafSpec {
            common_name: names::broker_common_name(req.cluster),
            organization: Some(names::ORGANIZATION.to_owned()),
            alt_names,
            server_auth: true,
        };
        let (crt, key) = leaf(
            &spec,
            req.existing.broker_certs,
            &names::broker_crt(broker.ordinal),
            &names::broker_key(broker.ordinal),
            &format!("broker-{}", broker.ordinal),
            &cluster_ca,
            &req.cluster_ca,
            now,
            &mut events,
        )?;
        broker_digests.insert(
            broker.ordinal,
            digest(&[
                &crt.0,
                &key.0,
                cluster_bundle.as_bytes(),
                clients_bundle.as_bytes(),
            ]),
        );
        let keystore = [key.0.as_slice(), crt.0.as_slice()].concat();
        broker_certs.insert(names::broker_keystore(broker.ordinal), ByteString(keystore));
        broker_certs.insert(names::broker_crt(broker.ordinal), crt);
        broker_certs.insert(names::broker_key(broker.ordinal), key);
    }

    let operator_spec = LeafSpec {
        common_name: names::OPERATOR_COMMON_NAME.to_owned(),
        organization: Some(names::ORGANIZATION.to_owned()),
        alt_names: Vec::new(),
        server_auth: false,
    };
    let (crt, key) = leaf(
        &operator_spec,
        req.existing.operator_certs,
        names::OPERATOR_CRT,
        names::OPERATOR_KEY,
        "operator",
        &cluster_ca,
        &req.cluster_ca,
        now,
        &mut events,
    )?;
    let operator_certs = SecretData::from([
        (names::OPERATOR_CRT.to_owned(), crt),
        (names::OPERATOR_KEY.to_owned(), key),
        (
            names::CA_CRT.to_owned(),
            ByteString(cluster_bundle.into_bytes()),
        ),
    ]);

    Ok(CertsOutput {
        cluster_ca: ca_secrets(&cluster_ca, &req.cluster_ca, req.existing.cluster_ca_cert)?,
        clients_ca: ca_secrets(&clients_ca, &req.clients_ca, req.existing.clients_ca_cert)?,
        broker_certs,
        operator_certs,
        broker_digests,
        events,
    })
}

/// One CA's settings, Secrets and forced actions.
struct CaInputs<'a> {
    kind: CaKind,
    cluster: &'a str,
    settings: &'a CaSettings,
    cert: Option<&'a SecretData>,
    key: Option<&'a SecretData>,
    forced: Forced,
}

/// Loads, creates or renews one CA, and drops old certificates from its bundle.
/// `retire_unused(current, old)` says whether `old` may leave the bundle of `current`
/// because nothing in use was issued under it.
fn reconcile_ca(
    inputs: CaInputs<'_>,
    now: OffsetDateTime,
    retire_unused: impl Fn(&Authority, &[u8]) -> bool,
    events: &mut Vec<CertEvent>,
) -> Result<Authority, CertError> {
    let CaInputs {
        kind,
        cluster,
        settings,
        cert,
        key,
        forced,
    } = inputs;
    settings.validate(kind)?;
    if !settings.generate {
        return Authority::load(kind, cluster, cert, key);
    }
    // A generated CA whose Secrets are gone or damaged cannot be recovered (the key is the
    // CA); a new one is the only way forward, and every leaf follows it.
    let mut ca = match Authority::load(kind, cluster, cert, key) {
        Ok(ca) => ca,
        Err(err) => {
            let reason = if cert.is_none() && key.is_none() {
                "no CA yet".to_owned()
            } else {
                err.to_string()
            };
            events.push(CertEvent::CaCreated { kind, reason });
            // Brand new: a forced renewal has nothing left to do.
            return Authority::generate(kind, cluster, 0, now, settings.validity_days);
        }
    };
    let expiring = ca.not_after() - time::Duration::days(i64::from(settings.renewal_days)) <= now;
    let renewal = if forced.replace_key {
        Some(ExpirationPolicy::ReplaceKey)
    } else if forced.renew || expiring {
        Some(settings.expiration_policy)
    } else {
        None
    };
    if let Some(policy) = renewal {
        ca = match policy {
            ExpirationPolicy::RenewCertificate => {
                ca.renew_certificate(cluster, now, settings.validity_days)?
            }
            ExpirationPolicy::ReplaceKey => {
                let previous = ca.bundle().to_vec();
                let generation = ca.generation() + 1;
                let mut replaced =
                    Authority::generate(kind, cluster, generation, now, settings.validity_days)?;
                replaced.keep_trusting(previous);
                replaced
            }
        };
        events.push(CertEvent::CaRenewed {
            kind,
            key_replaced: policy == ExpirationPolicy::ReplaceKey,
            forced: forced.any(),
        });
    }
    let renewed = renewal.is_some();
    let to_retire: Vec<Vec<u8>> = ca
        .bundle()
        .iter()
        .filter(|old| {
            let expired = x509::not_after(old).is_none_or(|t| t <= now);
            // Just renewed: the old certificate must be published alongside the new one
            // first.
            expired || (!renewed && retire_unused(&ca, old))
        })
        .cloned()
        .collect();
    let count = ca.retire(|der| to_retire.iter().any(|r| r == der));
    if count > 0 {
        events.push(CertEvent::CaRetired { kind, count });
    }
    Ok(ca)
}

fn ca_secrets(
    ca: &Authority,
    settings: &CaSettings,
    existing_cert: Option<&SecretData>,
) -> Result<Option<CaSecrets>, CertError> {
    if !settings.generate {
        return Ok(None);
    }
    Ok(Some(CaSecrets {
        cert: ca.cert_secret_data(existing_cert)?,
        key: ca.key_secret_data(),
    }))
}

/// The stored leaf (crt, key) when still right, else a newly issued one.
#[allow(clippy::too_many_arguments)]
fn leaf(
    spec: &LeafSpec,
    existing: Option<&SecretData>,
    crt_key: &str,
    key_key: &str,
    holder: &str,
    ca: &Authority,
    settings: &CaSettings,
    now: OffsetDateTime,
    events: &mut Vec<CertEvent>,
) -> Result<(ByteString, ByteString), CertError> {
    let crt = existing.and_then(|d| d.get(crt_key));
    let key = existing.and_then(|d| d.get(key_key));
    let due = leaf_due(
        crt.map(|v| v.0.as_slice()),
        key.map(|v| v.0.as_slice()),
        spec,
        ca,
        now,
        settings.renewal_days,
    );
    match (due, crt, key) {
        (None, Some(crt), Some(key)) => Ok((crt.clone(), key.clone())),
        (reason, _, _) => {
            let issued = issue_leaf(spec, ca, now, settings.validity_days)?;
            events.push(CertEvent::LeafIssued {
                holder: holder.to_owned(),
                reason: reason.unwrap_or(IssueReason::Missing),
            });
            Ok((
                ByteString(issued.chain_pem(ca).into_bytes()),
                ByteString(issued.key.serialize_pem().into_bytes()),
            ))
        }
    }
}

/// Every stored broker and operator chain (leaf first), as DER.
fn stored_leaf_chains(existing: &ExistingSecrets<'_>) -> Vec<Vec<Vec<u8>>> {
    let brokers = existing
        .broker_certs
        .into_iter()
        .flat_map(|d| d.iter())
        .filter(|(k, _)| k.ends_with(".crt"))
        .map(|(_, v)| v);
    let operator = existing
        .operator_certs
        .and_then(|d| d.get(names::OPERATOR_CRT));
    brokers
        .chain(operator)
        .filter_map(|v| x509::parse_cert_pems(&v.0))
        .collect()
}

/// Length-prefixed so that moving bytes from one part to the next changes the digest.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    format!("{:x}", hasher.finalize())
}
