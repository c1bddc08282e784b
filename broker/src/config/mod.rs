//! Broker configuration under Kafka's property names, from `server.properties` and
//! `--override key=value`. An unknown key is a warning; a bad value stops start-up with an
//! error that names the key.

pub mod authorizer;
pub mod cluster;
pub mod connections;
pub mod dynamic;
pub mod group_configs;
pub mod properties;
pub mod security;
pub mod topic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

pub use cluster::{ClusterConfig, Voter};
pub use connections::ConnectionLimits;
pub use properties::Properties;
pub use security::{ListenerSecurity, SecurityProtocol};
pub use topic::{LogConfig, ValueKind, TOPIC_CONFIGS};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("--override expects key=value, got '{0}'")]
    BadOverride(String),
    #[error("invalid value for '{key}': {why}")]
    BadValue { key: String, why: String },
}

fn bad(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        why: why.into(),
    }
}

/// A whole number in `min..=max`, or an error naming the key and the value.
fn parse_int(key: &str, raw: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n: i64 = raw
        .trim()
        .parse()
        .map_err(|_| bad(key, format!("'{raw}' is not a whole number")))?;
    if n < min || n > max {
        return Err(bad(key, format!("{n} is outside {min}..={max}")));
    }
    Ok(n)
}

/// `true` or `false` (any case), or an error naming the key.
fn parse_bool(key: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(bad(key, format!("'{other}' is not true or false"))),
    }
}

/// One `NAME://host:port` entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    /// Empty means every interface (Kafka's `PLAINTEXT://:9092`).
    pub host: String,
    pub port: u16,
}

impl Listener {
    fn parse_list(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
        let mut out: Vec<Listener> = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = item
                .split_once("://")
                .ok_or_else(|| bad(key, format!("'{item}' is not NAME://host:port")))?;
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad(key, format!("'{item}' has no port")))?;
            let port: u16 = port
                .parse()
                .map_err(|_| bad(key, format!("'{port}' in '{item}' is not a port number")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = name.to_ascii_uppercase();
            if out.iter().any(|l| l.name == name) {
                return Err(bad(key, format!("listener name {name} appears twice")));
            }
            out.push(Listener {
                name,
                host: host.to_string(),
                port,
            });
        }
        if out.is_empty() {
            return Err(bad(key, "no listener given"));
        }
        Ok(out)
    }

    /// The address to bind: an empty host means every interface.
    pub fn bind_host(&self) -> &str {
        if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        }
    }
}

/// Keys Kafka has that a later Strom issue implements: accepted with a warning so existing
/// `server.properties` files still start the broker.
const KNOWN_BUT_NOT_YET: &[&str] = &[
    "controller.quorum.bootstrap.servers",
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "zookeeper.connect",
];

/// The broker's settings, typed and validated.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// The listeners clients and other brokers use (the controller listener excluded).
    pub listeners: Vec<Listener>,
    /// Where this node serves the metadata quorum, if it is a voter in a multi-node quorum.
    pub controller_listener: Option<Listener>,
    pub cluster: ClusterConfig,
    pub advertised_listeners: Vec<Listener>,
    /// Every listener's protocol and TLS and SASL settings, by listener name.
    pub security: BTreeMap<String, ListenerSecurity>,
    /// How this broker connects to the inter-broker listener of others (follower
    /// fetches); `None` on a node without peers.
    pub inter_broker_client: Option<security::OutboundSecurity>,
    /// How this node connects to the controller listener of the quorum's voters; `None`
    /// on a node without peers.
    pub controller_client: Option<security::OutboundSecurity>,
    /// `connection.failed.authentication.delay.ms`: how long a failed authentication's
    /// answer is held back, against password guessing.
    pub failed_authentication_delay: std::time::Duration,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    /// `max.broker.partitions` (KIP-578's name): the most partition replicas one broker
    /// may hold; the active controller refuses creations past it.
    pub max_broker_partitions: usize,
    /// `auto.create.topics.max.per.request` (Strom): topics one request may auto-create.
    pub auto_create_topics_max_per_request: usize,
    /// `auto.create.topics.max.pending` (Strom): auto-creations queued at once.
    pub auto_create_topics_max_pending: usize,
    /// `auto.create.topics.max.pending.per.client` (Strom): of those, per client.
    pub auto_create_topics_max_pending_per_client: usize,
    pub delete_topic_enable: bool,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: i32,
    pub log_retention_check_interval_ms: u64,
    /// `log.max.open.files` (Strom's own): the bound on open segment files; `None` for the
    /// automatic default (see `log::handles::HandleCache::capacity_for`).
    pub log_max_open_files: Option<usize>,
    /// `log.cleaner.enable`: whether compacted topics are cleaned at all.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: the pause between cleaning passes.
    pub log_cleaner_backoff_ms: u64,
    pub admin_listener: SocketAddr,
    pub groups: GroupConfig,
    /// Connection limits and timeouts (`connections.max.idle.ms`, `max.connections`, ...).
    pub connections: ConnectionLimits,
    /// The effective default of every topic-level key, under its topic name.
    pub topic_defaults: BTreeMap<&'static str, String>,
    /// Every broker property Strom reads, defaults filled in, for DescribeConfigs.
    pub effective: Properties,
    /// The keys the operator set (file or --override), as opposed to defaults.
    pub explicit: std::collections::BTreeSet<String>,
    /// What the operator set, as given (older spellings such as `log.retention.hours`
    /// not folded), for DescribeConfigs' static synonyms.
    pub given: Properties,
    /// The ACL authorizer's settings when `authorizer.class.name` names one; `None` runs
    /// without authorization, as Kafka does by default.
    pub authorizer: Option<crate::auth::acl::AuthorizerConfig>,
}

/// Broker-level defaults Kafka ships with, except `log.dirs` (the embedded default keeps
/// data under `./data`) and `listeners` (localhost only until told otherwise).
const BROKER_DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "0"),
    ("listeners", "PLAINTEXT://localhost:9092"),
    ("log.dirs", "./data"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    // What the scale benchmark shows one broker holding (BENCHMARKS.md).
    ("max.broker.partitions", "100000"),
    // Strom's bounds on auto-creation (Kafka has none; its controller mutation quota
    // comes later): a Metadata request naming 100,000 unknown topics creates at most
    // this many, the rest are answered UNKNOWN_TOPIC_OR_PARTITION.
    ("auto.create.topics.max.per.request", "100"),
    ("auto.create.topics.max.pending", "1000"),
    // A quarter of the queue: at least four clients are served at once.
    ("auto.create.topics.max.pending.per.client", "250"),
    ("delete.topic.enable", "true"),
    ("message.max.bytes", "1048588"),
    ("socket.request.max.bytes", "104857600"),
    ("log.retention.check.interval.ms", "300000"),
    ("admin.listener", "127.0.0.1:9644"),
    ("log.cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("log.flush.interval.messages", "9223372036854775807"),
    ("log.flush.interval.ms", "9223372036854775807"),
    ("log.index.interval.bytes", "4096"),
    ("log.message.timestamp.type", "CreateTime"),
    ("min.insync.replicas", "1"),
    ("log.retention.bytes", "-1"),
    ("log.retention.ms", "604800000"),
    ("log.segment.bytes", "1073741824"),
    ("log.roll.ms", "604800000"),
    // Strom's own: segment files kept open at once by all partition logs together; -1 is
    // half the process's soft RLIMIT_NOFILE (at least 64), leaving the rest for sockets.
    ("log.max.open.files", "-1"),
    ("unclean.leader.election.enable", "false"),
    // Group coordinator and committed offsets.
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "2147483647"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.topic.segment.bytes", "104857600"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("offset.metadata.max.bytes", "4096"),
];

/// The group coordinator's settings (Kafka's `group.*` and `offsets.*` properties).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offsets_topic_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: i64,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
    pub offset_metadata_max_bytes: usize,
}

// --- Log cleaner (compaction) ------------------------------------------------------------

/// The log cleaner's properties, and the broker defaults of the topic-level compaction keys
/// (`delete.retention.ms`, `min.compaction.lag.ms`, `min.cleanable.dirty.ratio`), with
/// Kafka's defaults. Read exactly like `BROKER_DEFAULTS`.
const LOG_CLEANER_DEFAULTS: &[(&str, &str)] = &[
    ("log.cleaner.enable", "true"),
    ("log.cleaner.backoff.ms", "15000"),
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("log.cleaner.min.cleanable.ratio", "0.5"),
];

// ------------------------------------------------------------------------------------------

/// Kafka's older spellings, folded into the key Strom reads: (alias, key, multiplier to ms).
const ALIASES: &[(&str, &str, i64)] = &[
    ("broker.id", "node.id", 1),
    ("log.dir", "log.dirs", 1),
    ("log.retention.hours", "log.retention.ms", 3_600_000),
    ("log.retention.minutes", "log.retention.ms", 60_000),
    ("log.roll.hours", "log.roll.ms", 3_600_000),
];

/// The built-in default of a broker key Strom reads, if it has one.
pub fn builtin_default(key: &str) -> Option<&'static str> {
    BROKER_DEFAULTS
        .iter()
        .chain(LOG_CLEANER_DEFAULTS)
        .chain(cluster::CLUSTER_DEFAULTS)
        .chain(connections::CONNECTION_DEFAULTS)
        .chain(security::SECURITY_DEFAULTS)
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
}

impl BrokerConfig {
    /// Builds the config from raw properties. Returns the warnings to log (unknown keys)
    /// beside the config, so the caller logs them once tracing is up.
    pub fn from_properties(given: Properties) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let mut props: BTreeMap<String, String> = BROKER_DEFAULTS
            .iter()
            .chain(LOG_CLEANER_DEFAULTS)
            .chain(cluster::CLUSTER_DEFAULTS)
            .chain(connections::CONNECTION_DEFAULTS)
            .chain(security::SECURITY_DEFAULTS)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();

        // Aliases first, so an explicit modern key given alongside wins.
        for (alias, key, factor) in ALIASES {
            if let Some(v) = given.get(*alias) {
                let value = if *factor == 1 {
                    v.clone()
                } else {
                    let n: i64 = v
                        .trim()
                        .parse()
                        .map_err(|_| bad(alias, "not a whole number"))?;
                    n.saturating_mul(*factor).to_string()
                };
                props.insert(key.to_string(), value);
            }
        }
        for (k, v) in &given {
            if ALIASES.iter().any(|(a, _, _)| a == k) {
                continue;
            }
            let known = BROKER_DEFAULTS.iter().any(|(d, _)| d == k)
                || LOG_CLEANER_DEFAULTS.iter().any(|(d, _)| d == k)
                || cluster::CLUSTER_DEFAULTS.iter().any(|(d, _)| d == k)
                || connections::CONNECTION_DEFAULTS.iter().any(|(d, _)| d == k)
                || connections::is_listener_creation_rate_key(k)
                || cluster::CLUSTER_KEYS.contains(&k.as_str())
                || k == "advertised.listeners"
                || security::is_security_key(k)
                || dynamic::dynamic_kind(k).is_some()
                || authorizer::AUTHORIZER_KEYS.contains(&k.as_str());
            if known {
                props.insert(k.clone(), v.clone());
            } else if KNOWN_BUT_NOT_YET.contains(&k.as_str()) {
                warnings.push(format!("config '{k}' is not supported yet and is ignored"));
            } else {
                warnings.push(format!("unknown config '{k}' is ignored"));
            }
        }

        let get = |k: &str| props.get(k).map(String::as_str).unwrap_or("");
        let int = |k: &str, min: i64, max: i64| parse_int(k, get(k), min, max);
        let boolean = |k: &str| parse_bool(k, get(k));

        let all_listeners = Listener::parse_list("listeners", get("listeners"))?;
        let listener_names: Vec<String> = all_listeners.iter().map(|l| l.name.clone()).collect();
        let security = security::parse(&|k| props.get(k).cloned(), &all_listeners)?;
        let node_id = int("node.id", 0, i32::MAX as i64)? as i32;
        let cluster = cluster::parse(&|k| props.get(k).cloned(), node_id, &all_listeners)?;
        // How this node connects to others: only a node with peers does, so a single
        // embedded broker on an SSL listener needs no truststore for itself.
        let has_peers = cluster.voters.len() > 1 || !cluster.voters.contains_key(&node_id);
        let getter = |k: &str| props.get(k).cloned();
        let inter_broker_client = has_peers
            .then(|| {
                security::outbound(
                    &getter,
                    &cluster.inter_broker_listener,
                    Some(security::INTER_BROKER_MECHANISM_KEY),
                )
            })
            .transpose()?;
        let controller_client = match cluster.controller_listener_names.first() {
            Some(name) if has_peers => Some(security::outbound(&getter, name, None)?),
            _ => None,
        };
        let authorizer = authorizer::parse(&|k| props.get(k).cloned())?;
        let (controller_listeners, listeners): (Vec<Listener>, Vec<Listener>) = all_listeners
            .into_iter()
            .partition(|l| cluster.controller_listener_names.contains(&l.name));
        let controller_listener = controller_listeners
            .into_iter()
            .next()
            .filter(|_| cluster.voters.len() > 1 && cluster.voters.contains_key(&node_id));
        let advertised_listeners = match props.get("advertised.listeners") {
            Some(v) => {
                let adv = Listener::parse_list("advertised.listeners", v)?;
                for a in &adv {
                    if cluster.controller_listener_names.contains(&a.name) {
                        return Err(bad(
                            "advertised.listeners",
                            format!(
                                "controller listener {} cannot be advertised to clients",
                                a.name
                            ),
                        ));
                    }
                    if !listeners.iter().any(|l| l.name == a.name) {
                        return Err(bad(
                            "advertised.listeners",
                            format!("listener {} is not in listeners", a.name),
                        ));
                    }
                }
                adv
            }
            None => listeners.clone(),
        };
        let log_dirs: Vec<PathBuf> = get("log.dirs")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(bad("log.dirs", "no directory given"));
        }
        let admin_listener: SocketAddr = get("admin.listener").trim().parse().map_err(|_| {
            bad(
                "admin.listener",
                format!(
                    "'{}' is not HOST:PORT with a numeric host",
                    get("admin.listener")
                ),
            )
        })?;

        let mut topic_defaults = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            let key = def.broker.key();
            let value = key
                .and_then(|k| props.get(k))
                .cloned()
                .unwrap_or_else(|| def.default.to_string());
            def.validate(&value)
                .map_err(|why| bad(key.unwrap_or(def.name), why))?;
            topic_defaults.insert(def.name, value);
        }

        let config = BrokerConfig {
            node_id,
            listeners,
            controller_listener,
            cluster,
            advertised_listeners,
            security,
            inter_broker_client,
            controller_client,
            failed_authentication_delay: std::time::Duration::from_millis(int(
                "connection.failed.authentication.delay.ms",
                0,
                i32::MAX as i64,
            )? as u64),
            log_dirs,
            num_partitions: int("num.partitions", 1, 1_000_000)? as i32,
            default_replication_factor: int("default.replication.factor", 1, i16::MAX as i64)?
                as i16,
            auto_create_topics_enable: boolean("auto.create.topics.enable")?,
            max_broker_partitions: int("max.broker.partitions", 1, i32::MAX as i64)? as usize,
            auto_create_topics_max_per_request: int(
                "auto.create.topics.max.per.request",
                0,
                1_000_000,
            )? as usize,
            auto_create_topics_max_pending: int("auto.create.topics.max.pending", 1, 1_000_000)?
                as usize,
            auto_create_topics_max_pending_per_client: int(
                "auto.create.topics.max.pending.per.client",
                1,
                1_000_000,
            )? as usize,
            delete_topic_enable: boolean("delete.topic.enable")?,
            message_max_bytes: int("message.max.bytes", 0, i32::MAX as i64)? as i32,
            socket_request_max_bytes: int("socket.request.max.bytes", 1, i32::MAX as i64)? as i32,
            log_retention_check_interval_ms: int("log.retention.check.interval.ms", 1, i64::MAX)?
                as u64,
            log_max_open_files: match int("log.max.open.files", -1, i32::MAX as i64)? {
                -1 => None,
                0 => {
                    return Err(bad(
                        "log.max.open.files",
                        "0 would leave no file open; -1 picks the automatic default",
                    ))
                }
                n => Some(n as usize),
            },
            log_cleaner_enable: boolean("log.cleaner.enable")?,
            log_cleaner_backoff_ms: int("log.cleaner.backoff.ms", 1, i64::MAX)? as u64,
            admin_listener,
            groups: GroupConfig {
                initial_rebalance_delay_ms: int(
                    "group.initial.rebalance.delay.ms",
                    0,
                    i32::MAX as i64,
                )? as u64,
                min_session_timeout_ms: int("group.min.session.timeout.ms", 1, i32::MAX as i64)?
                    as i32,
                max_session_timeout_ms: int("group.max.session.timeout.ms", 1, i32::MAX as i64)?
                    as i32,
                max_size: int("group.max.size", 1, i32::MAX as i64)? as usize,
                offsets_topic_partitions: int("offsets.topic.num.partitions", 1, 10_000)? as i32,
                offsets_topic_replication_factor: int(
                    "offsets.topic.replication.factor",
                    1,
                    i16::MAX as i64,
                )? as i16,
                offsets_topic_segment_bytes: int(
                    "offsets.topic.segment.bytes",
                    1024,
                    i32::MAX as i64,
                )?,
                offsets_retention_ms: int("offsets.retention.minutes", 1, i32::MAX as i64)?
                    .saturating_mul(60_000),
                offsets_retention_check_interval_ms: int(
                    "offsets.retention.check.interval.ms",
                    1,
                    i64::MAX,
                )? as u64,
                offset_metadata_max_bytes: int("offset.metadata.max.bytes", 0, i32::MAX as i64)?
                    as usize,
            },
            connections: ConnectionLimits::parse(
                &|k| props.get(k).map(String::as_str),
                &listener_names,
            )?,
            topic_defaults,
            explicit: given
                .keys()
                .map(|k| {
                    ALIASES
                        .iter()
                        .find(|(a, _, _)| a == k)
                        .map(|(_, key, _)| key.to_string())
                        .unwrap_or_else(|| k.clone())
                })
                .collect(),
            effective: props,
            given: given.clone(),
            authorizer,
        };
        Ok((config, warnings))
    }

    /// The advertised endpoint for the listener a client connected through.
    pub fn advertised_for(&self, listener_name: &str) -> Option<&Listener> {
        self.advertised_listeners
            .iter()
            .find(|l| l.name == listener_name)
    }

    pub fn default_log_config(&self) -> LogConfig {
        LogConfig::resolve(&self.topic_defaults, &BTreeMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const PROTOCOL_MAP_KEY_FOR_TESTS: &str = security::PROTOCOL_MAP_KEY;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_default() {
        let (cfg, warnings) = BrokerConfig::from_properties(Properties::new()).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(cfg.listeners[0].port, 9092);
        assert_eq!(cfg.listeners[0].host, "localhost");
        assert_eq!(cfg.log_dirs, vec![PathBuf::from("./data")]);
        assert!(cfg.auto_create_topics_enable);
        assert_eq!(cfg.num_partitions, 1);
        assert_eq!(cfg.admin_listener.port(), 9644);
    }

    #[test]
    fn unknown_key_warns_and_bad_value_names_key() {
        let (_, warnings) =
            BrokerConfig::from_properties(props(&[("no.such.thing", "1")])).unwrap();
        assert!(warnings[0].contains("no.such.thing"));
        let err = BrokerConfig::from_properties(props(&[("num.partitions", "many")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("num.partitions"), "{err}");
        let err = BrokerConfig::from_properties(props(&[("log.segment.bytes", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.segment.bytes"), "{err}");
    }

    #[test]
    fn hours_alias_and_topic_defaults() {
        let (cfg, _) =
            BrokerConfig::from_properties(props(&[("log.retention.hours", "1")])).unwrap();
        assert_eq!(cfg.default_log_config().retention_ms, 3_600_000);
    }

    #[test]
    fn tls_for_clients_starts_and_secured_internal_listeners_are_checked() {
        let (config, warnings) = BrokerConfig::from_properties(props(&[
            ("listeners", "PLAINTEXT://:9092,SSL://:9093"),
            ("listener.name.ssl.ssl.keystore.location", "/tls/broker.pem"),
        ]))
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.security["SSL"].protocol, SecurityProtocol::Ssl);
        assert_eq!(
            config.security["PLAINTEXT"].protocol,
            SecurityProtocol::Plaintext
        );
        // A single node has no peers to connect to: an SSL-only broker needs no truststore.
        let (single, _) = BrokerConfig::from_properties(props(&[
            ("listeners", "SSL://:9093"),
            ("ssl.keystore.location", "/k.pem"),
        ]))
        .unwrap();
        assert!(single.inter_broker_client.is_none());

        let cluster = [
            ("node.id", "0"),
            (
                "controller.quorum.voters",
                "0@localhost:9094,1@localhost:9194,2@localhost:9294",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("ssl.keystore.location", "/k.pem"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut p = cluster.to_vec();
            p.extend_from_slice(extra);
            BrokerConfig::from_properties(props(&p))
        };
        let err = with(&[
            ("listeners", "SSL://:9093,CONTROLLER://:9094"),
            (PROTOCOL_MAP_KEY_FOR_TESTS, "SSL:SSL,CONTROLLER:PLAINTEXT"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs a truststore"), "{err}");
        let err = with(&[
            ("listeners", "PLAINTEXT://:9093,CONTROLLER://:9094"),
            (
                PROTOCOL_MAP_KEY_FOR_TESTS,
                "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            ),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("not SASL"), "{err}");
        let (secured, _) = with(&[
            ("listeners", "SSL://:9093,CONTROLLER://:9094"),
            (PROTOCOL_MAP_KEY_FOR_TESTS, "SSL:SSL,CONTROLLER:SSL"),
            ("ssl.truststore.location", "/ca.pem"),
            ("ssl.client.auth", "required"),
        ])
        .unwrap();
        let inter = secured.inter_broker_client.unwrap();
        assert_eq!(inter.listener, "SSL");
        assert!(inter.tls.unwrap().identity.is_some());
        assert_eq!(
            secured.controller_client.unwrap().protocol,
            SecurityProtocol::Ssl
        );
        // security.inter.broker.protocol picks the listener named after the protocol.
        let (by_protocol, _) = with(&[
            (
                "listeners",
                "PLAINTEXT://:9092,SSL://:9093,CONTROLLER://:9094",
            ),
            ("security.inter.broker.protocol", "SSL"),
            ("ssl.truststore.location", "/ca.pem"),
        ])
        .unwrap();
        assert_eq!(by_protocol.cluster.inter_broker_listener, "SSL");
    }
}
