//! Atomic file writing: write a temporary file in the target folder, then rename.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::data::error::{DataError, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `path` atomically: `write` fills a temporary file in the same folder,
/// which is renamed over `path` only when `write` succeeds; on failure the
/// temporary file is removed and `path` is left untouched.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_path(path)?;
    let outcome = write(&tmp).and_then(|()| {
        let f = std::fs::File::open(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        f.sync_all().map_err(|e| DataError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
    });
    if outcome.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    outcome
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, synced, renamed),
/// so that an interrupted write never leaves a half-written file behind.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|e| DataError::io(tmp, e))
    })
}

fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| DataError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        n
    );
    Ok(path.with_file_name(tmp_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_leaves_target_untouched_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        std::fs::write(&target, b"old").unwrap();
        let r = write_atomically(&target, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(DataError::Config("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&target, |tmp| {
            std::fs::write(tmp, b"new").map_err(|e| DataError::io(tmp, e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn missing_folder_is_io_error() {
        let r = write_atomically(Path::new("/nonexistent-dir-xyz/out.txt"), |tmp| {
            std::fs::write(tmp, b"x").map_err(|e| DataError::io(tmp, e))
        });
        assert!(matches!(r, Err(DataError::Io { .. })));
    }
}
