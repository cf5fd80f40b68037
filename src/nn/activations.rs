//! Activations: static-nn's [`ReLU`] (a vectorised, parallel CPU kernel)
//! and dfdx's others, made buildable in static-nn networks.
//!
//! | static-nn | PyTorch | shapes |
//! |---|---|---|
//! | [`ReLU`] | `nn.ReLU()` | any → same |
//! | [`Sigmoid`] | `nn.Sigmoid()` | any → same |
//! | [`Tanh`] | `nn.Tanh()` | any → same |
//! | [`Softmax`] | `nn.Softmax(dim=-1)` | any → same (over the last axis) |
//! | [`LogSoftmax`] | `nn.LogSoftmax(dim=-1)` | any → same (over the last axis) |
pub use dfdx::nn::modules::{LogSoftmax, Sigmoid, Softmax, Tanh};

use super::infer::{push, InferShape, LayerRow};
use crate::ops::ReluKernel;
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::{ConstShape, Dtype, Shape, Tape, Tensor};

/// The rectifier `max(x, 0)`, elementwise.
///
/// PyTorch: `nn.ReLU()`. The gradient is 0 where `x ≤ 0`, as PyTorch's.
/// On the CPU it runs static-nn's kernel ([`ReluKernel`]: one vectorised
/// pass, spread over the cores for large tensors); on other devices dfdx's
/// `relu`.
///
/// # Shapes
/// Any shape → the same shape.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let y = ReLU.forward(dev.tensor([[-1.0f32, 2.0], [3.0, -4.0]]));
/// assert_eq!(y.array(), [[0.0, 2.0], [3.0, 0.0]]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ReLU;

impl ZeroSizedModule for ReLU {}
impl NonMutableModule for ReLU {}

impl<S: Shape, E: Dtype, D: ReluKernel<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for ReLU {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        D::try_relu(x)
    }
}

super::build::zero_sized_build!(ReLU, Sigmoid, Tanh, Softmax, LogSoftmax);
super::no_input_grad::no_input_grad_untraced!([] ReLU, [] Sigmoid, [] Tanh, [] Softmax, [] LogSoftmax);

/// `InferShape` for shape-keeping activations, with PyTorch's description.
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
