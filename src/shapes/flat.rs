//! The flattened feature dim.
use dfdx::shapes::{ConstDim, Dim};

/// The dim of `C·H·W` features produced by [`Flatten`](crate::nn::Flatten)
/// from a `(C, H, W)` feature map.
///
/// It is a compile-time size like `Const<N>`, but it keeps its three factors,
/// so it needs no table entry however large the product is (a 3×224×224 image
/// flattens to 150,528 features). [`Linear`](crate::nn::Linear) checks that its
/// input count equals `C·H·W`; [`LazyLinear`](crate::nn::LazyLinear) takes it
/// as its input size.
///
/// ```
/// use dfdx::shapes::ConstDim;
/// use static_nn::shapes::Flat;
/// assert_eq!(<Flat<16, 5, 5> as ConstDim>::SIZE, 400);
/// assert_eq!(<Flat<3, 224, 224> as ConstDim>::SIZE, 150_528);
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flat<const C: usize, const H: usize, const W: usize>;

impl<const C: usize, const H: usize, const W: usize> Dim for Flat<C, H, W> {
    #[inline(always)]
    fn size(&self) -> usize {
        C * H * W
    }
    #[inline(always)]
    fn from_size(size: usize) -> Option<Self> {
        (size == C * H * W).then_some(Self)
    }
}

impl<const C: usize, const H: usize, const W: usize> ConstDim for Flat<C, H, W> {
    const SIZE: usize = C * H * W;
}
