//! Cross-correlation and pooling by hand: plain loops, written to be read.
//!
//! These are the notebook's double loops over the output positions. They are
//! slow and exist to explain the layers: [`Conv2D`](crate::nn::Conv2D),
//! [`MaxPool2D`](crate::nn::MaxPool2D) and [`AvgPool2D`](crate::nn::AvgPool2D)
//! compute the same values, vectorised (the tests check both on random
//! inputs). Every function takes and returns runtime-sized [`Chw`] images
//! and reports sizes that do not fit as a [`TutorialError`].
//!
//! The output size along each axis is `(input + 2·padding − kernel) / stride + 1`
//! ([`conv_output_size`](crate::shapes::conv_output_size)).
use super::chw::Chw;
use super::error::TutorialError;
pub use crate::ops::PoolKind;
use crate::shapes::try_conv_output_size;

/// The output height and width of a `kh×kw` window over an `h×w` input.
fn out_size(
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    stride: usize,
    padding: usize,
) -> Result<(usize, usize), TutorialError> {
    if stride == 0 {
        return Err(TutorialError::Shape("the stride must be at least 1".into()));
    }
    match (
        try_conv_output_size(h, kh, stride, padding),
        try_conv_output_size(w, kw, stride, padding),
    ) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err(TutorialError::Shape(format!(
            "a {kh}×{kw} kernel does not fit a {h}×{w} image with padding {padding}"
        ))),
    }
}

/// The value at `(c, i, j)` of `img` seen with `padding` zeros around it
/// (`i`, `j` index the padded image).
fn padded_at(img: &Chw, c: usize, i: usize, j: usize, padding: usize) -> Option<f32> {
    img.get(c, i.checked_sub(padding)?, j.checked_sub(padding)?)
}

/// Cross-correlation of an image with a kernel, stride 1, no padding:
/// the kernel slides over every position where it fits, and each output
/// value is the sum of the element-wise products.
///
/// The image is `(C, H, W)` and the kernel `(C, KH, KW)` with the same `C`;
/// each channel is correlated with its own kernel slice and the results are
/// summed, giving **one** output channel `(1, H − KH + 1, W − KW + 1)`
/// (the notebook's "Multiple Channels").
///
/// PyTorch: `F.conv2d(img.unsqueeze(0), kernel.unsqueeze(0)).squeeze(0)`.
///
/// ```
/// use static_nn::tutorial::{reference::corr2d, Chw};
/// let img = Chw::from_array([[[0.0, 1., 2.], [3., 4., 5.], [6., 7., 8.]]]);
/// let k = Chw::from_array([[[0.0, 1.], [2., 3.]]]);
/// assert_eq!(corr2d(&img, &k)?.data(), &[19.0, 25.0, 37.0, 43.0]);
/// # Ok::<(), static_nn::tutorial::TutorialError>(())
/// ```
pub fn corr2d(img: &Chw, kernel: &Chw) -> Result<Chw, TutorialError> {
    corr2d_with(img, kernel, 1, 0)
}

/// [`corr2d`] with a stride and zero padding: the kernel jumps `stride`
/// pixels at a time over the image with `padding` zeros on every side.
///
/// PyTorch: `F.conv2d(img.unsqueeze(0), kernel.unsqueeze(0), stride=stride, padding=padding)`.
///
/// ```
/// use static_nn::tutorial::{reference::corr2d_with, Chw};
/// let img = Chw::from_array([[[1.0, 2., 3.], [4., 5., 6.], [7., 8., 9.]]]);
/// let ones = Chw::from_array([[[1.0, 1.], [1., 1.]]]);
/// // the notebook's strided exercise
/// assert_eq!(corr2d_with(&img, &ones, 2, 1)?.data(), &[1.0, 5.0, 11.0, 28.0]);
/// # Ok::<(), static_nn::tutorial::TutorialError>(())
/// ```
pub fn corr2d_with(
    img: &Chw,
    kernel: &Chw,
    stride: usize,
    padding: usize,
) -> Result<Chw, TutorialError> {
    let (c, h, w) = img.shape();
    let (kc, kh, kw) = kernel.shape();
    if kc != c {
        return Err(TutorialError::Shape(format!(
            "the kernel has {kc} channels, the image {c}"
        )));
    }
    let (oh, ow) = out_size((h, w), (kh, kw), stride, padding)?;
    let (x, k) = (img.data(), kernel.data());
    let mut out = Chw::zeros(1, oh, ow);
    let data = out.data_mut();
    for i in 0..oh {
        for j in 0..ow {
            let mut sum = 0.0;
            for ch in 0..c {
                for a in 0..kh {
                    // the image row under kernel row `a`; none in the padding
                    let Some(y) = (i * stride + a).checked_sub(padding).filter(|&y| y < h) else {
                        continue;
                    };
                    for b in 0..kw {
                        let Some(xx) = (j * stride + b).checked_sub(padding).filter(|&v| v < w)
                        else {
                            continue;
                        };
                        sum += x[(ch * h + y) * w + xx] * k[(ch * kh + a) * kw + b];
                    }
                }
            }
            data[i * ow + j] = sum;
        }
    }
    Ok(out)
}

/// Several output channels: the image correlated with each kernel (each
/// `(C, KH, KW)`, summing over channels as in [`corr2d`]) and the results
/// stacked along the channel axis, giving `(kernels.len(), H', W')`.
///
/// PyTorch: `torch.cat([F.conv2d(img, k) for k in kernels], dim=0)`, which
/// equals one `F.conv2d` with all kernels stacked as `(OUT, C, KH, KW)`.
pub fn corr2d_multi(img: &Chw, kernels: &[Chw]) -> Result<Chw, TutorialError> {
    let outs = kernels
        .iter()
        .map(|k| corr2d(img, k))
        .collect::<Result<Vec<_>, _>>()?;
    Chw::concat(&outs)
}

/// Zero padding: `padding` rows and columns of zeros on every side of every
/// channel, `(C, H, W)` → `(C, H + 2P, W + 2P)`.
///
/// PyTorch: `F.pad(img, (P, P, P, P))` (left, right, top, bottom). The typed
/// version, with the output size in the type, is [`pad`](super::pad()).
///
/// ```
/// use static_nn::tutorial::{reference::pad_ref, Chw};
/// let p = pad_ref(&Chw::from_array([[[5.0]]]), 1);
/// assert_eq!(p.data(), &[0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
/// ```
pub fn pad_ref(img: &Chw, padding: usize) -> Chw {
    let (c, h, w) = img.shape();
    let (ph, pw) = (h + 2 * padding, w + 2 * padding);
    let mut out = Chw::zeros(c, ph, pw);
    let data = out.data_mut();
    for ch in 0..c {
        for i in 0..ph {
            for j in 0..pw {
                if let Some(x) = padded_at(img, ch, i, j, padding) {
                    data[(ch * ph + i) * pw + j] = x;
                }
            }
        }
    }
    out
}

/// Pooling by hand: a `kernel×kernel` window slides with `stride` over each
/// channel **separately** (channels are kept, not summed), and each output
/// value is the window's max or mean. `(C, H, W)` → `(C, H', W')`.
///
/// PyTorch: `nn.MaxPool2d(kernel, stride, padding)(img)` or
/// `nn.AvgPool2d(...)`. As in PyTorch, `padding` must be at most
/// `kernel / 2`.
///
/// ```
/// use static_nn::tutorial::{reference::{pool2d_ref, PoolKind}, Chw};
/// let img = Chw::from_array([[[0.0, 1., 2.], [3., 4., 5.], [6., 7., 8.]]]);
/// assert_eq!(pool2d_ref(&img, 2, 1, 0, PoolKind::Max)?.data(), &[4.0, 5.0, 7.0, 8.0]);
/// assert_eq!(pool2d_ref(&img, 2, 1, 0, PoolKind::Avg)?.data(), &[2.0, 3.0, 5.0, 6.0]);
/// # Ok::<(), static_nn::tutorial::TutorialError>(())
/// ```
pub fn pool2d_ref(
    img: &Chw,
    kernel: usize,
    stride: usize,
    padding: usize,
    op: PoolKind,
) -> Result<Chw, TutorialError> {
    if 2 * padding > kernel {
        return Err(TutorialError::Shape(format!(
            "pooling padding {padding} is more than half the kernel size {kernel}"
        )));
    }
    let (c, h, w) = img.shape();
    let (oh, ow) = out_size((h, w), (kernel, kernel), stride, padding)?;
    let mut out = Chw::zeros(c, oh, ow);
    let data = out.data_mut();
    for ch in 0..c {
        for i in 0..oh {
            for j in 0..ow {
                let mut max = f32::NEG_INFINITY;
                let mut sum = 0.0;
                for a in 0..kernel {
                    for b in 0..kernel {
                        let x = padded_at(img, ch, i * stride + a, j * stride + b, padding);
                        if let Some(x) = x {
                            max = max.max(x);
                            sum += x;
                        }
                    }
                }
                data[(ch * oh + i) * ow + j] = match op {
                    PoolKind::Max => max,
                    PoolKind::Avg => sum / (kernel * kernel) as f32,
                };
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arange(c: usize, h: usize, w: usize, start: f32) -> Chw {
        let n = c * h * w;
        Chw::new(c, h, w, (0..n).map(|i| start + i as f32).collect()).unwrap()
    }

    #[test]
    fn notebook_padding_and_stride() {
        let img = arange(1, 3, 3, 1.0);
        let ones = Chw::new(1, 2, 2, vec![1.0; 4]).unwrap();
        let manual = corr2d(&pad_ref(&img, 1), &ones).unwrap();
        assert_eq!(manual, corr2d_with(&img, &ones, 1, 1).unwrap());
        assert_eq!(
            manual.data(),
            &[1., 3., 5., 3., 5., 12., 16., 9., 11., 24., 28., 15., 7., 15., 17., 9.]
        );
    }

    #[test]
    fn channel_sum_and_multi_out() {
        let img = Chw::concat(&[arange(1, 3, 3, 0.0), arange(1, 3, 3, 1.0)]).unwrap();
        let k = Chw::concat(&[arange(1, 2, 2, 0.0), arange(1, 2, 2, 1.0)]).unwrap();
        assert_eq!(corr2d(&img, &k).unwrap().data(), &[56., 72., 104., 120.]);
        let ks: Vec<Chw> = (0..3).map(|i| k.map(|v| v + i as f32)).collect();
        let out = corr2d_multi(&img, &ks).unwrap();
        assert_eq!(out.shape(), (3, 2, 2));
        assert_eq!(
            &out.data()[4..],
            &[76., 100., 148., 172., 96., 128., 192., 224.]
        );
    }

    #[test]
    fn bad_sizes_are_errors() {
        let img = arange(1, 3, 3, 0.0);
        assert!(corr2d(&img, &arange(1, 4, 1, 0.0)).is_err());
        assert!(corr2d(&img, &arange(2, 2, 2, 0.0)).is_err());
        assert!(corr2d_with(&img, &arange(1, 2, 2, 0.0), 0, 0).is_err());
        assert!(pool2d_ref(&img, 2, 1, 2, PoolKind::Max).is_err());
        assert!(pool2d_ref(&img, 4, 1, 0, PoolKind::Max).is_err());
        assert!(corr2d_multi(&img, &[]).is_err());
    }

    #[test]
    fn pooling_with_padding() {
        let img = arange(1, 2, 2, 1.0);
        let max = pool2d_ref(&img, 2, 2, 1, PoolKind::Max).unwrap();
        assert_eq!(max.data(), &[1., 2., 3., 4.]);
        let avg = pool2d_ref(&img, 2, 2, 1, PoolKind::Avg).unwrap();
        assert_eq!(avg.data(), &[0.25, 0.5, 0.75, 1.0]);
    }
}
