//! Finding a data set's files: an explicit directory, then the data set's
//! environment variable (`$MNIST_DIR`), then the per-user cache, then a
//! download into the cache.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "download")]
use super::download::{download_file, DownloadConfig, DownloadObserver};
use super::error::DataError;
#[cfg(feature = "download")]
use super::idx::{IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use super::spec::{DatasetSpec, FileSpec};

/// Environment variable that, when set to anything but `0` or an empty
/// string, forbids downloads.
pub const OFFLINE_ENV: &str = "STATIC_NN_OFFLINE";
/// Environment variable naming the base of the cache; the data set's folder
/// ([`DatasetSpec::cache_name`]) goes below it. Default: the per-user cache
/// directory from [`dirs::cache_dir`] followed by `static-nn`.
pub const CACHE_ENV: &str = "STATIC_NN_CACHE_DIR";

/// Where [`locate_with`] looks, and whether and how it may download.
///
/// [`LocateOptions::from_env`] gives the usual behaviour; [`Default`] gives
/// options that look nowhere and never download (fill in what you need).
#[derive(Clone)]
pub struct LocateOptions {
    /// An explicit directory, looked at first (e.g. from a `--data DIR` flag).
    pub dir: Option<PathBuf>,
    /// The directory named by the data set's environment variable, looked at second.
    pub env_dir: Option<PathBuf>,
    /// The data set's cache folder, looked at third and where downloads go.
    pub cache_dir: Option<PathBuf>,
    /// Whether missing files may be downloaded into [`cache_dir`](Self::cache_dir).
    pub download: bool,
    /// Base URLs to download from, in order; `None`: [`DatasetSpec::mirrors`].
    pub mirrors: Option<Vec<String>>,
    /// Timeout of each network phase (name resolution, connection, response, each read).
    pub timeout: Duration,
    /// Whether downloads are checked against the data set's checksums
    /// (default `true`). `false` (`--no-verify`) checks only that a download
    /// parses; for mirrors that serve files you made or converted yourself.
    pub verify: bool,
    /// Receives download progress (static-nn prints nothing itself); `None`
    /// downloads silently.
    #[cfg(feature = "download")]
    pub observer: Option<std::sync::Arc<dyn DownloadObserver>>,
}

impl std::fmt::Debug for LocateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("LocateOptions");
        d.field("dir", &self.dir)
            .field("env_dir", &self.env_dir)
            .field("cache_dir", &self.cache_dir)
            .field("download", &self.download)
            .field("mirrors", &self.mirrors)
            .field("timeout", &self.timeout)
            .field("verify", &self.verify);
        #[cfg(feature = "download")]
        d.field("observer", &self.observer.as_ref().map(|_| "…"));
        d.finish()
    }
}

/// The URL of `name` under a mirror's base URL.
pub(crate) fn join_url(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

impl Default for LocateOptions {
    fn default() -> Self {
        LocateOptions {
            dir: None,
            env_dir: None,
            cache_dir: None,
            download: false,
            mirrors: None,
            timeout: Duration::from_secs(30),
            verify: true,
            #[cfg(feature = "download")]
            observer: None,
        }
    }
}

pub(crate) fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether [`OFFLINE_ENV`] forbids downloads.
pub(crate) fn offline_by_env() -> bool {
    env_nonempty(OFFLINE_ENV).is_some_and(|v| v.trim() != "0")
}

impl LocateOptions {
    /// The usual options: `dir`, then the directory in `$`[`DatasetSpec::env_var`],
    /// then the cache folder ([`default_cache_dir`]); downloads allowed unless
    /// [`OFFLINE_ENV`] is set, from the mirrors in `$`[`DatasetSpec::mirrors_env`]
    /// if set (separated by commas or whitespace), else [`DatasetSpec::mirrors`];
    /// no progress observer.
    pub fn from_env(spec: &DatasetSpec, dir: Option<&Path>) -> LocateOptions {
        LocateOptions {
            dir: dir.map(Path::to_path_buf),
            env_dir: env_nonempty(&spec.env_var).map(PathBuf::from),
            cache_dir: default_cache_dir(spec),
            download: !offline_by_env(),
            mirrors: mirrors_from_env(&spec.mirrors_env),
            timeout: Duration::from_secs(30),
            verify: true,
            #[cfg(feature = "download")]
            observer: None,
        }
    }
}

/// The mirror list in the environment variable `var` (base URLs separated
/// by commas or whitespace), if it is set.
pub(crate) fn mirrors_from_env(var: &str) -> Option<Vec<String>> {
    env_nonempty(var).map(|v| {
        v.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// The base of the cache: `$STATIC_NN_CACHE_DIR`, else
/// `<dirs::cache_dir()>/static-nn`; `None` if there is no cache directory.
pub(crate) fn default_cache_base() -> Option<PathBuf> {
    match env_nonempty(CACHE_ENV) {
        Some(b) => Some(PathBuf::from(b)),
        None => Some(dirs::cache_dir()?.join("static-nn")),
    }
}

/// The data set's folder in the per-user cache: `$STATIC_NN_CACHE_DIR/<cache_name>`
/// if that variable is set, else `<dirs::cache_dir()>/static-nn/<cache_name>`
/// (e.g. `~/.cache/static-nn/mnist` on Linux); `None` if there is no cache directory.
pub fn default_cache_dir(spec: &DatasetSpec) -> Option<PathBuf> {
    Some(default_cache_base()?.join(spec.cache_name.as_ref()))
}

/// The path of `file` in `dir`, under its own name (`*.gz`) or uncompressed
/// (the name without `.gz`), whichever exists first.
pub fn find_in_dir(dir: &Path, file: &FileSpec) -> Option<PathBuf> {
    [file.name.as_ref(), file.raw_name()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// The magic number of the file at index `i` of [`DatasetSpec::files`].
#[cfg(feature = "download")]
pub(crate) fn magic_of(i: usize) -> u32 {
    if i.is_multiple_of(2) {
        IDX_IMAGES_MAGIC
    } else {
        IDX_LABELS_MAGIC
    }
}

/// Looks in `dir` for the files at indices `needed`; `Ok` with their paths,
/// or `Err` with a description of what is missing.
fn look_in(spec: &DatasetSpec, dir: &Path, needed: &[usize]) -> Result<Vec<PathBuf>, String> {
    if !dir.is_dir() {
        return Err(if dir.exists() {
            "not a directory".to_string()
        } else {
            "does not exist".to_string()
        });
    }
    let mut found = Vec::with_capacity(needed.len());
    let mut missing = Vec::new();
    for &i in needed {
        match find_in_dir(dir, &spec.files[i]) {
            Some(p) => found.push(p),
            None => missing.push(spec.files[i].name.to_string()),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(format!("missing {}", missing.join(", ")))
    }
}

/// What [`search`] needs to know about one data set besides the options.
pub(crate) struct Wanted<'a> {
    /// The data set's name, e.g. `MNIST`.
    pub dataset: &'a str,
    /// Its directory variable, e.g. `MNIST_DIR`.
    pub env_var: &'a str,
    /// The file names needed (for the error).
    pub files: Vec<String>,
    /// Its built-in mirrors, used unless [`LocateOptions::mirrors`] is set.
    pub mirrors: &'a [std::borrow::Cow<'static, str>],
}

/// What [`search`] found in a directory.
pub(crate) type Probe<'a, T> = &'a dyn Fn(&Path) -> Result<T, String>;

/// Downloads into the cache (given as the `&Path`) from the mirrors:
/// `Ok` with what was fetched, or `Err` with one line per failed attempt.
#[cfg(feature = "download")]
pub(crate) type Fetch<'a, T> =
    &'a dyn Fn(&DownloadConfig, &[String], &Path) -> Result<T, Vec<String>>;

/// The generic search: `probe` each of the explicit directory, the
/// environment's directory and the cache in turn; the first that holds the
/// data wins. If none does, `fetch` into the cache (when allowed). The error
/// lists every place tried.
pub(crate) fn search<T>(
    wanted: &Wanted<'_>,
    opts: &LocateOptions,
    probe: Probe<'_, T>,
    #[cfg(feature = "download")] fetch: Fetch<'_, T>,
) -> Result<T, DataError> {
    let mut tried = Vec::new();
    let env_var = wanted.env_var;
    let places = [
        (
            &opts.dir,
            "explicit directory",
            "explicit directory: none given".to_string(),
        ),
        (&opts.env_dir, "", format!("${env_var}: not set")),
        (
            &opts.cache_dir,
            "cache directory",
            format!("cache directory: none (no per-user cache directory here; set {CACHE_ENV})"),
        ),
    ];
    for (dir, what, none) in places {
        match dir {
            Some(d) => match probe(d) {
                Ok(found) => return Ok(found),
                Err(why) if what.is_empty() => {
                    tried.push(format!("${env_var}={}: {why}", d.display()))
                }
                Err(why) => tried.push(format!("{what} {}: {why}", d.display())),
            },
            None => tried.push(none),
        }
    }

    let unavailable = |tried: Vec<String>| DataError::Unavailable {
        dataset: wanted.dataset.to_string(),
        tried,
        files: wanted.files.clone(),
        env_var: env_var.to_string(),
        cache_dir: opts.cache_dir.clone(),
    };

    #[cfg(not(feature = "download"))]
    {
        let _ = wanted.mirrors;
        tried.push("download: static-nn was built without its `download` feature".to_string());
        Err(unavailable(tried))
    }
    #[cfg(feature = "download")]
    {
        let Some(cache) = &opts.cache_dir else {
            tried.push("download: no cache directory to download into".to_string());
            return Err(unavailable(tried));
        };
        if !opts.download {
            tried.push(if offline_by_env() {
                format!("download: disabled ({OFFLINE_ENV} is set)")
            } else {
                "download: disabled by the caller".to_string()
            });
            return Err(unavailable(tried));
        }
        let mirrors: Vec<String> = match &opts.mirrors {
            Some(m) => m.clone(),
            None => wanted.mirrors.iter().map(|m| m.to_string()).collect(),
        };
        if mirrors.is_empty() {
            tried.push("download: no mirrors configured".to_string());
            return Err(unavailable(tried));
        }
        let cfg = DownloadConfig {
            timeout: opts.timeout,
            verify: opts.verify,
            observer: opts.observer.clone(),
        };
        fetch(&cfg, &mirrors, cache).map_err(|failures| {
            tried.extend(failures.into_iter().map(|f| format!("download {f}")));
            unavailable(tried)
        })
    }
}

/// Finds (or downloads) the files at indices `needed` of `spec.files`.
/// Returns the directory that holds them and their paths, in the order of `needed`.
pub(crate) fn locate_files(
    spec: &DatasetSpec,
    opts: &LocateOptions,
    needed: &[usize],
) -> Result<(PathBuf, Vec<PathBuf>), DataError> {
    let wanted = Wanted {
        dataset: &spec.name,
        env_var: &spec.env_var,
        files: needed
            .iter()
            .map(|&i| spec.files[i].name.to_string())
            .collect(),
        mirrors: &spec.mirrors,
    };
    let probe = |d: &Path| look_in(spec, d, needed).map(|paths| (d.to_path_buf(), paths));
    #[cfg(feature = "download")]
    let fetch = |cfg: &DownloadConfig, mirrors: &[String], cache: &Path| {
        let mut paths = Vec::with_capacity(needed.len());
        for &i in needed {
            let file = &spec.files[i];
            if let Some(p) = find_in_dir(cache, file) {
                paths.push(p);
                continue;
            }
            let mut failures = Vec::new();
            let check = |path: &Path, bytes: &[u8]| check_idx(path, bytes, magic_of(i));
            match download_file(cfg, file, &check, mirrors, cache, &mut failures) {
                Some(p) => paths.push(p),
                None => return Err(failures),
            }
        }
        Ok((cache.to_path_buf(), paths))
    };
    search(
        &wanted,
        opts,
        &probe,
        #[cfg(feature = "download")]
        &fetch,
    )
}

/// The structural check of a downloaded IDX file (when no checksum is
/// checked): it parses, and a label file's labels are in range.
#[cfg(feature = "download")]
fn check_idx(path: &Path, bytes: &[u8], magic: u32) -> Result<(), String> {
    let idx = super::idx::parse_idx(path, bytes, magic).map_err(|e| e.to_string())?;
    if magic == IDX_LABELS_MAGIC {
        super::idx::check_labels(path, &idx.data).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The directory that holds all four files of `spec`, found in this order:
/// `dir`, the directory in `$`[`DatasetSpec::env_var`] (`$MNIST_DIR`), the
/// per-user cache folder ([`default_cache_dir`]), and last a verified download
/// into the cache (unless [`OFFLINE_ENV`] is set).
///
/// If the data is nowhere and cannot be downloaded, the error
/// ([`DataError::Unavailable`]) lists every place tried, each mirror URL with
/// its failure, and how to provide the data.
///
/// ```no_run
/// use static_nn::data::{locate, MNIST};
/// let dir = locate(&MNIST, None)?;
/// println!("MNIST is in {}", dir.display());
/// # Ok::<(), static_nn::data::DataError>(())
/// ```
pub fn locate(spec: &DatasetSpec, dir: Option<&Path>) -> Result<PathBuf, DataError> {
    locate_with(spec, &LocateOptions::from_env(spec, dir))
}

/// [`locate`] with explicit options (no environment variables are read).
///
/// ```
/// use static_nn::data::{locate_with, DataError, LocateOptions, MNIST};
/// // Look nowhere, never download: the error says what was tried.
/// let err = locate_with(&MNIST, &LocateOptions::default()).unwrap_err();
/// assert!(matches!(err, DataError::Unavailable { .. }));
/// assert!(err.to_string().contains("$MNIST_DIR: not set"));
/// ```
pub fn locate_with(spec: &DatasetSpec, opts: &LocateOptions) -> Result<PathBuf, DataError> {
    locate_files(spec, opts, &[0, 1, 2, 3]).map(|(dir, _)| dir)
}

/// Checks every file of `spec` in `dir` against its checksums
/// (see [`verify_file`](super::verify_file)).
pub fn verify_dir(spec: &DatasetSpec, dir: &Path) -> Result<(), DataError> {
    for file in &spec.files {
        let path = find_in_dir(dir, file).ok_or_else(|| DataError::NotFound {
            path: dir.join(file.name.as_ref()),
        })?;
        super::verify::verify_file(&path, file)?;
    }
    Ok(())
}

/// The URLs `spec`'s files would be downloaded from with `opts`, in order
/// (for messages and documentation).
pub fn download_urls(spec: &DatasetSpec, opts: &LocateOptions) -> Vec<String> {
    let mirrors: Vec<String> = match &opts.mirrors {
        Some(m) => m.clone(),
        None => spec.mirrors.iter().map(|m| m.to_string()).collect(),
    };
    spec.files
        .iter()
        .flat_map(|f| mirrors.iter().map(move |m| join_url(m, &f.name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::spec::MNIST;

    #[test]
    fn nothing_anywhere_lists_every_place() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LocateOptions {
            dir: Some(dir.path().join("nope")),
            env_dir: Some(dir.path().to_path_buf()),
            cache_dir: Some(dir.path().join("cache")),
            download: false,
            ..LocateOptions::default()
        };
        let e = locate_with(&MNIST, &opts).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("MNIST data not found"), "{msg}");
        assert!(msg.contains("/nope: does not exist"), "{msg}");
        assert!(msg.contains("$MNIST_DIR="), "{msg}");
        assert!(msg.contains("missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"), "{msg}");
        assert!(msg.contains("cache directory"), "{msg}");
        assert!(msg.contains("download: disabled"), "{msg}");
        assert!(msg.contains("set MNIST_DIR=DIR"), "{msg}");
        assert!(msg.contains("--data DIR"), "{msg}");
        assert!(msg.contains("allow the download"), "{msg}");
    }

    #[test]
    fn order_explicit_env_cache_and_raw_names() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for f in &MNIST.files {
            std::fs::write(b.path().join(f.raw_name()), b"").unwrap();
        }
        // explicit dir lacks a file -> falls through to env dir
        std::fs::write(a.path().join(MNIST.files[0].name.as_ref()), b"").unwrap();
        let opts = LocateOptions {
            dir: Some(a.path().to_path_buf()),
            env_dir: Some(b.path().to_path_buf()),
            ..LocateOptions::default()
        };
        assert_eq!(locate_with(&MNIST, &opts).unwrap(), b.path());
        // but one split may be served from the explicit dir alone
        let (d, p) = locate_files(&MNIST, &opts, &[0]).unwrap();
        assert_eq!(d, a.path());
        assert_eq!(p, vec![a.path().join("train-images-idx3-ubyte.gz")]);
        // uncompressed names are found
        let (_, p) = locate_files(&MNIST, &opts, &[3]).unwrap();
        assert_eq!(p, vec![b.path().join("t10k-labels-idx1-ubyte")]);
    }

    #[test]
    fn urls() {
        let opts = LocateOptions::default();
        let u = download_urls(&MNIST, &opts);
        assert_eq!(
            u[0],
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
        );
        assert_eq!(u.len(), 12);
    }
}
