//! Each broker's server.properties, and the hash of what needs a restart.
//!
//! The ConfigMap holds one file per broker; pod-init copies the pod's own file into place
//! (substituting `${STROM_NODE_IP}` and adding `broker.rack`). The pod template carries
//! `config_hash`, which the rolling-restart controller compares per pod: it covers every
//! line all brokers share, so a change restarts them one by one, while the lines that only
//! say which broker this is (node id, own address) stay out of it.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::cluster::validate::{config_int, overridden_config_keys, MANAGED_KEYS};
use crate::cluster::{names, security};
use crate::crd::cluster::{KafkaCluster, KafkaClusterSpec, ListenerSpec, ListenerType};

/// Everything per cluster that depends on observed state (external addresses of
/// nodeport/loadbalancer listeners).
#[derive(Default, Clone, Debug)]
pub struct ExternalAddresses {
    /// (listener name as in the spec, broker ordinal) to (host, port) clients should use.
    pub by_broker: BTreeMap<(String, i32), (String, i32)>,
}

impl ExternalAddresses {
    fn get(&self, listener: &str, ordinal: i32) -> Option<&(String, i32)> {
        self.by_broker.get(&(listener.to_string(), ordinal))
    }
}

/// Whose properties are rendered.
#[derive(Clone, Copy)]
enum Identity<'a> {
    /// A real broker, with the cluster's observed external addresses.
    Broker {
        ordinal: i32,
        external: &'a ExternalAddresses,
    },
    /// Any broker, for `config_hash`: a controller voter (so the controller listener is
    /// covered) whose id and own addresses are fixed tokens, so only shared lines vary.
    Placeholder,
}

/// Host of the placeholder identity; never written to a file.
const PLACEHOLDER_HOST: &str = "<broker>";

/// One broker's server.properties, as the ConfigMap carries it.
pub fn broker_properties(
    cluster: &KafkaCluster,
    ordinal: i32,
    external: &ExternalAddresses,
) -> String {
    let header = format!(
        "# Managed by strom-operator for KafkaCluster {}/{}. Edit the KafkaCluster, not this file.\n",
        names::namespace(cluster),
        names::cluster_name(cluster)
    );
    header + &render(&properties(cluster, Identity::Broker { ordinal, external }))
}

/// Hex digest (16 characters) of the configuration that needs a broker restart. It does
/// not change when brokers are added beyond the controller voters, since every shared
/// line (voters, replication defaults) is independent of that; it changes with the user
/// config, the listeners, the voter set, and any external address a broker advertises.
pub fn config_hash(cluster: &KafkaCluster, external: &ExternalAddresses) -> String {
    let mut hasher = Sha256::new();
    hasher.update(render(&properties(cluster, Identity::Placeholder)));
    for line in external_address_lines(cluster, external) {
        hasher.update(line);
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hash (16 hex characters) of one broker's rendered `broker-<i>.properties`. Everything in
/// the file counts, dynamic keys included: the roller decides per change whether a
/// restart is needed or IncrementalAlterConfigs suffices, so the hash only has to say
/// "this broker's file changed".
pub fn properties_hash(properties: &str) -> String {
    Sha256::digest(properties.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The per-broker hashes for the pod template's `BROKER_HASHES_ANNOTATION`, by ordinal.
pub fn broker_hashes(
    cluster: &KafkaCluster,
    external: &ExternalAddresses,
) -> BTreeMap<i32, String> {
    (0..cluster.spec.replicas.max(0))
        .map(|i| (i, properties_hash(&broker_properties(cluster, i, external))))
        .collect()
}

/// The map as the annotation carries it: JSON with the ordinals as string keys.
pub fn encode_broker_hashes(hashes: &BTreeMap<i32, String>) -> String {
    let map: BTreeMap<String, &String> = hashes.iter().map(|(i, h)| (i.to_string(), h)).collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// Reads the annotation back; `None` for anything that is not such a map (a pod created
/// before the annotation existed, or a hand-edited value), which the roller treats as
/// "unknown" rather than guessing.
pub fn decode_broker_hashes(text: &str) -> Option<BTreeMap<i32, String>> {
    let map: BTreeMap<String, String> = serde_json::from_str(text).ok()?;
    map.into_iter()
        .map(|(k, v)| k.parse().ok().map(|i| (i, v)))
        .collect()
}

/// The key/value pairs of a properties file the operator rendered (comments skipped, the
/// escapes `escape` writes undone). Not a general Java properties reader: it only has to
/// read back what `render` writes, to diff two versions of a broker's file.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let split = separator_index(line)?;
            Some((unescape(&line[..split]), unescape(&line[split + 1..])))
        })
        .collect()
}

/// Index of the first `=` that is not escaped.
fn separator_index(line: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '=' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    let mut pending_high: Option<u16> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let Ok(unit) = u16::from_str_radix(&hex, 16) else {
                    continue;
                };
                match pending_high.take() {
                    Some(high) => out.extend(char::decode_utf16([high, unit]).flatten()),
                    None if (0xd800..0xdc00).contains(&unit) => pending_high = Some(unit),
                    None => out.extend(char::decode_utf16([unit]).flatten()),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The external addresses brokers advertise, one line each. Only entries a broker's
/// properties actually use count, so stale entries (a removed listener or broker) do not.
fn external_address_lines(cluster: &KafkaCluster, external: &ExternalAddresses) -> Vec<String> {
    let mut lines = Vec::new();
    for listener in external_listeners(&cluster.spec) {
        for ordinal in 0..cluster.spec.replicas {
            if let Some((host, port)) = external.get(&listener.name, ordinal) {
                lines.push(format!(
                    "external {} {ordinal} {host}:{port}\n",
                    listener.name
                ));
            }
        }
    }
    lines
}

fn external_listeners(spec: &KafkaClusterSpec) -> Vec<ListenerSpec> {
    spec.effective_listeners()
        .into_iter()
        .filter(|l| l.kind != ListenerType::Internal)
        .collect()
}

/// All properties, keys in a fixed order: the operator's own, then the user's sorted.
fn properties(cluster: &KafkaCluster, identity: Identity) -> Vec<(String, String)> {
    let spec = &cluster.spec;
    let listeners = spec.effective_listeners();
    let voter = is_voter(spec, identity);
    let mut props = vec![
        prop("node.id", node_id(identity)),
        prop(
            "process.roles",
            if voter { "broker,controller" } else { "broker" },
        ),
        prop("listeners", listeners_value(&listeners, voter)),
        prop(
            "advertised.listeners",
            advertised_value(cluster, &listeners, identity),
        ),
        prop(
            "listener.security.protocol.map",
            protocol_map(spec, &listeners),
        ),
        prop("inter.broker.listener.name", names::REPLICATION_LISTENER),
        prop("controller.listener.names", names::CONTROLLER_LISTENER),
        prop("controller.quorum.voters", quorum_voters(cluster)),
        prop("log.dirs", format!("{}/data", names::DATA_DIR)),
        prop("admin.listener", format!("0.0.0.0:{}", names::ADMIN_PORT)),
    ];
    props.extend(security::properties(
        spec,
        &names::cluster_name(cluster),
        &node_id(identity),
    ));
    props.extend(replication_defaults(spec));
    props.extend(user_config(spec));
    props
}

fn prop(key: &str, value: impl Into<String>) -> (String, String) {
    (key.to_string(), value.into())
}

/// The first `MAX_VOTERS` brokers (fewer in a smaller cluster) form the KRaft quorum.
fn voter_count(spec: &KafkaClusterSpec) -> i32 {
    spec.replicas.clamp(0, names::MAX_VOTERS)
}

fn is_voter(spec: &KafkaClusterSpec, identity: Identity) -> bool {
    match identity {
        Identity::Broker { ordinal, .. } => ordinal < voter_count(spec),
        Identity::Placeholder => true,
    }
}

fn node_id(identity: Identity) -> String {
    match identity {
        Identity::Broker { ordinal, .. } => ordinal.to_string(),
        Identity::Placeholder => "<ordinal>".into(),
    }
}

/// Kafka sees listener names upper-cased.
fn kafka_name(listener: &ListenerSpec) -> String {
    listener.name.to_ascii_uppercase()
}

fn listeners_value(listeners: &[ListenerSpec], voter: bool) -> String {
    let mut entries = vec![format!(
        "{}://:{}",
        names::REPLICATION_LISTENER,
        names::REPLICATION_PORT
    )];
    entries.extend(
        listeners
            .iter()
            .map(|l| format!("{}://:{}", kafka_name(l), l.port)),
    );
    if voter {
        entries.push(format!(
            "{}://:{}",
            names::CONTROLLER_LISTENER,
            names::CONTROLLER_PORT
        ));
    }
    entries.join(",")
}

/// Every listener but CONTROLLER, which Kafka forbids advertising.
fn advertised_value(
    cluster: &KafkaCluster,
    listeners: &[ListenerSpec],
    identity: Identity,
) -> String {
    let own_host = own_host(cluster, identity);
    let mut entries = vec![format!(
        "{}://{}",
        names::REPLICATION_LISTENER,
        host_port(&own_host, names::REPLICATION_PORT)
    )];
    for listener in listeners {
        let (host, port) = advertised_address(listener, &own_host, identity);
        entries.push(format!(
            "{}://{}",
            kafka_name(listener),
            host_port(&host, port)
        ));
    }
    entries.join(",")
}

fn own_host(cluster: &KafkaCluster, identity: Identity) -> String {
    match identity {
        Identity::Broker { ordinal, .. } => names::pod_dns(
            &names::cluster_name(cluster),
            &names::namespace(cluster),
            ordinal,
        ),
        Identity::Placeholder => PLACEHOLDER_HOST.into(),
    }
}

/// Nodeport and loadbalancer listeners advertise their observed external address; until
/// it is known (the reconciler waits for it before declaring Ready) the pod's DNS name.
fn advertised_address(
    listener: &ListenerSpec,
    own_host: &str,
    identity: Identity,
) -> (String, i32) {
    let fallback = (own_host.to_string(), listener.port);
    match identity {
        Identity::Broker { ordinal, external } if listener.kind != ListenerType::Internal => {
            external
                .get(&listener.name, ordinal)
                .cloned()
                .unwrap_or(fallback)
        }
        _ => fallback,
    }
}

/// `host:port`, with an IPv6 literal bracketed.
fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn protocol_map(spec: &KafkaClusterSpec, listeners: &[ListenerSpec]) -> String {
    let internal = security::internal_protocol(spec);
    let mut entries = vec![format!("{}:{internal}", names::REPLICATION_LISTENER)];
    entries.extend(
        listeners
            .iter()
            .map(|l| format!("{}:{}", kafka_name(l), security::security_protocol(l))),
    );
    entries.push(format!("{}:{internal}", names::CONTROLLER_LISTENER));
    entries.join(",")
}

fn quorum_voters(cluster: &KafkaCluster) -> String {
    let name = names::cluster_name(cluster);
    let namespace = names::namespace(cluster);
    (0..voter_count(&cluster.spec))
        .map(|i| {
            format!(
                "{i}@{}",
                host_port(
                    &names::pod_dns(&name, &namespace, i),
                    names::CONTROLLER_PORT
                )
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The spec's replication fields, and internal-topic replication sized to the cluster:
/// Kafka's default of 3 would leave a smaller cluster unable to create them.
fn replication_defaults(spec: &KafkaClusterSpec) -> Vec<(String, String)> {
    let mut props = Vec::new();
    if let Some(rf) = spec.default_replication_factor {
        props.push(prop("default.replication.factor", rf.to_string()));
    }
    if let Some(min_isr) = spec.min_insync_replicas {
        props.push(prop("min.insync.replicas", min_isr.to_string()));
    }
    let internal_rf = i64::from(spec.replicas.clamp(1, 3));
    let unless_set = |key: &str, value: i64, props: &mut Vec<(String, String)>| {
        if !spec.config.contains_key(key) {
            props.push(prop(key, value.to_string()));
        }
    };
    unless_set("offsets.topic.replication.factor", internal_rf, &mut props);
    unless_set(
        "transaction.state.log.replication.factor",
        internal_rf,
        &mut props,
    );
    let txn_rf =
        config_int(&spec.config, "transaction.state.log.replication.factor").unwrap_or(internal_rf);
    unless_set(
        "transaction.state.log.min.isr",
        txn_rf.clamp(1, 2),
        &mut props,
    );
    props
}

/// The user's config, sorted, without the keys the operator manages or the spec replaces.
/// Non-scalar values are skipped: validate() refuses them before anything is rendered.
fn user_config(spec: &KafkaClusterSpec) -> Vec<(String, String)> {
    spec.config
        .iter()
        .filter(|(k, _)| !is_managed(spec, k))
        .filter_map(|(k, v)| scalar(v).map(|v| (k.clone(), v)))
        .collect()
}

/// Whether the operator writes `key` itself for this spec, so a user value is ignored.
pub(crate) fn is_managed(spec: &KafkaClusterSpec, key: &str) -> bool {
    MANAGED_KEYS.contains(&key)
        || overridden_config_keys(spec).contains(&key)
        || security::managed_keys(spec).contains(&key)
        || (security::is_secured(spec) && security::is_internal_listener_key(key))
}

pub(crate) fn scalar(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn render(props: &[(String, String)]) -> String {
    props
        .iter()
        .map(|(k, v)| format!("{}={}\n", escape(k, true), escape(v, false)))
        .collect()
}

/// Java properties escaping. strom-broker reads the file as Latin-1, so anything outside
/// printable ASCII is written as `\uXXXX`. In keys the separators (`=`, `:`, space) and
/// comment starters are escaped; in values only a leading space needs it.
fn escape(text: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0c' => out.push_str("\\f"),
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            '=' | ':' | '#' | '!' if is_key => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::fixtures::cluster;

    fn get(props: &str, key: &str) -> Option<String> {
        props
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
    }

    fn dns(i: i32) -> String {
        format!("my-cluster-broker-{i}.my-cluster-brokers.kafka.svc")
    }

    fn none() -> ExternalAddresses {
        ExternalAddresses::default()
    }

    #[test]
    fn header_names_the_cluster() {
        let props = broker_properties(&cluster(json!({"replicas": 1})), 0, &none());
        assert!(props.starts_with(
            "# Managed by strom-operator for KafkaCluster kafka/my-cluster. \
             Edit the KafkaCluster, not this file.\n"
        ));
    }

    #[test]
    fn voters_for_one_and_five_brokers() {
        let one = broker_properties(&cluster(json!({"replicas": 1})), 0, &none());
        assert_eq!(
            get(&one, "controller.quorum.voters").as_deref(),
            Some(format!("0@{}:9093", dns(0)).as_str())
        );
        let five = cluster(json!({"replicas": 5}));
        let expected = format!("0@{}:9093,1@{}:9093,2@{}:9093", dns(0), dns(1), dns(2));
        for i in 0..5 {
            let props = broker_properties(&five, i, &none());
            assert_eq!(
                get(&props, "controller.quorum.voters"),
                Some(expected.clone())
            );
            assert_eq!(get(&props, "node.id"), Some(i.to_string()));
        }
    }

    #[test]
    fn process_roles_and_controller_listener_only_on_voters() {
        let five = cluster(json!({"replicas": 5}));
        for i in 0..5 {
            let props = broker_properties(&five, i, &none());
            let listeners = get(&props, "listeners").expect("listeners");
            if i < 3 {
                assert_eq!(
                    get(&props, "process.roles").as_deref(),
                    Some("broker,controller")
                );
                assert_eq!(
                    listeners,
                    "REPLICATION://:9091,PLAIN://:9092,CONTROLLER://:9093"
                );
            } else {
                assert_eq!(get(&props, "process.roles").as_deref(), Some("broker"));
                assert_eq!(listeners, "REPLICATION://:9091,PLAIN://:9092");
            }
            assert!(!get(&props, "advertised.listeners")
                .expect("advertised")
                .contains("CONTROLLER"));
        }
    }

    #[test]
    fn advertised_listeners_with_an_external_address() {
        let c = cluster(json!({"replicas": 3, "listeners": [
            {"name": "plain", "port": 9092},
            {"name": "ext", "port": 9094, "type": "nodeport"},
            {"name": "lb", "port": 9095, "type": "loadbalancer"},
        ]}));
        let mut external = none();
        external
            .by_broker
            .insert(("ext".into(), 1), ("${STROM_NODE_IP}".into(), 31001));
        external
            .by_broker
            .insert(("lb".into(), 1), ("2001:db8::1".into(), 9095));
        let props = broker_properties(&c, 1, &external);
        assert_eq!(
            get(&props, "advertised.listeners"),
            Some(format!(
                "REPLICATION://{0}:9091,PLAIN://{0}:9092,EXT://${{STROM_NODE_IP}}:31001,\
                 LB://[2001:db8::1]:9095",
                dns(1)
            ))
        );
        // Broker 0 has no observed address yet: its pod DNS name stands in.
        let props = broker_properties(&c, 0, &external);
        assert!(get(&props, "advertised.listeners")
            .expect("advertised")
            .contains(&format!("EXT://{}:9094", dns(0))));
        assert_eq!(
            get(&props, "listener.security.protocol.map").as_deref(),
            Some("REPLICATION:PLAINTEXT,PLAIN:PLAINTEXT,EXT:PLAINTEXT,LB:PLAINTEXT,CONTROLLER:PLAINTEXT")
        );
    }

    #[test]
    fn fixed_operator_lines() {
        let props = broker_properties(&cluster(json!({"replicas": 1})), 0, &none());
        assert_eq!(
            get(&props, "inter.broker.listener.name").as_deref(),
            Some("REPLICATION")
        );
        assert_eq!(
            get(&props, "controller.listener.names").as_deref(),
            Some("CONTROLLER")
        );
        assert_eq!(
            get(&props, "log.dirs").as_deref(),
            Some("/var/lib/strom/data")
        );
        assert_eq!(
            get(&props, "admin.listener").as_deref(),
            Some("0.0.0.0:9644")
        );
        assert_eq!(
            get(&props, "offsets.topic.replication.factor").as_deref(),
            Some("1")
        );
        assert_eq!(
            get(&props, "transaction.state.log.min.isr").as_deref(),
            Some("1")
        );
        assert_eq!(get(&props, "default.replication.factor"), None);
    }

    #[test]
    fn replication_settings() {
        let c = cluster(json!({"replicas": 5, "defaultReplicationFactor": 3,
            "minInsyncReplicas": 2,
            "config": {"transaction.state.log.replication.factor": 1,
                       "default.replication.factor": 1}}));
        let props = broker_properties(&c, 0, &none());
        assert_eq!(
            get(&props, "default.replication.factor").as_deref(),
            Some("3")
        );
        assert_eq!(props.matches("default.replication.factor=").count(), 1);
        assert_eq!(get(&props, "min.insync.replicas").as_deref(), Some("2"));
        assert_eq!(
            get(&props, "offsets.topic.replication.factor").as_deref(),
            Some("3")
        );
        assert_eq!(
            get(&props, "transaction.state.log.replication.factor").as_deref(),
            Some("1")
        );
        assert_eq!(
            props
                .matches("transaction.state.log.replication.factor=")
                .count(),
            1
        );
        assert_eq!(
            get(&props, "transaction.state.log.min.isr").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn user_config_sorted_and_managed_keys_dropped() {
        let c = cluster(json!({"replicas": 1, "config": {
            "z.last": "z", "log.retention.ms": 1000, "auto.create.topics.enable": false,
            "node.id": 7, "log.dirs": "/tmp", "broker.rack": "a",
        }}));
        let props = broker_properties(&c, 0, &none());
        let tail: Vec<&str> = props.lines().rev().take(3).collect();
        assert_eq!(
            tail,
            vec![
                "z.last=z",
                "log.retention.ms=1000",
                "auto.create.topics.enable=false"
            ]
        );
        assert_eq!(get(&props, "node.id").as_deref(), Some("0"));
        assert_eq!(props.matches("node.id=").count(), 1);
        assert_eq!(props.matches("log.dirs=").count(), 1);
        assert!(!props.contains("broker.rack"));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a=b:c d", true), "a\\=b\\:c\\ d");
        assert_eq!(escape(" lead", false), "\\ lead");
        assert_eq!(escape("a b=c:d", false), "a b=c:d");
        assert_eq!(escape("back\\slash\nline", false), "back\\\\slash\\nline");
        assert_eq!(escape("caf\u{e9}", false), "caf\\u00e9");
        let c = cluster(json!({"replicas": 1, "config": {"weird key": " x\ny"}}));
        let props = broker_properties(&c, 0, &none());
        assert!(props.lines().any(|l| l == "weird\\ key=\\ x\\ny"));
    }

    #[test]
    fn per_broker_hashes_change_only_for_the_broker_whose_file_changed() {
        let base = json!({"replicas": 3, "listeners": [
            {"name": "ext", "port": 9094, "type": "nodeport"}]});
        let mut external = none();
        external
            .by_broker
            .insert(("ext".into(), 1), ("10.0.0.1".into(), 31001));
        let before = broker_hashes(&cluster(base.clone()), &external);
        assert_eq!(before.len(), 3);
        external
            .by_broker
            .insert(("ext".into(), 1), ("10.0.0.2".into(), 31001));
        let after = broker_hashes(&cluster(base), &external);
        assert_eq!(before[&0], after[&0]);
        assert_ne!(before[&1], after[&1], "broker 1 advertises a new address");
        assert_eq!(before[&2], after[&2]);
    }

    #[test]
    fn broker_hashes_round_trip_through_the_annotation() {
        let hashes = broker_hashes(&cluster(json!({"replicas": 2})), &none());
        let text = encode_broker_hashes(&hashes);
        assert!(text.starts_with("{\"0\":\""), "{text}");
        assert_eq!(decode_broker_hashes(&text), Some(hashes));
        assert_eq!(decode_broker_hashes("abc"), None);
        assert_eq!(decode_broker_hashes("{\"x\":\"1\"}"), None);
    }

    #[test]
    fn parse_reads_back_what_render_writes() {
        let c = cluster(json!({"replicas": 1, "config": {
            "weird key": " x\ny", "caf\u{e9}.x": "\u{1F600}=:", "log.retention.ms": 5}}));
        let props = parse_properties(&broker_properties(&c, 0, &none()));
        assert_eq!(props["weird key"], " x\ny");
        assert_eq!(props["caf\u{e9}.x"], "\u{1F600}=:");
        assert_eq!(props["log.retention.ms"], "5");
        assert_eq!(props["node.id"], "0");
        assert!(!props.keys().any(|k| k.starts_with('#')));
    }

    #[test]
    fn hash_is_stable_and_short() {
        let c = cluster(json!({"replicas": 3}));
        assert_eq!(config_hash(&c, &none()), config_hash(&c.clone(), &none()));
        assert_eq!(config_hash(&c, &none()).len(), 16);
    }

    #[test]
    fn hash_ignores_brokers_beyond_the_voters() {
        let three = cluster(json!({"replicas": 3, "config": {"a": 1}}));
        let five = cluster(json!({"replicas": 5, "config": {"a": 1}}));
        assert_eq!(config_hash(&three, &none()), config_hash(&five, &none()));
    }

    #[test]
    fn hash_changes_with_what_needs_a_restart() {
        let base = json!({"replicas": 3, "config": {"a": 1},
            "listeners": [{"name": "ext", "port": 9094, "type": "nodeport"}]});
        let mut external = none();
        external
            .by_broker
            .insert(("ext".into(), 0), ("10.0.0.1".into(), 31000));
        let hash =
            |spec: serde_json::Value, ext: &ExternalAddresses| config_hash(&cluster(spec), ext);
        let before = hash(base.clone(), &external);

        let mut changed = base.clone();
        changed["config"]["a"] = json!(2);
        assert_ne!(before, hash(changed, &external), "user config");

        let mut changed = base.clone();
        changed["listeners"][0]["port"] = json!(9095);
        assert_ne!(before, hash(changed, &external), "listener port");

        let mut changed = base.clone();
        changed["defaultReplicationFactor"] = json!(2);
        assert_ne!(before, hash(changed, &external), "defaults");

        let mut one = base.clone();
        one["replicas"] = json!(1);
        assert_ne!(hash(one, &external), before, "voters 1 -> 3");

        let mut moved = external.clone();
        moved
            .by_broker
            .insert(("ext".into(), 0), ("10.0.0.2".into(), 31000));
        assert_ne!(before, hash(base.clone(), &moved), "external address");
        assert_ne!(before, hash(base.clone(), &none()), "address became known");

        // Entries no broker uses (a removed broker or listener) do not count.
        let mut stale = external.clone();
        stale
            .by_broker
            .insert(("ext".into(), 7), ("10.0.0.9".into(), 31007));
        stale
            .by_broker
            .insert(("gone".into(), 0), ("10.0.0.9".into(), 31008));
        assert_eq!(before, hash(base, &stale));
    }
}
