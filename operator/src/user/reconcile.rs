//! Reconciles one KafkaUser one way, Kubernetes to the brokers: find its cluster, check
//! the whole spec, get the credential ready (a password, or the tls Secret), hold the
//! finalizer, then make the brokers hold exactly the credential, ACLs and quotas the spec
//! says, write the Secret and the status. Reads top to bottom; the decisions live in
//! `plan`, `secret` and `status`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use strom_client::admin::AdminError;
use strom_client::admin_security::{AclBinding, QuotaOp};

use super::kafka::{KafkaUserAdmin, UserAdmin};
use super::plan::{self, Desired};
use super::secret::{self, SecretError};
use super::status::{
    self, CERTIFICATE_AUTHORITY_NOT_READY, CLUSTER_LABEL_MISSING, CLUSTER_NOT_FOUND, FINALIZER,
    PASSWORD_GENERATION_FAILED, PASSWORD_SECRET_NOT_FOUND, SECRET_CONFLICT,
};
use crate::access::{self, AccessError, Brokers};
use crate::apply;
use crate::backoff::Failures;
use crate::certs::{names as cert_names, Authority, CaKind};
use crate::cluster::names::FIELD_MANAGER;
use crate::cluster::{certificates, names};
use crate::crd::user::UserAuthenticationType;
use crate::crd::{KafkaCluster, KafkaUser, CLUSTER_LABEL};
use crate::events;
use crate::metrics::Metrics;

/// Name of this controller in metrics, logs and events.
pub const CONTROLLER: &str = "kafkauser";

/// How often a user in sync is compared with the brokers again, so ACLs or quotas changed
/// on the brokers directly are reverted within this.
const RESYNC: Duration = Duration::from_secs(120);
/// How soon a user waiting for its cluster, its password Secret or the clients CA looks
/// again.
const WAITING: Duration = Duration::from_secs(30);

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Removing the user from the brokers failed; the finalizer holds the resource until
    /// it works.
    #[error("removing user {user} from the brokers: {source}")]
    Delete { user: String, source: AdminError },
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

/// Everything a user reconcile needs besides the object.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Injected so tests control `lastTransitionTime`.
    pub clock: fn() -> Timestamp,
    /// The brokers' user calls; tests put a fake here.
    pub admin: Arc<dyn UserAdmin>,
    /// Consecutive failures per user, for exponential back-off.
    failures: Failures,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, recorder: Recorder) -> Self {
        Context {
            client,
            metrics,
            recorder,
            clock: Timestamp::now,
            admin: Arc::new(KafkaUserAdmin),
            failures: Failures::default(),
        }
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn failed(&self, key: &str) -> Duration {
        self.failures.failed(key).1
    }

    fn succeeded(&self, key: &str) {
        self.failures.succeeded(key);
    }
}

fn key(user: &KafkaUser) -> String {
    format!("{}/{}", namespace(user), user.name_any())
}

fn namespace(user: &KafkaUser) -> String {
    user.namespace().unwrap_or_else(|| "default".into())
}

/// Entry point for the controller runtime.
pub async fn reconcile(user: Arc<KafkaUser>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    if user.meta().deletion_timestamp.is_some() {
        return cleanup(&user, &ctx).await;
    }
    let outcome = sync(&user, &ctx).await?;
    write_status(
        &user,
        &ctx,
        outcome.problem,
        outcome.username,
        outcome.secret,
    )
    .await?;
    Ok(outcome.requeue)
}

/// Back-off on errors, so an API outage or brokers that will not let a user go never turn
/// into a hot loop.
pub fn error_policy(user: Arc<KafkaUser>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failure(CONTROLLER, error.metric_label());
    let key = key(&user);
    let delay = ctx.failed(&key);
    tracing::warn!(user = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// How a reconcile ends when it did not fail: the status to write, and when to look again.
struct Outcome {
    problem: Option<(String, String)>,
    username: Option<String>,
    secret: Option<String>,
    requeue: Action,
}

impl Outcome {
    /// Not (yet) as the spec says, for a reason outside the brokers; the status keeps
    /// what it said about the principal and Secret.
    fn problem(user: &KafkaUser, reason: &str, message: String, requeue: Action) -> Outcome {
        let previous = user.status.clone().unwrap_or_default();
        Outcome {
            problem: Some((reason.to_string(), message)),
            username: previous.username,
            secret: previous.secret,
            requeue,
        }
    }
}

/// The credential a reconcile gives the brokers and the Secret, prepared before any
/// broker call so a missing password Secret or CA changes nothing.
enum Credential {
    Scram {
        password: String,
        existing: Option<Secret>,
    },
    Tls {
        secret: Secret,
    },
}

/// Everything but the status write: each early return is one reason the user is not (or
/// not yet) as its spec says.
async fn sync(user: &KafkaUser, ctx: &Context) -> Result<Outcome, Error> {
    let key = key(user);
    let name = user.name_any();
    let ns = namespace(user);

    // 1. The cluster the label names.
    let Some(cluster_name) = status::cluster_label(user) else {
        return Ok(Outcome::problem(
            user,
            CLUSTER_LABEL_MISSING,
            format!("the {CLUSTER_LABEL} label must name the KafkaCluster of the user"),
            Action::requeue(WAITING),
        ));
    };

    // 2. The whole spec, before anything is touched.
    let desired = match plan::desired(&name, &user.spec) {
        Ok(desired) => desired,
        Err(invalid) => {
            return Ok(Outcome::problem(
                user,
                invalid.reason,
                invalid.message,
                Action::await_change(),
            ))
        }
    };

    let cluster = ctx.api::<KafkaCluster>(&ns).get_opt(&cluster_name).await?;
    let Some(cluster) = cluster.filter(|c| c.meta().deletion_timestamp.is_none()) else {
        return Ok(Outcome::problem(
            user,
            CLUSTER_NOT_FOUND,
            format!("KafkaCluster {cluster_name} not found in namespace {ns}"),
            Action::requeue(WAITING),
        ));
    };

    // 3. The Secret's name must be free or ours: someone else's Secret is never taken over.
    let secrets: Api<Secret> = ctx.api(&ns);
    let existing = secrets.get_opt(&name).await?;
    if let Some(other) = existing.as_ref().filter(|s| !secret::owned_by(s, user)) {
        return Ok(Outcome::problem(
            user,
            SECRET_CONFLICT,
            format!(
                "Secret {} exists and is not owned by this KafkaUser; delete or rename it",
                other.name_any()
            ),
            Action::requeue(WAITING),
        ));
    }

    // 4. The credential, ready before any broker call.
    let credential = match prepare_credential(user, ctx, &cluster, &desired, existing).await? {
        Ok(credential) => credential,
        Err((reason, message)) => {
            return Ok(Outcome::problem(
                user,
                reason,
                message,
                Action::requeue(WAITING),
            ))
        }
    };

    // 5. The finalizer before anything exists on the brokers, so nothing outlives the
    //    resource.
    ensure_finalizer(user, ctx).await?;

    // 6. Observe, compare, act. Refusals and unreachable brokers go to the status with a
    //    backed-off requeue; the other users keep reconciling.
    let bootstrap = match access::for_cluster(&ctx.client, &cluster).await {
        Ok(brokers) => brokers,
        Err(AccessError::Kube(e)) => return Err(e.into()),
        Err(e) => {
            return Ok(Outcome::problem(
                user,
                e.reason(),
                e.to_string(),
                Action::requeue(WAITING),
            ))
        }
    };
    let mut changes = Vec::new();
    let result = apply_to_brokers(ctx, &bootstrap, &desired, &credential, &mut changes).await;
    if !changes.is_empty() {
        let note = changes.join("; ");
        tracing::info!(user = %key, changes = %note, "applied");
        publish(user, ctx, EventType::Normal, "Applied", "Apply", note).await;
    }
    if let Err(e) = result {
        let (reason, message) = crate::topic::status::admin_problem(&e);
        let delay = ctx.failed(&key);
        tracing::warn!(user = %key, %reason, %message, retry_in = ?delay, "user not in sync");
        return Ok(Outcome::problem(
            user,
            &reason,
            message,
            Action::requeue(delay),
        ));
    }

    // 7. The Secret, once the brokers accept the credential it carries.
    let wanted = match credential {
        Credential::Scram { password, .. } => {
            secret::scram_secret(user, &desired.username, &password)
        }
        Credential::Tls { secret } => secret,
    };
    let (_, applied) = apply::apply(&secrets, &wanted).await?;
    if applied == apply::Outcome::Applied {
        publish(
            user,
            ctx,
            EventType::Normal,
            "SecretApplied",
            "Apply",
            format!("wrote Secret {name}"),
        )
        .await;
    }

    // 8. An authentication type changed: the old principal goes from the brokers.
    if let Some(previous) = status::previous_username(user).filter(|p| *p != desired.username) {
        if let Err(e) = remove_from_brokers(ctx, &bootstrap, &previous).await {
            let (reason, message) = crate::topic::status::admin_problem(&e);
            return Ok(Outcome {
                problem: Some((
                    reason,
                    format!("removing the old principal {previous}: {message}"),
                )),
                username: Some(previous),
                secret: Some(name),
                requeue: Action::requeue(ctx.failed(&key)),
            });
        }
        publish(
            user,
            ctx,
            EventType::Normal,
            "Applied",
            "Delete",
            format!("removed the old principal {previous}"),
        )
        .await;
    }

    ctx.succeeded(&key);
    Ok(Outcome {
        problem: None,
        username: Some(desired.username),
        secret: Some(name),
        requeue: Action::requeue(RESYNC),
    })
}

/// The password (kept, taken from `spec.authentication.password`, or new) or the tls
/// Secret. Err: a reason and message for a user that has to wait.
/// The cluster's clients CA, which signs tls users' certificates. A cluster that is not
/// secured has none: its listeners take no client certificates.
async fn clients_ca(
    ctx: &Context,
    cluster: &KafkaCluster,
) -> Result<Result<Authority, SecretError>, Error> {
    let name = cluster.name_any();
    let not_ready = |reason: String| SecretError::ClientsCaNotReady {
        cluster: name.clone(),
        reason,
    };
    if !crate::cluster::security::is_secured(&cluster.spec) {
        return Ok(Err(not_ready(
            "the cluster has no TLS listener or authorization, so no clients CA".into(),
        )));
    }
    let secrets = ctx.api::<Secret>(&names::namespace(cluster));
    let cert = secrets
        .get_opt(&cert_names::clients_ca_cert_secret(&name))
        .await?
        .and_then(|s| s.data);
    let key = secrets
        .get_opt(&cert_names::clients_ca_key_secret(&name))
        .await?
        .and_then(|s| s.data);
    Ok(
        Authority::load(CaKind::Clients, &name, cert.as_ref(), key.as_ref())
            .map_err(|e| not_ready(e.to_string())),
    )
}

async fn prepare_credential(
    user: &KafkaUser,
    ctx: &Context,
    cluster: &KafkaCluster,
    desired: &Desired,
    existing: Option<Secret>,
) -> Result<Result<Credential, (&'static str, String)>, Error> {
    match desired.authentication {
        UserAuthenticationType::Tls => {
            let clients_ca = match clients_ca(ctx, cluster).await? {
                Ok(ca) => ca,
                Err(e) => return Ok(Err((CERTIFICATE_AUTHORITY_NOT_READY, e.to_string()))),
            };
            let settings = certificates::ca_settings(cluster.spec.clients_ca.as_ref());
            match secret::tls_user_secret(
                user,
                &clients_ca,
                settings,
                existing.as_ref(),
                SystemTime::now(),
            ) {
                Ok(secret) => Ok(Ok(Credential::Tls { secret })),
                Err(e @ SecretError::ClientsCaNotReady { .. })
                | Err(e @ SecretError::Certificate(_)) => {
                    Ok(Err((CERTIFICATE_AUTHORITY_NOT_READY, e.to_string())))
                }
                Err(e @ SecretError::NoRandomness) => {
                    Ok(Err((PASSWORD_GENERATION_FAILED, e.to_string())))
                }
            }
        }
        UserAuthenticationType::ScramSha512 => {
            let from_spec = user
                .spec
                .authentication
                .password
                .as_ref()
                .map(|p| &p.value_from.secret_key_ref);
            let password = if let Some(reference) = from_spec {
                let source = ctx
                    .api::<Secret>(&namespace(user))
                    .get_opt(&reference.name)
                    .await?;
                match source
                    .as_ref()
                    .and_then(|s| secret::key_text(s, &reference.key))
                {
                    Some(password) => password,
                    None => {
                        return Ok(Err((
                            PASSWORD_SECRET_NOT_FOUND,
                            format!(
                                "Secret {} has no key {} with a password",
                                reference.name, reference.key
                            ),
                        )))
                    }
                }
            } else if let Some(kept) = existing
                .as_ref()
                .and_then(|s| secret::key_text(s, secret::PASSWORD_KEY))
            {
                kept
            } else {
                match secret::generate_password() {
                    Ok(password) => password,
                    Err(e) => return Ok(Err((PASSWORD_GENERATION_FAILED, e.to_string()))),
                }
            };
            Ok(Ok(Credential::Scram { password, existing }))
        }
    }
}

/// Makes the brokers hold exactly `desired`, noting each change made in `changes` (also
/// the ones before a failure, so their Event is not lost).
async fn apply_to_brokers(
    ctx: &Context,
    bootstrap: &Brokers,
    desired: &Desired,
    credential: &Credential,
    changes: &mut Vec<String>,
) -> Result<(), AdminError> {
    let username = &desired.username;
    let observed = ctx.admin.observe(bootstrap, username).await?;

    if let Credential::Scram { password, existing } = credential {
        let recorded = existing.as_ref().and_then(secret::recorded_hash);
        let hash = secret::password_hash(username, password);
        if !observed.scram || recorded != Some(hash.as_str()) {
            ctx.admin
                .upsert_scram(bootstrap, username, password)
                .await?;
            changes.push(if observed.scram {
                format!("changed the SCRAM-SHA-512 password of {username}")
            } else {
                format!("created the SCRAM-SHA-512 credential of {username}")
            });
        }
    }

    let diff = plan::acl_diff(&desired.acls, &observed.acls);
    if !diff.create.is_empty() {
        ctx.admin.create_acls(bootstrap, &diff.create).await?;
        changes.push(format!("created ACLs {}", describe_acls(&diff.create)));
    }
    if !diff.delete.is_empty() {
        ctx.admin.delete_acls(bootstrap, &diff.delete).await?;
        changes.push(format!("deleted ACLs {}", describe_acls(&diff.delete)));
    }

    let ops = plan::quota_ops(&desired.quotas, &observed.quotas);
    if !ops.is_empty() {
        ctx.admin.alter_quotas(bootstrap, username, &ops).await?;
        changes.push(format!(
            "changed quotas of {username}: {}",
            describe_quotas(&ops)
        ));
    }
    Ok(())
}

/// Everything the brokers hold for `username`: its SCRAM credential, ACLs and quotas.
async fn remove_from_brokers(
    ctx: &Context,
    bootstrap: &Brokers,
    username: &str,
) -> Result<(), AdminError> {
    let observed = ctx.admin.observe(bootstrap, username).await?;
    if observed.scram {
        ctx.admin.delete_scram(bootstrap, username).await?;
    }
    ctx.admin.delete_acls(bootstrap, &observed.acls).await?;
    let ops: Vec<QuotaOp> = observed
        .quotas
        .keys()
        .map(|k| QuotaOp::Remove { key: k.clone() })
        .collect();
    ctx.admin.alter_quotas(bootstrap, username, &ops).await
}

fn describe_acls(acls: &[AclBinding]) -> String {
    acls.iter()
        .map(|b| {
            format!(
                "{:?} {:?} {:?} {}{} from {}",
                b.permission,
                b.operation,
                b.resource_type,
                b.resource_name,
                if b.pattern_type == strom_client::admin_security::PatternType::Prefixed {
                    "*"
                } else {
                    ""
                },
                b.host
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_quotas(ops: &[QuotaOp]) -> String {
    ops.iter()
        .map(|op| match op {
            QuotaOp::Set { key, value } => format!("{key}={value}"),
            QuotaOp::Remove { key } => format!("-{key}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deletion: the credential, ACLs and quotas go from the brokers (unless the cluster is
/// gone, and they with it), then the Secret, then the finalizer.
async fn cleanup(user: &KafkaUser, ctx: &Context) -> Result<Action, Error> {
    if !status::has_finalizer(user) {
        return Ok(Action::await_change());
    }
    let name = user.name_any();
    let ns = namespace(user);
    if let Some(cluster_name) = status::cluster_label(user) {
        let cluster = ctx
            .api::<KafkaCluster>(&ns)
            .get_opt(&cluster_name)
            .await?
            .filter(|c| c.meta().deletion_timestamp.is_none());
        if let Some(cluster) = cluster {
            let bootstrap = access::for_cluster(&ctx.client, &cluster).await?;
            // The principal the spec says, and the one last applied if it differs.
            let mut usernames = vec![plan::username(&name, user.spec.authentication.kind)];
            if let Some(previous) = status::previous_username(user) {
                if !usernames.contains(&previous) {
                    usernames.push(previous);
                }
            }
            for username in &usernames {
                remove_from_brokers(ctx, &bootstrap, username)
                    .await
                    .map_err(|source| Error::Delete {
                        user: username.clone(),
                        source,
                    })?;
            }
            publish(
                user,
                ctx,
                EventType::Normal,
                "Deleted",
                "Delete",
                format!("removed {} from the brokers", usernames.join(", ")),
            )
            .await;
        }
    }
    let secrets: Api<Secret> = ctx.api(&ns);
    if let Some(own) = secrets
        .get_opt(&name)
        .await?
        .filter(|s| secret::owned_by(s, user))
    {
        apply::delete_if_present(&secrets, &own.name_any()).await?;
    }
    remove_finalizer(user, ctx).await?;
    ctx.succeeded(&key(user));
    Ok(Action::await_change())
}

async fn ensure_finalizer(user: &KafkaUser, ctx: &Context) -> Result<(), Error> {
    if status::has_finalizer(user) {
        return Ok(());
    }
    let mut finalizers = user.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    patch_finalizers(user, ctx, finalizers).await
}

async fn remove_finalizer(user: &KafkaUser, ctx: &Context) -> Result<(), Error> {
    let finalizers = user
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(user, ctx, finalizers).await
}

/// A merge patch carrying the resourceVersion, so a concurrent change of the list makes the
/// API server answer 409 (and the reconcile retries) instead of losing someone's finalizer.
async fn patch_finalizers(
    user: &KafkaUser,
    ctx: &Context,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let api: Api<KafkaUser> = ctx.api(&namespace(user));
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": user.resource_version(),
        }
    });
    api.patch(
        &user.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Writes status only when it differs (server-side apply), and records an Event when
/// Ready changes.
async fn write_status(
    user: &KafkaUser,
    ctx: &Context,
    problem: Option<(String, String)>,
    username: Option<String>,
    secret: Option<String>,
) -> Result<(), Error> {
    let status = status::status(user, problem, username, secret, (ctx.clock)());
    let previous = user.status.clone().unwrap_or_default();
    if previous == status {
        return Ok(());
    }
    let api: Api<KafkaUser> = ctx.api(&namespace(user));
    let patch = json!({
        "apiVersion": "kafka.strom.dev/v1alpha1",
        "kind": "KafkaUser",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&user.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    events::announce_ready_transition(
        &ctx.recorder,
        user,
        &previous.conditions,
        &status.conditions,
    )
    .await;
    Ok(())
}

async fn publish(
    user: &KafkaUser,
    ctx: &Context,
    kind: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    events::publish(&ctx.recorder, user, kind, reason, action, note, None).await;
}
