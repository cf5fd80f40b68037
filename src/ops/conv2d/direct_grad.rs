//! The weight gradient of a stride-1 convolution, directly, for f32 on
//! x86-64 CPUs with AVX2 and FMA or AVX-512: `dW[co][ci][ky][kx] = Σ
//! gy[co][oy][ox] · x[ci][oy + ky − p][ox + kx − p]` without an im2col
//! matrix. `L` below is the vector's lanes: 8 (AVX2) or 16 (AVX-512).
//!
//! A tile is `CB` output channels × `KB` kernel columns of one `(ci, ky)`:
//! its `CB·KB` accumulators hold `L` output columns each. It walks every
//! output row in vectors of `L` positions, loading `CB` vectors of `gy` and
//! `KB` shifted vectors of the padded input, and sums the lanes at the end.
//! `gy` is copied into rows padded with zeros to a multiple of `L`, so the
//! positions past a row's end add nothing. Worth it when rows are long and
//! there are many of them, and the input channels few (LeNet's first
//! convolution: 28 rows of 28 of one channel). With more input channels,
//! a second tile ([`ChanGradPlan`]) holds output channels in the registers
//! instead; the im2col + `gemm` path serves the rest.
//!
//! Per sample the order of the sums is fixed, and samples are added in
//! order, so the result does not depend on the thread count.
use super::direct::{pad_copy, tap_cost, Isa};
use super::transpose::planes_to_positions;
use super::{winograd, Conv2DOp};
use crate::ops::tag_of;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Input channels from which [`WeightGrad::new`] prefers channel tiles.
const ROWS_BELOW_CHANNELS: usize = 8;

/// Channels of a tile at most (AVX-512; 6 with AVX2).
const MAX_CB: usize = 8;
/// Kernel columns of a tile at most.
const MAX_KB: usize = 6;

/// Channels of a row tile at most on `isa`.
fn max_cb(isa: Isa) -> usize {
    match isa {
        Isa::Avx2 => 6,
        Isa::Avx512 => MAX_CB,
    }
}

/// A tile's lane sums: `[channel][kernel column]`.
type GradOut = [[f32; MAX_KB]; MAX_CB];

/// The inner loop of a tile, monomorphised for its `CB` and `KB`:
/// (geometry, first gy row of the group, first input of the tile, out).
type GradTileFn = unsafe fn(&Rows, *const f32, *const f32, &mut GradOut);

/// What a tile walks: the rows and their strides.
struct Rows {
    h_out: usize,
    /// Vectors of `L` positions per padded `gy` row.
    nvec: usize,
    /// Elements between two padded `gy` planes (`h_out · L·nvec`).
    gy_plane: usize,
    /// Elements between two padded input rows.
    x_row: usize,
}

/// A stride-1 convolution prepared for the direct weight gradient.
pub(crate) struct GradPlan {
    op: Conv2DOp,
    isa: Isa,
    rows: Rows,
    /// Padded input height and width.
    hp: usize,
    wp: usize,
}

impl GradPlan {
    /// `None` unless the CPU has AVX2 and FMA, the stride is 1, and the rows
    /// are long and many enough for this kernel to beat im2col + `gemm`:
    /// on the widest vectors that the rows fill.
    pub(crate) fn new(op: &Conv2DOp) -> Option<Self> {
        let isa = Isa::usable().rev().find(|&isa| Self::suits(op, isa))?;
        Self::on(op, isa)
    }

    /// Whether rows of `op` fill `isa`'s vectors well (¾ of the lanes) and
    /// there are enough of them.
    fn suits(op: &Conv2DOp, isa: Isa) -> bool {
        let l = isa.lanes();
        let nvec = op.w_out.div_ceil(l);
        op.stride == 1 && 4 * op.w_out >= 3 * l * nvec && op.h_out * nvec * l >= 192
    }

    /// [`GradPlan::new`] on `isa` (which must run here).
    fn on(op: &Conv2DOp, isa: Isa) -> Option<Self> {
        if !isa.runs_here() || !Self::suits(op, isa) {
            return None;
        }
        let l = isa.lanes();
        let nvec = op.w_out.div_ceil(l);
        let hp = op.h_in + 2 * op.padding;
        let wp = (op.w_in + 2 * op.padding).max(l * nvec + op.kw - 1);
        let rows = Rows {
            h_out: op.h_out,
            nvec,
            gy_plane: op.h_out * l * nvec,
            x_row: wp,
        };
        Some(Self {
            op: *op,
            isa,
            rows,
            hp,
            wp,
        })
    }

    /// Elements of the scratch one call needs (see [`GradPlan::add`]).
    pub(crate) fn scratch_len(&self) -> usize {
        self.op.chan_in * self.hp * self.wp + self.op.chan_out * self.rows.gy_plane
    }

    /// A workspace tag for the scratch: a buffer leased under it again
    /// still holds zeros in every padding position.
    pub(crate) fn scratch_tag(&self) -> u64 {
        tag_of((&self.op, self.wp, "direct weight gradient"))
    }

    /// `gw += dW` of one sample `x` (`chan_in × h_in × w_in`) and its output
    /// gradient `gy` (`chan_out × h_out × w_out`); `gw` is `chan_out ×
    /// chan_in·kh·kw`. `scratch` holds [`GradPlan::scratch_len`] elements,
    /// zero in the padding: fresh, or leased under [`GradPlan::scratch_tag`].
    pub(crate) fn add(&self, x: &[f32], gy: &[f32], gw: &mut [f32], scratch: &mut [f32]) {
        let op = &self.op;
        assert_eq!(x.len(), op.chan_in * op.h_in * op.w_in);
        assert_eq!(gy.len(), op.chan_out * op.out_plane());
        assert_eq!(gw.len(), op.chan_out * op.patch_len());
        assert_eq!(scratch.len(), self.scratch_len());
        let (xpad, gpad) = scratch.split_at_mut(op.chan_in * self.hp * self.wp);
        pad_copy(op, x, (self.hp, self.wp), xpad);
        let gw_row = self.isa.lanes() * self.rows.nvec;
        for (src, dst) in gy.chunks(op.w_out).zip(gpad.chunks_mut(gw_row)) {
            dst[..op.w_out].copy_from_slice(src);
        }
        let ckk = op.patch_len();
        let cb_max = max_cb(self.isa).min(self.isa.max_acc() / op.kw.min(MAX_KB));
        let mut out: GradOut = [[0.0; MAX_KB]; MAX_CB];
        for co0 in (0..op.chan_out).step_by(cb_max) {
            let cb = cb_max.min(op.chan_out - co0);
            for ci in 0..op.chan_in {
                for ky in 0..op.kh {
                    for kx0 in (0..op.kw).step_by(MAX_KB) {
                        let kb = MAX_KB.min(op.kw - kx0);
                        let Some(tile) = grad_tile_fn(self.isa, cb, kb) else {
                            unreachable!("every tile with cb·kb ≤ max_acc is monomorphised")
                        };
                        let x0 = (ci * self.hp + ky) * self.wp + kx0;
                        let g0 = co0 * self.rows.gy_plane;
                        // SAFETY: the plan's `Isa` runs here (`on` checked) and
                        // `tile` is its kernel, with L lanes. The tile reads
                        // gy at g0 + c·gy_plane + oy·L·nvec + L·v + lane for c
                        // < cb, oy < h_out, v < nvec: inside gpad, as co0 + cb
                        // ≤ chan_out. It reads the input at x0 + oy·wp + L·v +
                        // lane + k for k < kb: at most (ci·hp + ky + h_out −
                        // 1)·wp + kx0 + kb − 1 + L·nvec − 1, inside xpad
                        // because ky + h_out ≤ hp (stride 1) and kx0 + kb − 1
                        // + L·nvec ≤ kw − 1 + L·nvec ≤ wp.
                        unsafe {
                            tile(
                                &self.rows,
                                gpad[g0..].as_ptr(),
                                xpad[x0..].as_ptr(),
                                &mut out,
                            )
                        };
                        for (c, o) in out.iter().enumerate().take(cb) {
                            let row = (co0 + c) * ckk + (ci * op.kh + ky) * op.kw + kx0;
                            for (g, v) in gw[row..row + kb].iter_mut().zip(o) {
                                *g += *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The tile on `isa` for `cb` channels and `kb` kernel columns.
fn grad_tile_fn(isa: Isa, cb: usize, kb: usize) -> Option<GradTileFn> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! pick {
            ($f:ident, $($cb:literal: $($kb:literal)*;)*) => {
                match (cb, kb) {
                    $($(($cb, $kb) => Some($f::<$cb, $kb> as GradTileFn),)*)*
                    _ => None,
                }
            };
        }
        match isa {
            Isa::Avx2 => pick!(
                grad_tile,
                1: 1 2 3 4 5 6; 2: 1 2 3 4 5 6; 3: 1 2 3 4; 4: 1 2 3; 5: 1 2; 6: 1 2;
            ),
            Isa::Avx512 => pick!(
                grad_tile_512,
                1: 1 2 3 4 5 6; 2: 1 2 3 4 5 6; 3: 1 2 3 4 5 6; 4: 1 2 3 4 5 6;
                5: 1 2 3 4; 6: 1 2 3 4; 7: 1 2 3; 8: 1 2 3;
            ),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, cb, kb);
        None
    }
}

/// One tile: `Σ_rows Σ_positions gy[c] · x[shifted by k]` for `c < CB`,
/// `k < KB`, lanes summed into `out[c][k]`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `gy + c·gy_plane + oy·8·nvec + q` and `x +
/// oy·x_row + q + k` are readable for `c < CB`, `k < KB`, `oy < h_out`,
/// `q < 8·nvec`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_tile<const CB: usize, const KB: usize>(
    r: &Rows,
    gy: *const f32,
    x: *const f32,
    out: &mut GradOut,
) {
    let mut acc = [[_mm256_setzero_ps(); KB]; CB];
    let gy_row = 8 * r.nvec;
    for oy in 0..r.h_out {
        let (g_row, x_row) = (gy.add(oy * gy_row), x.add(oy * r.x_row));
        for v in 0..r.nvec {
            let mut g = [_mm256_setzero_ps(); CB];
            for (c, g) in g.iter_mut().enumerate() {
                *g = _mm256_loadu_ps(g_row.add(c * r.gy_plane + 8 * v));
            }
            for k in 0..KB {
                let xv = _mm256_loadu_ps(x_row.add(8 * v + k));
                for (a, g) in acc.iter_mut().zip(&g) {
                    a[k] = _mm256_fmadd_ps(*g, xv, a[k]);
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, a) in o.iter_mut().zip(a) {
            let mut lanes = [0.0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
            *o = lanes.iter().sum();
        }
    }
}

/// [`grad_tile`] on AVX-512, with 16 lanes.
///
/// # Safety
/// The CPU has AVX-512 F; otherwise as [`grad_tile`], with `16·nvec`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn grad_tile_512<const CB: usize, const KB: usize>(
    r: &Rows,
    gy: *const f32,
    x: *const f32,
    out: &mut GradOut,
) {
    let mut acc = [[_mm512_setzero_ps(); KB]; CB];
    let gy_row = 16 * r.nvec;
    for oy in 0..r.h_out {
        let (g_row, x_row) = (gy.add(oy * gy_row), x.add(oy * r.x_row));
        for v in 0..r.nvec {
            let mut g = [_mm512_setzero_ps(); CB];
            for (c, g) in g.iter_mut().enumerate() {
                *g = _mm512_loadu_ps(g_row.add(c * r.gy_plane + 16 * v));
            }
            for k in 0..KB {
                let xv = _mm512_loadu_ps(x_row.add(16 * v + k));
                for (a, g) in acc.iter_mut().zip(&g) {
                    a[k] = _mm512_fmadd_ps(*g, xv, a[k]);
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, a) in o.iter_mut().zip(a) {
            let mut lanes = [0.0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), *a);
            *o = lanes.iter().sum();
        }
    }
}

/// The weight gradient of a convolution without im2col, with whichever
/// kernel suits it: Winograd's F(3×3, 2×2) ([`winograd::GradPlan`]) for 3×3
/// kernels of stride 1 and channels in multiples of 8;
/// [`GradPlan`] for long rows at stride 1 of fewer than 8 input channels,
/// [`ChanGradPlan`] for 8 output channels or more (and for 8 input
/// channels or more, where both would do); `None` (im2col + `gemm`)
/// otherwise.
pub(crate) enum WeightGrad {
    /// Winograd's F(3×3, 2×2).
    Winograd(winograd::GradPlan),
    /// Positions in the registers.
    Rows(GradPlan),
    /// Output channels in the registers.
    Channels(ChanGradPlan),
}

impl WeightGrad {
    /// The kernel for `op`, if one suits it: row tiles for a few input
    /// channels (a first layer's image), channel tiles for the rest.
    ///
    /// A row tile sums its lanes once per input channel, kernel row and
    /// sample, which a long plane of few channels amortises and a deep
    /// layer does not. Measured in ResNet's training step (2026-12-04,
    /// AMD EPYC with AVX-512): channel tiles took the weight gradient of
    /// 32 channels at 14×14 from 4.1 to 3.0 ms a batch of 64, and with
    /// AVX2 alone, that of 16 channels at 28×28 from 4.8 to 3.5 ms; for
    /// the stem's single input channel, row tiles take half the time.
    pub(crate) fn new(op: &Conv2DOp) -> Option<Self> {
        if let Some(plan) = winograd::GradPlan::new(op) {
            return Some(Self::Winograd(plan));
        }
        let rows = || GradPlan::new(op).map(Self::Rows);
        let channels = || ChanGradPlan::new(op).map(Self::Channels);
        if op.chan_in >= ROWS_BELOW_CHANNELS {
            channels().or_else(rows)
        } else {
            rows().or_else(channels)
        }
    }

    /// Elements of the scratch one call needs.
    pub(crate) fn scratch_len(&self) -> usize {
        match self {
            Self::Winograd(p) => p.scratch_len(),
            Self::Rows(p) => p.scratch_len(),
            Self::Channels(p) => p.scratch_len(),
        }
    }

    /// The scratch's workspace tag.
    pub(crate) fn scratch_tag(&self) -> u64 {
        match self {
            Self::Winograd(p) => p.scratch_tag(),
            Self::Rows(p) => p.scratch_tag(),
            Self::Channels(p) => p.scratch_tag(),
        }
    }

    /// `gw += dW` of the samples `xs` and their output gradients `gys`, in
    /// order (see [`GradPlan::add`] and [`ChanGradPlan::add`]).
    pub(crate) fn add(&self, xs: &[f32], gys: &[f32], gw: &mut [f32], scratch: &mut [f32]) {
        match self {
            Self::Winograd(p) => p.add(xs, gys, gw, scratch),
            Self::Rows(p) => {
                let op = &p.op;
                let chw = op.chan_in * op.h_in * op.w_in;
                for (x, gy) in xs.chunks(chw).zip(gys.chunks(op.chan_out * op.out_plane())) {
                    p.add(x, gy, gw, scratch);
                }
            }
            Self::Channels(p) => p.add(xs, gys, gw, scratch),
        }
    }
}

/// Channels of a channel-vectorised tile at most (`L·V`, `V ≤ 2`).
const MAX_LANES: usize = 32;
/// Taps of a channel-vectorised tile at most (AVX-512, `V = 1`).
const MAX_TAPS: usize = 24;

/// A channel tile's sums: `[tap][channel]`.
type ChanGradOut = [[f32; MAX_LANES]; MAX_TAPS];

/// The inner loop of a channel tile, monomorphised for its block `KY × KX` and
/// registers `V`: (geometry, first gy of the group, first input, out).
type ChanGradTileFn = unsafe fn(&Positions, *const f32, *const f32, &mut ChanGradOut);

/// What a channel tile walks: every output position, and the strides.
struct Positions {
    h_out: usize,
    w_out: usize,
    stride: usize,
    /// Elements between two padded input rows.
    x_row: usize,
    /// Elements per position of the transposed `gy` (`lanes · groups`).
    gy_pos: usize,
}

/// The weight gradient with output channels in the registers, for
/// convolutions with 8 channels or more whose rows are short (LeNet's
/// second): per input channel and block of up to [`MAX_KY`] kernel rows ×
/// `KX` columns, a tile walks every output position once, broadcasting the
/// block's input values and loading `V` vectors of `gy` (transposed to
/// `[position][channel]` first), so no lane is wasted on short rows and no
/// lanes need summing.
pub(crate) struct ChanGradPlan {
    op: Conv2DOp,
    isa: Isa,
    pos: Positions,
    /// Registers per position (1 or 2).
    v: usize,
    /// Kernel rows and columns per tile (the last block of each may be
    /// smaller).
    block: (usize, usize),
    hp: usize,
    wp: usize,
}

/// Kernel rows of a channel tile at most.
const MAX_KY: usize = 3;

/// The blocks of kernel rows and columns of a channel tile: as many columns
/// as the accumulators allow, then as many rows as are left for them. A
/// tile of a 3×3 kernel's one column block holds the taps of up to three
/// rows, so that each position's `gy` load feeds more FMAs and enough
/// accumulators are in flight to hide the FMA latency (a row's three alone
/// leave it waiting).
fn chan_grad_block(op: &Conv2DOp, isa: Isa, v: usize) -> (usize, usize) {
    let kx = op.kw.min(isa.max_acc() / v);
    let ky = op.kh.min(MAX_KY).min(isa.max_acc() / (v * kx));
    (ky.max(1), kx)
}

/// The sizes of `n` split into blocks of `b`: the full ones, then the rest.
fn blocks(n: usize, b: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).step_by(b).map(move |i| (i, b.min(n - i)))
}

impl ChanGradPlan {
    /// `None` unless the CPU has AVX2 and FMA and there are 8 output
    /// channels or more; on the vectors that cost least by
    /// [`ChanGradPlan::cost`] (AVX2 on a tie).
    pub(crate) fn new(op: &Conv2DOp) -> Option<Self> {
        let isa = Isa::usable().min_by_key(|&isa| Self::cost(op, isa))?;
        Self::on(op, isa)
    }

    /// Estimated time per output position and input channel on `isa`, as
    /// [`tap_cost`] per tile: few taps in a tile leave too few accumulators
    /// to hide the FMA latency, which is what wider registers cost when
    /// they hold all the channels (a 3×3 kernel with 16 channels runs as
    /// fast in two 8-lane registers per tap as in one of 16).
    fn cost(op: &Conv2DOp, isa: Isa) -> usize {
        let l = isa.lanes();
        let v = if op.chan_out > l { 2 } else { 1 };
        let (ky, kx) = chan_grad_block(op, isa, v);
        let per_group: usize = blocks(op.kh, ky)
            .flat_map(|(_, rows)| blocks(op.kw, kx).map(move |(_, cols)| rows * cols))
            .map(|taps| tap_cost(taps * v, taps + v))
            .sum();
        op.chan_out.div_ceil(l * v) * per_group
    }

    /// [`ChanGradPlan::new`] on `isa` (which must run here).
    fn on(op: &Conv2DOp, isa: Isa) -> Option<Self> {
        if !isa.runs_here() || op.chan_out < 8 {
            return None;
        }
        let l = isa.lanes();
        let v = if op.chan_out > l { 2 } else { 1 };
        let block = chan_grad_block(op, isa, v);
        let groups = op.chan_out.div_ceil(l * v);
        let hp = op.h_in + 2 * op.padding;
        let wp = op.w_in + 2 * op.padding;
        let pos = Positions {
            h_out: op.h_out,
            w_out: op.w_out,
            stride: op.stride,
            x_row: wp,
            gy_pos: l * v * groups,
        };
        Some(Self {
            op: *op,
            isa,
            pos,
            v,
            block,
            hp,
            wp,
        })
    }

    /// Elements of the scratch one call needs (see [`ChanGradPlan::add`]):
    /// the padded input, `gy` by position, and the sums by tap.
    pub(crate) fn scratch_len(&self) -> usize {
        self.op.chan_in * self.hp * self.wp
            + self.op.out_plane() * self.pos.gy_pos
            + self.op.patch_len() * self.pos.gy_pos
    }

    /// A workspace tag for the scratch (zeros in the padding stay zeros).
    pub(crate) fn scratch_tag(&self) -> u64 {
        tag_of((&self.op, "direct weight gradient, channels"))
    }

    /// `gw += dW` of the samples `xs` (each `chan_in × h_in × w_in`) and
    /// their output gradients `gys`, as [`GradPlan::add`] sample by sample:
    /// the tiles' sums are added by tap (`[tap][channel]`, contiguous rows
    /// of lanes) over all the samples, then into `gw` (`[channel][tap]`)
    /// once, so each sample's share is added in the same order as one
    /// sample at a time would.
    pub(crate) fn add(&self, xs: &[f32], gys: &[f32], gw: &mut [f32], scratch: &mut [f32]) {
        let op = &self.op;
        let (chw, ohw) = (op.chan_in * op.h_in * op.w_in, op.out_plane());
        let n = xs.len() / chw.max(1);
        assert_eq!(xs.len(), n * chw);
        assert_eq!(gys.len(), n * op.chan_out * ohw);
        assert_eq!(gw.len(), op.chan_out * op.patch_len());
        assert_eq!(scratch.len(), self.scratch_len());
        let (xpad, rest) = scratch.split_at_mut(op.chan_in * self.hp * self.wp);
        let (gyt, by_tap) = rest.split_at_mut(ohw * self.pos.gy_pos);
        by_tap.fill(0.0);
        for (x, gy) in xs.chunks(chw).zip(gys.chunks(op.chan_out * ohw)) {
            self.add_sample(x, gy, (xpad, gyt), by_tap);
        }
        let ckk = op.patch_len();
        for (tap, row) in by_tap.chunks(self.pos.gy_pos).enumerate() {
            for (co, v) in row.iter().enumerate().take(op.chan_out) {
                gw[co * ckk + tap] += *v;
            }
        }
    }

    /// Adds one sample's tile sums into `by_tap` (`[tap][channel]`, rows of
    /// `gy_pos`).
    fn add_sample(
        &self,
        x: &[f32],
        gy: &[f32],
        (xpad, gyt): (&mut [f32], &mut [f32]),
        by_tap: &mut [f32],
    ) {
        let op = &self.op;
        pad_copy(op, x, (self.hp, self.wp), xpad);
        // gy as [position][channel]; the channels past chan_out stay zero
        let ohw = op.out_plane();
        planes_to_positions(gy, (op.chan_out, ohw), gyt, self.pos.gy_pos);
        let lanes = self.isa.lanes() * self.v;
        let mut out: ChanGradOut = [[0.0; MAX_LANES]; MAX_TAPS];
        for co0 in (0..op.chan_out).step_by(lanes) {
            for ci in 0..op.chan_in {
                for (ky0, ky) in blocks(op.kh, self.block.0) {
                    for (kx0, kx) in blocks(op.kw, self.block.1) {
                        let Some(tile) = chan_grad_tile_fn(self.isa, (ky, kx), self.v) else {
                            unreachable!(
                                "every channel tile up to {MAX_TAPS} taps is monomorphised"
                            )
                        };
                        let x0 = (ci * self.hp + ky0) * self.wp + kx0;
                        // SAFETY: the plan's `Isa` runs here (`on` checked) and
                        // `tile` is its kernel, with L lanes.
                        // The tile reads gy at co0 + oy·w_out·gy_pos + ox·gy_pos
                        // + lane for lane < L·v: inside gyt, as co0 + L·v ≤
                        // gy_pos. It reads the input at x0 + (oy·s + r)·wp +
                        // ox·s + c for r < ky, c < kx: at most (ci·hp + ky0 + ky
                        // − 1 + (h_out − 1)·s)·wp + (w_out − 1)·s + kx0 + kx −
                        // 1, inside xpad because ky0 + ky ≤ kh, kx0 + kx ≤ kw,
                        // (h_out − 1)·s + kh ≤ hp and (w_out − 1)·s + kw ≤ wp.
                        unsafe {
                            tile(
                                &self.pos,
                                gyt[co0..].as_ptr(),
                                xpad[x0..].as_ptr(),
                                &mut out,
                            )
                        };
                        for (k, o) in out.iter().enumerate().take(ky * kx) {
                            let (r, c) = (ky0 + k / kx, kx0 + k % kx);
                            let tap = (ci * op.kh + r) * op.kw + c;
                            let row = &mut by_tap[tap * self.pos.gy_pos + co0..][..lanes];
                            row.iter_mut().zip(o).for_each(|(g, v)| *g += *v);
                        }
                    }
                }
            }
        }
    }
}

/// The channel tile on `isa` for blocks of `ky` kernel rows × `kx` columns
/// and `v` registers per position.
fn chan_grad_tile_fn(isa: Isa, (ky, kx): (usize, usize), v: usize) -> Option<ChanGradTileFn> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! pick {
            ($f:ident, $($v:literal, $ky:literal: $($kx:literal)*;)*) => {
                match (v, ky, kx) {
                    $($(($v, $ky, $kx) => Some($f::<$ky, $kx, $v> as ChanGradTileFn),)*)*
                    _ => None,
                }
            };
        }
        match isa {
            Isa::Avx2 => pick!(
                chan_grad_tile,
                1, 1: 1 2 3 4 5 6 7 8 9 10 11 12;
                1, 2: 1 2 3 4 5 6;
                1, 3: 1 2 3 4;
                2, 1: 1 2 3 4 5 6;
                2, 2: 1 2 3;
                2, 3: 1 2;
            ),
            Isa::Avx512 => pick!(
                chan_grad_tile_512,
                1, 1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24;
                1, 2: 1 2 3 4 5 6 7 8 9 10 11 12;
                1, 3: 1 2 3 4 5 6 7 8;
                2, 1: 1 2 3 4 5 6 7 8 9 10 11 12;
                2, 2: 1 2 3 4 5 6;
                2, 3: 1 2 3 4;
            ),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, ky, kx, v);
        None
    }
}

/// One channel tile: `Σ_positions x[tap (r, c)] · gy[position][channels]`
/// for kernel rows `r < KY` and columns `c < KX`, `8·V` channels; the sums
/// of tap `(r, c)` go to `out[r·KX + c]`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `gy + (oy·w_out + ox)·gy_pos + q` for `q <
/// 8·V` and `x + (oy·stride + r)·x_row + ox·stride + c` for `r < KY`, `c <
/// KX` are readable for every output position `(oy, ox)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chan_grad_tile<const KY: usize, const KX: usize, const V: usize>(
    p: &Positions,
    gy: *const f32,
    x: *const f32,
    out: &mut ChanGradOut,
) {
    let mut acc = [[[_mm256_setzero_ps(); V]; KX]; KY];
    for oy in 0..p.h_out {
        let x_row = x.add(oy * p.stride * p.x_row);
        let g_row = gy.add(oy * p.w_out * p.gy_pos);
        for ox in 0..p.w_out {
            let mut g = [_mm256_setzero_ps(); V];
            for (v, g) in g.iter_mut().enumerate() {
                *g = _mm256_loadu_ps(g_row.add(ox * p.gy_pos + 8 * v));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let xk = x_row.add(r * p.x_row + ox * p.stride);
                for (c, a) in acc.iter_mut().enumerate() {
                    let b = _mm256_broadcast_ss(&*xk.add(c));
                    for (a, g) in a.iter_mut().zip(&g) {
                        *a = _mm256_fmadd_ps(b, *g, *a);
                    }
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(acc.iter().flatten()) {
        for (v, a) in a.iter().enumerate() {
            _mm256_storeu_ps(o.as_mut_ptr().add(8 * v), *a);
        }
    }
}

/// [`chan_grad_tile`] on AVX-512: `16·V` channels.
///
/// # Safety
/// The CPU has AVX-512 F; otherwise as [`chan_grad_tile`], with `16·V`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chan_grad_tile_512<const KY: usize, const KX: usize, const V: usize>(
    p: &Positions,
    gy: *const f32,
    x: *const f32,
    out: &mut ChanGradOut,
) {
    let mut acc = [[[_mm512_setzero_ps(); V]; KX]; KY];
    for oy in 0..p.h_out {
        let x_row = x.add(oy * p.stride * p.x_row);
        let g_row = gy.add(oy * p.w_out * p.gy_pos);
        for ox in 0..p.w_out {
            let mut g = [_mm512_setzero_ps(); V];
            for (v, g) in g.iter_mut().enumerate() {
                *g = _mm512_loadu_ps(g_row.add(ox * p.gy_pos + 16 * v));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let xk = x_row.add(r * p.x_row + ox * p.stride);
                for (c, a) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*xk.add(c));
                    for (a, g) in a.iter_mut().zip(&g) {
                        *a = _mm512_fmadd_ps(b, *g, *a);
                    }
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(acc.iter().flatten()) {
        for (v, a) in a.iter().enumerate() {
            _mm512_storeu_ps(o.as_mut_ptr().add(16 * v), *a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::direct::test_values;
    use super::*;

    #[test]
    fn row_tiles_serve_few_input_channels_and_channel_tiles_the_rest() {
        if Isa::best().is_none() {
            return;
        }
        let kind = |ci, co, h| {
            let op = Conv2DOp::new(4, ci, co, (h, h), (3, 3), 1, 1).unwrap();
            match WeightGrad::new(&op) {
                Some(WeightGrad::Winograd(_)) => "winograd",
                Some(WeightGrad::Rows(_)) => "rows",
                Some(WeightGrad::Channels(_)) => "channels",
                None => "gemm",
            }
        };
        // LeNet's first convolution and the ResNet stem: one input channel
        assert_eq!(kind(1, 6, 28), "rows");
        assert_eq!(kind(1, 16, 28), "rows");
        // ResNet's stages: Winograd's F(3×3, 2×2)
        assert_eq!(kind(16, 16, 28), "winograd");
        assert_eq!(kind(32, 32, 14), "winograd");
        assert_eq!(kind(64, 64, 7), "winograd");
        // channel tiles where the channels are no multiple of 8
        assert_eq!(kind(12, 20, 14), "channels");
        // a strided one is no Winograd's
        let op = Conv2DOp::new(4, 16, 32, (28, 28), (3, 3), 2, 1).unwrap();
        assert!(!matches!(
            WeightGrad::new(&op),
            Some(WeightGrad::Winograd(_))
        ));
    }

    #[test]
    fn matches_the_definition() {
        if Isa::best().is_none() {
            return;
        }
        // (chan_in, chan_out, h, w, k, padding)
        for (ci, co, h, w, k, p) in [
            (1, 6, 28, 28, 5, 2),
            (3, 7, 20, 21, 3, 1),
            (2, 13, 24, 22, 7, 3),
            (1, 1, 30, 30, 1, 0),
        ] {
            let op = Conv2DOp::new(1, ci, co, (h, w), (k, k), 1, p).unwrap();
            let x = test_values(ci * h * w, 1);
            let gy = test_values(co * op.out_plane(), 2);
            let before = test_values(co * op.patch_len(), 3);
            assert!(
                GradPlan::new(&op).is_some(),
                "long rows take the direct kernel"
            );
            for isa in Isa::all() {
                if let Some(plan) = GradPlan::on(&op, isa) {
                    let mut gw = before.clone();
                    let mut scratch = vec![0.0; plan.scratch_len()];
                    plan.add(&x, &gy, &mut gw, &mut scratch);
                    check(&op, &x, &gy, &before, &gw);
                }
                if let Some(plan) = ChanGradPlan::on(&op, isa) {
                    let mut gw = before.clone();
                    let mut scratch = vec![0.0; plan.scratch_len()];
                    plan.add(&x, &gy, &mut gw, &mut scratch);
                    check(&op, &x, &gy, &before, &gw);
                }
            }
        }
        // short rows, any stride: channels in the registers
        for (ci, co, h, w, k, s, p) in [
            (6, 16, 14, 14, 5, 1, 0),
            (3, 8, 9, 7, 3, 2, 1),
            (2, 20, 6, 5, 4, 1, 2),
            (1, 33, 5, 9, 1, 3, 0),
            (2, 9, 8, 8, 13, 1, 6),
        ] {
            let op = Conv2DOp::new(1, ci, co, (h, w), (k, k), s, p).unwrap();
            assert!(ChanGradPlan::new(&op).is_some(), "8 channels or more");
            let x = test_values(ci * h * w, 4);
            let gy = test_values(co * op.out_plane(), 5);
            let before = test_values(co * op.patch_len(), 6);
            for isa in Isa::all() {
                let plan = ChanGradPlan::on(&op, isa).expect("8 channels or more");
                let mut gw = before.clone();
                let mut scratch = vec![0.0; plan.scratch_len()];
                plan.add(&x, &gy, &mut gw, &mut scratch);
                plan.add(&x, &gy, &mut gw, &mut scratch);
                // twice: the scratch's padding is still zero the second time
                let twice: Vec<f32> = gw
                    .iter()
                    .zip(&before)
                    .map(|(g, b)| b + (g - b) / 2.0)
                    .collect();
                check(&op, &x, &gy, &before, &twice);
            }
        }
    }

    /// A 3×3 kernel's channel tile holds several kernel rows, so that a
    /// `gy` load feeds more FMAs than a row's three taps; a block never
    /// holds more taps than the accumulators allow.
    #[test]
    fn channel_tiles_block_kernel_rows_within_the_accumulators() {
        let op = |co, k| Conv2DOp::new(64, co, co, (14, 14), (k, k), 1, k / 2).unwrap();
        assert_eq!(chan_grad_block(&op(16, 3), Isa::Avx512, 1), (3, 3));
        assert_eq!(chan_grad_block(&op(32, 3), Isa::Avx512, 2), (3, 3));
        assert_eq!(chan_grad_block(&op(16, 3), Isa::Avx2, 2), (2, 3));
        assert_eq!(chan_grad_block(&op(16, 5), Isa::Avx512, 1), (3, 5));
        assert_eq!(chan_grad_block(&op(16, 13), Isa::Avx2, 2), (1, 6));
        for isa in [Isa::Avx2, Isa::Avx512] {
            for (co, k) in [(8, 1), (16, 3), (20, 4), (64, 5), (33, 7), (9, 13)] {
                let l = isa.lanes();
                let v = if co > l { 2 } else { 1 };
                let (ky, kx) = chan_grad_block(&op(co, k), isa, v);
                assert!(
                    ky * kx * v <= isa.max_acc() && ky <= MAX_KY,
                    "{isa:?} {co} {k}"
                );
                assert!(chan_grad_tile_fn(isa, (ky, kx), v).is_some());
            }
        }
        // with 16 lanes the whole 3×3 kernel is one tile: cheaper than two
        // blocks of 8-lane registers
        let op = op(16, 3);
        assert!(ChanGradPlan::cost(&op, Isa::Avx512) < ChanGradPlan::cost(&op, Isa::Avx2));
    }

    /// Several samples in one call give the same bits as one call a sample,
    /// in order (the sums by tap are added into `gw` once, at the end).
    #[test]
    fn channel_tiles_add_a_chunk_as_sample_by_sample() {
        if Isa::best().is_none() {
            return;
        }
        let op = Conv2DOp::new(3, 5, 20, (9, 8), (3, 3), 1, 1).unwrap();
        let chw = op.chan_in * op.h_in * op.w_in;
        let per_gy = op.chan_out * op.out_plane();
        let xs = test_values(3 * chw, 7);
        let gys = test_values(3 * per_gy, 8);
        let zero = vec![0.0; op.chan_out * op.patch_len()];
        for isa in Isa::all() {
            let plan = ChanGradPlan::on(&op, isa).expect("8 channels or more");
            let mut scratch = vec![0.0; plan.scratch_len()];
            let mut chunk = zero.clone();
            plan.add(&xs, &gys, &mut chunk, &mut scratch);
            let mut one_by_one = vec![zero.clone(); 3];
            for (i, gw) in one_by_one.iter_mut().enumerate() {
                let (x, gy) = (
                    &xs[i * chw..(i + 1) * chw],
                    &gys[i * per_gy..(i + 1) * per_gy],
                );
                plan.add(x, gy, gw, &mut scratch);
            }
            // one call a sample sums each sample alone: add them in order
            let summed: Vec<f32> = (0..zero.len())
                .map(|j| ((0.0 + one_by_one[0][j]) + one_by_one[1][j]) + one_by_one[2][j])
                .collect();
            assert_eq!(chunk, summed, "{isa:?}");
        }
    }

    /// `gw − before` is the weight gradient of `x` and `gy`, by the definition in f64.
    fn check(op: &Conv2DOp, x: &[f32], gy: &[f32], before: &[f32], gw: &[f32]) {
        let (ci, co, k) = (op.chan_in, op.chan_out, op.kh);
        let (h, w) = (op.h_in, op.w_in);
        {
            for o in 0..co {
                for c in 0..ci {
                    for ky in 0..k {
                        for kx in 0..k {
                            let mut s = 0.0f64;
                            for oy in 0..op.h_out {
                                for ox in 0..op.w_out {
                                    if let Some((iy, ix)) = op.source(oy, ox, ky, kx) {
                                        s += gy[(o * op.h_out + oy) * op.w_out + ox] as f64
                                            * x[(c * h + iy) * w + ix] as f64;
                                    }
                                }
                            }
                            let i = ((o * ci + c) * k + ky) * k + kx;
                            let got = (gw[i] - before[i]) as f64;
                            assert!((got - s).abs() < 1e-3, "{op:?} dW[{i}]: {got} vs {s}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn short_rows_and_strides_are_not_for_the_row_kernel() {
        let op = Conv2DOp::new(1, 6, 16, (14, 14), (5, 5), 1, 0).unwrap();
        assert!(
            GradPlan::new(&op).is_none(),
            "rows of 10 fill 10 of 16 lanes"
        );
        let op = Conv2DOp::new(1, 3, 8, (32, 32), (3, 3), 2, 1).unwrap();
        assert!(GradPlan::new(&op).is_none());
    }

    #[test]
    fn every_tile_is_monomorphised() {
        #[cfg(target_arch = "x86_64")]
        for isa in [Isa::Avx2, Isa::Avx512] {
            for cb in 1..=max_cb(isa) {
                for kb in 1..=MAX_KB {
                    if cb * kb <= isa.max_acc() {
                        assert!(grad_tile_fn(isa, cb, kb).is_some(), "{isa:?} {cb} {kb}");
                    }
                }
            }
            for v in 1..=2 {
                for kx in 1..=isa.max_acc() / v {
                    for ky in 1..=MAX_KY.min(isa.max_acc() / (v * kx)) {
                        let tile = chan_grad_tile_fn(isa, (ky, kx), v);
                        assert!(tile.is_some(), "{isa:?} {ky}×{kx} {v}");
                    }
                }
                assert!(isa.lanes() * v <= MAX_LANES && isa.max_acc() / v <= MAX_TAPS);
            }
        }
    }
}
