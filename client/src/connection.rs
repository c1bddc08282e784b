//! One Kafka connection: size-prefixed frames, a request header per request, responses
//! matched to requests by correlation id. Requests are sent one at a time; a caller that
//! wants concurrency opens more connections.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Kafka's default `socket.request.max.bytes`; a peer claiming a larger frame is broken.
const MAX_FRAME: usize = 100 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("cannot encode {api:?} v{version}: {message}")]
    Encode {
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("cannot decode the {api:?} v{version} response from {addr}: {message}")]
    Decode {
        addr: String,
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("{addr} answered correlation id {got}, expected {expected}")]
    Correlation {
        addr: String,
        expected: i32,
        got: i32,
    },
    #[error("unknown api key {0}")]
    UnknownApi(i16),
}

/// The byte stream a connection runs over: TCP, or TLS over TCP (the caller does the
/// handshake and hands the stream to [`Connection::over`]).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

pub struct Connection {
    addr: String,
    client_id: StrBytes,
    framed: Framed<Box<dyn Stream>, LengthDelimitedCodec>,
    next_correlation: i32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("client_id", &self.client_id)
            .field("next_correlation", &self.next_correlation)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) within `timeout`.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let stream = Self::connect_tcp(addr, timeout).await?;
        Ok(Self::over(stream, addr, client_id))
    }

    /// Opens the TCP connection only (with `TCP_NODELAY`), for a caller that secures it
    /// before handing it to [`Connection::over`].
    pub async fn connect_tcp(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::ConnectTimeout(addr.to_string()))?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        // Small requests (heartbeats, follower fetches) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A connection over an already connected (and possibly secured) stream to `addr`.
    pub fn over(stream: impl Stream, addr: &str, client_id: &str) -> Connection {
        let codec = LengthDelimitedCodec::builder()
            .length_field_length(4)
            .max_frame_length(MAX_FRAME)
            .new_codec();
        Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            framed: Framed::new(Box::new(stream) as Box<dyn Stream>, codec),
            next_correlation: 0,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send<R: Request>(
        &mut self,
        request: R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| ClientError::UnknownApi(R::KEY))?;
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        let encode_err = |message: String| ClientError::Encode {
            api,
            version,
            message,
        };
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| encode_err(e.to_string()))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| encode_err(e.to_string()))?;
        self.framed
            .send(buf.freeze())
            .await
            .map_err(|source| ClientError::Io {
                addr: self.addr.clone(),
                source,
            })?;
        let frame = match self.framed.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(source)) => {
                return Err(ClientError::Io {
                    addr: self.addr.clone(),
                    source,
                })
            }
            None => {
                return Err(ClientError::Closed {
                    addr: self.addr.clone(),
                })
            }
        };
        let mut body: Bytes = frame.freeze();
        let decode_err = |message: String| ClientError::Decode {
            addr: self.addr.clone(),
            api,
            version,
            message,
        };
        let header = ResponseHeader::decode(
            &mut body,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| decode_err(e.to_string()))?;
        if header.correlation_id != correlation {
            return Err(ClientError::Correlation {
                addr: self.addr.clone(),
                expected: correlation,
                got: header.correlation_id,
            });
        }
        R::Response::decode(&mut body, version).map_err(|e| decode_err(e.to_string()))
    }
}
