//! The group coordinator: owns the groups of the `__consumer_offsets` partitions this
//! broker leads, runs requests against their state machines, and makes what must survive
//! (membership after a rebalance, committed offsets, deletions) durable in
//! `__consumer_offsets` before anyone is told.
//!
//! Ownership follows partition leadership, as in Kafka: the replication layer calls
//! `load_partition` when this broker becomes leader of an offsets partition and
//! `unload_partition` when it stops leading it. Groups of a partition that is not loaded
//! here get NOT_COORDINATOR; of one being loaded, COORDINATOR_LOAD_IN_PROGRESS.
//!
//! Replication: `OffsetsLog::append` returns once a write is in the leader's log, with the
//! offset it ends at. The coordinator keeps per partition the end of its latest write
//! (`written_end`), and the protocol handlers wait until that offset is replicated
//! (`Broker::wait_replicated`) before answering anything that follows a write. Waiting
//! for the partition's latest write rather than the answer's own is never too early, and
//! it covers parked JoinGroup/SyncGroup answers without threading offsets through the
//! state machine: an answer is only delivered after the write it depends on was made, so
//! the end read once the answer arrived is at least that write's end.
//!
//! In-memory state follows a write as soon as it is in the leader's log (Kafka applies it
//! once replicated): an OffsetFetch on the leader may see a commit a moment before it is
//! acknowledged. If the leader dies first, the next coordinator never saw it, and the
//! committer, never acknowledged, retries.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use parking_lot::MutexGuard;

use super::durability::{group_write_error, offset_write_error};
use super::load::{self, LoadStats, PartitionLoad};
use super::partitions::{Claim, PartitionStatus, Partitions, SharedGroup};
use super::records::{OffsetValue, RecordKey};
use super::state::{
    Committed, Delivery, Group, GroupState, JoinReply, JoinRequest, JoinResult, Limits, SyncReply,
    SyncResult,
};
use super::OFFSETS_TOPIC;
use crate::config::GroupConfig;
use crate::error::{ApiError, ApiResult};

/// Where the coordinator writes: one partition of `__consumer_offsets` per group, picked
/// by `partition_for`. The broker implements it on its partition logs; tests on memory.
pub trait OffsetsLog: Send + Sync {
    /// Appends keyed records (a `None` value is a tombstone) to the leader's log of
    /// `partition` and returns the log end offset right after them: the offset the
    /// partition's high watermark must reach for the write to be on every in-sync replica.
    fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> ApiResult<i64>;
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

/// OffsetFetch's answer for one group: per topic, each partition's committed offset.
pub type FetchedOffsets = BTreeMap<String, Vec<(i32, Option<Committed>)>>;

#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    partitions: Partitions,
}

/// Whether a lookup may create the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Existing,
    OrCreate,
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
            partitions: Partitions::default(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Kafka's `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions` (its abs maps
    /// i32::MIN to 0), so tools that compute a group's coordinator agree with us.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        let hash = java_string_hash(group_id);
        let abs = if hash == i32::MIN { 0 } else { hash.abs() };
        abs % self.config.offsets_topic_partitions
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

    // ---- ownership of offsets partitions ----

    /// Where `partition` of the offsets topic stands here.
    pub fn partition_status(&self, partition: i32) -> PartitionStatus {
        self.partitions.status(partition)
    }

    /// The offsets partitions loading or loaded here: a leadership reconciliation can
    /// unload those the metadata no longer has this broker lead (or hold at all).
    pub fn owned_partitions(&self) -> Vec<i32> {
        self.partitions.owned()
    }

    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS when `group_id` is not served here.
    pub fn check_coordinating(&self, group_id: &str) -> Result<(), ResponseError> {
        match self
            .partition_status(self.partition_for(group_id))
            .refusal()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Changes whenever a partition finishes loading or stops being coordinated here;
    /// subscribe before reading `partition_status` and wait on it for a load to end.
    pub fn ownership_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.partitions.changes()
    }

    /// Whether every `__consumer_offsets` partition `image` says `node_id` leads is loaded
    /// here: until then some of its groups get NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS, so readiness can wait for it.
    pub fn serves_led_partitions(
        &self,
        image: &crate::metadata::MetadataImage,
        node_id: i32,
    ) -> bool {
        image.topic(OFFSETS_TOPIC).is_none_or(|topic| {
            topic
                .partitions
                .values()
                .filter(|p| p.leader == node_id)
                .all(|p| self.partition_status(p.partition) == PartitionStatus::Loaded)
        })
    }

    /// Whether some partition is being loaded (ListGroups then reports it).
    pub fn is_loading(&self) -> bool {
        self.partitions.any_loading()
    }

    /// The end offset of the latest write to `partition` (or of its log when it was
    /// loaded): what must be replicated before an answer that follows a write is sent.
    pub fn written_end(&self, partition: i32) -> Option<i64> {
        self.partitions.written_end(partition)
    }

    /// Starts loading `partition`: from now its groups get COORDINATOR_LOAD_IN_PROGRESS.
    /// `None` when it is already loading or loaded. Feed the returned load the partition's
    /// records, then `finish_load` (or `abandon_load`). `load_partition` does all of it.
    pub fn begin_load(&self, partition: i32) -> Option<PartitionLoad> {
        self.partitions
            .begin_load(partition)
            .map(|epoch| PartitionLoad::new(partition, epoch))
    }

    /// Starts serving the groups `load` replayed, unless the partition was unloaded while
    /// it loaded; returns whether it now serves them.
    pub fn finish_load(&self, mut load: PartitionLoad) -> bool {
        let partition = load.partition;
        load.groups.retain(|id, _| {
            let home = self.partition_for(id);
            if home != partition {
                // Only possible if offsets.topic.num.partitions changed, which Kafka forbids.
                tracing::warn!(group = %id, partition, home,
                    "group found in the wrong offsets partition ignored");
            }
            home == partition
        });
        self.partitions
            .note_written(partition, load.stats.end_offset);
        self.partitions
            .finish_load(partition, load.epoch, load.groups)
    }

    /// Gives up a load (its log could not be read): the partition reads as not led here.
    pub fn abandon_load(&self, load: PartitionLoad) {
        self.partitions.abandon_load(load.partition, load.epoch);
    }

    /// Becomes the coordinator of `partition`'s groups: replays the partition's log, then
    /// serves them. Call it when this broker becomes the partition's leader, after the
    /// partition accepts appends as leader. Reads files, so run it on a blocking thread
    /// (`spawn_blocking`); it holds no coordinator lock while reading, so requests for
    /// other partitions go on meanwhile. A partition already loading or loaded is left
    /// alone (zero stats). If the partition is unloaded while it loads, the load is
    /// discarded.
    pub fn load_partition(
        &self,
        partition: i32,
        log: &crate::log::Partition,
    ) -> Result<LoadStats, ApiError> {
        let started = Instant::now();
        let Some(mut load) = self.begin_load(partition) else {
            tracing::debug!(
                partition,
                "{OFFSETS_TOPIC}-{partition} is already loading or loaded"
            );
            return Ok(LoadStats::default());
        };
        if let Err(e) = load::replay(&mut load, log) {
            tracing::error!(partition, error = %e, "cannot replay {OFFSETS_TOPIC}-{partition}");
            self.abandon_load(load);
            return Err(e);
        }
        let stats = load.stats;
        let groups = load.groups.len();
        if self.finish_load(load) {
            tracing::info!(
                partition,
                groups,
                records = stats.records,
                skipped = stats.skipped,
                took_ms = started.elapsed().as_millis() as u64,
                "coordinating the groups of {OFFSETS_TOPIC}-{partition}"
            );
        } else {
            tracing::info!(
                partition,
                "{OFFSETS_TOPIC}-{partition} was unloaded while loading; load discarded"
            );
        }
        Ok(stats)
    }

    /// Stops coordinating `partition`'s groups: drops them from memory and answers their
    /// parked JoinGroup/SyncGroup requests NOT_COORDINATOR; their members find the next
    /// coordinator and rejoin there. Call it when this broker stops leading the partition,
    /// after it stopped accepting appends as leader. Does no I/O; callable from any
    /// thread, but not while holding a group's lock. Returns how many groups it dropped.
    pub fn unload_partition(&self, partition: i32) -> usize {
        let groups = self.partitions.unload(partition);
        for group in &groups {
            let deliveries = group.lock().abort_waiters(ResponseError::NotCoordinator);
            deliver(deliveries);
        }
        tracing::info!(
            partition,
            groups = groups.len(),
            "no longer coordinating the groups of {OFFSETS_TOPIC}-{partition}"
        );
        groups.len()
    }

    /// Stops coordinating on shutdown: every parked request is answered NOT_COORDINATOR.
    pub fn resign(&self) {
        for (group, _) in self.partitions.loaded_groups() {
            let deliveries = group.lock().abort_waiters(ResponseError::NotCoordinator);
            deliver(deliveries);
        }
    }

    /// The group (created if `lookup` allows), or why this coordinator does not serve it.
    fn locate(
        &self,
        group_id: &str,
        lookup: Lookup,
    ) -> Result<Option<(SharedGroup, Claim)>, ResponseError> {
        let partition = self.partition_for(group_id);
        match lookup {
            Lookup::Existing => self.partitions.get(partition, group_id),
            Lookup::OrCreate => self
                .partitions
                .get_or_create(partition, group_id, || Group::new(group_id, wall_ms()))
                .map(Some),
        }
    }

    /// Locks a located group, refusing if its partition was unloaded since it was found
    /// (the object is then no longer the group's, and must not be written from).
    fn lock_current<'a>(
        &self,
        group: &'a SharedGroup,
        claim: Claim,
    ) -> Result<MutexGuard<'a, Group>, ResponseError> {
        let g = group.lock();
        if self.partitions.is_current(claim) {
            Ok(g)
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }

    /// Appends to the group's offsets partition and remembers where the write ends.
    fn write(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> ApiResult<()> {
        let partition = self.partition_for(group_id);
        let end = log.append(partition, records)?;
        self.partitions.note_written(partition, end);
        Ok(())
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
            match self.write(log, &group.id, vec![(key, Some(value))]) {
                Ok(()) => group.take_outbox(),
                Err(e) => {
                    tracing::error!(group = %group.id, error = %e, "persisting group metadata failed");
                    group.fail_outbox(group_write_error(e.error))
                }
            }
        } else {
            group.take_outbox()
        };
        deliver(deliveries);
    }

    pub async fn join(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        request: JoinRequest,
    ) -> JoinResult {
        let member_id = request.member_id.clone();
        let failed = |error| JoinResult {
            error: Some(error),
            generation: -1,
            member_id: member_id.clone(),
            ..Default::default()
        };
        match self.start_join(log, group_id, request) {
            Err(error) => failed(error),
            Ok(JoinReply::Now(r)) => r,
            // A dropped sender means the group object was dropped from this coordinator
            // while the join was parked.
            Ok(JoinReply::Wait(rx)) => rx
                .await
                .unwrap_or_else(|_| failed(ResponseError::NotCoordinator)),
        }
    }

    fn start_join(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        request: JoinRequest,
    ) -> Result<JoinReply, ResponseError> {
        let lookup = if request.member_id.is_empty() {
            Lookup::OrCreate
        } else {
            Lookup::Existing
        };
        let (group, claim) = self
            .locate(group_id, lookup)?
            .ok_or(ResponseError::UnknownMemberId)?;
        let mut g = self.lock_current(&group, claim)?;
        let client_id = request.client_id.clone();
        let reply = g.join(request, &self.limits(), Instant::now(), wall_ms(), || {
            format!("{client_id}-{}", uuid::Uuid::new_v4())
        });
        self.settle(log, &mut g);
        Ok(reply)
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
        let failed = |error| SyncResult {
            error: Some(error),
            ..Default::default()
        };
        let reply = (|| {
            let (group, claim) = self
                .locate(group_id, Lookup::Existing)?
                .ok_or(ResponseError::UnknownMemberId)?;
            let mut g = self.lock_current(&group, claim)?;
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
            Ok(reply)
        })();
        match reply {
            Err(error) => failed(error),
            Ok(SyncReply::Now(r)) => r,
            Ok(SyncReply::Wait(rx)) => rx
                .await
                .unwrap_or_else(|_| failed(ResponseError::NotCoordinator)),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let (group, claim) = self
            .locate(group_id, Lookup::Existing)?
            .ok_or(ResponseError::UnknownMemberId)?;
        let mut g = self.lock_current(&group, claim)?;
        g.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    /// LeaveGroup for each (member id, instance id); the outer error is for the group.
    pub fn leave(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let (group, claim) = self
            .locate(group_id, Lookup::Existing)?
            .ok_or(ResponseError::UnknownMemberId)?;
        let mut g = self.lock_current(&group, claim)?;
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
        let lookup = if standalone {
            Lookup::OrCreate
        } else {
            Lookup::Existing
        };
        let (group, claim) = self
            .locate(group_id, lookup)?
            .ok_or(ResponseError::IllegalGeneration)?;
        let mut g = self.lock_current(&group, claim)?;
        if g.state == GroupState::Dead {
            // Being deleted or expired: the client retries and finds a fresh group.
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let standalone_ok = standalone && g.members.is_empty();
        if !standalone_ok {
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
            if let Err(e) = self.write(log, group_id, records) {
                tracing::error!(group = group_id, error = %e, "writing committed offsets failed");
                let error = offset_write_error(e.error);
                for (i, _) in accepted {
                    results[i].2 = Err(error);
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
    ) -> Result<FetchedOffsets, ResponseError> {
        let located = self.locate(group_id, Lookup::Existing)?;
        let g = match &located {
            Some((group, claim)) => Some(self.lock_current(group, *claim)?),
            None => None,
        };
        let mut out = FetchedOffsets::new();
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
        Ok(out)
    }

    /// Every loaded group, locked one at a time; groups dropped meanwhile are skipped.
    fn for_each_group(&self, mut f: impl FnMut(&SharedGroup, Claim, &mut Group)) {
        for (group, claim) in self.partitions.loaded_groups() {
            let Ok(mut g) = self.lock_current(&group, claim) else {
                continue;
            };
            f(&group, claim, &mut g);
        }
    }

    /// (group id, protocol type, state) of every live group this broker coordinates.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let mut out = Vec::new();
        self.for_each_group(|_, _, g| {
            if g.state != GroupState::Dead {
                out.push((
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                ));
            }
        });
        out.sort();
        out
    }

    /// The group as DescribeGroups reports it; `None` when it does not exist.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupDescription>, ResponseError> {
        let Some((group, claim)) = self.locate(group_id, Lookup::Existing)? else {
            return Ok(None);
        };
        let g = self.lock_current(&group, claim)?;
        if g.state == GroupState::Dead {
            return Ok(None);
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
        Ok(Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable || g.state == GroupState::CompletingRebalance
            {
                protocol
            } else {
                String::new()
            },
            members,
        }))
    }

    /// DeleteGroups for one group: only a group without members can go.
    pub fn delete(&self, log: &dyn OffsetsLog, group_id: &str) -> Result<(), ResponseError> {
        let (group, claim) = self
            .locate(group_id, Lookup::Existing)?
            .ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = self.lock_current(&group, claim)?;
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
        self.write(log, group_id, records).map_err(|e| {
            tracing::error!(group = group_id, error = %e, "writing group deletion failed");
            group_write_error(e.error)
        })?;
        g.offsets.clear();
        g.state = GroupState::Dead;
        drop(g);
        self.partitions.remove_group(claim, group_id, &group);
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
        let (group, claim) = self
            .locate(group_id, Lookup::Existing)?
            .ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = self.lock_current(&group, claim)?;
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
            self.write(log, group_id, records).map_err(|e| {
                tracing::error!(group = group_id, error = %e, "writing offset deletion failed");
                offset_write_error(e.error)
            })?;
        }
        for key in deleting {
            g.offsets.remove(&key);
        }
        Ok(results)
    }

    /// Runs the timers of every group of the loaded partitions.
    pub fn tick(&self, log: &dyn OffsetsLog) {
        let now = Instant::now();
        let now_ms = wall_ms();
        self.for_each_group(|_, _, g| {
            g.tick(now, now_ms);
            self.settle(log, g);
        });
    }

    /// Expires committed offsets past offsets.retention.minutes: all of an empty
    /// consumer group's offsets once it has been empty that long, and a standalone
    /// group's (no protocol type) offsets by their commit time. Groups left with nothing
    /// are removed. Only the loaded partitions' groups are looked at. Returns the number
    /// of offsets expired.
    pub fn expire_offsets(&self, log: &dyn OffsetsLog, now_ms: i64) -> usize {
        let retention = self.config.offsets_retention_ms;
        let mut expired_total = 0;
        let mut removed = Vec::new();
        self.for_each_group(|group, claim, g| {
            if g.state != GroupState::Empty {
                return;
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
                return;
            }
            if let Err(e) = self.write(log, &g.id, records) {
                tracing::error!(group = %g.id, error = %e, "writing offset expiry failed");
                return;
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
                removed.push((group.clone(), claim, g.id.clone()));
            }
        });
        // Outside the group locks: the partition map is never taken while waiting for one.
        for (group, claim, id) in removed {
            self.partitions.remove_group(claim, &id, &group);
            tracing::info!(group = %id, "empty group removed");
        }
        expired_total
    }

    /// (group, topic, partition, committed offset) of every committed offset, for metrics.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let mut out = Vec::new();
        self.for_each_group(|_, _, g| {
            for ((topic, p), c) in &g.offsets {
                out.push((g.id.clone(), topic.clone(), *p, c.offset));
            }
        });
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
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    /// An in-memory `__consumer_offsets`: every appended record, per partition.
    #[derive(Default)]
    struct MemoryLog {
        records: Mutex<Vec<(i32, Bytes, Option<Bytes>)>>,
        fail: Mutex<Option<ResponseError>>,
    }

    impl OffsetsLog for MemoryLog {
        fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> ApiResult<i64> {
            if let Some(error) = *self.fail.lock() {
                return Err(ApiError::new(error, "refused by the test"));
            }
            let mut all = self.records.lock();
            all.extend(records.into_iter().map(|(k, v)| (partition, k, v)));
            Ok(all.iter().filter(|(p, _, _)| *p == partition).count() as i64)
        }
    }

    impl MemoryLog {
        fn fail_with(&self, error: Option<ResponseError>) {
            *self.fail.lock() = error;
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

    /// Replays `partition`'s records from `log` into `c`, as a new leader does.
    fn load_from(c: &GroupCoordinator, log: &MemoryLog, partition: i32) -> bool {
        let mut load = c.begin_load(partition).expect("partition not loaded yet");
        for (p, k, v) in log.records.lock().iter() {
            if *p == partition {
                load.apply(k, v.as_deref()).expect("record loads");
            }
        }
        load.stats.end_offset = load.stats.records as i64;
        c.finish_load(load)
    }

    /// A coordinator leading every offsets partition, with what `log` holds: a restart.
    fn reload(log: &MemoryLog) -> GroupCoordinator {
        let c = GroupCoordinator::new(config());
        for p in 0..config().offsets_topic_partitions {
            assert!(load_from(&c, log, p));
        }
        c
    }

    fn join_request(member_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(30),
            rebalance_timeout: Duration::from_secs(60),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"subscription"))],
            require_known_member_id: false,
        }
    }

    /// Awaits a spawned group request, running the group timers meanwhile.
    async fn finished<T>(
        c: &GroupCoordinator,
        log: &MemoryLog,
        task: tokio::task::JoinHandle<T>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !task.is_finished() {
            assert!(Instant::now() < deadline, "request not answered in time");
            c.tick(log);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.await.expect("request task")
    }

    fn spawn_join(
        c: &Arc<GroupCoordinator>,
        log: &Arc<MemoryLog>,
        member_id: &str,
    ) -> tokio::task::JoinHandle<JoinResult> {
        let (c, log, request) = (c.clone(), log.clone(), join_request(member_id));
        tokio::spawn(async move { c.join(&*log, "g", request).await })
    }

    /// Member "a" alone in group "g", generation 1, Stable, with its assignment synced.
    async fn stable_single(c: &Arc<GroupCoordinator>, log: &Arc<MemoryLog>) -> String {
        let joined = finished(c, log, spawn_join(c, log, "")).await;
        assert_eq!(joined.error, None);
        assert_eq!(joined.generation, 1);
        let member = joined.member_id;
        let synced = c
            .sync(
                &**log,
                "g",
                &member,
                None,
                1,
                None,
                None,
                vec![(member.clone(), Bytes::from_static(b"A"))],
            )
            .await;
        assert_eq!(synced.error, None);
        member
    }

    #[test]
    fn groups_map_to_partitions_as_in_kafka() {
        let c = GroupCoordinator::new(config());
        // Java: "strom-e2e-failover-group".hashCode() == -2021077641 -> abs % 50 == 41.
        assert_eq!(java_string_hash("strom-e2e-failover-group"), -2_021_077_641);
        assert_eq!(c.partition_for("strom-e2e-failover-group"), 41);
        assert_eq!(c.partition_for(""), 0);
    }

    #[test]
    fn commits_survive_a_reload_and_deletes_too() {
        let log = MemoryLog::default();
        let c = reload(&log);
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
        let partition = c.partition_for("g");
        assert!(log.records.lock().iter().all(|(p, _, _)| *p == partition));
        assert_eq!(c.written_end(partition), Some(1), "the write is awaited");

        let again = reload(&log);
        let fetched = again.fetch_offsets("g", None).unwrap();
        assert_eq!(fetched["t"], vec![(0, Some(committed(5, "ckpt", 1)))]);

        again
            .delete_offsets(&log, "g", vec![("t".into(), 0)])
            .expect("offset delete");
        let after = reload(&log);
        assert!(after.fetch_offsets("g", None).unwrap().is_empty());
        after.delete(&log, "g").expect("group delete");
        assert!(reload(&log).list().is_empty());
    }

    #[test]
    fn a_failed_write_commits_nothing() {
        let log = MemoryLog::default();
        let c = reload(&log);
        let commit = |c: &GroupCoordinator| {
            c.commit(
                &log,
                "g",
                -1,
                "",
                None,
                vec![("t".into(), 0, committed(5, "", 1))],
            )
            .expect("answered per partition")[0]
                .2
        };
        log.fail_with(Some(ResponseError::NotEnoughReplicas));
        assert_eq!(commit(&c), Err(ResponseError::CoordinatorNotAvailable));
        log.fail_with(Some(ResponseError::NotLeaderOrFollower));
        assert_eq!(commit(&c), Err(ResponseError::NotCoordinator));
        assert_eq!(c.fetch_offsets("g", None).unwrap().get("t"), None);
    }

    #[tokio::test]
    async fn a_failed_group_write_sends_members_elsewhere() {
        let log = Arc::new(MemoryLog::default());
        let c = Arc::new(reload(&log));
        log.fail_with(Some(ResponseError::NotLeaderOrFollower));
        let joined = finished(&c, &log, spawn_join(&c, &log, "")).await;
        assert_eq!(joined.error, Some(ResponseError::NotCoordinator));
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_retention() {
        let log = MemoryLog::default();
        let c = reload(&log);
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
    fn groups_of_a_partition_not_led_here_get_not_coordinator() {
        let log = MemoryLog::default();
        let c = GroupCoordinator::new(config());
        let not_here = Err(ResponseError::NotCoordinator);
        assert_eq!(c.check_coordinating("g"), not_here);
        assert_eq!(
            c.commit(
                &log,
                "g",
                -1,
                "",
                None,
                vec![("t".into(), 0, committed(1, "", 1))]
            )
            .map(|_| ()),
            not_here
        );
        assert_eq!(c.heartbeat("g", "m", None, 1), not_here);
        assert_eq!(c.fetch_offsets("g", None).map(|_| ()), not_here);
        assert_eq!(c.describe("g").map(|_| ()), not_here);
        assert_eq!(c.delete(&log, "g"), not_here);
        assert_eq!(c.leave(&log, "g", &[]).map(|_| ()), not_here);
        assert!(c.list().is_empty());
        assert!(log.records.lock().is_empty(), "nothing written");
        let joined = futures::executor::block_on(c.join(&log, "g", join_request("")));
        assert_eq!(joined.error, Some(ResponseError::NotCoordinator));
    }

    #[test]
    fn requests_during_a_load_get_load_in_progress() {
        let log = MemoryLog::default();
        let c = GroupCoordinator::new(config());
        let partition = c.partition_for("g");
        let load = c.begin_load(partition).expect("load starts");
        assert!(c.begin_load(partition).is_none(), "one load at a time");
        assert!(c.is_loading());
        let loading = Err(ResponseError::CoordinatorLoadInProgress);
        assert_eq!(c.check_coordinating("g"), loading);
        assert_eq!(c.fetch_offsets("g", None).map(|_| ()), loading);
        assert_eq!(c.heartbeat("g", "m", None, 1), loading);
        assert_eq!(c.partition_status(partition), PartitionStatus::Loading);
        assert!(c.finish_load(load));
        assert!(!c.is_loading());
        assert_eq!(c.check_coordinating("g"), Ok(()));
        assert!(c
            .commit(
                &log,
                "g",
                -1,
                "",
                None,
                vec![("t".into(), 0, committed(1, "", 1))]
            )
            .is_ok());
    }

    #[test]
    fn a_load_overtaken_by_an_unload_serves_nothing() {
        let c = GroupCoordinator::new(config());
        let load = c.begin_load(7).expect("load starts");
        c.unload_partition(7);
        assert!(
            !c.finish_load(load),
            "the partition moved away while loading"
        );
        assert_eq!(c.partition_status(7), PartitionStatus::NotOwned);
        assert!(c.owned_partitions().is_empty());
        let load = c.begin_load(3).unwrap();
        assert_eq!(
            c.owned_partitions(),
            vec![3],
            "a loading partition is owned"
        );
        assert!(c.finish_load(load));
        assert_eq!(c.owned_partitions(), vec![3]);
    }

    #[tokio::test]
    async fn unloading_answers_parked_joins_not_coordinator() {
        let log = Arc::new(MemoryLog::default());
        let c = Arc::new(reload(&log));
        let a = stable_single(&c, &log).await;
        // b's join parks until a rejoins, which a never does here.
        let b = spawn_join(&c, &log, "");
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.describe("g").unwrap().map(|d| d.members.len()) != Some(2) {
            assert!(Instant::now() < deadline, "b never joined");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!b.is_finished());
        assert_eq!(c.unload_partition(c.partition_for("g")), 1);
        let answered = tokio::time::timeout(Duration::from_secs(10), b)
            .await
            .expect("parked join answered")
            .expect("join task");
        assert_eq!(answered.error, Some(ResponseError::NotCoordinator));
        assert_eq!(
            c.heartbeat("g", &a, None, 1),
            Err(ResponseError::NotCoordinator)
        );
        assert!(c.list().is_empty(), "the group left memory");
    }

    #[tokio::test]
    async fn commits_and_members_move_with_the_partition_on_failover() {
        let log = Arc::new(MemoryLog::default());
        let old = Arc::new(reload(&log));
        let member = stable_single(&old, &log).await;
        let results = old
            .commit(
                &*log,
                "g",
                1,
                &member,
                None,
                vec![("t".into(), 0, committed(42, "m", 5))],
            )
            .expect("member commit");
        assert_eq!(results[0].2, Ok(()));
        let partition = old.partition_for("g");

        // Leadership of the partition moves: the old coordinator lets go, a new one loads
        // the (replicated) log.
        old.unload_partition(partition);
        let new = GroupCoordinator::new(config());
        assert!(load_from(&new, &log, partition));
        assert_eq!(
            new.written_end(partition),
            old.written_end(partition),
            "answers on the new coordinator wait for what it loaded to be replicated"
        );

        let fetched = new.fetch_offsets("g", None).unwrap();
        assert_eq!(fetched["t"], vec![(0, Some(committed(42, "m", 5)))]);
        let described = new.describe("g").unwrap().expect("group moved");
        assert_eq!(described.state, GroupState::Stable);
        assert_eq!(described.members[0].member_id, member);
        assert_eq!(new.heartbeat("g", &member, None, 1), Ok(()));

        assert_eq!(
            old.fetch_offsets("g", None).map(|_| ()),
            Err(ResponseError::NotCoordinator)
        );
        let commit_on_old = old.commit(
            &*log,
            "g",
            1,
            &member,
            None,
            vec![("t".into(), 0, committed(43, "", 6))],
        );
        assert_eq!(
            commit_on_old.map(|_| ()),
            Err(ResponseError::NotCoordinator)
        );
    }

    #[test]
    fn readiness_waits_for_the_partitions_led_here() {
        use crate::metadata::{MetadataImage, MetadataRecord};
        let mut image = MetadataImage::default();
        let c = GroupCoordinator::new(config());
        assert!(c.serves_led_partitions(&image, 1), "no offsets topic yet");
        let topic_id = uuid::Uuid::new_v4();
        image.apply(&MetadataRecord::Topic {
            name: OFFSETS_TOPIC.into(),
            topic_id,
        });
        for (partition, leader) in [(0, 1), (1, 2)] {
            image.apply(&MetadataRecord::Partition {
                topic_id,
                partition,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
                adding: Vec::new(),
                removing: Vec::new(),
            });
        }
        assert!(!c.serves_led_partitions(&image, 1));
        let load = c.begin_load(0).unwrap();
        assert!(!c.serves_led_partitions(&image, 1), "still loading");
        assert!(c.finish_load(load));
        assert!(c.serves_led_partitions(&image, 1));
        assert!(!c.serves_led_partitions(&image, 2));
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
