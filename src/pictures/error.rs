//! The error type of the [`pictures`](crate::pictures) module.

use std::path::{Path, PathBuf};

/// What went wrong while writing or reading a picture.
///
/// Every variant names the file involved (or `<image>` for an in-memory
/// image), so the message alone tells the user where to look.
#[derive(Debug, thiserror::Error)]
pub enum PicturesError {
    /// The file (or its temporary sibling) could not be written or renamed:
    /// a missing or read-only folder, a full disk, …
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read (missing, unreadable, a directory, …).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a PNG or JPEG image the decoder accepts.
    #[error("{} is not a readable PNG or JPEG image: {source}", path.display())]
    Decode {
        /// The file that was being decoded.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The PNG encoder failed (should not happen for valid sizes).
    #[error("cannot encode {} as PNG: {source}", path.display())]
    Encode {
        /// The file that was being written.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The arguments do not describe a valid picture: a buffer whose length
    /// does not match the given size, a zero size, no data to plot, …
    #[error("{}: {reason}", path.display())]
    BadInput {
        /// The file that was to be written or read.
        path: PathBuf,
        /// What is wrong with the input.
        reason: String,
    },
    /// [`mnistify`](crate::pictures::mnistify) found no ink: the image is blank
    /// (or has no contrast at all).
    #[error("{}: the image is blank, no digit found", path.display())]
    Blank {
        /// The image file (`<image>` for an in-memory image).
        path: PathBuf,
    },
    /// The device could not allocate the tensor.
    #[error("{}: cannot create the tensor on the device: {reason}", path.display())]
    Device {
        /// The image file whose tensor was being created.
        path: PathBuf,
        /// The device's error message.
        reason: String,
    },
}

impl PicturesError {
    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            PicturesError::Write { path, .. }
            | PicturesError::Read { path, .. }
            | PicturesError::Decode { path, .. }
            | PicturesError::Encode { path, .. }
            | PicturesError::BadInput { path, .. }
            | PicturesError::Blank { path }
            | PicturesError::Device { path, .. } => path,
        }
    }

    pub(crate) fn bad(path: &Path, reason: impl Into<String>) -> Self {
        PicturesError::BadInput {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// The name used in errors about an image that has no file.
pub(crate) const IN_MEMORY: &str = "<image>";
