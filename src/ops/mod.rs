//! The tensor operations behind static-nn's layers.
//!
//! dfdx 0.13 compiles no 2-D convolution and no 2-D pooling on stable Rust,
//! so static-nn provides them. Each op has two implementations behind one
//! device trait ([`Conv2DKernel`], [`Pool2DKernel`]):
//!
//! - `generic`: composed from dfdx's public, differentiable ops (`gather`,
//!   `concat_along`, `matmul`, `max`/`mean` over an axis). It runs on every
//!   dfdx device, so it is the CUDA path, and it is the reference the fast path
//!   is tested against.
//! - `cpu`: hand-written kernels (im2col + `gemm`, argmax max-pooling) spread
//!   over cores with rayon and registered as dfdx autograd ops with
//!   `Tape::add_backward_op`. This is what [`Cpu`](dfdx::tensor::Cpu) uses.
//!
//! The ops work on runtime sizes ([`Conv2DOp`], [`Pool2DOp`]); the layers in
//! [`nn`](crate::nn) compute those sizes from their types.

pub mod batch_norm;
pub mod conv2d;
pub(crate) mod cpu_util;
pub mod pool2d;
mod workspace;

pub use batch_norm::{BatchNormKernel, BatchNormOp, BatchStats};
pub use conv2d::{Conv2DKernel, Conv2DOp};
pub use pool2d::{Pool2DKernel, Pool2DOp, PoolKind};
pub(crate) use workspace::Lease;
pub use workspace::Workspace;
