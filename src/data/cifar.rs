//! CIFAR-10, binary version: one `.tar.gz` holding `cifar-10-batches-bin/`
//! with five training batches and one test batch, each a run of records of
//! one label byte followed by 3×32×32 pixels (the R, G and B planes, CHW).

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

#[cfg(feature = "download")]
use super::archive::check_tar_gz;
use super::archive::extract_tar_gz;
use super::dataset::LabelledImages;
use super::error::{io_err, DataError};
use super::idx_source::hint_no_verify;
use super::locate::{search, Wanted};
use super::source::{DataSource, ImageDataset, LoadOptions};
use super::spec::{FileSpec, StrList};
use super::verify::verify_file;

/// Bytes of one image: 3 planes of 32×32.
pub const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label byte, then the image.
pub const CIFAR_RECORD_BYTES: usize = 1 + CIFAR_IMAGE_BYTES;
/// The training batches, in order.
pub const CIFAR10_TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch.
pub const CIFAR10_TEST_BATCH: &str = "test_batch.bin";
/// The file of class names, one a line, that the archive holds too.
const META: &str = "batches.meta.txt";

/// A data set in CIFAR-10's binary format: one archive, mirrors to download
/// it from, and where to look for it locally. [`CIFAR10`] is the real one;
/// tests and mirrors of your own can change any field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CifarSpec {
    /// Human-readable name, e.g. `"CIFAR-10"`.
    pub name: Cow<'static, str>,
    /// Name of the data set's folder in the per-user cache, e.g. `"cifar10"`.
    pub cache_name: Cow<'static, str>,
    /// Environment variable naming a directory that holds the data, e.g. `"CIFAR10_DIR"`.
    pub env_var: Cow<'static, str>,
    /// Environment variable that overrides [`mirrors`](Self::mirrors), e.g.
    /// `"STATIC_NN_CIFAR10_MIRRORS"`.
    pub mirrors_env: Cow<'static, str>,
    /// Base URLs to download the archive from, tried in order.
    pub mirrors: StrList,
    /// The archive, e.g. `cifar-10-binary.tar.gz`, with its published MD5
    /// (in [`FileSpec::md5_gz`]).
    pub archive: FileSpec,
    /// The folder the archive holds, e.g. `"cifar-10-batches-bin"`.
    pub folder: Cow<'static, str>,
    /// Class names, label 0 first, used where the folder has no `batches.meta.txt`.
    pub classes: StrList,
}

/// CIFAR-10 (50,000 + 10,000 colour images of 32×32, 10 classes), binary
/// version, from its authors' site; checked by the archive's published MD5.
pub const CIFAR10: CifarSpec = CifarSpec {
    name: Cow::Borrowed("CIFAR-10"),
    cache_name: Cow::Borrowed("cifar10"),
    env_var: Cow::Borrowed("CIFAR10_DIR"),
    mirrors_env: Cow::Borrowed("STATIC_NN_CIFAR10_MIRRORS"),
    mirrors: Cow::Borrowed(&[Cow::Borrowed("https://www.cs.toronto.edu/~kriz/")]),
    archive: FileSpec {
        name: Cow::Borrowed("cifar-10-binary.tar.gz"),
        sha256_raw: Cow::Borrowed(""),
        md5_gz: Cow::Borrowed(&[Cow::Borrowed("c32a1d4ab5d03f1284b67883e8d87530")]),
    },
    folder: Cow::Borrowed("cifar-10-batches-bin"),
    classes: Cow::Borrowed(&[
        Cow::Borrowed("airplane"),
        Cow::Borrowed("automobile"),
        Cow::Borrowed("bird"),
        Cow::Borrowed("cat"),
        Cow::Borrowed("deer"),
        Cow::Borrowed("dog"),
        Cow::Borrowed("frog"),
        Cow::Borrowed("horse"),
        Cow::Borrowed("ship"),
        Cow::Borrowed("truck"),
    ]),
};

/// What a directory holds.
enum Found {
    /// The batch folder itself.
    Batches(PathBuf),
    /// The archive, still packed.
    Archive(PathBuf),
}

impl CifarSpec {
    /// What `dir` holds: the batches (`dir` itself, or `dir/<folder>`), or
    /// else the archive.
    fn probe(&self, dir: &Path) -> Result<Found, String> {
        if !dir.is_dir() {
            return Err(if dir.exists() {
                "not a directory".to_string()
            } else {
                "does not exist".to_string()
            });
        }
        let holds_batches = |d: &Path| {
            d.join(CIFAR10_TRAIN_BATCHES[0]).is_file() || d.join(CIFAR10_TEST_BATCH).is_file()
        };
        if holds_batches(dir) {
            return Ok(Found::Batches(dir.to_path_buf()));
        }
        let sub = dir.join(self.folder.as_ref());
        if sub.is_dir() {
            return Ok(Found::Batches(sub));
        }
        let archive = dir.join(self.archive.name.as_ref());
        if archive.is_file() {
            return Ok(Found::Archive(archive));
        }
        Err(format!(
            "missing {}, {}/ and {}",
            self.archive.name, self.folder, CIFAR10_TRAIN_BATCHES[0]
        ))
    }

    /// Reads one batch file: `(pixels, labels)`.
    fn read_batch(&self, path: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
        let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
        if bytes.len() % CIFAR_RECORD_BYTES != 0 {
            return Err(DataError::RecordSize {
                path: path.into(),
                len: bytes.len() as u64,
                record: CIFAR_RECORD_BYTES,
                layout: "1 label byte, then 3×32×32 pixel bytes",
            });
        }
        let n = bytes.len() / CIFAR_RECORD_BYTES;
        let mut pixels = Vec::with_capacity(n * CIFAR_IMAGE_BYTES);
        let mut labels = Vec::with_capacity(n);
        for (index, rec) in bytes.chunks_exact(CIFAR_RECORD_BYTES).enumerate() {
            let label = rec[0];
            if label as usize >= self.classes.len().max(1) {
                return Err(DataError::BadLabel {
                    path: path.into(),
                    index,
                    label,
                });
            }
            labels.push(label);
            pixels.extend_from_slice(&rec[1..]);
        }
        Ok((pixels, labels))
    }

    /// Reads the batches in `files` (in parallel, in order) as one split.
    fn read_split(&self, dir: &Path, files: &[&str]) -> Result<LabelledImages, DataError> {
        // Collected in order, then the first error in file order: the same
        // error on every run when several files are bad.
        let parts = files
            .par_iter()
            .map(|f| self.read_batch(&dir.join(f)))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (p, l) in parts {
            pixels.extend_from_slice(&p);
            labels.extend_from_slice(&l);
        }
        LabelledImages::with_channels((3, 32, 32), self.classes.len(), pixels, labels)
    }

    /// The class names: `batches.meta.txt` in `dir` if it lists as many as
    /// [`classes`](Self::classes), else those.
    fn class_names(&self, dir: &Path) -> Vec<String> {
        let from_meta = fs::read_to_string(dir.join(META)).ok().map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        });
        match from_meta {
            Some(names) if names.len() == self.classes.len() => names,
            _ => self.classes.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Checks the archive (unless `verify` is off: then it is listed in
    /// `unverified`) and extracts it beside itself.
    fn unpack(
        &self,
        archive: &Path,
        verify: bool,
        unverified: &mut Vec<PathBuf>,
    ) -> Result<PathBuf, DataError> {
        if verify {
            verify_file(archive, &self.archive).map_err(hint_no_verify)?;
        } else if self.archive.has_checksum() {
            unverified.push(archive.to_path_buf());
        }
        let parent = archive.parent().unwrap_or(Path::new("."));
        extract_tar_gz(archive, parent, &self.folder)
    }
}

impl DataSource for CifarSpec {
    fn name(&self) -> &str {
        &self.name
    }

    /// Finds the data (`--data DIR`, `$CIFAR10_DIR`, the cache, in turn: a
    /// folder holding `cifar-10-batches-bin/`, that folder itself, or a folder
    /// holding the archive), else downloads the archive into the cache;
    /// checks an archive's MD5 and extracts it beside itself; reads the
    /// batches.
    ///
    /// ```no_run
    /// use static_nn::data::{DataSource, LoadOptions, CIFAR10};
    /// let c = CIFAR10.load(&LoadOptions::from_env(None))?;
    /// assert_eq!((c.train.len(), c.test.len()), (50_000, 10_000));
    /// assert_eq!(c.train.image_shape(), (3, 32, 32));
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    fn load(&self, opts: &LoadOptions) -> Result<ImageDataset, DataError> {
        let lo = opts.locate(&self.env_var, &self.mirrors_env, &self.cache_name);
        let wanted = Wanted {
            dataset: &self.name,
            env_var: &self.env_var,
            files: vec![self.archive.name.to_string()],
            mirrors: &self.mirrors,
        };
        let probe = |d: &Path| self.probe(d);
        #[cfg(feature = "download")]
        let fetch = |cfg: &super::download::DownloadConfig, mirrors: &[String], cache: &Path| {
            let folder = self.folder.to_string();
            let check = move |p: &Path, b: &[u8]| check_tar_gz(p, b, &folder);
            let mut failures = Vec::new();
            super::download::download_file(
                cfg,
                &self.archive,
                &check,
                mirrors,
                cache,
                &mut failures,
            )
            .map(Found::Archive)
            .ok_or(failures)
        };
        let found = search(
            &wanted,
            &lo,
            &probe,
            #[cfg(feature = "download")]
            &fetch,
        )?;
        let mut unverified = Vec::new();
        let dir = match found {
            Found::Batches(d) => d,
            Found::Archive(a) => self.unpack(&a, opts.verify, &mut unverified)?,
        };
        let (train, test) = rayon::join(
            || self.read_split(&dir, &CIFAR10_TRAIN_BATCHES),
            || self.read_split(&dir, &[CIFAR10_TEST_BATCH]),
        );
        Ok(ImageDataset {
            name: self.name.to_string(),
            train: train?,
            test: test?,
            class_names: self.class_names(&dir),
            dir,
            unverified,
            skipped: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: [u8; 3]) -> Vec<u8> {
        let mut r = vec![label];
        for v in fill {
            r.extend(std::iter::repeat_n(v, 1024));
        }
        r
    }

    #[test]
    fn batches_read_in_planes_and_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let mut b = record(3, [10, 20, 30]);
        b.extend(record(9, [1, 2, 3]));
        let p = d.path().join("data_batch_1.bin");
        fs::write(&p, &b).unwrap();
        let (px, lb) = CIFAR10.read_batch(&p).unwrap();
        assert_eq!(lb, [3, 9]);
        assert_eq!(
            (px[0], px[1024], px[2048], px[3072 + 2048]),
            (10, 20, 30, 3)
        );

        fs::write(&p, &b[..b.len() - 1]).unwrap();
        let e = CIFAR10.read_batch(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: 6145 bytes is not a whole number of 3073-byte records \
                 (1 label byte, then 3×32×32 pixel bytes)",
                p.display()
            )
        );
        let mut bad = b.clone();
        bad[CIFAR_RECORD_BYTES] = 10;
        fs::write(&p, &bad).unwrap();
        let e = CIFAR10.read_batch(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BadLabel {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn standard_class_names_unless_the_meta_file_says() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(CIFAR10.class_names(d.path())[0], "airplane");
        let names: String = (0..10).map(|i| format!("c{i}\n")).collect();
        fs::write(d.path().join(META), format!("{names}\n")).unwrap();
        assert_eq!(CIFAR10.class_names(d.path())[9], "c9");
        fs::write(d.path().join(META), "one\ntwo\n").unwrap();
        assert_eq!(CIFAR10.class_names(d.path())[9], "truck");
    }
}
