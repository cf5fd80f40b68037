//! The CPU's own paths of a fully connected layer, both on copies of `x`,
//! `W` and `b` in the layer's workspace (dfdx lends no view of a tensor's
//! storage):
//!
//! - inference on a few samples: for each row of `W` its dot product with
//!   every sample, in 8 lanes, compiled for AVX2 where the CPU has it (the
//!   copies of `W` and `b` are kept in the workspace's memo while they are
//!   unchanged);
//! - inference on a batch, f32 with AVX2 and FMA: the convolution's channel
//!   tiles on `W` and `b` packed once ([`super::dense`], kept in the memo);
//! - training on a batch whose own gradient is not wanted: `gemm` forward,
//!   and a backward pass that computes `W`'s and `b`'s gradients only.
use super::dense::Dense;
use crate::ops::conv2d::direct::Isa;
use crate::ops::cpu_util::{
    as_f32, as_f32_mut, avx2_or_baseline, copy_to_lease, copy_to_vec, gemm_parallel, output_vec,
    tensor_from_vec, Layout, Write,
};
use crate::ops::memo::ParamView;
use crate::ops::{Lease, Workspace};
use dfdx::prelude::*;
use std::any::Any;

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

/// Copies of `x`, `W` and `b`, leased from `ws`.
fn leased_operands<B: Dim, I: Dim, const O: usize, E: Dtype>(
    x: &Tensor<(B, I), E, Cpu>,
    weight: &Tensor<(Const<O>, I), E, Cpu>,
    bias: &Tensor<Rank1<O>, E, Cpu>,
    ws: &Workspace,
) -> Result<(Lease<E>, Lease<E>, Lease<E>), CpuError> {
    Ok((
        copy_to_lease(x, ws)?,
        copy_to_lease(weight, ws)?,
        copy_to_lease(bias, ws)?,
    ))
}

/// `x·Wᵀ + b` without a tape (nothing is recorded on `x`'s), for a few
/// samples. The copy of `x` is leased from `ws`; the copies of `W` and `b`
/// are kept in its memo while they are unchanged (copying LeNet's first `W`
/// cost more than its dot products with one sample).
pub(crate) fn small_batch<B: Dim, I: Dim, const O: usize, E: Dtype, T: Tape<E, Cpu>>(
    x: Tensor<(B, I), E, Cpu, T>,
    weight: &Tensor<(Const<O>, I), E, Cpu>,
    bias: &Tensor<Rank1<O>, E, Cpu>,
    ws: &Workspace,
) -> Result<Tensor<(B, Const<O>), E, Cpu, T>, CpuError> {
    tapeless(
        x,
        (weight, bias, ws),
        |(w, _): &(Vec<E>, Vec<E>), k| w.len() == O * k,
        |w, b, _| Ok((w, b)),
        |wb, xs, ys, (m, k)| dots(xs, &wb.0, &wb.1, ys, (m, k, O)),
    )
}

/// The `Isa` that [`batch`] runs on: the widest this CPU has, for f32 (none
/// for another dtype, or without AVX2 and FMA: dfdx's `matmul` then).
pub(crate) fn batch_isa<E: Dtype>() -> Option<Isa> {
    as_f32::<E>(&[]).and(Isa::best())
}

/// `x·Wᵀ + b` without a tape (nothing is recorded on `x`'s) for a batch, on
/// `isa` (from [`batch_isa`], so `E` is f32): `W` and `b` are packed for
/// [`Dense`] once and kept in the memo of `ws` while they are unchanged, and
/// the copy of `x` is leased from it.
pub(crate) fn batch<B: Dim, I: Dim, const O: usize, E: Dtype, T: Tape<E, Cpu>>(
    isa: Isa,
    x: Tensor<(B, I), E, Cpu, T>,
    weight: &Tensor<(Const<O>, I), E, Cpu>,
    bias: &Tensor<Rank1<O>, E, Cpu>,
    ws: &Workspace,
) -> Result<Tensor<(B, Const<O>), E, Cpu, T>, CpuError> {
    tapeless(
        x,
        (weight, bias, ws),
        |d: &Dense, k| d.fits(O, k),
        |w, b, k| {
            let f32s = |v: &[E]| as_f32(v).map(<[f32]>::to_vec).unwrap_or_default();
            Dense::new(isa, &f32s(&w), &f32s(&b), (O, k)).ok_or(CpuError::WrongNumElements)
        },
        |plan, xs, ys, _| {
            if let (Some(x), Some(y)) = (as_f32(xs), as_f32_mut(ys)) {
                plan.run(x, y);
            }
        },
    )
}

/// The frame of [`small_batch`] and [`batch`]: `x` copied into a lease of
/// `ws`, what `make` derives from copies of `W` and `b` (and `k`, the input
/// features) kept in the memo of `ws` while they are unchanged and it
/// `fits` `k`, and `run` on it, the copy and the output `[m][O]`, `(m, k)`.
fn tapeless<B: Dim, I: Dim, const O: usize, E: Dtype, T: Tape<E, Cpu>, K: Any + Send + Sync>(
    x: Tensor<(B, I), E, Cpu, T>,
    (weight, bias, ws): (
        &Tensor<(Const<O>, I), E, Cpu>,
        &Tensor<Rank1<O>, E, Cpu>,
        &Workspace,
    ),
    fits: impl Fn(&K, usize) -> bool,
    make: impl FnOnce(Vec<E>, Vec<E>, usize) -> Result<K, CpuError>,
    run: impl FnOnce(&K, &[E], &mut [E], (usize, usize)),
) -> Result<Tensor<(B, Const<O>), E, Cpu, T>, CpuError> {
    let (batch, k) = (x.shape().0, x.shape().1.size());
    let (x, tape) = x.split_tape();
    let dev = x.device().clone();
    let xs = copy_to_lease(&x, ws)?;
    let params = vec![ParamView::of(weight), ParamView::of(bias)];
    let kept = ws.memo().get_or_make(
        params,
        |v: &K| fits(v, k),
        || make(copy_to_vec(weight)?, copy_to_vec(bias)?, k),
    )?;
    let mut ys = output_vec::<E>(&dev, batch.size() * O)?;
    run(&kept, &xs, &mut ys, (batch.size(), k));
    Ok(tensor_from_vec(&dev, ys, (batch, Const::<O>))?.put_tape(tape))
}

/// `x·Wᵀ + b` on a traced batch whose own gradient is not wanted: the
/// backward pass adds `gyᵀ·x` to `W`'s gradient and the column sums of `gy`
/// to `b`'s, and computes nothing for `x`. Both products run on gemm over
/// the rayon pool, as dfdx's `matmul` does.
pub(crate) fn no_input_grad<B: Dim, I: Dim, const O: usize, E: Dtype>(
    x: Tensor<(B, I), E, Cpu, OwnedTape<E, Cpu>>,
    weight: &Tensor<(Const<O>, I), E, Cpu>,
    bias: &Tensor<Rank1<O>, E, Cpu>,
    ws: &Workspace,
) -> Result<Tensor<(B, Const<O>), E, Cpu, OwnedTape<E, Cpu>>, CpuError> {
    let (batch, k) = (x.shape().0, x.shape().1.size());
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    let (xs, wts, bs) = leased_operands(&x, weight, bias, ws)?;
    let m = batch.size();
    let mut ys = output_vec::<E>(&dev, m * O)?;
    for row in ys.chunks_exact_mut(O) {
        row.copy_from_slice(&bs[..O]);
    }
    drop(bs);
    // y (m×O) += x (m×k) · Wᵀ (k×O), W stored O×k
    let (x_op, w_op) = ((&xs[..], Layout::AsIs), (&wts[..], Layout::Transposed));
    gemm_parallel((m, O, k), &mut ys, Write::Accumulate, x_op, w_op);
    drop(wts);
    let y = tensor_from_vec(&dev, ys, (batch, Const::<O>))?;
    let (w_g, b_g, y_g) = (weight.ghost(), bias.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        // Borrow y's gradient out of `grads` (no copy); it goes back below.
        let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
        // gW (O×k) += gyᵀ (O×m) · x (m×k), gy stored m×O
        let gw = grads.get_or_alloc_mut(&w_g)?;
        let (gy_op, x_op) = ((&gy[..], Layout::Transposed), (&xs[..], Layout::AsIs));
        gemm_parallel((O, k, m), gw, Write::Accumulate, gy_op, x_op);
        let gb = grads.get_or_alloc_mut(&b_g)?;
        for row in gy.chunks_exact(O) {
            gb.iter_mut().zip(row).for_each(|(g, v)| *g += *v);
        }
        **grads.get_or_alloc_mut(&y_g)? = gy;
        Ok(())
    });
    Ok(y.put_tape(tape))
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

    /// f32 batches larger than [`SMALL_BATCH`] (the packed tiles, where the
    /// CPU has AVX2 and FMA) against dfdx's matmul, in a workspace shared
    /// with the small batches' memo; after the weights change (a new tensor,
    /// then one updated in place) the packing follows them.
    #[test]
    fn f32_batches_match_the_matmul_and_follow_new_weights() {
        let dev = Cpu::seed_from_u64(7);
        let ws = Workspace::default();
        let mut w: Tensor<Rank2<84, 400>, f32, _> = dev.sample_normal();
        let b: Tensor<Rank1<84>, f32, _> = dev.sample_normal();
        let check = |w: &Tensor<Rank2<84, 400>, f32, Cpu>, m: usize| {
            let x: Tensor<(usize, Const<400>), f32, _> = dev.sample_normal_like(&(m, Const));
            let ours = Cpu::try_linear(x.clone(), w, &b, &ws).expect("linear");
            let want = generic::linear(x, w, &b).expect("linear").as_vec();
            for (a, e) in ours.as_vec().iter().zip(&want) {
                assert!(
                    (a - e).abs() < 1e-4 * (1.0 + e.abs()),
                    "batch {m}: {a} vs {e}"
                );
            }
        };
        for m in [SMALL_BATCH + 1, 32, 2, 100, 1, 64] {
            check(&w, m);
        }
        w = dev.sample_normal();
        check(&w, 32);
        w.copy_from(&vec![0.01; 84 * 400]);
        check(&w, 32);
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

    /// A batch whose own gradient is not wanted, at the MLP's first layer
    /// in f32 and on odd sizes in f64: the output and the weight and bias
    /// gradients of dfdx's path, to rounding.
    #[test]
    fn without_input_grad_the_parameter_gradients_are_dfdx_s() {
        fn check<const B: usize, const I: usize, const O: usize, E>(tol: f64)
        where
            E: Dtype + num_traits::ToPrimitive,
            Cpu: LinearKernel<E>,
            rand_distr::StandardNormal: rand_distr::Distribution<E>,
        {
            let dev = Cpu::seed_from_u64(9);
            let w: Tensor<Rank2<O, I>, E, _> = dev.sample_normal();
            let b: Tensor<Rank1<O>, E, _> = dev.sample_normal();
            let x: Tensor<Rank2<B, I>, E, _> = dev.sample_normal();
            let r: Tensor<Rank2<B, O>, E, _> = dev.sample_normal();
            let ws = Workspace::default();
            let ours = Cpu::try_linear_no_input_grad(x.leaky_trace(), &w, &b, &ws).expect("linear");
            let want = generic::linear(x.leaky_trace(), &w, &b).expect("linear");
            let close = |a: Vec<E>, e: Vec<E>, what: &str| {
                assert_eq!(a.len(), e.len());
                for (a, e) in a.iter().zip(&e) {
                    let (a, e) = (a.to_f64().unwrap(), e.to_f64().unwrap());
                    assert!((a - e).abs() <= tol * (1.0 + e.abs()), "{what}: {a} vs {e}");
                }
            };
            close(
                ours.retaped::<NoneTape>().as_vec(),
                want.retaped::<NoneTape>().as_vec(),
                "y",
            );
            let g_ours = (ours * r.clone()).sum().backward();
            let g_want = (want * r).sum().backward();
            close(g_ours.get(&w).as_vec(), g_want.get(&w).as_vec(), "dW");
            close(g_ours.get(&b).as_vec(), g_want.get(&b).as_vec(), "db");
        }
        check::<64, 784, 128, f32>(1e-4);
        check::<5, 37, 13, f64>(1e-12);
        check::<1, 3, 1, f64>(1e-12);
    }
}
