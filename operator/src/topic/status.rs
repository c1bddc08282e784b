//! A KafkaTopic's status from the outcome of a reconcile, and the decisions around it
//! that need no API: the topic's name, whether the operator manages it, which of two
//! resources naming one topic owns it, and Kafka's refusals as condition reasons.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use strom_client::admin::{AdminError, Refused};

use crate::conditions::{decide, merge};
use crate::crd::{KafkaTopic, KafkaTopicStatus};
use crate::membership;

/// `"false"` leaves the topic alone: no broker call, no finalizer.
pub const MANAGED_ANNOTATION: &str = "kafka.strom.dev/managed";
/// Deletes the topic from the brokers when the resource goes.
pub const FINALIZER: &str = "kafka.strom.dev/topic";

pub use crate::membership::{
    cluster_label, BROKERS_UNREACHABLE, CLUSTER_LABEL_MISSING, CLUSTER_NOT_FOUND,
};
pub const RESOURCE_CONFLICT: &str = "ResourceConflict";
pub const UNMANAGED: &str = "Unmanaged";
pub const INTERNAL_TOPIC: &str = "InternalTopic";

/// Topics the brokers own. Reverting their "drift" or deleting them with a resource would
/// break the cluster, so a KafkaTopic naming one is refused.
const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
    "__cluster_metadata",
];

pub fn is_internal(topic_name: &str) -> bool {
    INTERNAL_TOPICS.contains(&topic_name)
}

/// The topic's name in Kafka: `spec.topicName`, else the resource's name.
pub fn topic_name(topic: &KafkaTopic) -> String {
    topic
        .spec
        .topic_name
        .clone()
        .unwrap_or_else(|| topic.name_any())
}

pub fn is_managed(topic: &KafkaTopic) -> bool {
    topic
        .annotations()
        .get(MANAGED_ANNOTATION)
        .map(String::as_str)
        != Some("false")
}

pub fn has_finalizer(topic: &KafkaTopic) -> bool {
    topic.finalizers().iter().any(|f| f == FINALIZER)
}

/// Whether a change of the KafkaCluster `namespace/cluster` should wake `topic`: it
/// belongs to that cluster and waits for it.
pub fn waits_for_cluster(topic: &KafkaTopic, namespace: &str, cluster: &str) -> bool {
    let conditions = topic.status.as_ref().map_or(&[][..], |s| &s.conditions);
    membership::waits_for_cluster(topic, conditions, namespace, cluster, &[])
}

/// Oldest first: creation time, then name (the tie-break when two were created in the
/// same second).
fn age_key(topic: &KafkaTopic) -> (Option<Timestamp>, String) {
    (
        topic.metadata.creation_timestamp.as_ref().map(|t| t.0),
        topic.name_any(),
    )
}

/// Among the live KafkaTopics of one cluster (`all`, `me` included or not), the name of
/// the one that owns `me`'s topic when it is not `me`. Resources being deleted no longer
/// contend.
pub fn conflict_winner(me: &KafkaTopic, all: &[KafkaTopic]) -> Option<String> {
    let mine = topic_name(me);
    let cluster = cluster_label(me);
    all.iter()
        .filter(|t| t.name_any() != me.name_any())
        .filter(|t| t.metadata.deletion_timestamp.is_none())
        .filter(|t| cluster_label(*t) == cluster && topic_name(t) == mine)
        .filter(|t| age_key(t) < age_key(me))
        .min_by_key(|t| age_key(t))
        .map(|t| t.name_any())
}

/// Whether deleting `me` may delete its topic: not when another live resource names the
/// same topic (it owns or takes over the topic, and its data).
pub fn others_claim(me: &KafkaTopic, all: &[KafkaTopic]) -> bool {
    let mine = topic_name(me);
    let cluster = cluster_label(me);
    all.iter().any(|t| {
        t.name_any() != me.name_any()
            && t.metadata.deletion_timestamp.is_none()
            && cluster_label(t) == cluster
            && topic_name(t) == mine
    })
}

/// A Kafka refusal as a condition reason: Kafka's error name in CamelCase without the
/// `Exception` suffix (`INVALID_TOPIC_EXCEPTION` → `InvalidTopic`).
pub fn refusal_reason(refused: &Refused) -> String {
    let Some(error) = refused.error() else {
        return "KafkaError".into();
    };
    let name = error.to_string();
    if name.is_empty() || name.starts_with("Unknown error code") {
        return "KafkaError".into();
    }
    // kafka-protocol prints its variant names (`InvalidTopicException`); Kafka's own
    // spelling (`INVALID_TOPIC_EXCEPTION`) is turned into the same.
    let camel: String = if name.contains('_') {
        name.split('_')
            .filter(|w| !w.is_empty())
            .map(|w| {
                let lower = w.to_ascii_lowercase();
                let mut chars = lower.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            })
            .collect()
    } else {
        name
    };
    let camel = camel
        .strip_suffix("Exception")
        .unwrap_or(&camel)
        .to_string();
    if camel.is_empty() {
        "KafkaError".into()
    } else {
        camel
    }
}

/// The reason and message for a failed broker call.
pub fn admin_problem(error: &AdminError) -> (String, String) {
    match error {
        AdminError::Refused(r) => (refusal_reason(r), format!("Kafka refused: {r}")),
        other => (BROKERS_UNREACHABLE.to_string(), other.to_string()),
    }
}

/// What the brokers have, for the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub topic_id: Option<String>,
    pub partitions: Option<i32>,
    pub replicas: Option<i32>,
}

/// The status a reconcile leaves: Ready (and NotReady, Warning) from `problem` (reason and
/// message, `None` when the topic matches its spec), the topic's name and `facts`, what
/// the brokers have as far as the caller knows.
pub fn status(
    topic: &KafkaTopic,
    problem: Option<(String, String)>,
    facts: Facts,
    now: Timestamp,
) -> KafkaTopicStatus {
    let name = topic_name(topic);
    let ready_message = format!(
        "topic {name} matches its spec ({} partitions, replication factor {})",
        topic.spec.partitions, topic.spec.replicas
    );
    let previous = topic
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let decided = decide(
        problem.as_ref().map(|(r, m)| (r.as_str(), m.clone())),
        &ready_message,
        &[],
    );
    KafkaTopicStatus {
        conditions: merge(&previous, decided, topic.metadata.generation, now),
        observed_generation: topic.metadata.generation,
        topic_name: Some(name),
        topic_id: facts.topic_id,
        partitions: facts.partitions,
        replicas: facts.replicas,
    }
}

/// The facts a status already holds, for outcomes that did not ask the brokers.
pub fn previous_facts(topic: &KafkaTopic) -> Facts {
    topic
        .status
        .as_ref()
        .map(|s| Facts {
            topic_id: s.topic_id.clone(),
            partitions: s.partitions,
            replicas: s.replicas,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::{NOT_READY, READY, WARNING};
    use crate::crd::CLUSTER_LABEL;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kafka_protocol::ResponseError;
    use serde_json::json;

    /// Ready's status and reason.
    fn ready(status: &KafkaTopicStatus) -> Option<(String, String)> {
        crate::conditions::ready(&status.conditions).map(|c| (c.status.clone(), c.reason.clone()))
    }

    fn transition_time(status: &KafkaTopicStatus) -> Option<Time> {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .map(|c| c.last_transition_time.clone())
    }

    fn topic(name: &str, created: i64, topic_name: Option<&str>) -> KafkaTopic {
        let mut spec = json!({"partitions": 3, "replicas": 1});
        if let Some(t) = topic_name {
            spec["topicName"] = json!(t);
        }
        serde_json::from_value(json!({
            "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaTopic",
            "metadata": {
                "name": name, "namespace": "kafka", "generation": 2,
                "labels": {CLUSTER_LABEL: "my-cluster"},
                "creationTimestamp": Timestamp::from_second(created).expect("time").to_string(),
            },
            "spec": spec,
        }))
        .expect("a KafkaTopic")
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("time")
    }

    #[test]
    fn topic_name_defaults_to_the_resource_name() {
        assert_eq!(topic_name(&topic("orders", 1, None)), "orders");
        assert_eq!(
            topic_name(&topic("orders", 1, Some("Orders_v2"))),
            "Orders_v2"
        );
    }

    #[test]
    fn cluster_changes_wake_only_the_topics_waiting_for_that_cluster() {
        let mut t = topic("orders", 1, None);
        assert!(
            !waits_for_cluster(&t, "kafka", "my-cluster"),
            "no status yet"
        );
        let problem = |r: &str| Some((r.to_string(), "m".to_string()));
        t.status = Some(status(
            &t,
            problem(CLUSTER_NOT_FOUND),
            Facts::default(),
            at(1),
        ));
        assert!(waits_for_cluster(&t, "kafka", "my-cluster"));
        assert!(!waits_for_cluster(&t, "kafka", "other"));
        assert!(!waits_for_cluster(&t, "elsewhere", "my-cluster"));
        t.status = Some(status(
            &t,
            problem(BROKERS_UNREACHABLE),
            Facts::default(),
            at(2),
        ));
        assert!(waits_for_cluster(&t, "kafka", "my-cluster"));
        t.status = Some(status(
            &t,
            problem(RESOURCE_CONFLICT),
            Facts::default(),
            at(3),
        ));
        assert!(!waits_for_cluster(&t, "kafka", "my-cluster"));
        t.status = Some(status(&t, None, Facts::default(), at(4)));
        assert!(!waits_for_cluster(&t, "kafka", "my-cluster"));
    }

    #[test]
    fn internal_topics_are_recognised() {
        assert!(is_internal("__consumer_offsets"));
        assert!(is_internal("__transaction_state"));
        assert!(!is_internal("orders"));
        assert!(!is_internal("__orders"));
    }

    #[test]
    fn managed_unless_the_annotation_says_false() {
        let mut t = topic("orders", 1, None);
        assert!(is_managed(&t));
        t.annotations_mut()
            .insert(MANAGED_ANNOTATION.into(), "true".into());
        assert!(is_managed(&t));
        t.annotations_mut()
            .insert(MANAGED_ANNOTATION.into(), "false".into());
        assert!(!is_managed(&t));
    }

    #[test]
    fn the_oldest_resource_owns_a_topic_then_the_first_name() {
        let old = topic("a-old", 100, Some("orders"));
        let young = topic("orders", 200, None);
        let same_age = topic("b-same", 100, Some("orders"));
        let other = topic("c-other", 50, Some("payments"));
        let all = vec![old.clone(), young.clone(), same_age.clone(), other];
        assert_eq!(conflict_winner(&young, &all).as_deref(), Some("a-old"));
        assert_eq!(conflict_winner(&same_age, &all).as_deref(), Some("a-old"));
        assert_eq!(conflict_winner(&old, &all), None);

        // Another cluster's topic of the same name is no conflict.
        let mut elsewhere = topic("z", 1, Some("orders"));
        elsewhere
            .labels_mut()
            .insert(CLUSTER_LABEL.into(), "other".into());
        assert_eq!(
            conflict_winner(&old, &[elsewhere.clone(), old.clone()]),
            None
        );

        // A winner being deleted hands over.
        let mut going = old.clone();
        going.metadata.deletion_timestamp = Some(Time(at(300)));
        assert_eq!(
            conflict_winner(&young, &[going.clone(), young.clone(), same_age.clone()]).as_deref(),
            Some("b-same")
        );
        assert!(others_claim(&going, &[going.clone(), young.clone()]));
        assert!(!others_claim(&going, &[going.clone(), elsewhere]));
    }

    #[test]
    fn kafka_errors_become_camel_case_reasons() {
        let r = |e: ResponseError| Refused {
            api: "CreateTopics",
            resource: "topic x".into(),
            code: e.code(),
            message: None,
        };
        assert_eq!(
            refusal_reason(&r(ResponseError::InvalidTopicException)),
            "InvalidTopic"
        );
        assert_eq!(
            refusal_reason(&r(ResponseError::InvalidConfig)),
            "InvalidConfig"
        );
        assert_eq!(
            refusal_reason(&r(ResponseError::InvalidReplicationFactor)),
            "InvalidReplicationFactor"
        );
        let unknown = Refused {
            api: "CreateTopics",
            resource: "topic x".into(),
            code: 31_000,
            message: None,
        };
        assert_eq!(refusal_reason(&unknown), "KafkaError");
        let (reason, message) = admin_problem(&AdminError::Refused(Refused {
            message: Some("Unknown topic config name: retention.mss".into()),
            ..r(ResponseError::InvalidConfig)
        }));
        assert_eq!(reason, "InvalidConfig");
        assert!(
            message.contains("Unknown topic config name: retention.mss"),
            "{message}"
        );
        let (reason, _) = admin_problem(&AdminError::Unreachable {
            addresses: vec![],
            last: "no addresses".into(),
        });
        assert_eq!(reason, BROKERS_UNREACHABLE);
    }

    #[test]
    fn status_carries_conditions_generation_and_facts() {
        let t = topic("orders", 1, None);
        let facts = Facts {
            topic_id: Some("abc".into()),
            partitions: Some(3),
            replicas: Some(1),
        };
        let s = status(&t, None, facts.clone(), at(100));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.topic_name.as_deref(), Some("orders"));
        assert_eq!(s.topic_id.as_deref(), Some("abc"));
        assert_eq!((s.partitions, s.replicas), (Some(3), Some(1)));
        let kinds: Vec<(&str, &str)> = s
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![(READY, "True"), (NOT_READY, "False"), (WARNING, "False")]
        );
        assert_eq!(ready(&s), Some(("True".into(), "Ready".into())));

        // A refusal flips Ready and moves its time; the same refusal later keeps it.
        let mut t2 = t.clone();
        t2.status = Some(s);
        let problem = Some((RESOURCE_CONFLICT.to_string(), "owned by a".to_string()));
        let refused = status(&t2, problem.clone(), previous_facts(&t2), at(200));
        assert_eq!(
            ready(&refused),
            Some(("False".into(), RESOURCE_CONFLICT.into()))
        );
        assert_eq!(transition_time(&refused), Some(Time(at(200))));
        assert_eq!(refused.topic_id.as_deref(), Some("abc"));
        let mut t3 = t.clone();
        t3.status = Some(refused.clone());
        let again = status(&t3, problem, previous_facts(&t3), at(300));
        assert_eq!(again, refused);
    }
}
