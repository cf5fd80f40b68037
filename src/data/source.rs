//! One trait for every data set: [`DataSource`] loads both splits of a data
//! set, with its class names, into an [`ImageDataset`], as [`LoadOptions`] say.
//! [`DatasetName`] picks one by name, for command lines.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::dataset::LabelledImages;
use super::error::DataError;

/// Both splits of a data set in memory, with its class names and what the
/// caller may want to warn about (static-nn itself never prints).
#[derive(Clone, Debug)]
pub struct ImageDataset {
    /// The data set's name, e.g. `"MNIST"`, or the image folder's name.
    pub name: String,
    /// The training split.
    pub train: LabelledImages,
    /// The test split.
    pub test: LabelledImages,
    /// One name per class, label 0 first.
    pub class_names: Vec<String>,
    /// The directory the data was read from.
    pub dir: PathBuf,
    /// Files that have published checksums but were loaded without checking
    /// them, because [`LoadOptions::verify`] was off (`--no-verify`).
    pub unverified: Vec<PathBuf>,
    /// Files skipped because they could not be read as images
    /// ([`LoadOptions::skip_bad`]), in order.
    pub skipped: Vec<SkippedFile>,
}

/// A file that [`LoadOptions::skip_bad`] skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it (the decoder's message).
    pub why: String,
}

impl ImageDataset {
    /// One sentence per thing the caller should warn about: each unverified
    /// file, each skipped file. Empty when all is well.
    ///
    /// ```
    /// use static_nn::data::{ImageDataset, LabelledImages};
    /// let empty = LabelledImages::new(1, 1, vec![], vec![])?;
    /// let d = ImageDataset {
    ///     name: "x".into(), train: empty.clone(), test: empty, class_names: vec![],
    ///     dir: "d".into(), unverified: vec!["d/a.gz".into()], skipped: vec![],
    /// };
    /// assert_eq!(d.warnings(), ["d/a.gz: checksum not checked (verification is off)"]);
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    pub fn warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .unverified
            .iter()
            .map(|p| {
                format!(
                    "{}: checksum not checked (verification is off)",
                    p.display()
                )
            })
            .collect();
        w.extend(
            self.skipped
                .iter()
                .map(|s| format!("{}: skipped: {}", s.path.display(), s.why)),
        );
        w
    }
}

/// How a [`DataSource`] finds and loads its data; the same options serve
/// every data set.
///
/// [`LoadOptions::from_env`] gives the usual behaviour (the explicit
/// directory, the data set's environment variable, the per-user cache, then
/// a verified download); [`Default`] looks only in [`dir`](Self::dir), never
/// downloads and reads no environment variable (fill in what you need).
#[derive(Clone)]
pub struct LoadOptions {
    /// An explicit directory, looked at first (`--data DIR`); the only place
    /// an image folder is read from.
    pub dir: Option<PathBuf>,
    /// Whether to read the data set's environment variables: its directory
    /// (`$MNIST_DIR`, `$CIFAR10_DIR`, …), looked at second, and its mirror
    /// list (`$STATIC_NN_MNIST_MIRRORS`, …) when [`mirrors`](Self::mirrors) is `None`.
    pub read_env: bool,
    /// The base of the cache: each data set's folder goes below it
    /// (`<base>/mnist`, `<base>/cifar10`), looked at third and where downloads go.
    pub cache_base: Option<PathBuf>,
    /// Whether missing files may be downloaded into the cache.
    pub download: bool,
    /// Base URLs to download from, in order, for whichever data set is
    /// loaded; `None`: the environment's list (see [`read_env`](Self::read_env)),
    /// else the data set's own.
    pub mirrors: Option<Vec<String>>,
    /// Timeout of each network phase (name resolution, connection, response, each read).
    pub timeout: Duration,
    /// Whether files are checked against the data set's published checksums
    /// (default `true`). `false` (`--no-verify`) is for files you made or
    /// converted yourself; the files it let through are listed in
    /// [`ImageDataset::unverified`].
    pub verify: bool,
    /// Image folders: the `(channels, height, width)` every image is converted
    /// and resized to (channels 1: luma, 3: RGB). Other data sets have their
    /// own fixed shape and ignore this.
    pub image: Option<(usize, usize, usize)>,
    /// Image folders: skip files that cannot be read as images (listing them
    /// in [`ImageDataset::skipped`]) instead of failing on the first.
    pub skip_bad: bool,
    /// Receives download progress; `None` downloads silently.
    #[cfg(feature = "download")]
    pub observer: Option<std::sync::Arc<dyn super::DownloadObserver>>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("LoadOptions");
        d.field("dir", &self.dir)
            .field("read_env", &self.read_env)
            .field("cache_base", &self.cache_base)
            .field("download", &self.download)
            .field("mirrors", &self.mirrors)
            .field("timeout", &self.timeout)
            .field("verify", &self.verify)
            .field("image", &self.image)
            .field("skip_bad", &self.skip_bad);
        #[cfg(feature = "download")]
        d.field("observer", &self.observer.as_ref().map(|_| "…"));
        d.finish()
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dir: None,
            read_env: false,
            cache_base: None,
            download: false,
            mirrors: None,
            timeout: Duration::from_secs(30),
            verify: true,
            image: None,
            skip_bad: false,
            #[cfg(feature = "download")]
            observer: None,
        }
    }
}

impl LoadOptions {
    /// The usual options: `dir`, then the data set's environment variable,
    /// then the per-user cache (`$STATIC_NN_CACHE_DIR`, else e.g.
    /// `~/.cache/static-nn`); downloads allowed unless `$STATIC_NN_OFFLINE`
    /// is set; checksums verified.
    pub fn from_env(dir: Option<&Path>) -> LoadOptions {
        LoadOptions {
            dir: dir.map(Path::to_path_buf),
            read_env: true,
            #[cfg(feature = "datasets")]
            cache_base: super::locate::default_cache_base(),
            #[cfg(feature = "datasets")]
            download: !super::locate::offline_by_env(),
            ..LoadOptions::default()
        }
    }

    /// The [`LocateOptions`](super::LocateOptions) for one data set, given
    /// its directory variable, mirror variable and cache folder name.
    #[cfg(feature = "datasets")]
    pub(crate) fn locate(
        &self,
        env_var: &str,
        mirrors_env: &str,
        cache_name: &str,
    ) -> super::LocateOptions {
        use super::locate::{env_nonempty, mirrors_from_env};
        super::LocateOptions {
            dir: self.dir.clone(),
            env_dir: if self.read_env {
                env_nonempty(env_var).map(PathBuf::from)
            } else {
                None
            },
            cache_dir: self.cache_base.as_ref().map(|b| b.join(cache_name)),
            download: self.download,
            mirrors: self.mirrors.clone().or_else(|| {
                if self.read_env {
                    mirrors_from_env(mirrors_env)
                } else {
                    None
                }
            }),
            timeout: self.timeout,
            verify: self.verify,
            #[cfg(feature = "download")]
            observer: self.observer.clone(),
        }
    }
}

/// A data set that can be loaded: the MNIST family ([`DatasetSpec`](super::DatasetSpec):
/// [`MNIST`](super::MNIST), [`FASHION_MNIST`](super::FASHION_MNIST),
/// [`KMNIST`](super::KMNIST)), CIFAR-10 ([`CifarSpec`](super::CifarSpec):
/// [`CIFAR10`](super::CIFAR10)) and image folders
/// ([`ImageFolder`](super::ImageFolder)).
///
/// ```no_run
/// use static_nn::data::{DataSource, DatasetName, LoadOptions};
/// let source = "cifar10".parse::<DatasetName>()?.source()?;
/// let data = source.load(&LoadOptions::from_env(None))?;
/// for w in data.warnings() {
///     eprintln!("warning: {w}");
/// }
/// assert_eq!(data.class_names[0], "airplane");
/// # Ok::<(), static_nn::data::DataError>(())
/// ```
pub trait DataSource: Send + Sync {
    /// The data set's name, e.g. `"MNIST"`.
    fn name(&self) -> &str;

    /// Finds (or downloads) and loads both splits.
    fn load(&self, opts: &LoadOptions) -> Result<ImageDataset, DataError>;
}

/// The data sets by name, for command lines (`--dataset NAME`): `mnist`,
/// `fashion-mnist`, `kmnist`, `cifar10`, `folder`.
///
/// ```
/// use static_nn::data::DatasetName;
/// let n: DatasetName = "fashion-mnist".parse()?;
/// assert_eq!(n, DatasetName::FashionMnist);
/// assert_eq!(n.to_string(), "fashion-mnist");
/// assert!("cifar100".parse::<DatasetName>().is_err());
/// # Ok::<(), static_nn::data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// MNIST's handwritten digits (`mnist`).
    Mnist,
    /// Zalando's Fashion-MNIST (`fashion-mnist`).
    FashionMnist,
    /// Kuzushiji-MNIST (`kmnist`).
    Kmnist,
    /// CIFAR-10, binary version (`cifar10`).
    Cifar10,
    /// An image folder in torchvision's `ImageFolder` layout (`folder`).
    Folder,
}

impl DatasetName {
    /// Every data set, in the order of the names.
    pub const ALL: [DatasetName; 5] = [
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Kmnist,
        DatasetName::Cifar10,
        DatasetName::Folder,
    ];

    /// The command-line name: `mnist`, `fashion-mnist`, `kmnist`, `cifar10` or `folder`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Kmnist => "kmnist",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Folder => "folder",
        }
    }

    /// The data set's loader, or [`DataError::FeatureDisabled`] if this build
    /// cannot read it (the MNIST family and CIFAR-10 need the `datasets`
    /// feature, image folders `pictures`).
    pub fn source(self) -> Result<Box<dyn DataSource>, DataError> {
        #[cfg(not(all(feature = "datasets", feature = "pictures")))]
        let disabled = |feature| DataError::FeatureDisabled {
            dataset: self.as_str().to_string(),
            feature,
        };
        match self {
            #[cfg(feature = "datasets")]
            DatasetName::Mnist => Ok(Box::new(super::MNIST)),
            #[cfg(feature = "datasets")]
            DatasetName::FashionMnist => Ok(Box::new(super::FASHION_MNIST)),
            #[cfg(feature = "datasets")]
            DatasetName::Kmnist => Ok(Box::new(super::KMNIST)),
            #[cfg(feature = "datasets")]
            DatasetName::Cifar10 => Ok(Box::new(super::CIFAR10)),
            #[cfg(not(feature = "datasets"))]
            DatasetName::Mnist
            | DatasetName::FashionMnist
            | DatasetName::Kmnist
            | DatasetName::Cifar10 => Err(disabled("datasets")),
            #[cfg(feature = "pictures")]
            DatasetName::Folder => Ok(Box::new(super::ImageFolder)),
            #[cfg(not(feature = "pictures"))]
            DatasetName::Folder => Err(disabled("pictures")),
        }
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = DataError;

    /// Parses a command-line name, ignoring ASCII case (`fashion_mnist` and
    /// `cifar-10` are accepted too).
    fn from_str(s: &str) -> Result<DatasetName, DataError> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        let key = if key == "cifar-10" { "cifar10" } else { &key };
        DatasetName::ALL
            .into_iter()
            .find(|n| n.as_str() == key)
            .ok_or_else(|| DataError::UnknownDataset {
                name: s.to_string(),
                known: DatasetName::ALL.iter().map(|n| n.as_str()).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in DatasetName::ALL {
            assert_eq!(n.as_str().parse::<DatasetName>().unwrap(), n);
            assert_eq!(n.to_string().parse::<DatasetName>().unwrap(), n);
        }
        assert_eq!(
            "CIFAR-10".parse::<DatasetName>().unwrap(),
            DatasetName::Cifar10
        );
        assert_eq!(
            "fashion_mnist".parse::<DatasetName>().unwrap(),
            DatasetName::FashionMnist
        );
        let e = "svhn".parse::<DatasetName>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown data set \"svhn\": expected one of mnist, fashion-mnist, kmnist, cifar10, folder"
        );
    }

    #[cfg(all(feature = "datasets", feature = "pictures"))]
    #[test]
    fn sources_have_names() {
        let names: Vec<String> = DatasetName::ALL
            .iter()
            .map(|n| n.source().unwrap().name().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "MNIST",
                "Fashion-MNIST",
                "KMNIST",
                "CIFAR-10",
                "image folder"
            ]
        );
    }

    #[test]
    fn default_options_verify_and_look_nowhere() {
        let o = LoadOptions::default();
        assert!(o.verify && !o.download && !o.read_env && o.dir.is_none());
        assert!(o.cache_base.is_none() && !o.skip_bad && o.image.is_none());
    }
}
