//! Layers and their kernels: gradients and the fast CPU paths.
mod gradients;
