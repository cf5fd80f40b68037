//! Training: the `Classifier` driver, determinism and memory.
mod cifar_example;
mod driver;
mod resume;
mod soak;
mod split;
