//! Partition health of a KafkaCluster as its brokers report it: the `UnderReplicated`
//! condition, the `underReplicatedPartitions` and `offlinePartitions` counts, and the
//! Event of each transition. The decisions are pure functions of a metadata snapshot
//! (tested below); `probe` makes the one network call (Metadata to the brokers).

pub mod probe;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub use probe::{MetadataProbe, PartitionProbe, ProbeError};

use crate::access::Brokers;
use crate::crd::{KafkaCluster, KafkaClusterStatus};

/// An Event to record: `(warning, reason, note)`.
pub type TransitionEvent = (bool, &'static str, String);

/// Asks the brokers (when any is ready) and writes the condition and counts into
/// `status`; returns the Event the change deserves, if any.
pub async fn observe(
    cluster: &KafkaCluster,
    probe: &dyn PartitionProbe,
    brokers: &Brokers,
    status: &mut KafkaClusterStatus,
    now: Timestamp,
) -> Option<TransitionEvent> {
    let result = if status.ready_replicas == 0 {
        Err(ProbeError::NoBrokersReady)
    } else {
        probe
            .partitions(brokers.clone())
            .await
            .map(|ps| assess(&ps))
    };
    if let Err(e) = &result {
        tracing::debug!(cluster = %crate::cluster::names::cluster_name(cluster), error = %e, "partition health unknown");
    }
    let decision = decide(&result);
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let condition = condition(previous, &decision, cluster.metadata.generation, now);
    let event = transition_event(
        previous.iter().find(|c| c.type_ == UNDER_REPLICATED),
        &condition,
    );
    status.conditions.retain(|c| c.type_ != UNDER_REPLICATED);
    status.conditions.push(condition);
    status.under_replicated_partitions = decision.under_replicated;
    status.offline_partitions = decision.offline;
    event
}

/// Condition type on the KafkaCluster.
pub const UNDER_REPLICATED: &str = "UnderReplicated";
/// How many partitions the condition's message names.
pub const NAMED_PARTITIONS: usize = 5;

/// One partition as the metadata reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// `None` (Kafka's -1) while the partition has no leader.
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// What the cluster's partitions look like.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PartitionHealth {
    /// `topic-partition` of every partition whose ISR is smaller than its replica set,
    /// sorted.
    pub under_replicated: Vec<String>,
    /// `topic-partition` of every partition without a leader, sorted.
    pub offline: Vec<String>,
}

/// Kafka's definitions: under-replicated = fewer in-sync replicas than replicas;
/// offline = no leader (an offline partition is under-replicated too when its ISR
/// shrank, as in Kafka).
pub fn assess(partitions: &[PartitionState]) -> PartitionHealth {
    let name = |p: &PartitionState| format!("{}-{}", p.topic, p.partition);
    let mut sorted: Vec<&PartitionState> = partitions.iter().collect();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    PartitionHealth {
        under_replicated: sorted
            .iter()
            .filter(|p| p.isr.len() < p.replicas.len())
            .map(|p| name(p))
            .collect(),
        offline: sorted
            .iter()
            .filter(|p| p.leader.is_none())
            .map(|p| name(p))
            .collect(),
    }
}

/// The status fields this module owns.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: &'static str,
    pub reason: String,
    pub message: String,
    /// `None` when unknown: the status then carries no counts rather than stale ones.
    pub under_replicated: Option<i32>,
    pub offline: Option<i32>,
}

/// The condition for a probe result. Without an answer from the brokers the condition
/// says Unknown (never False: the operator does not know).
pub fn decide(result: &Result<PartitionHealth, ProbeError>) -> Decision {
    let count = |v: &Vec<String>| i32::try_from(v.len()).unwrap_or(i32::MAX);
    match result {
        Err(e) => Decision {
            status: "Unknown",
            reason: e.reason().into(),
            message: e.to_string(),
            under_replicated: None,
            offline: None,
        },
        Ok(h) if h.under_replicated.is_empty() && h.offline.is_empty() => Decision {
            status: "False",
            reason: "AllReplicasInSync".into(),
            message: "every partition has its full replica set in sync".into(),
            under_replicated: Some(0),
            offline: Some(0),
        },
        Ok(h) => {
            let mut parts = Vec::new();
            if !h.under_replicated.is_empty() {
                parts.push(format!(
                    "{} under-replicated partitions: {}",
                    h.under_replicated.len(),
                    named(&h.under_replicated)
                ));
            }
            if !h.offline.is_empty() {
                parts.push(format!(
                    "{} offline partitions: {}",
                    h.offline.len(),
                    named(&h.offline)
                ));
            }
            Decision {
                status: if h.under_replicated.is_empty() {
                    // Offline yet with a full ISR (e.g. every replica's broker is down
                    // with the ISR frozen): not under-replicated, but said in the message.
                    "False"
                } else {
                    "True"
                },
                reason: if h.offline.is_empty() {
                    "UnderReplicatedPartitions".into()
                } else {
                    "OfflinePartitions".into()
                },
                message: parts.join("; "),
                under_replicated: Some(count(&h.under_replicated)),
                offline: Some(count(&h.offline)),
            }
        }
    }
}

fn named(partitions: &[String]) -> String {
    let mut s = partitions
        .iter()
        .take(NAMED_PARTITIONS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if partitions.len() > NAMED_PARTITIONS {
        s.push_str(&format!(
            " and {} more",
            partitions.len() - NAMED_PARTITIONS
        ));
    }
    s
}

/// The condition, keeping the previous `lastTransitionTime` unless the status changed.
pub fn condition(
    previous: &[Condition],
    decision: &Decision,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let since = previous
        .iter()
        .find(|c| c.type_ == UNDER_REPLICATED && c.status == decision.status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: UNDER_REPLICATED.into(),
        status: decision.status.into(),
        reason: decision.reason.clone(),
        message: decision.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The Event a change of the condition deserves: `(warning, reason, note)`. Partitions
/// falling out of sync is a Warning, getting back in sync a Normal event; losing sight
/// of the brokers is a Warning only when it hides a known problem (True to Unknown),
/// and the first observation of a healthy or unknown cluster is no event at all.
pub fn transition_event(
    previous: Option<&Condition>,
    now: &Condition,
) -> Option<(bool, &'static str, String)> {
    let was = previous.map(|c| c.status.as_str());
    if was == Some(now.status.as_str()) {
        return None;
    }
    match (was, now.status.as_str()) {
        (_, "True") => Some((true, "UnderReplicatedPartitions", now.message.clone())),
        (Some("True"), "False") => Some((false, "PartitionsInSync", now.message.clone())),
        (Some("True"), _) => Some((
            true,
            "PartitionHealthUnknown",
            format!(
                "partitions were under-replicated; now unknown: {}",
                now.message
            ),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(
        topic: &str,
        partition: i32,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> PartitionState {
        PartitionState {
            topic: topic.into(),
            partition,
            leader: (leader >= 0).then_some(leader),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid time")
    }

    #[test]
    fn under_replicated_and_offline_by_kafka_definitions() {
        let h = assess(&[
            p("t", 1, 0, &[0, 1, 2], &[0, 2]),
            p("t", 0, 0, &[0, 1, 2], &[0, 1, 2]),
            p("a", 0, -1, &[1], &[1]),
            p("a", 1, -1, &[1, 2], &[1]),
            // A replica being added is not in the ISR yet: under-replicated, as in Kafka.
            p("b", 0, 2, &[2, 0, 1, 3], &[2, 0, 1]),
        ]);
        assert_eq!(h.under_replicated, vec!["a-1", "b-0", "t-1"]);
        assert_eq!(h.offline, vec!["a-0", "a-1"]);
        assert_eq!(assess(&[]), PartitionHealth::default());
    }

    #[test]
    fn the_condition_names_the_first_partitions_and_counts_all() {
        let h = PartitionHealth {
            under_replicated: (0..7).map(|i| format!("t-{i}")).collect(),
            offline: vec![],
        };
        let d = decide(&Ok(h));
        assert_eq!(d.status, "True");
        assert_eq!(d.reason, "UnderReplicatedPartitions");
        assert_eq!(
            d.message,
            "7 under-replicated partitions: t-0, t-1, t-2, t-3, t-4 and 2 more"
        );
        assert_eq!((d.under_replicated, d.offline), (Some(7), Some(0)));

        let healthy = decide(&Ok(PartitionHealth::default()));
        assert_eq!(healthy.status, "False");
        assert_eq!(
            (healthy.under_replicated, healthy.offline),
            (Some(0), Some(0))
        );

        let offline = decide(&Ok(PartitionHealth {
            under_replicated: vec!["t-0".into()],
            offline: vec!["t-0".into()],
        }));
        assert_eq!(offline.status, "True");
        assert_eq!(offline.reason, "OfflinePartitions");
        assert_eq!(
            offline.message,
            "1 under-replicated partitions: t-0; 1 offline partitions: t-0"
        );
        let frozen = decide(&Ok(PartitionHealth {
            under_replicated: vec![],
            offline: vec!["t-0".into()],
        }));
        assert_eq!(frozen.status, "False");
        assert_eq!(frozen.offline, Some(1));
    }

    #[test]
    fn without_an_answer_the_condition_is_unknown_and_has_no_counts() {
        let d = decide(&Err(ProbeError::NoBrokersReady));
        assert_eq!(d.status, "Unknown");
        assert_eq!(d.reason, "NoBrokersReady");
        assert_eq!((d.under_replicated, d.offline), (None, None));
    }

    #[test]
    fn transition_time_moves_only_on_a_status_change() {
        let urp = |n: usize| {
            decide(&Ok(PartitionHealth {
                under_replicated: (0..n).map(|i| format!("t-{i}")).collect(),
                offline: vec![],
            }))
        };
        let first = condition(&[], &urp(1), Some(1), at(10));
        let same = condition(std::slice::from_ref(&first), &urp(2), Some(1), at(20));
        assert_eq!(same.last_transition_time, Time(at(10)));
        assert_eq!(same.message, "2 under-replicated partitions: t-0, t-1");
        let cleared = condition(&[same], &urp(0), Some(1), at(30));
        assert_eq!(cleared.status, "False");
        assert_eq!(cleared.last_transition_time, Time(at(30)));
    }

    #[test]
    fn events_on_transitions_only() {
        let cond = |status: &str| Condition {
            type_: UNDER_REPLICATED.into(),
            status: status.into(),
            reason: "r".into(),
            message: "m".into(),
            observed_generation: None,
            last_transition_time: Time(at(1)),
        };
        let (t, f, u) = (cond("True"), cond("False"), cond("Unknown"));
        assert_eq!(transition_event(None, &f), None);
        assert_eq!(transition_event(None, &u), None);
        assert_eq!(transition_event(Some(&u), &f), None);
        assert_eq!(transition_event(Some(&f), &u), None);
        assert_eq!(transition_event(Some(&t), &t), None);
        assert_eq!(
            transition_event(None, &t),
            Some((true, "UnderReplicatedPartitions", "m".into()))
        );
        assert_eq!(
            transition_event(Some(&f), &t),
            Some((true, "UnderReplicatedPartitions", "m".into()))
        );
        assert_eq!(
            transition_event(Some(&t), &f),
            Some((false, "PartitionsInSync", "m".into()))
        );
        assert_eq!(
            transition_event(Some(&t), &u).map(|e| e.1),
            Some("PartitionHealthUnknown")
        );
    }
}
