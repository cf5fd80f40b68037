//! ResNet's basic block in training mode on the CPU, as one op:
//! `y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, with the
//! shortcut the identity or `bnp(convp(x))`.
//!
//! Run layer by layer, each of the block's seven ops hands its output to
//! dfdx as a tensor, and dfdx 0.13 lends an op no view of a tensor's
//! storage: the next op copies it out, every output buffer and every
//! gradient buffer comes zero-filled, and the backward pass passes each
//! gradient on through one more zero-filled tensor. In ResNet's training
//! step those copies and fills took a quarter of the time. Here the block's
//! inner values live in the layers' own scratch buffers: dfdx sees one
//! input, one output and one input gradient. The kernels and the order of
//! every sum are those of the layer-by-layer ops, so the values and
//! gradients are the same bits (tested against them), and in a chunk of a
//! split step the batch norms share the whole batch's statistics as theirs
//! do.
use super::batch_norm::cpu::{
    add_sums, normalize_into, train_backward_into, train_stats, TrainStats,
};
use super::batch_norm::sync::{self, Member};
use super::conv2d::cpu::{backward_into, forward_into, ParamGrads};
use super::cpu_util::{avx2_or_baseline, copy_to_lease, output_vec, tensor_from_vec};
use super::{BatchNormOp, BatchStats, Conv2DOp, Lease, Workspace};
use dfdx::prelude::*;
use rayon::prelude::*;

/// A convolution of the block: its sizes, kernels (no bias) and scratch.
pub(crate) struct ConvPart<'a, Sw: Shape> {
    pub(crate) op: Conv2DOp,
    pub(crate) weight: &'a Tensor<Sw, f32, Cpu>,
    pub(crate) workspace: &'a Workspace,
}

/// A batch norm of the block: its sizes and affine parameters.
pub(crate) struct NormPart<'a, Sc: Shape> {
    pub(crate) op: BatchNormOp,
    pub(crate) weight: &'a Tensor<Sc, f32, Cpu>,
    pub(crate) bias: &'a Tensor<Sc, f32, Cpu>,
}

/// The parts of a block: `conv1`, `bn1` (which rectifies), `conv2`, `bn2`,
/// and the projection shortcut's convolution and batch norm, if any.
pub(crate) struct BlockParts<'a, Sw1: Shape, Sw2: Shape, Swp: Shape, Sc: Shape> {
    pub(crate) conv1: ConvPart<'a, Sw1>,
    pub(crate) bn1: NormPart<'a, Sc>,
    pub(crate) conv2: ConvPart<'a, Sw2>,
    pub(crate) bn2: NormPart<'a, Sc>,
    pub(crate) projection: Option<(ConvPart<'a, Swp>, NormPart<'a, Sc>)>,
}

/// The batch statistics of the block's batch norms, for their running
/// statistics.
pub(crate) struct BlockStats {
    pub(crate) bn1: BatchStats<f32>,
    pub(crate) bn2: BatchStats<f32>,
    pub(crate) projection: Option<BatchStats<f32>>,
}

impl<Sw: Shape> ConvPart<'_, Sw> {
    /// Whether it maps an input of `x_len` elements to an output of `y_len`.
    fn fits(&self, x_len: usize, y_len: usize) -> bool {
        let w_len = self.weight.shape().num_elements();
        self.op.fits(x_len, w_len, None, y_len) && self.op.output_len() == y_len
    }
}

impl<Sc: Shape> NormPart<'_, Sc> {
    /// Whether it normalises `len` elements, rectifying when `relu`.
    fn fits(&self, len: usize, relu: bool) -> bool {
        let channels = self.op.channels;
        self.op.len() == len
            && self.op.relu == relu
            && self.weight.shape().num_elements() == channels
            && self.bias.shape().num_elements() == channels
    }
}

impl<Sw1: Shape, Sw2: Shape, Swp: Shape, Sc: Shape> BlockParts<'_, Sw1, Sw2, Swp, Sc> {
    /// Whether the parts chain up and fit an input of `x_len` and an output
    /// of `y_len` elements: where they do not, the caller runs the layers
    /// one by one, and they report the error.
    pub(crate) fn fit(&self, x_len: usize, y_len: usize) -> bool {
        let a1 = self.conv1.op.output_len();
        let shortcut_fits = match &self.projection {
            None => x_len == y_len,
            Some((conv, norm)) => conv.fits(x_len, y_len) && norm.fits(y_len, false),
        };
        self.conv1.op.batch > 0
            && self.conv1.fits(x_len, a1)
            && self.bn1.fits(a1, true)
            && self.conv2.fits(a1, y_len)
            && self.bn2.fits(y_len, false)
            && shortcut_fits
    }
}

/// What the backward pass of a convolution + batch norm keeps: the
/// convolution's input is kept by whoever owns it.
struct ConvNormSaved {
    op: Conv2DOp,
    weight: Lease<f32>,
    workspace: Workspace,
    norm: BatchNormOp,
    affine: (Vec<f32>, Vec<f32>),
    stats: TrainStats<f32>,
    /// The convolution's output, the batch norm's input.
    conv_out: Lease<f32>,
}

/// `bn(conv(xs))` without the batch norm's normalisation: the convolution's
/// output and the batch statistics, shared with the other chunks of a split
/// step through `member`.
fn conv_norm_stats<Sw: Shape, Sc: Shape>(
    conv: &ConvPart<'_, Sw>,
    norm: &NormPart<'_, Sc>,
    xs: &[f32],
    member: Option<&Member>,
) -> Result<ConvNormSaved, CpuError> {
    let ws = conv.workspace;
    let weight = copy_to_lease(conv.weight, ws)?;
    let mut conv_out = ws.lease_any::<f32>(conv.op.output_len());
    forward_into(&conv.op, (&weight, None), xs, &mut conv_out, ws);
    let stats = train_stats(&norm.op, &conv_out, member)?;
    Ok(ConvNormSaved {
        op: conv.op,
        weight,
        workspace: ws.clone_handle(),
        norm: norm.op,
        affine: (norm.weight.as_vec(), norm.bias.as_vec()),
        stats,
        conv_out,
    })
}

impl ConvNormSaved {
    /// `[mean, scale, shift]` of channel `c`, as the batch norm's forward
    /// pass normalises with it.
    fn msb(&self, c: usize) -> [f32; 3] {
        let (w, b) = &self.affine;
        let st = &self.stats;
        [st.mean[c], w[c] * st.inv[c], b[c]]
    }

    /// The backward pass from the batch norm's output gradient `gy`: adds
    /// the convolution's input gradient into `gx` (zeroing it first when
    /// `zero_gx`), and returns the parameters' gradients.
    fn backward(
        &self,
        gy: &[f32],
        xs: &[f32],
        (gx, zero_gx): (&mut [f32], bool),
        member: Option<&Member>,
    ) -> Result<(ParamGrads<f32>, Vec<(f32, f32)>), CpuError> {
        let (w, b) = (&self.affine.0[..], &self.affine.1[..]);
        let mut g_conv = self.workspace.lease_any::<f32>(self.conv_out.len());
        let sums = train_backward_into(
            &self.norm,
            (gy, &self.conv_out),
            (w, b),
            &self.stats,
            member,
            (&mut g_conv, true),
        )?;
        let conv = backward_into(
            &self.op,
            &self.weight,
            (xs, &g_conv),
            (Some(gx), zero_gx),
            false,
            &self.workspace,
        );
        Ok((conv, sums))
    }
}

/// One training forward pass of the block on `x` (see the module docs),
/// with the backward pass on `x`'s tape when it owns one, and the batch
/// norms' statistics. The caller checks the sizes first ([`BlockParts::fit`]).
pub(crate) fn train<S: Shape, So: Shape, Sw1, Sw2, Swp, Sc, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
    parts: &BlockParts<'_, Sw1, Sw2, Swp, Sc>,
    out: So,
) -> Result<(Tensor<So, f32, Cpu, T>, BlockStats), CpuError>
where
    Sw1: Shape,
    Sw2: Shape,
    Swp: Shape,
    Sc: Shape,
{
    let x = x.try_contiguous()?;
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    let member = sync::member();
    let xs = copy_to_lease(&x, parts.conv1.workspace)?;

    let first = conv_norm_stats(&parts.conv1, &parts.bn1, &xs, member.as_ref())?;
    let mut h1 = parts.conv1.workspace.lease_any::<f32>(first.conv_out.len());
    let (w1, b1) = (&first.affine.0[..], &first.affine.1[..]);
    let ms1 = (&first.stats.mean[..], &first.stats.inv[..]);
    normalize_into(&first.norm, &first.conv_out, (w1, b1), ms1, &mut h1);
    let second = conv_norm_stats(&parts.conv2, &parts.bn2, &h1, member.as_ref())?;
    let projection = match &parts.projection {
        Some((conv, norm)) => Some(conv_norm_stats(conv, norm, &xs, member.as_ref())?),
        None => None,
    };

    // y = max(bn2 + shortcut, 0), and where it was positive
    let n = out.num_elements();
    let mut y = output_vec::<f32>(&dev, n)?;
    let mut mask = parts.conv2.workspace.lease_any::<u8>(n);
    let (op2, plane) = (&second.norm, second.norm.plane);
    let shortcut = projection.as_ref().map_or(&xs[..], |p| &p.conv_out[..]);
    let sample = op2.channels * plane;
    y.par_chunks_mut(sample)
        .zip(mask.par_chunks_mut(sample))
        .zip(second.conv_out.par_chunks(sample))
        .zip(shortcut.par_chunks(sample))
        .for_each(|(((y, m), a), s)| {
            let planes = (y.chunks_mut(plane).zip(m.chunks_mut(plane)))
                .zip(a.chunks(plane).zip(s.chunks(plane)));
            for (c, ((y, m), (a, s))) in planes.enumerate() {
                let s_msb = projection.as_ref().map(|p| p.msb(c));
                add_norms_relu(y, m, (a, second.msb(c)), (s, s_msb));
            }
        });
    let y = tensor_from_vec(&dev, y, out)?;

    let stats = BlockStats {
        bn1: first.stats.batch_stats(),
        bn2: second.stats.batch_stats(),
        projection: projection.as_ref().map(|p| p.stats.batch_stats()),
    };
    if T::OWNS_TAPE {
        let (x_g, y_g) = (x.ghost(), y.ghost());
        let g1 = (parts.conv1.weight.ghost(), parts.bn1.weight.ghost());
        let g1b = parts.bn1.bias.ghost();
        let g2 = (parts.conv2.weight.ghost(), parts.bn2.weight.ghost());
        let g2b = parts.bn2.bias.ghost();
        let gp = (parts.projection.as_ref())
            .map(|(c, n)| (c.weight.ghost(), n.weight.ghost(), n.bias.ghost()));
        tape.add_backward_op(move |grads| {
            let gy: Vec<f32> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            // the gradient of bn2's output and of the shortcut's
            let mut g_sum = second.workspace.lease_any::<f32>(gy.len());
            g_sum
                .par_chunks_mut(BLOCK)
                .zip(gy.par_chunks(BLOCK).zip(mask.par_chunks(BLOCK)))
                .for_each(|(g, (gy, m))| rectified(g, gy, m));
            let gx = grads.get_or_alloc_mut(&x_g)?;
            // the shortcut first, then the main path, as the tape of the
            // layer-by-layer ops runs them (the same sums into x's gradient)
            let proj = match &projection {
                None => {
                    add_into(gx, &g_sum);
                    None
                }
                Some(p) => Some(p.backward(&g_sum, &xs, (gx, false), member.as_ref())?),
            };
            let mut g_h1 = second.workspace.lease_any::<f32>(h1.len());
            let (conv2, bn2) = second.backward(&g_sum, &h1, (&mut g_h1, true), member.as_ref())?;
            let gx = grads.get_or_alloc_mut(&x_g)?;
            let (conv1, bn1) = first.backward(&g_h1, &xs, (gx, false), member.as_ref())?;
            **grads.get_or_alloc_mut(&y_g)? = gy;

            conv1.add_weight(grads.get_or_alloc_mut(&g1.0)?);
            add_sums(grads.get_or_alloc_mut(&g1.1)?, &bn1, |s| s.1);
            add_sums(grads.get_or_alloc_mut(&g1b)?, &bn1, |s| s.0);
            conv2.add_weight(grads.get_or_alloc_mut(&g2.0)?);
            add_sums(grads.get_or_alloc_mut(&g2.1)?, &bn2, |s| s.1);
            add_sums(grads.get_or_alloc_mut(&g2b)?, &bn2, |s| s.0);
            if let (Some((conv, sums)), Some((w_g, nw_g, nb_g))) = (proj, &gp) {
                conv.add_weight(grads.get_or_alloc_mut(w_g)?);
                add_sums(grads.get_or_alloc_mut(nw_g)?, &sums, |s| s.1);
                add_sums(grads.get_or_alloc_mut(nb_g)?, &sums, |s| s.0);
            }
            Ok(())
        });
    }
    Ok((y.put_tape(tape), stats))
}

avx2_or_baseline!(
    /// One plane's `y = max(n(a) + s', 0)` and `m = (y > 0)`, with `n(a) =
    /// (a − mean)·scale + shift` for `a_msb = [mean, scale, shift]`, and
    /// `s' = n(s)` for `s_msb` or `s` itself: the batch norm, the sum and
    /// the rectifier of the layer-by-layer ops, computed as they do.
    fn add_norms_relu(y: &mut [f32], m: &mut [u8], a: (&[f32], [f32; 3]), s: (&[f32], Option<[f32; 3]>)) => add_norms_relu_body
);

#[inline(always)]
fn add_norms_relu_body(
    y: &mut [f32],
    m: &mut [u8],
    (a, a_msb): (&[f32], [f32; 3]),
    (s, s_msb): (&[f32], Option<[f32; 3]>),
) {
    let norm = |v: f32, [mean, scale, shift]: [f32; 3]| (v - mean) * scale + shift;
    let out = y.iter_mut().zip(m.iter_mut()).zip(a.iter().zip(s));
    match s_msb {
        None => out.for_each(|((y, m), (a, s))| {
            let v = norm(*a, a_msb) + *s;
            *m = (v > 0.0) as u8;
            *y = if v > 0.0 { v } else { 0.0 };
        }),
        Some(s_msb) => out.for_each(|((y, m), (a, s))| {
            let v = norm(*a, a_msb) + norm(*s, s_msb);
            *m = (v > 0.0) as u8;
            *y = if v > 0.0 { v } else { 0.0 };
        }),
    }
}

avx2_or_baseline!(
    /// `g = gy` where `m` is set, else 0.
    fn rectified(g: &mut [f32], gy: &[f32], m: &[u8]) => rectified_body
);

#[inline(always)]
fn rectified_body(g: &mut [f32], gy: &[f32], m: &[u8]) {
    for ((g, gy), m) in g.iter_mut().zip(gy).zip(m) {
        *g = if *m != 0 { *gy } else { 0.0 };
    }
}

/// Elements per task of the element-wise passes.
const BLOCK: usize = 1 << 14;

/// `gx += g`, in parallel.
fn add_into(gx: &mut [f32], g: &[f32]) {
    gx.par_chunks_mut(BLOCK)
        .zip(g.par_chunks(BLOCK))
        .for_each(|(gx, g)| gx.iter_mut().zip(g).for_each(|(d, s)| *d += *s));
}
