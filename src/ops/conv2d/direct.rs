//! Direct convolution for f32 on x86-64 CPUs with AVX2 and FMA, or AVX-512:
//! no im2col matrix, no `gemm` call, one pass over a zero-padded copy of each
//! sample. The tiles below are written for a vector of `L` lanes: 8 with
//! AVX2 (256-bit registers, 16 of them), 16 with AVX-512 (512-bit, 32 of
//! them, so the tiles can hold twice the accumulators too); [`Isa::best`]
//! picks the widest the CPU has.
//!
//! Two tile shapes, chosen per convolution by a cost estimate
//! ([`Plan::new`]):
//!
//! - **channels in the registers**: `P` consecutive output positions of one
//!   row times a group of `L·V` output channels (`V` AVX registers per
//!   position). For every kernel tap `(ci, ky, kx)` the tile loads the
//!   group's `V` weight vectors once and broadcasts each of its `P` input
//!   values once, so each load feeds `V` or `P` fused multiply-adds. Any
//!   stride; best when there are 16 channels or more (LeNet's second conv).
//! - **positions in the registers** (stride 1): `L·NV` consecutive output
//!   positions of one row times `CB` channels. Per tap it loads `NV` input
//!   vectors and broadcasts `CB` weights; the output rows are stored as
//!   vectors. Best for few channels (LeNet's first conv, 6 channels).
//!
//! In both the `P·V` or `CB·NV` accumulators stay in registers. The padded
//! copy of the input makes the inner loops free of bounds checks, and its
//! right margin lets the last tile of a row run full width (the positions
//! past the row's end are computed and dropped).
//!
//! The sum over taps runs in a fixed order (channel, row, column of the
//! kernel) for every output, so the result does not depend on the thread
//! count.
use super::transpose::positions_to_planes;
use super::Conv2DOp;
use crate::ops::cpu_util::Write;
use crate::ops::tag_of;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Channels per group at most in a channel tile (`L·V`, `V ≤ 2`).
pub(crate) const MAX_LANES: usize = 32;
/// Positions of a channel tile at most (AVX-512, one register per position).
pub(crate) const MAX_P: usize = 24;
/// Position vectors of a position tile at most.
const MAX_NV: usize = 4;
/// Channels of a position tile at most (AVX-512).
const MAX_CB: usize = 8;

/// Where a channel tile stores its sums, straight from its registers: the
/// first `nc` channels of its first `np` positions, position `q` at `y +
/// q·row_stride` (`[position][channel]`).
pub(crate) struct ChanDst {
    /// The first position's first channel.
    pub(crate) y: *mut f32,
    /// Elements between two positions' rows.
    pub(crate) row_stride: usize,
    /// Positions to store, at most the tile's `P`.
    pub(crate) np: usize,
    /// Channels to store, at most the tile's lanes.
    pub(crate) nc: usize,
}

/// Where a position tile stores its sums, straight from its registers: the
/// first `np` positions of its first `nc` channels, channel `c` at `y +
/// c·chan_stride`, each plus `bias[c]` (overwriting), or, when `bias` is
/// null, added to what `y` holds.
struct PosDst {
    y: *mut f32,
    chan_stride: usize,
    np: usize,
    nc: usize,
    bias: *const f32,
}

/// `-1` (all bits) in the first 16 lanes, then 0: the load at `16 − n`
/// is a mask of `n` lanes.
#[cfg(target_arch = "x86_64")]
static LANE_MASK: [i32; 32] = {
    let mut m = [0i32; 32];
    let mut i = 0;
    while i < 16 {
        m[i] = -1;
        i += 1;
    }
    m
};

/// The vector instructions a plan runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// AVX2 and FMA: 8 lanes, 16 registers.
    Avx2,
    /// AVX-512 (F): 16 lanes, 32 registers.
    Avx512,
}

impl Isa {
    /// The widest that the plans may use: the widest this CPU runs, capped
    /// by `STATIC_NN_MAX_ISA`; `None` without AVX2 and FMA.
    pub(crate) fn best() -> Option<Isa> {
        Self::usable().next_back()
    }

    /// Those that the plans may use, narrowest first: every one this CPU
    /// runs, up to the cap that the environment variable
    /// `STATIC_NN_MAX_ISA` sets (`avx2`: no AVX-512 kernels, to measure on
    /// an AVX-512 machine what an AVX2-only one runs; unset, empty or
    /// `avx512`: no cap). Like oneDNN's `ONEDNN_MAX_CPU_ISA`, it is read
    /// where a plan is made, and only read.
    pub(crate) fn usable() -> impl DoubleEndedIterator<Item = Isa> {
        let cap = max_isa_from(std::env::var("STATIC_NN_MAX_ISA").ok().as_deref());
        Self::all().filter(move |&isa| isa <= cap)
    }

    /// Every one this CPU runs, narrowest first (for tests: each kernel on
    /// each).
    pub(crate) fn all() -> impl DoubleEndedIterator<Item = Isa> {
        [Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|isa| isa.runs_here())
    }

    /// Whether this CPU runs it.
    pub(crate) fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Isa::Avx2 => has!("avx2") && has!("fma"),
                Isa::Avx512 => has!("avx512f") && has!("avx2") && has!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// f32 lanes of a register.
    pub(crate) fn lanes(self) -> usize {
        match self {
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        }
    }

    /// Accumulators a tile may keep in registers (the rest hold the loaded
    /// operands).
    pub(crate) fn max_acc(self) -> usize {
        match self {
            Isa::Avx2 => 12,
            Isa::Avx512 => 24,
        }
    }
}

/// The cap that a value of `STATIC_NN_MAX_ISA` sets (case aside): `avx2`
/// caps at [`Isa::Avx2`]; anything else, or nothing, leaves the widest.
fn max_isa_from(value: Option<&str>) -> Isa {
    match value.map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("avx2") => Isa::Avx2,
        _ => Isa::Avx512,
    }
}

/// The inner loop of a channel tile, monomorphised for its `P` and `V`:
/// (taps, first input, weights, initial values, where to store).
pub(crate) type ChanTileFn = unsafe fn(&Taps, *const f32, *const f32, *const f32, &ChanDst);
/// The inner loop of a position tile, monomorphised for its `CB` and `NV`:
/// (taps, first input, weights, where to store).
type PosTileFn = unsafe fn(&Taps, *const f32, *const f32, &PosDst);

/// The sizes the inner loop walks: taps per input channel and the strides of
/// the padded input.
pub(crate) struct Taps {
    chan_in: usize,
    kh: usize,
    kw: usize,
    /// Elements between two padded input planes.
    plane: usize,
    /// Elements between two padded input rows.
    row: usize,
    stride: usize,
}

impl Taps {
    /// The taps of a fully connected layer's rows as channel tiles read
    /// them ([`crate::ops::linear`]): each of `k` input features is one
    /// input channel of a 1×1 kernel, at the next element (`plane` 1), and
    /// the tile's positions are rows `k` elements apart.
    pub(crate) fn dense(k: usize) -> Self {
        Self {
            chan_in: k,
            kh: 1,
            kw: 1,
            plane: 1,
            row: 0,
            stride: k,
        }
    }
}

/// How a plan tiles the output.
#[derive(Clone, Copy)]
enum Tiling {
    /// `p` positions × `8·v` channels.
    Channels { p: usize, tile: ChanTileFn },
    /// `width` (`L·NV`) positions × `cb` channels (stride 1).
    Positions { width: usize, tile: PosTileFn },
}

/// A convolution prepared for the direct kernel: its packed weights and bias,
/// its tiling, and the padded input's geometry.
pub(crate) struct Plan {
    op: Conv2DOp,
    taps: Taps,
    tiling: Tiling,
    /// Channels per group: `8·v` or `cb`.
    lanes: usize,
    /// Weights as `[group][chan_in·kh·kw][lanes]`, zero past `chan_out`.
    w: Vec<f32>,
    /// Bias as `[group][lanes]` (zeros without a bias).
    b: Vec<f32>,
    /// Padded input height and width.
    hp: usize,
    wp: usize,
}

/// `w` (`o × k`, PyTorch's layout) and the bias `b` packed for channel
/// tiles of `lanes` outputs: `[group][k][lanes]` and `[group][lanes]`, zero
/// past `o` (and for the bias without `b`).
pub(crate) fn pack_groups(
    w: &[f32],
    b: Option<&[f32]>,
    (o, k): (usize, usize),
    lanes: usize,
) -> (Vec<f32>, Vec<f32>) {
    let groups = o.div_ceil(lanes);
    let mut wpk = vec![0.0f32; groups * k * lanes];
    let mut bpk = vec![0.0f32; groups * lanes];
    for co in 0..o {
        let (g, l) = (co / lanes, co % lanes);
        for (j, wv) in w[co * k..(co + 1) * k].iter().enumerate() {
            wpk[(g * k + j) * lanes + l] = *wv;
        }
        bpk[g * lanes + l] = b.map_or(0.0, |b| b[co]);
    }
    (wpk, bpk)
}

/// Estimated cost of a tile per tap, in half cycles: the most of its FMAs,
/// its loads (two of each per cycle) and one FMA latency (about 4.5 cycles:
/// each accumulator takes one FMA per tap).
pub(super) fn tap_cost(fmas: usize, loads: usize) -> usize {
    fmas.max(loads).max(9)
}

/// The cheapest channel tiling of `op` and its estimated cost: per row
/// `ceil(w_out / p)` tiles per group, plus the scattered stores.
fn channel_tiling(op: &Conv2DOp, isa: Isa) -> (usize, usize, usize) {
    let l = isa.lanes();
    let v = if op.chan_out > l { 2 } else { 1 };
    let groups = op.chan_out.div_ceil(l * v);
    let (p, per_row) = (1..=isa.max_acc() / v)
        .rev()
        .map(|p| (p, op.w_out.div_ceil(p) * tap_cost(p * v, p + v)))
        .min_by_key(|&(_, c)| c)
        .unwrap_or((1, usize::MAX / 4));
    let cost = op.h_out * groups * op.patch_len() * per_row + 3 * op.h_out * op.w_out * op.chan_out;
    (v, p, cost)
}

/// The cheapest position tiling of `op` (stride 1 only) and its cost.
fn position_tiling(op: &Conv2DOp, isa: Isa) -> Option<(usize, usize, usize)> {
    if op.stride != 1 {
        return None;
    }
    let nvec = op.w_out.div_ceil(isa.lanes());
    let mut best = None;
    for cb in (1..=max_cb(isa).min(op.chan_out)).rev() {
        for nv in (1..=MAX_NV.min(isa.max_acc() / cb)).rev() {
            let groups = op.chan_out.div_ceil(cb);
            let tiles = op.h_out * nvec.div_ceil(nv) * groups;
            let cost = tiles * (op.patch_len() * tap_cost(cb * nv, cb + nv) + 2 * cb * nv);
            if best.is_none_or(|(_, _, c)| cost < c) {
                best = Some((cb, nv, cost));
            }
        }
    }
    best
}

/// The tiling of a plan on one `Isa`, before its weights are packed.
struct Choice {
    tiling: Tiling,
    /// Channels per group.
    lanes: usize,
    /// The padded row's width that the last tile of a row needs.
    last: usize,
    /// Its estimated cost (see [`tap_cost`]).
    cost: usize,
}

impl Choice {
    /// The cheaper tiling of `op` on `isa`, or the one `positions` asks for
    /// (see [`Plan::with_tiling`]); `None` if `isa` does not run here.
    fn new(op: &Conv2DOp, positions: Option<bool>, isa: Isa) -> Option<Self> {
        if !isa.runs_here() {
            return None;
        }
        let l = isa.lanes();
        let (v, p, chan_cost) = channel_tiling(op, isa);
        match position_tiling(op, isa) {
            Some((cb, nv, cost)) if positions.unwrap_or(cost < chan_cost) => Some(Self {
                tiling: Tiling::Positions {
                    width: l * nv,
                    tile: pos_tile_fn(isa, cb, nv)?,
                },
                lanes: cb,
                last: op.w_out.div_ceil(l * nv) * l * nv - 1 + op.kw,
                cost,
            }),
            _ => Some(Self {
                tiling: Tiling::Channels {
                    p,
                    tile: chan_tile_fn(isa, v, p)?,
                },
                lanes: l * v,
                last: (op.w_out.div_ceil(p) * p - 1) * op.stride + op.kw,
                cost: chan_cost,
            }),
        }
    }
}

/// Channels of a position tile at most.
fn max_cb(isa: Isa) -> usize {
    match isa {
        Isa::Avx2 => 6,
        Isa::Avx512 => MAX_CB,
    }
}

impl Plan {
    /// Prepares `op` with weights `w` (`chan_out × chan_in·kh·kw`) and an
    /// optional bias, on the vectors of this CPU that it costs least on
    /// (the widest, unless it has too few channels for them); `None` when
    /// the CPU lacks AVX2 or FMA.
    pub(crate) fn new(op: &Conv2DOp, w: &[f32], b: Option<&[f32]>) -> Option<Self> {
        // widest first, so that a tie goes to the wider vectors
        let choice = (Isa::usable().rev())
            .filter_map(|isa| Choice::new(op, None, isa))
            .min_by_key(|c| c.cost)?;
        Some(Self::build(op, w, b, choice))
    }

    /// [`Plan::new`] on `isa`, with position tiles (`Some(true)`, when the
    /// stride is 1) or channel tiles (`Some(false)`) instead of the cheaper
    /// one (`None` unless `isa` runs on this CPU). For the tests: each tiling
    /// on each `Isa`.
    #[cfg(test)]
    fn with_tiling(
        op: &Conv2DOp,
        w: &[f32],
        b: Option<&[f32]>,
        positions: Option<bool>,
        isa: Isa,
    ) -> Option<Self> {
        Some(Self::build(op, w, b, Choice::new(op, positions, isa)?))
    }

    /// The plan of `choice`: the weights and bias packed for its tiles.
    fn build(op: &Conv2DOp, w: &[f32], b: Option<&[f32]>, choice: Choice) -> Self {
        let Choice {
            tiling,
            lanes,
            last,
            ..
        } = choice;
        let (wpk, bpk) = pack_groups(w, b, (op.chan_out, op.patch_len()), lanes);
        let hp = op.h_in + 2 * op.padding;
        let wp = (op.w_in + 2 * op.padding).max(last);
        let taps = Taps {
            chan_in: op.chan_in,
            kh: op.kh,
            kw: op.kw,
            plane: hp * wp,
            row: wp,
            stride: op.stride,
        };
        Self {
            // one sample's: a plan serves any batch
            op: Conv2DOp { batch: 1, ..*op },
            taps,
            tiling,
            lanes,
            w: wpk,
            b: bpk,
            hp,
            wp,
        }
    }

    /// Whether this plan is `op`'s, for samples of any batch.
    pub(crate) fn serves(&self, op: &Conv2DOp) -> bool {
        self.op == Conv2DOp { batch: 1, ..*op }
    }

    /// Elements of the scratch of one sample (see [`Plan::run`]): its
    /// padded copy and, for channel tiles, their outputs by position.
    pub(crate) fn padded_len(&self) -> usize {
        self.op.chan_in * self.hp * self.wp + self.by_position_len()
    }

    /// Elements of the channel tiles' outputs by position (`[position]
    /// [channel]`, rows of all the groups' lanes); none for position tiles.
    fn by_position_len(&self) -> usize {
        match self.tiling {
            Tiling::Channels { .. } => self.op.out_plane() * self.b.len(),
            Tiling::Positions { .. } => 0,
        }
    }

    /// A workspace tag for the padded copy: a buffer leased under it again
    /// still holds zeros in every padding position.
    pub(crate) fn padded_tag(&self) -> u64 {
        tag_of((&self.op, self.wp, "direct"))
    }

    /// One sample: `y = conv(x) + b` (or `y += conv(x)` with
    /// [`Write::Accumulate`], where the bias is not added). `scratch` holds
    /// [`Plan::padded_len`] elements, zero in the padding: a fresh buffer, or
    /// one leased under [`Plan::padded_tag`].
    pub(crate) fn run(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32], write: Write) {
        let op = &self.op;
        assert_eq!(x.len(), op.chan_in * op.h_in * op.w_in);
        assert_eq!(y.len(), op.chan_out * op.out_plane());
        assert_eq!(scratch.len(), self.padded_len());
        let (xpad, by_pos) = scratch.split_at_mut(scratch.len() - self.by_position_len());
        pad_copy(op, x, (self.hp, self.wp), xpad);
        match self.tiling {
            Tiling::Channels { p, tile, .. } => {
                self.run_channels(p, tile, (xpad, by_pos), write);
                let acc = matches!(write, Write::Accumulate);
                positions_to_planes(by_pos, self.b.len(), (op.chan_out, op.out_plane()), y, acc);
            }
            Tiling::Positions { width, tile } => self.run_positions(width, tile, y, xpad, write),
        }
    }

    /// The weights of group `g`.
    fn group_weights(&self, g: usize) -> &[f32] {
        let len = self.op.patch_len() * self.lanes;
        &self.w[g * len..(g + 1) * len]
    }

    /// [`Plan::run`] with channel tiles of `p` positions, into `by_pos`
    /// (`[position][channel]`, rows of `b.len()`: the tiles' registers hold
    /// channels, so each of their rows is a few vector stores there, and
    /// [`positions_to_planes`] turns the whole sample into planes in 8×8
    /// blocks once, instead of one scalar store per value and tile). With
    /// [`Write::Accumulate`] the bias is left out.
    fn run_channels(
        &self,
        p: usize,
        tile: ChanTileFn,
        (xpad, by_pos): (&[f32], &mut [f32]),
        write: Write,
    ) {
        let (op, lanes, ld) = (&self.op, self.lanes, self.b.len());
        let zeros = [0.0f32; MAX_LANES];
        let s = op.stride;
        for oy in 0..op.h_out {
            for ox0 in (0..op.w_out).step_by(p) {
                let np = p.min(op.w_out - ox0);
                let x0 = oy * s * self.wp + ox0 * s;
                for g in 0..ld / lanes {
                    let init = match write {
                        Write::Overwrite => self.b[g * lanes..].as_ptr(),
                        Write::Accumulate => zeros.as_ptr(),
                    };
                    let w = self.group_weights(g);
                    let row0 = (oy * op.w_out + ox0) * ld + g * lanes;
                    // the tile's last store ends at position np − 1's lanes
                    assert!(row0 + (np - 1) * ld + lanes <= by_pos.len());
                    let dst = ChanDst {
                        y: by_pos[row0..].as_mut_ptr(),
                        row_stride: ld,
                        np,
                        nc: lanes,
                    };
                    // SAFETY: the plan's `Isa` runs here (`with_tiling`
                    // checked), and `tile` is its kernel. The tile reads the input at
                    // x0 + ci·plane + ky·row + kx + q·stride for ci, ky, kx,
                    // q below chan_in, kh, kw, p: within a plane at most
                    // (oy·s + kh − 1)·wp + (ox0 + p − 1)·s + kw − 1, below
                    // hp·wp because oy·s + kh ≤ hp and (ox0 + p − 1)·s + kw
                    // ≤ wp (how `new` sized wp). It reads the group's
                    // ckk·lanes weights and `lanes` values from `init`, and
                    // writes `lanes` values at each of np ≤ p rows ld apart
                    // from row0 (asserted above).
                    unsafe { tile(&self.taps, xpad[x0..].as_ptr(), w.as_ptr(), init, &dst) };
                }
            }
        }
    }

    /// [`Plan::run`] with position tiles of `width` positions (stride 1).
    fn run_positions(
        &self,
        width: usize,
        tile: PosTileFn,
        y: &mut [f32],
        xpad: &[f32],
        write: Write,
    ) {
        let (op, lanes) = (&self.op, self.lanes);
        let ohw = op.out_plane();
        for oy in 0..op.h_out {
            for ox0 in (0..op.w_out).step_by(width) {
                let np = width.min(op.w_out - ox0);
                let x0 = oy * self.wp + ox0;
                for g in 0..self.b.len() / lanes {
                    let w = self.group_weights(g);
                    let co0 = g * lanes;
                    let nc = lanes.min(op.chan_out - co0);
                    let first = co0 * ohw + oy * op.w_out + ox0;
                    // the tile's last store ends at channel co0 + nc − 1,
                    // position ox0 + np − 1 of row oy: within `y`
                    assert!(first + (nc - 1) * ohw + np <= y.len());
                    let dst = PosDst {
                        y: y[first..].as_mut_ptr(),
                        chan_stride: ohw,
                        np,
                        nc,
                        bias: match write {
                            Write::Overwrite => self.b[co0..].as_ptr(),
                            Write::Accumulate => std::ptr::null(),
                        },
                    };
                    // SAFETY: as in `run_channels`, with stride 1 and
                    // `width` positions: the last read within a plane is
                    // (oy + kh − 1)·wp + ox0 + width − 1 + kw − 1, below
                    // hp·wp because oy + kh ≤ hp and ox0 + width − 1 + kw ≤
                    // wp (how `new` sized wp). The tile writes (and with a
                    // null bias reads) the first np ≤ width values of nc ≤
                    // CB rows ohw apart from `first` (asserted above), and
                    // reads nc ≤ lanes bias values from b[co0..].
                    unsafe { tile(&self.taps, xpad[x0..].as_ptr(), w.as_ptr(), &dst) };
                }
            }
        }
    }
}

/// Copies one sample `x` (`chan_in × h_in × w_in`) into the interior of
/// `xpad` (`chan_in` planes of `hp × wp`, the input at offset `padding` in
/// both directions); the rest of `xpad` is left as it is (zeros).
pub(super) fn pad_copy(op: &Conv2DOp, x: &[f32], (hp, wp): (usize, usize), xpad: &mut [f32]) {
    for c in 0..op.chan_in {
        for iy in 0..op.h_in {
            let src = &x[(c * op.h_in + iy) * op.w_in..][..op.w_in];
            let dst = (c * hp + iy + op.padding) * wp + op.padding;
            xpad[dst..dst + op.w_in].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
/// A convolution of one sample by its definition, in f64 (for tests).
pub(crate) fn reference(op: &Conv2DOp, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let mut y = vec![0.0f64; op.chan_out * op.out_plane()];
    for co in 0..op.chan_out {
        for oy in 0..op.h_out {
            for ox in 0..op.w_out {
                let mut s = b[co] as f64;
                for ci in 0..op.chan_in {
                    for ky in 0..op.kh {
                        for kx in 0..op.kw {
                            if let Some((iy, ix)) = op.source(oy, ox, ky, kx) {
                                let xv = x[(ci * op.h_in + iy) * op.w_in + ix];
                                let wv = w[((co * op.chan_in + ci) * op.kh + ky) * op.kw + kx];
                                s += xv as f64 * wv as f64;
                            }
                        }
                    }
                }
                y[(co * op.h_out + oy) * op.w_out + ox] = s;
            }
        }
    }
    y
}

/// Deterministic test values in [−0.5, 0.5), different for each `seed`.
#[cfg(test)]
pub(super) fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0 - 0.5
        })
        .collect()
}

/// The channel tile on `isa` for `v` registers and `p` positions.
pub(crate) fn chan_tile_fn(isa: Isa, v: usize, p: usize) -> Option<ChanTileFn> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! pick {
            ($f:ident, $v:literal: $($p:literal)*) => {
                match p { $($p => Some($f::<$p, $v> as ChanTileFn),)* _ => None }
            };
        }
        match (isa, v) {
            (Isa::Avx2, 1) => pick!(chan_tile, 1: 1 2 3 4 5 6 7 8 9 10 11 12),
            (Isa::Avx2, 2) => pick!(chan_tile, 2: 1 2 3 4 5 6),
            (Isa::Avx512, 1) => pick!(
                chan_tile_512,
                1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24
            ),
            (Isa::Avx512, 2) => pick!(chan_tile_512, 2: 1 2 3 4 5 6 7 8 9 10 11 12),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, v, p);
        None
    }
}

/// One channel tile: `P` positions × `8·V` channels, summed over every tap.
///
/// # Safety
/// The CPU has AVX2 and FMA; `x` is the tile's first input value and every
/// `x + ci·plane + ky·row + kx + p·stride` is readable; `w` holds
/// `chan_in·kh·kw·8·V` values and `init` `8·V`; `out.np ≤ P`, `out.nc ≤
/// 8·V`, and the first `nc` values at `out.y + q·row_stride` for `q < np`
/// are writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chan_tile<const P: usize, const V: usize>(
    t: &Taps,
    x: *const f32,
    w: *const f32,
    init: *const f32,
    out: &ChanDst,
) {
    let mut acc = [[_mm256_setzero_ps(); V]; P];
    for a in acc.iter_mut() {
        for (v, a) in a.iter_mut().enumerate() {
            *a = _mm256_loadu_ps(init.add(8 * v));
        }
    }
    let mut wk = w;
    for ci in 0..t.chan_in {
        let xc = x.add(ci * t.plane);
        for ky in 0..t.kh {
            let xr = xc.add(ky * t.row);
            for kx in 0..t.kw {
                let xk = xr.add(kx);
                let mut wv = [_mm256_setzero_ps(); V];
                for (v, wv) in wv.iter_mut().enumerate() {
                    *wv = _mm256_loadu_ps(wk.add(8 * v));
                }
                wk = wk.add(8 * V);
                for (p, a) in acc.iter_mut().enumerate() {
                    let b = _mm256_broadcast_ss(&*xk.add(p * t.stride));
                    for (a, wv) in a.iter_mut().zip(&wv) {
                        *a = _mm256_fmadd_ps(b, *wv, *a);
                    }
                }
            }
        }
    }
    for (q, a) in acc.iter().enumerate().take(out.np) {
        let y = out.y.add(q * out.row_stride);
        for (v, a) in a.iter().enumerate() {
            let n = out.nc.saturating_sub(8 * v);
            if n >= 8 {
                _mm256_storeu_ps(y.add(8 * v), *a);
            } else if n > 0 {
                let m = _mm256_loadu_si256(LANE_MASK.as_ptr().add(16 - n).cast());
                _mm256_maskstore_ps(y.add(8 * v), m, *a);
            }
        }
    }
}

/// The position tile on `isa` for `cb` channels and `nv` vectors of
/// positions.
fn pos_tile_fn(isa: Isa, cb: usize, nv: usize) -> Option<PosTileFn> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! pick {
            ($f:ident, $($cb:literal: $($nv:literal)*;)*) => {
                match (cb, nv) {
                    $($(($cb, $nv) => Some($f::<$cb, $nv> as PosTileFn),)*)*
                    _ => None,
                }
            };
        }
        match isa {
            Isa::Avx2 => {
                pick!(pos_tile, 1: 1 2 3 4; 2: 1 2 3 4; 3: 1 2 3 4; 4: 1 2 3; 5: 1 2; 6: 1 2;)
            }
            Isa::Avx512 => pick!(
                pos_tile_512,
                1: 1 2 3 4; 2: 1 2 3 4; 3: 1 2 3 4; 4: 1 2 3 4; 5: 1 2 3 4; 6: 1 2 3 4;
                7: 1 2 3; 8: 1 2 3;
            ),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, cb, nv);
        None
    }
}

/// One position tile: `8·NV` consecutive positions of a row × `CB`
/// channels, summed over every tap (stride 1).
///
/// # Safety
/// The CPU has AVX2 and FMA; `x` is the tile's first input value and every
/// `x + ci·plane + ky·row + kx + q` for `q < 8·NV` is readable; `w` holds
/// `chan_in·kh·kw·CB` values; `out.np ≤ 8·NV`, `out.nc ≤ CB`, the first
/// `np` values of `out.y + c·chan_stride` for `c < nc` are writable (and
/// readable), and with a non-null `bias` it holds `nc` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pos_tile<const CB: usize, const NV: usize>(
    t: &Taps,
    x: *const f32,
    w: *const f32,
    out: &PosDst,
) {
    let mut acc = [[_mm256_setzero_ps(); NV]; CB];
    let mut wk = w;
    for ci in 0..t.chan_in {
        let xc = x.add(ci * t.plane);
        for ky in 0..t.kh {
            let xr = xc.add(ky * t.row);
            for kx in 0..t.kw {
                let xk = xr.add(kx);
                let mut xv = [_mm256_setzero_ps(); NV];
                for (v, xv) in xv.iter_mut().enumerate() {
                    *xv = _mm256_loadu_ps(xk.add(8 * v));
                }
                for (c, a) in acc.iter_mut().enumerate() {
                    let b = _mm256_broadcast_ss(&*wk.add(c));
                    for (a, xv) in a.iter_mut().zip(&xv) {
                        *a = _mm256_fmadd_ps(b, *xv, *a);
                    }
                }
                wk = wk.add(CB);
            }
        }
    }
    for (c, a) in acc.iter().enumerate().take(out.nc) {
        let y = out.y.add(c * out.chan_stride);
        let b = (!out.bias.is_null()).then(|| _mm256_broadcast_ss(&*out.bias.add(c)));
        for (v, a) in a.iter().enumerate() {
            let (y, n) = (y.add(8 * v), out.np.saturating_sub(8 * v));
            if n >= 8 {
                let old = b.unwrap_or_else(|| _mm256_loadu_ps(y));
                _mm256_storeu_ps(y, _mm256_add_ps(*a, old));
            } else if n > 0 {
                let m = _mm256_loadu_si256(LANE_MASK.as_ptr().add(16 - n).cast());
                let old = b.unwrap_or_else(|| _mm256_maskload_ps(y, m));
                _mm256_maskstore_ps(y, m, _mm256_add_ps(*a, old));
            }
        }
    }
}

/// [`chan_tile`] on AVX-512: `P` positions × `16·V` channels.
///
/// # Safety
/// The CPU has AVX-512 F; otherwise as [`chan_tile`], with `16·V` lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chan_tile_512<const P: usize, const V: usize>(
    t: &Taps,
    x: *const f32,
    w: *const f32,
    init: *const f32,
    out: &ChanDst,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    for a in acc.iter_mut() {
        for (v, a) in a.iter_mut().enumerate() {
            *a = _mm512_loadu_ps(init.add(16 * v));
        }
    }
    let mut wk = w;
    for ci in 0..t.chan_in {
        let xc = x.add(ci * t.plane);
        for ky in 0..t.kh {
            let xr = xc.add(ky * t.row);
            for kx in 0..t.kw {
                let xk = xr.add(kx);
                let mut wv = [_mm512_setzero_ps(); V];
                for (v, wv) in wv.iter_mut().enumerate() {
                    *wv = _mm512_loadu_ps(wk.add(16 * v));
                }
                wk = wk.add(16 * V);
                for (p, a) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*xk.add(p * t.stride));
                    for (a, wv) in a.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(b, *wv, *a);
                    }
                }
            }
        }
    }
    for (q, a) in acc.iter().enumerate().take(out.np) {
        let y = out.y.add(q * out.row_stride);
        for (v, a) in a.iter().enumerate() {
            let n = out.nc.saturating_sub(16 * v);
            if n >= 16 {
                _mm512_storeu_ps(y.add(16 * v), *a);
            } else if n > 0 {
                _mm512_mask_storeu_ps(y.add(16 * v), (1u16 << n) - 1, *a);
            }
        }
    }
}

/// [`pos_tile`] on AVX-512: `16·NV` positions × `CB` channels.
///
/// # Safety
/// The CPU has AVX-512 F; otherwise as [`pos_tile`], with `16·NV` positions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pos_tile_512<const CB: usize, const NV: usize>(
    t: &Taps,
    x: *const f32,
    w: *const f32,
    out: &PosDst,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; CB];
    let mut wk = w;
    for ci in 0..t.chan_in {
        let xc = x.add(ci * t.plane);
        for ky in 0..t.kh {
            let xr = xc.add(ky * t.row);
            for kx in 0..t.kw {
                let xk = xr.add(kx);
                let mut xv = [_mm512_setzero_ps(); NV];
                for (v, xv) in xv.iter_mut().enumerate() {
                    *xv = _mm512_loadu_ps(xk.add(16 * v));
                }
                for (c, a) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*wk.add(c));
                    for (a, xv) in a.iter_mut().zip(&xv) {
                        *a = _mm512_fmadd_ps(b, *xv, *a);
                    }
                }
                wk = wk.add(CB);
            }
        }
    }
    for (c, a) in acc.iter().enumerate().take(out.nc) {
        let y = out.y.add(c * out.chan_stride);
        let b = (!out.bias.is_null()).then(|| _mm512_set1_ps(*out.bias.add(c)));
        for (v, a) in a.iter().enumerate() {
            let (y, n) = (y.add(16 * v), out.np.saturating_sub(16 * v));
            if n >= 16 {
                let old = b.unwrap_or_else(|| _mm512_loadu_ps(y));
                _mm512_storeu_ps(y, _mm512_add_ps(*a, old));
            } else if n > 0 {
                let m: __mmask16 = (1u16 << n) - 1;
                let old = b.unwrap_or_else(|| _mm512_maskz_loadu_ps(m, y));
                _mm512_mask_storeu_ps(y, m, _mm512_add_ps(*a, old));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition_for_many_shapes() {
        if Isa::best().is_none() {
            return;
        }
        // (chan_in, chan_out, h, w, k, stride, padding)
        let cases = [
            (1, 6, 28, 28, 5, 1, 2),
            (6, 16, 14, 14, 5, 1, 0),
            (3, 20, 9, 11, 3, 2, 1),
            (4, 8, 7, 5, 3, 1, 1),
            (2, 9, 6, 13, 1, 1, 0),
            (5, 33, 8, 8, 3, 3, 2),
            (1, 1, 4, 4, 4, 1, 0),
            (3, 12, 17, 23, 3, 1, 1),
            (16, 6, 10, 10, 5, 1, 4),
            (2, 5, 30, 33, 7, 1, 3),
        ];
        for (ci, co, h, w, k, s, p) in cases {
            let op = Conv2DOp::new(1, ci, co, (h, w), (k, k), s, p).unwrap();
            let x = test_values(ci * h * w, 1);
            let wt = test_values(co * op.patch_len(), 2);
            let b = test_values(co, 3);
            for (isa, positions) in Isa::all().flat_map(|i| [(i, false), (i, true)]) {
                let plan = Plan::with_tiling(&op, &wt, Some(&b), Some(positions), isa).unwrap();
                let mut xpad = vec![0.0; plan.padded_len()];
                // a canary past the end: the tiles store straight from
                // their registers, and must not store past their outputs
                let len = co * op.out_plane();
                let mut buf = vec![f32::NAN; len + 64];
                let (y, canary) = buf.split_at_mut(len);
                plan.run(&x, y, &mut xpad, Write::Overwrite);
                assert!(canary.iter().all(|c| c.is_nan()), "{op:?} {isa:?}");
                let want = reference(&op, &x, &wt, &b);
                for (i, (g, r)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - r).abs() < 1e-4,
                        "{op:?} {isa:?} at {i}: {g} vs {r}"
                    );
                }
                // accumulate: adds conv(x) without the bias, padding reused
                plan.run(&x, y, &mut xpad, Write::Accumulate);
                assert!(canary.iter().all(|c| c.is_nan()), "{op:?} {isa:?}");
                for (i, (g, r)) in y.iter().zip(&want).enumerate() {
                    let bias = b[i / op.out_plane()] as f64;
                    assert!(
                        (*g as f64 - (2.0 * r - bias)).abs() < 2e-4,
                        "{op:?} {isa:?} accumulate at {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn lenet_convs_take_the_tiling_that_suits_them() {
        if Isa::best().is_none() {
            return;
        }
        for isa in Isa::all() {
            let plan = |ci, co, h, k, p| {
                let op = Conv2DOp::new(1, ci, co, (h, h), (k, k), 1, p).unwrap();
                let w = vec![0.0; co * op.patch_len()];
                let plan = Plan::with_tiling(&op, &w, None, None, isa).unwrap();
                (plan.tiling, plan.lanes)
            };
            // conv1: all 6 channels, a row of 28 in two tiles of 16
            // (AVX2) or one of 32 (AVX-512)
            let width = 2 * isa.lanes();
            assert!(matches!(
                plan(1, 6, 28, 5, 2),
                (Tiling::Positions { width: w, .. }, 6) if w == width
            ));
            // conv2: the 16 channels in 2 or 1 registers, a row of 10 in 2
            // tiles (AVX2) or 1
            let p = 5 * isa.lanes() / 8;
            assert!(matches!(
                plan(6, 16, 14, 5, 0),
                (Tiling::Channels { p: q, .. }, 16) if q == p
            ));
        }
    }

    #[test]
    fn the_isa_cap_reads_avx2_and_nothing_else() {
        assert_eq!(max_isa_from(Some("avx2")), Isa::Avx2);
        assert_eq!(max_isa_from(Some(" AVX2 ")), Isa::Avx2);
        for other in [None, Some(""), Some("avx512"), Some("sse")] {
            assert_eq!(max_isa_from(other), Isa::Avx512, "{other:?}");
        }
        // with no cap set, the plans may use every one this CPU runs
        if std::env::var_os("STATIC_NN_MAX_ISA").is_none() {
            assert!(Isa::usable().eq(Isa::all()));
        }
    }

    #[test]
    fn every_tiling_is_monomorphised() {
        #[cfg(target_arch = "x86_64")]
        for isa in [Isa::Avx2, Isa::Avx512] {
            for v in 1..=2 {
                for p in 1..=isa.max_acc() / v {
                    assert!(chan_tile_fn(isa, v, p).is_some(), "{isa:?} {v} {p}");
                }
            }
            for cb in 1..=max_cb(isa) {
                for nv in 1..=MAX_NV.min(isa.max_acc() / cb) {
                    assert!(pos_tile_fn(isa, cb, nv).is_some(), "{isa:?} {cb} {nv}");
                }
            }
            assert!(isa.max_acc() <= MAX_P && isa.lanes() * 2 <= MAX_LANES);
        }
    }
}
