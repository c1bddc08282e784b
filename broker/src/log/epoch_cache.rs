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

    /// Kafka's answer to OffsetForLeaderEpoch, case by case as its `LeaderEpochFileCache`
    /// gives it: the latest epoch ends at the log end offset; an earlier one ends where the
    /// first later epoch starts, reported with the largest known epoch at or below it, or
    /// with the asked epoch itself when the cache starts after it (its data is gone, so the
    /// follower should copy from the first epoch still here); an undefined epoch (-1), an
    /// epoch newer than any known, or an empty cache give `(-1, -1)`.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        if epoch < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(epoch) {
            return (epoch, log_end_offset);
        }
        let later = self.entries.partition_point(|(e, _)| *e <= epoch);
        let Some((_, next_start)) = self.entries.get(later) else {
            return UNDEFINED;
        };
        match later.checked_sub(1) {
            Some(floor) => (self.entries[floor].0, *next_start),
            None => (epoch, *next_start),
        }
    }

    /// Forgets every epoch, for a log emptied and restarted at a new offset.
    pub fn clear(&mut self) -> io::Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.persist()
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
        assert_eq!(cache.end_offset_for(0, 80), (-1, -1), "nothing known yet");
        cache.assign(3, 10).unwrap();
        cache.assign(5, 50).unwrap();
        cache.assign(8, 70).unwrap();
        assert_eq!(cache.end_offset_for(3, 80), (3, 50));
        assert_eq!(
            cache.end_offset_for(4, 80),
            (3, 50),
            "an epoch this log never saw ends where the next known one starts"
        );
        assert_eq!(cache.end_offset_for(5, 80), (5, 70));
        assert_eq!(
            cache.end_offset_for(8, 80),
            (8, 80),
            "the latest ends at the log end"
        );
        assert_eq!(
            cache.end_offset_for(1, 80),
            (1, 10),
            "older than the cache: the asked epoch, ending where the oldest known starts"
        );
        assert_eq!(
            cache.end_offset_for(9, 80),
            (-1, -1),
            "newer than any known"
        );
        assert_eq!(cache.end_offset_for(-1, 80), (-1, -1), "undefined epoch");
        let reloaded = EpochCache::load(dir.path());
        assert_eq!(reloaded.end_offset_for(5, 90), (5, 70));
        assert_eq!(reloaded.end_offset_for(8, 90), (8, 90));
    }

    #[test]
    fn truncation_and_clear_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path());
        cache.assign(1, 0).unwrap();
        cache.assign(2, 40).unwrap();
        cache.assign(4, 60).unwrap();
        cache.truncate_from(40).unwrap();
        assert_eq!(cache.latest_epoch(), Some(1));
        assert_eq!(EpochCache::load(dir.path()).latest_epoch(), Some(1));
        cache.clear().unwrap();
        assert_eq!(EpochCache::load(dir.path()).latest_epoch(), None);
        cache.assign(7, 100).unwrap();
        assert_eq!(
            EpochCache::load(dir.path()).end_offset_for(7, 120),
            (7, 120)
        );
    }
}
