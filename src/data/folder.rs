//! Image folders in torchvision's `ImageFolder` layout: `DIR/train/<class>/*`
//! and `DIR/test/<class>/*`, PNG or JPEG, each image converted to the
//! requested channels and resized to the requested size.

use std::fs;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use super::dataset::LabelledImages;
use super::error::{io_err, DataError};
use super::source::{DataSource, ImageDataset, LoadOptions, SkippedFile};

/// An image folder: `DIR/train/<class>/<image>` and `DIR/test/<class>/<image>`
/// (torchvision's `ImageFolder` convention), read from [`LoadOptions::dir`].
///
/// - Classes are the training split's folder names, sorted (label 0 first);
///   a test folder must name one of them. Hidden entries (`.name`) are ignored.
/// - Images are every other file of a class folder, in sorted order, decoded
///   by their content (PNG or JPEG), converted to [`LoadOptions::image`]'s
///   channels (1: luma; 3: RGB; alpha dropped) and resized to its height and
///   width (bilinear, `Triangle`), in parallel, in a fixed order.
/// - A file that is not a readable image is [`DataError::BadImage`], or with
///   [`LoadOptions::skip_bad`] skipped and listed in [`ImageDataset::skipped`].
///
/// ```no_run
/// use static_nn::data::{DataSource, ImageFolder, LoadOptions};
/// let opts = LoadOptions {
///     dir: Some("photos".into()),
///     image: Some((3, 64, 64)),
///     skip_bad: true,
///     ..LoadOptions::default()
/// };
/// let d = ImageFolder.load(&opts)?;
/// println!("{} classes: {:?}", d.class_names.len(), d.class_names);
/// # Ok::<(), static_nn::data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageFolder;

const NAME: &str = "image folder";

/// The visible entries of `dir` whose file type passes `keep`, sorted by name.
fn entries(dir: &Path, keep: impl Fn(&fs::FileType) -> bool) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        // Follows symbolic links, as a user who links images in expects.
        let ty = fs::metadata(e.path()).map_err(|err| io_err(e.path(), err))?;
        if !hidden && keep(&ty.file_type()) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The class folders of one split, sorted, with their names.
fn class_dirs(split: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    if !split.is_dir() {
        return Err(DataError::NotFound { path: split.into() });
    }
    let dirs = entries(split, fs::FileType::is_dir)?;
    if dirs.is_empty() {
        return Err(DataError::NoClasses {
            dir: split.into(),
            why: "it holds no class folders (expected <class>/<image> below it)".into(),
        });
    }
    if dirs.len() > 256 {
        return Err(DataError::TooManyClasses {
            dir: split.into(),
            classes: dirs.len(),
        });
    }
    Ok(dirs
        .into_iter()
        .map(|d| {
            let name = d
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            (name, d)
        })
        .collect())
}

/// Decodes one file into `c×h×w` planes.
fn decode(path: &Path, (c, h, w): (usize, usize, usize)) -> Result<Vec<u8>, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let img = image::load_from_memory(&bytes).map_err(|e| e.to_string())?;
    let (w32, h32) = (w as u32, h as u32);
    let plane = h * w;
    match c {
        1 => {
            let mut g = img.to_luma8();
            if g.dimensions() != (w32, h32) {
                g = image::imageops::resize(&g, w32, h32, FilterType::Triangle);
            }
            Ok(g.into_raw())
        }
        _ => {
            let mut rgb = img.to_rgb8();
            if rgb.dimensions() != (w32, h32) {
                rgb = image::imageops::resize(&rgb, w32, h32, FilterType::Triangle);
            }
            let raw = rgb.into_raw();
            let mut out = vec![0u8; 3 * plane];
            for (i, px) in raw.chunks_exact(3).enumerate() {
                for (k, &v) in px.iter().enumerate() {
                    out[k * plane + i] = v;
                }
            }
            Ok(out)
        }
    }
}

/// Reads one split: every class folder of `split` (named in `classes`),
/// every file in it.
fn read_split(
    split: &Path,
    classes: &[String],
    shape: (usize, usize, usize),
    skip_bad: bool,
    skipped: &mut Vec<SkippedFile>,
) -> Result<LabelledImages, DataError> {
    let mut files: Vec<(u8, PathBuf)> = Vec::new();
    let mut dirs = Vec::new();
    for (name, dir) in class_dirs(split)? {
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(DataError::UnknownClass {
                dir,
                class: name,
                known: classes.to_vec(),
            });
        };
        let imgs = entries(&dir, fs::FileType::is_file)?;
        if imgs.is_empty() {
            return Err(DataError::EmptyClass { dir, skipped: 0 });
        }
        files.extend(imgs.into_iter().map(|p| (label as u8, p)));
        dirs.push((label as u8, dir));
    }
    let decoded: Vec<Result<Vec<u8>, String>> =
        files.par_iter().map(|(_, p)| decode(p, shape)).collect();
    let mut pixels = Vec::with_capacity(files.len() * shape.0 * shape.1 * shape.2);
    let mut labels = Vec::with_capacity(files.len());
    let mut skipped_in = vec![0usize; classes.len()];
    let mut kept = vec![0usize; classes.len()];
    for ((label, path), r) in files.into_iter().zip(decoded) {
        match r {
            Ok(px) => {
                pixels.extend_from_slice(&px);
                labels.push(label);
                kept[label as usize] += 1;
            }
            Err(why) if skip_bad => {
                skipped_in[label as usize] += 1;
                skipped.push(SkippedFile { path, why });
            }
            Err(why) => return Err(DataError::BadImage { path, why }),
        }
    }
    for (label, dir) in dirs {
        if kept[label as usize] == 0 {
            return Err(DataError::EmptyClass {
                dir,
                skipped: skipped_in[label as usize],
            });
        }
    }
    LabelledImages::with_channels(shape, classes.len(), pixels, labels)
}

impl DataSource for ImageFolder {
    fn name(&self) -> &str {
        NAME
    }

    /// Reads `DIR/train` and `DIR/test` (see [`ImageFolder`]); needs
    /// [`LoadOptions::dir`] and [`LoadOptions::image`].
    fn load(&self, opts: &LoadOptions) -> Result<ImageDataset, DataError> {
        let bad = |why: &str| DataError::BadOptions {
            dataset: NAME.to_string(),
            why: why.to_string(),
        };
        let dir = opts
            .dir
            .as_ref()
            .ok_or_else(|| bad("no directory given (--data DIR, holding train/ and test/)"))?;
        let shape = opts
            .image
            .ok_or_else(|| bad("no image shape given (channels, height, width)"))?;
        if !matches!(shape.0, 1 | 3) {
            return Err(bad(&format!(
                "{} channels: images convert to 1 (grey) or 3 (RGB)",
                shape.0
            )));
        }
        if shape.1 == 0 || shape.2 == 0 || shape.1 > 1 << 14 || shape.2 > 1 << 14 {
            return Err(bad(&format!(
                "image size {}×{}: height and width must be 1 to 16384",
                shape.1, shape.2
            )));
        }
        let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
        let classes: Vec<String> = class_dirs(&train_dir)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut skipped = Vec::new();
        let train = read_split(&train_dir, &classes, shape, opts.skip_bad, &mut skipped)?;
        let test = read_split(&test_dir, &classes, shape, opts.skip_bad, &mut skipped)?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(ImageDataset {
            name,
            train,
            test,
            class_names: classes,
            dir: dir.clone(),
            unverified: Vec::new(),
            skipped,
        })
    }
}
