//! Direct convolution for f32 on x86-64 CPUs with AVX2 and FMA: no im2col
//! matrix, no `gemm` call, one pass over a zero-padded copy of each sample.
//!
//! A tile is `P` consecutive output positions of one row times one group of
//! `8·V` output channels (`V` AVX registers per position). For every kernel
//! tap `(ci, ky, kx)` the tile loads the group's `V` weight vectors once and
//! broadcasts each of its `P` input values once, so each load feeds `V` or
//! `P` fused multiply-adds and the `P·V` accumulators stay in registers. The
//! padded copy of the input makes the inner loop free of bounds checks, and
//! its right margin lets the last tile of a row run full width (the
//! positions past the row's end are computed and dropped).
//!
//! The sum over taps runs in a fixed order (channel, row, column of the
//! kernel) for every output, so the result does not depend on the thread
//! count.
use super::Conv2DOp;
use crate::ops::cpu_util::Write;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The widest tile: 12 positions of one register, or 6 of two.
const MAX_P: usize = 12;
/// Channels per group at most (`8·V`, `V ≤ 2`).
const MAX_LANES: usize = 16;

/// A tile's accumulators, spilled for the store: `[position][channel]`.
type TileOut = [[f32; MAX_LANES]; MAX_P];

/// The inner loop of one tile, monomorphised for its `P` and `V`.
type TileFn = unsafe fn(&Taps, *const f32, *const f32, *const f32, &mut TileOut);

/// The sizes the inner loop walks: taps per input channel and the strides of
/// the padded input.
struct Taps {
    chan_in: usize,
    kh: usize,
    kw: usize,
    /// Elements between two padded input planes.
    plane: usize,
    /// Elements between two padded input rows.
    row: usize,
    stride: usize,
}

/// A convolution prepared for the direct kernel: its packed weights and bias,
/// its tile shape, and the padded input's geometry.
pub(crate) struct Plan {
    op: Conv2DOp,
    taps: Taps,
    /// Registers per position (1 or 2).
    v: usize,
    /// Positions per tile.
    p: usize,
    /// Weights as `[group][chan_in·kh·kw][8·v]`, zero past `chan_out`.
    w: Vec<f32>,
    /// Bias as `[group][8·v]` (zeros without a bias).
    b: Vec<f32>,
    tile: TileFn,
    /// Padded input height and width.
    hp: usize,
    wp: usize,
}

/// Whether this CPU runs the direct kernel (AVX2 and FMA).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The cheapest positions per tile for rows of `w_out` outputs with `v`
/// registers per position: the fewest cycles per row. Per tap a tile costs
/// the most of `p·v` FMAs and `p + v` loads (two of each per cycle) and one
/// FMA latency (about 4.5 cycles: each accumulator takes one FMA per tap),
/// in half cycles; ties go to the wider tile.
fn tile_width(w_out: usize, v: usize) -> usize {
    let max_p = MAX_P / v;
    (1..=max_p)
        .rev()
        .min_by_key(|&p| w_out.div_ceil(p) * (p * v).max(p + v).max(9))
        .unwrap_or(1)
}

impl Plan {
    /// Prepares `op` with weights `w` (`chan_out × chan_in·kh·kw`) and an
    /// optional bias; `None` when the CPU lacks AVX2 or FMA.
    pub(crate) fn new(op: &Conv2DOp, w: &[f32], b: Option<&[f32]>) -> Option<Self> {
        if !available() {
            return None;
        }
        let v = if op.chan_out > 8 { 2 } else { 1 };
        let lanes = 8 * v;
        let groups = op.chan_out.div_ceil(lanes);
        let ckk = op.patch_len();
        let mut wpk = vec![0.0f32; groups * ckk * lanes];
        let mut bpk = vec![0.0f32; groups * lanes];
        for co in 0..op.chan_out {
            let (g, l) = (co / lanes, co % lanes);
            for k in 0..ckk {
                wpk[(g * ckk + k) * lanes + l] = w[co * ckk + k];
            }
            bpk[g * lanes + l] = b.map_or(0.0, |b| b[co]);
        }
        let p = tile_width(op.w_out, v);
        let tile = tile_fn(v, p)?;
        let hp = op.h_in + 2 * op.padding;
        let last = (op.w_out.div_ceil(p) * p - 1) * op.stride + op.kw;
        let wp = (op.w_in + 2 * op.padding).max(last);
        let taps = Taps {
            chan_in: op.chan_in,
            kh: op.kh,
            kw: op.kw,
            plane: hp * wp,
            row: wp,
            stride: op.stride,
        };
        Some(Self {
            op: *op,
            taps,
            v,
            p,
            w: wpk,
            b: bpk,
            tile,
            hp,
            wp,
        })
    }

    /// Elements of the padded copy of one sample (see [`Plan::run`]).
    pub(crate) fn padded_len(&self) -> usize {
        self.op.chan_in * self.hp * self.wp
    }

    /// A workspace tag for the padded copy: a buffer leased under it again
    /// still holds zeros in every padding position.
    pub(crate) fn padded_tag(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.op, self.wp, "direct").hash(&mut h);
        h.finish() | 1
    }

    /// One sample: `y = conv(x) + b` (or `y += conv(x)` with
    /// [`Write::Accumulate`], where the bias is not added). `xpad` holds
    /// [`Plan::padded_len`] elements, zero in the padding: a fresh buffer, or
    /// one leased under [`Plan::padded_tag`].
    pub(crate) fn run(&self, x: &[f32], y: &mut [f32], xpad: &mut [f32], write: Write) {
        let op = &self.op;
        assert_eq!(x.len(), op.chan_in * op.h_in * op.w_in);
        assert_eq!(y.len(), op.chan_out * op.out_plane());
        assert_eq!(xpad.len(), self.padded_len());
        for c in 0..op.chan_in {
            for iy in 0..op.h_in {
                let src = &x[(c * op.h_in + iy) * op.w_in..][..op.w_in];
                let dst = (c * self.hp + iy + op.padding) * self.wp + op.padding;
                xpad[dst..dst + op.w_in].copy_from_slice(src);
            }
        }
        let lanes = 8 * self.v;
        let ckk = op.patch_len();
        let zeros = [0.0f32; MAX_LANES];
        let mut out: TileOut = [[0.0; MAX_LANES]; MAX_P];
        let (s, ohw) = (op.stride, op.out_plane());
        for oy in 0..op.h_out {
            for ox0 in (0..op.w_out).step_by(self.p) {
                let np = self.p.min(op.w_out - ox0);
                let x0 = oy * s * self.wp + ox0 * s;
                for g in 0..self.b.len() / lanes {
                    let init = match write {
                        Write::Overwrite => self.b[g * lanes..].as_ptr(),
                        Write::Accumulate => zeros.as_ptr(),
                    };
                    let w = self.w[g * ckk * lanes..].as_ptr();
                    // SAFETY: `available()` held when the plan was made, so
                    // the CPU has AVX2 and FMA. The tile reads the input at
                    // x0 + ci·plane + ky·row + kx + p·stride for ci, ky, kx,
                    // p below chan_in, kh, kw, self.p: at most
                    // ((oy·s + kh − 1)·wp + (ox0 + p − 1)·s + kw − 1) within
                    // a plane, below hp·wp because oy·s + kh ≤ hp and
                    // (ox0 + p − 1)·s + kw ≤ wp (how `new` sized wp). It
                    // reads ckk·lanes weights from `w` (the group's block)
                    // and `lanes` values from `init`.
                    unsafe { (self.tile)(&self.taps, xpad[x0..].as_ptr(), w, init, &mut out) };
                    let co0 = g * lanes;
                    for l in 0..lanes.min(op.chan_out - co0) {
                        let y = &mut y[(co0 + l) * ohw + oy * op.w_out + ox0..][..np];
                        match write {
                            Write::Overwrite => {
                                y.iter_mut().zip(&out).for_each(|(y, o)| *y = o[l]);
                            }
                            Write::Accumulate => {
                                y.iter_mut().zip(&out).for_each(|(y, o)| *y += o[l]);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The tile function for `v` registers and `p` positions.
fn tile_fn(v: usize, p: usize) -> Option<TileFn> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! pick {
            ($v:literal: $($p:literal)*) => {
                match p { $($p => Some(tile::<$p, $v> as TileFn),)* _ => None }
            };
        }
        match v {
            1 => pick!(1: 1 2 3 4 5 6 7 8 9 10 11 12),
            2 => pick!(2: 1 2 3 4 5 6),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (v, p);
        None
    }
}

/// One tile: `P` positions × `8·V` channels, summed over every tap.
///
/// # Safety
/// The CPU has AVX2 and FMA; `x` is the tile's first input value and every
/// `x + ci·plane + ky·row + kx + p·stride` is readable; `w` holds
/// `chan_in·kh·kw·8·V` values and `init` `8·V`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const P: usize, const V: usize>(
    t: &Taps,
    x: *const f32,
    w: *const f32,
    init: *const f32,
    out: &mut TileOut,
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
    for (o, a) in out.iter_mut().zip(&acc) {
        for (v, a) in a.iter().enumerate() {
            _mm256_storeu_ps(o.as_mut_ptr().add(8 * v), *a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, in f64.
    fn reference(op: &Conv2DOp, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
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

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0 - 0.5)
            .collect()
    }

    #[test]
    fn matches_the_definition_for_many_shapes() {
        if !available() {
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
        ];
        for (ci, co, h, w, k, s, p) in cases {
            let op = Conv2DOp::new(1, ci, co, (h, w), (k, k), s, p).unwrap();
            let x = values(ci * h * w, 1);
            let wt = values(co * op.patch_len(), 2);
            let b = values(co, 3);
            let plan = Plan::new(&op, &wt, Some(&b)).unwrap();
            let mut xpad = vec![0.0; plan.padded_len()];
            let mut y = vec![f32::NAN; co * op.out_plane()];
            plan.run(&x, &mut y, &mut xpad, Write::Overwrite);
            let want = reference(&op, &x, &wt, &b);
            for (i, (g, r)) in y.iter().zip(&want).enumerate() {
                assert!((*g as f64 - r).abs() < 1e-4, "{op:?} at {i}: {g} vs {r}");
            }
            // accumulate: adds conv(x) without the bias, padding reused
            plan.run(&x, &mut y, &mut xpad, Write::Accumulate);
            for (i, (g, r)) in y.iter().zip(&want).enumerate() {
                let bias = b[i / op.out_plane()] as f64;
                assert!((*g as f64 - (2.0 * r - bias)).abs() < 2e-4, "{op:?} accumulate at {i}");
            }
        }
    }

    #[test]
    fn tile_widths_fit_the_rows() {
        assert_eq!(tile_width(28, 1), 10);
        assert_eq!(tile_width(10, 2), 5);
        assert!(tile_width(1, 2) >= 1);
        for w in 1..40 {
            for v in 1..=2 {
                let p = tile_width(w, v);
                assert!(p >= 1 && p * v <= MAX_P);
            }
        }
    }
}
