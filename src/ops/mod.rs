//! The tensor operations behind static-nn's layers.
//!
//! dfdx 0.13 compiles no 2-D convolution and no 2-D pooling on stable Rust,
//! so static-nn provides them. Each op has two implementations behind one
//! device trait ([`Conv2DKernel`], [`Pool2DKernel`], [`BatchNormKernel`]):
//!
//! - `generic`: composed from dfdx's public, differentiable ops (`gather`,
//!   `concat_along`, `matmul`, `max`/`mean` over an axis). It runs on every
//!   dfdx device, so it is the CUDA path, and it is the reference the fast path
//!   is tested against.
//! - `cpu`: hand-written kernels (im2col + `gemm`, argmax max-pooling) spread
//!   over cores with rayon and registered as dfdx autograd ops with
//!   `Tape::add_backward_op`. This is what [`Cpu`](dfdx::tensor::Cpu) uses.
//!
//! [`ReluKernel`] and [`LinearKernel`] are the exceptions: their other devices
//! run dfdx's own ops, and only the CPU has kernels of static-nn's where
//! dfdx's are slow (its ReLU backward runs one element at a time on one
//! thread; its `matmul` packs the weight even for a single sample).
//!
//! `basic_block` has no device trait at all: it is ResNet's whole basic
//! block in training mode as one CPU op, built from the convolution's and
//! the batch norm's CPU pieces, which
//! [`BasicBlock`](crate::models::BasicBlock) calls when its layers are the
//! defaults (any other block runs layer by layer, on every device).
//!
//! The ops work on runtime sizes ([`Conv2DOp`], [`Pool2DOp`]); the layers in
//! [`nn`](crate::nn) compute those sizes from their types.

pub(crate) mod basic_block;
pub mod batch_norm;
pub mod conv2d;
pub(crate) mod cpu_util;
pub mod linear;
mod memo;
pub mod pool2d;
pub mod relu;
mod workspace;

pub use batch_norm::{BatchNormKernel, BatchNormOp, BatchStats};
pub use conv2d::{Conv2DKernel, Conv2DOp};
pub use linear::LinearKernel;
pub use pool2d::{Pool2DKernel, Pool2DOp, PoolKind};
pub use relu::ReluKernel;

/// Every kernel that static-nn's layers need, in one bound: code generic
/// over the device writes `D: LayerKernels<f32>` instead of listing them
/// (implemented for every device that has them all: [`Cpu`](dfdx::tensor::Cpu),
/// and `Cuda` with the `cuda` feature).
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::ops::LayerKernels;
///
/// fn logits<D: LayerKernels<f32> + DeviceBuildExt>(dev: &D) -> Tensor<Rank2<2, 10>, f32, D> {
///     let net = dev.build_module::<LeNetClass, f32>();
///     net.forward(dev.zeros::<Rank4<2, 1, 28, 28>>())
/// }
/// assert_eq!(logits(&Cpu::default()).shape(), &(Const::<2>, Const::<10>));
/// ```
pub trait LayerKernels<E: dfdx::prelude::Dtype>:
    Conv2DKernel<E> + Pool2DKernel<E> + BatchNormKernel<E> + ReluKernel<E> + LinearKernel<E>
{
}

impl<E: dfdx::prelude::Dtype, D> LayerKernels<E> for D where
    D: Conv2DKernel<E> + Pool2DKernel<E> + BatchNormKernel<E> + ReluKernel<E> + LinearKernel<E>
{
}
pub use workspace::Workspace;
pub(crate) use workspace::{tag_of, Lease};
