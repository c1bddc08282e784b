//! A blocking Kafka protocol connection on `kafka-protocol`'s codecs, for protocol-level
//! test tools that no client offers: [`produce_direct`], a Produce sent to exactly one
//! broker whether or not it still leads the partition. Admin calls go through
//! strom-client instead (`Cluster::admin_request`). Versions are negotiated with
//! ApiVersions when connecting.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ProduceRequest, RequestHeader, RequestKind, ResponseHeader,
    ResponseKind, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::Record;
use strom_client::admin::{check, Outcome};
use strom_test_support::records;

use crate::error::{HarnessError, Result};
use crate::security::{self, ReadWrite};

const CLIENT_ID: &str = "strom-e2e-cluster";
/// Responses larger than this are a framing bug, not data.
const MAX_RESPONSE: usize = 64 << 20;

pub struct WireClient {
    addr: SocketAddr,
    /// TCP, or TLS over TCP to a secured cluster.
    stream: Box<dyn ReadWrite>,
    correlation: i32,
    /// api key -> (min, max) the broker supports.
    supported: HashMap<i16, (i16, i16)>,
}

fn protocol(addr: SocketAddr, what: impl std::fmt::Display) -> HarnessError {
    HarnessError::Protocol(format!("{addr}: {what}"))
}

impl WireClient {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<WireClient> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| HarnessError::io(format!("connect {addr}"), e))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|_| stream.set_write_timeout(Some(timeout)))
            .and_then(|_| stream.set_nodelay(true))
            .map_err(|e| HarnessError::io(format!("configure socket to {addr}"), e))?;
        let (stream, secured) = security::secure(addr, stream)?;
        let mut client = WireClient {
            addr,
            stream,
            correlation: 0,
            supported: HashMap::new(),
        };
        if secured {
            client.authenticate()?;
        }
        // v0 is the one version every broker answers in a shape every client can read.
        let ResponseKind::ApiVersions(versions) = client.request(
            ApiKey::ApiVersions,
            0,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        )?
        else {
            return Err(protocol(addr, "ApiVersions answered with another response"));
        };
        if versions.error_code != 0 {
            return Err(protocol(
                addr,
                format!("ApiVersions error {}", versions.error_code),
            ));
        }
        client.supported = versions
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(client)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SASL PLAIN as the secured mode's admin (SaslHandshake v1, SaslAuthenticate v2).
    fn authenticate(&mut self) -> Result<()> {
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        match self.request(
            ApiKey::SaslHandshake,
            1,
            RequestKind::SaslHandshake(handshake),
        )? {
            ResponseKind::SaslHandshake(r) if r.error_code == 0 => {}
            other => return Err(protocol(self.addr, format!("SaslHandshake: {other:?}"))),
        }
        let auth =
            SaslAuthenticateRequest::default().with_auth_bytes(security::plain_message().into());
        match self.request(
            ApiKey::SaslAuthenticate,
            2,
            RequestKind::SaslAuthenticate(auth),
        )? {
            ResponseKind::SaslAuthenticate(r) if r.error_code == 0 => Ok(()),
            ResponseKind::SaslAuthenticate(r) => Err(protocol(
                self.addr,
                format!("SASL authentication failed: {:?}", r.error_message),
            )),
            other => Err(protocol(self.addr, format!("SaslAuthenticate: {other:?}"))),
        }
    }

    /// The highest version both sides support, at most `ours`.
    pub fn version(&self, key: ApiKey, ours: i16) -> Result<i16> {
        let (min, max) = self.supported.get(&(key as i16)).copied().ok_or_else(|| {
            HarnessError::Unsupported {
                addr: self.addr.to_string(),
                api: format!("{key:?}"),
            }
        })?;
        let v = ours.min(max);
        if v < min {
            return Err(HarnessError::Unsupported {
                addr: self.addr.to_string(),
                api: format!("{key:?} v{min}..={max} (we speak at most v{ours})"),
            });
        }
        Ok(v)
    }

    /// Sends `request` at `version` and decodes the answer.
    pub fn request(
        &mut self,
        key: ApiKey,
        version: i16,
        request: RequestKind,
    ) -> Result<ResponseKind> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| protocol(self.addr, format!("encode {key:?} header: {e}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| protocol(self.addr, format!("encode {key:?} v{version}: {e}")))?;
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&buf)
            .and_then(|()| self.stream.flush())
            .map_err(|e| HarnessError::io(format!("send {key:?} to {}", self.addr), e))?;

        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| HarnessError::io(format!("read {key:?} reply from {}", self.addr), e))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_RESPONSE)
            .ok_or_else(|| protocol(self.addr, format!("response size {size}")))?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| HarnessError::io(format!("read {key:?} reply from {}", self.addr), e))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| protocol(self.addr, format!("decode {key:?} header: {e}")))?;
        if header.correlation_id != self.correlation {
            return Err(protocol(
                self.addr,
                format!(
                    "correlation id {} for request {}",
                    header.correlation_id, self.correlation
                ),
            ));
        }
        let response = ResponseKind::decode(key, &mut body, version)
            .map_err(|e| protocol(self.addr, format!("decode {key:?} v{version}: {e}")))?;
        if body.has_remaining() {
            return Err(protocol(
                self.addr,
                format!("{} trailing bytes after {key:?}", body.remaining()),
            ));
        }
        Ok(response)
    }
}

/// Produces `values` as one batch to exactly the broker `client` is connected to, with
/// `acks` and the broker-side `timeout_ms`: a test tool (what a stale or isolated leader
/// does with a write), not an admin call, so it stays on this raw connection. `Ok(Ok(base
/// offset))` means acknowledged; `Ok(Err(_))` carries the partition's error code.
pub fn produce_direct(
    client: &mut WireClient,
    topic: &str,
    partition: i32,
    acks: i16,
    timeout_ms: i32,
    values: &[String],
) -> Result<Outcome<i64>> {
    // v9 is flexible and still names topics (v13 switched to topic ids).
    let version = client.version(ApiKey::Produce, 9)?;
    let now = records::now_ms();
    let batch: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            records::record(
                i as i64,
                now,
                None,
                Some(Bytes::from(v.clone().into_bytes())),
            )
        })
        .collect();
    let batch = records::encode_batch(&batch);
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let response = match client.request(ApiKey::Produce, version, RequestKind::Produce(request))? {
        ResponseKind::Produce(r) => r,
        other => {
            return Err(HarnessError::Protocol(format!(
                "Produce: unexpected response {other:?}"
            )))
        }
    };
    let p = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .ok_or_else(|| HarnessError::Protocol("Produce: partition missing in reply".into()))?;
    Ok(check(
        "Produce",
        format!("{topic}-{partition}"),
        p.error_code,
        p.error_message.as_ref(),
    )
    .map(|()| p.base_offset))
}
