//! Pictures to blur and to find edges in: a photo from a file, or a test
//! picture made by code.
//!
//! The notebook applies its kernels to scikit-image's astronaut photo,
//! turned grey with `img.mean(0)`. [`load_grey`] does the same for any PNG
//! or JPEG; with no photo at hand, [`test_picture`] draws a scene with the
//! things kernels react to: flat areas, hard edges in every direction, fine
//! stripes and a checkerboard that blurring wipes out, and a smooth ramp.
use super::chw::Chw;
use super::error::TutorialError;
use crate::pictures::{read_image_raw, PicturesError};
use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma};
use std::path::Path;

/// The default largest side of a photo read by [`load_grey`]: larger
/// photos are scaled down so that the plain loops stay fast.
pub const MAX_PHOTO_SIDE: usize = 512;

/// Reads a PNG or JPEG as a grey `(1, H, W)` image with values in `[0, 1]`:
/// the mean of the red, green and blue channels (the notebook's
/// `test_img.mean(0)`), scaled down (keeping the aspect ratio) so that its
/// longer side is at most `max_side` pixels.
///
/// An error naming the file if it cannot be read or is not a PNG or JPEG
/// image, or if `max_side` is 0.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("photo.png");
/// # static_nn::pictures::save_gray_png(&path, &vec![0.5; 600 * 300], 600, 300, Some((0.0, 1.0)))?;
/// let img = static_nn::tutorial::photo::load_grey(&path, 512)?;
/// assert_eq!(img.shape(), (1, 512, 256));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_grey(path: &Path, max_side: usize) -> Result<Chw, TutorialError> {
    if max_side == 0 {
        return Err(TutorialError::Vis(PicturesError::bad(
            path,
            "the largest side must be at least 1 pixel",
        )));
    }
    let (rgb, h, w) = read_image_raw(path)?;
    let n = h * w;
    let grey: Vec<f32> = (0..n)
        .map(|i| (rgb[i] + rgb[n + i] + rgb[2 * n + i]) / 3.0)
        .collect();
    if h.max(w) <= max_side {
        return Chw::new(1, h, w, grey);
    }
    let scale = max_side as f64 / h.max(w) as f64;
    let nh = ((h as f64 * scale).round() as usize).clamp(1, max_side);
    let nw = ((w as f64 * scale).round() as usize).clamp(1, max_side);
    let (Ok(wu), Ok(hu), Ok(nwu), Ok(nhu)) = (
        u32::try_from(w),
        u32::try_from(h),
        u32::try_from(nw),
        u32::try_from(nh),
    ) else {
        return Err(TutorialError::Vis(PicturesError::bad(
            path,
            "the image is too large",
        )));
    };
    let Some(buf) = ImageBuffer::<Luma<f32>, Vec<f32>>::from_raw(wu, hu, grey) else {
        return Err(TutorialError::Vis(PicturesError::bad(
            path,
            "inconsistent image size",
        )));
    };
    let small = imageops::resize(&buf, nwu, nhu, FilterType::Triangle);
    Chw::new(1, nh, nw, small.into_raw())
}

/// A grey `(1, h, w)` test picture made by code, values in `[0, 1]`: a
/// left-to-right ramp as background, a bright disk, a dark square, a
/// diagonal bar, a checkerboard and stripes that get finer to the right.
/// Used when no photo is given; it looks the same at any size.
///
/// ```
/// let img = static_nn::tutorial::photo::test_picture(64, 96);
/// assert_eq!(img.shape(), (1, 64, 96));
/// let (lo, hi) = img.range().unwrap();
/// assert!(lo >= 0.0 && hi <= 1.0);
/// ```
pub fn test_picture(h: usize, w: usize) -> Chw {
    let mut img = Chw::zeros(1, h, w);
    let (hf, wf) = (h.max(1) as f32, w.max(1) as f32);
    for (n, px) in img.data_mut().iter_mut().enumerate() {
        let (i, j) = (n / w.max(1), n % w.max(1));
        // normalised coordinates of the pixel centre
        let (y, x) = ((i as f32 + 0.5) / hf, (j as f32 + 0.5) / wf);
        *px = picture_at(x, y);
    }
    img
}

/// The test picture's grey level at normalised coordinates `(x, y)` in `[0, 1]²`.
fn picture_at(x: f32, y: f32) -> f32 {
    let inside =
        |x0: f32, x1: f32, y0: f32, y1: f32| (x0..x1).contains(&x) && (y0..y1).contains(&y);
    // a bright disk, top left
    let (dx, dy) = (x - 0.27, y - 0.28);
    if dx * dx + dy * dy < 0.18 * 0.18 {
        return 0.92;
    }
    // a dark square, top right
    if inside(0.58, 0.88, 0.1, 0.4) {
        return 0.05;
    }
    // a checkerboard, bottom left: 8×8 cells
    if inside(0.06, 0.44, 0.56, 0.94) {
        let (u, v) = ((x - 0.06) / 0.38 * 8.0, (y - 0.56) / 0.38 * 8.0);
        return if (u as i32 + v as i32) % 2 == 0 {
            0.85
        } else {
            0.15
        };
    }
    // stripes that get finer to the right, bottom right
    if inside(0.54, 0.94, 0.56, 0.94) {
        let u = (x - 0.54) / 0.4;
        let phase = 40.0 * u * (1.0 + 2.0 * u);
        return if (phase as i32) % 2 == 0 { 0.8 } else { 0.2 };
    }
    // a diagonal bar across the middle
    if ((x - y) - 0.05).abs() < 0.025 {
        return 1.0;
    }
    // the background: a ramp from left to right
    0.25 + 0.35 * x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_picture_has_edges_and_flat_areas() {
        let img = test_picture(128, 128);
        let (lo, hi) = img.range().unwrap();
        assert!(lo <= 0.05 && hi >= 0.92);
        // inside the disk it is flat
        assert_eq!(img.at(0, 36, 34), img.at(0, 37, 35));
        assert_eq!(test_picture(0, 0).shape(), (1, 0, 0));
    }

    #[test]
    fn not_an_image_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, b"not a picture").unwrap();
        let err = load_grey(&path, 512).unwrap_err().to_string();
        assert!(err.contains("notes.png"), "{err}");
        let missing = dir.path().join("missing.jpg");
        assert!(load_grey(&missing, 512)
            .unwrap_err()
            .to_string()
            .contains("missing.jpg"));
    }
}
