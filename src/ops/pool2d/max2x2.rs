//! The 2×2, stride-2 max pool without padding (LeNet's and most CNNs'), a
//! plane at a time: a scalar loop for every dtype, and for f32 an AVX2 loop
//! of 8 outputs per step (a row's last step as short as the row needs),
//! which returns the same bits.
//!
//! Each window's candidates are compared in row-major order (top left, top
//! right, bottom left, bottom right), as the general `max_plane` visits
//! them. With the argmax (for a backward pass) the first maximum wins and the
//! first NaN wins over numbers, as in PyTorch. Without it the value is the
//! larger of each pair of the top row, of the bottom row, then of the two
//! (NaN if any is NaN).
use super::Pool2DOp;
use crate::ops::cpu_util::{as_f32, as_f32_mut, is_nan};
use dfdx::prelude::Dtype;

/// The larger of `a` and `b`, `b` if it is NaN (so NaN propagates).
#[inline(always)]
fn max<E: Dtype>(a: E, b: E) -> E {
    if b > a || is_nan(b) {
        b
    } else {
        a
    }
}

/// Max-pools one plane into `y`, and into `arg` the flat index of each
/// window's maximum (see the module docs).
pub(super) fn max_plane_2x2<E: Dtype>(op: &Pool2DOp, x: &[E], y: &mut [E], arg: &mut [u32]) {
    if simd::plane_with_arg(op, x, y, arg) {
        return;
    }
    let (w, wo) = (op.w_in, op.w_out);
    for oy in 0..op.h_out {
        let r0 = 2 * oy * w;
        let (top, bot) = (&x[r0..r0 + 2 * wo], &x[r0 + w..r0 + w + 2 * wo]);
        for ox in 0..wo {
            let (t, b) = (&top[2 * ox..2 * ox + 2], &bot[2 * ox..2 * ox + 2]);
            let mut k = 0u32;
            let mut bv = t[0];
            for (j, v) in [(1u32, t[1]), (2, b[0]), (3, b[1])] {
                if v > bv || is_nan(v) && !is_nan(bv) {
                    k = j;
                    bv = v;
                }
            }
            y[oy * wo + ox] = bv;
            let i = r0 + 2 * ox + (k & 1) as usize + (k >> 1) as usize * w;
            arg[oy * wo + ox] = i as u32;
        }
    }
}

/// Max-pools one plane into `y`, without the argmax (a forward pass without
/// a tape).
pub(super) fn max_plane_2x2_values<E: Dtype>(op: &Pool2DOp, x: &[E], y: &mut [E]) {
    if simd::plane_values(op, x, y) {
        return;
    }
    let (w, wo) = (op.w_in, op.w_out);
    for oy in 0..op.h_out {
        let r0 = 2 * oy * w;
        let (top, bot) = (&x[r0..r0 + 2 * wo], &x[r0 + w..r0 + w + 2 * wo]);
        for (ox, yv) in y[oy * wo..(oy + 1) * wo].iter_mut().enumerate() {
            let (t, b) = (&top[2 * ox..2 * ox + 2], &bot[2 * ox..2 * ox + 2]);
            *yv = max(max(t[0], t[1]), max(b[0], b[1]));
        }
    }
}

/// The AVX2 planes: each returns whether it pooled the plane (`false` when
/// `E` is not f32 or the CPU lacks AVX2, and the scalar loop runs instead).
mod simd {
    use super::*;

    /// Whether `op` fits the plane slices (the AVX2 code reads and writes
    /// through pointers, so this is checked, not assumed).
    fn fits(op: &Pool2DOp, x: usize, y: usize) -> bool {
        op.kernel == 2
            && op.stride == 2
            && op.padding == 0
            && 2 * op.w_out <= op.w_in
            && 2 * op.h_out <= op.h_in
            && x >= op.h_in * op.w_in
            && y >= op.h_out * op.w_out
    }

    pub(super) fn plane_values<E: Dtype>(op: &Pool2DOp, x: &[E], y: &mut [E]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let (Some(x), Some(y)) = (as_f32(x), as_f32_mut(y)) {
            if fits(op, x.len(), y.len()) && crate::ops::cpu_util::has_avx2() {
                // SAFETY: the CPU has AVX2, and `op` fits the slices
                // (both checked just above).
                unsafe { avx2::plane_values(op, x, y) };
                return true;
            }
        }
        let _ = (op, x, y, fits);
        false
    }

    pub(super) fn plane_with_arg<E: Dtype>(
        op: &Pool2DOp,
        x: &[E],
        y: &mut [E],
        arg: &mut [u32],
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let (Some(x), Some(y)) = (as_f32(x), as_f32_mut(y)) {
            // the indices are computed in i32 lanes
            let small = i32::try_from(op.h_in * op.w_in).is_ok();
            let fit = fits(op, x.len(), y.len()) && arg.len() >= op.h_out * op.w_out;
            if small && fit && crate::ops::cpu_util::has_avx2() {
                // SAFETY: the CPU has AVX2, `op` fits the slices and a
                // plane's indices fit in i32 (all checked just above).
                unsafe { avx2::plane_with_arg(op, x, y, arg) };
                return true;
            }
        }
        let _ = (op, x, y, arg, fits);
        false
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use super::Pool2DOp;
        use std::arch::x86_64::*;

        /// `max(a, b)` of the module docs in 8 lanes: `b` where `b > a` or
        /// `b` is NaN, else `a` (`vmaxps(b, a)` returns `a` when either is
        /// NaN, so `b`'s NaN is blended back in).
        #[inline]
        #[target_feature(enable = "avx2")]
        fn max(a: __m256, b: __m256) -> __m256 {
            let m = _mm256_max_ps(b, a);
            _mm256_blendv_ps(m, b, _mm256_cmp_ps::<_CMP_UNORD_Q>(b, b))
        }

        /// Lanes below `n` set (`n` from 0 to 8).
        #[inline]
        #[target_feature(enable = "avx2")]
        fn lanes_below(n: usize) -> __m256i {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }

        /// The even and the odd values of the `2·n` at `p` (`n` ≤ 8
        /// outputs), each in the order of outputs 0, 1, 4, 5, 2, 3, 6, 7
        /// (`unpermute` restores it). Lanes past `n` hold what follows in
        /// memory if `room` values are readable at `p`, else zero.
        ///
        /// # Safety
        /// `p` points at `max(2·n, room)` readable f32.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn split(p: *const f32, n: usize, room: usize) -> (__m256, __m256) {
            let (lo, hi) = if room >= 16 {
                (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
            } else {
                // masked loads read nothing past the mask
                let lo = _mm256_maskload_ps(p, lanes_below(2 * n));
                (
                    lo,
                    _mm256_maskload_ps(p.add(8), lanes_below((2 * n).saturating_sub(8))),
                )
            };
            (
                _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
                _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
            )
        }

        /// Outputs 0, 1, 4, 5, 2, 3, 6, 7 back into order 0..8.
        #[inline]
        #[target_feature(enable = "avx2")]
        fn unpermute(v: __m256i) -> __m256i {
            _mm256_permute4x64_epi64::<0b11_01_10_00>(v)
        }

        /// Stores the first `n` lanes of `v` (in `split`'s order) at `p`,
        /// all 8 if `room` values are writable there (the rest is written
        /// again later). AVX2's masked store is slow on AMD's cores, so a
        /// short end goes through the stack.
        ///
        /// # Safety
        /// `p` points at `max(n, room)` writable 4-byte values.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn store(p: *mut i32, v: __m256i, n: usize, room: usize) {
            let v = unpermute(v);
            if room >= 8 {
                _mm256_storeu_si256(p.cast(), v);
            } else {
                let mut tmp = [0i32; 8];
                _mm256_storeu_si256(tmp.as_mut_ptr().cast(), v);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), p, n);
            }
        }

        /// Calls `step(at, t, n, room, [te, to, be, bo])` for each step of 8
        /// outputs of a plane (fewer, `n`, at a row's end): the first output
        /// `at`, the input index of its window's top left `t`, the outputs
        /// writable from `at` (`room`, this plane's), and the even and odd
        /// values of the top and bottom rows of the windows (`split`'s
        /// order).
        ///
        /// # Safety
        /// The CPU has AVX2, and `op` fits `x` (`fits`).
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn steps(
            op: &Pool2DOp,
            x: &[f32],
            mut step: impl FnMut(usize, usize, usize, usize, [__m256; 4]),
        ) {
            let (w, wo, plane) = (op.w_in, op.w_out, op.h_out * op.w_out);
            for oy in 0..op.h_out {
                let r0 = 2 * oy * w;
                for o in (0..wo).step_by(8) {
                    let n = (wo - o).min(8);
                    let (t, b, at) = (r0 + 2 * o, r0 + w + 2 * o, oy * wo + o);
                    // SAFETY: the rows' reads end at r0 + w + 2·wo ≤
                    // (2·oy + 2)·w ≤ h_in·w ≤ x.len(); beyond that, `split`
                    // reads only within `x`.
                    let (te, to) = split(x.as_ptr().add(t), n, x.len() - t);
                    let (be, bo) = split(x.as_ptr().add(b), n, x.len() - b);
                    step(at, t, n, plane - at, [te, to, be, bo]);
                }
            }
        }

        /// # Safety
        /// The CPU has AVX2, and `op` fits `x` and `y` (`fits`).
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn plane_values(op: &Pool2DOp, x: &[f32], y: &mut [f32]) {
            steps(op, x, |at, _, n, room, [te, to, be, bo]| {
                let v = _mm256_castps_si256(max(max(te, to), max(be, bo)));
                // SAFETY: the writes end at (oy + 1)·wo ≤ y.len(); beyond
                // that, within this plane's outputs (`room`), which later
                // rows write again.
                unsafe { store(y.as_mut_ptr().add(at).cast(), v, n, room) };
            })
        }

        /// # Safety
        /// The CPU has AVX2, `op` fits `x` and `y` (`fits`), `arg` holds a
        /// plane's outputs, and its indices fit in i32.
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn plane_with_arg(
            op: &Pool2DOp,
            x: &[f32],
            y: &mut [f32],
            arg: &mut [u32],
        ) {
            // the column of each lane's window, in `split`'s order of outputs
            let cols = _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
            let (one, w) = (_mm256_set1_epi32(1), op.w_in);
            let wv = _mm256_set1_epi32(w as i32);
            steps(op, x, |at, t, n, room, [te, to, be, bo]| {
                // candidates in row-major order; the first maximum and the
                // first NaN win
                let (mut best, mut k) = (te, _mm256_setzero_ps());
                for (j, v) in [(1, to), (2, be), (3, bo)] {
                    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
                    let best_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(best, best);
                    let take = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_GT_OQ>(v, best),
                        _mm256_andnot_ps(best_nan, nan),
                    );
                    best = _mm256_blendv_ps(best, v, take);
                    k = _mm256_blendv_ps(k, _mm256_castsi256_ps(_mm256_set1_epi32(j)), take);
                }
                // the top left's index + (k & 1) + (k >> 1)·w
                let k = _mm256_castps_si256(k);
                let base = _mm256_add_epi32(_mm256_set1_epi32(t as i32), cols);
                let down = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_srli_epi32::<1>(k), one), wv);
                let idx = _mm256_add_epi32(_mm256_add_epi32(base, _mm256_and_si256(k, one)), down);
                let best = _mm256_castps_si256(best);
                // SAFETY: as in `plane_values`; `arg` is as long as `y`.
                unsafe {
                    store(y.as_mut_ptr().add(at).cast(), best, n, room);
                    store(arg.as_mut_ptr().add(at).cast(), idx, n, room);
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::PoolKind;

    /// The general window loop, for reference: the same comparisons.
    fn reference(op: &Pool2DOp, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
        let n = op.h_out * op.w_out;
        let (mut y, mut arg) = (vec![0.0; n], vec![0; n]);
        super::super::cpu::max_plane(op, x, &mut y, &mut arg);
        (y, arg)
    }

    /// Values with ties, signed zeros and NaN, from a small generator.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                match (s >> 33) % 16 {
                    0 => f32::NAN,
                    1 => -0.0,
                    2 => 0.0,
                    3 => 1.0,
                    _ => ((s >> 40) % 1000) as f32 / 100.0 - 5.0,
                }
            })
            .collect()
    }

    /// Every width from 2 to 40 (rows of 1 to 20 outputs: none, some and
    /// several vectors, with every tail), odd sizes included: the fast rows
    /// equal the general loop bit for bit, argmax included, and the values
    /// alone equal the argmax's values (NaN where it is NaN).
    #[test]
    fn two_by_two_equals_the_general_window_loop() {
        for (h, w) in (2..=40).map(|w| (2 + w % 5, w)) {
            let op = Pool2DOp::new(PoolKind::Max, 1, (h, w), 2, 2, 0).expect("op");
            let x = values(h * w, (h * 100 + w) as u64);
            let (want, want_arg) = reference(&op, &x);
            let n = want.len();
            let (mut y, mut arg) = (vec![7.0; n], vec![u32::MAX; n]);
            max_plane_2x2(&op, &x, &mut y, &mut arg);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want), "{h}x{w}");
            assert_eq!(arg, want_arg, "{h}x{w}");
            let mut values_only = vec![7.0; n];
            max_plane_2x2_values(&op, &x, &mut values_only);
            for (i, (a, e)) in values_only.iter().zip(&want).enumerate() {
                let same = a.to_bits() == e.to_bits() || a.is_nan() && e.is_nan();
                assert!(same, "{h}x{w} at {i}: {a} vs {e}");
            }
        }
    }

    /// f64 takes the scalar loop, with the same results.
    #[test]
    fn f64_takes_the_scalar_rows() {
        let op = Pool2DOp::new(PoolKind::Max, 1, (4, 36), 2, 2, 0).expect("op");
        let x: Vec<f32> = values(4 * 36, 3);
        let (want, want_arg) = reference(&op, &x);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let (mut y, mut arg) = (vec![0.0f64; want.len()], vec![0; want.len()]);
        max_plane_2x2(&op, &x64, &mut y, &mut arg);
        assert_eq!(arg, want_arg);
        for (a, e) in y.iter().zip(&want) {
            assert!(*a == *e as f64 || a.is_nan() && e.is_nan());
        }
    }
}
