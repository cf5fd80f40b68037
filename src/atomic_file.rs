//! Writing files atomically: what the user had is never lost.
//!
//! The new contents go to a hidden temporary file beside the target
//! (`.<name>.tmp-<pid>-<nanos>-<attempt>`, created exclusively, so two writers
//! never share one), which is synced and then renamed over the target; the
//! directory is synced too. A reader sees the old file or the new one, never
//! half of either. On failure the temporary file is removed and the target is
//! untouched. Temporaries that a killed process left behind more than a day
//! ago are removed on the next write of the same file.
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The step of [`write_atomic`] that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Creating the temporary file (a missing or read-only folder, …).
    Create,
    /// Writing the contents.
    Write,
    /// Syncing them to disk.
    Sync,
    /// Renaming the temporary file over the target.
    Replace,
}

/// Temporary files older than this are leftovers of a killed process.
const STALE_AGE: Duration = Duration::from_secs(24 * 3600);

fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(&prefix)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AGE);
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A new, exclusively created temporary file beside `path`.
fn create_temporary(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let pid = std::process::id();
    let mut attempt = 0u32;
    loop {
        let tmp = dir.join(format!(".{name}.tmp-{pid}-{nanos}-{attempt}"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `path` atomically with `write`, which fills the temporary file.
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), (Stage, io::Error)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "the path names no file");
        (Stage::Create, e)
    })?;
    let name = name.to_string_lossy();
    remove_stale_temporaries(dir, &name);
    let (tmp, mut file) = create_temporary(dir, &name).map_err(|e| (Stage::Create, e))?;
    let result = write(&mut file)
        .map_err(|e| (Stage::Write, e))
        .and_then(|()| file.sync_all().map_err(|e| (Stage::Sync, e)));
    drop(file);
    let result = result.and_then(|()| fs::rename(&tmp, path).map_err(|e| (Stage::Replace, e)));
    if result.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
