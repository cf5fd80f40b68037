//! Flattening feature maps into feature vectors.
use crate::shapes::Flat;
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// Flattens each `(C, H, W)` feature map into `C·H·W` features.
///
/// PyTorch: `nn.Flatten()` (on a batch) or `x.view(x.shape[0], -1)`.
///
/// # Shapes
/// - input: `(B, C, H, W)` or `(C, H, W)`;
/// - output: `(B, Flat<C, H, W>)` or `(Flat<C, H, W>,)`, where
///   [`Flat`] is a compile-time size of `C·H·W` that needs no size table.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let x = dev.zeros::<Rank4<2, 16, 5, 5>>();
/// let y: Tensor<(Const<2>, Flat<16, 5, 5>), f32, _> = Flatten.forward(x);
/// assert_eq!(y.shape().1.size(), 400);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl ZeroSizedModule for Flatten {}
impl NonMutableModule for Flatten {}
super::build::zero_sized_build!(Flatten);
super::no_input_grad::no_input_grad_untraced!([] Flatten);
super::infer::infer_via_module!([] Flatten, Flatten, "Flatten()".to_string(), 0);

impl<
        B: Dim,
        const C: usize,
        const H: usize,
        const W: usize,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>> for Flatten
{
    type Output = Tensor<(B, Flat<C, H, W>), E, D, T>;
    type Error = D::Err;
    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
    ) -> Result<Self::Output, D::Err> {
        let batch = x.shape().0;
        x.try_reshape_like(&(batch, Flat))
    }
}

impl<const C: usize, const H: usize, const W: usize, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(Const<C>, Const<H>, Const<W>), E, D, T>> for Flatten
{
    type Output = Tensor<(Flat<C, H, W>,), E, D, T>;
    type Error = D::Err;
    fn try_forward(
        &self,
        x: Tensor<(Const<C>, Const<H>, Const<W>), E, D, T>,
    ) -> Result<Self::Output, D::Err> {
        x.try_reshape_like(&(Flat,))
    }
}
