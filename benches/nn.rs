//! Criterion benches of the layers and models on the CPU (f32).
//!
//! Group names carry the shapes: `b64_1x28x28_k5_p2_o6` is batch 64, 1 input
//! channel, 28×28, a 5×5 kernel, padding 2, 6 output channels.
//!
//! - `conv2d/fwd/*`: forward without a tape (inference), for LeNet's two
//!   convolutions, two of the ResNet's 3×3 ones and a projection shortcut
//!   (1×1, stride 2);
//! - `conv2d/bwd/*`: the backward pass alone (the traced forward runs in the
//!   untimed setup); `conv2d/bwd_no_input_grad/*` the same for a batch whose
//!   own gradient is not wanted (`NoInputGrad`: weight and bias gradients
//!   only);
//! - `pool2d/{max,avg}_fwd/*`, `pool2d/max_fwd_traced/*` (with a tape: the
//!   argmax kernel), `pool2d/{max,avg}_bwd/*`;
//! - `linear/*`: forward and forward+backward at batch 64 (also on a
//!   `NoInputGrad` batch: `fwd_bwd_no_input_grad`), and forward at batch 1
//!   (the CPU's small-batch dot products);
//! - `batchnorm2d/fwd/*`: inference mode (running statistics, no tape);
//!   `batchnorm2d/train_fwd_bwd/*`: training mode (`forward_mut`: batch
//!   statistics and the running-stat update) and the backward pass, at the
//!   ResNet's stem shape; `batchnorm2d/train_fwd_bwd_sum/*` the same with a
//!   plain sum for the loss on a cache-enabled device (the layer's own
//!   time, as in a network), there and at the last stage's shape;
//!   `batchnorm2d/relu_train_fwd_bwd_sum/*` the same for `BatchNormReLU2D`
//!   (batch norm and ReLU in one op) and `then_relu_train_fwd_bwd_sum/*`
//!   for `(BatchNorm2D, ReLU)`, at the stem's shape;
//! - `relu/{fwd,fwd_bwd}/*`: static-nn's `ReLU` without a tape, and traced
//!   and summed with the backward pass, at LeNet's first activation (on a
//!   cache-enabled device); `relu/dfdx_fwd_bwd/*` is dfdx's `relu` doing the
//!   same, `relu/sum_only_fwd_bwd/*` the sum alone (subtract it from both);
//!   `relu/add_relu_fwd_bwd/*` is the rectified sum that ends a residual
//!   block (`ReluKernel::try_add_relu`), `relu/add_then_relu_fwd_bwd/*` the
//!   same as dfdx's `+` and then `ReLU`, at the ResNet's first stage;
//! - `dropout/train_fwd/*`: `Dropout<20>` in training mode (mask and scale),
//!   at the stem's shape and at the ResNet head's;
//! - `basic_block/{fwd,train_fwd_bwd}/*`: the ResNet's `BasicBlock<16, 16, 1>`
//!   (identity shortcut) and `BasicBlock<16, 32, 2, Projection<16, 32, 2>>`,
//!   in inference mode and as a training step (forward_mut + backward);
//! - `global_avg_pool/{fwd,fwd_bwd}/*`: `GlobalAvgPool2D` at the ResNet's
//!   last stage;
//! - `train_step/*`: forward, cross-entropy, backward, Adam (batch 64), with
//!   the batch traced as usual and as `NoInputGrad` (`*_no_input_grad`, as
//!   `Classifier::fit` passes it);
//!   `train_step/lenet_class_epoch/*` is `Classifier::fit_epoch` over 100
//!   batches from a `DataLoader` (per sample: against
//!   `lenet_class_split2`, the epoch loop's own cost);
//! - `inference/*`: the class LeNet at batch 1, 64, 1000;
//! - `typed_overhead/*`: the typed `LeNetClass` against the same computation
//!   written directly with the ops (see `benches/common/raw_lenet.rs`).
//!
//! `cargo bench --bench nn`, or one group: `cargo bench --bench nn -- conv2d/`.
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use dfdx::optim::{Adam, Optimizer};
use rand::{rngs::StdRng, Rng, SeedableRng};
use static_nn::data::{Batch, DataLoader, LabelledImages, LoaderConfig};
use static_nn::models::{BasicBlock, Projection};
use static_nn::ops::{
    Conv2DKernel, Conv2DOp, Pool2DKernel, Pool2DOp, PoolKind, ReluKernel, Workspace,
};
use static_nn::prelude::*;
use static_nn::train::{
    cross_entropy, Classifier, ImageClassifier, Optim, OptimizerConfig, SplitStep,
};
use std::hint::black_box;
use std::sync::Arc;

#[path = "common/raw_lenet.rs"]
mod raw_lenet;
use raw_lenet::RawLeNet;

type Dev = Cpu;
const B: usize = 64;

fn onehot(dev: &Dev) -> Tensor<Rank2<B, 10>, f32, Dev> {
    let mut v = vec![0.0f32; B * 10];
    for i in 0..B {
        v[i * 10 + (i * 7) % 10] = 1.0;
    }
    dev.tensor_from_vec(v, (Const::<B>, Const::<10>))
}

fn conv_case<const C: usize, const O: usize, const H: usize, const HO: usize, const K: usize>(
    c: &mut Criterion,
    dev: &Dev,
    name: &str,
    (stride, pad): (usize, usize),
) {
    let op = Conv2DOp::new(B, C, O, (H, H), (K, K), stride, pad).unwrap();
    let x: Tensor<Rank4<B, C, H, H>, f32, Dev> = dev.sample_normal();
    let w: Tensor<Rank4<O, C, K, K>, f32, Dev> = dev.sample_normal();
    let b: Tensor<Rank1<O>, f32, Dev> = dev.sample_normal();
    let r: Tensor<Rank4<B, O, HO, HO>, f32, Dev> = dev.sample_normal();
    let out = (Const::<B>, Const::<O>, Const::<HO>, Const::<HO>);
    let ws = Workspace::default();
    let mut g = c.benchmark_group("conv2d");
    g.throughput(Throughput::Elements(B as u64));
    g.bench_function(format!("fwd/{name}"), |bch| {
        bch.iter(|| Dev::try_conv2d(op, black_box(x.clone()), &w, Some(&b), out, &ws).unwrap())
    });
    g.bench_function(format!("bwd/{name}"), |bch| {
        bch.iter_batched(
            || {
                let y = Dev::try_conv2d(op, x.leaky_trace(), &w, Some(&b), out, &ws).unwrap();
                (y * r.clone()).sum()
            },
            |loss| loss.backward(),
            BatchSize::SmallInput,
        )
    });
    // a batch whose own gradient is not wanted (`NoInputGrad`): dW and db only
    g.bench_function(format!("bwd_no_input_grad/{name}"), |bch| {
        bch.iter_batched(
            || {
                let xt = x.leaky_trace();
                let y = Dev::try_conv2d_no_input_grad(op, xt, &w, Some(&b), out, &ws).unwrap();
                (y * r.clone()).sum()
            },
            |loss| loss.backward(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn conv(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    // LeNet's two convolutions, and the ResNet's 3×3 ones and a projection
    // shortcut (each takes other kernels: the direct tiles of
    // src/ops/conv2d/direct.rs and direct_grad.rs for LeNet, Winograd's
    // (winograd/) for the 3×3 ones of stride 1, im2col + gemm for the
    // strided 1×1)
    conv_case::<1, 6, 28, 28, 5>(c, &dev, "b64_1x28x28_k5_p2_o6", (1, 2));
    conv_case::<6, 16, 14, 10, 5>(c, &dev, "b64_6x14x14_k5_p0_o16", (1, 0));
    conv_case::<16, 16, 28, 28, 3>(c, &dev, "b64_16x28x28_k3_p1_o16", (1, 1));
    conv_case::<32, 32, 14, 14, 3>(c, &dev, "b64_32x14x14_k3_p1_o32", (1, 1));
    conv_case::<64, 64, 7, 7, 3>(c, &dev, "b64_64x7x7_k3_p1_o64", (1, 1));
    conv_case::<16, 32, 28, 14, 1>(c, &dev, "b64_16x28x28_k1_s2_o32", (2, 0));
}

fn pool(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let x: Tensor<Rank4<B, 6, 28, 28>, f32, Dev> = dev.sample_normal();
    let r: Tensor<Rank4<B, 6, 14, 14>, f32, Dev> = dev.sample_normal();
    let out = (Const::<B>, Const::<6>, Const::<14>, Const::<14>);
    let ws = Workspace::default();
    let mut g = c.benchmark_group("pool2d");
    g.throughput(Throughput::Elements(B as u64));
    for (kind, k) in [(PoolKind::Max, "max"), (PoolKind::Avg, "avg")] {
        let op = Pool2DOp::new(kind, B * 6, (28, 28), 2, 2, 0).unwrap();
        g.bench_function(format!("{k}_fwd/b64_6x28x28_k2_s2"), |bch| {
            bch.iter(|| Dev::try_pool2d(op, black_box(x.clone()), out, &ws).unwrap())
        });
        if kind == PoolKind::Max {
            // with a tape: the argmax kernel
            g.bench_function("max_fwd_traced/b64_6x28x28_k2_s2", |bch| {
                bch.iter(|| Dev::try_pool2d(op, black_box(x.leaky_trace()), out, &ws).unwrap())
            });
        }
        g.bench_function(format!("{k}_bwd/b64_6x28x28_k2_s2"), |bch| {
            bch.iter_batched(
                || (Dev::try_pool2d(op, x.leaky_trace(), out, &ws).unwrap() * r.clone()).sum(),
                |loss| loss.backward(),
                BatchSize::SmallInput,
            )
        });
    }
    // LeNet's second pool: rows of 5 outputs, shorter than a vector
    let x: Tensor<Rank4<B, 16, 10, 10>, f32, Dev> = dev.sample_normal();
    let out = (Const::<B>, Const::<16>, Const::<5>, Const::<5>);
    let op = Pool2DOp::new(PoolKind::Max, B * 16, (10, 10), 2, 2, 0).unwrap();
    g.bench_function("max_fwd/b64_16x10x10_k2_s2", |bch| {
        bch.iter(|| Dev::try_pool2d(op, black_box(x.clone()), out, &ws).unwrap())
    });
    g.bench_function("max_fwd_traced/b64_16x10x10_k2_s2", |bch| {
        bch.iter(|| Dev::try_pool2d(op, black_box(x.leaky_trace()), out, &ws).unwrap())
    });
    g.finish();
}

fn linear(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let mut g = c.benchmark_group("linear");
    g.throughput(Throughput::Elements(B as u64));
    let fc1 = dev.build_module::<Linear<400, 84>, f32>();
    let x: Tensor<Rank2<B, 400>, f32, Dev> = dev.sample_normal();
    g.bench_function("fwd/b64_400_to_84", |bch| {
        bch.iter(|| fc1.forward(black_box(x.clone())))
    });
    g.bench_function("fwd_bwd/b64_400_to_84", |bch| {
        bch.iter(|| fc1.forward(x.leaky_trace()).sum().backward())
    });
    // one sample: the CPU's dot products (ops::linear), no gemm packing
    let x1: Tensor<Rank2<1, 400>, f32, Dev> = dev.sample_normal();
    g.bench_function("fwd/b1_400_to_84", |bch| {
        bch.iter(|| fc1.forward(black_box(x1.clone())))
    });
    let l = dev.build_module::<Linear<784, 128>, f32>();
    let x: Tensor<Rank2<B, 784>, f32, Dev> = dev.sample_normal();
    g.bench_function("fwd/b64_784_to_128", |bch| {
        bch.iter(|| l.forward(black_box(x.clone())))
    });
    g.bench_function("fwd_bwd/b64_784_to_128", |bch| {
        bch.iter(|| l.forward(x.leaky_trace()).sum().backward())
    });
    // the MLP's first layer on a batch whose own gradient is not wanted
    g.bench_function("fwd_bwd_no_input_grad/b64_784_to_128", |bch| {
        bch.iter(|| l.forward(NoInputGrad(x.leaky_trace())).sum().backward())
    });
    g.finish();
}

fn batchnorm(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let mut g = c.benchmark_group("batchnorm2d");
    g.throughput(Throughput::Elements(B as u64));
    let mut bn = dev.build_module::<BatchNorm2D<16>, f32>();
    let x: Tensor<Rank4<B, 16, 28, 28>, f32, Dev> = dev.sample_normal();
    let r: Tensor<Rank4<B, 16, 28, 28>, f32, Dev> = dev.sample_normal();
    g.bench_function("fwd/b64_16x28x28", |bch| {
        bch.iter(|| bn.forward(black_box(x.clone())))
    });
    let mut grads = Some(bn.alloc_grads());
    g.bench_function("train_fwd_bwd/b64_16x28x28", |bch| {
        bch.iter(|| {
            let y = bn.forward_mut(x.trace(grads.take().unwrap()));
            let mut gr = (y * r.clone()).sum().backward();
            bn.zero_grads(&mut gr);
            grads = Some(gr);
        })
    });
    // The layer's own time: the loss a plain sum (whose backward pass is one
    // fill; dfdx's product above takes most of `train_fwd_bwd`), on a device
    // whose allocation cache is on, as in the examples and the race (else
    // each step's fresh buffers fault their pages in).
    let dev = Dev::seed_from_u64(0);
    dev.enable_cache();
    batchnorm_sum_case::<BatchNorm2D<16>, 16, 28>(&mut g, &dev, "train_fwd_bwd_sum/b64_16x28x28");
    batchnorm_sum_case::<BatchNorm2D<64>, 64, 7>(&mut g, &dev, "train_fwd_bwd_sum/b64_64x7x7");
    // the same followed by a ReLU: fused, and as two layers
    batchnorm_sum_case::<BatchNormReLU2D<16>, 16, 28>(
        &mut g,
        &dev,
        "relu_train_fwd_bwd_sum/b64_16x28x28",
    );
    batchnorm_sum_case::<(BatchNorm2D<16>, ReLU), 16, 28>(
        &mut g,
        &dev,
        "then_relu_train_fwd_bwd_sum/b64_16x28x28",
    );
    g.finish();
}

/// A training step of batch norm layer `M` with a plain-sum loss, on `C`
/// channels of `H`×`H`; the gradients are reused.
fn batchnorm_sum_case<M, const C: usize, const H: usize>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    dev: &Dev,
    name: &str,
) where
    M: BuildOnDevice<Dev, f32>,
    M::Built: dfdx::nn::ModuleMut<
        Tensor<Rank4<B, C, H, H>, f32, Dev, OwnedTape<f32, Dev>>,
        Output = Tensor<Rank4<B, C, H, H>, f32, Dev, OwnedTape<f32, Dev>>,
    >,
{
    let mut bn = dev.build_module::<M, f32>();
    let x: Tensor<Rank4<B, C, H, H>, f32, Dev> = dev.sample_normal();
    let mut grads = Some(bn.alloc_grads());
    g.bench_function(name, |bch| {
        bch.iter(|| {
            let y = bn.forward_mut(x.trace(grads.take().unwrap()));
            let mut gr = y.sum().backward();
            bn.zero_grads(&mut gr);
            grads = Some(gr);
        })
    });
}

fn relu(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    // the training path's buffers come from dfdx's cache, as in the examples
    dev.enable_cache();
    let mut g = c.benchmark_group("relu");
    g.throughput(Throughput::Elements(B as u64));
    let x: Tensor<Rank4<B, 6, 28, 28>, f32, Dev> = dev.sample_normal();
    g.bench_function("fwd/b64_6x28x28", |bch| {
        bch.iter(|| ReLU.forward(black_box(x.clone())))
    });
    g.bench_function("fwd_bwd/b64_6x28x28", |bch| {
        bch.iter(|| ReLU.forward(x.trace(Gradients::leaky())).sum().backward())
    });
    g.bench_function("dfdx_fwd_bwd/b64_6x28x28", |bch| {
        bch.iter(|| x.trace(Gradients::leaky()).relu().sum().backward())
    });
    g.bench_function("sum_only_fwd_bwd/b64_6x28x28", |bch| {
        bch.iter(|| x.trace(Gradients::leaky()).sum().backward())
    });
    // the end of a residual block at the ResNet's first stage: the fused
    // rectified sum, and dfdx's `+` followed by static-nn's ReLU
    let a: Tensor<Rank4<B, 16, 28, 28>, f32, Dev> = dev.sample_normal();
    let s: Tensor<Rank4<B, 16, 28, 28>, f32, Dev> = dev.sample_normal();
    g.bench_function("add_relu_fwd_bwd/b64_16x28x28", |bch| {
        bch.iter(|| {
            let (at, st) = (a.trace(Gradients::leaky()), s.clone());
            Dev::try_add_relu(at, st).unwrap().sum().backward()
        })
    });
    g.bench_function("add_then_relu_fwd_bwd/b64_16x28x28", |bch| {
        bch.iter(|| {
            let (at, st) = (a.trace(Gradients::leaky()), s.clone());
            ReLU.forward(at + st).sum().backward()
        })
    });
    g.finish();
}

fn dropout(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let mut g = c.benchmark_group("dropout");
    g.throughput(Throughput::Elements(B as u64));
    let mut drop = dev.build_module::<Dropout<20>, f32>();
    let x: Tensor<Rank4<B, 16, 28, 28>, f32, Dev> = dev.sample_normal();
    g.bench_function("train_fwd/b64_16x28x28_p20", |bch| {
        bch.iter(|| drop.forward_mut(black_box(x.clone())))
    });
    let x: Tensor<Rank2<B, 64>, f32, Dev> = dev.sample_normal();
    g.bench_function("train_fwd/b64_64_p20", |bch| {
        bch.iter(|| drop.forward_mut(black_box(x.clone())))
    });
    g.finish();
}

/// Inference and a training step (forward_mut, a random linear loss,
/// backward) of one residual block; the gradients are reused.
macro_rules! block_bench {
    ($g:expr, $dev:expr, $name:expr, $block:ty, [$c:literal, $h:literal] -> [$o:literal, $ho:literal]) => {{
        let mut block = $dev.build_module::<$block, f32>();
        let x: Tensor<Rank4<B, $c, $h, $h>, f32, Dev> = $dev.sample_normal();
        let r: Tensor<Rank4<B, $o, $ho, $ho>, f32, Dev> = $dev.sample_normal();
        $g.bench_function(format!("fwd/{}", $name), |bch| {
            bch.iter(|| block.forward(black_box(x.clone())))
        });
        let mut grads = Some(block.alloc_grads());
        $g.bench_function(format!("train_fwd_bwd/{}", $name), |bch| {
            bch.iter(|| {
                let y = block.forward_mut(x.trace(grads.take().unwrap()));
                let mut gr = (y * r.clone()).sum().backward();
                block.zero_grads(&mut gr);
                grads = Some(gr);
            })
        });
    }};
}

fn basic_block(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let mut g = c.benchmark_group("basic_block");
    g.throughput(Throughput::Elements(B as u64));
    block_bench!(g, dev, "identity_b64_16x28x28_to_16x28x28", BasicBlock<16, 16, 1>,
        [16, 28] -> [16, 28]);
    block_bench!(g, dev, "projection_b64_16x28x28_to_32x14x14",
        BasicBlock<16, 32, 2, Projection<16, 32, 2>>, [16, 28] -> [32, 14]);
    g.finish();
}

fn global_avg_pool(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let mut g = c.benchmark_group("global_avg_pool");
    g.throughput(Throughput::Elements(B as u64));
    let pool = dev.build_module::<GlobalAvgPool2D, f32>();
    let x: Tensor<Rank4<B, 64, 7, 7>, f32, Dev> = dev.sample_normal();
    let r: Tensor<Rank2<B, 64>, f32, Dev> = dev.sample_normal();
    g.bench_function("fwd/b64_64x7x7", |bch| {
        bch.iter(|| pool.forward(black_box(x.clone())))
    });
    g.bench_function("fwd_bwd/b64_64x7x7", |bch| {
        bch.iter(|| (pool.forward(x.leaky_trace()) * r.clone()).sum().backward())
    });
    g.finish();
}

macro_rules! train_bench {
    ($g:expr, $dev:expr, $name:expr, $model:ty) => {
        train_bench!($g, $dev, $name, $model, |x| x)
    };
    ($g:expr, $dev:expr, $name:expr, $model:ty, $wrap:expr) => {{
        let mut model = $dev.build_module::<$model, f32>();
        let mut opt = Adam::new(&model, Default::default());
        let x: Tensor<Rank4<B, 1, 28, 28>, f32, Dev> = $dev.sample_normal();
        let t = onehot(&$dev);
        let mut grads = Some(model.alloc_grads());
        $g.bench_function($name, |bch| {
            bch.iter(|| {
                let logits = model.forward($wrap(x.trace(grads.take().unwrap())));
                let loss = cross_entropy_with_logits_loss(logits, t.clone());
                let mut g = loss.backward();
                opt.update(&mut model, &g).unwrap();
                model.zero_grads(&mut g);
                grads = Some(g);
            })
        });
    }};
}

fn train(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let mut g = c.benchmark_group("train_step");
    g.throughput(Throughput::Elements(B as u64));
    train_bench!(g, dev, "lenet_class/b64_adam", LeNetClass);
    train_bench!(g, dev, "mlp/b64_adam", Mlp);
    // the batch as `Classifier::fit` passes it: no gradient of its own
    train_bench!(
        g,
        dev,
        "lenet_class_no_input_grad/b64_adam",
        LeNetClass,
        NoInputGrad
    );
    train_bench!(g, dev, "mlp_no_input_grad/b64_adam", Mlp, NoInputGrad);
    // `Classifier::fit`'s step: a `SplitStep` over a host batch, on a
    // device with dfdx's cache, the batch whole and in two chunks side by
    // side
    let dev = Dev::seed_from_u64(0);
    dev.enable_cache();
    split_case::<LeNetClass>(&mut g, &dev, 1, "lenet_class_split1/b64_adam");
    split_case::<LeNetClass>(&mut g, &dev, 2, "lenet_class_split2/b64_adam");
    // the same steps inside `Classifier::fit_epoch`, batches from a loader
    epoch_case(&mut g);
    // ResNet in training mode: in two chunks, its batch norms share the
    // batch's statistics between them (a step takes tens of milliseconds)
    g.sample_size(20);
    split_case::<MnistResNet>(&mut g, &dev, 1, "resnet_split1/b64_adam");
    split_case::<MnistResNet>(&mut g, &dev, 2, "resnet_split2/b64_adam");
    g.finish();
}

/// [`Classifier::fit_epoch`] of the class LeNet over 100 shuffled batches of
/// 64 random MNIST-sized images, as the `lenet` example runs its epochs (a
/// device with dfdx's cache, no prefetch thread, two chunks side by side):
/// against `lenet_class_split2`, what the epoch loop adds to its steps
/// (batching, the learning rate, the loss bookkeeping).
fn epoch_case(g: &mut BenchmarkGroup<'_, WallTime>) {
    const BATCHES: usize = 100;
    let n = BATCHES * B;
    let mut rng = StdRng::seed_from_u64(1);
    let pixels: Vec<u8> = (0..n * 28 * 28).map(|_| rng.gen()).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let data = LabelledImages::new(28, 28, pixels, labels).unwrap();
    let loader = DataLoader::new(
        Arc::new(data),
        LoaderConfig {
            batch_size: B,
            shuffle: Some(0),
            prefetch: 0,
            ..Default::default()
        },
    );
    let dev = Dev::seed_from_u64(0);
    dev.enable_cache();
    let model = dev.build_module::<LeNetClass, f32>();
    let mut clf = Classifier::try_new(model, dev, OptimizerConfig::adam(1e-3)).unwrap();
    // as the examples do: on a worker of a pool (`fit_epoch` keeps the
    // pool's other worker awake itself)
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("lenet_class_epoch/100x_b64_adam", |bch| {
        bch.iter_custom(|iters| {
            pool.install(|| {
                let t = std::time::Instant::now();
                for e in 0..iters as usize {
                    clf.fit_epoch(&loader, e, &cross_entropy).unwrap();
                }
                t.elapsed()
            })
        })
    });
    g.throughput(Throughput::Elements(B as u64));
}

/// `SplitStep` training steps of model `M` in `chunks` chunks on a host
/// batch of 64 random MNIST-sized images.
fn split_case<M>(g: &mut BenchmarkGroup<'_, WallTime>, dev: &Dev, chunks: usize, name: &str)
where
    M: BuildOnDevice<Dev, f32>,
    M::Built: ImageClassifier<Dev> + Send,
{
    let mut model = dev.build_module::<M, f32>();
    let mut opt = Optim::new(&model, OptimizerConfig::adam(1e-3)).unwrap();
    let mut step = SplitStep::new(chunks).unwrap();
    let batch = Batch {
        images: dev.sample_normal::<Rank4<B, 1, 28, 28>>().as_vec(),
        labels: (0..B).map(|i| (i * 7) % 10).collect(),
        channels: 1,
        rows: 28,
        cols: 28,
    };
    // as the examples run `Classifier::fit`: on a worker of the pool, whose
    // other worker looks for work between the parallel loops (unless the
    // chunks run on threads of the step's own)
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    let awake = !step.runs_on_own_threads(&model);
    g.bench_function(name, |bch| {
        bch.iter_custom(|iters| {
            let mut run = || {
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    step.step(&mut model, dev, &mut opt, batch.clone(), &cross_entropy)
                        .unwrap();
                }
                t.elapsed()
            };
            pool.install(|| {
                if awake {
                    static_nn::parallel::keep_workers_awake(run)
                } else {
                    run()
                }
            })
        })
    });
}

fn infer_at<const N: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dev: &Dev,
) {
    let model = dev.build_module::<LeNetClass, f32>();
    let x: Tensor<Rank4<N, 1, 28, 28>, f32, Dev> = dev.sample_normal();
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(format!("lenet_class/b{N}"), |bch| {
        bch.iter(|| model.forward(black_box(x.clone())))
    });
}

fn inference(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let mut g = c.benchmark_group("inference");
    infer_at::<1>(&mut g, &dev);
    infer_at::<64>(&mut g, &dev);
    infer_at::<1000>(&mut g, &dev);
    g.finish();
}

/// The typed model and the hand-written ops, alternating inside one group so
/// both see the same load; criterion reports each, the ratio is theirs.
fn typed_overhead(c: &mut Criterion) {
    let dev = Dev::seed_from_u64(0);
    let mut g = c.benchmark_group("typed_overhead");
    g.throughput(Throughput::Elements(B as u64));
    let model = dev.build_module::<LeNetClass, f32>();
    let raw = RawLeNet::from(&model);
    let x: Tensor<Rank4<B, 1, 28, 28>, f32, Dev> = dev.sample_normal();
    let t = onehot(&dev);
    g.bench_function("infer_b64/typed", |bch| {
        bch.iter(|| model.forward(black_box(x.clone())))
    });
    g.bench_function("infer_b64/ops", |bch| {
        bch.iter(|| raw.forward(black_box(x.clone())))
    });
    g.bench_function("fwd_bwd_b64/typed", |bch| {
        bch.iter(|| {
            let loss = cross_entropy_with_logits_loss(model.forward(x.leaky_trace()), t.clone());
            loss.backward()
        })
    });
    g.bench_function("fwd_bwd_b64/ops", |bch| {
        bch.iter(|| {
            let loss = cross_entropy_with_logits_loss(raw.forward(x.leaky_trace()), t.clone());
            loss.backward()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    conv,
    pool,
    linear,
    batchnorm,
    relu,
    dropout,
    basic_block,
    global_avg_pool,
    train,
    inference,
    typed_overhead
);
criterion_main!(benches);
