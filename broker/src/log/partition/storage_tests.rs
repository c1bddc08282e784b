//! Storage failures (a full disk, failed truncations, fsyncs and rolls) and the bounded
//! handle cache, on whole partition logs. Faults are injected through `disk::faults`.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;

use super::tests::{config, open};
use super::PartitionLog;
use crate::config::LogConfig;
use crate::error::ApiError;
use crate::log::batch::tests::encode_batch;
use crate::log::batch::{split_stored, validate_record_set};
use crate::log::disk::faults::{self, Faults};
use crate::log::handles::HandleCache;
use crate::log::segment::{self, file_name};

fn record_set(batches: &[&[&[u8]]]) -> (Bytes, Vec<(usize, crate::log::batch::BatchHeader)>) {
    let mut raw = Vec::new();
    for values in batches {
        raw.extend_from_slice(&encode_batch(values, -1, -1));
    }
    let raw = Bytes::from(raw);
    let batches = validate_record_set(&raw).expect("valid");
    (raw, batches)
}

fn try_append(log: &mut PartitionLog, values: &[&[u8]]) -> Result<i64, ApiError> {
    let (raw, batches) = record_set(&[values]);
    log.append(&raw, &batches, 0, 0).map(|o| o.base_offset)
}

/// Every record as a consumer reads it: (offset, value).
fn contents(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let mut chunk = Bytes::from(log.read(offset, 1 << 20, true, i64::MAX).expect("read"));
        assert!(
            !chunk.is_empty(),
            "a read at {offset} below the log end stalls"
        );
        for set in RecordBatchDecoder::decode_all(&mut chunk).expect("stored batches decode") {
            for r in set.records {
                out.push((r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()));
                offset = r.offset + 1;
            }
        }
    }
    out
}

fn values(expected: &[&[u8]]) -> Vec<(i64, Vec<u8>)> {
    expected
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_vec()))
        .collect()
}

/// The bytes of every `.log` file in `dir`, which must be exactly what the log holds.
fn log_file_bytes(dir: &Path) -> u64 {
    segment::list_base_offsets(dir)
        .unwrap()
        .iter()
        .map(|b| fs::metadata(dir.join(file_name(*b, "log"))).unwrap().len())
        .sum()
}

fn assert_storage_error<T: std::fmt::Debug>(result: Result<T, ApiError>) {
    assert_eq!(result.unwrap_err().error, ResponseError::KafkaStorageError);
}

fn small_index_config() -> LogConfig {
    let mut cfg = config(1 << 20);
    // An index entry per batch, so index writes happen too.
    cfg.index_interval_bytes = 1;
    cfg
}

fn full_disk(bytes_left: u64) -> Faults {
    Faults {
        write_budget: Some(bytes_left),
        ..Faults::default()
    }
}

/// Copies the partition directory, to open the same state twice.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

// The old log wrote in append mode: the 30 bytes that fit stayed, the next batch landed
// after them while the index and size pointed at them, so reads stalled there and an
// unclean reopen cut the log at them, losing the acknowledged `c`.
#[test]
fn a_full_disk_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_index_config();
    let mut log = open(dir.path(), cfg.clone(), true);
    assert_eq!(try_append(&mut log, &[b"a"]).unwrap(), 0);
    assert_eq!(try_append(&mut log, &[b"b"]).unwrap(), 1);

    faults::set(full_disk(30));
    let refused = try_append(&mut log, &[&[b'x'; 500]]);
    faults::clear();
    assert_storage_error(refused);
    assert!(!log.is_failed(), "the partial write was cut off again");
    assert_eq!(
        log_file_bytes(dir.path()),
        log.size_bytes(),
        "no stray bytes"
    );

    assert_eq!(try_append(&mut log, &[b"c"]).unwrap(), 2);
    assert_eq!(log_file_bytes(dir.path()), log.size_bytes());
    let expected = values(&[b"a", b"b", b"c"]);
    assert_eq!(contents(&log), expected);
    drop(log); // as kill -9: no close

    let copy = copy_dir(dir.path());
    for (path, clean) in [(dir.path(), false), (copy.path(), true)] {
        let log = open(path, cfg.clone(), clean);
        assert_eq!(contents(&log), expected, "clean={clean}");
        assert_eq!(log.log_end_offset(), 3);
    }
}

#[test]
fn batches_before_the_one_that_failed_stay() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_index_config();
    let mut log = open(dir.path(), cfg.clone(), true);
    try_append(&mut log, &[b"a"]).unwrap();
    let (raw, batches) = record_set(&[&[b"b"], &[&[b'y'; 300]], &[b"d"]]);
    let first_len = batches[0].1.total_len() as u64;
    // The first batch and its index entry fit, then 20 bytes of the second.
    faults::set(full_disk(first_len + 8 + 12 + 20));
    let refused = log.append(&raw, &batches, 0, 0);
    faults::clear();
    assert_storage_error(refused);
    assert!(!log.is_failed());
    assert_eq!(log.log_end_offset(), 2, "the first batch is in");
    assert_eq!(log_file_bytes(dir.path()), log.size_bytes());
    assert_eq!(try_append(&mut log, &[b"e"]).unwrap(), 2);
    drop(log);
    let log = open(dir.path(), cfg, false);
    assert_eq!(contents(&log), values(&[b"a", b"b", b"e"]));
}

// The old log had no failed state: after a partial write it could not take back it went
// on acknowledging batches written behind the stray bytes.
#[test]
fn an_unrepaired_write_fails_the_log_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_index_config();
    let mut log = open(dir.path(), cfg.clone(), true);
    try_append(&mut log, &[b"a"]).unwrap();
    try_append(&mut log, &[b"b"]).unwrap();
    let size = log.size_bytes();

    faults::set(Faults {
        fail_set_len: true,
        ..full_disk(30)
    });
    let refused = try_append(&mut log, &[&[b'x'; 500]]);
    faults::clear();
    assert_storage_error(refused);
    assert!(log.is_failed());
    assert_eq!(
        log_file_bytes(dir.path()),
        size + 30,
        "the stray bytes the cut left"
    );

    // Nothing more is taken, however the write comes.
    assert_storage_error(try_append(&mut log, &[b"c"]));
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), cfg.clone(), true);
    for v in [b"a", b"b", b"c"] {
        try_append(&mut leader, &[v]).unwrap();
    }
    let fetched = Bytes::from(leader.read(2, 1 << 20, true, i64::MAX).unwrap());
    let fetched_batches = split_stored(&fetched).unwrap();
    assert_storage_error(log.append_replicated(&fetched, &fetched_batches, 0));
    assert_storage_error(log.truncate_to(1));
    assert_storage_error(log.truncate_fully_and_start_at(5));
    assert_storage_error(log.delete_records_before(1));
    assert!(log.flush(0).is_err());
    assert!(log.apply_retention(i64::MAX).is_err());
    assert!(
        log.close(0).is_err(),
        "a failed log must not count as cleanly shut down"
    );
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(contents(&log), values(&[b"a", b"b"]), "reads still work");
    drop(log);

    // Reopening recovers: the stray bytes go, and the log takes writes again.
    let copy = copy_dir(dir.path());
    for (path, clean) in [(dir.path(), false), (copy.path(), true)] {
        let mut log = open(path, cfg.clone(), clean);
        assert!(!log.is_failed());
        assert_eq!(contents(&log), values(&[b"a", b"b"]), "clean={clean}");
        assert_eq!(log_file_bytes(path), size);
        assert_eq!(try_append(&mut log, &[b"c"]).unwrap(), 2);
        assert_eq!(contents(&log), values(&[b"a", b"b", b"c"]));
    }
}

#[test]
fn a_failed_fsync_fails_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_index_config();
    cfg.flush_messages = 1;
    let mut log = open(dir.path(), cfg.clone(), true);
    try_append(&mut log, &[b"a"]).unwrap();
    faults::set(Faults {
        fail_sync: true,
        ..Faults::default()
    });
    let refused = try_append(&mut log, &[b"b"]);
    faults::clear();
    assert_storage_error(refused);
    assert!(
        log.is_failed(),
        "an fsync error is not retried into success"
    );
    assert_storage_error(try_append(&mut log, &[b"c"]));
    assert!(log.flush(0).is_err());
    drop(log);
    let mut log = open(dir.path(), cfg, false);
    assert!(!log.is_failed());
    assert_eq!(
        try_append(&mut log, &[b"c"]).unwrap(),
        log.log_end_offset() - 1
    );
}

#[test]
fn a_truncation_that_breaks_off_fails_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_index_config();
    let mut log = open(dir.path(), cfg.clone(), true);
    for v in [b"a", b"b", b"c"] {
        try_append(&mut log, &[v]).unwrap();
    }
    faults::set(Faults {
        fail_set_len: true,
        ..Faults::default()
    });
    let refused = log.truncate_to(1);
    faults::clear();
    assert_storage_error(refused);
    assert!(log.is_failed(), "the indexes and the log may disagree now");
    assert_storage_error(try_append(&mut log, &[b"d"]));
    drop(log);
    let mut log = open(dir.path(), cfg, false);
    assert!(!log.is_failed());
    assert_eq!(
        contents(&log),
        values(&[b"a", b"b", b"c"]),
        "nothing was cut"
    );
    assert_eq!(log.truncate_to(1).unwrap(), 1);
    assert_eq!(contents(&log), values(&[b"a"]));
}

// The old roll left whatever the failed creation made: an empty `.log` at the new base,
// listed as a segment on reopen in the middle of offsets the old segment went on taking,
// so reads from there skipped to the next segment.
#[test]
fn a_roll_that_fails_leaves_the_old_segment_active() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(200);
    let mut log = open(dir.path(), cfg.clone(), true);
    // Each batch is over half of segment.bytes: every next one rolls.
    let v = [b'v'; 60];
    try_append(&mut log, &[&v]).unwrap();
    assert_eq!(log.segment_count(), 1);

    faults::set(Faults {
        fail_create: true,
        ..Faults::default()
    });
    let refused = try_append(&mut log, &[&v]);
    faults::clear();
    assert_storage_error(refused);
    assert!(!log.is_failed());
    assert_eq!(log.segment_count(), 1);
    assert_eq!(segment::list_base_offsets(dir.path()).unwrap(), vec![0]);

    for i in 1..5 {
        assert_eq!(try_append(&mut log, &[&v]).unwrap(), i);
    }
    assert_eq!(log.segment_count(), 5);
    let expected = contents(&log);
    assert_eq!(expected.len(), 5);
    drop(log);
    let log = open(dir.path(), cfg, false);
    assert_eq!(contents(&log), expected);
}

#[test]
fn a_new_log_is_one_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(1 << 20), true);
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec![file_name(0, "log")]);
    assert_eq!(log.log_end_offset(), 0);
}

/// Descriptors of this process open on files under `dir` (other tests run alongside, so
/// the whole `/proc/self/fd` count would not say much).
fn open_fds_under(dir: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

// The old segments held three descriptors each: 6,000 for these logs.
#[test]
fn thousands_of_logs_stay_within_the_handle_cache() {
    const LOGS: usize = 2_000;
    const CAPACITY: usize = 50;
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let handles = HandleCache::new(CAPACITY);
    let cfg = small_index_config();
    let dir_of = |i: usize| root.join(format!("t-{i}"));
    let open_all = |clean: bool| -> Vec<PartitionLog> {
        (0..LOGS)
            .map(|i| {
                PartitionLog::open(
                    &dir_of(i),
                    format!("t-{i}"),
                    cfg.clone(),
                    clean,
                    0,
                    &handles,
                )
                .expect("open")
                .0
            })
            .collect()
    };
    let mut logs = open_all(true);
    assert!(open_fds_under(&root) <= CAPACITY);
    for round in 0..2u8 {
        for (i, log) in logs.iter_mut().enumerate() {
            let value = format!("{i}-{round}");
            assert_eq!(try_append(log, &[value.as_bytes()]).unwrap(), round as i64);
        }
        assert!(open_fds_under(&root) <= CAPACITY);
    }
    for (i, log) in logs.iter().enumerate() {
        let got = contents(log);
        assert_eq!(got[1].1, format!("{i}-1").into_bytes());
    }
    assert!(open_fds_under(&root) <= CAPACITY);
    assert!(handles.open_count() <= CAPACITY);
    drop(logs);
    assert_eq!(handles.open_count(), 0);

    let logs = open_all(false);
    assert!(open_fds_under(&root) <= CAPACITY);
    for (i, log) in logs.iter().enumerate() {
        let want: Vec<(i64, Vec<u8>)> = (0..2)
            .map(|r| (r as i64, format!("{i}-{r}").into_bytes()))
            .collect();
        assert_eq!(contents(log), want);
    }
    assert!(open_fds_under(&root) <= CAPACITY);
}
