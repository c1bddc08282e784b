//! What a topic reconcile knows about the other objects it depends on: its KafkaCluster
//! and the KafkaTopics that could name the same topic. Read from the controller's
//! reflector stores, so a thousand topics reconciling do not make a thousand GETs of
//! their cluster and a thousand LISTs of each other (n² objects read from the API server
//! per resync). Without stores (the reconcile tests that do not fill any) every answer is
//! `None` and the reconcile asks the API, as before.
//!
//! A store may lag behind the API. The reconcile therefore trusts it only where a lag
//! cannot change a decision, and asks the API otherwise (see `reconcile`):
//! - a cluster the stores do not hold may have been created a moment ago: GET it;
//! - no older resource naming the same topic: one created before this topic came through
//!   the same watch before this topic's own event, so the topic store already holds it;
//! - a conflict or another claimant found in the store may have gone a moment ago:
//!   confirmed with a LIST before a topic is given up or kept on deletion.

use std::sync::{Arc, RwLock};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

use super::status;
use crate::crd::{KafkaCluster, KafkaTopic};

/// The stores of the controllers that run (one per watched namespace, or one for all).
#[derive(Default)]
pub struct TopicIndex {
    clusters: RwLock<Vec<Store<KafkaCluster>>>,
    topics: RwLock<Vec<Store<KafkaTopic>>>,
}

impl TopicIndex {
    pub fn add_clusters(&self, store: Store<KafkaCluster>) {
        if let Ok(mut stores) = self.clusters.write() {
            stores.push(store);
        }
    }

    pub fn add_topics(&self, store: Store<KafkaTopic>) {
        if let Ok(mut stores) = self.topics.write() {
            stores.push(store);
        }
    }

    /// The cluster as a store holds it; `None` when no store holds it (it may not exist,
    /// or be too new for the store).
    pub fn cluster(&self, namespace: &str, name: &str) -> Option<Arc<KafkaCluster>> {
        let stores = self.clusters.read().ok()?;
        let key = ObjectRef::new(name).within(namespace);
        stores.iter().find_map(|s| s.get(&key))
    }

    /// The KafkaTopics of `cluster` in `namespace` that name Kafka topic `topic`, as the
    /// stores hold them; `None` without a topic store. Only those are copied: the others
    /// cannot conflict, and copying all n for each of n topics is what this avoids.
    pub fn siblings(&self, namespace: &str, cluster: &str, topic: &str) -> Option<Vec<KafkaTopic>> {
        let stores = self.topics.read().ok()?;
        if stores.is_empty() {
            return None;
        }
        Some(
            stores
                .iter()
                .flat_map(|s| {
                    s.state_filter(|t| {
                        t.namespace().as_deref() == Some(namespace)
                            && status::cluster_label(t).as_deref() == Some(cluster)
                            && status::topic_name(t) == topic
                    })
                })
                .map(|t| t.as_ref().clone())
                .collect(),
        )
    }
}
