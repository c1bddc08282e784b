//! This broker as a client of other nodes: follower fetches over the inter-broker
//! listener (TLS, then SASL as Kafka's `SaslClientAuthenticator` does it) and the quorum's
//! RPCs over the controller listener (TLS, mutual TLS when the voters require it), plus
//! the quorum listener's side of the latter: the TLS handshake and the peer's principal
//! check.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use strom_client::{ClientError, Connection};
use strom_raft::{BoxedFuture, BoxedStream, Transport};
use thiserror::Error;
use tokio::net::TcpStream;

use super::tls::{TlsClient, TlsError, TlsListener};
use crate::auth::acl::{AclOperation, AuthorizationResult, KafkaPrincipal, ResourceType};
use crate::auth::acl::{AuthorizerConfig, CLUSTER_NAME};
use crate::auth::authorize::LiveAcls;
use crate::auth::scram::{ScramClient, ScramMechanism};
use crate::config::security::{OutboundSecurity, SaslClientSettings};
use crate::quorum::MetadataQuorum;

const SASL_HANDSHAKE_VERSION: i16 = 1;
/// v1 and later answer the session's lifetime (KIP-368).
const SASL_AUTHENTICATE_VERSION: i16 = 2;
/// A re-authentication is due this long before the session ends (Kafka's client picks a
/// random point between 85% and 95% of the lifetime; a fixed share is enough here).
const REAUTH_SHARE: f64 = 0.85;

#[derive(Debug, Error)]
pub enum OutboundError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("SASL handshake with {addr}: {mechanism} is not enabled there (it offers {offered})")]
    MechanismRefused {
        addr: String,
        mechanism: String,
        offered: String,
    },
    #[error("SASL authentication with {addr} failed: {message}")]
    Authentication { addr: String, message: String },
}

/// An inter-broker connection and when its SASL session needs renewing.
#[derive(Debug)]
pub struct Outbound {
    pub connection: Connection,
    /// When the connection should be replaced before the server ends the session
    /// (`connections.max.reauth.ms` there); `None` without a limit.
    pub renew_at: Option<Instant>,
}

/// How this broker opens connections to other brokers' inter-broker listener.
#[derive(Debug, Default)]
pub struct InterBrokerConnector {
    tls: Option<Arc<TlsClient>>,
    sasl: Option<SaslClientSettings>,
}

impl InterBrokerConnector {
    pub fn new(security: Option<&OutboundSecurity>) -> Result<InterBrokerConnector, TlsError> {
        let Some(security) = security else {
            return Ok(InterBrokerConnector::default());
        };
        let tls = security
            .tls
            .as_ref()
            .map(|settings| TlsClient::new(&security.listener, settings).map(Arc::new))
            .transpose()?;
        Ok(InterBrokerConnector {
            tls,
            sasl: security.sasl.clone(),
        })
    }

    /// The TLS client, for the caller to watch its files.
    pub fn tls(&self) -> Option<&Arc<TlsClient>> {
        self.tls.as_ref()
    }

    /// Connects to `addr` (`host:port`), securing and authenticating as configured.
    pub async fn connect(
        &self,
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Outbound, OutboundError> {
        let tcp = Connection::connect_tcp(addr, timeout).await?;
        let mut connection = match &self.tls {
            None => Connection::over(tcp, addr, client_id),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let handshake = tokio::time::timeout(timeout, tls.connect(tcp, host));
                let stream = match handshake.await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(source)) => {
                        return Err(OutboundError::Tls {
                            addr: addr.to_string(),
                            source,
                        })
                    }
                    Err(_) => return Err(ClientError::ConnectTimeout(addr.to_string()).into()),
                };
                Connection::over(stream, addr, client_id)
            }
        };
        let renew_at = match &self.sasl {
            None => None,
            Some(sasl) => {
                let lifetime = tokio::time::timeout(timeout, authenticate(&mut connection, sasl))
                    .await
                    .map_err(|_| ClientError::ConnectTimeout(addr.to_string()))??;
                lifetime.map(|l| Instant::now() + l.mul_f64(REAUTH_SHARE))
            }
        };
        Ok(Outbound {
            connection,
            renew_at,
        })
    }
}

/// SaslHandshake and SaslAuthenticate with this broker's own credentials; the session's
/// lifetime if the server limits it.
pub async fn authenticate(
    connection: &mut Connection,
    sasl: &SaslClientSettings,
) -> Result<Option<Duration>, OutboundError> {
    let addr = connection.addr().to_string();
    let failed = |message: String| OutboundError::Authentication {
        addr: addr.clone(),
        message,
    };
    let handshake = connection
        .send(
            SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(sasl.mechanism.clone())),
            SASL_HANDSHAKE_VERSION,
        )
        .await?;
    if handshake.error_code != 0 {
        return Err(OutboundError::MechanismRefused {
            addr: addr.clone(),
            mechanism: sasl.mechanism.clone(),
            offered: handshake
                .mechanisms
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let check = |response: &kafka_protocol::messages::SaslAuthenticateResponse| {
        if response.error_code == 0 {
            return Ok(());
        }
        let code = ResponseError::try_from_code(response.error_code)
            .map_or_else(|| response.error_code.to_string(), |e| format!("{e:?}"));
        Err(failed(format!(
            "{code}: {}",
            response.error_message.as_deref().unwrap_or("")
        )))
    };
    let last = if let Some(mechanism) = ScramMechanism::from_name(&sasl.mechanism) {
        let mut scram = ScramClient::new(mechanism, &sasl.username, &sasl.password);
        let first = scram.client_first().map_err(|e| failed(e.to_string()))?;
        let server_first = round(connection, first).await?;
        check(&server_first)?;
        let client_final = scram
            .client_final(&server_first.auth_bytes)
            .map_err(|e| failed(e.to_string()))?;
        let server_final = round(connection, client_final).await?;
        check(&server_final)?;
        scram
            .verify_server_final(&server_final.auth_bytes)
            .map_err(|e| failed(e.to_string()))?;
        server_final
    } else {
        // PLAIN (the only other mechanism the configuration lets through).
        let message = crate::auth::plain::client_message("", &sasl.username, &sasl.password);
        let response = round(connection, message).await?;
        check(&response)?;
        response
    };
    Ok((last.session_lifetime_ms > 0)
        .then(|| Duration::from_millis(last.session_lifetime_ms as u64)))
}

/// One SaslAuthenticate round trip.
async fn round(
    connection: &mut Connection,
    bytes: Vec<u8>,
) -> Result<kafka_protocol::messages::SaslAuthenticateResponse, ClientError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
    connection.send(request, SASL_AUTHENTICATE_VERSION).await
}

/// The quorum's connections secured with the controller listener's TLS: outbound with
/// this node's [`TlsClient`], inbound with the listener's [`TlsListener`], refusing peers
/// whose principal is neither a super user nor allowed CLUSTER_ACTION when an authorizer
/// is configured (Kafka requires exactly that of controller and broker traffic).
#[derive(Debug)]
pub struct QuorumTransport {
    client: Option<Arc<TlsClient>>,
    server: Option<Arc<TlsListener>>,
    acls: Option<Arc<PeerAcls>>,
}

/// The check of an inbound quorum peer's principal.
#[derive(Debug)]
pub struct PeerAcls {
    acls: LiveAcls,
    /// Set once the quorum is up; before that (and while the image has no ACLs) only super
    /// users pass, as Kafka's authorizer admits only them before it has loaded.
    quorum: OnceLock<Weak<MetadataQuorum>>,
}

impl PeerAcls {
    pub fn new(config: AuthorizerConfig) -> PeerAcls {
        PeerAcls {
            acls: LiveAcls::new(Some(config)),
            quorum: OnceLock::new(),
        }
    }

    pub fn attach(&self, quorum: &Arc<MetadataQuorum>) {
        let _ = self.quorum.set(Arc::downgrade(quorum));
    }

    fn allows(&self, principal: &str, peer: SocketAddr) -> bool {
        let Ok(principal) = KafkaPrincipal::parse(principal) else {
            return false;
        };
        let image = self
            .quorum
            .get()
            .and_then(Weak::upgrade)
            .map(|q| q.state())
            .unwrap_or_default();
        let Some(authorizer) = self.acls.current(&image) else {
            return true;
        };
        let host = crate::auth::acl::host_address(&peer);
        authorizer
            .decide(
                &principal,
                &host,
                AclOperation::ClusterAction,
                ResourceType::Cluster,
                CLUSTER_NAME,
            )
            .result
            == AuthorizationResult::Allowed
    }
}

impl QuorumTransport {
    /// `None` when the controller listener is plaintext both ways.
    pub fn new(
        client: Option<Arc<TlsClient>>,
        server: Option<Arc<TlsListener>>,
        acls: Option<Arc<PeerAcls>>,
    ) -> Option<QuorumTransport> {
        (client.is_some() || server.is_some()).then_some(QuorumTransport {
            client,
            server,
            acls,
        })
    }
}

impl Transport for QuorumTransport {
    fn connect(&self, stream: TcpStream, host: &str) -> BoxedFuture<std::io::Result<BoxedStream>> {
        let client = self.client.clone();
        let host = host.to_string();
        Box::pin(async move {
            match client {
                None => Ok(Box::new(stream) as BoxedStream),
                Some(tls) => Ok(Box::new(tls.connect(stream, &host).await?) as BoxedStream),
            }
        })
    }

    fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> BoxedFuture<Result<BoxedStream, String>> {
        let server = self.server.clone();
        let acls = self.acls.clone();
        Box::pin(async move {
            let (stream, principal): (BoxedStream, String) = match server {
                None => (
                    Box::new(stream),
                    crate::auth::principal::ANONYMOUS.to_string(),
                ),
                Some(tls) => {
                    let stream = tls
                        .acceptor()
                        .accept(stream)
                        .await
                        .map_err(|e| format!("TLS handshake failed: {e}"))?;
                    let principal = tls.principal(&stream).map_err(|e| e.to_string())?;
                    (Box::new(stream), principal)
                }
            };
            if let Some(acls) = acls {
                if !acls.allows(&principal, peer) {
                    return Err(format!(
                        "principal {principal} is neither a super user nor allowed \
                         CLUSTER_ACTION on the cluster"
                    ));
                }
            }
            tracing::debug!(%peer, %principal, "quorum connection accepted");
            Ok(stream)
        })
    }
}
