//! The input gradient of a convolution by scattering, for f32 on x86-64
//! CPUs with AVX2 and FMA: `dx[ci][oy·s + ky − p][ox·s + kx − p] +=
//! Σ_co w[co][ci][ky][kx] · gy[co][oy][ox]`, without the `Wᵀ · gy` matrix
//! and its col2im.
//!
//! Input channels are vectorised (`8·V` per group). For each output
//! position (two at a time when `V = 1`) and kernel row, a tile sums over
//! the output channels for a block of `KB` kernel columns, broadcasting
//! each `gy` value once and loading each weight vector once per position
//! pair, then adds the `PP·KB` results into a zero-padded, channels-last
//! copy of `dx`; the interior is added back into `dx` at the end. Every
//! multiply-add is useful: no zero padding of `gy` is multiplied, which is
//! what makes this beat the transposed direct convolution on "valid"
//! convolutions (LeNet's second, 6 input channels).
//!
//! With AVX-512 and at most 8 input channels, a 512-bit register holds two
//! positions' 8 channels, so one FMA does the work of two 256-bit ones
//! (`scatter_pairs`; LeNet's second convolution, 6 channels, would fill
//! only 6 of 16 lanes with one position per register).
//!
//! The sums run in a fixed order (output channel within a tap, then taps
//! and positions in order), independent of the thread count and of the
//! vector width: each lane sees the same multiply-adds in the same order.
use super::direct::Isa;
use super::Conv2DOp;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Kernel columns per tile at most.
const MAX_KB: usize = 6;

/// The inner loop of a tile, monomorphised for `PP` positions, `KB`
/// kernel columns and `V` registers: (geometry, first gy, weights, first
/// dx entry).
type ScatterFn = unsafe fn(&Geometry, *const f32, *const f32, *mut f32);

/// What a tile walks.
struct Geometry {
    chan_out: usize,
    /// Elements between two `gy` planes (`h_out · w_out`).
    gy_plane: usize,
    /// Elements between two positions of the padded `dx` (`stride · cols`).
    dx_pos: usize,
    /// Elements per padded `dx` column (the channels of every group).
    cols: usize,
}

/// A convolution prepared for the scattered input gradient.
pub(crate) struct ScatterPlan {
    op: Conv2DOp,
    geo: Geometry,
    /// Registers per position (1 or 2) and positions per tile (2 or 1).
    v: usize,
    pp: usize,
    /// Weights as `[group][ky][kx][co][8·v]`, zero past `chan_in`.
    w: Vec<f32>,
    /// With AVX-512 and `v = 1`: the same weights with each 8 repeated
    /// (`[ky][kx][co][16]`), for the position-pair tiles.
    pairs: Option<Vec<f32>>,
    /// Padded height and width of `dx`.
    hp: usize,
    wp: usize,
}

impl ScatterPlan {
    /// `None` unless the CPU has AVX2 and FMA and there are at least 4
    /// input channels (the vectorised ones); position pairs on AVX-512.
    pub(crate) fn new(op: &Conv2DOp, w: &[f32]) -> Option<Self> {
        Self::on(op, w, Isa::best()?)
    }

    /// [`ScatterPlan::new`] on `isa` (which must run here).
    fn on(op: &Conv2DOp, w: &[f32], isa: Isa) -> Option<Self> {
        if !isa.runs_here() || op.chan_in < 4 {
            return None;
        }
        let v = if op.chan_in > 8 { 2 } else { 1 };
        let lanes = 8 * v;
        let groups = op.chan_in.div_ceil(lanes);
        let cols = lanes * groups;
        let (kh, kw, co_n) = (op.kh, op.kw, op.chan_out);
        let mut wp = vec![0.0f32; groups * kh * kw * co_n * lanes];
        for co in 0..co_n {
            for ci in 0..op.chan_in {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let (g, l) = (ci / lanes, ci % lanes);
                        let dst = ((((g * kh + ky) * kw + kx) * co_n) + co) * lanes + l;
                        wp[dst] = w[((co * op.chan_in + ci) * kh + ky) * kw + kx];
                    }
                }
            }
        }
        let hp = op.h_in + 2 * op.padding;
        let wpad = op.w_in + 2 * op.padding;
        let geo = Geometry {
            chan_out: co_n,
            gy_plane: op.out_plane(),
            dx_pos: op.stride * cols,
            cols,
        };
        let pairs = (isa == Isa::Avx512 && v == 1).then(|| {
            wp.chunks(8)
                .flat_map(|c| c.iter().chain(c))
                .copied()
                .collect()
        });
        Some(Self {
            op: *op,
            geo,
            v,
            pp: 3 - v,
            w: wp,
            pairs,
            hp,
            wp: wpad,
        })
    }

    /// Elements of the scratch one call needs (the padded `dx`).
    pub(crate) fn scratch_len(&self) -> usize {
        self.hp * self.wp * self.geo.cols
    }

    /// `gx += dx` of one sample, from its output gradient `gy`.
    pub(crate) fn add(&self, gy: &[f32], gx: &mut [f32], scratch: &mut [f32]) {
        let op = &self.op;
        assert_eq!(gy.len(), op.chan_out * op.out_plane());
        assert_eq!(gx.len(), op.chan_in * op.h_in * op.w_in);
        assert_eq!(scratch.len(), self.scratch_len());
        scratch.fill(0.0);
        let (lanes, cols, s) = (8 * self.v, self.geo.cols, op.stride);
        let groups = cols / lanes;
        let per_ky = op.kw * op.chan_out * lanes;
        for g in 0..groups {
            for ky in 0..op.kh {
                let wk = &self.w[(g * op.kh + ky) * per_ky..][..per_ky];
                let wk2 = (self.pairs.as_ref())
                    .map(|w| &w[2 * (g * op.kh + ky) * per_ky..][..2 * per_ky]);
                for oy in 0..op.h_out {
                    let row = (oy * s + ky) * self.wp;
                    let mut ox = 0;
                    while ox < op.w_out {
                        let left = op.w_out - ox;
                        // two pairs, one pair (AVX-512), or the plain tile
                        let (pp, wk, paired) = match wk2 {
                            Some(w2) if left >= 2 => (left.min(4) & !1, w2, true),
                            _ => (self.pp.min(left), wk, false),
                        };
                        let wl = if paired { 16 } else { lanes };
                        for kx0 in (0..op.kw).step_by(MAX_KB) {
                            let kb = MAX_KB.min(op.kw - kx0);
                            let tile = if paired {
                                scatter_pairs_fn(pp / 2, kb)
                            } else {
                                scatter_fn(pp, kb, self.v)
                            };
                            let Some(tile) = tile else {
                                unreachable!("every tile with kb ≤ {MAX_KB} is monomorphised")
                            };
                            let d0 = (row + ox * s + kx0) * cols + g * lanes;
                            let w0 = kx0 * op.chan_out * wl;
                            // SAFETY: the plan's Isa runs here (`on`
                            // checked; AVX-512 counts only with AVX2 and FMA),
                            // and the pair tiles exist only on AVX-512. The tile
                            // reads gy at oy·w_out + ox + q + co·gy_plane (q <
                            // pp, co < chan_out): inside gy as ox + pp ≤ w_out.
                            // It reads kb·chan_out·wl weights from w0, inside
                            // the ky block (of wl = 8·v or 16 lanes). It
                            // updates dx at d0 + q·s·cols + k·cols + lane (k <
                            // kb, lane < 8·v): the padded position (oy·s + ky,
                            // (ox + q)·s + kx0 + k), inside the padded plane
                            // because (h_out − 1)·s + kh ≤ hp and (w_out − 1)·s
                            // + kw ≤ wp, and g·lanes + lane < cols.
                            unsafe {
                                tile(
                                    &self.geo,
                                    gy[oy * op.w_out + ox..].as_ptr(),
                                    wk[w0..].as_ptr(),
                                    scratch[d0..].as_mut_ptr(),
                                )
                            };
                        }
                        ox += pp;
                    }
                }
            }
        }
        for ci in 0..op.chan_in {
            for iy in 0..op.h_in {
                let dst = &mut gx[(ci * op.h_in + iy) * op.w_in..][..op.w_in];
                let src = (iy + op.padding) * self.wp + op.padding;
                for (ix, d) in dst.iter_mut().enumerate() {
                    *d += scratch[(src + ix) * cols + ci];
                }
            }
        }
    }
}

/// The tile for `pp` positions, `kb` kernel columns, `v` registers.
fn scatter_fn(pp: usize, kb: usize, v: usize) -> Option<ScatterFn> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! pick {
            ($(($pp:literal, $v:literal): $($kb:literal)*;)*) => {
                match (pp, v, kb) {
                    $($(($pp, $v, $kb) => Some(scatter::<$pp, $kb, $v> as ScatterFn),)*)*
                    _ => None,
                }
            };
        }
        pick!(
            (1, 1): 1 2 3 4 5 6;
            (2, 1): 1 2 3 4 5 6;
            (1, 2): 1 2 3 4 5 6;
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (pp, kb, v);
        None
    }
}

/// The position-pair tile (AVX-512) for `p2` pairs and `kb` kernel
/// columns.
fn scatter_pairs_fn(p2: usize, kb: usize) -> Option<ScatterFn> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! pick {
            ($($p2:literal: $($kb:literal)*;)*) => {
                match (p2, kb) {
                    $($(($p2, $kb) => Some(scatter_pairs::<$p2, $kb> as ScatterFn),)*)*
                    _ => None,
                }
            };
        }
        pick!(1: 1 2 3 4 5 6; 2: 1 2 3 4 5 6;)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p2, kb);
        None
    }
}

/// [`scatter`] with `V = 1` on AVX-512, `2·P2` positions: each register
/// holds the 8 channels of two neighbouring positions (`w` repeats each
/// weight vector in both halves, and each `gy` pair is spread over them).
///
/// # Safety
/// The CPU has AVX-512 F; otherwise as [`scatter`] with `PP = 2·P2`, `V =
/// 1`, and `w + (k·chan_out + co)·16 + lane` for `lane < 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scatter_pairs<const P2: usize, const KB: usize>(
    g: &Geometry,
    gy: *const f32,
    w: *const f32,
    dx: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); KB]; P2];
    // lanes 0–7 take the first value of a pair, 8–15 the second
    let spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    for co in 0..g.chan_out {
        let mut b = [_mm512_setzero_ps(); P2];
        for (j, b) in b.iter_mut().enumerate() {
            let two = _mm512_maskz_loadu_ps(0b11, gy.add(co * g.gy_plane + 2 * j));
            *b = _mm512_permutexvar_ps(spread, two);
        }
        for k in 0..KB {
            let wv = _mm512_loadu_ps(w.add((k * g.chan_out + co) * 16));
            for (a, b) in acc.iter_mut().zip(&b) {
                a[k] = _mm512_fmadd_ps(*b, wv, a[k]);
            }
        }
    }
    // position by position, as `scatter` adds them (the same order of
    // additions into dx, so the same bits)
    for (j, a) in acc.iter().enumerate() {
        for (k, a) in a.iter().enumerate() {
            let p = dx.add(2 * j * g.dx_pos + k * g.cols);
            let lo = _mm512_castps512_ps256(*a);
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), lo));
        }
        for (k, a) in a.iter().enumerate() {
            let p = dx.add((2 * j + 1) * g.dx_pos + k * g.cols);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(*a), 1));
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), hi));
        }
    }
}

/// One tile: for `q < PP`, `k < KB`: `dx[q][k] += Σ_co gy[co][q] · w[k][co]`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `gy + co·gy_plane + q`, `w + (k·chan_out +
/// co)·8·V + lane` and `dx + q·dx_pos + k·cols + lane` (`lane < 8·V`) are
/// valid for every `q`, `k`, `co`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter<const PP: usize, const KB: usize, const V: usize>(
    g: &Geometry,
    gy: *const f32,
    w: *const f32,
    dx: *mut f32,
) {
    let mut acc = [[[_mm256_setzero_ps(); V]; KB]; PP];
    let lanes = 8 * V;
    for co in 0..g.chan_out {
        let mut b = [_mm256_setzero_ps(); PP];
        for (q, b) in b.iter_mut().enumerate() {
            *b = _mm256_broadcast_ss(&*gy.add(co * g.gy_plane + q));
        }
        for k in 0..KB {
            let wk = w.add((k * g.chan_out + co) * lanes);
            let mut wv = [_mm256_setzero_ps(); V];
            for (v, wv) in wv.iter_mut().enumerate() {
                *wv = _mm256_loadu_ps(wk.add(8 * v));
            }
            for (a, b) in acc.iter_mut().zip(&b) {
                for (a, wv) in a[k].iter_mut().zip(&wv) {
                    *a = _mm256_fmadd_ps(*b, *wv, *a);
                }
            }
        }
    }
    for (q, a) in acc.iter().enumerate() {
        for (k, a) in a.iter().enumerate() {
            for (v, a) in a.iter().enumerate() {
                let p = dx.add(q * g.dx_pos + k * g.cols + 8 * v);
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), *a));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::direct::test_values;
    use super::*;

    #[test]
    fn matches_the_definition() {
        if Isa::best().is_none() {
            return;
        }
        // (chan_in, chan_out, h, w, k, stride, padding)
        for (ci, co, h, w, k, s, p) in [
            (6, 16, 14, 14, 5, 1, 0),
            (4, 3, 9, 7, 3, 2, 1),
            (12, 5, 8, 11, 7, 1, 3),
            (20, 9, 6, 6, 2, 3, 1),
            (8, 1, 5, 5, 1, 1, 0),
        ] {
            let op = Conv2DOp::new(1, ci, co, (h, w), (k, k), s, p).unwrap();
            let wt = test_values(co * op.patch_len(), 1);
            let gy = test_values(co * op.out_plane(), 2);
            let before = test_values(ci * h * w, 3);
            assert!(
                ScatterPlan::new(&op, &wt).is_some(),
                "4 input channels or more"
            );
            let mut got = Vec::new();
            for isa in Isa::all() {
                let plan = ScatterPlan::on(&op, &wt, isa).expect("4 input channels or more");
                let mut gx = before.clone();
                let mut scratch = vec![f32::NAN; plan.scratch_len()];
                plan.add(&gy, &mut gx, &mut scratch);
                got.push((isa, gx));
            }
            // the same sums in the same order on every Isa
            assert!(got.windows(2).all(|p| p[0].1 == p[1].1), "{op:?}");
            let gx = &got[0].1;
            let mut want: Vec<f64> = before.iter().map(|v| *v as f64).collect();
            for o in 0..co {
                for c in 0..ci {
                    for ky in 0..k {
                        for kx in 0..k {
                            for oy in 0..op.h_out {
                                for ox in 0..op.w_out {
                                    if let Some((iy, ix)) = op.source(oy, ox, ky, kx) {
                                        want[(c * h + iy) * w + ix] +=
                                            wt[((o * ci + c) * k + ky) * k + kx] as f64
                                                * gy[(o * op.h_out + oy) * op.w_out + ox] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for (i, (g, r)) in gx.iter().zip(&want).enumerate() {
                assert!((*g as f64 - r).abs() < 1e-4, "{op:?} dx[{i}]: {g} vs {r}");
            }
        }
    }

    #[test]
    fn every_tile_is_monomorphised() {
        #[cfg(target_arch = "x86_64")]
        for kb in 1..=MAX_KB {
            for (pp, v) in [(1, 1), (2, 1), (1, 2)] {
                assert!(scatter_fn(pp, kb, v).is_some());
            }
            for p2 in 1..=2 {
                assert!(scatter_pairs_fn(p2, kb).is_some());
            }
        }
    }
}
