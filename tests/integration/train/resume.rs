//! Checkpoints: a run killed after an epoch and resumed ends bit-identical to
//! one that never stopped; checkpoints of another model, or corrupt ones,
//! are named errors. Runs the `train` example as a user does, on an image
//! folder the test draws.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{example, image_folder};

/// The run: a ResNet with batch norm and dropout, AdamW with warm-up and a
/// per-epoch cosine, clipping, crop-and-flip augmentation and a validation
/// split, so every kind of state must survive the restart.
fn args(data: &Path, out: &Path, model: &str) -> Vec<String> {
    let mut v: Vec<String> = [
        "--dataset",
        "folder",
        "--model",
        model,
        "--optimizer",
        "adamw",
        "--lr",
        "0.003",
        "--schedule",
        "cosine",
        "--warmup-epochs",
        "1",
        "--clip-grad-norm",
        "1.0",
        "--augment",
        "crop-flip",
        "--crop-padding",
        "2",
        "--val-split",
        "0.25",
        "--batch-size",
        "16",
        "--epochs",
        "4",
        "--seed",
        "11",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(["--data".into(), data.display().to_string()]);
    v.extend(["--out".into(), out.display().to_string()]);
    v
}

fn train(args: &[String]) -> Output {
    Command::new(example("train")).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "train failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_killed_run_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pictures");
    image_folder(&data, 24, 6, 28);

    let whole = dir.path().join("whole");
    let line = ok(&train(&args(&data, &whole, "resnet")));
    let last = line.lines().last().unwrap().to_string();
    assert!(
        last.starts_with("test accuracy: ") && last.ends_with("/12)"),
        "{last}"
    );

    // the same run, killed once its first checkpoint is written
    let ck = dir.path().join("ck");
    let part = dir.path().join("part");
    let mut a = args(&data, &part, "resnet");
    a.extend(["--checkpoint-dir".into(), ck.display().to_string()]);
    let mut child = Command::new(example("train"))
        .args(&a)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    for l in BufReader::new(stdout).lines() {
        let l = l.unwrap();
        let done = l.starts_with("  checkpoint: ");
        seen.push(l);
        if done {
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run ended before it was killed:\n{}",
        seen.join("\n")
    );
    assert!(ck.join("checkpoint.safetensors").exists());

    a.push("--resume".into());
    let resumed = ok(&train(&a));
    assert!(resumed.contains("resumed from "), "{resumed}");
    assert!(
        !resumed.contains("Epoch: 1/4"),
        "epoch 1 ran again:\n{resumed}"
    );
    assert_eq!(resumed.lines().last().unwrap(), last);
    let (w1, w2) = (
        std::fs::read(whole.join("resnet.safetensors")).unwrap(),
        std::fs::read(part.join("resnet.safetensors")).unwrap(),
    );
    assert!(
        w1 == w2,
        "the resumed run's weights differ from the uninterrupted run's"
    );

    // a checkpoint of another model is a named error, and changes nothing
    let mut other = args(&data, &dir.path().join("other"), "lenet");
    other.extend([
        "--checkpoint-dir".into(),
        ck.display().to_string(),
        "--resume".into(),
    ]);
    let out = train(&other);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("checkpoint.safetensors"), "{stderr}");
    assert!(stderr.contains("does not fit this model"), "{stderr}");

    // a corrupt one too
    let file = ck.join("checkpoint.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let out = train(&a);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}
