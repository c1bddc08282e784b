//! The group coordinator: owns every group this broker coordinates, runs requests
//! against their state machines, and makes what must survive (membership after a
//! rebalance, committed offsets, deletions) durable in `__consumer_offsets` before
//! anyone is told.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use parking_lot::{Mutex, RwLock};

use super::records::{GroupValue, OffsetValue, RecordKey};
use super::state::{
    Committed, Delivery, Group, GroupState, JoinReply, JoinRequest, JoinResult, Limits, SyncReply,
    SyncResult,
};
use crate::config::GroupConfig;
use crate::error::ApiResult;

/// Where the coordinator writes: one partition of `__consumer_offsets` per group, picked
/// by `partition_for`. The broker implements it on its partition logs; tests on memory.
pub trait OffsetsLog: Send + Sync {
    /// Appends keyed records (a `None` value is a tombstone) durably enough to answer
    /// the client, or says why not.
    fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> ApiResult<()>;
}

/// One member as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// The result of one partition in an offset commit.
pub type PartitionResult = (String, i32, Result<(), ResponseError>);

#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: RwLock<HashMap<String, Arc<Mutex<Group>>>>,
}

/// Kafka's String.hashCode, so a group maps to the same `__consumer_offsets` partition
/// here as in Kafka (and tools that compute it agree).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

fn deliver(deliveries: Vec<Delivery>) {
    for d in deliveries {
        // A receiver is gone when its client disconnected; nothing to tell it.
        match d {
            Delivery::Join(tx, r) => {
                let _ = tx.send(r);
            }
            Delivery::Sync(tx, r) => {
                let _ = tx.send(r);
            }
        }
    }
}

fn wall_ms() -> i64 {
    crate::log::now_ms()
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: RwLock::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn partition_for(&self, group_id: &str) -> i32 {
        (java_string_hash(group_id) & 0x7fff_ffff) % self.config.offsets_topic_partitions
    }

    fn limits(&self) -> Limits {
        Limits {
            initial_rebalance_delay: Duration::from_millis(self.config.initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(
                self.config.min_session_timeout_ms.max(0) as u64
            ),
            max_session_timeout: Duration::from_millis(
                self.config.max_session_timeout_ms.max(0) as u64
            ),
            max_size: self.config.max_size,
        }
    }

    fn get(&self, group_id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.read().get(group_id).cloned()
    }

    fn get_or_create(&self, group_id: &str) -> Arc<Mutex<Group>> {
        if let Some(g) = self.get(group_id) {
            return g;
        }
        self.groups
            .write()
            .entry(group_id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(group_id, wall_ms()))))
            .clone()
    }

    /// Persists what the last transition of `group` made durable, then hands out the
    /// answers it produced (failing them if the write failed, so nobody acts on a state
    /// the log does not have).
    fn settle(&self, log: &dyn OffsetsLog, group: &mut Group) {
        let deliveries = if group.take_dirty() {
            let key = RecordKey::Group {
                group: group.id.clone(),
            }
            .encode();
            let value = group.to_value().encode();
            match log.append(self.partition_for(&group.id), vec![(key, Some(value))]) {
                Ok(()) => group.take_outbox(),
                Err(e) => {
                    tracing::error!(group = %group.id, error = %e, "persisting group metadata failed");
                    group.fail_outbox(ResponseError::CoordinatorNotAvailable)
                }
            }
        } else {
            group.take_outbox()
        };
        deliver(deliveries);
    }

    /// Stops coordinating: every parked request is answered NOT_COORDINATOR.
    pub fn resign(&self) {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        for group in groups {
            let deliveries = group.lock().abort_waiters(ResponseError::NotCoordinator);
            deliver(deliveries);
        }
    }

    pub async fn join(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        request: JoinRequest,
    ) -> JoinResult {
        let member_id = request.member_id.clone();
        let group = if request.member_id.is_empty() {
            self.get_or_create(group_id)
        } else {
            match self.get(group_id) {
                Some(g) => g,
                None => {
                    return JoinResult {
                        error: Some(ResponseError::UnknownMemberId),
                        generation: -1,
                        member_id,
                        ..Default::default()
                    }
                }
            }
        };
        let client_id = request.client_id.clone();
        let reply = {
            let mut g = group.lock();
            let reply = g.join(request, &self.limits(), Instant::now(), wall_ms(), || {
                format!("{client_id}-{}", uuid::Uuid::new_v4())
            });
            self.settle(log, &mut g);
            reply
        };
        match reply {
            JoinReply::Now(r) => r,
            JoinReply::Wait(rx) => rx.await.unwrap_or_else(|_| JoinResult {
                // The group was dropped while the join was parked (deleted or unloaded).
                error: Some(ResponseError::CoordinatorNotAvailable),
                generation: -1,
                member_id,
                ..Default::default()
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let Some(group) = self.get(group_id) else {
            return SyncResult {
                error: Some(ResponseError::UnknownMemberId),
                ..Default::default()
            };
        };
        let reply = {
            let mut g = group.lock();
            let reply = g.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
                Instant::now(),
                wall_ms(),
            );
            self.settle(log, &mut g);
            reply
        };
        match reply {
            SyncReply::Now(r) => r,
            SyncReply::Wait(rx) => rx.await.unwrap_or_else(|_| SyncResult {
                error: Some(ResponseError::CoordinatorNotAvailable),
                ..Default::default()
            }),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let group = self.get(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let mut g = group.lock();
        g.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    /// LeaveGroup for each (member id, instance id); the outer error is for the group.
    pub fn leave(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let group = self.get(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let mut g = group.lock();
        let results = members
            .iter()
            .map(|(member, instance)| {
                g.leave(member, instance.as_deref(), Instant::now(), wall_ms())
            })
            .collect();
        self.settle(log, &mut g);
        Ok(results)
    }

    /// OffsetCommit. `generation < 0` with no member id is a commit from outside any
    /// generation (a standalone consumer or an admin tool), allowed while the group has no
    /// members. Ownership of the committed partitions is not checked: Kafka's classic
    /// coordinator does not check it either.
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<Vec<PartitionResult>, ResponseError> {
        let standalone = generation < 0 && member_id.is_empty();
        let group = if standalone {
            self.get_or_create(group_id)
        } else {
            self.get(group_id).ok_or(ResponseError::IllegalGeneration)?
        };
        let mut g = group.lock();
        let standalone_ok = standalone && g.members.is_empty();
        if !standalone_ok {
            if g.state == GroupState::Dead {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            if let Some(instance) = instance_id {
                if g.static_member(instance)
                    .is_some_and(|owner| owner != member_id)
                {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
            if !g.members.contains_key(member_id) {
                return Err(ResponseError::UnknownMemberId);
            }
            if generation != g.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            if g.state == GroupState::CompletingRebalance {
                // The member's assignment for this generation is not known yet.
                return Err(ResponseError::RebalanceInProgress);
            }
        }

        // Answers keep the request's order; only the valid offsets are written.
        let mut results: Vec<PartitionResult> = Vec::with_capacity(offsets.len());
        let mut accepted = Vec::new();
        let mut records = Vec::new();
        for (topic, partition, committed) in offsets {
            if committed.metadata.len() > self.config.offset_metadata_max_bytes {
                results.push((topic, partition, Err(ResponseError::OffsetMetadataTooLarge)));
                continue;
            }
            let key = RecordKey::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition,
            }
            .encode();
            let value = OffsetValue {
                offset: committed.offset,
                leader_epoch: committed.leader_epoch,
                metadata: committed.metadata.clone(),
                commit_timestamp: committed.commit_timestamp,
            }
            .encode();
            records.push((key, Some(value)));
            accepted.push((results.len(), committed));
            results.push((topic, partition, Ok(())));
        }
        if !records.is_empty() {
            if let Err(e) = log.append(self.partition_for(group_id), records) {
                tracing::error!(group = group_id, error = %e, "writing committed offsets failed");
                for (i, _) in accepted {
                    results[i].2 = Err(ResponseError::CoordinatorNotAvailable);
                }
                return Ok(results);
            }
        }
        for (i, committed) in accepted {
            let (topic, partition, _) = &results[i];
            g.offsets.insert((topic.clone(), *partition), committed);
        }
        Ok(results)
    }

    /// OffsetFetch: the committed offset per asked partition (-1 where none), or every
    /// committed offset of the group when `topics` is `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> BTreeMap<String, Vec<(i32, Option<Committed>)>> {
        let group = self.get(group_id);
        let g = group.as_ref().map(|g| g.lock());
        let mut out: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
        match topics {
            Some(topics) => {
                for (topic, partitions) in topics {
                    let entry = out.entry(topic.clone()).or_default();
                    for p in partitions {
                        let c = g
                            .as_ref()
                            .and_then(|g| g.offsets.get(&(topic.clone(), p)).cloned());
                        entry.push((p, c));
                    }
                }
            }
            None => {
                if let Some(g) = &g {
                    for ((topic, p), c) in &g.offsets {
                        out.entry(topic.clone())
                            .or_default()
                            .push((*p, Some(c.clone())));
                    }
                }
            }
        }
        out
    }

    /// (group id, protocol type, state) of every live group.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        let mut out: Vec<_> = groups
            .iter()
            .map(|g| {
                let g = g.lock();
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .filter(|(_, _, state)| *state != GroupState::Dead)
            .collect();
        out.sort();
        out
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.get(group_id)?;
        let g = group.lock();
        if g.state == GroupState::Dead {
            return None;
        }
        let protocol = g.protocol.clone().unwrap_or_default();
        // Kafka reports member details only once the generation's assignment is settled
        // or being settled; during PreparingRebalance the list is the joined members.
        let members = g
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == protocol)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable || g.state == GroupState::CompletingRebalance
            {
                protocol
            } else {
                String::new()
            },
            members,
        })
    }

    /// DeleteGroups for one group: only a group without members can go.
    pub fn delete(&self, log: &dyn OffsetsLog, group_id: &str) -> Result<(), ResponseError> {
        let group = self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = group.lock();
        match g.state {
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(ResponseError::NonEmptyGroup),
        }
        let mut records: Vec<(Bytes, Option<Bytes>)> = g
            .offsets
            .keys()
            .map(|(topic, partition)| {
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                (key.encode(), None)
            })
            .collect();
        records.push((
            RecordKey::Group {
                group: group_id.to_string(),
            }
            .encode(),
            None,
        ));
        log.append(self.partition_for(group_id), records)
            .map_err(|e| {
                tracing::error!(group = group_id, error = %e, "writing group deletion failed");
                ResponseError::CoordinatorNotAvailable
            })?;
        g.offsets.clear();
        g.state = GroupState::Dead;
        drop(g);
        self.groups.write().remove(group_id);
        tracing::info!(group = group_id, "group deleted");
        Ok(())
    }

    /// OffsetDelete: removes committed offsets of partitions the group is not consuming.
    pub fn delete_offsets(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<PartitionResult>, ResponseError> {
        let group = self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = group.lock();
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        let subscribed = subscribed_topics(&g);
        let mut results = Vec::new();
        let mut records = Vec::new();
        let mut deleting = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.as_ref().is_some_and(|s| s.contains(&topic)) {
                results.push((topic, partition, Err(ResponseError::GroupSubscribedToTopic)));
                continue;
            }
            if g.offsets.contains_key(&(topic.clone(), partition)) {
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition,
                };
                records.push((key.encode(), None));
                deleting.push((topic.clone(), partition));
            }
            results.push((topic, partition, Ok(())));
        }
        if !records.is_empty() {
            log.append(self.partition_for(group_id), records)
                .map_err(|e| {
                    tracing::error!(group = group_id, error = %e, "writing offset deletion failed");
                    ResponseError::CoordinatorNotAvailable
                })?;
        }
        for key in deleting {
            g.offsets.remove(&key);
        }
        Ok(results)
    }

    /// Runs every group's timers.
    pub fn tick(&self, log: &dyn OffsetsLog) {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        let now = Instant::now();
        let now_ms = wall_ms();
        for group in groups {
            let mut g = group.lock();
            g.tick(now, now_ms);
            self.settle(log, &mut g);
        }
    }

    /// Expires committed offsets past offsets.retention.minutes: all of an empty
    /// consumer group's offsets once it has been empty that long, and a standalone
    /// group's (no protocol type) offsets by their commit time. Groups left with nothing
    /// are removed. Returns the number of offsets expired.
    pub fn expire_offsets(&self, log: &dyn OffsetsLog, now_ms: i64) -> usize {
        let retention = self.config.offsets_retention_ms;
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        let mut expired_total = 0;
        for group in groups {
            let mut g = group.lock();
            if g.state != GroupState::Empty {
                continue;
            }
            let standalone = g.protocol_type.is_none();
            let group_expired = now_ms.saturating_sub(g.state_since_ms) >= retention;
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, c)| {
                    if standalone {
                        now_ms.saturating_sub(c.commit_timestamp) >= retention
                    } else {
                        group_expired
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut records: Vec<(Bytes, Option<Bytes>)> = expired
                .iter()
                .map(|(topic, partition)| {
                    let key = RecordKey::Offset {
                        group: g.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    (key.encode(), None)
                })
                .collect();
            let remove_group = expired.len() == g.offsets.len() && g.members.is_empty();
            if remove_group {
                records.push((
                    RecordKey::Group {
                        group: g.id.clone(),
                    }
                    .encode(),
                    None,
                ));
            }
            if records.is_empty() {
                continue;
            }
            if let Err(e) = log.append(self.partition_for(&g.id), records) {
                tracing::error!(group = %g.id, error = %e, "writing offset expiry failed");
                continue;
            }
            for key in &expired {
                g.offsets.remove(key);
            }
            expired_total += expired.len();
            if !expired.is_empty() {
                tracing::info!(group = %g.id, offsets = expired.len(), "committed offsets expired");
            }
            if remove_group {
                g.state = GroupState::Dead;
                let id = g.id.clone();
                drop(g);
                self.groups.write().remove(&id);
                tracing::info!(group = %id, "empty group removed");
            }
        }
        expired_total
    }

    /// Applies one record read back from `__consumer_offsets` at start-up.
    pub fn load_record(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key = RecordKey::decode(key).map_err(|e| format!("bad key: {e}"))?;
        match key {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => match value {
                Some(v) => {
                    let v = OffsetValue::decode(v).map_err(|e| format!("bad offset value: {e}"))?;
                    let g = self.get_or_create(&group);
                    g.lock().offsets.insert((topic, partition), v.into());
                }
                None => {
                    if let Some(g) = self.get(&group) {
                        g.lock().offsets.remove(&(topic, partition));
                    }
                }
            },
            RecordKey::Group { group } => match value {
                Some(v) => {
                    let v = GroupValue::decode(v).map_err(|e| format!("bad group value: {e}"))?;
                    let g = self.get_or_create(&group);
                    g.lock().restore(v, Instant::now());
                }
                None => {
                    self.groups.write().remove(&group);
                }
            },
        }
        Ok(())
    }

    /// (group, topic, partition, committed offset) of every committed offset, for metrics.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        let mut out = Vec::new();
        for g in groups {
            let g = g.lock();
            for ((topic, p), c) in &g.offsets {
                out.push((g.id.clone(), topic.clone(), *p, c.offset));
            }
        }
        out
    }

    /// Number of live groups per state name, for metrics.
    pub fn state_counts(&self) -> BTreeMap<&'static str, i64> {
        let mut counts = BTreeMap::new();
        for (_, _, state) in self.list() {
            *counts.entry(state.name()).or_insert(0) += 1;
        }
        counts
    }
}

/// The topics a consumer group's members subscribe to, when its protocol is Kafka's
/// consumer protocol; `None` when the group uses another protocol and cannot be read.
fn subscribed_topics(g: &Group) -> Option<Vec<String>> {
    if g.protocol_type.as_deref() != Some("consumer") {
        return None;
    }
    let protocol = g.protocol.clone()?;
    let mut topics = Vec::new();
    for m in g.members.values() {
        let Some((_, metadata)) = m.protocols.iter().find(|(n, _)| *n == protocol) else {
            continue;
        };
        let mut buf = metadata.clone();
        if buf.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([buf[0], buf[1]]);
        let _ = bytes::Buf::get_i16(&mut buf);
        // Newer clients may send versions above what the codec knows; read them as its
        // highest, since later versions only append fields.
        let version = version.clamp(0, 3);
        match ConsumerProtocolSubscription::decode(&mut buf, version) {
            Ok(sub) => topics.extend(sub.topics.iter().map(|t| t.to_string())),
            Err(e) => {
                tracing::debug!(group = %g.id, error = %e, "unreadable consumer subscription");
            }
        }
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory `__consumer_offsets`: every appended record, per partition.
    #[derive(Default)]
    struct MemoryLog {
        records: Mutex<Vec<(i32, Bytes, Option<Bytes>)>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl OffsetsLog for MemoryLog {
        fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> ApiResult<()> {
            if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(crate::error::ApiError::new(
                    ResponseError::KafkaStorageError,
                    "disk full",
                ));
            }
            let mut all = self.records.lock();
            all.extend(records.into_iter().map(|(k, v)| (partition, k, v)));
            Ok(())
        }
    }

    fn config() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 600_000,
            max_size: 10,
            offsets_topic_partitions: 50,
            offsets_topic_replication_factor: 1,
            offsets_topic_segment_bytes: 1 << 20,
            offsets_retention_ms: 60_000,
            offsets_retention_check_interval_ms: 1000,
            offset_metadata_max_bytes: 8,
        }
    }

    fn committed(offset: i64, metadata: &str, at: i64) -> Committed {
        Committed {
            offset,
            leader_epoch: 0,
            metadata: metadata.into(),
            commit_timestamp: at,
        }
    }

    /// Replays what `log` holds into a fresh coordinator, as a restart does.
    fn reload(log: &MemoryLog) -> GroupCoordinator {
        let c = GroupCoordinator::new(config());
        for (_, k, v) in log.records.lock().iter() {
            c.load_record(k, v.as_deref()).expect("record loads");
        }
        c
    }

    #[test]
    fn commits_survive_a_reload_and_deletes_too() {
        let log = MemoryLog::default();
        let c = GroupCoordinator::new(config());
        let results = c
            .commit(
                &log,
                "g",
                -1,
                "",
                None,
                vec![
                    ("t".into(), 0, committed(5, "ckpt", 1)),
                    ("t".into(), 1, committed(7, "far too long", 1)),
                ],
            )
            .expect("standalone commit");
        assert_eq!(results[0].2, Ok(()));
        assert_eq!(results[1].2, Err(ResponseError::OffsetMetadataTooLarge));
        assert!(log
            .records
            .lock()
            .iter()
            .all(|(p, _, _)| *p == c.partition_for("g")));

        let again = reload(&log);
        let fetched = again.fetch_offsets("g", None);
        assert_eq!(fetched["t"], vec![(0, Some(committed(5, "ckpt", 1)))]);

        again
            .delete_offsets(&log, "g", vec![("t".into(), 0)])
            .expect("offset delete");
        let after = reload(&log);
        assert!(after.fetch_offsets("g", None).is_empty());
        after.delete(&log, "g").expect("group delete");
        assert!(reload(&log).list().is_empty());
    }

    #[test]
    fn a_failed_write_commits_nothing() {
        let log = MemoryLog::default();
        let c = GroupCoordinator::new(config());
        log.fail.store(true, std::sync::atomic::Ordering::Relaxed);
        let results = c
            .commit(
                &log,
                "g",
                -1,
                "",
                None,
                vec![("t".into(), 0, committed(5, "", 1))],
            )
            .expect("answered per partition");
        assert_eq!(results[0].2, Err(ResponseError::CoordinatorNotAvailable));
        assert_eq!(c.fetch_offsets("g", None).get("t"), None);
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_retention() {
        let log = MemoryLog::default();
        let c = GroupCoordinator::new(config());
        c.commit(
            &log,
            "old",
            -1,
            "",
            None,
            vec![("t".into(), 0, committed(1, "", 1_000))],
        )
        .expect("commit");
        c.commit(
            &log,
            "new",
            -1,
            "",
            None,
            vec![("t".into(), 0, committed(1, "", 50_000))],
        )
        .expect("commit");
        assert_eq!(c.expire_offsets(&log, 61_000), 1);
        let groups: Vec<String> = c.list().into_iter().map(|(g, _, _)| g).collect();
        assert_eq!(groups, vec!["new".to_string()]);
        // The expiry is durable: a reload does not bring the group back.
        let groups: Vec<String> = reload(&log).list().into_iter().map(|(g, _, _)| g).collect();
        assert_eq!(groups, vec!["new".to_string()]);
    }

    #[test]
    fn group_hash_is_javas_string_hash() {
        // Well-known values of java.lang.String#hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("test"), 3_556_498);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Overflowing.
        assert_eq!(java_string_hash("hello world"), 1_794_106_052);
    }
}
