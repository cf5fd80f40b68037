//! 2-D max and average pooling layers.
use crate::ops::{Pool2DKernel, Pool2DOp, PoolKind, Workspace};
use crate::shapes::checks::{AvgPool2DLayer, MaxPool2DLayer, PoolPaddingFits, ToVerdict};
use crate::shapes::{ConvOut, ConvOutSize, ToTypenum};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;
use typenum::{IsLessOrEqual, Prod, U2};

/// The `Module` impls of one pooling type for `(B, C, H, W)` and `(C, H, W)`
/// inputs; `$ws` is an expression of type `&Workspace` for the kernel's
/// scratch, evaluated with `self` in scope.
macro_rules! pool_forward {
    ($name:ident, $layer:ident, $kind:expr, |$this:ident| $ws:expr) => {
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
                let $this = self;
                let batch = x.shape().0;
                let op = op::<K, S, P>($kind, batch.size() * C, H, W);
                D::try_pool2d(op, x, (batch, Const, Default::default(), Default::default()), $ws)
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
                let $this = self;
                let op = op::<K, S, P>($kind, C, H, W);
                D::try_pool2d(op, x, (Const, Default::default(), Default::default()), $ws)
            }
        }

        impl<const K: usize, const S: usize, const P: usize> NonMutableModule for $name<K, S, P> {}
        super::no_input_grad::no_input_grad_untraced!([const K: usize, const S: usize, const P: usize,] $name<K, S, P>);
    };
}

/// A pooling layer: the unit struct that names it in network types (and
/// runs on its own, with scratch memory of the call), and its built form,
/// which keeps a [`Workspace`] so that the input's copy reuses its memory
/// from one call to the next.
macro_rules! pool_layer {
    ($(#[$doc:meta])* $name:ident, $(#[$mdoc:meta])* $module:ident, $layer:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name<const K: usize, const S: usize = K, const P: usize = 0>;

        $(#[$mdoc])*
        #[derive(Clone, Debug, Default)]
        pub struct $module<const K: usize, const S: usize = K, const P: usize = 0> {
            workspace: Workspace,
        }

        impl<const K: usize, const S: usize, const P: usize> $module<K, S, P> {
            /// The layer's scratch memory (see [`Workspace`]).
            pub fn workspace(&self) -> &Workspace {
                &self.workspace
            }
        }

        impl<const K: usize, const S: usize, const P: usize> ZeroSizedModule for $name<K, S, P> {}
        impl<const K: usize, const S: usize, const P: usize> ZeroSizedModule for $module<K, S, P> {}
        impl<const K: usize, const S: usize, const P: usize, D: Device<E>, E: Dtype>
            super::BuildOnDevice<D, E> for $name<K, S, P>
        {
            type Built = $module<K, S, P>;
        }
        impl<const K: usize, const S: usize, const P: usize, D: Device<E>, E: Dtype>
            super::BuildOnDevice<D, E> for $module<K, S, P>
        {
            type Built = Self;
        }
        pool_forward!($name, $layer, $kind, |_this| &Workspace::default());
        pool_forward!($module, $layer, $kind, |this| &this.workspace);
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
    /// `build_module` builds it into [`MaxPool2DModule`], which keeps its
    /// scratch memory between calls; the unit struct also runs on its own.
    ///
    /// ```
    /// use static_nn::prelude::*;
    /// let dev = Cpu::default();
    /// let x = dev.tensor([[[0.0f32, 1., 2.], [3., 4., 5.], [6., 7., 8.]]]);
    /// let y: Tensor<Rank3<1, 2, 2>, f32, _> = MaxPool2D::<2, 1>.forward(x);
    /// assert_eq!(y.array(), [[[4.0, 5.0], [7.0, 8.0]]]);
    /// ```
    MaxPool2D,
    /// [`MaxPool2D`] built by `build_module`: the same pooling, with a
    /// [`Workspace`] that keeps the CPU kernel's scratch memory (the copy of
    /// the input) from one call to the next, as the convolutions do.
    ///
    /// PyTorch: `nn.MaxPool2d`. Shapes as [`MaxPool2D`].
    ///
    /// ```
    /// use static_nn::nn::MaxPool2DModule;
    /// use static_nn::prelude::*;
    /// let dev = Cpu::default();
    /// let pool: MaxPool2DModule<2> = dev.build_module::<MaxPool2D<2>, f32>();
    /// let y: Tensor<Rank4<8, 3, 14, 14>, f32, _> = pool.forward(dev.zeros::<Rank4<8, 3, 28, 28>>());
    /// assert_eq!(pool.workspace().idle_buffers(), 1);
    /// # let _ = y;
    /// ```
    MaxPool2DModule, MaxPool2DLayer, PoolKind::Max
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
    /// `build_module` builds it into [`AvgPool2DModule`], which keeps its
    /// scratch memory between calls; the unit struct also runs on its own.
    ///
    /// ```
    /// use static_nn::prelude::*;
    /// let dev = Cpu::default();
    /// let x = dev.tensor([[[0.0f32, 1., 2.], [3., 4., 5.], [6., 7., 8.]]]);
    /// let y: Tensor<Rank3<1, 2, 2>, f32, _> = AvgPool2D::<2, 1>.forward(x);
    /// assert_eq!(y.array(), [[[2.0, 3.0], [5.0, 6.0]]]);
    /// ```
    AvgPool2D,
    /// [`AvgPool2D`] built by `build_module`: the same pooling, with a
    /// [`Workspace`] that keeps the CPU kernel's scratch memory (the copy of
    /// the input) from one call to the next, as the convolutions do.
    ///
    /// PyTorch: `nn.AvgPool2d`. Shapes as [`AvgPool2D`].
    ///
    /// ```
    /// use static_nn::nn::AvgPool2DModule;
    /// use static_nn::prelude::*;
    /// let dev = Cpu::default();
    /// let pool: AvgPool2DModule<2> = dev.build_module::<AvgPool2D<2>, f32>();
    /// let y: Tensor<Rank4<8, 3, 14, 14>, f32, _> = pool.forward(dev.zeros::<Rank4<8, 3, 28, 28>>());
    /// assert_eq!(pool.workspace().idle_buffers(), 1);
    /// # let _ = y;
    /// ```
    AvgPool2DModule, AvgPool2DLayer, PoolKind::Avg
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
