//! The metadata log of Strom before the raft quorum, kept to import old data dirs once
//! (see `server`): an append-only file of framed record batches,
//! `[length u32][crc32c u32][JSON array of records]`, fsynced on every commit. A batch is
//! one frame so a multi-record change (a topic and its partitions) lands whole or not at
//! all; a torn or damaged tail frame is cut off on open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use super::records::MetadataRecord;

pub const FILE: &str = "metadata.journal";
const FRAME_HEADER: usize = 8;

#[derive(Debug)]
pub struct Journal {
    file: File,
}

/// What replaying the journal found.
#[derive(Debug, Default)]
pub struct Replay {
    pub batches: Vec<Vec<MetadataRecord>>,
    pub truncated_bytes: u64,
}

impl Journal {
    pub fn open(dir: &Path) -> io::Result<(Journal, Replay)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let mut replay = Replay::default();
        let mut pos = 0usize;
        while pos + FRAME_HEADER <= raw.len() {
            let len =
                u32::from_be_bytes([raw[pos], raw[pos + 1], raw[pos + 2], raw[pos + 3]]) as usize;
            let crc = u32::from_be_bytes([raw[pos + 4], raw[pos + 5], raw[pos + 6], raw[pos + 7]]);
            let body_start = pos + FRAME_HEADER;
            let Some(body) = raw.get(body_start..body_start + len) else {
                break;
            };
            if crc32c::crc32c(body) != crc {
                break;
            }
            let Ok(batch) = serde_json::from_slice::<Vec<MetadataRecord>>(body) else {
                break;
            };
            replay.batches.push(batch);
            pos = body_start + len;
        }
        if pos < raw.len() {
            replay.truncated_bytes = (raw.len() - pos) as u64;
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        Ok((Journal { file }, replay))
    }

    /// Appends one batch and fsyncs it: a metadata change is acknowledged only once durable.
    pub fn append(&mut self, batch: &[MetadataRecord]) -> io::Result<()> {
        let body = serde_json::to_vec(batch).map_err(io::Error::other)?;
        let mut frame = Vec::with_capacity(FRAME_HEADER + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        frame.extend_from_slice(&body);
        self.file.write_all(&frame)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_batches_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let rec = MetadataRecord::ProducerIds {
            next_block_start: 1000,
        };
        {
            let (mut j, replay) = Journal::open(dir.path()).unwrap();
            assert!(replay.batches.is_empty());
            j.append(std::slice::from_ref(&rec)).unwrap();
            j.append(&[rec.clone(), rec.clone()]).unwrap();
        }
        let path = dir.path().join(FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(f);
        let (_, replay) = Journal::open(dir.path()).unwrap();
        assert_eq!(replay.batches.len(), 2);
        assert_eq!(replay.batches[1].len(), 2);
        assert_eq!(replay.truncated_bytes, 6);
    }
}
