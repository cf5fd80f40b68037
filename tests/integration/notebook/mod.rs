//! The notebook's numbers, its learned kernel and the tutorial's operations.
mod learned_kernel;
mod notebook_values;
mod values;
