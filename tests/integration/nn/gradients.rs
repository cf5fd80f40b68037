//! Gradients: finite differences against the tape, and the fast CPU kernels
//! against the generic composition of dfdx ops on random shapes.
use proptest::prelude::*;
use static_nn::ops::conv2d::generic;
use static_nn::ops::pool2d::generic as pool_generic;
use static_nn::ops::{Conv2DKernel, Conv2DOp, Pool2DKernel, Pool2DOp, PoolKind, Workspace};
use static_nn::prelude::*;

type Dyn4 = (usize, usize, usize, usize);

/// Runs the convolution on `(x, w, b)` in dtype `E`, with a tape; returns
/// the output and the gradients of `sum(y · r)` for fixed random `r`, with
/// respect to x, w and b, as f64.
fn conv_grads_in<E>(op: Conv2DOp, x: &[f64], w: &[f64], b: &[f64], fast: bool) -> [Vec<f64>; 4]
where
    E: Dtype + num_traits::NumCast,
    Cpu: Conv2DKernel<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let dev = Cpu::seed_from_u64(7);
    let to_e = |v: &[f64]| -> Vec<E> { v.iter().map(|v| E::from(*v).unwrap()).collect() };
    let x = dev.tensor_from_vec(to_e(x), op.input_shape());
    let w = dev.tensor_from_vec(to_e(w), op.weight_shape());
    let b = dev.tensor_from_vec(to_e(b), op.bias_shape());
    let out: Dyn4 = op.output_shape();
    let r = dev.sample_normal_like(&out);
    let xt = x.clone().leaky_traced();
    let y = if fast {
        Cpu::try_conv2d(op, xt, &w, Some(&b), out, &Workspace::default()).unwrap()
    } else {
        generic::conv2d(op, xt, &w, Some(&b), out).unwrap()
    };
    let yv = y.retaped::<NoneTape>().as_vec();
    let g = (y * r).sum().backward();
    let to_f64 = |v: Vec<E>| -> Vec<f64> { v.into_iter().map(|v| v.to_f64().unwrap()).collect() };
    [
        to_f64(yv),
        to_f64(g.get(&x).as_vec()),
        to_f64(g.get(&w).as_vec()),
        to_f64(g.get(&b).as_vec()),
    ]
}

/// [`conv_grads_in`] in f64.
fn conv_grads(
    op: Conv2DOp,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    fast: bool,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let [y, gx, gw, gb] = conv_grads_in::<f64>(op, x, w, b, fast);
    (y, gx, gw, gb)
}

/// [`conv_grads_in`] in f32, the dtype of the direct AVX2 kernels.
fn conv_grads_f32(op: Conv2DOp, x: &[f64], w: &[f64], b: &[f64], fast: bool) -> [Vec<f64>; 4] {
    conv_grads_in::<f32>(op, x, w, b, fast)
}

/// `fast` is within f32 rounding of `slow`: 1e-4 of the largest value (the
/// kernels sum in different orders).
fn f32_close(fast: &[Vec<f64>; 4], slow: &[Vec<f64>; 4]) -> Result<(), String> {
    for (what, (a, b)) in ["output", "dx", "dW", "db"]
        .iter()
        .zip(fast.iter().zip(slow))
    {
        if a.len() != b.len() {
            return Err(format!("{what}: {} vs {} values", a.len(), b.len()));
        }
        let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            if (p - q).abs() > 1e-4 * scale {
                return Err(format!("{what}[{i}]: {p} vs {q} (largest {scale})"));
            }
        }
    }
    Ok(())
}

fn loss(op: Conv2DOp, x: &[f64], w: &[f64], b: &[f64], r: &[f64]) -> f64 {
    let dev = Cpu::default();
    let xt = dev.tensor_from_vec(x.to_vec(), op.input_shape());
    let wt = dev.tensor_from_vec(w.to_vec(), op.weight_shape());
    let bt = dev.tensor_from_vec(b.to_vec(), op.bias_shape());
    let y = Cpu::try_conv2d(
        op,
        xt,
        &wt,
        Some(&bt),
        op.output_shape(),
        &Workspace::default(),
    )
    .unwrap();
    y.as_vec().iter().zip(r).map(|(a, b)| a * b).sum()
}

fn random(n: usize, seed: u64) -> Vec<f64> {
    let dev = Cpu::seed_from_u64(seed);
    dev.sample_normal_like(&(n,)).as_vec()
}

#[test]
fn conv_gradients_match_finite_differences() {
    // stride 2 and padding 1, rectangular kernel, several channels
    let op = Conv2DOp::new(2, 3, 4, (6, 5), (3, 2), 2, 1).unwrap();
    let x = random(2 * 3 * 6 * 5, 1);
    let w = random(4 * 3 * 3 * 2, 2);
    let b = random(4, 3);
    let (_, gx, gw, gb) = conv_grads(op, &x, &w, &b, true);
    let dev = Cpu::seed_from_u64(7);
    let r: Vec<f64> = dev.sample_normal_like(&op.output_shape()).as_vec();
    let eps = 1e-6;
    let check = |which: usize, analytic: &[f64]| {
        let mut bufs = [x.clone(), w.clone(), b.clone()];
        for i in 0..analytic.len() {
            let orig = bufs[which][i];
            bufs[which][i] = orig + eps;
            let up = loss(op, &bufs[0], &bufs[1], &bufs[2], &r);
            bufs[which][i] = orig - eps;
            let down = loss(op, &bufs[0], &bufs[1], &bufs[2], &r);
            bufs[which][i] = orig;
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                (numeric - analytic[i]).abs() < 1e-6,
                "tensor {which} index {i}: {numeric} vs {}",
                analytic[i]
            );
        }
    };
    check(0, &gx);
    check(1, &gw);
    check(2, &gb);
}

fn pool_grads(op: Pool2DOp, x: &[f64], fast: bool) -> (Vec<f64>, Vec<f64>) {
    let dev = Cpu::seed_from_u64(11);
    let x = dev.tensor_from_vec(x.to_vec(), op.input_shape());
    let out = op.output_shape();
    let r = dev.sample_normal_like(&out);
    let xt = x.clone().leaky_traced();
    let y = if fast {
        Cpu::try_pool2d(op, xt, out, &Workspace::default()).unwrap()
    } else {
        pool_generic::pool2d(op, xt, out).unwrap()
    };
    let yv = y.retaped::<NoneTape>().as_vec();
    let g = (y * r).sum().backward();
    (yv, g.get(&x).as_vec())
}

#[test]
fn pool_gradients_match_finite_differences() {
    for kind in [PoolKind::Max, PoolKind::Avg] {
        let op = Pool2DOp::new(kind, 3, (7, 6), 3, 2, 1).unwrap();
        let x = random(3 * 7 * 6, 5);
        let (_, gx) = pool_grads(op, &x, true);
        let dev = Cpu::seed_from_u64(11);
        let r: Vec<f64> = dev.sample_normal_like(&op.output_shape()).as_vec();
        let f = |x: &[f64]| -> f64 {
            let dev = Cpu::default();
            let t = dev.tensor_from_vec(x.to_vec(), op.input_shape());
            let y = Cpu::try_pool2d(op, t, op.output_shape(), &Workspace::default()).unwrap();
            y.as_vec().iter().zip(&r).map(|(a, b)| a * b).sum()
        };
        let eps = 1e-6;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += eps;
            down[i] -= eps;
            let numeric = (f(&up) - f(&down)) / (2.0 * eps);
            assert!(
                (numeric - gx[i]).abs() < 1e-6,
                "{kind:?} index {i}: {numeric} vs {}",
                gx[i]
            );
        }
    }
}

#[test]
fn linear_gradients_match_finite_differences() {
    let dev = Cpu::seed_from_u64(3);
    let mut fc = dev.build_module::<Linear<5, 3>, f64>();
    let x: Tensor<Rank2<4, 5>, f64, _> = dev.sample_normal();
    let r: Tensor<Rank2<4, 3>, f64, _> = dev.sample_normal();
    let g = (fc.forward(x.clone().traced(fc.alloc_grads())) * r.clone())
        .sum()
        .backward();
    let gw: Vec<f64> = g.get(&fc.weight).as_vec();
    let mut w: Vec<f64> = fc.weight.as_vec();
    let eps = 1e-6;
    for i in 0..w.len() {
        let orig = w[i];
        let mut eval = |v: f64| {
            w[i] = v;
            fc.weight.copy_from(&w);
            let v: f64 = (fc.forward(x.clone()) * r.clone())
                .sum::<Rank0, _>()
                .array();
            v
        };
        let numeric = (eval(orig + eps) - eval(orig - eps)) / (2.0 * eps);
        eval(orig);
        assert!((numeric - gw[i]).abs() < 1e-6);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The fast CPU convolution equals the generic composition, forward and
    /// gradients, on random shapes, strides and paddings.
    #[test]
    fn fast_conv_equals_generic(
        batch in 1usize..3, cin in 1usize..4, cout in 1usize..4,
        h in 1usize..9, w in 1usize..9, kh in 1usize..4, kw in 1usize..4,
        stride in 1usize..4, padding in 0usize..3, seed in 0u64..1000,
    ) {
        let op = Conv2DOp::new(batch, cin, cout, (h, w), (kh, kw), stride, padding);
        prop_assume!(op.is_some());
        let op = op.unwrap();
        let x = random(batch * cin * h * w, seed);
        let wt = random(cout * cin * kh * kw, seed + 1);
        let b = random(cout, seed + 2);
        let fast = conv_grads(op, &x, &wt, &b, true);
        let slow = conv_grads(op, &x, &wt, &b, false);
        for (a, b) in [(fast.0, slow.0), (fast.1, slow.1), (fast.2, slow.2), (fast.3, slow.3)] {
            prop_assert_eq!(a.len(), b.len());
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p - q).abs() < 1e-9, "{} vs {}", p, q);
            }
        }
    }

    /// In f32 (the direct AVX2 kernels: both tilings, both weight-gradient
    /// kernels, both input-gradient ones) on shapes up to LeNet's, within f32
    /// rounding.
    #[test]
    fn fast_f32_conv_matches_generic(
        batch in 1usize..4, cin in 1usize..10, cout in 1usize..20,
        h in 1usize..33, w in 1usize..33, k in 1usize..7,
        stride in 1usize..3, padding in 0usize..4, seed in 0u64..1000,
    ) {
        let op = Conv2DOp::new(batch, cin, cout, (h, w), (k, k), stride, padding);
        prop_assume!(op.is_some());
        let op = op.unwrap();
        let x = random(batch * cin * h * w, seed);
        let wt = random(cout * cin * k * k, seed + 1);
        let b = random(cout, seed + 2);
        let fast = conv_grads_f32(op, &x, &wt, &b, true);
        let slow = conv_grads_f32(op, &x, &wt, &b, false);
        if let Err(e) = f32_close(&fast, &slow) {
            prop_assert!(false, "{:?}: {}", op, e);
        }
    }

    /// The fast CPU pooling equals the generic composition.
    #[test]
    fn fast_pool_equals_generic(
        planes in 1usize..4, h in 1usize..9, w in 1usize..9, k in 1usize..4,
        stride in 1usize..4, padding in 0usize..2, max in any::<bool>(), seed in 0u64..1000,
    ) {
        let kind = if max { PoolKind::Max } else { PoolKind::Avg };
        let op = Pool2DOp::new(kind, planes, (h, w), k, stride, padding);
        prop_assume!(op.is_some());
        let op = op.unwrap();
        let x = random(planes * h * w, seed);
        let fast = pool_grads(op, &x, true);
        let slow = pool_grads(op, &x, false);
        for (a, b) in [(fast.0, slow.0), (fast.1, slow.1)] {
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p - q).abs() < 1e-9, "{} vs {}", p, q);
            }
        }
    }

    /// Batches that span several of the fast path's sample chunks (the
    /// forward pass groups up to 8 samples per gemm, the weight-gradient
    /// reduction 4), including ragged last chunks.
    #[test]
    fn fast_conv_equals_generic_across_chunks(
        batch in 3usize..19, cin in 1usize..3, cout in 1usize..4,
        h in 3usize..8, k in 1usize..4, stride in 1usize..3, padding in 0usize..3,
        seed in 0u64..1000,
    ) {
        let op = Conv2DOp::new(batch, cin, cout, (h, h), (k, k), stride, padding);
        prop_assume!(op.is_some());
        let op = op.unwrap();
        let x = random(batch * cin * h * h, seed);
        let wt = random(cout * cin * k * k, seed + 1);
        let b = random(cout, seed + 2);
        let fast = conv_grads(op, &x, &wt, &b, true);
        let slow = conv_grads(op, &x, &wt, &b, false);
        for (a, b) in [(fast.0, slow.0), (fast.1, slow.1), (fast.2, slow.2), (fast.3, slow.3)] {
            prop_assert_eq!(a.len(), b.len());
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p - q).abs() < 1e-9, "{} vs {}", p, q);
            }
        }
    }

    /// The 2×2, stride-2 max pool (its own fast path), over many planes.
    #[test]
    fn fast_max_pool_2x2_equals_generic(
        planes in 1usize..40, h in 2usize..12, w in 2usize..12, seed in 0u64..1000,
    ) {
        let op = Pool2DOp::new(PoolKind::Max, planes, (h, w), 2, 2, 0).unwrap();
        let x = random(planes * h * w, seed);
        let fast = pool_grads(op, &x, true);
        let slow = pool_grads(op, &x, false);
        prop_assert_eq!(fast, slow);
    }
}

/// The output, the weight and bias gradients, and the input's gradient
/// (`None` where the backward pass left it out) of one convolution on
/// `Cpu`, with the input traced as usual or as a batch whose own gradient
/// is not wanted.
fn conv_param_grads<E>(op: Conv2DOp, seed: u64, input_grad: bool) -> [Option<Vec<E>>; 4]
where
    E: Dtype,
    Cpu: Conv2DKernel<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let dev = Cpu::seed_from_u64(seed);
    let x = dev.sample_normal_like(&op.input_shape());
    let w = dev.sample_normal_like(&op.weight_shape());
    let b = dev.sample_normal_like(&op.bias_shape());
    let out: Dyn4 = op.output_shape();
    let r = dev.sample_normal_like(&out);
    let (xt, ws) = (x.clone().leaky_traced(), Workspace::default());
    let y = if input_grad {
        Cpu::try_conv2d(op, xt, &w, Some(&b), out, &ws)
    } else {
        Cpu::try_conv2d_no_input_grad(op, xt, &w, Some(&b), out, &ws)
    }
    .unwrap();
    let yv = y.retaped::<NoneTape>().as_vec();
    let mut g = (y * r).sum().backward();
    let (gw, gb) = (g.get(&w).as_vec(), g.get(&b).as_vec());
    // leaky gradients keep every tensor's: x's is zeros unless computed
    g.get_or_alloc_mut(&x).unwrap();
    let gx = g.get(&x).as_vec();
    let gx = gx.iter().any(|v| *v != E::default()).then_some(gx);
    [Some(yv), gx, Some(gw), Some(gb)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A batch whose own gradient is not wanted (`NoInputGrad`) gets the
    /// same output and the same bits in the weight and bias gradients as a
    /// traced one, in f32 (the direct kernels) and f64, and no input
    /// gradient.
    #[test]
    fn conv_without_input_grad_keeps_the_parameter_gradients(
        batch in 1usize..11, cin in 1usize..4, cout in 1usize..8,
        h in 2usize..16, k in 1usize..6, stride in 1usize..3, padding in 0usize..3,
        seed in 0u64..1000,
    ) {
        let op = Conv2DOp::new(batch, cin, cout, (h, h), (k, k), stride, padding);
        prop_assume!(op.is_some());
        let op = op.unwrap();
        let [y, gx, gw, gb] = conv_param_grads::<f32>(op, seed, false);
        let [y2, gx2, gw2, gb2] = conv_param_grads::<f32>(op, seed, true);
        prop_assert!(gx.is_none() && gx2.is_some());
        prop_assert_eq!((y, gw, gb), (y2, gw2, gb2));
        let [y, gx, gw, gb] = conv_param_grads::<f64>(op, seed, false);
        let [y2, gx2, gw2, gb2] = conv_param_grads::<f64>(op, seed, true);
        prop_assert!(gx.is_none() && gx2.is_some());
        prop_assert_eq!((y, gw, gb), (y2, gw2, gb2));
    }
}

/// The fast convolution's gradients do not depend on the number of threads
/// (fixed-chunk reduction): bit-identical with 1 and 2 threads.
#[test]
fn fast_conv_gradients_are_thread_count_independent() {
    let op = Conv2DOp::new(37, 3, 5, (12, 12), (5, 5), 1, 2).unwrap();
    let x = random(37 * 3 * 144, 1);
    let wt = random(5 * 3 * 25, 2);
    let b = random(5, 3);
    let run = |threads| on_threads(threads, || conv_grads(op, &x, &wt, &b, true));
    let (one, two) = (run(1), run(2));
    assert_eq!(one, two);
}

/// `f()` on a rayon pool of `threads` threads.
fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// The fast f32 convolution of `(x, wt, b)` gives the same bits on 1 and 2
/// threads, within rounding of the generic composition.
fn f32_fast_matches_on_1_and_2_threads(op: Conv2DOp, x: &[f64], wt: &[f64], b: &[f64]) {
    let slow = conv_grads_f32(op, x, wt, b, false);
    let run = |threads| on_threads(threads, || conv_grads_f32(op, x, wt, b, true));
    let (one, two) = (run(1), run(2));
    assert_eq!(one, two, "{op:?}");
    f32_close(&one, &slow).unwrap_or_else(|e| panic!("{op:?}: {e}"));
}

/// LeNet's convolutions in f32, where the direct kernels serve every pass:
/// within rounding of the generic composition, and the same bits with 1 and
/// 2 threads.
#[test]
fn lenet_convs_in_f32_match_and_are_thread_count_independent() {
    for op in [
        Conv2DOp::new(37, 1, 6, (28, 28), (5, 5), 1, 2).unwrap(),
        Conv2DOp::new(37, 6, 16, (14, 14), (5, 5), 1, 0).unwrap(),
    ] {
        let (ci, co) = (op.input_shape().1, op.output_shape().1);
        let x = random(37 * ci * op.input_shape().2 * op.input_shape().3, 1);
        let wt = random(co * ci * 25, 2);
        let b = random(co, 3);
        f32_fast_matches_on_1_and_2_threads(op, &x, &wt, &b);
    }
}

/// Strided 1×1 convolutions without padding (ResNet's projections, on
/// im2col and `gemm` rather than the direct kernels): output and gradients
/// within rounding of the generic composition in f32, the same bits with 1
/// and 2 threads and with or without the input's gradient, on sizes that the
/// stride does not divide and on more samples than one chunk holds.
#[test]
fn strided_1x1_convs_in_f32_match_and_are_thread_count_independent() {
    for (batch, cin, cout, (h, w), stride) in [
        (9, 16, 32, (28, 28), 2),
        (5, 3, 7, (7, 9), 3),
        (2, 8, 16, (15, 14), 2),
        (1, 1, 1, (1, 1), 2),
    ] {
        let op = Conv2DOp::new(batch, cin, cout, (h, w), (1, 1), stride, 0).unwrap();
        let x = random(batch * cin * h * w, 4);
        let (wt, b) = (random(cout * cin, 5), random(cout, 6));
        f32_fast_matches_on_1_and_2_threads(op, &x, &wt, &b);
        let [y, gx, gw, gb] = conv_param_grads::<f32>(op, 8, false);
        let [y2, gx2, gw2, gb2] = conv_param_grads::<f32>(op, 8, true);
        assert!(gx.is_none() && gx2.is_some(), "{op:?}");
        assert_eq!((y, gw, gb), (y2, gw2, gb2), "{op:?}");
    }
}

#[test]
fn mismatched_sizes_are_errors_not_panics() {
    let dev = Cpu::default();
    let op = Conv2DOp::new(1, 2, 3, (5, 5), (3, 3), 1, 0).unwrap();
    let x: Tensor<Dyn4, f32, _> = dev.zeros_like(&(1usize, 1usize, 5usize, 5usize)); // one channel, op says two
    let w: Tensor<Dyn4, f32, _> = dev.zeros_like(&(3usize, 2usize, 3usize, 3usize));
    let b: Tensor<(usize,), f32, _> = dev.zeros_like(&(3usize,));
    let r = Cpu::try_conv2d(
        op,
        x,
        &w,
        Some(&b),
        (1usize, 3usize, 3usize, 3usize),
        &Workspace::default(),
    );
    assert!(r.is_err());
    // An op whose sizes disagree with each other cannot be built
    // (`Conv2DOp::new` computes the output size); an output shape that is
    // not the op's is refused.
    let x: Tensor<Dyn4, f32, _> = dev.zeros_like(&(1usize, 2usize, 5usize, 5usize));
    let out = (1usize, 3usize, 4usize, 3usize); // not what the formula gives
    assert!(Cpu::try_conv2d(op, x, &w, Some(&b), out, &Workspace::default()).is_err());
    let pool = Pool2DOp::new(PoolKind::Max, 2, (4, 4), 2, 2, 0).unwrap();
    let x: Tensor<(usize, usize, usize), f32, _> = dev.zeros_like(&(3usize, 4usize, 4usize));
    let r: Result<Tensor<(usize, usize, usize), f32, Cpu>, _> =
        Cpu::try_pool2d(pool, x, (2usize, 2usize, 2usize), &Workspace::default());
    assert!(r.is_err());
}

/// One workspace serving convolutions of different sizes in turn (as a layer
/// does when the last batch is smaller) gives the same bits, forward and
/// backward, as a fresh workspace each time: reused buffers never leak old
/// values into a result.
#[test]
fn a_reused_workspace_gives_the_same_bits_as_fresh_ones() {
    let dev = Cpu::seed_from_u64(3);
    let shared = Workspace::default();
    let ops = [
        Conv2DOp::new(9, 3, 4, (8, 7), (3, 3), 1, 1).unwrap(),
        Conv2DOp::new(5, 3, 4, (8, 7), (3, 3), 1, 1).unwrap(),
        Conv2DOp::new(9, 3, 4, (8, 7), (3, 3), 2, 2).unwrap(),
        Conv2DOp::new(1, 3, 4, (8, 7), (3, 3), 1, 1).unwrap(),
    ];
    let run = |op: Conv2DOp, ws: &Workspace, seed: u64| {
        let x = dev.tensor_from_vec(random(op.input_shape().0 * 3 * 56, seed), op.input_shape());
        let w = dev.tensor_from_vec(random(4 * 3 * 9, seed + 1), op.weight_shape());
        let b = dev.tensor_from_vec(random(4, seed + 2), op.bias_shape());
        let y = Cpu::try_conv2d(op, x.leaky_trace(), &w, Some(&b), op.output_shape(), ws).unwrap();
        let yv = y.retaped::<NoneTape>().as_vec();
        let g = y.square().sum().backward();
        (
            yv,
            g.get(&x).as_vec(),
            g.get(&w).as_vec(),
            g.get(&b).as_vec(),
        )
    };
    reused_against_fresh(&ops, &shared, run, |_, _| {});
}

/// Runs each of `ops` in three rounds with the `shared` workspace and with
/// a fresh one, and checks that both give the same bits (and `also` on the
/// shared one's result, with a label), and that `shared` kept buffers.
fn reused_against_fresh<Op: Copy, R: PartialEq + std::fmt::Debug>(
    ops: &[Op],
    shared: &Workspace,
    run: impl Fn(Op, &Workspace, u64) -> R,
    also: impl Fn(&R, &str),
) {
    for round in 0..3u64 {
        for (i, op) in ops.iter().enumerate() {
            let seed = round * 10 + i as u64;
            let reused = run(*op, shared, seed);
            let fresh = run(*op, &Workspace::default(), seed);
            let label = format!("round {round}, op {i}");
            assert_eq!(reused, fresh, "{label}");
            also(&reused, &label);
        }
    }
    assert!(shared.idle_buffers() > 0, "the workspace kept no buffers");
}

/// The same for pooling: one workspace serving max and average pools of
/// different sizes in turn (LeNet's one `pool` module runs after both
/// convolutions) gives the same bits, forward and backward, as a fresh one,
/// and keeps its buffers for the next call.
#[test]
fn a_reused_pool_workspace_gives_the_same_bits_as_fresh_ones() {
    let dev = Cpu::seed_from_u64(5);
    let shared = Workspace::default();
    let ops = [
        Pool2DOp::new(PoolKind::Max, 12, (28, 28), 2, 2, 0).unwrap(),
        Pool2DOp::new(PoolKind::Max, 32, (10, 10), 2, 2, 0).unwrap(),
        Pool2DOp::new(PoolKind::Avg, 12, (28, 28), 3, 2, 1).unwrap(),
        Pool2DOp::new(PoolKind::Max, 5, (7, 9), 3, 1, 1).unwrap(),
    ];
    let run = |op: Pool2DOp, ws: &Workspace, seed: u64| {
        let (planes, h, w) = op.input_shape();
        let x = dev.tensor_from_vec(random(planes * h * w, seed), op.input_shape());
        let untraced = Cpu::try_pool2d(op, x.clone(), op.output_shape(), ws).unwrap();
        let y = Cpu::try_pool2d(op, x.leaky_trace(), op.output_shape(), ws).unwrap();
        let yv = y.retaped::<NoneTape>().as_vec();
        let g = y.square().sum().backward();
        (untraced.as_vec(), yv, g.get(&x).as_vec())
    };
    reused_against_fresh(&ops, &shared, run, |r, label| {
        assert_eq!(r.0, r.1, "{label}: traced and untraced differ");
    });
}
