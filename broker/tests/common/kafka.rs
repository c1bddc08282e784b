//! librdkafka (the `rdkafka` crate) helpers: produce with delivery reports, consume a
//! whole topic by explicit assignment.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Collects every delivery report under its record index: (record index, partition,
/// offset) or the error.
#[derive(Clone, Default)]
pub struct Reports(pub Arc<Mutex<Vec<(usize, Delivery)>>>);

/// (record index, partition, offset), or why delivery failed.
pub type Delivery = Result<(usize, i32, i64), String>;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<usize>;
    fn delivery(&self, result: &DeliveryResult<'_>, index: Self::DeliveryOpaque) {
        let entry = match result {
            Ok(m) => Ok((*index, m.partition(), m.offset())),
            Err((e, _)) => Err(format!("record {index}: {e}")),
        };
        if let Ok(mut reports) = self.0.lock() {
            reports.push((*index, entry));
        }
    }
}

pub struct Rec {
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub timestamp: Option<i64>,
    pub partition: Option<i32>,
}

impl Rec {
    pub fn keyed(key: &str, value: &str) -> Rec {
        Rec {
            key: Some(key.to_string()),
            value: value.as_bytes().to_vec(),
            timestamp: None,
            partition: None,
        }
    }
}

/// Produces every record and waits for all delivery reports. Returns the reports in
/// record order; panics on any failed delivery.
pub fn produce(
    bootstrap: &str,
    topic: &str,
    settings: &[(&str, &str)],
    records: &[Rec],
) -> Vec<(i32, i64)> {
    try_produce(bootstrap, topic, settings, records)
        .into_iter()
        .map(|r| {
            r.map(|(_, p, o)| (p, o))
                .unwrap_or_else(|e| panic!("delivery failed: {e}"))
        })
        .collect()
}

/// Produces every record and waits for all delivery reports; returns them in record order,
/// failures included.
pub fn try_produce(
    bootstrap: &str,
    topic: &str,
    settings: &[(&str, &str)],
    records: &[Rec],
) -> Vec<Delivery> {
    let mut config = ClientConfig::new();
    config
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    let reports = Reports::default();
    let producer: BaseProducer<Reports> = with_settings(config, bootstrap, settings)
        .create_with_context(reports.clone())
        .expect("producer");
    for (i, r) in records.iter().enumerate() {
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(i)).payload(&r.value);
        if let Some(k) = &r.key {
            record = record.key(k.as_str());
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        let mut record = Some(record);
        // The local queue can fill up; serve delivery reports until it drains.
        while let Some(rec) = record.take() {
            if let Err((e, rec)) = producer.send(rec) {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "send failed: {e}"
                );
                producer.poll(Duration::from_millis(10));
                record = Some(rec);
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let reports = reports.0.lock().expect("reports").clone();
    assert_eq!(
        reports.len(),
        records.len(),
        "every record gets a delivery report"
    );
    let mut ordered: Vec<Delivery> = vec![Err("no report".into()); records.len()];
    for (i, r) in reports {
        ordered[i] = r;
    }
    ordered
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub timestamp: Option<i64>,
}

pub fn consumer(bootstrap: &str) -> BaseConsumer {
    consumer_with(bootstrap, &[])
}

/// A consumer with extra client settings (security, for one).
pub fn consumer_with(bootstrap: &str, settings: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("group.id", "strom-test-unused")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100");
    with_settings(config, bootstrap, settings)
        .create()
        .expect("consumer")
}

/// A plain producer with extra client settings, for tests that drive sends themselves.
pub fn producer_with(bootstrap: &str, settings: &[(&str, &str)]) -> BaseProducer {
    with_settings(ClientConfig::new(), bootstrap, settings)
        .create()
        .expect("producer")
}

/// Sends one record through `producer` and waits for it (the flush's error if it was not
/// delivered).
pub fn send_one(producer: &BaseProducer, topic: &str, value: &str) -> Result<(), KafkaError> {
    producer
        .send(BaseRecord::<(), _>::to(topic).payload(value))
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))
}

/// `config` pointed at `bootstrap`, with `settings` applied last so a test can override
/// any default.
fn with_settings(
    mut config: ClientConfig,
    bootstrap: &str,
    settings: &[(&str, &str)],
) -> ClientConfig {
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in settings {
        config.set(*k, *v);
    }
    config
}

/// Owned settings (built per test) as the borrowed pairs the helpers take.
pub fn refs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Reads `partitions` of `topic` from the beginning until `expected` records arrived,
/// then keeps polling briefly to catch any extra (duplicate) records.
pub fn consume(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Got> {
    consume_with(bootstrap, &[], topic, partitions, expected)
}

/// `consume` with extra client settings.
pub fn consume_with(
    bootstrap: &str,
    settings: &[(&str, &str)],
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<Got> {
    let consumer = consumer_with(bootstrap, settings);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settle_until: Option<Instant> = None;
    loop {
        if got.len() >= expected && settle_until.is_none() {
            settle_until = Some(Instant::now() + Duration::from_millis(500));
        }
        if settle_until.is_some_and(|t| Instant::now() > t) || Instant::now() > deadline {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => got.push(Got {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).to_string()),
                value: m.payload().unwrap_or_default().to_vec(),
                timestamp: m.timestamp().to_millis(),
            }),
            // librdkafka reports every closed broker connection to the application (a
            // broker a test stopped, on Apache Kafka too) and reconnects by itself.
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure))) => {
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    got
}
