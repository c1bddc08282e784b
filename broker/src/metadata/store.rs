//! The metadata store: the journal plus the current image. Every change goes through
//! `commit`, which makes it durable before anyone can see it.

use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::image::MetadataImage;
use super::journal::{Journal, Replay};
use super::records::MetadataRecord;

#[derive(Debug)]
pub struct MetadataStore {
    journal: Mutex<Journal>,
    image: RwLock<Arc<MetadataImage>>,
}

impl MetadataStore {
    /// Opens the journal in `dir` and replays it into an image.
    pub fn open(dir: &Path) -> std::io::Result<(MetadataStore, u64)> {
        let (
            journal,
            Replay {
                batches,
                truncated_bytes,
            },
        ) = Journal::open(dir)?;
        let mut image = MetadataImage::default();
        for record in batches.iter().flatten() {
            image.apply(record);
        }
        Ok((
            MetadataStore {
                journal: Mutex::new(journal),
                image: RwLock::new(Arc::new(image)),
            },
            truncated_bytes,
        ))
    }

    /// The current image; cheap to take, never changes under the holder.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Writes `records` durably, then publishes the image they produce. `decide` runs under
    /// the commit lock with the latest image, so check-then-write decisions (does the topic
    /// exist?) cannot race each other.
    pub fn commit_with<T, E>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<(Arc<MetadataImage>, T), CommitError<E>> {
        let mut journal = self.journal.lock();
        let current = self.image();
        let (records, value) = decide(&current).map_err(CommitError::Rejected)?;
        if records.is_empty() {
            return Ok((current, value));
        }
        journal.append(&records).map_err(CommitError::Io)?;
        let mut next = (*current).clone();
        for record in &records {
            next.apply(record);
        }
        let next = Arc::new(next);
        *self.image.write() = next.clone();
        Ok((next, value))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError<E> {
    #[error("rejected")]
    Rejected(E),
    #[error("metadata journal write failed: {0}")]
    Io(std::io::Error),
}
