//! Log compaction against a real `strom-broker` process with librdkafka: a compacted topic
//! with tiny segments, overwritten many times, ends up holding the latest value of each key
//! at its original offset; a record without a key is refused.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::kafka::{consume, consumer, produce, try_produce, Got, Rec};
use common::{segment_files, wait_for, BrokerProcess};
use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;

const TOPIC: &str = "compacted";
const KEYS: usize = 20;
const ROUNDS: usize = 50;
/// Distinct keys with large values, produced last: each fills a segment of its own, so the
/// overwrites all sit in sealed (cleanable) segments and the active one holds no duplicate.
const FILLERS: usize = 3;

fn create_compacted_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let created = block_on(
        admin.create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))
                .set("cleanup.policy", "compact")
                .set("segment.bytes", "1024")
                // Cleaning may start while the test still produces; a low ratio makes sure the
                // rest is cleaned too, however little it is next to the already-clean part.
                .set("min.cleanable.dirty.ratio", "0.01")],
            &AdminOptions::new(),
        ),
    )
    .expect("create topics");
    assert!(created[0].is_ok(), "{:?}", created[0]);
}

fn log_bytes(broker: &BrokerProcess) -> u64 {
    segment_files(&broker.partition_dir(TOPIC, 0))
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn compacted_topic_keeps_the_latest_value_per_key() {
    let broker = BrokerProcess::start(&[("log.cleaner.backoff.ms", "200")]);
    let bootstrap = broker.bootstrap();
    create_compacted_topic(&bootstrap);

    // Overwrites in lz4 batches of 7, so batches straddle rounds and some keep only part of
    // their records (re-encoded in their codec).
    let overwrites: Vec<Rec> = (0..ROUNDS)
        .flat_map(|round| {
            (0..KEYS).map(move |k| Rec::keyed(&format!("k{k}"), &format!("v{round}")))
        })
        .collect();
    let acks = produce(
        &bootstrap,
        TOPIC,
        &[("compression.codec", "lz4"), ("batch.num.messages", "7")],
        &overwrites,
    );
    assert_eq!(acks.last().map(|a| a.1), Some((KEYS * ROUNDS) as i64 - 1));
    for f in 0..FILLERS {
        let filler = Rec::keyed(&format!("filler{f}"), &"x".repeat(700));
        produce(&bootstrap, TOPIC, &[], &[filler]);
    }
    let total = (KEYS * ROUNDS + FILLERS) as i64;

    // The condition, not a sleep: a consumer from the beginning sees one record per key.
    let expected = KEYS + FILLERS;
    let got: Vec<Got> = wait_for("compaction", Duration::from_secs(60), || {
        let got = consume(&bootstrap, TOPIC, 1, expected);
        (got.len() == expected).then_some(got)
    });

    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for g in &got {
        let key = g.key.clone().expect("every record has its key");
        let value = String::from_utf8_lossy(&g.value).to_string();
        assert!(
            latest.insert(key.clone(), (g.offset, value)).is_none(),
            "{key} seen twice"
        );
    }
    let last_round = ROUNDS - 1;
    for k in 0..KEYS {
        let (offset, value) = &latest[&format!("k{k}")];
        assert_eq!(
            value,
            &format!("v{last_round}"),
            "k{k} has its latest value"
        );
        assert_eq!(
            *offset,
            (last_round * KEYS + k) as i64,
            "k{k} keeps the offset it was written at"
        );
    }
    assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));

    let c = consumer(&bootstrap);
    let (low, high) = c
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(5))
        .expect("watermarks");
    assert_eq!(
        (low, high),
        (0, total),
        "compaction moves neither end of the log"
    );
    // The cleaner may already have run while the test produced, so what was appended is
    // measured by the broker's bytes-in counter rather than by the files.
    let metrics = broker.metrics();
    let appended: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "kafka_server_brokertopicmetrics_bytesin_total{{topic=\"{TOPIC}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("bytes-in metric");
    let cleaned_bytes = log_bytes(&broker);
    let fillers_bytes = (FILLERS * 700) as u64;
    assert!(
        cleaned_bytes < fillers_bytes + (appended - fillers_bytes) / 4,
        "the log shrank: {cleaned_bytes} bytes on disk of {appended} appended"
    );
    assert!(
        metrics.contains("kafka_log_logcleaner_bytes_total{stage=\"before\"}"),
        "cleaning shows in the metrics"
    );

    // Appends continue right after the compacted log, at the offset they always would have.
    let acks = produce(&bootstrap, TOPIC, &[], &[Rec::keyed("k0", "after")]);
    assert_eq!(acks[0].1, total);
}

#[test]
fn compacted_topic_refuses_records_without_a_key() {
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    create_compacted_topic(&bootstrap);
    let keyless = Rec {
        key: None,
        value: b"no key".to_vec(),
        timestamp: None,
        partition: Some(0),
    };
    let reports = try_produce(&bootstrap, TOPIC, &[("retries", "0")], &[keyless]);
    let err = reports[0]
        .as_ref()
        .expect_err("a keyless record is refused");
    assert!(err.contains("InvalidRecord"), "{err}");
    let log = broker.log();
    assert!(
        log.contains("Compacted topic cannot accept message without key"),
        "the broker says why: {log}"
    );
    // Keyed records still go in.
    let acks = produce(&bootstrap, TOPIC, &[], &[Rec::keyed("k", "v")]);
    assert_eq!(acks[0].1, 0);
}
