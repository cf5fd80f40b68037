//! Errors of the image operations.
use crate::pictures::PicturesError;

/// What can go wrong in [`tutorial`](super): sizes that do not fit, a bad
/// kernel choice, or a picture that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TutorialError {
    /// Sizes that do not fit: a kernel larger than its padded image, a
    /// channel mismatch, a stride of 0, a buffer of the wrong length.
    #[error("shape error: {0}")]
    Shape(String),
    /// A kernel that cannot be built (an even Gaussian size, sigma ≤ 0).
    #[error("invalid kernel: {0}")]
    Kernel(String),
    /// The device or the optimizer failed (while converting a picture to a
    /// tensor, or training the learned kernel).
    #[error(transparent)]
    Device(#[from] crate::DeviceError),
    /// Reading or writing a picture failed (the message names the file).
    #[error(transparent)]
    Vis(#[from] PicturesError),
}
