//! Renders each broker's `server.properties` from the cluster contract (Kafka's keys).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Where one broker listens. The node id is the broker's index in the cluster.
#[derive(Debug, Clone)]
pub struct BrokerAddress {
    pub node_id: i32,
    pub host: IpAddr,
    pub kafka_port: u16,
    pub controller_port: u16,
    pub admin_port: u16,
    /// The REPLICATION listener of the secured mode (unused otherwise).
    pub replication_port: u16,
}

impl BrokerAddress {
    pub fn kafka(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.kafka_port)
    }

    pub fn admin(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.admin_port)
    }
}

/// The defaults every scenario runs with: RF 3, min ISR 2, fast failure detection.
pub const CLUSTER_DEFAULTS: &[(&str, &str)] = &[
    ("process.roles", "broker,controller"),
    (
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    ),
    ("controller.listener.names", "CONTROLLER"),
    ("inter.broker.listener.name", "PLAINTEXT"),
    ("default.replication.factor", "3"),
    ("min.insync.replicas", "2"),
    ("offsets.topic.replication.factor", "3"),
    ("num.partitions", "3"),
    ("group.initial.rebalance.delay.ms", "0"),
    ("replica.lag.time.max.ms", "4000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("broker.session.timeout.ms", "3000"),
];

/// `server.properties` for `me`; `overrides` replace defaults of the same key or add keys.
pub fn render(
    me: &BrokerAddress,
    all: &[BrokerAddress],
    log_dir: &Path,
    overrides: &[(String, String)],
) -> String {
    render_with(me, all, log_dir, overrides, false)
}

/// `render`; `secured` names the listeners CLIENT (clients), REPLICATION (inter-broker)
/// and CONTROLLER, whose protocols `security::broker_properties` sets.
pub fn render_with(
    me: &BrokerAddress,
    all: &[BrokerAddress],
    log_dir: &Path,
    overrides: &[(String, String)],
    secured: bool,
) -> String {
    let (listeners, advertised) = if secured {
        (
            format!(
                "CLIENT://{h}:{},REPLICATION://{h}:{},CONTROLLER://{h}:{}",
                me.kafka_port,
                me.replication_port,
                me.controller_port,
                h = me.host
            ),
            format!(
                "CLIENT://{h}:{},REPLICATION://{h}:{}",
                me.kafka_port,
                me.replication_port,
                h = me.host
            ),
        )
    } else {
        (
            format!(
                "PLAINTEXT://{}:{},CONTROLLER://{}:{}",
                me.host, me.kafka_port, me.host, me.controller_port
            ),
            format!("PLAINTEXT://{}:{}", me.host, me.kafka_port),
        )
    };
    let voters = all
        .iter()
        .map(|b| format!("{}@{}:{}", b.node_id, b.host, b.controller_port))
        .collect::<Vec<_>>()
        .join(",");
    let mut entries: Vec<(String, String)> = vec![
        ("node.id".into(), me.node_id.to_string()),
        ("listeners".into(), listeners),
        ("advertised.listeners".into(), advertised),
        ("controller.quorum.voters".into(), voters),
        ("log.dirs".into(), log_dir.display().to_string()),
        ("admin.listener".into(), me.admin().to_string()),
    ];
    entries.extend(
        CLUSTER_DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    for (key, value) in overrides {
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.clone(),
            None => entries.push((key.clone(), value.clone())),
        }
    }
    let mut text = String::from("# written by strom-e2e-cluster\n");
    for (k, v) in entries {
        let _ = writeln!(text, "{k}={v}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(i: i32) -> BrokerAddress {
        BrokerAddress {
            node_id: i,
            host: IpAddr::V4(Ipv4Addr::new(10, 1, 2, i as u8 + 1)),
            kafka_port: 9092,
            controller_port: 9093,
            admin_port: 9644,
            replication_port: 9094,
        }
    }

    #[test]
    fn renders_the_contract_and_applies_overrides() {
        let all: Vec<_> = (0..3).map(addr).collect();
        let text = render(
            &all[1],
            &all,
            Path::new("/tmp/x/broker-1"),
            &[
                ("min.insync.replicas".into(), "1".into()),
                ("log.segment.bytes".into(), "4096".into()),
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "node.id=1",
            "listeners=PLAINTEXT://10.1.2.2:9092,CONTROLLER://10.1.2.2:9093",
            "advertised.listeners=PLAINTEXT://10.1.2.2:9092",
            "controller.quorum.voters=0@10.1.2.1:9093,1@10.1.2.2:9093,2@10.1.2.3:9093",
            "log.dirs=/tmp/x/broker-1",
            "admin.listener=10.1.2.2:9644",
            "process.roles=broker,controller",
            "min.insync.replicas=1",
            "log.segment.bytes=4096",
            "replica.lag.time.max.ms=4000",
        ] {
            assert!(lines.contains(&want), "missing {want} in\n{text}");
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("min.insync.replicas="))
                .count(),
            1
        );
    }
}
