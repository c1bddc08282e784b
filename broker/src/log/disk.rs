//! The file operations whose failure the log must survive: creation, positional writes,
//! truncation and fsync. They go through here so tests can make them fail on cue
//! (`faults`), since a full disk cannot be had in a unit test.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use thiserror::Error;

/// A write that failed, and whether the file was cut back to where it was before it.
#[derive(Debug, Error)]
pub enum WriteError {
    /// Nothing of the write is left: the file is as it was, and writing may go on.
    #[error("{0}")]
    RolledBack(io::Error),
    /// The write failed and so did cutting its bytes off again: the file holds bytes its
    /// owner does not account for, and nothing may be written after them.
    #[error("{write}; cutting the partial write off failed too: {repair}")]
    Unrepaired { write: io::Error, repair: io::Error },
}

impl WriteError {
    pub fn is_unrepaired(&self) -> bool {
        matches!(self, WriteError::Unrepaired { .. })
    }
}

impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> io::Error {
        match e {
            WriteError::RolledBack(e) => e,
            WriteError::Unrepaired { ref write, .. } => io::Error::new(write.kind(), e.to_string()),
        }
    }
}

/// Writes `parts` one after another from `pos`, where the file's meaningful content ends,
/// and returns the position after them. On failure the file is cut back to `pos`, so a
/// short write (a full disk) leaves no partial bytes behind.
pub fn append_at(file: &File, parts: &[&[u8]], pos: u64) -> Result<u64, WriteError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    match write_vectored_all_at(file, parts, pos) {
        Ok(()) => Ok(pos + len as u64),
        Err(e) => Err(undo(file, pos, e)),
    }
}

/// Writes all of `parts` from `pos` with `pwritev`, so a patched header and the batch it
/// heads go out in one system call, positioned like `write_all_at`.
fn write_vectored_all_at(file: &File, parts: &[&[u8]], pos: u64) -> io::Result<()> {
    #[cfg(test)]
    {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if faults::write_would_fail(len) {
            // Part by part, so the injected short write lands what fits, as a real one.
            let mut at = pos;
            for part in parts {
                write_all_at(file, part, at)?;
                at += part.len() as u64;
            }
            return Ok(());
        }
        // Spends the budget the write takes.
        let _ = faults::take_write_budget(len);
    }
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut remaining: &mut [IoSlice<'_>] = &mut slices;
    let mut at = pos;
    while !remaining.is_empty() {
        match pwritev(file, remaining, at) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "log write wrote nothing",
                ))
            }
            Ok(written) => {
                at += written as u64;
                IoSlice::advance_slices(&mut remaining, written);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn pwritev(file: &File, slices: &[IoSlice<'_>], pos: u64) -> io::Result<usize> {
    let count = slices.len().min(libc::c_int::MAX as usize) as libc::c_int;
    let offset = libc::off_t::try_from(pos)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position too large"))?;
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (std documents it), the
    // slices borrow live buffers for the call, and `count` does not exceed their number.
    let written = unsafe {
        libc::pwritev(
            file.as_raw_fd(),
            slices.as_ptr().cast::<libc::iovec>(),
            count,
            offset,
        )
    };
    if written < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(written as usize)
}

/// Cuts the file back to `len` after `cause` failed a write past it.
pub fn undo(file: &File, len: u64, cause: io::Error) -> WriteError {
    match set_len(file, len) {
        Ok(()) => WriteError::RolledBack(cause),
        Err(repair) => WriteError::Unrepaired {
            write: cause,
            repair,
        },
    }
}

/// Writes all of `buf` at `pos`. Positional on purpose: the file is never opened with
/// O_APPEND, so where bytes land is decided by the caller's idea of the file's size and
/// not by whatever a failed earlier write left at the end.
pub fn write_all_at(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    #[cfg(test)]
    let buf = match faults::take_write_budget(buf.len()) {
        Some(allowed) => {
            // A short write as a full disk gives: what fits lands, then the error.
            file.write_all_at(&buf[..allowed], pos)?;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        None => buf,
    };
    file.write_all_at(buf, pos)
}

/// Creates the file empty for reading and writing, cutting any file of that name.
pub fn create(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // Fails after the file appeared, as a step after creating it would: the caller must
    // clean up what exists.
    #[cfg(test)]
    faults::check(|f| f.fail_create, "create")?;
    Ok(file)
}

/// Cuts (or extends) the file to `len` bytes.
pub fn set_len(file: &File, len: u64) -> io::Result<()> {
    #[cfg(test)]
    faults::check(|f| f.fail_set_len, "truncate")?;
    file.set_len(len)
}

/// fsyncs the file's data. A failure is final: the kernel may have dropped the dirty
/// pages, and a later fsync that succeeds proves nothing about them.
pub fn sync_data(file: &File) -> io::Result<()> {
    #[cfg(test)]
    faults::check(|f| f.fail_sync, "fsync")?;
    file.sync_data()
}

/// Test-only fault injection, per thread so parallel tests do not disturb each other.
#[cfg(test)]
pub mod faults {
    use std::cell::RefCell;
    use std::io;

    #[derive(Debug, Default, Clone)]
    pub struct Faults {
        /// Bytes writes may still put down; the write that needs more writes what fits
        /// and fails, as on a full disk. `None`: no limit.
        pub write_budget: Option<u64>,
        pub fail_set_len: bool,
        pub fail_sync: bool,
        pub fail_create: bool,
    }

    thread_local! {
        static FAULTS: RefCell<Faults> = RefCell::new(Faults::default());
    }

    /// Sets the faults of the calling thread.
    pub fn set(faults: Faults) {
        FAULTS.with(|f| *f.borrow_mut() = faults);
    }

    /// Clears every fault of the calling thread.
    pub fn clear() {
        set(Faults::default());
    }

    /// Whether a write of `len` bytes would run out of budget (without spending any).
    pub(super) fn write_would_fail(len: usize) -> bool {
        FAULTS.with(|f| f.borrow().write_budget.is_some_and(|b| (len as u64) > b))
    }

    /// For a write of `len` bytes: `Some(n)` when only `n` fit and the write must fail.
    pub(super) fn take_write_budget(len: usize) -> Option<usize> {
        FAULTS.with(|f| {
            let mut f = f.borrow_mut();
            let budget = f.write_budget.as_mut()?;
            if (len as u64) <= *budget {
                *budget -= len as u64;
                return None;
            }
            let allowed = *budget as usize;
            *budget = 0;
            Some(allowed)
        })
    }

    pub(super) fn check(which: impl Fn(&Faults) -> bool, what: &str) -> io::Result<()> {
        if FAULTS.with(|f| which(&f.borrow())) {
            return Err(io::Error::other(format!("{what} failed (injected)")));
        }
        Ok(())
    }
}
