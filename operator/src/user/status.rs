//! A KafkaUser's status from the outcome of a reconcile, and the decisions around it that
//! need no API: which cluster, whether a cluster change should wake it, the condition
//! reasons.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::conditions::{decide, merge};
use crate::crd::{KafkaUser, KafkaUserStatus};
use crate::membership;

/// Removes the user's credential, ACLs, quotas and Secret when the resource goes.
pub const FINALIZER: &str = "kafka.strom.dev/user";

pub use crate::membership::{
    cluster_label, BROKERS_UNREACHABLE, CLUSTER_LABEL_MISSING, CLUSTER_NOT_FOUND,
};
/// The clients CA cannot sign a tls user's certificate yet.
pub const CERTIFICATE_AUTHORITY_NOT_READY: &str = "CertificateAuthorityNotReady";
/// `spec.authentication.password` names a Secret or key that is not there.
pub const PASSWORD_SECRET_NOT_FOUND: &str = "PasswordSecretNotFound";
/// A Secret with the user's name exists and is not this KafkaUser's.
pub const SECRET_CONFLICT: &str = "SecretConflict";
/// No randomness for a password (the host's entropy source failed).
pub const PASSWORD_GENERATION_FAILED: &str = "PasswordGenerationFailed";

pub fn has_finalizer(user: &KafkaUser) -> bool {
    user.finalizers().iter().any(|f| f == FINALIZER)
}

/// Whether a change of the KafkaCluster `namespace/cluster` should wake `user`: it
/// belongs to that cluster and waits for it (or for its clients CA).
pub fn waits_for_cluster(user: &KafkaUser, namespace: &str, cluster: &str) -> bool {
    let conditions = user.status.as_ref().map_or(&[][..], |s| &s.conditions);
    membership::waits_for_cluster(
        user,
        conditions,
        namespace,
        cluster,
        &[CERTIFICATE_AUTHORITY_NOT_READY],
    )
}

/// The status a reconcile leaves: Ready (and NotReady) from `problem` (reason and message,
/// `None` when the brokers hold what the spec says), the principal's name and the Secret.
pub fn status(
    user: &KafkaUser,
    problem: Option<(String, String)>,
    username: Option<String>,
    secret: Option<String>,
    now: Timestamp,
) -> KafkaUserStatus {
    let ready_message = match &username {
        Some(u) => format!("user {u} matches its spec"),
        None => "the user matches its spec".to_string(),
    };
    let previous = user
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let decided = decide(
        problem.as_ref().map(|(r, m)| (r.as_str(), m.clone())),
        &ready_message,
        &[],
    );
    KafkaUserStatus {
        conditions: merge(&previous, decided, user.metadata.generation, now),
        observed_generation: user.metadata.generation,
        username,
        secret,
    }
}

/// The principal name the brokers were last set up for, so a change of authentication
/// type can clean up the old one.
pub fn previous_username(user: &KafkaUser) -> Option<String> {
    user.status.as_ref().and_then(|s| s.username.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Ready's status and reason.
    fn ready(status: &KafkaUserStatus) -> Option<(String, String)> {
        crate::conditions::ready(&status.conditions).map(|c| (c.status.clone(), c.reason.clone()))
    }

    fn user(status: serde_json::Value) -> KafkaUser {
        serde_json::from_value(json!({
            "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaUser",
            "metadata": {"name": "alice", "namespace": "kafka", "generation": 3,
                         "labels": {"kafka.strom.dev/cluster": "my-cluster"}},
            "spec": {"authentication": {"type": "scram-sha-512"}},
            "status": status,
        }))
        .expect("a KafkaUser")
    }

    #[test]
    fn status_carries_the_principal_secret_and_generation() {
        let u = user(json!({}));
        let now = Timestamp::from_second(1_000).expect("time");
        let s = status(&u, None, Some("alice".into()), Some("alice".into()), now);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.username.as_deref(), Some("alice"));
        assert_eq!(s.secret.as_deref(), Some("alice"));
        assert_eq!(ready(&s), Some(("True".into(), "Ready".into())));
        let failing = status(
            &u,
            Some((CLUSTER_NOT_FOUND.into(), "gone".into())),
            None,
            None,
            now,
        );
        assert_eq!(
            ready(&failing),
            Some(("False".into(), CLUSTER_NOT_FOUND.into()))
        );
    }

    #[test]
    fn only_users_waiting_for_their_cluster_wake_on_its_change() {
        let waiting = user(json!({"conditions": [{"type": "Ready", "status": "False",
            "reason": "ClusterNotFound", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}));
        assert!(waits_for_cluster(&waiting, "kafka", "my-cluster"));
        assert!(!waits_for_cluster(&waiting, "kafka", "other"));
        let ready = user(json!({"conditions": [{"type": "Ready", "status": "True",
            "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}));
        assert!(!waits_for_cluster(&ready, "kafka", "my-cluster"));
    }
}
