//! Convolution composed from dfdx's public, differentiable ops.
//!
//! Runs on every dfdx device (it is the CUDA path) and is the reference the
//! CPU kernels are tested against:
//!
//! 1. flatten each sample to a column: `(chw, batch)`, and append one zero row;
//! 2. im2col is one `gather` whose precomputed index sends every padded
//!    position to the zero row: `(ckk · ohw, batch)`;
//! 3. one `matmul` with the `(chan_out, ckk)` weight, then bias by broadcast.
use super::Conv2DOp;
use dfdx::prelude::*;

/// The gather index of step 2: for each `(patch row, output position)`, the
/// input row `c·h·w + y·w + x`, or `c·h·w` (the zero row) for padding.
pub fn im2col_index(op: &Conv2DOp) -> Vec<usize> {
    let zero_row = op.chan_in * op.h_in * op.w_in;
    let mut idx = Vec::with_capacity(op.patch_len() * op.out_plane());
    for c in 0..op.chan_in {
        for ky in 0..op.kh {
            for kx in 0..op.kw {
                for oy in 0..op.h_out {
                    for ox in 0..op.w_out {
                        idx.push(match op.source(oy, ox, ky, kx) {
                            Some((y, x)) => (c * op.h_in + y) * op.w_in + x,
                            None => zero_row,
                        });
                    }
                }
            }
        }
    }
    idx
}

/// `y = conv2d(x, weight) + bias` from dfdx ops; see the module docs.
pub fn conv2d<S: Shape, Sw: Shape, Sb: Shape, So: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    op: Conv2DOp,
    x: Tensor<S, E, D, T>,
    weight: &Tensor<Sw, E, D>,
    bias: Option<&Tensor<Sb, E, D>>,
    out: So,
) -> Result<Tensor<So, E, D, T>, D::Err> {
    let dev = x.device().clone();
    let (n, rows) = (op.batch, op.chan_in * op.h_in * op.w_in);
    let (ckk, ohw, o) = (op.patch_len(), op.out_plane(), op.chan_out);

    let cols = x
        .try_reshape_like(&(n, rows))?
        .try_permute::<_, Axes2<1, 0>>()?;
    let zero = dev.try_zeros_like(&(1usize, n))?;
    let padded = (cols, zero).try_concat_along(Axis::<0>)?;
    let idx = dev.try_tensor_from_vec(im2col_index(&op), (ckk * ohw,))?;
    let patches = padded.try_gather(idx)?.try_reshape_like(&(ckk, ohw * n))?;

    let w = weight.retaped::<T>().try_reshape_like(&(o, ckk))?;
    let y = w
        .try_matmul(patches)?
        .try_reshape_like(&(o, ohw, n))?
        .try_permute::<_, Axes3<2, 0, 1>>()?
        .try_reshape_like(&(n, o, ohw))?;
    let y = match bias {
        Some(bias) => {
            let b = bias
                .retaped::<T>()
                .try_reshape_like(&(o,))?
                .try_broadcast_like::<_, Axes2<0, 2>>(&(n, o, ohw))?;
            y.try_add(b)?
        }
        None => y,
    };
    y.try_reshape_like(&out)
}
