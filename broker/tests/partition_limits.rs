//! What one broker can hold (issue 11): partitions far beyond its open-file limit (segment
//! files are opened on demand through a bounded cache, not held open), start-up after a
//! crash at that count, and creations past `max.broker.partitions` refused up front with
//! POLICY_VIOLATION.

mod common;

use std::time::Duration;

use common::kafka::{consume, produce, Rec};
use common::{http_get, BrokerProcess};
use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)))
}

/// Creates `topic` with `partitions`; the broker's answer (Ok or its error code).
fn create(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), RDKafkaErrorCode> {
    let admin = admin(bootstrap);
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = block_on(admin.create_topics([&new], &options())).expect("CreateTopics answered");
    results[0].clone().map(|_| ()).map_err(|(_, code)| code)
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn partitions_far_beyond_the_descriptor_limit_are_served_and_survive_a_crash() {
    const OPEN_FILES: u64 = 192;
    const TOPICS: usize = 3;
    const PER_TOPIC: i32 = 500;
    let mut broker = BrokerProcess::start_limited(&[], Some(OPEN_FILES));
    let bootstrap = broker.bootstrap();
    for t in 0..TOPICS {
        create(&bootstrap, &format!("many-{t}"), PER_TOPIC)
            .unwrap_or_else(|e| panic!("topic {t}: {e:?}\n{}", broker.log()));
    }
    // One record into every partition: each log is written, so each has files to open.
    for t in 0..TOPICS {
        let records: Vec<Rec> = (0..PER_TOPIC)
            .map(|p| Rec {
                partition: Some(p),
                ..Rec::keyed("k", &format!("v{t}-{p}"))
            })
            .collect();
        produce(
            &bootstrap,
            &format!("many-{t}"),
            &[("acks", "all")],
            &records,
        );
    }
    let pid = broker.pid().expect("running");
    let fds = open_descriptors(pid);
    assert!(
        fds < OPEN_FILES as usize,
        "{fds} descriptors open under a limit of {OPEN_FILES}"
    );
    let (status, body) = http_get(broker.admin_port, "/ready").expect("admin answers");
    assert_eq!(status, 200, "{body}");

    // A crash, then a start-up that recovers all of them under the same limit.
    broker.kill9();
    broker.restart();
    for t in 0..TOPICS {
        let got = consume(
            &bootstrap,
            &format!("many-{t}"),
            PER_TOPIC,
            PER_TOPIC as usize,
        );
        assert_eq!(
            got.len(),
            PER_TOPIC as usize,
            "every record of many-{t} is back"
        );
        for g in &got {
            assert_eq!(g.value, format!("v{t}-{}", g.partition).into_bytes());
        }
    }
}

#[test]
fn creations_past_max_broker_partitions_are_refused_up_front() {
    let broker = BrokerProcess::start(&[("max.broker.partitions", "100")]);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "fits", 60).expect("60 of 100");
    assert_eq!(
        create(&bootstrap, "too-many", 50),
        Err(RDKafkaErrorCode::PolicyViolation)
    );
    let admin = admin(&bootstrap);
    let grow = |to: usize| {
        let results =
            block_on(admin.create_partitions([&NewPartitions::new("fits", to)], &options()))
                .expect("CreatePartitions answered");
        results[0].clone().map(|_| ()).map_err(|(_, code)| code)
    };
    assert_eq!(grow(101), Err(RDKafkaErrorCode::PolicyViolation));
    grow(100).expect("exactly the limit");
    assert_eq!(
        create(&bootstrap, "one-more", 1),
        Err(RDKafkaErrorCode::PolicyViolation)
    );
    // Nothing of the refused creations was committed.
    let md = common::kafka::consumer(&bootstrap);
    let metadata = rdkafka::consumer::Consumer::fetch_metadata(&md, None, Duration::from_secs(10))
        .expect("metadata");
    let names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    assert!(
        !names.contains(&"too-many") && !names.contains(&"one-more"),
        "{names:?}"
    );
    assert!(
        broker.log().contains("max.broker.partitions"),
        "the refusal is logged"
    );
}
