//! May this broker restart now? Kafka's availability rule as Strimzi's KafkaRoller applies
//! it, plus the broker's own `/restart-safe` answer. Pure functions over the metadata.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One partition as the metadata shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// Replicas in assignment order: the first is the preferred leader.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
}

impl PartitionState {
    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// One controller voter as the quorum leader reports it (DescribeQuorum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterState {
    pub id: i32,
    /// When the leader last saw this voter caught up to its log end, in the leader's
    /// milliseconds; -1 when never.
    pub last_caught_up_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumState {
    pub leader: i32,
    pub voters: Vec<VoterState>,
}

/// Kafka's default `controller.quorum.fetch.timeout.ms`: a voter whose last catch-up is
/// older than this, relative to the leader's, is lagging (Strimzi's rule).
pub const QUORUM_FETCH_TIMEOUT_MS: i64 = 2000;

/// The broker's `/restart-safe` answer (broker/src/admin_http.rs).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RestartSafeAnswer {
    pub safe: bool,
    pub broker: i32,
    #[serde(default)]
    pub unsafe_partitions: Option<usize>,
    #[serde(default)]
    pub reasons: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("/restart-safe answered HTTP {status} with a body that is not its JSON: {body}")]
    Unparsable { status: u16, body: String },
    #[error("/restart-safe answered for broker {got}, expected {expected}")]
    WrongBroker { expected: i32, got: i32 },
}

/// Reads the `/restart-safe` answer of broker `expected`. 200 and 503 both carry the
/// JSON; the body's `safe` is the verdict, and a 200 claiming unsafe (or the reverse) is
/// read as unsafe.
pub fn parse_restart_safe(
    expected: i32,
    status: u16,
    body: &str,
) -> Result<RestartSafeAnswer, AnswerError> {
    let mut answer: RestartSafeAnswer =
        serde_json::from_str(body).map_err(|_| AnswerError::Unparsable {
            status,
            body: body.chars().take(200).collect(),
        })?;
    if answer.broker != expected {
        return Err(AnswerError::WrongBroker {
            expected,
            got: answer.broker,
        });
    }
    answer.safe = answer.safe && status == 200;
    Ok(answer)
}

/// A partition the restart would take below `min.insync.replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocking {
    pub partition: String,
    pub isr: Vec<i32>,
    pub min_isr: i32,
}

/// Kafka's availability rule: for every partition with a replica on `broker`, ignoring
/// those whose replication factor is at most their `min.insync.replicas` (they cannot
/// stay writable through any restart, so waiting would block the roll for ever), refuse
/// if the ISR is below `min.insync.replicas`, or at it with `broker` in the ISR.
/// `min_isr` gives a topic's effective value.
pub fn blocking_partitions(
    broker: i32,
    partitions: &[PartitionState],
    min_isr: impl Fn(&str) -> i32,
) -> Vec<Blocking> {
    partitions
        .iter()
        .filter(|p| p.replicas.contains(&broker))
        .filter_map(|p| {
            let min = min_isr(&p.topic);
            let rf = i32::try_from(p.replicas.len()).unwrap_or(i32::MAX);
            let isr = i32::try_from(p.isr.len()).unwrap_or(i32::MAX);
            let blocks = rf > min && (isr < min || (isr == min && p.isr.contains(&broker)));
            blocks.then(|| Blocking {
                partition: p.name(),
                isr: p.isr.clone(),
                min_isr: min,
            })
        })
        .collect()
}

/// For a controller voter: a majority of all voters must remain caught up without it.
/// `None` when `broker` is not a voter or the rest suffice; else why not.
pub fn quorum_blocker(broker: i32, quorum: &QuorumState, fetch_timeout_ms: i64) -> Option<String> {
    // A single voter has no availability to keep: without this exception a one-broker
    // cluster could never roll.
    if quorum.voters.len() < 2 || !quorum.voters.iter().any(|v| v.id == broker) {
        return None;
    }
    let leader_time = quorum
        .voters
        .iter()
        .find(|v| v.id == quorum.leader)
        .map(|v| v.last_caught_up_ms);
    let caught_up: Vec<i32> = quorum
        .voters
        .iter()
        .filter(|v| v.id != broker)
        .filter(|v| {
            v.id == quorum.leader
                || match leader_time {
                    Some(leader) => {
                        v.last_caught_up_ms >= 0 && leader - v.last_caught_up_ms < fetch_timeout_ms
                    }
                    None => false,
                }
        })
        .map(|v| v.id)
        .collect();
    let majority = quorum.voters.len() / 2 + 1;
    (caught_up.len() < majority).then(|| {
        format!(
            "controller voter {broker}: only voters {caught_up:?} of {} would stay caught up, \
             a majority needs {majority}",
            quorum.voters.len()
        )
    })
}

/// The verdict on restarting a Ready broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Safe,
    Blocked {
        reason: &'static str,
        message: String,
        partitions: Vec<String>,
    },
}

/// Most partitions named in status and messages; the count says how many more.
pub const LISTED_PARTITIONS: usize = 10;

/// Combines the metadata rule, the quorum rule and the broker's own answer. Any one of
/// them refusing blocks the restart; an unknown answer blocks too, since a roll must
/// never force an unsafe restart.
pub fn decide(
    broker: i32,
    partitions: &[PartitionState],
    min_isr: &BTreeMap<String, i32>,
    default_min_isr: i32,
    quorum: Option<&QuorumState>,
    restart_safe: Result<&RestartSafeAnswer, &str>,
) -> Verdict {
    let blocking = blocking_partitions(broker, partitions, |topic| {
        min_isr.get(topic).copied().unwrap_or(default_min_isr)
    });
    if !blocking.is_empty() {
        let names: Vec<String> = blocking.iter().map(|b| b.partition.clone()).collect();
        let detail: Vec<String> = blocking
            .iter()
            .take(LISTED_PARTITIONS)
            .map(|b| {
                format!(
                    "{} (ISR {:?}, min.insync.replicas {})",
                    b.partition, b.isr, b.min_isr
                )
            })
            .collect();
        return Verdict::Blocked {
            reason: "UnderMinIsr",
            message: format!(
                "restarting broker {broker} would leave {} partition(s) below min.insync.replicas: {}{}",
                blocking.len(),
                detail.join(", "),
                more(blocking.len())
            ),
            partitions: names.into_iter().take(LISTED_PARTITIONS).collect(),
        };
    }
    match quorum {
        Some(quorum) => {
            if let Some(message) = quorum_blocker(broker, quorum, QUORUM_FETCH_TIMEOUT_MS) {
                return Verdict::Blocked {
                    reason: "QuorumNotCaughtUp",
                    message,
                    partitions: Vec::new(),
                };
            }
        }
        None => {
            return Verdict::Blocked {
                reason: "QuorumUnknown",
                message: "the controller quorum's state is unknown (DescribeQuorum failed)".into(),
                partitions: Vec::new(),
            }
        }
    }
    let ignored = ignored_partitions(partitions, min_isr, default_min_isr);
    match restart_safe {
        Ok(answer) if answer.safe => Verdict::Safe,
        Ok(answer) if only_ignored(answer, &ignored) => Verdict::Safe,
        Ok(answer) => Verdict::Blocked {
            reason: "BrokerReportsUnsafe",
            message: format!(
                "broker {broker} reports {} unsafe partition(s): {}",
                answer.unsafe_partitions.unwrap_or(answer.reasons.len()),
                answer.reasons.join("; ")
            ),
            partitions: answer
                .reasons
                .iter()
                .filter_map(|r| r.split(": ").next().map(str::to_string))
                .take(LISTED_PARTITIONS)
                .collect(),
        },
        Err(why) => Verdict::Blocked {
            reason: "RestartSafetyUnknown",
            message: format!("broker {broker}'s /restart-safe could not be read: {why}"),
            partitions: Vec::new(),
        },
    }
}

/// Partitions the availability rule ignores (replication factor at most
/// `min.insync.replicas`), by name.
fn ignored_partitions(
    partitions: &[PartitionState],
    min_isr: &BTreeMap<String, i32>,
    default_min_isr: i32,
) -> Vec<String> {
    partitions
        .iter()
        .filter(|p| {
            let min = min_isr.get(&p.topic).copied().unwrap_or(default_min_isr);
            i32::try_from(p.replicas.len()).unwrap_or(i32::MAX) <= min
        })
        .map(PartitionState::name)
        .collect()
}

/// The broker's `/restart-safe` also refuses for a partition whose only live replica is
/// this broker (replication factor 1), which the issue's rule ignores: such a partition is
/// unavailable during any restart, so waiting would stop the roll for ever. Its refusal is
/// set aside only when it lists every unsafe partition and each is an ignored one.
fn only_ignored(answer: &RestartSafeAnswer, ignored: &[String]) -> bool {
    let listed_all = answer.unsafe_partitions == Some(answer.reasons.len());
    listed_all
        && answer.reasons.iter().all(|reason| {
            reason
                .split(": ")
                .next()
                .is_some_and(|name| ignored.iter().any(|i| i == name))
        })
}

fn more(total: usize) -> String {
    if total > LISTED_PARTITIONS {
        format!(" and {} more", total - LISTED_PARTITIONS)
    } else {
        String::new()
    }
}

/// Where a restarted broker stands before the roll may go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Still out of the ISR of these partitions (first ones named).
    Behind(Vec<String>),
    /// In every ISR; these partitions prefer it as leader but are led elsewhere.
    CaughtUp { elect: Vec<(String, i32)> },
}

/// After a restart: is `broker` back in the ISR of every partition it replicates, and
/// which preferred leaderships should move back to it (ElectLeaders PREFERRED)?
pub fn catch_up(broker: i32, partitions: &[PartitionState]) -> CatchUp {
    let behind: Vec<String> = partitions
        .iter()
        .filter(|p| p.replicas.contains(&broker) && !p.isr.contains(&broker))
        .map(PartitionState::name)
        .collect();
    if !behind.is_empty() {
        return CatchUp::Behind(behind);
    }
    CatchUp::CaughtUp {
        elect: partitions
            .iter()
            .filter(|p| p.replicas.first() == Some(&broker) && p.leader != broker)
            .map(|p| (p.topic.clone(), p.partition))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, replicas: &[i32], isr: &[i32]) -> PartitionState {
        PartitionState {
            topic: topic.into(),
            partition: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader: isr.first().copied().unwrap_or(-1),
        }
    }

    fn blocked(broker: i32, parts: &[PartitionState], min: i32) -> Vec<String> {
        blocking_partitions(broker, parts, |_| min)
            .into_iter()
            .map(|b| b.partition)
            .collect()
    }

    #[test]
    fn full_isr_is_safe() {
        assert!(blocked(1, &[p("t", &[0, 1, 2], &[0, 1, 2])], 2).is_empty());
    }

    #[test]
    fn isr_at_min_blocks_only_a_broker_inside_it() {
        let parts = [p("t", &[0, 1, 2], &[0, 1])];
        assert_eq!(blocked(1, &parts, 2), vec!["t-0"], "1 is in the ISR of 2");
        assert!(
            blocked(2, &parts, 2).is_empty(),
            "2 is already out: its restart cannot shrink the ISR"
        );
    }

    #[test]
    fn isr_below_min_blocks_every_replica() {
        let parts = [p("t", &[0, 1, 2], &[0])];
        assert_eq!(blocked(0, &parts, 2), vec!["t-0"]);
        assert_eq!(blocked(2, &parts, 2), vec!["t-0"]);
    }

    #[test]
    fn rf_at_or_below_min_isr_is_ignored() {
        let parts = [p("rf2", &[0, 1], &[0, 1]), p("rf1", &[1], &[1])];
        assert!(blocked(1, &parts, 2).is_empty());
        assert_eq!(
            blocked(1, &[p("rf1", &[1], &[1])], 1),
            Vec::<String>::new(),
            "RF 1 == min.insync 1"
        );
    }

    #[test]
    fn partitions_elsewhere_do_not_count() {
        assert!(blocked(3, &[p("t", &[0, 1, 2], &[0])], 2).is_empty());
    }

    #[test]
    fn per_topic_min_isr_applies() {
        let parts = [
            p("strict", &[0, 1, 2], &[0, 1]),
            p("lax", &[0, 1, 2], &[0, 1]),
        ];
        let blocking = blocking_partitions(0, &parts, |t| if t == "strict" { 2 } else { 1 });
        assert_eq!(blocking.len(), 1);
        assert_eq!(blocking[0].partition, "strict-0");
        assert_eq!(blocking[0].min_isr, 2);
    }

    fn quorum(leader: i32, voters: &[(i32, i64)]) -> QuorumState {
        QuorumState {
            leader,
            voters: voters
                .iter()
                .map(|(id, t)| VoterState {
                    id: *id,
                    last_caught_up_ms: *t,
                })
                .collect(),
        }
    }

    #[test]
    fn a_voter_restarts_only_with_a_caught_up_majority_left() {
        let healthy = quorum(0, &[(0, 10_000), (1, 9_900), (2, 9_500)]);
        assert_eq!(quorum_blocker(1, &healthy, 2000), None);
        assert_eq!(quorum_blocker(0, &healthy, 2000), None, "the leader itself");
        let lagging = quorum(0, &[(0, 10_000), (1, 9_900), (2, 5_000)]);
        assert!(quorum_blocker(1, &lagging, 2000).is_some(), "2 is behind");
        assert_eq!(
            quorum_blocker(2, &lagging, 2000),
            None,
            "0 and 1 remain: a majority of 3"
        );
        let never = quorum(0, &[(0, 10_000), (1, -1), (2, 9_999)]);
        assert!(quorum_blocker(2, &never, 2000).is_some());
    }

    #[test]
    fn a_single_voter_may_restart() {
        assert_eq!(quorum_blocker(0, &quorum(0, &[(0, 10)]), 2000), None);
    }

    #[test]
    fn broker_refusals_for_ignored_partitions_are_set_aside() {
        let parts = [p("rf1", &[1], &[1]), p("t", &[0, 1, 2], &[0, 1, 2])];
        let none = BTreeMap::new();
        let q = healthy_quorum();
        let answer = |count: usize, reasons: &[&str]| RestartSafeAnswer {
            safe: false,
            broker: 1,
            unsafe_partitions: Some(count),
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
        };
        let rf1 = answer(1, &["rf1-0: this broker is its only live replica"]);
        assert_eq!(
            decide(1, &parts, &none, 2, Some(&q), Ok(&rf1)),
            Verdict::Safe
        );
        let unlisted = answer(7, &["rf1-0: this broker is its only live replica"]);
        assert!(
            matches!(
                decide(1, &parts, &none, 2, Some(&q), Ok(&unlisted)),
                Verdict::Blocked { .. }
            ),
            "six unsafe partitions were not listed"
        );
        let mixed = answer(2, &["rf1-0: only", "t-0: led here"]);
        assert!(matches!(
            decide(1, &parts, &none, 2, Some(&q), Ok(&mixed)),
            Verdict::Blocked { .. }
        ));
    }

    #[test]
    fn non_voters_are_not_held_by_the_quorum() {
        let lagging = quorum(0, &[(0, 10_000), (1, -1), (2, -1)]);
        assert_eq!(quorum_blocker(4, &lagging, 2000), None);
    }

    #[test]
    fn five_voters_need_three_of_the_other_four() {
        let q = quorum(0, &[(0, 10_000), (1, 10_000), (2, 10_000), (3, 1), (4, 1)]);
        assert_eq!(quorum_blocker(3, &q, 2000), None, "0, 1, 2 remain");
        assert!(quorum_blocker(1, &q, 2000).is_some(), "only 0 and 2 remain");
    }

    #[test]
    fn restart_safe_answers_parse() {
        let ok = parse_restart_safe(1, 200, r#"{"safe":true,"broker":1}"#).expect("ok");
        assert!(ok.safe);
        let no = parse_restart_safe(
            1,
            503,
            r#"{"safe":false,"broker":1,"unsafe_partitions":2,"reasons":["t-0: x","t-1: y"]}"#,
        )
        .expect("unsafe");
        assert!(!no.safe);
        assert_eq!(no.unsafe_partitions, Some(2));
        let lying = parse_restart_safe(1, 503, r#"{"safe":true,"broker":1}"#).expect("parses");
        assert!(!lying.safe, "a 503 is never safe");
        assert_eq!(
            parse_restart_safe(1, 200, r#"{"safe":true,"broker":2}"#),
            Err(AnswerError::WrongBroker {
                expected: 1,
                got: 2
            })
        );
        assert!(matches!(
            parse_restart_safe(1, 404, "not found"),
            Err(AnswerError::Unparsable { status: 404, .. })
        ));
    }

    fn healthy_quorum() -> QuorumState {
        quorum(0, &[(0, 10), (1, 10), (2, 10)])
    }

    fn safe() -> RestartSafeAnswer {
        RestartSafeAnswer {
            safe: true,
            broker: 1,
            unsafe_partitions: None,
            reasons: vec![],
        }
    }

    #[test]
    fn decide_names_the_blocking_partitions_first() {
        let parts = [p("orders", &[0, 1, 2], &[1, 2])];
        let verdict = decide(
            1,
            &parts,
            &BTreeMap::new(),
            2,
            Some(&healthy_quorum()),
            Ok(&safe()),
        );
        match verdict {
            Verdict::Blocked {
                reason,
                message,
                partitions,
            } => {
                assert_eq!(reason, "UnderMinIsr");
                assert_eq!(partitions, vec!["orders-0"]);
                assert!(
                    message.contains("orders-0 (ISR [1, 2], min.insync.replicas 2)"),
                    "{message}"
                );
            }
            Verdict::Safe => panic!("must block"),
        }
    }

    #[test]
    fn decide_follows_the_broker_answer_and_refuses_the_unknown() {
        let parts = [p("t", &[0, 1, 2], &[0, 1, 2])];
        let none = BTreeMap::new();
        let q = healthy_quorum();
        assert_eq!(
            decide(1, &parts, &none, 2, Some(&q), Ok(&safe())),
            Verdict::Safe
        );
        let unsafe_answer = RestartSafeAnswer {
            safe: false,
            broker: 1,
            unsafe_partitions: Some(1),
            reasons: vec!["t-0: led here and no other live broker".into()],
        };
        assert!(matches!(
            decide(1, &parts, &none, 2, Some(&q), Ok(&unsafe_answer)),
            Verdict::Blocked { reason: "BrokerReportsUnsafe", ref partitions, .. } if partitions == &vec!["t-0".to_string()]
        ));
        assert!(matches!(
            decide(1, &parts, &none, 2, Some(&q), Err("connection refused")),
            Verdict::Blocked {
                reason: "RestartSafetyUnknown",
                ..
            }
        ));
        assert!(matches!(
            decide(1, &parts, &none, 2, None, Ok(&safe())),
            Verdict::Blocked {
                reason: "QuorumUnknown",
                ..
            }
        ));
    }

    #[test]
    fn many_blocking_partitions_are_capped() {
        let parts: Vec<PartitionState> = (0..15)
            .map(|i| PartitionState {
                partition: i,
                ..p("t", &[0, 1, 2], &[0, 1])
            })
            .collect();
        let Verdict::Blocked {
            message,
            partitions,
            ..
        } = decide(
            0,
            &parts,
            &BTreeMap::new(),
            2,
            Some(&healthy_quorum()),
            Ok(&safe()),
        )
        else {
            panic!("must block");
        };
        assert_eq!(partitions.len(), LISTED_PARTITIONS);
        assert!(
            message.contains("15 partition(s)") && message.ends_with("and 5 more"),
            "{message}"
        );
    }

    #[test]
    fn catch_up_waits_for_every_isr_then_lists_preferred_leaderships() {
        let mut led_elsewhere = p("a", &[1, 0, 2], &[0, 1, 2]);
        led_elsewhere.leader = 0;
        let mut led_here = p("b", &[1, 0, 2], &[1, 0, 2]);
        led_here.leader = 1;
        let not_preferred = p("c", &[0, 1, 2], &[0, 1, 2]);
        let behind = p("d", &[2, 1], &[2]);
        assert_eq!(
            catch_up(1, &[led_elsewhere.clone(), behind]),
            CatchUp::Behind(vec!["d-0".into()])
        );
        assert_eq!(
            catch_up(1, &[led_elsewhere, led_here, not_preferred]),
            CatchUp::CaughtUp {
                elect: vec![("a".into(), 0)]
            }
        );
    }
}
