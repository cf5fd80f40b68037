//! The CPU convolution: im2col + `gemm`, parallel over the batch.
//!
//! Forward, per chunk of samples: `col = im2col(x)` (`chan_in·kh·kw ×
//! n·h_out·w_out`, the chunk's samples side by side so one `gemm` call serves
//! them all), then `y = W · col + b`. Backward, per fixed chunk of samples:
//! `col` again (recomputed from x: cheaper than keeping megabytes of it
//! between the passes), `dW += gy · colᵀ`, `db += Σ gy`, `dcol = Wᵀ · gy` and
//! `dx += col2im(dcol)`; the chunks' partial sums are added in order.
use super::plan::SamplePlan;
use super::{direct_grad, direct_input, Conv2DOp};
use crate::ops::cpu_util::{
    as_f32, as_f32_mut, avx2_or_baseline, copy_to_lease, copy_to_vec, gemm, output_vec,
    tensor_from_vec, Layout, Write,
};
use crate::ops::memo::ParamView;
use crate::ops::{tag_of, Lease, Workspace};
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

/// `dst = src` for short rows, without a call into `memcpy`: 8-wide blocks
/// and one overlapping block for the tail.
#[inline(always)]
fn copy_short<E: Copy>(dst: &mut [E], src: &[E]) {
    let n = dst.len();
    assert!(src.len() >= n);
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    // SAFETY: every access is at an index below `n`, and both slices hold at
    // least `n` elements (asserted above); `[E; 8]` reads and writes are
    // unaligned, and `dst` and `src` do not overlap (`&mut` and `&`).
    unsafe {
        if n < 8 {
            for i in 0..n {
                *d.add(i) = *s.add(i);
            }
            return;
        }
        let mut i = 0;
        while i + 8 <= n {
            (d.add(i) as *mut [E; 8]).write_unaligned((s.add(i) as *const [E; 8]).read_unaligned());
            i += 8;
        }
        if i < n {
            let j = n - 8;
            (d.add(j) as *mut [E; 8]).write_unaligned((s.add(j) as *const [E; 8]).read_unaligned());
        }
    }
}

/// `dst += src` for short rows, in 8-wide blocks.
#[inline(always)]
fn add_short<E: Dtype>(dst: &mut [E], src: &[E]) {
    let n = src.len();
    assert!(dst.len() >= n);
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    // SAFETY: as in `copy_short`: indices below `n`, both slices hold `n`.
    unsafe {
        let mut i = 0;
        while i + 8 <= n {
            let mut a = (d.add(i) as *const [E; 8]).read_unaligned();
            let b = (s.add(i) as *const [E; 8]).read_unaligned();
            for j in 0..8 {
                a[j] += b[j];
            }
            (d.add(i) as *mut [E; 8]).write_unaligned(a);
            i += 8;
        }
        while i < n {
            *d.add(i) += *s.add(i);
            i += 1;
        }
    }
}

/// The range of output rows `oy` whose input row `oy + ky − padding` lies
/// inside `0..h_in` (stride 1).
#[inline]
fn valid_rows_s1(op: &Conv2DOp, ky: usize) -> (usize, usize) {
    let lo = op.padding.saturating_sub(ky);
    let hi = (op.h_in + op.padding).saturating_sub(ky).min(op.h_out);
    (lo.min(hi), hi)
}

avx2_or_baseline!(
    /// See [`im2col_body`]; compiled twice, for AVX2 and for the baseline.
    pub(crate) fn im2col<E: Dtype>(op: &Conv2DOp, x: &[E], col: &mut [E], ld: usize, c0: usize)
        => im2col_body
);

avx2_or_baseline!(
    /// See [`col2im_add_body`]; compiled twice, for AVX2 and for the baseline.
    pub(crate) fn col2im_add<E: Dtype>(op: &Conv2DOp, col: &[E], ld: usize, c0: usize, dx: &mut [E])
        => col2im_add_body
);

/// Fills the columns `c0..c0 + h_out·w_out` of `col` (`chan_in·kh·kw` rows of
/// `ld` elements each) from one sample `x` (`chan_in × h_in × w_in`).
///
/// With `ld = h_out·w_out` and `c0 = 0` this is one sample's im2col matrix;
/// with `ld = n·h_out·w_out` and `c0 = i·h_out·w_out`, `n` samples share one
/// matrix side by side, so one `gemm` call serves them all.
///
/// Positions that read padding are not written: `col` must hold zeros there
/// (a fresh buffer, or one that held the same op's matrix at the same `ld`:
/// a workspace lease tagged with [`col_tag`]).
#[inline(always)]
fn im2col_body<E: Dtype>(op: &Conv2DOp, x: &[E], col: &mut [E], ld: usize, c0: usize) {
    let (hw, ohw) = (op.h_in * op.w_in, op.out_plane());
    for c in 0..op.chan_in {
        let plane = &x[c * hw..(c + 1) * hw];
        for ky in 0..op.kh {
            for kx in 0..op.kw {
                let row = (c * op.kh + ky) * op.kw + kx;
                let row = &mut col[row * ld + c0..row * ld + c0 + ohw];
                let (lo, hi) = valid_cols(op, kx);
                if lo >= hi {
                    continue;
                }
                let x0 = lo * op.stride + kx - op.padding;
                if op.stride == 1 {
                    let (y0, y1) = valid_rows_s1(op, ky);
                    for oy in y0..y1 {
                        let iy = oy + ky - op.padding;
                        let src = &plane[iy * op.w_in + x0..(iy + 1) * op.w_in];
                        copy_short(&mut row[oy * op.w_out + lo..oy * op.w_out + hi], src);
                    }
                    continue;
                }
                for oy in 0..op.h_out {
                    let iy = (oy * op.stride + ky).wrapping_sub(op.padding);
                    if iy >= op.h_in {
                        continue;
                    }
                    let dst = &mut row[oy * op.w_out + lo..oy * op.w_out + hi];
                    let src = &plane[iy * op.w_in..(iy + 1) * op.w_in];
                    {
                        for (d, ix) in dst.iter_mut().zip((x0..).step_by(op.stride)) {
                            *d = src[ix];
                        }
                    }
                }
            }
        }
    }
}

/// Adds the columns `c0..c0 + h_out·w_out` of `col` (rows of `ld` elements)
/// back onto one sample's input gradient `dx` (`chan_in × h_in × w_in`): the
/// adjoint of [`im2col`].
#[inline(always)]
fn col2im_add_body<E: Dtype>(op: &Conv2DOp, col: &[E], ld: usize, c0: usize, dx: &mut [E]) {
    let (hw, ohw) = (op.h_in * op.w_in, op.out_plane());
    for c in 0..op.chan_in {
        let plane = &mut dx[c * hw..(c + 1) * hw];
        for ky in 0..op.kh {
            for kx in 0..op.kw {
                let row = (c * op.kh + ky) * op.kw + kx;
                let row = &col[row * ld + c0..row * ld + c0 + ohw];
                let (lo, hi) = valid_cols(op, kx);
                if lo >= hi {
                    continue;
                }
                let x0 = lo * op.stride + kx - op.padding;
                if op.stride == 1 {
                    let (y0, y1) = valid_rows_s1(op, ky);
                    for oy in y0..y1 {
                        let iy = oy + ky - op.padding;
                        let dst = &mut plane[iy * op.w_in + x0..(iy + 1) * op.w_in];
                        add_short(dst, &row[oy * op.w_out + lo..oy * op.w_out + hi]);
                    }
                    continue;
                }
                for oy in 0..op.h_out {
                    let iy = (oy * op.stride + ky).wrapping_sub(op.padding);
                    if iy >= op.h_in {
                        continue;
                    }
                    let src = &row[oy * op.w_out + lo..oy * op.w_out + hi];
                    let dst = &mut plane[iy * op.w_in..(iy + 1) * op.w_in];
                    {
                        for (g, ix) in src.iter().zip((x0..).step_by(op.stride)) {
                            dst[ix] += *g;
                        }
                    }
                }
            }
        }
    }
}

/// Samples per task of the forward pass: enough that one `gemm` call has
/// some width, few enough that a task's im2col matrix stays in L2 and the
/// batch splits into at least 4 tasks. It depends on the op alone, not on the
/// thread count, so the output is the same bits with any number of threads.
fn forward_chunk(op: &Conv2DOp) -> usize {
    let per_sample = op.patch_len() * op.out_plane() * 4;
    let by_cache = (256 * 1024 / per_sample.max(1)).max(1);
    by_cache.min(op.batch.div_ceil(4)).clamp(1, 8)
}

/// Samples per partial sum of the weight gradient: fixed, so the sums do not
/// depend on the number of threads or on rayon's scheduling (bit-identical
/// training for a given seed).
const REDUCE_CHUNK: usize = 4;

/// The workspace tag of an im2col matrix of `op` with row length `ld`: a
/// buffer leased under it again still holds zeros in every padding position.
fn col_tag(op: &Conv2DOp, ld: usize) -> u64 {
    tag_of((op, ld))
}

/// The forward pass of `n` consecutive samples `xs` into `ys`, with scratch
/// from `ws`: `tmp = W · col`, then `y = tmp + b` per sample.
fn forward_chunk_run<E: Dtype>(
    op: &Conv2DOp,
    (w, b): (&[E], Option<&[E]>),
    xs: &[E],
    ys: &mut [E],
    ws: &Workspace,
) {
    let (ckk, ohw) = (op.patch_len(), op.out_plane());
    let out_len = op.chan_out * ohw;
    let ld = ys.len() / out_len * ohw;
    let col = chunk_im2col(op, xs, ws);
    let (w, col) = ((w, Layout::AsIs), (&col[..], Layout::AsIs));
    if ld == ohw {
        // one sample: write straight into the output, bias first
        let Some(b) = b else {
            gemm((op.chan_out, ohw, ckk), ys, Write::Overwrite, w, col);
            return;
        };
        for (o, bias) in b.iter().enumerate() {
            ys[o * ohw..(o + 1) * ohw].fill(*bias);
        }
        gemm((op.chan_out, ohw, ckk), ys, Write::Accumulate, w, col);
        return;
    }
    let mut tmp = ws.lease_any::<E>(op.chan_out * ld);
    gemm((op.chan_out, ld, ckk), &mut tmp, Write::Overwrite, w, col);
    for (i, yi) in ys.chunks_mut(out_len).enumerate() {
        for o in 0..op.chan_out {
            let bias = b.map_or(E::default(), |b| b[o]);
            let src = &tmp[o * ld + i * ohw..o * ld + (i + 1) * ohw];
            for (d, s) in yi[o * ohw..(o + 1) * ohw].iter_mut().zip(src) {
                *d = *s + bias;
            }
        }
    }
}

/// The im2col matrix of the samples `xs`, side by side (`ckk × n·ohw`), in
/// a buffer leased from `ws` under [`col_tag`].
fn chunk_im2col<E: Dtype>(op: &Conv2DOp, xs: &[E], ws: &Workspace) -> Lease<E> {
    let chw = op.chan_in * op.h_in * op.w_in;
    let ohw = op.out_plane();
    let ld = xs.len() / chw * ohw;
    let mut col = ws.lease_zeroed::<E>(Some(col_tag(op, ld)), op.patch_len() * ld);
    for (i, xi) in xs.chunks(chw).enumerate() {
        im2col(op, xi, &mut col, ld, i * ohw);
    }
    col
}

/// The backward pass of one fixed chunk of samples: its input gradient into
/// `gxc` (where it is wanted), and its partial weight and bias gradients into
/// `gw`, `gb`.
fn backward_chunk_run<E: Dtype>(
    op: &Conv2DOp,
    w: &[E],
    (gys, xc): (&[E], &[E]),
    gxc: Option<(&mut [E], Write)>,
    (gw, gb): (&mut [E], Option<&mut [E]>),
    (plans, ws): (&BackwardPlans, &Workspace),
) {
    let (chw, ckk, ohw) = (
        op.chan_in * op.h_in * op.w_in,
        op.patch_len(),
        op.out_plane(),
    );
    let out_len = op.chan_out * ohw;
    let ld = gys.len() / out_len * ohw;
    if let Some(gb) = gb {
        gb.fill(E::default());
        for gyi in gys.chunks(out_len) {
            for (o, gb) in gb.iter_mut().enumerate() {
                *gb += sum(&gyi[o * ohw..(o + 1) * ohw]);
            }
        }
    }
    // gy as one `chan_out × n·ohw` matrix, for the `gemm` paths alone
    let gemm_input = gxc.is_some() && plans.input.is_none();
    let gyc = (plans.weight.is_none() || gemm_input).then(|| {
        let mut gyc = ws.lease_any::<E>(op.chan_out * ld);
        for (i, gyi) in gys.chunks(out_len).enumerate() {
            for o in 0..op.chan_out {
                let src = &gyi[o * ohw..(o + 1) * ohw];
                gyc[o * ld + i * ohw..o * ld + (i + 1) * ohw].copy_from_slice(src);
            }
        }
        gyc
    });
    let gy_op = || {
        (
            &gyc.as_deref().expect("leased for the gemm paths")[..],
            Layout::AsIs,
        )
    };
    if let Some(plan) = &plans.weight {
        // dW directly, sample by sample
        let (xs, gys) = (as_f32(xc).expect("f32"), as_f32(gys).expect("f32"));
        let gw = as_f32_mut(gw).expect("E is f32 when there is a plan");
        gw.fill(0.0);
        let mut scratch = ws.lease_zeroed::<f32>(Some(plan.scratch_tag()), plan.scratch_len());
        plan.add(xs, gys, gw, &mut scratch);
    } else {
        // dW = gy · colᵀ over the whole chunk
        let col = chunk_im2col(op, xc, ws);
        let col_t = (&col[..], Layout::Transposed);
        gemm((op.chan_out, ckk, ld), gw, Write::Overwrite, gy_op(), col_t);
    }
    let Some((gxc, write)) = gxc else {
        return;
    };
    // the scatter and col2im add into dx: zeroed first where it is to be
    // overwritten
    let zeroed = |gxc: &mut [E]| {
        if let Write::Overwrite = write {
            gxc.fill(E::default());
        }
    };
    match &plans.input {
        Some(InputGrad::Transposed(plan)) => {
            // dx (+)= the transposed convolution of gy, directly (written
            // over dx, without a bias, where dx is to be overwritten)
            let gxc = as_f32_mut(gxc).expect("E is f32 when there is a plan");
            let gys = as_f32(gys).expect("E is f32 when there is a plan");
            let mut pad = ws.lease_zeroed::<f32>(Some(plan.padded_tag()), plan.padded_len());
            for (gxi, gyi) in gxc.chunks_mut(chw).zip(gys.chunks(out_len)) {
                plan.run(gyi, gxi, &mut pad, write);
            }
            return;
        }
        Some(InputGrad::Scatter(plan)) => {
            // dx += gy scattered through the kernel, directly
            zeroed(gxc);
            let gxc = as_f32_mut(gxc).expect("E is f32 when there is a plan");
            let gys = as_f32(gys).expect("E is f32 when there is a plan");
            let mut scratch = ws.lease_any::<f32>(plan.scratch_len());
            for (gxi, gyi) in gxc.chunks_mut(chw).zip(gys.chunks(out_len)) {
                plan.add(gyi, gxi, &mut scratch);
            }
            return;
        }
        None => zeroed(gxc),
    }
    // dcol = Wᵀ · gy, then dx += col2im(dcol)
    let mut dcol = ws.lease_any::<E>(ckk * ld);
    let w_t = (w, Layout::Transposed);
    gemm(
        (ckk, ld, op.chan_out),
        &mut dcol,
        Write::Overwrite,
        w_t,
        gy_op(),
    );
    for (i, gxi) in gxc.chunks_mut(chw).enumerate() {
        col2im_add(op, &dcol, ld, i * ohw, gxi);
    }
}

/// A sample plan (Winograd's or the direct tiles, f32 on AVX2 and FMA) on
/// every sample of `xs` into `y`, in chunks of `fc` samples of `chw`
/// inputs and `out_len` outputs.
fn run_plan<E: Dtype>(
    plan: &SamplePlan,
    (xs, y): (&[E], &mut [E]),
    (chw, out_len, fc): (usize, usize, usize),
    ws: &Workspace,
) {
    let ys = as_f32_mut(y).expect("E is f32 when there is a plan");
    let xs = as_f32(xs).expect("E is f32 when there is a plan");
    let run = |(ys, xc): (&mut [f32], &[f32])| {
        let mut xpad = ws.lease_zeroed::<f32>(Some(plan.padded_tag()), plan.padded_len());
        for (yi, xi) in ys.chunks_mut(out_len).zip(xc.chunks(chw)) {
            plan.run(xi, yi, &mut xpad, Write::Overwrite);
        }
    };
    if xs.len() <= chw * fc {
        run((ys, xs));
    } else {
        ys.par_chunks_mut(out_len * fc)
            .zip(xs.par_chunks(chw * fc))
            .for_each(run);
    }
}

pub(crate) fn conv2d<S: Shape, Sw: Shape, Sb: Shape, So: Shape, E: Dtype, T: Tape<E, Cpu>>(
    op: Conv2DOp,
    x: Tensor<S, E, Cpu, T>,
    (weight, bias): (&Tensor<Sw, E, Cpu>, Option<&Tensor<Sb, E, Cpu>>),
    out: So,
    ws: &Workspace,
    input_grad: bool,
) -> Result<Tensor<So, E, Cpu, T>, CpuError> {
    let x = x.try_contiguous()?;
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    let xs = copy_to_lease(&x, ws)?;
    let (chw, ohw) = (op.chan_in * op.h_in * op.w_in, op.out_plane());
    let out_len = op.chan_out * ohw;
    let mut y = output_vec::<E>(&dev, op.batch * out_len)?;
    let fc = forward_chunk(&op);

    if !T::OWNS_TAPE && direct_pays(&op) && as_f32::<E>(&[]).is_some() {
        // Inference: the direct plan (the packed weights) is kept in the
        // memo while the weights and bias are unchanged.
        let mut params = vec![ParamView::of(weight)];
        params.extend(bias.map(ParamView::of));
        let kept = ws.memo().get_or_make(
            params,
            |plan: &Option<SamplePlan>| plan.as_ref().is_none_or(|p| p.serves(&op)),
            || {
                let (w, b) = (copy_to_vec(weight)?, bias.map(copy_to_vec).transpose()?);
                Ok::<_, CpuError>(sample_plan(&op, &w, b.as_deref()))
            },
        )?;
        if let Some(plan) = kept.as_ref() {
            run_plan(plan, (&xs, &mut y), (chw, out_len, fc), ws);
            return tensor_from_vec(&dev, y, out).map(|y| y.put_tape(tape));
        }
    }
    let w = copy_to_lease(weight, ws)?;
    let b = bias.map(|b| copy_to_lease(b, ws)).transpose()?;
    forward_into(&op, (&w, b.as_deref().map(Vec::as_slice)), &xs, &mut y, ws);
    let y = tensor_from_vec(&dev, y, out)?;
    drop(b);

    if T::OWNS_TAPE {
        let (x_g, w_g, y_g) = (x.ghost(), weight.ghost(), y.ghost());
        let b_g = bias.map(|b| b.ghost());
        let ws = ws.clone_handle();
        tape.add_backward_op(move |grads| {
            // Borrow y's gradient out of `grads` (no copy) and put it back below.
            let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            let gx = if input_grad {
                Some(&mut grads.get_or_alloc_mut(&x_g)?[..])
            } else {
                None
            };
            let bias = b_g.is_some();
            let parts = backward_into(&op, &w, (&xs, &gy), (gx, Write::Accumulate), bias, &ws);
            **grads.get_or_alloc_mut(&y_g)? = gy;
            parts.add_weight(grads.get_or_alloc_mut(&w_g)?);
            if let Some(b_g) = &b_g {
                parts.add_bias(grads.get_or_alloc_mut(b_g)?);
            }
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// The forward pass of `op` on the samples `xs` into `y` (every element
/// written): the direct kernels where they serve, else im2col + `gemm`,
/// parallel over the batch.
pub(crate) fn forward_into<E: Dtype>(
    op: &Conv2DOp,
    (w, b): (&[E], Option<&[E]>),
    xs: &[E],
    y: &mut [E],
    ws: &Workspace,
) {
    let (chw, out_len) = (op.chan_in * op.h_in * op.w_in, op.chan_out * op.out_plane());
    let fc = forward_chunk(op);
    if let Some(plan) = &sample_plan(op, w, b) {
        run_plan(plan, (xs, y), (chw, out_len, fc), ws);
    } else if op.batch <= fc {
        // one task: no rayon round trip (batch-1 inference)
        forward_chunk_run(op, (w, b), xs, y, ws);
    } else {
        y.par_chunks_mut(out_len * fc)
            .zip(xs.par_chunks(chw * fc))
            .for_each(|(ys, xc)| forward_chunk_run(op, (w, b), xc, ys, ws));
    }
}

/// The weight and bias gradients of a backward pass ([`backward_into`]),
/// as partial sums of fixed chunks of samples.
pub(crate) struct ParamGrads<E: Dtype> {
    weight: Lease<E>,
    /// Empty for a convolution without bias.
    bias: Lease<E>,
    chan_out: usize,
}

impl<E: Dtype> ParamGrads<E> {
    /// Adds the weight gradient into `gw`: the chunks' partial sums in
    /// order (the same bits with any number of threads).
    pub(crate) fn add_weight(&self, gw: &mut [E]) {
        for part in self.weight.chunks(gw.len()) {
            gw.iter_mut().zip(part).for_each(|(g, p)| *g += *p);
        }
    }

    /// Adds the bias gradient into `gb`, in the same way.
    pub(crate) fn add_bias(&self, gb: &mut [E]) {
        for part in self.bias.chunks(self.chan_out) {
            gb.iter_mut().zip(part).for_each(|(g, p)| *g += *p);
        }
    }
}

/// The backward pass of `op` with weights `w`, inputs `xs` and output
/// gradient `gy`: adds the input gradient into `gx` when given (with
/// `Write::Overwrite`, writes it: as a transposed convolution straight
/// over `gx`, else by zeroing each chunk first, while it is in cache), and
/// returns the weight gradient and, with `bias`, the bias gradient. Per
/// fixed chunk of samples, in parallel.
pub(crate) fn backward_into<E: Dtype>(
    op: &Conv2DOp,
    w: &[E],
    (xs, gy): (&[E], &[E]),
    (gx, write): (Option<&mut [E]>, Write),
    bias: bool,
    ws: &Workspace,
) -> ParamGrads<E> {
    let (chw, out_len) = (op.chan_in * op.h_in * op.w_in, op.chan_out * op.out_plane());
    let chunks = op.batch.div_ceil(REDUCE_CHUNK);
    let input_grad = gx.is_some();
    // each chunk's slice of x's gradient, or none where nobody wants it
    let gx_chunks = chunks_or_none(gx, chw * REDUCE_CHUNK, chunks);
    // Per fixed chunk of REDUCE_CHUNK samples: the im2col matrix of the
    // chunk (recomputed from x, cheaper than keeping it), the partial
    // weight and bias gradients, and the chunk's dx.
    let plans = BackwardPlans {
        weight: (as_f32(w).filter(|_| direct_pays(op)))
            .and_then(|_| direct_grad::WeightGrad::new(op)),
        input: (as_f32(w).filter(|_| input_grad && direct_pays(op))).and_then(|w| {
            input_grad_plan(op, w)
                .map(InputGrad::Transposed)
                .or_else(|| direct_input::ScatterPlan::new(op, w).map(InputGrad::Scatter))
        }),
    };
    let (gw_len, gb_len) = (op.chan_out * op.patch_len(), op.chan_out);
    let mut weight = ws.lease_any::<E>(chunks * gw_len);
    let mut bias_parts = ws.lease_any::<E>(if bias { chunks * gb_len } else { 0 });
    let gb_chunks = chunks_or_none(bias.then_some(&mut bias_parts[..]), gb_len, chunks);
    gy.par_chunks(out_len * REDUCE_CHUNK)
        .zip(xs.par_chunks(chw * REDUCE_CHUNK))
        .zip(gx_chunks)
        .zip(weight.par_chunks_mut(gw_len))
        .zip(gb_chunks)
        .for_each(|((((gys, xc), gxc), gw), gb)| {
            let gxc = gxc.map(|g| (g, write));
            backward_chunk_run(op, w, (gys, xc), gxc, (gw, gb), (&plans, ws))
        });
    ParamGrads {
        weight,
        bias: bias_parts,
        chan_out: op.chan_out,
    }
}

/// `v` in `count` slices of `len`, or `count` times `None` without `v`.
fn chunks_or_none<E>(v: Option<&mut [E]>, len: usize, count: usize) -> Vec<Option<&mut [E]>> {
    match v {
        Some(v) => v.chunks_mut(len).map(Some).collect(),
        None => (0..count).map(|_| None).collect(),
    }
}

/// Whether the direct kernels may serve `op`: not for a strided 1×1
/// convolution (ResNet's projection shortcuts), which reads a quarter of
/// its input or less. im2col gathers just that part and its `gemm` calls
/// run as fast as the tiles, whose padded copy of each sample would copy
/// all of it; measured in ResNet's training step (2026-12-04, AVX-512),
/// the backward pass of its two projections took 1.08 and 0.70 ms a batch
/// of 64 on the direct kernels, 0.65 and 0.42 ms on `gemm`.
fn direct_pays(op: &Conv2DOp) -> bool {
    op.kh * op.kw > 1 || op.stride == 1
}

/// The forward plan of `op` with weights `w` and bias `b`, where Winograd's
/// or the direct kernels serve it (f32 on AVX2 and FMA, and
/// [`direct_pays`]).
fn sample_plan<E: Dtype>(op: &Conv2DOp, w: &[E], b: Option<&[E]>) -> Option<SamplePlan> {
    let w = as_f32(w).filter(|_| direct_pays(op))?;
    SamplePlan::new(op, w, b.and_then(as_f32))
}

/// The direct kernels a backward pass uses, where they pay (f32 on AVX2 and
/// FMA); im2col + `gemm` does the rest.
struct BackwardPlans {
    /// The weight gradient.
    weight: Option<direct_grad::WeightGrad>,
    /// The input gradient.
    input: Option<InputGrad>,
}

/// How a backward pass computes the input gradient directly.
enum InputGrad {
    /// As a convolution of the output gradient ("same" convolutions).
    Transposed(SamplePlan),
    /// By scattering the output gradient through the kernel.
    Scatter(direct_input::ScatterPlan),
}

/// The input gradient of `op` as a direct convolution, where that pays:
/// `dx = conv(gy, w')` with padding `k − 1 − padding` and `w'[ci][co]` the
/// kernel `w[co][ci]` turned by 180°. Stride 1 and square kernels only, and
/// only for "same" convolutions (input about as large as the output): the
/// padded `gy` of a "valid" one is mostly zeros, and im2col + `gemm` wastes
/// nothing on them.
fn input_grad_plan(op: &Conv2DOp, w: &[f32]) -> Option<SamplePlan> {
    let (inputs, outputs) = (op.h_in * op.w_in, op.out_plane());
    if op.stride != 1 || op.kh != op.kw || op.padding >= op.kh || 4 * inputs > 5 * outputs {
        return None;
    }
    let t = Conv2DOp::new(
        op.batch,
        op.chan_out,
        op.chan_in,
        (op.h_out, op.w_out),
        (op.kh, op.kw),
        1,
        op.kh - 1 - op.padding,
    )?;
    if (t.h_out, t.w_out) != (op.h_in, op.w_in) {
        return None;
    }
    let k = op.kh;
    let mut wt = vec![0.0f32; w.len()];
    for co in 0..op.chan_out {
        for ci in 0..op.chan_in {
            for ky in 0..k {
                for kx in 0..k {
                    let src = ((co * op.chan_in + ci) * k + ky) * k + kx;
                    let dst = ((ci * op.chan_out + co) * k + (k - 1 - ky)) * k + (k - 1 - kx);
                    wt[dst] = w[src];
                }
            }
        }
    }
    SamplePlan::new(&t, &wt, None)
}

/// A sum in 8 independent lanes (vectorises; fixed order, so deterministic).
#[inline]
fn sum<E: Dtype>(v: &[E]) -> E {
    let mut acc = [E::default(); 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += *x;
        }
    }
    let mut s = E::default();
    for x in it.remainder() {
        s += *x;
    }
    acc.iter().fold(E::default(), |a, b| a + *b) + s
}
