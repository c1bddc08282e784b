//! Which broker pods need a restart, and why; and which configuration changes can be
//! applied at run time instead. Pure functions over what a pod carries.
//!
//! A pod needs a restart when:
//! - its broker's own configuration changed: the pod template carries a JSON map of
//!   per-broker hashes (`BROKER_HASHES_ANNOTATION`); each pod keeps the map of the
//!   template it was created from, so broker i is outdated iff its entry differs from the
//!   desired one. After a dynamic-only change was applied with IncrementalAlterConfigs the
//!   roller records the new hash on the pod (`APPLIED_HASH_ANNOTATION`), which then wins.
//!   A pod from before the per-broker map (only the cluster-wide `CONFIG_HASH_ANNOTATION`)
//!   is compared on that cluster-wide hash, which the operator still renders unchanged:
//!   upgrading the operator therefore restarts nothing, and a later change of the shared
//!   configuration rolls such pods once, after which they carry the map;
//! - its broker image differs from the desired one, but only when the spec pins the image
//!   (`image` or `version`): with neither, the image follows the operator's default, and an
//!   operator upgrade alone must never roll brokers (they pick the new default up with
//!   their next restart);
//! - it carries `MANUAL_ROLL_ANNOTATION=true` (the roller copies the KafkaCluster's
//!   annotation onto every pod, so the request survives operator restarts and is removed
//!   pod by pod, with the pod).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::cluster::config::decode_broker_hashes;
use crate::cluster::names;

/// Name of the broker container in the pod template.
pub const BROKER_CONTAINER: &str = "broker";

/// What the roller needs to know of one broker pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub ordinal: i32,
    pub name: String,
    pub uid: Option<String>,
    /// The Ready condition is True.
    pub ready: bool,
    /// Being deleted (a restart under way).
    pub terminating: bool,
    pub stuck: Option<Stuck>,
    /// The per-broker hash map of the template the pod was created from.
    pub broker_hashes: Option<BTreeMap<i32, String>>,
    /// The cluster-wide hash of the template the pod was created from.
    pub cluster_hash: Option<String>,
    /// Set by the roller after an in-place (dynamic) update.
    pub applied_hash: Option<String>,
    pub image: Option<String>,
    pub manual: bool,
}

/// A pod that is not serving and will not get better by waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stuck {
    /// A container (or init container) waits in CrashLoopBackOff, or cannot pull its image.
    Crashing(String),
    /// Pending: not scheduled, or its containers never started.
    Pending(String),
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stuck::Crashing(why) | Stuck::Pending(why) => f.write_str(why),
        }
    }
}

/// What every broker pod should carry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub broker_hashes: BTreeMap<i32, String>,
    pub cluster_hash: String,
    pub image: String,
    /// The spec names the image or version; see the module comment.
    pub image_pinned: bool,
}

/// Why a broker is restarted; the Event and the metric name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Its own configuration changed: the hash it runs, if known, and the desired one.
    ConfigChanged {
        running: Option<String>,
        desired: String,
    },
    ImageChanged {
        running: String,
        desired: String,
    },
    Manual,
}

impl Reason {
    /// Short label for metrics (bounded cardinality).
    pub fn label(&self) -> &'static str {
        match self {
            Reason::ConfigChanged { .. } => "config",
            Reason::ImageChanged { .. } => "image",
            Reason::Manual => "manual",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ConfigChanged { running, desired } => write!(
                f,
                "configuration changed ({} -> {desired})",
                running.as_deref().unwrap_or("unknown")
            ),
            Reason::ImageChanged { running, desired } => {
                write!(f, "image changed ({running} -> {desired})")
            }
            Reason::Manual => write!(f, "{}=true", names::MANUAL_ROLL_ANNOTATION),
        }
    }
}

/// The configuration hash the broker in `pod` runs: the roller's record of an in-place
/// update, else the template's entry for this broker; `None` when the pod predates the
/// per-broker map.
pub fn running_hash(pod: &PodView) -> Option<String> {
    pod.applied_hash.clone().or_else(|| {
        pod.broker_hashes
            .as_ref()
            .and_then(|m| m.get(&pod.ordinal).cloned())
    })
}

/// Every reason to restart this pod's broker; empty when it is current.
pub fn restart_reasons(pod: &PodView, desired: &Desired) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if let Some(reason) = config_reason(pod, desired) {
        reasons.push(reason);
    }
    if desired.image_pinned {
        if let Some(running) = pod.image.as_ref().filter(|i| **i != desired.image) {
            reasons.push(Reason::ImageChanged {
                running: running.clone(),
                desired: desired.image.clone(),
            });
        }
    }
    if pod.manual {
        reasons.push(Reason::Manual);
    }
    reasons
}

fn config_reason(pod: &PodView, desired: &Desired) -> Option<Reason> {
    let wanted = desired.broker_hashes.get(&pod.ordinal)?;
    match running_hash(pod) {
        Some(running) if running == *wanted => None,
        Some(running) => Some(Reason::ConfigChanged {
            running: Some(running),
            desired: wanted.clone(),
        }),
        // A pod from before the per-broker map: only a change of what the old cluster-wide
        // hash covered restarts it, so an operator upgrade alone does not.
        None if pod.cluster_hash.as_deref() == Some(desired.cluster_hash.as_str()) => None,
        None => Some(Reason::ConfigChanged {
            running: None,
            desired: wanted.clone(),
        }),
    }
}

/// The only reason is a configuration change from a known version: then a diff of the two
/// files may show that no restart is needed.
pub fn config_only_change(reasons: &[Reason]) -> Option<(&str, &str)> {
    match reasons {
        [Reason::ConfigChanged {
            running: Some(running),
            desired,
        }] => Some((running.as_str(), desired.as_str())),
        _ => None,
    }
}

/// Broker keys strom-broker honours at run time when set per broker with
/// IncrementalAlterConfigs (broker/README.md, "Dynamic broker configs"; the check in
/// test `every_dynamic_key_is_one_the_broker_accepts` keeps this list within what the broker accepts). Keys the
/// broker accepts but ignores until some future mechanism exists are left out on purpose:
/// changing them restarts the broker, which is what a user changing them expects.
pub const DYNAMIC_KEYS: &[&str] = &[
    "log.cleanup.policy",
    "compression.gzip.level",
    "compression.type",
    "compression.zstd.level",
    "log.cleaner.delete.retention.ms",
    "log.segment.delete.delay.ms",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.cleaner.max.compaction.lag.ms",
    "message.max.bytes",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "min.insync.replicas",
    "log.preallocate",
    "log.retention.bytes",
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.segment.bytes",
    "log.index.size.max.bytes",
    "log.roll.jitter.ms",
    "log.roll.jitter.hours",
    "log.roll.ms",
    "log.roll.hours",
    "unclean.leader.election.enable",
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "log.cleaner.backoff.ms",
];

/// One IncrementalAlterConfigs operation: set the key, or delete it (`None`) so the
/// broker falls back to its file and defaults.
pub type ConfigChange = (String, Option<String>);

/// The changes from `running` to `desired` properties when every changed key can change
/// at run time; `None` when some key needs a restart. Removed keys become deletes, so a
/// value set at run time does not outlive its removal from the spec.
pub fn dynamic_changes(
    running: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Option<Vec<ConfigChange>> {
    let mut changes = Vec::new();
    for (key, value) in desired {
        if running.get(key) != Some(value) {
            changes.push((key.clone(), Some(value.clone())));
        }
    }
    for key in running.keys().filter(|k| !desired.contains_key(*k)) {
        changes.push((key.clone(), None));
    }
    changes
        .iter()
        .all(|(key, _)| DYNAMIC_KEYS.contains(&key.as_str()))
        .then_some(changes)
}

/// Reads what the roller needs from a broker pod of `cluster`; `None` for a pod whose
/// name is not `<cluster>-broker-<ordinal>`.
pub fn pod_view(cluster: &str, pod: &Pod) -> Option<PodView> {
    let name = pod.name_any();
    let ordinal = name
        .strip_prefix(&format!("{}-", names::broker_set(cluster)))?
        .parse()
        .ok()?;
    let annotations = pod.annotations();
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let image = pod.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .find(|c| c.name == BROKER_CONTAINER)
            .and_then(|c| c.image.clone())
    });
    Some(PodView {
        ordinal,
        name,
        uid: pod.uid(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        stuck: stuck(pod),
        broker_hashes: annotations
            .get(names::BROKER_HASHES_ANNOTATION)
            .and_then(|t| decode_broker_hashes(t)),
        cluster_hash: annotations.get(names::CONFIG_HASH_ANNOTATION).cloned(),
        applied_hash: annotations.get(names::APPLIED_HASH_ANNOTATION).cloned(),
        image,
        manual: annotations
            .get(names::MANUAL_ROLL_ANNOTATION)
            .is_some_and(|v| v == "true"),
    })
}

/// Waiting reasons that mean the container will not start without a change.
const STUCK_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

fn stuck(pod: &Pod) -> Option<Stuck> {
    let status = pod.status.as_ref()?;
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in statuses {
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(reason) = waiting.and_then(|w| w.reason.as_deref()) {
            if STUCK_WAITING.contains(&reason) {
                return Some(Stuck::Crashing(format!(
                    "container {} is in {reason}",
                    container.name
                )));
            }
        }
    }
    if status.phase.as_deref() == Some("Pending") {
        let unscheduled = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        if let Some(condition) = unscheduled {
            return Some(Stuck::Pending(format!(
                "not scheduled: {}",
                condition.message.as_deref().unwrap_or("no reason given")
            )));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hashes(pairs: &[(i32, &str)]) -> BTreeMap<i32, String> {
        pairs.iter().map(|(i, h)| (*i, h.to_string())).collect()
    }

    fn desired() -> Desired {
        Desired {
            broker_hashes: hashes(&[(0, "a0"), (1, "a1"), (2, "a2")]),
            cluster_hash: "c".into(),
            image: "strom:2".into(),
            image_pinned: true,
        }
    }

    fn current(ordinal: i32) -> PodView {
        PodView {
            ordinal,
            ready: true,
            broker_hashes: Some(desired().broker_hashes),
            cluster_hash: Some("c".into()),
            image: Some("strom:2".into()),
            ..PodView::default()
        }
    }

    #[test]
    fn a_current_pod_needs_nothing() {
        assert!(restart_reasons(&current(1), &desired()).is_empty());
    }

    #[test]
    fn only_the_broker_whose_own_hash_changed_restarts() {
        let mut want = desired();
        want.broker_hashes.insert(1, "b1".into());
        assert!(restart_reasons(&current(0), &want).is_empty());
        assert_eq!(
            restart_reasons(&current(1), &want),
            vec![Reason::ConfigChanged {
                running: Some("a1".into()),
                desired: "b1".into()
            }]
        );
        assert!(restart_reasons(&current(2), &want).is_empty());
    }

    #[test]
    fn an_applied_in_place_update_counts_as_current() {
        let mut want = desired();
        want.broker_hashes.insert(1, "b1".into());
        let mut pod = current(1);
        pod.applied_hash = Some("b1".into());
        assert!(restart_reasons(&pod, &want).is_empty());
    }

    #[test]
    fn legacy_pods_compare_the_cluster_wide_hash() {
        let mut pod = current(0);
        pod.broker_hashes = None;
        assert!(
            restart_reasons(&pod, &desired()).is_empty(),
            "operator upgrade alone"
        );
        pod.cluster_hash = Some("old".into());
        assert_eq!(
            restart_reasons(&pod, &desired()),
            vec![Reason::ConfigChanged {
                running: None,
                desired: "a0".into()
            }]
        );
    }

    #[test]
    fn image_changes_count_only_when_pinned() {
        let mut pod = current(0);
        pod.image = Some("strom:1".into());
        assert_eq!(
            restart_reasons(&pod, &desired()),
            vec![Reason::ImageChanged {
                running: "strom:1".into(),
                desired: "strom:2".into()
            }]
        );
        let mut unpinned = desired();
        unpinned.image_pinned = false;
        assert!(restart_reasons(&pod, &unpinned).is_empty());
    }

    #[test]
    fn manual_annotation_restarts_that_pod() {
        let mut pod = current(2);
        pod.manual = true;
        assert_eq!(restart_reasons(&pod, &desired()), vec![Reason::Manual]);
        assert_eq!(config_only_change(&restart_reasons(&pod, &desired())), None);
    }

    #[test]
    fn a_broker_beyond_the_desired_count_is_left_alone() {
        // Scale-down removes it; restarting it first would only cost a catch-up.
        let mut pod = current(5);
        pod.broker_hashes = Some(hashes(&[(5, "x")]));
        assert!(restart_reasons(&pod, &desired()).is_empty());
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_dynamic_key_is_one_the_broker_accepts() {
        for key in DYNAMIC_KEYS {
            assert!(
                strom_broker::config::dynamic::dynamic_kind(key).is_some(),
                "{key} is not a dynamic broker key in strom-broker"
            );
        }
        for key in ["listeners", "node.id", "log.dirs", "process.roles"] {
            assert!(!DYNAMIC_KEYS.contains(&key));
        }
    }

    #[test]
    fn dynamic_only_changes_are_listed_with_deletes() {
        let running = props(&[
            ("node.id", "0"),
            ("log.retention.ms", "1000"),
            ("min.insync.replicas", "2"),
        ]);
        let desired = props(&[
            ("node.id", "0"),
            ("log.retention.ms", "2000"),
            ("log.segment.bytes", "1048576"),
        ]);
        assert_eq!(
            dynamic_changes(&running, &desired),
            Some(vec![
                ("log.retention.ms".into(), Some("2000".into())),
                ("log.segment.bytes".into(), Some("1048576".into())),
                ("min.insync.replicas".into(), None),
            ])
        );
    }

    #[test]
    fn any_static_change_needs_a_restart() {
        let running = props(&[("log.retention.ms", "1000"), ("num.io.threads", "8")]);
        let desired = props(&[("log.retention.ms", "2000"), ("num.io.threads", "4")]);
        assert_eq!(dynamic_changes(&running, &desired), None);
        let desired = props(&[("log.retention.ms", "1000"), ("listeners", "X://:1")]);
        assert_eq!(
            dynamic_changes(&running, &desired),
            None,
            "added static key"
        );
    }

    #[test]
    fn config_only_change_needs_a_known_running_version() {
        let known = [Reason::ConfigChanged {
            running: Some("a".into()),
            desired: "b".into(),
        }];
        assert_eq!(config_only_change(&known), Some(("a", "b")));
        let unknown = [Reason::ConfigChanged {
            running: None,
            desired: "b".into(),
        }];
        assert_eq!(config_only_change(&unknown), None);
        let with_image = [
            known[0].clone(),
            Reason::ImageChanged {
                running: "x".into(),
                desired: "y".into(),
            },
        ];
        assert_eq!(config_only_change(&with_image), None);
    }

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("pod")
    }

    #[test]
    fn pod_view_reads_annotations_readiness_and_image() {
        let p = pod(json!({
            "metadata": {"name": "my-cluster-broker-2", "uid": "u2", "annotations": {
                "kafka.strom.dev/broker-config-hashes": "{\"2\":\"h2\"}",
                "kafka.strom.dev/config-hash": "c",
                "kafka.strom.dev/manual-rolling-update": "true"}},
            "spec": {"containers": [{"name": "broker", "image": "strom:2"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }));
        let view = pod_view("my-cluster", &p).expect("a broker pod");
        assert_eq!(view.ordinal, 2);
        assert!(view.ready && view.manual && !view.terminating);
        assert_eq!(view.broker_hashes, Some(hashes(&[(2, "h2")])));
        assert_eq!(view.image.as_deref(), Some("strom:2"));
        assert_eq!(view.stuck, None);
        assert_eq!(
            pod_view("other", &p),
            None,
            "another cluster's naming does not parse"
        );
    }

    #[test]
    fn stuck_pods_are_recognised() {
        let crashing = pod(json!({
            "metadata": {"name": "my-cluster-broker-0"},
            "status": {"phase": "Running", "containerStatuses": [{"name": "broker", "image": "i",
                "imageID": "", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        }));
        assert!(matches!(
            pod_view("my-cluster", &crashing).and_then(|v| v.stuck),
            Some(Stuck::Crashing(_))
        ));
        let pending = pod(json!({
            "metadata": {"name": "my-cluster-broker-0"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
                "status": "False", "message": "0/3 nodes are available"}]}
        }));
        assert_eq!(
            pod_view("my-cluster", &pending).and_then(|v| v.stuck),
            Some(Stuck::Pending(
                "not scheduled: 0/3 nodes are available".into()
            ))
        );
    }
}
