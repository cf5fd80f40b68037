//! Weights files: saving and loading, bad files, a save killed mid-write,
//! PyTorch parity, embedding in another crate, a downstream crate's own
//! residual block.
mod downstream;
mod embed;
mod files;
mod killed_save;
mod parity;
