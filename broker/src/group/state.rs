//! One classic consumer group and Kafka's rebalance state machine over it: Empty,
//! PreparingRebalance, CompletingRebalance, Stable, Dead.
//!
//! Everything here is synchronous and takes the time as an argument, so the coordinator
//! can drive it under a lock and tests can drive it without a clock. A JoinGroup or
//! SyncGroup that must wait leaves a oneshot sender in its member; answers are queued in
//! `outbox` and sent by the coordinator only after it has persisted whatever the
//! transition made durable, so no client hears of a generation the log does not hold.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::records::{GroupValue, MemberValue, OffsetValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports in ListGroups and DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup answer.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, group instance id, metadata), for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    fn error(error: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: Some(error),
            ..Default::default()
        }
    }
}

/// An answer to send once the transition that produced it is persisted.
#[derive(Debug)]
pub enum Delivery {
    Join(oneshot::Sender<JoinResult>, JoinResult),
    Sync(oneshot::Sender<SyncResult>, SyncResult),
}

/// What a JoinGroup call gets back: an answer now, or a receiver for one.
#[derive(Debug)]
pub enum JoinReply {
    Now(JoinResult),
    Wait(oneshot::Receiver<JoinResult>),
}

#[derive(Debug)]
pub enum SyncReply {
    Now(SyncResult),
    Wait(oneshot::Receiver<SyncResult>),
}

/// The JoinGroup request fields the state machine needs.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a dynamic member must first learn its member id (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    last_heartbeat: Instant,
    /// Order of first join; the earliest-joined member that rejoined becomes leader.
    joined_seq: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Answers this member's parked JoinGroup and SyncGroup, if any, with `error`.
    fn answer_parked(&mut self, error: ResponseError) -> Vec<Delivery> {
        let mut out = Vec::new();
        if let Some(tx) = self.join_waiter.take() {
            out.push(Delivery::Join(tx, JoinResult::error(error, &self.id)));
        }
        if let Some(tx) = self.sync_waiter.take() {
            out.push(Delivery::Sync(tx, SyncResult::error(error)));
        }
        out
    }

    /// A member blocked in JoinGroup or SyncGroup is alive by definition: it cannot
    /// heartbeat while its request is parked.
    fn expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && now.saturating_duration_since(self.last_heartbeat) > self.session_timeout
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

impl From<OffsetValue> for Committed {
    fn from(v: OffsetValue) -> Committed {
        Committed {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp: v.commit_timestamp,
        }
    }
}

/// group.initial.rebalance.delay.ms for a group forming from empty.
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    until: Instant,
    remaining: Duration,
    step: Duration,
    members_at_start: usize,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// Wall-clock ms of the last state change; offsets of an empty group expire from it.
    pub state_since_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, and when they lapse.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    initial_delay: Option<InitialDelay>,
    sync_deadline: Option<Instant>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// The group's membership changed in a way the log must record.
    dirty: bool,
    outbox: Vec<Delivery>,
    next_seq: u64,
    /// Why the last rebalance started, for logs and tests.
    pub last_rebalance_reason: String,
}

/// Limits and defaults from the broker config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub max_size: usize,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            dirty: false,
            outbox: Vec::new(),
            next_seq: 0,
            last_rebalance_reason: String::new(),
        }
    }

    /// Rebuilds a group from its last persisted metadata. Members come back as a Stable
    /// group, as in Kafka: their heartbeats carry on after a coordinator restart and a
    /// member that died meanwhile expires by its session timeout.
    pub fn restore(&mut self, value: GroupValue, now: Instant) {
        self.generation = value.generation;
        self.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        self.protocol = value.protocol;
        self.leader = value.leader;
        self.state_since_ms = value.current_state_timestamp;
        self.members.clear();
        self.static_members.clear();
        for m in value.members {
            let protocol = self.protocol.clone().unwrap_or_default();
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocol_type: self.protocol_type.clone().unwrap_or_default(),
                    protocols: vec![(protocol, m.subscription)],
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    last_heartbeat: now,
                    joined_seq: seq,
                },
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// The durable form of the group's membership.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn take_outbox(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.outbox)
    }

    /// Answers every parked request with `error`; used when persisting a transition failed.
    pub fn fail_outbox(&mut self, error: ResponseError) -> Vec<Delivery> {
        self.take_outbox()
            .into_iter()
            .map(|d| match d {
                Delivery::Join(tx, r) => Delivery::Join(tx, JoinResult::error(error, &r.member_id)),
                Delivery::Sync(tx, _) => Delivery::Sync(tx, SyncResult::error(error)),
            })
            .collect()
    }

    /// Answers every parked JoinGroup and SyncGroup with `error` (the coordinator is
    /// going away); the members rejoin wherever the group is coordinated next.
    pub fn abort_waiters(&mut self, error: ResponseError) -> Vec<Delivery> {
        let mut out = self.fail_outbox(error);
        for m in self.members.values_mut() {
            out.extend(m.answer_parked(error));
        }
        out
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = now_ms;
        }
    }

    pub fn is_empty_of_everything(&self) -> bool {
        self.state == GroupState::Empty && self.offsets.is_empty() && self.pending.is_empty()
    }

    pub fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.static_members.get(instance_id).map(String::as_str)
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.values().min_by_key(|m| m.joined_seq) else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    /// Each member votes for its most preferred candidate; most votes wins, ties go to
    /// the candidate the longest-standing member prefers.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            // An empty group takes any protocol type, even after offsets were committed
            // under another (Kafka checks the type only against live members).
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(name, _)| candidates.contains(name))
    }

    /// Kafka's check for requests naming a member: a static instance now owned by another
    /// member id is fenced; otherwise the member id must be known.
    fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            if let Some(owner) = self.static_members.get(instance) {
                if owner != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    pub fn join(
        &mut self,
        request: JoinRequest,
        limits: &Limits,
        now: Instant,
        now_ms: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> JoinReply {
        if request.session_timeout < limits.min_session_timeout
            || request.session_timeout > limits.max_session_timeout
        {
            return JoinReply::Now(JoinResult::error(
                ResponseError::InvalidSessionTimeout,
                &request.member_id,
            ));
        }
        if self.state == GroupState::Dead {
            // The group is being deleted; the client rediscovers the coordinator and retries.
            return JoinReply::Now(JoinResult::error(
                ResponseError::CoordinatorNotAvailable,
                &request.member_id,
            ));
        }
        if !self.supports(&request.protocol_type, &request.protocols) {
            return JoinReply::Now(JoinResult::error(
                ResponseError::InconsistentGroupProtocol,
                &request.member_id,
            ));
        }
        if request.member_id.is_empty() {
            self.join_unknown_member(request, limits, now, now_ms, new_member_id)
        } else {
            self.join_known_member(request, limits, now, now_ms)
        }
    }

    fn join_unknown_member(
        &mut self,
        request: JoinRequest,
        limits: &Limits,
        now: Instant,
        now_ms: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> JoinReply {
        let member_id = new_member_id();
        if let Some(instance) = request.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(&old_id, member_id, request, now, now_ms);
            }
        } else if request.require_known_member_id {
            if self.members.len() + self.pending.len() >= limits.max_size {
                return JoinReply::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
            }
            // KIP-394: hand out the id first, so a client that times out and retries
            // rejoins as the same member instead of leaving a ghost behind.
            self.pending
                .insert(member_id.clone(), now + request.session_timeout);
            return JoinReply::Now(JoinResult::error(
                ResponseError::MemberIdRequired,
                &member_id,
            ));
        }
        if self.members.len() >= limits.max_size {
            return JoinReply::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
        }
        self.add_member(member_id, request, limits, now, now_ms)
    }

    fn join_known_member(
        &mut self,
        request: JoinRequest,
        limits: &Limits,
        now: Instant,
        now_ms: i64,
    ) -> JoinReply {
        let member_id = request.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            if self.members.len() >= limits.max_size {
                return JoinReply::Now(JoinResult::error(
                    ResponseError::GroupMaxSizeReached,
                    &member_id,
                ));
            }
            return self.add_member(member_id, request, limits, now, now_ms);
        }
        if let Err(e) = self.validate_member(&member_id, request.group_instance_id.as_deref()) {
            return JoinReply::Now(JoinResult::error(e, &member_id));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => JoinReply::Now(JoinResult::error(
                ResponseError::UnknownMemberId,
                &member_id,
            )),
            GroupState::PreparingRebalance => {
                let (tx, rx) = oneshot::channel();
                self.update_member(&member_id, &request, Some(tx), now);
                self.try_complete_join(now, now_ms);
                JoinReply::Wait(rx)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let unchanged = self
                    .members
                    .get(&member_id)
                    .is_some_and(|m| m.protocols == request.protocols);
                let is_leader = self.leader.as_deref() == Some(member_id.as_str());
                if unchanged && (self.state == GroupState::CompletingRebalance || !is_leader) {
                    // A repeated join with nothing new: answer with the current generation
                    // so the member can go on to SyncGroup.
                    JoinReply::Now(self.join_result_for(&member_id))
                } else {
                    let (tx, rx) = oneshot::channel();
                    self.update_member(&member_id, &request, Some(tx), now);
                    self.prepare_rebalance(
                        now,
                        now_ms,
                        format!("member {member_id} rejoined with new metadata or as leader"),
                    );
                    JoinReply::Wait(rx)
                }
            }
        }
    }

    fn add_member(
        &mut self,
        member_id: String,
        request: JoinRequest,
        limits: &Limits,
        now: Instant,
        now_ms: i64,
    ) -> JoinReply {
        let (tx, rx) = oneshot::channel();
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id.clone(),
                instance_id: request.group_instance_id.clone(),
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                protocol_type: request.protocol_type.clone(),
                protocols: request.protocols.clone(),
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                last_heartbeat: now,
                joined_seq: seq,
            },
        );
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now, now_ms),
            GroupState::Empty => {
                // The first member of an empty group waits
                // group.initial.rebalance.delay.ms for others, so a group starting up
                // together forms in one rebalance instead of one per member.
                let rebalance_timeout = self.max_rebalance_timeout();
                let delay = limits.initial_rebalance_delay.min(rebalance_timeout);
                self.initial_delay = (!delay.is_zero()).then_some(InitialDelay {
                    until: now + delay,
                    remaining: rebalance_timeout.saturating_sub(delay),
                    step: delay,
                    members_at_start: self.members.len(),
                });
                self.prepare_rebalance(now, now_ms, format!("member {member_id} joined"));
            }
            _ => self.prepare_rebalance(now, now_ms, format!("member {member_id} joined")),
        }
        JoinReply::Wait(rx)
    }

    fn update_member(
        &mut self,
        member_id: &str,
        request: &JoinRequest,
        waiter: Option<oneshot::Sender<JoinResult>>,
        now: Instant,
    ) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = request.protocols.clone();
            m.session_timeout = request.session_timeout;
            m.rebalance_timeout = request.rebalance_timeout;
            m.client_id = request.client_id.clone();
            m.client_host = request.client_host.clone();
            m.last_heartbeat = now;
            if let Some(old) = std::mem::replace(&mut m.join_waiter, waiter) {
                // The member's earlier join is superseded; the client gave up on it.
                self.outbox.push(Delivery::Join(
                    old,
                    JoinResult::error(ResponseError::UnknownMemberId, member_id),
                ));
            }
        }
    }

    /// KIP-345: a static member that restarts takes over its old membership under a new
    /// member id. In a Stable group whose protocol does not change, nobody else
    /// rebalances; the old member id is fenced.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        request: JoinRequest,
        now: Instant,
        now_ms: i64,
    ) -> JoinReply {
        let Some(mut member) = self.members.remove(old_id) else {
            // Mapping without a member cannot happen; treat it as a fresh join.
            self.static_members.retain(|_, id| id.as_str() != old_id);
            return self.add_member_unchecked(new_id, request, now, now_ms);
        };
        let old_leader = self.leader.clone().unwrap_or_default();
        self.outbox
            .extend(member.answer_parked(ResponseError::FencedInstanceId));
        member.id = new_id.clone();
        let old_protocols = std::mem::replace(&mut member.protocols, request.protocols.clone());
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.last_heartbeat = now;
        if let Some(instance) = &request.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        tracing::info!(group = %self.id, old = old_id, new = %new_id,
            instance = ?request.group_instance_id, "static member rejoined under a new member id");

        let (tx, rx) = oneshot::channel();
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol => {
                self.dirty = true;
                // The old leader id is returned on purpose: the rejoined member must not
                // think itself leader and reassign while the group is stable.
                let mut result = self.join_result_for(&new_id);
                result.leader = old_leader;
                result.members.clear();
                self.outbox.push(Delivery::Join(tx, result));
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                self.try_complete_join(now, now_ms);
            }
            _ => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                    if old_protocols != m.protocols {
                        tracing::debug!(group = %self.id, "static member changed its protocols");
                    }
                }
                self.prepare_rebalance(
                    now,
                    now_ms,
                    format!("static member {new_id} rejoined while the group was not stable or with a new protocol"),
                );
            }
        }
        JoinReply::Wait(rx)
    }

    fn add_member_unchecked(
        &mut self,
        member_id: String,
        request: JoinRequest,
        now: Instant,
        now_ms: i64,
    ) -> JoinReply {
        let limits = Limits {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout: Duration::ZERO,
            max_session_timeout: Duration::MAX,
            max_size: usize::MAX,
        };
        self.add_member(member_id, request, &limits, now, now_ms)
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn prepare_rebalance(&mut self, now: Instant, now_ms: i64, reason: String) {
        if self.state == GroupState::CompletingRebalance {
            // Assignments computed for the old generation are void; parked syncs learn so.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.sync_waiter.take() {
                    self.outbox.push(Delivery::Sync(
                        tx,
                        SyncResult::error(ResponseError::RebalanceInProgress),
                    ));
                }
            }
        }
        self.sync_deadline = None;
        self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
        tracing::info!(group = %self.id, generation = self.generation, %reason, "preparing rebalance");
        self.last_rebalance_reason = reason;
        self.set_state(GroupState::PreparingRebalance, now_ms);
        self.try_complete_join(now, now_ms);
    }

    fn all_members_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn try_complete_join(&mut self, now: Instant, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance
            || self.initial_delay.is_some()
            || !self.all_members_joined()
        {
            return;
        }
        self.complete_join(now, now_ms);
    }

    /// Ends the join phase: members that did not rejoin are dropped (static ones keep
    /// their place, as in Kafka), the generation advances, and every rejoined member gets
    /// its answer; the leader gets everyone's metadata to assign with.
    fn complete_join(&mut self, now: Instant, now_ms: i64) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removed");
            self.members.remove(&id);
        }
        self.pending.clear();
        self.rebalance_deadline = None;
        self.initial_delay = None;

        let joined_leader = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.join_waiter.is_some());
        if !joined_leader {
            self.leader = self
                .members
                .values()
                .filter(|m| m.join_waiter.is_some())
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() || self.leader.is_none() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        self.protocol = self.select_protocol();
        self.protocol_type = self
            .members
            .values()
            .next()
            .map(|m| m.protocol_type.clone());
        self.set_state(GroupState::CompletingRebalance, now_ms);
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        tracing::info!(group = %self.id, generation = self.generation, protocol = ?self.protocol,
            members = self.members.len(), leader = ?self.leader, "rebalance: join phase complete");

        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_heartbeat = now;
                if let Some(tx) = m.join_waiter.take() {
                    self.outbox.push(Delivery::Join(tx, result));
                }
            }
        }
    }

    fn join_result_for(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                let mut members: Vec<&Member> = self.members.values().collect();
                members.sort_by_key(|m| m.joined_seq);
                members
                    .into_iter()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.metadata_for(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn check_generation(&self, generation: i32) -> Result<(), ResponseError> {
        if generation != self.generation {
            Err(ResponseError::IllegalGeneration)
        } else {
            Ok(())
        }
    }

    fn check_protocol(
        &self,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
    ) -> Result<(), ResponseError> {
        let type_ok = protocol_type.is_none() || protocol_type == self.protocol_type.as_deref();
        let name_ok = protocol_name.is_none() || protocol_name == self.protocol.as_deref();
        if type_ok && name_ok {
            Ok(())
        } else {
            Err(ResponseError::InconsistentGroupProtocol)
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
        now_ms: i64,
    ) -> SyncReply {
        let checked = self
            .validate_member(member_id, instance_id)
            .and_then(|()| self.check_generation(generation))
            .and_then(|()| self.check_protocol(protocol_type, protocol_name));
        if let Err(e) = checked {
            return SyncReply::Now(SyncResult::error(e));
        }
        match self.state {
            GroupState::Empty => SyncReply::Now(SyncResult::error(ResponseError::UnknownMemberId)),
            GroupState::Dead => {
                SyncReply::Now(SyncResult::error(ResponseError::CoordinatorNotAvailable))
            }
            GroupState::PreparingRebalance => {
                SyncReply::Now(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => SyncReply::Now(self.sync_result_for(member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.last_heartbeat = now;
                    if let Some(old) = m.sync_waiter.replace(tx) {
                        self.outbox.push(Delivery::Sync(
                            old,
                            SyncResult::error(ResponseError::UnknownMemberId),
                        ));
                    }
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    if !given.is_empty() {
                        tracing::warn!(group = %self.id, unknown = ?given.keys().collect::<Vec<_>>(),
                            "leader assigned partitions to members not in the group; ignored");
                    }
                    self.sync_deadline = None;
                    self.set_state(GroupState::Stable, now_ms);
                    self.dirty = true;
                    tracing::info!(group = %self.id, generation = self.generation, "group is stable");
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let result = self.sync_result_for(&id);
                        if let Some(tx) =
                            self.members.get_mut(&id).and_then(|m| m.sync_waiter.take())
                        {
                            self.outbox.push(Delivery::Sync(tx, result));
                        }
                    }
                }
                SyncReply::Wait(rx)
            }
        }
    }

    fn sync_result_for(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if self.state == GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_generation(generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for one member: by member id, or by instance id for a static member
    /// (whose member id may be unknown to the caller).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let target = match instance_id {
            Some(instance) => {
                let owner = self
                    .static_members
                    .get(instance)
                    .cloned()
                    .ok_or(ResponseError::UnknownMemberId)?;
                if !member_id.is_empty() && owner != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
                owner
            }
            None => {
                if self.pending.remove(member_id).is_some() {
                    self.try_complete_join(now, now_ms);
                    return Ok(());
                }
                if !self.members.contains_key(member_id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                member_id.to_string()
            }
        };
        self.remove_member(&target, "left the group", now, now_ms);
        Ok(())
    }

    fn remove_member(&mut self, member_id: &str, why: &str, now: Instant, now_ms: i64) {
        let Some(mut member) = self.members.remove(member_id) else {
            return;
        };
        tracing::info!(group = %self.id, member = member_id, instance = ?member.instance_id, why, "member removed");
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.outbox
            .extend(member.answer_parked(ResponseError::UnknownMemberId));
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, now_ms, format!("member {member_id} {why}"))
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Runs the group's timers: session expiry, lapsed pending ids, the initial delay,
    /// the rebalance timeout, and a leader that never sent its SyncGroup.
    pub fn tick(&mut self, now: Instant, now_ms: i64) {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member(&id, "missed its session timeout", now, now_ms);
        }
        if let Some(delay) = self.initial_delay {
            if now >= delay.until {
                let grew = self.members.len() > delay.members_at_start;
                if grew && !delay.remaining.is_zero() {
                    // Members are still arriving: wait another delay, within the
                    // rebalance timeout.
                    let step = delay.step.min(delay.remaining);
                    self.initial_delay = Some(InitialDelay {
                        until: now + step,
                        remaining: delay.remaining.saturating_sub(step),
                        step: delay.step,
                        members_at_start: self.members.len(),
                    });
                } else {
                    self.initial_delay = None;
                    self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
                }
            }
        }
        if self.state == GroupState::PreparingRebalance && self.initial_delay.is_none() {
            if self.rebalance_deadline.is_some_and(|d| now >= d) {
                self.complete_join(now, now_ms);
            } else {
                self.try_complete_join(now, now_ms);
            }
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| now >= d)
        {
            let silent: Vec<String> = self
                .members
                .values()
                .filter(|m| m.sync_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            tracing::info!(group = %self.id, "leader did not send SyncGroup within the rebalance timeout");
            for id in silent {
                self.remove_member(
                    &id,
                    "did not sync within the rebalance timeout",
                    now,
                    now_ms,
                );
            }
            if self.state == GroupState::CompletingRebalance {
                self.prepare_rebalance(now, now_ms, "sync timed out".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        initial_rebalance_delay: Duration::ZERO,
        min_session_timeout: Duration::from_millis(10),
        max_session_timeout: Duration::from_secs(600),
        max_size: 100,
    };

    fn request(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            group_instance_id: instance.map(str::to_string),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            require_known_member_id: true,
        }
    }

    /// Delivers the outbox and returns the answers that were ready, by member id.
    fn flush(g: &mut Group) {
        for d in g.take_outbox() {
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

    fn join(g: &mut Group, req: JoinRequest, now: Instant, id: &str) -> JoinReply {
        let id = id.to_string();
        let reply = g.join(req, &LIMITS, now, 0, move || id);
        flush(g);
        reply
    }

    fn ready(reply: JoinReply) -> JoinResult {
        match reply {
            JoinReply::Now(r) => r,
            JoinReply::Wait(mut rx) => rx.try_recv().expect("join answered"),
        }
    }

    fn sync_ready(reply: SyncReply) -> SyncResult {
        match reply {
            SyncReply::Now(r) => r,
            SyncReply::Wait(mut rx) => rx.try_recv().expect("sync answered"),
        }
    }

    /// Joins a dynamic member through the KIP-394 two-step and returns its pending reply.
    fn join_new(g: &mut Group, id: &str, now: Instant) -> JoinReply {
        let first = ready(join(g, request("", None, &["range"]), now, id));
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        assert_eq!(first.member_id, id);
        join(g, request(id, None, &["range"]), now, "unused")
    }

    fn stable_pair(now: Instant) -> Group {
        let mut g = Group::new("g", 0);
        let a = join_new(&mut g, "a", now);
        let a = ready(a);
        assert_eq!((a.generation, a.leader.as_str()), (1, "a"));
        let s = g.sync(
            "a",
            None,
            1,
            None,
            None,
            vec![("a".into(), Bytes::from("A"))],
            now,
            0,
        );
        flush(&mut g);
        assert_eq!(sync_ready(s).assignment, Bytes::from("A"));
        // b joins: a learns through its heartbeat and rejoins.
        let b = join_new(&mut g, "b", now);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat("a", None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        let a = ready(join(&mut g, request("a", None, &["range"]), now, "x"));
        let b = ready(b);
        assert_eq!(a.generation, 2);
        assert_eq!(a.members.len(), 2, "the leader gets every member");
        assert!(b.members.is_empty(), "followers get no member list");
        let sb = g.sync("b", None, 2, None, None, vec![], now, 0);
        flush(&mut g);
        let sa = g.sync(
            "a",
            None,
            2,
            Some("consumer"),
            Some("range"),
            vec![
                ("a".into(), Bytes::from("A2")),
                ("b".into(), Bytes::from("B2")),
            ],
            now,
            0,
        );
        flush(&mut g);
        assert_eq!(sync_ready(sa).assignment, Bytes::from("A2"));
        assert_eq!(sync_ready(sb).assignment, Bytes::from("B2"));
        assert_eq!(g.state, GroupState::Stable);
        g
    }

    #[test]
    fn members_join_sync_and_rebalance_in_generations() {
        let now = Instant::now();
        let mut g = stable_pair(now);
        assert!(g.take_dirty(), "a stable generation is persisted");
        assert_eq!(g.heartbeat("b", None, 2, now), Ok(()));
        assert_eq!(
            g.heartbeat("b", None, 1, now),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("zz", None, 2, now),
            Err(ResponseError::UnknownMemberId)
        );
        // A leave rebalances the rest; the leader is re-elected among those who rejoin.
        assert_eq!(g.leave("a", None, now, 0), Ok(()));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let b = ready(join(&mut g, request("b", None, &["range"]), now, "x"));
        assert_eq!((b.generation, b.leader.as_str()), (3, "b"));
        assert_eq!(
            g.leave("a", None, now, 0),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn sync_during_rebalance_and_with_wrong_generation_is_refused() {
        let now = Instant::now();
        let mut g = stable_pair(now);
        let _b = join(
            &mut g,
            request("b", None, &["range", "roundrobin"]),
            now,
            "x",
        );
        let r = sync_ready(g.sync("a", None, 2, None, None, vec![], now, 0));
        assert_eq!(r.error, Some(ResponseError::RebalanceInProgress));
        let r = sync_ready(g.sync("a", None, 1, None, None, vec![], now, 0));
        assert_eq!(r.error, Some(ResponseError::IllegalGeneration));
        let r = sync_ready(g.sync("nobody", None, 2, None, None, vec![], now, 0));
        assert_eq!(r.error, Some(ResponseError::UnknownMemberId));
    }

    #[test]
    fn protocol_is_chosen_by_vote_among_common_ones() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let a = join(
            &mut g,
            request("", Some("ia"), &["roundrobin", "range"]),
            now,
            "a",
        );
        let _ = ready(a);
        assert_eq!(g.protocol.as_deref(), Some("roundrobin"));
        // A member that shares no protocol is refused outright.
        let r = ready(join(&mut g, request("", None, &["sticky"]), now, "c"));
        assert_eq!(r.error, Some(ResponseError::InconsistentGroupProtocol));
        let mut other_type = request("", None, &["range"]);
        other_type.protocol_type = "connect".into();
        let r = ready(join(&mut g, other_type, now, "c"));
        assert_eq!(r.error, Some(ResponseError::InconsistentGroupProtocol));
    }

    #[test]
    fn session_timeout_removes_a_silent_member() {
        let now = Instant::now();
        let mut g = stable_pair(now);
        // b keeps heart-beating, a goes silent.
        let later = now + Duration::from_secs(6);
        g.heartbeat("b", None, 2, later).expect("heartbeat");
        g.tick(now + Duration::from_secs(11), 0);
        flush(&mut g);
        assert!(!g.members.contains_key("a"));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let b = ready(join(&mut g, request("b", None, &["range"]), later, "x"));
        assert_eq!((b.generation, b.members.len()), (3, 1));
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let now = Instant::now();
        let mut g = stable_pair(now);
        // New metadata from b starts a rebalance.
        let b = join(&mut g, request("b", None, &["range", "sticky"]), now, "x");
        // a stays alive by heart-beating (told to rejoin each time) but never rejoins.
        for s in [9, 18, 27] {
            let at = now + Duration::from_secs(s);
            assert_eq!(
                g.heartbeat("a", None, 2, at),
                Err(ResponseError::RebalanceInProgress)
            );
            g.tick(at, 0);
        }
        g.tick(now + Duration::from_secs(29), 0);
        assert!(
            g.members.contains_key("a"),
            "still within the rebalance timeout"
        );
        g.tick(now + Duration::from_secs(31), 0);
        flush(&mut g);
        let b = ready(b);
        assert_eq!(
            (b.generation, b.leader.as_str(), b.members.len()),
            (3, "b", 1)
        );
    }

    #[test]
    fn static_member_rejoins_without_rebalancing_and_fences_the_old_id() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let a = join(&mut g, request("", Some("ia"), &["range"]), now, "a1");
        let a = ready(a);
        assert_eq!(
            a.member_id, "a1",
            "static members need no member-id round trip"
        );
        let s = g.sync(
            "a1",
            Some("ia"),
            1,
            None,
            None,
            vec![("a1".into(), Bytes::from("P"))],
            now,
            0,
        );
        flush(&mut g);
        assert_eq!(sync_ready(s).assignment, Bytes::from("P"));
        let generation = g.generation;

        // The same instance comes back under a new id: same generation, same assignment.
        let again = ready(join(&mut g, request("", Some("ia"), &["range"]), now, "a2"));
        assert_eq!(again.error, None);
        assert_eq!(again.generation, generation);
        assert_eq!(
            again.leader, "a1",
            "the old leader id keeps the new member a follower"
        );
        assert_eq!(g.state, GroupState::Stable);
        let s = sync_ready(g.sync("a2", Some("ia"), generation, None, None, vec![], now, 0));
        assert_eq!(s.assignment, Bytes::from("P"));

        // The old incarnation is fenced everywhere.
        assert_eq!(
            g.heartbeat("a1", Some("ia"), generation, now),
            Err(ResponseError::FencedInstanceId)
        );
        let r = sync_ready(g.sync("a1", Some("ia"), generation, None, None, vec![], now, 0));
        assert_eq!(r.error, Some(ResponseError::FencedInstanceId));
        assert_eq!(
            g.leave("a1", Some("ia"), now, 0),
            Err(ResponseError::FencedInstanceId)
        );
        // Leaving by instance id alone removes whoever holds it.
        assert_eq!(g.leave("", Some("ia"), now, 0), Ok(()));
        assert!(g.members.is_empty());
    }

    #[test]
    fn restored_group_keeps_members_and_generation() {
        let now = Instant::now();
        let g = stable_pair(now);
        let value = g.to_value();
        let mut restored = Group::new("g", 0);
        restored.restore(value, now);
        assert_eq!(restored.state, GroupState::Stable);
        assert_eq!(restored.generation, 2);
        assert_eq!(restored.heartbeat("a", None, 2, now), Ok(()));
        let s = sync_ready(restored.sync("b", None, 2, None, None, vec![], now, 0));
        assert_eq!(s.assignment, Bytes::from("B2"));
    }

    #[test]
    fn invalid_session_timeout_and_pending_member_expiry() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut r = request("", None, &["range"]);
        r.session_timeout = Duration::from_millis(1);
        let r = ready(join(&mut g, r, now, "a"));
        assert_eq!(r.error, Some(ResponseError::InvalidSessionTimeout));
        let first = ready(join(&mut g, request("", None, &["range"]), now, "p"));
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        g.tick(now + Duration::from_secs(11), 0);
        let late = ready(join(&mut g, request("p", None, &["range"]), now, "x"));
        assert_eq!(late.error, Some(ResponseError::UnknownMemberId));
    }
}
