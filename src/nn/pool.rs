//! 2-D max and average pooling layers.
use crate::ops::{Pool2DKernel, Pool2DOp, PoolKind};
use crate::shapes::checks::{AvgPool2DLayer, MaxPool2DLayer, PoolPaddingFits, ToVerdict};
use crate::shapes::{ConvOut, ConvOutSize, ToTypenum};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;
use typenum::{IsLessOrEqual, Prod, U2};

macro_rules! pool_layer {
    ($(#[$doc:meta])* $name:ident, $layer:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name<const K: usize, const S: usize = K, const P: usize = 0>;

        impl<const K: usize, const S: usize, const P: usize> ZeroSizedModule for $name<K, S, P> {}
        impl<const K: usize, const S: usize, const P: usize> NonMutableModule for $name<K, S, P> {}
        impl<const K: usize, const S: usize, const P: usize, D: Device<E>, E: Dtype>
            super::BuildOnDevice<D, E> for $name<K, S, P>
        {
            type Built = Self;
        }
        super::no_input_grad::no_input_grad_untraced!([const K: usize, const S: usize, const P: usize,] $name<K, S, P>);

        impl<const K: usize, const S: usize, const P: usize, const C: usize, const H: usize, const W: usize, B: Dim, E: Dtype, D: Pool2DKernel<E>, T: Tape<E, D>>
            Module<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>> for $name<K, S, P>
        where
            Const<H>: ConvOut<K, S, P, $layer>,
            Const<W>: ConvOut<K, S, P, $layer>,
            (): PoolPadding<$layer, K, P>,
        {
            type Output = Tensor<(B, Const<C>, ConvOutSize<H, K, S, P, $layer>, ConvOutSize<W, K, S, P, $layer>), E, D, T>;
            type Error = D::Err;

            fn try_forward(&self, x: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>) -> Result<Self::Output, D::Err> {
                let batch = x.shape().0;
                let op = op::<K, S, P>($kind, batch.size() * C, H, W);
                D::try_pool2d(op, x, (batch, Const, Default::default(), Default::default()))
            }
        }

        impl<const K: usize, const S: usize, const P: usize, const C: usize, const H: usize, const W: usize, E: Dtype, D: Pool2DKernel<E>, T: Tape<E, D>>
            Module<Tensor<(Const<C>, Const<H>, Const<W>), E, D, T>> for $name<K, S, P>
        where
            Const<H>: ConvOut<K, S, P, $layer>,
            Const<W>: ConvOut<K, S, P, $layer>,
            (): PoolPadding<$layer, K, P>,
        {
            type Output = Tensor<(Const<C>, ConvOutSize<H, K, S, P, $layer>, ConvOutSize<W, K, S, P, $layer>), E, D, T>;
            type Error = D::Err;

            fn try_forward(&self, x: Tensor<(Const<C>, Const<H>, Const<W>), E, D, T>) -> Result<Self::Output, D::Err> {
                let op = op::<K, S, P>($kind, C, H, W);
                D::try_pool2d(op, x, (Const, Default::default(), Default::default()))
            }
        }
    };
}

pool_layer!(
    /// 2-D max pooling over `K×K` windows with stride `S` (default `K`) and
    /// padding `P` (default 0; padding counts as −∞).
    ///
    /// PyTorch: `nn.MaxPool2d(kernel_size=K, stride=S, padding=P)`.
    ///
    /// # Shapes
    /// - input: `(B, C, H, W)` or `(C, H, W)`;
    /// - output: `(B, C, H', W')` with `H' = (H + 2P − K) / S + 1`.
    ///
    /// ```
    /// use static_nn::prelude::*;
    /// let dev = Cpu::default();
    /// let x = dev.tensor([[[0.0f32, 1., 2.], [3., 4., 5.], [6., 7., 8.]]]);
    /// let y: Tensor<Rank3<1, 2, 2>, f32, _> = MaxPool2D::<2, 1>.forward(x);
    /// assert_eq!(y.array(), [[[4.0, 5.0], [7.0, 8.0]]]);
    /// ```
    MaxPool2D, MaxPool2DLayer, PoolKind::Max
);
crate::nn::infer::infer_via_module!(
    [const K: usize, const S: usize, const P: usize,]
    MaxPool2D<K, S, P>, MaxPool2D<K, S, P>,
    format!("MaxPool2d(kernel_size={K}, stride={S}, padding={P})"),
    0
);

pool_layer!(
    /// 2-D average pooling over `K×K` windows with stride `S` (default `K`)
    /// and padding `P` (default 0; padding counts as 0 and stays in the
    /// divisor, PyTorch's `count_include_pad=True`).
    ///
    /// PyTorch: `nn.AvgPool2d(kernel_size=K, stride=S, padding=P)`.
    ///
    /// # Shapes
    /// - input: `(B, C, H, W)` or `(C, H, W)`;
    /// - output: `(B, C, H', W')` with `H' = (H + 2P − K) / S + 1`.
    ///
    /// ```
    /// use static_nn::prelude::*;
    /// let dev = Cpu::default();
    /// let x = dev.tensor([[[0.0f32, 1., 2.], [3., 4., 5.], [6., 7., 8.]]]);
    /// let y: Tensor<Rank3<1, 2, 2>, f32, _> = AvgPool2D::<2, 1>.forward(x);
    /// assert_eq!(y.array(), [[[2.0, 3.0], [5.0, 6.0]]]);
    /// ```
    AvgPool2D, AvgPool2DLayer, PoolKind::Avg
);
crate::nn::infer::infer_via_module!(
    [const K: usize, const S: usize, const P: usize,]
    AvgPool2D<K, S, P>, AvgPool2D<K, S, P>,
    format!("AvgPool2d(kernel_size={K}, stride={S}, padding={P})"),
    0
);

fn op<const K: usize, const S: usize, const P: usize>(
    kind: PoolKind,
    planes: usize,
    h: usize,
    w: usize,
) -> Pool2DOp {
    let size = |n| crate::shapes::try_conv_output_size(n, K, S, P).unwrap_or(0);
    Pool2DOp {
        kind,
        planes,
        h_in: h,
        w_in: w,
        kernel: K,
        stride: S,
        padding: P,
        h_out: size(h),
        w_out: size(w),
    }
}

/// `2·P ≤ K`, checked with typenum and reported by
/// [`PoolPaddingFits`](crate::shapes::checks::PoolPaddingFits).
pub trait PoolPadding<Layer, const K: usize, const P: usize> {}
impl<Layer, const K: usize, const P: usize> PoolPadding<Layer, K, P> for ()
where
    Const<K>: ToTypenum,
    Const<P>: ToTypenum,
    <Const<P> as ToTypenum>::Output: core::ops::Mul<U2>,
    Prod<<Const<P> as ToTypenum>::Output, U2>: IsLessOrEqual<<Const<K> as ToTypenum>::Output>,
    <Prod<<Const<P> as ToTypenum>::Output, U2> as IsLessOrEqual<<Const<K> as ToTypenum>::Output>>::Output:
        ToVerdict,
    <<Prod<<Const<P> as ToTypenum>::Output, U2> as IsLessOrEqual<<Const<K> as ToTypenum>::Output>>::Output as ToVerdict>::Output:
        PoolPaddingFits<Layer, K, P>,
{
}
