//! Verified, atomic downloads from a list of mirrors.
//!
//! Each file is fetched into a hidden temporary file in the destination
//! directory, checked, synced to disk and only then renamed to its final
//! name, so an interrupted, truncated or corrupt download is never left where
//! a later run would trust it. A failure on one mirror moves on to the next.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::idx::GZIP_MAGIC;
use super::spec::FileSpec;
use super::verify::verify_bytes;

/// No data set file comes near this (CIFAR-10's archive is 170 MB); a body
/// that does is refused.
const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// What a download is doing, as told to a [`DownloadObserver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownloadEvent<'a> {
    /// A request to `url` is about to be sent.
    Started {
        /// The file's URL.
        url: &'a str,
    },
    /// The server answered; `total` is its Content-Length, if it gave one.
    Receiving {
        /// The file's URL.
        url: &'a str,
        /// The announced size in bytes.
        total: Option<u64>,
    },
    /// `bytes` have arrived so far.
    Progress {
        /// The file's URL.
        url: &'a str,
        /// Bytes received so far.
        bytes: u64,
    },
    /// The file arrived, was verified and is in place.
    Finished {
        /// The file's URL.
        url: &'a str,
        /// Its size in bytes.
        bytes: u64,
    },
    /// This mirror failed (the next one is tried, if any); `why` says how.
    Failed {
        /// The file's URL.
        url: &'a str,
        /// What went wrong, as it will appear in the error.
        why: &'a str,
    },
}

/// Receives [`DownloadEvent`]s, to show progress: static-nn itself never
/// prints. Set one in [`LocateOptions::observer`](super::LocateOptions::observer).
/// Any `Fn(DownloadEvent)` closure that is `Send + Sync` is an observer.
///
/// ```
/// use static_nn::data::{DownloadEvent, DownloadObserver, LocateOptions};
/// use std::sync::Arc;
/// let log = |e: DownloadEvent| {
///     if let DownloadEvent::Started { url } = e {
///         eprintln!("downloading {url}");
///     }
/// };
/// let opts = LocateOptions { observer: Some(Arc::new(log)), ..Default::default() };
/// # let _ = opts;
/// ```
pub trait DownloadObserver: Send + Sync {
    /// Called for each event, on the thread that downloads.
    fn on_event(&self, event: DownloadEvent<'_>);
}

impl<F: Fn(DownloadEvent<'_>) + Send + Sync> DownloadObserver for F {
    fn on_event(&self, event: DownloadEvent<'_>) {
        self(event)
    }
}

/// How to download.
#[derive(Clone)]
pub(crate) struct DownloadConfig {
    /// Timeout of each network phase (name resolution, connection, response, each read).
    pub timeout: Duration,
    /// Whether to check the file's checksums (else only its structure).
    pub verify: bool,
    /// Where progress goes.
    pub observer: Option<Arc<dyn DownloadObserver>>,
}

impl DownloadConfig {
    fn tell(&self, event: DownloadEvent<'_>) {
        if let Some(o) = &self.observer {
            o.on_event(event);
        }
    }
}

fn is_loopback(url: &str) -> bool {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(|h| h.to_ascii_lowercase()))
        .is_some_and(|h| {
            h == "localhost"
                || h == "[::1]"
                || h == "::1"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|a| a.is_loopback())
        })
}

fn agent(cfg: &DownloadConfig, url: &str) -> ureq::Agent {
    let t = Some(cfg.timeout);
    let mut b = ureq::Agent::config_builder()
        .timeout_resolve(t)
        .timeout_connect(t)
        .timeout_send_request(t)
        .timeout_recv_response(t)
        .timeout_per_read(t)
        .http_status_as_error(false)
        .user_agent(format!("static-nn/{}", env!("CARGO_PKG_VERSION")))
        // We want the file as served, not transparently decompressed.
        .accept_encoding("identity");
    if is_loopback(url) {
        b = b.proxy(None);
    }
    ureq::Agent::new_with_config(b.build())
}

/// A temporary file in `dir` that is removed on drop unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn create(dir: &Path, name: &str) -> io::Result<(TempFile, File)> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut attempt = 0u64;
        loop {
            let pid = std::process::id();
            let path = dir.join(format!(".{name}.{pid}.{nanos}-{attempt}.part"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => return Ok((TempFile { path, keep: false }, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Fetches `url` into `out`; returns the number of bytes written.
fn fetch(cfg: &DownloadConfig, url: &str, out: &mut File) -> Result<u64, String> {
    let mut resp = agent(cfg, url).get(url).call().map_err(|e| e.to_string())?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let encoded = resp
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"));
    let len = resp.body().content_length();
    cfg.tell(DownloadEvent::Receiving { url, total: len });
    let mut reader = resp
        .body_mut()
        .with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut n: u64 = 0;
    let of = len.map(|l| format!(" of {l}")).unwrap_or_default();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                out.write_all(&buf[..k])
                    .map_err(|e| format!("cannot write the temporary file: {e}"))?;
                n += k as u64;
                cfg.tell(DownloadEvent::Progress { url, bytes: n });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!("download interrupted after {n}{of} bytes: {e}"));
            }
        }
    }
    if let (Some(l), false) = (len, encoded) {
        if n != l {
            return Err(format!(
                "truncated download: Content-Length is {l} bytes, received {n}"
            ));
        }
    }
    out.sync_all()
        .map_err(|e| format!("cannot sync the temporary file: {e}"))?;
    Ok(n)
}

/// Temporary files older than this are leftovers of a killed process.
const STALE_PART_AGE: Duration = Duration::from_secs(24 * 3600);

/// Best effort: removes this file's temporary files that a killed process
/// left behind (recent ones may belong to a download running right now).
fn remove_stale_parts(dest: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dest) else {
        return;
    };
    let prefix = format!(".{name}.");
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if !(n.starts_with(&prefix) && n.ends_with(".part")) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_PART_AGE);
        if old {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Best effort: make a rename durable by syncing its directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// The structural check of a downloaded file, used when its checksums are
/// not (the spec lists none, or verification is off): `Err` says what is
/// wrong. Given the file's final name (for messages) and its bytes.
pub(crate) type Check<'a> = &'a dyn Fn(&Path, &[u8]) -> Result<(), String>;

/// Checks downloaded bytes: the file's checksums if it has any and
/// verification is on, else `structure`.
fn check(
    cfg: &DownloadConfig,
    url: &str,
    final_name: &str,
    bytes: &[u8],
    file: &FileSpec,
    structure: Check<'_>,
) -> Result<(), String> {
    let path = Path::new(final_name);
    if cfg.verify && file.has_checksum() {
        verify_bytes(url, path, bytes, file)
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else {
        structure(path, bytes).map_err(|e| format!("{url}: {e}"))
    }
}

/// The folders among `dest` and its ancestors that do not exist yet,
/// deepest first: those that `fs::create_dir_all(dest)` would create.
fn missing_folders(dest: &Path) -> Vec<PathBuf> {
    dest.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Downloads one file into `dest`, trying `mirrors` in order. Returns the
/// path of the verified file, or `None` with one line per failed attempt
/// appended to `failures`. The folders it had to create for `dest` are
/// removed again if every mirror failed and they are still empty, so a
/// failed download (offline, say) leaves no empty cache folder behind.
pub(crate) fn download_file(
    cfg: &DownloadConfig,
    file: &FileSpec,
    structure: Check<'_>,
    mirrors: &[String],
    dest: &Path,
    failures: &mut Vec<String>,
) -> Option<PathBuf> {
    let created = missing_folders(dest);
    if let Err(e) = fs::create_dir_all(dest) {
        failures.push(format!("cannot create {}: {e}", dest.display()));
        return None;
    }
    remove_stale_parts(dest, &file.name);
    for mirror in mirrors {
        let url = super::locate::join_url(mirror, &file.name);
        cfg.tell(DownloadEvent::Started { url: &url });
        match try_mirror(cfg, &url, file, structure, dest) {
            Ok((p, bytes)) => {
                cfg.tell(DownloadEvent::Finished { url: &url, bytes });
                return Some(p);
            }
            Err(why) => {
                let line = if why.starts_with(&url) {
                    why
                } else {
                    format!("{url}: {why}")
                };
                cfg.tell(DownloadEvent::Failed {
                    url: &url,
                    why: &line,
                });
                failures.push(line);
            }
        }
    }
    for folder in &created {
        // `remove_dir` removes only an empty folder: one holding another
        // file's download stays
        if fs::remove_dir(folder).is_err() {
            break;
        }
    }
    None
}

fn try_mirror(
    cfg: &DownloadConfig,
    url: &str,
    file: &FileSpec,
    structure: Check<'_>,
    dest: &Path,
) -> Result<(PathBuf, u64), String> {
    let (mut tmp, mut out) = TempFile::create(dest, &file.name)
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dest.display()))?;
    let bytes_received = fetch(cfg, url, &mut out)?;
    drop(out);
    let bytes =
        fs::read(&tmp.path).map_err(|e| format!("cannot read back the temporary file: {e}"))?;
    // A server may have sent the content decompressed; then keep it under the raw name.
    let final_name = if bytes.starts_with(&GZIP_MAGIC) {
        file.name.to_string()
    } else {
        file.raw_name().to_string()
    };
    check(cfg, url, &final_name, &bytes, file, structure)?;
    let final_path = dest.join(&final_name);
    fs::rename(&tmp.path, &final_path).map_err(|e| {
        format!(
            "cannot rename the download to {}: {e}",
            final_path.display()
        )
    })?;
    tmp.keep = true;
    sync_dir(dest);
    Ok((final_path, bytes_received))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::locate::join_url;

    #[test]
    fn urls_and_loopback() {
        assert_eq!(join_url("http://a/b/", "f.gz"), "http://a/b/f.gz");
        assert_eq!(join_url("http://a/b", "f.gz"), "http://a/b/f.gz");
        assert!(is_loopback("http://127.0.0.1:8080/x"));
        assert!(is_loopback("http://localhost/x"));
        assert!(is_loopback("http://[::1]:80/x"));
        assert!(!is_loopback(
            "https://ossci-datasets.s3.amazonaws.com/mnist/"
        ));
    }

    #[test]
    fn stale_parts_are_removed_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".a.gz.1.0.part");
        let fresh = dir.path().join(".a.gz.2.0.part");
        let other = dir.path().join(".b.gz.1.0.part");
        for p in [&stale, &fresh, &other] {
            fs::write(p, b"x").unwrap();
        }
        let old = std::time::SystemTime::now() - 2 * STALE_PART_AGE;
        for p in [&stale, &other] {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        remove_stale_parts(dir.path(), "a.gz");
        assert!(!stale.exists());
        assert!(fresh.exists());
        assert!(other.exists());
    }

    #[test]
    fn a_failed_download_removes_the_folders_it_created() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("cache").join("tiny");
        let cfg = DownloadConfig {
            timeout: Duration::from_secs(5),
            verify: false,
            observer: None,
        };
        let file = FileSpec::new("a.gz", "", vec![]);
        let structure: Check<'_> = &|_, _| Ok(());
        // port 1 on the loopback: nothing listens, the connection is refused
        let mirrors = ["http://127.0.0.1:1/".to_string()];
        let mut failures = Vec::new();
        assert!(download_file(&cfg, &file, structure, &mirrors, &dest, &mut failures).is_none());
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].starts_with("http://127.0.0.1:1/a.gz"),
            "{failures:?}"
        );
        assert!(!root.path().join("cache").exists());
        assert!(root.path().exists());
        // a folder that holds something (an earlier file) stays
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join("b.gz"), b"x").unwrap();
        let mut failures = Vec::new();
        assert!(download_file(&cfg, &file, structure, &mirrors, &dest, &mut failures).is_none());
        assert!(dest.join("b.gz").exists());
    }

    #[test]
    fn temp_files_are_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (t, _f) = TempFile::create(dir.path(), "x.gz").unwrap();
        let p = t.path.clone();
        assert!(p.exists());
        drop(t);
        assert!(!p.exists());
    }
}
