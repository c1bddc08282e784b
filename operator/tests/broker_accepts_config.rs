//! The server.properties the operator renders must start the real strom-broker: parsed by
//! the broker's own reader and config loader, every key known to it, every value valid.

use std::path::Path;

use serde_json::json;
use strom_broker::config::{properties, BrokerConfig};
use strom_operator::cluster::config::{broker_properties, ExternalAddresses};
use strom_operator::crd::KafkaCluster;

fn cluster(spec: serde_json::Value) -> KafkaCluster {
    serde_json::from_value(json!({
        "apiVersion": "kafka.strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": {"name": "my-cluster", "namespace": "kafka", "uid": "u"}, "spec": spec,
    }))
    .expect("a KafkaCluster")
}

fn load(dir: &Path, text: &str) -> (BrokerConfig, Vec<String>) {
    let file = dir.join("server.properties");
    std::fs::write(&file, text).expect("write properties");
    let props = properties::read_file(&file).expect("the broker reads the file");
    BrokerConfig::from_properties(props)
        .unwrap_or_else(|e| panic!("the broker refuses the operator's config: {e}\n{text}"))
}

#[test]
fn every_broker_config_loads_in_strom_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cluster(json!({
        "replicas": 4,
        "listeners": [{"name": "plain", "port": 9092}, {"name": "external", "port": 9094, "type": "nodeport"}],
        "config": {"log.retention.hours": 48, "auto.create.topics.enable": false, "num.partitions": 6,
                   "log.cleanup.policy": "compact"},
        "defaultReplicationFactor": 3, "minInsyncReplicas": 2,
    }));
    let mut external = ExternalAddresses::default();
    for i in 0..4 {
        external.by_broker.insert(
            ("external".into(), i),
            ("${STROM_NODE_IP}".into(), 31000 + i),
        );
    }
    for ordinal in 0..4 {
        // pod-init substitutes the node IP before the broker reads the file.
        let text =
            broker_properties(&c, ordinal, &external).replace("${STROM_NODE_IP}", "10.0.0.5");
        let (config, warnings) = load(dir.path(), &text);
        assert_eq!(config.node_id, ordinal);
        let unknown: Vec<_> = warnings
            .iter()
            .filter(|w| w.starts_with("unknown config"))
            .collect();
        assert!(
            unknown.is_empty(),
            "keys strom-broker does not know: {unknown:?}"
        );
        let names: Vec<_> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        assert!(
            names.contains(&"PLAIN")
                && names.contains(&"EXTERNAL")
                && names.contains(&"REPLICATION"),
            "{names:?}"
        );
        // The controller listener is the quorum's, never served to clients.
        assert!(!names.contains(&"CONTROLLER"), "{names:?}");
        assert_eq!(
            config.controller_listener.is_some() && config.cluster.controller,
            ordinal < 3,
            "only the first three are voters"
        );
        assert_eq!(
            config.cluster.voters.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(config.cluster.inter_broker_listener, "REPLICATION");
        let external = config
            .advertised_for("EXTERNAL")
            .expect("external listener advertised");
        assert_eq!(
            (external.host.as_str(), external.port),
            ("10.0.0.5", 31000 + ordinal as u16)
        );
        let plain = config
            .advertised_for("PLAIN")
            .expect("plain listener advertised");
        assert_eq!(
            plain.host,
            format!("my-cluster-broker-{ordinal}.my-cluster-brokers.kafka.svc")
        );
        assert_eq!(config.default_replication_factor, 3);
        assert_eq!(config.num_partitions, 6);
        assert!(!config.auto_create_topics_enable);
        assert_eq!(config.admin_listener.port(), 9644);
        assert_eq!(
            config.log_dirs,
            vec![std::path::PathBuf::from("/var/lib/strom/data")]
        );
    }
}
