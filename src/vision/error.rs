//! Errors of the image operations.
use crate::vis::VisError;

/// What can go wrong in [`vision`](super): sizes that do not fit, a bad
/// kernel choice, or a picture that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VisionError {
    /// Sizes that do not fit: a kernel larger than its padded image, a
    /// channel mismatch, a stride of 0, a buffer of the wrong length.
    #[error("shape error: {0}")]
    Shape(String),
    /// A kernel that cannot be built (an even Gaussian size, sigma ≤ 0).
    #[error("invalid kernel: {0}")]
    Kernel(String),
    /// Training the learned kernel failed on the device.
    #[error("training failed: {0}")]
    Train(String),
    /// Reading or writing a picture failed (the message names the file).
    #[error(transparent)]
    Vis(#[from] VisError),
}
