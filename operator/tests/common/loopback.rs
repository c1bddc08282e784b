//! The operator's rendered server.properties, moved onto loopback: every broker's
//! addresses (listeners, advertised listeners, quorum voters, admin listener) become
//! 127.0.0.1 on a free port of its own, and its data goes under a test directory. Nothing
//! else changes, so the brokers run exactly the configuration the pods would.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;

use strom_broker::config::properties::{self, Properties};
use strom_operator::cluster::config::{broker_properties, ExternalAddresses};
use strom_operator::cluster::names;
use strom_operator::crd::KafkaCluster;

/// The brokers of a rendered cluster on loopback.
pub struct Localised {
    /// Broker `i`'s properties, ready for `BrokerConfig::from_properties`.
    pub props: Vec<Properties>,
    /// What each broker serves by the port the operator rendered: a listener name, or
    /// "admin" for the admin HTTP listener.
    pub serves: BTreeMap<(i32, u16), String>,
    ports: BTreeMap<(i32, u16), u16>,
    brokers: i32,
    cluster: String,
    namespace: String,
}

impl Localised {
    /// Renders `brokers` brokers of `cluster` as the operator does (through a file the
    /// broker's own reader reads back) and moves them onto loopback, data under `data`.
    pub fn render(cluster: &KafkaCluster, brokers: i32, data: &Path) -> Localised {
        let rendered: Vec<Properties> = (0..brokers)
            .map(|i| {
                let file = data.join(format!("server-{i}.properties"));
                std::fs::write(
                    &file,
                    broker_properties(cluster, i, &ExternalAddresses::default()),
                )
                .expect("write properties");
                properties::read_file(&file).expect("the broker reads the operator's file")
            })
            .collect();
        let mut serves = BTreeMap::new();
        for (i, props) in (0..brokers).zip(&rendered) {
            for (name, _, port) in listener_entries(&props["listeners"]) {
                serves.insert((i, port), name);
            }
            let (_, admin_port) = split_addr(&props["admin.listener"]);
            serves.insert((i, admin_port), "admin".to_string());
        }
        let mut localised = Localised {
            props: Vec::new(),
            ports: allocate(&serves.keys().copied().collect()),
            serves,
            brokers,
            cluster: names::cluster_name(cluster),
            namespace: names::namespace(cluster),
        };
        localised.props = (0..brokers)
            .zip(rendered)
            .map(|(i, props)| localised.localise(i, props, data))
            .collect();
        localised
    }

    /// `127.0.0.1:<port>` where broker `broker` serves what the operator put on `port`.
    pub fn address(&self, broker: i32, port: u16) -> String {
        let port = self
            .ports
            .get(&(broker, port))
            .unwrap_or_else(|| panic!("broker {broker} serves nothing on port {port}"));
        format!("127.0.0.1:{port}")
    }

    /// The broker whose pod DNS name `host` is.
    pub fn pod_of(&self, host: &str) -> i32 {
        (0..self.brokers)
            .find(|j| names::pod_dns(&self.cluster, &self.namespace, *j) == host)
            .unwrap_or_else(|| panic!("{host} is no broker pod of the cluster"))
    }

    fn localise(&self, i: i32, mut props: Properties, data: &Path) -> Properties {
        let listeners = listener_entries(&props["listeners"])
            .iter()
            .map(|(name, _, port)| format!("{name}://{}", self.address(i, *port)))
            .collect::<Vec<_>>()
            .join(",");
        let advertised = listener_entries(&props["advertised.listeners"])
            .iter()
            .map(|(name, host, port)| {
                format!("{name}://{}", self.address(self.pod_of(host), *port))
            })
            .collect::<Vec<_>>()
            .join(",");
        let voters = props["controller.quorum.voters"]
            .split(',')
            .map(|v| {
                let (id, addr) = v.split_once('@').expect("id@host:port");
                let (host, port) = split_addr(addr);
                format!("{id}@{}", self.address(self.pod_of(host), port))
            })
            .collect::<Vec<_>>()
            .join(",");
        let (_, admin_port) = split_addr(&props["admin.listener"]);
        props.insert("listeners".into(), listeners);
        props.insert("advertised.listeners".into(), advertised);
        props.insert("controller.quorum.voters".into(), voters);
        props.insert("admin.listener".into(), self.address(i, admin_port));
        let dir = data.join(format!("broker-{i}"));
        props.insert("log.dirs".into(), dir.display().to_string());
        props
    }
}

/// A free loopback port for each `(broker, port the operator renders)`. All are held open
/// until every one is chosen, so none is handed out twice.
fn allocate(ports: &BTreeSet<(i32, u16)>) -> BTreeMap<(i32, u16), u16> {
    let held: Vec<((i32, u16), TcpListener)> = ports
        .iter()
        .map(|key| (*key, TcpListener::bind("127.0.0.1:0").expect("a free port")))
        .collect();
    held.iter()
        .map(|(key, l)| (*key, l.local_addr().expect("bound").port()))
        .collect()
}

pub fn split_addr(addr: &str) -> (&str, u16) {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host, port.parse().expect("a port number"))
}

/// `NAME://host:port,...` as (name, host, port).
fn listener_entries(value: &str) -> Vec<(String, String, u16)> {
    value
        .split(',')
        .map(|entry| {
            let (name, addr) = entry.split_once("://").expect("NAME://host:port");
            let (host, port) = split_addr(addr);
            (name.to_string(), host.to_string(), port)
        })
        .collect()
}
