//! Embedding: a separate crate (tests/embed) that depends on static-nn as any
//! other crate would declares its own typed network, loads weights saved
//! here and runs inference; its logits must be ours.
use crate::common::run_crate;
use static_nn::prelude::*;
use static_nn::weights;
use std::path::Path;
use std::process::Output;

/// The network tests/embed/src/main.rs declares, written again here.
type Net = (
    Input<1, 28, 28>,
    Conv2D<1, 4, 3>,
    ReLU,
    MaxPool2D<2>,
    Flatten,
    LazyLinear<10>,
);
type Model = Inferred<Net, Rank3<1, 28, 28>>;

/// The pictures tests/embed/src/main.rs classifies.
fn pictures() -> Vec<f32> {
    let ramp = |r: usize, c: usize| ((r * 7 + c * 3) % 29) as f32 / 28.0;
    let mut x = Vec::with_capacity(2 * 784);
    x.extend((0..784).map(|i| ramp(i / 28, i % 28)));
    x.extend((0..784).map(|i| ramp(i / 28, 27 - i % 28)));
    x
}

/// `cargo run` of the embedding crate with `weights` as its argument.
fn run_embedded(weights: &Path) -> Output {
    run_crate("embed", &[weights.as_os_str()])
}

#[test]
fn another_crate_loads_saved_weights_and_gets_our_logits() {
    let dev = Cpu::default();
    let net = dev.build_module::<Model, f32>();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("embedded.safetensors");
    weights::save(&net, &path).unwrap();
    assert_eq!(
        weights::tensor_names(&net)[2],
        ("5.weight".to_string(), vec![10, 676])
    );

    let x: Tensor<Rank4<2, 1, 28, 28>, f32, Cpu> = dev.tensor(pictures());
    let expected = net.forward(x).array();

    let out = run_embedded(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the embedding crate failed:\n{stdout}\n{stderr}"
    );
    let rows: Vec<Vec<f32>> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("logits "))
        .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for (row, want) in rows.iter().zip(&expected) {
        for (a, b) in row.iter().zip(want) {
            assert!((a - b).abs() <= 1e-5, "embedded {row:?}\nours     {want:?}");
        }
    }
    assert!(
        stdout.lines().any(|l| l.starts_with("classes ")),
        "{stdout}"
    );

    // With another model's weights it reports the loader's error, no panic.
    let wrong = dir.path().join("mlp.safetensors");
    weights::save(&dev.build_module::<Mlp, f32>(), &wrong).unwrap();
    let out = run_embedded(&wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: ") && stderr.contains("`1.weight`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
