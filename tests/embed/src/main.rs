//! An outside crate embedding a typed static-nn network, built against
//! static-nn with `default-features = false`.
//!
//! - `static-nn-embed-check WEIGHTS` loads `WEIGHTS` into this crate's own
//!   network type and prints its logits for two fixed pictures, one line each
//!   (`logits v0 v1 ... v9`), then the predicted classes (`classes a b`). With
//!   a bad weights file it prints the loader's error and exits with status 1.
//! - `static-nn-embed-check train OUT` trains the network for a few steps on
//!   the two pictures (in memory, through static-nn's loader and `Classifier`),
//!   prints each epoch's loss (`epoch e loss l`), saves the weights to `OUT`,
//!   loads them into a fresh network and prints `reloaded: same logits` when
//!   it predicts exactly as the trained one.
use static_nn::data::{DataLoader, LabelledImages, LoaderConfig};
use static_nn::prelude::*;
use static_nn::train::{Classifier, OptimizerConfig, TrainEvent};
use static_nn::weights;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// This crate's network, declared from static-nn's public API only: its
/// image (1×28×28, which the classifier reads from the type), one
/// convolution, max pooling, and a lazy output layer whose 4·13·13 = 676
/// inputs are inferred at compile time.
type Net = (Input<1, 28, 28>, Conv2D<1, 4, 3>, ReLU, MaxPool2D<2>, Flatten, LazyLinear<10>);

/// `Net` with its lazy layer made concrete for 28×28 grey pictures.
type Model = Inferred<Net, Rank3<1, 28, 28>>;

/// Two fixed 28×28 pictures: a diagonal ramp and its mirror image.
fn pictures() -> Vec<f32> {
    let ramp = |r: usize, c: usize| ((r * 7 + c * 3) % 29) as f32 / 28.0;
    let mut x = Vec::with_capacity(2 * 784);
    x.extend((0..784).map(|i| ramp(i / 28, i % 28)));
    x.extend((0..784).map(|i| ramp(i / 28, 27 - i % 28)));
    x
}

fn logits(net: &<Model as BuildOnDevice<Cpu, f32>>::Built, dev: &Cpu) -> [[f32; 10]; 2] {
    let x: Tensor<Rank4<2, 1, 28, 28>, f32, Cpu> = dev.tensor(pictures());
    net.forward(x).array()
}

fn infer(path: &Path) -> Result<(), static_nn::Error> {
    let dev = Cpu::default();
    let mut net = dev.build_module::<Model, f32>();
    weights::load(&mut net, path)?;
    let mut classes = Vec::new();
    for row in &logits(&net, &dev) {
        let values: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        println!("logits {}", values.join(" "));
        let best = (0..10).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        classes.push(best.to_string());
    }
    println!("classes {}", classes.join(" "));
    Ok(())
}

fn train(out: &Path) -> Result<(), static_nn::Error> {
    let dev = Cpu::seed_from_u64(7);
    let model = dev.build_module::<Model, f32>();
    // the two pictures as u8 pixels, 16 copies each, labelled 3 and 8
    let px: Vec<u8> = pictures().iter().map(|v| (v * 255.0) as u8).collect();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for i in 0..32 {
        pixels.extend_from_slice(&px[(i % 2) * 784..(i % 2 + 1) * 784]);
        labels.push(if i % 2 == 0 { 3 } else { 8 });
    }
    let data = Arc::new(LabelledImages::new(28, 28, pixels, labels)?);
    let cfg = LoaderConfig {
        batch_size: 8,
        shuffle: Some(1),
        ..Default::default()
    };
    let loader = DataLoader::new(data, cfg);
    let mut clf = Classifier::new(model, dev.clone(), OptimizerConfig::adam(1e-2));
    // the embedding crate decides what to show: one line per epoch
    clf.set_observer(|e: TrainEvent| {
        if let TrainEvent::EpochFinished { stats, .. } = e {
            println!("epoch {} loss {:.6}", stats.epoch, stats.loss);
        }
    });
    clf.fit(&loader, 3)?;
    weights::save(&clf.model, out)?;
    let mut reloaded = dev.build_module::<Model, f32>();
    weights::load(&mut reloaded, out)?;
    if logits(&reloaded, &dev) == logits(&clf.model, &dev) {
        println!("reloaded: same logits");
    } else {
        println!("reloaded: different logits");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let result = match args.as_slice() {
        [cmd, out] if cmd == "train" => train(Path::new(out)),
        [path] => infer(Path::new(path)),
        _ => {
            eprintln!("usage: static-nn-embed-check WEIGHTS.safetensors | train OUT.safetensors");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
