//! The pure decision of a topic reconcile: what the spec asks for against what the
//! brokers have, as the calls to make and the differences the operator will not make.

use std::collections::{BTreeMap, BTreeSet};

use strom_client::admin::ConfigOp;

use crate::cluster::config::scalar;
use crate::rebalance::kafka::{FOLLOWER_REPLICAS, LEADER_REPLICAS};
use crate::rebalance::plan::{Assignment, Move};

/// Topic configs another part of the operator owns: the scale step sets the throttled
/// replica lists on the topics it moves, and reverting them as drift would unthrottle a
/// reassignment half way. A spec that names them still wins.
const FOREIGN_KEYS: &[&str] = &[LEADER_REPLICAS, FOLLOWER_REPLICAS];

/// The topic as the spec wants it, configs already as strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub name: String,
    pub partitions: i32,
    pub replicas: i32,
    pub config: BTreeMap<String, String>,
}

/// The topic as the brokers have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub topic_id: String,
    pub partitions: i32,
    pub replicas: i32,
    /// Only the values set on the topic itself.
    pub config: BTreeMap<String, String>,
}

/// One call to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Create {
        partitions: i32,
        replicas: i32,
        config: BTreeMap<String, String>,
    },
    /// Grow to this many partitions in total.
    AddPartitions { total: i32 },
    /// Sets and deletes, in key order.
    AlterConfig(Vec<ConfigOp>),
}

/// A difference the operator reports instead of acting on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub refusals: Vec<Refusal>,
    /// The replication factor the topic has and the one the spec asks for, when they
    /// differ: a partition reassignment, made apart from the steps (`replication_moves`).
    pub replication: Option<(i32, i32)>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty()
    }
}

pub const PARTITION_DECREASE: &str = "PartitionDecrease";
/// The replication factor cannot be changed (too few live brokers, or Kafka refused).
pub const REPLICATION_FACTOR_CHANGE: &str = "ReplicationFactorChange";
/// A reassignment that changes the replication factor is under way.
pub const REPLICATION_FACTOR_CHANGING: &str = "ReplicationFactorChanging";
pub const INVALID_CONFIG_VALUE: &str = "InvalidConfigValue";

/// The spec's configs as Kafka strings: numbers and booleans in their JSON form. Lists,
/// objects and nulls are refused, as for a KafkaCluster's config.
pub fn config_strings(
    config: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, Refusal> {
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    for (key, value) in config {
        match scalar(value) {
            Some(v) => {
                out.insert(key.clone(), v);
            }
            None => bad.push(key.as_str()),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(Refusal {
            reason: INVALID_CONFIG_VALUE,
            message: format!(
                "config {} must be a string, number or boolean",
                bad.join(", ")
            ),
        })
    }
}

/// The steps that bring `observed` (None: the topic does not exist) to `desired`.
pub fn plan(desired: &Desired, observed: Option<&Observed>) -> Plan {
    let Some(observed) = observed else {
        return Plan {
            steps: vec![Step::Create {
                partitions: desired.partitions,
                replicas: desired.replicas,
                config: desired.config.clone(),
            }],
            refusals: Vec::new(),
            replication: None,
        };
    };
    let mut plan = Plan::default();
    if desired.partitions > observed.partitions {
        plan.steps.push(Step::AddPartitions {
            total: desired.partitions,
        });
    } else if desired.partitions < observed.partitions {
        plan.refusals.push(Refusal {
            reason: PARTITION_DECREASE,
            message: format!(
                "topic {} has {} partitions; Kafka cannot decrease them to {}",
                desired.name, observed.partitions, desired.partitions
            ),
        });
    }
    if desired.replicas != observed.replicas {
        plan.replication = Some((observed.replicas, desired.replicas));
    }
    let ops = config_ops(&desired.config, &observed.config);
    if !ops.is_empty() {
        plan.steps.push(Step::AlterConfig(ops));
    }
    plan
}

/// SET for every key whose value differs or is missing, DELETE for every key set on the
/// topic that the spec does not name (drift is reverted), except the keys others own.
/// The reassignment that gives every partition of `topic` `replicas` replicas. Each
/// partition keeps its replicas in order, so its preferred leader (the first) stays. An
/// increase adds the live brokers holding the fewest replicas in the whole cluster (then
/// the lowest id); a decrease drops replicas from the end, those on brokers that are not
/// live first. Partitions that already have `replicas` replicas do not move.
pub fn replication_moves(
    topic: &str,
    assignment: &Assignment,
    live: &BTreeSet<i32>,
    replicas: i32,
) -> Result<Vec<Move>, Refusal> {
    let target = usize::try_from(replicas).unwrap_or(0).max(1);
    if target > live.len() {
        return Err(Refusal {
            reason: REPLICATION_FACTOR_CHANGE,
            message: format!(
                "topic {topic} cannot have replication factor {replicas}: {} brokers are live",
                live.len()
            ),
        });
    }
    let mut load: BTreeMap<i32, usize> = live.iter().map(|&b| (b, 0)).collect();
    for brokers in assignment.values() {
        for b in brokers {
            if let Some(n) = load.get_mut(b) {
                *n += 1;
            }
        }
    }
    let mut moves = Vec::new();
    for (tp, from) in assignment.iter().filter(|(tp, _)| tp.topic == topic) {
        let mut to = from.clone();
        while to.len() > target {
            let drop_at = (1..to.len())
                .rev()
                .find(|&i| !live.contains(&to[i]))
                .unwrap_or(to.len() - 1);
            let gone = to.remove(drop_at);
            if let Some(n) = load.get_mut(&gone) {
                *n = n.saturating_sub(1);
            }
        }
        while to.len() < target {
            let Some((&add, _)) = load
                .iter()
                .filter(|(b, _)| !to.contains(b))
                .min_by_key(|(&b, &n)| (n, b))
            else {
                break;
            };
            to.push(add);
            if let Some(n) = load.get_mut(&add) {
                *n += 1;
            }
        }
        if to != *from {
            moves.push(Move {
                partition: tp.clone(),
                from: from.clone(),
                to,
            });
        }
    }
    Ok(moves)
}

pub fn config_ops(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> Vec<ConfigOp> {
    let sets = desired
        .iter()
        .filter(|(k, v)| observed.get(*k) != Some(*v))
        .map(|(k, v)| ConfigOp::Set {
            key: k.clone(),
            value: v.clone(),
        });
    let deletes = observed
        .keys()
        .filter(|k| !desired.contains_key(*k) && !FOREIGN_KEYS.contains(&k.as_str()))
        .map(|k| ConfigOp::Delete { key: k.clone() });
    let mut ops: Vec<ConfigOp> = sets.chain(deletes).collect();
    ops.sort_by(|a, b| op_key(a).cmp(op_key(b)));
    ops
}

fn op_key(op: &ConfigOp) -> &str {
    match op {
        ConfigOp::Set { key, .. } | ConfigOp::Delete { key } => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rebalance::plan::TopicPartition;
    use serde_json::json;

    fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn desired(partitions: i32, replicas: i32, config: &[(&str, &str)]) -> Desired {
        Desired {
            name: "orders".into(),
            partitions,
            replicas,
            config: strings(config),
        }
    }

    fn observed(partitions: i32, replicas: i32, config: &[(&str, &str)]) -> Observed {
        Observed {
            topic_id: "id".into(),
            partitions,
            replicas,
            config: strings(config),
        }
    }

    fn set(k: &str, v: &str) -> ConfigOp {
        ConfigOp::Set {
            key: k.into(),
            value: v.into(),
        }
    }

    fn delete(k: &str) -> ConfigOp {
        ConfigOp::Delete { key: k.into() }
    }

    #[test]
    fn a_missing_topic_is_created_with_its_configs() {
        let d = desired(6, 3, &[("retention.ms", "1000")]);
        assert_eq!(
            plan(&d, None),
            Plan {
                steps: vec![Step::Create {
                    partitions: 6,
                    replicas: 3,
                    config: strings(&[("retention.ms", "1000")]),
                }],
                refusals: vec![],
                replication: None,
            }
        );
    }

    #[test]
    fn a_topic_in_sync_needs_nothing() {
        let d = desired(6, 3, &[("retention.ms", "1000")]);
        let p = plan(&d, Some(&observed(6, 3, &[("retention.ms", "1000")])));
        assert!(p.is_noop());
        assert!(p.refusals.is_empty());
    }

    #[test]
    fn partitions_grow() {
        let p = plan(&desired(8, 3, &[]), Some(&observed(6, 3, &[])));
        assert_eq!(p.steps, vec![Step::AddPartitions { total: 8 }]);
        assert!(p.refusals.is_empty());
    }

    #[test]
    fn a_partition_decrease_is_reported_not_attempted() {
        let p = plan(
            &desired(2, 3, &[("retention.ms", "5")]),
            Some(&observed(6, 3, &[])),
        );
        // The config change still goes ahead.
        assert_eq!(
            p.steps,
            vec![Step::AlterConfig(vec![set("retention.ms", "5")])]
        );
        assert_eq!(p.refusals.len(), 1);
        assert_eq!(p.refusals[0].reason, PARTITION_DECREASE);
        assert!(p.refusals[0].message.contains("has 6 partitions"));
    }

    #[test]
    fn a_replication_factor_change_is_planned_apart() {
        let p = plan(&desired(8, 2, &[]), Some(&observed(6, 3, &[])));
        assert_eq!(p.steps, vec![Step::AddPartitions { total: 8 }]);
        assert!(p.refusals.is_empty());
        assert_eq!(p.replication, Some((3, 2)));
        assert_eq!(
            plan(&desired(8, 3, &[]), Some(&observed(6, 3, &[]))).replication,
            None
        );
    }

    #[test]
    fn a_decrease_and_a_replication_change_at_once() {
        let p = plan(&desired(1, 1, &[]), Some(&observed(6, 3, &[])));
        assert!(p.is_noop());
        assert_eq!(
            p.refusals.iter().map(|r| r.reason).collect::<Vec<_>>(),
            vec![PARTITION_DECREASE]
        );
        assert_eq!(p.replication, Some((3, 1)));
    }

    fn assignment(rows: &[(&str, i32, &[i32])]) -> Assignment {
        rows.iter()
            .map(|(t, p, r)| (TopicPartition::new(t, *p), r.to_vec()))
            .collect()
    }

    fn targets(moves: &[Move]) -> Vec<(i32, Vec<i32>)> {
        moves
            .iter()
            .map(|m| (m.partition.partition, m.to.clone()))
            .collect()
    }

    #[test]
    fn an_increase_adds_the_least_loaded_live_brokers_and_keeps_the_leader_first() {
        let a = assignment(&[
            ("orders", 0, &[1]),
            ("orders", 1, &[2]),
            ("orders", 2, &[3]),
            // Broker 1 is the busiest elsewhere.
            ("other", 0, &[1, 2]),
            ("other", 1, &[1, 3]),
        ]);
        let live = BTreeSet::from([1, 2, 3, 4]);
        let moves = replication_moves("orders", &a, &live, 2).expect("moves");
        assert_eq!(
            targets(&moves),
            vec![(0, vec![1, 4]), (1, vec![2, 4]), (2, vec![3, 2])]
        );
        assert!(moves.iter().all(|m| m.partition.topic == "orders"));
        assert_eq!(moves[0].from, vec![1]);
    }

    #[test]
    fn a_decrease_drops_from_the_end_dead_brokers_first() {
        let a = assignment(&[("orders", 0, &[1, 2, 3]), ("orders", 1, &[2, 5, 1])]);
        let live = BTreeSet::from([1, 2, 3]);
        let moves = replication_moves("orders", &a, &live, 2).expect("moves");
        assert_eq!(targets(&moves), vec![(0, vec![1, 2]), (1, vec![2, 1])]);
    }

    #[test]
    fn partitions_at_the_target_do_not_move_and_too_few_brokers_refuse() {
        let a = assignment(&[("orders", 0, &[1, 2]), ("orders", 1, &[2])]);
        let live = BTreeSet::from([1, 2]);
        let moves = replication_moves("orders", &a, &live, 2).expect("moves");
        assert_eq!(targets(&moves), vec![(1, vec![2, 1])]);
        let refused = replication_moves("orders", &a, &live, 3).expect_err("refused");
        assert_eq!(refused.reason, REPLICATION_FACTOR_CHANGE);
        assert!(
            refused.message.contains("2 brokers are live"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn configs_are_set_changed_and_drift_deleted_in_key_order() {
        let d = desired(
            6,
            3,
            &[
                ("retention.ms", "1000"),
                ("cleanup.policy", "compact"),
                ("segment.bytes", "1048576"),
            ],
        );
        let o = observed(
            6,
            3,
            &[
                ("retention.ms", "999"),
                ("segment.bytes", "1048576"),
                ("max.message.bytes", "5"),
            ],
        );
        assert_eq!(
            plan(&d, Some(&o)).steps,
            vec![Step::AlterConfig(vec![
                set("cleanup.policy", "compact"),
                delete("max.message.bytes"),
                set("retention.ms", "1000"),
            ])]
        );
    }

    #[test]
    fn throttle_lists_the_scale_step_sets_are_not_drift() {
        let o = observed(
            6,
            3,
            &[(LEADER_REPLICAS, "0:1"), (FOLLOWER_REPLICAS, "0:2")],
        );
        assert!(plan(&desired(6, 3, &[]), Some(&o)).is_noop());
        // Named in the spec, the spec's value wins.
        let d = desired(6, 3, &[(LEADER_REPLICAS, "*")]);
        assert_eq!(
            plan(&d, Some(&o)).steps,
            vec![Step::AlterConfig(vec![set(LEADER_REPLICAS, "*")])]
        );
    }

    #[test]
    fn json_values_compare_as_kafka_strings() {
        let spec = BTreeMap::from([
            ("retention.ms".to_string(), json!(604800000)),
            ("unclean.leader.election.enable".to_string(), json!(false)),
            ("min.cleanable.dirty.ratio".to_string(), json!(0.5)),
            ("cleanup.policy".to_string(), json!("compact,delete")),
        ]);
        let config = config_strings(&spec).expect("scalars");
        assert_eq!(
            config,
            strings(&[
                ("cleanup.policy", "compact,delete"),
                ("min.cleanable.dirty.ratio", "0.5"),
                ("retention.ms", "604800000"),
                ("unclean.leader.election.enable", "false"),
            ])
        );
        let d = Desired {
            name: "orders".into(),
            partitions: 1,
            replicas: 1,
            config,
        };
        let o = observed(
            1,
            1,
            &[
                ("cleanup.policy", "compact,delete"),
                ("min.cleanable.dirty.ratio", "0.5"),
                ("retention.ms", "604800000"),
                ("unclean.leader.election.enable", "false"),
            ],
        );
        assert!(plan(&d, Some(&o)).is_noop());
    }

    #[test]
    fn non_scalar_config_values_are_refused() {
        let spec = BTreeMap::from([
            ("a".to_string(), json!(["x"])),
            ("b".to_string(), json!({"x": 1})),
            ("c".to_string(), json!(null)),
            ("d".to_string(), json!("fine")),
        ]);
        let refusal = config_strings(&spec).expect_err("refused");
        assert_eq!(refusal.reason, INVALID_CONFIG_VALUE);
        assert_eq!(
            refusal.message,
            "config a, b, c must be a string, number or boolean"
        );
    }
}
