//! The CPU convolution: im2col + `gemm`, parallel over the batch.
//!
//! Forward, per sample: `col = im2col(x)` (`chan_in·kh·kw × h_out·w_out`), then
//! `y = W · col + b`. Backward: `dW += Σ gy · colᵀ`, `db += Σ gy`,
//! `dcol = Wᵀ · gy` and `dx += col2im(dcol)`. The im2col matrices of the
//! forward pass are kept for the backward pass only when a tape records it.
use super::Conv2DOp;
use crate::ops::cpu_util::{gemm, to_vec};
use dfdx::prelude::*;
use rayon::prelude::*;

/// The range of output columns `ox` whose input column
/// `ox·stride + kx − padding` lies inside `0..w_in`.
#[inline]
fn valid_cols(op: &Conv2DOp, kx: usize) -> (usize, usize) {
    let s = op.stride;
    let lo = op.padding.saturating_sub(kx).div_ceil(s);
    let hi = (op.w_in + op.padding).saturating_sub(kx).div_ceil(s);
    (lo.min(op.w_out), hi.min(op.w_out).max(lo.min(op.w_out)))
}

/// Fills `col` (`chan_in·kh·kw × h_out·w_out`) from one sample `x`
/// (`chan_in × h_in × w_in`).
pub(crate) fn im2col<E: Dtype>(op: &Conv2DOp, x: &[E], col: &mut [E]) {
    let (hw, ohw) = (op.h_in * op.w_in, op.out_plane());
    for c in 0..op.chan_in {
        let plane = &x[c * hw..(c + 1) * hw];
        for ky in 0..op.kh {
            for kx in 0..op.kw {
                let row = (c * op.kh + ky) * op.kw + kx;
                let row = &mut col[row * ohw..(row + 1) * ohw];
                let (lo, hi) = valid_cols(op, kx);
                for oy in 0..op.h_out {
                    let dst = &mut row[oy * op.w_out..(oy + 1) * op.w_out];
                    let iy = (oy * op.stride + ky).wrapping_sub(op.padding);
                    if iy >= op.h_in {
                        dst.fill(E::default());
                        continue;
                    }
                    let src = &plane[iy * op.w_in..(iy + 1) * op.w_in];
                    dst[..lo].fill(E::default());
                    dst[hi..].fill(E::default());
                    if lo == hi {
                        continue; // no valid column: all padding (and x0 below would underflow)
                    }
                    let x0 = lo * op.stride + kx - op.padding;
                    if op.stride == 1 {
                        dst[lo..hi].copy_from_slice(&src[x0..x0 + (hi - lo)]);
                    } else {
                        for (d, ix) in dst[lo..hi].iter_mut().zip((x0..).step_by(op.stride)) {
                            *d = src[ix];
                        }
                    }
                }
            }
        }
    }
}

/// Adds `col` (`chan_in·kh·kw × h_out·w_out`) back onto one sample's input
/// gradient `dx` (`chan_in × h_in × w_in`): the adjoint of [`im2col`].
pub(crate) fn col2im_add<E: Dtype>(op: &Conv2DOp, col: &[E], dx: &mut [E]) {
    let (hw, ohw) = (op.h_in * op.w_in, op.out_plane());
    for c in 0..op.chan_in {
        let plane = &mut dx[c * hw..(c + 1) * hw];
        for ky in 0..op.kh {
            for kx in 0..op.kw {
                let row = (c * op.kh + ky) * op.kw + kx;
                let row = &col[row * ohw..(row + 1) * ohw];
                let (lo, hi) = valid_cols(op, kx);
                for oy in 0..op.h_out {
                    let iy = (oy * op.stride + ky).wrapping_sub(op.padding);
                    if iy >= op.h_in {
                        continue;
                    }
                    let src = &row[oy * op.w_out..(oy + 1) * op.w_out];
                    let dst = &mut plane[iy * op.w_in..(iy + 1) * op.w_in];
                    if lo == hi {
                        continue; // no valid column: all padding (and x0 below would underflow)
                    }
                    let x0 = lo * op.stride + kx - op.padding;
                    for (g, ix) in src[lo..hi].iter().zip((x0..).step_by(op.stride)) {
                        dst[ix] += *g;
                    }
                }
            }
        }
    }
}

/// One sample's forward pass: `y = W · col + b`.
fn forward_sample<E: Dtype>(op: &Conv2DOp, w: &[E], b: &[E], col: &[E], y: &mut [E]) {
    let ohw = op.out_plane();
    for (o, bias) in b.iter().enumerate() {
        y[o * ohw..(o + 1) * ohw].fill(*bias);
    }
    gemm(
        op.chan_out,
        ohw,
        op.patch_len(),
        y,
        w,
        false,
        col,
        false,
        true,
        false,
    );
}

/// Samples per partial sum of the weight gradient.
const REDUCE_CHUNK: usize = 8;

pub(crate) fn conv2d<S: Shape, Sw: Shape, Sb: Shape, So: Shape, E: Dtype, T: Tape<E, Cpu>>(
    op: Conv2DOp,
    x: Tensor<S, E, Cpu, T>,
    weight: &Tensor<Sw, E, Cpu>,
    bias: &Tensor<Sb, E, Cpu>,
    out: So,
) -> Result<Tensor<So, E, Cpu, T>, CpuError> {
    let x = x.try_contiguous()?;
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    let xs = to_vec(&x)?;
    let ws = to_vec(weight)?;
    let bs = to_vec(bias)?;
    let (chw, ckk, ohw) = (
        op.chan_in * op.h_in * op.w_in,
        op.patch_len(),
        op.out_plane(),
    );
    let out_len = op.chan_out * ohw;
    let mut y = vec![E::default(); op.batch * out_len];

    let cols = if T::OWNS_TAPE {
        let mut cols = vec![E::default(); op.batch * ckk * ohw];
        cols.par_chunks_mut(ckk * ohw)
            .zip(y.par_chunks_mut(out_len))
            .zip(xs.par_chunks(chw))
            .for_each(|((col, yi), xi)| {
                im2col(&op, xi, col);
                forward_sample(&op, &ws, &bs, col, yi);
            });
        cols
    } else {
        y.par_chunks_mut(out_len)
            .zip(xs.par_chunks(chw))
            .for_each_init(
                || vec![E::default(); ckk * ohw],
                |col, (yi, xi)| {
                    im2col(&op, xi, col);
                    forward_sample(&op, &ws, &bs, col, yi);
                },
            );
        Vec::new()
    };
    let y = dev.try_tensor_from_vec(y, out)?;

    if T::OWNS_TAPE {
        let (x_g, w_g, b_g, y_g) = (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let gy: Vec<E> = grads.get_or_alloc_mut(&y_g)?.to_vec();

            let gb = grads.get_or_alloc_mut(&b_g)?;
            for gyi in gy.chunks(out_len) {
                for (o, g) in gb.iter_mut().enumerate() {
                    *g += gyi[o * ohw..(o + 1) * ohw]
                        .iter()
                        .fold(E::default(), |a, b| a + *b);
                }
            }

            // Partial sums over fixed chunks of the batch, added in order, so
            // the result does not depend on rayon's scheduling (bit-identical
            // training for a given seed).
            let partials: Vec<Vec<E>> = gy
                .par_chunks(out_len * REDUCE_CHUNK)
                .zip(cols.par_chunks(ckk * ohw * REDUCE_CHUNK))
                .map(|(gys, cs)| {
                    let mut acc = vec![E::default(); op.chan_out * ckk];
                    for (gyi, col) in gys.chunks(out_len).zip(cs.chunks(ckk * ohw)) {
                        gemm(
                            op.chan_out,
                            ckk,
                            ohw,
                            &mut acc,
                            gyi,
                            false,
                            col,
                            true,
                            true,
                            false,
                        );
                    }
                    acc
                })
                .collect();
            let gw = grads.get_or_alloc_mut(&w_g)?;
            for part in partials {
                gw.iter_mut().zip(part).for_each(|(g, p)| *g += p);
            }

            let gx = grads.get_or_alloc_mut(&x_g)?;
            gx.par_chunks_mut(chw)
                .zip(gy.par_chunks(out_len))
                .for_each_init(
                    || vec![E::default(); ckk * ohw],
                    |dcol, (gxi, gyi)| {
                        gemm(
                            ckk,
                            ohw,
                            op.chan_out,
                            dcol,
                            &ws,
                            true,
                            gyi,
                            false,
                            false,
                            false,
                        );
                        col2im_add(&op, dcol, gxi);
                    },
                );
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}
