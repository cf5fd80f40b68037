//! The built examples, and inputs for them.
use std::path::{Path, PathBuf};

/// The path of example `name`, built by `cargo test` beside this test binary.
pub fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo test` (it builds the examples)",
        path.display()
    );
    path
}

/// An image folder in torchvision's layout under `dir`: `train/` and
/// `test/`, each with classes `bars` (vertical bars) and `rings`, `n_train`
/// and `n_test` grey PNGs of `side`×`side` per class, each slightly
/// different, so that a small network can learn them.
pub fn image_folder(dir: &Path, n_train: usize, n_test: usize, side: u32) {
    for (split, n) in [("train", n_train), ("test", n_test)] {
        for class in ["bars", "rings"] {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let k = i as u32;
                let img = image::GrayImage::from_fn(side, side, |x, y| {
                    let on = if class == "bars" {
                        (x + k) % 6 < 2
                    } else {
                        let (cx, cy) = (side as i64 / 2 + (k % 3) as i64 - 1, side as i64 / 2);
                        let r2 = (x as i64 - cx).pow(2) + (y as i64 - cy).pow(2);
                        (r2 as f64).sqrt() as u32 % 6 < 2
                    };
                    image::Luma([if on { 230 } else { 15 }])
                });
                img.save(d.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }
}
