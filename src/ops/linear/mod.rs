//! The fully connected product `y = x·Wᵀ + b` (PyTorch's `F.linear`).
//!
//! dfdx's `matmul` calls `gemm`, which packs `Wᵀ` into its own layout on
//! every call: right for a batch, but for one sample the packing costs more
//! than the arithmetic (a third of LeNet's inference at batch 1). On the CPU,
//! inference on at most [`SMALL_BATCH`] samples therefore takes dot products
//! of each sample with the rows of `W` (`cpu.rs`), inference on a larger
//! batch in f32 runs the convolution's channel tiles on `W` packed once
//! (`dense.rs`; without AVX2 and FMA, dfdx's `matmul`), and a batch whose own
//! gradient is not wanted ([`NoInputGrad`](crate::nn::NoInputGrad)) gets a
//! backward pass for `W` and `b` only (`cpu.rs`); everything else is
//! [`generic`]: dfdx's `matmul` and a broadcast add, with dfdx's backward.
use super::Workspace;
use dfdx::prelude::*;

pub(crate) mod cpu;
mod dense;

/// The largest batch that the CPU's inference runs as dot products.
pub const SMALL_BATCH: usize = 4;

/// A device that can run a fully connected layer with autograd.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::ops::LinearKernel;
/// let dev = Cpu::default();
/// let x = dev.tensor([[1.0f32, 2.0]]);
/// let w = dev.tensor([[1.0f32, 0.0], [1.0, 1.0], [0.0, -1.0]]);
/// let b = dev.tensor([0.5f32, 0.0, 1.0]);
/// let ws = static_nn::ops::Workspace::default();
/// assert_eq!(Cpu::try_linear(x, &w, &b, &ws).unwrap().array(), [[1.5, 3.0, -1.0]]);
/// ```
pub trait LinearKernel<E: Dtype>: Device<E> {
    /// `x·Wᵀ + b` for `x` of shape `(B, I)`, `weight` `(O, I)` (PyTorch's
    /// layout) and `bias` `(O,)`, recording the backward pass on `x`'s tape.
    /// The kernel takes its scratch memory from `workspace` (the layer's
    /// own), so that the next call reuses it.
    fn try_linear<B: Dim, I: Dim, const O: usize, T: Tape<E, Self>>(
        x: Tensor<(B, I), E, Self, T>,
        weight: &Tensor<(Const<O>, I), E, Self>,
        bias: &Tensor<Rank1<O>, E, Self>,
        workspace: &Workspace,
    ) -> Result<Tensor<(B, Const<O>), E, Self, T>, Self::Err>;

    /// [`try_linear`](Self::try_linear) on a traced `x` whose own gradient
    /// nobody wants ([`NoInputGrad`](crate::nn::NoInputGrad), a batch of
    /// data): the backward pass records the gradients of `weight` and `bias`
    /// and need not compute `x`'s. [`Cpu`] skips it (`x`'s gradient is then
    /// absent from the gradients); the default computes it all the same.
    fn try_linear_no_input_grad<B: Dim, I: Dim, const O: usize>(
        x: Tensor<(B, I), E, Self, OwnedTape<E, Self>>,
        weight: &Tensor<(Const<O>, I), E, Self>,
        bias: &Tensor<Rank1<O>, E, Self>,
        workspace: &Workspace,
    ) -> Result<Tensor<(B, Const<O>), E, Self, OwnedTape<E, Self>>, Self::Err> {
        Self::try_linear(x, weight, bias, workspace)
    }
}

/// The composition of dfdx ops that every device can run.
pub mod generic {
    use dfdx::prelude::*;

    /// `x·Wᵀ + b` by dfdx's `matmul` and a broadcast add.
    pub fn linear<B: Dim, I: Dim, const O: usize, E: Dtype, D: Device<E>, T: Tape<E, D>>(
        x: Tensor<(B, I), E, D, T>,
        weight: &Tensor<(Const<O>, I), E, D>,
        bias: &Tensor<Rank1<O>, E, D>,
    ) -> Result<Tensor<(B, Const<O>), E, D, T>, D::Err> {
        let batch = x.shape().0;
        let w = weight.retaped::<T>().try_permute::<_, Axes2<1, 0>>()?;
        let b = bias
            .retaped::<T>()
            .try_broadcast_like(&(batch, Const::<O>))?;
        x.try_matmul(w)?.try_add(b)
    }
}

/// The CPU kernel, for each dtype it supports.
macro_rules! cpu_linear {
    ($($e:ty),*) => {$(
        impl LinearKernel<$e> for Cpu {
            fn try_linear<B: Dim, I: Dim, const O: usize, T: Tape<$e, Self>>(
                x: Tensor<(B, I), $e, Self, T>,
                weight: &Tensor<(Const<O>, I), $e, Self>,
                bias: &Tensor<Rank1<O>, $e, Self>,
                workspace: &Workspace,
            ) -> Result<Tensor<(B, Const<O>), $e, Self, T>, Self::Err> {
                if T::OWNS_TAPE {
                    return generic::linear(x, weight, bias);
                }
                if x.shape().0.size() <= SMALL_BATCH {
                    return cpu::small_batch(x, weight, bias, workspace);
                }
                match cpu::batch_isa::<$e>() {
                    Some(isa) => cpu::batch(isa, x, weight, bias, workspace),
                    None => generic::linear(x, weight, bias),
                }
            }

            fn try_linear_no_input_grad<B: Dim, I: Dim, const O: usize>(
                x: Tensor<(B, I), $e, Self, OwnedTape<$e, Self>>,
                weight: &Tensor<(Const<O>, I), $e, Self>,
                bias: &Tensor<Rank1<O>, $e, Self>,
                workspace: &Workspace,
            ) -> Result<Tensor<(B, Const<O>), $e, Self, OwnedTape<$e, Self>>, Self::Err> {
                cpu::no_input_grad(x, weight, bias, workspace)
            }
        }
    )*};
}
cpu_linear!(f32, f64);

#[cfg(feature = "cuda")]
impl<E: Dtype> LinearKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_linear<B: Dim, I: Dim, const O: usize, T: Tape<E, Self>>(
        x: Tensor<(B, I), E, Self, T>,
        weight: &Tensor<(Const<O>, I), E, Self>,
        bias: &Tensor<Rank1<O>, E, Self>,
        _workspace: &Workspace,
    ) -> Result<Tensor<(B, Const<O>), E, Self, T>, Self::Err> {
        generic::linear(x, weight, bias)
    }
}
