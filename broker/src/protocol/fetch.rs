//! Fetch: read whole batches from each requested partition, long-polling until min_bytes
//! are available, max_wait_ms passes, or the broker shuts down.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::time::Instant;

use super::{log_refusal, topic_name, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::error::{ApiError, ApiResult};
use crate::log::Partition;
use crate::replication::throttle;

/// One partition a fetch asks for.
struct Wanted {
    topic: String,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
    state: ApiResult<Arc<Partition>>,
}

fn empty_partition(index: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: FetchRequest,
) -> FetchResponse {
    // Strom does not keep incremental fetch sessions (KIP-227) yet: every fetch is a full
    // one and the reply's session id 0 tells the client so. A client naming a session it
    // thinks it has must start over.
    if request.session_id != 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
    }
    // Followers name themselves (Fetch v15+ in replica_state, before that replica_id);
    // consumers send -1.
    let replica = if ctx.version() >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let mut follower = (replica >= 0).then_some(replica);
    // Kafka: a follower needs CLUSTER_ACTION on the cluster, or every partition it asks
    // for is TOPIC_AUTHORIZATION_FAILED; a consumer needs READ on each topic. The denial
    // comes before the partition's existence is looked at.
    let access = Access::of(broker, ctx);
    let readable: Option<HashSet<String>> = match follower {
        Some(_) if access.cluster(AclOperation::ClusterAction) => None,
        Some(_) => {
            follower = None;
            Some(HashSet::new())
        }
        None if access.enabled() => Some(access.filter(
            AclOperation::Read,
            ResourceType::Topic,
            request.topics.iter().map(|t| t.topic.0.as_str()),
        )),
        None => None,
    };
    let wanted: Vec<Wanted> = request
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.topic.0.as_str().to_string();
            t.partitions.iter().map(move |p| Wanted {
                topic: topic.clone(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                state: Err(ApiError::new(ResponseError::UnknownTopicOrPartition, "")),
            })
        })
        .map(|mut w| {
            w.state = match &readable {
                Some(topics) if !topics.contains(&w.topic) => {
                    Err(ApiError::new(ResponseError::TopicAuthorizationFailed, ""))
                }
                _ => broker.led_partition(&w.topic, w.partition),
            };
            w
        })
        .collect();
    if let Some(replica) = follower {
        // The follower's fetch offset is its log end: note its progress once per request.
        for w in &wanted {
            if let Ok(p) = &w.state {
                broker
                    .replicas
                    .on_follower_fetch(broker, p, replica, w.fetch_offset);
            }
        }
    }

    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let mut shutdown = broker.shutdown_signal();
    // Subscribe before the first read so an append between the read and the wait is seen.
    // Followers wait for the log end to move, consumers for the high watermark.
    let mut watches: Vec<_> = wanted
        .iter()
        .filter_map(|w| {
            w.state.as_ref().ok().map(|p| {
                if follower.is_some() {
                    p.subscribe_log_end()
                } else {
                    p.subscribe()
                }
            })
        })
        .collect();
    loop {
        let (responses, total, any_error) =
            gather(broker, ctx, &wanted, request.max_bytes, follower);
        let done = total >= request.min_bytes.max(0) as usize
            || any_error
            || watches.is_empty()
            || Instant::now() >= deadline
            || *shutdown.borrow();
        if done {
            return FetchResponse::default()
                .with_responses(responses)
                .with_session_id(0);
        }
        let changes = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changes => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Reads every wanted partition once. Returns the response topics, the bytes gathered, and
/// whether any partition had an error (which ends the long poll, as in Kafka).
fn gather(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    wanted: &[Wanted],
    max_bytes: i32,
    follower: Option<i32>,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut total = 0usize;
    let mut any_error = false;
    let max_bytes = max_bytes.max(0) as usize;
    for w in wanted {
        let data = match read_partition(
            broker,
            w,
            max_bytes.saturating_sub(total),
            total == 0,
            follower,
        ) {
            Ok((data, len)) => {
                total += len;
                if len > 0 {
                    broker.metrics.record_fetch(&w.topic, len as u64);
                }
                data
            }
            Err(e) => {
                any_error = true;
                if !e.message.is_empty() {
                    log_refusal(ctx, &format!("{}-{}", w.topic, w.partition), &e);
                }
                let mut data = empty_partition(w.partition).with_error_code(e.code());
                if let Ok(p) = &w.state {
                    let log = p.log.lock();
                    data = data
                        .with_high_watermark(p.high_watermark())
                        .with_last_stable_offset(p.high_watermark())
                        .with_log_start_offset(log.log_start_offset());
                }
                data
            }
        };
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == w.topic => t.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(topic_name(&w.topic))
                    .with_partitions(vec![data]),
            ),
        }
    }
    (topics, total, any_error)
}

fn read_partition(
    broker: &Broker,
    w: &Wanted,
    remaining: usize,
    first: bool,
    follower: Option<i32>,
) -> ApiResult<(PartitionData, usize)> {
    let partition = w.state.as_ref().map_err(Clone::clone)?;
    let (epoch, throttled) = {
        let role = partition.replica.lock();
        let Some(state) = role.leader() else {
            return Err(ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "broker {} no longer leads {}",
                    broker.node_id(),
                    partition.id
                ),
            ));
        };
        // A replica a reassignment is adding is throttled (Strom's rule, kept from before
        // the lists existed), and so is an out-of-sync one the topic's list names (Kafka's).
        let throttled = follower.is_some_and(|f| {
            state.adding.contains(&f)
                || !state.isr.contains(&f) && {
                    let image = broker.metadata.image();
                    let list = image
                        .topic(&partition.id.topic)
                        .and_then(|t| t.configs.get(throttle::LEADER_THROTTLED_REPLICAS));
                    throttle::is_throttled(list, partition.id.partition, broker.node_id(), false)
                }
        });
        (state.leader_epoch, throttled)
    };
    if w.current_leader_epoch >= 0 && w.current_leader_epoch != epoch {
        let error = if w.current_leader_epoch < epoch {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        };
        return Err(ApiError::new(
            error,
            format!(
                "fetch names leader epoch {}, current is {epoch}",
                w.current_leader_epoch
            ),
        ));
    }
    let mut limit = (w.max_bytes.max(0) as usize).min(remaining);
    if throttled {
        // A throttled replica: leader.replication.throttled.rate.
        limit = broker.replicas.leader_throttle.allowance(limit);
        if limit == 0 {
            let data = empty_partition(w.partition)
                .with_high_watermark(partition.high_watermark())
                .with_last_stable_offset(partition.high_watermark())
                .with_log_start_offset(partition.log.lock().log_start_offset());
            return Ok((data, 0));
        }
    }
    let hw = partition.high_watermark();
    let log = partition.log.lock();
    // Followers read to the log end (that is how the high watermark moves); consumers see
    // only what every in-sync replica has.
    let max_offset = if follower.is_some() { i64::MAX } else { hw };
    let records = log.read(w.fetch_offset, limit, first, max_offset)?;
    let len = records.len();
    if throttled {
        broker.replicas.leader_throttle.consume(len);
    }
    let data = empty_partition(w.partition)
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(log.log_start_offset())
        .with_aborted_transactions(Some(Vec::new()))
        .with_records(Some(Bytes::from(records)));
    Ok((data, len))
}
