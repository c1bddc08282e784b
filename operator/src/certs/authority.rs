//! One certificate authority: loading it from its two Secrets, generating and renewing it,
//! and publishing its trust bundle.

use k8s_openapi::ByteString;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

use super::error::{CaKind, CertError};
use super::{names, random, x509, SecretData};

/// A CA that can sign: its current key and certificate, and the bundle of CA certificates
/// that relying parties must trust (the current one first).
pub struct Authority {
    kind: CaKind,
    key: KeyPair,
    /// rcgen signs with a `Certificate`; rebuilt from the stored DER so the subject and
    /// subject key identifier of issued leaves match the published CA exactly.
    signer: rcgen::Certificate,
    cert_der: Vec<u8>,
    not_after: OffsetDateTime,
    bundle: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("kind", &self.kind)
            .field("not_after", &self.not_after)
            .field("bundle_len", &self.bundle.len())
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads a CA from its Secrets' data (`<cluster>-<kind>-ca-cert` and `<cluster>-<kind>-ca`).
    /// The current certificate is the one in `ca.crt` whose public key belongs to `ca.key`,
    /// whatever its position, so a hand-made bundle in any order works; when several do (a
    /// certificate renewed with the same key), the one issued last.
    pub fn load(
        kind: CaKind,
        cluster: &str,
        cert_secret: Option<&SecretData>,
        key_secret: Option<&SecretData>,
    ) -> Result<Self, CertError> {
        let cert_name = cert_secret_name(kind, cluster);
        let key_name = key_secret_name(kind, cluster);
        let cert_data = cert_secret.ok_or_else(|| CertError::MissingCaSecret {
            kind,
            secret: cert_name.clone(),
        })?;
        let key_data = key_secret.ok_or_else(|| CertError::MissingCaSecret {
            kind,
            secret: key_name.clone(),
        })?;
        let crt = cert_data
            .get(names::CA_CRT)
            .ok_or_else(|| CertError::MissingCaData {
                kind,
                secret: cert_name.clone(),
                key: names::CA_CRT,
            })?;
        let key = key_data
            .get(names::CA_KEY)
            .ok_or_else(|| CertError::MissingCaData {
                kind,
                secret: key_name.clone(),
                key: names::CA_KEY,
            })?;
        let bundle = x509::parse_cert_pems(&crt.0).ok_or_else(|| CertError::MalformedCa {
            kind,
            secret: cert_name.clone(),
            key: names::CA_CRT,
            reason: "not a PEM bundle of X.509 certificates".into(),
        })?;
        let key_pem = std::str::from_utf8(&key.0).map_err(|_| CertError::MalformedCa {
            kind,
            secret: key_name.clone(),
            key: names::CA_KEY,
            reason: "not UTF-8 PEM".into(),
        })?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| CertError::MalformedCa {
            kind,
            secret: key_name.clone(),
            key: names::CA_KEY,
            reason: format!("not a PKCS#8 PEM private key ({e})"),
        })?;
        Self::from_parts(kind, &cert_name, key, bundle)
    }

    fn from_parts(
        kind: CaKind,
        cert_secret: &str,
        key: KeyPair,
        mut bundle: Vec<Vec<u8>>,
    ) -> Result<Self, CertError> {
        let public = key.public_key_raw().to_vec();
        // Issued last wins (a renewal may be shorter-lived than what it renews); among
        // equals the first listed (`max_by_key` keeps the last maximum, hence `Reverse`).
        let current = bundle
            .iter()
            .enumerate()
            .filter(|(_, der)| x509::public_key_raw(der).as_deref() == Some(public.as_slice()))
            .max_by_key(|(i, der)| (x509::not_before(der), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
            .ok_or_else(|| CertError::CaKeyMismatch {
                kind,
                secret: cert_secret.to_owned(),
            })?;
        let cert_der = bundle.remove(current);
        bundle.insert(0, cert_der.clone());
        if !x509::is_ca(&cert_der) {
            return Err(CertError::NotACa { kind });
        }
        let not_after = x509::not_after(&cert_der).ok_or_else(|| CertError::MalformedCa {
            kind,
            secret: cert_secret.to_owned(),
            key: names::CA_CRT,
            reason: "unreadable validity".into(),
        })?;
        let params = CertificateParams::from_ca_cert_der(&cert_der.clone().into())?;
        let signer = params.self_signed(&key)?;
        Ok(Self {
            kind,
            key,
            signer,
            cert_der,
            not_after,
            bundle,
        })
    }

    /// A new self-signed CA. `generation` goes into the CN so a renewed CA has a different
    /// subject from the one it replaces: verifiers that pick the issuer by name (Java,
    /// OpenSSL) then never try the wrong one of the two while both are trusted.
    pub(crate) fn generate(
        kind: CaKind,
        cluster: &str,
        generation: u64,
        now: OffsetDateTime,
        validity_days: u32,
    ) -> Result<Self, CertError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, names::ORGANIZATION);
        dn.push(
            DnType::CommonName,
            format!("{} v{generation}", ca_common_name(kind, cluster)),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = backdated(now);
        params.not_after = now + time::Duration::days(i64::from(validity_days));
        params.serial_number = Some(random::serial()?);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Self::from_parts(
            kind,
            &cert_secret_name(kind, cluster),
            key,
            vec![cert.der().to_vec()],
        )
    }

    /// The same CA with a new certificate: the same key, subject, extensions and subject
    /// key identifier, a new serial and a new validity from `now`. Leaves issued under the
    /// old certificate verify against the new one and the other way round (the issuer is
    /// found by name and checked by key, both unchanged). The old certificates stay in the
    /// bundle behind the new one.
    pub(crate) fn renew_certificate(
        self,
        cluster: &str,
        now: OffsetDateTime,
        validity_days: u32,
    ) -> Result<Self, CertError> {
        let mut params = CertificateParams::from_ca_cert_der(&self.cert_der.clone().into())?;
        params.not_before = backdated(now);
        params.not_after = now + time::Duration::days(i64::from(validity_days));
        params.serial_number = Some(random::serial()?);
        let cert = params.self_signed(&self.key)?;
        let mut renewed = Self::from_parts(
            self.kind,
            &cert_secret_name(self.kind, cluster),
            self.key,
            vec![cert.der().to_vec()],
        )?;
        renewed.keep_trusting(self.bundle);
        Ok(renewed)
    }

    /// The generation in the current CA's CN (`... v<n>`), 0 for a CA named otherwise.
    pub(crate) fn generation(&self) -> u64 {
        x509::common_name(&self.cert_der)
            .and_then(|cn| cn.rsplit_once(" v").and_then(|(_, n)| n.parse().ok()))
            .unwrap_or(0)
    }

    pub fn kind(&self) -> CaKind {
        self.kind
    }
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
    pub(crate) fn key(&self) -> &KeyPair {
        &self.key
    }
    pub(crate) fn signer(&self) -> &rcgen::Certificate {
        &self.signer
    }
    /// DER of the current CA certificate.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }
    /// DER of every trusted CA certificate, the current one first.
    pub fn bundle(&self) -> &[Vec<u8>] {
        &self.bundle
    }
    /// `ca.crt`: the PEM bundle.
    pub fn bundle_pem(&self) -> String {
        self.bundle
            .iter()
            .map(|d| x509::encode_cert_pem(d))
            .collect()
    }
    /// True when the current CA signed `leaf_der`.
    pub fn issued(&self, leaf_der: &[u8]) -> bool {
        x509::signed_by(leaf_der, &self.cert_der)
    }

    /// Adds a previous CA certificate behind the current one (a renewal keeps the old CA
    /// trusted until nothing it signed is in use).
    pub(crate) fn keep_trusting(&mut self, old: Vec<Vec<u8>>) {
        for der in old {
            if !self.bundle.contains(&der) {
                self.bundle.push(der);
            }
        }
    }

    pub(crate) fn retire(&mut self, retire: impl Fn(&[u8]) -> bool) -> usize {
        let before = self.bundle.len();
        let current = self.cert_der.clone();
        self.bundle.retain(|der| *der == current || !retire(der));
        before - self.bundle.len()
    }

    /// The data of the `-ca-cert` Secret. `ca.p12` and `ca.password` are carried over from
    /// `existing` when the bundle did not change, so a reconcile that changes nothing writes
    /// the same bytes (a new PKCS#12 would differ on every call: random salts).
    pub(crate) fn cert_secret_data(
        &self,
        existing: Option<&SecretData>,
    ) -> Result<SecretData, CertError> {
        let bundle_pem = self.bundle_pem();
        let reusable = existing.and_then(|data| {
            let same = data.get(names::CA_CRT)?.0 == bundle_pem.as_bytes();
            let p12 = data.get(names::CA_P12)?;
            let password = std::str::from_utf8(&data.get(names::CA_PASSWORD)?.0).ok()?;
            let store = p12_keystore::KeyStore::from_pkcs12(&p12.0, password).ok()?;
            (same && store.entries_count() == self.bundle.len())
                .then(|| (p12.clone(), password.to_owned()))
        });
        let (p12, password) = match reusable {
            Some(found) => found,
            None => {
                let password = random::password()?;
                let p12 = super::pkcs12::truststore(&self.bundle, &password)?;
                (ByteString(p12), password)
            }
        };
        Ok(SecretData::from([
            (
                names::CA_CRT.to_owned(),
                ByteString(bundle_pem.into_bytes()),
            ),
            (names::CA_P12.to_owned(), p12),
            (
                names::CA_PASSWORD.to_owned(),
                ByteString(password.into_bytes()),
            ),
        ]))
    }

    /// The data of the `-ca` Secret.
    pub(crate) fn key_secret_data(&self) -> SecretData {
        SecretData::from([(
            names::CA_KEY.to_owned(),
            ByteString(self.key.serialize_pem().into_bytes()),
        )])
    }
}

/// Certificates start a few minutes in the past: a node whose clock runs a little behind
/// the operator's would otherwise reject a certificate issued "in the future".
pub(crate) fn backdated(now: OffsetDateTime) -> OffsetDateTime {
    now - time::Duration::minutes(5)
}

fn ca_common_name(kind: CaKind, cluster: &str) -> String {
    match kind {
        CaKind::Cluster => format!("{cluster}-cluster-ca"),
        CaKind::Clients => format!("{cluster}-clients-ca"),
    }
}

pub(crate) fn cert_secret_name(kind: CaKind, cluster: &str) -> String {
    match kind {
        CaKind::Cluster => names::cluster_ca_cert_secret(cluster),
        CaKind::Clients => names::clients_ca_cert_secret(cluster),
    }
}

pub(crate) fn key_secret_name(kind: CaKind, cluster: &str) -> String {
    match kind {
        CaKind::Cluster => names::cluster_ca_key_secret(cluster),
        CaKind::Clients => names::clients_ca_key_secret(cluster),
    }
}
