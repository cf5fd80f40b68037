//! Global and adaptive average pooling.
use super::infer::{push, InferShape, LayerRow};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// The mean of each channel: `(B, C, H, W)` → `(B, C)`, the usual head of a
/// residual network before its `Linear`.
///
/// PyTorch: `nn.AdaptiveAvgPool2d(1)` followed by `nn.Flatten()`
/// (`F.adaptive_avg_pool2d(x, 1).flatten(1)`); no parameters.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C)`, and `(C, H, W)` → `(C,)`.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let x = dev.tensor([[[[1.0f32, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]]]);
/// assert_eq!(GlobalAvgPool2D.forward(x).array(), [[2.5, 2.0]]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalAvgPool2D;

/// Average pooling to a fixed `OH × OW` output, whatever the input's size:
/// output cell `(i, j)` averages input rows `⌊i·H/OH⌋ .. ⌈(i+1)·H/OH⌉` and
/// the columns likewise, as PyTorch does.
///
/// PyTorch: `nn.AdaptiveAvgPool2d((OH, OW))`; no parameters.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, OH, OW)`, and `(C, H, W)` → `(C, OH, OW)`.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<2, 3, 7, 7>, f32, _> = dev.sample_normal();
/// let y: Tensor<Rank4<2, 3, 2, 2>, f32, _> = AdaptiveAvgPool2D::<2, 2>.forward(x);
/// # let _ = y;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AdaptiveAvgPool2D<const OH: usize, const OW: usize = OH>;

super::build::zero_sized_build!(GlobalAvgPool2D);
super::no_input_grad::no_input_grad_untraced!(
    [] GlobalAvgPool2D,
    [const OH: usize, const OW: usize,] AdaptiveAvgPool2D<OH, OW>,
);
impl ZeroSizedModule for GlobalAvgPool2D {}
impl NonMutableModule for GlobalAvgPool2D {}
impl<const OH: usize, const OW: usize> ZeroSizedModule for AdaptiveAvgPool2D<OH, OW> {}
impl<const OH: usize, const OW: usize> NonMutableModule for AdaptiveAvgPool2D<OH, OW> {}
impl<const OH: usize, const OW: usize, D: Device<E>, E: Dtype> super::BuildOnDevice<D, E>
    for AdaptiveAvgPool2D<OH, OW>
{
    type Built = Self;
}

impl<B: Dim, C: Dim, H: Dim, W: Dim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, C, H, W), E, D, T>> for GlobalAvgPool2D
{
    type Output = Tensor<(B, C), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        x.try_mean::<_, Axes2<2, 3>>()
    }
}

impl<C: Dim, H: Dim, W: Dim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(C, H, W), E, D, T>> for GlobalAvgPool2D
{
    type Output = Tensor<(C,), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        x.try_mean::<_, Axes2<1, 2>>()
    }
}

/// The `(n, out)` averaging matrix of adaptive pooling along one axis.
fn axis_weights(n: usize, out: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * out];
    for o in 0..out {
        let (start, end) = (o * n / out, ((o + 1) * n).div_ceil(out));
        for i in start..end {
            m[i * out + o] = 1.0 / (end - start) as f64;
        }
    }
    m
}

/// Adaptive pooling of `rows` planes of `h × w` values to `oh × ow`: one
/// matrix product with the `(h·w, oh·ow)` averaging matrix.
fn adaptive<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<(usize, usize), E, D, T>,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
) -> Result<Tensor<(usize, usize), E, D, T>, D::Err> {
    let (mh, mw) = (axis_weights(h, oh), axis_weights(w, ow));
    let mut m = Vec::with_capacity(h * w * oh * ow);
    for y in 0..h {
        for x in 0..w {
            for i in 0..oh {
                for j in 0..ow {
                    let v = mh[y * oh + i] * mw[x * ow + j];
                    m.push(E::from_f64(v).unwrap_or_default());
                }
            }
        }
    }
    let m = x.device().try_tensor_from_vec(m, (h * w, oh * ow))?;
    x.try_matmul(m)
}

impl<
        const OH: usize,
        const OW: usize,
        B: Dim,
        C: Dim,
        H: Dim,
        W: Dim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, C, H, W), E, D, T>> for AdaptiveAvgPool2D<OH, OW>
{
    type Output = Tensor<(B, C, Const<OH>, Const<OW>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let (b, c, h, w) = *x.shape();
        let rows = x.try_reshape_like(&(b.size() * c.size(), h.size() * w.size()))?;
        adaptive(rows, (h.size(), w.size()), (OH, OW))?.try_reshape_like(&(b, c, Const, Const))
    }
}

impl<
        const OH: usize,
        const OW: usize,
        C: Dim,
        H: Dim,
        W: Dim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<(C, H, W), E, D, T>> for AdaptiveAvgPool2D<OH, OW>
{
    type Output = Tensor<(C, Const<OH>, Const<OW>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let (c, h, w) = *x.shape();
        let rows = x.try_reshape_like(&(c.size(), h.size() * w.size()))?;
        adaptive(rows, (h.size(), w.size()), (OH, OW))?.try_reshape_like(&(c, Const, Const))
    }
}

impl<const C: usize, H: Dim, W: Dim> InferShape<(Const<C>, H, W)> for GlobalAvgPool2D
where
    (Const<C>, H, W): Shape,
{
    type Concrete = Self;
    type Out = (Const<C>,);
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        push::<Self::Out>(
            prefix,
            "AdaptiveAvgPool2d(output_size=1) + Flatten".into(),
            0,
            rows,
        );
    }
}

impl<const OH: usize, const OW: usize, const C: usize, H: Dim, W: Dim> InferShape<(Const<C>, H, W)>
    for AdaptiveAvgPool2D<OH, OW>
where
    (Const<C>, H, W): Shape,
{
    type Concrete = Self;
    type Out = (Const<C>, Const<OH>, Const<OW>);
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        let layer = format!("AdaptiveAvgPool2d(output_size=({OH}, {OW}))");
        push::<Self::Out>(prefix, layer, 0, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_windows_follow_pytorch() {
        // 5 → 3: rows [0, 2), [1, 4), [3, 5)
        let m = axis_weights(5, 3);
        let col = |o: usize| (0..5).map(|i| m[i * 3 + o]).collect::<Vec<_>>();
        assert_eq!(col(0), [0.5, 0.5, 0.0, 0.0, 0.0]);
        assert_eq!(col(1), [0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0]);
        assert_eq!(col(2), [0.0, 0.0, 0.0, 0.5, 0.5]);
    }

    #[test]
    fn adaptive_to_one_is_the_global_mean() {
        let dev = Cpu::default();
        let x: Tensor<Rank4<2, 3, 7, 5>, f32, _> = dev.sample_normal();
        let a = AdaptiveAvgPool2D::<1>.forward(x.clone()).as_vec();
        let g = GlobalAvgPool2D.forward(x).as_vec();
        for (a, g) in a.iter().zip(&g) {
            assert!((a - g).abs() < 1e-5, "{a} vs {g}");
        }
    }
}
