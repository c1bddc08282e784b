//! The Secret a KafkaUser's clients read their credentials from, named after the user
//! and owned by it: for SCRAM the password and Kafka's JAAS line, for tls the client
//! certificate from the cluster's clients CA ([`tls_user_secret`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::{Resource, ResourceExt};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use std::time::SystemTime;

use crate::certs::{issue_user_certificate, user_certificate_due, Authority, CaSettings};
use crate::crd::{KafkaUser, CLUSTER_LABEL};

pub const PASSWORD_KEY: &str = "password";
pub const JAAS_KEY: &str = "sasl.jaas.config";
/// A digest of the password the brokers were last given, so a reconcile re-upserts the
/// credential only when the password changed (the brokers never show it back).
pub const PASSWORD_HASH_ANNOTATION: &str = "kafka.strom.dev/password-hash";
/// Length of a generated password, from [a-zA-Z0-9].
pub const PASSWORD_LENGTH: usize = 32;

const ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("no random bytes for a password")]
    NoRandomness,
    /// The clients certificate authority is not there (yet) to sign a user certificate.
    #[error("the clients certificate authority of KafkaCluster {cluster} is not ready: {reason}")]
    ClientsCaNotReady { cluster: String, reason: String },
    /// Issuing the certificate failed.
    #[error("issuing the user certificate: {0}")]
    Certificate(String),
}

/// A fresh password, uniform over the alphabet (bytes past the last multiple of 62 are
/// drawn again rather than folded, which would favour the first letters).
pub fn generate_password() -> Result<String, SecretError> {
    let random = SystemRandom::new();
    let mut out = String::with_capacity(PASSWORD_LENGTH);
    let limit = 256 - 256 % ALPHABET.len();
    while out.len() < PASSWORD_LENGTH {
        let mut bytes = [0u8; 64];
        random
            .fill(&mut bytes)
            .map_err(|_| SecretError::NoRandomness)?;
        for b in bytes {
            if usize::from(b) < limit && out.len() < PASSWORD_LENGTH {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// Kafka's client property for SCRAM, as clients paste it.
pub fn jaas_config(username: &str, password: &str) -> String {
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";",
        jaas_escape(username),
        jaas_escape(password)
    )
}

/// JAAS quotes its values; a quote or backslash inside one must be escaped.
fn jaas_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The digest kept in [`PASSWORD_HASH_ANNOTATION`]; the user name goes in so two users
/// with one password do not show equal digests.
pub fn password_hash(username: &str, password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(username.as_bytes());
    hasher.update([0u8]);
    hasher.update(password.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Secret's key as text; `None` when missing, empty or not UTF-8.
pub fn key_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        })
        .filter(|v| !v.is_empty())
}

/// The digest the Secret records for the credential on the brokers.
pub fn recorded_hash(secret: &Secret) -> Option<&str> {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PASSWORD_HASH_ANNOTATION))
        .map(String::as_str)
}

/// Whether `secret` is this KafkaUser's own (so the operator may change or delete it),
/// rather than someone else's Secret that happens to have the name.
pub fn owned_by(secret: &Secret, user: &KafkaUser) -> bool {
    let Some(uid) = user.uid() else {
        return false;
    };
    secret
        .owner_references()
        .iter()
        .any(|r| r.uid == uid && r.kind == "KafkaUser")
}

fn owner(user: &KafkaUser) -> Option<OwnerReference> {
    user.controller_owner_ref(&())
}

fn metadata(user: &KafkaUser, annotations: BTreeMap<String, String>) -> ObjectMeta {
    let mut labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            crate::cluster::names::FIELD_MANAGER.to_string(),
        ),
        (
            "app.kubernetes.io/name".to_string(),
            "kafka-user".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), user.name_any()),
    ]);
    if let Some(cluster) = user.labels().get(CLUSTER_LABEL) {
        labels.insert(CLUSTER_LABEL.to_string(), cluster.clone());
    }
    ObjectMeta {
        name: Some(user.name_any()),
        namespace: user.namespace(),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: owner(user).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// A SCRAM user's Secret: its password, the JAAS line, and the digest of the password
/// the brokers hold.
pub fn scram_secret(user: &KafkaUser, username: &str, password: &str) -> Secret {
    let annotations = BTreeMap::from([(
        PASSWORD_HASH_ANNOTATION.to_string(),
        password_hash(username, password),
    )]);
    let data = BTreeMap::from([
        (
            PASSWORD_KEY.to_string(),
            ByteString(password.as_bytes().to_vec()),
        ),
        (
            JAAS_KEY.to_string(),
            ByteString(jaas_config(username, password).into_bytes()),
        ),
    ]);
    Secret {
        metadata: metadata(user, annotations),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// A tls user's Secret: `ca.crt`, `user.crt`, `user.key`, `user.p12` and `user.password`,
/// a certificate for `CN=<name>` signed by `clients_ca`, kept while `existing` still
/// holds one that is neither due for renewal nor from another CA.
pub fn tls_user_secret(
    user: &KafkaUser,
    clients_ca: &Authority,
    settings: CaSettings,
    existing: Option<&Secret>,
    now: SystemTime,
) -> Result<Secret, SecretError> {
    let name = user.name_any();
    let existing_data = existing.and_then(|s| s.data.as_ref());
    let data = match existing_data {
        Some(data)
            if !user_certificate_due(Some(data), clients_ca, &name, now, settings.renewal_days) =>
        {
            data.clone()
        }
        _ => issue_user_certificate(clients_ca, &name, now, settings.validity_days)
            .map_err(|e| SecretError::Certificate(e.to_string()))?
            .into_secret_data(),
    };
    Ok(Secret {
        metadata: metadata(user, BTreeMap::new()),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> KafkaUser {
        serde_json::from_value(json!({
            "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaUser",
            "metadata": {"name": "alice", "namespace": "kafka", "uid": "uid-alice",
                         "labels": {"kafka.strom.dev/cluster": "my-cluster"}},
            "spec": {"authentication": {"type": "scram-sha-512"}},
        }))
        .expect("a KafkaUser")
    }

    #[test]
    fn generated_passwords_are_32_alphanumerics_and_differ() {
        let a = generate_password().expect("randomness");
        let b = generate_password().expect("randomness");
        assert_eq!(a.len(), PASSWORD_LENGTH);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_jaas_line_is_kafkas() {
        assert_eq!(
            jaas_config("alice", "s3cr\"t"),
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s3cr\\\"t\";"
        );
    }

    #[test]
    fn the_scram_secret_is_owned_and_records_the_password_digest() {
        let u = user();
        let secret = scram_secret(&u, "alice", "pw");
        assert_eq!(secret.metadata.name.as_deref(), Some("alice"));
        assert_eq!(key_text(&secret, PASSWORD_KEY).as_deref(), Some("pw"));
        assert!(key_text(&secret, JAAS_KEY)
            .is_some_and(|j| j.contains("username=\"alice\" password=\"pw\"")));
        assert_eq!(
            recorded_hash(&secret),
            Some(password_hash("alice", "pw").as_str())
        );
        assert_ne!(password_hash("alice", "pw"), password_hash("bob", "pw"));
        assert!(owned_by(&secret, &u));
        let refs = secret.metadata.owner_references.as_ref().expect("owner");
        assert_eq!(refs[0].controller, Some(true));
        let stranger = Secret {
            metadata: ObjectMeta {
                name: Some("alice".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        assert!(!owned_by(&stranger, &u));
    }

    #[test]
    fn tls_secrets_hold_a_certificate_from_the_clients_ca_until_it_is_due() {
        use crate::certs::{names, reconcile_certificates, CaKind, CertsRequest};
        use std::time::Duration;
        let now = SystemTime::now();
        let cas = reconcile_certificates(&CertsRequest {
            cluster: "my-cluster",
            namespace: "kafka",
            brokers: &[],
            cluster_ca: CaSettings::default(),
            clients_ca: CaSettings::default(),
            existing: Default::default(),
            now,
            brokers_current: true,
            forced_cluster_ca: Default::default(),
            forced_clients_ca: Default::default(),
        })
        .expect("fresh CAs");
        let clients = cas.clients_ca.expect("a generated clients CA");
        let ca = Authority::load(
            CaKind::Clients,
            "my-cluster",
            Some(&clients.cert),
            Some(&clients.key),
        )
        .expect("the clients CA loads");
        let mut user = user();
        user.spec.authentication.kind = crate::crd::user::UserAuthenticationType::Tls;
        // Users' certificates live ten days here, renewed in their last two.
        let settings = CaSettings {
            validity_days: 10,
            renewal_days: 2,
            generate: true,
            ..CaSettings::default()
        };
        let first = tls_user_secret(&user, &ca, settings, None, now).expect("issued");
        let data = first.data.clone().expect("data");
        for key in [
            names::CA_CRT,
            names::USER_CRT,
            names::USER_KEY,
            names::USER_P12,
            names::USER_PASSWORD,
        ] {
            assert!(data.get(key).is_some_and(|v| !v.0.is_empty()), "{key}");
        }
        assert!(owned_by(&first, &user));

        let day = Duration::from_secs(86_400);
        let kept =
            tls_user_secret(&user, &ca, settings, Some(&first), now + 7 * day).expect("kept");
        assert_eq!(kept.data, first.data, "not due on day 7");
        let renewed =
            tls_user_secret(&user, &ca, settings, Some(&first), now + 9 * day).expect("renewed");
        let renewed = renewed.data.expect("data");
        assert_ne!(renewed.get(names::USER_CRT), data.get(names::USER_CRT));
        assert_ne!(
            renewed.get(names::USER_PASSWORD),
            data.get(names::USER_PASSWORD)
        );
    }
}
