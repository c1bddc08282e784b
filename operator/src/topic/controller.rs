//! Runs the KafkaTopic controller over all namespaces or the WATCH_NAMESPACES list. A
//! KafkaCluster's changes wake the topics that wait for it (not found, or its brokers not
//! reachable yet), so they need not sit out their requeue or back-off; topics in sync are
//! left to their own schedule.
//!
//! The reconciles read the clusters and the other topics from reflector stores
//! (`TopicIndex`) rather than the API: the controller's own store of topics, and one of
//! clusters kept by a reflector of its own (kube-rs' stable API has no way to share the
//! `watches` stream's store; a second watch of the few clusters costs little).

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, ResourceExt};
use tokio::sync::watch;

use super::reconcile::{error_policy, reconcile, Context};
use super::status;
use crate::cluster::controller::Scope;
use crate::crd::{KafkaCluster, KafkaTopic};

/// Runs until `shutdown` turns true; in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, scope: Scope, shutdown: watch::Receiver<bool>) {
    let client = ctx.client.clone();
    let controllers = scope.apis::<KafkaTopic>(&client).into_iter().map(|api| {
        let clusters: Api<KafkaCluster> = match api.namespace() {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut stop = shutdown.clone();
        let mut stop_reflector = shutdown.clone();
        let (cluster_store, writer) = reflector::store();
        ctx.index.add_clusters(cluster_store);
        let cluster_reflector = reflector::reflector(
            writer,
            watcher(clusters.clone(), watcher::Config::default().any_semantic()).default_backoff(),
        )
        .take_until(async move {
            let _ = stop_reflector.wait_for(|stopping| *stopping).await;
        })
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::debug!(error = %e, "KafkaCluster watch");
            }
        });
        let controller = Controller::new(api, watcher::Config::default().any_semantic());
        let topics = controller.store();
        ctx.index.add_topics(topics.clone());
        let controller = controller
            .watches(
                clusters,
                watcher::Config::default().any_semantic(),
                move |cluster: KafkaCluster| {
                    let ns = cluster.namespace().unwrap_or_default();
                    let name = cluster.name_any();
                    topics
                        .state_filter(|t| status::waits_for_cluster(t, &ns, &name))
                        .iter()
                        .map(|t| ObjectRef::from_obj(t.as_ref()))
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
                    Ok((object, _)) => tracing::debug!(topic = %object, "reconciled"),
                    Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
                }
            });
        async move {
            futures::future::join(controller, cluster_reflector).await;
        }
    });
    futures::future::join_all(controllers).await;
}
