//! Tuples of layers, run one after the other.
use dfdx::nn::NonMutableModule;

/// The built form of a tuple of up to 16 layers: `dev.build_module::<(A, B, C), f32>()`
/// returns `Sequential<(A::Built, B::Built, C::Built)>`.
///
/// PyTorch: `nn.Sequential(a, b, c)`; parameters are named by position
/// (`0.weight`, `3.bias`), as in PyTorch.
///
/// # Shapes
/// Each layer's output is the next layer's input; a mismatch anywhere is a
/// compile error naming the layer.
#[derive(Clone, Debug, Default)]
pub struct Sequential<T>(pub T);

impl<T> NonMutableModule for Sequential<T> {}
