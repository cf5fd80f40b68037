//! 2-D convolution layers.
use super::build::BuildOnDevice;
use super::infer::{InferShape, LayerRow};
use super::NoInputGrad;
use crate::ops::{Conv2DKernel, Conv2DOp, Workspace};
use crate::shapes::checks::{Conv2DChannels, Conv2DLayer};
use crate::shapes::{ConvOut, ConvOutSize};
use dfdx::nn::tensor_collection::ModuleVisitor;
use dfdx::nn::{Module, NonMutableModule, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use num_traits::Float;
use rand_distr::{uniform::SampleUniform, Uniform};

/// A 2-D convolution with a square `K×K` kernel and a bias:
/// `IN` input channels, `OUT` output channels, stride `S`, zero padding `P`.
/// It is [`Conv2DRect<IN, OUT, K, K, S, P>`](Conv2DRect).
/// `Conv2D<IN, OUT, K, S, P, false>` has no bias, the usual choice before a
/// [`BatchNorm2D`](super::BatchNorm2D).
///
/// PyTorch: `nn.Conv2d(IN, OUT, kernel_size=K, stride=S, padding=P,
/// bias=BIAS)`; the weights are initialised as PyTorch does (uniform in
/// ±1/√(IN·K·K)). Parameters: `weight` `(OUT, IN, K, K)` and, with a bias,
/// `bias` `(OUT,)`.
///
/// # Shapes
/// - input: `(B, IN, H, W)` with `B` a `Const` or a runtime `usize`, or one
///   image `(IN, H, W)`;
/// - output: `(B, OUT, H', W')` (or `(OUT, H', W')`) with
///   `H' = (H + 2P − K) / S + 1` computed at compile time
///   ([`conv_output_size`](crate::shapes::conv_output_size)).
///
/// A wrong channel count or a kernel larger than the padded input does not
/// compile.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let conv = dev.build_module::<Conv2D<1, 6, 5, 1, 2>, f32>();
/// let y: Tensor<Rank4<8, 6, 28, 28>, f32, _> = conv.forward(dev.zeros::<Rank4<8, 1, 28, 28>>());
/// # let _ = y;
/// ```
pub type Conv2D<
    const IN: usize,
    const OUT: usize,
    const K: usize,
    const S: usize = 1,
    const P: usize = 0,
    const BIAS: bool = true,
> = Conv2DRect<IN, OUT, K, K, S, P, BIAS>;

/// A 2-D convolution with a rectangular `KH×KW` kernel, like the notebook's
/// 1×2 edge kernel. [`Conv2D`] is the square case.
///
/// PyTorch: `nn.Conv2d(IN, OUT, kernel_size=(KH, KW), stride=S, padding=P)`.
///
/// # Shapes
/// - input: `(B, IN, H, W)` or `(IN, H, W)`;
/// - output: `(B, OUT, H', W')` with `H' = (H + 2P − KH) / S + 1` and
///   `W' = (W + 2P − KW) / S + 1`.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let conv = dev.build_module::<Conv2DRect<1, 1, 1, 2>, f32>();
/// let y: Tensor<Rank3<1, 6, 7>, f32, _> = conv.forward(dev.zeros::<Rank3<1, 6, 8>>());
/// # let _ = y;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Conv2DRect<
    const IN: usize,
    const OUT: usize,
    const KH: usize,
    const KW: usize,
    const S: usize = 1,
    const P: usize = 0,
    const BIAS: bool = true,
>;

/// A convolution whose input channel count is taken from the layer before
/// it at compile time: `OUT` output channels, square `K×K` kernel, stride
/// `S`, padding `P`. It is [`LazyConv2DRect<OUT, K, K, S, P>`](LazyConv2DRect).
///
/// PyTorch: `nn.LazyConv2d(OUT, kernel_size=K, stride=S, padding=P)`, but
/// resolved when the program is compiled, not at the first forward pass.
/// Build it through [`Inferred`](super::Inferred).
///
/// # Shapes
/// As [`Conv2D<C, OUT, K, S, P>`](Conv2D) for an input with `C` channels.
pub type LazyConv2D<
    const OUT: usize,
    const K: usize,
    const S: usize = 1,
    const P: usize = 0,
    const BIAS: bool = true,
> = LazyConv2DRect<OUT, K, K, S, P, BIAS>;

/// [`LazyConv2D`] with a rectangular `KH×KW` kernel (the notebook's learned
/// 1×2 kernel is a `LazyConv2DRect<1, 1, 2>`).
///
/// PyTorch: `nn.LazyConv2d(OUT, kernel_size=(KH, KW), stride=S, padding=P)`.
///
/// # Shapes
/// As [`Conv2DRect<C, OUT, KH, KW, S, P>`](Conv2DRect).
#[derive(Clone, Copy, Debug, Default)]
pub struct LazyConv2DRect<
    const OUT: usize,
    const KH: usize,
    const KW: usize,
    const S: usize = 1,
    const P: usize = 0,
    const BIAS: bool = true,
>;

/// A built 2-D convolution: the parameters of [`Conv2DRect`] (and so of [`Conv2D`]).
///
/// Tensor names (as PyTorch's): `weight` `(OUT, IN, KH, KW)` and, when
/// `BIAS`, `bias` `(OUT,)`.
#[derive(Clone, Debug)]
pub struct Conv2DModule<
    const IN: usize,
    const OUT: usize,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const P: usize,
    E: Dtype,
    D: Storage<E>,
    const BIAS: bool = true,
> {
    /// Kernels, `(OUT, IN, KH, KW)`.
    pub weight: Tensor<Rank4<OUT, IN, KH, KW>, E, D>,
    /// Bias, `(OUT,)`: `Some` exactly when `BIAS` (a built module always
    /// has it then; `None` there is an error at the forward pass).
    pub bias: Option<Tensor<Rank1<OUT>, E, D>>,
    /// Scratch memory of the CPU kernel, reused from step to step (no
    /// tensors; not saved).
    workspace: Workspace,
}

impl<
        const I: usize,
        const O: usize,
        const KH: usize,
        const KW: usize,
        const S: usize,
        const P: usize,
        const BIAS: bool,
        E,
        D,
    > BuildOnDevice<D, E> for Conv2DRect<I, O, KH, KW, S, P, BIAS>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type Built = Conv2DModule<I, O, KH, KW, S, P, E, D, BIAS>;
}

/// PyTorch's default init: uniform in ±1/√fan_in (kaiming-uniform with a=√5).
pub(crate) fn reset_fan_in<S: Shape, E: Dtype + Float + SampleUniform, D: Device<E>>(
    t: &mut Tensor<S, E, D>,
    fan_in: usize,
) -> Result<(), D::Err> {
    let b = E::ONE / E::from_usize(fan_in.max(1)).unwrap_or(E::ONE).sqrt();
    t.try_fill_with_distr(Uniform::new(-b, b))
}

impl<
        const I: usize,
        const O: usize,
        const KH: usize,
        const KW: usize,
        const S: usize,
        const P: usize,
        const BIAS: bool,
        E,
        D,
    > TensorCollection<E, D> for Conv2DModule<I, O, KH, KW, S, P, E, D, BIAS>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Conv2DModule<I, O, KH, KW, S, P, E2, D2, BIAS>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let weight = Self::tensor(
            "weight",
            |s| &s.weight,
            |s| &mut s.weight,
            TensorOptions::reset_with(|t| reset_fan_in(t, I * KH * KW)),
        );
        if !BIAS {
            return visitor.visit_fields((weight,), |(weight,)| Conv2DModule {
                weight,
                bias: None,
                workspace: Workspace::default(),
            });
        }
        visitor.visit_fields(
            (
                weight,
                Self::tensor(
                    "bias",
                    |s| {
                        s.bias
                            .as_ref()
                            .expect("a Conv2D with BIAS = true holds a bias")
                    },
                    |s| {
                        s.bias
                            .as_mut()
                            .expect("a Conv2D with BIAS = true holds a bias")
                    },
                    TensorOptions::reset_with(|t| reset_fan_in(t, I * KH * KW)),
                ),
            ),
            |(weight, bias)| Conv2DModule {
                weight,
                bias: Some(bias),
                workspace: Workspace::default(),
            },
        )
    }
}

impl<
        const I: usize,
        const O: usize,
        const KH: usize,
        const KW: usize,
        const S: usize,
        const P: usize,
        const BIAS: bool,
        E: Dtype,
        D: Storage<E>,
    > NonMutableModule for Conv2DModule<I, O, KH, KW, S, P, E, D, BIAS>
{
}

impl<
        const I: usize,
        const O: usize,
        const KH: usize,
        const KW: usize,
        const S: usize,
        const P: usize,
        const BIAS: bool,
        E: Dtype,
        D: Device<E>,
    > Conv2DModule<I, O, KH, KW, S, P, E, D, BIAS>
{
    /// A convolution holding the given kernels `(OUT, IN, KH, KW)` and a zero
    /// bias (none when `BIAS` is false), like PyTorch's `F.conv2d(x, kernel)`.
    ///
    /// ```
    /// use static_nn::nn::Conv2DModule;
    /// use static_nn::prelude::*;
    /// let dev = Cpu::default();
    /// let edge = Conv2DModule::<1, 1, 1, 2, 1, 0, f32, _>::from_kernel(&dev, [[[[1.0, -1.0]]]]);
    /// let y = edge.forward(dev.tensor([[[0.0f32, 1.0, 1.0]]]));
    /// assert_eq!(y.array(), [[[-1.0, 0.0]]]);
    /// ```
    pub fn from_kernel(dev: &D, kernel: [[[[E; KW]; KH]; I]; O]) -> Self {
        Self {
            weight: dev.tensor(kernel),
            bias: BIAS.then(|| dev.zeros()),
            workspace: Workspace::default(),
        }
    }
}

/// The output dim of this layer along an input dim of size `H` with kernel `K`.
type Out<const H: usize, const K: usize, const S: usize, const P: usize> =
    ConvOutSize<H, K, S, P, Conv2DLayer>;

/// `Module` of a convolution for one input type: `[generics]`, the input
/// type and the output's, how to get the tensor, the batch size and the
/// output shape from the input `x`, and the kernel's method.
macro_rules! conv_module {
    (
        [$($g:tt)*] $input:ty => $output:ty,
        |$x:ident| ($tensor:expr, $batch:expr, $out:expr),
        $kernel:ident
    ) => {
        impl<
                const I: usize,
                const O: usize,
                const KH: usize,
                const KW: usize,
                const S: usize,
                const P: usize,
                const BIAS: bool,
                const C: usize,
                const H: usize,
                const W: usize,
                $($g)*
                E: Dtype,
                D: Conv2DKernel<E>,
            > Module<$input> for Conv2DModule<I, O, KH, KW, S, P, E, D, BIAS>
        where
            (): Conv2DChannels<I, C>,
            Const<H>: ConvOut<KH, S, P, Conv2DLayer>,
            Const<W>: ConvOut<KW, S, P, Conv2DLayer>,
        {
            type Output = $output;
            type Error = D::Err;

            fn try_forward(&self, $x: $input) -> Result<Self::Output, D::Err> {
                // the sizes first: the tensor moves into the kernel
                let (op, out) = (self.op($batch, H, W), $out);
                D::$kernel(
                    op,
                    $tensor,
                    &self.weight,
                    self.bias.as_ref(),
                    out,
                    &self.workspace,
                )
            }
        }
    };
}

/// Output sizes `(Const<O>, H', W')` of this layer on an `H × W` input.
type OutPlane<
    const O: usize,
    const H: usize,
    const W: usize,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const P: usize,
> = (Const<O>, Out<H, KH, S, P>, Out<W, KW, S, P>);

// A batch `(B, C, H, W)`.
conv_module!(
    [B: Dim, T: Tape<E, D>,]
    Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>
        => Tensor<(B, Const<O>, Out<H, KH, S, P>, Out<W, KW, S, P>), E, D, T>,
    |x| (x, x.shape().0.size(), (x.shape().0, Const, Default::default(), Default::default())),
    try_conv2d
);
// One image `(C, H, W)`.
conv_module!(
    [T: Tape<E, D>,]
    Tensor<(Const<C>, Const<H>, Const<W>), E, D, T> => Tensor<OutPlane<O, H, W, KH, KW, S, P>, E, D, T>,
    |x| (x, 1, (Const, Default::default(), Default::default())),
    try_conv2d
);
// A batch whose own gradient is not wanted: the kernel records the
// gradients of the weight and bias only.
conv_module!(
    [B: Dim,]
    NoInputGrad<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, OwnedTape<E, D>>>
        => Tensor<(B, Const<O>, Out<H, KH, S, P>, Out<W, KW, S, P>), E, D, OwnedTape<E, D>>,
    |x| (x.0, x.0.shape().0.size(), (x.0.shape().0, Const, Default::default(), Default::default())),
    try_conv2d_no_input_grad
);
// One image whose own gradient is not wanted.
conv_module!(
    []
    NoInputGrad<Tensor<(Const<C>, Const<H>, Const<W>), E, D, OwnedTape<E, D>>>
        => Tensor<OutPlane<O, H, W, KH, KW, S, P>, E, D, OwnedTape<E, D>>,
    |x| (x.0, 1, (Const, Default::default(), Default::default())),
    try_conv2d_no_input_grad
);

impl<
        const I: usize,
        const O: usize,
        const KH: usize,
        const KW: usize,
        const S: usize,
        const P: usize,
        const BIAS: bool,
        E: Dtype,
        D: Storage<E>,
    > Conv2DModule<I, O, KH, KW, S, P, E, D, BIAS>
{
    /// The scratch memory of its CPU kernel.
    pub(crate) fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The runtime sizes for a batch of `batch` images of `h × w`.
    pub(crate) fn op(&self, batch: usize, h: usize, w: usize) -> Conv2DOp {
        let size = |n, k| crate::shapes::try_conv_output_size(n, k, S, P).unwrap_or(0);
        Conv2DOp {
            batch,
            chan_in: I,
            chan_out: O,
            h_in: h,
            w_in: w,
            kh: KH,
            kw: KW,
            stride: S,
            padding: P,
            h_out: size(h, KH),
            w_out: size(w, KW),
        }
    }
}

crate::nn::infer::infer_via_module!(
    [const I: usize, const O: usize, const KH: usize, const KW: usize, const S: usize, const P: usize, const BIAS: bool,]
    Conv2DRect<I, O, KH, KW, S, P, BIAS>, Conv2DModule<I, O, KH, KW, S, P, f32, Cpu, BIAS>,
    format!(
        "Conv2d({I}, {O}, kernel_size=({KH}, {KW}), stride=({S}, {S}), padding=({P}, {P}){})",
        if BIAS { "" } else { ", bias=False" }
    ),
    O * (I * KH * KW + usize::from(BIAS))
);

impl<
        const O: usize,
        const KH: usize,
        const KW: usize,
        const S: usize,
        const P: usize,
        const BIAS: bool,
        const C: usize,
        H,
        W,
    > InferShape<(Const<C>, H, W)> for LazyConv2DRect<O, KH, KW, S, P, BIAS>
where
    (Const<C>, H, W): Shape,
    Conv2DRect<C, O, KH, KW, S, P, BIAS>: InferShape<(Const<C>, H, W)>,
{
    type Concrete = Conv2DRect<C, O, KH, KW, S, P, BIAS>;
    type Out = <Conv2DRect<C, O, KH, KW, S, P, BIAS> as InferShape<(Const<C>, H, W)>>::Out;
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        <Conv2DRect<C, O, KH, KW, S, P, BIAS> as InferShape<(Const<C>, H, W)>>::describe(
            prefix, rows,
        )
    }
}
