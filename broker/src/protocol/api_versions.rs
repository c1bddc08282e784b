//! ApiVersions: what this broker serves, including the v0-shaped reply to a version it
//! does not know.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;

use super::versions::SUPPORTED;
use super::RequestContext;
use crate::broker::Broker;

fn api_list() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(advertised_min(*key, *min))
                .with_max_version(*max)
        })
        .collect()
}

/// librdkafka before 2.10 enables gzip, snappy and lz4 only when Produce v0 is listed,
/// so Produce is advertised from v0 as Apache Kafka 4 does (KAFKA-18659). Clients pick
/// the highest common version, so v0-v2 are never chosen by anyone who can use v3; a
/// request at those versions is still refused as unsupported.
fn advertised_min(key: kafka_protocol::messages::ApiKey, min: i16) -> i16 {
    if key == kafka_protocol::messages::ApiKey::Produce {
        0
    } else {
        min
    }
}

pub fn handle(
    broker: &Broker,
    _ctx: &RequestContext<'_>,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let epoch = i64::try_from(broker.metadata.quorum().applied_index()).unwrap_or(i64::MAX);
    super::features::advertise(
        ApiVersionsResponse::default().with_api_keys(api_list()),
        epoch,
    )
}

/// The reply to ApiVersions at an unknown version: encoded as v0 (header v0), error
/// UNSUPPORTED_VERSION, with our API list, as Kafka's brokers answer.
pub fn unsupported_version_frame(correlation_id: i32) -> Bytes {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_list());
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    // Encoding a fixed, valid v0 response cannot fail; if it ever did, the client gets the
    // header alone and reconnects, which is still better than a panic.
    let _ = response.encode(&mut buf, 0);
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn produce_is_advertised_from_v0_but_served_from_v3() {
        let produce = api_list()
            .into_iter()
            .find(|a| a.api_key == ApiKey::Produce as i16)
            .expect("Produce listed");
        assert_eq!(produce.min_version, 0);
        assert!(!super::super::versions::supported(ApiKey::Produce, 2));
        assert!(super::super::versions::supported(ApiKey::Produce, 3));
    }
}
