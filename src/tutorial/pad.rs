//! Zero padding on typed tensors, with the padded size in the type.
use crate::shapes::{Tn, ToConst, ToTypenum};
use core::ops::{Add, Mul};
use dfdx::shapes::{Const, ConstDim, Rank3};
use dfdx::tensor::Tensor;
use dfdx::tensor_ops::Device;
use typenum::{Prod, Sum, U2};

/// The size `N + 2·P` of a dim of size `N` padded by `P` on both sides,
/// computed at compile time through static-nn's `Const` ↔ typenum table
/// ([`ToTypenum`], [`ToConst`]). Implemented for `Const<N>` whenever `N`,
/// `P` and `N + 2P` are in the table.
pub trait PadDim<const P: usize> {
    /// `Const<N + 2P>`.
    type Output: ConstDim;
}

impl<const N: usize, const P: usize> PadDim<P> for Const<N>
where
    Const<N>: ToTypenum,
    Const<P>: ToTypenum,
    Tn<P>: Mul<U2>,
    Tn<N>: Add<Prod<Tn<P>, U2>>,
    Sum<Tn<N>, Prod<Tn<P>, U2>>: ToConst,
{
    type Output = <Sum<Tn<N>, Prod<Tn<P>, U2>> as ToConst>::Output;
}

/// The dim of size `N + 2·P` (e.g. `PadSize<3, 1>` is `Const<5>`).
///
/// ```
/// use static_nn::tutorial::PadSize;
/// use dfdx::shapes::Const;
/// let _: PadSize<3, 1> = Const::<5>;
/// let _: PadSize<28, 2> = Const::<32>;
/// ```
pub type PadSize<const N: usize, const P: usize> = <Const<N> as PadDim<P>>::Output;

/// Pads every channel of a `(C, H, W)` image with `P` rows and columns of
/// zeros on each side. The output shape `(C, H + 2P, W + 2P)` is in the
/// type, so the compiler knows that a 2×2 kernel over the padded 3×3 image
/// gives 4×4.
///
/// PyTorch: `F.pad(img, (P, P, P, P))` (left, right, top, bottom).
/// Padding by hand and then convolving equals a layer with padding `P`
/// (`Conv2D<_, _, K, 1, P>`, PyTorch's `padding=P`).
///
/// The result is a new tensor without a gradient tape (padding here is for
/// looking at, not for training through).
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::tutorial::pad;
/// let dev = Cpu::default();
/// let img = dev.tensor([[[1.0f32, 2., 3.], [4., 5., 6.], [7., 8., 9.]]]);
/// let padded: Tensor<Rank3<1, 5, 5>, f32, _> = pad::<1, 1, 3, 3, _>(&img);
/// assert_eq!(padded.array()[0][1], [0.0, 1.0, 2.0, 3.0, 0.0]);
/// assert_eq!(padded.array()[0][0], [0.0; 5]);
/// ```
pub fn pad<const P: usize, const C: usize, const H: usize, const W: usize, D>(
    img: &Tensor<Rank3<C, H, W>, f32, D>,
) -> Tensor<(Const<C>, PadSize<H, P>, PadSize<W, P>), f32, D>
where
    D: Device<f32>,
    Const<H>: PadDim<P>,
    Const<W>: PadDim<P>,
{
    let (ph, pw) = (H + 2 * P, W + 2 * P);
    let src = img.as_vec();
    let mut data = vec![0.0f32; C * ph * pw];
    for c in 0..C {
        for i in 0..H {
            let from = (c * H + i) * W;
            let to = (c * ph + i + P) * pw + P;
            data[to..to + W].copy_from_slice(&src[from..from + W]);
        }
    }
    img.device()
        .tensor_from_vec(data, (Const, Default::default(), Default::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::prelude::*;

    #[test]
    fn pads_each_channel() {
        let dev = Cpu::default();
        let img = dev.tensor([[[1.0f32, 2.0]], [[3.0, 4.0]]]);
        let p: Tensor<Rank3<2, 5, 6>, f32, _> = pad::<2, 2, 1, 2, _>(&img);
        let a = p.array();
        assert_eq!(a[0][2], [0.0, 0.0, 1.0, 2.0, 0.0, 0.0]);
        assert_eq!(a[1][2], [0.0, 0.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(p.as_vec().iter().sum::<f32>(), 10.0);
        let same: Tensor<Rank3<2, 1, 2>, f32, _> = pad::<0, 2, 1, 2, _>(&img);
        assert_eq!(same.array(), img.array());
    }
}
