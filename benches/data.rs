//! Data benches: decoding MNIST's training images from `.gz`, and loader
//! throughput (batches per second) over one epoch without a model.
//!
//! Needs the real MNIST files: `MNIST_DIR=../shared/data/mnist cargo bench --bench data`
//! (or the cache / a download, as `static_nn::data::locate` finds them).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dfdx::prelude::*;
use static_nn::data::{
    find_in_dir, locate, read_idx_images, DataLoader, IdxDataset, LabelledImages, LoaderConfig,
    Normalize, Split, MNIST,
};

fn mnist_dir() -> PathBuf {
    locate(&MNIST, None).unwrap_or_else(|e| {
        panic!("the data benches need MNIST.\n{e}\nHint: MNIST_DIR=../shared/data/mnist cargo bench --bench data")
    })
}

fn decode(c: &mut Criterion) {
    let dir = mnist_dir();
    let images = find_in_dir(&dir, &MNIST.files[0]).expect("located above");
    let mut g = c.benchmark_group("mnist_decode");
    g.sample_size(10);
    g.throughput(Throughput::Elements(60_000));
    g.bench_function("train_60000_gz", |b| {
        b.iter(|| {
            let (n, _, _, px) = read_idx_images(black_box(&images)).expect("valid file");
            assert_eq!(n, 60_000);
            px
        })
    });
    g.bench_function("load_both_splits", |b| {
        b.iter(|| IdxDataset::load(&MNIST, Some(&dir)).expect("valid files"))
    });
    g.finish();
}

fn loader(c: &mut Criterion) {
    let dir = mnist_dir();
    let train: Arc<LabelledImages> =
        Arc::new(IdxDataset::load_split(&MNIST, Some(&dir), Split::Train).expect("valid files"));
    let cfg = |prefetch| LoaderConfig {
        batch_size: 64,
        shuffle: Some(0),
        drop_last: false,
        prefetch,
        normalize: Some(Normalize::MNIST),
        augment: None,
    };
    let mut g = c.benchmark_group("loader");
    g.sample_size(10);
    let l = DataLoader::new(Arc::clone(&train), cfg(2));
    // elements = batches, so criterion reports batches per second
    g.throughput(Throughput::Elements(l.len() as u64));
    let mut epoch = 0;
    g.bench_function("batch64_epoch", |b| {
        b.iter(|| {
            epoch += 1;
            l.epoch(epoch)
                .map(|b| black_box(b.images.len()))
                .sum::<usize>()
        })
    });
    let shifted = LoaderConfig {
        augment: Some(static_nn::data::Augment::shifts(2)),
        ..cfg(0)
    };
    let la = DataLoader::new(Arc::clone(&train), shifted);
    g.bench_function("batch64_epoch_shift2_no_prefetch", |b| {
        b.iter(|| {
            epoch += 1;
            la.epoch(epoch)
                .map(|b| black_box(b.images.len()))
                .sum::<usize>()
        })
    });
    let l0 = DataLoader::new(Arc::clone(&train), cfg(0));
    g.bench_function("batch64_epoch_no_prefetch", |b| {
        b.iter(|| {
            epoch += 1;
            l0.epoch(epoch)
                .map(|b| black_box(b.images.len()))
                .sum::<usize>()
        })
    });
    let dev = Cpu::default();
    g.bench_function("batch64_epoch_to_cpu_tensors", |b| {
        b.iter(|| {
            epoch += 1;
            l.epoch(epoch)
                .map(|b| {
                    let (x, y) = b.into_tensors::<1, 28, 28, _>(&dev).expect("28×28");
                    black_box((x.shape().0, y.shape().0))
                })
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, decode, loader);
criterion_main!(benches);
