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
use dfdx::nn::tensor_collection::{ModuleFields, ModuleVisitor, ScalarOptions, TensorOptions};
use dfdx::nn::{Module, TensorCollection};
use dfdx::prelude::{Const, ConstShape, Cpu, Dim, HasShape, Shape, Tensor};
use num_traits::NumCast;

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
#[doc(hidden)]
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

/// Appends the row of one layer whose per-sample output shape is `S`.
#[doc(hidden)]
pub fn push<S: ConstShape>(prefix: &str, layer: String, params: usize, rows: &mut Vec<LayerRow>) {
    rows.push(LayerRow {
        name: prefix.to_string(),
        layer,
        output: S::default().concrete().into_iter().collect(),
        params,
    });
}

/// The output shape of built module `M` on one `f32` CPU sample of shape `In`.
#[doc(hidden)]
pub type ModuleOut<M, In> = <<M as Module<Tensor<In, f32, Cpu>>>::Output as HasShape>::Shape;

/// A per-sample shape with a batch of one in front: `(C, H, W)` →
/// `(Const<1>, C, H, W)`, and back ([`Batched::Sample`]).
#[doc(hidden)]
pub trait Batched {
    /// The shape with the batch dimension.
    type Of: Shape;
}

/// A batched shape without its batch dimension.
#[doc(hidden)]
pub trait Unbatched {
    /// The per-sample shape.
    type Sample: Shape;
}

macro_rules! batched {
    ($($d:ident),+) => {
        impl<$($d: Dim),+> Batched for ($($d,)+) {
            type Of = (Const<1>, $($d,)+);
        }
        impl<B: Dim, $($d: Dim),+> Unbatched for (B, $($d,)+) {
            type Sample = ($($d,)+);
        }
    };
}
batched!(A);
batched!(A, B2);
batched!(A, B2, C);

/// The per-sample output shape of built module `M` on a batch of one `f32`
/// CPU sample of shape `In` (for modules that only take batches).
#[doc(hidden)]
pub type BatchedModuleOut<M, In> =
    <<<M as Module<Tensor<<In as Batched>::Of, f32, Cpu>>>::Output as HasShape>::Shape as Unbatched>::Sample;

/// The trainable parameters of module type `M`, counted from its type alone:
/// its tensors' shapes, with nothing allocated (what dfdx's
/// `num_trainable_params` returns on a built `M`).
#[doc(hidden)]
pub fn trainable_params<M: TensorCollection<f32, Cpu>>() -> usize {
    let mut counter = ParamCounter(0);
    match M::iter_tensors(&mut counter) {
        Ok(_) => counter.0,
        Err(never) => match never {},
    }
}

/// A [`ModuleVisitor`] that visits a module type without an instance and adds
/// up the sizes of the tensors that take gradient updates.
struct ParamCounter(usize);

impl<M: TensorCollection<f32, Cpu>> ModuleVisitor<M, f32, Cpu> for ParamCounter {
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Cpu;

    fn visit_module<Field, GetRef, GetMut>(
        &mut self,
        _name: &str,
        _get_refs: GetRef,
        _get_muts: GetMut,
    ) -> Result<Option<Field::To<f32, Cpu>>, Self::Err>
    where
        GetRef: FnMut(&M) -> &Field,
        GetMut: FnMut(&mut M) -> &mut Field,
        Field: TensorCollection<f32, Cpu>,
    {
        Field::iter_tensors(self)?;
        Ok(None)
    }

    fn visit_tensor<S: Shape, GetRef, GetMut>(
        &mut self,
        _name: &str,
        _get_refs: GetRef,
        _get_muts: GetMut,
        opts: TensorOptions<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err>
    where
        GetRef: FnMut(&M) -> &Tensor<S, f32, Cpu>,
        GetMut: FnMut(&mut M) -> &mut Tensor<S, f32, Cpu>,
    {
        if opts.do_gradient_update {
            self.0 += opts.shape.num_elements();
        }
        Ok(None)
    }

    fn visit_scalar<N, GetRef, GetMut>(
        &mut self,
        _name: &str,
        _get_refs: GetRef,
        _get_muts: GetMut,
        _opts: ScalarOptions<N>,
    ) -> Result<Option<N>, Self::Err>
    where
        N: NumCast,
        GetRef: FnMut(&M) -> &N,
        GetMut: FnMut(&mut M) -> &mut N,
    {
        Ok(None)
    }

    fn visit_fields<F: ModuleFields<M, f32, Cpu>>(
        &mut self,
        fields: F,
        _builder: impl FnOnce(F::Output<f32, Cpu>) -> M::To<f32, Cpu>,
    ) -> Result<Option<M::To<f32, Cpu>>, Self::Err> {
        fields.visit_fields(self)?;
        Ok(None)
    }
}

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
