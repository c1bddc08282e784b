//! A small ext4 file system on a loop device, for disk-full scenarios: a log directory
//! on it fills up for real (ENOSPC from the kernel, partial writes included), and the
//! test frees space again by removing its own filler file. Needs root, `mkfs.ext4`
//! (e2fsprogs) and loop devices; `probe` says why not. Unmounted and deleted on drop,
//! also during a panic.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{HarnessError, Result};
use crate::netns::{installed, run};

const FILLER: &str = "strom-e2e-filler";
const CHUNK: usize = 1 << 20;

pub struct SmallFs {
    mount: PathBuf,
    image: PathBuf,
    mounted: bool,
    _dir: tempfile::TempDir,
}

/// Checks that a loop-mounted ext4 can be made here; the error says why not.
pub fn probe() -> std::result::Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("mounting a loop device needs root".into());
    }
    if !installed("mkfs.ext4") {
        return Err("`mkfs.ext4` is not installed (apt-get install -y e2fsprogs)".into());
    }
    SmallFs::create(4).map(drop).map_err(|e| e.to_string())
}

impl SmallFs {
    /// Makes and mounts a `size_mib` ext4 with no blocks reserved for root (the broker
    /// runs as root in CI, and reserved blocks would hide the full disk from it).
    pub fn create(size_mib: u64) -> Result<SmallFs> {
        let dir = tempfile::Builder::new()
            .prefix("strom-e2e-smallfs-")
            .tempdir()
            .map_err(|e| HarnessError::io("create small fs temp dir", e))?;
        let image = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount).map_err(|e| HarnessError::io("create mount point", e))?;
        File::create(&image)
            .and_then(|f| f.set_len(size_mib << 20))
            .map_err(|e| HarnessError::io(format!("create {}", image.display()), e))?;
        let image_arg = image.display().to_string();
        let mount_arg = mount.display().to_string();
        run("mkfs.ext4", &["-q", "-F", "-m", "0", &image_arg])?;
        run("mount", &["-o", "loop", &image_arg, &mount_arg])?;
        Ok(SmallFs {
            mount,
            image,
            mounted: true,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Bytes still free for an unprivileged-or-root writer (no reserve: see `create`).
    pub fn available(&self) -> Result<u64> {
        let (_, free) = space(&self.mount)?;
        Ok(free)
    }

    /// Writes a filler file until at most `leave` bytes stay free, so whatever writes
    /// next fills the rest.
    pub fn fill_leaving(&self, leave: u64) -> Result<()> {
        let path = self.mount.join(FILLER);
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| HarnessError::io("open filler", e))?;
        let chunk = vec![0x5au8; CHUNK];
        loop {
            let free = self.available()?;
            if free <= leave {
                break;
            }
            let want = ((free - leave) as usize).min(CHUNK);
            match file
                .write_all(&chunk[..want])
                .and_then(|()| file.sync_data())
            {
                Ok(()) => {}
                // Another writer (the broker) took the space first: full enough.
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(HarnessError::io("write filler", e)),
            }
        }
        Ok(())
    }

    /// Removes the filler file: the space comes back.
    pub fn free(&self) -> Result<()> {
        match fs::remove_file(self.mount.join(FILLER)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HarnessError::io("remove filler", e)),
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if self.mounted {
            let mount = self.mount.display().to_string();
            // Lazy as a fallback: a broker that is still exiting may hold files open.
            if run("umount", &[&mount]).is_err() {
                let _ = run("umount", &["-l", &mount]);
            }
            self.mounted = false;
        }
        let _ = fs::remove_file(&self.image);
    }
}

/// (size, free) of the file system holding `path`.
fn space(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| HarnessError::Protocol(format!("path with NUL: {e}")))?;
    // SAFETY: a zeroed statvfs is a valid value to be overwritten.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `stat` writable.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(HarnessError::io(
            format!("statvfs {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    let block = stat.f_frsize as u64;
    Ok((stat.f_blocks as u64 * block, stat.f_bavail as u64 * block))
}
