//! The Raft log and vote on disk: an append-only record file with an in-memory index.
//!
//! Layout in the quorum directory:
//! - `raft.log`: checksummed records (see [`files::encode_record`]), one JSON entry each;
//! - `vote.json`: the last vote, replaced atomically;
//! - `purged.json`: the last purged log id; entries at or below it in `raft.log` are ignored.
//!
//! Metadata logs are small and purged behind snapshots, so every live entry is also kept in
//! memory: reads never touch the disk and the file is only read once, on open.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageIOError};

use super::files::{self, decode_records, encode_record};
use super::storage_err;
use crate::error::QuorumError;
use crate::types::{Entry, LogId, RaftTypes, StorageError, Vote};
use crate::ReplicatedState;

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const PURGED_FILE: &str = "purged.json";

/// The log store handed to openraft; clones share one open log.
pub struct LogStore<S: ReplicatedState> {
    inner: Arc<Mutex<LogFiles<S>>>,
}

impl<S: ReplicatedState> Clone for LogStore<S> {
    fn clone(&self) -> Self {
        LogStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct LogFiles<S: ReplicatedState> {
    dir: PathBuf,
    file: File,
    /// Length of the valid part of `raft.log`; new records go here.
    file_len: u64,
    /// Live entries by index, each with the byte offset of its record (for truncation).
    entries: BTreeMap<u64, (u64, Entry<S>)>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
}

impl<S: ReplicatedState> LogStore<S> {
    /// Opens the log in `dir`, cutting off a torn tail left by a crash.
    pub fn open(dir: &Path) -> Result<Self, QuorumError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| QuorumError::io(format!("creating {}", dir.display()), e))?;
        let vote: Option<Vote> = files::read_json(&dir.join(VOTE_FILE))
            .map_err(|e| QuorumError::io("reading the raft vote", e))?;
        let last_purged: Option<LogId> = files::read_json(&dir.join(PURGED_FILE))
            .map_err(|e| QuorumError::io("reading the purged raft log id", e))?;
        let log_path = dir.join(LOG_FILE);
        let (file, bytes) = files::open_and_read(&log_path)
            .map_err(|e| QuorumError::io(format!("opening {}", log_path.display()), e))?;

        let (records, mut valid_len) = decode_records(&bytes);
        let mut entries = BTreeMap::new();
        let mut previous: Option<u64> = last_purged.map(|id| id.index);
        for (offset, payload) in records {
            let entry: Entry<S> = match serde_json::from_slice(payload) {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(offset, error = %e, "undecodable raft log record");
                    valid_len = offset as usize;
                    break;
                }
            };
            let index = entry.log_id.index;
            if last_purged.is_some_and(|purged| index <= purged.index) {
                // Left behind by a purge that crashed before rewriting the file.
                continue;
            }
            if previous.is_some_and(|prev| index != prev + 1) {
                tracing::warn!(offset, index, ?previous, "raft log record out of sequence");
                valid_len = offset as usize;
                break;
            }
            previous = Some(index);
            entries.insert(index, (offset, entry));
        }
        if valid_len < bytes.len() {
            tracing::warn!(
                file = %log_path.display(),
                kept_bytes = valid_len,
                cut_bytes = bytes.len() - valid_len,
                "cutting torn tail off the raft log (crash while appending?)"
            );
            file.set_len(valid_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| QuorumError::io("cutting the raft log's torn tail", e))?;
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogFiles {
                dir: dir.to_path_buf(),
                file,
                file_len: valid_len as u64,
                entries,
                last_purged,
                vote,
            })),
        })
    }

    /// True if this node has never voted nor logged anything: a fresh quorum member.
    pub(crate) fn is_pristine(&self) -> Result<bool, QuorumError> {
        let files = self
            .lock()
            .map_err(|e| QuorumError::Storage(e.to_string()))?;
        Ok(files.vote.is_none() && files.entries.is_empty() && files.last_purged.is_none())
    }

    fn lock(&self) -> Result<MutexGuard<'_, LogFiles<S>>, StorageError> {
        self.inner
            .lock()
            .map_err(|_| storage_err(StorageIOError::read_logs, "raft log lock poisoned"))
    }
}

impl<S: ReplicatedState> LogFiles<S> {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|(_, entry)| entry.log_id)
            .or(self.last_purged)
    }

    // The file I/O below is synchronous: entries are small metadata records, and openraft
    // needs them durable before it goes on anyway.
    fn append(&mut self, new_entries: Vec<Entry<S>>) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(new_entries.len());
        for entry in &new_entries {
            let payload = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
            if u32::try_from(payload.len()).is_err() {
                return Err(std::io::Error::other("raft log entry larger than 4 GiB"));
            }
            offsets.push(self.file_len + buf.len() as u64);
            encode_record(&payload, &mut buf);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.file_len += buf.len() as u64;
        for (offset, entry) in offsets.into_iter().zip(new_entries) {
            self.entries.insert(entry.log_id.index, (offset, entry));
        }
        Ok(())
    }

    fn truncate(&mut self, from_index: u64) -> std::io::Result<()> {
        let Some((&first, &(offset, _))) = self.entries.range(from_index..).next() else {
            return Ok(());
        };
        self.file.set_len(offset)?;
        self.file.sync_all()?;
        self.file_len = offset;
        self.entries.split_off(&first);
        Ok(())
    }

    /// Records the purge point first, so a crash mid-way only leaves entries that are ignored
    /// on open, then rewrites the file without the purged entries.
    fn purge(&mut self, upto: LogId) -> std::io::Result<()> {
        files::write_json(&self.dir.join(PURGED_FILE), &upto)?;
        self.last_purged = Some(upto);
        self.entries = self.entries.split_off(&(upto.index + 1));
        let mut buf = Vec::new();
        for (offset, entry) in self.entries.values_mut() {
            let payload = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
            *offset = buf.len() as u64;
            encode_record(&payload, &mut buf);
        }
        let path = self.dir.join(LOG_FILE);
        files::write_atomic(&path, &buf)?;
        self.file = OpenOptions::new().read(true).append(true).open(&path)?;
        self.file_len = buf.len() as u64;
        Ok(())
    }
}

impl<S: ReplicatedState> RaftLogReader<RaftTypes<S>> for LogStore<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<S>>, StorageError> {
        let files = self.lock()?;
        Ok(files
            .entries
            .range(range)
            .map(|(_, (_, entry))| entry.clone())
            .collect())
    }
}

impl<S: ReplicatedState> RaftLogStorage<RaftTypes<S>> for LogStore<S> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<RaftTypes<S>>, StorageError> {
        let files = self.lock()?;
        Ok(LogState {
            last_purged_log_id: files.last_purged,
            last_log_id: files.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut files = self.lock()?;
        files::write_json(&files.dir.join(VOTE_FILE), vote)
            .map_err(|e| storage_err(StorageIOError::write_vote, e))?;
        files.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock()?.vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<RaftTypes<S>>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<S>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result = self.lock()?.append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "appending to the raft log failed");
                let storage_error = storage_err(StorageIOError::write_logs, &e);
                callback.log_io_completed(Err(e));
                Err(storage_error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating the raft log");
        self.lock()?
            .truncate(log_id.index)
            .map_err(|e| storage_err(StorageIOError::write_logs, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging the raft log");
        self.lock()?
            .purge(log_id)
            .map_err(|e| storage_err(StorageIOError::write_logs, e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct Sum(u64);

    impl ReplicatedState for Sum {
        type Command = u64;
        fn apply(&mut self, command: &u64) {
            self.0 += command;
        }
    }

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> Entry<Sum> {
        Entry::<Sum> {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(index * 10),
        }
    }

    async fn indexes(store: &mut LogStore<Sum>) -> Vec<(u64, u64)> {
        let entries = store.try_get_log_entries(..).await.unwrap();
        entries
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    async fn open_with(dir: &Path, entries: impl IntoIterator<Item = Entry<Sum>>) -> LogStore<Sum> {
        let mut store = LogStore::<Sum>::open(dir).unwrap();
        store
            .blocking_append(entries.into_iter().collect::<Vec<_>>())
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn appended_entries_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert!(store.is_pristine().unwrap());
        store
            .blocking_append((1..=3).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.blocking_append([entry(1, 4)]).await.unwrap();
        drop(store);
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert!(!store.is_pristine().unwrap());
        assert_eq!(
            indexes(&mut store).await,
            vec![(1, 1), (1, 2), (1, 3), (1, 4)]
        );
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(1, 4)));
        assert_eq!(state.last_purged_log_id, None);
        assert_eq!(store.try_get_log_entries(2..4).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_with(dir.path(), (1..=3).map(|i| entry(1, i))).await);
        let path = dir.path().join(LOG_FILE);
        let valid_len = std::fs::metadata(&path).unwrap().len();

        // A record whose payload was only partly written.
        let mut torn = Vec::new();
        encode_record(&serde_json::to_vec(&entry(1, 4)).unwrap(), &mut torn);
        torn.truncate(torn.len() - 3);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn).unwrap();
        drop(file);

        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 1), (1, 2), (1, 3)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), valid_len);
        // Appending continues cleanly after the cut.
        store.blocking_append([entry(1, 4)]).await.unwrap();
        drop(store);
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await.len(), 4);
    }

    #[tokio::test]
    async fn a_corrupt_record_cuts_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_with(dir.path(), (1..=3).map(|i| entry(1, i))).await);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 1), (1, 2)]);
    }

    #[tokio::test]
    async fn truncation_drops_the_conflicting_suffix_durably() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_with(dir.path(), (1..=5).map(|i| entry(1, i))).await;
        store.truncate(log_id(1, 3)).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 1), (1, 2)]);
        // The new leader's entries replace the old ones.
        store
            .blocking_append([entry(2, 3), entry(2, 4)])
            .await
            .unwrap();
        drop(store);
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(
            indexes(&mut store).await,
            vec![(1, 1), (1, 2), (2, 3), (2, 4)]
        );
        // Truncating past the end is a no-op.
        store.truncate(log_id(2, 9)).await.unwrap();
        assert_eq!(indexes(&mut store).await.len(), 4);
    }

    #[tokio::test]
    async fn purge_drops_the_prefix_durably() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_with(dir.path(), (1..=6).map(|i| entry(1, i))).await;
        store.purge(log_id(1, 4)).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 5), (1, 6)]);
        store.blocking_append([entry(1, 7)]).await.unwrap();
        // Truncation still finds the right offsets in the rewritten file.
        store.truncate(log_id(1, 7)).await.unwrap();
        drop(store);

        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 5), (1, 6)]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
        assert_eq!(state.last_log_id, Some(log_id(1, 6)));

        // Purging everything leaves the purge point as the last log id.
        store.purge(log_id(1, 6)).await.unwrap();
        drop(store);
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert!(indexes(&mut store).await.is_empty());
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 6))
        );
    }

    #[tokio::test]
    async fn a_purge_interrupted_before_the_rewrite_is_completed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_with(dir.path(), (1..=4).map(|i| entry(1, i))).await);
        // Crash after recording the purge point, before rewriting the log.
        files::write_json(&dir.path().join(PURGED_FILE), &log_id(1, 2)).unwrap();
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 3), (1, 4)]);
        store.truncate(log_id(1, 4)).await.unwrap();
        drop(store);
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 3)]);
    }

    #[tokio::test]
    async fn the_vote_is_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), None);
        let vote = Vote::new(3, 2);
        store.save_vote(&vote).await.unwrap();
        let committed = Vote::new_committed(4, 1);
        store.save_vote(&committed).await.unwrap();
        drop(store);
        let mut store = LogStore::<Sum>::open(dir.path()).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(committed));
        assert!(!store.is_pristine().unwrap());
    }
}
