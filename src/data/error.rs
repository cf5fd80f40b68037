//! [`DataError`]: the one error type of the [`data`](crate::data) module.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding, downloading, verifying,
/// parsing or batching a data set.
///
/// Every variant names the file (or URL) concerned and says what is wrong
/// with facts (sizes, counts, checksums), so that its `Display` text alone is
/// enough to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file that should exist does not.
    #[error("{}: file not found", path.display())]
    NotFound {
        /// The path that was opened.
        path: PathBuf,
    },

    /// Any other I/O error while reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A `.gz` file with no content at all.
    #[error("{}: empty file: expected gzip-compressed IDX data", path.display())]
    EmptyFile {
        /// The file concerned.
        path: PathBuf,
    },

    /// A file named `*.gz` whose content is not gzip data.
    #[error(
        "{}: not a gzip file: it starts with bytes [{found}], gzip data starts with [1f 8b]",
        path.display()
    )]
    NotGzip {
        /// The file concerned.
        path: PathBuf,
        /// The first bytes of the file, in hex.
        found: String,
    },

    /// Gzip data that cannot be decompressed (a damaged deflate stream or a
    /// failed CRC check).
    #[error("{}: corrupt gzip data: {source}", path.display())]
    CorruptGzip {
        /// The file concerned.
        path: PathBuf,
        /// What the decompressor reported.
        #[source]
        source: io::Error,
    },

    /// A file shorter than its IDX header says.
    #[error("{}: truncated IDX file: {detail}", path.display())]
    Truncated {
        /// The file concerned.
        path: PathBuf,
        /// Bytes the header (or the header itself) needs.
        expected: u64,
        /// Bytes actually present.
        found: u64,
        /// A sentence with the facts, e.g.
        /// `header says 60000×28×28 = 47040000 data bytes, found 1000`.
        detail: String,
    },

    /// A file longer than its IDX header says.
    #[error(
        "{}: trailing data after the IDX content: header says {layout} = {expected} data bytes, found {found}",
        path.display()
    )]
    TrailingData {
        /// The file concerned.
        path: PathBuf,
        /// The dimensions from the header, e.g. `60000×28×28`.
        layout: String,
        /// Data bytes the header announces.
        expected: u64,
        /// Data bytes actually present.
        found: u64,
    },

    /// The first four bytes are not the IDX magic number that was expected
    /// (which also fixes the element type and the number of dimensions).
    #[error(
        "{}: wrong magic number 0x{found:08x} ({found_meaning}), expected 0x{expected:08x} ({expected_meaning})",
        path.display()
    )]
    BadMagic {
        /// The file concerned.
        path: PathBuf,
        /// The magic number found.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// What the magic number found would mean.
        found_meaning: String,
        /// What the expected magic number means.
        expected_meaning: &'static str,
    },

    /// An IDX header whose dimensions cannot be right (zero or overflowing sizes).
    #[error("{}: invalid IDX header: {detail}", path.display())]
    BadHeader {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// An image file and a label file of one split disagree on the number of samples.
    #[error(
        "count mismatch: {} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images it holds.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels it holds.
        labels: usize,
    },

    /// A label outside `0..=9`.
    #[error("{}: label {label} at index {index} is out of range 0..=9", path.display())]
    BadLabel {
        /// The label file.
        path: PathBuf,
        /// Index of the first bad label.
        index: usize,
        /// Its value.
        label: u8,
    },

    /// A file whose checksums match none of those expected.
    #[error("{file}: checksum mismatch: {detail}")]
    ChecksumMismatch {
        /// The file or URL concerned.
        file: String,
        /// The checksums found and expected.
        detail: String,
    },

    /// The data set is nowhere to be found and could not be downloaded.
    #[error("{}", render_unavailable(dataset, tried, files, env_var, cache_dir))]
    Unavailable {
        /// The data set's name, e.g. `MNIST`.
        dataset: String,
        /// Every place tried, with what went wrong there, in order.
        tried: Vec<String>,
        /// The file names that were needed.
        files: Vec<String>,
        /// The environment variable that names a data directory, e.g. `MNIST_DIR`.
        env_var: String,
        /// The per-user cache directory, if there is one.
        cache_dir: Option<PathBuf>,
    },

    /// A batch's images are not the shape a tensor (a model's input) asks for.
    #[error("image shape mismatch: the batch holds {channels}×{rows}×{cols} images (C×H×W), the tensor wants {want_channels}×{want_rows}×{want_cols}")]
    ShapeMismatch {
        /// Channels of the batch's images.
        channels: usize,
        /// Rows of the batch's images.
        rows: usize,
        /// Columns of the batch's images.
        cols: usize,
        /// Channels the tensor type asks for.
        want_channels: usize,
        /// Rows the tensor type asks for.
        want_rows: usize,
        /// Columns the tensor type asks for.
        want_cols: usize,
    },

    /// A batch whose size is not the const batch size a tensor asks for
    /// (typically the last, partial batch of an epoch).
    #[error("batch size mismatch: the batch holds {found} samples, the tensor wants {expected} (use drop_last, or the runtime-size to_tensors)")]
    BatchSize {
        /// The const batch size asked for.
        expected: usize,
        /// The batch's actual size.
        found: usize,
    },

    /// A loader shard ([`DataLoader::sharded`](crate::data::DataLoader::sharded))
    /// whose rank is not below its world size, or a world of no ranks.
    #[error("bad loader shard: rank {rank} of a world of {world} (ranks are 0..world, world at least 1)")]
    BadShard {
        /// The rank asked for.
        rank: usize,
        /// The world size asked for.
        world: usize,
    },

    /// A file of fixed-size records (a CIFAR-10 batch) whose length is not a
    /// whole number of records.
    #[error(
        "{}: {len} bytes is not a whole number of {record}-byte records ({layout})",
        path.display()
    )]
    RecordSize {
        /// The file concerned.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
        /// The size of one record in bytes.
        record: usize,
        /// What a record holds, e.g. `1 label byte, then 3×32×32 pixels`.
        layout: &'static str,
    },

    /// An archive that cannot be unpacked: truncated, damaged, or without
    /// the folder it should hold.
    #[error("{}: corrupt or truncated archive: {detail}", path.display())]
    CorruptArchive {
        /// The archive.
        path: PathBuf,
        /// What went wrong, e.g. the decompressor's or the tar reader's message.
        detail: String,
    },

    /// An image folder with no usable class folders.
    #[error("{}: no classes: {why}", dir.display())]
    NoClasses {
        /// The split's folder (`DIR/train`).
        dir: PathBuf,
        /// What was found instead.
        why: String,
    },

    /// A class folder with no images in it (or none left after skipping bad files).
    #[error("{}: empty class folder: it holds no image files{}", dir.display(),
        if *skipped > 0 { format!(" that could be read ({skipped} skipped)") } else { String::new() })]
    EmptyClass {
        /// The class folder.
        dir: PathBuf,
        /// How many bad files were skipped in it.
        skipped: usize,
    },

    /// A class folder in the test split with no counterpart in the training split.
    #[error(
        "{}: class {class:?} is not among the training classes ({})",
        dir.display(),
        known.join(", ")
    )]
    UnknownClass {
        /// The test class folder.
        dir: PathBuf,
        /// Its name.
        class: String,
        /// The training split's classes.
        known: Vec<String>,
    },

    /// More classes than byte labels can tell apart.
    #[error("{}: {classes} classes, but labels are bytes: at most 256", dir.display())]
    TooManyClasses {
        /// The split's folder.
        dir: PathBuf,
        /// The number of class folders found.
        classes: usize,
    },

    /// A file in an image folder that is not an image, or cannot be decoded.
    #[error("{}: not a readable image: {why}", path.display())]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        why: String,
    },

    /// A data set name that [`DatasetName`](super::DatasetName) does not know.
    #[error("unknown data set {name:?}: expected one of {}", known.join(", "))]
    UnknownDataset {
        /// The name given.
        name: String,
        /// The names known.
        known: Vec<&'static str>,
    },

    /// A data set that this build of static-nn cannot read: it was built
    /// without the feature that reads it.
    #[error(
        "{dataset}: static-nn was built without its `{feature}` feature, which reads this data set"
    )]
    FeatureDisabled {
        /// The data set.
        dataset: String,
        /// The Cargo feature it needs.
        feature: &'static str,
    },

    /// Options that do not say enough to load a data set (an image folder
    /// without a directory or a target image shape, an unsupported channel
    /// count).
    #[error("cannot load {dataset}: {why}")]
    BadOptions {
        /// The data set.
        dataset: String,
        /// What is missing or wrong.
        why: String,
    },

    /// In-memory data whose parts disagree (e.g. a pixel buffer of the wrong length).
    #[error("inconsistent data: {0}")]
    Inconsistent(String),

    /// The tensor device refused an allocation or copy.
    #[error(transparent)]
    Device(#[from] crate::DeviceError),
}

fn render_unavailable(
    dataset: &str,
    tried: &[String],
    files: &[String],
    env_var: &str,
    cache_dir: &Option<PathBuf>,
) -> String {
    let mut s = format!(
        "{dataset} data not found, and it could not be downloaded. Places tried, in order:\n"
    );
    for t in tried {
        let _ = writeln!(s, "  - {t}");
    }
    let _ = write!(
        s,
        "To provide the data: put the files {} (as the mirrors serve them, or decompressed \
         or unpacked) in a directory DIR \
         and set {env_var}=DIR or pass --data DIR; or allow the download (network access, \
         STATIC_NN_OFFLINE unset), which fills ",
        files.join(", ")
    );
    match cache_dir {
        Some(c) => {
            let _ = write!(s, "the cache directory {}.", c.display());
        }
        None => s.push_str(
            "the per-user cache directory (there is none here: set STATIC_NN_CACHE_DIR).",
        ),
    }
    if tried.iter().any(|t| t.contains("checksum mismatch")) {
        s.push_str(
            "\nA file whose checksum is not the published one is refused; for files you made \
             or converted yourself, turn verification off (the examples' --no-verify).",
        );
    }
    s
}

/// Lower-case hex of some bytes, separated by spaces (for error messages).
#[cfg(feature = "datasets")]
pub(crate) fn hex_bytes(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Maps an `open`/`read` error on `path` to [`DataError::NotFound`] or [`DataError::Io`].
#[cfg(any(feature = "datasets", feature = "pictures"))]
pub(crate) fn io_err(path: impl Into<PathBuf>, source: io::Error) -> DataError {
    let path = path.into();
    if source.kind() == io::ErrorKind::NotFound {
        DataError::NotFound { path }
    } else {
        DataError::Io { path, source }
    }
}
