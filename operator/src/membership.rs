//! Which KafkaCluster a KafkaTopic or KafkaUser belongs to (its `kafka.strom.dev/cluster`
//! label), the reasons it waits on that cluster with, and whether a change of a cluster
//! should wake it. One copy for both controllers, so they wait on the same things.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::access::OPERATOR_CREDENTIALS_NOT_READY;
use crate::crd::CLUSTER_LABEL;

pub const CLUSTER_LABEL_MISSING: &str = "ClusterLabelMissing";
pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
pub const BROKERS_UNREACHABLE: &str = "BrokersUnreachable";

/// Ready=False reasons that a change of the cluster may clear: it appeared, its brokers
/// came up, or the operator's credentials for it were written.
const WAITING_ON_CLUSTER: [&str; 3] = [
    CLUSTER_NOT_FOUND,
    BROKERS_UNREACHABLE,
    OPERATOR_CREDENTIALS_NOT_READY,
];

/// The cluster the label names; an empty label names none.
pub fn cluster_label(object: &impl ResourceExt) -> Option<String> {
    object
        .labels()
        .get(CLUSTER_LABEL)
        .filter(|c| !c.is_empty())
        .cloned()
}

/// Whether a change of the KafkaCluster `namespace/cluster` should wake `object`, whose
/// status conditions are `conditions`: it belongs to that cluster and is not Ready for a
/// reason the cluster may clear (the shared ones, or the kind's own `also`).
pub fn waits_for_cluster(
    object: &impl ResourceExt,
    conditions: &[Condition],
    namespace: &str,
    cluster: &str,
    also: &[&str],
) -> bool {
    object.namespace().as_deref() == Some(namespace)
        && cluster_label(object).as_deref() == Some(cluster)
        && crate::conditions::ready(conditions).is_some_and(|c| {
            c.status == "False"
                && (WAITING_ON_CLUSTER.contains(&c.reason.as_str())
                    || also.contains(&c.reason.as_str()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::KafkaUser;
    use serde_json::json;

    fn user(labels: serde_json::Value) -> KafkaUser {
        serde_json::from_value(json!({
            "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaUser",
            "metadata": {"name": "alice", "namespace": "kafka", "labels": labels},
            "spec": {"authentication": {"type": "scram-sha-512"}},
        }))
        .expect("user")
    }

    fn ready(status: &str, reason: &str) -> Vec<Condition> {
        serde_json::from_value(json!([{
            "type": "Ready", "status": status, "reason": reason, "message": "",
            "lastTransitionTime": "2026-12-07T00:00:00Z",
        }]))
        .expect("conditions")
    }

    #[test]
    fn the_label_names_the_cluster_unless_empty() {
        assert_eq!(
            cluster_label(&user(json!({CLUSTER_LABEL: "my-cluster"}))).as_deref(),
            Some("my-cluster")
        );
        assert_eq!(cluster_label(&user(json!({CLUSTER_LABEL: ""}))), None);
        assert_eq!(cluster_label(&user(json!({}))), None);
    }

    #[test]
    fn a_cluster_change_wakes_only_what_waits_on_that_cluster() {
        let u = user(json!({CLUSTER_LABEL: "my-cluster"}));
        // Named here rather than taken from WAITING_ON_CLUSTER, so dropping one there fails.
        for reason in [
            CLUSTER_NOT_FOUND,
            BROKERS_UNREACHABLE,
            OPERATOR_CREDENTIALS_NOT_READY,
        ] {
            assert!(
                waits_for_cluster(&u, &ready("False", reason), "kafka", "my-cluster", &[]),
                "{reason}"
            );
        }
        let own = "CertificateAuthorityNotReady";
        assert!(!waits_for_cluster(
            &u,
            &ready("False", own),
            "kafka",
            "my-cluster",
            &[]
        ));
        assert!(waits_for_cluster(
            &u,
            &ready("False", own),
            "kafka",
            "my-cluster",
            &[own]
        ));
        // Ready, refused for its own reasons, another cluster or namespace, no status yet.
        assert!(!waits_for_cluster(
            &u,
            &ready("True", "Ready"),
            "kafka",
            "my-cluster",
            &[]
        ));
        assert!(!waits_for_cluster(
            &u,
            &ready("False", "InvalidAclRule"),
            "kafka",
            "my-cluster",
            &[]
        ));
        assert!(!waits_for_cluster(
            &u,
            &ready("False", CLUSTER_NOT_FOUND),
            "kafka",
            "other",
            &[]
        ));
        assert!(!waits_for_cluster(
            &u,
            &ready("False", CLUSTER_NOT_FOUND),
            "other",
            "my-cluster",
            &[]
        ));
        assert!(!waits_for_cluster(&u, &[], "kafka", "my-cluster", &[]));
    }
}
