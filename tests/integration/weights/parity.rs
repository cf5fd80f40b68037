//! PyTorch parity: the weights that `scripts/pytorch_parity.py` trained in
//! PyTorch load into the matching static-nn types with no renaming, give
//! PyTorch's logits within 1e-4 and the same number of correct answers on
//! the 10,000 MNIST test images.
//!
//! Needs the MNIST test set (gzip IDX) where `common::mnist_dir` finds it
//! (`$MNIST_DIR`, the cache or a download).
use ::safetensors::SafeTensors;
use flate2::read::GzDecoder;
use static_nn::prelude::*;
use static_nn::weights;
use std::io::Read;
use std::path::Path;

use crate::common::{fixture, mnist_dir};

const TOLERANCE: f32 = 1e-4;

/// Reads a gzip IDX file: its dims and its bytes.
fn read_idx(path: &Path, magic: u32) -> (Vec<usize>, Vec<u8>) {
    let gz = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}.\nThe parity test needs the MNIST test set: put \
             t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in a directory and \
             set MNIST_DIR to it (CI: ../shared/data/mnist).",
            path.display()
        )
    });
    let mut raw = Vec::new();
    GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{}: not gzip: {e}", path.display()));
    let word = |i: usize| u32::from_be_bytes(raw[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!(word(0), magic, "{}: wrong IDX magic", path.display());
    let ndim = (magic & 0xff) as usize;
    let dims: Vec<usize> = (1..=ndim).map(|i| word(i) as usize).collect();
    let data = raw[4 * (ndim + 1)..].to_vec();
    assert_eq!(
        data.len(),
        dims.iter().product::<usize>(),
        "{}: wrong size",
        path.display()
    );
    (dims, data)
}

/// The test images as pixels / 255 and their labels.
fn mnist_test() -> (Vec<f32>, Vec<u8>) {
    let dir = mnist_dir();
    let (dims, pixels) = read_idx(&dir.join("t10k-images-idx3-ubyte.gz"), 0x0803);
    assert_eq!(dims, [10_000, 28, 28]);
    let (_, labels) = read_idx(&dir.join("t10k-labels-idx1-ubyte.gz"), 0x0801);
    (pixels.iter().map(|&p| p as f32 / 255.0).collect(), labels)
}

/// PyTorch's results for one model, from parity.safetensors.
struct Torch {
    logits: Vec<f32>,
    pred: Vec<u8>,
    correct: i64,
}

fn torch_results(model: &str) -> Torch {
    let bytes = std::fs::read(fixture("weights/parity.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let t = |suffix: &str| {
        file.tensor(&format!("{model}.{suffix}"))
            .unwrap()
            .data()
            .to_vec()
    };
    let le4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
    Torch {
        logits: t("logits")
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(le4(b)))
            .collect(),
        pred: t("pred"),
        correct: i64::from_le_bytes(t("correct")[..8].try_into().unwrap()),
    }
}

type Batch = Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, Cpu>;
type Logits = Tensor<(usize, Const<10>), f32, Cpu>;

/// Loads the fixture `<name>.safetensors` into a fresh `M` and compares it
/// with PyTorch; returns (max |logit diff|, our correct count, PyTorch's).
fn parity<M>(name: &str, images: &[f32], labels: &[u8]) -> (f32, i64, i64)
where
    M: BuildOnDevice<Cpu, f32>,
    M::Built: Module<Batch, Output = Logits>,
{
    let dev = Cpu::default();
    let mut net = dev.build_module::<M, f32>();
    let path = fixture(&format!("weights/{name}.safetensors"));
    weights::load(&mut net, &path).unwrap_or_else(|e| panic!("{e}"));
    let torch = torch_results(name);

    let mut logits = Vec::with_capacity(labels.len() * 10);
    for (chunk, _) in images.chunks(1000 * 784).zip(0..) {
        let n = chunk.len() / 784;
        let x: Batch = dev.tensor_from_vec(chunk.to_vec(), (n, Const, Const, Const));
        logits.extend(net.forward(x).as_vec());
    }
    let max_diff = logits[..80]
        .iter()
        .zip(&torch.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0 as u8
    };
    let ours: Vec<u8> = logits.chunks_exact(10).map(argmax).collect();
    let correct = ours.iter().zip(labels).filter(|(p, l)| p == l).count() as i64;
    let differ: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i] != torch.pred[i])
        .collect();
    println!(
        "{name}: max |logit diff| on 8 images = {max_diff:.3e}; correct: static-nn {correct}, \
         PyTorch {}; predictions that differ: {}",
        torch.correct,
        differ.len()
    );
    assert!(
        max_diff <= TOLERANCE,
        "{name}: logits differ from PyTorch's by {max_diff:e} > {TOLERANCE:e}\nours:  {:?}\ntorch: {:?}",
        &logits[..10],
        &torch.logits[..10]
    );
    assert_eq!(
        correct, torch.correct,
        "{name}: {correct} correct answers, PyTorch {}; images predicted differently: {differ:?}",
        torch.correct
    );
    (max_diff, correct, torch.correct)
}

#[test]
fn pytorch_weights_give_pytorch_results_on_mnist() {
    let (images, labels) = mnist_test();
    parity::<Mlp>("mlp", &images, &labels);
    parity::<LeNetSeq>("lenet_seq", &images, &labels);
    parity::<LeNetClass>("lenet_class", &images, &labels);
    parity::<LeNet5>("lenet5", &images, &labels);
}
