//! A topic's `compression.type` against a real `strom-broker` with librdkafka: batches
//! sent in another codec are stored in the topic's, batches already in it are stored as
//! sent, and consumers read the same records either way (Kafka's log validator's rules).

mod common;

use std::collections::BTreeSet;

use common::kafka::{consume, produce, Rec};
use common::{segment_files, BrokerProcess};
use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// The codec ids of the batches stored for `topic`-0, read from its segment files.
fn stored_codecs(broker: &BrokerProcess, topic: &str) -> Vec<i16> {
    let mut codecs = Vec::new();
    for file in segment_files(&broker.partition_dir(topic, 0)) {
        let data = std::fs::read(&file).expect("read segment");
        let mut pos = 0;
        // Batch header: base offset i64, length i32, leader epoch i32, magic i8, crc u32,
        // attributes i16 (codec in bits 0-2).
        while pos + 23 <= data.len() {
            let length = i32::from_be_bytes(data[pos + 8..pos + 12].try_into().expect("4 bytes"));
            if length <= 0 {
                break;
            }
            codecs.push(i16::from_be_bytes([data[pos + 21], data[pos + 22]]) & 0x07);
            pos += 12 + length as usize;
        }
    }
    codecs
}

#[test]
fn batches_are_stored_in_the_topics_codec() {
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let topics = [
        ("zstd-topic", "zstd"),
        ("plain-topic", "uncompressed"),
        ("as-sent", "producer"),
    ];
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, codec)| {
            NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("compression.type", codec)
        })
        .collect();
    let created = block_on(admin.create_topics(&new, &AdminOptions::new())).expect("create");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");

    let records: Vec<Rec> = (0..50)
        .map(|i| Rec::keyed(&format!("k{i}"), &format!("value-{i}-{}", "x".repeat(100))))
        .collect();
    // (topic, producer codec, codec id expected on disk): 0 none, 1 gzip, 3 lz4, 4 zstd.
    let cases = [
        ("zstd-topic", "gzip", 4),
        ("zstd-topic", "none", 4),
        ("zstd-topic", "zstd", 4),
        ("plain-topic", "lz4", 0),
        ("as-sent", "lz4", 3),
    ];
    for (topic, sent, _) in cases {
        produce(&bootstrap, topic, &[("compression.codec", sent)], &records);
    }
    for (topic, _) in topics {
        let sends: Vec<_> = cases.iter().filter(|c| c.0 == topic).collect();
        let want: BTreeSet<i16> = sends.iter().map(|c| c.2).collect();
        let stored = stored_codecs(&broker, topic);
        assert!(!stored.is_empty(), "{topic}: nothing stored");
        assert_eq!(
            stored.iter().copied().collect::<BTreeSet<_>>(),
            want,
            "{topic}: stored codecs {stored:?}"
        );
        let read = consume(&bootstrap, topic, 1, records.len() * sends.len());
        assert_eq!(
            read.len(),
            records.len() * sends.len(),
            "{topic}: every record read back"
        );
        for (i, got) in read.iter().enumerate() {
            let want = &records[i % records.len()];
            assert_eq!(got.offset, i as i64);
            assert_eq!(got.key, want.key, "{topic} offset {i}");
            assert_eq!(got.value, want.value, "{topic} offset {i}");
        }
    }
}
