//! The static-nn side of `bench/race-pytorch.sh`: runs one workload for a
//! fixed time and prints one line of JSON with its throughput and the
//! process's peak RSS.
//!
//! ```text
//! cargo run --release --example race -- lenet-train [seconds]
//! ```
//!
//! Workloads: `lenet-train`, `mlp-train` (batch 64, Adam, cross-entropy, on
//! random data: the same steps `bench/race_torch.py` times in PyTorch),
//! `lenet-infer-1`, `lenet-infer-64`, `lenet-infer-1000` (forward without a
//! tape), and `lenet-train-ops` / `lenet-infer-64-ops` (the class LeNet
//! written directly with the ops, for the typed-overhead ratio).
use static_nn::ops::{Conv2DKernel, Conv2DOp, Pool2DKernel, Pool2DOp, PoolKind};
use static_nn::prelude::*;
use dfdx::optim::{Adam, Optimizer};
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
fn time_it(secs: f64, per_step: usize, mut step: impl FnMut()) -> (f64, usize, f64) {
    // `RACE_STEPS=n`: exactly n steps, no warm-up (for callgrind).
    if let Some(n) = std::env::var("RACE_STEPS").ok().and_then(|s| s.parse::<usize>().ok()) {
        let t0 = Instant::now();
        for _ in 0..n {
            step();
        }
        let dt = t0.elapsed().as_secs_f64();
        return ((n * per_step) as f64 / dt, n, dt / n as f64 * 1e6);
    }
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
    (
        (n * per_step) as f64 / total,
        n,
        laps[n / 2] * 1e6,
    )
}

fn onehot(dev: &Dev) -> Tensor<Rank2<B, 10>, f32, Dev> {
    let mut v = vec![0.0f32; B * 10];
    for i in 0..B {
        v[i * 10 + (i * 7) % 10] = 1.0;
    }
    dev.tensor_from_vec(v, (Const::<B>, Const::<10>))
}

/// The class LeNet's parameters, used directly with the ops.
struct RawLeNet {
    w1: Tensor<Rank4<6, 1, 5, 5>, f32, Dev>,
    b1: Tensor<Rank1<6>, f32, Dev>,
    w2: Tensor<Rank4<16, 6, 5, 5>, f32, Dev>,
    b2: Tensor<Rank1<16>, f32, Dev>,
    w3: Tensor<Rank2<84, 400>, f32, Dev>,
    b3: Tensor<Rank1<84>, f32, Dev>,
    w4: Tensor<Rank2<10, 84>, f32, Dev>,
    b4: Tensor<Rank1<10>, f32, Dev>,
}

impl RawLeNet {
    fn from(m: &<LeNetClass as BuildOnDevice<Dev, f32>>::Built) -> Self {
        Self {
            w1: m.conv1.weight.clone(),
            b1: m.conv1.bias.clone(),
            w2: m.conv2.weight.clone(),
            b2: m.conv2.bias.clone(),
            w3: m.fc1.weight.clone(),
            b3: m.fc1.bias.clone(),
            w4: m.fc2.weight.clone(),
            b4: m.fc2.bias.clone(),
        }
    }

    fn forward<const N: usize, T: Tape<f32, Dev>>(
        &self,
        x: Tensor<Rank4<N, 1, 28, 28>, f32, Dev, T>,
    ) -> Tensor<Rank2<N, 10>, f32, Dev, T> {
        let c1 = Conv2DOp::new(N, 1, 6, (28, 28), (5, 5), 1, 2).unwrap();
        let x = Dev::try_conv2d(c1, x, &self.w1, &self.b1, (Const::<N>, Const::<6>, Const::<28>, Const::<28>)).unwrap();
        let p1 = Pool2DOp::new(PoolKind::Max, N * 6, (28, 28), 2, 2, 0).unwrap();
        let x = Dev::try_pool2d(p1, x.relu(), (Const::<N>, Const::<6>, Const::<14>, Const::<14>)).unwrap();
        let c2 = Conv2DOp::new(N, 6, 16, (14, 14), (5, 5), 1, 0).unwrap();
        let x = Dev::try_conv2d(c2, x, &self.w2, &self.b2, (Const::<N>, Const::<16>, Const::<10>, Const::<10>)).unwrap();
        let p2 = Pool2DOp::new(PoolKind::Max, N * 16, (10, 10), 2, 2, 0).unwrap();
        let x = Dev::try_pool2d(p2, x.relu(), (Const::<N>, Const::<16>, Const::<5>, Const::<5>)).unwrap();
        let x = x.reshape::<Rank2<N, 400>>();
        let x = (x.matmul(self.w3.retaped::<T>().permute()) + self.b3.retaped::<T>().broadcast()).relu();
        x.matmul(self.w4.retaped::<T>().permute()) + self.b4.retaped::<T>().broadcast()
    }
}

fn lenet_infer<const N: usize>(dev: &Dev, secs: f64) -> (f64, usize, f64) {
    let model = dev.build_module::<LeNetClass, f32>();
    let x = dev.sample_normal::<Rank4<N, 1, 28, 28>>();
    time_it(secs, N, || {
        let y = model.forward(x.clone());
        std::hint::black_box(y);
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "lenet-train".into());
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let dev = Dev::seed_from_u64(0);
    let (sps, steps, med_us) = match what.as_str() {
        "lenet-train" => {
            let mut model = dev.build_module::<LeNetClass, f32>();
            let mut opt = Adam::new(&model, Default::default());
            let x = dev.sample_normal::<Rank4<B, 1, 28, 28>>();
            let t = onehot(&dev);
            let mut grads = Some(model.alloc_grads());
            time_it(secs, B, || {
                let logits = model.forward(x.trace(grads.take().unwrap()));
                let loss = cross_entropy_with_logits_loss(logits, t.clone());
                let mut g = loss.backward();
                opt.update(&mut model, &g).unwrap();
                model.zero_grads(&mut g);
                grads = Some(g);
            })
        }
        "lenet-train-ops" => {
            // The same computation, written directly with the ops and dfdx.
            let mut model = dev.build_module::<LeNetClass, f32>();
            let mut opt = Adam::new(&model, Default::default());
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
        "mlp-train" => {
            let mut model = dev.build_module::<Mlp, f32>();
            let mut opt = Adam::new(&model, Default::default());
            let x = dev.sample_normal::<Rank4<B, 1, 28, 28>>();
            let t = onehot(&dev);
            let mut grads = Some(model.alloc_grads());
            time_it(secs, B, || {
                let logits = model.forward(x.trace(grads.take().unwrap()));
                let loss = cross_entropy_with_logits_loss(logits, t.clone());
                let mut g = loss.backward();
                opt.update(&mut model, &g).unwrap();
                model.zero_grads(&mut g);
                grads = Some(g);
            })
        }
        "lenet-infer-1" => lenet_infer::<1>(&dev, secs),
        "lenet-infer-64" => lenet_infer::<64>(&dev, secs),
        "lenet-infer-1000" => lenet_infer::<1000>(&dev, secs),
        "lenet-infer-64-ops" => {
            let model = dev.build_module::<LeNetClass, f32>();
            let raw = RawLeNet::from(&model);
            let x = dev.sample_normal::<Rank4<B, 1, 28, 28>>();
            time_it(secs, B, || {
                std::hint::black_box(raw.forward(x.clone()));
            })
        }
        other => {
            eprintln!("unknown workload {other}");
            std::process::exit(2);
        }
    };
    println!(
        "{{\"side\":\"static-nn\",\"workload\":\"{what}\",\"samples_per_s\":{sps:.1},\"steps\":{steps},\"median_step_us\":{med_us:.1},\"peak_rss_kib\":{}}}",
        peak_rss_kib()
    );
}
