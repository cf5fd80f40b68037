//! The CPU pooling kernels, parallel over planes. Max pooling records the
//! argmax of each window for the backward pass.
use super::max2x2::{max_plane_2x2, max_plane_2x2_values};
use super::{Pool2DOp, PoolKind};
use crate::ops::cpu_util::{copy_to_lease, is_nan, output_vec, tensor_from_vec};
use crate::ops::Workspace;
use dfdx::prelude::*;
use rayon::prelude::*;

/// Max-pools one plane; writes the flat index of each window's maximum into
/// `arg` (first maximum wins, as in PyTorch).
pub(super) fn max_plane<E: Dtype>(op: &Pool2DOp, x: &[E], y: &mut [E], arg: &mut [u32]) {
    for oy in 0..op.h_out {
        let (y0, y1) = op.window(oy, op.h_in);
        for ox in 0..op.w_out {
            let (x0, x1) = op.window(ox, op.w_in);
            let mut best = y0 * op.w_in + x0;
            for iy in y0..y1 {
                for ix in x0..x1 {
                    let i = iy * op.w_in + ix;
                    // `>` keeps the first maximum; NaN propagates like PyTorch.
                    if x[i] > x[best] || is_nan(x[i]) && !is_nan(x[best]) {
                        best = i;
                    }
                }
            }
            y[oy * op.w_out + ox] = x[best];
            arg[oy * op.w_out + ox] = best as u32;
        }
    }
}

/// Average-pools one plane (padding counts as 0 and stays in the divisor).
fn avg_plane<E: Dtype>(op: &Pool2DOp, x: &[E], y: &mut [E]) {
    let inv = E::ONE / E::from_usize(op.kernel * op.kernel).unwrap_or(E::ONE);
    for oy in 0..op.h_out {
        let (y0, y1) = op.window(oy, op.h_in);
        for ox in 0..op.w_out {
            let (x0, x1) = op.window(ox, op.w_in);
            let mut sum = E::default();
            for iy in y0..y1 {
                for v in &x[iy * op.w_in + x0..iy * op.w_in + x1] {
                    sum += *v;
                }
            }
            y[oy * op.w_out + ox] = sum * inv;
        }
    }
}

fn avg_plane_backward<E: Dtype>(op: &Pool2DOp, gy: &[E], gx: &mut [E]) {
    let inv = E::ONE / E::from_usize(op.kernel * op.kernel).unwrap_or(E::ONE);
    for oy in 0..op.h_out {
        let (y0, y1) = op.window(oy, op.h_in);
        for ox in 0..op.w_out {
            let (x0, x1) = op.window(ox, op.w_in);
            let g = gy[oy * op.w_out + ox] * inv;
            for iy in y0..y1 {
                for v in &mut gx[iy * op.w_in + x0..iy * op.w_in + x1] {
                    *v += g;
                }
            }
        }
    }
}

pub(crate) fn pool2d<S: Shape, So: Shape, E: Dtype, T: Tape<E, Cpu>>(
    op: Pool2DOp,
    x: Tensor<S, E, Cpu, T>,
    out: So,
    ws: &Workspace,
) -> Result<Tensor<So, E, Cpu, T>, CpuError> {
    let x = x.try_contiguous()?;
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    // dfdx lends no view of a tensor's storage: the input is copied into a
    // buffer from the layer's workspace, which the copy overwrites whole
    // (a buffer from the device would be zeroed first).
    let xs = copy_to_lease(&x, ws)?;
    let (hw, ohw) = (op.h_in * op.w_in, op.h_out * op.w_out);
    let mut ys = output_vec::<E>(&dev, op.planes * ohw)?;
    let mut arg = <Cpu as Storage<u32>>::try_alloc_len(
        &dev,
        if op.kind == PoolKind::Max && T::OWNS_TAPE {
            op.planes * ohw
        } else {
            0
        },
    )?;
    let fast_2x2 = op.kernel == 2 && op.stride == 2 && op.padding == 0;
    match op.kind {
        // no tape, no argmax to keep
        PoolKind::Max if !T::OWNS_TAPE => ys
            .par_chunks_mut(ohw)
            .zip(xs.par_chunks(hw))
            .with_min_len(16)
            .for_each_init(Vec::new, |arg, (yp, xp)| {
                if fast_2x2 {
                    max_plane_2x2_values(&op, xp, yp)
                } else {
                    arg.resize(ohw, 0);
                    max_plane(&op, xp, yp, arg)
                }
            }),
        PoolKind::Max => ys
            .par_chunks_mut(ohw)
            .zip(arg.par_chunks_mut(ohw))
            .zip(xs.par_chunks(hw))
            .with_min_len(16)
            .for_each(|((yp, ap), xp)| {
                if fast_2x2 {
                    max_plane_2x2(&op, xp, yp, ap)
                } else {
                    max_plane(&op, xp, yp, ap)
                }
            }),
        PoolKind::Avg => ys
            .par_chunks_mut(ohw)
            .zip(xs.par_chunks(hw))
            .with_min_len(16)
            .for_each(|(yp, xp)| avg_plane(&op, xp, yp)),
    }
    drop(xs);
    let y = tensor_from_vec(&dev, ys, out)?;
    if T::OWNS_TAPE {
        let (x_g, y_g) = (x.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            // Borrow y's gradient out of `grads` (no copy); it goes back below.
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            let gx = grads.get_or_alloc_mut(&x_g)?;
            match op.kind {
                PoolKind::Max => gx
                    .par_chunks_mut(hw)
                    .zip(gy.par_chunks(ohw).zip(arg.par_chunks(ohw)))
                    .with_min_len(16)
                    .for_each(|(gxp, (gyp, ap))| {
                        for (g, a) in gyp.iter().zip(ap) {
                            gxp[*a as usize] += *g;
                        }
                    }),
                PoolKind::Avg => gx
                    .par_chunks_mut(hw)
                    .zip(gy.par_chunks(ohw))
                    .with_min_len(16)
                    .for_each(|(gxp, gyp)| avg_plane_backward(&op, gyp, gxp)),
            }
            **grads.get_or_alloc_mut(&y_g)? = gy;
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}
