//! Unpacking a `.tar.gz` archive (CIFAR-10's) into a folder, atomically: into
//! a hidden temporary folder beside the destination, renamed into place only
//! once every entry is out, so a killed or failed extraction is never taken
//! for the data.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::error::{io_err, DataError};

/// The part of an entry's path below `folder/`, if it lies there and holds
/// only plain names (no `..`, no root): entries elsewhere are ignored.
fn below(entry: &Path, folder: &str) -> Option<PathBuf> {
    let mut parts = entry.components();
    match parts.next() {
        Some(Component::Normal(first)) if first == folder => {}
        _ => return None,
    }
    let rest: PathBuf = parts
        .map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect::<Option<PathBuf>>()?;
    (!rest.as_os_str().is_empty()).then_some(rest)
}

/// Reads the gzip-compressed tar `bytes` to the end, giving each regular
/// file below `folder/` (its path below `folder`, its reader) to `each`.
/// Returns how many there were. Errors name `archive`.
fn walk(
    archive: &Path,
    bytes: impl Read,
    folder: &str,
    mut each: impl FnMut(&Path, &mut dyn Read) -> Result<(), DataError>,
) -> Result<usize, DataError> {
    let corrupt = |e: io::Error| DataError::CorruptArchive {
        path: archive.into(),
        detail: e.to_string(),
    };
    let mut tar = tar::Archive::new(MultiGzDecoder::new(bytes));
    let mut n = 0;
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(corrupt)?.into_owned();
        let Some(rel) = below(&path, folder) else {
            continue;
        };
        each(&rel, &mut entry)?;
        n += 1;
    }
    // Read the rest (the end-of-archive blocks and the gzip trailer with its
    // CRC), so that an archive cut short there is caught too.
    io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(corrupt)?;
    if n == 0 {
        return Err(DataError::CorruptArchive {
            path: archive.into(),
            detail: format!("it holds no files in a folder {folder}/"),
        });
    }
    Ok(n)
}

/// The structural check of a downloaded archive: it decompresses and reads
/// to the end, and holds files below `folder/`.
#[cfg(feature = "download")]
pub(crate) fn check_tar_gz(path: &Path, bytes: &[u8], folder: &str) -> Result<(), String> {
    walk(path, bytes, folder, |_, r| {
        io::copy(r, &mut io::sink())
            .map(|_| ())
            .map_err(|e| DataError::CorruptArchive {
                path: path.into(),
                detail: e.to_string(),
            })
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// A folder removed (with what is in it) on drop unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Extracts the files below `folder/` in the `.tar.gz` at `archive` into
/// `parent/folder`, atomically; returns that folder. If it appears meanwhile
/// (another process extracted the same archive), that one is kept.
pub(crate) fn extract_tar_gz(
    archive: &Path,
    parent: &Path,
    folder: &str,
) -> Result<PathBuf, DataError> {
    let dest = parent.join(folder);
    let file = fs::File::open(archive).map_err(|e| io_err(archive, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = TempDir {
        path: parent.join(format!(
            ".{folder}.{}.{nanos}.extracting",
            std::process::id()
        )),
        keep: false,
    };
    fs::create_dir(&tmp.path).map_err(|e| io_err(&tmp.path, e))?;
    walk(archive, io::BufReader::new(file), folder, |rel, r| {
        let out = tmp.path.join(rel);
        if let Some(dir) = out.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let mut f = fs::File::create(&out).map_err(|e| io_err(&out, e))?;
        io::copy(r, &mut f).map_err(|e| DataError::CorruptArchive {
            path: archive.into(),
            detail: format!("while extracting {}: {e}", rel.display()),
        })?;
        f.sync_all().map_err(|e| io_err(&out, e))
    })?;
    match fs::rename(&tmp.path, &dest) {
        Ok(()) => {}
        Err(_) if dest.is_dir() => return Ok(dest),
        Err(e) => return Err(io_err(&dest, e)),
    }
    let mut tmp = tmp;
    tmp.keep = true;
    Ok(dest)
}

#[cfg(all(test, feature = "download"))]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn paths_below_the_folder_only() {
        assert_eq!(below(Path::new("f/a.bin"), "f"), Some("a.bin".into()));
        assert_eq!(below(Path::new("f/x/a.bin"), "f"), Some("x/a.bin".into()));
        assert_eq!(below(Path::new("g/a.bin"), "f"), None);
        assert_eq!(below(Path::new("f/../a.bin"), "f"), None);
        assert_eq!(below(Path::new("/f/a.bin"), "f"), None);
        assert_eq!(below(Path::new("f"), "f"), None);
    }

    #[test]
    fn extracts_atomically_and_checks() {
        let d = tempfile::tempdir().unwrap();
        let bytes = tar_gz(&[("f/a.bin", b"abc"), ("other/b.bin", b"x"), ("f/s/c", b"")]);
        let p = d.path().join("a.tar.gz");
        fs::write(&p, &bytes).unwrap();
        check_tar_gz(&p, &bytes, "f").unwrap();
        let out = extract_tar_gz(&p, d.path(), "f").unwrap();
        assert_eq!(out, d.path().join("f"));
        assert_eq!(fs::read(out.join("a.bin")).unwrap(), b"abc");
        assert!(out.join("s/c").is_file());
        assert!(!d.path().join("other").exists());
        // no temporary folder is left behind
        let hidden = fs::read_dir(d.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(hidden, 0);

        let cut = &bytes[..bytes.len() / 2];
        let e = check_tar_gz(&p, cut, "f").unwrap_err();
        assert!(e.contains("corrupt or truncated archive"), "{e}");
        let q = d.path().join("cut.tar.gz");
        fs::write(&q, cut).unwrap();
        let e = extract_tar_gz(&q, d.path(), "g").unwrap_err();
        assert!(matches!(e, DataError::CorruptArchive { .. }), "{e:?}");
        assert!(!d.path().join("g").exists());
        let e = check_tar_gz(&p, &bytes, "nope").unwrap_err();
        assert!(e.contains("holds no files in a folder nope/"), "{e}");
    }
}
