//! Leader epoch cache (Kafka's `leader-epoch-checkpoint`): the first offset written under
//! each leader epoch. It answers OffsetForLeaderEpoch, which followers use to truncate
//! after a leader change.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const FILE: &str = "leader-epoch-checkpoint";

#[derive(Debug)]
pub struct EpochCache {
    path: PathBuf,
    /// (epoch, start offset), rising in both.
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Loads the checkpoint; a damaged one is dropped (it is rebuilt from batch headers by
    /// the caller's recovery scan, since every stored batch carries its leader epoch).
    pub fn load(dir: &Path) -> EpochCache {
        let path = dir.join(FILE);
        let entries = fs::read_to_string(&path)
            .ok()
            .and_then(|text| {
                text.lines()
                    .map(|line| {
                        let (e, o) = line.split_once(' ')?;
                        Some((e.parse().ok()?, o.parse().ok()?))
                    })
                    .collect::<Option<Vec<(i32, i64)>>>()
            })
            .unwrap_or_default();
        EpochCache { path, entries }
    }

    /// Notes that `epoch` starts at `offset`, if it is newer than the last known epoch.
    pub fn assign(&mut self, epoch: i32, offset: i64) -> io::Result<()> {
        if epoch < 0 || self.entries.last().is_some_and(|(e, _)| *e >= epoch) {
            return Ok(());
        }
        self.entries.push((epoch, offset));
        self.persist()
    }

    /// Drops epochs that start at or after `offset` (after the log was cut back to it).
    pub fn truncate_from(&mut self, offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|(_, start)| *start < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Kafka's answer to "where does `epoch` end": the largest epoch at or below the one
    /// asked for, and the start offset of the epoch after it (or the log end offset).
    /// `(-1, -1)` when the epoch is older than anything known.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        let idx = self.entries.partition_point(|(e, _)| *e <= epoch);
        if idx == 0 {
            return (-1, -1);
        }
        let found = self.entries[idx - 1].0;
        let end = self
            .entries
            .get(idx)
            .map(|(_, start)| *start)
            .unwrap_or(log_end_offset);
        (found, end)
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|(e, _)| *e)
    }

    fn persist(&self) -> io::Result<()> {
        let text: String = self
            .entries
            .iter()
            .map(|(e, o)| format!("{e} {o}\n"))
            .collect();
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, text)?;
        fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_end_offsets_like_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path());
        cache.assign(0, 0).unwrap();
        cache.assign(2, 50).unwrap();
        assert_eq!(cache.end_offset_for(0, 80), (0, 50));
        assert_eq!(cache.end_offset_for(1, 80), (0, 50));
        assert_eq!(cache.end_offset_for(2, 80), (2, 80));
        assert_eq!(cache.end_offset_for(-1, 80), (-1, -1));
        let reloaded = EpochCache::load(dir.path());
        assert_eq!(reloaded.end_offset_for(5, 90), (2, 90));
    }
}
