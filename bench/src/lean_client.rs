//! `strom-bench security --client strom`: produce and consume through strom-client's own
//! connections (rustls, the SCRAM exchange) instead of librdkafka. The record batches are
//! encoded before the run is metered and each connection keeps one request in flight, so
//! the client spends little more per byte than the encryption and the socket copies.
//!
//! Why it exists: one librdkafka producer encrypting over TLS saturates its own core long
//! before a broker does (BENCHMARKS.md, "TLS and SASL"), so its figure is the client's.
//! With `--broker-cpus` and this client the broker sets the produce figure, and TLS
//! against plaintext is what the broker pays for it (consume stays client-bound on two
//! cores).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use strom_client::{Connection, Security};
use strom_test_support::records::{now_ms, plain_batch};
use tokio::task::JoinSet;

use crate::kafka::{record_payload, ConsumeResult, PayloadCheck, ProduceResult};

/// Versions both Strom and Apache Kafka 4.4 serve, named by topic (not topic id).
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
/// librdkafka's `max.partition.fetch.bytes` and `fetch.max.bytes` defaults, so a fetch
/// returns what librdkafka's would.
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
const FETCH_MAX_BYTES: i32 = 50 << 20;
/// A batch stays under the broker's default `message.max.bytes` (1,048,588), as
/// librdkafka keeps its batches under its own `message.max.bytes`.
const MAX_BATCH_BYTES: usize = 1_000_000;
/// A record's framing in a v2 batch, at most, for the records this client writes.
const RECORD_OVERHEAD: usize = 16;

/// Where and what a lean run sends: `partitions` partitions of `topic`, one connection
/// each; record `i` (a `record_size`-byte payload cut from `pool`) goes to partition
/// `i % partitions`, as in the librdkafka runs.
pub struct LeanLoad<'a> {
    pub bootstrap: String,
    pub security: Security,
    pub topic: String,
    pub partitions: i32,
    pub record_size: usize,
    pub pool: &'a [u8],
    pub timeout: Duration,
}

impl LeanLoad<'_> {
    async fn connect_all(&self) -> Result<Vec<Connection>> {
        let mut connections = Vec::new();
        for _ in 0..self.partitions {
            let conn = self
                .security
                .connect(&self.bootstrap, "strom-bench-lean", self.timeout)
                .await
                .with_context(|| format!("connecting to {}", self.bootstrap))?;
            connections.push(conn);
        }
        Ok(connections)
    }

    fn topic_name(&self) -> TopicName {
        TopicName(StrBytes::from_string(self.topic.clone()))
    }
}

/// Each partition's share of `records` as Produce-ready batches of about `batch_bytes`
/// (under `message.max.bytes`), with how many records each holds. Done before the run is
/// metered, so neither its time nor its CPU counts.
pub fn encode_batches(
    load: &LeanLoad<'_>,
    records: u64,
    batch_bytes: usize,
) -> Vec<Vec<(Bytes, u64)>> {
    let per_batch =
        (batch_bytes.min(MAX_BATCH_BYTES) / (load.record_size + RECORD_OVERHEAD)).max(1);
    let partitions = load.partitions.max(1) as u64;
    let timestamp = now_ms();
    let mut payload = Vec::with_capacity(load.record_size);
    (0..partitions)
        .map(|p| {
            let indices: Vec<u64> = (p..records).step_by(partitions as usize).collect();
            indices
                .chunks(per_batch)
                .map(|chunk| {
                    let values = chunk.iter().map(|&i| {
                        Bytes::copy_from_slice(record_payload(
                            load.pool,
                            i,
                            load.record_size,
                            &mut payload,
                        ))
                    });
                    (plain_batch(timestamp, values), chunk.len() as u64)
                })
                .collect()
        })
        .collect()
}

/// What one partition's producer got through before it finished or was refused.
struct Sent {
    acked: u64,
    last_ack: Option<Instant>,
    error: Option<String>,
}

/// Produces the `batches` of [`encode_batches`] with acks=1, every connection sending its
/// partition's batches one request at a time.
pub async fn produce(
    load: &LeanLoad<'_>,
    batches: Vec<Vec<(Bytes, u64)>>,
) -> Result<ProduceResult> {
    let records: u64 = batches.iter().flatten().map(|(_, count)| count).sum();
    let connections = load.connect_all().await?;
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    for (partition, (conn, batches)) in connections.into_iter().zip(batches).enumerate() {
        tasks.spawn(produce_partition(
            conn,
            load.topic_name(),
            partition as i32,
            batches,
        ));
    }
    let joined = tokio::time::timeout(load.timeout, tasks.join_all()).await;
    let timed_out = joined.is_err();
    let outcomes = joined.unwrap_or_default();
    let acked: u64 = outcomes.iter().map(|s| s.acked).sum();
    let first_error = outcomes.iter().find_map(|s| s.error.clone());
    let last = outcomes.iter().filter_map(|s| s.last_ack).max();
    let secs = last.map_or(0.0, |l| l.duration_since(t0).as_secs_f64());
    let bytes = acked * load.record_size as u64;
    Ok(ProduceResult {
        topic: load.topic.clone(),
        acks: "1".to_string(),
        record_size: load.record_size,
        partitions: load.partitions,
        producers: load.partitions as usize,
        records_target: records,
        records_sent: records,
        records_acked: acked,
        records_failed: if timed_out { 0 } else { records - acked },
        bytes_acked: bytes,
        secs,
        mbps: per_second(bytes as f64 / 1e6, secs),
        records_per_sec: per_second(acked as f64, secs),
        timed_out,
        first_delivery_error: first_error,
        client_errors: 0,
        first_client_error: None,
        cpu: None,
    })
}

async fn produce_partition(
    mut conn: Connection,
    topic: TopicName,
    partition: i32,
    batches: Vec<(Bytes, u64)>,
) -> Sent {
    let mut sent = Sent {
        acked: 0,
        last_ack: None,
        error: None,
    };
    for (batch, count) in batches {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic.clone())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let refused = match conn.send(request, PRODUCE_VERSION).await {
            Err(e) => Some(e.to_string()),
            Ok(r) => r
                .responses
                .first()
                .and_then(|t| t.partition_responses.first())
                .map_or(Some("a response without the partition".to_string()), |p| {
                    (p.error_code != 0).then(|| format!("error code {}", p.error_code))
                }),
        };
        if let Some(why) = refused {
            sent.error = Some(format!("partition {partition}: {why}"));
            break;
        }
        sent.acked += count;
        sent.last_ack = Some(Instant::now());
    }
    sent
}

/// What one partition's consumer read.
struct Read {
    records: u64,
    bytes: u64,
    check: PayloadCheck,
    last_record: Option<Instant>,
    log_start: i64,
    high_watermark: i64,
}

/// Reads every partition from offset 0 to its high watermark, a connection each, and
/// checks each payload against what the producer sent.
pub async fn consume(load: &LeanLoad<'_>, expected: u64) -> Result<ConsumeResult> {
    let connections = load.connect_all().await?;
    let pool: Arc<[u8]> = load.pool.into();
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    for (partition, conn) in connections.into_iter().enumerate() {
        tasks.spawn(consume_partition(
            conn,
            load.topic_name(),
            partition as i32,
            pool.clone(),
            load.record_size,
        ));
    }
    let joined = tokio::time::timeout(load.timeout, tasks.join_all()).await;
    let timed_out = joined.is_err();
    let reads = joined.unwrap_or_default();
    let mut result = ConsumeResult {
        topic: load.topic.clone(),
        partitions: load.partitions,
        records_expected: expected,
        records: 0,
        bytes: 0,
        secs: 0.0,
        mbps: 0.0,
        records_per_sec: 0.0,
        payload_mismatches: 0,
        duplicates: 0,
        errors: 0,
        first_error: None,
        timed_out,
        low_watermark: None,
        high_watermark: None,
        cpu: None,
    };
    let mut last = None;
    let (mut low, mut high) = (0, 0);
    for read in reads {
        match read {
            Ok(r) => {
                result.records += r.records;
                result.bytes += r.bytes;
                result.payload_mismatches += r.check.mismatches;
                result.duplicates += r.check.duplicates;
                last = last.max(r.last_record);
                low += r.log_start;
                high += r.high_watermark;
            }
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    if result.errors == 0 && !timed_out {
        (result.low_watermark, result.high_watermark) = (Some(low), Some(high));
    }
    result.secs = last.map_or(0.0, |l| l.duration_since(t0).as_secs_f64());
    result.mbps = per_second(result.bytes as f64 / 1e6, result.secs);
    result.records_per_sec = per_second(result.records as f64, result.secs);
    Ok(result)
}

async fn consume_partition(
    mut conn: Connection,
    topic: TopicName,
    partition: i32,
    pool: Arc<[u8]>,
    record_size: usize,
) -> Result<Read> {
    let mut read = Read {
        records: 0,
        bytes: 0,
        check: PayloadCheck::default(),
        last_record: None,
        log_start: 0,
        high_watermark: 0,
    };
    let mut offset = 0i64;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(PARTITION_FETCH_BYTES)])]);
        let response = conn.send(request, FETCH_VERSION).await?;
        let Some(data) = response
            .responses
            .into_iter()
            .next()
            .and_then(|t| t.partitions.into_iter().next())
        else {
            bail!("partition {partition}: a fetch response without the partition");
        };
        if data.error_code != 0 {
            bail!(
                "partition {partition}: fetch error code {}",
                data.error_code
            );
        }
        (read.log_start, read.high_watermark) = (data.log_start_offset, data.high_watermark);
        let mut whole = whole_batches(data.records.unwrap_or_default());
        for batch in RecordBatchDecoder::decode_all(&mut whole)
            .with_context(|| format!("partition {partition}: decoding the fetched records"))?
        {
            for record in batch.records {
                let value = record.value.unwrap_or_default();
                read.check.record(&pool, record_size, &value);
                read.records += 1;
                read.bytes += value.len() as u64;
                offset = record.offset + 1;
            }
            read.last_record = Some(Instant::now());
        }
        if offset >= data.high_watermark {
            return Ok(read);
        }
    }
}

/// `records` up to the end of its last complete batch. A broker may cut the last batch
/// of a fetch at the size limit (Kafka's do); the next fetch starts at it again. Reads
/// only each batch's length field (after its 8-byte base offset).
fn whole_batches(mut records: Bytes) -> Bytes {
    let mut end = 0usize;
    while let Some(length) = records.get(end + 8..end + 12) {
        let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        let next = end + 12 + usize::try_from(length).unwrap_or(usize::MAX / 2);
        if next > records.len() {
            break;
        }
        end = next;
    }
    records.truncate(end);
    records
}

fn per_second(amount: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_batch_at_the_end_is_left_for_the_next_fetch() {
        let one = plain_batch(1, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        let two = plain_batch(1, [Bytes::from_static(b"c")]);
        let mut both = one.to_vec();
        both.extend_from_slice(&two);
        assert_eq!(whole_batches(Bytes::from(both.clone())), both);
        let cut = Bytes::from(both[..both.len() - 3].to_vec());
        assert_eq!(whole_batches(cut), one);
        assert_eq!(whole_batches(Bytes::from_static(b"short")), Bytes::new());
    }
}
