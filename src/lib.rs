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

// Lets the derive macros' `::static_nn::..` paths work inside static-nn too.
extern crate self as static_nn;

mod atomic_file;
pub mod data;
pub mod error;
pub mod models;
pub mod nn;
pub mod ops;
pub mod parallel;
#[cfg(feature = "pictures")]
pub mod pictures;
pub mod prelude;
pub mod shapes;
pub mod train;
#[cfg(feature = "tutorial")]
pub mod tutorial;
pub mod weights;

pub use error::{DeviceError, Error, Result, TypedErrors};
/// Derives what a struct model needs to be a network type: building
/// (`BuildOnDevice`), parameter visiting with PyTorch's names (dfdx's
/// `TensorCollection`: saving, loading, optimizers), and shapes and summaries
/// (`InferShape`). Every field's type must be one of the struct's type
/// parameters: the struct holds layer types, and once built their modules.
///
/// With `#[network(sequential)]` the fields run in declaration order, and the
/// derive writes the forward passes too (`Module` and `ModuleMut`);
/// `#[network(sequential = [a, b, a])]` gives the order, a field possibly
/// running more than once ([`LeNet`](models::LeNet) does this). Without it,
/// write the forward yourself with [`macro@forward`]:
///
/// ```
/// use static_nn::prelude::*;
///
/// /// `y = act(conv(x)) + x`: a convolution that keeps the shape, and a skip.
/// #[derive(Network, Clone, Debug, Default)]
/// pub struct Skip<const C: usize, Conv = Conv2D<C, C, 3, 1, 1>, Act = ReLU> {
///     pub conv: Conv,
///     pub act: Act,
/// }
///
/// #[forward]
/// impl<const C: usize, S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>, Conv, Act>
///     Module<Tensor<S, E, D, T>> for Skip<C, Conv, Act>
/// where
///     Conv: Module<Tensor<S, E, D, T>, Output = Tensor<S, E, D, T>, Error = D::Err>,
///     Act: Module<Tensor<S, E, D, T>, Output = Tensor<S, E, D, T>, Error = D::Err>,
/// {
///     type Output = Tensor<S, E, D, T>;
///     type Error = D::Err;
///
///     fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
///         let (x, tape) = x.split_tape();
///         let y = self.act.try_forward(self.conv.try_forward(x.clone().put_tape(tape))?)?;
///         y.try_add(x)
///     }
/// }
///
/// // A network with the block inside; PyTorch's names for its tensors.
/// type Net = (Conv2D<1, 8, 3, 1, 1>, ReLU, Skip<8>, MaxPool2D<4>, Flatten, Linear<392, 10>);
/// let dev = Cpu::seed_from_u64(0);
/// let mut net = dev.build_module::<Net, f32>();
/// let names: Vec<String> = static_nn::weights::tensor_names(&net)
///     .into_iter()
///     .map(|(name, _)| name)
///     .collect();
/// assert_eq!(names[2..4], ["2.conv.weight", "2.conv.bias"]);
///
/// // One summary row for the block, with its parameters.
/// let s = summary::<Net, Rank3<1, 28, 28>>();
/// assert_eq!((s.rows[2].name.as_str(), s.rows[2].layer.as_str()), ("2", "Skip"));
/// assert_eq!((s.rows[2].output.clone(), s.rows[2].params), (vec![8, 28, 28], 8 * 8 * 9 + 8));
/// assert_eq!(s.total_params(), net.num_trainable_params());
///
/// // Inference, and training mode through `forward_mut` (from `#[forward]`).
/// let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.sample_normal();
/// let y: Tensor<Rank2<2, 10>, f32, _> = net.forward(x.clone());
/// let block = &mut net.0 .2;
/// let h: Tensor<Rank4<2, 8, 28, 28>, f32, _> = dev.sample_normal();
/// let trained = block.forward_mut(h.trace(block.alloc_grads()));
/// assert_eq!(trained.array(), block.forward(h).array());
/// # let _ = y;
/// ```
pub use static_nn_derive::Network;

/// On an `impl Module<X> for YourStruct<..>` block, also writes its
/// training-mode twin `impl ModuleMut<X>`: the same body with `Module` read as
/// `ModuleMut`, `try_forward`/`forward` as `try_forward_mut`/`forward_mut`
/// and `&self` as `&mut self`. One forward then serves inference (`forward`)
/// and training (`forward_mut`: dropout active, batch-norm statistics
/// updated), and training mode reaches every child layer.
///
/// The rewrite is by syntax: call children as `self.child.try_forward(..)`
/// (or `Module::try_forward(&self.child, ..)`), not through a `&self.child`
/// kept in a variable. See [`Network`] for a full example.
pub use static_nn_derive::forward;

/// What the derive macros' generated code names, through static-nn, so that
/// a crate using them needs no dependency on dfdx. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::nn::infer::{
        join_name, push, trainable_params, Batched, BatchedModuleOut, ModuleOut, Unbatched,
    };
    pub use dfdx;
}
