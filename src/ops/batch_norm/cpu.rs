//! The CPU kernels of batch normalisation: per-channel statistics over the
//! channels in parallel, then one fused pass per sample; the same two
//! passes backward.
use super::{BatchNormOp, BatchStats};
use crate::ops::cpu_util::{
    add_in_lanes, avx2_or_baseline, copy_to_lease, output_vec, tensor_from_vec, F64_LANES,
};
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

avx2_or_baseline!(
    /// Sum of `f(a, b)` over the pairs of channel `c`'s values in `a` and `b`
    /// (each sample's block), accumulated in f64 in [`F64_LANES`] lanes by position
    /// in the plane: a channel of a batch of images holds tens of thousands of
    /// values, whose f32 sum would lose the last digits that PyTorch keeps. The
    /// order is fixed by the shape, so the sum is the same with any thread count.
    /// Compiled for AVX2 where the CPU has it (4 f64 lanes a register).
    fn channel_sum<E: Dtype + Float>(
        op: &BatchNormOp,
        ab: (&[E], &[E]),
        c: usize,
        f: impl Fn(E, E) -> E,
    ) -> f64 => channel_sum_body
);

#[inline(always)]
fn channel_sum_body<E: Dtype + Float>(
    op: &BatchNormOp,
    (a, b): (&[E], &[E]),
    c: usize,
    f: impl Fn(E, E) -> E,
) -> f64 {
    let wide = |v: E| v.to_f64().unwrap_or(0.0);
    let (p, cp) = (op.plane, op.channels * op.plane);
    let mut acc = [0.0f64; F64_LANES];
    for s in 0..op.batch {
        let start = s * cp + c * p;
        let plane = (&a[start..start + p], &b[start..start + p]);
        add_in_lanes(&mut acc, plane, |x, y| wide(f(x, y)));
    }
    acc.iter().sum()
}

/// `Σ v / n` per channel, and then `Σ (v − mean)² / n` (two passes: the
/// second is exact where one pass of `Σv²` would cancel).
fn mean_var<E: Dtype + Float>(op: &BatchNormOp, xs: &[E]) -> (Vec<E>, Vec<E>) {
    let n = op.count() as f64;
    let narrow = |v: f64| E::from(v).unwrap_or_else(E::zero);
    let mean: Vec<E> = (0..op.channels)
        .into_par_iter()
        .map(|c| narrow(channel_sum(op, (xs, xs), c, |v, _| v) / n))
        .collect();
    let var: Vec<E> = (0..op.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            narrow(channel_sum(op, (xs, xs), c, |v, _| (v - m) * (v - m)) / n)
        })
        .collect();
    (mean, var)
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
    let narrow = |v: f64| E::from(v).unwrap_or_else(E::zero);
    (0..op.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            let dy = channel_sum(op, (gy, gy), c, |g, _| g);
            let dyx = channel_sum(op, (gy, xs), c, |g, x| g * (x - m));
            (narrow(dy), narrow(dyx) * inv[c])
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
    let (mean, var) = mean_var(&op, &xs);
    let inv = inv_std(&var, op.eps);
    let y = normalize(&op, &xs, (&w, &b), (&mean, &inv), &dev)?;
    let y = tensor_from_vec(&dev, y, shape)?;
    if T::OWNS_TAPE {
        let (x_g, w_g, b_g, y_g) = (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        let mean = mean.clone();
        tape.add_backward_op(move |grads| {
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            let sums = affine_sums(&op, &gy, &xs, (&mean, &inv));
            let gx = grads.get_or_alloc_mut(&x_g)?;
            per_sample(&op, &gy, gx, |bi, c, gy, gx| {
                let (dy, dyx) = (sums[c].0 / n, sums[c].1 / n);
                let (k, m, inv) = (w[c] * inv[c], mean[c], inv[c]);
                let start = bi * op.channels * op.plane + c * op.plane;
                let x = &xs[start..start + op.plane];
                for ((d, g), x) in gx.iter_mut().zip(gy).zip(x) {
                    *d += k * (*g - dy - (*x - m) * inv * dyx);
                }
            });
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
            per_sample(&op, &gy, gx, |_, c, gy, gx| {
                let k = w[c] * inv[c];
                for (d, g) in gx.iter_mut().zip(gy) {
                    *d += k * *g;
                }
            });
            add_sums(grads.get_or_alloc_mut(&w_g)?, &sums, |s| s.1);
            add_sums(grads.get_or_alloc_mut(&b_g)?, &sums, |s| s.0);
            **grads.get_or_alloc_mut(&y_g)? = gy;
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-channel statistics against a plain f64 computation, on values
    /// far from zero (where an f32 sum would lose the last digits) and a
    /// plane that is no multiple of the lanes.
    #[test]
    fn channel_statistics_are_summed_in_f64() {
        let (batch, channels, plane) = (5, 3, 37);
        let op = BatchNormOp::new(batch, channels, plane, 1e-5).expect("sizes");
        let xs: Vec<f32> = (0..op.len())
            .map(|i| 1000.0 + ((i * 7919) % 101) as f32 * 0.01)
            .collect();
        let gy: Vec<f32> = (0..op.len())
            .map(|i| ((i * 31) % 17) as f32 - 8.0)
            .collect();
        let (mean, var) = mean_var(&op, &xs);
        for c in 0..channels {
            let vals: Vec<f64> = (0..batch)
                .flat_map(|b| {
                    let start = (b * channels + c) * plane;
                    xs[start..start + plane].iter().map(|v| *v as f64)
                })
                .collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let v = vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / vals.len() as f64;
            assert!(
                (mean[c] as f64 - m).abs() < 1e-4,
                "mean {c}: {} vs {m}",
                mean[c]
            );
            assert!(
                (var[c] as f64 - v).abs() < 1e-4 * v,
                "var {c}: {} vs {v}",
                var[c]
            );
            let dy = channel_sum(&op, (&gy, &gy), c, |g, _| g);
            let want: f64 = (0..batch)
                .map(|b| {
                    let start = (b * channels + c) * plane;
                    gy[start..start + plane]
                        .iter()
                        .map(|v| *v as f64)
                        .sum::<f64>()
                })
                .sum();
            assert_eq!(dy, want, "Σ dy of channel {c}");
        }
    }
}
