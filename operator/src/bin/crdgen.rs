//! Prints the CRDs generated from `strom_operator::crd`, or writes them into a directory
//! (`--write crds`), or checks that a directory holds exactly them (`--check crds`, used
//! by the test command so `crds/` can never drift from the Rust types).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use strom_operator::crd;

#[derive(Parser)]
#[command(about = "Generate the kafka.strom.dev CustomResourceDefinitions")]
struct Args {
    /// Write one YAML file per CRD into this directory.
    #[arg(long, conflicts_with = "check")]
    write: Option<PathBuf>,
    /// Fail unless this directory holds exactly the generated files.
    #[arg(long)]
    check: Option<PathBuf>,
}

fn rendered() -> anyhow::Result<Vec<(&'static str, String)>> {
    crd::all()
        .into_iter()
        .map(|(file, crd)| Ok((file, crd::to_yaml(&crd).context(file)?)))
        .collect()
}

fn check(dir: &Path) -> anyhow::Result<()> {
    let files = rendered()?;
    let mut stale = Vec::new();
    for (file, yaml) in &files {
        let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if on_disk != *yaml {
            stale.push(file.to_string());
        }
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !files.iter().any(|(f, _)| *f == name) {
            stale.push(format!("{name} (not generated)"));
        }
    }
    if !stale.is_empty() {
        bail!(
            "{} differs from crdgen: {}; run `cargo run -p strom-operator --bin crdgen -- --write {}`",
            dir.display(),
            stale.join(", "),
            dir.display()
        );
    }
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = args.check {
        return check(&dir);
    }
    let files = rendered()?;
    match args.write {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (file, yaml) in files {
                std::fs::write(dir.join(file), yaml).with_context(|| format!("writing {file}"))?;
            }
        }
        None => {
            for (_, yaml) in files {
                print!("---\n{yaml}");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
