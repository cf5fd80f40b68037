//! # static-nn
//!
//! Neural networks whose shapes are checked by the compiler, on stable Rust.
//!
//! A network is a type. Its layers carry their channel and feature counts as
//! const generics, and the output size of every convolution and pooling layer
//! is computed at compile time (see [`shapes`]). A wrong channel count, a
//! wrong feature count or a kernel that does not fit its input is a compile
//! error with a message that names the layer and both sizes.
//!
//! static-nn is built on [dfdx](https://docs.rs/dfdx/0.13.0): tensors,
//! autodiff, the CPU and CUDA devices and the optimizers are dfdx's. On top of
//! them static-nn adds what dfdx 0.13 lacks on stable Rust: 2-D convolution and
//! pooling, typed output sizes, lazy layers, models, MNIST data, training
//! drivers and PyTorch-compatible weights.
//!
//! | module | concern |
//! |---|---|
//! | [`shapes`] | type-level sizes: `conv_output_size`, the `Const` ↔ typenum table, shape checks |
//! | [`nn`] | layers (`Conv2D`, pools, `Linear`, `Flatten`, lazy layers) and composition |
//! | [`ops`] | the tensor operations behind the layers: generic and fast CPU kernels |
//! | [`models`] | the notebook's networks (`LeNet`, LeNet-5, the MLP) and model summaries |
//! | [`weights`] | safetensors save/load with PyTorch names |
//! | [`data`] | labelled images in memory and the batch loader; with `datasets`, IDX files, checksums and the cache; with `download`, verified downloads |
//! | [`train`] | the `Classifier` driver: `fit`, `evaluate`, `predict`, progress through an observer |
//! | `pictures` (feature `pictures`) | reading pictures, writing PNGs: image grids, loss curves, colour maps |
//! | `tutorial` (feature `tutorial`) | the notebook's image operations: reference cross-correlation, kernels, padding |
//! | [`error`] | [`Error`], into which every module's error converts |
//!
//! # Features
//!
//! | feature | default | adds | dependencies |
//! |---|---|---|---|
//! | `datasets` | yes | reading IDX files (raw or gzip), checksums, finding data in a directory, `$MNIST_DIR` or the cache | flate2, md-5, sha2, dirs |
//! | `download` | yes | downloading missing data sets, verified, into the cache | ureq |
//! | `pictures` | yes | the `pictures` module | image, font8x8 |
//! | `tutorial` | yes | the `tutorial` module (needs `pictures`) | |
//! | `cuda` | no | dfdx's CUDA device and static-nn's ops on it | cudarc |
//!
//! With `default-features = false` static-nn is the typed library alone:
//! shapes, nn, ops, models, weights, the in-memory loader and the training
//! driver, on dfdx, typenum, rand, num-traits, safetensors, thiserror, gemm
//! and rayon. It has no process-wide side effects: it never prints, keeps no
//! global state and leaves the allocator alone.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]
#![allow(clippy::type_complexity)]

mod atomic_file;
pub mod data;
pub mod error;
pub mod models;
pub mod nn;
pub mod ops;
#[cfg(feature = "pictures")]
pub mod pictures;
pub mod prelude;
pub mod shapes;
pub mod train;
#[cfg(feature = "tutorial")]
pub mod tutorial;
pub mod weights;

pub use error::{DeviceError, Error, Result, TypedErrors};
