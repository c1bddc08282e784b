//! librdkafka against real `strom-broker` processes: produce and consume with every codec,
//! keyed ordering, acks levels, idempotence, long-poll fetch, timestamps, restarts and
//! crash recovery, topic admin and retention.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::kafka::{consume, consumer, produce, Rec};
use common::{segment_files, wait_for, BrokerProcess, RawClient};
use futures::executor::block_on;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    FetchRequest, InitProducerIdRequest, ProduceRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn numbered(n: usize, prefix: &str) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::keyed(&format!("k{}", i % 7), &format!("{prefix}-{i}")))
        .collect()
}

fn values(got: &[common::kafka::Got]) -> Vec<String> {
    got.iter()
        .map(|g| String::from_utf8_lossy(&g.value).to_string())
        .collect()
}

fn expected_values(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn produce_and_consume_with_every_codec() {
    let broker = BrokerProcess::start(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        let records = numbered(300, codec);
        let acks = produce(
            &broker.bootstrap(),
            &topic,
            &[("compression.codec", codec), ("acks", "all")],
            &records,
        );
        let offsets: Vec<i64> = acks.iter().map(|(_, o)| *o).collect();
        assert_eq!(
            offsets,
            (0..300).collect::<Vec<i64>>(),
            "{codec}: offsets in order"
        );
        let got = consume(&broker.bootstrap(), &topic, 1, 300);
        assert_eq!(
            values(&got),
            expected_values(300, codec),
            "{codec}: content and order"
        );
        assert!(got.iter().enumerate().all(|(i, g)| g.offset == i as i64));
    }
    // The stored batches are the producers' compressed bytes: a zstd topic of repetitive
    // values takes far less disk than the uncompressed one.
    let metrics = broker.metrics();
    let size = |topic: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("kafka_log_log_size") && l.contains(&format!("topic=\"{topic}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no log size metric for {topic}"))
    };
    assert!(
        size("codec-zstd") < size("codec-none"),
        "zstd batches stored compressed"
    );
}

#[test]
fn keyed_records_land_on_one_partition_in_order() {
    let broker = BrokerProcess::start(&[]);
    let admin = admin(&broker.bootstrap());
    let created = block_on(admin.create_topics(
        &[NewTopic::new("keyed", 4, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .expect("create topics");
    assert!(created[0].is_ok(), "{created:?}");
    let records: Vec<Rec> = (0..400)
        .map(|i| Rec::keyed(&format!("key-{}", i % 10), &format!("{}:{i}", i % 10)))
        .collect();
    produce(&broker.bootstrap(), "keyed", &[("acks", "1")], &records);
    let got = consume(&broker.bootstrap(), "keyed", 4, 400);
    assert_eq!(got.len(), 400);
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for g in &got {
        let key = g.key.clone().expect("key");
        let p = *partition_of.entry(key.clone()).or_insert(g.partition);
        assert_eq!(p, g.partition, "{key} appeared on two partitions");
        let seq: usize = String::from_utf8_lossy(&g.value)
            .split(':')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("sequence");
        seen.entry(key).or_default().push(seq);
    }
    assert_eq!(seen.len(), 10);
    for (key, seqs) in seen {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, sorted, "{key} out of order");
        assert_eq!(seqs.len(), 40);
    }
    let used: std::collections::HashSet<i32> = partition_of.values().copied().collect();
    assert!(used.len() > 1, "keys spread over partitions");
}

#[test]
fn acks_zero_one_and_all_all_arrive() {
    let broker = BrokerProcess::start(&[]);
    for acks in ["0", "1", "all"] {
        let topic = format!("acks-{acks}");
        let records = numbered(200, &topic);
        let reports = produce(&broker.bootstrap(), &topic, &[("acks", acks)], &records);
        if acks != "0" {
            assert!(reports.iter().all(|(_, o)| *o >= 0));
        }
        let got = consume(&broker.bootstrap(), &topic, 1, 200);
        assert_eq!(values(&got), expected_values(200, &topic), "acks={acks}");
    }
    // acks=all asks for min.insync.replicas in-sync replicas: a single broker cannot give
    // two, and says so rather than pretending.
    let admin = admin(&broker.bootstrap());
    let created = block_on(
        admin.create_topics(
            &[NewTopic::new("needs-two", 1, TopicReplication::Fixed(1))
                .set("min.insync.replicas", "2")],
            &AdminOptions::new(),
        ),
    )
    .expect("create");
    assert!(created[0].is_ok());
    let mut client = RawClient::connect(broker.port);
    let (code, _) = raw_produce(&mut client, "needs-two", idempotent_batch(-1, -1, &["x"]));
    assert_eq!(code, 19, "NOT_ENOUGH_REPLICAS");
}

/// A v2 batch from a producer id, for the raw idempotence checks.
fn idempotent_batch(producer_id: i64, base_sequence: i32, values: &[&str]) -> bytes::Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            producer_id,
            producer_epoch: 0,
            sequence: base_sequence + i as i32,
            ..common::record(
                i as i64,
                1,
                None,
                Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
            )
        })
        .collect();
    common::encode_batch(&records)
}

fn raw_produce(client: &mut RawClient, topic: &str, batch: bytes::Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    match client.send(9, RequestKind::Produce(request)) {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn idempotent_producer_leaves_no_duplicates() {
    let broker = BrokerProcess::start(&[]);
    // librdkafka's idempotent producer end to end.
    let records = numbered(1000, "idem");
    produce(
        &broker.bootstrap(),
        "idem",
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
        &records,
    );
    let got = consume(&broker.bootstrap(), "idem", 1, 1000);
    assert_eq!(values(&got), expected_values(1000, "idem"));

    // The retries a lost response causes, sent by hand: the same batch again is
    // acknowledged with its first offset and not stored twice; a gap is refused.
    let mut client = RawClient::connect(broker.port);
    let pid = match client.send(
        4,
        RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000),
        ),
    ) {
        ResponseKind::InitProducerId(r) => {
            assert_eq!(r.error_code, 0);
            r.producer_id.0
        }
        other => panic!("unexpected {other:?}"),
    };
    let first = idempotent_batch(pid, 0, &["a", "b"]);
    assert_eq!(raw_produce(&mut client, "raw-idem", first.clone()), (0, 0));
    assert_eq!(
        raw_produce(&mut client, "raw-idem", first),
        (0, 0),
        "duplicate gets the original offset"
    );
    assert_eq!(
        raw_produce(&mut client, "raw-idem", idempotent_batch(pid, 2, &["c"])),
        (0, 2)
    );
    let (code, _) = raw_produce(&mut client, "raw-idem", idempotent_batch(pid, 9, &["gap"]));
    assert_eq!(code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let got = consume(&broker.bootstrap(), "raw-idem", 1, 3);
    assert_eq!(values(&got), vec!["a", "b", "c"]);
}

fn raw_fetch(client: &mut RawClient, topic: &str, offset: i64, max_wait_ms: i32) -> (i16, usize) {
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    match client.send(11, RequestKind::Fetch(request)) {
        ResponseKind::Fetch(r) => {
            let p = &r.responses[0].partitions[0];
            (
                p.error_code,
                p.records.as_ref().map(|r| r.len()).unwrap_or(0),
            )
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn fetch_long_poll_waits_then_wakes_on_new_data() {
    let broker = BrokerProcess::start(&[]);
    produce(&broker.bootstrap(), "poll", &[], &numbered(1, "first"));
    let mut client = RawClient::connect(broker.port);

    // Nothing new: the fetch is held for max_wait_ms, then answered empty.
    let started = Instant::now();
    assert_eq!(raw_fetch(&mut client, "poll", 1, 700), (0, 0));
    assert!(
        started.elapsed() >= Duration::from_millis(650),
        "returned after {:?}",
        started.elapsed()
    );

    // New data during the wait wakes it long before max_wait_ms.
    let bootstrap = broker.bootstrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        produce(&bootstrap, "poll", &[], &numbered(1, "second"));
    });
    let started = Instant::now();
    let (code, bytes) = raw_fetch(&mut client, "poll", 1, 30_000);
    writer.join().expect("writer");
    assert_eq!(code, 0);
    assert!(bytes > 0, "woke with data");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "woke after {:?}",
        started.elapsed()
    );

    // Past the end is out of range.
    assert_eq!(
        raw_fetch(&mut client, "poll", 99, 0).0,
        1,
        "OFFSET_OUT_OF_RANGE"
    );

    // SIGTERM during a long poll: the in-flight fetch is answered, then the broker exits
    // cleanly instead of cutting the client off.
    let port = broker.port;
    let waiting = std::thread::spawn(move || {
        let mut client = RawClient::connect(port);
        raw_fetch(&mut client, "poll", 2, 60_000)
    });
    // Two connections open (ours above and the waiting fetch's) means the fetch is on its
    // way; the request follows the connect immediately, so a short margin covers it.
    wait_for("the long-poll connection", Duration::from_secs(10), || {
        broker
            .metrics()
            .contains("kafka_server_socketservermetrics_connection_count{listener=\"PLAINTEXT\"} 2")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut broker = broker;
    assert!(broker.terminate(), "clean exit:\n{}", broker.log());
    let started = Instant::now();
    // Controlled shutdown moves the partition's leadership away first (here it goes
    // offline: a single broker has no successor), so the waiting fetch is answered either
    // empty or with NOT_LEADER_OR_FOLLOWER (6), which sends a client to the new leader.
    let (code, bytes) = waiting.join().expect("fetch thread");
    assert!(
        matches!((code, bytes), (0, 0) | (6, 0)),
        "in-flight fetch answered, got code {code} with {bytes} bytes"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn auto_create_and_list_offsets_by_timestamp() {
    let broker = BrokerProcess::start(&[("num.partitions", "2")]);
    let records: Vec<Rec> = (0..50)
        .map(|i| Rec {
            key: None,
            value: format!("t{i}").into_bytes(),
            timestamp: Some(1_000_000 + i * 100),
            partition: Some(1),
        })
        .collect();
    // Producing to a topic nobody created creates it with num.partitions partitions.
    produce(
        &broker.bootstrap(),
        "stamped",
        &[("batch.num.messages", "7")],
        &records,
    );
    let c = consumer(&broker.bootstrap());
    let md = c
        .fetch_metadata(Some("stamped"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 2);

    let (low, high) = c
        .fetch_watermarks("stamped", 1, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 50));
    let lookup = |ts: i64| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("stamped", 1, Offset::Offset(ts))
            .expect("tpl");
        let found = c
            .offsets_for_times(tpl, Duration::from_secs(10))
            .expect("offsets_for_times");
        found.elements()[0].offset()
    };
    assert_eq!(lookup(0), Offset::Offset(0));
    assert_eq!(lookup(1_000_000 + 2_000), Offset::Offset(20));
    assert_eq!(
        lookup(1_000_000 + 2_050),
        Offset::Offset(21),
        "inside a batch"
    );
    assert_eq!(lookup(1_000_000 + 4_900), Offset::Offset(49));
    assert_eq!(lookup(9_000_000), Offset::End, "later than every record");
}

#[test]
fn data_survives_restart_and_kill9_with_a_torn_tail() {
    let mut broker = BrokerProcess::start(&[("log.segment.bytes", "1024")]);
    let small_batches = [("acks", "all"), ("batch.num.messages", "10")];
    produce(
        &broker.bootstrap(),
        "durable",
        &small_batches,
        &numbered(100, "before"),
    );
    assert!(broker.terminate(), "clean SIGTERM exit:\n{}", broker.log());
    broker.restart();
    let got = consume(&broker.bootstrap(), "durable", 1, 100);
    assert_eq!(values(&got), expected_values(100, "before"));

    produce(
        &broker.bootstrap(),
        "durable",
        &small_batches,
        &numbered(50, "more"),
    );
    broker.kill9();
    // A write torn by the crash: half a batch at the end of the active segment, and an
    // index that no longer matches its log.
    let dir = broker.partition_dir("durable", 0);
    let segments = segment_files(&dir);
    assert!(segments.len() > 1, "small segments rolled: {segments:?}");
    let active = segments.last().expect("a segment");
    let mut torn = vec![0u8, 0, 0, 0, 0, 0, 0, 150, 0, 0, 0, 200];
    torn.extend(std::iter::repeat_n(0xAB, 40));
    let mut bytes = std::fs::read(active).expect("read segment");
    bytes.extend_from_slice(&torn);
    std::fs::write(active, bytes).expect("tear segment");
    std::fs::write(active.with_extension("index"), [7u8; 11]).expect("damage index");

    broker.restart();
    assert!(
        broker.log().contains("recovered partition log"),
        "recovery is logged"
    );
    let got = consume(&broker.bootstrap(), "durable", 1, 150);
    let mut expected = expected_values(100, "before");
    expected.extend(expected_values(50, "more"));
    assert_eq!(
        values(&got),
        expected,
        "nothing lost, nothing corrupt served"
    );
    let acks = produce(&broker.bootstrap(), "durable", &[], &numbered(10, "after"));
    assert_eq!(
        acks[0].1, 150,
        "appends continue right after the recovered end"
    );
    assert_eq!(consume(&broker.bootstrap(), "durable", 1, 160).len(), 160);
}

#[test]
fn topic_admin_configs_retention_and_delete_records() {
    let broker = BrokerProcess::start(&[("log.retention.check.interval.ms", "100")]);
    let admin = admin(&broker.bootstrap());
    let opts = AdminOptions::new();
    let created = block_on(admin.create_topics(
        &[
            NewTopic::new("managed", 1, TopicReplication::Fixed(1)).set("segment.bytes", "2048"),
            NewTopic::new("bad name!", 1, TopicReplication::Fixed(1)),
            NewTopic::new("too-replicated", 1, TopicReplication::Fixed(3)),
        ],
        &opts,
    ))
    .expect("create");
    assert!(created[0].is_ok(), "{:?}", created[0]);
    assert!(
        format!("{:?}", created[1]).contains("InvalidTopic"),
        "{:?}",
        created[1]
    );
    assert!(
        format!("{:?}", created[2]).contains("InvalidReplicationFactor"),
        "{:?}",
        created[2]
    );

    let grown = block_on(admin.create_partitions(&[NewPartitions::new("managed", 3)], &opts))
        .expect("grow");
    assert!(grown[0].is_ok(), "{grown:?}");
    let shrunk = block_on(admin.create_partitions(&[NewPartitions::new("managed", 2)], &opts))
        .expect("shrink");
    assert!(shrunk[0].is_err(), "partitions cannot shrink");

    let describe = |key: &str| -> String {
        let results =
            block_on(admin.describe_configs(&[ResourceSpecifier::Topic("managed")], &opts))
                .expect("describe");
        let resource = results[0].as_ref().expect("resource");
        resource
            .get(key)
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| panic!("{key} not described"))
    };
    assert_eq!(describe("segment.bytes"), "2048");
    assert_eq!(
        describe("retention.ms"),
        "604800000",
        "broker default shows through"
    );

    // Fill several segments, then cap the size: old segments go, the start offset moves.
    let records: Vec<Rec> = (0..200)
        .map(|i| Rec {
            key: None,
            value: vec![b'x'; 200 + i % 3],
            timestamp: None,
            partition: Some(0),
        })
        .collect();
    produce(
        &broker.bootstrap(),
        "managed",
        &[("batch.num.messages", "5")],
        &records,
    );
    let altered = block_on(
        admin.alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("managed"))
                .set("segment.bytes", "2048")
                .set("retention.bytes", "4096")],
            &opts,
        ),
    )
    .expect("alter");
    assert!(altered[0].is_ok(), "{altered:?}");
    assert_eq!(describe("retention.bytes"), "4096");

    // IncrementalAlterConfigs: SET one key, APPEND to a list; APPEND to a scalar is refused
    // and changes nothing.
    let incremental = |ops: &[(&str, i8, &str)]| -> i16 {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let request = kafka_protocol::messages::IncrementalAlterConfigsRequest::default()
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("managed"))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_config_operation(*op)
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                )]);
        match RawClient::connect(broker.port).send(1, RequestKind::IncrementalAlterConfigs(request))
        {
            ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        incremental(&[
            ("retention.ms", 0, "86400000"),
            ("cleanup.policy", 2, "compact")
        ]),
        0
    );
    assert_eq!(describe("retention.ms"), "86400000");
    assert_eq!(describe("cleanup.policy"), "delete,compact");
    assert_eq!(
        incremental(&[("retention.ms", 2, "5")]),
        40,
        "INVALID_CONFIG"
    );
    assert_eq!(describe("retention.ms"), "86400000");
    let c = consumer(&broker.bootstrap());
    let low = wait_for(
        "retention to delete segments",
        Duration::from_secs(20),
        || {
            let (low, high) = c
                .fetch_watermarks("managed", 0, Duration::from_secs(5))
                .ok()?;
            assert_eq!(high, 200);
            (low > 0).then_some(low)
        },
    );
    assert!(segment_files(&broker.partition_dir("managed", 0)).len() <= 4);

    // DeleteRecords moves the start offset further, inside a segment.
    let target = low + 3;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("managed", 0, Offset::Offset(target))
        .expect("tpl");
    block_on(admin.delete_records(&tpl, &opts)).expect("delete records");
    let (low_after, _) = c
        .fetch_watermarks("managed", 0, Duration::from_secs(5))
        .expect("watermarks");
    assert!(low_after >= target, "{low_after} < {target}");

    let deleted = block_on(admin.delete_topics(&["managed"], &opts)).expect("delete");
    assert!(deleted[0].is_ok());
    wait_for(
        "partition directory removal",
        Duration::from_secs(10),
        || (!broker.partition_dir("managed", 0).exists()).then_some(()),
    );
    let metrics = broker.metrics();
    assert!(metrics.contains("kafka_server_brokertopicmetrics_bytesin_total{topic=\"managed\"}"));
    assert!(
        metrics.contains("kafka_network_requestmetrics_requests_total{request=\"CreateTopics\"}")
    );
}
