//! What a load generator sent and what came of each send: the input to the checker.

use std::collections::BTreeMap;

/// The fate of one send as the producer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (acks=all), at this offset when the client reported one.
    ///
    /// librdkafka's idempotent producer reports no offset (`-1001`) for a batch it acks
    /// implicitly: the batch's response was lost (say, the leader was killed), and a later
    /// batch of the same partition then succeeded, which proves the earlier one was written
    /// (`rd_kafka_dr_implicit_ack`). Apache Kafka brokers see the same acknowledgements.
    Acked { offset: Option<i64> },
    /// The client gave up; the write may or may not have happened.
    Failed { error: String },
}

/// One send. `seq` is the producer's send order, starting at 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    pub producer: u32,
    pub seq: u64,
    pub partition: i32,
    pub value: String,
    pub outcome: Outcome,
}

impl SendRecord {
    pub fn is_acked(&self) -> bool {
        matches!(self.outcome, Outcome::Acked { .. })
    }
}

/// The value a producer writes for its `seq`-th send.
pub fn value_for(producer: u32, seq: u64) -> String {
    format!("p{producer}-{seq}")
}

/// `(producer, seq)` of a value written by [`value_for`].
pub fn parse_value(value: &str) -> Option<(u32, u64)> {
    let (producer, seq) = value.strip_prefix('p')?.split_once('-')?;
    Some((producer.parse().ok()?, seq.parse().ok()?))
}

/// Every send of one or more producers.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub sends: Vec<SendRecord>,
}

impl History {
    pub fn new(sends: Vec<SendRecord>) -> History {
        History { sends }
    }

    pub fn merge(mut self, other: History) -> History {
        self.sends.extend(other.sends);
        self
    }

    pub fn acked(&self) -> usize {
        self.sends.iter().filter(|s| s.is_acked()).count()
    }

    /// Acknowledged sends whose offset the client did not report (see [`Outcome::Acked`]).
    pub fn acked_without_offset(&self) -> usize {
        self.sends
            .iter()
            .filter(|s| s.outcome == Outcome::Acked { offset: None })
            .count()
    }

    pub fn failures(&self) -> Vec<&SendRecord> {
        self.sends
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Failed { .. }))
            .collect()
    }

    pub fn producers(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.sends.iter().map(|s| s.producer).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Failure counts by error text, for assertion messages.
    pub fn failure_summary(&self) -> BTreeMap<String, usize> {
        let mut by_error = BTreeMap::new();
        for s in &self.sends {
            if let Outcome::Failed { error } = &s.outcome {
                *by_error.entry(error.clone()).or_insert(0) += 1;
            }
        }
        by_error
    }
}

impl std::fmt::Display for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sends by producers {:?}: {} acked, {} failed",
            self.sends.len(),
            self.producers(),
            self.acked(),
            self.sends.len() - self.acked()
        )?;
        for (error, n) in self.failure_summary() {
            write!(f, "\n  {n} x {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_foreign_values_do_not_parse() {
        assert_eq!(parse_value(&value_for(7, 12345)), Some((7, 12345)));
        for foreign in ["", "p", "p1", "q1-2", "p1-x", "px-1", "fill-3"] {
            assert_eq!(parse_value(foreign), None, "{foreign}");
        }
    }
}
