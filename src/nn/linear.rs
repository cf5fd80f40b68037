//! Fully connected layers.
use super::build::BuildOnDevice;
use super::conv::reset_fan_in;
use super::infer::{InferShape, LayerRow};
use super::NoInputGrad;
use crate::ops::{LinearKernel, Workspace};
use crate::shapes::checks::{FlatFeatureCount, LinearFeatures, LinearFlatInput};
use crate::shapes::{Flat, Tn, ToTypenum};
use dfdx::nn::tensor_collection::ModuleVisitor;
use dfdx::nn::{Module, NonMutableModule, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use num_traits::Float;
use rand_distr::uniform::SampleUniform;
use typenum::Prod;

/// A fully connected layer `y = x·Wᵀ + b` with `IN` inputs and `OUT` outputs.
///
/// PyTorch: `nn.Linear(IN, OUT)`; initialised as PyTorch does (uniform in
/// ±1/√IN).
///
/// # Shapes
/// - input: `(B, IN)` or `(IN,)`; `IN` may also be the
///   [`Flat<C, H, W>`](crate::shapes::Flat) features of a
///   [`Flatten`](super::Flatten) with `C·H·W = IN`;
/// - output: `(B, OUT)` or `(OUT,)`.
///
/// A wrong input count does not compile:
/// `Linear expects 401 input features, but the input has 400`.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let fc = dev.build_module::<Linear<400, 84>, f32>();
/// let y: Tensor<Rank2<64, 84>, f32, _> = fc.forward(dev.zeros::<Rank2<64, 400>>());
/// # let _ = y;
/// ```
pub type Linear<const IN: usize, const OUT: usize> = LinearOf<Const<IN>, OUT>;

/// A fully connected layer whose input size is the dim type `IN`
/// (`Const<N>` or [`Flat<C, H, W>`](crate::shapes::Flat)). Write
/// [`Linear<IN, OUT>`] for a const count; [`LazyLinear`](super::LazyLinear)
/// infers `IN` from the layer before it.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinearOf<IN, const OUT: usize>(core::marker::PhantomData<IN>);

/// A built fully connected layer.
///
/// Tensor names (as PyTorch's): `weight` `(OUT, IN)` and `bias` `(OUT,)`.
#[derive(Clone, Debug)]
pub struct LinearModule<IN: ConstDim, const OUT: usize, E: Dtype, D: Storage<E>> {
    /// Weight, `(OUT, IN)`.
    pub weight: Tensor<(Const<OUT>, IN), E, D>,
    /// Bias, `(OUT,)`.
    pub bias: Tensor<Rank1<OUT>, E, D>,
    /// Scratch memory of the CPU kernel, reused from call to call.
    workspace: Workspace,
}

impl<IN: ConstDim, const O: usize, E, D> BuildOnDevice<D, E> for LinearOf<IN, O>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type Built = LinearModule<IN, O, E, D>;
}

impl<IN: ConstDim, const O: usize, E, D> TensorCollection<E, D> for LinearModule<IN, O, E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = LinearModule<IN, O, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(|t| reset_fan_in(t, IN::SIZE)),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_with(|t| reset_fan_in(t, IN::SIZE)),
                ),
            ),
            |(weight, bias)| LinearModule {
                weight,
                bias,
                workspace: Workspace::default(),
            },
        )
    }
}

impl<IN: ConstDim, const O: usize, E: Dtype, D: Storage<E>> NonMutableModule
    for LinearModule<IN, O, E, D>
{
}

impl<IN: ConstDim, const O: usize, E: Dtype, D: LinearKernel<E>> LinearModule<IN, O, E, D> {
    /// `x·Wᵀ + b` for a batch whose feature dim is already `IN`.
    fn affine<B: Dim, T: Tape<E, D>>(
        &self,
        x: Tensor<(B, IN), E, D, T>,
    ) -> Result<Tensor<(B, Const<O>), E, D, T>, D::Err> {
        D::try_linear(x, &self.weight, &self.bias, &self.workspace)
    }
}

/// Implements `Module` for a batch `(B, X)` and a single vector `(X,)`, given
/// the input dim `X`, the layer's `IN` and the check that ties them.
macro_rules! linear_forward {
    ([$($g:tt)*] $in:ty, $x:ty, $($check:tt)*) => {
        impl<$($g)* B: Dim, const O: usize, E: Dtype, D: LinearKernel<E>, T: Tape<E, D>>
            Module<Tensor<(B, $x), E, D, T>> for LinearModule<$in, O, E, D>
        where $($check)*
        {
            type Output = Tensor<(B, Const<O>), E, D, T>;
            type Error = D::Err;
            fn try_forward(&self, x: Tensor<(B, $x), E, D, T>) -> Result<Self::Output, D::Err> {
                let batch = x.shape().0;
                let x = x.try_reshape_like(&(batch, <$in>::default()))?;
                self.affine(x)
            }
        }

        impl<$($g)* B: Dim, const O: usize, E: Dtype, D: LinearKernel<E>>
            Module<NoInputGrad<Tensor<(B, $x), E, D, OwnedTape<E, D>>>> for LinearModule<$in, O, E, D>
        where $($check)*
        {
            type Output = Tensor<(B, Const<O>), E, D, OwnedTape<E, D>>;
            type Error = D::Err;
            fn try_forward(
                &self,
                x: NoInputGrad<Tensor<(B, $x), E, D, OwnedTape<E, D>>>,
            ) -> Result<Self::Output, D::Err> {
                // reshaped without the tape: no gradient flows back through it
                let (x, tape) = x.0.split_tape();
                let batch = x.shape().0;
                let x = x.try_reshape_like(&(batch, <$in>::default()))?;
                D::try_linear_no_input_grad(x.put_tape(tape), &self.weight, &self.bias, &self.workspace)
            }
        }

        impl<$($g)* const O: usize, E: Dtype, D: LinearKernel<E>>
            Module<NoInputGrad<Tensor<($x,), E, D, OwnedTape<E, D>>>> for LinearModule<$in, O, E, D>
        where $($check)*
        {
            type Output = Tensor<(Const<O>,), E, D, OwnedTape<E, D>>;
            type Error = D::Err;
            fn try_forward(
                &self,
                x: NoInputGrad<Tensor<($x,), E, D, OwnedTape<E, D>>>,
            ) -> Result<Self::Output, D::Err> {
                let (x, tape) = x.0.split_tape();
                let x = x.try_reshape_like(&(Const::<1>, <$in>::default()))?;
                D::try_linear_no_input_grad(x.put_tape(tape), &self.weight, &self.bias, &self.workspace)?
                    .try_reshape_like(&(Const::<O>,))
            }
        }

        impl<$($g)* const O: usize, E: Dtype, D: LinearKernel<E>, T: Tape<E, D>>
            Module<Tensor<($x,), E, D, T>> for LinearModule<$in, O, E, D>
        where $($check)*
        {
            type Output = Tensor<(Const<O>,), E, D, T>;
            type Error = D::Err;
            fn try_forward(&self, x: Tensor<($x,), E, D, T>) -> Result<Self::Output, D::Err> {
                let x = x.try_reshape_like(&(Const::<1>, <$in>::default()))?;
                self.affine(x)?.try_reshape_like(&(Const::<O>,))
            }
        }
    };
}

linear_forward!([const I: usize, const N: usize,] Const<I>, Const<N>, (): LinearFeatures<I, N>);
linear_forward!(
    [const I: usize, const C: usize, const H: usize, const W: usize,]
    Const<I>, Flat<C, H, W>,
    Const<C>: ToTypenum,
    Const<H>: ToTypenum,
    Const<W>: ToTypenum,
    (): FlatProduct<C, H, W>,
    <() as FlatProduct<C, H, W>>::Output: FlatFeatureCount,
    <<() as FlatProduct<C, H, W>>::Output as FlatFeatureCount>::Output:
        LinearFlatInput<I, C, H, W>
);
linear_forward!(
    [const C: usize, const H: usize, const W: usize,]
    Flat<C, H, W>, Flat<C, H, W>,
    (): Sized
);

/// `C·H·W` as a typenum integer.
pub trait FlatProduct<const C: usize, const H: usize, const W: usize> {
    /// The product.
    type Output;
}
impl<const C: usize, const H: usize, const W: usize> FlatProduct<C, H, W> for ()
where
    Const<C>: ToTypenum,
    Const<H>: ToTypenum,
    Const<W>: ToTypenum,
    Tn<C>: core::ops::Mul<Tn<H>>,
    Prod<Tn<C>, Tn<H>>: core::ops::Mul<Tn<W>>,
{
    type Output = Prod<Prod<Tn<C>, Tn<H>>, Tn<W>>;
}

/// A fully connected layer whose input count is taken from the layer before
/// it at compile time: any `Const<N>` or [`Flat<C, H, W>`](crate::shapes::Flat)
/// features, however large.
///
/// PyTorch: `nn.LazyLinear(OUT)`, resolved at compile time. Build it through
/// [`Inferred`](super::Inferred).
///
/// # Shapes
/// As [`Linear<N, OUT>`]: `(B, N)` → `(B, OUT)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LazyLinear<const OUT: usize>;

crate::nn::infer::infer_via_module!(
    [IN: ConstDim, const O: usize,]
    LinearOf<IN, O>, LinearModule<IN, O, f32, Cpu>,
    format!("Linear(in_features={}, out_features={O}, bias=True)", IN::SIZE),
    O * (IN::SIZE + 1)
);

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
