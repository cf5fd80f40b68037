//! The CPU kernels of batch normalisation: per-channel statistics over the
//! channels in parallel, then one fused pass per sample; the same two
//! passes backward.
use super::{BatchNormOp, BatchStats};
use crate::ops::cpu_util::{copy_to_lease, output_vec, tensor_from_vec};
use crate::ops::Workspace;
use dfdx::prelude::*;
use num_traits::Float;
use rayon::prelude::*;

/// Checks the sizes of `x` (`x_len` elements) and the per-channel tensors.
pub(super) fn check<Sc: Shape, E: Dtype>(
    op: &BatchNormOp,
    x_len: usize,
    per_channel: &[&Tensor<Sc, E, Cpu>],
) -> Result<(), CpuError> {
    let fits = x_len == op.len()
        && per_channel
            .iter()
            .all(|t| t.shape().num_elements() == op.channels);
    if fits {
        Ok(())
    } else {
        Err(CpuError::WrongNumElements)
    }
}

/// Sum of `f(i, v)` over channel `c`'s values in `xs` (each sample's
/// block), accumulated in f64 in 4 lanes: a channel of a batch of images
/// holds tens of thousands of values, whose f32 sum would lose the last
/// digits that PyTorch keeps.
fn channel_sum<E: Dtype + Float>(
    op: &BatchNormOp,
    xs: &[E],
    c: usize,
    f: impl Fn(usize, E) -> E,
) -> E {
    let (p, cp) = (op.plane, op.channels * op.plane);
    let mut acc = [0.0f64; 4];
    for b in 0..op.batch {
        let start = b * cp + c * p;
        for (i, v) in xs[start..start + p].iter().enumerate() {
            let j = start + i;
            acc[j % 4] += f(j, *v).to_f64().unwrap_or(0.0);
        }
    }
    E::from(acc.iter().sum::<f64>()).unwrap_or_else(E::zero)
}

/// `y[b, c, :] = f(c, x[b, c, :])` over all samples, in parallel.
fn per_sample<E: Dtype>(
    op: &BatchNormOp,
    xs: &[E],
    ys: &mut [E],
    f: impl Fn(usize, usize, &[E], &mut [E]) + Sync,
) {
    let (p, cp) = (op.plane, op.channels * op.plane);
    ys.par_chunks_mut(cp)
        .zip(xs.par_chunks(cp))
        .enumerate()
        .for_each(|(b, (yb, xb))| {
            for c in 0..op.channels {
                f(b, c, &xb[c * p..(c + 1) * p], &mut yb[c * p..(c + 1) * p]);
            }
        });
}

/// `1 / √(var + eps)` per channel.
fn inv_std<E: Dtype + Float>(var: &[E], eps: f64) -> Vec<E> {
    let eps = E::from(eps).unwrap_or_else(E::zero);
    var.iter().map(|v| E::one() / (*v + eps).sqrt()).collect()
}

/// `y = (x − mean) · inv · weight + bias` per channel, into an output
/// buffer of `dev` ([`output_vec`]).
fn normalize<E: Dtype + Float>(
    op: &BatchNormOp,
    xs: &[E],
    (w, b): (&[E], &[E]),
    (mean, inv): (&[E], &[E]),
    dev: &Cpu,
) -> Result<Vec<E>, CpuError> {
    let mut y = output_vec::<E>(dev, op.len())?;
    per_sample(op, xs, &mut y, |_, c, x, y| {
        let (scale, m, shift) = (w[c] * inv[c], mean[c], b[c]);
        for (y, x) in y.iter_mut().zip(x) {
            *y = (*x - m) * scale + shift;
        }
    });
    Ok(y)
}

/// `(Σ dy, Σ dy·x̂)` per channel, with `x̂ = (x − mean) · inv`: the bias
/// and weight gradients.
fn affine_sums<E: Dtype + Float>(
    op: &BatchNormOp,
    gy: &[E],
    xs: &[E],
    (mean, inv): (&[E], &[E]),
) -> Vec<(E, E)> {
    (0..op.channels)
        .into_par_iter()
        .map(|c| {
            let dy = channel_sum(op, gy, c, |_, g| g);
            let dyx = channel_sum(op, gy, c, |j, g| g * (xs[j] - mean[c]) * inv[c]);
            (dy, dyx)
        })
        .collect()
}

/// Adds one of the per-channel sums to a gradient.
fn add_sums<E: Dtype>(g: &mut [E], sums: &[(E, E)], pick: impl Fn(&(E, E)) -> E) {
    g.iter_mut().zip(sums).for_each(|(g, s)| *g += pick(s));
}

pub(super) fn train<S: Shape, Sc: Shape, E: Dtype + Float, T: Tape<E, Cpu>>(
    op: BatchNormOp,
    x: Tensor<S, E, Cpu, T>,
    (weight, bias): (&Tensor<Sc, E, Cpu>, &Tensor<Sc, E, Cpu>),
    ws: &Workspace,
) -> Result<(Tensor<S, E, Cpu, T>, BatchStats<E>), CpuError> {
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    let xs = copy_to_lease(&x, ws)?;
    let (w, b) = (weight.as_vec(), bias.as_vec());
    let n = E::from(op.count()).unwrap_or_else(E::one);
    let mean: Vec<E> = (0..op.channels)
        .into_par_iter()
        .map(|c| channel_sum(&op, &xs, c, |_, v| v) / n)
        .collect();
    let var: Vec<E> = (0..op.channels)
        .into_par_iter()
        .map(|c| channel_sum(&op, &xs, c, |_, v| (v - mean[c]) * (v - mean[c])) / n)
        .collect();
    let inv = inv_std(&var, op.eps);
    let y = normalize(&op, &xs, (&w, &b), (&mean, &inv), &dev)?;
    let y = tensor_from_vec(&dev, y, shape)?;
    if T::OWNS_TAPE {
        let (x_g, w_g, b_g, y_g) = (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        let mean = mean.clone();
        tape.add_backward_op(move |grads| {
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            let xhat = |c: usize, v: E| (v - mean[c]) * inv[c];
            let sums = affine_sums(&op, &gy, &xs, (&mean, &inv));
            let gx = grads.get_or_alloc_mut(&x_g)?;
            let mut dx = vec![E::zero(); op.len()];
            per_sample(&op, &gy, &mut dx, |bi, c, gy, dx| {
                let (dy, dyx) = (sums[c].0 / n, sums[c].1 / n);
                let k = w[c] * inv[c];
                let start = bi * op.channels * op.plane + c * op.plane;
                for (i, (d, g)) in dx.iter_mut().zip(gy).enumerate() {
                    *d = k * (*g - dy - xhat(c, xs[start + i]) * dyx);
                }
            });
            gx.iter_mut().zip(&dx).for_each(|(g, d)| *g += *d);
            add_sums(grads.get_or_alloc_mut(&w_g)?, &sums, |s| s.1);
            add_sums(grads.get_or_alloc_mut(&b_g)?, &sums, |s| s.0);
            **grads.get_or_alloc_mut(&y_g)? = gy;
            Ok(())
        });
    }
    Ok((y.put_tape(tape), BatchStats { mean, var }))
}

pub(super) fn eval<S: Shape, Sc: Shape, E: Dtype + Float, T: Tape<E, Cpu>>(
    op: BatchNormOp,
    x: Tensor<S, E, Cpu, T>,
    (weight, bias): (&Tensor<Sc, E, Cpu>, &Tensor<Sc, E, Cpu>),
    (running_mean, running_var): (&Tensor<Sc, E, Cpu>, &Tensor<Sc, E, Cpu>),
    ws: &Workspace,
) -> Result<Tensor<S, E, Cpu, T>, CpuError> {
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    let xs = copy_to_lease(&x, ws)?;
    let (w, b) = (weight.as_vec(), bias.as_vec());
    let (mean, inv) = (
        running_mean.as_vec(),
        inv_std(&running_var.as_vec(), op.eps),
    );
    let y = normalize(&op, &xs, (&w, &b), (&mean, &inv), &dev)?;
    let y = tensor_from_vec(&dev, y, shape)?;
    if T::OWNS_TAPE {
        let (x_g, w_g, b_g, y_g) = (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            let sums = affine_sums(&op, &gy, &xs, (&mean, &inv));
            let gx = grads.get_or_alloc_mut(&x_g)?;
            let mut dx = vec![E::zero(); op.len()];
            per_sample(&op, &gy, &mut dx, |_, c, gy, dx| {
                let k = w[c] * inv[c];
                for (d, g) in dx.iter_mut().zip(gy) {
                    *d = k * *g;
                }
            });
            gx.iter_mut().zip(&dx).for_each(|(g, d)| *g += *d);
            add_sums(grads.get_or_alloc_mut(&w_g)?, &sums, |s| s.1);
            add_sums(grads.get_or_alloc_mut(&b_g)?, &sums, |s| s.0);
            **grads.get_or_alloc_mut(&y_g)? = gy;
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}
