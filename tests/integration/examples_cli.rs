//! The examples as a user runs them: exit codes, last lines, error messages.
//! `cargo test` builds the examples; these tests run the built binaries.
use std::process::Command;

use crate::common::{example, fixture};

#[test]
fn infer_with_a_bad_weights_file_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a safetensors file at all").unwrap();
    for (model, file) in [
        ("lenet", bad.clone()),
        ("mlp", fixture("weights/lenet_class.safetensors")),
    ] {
        let out = Command::new(example("infer"))
            .args(["--model", model, "--weights"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    }
}

#[test]
fn infer_classifies_a_picture_of_a_digit() {
    // A large, inverted (dark on light), coloured "1": a thick bar.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.png");
    let img = image::RgbImage::from_fn(90, 120, |x, y| {
        if (40..52).contains(&x) && (15..105).contains(&y) {
            image::Rgb([20, 20, 90])
        } else {
            image::Rgb([240, 235, 220])
        }
    });
    img.save(&path).unwrap();
    let out = Command::new(example("infer"))
        .args(["--model", "lenet", "--weights"])
        .arg(fixture("weights/lenet_class.safetensors"))
        .arg("--image")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("digit 1 (probability"), "{stdout}");
}

#[test]
fn lenet_rejects_an_unknown_model_by_name() {
    let out = Command::new(example("lenet"))
        .args(["--model", "vgg"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unknown model `vgg`"), "{stderr}");
}
