//! Pooling composed from dfdx's public, differentiable ops: each plane
//! becomes a column, one padding row is appended (−∞ for max, 0 for average),
//! a `gather` lays out every window, and `max`/`mean` reduces it.
use super::{Pool2DOp, PoolKind};
use dfdx::prelude::*;

/// The gather index: for each `(output position, window offset)`, the input
/// row `y·w + x`, or `h·w` (the padding row) outside the input.
pub fn window_index(op: &Pool2DOp) -> Vec<usize> {
    let pad_row = op.h_in * op.w_in;
    let k = op.kernel;
    let mut idx = Vec::with_capacity(op.h_out * op.w_out * k * k);
    for oy in 0..op.h_out {
        for ox in 0..op.w_out {
            for ky in 0..k {
                for kx in 0..k {
                    let y = (oy * op.stride + ky).checked_sub(op.padding);
                    let x = (ox * op.stride + kx).checked_sub(op.padding);
                    idx.push(match (y, x) {
                        (Some(y), Some(x)) if y < op.h_in && x < op.w_in => y * op.w_in + x,
                        _ => pad_row,
                    });
                }
            }
        }
    }
    idx
}

/// Pools `x` from dfdx ops; see the module docs.
pub fn pool2d<S: Shape, So: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    op: Pool2DOp,
    x: Tensor<S, E, D, T>,
    out: So,
) -> Result<Tensor<So, E, D, T>, D::Err> {
    let dev = x.device().clone();
    let (hw, ohw, kk) = (
        op.h_in * op.w_in,
        op.h_out * op.w_out,
        op.kernel * op.kernel,
    );
    let cols = x
        .try_reshape_like(&(op.planes, hw))?
        .try_permute::<_, Axes2<1, 0>>()?;
    let fill = match op.kind {
        PoolKind::Max => E::from_f64(f64::NEG_INFINITY).unwrap_or_default(),
        PoolKind::Avg => E::default(),
    };
    let pad = dev.try_ones_like(&(1usize, op.planes))?.try_mul(fill)?;
    let padded = (cols, pad).try_concat_along(Axis::<0>)?;
    let idx = dev.try_tensor_from_vec(window_index(&op), (ohw * kk,))?;
    let windows = padded
        .try_gather(idx)?
        .try_reshape_like(&(ohw, kk, op.planes))?;
    let pooled = match op.kind {
        PoolKind::Max => windows.try_max::<_, Axis<1>>()?,
        PoolKind::Avg => windows.try_mean::<_, Axis<1>>()?,
    };
    pooled
        .try_permute::<_, Axes2<1, 0>>()?
        .try_reshape_like(&out)
}
