//! The operator's partition-health probe against a real strom-broker (in-process, on a
//! loopback port): the Metadata it asks for decodes into every partition with its
//! leader, replicas and ISR, and a single-replica cluster is not under-replicated.

use std::time::Duration;

use strom_broker::harness::start_plaintext;
use strom_client::admin::{Admin, NewTopic};
use strom_operator::access::Brokers;
use strom_operator::health::{assess, MetadataProbe, PartitionProbe};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_from_a_real_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = start_plaintext(dir.path(), Duration::from_secs(30))
        .await
        .expect("broker starts");

    let created = Admin::connect(
        std::slice::from_ref(&address),
        "test",
        Duration::from_secs(5),
        Duration::from_secs(10),
    )
    .await
    .expect("connect")
    .create_topics(&[NewTopic {
        name: "orders".to_string(),
        partitions: 3,
        replication_factor: 1,
        configs: Default::default(),
    }])
    .await
    .expect("CreateTopics");
    assert!(created["orders"].is_ok(), "{created:?}");

    let probe = MetadataProbe {
        timeout: Duration::from_secs(5),
    };
    // Leaders are elected right after creation; the probe reports what it is told.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let partitions = loop {
        let partitions = probe
            .partitions(Brokers::plaintext(vec![address.clone()]))
            .await
            .expect("metadata");
        let mut orders: Vec<_> = partitions
            .into_iter()
            .filter(|p| p.topic == "orders")
            .collect();
        orders.sort_by_key(|p| p.partition);
        if orders.len() == 3 && orders.iter().all(|p| p.leader.is_some()) {
            break orders;
        }
        assert!(std::time::Instant::now() < deadline, "{orders:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let node = partitions[0].leader.expect("leader");
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p.partition, i as i32);
        assert_eq!(p.replicas, vec![node]);
        assert_eq!(p.isr, vec![node]);
    }
    let health = assess(&partitions);
    assert!(health.under_replicated.is_empty() && health.offline.is_empty());

    running.shutdown().await.expect("shutdown");
}
