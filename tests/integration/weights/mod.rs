//! Weights files: saving and loading, PyTorch parity, embedding in another crate.
mod embed;
mod files;
mod parity;
