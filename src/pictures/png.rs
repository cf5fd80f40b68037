//! Tensor data → PNG files: grey, RGB and a diverging colour map for signed
//! maps, all written atomically.

use super::canvas::{Canvas, Rgb};
use super::error::PicturesError;
use image::{ImageFormat, RgbImage};
use std::io::{Cursor, Write};
use std::path::Path;

/// Maps `v` from `lo..hi` to a grey level (`lo` black, `hi` white; `lo > hi`
/// inverts), clamping outside values; NaN is black. If `lo == hi` (a
/// constant picture) `v` itself is clamped to `[0, 1]`, so all-zeros is
/// black and all-ones is white.
///
/// ```
/// use static_nn::pictures::grey_level;
/// assert_eq!(grey_level(0.0, (0.0, 1.0)), 0);
/// assert_eq!(grey_level(1.0, (0.0, 1.0)), 255);
/// assert_eq!(grey_level(7.0, (0.0, 1.0)), 255);
/// assert_eq!(grey_level(5.0, (0.0, 10.0)), 128);
/// ```
pub fn grey_level(v: f32, (lo, hi): (f32, f32)) -> u8 {
    let span = hi - lo;
    let t = if span != 0.0 && span.is_finite() {
        (v - lo) / span
    } else {
        v
    };
    unit_to_u8(t)
}

/// `[0, 1]` → `0..=255`, clamped, rounded; NaN is 0.
pub(crate) fn unit_to_u8(t: f32) -> u8 {
    if t.is_nan() {
        0
    } else {
        (t.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// The diverging colour map used by [`save_signed_png`]: `t = -1` is blue
/// `[0, 0, 255]`, `t = 0` white, `t = 1` red `[255, 0, 0]`, linear in between
/// (matplotlib's `bwr`). `t` is clamped to `[-1, 1]`; NaN is white.
///
/// ```
/// use static_nn::pictures::diverging;
/// assert_eq!(diverging(-1.0), [0, 0, 255]);
/// assert_eq!(diverging(0.0), [255, 255, 255]);
/// assert_eq!(diverging(1.0), [255, 0, 0]);
/// ```
pub fn diverging(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(-1.0, 1.0) };
    let fade = unit_to_u8(1.0 - t.abs());
    if t < 0.0 {
        [fade, fade, 255]
    } else {
        [255, fade, fade]
    }
}

/// The smallest and largest finite value, or `None` if there is none.
pub(crate) fn finite_range(values: &[f32]) -> Option<(f32, f32)> {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Checks that `len == channels·h·w` and that the size is usable.
pub(crate) fn check_size(
    path: &Path,
    len: usize,
    channels: usize,
    h: usize,
    w: usize,
) -> Result<(), PicturesError> {
    if h == 0 || w == 0 {
        return Err(PicturesError::bad(path, format!("empty image ({h}×{w})")));
    }
    let want = channels.checked_mul(h).and_then(|n| n.checked_mul(w));
    if want != Some(len) {
        return Err(PicturesError::bad(
            path,
            format!("{len} values given for a {channels}×{h}×{w} image"),
        ));
    }
    Ok(())
}

/// The largest picture drawn: 65 535 pixels a side, 2²⁸ pixels in all.
pub(crate) fn check_canvas(path: &Path, w: usize, h: usize) -> Result<(u32, u32), PicturesError> {
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(wu), Ok(hu)) if wu < 1 << 16 && hu < 1 << 16 && w * h <= 1 << 28 => Ok((wu, hu)),
        _ => Err(PicturesError::bad(
            path,
            format!("picture too large ({w}×{h} pixels)"),
        )),
    }
}

/// `(w·scale, h·scale)`, or an error if too large (see [`check_canvas`]) or
/// `scale == 0`.
pub(crate) fn scaled(
    path: &Path,
    h: usize,
    w: usize,
    scale: u32,
) -> Result<(u32, u32), PicturesError> {
    if scale == 0 {
        return Err(PicturesError::bad(path, "scale must be at least 1"));
    }
    let s = scale as usize;
    match (w.checked_mul(s), h.checked_mul(s)) {
        (Some(w), Some(h)) => check_canvas(path, w, h),
        _ => Err(PicturesError::bad(
            path,
            format!("{h}×{w} enlarged {scale} times is too large"),
        )),
    }
}

/// Encodes `img` as PNG and writes it atomically to `path`.
pub(crate) fn write_png(path: &Path, img: &RgbImage) -> Result<(), PicturesError> {
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Png)
        .map_err(|source| PicturesError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, bytes.get_ref())
}

/// Writes `bytes` to `path` atomically (see [`crate::atomic_file`]): a
/// reader never sees a half-written picture.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PicturesError> {
    crate::atomic_file::write_atomic(path, |f| f.write_all(bytes)).map_err(|(_, source)| {
        PicturesError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Draws colours (one per pixel, row-major) enlarged `scale` times and saves.
fn save_colours(
    path: &Path,
    colours: &[Rgb],
    h: usize,
    w: usize,
    scale: u32,
) -> Result<(), PicturesError> {
    let (cw, ch) = scaled(path, h, w, scale)?;
    let mut canvas = Canvas::new(cw, ch, [0; 3]);
    canvas.blit(0, 0, w, scale, colours);
    write_png(path, &canvas.into_image())
}

/// Grey colours for a single-channel picture (see [`grey_level`]).
pub(crate) fn grey_colours(pixels: &[f32], range: Option<(f32, f32)>) -> Vec<Rgb> {
    let range = range.or_else(|| finite_range(pixels)).unwrap_or((0.0, 1.0));
    pixels.iter().map(|&v| [grey_level(v, range); 3]).collect()
}

/// RGB colours from a `(3, H, W)` buffer with values in `[0, 1]` (clamped).
pub(crate) fn rgb_colours(chw: &[f32], h: usize, w: usize) -> Vec<Rgb> {
    let n = h * w;
    (0..n)
        .map(|i| [chw[i], chw[n + i], chw[2 * n + i]].map(unit_to_u8))
        .collect()
}

/// Saves a single-channel `h`×`w` picture (row-major) as a grey PNG.
///
/// `range = Some((lo, hi))` maps `lo` to black and `hi` to white (values
/// outside are clamped); `None` uses the smallest and largest value of the
/// data, like matplotlib's `imshow(cmap="gray")`. NaN is drawn black.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("ramp.png");
/// let ramp: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
/// static_nn::pictures::save_gray_png(&path, &ramp, 3, 4, Some((0.0, 1.0)))?;
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn save_gray_png(
    path: &Path,
    pixels: &[f32],
    h: usize,
    w: usize,
    range: Option<(f32, f32)>,
) -> Result<(), PicturesError> {
    check_size(path, pixels.len(), 1, h, w)?;
    save_colours(path, &grey_colours(pixels, range), h, w, 1)
}

/// Saves a `(3, H, W)` picture (channel-major, values in `[0, 1]`, clamped)
/// as an RGB PNG.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// // A 1×2 picture: one red pixel, one blue pixel.
/// let chw = [1.0, 0.0, /* G */ 0.0, 0.0, /* B */ 0.0, 1.0];
/// static_nn::pictures::save_rgb_png(&dir.path().join("rb.png"), &chw, 1, 2)?;
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn save_rgb_png(path: &Path, chw: &[f32], h: usize, w: usize) -> Result<(), PicturesError> {
    check_size(path, chw.len(), 3, h, w)?;
    save_colours(path, &rgb_colours(chw, h, w), h, w, 1)
}

/// Saves a signed single-channel map (an edge map, a learned kernel) with the
/// [`diverging`] colour map: white is 0, red positive, blue negative,
/// symmetric around 0 (the largest magnitude is full colour). Each pixel
/// becomes a `scale`×`scale` block so that a 3×3 kernel is visible.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let sobel_x = [-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
/// static_nn::pictures::save_signed_png(&dir.path().join("sobel.png"), &sobel_x, 3, 3, 32)?;
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn save_signed_png(
    path: &Path,
    pixels: &[f32],
    h: usize,
    w: usize,
    scale: u32,
) -> Result<(), PicturesError> {
    check_size(path, pixels.len(), 1, h, w)?;
    let m = pixels
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let colours: Vec<Rgb> = pixels
        .iter()
        .map(|&v| diverging(if m > 0.0 { v / m } else { 0.0 }))
        .collect();
    save_colours(path, &colours, h, w, scale)
}

/// Saves a `(C, H, W)` dfdx tensor as a PNG: `C = 1` as grey, scaled from the
/// tensor's minimum to its maximum (like the notebook's `plot`, i.e.
/// matplotlib's `imshow`), `C = 3` as RGB with values in `[0, 1]` (clamped).
/// Any other `C` fails to compile (when the function is instantiated).
///
/// ```
/// use dfdx::prelude::*;
/// # let dir = tempfile::tempdir().unwrap();
/// let dev = Cpu::default();
/// let img: Tensor<Rank3<1, 6, 6>, f32, _> = dev.sample_uniform();
/// static_nn::pictures::save_tensor_png(&dir.path().join("noise.png"), &img)?;
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn save_tensor_png<const C: usize, const H: usize, const W: usize, D, T>(
    path: &Path,
    t: &dfdx::tensor::Tensor<dfdx::shapes::Rank3<C, H, W>, f32, D, T>,
) -> Result<(), PicturesError>
where
    D: dfdx::tensor::Storage<f32>,
{
    const {
        assert!(
            C == 1 || C == 3,
            "save_tensor_png: C must be 1 (grey) or 3 (RGB)"
        )
    };
    let data = t.as_vec();
    if C == 1 {
        save_gray_png(path, &data, H, W, None)
    } else {
        save_rgb_png(path, &data, H, W)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pictures::read_image_raw;
    use std::fs;

    #[test]
    fn grey_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        let px: Vec<f32> = (0..20).map(|i| i as f32 / 19.0).collect();
        save_gray_png(&path, &px, 4, 5, Some((0.0, 1.0))).unwrap();
        let (data, h, w) = read_image_raw(&path).unwrap();
        assert_eq!((h, w), (4, 5));
        for c in 0..3 {
            for (a, b) in data[c * 20..(c + 1) * 20].iter().zip(&px) {
                assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn grey_auto_range_stretches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        save_gray_png(&path, &[-3.0, -1.0, 1.0], 1, 3, None).unwrap();
        let (data, _, _) = read_image_raw(&path).unwrap();
        assert_eq!(&data[..3], &[0.0, 0.5019608, 1.0]);
    }

    #[test]
    fn rgb_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let chw: Vec<f32> = (0..3 * 2 * 3).map(|i| (i % 7) as f32 / 6.0).collect();
        save_rgb_png(&path, &chw, 2, 3).unwrap();
        let (data, h, w) = read_image_raw(&path).unwrap();
        assert_eq!((h, w), (2, 3));
        for (a, b) in data.iter().zip(&chw) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn colour_map_endpoints() {
        assert_eq!(diverging(-1.0), [0, 0, 255]);
        assert_eq!(diverging(-5.0), [0, 0, 255]);
        assert_eq!(diverging(0.0), [255, 255, 255]);
        assert_eq!(diverging(f32::NAN), [255, 255, 255]);
        assert_eq!(diverging(1.0), [255, 0, 0]);
        assert_eq!(diverging(0.5), [255, 128, 128]);
        assert_eq!(diverging(-0.5), [128, 128, 255]);
        assert_eq!(grey_level(f32::NAN, (0.0, 1.0)), 0);
        assert_eq!(grey_level(-1.0, (0.0, 1.0)), 0);
        assert_eq!(grey_level(0.3, (0.3, 0.3)), 77);
        assert_eq!(grey_level(0.25, (1.0, 0.0)), 191);
        assert_eq!(grey_level(0.5, (f32::NEG_INFINITY, 1.0)), 128);
    }

    #[test]
    fn signed_png_is_symmetric_and_scaled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.png");
        save_signed_png(&path, &[-2.0, 0.0, 1.0, 2.0], 2, 2, 3).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (6, 6));
        assert_eq!(img.get_pixel(2, 2).0, [0, 0, 255]);
        assert_eq!(img.get_pixel(3, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(0, 3).0, [255, 128, 128]);
        assert_eq!(img.get_pixel(5, 5).0, [255, 0, 0]);
        // An all-zero map is white, not a division by zero.
        save_signed_png(&path, &[0.0; 4], 2, 2, 1).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert!(img.pixels().all(|p| p.0 == [255; 3]));
    }

    #[test]
    fn tensor_png_grey_and_rgb() {
        use dfdx::prelude::*;
        let dev = Cpu::default();
        let dir = tempfile::tempdir().unwrap();
        let grey: Tensor<Rank3<1, 2, 3>, f32, _> = dev.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]);
        let path = dir.path().join("t1.png");
        save_tensor_png(&path, &grey).unwrap();
        let (data, h, w) = read_image_raw(&path).unwrap();
        assert_eq!((h, w, data[0], data[5]), (2, 3, 0.0, 1.0));
        let rgb: Tensor<Rank3<3, 1, 1>, f32, _> = dev.tensor([[[1.0]], [[0.0]], [[1.0]]]);
        let path = dir.path().join("t3.png");
        save_tensor_png(&path, &rgb).unwrap();
        assert_eq!(read_image_raw(&path).unwrap().0, vec![1.0, 0.0, 1.0]);
    }

    #[test]
    fn wrong_sizes_are_errors_naming_the_file() {
        let path = Path::new("/tmp/never-written.png");
        for e in [
            save_gray_png(path, &[0.0; 5], 2, 3, None).unwrap_err(),
            save_gray_png(path, &[], 0, 3, None).unwrap_err(),
            save_rgb_png(path, &[0.0; 6], 2, 3).unwrap_err(),
            save_signed_png(path, &[0.0; 6], 2, 3, 0).unwrap_err(),
            save_gray_png(path, &[0.0; 6], usize::MAX, 3, None).unwrap_err(),
        ] {
            assert!(matches!(e, PicturesError::BadInput { .. }), "{e}");
            assert!(e.to_string().contains("never-written.png"), "{e}");
        }
        assert!(!path.exists());
    }

    #[test]
    fn missing_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/x.png");
        let e = save_gray_png(&path, &[0.5], 1, 1, None).unwrap_err();
        assert!(matches!(e, PicturesError::Write { .. }));
        assert!(e.to_string().contains("no/such/dir/x.png"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn read_only_folder_is_an_error_and_leaves_nothing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        // Root ignores folder permissions: find out whether they hold here.
        let probe = ro.join("probe");
        let enforced = fs::File::create(&probe).is_err();
        let _ = fs::remove_file(&probe);
        let path = ro.join("x.png");
        let result = save_rgb_png(&path, &[0.0; 3], 1, 1);
        let left: Vec<String> = fs::read_dir(&ro)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
        if enforced {
            let e = result.expect_err("a read-only folder must refuse the picture");
            assert!(matches!(e, PicturesError::Write { .. }));
            assert!(e.to_string().contains("x.png"), "{e}");
            assert!(left.is_empty(), "left behind: {left:?}");
        } else {
            // As root the write succeeds, and must leave the picture alone:
            // no temporary file beside it.
            result.expect("permissions do not hold, so the write must succeed");
            assert_eq!(left, ["x.png"]);
        }
    }

    /// Works even as root, which ignores folder permissions: nobody may
    /// create files in `/proc`.
    #[cfg(target_os = "linux")]
    #[test]
    fn unwritable_filesystem_is_an_error() {
        let path = Path::new("/proc/static-nn-vis-test.png");
        let e = save_gray_png(path, &[0.5], 1, 1, None).unwrap_err();
        assert!(matches!(e, PicturesError::Write { .. }), "{e}");
        assert!(
            e.to_string().contains("/proc/static-nn-vis-test.png"),
            "{e}"
        );
    }

    #[test]
    fn concurrent_writes_to_one_file_leave_a_valid_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("same.png");
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = &path;
                s.spawn(move || {
                    save_gray_png(path, &vec![i as f32; 64 * 64], 64, 64, None).unwrap()
                });
            }
        });
        assert_eq!(image::image_dimensions(&path).unwrap(), (64, 64));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn huge_pictures_are_refused() {
        let path = Path::new("huge.png");
        let e = save_signed_png(path, &[1.0; 4], 2, 2, u32::MAX).unwrap_err();
        assert!(matches!(e, PicturesError::BadInput { .. }), "{e}");
        assert!(check_canvas(path, 1 << 16, 1).is_err());
        assert!(check_canvas(path, 1 << 15, 1 << 14).is_err());
        assert!(check_canvas(path, 1 << 14, 1 << 14).is_ok());
    }

    #[test]
    fn writes_replace_atomically_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        fs::write(&path, b"old").unwrap();
        save_gray_png(&path, &[1.0], 1, 1, None).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.png")]);
        assert!(image::open(&path).is_ok());
        // A directory in the way is an error, not a panic.
        let e = save_gray_png(dir.path(), &[1.0], 1, 1, None).unwrap_err();
        assert!(matches!(e, PicturesError::Write { .. }), "{e}");
    }
}
