//! The MNIST family behind [`DataSource`]: any [`DatasetSpec`] loads as an
//! [`ImageDataset`], its files checked against their checksums first.

use std::path::PathBuf;

use super::dataset::IdxDataset;
use super::error::DataError;
use super::locate::locate_files;
use super::source::{DataSource, ImageDataset, LoadOptions};
use super::spec::DatasetSpec;
use super::verify::verify_file;

impl DataSource for DatasetSpec {
    fn name(&self) -> &str {
        &self.name
    }

    /// Finds the four files as [`IdxDataset::load`] does, checks each against
    /// its checksums (unless [`LoadOptions::verify`] is off; a file whose
    /// spec lists none is only parsed), and loads both splits.
    ///
    /// ```no_run
    /// use static_nn::data::{DataSource, LoadOptions, FASHION_MNIST};
    /// let d = FASHION_MNIST.load(&LoadOptions::from_env(None))?;
    /// assert_eq!(d.class_names[9], "Ankle boot");
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    fn load(&self, opts: &LoadOptions) -> Result<ImageDataset, DataError> {
        let lo = opts.locate(&self.env_var, &self.mirrors_env, &self.cache_name);
        let (dir, paths) = locate_files(self, &lo, &[0, 1, 2, 3])?;
        let mut unverified: Vec<PathBuf> = Vec::new();
        for (path, file) in paths.iter().zip(&self.files) {
            if !file.has_checksum() {
                continue;
            }
            if opts.verify {
                verify_file(path, file).map_err(hint_no_verify)?;
            } else {
                unverified.push(path.clone());
            }
        }
        let IdxDataset { train, test } = IdxDataset::from_paths(&paths)?;
        Ok(ImageDataset {
            name: self.name.to_string(),
            train,
            test,
            class_names: self.classes.iter().map(|c| c.to_string()).collect(),
            dir,
            unverified,
            skipped: Vec::new(),
        })
    }
}

/// Adds to a checksum mismatch how to load a file one made oneself.
pub(crate) fn hint_no_verify(e: DataError) -> DataError {
    match e {
        DataError::ChecksumMismatch { file, detail } => DataError::ChecksumMismatch {
            file,
            detail: format!(
                "{detail} (a file you made or converted yourself loads with verification \
                 off: LoadOptions::verify = false, --no-verify)"
            ),
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{encode_idx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
    use crate::data::spec::{FASHION_MNIST, KMNIST, MNIST};

    /// Raw (uncompressed) MNIST-named files of 3 + 2 images of 2×2.
    fn raw_files(dir: &std::path::Path) {
        for (n, stem) in [(3u32, "train"), (2, "t10k")] {
            let px: Vec<u8> = (0..n * 4).map(|i| i as u8).collect();
            let lb: Vec<u8> = (0..n).map(|i| i as u8).collect();
            std::fs::write(
                dir.join(format!("{stem}-images-idx3-ubyte")),
                encode_idx(IDX_IMAGES_MAGIC, &[n, 2, 2], &px),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{stem}-labels-idx1-ubyte")),
                encode_idx(IDX_LABELS_MAGIC, &[n], &lb),
            )
            .unwrap();
        }
    }

    #[test]
    fn own_files_need_no_verify_and_are_listed() {
        let d = tempfile::tempdir().unwrap();
        raw_files(d.path());
        let mut opts = LoadOptions {
            dir: Some(d.path().into()),
            ..LoadOptions::default()
        };
        // MNIST's files are checked by the sha256 of their content: ours fail.
        let e = MNIST.load(&opts).unwrap_err();
        assert!(matches!(e, DataError::ChecksumMismatch { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("train-images-idx3-ubyte: checksum mismatch"),
            "{e}"
        );
        assert!(e.to_string().contains("--no-verify"), "{e}");
        opts.verify = false;
        let m = MNIST.load(&opts).unwrap();
        assert_eq!((m.train.len(), m.test.len()), (3, 2));
        assert_eq!(m.unverified.len(), 4);
        assert_eq!(m.unverified[0], d.path().join("train-images-idx3-ubyte"));
        assert_eq!(m.dir, d.path());
        assert_eq!(m.warnings().len(), 4);
        assert_eq!(
            m.class_names,
            (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
        );
        let f = FASHION_MNIST.load(&opts).unwrap();
        assert_eq!(f.class_names[0], "T-shirt/top");
        assert_eq!(f.class_names[9], "Ankle boot");
        assert_eq!(f.name, "Fashion-MNIST");
        let k = KMNIST.load(&opts).unwrap();
        assert_eq!(
            k.class_names,
            ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
        );
    }
}
