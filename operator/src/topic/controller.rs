//! Runs the KafkaTopic controller over all namespaces or the WATCH_NAMESPACES list.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::{watcher, Controller};
use tokio::sync::watch;

use super::reconcile::{error_policy, reconcile, Context};
use crate::cluster::controller::Scope;
use crate::crd::KafkaTopic;

/// Runs until `shutdown` turns true; in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, scope: Scope, shutdown: watch::Receiver<bool>) {
    let client = ctx.client.clone();
    let controllers = scope.apis::<KafkaTopic>(&client).into_iter().map(|api| {
        let mut stop = shutdown.clone();
        Controller::new(api, watcher::Config::default().any_semantic())
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                match result {
                    Ok((object, _)) => tracing::debug!(topic = %object, "reconciled"),
                    Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
                }
            })
    });
    futures::future::join_all(controllers).await;
}
