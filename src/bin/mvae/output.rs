//! Output helpers: JSON on stdout for scripts, progress bars on stderr for people.

use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::Common;

/// Prints `value` as one JSON line when `--json`, else calls `human`.
pub fn report(common: &Common, value: &serde_json::Value, human: impl FnOnce()) {
    if common.json {
        println!("{value}");
    } else {
        human();
    }
}

/// A progress bar of `len` steps on stderr (hidden with `--json` or when stderr is not a
/// terminal).
pub fn bar(common: &Common, len: u64, prefix: String) -> ProgressBar {
    if common.json {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:28}] {pos}/{len} {msg} ({elapsed}<{eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    mvae::data::atomic::write_bytes(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates the output folder `dir`, refusing one that holds files unless `force`.
pub fn output_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{} exists and is not a folder", dir.display());
        }
        let busy = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some();
        if busy && !force {
            bail!(
                "{} is not empty; choose another --out or pass --force",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Refuses to replace the existing file `path` unless `force`.
pub fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} exists; choose another --out or pass --force",
            path.display()
        );
    }
    Ok(())
}

/// Creates the folder `dir` if needed and checks that files can be written there, by creating
/// and removing a file: a command that computes for minutes calls this first, so that it fails
/// at once instead of losing its results.
pub fn check_writable(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let probe = dir.join(format!(".mvae-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("{} is not writable", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("removing {}", probe.display()))
}

/// Refuses an output path that is one of the command's inputs, given as (flag, path) pairs,
/// directly or through a link: both are compared after resolving links. Every command that
/// writes calls this before it writes anything, so `--force` never replaces an input.
pub fn refuse_input(out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let Ok(target) = out.canonicalize() else {
        // Nothing there yet (or a dangling link): not an input, which exists.
        return Ok(());
    };
    for (flag, input) in inputs {
        if input.canonicalize().is_ok_and(|i| i == target) {
            bail!(
                "--out {} is the input {} ({flag}); choose another output",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}
