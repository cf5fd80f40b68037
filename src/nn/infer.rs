//! Shape inference on network types: lazy layers and model summaries.
//!
//! [`InferShape<In>`] threads a per-sample input shape (such as
//! `Rank3<1, 28, 28>`) through a network type at compile time. It gives
//! - the network with every lazy layer replaced by its concrete twin
//!   ([`Inferred`]), so that `LazyLinear<84>` after a `(16, 5, 5)` feature map
//!   becomes a `Linear` with 400 inputs;
//! - the output shape of every layer, for [`summary`](crate::models::summary).
use super::conv::{Conv2D, Conv2DModule, Conv2DRect};
use super::linear::{LinearModule, LinearOf};
use super::{AvgPool2D, Flatten, LogSoftmax, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh};
use dfdx::nn::Module;
use dfdx::prelude::{Const, ConstDim, ConstShape, Cpu, HasShape, Shape, Tensor};

/// One row of a model summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRow {
    /// The layer's parameter name prefix (`conv1`, `0`, ...).
    pub name: String,
    /// The layer, as PyTorch prints it (`Conv2d(1, 6, kernel_size=(5, 5), ...)`).
    pub layer: String,
    /// The per-sample output shape.
    pub output: Vec<usize>,
    /// Trainable parameters.
    pub params: usize,
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A network type that accepts per-sample inputs of shape `In`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not accept inputs of shape `{In}`",
    note = "shapes are per sample, without the batch: e.g. `Rank3<1, 28, 28>` for MNIST"
)]
pub trait InferShape<In: Shape> {
    /// The network with its lazy layers made concrete.
    type Concrete;
    /// The per-sample output shape.
    type Out: ConstShape;
    /// Appends one [`LayerRow`] per layer.
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>);
}

/// The network `M` for per-sample inputs of shape `In`, with every lazy layer
/// replaced by its concrete twin.
///
/// ```
/// use static_nn::prelude::*;
/// type Net = Inferred<(LazyConv2D<6, 5, 1, 2>, ReLU, MaxPool2D<2>, Flatten, LazyLinear<10>), Rank3<1, 28, 28>>;
/// let dev = Cpu::default();
/// let net = dev.build_module::<Net, f32>();
/// assert_eq!(net.num_trainable_params(), 6 * 26 + (6 * 14 * 14 + 1) * 10);
/// let y: Tensor<Rank2<4, 10>, f32, _> = net.forward(dev.zeros::<Rank4<4, 1, 28, 28>>());
/// # let _ = y;
/// ```
pub type Inferred<M, In> = <M as InferShape<In>>::Concrete;

/// The per-sample output shape of `M` for inputs of shape `In`.
pub type OutputShape<M, In> = <M as InferShape<In>>::Out;

fn push<S: ConstShape>(prefix: &str, layer: String, params: usize, rows: &mut Vec<LayerRow>) {
    rows.push(LayerRow {
        name: prefix.to_string(),
        layer,
        output: S::default().concrete().into_iter().collect(),
        params,
    });
}

/// The output shape of built module `M` on one `f32` CPU sample of shape `In`.
type ModuleOut<M, In> = <<M as Module<Tensor<In, f32, Cpu>>>::Output as HasShape>::Shape;

macro_rules! infer_via_module {
    ([$($g:tt)*] $spec:ty, $built:ty, |$name:ident| $desc:expr, $params:expr) => {
        impl<$($g)* In: Shape> InferShape<In> for $spec
        where
            $built: Module<Tensor<In, f32, Cpu>>,
            <$built as Module<Tensor<In, f32, Cpu>>>::Output: HasShape,
            ModuleOut<$built, In>: ConstShape,
        {
            type Concrete = Self;
            type Out = ModuleOut<$built, In>;
            fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
                let $name = prefix;
                push::<Self::Out>(prefix, $desc, $params, rows);
            }
        }
    };
}

infer_via_module!(
    [const I: usize, const O: usize, const K: usize, const S: usize, const P: usize,]
    Conv2D<I, O, K, S, P>, Conv2DModule<I, O, K, K, S, P, f32, Cpu>,
    |_n| format!("Conv2d({I}, {O}, kernel_size=({K}, {K}), stride=({S}, {S}), padding=({P}, {P}))"),
    O * (I * K * K + 1)
);
infer_via_module!(
    [const I: usize, const O: usize, const KH: usize, const KW: usize, const S: usize, const P: usize,]
    Conv2DRect<I, O, KH, KW, S, P>, Conv2DModule<I, O, KH, KW, S, P, f32, Cpu>,
    |_n| format!("Conv2d({I}, {O}, kernel_size=({KH}, {KW}), stride=({S}, {S}), padding=({P}, {P}))"),
    O * (I * KH * KW + 1)
);
infer_via_module!(
    [IN: ConstDim, const O: usize,]
    LinearOf<IN, O>, LinearModule<IN, O, f32, Cpu>,
    |_n| format!("Linear(in_features={}, out_features={O}, bias=True)", IN::SIZE),
    O * (IN::SIZE + 1)
);
infer_via_module!(
    [const K: usize, const S: usize, const P: usize,]
    MaxPool2D<K, S, P>, MaxPool2D<K, S, P>,
    |_n| format!("MaxPool2d(kernel_size={K}, stride={S}, padding={P})"),
    0
);
infer_via_module!(
    [const K: usize, const S: usize, const P: usize,]
    AvgPool2D<K, S, P>, AvgPool2D<K, S, P>,
    |_n| format!("AvgPool2d(kernel_size={K}, stride={S}, padding={P})"),
    0
);
infer_via_module!([] Flatten, Flatten, |_n| "Flatten()".to_string(), 0);

macro_rules! infer_activation {
    ($($ty:ident => $torch:literal),* $(,)?) => {$(
        impl<In: ConstShape> InferShape<In> for $ty {
            type Concrete = Self;
            type Out = In;
            fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
                push::<In>(prefix, $torch.to_string(), 0, rows);
            }
        }
    )*};
}
infer_activation!(
    ReLU => "ReLU()",
    Sigmoid => "Sigmoid()",
    Tanh => "Tanh()",
    Softmax => "Softmax(dim=-1)",
    LogSoftmax => "LogSoftmax(dim=-1)",
);

/// A convolution whose input channel count is taken from the layer before
/// it at compile time: `OUT` output channels, square `K×K` kernel, stride
/// `S`, padding `P`.
///
/// PyTorch: `nn.LazyConv2d(OUT, kernel_size=K, stride=S, padding=P)`, but
/// resolved when the program is compiled, not at the first forward pass.
/// Build it through [`Inferred`].
///
/// # Shapes
/// As [`Conv2D<C, OUT, K, S, P>`](super::Conv2D) for an input with `C`
/// channels.
#[derive(Clone, Copy, Debug, Default)]
pub struct LazyConv2D<const OUT: usize, const K: usize, const S: usize = 1, const P: usize = 0>;

/// [`LazyConv2D`] with a rectangular `KH×KW` kernel (the notebook's learned
/// 1×2 kernel is a `LazyConv2DRect<1, 1, 2>`).
///
/// PyTorch: `nn.LazyConv2d(OUT, kernel_size=(KH, KW), stride=S, padding=P)`.
///
/// # Shapes
/// As [`Conv2DRect<C, OUT, KH, KW, S, P>`](super::Conv2DRect).
#[derive(Clone, Copy, Debug, Default)]
pub struct LazyConv2DRect<
    const OUT: usize,
    const KH: usize,
    const KW: usize,
    const S: usize = 1,
    const P: usize = 0,
>;

/// A fully connected layer whose input count is taken from the layer before
/// it at compile time: any `Const<N>` or [`Flat<C, H, W>`](crate::shapes::Flat)
/// features, however large.
///
/// PyTorch: `nn.LazyLinear(OUT)`, resolved at compile time. Build it through
/// [`Inferred`].
///
/// # Shapes
/// As [`Linear<N, OUT>`](super::Linear): `(B, N)` → `(B, OUT)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LazyLinear<const OUT: usize>;

impl<const O: usize, const K: usize, const S: usize, const P: usize, const C: usize, H, W>
    InferShape<(Const<C>, H, W)> for LazyConv2D<O, K, S, P>
where
    (Const<C>, H, W): Shape,
    Conv2D<C, O, K, S, P>: InferShape<(Const<C>, H, W)>,
{
    type Concrete = Conv2D<C, O, K, S, P>;
    type Out = <Conv2D<C, O, K, S, P> as InferShape<(Const<C>, H, W)>>::Out;
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        <Conv2D<C, O, K, S, P> as InferShape<(Const<C>, H, W)>>::describe(prefix, rows)
    }
}

impl<
        const O: usize,
        const KH: usize,
        const KW: usize,
        const S: usize,
        const P: usize,
        const C: usize,
        H,
        W,
    > InferShape<(Const<C>, H, W)> for LazyConv2DRect<O, KH, KW, S, P>
where
    (Const<C>, H, W): Shape,
    Conv2DRect<C, O, KH, KW, S, P>: InferShape<(Const<C>, H, W)>,
{
    type Concrete = Conv2DRect<C, O, KH, KW, S, P>;
    type Out = <Conv2DRect<C, O, KH, KW, S, P> as InferShape<(Const<C>, H, W)>>::Out;
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        <Conv2DRect<C, O, KH, KW, S, P> as InferShape<(Const<C>, H, W)>>::describe(prefix, rows)
    }
}

impl<const O: usize, X: ConstDim> InferShape<(X,)> for LazyLinear<O>
where
    LinearOf<X, O>: InferShape<(X,)>,
{
    type Concrete = LinearOf<X, O>;
    type Out = <LinearOf<X, O> as InferShape<(X,)>>::Out;
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        <LinearOf<X, O> as InferShape<(X,)>>::describe(prefix, rows)
    }
}
