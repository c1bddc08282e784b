//! TLS for SSL and SASL_SSL listeners, with rustls: the server configuration built from
//! a listener's PEM settings, and rebuilt when its files change so that Kubernetes
//! rotating a Secret in place reaches new connections without a restart. Connections
//! already open keep the session they negotiated. [`TlsClient`] is the other side, for
//! this broker's own connections to other nodes' inter-broker and controller listeners:
//! the same PEM reading, the same reload.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use thiserror::Error;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::auth::principal::{NoMatchingRule, SslPrincipalMapper};
use crate::config::security::{ClientAuth, PemSource, TlsClientSettings, TlsSettings, TlsVersion};

/// How often a TLS listener's files are checked for a new certificate. Kubernetes
/// updates a mounted Secret within about a minute of its change; this adds little.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: {why}")]
    Pem { what: String, why: String },
    #[error("ssl.cipher.suites: {0}")]
    CipherSuites(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("truststore: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{0} is not a host name or address a certificate can be checked against")]
    ServerName(String),
    #[error("ssl.principal.mapping.rules: {0}")]
    PrincipalRules(#[from] crate::auth::principal::RuleError),
}

fn pem_error(what: &str, why: impl ToString) -> TlsError {
    TlsError::Pem {
        what: what.to_string(),
        why: why.to_string(),
    }
}

/// The PEM bytes a configuration was built from; a change in any means a rebuild.
#[derive(Debug, Clone, PartialEq)]
struct Material {
    chain: Vec<u8>,
    key: Vec<u8>,
    trust: Option<Vec<u8>>,
}

impl Material {
    fn read(settings: &TlsSettings) -> Result<Material, TlsError> {
        Ok(Material {
            chain: read_source(&settings.certificate_chain)?,
            key: read_source(&settings.private_key)?,
            trust: settings.truststore.as_ref().map(read_source).transpose()?,
        })
    }
}

fn read_source(source: &PemSource) -> Result<Vec<u8>, TlsError> {
    match source {
        PemSource::Inline(pem) => Ok(pem.as_bytes().to_vec()),
        PemSource::File(path) => std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// One TLS listener: its settings and the configuration new connections get.
pub struct TlsListener {
    listener: String,
    settings: TlsSettings,
    principals: SslPrincipalMapper,
    current: RwLock<(Material, TlsAcceptor)>,
    /// The last reload error, so a broken file is logged once, not every check.
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Reads and checks the certificate, key and truststore; an error here stops start-up.
    pub fn new(listener: &str, settings: &TlsSettings) -> Result<TlsListener, TlsError> {
        let material = Material::read(settings)?;
        let acceptor = TlsAcceptor::from(Arc::new(server_config(settings, &material)?));
        Ok(TlsListener {
            listener: listener.to_string(),
            principals: SslPrincipalMapper::parse(&settings.principal_mapping_rules)?,
            settings: settings.clone(),
            current: RwLock::new((material, acceptor)),
            last_error: Mutex::new(None),
        })
    }

    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The principal of a TLS connection: `User:` and the client certificate's DN mapped
    /// by `ssl.principal.mapping.rules`; `User:ANONYMOUS` without a certificate; an error
    /// when no rule applies (the connection is then refused, as Kafka refuses it).
    pub fn principal<IO>(&self, stream: &TlsStream<IO>) -> Result<String, NoMatchingRule> {
        match peer_distinguished_name(stream) {
            Some(dn) => Ok(format!("User:{}", self.principals.name_for(&dn)?)),
            None => Ok(crate::auth::principal::ANONYMOUS.to_string()),
        }
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().1.clone()
    }

    /// Rebuilds the configuration if the PEM files changed. Returns whether it did; on an
    /// error the previous certificate stays in use (a half-written file must not take
    /// the listener down).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let material = Material::read(&self.settings)?;
        if material == self.current.read().0 {
            return Ok(false);
        }
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&self.settings, &material)?));
        *self.current.write() = (material, acceptor);
        Ok(true)
    }

    /// Checks for new certificates every `RELOAD_CHECK_INTERVAL` until shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        watch_files(self, shutdown).await
    }
}

/// A TLS configuration built from PEM files that may change.
trait Reloadable: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn reload_if_changed(&self) -> Result<bool, TlsError>;
    fn last_error(&self) -> &Mutex<Option<String>>;
}

impl Reloadable for TlsListener {
    fn name(&self) -> &str {
        &self.listener
    }
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        TlsListener::reload_if_changed(self)
    }
    fn last_error(&self) -> &Mutex<Option<String>> {
        &self.last_error
    }
}

/// Checks for new certificates every `RELOAD_CHECK_INTERVAL` until shutdown, logging a
/// reload once and a broken file once per distinct error.
async fn watch_files<R: Reloadable>(this: Arc<R>, mut shutdown: watch::Receiver<bool>) {
    {
        let listener = this.name().to_string();
        loop {
            tokio::select! {
                () = tokio::time::sleep(RELOAD_CHECK_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
            let me = this.clone();
            let outcome = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
            let mut last_error = this.last_error().lock();
            match outcome {
                Ok(Ok(true)) => {
                    tracing::info!(%listener, "TLS certificate reloaded; new connections use it");
                    *last_error = None;
                }
                Ok(Ok(false)) => *last_error = None,
                Ok(Err(e)) => {
                    let message = e.to_string();
                    if last_error.as_deref() != Some(&message) {
                        tracing::error!(%listener, error = %message,
                            "cannot reload the TLS certificate; keeping the previous one");
                    }
                    *last_error = Some(message);
                }
                Err(e) => {
                    tracing::error!(%listener, error = %e, "TLS reload task failed")
                }
            }
        }
    }
}

fn rustls_versions(versions: &[TlsVersion]) -> Vec<&'static SupportedProtocolVersion> {
    versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

fn root_store(trust: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(trust, "truststore")? {
        roots
            .add(cert)
            .map_err(|e| pem_error("truststore", format!("bad CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// rustls's configuration for one listener.
fn server_config(settings: &TlsSettings, material: &Material) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(provider(&settings.cipher_suites, &settings.versions)?);
    let versions = rustls_versions(&settings.versions);
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let builder = match (settings.client_auth, &material.trust) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(trust)) => {
            let roots = root_store(trust)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated().build()?
            } else {
                verifier.build()?
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let chain = certificates(&material.chain, "keystore certificate chain")?;
    let key = private_key(&material.key, settings.key_password.as_deref())?;
    Ok(builder.with_single_cert(chain, key)?)
}

/// The ring provider, its suites narrowed to `ssl.cipher.suites` when that is set.
fn provider(suites: &[String], versions: &[TlsVersion]) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if suites.is_empty() {
        return Ok(provider);
    }
    let available: Vec<String> = provider
        .cipher_suites
        .iter()
        .map(|s| iana_name(s.suite()))
        .collect();
    if let Some(unknown) = suites.iter().find(|name| !available.contains(name)) {
        return Err(TlsError::CipherSuites(format!(
            "{unknown} is not a suite Strom serves (it serves {})",
            available.join(", ")
        )));
    }
    provider
        .cipher_suites
        .retain(|s| suites.contains(&iana_name(s.suite())));
    let usable = provider.cipher_suites.iter().any(|s| {
        versions.iter().any(|v| match v {
            TlsVersion::Tls12 => s.version() == &rustls::version::TLS12,
            TlsVersion::Tls13 => s.version() == &rustls::version::TLS13,
        })
    });
    if !usable {
        return Err(TlsError::CipherSuites(
            "none of the listed suites belongs to a version in ssl.enabled.protocols".into(),
        ));
    }
    Ok(provider)
}

/// A suite's IANA name, as Java and Kafka configurations spell it (rustls prefixes its
/// TLS 1.3 suites with `TLS13_`).
fn iana_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e))?;
    if certs.is_empty() {
        return Err(pem_error(what, "no CERTIFICATE in the PEM"));
    }
    Ok(certs)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The private key: plain PKCS#8, PKCS#1 or SEC1, or encrypted PKCS#8 opened with
/// `ssl.key.password` (pkcs8 does the PBES2 decryption; rustls reads only plain keys).
fn private_key(pem: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = String::from_utf8_lossy(pem);
    let Some(start) = text.find(ENCRYPTED_BEGIN) else {
        return PrivateKeyDer::from_pem_slice(pem).map_err(|e| pem_error("private key", e));
    };
    let end = text[start..]
        .find(ENCRYPTED_END)
        .map(|i| start + i + ENCRYPTED_END.len())
        .ok_or_else(|| pem_error("private key", "ENCRYPTED PRIVATE KEY block is not closed"))?;
    let password = password.ok_or_else(|| {
        pem_error(
            "private key",
            "the key is encrypted and ssl.key.password is not set",
        )
    })?;
    let (_, der) = pkcs8::der::pem::decode_vec(text[start..end].as_bytes())
        .map_err(|e| pem_error("private key", e))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| pem_error("private key", e))?;
    let plain = info.decrypt(password).map_err(|e| {
        pem_error(
            "private key",
            format!("cannot decrypt with ssl.key.password: {e}"),
        )
    })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.as_bytes().to_vec(),
    )))
}

/// The distinguished name of the client's certificate as Kafka's principal builder sees
/// it; `None` without a certificate.
pub fn peer_distinguished_name<IO>(stream: &TlsStream<IO>) -> Option<String> {
    distinguished_name(stream.get_ref().1.peer_certificates()?.first()?)
}

/// A certificate's subject in RFC 4514 form, most specific first (`CN=alice,OU=eng,O=Strom`),
/// the form Java's `X500Principal.getName()` gives Kafka.
pub fn distinguished_name(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    Some(cert.tbs_certificate.subject.to_string())
}

/// The PEM bytes a client configuration was built from.
#[derive(Debug, Clone, PartialEq)]
struct ClientMaterial {
    identity: Option<(Vec<u8>, Vec<u8>)>,
    trust: Vec<u8>,
}

impl ClientMaterial {
    fn read(settings: &TlsClientSettings) -> Result<ClientMaterial, TlsError> {
        Ok(ClientMaterial {
            identity: settings
                .identity
                .as_ref()
                .map(|(chain, key)| Ok::<_, TlsError>((read_source(chain)?, read_source(key)?)))
                .transpose()?,
            trust: read_source(&settings.truststore)?,
        })
    }
}

/// This broker as a TLS client of one listener on other nodes (the inter-broker or the
/// controller listener): the listener's truststore checks the server, its keystore is
/// the certificate presented for mutual TLS. Reloaded like [`TlsListener`].
pub struct TlsClient {
    listener: String,
    settings: TlsClientSettings,
    current: RwLock<(ClientMaterial, TlsConnector)>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("listener", &self.listener)
            .field("verify_hostname", &self.settings.verify_hostname)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Reads and checks the truststore and keystore; an error here stops start-up.
    pub fn new(listener: &str, settings: &TlsClientSettings) -> Result<TlsClient, TlsError> {
        let material = ClientMaterial::read(settings)?;
        let connector = TlsConnector::from(Arc::new(client_config(settings, &material)?));
        Ok(TlsClient {
            listener: listener.to_string(),
            settings: settings.clone(),
            current: RwLock::new((material, connector)),
            last_error: Mutex::new(None),
        })
    }

    /// Rebuilds the configuration if the PEM files changed (see
    /// [`TlsListener::reload_if_changed`]).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let material = ClientMaterial::read(&self.settings)?;
        if material == self.current.read().0 {
            return Ok(false);
        }
        let connector = TlsConnector::from(Arc::new(client_config(&self.settings, &material)?));
        *self.current.write() = (material, connector);
        Ok(true)
    }

    /// Checks for new certificates every `RELOAD_CHECK_INTERVAL` until shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        watch_files(self, shutdown).await
    }

    /// The TLS handshake over `io` with the server at `host` (a name or an address, as
    /// the peer's endpoint gives it; sent as SNI and checked against the certificate
    /// unless `ssl.endpoint.identification.algorithm` is empty).
    pub async fn connect<IO>(
        &self,
        io: IO,
        host: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = server_name(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connector = self.current.read().1.clone();
        connector.connect(name, io).await
    }
}

impl Reloadable for TlsClient {
    fn name(&self) -> &str {
        &self.listener
    }
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        TlsClient::reload_if_changed(self)
    }
    fn last_error(&self) -> &Mutex<Option<String>> {
        &self.last_error
    }
}

/// The name a server certificate is checked against: an IP address stays one (a
/// certificate names it in an IP SAN), anything else is a DNS name.
fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

fn client_config(
    settings: &TlsClientSettings,
    material: &ClientMaterial,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(provider(&settings.cipher_suites, &settings.versions)?);
    let roots = Arc::new(root_store(&material.trust)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| pem_error("truststore", e))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&rustls_versions(&settings.versions))?;
    let builder = if settings.verify_hostname {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyNameVerifier(webpki)))
    };
    Ok(match &material.identity {
        Some((chain, key)) => builder.with_client_auth_cert(
            certificates(chain, "keystore certificate chain")?,
            private_key(key, settings.key_password.as_deref())?,
        )?,
        None => builder.with_no_client_auth(),
    })
}

/// Kafka's empty `ssl.endpoint.identification.algorithm`: the chain and signatures are
/// checked as always; only a certificate that names another host is let through.
#[derive(Debug)]
struct AnyNameVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use strom_test_certs::{Authority, DnType, Leaf};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Pki {
        ca_pem: String,
        server: Leaf,
        client: Leaf,
        client_der: CertificateDer<'static>,
    }

    fn pki() -> Pki {
        let ca = Authority::new("Strom test CA");
        let server = ca.issue(&["localhost"], &[]);
        let client = ca.issue(
            &[],
            &[
                (DnType::CountryName, "DE"),
                (DnType::OrganizationName, "Strom"),
                (DnType::CommonName, "alice"),
            ],
        );
        let client_der = certificates(client.cert_pem.as_bytes(), "client")
            .unwrap()
            .remove(0);
        Pki {
            ca_pem: ca.pem(),
            server,
            client,
            client_der,
        }
    }

    fn settings(
        pki: &Pki,
        auth: ClientAuth,
        versions: &[TlsVersion],
        suites: &[&str],
    ) -> TlsSettings {
        TlsSettings {
            certificate_chain: PemSource::Inline(pki.server.cert_pem.clone()),
            private_key: PemSource::Inline(pki.server.key_pem.clone()),
            key_password: None,
            truststore: Some(PemSource::Inline(pki.ca_pem.clone())),
            client_auth: auth,
            versions: versions.to_vec(),
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            principal_mapping_rules: "DEFAULT".into(),
        }
    }

    /// A rustls client handshake against `listener` over an in-memory pipe: the version
    /// negotiated and the client DN the server saw, or the client's error.
    async fn connect(
        pki: &Pki,
        listener: &TlsListener,
        versions: &[&'static SupportedProtocolVersion],
        with_cert: bool,
    ) -> Result<(rustls::ProtocolVersion, String), String> {
        let mut roots = RootCertStore::empty();
        for c in certificates(pki.ca_pem.as_bytes(), "ca").unwrap() {
            roots.add(c).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
        let config = if with_cert {
            let key = PrivateKeyDer::from_pem_slice(pki.client.key_pem.clone().as_bytes()).unwrap();
            builder
                .with_client_auth_cert(vec![pki.client_der.clone()], key)
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = listener.acceptor();
        let server = tokio::spawn(async move {
            let mut stream = acceptor
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            stream
                .read_exact(&mut byte)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(stream)
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("localhost").unwrap();
        let client = async {
            let mut stream = connector
                .connect(name, client_io)
                .await
                .map_err(|e| e.to_string())?;
            let version = stream.get_ref().1.protocol_version().unwrap();
            stream.write_all(b"x").await.map_err(|e| e.to_string())?;
            Ok::<_, String>((version, stream))
        };
        // The client's end stays open until the server is done (it sends tickets).
        let client = client.await;
        let server = server.await.unwrap();
        let version = client.map(|(version, _stream)| version);
        match (version, server) {
            (Ok(v), Ok(stream)) => Ok((v, listener.principal(&stream).map_err(|e| e.to_string())?)),
            (v, server) => Err(format!("client: {v:?}, server: {:?}", server.map(|_| ()))),
        }
    }

    #[tokio::test]
    async fn versions_suites_and_client_certificates_as_configured() {
        let pki = pki();
        let both = [TlsVersion::Tls12, TlsVersion::Tls13];
        let all = [&rustls::version::TLS12, &rustls::version::TLS13];

        let open = TlsListener::new("SSL", &settings(&pki, ClientAuth::None, &both, &[])).unwrap();
        let (version, principal) = connect(&pki, &open, &all, false).await.unwrap();
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
        assert_eq!(principal, "User:ANONYMOUS");

        let tls12 = TlsListener::new(
            "SSL",
            &settings(&pki, ClientAuth::None, &[TlsVersion::Tls12], &[]),
        )
        .unwrap();
        let (version, _) = connect(&pki, &tls12, &all, false).await.unwrap();
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
        assert!(connect(&pki, &tls12, &[&rustls::version::TLS13], false)
            .await
            .is_err());

        let required =
            TlsListener::new("SSL", &settings(&pki, ClientAuth::Required, &both, &[])).unwrap();
        assert!(connect(&pki, &required, &all, false).await.is_err());
        let (_, principal) = connect(&pki, &required, &all, true).await.unwrap();
        assert_eq!(principal, "User:CN=alice,O=Strom,C=DE");

        let mut mapped = settings(&pki, ClientAuth::Required, &both, &[]);
        mapped.principal_mapping_rules = "RULE:^CN=([a-z]+),O=Strom.*$/$1/U".into();
        let mapped = TlsListener::new("SSL", &mapped).unwrap();
        assert_eq!(
            connect(&pki, &mapped, &all, true).await.unwrap().1,
            "User:ALICE"
        );
        let mut unmapped = settings(&pki, ClientAuth::Required, &both, &[]);
        unmapped.principal_mapping_rules = "RULE:^CN=bob$/bob/".into();
        let unmapped = TlsListener::new("SSL", &unmapped).unwrap();
        let err = connect(&pki, &unmapped, &all, true).await.unwrap_err();
        assert!(
            err.contains("no ssl.principal.mapping.rules rule applies"),
            "{err}"
        );

        let requested =
            TlsListener::new("SSL", &settings(&pki, ClientAuth::Requested, &both, &[])).unwrap();
        assert_eq!(
            connect(&pki, &requested, &all, false).await.unwrap().1,
            "User:ANONYMOUS"
        );
        assert_eq!(
            connect(&pki, &requested, &all, true).await.unwrap().1,
            "User:CN=alice,O=Strom,C=DE"
        );

        let one_suite = settings(&pki, ClientAuth::None, &both, &["TLS_AES_256_GCM_SHA384"]);
        let one_suite = TlsListener::new("SSL", &one_suite).unwrap();
        // Only the TLS 1.3 suite is left, so a TLS 1.2-only client finds nothing in common.
        assert!(connect(&pki, &one_suite, &[&rustls::version::TLS12], false)
            .await
            .is_err());
        assert!(connect(&pki, &one_suite, &all, false).await.is_ok());
    }

    #[test]
    fn impossible_settings_fail_with_a_reason() {
        let pki = pki();
        let both = [TlsVersion::Tls12, TlsVersion::Tls13];
        let err = TlsListener::new(
            "SSL",
            &settings(&pki, ClientAuth::None, &both, &["TLS_NULL_WITH_NULL_NULL"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("is not a suite Strom serves") && err.contains("TLS_AES_128_GCM_SHA256"),
            "{err}"
        );
        let err = TlsListener::new(
            "SSL",
            &settings(
                &pki,
                ClientAuth::None,
                &[TlsVersion::Tls12],
                &["TLS_AES_128_GCM_SHA256"],
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ssl.enabled.protocols"), "{err}");
        let mut missing = settings(&pki, ClientAuth::None, &both, &[]);
        missing.private_key = PemSource::File("/nonexistent/key.pem".into());
        let err = TlsListener::new("SSL", &missing).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/key.pem"), "{err}");
        let mut garbage = settings(&pki, ClientAuth::None, &both, &[]);
        garbage.certificate_chain = PemSource::Inline("not pem".into());
        assert!(TlsListener::new("SSL", &garbage).is_err());
    }

    #[test]
    fn an_encrypted_key_opens_with_ssl_key_password_only() {
        use pkcs8::der::pem::LineEnding;
        let pki = pki();
        let der = PrivateKeyDer::from_pem_slice(pki.server.key_pem.as_bytes())
            .unwrap()
            .secret_der()
            .to_vec();
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16])
                .unwrap();
        let encrypted = info.encrypt_with_params(params, "s3cret").unwrap();
        let pem = encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .unwrap();

        let mut s = settings(&pki, ClientAuth::None, &[TlsVersion::Tls13], &[]);
        s.private_key = PemSource::Inline(pem.to_string());
        let err = TlsListener::new("SSL", &s).unwrap_err().to_string();
        assert!(err.contains("ssl.key.password is not set"), "{err}");
        s.key_password = Some("wrong".into());
        let err = TlsListener::new("SSL", &s).unwrap_err().to_string();
        assert!(err.contains("cannot decrypt"), "{err}");
        s.key_password = Some("s3cret".into());
        TlsListener::new("SSL", &s).unwrap();
    }

    fn client_settings(pki: &Pki, verify_hostname: bool, with_cert: bool) -> TlsClientSettings {
        TlsClientSettings {
            identity: with_cert.then(|| {
                (
                    PemSource::Inline(pki.client.cert_pem.clone()),
                    PemSource::Inline(pki.client.key_pem.clone()),
                )
            }),
            key_password: None,
            truststore: PemSource::Inline(pki.ca_pem.clone()),
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            cipher_suites: Vec::new(),
            verify_hostname,
        }
    }

    /// A TlsClient handshake with `listener`; the principal the server saw.
    async fn client_connect(
        client: &TlsClient,
        listener: &TlsListener,
        host: &str,
    ) -> Result<String, String> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = listener.acceptor();
        let server = tokio::spawn(async move {
            let mut stream = acceptor
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            stream
                .read_exact(&mut byte)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(stream)
        });
        let client = async {
            let mut stream = client
                .connect(client_io, host)
                .await
                .map_err(|e| e.to_string())?;
            stream.write_all(b"x").await.map_err(|e| e.to_string())?;
            Ok::<_, String>(stream)
        };
        let client = client.await;
        let server = server.await.unwrap();
        match (client, server) {
            (Ok(_stream), Ok(stream)) => listener.principal(&stream).map_err(|e| e.to_string()),
            (c, s) => Err(format!(
                "client: {:?}, server: {:?}",
                c.map(|_| ()),
                s.map(|_| ())
            )),
        }
    }

    #[tokio::test]
    async fn the_client_side_checks_the_server_and_presents_its_certificate() {
        let pki = pki();
        let both = [TlsVersion::Tls12, TlsVersion::Tls13];
        let mutual =
            TlsListener::new("SSL", &settings(&pki, ClientAuth::Required, &both, &[])).unwrap();

        let client = TlsClient::new("SSL", &client_settings(&pki, true, true)).unwrap();
        assert_eq!(
            client_connect(&client, &mutual, "localhost").await.unwrap(),
            "User:CN=alice,O=Strom,C=DE"
        );
        // The server's certificate names localhost only.
        let err = client_connect(&client, &mutual, "127.0.0.1")
            .await
            .unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
        // Without endpoint identification the name is not checked, the chain still is.
        let any_name = TlsClient::new("SSL", &client_settings(&pki, false, true)).unwrap();
        client_connect(&any_name, &mutual, "127.0.0.1")
            .await
            .unwrap();
        let other = super::tests::pki();
        let mut foreign = client_settings(&pki, false, true);
        foreign.truststore = PemSource::Inline(other.ca_pem.clone());
        let foreign = TlsClient::new("SSL", &foreign).unwrap();
        assert!(client_connect(&foreign, &mutual, "localhost")
            .await
            .is_err());
        // No certificate: mutual TLS refuses.
        let anonymous = TlsClient::new("SSL", &client_settings(&pki, true, false)).unwrap();
        assert!(client_connect(&anonymous, &mutual, "localhost")
            .await
            .is_err());
        let err = TlsClient::new("SSL", &{
            let mut s = client_settings(&pki, true, false);
            s.truststore = PemSource::File("/nonexistent/ca.pem".into());
            s
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn reload_only_when_the_files_change() {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let chain = dir.path().join("chain.pem");
        std::fs::write(&chain, &pki.server.cert_pem).unwrap();
        let mut s = settings(&pki, ClientAuth::None, &[TlsVersion::Tls13], &[]);
        s.certificate_chain = PemSource::File(chain.clone());
        let listener = TlsListener::new("SSL", &s).unwrap();
        assert!(!listener.reload_if_changed().unwrap());
        std::fs::write(&chain, "garbage").unwrap();
        assert!(
            listener.reload_if_changed().is_err(),
            "a broken file is an error"
        );
        std::fs::write(&chain, format!("{}\n", pki.server.cert_pem)).unwrap();
        assert!(listener.reload_if_changed().unwrap());
        assert!(!listener.reload_if_changed().unwrap());
    }
}
