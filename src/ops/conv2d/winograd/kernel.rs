//! The matrix products of the Winograd kernels, in register blocks of
//! [`ROWS`] rows and 16 columns with AVX2 and FMA, or 32 with AVX-512.
use crate::ops::conv2d::direct::Isa;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows per register block (12 accumulators of 8 lanes, with 2 columns'
/// loads and a broadcast: 15 of the 16 registers).
pub(super) const ROWS: usize = 6;

/// Where a block reads its left operand: the first value, and the strides
/// of its rows and of the sum's index `k` (either may be 1).
#[derive(Clone, Copy)]
pub(super) struct Lhs {
    pub(super) at: *const f32,
    pub(super) row: usize,
    pub(super) k: usize,
}

/// A product `C (+)= A·B`: rows of `A` (see [`Lhs`]) times `k` rows of
/// `B` (`ldb` apart) into the columns of `C` (rows `ldc` apart), added to
/// what `C` holds when `accumulate`.
#[derive(Clone, Copy)]
pub(super) struct Block {
    pub(super) a: Lhs,
    pub(super) b: (*const f32, usize),
    pub(super) c: (*mut f32, usize),
    pub(super) k: usize,
    pub(super) accumulate: bool,
}

impl Block {
    /// Runs the product for `rows` rows and `width` columns (a multiple of
    /// 8): for each strip of the widest columns that `isa`'s registers
    /// hold (32 or 16 with AVX-512, 16 or 8 with AVX2; a last strip of 8
    /// runs on AVX2 on either), every row in
    /// register blocks of [`ROWS`], one call per strip (a call per block
    /// cost a fifth of the products' time with 16 input channels).
    ///
    /// # Safety
    /// The CPU runs `isa` (AVX2 and FMA, and AVX-512 for `Isa::Avx512`);
    /// `a` holds `rows` rows of `k` values at its strides, `b` holds `k`
    /// rows of `width` values, and `c` has room for `rows` rows of them.
    pub(super) unsafe fn run(&self, rows: usize, width: usize, isa: Isa) {
        let mut c0 = 0;
        while c0 < width {
            let strip = &Block {
                b: (self.b.0.add(c0), self.b.1),
                c: (self.c.0.add(c0), self.c.1),
                ..*self
            };
            let left = width - c0;
            c0 += match isa {
                Isa::Avx512 if left >= 32 => {
                    strip512::<2>(strip, rows);
                    32
                }
                Isa::Avx512 if left >= 16 => {
                    strip512::<1>(strip, rows);
                    16
                }
                _ if left >= 16 => {
                    strip_avx2::<2>(strip, rows);
                    16
                }
                _ => {
                    strip_avx2::<1>(strip, rows);
                    8
                }
            };
        }
    }

    /// The block of rows `r0..` of this product.
    ///
    /// # Safety
    /// Row `r0` is within `a` and `c`.
    #[inline]
    unsafe fn rows_from(&self, r0: usize) -> Self {
        Self {
            a: Lhs {
                at: self.a.at.add(r0 * self.a.row),
                ..self.a
            },
            c: (self.c.0.add(r0 * self.c.1), self.c.1),
            ..*self
        }
    }
}

/// Every row of a strip of `8·NV` columns, in blocks of [`ROWS`].
macro_rules! strip {
    ($name:ident, $kernel:ident, $features:literal) => {
        /// Every row of a strip (see [`Block::run`]), in register blocks
        /// of [`ROWS`] rows and a last one of fewer.
        ///
        /// # Safety
        /// As [`Block::run`], for the kernel's columns and features.
        #[target_feature(enable = $features)]
        unsafe fn $name<const NV: usize>(strip: &Block, rows: usize) {
            let mut r0 = 0;
            while r0 + ROWS <= rows {
                $kernel::<ROWS, NV>(&strip.rows_from(r0));
                r0 += ROWS;
            }
            if r0 == rows {
                return;
            }
            let last = &strip.rows_from(r0);
            match rows - r0 {
                1 => $kernel::<1, NV>(last),
                2 => $kernel::<2, NV>(last),
                3 => $kernel::<3, NV>(last),
                4 => $kernel::<4, NV>(last),
                5 => $kernel::<5, NV>(last),
                _ => unreachable!("1 to {} rows left", ROWS - 1),
            }
        }
    };
}

strip!(strip_avx2, block, "avx2,fma");
strip!(strip512, block512, "avx512f");

/// See [`Block`]: `R` rows, `NV` registers of 8 columns.
///
/// # Safety
/// As [`Block::run`], for `8·NV` columns on AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const R: usize, const NV: usize>(blk: &Block) {
    let Lhs { at: a, row, k: ka } = blk.a;
    let ((b, ldb), (c, ldc)) = (blk.b, blk.c);
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    if blk.accumulate {
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row r < R of c, columns below 8·NV.
                *acc = _mm256_loadu_ps(c.add(r * ldc + 8 * v));
            }
        }
    }
    for kk in 0..blk.k {
        // SAFETY: row kk of b, columns below 8·NV.
        let bv: [__m256; NV] =
            std::array::from_fn(|v| unsafe { _mm256_loadu_ps(b.add(kk * ldb + 8 * v)) });
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row r < R of a, value kk < k.
            let av = _mm256_broadcast_ss(&*a.add(r * row + kk * ka));
            for (acc, bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm256_fmadd_ps(av, *bv, *acc);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, acc) in acc.iter().enumerate() {
            // SAFETY: row r < R of c, columns below 8·NV.
            _mm256_storeu_ps(c.add(r * ldc + 8 * v), *acc);
        }
    }
}

/// See [`Block`]: `R` rows, `NV` registers of 16 columns.
///
/// # Safety
/// As [`Block::run`], for `16·NV` columns on AVX-512.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block512<const R: usize, const NV: usize>(blk: &Block) {
    let Lhs { at: a, row, k: ka } = blk.a;
    let ((b, ldb), (c, ldc)) = (blk.b, blk.c);
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    if blk.accumulate {
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row r < R of c, columns below 16·NV.
                *acc = _mm512_loadu_ps(c.add(r * ldc + 16 * v));
            }
        }
    }
    for kk in 0..blk.k {
        // SAFETY: row kk of b, columns below 16·NV.
        let bv: [__m512; NV] =
            std::array::from_fn(|v| unsafe { _mm512_loadu_ps(b.add(kk * ldb + 16 * v)) });
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row r < R of a, value kk < k.
            let av = _mm512_set1_ps(*a.add(r * row + kk * ka));
            for (acc, bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm512_fmadd_ps(av, *bv, *acc);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, acc) in acc.iter().enumerate() {
            // SAFETY: row r < R of c, columns below 16·NV.
            _mm512_storeu_ps(c.add(r * ldc + 16 * v), *acc);
        }
    }
}
