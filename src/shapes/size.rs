//! The output-size formula, as a `const fn` and at the type level.
use super::checks::{KernelFits, StrideNonZero, ToVerdict};
use super::table::{ToConst, ToTypenum};
use core::ops::{Add, Div, Mul, Sub};
use dfdx::shapes::{Const, ConstDim};
use typenum::{
    Add1, Diff, IsGreater, IsGreaterOrEqual, Max, Maximum, Prod, Quot, Sum, Unsigned, B1, U0, U1,
    U2,
};

/// The spatial output size of a convolution or pooling window:
/// `(input + 2·padding − kernel) / stride + 1` (rounded down, as in PyTorch).
///
/// Returns `None` if the kernel is larger than the padded input or the stride
/// is zero.
///
/// ```
/// use static_nn::shapes::try_conv_output_size;
/// assert_eq!(try_conv_output_size(28, 5, 1, 2), Some(28));
/// assert_eq!(try_conv_output_size(3, 5, 1, 0), None);
/// ```
pub const fn try_conv_output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Option<usize> {
    let padded = input + 2 * padding;
    if stride == 0 || kernel == 0 || kernel > padded {
        None
    } else {
        Some((padded - kernel) / stride + 1)
    }
}

/// The spatial output size of a convolution or pooling window:
/// `(input + 2·padding − kernel) / stride + 1` (rounded down, as in PyTorch).
///
/// Usable in `const` items; the notebook's exercise table (528/7/3/2 gives
/// (528 + 4 − 7) / 3 + 1 = 176, as PyTorch does):
///
/// ```
/// use static_nn::shapes::conv_output_size;
/// const A: usize = conv_output_size(30, 3, 1, 0);
/// const B: usize = conv_output_size(224, 5, 2, 1);
/// const C: usize = conv_output_size(528, 7, 3, 2);
/// assert_eq!((A, B, C), (28, 111, 176));
/// ```
///
/// # Panics
/// If the kernel is larger than the padded input, or the stride or kernel is
/// zero (in a `const` item this is a compile error). See
/// [`try_conv_output_size`] for a checked version.
pub const fn conv_output_size(input: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    match try_conv_output_size(input, kernel, stride, padding) {
        Some(n) => n,
        None => panic!(
            "conv_output_size: the kernel does not fit the padded input, or stride/kernel is 0"
        ),
    }
}

/// Type-level twin of [`conv_output_size`] on typenum integers, total for all
/// inputs: when the kernel does not fit, `Out` is meaningless and `Fits` is
/// `B0` (the layer's check reports it).
pub trait ConvArith {
    /// `(H + 2P − K) / S + 1`, with saturating subtraction and `S ≥ 1`.
    type Out: Unsigned;
    /// `B1` if `H + 2P ≥ K`, else `B0`.
    type Fits;
    /// `B1` if `S > 0`, else `B0`.
    type StrideOk;
}

type Padded<H, P> = Sum<H, Prod<P, U2>>;

impl<H, K, S, P> ConvArith for (H, K, S, P)
where
    H: Unsigned,
    K: Unsigned,
    S: Unsigned + Max<U1> + IsGreater<U0>,
    P: Unsigned + Mul<U2>,
    Prod<P, U2>: Unsigned,
    H: Add<Prod<P, U2>>,
    Padded<H, P>: Unsigned + Max<K> + IsGreaterOrEqual<K>,
    Maximum<Padded<H, P>, K>: Sub<K>,
    Diff<Maximum<Padded<H, P>, K>, K>: Div<Maximum<S, U1>>,
    Quot<Diff<Maximum<Padded<H, P>, K>, K>, Maximum<S, U1>>: Add<B1>,
    Add1<Quot<Diff<Maximum<Padded<H, P>, K>, K>, Maximum<S, U1>>>: Unsigned,
{
    type Out = Add1<Quot<Diff<Maximum<Padded<H, P>, K>, K>, Maximum<S, U1>>>;
    type Fits = <Padded<H, P> as IsGreaterOrEqual<K>>::Output;
    type StrideOk = <S as IsGreater<U0>>::Output;
}

/// The output dim of a window of size `K`, stride `S` and padding `P` sliding
/// over this input dim. Implemented for `Const<H>` with all sizes in the table.
///
/// `Layer` is the layer's type; it only names the layer in error messages.
///
/// ```
/// use dfdx::shapes::Const;
/// use static_nn::shapes::ConvOutSize;
/// // 224×224 input, 5×5 kernel, stride 2, padding 1 → 111
/// let _: ConvOutSize<224, 5, 2, 1, ()> = Const::<111>;
/// ```
pub trait ConvOut<const K: usize, const S: usize, const P: usize, Layer> {
    /// The output dim, an ordinary `Const<N>`.
    type Output: ConstDim;
}

type Quad<const H: usize, const K: usize, const S: usize, const P: usize> = (
    <Const<H> as ToTypenum>::Output,
    <Const<K> as ToTypenum>::Output,
    <Const<S> as ToTypenum>::Output,
    <Const<P> as ToTypenum>::Output,
);

impl<const H: usize, const K: usize, const S: usize, const P: usize, Layer> ConvOut<K, S, P, Layer>
    for Const<H>
where
    Const<H>: ToTypenum,
    Const<K>: ToTypenum,
    Const<S>: ToTypenum,
    Const<P>: ToTypenum,
    Quad<H, K, S, P>: ConvArith,
    <Quad<H, K, S, P> as ConvArith>::Out: ToConst,
    <Quad<H, K, S, P> as ConvArith>::Fits: ToVerdict,
    <Quad<H, K, S, P> as ConvArith>::StrideOk: ToVerdict,
    <<Quad<H, K, S, P> as ConvArith>::Fits as ToVerdict>::Output: KernelFits<Layer, K, H, P>,
    <<Quad<H, K, S, P> as ConvArith>::StrideOk as ToVerdict>::Output: StrideNonZero<Layer>,
{
    type Output = <<Quad<H, K, S, P> as ConvArith>::Out as ToConst>::Output;
}

/// The output dim for input size `H`, kernel `K`, stride `S`, padding `P`.
pub type ConvOutSize<const H: usize, const K: usize, const S: usize, const P: usize, Layer> =
    <Const<H> as ConvOut<K, S, P, Layer>>::Output;

#[cfg(test)]
mod tests {
    use super::*;

    fn size<const H: usize, const K: usize, const S: usize, const P: usize>() -> usize
    where
        Const<H>: ConvOut<K, S, P, ()>,
    {
        <ConvOutSize<H, K, S, P, ()> as ConstDim>::SIZE
    }

    #[test]
    fn notebook_table_at_both_levels() {
        assert_eq!(size::<30, 3, 1, 0>(), conv_output_size(30, 3, 1, 0));
        assert_eq!(size::<224, 5, 2, 1>(), 111);
        assert_eq!(size::<528, 7, 3, 2>(), 176);
        assert_eq!(size::<28, 5, 1, 2>(), 28);
        assert_eq!(size::<14, 5, 1, 0>(), 10);
        assert_eq!(size::<10, 2, 2, 0>(), 5);
        assert_eq!(size::<3, 2, 2, 1>(), 2);
    }

    #[test]
    fn const_fn_edge_cases() {
        assert_eq!(try_conv_output_size(5, 5, 1, 0), Some(1));
        assert_eq!(try_conv_output_size(5, 5, 0, 0), None);
        assert_eq!(try_conv_output_size(1, 3, 1, 1), Some(1));
        assert_eq!(try_conv_output_size(7, 2, 3, 0), Some(2));
    }
}
