//! The rectified sum `max(a + b, 0)` on the CPU, with a tape: the end of a
//! residual block in one op.
//!
//! Written as `relu(a + b)`, the sum is a tensor of its own: dfdx adds on one
//! thread (and in its backward pass walks both gradients one strided element
//! at a time), the rectifier copies the sum before rectifying it, and the
//! backward pass allocates and zero-fills the sum's gradient only to pass it
//! on. Here the forward pass is one parallel pass over copies of `a` and `b`
//! that keeps one byte per element (whether the sum was positive), and the
//! backward pass adds `gy` where it was into `a`'s gradient, then into
//! `b`'s: the same values, bit for bit, as the two ops.
use super::cpu::BLOCK;
use crate::ops::cpu_util::{avx2_or_baseline, output_vec, tensor_from_vec};
use dfdx::prelude::*;
use rayon::prelude::*;

/// `y = max(y + b, 0)` and `mask = (y + b > 0)`, elementwise.
#[inline(always)]
fn forward_body<E: Dtype>(y: &mut [E], b: &[E], mask: &mut [u8]) {
    for ((v, b), m) in y.iter_mut().zip(b).zip(mask.iter_mut()) {
        let s = *v + *b;
        let positive = s > E::default();
        *m = positive as u8;
        *v = if positive { s } else { E::default() };
    }
}

avx2_or_baseline!(fn forward<E: Dtype>(y: &mut [E], b: &[E], mask: &mut [u8]) => forward_body);

/// `max(a + b, 0)` on the CPU with the backward pass on `a`'s tape (which
/// must own one and already hold `b`'s: the caller merges them).
pub(crate) fn add_relu<S: Shape, E: Dtype, T: Tape<E, Cpu>>(
    a: Tensor<S, E, Cpu, T>,
    b: Tensor<S, E, Cpu>,
) -> Result<Tensor<S, E, Cpu, T>, CpuError> {
    let a = a.try_contiguous()?;
    let b = b.try_contiguous()?;
    let (a, mut tape) = a.split_tape();
    let dev = a.device().clone();
    let shape = *a.shape();
    let n = shape.num_elements();
    // The output buffer (from dfdx's cache) holds a, then the rectified sum.
    let mut ys = output_vec::<E>(&dev, n)?;
    a.copy_into(&mut ys);
    let mut bs = output_vec::<E>(&dev, n)?;
    b.copy_into(&mut bs);
    let mut mask = <Cpu as Storage<u8>>::try_alloc_len(&dev, n)?;
    if n <= BLOCK {
        forward(&mut ys, &bs, &mut mask);
    } else {
        ys.par_chunks_mut(BLOCK)
            .zip(bs.par_chunks(BLOCK).zip(mask.par_chunks_mut(BLOCK)))
            .for_each(|(y, (b, m))| forward(y, b, m));
    }
    // b's copy goes back to the cache for the next call
    drop(tensor_from_vec(&dev, bs, shape)?);
    let y = tensor_from_vec(&dev, ys, shape)?;
    let (a_g, b_g, y_g) = (a.ghost(), b.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        // Borrow y's gradient out of `grads` (no copy); it goes back below.
        let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
        // one gradient at a time: `a` and `b` may be the same tensor
        super::cpu::add_masked(grads.get_or_alloc_mut(&a_g)?, &gy, &mask);
        super::cpu::add_masked(grads.get_or_alloc_mut(&b_g)?, &gy, &mask);
        **grads.get_or_alloc_mut(&y_g)? = gy;
        Ok(())
    });
    Ok(y.put_tape(tape))
}

#[cfg(test)]
mod tests {
    use super::BLOCK;
    use crate::ops::ReluKernel;
    use dfdx::prelude::*;

    /// The fused op against dfdx's `relu(a + b)` in `E`: the values, and
    /// the gradients of `sum(y · w) + sum(3a) + sum(5b)` for a random `w`
    /// (so each element's gradient differs; the other uses of `a` and `b`
    /// make the kernel add into gradients that already hold something).
    fn check<E: Dtype + num_traits::Float>(dev: &Cpu, n: usize)
    where
        Cpu: ReluKernel<E>,
    {
        // spread values in [-2, 2), different for each tensor
        let values = |seed: usize| -> Tensor<(usize,), E, _> {
            let v = (0..n).map(|i| ((i * 7919 + seed * 104_729) % 1000) as f64 / 250.0 - 2.0);
            dev.tensor_from_vec(v.map(|v| E::from(v).expect("a float")).collect(), (n,))
        };
        let (a, b, w) = (values(1), values(2), values(3));
        let (three, five) = (E::from(3.0).expect("3"), E::from(5.0).expect("5"));
        let run = |ours: bool| {
            let (at, bt) = (a.leaky_trace(), b.leaky_trace());
            let (a2, b2) = (at.with_empty_tape(), bt.with_empty_tape());
            let y = if ours {
                Cpu::try_add_relu(at, bt).expect("add_relu")
            } else {
                (at + bt).relu()
            };
            let values = y.retaped::<NoneTape>().as_vec();
            let loss = (y * w.clone()).sum() + (a2 * three).sum() + (b2 * five).sum();
            let g = loss.backward();
            (values, g.get(&a).as_vec(), g.get(&b).as_vec())
        };
        let (ours, theirs) = (run(true), run(false));
        assert!(
            ours.0.iter().any(|v| *v > E::zero()),
            "some sums are positive"
        );
        assert!(ours.0.iter().any(|v| *v == E::zero()), "and some are not");
        assert!(ours == theirs, "n = {n}");
        let untaped = Cpu::try_add_relu(a.clone(), b.clone()).expect("add_relu");
        assert!(untaped.as_vec() == theirs.0, "without a tape, n = {n}");
    }

    #[test]
    fn matches_dfdx_in_one_block_and_many() {
        let dev = Cpu::seed_from_u64(11);
        for n in [1000, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            check::<f32>(&dev, n);
            check::<f64>(&dev, n);
        }
    }

    /// `relu(a + a)`: both gradients land in the same tensor, so the
    /// kernel must add into it twice, not overwrite (dfdx's own `+` of a
    /// tensor and itself panics in its backward pass).
    #[test]
    fn the_same_tensor_on_both_sides_gets_both_gradients() {
        let dev = Cpu::seed_from_u64(12);
        let a: Tensor<Rank1<50>, f32, _> = dev.sample_normal();
        let y = Cpu::try_add_relu(a.leaky_trace(), a.clone()).expect("add_relu");
        let g = y.sum().backward().get(&a).array();
        assert!(a.array().iter().any(|v| *v > 0.0) && a.array().iter().any(|v| *v < 0.0));
        for (g, v) in g.iter().zip(a.array()) {
            assert_eq!(*g, if v > 0.0 { 2.0 } else { 0.0 });
        }
    }

    #[test]
    fn nan_and_zero_sums_give_zero_and_no_gradient() {
        let dev = Cpu::default();
        let a = dev.tensor([f32::NAN, 1.0, -1.0, 2.0, -0.0]);
        let b = dev.tensor([1.0f32, -1.0, 1.0, -1.0, 0.0]);
        let y = Cpu::try_add_relu(a.leaky_trace(), b.clone()).expect("add_relu");
        assert_eq!(y.retaped::<NoneTape>().array(), [0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(
            y.sum().backward().get(&a).array(),
            [0.0, 0.0, 0.0, 1.0, 0.0]
        );
    }
}
