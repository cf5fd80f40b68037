//! The forward pass by F(2×2, 3×3): see the [module](super) docs.
use super::kernel::{Block, Lhs, ROWS};
use super::{serves, Tiles};
use crate::ops::conv2d::direct::Isa;
use crate::ops::conv2d::transpose::positions_to_planes;
use crate::ops::conv2d::Conv2DOp;
use crate::ops::cpu_util::Write;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::ops::Range;

/// A 3×3 convolution of stride 1 prepared for F(2×2, 3×3): its transformed
/// kernels, its bias, and the geometry of one sample's tiles.
pub(crate) struct Plan {
    /// One sample's tiles.
    tiles: Tiles,
    /// The widest ISA of the products.
    isa: Isa,
    /// Tiles transformed and multiplied at a time (a multiple of
    /// [`ROWS`], or all of a sample's if fewer), so that their `V` and `M`
    /// stay in the L1 cache.
    group: usize,
    /// The transformed kernels, `U[ξ][chan_in][chan_out]`.
    u: Vec<f32>,
    /// The bias (zeros without one).
    b: Vec<f32>,
}

impl Plan {
    /// The plan of `op` with kernels `w` (PyTorch's layout) and bias `b`,
    /// where F(2×2, 3×3) serves it on the widest ISA that [`Isa::best`]
    /// allows (see [`serves`]).
    pub(crate) fn new(op: &Conv2DOp, w: &[f32], b: Option<&[f32]>) -> Option<Self> {
        Self::on(Isa::best()?, op, w, b)
    }

    /// [`Plan::new`] for `isa`, which must run here.
    pub(crate) fn on(isa: Isa, op: &Conv2DOp, w: &[f32], b: Option<&[f32]>) -> Option<Self> {
        let sizes =
            w.len() == op.chan_out * op.patch_len() && b.is_none_or(|b| b.len() == op.chan_out);
        if !serves(op, isa) || !sizes {
            return None;
        }
        let tiles = Tiles::new(op);
        Some(Self {
            tiles,
            isa,
            group: group_for(op.chan_in + op.chan_out).min(tiles.count()),
            u: transform_kernels(w, (op.chan_out, op.chan_in)),
            b: b.map_or_else(|| vec![0.0; op.chan_out], <[f32]>::to_vec),
        })
    }

    /// Whether this plan is `op`'s, for samples of any batch.
    pub(crate) fn serves(&self, op: &Conv2DOp) -> bool {
        self.tiles.op == Conv2DOp { batch: 1, ..*op }
    }

    /// The lengths of the scratch's parts: the padded input by position,
    /// `V`, `M`, and the outputs by position.
    fn parts(&self) -> [usize; 4] {
        let (g, op) = (self.group, &self.tiles.op);
        [
            self.tiles.input_len(),
            16 * g * op.chan_in,
            16 * g * op.chan_out,
            op.out_plane() * op.chan_out,
        ]
    }

    /// Elements of the scratch of one sample (see [`Plan::run`]).
    pub(crate) fn padded_len(&self) -> usize {
        self.parts().iter().sum()
    }

    /// A workspace tag for the scratch: a buffer leased under it again
    /// still holds zeros in every padding position of the input.
    pub(crate) fn padded_tag(&self) -> u64 {
        self.tiles.tag("winograd")
    }

    /// One sample: `y = conv(x) + b` (or `y += conv(x)` with
    /// [`Write::Accumulate`], where the bias is not added). `scratch` holds
    /// [`Plan::padded_len`] elements, zero in the padding: a fresh buffer,
    /// or one leased under [`Plan::padded_tag`].
    pub(crate) fn run(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32], write: Write) {
        let (op, tiles) = (&self.tiles.op, &self.tiles);
        assert_eq!(x.len(), op.chan_in * op.h_in * op.w_in);
        assert_eq!(y.len(), op.chan_out * op.out_plane());
        assert_eq!(scratch.len(), self.padded_len());
        let [a, v, m, _] = self.parts();
        let (xp, rest) = scratch.split_at_mut(a);
        let (vs, rest) = rest.split_at_mut(v);
        let (ms, by_pos) = rest.split_at_mut(m);
        // SAFETY: `on` made the plan only where its ISA runs (AVX2 and FMA
        // at least); each kernel checks its slices' lengths.
        unsafe {
            tiles.sample_to_positions(x, xp);
            for t0 in (0..tiles.count()).step_by(self.group) {
                let group = t0..(t0 + self.group).min(tiles.count());
                tiles.transform_input(xp, group.clone(), vs, (16 * op.chan_in, op.chan_in));
                self.multiply(group.len(), vs, ms);
                self.transform_output(ms, group, by_pos, write);
            }
        }
        let acc = matches!(write, Write::Accumulate);
        positions_to_planes(by_pos, op.chan_out, (op.chan_out, op.out_plane()), y, acc);
    }

    /// `M[ξ] = V[ξ]·U[ξ]` for the 16 positions ξ, of `t` tiles, in
    /// register blocks of tiles ([`Block`]).
    ///
    /// # Safety
    /// The CPU runs the plan's ISA.
    unsafe fn multiply(&self, t: usize, vs: &[f32], ms: &mut [f32]) {
        let (ci, co) = (self.tiles.op.chan_in, self.tiles.op.chan_out);
        assert!(vs.len() >= 16 * t * ci && ms.len() >= 16 * t * co);
        assert!(self.u.len() >= 16 * ci * co && co.is_multiple_of(8));
        for xi in 0..16 {
            // the t rows of V[ξ] (`ci` values, 16·ci apart), `ci` rows of
            // U[ξ] (`co` apart), into M[ξ] (16·co apart)
            let block = Block {
                a: Lhs {
                    at: vs[xi * ci..].as_ptr(),
                    row: 16 * ci,
                    k: 1,
                },
                b: (self.u[xi * ci * co..].as_ptr(), co),
                c: (ms[xi * co..].as_mut_ptr(), 16 * co),
                k: ci,
                accumulate: false,
            };
            // SAFETY: the plan's ISA runs here (`on`); t rows of V[ξ] and
            // M[ξ], and `ci` rows of U[ξ], `co` columns each: within the
            // slices (asserted above).
            block.run(t, co, self.isa);
        }
    }

    /// `Aᵀ·M·A` of each tile in `tiles` (plus the bias with
    /// `Write::Overwrite`), into `by_pos` (`[position][chan_out]`), the
    /// outputs inside the plane only.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn transform_output(
        &self,
        ms: &[f32],
        tiles: Range<usize>,
        by_pos: &mut [f32],
        write: Write,
    ) {
        let (op, tw) = (&self.tiles.op, self.tiles.tw);
        let co = op.chan_out;
        assert!(tiles.end <= self.tiles.count());
        assert!(ms.len() >= 16 * tiles.len() * co && by_pos.len() >= op.out_plane() * co);
        let (mut ty, mut tx) = (tiles.start / tw, tiles.start % tw);
        for tile in 0..tiles.len() {
            // the outputs of the tile inside the plane: 2×2, or fewer at
            // the bottom and right edges of odd sizes
            let (ny, nx) = ((op.h_out - 2 * ty).min(2), (op.w_out - 2 * tx).min(2));
            // SAFETY: tile < tiles.len(), ξ < 16, c0 + 8 ≤ co: within ms;
            // positions (2·ty + dy)·w_out + 2·tx + dx for dy < ny, dx < nx
            // are in the plane, c0 + 8 ≤ co: within by_pos (asserted).
            let src = ms.as_ptr().add(tile * 16 * co);
            let dst = by_pos.as_mut_ptr().add((2 * ty * op.w_out + 2 * tx) * co);
            for c0 in (0..co).step_by(8) {
                let m: [__m256; 16] =
                    std::array::from_fn(|k| unsafe { _mm256_loadu_ps(src.add(k * co + c0)) });
                // Aᵀ·M: two rows
                let mut s = [_mm256_setzero_ps(); 8];
                for j in 0..4 {
                    s[j] = _mm256_add_ps(_mm256_add_ps(m[j], m[4 + j]), m[8 + j]);
                    s[4 + j] = _mm256_sub_ps(_mm256_sub_ps(m[4 + j], m[8 + j]), m[12 + j]);
                }
                let bias = match write {
                    Write::Overwrite => _mm256_loadu_ps(self.b.as_ptr().add(c0)),
                    Write::Accumulate => _mm256_setzero_ps(),
                };
                for dy in 0..ny {
                    let s = &s[4 * dy..4 * dy + 4];
                    // ·A: two columns
                    let y = [
                        _mm256_add_ps(_mm256_add_ps(s[0], s[1]), s[2]),
                        _mm256_sub_ps(_mm256_sub_ps(s[1], s[2]), s[3]),
                    ];
                    for (dx, y) in y.iter().take(nx).enumerate() {
                        let at = (dy * op.w_out + dx) * co + c0;
                        _mm256_storeu_ps(dst.add(at), _mm256_add_ps(*y, bias));
                    }
                }
            }
            tx += 1;
            if tx == tw {
                (ty, tx) = (ty + 1, 0);
            }
        }
    }
}

/// Tiles per group for `channels` input and output channels together:
/// `V` and `M` of a group take `16·channels` values a tile, kept to about
/// 32 KiB (the L1 cache holds 32 to 48), in whole register blocks.
fn group_for(channels: usize) -> usize {
    let tiles = 8192 / (16 * channels).max(1);
    (tiles / ROWS).max(1) * ROWS
}

/// `G·g·Gᵀ` of each 3×3 kernel `g = w[o][i]` (`w` in PyTorch's layout,
/// `o × i × 3 × 3`), as `U[ξ][i][o]`. For each input channel, its `o`
/// kernels are first gathered by tap (`[tap][o]`), so that every step
/// after runs along the output channels, as `U`'s rows do, and vectorises
/// (one kernel at a time, this took 1.6% of ResNet's training step).
fn transform_kernels(w: &[f32], (o, i): (usize, usize)) -> Vec<f32> {
    let mut u = vec![0.0f32; 16 * i * o];
    // one input channel's kernels by tap, and G·g by (row, column)
    let (mut taps, mut gg) = (vec![0.0f32; 9 * o], vec![0.0f32; 12 * o]);
    // G applied along the output channels: out[0..4] from a, b, c:
    // [a, (a + b + c)/2, (a − b + c)/2, c]
    let g = |[a, b, c]: [&[f32]; 3], out: [&mut [f32]; 4]| {
        let [o0, o1, o2, o3] = out;
        for (j, ((a, b), c)) in a.iter().zip(b).zip(c).enumerate() {
            o0[j] = *a;
            o1[j] = 0.5 * (a + b + c);
            o2[j] = 0.5 * (a - b + c);
            o3[j] = *c;
        }
    };
    for ci in 0..i {
        for co in 0..o {
            for (k, v) in w[(co * i + ci) * 9..][..9].iter().enumerate() {
                taps[k * o + co] = *v;
            }
        }
        let tap = |k: usize| &taps[k * o..(k + 1) * o];
        for x in 0..3 {
            // G·g: column x of the kernel, into rows 0..4 of column x
            let mut rows = gg.chunks_mut(o).skip(x).step_by(3);
            let out = std::array::from_fn(|_| rows.next().expect("4 rows of 3 columns"));
            g([tap(x), tap(3 + x), tap(6 + x)], out);
        }
        for r in 0..4 {
            // (G·g)·Gᵀ: row r, into U[4r..4r + 4][ci]
            let row = |x: usize| &gg[(3 * r + x) * o..(3 * r + x + 1) * o];
            let mut dst = u.chunks_mut(o).skip(4 * r * i + ci).step_by(i);
            let out = std::array::from_fn(|_| dst.next().expect("16 rows of U"));
            g([row(0), row(1), row(2)], out);
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::super::tests::CASES;
    use super::*;
    use crate::ops::conv2d::direct::{reference, test_values};

    #[test]
    fn matches_the_definition_for_many_shapes() {
        for (isa, (ci, co, h, w, p)) in Isa::all().flat_map(|isa| CASES.map(|c| (isa, c))) {
            let op = Conv2DOp::new(1, ci, co, (h, w), (3, 3), 1, p).unwrap();
            let x = test_values(ci * h * w, 1);
            let wt = test_values(co * op.patch_len(), 2);
            let b = test_values(co, 3);
            let plan = Plan::on(isa, &op, &wt, Some(&b)).unwrap();
            let mut scratch = vec![0.0; plan.padded_len()];
            // a canary past the end: the transforms store whole registers
            let len = co * op.out_plane();
            let mut buf = vec![f32::NAN; len + 64];
            let (y, canary) = buf.split_at_mut(len);
            plan.run(&x, y, &mut scratch, Write::Overwrite);
            assert!(canary.iter().all(|c| c.is_nan()), "{op:?} {isa:?}");
            let want = reference(&op, &x, &wt, &b);
            let tol = 1e-6 * (ci * 9) as f64;
            for (i, (g, r)) in y.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - r).abs() < tol,
                    "{op:?} {isa:?} at {i}: {g} vs {r}"
                );
            }
            // accumulate, with the scratch (and its padding) reused
            plan.run(&x, y, &mut scratch, Write::Accumulate);
            for (i, (g, r)) in y.iter().zip(&want).enumerate() {
                let bias = b[i / op.out_plane()] as f64;
                let r = 2.0 * r - bias;
                assert!(
                    (*g as f64 - r).abs() < 2.0 * tol,
                    "{op:?} {isa:?} accumulate at {i}"
                );
            }
        }
    }

    #[test]
    fn wrong_sizes_are_no_plan() {
        let op = Conv2DOp::new(1, 16, 16, (8, 8), (3, 3), 1, 1).unwrap();
        let w = vec![0.0; op.chan_out * op.patch_len()];
        assert_eq!(
            Plan::on(Isa::Avx2, &op, &w, None).is_some(),
            Isa::Avx2.runs_here()
        );
        assert!(Plan::on(Isa::Avx2, &op, &w[1..], None).is_none());
        assert!(Plan::on(Isa::Avx2, &op, &w, Some(&[0.0; 3])).is_none());
    }
}
