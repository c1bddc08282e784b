//! Checks a recorded [`History`] against what the partitions hold, and replicas against
//! each other:
//! 1. every acknowledged value is at exactly its acknowledged partition and offset (or, when
//!    the client reported no offset, somewhere in its partition);
//! 2. no value appears twice;
//! 3. per producer and partition, values appear in send order;
//! 4. every in-sync replica holds byte-identical batches below the high watermark.
//!
//! Values of tracked producers that were never sent are reported too (corruption).

use std::collections::{BTreeMap, HashMap};

use crate::history::{parse_value, History, Outcome};
use crate::reader::Observed;
use crate::segments::ReplicaPrefix;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    LostAck {
        value: String,
        partition: i32,
        offset: i64,
        found: Option<String>,
    },
    /// Acknowledged without an offset, and its partition does not hold it.
    LostOffsetlessAck {
        value: String,
        partition: i32,
    },
    Duplicate {
        value: String,
        at: Vec<(i32, i64)>,
    },
    OutOfOrder {
        producer: u32,
        partition: i32,
        earlier_seq: u64,
        earlier_offset: i64,
        later_seq: u64,
        later_offset: i64,
    },
    NeverSent {
        value: String,
        partition: i32,
        offset: i64,
    },
    ReplicaDiverges {
        partition: i32,
        hw: i64,
        reference: i32,
        replica: i32,
        first_different_byte: usize,
        reference_len: usize,
        replica_len: usize,
    },
    ReplicaShort {
        partition: i32,
        hw: i64,
        replica: i32,
        has_up_to: i64,
    },
    ReplicaUnreadable {
        partition: i32,
        replica: i32,
        error: String,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::LostAck { value, partition, offset, found } => write!(
                f,
                "acknowledged {value} at partition {partition} offset {offset}, but that offset holds {}",
                found.as_deref().map(|v| format!("{v:?}")).unwrap_or_else(|| "nothing".into())
            ),
            Violation::LostOffsetlessAck { value, partition } => write!(
                f,
                "acknowledged {value} in partition {partition} (no offset reported), but the partition does not hold it"
            ),
            Violation::Duplicate { value, at } => write!(f, "{value} appears {} times: {at:?}", at.len()),
            Violation::OutOfOrder { producer, partition, earlier_seq, earlier_offset, later_seq, later_offset } => write!(
                f,
                "producer {producer} partition {partition}: seq {later_seq} at offset {later_offset} follows seq {earlier_seq} at offset {earlier_offset}"
            ),
            Violation::NeverSent { value, partition, offset } => {
                write!(f, "{value} at partition {partition} offset {offset} was never sent")
            }
            Violation::ReplicaDiverges { partition, hw, reference, replica, first_different_byte, reference_len, replica_len } => write!(
                f,
                "partition {partition} below hw {hw}: replica {replica} ({replica_len} bytes) differs from replica {reference} ({reference_len} bytes) from byte {first_different_byte}"
            ),
            Violation::ReplicaShort { partition, hw, replica, has_up_to } => write!(
                f,
                "partition {partition}: in-sync replica {replica} holds offsets only below {has_up_to}, hw is {hw}"
            ),
            Violation::ReplicaUnreadable { partition, replica, error } => {
                write!(f, "partition {partition}: replica {replica} unreadable: {error}")
            }
        }
    }
}

/// Rules 1–3 and never-sent values.
pub fn check_history(history: &History, observed: &Observed) -> Vec<Violation> {
    let mut violations = Vec::new();
    let tracked: Vec<u32> = history.producers();
    let sent: HashMap<&str, ()> = history
        .sends
        .iter()
        .map(|s| (s.value.as_str(), ()))
        .collect();

    let mut at: HashMap<(i32, i64), &str> = HashMap::new();
    let mut places: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (&partition, records) in observed {
        for (offset, value) in records {
            at.insert((partition, *offset), value.as_str());
            places
                .entry(value.as_str())
                .or_default()
                .push((partition, *offset));
        }
    }

    for send in &history.sends {
        let offset = match send.outcome {
            Outcome::Failed { .. } => continue,
            Outcome::Acked {
                offset: Some(offset),
            } => offset,
            Outcome::Acked { offset: None } => {
                let in_partition = places
                    .get(send.value.as_str())
                    .is_some_and(|at| at.iter().any(|&(p, _)| p == send.partition));
                if !in_partition {
                    violations.push(Violation::LostOffsetlessAck {
                        value: send.value.clone(),
                        partition: send.partition,
                    });
                }
                continue;
            }
        };
        let found = at.get(&(send.partition, offset)).copied();
        if found != Some(send.value.as_str()) {
            violations.push(Violation::LostAck {
                value: send.value.clone(),
                partition: send.partition,
                offset,
                found: found.map(str::to_string),
            });
        }
    }

    for (value, at) in &places {
        let ours = parse_value(value).is_some_and(|(p, _)| tracked.contains(&p));
        if !ours {
            continue;
        }
        if at.len() > 1 {
            violations.push(Violation::Duplicate {
                value: value.to_string(),
                at: at.clone(),
            });
        }
        if !sent.contains_key(value) {
            for &(partition, offset) in at {
                violations.push(Violation::NeverSent {
                    value: value.to_string(),
                    partition,
                    offset,
                });
            }
        }
    }

    for (&partition, records) in observed {
        let mut last: HashMap<u32, (u64, i64)> = HashMap::new();
        for (offset, value) in records {
            let Some((producer, seq)) = parse_value(value) else {
                continue;
            };
            if !tracked.contains(&producer) {
                continue;
            }
            if let Some(&(earlier_seq, earlier_offset)) = last.get(&producer) {
                // Equal seqs are duplicates, reported above.
                if seq < earlier_seq {
                    violations.push(Violation::OutOfOrder {
                        producer,
                        partition,
                        earlier_seq,
                        earlier_offset,
                        later_seq: seq,
                        later_offset: *offset,
                    });
                }
            }
            let entry = last.entry(producer).or_insert((seq, *offset));
            if seq >= entry.0 {
                *entry = (seq, *offset);
            }
        }
    }
    violations
}

/// Rule 4 for one partition: `replicas` are the in-sync replicas' prefixes below `hw`
/// (or why one could not be read). The first readable replica is the reference.
pub fn check_replicas(
    partition: i32,
    hw: i64,
    replicas: &[(i32, Result<ReplicaPrefix, String>)],
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut reference: Option<(i32, &ReplicaPrefix)> = None;
    for (replica, prefix) in replicas {
        let prefix = match prefix {
            Ok(p) => p,
            Err(error) => {
                violations.push(Violation::ReplicaUnreadable {
                    partition,
                    replica: *replica,
                    error: error.clone(),
                });
                continue;
            }
        };
        if prefix.next_offset < hw {
            violations.push(Violation::ReplicaShort {
                partition,
                hw,
                replica: *replica,
                has_up_to: prefix.next_offset,
            });
        }
        match reference {
            None => reference = Some((*replica, prefix)),
            Some((reference_id, reference_prefix)) => {
                if reference_prefix.bytes != prefix.bytes {
                    let first = reference_prefix
                        .bytes
                        .iter()
                        .zip(&prefix.bytes)
                        .position(|(a, b)| a != b)
                        .unwrap_or(reference_prefix.bytes.len().min(prefix.bytes.len()));
                    violations.push(Violation::ReplicaDiverges {
                        partition,
                        hw,
                        reference: reference_id,
                        replica: *replica,
                        first_different_byte: first,
                        reference_len: reference_prefix.bytes.len(),
                        replica_len: prefix.bytes.len(),
                    });
                }
            }
        }
    }
    violations
}

/// The checker's verdict on one scenario.
#[derive(Debug, Default)]
pub struct Report {
    pub topic: String,
    pub violations: Vec<Violation>,
    /// Things worth knowing that are not violations (e.g. an ISR that did not refill).
    pub notes: Vec<String>,
    pub acked: usize,
    pub failed: usize,
    pub records_read: usize,
    pub replicas_compared: usize,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// At most this many violations of each kind are printed; the counts are always shown.
const SHOWN_PER_KIND: usize = 10;

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "topic {}: {} acked, {} failed sends; {} records read; {} replica prefixes compared; {} violations",
            self.topic,
            self.acked,
            self.failed,
            self.records_read,
            self.replicas_compared,
            self.violations.len()
        )?;
        let mut by_kind: BTreeMap<&'static str, Vec<&Violation>> = BTreeMap::new();
        for v in &self.violations {
            by_kind.entry(kind(v)).or_default().push(v);
        }
        for (kind, list) in by_kind {
            write!(f, "\n  {kind}: {}", list.len())?;
            for v in list.iter().take(SHOWN_PER_KIND) {
                write!(f, "\n    {v}")?;
            }
        }
        for note in &self.notes {
            write!(f, "\n  note: {note}")?;
        }
        Ok(())
    }
}

fn kind(v: &Violation) -> &'static str {
    match v {
        Violation::LostAck { .. } => "acknowledged write missing or moved",
        Violation::LostOffsetlessAck { .. } => "acknowledged write (no offset) missing",
        Violation::Duplicate { .. } => "duplicate",
        Violation::OutOfOrder { .. } => "out of send order",
        Violation::NeverSent { .. } => "never sent",
        Violation::ReplicaDiverges { .. } => "replicas diverge",
        Violation::ReplicaShort { .. } => "in-sync replica short of hw",
        Violation::ReplicaUnreadable { .. } => "replica unreadable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{value_for, Outcome, SendRecord};
    use crate::segments::read_replica_prefix;
    use crate::segments::testing::{fake_batch, write_fake_segments};

    fn acked(producer: u32, seq: u64, partition: i32, offset: i64) -> SendRecord {
        SendRecord {
            producer,
            seq,
            partition,
            value: value_for(producer, seq),
            outcome: Outcome::Acked {
                offset: Some(offset),
            },
        }
    }

    /// Acknowledged the way librdkafka acks a batch implicitly: no offset.
    fn acked_without_offset(producer: u32, seq: u64, partition: i32) -> SendRecord {
        SendRecord {
            outcome: Outcome::Acked { offset: None },
            ..acked(producer, seq, partition, -1)
        }
    }

    fn failed(producer: u32, seq: u64, partition: i32) -> SendRecord {
        SendRecord {
            producer,
            seq,
            partition,
            value: value_for(producer, seq),
            outcome: Outcome::Failed {
                error: "timed out".into(),
            },
        }
    }

    fn log(entries: &[(i32, i64, &str)]) -> Observed {
        let mut observed = Observed::new();
        for &(p, o, v) in entries {
            observed.entry(p).or_default().push((o, v.to_string()));
        }
        observed
    }

    /// Two producers, two partitions, one failed send that did land (allowed) and one
    /// that did not (allowed), plus a foreign value (ignored).
    fn clean() -> (History, Observed) {
        let history = History::new(vec![
            acked(1, 0, 0, 0),
            acked(1, 1, 1, 0),
            failed(1, 2, 0),
            acked(1, 3, 1, 1),
            acked(2, 0, 0, 2),
            failed(2, 1, 0),
        ]);
        let observed = log(&[
            (0, 0, "p1-0"),
            (0, 1, "p1-2"),
            (0, 2, "p2-0"),
            (0, 3, "fill-7"),
            (1, 0, "p1-1"),
            (1, 1, "p1-3"),
        ]);
        (history, observed)
    }

    #[test]
    fn a_consistent_history_passes() {
        let (history, observed) = clean();
        assert_eq!(check_history(&history, &observed), vec![]);
    }

    #[test]
    fn a_lost_acknowledged_write_is_reported() {
        let (history, mut observed) = clean();
        observed.get_mut(&1).unwrap().pop();
        let v = check_history(&history, &observed);
        assert_eq!(
            v,
            vec![Violation::LostAck {
                value: "p1-3".into(),
                partition: 1,
                offset: 1,
                found: None
            }]
        );
    }

    #[test]
    fn an_ack_without_offset_needs_the_value_somewhere_in_its_partition() {
        let (mut history, observed) = clean();
        // p1-2 landed at 0/1; an offset-less ack for it passes there, not for partition 1.
        history.sends[2] = acked_without_offset(1, 2, 0);
        assert_eq!(check_history(&history, &observed), vec![]);
        history.sends[2] = acked_without_offset(1, 2, 1);
        assert_eq!(
            check_history(&history, &observed),
            vec![Violation::LostOffsetlessAck {
                value: "p1-2".into(),
                partition: 1
            }]
        );
    }

    #[test]
    fn an_acknowledged_write_at_another_offset_is_reported() {
        let (history, _) = clean();
        // p1-1 was acked at 1/0 but the log has it at 1/1, and p1-3 at 1/0.
        let observed = log(&[
            (0, 0, "p1-0"),
            (0, 2, "p2-0"),
            (1, 0, "p1-3"),
            (1, 1, "p1-1"),
        ]);
        let v = check_history(&history, &observed);
        assert!(v.contains(&Violation::LostAck {
            value: "p1-1".into(),
            partition: 1,
            offset: 0,
            found: Some("p1-3".into())
        }));
        assert!(v.iter().any(|x| matches!(
            x,
            Violation::OutOfOrder {
                producer: 1,
                partition: 1,
                ..
            }
        )));
    }

    #[test]
    fn a_duplicate_is_reported_even_for_unacknowledged_sends() {
        let (history, _) = clean();
        let observed = log(&[
            (0, 0, "p1-0"),
            (0, 1, "p1-2"),
            (0, 2, "p2-0"),
            (0, 3, "p2-1"),
            (0, 4, "p2-1"),
            (1, 0, "p1-1"),
            (1, 1, "p1-3"),
        ]);
        assert_eq!(
            check_history(&history, &observed),
            vec![Violation::Duplicate {
                value: "p2-1".into(),
                at: vec![(0, 3), (0, 4)]
            }]
        );
    }

    #[test]
    fn reordering_within_a_producer_and_partition_is_reported() {
        let history = History::new(vec![
            failed(1, 0, 0),
            failed(1, 1, 0),
            failed(1, 2, 0),
            acked(2, 0, 0, 1),
        ]);
        // Interleaving with another producer is fine; p1-2 before p1-1 is not.
        let observed = log(&[
            (0, 0, "p1-0"),
            (0, 1, "p2-0"),
            (0, 2, "p1-2"),
            (0, 3, "p1-1"),
        ]);
        assert_eq!(
            check_history(&history, &observed),
            vec![Violation::OutOfOrder {
                producer: 1,
                partition: 0,
                earlier_seq: 2,
                earlier_offset: 2,
                later_seq: 1,
                later_offset: 3
            }]
        );
    }

    #[test]
    fn a_value_nobody_sent_is_reported() {
        let (history, mut observed) = clean();
        observed.get_mut(&1).unwrap().push((2, "p2-99".into()));
        assert_eq!(
            check_history(&history, &observed),
            vec![Violation::NeverSent {
                value: "p2-99".into(),
                partition: 1,
                offset: 2
            }]
        );
    }

    fn batches(payloads: &[&str]) -> Vec<Vec<u8>> {
        let mut offset = 0;
        payloads
            .iter()
            .map(|p| {
                let b = fake_batch(offset, 2, p.as_bytes());
                offset += 2;
                b
            })
            .collect()
    }

    #[test]
    fn identical_replicas_with_different_segment_boundaries_pass() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let data = batches(&["a", "b", "c", "d"]);
        write_fake_segments(dirs[0].path(), &data, &[]);
        write_fake_segments(dirs[1].path(), &data, &[1, 3]);
        // The third replica has an extra batch beyond the high watermark: not compared.
        let mut longer = data.clone();
        longer.push(fake_batch(8, 1, b"beyond"));
        write_fake_segments(dirs[2].path(), &longer, &[2]);
        let replicas: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    i as i32,
                    read_replica_prefix(d.path(), 8).map_err(|e| e.to_string()),
                )
            })
            .collect();
        assert_eq!(check_replicas(0, 8, &replicas), vec![]);
    }

    #[test]
    fn diverging_bytes_below_the_high_watermark_are_reported() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_fake_segments(a.path(), &batches(&["a", "b", "c"]), &[]);
        write_fake_segments(b.path(), &batches(&["a", "X", "c"]), &[]);
        let replicas = vec![
            (
                0,
                read_replica_prefix(a.path(), 6).map_err(|e| e.to_string()),
            ),
            (
                2,
                read_replica_prefix(b.path(), 6).map_err(|e| e.to_string()),
            ),
        ];
        let v = check_replicas(0, 6, &replicas);
        assert!(
            matches!(
                v.as_slice(),
                [Violation::ReplicaDiverges { reference: 0, replica: 2, first_different_byte, .. }]
                    if *first_different_byte == 2 * 62 - 1
            ),
            "{v:?}"
        );
    }

    #[test]
    fn an_in_sync_replica_missing_data_below_the_high_watermark_is_reported() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_fake_segments(a.path(), &batches(&["a", "b", "c"]), &[]);
        write_fake_segments(b.path(), &batches(&["a", "b"]), &[]);
        let replicas = vec![
            (
                0,
                read_replica_prefix(a.path(), 6).map_err(|e| e.to_string()),
            ),
            (
                1,
                read_replica_prefix(b.path(), 6).map_err(|e| e.to_string()),
            ),
            (2, Err("no such directory".to_string())),
        ];
        let v = check_replicas(3, 6, &replicas);
        assert!(v.contains(&Violation::ReplicaShort {
            partition: 3,
            hw: 6,
            replica: 1,
            has_up_to: 4
        }));
        assert!(v
            .iter()
            .any(|x| matches!(x, Violation::ReplicaDiverges { replica: 1, .. })));
        assert!(v
            .iter()
            .any(|x| matches!(x, Violation::ReplicaUnreadable { replica: 2, .. })));
    }

    #[test]
    fn the_report_prints_counts_and_details() {
        let report = Report {
            topic: "t".into(),
            violations: vec![Violation::Duplicate {
                value: "p1-1".into(),
                at: vec![(0, 1), (0, 2)],
            }],
            notes: vec!["isr of t-0 stayed [0, 1]".into()],
            ..Report::default()
        };
        let text = report.to_string();
        assert!(!report.is_clean());
        assert!(
            text.contains("duplicate: 1") && text.contains("p1-1 appears 2 times"),
            "{text}"
        );
        assert!(text.contains("note: isr of t-0"), "{text}");
    }
}
