//! An outside crate embedding a typed static-nn network.
//!
//! `static-nn-embed-check WEIGHTS` loads `WEIGHTS` into this crate's own
//! network type and prints its logits for two fixed pictures, one line each
//! (`logits v0 v1 ... v9`), then the predicted classes (`classes a b`). With
//! a bad weights file it prints the loader's error and exits with status 1.
use static_nn::prelude::*;
use static_nn::weights;
use std::process::ExitCode;

/// This crate's network, declared from static-nn's public API only: one
/// convolution, max pooling, and a lazy output layer whose 4·13·13 = 676
/// inputs are inferred at compile time.
type Net = (Conv2D<1, 4, 3>, ReLU, MaxPool2D<2>, Flatten, LazyLinear<10>);

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

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: static-nn-embed-check WEIGHTS.safetensors");
        return ExitCode::from(2);
    };
    let dev = Cpu::default();
    let mut net = dev.build_module::<Model, f32>();
    if let Err(e) = weights::load(&mut net, std::path::Path::new(&path)) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let x: Tensor<Rank4<2, 1, 28, 28>, f32, Cpu> = dev.tensor(pictures());
    let logits = net.forward(x).array();
    let mut classes = Vec::new();
    for row in &logits {
        let values: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        println!("logits {}", values.join(" "));
        let best = (0..10).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        classes.push(best.to_string());
    }
    println!("classes {}", classes.join(" "));
    ExitCode::SUCCESS
}
