//! Any picture of a digit → a 28×28 MNIST-style input.

use super::error::{PicturesError, IN_MEMORY};
use super::io::{decode, luma};
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageBuffer, Luma};
use std::path::Path;

/// Side of the box the digit is scaled to fit, as in MNIST.
const BOX: u32 = 20;
/// Side of the output picture.
const SIDE: usize = 28;
/// Least difference between background and ink for the image not to be blank.
const MIN_CONTRAST: f32 = 0.1;

/// Reads a picture of a digit (PNG or JPEG) and converts it as
/// [`mnistify_image`] does. Errors name the file.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("one.png");
/// // A black bar on white paper, 100 pixels high and 60 wide.
/// let mut px = vec![1.0f32; 100 * 60];
/// for y in 10..90 { for x in 25..35 { px[y * 60 + x] = 0.0; } }
/// static_nn::pictures::save_gray_png(&path, &px, 100, 60, Some((0.0, 1.0)))?;
/// let x = static_nn::pictures::mnistify(&path)?;
/// assert!(x[14 * 28 + 14] > 0.9); // white ink in the middle
/// assert_eq!(x[0], 0.0); // black background
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn mnistify(path: &Path) -> Result<[f32; SIDE * SIDE], PicturesError> {
    mnistify_image(&decode(path)?).map_err(|e| match e {
        PicturesError::Blank { .. } => PicturesError::Blank {
            path: path.to_path_buf(),
        },
        e => e,
    })
}

/// Converts a picture of a digit (any size, any colours, dark on light or
/// light on dark) to a 28×28 grey picture the way MNIST was made, returned
/// row-major with values in `[0, 1]`, white digit on black:
///
/// 1. grey (BT.601 luma; transparency composited over white);
/// 2. invert if the background (the median of the border pixels) is light;
/// 3. split ink from paper with Otsu's threshold and stretch so that paper
///    is 0 and the mean ink 1 (anti-aliased edges stay grey; paper texture,
///    noise and uneven lighting go);
/// 4. crop to the bounding box of the ink (the pixels above the threshold);
/// 5. scale to fit 20×20 keeping the aspect ratio (triangle filter, which
///    anti-aliases when shrinking);
/// 6. place in 28×28 so the centre of mass of the ink is at the centre (as
///    far as the digit stays inside).
///
/// An image with no ink (paper and ink differ by less than 0.1) is
/// [`PicturesError::Blank`].
pub fn mnistify_image(img: &DynamicImage) -> Result<[f32; SIDE * SIDE], PicturesError> {
    let blank = || PicturesError::Blank {
        path: IN_MEMORY.into(),
    };
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    if w == 0 || h == 0 {
        return Err(blank());
    }
    let mut grey: Vec<f32> = rgba
        .pixels()
        .map(|p| {
            let [r, g, b, a] = p.0.map(|c| f32::from(c) / 255.0);
            luma([r, g, b].map(|c| c * a + 1.0 - a))
        })
        .collect();

    // Make the ink bright: invert if the border (mostly paper) is light.
    let (wu, hu) = (w as usize, h as usize);
    let mut border: Vec<f32> = (0..wu)
        .flat_map(|x| [x, (hu - 1) * wu + x])
        .chain((0..hu).flat_map(|y| [y * wu, y * wu + wu - 1]))
        .map(|i| grey[i])
        .collect();
    border.sort_by(f32::total_cmp);
    if border[border.len() / 2] > 0.5 {
        grey.iter_mut().for_each(|v| *v = 1.0 - *v);
    }

    // Split paper from ink (Otsu); the ink is what lies above the threshold.
    let (threshold, paper, ink) = otsu(&grey).ok_or_else(blank)?;
    if ink - paper < MIN_CONTRAST {
        return Err(blank());
    }
    let is_ink: Vec<bool> = grey.iter().map(|&v| v > threshold).collect();
    // Stretch: half-way between paper and threshold → 0, mean ink → 1; this
    // keeps anti-aliased edges and drops paper texture and uneven lighting.
    let lo = (paper + threshold) / 2.0;
    for v in &mut grey {
        *v = ((*v - lo) / (ink - lo)).clamp(0.0, 1.0);
    }

    // Bounding box of the ink.
    let rows: Vec<usize> = (0..hu)
        .filter(|y| is_ink[y * wu..(y + 1) * wu].contains(&true))
        .collect();
    let cols: Vec<usize> = (0..wu)
        .filter(|x| (0..hu).any(|y| is_ink[y * wu + x]))
        .collect();
    let (Some(&y0), Some(&y1), Some(&x0), Some(&x1)) =
        (rows.first(), rows.last(), cols.first(), cols.last())
    else {
        return Err(blank());
    };
    let (bw, bh) = ((x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32);
    let crop: ImageBuffer<Luma<f32>, Vec<f32>> = ImageBuffer::from_fn(bw, bh, |x, y| {
        Luma([grey[(y0 + y as usize) * wu + x0 + x as usize]])
    });

    // Fit into 20×20 keeping the aspect ratio.
    let f = BOX as f32 / bw.max(bh) as f32;
    let fit = |n: u32| ((n as f32 * f).round() as u32).clamp(1, BOX);
    let (nw, nh) = (fit(bw), fit(bh));
    let small = imageops::resize(&crop, nw, nh, FilterType::Triangle);

    // Centre of mass → centre of the 28×28 picture.
    let (mut m, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y, p) in small.enumerate_pixels() {
        let v = p.0[0].clamp(0.0, 1.0);
        m += v;
        mx += v * (x as f32 + 0.5);
        my += v * (y as f32 + 0.5);
    }
    if m <= 0.0 {
        return Err(blank());
    }
    let centre = SIDE as f32 / 2.0;
    let place =
        |c: f32, n: u32| ((centre - c / m).round().max(0.0) as usize).min(SIDE - n as usize);
    let (ox, oy) = (place(mx, nw), place(my, nh));
    let mut out = [0.0f32; SIDE * SIDE];
    for (x, y, p) in small.enumerate_pixels() {
        out[(oy + y as usize) * SIDE + ox + x as usize] = p.0[0].clamp(0.0, 1.0);
    }
    Ok(out)
}

/// Otsu's threshold of values in `[0, 1]` (256 bins): the level that best
/// splits them into two classes, with the mean of each class, as
/// `(threshold, mean below, mean above)`. `None` if all values are equal.
fn otsu(values: &[f32]) -> Option<(f32, f32, f32)> {
    const BINS: usize = 256;
    let bin = |v: f32| ((v.clamp(0.0, 1.0) * BINS as f32) as usize).min(BINS - 1);
    let (mut count, mut sum) = ([0f64; BINS], [0f64; BINS]);
    for &v in values {
        count[bin(v)] += 1.0;
        sum[bin(v)] += f64::from(v);
    }
    let (n, total) = (count.iter().sum::<f64>(), sum.iter().sum::<f64>());
    let (mut n0, mut s0) = (0.0, 0.0);
    let mut best: Option<(f64, usize, f64, f64)> = None;
    for k in 0..BINS - 1 {
        n0 += count[k];
        s0 += sum[k];
        let n1 = n - n0;
        if n0 == 0.0 || n1 == 0.0 {
            continue;
        }
        let (m0, m1) = (s0 / n0, (total - s0) / n1);
        let between = n0 * n1 * (m1 - m0) * (m1 - m0);
        if best.is_none_or(|(b, ..)| between > b) {
            best = Some((between, k, m0, m1));
        }
    }
    best.map(|(_, k, m0, m1)| ((k + 1) as f32 / BINS as f32, m0 as f32, m1 as f32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    /// A white 60×100 (w×h) picture with a thick black bar: a "1".
    fn one(ink: [u8; 3], paper: [u8; 3]) -> DynamicImage {
        let img = RgbImage::from_fn(60, 100, |x, y| {
            image::Rgb(if (25..35).contains(&x) && (10..90).contains(&y) {
                ink
            } else {
                paper
            })
        });
        DynamicImage::ImageRgb8(img)
    }

    fn centre_of_mass(x: &[f32; 784]) -> (f32, f32) {
        let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
        for (i, v) in x.iter().enumerate() {
            m += v;
            mx += v * ((i % 28) as f32 + 0.5);
            my += v * ((i / 28) as f32 + 0.5);
        }
        (mx / m, my / m)
    }

    fn ink_columns(x: &[f32; 784]) -> Vec<usize> {
        (0..28)
            .filter(|c| (0..28).any(|r| x[r * 28 + c] > 0.0))
            .collect()
    }

    fn ink_rows(x: &[f32; 784]) -> Vec<usize> {
        (0..28)
            .filter(|r| (0..28).any(|c| x[r * 28 + c] > 0.0))
            .collect()
    }

    #[test]
    fn a_black_bar_on_white_lands_centred() {
        let x = mnistify_image(&one([0; 3], [255; 3])).unwrap();
        let cols = ink_columns(&x);
        assert!(cols.iter().all(|c| (12..=16).contains(c)), "{cols:?}");
        assert!(cols.contains(&13) && cols.contains(&14), "{cols:?}");
        assert_eq!(ink_rows(&x), (4..24).collect::<Vec<_>>());
        let (cx, cy) = centre_of_mass(&x);
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{cx} {cy}"
        );
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(x.iter().copied().fold(0.0, f32::max) > 0.99);
        assert_eq!(x[0], 0.0);
    }

    #[test]
    fn polarity_and_colour_do_not_matter() {
        let reference = mnistify_image(&one([0; 3], [255; 3])).unwrap();
        for (ink, paper) in [([255; 3], [0; 3]), ([20, 20, 200], [250, 240, 120])] {
            let x = mnistify_image(&one(ink, paper)).unwrap();
            let diff = x
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-3, "ink {ink:?} on {paper:?}: max diff {diff}");
        }
    }

    #[test]
    fn otsu_splits_two_levels() {
        let v = [0.1, 0.1, 0.12, 0.8, 0.9];
        let (t, lo, hi) = otsu(&v).unwrap();
        assert!(t > 0.12 && t <= 0.8, "{t}");
        assert!((lo - 0.10667).abs() < 1e-4 && (hi - 0.85).abs() < 1e-6);
        assert_eq!(otsu(&[0.3; 4]), None);
    }

    #[test]
    fn noise_and_uneven_lighting_are_ignored() {
        // The bar of `one`, photographed: paper from 170 to 230 left to
        // right, ink 60, all ±15 of noise, and a JPEG round trip.
        let mut seed = 7u32;
        let img = RgbImage::from_fn(60, 100, |x, y| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 24) as f32 / 255.0 * 30.0 - 15.0;
            let bar = (25..35).contains(&x) && (10..90).contains(&y);
            let v = if bar { 60.0 } else { 170.0 + x as f32 } + noise;
            image::Rgb([v as u8; 3])
        });
        let mut jpeg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let photo = image::load_from_memory(jpeg.get_ref()).unwrap();
        let x = mnistify_image(&photo).unwrap();
        let cols = ink_columns(&x);
        assert!(cols.iter().all(|c| (11..=17).contains(c)), "{cols:?}");
        let rows = ink_rows(&x);
        assert!(
            rows.len() <= 21 && rows.contains(&4) && rows.contains(&23),
            "{rows:?}"
        );
        // The stroke is white, not a washed-out grey.
        assert!(x[14 * 28 + 14] > 0.9, "{}", x[14 * 28 + 14]);
    }

    #[test]
    fn an_off_centre_wide_digit_is_centred_and_fits_twenty() {
        // A thin "L" in a corner of a big grey-paper picture.
        let img = RgbImage::from_fn(300, 200, |x, y| {
            let l = ((20..30).contains(&x) && (150..190).contains(&y))
                || ((20..100).contains(&x) && (180..190).contains(&y));
            image::Rgb(if l { [30; 3] } else { [200; 3] })
        });
        let x = mnistify_image(&DynamicImage::ImageRgb8(img)).unwrap();
        let cols = ink_columns(&x);
        assert_eq!(cols.len(), 20, "{cols:?}");
        assert!(ink_rows(&x).len() <= 11);
        let (cx, cy) = centre_of_mass(&x);
        assert!(
            (cx - 14.0).abs() <= 0.6 && (cy - 14.0).abs() <= 0.6,
            "{cx} {cy}"
        );
    }

    #[test]
    fn blank_images_are_errors_naming_the_file() {
        for c in [0u8, 128, 255] {
            let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(30, 20, image::Rgb([c; 3])));
            assert!(matches!(
                mnistify_image(&img),
                Err(PicturesError::Blank { .. })
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blank.png");
        RgbImage::from_pixel(5, 5, image::Rgb([255; 3]))
            .save(&path)
            .unwrap();
        let e = mnistify(&path).unwrap_err();
        assert!(matches!(e, PicturesError::Blank { .. }));
        assert!(e.to_string().contains("blank.png"), "{e}");
        let e = mnistify(&dir.path().join("nope.jpg")).unwrap_err();
        assert!(e.to_string().contains("nope.jpg"), "{e}");
    }

    #[test]
    fn a_one_pixel_image_with_ink_works() {
        // A single dark pixel on a 3×3 light picture.
        let img = RgbImage::from_fn(3, 3, |x, y| {
            image::Rgb([if (x, y) == (1, 1) { 0 } else { 255 }; 3])
        });
        let x = mnistify_image(&DynamicImage::ImageRgb8(img)).unwrap();
        assert!(x.iter().sum::<f32>() > 100.0);
        let (cx, cy) = centre_of_mass(&x);
        assert!((cx - 14.0).abs() < 0.5 && (cy - 14.0).abs() < 0.5);
    }
}
