//! Produce and consume runs through librdkafka (the `rdkafka` crate).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::broker::CpuUse;
use crate::limits::slice_for;

/// Settings shared by every producer of the run.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub bootstrap: String,
    pub linger_ms: u64,
    pub batch_size: u64,
    pub record_size: usize,
    /// enable.idempotence; off everywhere except where a run asks for it (it needs
    /// acks=all).
    pub idempotence: bool,
    /// Extra librdkafka settings applied last (security, for one).
    pub client_settings: Vec<(String, String)>,
}

impl ProducerSettings {
    fn config(&self, acks: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("acks", acks)
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_size.to_string())
            .set("compression.type", "none")
            .set("enable.idempotence", self.idempotence.to_string())
            // A broker that stops answering fails the run in bounded time.
            .set("message.timeout.ms", "30000");
        for (k, v) in &self.client_settings {
            c.set(k, v);
        }
        c
    }
}

/// Counters filled in by librdkafka's delivery callbacks (on the polling thread).
struct Stats {
    base: Instant,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    failed: AtomicU64,
    last_ack_ns: AtomicU64,
    first_delivery_error: Mutex<Option<String>>,
    client_errors: AtomicU64,
    first_client_error: Mutex<Option<String>>,
    /// Microseconds from the scheduled send time to the delivery callback.
    latency_us: Option<Mutex<Histogram<u64>>>,
    /// Worst latency (µs) of the records scheduled in each second since `base`.
    max_us_per_sec: Mutex<Vec<u64>>,
}

impl Stats {
    fn new(with_latency: bool) -> Arc<Stats> {
        Arc::new(Stats {
            base: Instant::now(),
            acked: AtomicU64::new(0),
            acked_bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_ack_ns: AtomicU64::new(0),
            first_delivery_error: Mutex::new(None),
            client_errors: AtomicU64::new(0),
            first_client_error: Mutex::new(None),
            max_us_per_sec: Mutex::new(Vec::new()),
            latency_us: with_latency.then(|| {
                Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"))
            }),
        })
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

struct Ctx(Arc<Stats>);

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.client_errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.0.first_client_error.lock().unwrap();
        if first.is_none() {
            *first = Some(format!("{error}: {reason}"));
        }
    }
}

impl ProducerContext for Ctx {
    /// The scheduled send time, in ns since `Stats::base`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, scheduled_ns: usize) {
        let s = &self.0;
        let now = s.now_ns();
        match result {
            Ok(m) => {
                s.acked.fetch_add(1, Ordering::Relaxed);
                s.acked_bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
                s.last_ack_ns.fetch_max(now, Ordering::Relaxed);
                if let Some(h) = &s.latency_us {
                    let us = now.saturating_sub(scheduled_ns as u64) / 1000;
                    h.lock().unwrap().saturating_record(us.max(1));
                    let sec = (scheduled_ns / 1_000_000_000).min(3600);
                    let mut per_sec = s.max_us_per_sec.lock().unwrap();
                    if per_sec.len() <= sec {
                        per_sec.resize(sec + 1, 0);
                    }
                    per_sec[sec] = per_sec[sec].max(us);
                }
            }
            Err((e, _)) => {
                s.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = s.first_delivery_error.lock().unwrap();
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// Asks for the topic's metadata until it has a partition 0 with a leader (the
/// broker auto-creates topics on metadata requests). Bounded by `timeout`.
pub fn ensure_topic<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.fetch_metadata(Some(topic), Duration::from_secs(2)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    match t.error() {
                        None if t.partitions().iter().any(|p| p.leader() >= 0) => return Ok(()),
                        None => last = "topic has no partition with a leader".into(),
                        Some(e) => last = format!("topic error {e:?}"),
                    }
                } else {
                    last = "topic missing from metadata".into();
                }
            }
            Err(e) => last = e.to_string(),
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("topic {topic} not available after {timeout:?}: {last}")
}

#[derive(Debug, Clone, Serialize)]
pub struct ProduceResult {
    pub topic: String,
    pub acks: String,
    pub record_size: usize,
    pub partitions: i32,
    pub producers: usize,
    pub records_target: u64,
    pub records_sent: u64,
    /// Records whose delivery callback reported success (for acks=0: sent).
    pub records_acked: u64,
    pub records_failed: u64,
    pub bytes_acked: u64,
    /// First send to last successful delivery callback.
    pub secs: f64,
    pub mbps: f64,
    pub records_per_sec: f64,
    pub timed_out: bool,
    pub first_delivery_error: Option<String>,
    pub client_errors: u64,
    pub first_client_error: Option<String>,
    /// CPU over the run (filled in by the caller).
    pub cpu: Option<CpuUse>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    pub topic: String,
    pub acks: String,
    pub target_rate: u64,
    pub achieved_rate: f64,
    pub secs: f64,
    pub records_acked: u64,
    pub records_failed: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Worst latency of the records scheduled in each second of the run.
    pub max_ms_per_second: Vec<f64>,
    pub first_delivery_error: Option<String>,
    pub first_client_error: Option<String>,
    /// CPU over the run (filled in by the caller).
    pub cpu: Option<CpuUse>,
}

/// Sends one record, waiting (bounded by `deadline`) while librdkafka's queue is
/// full. Returns false if the deadline passed.
fn send_one(
    producer: &ThreadedProducer<Ctx>,
    topic: &str,
    partition: i32,
    payload: &[u8],
    opaque: usize,
    deadline: Instant,
) -> Result<bool> {
    let mut record = BaseRecord::with_opaque_to(topic, opaque)
        .partition(partition)
        .payload(payload);
    loop {
        match producer.send::<(), [u8]>(record) {
            Ok(()) => return Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                record = r;
                thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => bail!("send failed: {e}"),
        }
    }
}

/// Flushes within the time left (at least 10 s); on failure purges, so dropping
/// the producer does not wait.
fn flush_bounded(producer: &ThreadedProducer<Ctx>, deadline: Instant) -> bool {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(10));
    if producer.flush(left).is_ok() {
        return true;
    }
    producer.purge(PurgeConfig::default().queue().inflight());
    let _ = producer.flush(Duration::from_secs(2));
    false
}

/// Throughput: `records` records as fast as librdkafka will take them.
/// Record `i`'s payload: `i` (u64 LE) then `size - 8` bytes of the pool chosen by `i`,
/// so the consumer can check every record's content and spot losses and duplicates
/// whatever order several producers' records landed in.
pub fn record_payload<'a>(pool: &[u8], i: u64, size: usize, buf: &'a mut Vec<u8>) -> &'a [u8] {
    buf.clear();
    buf.extend_from_slice(&i.to_le_bytes());
    buf.extend_from_slice(slice_for(pool, i, size - 8));
    buf
}

/// Throughput: `records` records as fast as librdkafka will take them, split over
/// `producers` producer instances (one thread and one connection each). Record `i`
/// goes to partition `i % partitions`.
#[allow(clippy::too_many_arguments)]
pub fn produce_throughput(
    settings: &ProducerSettings,
    topic: &str,
    partitions: i32,
    acks: &str,
    records: u64,
    producers: usize,
    pool: &[u8],
    run_timeout: Duration,
) -> Result<ProduceResult> {
    let partitions = partitions.max(1);
    let stats = Stats::new(false);
    let producers = (0..producers.max(1))
        .map(|_| {
            settings
                .config(acks)
                .create_with_context::<_, ThreadedProducer<Ctx>>(Ctx(stats.clone()))
                .context("creating producer")
        })
        .collect::<Result<Vec<_>>>()?;
    for p in &producers {
        ensure_topic(p.client(), topic, Duration::from_secs(10))?;
    }
    let deadline = Instant::now() + run_timeout;
    let start_ns = stats.now_ns();
    let n = producers.len() as u64;
    let outcomes: Vec<Result<(u64, bool)>> = thread::scope(|scope| {
        let handles: Vec<_> = producers
            .iter()
            .enumerate()
            .map(|(k, producer)| {
                let (from, to) = (records * k as u64 / n, records * (k as u64 + 1) / n);
                scope.spawn(move || -> Result<(u64, bool)> {
                    let mut buf = Vec::with_capacity(settings.record_size);
                    let mut sent = 0u64;
                    for i in from..to {
                        let payload = record_payload(pool, i, settings.record_size, &mut buf);
                        let partition = (i % partitions as u64) as i32;
                        if !send_one(producer, topic, partition, payload, 0, deadline)? {
                            return Ok((sent, true));
                        }
                        sent += 1;
                        if i % 1024 == 0 && Instant::now() >= deadline {
                            return Ok((sent, true));
                        }
                    }
                    Ok((sent, false))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("sender panicked")))
            })
            .collect()
    });
    let mut sent = 0u64;
    let mut timed_out = false;
    for o in outcomes {
        let (s, t) = o?;
        sent += s;
        timed_out |= t;
    }
    for p in &producers {
        if !flush_bounded(p, deadline) {
            timed_out = true;
        }
    }
    let acked = stats.acked.load(Ordering::Relaxed);
    let bytes = stats.acked_bytes.load(Ordering::Relaxed);
    let secs = (stats
        .last_ack_ns
        .load(Ordering::Relaxed)
        .saturating_sub(start_ns)) as f64
        / 1e9;
    let result = ProduceResult {
        topic: topic.to_string(),
        acks: acks.to_string(),
        record_size: settings.record_size,
        partitions,
        producers: producers.len(),
        records_target: records,
        records_sent: sent,
        records_acked: acked,
        records_failed: stats.failed.load(Ordering::Relaxed),
        bytes_acked: bytes,
        secs,
        mbps: if secs > 0.0 {
            bytes as f64 / secs / 1e6
        } else {
            0.0
        },
        records_per_sec: if secs > 0.0 { acked as f64 / secs } else { 0.0 },
        timed_out,
        first_delivery_error: stats.first_delivery_error.lock().unwrap().clone(),
        client_errors: stats.client_errors.load(Ordering::Relaxed),
        first_client_error: stats.first_client_error.lock().unwrap().clone(),
        cpu: None,
    };
    drop(producers);
    Ok(result)
}

/// Latency: an open-loop schedule of `rate` records/s for `duration`; each record's
/// latency runs from its scheduled send time (so a stalled sender is charged too)
/// to its delivery callback.
pub fn produce_latency(
    settings: &ProducerSettings,
    topic: &str,
    acks: &str,
    rate: u64,
    duration: Duration,
    pool: &[u8],
) -> Result<LatencyResult> {
    if rate == 0 {
        bail!("latency rate must be > 0");
    }
    let stats = Stats::new(true);
    let producer: ThreadedProducer<Ctx> = settings
        .config(acks)
        .create_with_context(Ctx(stats.clone()))
        .context("creating producer")?;
    ensure_topic(producer.client(), topic, Duration::from_secs(10))?;
    let total = (rate as u128 * duration.as_nanos() / 1_000_000_000) as u64;
    let deadline = Instant::now() + duration + Duration::from_secs(30);
    let start_ns = stats.now_ns() as u128;
    let sched = |i: u64| (start_ns + i as u128 * 1_000_000_000 / rate as u128) as u64;
    let mut i = 0u64;
    let mut buf = Vec::with_capacity(settings.record_size);
    while i < total {
        let now = stats.now_ns() as u128;
        let due = (((now - start_ns) * rate as u128 / 1_000_000_000) as u64 + 1).min(total);
        if i >= due {
            let wait_ns = sched(i).saturating_sub(now as u64);
            thread::sleep(Duration::from_nanos(wait_ns.min(1_000_000)));
            continue;
        }
        while i < due {
            let payload = record_payload(pool, i, settings.record_size, &mut buf);
            if !send_one(&producer, topic, 0, payload, sched(i) as usize, deadline)? {
                break;
            }
            i += 1;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let secs = (stats.now_ns() as u128 - start_ns) as f64 / 1e9;
    flush_bounded(&producer, deadline);
    let h = stats.latency_us.as_ref().unwrap().lock().unwrap().clone();
    let q = |x: f64| h.value_at_quantile(x) as f64 / 1e3;
    let result = LatencyResult {
        topic: topic.to_string(),
        acks: acks.to_string(),
        target_rate: rate,
        achieved_rate: i as f64 / secs,
        secs,
        records_acked: stats.acked.load(Ordering::Relaxed),
        records_failed: stats.failed.load(Ordering::Relaxed),
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: h.max() as f64 / 1e3,
        mean_ms: h.mean() / 1e3,
        max_ms_per_second: stats
            .max_us_per_sec
            .lock()
            .unwrap()
            .get((start_ns / 1_000_000_000) as usize..)
            .unwrap_or(&[])
            .iter()
            .map(|us| *us as f64 / 1e3)
            .collect(),
        first_delivery_error: stats.first_delivery_error.lock().unwrap().clone(),
        first_client_error: stats.first_client_error.lock().unwrap().clone(),
        cpu: None,
    };
    drop(producer);
    Ok(result)
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumeResult {
    pub topic: String,
    pub partitions: i32,
    pub records_expected: u64,
    pub records: u64,
    pub bytes: u64,
    /// assign() to the last record received.
    pub secs: f64,
    pub mbps: f64,
    pub records_per_sec: f64,
    /// Records whose payload is not what the producer sent under its index.
    pub payload_mismatches: u64,
    /// Records whose index had already been read.
    pub duplicates: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub timed_out: bool,
    pub low_watermark: Option<i64>,
    pub high_watermark: Option<i64>,
    /// CPU over the run (filled in by the caller).
    pub cpu: Option<CpuUse>,
}

/// The index a record's payload leads with, if the rest of the payload is what
/// `record_payload` made for that index.
pub fn payload_index(pool: &[u8], record_size: usize, p: &[u8]) -> Option<u64> {
    let i = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    (p.len() == record_size && p[8..] == *slice_for(pool, i, record_size - 8)).then_some(i)
}

/// What a consumer read, checked against what the producer sent: records that are not
/// a producer's payload, and records read a second time.
#[derive(Debug, Default)]
pub struct PayloadCheck {
    /// Bit `i` set: the record with index `i` was read.
    seen: Vec<u64>,
    pub mismatches: u64,
    pub duplicates: u64,
}

impl PayloadCheck {
    pub fn record(&mut self, pool: &[u8], record_size: usize, payload: &[u8]) {
        let Some(i) = payload_index(pool, record_size, payload) else {
            self.mismatches += 1;
            return;
        };
        let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
        }
        self.seen[word] |= bit;
    }
}

/// Records between the low and high watermarks of partitions `0..partitions`, or
/// None if any watermark could not be read.
pub fn records_on_topic<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: i32,
) -> Option<(i64, i64)> {
    let (mut low, mut high) = (0, 0);
    for p in 0..partitions {
        let (l, h) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .ok()?;
        low += l;
        high += h;
    }
    Some((low, high))
}

/// Reads partitions `0..partitions` of `topic` from the beginning with one assigned
/// (group-less) consumer until `expected` records arrived, bounded by `run_timeout`.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
    pool: &[u8],
    record_size: usize,
    run_timeout: Duration,
) -> Result<ConsumeResult> {
    consume_with(
        bootstrap,
        &[],
        topic,
        partitions,
        expected,
        pool,
        record_size,
        run_timeout,
    )
}

/// `consume` with extra librdkafka settings (security, for one).
#[allow(clippy::too_many_arguments)]
pub fn consume_with(
    bootstrap: &str,
    client_settings: &[(String, String)],
    topic: &str,
    partitions: i32,
    expected: u64,
    pool: &[u8],
    record_size: usize,
    run_timeout: Duration,
) -> Result<ConsumeResult> {
    let partitions = partitions.max(1);
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "strom-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in client_settings {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().context("creating consumer")?;
    let (low, high) = match records_on_topic(&consumer, topic, partitions) {
        Some((l, h)) => (Some(l), Some(h)),
        None => (None, None),
    };
    let expected = match (low, high) {
        (Some(l), Some(h)) if h > l => (h - l) as u64,
        _ => expected,
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    let t0 = Instant::now();
    let deadline = t0 + run_timeout;
    consumer.assign(&tpl).context("assign")?;
    let (mut records, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut check = PayloadCheck::default();
    let mut first_error = None;
    let mut last = t0;
    let mut timed_out = false;
    while records < expected {
        let now = Instant::now();
        if now >= deadline || now.duration_since(last) > Duration::from_secs(15) {
            timed_out = true;
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let p = m.payload().unwrap_or(&[]);
                records += 1;
                bytes += p.len() as u64;
                check.record(pool, record_size, p);
                last = Instant::now();
            }
            Some(Err(e)) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
                if errors > 1000 {
                    break;
                }
            }
        }
    }
    let secs = last.duration_since(t0).as_secs_f64();
    Ok(ConsumeResult {
        topic: topic.to_string(),
        partitions,
        records_expected: expected,
        records,
        bytes,
        secs,
        mbps: if secs > 0.0 {
            bytes as f64 / secs / 1e6
        } else {
            0.0
        },
        records_per_sec: if secs > 0.0 {
            records as f64 / secs
        } else {
            0.0
        },
        payload_mismatches: check.mismatches,
        duplicates: check.duplicates,
        errors,
        first_error,
        timed_out,
        low_watermark: low,
        high_watermark: high,
        cpu: None,
    })
}

/// Creates `topic` with `partitions` partitions of `replication_factor` replicas
/// through the admin API; an existing topic is an error, so every run starts from a
/// new one.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
) -> Result<()> {
    create(
        bootstrap,
        NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(replication_factor),
        ),
    )
}

/// Creates `topic` with partition `i` on the brokers `assignment[i]` (the first one
/// its preferred leader); an existing topic is an error.
pub fn create_topic_assigned(bootstrap: &str, topic: &str, assignment: &[Vec<i32>]) -> Result<()> {
    let lists: Vec<&[i32]> = assignment.iter().map(Vec::as_slice).collect();
    // librdkafka wants the partition count to match the assignment's.
    let partitions = i32::try_from(lists.len()).context("too many partitions")?;
    create(
        bootstrap,
        NewTopic::new(topic, partitions, TopicReplication::Variable(&lists)),
    )
}

fn create(bootstrap: &str, new: NewTopic<'_>) -> Result<()> {
    let topic = new.name;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating admin client")?;
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .operation_timeout(Some(Duration::from_secs(10)));
    let results = block_on(admin.create_topics([&new], &opts))
        .with_context(|| format!("CreateTopics {topic}"))?;
    for r in results {
        if let Err((name, code)) = r {
            bail!("CreateTopics {name}: {code}");
        }
    }
    ensure_topic(admin.inner(), topic, Duration::from_secs(10))
}

/// One partition's replicas as metadata reports them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionReplicas {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// `topic`-`partition`'s leader, replicas and ISR from one metadata request.
pub fn partition_replicas<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<PartitionReplicas> {
    let md = client.fetch_metadata(Some(topic), timeout)?;
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
        .map(|p| PartitionReplicas {
            leader: p.leader(),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
        .ok_or_else(|| anyhow::anyhow!("{topic}-{partition} missing from metadata"))
}

/// Asks for `topic`'s metadata until partition `partition` has a leader and an ISR
/// of at least `isr_size` replicas (bounded by `timeout`); returns what was seen last.
pub fn wait_isr(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    isr_size: usize,
    timeout: Duration,
) -> Result<PartitionReplicas> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating the metadata client")?;
    let deadline = Instant::now() + timeout;
    loop {
        let seen = partition_replicas(client.client(), topic, partition, Duration::from_secs(2));
        match seen {
            Ok(p) if p.leader >= 0 && p.isr.len() >= isr_size => return Ok(p),
            _ if Instant::now() < deadline => {}
            Ok(p) => bail!(
                "{topic}-{partition}: ISR {:?} (leader {}) after {timeout:?}, wanted {isr_size} replicas",
                p.isr,
                p.leader
            ),
            Err(e) => return Err(e.context(format!("{topic}-{partition} after {timeout:?}"))),
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The (low, high) watermarks of `topic`-`partition`, asked of its leader.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> Result<(i64, i64)> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating the watermark client")?;
    client
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .with_context(|| format!("watermarks of {topic}-{partition}"))
}

/// Runs a future to completion on this thread. rdkafka's admin futures are completed
/// by its own polling thread, so no async runtime is needed.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// What a producer that ran until told to stop (`produce_until`) saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SteadyLoad {
    pub topic: String,
    pub acks: String,
    pub idempotence: bool,
    /// Offered records/s; 0: as fast as librdkafka takes them.
    pub target_rate: u64,
    pub records_sent: u64,
    pub records_acked: u64,
    pub records_failed: u64,
    pub bytes_acked: u64,
    pub first_delivery_error: Option<String>,
    pub client_errors: u64,
    pub first_client_error: Option<String>,
    /// Delivery callbacks still outstanding when the final flush gave up.
    pub unflushed: bool,
}

/// Acknowledged records and bytes at one instant of a `produce_until` run.
#[derive(Debug, Clone, Copy)]
pub struct AckSample {
    pub at: Instant,
    pub acked: u64,
    pub bytes: u64,
}

/// Acknowledged bytes per second between `from` and `to`, from a sample timeline
/// (the samples nearest inside the window); None if the window holds fewer than two.
pub fn rate_between(samples: &[AckSample], from: Instant, to: Instant) -> Option<(f64, f64)> {
    let inside: Vec<&AckSample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    let (first, last) = (inside.first()?, inside.last()?);
    let secs = last.at.duration_since(first.at).as_secs_f64();
    (secs > 0.0).then(|| {
        (
            (last.bytes - first.bytes) as f64 / secs / 1e6,
            (last.acked - first.acked) as f64 / secs,
        )
    })
}

/// The longest stretch between `from` and `to` in which no acknowledgement arrived
/// (resolution: the sample interval).
pub fn longest_stall(samples: &[AckSample], from: Instant, to: Instant) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since: Option<&AckSample> = None;
    for s in samples.iter().filter(|s| s.at >= from && s.at <= to) {
        match since {
            Some(prev) if s.acked == prev.acked => {
                longest = longest.max(s.at.duration_since(prev.at));
            }
            _ => since = Some(s),
        }
    }
    longest
}

/// One producer sending to `topic` (record `i` to partition `i % partitions`) at
/// `rate` records/s (0: as fast as it takes them) until `stop` is set, while its
/// acknowledged counts are sampled every `sample_every` into `samples` (which the
/// caller reads as the run goes, to time windows of it). Then flushes (at most 30 s).
#[allow(clippy::too_many_arguments)]
pub fn produce_until(
    settings: &ProducerSettings,
    topic: &str,
    partitions: i32,
    acks: &str,
    rate: u64,
    pool: &[u8],
    stop: &AtomicBool,
    sample_every: Duration,
    samples: &Mutex<Vec<AckSample>>,
) -> Result<SteadyLoad> {
    let partitions = partitions.max(1);
    let stats = Stats::new(false);
    let producer: ThreadedProducer<Ctx> = settings
        .config(acks)
        .create_with_context(Ctx(stats.clone()))
        .context("creating producer")?;
    ensure_topic(producer.client(), topic, Duration::from_secs(10))?;
    let sample = |stats: &Stats| AckSample {
        at: Instant::now(),
        acked: stats.acked.load(Ordering::Relaxed),
        bytes: stats.acked_bytes.load(Ordering::Relaxed),
    };
    let sampler_done = AtomicBool::new(false);
    let sent = thread::scope(|scope| -> Result<u64> {
        scope.spawn(|| {
            while !sampler_done.load(Ordering::Relaxed) {
                let s = sample(&stats);
                // A poisoned lock only means a panicking reader; the samples are whole.
                samples.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                thread::sleep(sample_every);
            }
        });
        let start = Instant::now();
        let mut buf = Vec::with_capacity(settings.record_size);
        let mut i = 0u64;
        let outcome = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(i);
            }
            if rate > 0 {
                // Open loop: as many records as the schedule says are due by now.
                let due = (start.elapsed().as_nanos() * rate as u128 / 1_000_000_000) as u64;
                if i >= due {
                    thread::sleep(Duration::from_micros(500));
                    continue;
                }
            }
            let payload = record_payload(pool, i, settings.record_size, &mut buf);
            let partition = (i % partitions as u64) as i32;
            // A queue full for a minute means the cluster stopped taking records.
            let deadline = Instant::now() + Duration::from_secs(60);
            match send_one(&producer, topic, partition, payload, 0, deadline) {
                Ok(true) => i += 1,
                Ok(false) => break Err(anyhow::anyhow!("producer queue full for 60 s")),
                Err(e) => break Err(e),
            }
        };
        sampler_done.store(true, Ordering::Relaxed);
        outcome
    })?;
    let flushed = flush_bounded(&producer, Instant::now() + Duration::from_secs(30));
    samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(sample(&stats));
    let result = SteadyLoad {
        topic: topic.to_string(),
        acks: acks.to_string(),
        idempotence: settings.idempotence,
        target_rate: rate,
        records_sent: sent,
        records_acked: stats.acked.load(Ordering::Relaxed),
        records_failed: stats.failed.load(Ordering::Relaxed),
        bytes_acked: stats.acked_bytes.load(Ordering::Relaxed),
        first_delivery_error: stats
            .first_delivery_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        client_errors: stats.client_errors.load(Ordering::Relaxed),
        first_client_error: stats
            .first_client_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        unflushed: !flushed,
    };
    drop(producer);
    Ok(result)
}
