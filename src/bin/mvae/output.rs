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
    progress(len, prefix)
}

/// A progress bar of `len` steps on stderr, drawn when stderr is a terminal (for steps that
/// run before the command's options are at hand, such as reading a manifest's files).
pub fn progress(len: u64, prefix: String) -> ProgressBar {
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

/// Creates the output folder `dir`, refusing one that holds files unless `force` (a
/// [`RunLock`]'s file does not count: its holder, if alive, refuses the folder itself).
pub fn output_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{} exists and is not a folder", dir.display());
        }
        let busy = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .any(|e| e.is_ok_and(|e| e.file_name() != RunLock::FILE));
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

/// The lock of a run directory while a process writes it: the file [`RunLock::FILE`] in the
/// folder, created atomically and holding the process id, removed when the lock is dropped.
pub struct RunLock {
    path: std::path::PathBuf,
}

impl RunLock {
    /// The lock file's name in the folder it locks.
    pub const FILE: &'static str = ".mvae.lock";

    /// Locks the existing folder `dir`. A lock left by a process that is no longer running (one
    /// killed with SIGKILL) is taken over with a note on stderr.
    ///
    /// # Errors
    /// If another running process holds the lock (naming it), or the file cannot be written.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        };
        // The process id is written after the file is created: a reader may see it empty.
        let mut file = match create() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = text.trim().parse::<u32>().ok();
                match holder {
                    Some(pid) if !Self::is_stale(pid) => bail!(
                        "{} is in use by process {pid} (its lock {}); wait for it to finish, or \
                         remove the lock if no mvae process {pid} is running",
                        dir.display(),
                        path.display()
                    ),
                    None => bail!(
                        "{} is locked ({} names no process yet); remove the lock if no mvae \
                         process is running",
                        dir.display(),
                        path.display()
                    ),
                    Some(pid) => {
                        eprintln!(
                            "note: taking over the lock of {} left by process {} that is no \
                             longer running",
                            dir.display(),
                            pid
                        );
                        std::fs::remove_file(&path)
                            .with_context(|| format!("removing {}", path.display()))?;
                        // Another process may take it in between: then it holds the lock.
                        create().with_context(|| format!("locking {}", dir.display()))?
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("locking {}", dir.display())),
        };
        use std::io::Write;
        let lock = Self { path };
        write!(file, "{}", std::process::id())
            .with_context(|| format!("writing {}", lock.path.display()))?;
        Ok(lock)
    }

    /// Whether the process `pid` is known to have ended (where `/proc` tells; elsewhere a lock
    /// is never taken as stale).
    fn is_stale(pid: u32) -> bool {
        Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
