//! The secured mode: every listener of every broker secured as the issue asks (SASL_SSL
//! with PLAIN for clients, mutual TLS for replication and for the controller quorum, an
//! authorizer whose super users are the brokers' certificate principal and the harness's
//! admin), certificates made with rcgen in the cluster's temp dir, and the harness's own
//! clients (rdkafka, strom-client's admin and the raw [`crate::wire::WireClient`])
//! speaking SASL_SSL to such a cluster. A cluster registers its client addresses here
//! while it lives, so code that only has a bootstrap string or an address finds the
//! settings without new parameters.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rdkafka::config::ClientConfig;
use rustls_pki_types::pem::PemObject;
use strom_client::sasl::SaslMechanism;
use strom_test_certs::{write_atomically, Authority, DnType};

use crate::error::{HarnessError, Result};

/// The harness's SASL user on the client listener (a super user).
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// The brokers' principal: their certificate's CN under the mapping rule below.
pub const BROKER_PRINCIPAL: &str = "User:broker";

/// The CA and the brokers' keystore of one secured cluster.
#[derive(Debug, Clone)]
pub struct SecureFiles {
    pub ca: PathBuf,
    pub keystore: PathBuf,
}

/// A CA and one broker certificate valid for `localhost` and `hosts`, written to `dir`.
pub fn make_files(dir: &Path, hosts: &[IpAddr]) -> Result<SecureFiles> {
    let ca = Authority::new("strom-e2e-ca");
    let mut names = vec!["localhost".to_string()];
    names.extend(hosts.iter().map(|h| h.to_string()));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let broker = ca.issue(
        &names,
        &[
            (DnType::OrganizationName, "Strom"),
            (DnType::CommonName, "broker"),
        ],
    );
    Ok(SecureFiles {
        ca: write_atomically(dir, "ca.pem", &ca.pem()),
        keystore: write_atomically(dir, "broker.pem", &broker.keystore_pem()),
    })
}

/// The broker properties of the secured mode (listener names CLIENT, REPLICATION and
/// CONTROLLER; the listeners themselves are rendered by `props::render`).
pub fn broker_properties(files: &SecureFiles) -> Vec<(String, String)> {
    let path = |p: &Path| p.display().to_string();
    [
        (
            "listener.security.protocol.map",
            "CLIENT:SASL_SSL,REPLICATION:SSL,CONTROLLER:SSL".to_string(),
        ),
        ("inter.broker.listener.name", "REPLICATION".into()),
        ("ssl.keystore.location", path(&files.keystore)),
        ("ssl.truststore.location", path(&files.ca)),
        (
            "listener.name.replication.ssl.client.auth",
            "required".into(),
        ),
        (
            "listener.name.controller.ssl.client.auth",
            "required".into(),
        ),
        (
            "ssl.principal.mapping.rules",
            "RULE:^CN=([a-z]+),O=Strom$/$1/,DEFAULT".into(),
        ),
        (
            "listener.name.client.sasl.enabled.mechanisms",
            "PLAIN".into(),
        ),
        (
            "listener.name.client.plain.sasl.jaas.config",
            format!(
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 user_{ADMIN_USER}=\"{ADMIN_PASSWORD}\";"
            ),
        ),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        ),
        (
            "super.users",
            format!("{BROKER_PRINCIPAL};User:{ADMIN_USER}"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// How the harness's clients reach one secured cluster.
#[derive(Debug, Clone)]
pub struct ClientSecurity {
    pub ca: PathBuf,
    tls: Arc<rustls::ClientConfig>,
    /// The same, for strom-client's admin.
    admin: strom_client::Security,
}

impl ClientSecurity {
    pub fn new(files: &SecureFiles) -> Result<ClientSecurity> {
        let pem = std::fs::read(&files.ca)
            .map_err(|e| HarnessError::io(format!("read {}", files.ca.display()), e))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| HarnessError::Protocol(format!("CA PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| HarnessError::Protocol(format!("CA certificate: {e}")))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| HarnessError::Protocol(format!("TLS config: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let admin_tls = strom_client::tls::TlsConfig::new(&pem)
            .map_err(|e| HarnessError::Protocol(format!("admin client TLS config: {e}")))?;
        let admin = strom_client::Security::plaintext()
            .with_tls(admin_tls)
            .with_sasl(SaslMechanism::Plain, ADMIN_USER, ADMIN_PASSWORD);
        Ok(ClientSecurity {
            ca: files.ca.clone(),
            tls: Arc::new(tls),
            admin,
        })
    }

    /// librdkafka's settings for SASL_SSL with PLAIN as the harness's admin.
    pub fn rdkafka_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", "sasl_ssl".into()),
            ("sasl.mechanisms", "PLAIN".into()),
            ("sasl.username", ADMIN_USER.into()),
            ("sasl.password", ADMIN_PASSWORD.into()),
            ("ssl.ca.location", self.ca.display().to_string()),
        ]
    }
}

type Registry = Vec<(Vec<SocketAddr>, ClientSecurity)>;

/// The client addresses of every live secured cluster in this process.
static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());

/// Makes `security` the settings for clients of `addrs` until [`unregister`].
pub fn register(addrs: Vec<SocketAddr>, security: ClientSecurity) {
    if let Ok(mut r) = REGISTRY.lock() {
        r.push((addrs, security));
    }
}

pub fn unregister(addrs: &[SocketAddr]) {
    if let Ok(mut r) = REGISTRY.lock() {
        r.retain(|(a, _)| a.as_slice() != addrs);
    }
}

/// The security of the cluster one of whose addresses appears in `bootstrap`.
pub fn for_bootstrap(bootstrap: &str) -> Option<ClientSecurity> {
    let r = REGISTRY.lock().ok()?;
    let listed: Vec<&str> = bootstrap.split(',').map(str::trim).collect();
    r.iter()
        .find(|(addrs, _)| {
            addrs
                .iter()
                .any(|a| listed.contains(&a.to_string().as_str()))
        })
        .map(|(_, s)| s.clone())
}

/// strom-client's security for `addr`: SASL_SSL as the admin when it is a secured
/// cluster's, else PLAINTEXT.
pub fn admin_security(addr: SocketAddr) -> strom_client::Security {
    for_bootstrap(&addr.to_string())
        .map(|s| s.admin)
        .unwrap_or_default()
}

/// An rdkafka configuration for `bootstrap`, secured when it is a secured cluster's.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    if let Some(security) = for_bootstrap(bootstrap) {
        for (k, v) in security.rdkafka_settings() {
            config.set(k, v);
        }
    }
    config
}

/// A blocking byte stream: TCP or TLS over TCP.
pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// TLS over `stream` to `addr` when `addr` belongs to a secured cluster; the caller then
/// authenticates with [`plain_message`]. `None` for a plaintext cluster.
pub fn secure(addr: SocketAddr, stream: TcpStream) -> Result<(Box<dyn ReadWrite>, bool)> {
    let Some(security) = for_bootstrap(&addr.to_string()) else {
        return Ok((Box::new(stream), false));
    };
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let connection = rustls::ClientConnection::new(security.tls.clone(), name)
        .map_err(|e| HarnessError::Protocol(format!("TLS to {addr}: {e}")))?;
    Ok((Box::new(rustls::StreamOwned::new(connection, stream)), true))
}

/// The SASL PLAIN message of the harness's admin.
pub fn plain_message() -> Vec<u8> {
    format!("\0{ADMIN_USER}\0{ADMIN_PASSWORD}").into_bytes()
}
