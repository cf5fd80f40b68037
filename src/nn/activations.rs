//! Activations: dfdx's own, made buildable in static-nn networks.
//!
//! | static-nn | PyTorch | shapes |
//! |---|---|---|
//! | [`ReLU`] | `nn.ReLU()` | any → same |
//! | [`Sigmoid`] | `nn.Sigmoid()` | any → same |
//! | [`Tanh`] | `nn.Tanh()` | any → same |
//! | [`Softmax`] | `nn.Softmax(dim=-1)` | any → same (over the last axis) |
//! | [`LogSoftmax`] | `nn.LogSoftmax(dim=-1)` | any → same (over the last axis) |
pub use dfdx::nn::modules::{LogSoftmax, ReLU, Sigmoid, Softmax, Tanh};

use super::infer::{push, InferShape, LayerRow};
use dfdx::prelude::ConstShape;

super::build::zero_sized_build!(ReLU, Sigmoid, Tanh, Softmax, LogSoftmax);

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
