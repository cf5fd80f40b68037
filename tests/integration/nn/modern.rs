//! BatchNorm, Dropout, residual connections, global and adaptive pooling,
//! and the two modes: training (`forward_mut`) and inference (`forward`).
use static_nn::ops::{batch_norm::generic, BatchNormKernel, BatchNormOp, Workspace};
use static_nn::prelude::*;

fn names<M: dfdx::nn::TensorCollection<f32, Cpu>>(m: &M) -> Vec<String> {
    static_nn::weights::tensor_names(m)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "[{i}]: {x} vs {y}");
    }
}

/// Per-channel mean and biased variance of `(B, C, P)` data, in f64.
fn stats(x: &[f32], (b, c, p): (usize, usize, usize)) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        let vals: Vec<f64> = (0..b)
            .flat_map(|i| (0..p).map(move |j| (i, j)))
            .map(|(i, j)| x[i * c * p + ch * p + j] as f64)
            .collect();
        let n = vals.len() as f64;
        mean[ch] = vals.iter().sum::<f64>() / n;
        var[ch] = vals.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / n;
    }
    (mean, var)
}

#[test]
fn batch_norm_training_follows_pytorch() {
    let dev = Cpu::seed_from_u64(1);
    let mut bn = dev.build_module::<BatchNorm2D<3>, f32>();
    let x: Tensor<Rank4<4, 3, 5, 5>, f32, _> = dev.sample_normal::<Rank4<4, 3, 5, 5>>() * 2.0 + 0.5;
    let xs = x.as_vec();
    let y = bn.forward_mut(x.clone()).as_vec();
    let (mean, var) = stats(&xs, (4, 3, 25));
    // normalised by the biased variance, weight 1 and bias 0
    for (i, yv) in y.iter().enumerate() {
        let ch = (i / 25) % 3;
        let want = (xs[i] as f64 - mean[ch]) / (var[ch] + 1e-5).sqrt();
        assert!((*yv as f64 - want).abs() < 1e-4, "{yv} vs {want}");
    }
    // running statistics: momentum 0.1, unbiased variance
    let n = 100.0;
    let rm = bn.running_mean.as_vec();
    let rv = bn.running_var.as_vec();
    for ch in 0..3 {
        assert!((rm[ch] as f64 - 0.1 * mean[ch]).abs() < 1e-5);
        let want = 0.9 + 0.1 * var[ch] * n / (n - 1.0);
        assert!((rv[ch] as f64 - want).abs() < 1e-5, "{} vs {want}", rv[ch]);
    }
    assert_eq!(bn.num_batches_tracked.array(), 1.0);
    bn.forward_mut(x);
    assert_eq!(bn.num_batches_tracked.array(), 2.0);
}

#[test]
fn batch_norm_inference_uses_running_statistics() {
    let dev = Cpu::seed_from_u64(2);
    let mut bn = dev.build_module::<BatchNorm1D<4>, f32>();
    bn.running_mean = dev.tensor([1.0, -1.0, 0.0, 2.0]);
    bn.running_var = dev.tensor([4.0, 1.0, 0.25, 9.0]);
    bn.weight = dev.tensor([1.0, 2.0, 1.0, -1.0]);
    bn.bias = dev.tensor([0.0, 0.0, 1.0, 0.5]);
    let x = dev.tensor([[3.0f32, 0.0, 0.5, 2.0]]);
    let y = bn.forward(x).array()[0];
    let want = [
        2.0 / (4.0f32 + 1e-5).sqrt(),
        2.0 * 1.0 / (1.0f32 + 1e-5).sqrt(),
        0.5 / (0.25f32 + 1e-5).sqrt() + 1.0,
        0.5,
    ];
    close(&y, &want, 1e-5);
}

/// The fused CPU kernels agree with the dfdx composition, forward and
/// backward, in both modes.
#[test]
fn batch_norm_cpu_kernels_match_the_generic_composition() {
    let dev = Cpu::seed_from_u64(3);
    let op = BatchNormOp::new(3, 4, 10, 1e-5).unwrap();
    let x: Tensor<(usize, usize, usize), f32, _> = dev.sample_normal_like(&(3, 4, 10));
    let w: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(4,));
    let b: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(4,));
    let rm: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(4,));
    let rv: Tensor<(usize,), f32, _> = dev.sample_uniform_like(&(4,)) + 0.5;
    let probe: Tensor<(usize, usize, usize), f32, _> = dev.sample_normal_like(&(3, 4, 10));
    let ws = Workspace::default();

    let (fast, fs) = Cpu::try_batch_norm_train(op, x.leaky_trace(), (&w, &b), &ws).unwrap();
    let (slow, ss) = generic::train(op, x.leaky_trace(), (&w, &b)).unwrap();
    close(&fast.as_vec(), &slow.as_vec(), 1e-4);
    close(&fs.mean, &ss.mean, 1e-5);
    close(&fs.var, &ss.var, 1e-5);
    let gf = (fast * probe.clone()).sum().backward();
    let gs = (slow * probe.clone()).sum().backward();
    close(&gf.get(&x).as_vec(), &gs.get(&x).as_vec(), 1e-4);
    for t in [&w, &b] {
        close(&gf.get(t).as_vec(), &gs.get(t).as_vec(), 1e-4);
    }

    let fast = Cpu::try_batch_norm_eval(op, x.leaky_trace(), (&w, &b), (&rm, &rv), &ws).unwrap();
    let slow = generic::eval(op, x.leaky_trace(), (&w, &b), (&rm, &rv)).unwrap();
    close(&fast.as_vec(), &slow.as_vec(), 1e-4);
    let gf = (fast * probe.clone()).sum().backward();
    let gs = (slow * probe).sum().backward();
    close(&gf.get(&x).as_vec(), &gs.get(&x).as_vec(), 1e-4);
    for t in [&w, &b] {
        close(&gf.get(t).as_vec(), &gs.get(t).as_vec(), 1e-4);
    }
}

#[test]
fn batch_norm_kernel_refuses_wrong_sizes() {
    let dev = Cpu::default();
    let op = BatchNormOp::new(2, 3, 4, 1e-5).unwrap();
    let x: Tensor<(usize,), f32, _> = dev.zeros_like(&(23,));
    let w: Tensor<(usize,), f32, _> = dev.ones_like(&(3,));
    assert!(Cpu::try_batch_norm_train(op, x, (&w, &w), &Workspace::default()).is_err());
    assert!(BatchNormOp::new(0, 3, 4, 1e-5).is_none());
    assert!(BatchNormOp::new(1, 3, 4, f64::NAN).is_none());
}

#[test]
fn dropout_scales_kept_elements_and_is_seeded() {
    let run = |seed| {
        let dev = Cpu::seed_from_u64(seed);
        let mut drop = dev.build_module::<Dropout<30>, f32>();
        drop.forward_mut(dev.ones::<Rank2<64, 128>>()).as_vec()
    };
    let y = run(7);
    assert_eq!(y, run(7), "a seeded run must repeat bit for bit");
    assert_ne!(y, run(8));
    let zeros = y.iter().filter(|v| **v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.3).abs() < 0.03, "dropped fraction {zeros}");
    let kept: f32 = 1.0 / 0.7;
    assert!(y
        .iter()
        .all(|v: &f32| *v == 0.0 || (*v - kept).abs() < 1e-6));
    // gradients flow through the kept elements only, scaled alike
    let dev = Cpu::seed_from_u64(9);
    let mut drop = dev.build_module::<Dropout, f32>();
    let x = dev.ones::<Rank1<1000>>();
    let y = drop.forward_mut(x.leaky_trace());
    let mask: Vec<f32> = y.as_vec();
    let g = y.sum().backward();
    assert_eq!(g.get(&x).as_vec(), mask);
}

#[test]
fn dropout2d_drops_whole_channels() {
    let dev = Cpu::seed_from_u64(4);
    let mut drop = dev.build_module::<Dropout2D<50>, f32>();
    let y: Vec<f32> = drop.forward_mut(dev.ones::<Rank4<8, 16, 3, 3>>()).as_vec();
    let mut dropped = 0;
    for ch in y.chunks(9) {
        assert!(ch.iter().all(|v| *v == ch[0]), "a channel is dropped whole");
        assert!(ch[0] == 0.0 || (ch[0] - 2.0).abs() < 1e-6);
        dropped += usize::from(ch[0] == 0.0);
    }
    assert!(
        dropped > 20 && dropped < 108,
        "{dropped} of 128 channels dropped"
    );
}

/// Inference cannot apply dropout or change a statistic: `forward` takes
/// the model by `&self`, and repeated calls give the same output and leave
/// every buffer as it was; training (`forward_mut`) changes both.
#[test]
fn inference_mode_never_drops_or_updates_statistics() {
    type Net = (
        Conv2D<1, 4, 3>,
        BatchNorm2D<4>,
        ReLU,
        Dropout2D<50>,
        Flatten,
        Linear<64, 3>,
        Dropout<50>,
    );
    let dev = Cpu::seed_from_u64(5);
    let mut net = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<8, 1, 6, 6>, f32, _> = dev.sample_normal();
    net.forward_mut(x.clone()); // some statistics to start from
    let before = static_nn::weights::to_bytes(&net).unwrap();
    let a = net.forward(x.clone()).as_vec();
    assert_eq!(
        a,
        net.forward(x.clone()).as_vec(),
        "inference is repeatable"
    );
    // with a tape too (the untraced batch runs another kernel: the same
    // values up to rounding)
    let b = net.forward(x.clone().leaky_trace()).as_vec();
    for (a, b) in a.iter().zip(&b) {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
            "traced {b}, untraced {a}"
        );
    }
    assert_eq!(before, static_nn::weights::to_bytes(&net).unwrap());
    let c = net.forward_mut(x).as_vec();
    assert_ne!(a, c, "training mode drops and normalises by the batch");
    assert_ne!(before, static_nn::weights::to_bytes(&net).unwrap());
    assert_eq!(net.0 .1.num_batches_tracked.array(), 2.0);
}

#[test]
fn residual_adds_the_shortcut() {
    let dev = Cpu::seed_from_u64(6);
    type Block = Residual<(Conv2D<2, 2, 3, 1, 1>, ReLU)>;
    let net = dev.build_module::<Block, f32>();
    let x: Tensor<Rank4<2, 2, 5, 5>, f32, _> = dev.sample_normal();
    let f = ReLU.forward(net.block.0.forward(x.clone()));
    let want = (f + x.clone()).as_vec();
    close(&net.forward(x.clone()).as_vec(), &want, 1e-6);
    // the gradient reaches the input through both branches
    let g = net.forward(x.leaky_trace()).sum().backward();
    let gx: Vec<f32> = g.get(&x).as_vec();
    let block_only = ReLU
        .forward(net.block.0.forward(x.leaky_trace()))
        .sum()
        .backward();
    let gb: Vec<f32> = block_only.get(&x).as_vec();
    for (t, b) in gx.iter().zip(&gb) {
        assert!(
            (t - b - 1.0).abs() < 1e-5,
            "the identity branch adds 1: {t} vs {b}"
        );
    }

    type Down = Residual<(Conv2D<2, 4, 3, 2, 1>,), Conv2D<2, 4, 1, 2, 0, false>>;
    let net = dev.build_module::<Down, f32>();
    let want = (net.block.0 .0.forward(x.clone()) + net.shortcut.forward(x.clone())).as_vec();
    let y: Tensor<Rank4<2, 4, 3, 3>, f32, _> = net.forward(x);
    close(&y.as_vec(), &want, 1e-6);
    assert_eq!(
        names(&net),
        ["block.0.weight", "block.0.bias", "shortcut.weight"]
    );
}

#[test]
fn convolution_without_bias_has_no_bias_tensor() {
    let dev = Cpu::seed_from_u64(7);
    let conv = dev.build_module::<Conv2D<3, 8, 3, 1, 1, false>, f32>();
    assert!(conv.bias.is_none());
    assert_eq!(conv.num_trainable_params(), 8 * 3 * 9);
    assert_eq!(names(&conv), ["weight"]);
    let x: Tensor<Rank4<2, 3, 6, 6>, f32, _> = dev.sample_normal();
    let g = conv.forward(x.leaky_trace()).sum().backward();
    assert_eq!(g.get(&conv.weight).as_vec().len(), 8 * 27);
    let s = summary::<Conv2D<3, 8, 3, 1, 1, false>, Rank3<3, 6, 6>>();
    assert!(
        s.rows[0].layer.ends_with("bias=False)"),
        "{}",
        s.rows[0].layer
    );
    assert_eq!(s.total_params(), 216);
}

#[test]
fn adaptive_average_pooling_follows_pytorch() {
    let dev = Cpu::default();
    // 3×5 → 2×2: rows [0, 2), [1, 3); columns [0, 3), [2, 5)
    let x = dev.tensor([[[
        [1.0f32, 2.0, 3.0, 4.0, 5.0],
        [6.0, 7.0, 8.0, 9.0, 10.0],
        [11.0, 12.0, 13.0, 14.0, 15.0],
    ]]]);
    let y = AdaptiveAvgPool2D::<2, 2>.forward(x.clone()).array();
    assert_eq!(y, [[[[4.5, 6.5], [9.5, 11.5]]]]);
    assert_eq!(GlobalAvgPool2D.forward(x).array(), [[8.0]]);
}

#[test]
fn batch_norm_buffers_are_saved_with_pytorch_dtypes() {
    let dev = Cpu::seed_from_u64(8);
    let mut bn = dev.build_module::<(Conv2D<1, 2, 3>, BatchNorm2D<2>), f32>();
    for _ in 0..3 {
        bn.forward_mut(dev.sample_normal::<Rank4<4, 1, 5, 5>>());
    }
    let bytes = static_nn::weights::to_bytes(&bn).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let count = st.tensor("1.num_batches_tracked").unwrap();
    assert_eq!(count.dtype(), safetensors::Dtype::I64);
    assert_eq!(count.data(), 3i64.to_le_bytes());
    assert_eq!(
        st.tensor("1.running_var").unwrap().dtype(),
        safetensors::Dtype::F32
    );
    let mut fresh = dev.build_module::<(Conv2D<1, 2, 3>, BatchNorm2D<2>), f32>();
    let opts = static_nn::weights::LoadOptions::default();
    static_nn::weights::load_from_bytes(&mut fresh, &bytes, &opts).unwrap();
    assert_eq!(fresh.0 .1.num_batches_tracked.array(), 3.0);
    assert_eq!(
        fresh.0 .1.running_mean.array(),
        bn.0 .1.running_mean.array()
    );
    assert_eq!(static_nn::weights::to_bytes(&fresh).unwrap(), bytes);
}

/// The convolutions of `MnistResNet`, without bias, against the generic
/// composition: forward, and the gradients of input and weight.
#[test]
fn resnet_convolutions_match_the_generic_composition() {
    macro_rules! case {
        ($i:literal, $o:literal, $s:literal, $h:literal) => {{
            let dev = Cpu::seed_from_u64($i * 100 + $o);
            let conv = dev.build_module::<Conv2D<$i, $o, 3, $s, 1, false>, f32>();
            let x: Tensor<Rank4<32, $i, $h, $h>, f32, _> = dev.sample_normal();
            let y = conv.forward(x.leaky_trace());
            let shape = *y.shape();
            let probe = dev.sample_normal_like(&shape);
            let ys = y.as_vec();
            let g = (y * probe.clone()).sum().backward();
            let op = static_nn::ops::Conv2DOp::new(32, $i, $o, ($h, $h), (3, 3), $s, 1).unwrap();
            let none: Option<&Tensor<Rank1<$o>, f32, Cpu>> = None;
            let want = static_nn::ops::conv2d::generic::conv2d(
                op,
                x.leaky_trace(),
                &conv.weight,
                none,
                shape,
            )
            .unwrap();
            let what = concat!($i, "→", $o, " stride ", $s, " on ", $h, "×", $h);
            eprintln!("{what}: output");
            close(&ys, &want.as_vec(), 1e-4);
            let gw = (want * probe).sum().backward();
            eprintln!("{what}: input gradient");
            close(&g.get(&x).as_vec(), &gw.get(&x).as_vec(), 1e-4);
            eprintln!("{what}: weight gradient");
            // sums of 32·h·w products: compare to the largest, as the
            // kernels sum in different orders (f32 rounding of ~1e-7 per
            // step on partial sums of that size)
            let (got, want) = (g.get(&conv.weight).as_vec(), gw.get(&conv.weight).as_vec());
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale, "[{i}]: {a} vs {b} (largest {scale})");
            }
        }};
    }
    case!(64, 64, 1, 7);
    case!(32, 64, 2, 14);
    case!(16, 16, 1, 28);
}

/// ResNet's basic block fuses two pairs of ops on the CPU: `bn1` is a
/// `BatchNormReLU2D`, and it ends in `relu(y + shortcut)` as one op
/// (`add_residual_relu`). In training mode, the block's output and the
/// gradients of its input, weights and batch norms, and the running
/// statistics, are those of the same block written with `BatchNorm2D`,
/// `add_residual` and `ReLU`, bit for bit, with the identity shortcut and
/// with a projection. (On the CPU in f32 the whole block runs as one op.)
#[test]
fn basic_block_matches_its_unfused_composition() {
    use static_nn::models::{BasicBlock, Projection};
    use static_nn::nn::add_residual;
    macro_rules! case {
        // an identity shortcut: no other gradients or statistics
        ($block:ty, $out:literal, $x:ty, $y:ty) => {
            case!(
                $block,
                $out,
                $x,
                $y,
                |b| {
                    let _ = b;
                    |_: &Gradients<f32, Cpu>| Vec::<Vec<f32>>::new()
                },
                |c| {
                    let _ = c;
                    Vec::<Vec<f32>>::new()
                }
            )
        };
        ($block:ty, $out:literal, $x:ty, $y:ty, |$b:ident| $extra:expr, |$c:ident| $stats:expr) => {{
            let dev = Cpu::seed_from_u64(21);
            let block = dev.build_module::<$block, f32>();
            let x: Tensor<$x, f32, _> = dev.sample_normal();
            let probe: Tensor<$y, f32, _> = dev.sample_normal();
            let run = |fused: bool| {
                let mut b = block.clone();
                let y = if fused {
                    b.forward_mut(x.leaky_trace())
                } else {
                    let x = x.leaky_trace();
                    // bn1 unfused: a BatchNorm2D holding the block's
                    // tensors (clones keep their ids), and a ReLU
                    let mut bn1 = dev.build_module::<BatchNorm2D<$out>, f32>();
                    bn1.weight = b.bn1.weight.clone();
                    bn1.bias = b.bn1.bias.clone();
                    bn1.running_mean = b.bn1.running_mean.clone();
                    bn1.running_var = b.bn1.running_var.clone();
                    let y = b.conv1.forward_mut(x.with_empty_tape());
                    let y = ReLU.forward_mut(bn1.forward_mut(y));
                    let y = b.bn2.forward_mut(b.conv2.forward_mut(y));
                    let s = b.shortcut.forward_mut(x);
                    b.bn1.running_mean = bn1.running_mean.clone();
                    b.bn1.running_var = bn1.running_var.clone();
                    b.bn1.num_batches_tracked = bn1.num_batches_tracked.clone();
                    ReLU.forward(add_residual(y, s).unwrap())
                };
                let mut stats = vec![b.bn1.running_mean.as_vec(), b.bn1.running_var.as_vec()];
                stats.extend([b.bn2.running_mean.as_vec(), b.bn2.running_var.as_vec()]);
                stats.push(b.bn1.num_batches_tracked.as_vec());
                stats.push(b.bn2.num_batches_tracked.as_vec());
                let $c = &b;
                stats.extend($stats);
                let ys = y.retaped::<NoneTape>().as_vec();
                let g = (y * probe.clone()).sum().backward();
                let $b = &block;
                let mut grads = vec![ys, g.get(&x).as_vec()];
                grads.push(g.get(&$b.conv1.weight).as_vec());
                grads.push(g.get(&$b.conv2.weight).as_vec());
                for t in [&$b.bn1.weight, &$b.bn1.bias, &$b.bn2.weight, &$b.bn2.bias] {
                    grads.push(g.get(t).as_vec());
                }
                grads.extend($extra(&g));
                grads.extend(stats);
                grads
            };
            let (fused, plain) = (run(true), run(false));
            // without a tape: the same output
            let untraced = block.clone().forward_mut(x.clone()).as_vec();
            assert!(untraced
                .iter()
                .zip(&fused[0])
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(fused[0].iter().any(|v| *v == 0.0) && fused[0].iter().any(|v| *v > 0.0));
            assert!(
                fused.iter().all(|g| g.iter().any(|v| *v != 0.0)),
                "every gradient is used"
            );
            for (i, (f, p)) in fused.iter().zip(&plain).enumerate() {
                let first = f
                    .iter()
                    .zip(p)
                    .position(|(a, b)| a.to_bits() != b.to_bits());
                assert!(
                    f.len() == p.len() && first.is_none(),
                    "{}: output, input gradient, then the parameters': #{i} differs at {first:?}",
                    stringify!($block)
                );
            }
        }};
    }
    case!(BasicBlock<4, 4, 1>, 4, Rank4<3, 4, 6, 6>, Rank4<3, 4, 6, 6>);
    case!(
        BasicBlock<4, 8, 2, Projection<4, 8, 2>>,
        8,
        Rank4<3, 4, 6, 6>,
        Rank4<3, 8, 3, 3>,
        |b| |g: &Gradients<f32, Cpu>| vec![
            g.get(&b.shortcut.0 .0.weight).as_vec(),
            g.get(&b.shortcut.0 .1.weight).as_vec(),
            g.get(&b.shortcut.0 .1.bias).as_vec()
        ],
        |c| {
            let bn = &c.shortcut.0 .1;
            vec![bn.running_mean.as_vec(), bn.running_var.as_vec(), bn.num_batches_tracked.as_vec()]
        }
    );
    // ResNet's sizes, with a batch of 9 (the backward pass's fixed chunks
    // of 4 samples, and a short one) and of 1
    case!(BasicBlock<16, 16, 1>, 16, Rank4<9, 16, 28, 28>, Rank4<9, 16, 28, 28>);
    case!(
        BasicBlock<16, 32, 2, Projection<16, 32, 2>>,
        32,
        Rank4<9, 16, 28, 28>,
        Rank4<9, 32, 14, 14>,
        |b| |g: &Gradients<f32, Cpu>| vec![g.get(&b.shortcut.0 .0.weight).as_vec()],
        |c| vec![c.shortcut.0 .1.running_var.as_vec()]
    );
    case!(BasicBlock<8, 8, 1>, 8, Rank4<1, 8, 10, 10>, Rank4<1, 8, 10, 10>);
}

/// `BatchNormReLU2D` against `(BatchNorm2D, ReLU)`: the same tensor names;
/// in training mode the same output, running statistics and gradients
/// (input, weight, bias), bit for bit; in inference mode the same output and
/// gradients, after the running statistics and the affine parameters have
/// moved away from their initial values.
#[test]
fn batch_norm_relu_matches_batch_norm_then_relu() {
    let dev = Cpu::seed_from_u64(31);
    let mut fused = dev.build_module::<BatchNormReLU2D<5>, f32>();
    let mut plain = dev.build_module::<(BatchNorm2D<5>, ReLU), f32>();
    assert_eq!(
        names(&fused),
        names(&plain.0 .0),
        "the same tensors as BatchNorm2D"
    );
    // values on both sides of zero after normalising: a shift per channel
    let w: Tensor<Rank1<5>, f32, _> = dev.tensor([1.5, -0.5, 2.0, 0.25, 1.0]);
    let b: Tensor<Rank1<5>, f32, _> = dev.tensor([0.3, -0.2, 0.0, 1.0, -1.0]);
    for bn in [&mut fused.weight, &mut plain.0 .0.weight] {
        bn.copy_from(&w.as_vec());
    }
    for bn in [&mut fused.bias, &mut plain.0 .0.bias] {
        bn.copy_from(&b.as_vec());
    }
    let probe: Tensor<Rank4<4, 5, 6, 7>, f32, _> = dev.sample_normal();
    let grads =
        |y: Tensor<Rank4<4, 5, 6, 7>, f32, _, OwnedTape<f32, Cpu>>,
         x: &Tensor<Rank4<4, 5, 6, 7>, f32, Cpu>,
         (w, b): (&Tensor<Rank1<5>, f32, Cpu>, &Tensor<Rank1<5>, f32, Cpu>)| {
            let values = y.retaped::<NoneTape>().as_vec();
            let g = (y * probe.clone()).sum().backward();
            let gs = [g.get(x).as_vec(), g.get(w).as_vec(), g.get(b).as_vec()];
            (values, gs)
        };
    for step in 0..3 {
        let x: Tensor<Rank4<4, 5, 6, 7>, f32, _> = dev.sample_normal::<Rank4<4, 5, 6, 7>>() * 2.0;
        let f = fused.forward_mut(x.leaky_trace());
        let p = plain.forward_mut(x.leaky_trace());
        let (f, p) = (
            grads(f, &x, (&fused.weight, &fused.bias)),
            grads(p, &x, (&plain.0 .0.weight, &plain.0 .0.bias)),
        );
        assert!(f.0.contains(&0.0) && f.0.iter().any(|v| *v > 0.0));
        assert!(f.0 == p.0, "training output, step {step}");
        assert!(f.1 == p.1, "training gradients, step {step}");
        assert_eq!(fused.running_mean.array(), plain.0 .0.running_mean.array());
        assert_eq!(fused.running_var.array(), plain.0 .0.running_var.array());
        assert_eq!(fused.num_batches_tracked.array(), (step + 1) as f32);
    }
    let x: Tensor<Rank4<4, 5, 6, 7>, f32, _> = dev.sample_normal();
    let (f, p) = (fused.forward(x.clone()), plain.forward(x.clone()));
    assert!(f.as_vec() == p.as_vec(), "inference output");
    let f = grads(
        fused.forward(x.leaky_trace()),
        &x,
        (&fused.weight, &fused.bias),
    );
    let p = grads(
        plain.forward(x.leaky_trace()),
        &x,
        (&plain.0 .0.weight, &plain.0 .0.bias),
    );
    assert!(f == p, "inference gradients");
}

/// The fused op on the CPU against the generic composition of dfdx ops
/// (CUDA's path) with `with_relu`, in both modes.
#[test]
fn batch_norm_relu_cpu_kernels_match_the_generic_composition() {
    let dev = Cpu::seed_from_u64(32);
    let op = BatchNormOp::new(3, 4, 10, 1e-5).unwrap().with_relu();
    let x: Tensor<(usize, usize, usize), f32, _> = dev.sample_normal_like(&(3, 4, 10));
    let w: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(4,));
    let b: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(4,));
    let rm: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(4,));
    let rv: Tensor<(usize,), f32, _> = dev.sample_uniform_like(&(4,)) + 0.5;
    let probe: Tensor<(usize, usize, usize), f32, _> = dev.sample_normal_like(&(3, 4, 10));
    let ws = Workspace::default();
    let (fast, _) = Cpu::try_batch_norm_train(op, x.leaky_trace(), (&w, &b), &ws).unwrap();
    let (slow, _) = generic::train(op, x.leaky_trace(), (&w, &b)).unwrap();
    let values = fast.retaped::<NoneTape>().as_vec();
    assert!(values.iter().all(|v| *v >= 0.0) && values.contains(&0.0));
    close(&values, &slow.retaped::<NoneTape>().as_vec(), 1e-4);
    let gf = (fast * probe.clone()).sum().backward();
    let gs = (slow * probe.clone()).sum().backward();
    for t in [&w, &b] {
        close(&gf.get(t).as_vec(), &gs.get(t).as_vec(), 1e-4);
    }
    close(&gf.get(&x).as_vec(), &gs.get(&x).as_vec(), 1e-4);
    let fast = Cpu::try_batch_norm_eval(op, x.leaky_trace(), (&w, &b), (&rm, &rv), &ws).unwrap();
    let slow = generic::eval(op, x.leaky_trace(), (&w, &b), (&rm, &rv)).unwrap();
    close(
        &fast.retaped::<NoneTape>().as_vec(),
        &slow.retaped::<NoneTape>().as_vec(),
        1e-4,
    );
    let gf = (fast * probe.clone()).sum().backward();
    let gs = (slow * probe).sum().backward();
    close(&gf.get(&x).as_vec(), &gs.get(&x).as_vec(), 1e-4);
}

/// A shortcut that is a strided view (here `x` with its height and width
/// swapped) passes its gradient on through the sum and the rectifier, as
/// dfdx's `relu(a + x)` does: the copy that makes it contiguous is on the
/// tape.
#[test]
fn a_strided_shortcut_gets_its_gradient() {
    use static_nn::nn::{add_residual, add_residual_relu};
    let dev = Cpu::seed_from_u64(5);
    let a: Tensor<Rank4<2, 3, 4, 4>, f32, _> = dev.sample_normal();
    let x: Tensor<Rank4<2, 3, 4, 4>, f32, _> = dev.sample_normal();
    let probe: Tensor<Rank4<2, 3, 4, 4>, f32, _> = dev.sample_normal();
    let swapped = || x.leaky_trace().permute::<_, Axes4<0, 1, 3, 2>>();
    let gx = |y: Tensor<Rank4<2, 3, 4, 4>, f32, Cpu, OwnedTape<f32, Cpu>>| {
        let g = (y * probe.clone()).sum().backward();
        (g.get(&x).as_vec(), g.get(&a).as_vec())
    };
    let fused = gx(add_residual_relu(a.leaky_trace(), swapped()).unwrap());
    let want = gx((a.leaky_trace() + swapped()).relu());
    assert!(fused.0.iter().any(|v| *v != 0.0), "x gets a gradient");
    close(&fused.0, &want.0, 1e-6);
    close(&fused.1, &want.1, 1e-6);
    let plain = gx(add_residual(a.leaky_trace(), swapped()).unwrap());
    let want = gx(a.leaky_trace() + swapped());
    close(&plain.0, &want.0, 1e-6);
}

/// A model may start with a residual block: given a batch whose own
/// gradient is not wanted (`NoInputGrad`), it trains as with a traced one.
#[test]
fn a_basic_block_takes_a_batch_without_its_gradient() {
    use static_nn::models::BasicBlock;
    let dev = Cpu::seed_from_u64(8);
    let block = dev.build_module::<BasicBlock<3, 3, 1>, f32>();
    let x: Tensor<Rank4<2, 3, 5, 5>, f32, _> = dev.sample_normal();
    let weight_grad = |y: Tensor<Rank4<2, 3, 5, 5>, f32, Cpu, OwnedTape<f32, Cpu>>| {
        y.sum().backward().get(&block.conv1.weight).as_vec()
    };
    let plain = weight_grad(block.clone().forward_mut(x.leaky_trace()));
    let no_grad = weight_grad(block.clone().forward_mut(NoInputGrad(x.leaky_trace())));
    assert_eq!(plain, no_grad);
}
