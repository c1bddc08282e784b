//! The broker calls of a topic reconcile, through `strom_client::admin`: observe one
//! topic (Metadata, DescribeConfigs), make a plan's steps (CreateTopics, CreatePartitions,
//! IncrementalAlterConfigs) and delete it (DeleteTopics). Behind the `TopicAdmin` trait
//! so the reconcile tests put a fake in its place. Connections are pooled per cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use strom_client::admin::{Admin, AdminError, NewTopic, Outcome, Refused};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::plan::{Observed, Step};
use crate::access::Brokers;

const CLIENT_ID: &str = "strom-operator";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Above the 30 s the brokers are given for a create or delete.
const CALL_TIMEOUT: Duration = Duration::from_secs(35);
/// How long a connection is reused: the operator's certificate of a secured cluster is
/// renewed, and brokers come and go, so even a healthy connection is replaced after this.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// Connections open at once per cluster. The controller starts every topic's reconcile
/// together (at start, and their resyncs stay in step), so without a bound a thousand
/// topics would still open a thousand connections at once; calls beyond this wait for a
/// connection instead, which on loopback takes a millisecond.
const MAX_CONNECTIONS_PER_CLUSTER: usize = 8;

/// The broker calls for one topic, to the brokers `bootstrap` names.
pub trait TopicAdmin: Send + Sync {
    /// The topic as the brokers have it; `None` when it does not exist.
    fn observe<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Option<Observed>, AdminError>>;
    /// Makes `steps` in order, stopping at the first refusal. Returns the new topic's id
    /// when a step created it.
    fn apply<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
        steps: &'a [Step],
    ) -> BoxFuture<'a, Result<Option<String>, AdminError>>;
    /// Deletes the topic; one that does not exist counts as deleted.
    fn delete<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>>;
}

/// The real thing, reusing connections per cluster: a thousand topics reconciling would
/// otherwise open a thousand connections (TLS handshakes, for a secured cluster) each
/// resync. A connection goes back to the pool only after a call the broker answered (an
/// answer, or a Kafka refusal); any other failure drops it, and a failure on a reused
/// connection is retried once on a fresh one, since a broker restart leaves every idle
/// connection broken.
#[derive(Default)]
pub struct KafkaTopicAdmin {
    pools: Mutex<HashMap<String, Pool>>,
}

struct Pool {
    idle: Vec<Pooled>,
    permits: Arc<Semaphore>,
}

struct Pooled {
    admin: Admin,
    opened: Instant,
    /// Held while the connection is in use.
    _permit: Option<OwnedSemaphorePermit>,
}

/// Whether the connection a call failed on may still be used: the broker answered.
fn connection_ok<T>(result: &Result<T, AdminError>) -> bool {
    matches!(result, Ok(_) | Err(AdminError::Refused(_)))
}

impl KafkaTopicAdmin {
    /// Connections are per bootstrap list and protocol; certificates change with their
    /// Secret within `MAX_CONNECTION_AGE`.
    fn pool_key(bootstrap: &Brokers) -> String {
        format!(
            "{}|{}",
            bootstrap.security.protocol(),
            bootstrap.addresses.join(",")
        )
    }

    fn permits(&self, key: &str) -> Option<Arc<Semaphore>> {
        let mut pools = self.pools.lock().ok()?;
        let pool = pools.entry(key.to_string()).or_insert_with(|| Pool {
            idle: Vec::new(),
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_CLUSTER)),
        });
        Some(pool.permits.clone())
    }

    /// Waits for a turn, then an idle connection young enough, else a new one; true when
    /// reused.
    async fn checkout(&self, bootstrap: &Brokers) -> Result<(Pooled, bool), AdminError> {
        let key = Self::pool_key(bootstrap);
        // A poisoned lock only costs the bound, never the call.
        let permit = match self.permits(&key) {
            Some(permits) => permits.acquire_owned().await.ok(),
            None => None,
        };
        let reused = self.pools.lock().ok().and_then(|mut pools| {
            let pool = pools.get_mut(&key)?;
            pool.idle
                .retain(|c| c.opened.elapsed() < MAX_CONNECTION_AGE);
            pool.idle.pop()
        });
        if let Some(mut conn) = reused {
            conn._permit = permit;
            return Ok((conn, true));
        }
        let admin = connect(bootstrap).await?;
        Ok((
            Pooled {
                admin,
                opened: Instant::now(),
                _permit: permit,
            },
            false,
        ))
    }

    /// Back to the pool; the turn is given up either way.
    fn checkin(&self, bootstrap: &Brokers, mut conn: Pooled) {
        conn._permit = None;
        if conn.opened.elapsed() >= MAX_CONNECTION_AGE {
            return;
        }
        if let Ok(mut pools) = self.pools.lock() {
            if let Some(pool) = pools.get_mut(&Self::pool_key(bootstrap)) {
                if pool.idle.len() < MAX_CONNECTIONS_PER_CLUSTER {
                    pool.idle.push(conn);
                }
            }
        }
    }
}

/// One call on a pooled connection, as described on [`KafkaTopicAdmin`]. A macro rather
/// than a function taking a closure: the call borrows the connection and the caller's
/// arguments for different lifetimes, which a closure returning a future cannot express.
macro_rules! pooled {
    ($pool:expr, $bootstrap:expr, |$admin:ident| $call:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut conn, reused) = $pool.checkout($bootstrap).await?;
            let result = {
                let $admin = &mut conn.admin;
                $call.await
            };
            if connection_ok(&result) {
                $pool.checkin($bootstrap, conn);
            } else if reused && attempt == 1 {
                continue;
            }
            break result;
        }
    }};
}

impl TopicAdmin for KafkaTopicAdmin {
    fn observe<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Option<Observed>, AdminError>> {
        Box::pin(async move { pooled!(self, bootstrap, |admin| observe_on(admin, topic)) })
    }
    fn apply<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
        steps: &'a [Step],
    ) -> BoxFuture<'a, Result<Option<String>, AdminError>> {
        Box::pin(async move {
            if steps.is_empty() {
                return Ok(None);
            }
            // A create retried after its answer was lost comes back TopicAlreadyExists,
            // which the reconcile takes as "look again soon".
            pooled!(self, bootstrap, |admin| apply_on(admin, topic, steps))
        })
    }
    fn delete<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move { pooled!(self, bootstrap, |admin| delete_on(admin, topic)) })
    }
}

async fn connect(bootstrap: &Brokers) -> Result<Admin, AdminError> {
    Admin::connect_with(
        &bootstrap.addresses,
        &bootstrap.security,
        CLIENT_ID,
        CONNECT_TIMEOUT,
        CALL_TIMEOUT,
    )
    .await
}

/// The one answer for `topic` in a batch of one; a broker that leaves it out refused it.
fn only<T>(
    api: &'static str,
    topic: &str,
    mut answers: BTreeMap<String, Outcome<T>>,
) -> Result<T, AdminError> {
    match answers.remove(topic) {
        Some(outcome) => Ok(outcome?),
        None => Err(AdminError::Refused(Refused {
            api,
            resource: format!("topic {topic}"),
            code: ResponseError::UnknownServerError.code(),
            message: Some("the broker's answer did not name the topic".into()),
        })),
    }
}

/// [`observe_on`] a connection of its own.
pub async fn observe(bootstrap: &Brokers, topic: &str) -> Result<Option<Observed>, AdminError> {
    observe_on(&mut connect(bootstrap).await?, topic).await
}

/// [`apply_on`] a connection of its own.
pub async fn apply(
    bootstrap: &Brokers,
    topic: &str,
    steps: &[Step],
) -> Result<Option<String>, AdminError> {
    if steps.is_empty() {
        return Ok(None);
    }
    apply_on(&mut connect(bootstrap).await?, topic, steps).await
}

/// [`delete_on`] a connection of its own.
pub async fn delete(bootstrap: &Brokers, topic: &str) -> Result<(), AdminError> {
    delete_on(&mut connect(bootstrap).await?, topic).await
}

pub async fn observe_on(admin: &mut Admin, topic: &str) -> Result<Option<Observed>, AdminError> {
    let names = [topic.to_string()];
    let described = admin.describe_topics(&names).await?;
    let Some(description) = only("Metadata", topic, described)? else {
        return Ok(None);
    };
    let configs = admin.describe_topic_configs(&names).await?;
    let config = match only("DescribeConfigs", topic, configs) {
        Ok(config) => config,
        // Deleted between the two requests.
        Err(AdminError::Refused(r))
            if r.error() == Some(ResponseError::UnknownTopicOrPartition) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(Some(Observed {
        topic_id: description.topic_id,
        partitions: description.partitions,
        replicas: description.replication_factor,
        config,
    }))
}

pub async fn apply_on(
    admin: &mut Admin,
    topic: &str,
    steps: &[Step],
) -> Result<Option<String>, AdminError> {
    let mut created = None;
    for step in steps {
        match step {
            Step::Create {
                partitions,
                replicas,
                config,
            } => {
                let new = NewTopic {
                    name: topic.to_string(),
                    partitions: *partitions,
                    // The CRD caps replicas at 32767.
                    replication_factor: i16::try_from(*replicas).unwrap_or(i16::MAX),
                    configs: config.clone(),
                };
                let answers = admin.create_topics(&[new]).await?;
                created = Some(only("CreateTopics", topic, answers)?.topic_id);
            }
            Step::AddPartitions { total } => {
                let answers = admin
                    .create_partitions(&BTreeMap::from([(topic.to_string(), *total)]))
                    .await?;
                only("CreatePartitions", topic, answers)?;
            }
            Step::AlterConfig(ops) => {
                let answers = admin
                    .alter_topic_configs(&BTreeMap::from([(topic.to_string(), ops.clone())]))
                    .await?;
                only("IncrementalAlterConfigs", topic, answers)?;
            }
        }
    }
    Ok(created)
}

pub async fn delete_on(admin: &mut Admin, topic: &str) -> Result<(), AdminError> {
    let answers = admin.delete_topics(&[topic.to_string()]).await?;
    match only("DeleteTopics", topic, answers) {
        Err(AdminError::Refused(r))
            if r.error() == Some(ResponseError::UnknownTopicOrPartition) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(pool: &KafkaTopicAdmin, bootstrap: &Brokers) -> usize {
        let pools = pool.pools.lock().expect("pool lock");
        pools
            .get(&KafkaTopicAdmin::pool_key(bootstrap))
            .map_or(0, |p| p.idle.len())
    }

    /// A connection is reused after an answer or a refusal, and never after its broker
    /// went away: the next call fails like a fresh connect would and leaves no idle one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_reused_and_broken_ones_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (running, address) =
            strom_broker::harness::start_plaintext(dir.path(), Duration::from_secs(60))
                .await
                .expect("broker starts");
        let bootstrap = Brokers::plaintext(vec![address]);
        let pool = KafkaTopicAdmin::default();

        assert_eq!(
            pool.observe(&bootstrap, "nope").await.expect("observe"),
            None
        );
        assert_eq!(idle(&pool, &bootstrap), 1);
        assert_eq!(
            pool.observe(&bootstrap, "nope").await.expect("observe"),
            None
        );
        assert_eq!(idle(&pool, &bootstrap), 1, "the same connection again");
        // A refusal is an answer: the connection stays.
        let refused = pool
            .apply(&bootstrap, "bad", &[Step::AddPartitions { total: 3 }])
            .await
            .expect_err("no such topic");
        assert!(refused.refused().is_some(), "{refused}");
        assert_eq!(idle(&pool, &bootstrap), 1);

        running.shutdown().await.expect("shutdown");
        let gone = pool
            .observe(&bootstrap, "nope")
            .await
            .expect_err("the broker is gone");
        assert!(
            refused.refused().is_some() && gone.refused().is_none(),
            "{gone}"
        );
        assert_eq!(
            idle(&pool, &bootstrap),
            0,
            "the broken connection was dropped"
        );
    }
}
