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
use dfdx::shapes::Const;
use typenum::{B0, B1};

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

/// The flattened `C·H·W = FOUND` input has as many features as the `Linear`
/// expects. `FOUND` is the product, computed at the type level and read back
/// through the size table ([`FlatFeatureCount`]).
#[diagnostic::on_unimplemented(
    message = "Linear expects {EXPECTED} input features, but the flattened input has {FOUND} ({C}×{H}×{W})",
    label = "feature mismatch: Linear<{EXPECTED}, ..> gets {FOUND} = {C}×{H}×{W} features",
    note = "set the Linear's IN to {FOUND}, or use `LazyLinear` to infer it"
)]
pub trait LinearFlatFeatures<
    const EXPECTED: usize,
    const FOUND: usize,
    const C: usize,
    const H: usize,
    const W: usize,
>
{
}
impl<const N: usize, const C: usize, const H: usize, const W: usize>
    LinearFlatFeatures<N, N, C, H, W> for ()
{
}

/// A `Linear<EXPECTED, ..>` accepts the `C·H·W` flattened features counted
/// by `Self`: `Const<FOUND>` when `FOUND` (the product) equals `EXPECTED`. The
/// impl only moves `FOUND` from the type into a const parameter of
/// [`LinearFlatFeatures`], whose message names it; for a product beyond the
/// size table `Self` is [`BeyondTable`] and this trait's message applies.
#[diagnostic::on_unimplemented(
    message = "Linear<{EXPECTED}, ..>: the flattened input {C}×{H}×{W} is larger than static-nn's size table",
    label = "a `Linear<IN, ..>` after `Flatten` needs C·H·W at most `static_nn::shapes::MAX_TABLE_DIM`",
    note = "use `LazyLinear` or `LinearOf<Flat<{C}, {H}, {W}>, OUT>`, which need no table, or rebuild with STATIC_NN_MAX_DIM set to a larger value"
)]
pub trait LinearFlatInput<const EXPECTED: usize, const C: usize, const H: usize, const W: usize> {}
impl<const EXPECTED: usize, const FOUND: usize, const C: usize, const H: usize, const W: usize>
    LinearFlatInput<EXPECTED, C, H, W> for Const<FOUND>
where
    (): LinearFlatFeatures<EXPECTED, FOUND, C, H, W>,
{
}

/// Converts the typenum product `C·H·W` before a `Linear` to the `Const<N>`
/// dim of the same size, or to [`BeyondTable`] if it is larger than the size
/// table. Implemented for every typenum unsigned integer (by `build.rs`).
pub trait FlatFeatureCount {
    /// `Const<N>` or `BeyondTable`.
    type Output;
}

/// A flattened feature count larger than the size table
/// ([`MAX_TABLE_DIM`](super::MAX_TABLE_DIM)), which cannot be read back to a
/// `Const<N>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BeyondTable;

/// The outcome of a typenum comparison, as the `Self` type of the checks
/// below: `Verdict<true>` when it holds. Using it instead of typenum's `B1`
/// and `B0` keeps typenum's names out of the errors' `help:` lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct Verdict<const HOLDS: bool>;

/// Maps typenum's `B1`/`B0` to [`Verdict<true>`](Verdict)/`Verdict<false>`.
pub trait ToVerdict {
    /// The verdict.
    type Output;
}
impl ToVerdict for B0 {
    type Output = Verdict<false>;
}
impl ToVerdict for B1 {
    type Output = Verdict<true>;
}

/// The window (kernel) fits inside the padded input.
/// `Self` is the comparison's [`Verdict`] (`Verdict<true>` when it fits).
#[diagnostic::on_unimplemented(
    message = "{Layer}: the kernel ({K}) is larger than its padded input ({H} + 2×{P})",
    label = "kernel {K} does not fit an input of size {H} with padding {P}",
    note = "use a smaller kernel, more padding, or a larger input"
)]
pub trait KernelFits<Layer, const K: usize, const H: usize, const P: usize> {}
impl<Layer, const K: usize, const H: usize, const P: usize> KernelFits<Layer, K, H, P>
    for Verdict<true>
{
}

/// The stride is at least 1.
/// `Self` is the comparison's [`Verdict`] (`Verdict<true>` when it holds).
#[diagnostic::on_unimplemented(
    message = "{Layer}: the stride must be at least 1",
    label = "stride 0"
)]
pub trait StrideNonZero<Layer> {}
impl<Layer> StrideNonZero<Layer> for Verdict<true> {}

/// Padding of a pooling window is at most half its size (as PyTorch requires).
/// `Self` is the comparison's [`Verdict`] (`Verdict<true>` when it holds).
#[diagnostic::on_unimplemented(
    message = "{Layer}: padding {P} is more than half the kernel size {K}",
    label = "pooling padding must be at most kernel / 2"
)]
pub trait PoolPaddingFits<Layer, const K: usize, const P: usize> {}
impl<Layer, const K: usize, const P: usize> PoolPaddingFits<Layer, K, P> for Verdict<true> {}

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
/// Names `BatchNormReLU2D` in channel errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchNormReLU2DLayer;
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
