//! The weight gradient by F(3×3, 2×2): see the [module](super) docs.
//!
//! `dW[co][ci][ky][kx] = Σ gy[co][oy][ox]·x[ci][oy + ky − p][ox + kx − p]`
//! is, for each 2×2 tile of `gy`, a "convolution" of the tile's 4×4 input
//! patch with the 2×2 tile as kernel and a 3×3 output. F(3×3, 2×2) does it
//! with 16 products per tile and pair of channels, where the definition
//! takes 36: `D[ξ][co][ci] = Σ_tiles Ĝ[ξ][co]·V[ξ][ci]`, then `dW =
//! Âᵀ·D·Â`. Its input transform is F(2×2, 3×3)'s `V` with the signs of
//! row and column 3 turned over; the turn is made on `Ĝ` instead, so both
//! share [`Tiles::transform_input`]. `Ĝ` is computed straight from the
//! planes of `gy`, 8 tiles of a row at a time, since the products read it
//! one value at a time (`V` is read by vectors of channels).
use super::kernel::{Block, Lhs};
use super::{serves, Tiles};
use crate::ops::conv2d::direct::Isa;
use crate::ops::conv2d::Conv2DOp;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Tiles that the products of one pass sum over at least: samples of
/// small planes are transformed together up to this many.
const MIN_SUM: usize = 64;

/// The weight gradient of a 3×3 convolution of stride 1 by F(3×3, 2×2).
pub(crate) struct GradPlan {
    /// One sample's tiles.
    tiles: Tiles,
    /// The widest ISA of the products.
    isa: Isa,
    /// Samples transformed at a time.
    per_pass: usize,
}

impl GradPlan {
    /// The plan for `op`, where Winograd's kernels serve it on the widest
    /// ISA that [`Isa::best`] allows (see [`serves`]).
    pub(crate) fn new(op: &Conv2DOp) -> Option<Self> {
        Self::on(Isa::best()?, op)
    }

    /// [`GradPlan::new`] for `isa`, which must run here.
    pub(crate) fn on(isa: Isa, op: &Conv2DOp) -> Option<Self> {
        if !serves(op, isa) {
            return None;
        }
        let tiles = Tiles::new(op);
        Some(Self {
            tiles,
            isa,
            per_pass: MIN_SUM.div_ceil(tiles.count()),
        })
    }

    /// Tiles of a pass (the sum's length).
    fn pass_tiles(&self) -> usize {
        self.tiles.count() * self.per_pass
    }

    /// The distance between rows of `Ĝ`: a pass's tiles, and room for the
    /// 8 lanes that [`GradPlan::transform_gy`] stores past the last.
    fn g_row(&self) -> usize {
        self.pass_tiles() + 8
    }

    /// The lengths of the scratch's parts: the padded input by position,
    /// `V` and `Ĝ` of a pass, and `D`.
    fn parts(&self) -> [usize; 4] {
        let (k, op) = (self.pass_tiles(), &self.tiles.op);
        [
            self.tiles.input_len(),
            16 * k * op.chan_in,
            16 * op.chan_out * self.g_row(),
            16 * op.chan_out * op.chan_in,
        ]
    }

    /// Elements of the scratch one call needs (see [`GradPlan::add`]).
    pub(crate) fn scratch_len(&self) -> usize {
        self.parts().iter().sum()
    }

    /// A workspace tag for the scratch: a buffer leased under it again
    /// still holds zeros in every padding position.
    pub(crate) fn scratch_tag(&self) -> u64 {
        self.tiles.tag("winograd weight gradient")
    }

    /// `gw += dW` of the samples `xs` and their output gradients `gys`
    /// (`gw` is `chan_out × chan_in·9`, PyTorch's layout). `scratch` holds
    /// [`GradPlan::scratch_len`] elements, zero in the padding: fresh, or
    /// leased under [`GradPlan::scratch_tag`].
    pub(crate) fn add(&self, xs: &[f32], gys: &[f32], gw: &mut [f32], scratch: &mut [f32]) {
        let (op, tiles) = (&self.tiles.op, &self.tiles);
        let (x_len, gy_len) = (op.chan_in * op.h_in * op.w_in, op.chan_out * op.out_plane());
        assert_eq!(xs.len() / x_len, gys.len() / gy_len);
        assert!(xs.len().is_multiple_of(x_len) && gys.len().is_multiple_of(gy_len));
        assert_eq!(gw.len(), op.chan_out * op.patch_len());
        assert_eq!(scratch.len(), self.scratch_len());
        if xs.is_empty() {
            // no samples: nothing to add (D would hold a former call's sums)
            return;
        }
        let [a, v, g, _] = self.parts();
        let (xp, rest) = scratch.split_at_mut(a);
        let (vs, rest) = rest.split_at_mut(v);
        let (gs, d) = rest.split_at_mut(g);
        let (t, ci, k) = (tiles.count(), op.chan_in, self.pass_tiles());
        let passes = xs
            .chunks(x_len * self.per_pass)
            .zip(gys.chunks(gy_len * self.per_pass));
        for (pass, (xs, gys)) in passes.enumerate() {
            let samples = xs.chunks(x_len).zip(gys.chunks(gy_len));
            for (s, (x, gy)) in samples.enumerate() {
                // SAFETY: `on` made the plan only where AVX2 and FMA run;
                // each kernel checks its slices' lengths.
                unsafe {
                    tiles.sample_to_positions(x, xp);
                    tiles.transform_input(xp, 0..t, &mut vs[s * t * ci..], (ci, k * ci));
                    self.transform_gy(gy, s * t, gs);
                }
            }
            let n = t * xs.len() / x_len;
            // SAFETY: as above.
            unsafe { self.multiply(n, (vs, gs), d, pass > 0) };
        }
        // SAFETY: as above.
        unsafe { self.transform_output(d, gw) };
    }

    /// `Ĝ = S·G·g·Gᵀ·S` of each 2×2 tile `g` of one sample's output
    /// gradient `gy` (planes), into `gs` (`[ξ][chan_out][tile]`, rows
    /// [`GradPlan::g_row`] apart, this sample's tiles from `first`), with
    /// `S = diag(1, 1, 1, −1)`: F(3×3, 2×2)'s kernel transform, and the
    /// turn of signs that lets it meet F(2×2, 3×3)'s `V`. Eight tiles of a
    /// row at a time: their 16 columns of `gy` split into even and odd.
    /// Where the last block of a row holds fewer than 8 tiles (`tw` no
    /// multiple of 8), the store of all 8 lanes
    /// runs on into the slots of tiles stored after it (the samples in
    /// order, each row of tiles, each block of 8), or into the room at the
    /// row's end, which no product reads.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn transform_gy(&self, gy: &[f32], first: usize, gs: &mut [f32]) {
        let op = &self.tiles.op;
        let (co, kr, tw) = (op.chan_out, self.g_row(), self.tiles.tw);
        let (h, w) = (op.h_out, op.w_out);
        assert!(gy.len() >= co * h * w);
        assert!(first + self.tiles.count() <= self.pass_tiles());
        assert!(gs.len() >= 16 * co * kr);
        let half = _mm256_set1_ps(0.5);
        // G on two values: [a, (a + b)/2, (a − b)/2, b]
        let g = |a: __m256, b: __m256| {
            [
                a,
                _mm256_mul_ps(_mm256_add_ps(a, b), half),
                _mm256_mul_ps(_mm256_sub_ps(a, b), half),
                b,
            ]
        };
        let neg = _mm256_set1_ps(-0.0);
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        // the first n lanes
        let mask = |n: usize| _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lanes);
        for c in 0..co {
            for ty in 0..self.tiles.th {
                for tx0 in (0..tw).step_by(8) {
                    // columns 2·tx0.. of rows 2·ty and 2·ty + 1 (zero past
                    // the plane), split into even and odd: g[dy][dx] of 8
                    // tiles
                    let cols = w - 2 * tx0;
                    let (lo, hi) = (mask(cols), mask(cols.saturating_sub(8)));
                    let row = |dy: usize| -> [__m256; 2] {
                        if 2 * ty + dy >= h {
                            return [_mm256_setzero_ps(); 2];
                        }
                        // SAFETY: the masks keep the loads within row 2·ty
                        // + dy < h of channel c (columns below w).
                        let at = gy.as_ptr().add((c * h + 2 * ty + dy) * w + 2 * tx0);
                        let a = unsafe { _mm256_maskload_ps(at, lo) };
                        let b = if cols > 8 {
                            unsafe { _mm256_maskload_ps(at.add(8), hi) }
                        } else {
                            _mm256_setzero_ps()
                        };
                        let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
                        let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
                        [even, odd].map(|v| {
                            let v = _mm256_castps_si256(v);
                            _mm256_castsi256_ps(_mm256_permute4x64_epi64::<0b11_01_10_00>(v))
                        })
                    };
                    let (r0, r1) = (row(0), row(1));
                    // G·g: the two columns
                    let gc = [g(r0[0], r1[0]), g(r0[1], r1[1])];
                    let t0 = first + ty * tw + tx0;
                    for (i, (c0, c1)) in gc[0].iter().zip(&gc[1]).enumerate() {
                        // ·Gᵀ: each row
                        let row = g(*c0, *c1);
                        for (j, v) in row.iter().enumerate() {
                            let v = if (i == 3) != (j == 3) {
                                _mm256_xor_ps(*v, neg)
                            } else {
                                *v
                            };
                            // SAFETY: t0 + 8 ≤ pass_tiles + 8 = kr: within
                            // row (ξ, c) of gs.
                            let at = gs.as_mut_ptr().add(((4 * i + j) * co + c) * kr + t0);
                            _mm256_storeu_ps(at, v);
                        }
                    }
                }
            }
        }
    }

    /// `D[ξ] (+)= Ĝ[ξ]ᵀ·V[ξ]` over the `n` tiles of a pass, for the 16
    /// positions ξ, in register blocks of output channels, added to
    /// `D` when `accumulate`.
    ///
    /// # Safety
    /// The CPU runs the plan's ISA.
    unsafe fn multiply(
        &self,
        n: usize,
        (vs, gs): (&[f32], &[f32]),
        d: &mut [f32],
        accumulate: bool,
    ) {
        let (ci, co, k) = (
            self.tiles.op.chan_in,
            self.tiles.op.chan_out,
            self.pass_tiles(),
        );
        let kr = self.g_row();
        assert!(n <= k && vs.len() >= 16 * k * ci && gs.len() >= 16 * co * kr);
        assert!(d.len() >= 16 * co * ci && ci.is_multiple_of(8));
        for xi in 0..16 {
            // the co rows of Ĝ[ξ] (n tiles each, kr apart), n rows of V[ξ]
            // (ci apart), into D[ξ]
            let block = Block {
                a: Lhs {
                    at: gs[xi * co * kr..].as_ptr(),
                    row: kr,
                    k: 1,
                },
                b: (vs[xi * k * ci..].as_ptr(), ci),
                c: (d[xi * co * ci..].as_mut_ptr(), ci),
                k: n,
                accumulate,
            };
            // SAFETY: the plan's ISA runs here (`on`); co rows of D[ξ] and
            // Ĝ[ξ], n ≤ k tiles of Ĝ and V, `ci` columns: within the slices
            // (asserted above).
            block.run(co, ci, self.isa);
        }
    }

    /// `gw += Âᵀ·D·Â` for every pair of channels: F(3×3, 2×2)'s output
    /// transform, 8 input channels at a time.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn transform_output(&self, d: &[f32], gw: &mut [f32]) {
        let (ci, co) = (self.tiles.op.chan_in, self.tiles.op.chan_out);
        assert!(d.len() >= 16 * co * ci && gw.len() >= co * ci * 9);
        // Âᵀ on four values: [p0 + p1 + p2, p1 − p2, p1 + p2 + p3]
        let a = |p: [__m256; 4]| {
            let s = _mm256_add_ps(p[1], p[2]);
            [
                _mm256_add_ps(p[0], s),
                _mm256_sub_ps(p[1], p[2]),
                _mm256_add_ps(s, p[3]),
            ]
        };
        let mut out = [0.0f32; 72];
        for o in 0..co {
            for i0 in (0..ci).step_by(8) {
                // SAFETY: ξ < 16, o < co, i0 + 8 ≤ ci: within d.
                let m: [__m256; 16] = std::array::from_fn(|xi| unsafe {
                    _mm256_loadu_ps(d.as_ptr().add((xi * co + o) * ci + i0))
                });
                // Âᵀ·D: three rows of four
                let rows: [[__m256; 3]; 4] =
                    std::array::from_fn(|j| a([m[j], m[4 + j], m[8 + j], m[12 + j]]));
                for ky in 0..3 {
                    // ·Â: three columns
                    let y = a([rows[0][ky], rows[1][ky], rows[2][ky], rows[3][ky]]);
                    for (kx, y) in y.iter().enumerate() {
                        _mm256_storeu_ps(out[(ky * 3 + kx) * 8..].as_mut_ptr(), *y);
                    }
                }
                // lane l of output (ky, kx) is input channel i0 + l's
                for l in 0..8 {
                    let g = &mut gw[(o * ci + i0 + l) * 9..][..9];
                    for (k, g) in g.iter_mut().enumerate() {
                        *g += out[k * 8 + l];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::CASES;
    use super::*;
    use crate::ops::conv2d::direct::test_values;

    /// The weight gradient by its definition in f64, over all samples.
    fn reference(op: &Conv2DOp, xs: &[f32], gys: &[f32]) -> Vec<f64> {
        let (x_len, gy_len) = (op.chan_in * op.h_in * op.w_in, op.chan_out * op.out_plane());
        let mut gw = vec![0.0f64; op.chan_out * op.patch_len()];
        for (x, gy) in xs.chunks(x_len).zip(gys.chunks(gy_len)) {
            for co in 0..op.chan_out {
                for ci in 0..op.chan_in {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let mut s = 0.0;
                            for oy in 0..op.h_out {
                                for ox in 0..op.w_out {
                                    if let Some((iy, ix)) = op.source(oy, ox, ky, kx) {
                                        let g = gy[(co * op.h_out + oy) * op.w_out + ox];
                                        let v = x[(ci * op.h_in + iy) * op.w_in + ix];
                                        s += g as f64 * v as f64;
                                    }
                                }
                            }
                            gw[((co * op.chan_in + ci) * 3 + ky) * 3 + kx] += s;
                        }
                    }
                }
            }
        }
        gw
    }

    #[test]
    fn matches_the_definition_for_many_shapes() {
        for (isa, (ci, co, h, w, p)) in Isa::all().flat_map(|isa| CASES.map(|c| (isa, c))) {
            let op = Conv2DOp::new(1, ci, co, (h, w), (3, 3), 1, p).unwrap();
            let plan = GradPlan::on(isa, &op).unwrap();
            // one sample, and more than one pass of samples
            for n in [1, 2 * plan.per_pass + 1] {
                let xs = test_values(n * ci * h * w, 1);
                let gys = test_values(n * co * op.out_plane(), 2);
                let mut scratch = vec![0.0; plan.scratch_len()];
                let start = test_values(co * op.patch_len(), 3);
                let mut gw = start.clone();
                plan.add(&xs, &gys, &mut gw, &mut scratch);
                let want = reference(&op, &xs, &gys);
                let tol = 2e-6 * (n * op.out_plane()) as f64;
                for (i, ((g, r), s)) in gw.iter().zip(&want).zip(&start).enumerate() {
                    let r = r + *s as f64;
                    assert!(
                        (*g as f64 - r).abs() < tol,
                        "{op:?} {isa:?} n={n} at {i}: {g} vs {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_samples_add_nothing() {
        let op = Conv2DOp::new(1, 8, 8, (5, 5), (3, 3), 1, 1).unwrap();
        for isa in Isa::all() {
            let plan = GradPlan::on(isa, &op).unwrap();
            let mut scratch = vec![0.0; plan.scratch_len()];
            let mut gw = vec![0.0; 8 * op.patch_len()];
            let (xs, gys) = (test_values(8 * 25, 1), test_values(8 * 25, 2));
            plan.add(&xs, &gys, &mut gw, &mut scratch);
            // the same scratch again, without samples: its sums stay out
            let before = gw.clone();
            plan.add(&[], &[], &mut gw, &mut scratch);
            assert_eq!(gw, before, "{isa:?}");
        }
    }

    #[test]
    fn small_planes_are_summed_over_several_samples() {
        let op = Conv2DOp::new(1, 64, 64, (7, 7), (3, 3), 1, 1).unwrap();
        if let Some(plan) = GradPlan::on(Isa::Avx2, &op) {
            // 16 tiles a sample: 4 samples a pass
            assert_eq!(plan.per_pass, 4);
        }
    }
}
