use std::fs;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::log::batch::tests::encode_batch;
use crate::log::batch::{split_stored, validate_record_set};
use crate::log::partition::tests::{config, open};
use crate::log::partition::{AppendOutcome, PartitionLog};
use crate::log::segment::file_name;

/// Appends one batch of `values` as a leader does, stamping `epoch`.
fn leader_append(
    log: &mut PartitionLog,
    values: &[&[u8]],
    producer: Option<(i64, i32)>,
    epoch: i32,
) -> AppendOutcome {
    let (pid, seq) = producer.unwrap_or((-1, -1));
    let raw = Bytes::from(encode_batch(values, pid, seq));
    let batches = validate_record_set(&raw).unwrap();
    log.append(&raw, &batches, epoch, 0).unwrap()
}

/// Every stored batch from the log start, as raw bytes, read the way a fetch reads them.
fn read_all(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let chunk = log.read(offset, 1 << 20, true, i64::MAX).unwrap();
        let Some((_, last)) = split_stored(&chunk).unwrap().last().copied() else {
            return out;
        };
        offset = last.last_offset() + 1;
        out.extend_from_slice(&chunk);
    }
}

/// Copies the leader's log to the follower the way a fetcher would: from the follower's
/// log end, `max_bytes` at a time.
fn replicate(leader: &PartitionLog, follower: &mut PartitionLog, max_bytes: usize) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let raw = Bytes::from(
            leader
                .read(follower.log_end_offset(), max_bytes, true, i64::MAX)
                .unwrap(),
        );
        let batches = split_stored(&raw).unwrap();
        let done = follower.append_replicated(&raw, &batches, 0).unwrap();
        assert_eq!(done.log_end_offset, follower.log_end_offset());
    }
}

/// (base offset, `.log` file contents) of every segment.
fn segment_files(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
    log.segments
        .keys()
        .map(|base| {
            (
                *base,
                fs::read(log.dir().join(file_name(*base, "log"))).unwrap(),
            )
        })
        .collect()
}

/// Twelve two-record batches (batch i holds offsets 2i and 2i+1) written under leader
/// epochs 0, 2 and 5, four batches each, in segments of about three batches.
fn twelve_batches(dir: &Path) -> PartitionLog {
    let mut log = open(dir, config(300), true);
    for i in 0..12 {
        leader_append(
            &mut log,
            &[b"0123456789", b"abcdefghij"],
            None,
            epoch_of_batch(i),
        );
    }
    assert!(log.segment_count() >= 4, "the test needs several segments");
    log
}

fn epoch_of_batch(i: i64) -> i32 {
    [0, 2, 5][(i / 4) as usize]
}

fn one_record_batches(n: usize) -> (Bytes, Vec<(usize, crate::log::batch::BatchHeader)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = open(dir.path(), config(1 << 20), true);
    for _ in 0..n {
        leader_append(&mut leader, &[b"v"], None, 1);
    }
    let raw = Bytes::from(read_all(&leader));
    let batches = split_stored(&raw).unwrap();
    (raw, batches)
}

#[test]
fn replicated_append_stores_the_leaders_bytes_unchanged() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), config(300), true);
    let values: [&[u8]; 2] = [b"value", b"other"];
    let mut next_sequence = 0;
    for i in 0..10 {
        let records = &values[..1 + (i % 2) as usize];
        let producer = (i % 3 == 0).then_some((42, next_sequence));
        if producer.is_some() {
            next_sequence += records.len() as i32;
        }
        leader_append(&mut leader, records, producer, i / 4);
    }
    let mut follower = open(follower_dir.path(), config(300), true);
    replicate(&leader, &mut follower, 250);

    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert!(leader.segment_count() > 1);
    assert_eq!(
        segment_files(&follower),
        segment_files(&leader),
        "same segments, byte for byte"
    );
    assert_eq!(read_all(&follower), read_all(&leader));
    assert!(
        validate_record_set(&read_all(&leader)).is_ok(),
        "leader-stamped offsets and epochs pass the producer-side check too"
    );
    assert_eq!(follower.latest_epoch(), Some(2));
    for epoch in -1..4 {
        assert_eq!(
            follower.end_offset_for_epoch(epoch),
            leader.end_offset_for_epoch(epoch),
            "epoch {epoch}"
        );
    }

    // The copy survives a crash like any log.
    drop(follower);
    let follower = open(follower_dir.path(), config(300), false);
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(
        follower.end_offset_for_epoch(1),
        leader.end_offset_for_epoch(1)
    );
}

#[test]
fn resent_batches_are_skipped_and_holes_refused() {
    let (raw, batches) = one_record_batches(5);
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open(dir.path(), config(1 << 20), true);

    let first = follower.append_replicated(&raw, &batches[..3], 0).unwrap();
    assert_eq!(
        (first.first_offset, first.last_offset, first.records),
        (0, 2, 3)
    );
    let overlapping = follower.append_replicated(&raw, &batches, 0).unwrap();
    assert_eq!(
        (
            overlapping.first_offset,
            overlapping.last_offset,
            overlapping.records
        ),
        (3, 4, 2),
        "only the batches past the log end are written"
    );
    let size = follower.size_bytes();
    let again = follower.append_replicated(&raw, &batches, 0).unwrap();
    assert_eq!(
        (again.first_offset, again.records, again.log_end_offset),
        (-1, 0, 5)
    );
    assert_eq!(follower.size_bytes(), size);
    assert_eq!(read_all(&follower), raw.to_vec());

    let dir = tempfile::tempdir().unwrap();
    let mut fresh = open(dir.path(), config(1 << 20), true);
    let hole = fresh.append_replicated(&raw, &batches[2..], 0).unwrap_err();
    assert_eq!(hole.error, ResponseError::OffsetOutOfRange);
    let mut repeated = batches[..2].to_vec();
    repeated.push(batches[1]);
    let overlap = fresh.append_replicated(&raw, &repeated, 0).unwrap_err();
    assert_eq!(overlap.error, ResponseError::CorruptMessage);
    assert_eq!(
        (fresh.log_end_offset(), fresh.size_bytes()),
        (0, 0),
        "a refused record set writes nothing"
    );

    // A batch 0..=1 arriving at a log that ends at 1 cannot be stored whole.
    let pair = Bytes::from(encode_batch(&[b"a", b"b"], -1, -1));
    let pair_batches = split_stored(&pair).unwrap();
    fresh.append_replicated(&raw, &batches[..1], 0).unwrap();
    let straddle = fresh
        .append_replicated(&pair, &pair_batches, 0)
        .unwrap_err();
    assert_eq!(straddle.error, ResponseError::OffsetOutOfRange);
}

#[test]
fn compacted_topic_accepts_the_leaders_holes() {
    let (raw, batches) = one_record_batches(5);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20);
    cfg.compact = true;
    let mut follower = open(dir.path(), cfg.clone(), true);
    let kept = [batches[0], batches[2], batches[4]];
    let done = follower.append_replicated(&raw, &kept, 0).unwrap();
    assert_eq!((done.first_offset, done.log_end_offset), (0, 5));
    let chunk = follower.read(1, 1 << 20, true, i64::MAX).unwrap();
    assert_eq!(split_stored(&chunk).unwrap()[0].1.base_offset, 2);
    drop(follower);
    assert_eq!(open(dir.path(), cfg, false).log_end_offset(), 5);
}

#[test]
fn promoted_follower_recognises_duplicates() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), config(1 << 20), true);
    leader_append(&mut leader, &[b"plain"], None, 1);
    let producer_batch = Bytes::from(encode_batch(&[b"a", b"b"], 42, 0));
    let producer_headers = validate_record_set(&producer_batch).unwrap();
    leader
        .append(&producer_batch, &producer_headers, 1, 0)
        .unwrap();
    let mut follower = open(follower_dir.path(), config(1 << 20), true);
    replicate(&leader, &mut follower, 1 << 20);

    // The producer retries against the new leader: the retry is recognised, not stored.
    follower
        .assign_epoch_start(2, follower.log_end_offset())
        .unwrap();
    let retry = follower
        .append(&producer_batch, &producer_headers, 2, 0)
        .unwrap();
    assert_eq!(retry.base_offset, 1);
    assert_eq!(follower.log_end_offset(), 3);
    let next = Bytes::from(encode_batch(&[b"c"], 42, 2));
    let next_headers = validate_record_set(&next).unwrap();
    assert_eq!(
        follower
            .append(&next, &next_headers, 2, 0)
            .unwrap()
            .base_offset,
        3
    );
    assert_eq!(follower.end_offset_for_epoch(1), (1, 3));
}

#[test]
fn truncation_survives_clean_and_unclean_reopen() {
    // (what to truncate to, the log end expected after it) — chosen against the layout of
    // `twelve_batches`, whose segment bases are looked up, not assumed.
    let probe_dir = tempfile::tempdir().unwrap();
    let probe = twelve_batches(probe_dir.path());
    let bases: Vec<i64> = probe.segments.keys().copied().collect();
    let boundary = bases[bases.len() - 2];
    let cases = [
        ("inside a batch", 15, 14),
        ("at a segment boundary", boundary, boundary),
        ("across segments", 3, 2),
    ];
    let original = read_all(&probe);
    let original_batches = split_stored(&original).unwrap();
    drop(probe);

    for (what, offset, new_leo) in cases {
        for clean in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = twelve_batches(dir.path());
            assert_eq!(log.truncate_to(offset).unwrap(), new_leo, "{what}");
            let kept_end = original_batches
                .iter()
                .find(|(_, h)| h.base_offset >= new_leo)
                .map(|(pos, _)| *pos)
                .unwrap_or(original.len());
            let expected = &original[..kept_end];
            let last_epoch = epoch_of_batch(new_leo / 2 - 1);
            let check = |log: &PartitionLog, when: &str| {
                assert_eq!(log.log_end_offset(), new_leo, "{what}, {when}");
                assert_eq!(read_all(log), expected, "{what}, {when}");
                assert_eq!(log.latest_epoch(), Some(last_epoch), "{what}, {when}");
                assert_eq!(
                    log.end_offset_for_epoch(last_epoch),
                    (last_epoch, new_leo),
                    "{what}, {when}"
                );
                assert!(log.segments.keys().all(|b| *b <= new_leo), "{what}, {when}");
            };
            check(&log, "after truncating");
            assert_eq!(
                log.truncate_to(new_leo).unwrap(),
                new_leo,
                "a no-op at the end"
            );

            if clean {
                log.close(0).unwrap();
            }
            drop(log);
            let mut log = open(dir.path(), config(300), clean);
            check(
                &log,
                if clean {
                    "after a clean restart"
                } else {
                    "after a crash"
                },
            );
            let appended = leader_append(&mut log, &[b"new"], None, 9);
            assert_eq!(appended.base_offset, new_leo, "{what}");
            drop(log);
            let log = open(dir.path(), config(300), false);
            assert_eq!(log.log_end_offset(), new_leo + 1, "{what}");
            assert_eq!(log.end_offset_for_epoch(9), (9, new_leo + 1));
        }
    }
}

#[test]
fn a_crash_between_cutting_the_log_and_its_index_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20);
    cfg.index_interval_bytes = 1;
    let mut log = open(dir.path(), cfg.clone(), true);
    for i in 0..10 {
        leader_append(&mut log, &[b"0123456789"], None, i / 5);
    }
    let stale: Vec<(String, Vec<u8>)> = ["index", "timeindex"]
        .iter()
        .map(|ext| {
            let name = file_name(0, ext);
            let bytes = fs::read(dir.path().join(&name)).unwrap();
            (name, bytes)
        })
        .collect();
    assert!(
        !stale[0].1.is_empty(),
        "the test needs index entries to go stale"
    );
    log.truncate_to(4).unwrap();
    let expected = read_all(&log);
    log.close(0).unwrap();
    drop(log);
    // As if the log file had been cut but the indexes not yet.
    for (name, bytes) in &stale {
        fs::write(dir.path().join(name), bytes).unwrap();
    }
    for clean in [true, false] {
        let log = open(dir.path(), cfg.clone(), clean);
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(read_all(&log), expected);
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1_000)));
        assert_eq!(log.offset_for_timestamp(1_001).unwrap(), None);
    }
}

#[test]
fn truncation_forgets_producer_batches_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20), true);
    let batch = |seq| {
        let raw = Bytes::from(encode_batch(&[b"a", b"b"], 7, seq));
        let headers = validate_record_set(&raw).unwrap();
        (raw, headers)
    };
    let (first, first_headers) = batch(0);
    let (second, second_headers) = batch(2);
    log.append(&first, &first_headers, 0, 0).unwrap();
    log.append(&second, &second_headers, 0, 0).unwrap();
    assert_eq!(log.truncate_to(2).unwrap(), 2);
    assert_eq!(log.last_batch_of_producer.get(&7), Some(&0));

    let resent = log.append(&second, &second_headers, 1, 0).unwrap();
    assert_eq!(
        resent.base_offset, 2,
        "written again, not taken for a duplicate"
    );
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(
        log.append(&first, &first_headers, 1, 0)
            .unwrap()
            .base_offset,
        0
    );
    assert_eq!(
        log.log_end_offset(),
        4,
        "the batch that stayed is still a duplicate"
    );
}

#[test]
fn truncating_fully_restarts_the_log_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = twelve_batches(dir.path());
    let producer = Bytes::from(encode_batch(&[b"p"], 42, 0));
    let producer_headers = validate_record_set(&producer).unwrap();
    log.append(&producer, &producer_headers, 5, 0).unwrap();

    log.truncate_fully_and_start_at(1000).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1000));
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.latest_epoch(), None);
    assert!(log.read(1000, 1 << 20, true, i64::MAX).unwrap().is_empty());
    assert!(log.read(0, 1 << 20, true, i64::MAX).is_err());
    let fresh = log.append(&producer, &producer_headers, 6, 0).unwrap();
    assert_eq!(
        fresh.base_offset, 1000,
        "the producer's old batch is forgotten"
    );
    assert!(log.truncate_fully_and_start_at(-5).is_err());

    for clean in [true, false] {
        if clean {
            log.close(0).unwrap();
        }
        drop(log);
        log = open(dir.path(), config(300), clean);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1001));
        assert_eq!(log.end_offset_for_epoch(6), (6, 1001));
        assert_eq!(
            log.end_offset_for_epoch(5),
            (5, 1000),
            "epochs before the restart are unknown: they end where the first known starts"
        );
    }
}

#[test]
fn truncating_below_the_log_start_restarts_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = twelve_batches(dir.path());
    log.delete_records_before(9).unwrap();
    // Offset 9 sits in batch 8..=9: cutting that batch would end the log below its start.
    assert_eq!(log.truncate_to(9).unwrap(), 9);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (9, 9));

    let dir = tempfile::tempdir().unwrap();
    let mut log = twelve_batches(dir.path());
    log.delete_records_before(10).unwrap();
    assert_eq!(log.truncate_to(4).unwrap(), 4);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (4, 4));
    drop(log);
    let log = open(dir.path(), config(300), false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (4, 4));
}

#[test]
fn read_stops_before_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20), true);
    leader_append(&mut log, &[b"a", b"b"], None, 0);
    leader_append(&mut log, &[b"c"], None, 0);
    leader_append(&mut log, &[b"d", b"e"], None, 0);
    let all = read_all(&log);
    let batches = split_stored(&all).unwrap();
    let (second, third) = (batches[1].0, batches[2].0);
    let read = |offset, max_bytes, oversized, max_offset| {
        log.read(offset, max_bytes, oversized, max_offset).unwrap()
    };
    assert_eq!(read(0, 1 << 20, true, i64::MAX), all);
    assert_eq!(read(0, 1 << 20, true, 5), all);
    assert_eq!(read(0, 1 << 20, true, 3), &all[..third]);
    assert_eq!(
        read(0, 1 << 20, true, 4),
        &all[..third],
        "a batch reaching the bound is held back whole"
    );
    assert_eq!(read(2, 1 << 20, true, 3), &all[second..third]);
    assert_eq!(
        read(0, 1, true, 2),
        &all[..second],
        "the oversized first batch"
    );
    assert!(read(0, 1, true, 1).is_empty(), "but never past the bound");
    assert!(read(0, 1, false, 2).is_empty());
    assert!(
        read(3, 1 << 20, true, 3).is_empty(),
        "at the bound: nothing, no error"
    );
    assert!(read(5, 1 << 20, true, 3).is_empty());
    assert!(log.read(6, 1 << 20, true, 3).is_err(), "past the log end");
}
