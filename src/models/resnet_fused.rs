//! The training forward pass of a [`BasicBlock`] built with its default
//! layers, f32 on the CPU: one op for the whole block
//! ([`crate::ops::basic_block`]) instead of five (seven with a projection).
//!
//! The block is generic over its layers, and stable Rust has no
//! specialisation, so the choice is made at run time by type: when the
//! block's layers are exactly the defaults (a [`Projection`](super::Projection) or the
//! identity as shortcut), on [`Cpu`] in f32, the fused op runs. Any other
//! block runs layer by layer, as does one whose sizes do not fit (the
//! layers then report the error).
use super::resnet::BasicBlock;
use crate::nn::{BatchNormModule, Conv2DModule, Identity, Sequential};
use crate::ops::basic_block::{self, BlockParts, ConvPart, NormPart};
use crate::ops::{BatchNormOp, Conv2DOp};
use crate::shapes::checks::{BatchNorm2DLayer, BatchNormReLU2DLayer};
use dfdx::prelude::*;
use std::any::{Any, TypeId};

/// The built [`Projection`](super::Projection) in f32 on the CPU.
type ProjectionModule<const IN: usize, const OUT: usize, const S: usize> = Sequential<(
    Conv2DModule<IN, OUT, 1, 1, S, 0, f32, Cpu, false>,
    BatchNormModule<OUT, f32, Cpu, BatchNorm2DLayer>,
)>;

/// `a` as `B`, which the caller has checked to be `A` itself (by
/// `TypeId`, [`same_type`]): the move that `Any::downcast` makes for a
/// box, without the box.
fn identity_cast<A: 'static, B: 'static>(a: A) -> B {
    let mut slot = Some(a);
    let any: &mut dyn Any = &mut slot;
    match any.downcast_mut::<Option<B>>().and_then(Option::take) {
        Some(b) => b,
        None => unreachable!("identity_cast between different types"),
    }
}

/// `TypeId::of::<A>() == TypeId::of::<B>()`.
fn same_type<A: 'static, B: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<B>()
}

/// `m` as the module `M`, if it is one.
fn as_module<M: 'static>(m: &mut dyn Any) -> Option<&mut M> {
    m.downcast_mut::<M>()
}

/// A bias-free convolution of the block, with its sizes `op`, for the op.
fn conv_part<const I: usize, const O: usize, const K: usize, const S: usize, const P: usize>(
    conv: &Conv2DModule<I, O, K, K, S, P, f32, Cpu, false>,
    op: Conv2DOp,
) -> ConvPart<'_, Rank4<O, I, K, K>> {
    ConvPart {
        op,
        weight: &conv.weight,
        workspace: conv.workspace(),
    }
}

/// A batch norm of the block, with its sizes `op`, for the op.
fn norm_part<const C: usize, L>(
    norm: &BatchNormModule<C, f32, Cpu, L>,
    op: BatchNormOp,
) -> NormPart<'_, Rank1<C>> {
    NormPart {
        op,
        weight: &norm.weight,
        bias: &norm.bias,
    }
}

/// What [`train`] did with its input.
pub(super) enum Fused<Y, X> {
    /// It ran the fused block: its output, or its error.
    Ran(Y),
    /// The block is not one that the fused op serves: the input back, for
    /// the layer-by-layer pass.
    Declined(X),
}

/// The block's training forward pass on `x`, a batch of `batch` images of
/// `h × w`, in one op, where the block is built with the default layers
/// (no bias set by hand on its convolutions) on the CPU in f32 and the
/// sizes fit.
pub(super) fn train<
    const IN: usize,
    const OUT: usize,
    const S: usize,
    SC: 'static,
    C1: 'static,
    B1: 'static,
    C2: 'static,
    B2: 'static,
    Sx: Shape,
    Sy: Shape,
    E: Dtype,
    D: Device<E>,
    T: 'static,
>(
    block: &mut BasicBlock<IN, OUT, S, SC, C1, B1, C2, B2>,
    x: Tensor<Sx, E, D, T>,
    (batch, h, w): (usize, usize, usize),
    out: Sy,
) -> Fused<Result<Tensor<Sy, E, D, T>, D::Err>, Tensor<Sx, E, D, T>> {
    let cpu_f32 = same_type::<E, f32>() && same_type::<D, Cpu>() && same_type::<D::Err, CpuError>();
    let owned = same_type::<T, OwnedTape<f32, Cpu>>();
    if !cpu_f32 || !(owned || same_type::<T, NoneTape>()) {
        return Fused::Declined(x);
    }
    let BasicBlock {
        conv1,
        bn1,
        conv2,
        bn2,
        shortcut,
    } = block;
    let (Some(conv1), Some(bn1), Some(conv2), Some(bn2)) = (
        as_module::<Conv2DModule<IN, OUT, 3, 3, S, 1, f32, Cpu, false>>(conv1),
        as_module::<BatchNormModule<OUT, f32, Cpu, BatchNormReLU2DLayer>>(bn1),
        as_module::<Conv2DModule<OUT, OUT, 3, 3, 1, 1, f32, Cpu, false>>(conv2),
        as_module::<BatchNormModule<OUT, f32, Cpu, BatchNorm2DLayer>>(bn2),
    ) else {
        return Fused::Declined(x);
    };
    let projection = if same_type::<SC, Identity>() {
        None
    } else if let Some(p) = as_module::<ProjectionModule<IN, OUT, S>>(shortcut) {
        Some(&mut p.0)
    } else {
        return Fused::Declined(x);
    };
    // a bias put by hand on a convolution built without one: the layers
    // apply it, the fused op would not
    let proj_bias = projection
        .as_ref()
        .is_some_and(|(conv, _)| conv.bias.is_some());
    if conv1.bias.is_some() || conv2.bias.is_some() || proj_bias {
        return Fused::Declined(x);
    }

    // the layers' sizes for this input, as their own forward passes take them
    let a1 = conv1.op(batch, h, w);
    let a2 = conv2.op(batch, a1.h_out, a1.w_out);
    let plane = a2.h_out * a2.w_out;
    let parts = BlockParts {
        conv1: conv_part(conv1, a1),
        bn1: norm_part(bn1, bn1.op(batch, a1.h_out * a1.w_out, true)),
        conv2: conv_part(conv2, a2),
        bn2: norm_part(bn2, bn2.op(batch, plane, false)),
        projection: projection.as_ref().map(|(conv, norm)| {
            let op = norm.op(batch, plane, false);
            (conv_part(conv, conv.op(batch, h, w)), norm_part(norm, op))
        }),
    };
    if !parts.fit(x.shape().num_elements(), out.num_elements()) {
        // the layers report the error
        return Fused::Declined(x);
    }

    let result = if owned {
        let x: Tensor<Sx, f32, Cpu, OwnedTape<f32, Cpu>> = identity_cast(x);
        basic_block::train(x, &parts, out).map(|(y, stats)| (identity_cast(y), stats))
    } else {
        let x: Tensor<Sx, f32, Cpu, NoneTape> = identity_cast(x);
        basic_block::train(x, &parts, out).map(|(y, stats)| (identity_cast(y), stats))
    };
    let (y, stats) = match result {
        Ok(done) => done,
        Err(e) => return Fused::Ran(Err(identity_cast(e))),
    };
    bn1.update_running(&stats.bn1);
    bn2.update_running(&stats.bn2);
    if let (Some((_, norm)), Some(st)) = (projection, &stats.projection) {
        norm.update_running(st);
    }
    Fused::Ran(Ok(y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Projection;
    use crate::nn::{Conv2D, DeviceBuildExt};

    type Out<const C: usize, const H: usize> = (Const<2>, Const<C>, Const<H>, Const<H>);

    /// The default layers on the CPU in f32 run fused, with or without a
    /// tape; another layer, another dtype or sizes that do not fit run
    /// layer by layer (the input comes back).
    #[test]
    fn only_the_default_layers_in_f32_are_fused() {
        let dev = Cpu::seed_from_u64(0);
        let x = || -> Tensor<Rank4<2, 4, 6, 6>, f32, Cpu> { dev.sample_normal() };
        let traced =
            || -> Tensor<Rank4<2, 4, 6, 6>, f32, Cpu, OwnedTape<f32, Cpu>> { x().leaky_trace() };
        let out: Out<4, 6> = Default::default();
        let mut block = dev.build_module::<BasicBlock<4, 4, 1>, f32>();
        assert!(matches!(
            train(&mut block, traced(), (2, 6, 6), out),
            Fused::Ran(Ok(_))
        ));
        assert!(matches!(
            train(&mut block, x(), (2, 6, 6), out),
            Fused::Ran(Ok(_))
        ));
        let mut proj = dev.build_module::<BasicBlock<4, 8, 2, Projection<4, 8, 2>>, f32>();
        let half: Out<8, 3> = Default::default();
        assert!(matches!(
            train(&mut proj, traced(), (2, 6, 6), half),
            Fused::Ran(Ok(_))
        ));

        // a first convolution with a bias is not the default
        type Biased = BasicBlock<4, 4, 1, Identity, Conv2D<4, 4, 3, 1, 1, true>>;
        let mut biased = dev.build_module::<Biased, f32>();
        assert!(matches!(
            train(&mut biased, traced(), (2, 6, 6), out),
            Fused::Declined(_)
        ));
        // nor is a bias put by hand on one built without
        let mut by_hand = dev.build_module::<BasicBlock<4, 4, 1>, f32>();
        by_hand.conv2.bias = Some(dev.zeros());
        assert!(matches!(
            train(&mut by_hand, traced(), (2, 6, 6), out),
            Fused::Declined(_)
        ));
        let mut wide = dev.build_module::<BasicBlock<4, 4, 1>, f64>();
        let x64 = x().to_dtype::<f64>();
        assert!(matches!(
            train(&mut wide, x64, (2, 6, 6), out),
            Fused::Declined(_)
        ));
        // sizes that do not match the input
        assert!(matches!(
            train(&mut block, x(), (3, 6, 6), out),
            Fused::Declined(_)
        ));
    }
}
