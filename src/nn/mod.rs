//! Layers and their composition.
//!
//! A network is a type built from the layer types below, nested in tuples
//! (up to 16 layers each, [`Sequential`]) or in a model struct such as
//! [`LeNet`](crate::models::LeNet). [`DeviceBuildExt::build_module`] turns the
//! type into modules on a device, and dfdx's `Module::forward` runs them.
//!
//! | static-nn | PyTorch | input → output |
//! |---|---|---|
//! | [`Conv2D<IN, OUT, K, S, P>`](Conv2D) | `nn.Conv2d(IN, OUT, K, S, P)` | `(B, IN, H, W)` → `(B, OUT, H', W')` |
//! | [`Conv2DRect<IN, OUT, KH, KW, S, P>`](Conv2DRect) | `nn.Conv2d(IN, OUT, (KH, KW), S, P)` | same |
//! | [`LazyConv2D<OUT, K, S, P>`](LazyConv2D) | `nn.LazyConv2d(OUT, K, S, P)` | same, `IN` inferred |
//! | [`MaxPool2D<K, S, P>`](MaxPool2D) | `nn.MaxPool2d(K, S, P)` | `(B, C, H, W)` → `(B, C, H', W')` |
//! | [`AvgPool2D<K, S, P>`](AvgPool2D) | `nn.AvgPool2d(K, S, P)` | same |
//! | [`Flatten`] | `nn.Flatten()` | `(B, C, H, W)` → `(B, Flat<C, H, W>)` |
//! | [`Linear<IN, OUT>`](Linear) | `nn.Linear(IN, OUT)` | `(B, IN)` → `(B, OUT)` |
//! | [`LazyLinear<OUT>`](LazyLinear) | `nn.LazyLinear(OUT)` | same, `IN` inferred |
//! | [`ReLU`], [`Sigmoid`], [`Tanh`], [`Softmax`] | same names | unchanged |
//! | [`BatchNorm2D<C>`](BatchNorm2D) | `nn.BatchNorm2d(C)` | `(B, C, H, W)` → same |
//! | [`BatchNormReLU2D<C>`](BatchNormReLU2D) | `nn.BatchNorm2d(C)` + `nn.ReLU()`, one op | `(B, C, H, W)` → same |
//! | [`BatchNorm1D<F>`](BatchNorm1D) | `nn.BatchNorm1d(F)` | `(B, F)` → same |
//! | [`Dropout<PERCENT>`](Dropout), [`Dropout2D<PERCENT>`](Dropout2D) | `nn.Dropout(p)`, `nn.Dropout2d(p)` | unchanged |
//! | [`GlobalAvgPool2D`] | `nn.AdaptiveAvgPool2d(1)` + `Flatten` | `(B, C, H, W)` → `(B, C)` |
//! | [`AdaptiveAvgPool2D<OH, OW>`](AdaptiveAvgPool2D) | `nn.AdaptiveAvgPool2d((OH, OW))` | `(B, C, H, W)` → `(B, C, OH, OW)` |
//! | [`Residual<F, G>`](Residual) | a ResNet block's `f(x) + g(x)` | `f`'s output; `f` and `g` must agree |
//! | [`Identity`] | `nn.Identity()` | unchanged |
//! | [`Input<C, H, W>`](Input) | (Keras' `Input`) | `(B, C, H, W)` → same; declares the network's image |
//!
//! # Training and inference
//!
//! Every layer and composition runs in one of two modes. `Module::forward`
//! (`&self`) is inference: dropout is the identity and batch norms use
//! their running statistics, which `&self` cannot change. dfdx's
//! `ModuleMut::forward_mut` (`&mut self`) is training: dropout zeroes and
//! rescales, batch norms normalise by the batch and update their running
//! statistics. Tuples and derived structs pass the mode to every child;
//! [`Classifier::fit`](crate::train::Classifier::fit) trains through
//! `forward_mut`, and `evaluate`, `predict` and `infer` use `forward`.
//! [`ChunkedForward::forward_chunked`] is inference on a large CPU batch in
//! cache-sized chunks, one per rayon worker, with `forward`'s result.
//!
//! `H' = (H + 2P − K) / S + 1` is computed at compile time
//! ([`shapes`](crate::shapes)).

mod activations;
mod adaptive_pool;
#[macro_use]
mod build;
mod chunked;
mod conv;
mod dropout;
mod flatten;
pub(crate) mod infer;
mod input;
mod linear;
pub(crate) mod no_input_grad;
mod norm;
mod pool;
mod residual;
mod sequential;

pub use activations::{LogSoftmax, ReLU, Sigmoid, Softmax, Tanh};
pub use adaptive_pool::{AdaptiveAvgPool2D, GlobalAvgPool2D};
pub use build::{BuildOnDevice, DeviceBuildExt};
pub use chunked::{chunk_count, BatchFirst, ChunkedForward, MAX_CHUNK};
pub use conv::{Conv2D, Conv2DModule, Conv2DRect, LazyConv2D, LazyConv2DRect};
pub use dropout::{Dropout, Dropout2D, DropoutModule};
pub use flatten::Flatten;
pub use infer::{InferShape, Inferred, LayerRow, OutputShape};
pub use input::Input;
pub use linear::{FlatProduct, LazyLinear, Linear, LinearModule, LinearOf};
pub use no_input_grad::NoInputGrad;
pub use norm::{BatchNorm1D, BatchNorm2D, BatchNormModule, BatchNormReLU2D};
pub use pool::{AvgPool2D, AvgPool2DModule, MaxPool2D, MaxPool2DModule, PoolPadding};
pub use residual::{add_residual, add_residual_relu, Identity, Residual};
pub use sequential::Sequential;
