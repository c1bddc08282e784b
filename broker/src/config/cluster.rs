//! How this broker takes part in a cluster: its roles, the controller quorum, the
//! listeners brokers and controllers talk through, its rack, and the replication and
//! liveness timings — all under Kafka's property names and defaults.

use std::collections::BTreeMap;

use super::{bad, parse_bool, parse_int, ConfigError, Listener};

/// Kafka's defaults for the cluster keys Strom reads.
pub(super) const CLUSTER_DEFAULTS: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "30000"),
    ("replica.fetch.wait.max.ms", "500"),
    ("replica.fetch.min.bytes", "1"),
    ("replica.fetch.max.bytes", "1048576"),
    ("replica.fetch.response.max.bytes", "10485760"),
    ("replica.fetch.backoff.ms", "1000"),
    ("replica.socket.timeout.ms", "30000"),
    ("broker.heartbeat.interval.ms", "2000"),
    ("broker.session.timeout.ms", "9000"),
    ("auto.leader.rebalance.enable", "true"),
    ("leader.imbalance.check.interval.seconds", "300"),
    ("leader.imbalance.per.broker.percentage", "10"),
    ("leader.replication.throttled.rate", "9223372036854775807"),
    ("follower.replication.throttled.rate", "9223372036854775807"),
    ("controlled.shutdown.enable", "true"),
    ("controller.quorum.election.timeout.ms", "1000"),
    ("controller.quorum.fetch.timeout.ms", "2000"),
    ("controller.quorum.request.timeout.ms", "2000"),
];

/// Keys read here that have no fixed default (absent means "derive it").
pub(super) const CLUSTER_KEYS: &[&str] = &[
    "process.roles",
    "controller.quorum.voters",
    "controller.listener.names",
    "inter.broker.listener.name",
    "security.inter.broker.protocol",
    "broker.rack",
];

/// One entry of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// `process.roles` includes `controller`: this node votes in the metadata quorum.
    pub controller: bool,
    /// The voters; a single-node cluster lists only itself.
    pub voters: BTreeMap<i32, Voter>,
    /// Listener names reserved for the quorum; clients are never served on them.
    pub controller_listener_names: Vec<String>,
    /// The listener followers fetch through and other brokers' endpoints are looked up by.
    pub inter_broker_listener: String,
    pub rack: Option<String>,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_backoff_ms: u64,
    pub replica_socket_timeout_ms: u64,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_ms: u64,
    pub leader_imbalance_per_broker_percentage: i32,
    /// Bytes per second a leader sends to replicas being added by a reassignment.
    pub leader_replication_throttled_rate: i64,
    /// Bytes per second a follower fetches for replicas being added by a reassignment.
    pub follower_replication_throttled_rate: i64,
    pub controlled_shutdown_enable: bool,
    pub election_timeout_ms: u64,
    pub quorum_fetch_timeout_ms: u64,
    pub quorum_request_timeout_ms: u64,
}

fn parse_voters(value: &str) -> Result<BTreeMap<i32, Voter>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut voters = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| bad(key, format!("'{item}' is not id@host:port")))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad(key, format!("'{id}' in '{item}' is not a node id")))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad(key, format!("'{item}' has no port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(key, format!("'{port}' in '{item}' is not a port number")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad(key, format!("'{item}' has no host")));
        }
        let voter = Voter {
            id,
            host: host.to_string(),
            port,
        };
        if voters.insert(id, voter).is_some() {
            return Err(bad(key, format!("node {id} is listed twice")));
        }
    }
    Ok(voters)
}

/// Reads the cluster keys. `listeners` are all the node's listeners, controller ones
/// included; the caller drops the controller listeners from what it serves to clients.
pub(super) fn parse(
    get: &dyn Fn(&str) -> Option<String>,
    node_id: i32,
    listeners: &[Listener],
) -> Result<ClusterConfig, ConfigError> {
    let text = |k: &str| get(k).unwrap_or_default();
    let int = |k: &str, min: i64, max: i64| parse_int(k, &text(k), min, max);
    let boolean = |k: &str| parse_bool(k, &text(k));

    let mut voters = parse_voters(&text("controller.quorum.voters"))?;
    let roles: Vec<String> = match get("process.roles") {
        Some(r) => r
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
        None => vec!["broker".into(), "controller".into()],
    };
    for r in &roles {
        if r != "broker" && r != "controller" {
            return Err(bad(
                "process.roles",
                format!("'{r}' is not a role (broker, controller)"),
            ));
        }
    }
    if !roles.iter().any(|r| r == "broker") {
        return Err(bad(
            "process.roles",
            "controller-only nodes are not supported yet; use broker,controller",
        ));
    }
    let controller = roles.iter().any(|r| r == "controller");

    let controller_listener_names: Vec<String> = match get("controller.listener.names") {
        Some(v) => v
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect(),
        None if voters.len() > 1 || listeners.iter().any(|l| l.name == "CONTROLLER") => {
            vec!["CONTROLLER".to_string()]
        }
        None => Vec::new(),
    };

    if voters.is_empty() {
        if !controller {
            return Err(bad(
                "controller.quorum.voters",
                "a broker-only node needs the controller quorum's voters",
            ));
        }
        // The embedded default: a one-node cluster is its own quorum and needs no network.
        let port = listeners
            .iter()
            .find(|l| controller_listener_names.contains(&l.name))
            .map(|l| l.port)
            .unwrap_or(0);
        voters.insert(
            node_id,
            Voter {
                id: node_id,
                host: "localhost".into(),
                port,
            },
        );
    }
    let is_voter = voters.contains_key(&node_id);
    if controller && !is_voter {
        return Err(bad(
            "controller.quorum.voters",
            format!("process.roles includes controller but node {node_id} is not a voter"),
        ));
    }
    if is_voter && !controller {
        return Err(bad(
            "process.roles",
            format!("node {node_id} is in controller.quorum.voters, so its roles must include controller"),
        ));
    }
    if is_voter && voters.len() > 1 {
        let Some(l) = listeners
            .iter()
            .find(|l| controller_listener_names.contains(&l.name))
        else {
            return Err(bad(
                "listeners",
                format!(
                    "node {node_id} votes in a {}-node quorum but has no controller listener ({})",
                    voters.len(),
                    controller_listener_names.join(",")
                ),
            ));
        };
        if let Some(me) = voters.get(&node_id) {
            if me.port != l.port {
                return Err(bad(
                    "controller.quorum.voters",
                    format!(
                        "node {node_id} is listed on port {} but its {} listener is on port {}",
                        me.port, l.name, l.port
                    ),
                ));
            }
        }
    }

    let client_listeners: Vec<&Listener> = listeners
        .iter()
        .filter(|l| !controller_listener_names.contains(&l.name))
        .collect();
    if client_listeners.is_empty() {
        return Err(bad("listeners", "no listener left for clients and brokers"));
    }
    // Kafka: `security.inter.broker.protocol` picks the listener named after the
    // protocol; the two keys exclude each other.
    let by_protocol = get("security.inter.broker.protocol")
        .map(|p| p.trim().to_ascii_uppercase())
        .filter(|p| !p.is_empty());
    let by_name = get("inter.broker.listener.name").filter(|n| !n.trim().is_empty());
    if by_protocol.is_some() && by_name.is_some() {
        return Err(bad(
            "security.inter.broker.protocol",
            "only one of inter.broker.listener.name and security.inter.broker.protocol may be set",
        ));
    }
    let inter_broker_listener = match by_name.or(by_protocol) {
        Some(n) => {
            let n = n.trim().to_ascii_uppercase();
            if !client_listeners.iter().any(|l| l.name == n) {
                return Err(bad(
                    "inter.broker.listener.name",
                    format!("{n} is not a (non-controller) listener"),
                ));
            }
            n
        }
        None => client_listeners
            .iter()
            .find(|l| l.name == "PLAINTEXT")
            .unwrap_or(&client_listeners[0])
            .name
            .clone(),
    };
    let rack = get("broker.rack")
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());

    let session = int("broker.session.timeout.ms", 100, i32::MAX as i64)? as u64;
    let heartbeat = int("broker.heartbeat.interval.ms", 10, i32::MAX as i64)? as u64;
    if heartbeat >= session {
        return Err(bad(
            "broker.heartbeat.interval.ms",
            format!("{heartbeat} must be below broker.session.timeout.ms ({session})"),
        ));
    }
    Ok(ClusterConfig {
        controller,
        voters,
        controller_listener_names,
        inter_broker_listener,
        rack,
        replica_lag_time_max_ms: int("replica.lag.time.max.ms", 1, i32::MAX as i64)? as u64,
        replica_fetch_wait_max_ms: int("replica.fetch.wait.max.ms", 0, i32::MAX as i64)? as i32,
        replica_fetch_min_bytes: int("replica.fetch.min.bytes", 1, i32::MAX as i64)? as i32,
        replica_fetch_max_bytes: int("replica.fetch.max.bytes", 1, i32::MAX as i64)? as i32,
        replica_fetch_response_max_bytes: int(
            "replica.fetch.response.max.bytes",
            1,
            i32::MAX as i64,
        )? as i32,
        replica_fetch_backoff_ms: int("replica.fetch.backoff.ms", 0, i32::MAX as i64)? as u64,
        replica_socket_timeout_ms: int("replica.socket.timeout.ms", 1, i32::MAX as i64)? as u64,
        broker_heartbeat_interval_ms: heartbeat,
        broker_session_timeout_ms: session,
        auto_leader_rebalance_enable: boolean("auto.leader.rebalance.enable")?,
        leader_imbalance_check_interval_ms: (int(
            "leader.imbalance.check.interval.seconds",
            1,
            i32::MAX as i64,
        )? as u64)
            .saturating_mul(1000),
        leader_imbalance_per_broker_percentage: int(
            "leader.imbalance.per.broker.percentage",
            0,
            100,
        )? as i32,
        leader_replication_throttled_rate: int("leader.replication.throttled.rate", 1, i64::MAX)?,
        follower_replication_throttled_rate: int(
            "follower.replication.throttled.rate",
            1,
            i64::MAX,
        )?,
        controlled_shutdown_enable: boolean("controlled.shutdown.enable")?,
        election_timeout_ms: int("controller.quorum.election.timeout.ms", 50, i32::MAX as i64)?
            as u64,
        quorum_fetch_timeout_ms: int("controller.quorum.fetch.timeout.ms", 50, i32::MAX as i64)?
            as u64,
        quorum_request_timeout_ms: int("controller.quorum.request.timeout.ms", 50, i32::MAX as i64)?
            as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(s: &str) -> Vec<Listener> {
        Listener::parse_list("listeners", s).unwrap()
    }

    fn parse_with(pairs: &[(&str, &str)], node: i32, l: &str) -> Result<ClusterConfig, String> {
        let mut map: BTreeMap<String, String> = CLUSTER_DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        parse(&|k| map.get(k).cloned(), node, &listeners(l)).map_err(|e| e.to_string())
    }

    #[test]
    fn embedded_default_is_its_own_quorum() {
        let c = parse_with(&[], 0, "PLAINTEXT://localhost:9092").unwrap();
        assert!(c.controller);
        assert_eq!(c.voters.keys().copied().collect::<Vec<_>>(), vec![0]);
        assert_eq!(c.inter_broker_listener, "PLAINTEXT");
        assert!(c.controller_listener_names.is_empty());
    }

    #[test]
    fn kafka_cluster_form() {
        let c = parse_with(
            &[
                ("process.roles", "broker,controller"),
                (
                    "controller.quorum.voters",
                    "0@h0:9093,1@h1:9093,2@[::1]:9093",
                ),
                ("broker.rack", "zone-a"),
            ],
            1,
            "PLAINTEXT://:9092,CONTROLLER://:9093",
        )
        .unwrap();
        assert_eq!(c.voters.len(), 3);
        assert_eq!(c.voters[&2].address(), "[::1]:9093");
        assert_eq!(c.controller_listener_names, vec!["CONTROLLER"]);
        assert_eq!(c.rack.as_deref(), Some("zone-a"));
    }

    #[test]
    fn inconsistent_quorum_settings_are_refused() {
        let voters = ("controller.quorum.voters", "0@h0:9093,1@h1:9093");
        let e = parse_with(&[voters], 0, "PLAINTEXT://:9092").unwrap_err();
        assert!(e.contains("no controller listener"), "{e}");
        let e = parse_with(
            &[voters, ("process.roles", "broker")],
            0,
            "PLAINTEXT://:9092,CONTROLLER://:9093",
        )
        .unwrap_err();
        assert!(e.contains("must include controller"), "{e}");
        let e = parse_with(
            &[voters, ("process.roles", "broker,controller")],
            5,
            "PLAINTEXT://:9092,CONTROLLER://:9093",
        )
        .unwrap_err();
        assert!(e.contains("not a voter"), "{e}");
        let e = parse_with(&[voters], 0, "PLAINTEXT://:9092,CONTROLLER://:9099").unwrap_err();
        assert!(e.contains("port"), "{e}");
        let e = parse_with(
            &[("controller.quorum.voters", "x@h:1")],
            0,
            "PLAINTEXT://:1",
        )
        .unwrap_err();
        assert!(e.contains("not a node id"), "{e}");
        let e = parse_with(&[("process.roles", "controller")], 0, "PLAINTEXT://:1").unwrap_err();
        assert!(e.contains("controller-only"), "{e}");
    }

    #[test]
    fn broker_only_node_joins_existing_voters() {
        let c = parse_with(
            &[
                ("process.roles", "broker"),
                ("controller.quorum.voters", "0@h0:9093"),
            ],
            4,
            "PLAINTEXT://:9092",
        )
        .unwrap();
        assert!(!c.controller);
        assert!(!c.voters.contains_key(&4));
    }
}
