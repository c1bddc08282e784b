//! Reads partitions from offset 0 up to a high watermark with a fresh rdkafka consumer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::client_config::{self, Settings};
use crate::error::{HarnessError, Result};

/// Per partition, `(offset, value)` in log order.
pub type Observed = BTreeMap<i32, Vec<(i64, String)>>;

/// Reads `[0, hw)` of every `(partition, hw)` in `until`.
pub fn read_partitions(
    bootstrap: &str,
    topic: &str,
    until: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> Result<Observed> {
    read_partitions_with(bootstrap, &[], topic, until, timeout)
}

/// [`read_partitions`] with extra librdkafka settings (see [`client_config`]).
pub fn read_partitions_with(
    bootstrap: &str,
    settings: &Settings,
    topic: &str,
    until: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> Result<Observed> {
    let consumer: BaseConsumer = client_config::apply(
        crate::security::client_config(bootstrap)
            .set("group.id", "strom-e2e-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "100"),
        settings,
    )
    .create()?;
    let mut assignment = TopicPartitionList::new();
    let mut observed: Observed = BTreeMap::new();
    for (&partition, &hw) in until {
        observed.insert(partition, Vec::new());
        if hw > 0 {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    if assignment.count() == 0 {
        return Ok(observed);
    }
    consumer.assign(&assignment)?;
    let complete = |observed: &Observed| {
        until.iter().all(|(p, &hw)| {
            hw == 0
                || observed
                    .get(p)
                    .and_then(|v| v.last())
                    .is_some_and(|&(o, _)| o >= hw - 1)
        })
    };
    let started = Instant::now();
    let mut last_error = String::from("none");
    while !complete(&observed) {
        if started.elapsed() > timeout {
            let progress: Vec<String> = until
                .iter()
                .map(|(p, hw)| {
                    let at = observed
                        .get(p)
                        .and_then(|v| v.last())
                        .map(|(o, _)| o + 1)
                        .unwrap_or(0);
                    format!("{topic}-{p}: {at}/{hw}")
                })
                .collect();
            return Err(HarnessError::Timeout {
                what: format!("reading {}", progress.join(", ")),
                after: timeout,
                last: last_error,
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let Some(&hw) = until.get(&m.partition()) else {
                    continue;
                };
                if m.offset() < hw {
                    let value =
                        String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                    observed
                        .entry(m.partition())
                        .or_default()
                        .push((m.offset(), value));
                }
            }
            // Transient while leadership settles; the deadline bounds it.
            Some(Err(e)) => last_error = e.to_string(),
            None => {}
        }
    }
    Ok(observed)
}
