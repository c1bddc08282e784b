//! Request routing: one frame in, one encoded response (or none, or a reason to close the
//! connection) out. Every codec is `kafka-protocol`'s; this module only picks the handler
//! by api key and version and frames the answer.

pub mod acls;
mod admin;
mod api_versions;
mod client_quotas;
mod cluster_admin;
mod cluster_gate;
mod config_resources;
mod configs;
mod features;
mod fetch;
mod group_admin;
mod group_offsets;
mod groups;
mod list_offsets;
mod log_dirs;
mod metadata;
mod produce;
mod producer_id;
mod quorum;
mod scram_credentials;
mod throttle;
mod transactions;
pub(crate) mod unsupported;
pub mod versions;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind, SaslAuthenticateResponse,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable, StrBytes};

use crate::broker::Broker;

/// Who sent a request, and through which listener (metadata answers with that
/// listener's advertised address, as Kafka does).
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub listener: String,
    pub peer: std::net::SocketAddr,
    /// Who the client is, as Kafka names principals: `User:ANONYMOUS` on a plaintext
    /// listener, `User:<distinguished name>` for a TLS client certificate.
    pub principal: String,
}

pub use crate::auth::principal::ANONYMOUS;

#[derive(Debug)]
pub struct RequestContext<'a> {
    pub connection: &'a ConnectionContext,
    pub header: RequestHeader,
    pub api_key: ApiKey,
}

impl RequestContext<'_> {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Who asks, for per-client bounds: the request's client id, as Kafka's quotas key on it,
/// or the peer's address when the client sent none.
pub fn client_key(ctx: &RequestContext<'_>) -> String {
    match ctx.header.client_id.as_ref().filter(|id| !id.is_empty()) {
        Some(id) => format!("client-id:{}", id.as_str()),
        None => format!("address:{}", ctx.connection.peer.ip()),
    }
}

/// What the connection should do with a frame's outcome.
#[derive(Debug)]
pub enum Reply {
    /// A whole response frame, size prefix included.
    Frame(Bytes),
    /// acks=0 produce: Kafka sends nothing back.
    Nothing,
    /// The frame cannot be answered; close the connection and log why.
    Close(String),
    /// Send this response, then close the connection (a failed authentication).
    Final(Bytes),
    /// Send this response (if any: acks=0), then read nothing more from the connection
    /// for this long (KIP-219: a client over its quota).
    Throttled(Option<Bytes>, std::time::Duration),
}

/// Handles one request frame (without its size prefix).
pub async fn handle_frame(broker: &Arc<Broker>, conn: &ConnectionContext, frame: Bytes) -> Reply {
    if frame.len() < 8 {
        return Reply::Close(format!(
            "frame of {} bytes is too short for a request header",
            frame.len()
        ));
    }
    // From here on the request's time counts toward `request_percentage`.
    let arrived = Instant::now();
    let mut peek = &frame[..8];
    let raw_key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();

    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return Reply::Close(format!("unknown api key {raw_key}"));
    };
    // A client asking ApiVersions at a version we do not know gets a v0-shaped answer
    // listing what we support, so it can retry at a version we share (KIP-511).
    if api_key == ApiKey::ApiVersions && !versions::supported(api_key, version) {
        return Reply::Frame(api_versions::unsupported_version_frame(correlation_id));
    }
    let decodable = api_key.valid_versions();
    if version < decodable.min || version > decodable.max {
        return Reply::Close(format!(
            "{api_key:?} v{version} is outside every version this broker can decode"
        ));
    }

    let request_bytes = frame.len();
    let mut body = frame;
    let header = match decode_request_header_from_buffer(&mut body) {
        Ok(h) => h,
        Err(e) => return Reply::Close(format!("malformed {api_key:?} v{version} header: {e}")),
    };
    if !versions::supported(api_key, version) {
        // Not decoding a request we will refuse anyway keeps its body, however hostile,
        // away from the codecs.
        return match unsupported::error_response(api_key, ResponseError::UnsupportedVersion.code())
        {
            Some(response) => {
                tracing::warn!(peer = %conn.peer, api = ?api_key, version,
                    "request for an API or version this broker does not serve; answered UNSUPPORTED_VERSION");
                match encode_frame(api_key, version, correlation_id, &response) {
                    Ok(frame) => Reply::Frame(frame),
                    Err(e) => Reply::Close(format!(
                        "cannot encode {api_key:?} v{version} error response: {e}"
                    )),
                }
            }
            None => Reply::Close(format!(
                "{api_key:?} v{version} is not served by this broker"
            )),
        };
    }
    let mut request = match RequestKind::decode(api_key, &mut body, version) {
        Ok(r) => r,
        Err(e) => return Reply::Close(format!("malformed {api_key:?} v{version} request: {e}")),
    };
    if body.has_remaining() {
        // Kafka's brokers ignore bytes after a fully decoded request, and some clients
        // rely on it (librdkafka 2.16 sends three extra bytes after Metadata v12), so
        // this is noted, not refused.
        tracing::debug!(peer = %conn.peer, api = ?api_key, version, extra = body.remaining(),
            "bytes after a complete request ignored");
    }

    if let Some(reason) = acls::unparseable(broker, &request) {
        return Reply::Close(format!("{api_key:?} v{version} does not parse: {reason}"));
    }
    let ctx = RequestContext {
        connection: conn,
        header,
        api_key,
    };
    let quota = throttle::admit(broker, &ctx, &mut request);
    let started = Instant::now();
    // The decoding (Kafka's network thread parses requests) and the time spent inside the
    // handler's polls (its request thread time); waits for replication or data are not
    // counted.
    let mut handling = started - arrived;
    let mut handler = std::pin::pin!(dispatch(broker, &ctx, request));
    let mut response = std::future::poll_fn(|cx| {
        let polled = Instant::now();
        let done = std::future::Future::poll(handler.as_mut(), cx);
        handling += polled.elapsed();
        done
    })
    .await;
    broker.metrics.observe_request(api_key, started.elapsed());
    let throttled = match &quota {
        Some(scope) => throttle::settle(
            broker,
            &ctx,
            scope,
            response.as_mut(),
            request_bytes,
            handling,
        ),
        None => throttle::Throttle::None,
    };
    let encoding = Instant::now();
    let frame = match response {
        Some(response) => match encode_frame(api_key, version, correlation_id, &response) {
            Ok(frame) => Some(frame),
            Err(e) => {
                return Reply::Close(format!(
                    "cannot encode {api_key:?} v{version} response: {e}"
                ))
            }
        },
        None => None,
    };
    if let Some(scope) = &quota {
        throttle::record_after_response(broker, scope, encoding.elapsed());
    }
    match (throttled, frame) {
        (throttle::Throttle::MuteAfter(mute), frame) => Reply::Throttled(frame, mute),
        (throttle::Throttle::DelayResponse(delay), frame) => {
            tokio::time::sleep(delay).await;
            frame.map_or(Reply::Nothing, Reply::Frame)
        }
        (throttle::Throttle::None, Some(frame)) => Reply::Frame(frame),
        (throttle::Throttle::None, None) => Reply::Nothing,
    }
}

/// Routes a decoded request to its handler; `None` means no response is sent.
async fn dispatch(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: RequestKind,
) -> Option<ResponseKind> {
    if let Some(op) = cluster_gate::operation(&request) {
        if !crate::auth::authorize::Access::of(broker, ctx).cluster(op) {
            return cluster_gate::refusal(&request);
        }
    }
    let response = match request {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(api_versions::handle(broker, ctx, r))
        }
        // SASL exchanges happen in the connection's gate (net::sasl); one reaching here
        // is on a listener without SASL or after authentication, answered as Kafka does.
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code()),
        ),
        RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate request received after successful authentication",
                ))),
        ),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, ctx, r).await),
        RequestKind::Produce(r) => {
            return produce::handle(broker, ctx, r)
                .await
                .map(ResponseKind::Produce)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, ctx, r).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, ctx, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(list_offsets::handle_leader_epoch(broker, ctx, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(list_offsets::handle_delete_records(broker, ctx, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, ctx, r).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(cluster_admin::describe_cluster(broker, ctx, r))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(cluster_admin::elect_leaders(broker, ctx, r).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            cluster_admin::alter_partition_reassignments(broker, ctx, r).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            cluster_admin::list_partition_reassignments(broker, ctx, r),
        ),
        RequestKind::UnregisterBroker(r) => {
            ResponseKind::UnregisterBroker(cluster_admin::unregister_broker(broker, ctx, r).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(log_dirs::describe_log_dirs(broker, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, ctx, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter(broker, ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, ctx, r).await)
        }
        RequestKind::ListConfigResources(r) => ResponseKind::ListConfigResources(
            config_resources::list_config_resources(broker, ctx, r),
        ),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producer_id::handle(broker, ctx, r).await)
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, ctx, r).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join_group(broker, ctx, r).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync_group(broker, ctx, r).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(groups::heartbeat(broker, ctx, r).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(groups::leave_group(broker, ctx, r).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(group_offsets::offset_commit(broker, ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(group_offsets::offset_fetch(broker, ctx, r).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(group_offsets::offset_delete(broker, ctx, r).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(group_admin::list_groups(broker, ctx, r).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group_admin::describe_groups(broker, ctx, r).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(group_admin::delete_groups(broker, ctx, r).await)
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(quorum::describe_quorum(broker, ctx, r).await)
        }
        RequestKind::UpdateFeatures(r) => {
            ResponseKind::UpdateFeatures(features::update_features(broker, ctx, r))
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::describe_acls(broker, ctx, r))
        }
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(acls::create_acls(broker, ctx, r).await)
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(acls::delete_acls(broker, ctx, r).await)
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(transactions::list_transactions(ctx, r))
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(transactions::describe_transactions(broker, ctx, r))
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(transactions::describe_producers(broker, ctx, r))
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(scram_credentials::describe(broker, ctx, r))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(scram_credentials::alter(broker, ctx, r).await)
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(client_quotas::describe(broker, ctx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(client_quotas::alter(broker, ctx, r).await)
        }
        other => {
            // versions::supported() and this match must agree; reaching here is a bug,
            // answered like an unsupported API rather than a crash.
            tracing::error!(request = ?other, "no handler for an advertised API");
            unsupported::error_response(ctx.api_key, ResponseError::UnsupportedVersion.code())?
        }
    };
    Some(response)
}

/// Encodes `[size][response header][body]`.
pub fn encode_frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, api_key.response_header_version(version))?;
    response.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Kafka's "authorized operations were not asked for" marker.
pub(crate) const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// `kafka-protocol` string and name wrappers from plain strings.
pub(crate) fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}

pub(crate) fn topic_name(s: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(str_bytes(s))
}

/// Logs a per-item error once, where the handler decides it, so every refusal a client
/// sees has a broker log line saying why.
pub(crate) fn log_refusal(ctx: &RequestContext<'_>, what: &str, error: &crate::error::ApiError) {
    tracing::info!(peer = %ctx.connection.peer, api = ?ctx.api_key, item = what,
        code = error.code(), reason = %error.message, "request refused");
}
