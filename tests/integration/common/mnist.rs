//! The real MNIST set, found through `MNIST_DIR` (CI:
//! `MNIST_DIR=../shared/data/mnist`), the per-user cache or a download,
//! loaded once for the whole binary.
//!
//! If the data cannot be found the tests that need it FAIL, with the places
//! tried and how to provide the data; they never pass silently.
use std::path::PathBuf;
use std::sync::OnceLock;

use static_nn::data::{locate, DataError, IdxDataset, MNIST};

/// The value of `r`, or a panic saying that the real MNIST files are needed,
/// why they could not be had, and how to provide them.
pub fn need<T>(r: Result<T, DataError>) -> T {
    r.unwrap_or_else(|e| {
        panic!(
            "these tests need the real MNIST files and could not get them.\n{e}\n\
             Hint: set MNIST_DIR to a folder with the four files, e.g. \
             MNIST_DIR=../shared/data/mnist cargo test --test integration"
        )
    })
}

/// The folder holding the four MNIST files.
pub fn mnist_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| need(locate(&MNIST, None)))
}

/// Both splits of MNIST, loaded once.
pub fn mnist() -> &'static IdxDataset {
    static M: OnceLock<IdxDataset> = OnceLock::new();
    M.get_or_init(|| need(IdxDataset::load(&MNIST, Some(mnist_dir()))))
}
