//! The static-nn side of `bench/race-pytorch.sh`: runs one workload for a
//! fixed time and prints one line of JSON with its throughput and the
//! process's peak RSS.
//!
//! ```text
//! cargo run --release --example race -- lenet-train [seconds]
//! ```
//!
//! Workloads: `lenet-train`, `mlp-train` (batch 64, Adam, cross-entropy, on
//! random data: the same steps `bench/race_torch.py` times in PyTorch; run
//! as `Classifier::fit` runs them, by a [`SplitStep`] chosen for the model:
//! LeNet in two chunks of 32 side by side, the MLP whole; the batch goes in
//! as [`NoInputGrad`], so no side computes the gradient of the data),
//! `lenet-train-whole`, `mlp-train-whole` (the same with the whole batch at
//! once),
//! `lenet-infer-1`, `lenet-infer-64`, `lenet-infer-1000` (without a tape,
//! through `ChunkedForward::forward_chunked`, which cuts a batch into
//! chunks of at most 32 samples and runs each through the whole network on
//! one worker), `resnet-train` ([`MnistResNet`] in training mode, batch
//! 64, Adam, through `SplitStep::auto`: two chunks whose batch norms share
//! the whole batch's statistics), `resnet-train-whole` (the same step on
//! the whole batch at once, `forward_mut`), `resnet-infer-256` (`MnistResNet` in
//! inference mode, `forward_chunked`, batch 256), `lenet-infer-64-forward`,
//! `lenet-infer-1000-forward` and `resnet-infer-256-forward` (the same with
//! plain `forward`, each layer on the whole batch), and `lenet-train-ops` / `lenet-infer-64-ops` (the class LeNet
//! written directly with the ops, for the typed-overhead ratio).
//!
//! The device has dfdx's allocation cache enabled (`Cpu::enable_cache`), as
//! the `lenet` example does.
#[path = "../benches/common/raw_lenet.rs"]
mod raw_lenet;
use raw_lenet::RawLeNet;
use static_nn::data::Batch;
use static_nn::nn::ChunkedForward;
use static_nn::prelude::*;
use static_nn::train::{cross_entropy, ImageClassifier, Optim, OptimizerConfig, SplitStep};
use std::time::{Duration, Instant};

type Dev = Cpu;
const B: usize = 64;

/// Peak resident set size of this process, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `step` (which processes `per_step` samples) for a warm-up, then for
/// `secs` seconds; returns (samples/s, steps, median step µs).
fn time_it(secs: f64, per_step: usize, step: impl FnMut()) -> (f64, usize, f64) {
    time_it_awake(secs, per_step, true, step)
}

/// [`time_it`], with the pool's other worker kept looking for work between
/// the parallel loops (`awake`, as `Classifier::fit` runs its epochs:
/// OpenMP's active wait, ONNX Runtime's spinning) or not (for a split step
/// whose chunks run on threads of its own, as `fit` runs those).
fn time_it_awake(
    secs: f64,
    per_step: usize,
    awake: bool,
    mut step: impl FnMut(),
) -> (f64, usize, f64) {
    // `RACE_STEPS=n`: exactly n steps, no warm-up (for callgrind).
    if let Some(n) = std::env::var("RACE_STEPS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        let t0 = Instant::now();
        for _ in 0..n {
            step();
        }
        let dt = t0.elapsed().as_secs_f64();
        return ((n * per_step) as f64 / dt, n, dt / n as f64 * 1e6);
    }
    if awake {
        static_nn::parallel::keep_workers_awake(|| timed_steps(secs, per_step, step))
    } else {
        timed_steps(secs, per_step, step)
    }
}

/// The timed part of [`time_it`]: a warm-up, then steps for `secs` seconds.
fn timed_steps(secs: f64, per_step: usize, mut step: impl FnMut()) -> (f64, usize, f64) {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs_f64((secs * 0.2).min(0.5)) {
        step();
    }
    let mut laps = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        let t = Instant::now();
        step();
        laps.push(t.elapsed().as_secs_f64());
    }
    let total = t0.elapsed().as_secs_f64();
    laps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = laps.len();
    ((n * per_step) as f64 / total, n, laps[n / 2] * 1e6)
}

fn onehot(dev: &Dev) -> Tensor<Rank2<B, 10>, f32, Dev> {
    let mut v = vec![0.0f32; B * 10];
    for i in 0..B {
        v[i * 10 + (i * 7) % 10] = 1.0;
    }
    dev.tensor_from_vec(v, (Const::<B>, Const::<10>))
}

/// A training step of `model` on a batch of 64 random MNIST-sized images
/// with Adam and cross-entropy, as `Classifier::fit` takes it: a
/// [`SplitStep`] chosen for the model ([`SplitStep::auto`]: two chunks side
/// by side for LeNet and the ResNet, the whole batch for the MLP), or the
/// whole batch at once if `whole`.
fn split_train<M: ImageClassifier<Dev>>(
    dev: &Dev,
    mut model: M,
    secs: f64,
    whole: bool,
) -> (f64, usize, f64) {
    let mut opt = Optim::new(&model, OptimizerConfig::adam(1e-3)).unwrap();
    let mut step = if whole {
        SplitStep::new(1).unwrap()
    } else {
        SplitStep::auto(&model)
    };
    let images: Vec<f32> = dev.sample_normal::<Rank4<B, 1, 28, 28>>().as_vec();
    let batch = Batch {
        images,
        labels: (0..B).map(|i| (i * 7) % 10).collect(),
        channels: 1,
        rows: 28,
        cols: 28,
    };
    // as `Classifier::fit` runs it: the pool's workers kept awake unless
    // the chunks run on threads of the step's own
    let awake = !step.runs_on_own_threads(&model);
    time_it_awake(secs, B, awake, || {
        step.step(&mut model, dev, &mut opt, batch.clone(), &cross_entropy)
            .unwrap();
    })
}

/// LeNet inference at batch `N`: `forward_chunked` (the library's inference
/// path for a batch), or plain `forward` when `chunked` is false.
fn lenet_infer<const N: usize>(dev: &Dev, secs: f64, chunked: bool) -> (f64, usize, f64) {
    let model = dev.build_module::<LeNetClass, f32>();
    let x = dev.sample_normal::<Rank4<N, 1, 28, 28>>();
    time_it(secs, N, || {
        let y = if chunked {
            model.forward_chunked(x.clone())
        } else {
            model.forward(x.clone())
        };
        std::hint::black_box(y);
    })
}

/// `n`×`n` times `n`×`n` in f32 with the gemm crate, on rayon's threads.
fn sgemm(n: usize, secs: f64) -> (f64, usize, f64) {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    let threads = rayon::current_num_threads();
    time_it(secs, 1, || {
        // SAFETY: all three buffers hold n·n values, row-major (row stride
        // n, column stride 1), and do not overlap.
        unsafe {
            gemm::gemm(
                n,
                n,
                n,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                n as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(threads),
            )
        }
        std::hint::black_box(&c);
    })
}

/// Alternates blocks of typed and hand-written (ops) steps in one process, so
/// both see the same load; prints the median over blocks of
/// `typed time / ops time − 1`, for training steps and batch-64 inference.
fn typed_overhead(dev: &Dev, secs: f64) {
    const BLOCK: usize = 5;
    let mut model = dev.build_module::<LeNetClass, f32>();
    let mut opt = Optim::new(&model, OptimizerConfig::adam(1e-3)).unwrap();
    let x = dev.sample_normal::<Rank4<B, 1, 28, 28>>();
    let t = onehot(dev);
    let mut grads = Some(model.alloc_grads());
    let mut train = |typed: bool| {
        let g = grads.take().unwrap();
        let logits = if typed {
            model.forward(x.trace(g))
        } else {
            RawLeNet::from(&model).forward(x.trace(g))
        };
        let loss = cross_entropy_with_logits_loss(logits, t.clone());
        let mut g = loss.backward();
        opt.update(&mut model, &g).unwrap();
        model.zero_grads(&mut g);
        grads = Some(g);
    };
    let ratios = |step: &mut dyn FnMut(bool)| {
        let mut r = Vec::new();
        let t0 = Instant::now();
        for _ in 0..BLOCK {
            step(true);
            step(false);
        }
        let mut round = 0;
        while t0.elapsed() < Duration::from_secs_f64(secs) || r.len() < 5 {
            let mut dt = [0.0f64; 2];
            // alternate which goes first
            for typed in [round % 2 == 0, round % 2 != 0] {
                let s = Instant::now();
                for _ in 0..BLOCK {
                    step(typed);
                }
                dt[typed as usize] = s.elapsed().as_secs_f64();
            }
            r.push(dt[1] / dt[0] - 1.0);
            round += 1;
        }
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (r[r.len() / 2], r.len())
    };
    let (train_ovh, n_train) = ratios(&mut train);
    let m2 = dev.build_module::<LeNetClass, f32>();
    let raw = RawLeNet::from(&m2);
    let mut infer = |typed: bool| {
        if typed {
            std::hint::black_box(m2.forward(x.clone()));
        } else {
            std::hint::black_box(raw.forward(x.clone()));
        }
    };
    let (infer_ovh, n_infer) = ratios(&mut infer);
    println!(
        "{{\"side\":\"static-nn\",\"workload\":\"typed-overhead\",\"train_overhead\":{train_ovh:.4},\"train_blocks\":{n_train},\"infer64_overhead\":{infer_ovh:.4},\"infer_blocks\":{n_infer}}}"
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "lenet-train".into());
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let dev = Dev::seed_from_u64(0);
    // dfdx's allocation cache: every step's tensors reuse the memory of the
    // step before (PyTorch's CPU allocator caches too). The kernels' own
    // scratch is reused by their workspaces either way.
    dev.enable_cache();
    if what == "typed-overhead" {
        typed_overhead(&dev, secs);
        return;
    }
    // The steps run on a rayon worker (`install`), so the kernels' parallel
    // loops start without waking and parking this thread each time.
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .expect("a rayon thread pool");
    let (sps, steps, med_us) = pool.install(|| match what.as_str() {
        "lenet-train" | "lenet-train-whole" => {
            let model = dev.build_module::<LeNetClass, f32>();
            split_train(&dev, model, secs, what == "lenet-train-whole")
        }
        "lenet-train-ops" => {
            // The same computation, written directly with the ops and dfdx.
            let mut model = dev.build_module::<LeNetClass, f32>();
            let mut opt = Optim::new(&model, OptimizerConfig::adam(1e-3)).unwrap();
            let x = dev.sample_normal::<Rank4<B, 1, 28, 28>>();
            let t = onehot(&dev);
            let mut grads = Some(model.alloc_grads());
            time_it(secs, B, || {
                // Share the parameters with the typed model so the optimizer
                // step is identical; only the forward/backward differ.
                let raw = RawLeNet::from(&model);
                let logits = raw.forward(x.trace(grads.take().unwrap()));
                drop(raw);
                let loss = cross_entropy_with_logits_loss(logits, t.clone());
                let mut g = loss.backward();
                opt.update(&mut model, &g).unwrap();
                model.zero_grads(&mut g);
                grads = Some(g);
            })
        }
        "mlp-train" | "mlp-train-whole" => {
            let model = dev.build_module::<Mlp, f32>();
            split_train(&dev, model, secs, what == "mlp-train-whole")
        }
        "resnet-train" => {
            // Training mode (PyTorch's model.train()): batch statistics
            // (shared by the chunks of the split step), running-stat
            // updates, dropout.
            let model = dev.build_module::<MnistResNet, f32>();
            split_train(&dev, model, secs, false)
        }
        "resnet-train-whole" => {
            // Training mode: batch statistics, running-stat updates, dropout
            // (PyTorch's model.train()).
            let mut model = dev.build_module::<MnistResNet, f32>();
            let mut opt = Optim::new(&model, OptimizerConfig::adam(1e-3)).unwrap();
            let x = dev.sample_normal::<Rank4<B, 1, 28, 28>>();
            let t = onehot(&dev);
            let mut grads = Some(model.alloc_grads());
            time_it(secs, B, || {
                let logits = model.forward_mut(NoInputGrad(x.trace(grads.take().unwrap())));
                let loss = cross_entropy_with_logits_loss(logits, t.clone());
                let mut g = loss.backward();
                opt.update(&mut model, &g).unwrap();
                model.zero_grads(&mut g);
                grads = Some(g);
            })
        }
        "resnet-infer-256" | "resnet-infer-256-forward" => {
            let chunked = what == "resnet-infer-256";
            // Inference mode: running statistics, no dropout, no tape
            // (PyTorch's model.eval() under no_grad).
            const N: usize = 256;
            let model = dev.build_module::<MnistResNet, f32>();
            let x = dev.sample_normal::<Rank4<N, 1, 28, 28>>();
            time_it(secs, N, || {
                if chunked {
                    std::hint::black_box(model.forward_chunked(x.clone()));
                } else {
                    std::hint::black_box(model.forward(x.clone()));
                }
            })
        }
        "lenet-infer-1" => lenet_infer::<1>(&dev, secs, true),
        "lenet-infer-64" => lenet_infer::<64>(&dev, secs, true),
        "lenet-infer-1000" => lenet_infer::<1000>(&dev, secs, true),
        "lenet-infer-64-forward" => lenet_infer::<64>(&dev, secs, false),
        "lenet-infer-1000-forward" => lenet_infer::<1000>(&dev, secs, false),
        "lenet-infer-64-ops" => {
            let model = dev.build_module::<LeNetClass, f32>();
            let raw = RawLeNet::from(&model);
            let x = dev.sample_normal::<Rank4<B, 1, 28, 28>>();
            time_it(secs, B, || {
                std::hint::black_box(raw.forward(x.clone()));
            })
        }
        // the machine's reference: one 2048³ f32 matrix product by the gemm
        // crate (the one static-nn's kernels call) on all threads; a
        // "sample" is one product, so GFLOP/s = samples/s × 2·2048³ / 1e9
        "sgemm-2048" => sgemm(2048, secs),
        other => {
            eprintln!("unknown workload {other}");
            std::process::exit(2);
        }
    });
    println!(
        "{{\"side\":\"static-nn\",\"workload\":\"{what}\",\"samples_per_s\":{sps:.1},\"steps\":{steps},\"median_step_us\":{med_us:.1},\"peak_rss_kib\":{}}}",
        peak_rss_kib()
    );
}
