//! Batch normalisation layers: `BatchNorm2D` over image channels (and
//! `BatchNormReLU2D`, the same followed by a ReLU in one op), and
//! `BatchNorm1D` over features.
use super::build::BuildOnDevice;
use super::infer::{push, InferShape, LayerRow};
use crate::ops::{BatchNormKernel, BatchNormOp, BatchStats, Workspace};
use crate::shapes::checks::{
    BatchNorm1DLayer, BatchNorm2DLayer, BatchNormChannels, BatchNormReLU2DLayer,
};
use dfdx::nn::tensor_collection::{ModuleVisitor, ScalarOptions};
use dfdx::nn::{Module, ModuleMut, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use num_traits::Float;
use std::marker::PhantomData;

/// Batch normalisation over the `C` channels of images, with a learned
/// per-channel scale and shift.
///
/// - Training mode (`forward_mut`, as in [`Classifier::fit`](crate::train::Classifier::fit)):
///   each channel is normalised by the batch's mean and biased variance;
///   the running statistics move towards the batch's with `momentum` 0.1,
///   the running variance towards the *unbiased* variance, and
///   `num_batches_tracked` counts the batches.
/// - Inference mode (`forward`): each channel is normalised by the running
///   statistics, which `forward` cannot change (it takes `&self`).
///
/// PyTorch: `nn.BatchNorm2d(C)` (eps 1e-5, momentum 0.1, affine,
/// tracking running statistics), with its names: parameters `weight` and
/// `bias` `(C,)`; buffers `running_mean`, `running_var` `(C,)` and
/// `num_batches_tracked` `()` (saved as int64, as PyTorch does).
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, H, W)`. An input with another channel count does
/// not compile.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::seed_from_u64(0);
/// let mut bn = dev.build_module::<BatchNorm2D<3>, f32>();
/// let x: Tensor<Rank4<8, 3, 4, 4>, f32, _> = dev.sample_normal();
/// let y = bn.forward_mut(x.clone()); // training: batch statistics
/// assert_eq!(bn.num_batches_tracked.array(), 1.0);
/// let z = bn.forward(x); // inference: running statistics, unchanged
/// assert_eq!(bn.num_batches_tracked.array(), 1.0);
/// # let _ = (y, z);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchNorm2D<const C: usize>;

/// Batch normalisation over `F` features: [`BatchNorm2D`]'s semantics for
/// `(B, F)` inputs.
///
/// PyTorch: `nn.BatchNorm1d(F)`, with the same parameter and buffer names.
///
/// # Shapes
/// `(B, F)` → `(B, F)`.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::seed_from_u64(0);
/// let net = dev.build_module::<(Linear<4, 8>, BatchNorm1D<8>, ReLU), f32>();
/// let y: Tensor<Rank2<2, 8>, f32, _> = net.forward(dev.zeros::<Rank2<2, 4>>());
/// # let _ = y;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchNorm1D<const F: usize>;

/// [`BatchNorm2D`] followed by a ReLU, as one layer: the batch norm of a
/// conv → batch norm → ReLU block (ResNet's stem and the first half of its
/// [`BasicBlock`](crate::models::BasicBlock)).
///
/// The same values, gradients and running statistics as `(BatchNorm2D<C>,
/// ReLU)`, and the same tensors (`weight`, `bias`, `running_mean`,
/// `running_var`, `num_batches_tracked`), so weights load either way. On
/// the CPU it is one op ([`BatchNormOp::with_relu`]): no tensor holds the
/// values between the two, which in a training step spares a copy, two
/// zero-filled buffers and a pass each way.
///
/// PyTorch: `nn.BatchNorm2d(C)` then `nn.ReLU()` (timm's
/// `BatchNormAct2d(C, act_layer=nn.ReLU)`), with `nn.BatchNorm2d`'s names.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, H, W)`. An input with another channel count does
/// not compile.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::seed_from_u64(0);
/// let mut fused = dev.build_module::<BatchNormReLU2D<3>, f32>();
/// let mut plain = dev.build_module::<(BatchNorm2D<3>, ReLU), f32>();
/// let x: Tensor<Rank4<8, 3, 4, 4>, f32, _> = dev.sample_normal();
/// assert_eq!(fused.forward_mut(x.clone()).array(), plain.forward_mut(x).array());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchNormReLU2D<const C: usize>;

/// A built batch normalisation over `C` channels ([`BatchNorm2D`] when
/// `L` is [`BatchNorm2DLayer`], [`BatchNormReLU2D`] when it is
/// [`BatchNormReLU2DLayer`], [`BatchNorm1D`] when it is
/// [`BatchNorm1DLayer`]).
#[derive(Clone, Debug)]
pub struct BatchNormModule<const C: usize, E: Dtype, D: Storage<E>, L> {
    /// The per-channel scale γ (PyTorch's `weight`), initialised to 1.
    pub weight: Tensor<Rank1<C>, E, D>,
    /// The per-channel shift β (PyTorch's `bias`), initialised to 0.
    pub bias: Tensor<Rank1<C>, E, D>,
    /// The running mean (a buffer: saved, not trained), initialised to 0.
    pub running_mean: Tensor<Rank1<C>, E, D>,
    /// The running unbiased variance (a buffer), initialised to 1.
    pub running_var: Tensor<Rank1<C>, E, D>,
    /// Training batches seen (a buffer; PyTorch's int64, held as `E`).
    pub num_batches_tracked: Tensor<Rank0, E, D>,
    /// Added to the variance before the square root (PyTorch's `eps`, 1e-5).
    pub eps: f64,
    /// Weight of each batch in the running statistics (PyTorch's
    /// `momentum`, 0.1): `running = (1 − momentum)·running + momentum·batch`.
    pub momentum: f64,
    workspace: Workspace,
    layer: PhantomData<L>,
}

impl<const C: usize, E: Dtype + Float, D: Device<E>> BuildOnDevice<D, E> for BatchNorm2D<C> {
    type Built = BatchNormModule<C, E, D, BatchNorm2DLayer>;
}

impl<const C: usize, E: Dtype + Float, D: Device<E>> BuildOnDevice<D, E> for BatchNormReLU2D<C> {
    type Built = BatchNormModule<C, E, D, BatchNormReLU2DLayer>;
}

impl<const C: usize, E: Dtype + Float, D: Device<E>> BuildOnDevice<D, E> for BatchNorm1D<C> {
    type Built = BatchNormModule<C, E, D, BatchNorm1DLayer>;
}

impl<const C: usize, E: Dtype + Float, D: Device<E>, L: 'static + Clone + Send + Sync>
    TensorCollection<E, D> for BatchNormModule<C, E, D, L>
{
    type To<E2: Dtype, D2: Device<E2>> = BatchNormModule<C, E2, D2, L>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_to_ones(),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "running_mean",
                    |s| &s.running_mean,
                    |s| &mut s.running_mean,
                    TensorOptions::detached(|t| t.try_fill_with_zeros()),
                ),
                Self::tensor(
                    "running_var",
                    |s| &s.running_var,
                    |s| &mut s.running_var,
                    TensorOptions::detached(|t| t.try_fill_with_ones()),
                ),
                Self::tensor(
                    "num_batches_tracked",
                    |s| &s.num_batches_tracked,
                    |s| &mut s.num_batches_tracked,
                    TensorOptions::detached(|t| t.try_fill_with_zeros()),
                ),
                (
                    Self::scalar(
                        "eps",
                        |s| &s.eps,
                        |s| &mut s.eps,
                        ScalarOptions::from_default(1e-5),
                    ),
                    Self::scalar(
                        "momentum",
                        |s| &s.momentum,
                        |s| &mut s.momentum,
                        ScalarOptions::from_default(0.1),
                    ),
                ),
            ),
            |(weight, bias, running_mean, running_var, num_batches_tracked, (eps, momentum))| {
                BatchNormModule {
                    weight,
                    bias,
                    running_mean,
                    running_var,
                    num_batches_tracked,
                    eps,
                    momentum,
                    workspace: Workspace::default(),
                    layer: PhantomData,
                }
            },
        )
    }
}

impl<const C: usize, E: Dtype + Float, D: BatchNormKernel<E>, L> BatchNormModule<C, E, D, L> {
    /// The op for `batch` samples of `plane` values per channel. An empty
    /// batch or an infinite eps gives an op that fits no input, so the
    /// kernel's own size check reports it.
    pub(crate) fn op(&self, batch: usize, plane: usize, relu: bool) -> BatchNormOp {
        let empty = BatchNormOp {
            batch: 0,
            channels: C,
            plane: 0,
            eps: 0.0,
            relu,
        };
        let op = BatchNormOp::new(batch.max(1), C, plane.max(1), self.eps.max(0.0));
        op.map_or(empty, |op| if relu { op.with_relu() } else { op })
    }

    /// Inference mode on `x`, viewed as `(batch, C, plane)`, and a ReLU
    /// after it when `relu`.
    fn eval<S: Shape, T: Tape<E, D>>(
        &self,
        x: Tensor<S, E, D, T>,
        (batch, plane): (usize, usize),
        relu: bool,
    ) -> Result<Tensor<S, E, D, T>, D::Err> {
        let op = self.op(batch, plane, relu);
        D::try_batch_norm_eval(
            op,
            x,
            (&self.weight, &self.bias),
            (&self.running_mean, &self.running_var),
            &self.workspace,
        )
    }

    /// Training mode on `x`: normalises by the batch statistics (and
    /// rectifies when `relu`) and moves the running statistics towards them.
    fn train<S: Shape, T: Tape<E, D>>(
        &mut self,
        x: Tensor<S, E, D, T>,
        (batch, plane): (usize, usize),
        relu: bool,
    ) -> Result<Tensor<S, E, D, T>, D::Err> {
        let op = self.op(batch, plane, relu);
        let (y, stats) =
            D::try_batch_norm_train(op, x, (&self.weight, &self.bias), &self.workspace)?;
        self.update_running(&stats);
        Ok(y)
    }

    /// Moves the running statistics towards a training batch's `stats`
    /// (PyTorch's update, with `momentum`) and counts the batch.
    pub(crate) fn update_running(&mut self, stats: &BatchStats<E>) {
        let m = self.momentum;
        let unbiased = stats.unbiased_factor();
        let blend = |running: &mut Tensor<Rank1<C>, E, D>, batch: &[E], factor: f64| {
            let old = running.as_vec();
            let new: Vec<E> = old
                .iter()
                .zip(batch)
                .map(|(r, b)| {
                    let (r, b) = (r.to_f64().unwrap_or(0.0), b.to_f64().unwrap_or(0.0));
                    E::from((1.0 - m) * r + m * b * factor).unwrap_or_else(E::zero)
                })
                .collect();
            running.copy_from(&new);
        };
        blend(&mut self.running_mean, &stats.mean, 1.0);
        blend(&mut self.running_var, &stats.var, unbiased);
        let count = self.num_batches_tracked.as_vec()[0] + E::one();
        self.num_batches_tracked.copy_from(&[count]);
    }
}

// first: the input's gradient is computed (and dropped)
super::no_input_grad::no_input_grad_traced!([const C: usize, L,] BatchNormModule<C, E, D, L>);

/// `Module` (inference) and `ModuleMut` (training) for one input layout.
macro_rules! batch_norm_impls {
    ($layer:ty, relu: $relu:expr, [$($dims:tt)*], $shape:ty, |$x:ident| $sizes:expr) => {
        impl<const C: usize, const F: usize, $($dims)* E: Dtype + Float, D: BatchNormKernel<E>, T: Tape<E, D>>
            Module<Tensor<$shape, E, D, T>> for BatchNormModule<C, E, D, $layer>
        where
            (): BatchNormChannels<$layer, C, F>,
        {
            type Output = Tensor<$shape, E, D, T>;
            type Error = D::Err;

            fn try_forward(&self, $x: Tensor<$shape, E, D, T>) -> Result<Self::Output, D::Err> {
                let sizes = $sizes;
                self.eval($x, sizes, $relu)
            }
        }

        impl<const C: usize, const F: usize, $($dims)* E: Dtype + Float, D: BatchNormKernel<E>, T: Tape<E, D>>
            ModuleMut<Tensor<$shape, E, D, T>> for BatchNormModule<C, E, D, $layer>
        where
            (): BatchNormChannels<$layer, C, F>,
        {
            type Output = Tensor<$shape, E, D, T>;
            type Error = D::Err;

            fn try_forward_mut(&mut self, $x: Tensor<$shape, E, D, T>) -> Result<Self::Output, D::Err> {
                let sizes = $sizes;
                self.train($x, sizes, $relu)
            }
        }
    };
}
batch_norm_impls!(BatchNorm2DLayer, relu: false, [B: Dim, H: Dim, W: Dim,], (B, Const<F>, H, W), |x| {
    (x.shape().0.size(), x.shape().2.size() * x.shape().3.size())
});
batch_norm_impls!(BatchNormReLU2DLayer, relu: true, [B: Dim, H: Dim, W: Dim,], (B, Const<F>, H, W), |x| {
    (x.shape().0.size(), x.shape().2.size() * x.shape().3.size())
});
batch_norm_impls!(BatchNorm1DLayer, relu: false, [B: Dim,], (B, Const<F>), |x| (x.shape().0.size(), 1));

impl<const C: usize, const F: usize, H: Dim, W: Dim> InferShape<(Const<F>, H, W)> for BatchNorm2D<C>
where
    (): BatchNormChannels<BatchNorm2DLayer, C, F>,
    (Const<F>, H, W): ConstShape,
{
    type Concrete = Self;
    type Out = (Const<F>, H, W);
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        let layer = format!("BatchNorm2d({C}, eps=1e-05, momentum=0.1)");
        push::<Self::Out>(prefix, layer, 2 * C, rows);
    }
}

impl<const C: usize, const F: usize, H: Dim, W: Dim> InferShape<(Const<F>, H, W)>
    for BatchNormReLU2D<C>
where
    (): BatchNormChannels<BatchNormReLU2DLayer, C, F>,
    (Const<F>, H, W): ConstShape,
{
    type Concrete = Self;
    type Out = (Const<F>, H, W);
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        let layer = format!("BatchNorm2d({C}, eps=1e-05, momentum=0.1) + ReLU()");
        push::<Self::Out>(prefix, layer, 2 * C, rows);
    }
}

impl<const C: usize, const F: usize> InferShape<(Const<F>,)> for BatchNorm1D<C>
where
    (): BatchNormChannels<BatchNorm1DLayer, C, F>,
{
    type Concrete = Self;
    type Out = (Const<F>,);
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        let layer = format!("BatchNorm1d({C}, eps=1e-05, momentum=0.1)");
        push::<Self::Out>(prefix, layer, 2 * C, rows);
    }
}
