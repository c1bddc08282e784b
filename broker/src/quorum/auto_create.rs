//! Auto-creation of topics a client names (Metadata with `allow_auto_topic_creation`, or
//! Produce), Kafka's AutoTopicCreationManager way: a request never creates anything
//! itself. It admits the unknown names into a bounded queue and answers at once
//! (LEADER_NOT_AVAILABLE while a topic is being created); one background task sends the
//! queue to the active controller in batches, one CreateTopics decision and one commit per
//! batch. So a request naming 100,000 topics costs one pass over its names, at most
//! `auto.create.topics.max.per.request` of them are created, and nothing keeps running on
//! its behalf after the client has gone beyond the batches already admitted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::requests::{ControllerOk, ControllerRequest};
use super::Metadata;
use crate::controller::{Defaults, NewTopic};
use crate::error::ApiError;

/// The most topics one controller request carries: big enough that a burst of
/// auto-creations costs few commits, small enough that one decision stays short (each
/// topic is checked against every existing name for collisions).
const BATCH: usize = 500;

/// How many topics auto-creation may take on, from the broker config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoCreateLimits {
    /// `auto.create.topics.max.per.request`: topics one request may submit.
    pub per_request: usize,
    /// `auto.create.topics.max.pending`: topics queued or in flight at once, broker-wide.
    pub pending: usize,
    /// `auto.create.topics.max.pending.per.client`: of those, how many one client (its
    /// client id, or its address without one) may have, so one client cannot take the
    /// whole queue from the others.
    pub per_client: usize,
}

/// What auto-creation does with one unknown, validly named topic of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Queued for creation by this request.
    Submitted,
    /// Already queued or in flight (an earlier request, or a repeat in this one).
    InProgress,
    /// Not created: this request already submitted `per_request` topics.
    OverRequestLimit,
    /// Not created: `pending` topics are already waiting for the controller.
    OverPendingLimit,
    /// Not created: this client already has `per_client` topics waiting.
    OverClientLimit,
    /// Not created: its partitions would exceed the broker's partition headroom.
    OverPartitionLimit,
}

impl Admission {
    /// The error a client sees for the topic: LEADER_NOT_AVAILABLE (retriable, as Kafka
    /// answers while a topic is created) or UNKNOWN_TOPIC_OR_PARTITION when it was not
    /// admitted (also retriable: a client that keeps asking gets it created once the
    /// queue has room).
    pub fn error(self, name: &str, limits: &AutoCreateLimits) -> ApiError {
        let (code, why) = match self {
            Admission::Submitted | Admission::InProgress => (
                ResponseError::LeaderNotAvailable,
                format!("topic '{name}' is being created"),
            ),
            Admission::OverRequestLimit => (
                ResponseError::UnknownTopicOrPartition,
                format!(
                    "topic '{name}' does not exist and was not auto-created: a request may auto-create at most {} topics (auto.create.topics.max.per.request)",
                    limits.per_request
                ),
            ),
            Admission::OverPendingLimit => (
                ResponseError::UnknownTopicOrPartition,
                format!(
                    "topic '{name}' does not exist and was not auto-created: {} topics are already being created (auto.create.topics.max.pending)",
                    limits.pending
                ),
            ),
            Admission::OverClientLimit => (
                ResponseError::UnknownTopicOrPartition,
                format!(
                    "topic '{name}' does not exist and was not auto-created: this client already has {} topics being created (auto.create.topics.max.pending.per.client)",
                    limits.per_client
                ),
            ),
            Admission::OverPartitionLimit => (
                ResponseError::UnknownTopicOrPartition,
                format!(
                    "topic '{name}' does not exist and was not auto-created: the broker's partition limit is reached"
                ),
            ),
        };
        ApiError::new(code, why)
    }
}

/// Decides which of a request's unknown topic names are admitted for creation. Pure, so
/// the bounds are tested directly. `in_progress` tells names already queued or in flight;
/// `pending` is how many are, `client_pending` how many of them the asking client's;
/// `partition_headroom` is how many more partitions the broker
/// may take on (`None`: no limit) and `partitions_per_topic` what each new topic costs.
pub fn admit(
    names: &[&str],
    in_progress: &dyn Fn(&str) -> bool,
    pending: usize,
    client_pending: usize,
    limits: &AutoCreateLimits,
    partition_headroom: Option<u64>,
    partitions_per_topic: u64,
) -> Vec<Admission> {
    let mut submitted: HashSet<&str> = HashSet::new();
    let mut headroom = partition_headroom;
    names
        .iter()
        .map(|name| {
            if in_progress(name) || submitted.contains(name) {
                return Admission::InProgress;
            }
            if submitted.len() >= limits.per_request {
                return Admission::OverRequestLimit;
            }
            if pending + submitted.len() >= limits.pending {
                return Admission::OverPendingLimit;
            }
            if client_pending + submitted.len() >= limits.per_client {
                return Admission::OverClientLimit;
            }
            if let Some(room) = headroom.as_mut() {
                if *room < partitions_per_topic {
                    return Admission::OverPartitionLimit;
                }
                *room -= partitions_per_topic;
            }
            submitted.insert(name);
            Admission::Submitted
        })
        .collect()
}

#[derive(Debug, Default)]
struct Queue {
    /// Admitted, not yet sent to the controller, oldest first.
    waiting: VecDeque<String>,
    /// Waiting or in flight, with the client that asked: what `admit` counts as in
    /// progress.
    pending: HashMap<String, String>,
    /// How many of `pending` each client asked for.
    by_client: HashMap<String, usize>,
}

/// The broker's auto-creation queue and the task that drains it.
#[derive(Debug)]
pub struct AutoCreator {
    limits: AutoCreateLimits,
    queue: Mutex<Queue>,
    wake: Notify,
}

impl AutoCreator {
    pub fn new(limits: AutoCreateLimits) -> AutoCreator {
        AutoCreator {
            limits,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        }
    }

    pub fn limits(&self) -> &AutoCreateLimits {
        &self.limits
    }

    /// How many topics are queued or in flight.
    pub fn pending(&self) -> usize {
        self.queue.lock().pending.len()
    }

    /// Admits the given unknown, validly named topics and queues those admitted. Never
    /// waits: the caller answers its client at once.
    pub fn submit(
        &self,
        names: &[&str],
        client: &str,
        partition_headroom: Option<u64>,
        partitions_per_topic: u64,
    ) -> Vec<Admission> {
        let mut queue = self.queue.lock();
        let verdicts = admit(
            names,
            &|n| queue.pending.contains_key(n),
            queue.pending.len(),
            queue.by_client.get(client).copied().unwrap_or(0),
            &self.limits,
            partition_headroom,
            partitions_per_topic,
        );
        let mut any = false;
        for (name, verdict) in names.iter().zip(&verdicts) {
            if *verdict == Admission::Submitted {
                queue.pending.insert(name.to_string(), client.to_string());
                *queue.by_client.entry(client.to_string()).or_default() += 1;
                queue.waiting.push_back(name.to_string());
                any = true;
            }
        }
        drop(queue);
        if any {
            self.wake.notify_one();
        }
        verdicts
    }

    /// Sends the queue to the active controller in batches, for ever. A batch the
    /// controller does not answer is dropped (its topics leave the queue, so a client
    /// still asking submits them again) rather than retried here: the work stays bounded
    /// by what clients keep asking for.
    pub async fn run(&self, metadata: Metadata, defaults: Defaults, timeout: Duration) {
        loop {
            let batch: Vec<String> = {
                let mut queue = self.queue.lock();
                let n = queue.waiting.len().min(BATCH);
                queue.waiting.drain(..n).collect()
            };
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            let topics = batch
                .iter()
                .map(|name| NewTopic {
                    name: name.clone(),
                    num_partitions: -1,
                    replication_factor: -1,
                    ..Default::default()
                })
                .collect();
            let request = ControllerRequest::CreateTopics {
                topics,
                defaults: defaults.clone(),
            };
            match metadata.request(request, timeout).await {
                Ok(ControllerOk::CreatedTopics(outcomes)) => {
                    let created = outcomes
                        .iter()
                        .filter(|(_, r)| matches!(r, Ok(true)))
                        .count();
                    tracing::info!(topics = created, "auto-created topics");
                    for (name, outcome) in &outcomes {
                        if let Err(e) = outcome {
                            tracing::warn!(topic = %name, error = %e, "auto-creating topic refused");
                        }
                    }
                }
                Ok(other) => tracing::warn!(?other, "unexpected reply to CreateTopics"),
                Err(e) => {
                    tracing::warn!(topics = batch.len(), error = %e, "auto-creating topics failed")
                }
            }
            let mut queue = self.queue.lock();
            for name in &batch {
                if let Some(client) = queue.pending.remove(name) {
                    if let Some(n) = queue.by_client.get_mut(&client) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            queue.by_client.remove(&client);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: AutoCreateLimits = AutoCreateLimits {
        per_request: 3,
        pending: 5,
        per_client: 4,
    };

    fn nothing(_: &str) -> bool {
        false
    }

    #[test]
    fn a_request_submits_at_most_its_bound_and_repeats_once() {
        let verdicts = admit(
            &["a", "b", "a", "c", "d", "e"],
            &nothing,
            0,
            0,
            &LIMITS,
            None,
            1,
        );
        use Admission::*;
        assert_eq!(
            verdicts,
            vec![
                Submitted,
                Submitted,
                InProgress,
                Submitted,
                OverRequestLimit,
                OverRequestLimit
            ]
        );
    }

    #[test]
    fn the_pending_bound_and_partition_headroom_hold_across_requests() {
        use Admission::*;
        let queued = |n: &str| n == "q";
        assert_eq!(
            admit(&["q", "x", "y", "z"], &queued, 4, 0, &LIMITS, None, 1),
            vec![InProgress, Submitted, OverPendingLimit, OverPendingLimit]
        );
        assert_eq!(
            admit(&["x", "y", "z"], &nothing, 0, 0, &LIMITS, Some(5), 2),
            vec![Submitted, Submitted, OverPartitionLimit]
        );
        // A client with three waiting may add one more, whatever the queue's room.
        assert_eq!(
            admit(&["x", "y"], &nothing, 3, 3, &LIMITS, None, 1),
            vec![Submitted, OverClientLimit]
        );
    }

    #[test]
    fn submissions_queue_once_and_answer_leader_not_available() {
        let creator = AutoCreator::new(LIMITS);
        let first = creator.submit(&["a", "b"], "one", None, 1);
        assert_eq!(first, vec![Admission::Submitted; 2]);
        let again = creator.submit(&["b", "c"], "one", None, 1);
        assert_eq!(again, vec![Admission::InProgress, Admission::Submitted]);
        assert_eq!(creator.pending(), 3);
        // Client "one" holds three of its four; another client still gets in.
        assert_eq!(
            creator.submit(&["d", "e"], "one", None, 1),
            vec![Admission::Submitted, Admission::OverClientLimit]
        );
        assert_eq!(
            creator.submit(&["e"], "two", None, 1),
            vec![Admission::Submitted]
        );
        let e = again[0].error("b", creator.limits());
        assert_eq!(e.error, ResponseError::LeaderNotAvailable);
        let e = Admission::OverRequestLimit.error("z", creator.limits());
        assert_eq!(e.error, ResponseError::UnknownTopicOrPartition);
        assert!(e.message.contains("auto.create.topics.max.per.request"));
    }
}
