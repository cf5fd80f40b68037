//! Batch normalisation over the channels of `(batch, channels, plane)` data
//! (PyTorch's `F.batch_norm`), in training mode (batch statistics) and in
//! inference mode (running statistics).
use super::Workspace;
use dfdx::prelude::*;

pub(crate) mod cpu;
pub mod generic;
pub(crate) mod sync;

/// The runtime sizes of one batch normalisation: `batch` samples of
/// `channels` channels of `plane` values each (`H·W` for images, 1 for
/// features), contiguous and row-major, and the `eps` added to the variance;
/// and whether a ReLU follows in the same op ([`BatchNormOp::with_relu`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormOp {
    pub(crate) batch: usize,
    pub(crate) channels: usize,
    pub(crate) plane: usize,
    pub(crate) eps: f64,
    pub(crate) relu: bool,
}

impl BatchNormOp {
    /// Sizes for `batch` samples of `channels × plane` values; `None` if any
    /// size is zero or `eps` is negative or not finite.
    pub fn new(batch: usize, channels: usize, plane: usize, eps: f64) -> Option<Self> {
        (batch > 0 && channels > 0 && plane > 0 && eps.is_finite() && eps >= 0.0).then_some(Self {
            batch,
            channels,
            plane,
            eps,
            relu: false,
        })
    }

    /// The same op followed by a ReLU, `max(y, 0)`, in the same passes: on
    /// the CPU no tensor holds the normalised values before the rectifier,
    /// and the backward pass finds where they were positive from the input
    /// it keeps anyway, inside its sums and its gradient pass. Values and
    /// gradients are those of the batch norm and then
    /// [`ReluKernel::try_relu`](crate::ops::ReluKernel::try_relu).
    ///
    /// ```
    /// use static_nn::ops::BatchNormOp;
    /// let op = BatchNormOp::new(8, 16, 28 * 28, 1e-5).unwrap().with_relu();
    /// assert!(op.relu());
    /// ```
    pub fn with_relu(self) -> Self {
        Self { relu: true, ..self }
    }

    /// Whether a ReLU follows ([`BatchNormOp::with_relu`]).
    pub fn relu(&self) -> bool {
        self.relu
    }

    /// Values per channel in the batch: `batch · plane`.
    pub fn count(&self) -> usize {
        self.batch * self.plane
    }

    /// Elements of the input: `batch · channels · plane`.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Whether the op has no elements (never true for one from [`new`](Self::new)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The factor `n / (n − 1)`, with `n` this op's [`count`](Self::count),
    /// that turns the biased variance of its batch into the unbiased one (1
    /// when `n = 1`). The running variance takes
    /// [`BatchStats::unbiased_factor`], whose count is the whole batch's
    /// also in a chunk of a split training step.
    pub fn unbiased_factor(&self) -> f64 {
        unbiased_factor(self.count())
    }
}

/// `n / (n − 1)`, or 1 when `n` is at most 1.
fn unbiased_factor(n: usize) -> f64 {
    if n > 1 {
        n as f64 / (n - 1) as f64
    } else {
        1.0
    }
}

/// The per-channel statistics of one training batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats<E> {
    /// The mean of each channel.
    pub mean: Vec<E>,
    /// The biased variance of each channel (divided by `n`), which
    /// normalises the batch.
    pub var: Vec<E>,
    /// How many values of each channel the statistics are over: the
    /// batch's `batch × plane`, or in a chunk of a split training step,
    /// that of all chunks together (whose statistics the chunks share).
    pub count: usize,
}

impl<E> BatchStats<E> {
    /// The factor `n / (n − 1)`, with `n` the [`count`](Self::count), that
    /// turns the biased variance into the unbiased one for the running
    /// variance (1 when `n = 1`).
    pub fn unbiased_factor(&self) -> f64 {
        unbiased_factor(self.count)
    }
}

/// A device that can run [`BatchNormOp`] with autograd.
///
/// [`Cpu`] runs fused kernels (two passes forward, two backward); other
/// devices run the [`generic`] composition of dfdx ops.
pub trait BatchNormKernel<E: Dtype>: Device<E> {
    /// Training mode: `y = (x − mean) / √(var + eps) · weight + bias` with the
    /// batch's own per-channel mean and biased variance, which it returns.
    /// The backward pass flows through the statistics, as PyTorch's does.
    /// With [`BatchNormOp::with_relu`] the output is `max(y, 0)`.
    fn try_batch_norm_train<S: Shape, Sc: Shape, T: Tape<E, Self>>(
        op: BatchNormOp,
        x: Tensor<S, E, Self, T>,
        affine: (&Tensor<Sc, E, Self>, &Tensor<Sc, E, Self>),
        workspace: &Workspace,
    ) -> Result<(Tensor<S, E, Self, T>, BatchStats<E>), Self::Err>;

    /// Inference mode: `y = (x − running_mean) / √(running_var + eps) ·
    /// weight + bias`. Gradients (if `x` has a tape) reach `x`, `weight` and
    /// `bias`; the running statistics are constants. With
    /// [`BatchNormOp::with_relu`] the output is `max(y, 0)`.
    fn try_batch_norm_eval<S: Shape, Sc: Shape, T: Tape<E, Self>>(
        op: BatchNormOp,
        x: Tensor<S, E, Self, T>,
        affine: (&Tensor<Sc, E, Self>, &Tensor<Sc, E, Self>),
        running: (&Tensor<Sc, E, Self>, &Tensor<Sc, E, Self>),
        workspace: &Workspace,
    ) -> Result<Tensor<S, E, Self, T>, Self::Err>;
}

/// The CPU kernels, for each dtype they support.
macro_rules! cpu_batch_norm {
    ($($e:ty),*) => {$(
        impl BatchNormKernel<$e> for Cpu {
            fn try_batch_norm_train<S: Shape, Sc: Shape, T: Tape<$e, Self>>(
                op: BatchNormOp,
                x: Tensor<S, $e, Self, T>,
                affine: (&Tensor<Sc, $e, Self>, &Tensor<Sc, $e, Self>),
                workspace: &Workspace,
            ) -> Result<(Tensor<S, $e, Self, T>, BatchStats<$e>), Self::Err> {
                cpu::check(&op, x.shape().num_elements(), &[affine.0, affine.1])?;
                cpu::train(op, x, affine, workspace)
            }

            fn try_batch_norm_eval<S: Shape, Sc: Shape, T: Tape<$e, Self>>(
                op: BatchNormOp,
                x: Tensor<S, $e, Self, T>,
                affine: (&Tensor<Sc, $e, Self>, &Tensor<Sc, $e, Self>),
                running: (&Tensor<Sc, $e, Self>, &Tensor<Sc, $e, Self>),
                workspace: &Workspace,
            ) -> Result<Tensor<S, $e, Self, T>, Self::Err> {
                cpu::check(&op, x.shape().num_elements(), &[affine.0, affine.1, running.0, running.1])?;
                cpu::eval(op, x, affine, running, workspace)
            }
        }
    )*};
}
cpu_batch_norm!(f32, f64);

#[cfg(feature = "cuda")]
impl<E: Dtype + num_traits::Float> BatchNormKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_batch_norm_train<S: Shape, Sc: Shape, T: Tape<E, Self>>(
        op: BatchNormOp,
        x: Tensor<S, E, Self, T>,
        affine: (&Tensor<Sc, E, Self>, &Tensor<Sc, E, Self>),
        _workspace: &Workspace,
    ) -> Result<(Tensor<S, E, Self, T>, BatchStats<E>), Self::Err> {
        generic::train(op, x, affine)
    }

    fn try_batch_norm_eval<S: Shape, Sc: Shape, T: Tape<E, Self>>(
        op: BatchNormOp,
        x: Tensor<S, E, Self, T>,
        affine: (&Tensor<Sc, E, Self>, &Tensor<Sc, E, Self>),
        running: (&Tensor<Sc, E, Self>, &Tensor<Sc, E, Self>),
        _workspace: &Workspace,
    ) -> Result<Tensor<S, E, Self, T>, Self::Err> {
        generic::eval(op, x, affine, running)
    }
}
