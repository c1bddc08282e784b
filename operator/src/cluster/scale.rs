//! The scale step of a KafkaCluster reconcile: decides the StatefulSet's size and drives
//! the partition moves a scale needs, one batch per reconcile at most. The decisions are
//! in `crate::rebalance` (plan, batch, progress); this reads the facts, takes the one step
//! they call for, and reports it in `status.scaling`, Events and logs.
//!
//! Annotations on the KafkaCluster:
//! - `kafka.strom.dev/rebalance: paused` — no new batch of moves starts (moves in flight
//!   finish). A scale-down stays held at its current size meanwhile.
//! - `kafka.strom.dev/rebalance: approve` — moves start only once
//!   `kafka.strom.dev/rebalance-approved` equals `status.scaling.id` (e.g. `3to5`), so
//!   each scale is approved on its own after its plan is shown.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::events::EventType;
use kube::ResourceExt;
use strom_client::Security;

use super::names;
use super::validate::Problem;
use crate::access::Brokers;
use crate::crd::cluster::ScalingStatus;
use crate::crd::KafkaCluster;
use crate::metrics::Metrics;
use crate::rebalance::batch::{self, DEFAULT_BATCH_SIZE};
use crate::rebalance::kafka::ClusterAdmin;
use crate::rebalance::plan::{self, Broker};
use crate::rebalance::progress::{self, BrokerFacts, Gate, Refusal, Step};

pub const REBALANCE_ANNOTATION: &str = "kafka.strom.dev/rebalance";
pub const APPROVED_ANNOTATION: &str = "kafka.strom.dev/rebalance-approved";
/// Default replication throttle while partitions move: 50 MiB/s per broker.
pub const DEFAULT_THROTTLE: u64 = 50 * 1024 * 1024;

/// What the scale step decided for this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The size to render the StatefulSet (and the per-broker ConfigMap entries) with.
    pub brokers: i32,
    pub scaling: Option<ScalingStatus>,
    /// A refused scale-down, for the Warning condition.
    pub warning: Option<Problem>,
    /// Whether a scale is under way (the reconcile checks back soon).
    pub active: bool,
    /// Events to record: type, reason, note.
    pub events: Vec<(EventType, &'static str, String)>,
}

/// The gate the annotations set for the scale `id`. An unknown value holds the moves, so
/// a typo never starts a rebalance someone meant to stop.
pub fn gate(annotations: &BTreeMap<String, String>, id: &str) -> Gate {
    match annotations.get(REBALANCE_ANNOTATION).map(String::as_str) {
        None | Some("") | Some("auto") => Gate::Auto,
        Some("approve") => {
            if annotations.get(APPROVED_ANNOTATION).map(String::as_str) == Some(id) {
                Gate::Auto
            } else {
                Gate::AwaitingApproval
            }
        }
        Some(_) => Gate::Paused,
    }
}

/// Addresses to ask: every broker's stable DNS name on the inter-broker listener, voters
/// first (they are never removed).
pub fn bootstrap(cluster: &KafkaCluster, brokers: i32) -> Vec<String> {
    let name = cluster.name_any();
    let ns = names::namespace(cluster);
    (0..brokers.max(1))
        .map(|i| {
            format!(
                "{}:{}",
                names::pod_dns(&name, &ns, i),
                names::REPLICATION_PORT
            )
        })
        .collect()
}

/// Runs the step. Broker errors do not fail the reconcile (the other objects still get
/// applied); they show as phase `Unreachable` and the step is tried again soon.
pub async fn step(
    cluster: &KafkaCluster,
    live_set: Option<&StatefulSet>,
    admin: &dyn ClusterAdmin,
    security: &Security,
    metrics: &Metrics,
) -> Outcome {
    let key = format!("{}/{}", names::namespace(cluster), cluster.name_any());
    let out = take_step(cluster, live_set, admin, security, metrics, &key).await;
    metrics.set_scale_in_progress(&key, out.scaling.is_some());
    out
}

async fn take_step(
    cluster: &KafkaCluster,
    live_set: Option<&StatefulSet>,
    admin: &dyn ClusterAdmin,
    security: &Security,
    metrics: &Metrics,
    key: &str,
) -> Outcome {
    let spec = cluster.spec.replicas;
    let current = live_set
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    let previous = cluster.status.as_ref().and_then(|s| s.scaling.clone());
    if !progress::needs_brokers(spec, current, previous.is_some()) {
        let decision = progress::decide(spec, current, None, Gate::Auto);
        return Outcome {
            brokers: decision.stateful_set_replicas,
            scaling: None,
            warning: None,
            active: false,
            events: Vec::new(),
        };
    }
    let current = current.unwrap_or(spec);
    let from = previous.as_ref().map_or(current, |p| p.from);
    let id = format!("{from}to{spec}");
    let gate = gate(cluster.annotations(), &id);
    let addresses = Brokers {
        addresses: bootstrap(cluster, current.max(spec)),
        security: security.clone(),
    };
    let mut scaling = ScalingStatus {
        id: id.clone(),
        from,
        to: spec,
        ..ScalingStatus::default()
    };
    if let Some(p) = previous.as_ref().filter(|p| p.id == id) {
        scaling.moves_done = p.moves_done;
        scaling.moves_total = p.moves_total;
        scaling.throttled_topics = p.throttled_topics.clone();
    } else if let Some(p) = &previous {
        // The target changed mid-way: throttles set for the old plan still need removing.
        scaling.throttled_topics = p.throttled_topics.clone();
    }

    let view = match admin.describe(&addresses).await {
        Ok(view) => view,
        Err(e) => {
            tracing::warn!(cluster = %cluster.name_any(), error = %e, "scale: brokers unreachable");
            let decision = progress::decide(spec, Some(current), None, gate);
            let mut out = Outcome {
                brokers: decision.stateful_set_replicas,
                scaling: None,
                warning: None,
                active: true,
                events: Vec::new(),
            };
            match &decision.step {
                Step::Grow => scaling.phase = "Growing".into(),
                // The voters' refusal needs no broker to decide.
                Step::Refused(refusal) => refuse(
                    refusal,
                    spec,
                    previous.as_ref(),
                    &mut scaling,
                    &mut out,
                    &cluster.name_any(),
                ),
                _ => scaling.phase = "Unreachable".into(),
            }
            if scaling.phase != "Refused" {
                scaling.message = Some(e.to_string());
            }
            out.scaling = Some(scaling);
            return out;
        }
    };

    // The reassignments listed last time and gone now have finished (or were cancelled,
    // which Kafka does not tell apart).
    if let Some(p) = &previous {
        let now: BTreeSet<String> = view.in_flight.iter().map(ToString::to_string).collect();
        let finished = p.in_flight.iter().filter(|tp| !now.contains(*tp)).count();
        metrics.partition_moves_completed(key, finished);
    }

    let keep: BTreeSet<i32> = (0..spec).collect();
    let targets: Vec<Broker> = keep
        .iter()
        .map(|&id| Broker {
            id,
            rack: view.brokers.get(&id).and_then(|b| b.rack.clone()),
        })
        .collect();
    let moves = plan::plan(&targets, &view.assignment);
    let facts = BrokerFacts {
        registered: view.brokers.iter().map(|(&b, s)| (b, s.fenced)).collect(),
        blocked_topics: if spec < current {
            plan::blocked_topics(&view.assignment, keep.len())
        } else {
            Vec::new()
        },
        replicas_on_leaving: plan::replicas_outside(&view.assignment, &keep),
        in_flight: view.in_flight.len(),
        planned_moves: moves.len(),
    };
    let decision = progress::decide(spec, Some(current), Some(&facts), gate);
    let remaining = (moves.len() + view.in_flight.len()) as i32;
    scaling.moves_total = scaling.moves_total.max(scaling.moves_done + remaining);
    scaling.moves_done = (scaling.moves_total - remaining).max(scaling.moves_done);
    scaling.in_flight = view.in_flight.iter().map(ToString::to_string).collect();

    let mut out = Outcome {
        brokers: decision.stateful_set_replicas,
        scaling: None,
        warning: None,
        active: true,
        events: Vec::new(),
    };
    let name = cluster.name_any();
    let settings = cluster.spec.rebalance.clone().unwrap_or_default();
    let batch_size = settings
        .batch_size
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_BATCH_SIZE);
    let rate = settings
        .throttle_bytes_per_second
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(DEFAULT_THROTTLE);

    // Throttles outlive nothing: once no move is in flight, the last batch's go.
    if view.in_flight.is_empty() && !scaling.throttled_topics.is_empty() {
        let brokers: BTreeSet<i32> = view.brokers.keys().copied().collect();
        match admin
            .clear_throttles(&addresses, &brokers, &scaling.throttled_topics)
            .await
        {
            Ok(()) => scaling.throttled_topics.clear(),
            Err(e) => {
                tracing::warn!(cluster = %name, error = %e, "scale: could not remove replication throttles")
            }
        }
    }

    // The moves put each partition's preferred leader first; without an election the
    // leadership only follows if the brokers' own leader rebalance runs (it may be off).
    let mut election_failed = None;
    if progress::elects_leaders(&decision.step) {
        let live = view.live_brokers();
        let elect =
            plan::preferred_elections(&view.assignment, &view.leaders, &live, &view.in_flight);
        if !elect.is_empty() {
            match admin.elect_preferred(&addresses, &elect).await {
                Ok(moved) => {
                    metrics.leader_election(key, true);
                    if !moved.is_empty() {
                        let names: Vec<String> = moved.iter().map(ToString::to_string).collect();
                        tracing::info!(cluster = %name, %id, partitions = ?names, "scale: preferred leaders elected");
                        out.events.push((
                            EventType::Normal,
                            "LeadersMoved",
                            leaders_moved_note(&names),
                        ));
                    }
                }
                Err(e) => {
                    // Leadership balance is worth a retry, not a failed reconcile: the
                    // next reconcile after the next batch (or the finished scale) asks again.
                    metrics.leader_election(key, false);
                    tracing::warn!(cluster = %name, error = %e, partitions = elect.len(), "scale: preferred leader election failed");
                    election_failed = Some(e.to_string());
                }
            }
        }
    }

    match &decision.step {
        Step::Done => {
            out.active = !scaling.throttled_topics.is_empty() || election_failed.is_some();
            if previous.is_some() && !out.active {
                tracing::info!(cluster = %name, %id, "scale finished");
                out.events.push((
                    EventType::Normal,
                    "ScaleDone",
                    format!("{} brokers, partitions balanced", spec),
                ));
            }
            out.scaling = out.active.then(|| {
                scaling.phase = "Moving".into();
                scaling.message = Some(match &election_failed {
                    Some(e) => format!("electing preferred leaders failed: {e}"),
                    None => "removing replication throttles".into(),
                });
                scaling
            });
            return out;
        }
        Step::Grow => {
            scaling.phase = "Growing".into();
            scaling.message = Some(format!("StatefulSet grows from {current} to {spec}"));
            out.events.push((
                EventType::Normal,
                "ScaleUp",
                scaling.message.clone().unwrap_or_default(),
            ));
        }
        Step::WaitForBrokers { missing } => {
            scaling.phase = "WaitingForBrokers".into();
            scaling.message = Some(format!(
                "waiting for brokers {missing:?} to register and catch up"
            ));
        }
        Step::BrokersUnknown => {
            scaling.phase = "Unreachable".into();
        }
        Step::WaitForMoves => {
            scaling.phase = if spec < current { "Draining" } else { "Moving" }.into();
            scaling.message = Some(format!(
                "{} partition moves in flight",
                view.in_flight.len()
            ));
        }
        Step::Held(Gate::Paused) => {
            scaling.phase = "Paused".into();
            scaling.message = Some(format!(
                "{} moves planned; held by {REBALANCE_ANNOTATION}",
                moves.len()
            ));
        }
        Step::Held(_) => {
            scaling.phase = "AwaitingApproval".into();
            scaling.message = Some(format!(
                "{} moves planned; set {APPROVED_ANNOTATION}={id} to start them",
                moves.len()
            ));
        }
        Step::MoveBatch => {
            let batch = batch::next_batch(&moves, &view.in_flight, batch_size);
            let result = start_batch(admin, &addresses, &batch, rate).await;
            scaling.phase = if spec < current { "Draining" } else { "Moving" }.into();
            match result {
                Ok(topics) => {
                    metrics.partition_moves_started(key, batch.len());
                    let started: Vec<String> =
                        batch.iter().map(|m| m.partition.to_string()).collect();
                    tracing::info!(cluster = %name, %id, partitions = ?started, "scale: batch of partition moves started");
                    out.events.push((
                        EventType::Normal,
                        "PartitionsMoving",
                        format!(
                            "moving {} partitions ({} of {} done): {}",
                            batch.len(),
                            scaling.moves_done,
                            scaling.moves_total,
                            started.join(", ")
                        ),
                    ));
                    scaling.in_flight = started;
                    scaling.throttled_topics = merge(&scaling.throttled_topics, &topics);
                    scaling.message = Some(format!("{} partition moves started", batch.len()));
                }
                Err(e) => {
                    tracing::warn!(cluster = %name, error = %e, "scale: could not start a batch");
                    scaling.message = Some(format!("starting moves failed: {e}"));
                }
            }
        }
        Step::Shrink => {
            scaling.phase = "Shrinking".into();
            scaling.message = Some(format!(
                "no replicas left on brokers {:?}; StatefulSet shrinks from {current} to {spec}",
                (spec..current).collect::<Vec<_>>()
            ));
            tracing::info!(cluster = %name, %id, "scale: drained, shrinking the StatefulSet");
            out.events.push((
                EventType::Normal,
                "ScaleDown",
                scaling.message.clone().unwrap_or_default(),
            ));
        }
        Step::WaitForRemovedBrokers { brokers } => {
            scaling.phase = "Unregistering".into();
            scaling.message = Some(format!("waiting for brokers {brokers:?} to stop"));
        }
        Step::Unregister { brokers } => {
            scaling.phase = "Unregistering".into();
            let mut failed = Vec::new();
            for &b in brokers {
                match admin.unregister(&addresses, b).await {
                    Ok(()) => {
                        tracing::info!(cluster = %name, broker = b, "scale: broker unregistered");
                        out.events.push((
                            EventType::Normal,
                            "BrokerUnregistered",
                            format!("broker {b} removed from the cluster metadata"),
                        ));
                    }
                    Err(e) => failed.push(format!("broker {b}: {e}")),
                }
            }
            scaling.message = Some(if failed.is_empty() {
                format!("unregistered brokers {brokers:?}")
            } else {
                format!("unregistering failed: {}", failed.join("; "))
            });
        }
        Step::Refused(refusal) => {
            refuse(
                refusal,
                spec,
                previous.as_ref(),
                &mut scaling,
                &mut out,
                &name,
            );
        }
    }
    out.scaling = Some(scaling);
    out
}

/// A refused scale-down: phase, message, the Warning condition, and a Warning Event when
/// the refusal is new (not on every resync).
fn refuse(
    refusal: &Refusal,
    spec: i32,
    previous: Option<&ScalingStatus>,
    scaling: &mut ScalingStatus,
    out: &mut Outcome,
    name: &str,
) {
    scaling.phase = "Refused".into();
    let message = match refusal {
        Refusal::VotersCannotBeRemoved { voters } => format!(
            "scale-down to {spec} refused: the first {voters} brokers are the controller quorum's voters and are never removed"
        ),
        Refusal::ReplicationFactor { topics } => {
            scaling.blocked_topics = topics.clone();
            format!(
                "scale-down to {spec} refused: the replication factor of {} exceeds the {spec} remaining brokers; nothing was moved",
                topics.join(", ")
            )
        }
    };
    if previous.map(|p| p.phase.as_str()) != Some("Refused") {
        tracing::warn!(cluster = %name, %message, "scale refused");
        out.events
            .push((EventType::Warning, "ScaleDownRefused", message.clone()));
    }
    scaling.message = Some(message.clone());
    out.warning = Some(Problem {
        reason: "ScaleDownRefused",
        message,
    });
}

/// Sets the batch's throttles, then starts its moves. Returns the throttled topics.
async fn start_batch(
    admin: &dyn ClusterAdmin,
    addresses: &Brokers,
    batch: &[plan::Move],
    rate: u64,
) -> Result<Vec<String>, crate::rebalance::kafka::KafkaError> {
    let topics = batch::throttles(batch);
    let brokers = batch::throttled_brokers(batch);
    admin
        .set_throttles(addresses, rate, &brokers, &topics)
        .await?;
    admin.reassign(addresses, batch).await?;
    Ok(topics.into_keys().collect())
}

/// The LeadersMoved Event's note: the count, and the first partitions by name (an Event
/// note is limited to 1 kB, and a scale can move thousands of leaderships).
fn leaders_moved_note(partitions: &[String]) -> String {
    const LISTED: usize = 10;
    let mut note = format!(
        "{} leaderships moved to their preferred replicas: {}",
        partitions.len(),
        partitions
            .iter()
            .take(LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if partitions.len() > LISTED {
        note.push_str(&format!(" and {} more", partitions.len() - LISTED));
    }
    note
}

fn merge(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .chain(b)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_leaders_moved_note_counts_all_and_names_the_first_ten() {
        let few: Vec<String> = (0..2).map(|p| format!("t-{p}")).collect();
        assert_eq!(
            leaders_moved_note(&few),
            "2 leaderships moved to their preferred replicas: t-0, t-1"
        );
        let many: Vec<String> = (0..500).map(|p| format!("orders-{p}")).collect();
        let note = leaders_moved_note(&many);
        assert!(note.starts_with("500 leaderships moved"), "{note}");
        assert!(note.ends_with("orders-9 and 490 more"), "{note}");
        assert!(note.len() < 1024);
    }

    #[test]
    fn the_annotation_pauses_or_requires_approval_per_scale() {
        assert_eq!(gate(&annotations(&[]), "3to5"), Gate::Auto);
        assert_eq!(
            gate(&annotations(&[(REBALANCE_ANNOTATION, "paused")]), "3to5"),
            Gate::Paused
        );
        let approve = (REBALANCE_ANNOTATION, "approve");
        assert_eq!(
            gate(&annotations(&[approve]), "3to5"),
            Gate::AwaitingApproval
        );
        assert_eq!(
            gate(
                &annotations(&[approve, (APPROVED_ANNOTATION, "3to5")]),
                "3to5"
            ),
            Gate::Auto
        );
        // An approval of an earlier scale does not carry over.
        assert_eq!(
            gate(
                &annotations(&[approve, (APPROVED_ANNOTATION, "3to5")]),
                "5to4"
            ),
            Gate::AwaitingApproval
        );
        // A typo holds rather than starts.
        assert_eq!(
            gate(&annotations(&[(REBALANCE_ANNOTATION, "pause")]), "3to5"),
            Gate::Paused
        );
    }
}
