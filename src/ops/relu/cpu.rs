//! The CPU rectifier: one pass over the elements, in blocks spread over the
//! cores, compiled for AVX2 where the CPU has it.
//!
//! Forward with a tape keeps one byte per element, whether it was positive;
//! the backward pass adds `gy` into `gx` where it was. Without a tape it is
//! dfdx's `relu`, which rectifies a tensor it owns in place.
use crate::ops::cpu_util::{avx2_or_baseline, output_vec, tensor_from_vec};
use dfdx::prelude::*;
use rayon::prelude::*;

/// Elements per parallel block: large enough that a block's work outweighs
/// handing it to another core, small enough to spread LeNet's activations.
pub(crate) const BLOCK: usize = 1 << 14;

/// `y = max(y, 0)`, and `mask = (y > 0)`, elementwise.
#[inline(always)]
fn forward_body<E: Dtype>(y: &mut [E], mask: &mut [u8]) {
    for (v, m) in y.iter_mut().zip(mask.iter_mut()) {
        let positive = *v > E::default();
        *m = positive as u8;
        *v = if positive { *v } else { E::default() };
    }
}

/// `gx += gy` where `mask` is set.
#[inline(always)]
fn backward_body<E: Dtype>(gx: &mut [E], gy: &[E], mask: &[u8]) {
    for ((g, d), m) in gx.iter_mut().zip(gy).zip(mask) {
        *g += if *m != 0 { *d } else { E::default() };
    }
}

avx2_or_baseline!(fn forward<E: Dtype>(y: &mut [E], mask: &mut [u8]) => forward_body);
avx2_or_baseline!(fn backward<E: Dtype>(gx: &mut [E], gy: &[E], mask: &[u8]) => backward_body);

/// `max(x, 0)` on the CPU, with the backward pass on `x`'s tape (which must
/// own one: without a tape, [`ReluKernel`](super::ReluKernel) calls dfdx).
pub(crate) fn relu<S: Shape, E: Dtype, T: Tape<E, Cpu>>(
    x: Tensor<S, E, Cpu, T>,
) -> Result<Tensor<S, E, Cpu, T>, CpuError> {
    let x = x.try_contiguous()?;
    let (x, mut tape) = x.split_tape();
    let dev = x.device().clone();
    let shape = *x.shape();
    let n = shape.num_elements();
    // The output buffer (from dfdx's cache) holds x, then is rectified in place.
    let mut ys = output_vec::<E>(&dev, n)?;
    x.copy_into(&mut ys);
    let mut mask = <Cpu as Storage<u8>>::try_alloc_len(&dev, n)?;
    if n <= BLOCK {
        forward(&mut ys, &mut mask);
    } else {
        ys.par_chunks_mut(BLOCK)
            .zip(mask.par_chunks_mut(BLOCK))
            .for_each(|(y, m)| forward(y, m));
    }
    let y = tensor_from_vec(&dev, ys, shape)?;
    let (x_g, y_g) = (x.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        // Borrow y's gradient out of `grads` (no copy); it goes back below.
        let gy: Vec<E> = std::mem::take(&mut **grads.get_or_alloc_mut(&y_g)?);
        add_masked(grads.get_or_alloc_mut(&x_g)?, &gy, &mask);
        **grads.get_or_alloc_mut(&y_g)? = gy;
        Ok(())
    });
    Ok(y.put_tape(tape))
}

/// `gx += gy` where `mask` is set, in blocks spread over the cores.
pub(crate) fn add_masked<E: Dtype>(gx: &mut [E], gy: &[E], mask: &[u8]) {
    if gx.len() <= BLOCK {
        backward(gx, gy, mask);
    } else {
        gx.par_chunks_mut(BLOCK)
            .zip(gy.par_chunks(BLOCK).zip(mask.par_chunks(BLOCK)))
            .for_each(|(gx, (gy, m))| backward(gx, gy, m));
    }
}

#[cfg(test)]
mod tests {
    use super::BLOCK;
    use crate::ops::ReluKernel;
    use dfdx::prelude::*;

    /// Ours against dfdx's `relu` on `x`, in `E`: the values, and the
    /// gradient of `sum(relu(x) · w) + sum(3x)` for a random `w` (so every
    /// element's gradient differs; the second use of `x` makes the kernel add
    /// into a gradient that already holds something), with and without a tape.
    fn check<E: Dtype + num_traits::Float>(dev: &Cpu, x: &[f64])
    where
        Cpu: ReluKernel<E>,
    {
        let n = x.len();
        let cast = |v: &[f64]| v.iter().map(|v| E::from(*v).expect("a float")).collect();
        let w: Vec<E> = cast(&x.iter().map(|v| v.sin() + 0.5).collect::<Vec<_>>());
        let (x, w) = (
            dev.tensor_from_vec(cast(x), (n,)),
            dev.tensor_from_vec(w, (n,)),
        );
        let three = E::from(3.0).expect("3 fits every float");
        let run = |ours: bool| {
            let xt = x.clone().traced(Gradients::leaky());
            let (x2, xt) = (xt.with_empty_tape(), xt);
            let y = if ours {
                Cpu::try_relu(xt).expect("relu")
            } else {
                xt.relu()
            };
            let values = y.retaped::<NoneTape>().as_vec();
            let loss = (y * w.clone()).sum() + (x2 * three).sum();
            (values, loss.backward().get(&x).as_vec())
        };
        let (ours, theirs) = (run(true), run(false));
        assert_eq!(ours.0, theirs.0, "values, n = {n}");
        assert_eq!(ours.1, theirs.1, "gradients, n = {n}");
        let untaped = Cpu::try_relu(x.clone()).expect("relu");
        assert_eq!(untaped.as_vec(), theirs.0, "without a tape, n = {n}");
    }

    #[test]
    fn matches_dfdx_in_one_block_and_many() {
        let dev = Cpu::seed_from_u64(7);
        // an empty tensor passes through (dfdx can neither read nor sum one)
        let empty = dev.tensor_from_vec(Vec::<f32>::new(), (0,));
        let y = Cpu::try_relu(empty.traced(Gradients::leaky())).expect("relu");
        assert_eq!(y.shape().0, 0);
        for n in [1, 7, 100, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            let x: Tensor<(usize,), f64, _> = dev.sample_normal_like(&(n,));
            check::<f64>(&dev, &x.as_vec());
            check::<f32>(&dev, &x.as_vec());
        }
    }

    #[test]
    fn zero_and_nan_give_zero_and_no_gradient() {
        let dev = Cpu::default();
        let x = vec![0.0f32, f32::NAN, -0.0, 1.5, -2.0];
        let t = dev.tensor_from_vec(x.clone(), (5,));
        let y = Cpu::try_relu(t.clone().traced(Gradients::leaky())).expect("relu");
        assert_eq!(y.retaped::<NoneTape>().as_vec(), [0.0, 0.0, 0.0, 1.5, 0.0]);
        assert_eq!(
            y.sum().backward().get(&t).as_vec(),
            [0.0, 0.0, 0.0, 1.0, 0.0]
        );
        // dfdx agrees on every one of them (NaN included: its max gives 0)
        check::<f32>(&dev, &[0.0, -0.0, 1.5, -2.0]);
    }

    #[test]
    fn strided_input_is_read_in_logical_order() {
        let dev = Cpu::seed_from_u64(3);
        let x: Tensor<Rank2<70, 300>, f32, _> = dev.sample_normal();
        let w: Tensor<Rank2<300, 70>, f32, _> = dev.sample_normal();
        let run = |ours: bool| {
            let xt = x
                .clone()
                .traced(Gradients::leaky())
                .permute::<Rank2<300, 70>, _>();
            let y = if ours {
                Cpu::try_relu(xt).expect("relu")
            } else {
                xt.relu()
            };
            let values = y.retaped::<NoneTape>().array();
            (values, (y * w.clone()).sum().backward().get(&x).array())
        };
        assert_eq!(run(true), run(false));
        let xt = x.clone().permute::<Rank2<300, 70>, _>();
        assert_eq!(
            Cpu::try_relu(xt.clone()).expect("relu").array(),
            xt.relu().array()
        );
    }
}
