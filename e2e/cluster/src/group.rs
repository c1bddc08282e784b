//! Consumer-group tools for the coordinator failover scenario: a committing group member
//! that records what it consumed, a watcher that samples committed offsets, and the
//! `__consumer_offsets` partition Kafka assigns a group to.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::client_config::{self, Settings};
use crate::error::{HarnessError, Result};
use crate::wait::wait_until;

/// Java's `String.hashCode` over UTF-16 code units, as Kafka uses for group placement.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition that holds `group` (Kafka's `Utils.abs(hash) % n`,
/// where `abs(i32::MIN)` is 0).
pub fn offsets_partition_for(group: &str, offsets_partitions: i32) -> i32 {
    let hash = java_string_hash(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % offsets_partitions
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// What a [`GroupMember`] saw.
#[derive(Debug, Default)]
pub struct MemberRun {
    pub consumed: Vec<Consumed>,
    pub commit_errors: Vec<String>,
    /// Errors the consumer handed to the application, apart from transport notices.
    pub poll_errors: Vec<String>,
    /// librdkafka's "Local: Broker transport failure" events: it reports every closed
    /// broker connection to the application as a consumer error, also when a broker
    /// shuts down cleanly (against Apache Kafka too), and reconnects by itself. Kept
    /// apart so a scenario can demand no other error.
    pub transport_notices: Vec<String>,
}

impl MemberRun {
    /// Offsets of `partition` below `hw` that were never consumed: skipped records.
    pub fn missing_below(&self, partition: i32, hw: i64) -> Vec<i64> {
        let mut seen = vec![false; usize::try_from(hw).unwrap_or(0)];
        for c in self.consumed.iter().filter(|c| c.partition == partition) {
            if let Some(slot) = usize::try_from(c.offset).ok().and_then(|o| seen.get_mut(o)) {
                *slot = true;
            }
        }
        seen.iter()
            .enumerate()
            .filter(|(_, s)| !**s)
            .map(|(o, _)| o as i64)
            .collect()
    }

    /// Places where consumption of a partition jumped forward past unconsumed offsets
    /// (going back, i.e. redelivery after a failover, is allowed).
    pub fn forward_jumps(&self) -> Vec<(i32, i64, i64)> {
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        let mut jumps = Vec::new();
        for c in &self.consumed {
            if let Some(&prev) = last.get(&c.partition) {
                if c.offset > prev + 1 {
                    jumps.push((c.partition, prev, c.offset));
                }
            }
            last.insert(c.partition, c.offset);
        }
        jumps
    }
}

/// A subscribed group member committing synchronously every `commit_every` records (and
/// at least every 200 ms), on its own thread.
pub struct GroupMember {
    stop: Arc<AtomicBool>,
    consumed: Arc<AtomicU64>,
    highest: Arc<Mutex<BTreeMap<i32, i64>>>,
    thread: Option<JoinHandle<MemberRun>>,
}

impl GroupMember {
    pub fn start(bootstrap: &str, group: &str, topic: &str) -> Result<GroupMember> {
        GroupMember::start_with(bootstrap, &[], group, topic)
    }

    /// [`GroupMember::start`] with extra librdkafka settings (see [`client_config`]).
    pub fn start_with(
        bootstrap: &str,
        settings: &Settings,
        group: &str,
        topic: &str,
    ) -> Result<GroupMember> {
        let consumer: BaseConsumer = client_config::apply(
            crate::security::client_config(bootstrap)
                .set("group.id", group)
                .set("client.id", "strom-e2e-member")
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "500")
                .set("fetch.wait.max.ms", "100"),
            settings,
        )
        .create()?;
        consumer.subscribe(&[topic])?;
        let stop = Arc::new(AtomicBool::new(false));
        let consumed = Arc::new(AtomicU64::new(0));
        let highest: Arc<Mutex<BTreeMap<i32, i64>>> = Arc::default();
        let thread = {
            let stop = stop.clone();
            let consumed = consumed.clone();
            let highest = highest.clone();
            std::thread::Builder::new()
                .name("group-member".into())
                .spawn(move || member_loop(consumer, &stop, &consumed, &highest))
                .map_err(|e| HarnessError::io("spawn group member thread", e))?
        };
        Ok(GroupMember {
            stop,
            consumed,
            highest,
            thread: Some(thread),
        })
    }

    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    pub fn wait_consumed_more(&self, more: u64, timeout: Duration) -> Result<()> {
        let target = self.consumed() + more;
        wait_until(&format!("{target} consumed records"), timeout, || {
            let n = self.consumed();
            if n >= target {
                Ok(())
            } else {
                Err(format!("{n} consumed"))
            }
        })
    }

    /// Waits until the member consumed up to (below) each partition's `hw`.
    pub fn wait_caught_up(&self, hws: &BTreeMap<i32, i64>, timeout: Duration) -> Result<()> {
        wait_until(
            "the group member to reach the high watermarks",
            timeout,
            || {
                let highest = self
                    .highest
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let behind: Vec<String> = hws
                    .iter()
                    .filter(|(p, &hw)| hw > 0 && highest.get(p).is_none_or(|&o| o + 1 < hw))
                    .map(|(p, hw)| format!("p{p}: {:?}/{hw}", highest.get(p).map(|o| o + 1)))
                    .collect();
                if behind.is_empty() {
                    Ok(())
                } else {
                    Err(behind.join(", "))
                }
            },
        )
    }

    pub fn stop(mut self) -> Result<MemberRun> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| HarnessError::Protocol("group member thread panicked".into())),
            None => Ok(MemberRun::default()),
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn member_loop(
    consumer: BaseConsumer,
    stop: &AtomicBool,
    consumed: &AtomicU64,
    highest: &Mutex<BTreeMap<i32, i64>>,
) -> MemberRun {
    const COMMIT_EVERY: usize = 100;
    const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
    let mut run = MemberRun::default();
    let mut uncommitted = 0usize;
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                run.consumed.push(Consumed {
                    partition: m.partition(),
                    offset: m.offset(),
                    value,
                });
                consumed.fetch_add(1, Ordering::Relaxed);
                let mut h = highest.lock().unwrap_or_else(|e| e.into_inner());
                let entry = h.entry(m.partition()).or_insert(m.offset());
                *entry = (*entry).max(m.offset());
                uncommitted += 1;
            }
            Some(Err(
                e @ KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure),
            )) => run.transport_notices.push(e.to_string()),
            Some(Err(e)) => run.poll_errors.push(e.to_string()),
            None => {}
        }
        if uncommitted > 0
            && (uncommitted >= COMMIT_EVERY || last_commit.elapsed() >= COMMIT_INTERVAL)
        {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => uncommitted = 0,
                // librdkafka's way of saying there was nothing to commit: the records
                // counted belonged to partitions a rebalance has since taken away.
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => uncommitted = 0,
                // During a coordinator move commits fail; the next one carries the offsets.
                Err(e) => run.commit_errors.push(e.to_string()),
            }
            last_commit = Instant::now();
        }
    }
    if uncommitted > 0 {
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            run.commit_errors.push(e.to_string());
        }
    }
    consumer.unsubscribe();
    run
}

/// Fetches a group's committed offsets (OffsetFetch) with a client that never joins.
pub struct CommittedOffsets {
    consumer: BaseConsumer,
    topic: String,
    partitions: i32,
}

impl CommittedOffsets {
    pub fn new(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Result<Self> {
        let consumer: BaseConsumer = crate::security::client_config(bootstrap)
            .set("group.id", group)
            .set("client.id", "strom-e2e-offsets")
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(CommittedOffsets {
            consumer,
            topic: topic.to_string(),
            partitions,
        })
    }

    /// Committed offset per partition; partitions without a commit are absent.
    pub fn fetch(&self, timeout: Duration) -> Result<BTreeMap<i32, i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        let committed = self.consumer.committed_offsets(tpl, timeout)?;
        let mut offsets = BTreeMap::new();
        for e in committed.elements() {
            if let Some(err) = e.error().err() {
                return Err(HarnessError::Kafka(err));
            }
            if let Offset::Offset(o) = e.offset() {
                offsets.insert(e.partition(), o);
            }
        }
        Ok(offsets)
    }
}

/// Samples committed offsets on a thread and records every decrease.
pub struct CommitWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<WatchRun>>,
}

#[derive(Debug, Default)]
pub struct WatchRun {
    pub samples: usize,
    pub fetch_errors: usize,
    /// `(partition, before, after)` for every observed decrease.
    pub regressions: Vec<(i32, i64, i64)>,
    pub last: BTreeMap<i32, i64>,
}

impl CommitWatcher {
    pub fn start(offsets: CommittedOffsets, every: Duration) -> Result<CommitWatcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("commit-watcher".into())
                .spawn(move || {
                    let mut run = WatchRun::default();
                    while !stop.load(Ordering::Relaxed) {
                        match offsets.fetch(Duration::from_secs(2)) {
                            Ok(now) => {
                                run.samples += 1;
                                for (p, o) in now {
                                    if let Some(&before) = run.last.get(&p) {
                                        if o < before {
                                            run.regressions.push((p, before, o));
                                        }
                                    }
                                    let e = run.last.entry(p).or_insert(o);
                                    *e = (*e).max(o);
                                }
                            }
                            Err(_) => run.fetch_errors += 1,
                        }
                        std::thread::sleep(every);
                    }
                    run
                })
                .map_err(|e| HarnessError::io("spawn commit watcher", e))?
        };
        Ok(CommitWatcher {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) -> Result<WatchRun> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| HarnessError::Protocol("commit watcher panicked".into())),
            None => Ok(WatchRun::default()),
        }
    }
}

impl Drop for CommitWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash_matches_known_values() {
        // Values from Java's "…".hashCode().
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
        // Non-BMP characters hash as two UTF-16 surrogates.
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn offsets_partition_follows_kafka_abs_rule() {
        assert_eq!(offsets_partition_for("polygenelubricants", 50), 0);
        // Negative hash: abs gives 41, masking the sign bit would give 7.
        assert_eq!(java_string_hash("strom-e2e-failover-group"), -2_021_077_641);
        assert_eq!(offsets_partition_for("strom-e2e-failover-group", 50), 41);
        assert_eq!(offsets_partition_for("hello", 50), 99_162_322 % 50);
        let negative = "strom-e2e-group-negative-probe-xyz";
        let h = java_string_hash(negative);
        assert_eq!(
            offsets_partition_for(negative, 50),
            if h == i32::MIN { 0 } else { h.abs() % 50 }
        );
    }

    fn consumed(entries: &[(i32, i64)]) -> MemberRun {
        MemberRun {
            consumed: entries
                .iter()
                .map(|&(partition, offset)| Consumed {
                    partition,
                    offset,
                    value: String::new(),
                })
                .collect(),
            ..MemberRun::default()
        }
    }

    #[test]
    fn redelivery_is_fine_but_skips_are_found() {
        let run = consumed(&[(0, 0), (0, 1), (1, 0), (0, 2), (0, 1), (0, 2), (0, 3)]);
        assert!(run.forward_jumps().is_empty());
        assert!(run.missing_below(0, 4).is_empty());
        assert_eq!(run.missing_below(1, 3), vec![1, 2]);

        let skipped = consumed(&[(0, 0), (0, 1), (0, 5)]);
        assert_eq!(skipped.forward_jumps(), vec![(0, 1, 5)]);
        assert_eq!(skipped.missing_below(0, 6), vec![2, 3, 4]);
    }
}
