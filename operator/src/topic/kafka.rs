//! The broker calls of a topic reconcile, through `strom_client::admin`: observe one
//! topic (Metadata, DescribeConfigs), make a plan's steps (CreateTopics, CreatePartitions,
//! IncrementalAlterConfigs) and delete it (DeleteTopics). Behind the `TopicAdmin` trait
//! so the reconcile tests put a fake in its place.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use strom_client::admin::{Admin, AdminError, NewTopic, Outcome, Refused};

use super::plan::{Observed, Step};
use crate::access::Brokers;

const CLIENT_ID: &str = "strom-operator";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Above the 30 s the brokers are given for a create or delete.
const CALL_TIMEOUT: Duration = Duration::from_secs(35);

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

/// The real thing: a fresh connection per reconcile step.
#[derive(Debug, Default, Clone, Copy)]
pub struct KafkaTopicAdmin;

impl TopicAdmin for KafkaTopicAdmin {
    fn observe<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Option<Observed>, AdminError>> {
        Box::pin(observe(bootstrap, topic))
    }
    fn apply<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
        steps: &'a [Step],
    ) -> BoxFuture<'a, Result<Option<String>, AdminError>> {
        Box::pin(apply(bootstrap, topic, steps))
    }
    fn delete<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(delete(bootstrap, topic))
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

pub async fn observe(bootstrap: &Brokers, topic: &str) -> Result<Option<Observed>, AdminError> {
    let mut admin = connect(bootstrap).await?;
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

pub async fn apply(
    bootstrap: &Brokers,
    topic: &str,
    steps: &[Step],
) -> Result<Option<String>, AdminError> {
    if steps.is_empty() {
        return Ok(None);
    }
    let mut admin = connect(bootstrap).await?;
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

pub async fn delete(bootstrap: &Brokers, topic: &str) -> Result<(), AdminError> {
    let mut admin = connect(bootstrap).await?;
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
