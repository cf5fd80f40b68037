//! Data set descriptors: which files make up an MNIST-format data set, where
//! to download them and how to check them.

use std::borrow::Cow;

/// A list of strings that is either `'static` (for the built-in constants)
/// or built at run time.
pub type StrList = Cow<'static, [Cow<'static, str>]>;

/// One file of a data set.
///
/// The built-in descriptors are constants; a descriptor for another data set
/// in the same format can be built at run time with [`FileSpec::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// File name as the mirrors serve it, e.g. `"train-images-idx3-ubyte.gz"`.
    /// The same name without `.gz` (an uncompressed IDX file) is accepted
    /// on disk too.
    pub name: Cow<'static, str>,
    /// Lower-case hex SHA-256 of the decompressed IDX content, or `""` if unknown.
    /// This is the robust check: it does not depend on how the file was compressed.
    pub sha256_raw: Cow<'static, str>,
    /// Lower-case hex MD5s of the `.gz` file as served by the mirrors (any one
    /// matching is enough); may be empty.
    pub md5_gz: StrList,
}

impl FileSpec {
    /// A file descriptor built at run time.
    ///
    /// ```
    /// use static_nn::data::FileSpec;
    /// let f = FileSpec::new("train-labels-idx1-ubyte.gz", "", vec!["d53e105ee54ea40749a09fcbcd1e9432".into()]);
    /// assert_eq!(f.raw_name(), "train-labels-idx1-ubyte");
    /// ```
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        sha256_raw: impl Into<Cow<'static, str>>,
        md5_gz: Vec<String>,
    ) -> FileSpec {
        FileSpec {
            name: name.into(),
            sha256_raw: sha256_raw.into(),
            md5_gz: Cow::Owned(md5_gz.into_iter().map(Cow::Owned).collect()),
        }
    }

    /// The file name without a trailing `.gz`: the name of the uncompressed file.
    pub fn raw_name(&self) -> &str {
        self.name.strip_suffix(".gz").unwrap_or(&self.name)
    }

    /// Whether any checksum is known for this file.
    pub fn has_checksum(&self) -> bool {
        !self.sha256_raw.is_empty() || !self.md5_gz.is_empty()
    }
}

/// A data set in the MNIST (IDX) format: four files, mirrors to download them
/// from, and where to look for them locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Human-readable name, e.g. `"MNIST"`.
    pub name: Cow<'static, str>,
    /// Name of the data set's folder in the per-user cache, e.g. `"mnist"`.
    pub cache_name: Cow<'static, str>,
    /// Environment variable naming a directory that holds the files, e.g. `"MNIST_DIR"`.
    pub env_var: Cow<'static, str>,
    /// Environment variable that overrides [`mirrors`](Self::mirrors) (a list
    /// of base URLs separated by commas or whitespace), e.g. `"STATIC_NN_MNIST_MIRRORS"`.
    pub mirrors_env: Cow<'static, str>,
    /// Base URLs to download from, tried in order; a file's URL is the base
    /// URL followed by its [`FileSpec::name`].
    pub mirrors: StrList,
    /// Training images, training labels, test images, test labels.
    pub files: [FileSpec; 4],
    /// Class names, label 0 to label 9.
    pub classes: StrList,
}

/// Which half of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split (60,000 images for MNIST).
    Train,
    /// The test split (10,000 images for MNIST).
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DatasetSpec {
    /// The image file and the label file of one split.
    pub fn split_files(&self, split: Split) -> (&FileSpec, &FileSpec) {
        match split {
            Split::Train => (&self.files[0], &self.files[1]),
            Split::Test => (&self.files[2], &self.files[3]),
        }
    }

    /// Indices into [`files`](Self::files) of one split's image and label files.
    pub(crate) fn split_indices(split: Split) -> [usize; 2] {
        match split {
            Split::Train => [0, 1],
            Split::Test => [2, 3],
        }
    }

    /// A descriptor built at run time for another data set in the same format.
    /// The environment variables are derived from `cache_name`
    /// (`foo` → `FOO_DIR` and `STATIC_NN_FOO_MIRRORS`), and the classes are `"0"`..`"9"`.
    ///
    /// ```
    /// use static_nn::data::{DatasetSpec, FileSpec};
    /// let f = |n: &str| FileSpec::new(n.to_string(), "", vec![]);
    /// let spec = DatasetSpec::new(
    ///     "Tiny", "tiny", vec!["http://127.0.0.1:8000/".into()],
    ///     [f("a-images.gz"), f("a-labels.gz"), f("b-images.gz"), f("b-labels.gz")],
    /// );
    /// assert_eq!(spec.env_var, "TINY_DIR");
    /// ```
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        cache_name: impl Into<Cow<'static, str>>,
        mirrors: Vec<String>,
        files: [FileSpec; 4],
    ) -> DatasetSpec {
        let cache_name = cache_name.into();
        let upper: String = cache_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        DatasetSpec {
            name: name.into(),
            env_var: Cow::Owned(format!("{upper}_DIR")),
            mirrors_env: Cow::Owned(format!("STATIC_NN_{upper}_MIRRORS")),
            cache_name,
            mirrors: Cow::Owned(mirrors.into_iter().map(Cow::Owned).collect()),
            files,
            classes: Cow::Owned((0..10).map(|i| Cow::Owned(i.to_string())).collect()),
        }
    }
}

const fn file(
    name: &'static str,
    sha256_raw: &'static str,
    md5_gz: &'static [Cow<'static, str>],
) -> FileSpec {
    FileSpec {
        name: Cow::Borrowed(name),
        sha256_raw: Cow::Borrowed(sha256_raw),
        md5_gz: Cow::Borrowed(md5_gz),
    }
}

/// The MNIST handwritten digits (60,000 + 10,000 images, 28×28).
///
/// Mirrors: the PyTorch S3 mirror, the Google CVDF mirror, then the original
/// LeCun host (which now answers 403). Files are checked by the mirrors' MD5
/// of the `.gz` or by the SHA-256 of the decompressed content.
pub const MNIST: DatasetSpec = DatasetSpec {
    name: Cow::Borrowed("MNIST"),
    cache_name: Cow::Borrowed("mnist"),
    env_var: Cow::Borrowed("MNIST_DIR"),
    mirrors_env: Cow::Borrowed("STATIC_NN_MNIST_MIRRORS"),
    mirrors: Cow::Borrowed(&[
        Cow::Borrowed("https://ossci-datasets.s3.amazonaws.com/mnist/"),
        Cow::Borrowed("https://storage.googleapis.com/cvdf-datasets/mnist/"),
        Cow::Borrowed("http://yann.lecun.com/exdb/mnist/"),
    ]),
    files: [
        file(
            "train-images-idx3-ubyte.gz",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            &[Cow::Borrowed("f68b3c2dcbeaaa9fbdd348bbdeb94873")],
        ),
        file(
            "train-labels-idx1-ubyte.gz",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            &[Cow::Borrowed("d53e105ee54ea40749a09fcbcd1e9432")],
        ),
        file(
            "t10k-images-idx3-ubyte.gz",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            &[Cow::Borrowed("9fb629c4189551a2d022fa330f9573f3")],
        ),
        file(
            "t10k-labels-idx1-ubyte.gz",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            &[Cow::Borrowed("ec29112dd5afa0611ce80d1b7f02629c")],
        ),
    ],
    classes: Cow::Borrowed(&[
        Cow::Borrowed("0"),
        Cow::Borrowed("1"),
        Cow::Borrowed("2"),
        Cow::Borrowed("3"),
        Cow::Borrowed("4"),
        Cow::Borrowed("5"),
        Cow::Borrowed("6"),
        Cow::Borrowed("7"),
        Cow::Borrowed("8"),
        Cow::Borrowed("9"),
    ]),
};

/// Zalando's Fashion-MNIST (same sizes and format as MNIST; clothing classes).
/// Checked by the MD5s of the `.gz` files that torchvision lists.
pub const FASHION_MNIST: DatasetSpec = DatasetSpec {
    name: Cow::Borrowed("Fashion-MNIST"),
    cache_name: Cow::Borrowed("fashion-mnist"),
    env_var: Cow::Borrowed("FASHION_MNIST_DIR"),
    mirrors_env: Cow::Borrowed("STATIC_NN_FASHION_MNIST_MIRRORS"),
    mirrors: Cow::Borrowed(&[
        Cow::Borrowed(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        Cow::Borrowed("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    ]),
    files: [
        file(
            "train-images-idx3-ubyte.gz",
            "",
            &[Cow::Borrowed("8d4fb7e6c68d591d4c3dfef9ec88bf0d")],
        ),
        file(
            "train-labels-idx1-ubyte.gz",
            "",
            &[Cow::Borrowed("25c81989df183df01b3e8a0aad5dffbe")],
        ),
        file(
            "t10k-images-idx3-ubyte.gz",
            "",
            &[Cow::Borrowed("bef4ecab320f06d8554ea6380940ec79")],
        ),
        file(
            "t10k-labels-idx1-ubyte.gz",
            "",
            &[Cow::Borrowed("bb300cfdad3c16e7a12a480ee83cd310")],
        ),
    ],
    classes: Cow::Borrowed(&[
        Cow::Borrowed("T-shirt/top"),
        Cow::Borrowed("Trouser"),
        Cow::Borrowed("Pullover"),
        Cow::Borrowed("Dress"),
        Cow::Borrowed("Coat"),
        Cow::Borrowed("Sandal"),
        Cow::Borrowed("Shirt"),
        Cow::Borrowed("Sneaker"),
        Cow::Borrowed("Bag"),
        Cow::Borrowed("Ankle boot"),
    ]),
};

/// Kuzushiji-MNIST (cursive Japanese characters; same sizes and format as MNIST).
/// Checked by the MD5s of the `.gz` files that torchvision lists.
pub const KMNIST: DatasetSpec = DatasetSpec {
    name: Cow::Borrowed("KMNIST"),
    cache_name: Cow::Borrowed("kmnist"),
    env_var: Cow::Borrowed("KMNIST_DIR"),
    mirrors_env: Cow::Borrowed("STATIC_NN_KMNIST_MIRRORS"),
    mirrors: Cow::Borrowed(&[
        Cow::Borrowed("https://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
        Cow::Borrowed("http://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
    ]),
    files: [
        file(
            "train-images-idx3-ubyte.gz",
            "",
            &[Cow::Borrowed("bdb82020997e1d708af4cf47b453dcf7")],
        ),
        file(
            "train-labels-idx1-ubyte.gz",
            "",
            &[Cow::Borrowed("e144d726b3acfaa3e44228e80efcd344")],
        ),
        file(
            "t10k-images-idx3-ubyte.gz",
            "",
            &[Cow::Borrowed("5c965bf0a639b31b8f53240b1b52f4d7")],
        ),
        file(
            "t10k-labels-idx1-ubyte.gz",
            "",
            &[Cow::Borrowed("7320c461ea6c1c855c0b718fb2a4b134")],
        ),
    ],
    classes: Cow::Borrowed(&[
        Cow::Borrowed("o"),
        Cow::Borrowed("ki"),
        Cow::Borrowed("su"),
        Cow::Borrowed("tsu"),
        Cow::Borrowed("na"),
        Cow::Borrowed("ha"),
        Cow::Borrowed("ma"),
        Cow::Borrowed("ya"),
        Cow::Borrowed("re"),
        Cow::Borrowed("wo"),
    ]),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_specs_are_consistent() {
        for spec in [MNIST, FASHION_MNIST, KMNIST] {
            assert_eq!(spec.classes.len(), 10, "{}", spec.name);
            assert!(!spec.mirrors.is_empty());
            for f in &spec.files {
                assert!(f.has_checksum(), "{} {}", spec.name, f.name);
                assert!(f.name.ends_with(".gz"));
                for m in f.md5_gz.iter() {
                    assert_eq!(m.len(), 32);
                    assert!(m
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
                }
                assert!(f.sha256_raw.is_empty() || f.sha256_raw.len() == 64);
            }
            for m in spec.mirrors.iter() {
                assert!(m.ends_with('/'), "{m}");
            }
        }
        assert_eq!(
            MNIST.split_files(Split::Test).1.name,
            "t10k-labels-idx1-ubyte.gz"
        );
    }

    #[test]
    fn runtime_spec_derives_env_names() {
        let f = |n: &str| FileSpec::new(n.to_string(), "", vec![]);
        let s = DatasetSpec::new("X", "my-set", vec![], [f("a"), f("b"), f("c"), f("d")]);
        assert_eq!(s.env_var, "MY_SET_DIR");
        assert_eq!(s.mirrors_env, "STATIC_NN_MY_SET_MIRRORS");
        assert_eq!(s.classes[9], "9");
    }
}
