//! Small helpers shared by the CPU kernels.
use super::{Lease, Workspace};
use dfdx::prelude::*;

/// The logical contents of a CPU tensor, row-major, copied into a buffer
/// leased from `ws` (a strided tensor is made contiguous first).
pub(crate) fn copy_to_lease<S: Shape, E: Dtype>(
    t: &Tensor<S, E, Cpu>,
    ws: &Workspace,
) -> Result<Lease<E>, CpuError> {
    let t = t.clone().try_contiguous()?;
    let mut buf = ws.lease_any::<E>(t.shape().num_elements());
    t.copy_into(&mut buf);
    Ok(buf)
}

/// The logical contents of a CPU tensor, row-major, in a new `Vec` (for
/// copies kept longer than a call, see [`ParamMemo`](super::memo::ParamMemo)).
pub(crate) fn copy_to_vec<S: Shape, E: Dtype>(t: &Tensor<S, E, Cpu>) -> Result<Vec<E>, CpuError> {
    let t = t.clone().try_contiguous()?;
    let mut buf = vec![E::default(); t.shape().num_elements()];
    t.copy_into(&mut buf);
    Ok(buf)
}

/// A buffer of `len` zeros for an op's output, from the device's allocation
/// cache when that is enabled and holds one of this size (else newly
/// allocated), for the kernel to fill and [`tensor_from_vec`] to hand back:
/// the output is written once, where the tensor will hold it, instead of
/// into a kernel buffer and then copied (at LeNet's batch 1000, 31 MB a
/// pass).
///
/// dfdx 0.13 lends no mutable view of a tensor's storage, but its
/// allocations deref to their `Vec`. The `Vec` is taken out of the
/// allocation and the emptied allocation forgotten: dropping it would file
/// its empty `Vec` in the cache, a new entry every call. Forgetting it
/// leaks no memory (it owns none now), only one count of the cache's `Arc`,
/// which dfdx never frees anyway.
pub(crate) fn output_vec<E: Dtype>(dev: &Cpu, len: usize) -> Result<Vec<E>, CpuError> {
    let mut allocation = Storage::<E>::try_alloc_len(dev, len)?;
    let data = std::mem::take(&mut *allocation);
    std::mem::forget(allocation);
    Ok(data)
}

/// The tensor of shape `shape` holding `data` (from [`output_vec`]), which
/// returns to the device's cache when the tensor is dropped.
pub(crate) fn tensor_from_vec<S: Shape, E: Dtype>(
    dev: &Cpu,
    data: Vec<E>,
    shape: S,
) -> Result<Tensor<S, E, Cpu>, CpuError> {
    dev.try_tensor_from_vec(data, shape)
}

/// `v` as f32 values, when `E` is `f32` (the type of the direct kernels).
pub(crate) fn as_f32<E: Dtype>(v: &[E]) -> Option<&[f32]> {
    (std::any::TypeId::of::<E>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: E is f32 (same TypeId), so the slice's memory is f32s.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) }
    })
}

/// `v` as mutable f32 values, when `E` is `f32`.
pub(crate) fn as_f32_mut<E: Dtype>(v: &mut [E]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<E>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: E is f32 (same TypeId), so the slice's memory is f32s.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), v.len()) }
    })
}

/// Whether this CPU has AVX2 (checked once; `is_x86_feature_detected!` caches).
#[inline]
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name` with `$body`'s signature, which runs `$body` compiled
/// for AVX2 when the CPU has it (its loops then use 256-bit registers) and
/// for the baseline otherwise. `$body` should be `#[inline(always)]`, so that
/// it is compiled into each version. The function may be generic over one
/// dtype `E` or not generic at all.
///
/// ```text
/// avx2_or_baseline!(
///     /// Docs of `scale`.
///     pub(crate) fn scale<E: Dtype>(y: &mut [E], k: E) => scale_body
/// );
/// ```
macro_rules! avx2_or_baseline {
    (
        $(#[$m:meta])*
        $vis:vis fn $name:ident $(<$e:ident: $b0:ident $(+ $b:ident)*>)? ($($arg:ident: $ty:ty),* $(,)?)
        $(-> $ret:ty)? => $body:ident
    ) => {
        $(#[$m])*
        $vis fn $name $(<$e: $b0 $(+ $b)*>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if $crate::ops::cpu_util::has_avx2() {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2 $(<$e: $b0 $(+ $b)*>)? ($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { avx2($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use avx2_or_baseline;

/// Whether `v` is NaN, for any dtype.
#[allow(clippy::eq_op)]
#[inline(always)]
pub(crate) fn is_nan<E: PartialEq + Copy>(v: E) -> bool {
    v != v
}

/// How a `gemm` operand is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Row-major as named: `a` is `m×k`, `b` is `k×n`.
    AsIs,
    /// Row-major transposed: `a` is `k×m`, `b` is `n×k` (the product uses its transpose).
    Transposed,
}

/// Whether `gemm` replaces `dst` or adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// `dst = a · b`.
    Overwrite,
    /// `dst += a · b`.
    Accumulate,
}

/// One operand of `gemm`: its data and how it is stored.
pub(crate) type Operand<'a, E> = (&'a [E], Layout);

/// `dst (m×n) = a · b`, or `+=` with [`Write::Accumulate`], all row-major, on
/// the calling thread;
/// `a` is `m×k` and `b` is `k×n` as used (see [`Layout`] for how each is stored).
pub(crate) fn gemm<E: Dtype>(
    mnk: (usize, usize, usize),
    dst: &mut [E],
    write: Write,
    a: Operand<'_, E>,
    b: Operand<'_, E>,
) {
    gemm_on(gemm::Parallelism::None, mnk, dst, write, a, b)
}

/// [`gemm`] spread over the current rayon pool's threads, as dfdx's
/// `matmul` runs, for a product that is a whole op rather than a piece of
/// one.
pub(crate) fn gemm_parallel<E: Dtype>(
    mnk: (usize, usize, usize),
    dst: &mut [E],
    write: Write,
    a: Operand<'_, E>,
    b: Operand<'_, E>,
) {
    let threads = rayon::current_num_threads();
    gemm_on(gemm::Parallelism::Rayon(threads), mnk, dst, write, a, b)
}

fn gemm_on<E: Dtype>(
    parallelism: gemm::Parallelism,
    (m, n, k): (usize, usize, usize),
    dst: &mut [E],
    write: Write,
    (a, a_layout): Operand<'_, E>,
    (b, b_layout): Operand<'_, E>,
) {
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    let accumulate = write == Write::Accumulate;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(E::default());
        }
        return;
    }
    let (a_rs, a_cs) = match a_layout {
        Layout::AsIs => (k as isize, 1),
        Layout::Transposed => (1, m as isize),
    };
    let (b_rs, b_cs) = match b_layout {
        Layout::AsIs => (n as isize, 1),
        Layout::Transposed => (1, k as isize),
    };
    let (conj_dst, conj_a, conj_b) = (false, false, false);
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
            conj_dst,
            conj_a,
            conj_b,
            parallelism,
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
        for (aa, al) in [(&a, Layout::AsIs), (&at, Layout::Transposed)] {
            for (bb, bl) in [(&b, Layout::AsIs), (&bt, Layout::Transposed)] {
                let mut d = [0.0f32; 4];
                gemm((2, 2, 3), &mut d, Write::Overwrite, (aa, al), (bb, bl));
                assert_eq!(d, want);
                gemm((2, 2, 3), &mut d, Write::Accumulate, (aa, al), (bb, bl));
                assert_eq!(d, want.map(|x| 2.0 * x));
            }
        }
    }
}
