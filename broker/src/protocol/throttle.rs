//! Client quota enforcement around a request's handling, in one place so the handlers stay
//! unaware of it (Kafka does this in `KafkaApis` per request type; the facts are the same):
//!
//! - Produce: the request's size counts toward `producer_byte_rate`.
//! - Fetch by a consumer: the response's size counts toward `consumer_byte_rate`; a fetch
//!   asks for at most what the quota allows in its window (Kafka's
//!   `getMaxValueInQuotaWindow`), and a throttled fetch is answered without data, its bytes
//!   taken off the rate again. Followers' fetches are exempt.
//! - Every request: its time counts toward `request_percentage`, as Kafka counts its
//!   network and request threads' time: the decoding and the time inside the handler's
//!   polls decide the throttle; the response's encoding, which follows the throttle
//!   decision, is recorded after it (Kafka's `recordNoThrottle`) and weighs on the next
//!   requests. Waits in purgatory are not counted, nor the socket's reads and writes,
//!   which the connection's task does for all its requests together.
//!
//! The larger throttle goes into the response's `throttle_time_ms` and is recorded in
//! that quota's throttle-time sensor; the connection then reads nothing for that long after
//! the response has left (KIP-219). Responses to requests older than KIP-219 (Produce
//! below v6, Fetch below v8) are held back for the throttle time instead, as Kafka does
//! for clients that do not throttle themselves.
//!
//! `controller_mutation_rate` (KIP-599) is charged per topic on the active controller,
//! which keeps the buckets (see [`MutationQuota`]); the handlers of CreateTopics,
//! CreatePartitions and DeleteTopics put the throttle it returns in the response's
//! `throttle_time_ms`, which mutes the connection here like the others.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::Encodable;

use super::RequestContext;
use crate::broker::Broker;
use crate::quota::resolve::{metric_tags, ClientQuotaMap};
use crate::quota::{user_of, MutationRequester};

/// Who a request's quotas are for; `None` from [`admit`] when nothing is measured.
#[derive(Debug)]
pub struct QuotaScope {
    quotas: Arc<ClientQuotaMap>,
    user: String,
    client_id: String,
}

/// Before handling: decides whether the request is measured, and bounds a consumer
/// fetch to what its quota can take in one window.
pub fn admit(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: &mut RequestKind,
) -> Option<QuotaScope> {
    let quotas = broker.metadata.image().client_quotas.clone();
    if quotas.is_empty() || is_cluster_action(ctx.api_key) {
        return None;
    }
    let (user, client_id) = requester(ctx);
    if let RequestKind::Fetch(fetch) = request {
        let replica = if ctx.version() >= 15 {
            fetch.replica_state.replica_id.0
        } else {
            fetch.replica_id.0
        };
        if replica >= 0 {
            // Replication is not a client: Kafka exempts followers from client quotas.
            return None;
        }
        let fetches = &broker.client_quotas.fetch;
        if fetches.enabled(&quotas) {
            if let Some(max) = fetches.max_value_in_window(&quotas, &user, &client_id) {
                let max = max.clamp(1.0, i32::MAX as f64) as i32;
                fetch.max_bytes = fetch.max_bytes.min(max);
            }
        }
    }
    Some(QuotaScope {
        quotas,
        user,
        client_id,
    })
}

/// The APIs Kafka marks `clusterAction` (brokers and controllers among themselves): their
/// responses are never throttled (`RequestHandlerHelper.sendResponseExemptThrottle`), so
/// a quota on the principal the cluster runs as cannot slow the cluster down.
fn is_cluster_action(api: ApiKey) -> bool {
    matches!(
        api,
        // (Kafka's ZooKeeper-era cluster actions are gone from the protocol crate.)
        ApiKey::WriteTxnMarkers
            | ApiKey::Vote
            | ApiKey::BeginQuorumEpoch
            | ApiKey::EndQuorumEpoch
            | ApiKey::DescribeQuorum
            | ApiKey::AlterPartition
            | ApiKey::UpdateFeatures
            | ApiKey::Envelope
            | ApiKey::BrokerRegistration
            | ApiKey::BrokerHeartbeat
            | ApiKey::AllocateProducerIds
            | ApiKey::InitializeShareGroupState
            | ApiKey::ReadShareGroupState
            | ApiKey::WriteShareGroupState
            | ApiKey::DeleteShareGroupState
            | ApiKey::ReadShareGroupStateSummary
    )
}

/// The user and client id quotas key on.
fn requester(ctx: &RequestContext<'_>) -> (String, String) {
    let client_id = ctx
        .header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    (user_of(&ctx.connection.principal).to_string(), client_id)
}

/// KIP-599's controller mutation quota for one CreateTopics, CreatePartitions or
/// DeleteTopics request, as the broker that received it sees it.
///
/// As in Kafka, the active controller charges it: each topic goes to the controller with
/// its [`MutationRequester`] (the principal's name and client id of the request header,
/// and whether the version is strict), and the controller takes the topic's partitions
/// from that user's bucket only once the topic passed validation. So a topic it refuses
/// takes nothing, and a client spreading its requests over brokers gets one rate. Strict
/// and exhausted, the controller refuses the topic with THROTTLING_QUOTA_EXCEEDED;
/// permissive, it creates it and returns a throttle. This broker keeps no bucket: it
/// collects the throttles the controller returned, answers with the largest, and notes
/// it in its own throttle-time sensor since it is the one that mutes the connection
/// (the controller measures the mutation rate).
pub struct MutationQuota<'a> {
    broker: &'a Broker,
    requester: MutationRequester,
    /// The largest throttle met and when it arrived here.
    throttle: Option<(i64, i64)>,
}

impl<'a> MutationQuota<'a> {
    /// Strict from `strict_since` (the request version that knows
    /// THROTTLING_QUOTA_EXCEEDED). Always made: only the controller's image says whether
    /// a quota applies.
    pub fn of(broker: &'a Broker, ctx: &RequestContext<'_>, strict_since: i16) -> Self {
        let (user, client_id) = requester(ctx);
        MutationQuota {
            broker,
            requester: MutationRequester {
                user,
                client_id,
                strict: ctx.version() >= strict_since,
            },
            throttle: None,
        }
    }

    /// Whom the controller charges the request's topics to.
    pub fn requester(&self) -> Option<MutationRequester> {
        Some(self.requester.clone())
    }

    /// Notes the throttle the controller returned for one topic.
    pub fn note(&mut self, throttle_ms: i64) {
        if throttle_ms > self.throttle.map_or(0, |t| t.0) {
            self.throttle = Some((throttle_ms, self.broker.client_quotas.now_ms()));
        }
    }

    /// The throttle for the response, less the time since it arrived (Kafka's
    /// `throttleTime`), noted in the quota's throttle-time sensor.
    pub fn finish(self) -> i32 {
        let Some((throttle_ms, at)) = self.throttle else {
            return 0;
        };
        let quotas = &self.broker.client_quotas;
        let now = quotas.now_ms();
        let left = (throttle_ms - (now - at)).max(0);
        let manager = &quotas.controller_mutation;
        let image = self.broker.metadata.image();
        let tags = metric_tags(
            &image.client_quotas,
            manager.key(),
            &self.requester.user,
            &self.requester.client_id,
        );
        manager.throttled(&tags, left, now);
        i32::try_from(left).unwrap_or(i32::MAX)
    }
}

/// What the connection does once the response is out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Throttle {
    None,
    /// Mute the connection for this long after the response has been sent.
    MuteAfter(Duration),
    /// Hold the response back for this long (clients older than KIP-219).
    DelayResponse(Duration),
}

/// After handling: records the request's bytes and time, and sets the throttle.
pub fn settle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    scope: &QuotaScope,
    response: Option<&mut ResponseKind>,
    request_bytes: usize,
    handling: Duration,
) -> Throttle {
    let quotas = &broker.client_quotas;
    let now = quotas.now_ms();
    let (q, user, client) = (&scope.quotas, &scope.user, &scope.client_id);
    let request_throttle = if quotas.request.enabled(q) {
        Some(
            quotas
                .request
                .record(q, user, client, thread_percent(handling), now),
        )
    } else {
        None
    };
    let bandwidth = match (ctx.api_key, response.as_deref()) {
        (ApiKey::Produce, _) if quotas.produce.enabled(q) => Some((
            &quotas.produce,
            quotas
                .produce
                .record(q, user, client, request_bytes as f64, now),
            0.0,
        )),
        (ApiKey::Fetch, Some(ResponseKind::Fetch(fetch))) if quotas.fetch.enabled(q) => {
            let size = fetch.compute_size(ctx.version()).unwrap_or(0) as f64;
            Some((
                &quotas.fetch,
                quotas.fetch.record(q, user, client, size, now),
                size,
            ))
        }
        _ => None,
    };
    let request_ms = request_throttle.as_ref().map_or(0, |r| r.throttle_ms);
    let bandwidth_ms = bandwidth.as_ref().map_or(0, |(_, r, _)| r.throttle_ms);
    // The handlers put the controller mutation quota's throttle (alone) in these responses.
    let mutation_ms = i64::from(match response.as_deref() {
        Some(ResponseKind::CreateTopics(r)) => r.throttle_time_ms,
        Some(ResponseKind::CreatePartitions(r)) => r.throttle_time_ms,
        Some(ResponseKind::DeleteTopics(r)) => r.throttle_time_ms,
        _ => 0,
    });
    let throttle_ms = request_ms.max(bandwidth_ms).max(mutation_ms);
    if throttle_ms <= 0 {
        return Throttle::None;
    }
    match (&bandwidth, &request_throttle) {
        _ if mutation_ms >= request_ms.max(bandwidth_ms) => {} // noted by MutationQuota
        (Some((manager, recorded, _)), _) if bandwidth_ms > request_ms => {
            manager.throttled(&recorded.tags, bandwidth_ms, now)
        }
        (_, Some(recorded)) => quotas.request.throttled(&recorded.tags, request_ms, now),
        _ => {}
    }
    let mut response = response;
    if let (Some(ResponseKind::Fetch(fetch)), Some((manager, recorded, size))) =
        (response.as_deref_mut(), &bandwidth)
    {
        // A throttled fetch carries no data: the client asks again once unmuted.
        manager.unrecord(&recorded.tags, *size, now);
        fetch.responses.clear();
    }
    let ms = i32::try_from(throttle_ms).unwrap_or(i32::MAX);
    if let Some(response) = response {
        set_throttle_time(response, ms);
    }
    let duration = Duration::from_millis(throttle_ms as u64);
    let kip_219 = match ctx.api_key {
        ApiKey::Produce => ctx.version() >= 6,
        ApiKey::Fetch => ctx.version() >= 8,
        _ => true,
    };
    tracing::debug!(peer = %ctx.connection.peer, api = ?ctx.api_key, user, client_id = client,
        throttle_ms, "client quota exceeded; throttled");
    if kip_219 {
        Throttle::MuteAfter(duration)
    } else {
        Throttle::DelayResponse(duration)
    }
}

/// After the response is encoded: its encoding time counts toward `request_percentage`
/// without throttling this request.
pub fn record_after_response(broker: &Broker, scope: &QuotaScope, encoding: Duration) {
    let quotas = &broker.client_quotas;
    if quotas.request.enabled(&scope.quotas) {
        let now = quotas.now_ms();
        let percent = thread_percent(encoding);
        quotas
            .request
            .record(&scope.quotas, &scope.user, &scope.client_id, percent, now);
    }
}

/// Kafka's unit for request time: percent of one thread for a second (ns × 100 / 1e9).
fn thread_percent(time: Duration) -> f64 {
    time.as_nanos() as f64 * 1e-7
}

/// Sets `throttle_time_ms` (keeping a larger one already set) in every response that
/// has the field; versions without it leave it out when encoding.
fn set_throttle_time(response: &mut ResponseKind, ms: i32) {
    macro_rules! set {
        ($($variant:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$variant(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)*
                _ => {}
            }
        };
    }
    set!(
        ApiVersions,
        Metadata,
        Produce,
        Fetch,
        ListOffsets,
        OffsetForLeaderEpoch,
        DeleteRecords,
        CreateTopics,
        DeleteTopics,
        CreatePartitions,
        DescribeCluster,
        ElectLeaders,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        UnregisterBroker,
        DescribeLogDirs,
        DescribeConfigs,
        AlterConfigs,
        IncrementalAlterConfigs,
        ListConfigResources,
        InitProducerId,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        OffsetDelete,
        ListGroups,
        DescribeGroups,
        DeleteGroups,
        UpdateFeatures,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        ListTransactions,
        DescribeTransactions,
        DescribeProducers,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        DescribeClientQuotas,
        AlterClientQuotas,
    );
}
