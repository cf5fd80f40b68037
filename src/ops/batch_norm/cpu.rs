//! The CPU kernels of batch normalisation: per-channel statistics over the
//! channels in parallel (mean and variance in one pass of shifted sums),
//! then one fused pass per sample; backward, the two per-channel sums in
//! one pass, then one fused pass per sample (behind a fused ReLU, both
//! recompute from the input where the rectifier let values through).
use super::sync::{self, Member};
use super::{BatchNormOp, BatchStats};
use crate::ops::cpu_util::{
    as_f32, as_f32_mut, avx2_or_baseline, copy_to_lease, output_vec, tensor_from_vec, Write,
};
use crate::ops::Workspace;
use dfdx::prelude::*;
use num_traits::Float;
use rayon::prelude::*;

/// Checks the sizes of `x` (`x_len` elements) and the per-channel tensors.
pub(crate) fn check<Sc: Shape, E: Dtype>(
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

/// `[Σ (a − ka), Σ (a − ka)·(b − kb)]` over channel `c`'s values in `a` and
/// `b` (each sample's block), in one pass: in `E`, in [`BLOCK_LANES`]
/// lanes ([`plane_sums`]) to which no lane adds more than [`BLOCK_ROWS`]
/// values, then in f64. A channel of a batch of images holds tens of
/// thousands of values, whose sum in one f32 would lose the last digits.
/// Small planes share the `E` lanes (a 7×7 plane fills 4 rows of them), so
/// that widening to f64 does not cost more than the sums. The order is
/// fixed by the shape, so the sums are the same with any thread count.
/// With `relu = Some([scale, shift])`, `a`'s values count only where `(b −
/// kb)·scale + shift > 0` (the gradient behind a fused ReLU, see
/// [`plane_sums`]). The kernels take all channels at once
/// ([`all_channel_sums`]); the tests check them one at a time.
#[cfg(test)]
fn channel_sums<E: Dtype + Float>(
    op: &BatchNormOp,
    (a, b): (&[E], &[E]),
    c: usize,
    shifts: [E; 2],
    relu: Option<[E; 2]>,
) -> [f64; 2] {
    let mut acc = ChannelAcc::new();
    for s in 0..op.batch {
        acc.add(plane(op, a, s, c), plane(op, b, s, c), shifts, relu);
    }
    acc.finish()
}

/// [`channel_sums`] of every channel `c`, with its `(shifts, relu)` from
/// `per_channel(c)`: the same sums, bit for bit, but read in the order of
/// memory (sample by sample, each sample's channels one after the other),
/// which the CPU's prefetchers follow, by groups of channels in parallel.
fn all_channel_sums<E: Dtype + Float>(
    op: &BatchNormOp,
    (a, b): (&[E], &[E]),
    per_channel: impl Fn(usize) -> ([E; 2], Option<[E; 2]>) + Sync,
) -> Vec<[f64; 2]> {
    let groups = rayon::current_num_threads().clamp(1, op.channels);
    let per_group = op.channels.div_ceil(groups);
    let starts: Vec<usize> = (0..op.channels).step_by(per_group).collect();
    let sums: Vec<Vec<[f64; 2]>> = starts
        .into_par_iter()
        .map(|c0| {
            let cs = c0..(c0 + per_group).min(op.channels);
            let params: Vec<_> = cs.clone().map(&per_channel).collect();
            let mut accs: Vec<ChannelAcc<E>> = cs.clone().map(|_| ChannelAcc::new()).collect();
            for s in 0..op.batch {
                for ((c, acc), (shifts, relu)) in cs.clone().zip(&mut accs).zip(&params) {
                    acc.add(plane(op, a, s, c), plane(op, b, s, c), *shifts, *relu);
                }
            }
            accs.into_iter().map(ChannelAcc::finish).collect()
        })
        .collect();
    sums.concat()
}

/// The running sums of [`channel_sums`] for one channel: [`BLOCK_LANES`]
/// lanes in `E`, to which no lane adds more than [`BLOCK_ROWS`] values
/// before they are added into lanes in f64.
struct ChannelAcc<E> {
    wide_lanes: [[f64; BLOCK_LANES]; 2],
    lanes: [[E; BLOCK_LANES]; 2],
    rows: usize,
}

impl<E: Dtype + Float> ChannelAcc<E> {
    /// No values yet.
    fn new() -> Self {
        Self {
            wide_lanes: [[0.0; BLOCK_LANES]; 2],
            lanes: [[E::zero(); BLOCK_LANES]; 2],
            rows: 0,
        }
    }

    /// Adds one plane of the channel: its values in `a` and `b`.
    fn add(&mut self, a: &[E], b: &[E], shifts: [E; 2], relu: Option<[E; 2]>) {
        let chunk = BLOCK_ROWS * BLOCK_LANES;
        for (a, b) in a.chunks(chunk).zip(b.chunks(chunk)) {
            let r = a.len().div_ceil(BLOCK_LANES);
            if self.rows + r > BLOCK_ROWS {
                self.widen();
            }
            plane_sums(a, b, shifts, relu, &mut self.lanes);
            self.rows += r;
        }
    }

    /// Adds the `E` lanes into the f64 ones and clears them.
    fn widen(&mut self) {
        for (w, l) in self.wide_lanes.iter_mut().zip(self.lanes.iter_mut()) {
            for (w, l) in w.iter_mut().zip(l.iter_mut()) {
                *w += wide(*l);
                *l = E::zero();
            }
        }
        self.rows = 0;
    }

    /// The two sums.
    fn finish(mut self) -> [f64; 2] {
        self.widen();
        self.wide_lanes.map(|l| l.iter().sum())
    }
}

/// Lanes of the sums in `E` of [`plane_sums`].
const BLOCK_LANES: usize = 16;
/// Values that one lane of [`channel_sums`] adds in `E` at most.
const BLOCK_ROWS: usize = 64;

/// Adds `(a − ka)` and `(a − ka)·(b − kb)` into the two rows of lanes
/// `acc`, value `i` into lane `i % BLOCK_LANES`: with AVX2 and FMA for f32
/// where the CPU has them, else in plain code (the compiler leaves this
/// reduction scalar).
///
/// With `relu = Some([scale, shift])`, `a − ka` is taken as 0 where `(b −
/// kb)·scale + shift > 0` does not hold (NaN included): with `b` the batch
/// norm's input and `kb` its mean, that is where [`normalize_relu_plane`]
/// wrote 0, computed as it does, so the same bits decide.
fn plane_sums<E: Dtype + Float>(
    a: &[E],
    b: &[E],
    [ka, kb]: [E; 2],
    relu: Option<[E; 2]>,
    acc: &mut [[E; BLOCK_LANES]; 2],
) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(a32), Some(b32), Some(ka), Some(kb), Some(acc32)) = (
        as_f32(a),
        as_f32(b),
        ka.to_f32(),
        kb.to_f32(),
        as_f32_mut(acc.as_flattened_mut()),
    ) {
        use std::arch::is_x86_feature_detected as has;
        let relu = relu.map(|r| r.map(|v| v.to_f32().unwrap_or(0.0)));
        if has!("avx2") && has!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { plane_sums_f32_avx2(a32, b32, [ka, kb], relu, acc32) };
        }
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (d, k) = (*y - kb, i % BLOCK_LANES);
        let kept = relu.is_none_or(|[scale, shift]| normalized(*y, [kb, scale, shift]) > E::zero());
        let u = if kept { *x - ka } else { E::zero() };
        acc[0][k] += u;
        acc[1][k] += u * d;
    }
}

/// [`plane_sums`] for f32 with AVX2 and FMA: the 16 lanes of each sum in
/// two registers, in two sets that take alternate blocks of 16 values and
/// are added at the end; `acc` holds the two rows of lanes one after the
/// other.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn plane_sums_f32_avx2(
    a: &[f32],
    b: &[f32],
    [ka, kb]: [f32; 2],
    relu: Option<[f32; 2]>,
    acc: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert_eq!(acc.len(), 2 * BLOCK_LANES);
    let n = a.len().min(b.len());
    let (vka, vkb) = (_mm256_set1_ps(ka), _mm256_set1_ps(kb));
    let [scale, shift] = relu.unwrap_or([0.0; 2]);
    let (vscale, vshift) = (_mm256_set1_ps(scale), _mm256_set1_ps(shift));
    // the same sub, mul and add as `normalized`, eight lanes at a time
    // SAFETY: four loads of 8 at offsets 0, 8, 16, 24 of the 32 in `acc`.
    let mut sums: [__m256; 4] =
        std::array::from_fn(|j| unsafe { _mm256_loadu_ps(acc.as_ptr().add(8 * j)) });
    // 16 values into `sums` (their lanes 0..16 of each row), from index i
    let add16 = |sums: &mut [__m256; 4], i: usize| {
        debug_assert!(i + BLOCK_LANES <= n);
        for h in 0..2 {
            // SAFETY: the callers keep i + 16 ≤ n, so i + 8h + 8 is within
            // both slices.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(a.as_ptr().add(i + 8 * h)),
                    _mm256_loadu_ps(b.as_ptr().add(i + 8 * h)),
                )
            };
            let (mut u, d) = (_mm256_sub_ps(x, vka), _mm256_sub_ps(y, vkb));
            if relu.is_some() {
                let v = _mm256_add_ps(_mm256_mul_ps(d, vscale), vshift);
                u = _mm256_and_ps(u, _mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_setzero_ps()));
            }
            sums[h] = _mm256_add_ps(sums[h], u);
            sums[2 + h] = _mm256_fmadd_ps(u, d, sums[2 + h]);
        }
    };
    // two sets of registers, each a chain of its own: one chain's adds
    // wait for each other (4 cycles each), two keep the units busy
    let mut more = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 2 * BLOCK_LANES <= n {
        add16(&mut sums, i);
        add16(&mut more, i + BLOCK_LANES);
        i += 2 * BLOCK_LANES;
    }
    if i + BLOCK_LANES <= n {
        add16(&mut sums, i);
        i += BLOCK_LANES;
    }
    for (s, m) in sums.iter_mut().zip(more) {
        *s = _mm256_add_ps(*s, m);
    }
    for (j, sum) in sums.iter().enumerate() {
        // SAFETY: as the loads above.
        unsafe { _mm256_storeu_ps(acc.as_mut_ptr().add(8 * j), *sum) };
    }
    // the tail, into the first lanes
    for (k, j) in (i..n).enumerate() {
        let d = b[j] - kb;
        let kept = relu.is_none_or(|[scale, shift]| normalized(b[j], [kb, scale, shift]) > 0.0);
        let u = if kept { a[j] - ka } else { 0.0 };
        acc[k] += u;
        acc[BLOCK_LANES + k] += u * d;
    }
}

/// `v` in f64.
#[inline(always)]
fn wide<E: Float>(v: E) -> f64 {
    v.to_f64().unwrap_or(0.0)
}

/// `v` in `E`.
fn narrow<E: Float>(v: f64) -> E {
    E::from(v).unwrap_or_else(E::zero)
}

/// `Σ v / n` and `Σ (v − mean)² / n` per channel in f64, in one pass: the
/// sums of `d = v − k` and of `d²`, with `k` the channel's first value. In
/// f64 and shifted by a value of the channel, `Σd²/n − (Σd/n)²` keeps the
/// digits that one pass of `Σv²` would cancel away.
fn moments<E: Dtype + Float>(op: &BatchNormOp, xs: &[E]) -> Vec<[f64; 2]> {
    let n = op.count() as f64;
    let first = |c: usize| xs.get(c * op.plane).copied().unwrap_or_else(E::zero);
    let sums = all_channel_sums(op, (xs, xs), |c| ([first(c), first(c)], None));
    sums.iter()
        .enumerate()
        .map(|(c, [s1, s2])| {
            let (m, v) = (s1 / n, s2 / n - (s1 / n) * (s1 / n));
            // rounding may leave a tiny negative variance; NaN stays NaN
            [wide(first(c)) + m, if v < 0.0 { 0.0 } else { v }]
        })
        .collect()
}

/// The batch's mean and variance per channel, in `E`, and how many values
/// of a channel they are over: this call's own ([`moments`]), or, in a
/// chunk of a split step, those of all chunks together (see [`sync`]).
fn batch_moments<E: Dtype + Float>(
    op: &BatchNormOp,
    xs: &[E],
    member: Option<&Member>,
) -> Result<(Vec<E>, Vec<E>, usize), CpuError> {
    let own = moments(op, xs);
    let Some(member) = member else {
        let (mean, var): (Vec<E>, Vec<E>) = own
            .iter()
            .map(|[m, v]| (narrow::<E>(*m), narrow::<E>(*v)))
            .unzip();
        return Ok((mean, var, op.count()));
    };
    let (parts, n) = gather(member, op, &own)?;
    let ch = op.channels;
    let (mut mean, mut var) = (Vec::with_capacity(ch), Vec::with_capacity(ch));
    for c in 0..ch {
        // Chan et al.'s combination of the chunks' means and variances
        let m = parts.iter().map(|p| p[0] * p[1 + c]).sum::<f64>() / n;
        let m2: f64 = parts
            .iter()
            .map(|p| p[0] * (p[1 + ch + c] + (p[1 + c] - m) * (p[1 + c] - m)))
            .sum();
        mean.push(narrow(m));
        var.push(narrow(m2 / n));
    }
    Ok((mean, var, n as usize))
}

/// The backward pass's per-channel `(Σ dy, Σ dy·x̂)` divided by the count
/// of values: of this call's `sums`, or, in a chunk of a split step, of all
/// chunks' sums. A chunk's gradients are those of its own loss (a mean over
/// its samples), so chunk `j`'s sums count `n_j / n` towards the batch's,
/// and chunk `i` scales the result back by `n / n_i`.
fn shared_sums<E: Dtype + Float>(
    op: &BatchNormOp,
    sums: &[(E, E)],
    member: Option<&Member>,
) -> Result<Vec<(E, E)>, CpuError> {
    let own = op.count();
    let Some(member) = member else {
        let n = E::from(own).unwrap_or_else(E::one);
        return Ok(sums.iter().map(|(dy, dyx)| (*dy / n, *dyx / n)).collect());
    };
    let wide_sums: Vec<[f64; 2]> = sums.iter().map(|s| [wide(s.0), wide(s.1)]).collect();
    let (parts, n) = gather(member, op, &wide_sums)?;
    let ch = op.channels;
    let shared = |i: usize| parts.iter().map(|p| p[0] / n * p[i]).sum::<f64>() / own as f64;
    Ok((0..ch)
        .map(|c| (narrow(shared(1 + c)), narrow(shared(1 + ch + c))))
        .collect())
}

/// Every chunk's part, through `member`, and the count of values of all
/// chunks together. This call's part is its [`count`](BatchNormOp::count),
/// then the first value of each channel's pair in `pairs`, then the second
/// (`1 + 2·channels` values).
fn gather(
    member: &Member,
    op: &BatchNormOp,
    pairs: &[[f64; 2]],
) -> Result<(std::sync::Arc<Vec<Vec<f64>>>, f64), CpuError> {
    let mut part = Vec::with_capacity(1 + 2 * op.channels);
    part.push(op.count() as f64);
    part.extend(pairs.iter().map(|p| p[0]));
    part.extend(pairs.iter().map(|p| p[1]));
    let len = part.len();
    let parts = member
        .all_gather(part)
        .map_err(|_| CpuError::WrongNumElements)?;
    // the chunks run one model: a part of another size is a bug, not data
    if parts.iter().any(|p| p.len() != len) || parts.len() <= member.chunk() {
        return Err(CpuError::WrongNumElements);
    }
    debug_assert_eq!(len, 1 + 2 * op.channels);
    let n = parts.iter().map(|p| p[0]).sum();
    Ok((parts, n))
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

/// Sample `bi`'s plane of channel `c` in `xs` (`batch × channels × plane`).
fn plane<'a, E>(op: &BatchNormOp, xs: &'a [E], bi: usize, c: usize) -> &'a [E] {
    let start = (bi * op.channels + c) * op.plane;
    &xs[start..start + op.plane]
}

/// `1 / √(var + eps)` per channel.
fn inv_std<E: Dtype + Float>(var: &[E], eps: f64) -> Vec<E> {
    let eps = E::from(eps).unwrap_or_else(E::zero);
    var.iter().map(|v| E::one() / (*v + eps).sqrt()).collect()
}

/// The batch norm's value before the rectifier, `(x − mean)·scale + shift`
/// with `msb = [mean, scale, shift]`: one definition for the forward pass
/// and for every backward pass that finds where the rectifier let values
/// through, so that the same bits decide (Rust contracts no `mul` and
/// `add` into an FMA).
#[inline(always)]
pub(crate) fn normalized<E: Float>(x: E, [m, scale, shift]: [E; 3]) -> E {
    (x - m) * scale + shift
}

/// `g` where [`normalized`]`(x)` is positive, else 0 (NaN included): the
/// gradient that passes a fused ReLU.
#[inline(always)]
fn rectified<E: Float>(g: E, x: E, msb: [E; 3]) -> E {
    if normalized(x, msb) > E::zero() {
        g
    } else {
        E::zero()
    }
}

avx2_or_baseline!(
    /// One plane's `y = (x − mean)·scale + shift`, with `msb = [mean,
    /// scale, shift]`; compiled for AVX2 where the CPU has it.
    fn normalize_plane<E: Dtype + Float>(x: &[E], y: &mut [E], msb: [E; 3]) => normalize_plane_body
);

#[inline(always)]
fn normalize_plane_body<E: Dtype + Float>(x: &[E], y: &mut [E], msb: [E; 3]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = normalized(*x, msb);
    }
}

avx2_or_baseline!(
    /// [`normalize_plane`] and then `max(y, 0)` (0 for NaN, as
    /// [`ReluKernel`](crate::ops::ReluKernel)).
    fn normalize_relu_plane<E: Dtype + Float>(x: &[E], y: &mut [E], msb: [E; 3]) => normalize_relu_plane_body
);

#[inline(always)]
fn normalize_relu_plane_body<E: Dtype + Float>(x: &[E], y: &mut [E], msb: [E; 3]) {
    for (y, x) in y.iter_mut().zip(x) {
        let v = normalized(*x, msb);
        *y = if v > E::zero() { v } else { E::zero() };
    }
}

avx2_or_baseline!(
    /// One plane's input gradient in training mode, `gx += k·(gy − dy −
    /// (x − mean)·q)`, with `c = [k, dy, mean, q]`; behind a fused ReLU
    /// (`relu = Some([scale, shift])`, see [`relu_of`]) with `gy`
    /// [`rectified`]. Without `acc`, `gx = 0 + …` instead (what adding into
    /// zeros gives, without reading them). Compiled for AVX2 where the CPU
    /// has it.
    fn train_grad_plane<E: Dtype + Float>(gx: &mut [E], gy: &[E], x: &[E], c: [E; 4], relu: Option<[E; 2]>, acc: bool) => train_grad_plane_body
);

#[inline(always)]
fn train_grad_plane_body<E: Dtype + Float>(
    gx: &mut [E],
    gy: &[E],
    x: &[E],
    [k, dy, m, q]: [E; 4],
    relu: Option<[E; 2]>,
    acc: bool,
) {
    let planes = gx.iter_mut().zip(gy).zip(x);
    let z = E::zero();
    match (relu, acc) {
        (Some([scale, shift]), true) => planes.for_each(|((d, g), x)| {
            *d += k * (rectified(*g, *x, [m, scale, shift]) - dy - (*x - m) * q);
        }),
        (Some([scale, shift]), false) => planes.for_each(|((d, g), x)| {
            *d = z + k * (rectified(*g, *x, [m, scale, shift]) - dy - (*x - m) * q);
        }),
        (None, true) => planes.for_each(|((d, g), x)| *d += k * (*g - dy - (*x - m) * q)),
        (None, false) => planes.for_each(|((d, g), x)| *d = z + k * (*g - dy - (*x - m) * q)),
    }
}

avx2_or_baseline!(
    /// One plane's input gradient in inference mode, `gx += k·gy`, with
    /// `km = [k, mean]`; behind a fused ReLU (`relu = Some([scale,
    /// shift])`, see [`relu_of`]) with `gy` [`rectified`].
    fn eval_grad_plane<E: Dtype + Float>(gx: &mut [E], gy: &[E], x: &[E], km: [E; 2], relu: Option<[E; 2]>) => eval_grad_plane_body
);

#[inline(always)]
fn eval_grad_plane_body<E: Dtype + Float>(
    gx: &mut [E],
    gy: &[E],
    x: &[E],
    [k, m]: [E; 2],
    relu: Option<[E; 2]>,
) {
    match relu {
        Some([scale, shift]) => {
            for ((d, g), x) in gx.iter_mut().zip(gy).zip(x) {
                *d += k * rectified(*g, *x, [m, scale, shift]);
            }
        }
        None => gx.iter_mut().zip(gy).for_each(|(d, g)| *d += k * *g),
    }
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
    normalize_into(op, xs, (w, b), (mean, inv), &mut y);
    Ok(y)
}

/// [`normalize`] into `y` (every element written).
pub(crate) fn normalize_into<E: Dtype + Float>(
    op: &BatchNormOp,
    xs: &[E],
    (w, b): (&[E], &[E]),
    (mean, inv): (&[E], &[E]),
    y: &mut [E],
) {
    per_sample(op, xs, y, |_, c, x, y| {
        let msb = [mean[c], w[c] * inv[c], b[c]];
        if op.relu {
            normalize_relu_plane(x, y, msb);
        } else {
            normalize_plane(x, y, msb);
        }
    });
}

/// The statistics of a training batch norm's forward pass: the batch's
/// per-channel mean and (biased) variance, `1 / √(var + eps)`, and the
/// count of values they are over.
pub(crate) struct TrainStats<E> {
    pub(crate) mean: Vec<E>,
    pub(crate) var: Vec<E>,
    pub(crate) inv: Vec<E>,
    pub(crate) count: usize,
}

impl<E: Clone> TrainStats<E> {
    /// The statistics for the running ones.
    pub(crate) fn batch_stats(&self) -> BatchStats<E> {
        BatchStats {
            mean: self.mean.clone(),
            var: self.var.clone(),
            count: self.count,
        }
    }
}

/// The batch statistics of `xs`, shared with the other chunks of a split
/// step through `member` (see [`batch_moments`]).
pub(crate) fn train_stats<E: Dtype + Float>(
    op: &BatchNormOp,
    xs: &[E],
    member: Option<&Member>,
) -> Result<TrainStats<E>, CpuError> {
    let (mean, var, count) = batch_moments(op, xs, member)?;
    let inv = inv_std(&var, op.eps);
    Ok(TrainStats {
        mean,
        var,
        inv,
        count,
    })
}

/// The backward pass of a training batch norm with input `xs`, parameters
/// `(w, b)` and statistics `st`: adds the input gradient into `gx` (with
/// `Write::Overwrite`, writes it as if `gx` held zeros) and returns the per-channel
/// `(Σ dy, Σ dy·x̂)`, the bias and weight gradients ([`add_sums`]).
pub(crate) fn train_backward_into<E: Dtype + Float>(
    op: &BatchNormOp,
    (gy, xs): (&[E], &[E]),
    (w, b): (&[E], &[E]),
    st: &TrainStats<E>,
    member: Option<&Member>,
    (gx, write): (&mut [E], Write),
) -> Result<Vec<(E, E)>, CpuError> {
    let (mean, inv) = (&st.mean, &st.inv);
    let sums = affine_sums(op, gy, xs, (w, b), (mean, inv));
    let shared = shared_sums(op, &sums, member)?;
    let acc = matches!(write, Write::Accumulate);
    per_sample(op, gy, gx, |bi, c, gy, gx| {
        let (dy, dyx) = shared[c];
        let (k, m, inv_c) = (w[c] * inv[c], mean[c], inv[c]);
        let relu = relu_of(op, c, (w, b), inv);
        let x = plane(op, xs, bi, c);
        train_grad_plane(gx, gy, x, [k, dy, m, inv_c * dyx], relu, acc);
    });
    Ok(sums)
}

/// `(Σ dy, Σ dy·x̂)` per channel, with `x̂ = (x − mean) · inv`: the bias
/// and weight gradients, in one pass over `gy` and `x`. With
/// [`BatchNormOp::with_relu`], `dy` is `gy` where the forward pass's
/// normalised value was positive, else 0 (see [`relu_of`]).
fn affine_sums<E: Dtype + Float>(
    op: &BatchNormOp,
    gy: &[E],
    xs: &[E],
    (w, b): (&[E], &[E]),
    (mean, inv): (&[E], &[E]),
) -> Vec<(E, E)> {
    let sums = all_channel_sums(op, (gy, xs), |c| {
        ([E::zero(), mean[c]], relu_of(op, c, (w, b), inv))
    });
    sums.iter()
        .zip(inv)
        .map(|([dy, dyx], inv)| (narrow(*dy), narrow::<E>(*dyx) * *inv))
        .collect()
}

/// With [`BatchNormOp::with_relu`], channel `c`'s `[scale, shift] = [w·inv,
/// b]`, with which the forward pass decided where the rectifier let values
/// through (`(x − mean)·scale + shift > 0`); `None` without the ReLU. The
/// backward passes recompute that value from the input they keep anyway,
/// in the same order of operations, so the same bits decide and no mask is
/// stored, and no rectified copy of `gy` is written.
fn relu_of<E: Dtype + Float>(
    op: &BatchNormOp,
    c: usize,
    (w, b): (&[E], &[E]),
    inv: &[E],
) -> Option<[E; 2]> {
    op.relu.then(|| [w[c] * inv[c], b[c]])
}

/// Adds one of the per-channel sums to a gradient.
pub(crate) fn add_sums<E: Dtype>(g: &mut [E], sums: &[(E, E)], pick: impl Fn(&(E, E)) -> E) {
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
    let member = sync::member();
    let st = train_stats(&op, &xs, member.as_ref())?;
    let y = normalize(&op, &xs, (&w, &b), (&st.mean, &st.inv), &dev)?;
    let y = tensor_from_vec(&dev, y, shape)?;
    let stats = st.batch_stats();
    if T::OWNS_TAPE {
        let (x_g, w_g, b_g, y_g) = (x.ghost(), weight.ghost(), bias.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            let gx = grads.get_or_alloc_mut(&x_g)?;
            let sums = train_backward_into(
                &op,
                (&gy, &xs),
                (&w, &b),
                &st,
                member.as_ref(),
                (gx, Write::Accumulate),
            )?;
            add_sums(grads.get_or_alloc_mut(&w_g)?, &sums, |s| s.1);
            add_sums(grads.get_or_alloc_mut(&b_g)?, &sums, |s| s.0);
            **grads.get_or_alloc_mut(&y_g)? = gy;
            Ok(())
        });
    }
    Ok((y.put_tape(tape), stats))
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
            let gy_taken: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            let gy: &[E] = &gy_taken;
            let sums = affine_sums(&op, gy, &xs, (&w, &b), (&mean, &inv));
            let gx = grads.get_or_alloc_mut(&x_g)?;
            per_sample(&op, gy, gx, |bi, c, gy, gx| {
                let (km, relu) = ([w[c] * inv[c], mean[c]], relu_of(&op, c, (&w, &b), &inv));
                eval_grad_plane(gx, gy, plane(&op, &xs, bi, c), km, relu);
            });
            add_sums(grads.get_or_alloc_mut(&w_g)?, &sums, |s| s.1);
            add_sums(grads.get_or_alloc_mut(&b_g)?, &sums, |s| s.0);
            **grads.get_or_alloc_mut(&y_g)? = gy_taken;
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
        let (mean, var, _) = batch_moments(&op, &xs, None).unwrap();
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
            // the backward pass's sums: Σ dy and Σ dy·(x − mean)
            let [dy, dyx] = channel_sums(&op, (&gy, &xs), c, [0.0, mean[c]], None);
            let pairs = || {
                (0..batch).flat_map(|b| {
                    let start = (b * channels + c) * plane;
                    let range = start..start + plane;
                    gy[range.clone()].iter().zip(&xs[range])
                })
            };
            let want = pairs().map(|(g, _)| *g as f64).sum::<f64>();
            assert_eq!(dy, want, "Σ dy of channel {c}");
            let m = mean[c] as f64;
            let terms = || pairs().map(|(g, x)| *g as f64 * (*x as f64 - m));
            let (want, scale) = (terms().sum::<f64>(), terms().map(f64::abs).sum::<f64>());
            assert!(
                (dyx - want).abs() <= 1e-6 * scale,
                "Σ dy·(x − mean) of channel {c}: {dyx} vs {want}"
            );
        }
    }

    /// The f32 plane sums (AVX2 and FMA where the CPU has them) against the
    /// plain code in f64, for every tail length, added onto earlier sums,
    /// with and without the rectifier's mask.
    #[test]
    fn plane_sums_agree_across_paths_and_tails() {
        for (n, relu) in (0..3 * BLOCK_LANES + 3).flat_map(|n| [(n, None), (n, Some([0.7, -0.3]))])
        {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 * 0.5 - 2.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 + 100.0).collect();
            let (a64, b64): (Vec<f64>, Vec<f64>) = (
                a.iter().map(|v| *v as f64).collect(),
                b.iter().map(|v| *v as f64).collect(),
            );
            let mut got = [[1.0f32; BLOCK_LANES]; 2];
            plane_sums(&a, &b, [0.25, 103.0], relu, &mut got);
            plane_sums(&a, &b, [0.25, 103.0], relu, &mut got);
            let mut want = [[1.0f64; BLOCK_LANES]; 2];
            let relu64 = relu.map(|r| r.map(f64::from));
            plane_sums(&a64, &b64, [0.25, 103.0], relu64, &mut want);
            plane_sums(&a64, &b64, [0.25, 103.0], relu64, &mut want);
            if relu.is_some() {
                // the mask by hand: (b − 103)·0.7 − 0.3 > 0 exactly when b > 103
                let mut plain = [[1.0f64; BLOCK_LANES]; 2];
                let masked: Vec<f64> = a64
                    .iter()
                    .zip(&b64)
                    .map(|(a, b)| if *b > 103.0 { *a } else { 0.25 })
                    .collect();
                plane_sums(&masked, &b64, [0.25, 103.0], None, &mut plain);
                plane_sums(&masked, &b64, [0.25, 103.0], None, &mut plain);
                assert_eq!(want, plain, "n {n}: the mask in plain code");
            }
            for j in 0..2 {
                for k in 0..BLOCK_LANES {
                    let (g, w) = (got[j][k] as f64, want[j][k]);
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "n {n} sum {j} lane {k}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// Planes of every size share or split the lanes: the channel sums
    /// against plain f64 sums.
    #[test]
    fn all_channels_at_once_give_each_channels_sums_bit_for_bit() {
        // 7 channels on pools of 1, 2 and 3 threads: groups that do not
        // divide the channels; with and without a rectifier
        let op = BatchNormOp::new(5, 7, 49, 1e-5).expect("sizes");
        let xs: Vec<f32> = (0..op.len())
            .map(|i| ((i * 7919) % 101) as f32 * 0.01 - 0.3)
            .collect();
        let gy: Vec<f32> = (0..op.len())
            .map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8)
            .collect();
        let params = |c: usize| {
            (
                [0.25, 0.01 * c as f32],
                c.is_multiple_of(2).then_some([1.5, -0.1]),
            )
        };
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let all = pool.install(|| all_channel_sums(&op, (&gy, &xs), params));
            for (c, sums) in all.iter().enumerate() {
                let (shifts, relu) = params(c);
                let one = channel_sums(&op, (&gy, &xs), c, shifts, relu);
                assert_eq!(sums, &one, "channel {c} on {threads} threads");
            }
        }
    }

    /// Chunks of 3 and 2 samples, each on its own thread as a member of one
    /// split step, get the statistics of all 5 samples and their count (for
    /// the running variance's unbiased factor); the backward pass's sums
    /// of chunk `i` are the chunks' sums weighted by `n_j / n`, over `n_i`.
    #[test]
    fn chunks_share_the_whole_batchs_moments_and_sums() {
        use super::super::sync::{as_member, ChunkSync};
        let (channels, plane) = (3, 10);
        let whole = BatchNormOp::new(5, channels, plane, 1e-5).expect("sizes");
        let xs: Vec<f32> = (0..whole.len())
            .map(|i| ((i * 7919) % 101) as f32 * 0.05 + 3.0)
            .collect();
        let (mean, var, count) = batch_moments(&whole, &xs, None).unwrap();
        assert_eq!(count, 5 * plane);
        let cut = 3 * channels * plane;
        let sync = ChunkSync::new(2);
        let chunk_sums = [
            vec![(1.0f32, 2.0f32); channels],
            vec![(4.0f32, -8.0f32); channels],
        ];
        let got: Vec<_> = std::thread::scope(|s| {
            let jobs: Vec<_> = [(0, &xs[..cut], 3), (1, &xs[cut..], 2)]
                .into_iter()
                .map(|(i, part, n)| {
                    let (sync, chunk_sums) = (&sync, &chunk_sums);
                    s.spawn(move || {
                        as_member(sync, i, || {
                            let op = BatchNormOp::new(n, channels, plane, 1e-5).expect("sizes");
                            let m = sync::member();
                            let moments = batch_moments(&op, part, m.as_ref())?;
                            let shared = shared_sums(&op, &chunk_sums[i], m.as_ref())?;
                            Ok::<_, CpuError>((moments, shared))
                        })
                        .expect("both chunks gather")
                    })
                })
                .collect();
            jobs.into_iter().map(|j| j.join().unwrap()).collect()
        });
        for (i, ((m, v, n), shared)) in got.iter().enumerate() {
            assert_eq!(*n, 5 * plane, "chunk {i}'s count");
            for c in 0..channels {
                assert!((m[c] - mean[c]).abs() < 1e-5, "chunk {i} mean {c}");
                assert!(
                    (v[c] - var[c]).abs() < 1e-5 * var[c],
                    "chunk {i} variance {c}"
                );
                // (3/5·1 + 2/5·4) / n_i and (3/5·2 − 2/5·8) / n_i, n_i = 30 or 20
                let own = ([3, 2][i] * plane) as f32;
                assert!((shared[c].0 - 2.2 / own).abs() < 1e-6, "chunk {i} Σdy {c}");
                assert!(
                    (shared[c].1 - -2.0 / own).abs() < 1e-6,
                    "chunk {i} Σdy·x̂ {c}"
                );
            }
        }
    }

    #[test]
    fn channel_sums_match_for_small_and_large_planes() {
        for (batch, channels, plane) in [(70, 2, 1), (9, 3, 49), (3, 2, 1500), (2, 1, 17)] {
            let op = BatchNormOp::new(batch, channels, plane, 1e-5).expect("sizes");
            let xs: Vec<f32> = (0..op.len())
                .map(|i| ((i * 7919) % 101) as f32 * 0.01 - 0.3)
                .collect();
            let gy: Vec<f32> = (0..op.len())
                .map(|i| ((i * 31) % 17) as f32 - 8.0)
                .collect();
            for c in 0..channels {
                let [s0, s1] = channel_sums(&op, (&gy, &xs), c, [0.5, 0.1], None);
                let (mut w0, mut w1, mut scale) = (0.0f64, 0.0f64, 0.0f64);
                for bi in 0..batch {
                    let start = (bi * channels + c) * plane;
                    for i in start..start + plane {
                        let u = gy[i] as f64 - 0.5;
                        w0 += u;
                        w1 += u * (xs[i] as f64 - 0.1f32 as f64);
                        scale += (u * (xs[i] as f64 - 0.1)).abs();
                    }
                }
                assert_eq!(s0, w0, "{batch}x{channels}x{plane} channel {c}");
                assert!(
                    (s1 - w1).abs() <= 1e-6 * scale,
                    "{batch}x{channels}x{plane} channel {c}: {s1} vs {w1}"
                );
            }
        }
    }

    /// One pass of shifted sums: a constant channel has variance 0 (not a
    /// rounding error below it), and a NaN gives a NaN variance.
    #[test]
    fn one_pass_statistics_keep_zero_and_nan() {
        let op = BatchNormOp::new(3, 2, 5, 1e-5).expect("sizes");
        let mut xs = vec![0.0f32; op.len()];
        for b in 0..3 {
            xs[b * 10..b * 10 + 5].fill(12345.678);
            for i in 0..5 {
                xs[b * 10 + 5 + i] = (b * 5 + i) as f32;
            }
        }
        let (mean, var, _) = batch_moments(&op, &xs, None).unwrap();
        assert_eq!((mean[0], var[0]), (12345.678, 0.0));
        // 0..15: mean 7, variance (15² − 1) / 12
        assert_eq!(mean[1], 7.0);
        assert!((var[1] - 224.0 / 12.0).abs() < 1e-5, "{}", var[1]);
        xs[17] = f32::NAN;
        let (mean, var, _) = batch_moments(&op, &xs, None).unwrap();
        assert!(mean[1].is_nan() && var[1].is_nan());
        assert_eq!(var[0], 0.0);
    }
}
