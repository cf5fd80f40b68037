//! Kernels: edge detection, box blur and Gaussian blur.
//!
//! A kernel decides what cross-correlation picks out of an image. These are
//! the notebook's examples, each a one-channel [`Chw`] (`(1, KH, KW)`) ready
//! for [`reference::corr2d`](super::reference::corr2d), or a plain array for
//! a layer's `weight`.
//!
//! | kernel | size | picks out |
//! |---|---|---|
//! | [`EDGE`] `[1, −1]` | 1×2 | vertical edges (left minus right) |
//! | [`SOBEL_X`], [`SOBEL_Y`] | 3×3 | vertical / horizontal edges, smoothed |
//! | [`box_blur`] | k×k | the mean of the window: blur |
//! | [`gaussian_blur`] | k×k, odd | a weighted mean, heavier in the middle |
use super::chw::Chw;
use super::error::TutorialError;
use super::reference::corr2d;

/// The notebook's edge kernel `[[1, −1]]` (1×2): each output is a pixel
/// minus its right neighbour, so it is 0 on flat areas, −1 where the image
/// steps up from 0 to 1 and +1 where it steps down.
///
/// PyTorch: `torch.tensor([[[1.0, -1.0]]])`.
pub const EDGE: [[f32; 2]; 1] = [[1.0, -1.0]];

/// The Sobel kernel for vertical edges (the x gradient, right minus left,
/// with the middle row weighted twice): an answer to the notebook's
/// exercise "what kind of kernel would be appropriate for detecting edges?".
pub const SOBEL_X: [[f32; 3]; 3] = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]];

/// The Sobel kernel for horizontal edges (the y gradient, bottom minus
/// top): [`SOBEL_X`] transposed.
pub const SOBEL_Y: [[f32; 3]; 3] = [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]];

/// [`EDGE`] as a `(1, 1, 2)` image.
pub fn edge() -> Chw {
    Chw::from_array([EDGE])
}

/// [`SOBEL_X`] as a `(1, 3, 3)` image.
pub fn sobel_x() -> Chw {
    Chw::from_array([SOBEL_X])
}

/// [`SOBEL_Y`] as a `(1, 3, 3)` image.
pub fn sobel_y() -> Chw {
    Chw::from_array([SOBEL_Y])
}

/// The box blur: a `size×size` kernel of `1 / size²`, so each output is the
/// mean of its window (the same as average pooling with stride 1). Returns
/// `(1, size, size)`; an error if `size` is 0.
///
/// The notebook writes `torch.ones((1, H, W)) * 1/H*W`, which Python reads
/// as `(1/H)·W = 1` for a square kernel: a kernel of ones, a sum rather than
/// a mean. The picture looks the same up to brightness; this kernel is the
/// mean the notebook's comment ("averaging pixels") intends, and keeps the
/// output in the input's range.
///
/// ```
/// let k = static_nn::tutorial::kernels::box_blur(3)?;
/// assert_eq!(k.shape(), (1, 3, 3));
/// assert!((k.data().iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// # Ok::<(), static_nn::tutorial::TutorialError>(())
/// ```
pub fn box_blur(size: usize) -> Result<Chw, TutorialError> {
    if size == 0 {
        return Err(TutorialError::Kernel(
            "the blur kernel size must be at least 1".into(),
        ));
    }
    let v = 1.0 / (size * size) as f32;
    Chw::new(1, size, size, vec![v; size * size])
}

/// The sigma OpenCV picks for a Gaussian kernel of `size` when none is
/// given: `0.3·((size − 1)/2 − 1) + 0.8` (1.1 for 5×5), so that the kernel
/// covers the bell curve well.
pub fn default_sigma(size: usize) -> f32 {
    0.3 * ((size as f32 - 1.0) * 0.5 - 1.0) + 0.8
}

/// The true Gaussian blur: a `size×size` kernel (odd `size`, centred) with
/// weights `exp(−(x² + y²) / (2σ²))` at offset `(x, y)` from the middle,
/// normalised to sum 1. Pixels near the middle weigh most, so it blurs
/// with fewer artefacts than the box blur. Returns `(1, size, size)`.
///
/// The notebook fills its "Gaussian" kernel with `torch.normal(0, 1, …)`:
/// random noise drawn from a normal distribution, not a Gaussian-shaped
/// kernel, so its output is a random filter rather than a blur. This is the
/// kernel its text describes. (PyTorch has no built-in; torchvision's
/// `transforms.GaussianBlur(size, sigma)` uses the same formula.)
///
/// An error if `size` is even or 0, or `sigma` is not a positive finite
/// number. See [`default_sigma`] for a good `sigma`.
///
/// ```
/// use static_nn::tutorial::kernels::gaussian_blur;
/// let k = gaussian_blur(5, 1.0)?;
/// assert!((k.data().iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// assert!(k.at(0, 2, 2) > k.at(0, 2, 3) && k.at(0, 2, 3) > k.at(0, 2, 4));
/// assert!(gaussian_blur(4, 1.0).is_err());
/// # Ok::<(), static_nn::tutorial::TutorialError>(())
/// ```
pub fn gaussian_blur(size: usize, sigma: f32) -> Result<Chw, TutorialError> {
    if size.is_multiple_of(2) {
        return Err(TutorialError::Kernel(format!(
            "the Gaussian kernel size must be odd (it has a middle pixel), not {size}"
        )));
    }
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(TutorialError::Kernel(format!(
            "sigma must be a positive number, not {sigma}"
        )));
    }
    let r = (size / 2) as f32;
    let mut data: Vec<f32> = (0..size * size)
        .map(|n| {
            let (y, x) = ((n / size) as f32 - r, (n % size) as f32 - r);
            (-(x * x + y * y) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let total: f32 = data.iter().sum();
    data.iter_mut().for_each(|v| *v /= total);
    Chw::new(1, size, size, data)
}

/// The edge strength of each channel: `√(gx² + gy²)` with `gx`, `gy` the
/// [`SOBEL_X`] / [`SOBEL_Y`] cross-correlations (valid, so `(C, H, W)` →
/// `(C, H − 2, W − 2)`). Large where the image changes in any direction.
///
/// An error if the image is smaller than 3×3.
pub fn sobel_magnitude(img: &Chw) -> Result<Chw, TutorialError> {
    let (c, _, _) = img.shape();
    let (kx, ky) = (sobel_x(), sobel_y());
    let channels = (0..c)
        .map(|ch| {
            let plane = img.channel(ch)?;
            let gx = corr2d(&plane, &kx)?;
            let gy = corr2d(&plane, &ky)?;
            let (_, h, w) = gx.shape();
            let mag = gx
                .data()
                .iter()
                .zip(gy.data())
                .map(|(a, b)| (a * a + b * b).sqrt())
                .collect();
            Chw::new(1, h, w, mag)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Chw::concat(&channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tutorial::tensors::edge_image;

    #[test]
    fn edge_kernel_on_the_notebook_image() {
        let out = corr2d(&Chw::from_array(edge_image()), &edge()).unwrap();
        assert_eq!(out.shape(), (1, 6, 7));
        for i in 0..6 {
            let row: Vec<f32> = (0..7).map(|j| out.at(0, i, j)).collect();
            assert_eq!(row, [0., -1., 0., 0., 0., 1., 0.]);
        }
    }

    #[test]
    fn sobel_finds_vertical_edges_only() {
        let img = Chw::from_array(edge_image());
        let gx = corr2d(&img, &sobel_x()).unwrap();
        let gy = corr2d(&img, &sobel_y()).unwrap();
        assert!(gy.data().iter().all(|&v| v == 0.0));
        assert_eq!(gx.at(0, 0, 0), 4.0);
        assert_eq!(gx.at(0, 0, 4), -4.0);
        let mag = sobel_magnitude(&img).unwrap();
        assert_eq!(mag.shape(), (1, 4, 6));
        assert_eq!(mag.at(0, 1, 4), 4.0);
        assert!(sobel_magnitude(&Chw::zeros(1, 2, 5)).is_err());
    }

    #[test]
    fn blurs_keep_a_flat_image_flat() {
        let flat = Chw::new(1, 9, 9, vec![0.5; 81]).unwrap();
        for k in [
            box_blur(5).unwrap(),
            gaussian_blur(5, default_sigma(5)).unwrap(),
        ] {
            let out = corr2d(&flat, &k).unwrap();
            assert!(out.data().iter().all(|v| (v - 0.5).abs() < 1e-6));
        }
        assert!(box_blur(0).is_err());
        assert!(gaussian_blur(3, 0.0).is_err());
        assert!(gaussian_blur(3, f32::NAN).is_err());
        assert_eq!(gaussian_blur(1, 1.0).unwrap().data(), &[1.0]);
        assert!((default_sigma(5) - 1.1).abs() < 1e-6);
    }

    #[test]
    fn gaussian_is_symmetric() {
        let k = gaussian_blur(7, 1.5).unwrap();
        for i in 0..7 {
            for j in 0..7 {
                assert_eq!(k.at(0, i, j), k.at(0, j, i));
                assert_eq!(k.at(0, i, j), k.at(0, 6 - i, j));
            }
        }
    }
}
