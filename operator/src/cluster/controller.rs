//! Runs the KafkaCluster controller over all namespaces or a list of them, watching the
//! objects it owns so a deleted Service or an edited StatefulSet is put back at once, and
//! beside it the KafkaTopic and KafkaUser controllers (`crate::topic`, `crate::user`).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::reconcile::{error_policy, reconcile, Context};
use crate::crd::KafkaCluster;

/// Which namespaces to watch: every one, or a fixed list (WATCH_NAMESPACES).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespaces(Vec<String>),
}

impl Scope {
    /// Parses WATCH_NAMESPACES: comma-separated, blank means all.
    pub fn parse(value: &str) -> Scope {
        let list: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if list.is_empty() {
            Scope::All
        } else {
            Scope::Namespaces(list)
        }
    }

    pub(crate) fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match self {
            Scope::All => vec![Api::all(client.clone())],
            Scope::Namespaces(list) => list
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect(),
        }
    }
}

/// Runs the KafkaCluster, KafkaTopic and KafkaUser controllers until `shutdown` turns true;
/// in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, scope: Scope, shutdown: watch::Receiver<bool>) {
    let topics = Arc::new(crate::topic::reconcile::Context::new(
        ctx.client.clone(),
        ctx.metrics.clone(),
        ctx.recorder.clone(),
    ));
    let users = Arc::new(crate::user::reconcile::Context::new(
        ctx.client.clone(),
        ctx.metrics.clone(),
        ctx.recorder.clone(),
    ));
    futures::future::join3(
        run_clusters(ctx, scope.clone(), shutdown.clone()),
        crate::topic::controller::run(topics, scope.clone(), shutdown.clone()),
        crate::user::controller::run(users, scope, shutdown),
    )
    .await;
}

async fn run_clusters(ctx: Arc<Context>, scope: Scope, shutdown: watch::Receiver<bool>) {
    let client = ctx.client.clone();
    let controllers = scope.apis::<KafkaCluster>(&client).into_iter().map(|api| {
        let ns = api.namespace().map(str::to_string);
        let ns = ns.as_deref();
        let mut stop = shutdown.clone();
        Controller::new(api, watcher::Config::default().any_semantic())
            .owns(api_for::<StatefulSet>(&client, ns), managed())
            .owns(api_for::<ConfigMap>(&client, ns), managed())
            .owns(api_for::<Service>(&client, ns), managed())
            .owns(api_for::<ServiceAccount>(&client, ns), managed())
            .owns(api_for::<PodDisruptionBudget>(&client, ns), managed())
            .owns(api_for::<NetworkPolicy>(&client, ns), managed())
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                match result {
                    Ok((object, _)) => tracing::debug!(cluster = %object, "reconciled"),
                    Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
                }
            })
    });
    futures::future::join_all(controllers).await;
}

fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + DeserializeOwned,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// How many KafkaTopics (or KafkaUsers) reconcile at once. kube-rs runs every queued
/// object at once by default: a thousand applied together then flood the API server's
/// priority level (and the brokers) with a thousand reconciles' requests, and the
/// operator's own lease renewals queue behind them until the lease is lost. A bound keeps
/// the burst's throughput (each reconcile mostly waits on the network) without the flood.
pub(crate) const RESOURCE_RECONCILE_CONCURRENCY: u16 = 16;

/// Only objects the operator made, so the watches stay small in a busy cluster.
fn managed() -> watcher::Config {
    watcher::Config::default().labels("app.kubernetes.io/managed-by=strom-operator")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_namespaces_parse() {
        assert_eq!(Scope::parse(""), Scope::All);
        assert_eq!(Scope::parse(" , "), Scope::All);
        assert_eq!(
            Scope::parse("kafka, team-a,"),
            Scope::Namespaces(vec!["kafka".into(), "team-a".into()])
        );
    }
}
