//! Inference of a fully connected layer on a few samples: a copy of `W`
//! into the layer's workspace (dfdx lends no view of a tensor's storage), then for each row of `W` its
//! dot product with every sample, in 8 lanes, compiled for AVX2 where the
//! CPU has it.
use crate::ops::cpu_util::{avx2_or_baseline, copy_to_lease, output_vec, tensor_from_vec};
use crate::ops::Workspace;
use dfdx::prelude::*;

/// Lanes of each dot product's partial sums.
const LANES: usize = 8;

/// `y (m×n) = x (m×k) · wᵀ + b`, `w` being `n×k`, all row-major.
#[inline(always)]
fn dots_body<E: Dtype>(x: &[E], w: &[E], b: &[E], y: &mut [E], (m, k, n): (usize, usize, usize)) {
    for (o, wr) in w.chunks_exact(k).take(n).enumerate() {
        for (i, xr) in x.chunks_exact(k).take(m).enumerate() {
            let mut acc = [E::default(); LANES];
            let (wc, xc) = (wr.chunks_exact(LANES), xr.chunks_exact(LANES));
            let mut tail = E::default();
            for (a, c) in wc.remainder().iter().zip(xc.remainder()) {
                tail += *a * *c;
            }
            for (a, c) in wc.zip(xc) {
                for j in 0..LANES {
                    acc[j] += a[j] * c[j];
                }
            }
            let dot = acc.iter().fold(tail, |s, v| s + *v);
            y[i * n + o] = dot + b[o];
        }
    }
}

avx2_or_baseline!(
    /// [`dots_body`], compiled for AVX2 when the CPU has it.
    fn dots<E: Dtype>(x: &[E], w: &[E], b: &[E], y: &mut [E], mkn: (usize, usize, usize))
        => dots_body
);

/// `x·Wᵀ + b` without a tape (nothing is recorded on `x`'s), for a few
/// samples; the copies of `x`, `W` and `b` are leased from `ws`.
pub(crate) fn small_batch<B: Dim, I: Dim, const O: usize, E: Dtype, T: Tape<E, Cpu>>(
    x: Tensor<(B, I), E, Cpu, T>,
    weight: &Tensor<(Const<O>, I), E, Cpu>,
    bias: &Tensor<Rank1<O>, E, Cpu>,
    ws: &Workspace,
) -> Result<Tensor<(B, Const<O>), E, Cpu, T>, CpuError> {
    let (batch, k) = (x.shape().0, x.shape().1.size());
    let (x, tape) = x.split_tape();
    let dev = x.device().clone();
    let (xs, wts, bs) = (
        copy_to_lease(&x, ws)?,
        copy_to_lease(weight, ws)?,
        copy_to_lease(bias, ws)?,
    );
    let mut ys = output_vec::<E>(&dev, batch.size() * O)?;
    dots(&xs, &wts, &bs, &mut ys, (batch.size(), k, O));
    Ok(tensor_from_vec(&dev, ys, (batch, Const::<O>))?.put_tape(tape))
}

#[cfg(test)]
mod tests {
    use super::super::{generic, LinearKernel, SMALL_BATCH};
    use crate::ops::Workspace;
    use dfdx::prelude::*;

    /// Every small batch, on sizes with and without a tail of lanes,
    /// against dfdx's matmul (the path for larger batches and training).
    #[test]
    fn small_batches_match_the_matmul() {
        let dev = Cpu::seed_from_u64(5);
        let ws = Workspace::default();
        let w: Tensor<Rank2<13, 37>, f64, _> = dev.sample_normal();
        let b: Tensor<Rank1<13>, f64, _> = dev.sample_normal();
        for m in 1..=SMALL_BATCH + 1 {
            let x: Tensor<(usize, Const<37>), f64, _> = dev.sample_normal_like(&(m, Const));
            let ours = Cpu::try_linear(x.clone(), &w, &b, &ws)
                .expect("linear")
                .as_vec();
            let want = generic::linear(x.clone(), &w, &b).expect("linear").as_vec();
            assert_eq!(ours.len(), m * 13);
            for (a, e) in ours.iter().zip(&want) {
                assert!((a - e).abs() < 1e-12, "batch {m}: {a} vs {e}");
            }
        }
        // f32, the sizes of LeNet's first fully connected layer
        let w: Tensor<Rank2<84, 400>, f32, _> = dev.sample_normal();
        let b: Tensor<Rank1<84>, f32, _> = dev.sample_normal();
        let x: Tensor<Rank2<1, 400>, f32, _> = dev.sample_normal();
        let ours = Cpu::try_linear(x.clone(), &w, &b, &ws)
            .expect("linear")
            .array();
        let want = generic::linear(x, &w, &b).expect("linear").array();
        for (a, e) in ours[0].iter().zip(&want[0]) {
            assert!((a - e).abs() < 1e-4 * (1.0 + e.abs()), "{a} vs {e}");
        }
    }

    /// A traced small batch takes dfdx's path and gets its gradients.
    #[test]
    fn a_traced_small_batch_has_gradients() {
        let dev = Cpu::seed_from_u64(6);
        let w: Tensor<Rank2<3, 5>, f32, _> = dev.sample_normal();
        let b: Tensor<Rank1<3>, f32, _> = dev.sample_normal();
        let x: Tensor<Rank2<1, 5>, f32, _> = dev.sample_normal();
        let y = Cpu::try_linear(x.leaky_trace(), &w, &b, &Workspace::default()).expect("linear");
        let g = y.sum().backward();
        // d(sum)/dx = column sums of W
        let wa = w.array();
        let want: Vec<f32> = (0..5).map(|j| (0..3).map(|o| wa[o][j]).sum()).collect();
        for (a, e) in g.get(&x).as_vec().iter().zip(&want) {
            assert!((a - e).abs() < 1e-6, "{a} vs {e}");
        }
    }
}
