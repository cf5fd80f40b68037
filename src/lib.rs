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
//! drivers, PyTorch-compatible weights and pictures.
//!
//! | module | concern |
//! |---|---|
//! | [`shapes`] | type-level sizes: `conv_output_size`, the `Const` ↔ typenum table, shape checks |
//! | [`nn`] | layers (`Conv2D`, pools, `Linear`, `Flatten`, lazy layers) and composition |
//! | [`ops`] | the tensor operations behind the layers: generic and fast CPU kernels |
//! | [`models`] | the notebook's networks (`LeNet`, LeNet-5, the MLP) and model summaries |
//! | [`data`] | MNIST-format data: IDX files, verified download and cache, batch loader |
//! | [`train`] | the `Classifier` driver: `fit`, `evaluate`, `predict` |
//! | [`weights`] | safetensors save/load with PyTorch names |
//! | [`vis`] | PNG pictures: image grids, loss curves, colour maps |
//! | [`vision`] | the notebook's image operations: reference cross-correlation, kernels, padding |
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]
#![allow(clippy::type_complexity)]

pub mod data;
pub mod models;
pub mod nn;
pub mod ops;
pub mod prelude;
pub mod shapes;
pub mod train;
pub mod vis;
pub mod vision;
pub mod weights;
