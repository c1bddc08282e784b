//! Leaf certificates: deciding whether a stored one is still good, and issuing a new one.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::authority::{backdated, Authority};
use super::error::CertError;
use super::{random, x509};

/// What a leaf certificate must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeafSpec {
    pub common_name: String,
    pub organization: Option<String>,
    /// DNS names and IP addresses, as given; IP literals become IP SANs.
    pub alt_names: Vec<String>,
    pub server_auth: bool,
}

impl LeafSpec {
    fn expected_sans(&self) -> BTreeSet<String> {
        self.alt_names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => format!("ip:{ip}"),
                Err(_) => format!("dns:{n}"),
            })
            .collect()
    }
}

/// Why a leaf is (re-)issued; goes into the Event the caller records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueReason {
    /// No certificate or key stored, or one that does not parse or whose key does not match.
    Missing,
    /// The stored certificate was not issued under the current CA certificate (renewed
    /// or replaced CA).
    CaChanged,
    /// Subject or alternative names differ from what the cluster needs now.
    NamesChanged,
    /// Within the renewal window of its expiry.
    Expiring,
}

impl std::fmt::Display for IssueReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IssueReason::Missing => "missing or unreadable",
            IssueReason::CaChanged => "issuing CA changed",
            IssueReason::NamesChanged => "subject or names changed",
            IssueReason::Expiring => "within the renewal window",
        })
    }
}

/// `None` when the stored `crt` (leaf first) and `key` are still right for `spec` under `ca`.
pub(crate) fn leaf_due(
    crt: Option<&[u8]>,
    key: Option<&[u8]>,
    spec: &LeafSpec,
    ca: &Authority,
    now: OffsetDateTime,
    renewal_days: u32,
) -> Option<IssueReason> {
    let Some(chain) = crt.and_then(x509::parse_cert_pems) else {
        return Some(IssueReason::Missing);
    };
    let Some(leaf) = chain.first() else {
        return Some(IssueReason::Missing);
    };
    let key = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(|k| KeyPair::from_pem(k).ok());
    let matches =
        key.is_some_and(|k| x509::public_key_raw(leaf).as_deref() == Some(k.public_key_raw()));
    if !matches {
        return Some(IssueReason::Missing);
    }
    if !issued_under(&chain, ca) {
        return Some(IssueReason::CaChanged);
    }
    let subject = x509::subject_cn_o(leaf);
    if subject != Some((spec.common_name.clone(), spec.organization.clone()))
        || x509::subject_alt_names(leaf) != Some(spec.expected_sans())
    {
        return Some(IssueReason::NamesChanged);
    }
    expiring(leaf, ca, now, renewal_days).then_some(IssueReason::Expiring)
}

/// True when `chain` (leaf first, as stored) was issued under `ca`'s current certificate:
/// signed by its key, and shipped with that very certificate. The signature alone cannot
/// tell a CA certificate from its renewal (same key, same subject); the certificate the
/// leaf was stored with can, and it is what the holder presents as its chain.
pub(crate) fn issued_under(chain: &[Vec<u8>], ca: &Authority) -> bool {
    chain.first().is_some_and(|leaf| ca.issued(leaf))
        && chain.get(1).map(Vec::as_slice) == Some(ca.cert_der())
}

/// Within the renewal window — unless the leaf already lasts as long as its CA: a new one
/// could not last longer, and re-issuing it on every reconcile would only churn the brokers
/// (this happens with a user-provided CA close to its own expiry).
pub(crate) fn expiring(
    leaf_der: &[u8],
    ca: &Authority,
    now: OffsetDateTime,
    renewal_days: u32,
) -> bool {
    let Some(not_after) = x509::not_after(leaf_der) else {
        return true;
    };
    not_after - time::Duration::days(i64::from(renewal_days)) <= now && not_after < ca.not_after()
}

pub(crate) struct IssuedLeaf {
    pub cert_der: Vec<u8>,
    pub key: KeyPair,
}

impl IssuedLeaf {
    /// Leaf then issuing CA: TLS peers get the chain without needing the intermediate.
    pub fn chain_pem(&self, ca: &Authority) -> String {
        x509::encode_cert_pem(&self.cert_der) + &x509::encode_cert_pem(ca.cert_der())
    }
}

/// Issues a leaf valid for `validity_days`, but never past the CA's own expiry (a
/// certificate outliving its issuer would fail validation anyway).
pub(crate) fn issue_leaf(
    spec: &LeafSpec,
    ca: &Authority,
    now: OffsetDateTime,
    validity_days: u32,
) -> Result<IssuedLeaf, CertError> {
    if ca.not_after() <= now {
        return Err(CertError::CaExpired { kind: ca.kind() });
    }
    let mut params = CertificateParams::default();
    // O before CN in the encoding: Kafka prints the subject most specific first
    // (RFC 4514), so the principal reads `CN=<name>,O=strom.dev` as documented.
    let mut dn = DistinguishedName::new();
    if let Some(o) = &spec.organization {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, spec.common_name.as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = spec
        .alt_names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.as_str().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = if spec.server_auth {
        // Brokers are servers to clients and clients of each other (inter-broker mTLS).
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = backdated(now);
    params.not_after = (now + time::Duration::days(i64::from(validity_days))).min(ca.not_after());
    params.serial_number = Some(random::serial()?);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca.signer(), ca.key())?;
    Ok(IssuedLeaf {
        cert_der: cert.der().to_vec(),
        key,
    })
}
