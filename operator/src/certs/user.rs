//! KafkaUser certificates from the clients CA, for the KafkaUser controller.

use std::time::SystemTime;

use k8s_openapi::ByteString;
use time::OffsetDateTime;

use super::authority::Authority;
use super::error::CertError;
use super::issue::{issue_leaf, leaf_due, LeafSpec};
use super::{names, pkcs12, random, x509, SecretData};

/// The content of a KafkaUser's Secret (Strimzi's keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCertificate {
    /// The clients CA bundle, so a client can check what it is talking to belongs together.
    pub ca_crt: String,
    /// Leaf then clients CA, PEM.
    pub user_crt: String,
    /// PKCS#8 PEM.
    pub user_key: String,
    /// Key and chain as PKCS#12, protected by `user_password`.
    pub user_p12: Vec<u8>,
    pub user_password: String,
}

impl UserCertificate {
    pub fn into_secret_data(self) -> SecretData {
        SecretData::from([
            (
                names::CA_CRT.to_owned(),
                ByteString(self.ca_crt.into_bytes()),
            ),
            (
                names::USER_CRT.to_owned(),
                ByteString(self.user_crt.into_bytes()),
            ),
            (
                names::USER_KEY.to_owned(),
                ByteString(self.user_key.into_bytes()),
            ),
            (names::USER_P12.to_owned(), ByteString(self.user_p12)),
            (
                names::USER_PASSWORD.to_owned(),
                ByteString(self.user_password.into_bytes()),
            ),
        ])
    }
}

fn user_spec(user_name: &str) -> LeafSpec {
    // No O and no SANs: Kafka's principal is then exactly `User:CN=<user>`, which is what
    // the KafkaUser's ACLs are written against.
    LeafSpec {
        common_name: user_name.to_owned(),
        organization: None,
        alt_names: Vec::new(),
        server_auth: false,
    }
}

/// Issues a client certificate `CN=<user_name>` valid for `validity_days` (capped at the
/// CA's expiry), with a fresh key and PKCS#12 password.
pub fn issue_user_certificate(
    clients_ca: &Authority,
    user_name: &str,
    now: SystemTime,
    validity_days: u32,
) -> Result<UserCertificate, CertError> {
    let now = OffsetDateTime::from(now);
    let leaf = issue_leaf(&user_spec(user_name), clients_ca, now, validity_days)?;
    let password = random::password()?;
    let key_der = leaf.key.serialize_der();
    let p12 = pkcs12::keystore(
        user_name,
        &key_der,
        &[&leaf.cert_der, clients_ca.cert_der()],
        &password,
    )?;
    Ok(UserCertificate {
        ca_crt: clients_ca.bundle_pem(),
        user_crt: leaf.chain_pem(clients_ca),
        user_key: leaf.key.serialize_pem(),
        user_p12: p12,
        user_password: password,
    })
}

/// True when a KafkaUser's Secret needs a new certificate: data missing or unreadable
/// (including a `user.p12` that does not open with `user.password`), a certificate not for
/// this user, not from the current clients CA, or within `renewal_days` of its expiry.
/// When only `ca.crt` is stale (the clients CA bundle changed), the certificate is still
/// good: the caller refreshes `ca.crt` from `clients_ca.bundle_pem()` without re-issuing.
pub fn user_certificate_due(
    existing: Option<&SecretData>,
    clients_ca: &Authority,
    user_name: &str,
    now: SystemTime,
    renewal_days: u32,
) -> bool {
    let now = OffsetDateTime::from(now);
    let Some(data) = existing else {
        return true;
    };
    let get = |k: &str| data.get(k).map(|v| v.0.as_slice());
    let (Some(crt), Some(key), Some(p12), Some(password)) = (
        get(names::USER_CRT),
        get(names::USER_KEY),
        get(names::USER_P12),
        get(names::USER_PASSWORD).and_then(|p| std::str::from_utf8(p).ok()),
    ) else {
        return true;
    };
    if leaf_due(
        Some(crt),
        Some(key),
        &user_spec(user_name),
        clients_ca,
        now,
        renewal_days,
    )
    .is_some()
    {
        return true;
    }
    let Some(leaf) = x509::parse_cert_pems(crt).and_then(|c| c.into_iter().next()) else {
        return true;
    };
    // The PKCS#12 must hold the same certificate, or Java clients would present another one.
    let Ok(store) = p12_keystore::KeyStore::from_pkcs12(p12, password) else {
        return true;
    };
    let same = store
        .private_key_chain()
        .and_then(|(_, chain)| chain.chain().first().map(|c| c.as_der() == leaf.as_slice()));
    same != Some(true)
}
