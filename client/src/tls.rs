//! TLS for the client: a rustls configuration built from PEM held in memory (a Kubernetes
//! Secret's data, a flag), so callers need not write key material to disk first.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, Error)]
pub enum TlsConfigError {
    #[error("cannot read the {what} PEM: {why}")]
    Pem { what: &'static str, why: String },
    #[error("the {what} PEM holds no {expected}")]
    Empty {
        what: &'static str,
        expected: &'static str,
    },
    #[error("CA certificate not accepted as a trust anchor: {0}")]
    TrustAnchor(String),
    #[error("cannot build the TLS client configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
    #[error("{0:?} is neither a DNS name nor an IP address")]
    ServerName(String),
}

/// A TLS client configuration: the CAs trusted for the broker's certificate, and
/// optionally the certificate this client presents (mutual TLS). Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    connector: TlsConnector,
    /// Only for `Debug`: whether a client certificate is presented.
    client_certificate: bool,
    trusted: usize,
}

impl fmt::Debug for TlsConfig {
    // The key stays out of logs; the counts say enough to tell configurations apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("trusted_certificates", &self.trusted)
            .field("client_certificate", &self.client_certificate)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Trusts the certificates in `ca_pem` (one or more `CERTIFICATE` blocks) and presents
    /// no client certificate.
    pub fn new(ca_pem: impl AsRef<[u8]>) -> Result<TlsConfig, TlsConfigError> {
        Self::build(ca_pem.as_ref(), None)
    }

    /// As [`TlsConfig::new`], presenting `chain_pem` (leaf first) with its unencrypted
    /// PKCS#8 key `key_pem` when the broker asks for a client certificate.
    pub fn with_client_certificate(
        ca_pem: impl AsRef<[u8]>,
        chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<TlsConfig, TlsConfigError> {
        Self::build(
            ca_pem.as_ref(),
            Some((chain_pem.as_ref(), key_pem.as_ref())),
        )
    }

    fn build(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<TlsConfig, TlsConfigError> {
        let trust = certificates(ca, "CA")?;
        let trusted = trust.len();
        let mut roots = RootCertStore::empty();
        for cert in trust {
            roots
                .add(cert)
                .map_err(|e| TlsConfigError::TrustAnchor(e.to_string()))?;
        }
        // An explicit provider: the process may link more than one rustls backend, and
        // the installed default would then be ambiguous.
        let provider = Arc::new(default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_webpki_verifier(verifier);
        let config = match identity {
            Some((chain, key)) => builder.with_client_auth_cert(
                certificates(chain, "client certificate")?,
                pkcs8_key(key)?,
            )?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConfig {
            connector: TlsConnector::from(Arc::new(config)),
            client_certificate: identity.is_some(),
            trusted,
        })
    }

    /// The TLS handshake over `io` with the server at `host` (a DNS name or an IP
    /// address, optionally in brackets), which its certificate must name.
    pub async fn connect<IO>(&self, io: IO, host: &str) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = server_name(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, io).await
    }
}

/// The name the server's certificate is checked against: from `host` or `host:port`,
/// an IP address stays one (certificates name those in IP SANs).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsConfigError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| TlsConfigError::ServerName(host.into()))
}

/// The host part of `host:port` (`[v6]:port` keeps its brackets, for [`server_name`]).
pub fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(host, _)| host)
}

fn certificates(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem {
            what,
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Empty {
            what,
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn pkcs8_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let key = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::Empty {
            what: "client key",
            expected: "PRIVATE KEY (PKCS#8)",
        },
        other => TlsConfigError::Pem {
            what: "client key",
            why: other.to_string(),
        },
    })?;
    Ok(PrivateKeyDer::Pkcs8(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_addresses() {
        assert_eq!(host_of("broker-0.kafka:9093"), "broker-0.kafka");
        assert_eq!(host_of("[::1]:9093"), "[::1]");
        assert!(matches!(
            server_name(host_of("127.0.0.1:9093")),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name(host_of("[::1]:9093")),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("broker-0.kafka"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn bad_pem_is_a_typed_error() {
        assert!(matches!(
            TlsConfig::new("no certificates here"),
            Err(TlsConfigError::Empty { what: "CA", .. })
        ));
    }
}
