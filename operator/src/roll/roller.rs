//! The reconcile step that rolls brokers. It runs after the StatefulSet is applied (so the
//! ConfigMap already holds the new files) and reads top to bottom:
//!
//! 1. a roll requested on the KafkaCluster becomes a request on every broker pod;
//! 2. what each broker needs (`triggers`);
//! 3. dynamic-only changes are applied in place with IncrementalAlterConfigs;
//! 4. the broker restarted last must be Ready and back in every ISR, and gets its
//!    preferred leaderships back, before anything else happens;
//! 5. the next broker (`plan`) is restarted if `safety` allows, else the roll waits.
//!
//! At most one pod is deleted per reconcile. Broker calls that fail never fail the
//! reconcile: the roll waits, says why in the `RollingRestart` condition, and re-checks
//! with back-off. Only Kubernetes API errors propagate (the controller backs off on those).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;
use strom_client::Security;

use super::kafka::{ClusterView, Endpoint};
use super::plan::{self, Step};
use super::safety::{self, CatchUp, Verdict};
use super::triggers::{self, PodView, Reason};
use crate::cluster::config::{parse_properties, properties_hash};
use crate::cluster::names;
use crate::conditions::{Decided, ROLLING_RESTART};
use crate::crd::cluster::{BlockedRestart, RollingRestartStatus};
use crate::crd::KafkaCluster;

/// How soon the roller looks again while a restarted broker comes back.
pub const STEP_RECHECK: Duration = Duration::from_secs(5);
/// First and longest wait while a restart is blocked.
const BLOCKED_FIRST: Duration = Duration::from_secs(10);
const BLOCKED_MAX: Duration = Duration::from_secs(120);

/// What the roller decided: the status part it owns, its condition, and when to look again
/// (`None`: nothing to wait for).
#[derive(Clone, Debug, PartialEq)]
pub struct RollOutcome {
    pub status: Option<RollingRestartStatus>,
    pub condition: Decided,
    pub requeue: Option<Duration>,
}

/// What the roller needs from the desired state.
pub struct RollInput<'a> {
    pub desired: triggers::Desired,
    /// The ConfigMap as it was before this reconcile applied the new one: the files the
    /// running brokers were started from, for the dynamic-only diff.
    pub previous_config: Option<&'a ConfigMap>,
    pub desired_config: &'a ConfigMap,
    /// Used when DescribeConfigs does not name a topic's `min.insync.replicas`.
    pub default_min_isr: i32,
    /// What the brokers' replication listener asks of the operator.
    pub security: &'a Security,
}

/// Per-cluster memory of a blocked roll, for the back-off and the blocked-time metric.
#[derive(Default)]
pub struct BlockedClock {
    since: Mutex<HashMap<String, (Instant, u32)>>,
}

impl BlockedClock {
    /// Records one more blocked check; returns the seconds since the last one and the
    /// back-off before the next.
    fn tick(&self, key: &str) -> (f64, Duration) {
        let now = Instant::now();
        let Ok(mut map) = self.since.lock() else {
            return (0.0, BLOCKED_FIRST);
        };
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        let elapsed = now.duration_since(entry.0).as_secs_f64();
        *entry = (now, entry.1.saturating_add(1));
        let delay = BLOCKED_FIRST.saturating_mul(1 << (entry.1 - 1).min(4));
        (elapsed, delay.min(BLOCKED_MAX))
    }

    fn clear(&self, key: &str) {
        if let Ok(mut map) = self.since.lock() {
            map.remove(key);
        }
    }
}

pub async fn roll(
    cluster: &KafkaCluster,
    ctx: &crate::cluster::reconcile::Context,
    input: RollInput<'_>,
) -> Result<RollOutcome, kube::Error> {
    let ns = names::namespace(cluster);
    let name = cluster.name_any();
    let key = format!("{ns}/{name}");
    let pods: Api<Pod> = ctx.api(&ns);

    // 1. A roll requested on the KafkaCluster: copy it onto every broker pod, where it is
    //    durable and goes away pod by pod with the restart, then remove it here.
    let mut live = list_brokers(&pods, &name).await?;
    if cluster
        .annotations()
        .get(names::MANUAL_ROLL_ANNOTATION)
        .is_some_and(|v| v == "true")
    {
        for pod in &live {
            annotate(
                &pods,
                &pod.name_any(),
                names::MANUAL_ROLL_ANNOTATION,
                Some("true"),
            )
            .await?;
        }
        let clusters: Api<KafkaCluster> = ctx.api(&ns);
        let patch = json!({"metadata": {"annotations": {names::MANUAL_ROLL_ANNOTATION: null}}});
        clusters
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(cluster = %key, pods = live.len(), "manual rolling update requested for every broker");
        live = list_brokers(&pods, &name).await?;
    }
    let views: Vec<PodView> = live
        .iter()
        .filter_map(|p| triggers::pod_view(&name, p))
        .filter(|v| v.ordinal < cluster.spec.replicas)
        .collect();

    // 2. What each broker needs.
    let mut reasons: BTreeMap<i32, Vec<Reason>> = views
        .iter()
        .map(|v| (v.ordinal, triggers::restart_reasons(v, &input.desired)))
        .filter(|(_, r)| !r.is_empty())
        .collect();

    // 3. Dynamic first: a change of run-time keys only is applied without a restart.
    let previous = cluster
        .status
        .as_ref()
        .and_then(|s| s.rolling_restart.clone())
        .unwrap_or_default();
    let mut done = previous.done.clone();
    for view in views.iter().filter(|v| v.ready && !v.terminating) {
        let Some(changes) = reasons
            .get(&view.ordinal)
            .and_then(|r| triggers::config_only_change(r))
            .and_then(|(running, _)| in_place_changes(&input, view.ordinal, running))
        else {
            continue;
        };
        let Some(wanted) = input.desired.broker_hashes.get(&view.ordinal) else {
            continue;
        };
        let keys: Vec<String> = changes.iter().map(|(k, _)| k.clone()).collect();
        match ctx
            .admin
            .alter_broker_config(endpoint(&name, &ns, view.ordinal, input.security), changes)
            .await
        {
            Ok(()) => {
                annotate(
                    &pods,
                    &view.name,
                    names::APPLIED_HASH_ANNOTATION,
                    Some(wanted),
                )
                .await?;
                reasons.remove(&view.ordinal);
                ctx.metrics.dynamic_update(&key);
                let note = format!(
                    "updated broker {} in place with IncrementalAlterConfigs ({}), no restart",
                    view.ordinal,
                    keys.join(", ")
                );
                tracing::info!(cluster = %key, broker = view.ordinal, ?keys, "dynamic configuration applied");
                ctx.event(cluster, false, "ConfigUpdated", "UpdateConfig", note)
                    .await;
            }
            // The restart it falls back to also applies the change, safely; trying again
            // is not possible once the old file is gone from the ConfigMap.
            Err(e) => {
                tracing::warn!(cluster = %key, broker = view.ordinal, error = %e, "in-place update failed; the broker will be restarted")
            }
        }
    }

    let endpoints: Vec<Endpoint> = views
        .iter()
        .filter(|v| v.ready)
        .map(|v| endpoint(&name, &ns, v.ordinal, input.security))
        .collect();

    // 4. The broker restarted last comes back fully before anything else happens.
    if let Some(restarting) = previous.restarting {
        let back = views
            .iter()
            .any(|v| v.ordinal == restarting && v.ready && !v.terminating);
        if !back {
            let message = format!("waiting for broker {restarting} to be Ready after its restart");
            return Ok(waiting(
                &previous,
                "WaitingForBroker",
                message,
                STEP_RECHECK,
            ));
        }
        let view = match ctx.admin.describe(endpoints.clone()).await {
            Ok(view) => view,
            Err(e) => {
                let message = format!("cannot read broker {restarting}'s partitions: {e}");
                return Ok(waiting(
                    &previous,
                    "BrokersUnreachable",
                    message,
                    STEP_RECHECK,
                ));
            }
        };
        match safety::catch_up(restarting, &view.partitions) {
            CatchUp::Behind(partitions) => {
                let message = format!(
                    "broker {restarting} is not yet back in the ISR of {} partition(s): {}",
                    partitions.len(),
                    partitions
                        .iter()
                        .take(safety::LISTED_PARTITIONS)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Ok(waiting(&previous, "CatchingUp", message, STEP_RECHECK));
            }
            CatchUp::CaughtUp { elect } => {
                let count = elect.len();
                if let Err(e) = ctx.admin.elect_preferred(endpoints.clone(), elect).await {
                    // Leadership balance is not worth stopping the roll for; say so.
                    tracing::warn!(cluster = %key, broker = restarting, error = %e, "preferred leader election failed");
                    let note = format!(
                        "moving preferred leaderships back to broker {restarting} failed: {e}"
                    );
                    ctx.event(
                        cluster,
                        true,
                        "PreferredElectionFailed",
                        "ElectLeaders",
                        note,
                    )
                    .await;
                } else {
                    tracing::info!(cluster = %key, broker = restarting, partitions = count, "broker caught up; preferred leaders elected");
                }
            }
        }
    }

    // 5. The next broker, in order, if it is safe.
    let brokers: Vec<plan::Broker> = views
        .iter()
        .map(|v| plan::Broker {
            ordinal: v.ordinal,
            ready: v.ready && !v.terminating,
            outdated: reasons.contains_key(&v.ordinal),
            stuck: v.stuck.is_some(),
        })
        .collect();
    let stuck = plan::stuck_current(&brokers);
    for ordinal in &stuck {
        if let Some(v) = views.iter().find(|v| v.ordinal == *ordinal) {
            tracing::warn!(cluster = %key, broker = ordinal, why = %v.stuck.as_ref().map(ToString::to_string).unwrap_or_default(), "broker stuck on its current template; not restarting it");
        }
    }
    if reasons.is_empty() {
        ctx.blocked.clear(&key);
        return Ok(idle(stuck));
    }
    let any_ready = brokers.iter().any(|b| b.ready);
    let described = if any_ready {
        Some(ctx.admin.describe(endpoints.clone()).await)
    } else {
        None
    };
    let cluster_view: Option<&ClusterView> = described.as_ref().and_then(|d| d.as_ref().ok());
    let controller = cluster_view.and_then(|v| v.controller);
    let pending = plan::order(&brokers, controller);
    let mut status = RollingRestartStatus {
        pending: pending.clone(),
        done: done.clone(),
        restarting: None,
        blocked: None,
        stuck,
    };

    let (broker, check_safety) = match plan::next_step(&brokers, controller) {
        Step::Idle => return Ok(idle(status.stuck)),
        Step::WaitFor { not_ready } => {
            // The next broker's own safety verdict comes first: when it is blocked, its
            // partitions are what a user needs to see (the down broker is why they block).
            let first = pending.first().copied().unwrap_or(-1);
            let verdict = match &described {
                Some(Ok(_)) => restart_block(ctx, &described, &name, &ns, first, &input).await,
                _ => None,
            };
            let block = match verdict {
                Some(block) => block,
                None => Block {
                    reason: "BrokerNotReady",
                    message: format!(
                        "broker(s) {not_ready:?} are not ready; the roll goes on when they are"
                    ),
                    partitions: Vec::new(),
                },
            };
            return Ok(blocked(ctx, cluster, &key, status, first, block).await);
        }
        Step::Restart {
            broker,
            check_safety,
        } => (broker, check_safety),
    };
    if check_safety {
        if let Some(block) = restart_block(ctx, &described, &name, &ns, broker, &input).await {
            return Ok(blocked(ctx, cluster, &key, status, broker, block).await);
        }
    }

    let Some(view) = views.iter().find(|v| v.ordinal == broker) else {
        return Ok(idle(status.stuck));
    };
    let why = reasons
        .get(&broker)
        .map(|r| {
            r.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let label = reasons
        .get(&broker)
        .and_then(|r| r.first())
        .map_or("unknown", Reason::label);
    let label = if view.stuck.is_some() { "stuck" } else { label };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: view.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    pods.delete(&view.name, &params).await?;
    ctx.blocked.clear(&key);
    ctx.metrics.broker_restart(&key, label);
    let not_serving = if check_safety {
        ""
    } else {
        " (not ready, so restarted without waiting)"
    };
    let note = format!(
        "restarting broker {broker} (pod {}){not_serving}: {why}",
        view.name
    );
    tracing::info!(cluster = %key, broker, reason = %why, "restarting broker");
    let restarted = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(view.name.clone()),
        namespace: Some(ns.clone()),
        uid: view.uid.clone(),
        ..ObjectReference::default()
    };
    ctx.event_related(
        cluster,
        "RestartingBroker",
        "Restart",
        note.clone(),
        restarted,
    )
    .await;
    done.retain(|b| *b != broker);
    done.push(broker);
    status.done = done;
    status.pending.retain(|b| *b != broker);
    status.restarting = Some(broker);
    Ok(RollOutcome {
        status: Some(status),
        condition: Decided::new(ROLLING_RESTART, true, "Restarting", note),
        requeue: Some(STEP_RECHECK),
    })
}

/// The changes to apply in place when broker `ordinal` runs the file with hash `running`
/// and every changed key is dynamic; `None` when that file is not known any more or a
/// restart is needed.
fn in_place_changes(
    input: &RollInput<'_>,
    ordinal: i32,
    running: &str,
) -> Option<Vec<triggers::ConfigChange>> {
    let key = names::broker_properties_key(ordinal);
    let old = input.previous_config?.data.as_ref()?.get(&key)?;
    if properties_hash(old) != running {
        return None;
    }
    let new = input.desired_config.data.as_ref()?.get(&key)?;
    triggers::dynamic_changes(&parse_properties(old), &parse_properties(new))
        .filter(|changes| !changes.is_empty())
}

async fn list_brokers(pods: &Api<Pod>, cluster: &str) -> Result<Vec<Pod>, kube::Error> {
    let selector = names::selector_string(cluster);
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// Sets (or with `None` removes) one annotation with a merge patch: the pod is owned by the
/// StatefulSet controller, so the operator touches only this key.
async fn annotate(
    pods: &Api<Pod>,
    pod: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    pods.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Broker `ordinal`'s Kafka (REPLICATION listener, mutual TLS in a secured cluster) and
/// admin addresses.
pub fn endpoint(cluster: &str, namespace: &str, ordinal: i32, security: &Security) -> Endpoint {
    let host = names::pod_dns(cluster, namespace, ordinal);
    Endpoint {
        id: ordinal,
        kafka: format!("{host}:{}", names::REPLICATION_PORT),
        admin: format!("{host}:{}", names::ADMIN_PORT),
        security: security.clone(),
    }
}

fn idle(stuck: Vec<i32>) -> RollOutcome {
    let (status, message) = if stuck.is_empty() {
        (
            None,
            "every broker runs its current configuration".to_string(),
        )
    } else {
        (
            Some(RollingRestartStatus {
                stuck: stuck.clone(),
                ..RollingRestartStatus::default()
            }),
            format!("broker(s) {stuck:?} are stuck on the current pod template; restarting them would not help"),
        )
    };
    RollOutcome {
        status,
        condition: Decided::new(ROLLING_RESTART, false, "UpToDate", message),
        requeue: None,
    }
}

/// The previous step is not finished: keep the status, say what is awaited.
fn waiting(
    previous: &RollingRestartStatus,
    reason: &str,
    message: String,
    recheck: Duration,
) -> RollOutcome {
    RollOutcome {
        status: Some(RollingRestartStatus {
            blocked: None,
            ..previous.clone()
        }),
        condition: Decided::new(ROLLING_RESTART, true, reason, message),
        requeue: Some(recheck),
    }
}

/// Why the next restart cannot happen now.
struct Block {
    reason: &'static str,
    message: String,
    /// The partitions the restart would take below `min.insync.replicas`, if that is why.
    partitions: Vec<String>,
}

/// Kafka's availability rule for restarting `broker` now (`safety::decide` on the
/// described cluster and the broker's own `/restart-safe`); `None` when it may restart.
async fn restart_block(
    ctx: &crate::cluster::reconcile::Context,
    described: &Option<Result<ClusterView, super::kafka::AdminError>>,
    cluster: &str,
    ns: &str,
    broker: i32,
    input: &RollInput<'_>,
) -> Option<Block> {
    let view = match described {
        Some(Ok(view)) => view,
        unreachable => {
            let message = match unreachable {
                Some(Err(e)) => format!("cannot describe the cluster: {e}"),
                _ => "no broker is ready to describe the cluster".to_string(),
            };
            return Some(Block {
                reason: "BrokersUnreachable",
                message,
                partitions: Vec::new(),
            });
        }
    };
    let answer = ctx
        .admin
        .restart_safe(endpoint(cluster, ns, broker, input.security))
        .await;
    let failure = answer.as_ref().err().map(ToString::to_string);
    let answer_ref = match (&answer, &failure) {
        (Ok(a), _) => Ok(a),
        (Err(_), Some(why)) => Err(why.as_str()),
        (Err(_), None) => Err("unknown error"),
    };
    match safety::decide(
        broker,
        &view.partitions,
        &view.min_isr,
        input.default_min_isr,
        view.quorum.as_ref(),
        answer_ref,
    ) {
        Verdict::Blocked {
            reason,
            message,
            partitions,
        } => Some(Block {
            reason,
            message,
            partitions,
        }),
        Verdict::Safe => None,
    }
}

async fn blocked(
    ctx: &crate::cluster::reconcile::Context,
    cluster: &KafkaCluster,
    key: &str,
    mut status: RollingRestartStatus,
    broker: i32,
    block: Block,
) -> RollOutcome {
    let Block {
        reason,
        message,
        partitions,
    } = block;
    let (elapsed, delay) = ctx.blocked.tick(key);
    ctx.metrics.roll_blocked(key, elapsed);
    let was = cluster
        .status
        .as_ref()
        .and_then(|s| s.rolling_restart.as_ref())
        .and_then(|r| r.blocked.as_ref())
        .map(|b| (b.broker, b.reason.clone()));
    if was != Some((broker, reason.to_string())) {
        tracing::info!(cluster = %key, broker, reason, %message, "rolling restart blocked");
        ctx.event(cluster, true, reason, "Restart", message.clone())
            .await;
    }
    status.blocked = Some(BlockedRestart {
        broker,
        reason: reason.to_string(),
        message: message.clone(),
        partitions,
    });
    RollOutcome {
        status: Some(status),
        condition: Decided::new(ROLLING_RESTART, true, reason, message),
        requeue: Some(delay),
    }
}
