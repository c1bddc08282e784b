//! The scale state machine: from what the spec asks, what the StatefulSet has and what the
//! brokers report, the one next step. Pure; the reconcile (`cluster/scale.rs`) gathers the
//! facts, takes the step and asks again on the next reconcile.
//!
//! The StatefulSet size is part of the decision: it grows at once on scale-up, but on
//! scale-down it is held until no replica is left on the brokers that go, so a pod is never
//! removed while it holds data. Because every step is decided from the latest spec and the
//! observed state (no remembered plan), a scale-down requested during a scale-up, or the
//! reverse, simply converges to the latest spec: whatever moves are in flight finish, then
//! the plan for the new target takes over.

use std::collections::BTreeMap;

/// Most controller voters: the first three brokers (see `cluster/names.rs`).
pub const VOTERS: i32 = 3;

/// Whether the operator may start partition moves (the `kafka.strom.dev/rebalance`
/// annotation, see `cluster/scale.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Moves start as soon as they are planned (no annotation).
    Auto,
    /// `paused`: no new batch starts; moves in flight finish.
    Paused,
    /// `approve` without a matching approval: the plan is shown, nothing starts.
    AwaitingApproval,
}

/// What the brokers report; only gathered while a scale is under way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerFacts {
    /// Registered brokers and whether each is fenced (its process is gone or not caught up).
    pub registered: BTreeMap<i32, bool>,
    /// Topics whose replication factor the target broker count cannot hold.
    pub blocked_topics: Vec<String>,
    /// Replicas still on brokers at or above the target count.
    pub replicas_on_leaving: usize,
    /// Reassignments under way, anyone's.
    pub in_flight: usize,
    /// Moves the planner still wants for the target broker set.
    pub planned_moves: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: the StatefulSet has the spec's size and the data is balanced.
    Done,
    /// Scale-up: the StatefulSet grows to the spec's size.
    Grow,
    /// New brokers have not registered (or not caught up) yet.
    WaitForBrokers { missing: Vec<i32> },
    /// Start the next batch of moves.
    MoveBatch,
    /// Reassignments are under way.
    WaitForMoves,
    /// The brokers could not be asked; nothing that depends on them happens.
    BrokersUnknown,
    /// Moves are planned but the annotation holds them.
    Held(Gate),
    /// Every replica has left the brokers that go: the StatefulSet shrinks.
    Shrink,
    /// The removed brokers' pods are gone and their registrations fenced: unregister them.
    Unregister { brokers: Vec<i32> },
    /// The removed brokers are still registered and live (pods terminating).
    WaitForRemovedBrokers { brokers: Vec<i32> },
    /// The scale-down cannot be done; nothing moves, the StatefulSet keeps its size.
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The first three brokers are the controller quorum's voters.
    VotersCannotBeRemoved { voters: i32 },
    /// These topics' replication factor exceeds the brokers that would remain.
    ReplicationFactor { topics: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The size the StatefulSet is to have after this reconcile.
    pub stateful_set_replicas: i32,
    pub step: Step,
}

/// Whether a reconcile needs to ask the brokers anything: only while the StatefulSet and
/// the spec disagree, or a scale recorded in status is not finished. A steady cluster costs
/// the brokers nothing.
pub fn needs_brokers(spec: i32, stateful_set: Option<i32>, scaling: bool) -> bool {
    match stateful_set {
        None => false,
        Some(current) => current != spec || scaling,
    }
}

/// Decides the next step. `stateful_set` is the live StatefulSet's size (`None` before it
/// exists: it is created at the spec's size). `facts` is `None` when `needs_brokers` said
/// no, or the brokers could not be asked (then nothing that depends on them happens).
pub fn decide(
    spec: i32,
    stateful_set: Option<i32>,
    facts: Option<&BrokerFacts>,
    gate: Gate,
) -> Decision {
    let Some(current) = stateful_set else {
        return hold(spec, Step::Done);
    };
    let voters = current.min(VOTERS);
    if spec < voters {
        return hold(
            current,
            Step::Refused(Refusal::VotersCannotBeRemoved { voters }),
        );
    }
    if spec > current {
        return hold(spec, Step::Grow);
    }
    let Some(facts) = facts else {
        // Without the brokers' view only a size that needs no data movement is safe.
        return hold(
            current,
            if spec == current {
                Step::Done
            } else {
                Step::BrokersUnknown
            },
        );
    };
    let missing: Vec<i32> = (0..spec)
        .filter(|b| facts.registered.get(b) != Some(&false))
        .collect();
    if spec < current {
        if !facts.blocked_topics.is_empty() {
            return hold(
                current,
                Step::Refused(Refusal::ReplicationFactor {
                    topics: facts.blocked_topics.clone(),
                }),
            );
        }
        if facts.in_flight > 0 {
            return hold(current, Step::WaitForMoves);
        }
        if facts.replicas_on_leaving > 0 {
            if !missing.is_empty() {
                return hold(current, Step::WaitForBrokers { missing });
            }
            return hold(current, gated(gate));
        }
        return hold(spec, Step::Shrink);
    }
    // spec == current: the StatefulSet has its size; finish moves, then tidy up.
    let removed: Vec<i32> = facts
        .registered
        .keys()
        .copied()
        .filter(|&b| b >= spec)
        .collect();
    if !removed.is_empty() {
        let live: Vec<i32> = removed
            .iter()
            .copied()
            .filter(|b| facts.registered.get(b) == Some(&false))
            .collect();
        return hold(
            current,
            if live.is_empty() {
                Step::Unregister { brokers: removed }
            } else {
                Step::WaitForRemovedBrokers { brokers: live }
            },
        );
    }
    if !missing.is_empty() {
        return hold(current, Step::WaitForBrokers { missing });
    }
    if facts.in_flight > 0 {
        return hold(current, Step::WaitForMoves);
    }
    if facts.planned_moves > 0 {
        return hold(current, gated(gate));
    }
    hold(current, Step::Done)
}

/// Whether the step comes after a batch of moves has finished (or no batch is under way
/// any more), so the preferred leaders the moves set can be elected. Not while growing or
/// waiting for brokers (no batch ran yet), nor while moves are in flight: Kafka calls a
/// batch done only when all of it is.
pub fn elects_leaders(step: &Step) -> bool {
    match step {
        Step::MoveBatch
        | Step::Held(_)
        | Step::Shrink
        | Step::WaitForRemovedBrokers { .. }
        | Step::Unregister { .. }
        | Step::Done => true,
        Step::Grow
        | Step::WaitForBrokers { .. }
        | Step::WaitForMoves
        | Step::BrokersUnknown
        | Step::Refused(_) => false,
    }
}

fn gated(gate: Gate) -> Step {
    match gate {
        Gate::Auto => Step::MoveBatch,
        held => Step::Held(held),
    }
}

fn hold(stateful_set_replicas: i32, step: Step) -> Decision {
    Decision {
        stateful_set_replicas,
        step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ids: &[i32]) -> BTreeMap<i32, bool> {
        ids.iter().map(|&b| (b, false)).collect()
    }

    fn facts(ids: &[i32]) -> BrokerFacts {
        BrokerFacts {
            registered: live(ids),
            ..BrokerFacts::default()
        }
    }

    fn at(spec: i32, sts: i32, f: &BrokerFacts) -> Decision {
        decide(spec, Some(sts), Some(f), Gate::Auto)
    }

    #[test]
    fn a_new_cluster_is_created_at_the_spec_size_without_asking_brokers() {
        assert!(!needs_brokers(5, None, false));
        assert_eq!(decide(5, None, None, Gate::Auto), hold(5, Step::Done));
        assert!(!needs_brokers(3, Some(3), false));
        assert!(needs_brokers(3, Some(3), true));
        assert!(needs_brokers(5, Some(3), false));
    }

    #[test]
    fn scale_up_grows_waits_for_brokers_then_moves_batches_until_balanced() {
        let f = facts(&[0, 1, 2]);
        assert_eq!(at(5, 3, &f), hold(5, Step::Grow));
        assert_eq!(
            at(5, 5, &f),
            hold(
                5,
                Step::WaitForBrokers {
                    missing: vec![3, 4]
                }
            )
        );
        // A fenced new broker has not caught up yet: still waiting.
        let mut f = facts(&[0, 1, 2, 3]);
        f.registered.insert(4, true);
        assert_eq!(
            at(5, 5, &f),
            hold(5, Step::WaitForBrokers { missing: vec![4] })
        );
        let mut f = facts(&[0, 1, 2, 3, 4]);
        f.planned_moves = 12;
        assert_eq!(at(5, 5, &f), hold(5, Step::MoveBatch));
        f.in_flight = 3;
        assert_eq!(at(5, 5, &f), hold(5, Step::WaitForMoves));
        f.in_flight = 0;
        f.planned_moves = 0;
        assert_eq!(at(5, 5, &f), hold(5, Step::Done));
    }

    #[test]
    fn the_annotation_holds_new_batches_but_not_a_grow() {
        let mut f = facts(&[0, 1, 2, 3]);
        f.planned_moves = 4;
        assert_eq!(
            decide(4, Some(4), Some(&f), Gate::Paused),
            hold(4, Step::Held(Gate::Paused))
        );
        assert_eq!(
            decide(4, Some(4), Some(&f), Gate::AwaitingApproval),
            hold(4, Step::Held(Gate::AwaitingApproval))
        );
        assert_eq!(
            decide(5, Some(4), Some(&f), Gate::Paused),
            hold(5, Step::Grow)
        );
    }

    #[test]
    fn scale_down_holds_the_stateful_set_until_drained_then_shrinks_and_unregisters() {
        let mut f = facts(&[0, 1, 2, 3, 4]);
        f.replicas_on_leaving = 40;
        f.planned_moves = 40;
        assert_eq!(at(3, 5, &f), hold(5, Step::MoveBatch));
        f.in_flight = 10;
        assert_eq!(at(3, 5, &f), hold(5, Step::WaitForMoves));
        // Paused: the drain stops, the pods stay.
        f.in_flight = 0;
        assert_eq!(
            decide(3, Some(5), Some(&f), Gate::Paused),
            hold(5, Step::Held(Gate::Paused))
        );
        f.replicas_on_leaving = 0;
        f.planned_moves = 0;
        assert_eq!(at(3, 5, &f), hold(3, Step::Shrink));
        // After the shrink: pods terminating, registrations still live.
        assert_eq!(
            at(3, 3, &f),
            hold(
                3,
                Step::WaitForRemovedBrokers {
                    brokers: vec![3, 4]
                }
            )
        );
        f.registered.insert(3, true);
        f.registered.insert(4, true);
        assert_eq!(
            at(3, 3, &f),
            hold(
                3,
                Step::Unregister {
                    brokers: vec![3, 4]
                }
            )
        );
        f.registered.remove(&3);
        f.registered.remove(&4);
        assert_eq!(at(3, 3, &f), hold(3, Step::Done));
    }

    #[test]
    fn scale_down_is_refused_for_blocked_topics_and_for_voters() {
        let mut f = facts(&[0, 1, 2, 3, 4]);
        f.replicas_on_leaving = 10;
        f.blocked_topics = vec!["wide".into()];
        assert_eq!(
            at(3, 5, &f),
            hold(
                5,
                Step::Refused(Refusal::ReplicationFactor {
                    topics: vec!["wide".into()]
                })
            )
        );
        // Below the three voters: refused whatever the data.
        assert_eq!(
            at(2, 5, &facts(&[0, 1, 2, 3, 4])),
            hold(
                5,
                Step::Refused(Refusal::VotersCannotBeRemoved { voters: 3 })
            )
        );
        // A cluster of two has two voters and may not go to one.
        assert_eq!(
            at(1, 2, &facts(&[0, 1])),
            hold(
                2,
                Step::Refused(Refusal::VotersCannotBeRemoved { voters: 2 })
            )
        );
    }

    #[test]
    fn scale_down_requested_during_a_scale_up_converges_to_the_latest_spec() {
        // 3 -> 5 is under way: the StatefulSet has 5, moves onto 3 and 4 are in flight.
        let mut f = facts(&[0, 1, 2, 3, 4]);
        f.in_flight = 5;
        f.replicas_on_leaving = 5;
        // Now the spec says 3 again: the pods stay until the moves in flight are done ...
        assert_eq!(at(3, 5, &f), hold(5, Step::WaitForMoves));
        // ... then the data that reached 3 and 4 is moved back before the shrink.
        f.in_flight = 0;
        assert_eq!(at(3, 5, &f), hold(5, Step::MoveBatch));
        f.replicas_on_leaving = 0;
        assert_eq!(at(3, 5, &f), hold(3, Step::Shrink));
    }

    #[test]
    fn scale_up_requested_during_a_drain_keeps_the_pods_and_rebalances() {
        // 5 -> 3 draining, then the spec says 5 again: the StatefulSet never shrank.
        let mut f = facts(&[0, 1, 2, 3, 4]);
        f.in_flight = 4;
        f.replicas_on_leaving = 20;
        assert_eq!(at(3, 5, &f), hold(5, Step::WaitForMoves));
        f.planned_moves = 8;
        assert_eq!(at(5, 5, &f), hold(5, Step::WaitForMoves));
        f.in_flight = 0;
        assert_eq!(at(5, 5, &f), hold(5, Step::MoveBatch));
        // Or to a size in between: only broker 4 drains now.
        assert_eq!(at(4, 5, &f), hold(5, Step::MoveBatch));
    }

    #[test]
    fn without_the_brokers_view_a_scale_down_waits() {
        assert_eq!(
            decide(3, Some(5), None, Gate::Auto),
            hold(5, Step::BrokersUnknown)
        );
        assert_eq!(decide(4, Some(3), None, Gate::Auto), hold(4, Step::Grow));
    }

    #[test]
    fn leaders_are_elected_once_moves_are_finished_never_while_they_run() {
        let mut f = facts(&[0, 1, 2, 3, 4]);
        f.planned_moves = 6;
        f.in_flight = 2;
        assert!(!elects_leaders(&at(5, 5, &f).step), "a batch is running");
        f.in_flight = 0;
        // The last batch is done; the next one starts after the election.
        assert!(elects_leaders(&at(5, 5, &f).step));
        assert!(elects_leaders(
            &decide(5, Some(5), Some(&f), Gate::Paused).step
        ));
        f.planned_moves = 0;
        assert!(elects_leaders(&at(5, 5, &f).step), "the scale is done");
        assert!(elects_leaders(&at(3, 5, &f).step), "drained, shrinking");
        assert!(!elects_leaders(&at(6, 5, &f).step), "growing");
        assert!(!elects_leaders(&at(5, 5, &facts(&[0, 1, 2])).step));
        assert!(!elects_leaders(&decide(4, Some(5), None, Gate::Auto).step));
    }
}
