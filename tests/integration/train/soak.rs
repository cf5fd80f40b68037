//! Training under scrutiny, on the real MNIST set (`$MNIST_DIR`, the cache
//! or a download; the tests fail, never skip, without it):
//!
//! - determinism: on the CPU the same seed gives bit-identical weights after
//!   an epoch on a 2,000-image subset, and another seed different ones;
//! - memory: the resident memory (VmRSS) of a process training the class
//!   LeNet does not grow from epoch to epoch. The short run asserts it; the
//!   `#[ignore]`d long run prints the figures
//!   (`cargo test --test integration -- --ignored --nocapture soak_long`;
//!   `STATIC_NN_SOAK_EPOCHS` and `STATIC_NN_SOAK_SAMPLES` size it).
//!
//! VmRSS counts the whole process: the short run runs again alone, in a
//! process of its own, so that the other tests of this binary do not count
//! in it. The tests of this file run one at a time (a lock), so that the
//! memory figures are the soak's alone.

use std::sync::{Arc, Mutex};

use static_nn::data::{DataLoader, LabelledImages, LoaderConfig, Normalize};
use static_nn::prelude::*;
use static_nn::train::{Classifier, OptimizerConfig};
use static_nn::weights;

use crate::common::{in_own_process, mnist};

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn subset(n: usize) -> Arc<LabelledImages> {
    let train = &mnist().train;
    Arc::new(train.subset(0..n.min(train.len())))
}

fn loader(data: Arc<LabelledImages>, seed: u64) -> DataLoader {
    DataLoader::new(
        data,
        LoaderConfig {
            batch_size: 64,
            shuffle: Some(seed),
            drop_last: false,
            normalize: Some(Normalize::MNIST),
            ..LoaderConfig::default()
        },
    )
}

/// The weights file after `epochs` epochs of SGD from `seed` (which seeds
/// both the initial weights and the shuffling).
fn train_bytes(data: &Arc<LabelledImages>, seed: u64, epochs: usize) -> Vec<u8> {
    let dev = Cpu::seed_from_u64(seed);
    let model = dev.build_module::<LeNetClass, f32>();
    let mut clf = Classifier::new(model, dev, OptimizerConfig::sgd(0.01));
    clf.fit(&loader(Arc::clone(data), seed), epochs).unwrap();
    weights::to_bytes(&clf.model).unwrap()
}

#[test]
fn same_seed_same_weights_bit_for_bit() {
    let _g = one_at_a_time();
    let data = subset(2_000);
    let a = train_bytes(&data, 7, 1);
    let b = train_bytes(&data, 7, 1);
    let c = train_bytes(&data, 8, 1);
    let untrained = {
        let dev = Cpu::seed_from_u64(7);
        weights::to_bytes(&dev.build_module::<LeNetClass, f32>()).unwrap()
    };
    assert_eq!(a.len(), b.len());
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert_eq!(
        differing, 0,
        "same seed: {differing} bytes of the weights differ"
    );
    assert_ne!(a, c, "a different seed gave the same weights");
    assert_ne!(a, untrained, "training changed nothing");
}

/// Resident memory of this process, in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Trains the class LeNet for `epochs` epochs on `samples` images and
/// returns the resident memory after each epoch (KiB), with the loss.
fn soak(samples: usize, epochs: usize) -> Vec<(u64, f32)> {
    let data = subset(samples);
    let dev = Cpu::seed_from_u64(0);
    let model = dev.build_module::<LeNetClass, f32>();
    let mut clf = Classifier::new(model, dev, OptimizerConfig::sgd(0.01));
    let train = loader(data, 0);
    let mut out = Vec::new();
    for _ in 0..epochs {
        let stats = clf.fit(&train, 1).unwrap()[0];
        out.push((rss_kib(), stats.loss));
    }
    out
}

fn report(figures: &[(u64, f32)]) {
    for (e, (rss, loss)) in figures.iter().enumerate() {
        println!(
            "epoch {:>3}: VmRSS {:>8} KiB ({:>6.1} MiB), loss {loss:.4}",
            e + 1,
            rss,
            *rss as f64 / 1024.0
        );
    }
}

#[test]
fn memory_does_not_grow_from_epoch_to_epoch() {
    if !in_own_process(module_path!(), "memory_does_not_grow_from_epoch_to_epoch") {
        return; // it ran, and passed, in a child process
    }
    let _g = one_at_a_time();
    mnist(); // the data set's memory is not the soak's
    let figures = soak(3_000, 5);
    report(&figures);
    // After a warm-up epoch (allocator pools, the tensor cache, the rayon
    // threads), each epoch may add at most 10% to the resident memory, and
    // the last is within 15% of the first after warm-up.
    let rss: Vec<u64> = figures.iter().map(|f| f.0).collect();
    for w in rss[1..].windows(2) {
        assert!(
            w[1] as f64 <= w[0] as f64 * 1.10,
            "resident memory grew by more than 10% in one epoch: {rss:?} KiB"
        );
    }
    assert!(
        rss[rss.len() - 1] as f64 <= rss[1] as f64 * 1.15,
        "resident memory grew over the run: {rss:?} KiB"
    );
}

#[test]
#[ignore = "long run for the report: cargo test --test integration -- --ignored --nocapture soak_long"]
fn soak_long() {
    let _g = one_at_a_time();
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (epochs, samples) = (
        env("STATIC_NN_SOAK_EPOCHS", 10),
        env("STATIC_NN_SOAK_SAMPLES", 60_000),
    );
    mnist();
    println!("before training: VmRSS {} KiB", rss_kib());
    let figures = soak(samples, epochs);
    println!("class LeNet, {samples} images per epoch, {epochs} epochs:");
    report(&figures);
    let rss: Vec<u64> = figures.iter().map(|f| f.0).collect();
    let growth = rss[rss.len() - 1] as f64 / rss[1.min(rss.len() - 1)] as f64 - 1.0;
    println!("growth from epoch 2 to the last: {:+.1}%", growth * 100.0);
    assert!(growth < 0.15, "{rss:?}");
}

/// A seeded run (`Classifier::train` with a seed: the examples' way) moves
/// the model to a freshly seeded device every epoch, with dfdx's tensor
/// cache on. dfdx 0.13 does not free a cache when its device is dropped, so
/// each epoch's cache must be emptied when the next begins: resident memory
/// after 6 epochs stays within 10% of that after 2 (without it, every epoch
/// kept its tensors: +190 MB per epoch of the `lenet` example).
#[test]
fn seeded_epochs_free_the_devices_they_leave() {
    if !in_own_process(module_path!(), "seeded_epochs_free_the_devices_they_leave") {
        return; // it ran, and passed, in a child process
    }
    let _g = one_at_a_time();
    mnist();
    let dev = Cpu::seed_from_u64(0);
    dev.enable_cache();
    let model = dev.build_module::<LeNetClass, f32>();
    let mut clf = Classifier::new(model, dev, OptimizerConfig::adam(1e-3));
    clf.set_seed(Some(3));
    let train = loader(subset(3_000), 3);
    let rss_after = |clf: &mut Classifier<_, _>, epochs| {
        let opts = static_nn::train::TrainOptions {
            epochs,
            ..Default::default()
        };
        clf.train(&train, None, &opts).unwrap();
        rss_kib()
    };
    let two = rss_after(&mut clf, 2);
    let six = rss_after(&mut clf, 6);
    assert_eq!(clf.history.len(), 6);
    assert!(
        six as f64 <= two as f64 * 1.10,
        "resident memory grew from {two} KiB after 2 epochs to {six} KiB after 6"
    );
}

/// The convolutions, pools and batch norms write their outputs straight
/// into buffers taken from dfdx's allocation cache and give them back as the
/// output tensors: the cache must neither grow nor lose track of them. On
/// a cache-enabled device, 100 more passes (inference and training, LeNet
/// and the ResNet with batch norm) after a warm-up leave the resident memory
/// within 10% (were a pass to file its outputs without taking one back, the
/// LeNet passes alone would keep 2.5 MB each).
#[test]
fn cached_outputs_do_not_pile_up() {
    if !in_own_process(module_path!(), "cached_outputs_do_not_pile_up") {
        return; // it ran, and passed, in a child process
    }
    let _g = one_at_a_time();
    let dev = Cpu::seed_from_u64(0);
    dev.enable_cache();
    let lenet = dev.build_module::<LeNetClass, f32>();
    let mut resnet = dev.build_module::<MnistResNet, f32>();
    let x: Tensor<Rank4<64, 1, 28, 28>, f32, _> = dev.sample_normal();
    let small: Tensor<Rank4<8, 1, 28, 28>, f32, _> = dev.sample_normal();
    type Res = <MnistResNet as BuildOnDevice<Cpu, f32>>::Built;
    let passes = |n: usize, resnet: &mut Res| {
        for _ in 0..n {
            std::hint::black_box(lenet.forward(x.clone()));
            let loss = lenet.forward(x.trace(Gradients::leaky())).sum();
            std::hint::black_box(loss.backward());
            let y = resnet.forward_mut(small.trace(Gradients::leaky()));
            std::hint::black_box(y.sum().backward());
        }
        rss_kib()
    };
    let warm = passes(10, &mut resnet);
    let after = passes(100, &mut resnet);
    assert!(
        after as f64 <= warm as f64 * 1.10,
        "resident memory grew from {warm} KiB after 10 passes to {after} KiB after 110"
    );
}
