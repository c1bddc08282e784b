//! Reconciles one KafkaCluster: check the spec, decide the scale step, apply the desired
//! objects with server-side apply (only those that differ), then write status. Reads top
//! to bottom; the decisions live in `validate`, `scale` (with `crate::rebalance`),
//! `resources` and `status`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::certificates;
use super::config::{broker_hashes, config_hash, ExternalAddresses};
use super::names::{self, FIELD_MANAGER, FINALIZER};
use super::resources::{desired, image, Desired, RenderOptions};
use super::scale;
use super::status;
use super::validate::{validate, Problem};
use crate::access::{self, AccessError};
use crate::apply::{apply, delete_if_present, Object, Outcome};
use crate::backoff::Failures;
use crate::crd::{KafkaCluster, KafkaClusterStatus};
use crate::events;
use crate::metrics::Metrics;
use crate::rebalance::kafka::{ClusterAdmin, KafkaAdmin as ScaleAdmin};
use crate::roll::kafka::{BrokerAdmin, KafkaAdmin};
use crate::roll::roller::{self, BlockedClock, RollInput};
use crate::roll::triggers;

/// Name of this controller in metrics, logs and events.
pub const CONTROLLER: &str = "kafkacluster";

/// How soon a cluster that is still coming up is looked at again.
const PENDING_RECHECK: Duration = Duration::from_secs(15);
/// How often a healthy cluster is looked at again without any watch event: its
/// partition health is asked again, so the UnderReplicated condition follows the brokers
/// within this.
const HEALTH_RECHECK: Duration = Duration::from_secs(30);

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// Short label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "client",
        }
    }
}

/// Everything a reconcile needs besides the object.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub options: RenderOptions,
    pub recorder: Recorder,
    /// Create the per-cluster PrometheusRule (when the CRD is served).
    pub prometheus_rules: bool,
    /// Asks the brokers for partition health; tests put a scripted one here.
    pub probe: Arc<dyn crate::health::PartitionProbe>,
    /// Injected so tests control `lastTransitionTime`.
    pub clock: fn() -> Timestamp,
    /// The brokers' admin calls for scaling; tests put a fake here.
    pub kafka: Arc<dyn ClusterAdmin>,
    /// Consecutive failures per cluster, for exponential back-off.
    failures: Failures,
    /// The roller's broker calls; tests stand in canned cluster states.
    pub admin: Arc<dyn BrokerAdmin>,
    /// How long each cluster's roll has been blocked, for back-off and metrics.
    pub blocked: BlockedClock,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        options: RenderOptions,
        reporter: Reporter,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            options,
            prometheus_rules: true,
            probe: Arc::new(crate::health::MetadataProbe::default()),
            clock: Timestamp::now,
            kafka: Arc::new(ScaleAdmin),
            failures: Failures::default(),
            admin: Arc::new(KafkaAdmin::default()),
            blocked: BlockedClock::default(),
        }
    }

    /// Records a Normal (or Warning) Event on the cluster; best effort.
    pub async fn event(
        &self,
        cluster: &KafkaCluster,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let kind = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(cluster, self, kind, reason, action, note).await;
    }

    /// An Event about `cluster` that also names `related` (a pod, say). The recorder
    /// folds Events with the same reason into one series per related object, so each
    /// restarted pod (a new UID each time) gets an Event of its own.
    pub async fn event_related(
        &self,
        cluster: &KafkaCluster,
        reason: &str,
        action: &str,
        note: String,
        related: ObjectReference,
    ) {
        publish_related(
            cluster,
            self,
            EventType::Normal,
            reason,
            action,
            note,
            Some(related),
        )
        .await;
    }

    pub(crate) fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// Entry point for the controller runtime.
pub async fn reconcile(cluster: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let key = format!("{}/{}", names::namespace(&cluster), cluster.name_any());
    let result = reconcile_cluster(&cluster, &ctx).await;
    if result.is_ok() {
        ctx.failures.succeeded(&key);
    }
    result
}

/// Back-off on errors: 5 s doubling per consecutive failure, at most 5 minutes, so an API
/// outage or a rejected object never turns into a hot loop.
pub fn error_policy(cluster: Arc<KafkaCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failure(CONTROLLER, error.metric_label());
    let key = format!("{}/{}", names::namespace(&cluster), cluster.name_any());
    let (attempt, delay) = ctx.failures.failed(&key);
    tracing::warn!(cluster = %key, %error, attempt, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_cluster(cluster: &KafkaCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = names::namespace(cluster);
    let name = cluster.name_any();
    if cluster.meta().deletion_timestamp.is_some() {
        return cleanup(cluster, ctx).await;
    }

    // 1. A spec the API server accepted but that cannot work: say why, change nothing.
    let validation = validate(&cluster.spec);
    if let Some(problem) = validation.errors.first() {
        let message = join_messages(&validation.errors);
        tracing::warn!(cluster = %format!("{ns}/{name}"), reason = problem.reason, %message, "refusing KafkaCluster spec");
        let status = status::refused(
            cluster,
            problem.reason,
            &message,
            &validation.warnings,
            (ctx.clock)(),
        );
        write_status(cluster, ctx, status).await?;
        return Ok(Action::await_change());
    }

    // 2. Changes a StatefulSet cannot take (its claim templates are immutable).
    let statefulsets: Api<StatefulSet> = ctx.api(&ns);
    let live_set = statefulsets.get_opt(&names::broker_set(&name)).await?;
    let preview = desired(cluster, &ctx.options, &ExternalAddresses::default());
    if let Some(problem) = status::immutable_change(&preview.stateful_set, live_set.as_ref()) {
        let status = status::refused(
            cluster,
            problem.reason,
            &problem.message,
            &validation.warnings,
            (ctx.clock)(),
        );
        write_status(cluster, ctx, status).await?;
        return Ok(Action::await_change());
    }

    // 3. External listeners first: brokers advertise the addresses their Services get.
    let mut applied = Vec::new();
    let external_services = apply_all(
        &ctx.api::<Service>(&ns),
        &preview.external_services,
        &mut applied,
    )
    .await?;
    let (external, waiting) = status::external_addresses(cluster, &external_services);
    if let Some(waiting) = waiting {
        let status = status::pending(
            cluster,
            "WaitingForLoadBalancer",
            &waiting,
            &validation.warnings,
            (ctx.clock)(),
        );
        announce_applied(cluster, ctx, &applied).await;
        write_status(cluster, ctx, status).await?;
        return Ok(Action::requeue(PENDING_RECHECK));
    }

    // 4. A secured cluster's CAs and certificates, before a broker starts or the operator
    //    talks to one. Brokers that a scale-down is still draining keep theirs.
    let running = live_set
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    let secrets = ctx.api::<Secret>(&ns);
    match certificates::reconcile(
        cluster,
        &secrets,
        running.max(cluster.spec.replicas),
        &external,
    )
    .await?
    {
        Ok(done) => {
            applied.extend(done.secrets.iter().map(|s| format!("Secret {s}")));
            for event in &done.events {
                let (reason, note) = certificates::describe(event);
                publish(
                    cluster,
                    ctx,
                    EventType::Normal,
                    reason,
                    "Certificates",
                    note,
                )
                .await;
            }
        }
        Err(e) => {
            let message = e.to_string();
            tracing::warn!(cluster = %format!("{ns}/{name}"), %message, "certificates not ready");
            let status = status::pending(
                cluster,
                certificates::CERTIFICATES_NOT_READY,
                &message,
                &validation.warnings,
                (ctx.clock)(),
            );
            announce_applied(cluster, ctx, &applied).await;
            write_status(cluster, ctx, status).await?;
            return Ok(Action::requeue(PENDING_RECHECK));
        }
    }

    // 5. How the operator reaches the brokers: in a secured cluster with its own
    //    certificate, which the step above wrote.
    let brokers = match access::for_cluster(&ctx.client, cluster).await {
        Ok(brokers) => brokers,
        Err(AccessError::Kube(e)) => return Err(e.into()),
        Err(e) => {
            let status = status::pending(
                cluster,
                e.reason(),
                &e.to_string(),
                &validation.warnings,
                (ctx.clock)(),
            );
            announce_applied(cluster, ctx, &applied).await;
            write_status(cluster, ctx, status).await?;
            return Ok(Action::requeue(PENDING_RECHECK));
        }
    };

    // 6. Scaling: the StatefulSet's size (held on scale-down until the brokers that go
    //    hold no replica) and the next batch of partition moves.
    //    A scale's progress lives in status.scaling, and the cached object can trail the
    //    status this operator wrote a moment ago: the StatefulSet it just grew wakes the
    //    next reconcile before the watch delivers that status, and a copy without
    //    `scaling` and with the StatefulSet already at the new size would forget the
    //    scale (no partition would move). So the scale step reads the object fresh.
    let fresh = ctx.api::<KafkaCluster>(&ns).get_opt(&name).await?;
    let scale = scale::step(
        fresh.as_ref().unwrap_or(cluster),
        live_set.as_ref(),
        ctx.kafka.as_ref(),
        &brokers.security,
        &ctx.metrics,
    )
    .await;
    for (kind, reason, note) in &scale.events {
        publish(cluster, ctx, *kind, reason, "Scale", note.clone()).await;
    }
    let rendered = with_brokers(cluster, scale.brokers);
    let desired = desired(&rendered, &ctx.options, &external);

    // 7. Everything else, StatefulSet last so its pods start with their config in place.
    //    The ConfigMap as it was is kept: it holds the files the running brokers started
    //    from, which the roller diffs to apply dynamic-only changes without a restart.
    let previous_config = ctx
        .api::<ConfigMap>(&ns)
        .get_opt(&names::config_map(&name))
        .await?;
    ensure_finalizer(cluster, ctx, desired.rack_binding.is_some()).await?;
    let live_set = apply_objects(cluster, ctx, &desired, &mut applied).await?;
    if let Some(change) =
        super::alerts::reconcile(&ctx.client, cluster, ctx.prometheus_rules).await?
    {
        applied.push(change);
    }
    announce_applied(cluster, ctx, &applied).await;

    // 8. Roll the brokers whose configuration, image or manual request says so.
    let roll = roller::roll(
        cluster,
        ctx,
        RollInput {
            desired: triggers::Desired {
                broker_hashes: broker_hashes(&rendered, &external),
                cluster_hash: config_hash(cluster, &external),
                image: image(&cluster.spec, &ctx.options),
                image_pinned: cluster.spec.image.is_some() || cluster.spec.version.is_some(),
            },
            previous_config: previous_config.as_ref(),
            desired_config: &desired.config_map,
            default_min_isr: cluster.spec.min_insync_replicas.unwrap_or(1),
            security: &brokers.security,
        },
    )
    .await?;

    // 9. Status from what runs, with the scale's and the roll's progress and the
    //    partitions' health as the brokers report it.
    let mut warnings = validation.warnings.clone();
    warnings.extend(scale.warning.clone());
    let mut status = status::observed(
        cluster,
        &live_set,
        &external_services,
        &warnings,
        (ctx.clock)(),
    );
    status.scaling = scale.scaling.clone();
    let health_event = crate::health::observe(
        cluster,
        ctx.probe.as_ref(),
        &brokers,
        &mut status,
        (ctx.clock)(),
    )
    .await;
    let ready = crate::conditions::is_ready(&status.conditions);
    status.rolling_restart = roll.status;
    let previous_conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    status
        .conditions
        .retain(|c| c.type_ != crate::conditions::ROLLING_RESTART);
    status.conditions.extend(crate::conditions::merge(
        &previous_conditions,
        vec![roll.condition],
        cluster.metadata.generation,
        (ctx.clock)(),
    ));
    write_status(cluster, ctx, status).await?;
    if let Some((warning, reason, note)) = health_event {
        let kind = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(cluster, ctx, kind, reason, "UpdateStatus", note).await;
    }
    // A Ready cluster is looked at again soon, so the partitions' health follows the brokers.
    let recheck = if ready && !scale.active {
        HEALTH_RECHECK
    } else {
        PENDING_RECHECK
    };
    Ok(Action::requeue(
        roll.requeue.map_or(recheck, |r| r.min(recheck)),
    ))
}

/// The cluster as it is to be rendered: with the StatefulSet size the scale step decided,
/// which trails `spec.replicas` while a scale-down drains.
fn with_brokers(cluster: &KafkaCluster, brokers: i32) -> KafkaCluster {
    let mut rendered = cluster.clone();
    rendered.spec.replicas = brokers;
    rendered
}

/// Applies every namespaced object, and the rack ClusterRoleBinding; removes the optional
/// ones the spec no longer asks for. Returns the StatefulSet as the API server has it.
async fn apply_objects(
    cluster: &KafkaCluster,
    ctx: &Context,
    desired: &Desired,
    applied: &mut Vec<String>,
) -> Result<StatefulSet, Error> {
    let ns = names::namespace(cluster);
    let name = cluster.name_any();
    apply_one(
        &ctx.api::<ServiceAccount>(&ns),
        &desired.service_account,
        applied,
    )
    .await?;
    apply_one(&ctx.api::<ConfigMap>(&ns), &desired.config_map, applied).await?;
    let services = [
        desired.headless_service.clone(),
        desired.bootstrap_service.clone(),
    ];
    let service_api = ctx.api::<Service>(&ns);
    apply_all(&service_api, &services, applied).await?;
    prune_services(cluster, &service_api, desired, applied).await?;
    apply_one(
        &ctx.api::<PodDisruptionBudget>(&ns),
        &desired.pod_disruption_budget,
        applied,
    )
    .await?;

    let policies = ctx.api::<NetworkPolicy>(&ns);
    match &desired.network_policy {
        Some(policy) => {
            apply_one(&policies, policy, applied).await?;
        }
        None => {
            if delete_if_present(&policies, &names::broker_set(&name)).await? {
                applied.push("deleted NetworkPolicy".into());
            }
        }
    }

    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    match &desired.rack_binding {
        Some(binding) => {
            apply_one(&bindings, binding, applied).await?;
        }
        None => {
            if has_finalizer(cluster)
                && delete_if_present(&bindings, &names::rack_binding(&name, &ns)).await?
            {
                applied.push("deleted ClusterRoleBinding".into());
            }
        }
    }

    let (set, outcome) = apply(&ctx.api::<StatefulSet>(&ns), &desired.stateful_set).await?;
    note(applied, &desired.stateful_set, outcome);
    if desired.rack_binding.is_none() {
        remove_finalizer(cluster, ctx).await?;
    }
    Ok(set)
}

/// Services of listeners the spec no longer has (a nodeport listener made internal, a
/// broker removed by scale-down) are deleted; owner references only help on deletion.
async fn prune_services(
    cluster: &KafkaCluster,
    api: &Api<Service>,
    desired: &Desired,
    applied: &mut Vec<String>,
) -> Result<(), Error> {
    let wanted: Vec<String> = [&desired.headless_service, &desired.bootstrap_service]
        .into_iter()
        .chain(&desired.external_services)
        .map(|s| s.name_any())
        .collect();
    let selector = names::selector_string(&cluster.name_any());
    for svc in api.list(&ListParams::default().labels(&selector)).await? {
        let owned = svc
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == cluster.uid().as_ref());
        if owned
            && !wanted.contains(&svc.name_any())
            && delete_if_present(api, &svc.name_any()).await?
        {
            applied.push(format!("deleted Service {}", svc.name_any()));
        }
    }
    Ok(())
}

async fn apply_one<K: Object>(
    api: &Api<K>,
    object: &K,
    applied: &mut Vec<String>,
) -> Result<K, Error> {
    let (live, outcome) = apply(api, object).await?;
    note(applied, object, outcome);
    Ok(live)
}

async fn apply_all<K: Object>(
    api: &Api<K>,
    objects: &[K],
    applied: &mut Vec<String>,
) -> Result<Vec<K>, Error> {
    let mut live = Vec::with_capacity(objects.len());
    for object in objects {
        live.push(apply_one(api, object, applied).await?);
    }
    Ok(live)
}

fn note<K: Resource<DynamicType = ()>>(applied: &mut Vec<String>, object: &K, outcome: Outcome) {
    if outcome == Outcome::Applied {
        applied.push(format!(
            "{} {}",
            K::kind(&()),
            object.meta().name.as_deref().unwrap_or("")
        ));
    }
}

/// One Event per reconcile that changed something, naming what.
async fn announce_applied(cluster: &KafkaCluster, ctx: &Context, applied: &[String]) {
    if applied.is_empty() {
        return;
    }
    tracing::info!(cluster = %cluster.name_any(), changed = ?applied, "applied");
    publish(
        cluster,
        ctx,
        EventType::Normal,
        "Applied",
        "Apply",
        applied.join(", "),
    )
    .await;
}

/// Events are best effort: failing to record one must not fail the reconcile.
async fn publish(
    cluster: &KafkaCluster,
    ctx: &Context,
    kind: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    publish_related(cluster, ctx, kind, reason, action, note, None).await;
}

async fn publish_related(
    cluster: &KafkaCluster,
    ctx: &Context,
    kind: EventType,
    reason: &str,
    action: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    events::publish(&ctx.recorder, cluster, kind, reason, action, note, related).await;
}

fn join_messages(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes status only when it differs, and records an Event when Ready changes.
async fn write_status(
    cluster: &KafkaCluster,
    ctx: &Context,
    status: KafkaClusterStatus,
) -> Result<(), Error> {
    let previous = cluster.status.clone().unwrap_or_default();
    if previous == status {
        return Ok(());
    }
    let (was, now) = (
        status::ready_summary(&previous),
        status::ready_summary(&status),
    );
    let transition = was.as_ref().map(|(r, reason, _)| (*r, reason))
        != now.as_ref().map(|(r, reason, _)| (*r, reason));
    let api: Api<KafkaCluster> = ctx.api(&names::namespace(cluster));
    let patch = json!({
        "apiVersion": "kafka.strom.dev/v1alpha1",
        "kind": "KafkaCluster",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&cluster.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    if transition {
        if let Some((ready, reason, message)) =
            now.filter(|(ready, reason, _)| *ready || !status::is_progress(reason))
        {
            let kind = if ready {
                EventType::Normal
            } else {
                EventType::Warning
            };
            publish(cluster, ctx, kind, &reason, "UpdateStatus", message).await;
        }
    }
    Ok(())
}

fn has_finalizer(cluster: &KafkaCluster) -> bool {
    cluster.finalizers().iter().any(|f| f == FINALIZER)
}

/// The finalizer exists only while a cluster-scoped object (the rack binding) needs removing
/// by hand; owner references clean up everything else.
async fn ensure_finalizer(
    cluster: &KafkaCluster,
    ctx: &Context,
    needed: bool,
) -> Result<(), Error> {
    if !needed || has_finalizer(cluster) {
        return Ok(());
    }
    let mut finalizers = cluster.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    patch_finalizers(cluster, ctx, finalizers).await
}

async fn remove_finalizer(cluster: &KafkaCluster, ctx: &Context) -> Result<(), Error> {
    if !has_finalizer(cluster) {
        return Ok(());
    }
    let finalizers = cluster
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(cluster, ctx, finalizers).await
}

/// A merge patch carrying the resourceVersion, so a concurrent change of the list makes the
/// API server answer 409 (and the reconcile retries) instead of losing someone's finalizer.
async fn patch_finalizers(
    cluster: &KafkaCluster,
    ctx: &Context,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let api: Api<KafkaCluster> = ctx.api(&names::namespace(cluster));
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": cluster.resource_version(),
        }
    });
    api.patch(
        &cluster.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Deletion: owner references remove the namespaced objects; the rack ClusterRoleBinding
/// is cluster-scoped and goes here, before the finalizer is released.
async fn cleanup(cluster: &KafkaCluster, ctx: &Context) -> Result<Action, Error> {
    if !has_finalizer(cluster) {
        return Ok(Action::await_change());
    }
    let name = cluster.name_any();
    let binding = names::rack_binding(&name, &names::namespace(cluster));
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    if delete_if_present(&bindings, &binding).await? {
        publish(
            cluster,
            ctx,
            EventType::Normal,
            "Cleanup",
            "Delete",
            format!("deleted ClusterRoleBinding {binding}"),
        )
        .await;
    }
    remove_finalizer(cluster, ctx).await?;
    Ok(Action::await_change())
}
