//! Layers and their kernels: gradients and the fast CPU paths.
mod gradients;
mod modern;

use static_nn::prelude::*;

/// Found by `shapes::runtime_conv_matches_the_formula_and_the_definition`:
/// a convolution whose kernel is wider than the input plus one side's
/// padding (`Conv2D<_, _, 5, 1, 2>` on a 1- or 2-wide input, which the types
/// allow since `W + 2P ≥ K`) computed an out-of-range column offset for
/// kernel columns that only ever see padding: an overflow panic with debug
/// assertions, and a slice index panic (`src[2..2]` of a 1-long row) in
/// release. Fixed in `src/ops/conv2d/cpu.rs` (im2col and its adjoint skip
/// such kernel columns; the rewritten kernels of the `perf` branch do too).
/// Forward and backward are checked against the generic (dfdx-composed)
/// implementation.
#[test]
fn conv_with_a_kernel_wider_than_input_and_one_padding() {
    macro_rules! case {
        ($h:literal, $w:literal) => {{
            const H: usize = $h;
            const W: usize = $w;
            let dev = Cpu::seed_from_u64(H as u64 * 10 + W as u64);
            let conv = dev.build_module::<Conv2D<2, 3, 5, 1, 2>, f32>();
            let x: Tensor<Rank4<2, 2, H, W>, f32, _> = dev.sample_normal();
            let y = conv.forward(x.clone());
            assert_eq!(y.shape().concrete(), [2, 3, H, W]);

            let op = static_nn::ops::Conv2DOp::new(2, 2, 3, (H, W), (5, 5), 1, 2).unwrap();
            let want = static_nn::ops::conv2d::generic::conv2d(
                op,
                x.clone(),
                &conv.weight,
                conv.bias.as_ref(),
                (Const::<2>, Const::<3>, Const::<H>, Const::<W>),
            )
            .unwrap();
            for (a, b) in y.as_vec().iter().zip(want.as_vec()) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            // backward: the input gradient through the CPU kernel and the generic one
            let g = conv.forward(x.leaky_trace()).sum().backward();
            let g2 = static_nn::ops::conv2d::generic::conv2d(
                op,
                x.leaky_trace(),
                &conv.weight,
                conv.bias.as_ref(),
                (Const::<2>, Const::<3>, Const::<H>, Const::<W>),
            )
            .unwrap()
            .sum()
            .backward();
            for (a, b) in g.get(&x).as_vec().iter().zip(g2.get(&x).as_vec()) {
                assert!((a - b).abs() < 1e-4, "dx: {a} vs {b}");
            }
        }};
    }
    case!(1, 1);
    case!(1, 2);
    case!(2, 1);
    case!(3, 2);
}
