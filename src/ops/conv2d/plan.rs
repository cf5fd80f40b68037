//! One sample's convolution by the fastest kernel that serves it:
//! Winograd's F(2×2, 3×3) for 3×3 kernels of stride 1 and channels in
//! multiples of 8, else the direct tiles.
use super::{direct, winograd, Conv2DOp};
use crate::ops::cpu_util::Write;

/// A convolution prepared for one sample at a time (its weights packed or
/// transformed), by [`winograd`] or [`direct`].
pub(crate) enum SamplePlan {
    /// Winograd's F(2×2, 3×3).
    Winograd(winograd::Plan),
    /// The direct tiles.
    Direct(direct::Plan),
}

impl SamplePlan {
    /// The plan of `op` with weights `w` and bias `b`, where a kernel of
    /// this module serves it (f32 on AVX2 and FMA).
    pub(crate) fn new(op: &Conv2DOp, w: &[f32], b: Option<&[f32]>) -> Option<Self> {
        winograd::Plan::new(op, w, b)
            .map(Self::Winograd)
            .or_else(|| direct::Plan::new(op, w, b).map(Self::Direct))
    }

    /// Whether this plan is `op`'s, for samples of any batch.
    pub(crate) fn serves(&self, op: &Conv2DOp) -> bool {
        match self {
            Self::Winograd(p) => p.serves(op),
            Self::Direct(p) => p.serves(op),
        }
    }

    /// Elements of the scratch of one sample (see [`SamplePlan::run`]).
    pub(crate) fn padded_len(&self) -> usize {
        match self {
            Self::Winograd(p) => p.padded_len(),
            Self::Direct(p) => p.padded_len(),
        }
    }

    /// A workspace tag for the scratch: a buffer leased under it again
    /// still holds zeros in every padding position.
    pub(crate) fn padded_tag(&self) -> u64 {
        match self {
            Self::Winograd(p) => p.padded_tag(),
            Self::Direct(p) => p.padded_tag(),
        }
    }

    /// One sample: `y = conv(x) + b` (or `y += conv(x)` with
    /// [`Write::Accumulate`], where the bias is not added). `scratch` holds
    /// [`SamplePlan::padded_len`] elements, zero in the padding: a fresh
    /// buffer, or one leased under [`SamplePlan::padded_tag`].
    pub(crate) fn run(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32], write: Write) {
        match self {
            Self::Winograd(p) => p.run(x, y, scratch, write),
            Self::Direct(p) => p.run(x, y, scratch, write),
        }
    }
}
