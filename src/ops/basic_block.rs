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
    add_sums, check, normalize_into, normalized, train_backward_into, train_stats, TrainStats,
};
use super::batch_norm::sync::{self, Member};
use super::conv2d::cpu::{backward_into, forward_into, ParamGrads};
use super::cpu_util::{avx2_or_baseline, copy_to_lease, output_vec, tensor_from_vec, Write};
use super::relu::cpu::{add_masked, BLOCK};
use super::{BatchNormOp, BatchStats, Conv2DOp, Lease, Workspace};
use dfdx::prelude::*;
use dfdx::tensor::Gradients;
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
        self.op.fits(x_len, w_len, None, y_len)
    }
}

impl<Sc: Shape> NormPart<'_, Sc> {
    /// Whether it normalises `len` elements (the batch norm's own size
    /// check), rectifying when `relu`.
    fn fits(&self, len: usize, relu: bool) -> bool {
        self.op.relu == relu && check(&self.op, len, &[self.weight, self.bias]).is_ok()
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

/// A convolution and the batch norm after it, from the forward pass, for
/// the normalisation and the backward pass. The convolution's input is
/// kept by whoever owns it.
struct ConvNorm {
    /// The convolution's sizes.
    op: Conv2DOp,
    /// Its kernels, copied out of their tensor.
    weight: Lease<f32>,
    /// Its scratch memory.
    workspace: Workspace,
    /// The batch norm's sizes.
    norm: BatchNormOp,
    /// The batch norm's weight (γ).
    gamma: Vec<f32>,
    /// The batch norm's bias (β).
    beta: Vec<f32>,
    /// The batch's statistics.
    stats: TrainStats<f32>,
    /// The convolution's output, the batch norm's input.
    conv_out: Lease<f32>,
    /// Adds the parameters' gradients into a backward pass's (it holds
    /// the ghosts of the kernels, γ and β).
    add_grads: AddGrads,
}

/// The gradients of a [`ConvNorm`]'s parameters from one backward pass.
struct ConvNormGrads {
    conv: ParamGrads<f32>,
    /// Per channel `(Σ dy, Σ dy·x̂)`: β's and γ's gradients.
    sums: Vec<(f32, f32)>,
}

/// See [`ConvNorm::add_grads`].
type AddGrads =
    Box<dyn Fn(&mut Gradients<f32, Cpu>, &ConvNormGrads) -> Result<(), CpuError> + Send + Sync>;

impl ConvNorm {
    /// `conv(xs)` and the batch statistics of the result, shared with the
    /// other chunks of a split step through `member`.
    fn forward<Sw: Shape, Sc: Shape>(
        conv: &ConvPart<'_, Sw>,
        norm: &NormPart<'_, Sc>,
        xs: &[f32],
        member: Option<&Member>,
    ) -> Result<Self, CpuError> {
        let ws = conv.workspace;
        let weight = copy_to_lease(conv.weight, ws)?;
        let mut conv_out = ws.lease_any::<f32>(conv.op.output_len());
        forward_into(&conv.op, (&weight, None), xs, &mut conv_out, ws);
        let stats = train_stats(&norm.op, &conv_out, member)?;
        let (w, gamma, beta) = (conv.weight.ghost(), norm.weight.ghost(), norm.bias.ghost());
        let add_grads: AddGrads = Box::new(move |grads, g| {
            g.conv.add_weight(grads.get_or_alloc_mut(&w)?);
            add_sums(grads.get_or_alloc_mut(&gamma)?, &g.sums, |s| s.1);
            add_sums(grads.get_or_alloc_mut(&beta)?, &g.sums, |s| s.0);
            Ok(())
        });
        Ok(Self {
            op: conv.op,
            weight,
            workspace: ws.clone_handle(),
            norm: norm.op,
            gamma: norm.weight.as_vec(),
            beta: norm.bias.as_vec(),
            stats,
            conv_out,
            add_grads,
        })
    }

    /// `[mean, scale, shift]` of channel `c`, with which the batch norm
    /// normalises.
    fn msb(&self, c: usize) -> [f32; 3] {
        let st = &self.stats;
        [st.mean[c], self.gamma[c] * st.inv[c], self.beta[c]]
    }

    /// The batch norm's output (rectified if it rectifies), into `y`.
    fn normalize(&self, y: &mut [f32]) {
        let ms = (&self.stats.mean[..], &self.stats.inv[..]);
        normalize_into(&self.norm, &self.conv_out, (&self.gamma, &self.beta), ms, y);
    }

    /// The batch norm's backward pass from its output gradient `gy`: the
    /// gradient of the convolution's output, and the per-channel `(Σ dy,
    /// Σ dy·x̂)` (β's and γ's gradients).
    fn norm_backward(
        &self,
        gy: &[f32],
        member: Option<&Member>,
    ) -> Result<(Lease<f32>, Vec<(f32, f32)>), CpuError> {
        let mut g_conv = self.workspace.lease_any::<f32>(self.conv_out.len());
        let sums = train_backward_into(
            &self.norm,
            (gy, &self.conv_out),
            (&self.gamma, &self.beta),
            &self.stats,
            member,
            (&mut g_conv, Write::Overwrite),
        )?;
        Ok((g_conv, sums))
    }

    /// The convolution's backward pass from its output gradient `g_conv`
    /// and input `xs`: its input gradient into `gx` (`Write::Overwrite`:
    /// as if `gx` held zeros), and its kernels' gradient.
    fn conv_backward(
        &self,
        (g_conv, xs): (&[f32], &[f32]),
        gx: (&mut [f32], Write),
    ) -> ParamGrads<f32> {
        let (gx, write) = gx;
        backward_into(
            &self.op,
            &self.weight,
            (xs, g_conv),
            (Some(gx), write),
            false,
            &self.workspace,
        )
    }
}

/// What the block's backward pass needs from its forward pass.
struct BlockSaved {
    /// The block's input, copied out of its tensor.
    xs: Lease<f32>,
    /// `conv1` and `bn1`.
    first: ConvNorm,
    /// `bn1`'s output, `conv2`'s input.
    h1: Lease<f32>,
    /// `conv2` and `bn2`.
    second: ConvNorm,
    /// The projection shortcut, if any.
    projection: Option<ConvNorm>,
    /// Where the block's output was positive.
    mask: Lease<u8>,
    /// This chunk's place in a split step, if it runs in one.
    member: Option<Member>,
}

/// The block's backward pass up to the convolutions that read its input.
struct InnerGrads {
    /// The projection's batch norm: its convolution's output gradient and
    /// its sums.
    projection: Option<(Lease<f32>, Vec<(f32, f32)>)>,
    /// conv2's kernels' gradient and bn2's sums.
    second: ConvNormGrads,
    /// bn1: conv1's output gradient and its sums.
    first: (Lease<f32>, Vec<(f32, f32)>),
}

impl BlockSaved {
    /// The backward pass from the block's output gradient `gy`, as far as
    /// it goes without `x`'s gradient. The batch norms gather in the order
    /// of the layer-by-layer tape: the projection's, bn2, bn1.
    fn inner_backward(&self, gy: &[f32]) -> Result<InnerGrads, CpuError> {
        let member = self.member.as_ref();
        // the gradient of the sum before the last rectifier: of bn2's
        // output, and of the shortcut's
        let mut g_sum = self.second.workspace.lease_any::<f32>(gy.len());
        g_sum
            .par_chunks_mut(BLOCK)
            .zip(gy.par_chunks(BLOCK).zip(self.mask.par_chunks(BLOCK)))
            .for_each(|(g, (gy, m))| masked(g, gy, m));
        let projection = match &self.projection {
            Some(p) => Some(p.norm_backward(&g_sum, member)?),
            None => None,
        };
        let (g_conv2, sums) = self.second.norm_backward(&g_sum, member)?;
        let mut g_h1 = self.second.workspace.lease_any::<f32>(self.h1.len());
        let conv = self
            .second
            .conv_backward((&g_conv2, &self.h1), (&mut g_h1, Write::Overwrite));
        let first = self.first.norm_backward(&g_h1, member)?;
        Ok(InnerGrads {
            projection,
            second: ConvNormGrads { conv, sums },
            first,
        })
    }

    /// Adds `x`'s gradient into `gx`, from the block's output gradient
    /// `gy`: the shortcut's first, then conv1's, as the tape of the
    /// layer-by-layer ops adds them (the same sums; the identity's is
    /// `add_relu`'s own masked add). Returns the gradients of the
    /// projection's and conv1's kernels.
    fn input_backward(
        &self,
        inner: &InnerGrads,
        gy: &[f32],
        gx: &mut [f32],
    ) -> (Option<ParamGrads<f32>>, ParamGrads<f32>) {
        let projection = match (&self.projection, &inner.projection) {
            (Some(p), Some((g_conv, _))) => {
                Some(p.conv_backward((g_conv, &self.xs), (gx, Write::Accumulate)))
            }
            _ => {
                add_masked(gx, gy, &self.mask);
                None
            }
        };
        let first = self
            .first
            .conv_backward((&inner.first.0, &self.xs), (gx, Write::Accumulate));
        (projection, first)
    }

    /// The backward pass from the block's output gradient `gy`: `x`'s
    /// gradient into `gx` (through `with_gx`, which lends it), then the
    /// parameters' into `grads`.
    fn backward(
        &self,
        gy: &[f32],
        grads: &mut Gradients<f32, Cpu>,
        with_gx: impl FnOnce(
            &mut Gradients<f32, Cpu>,
            &mut dyn FnMut(&mut [f32]),
        ) -> Result<(), CpuError>,
    ) -> Result<(), CpuError> {
        let mut inner = self.inner_backward(gy)?;
        let mut convs = None;
        with_gx(grads, &mut |gx| {
            convs = Some(self.input_backward(&inner, gy, gx))
        })?;
        // `with_gx` lends the gradient unless it fails (returned above)
        let Some((projection, first)) = convs else {
            return Ok(());
        };
        let first = ConvNormGrads {
            conv: first,
            sums: std::mem::take(&mut inner.first.1),
        };
        (self.first.add_grads)(grads, &first)?;
        (self.second.add_grads)(grads, &inner.second)?;
        if let (Some(p), Some(conv), Some((_, sums))) =
            (&self.projection, projection, inner.projection.as_mut())
        {
            let sums = std::mem::take(sums);
            (p.add_grads)(grads, &ConvNormGrads { conv, sums })?;
        }
        Ok(())
    }
}

/// One training forward pass of the block on `x` (see the module docs),
/// with the backward pass on `x`'s tape when it owns one, and the batch
/// norms' statistics. Sizes that do not fit ([`BlockParts::fit`]) are
/// `CpuError::WrongNumElements`.
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
    if !parts.fit(x.shape().num_elements(), out.num_elements()) {
        return Err(CpuError::WrongNumElements);
    }
    let x = x.try_contiguous()?;
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    let member = sync::member();
    let xs = copy_to_lease(&x, parts.conv1.workspace)?;

    let first = ConvNorm::forward(&parts.conv1, &parts.bn1, &xs, member.as_ref())?;
    let mut h1 = parts.conv1.workspace.lease_any::<f32>(first.conv_out.len());
    first.normalize(&mut h1);
    let second = ConvNorm::forward(&parts.conv2, &parts.bn2, &h1, member.as_ref())?;
    let projection = match &parts.projection {
        Some((conv, norm)) => Some(ConvNorm::forward(conv, norm, &xs, member.as_ref())?),
        None => None,
    };

    // y = max(bn2 + shortcut, 0), and where it was positive
    let n = out.num_elements();
    let mut y = output_vec::<f32>(&dev, n)?;
    let mut mask = parts.conv2.workspace.lease_any::<u8>(n);
    let plane = second.norm.plane;
    let shortcut = projection.as_ref().map_or(&xs[..], |p| &p.conv_out[..]);
    let sample = second.norm.channels * plane;
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
        let saved = BlockSaved {
            xs,
            first,
            h1,
            second,
            projection,
            mask,
            member,
        };
        tape.add_backward_op(move |grads| {
            // borrowed out of `grads` (no copy), and put back after
            let gy: Vec<f32> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
            let done = saved.backward(&gy, grads, |grads, f| {
                f(grads.get_or_alloc_mut(&x_g)?);
                Ok(())
            });
            **grads.get_or_alloc_mut(&y_g)? = gy;
            done
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
    let norm = normalized::<f32>;
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
    /// `g = gy` where `m` is set, else 0: the gradient through the block's
    /// last rectifier.
    fn masked(g: &mut [f32], gy: &[f32], m: &[u8]) => masked_body
);

#[inline(always)]
fn masked_body(g: &mut [f32], gy: &[f32], m: &[u8]) {
    for ((g, gy), m) in g.iter_mut().zip(gy).zip(m) {
        *g = if *m != 0 { *gy } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of 2 channels on 4×4 images, identity shortcut, for a batch
    /// of `batch`.
    fn run(batch: usize, x_len: usize) -> Result<Vec<f32>, CpuError> {
        let dev = Cpu::seed_from_u64(3);
        let conv_op = Conv2DOp::new(batch, 2, 2, (4, 4), (3, 3), 1, 1).expect("sizes");
        let norm_op = BatchNormOp::new(batch, 2, 16, 1e-5).expect("sizes");
        let w1: Tensor<Rank4<2, 2, 3, 3>, f32, _> = dev.sample_normal();
        let w2: Tensor<Rank4<2, 2, 3, 3>, f32, _> = dev.sample_normal();
        let (gamma, beta): (Tensor<Rank1<2>, f32, _>, Tensor<Rank1<2>, f32, _>) =
            (dev.ones(), dev.zeros());
        let (ws1, ws2) = (Workspace::default(), Workspace::default());
        let norm = |relu: bool| NormPart {
            op: if relu { norm_op.with_relu() } else { norm_op },
            weight: &gamma,
            bias: &beta,
        };
        let parts: BlockParts<'_, _, _, Rank4<2, 2, 1, 1>, _> = BlockParts {
            conv1: ConvPart {
                op: conv_op,
                weight: &w1,
                workspace: &ws1,
            },
            bn1: norm(true),
            conv2: ConvPart {
                op: conv_op,
                weight: &w2,
                workspace: &ws2,
            },
            bn2: norm(false),
            projection: None,
        };
        let x = dev.tensor_from_vec(vec![0.5f32; x_len], (x_len,));
        let out = (batch * 32,);
        train(x, &parts, out).map(|(y, _)| y.as_vec())
    }

    /// Sizes that fit give a rectified output; an input of another size is
    /// `WrongNumElements`, not a slice panic.
    #[test]
    fn sizes_that_do_not_fit_are_an_error() {
        let y = run(3, 3 * 32).expect("the sizes fit");
        assert_eq!(y.len(), 3 * 32);
        assert!(y.iter().all(|v| *v >= 0.0));
        assert!(matches!(
            run(3, 3 * 32 - 1),
            Err(CpuError::WrongNumElements)
        ));
        assert!(matches!(run(3, 2 * 32), Err(CpuError::WrongNumElements)));
    }
}
