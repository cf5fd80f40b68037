//! Small helpers shared by the CPU kernels.
use dfdx::prelude::*;

/// The logical contents of a CPU tensor, row-major (a plain copy; a strided
/// tensor is made contiguous first).
pub(crate) fn to_vec<S: Shape, E: Dtype>(t: &Tensor<S, E, Cpu>) -> Result<Vec<E>, CpuError> {
    let t = t.clone().try_contiguous()?;
    let mut buf = vec![E::default(); t.shape().num_elements()];
    t.copy_into(&mut buf);
    Ok(buf)
}

/// Whether `v` is NaN, for any dtype.
#[allow(clippy::eq_op)]
#[inline(always)]
pub(crate) fn is_nan<E: PartialEq + Copy>(v: E) -> bool {
    v != v
}

/// `dst (m×n) = op(a) · op(b)` (or `+=` with `accumulate`), all row-major.
///
/// `a` is `m×k`, or `k×m` when `a_t` (then `op(a) = aᵀ`); `b` is `k×n`, or
/// `n×k` when `b_t`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<E: Dtype>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [E],
    a: &[E],
    a_t: bool,
    b: &[E],
    b_t: bool,
    accumulate: bool,
    parallel: bool,
) {
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(E::default());
        }
        return;
    }
    let (a_rs, a_cs) = if a_t {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if b_t {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let par = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee every index the strides reach is in
    // bounds: a reaches (m-1)·a_rs + (k-1)·a_cs < m·k, likewise b and dst.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            E::ONE,
            E::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_all_transposes() {
        // a = [[1,2,3],[4,5,6]] (2×3), b = [[1,0],[0,1],[1,1]] (3×2)
        let a = [1.0f32, 2., 3., 4., 5., 6.];
        let at = [1.0f32, 4., 2., 5., 3., 6.];
        let b = [1.0f32, 0., 0., 1., 1., 1.];
        let bt = [1.0f32, 0., 1., 0., 1., 1.];
        let want = [4.0f32, 5., 10., 11.];
        for (aa, a_t) in [(&a, false), (&at, true)] {
            for (bb, b_t) in [(&b, false), (&bt, true)] {
                let mut d = [0.0f32; 4];
                gemm(2, 2, 3, &mut d, aa, a_t, bb, b_t, false, false);
                assert_eq!(d, want);
                gemm(2, 2, 3, &mut d, aa, a_t, bb, b_t, true, true);
                assert_eq!(d, want.map(|x| 2.0 * x));
            }
        }
    }
}
