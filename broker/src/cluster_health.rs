//! Cluster health as one broker sees it, decided from the metadata image alone: whether
//! the broker counts as ready (serving, unfenced, back in the ISR of what it follows) and
//! whether stopping it now would leave a partition leaderless or below
//! `min.insync.replicas`. Plain functions, so every rule is unit-tested without a cluster.

use std::collections::BTreeMap;
use std::fmt;

use crate::metadata::{MetadataImage, PartitionImage, TopicImage};
use crate::quorum::membership::MemberState;

const MIN_ISR_KEY: &str = "min.insync.replicas";

/// How many partitions an answer names before summarising the rest by count: a probe's
/// body is read by people, and a broker may follow thousands of partitions.
pub const NAMES_LISTED: usize = 5;

/// Why a broker is not ready, in the order the conditions are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// Starting up or shutting down.
    NotServing,
    /// The controller has not accepted its registration yet.
    Unregistered,
    /// Registered but fenced: no heartbeat has unfenced it yet, or it lost its session.
    Fenced,
    /// Partitions it follows (from a live leader) whose ISR it has not rejoined.
    OutOfSync { partitions: Vec<String> },
    /// It leads offsets partitions whose consumer groups are still loading.
    LoadingGroups,
    /// Log directories are offline after a storage error (a full disk): their
    /// partitions cannot be served until writes work there again.
    LogDirsOffline { dirs: Vec<String> },
    /// The metadata places partitions here that it does not serve yet: their logs are
    /// still being created or opened (a large CreateTopics), or failed to open.
    PartitionsNotServed { count: usize, first: Vec<String> },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::NotServing => write!(f, "not ready: not serving (starting or shutting down)"),
            NotReady::Unregistered => {
                write!(f, "not ready: not registered with the controller yet")
            }
            NotReady::Fenced => write!(f, "not ready: fenced by the controller"),
            NotReady::OutOfSync { partitions } => write!(
                f,
                "not ready: following {} partition(s) not yet in their ISR: {}",
                partitions.len(),
                capped_list(partitions)
            ),
            NotReady::LoadingGroups => write!(f, "not ready: still loading consumer groups"),
            NotReady::LogDirsOffline { dirs } => write!(
                f,
                "not ready: {} log director{} offline: {}",
                dirs.len(),
                if dirs.len() == 1 { "y" } else { "ies" },
                capped_list(dirs)
            ),
            NotReady::PartitionsNotServed { count, first } => {
                let more = count.saturating_sub(first.len());
                write!(
                    f,
                    "not ready: {count} partition(s) placed here are not served yet: {}",
                    first.join(", ")
                )?;
                if more > 0 {
                    write!(f, ", …")?;
                }
                Ok(())
            }
        }
    }
}

/// Kafka's notion of a broker that is up *and* useful: serving, registered, unfenced, and
/// caught up on the partitions it follows, so a rolling restart does not move on while
/// the previous broker is still the missing member of some ISR.
pub fn readiness(
    serving: bool,
    member: MemberState,
    image: &MetadataImage,
    me: i32,
) -> Result<(), NotReady> {
    if !serving {
        return Err(NotReady::NotServing);
    }
    if !member.registered {
        return Err(NotReady::Unregistered);
    }
    if member.fenced {
        return Err(NotReady::Fenced);
    }
    let partitions = followed_out_of_isr(image, me);
    if partitions.is_empty() {
        Ok(())
    } else {
        Err(NotReady::OutOfSync { partitions })
    }
}

/// Partitions this broker should follow from a live leader but is not in the ISR of.
/// A partition whose leader is offline or fenced is left out (there is nobody to catch up
/// from, and waiting on it would keep the broker unready for good), and so is one that a
/// reassignment is adding this broker to: that copy is a data move the reassignment
/// tracks, and may take far longer than any readiness probe should wait.
pub fn followed_out_of_isr(image: &MetadataImage, me: i32) -> Vec<String> {
    image
        .partitions()
        .filter(|(_, p)| {
            p.replicas.contains(&me)
                && !p.adding.contains(&me)
                && p.leader != me
                && image.is_live(p.leader)
                && !p.isr.contains(&me)
        })
        .map(|(t, p)| partition_name(t, p))
        .collect()
}

/// Whether broker `me` serves every partition `current` places on it. `served` is the
/// image whose partitions the broker last made real (logs open, roles set; `None` before
/// the first), and `missing_logs` how many partitions of that image have no log (opening
/// failed). A partition placed here in `current` but not in `served` (same topic id) is
/// still being created, and so is one it is to lead whose leadership (leader epoch) is not
/// in place yet. The first few names are kept for the message.
pub fn unserved_partitions(
    current: &MetadataImage,
    served: Option<&MetadataImage>,
    me: i32,
    missing_logs: usize,
) -> Result<(), NotReady> {
    let mut count = missing_logs;
    let mut first = Vec::new();
    for (topic, p) in current.partitions() {
        if !p.replicas.contains(&me) {
            continue;
        }
        // A partition it is to lead counts once its leadership is in place too: right
        // after a restart the image says "lead" a moment before the role is taken.
        let known = served
            .and_then(|s| s.topic(&topic.name))
            .filter(|t| t.topic_id == topic.topic_id)
            .and_then(|t| t.partitions.get(&p.partition))
            .is_some_and(|old| {
                p.leader != me || (old.leader == me && old.leader_epoch == p.leader_epoch)
            });
        if !known {
            count += 1;
            if first.len() < NAMES_LISTED {
                first.push(partition_name(topic, p));
            }
        }
    }
    if count == 0 {
        Ok(())
    } else {
        Err(NotReady::PartitionsNotServed { count, first })
    }
}

/// What stopping this broker would do to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartRisk {
    /// No other replica is live: the partition goes (or stays) offline with nobody to
    /// take it over.
    OnlyLiveReplica,
    /// This broker leads it and no other live broker is in the ISR to take over cleanly.
    NoSuccessor { isr: Vec<i32> },
    /// The live ISR without this broker would be smaller than `min.insync.replicas`, so
    /// acks=all producers would fail.
    BelowMinIsr {
        isr: Vec<i32>,
        remaining: usize,
        min_isr: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafePartition {
    pub topic: String,
    pub partition: i32,
    pub risk: RestartRisk,
}

impl fmt::Display for UnsafePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}: ", self.topic, self.partition)?;
        match &self.risk {
            RestartRisk::OnlyLiveReplica => write!(f, "this broker is its only live replica"),
            RestartRisk::NoSuccessor { isr } => write!(
                f,
                "led here and no other live broker in its ISR {isr:?} could take over"
            ),
            RestartRisk::BelowMinIsr {
                isr,
                remaining,
                min_isr,
            } => write!(
                f,
                "ISR {isr:?} would drop to {remaining}, below min.insync.replicas {min_isr}"
            ),
        }
    }
}

/// The partitions stopping broker `me` now would hurt; empty means restarting it is safe.
///
/// Only partitions this broker replicates can be hurt. For each, in order of severity:
/// it is the only live replica; it leads and no other live ISR member could succeed it;
/// it is in the ISR and the live rest of the ISR is below the topic's
/// `min.insync.replicas` (the topic override, else `defaults`). ISR members that are
/// fenced or shutting down are not counted: they are leaving the ISR themselves.
/// A partition is reported once, under its most severe risk.
pub fn restart_risks(
    image: &MetadataImage,
    me: i32,
    defaults: &BTreeMap<&'static str, String>,
) -> Vec<UnsafePartition> {
    image
        .partitions()
        .filter(|(_, p)| p.replicas.contains(&me))
        .filter_map(|(t, p)| {
            partition_risk(image, me, t, p, defaults).map(|risk| UnsafePartition {
                topic: t.name.clone(),
                partition: p.partition,
                risk,
            })
        })
        .collect()
}

fn partition_risk(
    image: &MetadataImage,
    me: i32,
    topic: &TopicImage,
    p: &PartitionImage,
    defaults: &BTreeMap<&'static str, String>,
) -> Option<RestartRisk> {
    let live_other = |r: &&i32| **r != me && image.is_live(**r);
    if !p.replicas.iter().any(|r| live_other(&r)) {
        return Some(RestartRisk::OnlyLiveReplica);
    }
    if !p.isr.contains(&me) {
        return None;
    }
    let remaining = p.isr.iter().filter(live_other).count();
    if p.leader == me && remaining == 0 {
        return Some(RestartRisk::NoSuccessor { isr: p.isr.clone() });
    }
    let min_isr = min_insync_replicas(topic, defaults);
    if (remaining as i64) < i64::from(min_isr) {
        return Some(RestartRisk::BelowMinIsr {
            isr: p.isr.clone(),
            remaining,
            min_isr,
        });
    }
    None
}

/// The topic's `min.insync.replicas`: its override, else the broker default, else Kafka's
/// default of 1 (the config layer validates both, so the fallback is only a safety net).
pub fn min_insync_replicas(topic: &TopicImage, defaults: &BTreeMap<&'static str, String>) -> i32 {
    topic
        .configs
        .get(MIN_ISR_KEY)
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| {
            defaults
                .get(MIN_ISR_KEY)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1)
}

fn partition_name(topic: &TopicImage, p: &PartitionImage) -> String {
    format!("{}-{}", topic.name, p.partition)
}

/// The first `NAMES_LISTED` items joined by commas, with "…" when there are more.
pub fn capped_list(items: &[String]) -> String {
    let mut listed = items
        .iter()
        .take(NAMES_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMES_LISTED {
        listed.push_str(", …");
    }
    listed
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uuid::Uuid;

    use super::*;
    use crate::metadata::{BrokerRegistration, NO_LEADER};

    const ME: i32 = 1;

    /// Brokers 1..=4, live unless listed in `down`.
    fn image(down: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=4 {
            image.brokers.insert(
                id,
                BrokerRegistration {
                    id,
                    incarnation: Uuid::new_v4(),
                    endpoints: Vec::new(),
                    rack: None,
                    fenced: down.contains(&id),
                    shutting_down: false,
                },
            );
        }
        image
    }

    fn add(
        image: &mut MetadataImage,
        topic: &str,
        configs: &[(&str, &str)],
        partitions: &[(&[i32], &[i32], i32)],
    ) {
        let topic_id = Uuid::new_v4();
        let partitions = partitions
            .iter()
            .enumerate()
            .map(|(i, (replicas, isr, leader))| {
                let p = PartitionImage {
                    partition: i as i32,
                    replicas: replicas.to_vec(),
                    isr: isr.to_vec(),
                    leader: *leader,
                    leader_epoch: 1,
                    partition_epoch: 1,
                    adding: Vec::new(),
                    removing: Vec::new(),
                };
                (i as i32, p)
            })
            .collect();
        image.topic_names.insert(topic_id, topic.to_string());
        image.topics.insert(
            topic.to_string(),
            Arc::new(TopicImage {
                name: topic.to_string(),
                topic_id,
                partitions,
                configs: configs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
        );
    }

    fn defaults(min_isr: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([(MIN_ISR_KEY, min_isr.to_string())])
    }

    fn risks(image: &MetadataImage, min_isr: &str) -> Vec<String> {
        restart_risks(image, ME, &defaults(min_isr))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const UP: MemberState = MemberState {
        registered: true,
        fenced: false,
        shutdown_ready: false,
    };

    #[test]
    fn ready_needs_serving_registered_and_unfenced() {
        let image = image(&[]);
        assert_eq!(readiness(false, UP, &image, ME), Err(NotReady::NotServing));
        let unregistered = MemberState::default();
        assert_eq!(
            readiness(true, unregistered, &image, ME),
            Err(NotReady::Unregistered)
        );
        let fenced = MemberState { fenced: true, ..UP };
        assert_eq!(readiness(true, fenced, &image, ME), Err(NotReady::Fenced));
        assert_eq!(readiness(true, UP, &image, ME), Ok(()));
    }

    #[test]
    fn ready_waits_for_the_isr_of_partitions_followed_from_live_leaders() {
        let mut image = image(&[4]);
        add(
            &mut image,
            "t",
            &[],
            &[
                (&[1, 2, 3], &[2, 3], 2),    // followed, out of the ISR: blocks
                (&[1, 2, 3], &[1, 2, 3], 2), // followed, in sync
                (&[2, 3], &[2, 3], 2),       // not a replica here
                (&[1, 2], &[2], 1),          // led here (image lagging): not followed
                (&[1, 4], &[4], 4),          // leader fenced: nobody to catch up from
                (&[1, 2], &[2], NO_LEADER),  // offline
            ],
        );
        let err = readiness(true, UP, &image, ME).unwrap_err();
        assert_eq!(
            err,
            NotReady::OutOfSync {
                partitions: vec!["t-0".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "not ready: following 1 partition(s) not yet in their ISR: t-0"
        );

        // A reassignment adding this broker copies data; it does not block readiness.
        let topic = Arc::make_mut(image.topics.get_mut("t").unwrap());
        let p = topic.partitions.get_mut(&0).unwrap();
        p.adding = vec![ME];
        assert_eq!(readiness(true, UP, &image, ME), Ok(()));
    }

    #[test]
    fn partitions_placed_here_must_be_served() {
        let mut served = image(&[]);
        add(&mut served, "old", &[], &[(&[1], &[1], 1)]);
        assert_eq!(unserved_partitions(&served, Some(&served), ME, 0), Ok(()));
        let mut current = served.clone();
        let many: Vec<(&[i32], &[i32], i32)> = (0..7).map(|_| (&[1][..], &[1][..], 1)).collect();
        add(&mut current, "new", &[], &many);
        add(&mut current, "elsewhere", &[], &[(&[2], &[2], 2)]);
        let err = unserved_partitions(&current, Some(&served), ME, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not ready: 7 partition(s) placed here are not served yet: new-0, new-1, new-2, new-3, new-4, …"
        );
        assert!(matches!(
            unserved_partitions(&current, None, ME, 0),
            Err(NotReady::PartitionsNotServed { count: 8, .. })
        ));
        assert!(matches!(
            unserved_partitions(&served, Some(&served), ME, 2),
            Err(NotReady::PartitionsNotServed { count: 2, .. })
        ));
        assert_eq!(unserved_partitions(&current, Some(&current), ME, 0), Ok(()));
        // Led here in the current image under a newer leader epoch than served.
        let mut led = current.clone();
        let topic = Arc::make_mut(led.topics.get_mut("old").unwrap());
        topic.partitions.get_mut(&0).unwrap().leader_epoch += 1;
        let err = unserved_partitions(&led, Some(&current), ME, 0).unwrap_err();
        assert_eq!(
            err,
            NotReady::PartitionsNotServed {
                count: 1,
                first: vec!["old-0".into()]
            }
        );
    }

    #[test]
    fn not_ready_message_caps_the_names() {
        let mut image = image(&[]);
        let many: Vec<(&[i32], &[i32], i32)> = (0..8).map(|_| (&[1, 2][..], &[2][..], 2)).collect();
        add(&mut image, "t", &[], &many);
        let message = readiness(true, UP, &image, ME).unwrap_err().to_string();
        assert_eq!(
            message,
            "not ready: following 8 partition(s) not yet in their ISR: t-0, t-1, t-2, t-3, t-4, …"
        );
    }

    #[test]
    fn leader_is_safe_to_stop_only_with_a_live_successor_in_the_isr() {
        let mut image = image(&[3]);
        add(
            &mut image,
            "t",
            &[],
            &[
                (&[1, 2], &[1, 2], 1),    // successor 2 in sync
                (&[1, 2], &[1], 1),       // 2 is a replica but out of the ISR
                (&[1, 3], &[1, 3], 1),    // 3 in the ISR but fenced
                (&[1, 2, 3], &[1, 3], 1), // 2 live but out of the ISR, 3 fenced
            ],
        );
        assert_eq!(
            risks(&image, "1"),
            vec![
                "t-1: led here and no other live broker in its ISR [1] could take over",
                "t-2: this broker is its only live replica",
                "t-3: led here and no other live broker in its ISR [1, 3] could take over",
            ]
        );
    }

    #[test]
    fn min_isr_boundary() {
        let mut image = image(&[]);
        add(
            &mut image,
            "t",
            &[],
            &[
                (&[1, 2, 3], &[1, 2, 3], 2), // drops to 2: exactly min.insync.replicas
                (&[1, 2, 3], &[1, 2], 2),    // drops to 1
            ],
        );
        assert_eq!(
            risks(&image, "2"),
            vec!["t-1: ISR [1, 2] would drop to 1, below min.insync.replicas 2"]
        );
        assert_eq!(risks(&image, "1"), Vec::<String>::new());
        assert_eq!(
            risks(&image, "3"),
            vec![
                "t-0: ISR [1, 2, 3] would drop to 2, below min.insync.replicas 3",
                "t-1: ISR [1, 2] would drop to 1, below min.insync.replicas 3",
            ]
        );
    }

    #[test]
    fn topic_override_beats_the_broker_default() {
        let mut image = image(&[]);
        add(
            &mut image,
            "strict",
            &[(MIN_ISR_KEY, "3")],
            &[(&[1, 2, 3], &[1, 2, 3], 2)],
        );
        add(
            &mut image,
            "lax",
            &[(MIN_ISR_KEY, "1")],
            &[(&[1, 2], &[1, 2], 2)],
        );
        assert_eq!(
            risks(&image, "2"),
            vec!["strict-0: ISR [1, 2, 3] would drop to 2, below min.insync.replicas 3"]
        );
        let defaults = defaults("2");
        assert_eq!(min_insync_replicas(&image.topics["lax"], &defaults), 1);
        let mut fallback = (*image.topics["lax"]).clone();
        fallback.configs.clear();
        assert_eq!(min_insync_replicas(&fallback, &defaults), 2);
        assert_eq!(min_insync_replicas(&fallback, &BTreeMap::new()), 1);
    }

    #[test]
    fn partitions_not_in_the_isr_or_not_replicated_here_are_ignored() {
        let mut image = image(&[]);
        add(
            &mut image,
            "t",
            &[],
            &[
                (&[1, 2, 3], &[2, 3], 2), // a follower out of the ISR: no loss
                (&[2, 3], &[2], 2),       // not replicated here, though below min ISR
            ],
        );
        assert_eq!(risks(&image, "2"), Vec::<String>::new());
    }

    #[test]
    fn fenced_isr_members_do_not_count_toward_min_isr() {
        let mut image = image(&[3]);
        add(&mut image, "t", &[], &[(&[1, 2, 3], &[1, 2, 3], 2)]);
        assert_eq!(
            risks(&image, "2"),
            vec!["t-0: ISR [1, 2, 3] would drop to 1, below min.insync.replicas 2"]
        );
    }

    #[test]
    fn offline_partitions_are_unsafe_only_where_this_broker_is_their_last_live_replica() {
        let mut image = image(&[2, 3]);
        add(
            &mut image,
            "t",
            &[],
            &[
                (&[1, 2], &[2], NO_LEADER),    // the one live copy is here
                (&[1, 4, 2], &[2], NO_LEADER), // 4 is live too: stopping 1 changes nothing
                (&[1], &[1], 1),               // replication factor 1
            ],
        );
        assert_eq!(
            risks(&image, "1"),
            vec![
                "t-0: this broker is its only live replica",
                "t-2: this broker is its only live replica",
            ]
        );
    }

    #[test]
    fn a_healthy_cluster_is_safe_to_restart() {
        let mut image = image(&[]);
        add(
            &mut image,
            "t",
            &[(MIN_ISR_KEY, "2")],
            &[
                (&[1, 2, 3], &[1, 2, 3], 1),
                (&[2, 3, 1], &[2, 3, 1], 2),
                (&[3, 4, 2], &[3, 4, 2], 3),
            ],
        );
        assert!(restart_risks(&image, ME, &defaults("1")).is_empty());
    }
}
