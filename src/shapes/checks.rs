//! Shape checks with readable compile errors.
//!
//! Each trait here is implemented only when a layer fits its input. When it
//! does not, rustc reports the trait's `#[diagnostic::on_unimplemented]`
//! message, which names the layer and both sizes, for example
//!
//! ```text
//! error[E0277]: Linear expects 401 input features, but the input has 400
//! ```
//!
//! Users never implement these traits; they appear in the `where` clauses of
//! the layers' `Module` impls.
use typenum::B1;

/// Names `Conv2D` in window-fit errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct Conv2DLayer;
/// Names `MaxPool2D` in window-fit errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaxPool2DLayer;
/// Names `AvgPool2D` in window-fit errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct AvgPool2DLayer;

/// The input has as many channels as the `Conv2D` expects.
#[diagnostic::on_unimplemented(
    message = "Conv2D expects {EXPECTED} input channels, but the input has {FOUND}",
    label = "channel mismatch: Conv2D<{EXPECTED}, ..> gets {FOUND} channels",
    note = "the layer before it must output {EXPECTED} channels, or the Conv2D's IN must be {FOUND}"
)]
pub trait Conv2DChannels<const EXPECTED: usize, const FOUND: usize> {}
impl<const N: usize> Conv2DChannels<N, N> for () {}

/// The input has as many features as the `Linear` expects.
#[diagnostic::on_unimplemented(
    message = "Linear expects {EXPECTED} input features, but the input has {FOUND}",
    label = "feature mismatch: Linear<{EXPECTED}, ..> gets {FOUND} features",
    note = "the layer before it must output {EXPECTED} features, or the Linear's IN must be {FOUND}"
)]
pub trait LinearFeatures<const EXPECTED: usize, const FOUND: usize> {}
impl<const N: usize> LinearFeatures<N, N> for () {}

/// The flattened `C·H·W` input has as many features as the layer expects.
/// `Self` is typenum's comparison result (`B1` when they are equal).
#[diagnostic::on_unimplemented(
    message = "Linear expects {EXPECTED} input features, but the flattened input has {C}×{H}×{W}",
    label = "feature mismatch: Linear<{EXPECTED}, ..> gets {C}×{H}×{W} features",
    note = "set the Linear's IN to the product {C}×{H}×{W}, or use `LazyLinear` to infer it"
)]
pub trait LinearFlatFeatures<const EXPECTED: usize, const C: usize, const H: usize, const W: usize>
{
}
impl<const EXPECTED: usize, const C: usize, const H: usize, const W: usize>
    LinearFlatFeatures<EXPECTED, C, H, W> for B1
{
}

/// The window (kernel) fits inside the padded input.
/// `Self` is typenum's comparison result (`B1` when it fits).
#[diagnostic::on_unimplemented(
    message = "{Layer}: the kernel ({K}) is larger than its padded input ({H} + 2×{P})",
    label = "kernel {K} does not fit an input of size {H} with padding {P}",
    note = "use a smaller kernel, more padding, or a larger input"
)]
pub trait KernelFits<Layer, const K: usize, const H: usize, const P: usize> {}
impl<Layer, const K: usize, const H: usize, const P: usize> KernelFits<Layer, K, H, P> for B1 {}

/// The stride is at least 1.
#[diagnostic::on_unimplemented(
    message = "{Layer}: the stride must be at least 1",
    label = "stride 0"
)]
pub trait StrideNonZero<Layer> {}
impl<Layer> StrideNonZero<Layer> for B1 {}

/// Padding of a pooling window is at most half its size (as PyTorch requires).
/// `Self` is typenum's comparison result (`B1` when it holds).
#[diagnostic::on_unimplemented(
    message = "{Layer}: padding {P} is more than half the kernel size {K}",
    label = "pooling padding must be at most kernel / 2"
)]
pub trait PoolPaddingFits<Layer, const K: usize, const P: usize> {}
impl<Layer, const K: usize, const P: usize> PoolPaddingFits<Layer, K, P> for B1 {}

/// The input has as many channels (or features) as the `BatchNorm` expects.
#[diagnostic::on_unimplemented(
    message = "{Layer} expects {EXPECTED} channels, but the input has {FOUND}",
    label = "channel mismatch: {Layer}<{EXPECTED}> gets {FOUND} channels",
    note = "a BatchNorm's size must be the channel count of the layer before it: {Layer}<{FOUND}>"
)]
pub trait BatchNormChannels<Layer, const EXPECTED: usize, const FOUND: usize> {}
impl<Layer, const N: usize> BatchNormChannels<Layer, N, N> for () {}

/// Names `BatchNorm2D` in channel errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchNorm2DLayer;
/// Names `BatchNorm1D` in feature errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchNorm1DLayer;

/// The two branches of a residual connection give the same per-sample
/// shape `(C, H, W)`: the block's `f(x)` and the shortcut's `g(x)` (the input
/// itself for an identity shortcut).
#[diagnostic::on_unimplemented(
    message = "Residual: the block gives ({C}, {H}, {W}) but the shortcut gives ({C2}, {H2}, {W2})",
    label = "the two branches of this residual connection have different shapes",
    note = "an identity shortcut needs a block that keeps the shape; otherwise give the shortcut a projection (e.g. a 1×1 Conv2D with the block's stride) that outputs ({C}, {H}, {W})"
)]
pub trait ResidualShapes<
    const C: usize,
    const H: usize,
    const W: usize,
    const C2: usize,
    const H2: usize,
    const W2: usize,
>
{
}
impl<const C: usize, const H: usize, const W: usize> ResidualShapes<C, H, W, C, H, W> for () {}
