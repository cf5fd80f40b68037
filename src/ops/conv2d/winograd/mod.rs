//! Winograd's minimal filtering (Lavin and Gray, 2016) for 3×3
//! convolutions of stride 1, f32 with AVX2 and FMA (and AVX-512 for the
//! matrix products): the forward pass (and the input gradient, a
//! convolution too) by F(2×2, 3×3) in [`Plan`], and the weight gradient by
//! F(3×3, 2×2) in [`GradPlan`].
//!
//! Each 2×2 block of outputs (a *tile*) comes from the 4×4 patch `d` of
//! input around it. With `V = Bᵀ·d·B` the patch transformed and `U =
//! G·g·Gᵀ` the kernel `g` transformed, the 16 products `U ⊙ V` summed over
//! the input channels give `M`, and `Aᵀ·M·A` the four outputs. The sum
//! over the channels is, for each of the 16 positions `ξ` of the
//! transformed patch, a matrix product `M[ξ] = V[ξ]·U[ξ]` (tiles × input
//! channels times input channels × output channels). That takes 16
//! multiplications per tile and pair of channels where the definition
//! takes 36: 2.25 times fewer, at the cost of the transforms, which are
//! additions. The weight gradient takes the same patches, with a tile of
//! the output gradient as the kernel and the 3×3 weight gradient as the
//! output, and sums over the tiles instead.
//!
//! The transforms run on 8 channels at once, so each sample is first
//! turned from planes into positions (`[row][column][channel]`, padded).
//! The rounding differs from the definition's order of sums by a few units
//! in the last place of the largest products (tested against it in f64).
use super::direct::Isa;
use super::transpose::transpose8;
use super::Conv2DOp;
use crate::ops::tag_of;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::ops::Range;

mod forward;
mod grad;
mod kernel;

pub(crate) use forward::Plan;
pub(crate) use grad::GradPlan;

/// Whether Winograd's kernels serve `op` on `isa`: 3×3 kernels of stride 1,
/// both channel counts multiples of 8 (the transforms take 8 channels at a
/// time, with AVX2; the products run on `isa`'s widest registers), and an
/// input and output of at least one position.
fn serves(op: &Conv2DOp, isa: Isa) -> bool {
    (op.kh, op.kw, op.stride) == (3, 3, 1)
        && op.chan_in.is_multiple_of(8)
        && op.chan_out.is_multiple_of(8)
        && op.chan_in > 0
        && op.chan_out > 0
        && op.h_in > 0
        && op.w_in > 0
        && op.h_out > 0
        && op.w_out > 0
        && isa.runs_here()
}

/// One sample's tiles: the sizes, and the geometry of the padded input by
/// position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tiles {
    /// The sizes, for a batch of one.
    op: Conv2DOp,
    /// Tiles down and across: `⌈h_out / 2⌉` and `⌈w_out / 2⌉`.
    th: usize,
    tw: usize,
    /// The padded input's positions down and across: `2·th + 2`, `2·tw + 2`.
    hp: usize,
    wp: usize,
}

impl Tiles {
    /// The tiles of `op` (for any batch).
    fn new(op: &Conv2DOp) -> Self {
        let (th, tw) = (op.h_out.div_ceil(2), op.w_out.div_ceil(2));
        Self {
            op: Conv2DOp { batch: 1, ..*op },
            th,
            tw,
            hp: 2 * th + 2,
            wp: 2 * tw + 2,
        }
    }

    /// Tiles of one sample.
    fn count(&self) -> usize {
        self.th * self.tw
    }

    /// Elements of the padded input by position.
    fn input_len(&self) -> usize {
        self.hp * self.wp * self.op.chan_in
    }

    /// A workspace tag for a scratch that starts with the padded input:
    /// a buffer leased under it again still holds zeros in its padding.
    fn tag(&self, what: &str) -> u64 {
        tag_of((self, what))
    }

    /// One sample `x` (planes) into the interior of `xp` (the padded input
    /// by position).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn sample_to_positions(&self, x: &[f32], xp: &mut [f32]) {
        let op = &self.op;
        let (c, h, w) = (op.chan_in, op.h_in, op.w_in);
        assert!(op.padding + h <= self.hp && op.padding + w <= self.wp);
        assert!(xp.len() >= self.input_len());
        to_positions(x, (c, h, w), (op.padding, self.wp), xp);
    }

    /// `V = Bᵀ·d·B` of the 4×4 patch `d` of each tile in `tiles`, into
    /// `vs`: the `chan_in` values of tile `tiles.start + n` and position ξ
    /// at `n·strides.0 + ξ·strides.1` (`[tile][ξ][channel]` for the forward
    /// pass, the 16 stores of a tile close together; `[ξ][tile][channel]`
    /// for the weight gradient, each ξ's tiles in a row).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn transform_input(
        &self,
        xp: &[f32],
        tiles: Range<usize>,
        vs: &mut [f32],
        strides: (usize, usize),
    ) {
        let c = self.op.chan_in;
        assert!(tiles.end <= self.count() && !tiles.is_empty());
        let last = (tiles.len() - 1) * strides.0 + 15 * strides.1 + c;
        assert!(xp.len() >= self.input_len() && vs.len() >= last);
        assert!(strides.0 >= c && strides.1 >= c);
        // patch value (i, j) of a tile, from the patch's first
        let at: [usize; 16] = std::array::from_fn(|k| ((k / 4) * self.wp + k % 4) * c);
        let (mut ty, mut tx) = (tiles.start / self.tw, tiles.start % self.tw);
        for tile in 0..tiles.len() {
            // SAFETY: rows 2·ty + i < hp and columns 2·tx + j < wp (hp =
            // 2·th + 2, wp = 2·tw + 2, ty < th, tx < tw), channels c0..c0 +
            // 8 ≤ c: within xp; tile < tiles.len(), ξ < 16, c0 + 8 ≤ c:
            // within vs (the last store ends at `last`, asserted above).
            let src = xp.as_ptr().add((2 * ty * self.wp + 2 * tx) * c);
            let dst = vs.as_mut_ptr().add(tile * strides.0);
            for c0 in (0..c).step_by(8) {
                let d: [__m256; 16] =
                    std::array::from_fn(|k| unsafe { _mm256_loadu_ps(src.add(at[k] + c0)) });
                // Bᵀ·d: rows
                let mut e = [_mm256_setzero_ps(); 16];
                for j in 0..4 {
                    e[j] = _mm256_sub_ps(d[j], d[8 + j]);
                    e[4 + j] = _mm256_add_ps(d[4 + j], d[8 + j]);
                    e[8 + j] = _mm256_sub_ps(d[8 + j], d[4 + j]);
                    e[12 + j] = _mm256_sub_ps(d[4 + j], d[12 + j]);
                }
                // ·B: columns
                for i in 0..4 {
                    let e = &e[4 * i..4 * i + 4];
                    let v = [
                        _mm256_sub_ps(e[0], e[2]),
                        _mm256_add_ps(e[1], e[2]),
                        _mm256_sub_ps(e[2], e[1]),
                        _mm256_sub_ps(e[1], e[3]),
                    ];
                    for (j, v) in v.iter().enumerate() {
                        _mm256_storeu_ps(dst.add((4 * i + j) * strides.1 + c0), *v);
                    }
                }
            }
            tx += 1;
            if tx == self.tw {
                (ty, tx) = (ty + 1, 0);
            }
        }
    }
}

/// `x` (`c` planes of `h × w`, `c` a multiple of 8) into positions of
/// `xp`: value `(ch, iy, ix)` at `((iy + p)·wp + ix + p)·c + ch`. Eight
/// channels and eight columns at a time through the registers; the rest
/// of `xp` is left as it is.
///
/// # Safety
/// The CPU has AVX2.
///
/// # Panics
/// If `c` is not a multiple of 8, or a slice is too short.
#[target_feature(enable = "avx2")]
unsafe fn to_positions(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    (p, wp): (usize, usize),
    xp: &mut [f32],
) {
    assert!(c.is_multiple_of(8) && x.len() >= c * h * w && p + w <= wp);
    let mask = lane_mask(w.min(8));
    // blocks of 8 columns; the last one ends at the row's end,
    // overlapping the one before (the same values written twice), or
    // holds all of a row narrower than 8 (a masked load)
    let starts = (0..w.saturating_sub(8))
        .step_by(8)
        .chain([w.saturating_sub(8)]);
    for c0 in (0..c).step_by(8) {
        for iy in 0..h {
            for x0 in starts.clone() {
                let r: [__m256; 8] = std::array::from_fn(|i| {
                    let at = x[((c0 + i) * h + iy) * w + x0..].as_ptr();
                    // SAFETY: min(8, w) values of row iy of channel c0 + i
                    // from column x0 ≤ w − min(8, w).
                    unsafe {
                        if w >= 8 {
                            _mm256_loadu_ps(at)
                        } else {
                            _mm256_maskload_ps(at, mask)
                        }
                    }
                });
                let cols = transpose8(r);
                for (j, v) in cols.iter().take(w.min(8)).enumerate() {
                    let at = ((iy + p) * wp + x0 + j + p) * c + c0;
                    _mm256_storeu_ps(xp[at..at + 8].as_mut_ptr(), *v);
                }
            }
        }
    }
}

/// A mask of the first `n ≤ 8` lanes, for `_mm256_maskload_ps`.
#[target_feature(enable = "avx2")]
fn lane_mask(n: usize) -> __m256i {
    let lanes: [i32; 8] = std::array::from_fn(|i| if i < n { -1 } else { 0 });
    // SAFETY: 8 i32 values.
    unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes for the tests, `(chan_in, chan_out, h, w, padding)`: even and
    /// odd sizes, rows narrower than 8, wider than 8 but not a multiple,
    /// and ResNet's.
    pub(super) const CASES: [(usize, usize, usize, usize, usize); 8] = [
        (16, 16, 28, 28, 1),
        (16, 32, 14, 14, 1),
        (64, 64, 7, 7, 1),
        (8, 8, 1, 1, 1),
        (8, 24, 5, 9, 1),
        (24, 8, 12, 3, 0),
        (8, 40, 11, 17, 2),
        (32, 16, 4, 6, 1),
    ];

    #[test]
    fn serves_only_what_it_can() {
        for (ci, co, k, s) in [
            (3, 16, 3, 1),
            (16, 12, 3, 1),
            (16, 16, 5, 1),
            (16, 16, 3, 2),
        ] {
            let op = Conv2DOp::new(1, ci, co, (8, 8), (k, k), s, 1).unwrap();
            assert!(!serves(&op, Isa::Avx2), "{op:?}");
        }
        let op = Conv2DOp::new(1, 16, 16, (8, 8), (3, 3), 1, 1).unwrap();
        for isa in [Isa::Avx2, Isa::Avx512] {
            assert_eq!(serves(&op, isa), isa.runs_here());
        }
    }
}
