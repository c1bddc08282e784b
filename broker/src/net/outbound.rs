//! This broker as a client of other nodes: follower fetches over the inter-broker
//! listener (TLS, then SASL as Kafka's `SaslClientAuthenticator` does it) and the quorum's
//! RPCs over the controller listener (TLS, mutual TLS when the voters require it), plus
//! the quorum listener's side of the latter: the TLS handshake and the peer's principal
//! check.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use strom_client::sasl::{SaslCredentials, SaslError, SaslMechanism};
use strom_client::{ClientError, Connection};
use strom_raft::{BoxedFuture, BoxedStream, Transport};
use thiserror::Error;
use tokio::net::TcpStream;

use super::tls::{TlsClient, TlsError, TlsListener};
use crate::auth::acl::{AclOperation, AuthorizationResult, KafkaPrincipal, ResourceType};
use crate::auth::acl::{AuthorizerConfig, CLUSTER_NAME};
use crate::auth::authorize::LiveAcls;
use crate::config::security::{OutboundSecurity, SaslClientSettings};
use crate::quorum::MetadataQuorum;

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
    #[error("SASL mechanism {0} is not supported for inter-broker connections")]
    UnsupportedMechanism(String),
}

impl From<SaslError> for OutboundError {
    fn from(e: SaslError) -> Self {
        match e {
            SaslError::Client(e) => OutboundError::Client(e),
            SaslError::MechanismNotOffered {
                addr,
                mechanism,
                offered,
            } => OutboundError::MechanismRefused {
                addr,
                mechanism: mechanism.to_string(),
                offered,
            },
            SaslError::Authentication { addr, message } => {
                OutboundError::Authentication { addr, message }
            }
        }
    }
}

/// An inter-broker connection and when its SASL session needs renewing.
#[derive(Debug)]
pub struct Outbound {
    pub connection: Connection,
    /// When to re-authenticate ([`InterBrokerConnector::log_in`]) before the server
    /// ends the session (`connections.max.reauth.ms` there); `None` without a limit.
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
        let renew_at = self.log_in(&mut connection, timeout).await?;
        Ok(Outbound {
            connection,
            renew_at,
        })
    }

    /// The SASL exchange, if configured; when the session it opens should be renewed.
    /// Also KIP-368's re-authentication of an established connection before the leader's
    /// session ends, on the same connection as Kafka's clients do it; nothing may be in
    /// flight on `connection` then.
    pub async fn log_in(
        &self,
        connection: &mut Connection,
        timeout: Duration,
    ) -> Result<Option<Instant>, OutboundError> {
        let Some(sasl) = &self.sasl else {
            return Ok(None);
        };
        let lifetime = tokio::time::timeout(timeout, authenticate(connection, sasl))
            .await
            .map_err(|_| ClientError::ConnectTimeout(connection.addr().to_string()))??;
        Ok(lifetime.map(|l| Instant::now() + l.mul_f64(REAUTH_SHARE)))
    }
}

/// SaslHandshake and SaslAuthenticate with this broker's own credentials (the client's
/// implementation, shared with the operator and tools); the session's lifetime if the
/// server limits it.
pub async fn authenticate(
    connection: &mut Connection,
    sasl: &SaslClientSettings,
) -> Result<Option<Duration>, OutboundError> {
    let mechanism = SaslMechanism::from_name(&sasl.mechanism)
        .ok_or_else(|| OutboundError::UnsupportedMechanism(sasl.mechanism.clone()))?;
    let credentials = SaslCredentials::new(mechanism, &sasl.username, &sasl.password);
    Ok(strom_client::sasl::authenticate(connection, &credentials).await?)
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
