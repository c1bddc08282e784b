//! Listener security under Kafka's names: `listener.security.protocol.map` and the TLS
//! keys, each read per listener with Kafka's `listener.name.<name>.` prefix first and the
//! plain key second (`listener.name.external.ssl.keystore.location` beats
//! `ssl.keystore.location` on the EXTERNAL listener).
//!
//! Keystores and truststores are PEM only (`ssl.keystore.type=PEM`), as files or inline:
//! JKS and PKCS12 are Java formats Strom refuses with a conversion hint rather than
//! half-reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::sync::Arc;
use std::time::Duration;

use super::{bad, ConfigError, Listener};
use crate::auth::plain::PlainUsers;
use crate::auth::principal::SslPrincipalMapper;

/// The key mapping listener names to protocols.
pub const PROTOCOL_MAP_KEY: &str = "listener.security.protocol.map";

/// The TLS keys Strom reads (plain or under a listener prefix).
const TLS_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "ssl.cipher.suites",
    "ssl.endpoint.identification.algorithm",
    "ssl.principal.mapping.rules",
];

/// The SASL keys Strom reads (plain or under a listener prefix; the mechanism-prefixed
/// `plain.sasl.jaas.config` only under a listener prefix, as Kafka).
const SASL_KEYS: &[&str] = &[
    "sasl.enabled.mechanisms",
    "plain.sasl.jaas.config",
    "scram-sha-256.sasl.jaas.config",
    "scram-sha-512.sasl.jaas.config",
    "sasl.jaas.config",
    "plain.sasl.users.file",
    "connections.max.reauth.ms",
    "sasl.server.max.receive.size",
];

/// Keys whose values are secrets: DescribeConfigs hides them, as Kafka's PASSWORD type.
const SENSITIVE_KEYS: &[&str] = &[
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.key",
    "ssl.truststore.password",
    "plain.sasl.jaas.config",
    "scram-sha-256.sasl.jaas.config",
    "scram-sha-512.sasl.jaas.config",
    "sasl.jaas.config",
];

/// The keys naming the mechanism this broker uses as a client of the inter-broker and
/// the controller listener.
pub const INTER_BROKER_MECHANISM_KEY: &str = "sasl.mechanism.inter.broker.protocol";
pub const CONTROLLER_MECHANISM_KEY: &str = "sasl.mechanism.controller.protocol";

/// Kafka's defaults of the TLS keys that have one.
pub(super) const SECURITY_DEFAULTS: &[(&str, &str)] = &[
    ("ssl.client.auth", "none"),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3"),
    ("ssl.protocol", "TLSv1.3"),
    ("ssl.principal.mapping.rules", "DEFAULT"),
    ("connections.max.reauth.ms", "0"),
    ("connection.failed.authentication.delay.ms", "100"),
    ("sasl.server.max.receive.size", "524288"),
];

/// The key without its `listener.name.<name>.` prefix.
fn unprefixed(key: &str) -> &str {
    key.strip_prefix("listener.name.")
        .and_then(|rest| rest.split_once('.'))
        .map_or(key, |(_, k)| k)
}

/// Whether `key` is a security key Strom reads, plain or listener-prefixed.
pub fn is_security_key(key: &str) -> bool {
    key == PROTOCOL_MAP_KEY
        || key == "connection.failed.authentication.delay.ms"
        || key == INTER_BROKER_MECHANISM_KEY
        || key == CONTROLLER_MECHANISM_KEY
        || TLS_KEYS.contains(&unprefixed(key))
        || SASL_KEYS.contains(&unprefixed(key))
}

/// Whether `key`'s value is a secret.
pub fn is_sensitive(key: &str) -> bool {
    SENSITIVE_KEYS.contains(&unprefixed(key))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(name: &str) -> Option<SecurityProtocol> {
        match name {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `ssl.client.auth`: whether the broker asks TLS clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for; a client without one is still served (as `User:ANONYMOUS`).
    Requested,
    /// A client without a certificate trusted by the truststore is refused.
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// PEM text from a file (re-read when it changes) or given inline in the config.
#[derive(Debug, Clone, PartialEq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

/// One TLS listener's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    /// The certificate chain, leaf first.
    pub certificate_chain: PemSource,
    /// The private key (the keystore file holds both when `ssl.keystore.location` is used).
    pub private_key: PemSource,
    /// `ssl.key.password`: decrypts an `ENCRYPTED PRIVATE KEY`.
    pub key_password: Option<String>,
    /// CA certificates client certificates must chain to.
    pub truststore: Option<PemSource>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`, only the versions rustls speaks.
    pub versions: Vec<TlsVersion>,
    /// `ssl.cipher.suites` by IANA name; empty means rustls's defaults.
    pub cipher_suites: Vec<String>,
    /// `ssl.principal.mapping.rules`, checked to compile (see `auth::principal`).
    pub principal_mapping_rules: String,
}

/// One SASL listener's settings.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`, in the order given (the handshake lists them so).
    pub mechanisms: Vec<String>,
    /// PLAIN's users, from `listener.name.<l>.plain.sasl.jaas.config` or Strom's
    /// `listener.name.<l>.plain.sasl.users.file`; `None` when PLAIN is not enabled.
    pub plain_users: Option<Arc<PlainUsers>>,
    /// `connections.max.reauth.ms` (KIP-368): a session's lifetime; `None` for no limit.
    pub max_reauth: Option<Duration>,
    /// `sasl.server.max.receive.size`: the largest frame before authentication.
    pub max_receive_size: i32,
}

/// A listener's protocol and, for SSL and SASL_SSL, its TLS settings, for SASL_* its SASL
/// settings.
#[derive(Debug, Clone)]
pub struct ListenerSecurity {
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsSettings>,
    pub sasl: Option<SaslSettings>,
}

/// Reads every listener's security from the properties (`get` looks a key up).
pub fn parse(
    get: &dyn Fn(&str) -> Option<String>,
    listeners: &[Listener],
) -> Result<BTreeMap<String, ListenerSecurity>, ConfigError> {
    let protocols = protocol_map(get(PROTOCOL_MAP_KEY).as_deref())?;
    let mut out = BTreeMap::new();
    for l in listeners {
        let protocol = match protocols.get(&l.name) {
            Some(p) => *p,
            // Kafka lets a listener named after a protocol go without a map entry.
            None => SecurityProtocol::parse(&l.name).ok_or_else(|| {
                bad(
                    "listeners",
                    format!("listener {} has no entry in {PROTOCOL_MAP_KEY}", l.name),
                )
            })?,
        };
        let tls = if protocol.uses_tls() {
            Some(tls_settings(get, &l.name)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(sasl_settings(get, &l.name)?)
        } else {
            None
        };
        out.insert(
            l.name.clone(),
            ListenerSecurity {
                protocol,
                tls,
                sasl,
            },
        );
    }
    Ok(out)
}

fn protocol_map(map: Option<&str>) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let mut protocols = BTreeMap::new();
    // Kafka 4 maps the conventional controller listener name to PLAINTEXT when the map
    // does not say otherwise, so `listeners=PLAINTEXT://:9092,CONTROLLER://:9093` works.
    protocols.insert("CONTROLLER".to_string(), SecurityProtocol::Plaintext);
    for entry in map.unwrap_or("").split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let (name, proto) = entry
            .split_once(':')
            .ok_or_else(|| bad(PROTOCOL_MAP_KEY, format!("'{entry}' is not NAME:PROTOCOL")))?;
        let proto = proto.trim().to_ascii_uppercase();
        let protocol = SecurityProtocol::parse(&proto).ok_or_else(|| {
            bad(
                PROTOCOL_MAP_KEY,
                format!(
                    "'{proto}' is not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
                ),
            )
        })?;
        protocols.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(protocols)
}

/// The value of `key` for `listener`: the prefixed key first, as Kafka looks it up.
fn listener_value(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
    key: &str,
) -> Option<(String, String)> {
    let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    get(&prefixed)
        .map(|v| (prefixed, v))
        .or_else(|| get(key).map(|v| (key.to_string(), v)))
        .filter(|(_, v)| !v.trim().is_empty())
}

/// The listener's keystore (certificate chain and key), if it names one.
fn keystore(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
) -> Result<Option<(PemSource, PemSource)>, ConfigError> {
    let value = |key: &str| listener_value(get, listener, key);
    match (
        value("ssl.keystore.location"),
        value("ssl.keystore.certificate.chain"),
        value("ssl.keystore.key"),
    ) {
        (Some((_, path)), None, None) => {
            let path = PathBuf::from(path.trim());
            Ok(Some((PemSource::File(path.clone()), PemSource::File(path))))
        }
        (None, Some((_, chain)), Some((_, key))) => {
            Ok(Some((PemSource::Inline(chain), PemSource::Inline(key))))
        }
        (Some((key, _)), _, _) => Err(bad(
            &key,
            "give either ssl.keystore.location or ssl.keystore.certificate.chain with \
             ssl.keystore.key, not both",
        )),
        (None, Some((key, _)), None) | (None, None, Some((key, _))) => Err(bad(
            &key,
            "ssl.keystore.certificate.chain and ssl.keystore.key go together",
        )),
        (None, None, None) => Ok(None),
    }
}

/// The listener's truststore, if it names one.
fn truststore(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
) -> Result<Option<PemSource>, ConfigError> {
    let value = |key: &str| listener_value(get, listener, key);
    match (
        value("ssl.truststore.location"),
        value("ssl.truststore.certificates"),
    ) {
        (Some((key, _)), Some(_)) => Err(bad(
            &key,
            "give ssl.truststore.location or ssl.truststore.certificates, not both",
        )),
        (Some((_, path)), None) => Ok(Some(PemSource::File(PathBuf::from(path.trim())))),
        (None, Some((_, pem))) => Ok(Some(PemSource::Inline(pem))),
        (None, None) => Ok(None),
    }
}

/// `ssl.keystore.type` and `ssl.truststore.type` must be PEM.
fn check_store_types(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
) -> Result<(), ConfigError> {
    let value = |key: &str| listener_value(get, listener, key);
    for store in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some((key, v)) = value(store) {
            if !v.trim().eq_ignore_ascii_case("PEM") {
                return Err(bad(
                    &key,
                    format!(
                        "'{}' is not supported: Strom reads PEM only (convert a JKS or PKCS12 \
                         store with keytool -importkeystore and openssl pkcs12 -nodes)",
                        v.trim()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn tls_settings(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
) -> Result<TlsSettings, ConfigError> {
    let value = |key: &str| listener_value(get, listener, key);
    check_store_types(get, listener)?;
    let (certificate_chain, private_key) = keystore(get, listener)?.ok_or_else(|| {
        bad(
            "ssl.keystore.location",
            format!(
                "listener {listener} uses TLS but has no keystore: set \
                 ssl.keystore.location or ssl.keystore.certificate.chain and \
                 ssl.keystore.key (or their listener.name.{}. forms)",
                listener.to_ascii_lowercase()
            ),
        )
    })?;
    let truststore = truststore(get, listener)?;
    let (auth_key, auth) =
        value("ssl.client.auth").unwrap_or(("ssl.client.auth".into(), "none".into()));
    let client_auth = match auth.trim().to_ascii_lowercase().as_str() {
        "none" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        other => {
            return Err(bad(
                &auth_key,
                format!("'{other}' is not none, requested or required"),
            ))
        }
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(bad(
            &auth_key,
            format!(
                "listener {listener} asks for client certificates but has no truststore to \
                 check them against (ssl.truststore.location or ssl.truststore.certificates)"
            ),
        ));
    }
    let (proto_key, protocols) = value("ssl.enabled.protocols")
        .unwrap_or(("ssl.enabled.protocols".into(), "TLSv1.2,TLSv1.3".into()));
    let versions = tls_versions(&proto_key, &protocols)?;
    let cipher_suites = value("ssl.cipher.suites")
        .map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (rules_key, principal_mapping_rules) = value("ssl.principal.mapping.rules")
        .unwrap_or(("ssl.principal.mapping.rules".into(), "DEFAULT".into()));
    SslPrincipalMapper::parse(&principal_mapping_rules)
        .map_err(|e| bad(&rules_key, e.to_string()))?;
    Ok(TlsSettings {
        certificate_chain,
        private_key,
        key_password: value("ssl.key.password").map(|(_, v)| v),
        truststore,
        client_auth,
        versions,
        cipher_suites,
        principal_mapping_rules,
    })
}

/// The mechanisms Strom's broker serves.
const SERVED_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

fn sasl_settings(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
) -> Result<SaslSettings, ConfigError> {
    let value = |key: &str| listener_value(get, listener, key);
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    // Kafka's default is GSSAPI (Kerberos), which Strom does not serve: a SASL listener
    // must name its mechanisms rather than fail every client at the handshake.
    let (mech_key, mechanisms) = value("sasl.enabled.mechanisms").ok_or_else(|| {
        bad(
            "sasl.enabled.mechanisms",
            format!(
                "listener {listener} uses SASL but names no mechanism; Kafka's default \
                 GSSAPI is not served by Strom: set sasl.enabled.mechanisms (or \
                 {prefix}sasl.enabled.mechanisms) to some of {}",
                SERVED_MECHANISMS.join(", ")
            ),
        )
    })?;
    let mechanisms: Vec<String> = mechanisms
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    if let Some(other) = mechanisms
        .iter()
        .find(|m| !SERVED_MECHANISMS.contains(&m.as_str()))
    {
        return Err(bad(
            &mech_key,
            format!(
                "{other} is not a mechanism Strom serves ({})",
                SERVED_MECHANISMS.join(", ")
            ),
        ));
    }
    let plain_users = if mechanisms.iter().any(|m| m == "PLAIN") {
        // The JAAS key has only a listener-and-mechanism-prefixed form in Kafka.
        let jaas_key = format!("{prefix}plain.sasl.jaas.config");
        let file_key = format!("{prefix}plain.sasl.users.file");
        let users = match (get(&jaas_key), get(&file_key)) {
            (Some(jaas), None) => PlainUsers::from_jaas_config(&jaas)
                .map_err(|e| bad(&jaas_key, e.to_string()))?,
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                    bad(&file_key, format!("cannot read {}: {e}", path.trim()))
                })?;
                PlainUsers::from_file(&text).map_err(|e| bad(&file_key, e.to_string()))?
            }
            (Some(_), Some(_)) => return Err(bad(&jaas_key, format!("give {jaas_key} or {file_key}, not both"))),
            (None, None) => {
                return Err(bad(
                    &jaas_key,
                    format!("listener {listener} enables PLAIN but has no users: set {jaas_key} (user_<name>=\"<password>\" entries) or {file_key}"),
                ))
            }
        };
        Some(Arc::new(users))
    } else {
        None
    };
    let (reauth_key, reauth) = value("connections.max.reauth.ms")
        .unwrap_or(("connections.max.reauth.ms".into(), "0".into()));
    let reauth = super::parse_int(&reauth_key, &reauth, 0, i64::MAX)?;
    let (size_key, size) = value("sasl.server.max.receive.size")
        .unwrap_or(("sasl.server.max.receive.size".into(), "524288".into()));
    Ok(SaslSettings {
        mechanisms,
        plain_users,
        max_reauth: (reauth > 0).then(|| Duration::from_millis(reauth as u64)),
        max_receive_size: super::parse_int(&size_key, &size, 1, i32::MAX as i64)? as i32,
    })
}

/// How this broker connects, as a client, to another node's listener: the inter-broker
/// listener (follower fetches) or the controller listener (the quorum's RPCs). Kafka
/// configures that client with the same listener's settings the server side reads.
#[derive(Debug, Clone)]
pub struct OutboundSecurity {
    pub listener: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsClientSettings>,
    pub sasl: Option<SaslClientSettings>,
}

/// The TLS client side of a listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsClientSettings {
    /// The keystore's chain and key, presented when the server asks (mutual TLS).
    pub identity: Option<(PemSource, PemSource)>,
    pub key_password: Option<String>,
    /// The CAs the server's certificate must chain to.
    pub truststore: PemSource,
    pub versions: Vec<TlsVersion>,
    pub cipher_suites: Vec<String>,
    /// `ssl.endpoint.identification.algorithm`: `https` (Kafka's default) checks that
    /// the certificate names the host connected to; empty turns only that check off.
    pub verify_hostname: bool,
}

/// The SASL client side: the mechanism and this broker's own credentials.
#[derive(Clone)]
pub struct SaslClientSettings {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslClientSettings {
    // Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslClientSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The protocol `listener` uses, from the map or its name.
pub fn listener_protocol(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
) -> Result<SecurityProtocol, ConfigError> {
    let protocols = protocol_map(get(PROTOCOL_MAP_KEY).as_deref())?;
    match protocols.get(listener) {
        Some(p) => Ok(*p),
        None => SecurityProtocol::parse(listener).ok_or_else(|| {
            bad(
                PROTOCOL_MAP_KEY,
                format!("listener {listener} has no entry in {PROTOCOL_MAP_KEY}"),
            )
        }),
    }
}

/// Reads how this broker connects to `listener` on other nodes. `mechanism_key` names the
/// SASL mechanism (`sasl.mechanism.inter.broker.protocol`); `None` where Strom does not
/// speak SASL as a client (the controller listener), which refuses a SASL protocol.
pub fn outbound(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
    mechanism_key: Option<&str>,
) -> Result<OutboundSecurity, ConfigError> {
    let protocol = listener_protocol(get, listener)?;
    // SASL where Strom has no client for it is the first thing to say.
    let sasl = match (protocol.uses_sasl(), mechanism_key) {
        (false, _) => None,
        (true, None) => {
            return Err(bad(
                PROTOCOL_MAP_KEY,
                format!(
                    "the controller listener {listener} uses {}: Strom secures the controller \
                     quorum with SSL (mutual TLS with ssl.client.auth=required), not SASL \
                     ({CONTROLLER_MECHANISM_KEY} is not supported)",
                    protocol.name()
                ),
            ))
        }
        (true, Some(key)) => Some(sasl_client_settings(get, listener, key)?),
    };
    let tls = if protocol.uses_tls() {
        Some(tls_client_settings(get, listener)?)
    } else {
        None
    };
    Ok(OutboundSecurity {
        listener: listener.to_string(),
        protocol,
        tls,
        sasl,
    })
}

fn tls_client_settings(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
) -> Result<TlsClientSettings, ConfigError> {
    let value = |key: &str| listener_value(get, listener, key);
    check_store_types(get, listener)?;
    let truststore = truststore(get, listener)?.ok_or_else(|| {
        bad(
            "ssl.truststore.location",
            format!(
                "this broker connects to listener {listener} of other nodes over TLS and needs \
                 a truststore to check their certificates: set ssl.truststore.location or \
                 ssl.truststore.certificates (or their listener.name.{}. forms)",
                listener.to_ascii_lowercase()
            ),
        )
    })?;
    let (proto_key, protocols) = value("ssl.enabled.protocols")
        .unwrap_or(("ssl.enabled.protocols".into(), "TLSv1.2,TLSv1.3".into()));
    // An empty value is meaningful here (it turns the check off), so it is looked up
    // without `listener_value`'s filter of empty values.
    let prefixed = format!(
        "listener.name.{}.ssl.endpoint.identification.algorithm",
        listener.to_ascii_lowercase()
    );
    let (algorithm_key, algorithm) = get(&prefixed)
        .map(|v| (prefixed.clone(), v))
        .or_else(|| {
            get("ssl.endpoint.identification.algorithm")
                .map(|v| ("ssl.endpoint.identification.algorithm".to_string(), v))
        })
        .unwrap_or((
            "ssl.endpoint.identification.algorithm".into(),
            "https".into(),
        ));
    let verify_hostname = match algorithm.trim().to_ascii_lowercase().as_str() {
        "" => false,
        "https" => true,
        other => {
            return Err(bad(
                &algorithm_key,
                format!("'{other}' is not an algorithm Strom knows (https, or empty for none)"),
            ))
        }
    };
    Ok(TlsClientSettings {
        identity: keystore(get, listener)?,
        key_password: value("ssl.key.password").map(|(_, v)| v),
        truststore,
        versions: tls_versions(&proto_key, &protocols)?,
        cipher_suites: value("ssl.cipher.suites")
            .map(|(_, v)| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        verify_hostname,
    })
}

fn sasl_client_settings(
    get: &dyn Fn(&str) -> Option<String>,
    listener: &str,
    mechanism_key: &str,
) -> Result<SaslClientSettings, ConfigError> {
    // Kafka's default is GSSAPI, which Strom does not speak.
    let mechanism = get(mechanism_key)
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            bad(
                mechanism_key,
                format!(
                    "the inter-broker listener {listener} uses SASL; Kafka's default mechanism \
                     GSSAPI is not served by Strom: set {mechanism_key} to one of {}",
                    SERVED_MECHANISMS.join(", ")
                ),
            )
        })?;
    if !SERVED_MECHANISMS.contains(&mechanism.as_str()) {
        return Err(bad(
            mechanism_key,
            format!(
                "{mechanism} is not a mechanism Strom speaks ({})",
                SERVED_MECHANISMS.join(", ")
            ),
        ));
    }
    // Kafka reads the client's login from the listener-and-mechanism-prefixed JAAS key,
    // the one whose user_<name> options the server side reads for PLAIN.
    let lower = mechanism.to_ascii_lowercase();
    let prefixed = format!(
        "listener.name.{}.{lower}.sasl.jaas.config",
        listener.to_ascii_lowercase()
    );
    let (jaas_key, jaas) = [
        prefixed.clone(),
        format!("{lower}.sasl.jaas.config"),
        "sasl.jaas.config".into(),
    ]
    .into_iter()
    .find_map(|k| get(&k).filter(|v| !v.trim().is_empty()).map(|v| (k, v)))
    .ok_or_else(|| {
        bad(
            &prefixed,
            format!(
                "this broker authenticates to listener {listener} with {mechanism} and \
                     needs its own credentials: set {prefixed} with username=\"...\" \
                     password=\"...\""
            ),
        )
    })?;
    let entries =
        crate::auth::plain::parse_jaas_config(&jaas).map_err(|e| bad(&jaas_key, e.to_string()))?;
    let [entry] = &entries[..] else {
        return Err(bad(&jaas_key, "must hold exactly one login module"));
    };
    match (entry.options.get("username"), entry.options.get("password")) {
        (Some(username), Some(password)) if !username.is_empty() && !password.is_empty() => {
            Ok(SaslClientSettings {
                mechanism,
                username: username.clone(),
                password: password.clone(),
            })
        }
        _ => Err(bad(
            &jaas_key,
            format!(
                "this broker authenticates to listener {listener} with {mechanism} and needs \
                 non-empty username and password options"
            ),
        )),
    }
}

/// `ssl.enabled.protocols`: TLSv1.2 and TLSv1.3 are served; the older versions Kafka
/// still names are refused by rustls, so listing only those is an error.
fn tls_versions(key: &str, value: &str) -> Result<Vec<TlsVersion>, ConfigError> {
    let mut versions = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "TLSv1.2" => versions.push(TlsVersion::Tls12),
            "TLSv1.3" => versions.push(TlsVersion::Tls13),
            "TLSv1" | "TLSv1.1" | "SSLv3" => {}
            other => return Err(bad(key, format!("'{other}' is not a TLS protocol version"))),
        }
    }
    versions.sort_unstable();
    versions.dedup();
    if versions.is_empty() {
        return Err(bad(
            key,
            format!("'{value}' enables neither TLSv1.2 nor TLSv1.3, the versions Strom serves"),
        ));
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(spec: &str) -> Vec<Listener> {
        Listener::parse_list("listeners", spec).unwrap()
    }

    fn parse_with(
        pairs: &[(&str, &str)],
        spec: &str,
    ) -> Result<BTreeMap<String, ListenerSecurity>, ConfigError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&|k| map.get(k).cloned(), &listeners(spec))
    }

    #[test]
    fn listener_names_that_are_protocols_need_no_map_entry() {
        let s = parse_with(&[], "PLAINTEXT://:9092,CONTROLLER://:9093").unwrap();
        assert_eq!(s["PLAINTEXT"].protocol, SecurityProtocol::Plaintext);
        assert_eq!(s["CONTROLLER"].protocol, SecurityProtocol::Plaintext);
        let err = parse_with(&[], "EXTERNAL://:9092").unwrap_err();
        assert!(err.to_string().contains("no entry"), "{err}");
    }

    #[test]
    fn prefixed_keys_win_over_plain_ones() {
        let s = parse_with(
            &[
                (PROTOCOL_MAP_KEY, "INTERNAL:SSL,EXTERNAL:SSL"),
                ("ssl.keystore.location", "/plain.pem"),
                ("listener.name.external.ssl.keystore.location", "/ext.pem"),
                ("listener.name.external.ssl.truststore.location", "/ca.pem"),
                ("listener.name.external.ssl.client.auth", "required"),
            ],
            "INTERNAL://:9092,EXTERNAL://:9094",
        )
        .unwrap();
        let internal = s["INTERNAL"].tls.as_ref().unwrap();
        let external = s["EXTERNAL"].tls.as_ref().unwrap();
        assert_eq!(internal.private_key, PemSource::File("/plain.pem".into()));
        assert_eq!(internal.client_auth, ClientAuth::None);
        assert_eq!(external.private_key, PemSource::File("/ext.pem".into()));
        assert_eq!(external.client_auth, ClientAuth::Required);
        assert_eq!(
            external.versions,
            vec![TlsVersion::Tls12, TlsVersion::Tls13]
        );
    }

    #[test]
    fn inline_pem_and_protocol_choice() {
        let s = parse_with(
            &[
                (PROTOCOL_MAP_KEY, "SECURE:ssl"),
                (
                    "ssl.keystore.certificate.chain",
                    "-----BEGIN CERTIFICATE-----",
                ),
                ("ssl.keystore.key", "-----BEGIN PRIVATE KEY-----"),
                ("ssl.enabled.protocols", "TLSv1.3"),
                (
                    "ssl.cipher.suites",
                    "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384",
                ),
            ],
            "SECURE://:9093",
        )
        .unwrap();
        let tls = s["SECURE"].tls.as_ref().unwrap();
        assert!(matches!(tls.certificate_chain, PemSource::Inline(_)));
        assert_eq!(tls.versions, vec![TlsVersion::Tls13]);
        assert_eq!(tls.cipher_suites.len(), 2);
    }

    #[test]
    fn impossible_tls_settings_are_refused_with_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "has no keystore"),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.keystore.type", "JKS"),
                ],
                "PEM only",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.client.auth", "required"),
                ],
                "no truststore",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.client.auth", "maybe"),
                ],
                "not none, requested or required",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.enabled.protocols", "TLSv1.1"),
                ],
                "neither TLSv1.2 nor TLSv1.3",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.keystore.key", "x"),
                    ("ssl.keystore.certificate.chain", "y"),
                ],
                "not both",
            ),
        ];
        for (pairs, want) in cases {
            let err = parse_with(pairs, "SSL://:9093").unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
        let err = parse_with(
            &[
                ("ssl.keystore.location", "/k"),
                ("ssl.principal.mapping.rules", "RULE:(/x/"),
            ],
            "SSL://:9093",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("ssl.principal.mapping.rules"),
            "{err}"
        );
        let err = parse_with(&[(PROTOCOL_MAP_KEY, "A:TLS")], "A://:1").unwrap_err();
        assert!(err.to_string().contains("not a security protocol"), "{err}");
    }

    #[test]
    fn sasl_listeners_name_their_mechanisms_and_plain_users() {
        let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_alice=\"alice-secret\";";
        let s = parse_with(
            &[
                (PROTOCOL_MAP_KEY, "CLIENTS:SASL_PLAINTEXT"),
                ("sasl.enabled.mechanisms", "SCRAM-SHA-512,PLAIN"),
                ("listener.name.clients.plain.sasl.jaas.config", jaas),
                ("listener.name.clients.connections.max.reauth.ms", "60000"),
            ],
            "CLIENTS://:9092",
        )
        .unwrap();
        let sasl = s["CLIENTS"].sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanisms, ["SCRAM-SHA-512", "PLAIN"]);
        assert_eq!(sasl.plain_users.as_ref().unwrap().len(), 1);
        assert_eq!(sasl.max_reauth, Some(Duration::from_secs(60)));
        assert!(s["CLIENTS"].tls.is_none());

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "Kafka's default GSSAPI is not served"),
            (
                &[("sasl.enabled.mechanisms", "GSSAPI")],
                "not a mechanism Strom serves",
            ),
            (
                &[("sasl.enabled.mechanisms", "PLAIN")],
                "enables PLAIN but has no users",
            ),
            (
                &[
                    ("sasl.enabled.mechanisms", "PLAIN"),
                    (
                        "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                        "nonsense",
                    ),
                ],
                "plain.sasl.jaas.config",
            ),
        ];
        for (pairs, want) in cases {
            let err = parse_with(pairs, "SASL_PLAINTEXT://:9092")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    fn outbound_with(
        pairs: &[(&str, &str)],
        listener: &str,
        mechanism_key: Option<&str>,
    ) -> Result<OutboundSecurity, ConfigError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        outbound(&|k| map.get(k).cloned(), listener, mechanism_key)
    }

    #[test]
    fn outbound_tls_reads_the_listeners_stores_and_endpoint_identification() {
        let base = [
            (PROTOCOL_MAP_KEY, "REPLICATION:SSL,CONTROLLER:SSL"),
            ("ssl.keystore.location", "/broker.pem"),
            (
                "listener.name.replication.ssl.truststore.location",
                "/ca.pem",
            ),
        ];
        let out = outbound_with(&base, "REPLICATION", Some(INTER_BROKER_MECHANISM_KEY)).unwrap();
        assert_eq!(out.protocol, SecurityProtocol::Ssl);
        let tls = out.tls.unwrap();
        assert_eq!(tls.truststore, PemSource::File("/ca.pem".into()));
        assert_eq!(
            tls.identity,
            Some((
                PemSource::File("/broker.pem".into()),
                PemSource::File("/broker.pem".into())
            ))
        );
        assert!(tls.verify_hostname, "https is Kafka's default");
        assert!(out.sasl.is_none());

        let mut off = base.to_vec();
        off.push((
            "listener.name.replication.ssl.endpoint.identification.algorithm",
            "",
        ));
        let tls = outbound_with(&off, "REPLICATION", None)
            .unwrap()
            .tls
            .unwrap();
        assert!(!tls.verify_hostname, "empty turns the name check off");

        // The controller listener has no truststore of its own here.
        let err = outbound_with(&base, "CONTROLLER", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a truststore"), "{err}");
        let mut bad_algorithm = base.to_vec();
        bad_algorithm.push(("ssl.endpoint.identification.algorithm", "dns"));
        let err = outbound_with(&bad_algorithm, "REPLICATION", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an algorithm"), "{err}");
        // A plaintext listener needs nothing.
        let plain = outbound_with(&[], "PLAINTEXT", Some(INTER_BROKER_MECHANISM_KEY)).unwrap();
        assert!(plain.tls.is_none() && plain.sasl.is_none());
    }

    #[test]
    fn outbound_sasl_takes_the_mechanism_and_the_brokers_own_login() {
        let scram_jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required \
                          username=\"broker\" password=\"broker-secret\";";
        let pairs = [
            (PROTOCOL_MAP_KEY, "INTERNAL:SASL_PLAINTEXT"),
            (INTER_BROKER_MECHANISM_KEY, "SCRAM-SHA-512"),
            (
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                scram_jaas,
            ),
        ];
        let out = outbound_with(&pairs, "INTERNAL", Some(INTER_BROKER_MECHANISM_KEY)).unwrap();
        let sasl = out.sasl.unwrap();
        assert_eq!(sasl.mechanism, "SCRAM-SHA-512");
        assert_eq!(sasl.username, "broker");
        assert_eq!(sasl.password, "broker-secret");
        assert!(!format!("{sasl:?}").contains("broker-secret"));

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&pairs[..1], "GSSAPI is not served"),
            (
                &[pairs[0], (INTER_BROKER_MECHANISM_KEY, "GSSAPI")],
                "not a mechanism Strom speaks",
            ),
            (&pairs[..2], "needs its own credentials"),
            (
                &[
                    pairs[0],
                    pairs[1],
                    (
                        "listener.name.internal.scram-sha-512.sasl.jaas.config",
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                    ),
                ],
                "non-empty username and password",
            ),
        ];
        for (pairs, want) in cases {
            let err = outbound_with(pairs, "INTERNAL", Some(INTER_BROKER_MECHANISM_KEY))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        // SASL on the controller listener is refused with the reason.
        let err = outbound_with(
            &[(PROTOCOL_MAP_KEY, "CONTROLLER:SASL_SSL")],
            "CONTROLLER",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not SASL"), "{err}");
        assert!(is_security_key(INTER_BROKER_MECHANISM_KEY));
        assert!(is_sensitive(
            "listener.name.internal.scram-sha-512.sasl.jaas.config"
        ));
    }

    #[test]
    fn key_classification() {
        assert!(is_security_key("ssl.keystore.location"));
        assert!(is_security_key("listener.name.external.ssl.key.password"));
        assert!(!is_security_key("listener.name.external.nonsense"));
        assert!(is_sensitive("listener.name.external.ssl.key.password"));
        assert!(is_sensitive("ssl.keystore.key"));
        assert!(!is_sensitive("ssl.keystore.location"));
        assert!(is_sensitive("listener.name.clients.plain.sasl.jaas.config"));
        assert!(is_security_key(
            "listener.name.clients.sasl.enabled.mechanisms"
        ));
    }
}
