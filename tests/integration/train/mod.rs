//! Training: the `Classifier` driver, determinism and memory.
mod driver;
mod resume;
mod soak;
