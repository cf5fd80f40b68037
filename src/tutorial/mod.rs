//! The notebook's image operations, step by step, with typed tensors.
//!
//! Before it trains anything, the teaching notebook works through images and
//! cross-correlation by hand. This module is the Rust side of that walk:
//! plain-loop reference implementations that are easy to read, beside the
//! vectorised layers of [`nn`](crate::nn) they explain. Tests check that the
//! two agree and that every value the notebook prints comes out.
//!
//! | notebook | here | PyTorch |
//! |---|---|---|
//! | images as tensors | [`tensors::random_image`], [`tensors::random_gray`], [`tensors::random_rgb`] | `torch.rand((C, H, W))` |
//! | flattening | [`tensors::flatten_1d`], [`tensors::flatten_2d`], [`tensors::flatten_3d`] | `reshape(-1)`, `reshape(1, -1)`, `reshape(1, 1, -1)` |
//! | cross-correlation by hand | [`reference::corr2d`], [`reference::corr2d_with`] | the notebook's double loop, `F.conv2d` |
//! | kernels | [`kernels::EDGE`], [`kernels::SOBEL_X`], [`kernels::box_blur`], [`kernels::gaussian_blur`] | `torch.tensor([[[1.0, -1.0]]])`, … |
//! | learning a kernel | [`learn::learn_edge_kernel`] | `nn.LazyConv2d(1, (1, 2))` + SGD |
//! | padding | [`pad::pad`] (typed), [`reference::pad_ref`] | `F.pad(img, (P, P, P, P))` |
//! | multiple channels | [`reference::corr2d`] (sums channels), [`reference::corr2d_multi`] | `F.conv2d(img, kernels)`, `torch.cat` |
//! | pooling by hand | [`reference::pool2d_ref`] | `nn.MaxPool2d`, `nn.AvgPool2d` |
//! | a photo | [`photo::load_grey`], [`photo::test_picture`] | `skimage.data.astronaut()` |
//!
//! Runtime-sized images (a photo of any size, the reference loops) are
//! [`Chw`] buffers; typed images are dfdx tensors `Tensor<Rank3<C, H, W>, f32, D>`.
//! [`Chw::from_tensor`] and [`Chw::to_tensor`] convert between them, and
//! [`show`] prints a tensor in PyTorch's nested-bracket form.
//!
//! ```
//! use static_nn::prelude::*;
//! use static_nn::tutorial::{reference::corr2d, Chw};
//! let img = Chw::from_array([[[0.0, 1., 2.], [3., 4., 5.], [6., 7., 8.]]]);
//! let kernel = Chw::from_array([[[0.0, 1.], [2., 3.]]]);
//! let out = corr2d(&img, &kernel)?;
//! assert_eq!(out.data(), &[19.0, 25.0, 37.0, 43.0]);
//! assert_eq!(out.to_string(), "[[[19., 25.],\n  [37., 43.]]]");
//! # Ok::<(), static_nn::tutorial::TutorialError>(())
//! ```

mod chw;
mod error;
pub mod kernels;
pub mod learn;
pub mod pad;
pub mod photo;
pub mod reference;
mod show;
pub mod tensors;

pub use chw::Chw;
pub use error::TutorialError;
pub use learn::{learn_edge_kernel, LearnedKernel};
pub use pad::{pad, PadDim, PadSize};
pub use show::{format_values, show, show_values};
