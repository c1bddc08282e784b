//! Bootstrap records: what `strom-broker format` was given for the metadata log of a new
//! cluster (today the credentials of `--add-scram`), kept in `bootstrap.json` in the
//! metadata directory (`<first log dir>/__cluster_metadata-0`) until the cluster starts.
//!
//! How they reach the log exactly once (Kafka's rule for its `bootstrap.checkpoint`):
//! the active controller commits them before its first decision, and only if the log has
//! no record yet (`MetadataImage::applied == 0`). Every change to the metadata goes through
//! that decision path under one lock (`quorum::service`), so the bootstrap records are the
//! log's first entry: written by whichever voter leads first, and never again, because
//! from then on the log is not empty on any node (a later leader has every committed
//! entry). A voter that fails before its bootstrap entry commits leaves the log empty,
//! so the next leader writes its own. (One case writes them twice: a commit that times
//! out but lands after all, followed by a retry on the same leader before it applied.
//! The records are upserts of the same credentials, so the image is the same.) Nodes formatted alike give the same users; as in
//! Kafka, only the first leader's file counts, and a file on a broker-only node or on a
//! node joining a running cluster is never used (the start-up log says so).
//!
//! `format` writes the file only into a metadata directory it formats now: re-running it
//! on a formatted node (an init container that runs on every start) changes nothing.
//! The file holds salts and derived keys, never passwords, and is readable by the owner
//! only. It stays after use, as Kafka's does; it is harmless once the log has records.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::records::MetadataRecord;

pub const FILE: &str = "bootstrap.json";

#[derive(Debug, Serialize, Deserialize)]
struct BootstrapFile {
    /// Strom's own format version of this file.
    version: u32,
    records: Vec<MetadataRecord>,
}

const VERSION: u32 = 1;

/// Writes `records` as the bootstrap of the metadata directory `dir`: a temp file made
/// durable, then renamed over, so a crash leaves the old file or the new one.
pub fn write(dir: &Path, records: &[MetadataRecord]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::create_dir_all(dir)?;
    let body = serde_json::to_vec(&BootstrapFile {
        version: VERSION,
        records: records.to_vec(),
    })
    .map_err(io::Error::other)?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    fs::File::open(dir)?.sync_all()
}

/// The bootstrap records of the metadata directory `dir`; none if it has no file.
pub fn read(dir: &Path) -> io::Result<Vec<MetadataRecord>> {
    let path = dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let file: BootstrapFile = serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    if file.version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: version {} is not one this broker reads ({VERSION})",
                path.display(),
                file.version
            ),
        ));
    }
    Ok(file.records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::{ScramCredential, ScramMechanism};

    #[test]
    fn records_round_trip_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let metadata = dir.path().join("__cluster_metadata-0");
        assert!(read(&metadata).expect("no file is no records").is_empty());
        let records = vec![MetadataRecord::UserScramCredential {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha256,
            credential: ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"s", 4096)
                .expect("valid"),
        }];
        write(&metadata, &records).expect("written");
        assert_eq!(read(&metadata).expect("read"), records);
        let mode = fs::metadata(metadata.join(FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
    }

    #[test]
    fn a_damaged_file_is_an_error_not_an_empty_bootstrap() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(FILE), b"{\"version\":1,\"rec").expect("written");
        assert!(read(dir.path()).is_err());
        fs::write(dir.path().join(FILE), b"{\"version\":9,\"records\":[]}").expect("written");
        assert!(read(dir.path()).is_err());
    }
}
