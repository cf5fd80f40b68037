//! PNG/JPEG files → pixels and typed dfdx tensors.

use super::error::PicturesError;
use dfdx::shapes::{Const, Rank3};
use dfdx::tensor::Tensor;
use dfdx::tensor_ops::Device;
use image::imageops::{self, FilterType};
use image::{DynamicImage, Rgb32FImage};
use std::path::Path;

/// The most pixels a picture may have to be read (2^25: 8K UHD, 7680×4320,
/// fits). A JPEG header of a few hundred bytes can announce any size, which
/// the decoder fills even when the data is missing, and reading costs about
/// 48 bytes a pixel: without a cap an 827-byte file (found by fuzzing)
/// made `read_image_raw` allocate over 2 GB.
pub(crate) const MAX_PIXELS: u64 = 1 << 25;

/// Reads and decodes a PNG or JPEG; the format is told by the content, not
/// the extension. Pictures of more than [`MAX_PIXELS`] are refused before
/// decoding.
pub(crate) fn decode(path: &Path) -> Result<DynamicImage, PicturesError> {
    let bytes = std::fs::read(path).map_err(|source| PicturesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let decode_err = |source| PicturesError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(image::ImageError::IoError(e)))?
        .into_dimensions()
        .map_err(decode_err)?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_PIXELS {
        return Err(PicturesError::bad(
            path,
            format!("the picture is {w}×{h} = {pixels} pixels, more than the {MAX_PIXELS} that can be read"),
        ));
    }
    image::load_from_memory(&bytes).map_err(decode_err)
}

/// The image as RGB in `[0, 1]`; a transparent image is composited over white
/// (so a transparent PNG with a black drawing looks as it does on screen).
pub(crate) fn to_rgb_over_white(img: &DynamicImage) -> Rgb32FImage {
    let rgba = img.to_rgba32f();
    Rgb32FImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        image::Rgb([r, g, b].map(|c| c * a + (1.0 - a)))
    })
}

/// Luma of an RGB colour with the ITU-R BT.601 weights (what PIL's
/// `convert("L")` and torchvision's `Grayscale` use).
pub(crate) fn luma([r, g, b]: [f32; 3]) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// `(3, H, W)` channel-major data of an RGB image.
fn chw(img: &Rgb32FImage) -> Vec<f32> {
    let n = (img.width() * img.height()) as usize;
    let mut out = vec![0.0; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = p.0[c];
        }
    }
    out
}

/// Reads a PNG or JPEG at its own size: `(data, h, w)` with `data` the
/// `(3, h, w)` RGB values in `[0, 1]`, channel-major. Grey images give three
/// equal channels; transparency is composited over white. Pictures of more
/// than 2^25 pixels (33.5 Mpx) are refused with an error before decoding.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("x.png");
/// static_nn::pictures::save_gray_png(&path, &[0.0, 1.0], 1, 2, None)?;
/// let (data, h, w) = static_nn::pictures::read_image_raw(&path)?;
/// assert_eq!((h, w), (1, 2));
/// assert_eq!(data, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn read_image_raw(path: &Path) -> Result<(Vec<f32>, usize, usize), PicturesError> {
    let img = to_rgb_over_white(&decode(path)?);
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok((chw(&img), h, w))
}

/// Reads a PNG or JPEG (told by content, not extension) into a `(C, H, W)`
/// tensor with values in `[0, 1]`, resized to `H`×`W` with the triangle
/// (bilinear) filter if its size differs. `C = 1` gives the luma (BT.601
/// weights), `C = 3` the RGB channels; any other `C` fails to compile (when
/// the function is instantiated). Transparency is composited over white.
/// Pictures of more than 2^25 pixels are refused (see [`read_image_raw`]).
///
/// ```
/// use dfdx::prelude::*;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("digit.png");
/// # static_nn::pictures::save_gray_png(&path, &vec![0.5; 50 * 40], 50, 40, Some((0.0, 1.0)))?;
/// let dev = Cpu::default();
/// let x: Tensor<Rank3<1, 28, 28>, f32, _> = static_nn::pictures::read_image(&path, &dev)?;
/// assert!((x.as_vec()[0] - 0.5).abs() < 0.01);
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn read_image<const C: usize, const H: usize, const W: usize, D: Device<f32>>(
    path: &Path,
    dev: &D,
) -> Result<Tensor<Rank3<C, H, W>, f32, D>, PicturesError> {
    const {
        assert!(
            C == 1 || C == 3,
            "read_image: C must be 1 (grey) or 3 (RGB)"
        )
    };
    let (wu, hu) = match (u32::try_from(W), u32::try_from(H)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(PicturesError::bad(
                path,
                format!("cannot resize to {H}×{W}"),
            ))
        }
    };
    let mut img = to_rgb_over_white(&decode(path)?);
    if img.dimensions() != (wu, hu) {
        img = imageops::resize(&img, wu, hu, FilterType::Triangle);
    }
    let data = if C == 1 {
        img.pixels().map(|p| luma(p.0)).collect()
    } else {
        chw(&img)
    };
    dev.try_tensor_from_vec(data, (Const::<C>, Const::<H>, Const::<W>))
        .map_err(|e| PicturesError::Device {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::prelude::*;

    #[test]
    fn garbage_and_missing_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.png");
        std::fs::write(&garbage, b"this is not a picture").unwrap();
        let e = read_image_raw(&garbage).unwrap_err();
        assert!(matches!(e, PicturesError::Decode { .. }), "{e}");
        assert!(e.to_string().contains("garbage.png"), "{e}");
        assert_eq!(e.path(), garbage);

        let missing = dir.path().join("missing.jpg");
        let e = read_image_raw(&missing).unwrap_err();
        assert!(matches!(e, PicturesError::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.jpg"), "{e}");

        let dev = Cpu::default();
        let e = read_image::<1, 28, 28, _>(&garbage, &dev).unwrap_err();
        assert!(e.to_string().contains("garbage.png"), "{e}");
        let e = read_image::<3, 4, 4, _>(dir.path(), &dev).unwrap_err();
        assert!(matches!(e, PicturesError::Read { .. }), "{e}");
    }

    #[test]
    fn format_is_told_by_content() {
        // A JPEG saved under a .png name still reads.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("really-a-jpeg.png");
        let img = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 40, 40]));
        img.save_with_format(&path, image::ImageFormat::Jpeg)
            .unwrap();
        let (data, h, w) = read_image_raw(&path).unwrap();
        assert_eq!((h, w), (8, 16));
        assert!((data[0] - 200.0 / 255.0).abs() < 0.03, "{}", data[0]);
        assert!((data[128] - 40.0 / 255.0).abs() < 0.03, "{}", data[128]);
    }

    #[test]
    fn read_image_resizes_and_converts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("half.png");
        // Left half black, right half pure red, 20×40.
        let img = image::RgbImage::from_fn(40, 20, |x, _| {
            image::Rgb(if x < 20 { [0, 0, 0] } else { [255, 0, 0] })
        });
        img.save(&path).unwrap();
        let dev = Cpu::default();
        let rgb: Tensor<Rank3<3, 5, 10>, f32, _> = read_image(&path, &dev).unwrap();
        let a = rgb.array();
        assert_eq!(a[0][2][0], 0.0);
        assert!((a[0][2][9] - 1.0).abs() < 1e-6);
        assert!(a[1][2][9].abs() < 1e-6);
        let grey: Tensor<Rank3<1, 5, 10>, f32, _> = read_image(&path, &dev).unwrap();
        let g = grey.array();
        assert!((g[0][0][9] - 0.299).abs() < 1e-3, "{}", g[0][0][9]);
        assert!(g
            .iter()
            .flatten()
            .flatten()
            .all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn transparency_is_composited_over_white() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alpha.png");
        let img = image::RgbaImage::from_fn(2, 1, |x, _| {
            image::Rgba(if x == 0 { [0, 0, 0, 0] } else { [0, 0, 0, 255] })
        });
        img.save(&path).unwrap();
        let (data, _, _) = read_image_raw(&path).unwrap();
        assert_eq!(&data[..2], &[1.0, 0.0]);
    }
}
