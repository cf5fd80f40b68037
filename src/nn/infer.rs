//! Shape inference on network types: lazy layers and model summaries.
//!
//! [`InferShape<In>`] threads a per-sample input shape (such as
//! `Rank3<1, 28, 28>`) through a network type at compile time. It gives
//! - the network with every lazy layer replaced by its concrete twin
//!   ([`Inferred`]), so that `LazyLinear<84>` after a `(16, 5, 5)` feature map
//!   becomes a `Linear` with 400 inputs;
//! - the output shape of every layer, for [`summary`](crate::models::summary).
//!
//! Each layer implements `InferShape` in its own file, beside its `Module`
//! impls; most do it with `infer_via_module!`, which takes the output shape
//! from the layer's own `Module` impl on a CPU sample.
use dfdx::nn::Module;
use dfdx::prelude::{ConstShape, Cpu, HasShape, Shape, Tensor};

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
pub(crate) fn join_name(prefix: &str, name: &str) -> String {
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

/// Appends the row of one layer whose per-sample output shape is `S`.
pub(crate) fn push<S: ConstShape>(
    prefix: &str,
    layer: String,
    params: usize,
    rows: &mut Vec<LayerRow>,
) {
    rows.push(LayerRow {
        name: prefix.to_string(),
        layer,
        output: S::default().concrete().into_iter().collect(),
        params,
    });
}

/// The output shape of built module `M` on one `f32` CPU sample of shape `In`.
pub(crate) type ModuleOut<M, In> = <<M as Module<Tensor<In, f32, Cpu>>>::Output as HasShape>::Shape;

/// `InferShape` for a layer spec `$spec` whose built module `$built` gives
/// the output shape: `[generics] spec, built, PyTorch's description, params`.
macro_rules! infer_via_module {
    ([$($g:tt)*] $spec:ty, $built:ty, $desc:expr, $params:expr) => {
        impl<$($g)* In: ::dfdx::prelude::Shape> $crate::nn::InferShape<In> for $spec
        where
            $built: ::dfdx::nn::Module<::dfdx::prelude::Tensor<In, f32, ::dfdx::prelude::Cpu>>,
            <$built as ::dfdx::nn::Module<::dfdx::prelude::Tensor<In, f32, ::dfdx::prelude::Cpu>>>::Output:
                ::dfdx::prelude::HasShape,
            $crate::nn::infer::ModuleOut<$built, In>: ::dfdx::prelude::ConstShape,
        {
            type Concrete = Self;
            type Out = $crate::nn::infer::ModuleOut<$built, In>;
            fn describe(prefix: &str, rows: &mut Vec<$crate::nn::LayerRow>) {
                $crate::nn::infer::push::<Self::Out>(prefix, $desc, $params, rows);
            }
        }
    };
}
pub(crate) use infer_via_module;
