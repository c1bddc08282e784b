//! Runs the KafkaUser controller over all namespaces or the WATCH_NAMESPACES list. A
//! KafkaCluster's changes wake the users that wait for it; a change to a user's own
//! Secret (edited or deleted by hand) wakes that user, which writes it back.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, ResourceExt};
use tokio::sync::watch;

use super::reconcile::{error_policy, reconcile, Context};
use super::status;
use crate::cluster::controller::Scope;
use crate::crd::{KafkaCluster, KafkaUser};

/// Runs until `shutdown` turns true; in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, scope: Scope, shutdown: watch::Receiver<bool>) {
    let client = ctx.client.clone();
    let controllers = scope.apis::<KafkaUser>(&client).into_iter().map(|api| {
        let (clusters, secrets): (Api<KafkaCluster>, Api<Secret>) = match api.namespace() {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let mut stop = shutdown.clone();
        let controller = Controller::new(api, watcher::Config::default().any_semantic());
        let users = controller.store();
        controller
            // Only the operator's own Secrets: watching every Secret would hold them all
            // in memory.
            .owns(
                secrets,
                watcher::Config::default().labels("app.kubernetes.io/managed-by=strom-operator"),
            )
            .watches(
                clusters,
                watcher::Config::default().any_semantic(),
                move |cluster: KafkaCluster| {
                    let ns = cluster.namespace().unwrap_or_default();
                    let name = cluster.name_any();
                    users
                        .state_filter(|u| status::waits_for_cluster(u, &ns, &name))
                        .iter()
                        .map(|u| ObjectRef::from_obj(u.as_ref()))
                        .collect::<Vec<_>>()
                },
            )
            .with_config(
                ControllerConfig::default()
                    .concurrency(crate::cluster::controller::RESOURCE_RECONCILE_CONCURRENCY),
            )
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                match result {
                    Ok((object, _)) => tracing::debug!(user = %object, "reconciled"),
                    Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
                }
            })
    });
    futures::future::join_all(controllers).await;
}
