//! The real MNIST set (see `common::mnist`: the tests fail, never skip,
//! without it): sizes, labels, pixel statistics, checksums, one split alone,
//! a truncated copy, and the loader's typed batches.

use std::sync::Arc;

use dfdx::prelude::*;
use static_nn::data::{
    read_idx_images, verify_dir, verify_file, DataError, DataLoader, IdxDataset, LoaderConfig,
    Normalize, Split, Verified, MNIST,
};

use crate::common::{mnist, mnist_dir as dir, need};

#[test]
fn sizes() {
    let m = mnist();
    assert_eq!(m.train.len(), 60_000);
    assert_eq!(m.test.len(), 10_000);
    for s in [&m.train, &m.test] {
        assert_eq!((s.rows, s.cols), (28, 28));
        assert_eq!(s.pixels.len(), s.len() * 28 * 28);
    }
}

#[test]
fn label_histograms_and_first_labels() {
    let m = mnist();
    assert_eq!(
        m.train.label_histogram(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        m.test.label_histogram(),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(m.train.labels[0], 5);
    assert_eq!(m.test.labels[0], 7);
}

#[test]
fn pixel_range_and_statistics() {
    let m = mnist();
    let (lo, hi) = m
        .train
        .pixels
        .iter()
        .fold((u8::MAX, u8::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    assert_eq!((lo, hi), (0, 255));
    // the numbers behind transforms.Normalize((0.1307,), (0.3081,))
    let (mean, std) = m.train.pixel_mean_std();
    assert!((mean - 0.1307).abs() < 5e-5, "mean {mean}");
    assert!((std - 0.3081).abs() < 5e-5, "std {std}");

    // ToTensor: 0..=255 -> [0, 1], both ends reached
    let loader = DataLoader::new(
        Arc::new(m.test.clone()),
        LoaderConfig {
            batch_size: 1000,
            prefetch: 0,
            ..Default::default()
        },
    );
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for b in loader.epoch(0) {
        for &x in &b.images {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    assert_eq!((lo, hi), (0.0, 1.0));
}

#[test]
fn files_pass_their_checksums() {
    let d = dir();
    need(verify_dir(&MNIST, d));
    // the shared training images were re-compressed: only the sha256 of the
    // decompressed content can vouch for them (when they are the .gz)
    let p = d.join("train-images-idx3-ubyte.gz");
    if p.is_file() {
        let v = need(verify_file(&p, &MNIST.files[0]));
        assert!(matches!(v, Verified::Md5Gz | Verified::Sha256Raw));
    }
}

#[test]
fn one_split_alone() {
    let test = need(IdxDataset::load_split(&MNIST, Some(dir()), Split::Test));
    assert_eq!(&test, &mnist().test);
}

#[test]
fn truncated_copy_of_the_real_file_is_a_typed_error() {
    let src = dir().join("train-images-idx3-ubyte.gz");
    if !src.is_file() {
        return; // an uncompressed copy: covered by the unit tests
    }
    let bytes = std::fs::read(&src).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("train-images-idx3-ubyte.gz");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    let e = read_idx_images(&p).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            DataError::Truncated {
                expected: 47_040_000,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        msg.starts_with(&format!(
            "{}: truncated IDX file: header says 60000×28×28 = 47040000 data bytes",
            p.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("the gzip data ends early"), "{msg}");
}

#[test]
fn an_epoch_of_typed_batches() {
    let m = mnist();
    let loader = DataLoader::new(
        Arc::new(m.train.clone()),
        LoaderConfig {
            batch_size: 64,
            shuffle: Some(0),
            drop_last: true,
            prefetch: 2,
            normalize: Some(Normalize::MNIST),
            augment: None,
        },
    );
    assert_eq!(loader.len(), 937);
    let dev = Cpu::default();
    let mut seen = [0usize; 10];
    let mut n = 0;
    for batch in loader.epoch(0) {
        let (x, y) = batch
            .to_const_tensors::<64, 1, 28, 28, _>(&dev)
            .expect("full batches");
        let _: &Tensor<Rank4<64, 1, 28, 28>, f32, Cpu> = &x;
        for l in y.as_vec() {
            seen[l] += 1;
        }
        n += 1;
    }
    assert_eq!(n, 937);
    assert_eq!(seen.iter().sum::<usize>(), 937 * 64);

    // keep the last partial batch: 60000 = 937 * 64 + 32
    let keep = DataLoader::new(
        Arc::new(m.train.clone()),
        LoaderConfig {
            batch_size: 64,
            ..Default::default()
        },
    );
    let last = keep.epoch(0).last().unwrap();
    assert_eq!(last.len(), 32);
    assert!(matches!(
        last.to_const_tensors::<64, 1, 28, 28, _>(&dev),
        Err(DataError::BatchSize {
            expected: 64,
            found: 32
        })
    ));
    let (x, y) = last.to_tensors::<1, 28, 28, _>(&dev).unwrap();
    assert_eq!(x.shape().0, 32);
    assert_eq!(y.shape().0, 32);
    assert_eq!(last.one_hot::<10, _>(&dev).shape().0, 32);
}
