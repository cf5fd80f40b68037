//! The `train` example on CIFAR-10 end to end, as a user runs it: the
//! archive (generated here, in the binary format) downloaded from a mirror,
//! unpacked into the cache and trained on with `cifar-resnet20`. Its checksum
//! is not the published one, so the default run must refuse it by name and
//! `--no-verify` must take it with a warning.
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::cifar::{archive, RECORDS};
use crate::common::{example, Reply, Server};

fn run(cache: &Path, mirror: &str, out: &Path, extra: &[&str]) -> Output {
    Command::new(example("train"))
        .args([
            "--dataset",
            "cifar10",
            "--model",
            "cifar-resnet20",
            "--epochs",
            "1",
            "--batch-size",
            "25",
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--momentum",
            "0.9",
            "--normalize",
            "--quiet",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .env("STATIC_NN_CACHE_DIR", cache)
        .env("STATIC_NN_CIFAR10_MIRRORS", mirror)
        .env_remove("CIFAR10_DIR")
        .env_remove("STATIC_NN_OFFLINE")
        .output()
        .unwrap()
}

#[test]
fn cifar10_downloads_unpacks_and_trains_resnet20() {
    let bytes = archive();
    let routes = HashMap::from([("/m/cifar-10-binary.tar.gz".to_string(), Reply::Ok(bytes))]);
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("out");

    // the generated archive is not the published one: a named refusal
    let refused = run(&cache, &server.url("m"), &out, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("cifar-10-binary.tar.gz"), "{stderr}");
    assert!(stderr.contains("--no-verify"), "{stderr}");

    let ok = run(&cache, &server.url("m"), &out, &["--no-verify"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: "),
        "no warning for the unverified archive:\n{stderr}"
    );
    let want = format!(
        "{} training and {RECORDS} test images of 3×32×32, 10 classes",
        5 * RECORDS
    );
    assert!(stdout.contains(&want), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let pattern = format!("/{RECORDS})");
    assert!(
        last.starts_with("test accuracy: ") && last.ends_with(&pattern),
        "{last}"
    );
    // class names in the report
    assert!(
        stdout.contains("airplane") && stdout.contains("truck"),
        "{stdout}"
    );
    for f in ["cifar-resnet20.safetensors", "predictions.png", "loss.png"] {
        assert!(
            out.join(f).metadata().map(|m| m.len() > 0).unwrap_or(false),
            "missing {f}"
        );
    }
    assert!(cache.join("cifar10").join("cifar-10-batches-bin").is_dir());

    // a grey model on RGB data is an error naming both shapes
    let wrong = Command::new(example("train"))
        .args([
            "--dataset",
            "cifar10",
            "--model",
            "lenet",
            "--no-verify",
            "--epochs",
            "1",
        ])
        .env("STATIC_NN_CACHE_DIR", &cache)
        .env("STATIC_NN_OFFLINE", "1")
        .env_remove("CIFAR10_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1×28×28") && stderr.contains("3×32×32"),
        "{stderr}"
    );
}
