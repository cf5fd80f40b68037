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

super::build::zero_sized_build!(ReLU, Sigmoid, Tanh, Softmax, LogSoftmax);
