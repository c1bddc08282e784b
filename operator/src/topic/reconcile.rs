//! Reconciles one KafkaTopic one way, Kubernetes to the brokers: find its cluster, make
//! sure no older resource owns the same topic, hold the finalizer, observe the topic, make
//! the plan's steps, write status. Reads top to bottom; the decisions live in `plan` and
//! `status`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use strom_client::admin::{AdminError, ConfigOp};

use super::index::TopicIndex;
use super::kafka::{KafkaTopicAdmin, TopicAdmin};
use super::plan::{self, Desired, Observed, Step};
use super::status::{
    self, Facts, BROKERS_UNREACHABLE, CLUSTER_LABEL_MISSING, CLUSTER_NOT_FOUND, FINALIZER,
    INTERNAL_TOPIC, RESOURCE_CONFLICT, UNMANAGED,
};
use crate::access::{self, AccessError, Brokers};
use crate::backoff::Failures;
use crate::cluster::names::FIELD_MANAGER;
use crate::crd::{KafkaCluster, KafkaTopic, CLUSTER_LABEL};
use crate::events;
use crate::metrics::Metrics;
use crate::rebalance::kafka::{ClusterAdmin, KafkaAdmin as ReassignAdmin};

/// Name of this controller in metrics, logs and events.
pub const CONTROLLER: &str = "kafkatopic";

/// How often a topic in sync is compared with the brokers again, so changes made on the
/// brokers directly are reverted within this.
const RESYNC: Duration = Duration::from_secs(120);
/// How soon a topic waiting for its cluster, or for an older resource naming the same
/// topic to go, looks again (the controller does not watch those).
const WAITING: Duration = Duration::from_secs(30);
/// How soon a topic whose replication factor is being changed looks again.
const REASSIGNMENT_RECHECK: Duration = Duration::from_secs(15);

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Deleting the topic failed; the finalizer holds the resource until it works.
    #[error("deleting topic {topic}: {source}")]
    Delete { topic: String, source: AdminError },
    /// The operator cannot reach the cluster's brokers yet (its credentials are missing).
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl Error {
    /// Short label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "client",
            Error::Delete { .. } => "kafka",
            Error::Access(_) => "credentials",
        }
    }
}

/// Everything a topic reconcile needs besides the object.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Injected so tests control `lastTransitionTime`.
    pub clock: fn() -> Timestamp,
    /// The brokers' topic calls; tests put a fake here.
    pub admin: Arc<dyn TopicAdmin>,
    /// The scale step's calls, for the reassignments that change a replication factor.
    pub kafka: Arc<dyn ClusterAdmin>,
    /// The controller's stores of clusters and topics; empty, the API is asked instead.
    pub index: TopicIndex,
    /// Consecutive failures per topic (Kubernetes errors and broker refusals alike), for
    /// exponential back-off.
    failures: Failures,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, recorder: Recorder) -> Self {
        Context {
            client,
            metrics,
            recorder,
            clock: Timestamp::now,
            admin: Arc::new(KafkaTopicAdmin::default()),
            kafka: Arc::new(ReassignAdmin),
            index: TopicIndex::default(),
            failures: Failures::default(),
        }
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// One more failure for `key`; the delay before the next try.
    fn failed(&self, key: &str) -> Duration {
        self.failures.failed(key).1
    }

    fn succeeded(&self, key: &str) {
        self.failures.succeeded(key);
    }
}

fn key(topic: &KafkaTopic) -> String {
    format!("{}/{}", namespace(topic), topic.name_any())
}

fn namespace(topic: &KafkaTopic) -> String {
    topic.namespace().unwrap_or_else(|| "default".into())
}

/// Entry point for the controller runtime.
pub async fn reconcile(topic: Arc<KafkaTopic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    reconcile_topic(&topic, &ctx).await
}

/// Back-off on errors, so an API outage or a broker that will not delete never turns into
/// a hot loop.
pub fn error_policy(topic: Arc<KafkaTopic>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failure(CONTROLLER, error.metric_label());
    let key = key(&topic);
    let delay = ctx.failed(&key);
    tracing::warn!(topic = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// How a reconcile ends when it did not fail: the status to write, and when to look again.
struct Outcome {
    problem: Option<(String, String)>,
    facts: Facts,
    requeue: Action,
    /// Leave the status as it is (the outcome says nothing new about the topic).
    keep_status: bool,
}

fn deletion_disabled(error: &AdminError) -> bool {
    error
        .refused()
        .is_some_and(|r| r.error() == Some(kafka_protocol::ResponseError::TopicDeletionDisabled))
}

fn already_exists(error: &AdminError) -> bool {
    error
        .refused()
        .is_some_and(|r| r.error() == Some(kafka_protocol::ResponseError::TopicAlreadyExists))
}

async fn reconcile_topic(topic: &KafkaTopic, ctx: &Context) -> Result<Action, Error> {
    if topic.meta().deletion_timestamp.is_some() {
        return cleanup(topic, ctx).await;
    }
    let outcome = sync(topic, ctx).await?;
    if !outcome.keep_status {
        write_status(topic, ctx, outcome.problem, outcome.facts).await?;
    }
    Ok(outcome.requeue)
}

/// Everything but the status write: each early return is one reason the topic is not
/// (or not yet) as its spec says.
async fn sync(topic: &KafkaTopic, ctx: &Context) -> Result<Outcome, Error> {
    let key = key(topic);
    let name = status::topic_name(topic);
    let waiting = |reason: &str, message: String| Outcome {
        problem: Some((reason.to_string(), message)),
        facts: status::previous_facts(topic),
        requeue: Action::requeue(WAITING),
        keep_status: false,
    };

    // 1. Unmanaged: nothing on the brokers is touched, and deleting the resource leaves
    //    the topic, so the finalizer goes.
    if !status::is_managed(topic) {
        remove_finalizer(topic, ctx).await?;
        ctx.succeeded(&key);
        return Ok(Outcome {
            problem: Some((
                UNMANAGED.into(),
                format!(
                    "{} is \"false\": the operator leaves topic {name} alone",
                    status::MANAGED_ANNOTATION
                ),
            )),
            facts: status::previous_facts(topic),
            requeue: Action::await_change(),
            keep_status: false,
        });
    }

    // 2. Never a topic the brokers own.
    if status::is_internal(&name) {
        remove_finalizer(topic, ctx).await?;
        return Ok(Outcome {
            problem: Some((
                INTERNAL_TOPIC.into(),
                format!(
                    "{name} is an internal topic of the brokers; the operator does not manage it"
                ),
            )),
            facts: status::previous_facts(topic),
            requeue: Action::await_change(),
            keep_status: false,
        });
    }

    // 3. The cluster the label names.
    let Some(cluster_name) = status::cluster_label(topic) else {
        return Ok(waiting(
            CLUSTER_LABEL_MISSING,
            format!("the {CLUSTER_LABEL} label must name the KafkaCluster of the topic"),
        ));
    };
    let ns = namespace(topic);
    let cluster = live_cluster(ctx, &ns, &cluster_name).await?;
    let Some(cluster) = cluster else {
        return Ok(waiting(
            CLUSTER_NOT_FOUND,
            format!("KafkaCluster {cluster_name} not found in namespace {ns}"),
        ));
    };

    // 4. An older resource naming the same topic owns it; this one touches nothing.
    if let Some(winner) = conflict_winner(topic, ctx, &cluster_name).await? {
        return Ok(waiting(
            RESOURCE_CONFLICT,
            format!("topic {name} is managed by the older KafkaTopic {winner}"),
        ));
    }

    // 5. The spec's configs as Kafka strings.
    let config = match plan::config_strings(&topic.spec.config) {
        Ok(config) => config,
        Err(refusal) => {
            return Ok(Outcome {
                problem: Some((refusal.reason.into(), refusal.message)),
                facts: status::previous_facts(topic),
                requeue: Action::await_change(),
                keep_status: false,
            })
        }
    };
    let desired = Desired {
        name: name.clone(),
        partitions: topic.spec.partitions,
        replicas: topic.spec.replicas,
        config,
    };

    // 6. The finalizer before the topic can exist, so no topic outlives its resource.
    ensure_finalizer(topic, ctx).await?;

    // 7. Observe, plan, act. Refusals and unreachable brokers go to the status with a
    //    backed-off requeue; the other topics keep reconciling.
    let bootstrap = match access::for_cluster(&ctx.client, &cluster).await {
        Ok(brokers) => brokers,
        Err(AccessError::Kube(e)) => return Err(e.into()),
        Err(e) => return Ok(waiting(e.reason(), e.to_string())),
    };
    let observed = match ctx.admin.observe(&bootstrap, &name).await {
        Ok(observed) => observed,
        Err(e) => return Ok(broker_failure(topic, ctx, &e)),
    };
    let plan = plan::plan(&desired, observed.as_ref());
    let created = match ctx.admin.apply(&bootstrap, &name, &plan.steps).await {
        Ok(created) => created,
        Err(e) if observed.is_none() && already_exists(&e) => {
            // The broker that answered Metadata had not yet seen a topic created a moment
            // ago (by the previous reconcile, say): nothing is wrong, look again soon.
            tracing::debug!(topic = %key, "topic exists but was not in the metadata yet");
            return Ok(Outcome {
                problem: None,
                facts: Facts::default(),
                requeue: Action::requeue(ctx.failed(&key)),
                keep_status: true,
            });
        }
        Err(e) => return Ok(broker_failure(topic, ctx, &e)),
    };
    if !plan.is_noop() {
        let note = describe_steps(&name, &plan.steps);
        tracing::info!(topic = %key, changes = %note, "applied");
        publish(topic, ctx, EventType::Normal, "Applied", "Apply", note).await;
    }

    // 8. A replication-factor change is a partition reassignment, watched to its end.
    let mut problems: Vec<(String, String)> = plan
        .refusals
        .iter()
        .map(|r| (r.reason.to_string(), r.message.clone()))
        .collect();
    let mut requeue = Action::requeue(RESYNC);
    match plan.replication {
        None => ctx.succeeded(&key),
        Some((from, to)) => match change_replication(topic, ctx, &bootstrap, from, to).await {
            Ok(progress) => {
                ctx.succeeded(&key);
                problems.push(progress);
                requeue = Action::requeue(REASSIGNMENT_RECHECK);
            }
            Err(failure) => {
                problems.push(failure);
                requeue = Action::requeue(ctx.failed(&key));
            }
        },
    }

    let facts = facts_after(observed.as_ref(), &plan.steps, created);
    let problem = (!problems.is_empty()).then(|| {
        let reason = problems
            .iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let message = problems
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        (reason, message)
    });
    Ok(Outcome {
        problem,
        facts,
        requeue,
        keep_status: false,
    })
}

/// Starts or follows the reassignment that changes the topic's replication factor from
/// `from` to `to`. Ok: under way (reason and message for the status); Err: it cannot be
/// made now (too few live brokers, the brokers unreachable, Kafka refusing).
async fn change_replication(
    topic: &KafkaTopic,
    ctx: &Context,
    bootstrap: &Brokers,
    from: i32,
    to: i32,
) -> Result<(String, String), (String, String)> {
    let name = status::topic_name(topic);
    let changing = |message: String| (plan::REPLICATION_FACTOR_CHANGING.to_string(), message);
    let failed = |message: String| (plan::REPLICATION_FACTOR_CHANGE.to_string(), message);
    let view = ctx.kafka.describe(bootstrap).await.map_err(|e| {
        failed(format!(
            "topic {name}: cannot read the partition assignment: {e}"
        ))
    })?;
    let moving = view.in_flight.iter().filter(|tp| tp.topic == name).count();
    if moving > 0 {
        return Ok(changing(format!(
            "topic {name}: {moving} partitions are being reassigned; replication factor {from}, wanted {to}"
        )));
    }
    let moves = plan::replication_moves(&name, &view.assignment, &view.live_brokers(), to)
        .map_err(|r| (r.reason.to_string(), r.message))?;
    if moves.is_empty() {
        // The assignment is there; the broker that answered Metadata has not caught up.
        return Ok(changing(format!(
            "topic {name}: waiting for the brokers to report replication factor {to}"
        )));
    }
    ctx.kafka.reassign(bootstrap, &moves).await.map_err(|e| {
        failed(format!(
            "topic {name}: the reassignment to replication factor {to} failed: {e}"
        ))
    })?;
    let message = format!(
        "topic {name}: moving {} partitions from replication factor {from} to {to}",
        moves.len()
    );
    tracing::info!(topic = %key(topic), %message, "reassigning");
    publish(
        topic,
        ctx,
        EventType::Normal,
        plan::REPLICATION_FACTOR_CHANGING,
        "Reassign",
        message.clone(),
    )
    .await;
    Ok(changing(message))
}

fn broker_failure(topic: &KafkaTopic, ctx: &Context, error: &AdminError) -> Outcome {
    let (reason, message) = status::admin_problem(error);
    let delay = ctx.failed(&key(topic));
    tracing::warn!(topic = %key(topic), %reason, %message, retry_in = ?delay, "topic not in sync");
    let mut facts = status::previous_facts(topic);
    if reason == BROKERS_UNREACHABLE {
        // What the brokers have is unknown now; stale numbers would mislead.
        facts = Facts {
            topic_id: facts.topic_id,
            ..Facts::default()
        };
    }
    Outcome {
        problem: Some((reason, message)),
        facts,
        requeue: Action::requeue(delay),
        keep_status: false,
    }
}

/// What the brokers have once the steps are made.
fn facts_after(observed: Option<&Observed>, steps: &[Step], created: Option<String>) -> Facts {
    let mut facts = match observed {
        Some(o) => Facts {
            topic_id: Some(o.topic_id.clone()),
            partitions: Some(o.partitions),
            replicas: Some(o.replicas),
        },
        None => Facts::default(),
    };
    for step in steps {
        match step {
            Step::Create {
                partitions,
                replicas,
                ..
            } => {
                facts.partitions = Some(*partitions);
                facts.replicas = Some(*replicas);
            }
            Step::AddPartitions { total } => facts.partitions = Some(*total),
            Step::AlterConfig(_) => {}
        }
    }
    if created.is_some() {
        facts.topic_id = created;
    }
    facts.topic_id = facts.topic_id.filter(|id| !id.is_empty());
    facts
}

fn describe_steps(topic: &str, steps: &[Step]) -> String {
    steps
        .iter()
        .map(|step| match step {
            Step::Create {
                partitions,
                replicas,
                ..
            } => format!(
                "created topic {topic} ({partitions} partitions, replication factor {replicas})"
            ),
            Step::AddPartitions { total } => format!("grew topic {topic} to {total} partitions"),
            Step::AlterConfig(ops) => {
                let keys: Vec<String> = ops
                    .iter()
                    .map(|op| match op {
                        ConfigOp::Set { key, value } => format!("{key}={value}"),
                        ConfigOp::Delete { key } => format!("-{key}"),
                    })
                    .collect();
                format!("changed topic {topic} configs: {}", keys.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The topic's cluster unless it is gone or going. The store's copy when it has one (a
/// deletion it has not seen yet only delays the topic's reaction by the watch latency);
/// otherwise the API's, since the store may not have seen a cluster created a moment ago.
async fn live_cluster(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<KafkaCluster>, Error> {
    let cluster = match ctx.index.cluster(namespace, name) {
        Some(cluster) => Some(cluster.as_ref().clone()),
        None => ctx.api::<KafkaCluster>(namespace).get_opt(name).await?,
    };
    Ok(cluster.filter(|c| c.meta().deletion_timestamp.is_none()))
}

/// The older resource that owns `topic`'s Kafka topic, if any. A winner found in the store
/// is confirmed with the API, since it may have gone a moment ago (and this one takes
/// over now); no winner in the store needs no confirmation (see `index`).
async fn conflict_winner(
    topic: &KafkaTopic,
    ctx: &Context,
    cluster: &str,
) -> Result<Option<String>, Error> {
    let name = status::topic_name(topic);
    if let Some(stored) = ctx.index.siblings(&namespace(topic), cluster, &name) {
        if status::conflict_winner(topic, &stored).is_none() {
            return Ok(None);
        }
    }
    let listed = list_siblings(topic, ctx, cluster).await?;
    Ok(status::conflict_winner(topic, &listed))
}

/// Whether another live resource claims `topic`'s Kafka topic, so deleting `topic` must
/// leave it. A claimant found in the store is confirmed with the API: a stale one would
/// leave the topic on the brokers for good once this resource's finalizer is gone.
async fn others_claim(topic: &KafkaTopic, ctx: &Context, cluster: &str) -> Result<bool, Error> {
    let name = status::topic_name(topic);
    if let Some(stored) = ctx.index.siblings(&namespace(topic), cluster, &name) {
        if !status::others_claim(topic, &stored) {
            return Ok(false);
        }
    }
    let listed = list_siblings(topic, ctx, cluster).await?;
    Ok(status::others_claim(topic, &listed))
}

/// The KafkaTopics of the same cluster in the namespace, this one included, from the API.
async fn list_siblings(
    topic: &KafkaTopic,
    ctx: &Context,
    cluster: &str,
) -> Result<Vec<KafkaTopic>, Error> {
    let api: Api<KafkaTopic> = ctx.api(&namespace(topic));
    let list = api
        .list(&ListParams::default().labels(&format!("{CLUSTER_LABEL}={cluster}")))
        .await?;
    Ok(list.items)
}

/// Deletion: the topic goes from the brokers, unless the resource is unmanaged, names an
/// internal topic, lost a conflict, hands the topic to another resource, or its cluster
/// is gone (and the topic with it); then the finalizer is released.
async fn cleanup(topic: &KafkaTopic, ctx: &Context) -> Result<Action, Error> {
    if !status::has_finalizer(topic) {
        return Ok(Action::await_change());
    }
    let name = status::topic_name(topic);
    if status::is_managed(topic) && !status::is_internal(&name) {
        if let Some(cluster_name) = status::cluster_label(topic) {
            let cluster = live_cluster(ctx, &namespace(topic), &cluster_name).await?;
            if let Some(cluster) = cluster {
                if !others_claim(topic, ctx, &cluster_name).await? {
                    let bootstrap = access::for_cluster(&ctx.client, &cluster).await?;
                    match ctx.admin.delete(&bootstrap, &name).await {
                        Ok(()) => {
                            publish(
                                topic,
                                ctx,
                                EventType::Normal,
                                "Deleted",
                                "Delete",
                                format!("deleted topic {name}"),
                            )
                            .await
                        }
                        // The brokers forbid deletion (delete.topic.enable=false): the
                        // topic stays, as `kafka-topics --delete` would leave it, and the
                        // resource may go.
                        Err(e) if deletion_disabled(&e) => {
                            tracing::warn!(topic = %key(topic), "delete.topic.enable is false on the brokers; the topic stays");
                            publish(
                                topic,
                                ctx,
                                EventType::Warning,
                                "DeletionDisabled",
                                "Delete",
                                format!("topic {name} stays: the brokers have delete.topic.enable=false"),
                            )
                            .await
                        }
                        Err(source) => {
                            return Err(Error::Delete {
                                topic: name.clone(),
                                source,
                            })
                        }
                    }
                }
            }
        }
    }
    remove_finalizer(topic, ctx).await?;
    ctx.succeeded(&key(topic));
    Ok(Action::await_change())
}

async fn ensure_finalizer(topic: &KafkaTopic, ctx: &Context) -> Result<(), Error> {
    if status::has_finalizer(topic) {
        return Ok(());
    }
    let mut finalizers = topic.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    patch_finalizers(topic, ctx, finalizers).await
}

async fn remove_finalizer(topic: &KafkaTopic, ctx: &Context) -> Result<(), Error> {
    if !status::has_finalizer(topic) {
        return Ok(());
    }
    let finalizers = topic
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(topic, ctx, finalizers).await
}

/// A merge patch carrying the resourceVersion, so a concurrent change of the list makes the
/// API server answer 409 (and the reconcile retries) instead of losing someone's finalizer.
async fn patch_finalizers(
    topic: &KafkaTopic,
    ctx: &Context,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let api: Api<KafkaTopic> = ctx.api(&namespace(topic));
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": topic.resource_version(),
        }
    });
    api.patch(
        &topic.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Writes status only when it differs (server-side apply), and records an Event when
/// Ready changes.
async fn write_status(
    topic: &KafkaTopic,
    ctx: &Context,
    problem: Option<(String, String)>,
    facts: Facts,
) -> Result<(), Error> {
    let status = status::status(topic, problem, facts, (ctx.clock)());
    let previous = topic.status.clone().unwrap_or_default();
    if previous == status {
        return Ok(());
    }
    let api: Api<KafkaTopic> = ctx.api(&namespace(topic));
    let patch = json!({
        "apiVersion": "kafka.strom.dev/v1alpha1",
        "kind": "KafkaTopic",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&topic.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    events::announce_ready_transition(
        &ctx.recorder,
        topic,
        &previous.conditions,
        &status.conditions,
    )
    .await;
    Ok(())
}

async fn publish(
    topic: &KafkaTopic,
    ctx: &Context,
    kind: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    events::publish(&ctx.recorder, topic, kind, reason, action, note, None).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_follow_the_steps_made() {
        let created = facts_after(
            None,
            &[Step::Create {
                partitions: 6,
                replicas: 3,
                config: Default::default(),
            }],
            Some("id1".into()),
        );
        assert_eq!(
            created,
            Facts {
                topic_id: Some("id1".into()),
                partitions: Some(6),
                replicas: Some(3)
            }
        );
        let observed = Observed {
            topic_id: "id2".into(),
            partitions: 4,
            replicas: 2,
            config: Default::default(),
        };
        let grown = facts_after(
            Some(&observed),
            &[
                Step::AddPartitions { total: 6 },
                Step::AlterConfig(vec![ConfigOp::Delete { key: "x".into() }]),
            ],
            None,
        );
        assert_eq!(
            grown,
            Facts {
                topic_id: Some("id2".into()),
                partitions: Some(6),
                replicas: Some(2)
            }
        );
        assert_eq!(
            describe_steps(
                "t",
                &[
                    Step::AddPartitions { total: 6 },
                    Step::AlterConfig(vec![
                        ConfigOp::Set {
                            key: "a".into(),
                            value: "1".into()
                        },
                        ConfigOp::Delete { key: "x".into() }
                    ])
                ]
            ),
            "grew topic t to 6 partitions; changed topic t configs: a=1, -x"
        );
    }
}
