//! Labelled images in memory, and loading both splits of a data set.

#[cfg(feature = "datasets")]
use std::path::{Path, PathBuf};

use super::error::DataError;
#[cfg(feature = "datasets")]
use super::idx::{read_idx_images, read_idx_labels};
#[cfg(feature = "datasets")]
use super::locate::{locate_files, LocateOptions};
#[cfg(feature = "datasets")]
use super::spec::{DatasetSpec, Split};

/// One split in memory: `u8` pixels, image after image, each image its
/// channels' planes one after the other (CHW, as PyTorch stores a batch), and
/// one label in `0..classes` per image.
///
/// Invariant (checked by [`LabelledImages::new`], [`LabelledImages::with_channels`]
/// and the loaders): `pixels.len() == labels.len() * channels * rows * cols`
/// and every label is below `classes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelledImages {
    /// Channels of each image: 1 for grey (MNIST), 3 for RGB (CIFAR-10).
    pub channels: usize,
    /// Rows of each image (28 for MNIST).
    pub rows: usize,
    /// Columns of each image (28 for MNIST).
    pub cols: usize,
    /// Number of classes: labels lie in `0..classes` (10 for MNIST).
    pub classes: usize,
    /// All pixels, 0 to 255, image after image, plane after plane.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
}

impl LabelledImages {
    /// One-channel images of 10 classes (the MNIST family), checked: the
    /// pixel count, and labels in `0..=9`.
    ///
    /// ```
    /// use static_nn::data::LabelledImages;
    /// let d = LabelledImages::new(2, 2, vec![0, 255, 255, 0, 9, 9, 9, 9], vec![3, 7])?;
    /// assert_eq!(d.len(), 2);
    /// assert_eq!(d.image(1), &[9, 9, 9, 9]);
    /// assert!(LabelledImages::new(2, 2, vec![0; 7], vec![3, 7]).is_err());
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    pub fn new(
        rows: usize,
        cols: usize,
        pixels: Vec<u8>,
        labels: Vec<u8>,
    ) -> Result<LabelledImages, DataError> {
        LabelledImages::with_channels((1, rows, cols), 10, pixels, labels)
    }

    /// Images of any `(channels, rows, cols)` and `classes` classes, checked:
    /// the pixel count, labels below `classes`, and `classes` in `1..=256`
    /// (labels are bytes).
    ///
    /// ```
    /// use static_nn::data::LabelledImages;
    /// // two 2×1 RGB images: R plane, G plane, B plane each
    /// let d = LabelledImages::with_channels((3, 2, 1), 4, (0..12).collect(), vec![3, 0])?;
    /// assert_eq!(d.image(1), &[6, 7, 8, 9, 10, 11]);
    /// assert_eq!(d.label_histogram(), [1, 0, 0, 1]);
    /// assert!(LabelledImages::with_channels((3, 2, 1), 3, (0..12).collect(), vec![3, 0]).is_err());
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    pub fn with_channels(
        (channels, rows, cols): (usize, usize, usize),
        classes: usize,
        pixels: Vec<u8>,
        labels: Vec<u8>,
    ) -> Result<LabelledImages, DataError> {
        let want = labels
            .len()
            .checked_mul(channels)
            .and_then(|x| x.checked_mul(rows))
            .and_then(|x| x.checked_mul(cols));
        if want != Some(pixels.len()) {
            return Err(DataError::Inconsistent(format!(
                "{} labels of {channels}×{rows}×{cols} images need {} pixels, got {}",
                labels.len(),
                want.map_or_else(|| "more than usize::MAX".to_string(), |w| w.to_string()),
                pixels.len()
            )));
        }
        if classes == 0 || classes > 256 {
            return Err(DataError::Inconsistent(format!(
                "{classes} classes: a data set needs 1 to 256 (labels are bytes)"
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
            return Err(DataError::Inconsistent(format!(
                "label {} at index {i} is out of range 0..={}",
                labels[i],
                classes - 1
            )));
        }
        Ok(LabelledImages {
            channels,
            rows,
            cols,
            classes,
            pixels,
            labels,
        })
    }

    #[cfg(feature = "datasets")]
    /// Reads one split from an image file and a label file (each raw IDX or
    /// gzip-compressed) and checks that they hold the same number of samples:
    /// one channel, 10 classes.
    pub fn from_files(images: &Path, labels: &Path) -> Result<LabelledImages, DataError> {
        let (n, rows, cols, pixels) = read_idx_images(images)?;
        let lab = read_idx_labels(labels)?;
        if lab.len() != n {
            return Err(DataError::CountMismatch {
                images_path: images.into(),
                images: n,
                labels_path: labels.into(),
                labels: lab.len(),
            });
        }
        Ok(LabelledImages {
            channels: 1,
            rows,
            cols,
            classes: 10,
            pixels,
            labels: lab,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels * rows * cols`).
    pub fn image_len(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// `(channels, rows, cols)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.rows, self.cols)
    }

    /// The pixels of image `i`, plane after plane, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The label of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// A copy of some of the images, in the given order: a range (`0..1000`)
    /// or any list of indices (`[3, 1, 4]`, `vec.iter().copied()`).
    ///
    /// ```
    /// use static_nn::data::LabelledImages;
    /// let d = LabelledImages::new(1, 1, vec![10, 20, 30], vec![1, 2, 3])?;
    /// assert_eq!(d.subset(1..3).labels, [2, 3]);
    /// assert_eq!(d.subset([2, 0]).pixels, [30, 10]);
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    ///
    /// # Panics
    /// If an index is out of range, like slice indexing.
    pub fn subset<I: IntoIterator<Item = usize>>(&self, indices: I) -> LabelledImages {
        let it = indices.into_iter();
        let (lo, _) = it.size_hint();
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(lo * n);
        let mut labels = Vec::with_capacity(lo);
        for i in it {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        LabelledImages {
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            classes: self.classes,
            pixels,
            labels,
        }
    }

    /// How many images carry each label, `classes` counts.
    pub fn label_histogram(&self) -> Vec<usize> {
        let mut h = vec![0usize; self.classes];
        for &l in &self.labels {
            if let Some(c) = h.get_mut(l as usize) {
                *c += 1;
            }
        }
        h
    }

    /// Mean and standard deviation of all pixels mapped to `[0, 1]`, over
    /// every channel (MNIST train: 0.1307, 0.3081).
    pub fn pixel_mean_std(&self) -> (f64, f64) {
        mean_std(self.pixels.iter().copied())
    }

    /// Mean and standard deviation of each channel's pixels mapped to
    /// `[0, 1]`, the numbers [`Normalize`](super::Normalize) wants
    /// (CIFAR-10 train: R 0.4914, 0.2470; G 0.4822, 0.2435; B 0.4465, 0.2616).
    pub fn channel_mean_std(&self) -> Vec<(f64, f64)> {
        let plane = self.rows * self.cols;
        (0..self.channels)
            .map(|c| {
                mean_std(
                    self.pixels
                        .chunks_exact(self.image_len().max(1))
                        .flat_map(|img| img[c * plane..(c + 1) * plane].iter().copied()),
                )
            })
            .collect()
    }
}

/// Mean and standard deviation of pixel values mapped to `[0, 1]`.
fn mean_std(pixels: impl Iterator<Item = u8>) -> (f64, f64) {
    let mut counts = [0u64; 256];
    let mut n = 0u64;
    for p in pixels {
        counts[p as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let (mut s, mut s2) = (0.0f64, 0.0f64);
    for (v, &c) in counts.iter().enumerate() {
        let x = v as f64 / 255.0;
        s += c as f64 * x;
        s2 += c as f64 * x * x;
    }
    let n = n as f64;
    let mean = s / n;
    (mean, (s2 / n - mean * mean).max(0.0).sqrt())
}

/// Both splits of an MNIST-format (IDX) data set: MNIST, Fashion-MNIST,
/// KMNIST or any other [`DatasetSpec`].
#[cfg(feature = "datasets")]
#[derive(Clone, Debug)]
pub struct IdxDataset {
    /// The training split.
    pub train: LabelledImages,
    /// The test split.
    pub test: LabelledImages,
}

#[cfg(feature = "datasets")]
impl IdxDataset {
    /// Finds the four files (explicit `dir` → `$MNIST_DIR` (the spec's
    /// [`env_var`](DatasetSpec::env_var)) → per-user cache → download into the
    /// cache; see [`locate`](super::locate)) and loads both splits, decoding
    /// them in parallel.
    ///
    /// ```no_run
    /// use static_nn::data::{IdxDataset, MNIST};
    /// let mnist = IdxDataset::load(&MNIST, None)?;
    /// assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
    /// assert_eq!(mnist.train.labels[0], 5);
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    pub fn load(spec: &DatasetSpec, dir: Option<&Path>) -> Result<IdxDataset, DataError> {
        IdxDataset::load_with(spec, &LocateOptions::from_env(spec, dir))
    }

    /// [`IdxDataset::load`] with explicit [`LocateOptions`].
    pub fn load_with(spec: &DatasetSpec, opts: &LocateOptions) -> Result<IdxDataset, DataError> {
        let (_, p) = locate_files(spec, opts, &[0, 1, 2, 3])?;
        IdxDataset::from_paths(&p)
    }

    /// Loads both splits from the paths of the four files (training images,
    /// training labels, test images, test labels), decoding them in parallel.
    pub(crate) fn from_paths(p: &[PathBuf]) -> Result<IdxDataset, DataError> {
        let (train, test) = std::thread::scope(|s| {
            let test = s.spawn(|| LabelledImages::from_files(&p[2], &p[3]));
            let train = LabelledImages::from_files(&p[0], &p[1]);
            // A panic in the decoder thread is a bug; pass it on unchanged.
            let test = test.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            (train, test)
        });
        Ok(IdxDataset {
            train: train?,
            test: test?,
        })
    }

    /// Loads one split only (finding its two files as [`IdxDataset::load`] does).
    ///
    /// ```no_run
    /// use static_nn::data::{IdxDataset, Split, MNIST};
    /// let test = IdxDataset::load_split(&MNIST, None, Split::Test)?;
    /// assert_eq!(test.len(), 10_000);
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    pub fn load_split(
        spec: &DatasetSpec,
        dir: Option<&Path>,
        split: Split,
    ) -> Result<LabelledImages, DataError> {
        IdxDataset::load_split_with(spec, &LocateOptions::from_env(spec, dir), split)
    }

    /// [`IdxDataset::load_split`] with explicit [`LocateOptions`].
    pub fn load_split_with(
        spec: &DatasetSpec,
        opts: &LocateOptions,
        split: Split,
    ) -> Result<LabelledImages, DataError> {
        let (_, p) = locate_files(spec, opts, &DatasetSpec::split_indices(split))?;
        LabelledImages::from_files(&p[0], &p[1])
    }

    /// One split by name.
    pub fn split(&self, split: Split) -> &LabelledImages {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }
}

#[cfg(all(test, feature = "datasets"))]
mod tests {
    use super::*;
    use crate::data::idx::{encode_idx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
    use crate::data::spec::MNIST;
    use std::fs;

    fn write_split(dir: &Path, img: &str, lab: &str, n_img: u32, n_lab: u32) {
        let px: Vec<u8> = (0..n_img * 4).map(|i| i as u8).collect();
        fs::write(
            dir.join(img),
            encode_idx(IDX_IMAGES_MAGIC, &[n_img, 2, 2], &px),
        )
        .unwrap();
        let lb: Vec<u8> = (0..n_lab).map(|i| (i % 10) as u8).collect();
        fs::write(dir.join(lab), encode_idx(IDX_LABELS_MAGIC, &[n_lab], &lb)).unwrap();
    }

    #[test]
    fn load_from_explicit_dir_raw_files() {
        let d = tempfile::tempdir().unwrap();
        write_split(
            d.path(),
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            12,
            12,
        );
        write_split(
            d.path(),
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
            3,
            3,
        );
        let opts = LocateOptions {
            dir: Some(d.path().into()),
            ..LocateOptions::default()
        };
        let m = IdxDataset::load_with(&MNIST, &opts).unwrap();
        assert_eq!((m.train.len(), m.test.len()), (12, 3));
        assert_eq!(m.train.label_histogram(), [2, 2, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(m.train.image(1), &[4, 5, 6, 7]);
        let t = IdxDataset::load_split_with(&MNIST, &opts, Split::Test).unwrap();
        assert_eq!(t, m.test);
        assert_eq!(m.split(Split::Test), &m.test);
    }

    #[test]
    fn count_mismatch() {
        let d = tempfile::tempdir().unwrap();
        write_split(d.path(), "i", "l", 5, 4);
        let e = LabelledImages::from_files(&d.path().join("i"), &d.path().join("l")).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::CountMismatch {
                    images: 5,
                    labels: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("/i holds 5 images but "), "{msg}");
        assert!(msg.ends_with("/l holds 4 labels"), "{msg}");
    }

    #[test]
    fn missing_label_file_in_explicit_dir() {
        let d = tempfile::tempdir().unwrap();
        write_split(d.path(), "i", "l", 5, 5);
        let e =
            LabelledImages::from_files(&d.path().join("i"), &d.path().join("nope")).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e:?}");
    }

    #[test]
    fn subset_histogram_and_stats() {
        let d = LabelledImages::new(1, 2, vec![0, 255, 255, 255, 0, 0], vec![0, 1, 1]).unwrap();
        assert_eq!(d.label_histogram(), [1, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
        let s = d.subset([2, 1]);
        assert_eq!(s.pixels, [0, 0, 255, 255]);
        assert_eq!(s.labels, [1, 1]);
        let (m, sd) = d.pixel_mean_std();
        assert!((m - 0.5).abs() < 1e-12 && (sd - 0.5).abs() < 1e-12);
        assert!(LabelledImages::new(1, 1, vec![0], vec![10]).is_err());
    }
}
