//! Weights in safetensors files, with PyTorch's names and layouts.
//!
//! - [`save`] writes every tensor of a model, atomically (temporary file,
//!   sync, rename), as little-endian `F32`.
//! - [`load`] reads them back strictly: a missing, extra, wrongly shaped or
//!   wrongly typed tensor and a truncated or corrupt file are each a
//!   [`WeightsError`] naming the file, the tensor and both shapes or dtypes.
//!   Nothing panics, and on error the model is unchanged.
//! - [`load_with`] ignores extra tensors (`strict: false`) and renames the
//!   file's keys ([`LoadOptions::key_map`]) for layouts other than ours.
//! - [`tensor_names`] lists a model's names and shapes.
//!
//! # Names and layouts
//! A tensor's name is the path of fields to it, as PyTorch's `state_dict`
//! names it: a model struct's field names (`conv1.weight`, `fc2.bias`) and,
//! in tuples, the layer's position (`0.weight`, `3.bias`). Convolution
//! weights are `(OUT, IN, KH, KW)` and linear weights `(OUT, IN)`, as in
//! PyTorch. So `safetensors.torch.save_file(model.state_dict(), path)` of the
//! notebook's models loads with no renaming:
//!
//! | static-nn | PyTorch | keys |
//! |---|---|---|
//! | [`Mlp`](crate::models::Mlp) | `nn.Sequential(Flatten, Linear, ReLU, Linear)` | `1.*`, `3.*` |
//! | [`LeNetSeq`](crate::models::LeNetSeq) | the `nn.Sequential` LeNet | `0.*`, `3.*`, `7.*`, `9.*` |
//! | [`LeNetClass`](crate::models::LeNetClass) | `class LeNet(nn.Module)` | `conv1.*`, `conv2.*`, `fc1.*`, `fc2.*` |
//! | [`LeNet5`](crate::models::LeNet5) | LeNet-5 as an `nn.Sequential` | `0.*`, `3.*`, `7.*`, `9.*`, `11.*` |
//!
//! (`*` is `weight` and `bias`.) `scripts/pytorch_parity.py` makes such
//! files; `tests/integration/weights/parity.rs` checks that they give PyTorch's logits.
//!
//! Every tensor of the model is saved, trainable or not; dfdx's scalar
//! fields (none in static-nn's layers) are not. Models on any dfdx device
//! (`Cpu`, `Cuda`) with `f32` parameters can be saved and loaded.
//!
//! ```
//! use static_nn::prelude::*;
//! use static_nn::weights;
//! let dev = Cpu::default();
//! let net = dev.build_module::<LeNetClass, f32>();
//! let names: Vec<String> = weights::tensor_names(&net).into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names[..2], ["conv1.weight", "conv1.bias"]);
//! assert_eq!(weights::tensor_names(&net)[0].1, [6, 1, 5, 5]);
//! ```

mod error;
mod keymap;
mod load;
mod save;
mod visit;

pub use error::WeightsError;
pub use keymap::{LoadOptions, LoadReport};
pub use load::{load, load_from_bytes, load_with};
pub use save::{save, to_bytes};

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::Device;

/// The name and shape of every tensor of `model`, in the model's order: the
/// names [`save`] writes and [`load`] expects.
///
/// ```
/// use static_nn::prelude::*;
/// let net = Cpu::default().build_module::<Mlp, f32>();
/// assert_eq!(
///     static_nn::weights::tensor_names(&net),
///     [
///         ("1.weight".to_string(), vec![128, 784]),
///         ("1.bias".to_string(), vec![128]),
///         ("3.weight".to_string(), vec![10, 128]),
///         ("3.bias".to_string(), vec![10]),
///     ]
/// );
/// ```
pub fn tensor_names<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
) -> Vec<(String, Vec<usize>)> {
    visit::read(model, false)
        .into_iter()
        .map(|e| (e.name, e.shape))
        .collect()
}

/// The dtype of a tensor in a weights file: int64 for PyTorch's counters
/// (`num_batches_tracked`, a buffer of every batch norm), F32 for the rest.
pub(crate) fn dtype_of(name: &str) -> safetensors::Dtype {
    if name == "num_batches_tracked" || name.ends_with(".num_batches_tracked") {
        safetensors::Dtype::I64
    } else {
        safetensors::Dtype::F32
    }
}
