//! A replica's raw record batches below the high watermark, read straight from its
//! segment files, for byte-for-byte replica comparison.
//!
//! Segment boundaries may differ between replicas (each rolls on its own), so segments are
//! concatenated in base-offset order and the stream is cut at the first batch whose base
//! offset is at or beyond the high watermark.

use std::path::{Path, PathBuf};

/// Offset of the base offset (i64) and batch length (i32) fields: the "log overhead".
const LOG_OVERHEAD: usize = 12;
/// Smallest v2 batch: the 61-byte header with no records.
const MIN_BATCH: usize = 61;
const MAGIC_AT: usize = 16;
const LAST_OFFSET_DELTA_AT: usize = 23;

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} byte {position}: {detail}")]
    Malformed {
        path: PathBuf,
        position: usize,
        detail: String,
    },
}

/// The batches of one replica below the high watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaPrefix {
    pub bytes: Vec<u8>,
    pub batches: usize,
    /// One past the last offset of the last included batch (0 if none).
    pub next_offset: i64,
}

/// The `.log` segment files of a partition directory, in base-offset order.
pub fn segment_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>, SegmentError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SegmentError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<(i64, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?;
            let is_log = p.extension().is_some_and(|e| e == "log");
            let base = stem.parse::<i64>().ok()?;
            (is_log && stem.len() == 20).then_some((base, p))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads the batches of `dir` whose base offset is below `hw`.
pub fn read_replica_prefix(dir: &Path, hw: i64) -> Result<ReplicaPrefix, SegmentError> {
    let mut prefix = ReplicaPrefix {
        bytes: Vec::new(),
        batches: 0,
        next_offset: 0,
    };
    for (_, path) in segment_files(dir)? {
        let data = std::fs::read(&path).map_err(|source| SegmentError::Io {
            path: path.clone(),
            source,
        })?;
        let mut pos = 0;
        while data.len() - pos >= LOG_OVERHEAD {
            let base_offset = be_i64(&data[pos..]);
            let length = be_i32(&data[pos + 8..]);
            let Ok(length) = usize::try_from(length) else {
                return Err(malformed(&path, pos, format!("batch length {length}")));
            };
            let size = LOG_OVERHEAD + length;
            if size < MIN_BATCH {
                // Zero fill after the last batch (a preallocated or torn tail).
                break;
            }
            if base_offset >= hw {
                return Ok(prefix);
            }
            if data.len() - pos < size {
                // Torn tail: if this left the replica short of hw, the checker reports it.
                break;
            }
            let batch = &data[pos..pos + size];
            if batch[MAGIC_AT] != 2 {
                return Err(malformed(
                    &path,
                    pos,
                    format!("magic {} (only v2 batches are expected)", batch[MAGIC_AT]),
                ));
            }
            let last_delta = be_i32(&batch[LAST_OFFSET_DELTA_AT..]);
            prefix.bytes.extend_from_slice(batch);
            prefix.batches += 1;
            prefix.next_offset = base_offset + i64::from(last_delta) + 1;
            pos += size;
        }
    }
    Ok(prefix)
}

fn malformed(path: &Path, position: usize, detail: String) -> SegmentError {
    SegmentError::Malformed {
        path: path.to_path_buf(),
        position,
        detail,
    }
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8]) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    i32::from_be_bytes(a)
}

/// Fake segment files for the checker's tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Test support: a fake v2 batch with the given offsets and payload bytes. Only the fields
    /// this module reads are meaningful.
    pub(crate) fn fake_batch(base_offset: i64, records: i32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        let length = (MIN_BATCH - LOG_OVERHEAD + payload.len()) as i32;
        b.extend_from_slice(&length.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend_from_slice(&0u32.to_be_bytes()); // crc (not checked here)
        b.extend_from_slice(&0i16.to_be_bytes()); // attributes
        b.extend_from_slice(&(records - 1).to_be_bytes()); // last offset delta
        b.resize(MIN_BATCH, 0);
        b.extend_from_slice(payload);
        b
    }

    /// Test support: writes `batches` into segment files of `dir`, starting a new segment
    /// before every batch index listed in `roll_before`.
    pub(crate) fn write_fake_segments(dir: &Path, batches: &[Vec<u8>], roll_before: &[usize]) {
        std::fs::create_dir_all(dir).expect("create partition dir");
        let mut current: Option<(i64, Vec<u8>)> = None;
        let flush = |seg: Option<(i64, Vec<u8>)>| {
            if let Some((base, data)) = seg {
                std::fs::write(dir.join(format!("{base:020}.log")), data).expect("write segment");
            }
        };
        for (i, batch) in batches.iter().enumerate() {
            if current.is_none() || roll_before.contains(&i) {
                flush(current.take());
                current = Some((be_i64(batch), Vec::new()));
            }
            if let Some((_, data)) = current.as_mut() {
                data.extend_from_slice(batch);
            }
        }
        flush(current);
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn concatenates_segments_and_cuts_at_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<Vec<u8>> = (0..5)
            .map(|i| fake_batch(i * 2, 2, format!("batch{i}").as_bytes()))
            .collect();
        write_fake_segments(dir.path(), &batches, &[2, 4]);
        std::fs::write(dir.path().join("00000000000000000000.index"), b"junk").unwrap();
        let prefix = read_replica_prefix(dir.path(), 6).unwrap();
        assert_eq!(prefix.batches, 3);
        assert_eq!(prefix.next_offset, 6);
        assert_eq!(prefix.bytes, batches[..3].concat());
        let all = read_replica_prefix(dir.path(), 1000).unwrap();
        assert_eq!(all.batches, 5);
        assert_eq!(all.next_offset, 10);
    }

    #[test]
    fn stops_at_a_torn_or_zero_filled_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = fake_batch(0, 1, b"a");
        let second = fake_batch(1, 1, b"b");
        data.extend_from_slice(&second[..second.len() - 3]);
        std::fs::write(dir.path().join("00000000000000000000.log"), &data).unwrap();
        let prefix = read_replica_prefix(dir.path(), 10).unwrap();
        assert_eq!((prefix.batches, prefix.next_offset), (1, 1));

        let mut zeroed = fake_batch(0, 1, b"a");
        zeroed.extend_from_slice(&[0u8; 100]);
        std::fs::write(dir.path().join("00000000000000000000.log"), &zeroed).unwrap();
        let prefix = read_replica_prefix(dir.path(), 10).unwrap();
        assert_eq!((prefix.batches, prefix.next_offset), (1, 1));
    }

    #[test]
    fn rejects_a_batch_that_is_not_v2() {
        let dir = tempfile::tempdir().unwrap();
        let mut batch = fake_batch(0, 1, b"a");
        batch[MAGIC_AT] = 1;
        std::fs::write(dir.path().join("00000000000000000000.log"), &batch).unwrap();
        assert!(matches!(
            read_replica_prefix(dir.path(), 10),
            Err(SegmentError::Malformed { .. })
        ));
    }
}
