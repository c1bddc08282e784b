//! A follower fetcher: one task per leader broker, fetching every partition this broker
//! follows there with Kafka's own Fetch (carrying our replica id) over the inter-broker
//! listener. Before the first fetch of a new leader epoch it asks the leader where the
//! logs diverge (OffsetForLeaderEpoch) and truncates, so a follower never keeps records
//! the new leader does not have.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_client::Connection;
use tokio::sync::Notify;

use super::manager::{FetchTarget, FetchTargets};
use crate::broker::Broker;
use crate::log::batch;
use crate::log::{now_ms, TopicPartition};
use crate::net::outbound::OutboundError;

/// Fetch v12: the last version that names topics (not ids) and carries the replica id in
/// the request itself.
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The leader's inter-broker endpoint from its registration.
fn leader_address(broker: &Broker, leader: i32) -> Option<String> {
    let image = broker.metadata.image();
    let reg = image.broker(leader)?;
    let listener = &broker.config.cluster.inter_broker_listener;
    let e = reg.endpoints.iter().find(|e| &e.listener == listener)?;
    Some(format!("{}:{}", e.host, e.port))
}

pub async fn run(
    broker: Arc<Broker>,
    leader: i32,
    targets: FetchTargets,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
) {
    let cfg = broker.config.cluster.clone();
    let backoff = Duration::from_millis(cfg.replica_fetch_backoff_ms.max(50));
    let socket_timeout = Duration::from_millis(cfg.replica_socket_timeout_ms);
    let client_id = format!("strom-replica-fetcher-{}-to-{leader}", broker.node_id());
    let mut conn: Option<Connection> = None;
    // When the SASL session of `conn` should be renewed (KIP-368).
    let mut renew_at: Option<Instant> = None;
    let mut shutdown = broker.shutdown_signal();
    tracing::debug!(leader, "follower fetcher started");
    while !stop.load(Ordering::Acquire) && !*shutdown.borrow() {
        let now = Instant::now();
        let ready: Vec<(TopicPartition, FetchTarget)> = targets
            .lock()
            .iter()
            .filter(|(_, t)| t.retry_at.is_none_or(|at| at <= now))
            .map(|(tp, t)| (tp.clone(), t.clone()))
            .collect();
        if ready.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if let Some(c) = conn
            .as_mut()
            .filter(|_| renew_at.is_some_and(|at| at <= now))
        {
            // The leader closes the connection at the session's end; a re-authentication
            // between two fetches keeps it (and the fetch session) alive.
            match broker.inter_broker.log_in(c, socket_timeout).await {
                Ok(next) => {
                    tracing::debug!(leader, "re-authenticated the inter-broker connection");
                    renew_at = next;
                }
                Err(e) => {
                    tracing::warn!(leader, error = %e, "re-authentication failed; reconnecting");
                    conn = None;
                    renew_at = None;
                }
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let Some(addr) = leader_address(&broker, leader) else {
                    tokio::time::sleep(backoff).await;
                    continue;
                };
                match broker
                    .inter_broker
                    .connect(&addr, &client_id, socket_timeout)
                    .await
                {
                    Ok(c) => {
                        renew_at = c.renew_at;
                        conn.insert(c.connection)
                    }
                    Err(
                        e @ (OutboundError::Tls { .. }
                        | OutboundError::Authentication { .. }
                        | OutboundError::MechanismRefused { .. }
                        | OutboundError::UnsupportedMechanism(_)),
                    ) => {
                        // A security failure is a configuration problem an operator must see.
                        tracing::warn!(leader, error = %e, "cannot connect to the leader securely");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(leader, error = %e, "cannot reach leader");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                }
            }
        };
        let result = tokio::select! {
            r = fetch_round(&broker, c, &targets, ready, socket_timeout) => r,
            _ = shutdown.changed() => break,
        };
        if let Err(e) = result {
            tracing::debug!(leader, error = %e, "follower fetch failed; reconnecting");
            conn = None;
            tokio::time::sleep(backoff).await;
        }
    }
    tracing::debug!(leader, "follower fetcher stopped");
}

/// One round: truncation requests for partitions that need them, then one Fetch.
async fn fetch_round(
    broker: &Arc<Broker>,
    conn: &mut Connection,
    targets: &FetchTargets,
    ready: Vec<(TopicPartition, FetchTarget)>,
    socket_timeout: Duration,
) -> Result<(), String> {
    let (truncating, fetching): (Vec<_>, Vec<_>) =
        ready.into_iter().partition(|(_, t)| t.truncate_first);
    if !truncating.is_empty() {
        truncate_diverged(broker, conn, targets, truncating, socket_timeout).await?;
        return Ok(());
    }
    fetch(broker, conn, targets, fetching, socket_timeout).await
}

async fn with_timeout<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, strom_client::ClientError>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

fn backoff_target(targets: &FetchTargets, tp: &TopicPartition, epoch: i32, broker: &Broker) {
    let backoff = Duration::from_millis(broker.config.cluster.replica_fetch_backoff_ms.max(50));
    if let Some(t) = targets
        .lock()
        .get_mut(tp)
        .filter(|t| t.leader_epoch == epoch)
    {
        t.retry_at = Some(Instant::now() + backoff);
    }
}

/// Kafka's KIP-101/279 truncation: ask the leader for the end of our latest epoch in its
/// log, and cut ours to the smaller of that and our own end of that epoch.
async fn truncate_diverged(
    broker: &Arc<Broker>,
    conn: &mut Connection,
    targets: &FetchTargets,
    truncating: Vec<(TopicPartition, FetchTarget)>,
    socket_timeout: Duration,
) -> Result<(), String> {
    let mut by_topic: HashMap<String, Vec<OffsetForLeaderPartition>> = HashMap::new();
    let mut asked: HashMap<TopicPartition, (FetchTarget, Option<i32>)> = HashMap::new();
    for (tp, t) in truncating {
        let latest = t.partition.log.lock().latest_epoch();
        by_topic.entry(tp.topic.clone()).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(t.leader_epoch)
                .with_leader_epoch(latest.unwrap_or(-1)),
        );
        asked.insert(tp, (t, latest));
    }
    // An empty log has nothing to truncate.
    let nothing_to_ask: Vec<TopicPartition> = asked
        .iter()
        .filter(|(_, (_, latest))| latest.is_none())
        .map(|(tp, _)| tp.clone())
        .collect();
    for tp in &nothing_to_ask {
        if let Some((t, _)) = asked.remove(tp) {
            finish_truncation(targets, tp, t.leader_epoch);
        }
    }
    by_topic.retain(|_, parts| {
        parts.retain(|p| p.leader_epoch >= 0);
        !parts.is_empty()
    });
    if by_topic.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(broker.node_id()))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(&topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = with_timeout(
        socket_timeout,
        conn.send(request, OFFSET_FOR_LEADER_EPOCH_VERSION),
    )
    .await?;
    for topic in response.topics {
        for p in topic.partitions {
            let tp = TopicPartition {
                topic: topic.topic.0.to_string(),
                partition: p.partition,
            };
            let Some((t, _)) = asked.get(&tp) else {
                continue;
            };
            if p.error_code != 0 {
                tracing::debug!(partition = %tp, code = p.error_code, "OffsetForLeaderEpoch refused; retrying later");
                backoff_target(targets, &tp, t.leader_epoch, broker);
                continue;
            }
            let partition = &t.partition;
            let new_end = {
                let mut log = partition.log.lock();
                let leo = log.log_end_offset();
                let target = if p.end_offset < 0 {
                    // The leader knows nothing as old as our epoch: keep only what was
                    // committed.
                    partition.high_watermark()
                } else {
                    let (_, ours) = log.end_offset_for_epoch(p.leader_epoch);
                    if ours < 0 {
                        p.end_offset
                    } else {
                        p.end_offset.min(ours)
                    }
                };
                if target < leo {
                    match log.truncate_to(target) {
                        Ok(end) => Some(end),
                        Err(e) => {
                            tracing::error!(partition = %tp, error = %e, "truncation failed");
                            None
                        }
                    }
                } else {
                    None
                }
            };
            if let Some(end) = new_end {
                tracing::info!(partition = %tp, new_end = end, leader_epoch = t.leader_epoch,
                    "truncated diverged log to the leader's");
                partition.reset_end(end);
            }
            finish_truncation(targets, &tp, t.leader_epoch);
        }
    }
    Ok(())
}

fn finish_truncation(targets: &FetchTargets, tp: &TopicPartition, epoch: i32) {
    if let Some(t) = targets
        .lock()
        .get_mut(tp)
        .filter(|t| t.leader_epoch == epoch)
    {
        t.truncate_first = false;
        t.retry_at = None;
    }
}

async fn fetch(
    broker: &Arc<Broker>,
    conn: &mut Connection,
    targets: &FetchTargets,
    fetching: Vec<(TopicPartition, FetchTarget)>,
    socket_timeout: Duration,
) -> Result<(), String> {
    let cfg = &broker.config.cluster;
    let mut by_topic: HashMap<String, Vec<FetchPartition>> = HashMap::new();
    let mut asked: HashMap<TopicPartition, FetchTarget> = HashMap::new();
    for (tp, t) in fetching {
        let max_bytes = if t.throttled {
            broker
                .replicas
                .follower_throttle
                .allowance(cfg.replica_fetch_max_bytes as usize)
        } else {
            cfg.replica_fetch_max_bytes as usize
        };
        // A replica on an offline log directory copies nothing until the directory is back.
        if max_bytes == 0 || t.partition.check_online().is_err() {
            continue;
        }
        let (leo, log_start, last_epoch) = {
            let log = t.partition.log.lock();
            (
                log.log_end_offset(),
                log.log_start_offset(),
                log.latest_epoch().unwrap_or(-1),
            )
        };
        by_topic.entry(tp.topic.clone()).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(t.leader_epoch)
                .with_fetch_offset(leo)
                .with_last_fetched_epoch(last_epoch)
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(max_bytes as i32),
        );
        asked.insert(tp, t);
    }
    if asked.is_empty() {
        // Everything is throttled right now; let the bucket refill.
        tokio::time::sleep(Duration::from_millis(100)).await;
        return Ok(());
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(broker.node_id()))
        .with_max_wait_ms(cfg.replica_fetch_wait_max_ms)
        .with_min_bytes(cfg.replica_fetch_min_bytes)
        .with_max_bytes(cfg.replica_fetch_response_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(topic_name(&topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let wait = socket_timeout + Duration::from_millis(cfg.replica_fetch_wait_max_ms.max(0) as u64);
    let response = with_timeout(wait, conn.send(request, FETCH_VERSION)).await?;
    if response.error_code != 0 {
        return Err(format!(
            "fetch refused with error code {}",
            response.error_code
        ));
    }
    for topic in response.responses {
        for p in topic.partitions {
            let tp = TopicPartition {
                topic: topic.topic.0.to_string(),
                partition: p.partition_index,
            };
            let Some(t) = asked.get(&tp) else { continue };
            // The target may have moved to another epoch while the fetch was out.
            let current = targets.lock().get(&tp).map(|c| c.leader_epoch);
            if current != Some(t.leader_epoch) {
                continue;
            }
            match ResponseError::try_from_code(p.error_code) {
                None => {
                    if let Some(records) = p.records.filter(|r| !r.is_empty()) {
                        if let Err(e) = append(broker, t, &records) {
                            tracing::warn!(partition = %tp, error = %e, "cannot append fetched records");
                            backoff_target(targets, &tp, t.leader_epoch, broker);
                            continue;
                        }
                    }
                    let leo = t.partition.log_end_offset();
                    t.partition
                        .advance_high_watermark(p.high_watermark.min(leo));
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    out_of_range(t, p.log_start_offset, targets, &tp);
                }
                Some(e) => {
                    tracing::debug!(partition = %tp, error = ?e, "leader refused fetch; waiting for metadata");
                    backoff_target(targets, &tp, t.leader_epoch, broker);
                }
            }
        }
    }
    Ok(())
}

fn append(broker: &Broker, t: &FetchTarget, records: &bytes::Bytes) -> Result<(), String> {
    // Not `validate_record_set`: the leader's compacted batches (emptied, or with fewer
    // records than their offset span) are valid here.
    let batches = batch::split_stored(records).map_err(|e| e.to_string())?;
    t.partition.check_online().map_err(|e| e.to_string())?;
    let end = {
        let mut log = t.partition.log.lock();
        let appended = log.append_replicated(records, &batches, now_ms());
        if let Err(e) = &appended {
            if e.error == ResponseError::KafkaStorageError {
                t.partition.report_storage_error(e);
            }
        }
        appended.map_err(|e| e.to_string())?;
        log.log_end_offset()
    };
    t.partition.publish_end(end);
    if t.throttled {
        broker.replicas.follower_throttle.consume(records.len());
    }
    Ok(())
}

/// Our fetch offset is outside the leader's log: behind its start (retention removed what
/// we lack: start over there) or past its end (we hold records it lost: truncate).
fn out_of_range(
    t: &FetchTarget,
    leader_log_start: i64,
    targets: &FetchTargets,
    tp: &TopicPartition,
) {
    let leo = t.partition.log_end_offset();
    if leader_log_start >= 0 && leo < leader_log_start {
        let result = t
            .partition
            .log
            .lock()
            .truncate_fully_and_start_at(leader_log_start);
        match result {
            Ok(()) => {
                tracing::info!(partition = %tp, start = leader_log_start, "follower behind the leader's log start; starting over there");
                t.partition.reset_end(leader_log_start);
            }
            Err(e) => {
                tracing::error!(partition = %tp, error = %e, "cannot restart the follower log")
            }
        }
    } else if let Some(target) = targets.lock().get_mut(tp) {
        target.truncate_first = true;
    }
}
