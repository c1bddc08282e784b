//! The partition planner: given the brokers that are to hold data (with their racks) and
//! the current assignment, the partition moves that leave every replica on those brokers,
//! replicas and preferred leaders spread evenly, racks as diverse as before, while moving
//! as few replicas as it can. Pure, so every rule has a direct test.
//!
//! The approach is greedy and deterministic, as a reconcile needs it to be: the same input
//! always gives the same plan, and planning again on a finished plan's result gives no
//! moves (the reconcile re-plans after every batch instead of storing a plan).

use std::collections::{BTreeMap, BTreeSet};

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Replicas of every partition, in Kafka's order: the first is the preferred leader.
pub type Assignment = BTreeMap<TopicPartition, Vec<i32>>;

/// Who leads a partition now, and its in-sync replicas, as Metadata reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leadership {
    /// `None` while the partition has no leader.
    pub leader: Option<i32>,
    pub isr: Vec<i32>,
}

/// Every partition's current leadership.
pub type Leaders = BTreeMap<TopicPartition, Leadership>;

/// The partitions to hand to ElectLeaders PREFERRED: led by another broker than their
/// first replica while that replica is live and in the ISR. Kafka refuses a preferred
/// election otherwise, so asking for those only makes noise. Partitions being moved are
/// left alone: their listed replicas are the target, which the brokers do not hold yet.
pub fn preferred_elections(
    assignment: &Assignment,
    leaders: &Leaders,
    live: &BTreeSet<i32>,
    in_flight: &BTreeSet<TopicPartition>,
) -> Vec<TopicPartition> {
    assignment
        .iter()
        .filter(|(tp, _)| !in_flight.contains(tp))
        .filter_map(|(tp, replicas)| {
            let preferred = *replicas.first()?;
            let now = leaders.get(tp)?;
            (now.leader != Some(preferred)
                && live.contains(&preferred)
                && now.isr.contains(&preferred))
            .then(|| tp.clone())
        })
        .collect()
}

/// A broker that may hold replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub rack: Option<String>,
}

/// One partition's new replica list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub partition: TopicPartition,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

impl Move {
    /// Brokers that get a replica they do not have (Kafka's `addingReplicas`).
    pub fn adding(&self) -> Vec<i32> {
        self.to
            .iter()
            .copied()
            .filter(|b| !self.from.contains(b))
            .collect()
    }

    /// A move that only changes the preferred leader copies no data.
    pub fn is_reorder(&self) -> bool {
        self.adding().is_empty()
    }
}

/// Topics that some partition of needs more replicas than `brokers` can hold: a scale-down
/// to those brokers would have to lower the replication factor, so it is refused.
pub fn blocked_topics(assignment: &Assignment, brokers: usize) -> Vec<String> {
    let topics: BTreeSet<&str> = assignment
        .iter()
        .filter(|(_, replicas)| replicas.len() > brokers)
        .map(|(tp, _)| tp.topic.as_str())
        .collect();
    topics.into_iter().map(str::to_string).collect()
}

/// How many replicas sit on brokers outside `keep`.
pub fn replicas_outside(assignment: &Assignment, keep: &BTreeSet<i32>) -> usize {
    assignment
        .values()
        .flatten()
        .filter(|b| !keep.contains(b))
        .count()
}

/// The moves that bring `current` onto `brokers`, balanced. Partitions whose replication
/// factor exceeds the broker count cannot be placed; the caller refuses those first
/// (`blocked_topics`) and such partitions are left where they are.
pub fn plan(brokers: &[Broker], current: &Assignment) -> Vec<Move> {
    if brokers.is_empty() {
        return Vec::new();
    }
    let mut state = State::new(brokers, current);
    state.evacuate();
    state.balance_replicas();
    state.balance_leaders();
    current
        .iter()
        .filter_map(|(tp, from)| {
            let to = &state.assignment[tp];
            (to != from).then(|| Move {
                partition: tp.clone(),
                from: from.clone(),
                to: to.clone(),
            })
        })
        .collect()
}

struct State {
    ids: Vec<i32>,
    racks: BTreeMap<i32, String>,
    /// Racks count only when every broker has one, as in Kafka's rack-aware placement.
    rack_aware: bool,
    assignment: Assignment,
}

impl State {
    fn new(brokers: &[Broker], current: &Assignment) -> State {
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let racks: BTreeMap<i32, String> = brokers
            .iter()
            .filter_map(|b| b.rack.clone().map(|r| (b.id, r)))
            .collect();
        let rack_aware =
            racks.len() == ids.len() && racks.values().collect::<BTreeSet<_>>().len() > 1;
        State {
            ids,
            racks,
            rack_aware,
            assignment: current.clone(),
        }
    }

    fn is_target(&self, b: i32) -> bool {
        self.ids.binary_search(&b).is_ok()
    }

    fn replica_counts(&self) -> BTreeMap<i32, usize> {
        let mut counts: BTreeMap<i32, usize> = self.ids.iter().map(|&b| (b, 0)).collect();
        for b in self.assignment.values().flatten() {
            if let Some(n) = counts.get_mut(b) {
                *n += 1;
            }
        }
        counts
    }

    fn leader_counts(&self) -> BTreeMap<i32, usize> {
        let mut counts: BTreeMap<i32, usize> = self.ids.iter().map(|&b| (b, 0)).collect();
        for replicas in self.assignment.values() {
            if let Some(n) = replicas.first().and_then(|b| counts.get_mut(b)) {
                *n += 1;
            }
        }
        counts
    }

    fn distinct_racks(&self, replicas: &[i32]) -> usize {
        replicas
            .iter()
            .filter_map(|b| self.racks.get(b))
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Whether replacing `out` by `inn` in `replicas` keeps racks at least as diverse.
    fn rack_ok(&self, replicas: &[i32], out: i32, inn: i32) -> bool {
        if !self.rack_aware {
            return true;
        }
        let after: Vec<i32> = replicas
            .iter()
            .map(|&b| if b == out { inn } else { b })
            .collect();
        self.distinct_racks(&after) >= self.distinct_racks(replicas)
    }

    /// Every replica on a broker outside the target set goes to a target broker the
    /// partition does not use yet: a new rack first, then the broker with the fewest
    /// replicas. It takes the leaving replica's position, so a leaving preferred leader is
    /// replaced as preferred leader (leader balancing comes after).
    fn evacuate(&mut self) {
        let partitions: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        for tp in partitions {
            let replicas = self.assignment[&tp].clone();
            if replicas.len() > self.ids.len() {
                continue;
            }
            for (pos, &b) in replicas.iter().enumerate() {
                if self.is_target(b) {
                    continue;
                }
                let counts = self.replica_counts();
                let now = self.assignment[&tp].clone();
                let used_racks: BTreeSet<&String> = now
                    .iter()
                    .filter(|&&r| r != b)
                    .filter_map(|r| self.racks.get(r))
                    .collect();
                let choice = self
                    .ids
                    .iter()
                    .copied()
                    .filter(|c| !now.contains(c))
                    .min_by_key(|c| {
                        let new_rack = self.rack_aware
                            && self.racks.get(c).is_some_and(|r| !used_racks.contains(r));
                        (!new_rack, counts[c], *c)
                    });
                if let Some(c) = choice {
                    if let Some(slot) = self.assignment.get_mut(&tp) {
                        slot[pos] = c;
                    }
                }
            }
        }
    }

    /// Moves single replicas from the most to the least loaded brokers until the counts
    /// differ by at most one. Each step moves exactly one replica, and only where racks
    /// stay as diverse, so the movement is the least the evening needs.
    fn balance_replicas(&mut self) {
        // Each step lowers the spread, so the total replica count bounds the steps.
        let bound = self.assignment.values().map(Vec::len).sum::<usize>() + 1;
        for _ in 0..bound {
            let counts = self.replica_counts();
            let Some(step) = self.replica_step(&counts) else {
                return;
            };
            let (tp, out, inn) = step;
            if let Some(replicas) = self.assignment.get_mut(&tp) {
                for b in replicas.iter_mut() {
                    if *b == out {
                        *b = inn;
                    }
                }
            }
        }
    }

    /// The next single-replica move: from a broker holding more than the fair share to one
    /// holding less, on a partition that has the first and not the second. Followers are
    /// taken before preferred leaders, so leadership changes hands less.
    fn replica_step(&self, counts: &BTreeMap<i32, usize>) -> Option<(TopicPartition, i32, i32)> {
        let max = *counts.values().max()?;
        let min = *counts.values().min()?;
        if max <= min + 1 {
            return None;
        }
        let mut heavy: Vec<i32> = counts
            .iter()
            .filter(|(_, &n)| n > min + 1)
            .map(|(&b, _)| b)
            .collect();
        heavy.sort_by_key(|b| (std::cmp::Reverse(counts[b]), *b));
        let mut light: Vec<i32> = counts
            .iter()
            .filter(|(_, &n)| n + 1 < max)
            .map(|(&b, _)| b)
            .collect();
        light.sort_by_key(|b| (counts[b], *b));
        for &out in &heavy {
            for &inn in &light {
                if counts[&out] <= counts[&inn] + 1 {
                    continue;
                }
                for lead_ok in [false, true] {
                    let found = self.assignment.iter().find(|(_, r)| {
                        let pos = r.iter().position(|&b| b == out);
                        pos.is_some_and(|p| (p == 0) == lead_ok)
                            && !r.contains(&inn)
                            && self.rack_ok(r, out, inn)
                    });
                    if let Some((tp, _)) = found {
                        return Some((tp.clone(), out, inn));
                    }
                }
            }
        }
        None
    }

    /// Evens out preferred leaders by reordering replicas within partitions: no data moves.
    fn balance_leaders(&mut self) {
        let bound = self.assignment.len() + 1;
        for _ in 0..bound {
            let counts = self.leader_counts();
            let Some((tp, inn)) = self.leader_step(&counts) else {
                return;
            };
            if let Some(replicas) = self.assignment.get_mut(&tp) {
                if let Some(pos) = replicas.iter().position(|&b| b == inn) {
                    replicas.swap(0, pos);
                }
            }
        }
    }

    fn leader_step(&self, counts: &BTreeMap<i32, usize>) -> Option<(TopicPartition, i32)> {
        let max = *counts.values().max()?;
        let min = *counts.values().min()?;
        if max <= min + 1 {
            return None;
        }
        let mut heavy: Vec<i32> = counts
            .iter()
            .filter(|(_, &n)| n > min + 1)
            .map(|(&b, _)| b)
            .collect();
        heavy.sort_by_key(|b| (std::cmp::Reverse(counts[b]), *b));
        for out in heavy {
            let best = self
                .assignment
                .iter()
                .filter(|(_, r)| r.first() == Some(&out))
                .flat_map(|(tp, r)| r.iter().skip(1).map(move |&b| (tp, b)))
                .filter(|(_, b)| counts.get(b).is_some_and(|&n| n + 1 < counts[&out]))
                .min_by_key(|(tp, b)| (counts[b], *b, (*tp).clone()));
            if let Some((tp, b)) = best {
                return Some((tp.clone(), b));
            }
        }
        None
    }
}

/// Applies moves to an assignment (what it will be once they are done).
pub fn apply_moves(current: &Assignment, moves: &[Move]) -> Assignment {
    let mut next = current.clone();
    for m in moves {
        next.insert(m.partition.clone(), m.to.clone());
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(ids: &[i32]) -> Vec<Broker> {
        ids.iter().map(|&id| Broker { id, rack: None }).collect()
    }

    fn racked(ids: &[(i32, &str)]) -> Vec<Broker> {
        ids.iter()
            .map(|&(id, r)| Broker {
                id,
                rack: Some(r.to_string()),
            })
            .collect()
    }

    /// `topics` topics of `partitions` partitions at `rf`, placed round-robin on `on`
    /// as Kafka's placement would.
    fn round_robin(topics: usize, partitions: i32, rf: usize, on: &[i32]) -> Assignment {
        let mut a = Assignment::new();
        let mut start = 0;
        for t in 0..topics {
            for p in 0..partitions {
                let replicas = (0..rf).map(|i| on[(start + i) % on.len()]).collect();
                a.insert(TopicPartition::new(&format!("t{t}"), p), replicas);
                start += 1;
            }
        }
        a
    }

    fn replica_counts(a: &Assignment) -> BTreeMap<i32, usize> {
        let mut c = BTreeMap::new();
        for b in a.values().flatten() {
            *c.entry(*b).or_default() += 1;
        }
        c
    }

    fn leader_counts(a: &Assignment) -> BTreeMap<i32, usize> {
        let mut c = BTreeMap::new();
        for r in a.values() {
            *c.entry(r[0]).or_default() += 1;
        }
        c
    }

    fn spread(c: &BTreeMap<i32, usize>, ids: &[i32]) -> usize {
        let v: Vec<usize> = ids.iter().map(|b| c.get(b).copied().unwrap_or(0)).collect();
        v.iter().max().unwrap() - v.iter().min().unwrap()
    }

    fn replicas_moved(moves: &[Move]) -> usize {
        moves.iter().map(|m| m.adding().len()).sum()
    }

    fn assert_valid(a: &Assignment, rf: usize) {
        for (tp, r) in a {
            let set: BTreeSet<_> = r.iter().collect();
            assert_eq!(set.len(), rf, "{tp}: {r:?} keeps its RF without duplicates");
        }
    }

    #[test]
    fn scale_up_three_to_five_spreads_replicas_and_leaders_evenly() {
        let current = round_robin(4, 25, 3, &[0, 1, 2]);
        let moves = plan(&brokers(&[0, 1, 2, 3, 4]), &current);
        let after = apply_moves(&current, &moves);
        assert_valid(&after, 3);
        assert!(spread(&replica_counts(&after), &[0, 1, 2, 3, 4]) <= 1);
        assert!(spread(&leader_counts(&after), &[0, 1, 2, 3, 4]) <= 1);
        // 300 replicas on 5 brokers: 60 each, so exactly 120 replicas must move, no more.
        assert_eq!(replicas_moved(&moves), 120);
        // Planning again on the result finds nothing to do.
        assert!(plan(&brokers(&[0, 1, 2, 3, 4]), &after).is_empty());
    }

    #[test]
    fn a_balanced_cluster_needs_no_moves() {
        let current = round_robin(2, 12, 3, &[0, 1, 2, 3]);
        assert!(plan(&brokers(&[0, 1, 2, 3]), &current).is_empty());
    }

    #[test]
    fn preferred_leaders_are_balanced_by_reordering_without_moving_data() {
        // Every partition led by broker 0, replicas already even.
        let mut current = Assignment::new();
        for p in 0..6 {
            current.insert(TopicPartition::new("t", p), vec![0, 1, 2]);
        }
        let moves = plan(&brokers(&[0, 1, 2]), &current);
        assert!(moves.iter().all(Move::is_reorder));
        let after = apply_moves(&current, &moves);
        assert_eq!(
            leader_counts(&after),
            BTreeMap::from([(0, 2), (1, 2), (2, 2)])
        );
    }

    #[test]
    fn rack_aware_placement_keeps_one_replica_per_rack() {
        // Racks a, b, c on 0..2; the new brokers 3 (rack a) and 4 (rack b).
        let all = racked(&[(0, "a"), (1, "b"), (2, "c"), (3, "a"), (4, "b"), (5, "c")]);
        let current = round_robin(3, 20, 3, &[0, 1, 2]);
        let moves = plan(&all, &current);
        let after = apply_moves(&current, &moves);
        let rack = |b: i32| all.iter().find(|x| x.id == b).unwrap().rack.clone();
        for (tp, r) in &after {
            let racks: BTreeSet<_> = r.iter().map(|&b| rack(b)).collect();
            assert_eq!(racks.len(), 3, "{tp}: {r:?} spans three racks");
        }
        assert!(spread(&replica_counts(&after), &[0, 1, 2, 3, 4, 5]) <= 1);
    }

    #[test]
    fn draining_a_broker_prefers_a_rack_the_partition_lacks() {
        let all = racked(&[(0, "a"), (1, "b"), (2, "a"), (3, "c")]);
        let mut current = Assignment::new();
        // Broker 4 (gone from the target set) is the partition's only rack-c replica.
        current.insert(TopicPartition::new("t", 0), vec![4, 0, 1]);
        let moves = plan(&all, &current);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].to[0], 3, "rack c goes to broker 3: {:?}", moves[0]);
    }

    #[test]
    fn draining_five_to_three_preserves_every_replication_factor() {
        let current = round_robin(3, 30, 3, &[0, 1, 2, 3, 4]);
        let keep = [0, 1, 2];
        assert!(blocked_topics(&current, keep.len()).is_empty());
        let moves = plan(&brokers(&keep), &current);
        let after = apply_moves(&current, &moves);
        assert_valid(&after, 3);
        let kept: BTreeSet<i32> = keep.into_iter().collect();
        assert_eq!(replicas_outside(&after, &kept), 0);
        assert!(replicas_outside(&current, &kept) > 0);
        // Every replica on 3 or 4 moved; the ones on 0..2 stayed.
        assert_eq!(
            replicas_moved(&moves),
            replicas_outside(&current, &kept),
            "only the leaving replicas move"
        );
        assert!(spread(&leader_counts(&after), &keep) <= 1);
    }

    #[test]
    fn scale_down_is_blocked_by_a_topic_whose_rf_exceeds_the_remaining_brokers() {
        let mut current = round_robin(1, 3, 3, &[0, 1, 2, 3, 4]);
        current.insert(TopicPartition::new("wide", 0), vec![0, 1, 2, 3, 4]);
        current.insert(TopicPartition::new("wide", 1), vec![1, 2, 3, 4, 0]);
        assert_eq!(blocked_topics(&current, 3), vec!["wide".to_string()]);
        assert!(blocked_topics(&current, 5).is_empty());
        // The planner leaves such partitions alone rather than dropping a replica.
        let moves = plan(&brokers(&[0, 1, 2]), &current);
        assert!(moves.iter().all(|m| m.partition.topic != "wide"));
    }

    #[test]
    fn batch_by_batch_application_converges() {
        // The reconcile re-plans after each batch; that must reach a fixpoint.
        let target = brokers(&[0, 1, 2, 3]);
        let mut current = round_robin(5, 16, 2, &[0, 1, 2, 3, 4, 5]);
        for _ in 0..100 {
            let moves = plan(&target, &current);
            if moves.is_empty() {
                let ids = [0, 1, 2, 3];
                assert!(spread(&replica_counts(&current), &ids) <= 1);
                assert_eq!(replicas_outside(&current, &ids.into_iter().collect()), 0);
                return;
            }
            let batch: Vec<Move> = moves.into_iter().take(5).collect();
            current = apply_moves(&current, &batch);
        }
        panic!("re-planning after each batch did not converge");
    }

    fn led(leader: i32, isr: &[i32]) -> Leadership {
        Leadership {
            leader: (leader >= 0).then_some(leader),
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn elections_are_asked_only_where_a_live_in_sync_preferred_replica_does_not_lead() {
        let tp = |p| TopicPartition::new("t", p);
        let mut assignment: Assignment = (0..7).map(|p| (tp(p), vec![3, 0, 1])).collect();
        assignment.insert(tp(4), vec![4, 0, 1]);
        let leaders: Leaders = [
            // Led by its preferred replica already.
            (tp(0), led(3, &[3, 0, 1])),
            // Led elsewhere, preferred in sync: elect.
            (tp(1), led(0, &[0, 1, 3])),
            // Preferred not yet in the ISR (still catching up): Kafka would refuse.
            (tp(2), led(0, &[0, 1])),
            // No leader at all, preferred in sync: elect.
            (tp(3), led(-1, &[3])),
            // Preferred (4) still listed in the ISR but its broker fenced.
            (tp(4), led(0, &[0, 1, 4])),
            // Being moved: its replica list is the target, not what runs.
            (tp(5), led(0, &[0, 1, 3])),
            // tp(6): Metadata did not report it (deleted meanwhile).
        ]
        .into();
        let live: BTreeSet<i32> = [0, 1, 3].into();
        let in_flight = BTreeSet::from([tp(5)]);
        assert_eq!(
            preferred_elections(&assignment, &leaders, &live, &in_flight),
            vec![tp(1), tp(3)]
        );
        let without_3: BTreeSet<i32> = [0, 1].into();
        assert_eq!(
            preferred_elections(&assignment, &leaders, &without_3, &in_flight),
            Vec::<TopicPartition>::new(),
            "a preferred replica that is not live is never asked to lead"
        );
    }
}
