//! Records the version of the `rdkafka` crate this binary is linked against (read from
//! the workspace's Cargo.lock) so the COMPAT line can name it.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    // e2e/clients/rdkafka-compat -> workspace root
    let lock = manifest.join("../../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let version = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| locked_version(&text, "rdkafka"))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=STROM_RDKAFKA_CRATE_VERSION={version}");
}

/// The `version` of the `[[package]]` named `name` in a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let next = lines.next()?.trim();
            let v = next.strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(v.to_string());
        }
    }
    None
}
