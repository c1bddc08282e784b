//! Durable file primitives: atomic replace, fsync of directories, checksummed records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content:
/// write a temp file, fsync it, rename it over, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Makes a rename or a file creation in `path`'s directory durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Reads a file written by [`write_atomic`]; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads and JSON-decodes a file written by [`write_atomic`]; `None` if it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match read_optional(path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
    }
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Record header: payload length and CRC-32C of the payload, both big-endian u32.
pub(crate) const RECORD_HEADER: usize = 8;

/// Frames one payload as a log record.
pub(crate) fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    // Payloads are metadata entries; a u32 length is plenty and the writer checks it.
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Splits a log file into record payloads with their start offsets. Stops at the first
/// record that is short or fails its checksum and reports where the valid prefix ends.
pub(crate) fn decode_records(bytes: &[u8]) -> (Vec<(u64, &[u8])>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= RECORD_HEADER {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_be_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let start = pos + RECORD_HEADER;
        let Some(end) = start.checked_add(len).filter(|end| *end <= bytes.len()) else {
            break;
        };
        let payload = &bytes[start..end];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        records.push((pos as u64, payload));
        pos = end;
    }
    (records, pos)
}

/// Opens (creating if needed) a file for appending and reads its whole content.
pub(crate) fn open_and_read(path: &Path) -> io::Result<(File, Vec<u8>)> {
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    if !existed {
        sync_dir(path)?;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok((file, bytes))
}
