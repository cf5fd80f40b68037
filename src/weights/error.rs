//! The loader's and saver's errors: each names the file and, where one is
//! involved, the tensor with the expected and the found shape or dtype.
use std::path::PathBuf;

/// Everything that can go wrong while saving or loading weights.
///
/// Every variant carries the file it is about; the tensor variants carry the
/// tensor's name (as the model names it) and both the expected and the found
/// shape or dtype, so that the message alone says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    /// The file could not be read, written, synced or renamed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file being read or saved.
        path: PathBuf,
        /// What was being done: `read`, `create`, `write`, `sync`, `rename`.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not a valid safetensors file: truncated, garbage, a
    /// header that does not parse, or offsets that do not match the data.
    #[error("{}: not a valid safetensors file: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The model has a tensor that the file lacks.
    #[error(
        "{}: tensor `{name}` with shape {expected_shape:?} is missing from the file{}",
        path.display(),
        unused_hint(unused)
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// The model's name for the tensor (`conv1.weight`).
        name: String,
        /// The shape the model expects.
        expected_shape: Vec<usize>,
        /// File tensors that matched no model tensor, a hint to a naming
        /// mismatch that [`LoadOptions::key_map`](super::LoadOptions) can fix.
        unused: Vec<String>,
    },

    /// The file has a tensor that the model lacks (strict loading only).
    #[error(
        "{}: unexpected tensor `{name}` with shape {shape:?}: the model has no tensor of that name \
         (load with `LoadOptions {{ strict: false, .. }}` to ignore it, or map it with `key_map`)",
        path.display()
    )]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The tensor's name in the file.
        name: String,
        /// Its shape in the file.
        shape: Vec<usize>,
    },

    /// A tensor's shape in the file differs from the model's.
    #[error(
        "{}: tensor `{name}` has shape {found:?} in the file, but the model expects {expected:?}",
        path.display()
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The model's name for the tensor.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },

    /// A tensor's dtype in the file differs from the model's.
    #[error(
        "{}: tensor `{name}` has dtype {found} in the file, but the model expects {expected}",
        path.display()
    )]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The model's name for the tensor.
        name: String,
        /// The dtype the model expects (`F32`).
        expected: String,
        /// The dtype in the file (`F64`, `F16`, ...).
        found: String,
    },

    /// Two tensors of the file map to the same model tensor through
    /// [`LoadOptions::key_map`](super::LoadOptions).
    #[error(
        "{}: tensors `{first}` and `{second}` of the file both map to the model's `{name}`",
        path.display()
    )]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The model's name both map to.
        name: String,
        /// The first file tensor.
        first: String,
        /// The second file tensor.
        second: String,
    },

    /// The tensors could not be encoded as safetensors (a save).
    #[error("{}: cannot encode the model as safetensors: {reason}", path.display())]
    Encode {
        /// The file being saved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

fn unused_hint(unused: &[String]) -> String {
    if unused.is_empty() {
        String::new()
    } else {
        format!(
            " (the file's tensors that match no model tensor: {})",
            unused.join(", ")
        )
    }
}
