//! The rectifier `max(x, 0)` (PyTorch's `F.relu`), with its backward pass.
//!
//! dfdx's own `relu` runs its backward pass one element at a time on the
//! calling thread: in a LeNet training step that was about a tenth of the
//! time, while the other core waited. [`ReluKernel`] gives the CPU a
//! vectorised kernel spread over the cores; other devices keep dfdx's.
use dfdx::prelude::*;

mod add;
pub(crate) mod cpu;

/// A device that can apply the rectifier `y = max(x, 0)` with autograd.
///
/// The gradient is `gy` where `x > 0` and 0 elsewhere (also at `x = 0`, as
/// PyTorch and dfdx). A NaN input gives 0, as dfdx's `relu` does on every
/// device.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::ops::ReluKernel;
/// let dev = Cpu::default();
/// let x = dev.tensor([-1.0f32, 0.0, 2.0]);
/// assert_eq!(Cpu::try_relu(x).unwrap().array(), [0.0, 0.0, 2.0]);
/// ```
pub trait ReluKernel<E: Dtype>: Device<E> {
    /// `max(x, 0)` elementwise, recording the backward pass on `x`'s tape.
    fn try_relu<S: Shape, T: Tape<E, Self>>(
        x: Tensor<S, E, Self, T>,
    ) -> Result<Tensor<S, E, Self, T>, Self::Err>;

    /// The rectified sum `max(a + b, 0)` elementwise (the end of a residual
    /// block, PyTorch's `F.relu(a + b)`), recording the backward pass on
    /// the merged tapes of `a` and `b`: each gets `gy` where the sum is
    /// positive.
    ///
    /// The CPU does it in one op (one parallel pass each way, and no
    /// tensor for the sum); other devices add, then rectify.
    ///
    /// ```
    /// use static_nn::prelude::*;
    /// use static_nn::ops::ReluKernel;
    /// let dev = Cpu::default();
    /// let (a, b) = (dev.tensor([1.0f32, -2.0, 0.5]), dev.tensor([1.0f32, 1.0, -1.0]));
    /// let y = Cpu::try_add_relu(a.leaky_trace(), b.clone()).unwrap();
    /// assert_eq!(y.array(), [2.0, 0.0, 0.0]);
    /// let g = y.sum().backward();
    /// assert_eq!(g.get(&a).array(), [1.0, 0.0, 0.0]);
    /// ```
    fn try_add_relu<S: Shape, T: Tape<E, Self> + Merge<R>, R: Tape<E, Self>>(
        a: Tensor<S, E, Self, T>,
        b: Tensor<S, E, Self, R>,
    ) -> Result<Tensor<S, E, Self, T>, Self::Err> {
        Self::try_relu(a.try_add(b)?)
    }
}

/// The CPU kernel, for each dtype it supports.
macro_rules! cpu_relu {
    ($($e:ty),*) => {$(
        impl ReluKernel<$e> for Cpu {
            fn try_relu<S: Shape, T: Tape<$e, Self>>(
                x: Tensor<S, $e, Self, T>,
            ) -> Result<Tensor<S, $e, Self, T>, Self::Err> {
                if T::OWNS_TAPE {
                    cpu::relu(x)
                } else {
                    // dfdx rectifies a tensor it owns alone in place, in one
                    // vectorised pass, with no new buffer: no mask to keep.
                    x.try_relu()
                }
            }

            fn try_add_relu<S: Shape, T: Tape<$e, Self> + Merge<R>, R: Tape<$e, Self>>(
                a: Tensor<S, $e, Self, T>,
                b: Tensor<S, $e, Self, R>,
            ) -> Result<Tensor<S, $e, Self, T>, Self::Err> {
                if T::OWNS_TAPE {
                    // strided copies with their tapes, so their backward
                    // passes are recorded (the kernel reads plain memory)
                    let (b, b_tape) = b.try_contiguous()?.split_tape();
                    let (a, a_tape) = a.try_contiguous()?.split_tape();
                    add::add_relu(a.put_tape(a_tape.merge(b_tape)), b)
                } else {
                    // dfdx adds into a tensor it owns alone, then rectifies
                    // it in place: two passes, no new buffer, no mask.
                    a.try_add(b)?.try_relu()
                }
            }
        }
    )*};
}
cpu_relu!(f32, f64);

#[cfg(feature = "cuda")]
impl<E: Dtype> ReluKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_relu<S: Shape, T: Tape<E, Self>>(
        x: Tensor<S, E, Self, T>,
    ) -> Result<Tensor<S, E, Self, T>, Self::Err> {
        x.try_relu()
    }
}
