//! Finds the `strom-broker` executable the scenarios run.
//!
//! Order: `$STROM_BROKER_BIN`, else `<target dir>/release/strom-broker` where the target dir
//! is `$CARGO_TARGET_DIR` or the workspace's `target/`. Cargo cannot hand a test of one
//! package the binary of another (artifact dependencies are unstable), so the release
//! binary is built beforehand: `cargo build --release -p strom-broker --bin strom-broker`.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::SystemTime;

use crate::error::HarnessError;

pub const BROKER_BIN_ENV: &str = "STROM_BROKER_BIN";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn broker_binary() -> Result<PathBuf, HarnessError> {
    let path = resolve(std::env::var_os(BROKER_BIN_ENV).map(PathBuf::from))?;
    warn_if_stale(&path);
    Ok(path)
}

/// `explicit` (the env variable's value) or the release binary in the target dir; an
/// error naming the build command when the file is missing.
pub fn resolve(explicit: Option<PathBuf>) -> Result<PathBuf, HarnessError> {
    let path = match explicit {
        Some(p) => p,
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"));
            target.join("release").join("strom-broker")
        }
    };
    if !path.is_file() {
        return Err(HarnessError::BinaryMissing {
            path,
            hint: format!(
                "build it with `cargo build --release -p strom-broker --bin strom-broker` \
                 or point {BROKER_BIN_ENV} at a strom-broker executable"
            ),
        });
    }
    Ok(path)
}

/// A binary older than the broker's sources silently tests old code; say so once.
fn warn_if_stale(binary: &Path) {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        let Some(built) = modified(binary) else {
            return;
        };
        let sources = workspace_root().join("broker").join("src");
        if let Some(newest) = newest_file(&sources) {
            if newest.1 > built {
                eprintln!(
                    "warning: {} is older than {}; rebuild with \
                     `cargo build --release -p strom-broker --bin strom-broker`",
                    binary.display(),
                    newest.0.display()
                );
            }
        }
    });
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn newest_file(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(t) = modified(&path) {
                if newest.as_ref().is_none_or(|(_, n)| t > *n) {
                    newest = Some((path, t));
                }
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_build_command() {
        let err = resolve(Some(PathBuf::from("/nonexistent/strom-broker"))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/strom-broker")
                && text.contains("cargo build --release -p strom-broker")
                && text.contains(BROKER_BIN_ENV),
            "{text}"
        );
        let here = std::env::current_exe().unwrap();
        assert_eq!(resolve(Some(here.clone())).unwrap(), here);
    }
}
