//! Embedding: a separate crate (tests/embed) that depends on static-nn as any
//! other crate would declares its own typed network, loads weights saved
//! here and runs inference; its logits must be ours.
use static_nn::prelude::*;
use static_nn::weights;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The network tests/embed/src/main.rs declares, written again here.
type Net = (Conv2D<1, 4, 3>, ReLU, MaxPool2D<2>, Flatten, LazyLinear<10>);
type Model = Inferred<Net, Rank3<1, 28, 28>>;

/// The pictures tests/embed/src/main.rs classifies.
fn pictures() -> Vec<f32> {
    let ramp = |r: usize, c: usize| ((r * 7 + c * 3) % 29) as f32 / 28.0;
    let mut x = Vec::with_capacity(2 * 784);
    x.extend((0..784).map(|i| ramp(i / 28, i % 28)));
    x.extend((0..784).map(|i| ramp(i / 28, 27 - i % 28)));
    x
}

/// This test binary's target directory (`<target>/<profile>/deps/<exe>`),
/// reused so that the embedding crate does not rebuild dfdx.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// `cargo run` of the embedding crate with `weights` as its argument.
fn run_embedded(weights: &Path) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/embed/Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(&manifest)
        .arg("--")
        .arg(weights)
        .env("CARGO_TARGET_DIR", target_dir());
    // Drop what `cargo test` sets for this test's process: some build
    // scripts (ring's) watch these, and inheriting them would rebuild the
    // dependencies on every run.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo = ["CARGO_PKG_", "CARGO_BIN_", "CARGO_MANIFEST_"]
            .iter()
            .any(|p| key.starts_with(p))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key.as_ref());
        if set_by_cargo {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.output().expect("cannot start cargo")
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
        ("4.weight".to_string(), vec![10, 676])
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
        stderr.contains("error: ") && stderr.contains("`0.weight`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
